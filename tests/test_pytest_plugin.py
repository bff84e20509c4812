"""The pytest plugin (asyncloop/pytest_plugin.py), run on a small user suite.

The suite below has pytest-asyncio tests, anyio tests, plain tests and a
test that only passes on asyncloop. It runs through pytester in a pytest of
its own: without an option of the plugin, with --asyncloop and with
--asyncloop-both. Each async test writes the kind of its running loop to a
file, which tells where it ran.
"""
import os
import sys
import tomllib

import pytest

import asyncloop

pytest.importorskip('pytest_asyncio')
pytest.importorskip('anyio')

pytest_plugins = ['pytester']

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PLUGIN = ['-p', 'asyncloop.pytest_plugin']
# Deprecation warnings fail the run: the plugin must cause none.
STRICT = ['-W', 'error::DeprecationWarning',
          '-W', 'error::PendingDeprecationWarning']

CONFTEST = '''
import asyncio
import os

import pytest

LOG = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'loops.txt')


def loop_kind():
    loop = asyncio.get_running_loop()
    return 'asyncloop' if type(loop).__module__.startswith('asyncloop') \\
        else 'default'


@pytest.fixture
def record(request):
    """record(): writes the test's name and the kind of its loop."""
    def write():
        with open(LOG, 'a') as log:
            log.write(f'{request.node.originalname} {loop_kind()}\\n')
    return write


@pytest.fixture
def anyio_backend():
    return 'asyncio'
'''

TEST_PYTEST_ASYNCIO = '''
import asyncio

import pytest
import pytest_asyncio

import asyncloop
from conftest import loop_kind


@pytest.mark.asyncio
async def test_plain(record):
    await asyncio.sleep(0)
    record()


@pytest_asyncio.fixture
async def fixture_loop():
    yield loop_kind()


@pytest.mark.asyncio
async def test_fixture_on_test_loop(fixture_loop, record):
    assert fixture_loop == loop_kind()
    record()


@pytest.mark.asyncio
async def test_needs_asyncloop(record):
    record()
    assert isinstance(asyncio.get_running_loop(), asyncloop.Loop)


@pytest.mark.asyncio
async def test_fails(record):
    record()
    assert False, 'fails on every loop'


class TestClassLoop:
    @pytest.mark.asyncio(loop_scope='class')
    async def test_one(self, record):
        record()

    @pytest.mark.asyncio(loop_scope='class')
    async def test_two(self, record):
        record()
'''

TEST_ANYIO = '''
import asyncio

import anyio
import pytest

from conftest import loop_kind

pytestmark = pytest.mark.anyio


async def test_anyio_plain(record):
    await anyio.sleep(0)
    record()


@pytest.fixture
async def anyio_fixture_loop():
    yield loop_kind()


async def test_anyio_fixture(anyio_fixture_loop, record):
    assert anyio_fixture_loop == loop_kind()
    record()


@pytest.mark.parametrize('anyio_backend', ['asyncio'])
async def test_anyio_own_backend_parameter(anyio_backend, record):
    record()


async def test_anyio_task_group(record):
    results = []
    async with anyio.create_task_group() as tg:
        for n in range(3):
            tg.start_soon(asyncio.sleep, 0, n)
    record()
'''

TEST_ANYIO_MODULE = '''
import pytest

from conftest import loop_kind

pytestmark = pytest.mark.anyio


@pytest.fixture(scope='module')
def anyio_backend():
    return 'asyncio'


@pytest.fixture(scope='module')
async def module_fixture_loop():
    yield loop_kind()


async def test_module_fixture_first(module_fixture_loop, record):
    assert module_fixture_loop == loop_kind()
    record()


async def test_module_fixture_second(module_fixture_loop, record):
    assert module_fixture_loop == loop_kind()
    record()
'''

TEST_SYNC = '''
import asyncio


def test_sync():
    assert asyncio.get_event_loop_policy() is not None


def test_sync_asyncio_run():
    assert asyncio.run(asyncio.sleep(0, 'done')) == 'done'
'''

