/* Handle and TimerHandle: what call_soon / call_later return, and what the
   ready queue and the timer heap hold. They mirror asyncio.Handle and
   asyncio.TimerHandle, including their private attributes, which some
   libraries read. */
#include "asyncloop.h"
#include <structmember.h>

HandleObject *
handle_new(PyTypeObject *type, LoopObject *loop, PyObject *callback,
           PyObject *args, PyObject *context)
{
    return handle_new_traced(type, loop, callback, args, context,
                             HANDLE_STACK_DEPTH);
}

HandleObject *
handle_new_traced(PyTypeObject *type, LoopObject *loop, PyObject *callback,
                  PyObject *args, PyObject *context, int stack_depth)
{
    HandleObject *h = PyObject_GC_New(HandleObject, type);
    if (h == NULL) {
        return NULL;
    }
    memset((char *)h + sizeof(PyObject), 0,
           sizeof(HandleObject) - sizeof(PyObject));
    if (context == NULL || context == Py_None) {
        context = PyContext_CopyCurrent();
        if (context == NULL) {
            Py_DECREF(h);
            return NULL;
        }
        /* A fresh copy that only this handle refers to: hidden from the
           collector as long as the handle is (see handle_track()). The
           second reference keeps it alive, and so out of a deallocator
           that expects a tracked object, even if code replaces _context
           through asyncio's slot descriptor. */
        PyObject_GC_UnTrack(context);
        h->untracked_context = Py_NewRef(context);
    }
    else {
        Py_INCREF(context);
    }
    h->context = context;
    h->callback = Py_NewRef(callback);
    h->args = Py_NewRef(args);
    h->loop = (LoopObject *)Py_NewRef(loop);
    if (loop->debug) {
        /* Like asyncio: the stack of the caller of call_soon(). */
        PyObject *frame = (PyObject *)PyEval_GetFrame();
        if (frame != NULL) {
            h->source_traceback = PyObject_CallFunction(
                asyncloop_state.extract_stack, "Oi", frame, stack_depth);
            if (h->source_traceback == NULL) {
                Py_DECREF(h);
                return NULL;
            }
        }
    }
    /* Not tracked by the garbage collector yet: see handle_track(). */
    return h;
}

static void
track_context(HandleObject *h)
{
    if (h->untracked_context != NULL) {
        PyObject_GC_Track(h->untracked_context);
        Py_CLEAR(h->untracked_context);
    }
}

/* A handle that only the ready queue or the timer heap of a running loop
   refers to cannot be part of garbage, since the running loop is alive;
   keeping such handles out of the collector's lists spares it from walking
   every pending callback at each collection. A handle becomes tracked as
   soon as something else may keep it: when it is queued on a loop that is
   not running, when the loop stops with it still queued, and when the
   queue lets go of it while others still hold it (handle_release). The
   context copied for the handle follows it: were it tracked, a loop that
   schedules and cancels many timers would have each collection walk the
   contexts of all the cancelled ones still in the heap. */
void
handle_track(HandleObject *h)
{
    if (!PyObject_GC_IsTracked((PyObject *)h)) {
        PyObject_GC_Track(h);
    }
    track_context(h);
}

void
handle_release(HandleObject *h)
{
    if (Py_REFCNT(h) > 1) {
        handle_track(h);
    }
    Py_DECREF(h);
}

static int
handle_traverse(HandleObject *h, visitproc visit, void *arg)
{
    /* Code may still store into the flag slots through asyncio's
       descriptors: those references are ours to release too. */
    Py_VISIT(h->cancelled_slot);
    Py_VISIT(h->scheduled_slot);
    Py_VISIT(h->callback);
    Py_VISIT(h->args);
    Py_VISIT(h->context);
    Py_VISIT(h->untracked_context);
    Py_VISIT(h->loop);
    Py_VISIT(h->source_traceback);
    Py_VISIT(h->saved_repr);
    Py_VISIT(h->when_obj);
    return 0;
}

