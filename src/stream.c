/* The stream transport shared by TCP sockets and Unix-domain sockets.

   One C type, asyncloop._loop.SocketTransport, created at module init as a
   heap type whose base is asyncio.Transport: instances are real
   asyncio.Transport objects and every method runs in C. It follows
   asyncio's _SelectorSocketTransport (selector_events.py): the same states
   (_closing, _conn_lost, _eof, _paused), the same order of protocol calls
   and the same messages.

   The constructor lives in tcp.c (sockets, for TCP and Unix sockets
   alike).

   Reading: libuv reads into one buffer per thread (Protocol) or straight
   into the protocol's buffer (BufferedProtocol). Writing: write() tries the
   socket at once (uv_try_write); what is left goes out in one uv_write_t
   at a time, and the data written meanwhile waits in `pending` for the
   in-flight request to finish.

   Lifetime: the open libuv handle owns a strong reference to the transport,
   dropped in the close callback. uv_close() is only ever called from a
   callback of the ready queue (_call_connection_lost) or from Loop.close(),
   never from inside a libuv callback, so libuv never sees a handle closed
   under its feet. */
#include "asyncloop.h"
#include <structmember.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/* asyncio's max_size of socket reads. */
#define READ_BUFFER_SIZE (256 * 1024)
#define DEFAULT_HIGH_WATER (64 * 1024)
/* uv_buf_t lengths are unsigned int: larger writes go as several bufs. */
#define CHUNK_MAX ((size_t)1 << 30)
/* Queued writes shorter than this are copied (see write_blocks.c). */
#define WRITE_COPY_MAX (64 * 1024)

PyTypeObject *SocketTransport_Type;
static PyObject *BufferedProtocol;      /* asyncio.BufferedProtocol */
static PyObject *TransportSocket;       /* asyncio.trsock.TransportSocket */
static PyObject *socket_socket;         /* socket.socket */
static PyObject *str_data_received, *str_get_buffer, *str_buffer_updated;
static PyObject *str_eof_received, *str_connection_made;
static PyObject *str_connection_lost, *str_pause_writing;
static PyObject *str_resume_writing, *str_attach, *str_detach, *str_close;
static PyObject *str_warning, *str_debug, *str_transport, *str_protocol;
static PyObject *str_socket;

/* One read buffer per thread: the bytes object is made from it before any
   Python code can run, and only one loop runs per thread. */
static _Thread_local char *thread_read_buffer;



/* ---- small helpers ------------------------------------------------------ */

#define TR_STREAM(tr) ((uv_stream_t *)&(tr)->uv)
#define TR_HANDLE(tr) ((uv_handle_t *)&(tr)->uv)
#define TR_FROM_HANDLE(h) ((TransportObject *)(h)->data)

static void
chunks_release(WriteChunk *chunks, Py_ssize_t *n, size_t *size)
{
    Py_ssize_t count = *n;
    *n = 0;
    if (size != NULL) {
        *size = 0;
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        Py_CLEAR(chunks[i].obj);
        if (chunks[i].block != NULL) {
            write_block_free(chunks[i].block);
            chunks[i].block = NULL;
        }
    }
}

