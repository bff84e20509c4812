/* add_reader / add_writer: descriptor watchers.

   The watched descriptors live in an epoll instance of our own, and libuv
   watches that one descriptor with a single uv_poll_t. libuv's own
   uv_poll_t per descriptor would make the descriptor non-blocking behind
   the caller's back, and abort() the process when a descriptor is closed
   before libuv registers it; here every epoll_ctl() error is ours to turn
   into an OSError, and a descriptor closed and reused by the caller is
   registered again rather than silently never reported.

   C code (the sock_* operations, the datagram transport) watches
   descriptors through the same dicts with poll_watch()/poll_unwatch(),
   giving a C callable as the Handle's callback, so that a reader added
   from Python and one added from C replace each other as asyncio's do. */
#include "asyncloop.h"
#include <errno.h>
#include <sys/epoll.h>
#include <unistd.h>

#define EVENTS_PER_WAIT 256

/* An int, or an object with fileno(), as selectors accepts; the value is
   checked apart (check_fd_value), as asyncio checks the loop in between. */
static long
fileobj_to_long(PyObject *fileobj)
{
    long fd;
    if (PyLong_Check(fileobj)) {
        return PyLong_AsLong(fileobj);
    }
    PyObject *res = PyObject_CallMethod(fileobj, "fileno", NULL);
    if (res == NULL || !PyLong_Check(res)) {
        if (res == NULL && !PyErr_ExceptionMatches(PyExc_AttributeError)
            && !PyErr_ExceptionMatches(PyExc_TypeError)
            && !PyErr_ExceptionMatches(PyExc_ValueError)) {
            return -1;
        }
        Py_XDECREF(res);
        PyErr_Format(PyExc_ValueError, "Invalid file object: %R", fileobj);
        return -1;
    }
    fd = PyLong_AsLong(res);
    Py_DECREF(res);
    return fd;
}

static int
check_fd_value(long fd)
{
    if (fd < 0) {
        PyErr_Format(PyExc_ValueError, "Invalid file descriptor: %ld", fd);
        return -1;
    }
    if (fd > INT_MAX) {
        PyErr_SetString(PyExc_OverflowError,
                        "file descriptor is greater than maximum");
        return -1;
    }
    return 0;
}

int
poll_fileobj_to_fd(PyObject *fileobj)
{
    long fd = fileobj_to_long(fileobj);
    if ((fd == -1 && PyErr_Occurred()) || check_fd_value(fd) < 0) {
        return -1;
    }
    return (int)fd;
}

static void poll_cb(uv_poll_t *handle, int status, int events);

static int
ensure_epoll(LoopObject *loop)
{
    if (loop->poll_epfd >= 0) {
        return 0;
    }
    int epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    int err = uv_poll_init(&loop->uv, &loop->poll_watcher, epfd);
    if (err < 0) {
        close(epfd);
        error_from_uv(err);
        return -1;
    }
    loop->poll_watcher.data = loop;
    loop->poll_epfd = epfd;
    loop->poll_watcher_open = 1;
    return 0;
}

/* Keeps the uv_poll_t referenced only while something is watched, so
   that an idle loop does not ask libuv for events at every iteration. It
   stays started: stopping and starting it costs libuv epoll_ctl() calls,
   and a sock_* operation on a lone connection empties and fills the
   watcher dicts at every message. */
static void
update_watcher(LoopObject *loop)
{
    if (!loop->poll_watcher_open) {
        return;
    }
    if (PyDict_GET_SIZE(loop->readers) + PyDict_GET_SIZE(loop->writers) > 0) {
        if (!uv_is_active((uv_handle_t *)&loop->poll_watcher)) {
            uv_poll_start(&loop->poll_watcher, UV_READABLE, poll_cb);
        }
        uv_ref((uv_handle_t *)&loop->poll_watcher);
    }
    else {
        uv_unref((uv_handle_t *)&loop->poll_watcher);
    }
}

static int
current_mask(LoopObject *loop, PyObject *key)
{
    int mask = 0;
    int r = PyDict_Contains(loop->readers, key);
    int w = PyDict_Contains(loop->writers, key);
    if (r < 0 || w < 0) {
        return -1;
    }
    if (r) {
        mask |= EPOLLIN;
    }
    if (w) {
        mask |= EPOLLOUT;
    }
    return mask;
}

