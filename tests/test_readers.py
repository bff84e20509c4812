"""Descriptor watchers: add_reader / add_writer / remove_reader /
remove_writer, as asyncio.selector_events defines them (the default loop on
Linux uses selectors.EpollSelector, whose errors are the reference)."""
import asyncio
import errno
import os
import socket
import tempfile
import time

import pytest

TIMEOUT = 10


def run_until(loop, predicate, timeout=TIMEOUT):
    """Run the loop until predicate() is true; fail after timeout."""
    deadline = time.monotonic() + timeout

    async def wait():
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError('condition not reached in time')
            await asyncio.sleep(0.002)

    loop.run_until_complete(wait())


def run_briefly(loop, duration=0.05):
    loop.run_until_complete(asyncio.sleep(duration))


@pytest.fixture
def sockpair():
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    yield a, b
    a.close()
    b.close()


# ---- readers and writers ---------------------------------------------------

def test_reader_on_socketpair(loop, sockpair):
    """A reader is called with its args when data arrives, and again while
    data is left unread."""
    a, b = sockpair
    calls = []
    loop.add_reader(a.fileno(), calls.append, 'x')
    run_briefly(loop, 0.02)
    assert calls == []
    b.send(b'data')
    run_until(loop, lambda: len(calls) >= 3)
    assert set(calls) == {'x'}
    assert loop.remove_reader(a.fileno()) is True


def test_reader_consuming_data(loop, sockpair):
    """A reader that reads what arrived is called once per arrival."""
    a, b = sockpair
    received = []
    loop.add_reader(a, lambda: received.append(a.recv(100)))
    b.send(b'one')
    run_until(loop, lambda: received)
    b.send(b'two')
    run_until(loop, lambda: len(received) >= 2)
    run_briefly(loop, 0.02)
    assert received == [b'one', b'two']
    loop.remove_reader(a)


def test_reader_on_pipe(loop, pipe):
    """A reader on the read end of an os.pipe()."""
    r, w = pipe
    got = []
    loop.add_reader(r, lambda tag: got.append((tag, os.read(r, 10))), 'pipe')
    os.write(w, b'hello')
    run_until(loop, lambda: got)
    assert got == [('pipe', b'hello')]
    assert loop.remove_reader(r) is True


def test_writer_on_pipe(loop, pipe):
    """A writer on the write end of an empty pipe is called at once, with
    its args, and keeps being called while writable."""
    r, w = pipe
    calls = []
    loop.add_writer(w, calls.append, 1)
    run_until(loop, lambda: len(calls) >= 2)
    assert loop.remove_writer(w) is True
    assert set(calls) == {1}


def test_writer_on_full_socket(loop, sockpair):
    """A writer on a socket whose buffer is full is called only once the
    peer reads."""
    a, b = sockpair
    try:
        while True:
            a.send(b'x' * 65536)
    except BlockingIOError:
        pass
    calls = []
    loop.add_writer(a.fileno(), calls.append, 'writable')
    run_briefly(loop, 0.05)
    assert calls == []
    # Drain the peer until there is room again.
    deadline = time.monotonic() + TIMEOUT
    while not calls and time.monotonic() < deadline:
        try:
            while b.recv(65536):
                pass
        except BlockingIOError:
            pass
        run_briefly(loop, 0.01)
    assert calls and set(calls) == {'writable'}
    loop.remove_writer(a.fileno())


def test_replacing_reader(loop, sockpair):
    """A second add_reader() on the same fd replaces the callback."""
    a, b = sockpair
    calls = []
    loop.add_reader(a.fileno(), calls.append, 'first')
    loop.add_reader(a.fileno(), lambda: calls.append(('second', a.recv(10))))
    b.send(b'x')
    run_until(loop, lambda: calls)
    run_briefly(loop, 0.02)
    assert calls == [('second', b'x')]
    assert loop.remove_reader(a.fileno()) is True
    assert loop.remove_reader(a.fileno()) is False


def test_replacing_writer(loop, pipe):
    """A second add_writer() on the same fd replaces the callback."""
    r, w = pipe
    calls = []
    loop.add_writer(w, calls.append, 'first')
    loop.add_writer(w, calls.append, 'second')
    run_until(loop, lambda: calls)
    loop.remove_writer(w)
    assert set(calls) == {'second'}


