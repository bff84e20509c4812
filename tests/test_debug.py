"""Debug mode: set_debug, PYTHONASYNCIODEBUG, slow callback warnings,
thread checks, source tracebacks and coroutine origin tracking."""
import asyncio
import logging
import os
import re
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import asyncloop

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# asyncio.constants.DEBUG_STACK_DEPTH
DEBUG_STACK_DEPTH = 10


def run_briefly(loop, iterations=1):
    for _ in range(iterations):
        loop.call_soon(loop.stop)
        loop.run_forever()


def loop_kind(loop_factory):
    return 'asyncloop' if loop_factory is asyncloop.new_event_loop \
        else 'asyncio'


def run_script(loop_factory, body, env=None, args=()):
    """Run body in a fresh interpreter where `make_loop()` makes a loop of
    the kind under test; return its stripped stdout."""
    script = textwrap.dedent(f'''
        import asyncio, sys
        import asyncloop
        make_loop = {loop_kind(loop_factory)
                     .replace('asyncloop', 'asyncloop.new_event_loop')
                     .replace('asyncio', 'asyncio.new_event_loop')}
    ''') + textwrap.dedent(body)
    full_env = dict(os.environ)
    full_env.pop('PYTHONASYNCIODEBUG', None)
    full_env.pop('PYTHONDEVMODE', None)
    full_env.update(env or {})
    proc = subprocess.run([sys.executable, *args, '-c', script],
                          capture_output=True, text=True, timeout=60,
                          cwd=ROOT, env=full_env)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


# ---- the debug flag -------------------------------------------------------

def test_set_debug_and_get_debug(loop):
    """get_debug reflects set_debug; values are taken for their truth."""
    loop.set_debug(True)
    assert loop.get_debug() is True
    loop.set_debug(False)
    assert loop.get_debug() is False
    loop.set_debug(1)
    assert loop.get_debug()
    loop.set_debug(0)
    assert not loop.get_debug()


def test_debug_default_follows_environment(loop):
    """A new loop starts in debug mode exactly when asyncio's rule says
    so (dev mode or PYTHONASYNCIODEBUG)."""
    expected = bool(sys.flags.dev_mode or (
        not sys.flags.ignore_environment
        and os.environ.get('PYTHONASYNCIODEBUG')))
    assert loop.get_debug() == expected


@pytest.mark.parametrize('env,args', [
    ({'PYTHONASYNCIODEBUG': '1'}, ()),
    ({}, ('-X', 'dev')),
    ({}, ()),
    ({'PYTHONASYNCIODEBUG': '1'}, ('-E',)),
], ids=['env', 'devmode', 'none', 'ignore_environment'])
def test_debug_mode_from_environment(loop_factory, env, args):
    """PYTHONASYNCIODEBUG=1 or -X dev start the loop in debug mode; -E
    ignores the variable."""
    expected = bool(args == ('-X', 'dev') or (env and '-E' not in args))
    out = run_script(loop_factory, '''
        loop = make_loop()
        print(loop.get_debug())
        loop.close()
    ''', env=env, args=args)
    assert out == str(expected)


def test_slow_callback_duration_default(loop):
    """slow_callback_duration is 0.1 s and can be changed."""
    assert loop.slow_callback_duration == 0.1
    loop.slow_callback_duration = 0.5
    assert loop.slow_callback_duration == 0.5


# ---- slow callbacks ---------------------------------------------------------

def slow():
    time.sleep(0.05)


def test_slow_callback_is_logged(loop, caplog):
    """In debug mode a callback that takes longer than
    slow_callback_duration logs 'Executing <Handle ...> took X seconds' at
    WARNING on logger 'asyncio'."""
    loop.set_debug(True)
    loop.slow_callback_duration = 0.01
    with caplog.at_level(logging.WARNING, logger='asyncio'):
        h = loop.call_soon(slow)
        expected_repr = repr(h)
        run_briefly(loop)
    records = [r for r in caplog.records if r.name == 'asyncio'
               and r.getMessage().startswith('Executing')]
    assert len(records) == 1
    assert records[0].levelno == logging.WARNING
    message = records[0].getMessage()
    m = re.fullmatch(r'Executing (<.*>) took (\d+\.\d{3}) seconds', message)
    assert m, message
    assert m.group(1) == expected_repr
    assert float(m.group(2)) >= 0.049


