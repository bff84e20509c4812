"""Handle and TimerHandle objects: repr, comparison, hashing, memory.

The reference for repr and comparisons is asyncio's own Handle and
TimerHandle classes, built with the same callback and arguments.
"""
import asyncio
import functools
import gc
import os
import re
import sys

import pytest

import asyncloop

PY312 = sys.version_info >= (3, 12)
PAGE_SIZE = os.sysconf('SC_PAGE_SIZE')
MiB = 1 << 20


def rss():
    """Resident set size of this process, in bytes."""
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * PAGE_SIZE


class RefLoop:
    """Just enough of a loop for asyncio.Handle/TimerHandle instances used
    as references."""

    def __init__(self, debug):
        self._debug = debug

    def get_debug(self):
        return self._debug

    def _timer_handle_cancelled(self, handle):
        pass


def callback(*args):
    pass


class Greeter:
    def hello(self, *args):
        pass


def strip_addresses(text):
    return re.sub(r'0x[0-9a-fA-F]+', '0x...', text)


# ---- repr -------------------------------------------------------------------

CALLBACKS = {
    'function': (callback, ()),
    'function_args': (callback, (1, 'two', [3])),
    'method': (Greeter().hello, ('x',)),
    'builtin': (print, ()),
    'partial': (functools.partial(callback, 1), (2,)),
    'lambda': (lambda: None, ()),
}


@pytest.mark.parametrize('debug', [False, True], ids=['nodebug', 'debug'])
@pytest.mark.parametrize('kind', sorted(CALLBACKS))
def test_handle_repr_matches_asyncio(loop, kind, debug):
    """repr(handle) of call_soon is asyncio.Handle's, in and out of debug
    mode ('created at' line included)."""
    loop.set_debug(debug)
    cb, args = CALLBACKS[kind]
    h, ref = loop.call_soon(cb, *args), asyncio.Handle(cb, args, RefLoop(debug))
    assert strip_addresses(repr(h)) == strip_addresses(repr(ref))
    assert str(h) == repr(h)
    h.cancel()


@pytest.mark.parametrize('debug', [False, True], ids=['nodebug', 'debug'])
@pytest.mark.parametrize('kind', sorted(CALLBACKS))
def test_timer_handle_repr_matches_asyncio(loop, kind, debug):
    """repr of call_at handles is asyncio.TimerHandle's, 'when='
    included."""
    loop.set_debug(debug)
    cb, args = CALLBACKS[kind]
    when = loop.time() + 100.25
    ref_loop = RefLoop(debug)
    h, ref = loop.call_at(when, cb, *args), asyncio.TimerHandle(when, cb, args, ref_loop)
    assert strip_addresses(repr(h)) == strip_addresses(repr(ref))
    assert f'when={when!r}' in repr(h)
    h.cancel()


@pytest.mark.parametrize('debug', [False, True], ids=['nodebug', 'debug'])
@pytest.mark.parametrize('kind', ['function_args', 'method'])
def test_cancelled_handle_repr_matches_asyncio(loop, kind, debug):
    """repr of cancelled Handles and TimerHandles is asyncio's: 'cancelled'
    after the class name, and in debug mode the callback kept."""
    loop.set_debug(debug)
    cb, args = CALLBACKS[kind]
    ref_loop = RefLoop(debug)
    when = loop.time() + 100.25
    h, ref = loop.call_soon(cb, *args), asyncio.Handle(cb, args, ref_loop)
    t, tref = loop.call_at(when, cb, *args), asyncio.TimerHandle(when, cb, args, ref_loop)
    for handle, reference in ((h, ref), (t, tref)):
        handle.cancel()
        reference.cancel()
        assert strip_addresses(repr(handle)) == \
            strip_addresses(repr(reference))


def test_call_at_integer_deadline_repr(loop):
    """call_at with an int deadline: when() and the repr show it as
    asyncio's TimerHandle does."""
    h, ref = loop.call_at(5, callback), asyncio.TimerHandle(5, callback, (), RefLoop(False))
    assert h.when() == 5
    assert strip_addresses(repr(h)) == strip_addresses(repr(ref))
    h.cancel()


def test_call_later_repr_shape(loop):
    """repr of a call_later handle: '<TimerHandle when=<float> name() at
    file:line>'."""
    h = loop.call_later(10, callback)
    pattern = (r'^<TimerHandle when=\d+\.\d+ callback\(\) at '
               + re.escape(__file__) + r':\d+>$')
    assert re.match(pattern, repr(h)), repr(h)
    h.cancel()
    assert re.match(r'^<TimerHandle cancelled when=\d+\.\d+>$', repr(h))


