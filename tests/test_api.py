"""The public API of the package: Loop, new_event_loop, EventLoopPolicy,
install, run, __version__ and the typing marker.

asyncloop.run() must behave as asyncio.run(): the tests that compare them
are parametrized over both, asyncio.run being the reference.
"""
import asyncio
import contextvars
import pathlib
import re
import sys
import threading
import warnings

import pytest

import asyncloop

PY312 = sys.version_info >= (3, 12)
ROOT = pathlib.Path(__file__).parent.parent


@pytest.fixture
def restore_policy():
    """Put the event loop policy in place before the test back afterwards."""
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', DeprecationWarning)
        saved = asyncio.get_event_loop_policy()
    yield
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', DeprecationWarning)
        asyncio.set_event_loop_policy(saved)
        asyncio.set_event_loop(None)


# ---- Loop and new_event_loop ---------------------------------------------

def test_loop_is_an_abstract_event_loop():
    """asyncloop.Loop is an asyncio.AbstractEventLoop, so isinstance checks
    of libraries accept it."""
    assert issubclass(asyncloop.Loop, asyncio.AbstractEventLoop)


def test_new_event_loop():
    """new_event_loop() returns a fresh, idle, open asyncloop.Loop each
    time."""
    a = asyncloop.new_event_loop()
    b = asyncloop.new_event_loop()
    try:
        assert type(a) is asyncloop.Loop
        assert isinstance(a, asyncio.AbstractEventLoop)
        assert a is not b
        assert not a.is_running() and not a.is_closed()
        assert a.run_until_complete(asyncio.sleep(0, 'ran')) == 'ran'
    finally:
        a.close()
        b.close()
    assert a.is_closed()


def test_all_names_exist():
    """Every name in __all__ is defined."""
    for name in asyncloop.__all__:
        assert hasattr(asyncloop, name), name


def test_version_string():
    """__version__ is a version string (tests/test_packaging.py checks that
    it is the one the build declares)."""
    assert isinstance(asyncloop.__version__, str)
    assert re.fullmatch(r'\d+\.\d+(\.\d+)?([a-z]+\d*)?(\.dev\d+)?',
                        asyncloop.__version__)


def test_libuv_version():
    """libuv_version() names the libuv the module runs on (>= 1.44)."""
    version = asyncloop.libuv_version()
    major, minor = map(int, version.split('.')[:2])
    assert (major, minor) >= (1, 44)


def test_ships_py_typed():
    """The package carries the PEP 561 marker, and the build ships it."""
    package = pathlib.Path(asyncloop.__file__).parent
    assert (package / 'py.typed').is_file()
    pyproject = ROOT / 'pyproject.toml'
    if pyproject.exists():
        assert 'py.typed' in pyproject.read_text()


# ---- EventLoopPolicy and install() ---------------------------------------

def test_event_loop_policy(restore_policy):
    """With asyncloop's policy set, asyncio.new_event_loop(), asyncio.run()
    and asyncio.Runner() make asyncloop loops."""
    policy = asyncloop.EventLoopPolicy()
    assert isinstance(policy, asyncio.AbstractEventLoopPolicy)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', DeprecationWarning)
        asyncio.set_event_loop_policy(policy)
    loop = asyncio.new_event_loop()
    try:
        assert type(loop) is asyncloop.Loop
    finally:
        loop.close()

    async def kind():
        return type(asyncio.get_running_loop())

    assert asyncio.run(kind()) is asyncloop.Loop
    with asyncio.Runner() as runner:
        assert runner.run(kind()) is asyncloop.Loop
        assert type(runner.get_loop()) is asyncloop.Loop


def test_event_loop_policy_set_and_get_loop(restore_policy):
    """The policy's set_event_loop()/get_event_loop() keep the loop set."""
    policy = asyncloop.EventLoopPolicy()
    loop = policy.new_event_loop()
    try:
        assert type(loop) is asyncloop.Loop
        policy.set_event_loop(loop)
        assert policy.get_event_loop() is loop
        policy.set_event_loop(None)
    finally:
        loop.close()


