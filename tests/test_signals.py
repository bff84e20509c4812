"""Unix signal handlers: loop.add_signal_handler / remove_signal_handler.

The reference is asyncio.unix_events._UnixSelectorEventLoop: every test runs
on the default loop and on asyncloop and expects the same behaviour. Signals
are real ones, sent with os.kill() to this process.
"""
import asyncio
import contextvars
import os
import pathlib
import queue
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

# Signals the tests install handlers for; their original dispositions are
# put back after each test.
USED_SIGNALS = (signal.SIGUSR1, signal.SIGUSR2, signal.SIGHUP,
                signal.SIGWINCH, signal.SIGURG, signal.SIGINT,
                signal.SIGRTMIN + 1, signal.SIGRTMIN + 2)

# Upper bound for anything that should happen "promptly": far above what
# a loaded machine needs, far below the delays used to detect a hang.
PROMPT = 10.0


@pytest.fixture(autouse=True)
def restore_signals():
    saved = {sig: signal.getsignal(sig) for sig in USED_SIGNALS}
    wakeup = signal.set_wakeup_fd(-1)
    signal.set_wakeup_fd(wakeup)
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)
    signal.set_wakeup_fd(wakeup)


def run_until(loop, predicate, timeout=PROMPT):
    """Run the loop until predicate() is true; fail after timeout seconds,
    or as soon as the loop reports an unexpected error to its exception
    handler (when the test did not set one of its own)."""
    deadline = time.monotonic() + timeout
    errors = []
    own_handler = loop.get_exception_handler() is None
    if own_handler:
        loop.set_exception_handler(lambda lp, ctx: errors.append(ctx))

    async def wait():
        while not predicate():
            if errors:
                ctx = errors[0]
                raise AssertionError(
                    f"loop reported: {ctx.get('message')!r}: "
                    f"{ctx.get('exception')!r}")
            if time.monotonic() > deadline:
                raise AssertionError('condition not reached in time')
            await asyncio.sleep(0.005)

    try:
        loop.run_until_complete(wait())
    finally:
        if own_handler:
            loop.set_exception_handler(None)


def kill_self(sig):
    os.kill(os.getpid(), sig)


# ---- delivery ----------------------------------------------------------------

def test_handler_called_with_args(loop):
    """The callback runs in the loop with the positional args given."""
    calls = []
    loop.add_signal_handler(signal.SIGUSR1, calls.append, 'usr1')
    loop.call_soon(kill_self, signal.SIGUSR1)
    run_until(loop, lambda: calls)
    assert calls == ['usr1']


def test_handler_runs_in_loop_thread_and_as_callback(loop):
    """The handler is a loop callback: the loop is running, in its thread."""
    seen = []

    def handler(a, b):
        seen.append((a, b, asyncio.get_running_loop() is loop,
                     threading.current_thread() is threading.main_thread()))

    loop.add_signal_handler(signal.SIGUSR2, handler, 1, 2)
    loop.call_soon(kill_self, signal.SIGUSR2)
    run_until(loop, lambda: seen)
    assert seen == [(1, 2, True, True)]


def test_handler_called_again_for_each_signal(loop):
    """The handler stays installed: each signal calls it once more."""
    calls = []
    loop.add_signal_handler(signal.SIGUSR1, lambda: calls.append(1))
    for n in range(1, 6):
        loop.call_soon(kill_self, signal.SIGUSR1)
        run_until(loop, lambda: len(calls) >= n)
    assert len(calls) == 5


def test_handler_context_is_copied_at_add_time(loop):
    """As asyncio.Handle(context=None): the callback runs in a copy of the
    context current when add_signal_handler() was called."""
    var = contextvars.ContextVar('var', default='unset')
    seen = []
    var.set('at-add')
    loop.add_signal_handler(signal.SIGUSR1, lambda: seen.append(var.get()))
    var.set('later')
    loop.call_soon(kill_self, signal.SIGUSR1)
    run_until(loop, lambda: seen)
    assert seen == ['at-add']