def test_handle_repr_debug_created_at_points_at_caller(loop):
    """In debug mode the repr ends with the file and line that called
    call_soon / call_later / call_at."""
    loop.set_debug(True)
    line = sys._getframe().f_lineno + 1
    handles = [loop.call_soon(callback), loop.call_later(1, callback), loop.call_at(1, callback)]
    for h in handles:
        assert repr(h).endswith(f'created at {__file__}:{line}>'), repr(h)
        h.cancel()


def test_cancelled_handle_repr_debug_keeps_callback(loop):
    """In debug mode a cancelled handle keeps its callback in the repr,
    marked cancelled (used by the slow callback warning); outside debug
    mode the callback is dropped from the repr."""
    loop.set_debug(True)
    h = loop.call_soon(callback, 1)
    before = repr(h)
    h.cancel()
    assert repr(h) == before.replace('<Handle ', '<Handle cancelled ', 1)
    assert 'callback(' in repr(h)
    loop.set_debug(False)
    h2 = loop.call_soon(callback, 1)
    h2.cancel()
    assert repr(h2) == '<Handle cancelled>'


def test_handle_repr_with_failing_callback_repr(loop):
    """A callback whose __repr__ raises does not break repr(handle) more
    than it breaks asyncio's."""
    class Bad:
        def __call__(self):
            pass

        def __repr__(self):
            raise ValueError('no repr')

    bad = Bad()
    h = loop.call_soon(bad)
    ref = asyncio.Handle(bad, (), RefLoop(False))
    try:
        expected = repr(ref)
    except ValueError:
        with pytest.raises(ValueError):
            repr(h)
    else:
        assert strip_addresses(repr(h)) == strip_addresses(expected)
    h.cancel()


# ---- private attributes read by libraries -----------------------------

def test_handle_private_attributes(loop):
    """_callback, _args, _cancelled and _loop as on asyncio.Handle."""
    h = loop.call_soon(callback, 1, 2)
    assert h._callback is callback
    assert h._args == (1, 2)
    assert h._cancelled is False
    assert h._loop is loop
    assert h._source_traceback is None
    h.cancel()
    assert h._cancelled is True
    assert h._callback is None
    assert h._args is None


def test_timer_handle_private_attributes(loop):
    """_when and _scheduled as on asyncio.TimerHandle."""
    h = loop.call_at(loop.time() + 50, callback)
    assert h._when == h.when()
    assert h._scheduled is True
    h.cancel()


# ---- comparison and hashing ----------------------------------------------

def _pairs(loop):
    return (loop.call_at(10.0, callback), loop.call_at(20.0, callback),
            loop.call_at(10.0, callback))


def test_timer_handle_ordering(loop):
    """TimerHandles order by deadline as asyncio.TimerHandle does."""
    a, b, a2 = _pairs(loop)
    assert a < b and not b < a
    assert b > a and not a > b
    assert a <= b and not b <= a
    assert b >= a and not a >= b
    # Equal deadlines and callbacks: equal, so <= and >= hold.
    assert a <= a2 and a >= a2
    assert not a < a2 and not a > a2
    assert sorted([b, a]) == [a, b]
    for h in (a, b, a2):
        h.cancel()


def test_timer_handle_equality(loop):
    """Equality compares deadline, callback, args and cancelled state."""
    a, b, a2 = _pairs(loop)
    assert a == a2 and not a != a2
    assert a != b
    assert loop.call_at(10.0, callback, 1) != a
    assert loop.call_at(10.0, print) != a
    other = loop.call_at(10.0, callback)
    other.cancel()
    assert other != a
    a.cancel()
    # Both cancelled, same deadline: equal again, as asyncio.
    assert other == a
    for h in (b, a2):
        h.cancel()


def test_timer_handle_compares_with_other_types(loop):
    """Comparing with non-TimerHandles: == is False, ordering TypeError."""
    t = loop.call_at(10.0, callback)
    h = loop.call_soon(callback)
    assert t != 10.0
    assert not (t == h)
    assert t != h
    assert t != object()
    with pytest.raises(TypeError):
        t < 10.0
    with pytest.raises(TypeError):
        t <= h
    with pytest.raises(TypeError):
        t > 'x'
    t.cancel()
    h.cancel()


def test_timer_handle_hash_is_hash_of_when(loop):
    """hash(TimerHandle) is hash(when), as asyncio."""
    t = loop.call_at(12.5, callback)
    assert hash(t) == hash(12.5) == hash(t.when())
    t2 = loop.call_at(12.5, callback)
    assert len({t, t2}) == 1
    t.cancel()
    t2.cancel()