def test_event_loop_policy_per_thread(restore_policy):
    """A loop set in one thread is not another thread's loop."""
    policy = asyncloop.EventLoopPolicy()
    loop = policy.new_event_loop()
    other = []
    try:
        policy.set_event_loop(loop)

        def in_thread():
            try:
                policy.get_event_loop()
                other.append('got a loop')
            except RuntimeError:
                other.append('RuntimeError')

        t = threading.Thread(target=in_thread)
        t.start()
        t.join(10)
        assert other == ['RuntimeError']
        policy.set_event_loop(None)
    finally:
        loop.close()


def test_install(restore_policy):
    """install() sets asyncloop's policy; it is deprecated (a
    DeprecationWarning) on 3.12+, where the policy system is, and silent
    on 3.11."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        asyncloop.install()
    deprecations = [w for w in caught
                    if issubclass(w.category, DeprecationWarning)]
    if PY312:
        assert len(deprecations) == 1
        assert deprecations[0].filename == __file__
    else:
        assert deprecations == []
    assert isinstance(asyncio.get_event_loop_policy(),
                      asyncloop.EventLoopPolicy)
    loop = asyncio.new_event_loop()
    try:
        assert type(loop) is asyncloop.Loop
    finally:
        loop.close()


# ---- run() -----------------------------------------------------------------

RUNS = [pytest.param(asyncio.run, id='asyncio.run'),
        pytest.param(asyncloop.run, id='asyncloop.run')]


def loop_kind(run):
    return asyncloop.Loop if run is asyncloop.run else None


@pytest.mark.parametrize('run', RUNS)
def test_run_returns_result(run):
    """run() returns the coroutine's result; asyncloop.run runs it on an
    asyncloop loop."""
    async def main():
        return 42, type(asyncio.get_running_loop())

    result, kind = run(main())
    assert result == 42
    if run is asyncloop.run:
        assert kind is asyncloop.Loop


@pytest.mark.parametrize('run', RUNS)
def test_run_propagates_exception(run):
    """An exception of the coroutine comes out of run()."""
    async def main():
        await asyncio.sleep(0)
        raise LookupError('from main')

    with pytest.raises(LookupError, match='from main'):
        run(main())


@pytest.mark.parametrize('run', RUNS)
def test_run_propagates_cancellation(run):
    """A main task that cancels itself makes run() raise CancelledError."""
    async def main():
        asyncio.current_task().cancel()
        await asyncio.sleep(0)

    with pytest.raises(asyncio.CancelledError):
        run(main())


@pytest.mark.parametrize('run', RUNS)
def test_run_closes_loop(run):
    """The loop is closed when run() returns, and when it raises."""
    loops = []

    async def main(fail):
        loops.append(asyncio.get_running_loop())
        if fail:
            raise ValueError

    run(main(False))
    with pytest.raises(ValueError):
        run(main(True))
    assert all(loop.is_closed() for loop in loops)
    assert loops[0] is not loops[1]


@pytest.mark.parametrize('run', RUNS)
def test_run_cancels_leftover_tasks(run):
    """Tasks still pending when main returns are cancelled, and their
    cancellation handling runs before the loop closes."""
    seen = []

    async def leftover():
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            seen.append(('cancelled', asyncio.get_running_loop().is_closed()))
            raise

    async def main():
        asyncio.get_running_loop().create_task(leftover())
        await asyncio.sleep(0)

    run(main())
    assert seen == [('cancelled', False)]


@pytest.mark.parametrize('run', RUNS)
def test_run_reports_errors_of_leftover_tasks(run):
    """A leftover task that fails while being cancelled is reported to the
    exception handler with asyncio.run()'s message."""
    contexts = []

    async def leftover():
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            raise KeyError('during cancellation')

    async def main():
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda lp, ctx: contexts.append(ctx))
        loop.create_task(leftover())
        await asyncio.sleep(0)

    run(main())
    assert len(contexts) == 1
    assert contexts[0]['message'] == (
        'unhandled exception during asyncio.run() shutdown')
    assert isinstance(contexts[0]['exception'], KeyError)