def test_signal_before_run_is_not_lost(loop):
    """A signal that arrives after add_signal_handler() but before the loop
    runs is delivered once the loop runs."""
    calls = []
    loop.add_signal_handler(signal.SIGUSR1, calls.append, 'early')
    kill_self(signal.SIGUSR1)
    assert calls == []
    run_until(loop, lambda: calls)
    assert calls == ['early']


def test_signal_between_runs_is_not_lost(loop):
    """A signal that arrives while the loop is stopped (between two runs)
    is delivered by the next run."""
    calls = []
    loop.add_signal_handler(signal.SIGUSR1, calls.append, 'x')
    loop.run_until_complete(asyncio.sleep(0))
    kill_self(signal.SIGUSR1)
    run_until(loop, lambda: calls)
    assert calls == ['x']


def run_forever_guarded(loop, timeout=PROMPT):
    """loop.run_forever(), stopped from another thread after timeout seconds
    or by the first error the loop reports; returns the errors reported."""
    errors = []

    def on_error(lp, ctx):
        errors.append(ctx)
        lp.stop()

    loop.set_exception_handler(on_error)
    watchdog = threading.Timer(timeout, loop.call_soon_threadsafe,
                               (loop.stop,))
    watchdog.start()
    try:
        loop.run_forever()
    finally:
        watchdog.cancel()
        loop.set_exception_handler(None)
    return [(ctx.get('message'), ctx.get('exception')) for ctx in errors]


def test_signal_wakes_loop_sleeping_in_long_timer(loop):
    """A signal sent from another thread wakes a loop that waits for a
    timer far in the future; the handler runs promptly."""
    calls = []

    def handler():
        calls.append(time.monotonic())
        loop.stop()

    loop.add_signal_handler(signal.SIGUSR1, handler)
    far = loop.call_later(60, loop.stop)
    sender = threading.Timer(0.1, kill_self, (signal.SIGUSR1,))
    t0 = time.monotonic()
    sender.start()
    try:
        assert run_forever_guarded(loop) == []
    finally:
        sender.join()
        far.cancel()
    assert len(calls) == 1
    assert calls[0] - t0 < PROMPT


def test_signal_wakes_idle_loop(loop):
    """A loop with nothing scheduled at all is woken by a signal."""
    calls = []

    def handler():
        calls.append(time.monotonic())
        loop.stop()

    loop.add_signal_handler(signal.SIGUSR2, handler)
    sender = threading.Timer(0.1, kill_self, (signal.SIGUSR2,))
    t0 = time.monotonic()
    sender.start()
    try:
        assert run_forever_guarded(loop) == []
    finally:
        sender.join()
    assert len(calls) == 1
    assert calls[0] - t0 < PROMPT


def test_burst_of_realtime_signals_from_thread(loop):
    """Real-time signals are queued by the kernel, not merged: each one of
    a burst sent from another thread calls the handler once."""
    sig = signal.SIGRTMIN + 1
    count = 100
    calls = []
    loop.add_signal_handler(sig, calls.append, sig)

    def burst():
        for _ in range(count):
            kill_self(sig)

    sender = threading.Thread(target=burst)
    loop.call_soon(sender.start)
    run_until(loop, lambda: len(calls) >= count)
    sender.join()
    loop.run_until_complete(asyncio.sleep(0.05))
    assert calls == [sig] * count


def test_burst_of_standard_signals(loop):
    """A burst of one standard signal may be merged by the kernel: the
    handler runs at least once and at most once per signal sent, and the
    loop keeps working afterwards."""
    count = 50
    calls = []
    loop.add_signal_handler(signal.SIGUSR1, calls.append, 1)

    def burst():
        for _ in range(count):
            kill_self(signal.SIGUSR1)

    sender = threading.Thread(target=burst)
    loop.call_soon(sender.start)
    run_until(loop, lambda: calls)
    sender.join()
    loop.run_until_complete(asyncio.sleep(0.05))
    assert 1 <= len(calls) <= count
    assert loop.run_until_complete(asyncio.sleep(0.001, 'alive')) == 'alive'