def test_handle_identity_semantics(loop):
    """Plain Handles compare and hash by identity."""
    h1 = loop.call_soon(callback)
    h2 = loop.call_soon(callback)
    assert h1 == h1
    assert h1 != h2
    assert len({h1, h2, h1}) == 2
    assert hash(h1) != hash(h2) or h1 is not h2
    with pytest.raises(TypeError):
        h1 < h2
    h1.cancel()
    h2.cancel()


def test_equality_with_callback_whose_eq_raises(loop):
    """An error in the callback's __eq__ propagates from ==, as in
    asyncio's TimerHandle.__eq__."""
    class Weird:
        def __call__(self):
            pass

        def __eq__(self, other):
            raise ZeroDivisionError

        __hash__ = object.__hash__

    w1, w2 = Weird(), Weird()
    a = loop.call_at(5.0, w1)
    b = loop.call_at(5.0, w2)
    with pytest.raises(ZeroDivisionError):
        a == b
    a.cancel()
    b.cancel()


# ---- memory -------------------------------------------------------------------

def _churn(loop, n, batch=10_000):
    """With the loop running, schedule and cancel n handles (half
    call_soon, half call_later), in batches."""
    def cb():
        pass

    async def main():
        call_soon, call_later = loop.call_soon, loop.call_later
        for _ in range(n // batch):
            for _ in range(batch // 2):
                call_soon(cb).cancel()
                call_later(10, cb).cancel()
            await asyncio.sleep(0)

    loop.run_until_complete(main())


def test_scheduling_and_cancelling_millions_of_handles_keeps_memory_flat(loop):
    """Cancelled handles are freed: after a warm-up, two million more
    call_soon/call_later + cancel leave the process size flat. (Fewer on
    the pure-Python default loop, which only checks the test itself.)"""
    n = 2_000_000 if isinstance(loop, asyncloop.Loop) else 400_000
    _churn(loop, 200_000)
    gc.collect()
    before = rss()
    _churn(loop, n)
    gc.collect()
    growth = rss() - before
    assert growth < 4 * MiB, f'RSS grew by {growth / MiB:.1f} MiB'


def test_running_millions_of_callbacks_keeps_memory_flat(aloop):
    """Handles that run (with arguments, in a given context, or raising
    into the exception handler) are freed too."""
    import contextvars
    ctx = contextvars.copy_context()
    aloop.set_exception_handler(lambda lp, context: None)

    def cb(*args):
        pass

    def bad(*args):
        raise ValueError(args)

    async def main(n, batch=10_000):
        for _ in range(n // batch):
            for i in range(batch // 4):
                aloop.call_soon(cb, i, 'x')
                aloop.call_soon(cb, context=ctx)
                aloop.call_later(0, cb, i)
                aloop.call_soon(bad, i)
            await asyncio.sleep(0)
            await asyncio.sleep(0)

    aloop.run_until_complete(main(100_000))
    gc.collect()
    before = rss()
    aloop.run_until_complete(main(600_000))
    gc.collect()
    growth = rss() - before
    assert growth < 4 * MiB, f'RSS grew by {growth / MiB:.1f} MiB'


def test_million_pending_timers_released_by_close(loop):
    """close() frees the timers it drops: the memory taken by a million
    pending timers comes back (fewer timers on the default loop)."""
    def cb():
        pass

    n = 1_000_000 if isinstance(loop, asyncloop.Loop) else 300_000
    gc.collect()
    before = rss()
    call_later = loop.call_later
    for _ in range(n):
        call_later(3600, cb)
    peak = rss()
    assert peak - before > 20 * MiB     # the timers took memory
    loop.close()
    gc.collect()
    left = rss() - before
    assert left < max(32 * MiB, (peak - before) // 4), \
        f'{left / MiB:.1f} MiB of {(peak - before) / MiB:.1f} MiB kept'


def test_cancelled_handle_releases_its_arguments(loop):
    """cancel() drops the callback and its arguments at once, for
    call_soon and timer handles."""
    import weakref

    class Big:
        pass

    for schedule in (lambda cb, a: loop.call_soon(cb, a),
                     lambda cb, a: loop.call_later(60, cb, a)):
        big = Big()
        ref = weakref.ref(big)

        def cb(arg):
            pass

        h = schedule(cb, big)
        del big
        gc.collect()
        assert ref() is not None
        h.cancel()
        gc.collect()
        assert ref() is None
