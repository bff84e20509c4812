/* The sock_* coroutines: sock_recv, sock_recv_into, sock_recvfrom,
   sock_recvfrom_into, sock_sendall, sock_sendto, sock_connect, sock_accept.

   Each operation is tried on the socket at once, and only when it would
   block is a watcher registered and a future returned: most calls on a
   busy connection then cost one system call and no trip through the
   loop. The waiting operation is a SockOp object: the callback of the
   reader or writer Handle (a C callable), and what the Python coroutine
   awaits. The coroutines themselves are thin Python functions in
   asyncloop/_lowlevel.py, so that they are real coroutines as asyncio's
   are; they call SockOp.close() when the await ends, however it ends, so
   that a cancelled operation leaves no watcher behind.

   The byte-stream operations call recv()/send() on the descriptor
   directly; the ones that take or return addresses, accept and connect go
   through the socket object's own methods, which know every address
   family. */
#include "asyncloop.h"
#include <errno.h>
#include <sys/socket.h>

typedef enum {
    OP_RECV,
    OP_RECV_INTO,
    OP_RECVFROM,
    OP_RECVFROM_INTO,
    OP_SENDALL,
    OP_SENDTO,
    OP_CONNECT,
    OP_ACCEPT,
} SockOpKind;

typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    LoopObject *loop;
    PyObject *sock;
    PyObject *fut;            /* set when the operation has to wait */
    HandleObject *handle;     /* the reader/writer while it is registered */
    PyObject *arg;            /* the address (sendto, connect) or buffer */
    Py_buffer view;           /* the bytes sent or received into */
    char has_view;
    SockOpKind kind;
    int fd;
    Py_ssize_t size;          /* bufsize (recv, recvfrom) or nbytes */
    Py_ssize_t pos;           /* bytes of view sent so far (sendall) */
} SockOpObject;

static PyTypeObject SockOp_Type;

/* The result of one attempt. */
enum { ATTEMPT_ERROR = -1, ATTEMPT_BLOCKED = 0, ATTEMPT_DONE = 1 };

static PyObject *SSLSocket_type;    /* ssl.SSLSocket, or None without ssl */
static PyObject *str_fileno, *str_gettimeout, *str_recvfrom,
    *str_recvfrom_into, *str_sendto, *str_connect, *str_accept,
    *str_setblocking, *str_done, *str_set_result, *str_set_exception;

/* ---- checks shared by every operation ---------------------------------- */

static int
check_ssl_socket(PyObject *sock)
{
    if (SSLSocket_type == NULL) {
        SSLSocket_type = PyImport_ImportModule("ssl");
        if (SSLSocket_type == NULL) {
            PyErr_Clear();
            SSLSocket_type = Py_NewRef(Py_None);
        }
        else {
            PyObject *mod = SSLSocket_type;
            SSLSocket_type = PyObject_GetAttrString(mod, "SSLSocket");
            Py_DECREF(mod);
            if (SSLSocket_type == NULL) {
                return -1;
            }
        }
    }
    if (SSLSocket_type == Py_None) {
        return 0;
    }
    int is_ssl = PyObject_IsInstance(sock, SSLSocket_type);
    if (is_ssl > 0) {
        PyErr_SetString(PyExc_TypeError, "Socket cannot be of type SSLSocket");
    }
    return is_ssl ? -1 : 0;
}

/* asyncio checks the socket is non-blocking in debug mode only: the check
   costs a call per operation. */
static int
check_nonblocking(LoopObject *loop, PyObject *sock)
{
    if (!loop->debug) {
        return 0;
    }
    PyObject *timeout = PyObject_CallMethodNoArgs(sock, str_gettimeout);
    if (timeout == NULL) {
        return -1;
    }
    int blocking = 1;
    if (timeout != Py_None) {
        double value = PyFloat_AsDouble(timeout);
        blocking = value == -1.0 && PyErr_Occurred() ? -1 : value != 0.0;
    }
    Py_DECREF(timeout);
    if (blocking > 0) {
        PyErr_SetString(PyExc_ValueError, "the socket must be non-blocking");
    }
    return blocking ? -1 : 0;
}