def test_burst_of_different_signals(loop):
    """Several different signals arriving together each reach their own
    handler."""
    sigs = [signal.SIGUSR1, signal.SIGUSR2, signal.SIGHUP, signal.SIGWINCH,
            signal.SIGURG, signal.SIGRTMIN + 2]
    seen = set()
    for sig in sigs:
        loop.add_signal_handler(sig, seen.add, sig)

    def burst():
        for sig in sigs:
            kill_self(sig)

    loop.call_soon(burst)
    run_until(loop, lambda: seen == set(sigs))
    assert seen == set(sigs)


def test_handler_exception_goes_to_exception_handler(loop):
    """An exception in a signal handler is reported to the loop's exception
    handler, as for any callback, and the loop keeps running."""
    errors = []
    loop.set_exception_handler(lambda lp, ctx: errors.append(ctx))

    def handler():
        raise ZeroDivisionError('in handler')

    loop.add_signal_handler(signal.SIGUSR1, handler)
    loop.call_soon(kill_self, signal.SIGUSR1)
    run_until(loop, lambda: errors)
    assert isinstance(errors[0]['exception'], ZeroDivisionError)
    assert errors[0]['message'].startswith('Exception in callback')
    assert 'handle' in errors[0]


def test_handler_can_remove_itself(loop):
    """A handler that removes itself gets True and is not called again."""
    calls = []

    def handler():
        calls.append(loop.remove_signal_handler(signal.SIGUSR1))

    loop.add_signal_handler(signal.SIGUSR1, handler)
    loop.call_soon(kill_self, signal.SIGUSR1)
    run_until(loop, lambda: calls)
    assert calls == [True]
    assert signal.getsignal(signal.SIGUSR1) is signal.SIG_DFL


# ---- replacing and removing ----------------------------------------------

def test_handler_replaced(loop):
    """A second add_signal_handler() for the same signal replaces the
    first handler."""
    calls = []
    loop.add_signal_handler(signal.SIGUSR1, calls.append, 'first')
    loop.add_signal_handler(signal.SIGUSR1, calls.append, 'second')
    loop.call_soon(kill_self, signal.SIGUSR1)
    run_until(loop, lambda: calls)
    loop.run_until_complete(asyncio.sleep(0.01))
    assert calls == ['second']


def test_remove_returns_true_then_false(loop):
    """remove_signal_handler() is True when a handler was installed, False
    when none is (never added, or already removed)."""
    assert loop.remove_signal_handler(signal.SIGUSR2) is False
    loop.add_signal_handler(signal.SIGUSR2, lambda: None)
    assert loop.remove_signal_handler(signal.SIGUSR2) is True
    assert loop.remove_signal_handler(signal.SIGUSR2) is False


def test_remove_restores_default_disposition(loop):
    """After removal the signal's handler is SIG_DFL; for SIGINT it is
    Python's default_int_handler."""
    loop.add_signal_handler(signal.SIGUSR1, lambda: None)
    assert signal.getsignal(signal.SIGUSR1) not in (signal.SIG_DFL,
                                                     signal.SIG_IGN)
    loop.remove_signal_handler(signal.SIGUSR1)
    assert signal.getsignal(signal.SIGUSR1) is signal.SIG_DFL

    loop.add_signal_handler(signal.SIGINT, lambda: None)
    assert signal.getsignal(signal.SIGINT) is not signal.default_int_handler
    loop.remove_signal_handler(signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_removed_handler_not_called(loop):
    """A handler removed before its signal arrives is not called; another
    signal's handler still is."""
    calls = []
    loop.add_signal_handler(signal.SIGUSR1, calls.append, 'usr1')
    loop.add_signal_handler(signal.SIGUSR2, calls.append, 'usr2')
    loop.remove_signal_handler(signal.SIGUSR1)
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)  # would kill us otherwise
    loop.call_soon(kill_self, signal.SIGUSR1)
    loop.call_soon(kill_self, signal.SIGUSR2)
    run_until(loop, lambda: calls)
    loop.run_until_complete(asyncio.sleep(0.01))
    assert calls == ['usr2']