def test_remove_return_values(loop, sockpair):
    """remove_reader/remove_writer: True when something was removed, False
    when nothing was watched (never, or already removed)."""
    a, b = sockpair
    fd = a.fileno()
    assert loop.remove_reader(fd) is False
    assert loop.remove_writer(fd) is False
    loop.add_reader(fd, lambda: None)
    assert loop.remove_writer(fd) is False
    assert loop.remove_reader(fd) is True
    assert loop.remove_reader(fd) is False
    loop.add_writer(fd, lambda: None)
    assert loop.remove_reader(fd) is False
    assert loop.remove_writer(fd) is True
    assert loop.remove_writer(fd) is False


def test_add_returns_none(loop, sockpair):
    """The public add_reader()/add_writer() return None."""
    a, b = sockpair
    assert loop.add_reader(a.fileno(), lambda: None) is None
    assert loop.add_writer(a.fileno(), lambda: None) is None
    loop.remove_reader(a.fileno())
    loop.remove_writer(a.fileno())


def test_reader_and_writer_on_same_fd(loop, sockpair):
    """A reader and a writer on one fd coexist; removing one keeps the
    other working."""
    a, b = sockpair
    fd = a.fileno()
    reads, writes = [], []
    loop.add_reader(fd, lambda: reads.append(a.recv(100)))
    loop.add_writer(fd, writes.append, 'w')
    b.send(b'ping')
    run_until(loop, lambda: reads and writes)
    assert reads == [b'ping']

    assert loop.remove_writer(fd) is True
    run_briefly(loop, 0.01)
    writes.clear()
    b.send(b'pong')
    run_until(loop, lambda: len(reads) >= 2)
    assert reads == [b'ping', b'pong']
    assert writes == []

    loop.add_writer(fd, writes.append, 'again')
    assert loop.remove_reader(fd) is True
    reads.clear()
    b.send(b'ignored')
    run_until(loop, lambda: writes)
    assert reads == []
    assert set(writes) == {'again'}
    assert loop.remove_writer(fd) is True


def test_many_fds(loop):
    """Readers on many descriptors at once each get their own data."""
    pairs = [socket.socketpair() for _ in range(50)]
    got = {}
    try:
        for i, (a, b) in enumerate(pairs):
            a.setblocking(False)
            loop.add_reader(a.fileno(),
                            lambda i=i, a=a: got.setdefault(i, a.recv(10)))
        for i, (a, b) in enumerate(pairs):
            b.send(str(i).encode())
        run_until(loop, lambda: len(got) == len(pairs))
        assert got == {i: str(i).encode() for i in range(len(pairs))}
    finally:
        for a, b in pairs:
            loop.remove_reader(a.fileno())
            a.close()
            b.close()


def test_object_with_fileno(loop, sockpair):
    """Objects with a fileno() method are accepted (sockets, files), and
    name the same watcher as their number."""
    a, b = sockpair
    calls = []
    loop.add_reader(a, calls.append, 'sock')
    b.send(b'x')
    run_until(loop, lambda: calls)
    assert loop.remove_reader(a.fileno()) is True

    class HasFileno:
        def fileno(self):
            return a.fileno()

    loop.add_writer(HasFileno(), calls.append, 'obj')
    assert loop.remove_writer(a) is True


def test_pipe_file_objects(loop):
    """File objects of a pipe (os.fdopen) are accepted."""
    r, w = os.pipe()
    with os.fdopen(r, 'rb', buffering=0) as rf, \
            os.fdopen(w, 'wb', buffering=0) as wf:
        got = []
        loop.add_reader(rf, lambda: got.append(rf.read(10)))
        wf.write(b'abc')
        run_until(loop, lambda: got)
        assert got == [b'abc']
        assert loop.remove_reader(rf) is True


def test_callback_removes_itself(loop, sockpair):
    """A reader callback that removes itself gets True and is not called
    again although data is left unread."""
    a, b = sockpair
    results = []

    def reader():
        results.append(loop.remove_reader(a.fileno()))

    loop.add_reader(a.fileno(), reader)
    b.send(b'unread')
    run_until(loop, lambda: results)
    run_briefly(loop, 0.05)
    assert results == [True]


