"""Servers switched to asyncloop the way their users do it, end to end.

uvicorn, gunicorn (with asyncloop.workers' uvicorn and aiohttp workers),
aiohttp.web, FastAPI and the multi-process recipe run as real processes on
127.0.0.1 and get real HTTP requests. The applications (tests/apps/) answer
with the class of their running loop and their pid. Every server is killed
at the end of its test, with its whole process group.
"""
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

import asyncloop

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
APPS = os.path.join(ROOT, 'tests', 'apps')
ASYNCLOOP = 'asyncloop.loop.Loop'
# How long a server may take to start on a busy machine.
START_DEADLINE = 60


def free_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


class Server:
    """A server process in its own process group, its output in a file."""

    def __init__(self, args, log_path):
        self.log_path = log_path
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, APPS]))
        env.pop('WEB_CONCURRENCY', None)
        with open(log_path, 'wb') as log:
            self.process = subprocess.Popen(
                args, cwd=APPS, env=env, stdin=subprocess.DEVNULL,
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def log(self):
        with open(self.log_path, errors='replace') as f:
            return f.read()

    def stop(self):
        """SIGTERM to the group, then SIGKILL to whatever is left of it."""
        group = self.process.pid
        try:
            os.killpg(group, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(group, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait(10)

    def get(self, port, path='/'):
        """The JSON answer to GET path, once the server is up."""
        deadline = time.monotonic() + START_DEADLINE
        while True:
            if self.process.poll() is not None:
                pytest.fail(f'server exited with {self.process.returncode}:'
                            f'\n{self.log()}')
            try:
                return request(port, path)
            except (ConnectionRefusedError, ConnectionResetError,
                    http.client.RemoteDisconnected):
                if time.monotonic() > deadline:
                    pytest.fail(f'server not answering:\n{self.log()}')
                time.sleep(0.1)


def request(port, path='/'):
    """One GET on a new connection (so that each may reach another worker)."""
    conn = http.client.HTTPConnection('127.0.0.1', port, timeout=30)
    try:
        conn.request('GET', path, headers={'Connection': 'close'})
        response = conn.getresponse()
        assert response.status == 200
        return json.loads(response.read())
    finally:
        conn.close()


@pytest.fixture
def serve(tmp_path):
    """serve(*args): start a server process; all are stopped afterwards."""
    servers = []

    def start(*args):
        server = Server(list(args), tmp_path / f'server{len(servers)}.log')
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def answers_from_two_workers(server, port, limit=200):
    """Requests until two different pids answered; returns the answers."""
    answers = [server.get(port)]
    deadline = time.monotonic() + START_DEADLINE
    while len({a['pid'] for a in answers}) < 2:
        assert len(answers) < limit and time.monotonic() < deadline, \
            f'one worker answered all {len(answers)} requests'
        answers.append(request(port))
    return answers


# -- uvicorn -----------------------------------------------------------------

def uvicorn(*args):
    return [sys.executable, '-m', 'uvicorn', '--host', '127.0.0.1', *args]


def test_uvicorn_loop_option(serve):
    pytest.importorskip('uvicorn')
    port = free_port()
    server = serve(*uvicorn('--port', str(port),
                            '--loop', 'asyncloop:new_event_loop',
                            'asgi_app:app'))
    assert server.get(port)['loop'] == ASYNCLOOP


def test_uvicorn_two_workers(serve):
    pytest.importorskip('uvicorn')
    port = free_port()
    server = serve(*uvicorn('--port', str(port), '--workers', '2',
                            '--loop', 'asyncloop:new_event_loop',
                            'asgi_app:app'))
    answers = answers_from_two_workers(server, port)
    assert {a['loop'] for a in answers} == {ASYNCLOOP}


def test_uvicorn_loop_module_name_is_refused(serve, tmp_path):
    """The form a uvloop user guesses: uvicorn wants module:attribute."""
    pytest.importorskip('uvicorn')
    server = serve(*uvicorn('--port', str(free_port()),
                            '--loop', 'asyncloop', 'asgi_app:app'))
    assert server.process.wait(START_DEADLINE) != 0
    assert 'Import string "asyncloop" must be in format ' \
        '"<module>:<attribute>"' in server.log()


def test_uvicorn_run_loop_argument(serve):
    pytest.importorskip('uvicorn')
    port = free_port()
    server = serve(sys.executable, 'uvicorn_run.py', 'loop', str(port))
    assert server.get(port)['loop'] == ASYNCLOOP


def test_uvicorn_ignores_the_event_loop_policy(serve):
    """uvicorn's default loop="auto" makes its own loop (uvloop's when
    installed, else asyncio's SelectorEventLoop): a policy set before it
    starts is not used."""
    pytest.importorskip('uvicorn')
    port = free_port()
    server = serve(sys.executable, 'uvicorn_run.py', 'policy', str(port))
    loop = server.get(port)['loop']
    try:
        import uvloop   # noqa: F401
        assert loop == 'uvloop.Loop'
    except ImportError:
        assert loop == 'asyncio.unix_events._UnixSelectorEventLoop'


def test_fastapi_through_uvicorn(serve):
    pytest.importorskip('uvicorn')
    pytest.importorskip('fastapi')
    port = free_port()
    server = serve(*uvicorn('--port', str(port),
                            '--loop', 'asyncloop:new_event_loop',
                            'fastapi_app:app'))
    assert server.get(port)['loop'] == ASYNCLOOP


# -- gunicorn ----------------------------------------------------------------

def gunicorn(port, *args):
    config = pytest.importorskip('gunicorn.config')
    extra = []
    if hasattr(config, 'ControlSocketDisable'):
        # gunicorn >= 24 opens a control socket at a fixed path by default.
        extra.append('--no-control-socket')
    return [sys.executable, '-m', 'gunicorn', '--bind', f'127.0.0.1:{port}',
            '--graceful-timeout', '5', *extra, *args]


def test_gunicorn_uvicorn_worker_two_workers(serve):
    pytest.importorskip('uvicorn')
    port = free_port()
    server = serve(*gunicorn(port, '--workers', '2',
                             '-k', 'asyncloop.workers.UvicornWorker',
                             'asgi_app:app'))
    answers = answers_from_two_workers(server, port)
    assert {a['loop'] for a in answers} == {ASYNCLOOP}


def test_gunicorn_aiohttp_worker(serve):
    pytest.importorskip('aiohttp')
    port = free_port()
    server = serve(*gunicorn(port, '--workers', '1',
                             '-k', 'asyncloop.workers.AiohttpWorker',
                             'aiohttp_app:make_app'))
    assert server.get(port)['loop'] == ASYNCLOOP


def test_worker_classes():
    """The classes gunicorn gets from -k asyncloop.workers.X."""
    pytest.importorskip('gunicorn')
    pytest.importorskip('uvicorn')
    pytest.importorskip('aiohttp')
    import asyncloop.workers as workers
    from aiohttp.worker import GunicornWebWorker

    assert workers.UvicornWorker.CONFIG_KWARGS['loop'] == \
        'asyncloop:new_event_loop'
    assert workers.UvicornWorker is workers.UvicornWorker
    assert issubclass(workers.AiohttpWorker, GunicornWebWorker)
    assert {'UvicornWorker', 'AiohttpWorker'} <= set(dir(workers))
    with pytest.raises(AttributeError):
        workers.NoSuchWorker


def test_workers_without_the_frameworks():
    """Without uvicorn and aiohttp the module imports, and each class says
    which package it needs."""
    code = '''
import sys
for name in ('uvicorn', 'uvicorn_worker', 'uvicorn.workers', 'aiohttp',
             'aiohttp.worker'):
    sys.modules[name] = None        # as if not installed
import asyncloop.workers
for name in ('UvicornWorker', 'AiohttpWorker'):
    try:
        getattr(asyncloop.workers, name)
    except ImportError as error:
        print(error)
'''
    out = subprocess.run([sys.executable, '-c', code], cwd=ROOT,
                         capture_output=True, text=True, timeout=60,
                         check=True).stdout.splitlines()
    assert len(out) == 2
    assert out[0].startswith('asyncloop.workers.UvicornWorker needs '
                             'uvicorn-worker: pip install uvicorn-worker')
    assert out[1].startswith('asyncloop.workers.AiohttpWorker needs '
                             'aiohttp gunicorn: pip install aiohttp gunicorn')


# -- aiohttp -----------------------------------------------------------------

@pytest.mark.parametrize('how', ['run_app', 'runner'])
def test_aiohttp(serve, how):
    """web.run_app(app, loop=asyncloop.new_event_loop()), and
    asyncloop.run() of a coroutine that starts an AppRunner."""
    pytest.importorskip('aiohttp')
    port = free_port()
    server = serve(sys.executable, 'aiohttp_app.py', how, str(port))
    assert server.get(port)['loop'] == ASYNCLOOP


# -- more than one core ------------------------------------------------------

def test_reuse_port_two_processes(serve):
    """The recipe: N processes, each asyncloop.run() with a server bound
    with reuse_port=True on the same port."""
    pytest.importorskip('aiohttp')
    port = free_port()
    server = serve(sys.executable, 'reuse_port.py', str(port), '2')
    answers = answers_from_two_workers(server, port)
    assert {a['loop'] for a in answers} == {ASYNCLOOP}
    assert server.process.pid not in {a['pid'] for a in answers}


# -- anyio -------------------------------------------------------------------

def test_anyio_run_loop_factory():
    pytest.importorskip('anyio')
    out = subprocess.run([sys.executable, 'anyio_main.py'], cwd=APPS,
                         env=dict(os.environ, PYTHONPATH=ROOT),
                         capture_output=True, text=True, timeout=60,
                         check=True).stdout
    assert out.strip() == ASYNCLOOP


def test_loop_class_name():
    # The name the applications report for asyncloop's loop.
    loop = asyncloop.new_event_loop()
    try:
        cls = type(loop)
        assert f'{cls.__module__}.{cls.__qualname__}' == ASYNCLOOP
    finally:
        loop.close()