def test_close_removes_handlers(new_loop):
    """close() removes every handler the loop installed: SIG_DFL again, and
    default_int_handler for SIGINT; the wakeup fd is released."""
    loop = new_loop()
    loop.add_signal_handler(signal.SIGUSR1, lambda: None)
    loop.add_signal_handler(signal.SIGHUP, lambda: None)
    loop.add_signal_handler(signal.SIGINT, lambda: None)
    loop.run_until_complete(asyncio.sleep(0))
    loop.close()
    assert signal.getsignal(signal.SIGUSR1) is signal.SIG_DFL
    assert signal.getsignal(signal.SIGHUP) is signal.SIG_DFL
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert signal.set_wakeup_fd(-1) == -1
    assert loop.remove_signal_handler(signal.SIGUSR1) is False


def test_wakeup_fd_released_after_last_removal(loop):
    """Removing the last handler gives the wakeup fd back (-1)."""
    loop.add_signal_handler(signal.SIGUSR1, lambda: None)
    loop.add_signal_handler(signal.SIGUSR2, lambda: None)
    loop.remove_signal_handler(signal.SIGUSR1)
    fd = signal.set_wakeup_fd(-1)
    signal.set_wakeup_fd(fd)
    assert fd != -1
    loop.remove_signal_handler(signal.SIGUSR2)
    assert signal.set_wakeup_fd(-1) == -1


def test_wakeup_fd_released_when_removed_while_running(loop):
    """A handler removed from inside the running loop: once the loop has
    stopped, no wakeup fd is left behind."""
    async def main():
        loop.add_signal_handler(signal.SIGUSR1, lambda: None)
        await asyncio.sleep(0)
        assert loop.remove_signal_handler(signal.SIGUSR1) is True

    loop.run_until_complete(main())
    assert signal.set_wakeup_fd(-1) == -1


def test_wakeup_fd_set_by_user_code_inside_loop_is_kept(loop):
    """A loop without signal handlers does not own the wakeup fd: one set by
    code running in the loop is still in place after run_until_complete()
    returns, as with the default loop."""
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    try:
        async def main():
            signal.set_wakeup_fd(b.fileno())

        loop.run_until_complete(main())
        assert signal.set_wakeup_fd(-1) == b.fileno()
    finally:
        signal.set_wakeup_fd(-1)
        a.close()
        b.close()


# ---- errors ----------------------------------------------------------------

@pytest.mark.parametrize('sig', [0, -1, signal.NSIG + 1, 1000])
def test_invalid_signal_number(loop, sig):
    """A number that is no signal is a ValueError for add and remove."""
    with pytest.raises(ValueError, match='invalid signal number'):
        loop.add_signal_handler(sig, lambda: None)
    with pytest.raises(ValueError, match='invalid signal number'):
        loop.remove_signal_handler(sig)


@pytest.mark.parametrize('sig', ['SIGUSR1', 10.0, None, b'\x0a'])
def test_signal_not_an_int(loop, sig):
    """A signal that is not an int is a TypeError for add and remove."""
    with pytest.raises(TypeError, match='sig must be an int'):
        loop.add_signal_handler(sig, lambda: None)
    with pytest.raises(TypeError, match='sig must be an int'):
        loop.remove_signal_handler(sig)


@pytest.mark.parametrize('sig', [signal.SIGKILL, signal.SIGSTOP])
def test_uncatchable_signal(loop, sig):
    """SIGKILL and SIGSTOP cannot be caught: RuntimeError, and no handler
    nor wakeup fd is left installed."""
    with pytest.raises(RuntimeError, match=f'sig {int(sig)} cannot be caught'):
        loop.add_signal_handler(sig, lambda: None)
    assert loop.remove_signal_handler(sig) is False
    assert signal.set_wakeup_fd(-1) == -1


def test_uncatchable_signal_keeps_other_handlers(loop):
    """A failed add for SIGKILL leaves the handlers already installed, and
    their wakeup fd, working."""
    calls = []
    loop.add_signal_handler(signal.SIGUSR1, calls.append, 1)
    with pytest.raises(RuntimeError):
        loop.add_signal_handler(signal.SIGKILL, lambda: None)
    loop.call_soon(kill_self, signal.SIGUSR1)
    run_until(loop, lambda: calls)
    assert calls == [1]


