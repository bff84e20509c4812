"""The aiohttp server of bench/http.py, on the event loop named on the command line.

    python bench/http_apps/aiohttp_server.py LOOP PORT

LOOP is one of bench/_common.py's loop names (asyncio, uvloop, asyncloop). The
application has the same two routes as asgi_app.py (``/plaintext`` and
``/json``), written the ordinary aiohttp way; it listens on 127.0.0.1:PORT
through an AppRunner without access log, until SIGINT or SIGTERM.
"""

import asyncio
import signal
import sys
from pathlib import Path

from aiohttp import web

# Appended, not inserted first: bench/ holds http.py, which must not shadow the
# standard library's http package that aiohttp imports.
sys.path.append(str(Path(__file__).resolve().parent.parent))
import _common  # noqa: E402


async def plaintext(request):
    return web.Response(text='Hello, World!')


async def json_message(request):
    return web.json_response({'message': 'Hello, World!'})


def make_app():
    app = web.Application()
    app.router.add_get('/plaintext', plaintext)
    app.router.add_get('/json', json_message)
    return app


async def serve(port):
    runner = web.AppRunner(make_app(), access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, '127.0.0.1', port).start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await stop.wait()
    finally:
        await runner.cleanup()


def main(loop_name, port):
    factories, skipped = _common.loop_factories([loop_name])
    if loop_name not in factories:
        raise SystemExit(f'{loop_name}: {skipped[loop_name]}')
    with asyncio.Runner(loop_factory=factories[loop_name]) as runner:
        runner.run(serve(int(port)))


if __name__ == '__main__':
    main(*sys.argv[1:])