static int
chunks_reserve(WriteChunk **chunks, Py_ssize_t *cap, Py_ssize_t need)
{
    if (need <= *cap) {
        return 0;
    }
    Py_ssize_t ncap = *cap ? *cap * 2 : 8;
    while (ncap < need) {
        ncap *= 2;
    }
    WriteChunk *mem = PyMem_Realloc(*chunks, ncap * sizeof(WriteChunk));
    if (mem == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    *chunks = mem;
    *cap = ncap;
    return 0;
}

size_t
transport_write_buffer_size(TransportObject *tr)
{
    size_t size = tr->pending_size;
    if (tr->uv_open) {
        size += uv_stream_get_write_queue_size(TR_STREAM(tr));
    }
    return size;
}

int
transport_fd(TransportObject *tr)
{
    uv_os_fd_t fd = -1;
    if (!tr->uv_open || uv_fileno(TR_HANDLE(tr), &fd) < 0) {
        return -1;
    }
    return fd;
}

/* Calls loop.call_exception_handler(context). A KeyboardInterrupt or
   SystemExit from the handler stops the loop; other errors are printed,
   since nothing is left to report them to. */
static void
call_exception_handler(TransportObject *tr, PyObject *context)
{
    PyObject *res = PyObject_CallMethodOneArg(
        (PyObject *)tr->loop, asyncloop_state.str_call_exception_handler,
        context);
    if (res != NULL) {
        Py_DECREF(res);
        return;
    }
    if (PyErr_ExceptionMatches(PyExc_KeyboardInterrupt)
        || PyErr_ExceptionMatches(PyExc_SystemExit)) {
        loop_set_pending_error(tr->loop);
    }
    else {
        PyErr_WriteUnraisable((PyObject *)tr);
    }
}

static void
report_error(TransportObject *tr, const char *message, PyObject *exc)
{
    PyObject *context = Py_BuildValue(
        "{sssOsOsO}", "message", message, "exception", exc,
        "transport", (PyObject *)tr,
        "protocol", tr->protocol ? tr->protocol : Py_None);
    if (context == NULL) {
        PyErr_WriteUnraisable((PyObject *)tr);
        return;
    }
    call_exception_handler(tr, context);
    Py_DECREF(context);
}

void
transport_log_debug(TransportObject *tr, const char *message)
{
    if (!tr->loop->debug) {
        return;
    }
    PyObject *res = PyObject_CallMethod(
        asyncloop_state.logger, "debug", "sOs", "%r: %s", (PyObject *)tr,
        message);
    if (res == NULL) {
        PyErr_Clear();
    }
    Py_XDECREF(res);
}

static int uncork(TransportObject *tr);

/* ---- sendfile's empty waiter --------------------------------------------- */

/* Resolves the future loop.sendfile() waits on: with None once the write
   buffer is empty, or with exc. */
static void
wake_empty_waiter(TransportObject *tr, PyObject *exc)
{
    PyObject *fut = tr->empty_waiter;
    if (fut == NULL) {
        return;
    }
    PyObject *saved = err_fetch();
    PyObject *done = PyObject_CallMethod(fut, "done", NULL);
    int is_done = done == NULL ? -1 : PyObject_IsTrue(done);
    Py_XDECREF(done);
    PyObject *res = NULL;
    if (is_done == 0) {
        res = exc ? PyObject_CallMethod(fut, "set_exception", "O", exc)
                  : PyObject_CallMethod(fut, "set_result", "O", Py_None);
    }
    if (is_done < 0 || (is_done == 0 && res == NULL)) {
        PyErr_WriteUnraisable(fut);
    }
    Py_XDECREF(res);
    if (saved != NULL) {
        err_restore(saved);
    }
}

static PyObject *
tr_make_empty_waiter(TransportObject *tr, PyObject *Py_UNUSED(ignored))
{
    if (tr->empty_waiter != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Empty waiter is already set");
        return NULL;
    }
    if (uncork(tr) < 0) {
        return NULL;
    }
    tr->empty_waiter = PyObject_CallMethod((PyObject *)tr->loop,
                                           "create_future", NULL);
    if (tr->empty_waiter == NULL) {
        return NULL;
    }
    if (!tr->write_inflight && tr->npending == 0) {
        wake_empty_waiter(tr, NULL);
    }
    return Py_NewRef(tr->empty_waiter);
}

static PyObject *
tr_reset_empty_waiter(TransportObject *tr, PyObject *Py_UNUSED(ignored))
{
    Py_CLEAR(tr->empty_waiter);
    Py_RETURN_NONE;
}

/* ---- closing ------------------------------------------------------------ */

static void
close_cb(uv_handle_t *handle)
{
    TransportObject *tr = TR_FROM_HANDLE(handle);
    loop_unlink_resource(&tr->res);
    chunks_release(tr->inflight, &tr->ninflight, NULL);
    /* The reference the open handle held. */
    Py_DECREF(tr);
}

/* Closes the Python socket the transport owns (a different descriptor:
   see transport_new). */
static void
close_python_socket(TransportObject *tr)
{
    PyObject *sock = tr->sock;
    if (sock == NULL || tr->sock_closed) {
        return;
    }
    tr->sock_closed = 1;
    PyObject *exc = err_fetch();
    PyObject *res = PyObject_CallMethodNoArgs(sock, str_close);
    if (res == NULL) {
        PyErr_WriteUnraisable(sock);
    }
    Py_XDECREF(res);
    if (exc != NULL) {
        err_restore(exc);
    }
}

static void
close_handle(TransportObject *tr)
{
    if (!tr->uv_open) {
        return;
    }
    tr->uv_open = 0;
    if (tr->in_buffer) {
        PyBuffer_Release(&tr->read_view);
        tr->in_buffer = 0;
    }
    uv_close(TR_HANDLE(tr), close_cb);
}

/* Resource.close, from Loop.close(): the loop is going away, no protocol
   callback can run any more. As with asyncio, the transport is not
   closing for that, and the Python socket stays open (closed with a
   ResourceWarning when the transport is collected, as asyncio's transports
   do). */
static void
resource_close(Resource *res)
{
    TransportObject *tr = (TransportObject *)((char *)res -
                                              offsetof(TransportObject, res));
    chunks_release(tr->pending, &tr->npending, &tr->pending_size);
    close_handle(tr);
}

static void
drop_protocol(TransportObject *tr)
{
    Py_CLEAR(tr->protocol);
    Py_CLEAR(tr->cb_data_received);
    Py_CLEAR(tr->cb_get_buffer);
    Py_CLEAR(tr->cb_buffer_updated);
}

static int
server_call(TransportObject *tr, PyObject *name)
{
#if PY_VERSION_HEX >= 0x030D0000
    PyObject *res = PyObject_CallMethodOneArg(tr->server, name,
                                              (PyObject *)tr);
#else
    PyObject *res = PyObject_CallMethodNoArgs(tr->server, name);
#endif
    Py_XDECREF(res);
    return res == NULL ? -1 : 0;
}

static PyObject *
tr_call_connection_lost(TransportObject *tr, PyObject *exc)
{
    if (tr->connection_lost_called) {
        Py_RETURN_NONE;
    }
    tr->connection_lost_called = 1;
    Py_INCREF(tr);
    PyObject *res = NULL;
    if (tr->protocol != NULL && tr->protocol_connected) {
        res = PyObject_CallMethodOneArg(tr->protocol, str_connection_lost,
                                        exc);
    }
    else {
        res = Py_NewRef(Py_None);
    }
    /* As asyncio's finally: clause, whatever connection_lost() did. */
    PyObject *err = res == NULL ? err_fetch() : NULL;
    if (tr->empty_waiter != NULL) {
        PyObject *closed = PyObject_CallFunction(
            PyExc_ConnectionError, "s", "Connection is closed by peer");
        if (closed != NULL) {
            wake_empty_waiter(tr, closed);
            Py_DECREF(closed);
        }
        else {
            PyErr_WriteUnraisable((PyObject *)tr);
        }
    }
    chunks_release(tr->pending, &tr->npending, &tr->pending_size);
    close_handle(tr);
    close_python_socket(tr);
    drop_protocol(tr);
    if (tr->server != NULL) {
        if (server_call(tr, str_detach) < 0) {
            if (err == NULL) {
                err = err_fetch();
            }
            else {
                PyErr_Clear();
            }
        }
        Py_CLEAR(tr->server);
    }
    Py_DECREF(tr);
    if (err != NULL) {
        Py_XDECREF(res);
        err_restore(err);
        return NULL;
    }
    return res;
}

static int
schedule_connection_lost(TransportObject *tr, PyObject *exc)
{
    PyObject *meth = PyObject_GetAttrString((PyObject *)tr,
                                            "_call_connection_lost");
    if (meth == NULL) {
        return -1;
    }
    PyObject *args = PyTuple_Pack(1, exc ? exc : Py_None);
    HandleObject *h = NULL;
    if (args != NULL) {
        h = loop_call_soon(tr->loop, meth, args, tr->context);
    }
    Py_DECREF(meth);
    Py_XDECREF(args);
    if (h == NULL) {
        return -1;
    }
    Py_DECREF(h);
    return 0;
}

static void
stop_reading(TransportObject *tr)
{
    if (!tr->reading) {
        return;
    }
    tr->reading = 0;
    if (tr->in_read_cb) {
        /* libuv forbids uv_read_stop() between its alloc and read
           callbacks; the read callback stops once it is done. */
        tr->stop_after_read = 1;
        return;
    }
    if (tr->uv_open) {
        uv_read_stop(TR_STREAM(tr));
    }
}

/* asyncio's _force_close. Returns -1 only on a failure to schedule. */
static int
force_close(TransportObject *tr, PyObject *exc)
{
    if (tr->conn_lost) {
        return 0;
    }
    chunks_release(tr->pending, &tr->npending, &tr->pending_size);
    if (!tr->closing) {
        tr->closing = 1;
        stop_reading(tr);
    }
    tr->conn_lost++;
    return schedule_connection_lost(tr, exc);
}

/* asyncio's _fatal_error: OSErrors are only logged in debug mode, other
   exceptions go to the exception handler; the connection is closed. */
static void
fatal_error(TransportObject *tr, PyObject *exc, const char *message)
{
    if (PyErr_GivenExceptionMatches(exc, PyExc_OSError)) {
        transport_log_debug(tr, message);
    }
    else {
        report_error(tr, message, exc);
    }
    if (force_close(tr, exc) < 0) {
        PyErr_WriteUnraisable((PyObject *)tr);
    }
}

/* For a failed Python call inside a libuv callback: KeyboardInterrupt and
   SystemExit stop the loop, anything else is a fatal error of the
   connection. */
static void
fatal_python_error(TransportObject *tr, const char *message)
{
    if (PyErr_ExceptionMatches(PyExc_KeyboardInterrupt)
        || PyErr_ExceptionMatches(PyExc_SystemExit)) {
        loop_set_pending_error(tr->loop);
        return;
    }
    PyObject *exc = err_fetch();
    fatal_error(tr, exc, message);
    Py_DECREF(exc);
}

static void
fatal_uv_error(TransportObject *tr, int err, const char *message)
{
    error_from_uv(err);
    PyObject *exc = err_fetch();
    fatal_error(tr, exc, message);
    Py_DECREF(exc);
}

/* ---- flow control ------------------------------------------------------- */

static void
protocol_flow_call(TransportObject *tr, PyObject *name, const char *what)
{
    PyObject *res = PyObject_CallMethodNoArgs(tr->protocol, name);
    if (res != NULL) {
        Py_DECREF(res);
        return;
    }
    if (PyErr_ExceptionMatches(PyExc_KeyboardInterrupt)
        || PyErr_ExceptionMatches(PyExc_SystemExit)) {
        /* asyncio lets these propagate out of the caller. */
        return;
    }
    PyObject *exc = err_fetch();
    report_error(tr, what, exc);
    Py_DECREF(exc);
}

/* Returns -1 if pause_writing() raised KeyboardInterrupt/SystemExit. */
static int
maybe_pause_protocol(TransportObject *tr)
{
    if (tr->protocol_paused || tr->protocol == NULL
        || transport_write_buffer_size(tr) <= tr->high_water) {
        return 0;
    }
    tr->protocol_paused = 1;
    protocol_flow_call(tr, str_pause_writing,
                       "protocol.pause_writing() failed");
    return PyErr_Occurred() ? -1 : 0;
}

static int
maybe_resume_protocol(TransportObject *tr)
{
    if (!tr->protocol_paused || tr->protocol == NULL
        || transport_write_buffer_size(tr) > tr->low_water) {
        return 0;
    }
    tr->protocol_paused = 0;
    protocol_flow_call(tr, str_resume_writing,
                       "protocol.resume_writing() failed");
    return PyErr_Occurred() ? -1 : 0;
}

/* ---- writing ------------------------------------------------------------ */

static void write_cb(uv_write_t *req, int status);

static void
shutdown_write(TransportObject *tr)
{
    int fd = transport_fd(tr);
    if (fd >= 0 && shutdown(fd, SHUT_WR) < 0 && errno != ENOTCONN) {
        PyErr_SetFromErrno(PyExc_OSError);
        PyObject *exc = err_fetch();
        fatal_error(tr, exc, "Fatal write error on socket transport");
        Py_DECREF(exc);
    }
}

/* Hands the pending chunks to libuv as one request. Returns 0 or a libuv
   error code (no Python exception set). */
#define SMALL_BUFS 16

/* The pending chunks as libuv buffers: in small (SMALL_BUFS long) when
   they fit, else in memory to PyMem_Free(); NULL when out of memory. */
static uv_buf_t *
pending_bufs(TransportObject *tr, uv_buf_t *small)
{
    uv_buf_t *bufs = small;
    Py_ssize_t n = tr->npending;
    if (n > SMALL_BUFS) {
        bufs = PyMem_Malloc(n * sizeof(uv_buf_t));
        if (bufs == NULL) {
            return NULL;
        }
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        bufs[i] = uv_buf_init(tr->pending[i].base,
                              (unsigned int)tr->pending[i].len);
    }
    return bufs;
}

static int
submit_pending(TransportObject *tr)
{
    /* Zeroed: GCC cannot see that pending_bufs() fills it. */
    uv_buf_t small[SMALL_BUFS] = {{0}};
    uv_buf_t *bufs = pending_bufs(tr, small);
    Py_ssize_t n = tr->npending;
    if (bufs == NULL) {
        return UV_ENOMEM;
    }
    int err = uv_write(&tr->write_req, TR_STREAM(tr), bufs, (unsigned int)n,
                       write_cb);
    if (bufs != small) {
        PyMem_Free(bufs);
    }
    if (err < 0) {
        chunks_release(tr->pending, &tr->npending, &tr->pending_size);
        return err;
    }
    /* The request owns the chunks now: swap the two arrays. */
    WriteChunk *chunks = tr->inflight;
    Py_ssize_t cap = tr->inflight_cap;
    tr->inflight = tr->pending;
    tr->inflight_cap = tr->pending_cap;
    tr->ninflight = n;
    tr->pending = chunks;
    tr->pending_cap = cap;
    tr->npending = 0;
    tr->pending_size = 0;
    tr->write_inflight = 1;
    return 0;
}

static void
after_buffer_drained(TransportObject *tr)
{
    if (tr->closing) {
        if (schedule_connection_lost(tr, NULL) < 0) {
            PyErr_WriteUnraisable((PyObject *)tr);
        }
    }
    else if (tr->eof) {
        shutdown_write(tr);
    }
}

/* libuv calls back in the loop's own context; the protocol runs in the
   transport's, as asyncio's protocols do, whose callbacks are handles
   made where the connection was. Returns whether the context was entered
   (it cannot be while it already is). */
static int
enter_context(TransportObject *tr)
{
    if (PyContext_Enter(tr->context) < 0) {
        PyErr_WriteUnraisable((PyObject *)tr);
        return 0;
    }
    return 1;
}

static void
exit_context(TransportObject *tr, int entered)
{
    if (entered && PyContext_Exit(tr->context) < 0) {
        PyErr_WriteUnraisable((PyObject *)tr);
    }
}

static void
write_cb(uv_write_t *req, int status)
{
    TransportObject *tr = (TransportObject *)req->data;
    tr->write_inflight = 0;
    chunks_release(tr->inflight, &tr->ninflight, NULL);
    if (status == UV_ECANCELED || !tr->uv_open || tr->conn_lost) {
        return;
    }
    Py_INCREF(tr);
    int entered = enter_context(tr);
    if (status < 0) {
        error_from_uv(status);
        PyObject *exc = err_fetch();
        wake_empty_waiter(tr, exc);
        fatal_error(tr, exc, "Fatal write error on socket transport");
        Py_DECREF(exc);
    }
    else if (tr->npending > 0) {
        int err = submit_pending(tr);
        if (err < 0) {
            fatal_uv_error(tr, err, "Fatal write error on socket transport");
        }
        else if (maybe_resume_protocol(tr) < 0) {
            loop_set_pending_error(tr->loop);
        }
    }
    else {
        if (maybe_resume_protocol(tr) < 0) {
            loop_set_pending_error(tr->loop);
        }
        /* resume_writing() may have written more. */
        if (!tr->write_inflight && tr->npending == 0) {
            wake_empty_waiter(tr, NULL);
            after_buffer_drained(tr);
        }
    }
    exit_context(tr, entered);
    Py_DECREF(tr);
}

/* Copies len bytes into the blocks at the end of the pending chunks (see
   write_blocks.c). */
static int
pending_copy(TransportObject *tr, const char *data, size_t len)
{
    while (len > 0) {
        WriteChunk *last = tr->npending ? &tr->pending[tr->npending - 1]
                                        : NULL;
        if (last == NULL || last->block == NULL
            || last->len == WRITE_BLOCK_SIZE) {
            if (chunks_reserve(&tr->pending, &tr->pending_cap,
                               tr->npending + 1) < 0) {
                return -1;
            }
            char *block = write_block_alloc();
            if (block == NULL) {
                return -1;
            }
            last = &tr->pending[tr->npending++];
            *last = (WriteChunk){.block = block, .base = block};
        }
        size_t n = WRITE_BLOCK_SIZE - last->len;
        if (n > len) {
            n = len;
        }
        memcpy(last->base + last->len, data, n);
        last->len += n;
        tr->pending_size += n;
        data += n;
        len -= n;
    }
    return 0;
}

/* Appends len bytes at base by reference to obj, which must be immutable
   bytes (copied otherwise); len is at most CHUNK_MAX. */
static int
pending_ref(TransportObject *tr, PyObject *obj, const char *base, size_t len)
{
    if (chunks_reserve(&tr->pending, &tr->pending_cap, tr->npending + 1) < 0) {
        return -1;
    }
    PyObject *owner;
    if (PyBytes_CheckExact(obj)) {
        owner = Py_NewRef(obj);
    }
    else {
        /* A bytearray or memoryview may change after write() returns. */
        owner = PyBytes_FromStringAndSize(base, (Py_ssize_t)len);
        if (owner == NULL) {
            return -1;
        }
        base = PyBytes_AS_STRING(owner);
    }
    WriteChunk *c = &tr->pending[tr->npending++];
    *c = (WriteChunk){.obj = owner, .base = (char *)base, .len = len};
    tr->pending_size += len;
    return 0;
}

/* Appends data to the pending chunks: copied when small, else by
   reference. */
static int
pending_append(TransportObject *tr, PyObject *obj, const char *base,
               size_t len)
{
    if (len < WRITE_COPY_MAX) {
        return pending_copy(tr, base, len);
    }
    while (len > CHUNK_MAX) {
        if (pending_ref(tr, obj, base, CHUNK_MAX) < 0) {
            return -1;
        }
        base += CHUNK_MAX;
        len -= CHUNK_MAX;
    }
    return pending_ref(tr, obj, base, len);
}

/* Drops the first n bytes of the pending chunks, which were sent. */
static void
pending_consume(TransportObject *tr, size_t n)
{
    Py_ssize_t done = 0;
    tr->pending_size -= n;
    while (done < tr->npending && n >= tr->pending[done].len) {
        n -= tr->pending[done].len;
        done++;
    }
    if (done < tr->npending) {
        tr->pending[done].base += n;
        tr->pending[done].len -= n;
    }
    Py_ssize_t sent = done;
    chunks_release(tr->pending, &sent, NULL);
    tr->npending -= done;
    memmove(tr->pending, tr->pending + done,
            tr->npending * sizeof(WriteChunk));
}

/* Sends what the socket takes of the pending chunks now, and hands the
   rest to libuv. Returns 0, or -1 with a Python error to raise. */
static int
send_pending(TransportObject *tr)
{
    uv_buf_t small[SMALL_BUFS] = {{0}};
    uv_buf_t *bufs = pending_bufs(tr, small);
    if (bufs == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    int written = uv_try_write(TR_STREAM(tr), bufs,
                               (unsigned int)tr->npending);
    if (bufs != small) {
        PyMem_Free(bufs);
    }
    if (written < 0 && written != UV_EAGAIN) {
        chunks_release(tr->pending, &tr->npending, &tr->pending_size);
        fatal_uv_error(tr, written, "Fatal write error on socket transport");
        return PyErr_Occurred() ? -1 : 0;
    }
    pending_consume(tr, written < 0 ? 0 : (size_t)written);
    if (tr->npending == 0) {
        return 0;
    }
    int err = submit_pending(tr);
    if (err < 0) {
        fatal_uv_error(tr, err, "Fatal write error on socket transport");
        return PyErr_Occurred() ? -1 : 0;
    }
    return maybe_pause_protocol(tr);
}

/* ---- coalescing the writes of one callback ------------------------------ */

/* What one callback writes to an idle transport is held ("corked") until
   the callback returns, then sent with one system call: a server's
   headers and body, or a client's several small writes, leave together
   rather than as one segment each. Only small writes are held, only on
   the loop's thread while it runs, and every method whose outcome depends
   on what was sent (get_write_buffer_size(), close(), abort(),
   write_eof(), ...) sends what is held first; what the peer receives, and
   in which order, is what asyncio sends. */
#define CORK_MAX (64 * 1024)
#define CORK_MAX_CHUNKS 16

static int
may_cork(TransportObject *tr, Py_buffer *views, Py_ssize_t n)
{
    /* A closing transport finishes once its buffer drains, which the
       write callback checks, not a later send of held writes. */
    if (tr->write_inflight || tr->npending > 0 || tr->closing
        || !tr->loop->running
        || tr->loop->thread_id != PyThread_get_thread_ident()) {
        return 0;
    }
    size_t len = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        len += (size_t)views[i].len;
    }
    return len < CORK_MAX && n < CORK_MAX_CHUNKS;
}

/* Sends the writes tr holds. Returns 0, or -1 with a Python error. */
static int
uncork(TransportObject *tr)
{
    if (!tr->corked) {
        return 0;
    }
    tr->corked = 0;
    if (tr->conn_lost || !tr->uv_open) {
        chunks_release(tr->pending, &tr->npending, &tr->pending_size);
        return 0;
    }
    Py_INCREF(tr);
    int rc = send_pending(tr);
    Py_DECREF(tr);
    return rc;
}

static int
cork_write(TransportObject *tr, Py_buffer *views, PyObject **objs,
           Py_ssize_t n)
{
    /* Marked first: what a failed append leaves behind is sent too. */
    tr->corked = 1;
    if (!tr->in_cork_list) {
        tr->in_cork_list = 1;
        tr->next_corked = tr->loop->corked;
        tr->loop->corked = (TransportObject *)Py_NewRef(tr);
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        size_t len = (size_t)views[i].len;
        int rc = len < WRITE_COPY_MAX
                 ? pending_ref(tr, objs[i], views[i].buf, len)
                 : pending_append(tr, objs[i], views[i].buf, len);
        if (rc < 0) {
            return -1;
        }
    }
    if (tr->pending_size >= CORK_MAX || tr->npending >= CORK_MAX_CHUNKS) {
        return uncork(tr);
    }
    return 0;
}

static TransportObject *
pop_corked(LoopObject *loop)
{
    TransportObject *tr = loop->corked;
    loop->corked = tr->next_corked;
    tr->next_corked = NULL;
    tr->in_cork_list = 0;
    return tr;
}

int
loop_send_corked(LoopObject *loop)
{
    PyObject *error = NULL;
    while (loop->corked != NULL) {
        TransportObject *tr = pop_corked(loop);
        /* pause_writing() runs in the protocol's context, as in write_cb. */
        int entered = tr->corked ? enter_context(tr) : 0;
        if (uncork(tr) < 0) {
            if (error == NULL) {
                error = err_fetch();
            }
            else {
                PyErr_WriteUnraisable((PyObject *)tr);
            }
        }
        exit_context(tr, entered);
        Py_DECREF(tr);
    }
    if (error != NULL) {
        err_restore(error);
        return -1;
    }
    return 0;
}

/* The loop closes or goes: what is held can no longer be sent. */
void
loop_drop_corked(LoopObject *loop)
{
    while (loop->corked != NULL) {
        TransportObject *tr = pop_corked(loop);
        if (tr->corked) {
            tr->corked = 0;
            chunks_release(tr->pending, &tr->npending, &tr->pending_size);
        }
        Py_DECREF(tr);
    }
}

/* Sends the buffers now if nothing is queued, else queues them. On
   return 0 all is sent or queued; -1 is a Python error to raise. */
static int
write_buffers(TransportObject *tr, Py_buffer *views, PyObject **objs,
              Py_ssize_t n)
{
    if (tr->corked || may_cork(tr, views, n)) {
        return cork_write(tr, views, objs, n);
    }
    Py_ssize_t first = 0;
    size_t skip = 0;
    if (!tr->write_inflight && tr->npending == 0) {
        uv_buf_t small[16] = {{0}};
        uv_buf_t *bufs = small;
        if (n > (Py_ssize_t)(sizeof(small) / sizeof(small[0]))) {
            bufs = PyMem_Malloc(n * sizeof(uv_buf_t));
            if (bufs == NULL) {
                PyErr_NoMemory();
                return -1;
            }
        }
        for (Py_ssize_t i = 0; i < n; i++) {
            size_t len = (size_t)views[i].len;
            bufs[i] = uv_buf_init(views[i].buf,
                                  (unsigned int)(len > CHUNK_MAX ? CHUNK_MAX
                                                                 : len));
        }
        int written = uv_try_write(TR_STREAM(tr), bufs, (unsigned int)n);
        if (bufs != small) {
            PyMem_Free(bufs);
        }
        if (written < 0 && written != UV_EAGAIN) {
            fatal_uv_error(tr, written,
                           "Fatal write error on socket transport");
            return PyErr_Occurred() ? -1 : 0;
        }
        size_t done = written < 0 ? 0 : (size_t)written;
        while (first < n && done >= (size_t)views[first].len) {
            done -= views[first].len;
            first++;
        }
        if (first == n) {
            return 0;
        }
        skip = done;
    }
    int submit = !tr->write_inflight && tr->npending == 0;
    for (Py_ssize_t i = first; i < n; i++) {
        size_t off = i == first ? skip : 0;
        if (pending_append(tr, objs[i], (char *)views[i].buf + off,
                           views[i].len - off) < 0) {
            return -1;
        }
    }
    if (submit) {
        int err = submit_pending(tr);
        if (err < 0) {
            fatal_uv_error(tr, err, "Fatal write error on socket transport");
            return PyErr_Occurred() ? -1 : 0;
        }
    }
    return maybe_pause_protocol(tr);
}

static int
check_bytes_like(PyObject *data)
{
    if (PyBytes_Check(data) || PyByteArray_Check(data)
        || PyMemoryView_Check(data)) {
        return 0;
    }
    PyErr_Format(PyExc_TypeError,
                 "data argument must be a bytes-like object, not '%.200s'",
                 Py_TYPE(data)->tp_name);
    return -1;
}

/* Returns 1 if the write is to be dropped (connection lost). */
static int
write_after_lost(TransportObject *tr)
{
    if (!tr->conn_lost && tr->uv_open) {
        return 0;
    }
    return log_write_after_lost(&tr->conn_lost) < 0 ? -1 : 1;
}

static PyObject *
tr_write(TransportObject *tr, PyObject *data)
{
    if (check_bytes_like(data) < 0) {
        return NULL;
    }
    if (tr->eof) {
        PyErr_SetString(PyExc_RuntimeError,
                        "Cannot call write() after write_eof()");
        return NULL;
    }
    if (tr->empty_waiter != NULL) {
        PyErr_SetString(PyExc_RuntimeError,
                        "unable to write; sendfile is in progress");
        return NULL;
    }
    Py_buffer view;
    if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    int rc = 0;
    if (view.len > 0) {
        rc = write_after_lost(tr);
        if (rc == 0) {
            Py_INCREF(tr);
            rc = write_buffers(tr, &view, &data, 1);
            Py_DECREF(tr);
        }
    }
    PyBuffer_Release(&view);
    if (rc < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
tr_writelines(TransportObject *tr, PyObject *list)
{
    if (tr->eof) {
        PyErr_SetString(PyExc_RuntimeError,
                        "Cannot call writelines() after write_eof()");
        return NULL;
    }
    if (tr->empty_waiter != NULL) {
        PyErr_SetString(PyExc_RuntimeError,
                        "unable to writelines; sendfile is in progress");
        return NULL;
    }
    PyObject *seq = PySequence_Fast(list, "writelines() expects an iterable");
    if (seq == NULL) {
        return NULL;
    }
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    PyObject **items = PySequence_Fast_ITEMS(seq);
    Py_buffer *views = PyMem_Calloc(n ? n : 1, sizeof(Py_buffer));
    PyObject **objs = PyMem_Calloc(n ? n : 1, sizeof(PyObject *));
    Py_ssize_t got = 0, kept = 0;
    int rc = views && objs ? 0 : -1;
    if (rc < 0) {
        PyErr_NoMemory();
    }
    for (; rc == 0 && got < n; got++) {
        if (check_bytes_like(items[got]) < 0
            || PyObject_GetBuffer(items[got], &views[kept], PyBUF_SIMPLE) < 0) {
            rc = -1;
            break;
        }
        if (views[kept].len == 0) {
            PyBuffer_Release(&views[kept]);
            continue;
        }
        objs[kept++] = items[got];
    }
    if (rc == 0 && kept > 0) {
        rc = write_after_lost(tr);
        if (rc == 0) {
            Py_INCREF(tr);
            rc = write_buffers(tr, views, objs, kept);
            Py_DECREF(tr);
        }
    }
    for (Py_ssize_t i = 0; i < kept; i++) {
        PyBuffer_Release(&views[i]);
    }
    PyMem_Free(views);
    PyMem_Free(objs);
    Py_DECREF(seq);
    if (rc < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
tr_write_eof(TransportObject *tr, PyObject *Py_UNUSED(ignored))
{
    if (tr->closing || tr->eof) {
        Py_RETURN_NONE;
    }
    if (uncork(tr) < 0) {
        return NULL;
    }
    tr->eof = 1;
    if (!tr->write_inflight && tr->npending == 0) {
        shutdown_write(tr);
    }
    Py_RETURN_NONE;
}

static PyObject *
tr_can_write_eof(TransportObject *Py_UNUSED(tr), PyObject *Py_UNUSED(ignored))
{
    Py_RETURN_TRUE;
}

static PyObject *
tr_get_write_buffer_size(TransportObject *tr, PyObject *Py_UNUSED(ignored))
{
    if (uncork(tr) < 0) {
        return NULL;
    }
    return PyLong_FromSize_t(transport_write_buffer_size(tr));
}

static PyObject *
tr_get_write_buffer_limits(TransportObject *tr, PyObject *Py_UNUSED(ignored))
{
    return Py_BuildValue("(nn)", (Py_ssize_t)tr->low_water,
                         (Py_ssize_t)tr->high_water);
}

static int
set_limits(TransportObject *tr, PyObject *high, PyObject *low)
{
    Py_ssize_t h, l;
    if (high == Py_None) {
        if (low == Py_None) {
            h = DEFAULT_HIGH_WATER;
        }
        else {
            l = PyNumber_AsSsize_t(low, PyExc_OverflowError);
            if (l == -1 && PyErr_Occurred()) {
                return -1;
            }
            h = 4 * l;
        }
    }
    else {
        h = PyNumber_AsSsize_t(high, PyExc_OverflowError);
        if (h == -1 && PyErr_Occurred()) {
            return -1;
        }
    }
    if (low == Py_None) {
        l = default_low_water(h);
    }
    else {
        l = PyNumber_AsSsize_t(low, PyExc_OverflowError);
        if (l == -1 && PyErr_Occurred()) {
            return -1;
        }
    }
    if (!(h >= l && l >= 0)) {
        PyErr_Format(PyExc_ValueError,
                     "high (%zd) must be >= low (%zd) must be >= 0", h, l);
        return -1;
    }
    tr->high_water = (size_t)h;
    tr->low_water = (size_t)l;
    return 0;
}

static PyObject *
tr_set_write_buffer_limits(TransportObject *tr, PyObject *args,
                           PyObject *kwds)
{
    static char *kwlist[] = {"high", "low", NULL};
    PyObject *high = Py_None, *low = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|OO:set_write_buffer_limits",
                                     kwlist, &high, &low)) {
        return NULL;
    }
    if (set_limits(tr, high, low) < 0 || uncork(tr) < 0
        || maybe_pause_protocol(tr) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

/* ---- reading ------------------------------------------------------------ */

static void
alloc_cb(uv_handle_t *handle, size_t Py_UNUSED(suggested), uv_buf_t *buf)
{
    TransportObject *tr = TR_FROM_HANDLE(handle);
    tr->in_read_cb = 1;
    *buf = uv_buf_init(NULL, 0);
    if (!tr->buffered) {
        if (thread_read_buffer == NULL) {
            thread_read_buffer = PyMem_RawMalloc(READ_BUFFER_SIZE);
            if (thread_read_buffer == NULL) {
                return;
            }
        }
        *buf = uv_buf_init(thread_read_buffer, READ_BUFFER_SIZE);
        return;
    }
    if (tr->in_buffer) {
        return;
    }
    if (tr->cb_get_buffer == NULL) {
        /* The protocol has no get_buffer(): raise asyncio's AttributeError. */
        tr->cb_get_buffer = PyObject_GetAttr(tr->protocol, str_get_buffer);
        if (tr->cb_get_buffer == NULL) {
            tr->read_error = err_fetch();
            return;
        }
    }
    PyObject *minus_one = PyLong_FromLong(-1);
    int entered = enter_context(tr);
    PyObject *obj = minus_one == NULL ? NULL
                    : PyObject_CallOneArg(tr->cb_get_buffer, minus_one);
    exit_context(tr, entered);
    Py_XDECREF(minus_one);
    if (obj == NULL) {
        tr->read_error = err_fetch();
        return;
    }
    int rc = PyObject_GetBuffer(obj, &tr->read_view, PyBUF_WRITABLE);
    Py_DECREF(obj);
    if (rc < 0) {
        tr->read_error = err_fetch();
        return;
    }
    if (tr->read_view.len == 0) {
        PyBuffer_Release(&tr->read_view);
        PyErr_SetString(PyExc_RuntimeError,
                        "get_buffer() returned an empty buffer");
        tr->read_error = err_fetch();
        return;
    }
    tr->in_buffer = 1;
    size_t len = (size_t)tr->read_view.len;
    *buf = uv_buf_init(tr->read_view.buf,
                       len > UINT32_MAX ? UINT32_MAX : (unsigned int)len);
}

static void
on_eof(TransportObject *tr)
{
    transport_log_debug(tr, "received EOF");
    PyObject *res = PyObject_CallMethodNoArgs(tr->protocol, str_eof_received);
    if (res == NULL) {
        fatal_python_error(tr,
                           "Fatal error: protocol.eof_received() call failed.");
        return;
    }
    int keep_open = PyObject_IsTrue(res);
    Py_DECREF(res);
    if (keep_open < 0) {
        fatal_python_error(tr,
                           "Fatal error: protocol.eof_received() call failed.");
        return;
    }
    if (keep_open) {
        /* The protocol may still write; nothing more can be read. */
        if (tr->uv_open) {
            uv_read_stop(TR_STREAM(tr));
        }
        tr->reading = 0;
        tr->stop_after_read = 0;
    }
    else {
        PyObject *r = PyObject_CallMethodNoArgs((PyObject *)tr, str_close);
        if (r == NULL) {
            fatal_python_error(tr, "Fatal error on transport");
        }
        Py_XDECREF(r);
    }
}

/* The protocol's bound method *slot, looked up again if it was missing
   when the protocol was set (it raises the AttributeError then). */
static PyObject *
protocol_method(TransportObject *tr, PyObject **slot, PyObject *name)
{
    if (*slot == NULL) {
        *slot = PyObject_GetAttr(tr->protocol, name);
    }
    return *slot;
}

static void
deliver_data(TransportObject *tr, ssize_t nread, const uv_buf_t *buf)
{
    if (tr->buffered) {
        PyBuffer_Release(&tr->read_view);
        tr->in_buffer = 0;
        PyObject *n = PyLong_FromSsize_t(nread);
        PyObject *cb = protocol_method(tr, &tr->cb_buffer_updated,
                                       str_buffer_updated);
        PyObject *res = n == NULL || cb == NULL ? NULL
                        : PyObject_CallOneArg(cb, n);
        Py_XDECREF(n);
        if (res == NULL) {
            fatal_python_error(
                tr, "Fatal error: protocol.buffer_updated() call failed.");
        }
        Py_XDECREF(res);
        return;
    }
    PyObject *data = PyBytes_FromStringAndSize(buf->base, nread);
    PyObject *cb = protocol_method(tr, &tr->cb_data_received,
                                   str_data_received);
    PyObject *res = data == NULL || cb == NULL ? NULL
                    : PyObject_CallOneArg(cb, data);
    Py_XDECREF(data);
    if (res == NULL) {
        fatal_python_error(
            tr, "Fatal error: protocol.data_received() call failed.");
    }
    Py_XDECREF(res);
}

static void
read_cb(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    TransportObject *tr = TR_FROM_HANDLE(stream);
    Py_INCREF(tr);
    int entered = enter_context(tr);
    tr->in_read_cb = 0;
    if (tr->in_buffer && nread <= 0) {
        PyBuffer_Release(&tr->read_view);
        tr->in_buffer = 0;
    }
    if (tr->conn_lost || tr->protocol == NULL) {
        Py_CLEAR(tr->read_error);
    }
    else if (nread > 0) {
        deliver_data(tr, nread, buf);
    }
    else if (nread == UV_ENOBUFS && tr->read_error != NULL) {
        PyObject *exc = tr->read_error;
        tr->read_error = NULL;
        fatal_error(tr, exc, "Fatal error: protocol.get_buffer() call failed.");
        Py_DECREF(exc);
    }
    else if (nread == UV_EOF) {
        on_eof(tr);
    }
    else if (nread < 0) {
        fatal_uv_error(tr, (int)nread,
                       "Fatal read error on socket transport");
    }
    if (tr->stop_after_read) {
        tr->stop_after_read = 0;
        if (tr->uv_open && !tr->reading) {
            uv_read_stop(stream);
        }
    }
    exit_context(tr, entered);
    /* What data_received() wrote leaves now, not after the other
       callbacks of this dispatch. */
    if (tr->loop->corked != NULL && loop_send_corked(tr->loop) < 0) {
        loop_set_pending_error(tr->loop);
    }
    Py_DECREF(tr);
}

static int
start_reading(TransportObject *tr)
{
    tr->stop_after_read = 0;
    if (tr->reading || !tr->uv_open) {
        tr->reading = tr->uv_open;
        return 0;
    }
    int err = uv_read_start(TR_STREAM(tr), alloc_cb, read_cb);
    if (err < 0) {
        error_from_uv(err);
        return -1;
    }
    tr->reading = 1;
    return 0;
}

static PyObject *
tr_is_reading(TransportObject *tr, PyObject *Py_UNUSED(ignored))
{
    return PyBool_FromLong(!tr->closing && !tr->paused);
}

static PyObject *
tr_pause_reading(TransportObject *tr, PyObject *Py_UNUSED(ignored))
{
    if (tr->closing || tr->paused) {
        Py_RETURN_NONE;
    }
    tr->paused = 1;
    stop_reading(tr);
    transport_log_debug(tr, "pauses reading");
    Py_RETURN_NONE;
}

static PyObject *
tr_resume_reading(TransportObject *tr, PyObject *Py_UNUSED(ignored))
{
    if (tr->closing || !tr->paused) {
        Py_RETURN_NONE;
    }
    tr->paused = 0;
    if (tr->started && start_reading(tr) < 0) {
        return NULL;
    }
    transport_log_debug(tr, "resumes reading");
    Py_RETURN_NONE;
}

/* ---- protocol ----------------------------------------------------------- */

static int
set_protocol(TransportObject *tr, PyObject *protocol)
{
    int buffered = PyObject_IsInstance(protocol, BufferedProtocol);
    if (buffered < 0) {
        return -1;
    }
    PyObject *a = NULL, *b = NULL;
    if (buffered) {
        a = PyObject_GetAttr(protocol, str_get_buffer);
        b = a ? PyObject_GetAttr(protocol, str_buffer_updated) : NULL;
    }
    else {
        a = PyObject_GetAttr(protocol, str_data_received);
    }
    if (a == NULL || (buffered && b == NULL)) {
        /* asyncio only fails when data arrives: accept the protocol and
           fail then, with asyncio's message. */
        PyErr_Clear();
    }
    drop_protocol(tr);
    tr->protocol = Py_NewRef(protocol);
    tr->buffered = (char)buffered;
    if (buffered) {
        tr->cb_get_buffer = a;
        tr->cb_buffer_updated = b;
    }
    else {
        tr->cb_data_received = a;
    }
    tr->protocol_connected = 1;
    return 0;
}

static PyObject *
tr_set_protocol(TransportObject *tr, PyObject *protocol)
{
    if (tr->in_buffer) {
        /* The old protocol's buffer is being filled: it gets the data. */
        PyErr_SetString(PyExc_RuntimeError,
                        "set_protocol() called while a read is in progress");
        return NULL;
    }
    if (set_protocol(tr, protocol) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
tr_get_protocol(TransportObject *tr, PyObject *Py_UNUSED(ignored))
{
    return Py_NewRef(tr->protocol ? tr->protocol : Py_None);
}

/* ---- closing methods ---------------------------------------------------- */

static PyObject *
tr_close(TransportObject *tr, PyObject *Py_UNUSED(ignored))
{
    if (tr->closing) {
        Py_RETURN_NONE;
    }
    if (uncork(tr) < 0) {
        return NULL;
    }
    tr->closing = 1;
    stop_reading(tr);
    if (!tr->write_inflight && tr->npending == 0) {
        tr->conn_lost++;
        if (schedule_connection_lost(tr, NULL) < 0) {
            return NULL;
        }
    }
    Py_RETURN_NONE;
}

static PyObject *
tr_abort(TransportObject *tr, PyObject *Py_UNUSED(ignored))
{
    /* asyncio had sent what the socket took before abort() drops the
       rest. */
    if (uncork(tr) < 0 || force_close(tr, NULL) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
tr_force_close(TransportObject *tr, PyObject *exc)
{
    if (force_close(tr, exc) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
tr_is_closing(TransportObject *tr, PyObject *Py_UNUSED(ignored))
{
    return PyBool_FromLong(tr->closing);
}

/* ---- start-up ----------------------------------------------------------- */

/* Scheduled at creation: connection_made(), then reading, then the waiter,
   in asyncio's order. */
static PyObject *
tr_start(TransportObject *tr, PyObject *waiter)
{
    Py_INCREF(tr);
    PyObject *res = Py_NewRef(Py_None);
    if (tr->protocol != NULL) {
        Py_SETREF(res, PyObject_CallMethodOneArg(
            tr->protocol, str_connection_made, (PyObject *)tr));
    }
    PyObject *err = res == NULL ? err_fetch() : NULL;
    if (err != NULL && (PyErr_GivenExceptionMatches(err, PyExc_KeyboardInterrupt)
                        || PyErr_GivenExceptionMatches(err, PyExc_SystemExit))) {
        Py_DECREF(tr);
        err_restore(err);
        return NULL;
    }
    tr->started = 1;
    if (!tr->closing && !tr->paused && start_reading(tr) < 0) {
        if (err == NULL) {
            err = err_fetch();
        }
        else {
            PyErr_Clear();
        }
    }
    if (waiter != Py_None) {
        PyObject *cancelled = PyObject_CallMethod(waiter, "cancelled", NULL);
        int skip = cancelled == NULL ? -1 : PyObject_IsTrue(cancelled);
        Py_XDECREF(cancelled);
        PyObject *r = NULL;
        if (skip == 0) {
            r = PyObject_CallMethod(waiter, "set_result", "O", Py_None);
        }
        if ((skip < 0 || (skip == 0 && r == NULL))) {
            if (err == NULL) {
                err = err_fetch();
            }
            else {
                PyErr_Clear();
            }
        }
        Py_XDECREF(r);
    }
    Py_DECREF(tr);
    if (err != NULL) {
        Py_XDECREF(res);
        err_restore(err);
        return NULL;
    }
    return res;
}

/* Called once the libuv handle is open on its descriptor. */
int
transport_setup(TransportObject *tr, PyObject *protocol, PyObject *waiter,
                PyObject *server, int nodelay)
{
    int fd = transport_fd(tr);
    if (tr->is_tcp && nodelay) {
        uv_tcp_nodelay(&tr->uv.tcp, 1);
    }
    if (tr->extra == NULL) {
        tr->extra = PyDict_New();
        if (tr->extra == NULL) {
            return -1;
        }
    }
    if (transport_set_names(tr, fd) < 0) {
        return -1;
    }
    if (set_protocol(tr, protocol) < 0) {
        return -1;
    }
    if (server != Py_None && server != NULL) {
        tr->server = Py_NewRef(server);
        if (server_call(tr, str_attach) < 0) {
            Py_CLEAR(tr->server);
            return -1;
        }
    }
    PyObject *start = PyObject_GetAttrString((PyObject *)tr, "_start");
    if (start == NULL) {
        return -1;
    }
    PyObject *args = PyTuple_Pack(1, waiter ? waiter : Py_None);
    HandleObject *h = args ? loop_call_soon(tr->loop, start, args,
                                            tr->context)
                           : NULL;
    Py_DECREF(start);
    Py_XDECREF(args);
    if (h == NULL) {
        return -1;
    }
    Py_DECREF(h);
    return 0;
}

/* A transport with its libuv handle initialised (not yet on a descriptor).
   From here on the handle must be closed, which drops the object. */
TransportObject *
transport_alloc(LoopObject *loop, int is_tcp)
{
    TransportObject *tr = PyObject_GC_New(TransportObject,
                                          SocketTransport_Type);
    if (tr == NULL) {
        return NULL;
    }
    Py_INCREF(SocketTransport_Type);   /* instances of heap types own one */
    char *start = (char *)tr + sizeof(PyObject);
    memset(start, 0, sizeof(TransportObject) - sizeof(PyObject));
    tr->loop = (LoopObject *)Py_NewRef(loop);
    tr->is_tcp = (char)is_tcp;
    tr->high_water = DEFAULT_HIGH_WATER;
    tr->low_water = DEFAULT_HIGH_WATER / 4;
    tr->res.close = resource_close;
    tr->res.owner = (PyObject *)tr;
    tr->context = PyContext_CopyCurrent();
    if (tr->context == NULL) {
        Py_DECREF(tr);
        return NULL;
    }
    PyObject_GC_Track(tr);
    int err = is_tcp ? uv_tcp_init(&loop->uv, &tr->uv.tcp)
                     : uv_pipe_init(&loop->uv, &tr->uv.pipe, 0);
    if (err < 0) {
        error_from_uv(err);
        Py_DECREF(tr);
        return NULL;
    }
    tr->uv.handle.data = tr;
    tr->write_req.data = tr;
    tr->uv_open = 1;
    Py_INCREF(tr);          /* owned by the open handle */
    loop_link_resource(loop, &tr->res);
    return tr;
}

/* Closes a transport whose setup failed, keeping the current exception. */
void
transport_discard(TransportObject *tr)
{
    PyObject *exc = err_fetch();
    tr->closing = 1;
    tr->conn_lost = 1;
    tr->connection_lost_called = 1;
    close_handle(tr);
    close_python_socket(tr);
    drop_protocol(tr);
    if (exc != NULL) {
        err_restore(exc);
    }
    Py_DECREF(tr);
}

int
transport_start_accepted(TransportObject *tr, PyObject *protocol,
                         PyObject *server, int nodelay)
{
    return transport_setup(tr, protocol, NULL, server, nodelay);
}

/* The work is done in socket_transport_new (tcp.c): this only keeps asyncio.BaseTransport's
   __init__ from running on the arguments of tr_new. */
static int
tr_init(PyObject *Py_UNUSED(self), PyObject *Py_UNUSED(args),
        PyObject *Py_UNUSED(kwds))
{
    return 0;
}

/* ---- extra info --------------------------------------------------------- */

/* loop._transports[fd] = tr, as asyncio's transports do for their socket:
   add_reader() and the sock_* calls then refuse the descriptor. */
static int
register_transport(TransportObject *tr, int fd)
{
    PyObject *registry = PyObject_GetAttrString((PyObject *)tr->loop,
                                                "_transports");
    if (registry == NULL) {
        /* A Loop subclass without the registry. */
        if (PyErr_ExceptionMatches(PyExc_AttributeError)) {
            PyErr_Clear();
            return 0;
        }
        return -1;
    }
    PyObject *key = PyLong_FromLong(fd);
    int res = key ? PyObject_SetItem(registry, key, (PyObject *)tr) : -1;
    Py_XDECREF(key);
    Py_DECREF(registry);
    return res;
}

/* The 'socket' extra: the transport's Python socket, made on first use for
   accepted connections (on a duplicate descriptor, closed with the
   transport). That duplicate is the descriptor code can learn from the
   transport, so it is the one registered in loop._transports. */
static PyObject *
transport_socket(TransportObject *tr)
{
    if (tr->sock == NULL) {
        int fd = transport_fd(tr);
        if (fd < 0) {
            Py_RETURN_NONE;
        }
        int dupfd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
        if (dupfd < 0) {
            return PyErr_SetFromErrno(PyExc_OSError);
        }
        PyObject *kwargs = Py_BuildValue("{si}", "fileno", dupfd);
        if (kwargs != NULL) {
            tr->sock = PyObject_Call(socket_socket, asyncloop_state.empty_tuple,
                                     kwargs);
            Py_DECREF(kwargs);
        }
        if (tr->sock == NULL) {
            close(dupfd);
            return NULL;
        }
        if (register_transport(tr, dupfd) < 0) {
            return NULL;
        }
    }
    return PyObject_CallOneArg(TransportSocket, tr->sock);
}

static PyObject *
tr_get_extra_info(TransportObject *tr, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"name", "default", NULL};
    PyObject *name, *dflt = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O|O:get_extra_info", kwlist,
                                     &name, &dflt)) {
        return NULL;
    }
    if (tr->extra != NULL) {
        PyObject *v = PyDict_GetItemWithError(tr->extra, name);
        if (v != NULL) {
            return Py_NewRef(v);
        }
        if (PyErr_Occurred()) {
            return NULL;
        }
    }
    if (PyUnicode_Check(name)
        && PyUnicode_Compare(name, str_socket) == 0
        && (tr->uv_open || tr->sock != NULL)) {
        PyObject *ts = transport_socket(tr);
        if (ts == NULL || ts == Py_None) {
            return ts;
        }
        if (tr->extra != NULL && PyDict_SetItem(tr->extra, name, ts) < 0) {
            Py_DECREF(ts);
            return NULL;
        }
        return ts;
    }
    return Py_NewRef(dflt);
}

/* ---- the type ----------------------------------------------------------- */

static PyObject *
tr_repr(TransportObject *tr)
{
    int open_sock = tr->sock != NULL && !tr->sock_closed;
    const char *state = (!tr->uv_open && !open_sock) ? " closed"
                        : tr->closing ? " closing" : "";
    int fd = transport_fd(tr);
    if (fd < 0 && open_sock) {
        fd = PyObject_AsFileDescriptor(tr->sock);
        if (fd < 0) {
            PyErr_Clear();
        }
    }
    const char *name = Py_TYPE(tr)->tp_name;
    size_t bufsize = transport_write_buffer_size(tr);
    const char *writing = tr->write_inflight ? "polling" : "idle";
    if (!tr->uv_open) {
        return PyUnicode_FromFormat("<%s%s fd=%d>", name, state, fd);
    }
    return PyUnicode_FromFormat(
        "<%s%s fd=%d read=%s write=<%s, bufsize=%zu>>", name, state, fd,
        tr->reading ? "polling" : "idle", writing, bufsize);
}

/* asyncio's transports' __del__: a transport whose connection_lost() has
   not run warns and closes its socket. The libuv handle is open here only
   when the loop is garbage too (the loop holds the handle's reference),
   and is closed with the socket. */
static void
tr_finalize(TransportObject *tr)
{
    if (tr->connection_lost_called) {
        return;
    }
    PyObject *exc = err_fetch();
    if (PyErr_ResourceWarning((PyObject *)tr, 1, "unclosed transport %R",
                              (PyObject *)tr) < 0) {
        PyErr_WriteUnraisable((PyObject *)tr);
    }
    tr->connection_lost_called = 1;
    chunks_release(tr->pending, &tr->npending, &tr->pending_size);
    close_handle(tr);
    close_python_socket(tr);
    if (exc != NULL) {
        err_restore(exc);
    }
}

static int
tr_traverse(TransportObject *tr, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(tr));
    Py_VISIT(tr->extra);
    Py_VISIT(tr->loop);
    Py_VISIT(tr->protocol);
    Py_VISIT(tr->cb_data_received);
    Py_VISIT(tr->cb_get_buffer);
    Py_VISIT(tr->cb_buffer_updated);
    Py_VISIT(tr->sock);
    Py_VISIT(tr->server);
    Py_VISIT(tr->context);
    Py_VISIT(tr->dict);
    Py_VISIT(tr->read_error);
    Py_VISIT(tr->empty_waiter);
    return 0;
}

static int
tr_clear(TransportObject *tr)
{
    /* Only reached once the handle is closed: the open handle's reference
       is not visited, so a transport with an open handle is never
       garbage. */
    Py_CLEAR(tr->extra);
    Py_CLEAR(tr->dict);
    drop_protocol(tr);
    Py_CLEAR(tr->server);
    Py_CLEAR(tr->read_error);
    Py_CLEAR(tr->empty_waiter);
    return 0;
}

static void
tr_dealloc(TransportObject *tr)
{
    PyTypeObject *type = Py_TYPE(tr);
    if (PyObject_CallFinalizerFromDealloc((PyObject *)tr) < 0) {
        return;     /* resurrected */
    }
    PyObject_GC_UnTrack(tr);
    if (tr->weakreflist != NULL) {
        PyObject_ClearWeakRefs((PyObject *)tr);
    }
    tr_clear(tr);
    chunks_release(tr->pending, &tr->npending, &tr->pending_size);
    chunks_release(tr->inflight, &tr->ninflight, NULL);
    PyMem_Free(tr->pending);
    PyMem_Free(tr->inflight);
    Py_CLEAR(tr->sock);
    Py_CLEAR(tr->context);
    Py_CLEAR(tr->loop);
    PyObject_GC_Del(tr);
    Py_DECREF(type);
}

static PyObject *
tr_get_loop(TransportObject *tr, void *Py_UNUSED(closure))
{
    return Py_NewRef(tr->loop);
}

static PyObject *
tr_get_closing(TransportObject *tr, void *Py_UNUSED(closure))
{
    return PyBool_FromLong(tr->closing);
}

static PyObject *
tr_get_conn_lost(TransportObject *tr, void *Py_UNUSED(closure))
{
    return PyLong_FromUnsignedLong(tr->conn_lost);
}

static PyObject *
tr_get_sock(TransportObject *tr, void *Py_UNUSED(closure))
{
    return Py_NewRef(tr->uv_open && tr->sock ? tr->sock : Py_None);
}

static PyObject *
tr_get_protocol_paused(TransportObject *tr, void *Py_UNUSED(closure))
{
    return PyBool_FromLong(tr->protocol_paused);
}

/* loop.sendfile(): os.sendfile() on sockets, as asyncio. */
static PyObject *
tr_get_sendfile_compatible(TransportObject *Py_UNUSED(tr),
                           void *Py_UNUSED(closure))
{
    PyObject *mode = import_from("asyncio.constants", "_SendfileMode");
    if (mode == NULL) {
        return NULL;
    }
    PyObject *res = PyObject_GetAttrString(
        mode, "TRY_NATIVE");
    Py_DECREF(mode);
    return res;
}

static PyObject *
tr_get_high_water(TransportObject *tr, void *Py_UNUSED(closure))
{
    return PyLong_FromSize_t(tr->high_water);
}

static PyObject *
tr_get_low_water(TransportObject *tr, void *Py_UNUSED(closure))
{
    return PyLong_FromSize_t(tr->low_water);
}

/* start_tls() works on socket transports, as asyncio. */
static PyObject *
tr_get_start_tls_compatible(TransportObject *Py_UNUSED(tr),
                            void *Py_UNUSED(closure))
{
    Py_RETURN_TRUE;
}

static PyGetSetDef tr_getset[] = {
    {"__dict__", PyObject_GenericGetDict, PyObject_GenericSetDict, NULL, NULL},
    {"_start_tls_compatible", (getter)tr_get_start_tls_compatible, NULL, NULL,
     NULL},
    {"_high_water", (getter)tr_get_high_water, NULL, NULL, NULL},
    {"_low_water", (getter)tr_get_low_water, NULL, NULL, NULL},
    {"_protocol_paused", (getter)tr_get_protocol_paused, NULL, NULL, NULL},
    {"_sendfile_compatible", (getter)tr_get_sendfile_compatible, NULL, NULL,
     NULL},
    {"_loop", (getter)tr_get_loop, NULL, NULL, NULL},
    {"_closing", (getter)tr_get_closing, NULL, NULL, NULL},
    {"_conn_lost", (getter)tr_get_conn_lost, NULL, NULL, NULL},
    {"_sock", (getter)tr_get_sock, NULL, NULL, NULL},
    {NULL}
};

static PyMethodDef tr_methods[] = {
    {"write", (PyCFunction)tr_write, METH_O, NULL},
    {"writelines", (PyCFunction)tr_writelines, METH_O, NULL},
    {"write_eof", (PyCFunction)tr_write_eof, METH_NOARGS, NULL},
    {"can_write_eof", (PyCFunction)tr_can_write_eof, METH_NOARGS, NULL},
    {"close", (PyCFunction)tr_close, METH_NOARGS, NULL},
    {"abort", (PyCFunction)tr_abort, METH_NOARGS, NULL},
    {"is_closing", (PyCFunction)tr_is_closing, METH_NOARGS, NULL},
    {"get_extra_info", (PyCFunction)(void (*)(void))tr_get_extra_info,
     METH_VARARGS | METH_KEYWORDS, NULL},
    {"set_write_buffer_limits",
     (PyCFunction)(void (*)(void))tr_set_write_buffer_limits,
     METH_VARARGS | METH_KEYWORDS, NULL},
    {"get_write_buffer_limits", (PyCFunction)tr_get_write_buffer_limits,
     METH_NOARGS, NULL},
    {"get_write_buffer_size", (PyCFunction)tr_get_write_buffer_size,
     METH_NOARGS, NULL},
    {"pause_reading", (PyCFunction)tr_pause_reading, METH_NOARGS, NULL},
    {"resume_reading", (PyCFunction)tr_resume_reading, METH_NOARGS, NULL},
    {"is_reading", (PyCFunction)tr_is_reading, METH_NOARGS, NULL},
    {"set_protocol", (PyCFunction)tr_set_protocol, METH_O, NULL},
    {"get_protocol", (PyCFunction)tr_get_protocol, METH_NOARGS, NULL},
    {"_force_close", (PyCFunction)tr_force_close, METH_O, NULL},
    {"_call_connection_lost", (PyCFunction)tr_call_connection_lost, METH_O,
     NULL},
    {"_start", (PyCFunction)tr_start, METH_O, NULL},
    {"_make_empty_waiter", (PyCFunction)tr_make_empty_waiter, METH_NOARGS,
     NULL},
    {"_reset_empty_waiter", (PyCFunction)tr_reset_empty_waiter, METH_NOARGS,
     NULL},
    {NULL, NULL, 0, NULL}
};

static PyMemberDef tr_members[] = {
    {"__weaklistoffset__", T_PYSSIZET,
     offsetof(TransportObject, weakreflist), READONLY, NULL},
    /* An instance __dict__, as asyncio's transports have: tests replace
       methods of a transport (transport.write = ...) and tag it. */
    {"__dictoffset__", T_PYSSIZET, offsetof(TransportObject, dict), READONLY,
     NULL},
    {NULL}
};

static PyType_Slot tr_slots[] = {
    {Py_tp_new, socket_transport_new},
    {Py_tp_init, tr_init},
    {Py_tp_dealloc, tr_dealloc},
    {Py_tp_finalize, tr_finalize},
    {Py_tp_traverse, tr_traverse},
    {Py_tp_clear, tr_clear},
    {Py_tp_repr, tr_repr},
    {Py_tp_methods, tr_methods},
    {Py_tp_members, tr_members},
    {Py_tp_getset, tr_getset},
    {Py_tp_doc, "A TCP or Unix-socket transport (asyncio.Transport)."},
    {0, NULL}
};

static PyType_Spec tr_spec = {
    .name = "asyncloop._loop.SocketTransport",
    .basicsize = sizeof(TransportObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .slots = tr_slots,
};

static int
intern_names(void)
{
    struct { PyObject **slot; const char *text; } names[] = {
        {&str_data_received, "data_received"},
        {&str_get_buffer, "get_buffer"},
        {&str_buffer_updated, "buffer_updated"},
        {&str_eof_received, "eof_received"},
        {&str_connection_made, "connection_made"},
        {&str_connection_lost, "connection_lost"},
        {&str_pause_writing, "pause_writing"},
        {&str_resume_writing, "resume_writing"},
        {&str_attach, "_attach"},
        {&str_detach, "_detach"},
        {&str_close, "close"},
        {&str_warning, "warning"},
        {&str_debug, "debug"},
        {&str_transport, "transport"},
        {&str_protocol, "protocol"},
        {&str_socket, "socket"},
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        *names[i].slot = PyUnicode_InternFromString(names[i].text);
        if (*names[i].slot == NULL) {
            return -1;
        }
    }
    return 0;
}

PyObject *
import_from(const char *module, const char *name)
{
    PyObject *mod = PyImport_ImportModule(module);
    if (mod == NULL) {
        return NULL;
    }
    PyObject *attr = PyObject_GetAttrString(mod, name);
    Py_DECREF(mod);
    return attr;
}

int
stream_init(PyObject *module)
{
    if (intern_names() < 0) {
        return -1;
    }
    BufferedProtocol = import_from("asyncio", "BufferedProtocol");
    TransportSocket = import_from("asyncio.trsock", "TransportSocket");
    socket_socket = import_from("socket", "socket");
    /* _FlowControlMixin(Transport): what asyncio's socket transports
       derive from, and what loop.sendfile() asks for. */
    PyObject *base = import_from("asyncio.transports", "_FlowControlMixin");
    if (BufferedProtocol == NULL || TransportSocket == NULL
        || socket_socket == NULL || base == NULL) {
        Py_XDECREF(base);
        return -1;
    }
    /* asyncio.BaseTransport's __slots__ = ('_extra',) then the four of
       _FlowControlMixin: our `extra` and `flow_slots` fields. */
    if (((PyTypeObject *)base)->tp_basicsize
        != (Py_ssize_t)offsetof(TransportObject, flow_slots)
           + (Py_ssize_t)sizeof(((TransportObject *)0)->flow_slots)) {
        Py_DECREF(base);
        PyErr_SetString(PyExc_ImportError,
                        "asyncio.Transport has an unexpected layout");
        return -1;
    }
    SocketTransport_Type = (PyTypeObject *)PyType_FromSpecWithBases(&tr_spec,
                                                                    base);
    Py_DECREF(base);
    if (SocketTransport_Type == NULL) {
        return -1;
    }
    Py_INCREF(SocketTransport_Type);
    if (PyModule_AddObject(module, "SocketTransport",
                           (PyObject *)SocketTransport_Type) < 0) {
        Py_DECREF(SocketTransport_Type);
        return -1;
    }
    /* The listeners of server.c make these transports too. */
    return server_init(module);
}