static int
sock_fileno(PyObject *sock)
{
    PyObject *res = PyObject_CallMethodNoArgs(sock, str_fileno);
    if (res == NULL) {
        return -1;
    }
    long fd = PyLong_AsLong(res);
    Py_DECREF(res);
    if (fd == -1 && PyErr_Occurred()) {
        return -2;
    }
    return (int)fd;
}

/* ---- one attempt of each operation -------------------------------------- */

static int
errno_would_block(void)
{
    return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
}

/* Whether a socket method failed only because it would block. */
static int
method_would_block(void)
{
    if (PyErr_ExceptionMatches(PyExc_BlockingIOError)
        || PyErr_ExceptionMatches(PyExc_InterruptedError)) {
        PyErr_Clear();
        return 1;
    }
    return 0;
}

/* recv() of up to RECV_BUFFER_SIZE bytes lands here and is copied into
   bytes of the size received: cheaper than allocating bytes of the size
   asked for (64 KiB is usual) and shrinking them to the few received.
   Larger reads go straight into their bytes, where the copy would cost
   more than it saves. Used with the GIL held; marked busy while the
   bytes are made, since that may run a collection and let another
   thread in. */
#define RECV_BUFFER_SIZE (64 * 1024)
static char recv_buffer[RECV_BUFFER_SIZE];
static int recv_buffer_busy;

static int
recv_result(ssize_t n, int err)
{
    if (n >= 0) {
        return ATTEMPT_DONE;
    }
    if (err == EAGAIN || err == EWOULDBLOCK) {
        return ATTEMPT_BLOCKED;
    }
    errno = err;
    PyErr_SetFromErrno(PyExc_OSError);
    return ATTEMPT_ERROR;
}

static int
attempt_recv_copied(SockOpObject *op, PyObject **result)
{
    recv_buffer_busy = 1;
    ssize_t n;
    do {
        n = recv(op->fd, recv_buffer, (size_t)op->size, 0);
    } while (n < 0 && errno == EINTR);
    int err = errno;
    if (n >= 0) {
        *result = PyBytes_FromStringAndSize(recv_buffer, n);
    }
    recv_buffer_busy = 0;
    int rc = recv_result(n, err);
    if (rc == ATTEMPT_DONE && *result == NULL) {
        return ATTEMPT_ERROR;
    }
    return rc;
}

static int
attempt_recv(SockOpObject *op, PyObject **result)
{
    if (op->size == 0) {
        /* As the socket module: no system call, so no EAGAIN either. */
        *result = PyBytes_FromStringAndSize(NULL, 0);
        return *result ? ATTEMPT_DONE : ATTEMPT_ERROR;
    }
    if (op->size <= RECV_BUFFER_SIZE && !recv_buffer_busy) {
        return attempt_recv_copied(op, result);
    }
    PyObject *data = PyBytes_FromStringAndSize(NULL, op->size);
    if (data == NULL) {
        return ATTEMPT_ERROR;
    }
    ssize_t n;
    do {
        n = recv(op->fd, PyBytes_AS_STRING(data), (size_t)op->size, 0);
    } while (n < 0 && errno == EINTR);
    int rc = recv_result(n, errno);
    if (rc != ATTEMPT_DONE) {
        Py_DECREF(data);
        return rc;
    }
    if (n != op->size && _PyBytes_Resize(&data, n) < 0) {
        return ATTEMPT_ERROR;
    }
    *result = data;
    return ATTEMPT_DONE;
}

static int
attempt_recv_into(SockOpObject *op, PyObject **result)
{
    if (op->view.len == 0) {
        *result = PyLong_FromLong(0);
        return *result ? ATTEMPT_DONE : ATTEMPT_ERROR;
    }
    ssize_t n;
    do {
        n = recv(op->fd, op->view.buf, (size_t)op->view.len, 0);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
        if (errno_would_block()) {
            return ATTEMPT_BLOCKED;
        }
        PyErr_SetFromErrno(PyExc_OSError);
        return ATTEMPT_ERROR;
    }
    *result = PyLong_FromSsize_t(n);
    return *result ? ATTEMPT_DONE : ATTEMPT_ERROR;
}