# The async tests of the suite and whether they pass (on any loop).
ASYNC_TESTS = {
    'test_plain': True,
    'test_fixture_on_test_loop': True,
    'test_needs_asyncloop': None,           # on asyncloop only
    'test_fails': False,
    'test_one': True,
    'test_two': True,
    'test_anyio_plain': True,
    'test_anyio_fixture': True,
    'test_anyio_own_backend_parameter': True,
    'test_anyio_task_group': True,
    'test_module_fixture_first': True,
    'test_module_fixture_second': True,
}
SYNC_TESTS = ['test_sync', 'test_sync_asyncio_run']
# The parameters tests have of their own.
OWN_PARAMS = {'test_anyio_own_backend_parameter': 'asyncio'}


def node_id(name, loop=None):
    """The id pytest prints for test `name` (on `loop` with --asyncloop-both)."""
    params = [p for p in (loop, OWN_PARAMS.get(name)) if p]
    return f'{name}[{"-".join(params)}]' if params else name


@pytest.fixture
def suite(pytester):
    pytester.makeini('''
        [pytest]
        asyncio_default_fixture_loop_scope = function
    ''')
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_pytest_asyncio=TEST_PYTEST_ASYNCIO,
                        test_anyio=TEST_ANYIO,
                        test_anyio_module=TEST_ANYIO_MODULE,
                        test_sync=TEST_SYNC)
    return pytester


def run(pytester, *args):
    """Run the suite; return the result and {test name: [loop kinds]}."""
    result = pytester.runpytest(*PLUGIN, *STRICT, '-p', 'no:cacheprovider',
                                '-v', *args)
    loops = {}
    log = pytester.path / 'loops.txt'
    if log.exists():
        for line in log.read_text().splitlines():
            name, kind = line.split()
            loops.setdefault(name, []).append(kind)
        log.unlink()
    return result, loops


def outcomes(result):
    """{node id as printed: PASSED/FAILED/...} of a -v run."""
    found = {}
    for line in result.outlines:
        parts = line.split()
        if len(parts) >= 2 and '::' in parts[0] and parts[1].isupper():
            found[parts[0].split('::')[-1]] = parts[1]
    return found


def expected_outcome(name, kind):
    passes = ASYNC_TESTS[name]
    if passes is None:
        passes = kind == 'asyncloop'
    return 'PASSED' if passes else 'FAILED'


def header_lines(result):
    return [line for line in result.outlines if line.startswith('asyncloop:')]


def test_without_option_nothing_changes(suite):
    plain = suite.runpytest(*STRICT, '-p', 'no:cacheprovider', '-v')
    (suite.path / 'loops.txt').unlink()
    result, loops = run(suite)
    assert outcomes(result) == outcomes(plain)
    assert header_lines(result) == []
    assert loops == {name: ['default'] for name in ASYNC_TESTS}
    for name in ASYNC_TESTS:
        assert outcomes(result)[node_id(name)] == \
            expected_outcome(name, 'default')
    result.assert_outcomes(passed=len(ASYNC_TESTS) - 2 + len(SYNC_TESTS),
                           failed=2)


def test_asyncloop_option(suite):
    result, loops = run(suite, '--asyncloop')
    assert loops == {name: ['asyncloop'] for name in ASYNC_TESTS}
    got = outcomes(result)
    # The test ids are the user's own: no parameter is added.
    assert set(got) == {node_id(name) for name in [*ASYNC_TESTS, *SYNC_TESTS]}
    for name in ASYNC_TESTS:
        assert got[node_id(name)] == expected_outcome(name, 'asyncloop')
    result.assert_outcomes(passed=len(ASYNC_TESTS) - 1 + len(SYNC_TESTS),
                           failed=1)
    [header] = header_lines(result)
    assert 'pytest-asyncio and anyio (asyncio backend) tests run on ' \
        'asyncloop' in header


