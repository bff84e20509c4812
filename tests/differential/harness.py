"""What a generated program runs with, and the runner of programs.

A program (see generator.py) is Python source with three functions:
sync_phase(loop, h, V) before the loop runs, main(loop, h, V) run with
run_until_complete(), close_phase(loop, h, V) after it. `h` is a Harness:
it runs each operation, records what it returned or raised, and gives the
callbacks and protocols whose calls are recorded. What one program observed
is a dict of streams; each stream is compared in order where asyncio
defines the order and as a multiset where it does not (see UNORDERED).

Run as a script it reads programs' seeds, runs them on one kind of loop and
prints one JSON line per program:
    python harness.py --loop asyncloop --seeds 1 2 3
"""
import argparse
import asyncio
import collections
import faulthandler
import gc
import json
import logging
import os
import re
import socket
import sys
import tempfile
import threading
import warnings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import generator  # noqa: E402

# Streams whose order is not defined by asyncio: compared as multisets.
UNORDERED = ('set', 'handler', 'warning', 'unraisable', 'log')
# Longest wait for one awaited operation: far beyond what loopback needs, so
# a timeout is a hang of the loop, recorded as such instead of stalling.
WAIT = 10.0
# Where the near timers of a program are: t0 + slot * SLOT seconds.
SLOT = 0.002

_ADDR = re.compile(r' at 0x[0-9a-f]+|0x[0-9a-f]+')
_REPR = re.compile(r'<(\w[\w.]*)[^<>]*>')
_QUALNAME = re.compile(r"'(\w+\.)+(\w+)'")


def _short_repr(match):
    name = match.group(1)
    return '<Transport>' if name.endswith('Transport') else f'<{name}>'


def normalize(text, limit=80):
    """A message without addresses, the details of reprs and the class
    part of qualified names, which differ between loops."""
    text = _ADDR.sub('', str(text))
    text = _QUALNAME.sub(r"'\2'", _REPR.sub(_short_repr, text))
    return text[:limit]


# The exception handler's messages start with these; what follows is a
# repr of the handle, task or transport, different between loops.
_HANDLER_PREFIXES = (
    'Exception in callback', 'Task exception was never retrieved',
    'Task was destroyed but it is pending', 'Future exception was never',
    'Unhandled error in exception handler', 'Fatal error on transport',
    'Fatal read error', 'Fatal write error', 'Error on reading from',
    'Exception in default exception handler', 'Fatal error on',
    'an error occurred during closing of asynchronous generator',
    'asyncio.Future', 'Executing',
)


def warning_text(message):
    """A warning's message as compared. A transport left open warns for
    itself and, or instead, for its socket, in an order the collector
    decides (it varies between runs of the default loop): one text."""
    text = normalize(message, 40)
    if re.match(r'unclosed (transport|<socket)', text):
        return 'unclosed transport or socket'
    return text


def handler_message(message):
    for prefix in _HANDLER_PREFIXES:
        if str(message).startswith(prefix):
            return prefix
    return normalize(message)


def exc_name(exc):
    return None if exc is None else type(exc).__name__


