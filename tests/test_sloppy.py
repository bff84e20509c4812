"""Sloppy programs: loops dropped without close(), transports left open.

What the default loop does is the reference: a loop that is dropped is
collected with everything it holds, its descriptors come back, and the
program is told through ResourceWarnings (unclosed event loop, unclosed
transport, ...) and through the exception handler ("Task was destroyed but
it is pending!"). Each test runs on both loops.
"""
import asyncio
import gc
import os
import pathlib
import subprocess
import sys
import warnings
import weakref

import pytest


def _descriptors():
    return len(os.listdir('/proc/self/fd'))


def _kind(warning):
    """'ResourceWarning: unclosed transport', from a recorded warning."""
    words = str(warning.message).split()
    return f'{warning.category.__name__}: {" ".join(words[:2])}'


def _drop_loop_with_server(loop_factory):
    loop = loop_factory()
    loop.run_until_complete(
        loop.create_server(asyncio.Protocol, '127.0.0.1', 0))
    return weakref.ref(loop)


def _drop_loop_that_served(loop_factory, handler_calls):
    """A loop that served a few stream connections and left its tasks
    pending, as a failed test or a forgetful script leaves it."""
    loop = loop_factory()
    loop.set_exception_handler(
        lambda lp, ctx: handler_calls.append(ctx['message']))

    async def serve(reader, writer):
        writer.write(await reader.read(100))
        await asyncio.sleep(3600)

    async def main():
        server = await asyncio.start_server(serve, '127.0.0.1', 0)
        port = server.sockets[0].getsockname()[1]
        clients = []
        for _ in range(3):
            reader, writer = await asyncio.open_connection('127.0.0.1', port)
            writer.write(b'hi')
            await reader.readexactly(2)
            clients.append((reader, writer))
        loop.create_task(asyncio.sleep(3600))
        return clients

    loop.run_until_complete(main())
    return weakref.ref(loop)


def _collect():
    for _ in range(3):
        gc.collect()


def test_dropped_loop_with_a_server_is_collected(loop_factory):
    """The smallest case: a loop with a listening server, dropped."""
    ref = _drop_loop_with_server(loop_factory)   # libuv's once-per-process
    _collect()                                   # descriptors, if any
    before = _descriptors()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        ref = _drop_loop_with_server(loop_factory)
        _collect()
    assert ref() is None
    assert _descriptors() == before
    assert 'ResourceWarning: unclosed event' in {_kind(w) for w in caught}


def test_dropped_loops_that_served_give_everything_back(loop_factory):
    """Ten loops with a server, three connections each and pending tasks:
    all collected, no descriptor left, the same warnings and exception
    handler calls on both loops."""
    _drop_loop_that_served(loop_factory, [])
    _collect()
    before = _descriptors()
    calls = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        refs = [_drop_loop_that_served(loop_factory, calls)
                for _ in range(10)]
        _collect()
    assert [ref for ref in refs if ref() is not None] == []
    assert _descriptors() == before
    kinds = [_kind(w) for w in caught]
    assert kinds.count('ResourceWarning: unclosed event') == 10
    # Three connections, each a transport at both ends.
    assert kinds.count('ResourceWarning: unclosed transport') == 60
    # Four tasks a loop: three handlers and the sleeper.
    assert calls.count('Task was destroyed but it is pending!') == 40


def test_closed_loop_leaves_transports_not_closing(loop_factory):
    """close() of the loop does not close its transports: as on the default
    loop, is_closing() stays false and closing one afterwards raises the
    loop's RuntimeError."""
    loop = loop_factory()

    async def main():
        server = await loop.create_server(asyncio.Protocol, '127.0.0.1', 0)
        port = server.sockets[0].getsockname()[1]
        transport, _ = await loop.create_connection(
            asyncio.Protocol, '127.0.0.1', port)
        server.close()
        return transport

    transport = loop.run_until_complete(main())
    loop.close()
    assert not transport.is_closing()
    with pytest.raises(RuntimeError, match='Event loop is closed'):
        transport.close()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        del transport
        _collect()
    assert 'ResourceWarning: unclosed transport' in {_kind(w) for w in caught}


FLOOD = pathlib.Path(__file__).parent / 'scripts' / 'write_flood.py'


def _flood(kind, size):
    """(MiB resident growth while flooded, after the connection went)."""
    root = FLOOD.parent.parent.parent
    env = dict(os.environ, PYTHONPATH=str(root))
    out = subprocess.run([sys.executable, str(FLOOD), kind, str(size)],
                         capture_output=True, text=True, timeout=120,
                         cwd=str(root), env=env)
    assert out.returncode == 0, out.stderr
    words = out.stdout.split()
    return float(words[1]), float(words[3])


@pytest.mark.parametrize('size', [100, 480, 4000, 200_000])
def test_memory_of_a_write_flood_goes_back(size):
    """20 MiB of writes queued for a peer that stopped reading, then the
    connection lost: the memory goes back to the system (the resident set
    grows by a few blocks at most), whatever the size of the writes. The
    default loop is measured beside it: on 3.11 it copies the queue into
    one bytearray and gives it all back; from 3.12 on it queues the
    written objects themselves and keeps much of a flood of small writes
    resident (and is slow to queue 200k small writes), so it is measured
    on 3.11 only."""
    flooded, after = _flood('asyncloop', size)
    assert flooded > 10                 # the data was queued
    assert after < 3, (flooded, after)
    if sys.version_info < (3, 12):
        asyncio_flooded, asyncio_after = _flood('asyncio', size)
        assert asyncio_flooded > 10
        assert asyncio_after < 3
