/* Listening sockets: asyncloop._loop.Listener accepts connections on one
   bound socket of a server and gives each a SocketTransport and a protocol,
   all in C. The asyncio Server object around the listeners is Python
   (asyncloop/_streams.py): it runs once per server, not per connection.

   The listener watches a duplicate of the Python socket's descriptor (the
   Server keeps the Python socket for Server.sockets and closes it itself),
   so each descriptor has exactly one owner.

   Accepting is done here rather than by uv_listen(): when accept() fails
   for lack of descriptors, asyncio reports it, stops accepting for a
   second and leaves the waiting connections in the backlog, where libuv
   would drop them; this does the same. */
#include "asyncloop.h"
#include <errno.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

typedef struct {
    PyObject_HEAD
    Resource res;
    LoopObject *loop;
    uv_poll_t poll;              /* readability of the listening socket */
    int fd;                      /* our duplicate of the socket's descriptor */
    int open_handles;            /* each holds a reference to the object */
    PyObject *resume;            /* bound _resume_accepting, for call_later */
    PyObject *protocol_factory;
    PyObject *server;
    PyObject *sock;              /* the Python listening socket */
    PyObject *context;           /* copied at listen(), as asyncio's reader
                                    of the socket is added then: the
                                    factory and each connection's protocol
                                    run in copies of it */
    int backlog;
    char is_tcp;
    char nodelay;
    char uv_open;
    char listening;
    char listened;               /* listen() done on the socket */
} ListenerObject;

static PyTypeObject Listener_Type;

#define LISTENER_FROM_RES(r) \
    ((ListenerObject *)((char *)(r) - offsetof(ListenerObject, res)))

static void
listener_close_cb(uv_handle_t *handle)
{
    ListenerObject *ls = (ListenerObject *)handle->data;
    if (--ls->open_handles == 0) {
        loop_unlink_resource(&ls->res);
    }
    Py_DECREF(ls);
}

static void
listener_close_handle(ListenerObject *ls)
{
    if (!ls->uv_open) {
        return;
    }
    ls->uv_open = 0;
    ls->listening = 0;
    /* libuv closes nothing it was only asked to poll: the descriptor is
       ours to close, once. */
    uv_close((uv_handle_t *)&ls->poll, listener_close_cb);
    if (ls->fd >= 0) {
        close(ls->fd);
        ls->fd = -1;
    }
}

static void
listener_resource_close(Resource *res)
{
    listener_close_handle(LISTENER_FROM_RES(res));
}

/* Passes context to loop.call_exception_handler(); a KeyboardInterrupt or
   SystemExit stops the loop. */
static void
listener_report(ListenerObject *ls, PyObject *context)
{
    PyObject *res = PyObject_CallMethodOneArg(
        (PyObject *)ls->loop, asyncloop_state.str_call_exception_handler,
        context);
    if (res == NULL) {
        if (PyErr_ExceptionMatches(PyExc_KeyboardInterrupt)
            || PyErr_ExceptionMatches(PyExc_SystemExit)) {
            loop_set_pending_error(ls->loop);
        }
        else {
            PyErr_WriteUnraisable((PyObject *)ls);
        }
    }
    Py_XDECREF(res);
}

/* asyncio's message for an accept() that failed for lack of resources
   (EMFILE and friends); libuv keeps the server alive by accepting and
   dropping the waiting connection, and accepting resumes by itself. */
static void
report_accept_error(ListenerObject *ls, int status)
{
    error_from_uv(status);
    PyObject *exc = err_fetch();
    PyObject *tsock = NULL;
    PyObject *trsock = PyImport_ImportModule("asyncio.trsock");
    if (trsock != NULL) {
        tsock = PyObject_CallMethod(trsock, "TransportSocket", "O", ls->sock);
        Py_DECREF(trsock);
    }
    if (tsock == NULL) {
        PyErr_Clear();
        tsock = Py_NewRef(Py_None);
    }
    int resource = status == UV_EMFILE || status == UV_ENFILE
                   || status == UV_ENOBUFS || status == UV_ENOMEM;
    PyObject *context = Py_BuildValue(
        "{sssOsO}", "message",
        resource ? "socket.accept() out of system resource"
                 : "Error accepting a connection",
        "exception", exc, "socket", tsock);
    if (context != NULL) {
        listener_report(ls, context);
        Py_DECREF(context);
    }
    else {
        PyErr_WriteUnraisable((PyObject *)ls);
    }
    Py_DECREF(exc);
    Py_DECREF(tsock);
}

static void
report_creation_error(ListenerObject *ls, PyObject *protocol)
{
    PyObject *exc = err_fetch();
    PyObject *context = Py_BuildValue(
        "{sssO}", "message",
        "Error on transport creation for incoming connection",
        "exception", exc);
    if (context != NULL && protocol != NULL) {
        if (PyDict_SetItemString(context, "protocol", protocol) < 0) {
            Py_CLEAR(context);
        }
    }
    if (context != NULL) {
        listener_report(ls, context);
        Py_DECREF(context);
    }
    else {
        PyErr_WriteUnraisable((PyObject *)ls);
    }
    Py_DECREF(exc);
}