static int
handle_clear(HandleObject *h)
{
    Py_CLEAR(h->cancelled_slot);
    Py_CLEAR(h->scheduled_slot);
    Py_CLEAR(h->callback);
    Py_CLEAR(h->args);
    Py_CLEAR(h->context);
    track_context(h);
    Py_CLEAR(h->loop);
    Py_CLEAR(h->source_traceback);
    Py_CLEAR(h->saved_repr);
    Py_CLEAR(h->when_obj);
    return 0;
}

static void
handle_dealloc(HandleObject *h)
{
    PyObject_GC_UnTrack(h);
    PyTypeObject *type = Py_TYPE(h);
    PyObject_ClearWeakRefs((PyObject *)h);
    handle_clear(h);
    type->tp_free((PyObject *)h);
    Py_DECREF(type);
}

/* ---- running ------------------------------------------------------------ */

static PyObject *
handle_format_callback(HandleObject *h)
{
    /* After cancel() both are gone, as in asyncio, which formats None. */
    PyObject *args[3] = {h->callback ? h->callback : Py_None,
                         h->args ? h->args : Py_None, NULL};
#if PY_VERSION_HEX >= 0x030D0000
    /* 3.13 shows the arguments in debug mode only. */
    args[2] = h->loop != NULL && h->loop->debug ? Py_True : Py_False;
    return PyObject_Vectorcall(asyncloop_state.format_callback_source, args,
                               2, asyncloop_state.kwnames_debug);
#else
    return PyObject_Vectorcall(asyncloop_state.format_callback_source, args,
                               2, NULL);
#endif
}

/* An exception of the callback goes to the loop's exception handler, as
   asyncio.Handle._run does. */
static int
handle_report_error(HandleObject *h)
{
    PyObject *exc = err_fetch();
    PyObject *cb = handle_format_callback(h);
    PyObject *msg = NULL, *context = NULL, *res = NULL;
    int rc = -1;

    if (cb == NULL) {
        goto done;
    }
    msg = PyUnicode_FromFormat("Exception in callback %U", cb);
    if (msg == NULL) {
        goto done;
    }
    context = PyDict_New();
    if (context == NULL
        || PyDict_SetItem(context, asyncloop_state.str_message, msg) < 0
        || PyDict_SetItem(context, asyncloop_state.str_exception, exc) < 0
        || PyDict_SetItem(context, asyncloop_state.str_handle,
                          (PyObject *)h) < 0) {
        goto done;
    }
    if (h->source_traceback != NULL
        && PyObject_IsTrue(h->source_traceback)
        && PyDict_SetItem(context, asyncloop_state.str_source_traceback,
                          h->source_traceback) < 0) {
        goto done;
    }
    res = PyObject_CallMethodOneArg(
        (PyObject *)h->loop, asyncloop_state.str_call_exception_handler,
        context);
    if (res != NULL) {
        rc = 0;
    }
done:
    Py_XDECREF(exc);
    Py_XDECREF(cb);
    Py_XDECREF(msg);
    Py_XDECREF(context);
    Py_XDECREF(res);
    return rc;
}

/* context.run(callback, *args) */
static PyObject *
call_context_run(PyObject *context, PyObject *callback, PyObject *args)
{
    PyObject *run = PyObject_GetAttrString(context, "run");
    if (run == NULL) {
        return NULL;
    }
    PyObject *full = PyTuple_New(PyTuple_GET_SIZE(args) + 1);
    if (full == NULL) {
        Py_DECREF(run);
        return NULL;
    }
    PyTuple_SET_ITEM(full, 0, Py_NewRef(callback));
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(args); i++) {
        PyTuple_SET_ITEM(full, i + 1, Py_NewRef(PyTuple_GET_ITEM(args, i)));
    }
    PyObject *res = PyObject_Call(run, full, NULL);
    Py_DECREF(full);
    Py_DECREF(run);
    return res;
}