def test_callback_removes_other_watcher_in_same_iteration(loop):
    """A reader that removes another reader ready in the same iteration:
    the removed one is not called afterwards."""
    (a1, b1), (a2, b2) = socket.socketpair(), socket.socketpair()
    calls = []
    try:
        def first(name, other):
            calls.append(name)
            loop.remove_reader(other.fileno())
            loop.remove_reader(a1.fileno())
            loop.remove_reader(a2.fileno())

        loop.add_reader(a1.fileno(), first, 'r1', a2)
        loop.add_reader(a2.fileno(), first, 'r2', a1)
        b1.send(b'x')
        b2.send(b'x')
        run_until(loop, lambda: calls)
        run_briefly(loop, 0.05)
        assert len(calls) == 1
    finally:
        for s in (a1, b1, a2, b2):
            s.close()


def test_callback_replaces_itself(loop, sockpair):
    """A reader that installs a new reader on its own fd: the new one runs
    next."""
    a, b = sockpair
    calls = []

    def second():
        calls.append(('second', a.recv(10)))
        loop.remove_reader(a.fileno())

    def first():
        calls.append('first')
        loop.add_reader(a.fileno(), second)

    loop.add_reader(a.fileno(), first)
    b.send(b'z')
    run_until(loop, lambda: len(calls) >= 2)
    assert calls == ['first', ('second', b'z')]


def test_reader_exception_reported(loop, sockpair):
    """An exception in a reader goes to the exception handler; the reader
    stays installed and other watchers keep working."""
    a, b = sockpair
    contexts = []
    loop.set_exception_handler(lambda lp, ctx: contexts.append(ctx))
    writes = []

    def bad_reader():
        a.recv(10)
        raise ValueError('in reader')

    loop.add_reader(a.fileno(), bad_reader)
    loop.add_writer(b.fileno(), writes.append, 'w')
    b.send(b'x')
    run_until(loop, lambda: contexts and writes)
    assert isinstance(contexts[0]['exception'], ValueError)
    assert contexts[0]['message'].startswith('Exception in callback')
    assert loop.remove_writer(b.fileno()) is True
    b.send(b'y')
    run_until(loop, lambda: len(contexts) >= 2)
    assert loop.remove_reader(a.fileno()) is True


def test_non_callable_callback_accepted(loop, sockpair):
    """As asyncio, the callback is not checked when added: calling it fails
    and is reported to the exception handler; removal still works."""
    a, b = sockpair
    contexts = []
    loop.set_exception_handler(lambda lp, ctx: contexts.append(ctx))
    loop.add_reader(a.fileno(), 'not callable')
    b.send(b'x')
    run_until(loop, lambda: contexts)
    assert isinstance(contexts[0]['exception'], TypeError)
    assert loop.remove_reader(a.fileno()) is True


def _guarded_run_forever(loop, timeout=TIMEOUT):
    """run_forever(), stopped from a thread after timeout seconds."""
    import threading
    watchdog = threading.Timer(timeout, loop.call_soon_threadsafe,
                               (loop.stop,))
    watchdog.start()
    try:
        loop.run_forever()
    finally:
        watchdog.cancel()


def test_data_from_other_thread_wakes_waiting_loop(loop, sockpair):
    """The loop waits (a far timer only); data written by another thread
    makes the reader fire promptly."""
    import threading
    a, b = sockpair
    got = []

    def reader():
        got.append((a.recv(100), time.monotonic()))
        loop.stop()

    loop.add_reader(a.fileno(), reader)
    far = loop.call_later(60, loop.stop)
    sender = threading.Timer(0.1, b.send, (b'from thread',))
    t0 = time.monotonic()
    sender.start()
    try:
        _guarded_run_forever(loop)
    finally:
        sender.join()
        far.cancel()
        loop.remove_reader(a.fileno())
    assert [data for data, _ in got] == [b'from thread']
    assert got[0][1] - t0 < TIMEOUT


