/* The datagram transport of create_datagram_endpoint: its C core.

   The transport works on the socket's descriptor directly, watched with
   the loop's reader/writer API (poll.c), rather than through a uv_udp_t:
   libuv would own and close the descriptor, while asyncio's transports
   leave it to the socket object, which get_extra_info('socket') exposes
   and which must stay the descriptor's only owner (it is closed exactly
   once, by socket.close(), after connection_lost). Working on the
   descriptor also lets sendto() try the socket at once with one system
   call, and a readable event deliver several datagrams in one go.

   asyncio.DatagramTransport reserves a slot (_extra) that a C type cannot
   share its layout with, so the transport users see is the Python class
   asyncloop._udp.DatagramTransport, which owns one DatagramCore (this type)
   and forwards its methods here. Behaviour follows asyncio's
   _SelectorDatagramTransport of the running interpreter. */
#include "asyncloop.h"
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

/* asyncio's max_size: the largest datagram one read returns. */
#define MAX_DATAGRAM (256 * 1024)
/* Datagrams read per readable event, so that a flood cannot keep the loop
   from its timers and other callbacks. */
#define READS_PER_EVENT 16
/* IPv4 and IPv6 datagrams are read RECV_BATCH at a time with recvmmsg():
   one system call for a burst, and a batch that comes back short tells
   that the socket is drained without asking it again. Their payload is
   at most 65535 bytes. */
#define RECV_BATCH 16
#define RECV_SLOT 65536

/* Where datagrams are received before they are copied into bytes of their
   size. One buffer serves every transport, as it is used with the GIL
   held; but creating the bytes may run a garbage collection, and with it
   finalizers that let another thread take the GIL, so the buffer is
   marked busy meanwhile and a read that finds it busy uses its own. */
static char recv_buffer[MAX_DATAGRAM];
static int recv_buffer_busy;
static char batch_buffer[RECV_BATCH][RECV_SLOT];
static int batch_buffer_busy;

typedef struct {
    PyObject *data;             /* bytes */
    PyObject *addr;             /* the address, or None */
} Datagram;

typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall;  /* the reader: the socket is readable */
    LoopObject *loop;           /* NULL once the connection is lost */
    PyObject *transport;        /* the Python transport, for protocols */
    PyObject *protocol;
    PyObject *sock;
    PyObject *address;          /* the remote address given, or NULL */
    PyObject *writer;           /* bound _write_ready, the writer callback */
    HandleObject *read_handle;
    HandleObject *write_handle;
    Datagram *buffer;           /* ring of datagrams waiting to be sent */
    Py_ssize_t buf_head, buf_len, buf_cap;
    Py_ssize_t buffer_size;
    Py_ssize_t high_water, low_water;
    /* Datagrams read in one batch and not yet delivered, when the
       protocol paused reading, or raised, in the middle of the batch. */
    Datagram received[RECV_BATCH];
    int recv_next, recv_count;
    /* The last address sendto() parsed, and its parsed form. */
    PyObject *last_addr;
    struct sockaddr_storage last_sa;
    socklen_t last_salen;
    int fd;
    int family;
    unsigned long conn_lost;
    char connected;             /* peername known: send(), not sendto() */
    char closing;
    char paused;                /* reading paused */
    char protocol_paused;       /* pause_writing() called */
    char protocol_connected;
    char started;               /* reading may begin */
} CoreObject;

static PyTypeObject Core_Type;

static PyObject *str_datagram_received, *str_error_received,
    *str_connection_lost, *str_pause_writing, *str_resume_writing,
    *str_recvfrom, *str_sendto, *str_close, *str_write_ready,
    *str_call_connection_lost, *str_warning;

/* ---- addresses ----------------------------------------------------------- */

/* Dotted quad of an IPv4 address, as inet_ntop() writes it but without
   its printf machinery, which shows in the profile of a busy endpoint. */
static void
format_ipv4(char *out, const struct in_addr *addr)
{
    const unsigned char *b = (const unsigned char *)&addr->s_addr;
    for (int i = 0; i < 4; i++) {
        unsigned int v = b[i];
        if (v >= 100) {
            *out++ = (char)('0' + v / 100);
        }
        if (v >= 10) {
            *out++ = (char)('0' + v / 10 % 10);
        }
        *out++ = (char)('0' + v % 10);
        *out++ = i < 3 ? '.' : '\0';
    }
}

/* The address as the socket module's recvfrom() returns it; NULL without
   an exception for the families left to the socket object. */
static PyObject *
sockaddr_to_py(const struct sockaddr_storage *ss, socklen_t len)
{
    char host[NI_MAXHOST];
    if (len == 0) {
        Py_RETURN_NONE;
    }
    switch (ss->ss_family) {
    case AF_INET: {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;
        format_ipv4(host, &sin->sin_addr);
        PyObject *h = PyUnicode_FromString(host);
        PyObject *port = h ? PyLong_FromLong(ntohs(sin->sin_port)) : NULL;
        PyObject *pair = port ? PyTuple_New(2) : NULL;
        if (pair == NULL) {
            Py_XDECREF(h);
            Py_XDECREF(port);
            return NULL;
        }
        PyTuple_SET_ITEM(pair, 0, h);
        PyTuple_SET_ITEM(pair, 1, port);
        return pair;
    }
    case AF_INET6: {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)ss;
        /* getnameinfo(), as the socket module, to name the scope. */
        if (getnameinfo((const struct sockaddr *)ss, len, host, sizeof(host),
                        NULL, 0, NI_NUMERICHOST) != 0) {
            return NULL;
        }
        return Py_BuildValue("(siII)", host, ntohs(sin6->sin6_port),
                             (unsigned int)ntohl(sin6->sin6_flowinfo),
                             (unsigned int)sin6->sin6_scope_id);
    }
    case AF_UNIX: {
        const struct sockaddr_un *sun = (const struct sockaddr_un *)ss;
        size_t pathlen = len - offsetof(struct sockaddr_un, sun_path);
        if (len <= offsetof(struct sockaddr_un, sun_path)) {
            pathlen = 0;
        }
        if (pathlen > 0 && sun->sun_path[0] == '\0') {
            /* Linux's abstract namespace: bytes, as the socket module. */
            return PyBytes_FromStringAndSize(sun->sun_path,
                                             (Py_ssize_t)pathlen);
        }
        return PyUnicode_DecodeFSDefaultAndSize(
            sun->sun_path, (Py_ssize_t)strnlen(sun->sun_path, pathlen));
    }
    }
    return NULL;
}

