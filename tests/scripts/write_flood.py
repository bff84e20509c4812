"""Child process for the write-flood memory test: write_flood.py LOOP SIZE.

A server writes about 20 MiB in writes of SIZE bytes (each a new bytes
object, as a program makes them) to a client that never reads, then the
connection is lost. Prints the growth of the resident set, in MiB, while
flooded and after the connection is gone: "flooded N after M".
"""
import asyncio
import gc
import os
import socket
import struct
import sys

import asyncloop

TOTAL = 20 * 2**20


def resident_mib():
    with open('/proc/self/statm') as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf('SC_PAGE_SIZE') / 2**20


async def flood(size):
    loop = asyncio.get_running_loop()
    made, lost = loop.create_future(), loop.create_future()

    class Writer(asyncio.Protocol):
        def connection_made(self, transport):
            transport.set_write_buffer_limits(high=2**30)
            made.set_result(transport)

        def connection_lost(self, exc):
            lost.set_result(None)

    server = await loop.create_server(Writer, '127.0.0.1', 0)
    client = socket.create_connection(server.sockets[0].getsockname())
    transport = await made
    base = resident_mib()
    filler = b'x' * size
    for i in range(TOTAL // size):
        transport.write(b'%d,' % i + filler[:size - 8])
    flooded = resident_mib() - base
    client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                      struct.pack('ii', 1, 0))
    client.close()
    transport.abort()
    await lost
    del transport
    gc.collect()
    after = resident_mib() - base
    server.close()
    await server.wait_closed()
    print(f'flooded {flooded:.1f} after {after:.1f}')


def main():
    kind, size = sys.argv[1], int(sys.argv[2])
    factory = {'asyncio': asyncio.new_event_loop,
               'asyncloop': asyncloop.new_event_loop}[kind]
    loop = factory()
    try:
        loop.run_until_complete(flood(size))
    finally:
        loop.close()


if __name__ == '__main__':
    main()
