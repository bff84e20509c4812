"""What a user of the PyPI distribution relies on, checked from the source
tree: one version, the distribution's metadata, the license, the sdist's
contents, and setup.py naming what the build lacks (a C compiler,
pkg-config, libuv >= 1.44 and its headers) instead of failing with a
traceback. scripts/check_wheel.sh builds and installs the real wheels and
sdist; these are the quick checks."""
import ast
import importlib.metadata
import os
import pathlib
import re
import shutil
import subprocess
import sys
import sysconfig
import tomllib

import pytest

import asyncloop

ROOT = pathlib.Path(__file__).resolve().parent.parent
SETUP = ROOT / 'setup.py'
DISTRIBUTION = 'asyncloop-uv'

needs_source_tree = pytest.mark.skipif(
    not SETUP.exists(), reason='needs the source tree (setup.py)')


def pyproject():
    with open(ROOT / 'pyproject.toml', 'rb') as f:
        return tomllib.load(f)


def version_in_version_file():
    tree = ast.parse((ROOT / 'asyncloop' / '_version.py').read_text())
    for node in tree.body:
        if (isinstance(node, ast.Assign)
                and getattr(node.targets[0], 'id', None) == '__version__'):
            return node.value.value
    raise AssertionError('asyncloop/_version.py sets no __version__')


# ---- one version ---------------------------------------------------------

@needs_source_tree
def test_version_has_one_source():
    """pyproject.toml takes the version from asyncloop/_version.py, and
    asyncloop.__version__ is that string."""
    project = pyproject()
    assert 'version' not in project['project']
    assert 'version' in project['project']['dynamic']
    attr = project['tool']['setuptools']['dynamic']['version']['attr']
    assert attr == 'asyncloop._version.__version__'
    assert isinstance(asyncloop.__version__, str)
    assert asyncloop.__version__ == version_in_version_file()