/* Parses a numeric IPv4/IPv6 address tuple. 1 done, 0 when the socket
   object has to do it (host names, scope names, other families, bad
   input: it raises what the socket module raises). */
static int
py_to_sockaddr(int family, PyObject *addr, struct sockaddr_storage *ss,
               socklen_t *len)
{
    if (!PyTuple_Check(addr) || PyTuple_GET_SIZE(addr) < 2
        || !PyUnicode_Check(PyTuple_GET_ITEM(addr, 0))
        || !PyLong_CheckExact(PyTuple_GET_ITEM(addr, 1))) {
        return 0;
    }
    const char *host = PyUnicode_AsUTF8(PyTuple_GET_ITEM(addr, 0));
    long port = PyLong_AsLong(PyTuple_GET_ITEM(addr, 1));
    if (host == NULL || port < 0 || port > 65535) {
        PyErr_Clear();
        return 0;
    }
    memset(ss, 0, sizeof(*ss));
    if (family == AF_INET && PyTuple_GET_SIZE(addr) == 2) {
        struct sockaddr_in *sin = (struct sockaddr_in *)ss;
        if (inet_pton(AF_INET, host, &sin->sin_addr) != 1) {
            return 0;
        }
        sin->sin_family = AF_INET;
        sin->sin_port = htons((uint16_t)port);
        *len = sizeof(*sin);
        return 1;
    }
    if (family == AF_INET6 && PyTuple_GET_SIZE(addr) <= 4) {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
        unsigned long extra[2] = {0, 0};     /* flowinfo, scope_id */
        for (Py_ssize_t i = 2; i < PyTuple_GET_SIZE(addr); i++) {
            PyObject *item = PyTuple_GET_ITEM(addr, i);
            if (!PyLong_CheckExact(item)) {
                return 0;
            }
            extra[i - 2] = PyLong_AsUnsignedLong(item);
            if (PyErr_Occurred() || extra[i - 2] > 0xffffffffUL
                || (i == 2 && extra[i - 2] > 0xfffffUL)) {
                PyErr_Clear();
                return 0;
            }
        }
        if (inet_pton(AF_INET6, host, &sin6->sin6_addr) != 1) {
            return 0;
        }
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons((uint16_t)port);
        sin6->sin6_flowinfo = htonl((uint32_t)extra[0]);
        sin6->sin6_scope_id = (uint32_t)extra[1];
        *len = sizeof(*sin6);
        return 1;
    }
    return 0;
}

/* ---- sending ------------------------------------------------------------ */

enum { SEND_ERROR = -1, SEND_BLOCKED = 0, SEND_DONE = 1 };

static int
send_result(ssize_t n)
{
    if (n >= 0) {
        return SEND_DONE;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
        return SEND_BLOCKED;
    }
    PyErr_SetFromErrno(PyExc_OSError);
    return SEND_ERROR;
}

static int
send_with_socket_object(CoreObject *core, PyObject *data, PyObject *addr)
{
    PyObject *args[3] = {core->sock, data, addr};
    PyObject *res = PyObject_VectorcallMethod(
        str_sendto, args, 3 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
    if (res != NULL) {
        Py_DECREF(res);
        return SEND_DONE;
    }
    if (PyErr_ExceptionMatches(PyExc_BlockingIOError)
        || PyErr_ExceptionMatches(PyExc_InterruptedError)) {
        PyErr_Clear();
        return SEND_BLOCKED;
    }
    return SEND_ERROR;
}

/* One datagram to the peer (connected) or to addr. A Unix socket given
   no address sends to its own peer: a socket of socket.socketpair() is
   connected though its peer has no name, where the default loop calls
   sock.sendto(data, None) and fails with TypeError. */
static int
send_datagram(CoreObject *core, PyObject *data, PyObject *addr)
{
    Py_buffer view;
    int to_peer = core->connected
                  || (addr == Py_None && core->family == AF_UNIX);
    if (!to_peer && addr != core->last_addr) {
        struct sockaddr_storage ss;
        socklen_t len;
        if (!py_to_sockaddr(core->family, addr, &ss, &len)) {
            return send_with_socket_object(core, data, addr);
        }
        Py_XSETREF(core->last_addr, Py_NewRef(addr));
        core->last_sa = ss;
        core->last_salen = len;
    }
    if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) < 0) {
        return SEND_ERROR;
    }
    ssize_t n;
    do {
        if (to_peer) {
            n = send(core->fd, view.buf, (size_t)view.len, MSG_NOSIGNAL);
        }
        else {
            n = sendto(core->fd, view.buf, (size_t)view.len, MSG_NOSIGNAL,
                       (struct sockaddr *)&core->last_sa, core->last_salen);
        }
    } while (n < 0 && errno == EINTR);
    PyBuffer_Release(&view);
    return send_result(n);
}

/* ---- protocol calls and closing ----------------------------------------- */