def test_slow_timer_callback_is_logged(loop, caplog):
    """The same for a timer: the TimerHandle's repr is in the message."""
    loop.set_debug(True)
    loop.slow_callback_duration = 0.01
    with caplog.at_level(logging.WARNING, logger='asyncio'):
        h = loop.call_later(0, slow)
        expected_repr = repr(h)
        run_briefly(loop)
    messages = [r.getMessage() for r in caplog.records
                if r.name == 'asyncio']
    assert len(messages) == 1
    assert messages[0].startswith(f'Executing {expected_repr} took ')


def test_slow_task_step_is_logged_with_the_task(loop, caplog):
    """A slow task step is reported with the task's repr."""
    loop.set_debug(True)
    loop.slow_callback_duration = 0.01

    async def busy():
        time.sleep(0.05)

    with caplog.at_level(logging.WARNING, logger='asyncio'):
        task = loop.create_task(busy(), name='busy-task')
        loop.run_until_complete(task)
    messages = [r.getMessage() for r in caplog.records
                if r.name == 'asyncio' and 'Executing' in r.getMessage()]
    assert len(messages) == 1
    assert re.fullmatch(r"Executing <Task (pending|finished) "
                        r"name='busy-task' .*> took \d+\.\d{3} seconds",
                        messages[0], re.S), messages[0]


def test_fast_callbacks_and_no_debug_are_not_logged(loop, caplog):
    """Nothing is logged below the threshold, nor outside debug mode."""
    loop.slow_callback_duration = 0.01
    with caplog.at_level(logging.WARNING, logger='asyncio'):
        loop.call_soon(slow)        # not in debug mode
        run_briefly(loop)
        loop.set_debug(True)
        loop.slow_callback_duration = 10
        loop.call_soon(slow)        # under the threshold
        run_briefly(loop)
    assert [r for r in caplog.records if r.name == 'asyncio'] == []


def test_slow_cancelled_self_is_logged_with_saved_repr(loop, caplog):
    """A slow callback that cancels its own handle is logged with the repr
    kept at cancel time, which still names the callback."""
    loop.set_debug(True)
    loop.slow_callback_duration = 0.01
    box = []

    def cb():
        box[0].cancel()
        time.sleep(0.05)

    with caplog.at_level(logging.WARNING, logger='asyncio'):
        box.append(loop.call_soon(cb))
        run_briefly(loop)
    messages = [r.getMessage() for r in caplog.records
                if r.name == 'asyncio']
    assert len(messages) == 1
    assert messages[0].startswith(f'Executing {box[0]!r} took ')
    assert 'cb()' in messages[0]


def test_current_handle_in_debug_mode(loop):
    """In debug mode loop._current_handle is the running handle (the
    default exception handler reads it); None outside callbacks."""
    loop.set_debug(True)
    seen = []
    h = loop.call_soon(lambda: seen.append(loop._current_handle))
    t = loop.call_later(0, lambda: seen.append(loop._current_handle))
    run_briefly(loop)
    assert seen == [h, t]
    assert seen[0] is h and seen[1] is t
    assert loop._current_handle is None


def test_close_is_logged_in_debug_mode(loop, caplog):
    """close() in debug mode logs 'Close <loop repr>' at DEBUG."""
    loop.set_debug(True)
    with caplog.at_level(logging.DEBUG, logger='asyncio'):
        loop.close()
    # The message is formatted lazily, so the repr is the closed loop's.
    assert f'Close {loop!r}' in [r.getMessage() for r in caplog.records
                                 if r.name == 'asyncio']


def test_loop_repr(loop):
    """repr(loop) has asyncio's shape."""
    assert re.fullmatch(r'<\w+ running=False closed=False debug=False>',
                        repr(loop))
    loop.set_debug(True)
    loop.close()
    assert repr(loop).endswith(' running=False closed=True debug=True>')


