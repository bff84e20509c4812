/* Pipe transports: connect_read_pipe and connect_write_pipe on pipes,
   FIFOs, character devices (PTYs) and sockets, as asyncio's
   _UnixReadPipeTransport and _UnixWritePipeTransport. They are the stream
   transport of stream.c with a pipe kind, which selects asyncio's pipe
   semantics there (EOF, close, errors, messages); here are the constructor
   and the watch of a write pipe's reader. */
#include "asyncloop.h"
#include <errno.h>
#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <unistd.h>

/* libuv abort()s when epoll refuses a descriptor (a regular file, or a
   character device such as /dev/null): find out first, and raise the
   OSError instead. */
static int
check_pollable(int fd)
{
    struct stat st;
    if (fstat(fd, &st) < 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    if (!S_ISFIFO(st.st_mode) && !S_ISSOCK(st.st_mode)
        && !S_ISCHR(st.st_mode)) {
        PyErr_SetString(PyExc_ValueError,
                        "Pipe transport is only for pipes, sockets and "
                        "character devices");
        return -1;
    }
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    struct epoll_event ev = {.events = EPOLLIN};
    int rc = epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    int err = errno;
    close(ep);
    if (rc < 0) {
        errno = err;
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    return 0;
}

/* _make_pipe_transport(loop, pipe, protocol, waiter, extra, write): a
   read or write pipe transport (asyncio's _UnixReadPipeTransport and
   _UnixWritePipeTransport) on the pipe, FIFO, socket or character device
   `pipe`, a Python file object the transport owns and closes at the end;
   libuv works on a duplicate of its descriptor, as for sockets. */
static PyObject *
make_pipe_transport(PyObject *Py_UNUSED(module), PyObject *args)
{
    PyObject *loop, *pipe, *protocol, *waiter, *extra;
    int write;
    if (!PyArg_ParseTuple(args, "O!OOOOp:_make_pipe_transport", &Loop_Type,
                          &loop, &pipe, &protocol, &waiter, &extra, &write)) {
        return NULL;
    }
    if (loop_check_closed((LoopObject *)loop) < 0) {
        return NULL;
    }
    int fd = PyObject_AsFileDescriptor(pipe);
    if (fd < 0 || check_pollable(fd) < 0) {
        return NULL;
    }
    int dupfd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (dupfd < 0) {
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    TransportObject *tr = transport_alloc((LoopObject *)loop, 0);
    if (tr == NULL) {
        close(dupfd);
        return NULL;
    }
    tr->kind = write ? TRANSPORT_WRITE_PIPE : TRANSPORT_READ_PIPE;
    int err = uv_pipe_open(&tr->uv.pipe, dupfd);
    if (err < 0) {
        close(dupfd);
        error_from_uv(err);
        transport_discard(tr);
        return NULL;
    }
    tr->sock = Py_NewRef(pipe);
    tr->extra = PyDict_Copy(extra);
    if (tr->extra == NULL
        || transport_setup(tr, protocol, waiter, NULL, 0) < 0) {
        transport_discard(tr);
        return NULL;
    }
    return (PyObject *)tr;
}

/* The reader of a write pipe went away (its end became readable). */
PyObject *
tr_pipe_peer_closed(TransportObject *tr, PyObject *Py_UNUSED(ignored))
{
    transport_log_debug(tr, "was closed by peer");
    PyObject *exc = NULL;
    if (tr->npending > 0 || tr->write_inflight) {
        exc = PyObject_CallNoArgs(PyExc_BrokenPipeError);
        if (exc == NULL) {
            return NULL;
        }
    }
    int rc = transport_pipe_close(tr, exc);
    Py_XDECREF(exc);
    if (rc < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

/* Starts watching the reader end of a write pipe (FIFOs and sockets). */
PyObject *
tr_watch_peer(TransportObject *tr, PyObject *Py_UNUSED(ignored))
{
    if (tr->closing || !tr->uv_open || tr->sock == NULL
        || tr->peer_watch_fd >= 0) {
        Py_RETURN_NONE;
    }
    int fd = PyObject_AsFileDescriptor(tr->sock);
    if (fd < 0) {
        return NULL;
    }
    PyObject *cb = PyObject_GetAttrString((PyObject *)tr, "_pipe_peer_closed");
    if (cb == NULL) {
        return NULL;
    }
    PyObject *res = PyObject_CallMethod((PyObject *)tr->loop, "_add_reader",
                                        "iO", fd, cb);
    Py_DECREF(cb);
    if (res == NULL) {
        return NULL;
    }
    Py_DECREF(res);
    tr->peer_watch_fd = fd;
    Py_RETURN_NONE;
}

static PyMethodDef pipe_functions[] = {
    {"_make_pipe_transport", make_pipe_transport, METH_VARARGS, NULL},
    {NULL, NULL, 0, NULL}
};

int
pipe_init(PyObject *module)
{
    return PyModule_AddFunctions(module, pipe_functions);
}
