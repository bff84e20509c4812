/* Module init of asyncloop._loop: the types, the objects imported once, and
   the fork hook. */
#include "asyncloop.h"

ModuleState asyncloop_state;
unsigned long asyncloop_fork_generation = 1;

static PyObject *
import_attr(const char *module, const char *name)
{
    PyObject *mod = PyImport_ImportModule(module);
    if (mod == NULL) {
        return NULL;
    }
    PyObject *attr = PyObject_GetAttrString(mod, name);
    Py_DECREF(mod);
    return attr;
}

static int
intern(PyObject **slot, const char *text)
{
    *slot = PyUnicode_InternFromString(text);
    return *slot == NULL ? -1 : 0;
}

static int
init_state(ModuleState *st)
{
    st->Future = import_attr("asyncio", "Future");
    st->Task = import_attr("asyncio", "Task");
    st->format_callback_source = import_attr("asyncio.format_helpers",
                                             "_format_callback_source");
    st->extract_stack = import_attr("asyncio.format_helpers",
                                    "extract_stack");
    st->iscoroutine = import_attr("asyncio.coroutines", "iscoroutine");
    st->iscoroutinefunction = import_attr("asyncio.coroutines",
                                          "iscoroutinefunction");
    st->logger = import_attr("asyncio.log", "logger");
    if (st->Future == NULL || st->Task == NULL
        || st->format_callback_source == NULL || st->extract_stack == NULL
        || st->iscoroutine == NULL || st->iscoroutinefunction == NULL
        || st->logger == NULL) {
        return -1;
    }
    /* Gone in 3.13, where create_task calls task.set_name() itself. */
    st->set_task_name = import_attr("asyncio.tasks", "_set_task_name");
    if (st->set_task_name == NULL) {
        PyErr_Clear();
    }
    if (intern(&st->str_call_exception_handler, "call_exception_handler")
        || intern(&st->str_loop, "loop") || intern(&st->str_name, "name")
        || intern(&st->str_context, "context")
        || intern(&st->str_set_name, "set_name")
        || intern(&st->str_message, "message")
        || intern(&st->str_exception, "exception")
        || intern(&st->str_handle, "handle")
        || intern(&st->str_source_traceback, "source_traceback")) {
        return -1;
    }
    st->kwnames_loop = PyTuple_Pack(1, st->str_loop);
    st->kwnames_debug = Py_BuildValue("(s)", "debug");
    st->empty_tuple = PyTuple_New(0);
    return st->kwnames_loop && st->kwnames_debug && st->empty_tuple ? 0 : -1;
}

/* Registered with os.register_at_fork(after_in_child=...). */
static PyObject *
after_fork_in_child(PyObject *Py_UNUSED(module), PyObject *Py_UNUSED(arg))
{
    asyncloop_fork_generation++;
    Py_RETURN_NONE;
}

static PyObject *
libuv_version(PyObject *Py_UNUSED(module), PyObject *Py_UNUSED(arg))
{
    return PyUnicode_FromString(uv_version_string());
}

static PyMethodDef module_methods[] = {
    {"_after_fork_in_child", after_fork_in_child, METH_NOARGS, NULL},
    {"libuv_version", libuv_version, METH_NOARGS,
     "The version of libuv the extension runs on."},
    {NULL, NULL, 0, NULL}
};

static int
register_fork_hook(PyObject *module)
{
    PyObject *hook = PyObject_GetAttrString(module, "_after_fork_in_child");
    PyObject *reg = import_attr("os", "register_at_fork");
    PyObject *kwargs = NULL, *args = NULL, *res = NULL;
    if (hook != NULL && reg != NULL) {
        kwargs = Py_BuildValue("{sO}", "after_in_child", hook);
        args = PyTuple_New(0);
    }
    if (kwargs != NULL && args != NULL) {
        res = PyObject_Call(reg, args, kwargs);
    }
    Py_XDECREF(hook);
    Py_XDECREF(reg);
    Py_XDECREF(kwargs);
    Py_XDECREF(args);
    Py_XDECREF(res);
    return res == NULL ? -1 : 0;
}

static int
add_type(PyObject *module, PyTypeObject *type, const char *name)
{
    if (PyType_Ready(type) < 0) {
        return -1;
    }
    Py_INCREF(type);
    if (PyModule_AddObject(module, name, (PyObject *)type) < 0) {
        Py_DECREF(type);
        return -1;
    }
    return 0;
}

/* Each file that adds types or Loop methods has an init function here. */
static int (*const part_inits[])(PyObject *) = {
    poll_init,
    sock_init, udp_init,
    stream_init,
};

static int
init_parts(PyObject *module)
{
    for (size_t i = 0; i < sizeof(part_inits) / sizeof(part_inits[0]); i++) {
        if (part_inits[i](module) < 0) {
            return -1;
        }
    }
    return 0;
}

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "asyncloop._loop",
    .m_doc = "The C core of asyncloop: an asyncio event loop on libuv.",
    .m_size = -1,
    .m_methods = module_methods,
};

PyMODINIT_FUNC
PyInit__loop(void)
{
    PyObject *module = PyModule_Create(&module_def);
    if (module == NULL) {
        return NULL;
    }
    if (init_state(&asyncloop_state) < 0
        || handle_init_types(module) < 0
        || add_type(module, &Loop_Type, "Loop") < 0
        || init_parts(module) < 0
        || register_fork_hook(module) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
