"""pytest plugin: run a third-party suite on a chosen event loop, and prove it.

Loaded with `-p loopswap` (its folder on PYTHONPATH); reads the JSON file
named by ECOSYSTEM_CONFIG:

    {"loop": "asyncio" | "uvloop" | "asyncloop",
     "deselect": [[node id regex, reason], ...],
     "patch_uvicorn": bool,
     "report": "path of the JSON report this plugin writes"}

The loop is installed where the suites get theirs: the event loop policy,
asyncio.DefaultEventLoopPolicy (asyncio builds it again after
set_event_loop_policy(None)) and, on request, uvicorn's loop="asyncio"
factory.  pytest-asyncio, anyio's plugin, aiohttp's `loop` fixture,
IsolatedAsyncioTestCase and asyncpg's test base all create their loops
through asyncio.new_event_loop() or the policy, so they follow.

The proof is a count of the loops created, by type, and of the tests during
which a loop of each type was created.  Loops are counted where they are
made: asyncio.new_event_loop, the policy's new_event_loop, uvloop's and
asyncloop's new_event_loop, and BaseEventLoop.__init__ (every asyncio loop,
however it is made).  A loop made through several of these is counted once.
"""

import asyncio
import collections
import functools
import json
import os
import re
import threading

import pytest

_CONFIG = {}
_tls = threading.local()
_lock = threading.Lock()
_created = collections.Counter()      # loop type name -> loops created
_tests_on = collections.Counter()     # loop type name -> tests creating one
_foreign_policy_tests = []            # tests that ran under another policy
_foreign_loop_tests = {}              # test -> other loop types it made
_deselected = {}                      # node id -> reason
_expected_type = None                 # the type name of the loop under test
_policy_class = None


def _type_name(obj):
    cls = type(obj)
    return f'{cls.__module__}.{cls.__qualname__}'


def _record(loop):
    with _lock:
        _created[_type_name(loop)] += 1


def _outermost(call):
    """Run call() and say whether no other counted maker was running.

    A loop made by asyncio.new_event_loop() goes through the policy and
    BaseEventLoop.__init__ too: only the outermost maker counts it.
    """
    depth = getattr(_tls, 'depth', 0)
    _tls.depth = depth + 1
    try:
        return call(), depth == 0
    finally:
        _tls.depth = depth


def _counted_maker(make):
    @functools.wraps(make)
    def maker(*args, **kwargs):
        loop, outermost = _outermost(lambda: make(*args, **kwargs))
        if outermost:
            _record(loop)
        return loop
    return maker


def _count_asyncio_loops():
    init = asyncio.BaseEventLoop.__init__

    @functools.wraps(init)
    def counted_init(self, *args, **kwargs):
        _, outermost = _outermost(lambda: init(self, *args, **kwargs))
        if outermost:
            _record(self)

    asyncio.BaseEventLoop.__init__ = counted_init


def _loop_module(kind):
    """The policy class and loop factory of the loop called `kind`."""
    if kind == 'asyncio':
        return asyncio.DefaultEventLoopPolicy, asyncio.new_event_loop
    if kind == 'uvloop':
        import uvloop
        return uvloop.EventLoopPolicy, uvloop.new_event_loop
    if kind == 'asyncloop':
        import asyncloop
        return asyncloop.EventLoopPolicy, asyncloop.new_event_loop
    raise pytest.UsageError(f'loopswap: unknown loop {kind!r}')


def _patch_makers():
    asyncio.new_event_loop = _counted_maker(asyncio.new_event_loop)
    asyncio.events.new_event_loop = asyncio.new_event_loop
    for name in ('uvloop', 'asyncloop'):
        try:
            module = __import__(name)
        except ImportError:
            continue
        module.new_event_loop = _counted_maker(module.new_event_loop)
    _count_asyncio_loops()


def _install(kind):
    global _expected_type, _policy_class
    base_policy, factory = _loop_module(kind)
    probe = factory()
    _expected_type = _type_name(probe)
    probe.close()

    _patch_makers()

    class CountingPolicy(base_policy):
        new_event_loop = _counted_maker(base_policy.new_event_loop)

    CountingPolicy.__name__ = CountingPolicy.__qualname__ = (
        f'{kind}CountingPolicy')
    _policy_class = CountingPolicy
    asyncio.DefaultEventLoopPolicy = CountingPolicy
    asyncio.set_event_loop_policy(CountingPolicy())


def _patch_uvicorn():
    """uvicorn's loop="asyncio" factory returns the loop under test."""
    import uvicorn.loops.asyncio as uvicorn_asyncio

    def asyncio_loop_factory(use_subprocess=False):
        return asyncio.new_event_loop

    uvicorn_asyncio.asyncio_loop_factory = asyncio_loop_factory


def pytest_configure(config):
    path = os.environ.get('ECOSYSTEM_CONFIG')
    if not path:
        raise pytest.UsageError('loopswap: ECOSYSTEM_CONFIG is not set')
    with open(path) as f:
        _CONFIG.update(json.load(f))
    _install(_CONFIG['loop'])
    if _CONFIG.get('patch_uvicorn'):
        _patch_uvicorn()


def pytest_collection_modifyitems(config, items):
    patterns = [(re.compile(regex), reason)
                for regex, reason in _CONFIG.get('deselect', ())]
    if not patterns:
        return
    kept, dropped = [], []
    for item in items:
        reason = next((why for regex, why in patterns
                       if regex.search(item.nodeid)), None)
        if reason is None:
            kept.append(item)
        else:
            dropped.append(item)
            _deselected[item.nodeid] = reason
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    before = dict(_created)
    yield
    with _lock:
        made = [name for name, n in _created.items()
                if n > before.get(name, 0)]
    for name in made:
        _tests_on[name] += 1
    foreign = [name for name in made if name != _expected_type]
    if foreign:
        _foreign_loop_tests[item.nodeid] = foreign


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    # A suite may install a policy of its own (or reset it): note the tests
    # that ran under one, they may not use the loop under test.
    policy = asyncio.get_event_loop_policy()
    if not isinstance(policy, _policy_class):
        _foreign_policy_tests.append(
            (item.nodeid, _type_name(policy)))
    yield


def _report():
    return {
        'loop': _CONFIG.get('loop'),
        'expected_type': _expected_type,
        'created': dict(_created),
        'tests_on': dict(_tests_on),
        'foreign_policy_tests': _foreign_policy_tests,
        'foreign_loop_tests': _foreign_loop_tests,
        'deselected': _deselected,
    }


def pytest_sessionfinish(session):
    path = _CONFIG.get('report')
    if path:
        with open(path, 'w') as f:
            json.dump(_report(), f, indent=1, sort_keys=True)


def pytest_terminal_summary(terminalreporter):
    write = terminalreporter.write_line
    terminalreporter.section(f'loops ({_CONFIG.get("loop")})')
    write(f'loop under test: {_expected_type}')
    for name, n in sorted(_created.items()):
        write(f'  {name}: {n} loops created, during {_tests_on[name]} tests')
    write(f'tests under another policy: {len(_foreign_policy_tests)}')
    for nodeid, names in sorted(_foreign_loop_tests.items()):
        write(f'  made another loop: {nodeid}: {", ".join(names)}')
    write(f'deselected by the harness: {len(_deselected)}')