static void
accept_fd(ListenerObject *ls, int fd)
{
    TransportObject *tr = transport_alloc(ls->loop, ls->is_tcp);
    if (tr == NULL) {
        close(fd);
        report_creation_error(ls, NULL);
        return;
    }
    int err = ls->is_tcp ? uv_tcp_open(&tr->uv.tcp, fd)
                         : uv_pipe_open(&tr->uv.pipe, fd);
    if (err < 0) {
        close(fd);
        error_from_uv(err);
        report_creation_error(ls, NULL);
        transport_discard(tr);
        return;
    }
    PyObject *protocol = PyObject_CallNoArgs(ls->protocol_factory);
    if (protocol == NULL
        || transport_start_accepted(tr, protocol, ls->server,
                                    ls->nodelay) < 0) {
        if (PyErr_ExceptionMatches(PyExc_KeyboardInterrupt)
            || PyErr_ExceptionMatches(PyExc_SystemExit)) {
            loop_set_pending_error(ls->loop);
        }
        else if (ls->loop->debug) {
            /* asyncio reports this in debug mode only. */
            report_creation_error(ls, protocol);
        }
        else {
            PyErr_Clear();
        }
        Py_XDECREF(protocol);
        transport_discard(tr);
        return;
    }
    Py_DECREF(protocol);
    Py_DECREF(tr);
}

static void poll_cb(uv_poll_t *handle, int status, int events);

/* Returns 0 to go on accepting, -1 to stop for this round. */
static int
accept_failed(ListenerObject *ls, int err)
{
    if (err == EAGAIN || err == EWOULDBLOCK || err == EINTR
        || err == ECONNABORTED) {
        return -1;
    }
    if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
        report_accept_error(ls, -err);
        /* asyncio's ACCEPT_RETRY_DELAY: one second, on the loop's timer
           heap (call_later), as asyncio does it. */
        uv_poll_stop(&ls->poll);
        PyObject *h = PyObject_CallMethod((PyObject *)ls->loop, "call_later",
                                          "dO", 1.0, ls->resume);
        if (h == NULL) {
            PyErr_WriteUnraisable((PyObject *)ls);
        }
        Py_XDECREF(h);
        return -1;
    }
    report_accept_error(ls, -err);
    return -1;
}

static void
poll_cb(uv_poll_t *handle, int status, int Py_UNUSED(events))
{
    ListenerObject *ls = (ListenerObject *)handle->data;
    if (!ls->listening || ls->context == NULL) {
        return;
    }
    Py_INCREF(ls);
    if (PyContext_Enter(ls->context) < 0) {
        PyErr_WriteUnraisable((PyObject *)ls);
        Py_DECREF(ls);
        return;
    }
    if (status < 0) {
        report_accept_error(ls, status);
    }
    /* As asyncio: at most backlog connections per wake-up, so that one
       busy server cannot starve the rest of the loop. */
    for (int i = 0; i < ls->backlog && ls->listening && status == 0; i++) {
        int fd = accept4(ls->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (accept_failed(ls, errno) < 0) {
                break;
            }
            continue;
        }
        accept_fd(ls, fd);
    }
    if (PyContext_Exit(ls->context) < 0) {
        PyErr_WriteUnraisable((PyObject *)ls);
    }
    Py_DECREF(ls);
}

/* ---- Python methods ----------------------------------------------------- */

static PyObject *
listener_listen(ListenerObject *ls, PyObject *Py_UNUSED(ignored))
{
    if (!ls->uv_open) {
        PyErr_SetString(PyExc_RuntimeError, "the listener is closed");
        return NULL;
    }
    if (ls->listening) {
        Py_RETURN_NONE;
    }
    if (!ls->listened) {
        if (listen(ls->fd, ls->backlog) < 0) {
            return PyErr_SetFromErrno(PyExc_OSError);
        }
        ls->listened = 1;
    }
    PyObject *context = PyContext_CopyCurrent();
    if (context == NULL) {
        return NULL;
    }
    Py_XSETREF(ls->context, context);
    int err = uv_poll_start(&ls->poll, UV_READABLE, poll_cb);
    if (err < 0) {
        return error_from_uv(err);
    }
    ls->listening = 1;
    Py_RETURN_NONE;
}

static PyObject *
listener_resume(ListenerObject *ls, PyObject *Py_UNUSED(ignored))
{
    if (ls->listening) {
        int err = uv_poll_start(&ls->poll, UV_READABLE, poll_cb);
        if (err < 0) {
            return error_from_uv(err);
        }
    }
    Py_RETURN_NONE;
}

static PyObject *
listener_close(ListenerObject *ls, PyObject *Py_UNUSED(ignored))
{
    listener_close_handle(ls);
    Py_RETURN_NONE;
}

