"""The ecosystem suites: pinned versions, how to install and run each one.

Every version the harness uses is pinned here and nowhere else.  A suite's
tests come from the sdist named by `tests_from` (its own sdist unless that
one ships no tests); the project under test is installed from its wheel of
the same version, together with the test requirements read from the sdist
(requirements files, dependency groups, the imports of its tests).

Deselections are regular expressions searched in the pytest node id, each
with its reason.  They are the same on every loop, so the three runs of a
suite collect the same tests.
"""

import dataclasses


@dataclasses.dataclass(frozen=True)
class Suite:
    name: str
    # The distribution whose tests run and its pinned version.
    dist: str
    version: str
    # The packages installed next to it (pinned where the project pins them).
    requirements: tuple
    # The arguments after `pytest` (paths, -m, -o overrides).
    pytest_args: tuple
    # (node id regex, reason) pairs left out on every loop.
    deselect: tuple = ()
    # (path, reason) pairs: test modules left out with --ignore, for those
    # that cannot even be imported from the sdist.
    ignore: tuple = ()
    # Directories of the unpacked sdist removed before the run, so that the
    # tests import the installed wheel and not the source tree.
    remove: tuple = ()
    # The sdist the tests come from, when it is not dist==version.
    tests_from: tuple = None
    # Wall-clock limit of one run of the suite, in seconds.
    wall_limit: int = 900
    # Runs against a throwaway PostgreSQL server started by the harness.
    postgres: bool = False
    # uvicorn's loop="asyncio" setting makes the loop under test (the servers
    # the tests start in threads then run on it too).
    patch_uvicorn: bool = False
    # Part of `--quick`: the suites that take a few minutes together.
    quick: bool = False
    # Extra environment variables of the pytest process.
    env: tuple = ()

    @property
    def sdist(self):
        return self.tests_from or (self.dist, self.version)


# Versions of the tools common to every suite's venv.
UVLOOP = 'uvloop==0.23.0'
PYTEST_TIMEOUT = 'pytest-timeout==2.4.0'

# A test that fails after this long is a hang: it fails and the run goes on.
TEST_TIMEOUT = 60

NO_NETWORK = 'needs the Internet (only loopback is reachable here)'

SUITES = {}


def _add(suite):
    SUITES[suite.name] = suite


_add(Suite(
    name='uvicorn',
    dist='uvicorn', version='0.55.0',
    # The dev dependency group of uvicorn's pyproject.toml, without the
    # linters, type checkers, docs, xdist and benchmark tools.
    requirements=(
        'uvicorn[standard]==0.55.0', 'pytest', 'pytest-mock==3.17.0',
        'trustme==1.2.1', 'cryptography>=44.0.3', 'httpx2', 'a2wsgi==1.10.10',
        'wsproto==1.3.2', 'zttp>=0.0.34', 'anyio',
    ),
    # The suite's addopts turn on xdist (-n 8): replaced by the same options
    # without it.
    pytest_args=('-o', 'addopts=-rxXs --strict-markers', 'tests'),
    ignore=(
        ('tests/benchmarks', 'benchmarks (pytest-codspeed): the machine is '
         'shared, benchmarks are not run'),
    ),
    remove=('uvicorn',),
    patch_uvicorn=True,
    wall_limit=600,
))

_add(Suite(
    name='aiohttp',
    dist='aiohttp', version='3.14.5',
    # requirements/test.in (base + test-common + test-common-base) without
    # coverage, xdist, codspeed, mypy and the autobahn docker driver.
    requirements=(
        'aiohttp[speedups]==3.14.5', 'pytest', 'pytest-mock', 'freezegun',
        'pkgconfig', 'proxy.py>=2.4.4rc5', 'trustme', 'blockbuster',
        'isal', 'zlib_ng', 'python-dateutil', 're-assert', 'setuptools-git',
        'gunicorn', 'brotli',
        # pytest.ini's filterwarnings names coverage's warning class.
        'coverage',
    ),
    # addopts without xdist, coverage, --durations and doctests of the
    # source tree (which is removed); the same marker selection.
    pytest_args=(
        '-o', 'addopts=-ra --strict-markers',
        '-m', 'not dev_mode and not autobahn and not internal',
        'tests',
    ),
    remove=('aiohttp',),
    wall_limit=1500,
))