def test_eventfd_reader_from_other_thread(loop):
    """A reader on an eventfd, signalled from another thread while the loop
    waits with nothing else to do."""
    import threading
    if not hasattr(os, 'eventfd'):
        pytest.skip('no os.eventfd')
    efd = os.eventfd(0, os.EFD_NONBLOCK)
    got = []

    def reader():
        got.append(os.eventfd_read(efd))
        loop.stop()

    loop.add_reader(efd, reader)
    sender = threading.Timer(0.1, os.eventfd_write, (efd, 5))
    sender.start()
    try:
        _guarded_run_forever(loop)
    finally:
        sender.join()
        loop.remove_reader(efd)
        os.close(efd)
    assert got == [5]


def test_writer_wakes_when_peer_drains_from_thread(loop, sockpair):
    """A writer on a full socket fires once another thread drains the peer,
    while the loop waits."""
    import threading
    a, b = sockpair
    try:
        while True:
            a.send(b'x' * 65536)
    except BlockingIOError:
        pass
    calls = []

    def writer():
        calls.append('writable')
        loop.stop()

    def drain():
        b.setblocking(True)
        b.settimeout(0.2)
        try:
            while True:
                b.recv(1 << 20)
        except (socket.timeout, OSError):
            pass

    loop.add_writer(a.fileno(), writer)
    drainer = threading.Timer(0.1, drain)
    drainer.start()
    try:
        _guarded_run_forever(loop)
    finally:
        drainer.join()
        loop.remove_writer(a.fileno())
    assert calls == ['writable']


# ---- EOF, hang-up, errors --------------------------------------------------

def test_eof_on_socket_is_readable(loop, sockpair):
    """The peer closing its end makes the reader fire (recv returns b'')."""
    a, b = sockpair
    got = []
    loop.add_reader(a.fileno(), lambda: got.append(a.recv(10)))
    b.close()
    run_until(loop, lambda: got)
    assert got[0] == b''
    loop.remove_reader(a.fileno())


def test_hangup_on_pipe_is_readable(loop, pipe):
    """Closing the write end of a pipe (EPOLLHUP) is reported as readable."""
    r, w = pipe
    got = []
    loop.add_reader(r, lambda: got.append(os.read(r, 10)))
    os.close(w)
    pipe.remove(w)
    run_until(loop, lambda: got)
    assert got[0] == b''
    loop.remove_reader(r)


def test_broken_pipe_is_writable(loop, pipe):
    """Closing the read end of a pipe (EPOLLERR) is reported as writable:
    the write then fails with BrokenPipeError."""
    r, w = pipe
    outcome = []

    def writer():
        try:
            os.write(w, b'x')
            outcome.append('written')
        except BrokenPipeError:
            outcome.append('broken')
            loop.remove_writer(w)

    os.close(r)
    pipe.remove(r)
    loop.add_writer(w, writer)
    run_until(loop, lambda: outcome)
    assert outcome == ['broken']


def test_socket_reset_reported_to_reader_and_writer(loop):
    """A TCP connection reset by the peer wakes both the reader and the
    writer (EPOLLERR|EPOLLHUP count as both)."""
    srv = socket.create_server(('127.0.0.1', 0))
    cli = socket.create_connection(srv.getsockname())
    conn, _ = srv.accept()
    srv.close()
    cli.setblocking(False)
    events = set()
    try:
        # Linger 0: closing sends RST instead of FIN.
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                        b'\x01\x00\x00\x00\x00\x00\x00\x00')
        conn.close()
        run_briefly(loop, 0.05)
        loop.add_reader(cli.fileno(), events.add, 'read')
        loop.add_writer(cli.fileno(), events.add, 'write')
        run_until(loop, lambda: events == {'read', 'write'})
    finally:
        loop.remove_reader(cli.fileno())
        loop.remove_writer(cli.fileno())
        cli.close()


# ---- bad descriptors -------------------------------------------------------

BAD_FDS = [
    pytest.param(-1, ValueError, 'Invalid file descriptor: -1', id='-1'),
    pytest.param(-100, ValueError, 'Invalid file descriptor', id='-100'),
    pytest.param('x', ValueError, "Invalid file object: 'x'", id='str'),
    pytest.param(1.5, ValueError, 'Invalid file object', id='float'),
    pytest.param(None, ValueError, 'Invalid file object', id='None'),
    pytest.param(object(), ValueError, 'Invalid file object', id='object'),
]