/* Sends what is left of the view until done or the socket is full. */
static int
attempt_sendall(SockOpObject *op, PyObject **result)
{
    const char *buf = op->view.buf;
    do {
        ssize_t n = send(op->fd, buf + op->pos,
                         (size_t)(op->view.len - op->pos), MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                return ATTEMPT_BLOCKED;
            }
            PyErr_SetFromErrno(PyExc_OSError);
            return ATTEMPT_ERROR;
        }
        op->pos += n;
    } while (op->pos < op->view.len);
    *result = Py_NewRef(Py_None);
    return ATTEMPT_DONE;
}

static int
method_result(PyObject *res, PyObject **result)
{
    if (res == NULL) {
        return method_would_block() ? ATTEMPT_BLOCKED : ATTEMPT_ERROR;
    }
    *result = res;
    return ATTEMPT_DONE;
}

static int
attempt_recvfrom(SockOpObject *op, PyObject **result)
{
    PyObject *size = PyLong_FromSsize_t(op->size);
    if (size == NULL) {
        return ATTEMPT_ERROR;
    }
    PyObject *res = PyObject_CallMethodOneArg(op->sock, str_recvfrom, size);
    Py_DECREF(size);
    return method_result(res, result);
}

static int
attempt_recvfrom_into(SockOpObject *op, PyObject **result)
{
    PyObject *args[3] = {op->sock, op->arg, NULL};
    args[2] = PyLong_FromSsize_t(op->size);
    if (args[2] == NULL) {
        return ATTEMPT_ERROR;
    }
    PyObject *res = PyObject_VectorcallMethod(
        str_recvfrom_into, args, 3 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
    Py_DECREF(args[2]);
    return method_result(res, result);
}

static int
attempt_sendto(SockOpObject *op, PyObject **result)
{
    PyObject *args[3] = {op->sock, op->view.obj, op->arg};
    PyObject *res = PyObject_VectorcallMethod(
        str_sendto, args, 3 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
    return method_result(res, result);
}

static int
attempt_accept(SockOpObject *op, PyObject **result)
{
    PyObject *res = PyObject_CallMethodNoArgs(op->sock, str_accept);
    int rc = method_result(res, result);
    if (rc != ATTEMPT_DONE) {
        return rc;
    }
    if (!PyTuple_Check(res) || PyTuple_GET_SIZE(res) != 2) {
        return ATTEMPT_DONE;
    }
    PyObject *ok = PyObject_CallMethodOneArg(PyTuple_GET_ITEM(res, 0),
                                             str_setblocking, Py_False);
    if (ok == NULL) {
        Py_CLEAR(*result);
        return ATTEMPT_ERROR;
    }
    Py_DECREF(ok);
    return ATTEMPT_DONE;
}

/* First attempt of connect(): the socket method, which parses the
   address; later ones read the outcome with SO_ERROR. */
static int
attempt_connect(SockOpObject *op, PyObject **result)
{
    if (op->fut == NULL) {
        PyObject *res = PyObject_CallMethodOneArg(op->sock, str_connect,
                                                  op->arg);
        return method_result(res, result);
    }
    int err = 0;
    socklen_t len = sizeof(err);
    if (getsockopt(op->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) {
        if (errno_would_block()) {
            return ATTEMPT_BLOCKED;
        }
        PyErr_SetFromErrno(PyExc_OSError);
        return ATTEMPT_ERROR;
    }
    if (err == EINPROGRESS || err == EALREADY) {
        return ATTEMPT_BLOCKED;
    }
    if (err != 0) {
        PyObject *exc = PyObject_CallFunction(
            PyExc_OSError, "iN", err,
            PyUnicode_FromFormat("Connect call failed %R", op->arg));
        if (exc != NULL) {
            PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
            Py_DECREF(exc);
        }
        return ATTEMPT_ERROR;
    }
    *result = Py_NewRef(Py_None);
    return ATTEMPT_DONE;
}

static int
attempt(SockOpObject *op, PyObject **result)
{
    switch (op->kind) {
    case OP_RECV:
        return attempt_recv(op, result);
    case OP_RECV_INTO:
        return attempt_recv_into(op, result);
    case OP_RECVFROM:
        return attempt_recvfrom(op, result);
    case OP_RECVFROM_INTO:
        return attempt_recvfrom_into(op, result);
    case OP_SENDALL:
        return attempt_sendall(op, result);
    case OP_SENDTO:
        return attempt_sendto(op, result);
    case OP_CONNECT:
        return attempt_connect(op, result);
    case OP_ACCEPT:
        return attempt_accept(op, result);
    }
    PyErr_SetString(PyExc_SystemError, "unknown socket operation");
    return ATTEMPT_ERROR;
}

static int
op_waits_for_write(SockOpObject *op)
{
    return op->kind == OP_SENDALL || op->kind == OP_SENDTO
           || op->kind == OP_CONNECT;
}

/* ---- the SockOp object -------------------------------------------------- */

/* Unregisters the watcher unless someone replaced it meanwhile (then the
   handle is cancelled and the watcher is theirs), and lets go of the
   buffer. */
static int
op_finish(SockOpObject *op)
{
    int rc = 0;
    if (op->handle != NULL) {
        if (!op->handle->cancelled) {
            rc = poll_unwatch(op->loop, op_waits_for_write(op), op->fd);
        }
        Py_CLEAR(op->handle);
    }
    if (op->has_view) {
        op->has_view = 0;
        PyBuffer_Release(&op->view);
    }
    return rc < 0 ? -1 : 0;
}

static int
fut_is_done(PyObject *fut)
{
    PyObject *res = PyObject_CallMethodNoArgs(fut, str_done);
    if (res == NULL) {
        return -1;
    }
    int done = PyObject_IsTrue(res);
    Py_DECREF(res);
    return done;
}

static int
fut_settle(PyObject *fut, PyObject *name, PyObject *value)
{
    PyObject *res = PyObject_CallMethodOneArg(fut, name, value);
    Py_XDECREF(res);
    return res == NULL ? -1 : 0;
}

/* The watcher fired: try again; settle the future unless it blocks. */
static PyObject *
op_ready(SockOpObject *op, PyObject *const *Py_UNUSED(args),
         size_t Py_UNUSED(nargsf), PyObject *Py_UNUSED(kwnames))
{
    if (op->fut == NULL) {
        Py_RETURN_NONE;
    }
    int done = fut_is_done(op->fut);
    if (done != 0) {
        /* Cancelled: the coroutine's close() unregisters. */
        return done < 0 ? NULL : Py_NewRef(Py_None);
    }
    if (op->kind == OP_RECV || op->kind == OP_RECV_INTO
        || op->kind == OP_SENDALL || op->kind == OP_CONNECT) {
        /* These retries use the descriptor directly: the socket may have
           been closed, or its number given to another file, since. */
        int fd = sock_fileno(op->sock);
        if (fd == -2) {
            return NULL;
        }
        if (fd != op->fd) {
            errno = EBADF;
            PyErr_SetFromErrno(PyExc_OSError);
            goto failed;
        }
    }
    PyObject *result = NULL;
    int rc = attempt(op, &result);
    if (rc == ATTEMPT_BLOCKED) {
        Py_RETURN_NONE;
    }
    if (rc == ATTEMPT_DONE) {
        int ok = op_finish(op) == 0
                 && fut_settle(op->fut, str_set_result, result) == 0;
        Py_DECREF(result);
        return ok ? Py_NewRef(Py_None) : NULL;
    }
failed:
    if (PyErr_ExceptionMatches(PyExc_KeyboardInterrupt)
        || PyErr_ExceptionMatches(PyExc_SystemExit)) {
        return NULL;
    }
    PyObject *exc = err_fetch();
    int ok = op_finish(op) == 0
             && fut_settle(op->fut, str_set_exception, exc) == 0;
    Py_DECREF(exc);
    return ok ? Py_NewRef(Py_None) : NULL;
}

static SockOpObject *
op_new(LoopObject *loop, PyObject *sock, SockOpKind kind)
{
    if (check_ssl_socket(sock) < 0 || check_nonblocking(loop, sock) < 0) {
        return NULL;
    }
    int fd = sock_fileno(sock);
    if (fd == -2 || (fd == -1 && PyErr_Occurred())) {
        return NULL;
    }
    SockOpObject *op = PyObject_GC_New(SockOpObject, &SockOp_Type);
    if (op == NULL) {
        return NULL;
    }
    op->vectorcall = (vectorcallfunc)op_ready;
    op->loop = (LoopObject *)Py_NewRef(loop);
    op->sock = Py_NewRef(sock);
    op->fut = NULL;
    op->handle = NULL;
    op->arg = NULL;
    op->has_view = 0;
    op->kind = kind;
    op->fd = fd;
    op->size = 0;
    op->pos = 0;
    PyObject_GC_Track(op);
    return op;
}

/* Tries the operation; returns its result, or the op itself, registered
   and with a future to await, when it has to wait. Steals op. */
static PyObject *
op_start(SockOpObject *op)
{
    PyObject *result = NULL;
    int rc = attempt(op, &result);
    if (rc == ATTEMPT_DONE || rc == ATTEMPT_ERROR) {
        Py_DECREF(op);
        return result;
    }
    LoopObject *loop = op->loop;
    if (op->fd < 0) {
        /* Only a closed socket has no descriptor, and its methods raise
           before they could block. */
        errno = EBADF;
        PyErr_SetFromErrno(PyExc_OSError);
        goto error;
    }
    if (poll_check_no_transport(loop, op->fd) < 0) {
        goto error;
    }
    op->fut = loop_new_future(loop);
    if (op->fut == NULL) {
        goto error;
    }
    op->handle = poll_watch(loop, op_waits_for_write(op), op->fd,
                            (PyObject *)op, asyncloop_state.empty_tuple);
    if (op->handle == NULL) {
        goto error;
    }
    return (PyObject *)op;
error:
    op_finish(op);
    Py_DECREF(op);
    return NULL;
}

static int
op_traverse(SockOpObject *op, visitproc visit, void *arg)
{
    Py_VISIT(op->loop);
    Py_VISIT(op->sock);
    Py_VISIT(op->fut);
    Py_VISIT(op->handle);
    Py_VISIT(op->arg);
    if (op->has_view) {
        Py_VISIT(op->view.obj);
    }
    return 0;
}

static int
op_clear(SockOpObject *op)
{
    if (op->has_view) {
        op->has_view = 0;
        PyBuffer_Release(&op->view);
    }
    Py_CLEAR(op->handle);
    Py_CLEAR(op->fut);
    Py_CLEAR(op->arg);
    Py_CLEAR(op->sock);
    Py_CLEAR(op->loop);
    return 0;
}

static void
op_dealloc(SockOpObject *op)
{
    PyObject_GC_UnTrack(op);
    op_clear(op);
    PyObject_GC_Del(op);
}

static PyObject *
op_await(SockOpObject *op)
{
    if (op->fut == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "socket operation is not waiting");
        return NULL;
    }
    unaryfunc am_await = Py_TYPE(op->fut)->tp_as_async
                         ? Py_TYPE(op->fut)->tp_as_async->am_await : NULL;
    if (am_await == NULL) {
        return PyObject_CallMethod(op->fut, "__await__", NULL);
    }
    return am_await(op->fut);
}

static PyObject *
op_close(SockOpObject *op, PyObject *Py_UNUSED(ignored))
{
    if (op_finish(op) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyMethodDef op_methods[] = {
    {"close", (PyCFunction)op_close, METH_NOARGS,
     "Unregister the watcher if still there; release the buffer."},
    {NULL, NULL, 0, NULL}
};

static PyAsyncMethods op_as_async = {
    .am_await = (unaryfunc)op_await,
};

static PyTypeObject SockOp_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "asyncloop._loop.SockOp",
    .tp_basicsize = sizeof(SockOpObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC
                | Py_TPFLAGS_HAVE_VECTORCALL
                | Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .tp_doc = "A socket operation waiting for its descriptor.",
    .tp_vectorcall_offset = offsetof(SockOpObject, vectorcall),
    .tp_call = PyVectorcall_Call,
    .tp_as_async = &op_as_async,
    .tp_traverse = (traverseproc)op_traverse,
    .tp_clear = (inquiry)op_clear,
    .tp_dealloc = (destructor)op_dealloc,
    .tp_methods = op_methods,
};

/* ---- Loop methods ------------------------------------------------------- */

static int
check_nargs(const char *name, Py_ssize_t nargs, Py_ssize_t min,
            Py_ssize_t max)
{
    if (nargs < min || nargs > max) {
        PyErr_Format(PyExc_TypeError, "%s() takes from %zd to %zd "
                     "arguments (%zd given)", name, min, max, nargs);
        return -1;
    }
    return 0;
}

static PyObject *
loop_sock_recv(LoopObject *loop, PyObject *const *args, Py_ssize_t nargs)
{
    if (check_nargs("sock_recv", nargs, 2, 2) < 0) {
        return NULL;
    }
    Py_ssize_t size = PyNumber_AsSsize_t(args[1], PyExc_OverflowError);
    if (size == -1 && PyErr_Occurred()) {
        return NULL;
    }
    SockOpObject *op = op_new(loop, args[0], OP_RECV);
    if (op == NULL) {
        return NULL;
    }
    if (size < 0) {
        Py_DECREF(op);
        PyErr_SetString(PyExc_ValueError, "negative buffersize in recv");
        return NULL;
    }
    op->size = size;
    return op_start(op);
}

static PyObject *
loop_sock_recv_into(LoopObject *loop, PyObject *const *args,
                    Py_ssize_t nargs)
{
    if (check_nargs("sock_recv_into", nargs, 2, 2) < 0) {
        return NULL;
    }
    SockOpObject *op = op_new(loop, args[0], OP_RECV_INTO);
    if (op == NULL) {
        return NULL;
    }
    if (PyObject_GetBuffer(args[1], &op->view, PyBUF_WRITABLE) < 0) {
        /* The socket module's TypeError, rather than a BufferError. */
        PyErr_Clear();
        PyErr_Format(PyExc_TypeError, "recv_into() argument 'buffer' must "
                     "be read-write bytes-like object, not %.200s",
                     Py_TYPE(args[1])->tp_name);
        Py_DECREF(op);
        return NULL;
    }
    op->has_view = 1;
    return op_start(op);
}

static PyObject *
loop_sock_recvfrom(LoopObject *loop, PyObject *const *args,
                   Py_ssize_t nargs)
{
    if (check_nargs("sock_recvfrom", nargs, 2, 2) < 0) {
        return NULL;
    }
    Py_ssize_t size = PyNumber_AsSsize_t(args[1], PyExc_OverflowError);
    if (size == -1 && PyErr_Occurred()) {
        return NULL;
    }
    SockOpObject *op = op_new(loop, args[0], OP_RECVFROM);
    if (op == NULL) {
        return NULL;
    }
    op->size = size;
    return op_start(op);
}

static PyObject *
loop_sock_recvfrom_into(LoopObject *loop, PyObject *const *args,
                        Py_ssize_t nargs)
{
    if (check_nargs("sock_recvfrom_into", nargs, 2, 3) < 0) {
        return NULL;
    }
    Py_ssize_t nbytes = 0;
    if (nargs == 3) {
        nbytes = PyNumber_AsSsize_t(args[2], PyExc_OverflowError);
        if (nbytes == -1 && PyErr_Occurred()) {
            return NULL;
        }
    }
    SockOpObject *op = op_new(loop, args[0], OP_RECVFROM_INTO);
    if (op == NULL) {
        return NULL;
    }
    if (nbytes == 0) {
        /* As asyncio: 0 means the whole buffer. */
        nbytes = PyObject_Length(args[1]);
        if (nbytes < 0) {
            Py_DECREF(op);
            return NULL;
        }
    }
    op->arg = Py_NewRef(args[1]);
    op->size = nbytes;
    return op_start(op);
}

static PyObject *
loop_sock_sendall(LoopObject *loop, PyObject *const *args, Py_ssize_t nargs)
{
    if (check_nargs("sock_sendall", nargs, 2, 2) < 0) {
        return NULL;
    }
    SockOpObject *op = op_new(loop, args[0], OP_SENDALL);
    if (op == NULL) {
        return NULL;
    }
    if (PyObject_GetBuffer(args[1], &op->view, PyBUF_SIMPLE) < 0) {
        Py_DECREF(op);
        return NULL;
    }
    op->has_view = 1;
    return op_start(op);
}

static PyObject *
loop_sock_sendto(LoopObject *loop, PyObject *const *args, Py_ssize_t nargs)
{
    if (check_nargs("sock_sendto", nargs, 3, 3) < 0) {
        return NULL;
    }
    SockOpObject *op = op_new(loop, args[0], OP_SENDTO);
    if (op == NULL) {
        return NULL;
    }
    /* Kept as a view so that the data cannot change size meanwhile; the
       socket method is given the original object. */
    if (PyObject_GetBuffer(args[1], &op->view, PyBUF_SIMPLE) < 0) {
        Py_DECREF(op);
        return NULL;
    }
    op->has_view = 1;
    op->arg = Py_NewRef(args[2]);
    return op_start(op);
}

static PyObject *
loop_sock_connect(LoopObject *loop, PyObject *const *args, Py_ssize_t nargs)
{
    if (check_nargs("sock_connect", nargs, 2, 2) < 0) {
        return NULL;
    }
    SockOpObject *op = op_new(loop, args[0], OP_CONNECT);
    if (op == NULL) {
        return NULL;
    }
    op->arg = Py_NewRef(args[1]);
    return op_start(op);
}

static PyObject *
loop_sock_accept(LoopObject *loop, PyObject *sock)
{
    SockOpObject *op = op_new(loop, sock, OP_ACCEPT);
    return op == NULL ? NULL : op_start(op);
}

static PyObject *
loop_sock_check(LoopObject *loop, PyObject *sock)
{
    if (check_ssl_socket(sock) < 0 || check_nonblocking(loop, sock) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

#define FASTCALL(f) (PyCFunction)(void (*)(void))(f), METH_FASTCALL

static PyMethodDef sock_methods[] = {
    {"_sock_recv", FASTCALL(loop_sock_recv),
     "recv() now, or a SockOp to await."},
    {"_sock_recv_into", FASTCALL(loop_sock_recv_into),
     "recv_into() now, or a SockOp to await."},
    {"_sock_recvfrom", FASTCALL(loop_sock_recvfrom),
     "recvfrom() now, or a SockOp to await."},
    {"_sock_recvfrom_into", FASTCALL(loop_sock_recvfrom_into),
     "recvfrom_into() now, or a SockOp to await."},
    {"_sock_sendall", FASTCALL(loop_sock_sendall),
     "Send all now (None), or a SockOp to await."},
    {"_sock_sendto", FASTCALL(loop_sock_sendto),
     "sendto() now, or a SockOp to await."},
    {"_sock_connect", FASTCALL(loop_sock_connect),
     "connect() now (None), or a SockOp to await."},
    {"_sock_accept", (PyCFunction)loop_sock_accept, METH_O,
     "accept() now, or a SockOp to await."},
    {"_sock_check", (PyCFunction)loop_sock_check, METH_O,
     "asyncio's checks of a socket given to sock_*()."},
    {NULL, NULL, 0, NULL}
};

static int
intern_names(void)
{
    struct { PyObject **slot; const char *text; } names[] = {
        {&str_fileno, "fileno"}, {&str_gettimeout, "gettimeout"},
        {&str_recvfrom, "recvfrom"}, {&str_recvfrom_into, "recvfrom_into"},
        {&str_sendto, "sendto"}, {&str_connect, "connect"},
        {&str_accept, "accept"}, {&str_setblocking, "setblocking"},
        {&str_done, "done"}, {&str_set_result, "set_result"},
        {&str_set_exception, "set_exception"},
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        *names[i].slot = PyUnicode_InternFromString(names[i].text);
        if (*names[i].slot == NULL) {
            return -1;
        }
    }
    return 0;
}

int
sock_init(PyObject *module)
{
    if (intern_names() < 0 || PyType_Ready(&SockOp_Type) < 0) {
        return -1;
    }
    Py_INCREF(&SockOp_Type);
    if (PyModule_AddObject(module, "SockOp", (PyObject *)&SockOp_Type) < 0) {
        Py_DECREF(&SockOp_Type);
        return -1;
    }
    return loop_add_methods(sock_methods);
}