static int
call_protocol(CoreObject *core, PyObject *name, PyObject *arg1,
              PyObject *arg2)
{
    if (core->protocol == NULL) {
        return 0;
    }
    PyObject *protocol = Py_NewRef(core->protocol);
    PyObject *args[3] = {protocol, arg1, arg2};
    size_t nargs = arg1 == NULL ? 1 : arg2 == NULL ? 2 : 3;
    PyObject *res = PyObject_VectorcallMethod(
        name, args, nargs | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
    Py_DECREF(protocol);
    Py_XDECREF(res);
    return res == NULL ? -1 : 0;
}

/* Passes the current OSError to protocol.error_received(). */
static int
report_error_received(CoreObject *core)
{
    PyObject *exc = err_fetch();
    int rc = call_protocol(core, str_error_received, exc, NULL);
    Py_DECREF(exc);
    return rc;
}

static void
unwatch(CoreObject *core, int for_write)
{
    HandleObject **slot = for_write ? &core->write_handle
                                    : &core->read_handle;
    if (*slot == NULL) {
        return;
    }
    if (!(*slot)->cancelled && core->loop != NULL
        && poll_unwatch(core->loop, for_write, core->fd) < 0) {
        PyErr_Clear();
    }
    Py_CLEAR(*slot);
}

static int
watch(CoreObject *core, int for_write)
{
    HandleObject **slot = for_write ? &core->write_handle
                                    : &core->read_handle;
    PyObject *callback = for_write ? core->writer : (PyObject *)core;
    if (*slot != NULL && !(*slot)->cancelled) {
        return 0;
    }
    Py_CLEAR(*slot);
    *slot = poll_watch(core->loop, for_write, core->fd, callback,
                       asyncloop_state.empty_tuple);
    return *slot == NULL ? -1 : 0;
}

static void
buffer_clear(CoreObject *core)
{
    while (core->buf_len > 0) {
        Datagram *d = &core->buffer[core->buf_head];
        Py_CLEAR(d->data);
        Py_CLEAR(d->addr);
        core->buf_head = (core->buf_head + 1) % core->buf_cap;
        core->buf_len--;
    }
    core->buf_head = 0;
    core->buffer_size = 0;
}

static int
schedule_connection_lost(CoreObject *core, PyObject *exc)
{
    if (loop_check_closed(core->loop) < 0) {
        return -1;
    }
    PyObject *cb = PyObject_GetAttr((PyObject *)core,
                                    str_call_connection_lost);
    if (cb == NULL) {
        return -1;
    }
    PyObject *args = PyTuple_Pack(1, exc ? exc : Py_None);
    HandleObject *h = args ? loop_call_soon(core->loop, cb, args, NULL)
                           : NULL;
    Py_DECREF(cb);
    Py_XDECREF(args);
    Py_XDECREF(h);
    return h == NULL ? -1 : 0;
}

static int
force_close(CoreObject *core, PyObject *exc)
{
    if (core->conn_lost) {
        return 0;
    }
    if (core->buf_len > 0) {
        buffer_clear(core);
        unwatch(core, 1);
    }
    if (!core->closing) {
        core->closing = 1;
        unwatch(core, 0);
    }
    core->conn_lost++;
    return schedule_connection_lost(core, exc);
}

/* asyncio's _fatal_error: OSErrors are only logged in debug mode, other
   errors go to the exception handler; then the transport closes. */
static int
fatal_error(CoreObject *core, const char *message)
{
    PyObject *exc = err_fetch();
    int rc = 0;
    if (!PyErr_GivenExceptionMatches(exc, PyExc_OSError)) {
        PyObject *context = Py_BuildValue(
            "{sssOsOsO}", "message", message, "exception", exc,
            "transport", core->transport ? core->transport : Py_None,
            "protocol", core->protocol ? core->protocol : Py_None);
        PyObject *res = context == NULL ? NULL : PyObject_CallMethodOneArg(
            (PyObject *)core->loop, asyncloop_state.str_call_exception_handler,
            context);
        Py_XDECREF(context);
        rc = res == NULL ? -1 : 0;
        Py_XDECREF(res);
    }
    if (rc == 0) {
        rc = force_close(core, exc);
    }
    Py_DECREF(exc);
    return rc;
}

static int
is_interrupt(void)
{
    return PyErr_ExceptionMatches(PyExc_KeyboardInterrupt)
           || PyErr_ExceptionMatches(PyExc_SystemExit);
}

/* A send failed with the error set: an interrupt propagates, an OSError
   goes to error_received() as asyncio does, anything else is fatal.
   Returns None, or NULL for an error to raise. */
static PyObject *
send_failed(CoreObject *core)
{
    if (is_interrupt()) {
        return NULL;
    }
    int rc = PyErr_ExceptionMatches(PyExc_OSError)
             ? report_error_received(core)
             : fatal_error(core, "Fatal write error on datagram transport");
    return rc < 0 ? NULL : Py_NewRef(Py_None);
}

/* ---- reading -------------------------------------------------------------- */

static PyObject *
receive_with_socket_object(CoreObject *core)
{
    PyObject *size = PyLong_FromLong(MAX_DATAGRAM);
    if (size == NULL) {
        return NULL;
    }
    PyObject *res = PyObject_CallMethodOneArg(core->sock, str_recvfrom,
                                              size);
    Py_DECREF(size);
    return res;
}

/* The Python address of a sender: the object made for the previous
   datagram when it came from the same sender, which spares building it
   and lets sendto() back to it find its parsed form cached. */
static PyObject *
received_address(CoreObject *core, const struct sockaddr_storage *ss,
                 socklen_t len)
{
    if (core->last_addr != NULL && len == core->last_salen && len > 0
        && memcmp(ss, &core->last_sa, len) == 0) {
        return Py_NewRef(core->last_addr);
    }
    PyObject *addr = sockaddr_to_py(ss, len);
    if (addr != NULL && (ss->ss_family == AF_INET
                         || ss->ss_family == AF_INET6)) {
        Py_XSETREF(core->last_addr, Py_NewRef(addr));
        memcpy(&core->last_sa, ss, len);
        core->last_salen = len;
    }
    return addr;
}

/* Reads one datagram: 1 and (data, addr), 0 when there is none, -1 on
   error. */
static int
receive_datagram(CoreObject *core, PyObject **data, PyObject **addr)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    memset(&ss, 0, sizeof(ss));
    char *buf = recv_buffer;
    if (recv_buffer_busy) {
        buf = PyMem_RawMalloc(MAX_DATAGRAM);
        if (buf == NULL) {
            PyErr_NoMemory();
            return -1;
        }
    }
    else {
        recv_buffer_busy = 1;
    }
    ssize_t n;
    do {
        n = recvfrom(core->fd, buf, MAX_DATAGRAM, 0,
                     (struct sockaddr *)&ss, &len);
    } while (n < 0 && errno == EINTR);
    int err = errno;
    *data = n < 0 ? NULL : PyBytes_FromStringAndSize(buf, n);
    if (buf == recv_buffer) {
        recv_buffer_busy = 0;
    }
    else {
        PyMem_RawFree(buf);
    }
    if (n < 0) {
        if (err == EAGAIN || err == EWOULDBLOCK) {
            return 0;
        }
        errno = err;
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    if (*data == NULL) {
        return -1;
    }
    *addr = received_address(core, &ss, len);
    if (*addr == NULL && !PyErr_Occurred()) {
        PyErr_SetString(PyExc_SystemError, "unknown address family");
    }
    if (*addr == NULL) {
        Py_CLEAR(*data);
        return -1;
    }
    return 1;
}

static void
received_clear(CoreObject *core)
{
    for (int i = core->recv_next; i < core->recv_count; i++) {
        Py_CLEAR(core->received[i].data);
        Py_CLEAR(core->received[i].addr);
    }
    core->recv_next = core->recv_count = 0;
}

/* Reads a batch with recvmmsg() into core->received: the count, 0 when
   there is nothing to read, -1 on error. */
static int
receive_batch(CoreObject *core)
{
    struct mmsghdr msgs[RECV_BATCH];
    struct iovec iov[RECV_BATCH];
    struct sockaddr_storage addrs[RECV_BATCH];
    memset(msgs, 0, sizeof(msgs));
    for (int i = 0; i < RECV_BATCH; i++) {
        iov[i].iov_base = batch_buffer[i];
        iov[i].iov_len = RECV_SLOT;
        msgs[i].msg_hdr.msg_iov = &iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
        msgs[i].msg_hdr.msg_name = &addrs[i];
        msgs[i].msg_hdr.msg_namelen = sizeof(addrs[i]);
    }
    batch_buffer_busy = 1;
    int n;
    do {
        n = recvmmsg(core->fd, msgs, RECV_BATCH, MSG_DONTWAIT, NULL);
    } while (n < 0 && errno == EINTR);
    int err = errno;
    int made = 0;
    for (; made < n; made++) {
        Datagram *d = &core->received[made];
        d->data = PyBytes_FromStringAndSize(batch_buffer[made],
                                            (Py_ssize_t)msgs[made].msg_len);
        d->addr = d->data ? received_address(
            core, &addrs[made], msgs[made].msg_hdr.msg_namelen) : NULL;
        if (d->addr == NULL) {
            Py_CLEAR(d->data);
            break;
        }
    }
    batch_buffer_busy = 0;
    core->recv_next = 0;
    core->recv_count = made;
    if (n < 0) {
        if (err == EAGAIN || err == EWOULDBLOCK) {
            return 0;
        }
        errno = err;
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    if (made < n) {
        if (!PyErr_Occurred()) {
            PyErr_SetString(PyExc_SystemError, "unknown address family");
        }
        return made > 0 ? made : -1;
    }
    return n;
}

/* Reads one datagram into core->received: 1, 0 when there is none, -1 on
   error. */
static int
receive_one(CoreObject *core)
{
    PyObject *data = NULL, *addr = NULL;
    int rc;
    if (core->family == AF_UNIX) {
        rc = receive_datagram(core, &data, &addr);
    }
    else {
        PyObject *pair = receive_with_socket_object(core);
        rc = -1;
        if (pair == NULL) {
            if (PyErr_ExceptionMatches(PyExc_BlockingIOError)
                || PyErr_ExceptionMatches(PyExc_InterruptedError)) {
                PyErr_Clear();
                rc = 0;
            }
        }
        else if (PyTuple_Check(pair) && PyTuple_GET_SIZE(pair) == 2) {
            data = Py_NewRef(PyTuple_GET_ITEM(pair, 0));
            addr = Py_NewRef(PyTuple_GET_ITEM(pair, 1));
            rc = 1;
        }
        else {
            PyErr_SetString(PyExc_TypeError,
                            "recvfrom() did not return (data, address)");
        }
        Py_XDECREF(pair);
    }
    if (rc == 1) {
        core->received[0].data = data;
        core->received[0].addr = addr;
        core->recv_next = 0;
        core->recv_count = 1;
    }
    return rc;
}

/* Reads what the socket has: the number of datagrams read, 0 when none,
   -1 on error. Sets *drained when the socket is known to be empty. */
static int
receive(CoreObject *core, int *drained)
{
    if ((core->family == AF_INET || core->family == AF_INET6)
        && !batch_buffer_busy) {
        int n = receive_batch(core);
        *drained = n < RECV_BATCH;
        return n;
    }
    int n = receive_one(core);
    *drained = n <= 0;
    return n;
}

/* Hands the next datagram read to the protocol; -1 if it raised. */
static int
deliver_one(CoreObject *core)
{
    Datagram d = core->received[core->recv_next];
    core->received[core->recv_next].data = NULL;
    core->received[core->recv_next].addr = NULL;
    if (++core->recv_next == core->recv_count) {
        core->recv_next = core->recv_count = 0;
    }
    int rc = call_protocol(core, str_datagram_received, d.data, d.addr);
    Py_DECREF(d.data);
    Py_DECREF(d.addr);
    return rc;
}

/* A read failed: OSErrors go to error_received(), as asyncio. */
static int
report_read_error(CoreObject *core)
{
    if (is_interrupt()) {
        return -1;
    }
    if (PyErr_ExceptionMatches(PyExc_OSError)) {
        return report_error_received(core);
    }
    return fatal_error(core, "Fatal read error on datagram transport");
}

/* The reader: called from the ready queue when the socket is readable,
   and by resume_reading() when datagrams read before the pause wait. */
static PyObject *
core_read_ready(CoreObject *core, PyObject *const *Py_UNUSED(args),
                size_t Py_UNUSED(nargsf), PyObject *Py_UNUSED(kwnames))
{
    if (core->loop == NULL || core->fd < 0) {
        Py_RETURN_NONE;
    }
    Py_INCREF(core);
    int rc = 0, drained = 0;
    for (int i = 0; i < READS_PER_EVENT; i++) {
        if (core->conn_lost || core->closing || core->paused) {
            break;
        }
        if (core->recv_count == 0) {
            if (drained) {
                break;
            }
            int n = receive(core, &drained);
            if (n < 0) {
                rc = report_read_error(core);
            }
            if (n <= 0) {
                break;
            }
        }
        if ((rc = deliver_one(core)) < 0) {
            break;
        }
    }
    if (core->conn_lost || core->closing) {
        received_clear(core);
    }
    else if (rc < 0 && core->recv_count > 0 && !core->paused) {
        /* The protocol raised with more of the batch to come: deliver it
           soon rather than at the next datagram. */
        PyObject *exc = err_fetch();
        HandleObject *h = loop_call_soon(core->loop, (PyObject *)core,
                                         asyncloop_state.empty_tuple, NULL);
        Py_XDECREF(h);
        if (h == NULL) {
            PyErr_Clear();
        }
        err_restore(exc);
    }
    Py_DECREF(core);
    return rc < 0 ? NULL : Py_NewRef(Py_None);
}

/* ---- writing -------------------------------------------------------------- */

static int
maybe_pause_protocol(CoreObject *core)
{
    if (core->buffer_size <= core->high_water || core->protocol_paused) {
        return 0;
    }
    core->protocol_paused = 1;
    if (call_protocol(core, str_pause_writing, NULL, NULL) == 0) {
        return 0;
    }
    return -1;
}

static int
maybe_resume_protocol(CoreObject *core)
{
    if (!core->protocol_paused || core->buffer_size > core->low_water) {
        return 0;
    }
    core->protocol_paused = 0;
    return call_protocol(core, str_resume_writing, NULL, NULL);
}

/* pause_writing()/resume_writing() raised: asyncio reports and goes on. */
static int
report_flow_control_error(CoreObject *core, const char *message)
{
    if (is_interrupt()) {
        return -1;
    }
    PyObject *exc = err_fetch();
    PyObject *context = Py_BuildValue(
        "{sssOsOsO}", "message", message, "exception", exc,
        "transport", core->transport ? core->transport : Py_None,
        "protocol", core->protocol ? core->protocol : Py_None);
    Py_DECREF(exc);
    if (context == NULL) {
        return -1;
    }
    PyObject *res = PyObject_CallMethodOneArg(
        (PyObject *)core->loop, asyncloop_state.str_call_exception_handler,
        context);
    Py_DECREF(context);
    Py_XDECREF(res);
    return res == NULL ? -1 : 0;
}

static Py_ssize_t
datagram_cost(Py_ssize_t len)
{
#if PY_VERSION_HEX >= 0x030D0000
    return len + 8;         /* 3.13 counts the UDP header too */
#else
    return len;
#endif
}

static int
buffer_push(CoreObject *core, PyObject *data, PyObject *addr, int front)
{
    if (core->buf_len == core->buf_cap) {
        Py_ssize_t cap = core->buf_cap ? core->buf_cap * 2 : 16;
        Datagram *items = PyMem_Malloc(cap * sizeof(Datagram));
        if (items == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        for (Py_ssize_t i = 0; i < core->buf_len; i++) {
            items[i] = core->buffer[(core->buf_head + i) % core->buf_cap];
        }
        PyMem_Free(core->buffer);
        core->buffer = items;
        core->buf_cap = cap;
        core->buf_head = 0;
    }
    Py_ssize_t at;
    if (front) {
        core->buf_head = (core->buf_head + core->buf_cap - 1) % core->buf_cap;
        at = core->buf_head;
    }
    else {
        at = (core->buf_head + core->buf_len) % core->buf_cap;
    }
    core->buffer[at].data = Py_NewRef(data);
    core->buffer[at].addr = Py_NewRef(addr);
    core->buf_len++;
    core->buffer_size += datagram_cost(PyBytes_GET_SIZE(data));
    return 0;
}

static Datagram
buffer_pop(CoreObject *core)
{
    Datagram d = core->buffer[core->buf_head];
    core->buf_head = (core->buf_head + 1) % core->buf_cap;
    core->buf_len--;
    core->buffer_size -= datagram_cost(PyBytes_GET_SIZE(d.data));
    return d;
}

static PyObject *
call_connection_lost_now(CoreObject *core, PyObject *exc);

static int
core_is_open(CoreObject *core)
{
    return core->loop != NULL;
}

/* The writer: sends the buffered datagrams while the socket takes them. */
static PyObject *
core_write_ready(CoreObject *core, PyObject *Py_UNUSED(ignored))
{
    if (!core_is_open(core)) {
        Py_RETURN_NONE;
    }
    while (core->buf_len > 0) {
        Datagram d = buffer_pop(core);
        int rc = send_datagram(core, d.data, d.addr);
        int pushed = rc == SEND_BLOCKED ? buffer_push(core, d.data, d.addr, 1)
                                        : 0;
        Py_DECREF(d.data);
        Py_DECREF(d.addr);
        if (pushed < 0) {
            return NULL;
        }
        if (rc == SEND_BLOCKED) {
            break;                  /* wait until the socket is writable */
        }
        if (rc == SEND_ERROR) {
            return send_failed(core);
        }
    }
    if (maybe_resume_protocol(core) < 0
        && report_flow_control_error(core, "protocol.resume_writing() "
                                           "failed") < 0) {
        return NULL;
    }
    if (core->buf_len == 0) {
        unwatch(core, 1);
        if (core->closing) {
            return call_connection_lost_now(core, Py_None);
        }
    }
    Py_RETURN_NONE;
}

static int
check_data(PyObject *data)
{
    if (PyBytes_Check(data) || PyByteArray_Check(data)
        || PyMemoryView_Check(data)) {
        return 0;
    }
    PyErr_Format(PyExc_TypeError, "data argument must be a bytes-like "
                 "object, not '%.200s'", Py_TYPE(data)->tp_name);
    return -1;
}

/* The address to send to, checked against the remote address given;
   a borrowed reference, or NULL with ValueError set. */
static PyObject *
target_address(CoreObject *core, PyObject *addr)
{
    if (core->address == NULL) {
        return addr;
    }
    if (addr != Py_None && addr != core->address) {
        int same = PyObject_RichCompareBool(addr, core->address, Py_EQ);
        if (same < 0) {
            return NULL;
        }
        if (!same) {
            PyErr_Format(PyExc_ValueError,
                         "Invalid address: must be None or %S",
                         core->address);
            return NULL;
        }
    }
    return core->address;
}


/* sendto(data, addr=None) */
/* Pauses the protocol when the buffer passed the high-water mark; an
   error of pause_writing() goes to the exception handler, as asyncio. */
static PyObject *
pause_protocol_if_full(CoreObject *core)
{
    if (maybe_pause_protocol(core) < 0
        && report_flow_control_error(core, "protocol.pause_writing() "
                                           "failed") < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
core_sendto(CoreObject *core, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs < 1 || nargs > 2) {
        PyErr_SetString(PyExc_TypeError,
                        "sendto() takes data and an optional address");
        return NULL;
    }
    PyObject *data = args[0];
    if (check_data(data) < 0) {
        return NULL;
    }
    Py_ssize_t size = PyObject_Length(data);
    if (size < 0) {
        return NULL;
    }
#if PY_VERSION_HEX < 0x030D0000
    if (size == 0) {
        Py_RETURN_NONE;             /* 3.11 and 3.12 send no empty datagram */
    }
#endif
    PyObject *addr = target_address(core, nargs > 1 ? args[1] : Py_None);
    if (addr == NULL) {
        return NULL;
    }
    if (core->conn_lost || core->loop == NULL) {
        /* Closed: the datagram goes nowhere, as asyncio's. */
        if (log_write_after_lost(&core->conn_lost) < 0) {
            return NULL;
        }
        Py_RETURN_NONE;
    }
    if (core->buf_len == 0) {
        int rc = send_datagram(core, data, addr);
        if (rc == SEND_DONE) {
            Py_RETURN_NONE;
        }
        if (rc == SEND_ERROR) {
            return send_failed(core);
        }
        if (watch(core, 1) < 0) {
            return NULL;
        }
    }
    /* Buffered as immutable bytes. */
    PyObject *copy = PyBytes_CheckExact(data) ? Py_NewRef(data)
                                              : PyBytes_FromObject(data);
    if (copy == NULL) {
        return NULL;
    }
    int rc = buffer_push(core, copy, addr, 0);
    Py_DECREF(copy);
    if (rc < 0) {
        return NULL;
    }
    return pause_protocol_if_full(core);
}

/* ---- connection lost ------------------------------------------------------ */

static PyObject *
call_connection_lost_now(CoreObject *core, PyObject *exc)
{
    PyObject *protocol = core->protocol_connected ? core->protocol : NULL;
    int rc = 0;
    if (protocol != NULL) {
        rc = call_protocol(core, str_connection_lost, exc, NULL);
    }
    PyObject *saved = rc < 0 ? err_fetch() : NULL;
    /* The socket object closes the descriptor: once, here. */
    unwatch(core, 0);
    unwatch(core, 1);
    PyObject *res = NULL;
    if (core->sock != NULL) {
        res = PyObject_CallMethodNoArgs(core->sock, str_close);
    }
    if (res == NULL && core->sock != NULL) {
        if (saved == NULL) {
            saved = err_fetch();
        }
        else {
            PyErr_Clear();
        }
    }
    Py_XDECREF(res);
    Py_CLEAR(core->sock);
    Py_CLEAR(core->protocol);
    Py_CLEAR(core->writer);
    Py_CLEAR(core->loop);
    Py_CLEAR(core->transport);
    buffer_clear(core);
    received_clear(core);
    core->fd = -1;
    if (saved != NULL) {
        err_restore(saved);
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
core_call_connection_lost(CoreObject *core, PyObject *exc)
{
    if (core->loop == NULL) {
        Py_RETURN_NONE;
    }
    return call_connection_lost_now(core, exc);
}

/* ---- Python methods --------------------------------------------------------- */

static PyObject *
core_start(CoreObject *core, PyObject *Py_UNUSED(ignored))
{
    core->started = 1;
    if (!core_is_open(core) || core->closing || core->paused) {
        Py_RETURN_NONE;
    }
    if (watch(core, 0) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
core_close(CoreObject *core, PyObject *Py_UNUSED(ignored))
{
    if (core->closing || !core_is_open(core)) {
        Py_RETURN_NONE;
    }
    core->closing = 1;
    unwatch(core, 0);
    if (core->buf_len == 0) {
        core->conn_lost++;
        unwatch(core, 1);
        if (schedule_connection_lost(core, NULL) < 0) {
            return NULL;
        }
    }
    Py_RETURN_NONE;
}

static PyObject *
core_abort(CoreObject *core, PyObject *Py_UNUSED(ignored))
{
    if (!core_is_open(core)) {
        Py_RETURN_NONE;
    }
    if (force_close(core, NULL) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
core_is_closing(CoreObject *core, PyObject *Py_UNUSED(ignored))
{
    return PyBool_FromLong(core->closing || !core_is_open(core));
}

static PyObject *
core_is_reading(CoreObject *core, PyObject *Py_UNUSED(ignored))
{
    return PyBool_FromLong(!core->closing && !core->paused
                           && core_is_open(core));
}

static PyObject *
core_pause_reading(CoreObject *core, PyObject *Py_UNUSED(ignored))
{
    if (core->closing || core->paused || !core_is_open(core)) {
        Py_RETURN_NONE;
    }
    core->paused = 1;
    unwatch(core, 0);
    Py_RETURN_NONE;
}

static PyObject *
core_resume_reading(CoreObject *core, PyObject *Py_UNUSED(ignored))
{
    if (core->closing || !core->paused || !core_is_open(core)) {
        Py_RETURN_NONE;
    }
    core->paused = 0;
    if (core->started && watch(core, 0) < 0) {
        return NULL;
    }
    if (core->recv_count > 0) {
        /* Read before the pause: delivered now, not at the next datagram. */
        HandleObject *h = loop_call_soon(core->loop, (PyObject *)core,
                                         asyncloop_state.empty_tuple, NULL);
        if (h == NULL) {
            return NULL;
        }
        Py_DECREF(h);
    }
    Py_RETURN_NONE;
}

static PyObject *
core_get_write_buffer_size(CoreObject *core, PyObject *Py_UNUSED(ignored))
{
    return PyLong_FromSsize_t(core->buffer_size);
}

static PyObject *
core_get_write_buffer_limits(CoreObject *core, PyObject *Py_UNUSED(ignored))
{
    return Py_BuildValue("(nn)", core->low_water, core->high_water);
}

static int
parse_limit(PyObject *value, Py_ssize_t *out)
{
    if (value == Py_None) {
        *out = -1;
        return 0;
    }
    *out = PyNumber_AsSsize_t(value, PyExc_OverflowError);
    return *out == -1 && PyErr_Occurred() ? -1 : 0;
}

/* set_write_buffer_limits(high=None, low=None), as asyncio's. */
static PyObject *
core_set_write_buffer_limits(CoreObject *core, PyObject *args,
                             PyObject *kwargs)
{
    static char *kwlist[] = {"high", "low", NULL};
    PyObject *high_obj = Py_None, *low_obj = Py_None;
    Py_ssize_t high, low;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|OO", kwlist, &high_obj,
                                     &low_obj)
        || parse_limit(high_obj, &high) < 0
        || parse_limit(low_obj, &low) < 0) {
        return NULL;
    }
    if (high_obj == Py_None) {
        high = low_obj == Py_None ? 64 * 1024 : 4 * low;
    }
    if (low_obj == Py_None) {
        low = default_low_water(high);
    }
    if (!(high >= low && low >= 0)) {
        PyErr_Format(PyExc_ValueError,
                     "high (%zd) must be >= low (%zd) must be >= 0",
                     high, low);
        return NULL;
    }
    core->high_water = high;
    core->low_water = low;
    return pause_protocol_if_full(core);
}

static PyObject *
core_set_protocol(CoreObject *core, PyObject *protocol)
{
    Py_XSETREF(core->protocol, Py_NewRef(protocol));
    core->protocol_connected = 1;
    Py_RETURN_NONE;
}

static PyObject *
core_get_protocol(CoreObject *core, PyObject *Py_UNUSED(ignored))
{
    return Py_NewRef(core->protocol ? core->protocol : Py_None);
}

static PyObject *
core_polling(CoreObject *core, PyObject *Py_UNUSED(ignored))
{
    int reading = core->read_handle && !core->read_handle->cancelled;
    int writing = core->write_handle && !core->write_handle->cancelled;
    return Py_BuildValue("(OO)", reading ? Py_True : Py_False,
                         writing ? Py_True : Py_False);
}

/* DatagramCore(loop, transport, sock, protocol, address, connected) */
static PyObject *
core_new(PyTypeObject *type, PyObject *args, PyObject *Py_UNUSED(kwargs))
{
    PyObject *loop, *transport, *sock, *protocol, *address;
    int connected;
    if (!PyArg_ParseTuple(args, "O!OOOOp:DatagramCore", &Loop_Type, &loop,
                          &transport, &sock, &protocol, &address,
                          &connected)) {
        return NULL;
    }
    int fd = poll_fileobj_to_fd(sock);
    if (fd < 0) {
        return NULL;
    }
    PyObject *family_obj = PyObject_GetAttrString(sock, "family");
    if (family_obj == NULL) {
        return NULL;
    }
    int family = (int)PyLong_AsLong(family_obj);
    Py_DECREF(family_obj);
    if (family == -1 && PyErr_Occurred()) {
        return NULL;
    }
    CoreObject *core = (CoreObject *)type->tp_alloc(type, 0);
    if (core == NULL) {
        return NULL;
    }
    core->vectorcall = (vectorcallfunc)core_read_ready;
    core->loop = (LoopObject *)Py_NewRef(loop);
    core->transport = Py_NewRef(transport);
    core->sock = Py_NewRef(sock);
    core->protocol = Py_NewRef(protocol);
    core->protocol_connected = 1;
    core->address = address == Py_None ? NULL : Py_NewRef(address);
    core->fd = fd;
    core->family = family;
    core->connected = (char)connected;
    core->high_water = 64 * 1024;
    core->low_water = 16 * 1024;
    core->writer = PyObject_GetAttr((PyObject *)core, str_write_ready);
    if (core->writer == NULL) {
        Py_DECREF(core);
        return NULL;
    }
    return (PyObject *)core;
}

static int
core_traverse(CoreObject *core, visitproc visit, void *arg)
{
    Py_VISIT(core->loop);
    Py_VISIT(core->transport);
    Py_VISIT(core->protocol);
    Py_VISIT(core->sock);
    Py_VISIT(core->address);
    Py_VISIT(core->writer);
    Py_VISIT(core->read_handle);
    Py_VISIT(core->write_handle);
    Py_VISIT(core->last_addr);
    for (Py_ssize_t i = 0; i < core->buf_len; i++) {
        Datagram *d = &core->buffer[(core->buf_head + i) % core->buf_cap];
        Py_VISIT(d->data);
        Py_VISIT(d->addr);
    }
    for (int i = core->recv_next; i < core->recv_count; i++) {
        Py_VISIT(core->received[i].data);
        Py_VISIT(core->received[i].addr);
    }
    return 0;
}

static int
core_clear(CoreObject *core)
{
    buffer_clear(core);
    received_clear(core);
    Py_CLEAR(core->read_handle);
    Py_CLEAR(core->write_handle);
    Py_CLEAR(core->loop);
    Py_CLEAR(core->transport);
    Py_CLEAR(core->protocol);
    Py_CLEAR(core->sock);
    Py_CLEAR(core->address);
    Py_CLEAR(core->writer);
    Py_CLEAR(core->last_addr);
    return 0;
}

static void
core_dealloc(CoreObject *core)
{
    PyObject_GC_UnTrack(core);
    core_clear(core);
    PyMem_Free(core->buffer);
    Py_TYPE(core)->tp_free((PyObject *)core);
}

static PyMethodDef core_methods[] = {
    {"sendto", (PyCFunction)(void (*)(void))core_sendto, METH_FASTCALL,
     "Send a datagram, or buffer it while the socket is full."},
    {"close", (PyCFunction)core_close, METH_NOARGS, NULL},
    {"abort", (PyCFunction)core_abort, METH_NOARGS, NULL},
    {"is_closing", (PyCFunction)core_is_closing, METH_NOARGS, NULL},
    {"is_reading", (PyCFunction)core_is_reading, METH_NOARGS, NULL},
    {"pause_reading", (PyCFunction)core_pause_reading, METH_NOARGS, NULL},
    {"resume_reading", (PyCFunction)core_resume_reading, METH_NOARGS, NULL},
    {"get_write_buffer_size", (PyCFunction)core_get_write_buffer_size,
     METH_NOARGS, NULL},
    {"get_write_buffer_limits", (PyCFunction)core_get_write_buffer_limits,
     METH_NOARGS, NULL},
    {"set_write_buffer_limits",
     (PyCFunction)(void (*)(void))core_set_write_buffer_limits,
     METH_VARARGS | METH_KEYWORDS, NULL},
    {"set_protocol", (PyCFunction)core_set_protocol, METH_O, NULL},
    {"get_protocol", (PyCFunction)core_get_protocol, METH_NOARGS, NULL},
    {"polling", (PyCFunction)core_polling, METH_NOARGS,
     "(reading, writing): whether the watchers are registered."},
    {"_start", (PyCFunction)core_start, METH_NOARGS,
     "Start reading, once connection_made() has run."},
    {"_write_ready", (PyCFunction)core_write_ready, METH_NOARGS, NULL},
    {"_call_connection_lost", (PyCFunction)core_call_connection_lost, METH_O,
     NULL},
    {NULL, NULL, 0, NULL}
};

static PyTypeObject Core_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "asyncloop._loop.DatagramCore",
    .tp_basicsize = sizeof(CoreObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC
                | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_doc = "The C core of a datagram transport.",
    .tp_vectorcall_offset = offsetof(CoreObject, vectorcall),
    .tp_call = PyVectorcall_Call,
    .tp_new = core_new,
    .tp_traverse = (traverseproc)core_traverse,
    .tp_clear = (inquiry)core_clear,
    .tp_dealloc = (destructor)core_dealloc,
    .tp_methods = core_methods,
};

static int
intern_names(void)
{
    struct { PyObject **slot; const char *text; } names[] = {
        {&str_datagram_received, "datagram_received"},
        {&str_error_received, "error_received"},
        {&str_connection_lost, "connection_lost"},
        {&str_pause_writing, "pause_writing"},
        {&str_resume_writing, "resume_writing"},
        {&str_recvfrom, "recvfrom"}, {&str_sendto, "sendto"},
        {&str_close, "close"}, {&str_write_ready, "_write_ready"},
        {&str_call_connection_lost, "_call_connection_lost"},
        {&str_warning, "warning"},
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
udp_init(PyObject *module)
{
    if (intern_names() < 0 || PyType_Ready(&Core_Type) < 0) {
        return -1;
    }
    Py_INCREF(&Core_Type);
    if (PyModule_AddObject(module, "DatagramCore",
                           (PyObject *)&Core_Type) < 0) {
        Py_DECREF(&Core_Type);
        return -1;
    }
    return 0;
}