def test_coroutine_function_rejected(loop):
    """A coroutine function as callback is a TypeError."""
    async def handler():
        pass

    with pytest.raises(TypeError, match='coroutines cannot be used with '
                                        'add_signal_handler'):
        loop.add_signal_handler(signal.SIGUSR1, handler)
    assert loop.remove_signal_handler(signal.SIGUSR1) is False


def test_coroutine_object_rejected(loop):
    """A coroutine object as callback is a TypeError."""
    async def handler():
        pass

    coro = handler()
    try:
        with pytest.raises(TypeError, match='coroutines cannot be used'):
            loop.add_signal_handler(signal.SIGUSR1, coro)
    finally:
        coro.close()
    assert loop.remove_signal_handler(signal.SIGUSR1) is False


def test_add_on_closed_loop(new_loop):
    """add_signal_handler() on a closed loop: RuntimeError; a bad signal
    number is still reported first, as in asyncio."""
    loop = new_loop()
    loop.close()
    with pytest.raises(RuntimeError, match='Event loop is closed'):
        loop.add_signal_handler(signal.SIGUSR1, lambda: None)
    with pytest.raises(ValueError):
        loop.add_signal_handler(0, lambda: None)
    assert loop.remove_signal_handler(signal.SIGUSR1) is False


def _in_thread(func):
    result = []

    def target():
        try:
            result.append(('ok', func()))
        except BaseException as exc:
            result.append(('error', exc))

    t = threading.Thread(target=target)
    t.start()
    t.join(PROMPT)
    assert not t.is_alive()
    return result[0]


def test_add_from_other_thread(loop):
    """Signal handlers can only be added from the main thread: from another
    thread it is a RuntimeError and nothing is installed."""
    kind, exc = _in_thread(
        lambda: loop.add_signal_handler(signal.SIGUSR1, lambda: None))
    assert kind == 'error'
    assert type(exc) is RuntimeError
    assert 'main thread' in str(exc)
    assert signal.getsignal(signal.SIGUSR1) is signal.SIG_DFL
    assert loop.remove_signal_handler(signal.SIGUSR1) is False


def test_add_from_loop_running_in_other_thread(new_loop):
    """A loop created and running in another thread cannot add signal
    handlers either."""
    def body():
        loop = new_loop()

        async def main():
            loop.add_signal_handler(signal.SIGUSR2, lambda: None)

        try:
            loop.run_until_complete(main())
        finally:
            loop.close()

    kind, exc = _in_thread(body)
    assert kind == 'error'
    assert type(exc) is RuntimeError
    assert signal.getsignal(signal.SIGUSR2) is signal.SIG_DFL


def test_loop_in_other_thread_runs_without_signal_handlers(new_loop):
    """A loop running in a non-main thread works (no wakeup fd needed) while
    the main thread's loop keeps its own signal handler."""
    main_loop = new_loop()
    calls = []
    main_loop.add_signal_handler(signal.SIGUSR1, calls.append, 'main')

    def body():
        loop = new_loop()
        try:
            return loop.run_until_complete(asyncio.sleep(0.01, 'thread'))
        finally:
            loop.close()

    assert _in_thread(body) == ('ok', 'thread')
    main_loop.call_soon(kill_self, signal.SIGUSR1)
    run_until(main_loop, lambda: calls)
    assert calls == ['main']


def test_handler_added_in_main_thread_loop_run_in_other_thread(loop):
    """Handlers are added from the main thread, the loop then runs in
    another thread: a signal still reaches the handler, in the loop's
    thread."""
    seen = []
    started = threading.Event()

    def handler():
        seen.append(threading.current_thread() is threading.main_thread())
        loop.stop()

    loop.add_signal_handler(signal.SIGUSR1, handler)
    loop.call_soon(started.set)
    watchdog = threading.Timer(PROMPT, loop.call_soon_threadsafe,
                               (loop.stop,))
    runner = threading.Thread(target=loop.run_forever)
    runner.start()
    watchdog.start()
    try:
        assert started.wait(PROMPT)
        kill_self(signal.SIGUSR1)
        runner.join(PROMPT * 2)
    finally:
        watchdog.cancel()
        if runner.is_alive():
            loop.call_soon_threadsafe(loop.stop)
            runner.join()
    assert seen == [False]


