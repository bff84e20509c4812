#!/usr/bin/env python3
"""Run the ecosystem suites on asyncio, uvloop and asyncloop (see README.md).

    python tests/ecosystem/run.py [SUITE ...] [--quick] [--loops L1,L2]

Everything it fetches, builds and writes lives under .ecosystem/ at the root
of the checkout.
"""

import argparse
import contextlib
import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
WORK = os.path.join(ROOT, '.ecosystem')
sys.path.insert(0, HERE)

import postgres  # noqa: E402
import report  # noqa: E402
from suites import (  # noqa: E402
    PYTEST_TIMEOUT, QUICK, SUITES, TEST_TIMEOUT, UVLOOP)

LOOPS = ('asyncio', 'uvloop', 'asyncloop')
PIP = ('-m', 'pip', '-q', '--disable-pip-version-check')


def log(message):
    print(f'\n== {message}', file=sys.stderr, flush=True)


def pip(python, *args):
    subprocess.run([python, *PIP, *args], check=True)


def fetch_sdist(python, name, version):
    """The path of the sdist name==version, downloaded by pip if missing."""
    dest = os.path.join(WORK, 'sdists')
    os.makedirs(dest, exist_ok=True)

    def find():
        for stem in {name, name.replace('-', '_'), name.lower()}:
            hits = glob.glob(os.path.join(dest, f'{stem}-{version}.tar.gz'))
            if hits:
                return hits[0]
        return None

    if find() is None:
        log(f'downloading the sdist of {name}=={version}')
        pip(python, 'download', '--no-binary', ':all:', '--no-deps',
            '-d', dest, f'{name}=={version}')
    path = find()
    if path is None:
        raise SystemExit(f'no sdist of {name}=={version} in {dest}')
    return path


def unpack(archive, suite):
    """A fresh copy of the sdist's tree, without the listed directories."""
    dest = os.path.join(WORK, 'src', suite.name)
    shutil.rmtree(dest, ignore_errors=True)
    os.makedirs(dest)
    with tarfile.open(archive) as tar:
        tar.extractall(dest, filter='data')
    (top,) = os.listdir(dest)
    tree = os.path.join(dest, top)
    for name in suite.remove:
        shutil.rmtree(os.path.join(tree, name))
    if not _has_pytest_config(tree):
        # Else pytest would take this checkout's pyproject.toml, further up,
        # as the suite's configuration.
        with open(os.path.join(tree, 'pytest.ini'), 'w') as f:
            f.write('[pytest]\n')
    return tree


def _has_pytest_config(tree):
    sections = {'pytest.ini': '', 'pyproject.toml': '[tool.pytest',
                'tox.ini': '[pytest]', 'setup.cfg': '[tool:pytest]'}
    for name, section in sections.items():
        with contextlib.suppress(OSError), \
                open(os.path.join(tree, name)) as f:
            if section in f.read():
                return True
    return False


def build_asyncloop(python):
    """A wheel of this checkout, built once per invocation."""
    dest = os.path.join(WORK, 'wheels')
    shutil.rmtree(dest, ignore_errors=True)
    log('building the asyncloop wheel of this checkout')
    try:
        pip(python, 'wheel', '--no-deps', '-w', dest, ROOT)
    finally:
        # pip leaves asyncloop_uv.egg-info in the tree, whose pytest11 entry
        # point pytest runs in the tree would load a second time.
        for info in glob.glob(os.path.join(ROOT, '*.egg-info')):
            shutil.rmtree(info, ignore_errors=True)
    (wheel,) = glob.glob(os.path.join(dest, 'asyncloop_uv-*.whl'))
    return wheel


def setup_venv(python, suite, wheel):
    """The suite's venv with its requirements, uvloop and this asyncloop."""
    venv = os.path.join(WORK, 'venvs', suite.name)
    bin_python = os.path.join(venv, 'bin', 'python')
    wanted = [*suite.requirements, UVLOOP, PYTEST_TIMEOUT]
    stamp_path = os.path.join(venv, 'ecosystem-requirements.json')
    stamp = json.dumps({'python': python, 'requirements': wanted})
    try:
        with open(stamp_path) as f:
            fresh = f.read() == stamp
    except OSError:
        fresh = False
    if not fresh:
        log(f'creating the {suite.name} venv')
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run([python, '-m', 'venv', venv], check=True)
        pip(bin_python, 'install', *wanted)
        with open(stamp_path, 'w') as f:
            f.write(stamp)
    pip(bin_python, 'install', '--force-reinstall', '--no-deps', wheel)
    return bin_python


