"""Errors in callbacks: the exception handler, logging, and
KeyboardInterrupt/SystemExit propagation."""
import asyncio
import contextvars
import logging
import re
import subprocess
import sys
import textwrap

import pytest

import asyncloop
from asyncio import format_helpers

PY312 = sys.version_info >= (3, 12)

var = contextvars.ContextVar('var', default='unset')


def run_briefly(loop, iterations=1):
    for _ in range(iterations):
        loop.call_soon(loop.stop)
        loop.run_forever()


def format_callback(callback, args, debug):
    """The callback as asyncio formats it in messages."""
    try:
        return format_helpers._format_callback_source(callback, args,
                                                      debug=debug)
    except TypeError:       # before 3.13: no debug parameter
        return format_helpers._format_callback_source(callback, args)


def normalise(text):
    """Log text with what varies between runs and loops taken out."""
    text = re.sub(r'0x[0-9a-fA-F]+', '0x...', text)
    text = re.sub(r'when=[0-9.e+-]+', 'when=...', text)
    return text


def fail(*args):
    raise ValueError('callback failed')


def collect_errors(loop):
    contexts = []
    loop.set_exception_handler(lambda lp, context: contexts.append(
        (lp, context)))
    return contexts


# ---- the context given to the handler -------------------------------------

@pytest.mark.parametrize('debug', [False, True], ids=['nodebug', 'debug'])
def test_callback_exception_goes_to_handler(loop, debug):
    """An exception of a call_soon callback reaches the handler with
    asyncio's keys: message, exception, handle (and source_traceback in
    debug mode)."""
    loop.set_debug(debug)
    contexts = collect_errors(loop)
    h = loop.call_soon(fail, 1, 'x')
    run_briefly(loop)
    assert len(contexts) == 1
    lp, context = contexts[0]
    assert lp is loop
    expected_keys = {'message', 'exception', 'handle'}
    if debug:
        expected_keys.add('source_traceback')
    assert set(context) == expected_keys
    assert context['message'] == ('Exception in callback '
                                  + format_callback(fail, (1, 'x'), debug))
    assert type(context['exception']) is ValueError
    assert str(context['exception']) == 'callback failed'
    assert context['handle'] is h
    if debug:
        assert context['source_traceback'] is h._source_traceback
        assert context['source_traceback'][-1][0] == __file__


def test_timer_exception_goes_to_handler(loop):
    """An exception of a timer callback reaches the handler, with the
    TimerHandle as 'handle'."""
    contexts = collect_errors(loop)
    t = loop.call_later(0, fail)
    run_briefly(loop)
    assert [c['handle'] for _, c in contexts] == [t]
    assert contexts[0][1]['message'] == ('Exception in callback '
                                         + format_callback(fail, (), False))


def test_threadsafe_callback_exception_goes_to_handler(loop):
    """call_soon_threadsafe callbacks report errors the same way."""
    contexts = collect_errors(loop)
    h = loop.call_soon_threadsafe(fail)
    run_briefly(loop)
    assert [c['handle'] for _, c in contexts] == [h]


def test_exception_does_not_stop_the_loop(loop):
    """After a failing callback, the rest of the batch and later
    iterations run."""
    contexts = collect_errors(loop)
    out = []
    loop.call_soon(out.append, 1)
    loop.call_soon(fail)
    loop.call_soon(out.append, 2)
    loop.call_soon(lambda: loop.call_soon(out.append, 3))
    run_briefly(loop, 2)
    assert out == [1, 2, 3]
    assert len(contexts) == 1


def test_exception_has_its_traceback(loop):
    """The exception given to the handler carries the traceback of the
    callback's frame."""
    contexts = collect_errors(loop)
    loop.call_soon(fail)
    run_briefly(loop)
    exc = contexts[0][1]['exception']
    assert exc.__traceback__ is not None
    frames = []
    tb = exc.__traceback__
    while tb is not None:
        frames.append(tb.tb_frame.f_code.co_name)
        tb = tb.tb_next
    assert frames[-1] == 'fail'


