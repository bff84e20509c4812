"""An aiohttp.web application that answers which loop serves it.

    gunicorn -k asyncloop.workers.AiohttpWorker aiohttp_app:make_app
    python aiohttp_app.py run_app PORT      web.run_app(app, loop=...)
    python aiohttp_app.py runner PORT       asyncloop.run() with AppRunner
"""
import asyncio
import os
import sys

from aiohttp import web

import asyncloop


def loop_name():
    cls = type(asyncio.get_running_loop())
    return f'{cls.__module__}.{cls.__qualname__}'


async def which_loop(request):
    return web.json_response({'loop': loop_name(), 'pid': os.getpid()})


async def make_app():
    app = web.Application()
    app.router.add_get('/', which_loop)
    return app


def serve_with_run_app(port):
    web.run_app(make_app(), host='127.0.0.1', port=port,
                loop=asyncloop.new_event_loop())


async def serve_with_runner(port):
    runner = web.AppRunner(await make_app())
    await runner.setup()
    site = web.TCPSite(runner, '127.0.0.1', port)
    await site.start()
    try:
        await asyncio.Event().wait()    # until the process is stopped
    finally:
        await runner.cleanup()


if __name__ == '__main__':
    how, port = sys.argv[1], int(sys.argv[2])
    if how == 'run_app':
        serve_with_run_app(port)
    else:
        asyncloop.run(serve_with_runner(port))