def test_signals_of_two_loops_last_added_wins(new_loop):
    """Like asyncio, the wakeup fd is process-wide: the loop that added a
    handler last receives the signals it handles."""
    a, b = new_loop(), new_loop()
    calls = []
    a.add_signal_handler(signal.SIGUSR1, calls.append, 'a')
    b.add_signal_handler(signal.SIGUSR2, calls.append, 'b')
    b.call_soon(kill_self, signal.SIGUSR2)
    run_until(b, lambda: calls)
    assert calls == ['b']
    b.close()
    a.close()
    assert signal.set_wakeup_fd(-1) == -1


@pytest.mark.skipif(sys.platform != 'linux', reason='Linux signals')
def test_sigchld_handler(loop):
    """A handler for SIGCHLD gets the signal when a child process exits."""
    calls = []
    loop.add_signal_handler(signal.SIGCHLD, calls.append, 'chld')
    try:
        proc = subprocess.Popen([sys.executable, '-c', 'pass'])
        run_until(loop, lambda: calls)
        proc.wait(timeout=30)
        assert calls[0] == 'chld'
    finally:
        loop.remove_signal_handler(signal.SIGCHLD)


# ---- Python-level handlers (signal.signal) while the loop waits -----------

class SignalRaised(Exception):
    pass


def _send_when_running(loop, sig):
    """Send sig from another thread once the loop is waiting in a long
    sleep; returns the sender thread."""
    running = threading.Event()
    loop.call_soon(running.set)

    def send():
        if running.wait(PROMPT):
            time.sleep(0.05)
            kill_self(sig)

    sender = threading.Thread(target=send)
    sender.start()
    return sender


def test_python_handler_exception_escapes_run(loop):
    """An exception raised by a signal.signal() handler while the loop waits
    comes out of run_until_complete(); the loop is stopped and usable."""
    def handler(signum, frame):
        raise SignalRaised(signum)

    signal.signal(signal.SIGUSR1, handler)
    sender = _send_when_running(loop, signal.SIGUSR1)
    t0 = time.monotonic()
    try:
        with pytest.raises(SignalRaised):
            loop.run_until_complete(asyncio.sleep(30))
    finally:
        sender.join()
    assert time.monotonic() - t0 < PROMPT
    assert not loop.is_running()
    assert loop.run_until_complete(asyncio.sleep(0, 'again')) == 'again'


def test_python_handler_system_exit_escapes_run(loop):
    """sys.exit() in a SIGTERM-style handler: SystemExit out of the run."""
    def handler(signum, frame):
        sys.exit(7)

    signal.signal(signal.SIGUSR2, handler)
    sender = _send_when_running(loop, signal.SIGUSR2)
    try:
        with pytest.raises(SystemExit) as info:
            loop.run_until_complete(asyncio.sleep(30))
    finally:
        sender.join()
    assert info.value.code == 7
    assert not loop.is_running()


def test_python_handler_wakes_loop_with_call_soon_threadsafe(loop):
    """The documented way for a signal.signal() handler to reach the loop,
    call_soon_threadsafe(), wakes a loop waiting for a far timer."""
    stopped = []

    def handler(signum, frame):
        loop.call_soon_threadsafe(lambda: (stopped.append(signum),
                                           loop.stop()))

    signal.signal(signal.SIGUSR1, handler)
    far = loop.call_later(60, loop.stop)
    sender = _send_when_running(loop, signal.SIGUSR1)
    t0 = time.monotonic()
    try:
        assert run_forever_guarded(loop) == []
    finally:
        sender.join()
        far.cancel()
    assert stopped == [signal.SIGUSR1]
    assert time.monotonic() - t0 < PROMPT


# ---- Ctrl-C in a child process -------------------------------------------
#
# tests/scripts/ctrl_c.py runs a main coroutine in one of several ways; the
# test sends it real SIGINTs and compares what the child prints and how it
# ends with the same scenario on the default loop.