def test_base_exception_subclass_goes_to_handler(loop):
    """BaseExceptions other than KeyboardInterrupt/SystemExit (e.g.
    GeneratorExit, CancelledError) go to the handler too."""
    contexts = collect_errors(loop)

    def raise_(exc):
        raise exc

    loop.call_soon(raise_, GeneratorExit())
    loop.call_soon(raise_, asyncio.CancelledError())
    run_briefly(loop)
    assert [type(c['exception']) for _, c in contexts] == \
        [GeneratorExit, asyncio.CancelledError]


# ---- the default handler and its log ------------------------------------

def _log_scenario(factory, debug, scenario):
    """Run a scenario on a new loop; return the normalised log messages of
    the 'asyncio' logger at ERROR and the records."""
    loop = factory()
    loop.set_debug(debug)
    loop.slow_callback_duration = 60
    handler = ListHandler()
    logger = logging.getLogger('asyncio')
    logger.addHandler(handler)
    try:
        scenario(loop)
    finally:
        logger.removeHandler(handler)
        loop.close()
    records = [r for r in handler.records if r.levelno >= logging.ERROR]
    return [normalise(r.getMessage()) for r in records], records


class ListHandler(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.records = []

    def emit(self, record):
        self.records.append(record)


def _scenario_callback(loop):
    loop.call_soon(fail, 1, 'two')
    run_briefly(loop)


def _scenario_timer(loop):
    loop.call_at(loop.time() - 1, fail)
    run_briefly(loop)


def _scenario_custom_context(loop):
    loop.call_exception_handler({'message': 'custom message', 'zeta': 1,
                                 'alpha': 'a', 'exception': KeyError('k')})


def _scenario_no_message(loop):
    loop.call_exception_handler({'extra': [1, 2]})


def _scenario_handle_traceback(loop):
    loop.call_soon(loop.call_exception_handler, {'message': 'from handle'})
    run_briefly(loop)


SCENARIOS = {
    'callback': _scenario_callback,
    'timer': _scenario_timer,
    'custom_context': _scenario_custom_context,
    'no_message': _scenario_no_message,
    'handle_traceback': _scenario_handle_traceback,
}


@pytest.mark.parametrize('debug', [False, True], ids=['nodebug', 'debug'])
@pytest.mark.parametrize('scenario', sorted(SCENARIOS))
def test_default_handler_logs_like_asyncio(scenario, debug):
    """The default exception handler logs to the 'asyncio' logger at
    ERROR the same text as the default loop (addresses aside), with the
    exception as exc_info."""
    # Both runs from the same line, so that the stacks in debug mode
    # agree.
    (expected, ref_records), (got, records) = [
        _log_scenario(factory, debug, SCENARIOS[scenario])
        for factory in (asyncio.new_event_loop, asyncloop.new_event_loop)]
    assert got == expected
    assert len(records) == 1
    assert records[0].name == 'asyncio'
    assert records[0].levelno == logging.ERROR
    ref_exc = ref_records[0].exc_info
    exc = records[0].exc_info
    if ref_exc:
        assert exc and type(exc[1]) is type(ref_exc[1])
    else:
        assert not exc


def test_default_handler_log_with_caplog(loop, caplog):
    """Seen through caplog: one ERROR record of logger 'asyncio', first
    line 'Exception in callback ...', then the handle."""
    with caplog.at_level(logging.ERROR, logger='asyncio'):
        h = loop.call_soon(fail)
        run_briefly(loop)
    records = [r for r in caplog.records if r.name == 'asyncio']
    assert len(records) == 1
    lines = records[0].getMessage().splitlines()
    assert lines[0] == 'Exception in callback ' + format_callback(
        fail, (), False)
    assert lines[1] == f'handle: {h!r}'
    assert records[0].exc_info[0] is ValueError


def test_debug_log_includes_object_created_at(loop, caplog):
    """In debug mode the log has 'source_traceback: Object created at
    (most recent call last):' followed by the frames, this file's last."""
    loop.set_debug(True)
    with caplog.at_level(logging.ERROR, logger='asyncio'):
        loop.call_soon(fail)
        line = sys._getframe().f_lineno - 1
        run_briefly(loop)
    message = [r for r in caplog.records if r.name == 'asyncio'
               and r.levelno == logging.ERROR][0].getMessage()
    assert 'source_traceback: Object created at (most recent call last):' \
        in message
    assert message.rstrip().endswith('loop.call_soon(fail)')
    assert f'File "{__file__}", line {line}' in message


def test_default_exception_handler_can_be_called_directly(loop, caplog):
    """loop.default_exception_handler(context) logs the context."""
    with caplog.at_level(logging.ERROR, logger='asyncio'):
        loop.default_exception_handler({'message': 'direct call'})
    assert [r.getMessage() for r in caplog.records
            if r.name == 'asyncio'] == ['direct call']


# ---- set_exception_handler ------------------------------------------------

def test_set_exception_handler_non_callable(loop):
    """A non-callable handler is a TypeError with asyncio's message; the
    handler in place is kept."""
    def handler(lp, context):
        pass

    loop.set_exception_handler(handler)
    with pytest.raises(TypeError) as info:
        loop.set_exception_handler(42)
    assert str(info.value) == \
        'A callable object or None is expected, got 42'
    assert loop.get_exception_handler() is handler


def test_get_and_reset_exception_handler(loop):
    """get_exception_handler returns what was set; None restores the
    default handler."""
    assert loop.get_exception_handler() is None

    def handler(lp, context):
        pass

    loop.set_exception_handler(handler)
    assert loop.get_exception_handler() is handler
    loop.set_exception_handler(None)
    assert loop.get_exception_handler() is None


def test_handler_that_raises_is_logged(loop, caplog):
    """A handler that raises: 'Unhandled error in exception handler' is
    logged with the handler's exception and the original context."""
    def handler(lp, context):
        raise RuntimeError('handler failed')

    loop.set_exception_handler(handler)
    with caplog.at_level(logging.ERROR, logger='asyncio'):
        loop.call_soon(fail)
        run_briefly(loop)
    records = [r for r in caplog.records if r.name == 'asyncio']
    assert len(records) == 1
    lines = records[0].getMessage().splitlines()
    assert lines[0] == 'Unhandled error in exception handler'
    assert lines[1].startswith("context: {'message': 'Exception in callback ")
    assert records[0].exc_info[0] is RuntimeError
    assert str(records[0].exc_info[1]) == 'handler failed'


def test_failing_default_handler_is_logged(loop_factory, caplog):
    """A default_exception_handler overridden to raise: 'Exception in
    default exception handler' is logged."""
    base = type(loop_factory())

    class Loop(base):
        def default_exception_handler(self, context):
            raise RuntimeError('default failed')

    loop = Loop()
    try:
        with caplog.at_level(logging.ERROR, logger='asyncio'):
            loop.call_soon(fail)
            run_briefly(loop)
    finally:
        loop.close()
    records = [r for r in caplog.records if r.name == 'asyncio']
    assert [r.getMessage() for r in records] == [
        'Exception in default exception handler']
    assert records[0].exc_info[0] is RuntimeError


def test_handler_raising_keyboard_interrupt_propagates(loop):
    """KeyboardInterrupt raised by the exception handler leaves run_forever;
    the loop is usable afterwards."""
    def handler(lp, context):
        raise KeyboardInterrupt

    loop.set_exception_handler(handler)
    loop.call_soon(fail)
    with pytest.raises(KeyboardInterrupt):
        run_briefly(loop)
    loop.set_exception_handler(None)
    out = []
    loop.call_soon(out.append, 'after')
    run_briefly(loop)
    assert out == ['after']


def test_error_while_formatting_the_message_propagates(loop):
    """A callback whose repr raises, and that raises itself: the error of
    formatting the message leaves run_forever, as with asyncio (no crash),
    and the loop can run again."""
    class Nameless:
        __qualname__ = ''
        __name__ = ''

        def __call__(self):
            raise ValueError('in callback')

        def __repr__(self):
            raise ZeroDivisionError('in repr')

    collect_errors(loop)
    out = []
    loop.call_soon(Nameless())
    loop.call_soon(out.append, 'next')
    with pytest.raises(ZeroDivisionError):
        run_briefly(loop)
    run_briefly(loop)
    assert out == ['next']


# ---- KeyboardInterrupt and SystemExit -------------------------------------

@pytest.mark.parametrize('exc_type', [KeyboardInterrupt, SystemExit])
def test_base_exception_in_callback_leaves_run_forever(loop, exc_type):
    """KeyboardInterrupt/SystemExit in a callback leave run_forever at once;
    the rest of the batch runs, in order, at the next run."""
    out = []

    def boom():
        out.append('boom')
        raise exc_type()

    loop.call_soon(out.append, 1)
    loop.call_soon(boom)
    loop.call_soon(out.append, 2)
    loop.call_soon(out.append, 3)
    with pytest.raises(exc_type):
        loop.run_forever()
    assert out == [1, 'boom']
    assert not loop.is_running()
    with pytest.raises(RuntimeError):
        asyncio.get_running_loop()
    run_briefly(loop)
    assert out == [1, 'boom', 2, 3]


@pytest.mark.parametrize('exc_type', [KeyboardInterrupt, SystemExit])
def test_base_exception_in_timer_leaves_run_forever(loop, exc_type):
    """The same from a timer callback: the other due timers run next
    time."""
    out = []
    when = loop.time()

    def boom():
        raise exc_type()

    loop.call_at(when - 0.3, out.append, 't1')
    loop.call_at(when - 0.2, boom)
    loop.call_at(when - 0.1, out.append, 't2')
    with pytest.raises(exc_type):
        loop.run_forever()
    assert out == ['t1']
    run_briefly(loop)
    assert out == ['t1', 't2']


@pytest.mark.parametrize('exc_type', [KeyboardInterrupt, SystemExit])
def test_base_exception_leaves_run_until_complete(loop, exc_type):
    """run_until_complete: the exception propagates; the future is not
    done, and a later run can complete it."""
    fut = loop.create_future()

    def boom():
        raise exc_type()

    loop.call_soon(boom)
    loop.call_soon(fut.set_result, 'done')
    with pytest.raises(exc_type):
        loop.run_until_complete(fut)
    assert not fut.done()
    assert loop.run_until_complete(fut) == 'done'


def test_stop_request_survives_keyboard_interrupt(loop):
    """stop() called before the KeyboardInterrupt in the same iteration is
    forgotten, as asyncio's run_forever resets it."""
    out = []

    def boom():
        raise KeyboardInterrupt

    loop.call_soon(loop.stop)
    loop.call_soon(boom)
    with pytest.raises(KeyboardInterrupt):
        loop.run_forever()
    loop.call_soon(out.append, 'a')
    loop.call_soon(lambda: loop.call_soon(out.append, 'second iteration'))
    loop.call_soon(lambda: loop.call_soon(loop.stop))
    loop.run_forever()
    assert out == ['a', 'second iteration']


@pytest.mark.parametrize('exc_type', [KeyboardInterrupt, SystemExit])
def test_base_exception_inside_task(loop, exc_type):
    """A task raising KeyboardInterrupt/SystemExit: run_until_complete
    raises it; the task is done with that exception; the loop works
    afterwards."""
    async def main():
        await asyncio.sleep(0)
        raise exc_type()

    task = loop.create_task(main())
    with pytest.raises(exc_type):
        loop.run_until_complete(task)
    assert task.done()
    assert type(task.exception()) is exc_type

    async def again():
        await asyncio.sleep(0)
        return 'again'

    assert loop.run_until_complete(again()) == 'again'


def test_keyboard_interrupt_in_task_wrapped_coroutine(loop):
    """run_until_complete(coro) whose coroutine raises KeyboardInterrupt
    raises it and logs nothing about the task."""
    async def main():
        raise KeyboardInterrupt

    contexts = collect_errors(loop)
    with pytest.raises(KeyboardInterrupt):
        loop.run_until_complete(main())
    import gc
    gc.collect()
    run_briefly(loop)
    assert contexts == []


def test_keyboard_interrupt_while_other_task_pending(loop):
    """A KeyboardInterrupt in one task leaves the others pending; they
    can still finish."""
    async def victim():
        await asyncio.sleep(0)
        raise KeyboardInterrupt

    async def other():
        for _ in range(3):
            await asyncio.sleep(0)
        return 'other done'

    t_other = loop.create_task(other())
    with pytest.raises(KeyboardInterrupt):
        loop.run_until_complete(victim())
    assert loop.run_until_complete(t_other) == 'other done'


def test_sigint_while_waiting_raises_keyboard_interrupt(loop_factory):
    """A real SIGINT while the loop waits for a far timer raises
    KeyboardInterrupt from run_forever at once, and the loop still runs
    afterwards (in a subprocess, to keep the signal away from pytest)."""
    kind = 'asyncloop' if loop_factory is asyncloop.new_event_loop \
        else 'asyncio'
    script = textwrap.dedent(f'''
        import asyncio, os, signal, threading, time
        import asyncloop
        loop = {'asyncloop.new_event_loop' if kind == 'asyncloop'
                else 'asyncio.new_event_loop'}()
        loop.call_later(30, loop.stop)
        def kill():
            time.sleep(0.2)
            os.kill(os.getpid(), signal.SIGINT)
        threading.Thread(target=kill).start()
        t0 = time.monotonic()
        try:
            loop.run_forever()
        except KeyboardInterrupt:
            print('interrupted', time.monotonic() - t0 < 10)
        loop.call_soon(loop.stop)
        loop.run_forever()
        print('ran again')
        loop.close()
    ''')
    proc = subprocess.run([sys.executable, '-c', script], capture_output=True,
                          text=True, timeout=60, cwd=_project_root())
    assert proc.stdout.split('\n')[:2] == ['interrupted True', 'ran again'], \
        proc.stderr


def _project_root():
    import os
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ---- the context the handler runs in (3.12+) -----------------------------

@pytest.mark.skipif(not PY312, reason='new in 3.12')
def test_handler_runs_in_context_of_the_handle(loop):
    """3.12+: the custom handler runs in the context of the failing
    handle."""
    seen = []
    loop.set_exception_handler(lambda lp, c: seen.append(var.get()))
    ctx = contextvars.copy_context()
    ctx.run(var.set, 'handle context')
    loop.call_soon(fail, context=ctx)
    loop.call_later(0, fail, context=ctx)
    run_briefly(loop)
    assert seen == ['handle context', 'handle context']


@pytest.mark.skipif(not PY312, reason='new in 3.12')
def test_handler_runs_in_context_of_the_task(loop):
    """3.12+: with a 'task' key, the handler runs in the task's context."""
    seen = []
    loop.set_exception_handler(lambda lp, c: seen.append(var.get()))
    ctx = contextvars.copy_context()
    ctx.run(var.set, 'task context')

    async def main():
        await asyncio.sleep(0)

    task = loop.create_task(main(), context=ctx)
    loop.call_exception_handler({'message': 'm', 'task': task})
    loop.run_until_complete(task)
    assert seen == ['task context']


@pytest.mark.skipif(PY312, reason='3.11 behaviour')
def test_handler_runs_in_caller_context_before_312(loop):
    """Before 3.12 the handler runs in the context of whoever calls it:
    for a failing callback, outside the callback's context."""
    seen = []
    loop.set_exception_handler(lambda lp, c: seen.append(var.get()))
    ctx = contextvars.copy_context()
    ctx.run(var.set, 'handle context')
    loop.call_soon(fail, context=ctx)
    run_briefly(loop)
    assert seen == ['unset']