@needs_source_tree
def test_setup_reports_the_same_version():
    """The metadata the build writes carries asyncloop.__version__."""
    pytest.importorskip('setuptools')
    proc = subprocess.run([sys.executable, '-W', 'ignore', str(SETUP),
                           '--version'], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split()[-1] == asyncloop.__version__


def test_installed_metadata_has_the_same_version():
    """Where asyncloop is installed from a wheel or sdist, its metadata
    says the version the module says."""
    try:
        dist = importlib.metadata.distribution(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        pytest.skip(f'{DISTRIBUTION} is not installed (in-place build)')
    installed = pathlib.Path(dist.locate_file('asyncloop')).resolve()
    if installed != pathlib.Path(asyncloop.__file__).resolve().parent:
        pytest.skip(f'the {DISTRIBUTION} installed is not the one imported')
    assert dist.version == asyncloop.__version__


# ---- metadata and license ------------------------------------------------

@needs_source_tree
def test_distribution_metadata():
    """A free name on PyPI (the import name stays asyncloop), the project
    URLs, the supported Pythons and the pytest plugin's entry point."""
    project = pyproject()['project']
    assert project['name'] == DISTRIBUTION
    setuptools_config = pyproject()['tool']['setuptools']
    assert setuptools_config['packages'] == ['asyncloop']
    # Else `setup.py build` leaves an egg-info with that entry point in the
    # tree, and pytest runs there load it.
    assert setuptools_config['include-package-data'] is False
    assert set(project['urls']) >= {'Homepage', 'Source', 'Issues',
                                    'Changelog'}
    assert all(url.startswith('https://') for url in project['urls'].values())
    assert project['requires-python'] == '>=3.11'
    for minor in (11, 12, 13):
        assert (f'Programming Language :: Python :: 3.{minor}'
                in project['classifiers'])
    plugins = project['entry-points']['pytest11']
    assert plugins == {'asyncloop': 'asyncloop.pytest_plugin'}


@needs_source_tree
def test_license_is_mit():
    """LICENSE is at the root (setuptools puts it in the wheel's
    dist-info) and the metadata names the same license."""
    text = (ROOT / 'LICENSE').read_text()
    assert text.startswith('MIT License')
    checks = load_setup_checks()
    assert set(checks['license_metadata']().values()) == {'MIT'}


@needs_source_tree
def test_changelog_has_unreleased_and_this_version():
    text = (ROOT / 'CHANGELOG.md').read_text()
    headings = re.findall(r'^## (.+)$', text, re.M)
    assert headings[0] == 'Unreleased'
    assert asyncloop.__version__ in headings


@needs_source_tree
def test_sdist_manifest_takes_tests_and_sources():
    """MANIFEST.in takes the whole test suite, with tests/conftest.py, the
    conformance runner and tests/scripts, and what builds and runs it."""
    lines = (ROOT / 'MANIFEST.in').read_text().splitlines()
    for folder in ('tests', 'bench', 'demo', 'scripts'):
        assert f'graft {folder}' in lines
    assert 'include src/*.c src/*.h' in lines
    included = {word for line in lines if line.startswith('include ')
                for word in line.split()[1:]}
    assert {'README.md', 'CHANGELOG.md', 'LICENSE'} <= included


@needs_source_tree
def test_readme_opens_with_pip_install_then_the_developer_commands():
    text = (ROOT / 'README.md').read_text()
    blocks = re.findall(r'```\w*\n(.*?)```', text, re.S)
    commands = [line.split('#')[0].strip() for block in blocks
                for line in block.splitlines()]
    assert f'pip install {DISTRIBUTION}' in commands
    developer = [c for c in commands if c.startswith('scripts/')]
    assert developer[:2] == ['scripts/dev.sh demo', 'scripts/dev.sh test']
    # PyPI shows the README away from the repository: the links of the
    # opening and of Compatibility must be absolute.
    opening = text.split('\n## Usage')[0]
    compatibility = text.split('\n## Compatibility')[1].split('\n## ')[0]
    links = re.findall(r'\]\(([^)]+)\)', opening + compatibility)
    assert links and all(link.startswith('https://') for link in links), links


# ---- setup.py names what the build lacks ---------------------------------

CHECK_DRIVER = '''
import runpy, sys
checks = runpy.run_path(sys.argv[1], run_name='setup_checks')
try:
    result = checks[sys.argv[2]]()
except checks['BuildRequirementError'] as exc:
    print(exc)
    sys.exit(3)
print('found', result)
'''


def load_setup_checks():
    """setup.py's functions, without running setup()."""
    pytest.importorskip('setuptools')
    import runpy
    return runpy.run_path(str(SETUP), run_name='setup_checks')


def run_check(name, **env):
    """Runs setup.py's check `name` in a child with the environment
    changed by env (None removes a variable); (exit code, output)."""
    pytest.importorskip('setuptools')
    child_env = dict(os.environ)
    for key, value in env.items():
        if value is None:
            child_env.pop(key, None)
        else:
            child_env[key] = str(value)
    proc = subprocess.run([sys.executable, '-c', CHECK_DRIVER, str(SETUP),
                           name], cwd=ROOT, env=child_env,
                          capture_output=True, text=True, timeout=60)
    assert 'Traceback' not in proc.stderr, proc.stderr
    return proc.returncode, proc.stdout.strip()


def write_libuv_pc(folder, version, includedir):
    """A libuv.pc of the given version, for pkg-config to find."""
    (folder / 'libuv.pc').write_text(
        f'includedir={includedir}\nlibdir=/usr/lib\n\n'
        f'Name: libuv\nDescription: libuv\nVersion: {version}\n'
        'Libs: -luv\nCflags: -I${includedir}\n')


needs_pkg_config = pytest.mark.skipif(
    shutil.which('pkg-config') is None, reason='needs pkg-config')


@needs_source_tree
def test_missing_compiler_is_named(tmp_path):
    """No compiler on PATH: the error names the compiler the build would
    use and how to install one."""
    code, out = run_check('compiler_command', PATH=tmp_path, CC=None)
    assert code == 3, out
    expected = (sysconfig.get_config_var('CC') or 'cc').split()[0]
    assert out.startswith('no C compiler')
    assert repr(expected) in out
    assert 'apt-get install -y gcc' in out


@needs_source_tree
def test_missing_compiler_named_by_cc(tmp_path):
    code, out = run_check('compiler_command', CC='no-such-cc -O2')
    assert code == 3, out
    assert "'no-such-cc' is not on PATH" in out


@needs_source_tree
def test_compiler_found():
    if shutil.which((sysconfig.get_config_var('CC') or 'cc').split()[0]) \
            is None and 'CC' not in os.environ:
        pytest.skip('no compiler here')
    code, out = run_check('compiler_command')
    assert code == 0, out


@needs_source_tree
def test_missing_pkg_config_is_named(tmp_path):
    """Without pkg-config the error says pkg-config, not libuv."""
    code, out = run_check('check_pkg_config', PATH=tmp_path)
    assert code == 3, out
    assert out.startswith('pkg-config is not on PATH')
    assert 'apt-get install -y pkg-config' in out
    # check_libuv() asks pkg-config first, so it says the same.
    code, out = run_check('check_libuv', PATH=tmp_path)
    assert code == 3 and out.startswith('pkg-config is not on PATH'), out


@needs_source_tree
@needs_pkg_config
def test_missing_libuv_is_named(tmp_path):
    """pkg-config knows no libuv: the error names libuv1-dev."""
    code, out = run_check('check_libuv', PKG_CONFIG_LIBDIR=tmp_path,
                          PKG_CONFIG_PATH=None)
    assert code == 3, out
    assert out.startswith('libuv was not found by pkg-config')
    assert 'apt-get install -y libuv1-dev' in out


@needs_source_tree
@needs_pkg_config
def test_old_libuv_is_refused(tmp_path):
    """libuv older than 1.44: the error gives both versions."""
    write_libuv_pc(tmp_path, '1.43.0', '/usr/include')
    code, out = run_check('check_libuv', PKG_CONFIG_LIBDIR=tmp_path,
                          PKG_CONFIG_PATH=None)
    assert code == 3, out
    assert out.startswith('libuv 1.43.0 was found, asyncloop needs '
                          'libuv >= 1.44')


@needs_source_tree
@needs_pkg_config
def test_missing_libuv_header_is_named(tmp_path):
    """A libuv.pc whose include directory has no uv.h."""
    write_libuv_pc(tmp_path, '1.48.0', tmp_path)
    code, out = run_check('check_libuv', PKG_CONFIG_LIBDIR=tmp_path,
                          PKG_CONFIG_PATH=None)
    assert code == 3, out
    assert f"uv.h is not in {tmp_path}" in out


@needs_source_tree
@needs_pkg_config
def test_libuv_found_is_recent_enough(tmp_path):
    """The libuv this module was built against passes the check."""
    write_libuv_pc(tmp_path, '1.44.0', tmp_path)
    (tmp_path / 'uv.h').write_text('')
    code, out = run_check('check_libuv', PKG_CONFIG_LIBDIR=tmp_path,
                          PKG_CONFIG_PATH=None)
    assert (code, out) == (0, 'found 1.44.0')
    code, out = run_check('check_libuv')
    if code == 3 and 'not found by pkg-config' in out:
        pytest.skip('this libuv is not known to pkg-config')
    assert code == 0, out


@needs_source_tree
def test_build_without_compiler_fails_with_a_message(tmp_path):
    """`setup.py build_ext` (what pip runs) with no compiler on PATH ends
    with one "error:" line naming it, without a traceback."""
    pytest.importorskip('setuptools')
    env = dict(os.environ, PATH=str(tmp_path))
    env.pop('CC', None)
    proc = subprocess.run(
        [sys.executable, '-W', 'ignore', str(SETUP), '-q', 'build_ext',
         '--build-lib', str(tmp_path / 'lib'),
         '--build-temp', str(tmp_path / 'temp')],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert 'Traceback' not in proc.stderr, proc.stderr
    assert 'error: no C compiler' in proc.stderr
