"""The contextvars context protocol callbacks run in, on both loops.

On the default loop every protocol callback is a handle made where the
connection was (the server's, or the caller of create_connection), so a
context variable set before create_server() or create_connection() is
seen by the protocol factory and by connection_made, data_received,
eof_received and connection_lost; what a callback sets stays out of the
context the loop itself runs in. (TLS: see test_tls.py.)
"""
import asyncio
import contextvars
import socket

import pytest

where = contextvars.ContextVar('where', default='loop')


class Recorder(asyncio.Protocol):
    """Records the value of `where` in each callback; answers one
    message, then closes."""

    def __init__(self, seen, done=None, reply=True):
        self.seen, self.done, self.reply = seen, done, reply
        self.seen.append(('factory', where.get()))

    def connection_made(self, transport):
        self.transport = transport
        self.seen.append(('connection_made', where.get()))
        where.set('set in a callback')

    def data_received(self, data):
        self.seen.append(('data_received', where.get()))
        if self.reply:
            self.transport.write(data)
            self.transport.write_eof()

    def eof_received(self):
        self.seen.append(('eof_received', where.get()))

    def connection_lost(self, exc):
        self.seen.append(('connection_lost', where.get()))
        if self.done is not None and not self.done.done():
            self.done.set_result(None)


def _values(seen):
    """{callback name: values seen}, the value set in connection_made
    folded: the default loop copies the context for each callback, so
    later callbacks may or may not see it."""
    out = {}
    for name, value in seen:
        out.setdefault(name, set()).add(
            'connection' if value == 'set in a callback' else value)
    return out


async def _exchange(loop, connect, serve):
    server_seen, client_seen = [], []
    server_done = loop.create_future()
    client_done = loop.create_future()
    where.set('server')
    server = await serve(lambda: Recorder(server_seen, server_done))
    where.set('client')
    transport, _ = await connect(
        server, lambda: Recorder(client_seen, client_done, reply=False))
    where.set('caller')
    transport.write(b'ping')
    await asyncio.wait_for(asyncio.gather(server_done, client_done), 10)
    transport.close()
    server.close()
    await server.wait_closed()
    return _values(server_seen), _values(client_seen)


def _check(server_values, client_values):
    for name in ('factory', 'connection_made', 'data_received',
                 'connection_lost'):
        assert server_values[name] <= {'server', 'connection'}, name
    assert server_values['factory'] == {'server'}
    assert server_values['connection_made'] == {'server'}
    for name in ('factory', 'connection_made', 'eof_received',
                 'connection_lost'):
        assert client_values[name] <= {'client', 'connection'}, name
    assert client_values['connection_made'] == {'client'}


def _run(loop, coro):
    """Runs coro in a context of its own; returns (its result, the value
    of `where` in the context run_until_complete was called from)."""
    result = contextvars.copy_context().run(loop.run_until_complete, coro)
    return result, where.get()


def test_tcp_callbacks_run_in_their_connection_context(loop):
    async def serve(factory):
        return await loop.create_server(factory, '127.0.0.1', 0)

    async def connect(server, factory):
        port = server.sockets[0].getsockname()[1]
        return await loop.create_connection(factory, '127.0.0.1', port)

    (server_values, client_values), outer = _run(
        loop, _exchange(loop, connect, serve))
    _check(server_values, client_values)
    assert outer == 'loop'


def test_unix_callbacks_run_in_their_connection_context(loop, tmp_path):
    path = str(tmp_path / 'sock')

    async def serve(factory):
        return await loop.create_unix_server(factory, path)

    async def connect(server, factory):
        return await loop.create_unix_connection(factory, path)

    (server_values, client_values), _ = _run(
        loop, _exchange(loop, connect, serve))
    _check(server_values, client_values)


def test_connect_accepted_socket_runs_in_the_callers_context(loop):
    """connect_accepted_socket(): the context of its caller."""
    async def main():
        seen = []
        done = loop.create_future()
        a, b = socket.socketpair()
        where.set('accepted')
        transport, _ = await loop.connect_accepted_socket(
            lambda: Recorder(seen, done), a)
        where.set('caller')
        b.sendall(b'ping')
        b.shutdown(socket.SHUT_WR)
        await asyncio.wait_for(done, 10)
        b.close()
        return _values(seen)

    values, _ = _run(loop, main())
    assert values['factory'] == {'accepted'}
    assert values['connection_made'] == {'accepted'}
    for name in ('data_received', 'connection_lost'):
        assert values[name] <= {'accepted', 'connection'}, name


def test_server_started_later_uses_the_context_of_start_serving(loop):
    """create_server(start_serving=False): the reader is added, and its
    context copied, when serving starts."""
    async def main():
        seen = []
        done = loop.create_future()
        where.set('created')
        server = await loop.create_server(lambda: Recorder(seen, done),
                                          '127.0.0.1', 0,
                                          start_serving=False)
        where.set('started')
        await server.start_serving()
        where.set('caller')
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection('127.0.0.1', port)
        writer.write(b'ping')
        await reader.read()
        writer.close()
        await asyncio.wait_for(done, 10)
        server.close()
        await server.wait_closed()
        return _values(seen)

    values, _ = _run(loop, main())
    assert values['factory'] == {'started'}
    assert values['connection_made'] == {'started'}


@pytest.mark.parametrize('family', ['tcp', 'unix'])
def test_streams_handler_runs_in_the_server_context(loop, family, tmp_path):
    """start_server(): the client_connected_cb task copies the context
    the connection's protocol runs in."""
    path = str(tmp_path / 'sock')

    async def main():
        got = loop.create_future()

        async def handle(reader, writer):
            got.set_result(where.get())
            writer.close()

        where.set('server')
        if family == 'tcp':
            server = await asyncio.start_server(handle, '127.0.0.1', 0)
            port = server.sockets[0].getsockname()[1]
            where.set('client')
            reader, writer = await asyncio.open_connection('127.0.0.1', port)
        else:
            server = await asyncio.start_unix_server(handle, path)
            where.set('client')
            reader, writer = await asyncio.open_unix_connection(path)
        value = await asyncio.wait_for(got, 10)
        writer.close()
        server.close()
        await server.wait_closed()
        return value

    value, _ = _run(loop, main())
    assert value == 'server'
