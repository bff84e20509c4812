"""Timers: call_later / call_at ordering, precision and the timer heap.

Timing checks are one-sided where it matters: a timer must never run
before its deadline, and lateness bounds are generous, since the machine
running the tests may be busy.
"""
import asyncio
import random
import time

import pytest

# Lateness allowed for a timer on a busy machine.
LATE = 0.25


def run_briefly(loop, iterations=1):
    for _ in range(iterations):
        loop.call_soon(loop.stop)
        loop.run_forever()


def run_for(loop, seconds):
    """Run the loop for about the given time."""
    loop.call_later(seconds, loop.stop)
    loop.run_forever()


def scheduled_count(loop):
    """Timers held by the loop, cancelled ones included."""
    if hasattr(loop, '_timer_count'):
        return loop._timer_count
    return len(loop._scheduled)


# ---- the clock -------------------------------------------------------------

def test_loop_time_is_time_monotonic(loop):
    """loop.time() reads the same clock as time.monotonic(), read between
    two calls of it."""
    for _ in range(2000):
        before = time.monotonic()
        now = loop.time()
        after = time.monotonic()
        assert before <= now <= after
    assert isinstance(loop.time(), float)


def test_loop_time_advances(loop):
    """loop.time() moves forward with real time."""
    t0 = loop.time()
    time.sleep(0.02)
    assert loop.time() - t0 >= 0.02


# ---- ordering --------------------------------------------------------------

def test_timers_run_by_deadline(loop):
    """Timers run in deadline order whatever the order they were
    scheduled in."""
    out = []
    delays = [0.03, 0.001, 0.02, 0, 0.01, 0.005, 0.025, 0.015]
    # One base time for all: call_later() would read the clock at each
    # call, and a machine that stalls between two calls could reorder
    # deadlines 1 ms apart.
    base = loop.time()

    def fired(d):
        out.append(d)
        if len(out) == len(delays):
            loop.stop()

    for d in delays:
        loop.call_at(base + d, fired, d)
    loop.call_later(60, loop.stop)
    loop.run_forever()
    assert out == sorted(delays)


def test_call_at_and_call_later_share_one_order(loop):
    """call_at and call_later timers are ordered together by deadline."""
    out = []
    base = loop.time()
    # call_later reads the clock itself: the steps are wide enough that
    # a stalled machine does not reorder them.
    loop.call_at(base + 0.15, out.append, 'at 150ms')
    loop.call_later(0.05, out.append, 'later 50ms')
    loop.call_at(base + 0.1, out.append, 'at 100ms')
    loop.call_later(0.2, out.append, 'later 200ms')
    loop.call_at(base - 1, out.append, 'at past')
    run_for(loop, 0.3)
    assert out == ['at past', 'later 50ms', 'at 100ms', 'at 150ms',
                   'later 200ms']


def test_equal_deadlines_run_in_the_same_iteration(loop):
    """Timers with the same deadline all run in one iteration, after the
    earlier deadlines and before the later ones: a callback that one of
    them schedules with call_soon runs only once all of them have run."""
    out = []
    when = loop.time() + 0.01
    for i in range(50):
        loop.call_at(when, out.append, i)
    loop.call_at(when - 0.005, out.append, 'before')
    loop.call_at(when + 0.005, out.append, 'after')
    first = loop.call_at(when, lambda: loop.call_soon(out.append, 'next'))
    run_for(loop, 0.05)
    assert out[0] == 'before'
    assert sorted(out[1:51]) == list(range(50))
    # 'after' may share the iteration if the loop woke up late.
    assert sorted(out[51:]) == ['after', 'next']
    assert not first.cancelled()


@pytest.mark.parametrize('n', [2, 3, 10, 1000])
def test_equal_deadlines_keep_scheduling_order(aloop, n):
    """asyncloop runs timers with equal deadlines in the order they were
    scheduled, call_at and call_later alike. (asyncio's heapq does not
    promise it.)"""
    out = []
    first = aloop.call_later(0.01, out.append, 0)
    when = first.when()
    for i in range(1, n):
        if i % 2:
            aloop.call_at(when, out.append, i)
        else:
            aloop.call_at(float(when), out.append, i)
    run_for(aloop, 0.05)
    assert out == list(range(n))


