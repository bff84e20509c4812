"""anyio.run() on asyncloop: prints the loop class."""
import anyio

import asyncloop
from asgi_app import loop_name


async def main():
    await anyio.sleep(0)
    print(loop_name())


if __name__ == '__main__':
    anyio.run(main, backend_options={'loop_factory': asyncloop.new_event_loop})