def summary(value, depth=0):
    """What of a result is compared: plain values as they are, futures by
    state, other objects by nothing but being an object."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if value != value or value in (float('inf'), -float(
            'inf')) else 'float'
    if isinstance(value, (bytes, bytearray, memoryview)):
        return 'b:' + bytes(value).decode('latin-1')
    if depth < 3 and isinstance(value, (list, tuple, set, frozenset)):
        items = [summary(v, depth + 1) for v in value]
        if isinstance(value, (set, frozenset)):
            items.sort(key=repr)
        return items
    if isinstance(value, asyncio.Future):
        return future_state(value)
    if isinstance(value, BaseException):
        return 'exc:' + exc_name(value)
    return 'obj'


def future_state(fut):
    if not fut.done():
        return 'pending'
    if fut.cancelled():
        return 'cancelled'
    exc = fut.exception()
    if exc is not None:
        return 'exc:' + exc_name(exc)
    return ['result', summary(fut.result(), 1)]


def exc_record(exc):
    return ['exc', exc_name(exc), normalize(exc)]


class Recorder(asyncio.Protocol):
    """A protocol that records its calls in its stream and, as the server
    side, behaves as its mode says: echo, sink, close or abort on
    connection."""

    def __init__(self, h, name, mode='sink'):
        self.h, self.name, self.mode = h, name, mode
        self.transport = None
        self.data = bytearray()
        self.made = h.loop.create_future()
        self.lost = h.loop.create_future()
        self.eof = h.loop.create_future()
        self.wanted = []
        h.peers.append(self)

    def connection_made(self, transport):
        self.transport = transport
        self.h.rec(self.name, 'made')
        _resolve(self.made, None)
        if self.mode == 'close':
            transport.close()
        elif self.mode == 'abort':
            transport.abort()

    def data_received(self, data):
        self.data += data
        events = self.h.streams[self.name]
        if not events or events[-1] != ['data']:
            self.h.rec(self.name, 'data')
        if self.mode == 'echo':
            self.transport.write(data)
        self._check_wanted()

    def eof_received(self):
        self.h.rec(self.name, 'eof')
        _resolve(self.eof, None)
        return False

    def connection_lost(self, exc):
        self.h.rec(self.name, 'lost', exc_name(exc))
        _resolve(self.lost, exc_name(exc))
        _resolve(self.eof, None)
        for _, fut in self.wanted:
            _resolve(fut, len(self.data))

    def pause_writing(self):
        self.h.rec(self.name, 'pause_writing')

    def resume_writing(self):
        self.h.rec(self.name, 'resume_writing')

    def want(self, n):
        """A future done once n bytes in all have arrived (or the
        connection is lost)."""
        fut = self.h.loop.create_future()
        self.wanted.append((n, fut))
        self._check_wanted()
        return fut

    def _check_wanted(self):
        for n, fut in self.wanted:
            if len(self.data) >= n:
                _resolve(fut, len(self.data))


def _resolve(fut, value):
    if not fut.done():
        fut.set_result(value)


class Listener:
    """The server side of create_server(): names accepted connections in
    order of arrival and gives a future per connection to come."""

    def __init__(self, h, name, mode):
        self.h, self.name, self.mode = h, name, mode
        self.accepted = []
        self.next = collections.deque()

    def __call__(self):
        proto = Recorder(self.h, f'{self.name}.{len(self.accepted)}',
                         self.mode)
        self.accepted.append(proto)
        return proto

    def peer(self, i):
        """The i-th accepted connection, once it is made."""
        async def wait():
            while len(self.accepted) <= i:
                await asyncio.sleep(0)
            await self.accepted[i].made
            return self.accepted[i]
        return wait()


class Harness:
    def __init__(self, loop, tmpdir):
        self.loop = loop
        self.tmpdir = tmpdir
        self.streams = collections.defaultdict(list)
        self.peers = []
        self.sockets = []
        self.placeholders = []
        self.t0 = loop.time()

    def rec(self, stream, *event):
        self.streams[stream].append(list(event))

    def at(self, slot):
        """The deadline of a near timer."""
        return self.t0 + slot * SLOT

    def delay(self, slot):
        return self.at(slot) - self.loop.time()

    def in_thread(self, fn, *args):
        """Calls fn in another thread and waits for it."""
        result = []
        thread = threading.Thread(target=lambda: result.append(fn(*args)))
        thread.start()
        thread.join()
        return result[0] if result else None

    def listener(self, name, mode):
        return Listener(self, name, mode)

    def proto(self, name):
        return Recorder(self, name)

    @staticmethod
    def port(server):
        return server.sockets[0].getsockname()[1]

    @staticmethod
    def free_port():
        """A loopback port nothing listens on (just released)."""
        with socket.socket() as sock:
            sock.bind(('127.0.0.1', 0))
            return sock.getsockname()[1]

    # Operations -------------------------------------------------------

    def op(self, n, fn):
        try:
            value = fn()
        except BaseException as exc:  # noqa: B902 - what it raised is the point
            self.rec('main', n, *exc_record(exc))
            return None
        self.rec('main', n, 'ok', summary(value))
        return value

    async def aop(self, n, fn):
        try:
            value = await asyncio.wait_for(fn(), WAIT)
        except asyncio.TimeoutError as exc:
            self.rec('main', n, 'exc', exc_name(exc), 'TIMEOUT ' + str(exc))
            return None
        except BaseException as exc:  # noqa: B902
            self.rec('main', n, *exc_record(exc))
            return None
        self.rec('main', n, 'ok', summary(value))
        return value

    # Callbacks --------------------------------------------------------

    def cb(self, tag, *args):
        """A call_soon callback: the 'soon' stream is in FIFO order."""
        self.rec('soon', tag, *map(summary, args))

    def tcb(self, tag):
        """A near timer's callback: the 'timer' stream is by deadline."""
        self.rec('timer', tag)

    def ucb(self, tag, *args):
        """A callback whose order against the others is not defined."""
        self.rec('set', tag, *map(summary, args))

    def fcb(self, tag):
        def done(fut):
            self.rec('soon', tag, future_state(fut))
        return done

    def raiser(self, name):
        exc = {'ValueError': ValueError, 'SystemExit': SystemExit,
               'KeyboardInterrupt': KeyboardInterrupt,
               'RuntimeError': RuntimeError}[name]
        raise exc(name.lower())

    async def coro(self, tag='coro'):
        self.rec('set', tag)
        return tag

    async def worker(self, name, plan, V):
        """A task's body: its own stream records how far it got."""
        self.rec(name, 'start')
        try:
            for step in plan:
                kind = step[0]
                if kind == 'sleep0':
                    await asyncio.sleep(0)
                elif kind == 'fut':
                    value = await V[step[1]]
                    self.rec(name, 'got', summary(value))
                elif kind == 'raise':
                    self.raiser(step[1])
                elif kind == 'return':
                    self.rec(name, 'return')
                    return step[1]
                elif kind == 'swallow':
                    try:
                        await asyncio.sleep(0)
                        await asyncio.sleep(0)
                    except asyncio.CancelledError:
                        self.rec(name, 'swallowed')
            self.rec(name, 'end')
            return name
        except BaseException as exc:  # noqa: B902
            self.rec(name, 'raised', exc_name(exc))
            raise

    async def timeout0(self):
        async with asyncio.timeout(0):
            await asyncio.sleep(WAIT * 2)

    # Descriptors ------------------------------------------------------

    def pair(self):
        a, b = socket.socketpair()
        self.sockets += [a, b]
        return a, b

    def close_sock(self, sock):
        """Closes sock and takes its descriptor number with /dev/null, so
        that no later socket of the program reuses the number (a reused
        number is a documented difference, not what is tested)."""
        fd = sock.fileno()
        sock.close()
        if fd >= 0:
            self.placeholders.append(os.open(os.devnull, os.O_RDONLY))
        return fd >= 0

    def reader(self, tag, sock):
        try:
            data = summary(sock.recv(4096))
        except OSError as exc:
            data = 'exc:' + exc_name(exc)
        self.rec('set', tag, data, self.outcome(self.loop.remove_reader,
                                                sock))

    def writer(self, tag, sock):
        self.rec('set', tag, self.outcome(self.loop.remove_writer, sock))

    @staticmethod
    def outcome(fn, *args):
        try:
            return summary(fn(*args))
        except Exception as exc:  # noqa: BLE001 - what it raised is the point
            return 'exc:' + exc_name(exc)

    def unix_path(self, n):
        return os.path.join(self.tmpdir, f's{n}')

    # Streams API ------------------------------------------------------

    def stream_handler(self, name):
        async def handle(reader, writer):
            self.rec(name, 'accepted')
            data = await reader.read()
            self.rec(name, 'read', summary(data))
            writer.write(data)
            await writer.drain()
            writer.close()
            await writer.wait_closed()
            self.rec(name, 'closed')
        return handle

    async def stream_client(self, name, port, data, extra):
        reader, writer = await asyncio.open_connection('127.0.0.1', port)
        writer.write(data)
        await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
        got = await reader.read()
        self.rec(name, 'got', summary(got))
        if extra:
            try:
                await reader.readexactly(1)
            except asyncio.IncompleteReadError as exc:
                self.rec(name, 'incomplete', summary(exc.partial),
                         exc.expected)
        writer.close()
        writer.close()
        await writer.wait_closed()
        self.rec(name, 'closing', writer.is_closing())
        return len(got)

    async def drain(self, slots):
        """Waits for every near timer, then for the callbacks they and the
        other threads scheduled."""
        delay = self.t0 + (slots + 2) * SLOT - self.loop.time()
        await asyncio.sleep(max(0.0, delay))
        for _ in range(5):
            await asyncio.sleep(0)

    def cleanup(self):
        for sock in self.sockets:
            sock.close()
        for fd in self.placeholders:
            os.close(fd)