def test_negative_delay_runs_as_soon_as_possible(loop):
    """A negative delay or a deadline in the past runs in the first
    iteration, after the callbacks already ready."""
    out = []
    loop.call_later(-5, out.append, 'negative')
    loop.call_at(0, out.append, 'epoch')
    loop.call_soon(out.append, 'soon')
    run_briefly(loop)
    assert out == ['soon', 'epoch', 'negative']


def test_zero_delay_from_a_timer_runs_in_the_next_iteration(loop):
    """A call_later(0) made by a timer callback waits for the next
    iteration."""
    out = []

    def t1():
        out.append('t1')
        loop.call_later(0, out.append, 't1.later0')
        loop.stop()

    loop.call_later(0, t1)
    loop.call_later(0, out.append, 't2')
    loop.run_forever()
    assert out == ['t1', 't2']
    run_briefly(loop)
    assert out == ['t1', 't2', 't1.later0']


def test_many_timers_fire_in_order(loop):
    """100,000 timers scheduled in random order run in deadline order."""
    n = 100_000
    rng = random.Random(1234)
    base = loop.time() + 0.05
    order = list(range(n))
    rng.shuffle(order)
    out = []
    append = out.append
    for i in order:
        loop.call_at(base + i * 1e-7, append, i)
    loop.call_at(base + n * 1e-7 + 0.001, loop.stop)
    loop.run_forever()
    assert out == list(range(n))
    assert scheduled_count(loop) == 0


def test_infinite_delay_never_fires(loop):
    """call_later(inf) is accepted and never runs; the loop still stops
    promptly."""
    out = []
    h = loop.call_later(float('inf'), out.append, 'never')
    assert h.when() == float('inf')
    t0 = time.monotonic()
    run_for(loop, 0.01)
    assert out == []
    assert time.monotonic() - t0 < 5
    h.cancel()


def test_far_timer_does_not_block_the_loop(loop):
    """With only a far timer pending, a stop() scheduled from a nearer
    timer still ends the run on time."""
    loop.call_later(3600, lambda: None)
    t0 = time.monotonic()
    run_for(loop, 0.02)
    assert 0.02 <= time.monotonic() - t0 < 5


# ---- precision ------------------------------------------------------------

@pytest.mark.parametrize('delay', [0.0005, 0.001, 0.0123, 0.05])
def test_timer_never_fires_before_its_deadline(loop, delay):
    """A timer callback never runs before its deadline, and not much
    after it."""
    records = []

    def cb(h_box, scheduled_at):
        records.append((time.monotonic(), loop.time(), h_box[0].when(),
                        scheduled_at))

    for _ in range(5):
        box = []
        scheduled_at = loop.time()
        box.append(loop.call_later(delay, cb, box, scheduled_at))
        run_for(loop, delay + 0.002)
    # Several at once, too.
    boxes = []
    for k in range(10):
        box = []
        scheduled_at = loop.time()
        box.append(loop.call_later(delay * (1 + k / 10), cb, box,
                                   scheduled_at))
        boxes.append(box)
    run_for(loop, delay * 2 + 0.002)
    assert len(records) == 15
    for mono, now, when, scheduled_at in records:
        assert mono >= when
        assert now >= when
        assert when >= scheduled_at + delay * 0.999999
        assert mono - when < LATE


def test_call_at_never_fires_before_its_deadline(loop):
    """call_at timers never run before their absolute deadline."""
    records = []
    base = loop.time()
    for k in range(20):
        when = base + 0.0003 * k
        loop.call_at(when, lambda w=when: records.append(
            (time.monotonic(), w)))
    run_for(loop, 0.02)
    assert len(records) == 20
    for mono, when in records:
        assert mono >= when


def test_sub_millisecond_timer_fires_within_a_few_ms(loop):
    """A 0.3 ms timer is not delayed to a much later time."""
    lateness = []
    for _ in range(20):
        h = loop.call_later(0.0003, lambda: lateness.append(
            time.monotonic() - h.when()))
        run_for(loop, 0.0003)
        run_briefly(loop)
    assert len(lateness) == 20
    assert min(lateness) >= 0
    assert min(lateness) < 0.005