SCRIPT = pathlib.Path(__file__).parent / 'scripts' / 'ctrl_c.py'
ROOT = pathlib.Path(__file__).parent.parent
CHILD_TIMEOUT = 30


def run_ctrl_c(runner, scenario, interrupt_after):
    """Run the child; send SIGINT right after each line in interrupt_after
    is printed. Returns (returncode, stdout lines, last stderr line,
    stderr)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED='1')
    env.pop('PYTHONASYNCIODEBUG', None)
    proc = subprocess.Popen([sys.executable, str(SCRIPT), runner, scenario],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env, cwd=str(ROOT))
    lines = queue.Queue()
    reader = threading.Thread(
        target=lambda: [lines.put(line) for line in proc.stdout] + [
            lines.put(None)])
    reader.start()
    out = []
    try:
        pending = list(interrupt_after)
        while True:
            line = lines.get(timeout=CHILD_TIMEOUT)
            if line is None:
                break
            out.append(line.rstrip('\n'))
            if pending and out[-1] == pending[0]:
                pending.pop(0)
                # Let the child get back to waiting in the loop.
                time.sleep(0.2)
                proc.send_signal(signal.SIGINT)
        err = proc.stderr.read()
        proc.wait(timeout=CHILD_TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        reader.join(CHILD_TIMEOUT)
        proc.stdout.close()
        proc.stderr.close()
    err_lines = err.strip().splitlines()
    return proc.returncode, out, (err_lines[-1] if err_lines else ''), err


def _without_loop_line(lines):
    assert lines and lines[0].startswith('loop: '), lines
    return lines[0].split()[1], lines[1:]


def _compare_with_reference(runner, reference, scenario, interrupt_after):
    rc, lines, last, err = run_ctrl_c(runner, scenario, interrupt_after)
    ref_rc, ref_lines, ref_last, ref_err = run_ctrl_c(reference, scenario,
                                                      interrupt_after)
    kind, lines = _without_loop_line(lines)
    ref_kind, ref_lines = _without_loop_line(ref_lines)
    assert (ref_kind, kind) == ('asyncio', 'asyncloop')
    assert lines == ref_lines, err
    assert last == ref_last, err
    assert rc == ref_rc, err
    return rc, lines, last


CTRL_C_RUNNERS = [
    ('asyncloop-run', 'asyncio-run'),
    ('runner-factory', 'runner-default'),
    pytest.param('asyncio-run-factory', 'asyncio-run',
                 marks=pytest.mark.skipif(sys.version_info < (3, 12),
                                          reason='loop_factory= is 3.12+')),
]


@pytest.mark.parametrize('runner,reference', CTRL_C_RUNNERS)
def test_ctrl_c_cancels_main_task(runner, reference):
    """A real SIGINT while the main task sleeps cancels it (its
    CancelledError handler and finally run) and the process ends with
    KeyboardInterrupt, exactly as on the default loop."""
    rc, lines, last = _compare_with_reference(runner, reference, 'cancel',
                                              ['ready'])
    assert lines == ['ready', 'cancelled', 'finally']
    assert last == 'KeyboardInterrupt'
    assert rc == -signal.SIGINT


@pytest.mark.parametrize('runner,reference', CTRL_C_RUNNERS)
def test_second_ctrl_c_interrupts(runner, reference):
    """Runner's second Ctrl-C: when the main task ignores the first
    cancellation and keeps waiting, the second SIGINT raises
    KeyboardInterrupt out of the loop, as on the default loop."""
    rc, lines, last = _compare_with_reference(
        runner, reference, 'second', ['ready', 'cancelled'])
    assert lines[:2] == ['ready', 'cancelled']
    assert last == 'KeyboardInterrupt'
    assert rc == -signal.SIGINT


def test_ctrl_c_in_bare_run_forever():
    """SIGINT while blocked in loop.run_forever() without a Runner: the
    KeyboardInterrupt comes out of run_forever(), the loop is no longer
    running and can be run again, as with the default loop."""
    rc, lines, last = _compare_with_reference(
        'loop-asyncloop', 'loop-default', 'run-forever', ['ready'])
    assert lines == ['ready', 'interrupted False', 'usable', 'closed']
    assert rc == 0
