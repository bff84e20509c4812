"""uvicorn started from Python, as a user's launcher script does.

    python uvicorn_run.py loop PORT     uvicorn.run(..., loop=...): asyncloop
    python uvicorn_run.py policy PORT   the policy set first: uvicorn's
                                        loop="auto" ignores it
"""
import asyncio
import sys

import uvicorn

import asyncloop

if __name__ == '__main__':
    how, port = sys.argv[1], int(sys.argv[2])
    if how == 'loop':
        uvicorn.run('asgi_app:app', host='127.0.0.1', port=port,
                    loop='asyncloop:new_event_loop')
    else:
        asyncio.set_event_loop_policy(asyncloop.EventLoopPolicy())
        uvicorn.run('asgi_app:app', host='127.0.0.1', port=port)