def test_sub_millisecond_timer_is_not_rounded_up_to_a_millisecond(aloop):
    """asyncloop keeps sub-millisecond precision: in the best of many
    tries, a 0.3 ms timer fires well before the next whole millisecond."""
    lateness = []
    for _ in range(30):
        h = aloop.call_later(0.0003, lambda: lateness.append(
            time.monotonic() - h.when()))
        aloop.call_later(0.0003, aloop.stop)
        aloop.run_forever()
    assert len(lateness) == 30
    assert min(lateness) >= 0
    assert min(lateness) < 0.0006


# ---- cancellation ---------------------------------------------------------

def test_cancelled_timer_does_not_run(loop):
    """A cancelled timer is skipped; cancel() marks it cancelled."""
    out = []
    h = loop.call_later(0.005, out.append, 'cancelled')
    loop.call_later(0.01, out.append, 'kept')
    h.cancel()
    assert h.cancelled()
    run_for(loop, 0.03)
    assert out == ['kept']


def test_cancel_due_timer_from_callback_of_same_iteration(loop):
    """A timer due in this iteration cancelled by a callback that runs
    before it, in the same iteration, does not run."""
    out = []
    past = loop.time() - 1
    box = {}

    def canceller():
        out.append('canceller')
        box['victim'].cancel()

    loop.call_at(past, canceller)
    box['victim'] = loop.call_at(past + 0.1, out.append, 'victim')
    loop.call_at(past + 0.2, out.append, 'after')
    run_briefly(loop)
    assert out == ['canceller', 'after']


def test_call_soon_callback_cancels_due_timer(loop):
    """A ready callback of the same iteration cancels a timer that is
    already due: the timer does not run."""
    out = []
    t = loop.call_later(0, out.append, 'timer')
    loop.call_soon(t.cancel)
    run_briefly(loop)
    assert out == []


def test_timer_cancels_itself(loop):
    """A timer callback may cancel its own handle while running."""
    out = []
    box = []

    def cb():
        box[0].cancel()
        out.append(box[0].cancelled())

    box.append(loop.call_later(0, cb))
    run_briefly(loop)
    assert out == [True]


def test_cancel_many_timers_then_schedule_more(loop):
    """Cancelling most timers while running keeps the rest in order."""
    out = []
    base = loop.time() + 0.01
    handles = [loop.call_at(base + i * 1e-5, out.append, i)
               for i in range(1000)]
    for i, h in enumerate(handles):
        if i % 3:
            h.cancel()
    for i in range(1000, 1010):
        loop.call_at(base + i * 1e-5, out.append, i)
    run_for(loop, 0.05)
    assert out == [i for i in range(1000) if i % 3 == 0] + \
        list(range(1000, 1010))


def test_timer_scheduled_flag(loop):
    """_scheduled is True while the timer is in the heap, False after it
    has run, as on asyncio.TimerHandle."""
    h = loop.call_later(0, lambda: None)
    assert h._scheduled is True
    run_briefly(loop)
    assert h._scheduled is False


def test_cancelled_timer_at_the_head_is_dropped(loop):
    """Cancelled timers at the head of the heap are removed at the next
    iteration, as asyncio does."""
    base = loop.time() + 60
    handles = [loop.call_at(base + i, lambda: None) for i in range(10)]
    for h in handles[:4]:
        h.cancel()
    assert scheduled_count(loop) == 10
    run_briefly(loop)
    assert scheduled_count(loop) == 6
    assert not handles[0]._scheduled
    assert handles[4]._scheduled
    for h in handles:
        h.cancel()


def test_heap_is_compacted_when_mostly_cancelled(loop):
    """When more than half of over 100 timers are cancelled, the next
    iteration drops all cancelled ones; fewer stay until they reach the
    head. The counts match asyncio's len(loop._scheduled)."""
    base = loop.time() + 60
    handles = [loop.call_at(base + i, lambda: None) for i in range(1000)]
    # 40% cancelled, all at the tail: nothing is dropped.
    for h in handles[600:]:
        h.cancel()
    run_briefly(loop)
    assert scheduled_count(loop) == 1000
    # 60% cancelled: compaction.
    for h in handles[400:600]:
        h.cancel()
    run_briefly(loop)
    assert scheduled_count(loop) == 400
    assert not any(h._scheduled for h in handles[400:])
    assert all(h._scheduled for h in handles[:400])
    # Cancelled at the head: dropped from the head.
    for h in handles[:10]:
        h.cancel()
    run_briefly(loop)
    assert scheduled_count(loop) == 390
    # Cancelling after compaction still counts correctly.
    for h in handles[10:300]:
        h.cancel()
    run_briefly(loop)
    assert scheduled_count(loop) == 100
    for h in handles:
        h.cancel()
    run_briefly(loop)
    assert scheduled_count(loop) == 0