@pytest.mark.parametrize('fd,exc,message', BAD_FDS)
@pytest.mark.parametrize('method', ['add_reader', 'add_writer'])
def test_add_invalid_fd(loop, method, fd, exc, message):
    """Invalid descriptors and objects without fileno() are ValueError."""
    with pytest.raises(exc, match=message):
        getattr(loop, method)(fd, lambda: None)


@pytest.mark.parametrize('fd,exc,message', BAD_FDS)
@pytest.mark.parametrize('method', ['remove_reader', 'remove_writer'])
def test_remove_invalid_fd(loop, method, fd, exc, message):
    """remove_* with an invalid descriptor: ValueError as well."""
    with pytest.raises(exc, match=message):
        getattr(loop, method)(fd)


class BadFileno:
    def __init__(self, result):
        self.result = result

    def fileno(self):
        if isinstance(self.result, BaseException):
            raise self.result
        return self.result


@pytest.mark.parametrize('obj,exc', [
    (BadFileno(-1), ValueError),
    (BadFileno('x'), ValueError),
    (BadFileno(None), ValueError),
    (BadFileno(ValueError('no fd')), ValueError),
    (BadFileno(TypeError('no fd')), ValueError),
    (BadFileno(OSError(errno.EBADF, 'closed')), OSError),
], ids=['-1', 'str', 'None', 'ValueError', 'TypeError', 'OSError'])
def test_bad_fileno_method(loop, obj, exc):
    """fileno() returning junk is a ValueError; an OSError it raises (a
    closed file) comes through as is."""
    with pytest.raises(exc):
        loop.add_reader(obj, lambda: None)


@pytest.mark.parametrize('fd', [2 ** 31, 2 ** 40, 2 ** 70],
                         ids=['2**31', '2**40', '2**70'])
def test_add_fd_too_large(loop, fd):
    """A number too large for a C int: OverflowError, as the default loop's
    epoll selector raises."""
    with pytest.raises(OverflowError):
        loop.add_reader(fd, lambda: None)


@pytest.mark.parametrize('fd', [2 ** 31, 2 ** 40, 2 ** 70],
                         ids=['2**31', '2**40', '2**70'])
def test_remove_fd_too_large(loop, fd):
    """remove_reader()/remove_writer() of a number that cannot be watched:
    False."""
    assert loop.remove_reader(fd) is False
    assert loop.remove_writer(fd) is False


def test_regular_file(loop):
    """A regular file cannot be watched with epoll: PermissionError (EPERM)
    as with the default loop, and nothing is left registered."""
    with tempfile.TemporaryFile() as f:
        with pytest.raises(PermissionError) as info:
            loop.add_reader(f.fileno(), lambda: None)
        assert info.value.errno == errno.EPERM
        with pytest.raises(PermissionError):
            loop.add_writer(f, lambda: None)
        assert loop.remove_reader(f.fileno()) is False
        assert loop.remove_writer(f.fileno()) is False


def test_regular_file_keeps_existing_watchers(loop, sockpair):
    """A failed add_reader() leaves the other watchers working."""
    a, b = sockpair
    got = []
    loop.add_reader(a.fileno(), lambda: got.append(a.recv(10)))
    with tempfile.TemporaryFile() as f:
        with pytest.raises(PermissionError):
            loop.add_reader(f.fileno(), lambda: None)
    b.send(b'still')
    run_until(loop, lambda: got)
    assert got == [b'still']


def _closed_fd(loop):
    """A descriptor number that is closed, found after the loop has
    everything it needs (so the number is not reused by the loop itself)."""
    a, b = socket.socketpair()
    loop.add_reader(a.fileno(), lambda: None)
    loop.remove_reader(a.fileno())
    r, w = os.pipe()
    os.close(r)
    os.close(w)
    a.close()
    b.close()
    return r


