"""N processes serving one port, each on its own asyncloop loop.

    python reuse_port.py PORT N

Each process binds 127.0.0.1:PORT with reuse_port=True (SO_REUSEPORT) and
the kernel spreads the incoming connections over them.
"""
import asyncio
import multiprocessing
import sys

from aiohttp import web

import asyncloop
from aiohttp_app import make_app


async def serve(port):
    runner = web.AppRunner(await make_app())
    await runner.setup()
    site = web.TCPSite(runner, '127.0.0.1', port, reuse_port=True)
    await site.start()
    try:
        await asyncio.Event().wait()    # until the process is stopped
    finally:
        await runner.cleanup()


def worker(port):
    asyncloop.run(serve(port))


if __name__ == '__main__':
    port, count = int(sys.argv[1]), int(sys.argv[2])
    # The workers start before any loop exists in this process.
    workers = [multiprocessing.Process(target=worker, args=(port,))
               for _ in range(count)]
    for process in workers:
        process.start()
    for process in workers:
        process.join()