class Capture(logging.Handler):
    def __init__(self, h):
        super().__init__()
        self.h = h

    def emit(self, record):
        self.h.rec('log', record.levelname, normalize(record.getMessage(),
                                                      40))


def make_loop(kind):
    if kind == 'asyncio':
        return asyncio.new_event_loop()
    if kind == 'uvloop':
        import uvloop
        return uvloop.new_event_loop()
    import asyncloop
    return asyncloop.new_event_loop()


def run_program(kind, source, debug=False):
    """Runs one program's source on a new loop of that kind; returns the
    streams it observed."""
    namespace = {}
    gc.collect()  # what earlier programs left is not this one's
    exec(compile(source, '<program>', 'exec'), namespace)
    loop = make_loop(kind)
    with tempfile.TemporaryDirectory(prefix='diff-') as tmpdir:
        h = Harness(loop, tmpdir)
        capture = Capture(h)
        logger = logging.getLogger('asyncio')
        logger.addHandler(capture)
        logger.propagate = False
        old_hook = sys.unraisablehook
        sys.unraisablehook = lambda u: h.rec(
            'unraisable', exc_name(u.exc_value), normalize(u.err_msg, 30))
        try:
            with warnings.catch_warnings():
                warnings.simplefilter('always')
                # Recorded as text at once: a kept warning would keep its
                # source (an unawaited coroutine, its loop...) alive.
                warnings.showwarning = lambda message, category, *_: h.rec(
                    'warning', category.__name__, warning_text(message))
                _phases(loop, h, namespace, debug)
                # Nothing of the program may outlive it: the loop and what
                # refers to it are collected while warnings are recorded.
                namespace.clear()
                h.loop = loop = None
                h.peers.clear()
                # asyncloop's objects can need more than one collection
                # (the README: a loop is freed by the collector's next run).
                for _ in range(6):
                    if not gc.collect():
                        break
        finally:
            sys.unraisablehook = old_hook
            logger.removeHandler(capture)
            logger.propagate = True
    return dict(h.streams)


