"""pytest plugin: run a test suite's asyncio tests on asyncloop.

    pytest --asyncloop          pytest-asyncio tests, and anyio tests on the
                                asyncio backend, run on asyncloop
    pytest --asyncloop-both     each of those tests runs twice, on the default
                                loop ([default_loop]) and on asyncloop
                                ([asyncloop]), to show where code depends on
                                the loop

The plugin is registered through the pytest11 entry point, so it is loaded
whenever asyncloop is installed: without one of its options it adds the two
options and nothing else (no hook, no fixture, no import of pytest-asyncio
or anyio).

pytest-asyncio >= 1.4 gets the loop through its pytest_asyncio_loop_factories
hook; older releases through their event_loop_policy fixture (one loop only).
anyio gets it through the "loop_factory" backend option of its asyncio
backend, added to whatever the suite's anyio_backend fixture returns.
"""
import inspect

import pytest
from _pytest.scope import Scope

# The names the two loops have in test ids and in the report.
DEFAULT = 'default_loop'
ASYNCLOOP = 'asyncloop'

# The parameter that carries the loop of an anyio test with --asyncloop-both.
_ANYIO_LOOP_ARG = '_asyncloop_anyio_loop'


def pytest_addoption(parser):
    group = parser.getgroup('asyncloop', 'asyncloop event loop')
    group.addoption(
        '--asyncloop', action='store_true', default=False,
        help='run pytest-asyncio tests and anyio tests on the asyncio '
             'backend on the asyncloop event loop')
    group.addoption(
        '--asyncloop-both', action='store_true', default=False,
        help='run each pytest-asyncio and anyio (asyncio backend) test twice: '
             'on the default event loop and on asyncloop')


def _mode(config):
    """'both', 'asyncloop' or None (the plugin is off)."""
    if config.getoption('asyncloop_both'):
        return 'both'
    if config.getoption('asyncloop'):
        return ASYNCLOOP
    return None


@pytest.hookimpl(trylast=True)
def pytest_configure(config):
    mode = _mode(config)
    if mode is None:
        return
    manager = config.pluginmanager
    used = []
    if manager.hasplugin('asyncio'):
        manager.register(_pytest_asyncio_plugin(config, mode),
                         'asyncloop-pytest-asyncio')
        used.append('pytest-asyncio')
    if manager.hasplugin('anyio'):
        manager.register(_AnyioLoops(mode), 'asyncloop-anyio')
        used.append('anyio (asyncio backend)')
    manager.register(_Header(mode, used), 'asyncloop-header')


def _pytest_asyncio_plugin(config, mode):
    # The hook spec is added by pytest-asyncio's pytest_addoption, so it is
    # known by now when this pytest-asyncio has it.
    if hasattr(config.hook, 'pytest_asyncio_loop_factories'):
        return _PytestAsyncioLoops(mode)
    if mode == 'both':
        raise pytest.UsageError(
            '--asyncloop-both needs pytest-asyncio >= 1.4 (its '
            'pytest_asyncio_loop_factories hook); --asyncloop works with '
            'older releases')
    return _PytestAsyncioPolicy()


class _Header:
    """The line in pytest's report header that says which loops run."""

    def __init__(self, mode, used):
        self.mode = mode
        self.used = used

    def pytest_report_header(self, config):
        import asyncloop
        ours = f'asyncloop {asyncloop.__version__} ' \
               f'(libuv {asyncloop.libuv_version()})'
        tests = ' and '.join(self.used) or \
            'no test (neither pytest-asyncio nor anyio is installed)'
        if self.mode == 'both':
            return f'asyncloop: {tests} tests run twice, on the default loop ' \
                   f'[{DEFAULT}] and on {ours} [{ASYNCLOOP}]'
        return f'asyncloop: {tests} tests run on {ours}'


class _PytestAsyncioLoops:
    """pytest-asyncio >= 1.4: the loop factories its runners use."""

    def __init__(self, mode):
        import asyncio
        import asyncloop
        if mode == 'both':
            # asyncio.new_event_loop, not the class of the default loop:
            # a test that sets its own policy keeps it on the default side.
            self.factories = {DEFAULT: asyncio.new_event_loop,
                              ASYNCLOOP: asyncloop.new_event_loop}
        else:
            self.factories = {ASYNCLOOP: asyncloop.new_event_loop}

    # tryfirst: asked for on the command line, it wins over a conftest's.
    @pytest.hookimpl(tryfirst=True, optionalhook=True)
    def pytest_asyncio_loop_factories(self, config, item):
        return self.factories


class _PytestAsyncioPolicy:
    """pytest-asyncio < 1.4: its event_loop_policy fixture, overridden.

    Registered after pytest-asyncio, so this definition is the one used,
    unless the suite overrides the fixture itself.
    """

    @pytest.fixture(scope='session')
    def event_loop_policy(self):
        import asyncloop
        return asyncloop.EventLoopPolicy()