# ---- thread checks --------------------------------------------------------

def _foreign_thread_calls(loop, debug):
    """Run the loop in the main thread; from another thread, try the
    non-thread-safe methods; return {name: error text or None}."""
    loop.set_debug(debug)
    results = {}
    done = threading.Event()

    async def coro():
        pass

    def worker():
        calls = {
            'call_soon': lambda: loop.call_soon(lambda: None),
            'call_later': lambda: loop.call_later(10, lambda: None),
            'call_at': lambda: loop.call_at(loop.time() + 10, lambda: None),
            'call_soon_threadsafe': lambda: loop.call_soon_threadsafe(
                lambda: None),
        }
        for name, call in calls.items():
            try:
                h = call()
            except RuntimeError as exc:
                results[name] = str(exc)
            else:
                results[name] = None
                h.cancel()
        c = coro()
        try:
            loop.create_task(c).cancel()
        except RuntimeError as exc:
            results['create_task'] = str(exc)
        else:
            results['create_task'] = None
        finally:
            c.close()
        loop.call_soon_threadsafe(done.set)

    async def main():
        threading.Thread(target=worker).start()
        while not done.is_set():
            await asyncio.sleep(0.01)

    loop.run_until_complete(asyncio.wait_for(main(), 30))
    return results


def test_foreign_thread_call_soon_in_debug_raises(loop):
    """In debug mode, call_soon/call_later/call_at/create_task from another
    thread than the running loop's raise RuntimeError; call_soon_threadsafe
    does not."""
    msg = ('Non-thread-safe operation invoked on an event loop other than '
           'the current one')
    results = _foreign_thread_calls(loop, debug=True)
    assert results == {'call_soon': msg, 'call_later': msg, 'call_at': msg,
                       'call_soon_threadsafe': None, 'create_task': msg}


def test_foreign_thread_calls_without_debug_do_not_raise(loop):
    """Outside debug mode no thread check is made."""
    results = _foreign_thread_calls(loop, debug=False)
    assert set(results.values()) == {None}


def test_thread_check_only_while_running(loop):
    """A loop that is not running may be used from any thread, even in
    debug mode."""
    loop.set_debug(True)
    errors = []

    def worker():
        try:
            loop.call_soon(lambda: None).cancel()
            loop.call_later(1, lambda: None).cancel()
        except RuntimeError as exc:
            errors.append(exc)

    th = threading.Thread(target=worker)
    th.start()
    th.join()
    assert errors == []


# ---- source tracebacks ------------------------------------------------------

def test_handles_have_source_traceback_in_debug(loop):
    """In debug mode every handle records where it was created: the last
    frame is the caller's line."""
    loop.set_debug(True)
    line = sys._getframe().f_lineno + 2
    handles = {
        'call_soon': loop.call_soon(lambda: None),
        'call_later': loop.call_later(1, lambda: None),
        'call_at': loop.call_at(1, lambda: None),
        'call_soon_threadsafe': loop.call_soon_threadsafe(lambda: None),
    }
    for name, h in handles.items():
        frame = h._source_traceback[-1]
        assert (frame.filename, frame.name) == \
            (__file__, 'test_handles_have_source_traceback_in_debug'), name
        assert line <= frame.lineno <= line + 3, name
        h.cancel()


def test_no_source_traceback_without_debug(loop):
    """Outside debug mode handles have no source traceback."""
    h = loop.call_soon(lambda: None)
    t = loop.call_later(1, lambda: None)
    assert h._source_traceback is None
    assert t._source_traceback is None
    h.cancel()
    t.cancel()


def _nested(depth, fn):
    if depth:
        return _nested(depth - 1, fn)
    return fn()


SCHEDULERS = {
    'call_soon': lambda lp: lp.call_soon(print),
    'call_later': lambda lp: lp.call_later(1, print),
    'call_at': lambda lp: lp.call_at(1, print),
    'call_soon_threadsafe': lambda lp: lp.call_soon_threadsafe(print),
}


