"""A throwaway PostgreSQL server for the asyncpg suite.

Debian's `postgresql` package provides initdb and pg_ctl (installed with apt
when missing).  The cluster lives in a temporary directory, listens on a free
port of 127.0.0.1 and on a unix socket in that directory, trusts every local
connection, and is stopped and removed on exit, also after an error.
PostgreSQL refuses to run as root: as root, its commands run as the
`postgres` user (created by the package).
"""

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile


def _bindir():
    """The directory of the newest installed initdb/pg_ctl, or None."""
    found = sorted(glob.glob('/usr/lib/postgresql/*/bin/pg_ctl'),
                   key=lambda p: int(p.split('/')[4]))
    return os.path.dirname(found[-1]) if found else None


def _ensure_installed():
    if _bindir() is None:
        env = dict(os.environ, DEBIAN_FRONTEND='noninteractive')
        subprocess.run(['apt-get', 'update', '-qq'], check=True, env=env)
        subprocess.run(['apt-get', 'install', '-y', '-qq', 'postgresql'],
                       check=True, env=env)
    bindir = _bindir()
    if bindir is None:
        raise RuntimeError('postgresql is installed but pg_ctl is not found')
    return bindir


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _as_server_user(argv):
    """argv run as the unprivileged user PostgreSQL wants."""
    if os.geteuid() != 0:
        return argv
    return ['runuser', '-u', 'postgres', '--'] + argv


@contextlib.contextmanager
def cluster():
    """Start a cluster; yield the environment pointing libpq clients to it."""
    bindir = _ensure_installed()
    top = tempfile.mkdtemp(prefix='asyncloop-pg-')
    data = os.path.join(top, 'data')
    if os.geteuid() == 0:
        shutil.chown(top, 'postgres', 'postgres')
    port = _free_port()
    started = False
    try:
        subprocess.run(_as_server_user([
            f'{bindir}/initdb', '-D', data, '-U', 'postgres', '-A', 'trust',
            '-E', 'UTF8', '--no-sync']), check=True, stdout=subprocess.DEVNULL)
        options = (f'-c listen_addresses=127.0.0.1 -p {port} '
                   f'-c unix_socket_directories={top} -c fsync=off '
                   f'-c max_connections=200')
        subprocess.run(_as_server_user([
            f'{bindir}/pg_ctl', '-D', data, '-l', os.path.join(top, 'log'),
            '-o', options, '-w', 'start']), check=True,
            stdout=subprocess.DEVNULL)
        started = True
        yield {'PGHOST': '127.0.0.1', 'PGPORT': str(port),
               'PGUSER': 'postgres', 'PGDATABASE': 'postgres',
               'PATH': f'{bindir}:{os.environ.get("PATH", "")}'}
    finally:
        if started:
            subprocess.run(_as_server_user([
                f'{bindir}/pg_ctl', '-D', data, '-m', 'fast', '-w', 'stop']),
                stdout=subprocess.DEVNULL)
        shutil.rmtree(top, ignore_errors=True)