int
handle_run(HandleObject *h)
{
    PyObject *res = NULL;
    /* The callback may cancel or drop the handle: keep it and its
       callback alive until the call is over. */
    Py_INCREF(h);
    PyObject *callback = Py_NewRef(h->callback);
    PyObject *args = Py_NewRef(h->args);

    if (!PyContext_CheckExact(h->context)) {
        /* Whatever was given as context=: asyncio calls its run(). */
        res = call_context_run(h->context, callback, args);
    }
    else if (PyContext_Enter(h->context) == 0) {
        res = PyObject_Vectorcall(callback, &PyTuple_GET_ITEM(args, 0),
                                  PyTuple_GET_SIZE(args), NULL);
        if (PyContext_Exit(h->context) < 0) {
            Py_CLEAR(res);
        }
    }
    Py_DECREF(callback);
    Py_DECREF(args);

    int rc = 0;
    if (res != NULL) {
        Py_DECREF(res);
    }
    else if (PyErr_ExceptionMatches(PyExc_KeyboardInterrupt)
             || PyErr_ExceptionMatches(PyExc_SystemExit)) {
        rc = -1;
    }
    else {
        rc = handle_report_error(h);
    }
    Py_DECREF(h);
    return rc;
}

/* ---- Python methods ----------------------------------------------------- */

void
handle_cancel_internal(HandleObject *h)
{
    if (h->cancelled) {
        return;
    }
    if (h->scheduled && h->loop != NULL) {
        h->loop->timers.cancelled++;
    }
    h->cancelled = 1;
    if (h->loop != NULL && h->loop->debug && h->saved_repr == NULL) {
        /* Like asyncio: keep the repr with the callback, for the log
           messages of debug mode. */
        h->saved_repr = PyObject_Repr((PyObject *)h);
        if (h->saved_repr == NULL) {
            PyErr_Clear();
        }
    }
    Py_CLEAR(h->callback);
    Py_CLEAR(h->args);
}

static PyObject *
handle_cancel(HandleObject *h, PyObject *Py_UNUSED(ignored))
{
    handle_cancel_internal(h);
    Py_RETURN_NONE;
}

static PyObject *
handle_cancelled(HandleObject *h, PyObject *Py_UNUSED(ignored))
{
    return PyBool_FromLong(h->cancelled);
}

static PyObject *
handle_get_context(HandleObject *h, PyObject *Py_UNUSED(ignored))
{
    return Py_NewRef(h->context);
}

static PyObject *
handle_when(HandleObject *h, PyObject *Py_UNUSED(ignored))
{
    if (h->when_obj != NULL) {
        return Py_NewRef(h->when_obj);
    }
    return PyFloat_FromDouble(h->when);
}