@pytest.mark.parametrize('run', RUNS)
def test_run_shuts_down_asyncgens(run):
    """An async generator left suspended by main is closed (its finally
    runs) before the loop closes."""
    seen = []

    async def agen():
        try:
            yield 1
            yield 2
        finally:
            seen.append(asyncio.get_running_loop().is_closed())

    gens = []

    async def main():
        g = agen()
        gens.append(g)  # keep it alive: only shutdown_asyncgens closes it
        assert await g.__anext__() == 1

    run(main())
    assert seen == [False]


@pytest.mark.parametrize('run', RUNS)
def test_run_shuts_down_default_executor(run):
    """The default executor's threads are joined before run() returns."""
    threads = []

    async def main():
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(
            None, lambda: threads.append(threading.current_thread()))

    run(main())
    assert len(threads) == 1
    assert threads[0] is not threading.current_thread()
    assert not threads[0].is_alive()


@pytest.mark.parametrize('run', RUNS)
def test_run_from_running_loop(run):
    """run() inside a running loop is a RuntimeError; the outer loop goes
    on."""
    async def inner():
        pass

    async def main():
        coro = inner()
        try:
            with pytest.raises(RuntimeError,
                               match='cannot be called from a running '
                                     'event loop'):
                run(coro)
        finally:
            coro.close()
        return 'outer ok'

    assert run(main()) == 'outer ok'


@pytest.mark.parametrize('run', RUNS)
def test_run_rejects_non_coroutine(run):
    """run() of something that is not a coroutine is a ValueError."""
    async def main():
        pass

    with pytest.raises(ValueError, match='a coroutine was expected'):
        run(main)


@pytest.mark.parametrize('run', RUNS)
@pytest.mark.parametrize('debug', [True, False])
def test_run_debug(run, debug):
    """run(debug=...) sets the loop's debug mode."""
    async def main():
        return asyncio.get_running_loop().get_debug()

    assert run(main(), debug=debug) is debug


@pytest.mark.parametrize('run', RUNS)
def test_run_debug_none_follows_environment(run, monkeypatch):
    """debug=None leaves the loop's default, which follows
    PYTHONASYNCIODEBUG and -X dev."""
    monkeypatch.delenv('PYTHONASYNCIODEBUG', raising=False)

    async def main():
        return asyncio.get_running_loop().get_debug()

    expected = bool(sys.flags.dev_mode)
    assert run(main(), debug=None) is expected
    monkeypatch.setenv('PYTHONASYNCIODEBUG', '1')
    assert run(main()) is (True if not sys.flags.ignore_environment
                           else expected)


@pytest.mark.parametrize('run', RUNS)
def test_run_copies_context(run):
    """The main task runs in a copy of the caller's context: changes made
    inside do not leak out."""
    var = contextvars.ContextVar('var', default='outer')

    async def main():
        before = var.get()
        var.set('inner')
        return before

    var.set('caller')
    try:
        assert run(main()) == 'caller'
        assert var.get() == 'caller'
    finally:
        var.set('outer')


@pytest.mark.parametrize('run', RUNS)
def test_run_unsets_event_loop(run):
    """After run(), no event loop is left set for the thread."""
    async def main():
        return asyncio.get_event_loop() is asyncio.get_running_loop()

    assert run(main()) is True
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', DeprecationWarning)
        policy = asyncio.get_event_loop_policy()
        local = policy._local
    assert getattr(local, '_loop', None) is None


@pytest.mark.parametrize('run', RUNS)
def test_run_restores_asyncgen_hooks(run):
    """The async generator hooks are the caller's again after run()."""
    def firstiter(agen):
        pass

    def finalizer(agen):
        pass

    saved = sys.get_asyncgen_hooks()
    sys.set_asyncgen_hooks(firstiter, finalizer)
    try:
        async def main():
            return sys.get_asyncgen_hooks().firstiter is firstiter

        assert run(main()) is False
        hooks = sys.get_asyncgen_hooks()
        assert hooks.firstiter is firstiter
        assert hooks.finalizer is finalizer
    finally:
        sys.set_asyncgen_hooks(*saved)