_add(Suite(
    name='anyio',
    dist='anyio', version='4.16.0',
    # The "test" dependency group of anyio's pyproject.toml.
    requirements=(
        'anyio==4.16.0', 'blockbuster>=1.5.29', 'hypothesis>=4.18.2',
        'psutil>=5.9', 'pytest>=9.0', 'pytest-mock>=3.14', 'trustme>=1.0.0',
        'truststore>=0.9.1', 'exceptiongroup',
    ),
    # addopts as in pyproject.toml, plus the harness's timeout (the suite's
    # own 20 s ini timeout is overridden by --timeout).
    pytest_args=(
        '-o', 'addopts=-rsfE --tb=short --strict-markers -p anyio '
        '-p pytest_mock -p timeout -p no:asyncio -p no:trio',
        '-m', 'not network',
        'tests',
    ),
    deselect=(
        # The anyio_backend parameters that name their own loop factory
        # (uvloop) or another backend: only the plain asyncio backend uses
        # the loop under test.
        (r'\[[^\]]*asyncio\+uvloop[^\]]*\]$',
         'anyio backend parameter with uvloop\'s loop_factory: runs on uvloop '
         'whatever the loop under test'),
        (r'\[[^\]]*trio[^\]]*\]$', 'trio backend (not the asyncio loop)'),
    ),
    wall_limit=900,
))

_add(Suite(
    name='websockets',
    dist='websockets', version='13.1',
    # websockets' sdists prune tests/ (17.x) or ship only tests/test*.py of
    # the Sans-I/O layer (13.x): the newest sdist with tests is used.
    # Nine of its fifteen modules import helpers the sdist leaves out.
    requirements=('websockets==13.1', 'pytest'),
    pytest_args=('tests',),
    ignore=tuple(
        (f'tests/test_{name}.py', 'imports test helpers (tests/utils.py, '
         'tests/extensions/) missing from the sdist')
        for name in ('client', 'connection', 'exceptions', 'frames', 'http',
                     'http11', 'protocol', 'server', 'streams')),
    wall_limit=300,
    quick=True,
))

_add(Suite(
    name='httpx',
    dist='httpx', version='0.29.0',
    # httpx's sdist has no requirements file: its extras plus what its tests
    # import (uvicorn serves the test app, trustme makes certificates).
    requirements=(
        'httpx[brotli,zstd,http2,socks,cli]==0.29.0', 'pytest', 'anyio',
        'trustme', 'cryptography', 'uvicorn==0.55.0', 'chardet==5.2.0',
        'trio',
    ),
    pytest_args=('-o', 'addopts=-rxXs', '-m', 'not network', 'tests'),
    deselect=(
        (r'\[trio\]$', 'trio backend (not the asyncio loop)'),
    ),
    remove=('httpx',),
    patch_uvicorn=True,
    wall_limit=600,
    quick=True,
))

_add(Suite(
    name='asyncpg',
    dist='asyncpg', version='0.32.0',
    # The "test" dependency group without the linters, type checker and
    # Kerberos (k5test/gssapi need a KDC).
    requirements=('asyncpg==0.32.0', 'pytest', 'distro~=1.9.0',
                  'cryptography'),
    pytest_args=('tests',),
    deselect=(
        (r'tests/test__sourcecode\.py', 'flake8/mypy checks of the source '
         'tree, not a runtime test'),
        (r'tests/test_connect\.py::TestConnectionAttributes::',
         'starts clusters of its own with pg_ctl, which refuses to run as '
         'root'),
        (r'tests/test_pool\.py::TestPool::test_pool_config_persistence',
         'flaky on every loop (a connection of the pool is reset while a '
         'future nobody awaits holds its error): failed once each on the '
         'default loop and on asyncloop in four runs'),
    ),
    remove=('asyncpg',),
    postgres=True,
    wall_limit=1200,
    quick=True,
))


QUICK = tuple(name for name, suite in SUITES.items() if suite.quick)