def _stop(proc):
    """End a run that hit its wall limit; SIGINT first so that pytest still
    writes the JUnit report of the tests it ran."""
    for sig, grace in ((signal.SIGINT, 60), (signal.SIGKILL, 10)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(grace)
            return
        except subprocess.TimeoutExpired:
            pass


def run_once(python, suite, tree, kind, extra_env):
    """One run of the suite on the loop `kind`; returns the run dict."""
    out = os.path.join(WORK, 'results', suite.name)
    os.makedirs(out, exist_ok=True)
    junit = os.path.join(out, f'{kind}.xml')
    loops = os.path.join(out, f'{kind}-loops.json')
    config = os.path.join(out, f'{kind}-config.json')
    for path in (junit, loops):
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)
    with open(config, 'w') as f:
        json.dump({'loop': kind, 'deselect': suite.deselect,
                   'patch_uvicorn': suite.patch_uvicorn, 'report': loops}, f)
    env = dict(os.environ, **dict(suite.env), **extra_env,
               ECOSYSTEM_CONFIG=config,
               PYTHONPATH=os.path.join(HERE, 'plugin'))
    cmd = [python, '-m', 'pytest', '-p', 'loopswap', '-p', 'no:cacheprovider',
           '-p', 'no:xdist', '-p', 'no:randomly', f'--timeout={TEST_TIMEOUT}',
           f'--junitxml={junit}', '-q', f'--rootdir={tree}',
           *(f'--ignore={path}' for path, _ in suite.ignore),
           *suite.pytest_args]
    log(f'{suite.name} on {kind}: {" ".join(cmd[1:])}')
    start = time.monotonic()
    with open(os.path.join(out, f'{kind}.log'), 'w') as logfile:
        proc = subprocess.Popen(cmd, cwd=tree, env=env, stdout=logfile,
                                stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            proc.wait(suite.wall_limit)
            status = f'exit {proc.returncode}'
        except subprocess.TimeoutExpired:
            _stop(proc)
            status = f'wall limit {suite.wall_limit} s'
    run = {'loop': kind, 'wall': time.monotonic() - start, 'status': status,
           'outcomes': {}, 'loops': None}
    if os.path.exists(junit):
        run['outcomes'] = report.parse_junit(junit)
    else:
        run['status'] += ', no JUnit report'
    if os.path.exists(loops):
        with open(loops) as f:
            run['loops'] = json.load(f)
    return run


def run_suite(python, suite, wheel, kinds):
    archive = fetch_sdist(python, *suite.sdist)
    tree = unpack(archive, suite)
    venv_python = setup_venv(python, suite, wheel)
    runs = []
    for kind in kinds:
        with contextlib.ExitStack() as stack:
            extra_env = stack.enter_context(postgres.cluster()) \
                if suite.postgres else {}
            runs.append(run_once(venv_python, suite, tree, kind, extra_env))
    runs = _keep_other_loops(suite, runs)
    with open(_summary_path(suite.name), 'w') as f:
        json.dump({'suite': suite.name, 'version': suite.version,
                   'tests_from': '%s-%s sdist' % suite.sdist, 'runs': runs},
                  f, indent=1)
    return runs


def _summary_path(name):
    return os.path.join(WORK, 'results', name, 'summary.json')


def _keep_other_loops(suite, runs):
    """`runs` plus the last runs on the loops not run now (--loops), when
    they ran the same version."""
    try:
        with open(_summary_path(suite.name)) as f:
            previous = json.load(f)
    except (OSError, ValueError):
        return runs
    if previous.get('version') != suite.version:
        return runs
    by_loop = {run['loop']: run for run in previous['runs']
               if run['outcomes']}
    by_loop.update((run['loop'], run) for run in runs)
    return [by_loop[kind] for kind in LOOPS if kind in by_loop]


def load_summaries():
    """Every suite's latest runs found under .ecosystem/results."""
    results = {}
    for name in SUITES:
        path = _summary_path(name)
        if os.path.exists(path):
            with open(path) as f:
                results[name] = json.load(f)['runs']
    return results


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('suites', nargs='*', metavar='SUITE',
                        help=f'some of {", ".join(SUITES)} (default: all)')
    parser.add_argument('--quick', action='store_true',
                        help=f'the CI set: {", ".join(QUICK)}')
    parser.add_argument('--loops', default=','.join(LOOPS),
                        help='comma-separated loops (default: %(default)s)')
    parser.add_argument('--python', default=getattr(
        sys, '_base_executable', sys.executable),
        help='the interpreter of the venvs (default: %(default)s)')
    args = parser.parse_args(argv)
    names = args.suites or (QUICK if args.quick else tuple(SUITES))
    unknown = [name for name in names if name not in SUITES]
    if unknown:
        parser.error(f'unknown suites {unknown}; known: {", ".join(SUITES)}')
    kinds = args.loops.split(',')
    if set(kinds) - set(LOOPS):
        parser.error(f'--loops takes some of {", ".join(LOOPS)}')
    return args, names, kinds


def main(argv=None):
    args, names, kinds = parse_args(argv)
    os.makedirs(os.path.join(WORK, 'results'), exist_ok=True)
    wheel = build_asyncloop(args.python)
    failed = False
    for name in names:
        runs = run_suite(args.python, SUITES[name], wheel, kinds)
        print(report.suite_table(name, runs), flush=True)
        print(report.comparison(name, runs), flush=True)
        by_loop = {run['loop']: run for run in runs}
        if 'asyncio' in by_loop and 'asyncloop' in by_loop:
            failed |= bool(report.regressions(by_loop['asyncio'],
                                              by_loop['asyncloop']))
        failed |= any('no JUnit' in run['status'] or not run['outcomes']
                      for run in runs)
    text = report.markdown(load_summaries(), SUITES)
    with open(os.path.join(WORK, 'results', 'results.md'), 'w') as f:
        f.write(text)
    log(f'results: {os.path.join(WORK, "results", "results.md")} and '
        f'{os.path.join(WORK, "results", "*", "summary.json")}')
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