def _phases(loop, h, namespace, debug):
    V = {}
    loop.set_exception_handler(lambda lp, ctx: h.rec(
        'handler', handler_message(ctx.get('message')),
        exc_name(ctx.get('exception'))))
    if debug:
        loop.set_debug(True)
        loop.slow_callback_duration = 1e9
    try:
        namespace['sync_phase'](loop, h, V)
        task = loop.create_task(namespace['main'](loop, h, V))
        # A callback may raise SystemExit or stop the loop: run again, as
        # a program that catches it would, up to a few times.
        for attempt in range(4):
            try:
                loop.run_until_complete(task)
                break
            except BaseException as exc:  # noqa: B902
                h.rec('run', attempt, exc_name(exc), normalize(exc))
        namespace['close_phase'](loop, h, V)
    finally:
        if not loop.is_closed():
            if not loop.is_running():
                loop.close()
        h.cleanup()
        V.clear()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('--loop', default='asyncloop')
    parser.add_argument('--hang', type=float, default=60.0,
                        help='seconds after which one program is a hang')
    parser.add_argument('--show', action='store_true',
                        help='print the programs instead of running them')
    parser.add_argument('--seeds', type=int, nargs='+',
                        help='programs to generate; without it, programs '
                        'are read from stdin as JSON lines '
                        '{"id", "source", "debug"}')
    args = parser.parse_args()
    if args.seeds:
        programs = [generator.generate(seed) for seed in args.seeds]
        programs = [{'id': p.seed, 'source': p.source, 'debug': p.debug}
                    for p in programs]
    else:
        programs = [json.loads(line) for line in sys.stdin if line.strip()]
    for program in programs:
        if args.show:
            print(program['source'])
            continue
        print(json.dumps({'begin': program['id']}), flush=True)
        faulthandler.dump_traceback_later(args.hang, exit=True)
        try:
            streams = run_program(args.loop, program['source'],
                                  program['debug'])
        except BaseException as exc:  # noqa: B902
            streams = {'runner': [exc_record(exc)]}
        faulthandler.cancel_dump_traceback_later()
        print(json.dumps({'id': program['id'], 'streams': streams},
                         default=repr), flush=True)
    # Threads of the default executors must not delay the exit.
    sys.stdout.flush()
    os._exit(0)


if __name__ == '__main__':
    threading.excepthook = lambda args: None
    main()