@pytest.mark.parametrize('method', sorted(SCHEDULERS))
def test_source_traceback_frames_match_asyncio(aloop, method):
    """From a deep stack, the frames recorded for a handle are those the
    default loop records: the same number and the same frames."""
    ref = asyncio.new_event_loop()
    try:
        ref.set_debug(True)
        aloop.set_debug(True)
        stacks = [
            [(f.filename, f.lineno, f.name) for f in _nested(
                20, lambda: SCHEDULERS[method](lp))._source_traceback]
            for lp in (ref, aloop)]
    finally:
        ref.close()
    expected, got = stacks
    assert got == expected


def test_future_and_task_source_traceback_in_debug(loop):
    """Futures and tasks created by the loop in debug mode record their
    origin too."""
    loop.set_debug(True)

    async def coro():
        pass

    fut = loop.create_future()
    task = loop.create_task(coro())
    assert __file__ in [f.filename for f in fut._source_traceback]
    assert __file__ in [f.filename for f in task._source_traceback]
    fut.cancel()
    loop.run_until_complete(task)


# ---- coroutine origin tracking ---------------------------------------------

def test_coroutine_origin_tracking_while_running_in_debug(loop):
    """While a debug loop runs, coroutine origin tracking is on at
    asyncio's depth; it is restored afterwards; without debug it is not
    touched."""
    before = sys.get_coroutine_origin_tracking_depth()
    seen = []
    loop.call_soon(lambda: seen.append(
        sys.get_coroutine_origin_tracking_depth()))
    run_briefly(loop)
    loop.set_debug(True)
    loop.call_soon(lambda: seen.append(
        sys.get_coroutine_origin_tracking_depth()))
    run_briefly(loop)
    assert seen == [before, DEBUG_STACK_DEPTH]
    assert sys.get_coroutine_origin_tracking_depth() == before


def test_set_debug_while_running_enables_tracking(loop):
    """set_debug(True) while running switches origin tracking on from the
    next iteration; set_debug(False) switches it off."""
    seen = []

    def record():
        seen.append(sys.get_coroutine_origin_tracking_depth())

    async def main():
        record()
        loop.set_debug(True)
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        record()
        loop.set_debug(False)
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        record()

    before = sys.get_coroutine_origin_tracking_depth()
    loop.run_until_complete(main())
    assert seen == [before, DEBUG_STACK_DEPTH, before]
    assert sys.get_coroutine_origin_tracking_depth() == before


def test_coroutine_origin_recorded_in_debug(loop):
    """With tracking on, a coroutine created inside the loop records its
    origin (cr_origin)."""
    loop.set_debug(True)

    async def inner():
        pass

    async def main():
        coro = inner()
        origin = coro.cr_origin
        await coro
        return origin

    origin = loop.run_until_complete(main())
    assert origin
    assert origin[0][0] == __file__


def test_origin_tracking_restored_after_keyboard_interrupt(loop):
    """An exception leaving run_forever still restores origin
    tracking."""
    loop.set_debug(True)
    before = sys.get_coroutine_origin_tracking_depth()

    def boom():
        raise KeyboardInterrupt

    loop.call_soon(boom)
    with pytest.raises(KeyboardInterrupt):
        loop.run_forever()
    assert sys.get_coroutine_origin_tracking_depth() == before


def test_debug_mode_in_subprocess_reports_slow_callback(loop_factory):
    """End to end: PYTHONASYNCIODEBUG=1 makes the loop log slow callbacks
    through the logging system."""
    out = run_script(loop_factory, '''
        import logging, time
        logging.basicConfig(level=logging.WARNING, stream=sys.stdout,
                            format='%(name)s:%(levelname)s:%(message)s')
        loop = make_loop()
        loop.slow_callback_duration = 0.01
        def slow():
            time.sleep(0.05)
        loop.call_soon(slow)
        loop.call_soon(loop.stop)
        loop.run_forever()
        loop.close()
    ''', env={'PYTHONASYNCIODEBUG': '1'})
    assert re.fullmatch(r'asyncio:WARNING:Executing <Handle slow\(\) at '
                        r'<string>:\d+ created at <string>:\d+> took '
                        r'\d\.\d{3} seconds', out), out
