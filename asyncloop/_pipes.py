"""The Loop methods connect_read_pipe and connect_write_pipe.

The transports are asyncio's own Unix pipe transports. They drive the pipe
through the loop's descriptor watchers (`_add_reader`/`_add_writer`, which
asyncloop implements in C with the semantics those transports expect), so
EOF, BrokenPipeError, pause/resume reading and write flow control behave
exactly as on the default loop; writes go out at once when the pipe can
take them.
"""
from asyncio import unix_events
from asyncio.log import logger


class PipesMixin:
    """Mixed into asyncloop.Loop."""

    def _make_read_pipe_transport(self, pipe, protocol, waiter=None,
                                  extra=None):
        return unix_events._UnixReadPipeTransport(self, pipe, protocol,
                                                  waiter, extra)

    def _make_write_pipe_transport(self, pipe, protocol, waiter=None,
                                   extra=None):
        return unix_events._UnixWritePipeTransport(self, pipe, protocol,
                                                   waiter, extra)

    async def connect_read_pipe(self, protocol_factory, pipe):
        """Wrap the read end of a pipe (or FIFO, PTY, character device)."""
        return await self._connect_pipe(self._make_read_pipe_transport,
                                        'Read', protocol_factory, pipe)

    async def connect_write_pipe(self, protocol_factory, pipe):
        """Wrap the write end of a pipe (or FIFO, PTY, character device)."""
        return await self._connect_pipe(self._make_write_pipe_transport,
                                        'Write', protocol_factory, pipe)

    async def _connect_pipe(self, make_transport, kind, protocol_factory,
                            pipe):
        protocol = protocol_factory()
        waiter = self.create_future()
        transport = make_transport(pipe, protocol, waiter)
        try:
            await waiter
        except:
            transport.close()
            raise
        if self.get_debug():
            logger.debug('%s pipe %r connected: (%r, %r)', kind,
                         pipe.fileno(), transport, protocol)
        return transport, protocol