static PyObject *
listener_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"loop", "sock", "protocol_factory", "server",
                             "backlog", NULL};
    PyObject *loop, *sock, *factory, *server;
    int backlog = 100;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O!OOO|i:Listener", kwlist,
                                     &Loop_Type, &loop, &sock, &factory,
                                     &server, &backlog)) {
        return NULL;
    }
    if (loop_check_closed((LoopObject *)loop) < 0) {
        return NULL;
    }
    PyObject *fileno = PyObject_CallMethod(sock, "fileno", NULL);
    if (fileno == NULL) {
        return NULL;
    }
    long fd = PyLong_AsLong(fileno);
    Py_DECREF(fileno);
    if (fd < 0) {
        if (!PyErr_Occurred()) {
            PyErr_SetString(PyExc_ValueError, "the socket is closed");
        }
        return NULL;
    }
    int family, proto = 0;
    socklen_t len = sizeof(family);
    if (getsockopt((int)fd, SOL_SOCKET, SO_DOMAIN, &family, &len) < 0) {
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    len = sizeof(proto);
    if (getsockopt((int)fd, SOL_SOCKET, SO_PROTOCOL, &proto, &len) < 0) {
        proto = 0;
    }
    int dupfd = fcntl((int)fd, F_DUPFD_CLOEXEC, 0);
    if (dupfd < 0) {
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    ListenerObject *ls = (ListenerObject *)type->tp_alloc(type, 0);
    if (ls == NULL) {
        close(dupfd);
        return NULL;
    }
    LoopObject *lp = (LoopObject *)loop;
    ls->loop = (LoopObject *)Py_NewRef(loop);
    ls->protocol_factory = Py_NewRef(factory);
    ls->server = Py_NewRef(server);
    ls->sock = Py_NewRef(sock);
    ls->backlog = backlog;
    ls->is_tcp = family == AF_INET || family == AF_INET6;
    ls->nodelay = ls->is_tcp && proto == IPPROTO_TCP;
    ls->res.close = listener_resource_close;
    ls->res.owner = (PyObject *)ls;
    ls->fd = dupfd;
    int err = uv_poll_init(&lp->uv, &ls->poll, dupfd);
    if (err < 0) {
        close(dupfd);
        ls->fd = -1;
        Py_DECREF(ls);
        return error_from_uv(err);
    }
    ls->poll.data = ls;
    ls->uv_open = 1;
    ls->open_handles = 1;
    Py_INCREF(ls);              /* owned by the open handle */
    ls->resume = PyObject_GetAttrString((PyObject *)ls, "_resume_accepting");
    if (ls->resume == NULL) {
        listener_close_handle(ls);
        Py_DECREF(ls);
        return NULL;
    }
    loop_link_resource(lp, &ls->res);
    return (PyObject *)ls;
}

static int
listener_traverse(ListenerObject *ls, visitproc visit, void *arg)
{
    Py_VISIT(ls->loop);
    Py_VISIT(ls->protocol_factory);
    Py_VISIT(ls->server);
    Py_VISIT(ls->sock);
    Py_VISIT(ls->resume);
    Py_VISIT(ls->context);
    return 0;
}

static int
listener_clear(ListenerObject *ls)
{
    Py_CLEAR(ls->protocol_factory);
    Py_CLEAR(ls->server);
    Py_CLEAR(ls->sock);
    Py_CLEAR(ls->resume);
    Py_CLEAR(ls->context);
    return 0;
}

static void
listener_dealloc(ListenerObject *ls)
{
    PyObject_GC_UnTrack(ls);
    listener_clear(ls);
    Py_CLEAR(ls->loop);
    Py_TYPE(ls)->tp_free((PyObject *)ls);
}

static PyMethodDef listener_methods[] = {
    {"listen", (PyCFunction)listener_listen, METH_NOARGS,
     "Start accepting connections."},
    {"_resume_accepting", (PyCFunction)listener_resume, METH_NOARGS,
     "Accept again after a lack of descriptors."},
    {"close", (PyCFunction)listener_close, METH_NOARGS,
     "Stop accepting and close the listener's descriptor."},
    {NULL, NULL, 0, NULL}
};

static PyTypeObject Listener_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "asyncloop._loop.Listener",
    .tp_basicsize = sizeof(ListenerObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "Accepts connections of one listening socket of a server.",
    .tp_new = listener_new,
    .tp_dealloc = (destructor)listener_dealloc,
    .tp_traverse = (traverseproc)listener_traverse,
    .tp_clear = (inquiry)listener_clear,
    .tp_methods = listener_methods,
};

int
server_init(PyObject *module)
{
    if (PyType_Ready(&Listener_Type) < 0) {
        return -1;
    }
    Py_INCREF(&Listener_Type);
    if (PyModule_AddObject(module, "Listener",
                           (PyObject *)&Listener_Type) < 0) {
        Py_DECREF(&Listener_Type);
        return -1;
    }
    return 0;
}
