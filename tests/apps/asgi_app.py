"""A bare ASGI application that answers which loop serves it.

    uvicorn --loop asyncloop:new_event_loop asgi_app:app
    gunicorn -k asyncloop.workers.UvicornWorker asgi_app:app

Every request gets {"loop": "<module>.<class>", "pid": <pid>} as JSON.
"""
import asyncio
import json
import os


def loop_name():
    cls = type(asyncio.get_running_loop())
    return f'{cls.__module__}.{cls.__qualname__}'


async def app(scope, receive, send):
    if scope['type'] == 'lifespan':
        await receive()     # lifespan.startup
        await send({'type': 'lifespan.startup.complete'})
        await receive()     # lifespan.shutdown
        await send({'type': 'lifespan.shutdown.complete'})
        return
    body = json.dumps({'loop': loop_name(), 'pid': os.getpid()}).encode()
    await send({'type': 'http.response.start', 'status': 200,
                'headers': [(b'content-type', b'application/json')]})
    await send({'type': 'http.response.body', 'body': body})