/* Tells epoll the events now wanted for fd.

   A descriptor nobody watches any more is disarmed rather than deleted:
   sock_* operations watch the same descriptor again and again, and a MOD
   costs the kernel much less than a DEL and an ADD. The disarmed entry is
   one-shot, so that even if the descriptor is closed while a duplicate
   keeps its file open (where no epoll_ctl can reach the entry any more),
   the entry reports at most one event (a hang-up) and then stays quiet,
   instead of waking the loop forever. Such an event finds no watcher and
   is dropped. Re-arming tries MOD first, and ADD when the descriptor was
   never registered or was closed and its number reused meanwhile. */
static int
sync_epoll(LoopObject *loop, int fd, int mask)
{
    struct epoll_event ev = {0};
    ev.events = mask ? (uint32_t)mask : (uint32_t)EPOLLONESHOT;
    ev.data.fd = fd;
    if (epoll_ctl(loop->poll_epfd, EPOLL_CTL_MOD, fd, &ev) == 0) {
        return 0;
    }
    if (mask == 0) {
        /* Gone already: the caller closed it first. Nothing to undo. */
        return 0;
    }
    if (errno == ENOENT
        && epoll_ctl(loop->poll_epfd, EPOLL_CTL_ADD, fd, &ev) == 0) {
        return 0;
    }
    PyErr_SetFromErrno(PyExc_OSError);
    return -1;
}

/* Watches fd in dict (loop->readers or loop->writers) with the handle h,
   replacing and cancelling the handle there before. On error the watchers
   are left as they were. */
static int
poll_set_handle(LoopObject *loop, PyObject *dict, int fd, HandleObject *h)
{
    if (loop_check_closed(loop) < 0 || loop_check_forked(loop) < 0
        || ensure_epoll(loop) < 0) {
        return -1;
    }
    PyObject *key = PyLong_FromLong(fd);
    if (key == NULL) {
        return -1;
    }
    PyObject *old = PyDict_GetItemWithError(dict, key);
    if (old == NULL && PyErr_Occurred()) {
        Py_DECREF(key);
        return -1;
    }
    Py_XINCREF(old);
    if (PyDict_SetItem(dict, key, (PyObject *)h) < 0) {
        Py_XDECREF(old);
        Py_DECREF(key);
        return -1;
    }
    int mask = current_mask(loop, key);
    if (mask < 0 || sync_epoll(loop, fd, mask) < 0) {
        PyObject *exc = err_fetch();
        if (old != NULL) {
            PyDict_SetItem(dict, key, old);
        }
        else {
            PyDict_DelItem(dict, key);
        }
        Py_XDECREF(old);
        Py_DECREF(key);
        err_restore(exc);
        return -1;
    }
    if (old != NULL) {
        handle_cancel_internal((HandleObject *)old);
        Py_DECREF(old);
    }
    Py_DECREF(key);
    update_watcher(loop);
    return 0;
}

HandleObject *
poll_watch(LoopObject *loop, int for_write, int fd, PyObject *callback,
           PyObject *args)
{
    HandleObject *h = handle_new(Handle_Type, loop, callback, args, NULL);
    if (h == NULL) {
        return NULL;
    }
    /* Kept by the watcher dicts, not by the ready queue. */
    handle_track(h);
    PyObject *dict = for_write ? loop->writers : loop->readers;
    if (poll_set_handle(loop, dict, fd, h) < 0) {
        Py_DECREF(h);
        return NULL;
    }
    return h;
}

/* Remembers the object a watcher was added with, once per descriptor. */
static int
remember_file(LoopObject *loop, int fd, PyObject *fileobj)
{
    if (PyLong_Check(fileobj)) {
        return 0;
    }
    PyObject *key = PyLong_FromLong(fd);
    if (key == NULL) {
        return -1;
    }
    PyObject *kept = PyDict_SetDefault(loop->watched_files, key, fileobj);
    Py_DECREF(key);
    return kept == NULL ? -1 : 0;
}

/* Once nothing watches the descriptor key. */
static int
forget_file(LoopObject *loop, PyObject *key)
{
    int known = PyDict_Contains(loop->watched_files, key);
    if (known <= 0) {
        return known;
    }
    return PyDict_DelItem(loop->watched_files, key);
}

/* The descriptor a watcher was added for with fileobj, found by identity
   as selectors does when fileobj has no valid descriptor any more (a
   closed socket); -1 when there is none. */