def test_add_reader_on_closed_fd(loop):
    """add_reader()/add_writer() on a closed descriptor: OSError(EBADF), as
    epoll_ctl() reports, and nothing is registered."""
    fd = _closed_fd(loop)
    with pytest.raises(OSError) as info:
        loop.add_reader(fd, lambda: None)
    assert info.value.errno == errno.EBADF
    with pytest.raises(OSError):
        loop.add_writer(fd, lambda: None)
    assert loop.remove_reader(fd) is False
    assert loop.remove_writer(fd) is False


def test_fd_closed_while_watched(loop):
    """The fd is closed while a reader is registered: remove_reader() then
    works (True) without an error, and the loop keeps running."""
    a, b = socket.socketpair()
    fd = a.fileno()
    loop.add_reader(fd, lambda: None)
    run_briefly(loop, 0.01)
    a.close()
    b.close()
    run_briefly(loop, 0.02)
    assert loop.remove_reader(fd) is True
    assert loop.remove_reader(fd) is False
    run_briefly(loop, 0.01)


def test_fd_closed_while_reader_and_writer_watched(loop):
    """The fd is closed while both a reader and a writer are registered:
    removing one must change the registration of a closed fd, which is an
    OSError(EBADF) as with the default loop's epoll selector; the loop
    keeps running."""
    a, b = socket.socketpair()
    fd = a.fileno()
    loop.add_reader(fd, lambda: None)
    loop.add_writer(fd, lambda: None)
    run_briefly(loop, 0.01)
    a.close()
    b.close()
    with pytest.raises(OSError) as info:
        loop.remove_reader(fd)
    assert info.value.errno == errno.EBADF
    loop.remove_writer(fd)
    assert loop.remove_reader(fd) is False
    assert loop.remove_writer(fd) is False
    run_briefly(loop, 0.01)


def test_fd_number_reused_then_watched_again(aloop):
    """A watched fd is closed, its number reused by a new pipe, and
    add_reader() is called again with that number: on asyncloop the new
    reader fires for the new pipe.

    (The default loop's selector still believes the old registration
    exists: it only swaps the callback, never re-registers the new file
    with epoll, and the new reader never fires, which is why this test
    runs on asyncloop only.)"""
    r1, w1 = os.pipe()
    aloop.add_reader(r1, lambda: None)
    run_briefly(aloop, 0.01)
    os.close(r1)
    os.close(w1)
    r2, w2 = os.pipe()
    fds = [r2, w2]
    try:
        if r2 != r1:
            # Make the new pipe's read end take the old number.
            os.dup2(r2, r1)
            os.close(r2)
            fds[0] = r2 = r1
        got = []
        aloop.add_reader(r2, lambda: got.append(os.read(r2, 10)))
        os.write(w2, b'new pipe')
        run_until(aloop, lambda: got)
        assert got == [b'new pipe']
        assert aloop.remove_reader(r2) is True
    finally:
        for fd in fds:
            os.close(fd)


def test_fd_reused_for_writer_after_reader(aloop):
    """The old fd had a reader; after close and reuse of its number by the
    write end of a new pipe, a writer on that number fires."""
    r, w = os.pipe()
    a, b = socket.socketpair()
    fd = a.fileno()
    aloop.add_reader(fd, lambda: None)
    run_briefly(aloop, 0.01)
    b.close()
    a.close()
    assert aloop.remove_reader(fd) is True
    os.dup2(w, fd)
    try:
        calls = []
        aloop.add_writer(fd, calls.append, 'w')
        run_until(aloop, lambda: calls)
        assert aloop.remove_writer(fd) is True
    finally:
        os.close(fd)
        os.close(r)
        os.close(w)


# ---- closed loop -----------------------------------------------------------

def test_close_with_watchers_registered(new_loop, sockpair):
    """Closing a loop with readers and writers registered is fine; after
    close, remove_* returns False and the descriptors are still usable."""
    loop = new_loop()
    a, b = sockpair
    loop.add_reader(a.fileno(), lambda: None)
    loop.add_writer(b.fileno(), lambda: None)
    b.send(b'x')
    run_briefly(loop, 0.01)
    loop.close()
    assert loop.remove_reader(a.fileno()) is False
    assert loop.remove_writer(b.fileno()) is False
    assert a.recv(10) == b'x'