def test_asyncloop_both_option(suite):
    result, loops = run(suite, '--asyncloop-both')
    got = outcomes(result)
    for name in ASYNC_TESTS:
        assert sorted(loops[name]) == ['asyncloop', 'default'], name
        for kind, param in (('default', 'default_loop'),
                            ('asyncloop', 'asyncloop')):
            assert got[node_id(name, param)] == expected_outcome(name, kind)
    for name in SYNC_TESTS:
        assert got[name] == 'PASSED'
    assert len(got) == 2 * len(ASYNC_TESTS) + len(SYNC_TESTS)
    # test_fails fails twice, test_needs_asyncloop on the default loop.
    result.assert_outcomes(
        passed=2 * len(ASYNC_TESTS) - 3 + len(SYNC_TESTS), failed=3)
    [header] = header_lines(result)
    assert 'run twice, on the default loop [default_loop] and on ' \
        'asyncloop' in header


def test_both_reports_the_loop_of_a_failure(suite):
    result, _ = run(suite, '--asyncloop-both', '-k', 'needs_asyncloop')
    summary = [line for line in result.outlines if line.startswith('FAILED')]
    assert len(summary) == 1
    assert summary[0].startswith(
        'FAILED test_pytest_asyncio.py::test_needs_asyncloop[default_loop]')
    result.assert_outcomes(passed=1, failed=1)


def test_options_off_register_nothing(suite):
    config = suite.parseconfigure(*PLUGIN)
    names = [name for name, _ in config.pluginmanager.list_name_plugin()]
    assert [n for n in names if n.startswith('asyncloop-')] == []


def test_options_on_register_their_parts(suite):
    config = suite.parseconfigure(*PLUGIN, '--asyncloop')
    for name in ('asyncloop-pytest-asyncio', 'asyncloop-anyio',
                 'asyncloop-header'):
        assert config.pluginmanager.get_plugin(name) is not None


def test_entry_point_loads_the_plugin(suite, tmp_path, monkeypatch):
    """The pytest11 entry point of pyproject.toml, as pip installs it,
    loads the plugin without -p."""
    with open(os.path.join(ROOT, 'pyproject.toml'), 'rb') as f:
        project = tomllib.load(f)['project']
    entry_points = project['entry-points']['pytest11']
    assert entry_points == {'asyncloop': 'asyncloop.pytest_plugin'}
    version = asyncloop.__version__
    info = tmp_path / 'site' / f'asyncloop_uv-{version}.dist-info'
    info.mkdir(parents=True)
    (info / 'METADATA').write_text(
        f'Metadata-Version: 2.1\nName: asyncloop-uv\n'
        f'Version: {version}\n')
    (info / 'entry_points.txt').write_text(
        '[pytest11]\n' + ''.join(f'{name} = {value}\n'
                                 for name, value in entry_points.items()))
    monkeypatch.setenv('PYTHONPATH', os.pathsep.join(
        [str(tmp_path / 'site'), ROOT]))
    result = suite.runpytest_subprocess(
        '--asyncloop', '-p', 'no:cacheprovider', '-k', 'test_plain',
        timeout=60)
    result.assert_outcomes(passed=1)
    assert (suite.path / 'loops.txt').read_text() == 'test_plain asyncloop\n'
    assert len(header_lines(result)) == 1


def test_plugin_module_imports_no_framework():
    """Loaded by every pytest run once asyncloop is installed: importing it
    pulls in neither pytest-asyncio nor anyio."""
    code = ('import sys, asyncloop.pytest_plugin; '
            'print(sorted(m for m in ("pytest_asyncio", "anyio") '
            'if m in sys.modules))')
    import subprocess
    out = subprocess.run([sys.executable, '-c', code], cwd=ROOT,
                         capture_output=True, text=True, timeout=60,
                         check=True).stdout
    assert out.strip() == '[]'