static PyObject *
handle_py_run(HandleObject *h, PyObject *Py_UNUSED(ignored))
{
    if (h->cancelled) {
        Py_RETURN_NONE;
    }
    if (handle_run(h) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

/* <Handle [cancelled] [when=...] callback(args) [created at file:line]> */
static PyObject *
handle_repr(HandleObject *h)
{
    if (h->saved_repr != NULL) {
        return Py_NewRef(h->saved_repr);
    }
    PyObject *parts = PyList_New(0);
    PyObject *item = NULL, *sep = NULL, *joined = NULL, *res = NULL;
    if (parts == NULL) {
        return NULL;
    }
    item = PyType_GetName(Py_TYPE(h));
    if (item == NULL || PyList_Append(parts, item) < 0) {
        goto done;
    }
    Py_CLEAR(item);
    if (h->cancelled) {
        item = PyUnicode_FromString("cancelled");
        if (item == NULL || PyList_Append(parts, item) < 0) {
            goto done;
        }
        Py_CLEAR(item);
    }
    if (Handle_IsTimer(h)) {
        PyObject *when = handle_when(h, NULL);
        if (when == NULL) {
            goto done;
        }
        item = PyUnicode_FromFormat("when=%R", when);
        Py_DECREF(when);
        if (item == NULL || PyList_Append(parts, item) < 0) {
            goto done;
        }
        Py_CLEAR(item);
    }
    if (h->callback != NULL) {
        item = handle_format_callback(h);
        if (item == NULL || PyList_Append(parts, item) < 0) {
            goto done;
        }
        Py_CLEAR(item);
    }
    if (h->source_traceback != NULL && PyList_Check(h->source_traceback)
        && PyList_GET_SIZE(h->source_traceback) > 0) {
        PyObject *frame = PyList_GET_ITEM(
            h->source_traceback, PyList_GET_SIZE(h->source_traceback) - 1);
        PyObject *file = PySequence_GetItem(frame, 0);
        PyObject *line = file ? PySequence_GetItem(frame, 1) : NULL;
        if (line != NULL) {
            item = PyUnicode_FromFormat("created at %S:%S", file, line);
        }
        Py_XDECREF(file);
        Py_XDECREF(line);
        if (item == NULL || PyList_Append(parts, item) < 0) {
            goto done;
        }
        Py_CLEAR(item);
    }
    sep = PyUnicode_FromString(" ");
    if (sep == NULL) {
        goto done;
    }
    joined = PyUnicode_Join(sep, parts);
    if (joined != NULL) {
        res = PyUnicode_FromFormat("<%U>", joined);
    }
done:
    Py_XDECREF(item);
    Py_XDECREF(sep);
    Py_XDECREF(joined);
    Py_DECREF(parts);
    return res;
}

static PyObject *
handle_get_callback(HandleObject *h, void *Py_UNUSED(closure))
{
    return Py_NewRef(h->callback ? h->callback : Py_None);
}

static PyObject *
handle_get_args(HandleObject *h, void *Py_UNUSED(closure))
{
    return Py_NewRef(h->args ? h->args : Py_None);
}

static PyObject *
handle_get_loop(HandleObject *h, void *Py_UNUSED(closure))
{
    return Py_NewRef(h->loop ? (PyObject *)h->loop : Py_None);
}

static PyObject *
handle_get_source_traceback(HandleObject *h, void *Py_UNUSED(closure))
{
    return Py_NewRef(h->source_traceback ? h->source_traceback : Py_None);
}

static PyObject *
handle_get_context_attr(HandleObject *h, void *Py_UNUSED(closure))
{
    return Py_NewRef(h->context ? h->context : Py_None);
}

static PyObject *
handle_get_cancelled(HandleObject *h, void *Py_UNUSED(closure))
{
    return PyBool_FromLong(h->cancelled);
}

static PyObject *
handle_get_when(HandleObject *h, void *Py_UNUSED(closure))
{
    return handle_when(h, NULL);
}

static PyObject *
handle_get_scheduled(HandleObject *h, void *Py_UNUSED(closure))
{
    return PyBool_FromLong(h->scheduled);
}

/* Shared by Handle and TimerHandle. */
#define HANDLE_METHODS \
    {"cancelled", (PyCFunction)handle_cancelled, METH_NOARGS, \
     "Return True if the callback was cancelled."}, \
    {"get_context", (PyCFunction)handle_get_context, METH_NOARGS, \
     "Return the contextvars.Context the callback runs in."}, \
    {"_run", (PyCFunction)handle_py_run, METH_NOARGS, NULL},

#define HANDLE_GETSET \
    {"_callback", (getter)handle_get_callback, NULL, NULL, NULL}, \
    {"_args", (getter)handle_get_args, NULL, NULL, NULL}, \
    {"_loop", (getter)handle_get_loop, NULL, NULL, NULL}, \
    {"_source_traceback", (getter)handle_get_source_traceback, NULL, NULL, \
     NULL}, \
    {"_cancelled", (getter)handle_get_cancelled, NULL, NULL, NULL}, \
    {"_context", (getter)handle_get_context_attr, NULL, NULL, NULL},

static PyMethodDef handle_methods[] = {
    {"cancel", (PyCFunction)handle_cancel, METH_NOARGS,
     "Cancel the callback. A cancelled callback is not run."},
    HANDLE_METHODS
    {NULL, NULL, 0, NULL}
};

static PyGetSetDef handle_getset[] = {
    HANDLE_GETSET
    {NULL, NULL, NULL, NULL, NULL}
};

static PyType_Slot handle_slots[] = {
    {Py_tp_doc, "A callback scheduled with call_soon()."},
    {Py_tp_dealloc, handle_dealloc},
    {Py_tp_traverse, handle_traverse},
    {Py_tp_clear, handle_clear},
    {Py_tp_repr, handle_repr},
    {Py_tp_methods, handle_methods},
    {Py_tp_getset, handle_getset},
    {0, NULL}
};

static PyType_Spec handle_spec = {
    .name = "asyncloop.Handle",
    .basicsize = sizeof(HandleObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC
             | Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = handle_slots,
};

/* ---- TimerHandle ------------------------------------------------------- */

static PyObject *
timer_cancel(HandleObject *h, PyObject *Py_UNUSED(ignored))
{
    handle_cancel_internal(h);
    Py_RETURN_NONE;
}

static Py_hash_t
timer_hash(HandleObject *h)
{
    PyObject *when = PyFloat_FromDouble(h->when);
    if (when == NULL) {
        return -1;
    }
    Py_hash_t hash = PyObject_Hash(when);
    Py_DECREF(when);
    return hash;
}

/* Ordering by deadline, and equality as asyncio.TimerHandle defines it. */
static PyObject *
timer_richcompare(HandleObject *a, PyObject *other, int op)
{
    if (!Handle_IsTimer(other)) {
        Py_RETURN_NOTIMPLEMENTED;
    }
    HandleObject *b = (HandleObject *)other;
    int eq = -1;
    if (op == Py_EQ || op == Py_NE || op == Py_LE || op == Py_GE) {
        eq = a->when == b->when && a->cancelled == b->cancelled;
        if (eq) {
            eq = PyObject_RichCompareBool(
                a->callback ? a->callback : Py_None,
                b->callback ? b->callback : Py_None, Py_EQ);
        }
        if (eq > 0) {
            eq = PyObject_RichCompareBool(a->args ? a->args : Py_None,
                                          b->args ? b->args : Py_None, Py_EQ);
        }
        if (eq < 0) {
            return NULL;
        }
    }
    switch (op) {
    case Py_LT: return PyBool_FromLong(a->when < b->when);
    case Py_GT: return PyBool_FromLong(a->when > b->when);
    case Py_LE: return PyBool_FromLong(a->when < b->when || eq);
    case Py_GE: return PyBool_FromLong(a->when > b->when || eq);
    case Py_EQ: return PyBool_FromLong(eq);
    default: return PyBool_FromLong(!eq);
    }
}

/* asyncloop.TimerHandle cannot derive from both asyncloop.Handle and
   asyncio.TimerHandle (their layouts differ), so it lists the methods of
   Handle again. */
static PyMethodDef timer_methods[] = {
    {"cancel", (PyCFunction)timer_cancel, METH_NOARGS,
     "Cancel the timer. A cancelled timer is not run."},
    {"when", (PyCFunction)handle_when, METH_NOARGS,
     "Return the scheduled time as a float, in loop.time() seconds."},
    HANDLE_METHODS
    {NULL, NULL, 0, NULL}
};

static PyGetSetDef timer_getset[] = {
    {"_when", (getter)handle_get_when, NULL, NULL, NULL},
    {"_scheduled", (getter)handle_get_scheduled, NULL, NULL, NULL},
    HANDLE_GETSET
    {NULL, NULL, NULL, NULL, NULL}
};

static PyType_Slot timer_slots[] = {
    {Py_tp_doc, "A callback scheduled with call_later() or call_at()."},
    {Py_tp_dealloc, handle_dealloc},
    {Py_tp_traverse, handle_traverse},
    {Py_tp_clear, handle_clear},
    {Py_tp_repr, handle_repr},
    {Py_tp_hash, timer_hash},
    {Py_tp_richcompare, timer_richcompare},
    {Py_tp_methods, timer_methods},
    {Py_tp_getset, timer_getset},
    {0, NULL}
};

static PyType_Spec timer_spec = {
    .name = "asyncloop.TimerHandle",
    .basicsize = sizeof(HandleObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC
             | Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = timer_slots,
};

PyTypeObject *Handle_Type;
PyTypeObject *TimerHandle_Type;

/* Where HandleObject keeps each slot of asyncio's classes. */
static const struct {
    const char *name;
    Py_ssize_t offset;
} slot_fields[] = {
    {"_args", offsetof(HandleObject, args)},
    {"_callback", offsetof(HandleObject, callback)},
    {"_cancelled", offsetof(HandleObject, cancelled_slot)},
    {"_context", offsetof(HandleObject, context)},
    {"_loop", offsetof(HandleObject, loop)},
    {"_repr", offsetof(HandleObject, saved_repr)},
    {"_source_traceback", offsetof(HandleObject, source_traceback)},
    {"_scheduled", offsetof(HandleObject, scheduled_slot)},
    {"_when", offsetof(HandleObject, when_obj)},
};

/* Checks that every slot of the asyncio class base (and its bases) sits
   where HandleObject expects it, and that the layout ends before our own
   fields. */
static int
check_layout(PyTypeObject *base)
{
    if (base->tp_basicsize > (Py_ssize_t)offsetof(HandleObject, when)
        || base->tp_itemsize != 0) {
        goto mismatch;
    }
    for (size_t i = 0; i < sizeof(slot_fields) / sizeof(slot_fields[0]); i++) {
        PyObject *descr = PyObject_GetAttrString((PyObject *)base,
                                                 slot_fields[i].name);
        if (descr == NULL) {
            /* asyncio.Handle has no _when: only TimerHandle's matter. */
            PyErr_Clear();
            continue;
        }
        int ok = Py_IS_TYPE(descr, &PyMemberDescr_Type)
                 && ((PyMemberDescrObject *)descr)->d_member->offset
                    == slot_fields[i].offset;
        Py_DECREF(descr);
        if (!ok) {
            goto mismatch;
        }
    }
    return 0;
mismatch:
    PyErr_Format(PyExc_ImportError,
                 "asyncloop: the instance layout of %s of this Python is not "
                 "the one asyncloop was built for", base->tp_name);
    return -1;
}

/* Creates one of the two types as a subclass of asyncio's. */
static PyTypeObject *
make_subclass(PyObject *module, PyType_Spec *spec, PyObject *bases,
              PyObject *asyncio_base)
{
    if (check_layout((PyTypeObject *)asyncio_base) < 0) {
        return NULL;
    }
    return (PyTypeObject *)PyType_FromModuleAndSpec(module, spec, bases);
}

int
handle_init_types(PyObject *module)
{
    PyObject *asyncio = PyImport_ImportModule("asyncio");
    if (asyncio == NULL) {
        return -1;
    }
    PyObject *handle = PyObject_GetAttrString(asyncio, "Handle");
    PyObject *timer = PyObject_GetAttrString(asyncio, "TimerHandle");
    Py_DECREF(asyncio);
    PyObject *bases = NULL;
    int rc = -1;
    if (handle == NULL || timer == NULL) {
        goto done;
    }
    bases = PyTuple_Pack(1, handle);
    if (bases == NULL) {
        goto done;
    }
    Handle_Type = make_subclass(module, &handle_spec, bases, handle);
    Py_CLEAR(bases);
    if (Handle_Type == NULL) {
        goto done;
    }
    bases = PyTuple_Pack(1, timer);
    if (bases == NULL) {
        goto done;
    }
    TimerHandle_Type = make_subclass(module, &timer_spec, bases, timer);
    if (TimerHandle_Type == NULL) {
        goto done;
    }
    if (PyModule_AddObjectRef(module, "Handle", (PyObject *)Handle_Type) < 0
        || PyModule_AddObjectRef(module, "TimerHandle",
                                 (PyObject *)TimerHandle_Type) < 0) {
        goto done;
    }
    rc = 0;
done:
    Py_XDECREF(handle);
    Py_XDECREF(timer);
    Py_XDECREF(bases);
    return rc;
}