def test_close_drops_callback_references(new_loop, sockpair):
    """close() releases the callbacks of the watchers."""
    import gc
    import weakref

    loop = new_loop()
    a, b = sockpair

    class Callback:
        def __call__(self):
            pass

    cb = Callback()
    ref = weakref.ref(cb)
    loop.add_reader(a.fileno(), cb)
    del cb
    loop.close()
    gc.collect()
    assert ref() is None


def test_add_on_closed_loop(new_loop, sockpair):
    """add_reader()/add_writer() on a closed loop: RuntimeError."""
    loop = new_loop()
    loop.close()
    a, b = sockpair
    with pytest.raises(RuntimeError, match='Event loop is closed'):
        loop.add_reader(a.fileno(), lambda: None)
    with pytest.raises(RuntimeError, match='Event loop is closed'):
        loop.add_writer(a, lambda: None)


def test_invalid_fd_on_closed_loop(new_loop):
    """On a closed loop asyncio checks the loop before an int fd's value:
    add_reader(-1) is RuntimeError and remove_reader(-1) is False; an object
    without fileno() is still a ValueError."""
    loop = new_loop()
    loop.close()
    with pytest.raises(RuntimeError, match='Event loop is closed'):
        loop.add_reader(-1, lambda: None)
    assert loop.remove_reader(-1) is False
    assert loop.remove_writer(-1) is False
    with pytest.raises(ValueError):
        loop.remove_reader('x')


def test_accepted_connection_descriptor_is_refused(loop):
    """The descriptor of a server's accepted connection, as its 'socket'
    extra shows it, belongs to the transport: add_reader(), add_writer(),
    remove_reader() and remove_writer() raise RuntimeError, as asyncio's
    do; once the transport is closing they no longer do."""
    accepted = loop.create_future()

    class Accepting(asyncio.Protocol):
        def connection_made(self, transport):
            accepted.set_result(transport)

    async def main():
        server = await loop.create_server(Accepting, '127.0.0.1', 0)
        port = server.sockets[0].getsockname()[1]
        client, _ = await loop.create_connection(asyncio.Protocol,
                                                 '127.0.0.1', port)
        transport = await accepted
        fd = transport.get_extra_info('socket').fileno()
        for method in (loop.add_reader, loop.add_writer):
            with pytest.raises(RuntimeError, match='is used by transport'):
                method(fd, lambda: None)
        for method in (loop.remove_reader, loop.remove_writer):
            with pytest.raises(RuntimeError, match='is used by transport'):
                method(fd)
        transport.close()
        assert loop.remove_reader(fd) is False
        client.close()
        server.close()
        await server.wait_closed()

    loop.run_until_complete(asyncio.wait_for(main(), TIMEOUT))


@pytest.mark.parametrize('method', ['reader', 'writer'])
def test_remove_after_the_socket_is_closed(loop, method):
    """A socket closed while watched is still found by identity, as
    selectors finds it: removing returns True, and once removed, the
    closed socket is an invalid descriptor (ValueError) on both loops."""
    a, b = socket.socketpair()
    add = getattr(loop, 'add_' + method)
    remove = getattr(loop, 'remove_' + method)
    add(a, lambda: None)
    a.close()
    try:
        assert remove(a) is True
        with pytest.raises(ValueError, match='Invalid file descriptor: -1'):
            remove(a)
    finally:
        b.close()


def test_remove_closed_socket_watched_by_number(loop):
    """Watched by its number, a closed socket cannot be found: ValueError
    on both loops."""
    a, b = socket.socketpair()
    fd = a.fileno()
    loop.add_reader(fd, lambda: None)
    a.close()
    try:
        with pytest.raises(ValueError, match='Invalid file descriptor: -1'):
            loop.remove_reader(a)
        assert loop.remove_reader(fd) is True
    finally:
        b.close()


def test_remove_closed_socket_after_the_loop_closed(loop):
    """On a closed loop removing a closed socket returns False."""
    a, b = socket.socketpair()
    loop.add_reader(a, lambda: None)
    loop.close()
    a.close()
    b.close()
    assert loop.remove_reader(a) is False
