/* Socket transports: asyncloop._loop.SocketTransport's constructor, for the
   connected TCP and Unix-domain sockets of create_connection,
   create_unix_connection, connect_accepted_socket and the sock= arguments,
   and the socket addresses of their extra info. Accepted connections are
   made by server.c. The transport itself is stream.c. */
#include "asyncloop.h"
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/* Converts a socket address to what the socket module returns for it. */
PyObject *
sockaddr_to_python(const struct sockaddr *sa, socklen_t len)
{
    if (sa->sa_family == AF_UNIX) {
        const struct sockaddr_un *un = (const struct sockaddr_un *)sa;
        size_t off = offsetof(struct sockaddr_un, sun_path);
        size_t plen = len > off ? len - off : 0;
        if (plen > 0 && un->sun_path[0] == '\0') {
            /* Abstract namespace: the bytes, leading NUL included. */
            return PyBytes_FromStringAndSize(un->sun_path, plen);
        }
        return PyUnicode_DecodeFSDefaultAndSize(
            un->sun_path, strnlen(un->sun_path, plen));
    }
    if (sa->sa_family != AF_INET && sa->sa_family != AF_INET6) {
        Py_RETURN_NONE;
    }
    char host[NI_MAXHOST];
    char serv[NI_MAXSERV];
    int rc = getnameinfo(sa, len, host, sizeof(host), serv, sizeof(serv),
                         NI_NUMERICHOST | NI_NUMERICSERV);
    if (rc != 0) {
        Py_RETURN_NONE;
    }
    int port = atoi(serv);
    if (sa->sa_family == AF_INET) {
        return Py_BuildValue("(si)", host, port);
    }
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
    return Py_BuildValue("(siII)", host, port,
                         (unsigned int)ntohl(in6->sin6_flowinfo),
                         (unsigned int)in6->sin6_scope_id);
}

/* Like asyncio: sock.getsockname() / getpeername(), or None on OSError. */
static PyObject *
socket_name(int fd, int peer)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    memset(&ss, 0, sizeof(ss));
    int rc = peer ? getpeername(fd, (struct sockaddr *)&ss, &len)
                  : getsockname(fd, (struct sockaddr *)&ss, &len);
    if (rc < 0) {
        Py_RETURN_NONE;
    }
    return sockaddr_to_python((struct sockaddr *)&ss, len);
}

/* The sockname and peername extra info, as asyncio gets them at creation
   (None when the call fails). */
int
transport_set_names(TransportObject *tr, int fd)
{
    PyObject *sockname = socket_name(fd, 0);
    if (sockname == NULL
        || PyDict_SetItemString(tr->extra, "sockname", sockname) < 0) {
        Py_XDECREF(sockname);
        return -1;
    }
    Py_DECREF(sockname);
    int has_peer = PyDict_GetItemString(tr->extra, "peername") != NULL;
    if (!has_peer) {
        PyObject *peer = socket_name(fd, 1);
        if (peer == NULL || PyDict_SetItemString(tr->extra, "peername", peer) < 0) {
            Py_XDECREF(peer);
            return -1;
        }
        Py_DECREF(peer);
    }
    return 0;
}

/* SocketTransport(loop, sock, protocol, waiter=None, extra=None,
   server=None): a transport on the connected Python socket sock.

   libuv gets a duplicate of the socket's descriptor, and the Python socket
   stays open and owned by the transport (the 'socket' extra info, as in
   asyncio); both are closed when the transport is: each descriptor by
   exactly one owner, and closing one never leaves a number the other may
   close again after reuse. */
PyObject *
socket_transport_new(PyTypeObject *Py_UNUSED(type), PyObject *args,
                     PyObject *kwds)
{
    static char *kwlist[] = {"loop", "sock", "protocol", "waiter", "extra",
                             "server", NULL};
    PyObject *loop, *sock, *protocol, *waiter = Py_None, *extra = Py_None;
    PyObject *server = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O!OO|OOO:SocketTransport",
                                     kwlist, &Loop_Type, &loop, &sock,
                                     &protocol, &waiter, &extra, &server)) {
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
    if (fd == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (fd < 0) {
        PyErr_SetString(PyExc_ValueError, "the socket is closed");
        return NULL;
    }
    int family, nodelay = 0;
    socklen_t flen = sizeof(family);
    if (getsockopt((int)fd, SOL_SOCKET, SO_DOMAIN, &family, &flen) < 0) {
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    int is_tcp = family == AF_INET || family == AF_INET6;
    if (is_tcp) {
        int proto = 0;
        socklen_t plen = sizeof(proto);
        /* asyncio sets TCP_NODELAY on IPPROTO_TCP sockets only. */
        nodelay = getsockopt((int)fd, SOL_SOCKET, SO_PROTOCOL, &proto,
                             &plen) == 0 && proto == IPPROTO_TCP;
    }
    int dupfd = fcntl((int)fd, F_DUPFD_CLOEXEC, 0);
    if (dupfd < 0) {
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    TransportObject *tr = transport_alloc((LoopObject *)loop, is_tcp);
    if (tr == NULL) {
        close(dupfd);
        return NULL;
    }
    int err = is_tcp ? uv_tcp_open(&tr->uv.tcp, dupfd)
                     : uv_pipe_open(&tr->uv.pipe, dupfd);
    if (err < 0) {
        close(dupfd);
        error_from_uv(err);
        transport_discard(tr);
        return NULL;
    }
    tr->sock = Py_NewRef(sock);
    if (extra != Py_None) {
        tr->extra = PyDict_Copy(extra);
        if (tr->extra == NULL) {
            transport_discard(tr);
            return NULL;
        }
    }
    if (transport_setup(tr, protocol, waiter, server, nodelay) < 0) {
        transport_discard(tr);
        return NULL;
    }
    return (PyObject *)tr;
}

