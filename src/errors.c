/* libuv error codes -> Python exceptions. libuv's codes are negated errno
   values on Unix, so the OSError constructor picks the matching subclass
   (ConnectionResetError, BrokenPipeError, ...) from errno itself. */
#include "asyncloop.h"

PyObject *
error_from_uv_with_text(int uverr, const char *what)
{
    int err = -uverr;
    PyObject *args;
    if (what != NULL) {
        args = Py_BuildValue("(iss)", err, uv_strerror(uverr), what);
    }
    else {
        args = Py_BuildValue("(is)", err, uv_strerror(uverr));
    }
    if (args == NULL) {
        return NULL;
    }
    PyObject *exc = PyObject_Call(PyExc_OSError, args, NULL);
    Py_DECREF(args);
    if (exc != NULL) {
        PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
        Py_DECREF(exc);
    }
    return NULL;
}

/* asyncio.constants.LOG_THRESHOLD_FOR_CONNLOST_WRITES */
#define CONNLOST_WRITES_WARNING 5

int
log_write_after_lost(unsigned long *conn_lost)
{
    if (*conn_lost >= CONNLOST_WRITES_WARNING) {
        PyObject *res = PyObject_CallMethod(
            asyncloop_state.logger, "warning", "s",
            "socket.send() raised exception.");
        if (res == NULL) {
            return -1;
        }
        Py_DECREF(res);
    }
    (*conn_lost)++;
    return 0;
}

PyObject *
error_from_uv(int uverr)
{
    return error_from_uv_with_text(uverr, NULL);
}