def test_heap_compaction_threshold_is_over_100_timers(loop):
    """With 100 timers or fewer, cancelled ones are not compacted away
    (only dropped from the head)."""
    base = loop.time() + 60
    handles = [loop.call_at(base + i, lambda: None) for i in range(100)]
    for h in handles[1:]:
        h.cancel()
    run_briefly(loop)
    assert scheduled_count(loop) == 100
    handles[0].cancel()
    run_briefly(loop)
    assert scheduled_count(loop) == 0


def test_timer_cancelled_twice_is_counted_once(loop):
    """cancel() twice does not disturb the count of cancelled timers."""
    base = loop.time() + 60
    handles = [loop.call_at(base + i, lambda: None) for i in range(200)]
    for h in handles[100:]:
        h.cancel()
        h.cancel()
    run_briefly(loop)
    # Exactly half cancelled: not more than half, no compaction.
    assert scheduled_count(loop) == 200
    handles[99].cancel()
    run_briefly(loop)
    assert scheduled_count(loop) == 99
    for h in handles:
        h.cancel()


# ---- bad arguments --------------------------------------------------------

def test_call_later_none_delay(loop):
    """call_later(None, ...) is TypeError('delay must not be None')."""
    with pytest.raises(TypeError, match='^delay must not be None$'):
        loop.call_later(None, lambda: None)
    assert scheduled_count(loop) == 0


def test_call_at_none_when(loop):
    """call_at(None, ...) is TypeError('when cannot be None')."""
    with pytest.raises(TypeError, match='^when cannot be None$'):
        loop.call_at(None, lambda: None)
    assert scheduled_count(loop) == 0


def test_call_later_non_number_delay(loop):
    """A delay that is not a number is a TypeError."""
    with pytest.raises(TypeError):
        loop.call_later('1', lambda: None)
    assert scheduled_count(loop) == 0


def test_call_later_accepts_int_and_float(loop):
    """Integer and float delays and deadlines are accepted."""
    out = []
    loop.call_later(0, out.append, 'int delay')
    loop.call_at(int(loop.time()) - 1, out.append, 'int when')
    loop.call_later(0.0, out.append, 'float delay')
    run_briefly(loop)
    assert sorted(out) == ['float delay', 'int delay', 'int when']


def test_call_at_when_is_kept(loop):
    """when() returns the deadline given to call_at, and call_later's
    deadline is loop.time() + delay."""
    when = loop.time() + 12.5
    h = loop.call_at(when, lambda: None)
    assert h.when() == when
    before = loop.time()
    h2 = loop.call_later(3.25, lambda: None)
    after = loop.time()
    assert before + 3.25 <= h2.when() <= after + 3.25
    h.cancel()
    h2.cancel()


def test_replaced_time_moves_the_deadlines(loop):
    """asyncio's loop reads self.time() for its deadlines: with time()
    replaced on the instance (as mock.patch.object does), call_later() counts
    from the replacement and a timer runs once it says the deadline came."""
    from unittest import mock
    out = []

    async def main():
        now = loop.time()
        with mock.patch.object(loop, 'time') as fake:
            fake.return_value = now
            handle = loop.call_later(1000, out.append, 'timer')
            assert handle.when() == now + 1000
            await asyncio.sleep(0)
            assert out == []
            fake.return_value = now + 1000
            await asyncio.sleep(0)
            await asyncio.sleep(0)
        assert out == ['timer']
        # Restored: the real clock again.
        handle = loop.call_later(1000, out.append, 'later')
        assert abs(handle.when() - (loop.time() + 1000)) < 1
        handle.cancel()
    loop.run_until_complete(main())


def test_time_of_a_subclass_is_the_loops_clock(new_loop):
    """A subclass's time() is the clock of call_later(), as on asyncio."""
    probe = new_loop()

    class Shifted(type(probe)):
        def time(self):
            return super().time() + 10000

    loop = Shifted()
    try:
        handle = loop.call_later(1, print)
        assert handle.when() > probe.time() + 9000
        handle.cancel()
    finally:
        loop.close()