class _AnyioLoops:
    """anyio: the value of the anyio_backend fixture gets asyncloop's
    loop_factory when its backend is asyncio."""

    def __init__(self, mode):
        self.mode = mode

    @pytest.hookimpl(tryfirst=True)
    def pytest_generate_tests(self, metafunc):
        """With --asyncloop-both, a parameter that picks the loop.

        The anyio_backend fixture and the async fixtures of the test
        request it, so that each loop gets its own backend value and its
        own async fixture values (which hold the anyio runner, and so the
        loop, while they live). Async fixtures of a wider scope than
        anyio_backend's are made once, on the loop of their first test.
        """
        if self.mode != 'both' or 'anyio_backend' not in metafunc.fixturenames:
            return
        fixturedefs = metafunc._arg2fixturedefs
        backend = fixturedefs.get('anyio_backend')
        # None when the test parametrizes anyio_backend itself.
        backend = backend[-1] if backend else None
        scope = backend._scope if backend else Scope.Function
        for name in metafunc.fixturenames:
            defs = fixturedefs.get(name)
            if not defs:
                continue
            fixturedef = defs[-1]
            if fixturedef is backend or (
                    _is_async(fixturedef.func) and fixturedef._scope <= scope):
                _request_loop_arg(fixturedef)
        if _ANYIO_LOOP_ARG not in metafunc.fixturenames:
            metafunc.fixturenames.append(_ANYIO_LOOP_ARG)
        metafunc.parametrize(_ANYIO_LOOP_ARG, [DEFAULT, ASYNCLOOP],
                             scope=scope.value)

    # trylast: inside anyio's own wrapper, which has by then replaced the
    # function of an async fixture by the generator that runs it.
    @pytest.hookimpl(wrapper=True, trylast=True)
    def pytest_fixture_setup(self, fixturedef, request):
        func = fixturedef.func
        if fixturedef.argname == 'anyio_backend':
            fixturedef.func = self._backend(_bind(func, request), request)
        elif _ANYIO_LOOP_ARG in fixturedef.argnames:
            fixturedef.func = _without_loop_arg(func)
        else:
            return (yield)
        try:
            return (yield)
        finally:
            fixturedef.func = func

    def _backend(self, func, request):
        """The anyio_backend fixture function func, its value converted."""
        mode = self.mode
        doubled = mode == 'both'

        def loop_of(kwargs):
            if _ANYIO_LOOP_ARG in kwargs:
                return kwargs.pop(_ANYIO_LOOP_ARG)
            # A test that parametrizes anyio_backend itself replaces the
            # fixture by one that does not take the loop parameter.
            callspec = getattr(request._pyfuncitem, 'callspec', None)
            if callspec is not None:
                return callspec.params.get(_ANYIO_LOOP_ARG, mode)
            return mode

        if inspect.isgeneratorfunction(func):
            def anyio_backend(**kwargs):
                loop = loop_of(kwargs)
                values = func(**kwargs)
                yield _with_loop(next(values), loop, doubled)
                next(values, None)
        else:
            def anyio_backend(**kwargs):
                loop = loop_of(kwargs)
                return _with_loop(func(**kwargs), loop, doubled)
        return anyio_backend


def _is_async(func):
    return inspect.iscoroutinefunction(func) or \
        inspect.isasyncgenfunction(func)


def _request_loop_arg(fixturedef):
    """Make the fixture depend on the loop parameter: pytest then makes
    it anew when the loop changes."""
    if _ANYIO_LOOP_ARG not in fixturedef.argnames:
        fixturedef.argnames += (_ANYIO_LOOP_ARG,)


def _without_loop_arg(func):
    """The fixture function func (for an anyio async fixture, anyio's
    generator that runs it), called without the loop parameter it does not
    take."""
    if inspect.isgeneratorfunction(func):
        def fixture(**kwargs):
            kwargs.pop(_ANYIO_LOOP_ARG, None)
            return (yield from func(**kwargs))
    else:
        def fixture(**kwargs):
            kwargs.pop(_ANYIO_LOOP_ARG, None)
            return func(**kwargs)
    return fixture


def _bind(func, request):
    """func bound to the test's class instance, as pytest binds fixtures
    defined in a test class."""
    instance = request.instance
    owner = getattr(func, '__self__', None)
    if instance is not None and owner is not None and \
            isinstance(instance, type(owner)):
        return func.__func__.__get__(instance)
    return func


def _with_loop(backend, loop, doubled):
    """The anyio backend value `backend` running on `loop`; doubled when
    the test also runs on the default loop."""
    if loop != ASYNCLOOP:
        return backend
    if isinstance(backend, str):
        name, options = backend, {}
    else:
        name, options = backend
    if name != 'asyncio':
        # Only the asyncio backend has a loop to replace: with --asyncloop
        # the test runs as it is, with --asyncloop-both once is enough.
        if doubled:
            pytest.skip(f'asyncloop replaces the loop of the asyncio '
                        f'backend only, this test runs on {name}')
        return backend
    import asyncloop
    return name, {**options, 'loop_factory': asyncloop.new_event_loop}