static long
find_remembered_file(LoopObject *loop, PyObject *fileobj)
{
    Py_ssize_t pos = 0;
    PyObject *key, *value;
    while (PyDict_Next(loop->watched_files, &pos, &key, &value)) {
        if (value == fileobj) {
            return PyLong_AsLong(key);
        }
    }
    return -1;
}

static PyObject *
poll_add(LoopObject *loop, int for_write, const char *method,
         PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs < 2) {
        PyErr_Format(PyExc_TypeError,
                     "%s() missing required arguments 'fd' and 'callback'",
                     method);
        return NULL;
    }
    long fd = fileobj_to_long(args[0]);
    if ((fd == -1 && PyErr_Occurred()) || loop_check_closed(loop) < 0
        || check_fd_value(fd) < 0) {
        return NULL;
    }
    PyObject *cbargs = PyTuple_New(nargs - 2);
    if (cbargs == NULL) {
        return NULL;
    }
    for (Py_ssize_t i = 2; i < nargs; i++) {
        PyTuple_SET_ITEM(cbargs, i - 2, Py_NewRef(args[i]));
    }
    HandleObject *h = poll_watch(loop, for_write, (int)fd, args[1], cbargs);
    Py_DECREF(cbargs);
    if (h != NULL && remember_file(loop, (int)fd, args[0]) < 0) {
        Py_CLEAR(h);
    }
    return (PyObject *)h;
}

int
poll_unwatch(LoopObject *loop, int for_write, int fd)
{
    PyObject *dict = for_write ? loop->writers : loop->readers;
    if (loop->closed || loop->poll_epfd < 0) {
        return 0;
    }
    if (loop_check_forked(loop) < 0) {
        return -1;
    }
    PyObject *key = PyLong_FromLong(fd);
    if (key == NULL) {
        return -1;
    }
    PyObject *old = PyDict_GetItemWithError(dict, key);
    if (old == NULL) {
        Py_DECREF(key);
        return PyErr_Occurred() ? -1 : 0;
    }
    Py_INCREF(old);
    int mask = -1;
    if (PyDict_DelItem(dict, key) == 0) {
        mask = current_mask(loop, key);
    }
    if (mask == 0 && forget_file(loop, key) < 0) {
        mask = -1;
    }
    Py_DECREF(key);
    if (mask < 0 || sync_epoll(loop, fd, mask) < 0) {
        Py_DECREF(old);
        return -1;
    }
    handle_cancel_internal((HandleObject *)old);
    Py_DECREF(old);
    update_watcher(loop);
    return 1;
}

static PyObject *
poll_remove(LoopObject *loop, int for_write, PyObject *fileobj)
{
    long fd = fileobj_to_long(fileobj);
    if (fd == -1 && PyErr_Occurred()) {
        if (PyErr_ExceptionMatches(PyExc_OverflowError)) {
            /* A number no descriptor can have is not watched. */
            PyErr_Clear();
            Py_RETURN_FALSE;
        }
        if (!PyErr_ExceptionMatches(PyExc_ValueError)) {
            return NULL;
        }
    }
    if (loop->closed && !PyErr_Occurred()) {
        Py_RETURN_FALSE;
    }
    if (fd < 0) {
        long found = find_remembered_file(loop, fileobj);
        if (found < 0) {
            if (!PyErr_Occurred()) {
                check_fd_value(fd);
            }
            return NULL;
        }
        PyErr_Clear();
        fd = found;
    }
    if (fd > INT_MAX) {
        Py_RETURN_FALSE;
    }
    int rc = poll_unwatch(loop, for_write, (int)fd);
    if (rc < 0) {
        return NULL;
    }
    return PyBool_FromLong(rc);
}

/* Queues the handle watching fd in dict, as asyncio's _process_events: a
   cancelled handle is unregistered instead. */
static int
dispatch(LoopObject *loop, int for_write, int fd)
{
    PyObject *key = PyLong_FromLong(fd);
    if (key == NULL) {
        return -1;
    }
    PyObject *dict = for_write ? loop->writers : loop->readers;
    PyObject *h = PyDict_GetItemWithError(dict, key);
    int rc = 0;
    if (h == NULL) {
        rc = PyErr_Occurred() ? -1 : 0;
    }
    else if (((HandleObject *)h)->cancelled) {
        rc = poll_unwatch(loop, for_write, fd) < 0 ? -1 : 0;
    }
    else {
        rc = loop_append_ready(loop, (HandleObject *)h);
    }
    Py_DECREF(key);
    return rc;
}

