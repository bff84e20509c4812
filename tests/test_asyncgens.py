"""Asynchronous generators and the loop: the firstiter/finalizer hooks
installed while the loop runs, and shutdown_asyncgens()."""
import asyncio
import gc
import sys
import warnings

import pytest


def test_shutdown_asyncgens_closes_pending(loop):
    """Generators suspended at a yield are closed by shutdown_asyncgens():
    their finally blocks run, inside the loop."""
    seen = []

    async def agen(name):
        try:
            yield 1
            yield 2
        finally:
            seen.append((name, asyncio.get_running_loop() is loop))

    gens = []

    async def main():
        for name in ('a', 'b', 'c'):
            g = agen(name)
            gens.append(g)
            await g.__anext__()

    loop.run_until_complete(main())
    assert seen == []
    loop.run_until_complete(loop.shutdown_asyncgens())
    assert sorted(seen) == [('a', True), ('b', True), ('c', True)]


def test_shutdown_asyncgens_finally_can_await(loop):
    """A finally block that awaits still completes during shutdown."""
    seen = []

    async def agen():
        try:
            yield 1
        finally:
            await asyncio.sleep(0.01)
            seen.append('cleaned up')

    gens = []

    async def main():
        g = agen()
        gens.append(g)
        await g.__anext__()

    loop.run_until_complete(main())
    loop.run_until_complete(loop.shutdown_asyncgens())
    assert seen == ['cleaned up']


def test_shutdown_asyncgens_skips_finished(loop):
    """Generators that ran to the end or were closed are not touched
    again; with none left, shutdown is a no-op."""
    seen = []

    async def agen():
        try:
            yield 1
        finally:
            seen.append('finally')

    async def main():
        async for _ in agen():
            pass
        g = agen()
        await g.__anext__()
        await g.aclose()

    loop.run_until_complete(main())
    assert seen == ['finally', 'finally']
    loop.run_until_complete(loop.shutdown_asyncgens())
    assert seen == ['finally', 'finally']


def test_never_started_generator_not_tracked(loop):
    """A generator never iterated has not met the loop: nothing to close."""
    seen = []

    async def agen():
        try:
            yield 1
        finally:
            seen.append('finally')

    g = agen()
    loop.run_until_complete(loop.shutdown_asyncgens())
    assert seen == []
    del g


def test_aclose_error_reported_with_asyncgen_key(loop):
    """An exception raised while shutdown_asyncgens() closes a generator
    goes to the exception handler with the 'asyncgen' key and asyncio's
    message; other generators are still closed."""
    contexts = []
    loop.set_exception_handler(lambda lp, ctx: contexts.append(ctx))
    seen = []

    async def bad():
        try:
            yield 1
        finally:
            raise ZeroDivisionError('in finally')

    async def good():
        try:
            yield 1
        finally:
            seen.append('good closed')

    gens = []

    async def main():
        for make in (bad, good):
            g = make()
            gens.append(g)
            await g.__anext__()

    loop.run_until_complete(main())
    loop.run_until_complete(loop.shutdown_asyncgens())
    assert seen == ['good closed']
    assert len(contexts) == 1
    ctx = contexts[0]
    assert ctx['asyncgen'] is gens[0]
    assert isinstance(ctx['exception'], ZeroDivisionError)
    assert ctx['message'] == (f'an error occurred during closing of '
                              f'asynchronous generator {gens[0]!r}')


def test_aclose_ignoring_generator_exit_reported(loop):
    """A generator that yields again when closed makes aclose() fail with
    RuntimeError: reported the same way."""
    contexts = []
    loop.set_exception_handler(lambda lp, ctx: contexts.append(ctx))

    async def stubborn():
        try:
            yield 1
        except GeneratorExit:
            yield 2

    gens = []

    async def main():
        g = stubborn()
        gens.append(g)
        await g.__anext__()

    loop.run_until_complete(main())
    loop.run_until_complete(loop.shutdown_asyncgens())
    assert len(contexts) == 1
    assert contexts[0]['asyncgen'] is gens[0]
    assert isinstance(contexts[0]['exception'], RuntimeError)