@pytest.mark.skipif(not PY312, reason='asyncio.run(loop_factory=) is 3.12+')
def test_asyncio_run_with_loop_factory():
    """asyncio.run(main(), loop_factory=asyncloop.new_event_loop) runs on
    asyncloop and closes the loop."""
    loops = []

    async def main():
        loops.append(asyncio.get_running_loop())
        await asyncio.sleep(0.001)
        return 'done'

    assert asyncio.run(main(), loop_factory=asyncloop.new_event_loop) == 'done'
    assert type(loops[0]) is asyncloop.Loop
    assert loops[0].is_closed()


def test_asyncloop_run_with_other_loop_factory():
    """asyncloop.run() accepts loop_factory= like asyncio.run() on 3.12."""
    async def main():
        return type(asyncio.get_running_loop())

    assert asyncloop.run(main(), loop_factory=asyncio.new_event_loop) is not \
        asyncloop.Loop


def test_runner_with_loop_factory():
    """asyncio.Runner(loop_factory=asyncloop.new_event_loop): several runs
    on one asyncloop loop, closed with the runner."""
    async def step(n):
        await asyncio.sleep(0)
        return n, asyncio.get_running_loop()

    with asyncio.Runner(loop_factory=asyncloop.new_event_loop) as runner:
        loop = runner.get_loop()
        assert type(loop) is asyncloop.Loop
        assert runner.run(step(1)) == (1, loop)
        assert runner.run(step(2)) == (2, loop)
    assert loop.is_closed()


def test_runner_with_loop_factory_and_debug():
    """Runner(debug=True, loop_factory=...) turns debug mode on."""
    async def main():
        return asyncio.get_running_loop().get_debug()

    with asyncio.Runner(debug=True,
                        loop_factory=asyncloop.new_event_loop) as runner:
        assert runner.run(main()) is True


def test_runner_context():
    """Runner.run(context=...) runs the coroutine in the given context, on
    asyncloop as on the default loop; asyncloop.run() forwards context=."""
    var = contextvars.ContextVar('var', default='unset')
    ctx = contextvars.copy_context()
    ctx.run(var.set, 'in ctx')

    async def main():
        return var.get()

    with asyncio.Runner(loop_factory=asyncloop.new_event_loop) as runner:
        assert runner.run(main(), context=ctx) == 'in ctx'
    assert asyncloop.run(main(), context=ctx) == 'in ctx'


def test_loop_subclass():
    """asyncloop.Loop can be subclassed; an overridden method is the one
    the loop's machinery (tasks) calls."""
    class Counting(asyncloop.Loop):
        def __init__(self):
            super().__init__()
            self.soon = 0

        def call_soon(self, *args, **kwargs):
            self.soon += 1
            return super().call_soon(*args, **kwargs)

    loop = Counting()
    try:
        assert loop.run_until_complete(asyncio.sleep(0.001, 'sub')) == 'sub'
        assert loop.soon >= 1
        assert isinstance(loop, asyncio.AbstractEventLoop)
    finally:
        loop.close()


def test_policy_get_event_loop_creates_loop_in_main_thread(restore_policy):
    """The policy's get_event_loop() in the main thread, with no loop set,
    makes an asyncloop loop as the default policy makes its own (3.12+
    warn about it, as they do for the default policy)."""
    policy = asyncloop.EventLoopPolicy()
    reference = asyncio.DefaultEventLoopPolicy()
    made = []
    try:
        for pol in (reference, policy):
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter('always')
                made.append(pol.get_event_loop())
            made.append([w.category for w in caught])
        assert type(made[2]) is asyncloop.Loop
        assert made[3] == made[1]
        assert policy.get_event_loop() is made[2]
    finally:
        for item in made:
            if isinstance(item, asyncio.AbstractEventLoop):
                item.close()
        policy.set_event_loop(None)
        reference.set_event_loop(None)