static void
poll_cb(uv_poll_t *handle, int Py_UNUSED(status), int Py_UNUSED(events))
{
    LoopObject *loop = (LoopObject *)handle->data;
    struct epoll_event evs[EVENTS_PER_WAIT];
    int n = epoll_wait(loop->poll_epfd, evs, EVENTS_PER_WAIT, 0);
    for (int i = 0; i < n; i++) {
        int fd = evs[i].data.fd;
        uint32_t ev = evs[i].events;
        int rc = 0;
        /* As selectors.EpollSelector: anything but EPOLLOUT counts as
           readable, anything but EPOLLIN as writable. */
        if (ev & ~(uint32_t)EPOLLOUT) {
            rc = dispatch(loop, 0, fd);
        }
        if (rc == 0 && (ev & ~(uint32_t)EPOLLIN)) {
            rc = dispatch(loop, 1, fd);
        }
        if (rc < 0) {
            loop_set_pending_error(loop);
            return;
        }
    }
}

void
poll_close(LoopObject *loop)
{
    if (loop->readers != NULL) {
        PyDict_Clear(loop->readers);
    }
    if (loop->writers != NULL) {
        PyDict_Clear(loop->writers);
    }
    if (loop->watched_files != NULL) {
        PyDict_Clear(loop->watched_files);
    }
    if (loop->poll_watcher_open) {
        loop->poll_watcher_open = 0;
        uv_close((uv_handle_t *)&loop->poll_watcher, NULL);
    }
    if (loop->poll_epfd >= 0) {
        close(loop->poll_epfd);
        loop->poll_epfd = -1;
    }
}

int
poll_check_no_transport(LoopObject *loop, int fd)
{
    static PyObject *name = NULL;
    if (name == NULL && (name = PyUnicode_InternFromString("_transports"))
                        == NULL) {
        return -1;
    }
    PyObject *transports = PyObject_GetAttr((PyObject *)loop, name);
    if (transports == NULL) {
        /* A Loop subclass without the registry has no transports in it. */
        if (PyErr_ExceptionMatches(PyExc_AttributeError)) {
            PyErr_Clear();
            return 0;
        }
        return -1;
    }
    PyObject *key = PyLong_FromLong(fd);
    PyObject *transport = key ? PyObject_GetItem(transports, key) : NULL;
    Py_DECREF(transports);
    Py_XDECREF(key);
    if (transport == NULL) {
        if (PyErr_ExceptionMatches(PyExc_KeyError)) {
            PyErr_Clear();
            return 0;
        }
        return -1;
    }
    PyObject *closing = PyObject_CallMethod(transport, "is_closing", NULL);
    int truth = closing ? PyObject_IsTrue(closing) : -1;
    Py_XDECREF(closing);
    if (truth == 0) {
        PyErr_Format(PyExc_RuntimeError,
                     "File descriptor %d is used by transport %R", fd,
                     transport);
        truth = -1;
    }
    Py_DECREF(transport);
    return truth < 0 ? -1 : 0;
}

/* ---- Python methods ----------------------------------------------------- */

static PyObject *
loop_add_reader(LoopObject *loop, PyObject *const *args, Py_ssize_t nargs)
{
    return poll_add(loop, 0, "add_reader", args, nargs);
}

static PyObject *
loop_add_writer(LoopObject *loop, PyObject *const *args, Py_ssize_t nargs)
{
    return poll_add(loop, 1, "add_writer", args, nargs);
}

static PyObject *
loop_remove_reader(LoopObject *loop, PyObject *fileobj)
{
    return poll_remove(loop, 0, fileobj);
}

static PyObject *
loop_remove_writer(LoopObject *loop, PyObject *fileobj)
{
    return poll_remove(loop, 1, fileobj);
}

static PyMethodDef poll_methods[] = {
    {"_add_reader", (PyCFunction)(void (*)(void))loop_add_reader,
     METH_FASTCALL, "Watch fd for reading; returns the Handle."},
    {"_add_writer", (PyCFunction)(void (*)(void))loop_add_writer,
     METH_FASTCALL, "Watch fd for writing; returns the Handle."},
    {"_remove_reader", (PyCFunction)loop_remove_reader, METH_O,
     "Stop watching fd for reading; True if it was watched."},
    {"_remove_writer", (PyCFunction)loop_remove_writer, METH_O,
     "Stop watching fd for writing; True if it was watched."},
    {NULL, NULL, 0, NULL}
};

int
poll_init(PyObject *Py_UNUSED(module))
{
    return loop_add_methods(poll_methods);
}