def test_garbage_collected_generator_finalized_by_loop(loop):
    """A generator dropped mid-iteration is finalized through the loop:
    aclose() is scheduled as a task and its finally runs in the loop."""
    seen = []

    async def agen():
        try:
            yield 1
            yield 2
        finally:
            await asyncio.sleep(0)
            seen.append(asyncio.get_running_loop() is loop)

    async def main():
        g = agen()
        await g.__anext__()
        del g
        gc.collect()
        for _ in range(10):
            if seen:
                break
            await asyncio.sleep(0.01)

    loop.run_until_complete(main())
    assert seen == [True]


def test_generator_dropped_by_break_finalized(loop):
    """Breaking out of `async for` over a temporary generator: its finally
    runs soon after, through the loop."""
    seen = []

    async def agen():
        try:
            for i in range(10):
                yield i
        finally:
            seen.append('finally')

    async def main():
        async for i in agen():
            if i == 2:
                break
        gc.collect()
        for _ in range(10):
            if seen:
                break
            await asyncio.sleep(0.01)

    loop.run_until_complete(main())
    assert seen == ['finally']


def test_generator_collected_after_close_not_rescheduled(new_loop):
    """A generator collected after its loop was closed is not scheduled on
    the closed loop (no error)."""
    loop = new_loop()
    errors = []
    loop.set_exception_handler(lambda lp, ctx: errors.append(ctx))

    async def agen():
        yield 1
        yield 2

    holder = []

    async def main():
        g = agen()
        holder.append(g)
        await g.__anext__()

    loop.run_until_complete(main())
    loop.close()
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', RuntimeWarning)
        holder.clear()
        gc.collect()
    assert errors == []


def test_firstiter_after_shutdown_warns(loop):
    """Starting a generator after shutdown_asyncgens() warns with
    ResourceWarning; the generator still works."""
    async def agen():
        yield 'value'

    loop.run_until_complete(loop.shutdown_asyncgens())

    async def main():
        g = agen()
        try:
            return await g.__anext__()
        finally:
            await g.aclose()

    with pytest.warns(ResourceWarning,
                      match='was scheduled after loop.shutdown_asyncgens'):
        assert loop.run_until_complete(main()) == 'value'


def test_hooks_installed_only_while_running(loop):
    """While the loop runs, the async generator hooks are the loop's; after
    run_until_complete() returns, they are what they were before."""
    def firstiter(agen):
        pass

    def finalizer(agen):
        pass

    saved = sys.get_asyncgen_hooks()
    sys.set_asyncgen_hooks(firstiter, finalizer)
    try:
        async def main():
            hooks = sys.get_asyncgen_hooks()
            return hooks.firstiter, hooks.finalizer

        inner_first, inner_final = loop.run_until_complete(main())
        assert inner_first is not firstiter and inner_first is not None
        assert inner_final is not finalizer and inner_final is not None
        assert sys.get_asyncgen_hooks() == (firstiter, finalizer)
    finally:
        sys.set_asyncgen_hooks(*saved)


def test_hooks_restored_after_failed_run(loop):
    """The hooks are restored when the run ends with an exception, and when
    it stops through run_forever()/stop()."""
    saved = sys.get_asyncgen_hooks()
    sys.set_asyncgen_hooks(None, None)
    try:
        async def fail():
            raise ValueError

        with pytest.raises(ValueError):
            loop.run_until_complete(fail())
        assert sys.get_asyncgen_hooks() == (None, None)
        loop.call_soon(loop.stop)
        loop.run_forever()
        assert sys.get_asyncgen_hooks() == (None, None)
    finally:
        sys.set_asyncgen_hooks(*saved)


def test_generators_of_two_loops(new_loop):
    """Each loop tracks the generators first iterated while it ran."""
    first, second = new_loop(), new_loop()
    seen = []

    async def agen(name):
        try:
            yield 1
        finally:
            seen.append(name)

    gens = []

    async def start(name):
        g = agen(name)
        gens.append(g)
        await g.__anext__()

    first.run_until_complete(start('first'))
    second.run_until_complete(start('second'))
    second.run_until_complete(second.shutdown_asyncgens())
    assert seen == ['second']
    first.run_until_complete(first.shutdown_asyncgens())
    assert seen == ['second', 'first']
