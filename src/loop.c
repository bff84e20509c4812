/* The Loop type: the ready queue, the iteration, call_soon/call_later,
   create_future/create_task and closing. The Python class asyncloop.Loop
   derives from it and adds what runs once per run or per call (run_forever's
   set-up, the exception handler, executors, signals). */
#include "asyncloop.h"
#include <structmember.h>
#include <errno.h>
#include <math.h>
#include <poll.h>
#include <time.h>

/* asyncio's MAXIMUM_SELECT_TIMEOUT: one day. */
#define MAXIMUM_WAIT 86400.0

double
loop_now(void)
{
    /* The same clock and the same conversion as time.monotonic(), so that
       loop.time() and time.monotonic() agree to the last digit. */
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    int64_t ns = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
    return (double)ns / 1e9;
}

/* The loop's clock for its deadlines. asyncio's loop reads self.time()
   for them, so a program or a test that replaces time() (on the instance,
   as mock.patch.object does, or in a subclass) moves the loop's deadlines
   with it; otherwise the C clock, with no call. Returns -1.0 with an
   exception set on failure. */
static double
loop_time(LoopObject *loop)
{
    if (!loop->time_replaced) {
        return loop_now();
    }
    PyObject *res = PyObject_CallMethod((PyObject *)loop, "time", NULL);
    if (res == NULL) {
        return -1.0;
    }
    double now = PyFloat_AsDouble(res);
    Py_DECREF(res);
    return now;
}

static int
type_replaces_time(PyTypeObject *type)
{
    PyObject *ours = PyObject_GetAttrString((PyObject *)&Loop_Type, "time");
    PyObject *theirs = PyObject_GetAttrString((PyObject *)type, "time");
    int replaced = ours != theirs;
    Py_XDECREF(ours);
    Py_XDECREF(theirs);
    PyErr_Clear();
    return replaced;
}

static int
loop_setattro(LoopObject *loop, PyObject *name, PyObject *value)
{
    if (PyUnicode_Check(name)
        && PyUnicode_CompareWithASCIIString(name, "time") == 0) {
        loop->time_replaced = value != NULL
                              || type_replaces_time(Py_TYPE(loop));
    }
    return PyObject_GenericSetAttr((PyObject *)loop, name, value);
}

int
loop_check_closed(LoopObject *loop)
{
    if (loop->closed) {
        PyErr_SetString(PyExc_RuntimeError, "Event loop is closed");
        return -1;
    }
    return 0;
}

int
loop_check_forked(LoopObject *loop)
{
    if (loop->fork_generation != asyncloop_fork_generation) {
        PyErr_SetString(PyExc_RuntimeError,
                        "this event loop was created in the parent process "
                        "before os.fork() and cannot be used in the child; "
                        "create a new event loop in the child");
        return -1;
    }
    return 0;
}

static int
check_thread(LoopObject *loop)
{
    if (loop->thread_id != 0 && loop->thread_id != PyThread_get_thread_ident()) {
        PyErr_SetString(PyExc_RuntimeError,
                        "Non-thread-safe operation invoked on an event loop "
                        "other than the current one");
        return -1;
    }
    return 0;
}

/* 1 when asyncio's predicate (iscoroutine or iscoroutinefunction) holds
   for obj, 0 when not, -1 on error. */
static int
asyncio_predicate(PyObject *predicate, PyObject *obj)
{
    PyObject *res = PyObject_CallOneArg(predicate, obj);
    if (res == NULL) {
        return -1;
    }
    int truth = PyObject_IsTrue(res);
    Py_DECREF(res);
    return truth;
}

/* asyncio's _check_callback, which it makes in debug mode only: otherwise
   a coroutine function is called when the handle runs (its coroutine is
   never awaited, and a RuntimeWarning says so), and a non-callable fails
   then, through the exception handler. */
static int
check_callback(LoopObject *loop, PyObject *callback, const char *method)
{
    if (!loop->debug) {
        return 0;
    }
    int coro = asyncio_predicate(asyncloop_state.iscoroutine, callback);
    if (coro == 0) {
        coro = asyncio_predicate(asyncloop_state.iscoroutinefunction,
                                 callback);
    }
    if (coro < 0) {
        return -1;
    }
    if (coro) {
        PyErr_Format(PyExc_TypeError,
                     "coroutines cannot be used with %s()", method);
        return -1;
    }
    if (!PyCallable_Check(callback)) {
        PyErr_Format(PyExc_TypeError,
                     "a callable object was expected by %s(), got %R",
                     method, callback);
        return -1;
    }
    return 0;
}

/* ---- the ready queue ---------------------------------------------------- */

/* Takes a new reference to h. */
int
loop_append_ready(LoopObject *loop, HandleObject *h)
{
    if (loop->ready_len == loop->ready_cap) {
        Py_ssize_t cap = loop->ready_cap ? loop->ready_cap * 2 : 256;
        HandleObject **ring = PyMem_Malloc(cap * sizeof(HandleObject *));
        if (ring == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        for (Py_ssize_t i = 0; i < loop->ready_len; i++) {
            ring[i] = loop->ready[(loop->ready_head + i) % loop->ready_cap];
        }
        PyMem_Free(loop->ready);
        loop->ready = ring;
        loop->ready_cap = cap;
        loop->ready_head = 0;
    }
    if (!loop->running) {
        handle_track(h);
    }
    Py_ssize_t tail = (loop->ready_head + loop->ready_len) % loop->ready_cap;
    loop->ready[tail] = (HandleObject *)Py_NewRef(h);
    loop->ready_len++;
    return 0;
}

/* Returns the strong reference the queue held. */
static HandleObject *
ready_pop(LoopObject *loop)
{
    HandleObject *h = loop->ready[loop->ready_head];
    loop->ready_head = (loop->ready_head + 1) % loop->ready_cap;
    loop->ready_len--;
    return h;
}

static void
ready_clear(LoopObject *loop)
{
    /* Drop the queue before the references: a finalizer may call
       call_soon() again. */
    while (loop->ready_len > 0) {
        handle_release(ready_pop(loop));
    }
}

HandleObject *
loop_call_soon(LoopObject *loop, PyObject *callback, PyObject *args,
               PyObject *context)
{
    /* As asyncio's call_soon(): nothing is queued on a closed loop. */
    if (loop_check_closed(loop) < 0) {
        return NULL;
    }
    HandleObject *h = handle_new(Handle_Type, loop, callback, args, context);
    if (h == NULL) {
        return NULL;
    }
    if (loop_append_ready(loop, h) < 0) {
        Py_DECREF(h);
        return NULL;
    }
    return h;
}

/* ---- resources ---------------------------------------------------------- */

void
loop_link_resource(LoopObject *loop, Resource *res)
{
    res->next = loop->resources.next;
    res->prev = &loop->resources;
    loop->resources.next->prev = res;
    loop->resources.next = res;
}

void
loop_unlink_resource(Resource *res)
{
    if (res->next != NULL) {
        res->prev->next = res->next;
        res->next->prev = res->prev;
        res->next = res->prev = NULL;
    }
}

void
loop_set_pending_error(LoopObject *loop)
{
    if (loop->pending_error == NULL) {
        loop->pending_error = err_fetch();
    }
    else {
        PyErr_Clear();
    }
    uv_stop(&loop->uv);
}

/* Once the loop stops, what is still queued may outlive it in garbage:
   the collector must see it (see handle_track()). */
static void
track_pending(LoopObject *loop)
{
    for (Py_ssize_t i = 0; i < loop->ready_len; i++) {
        handle_track(loop->ready[(loop->ready_head + i) % loop->ready_cap]);
    }
    timers_track_all(&loop->timers);
}

/* ---- waiting for events ------------------------------------------------- */

static int
raise_pending_error(LoopObject *loop)
{
    if (loop->pending_error != NULL) {
        PyObject *exc = loop->pending_error;
        loop->pending_error = NULL;
        err_restore(exc);
        return -1;
    }
    return 0;
}

/* libuv adds a new or changed watcher to its epoll set only when it next
   polls; until then, waiting on its descriptor would not cover it. This
   reads libuv's queue of such watchers: its first pointer is the queue's
   next element, which is the queue itself when empty (the same in the
   void *[2] of libuv 1.44 and the struct uv__queue of later versions). */
static int
watchers_pending(uv_loop_t *uv)
{
    void **queue = (void **)&uv->watcher_queue;
    return queue[0] != (void *)queue;
}

/* Lets libuv run the callbacks of what is ready, with the GIL held. */
static int
loop_dispatch(LoopObject *loop)
{
    uv_run(&loop->uv, UV_RUN_NOWAIT);
    if (loop->corked != NULL && loop_send_corked(loop) < 0) {
        return -1;
    }
    return raise_pending_error(loop);
}

enum wait_result {
    WAIT_ERROR = -1,
    WAIT_IDLE,          /* libuv has nothing to run */
    WAIT_READY,         /* libuv may have callbacks to run */
    WAIT_DISPATCHED,    /* they ran already, and queued callbacks */
};

/* Waits up to timeout seconds (forever when negative) for libuv to have
   events, with the GIL released: one release per iteration rather than
   one per callback. */
static enum wait_result
loop_wait(LoopObject *loop, double timeout)
{
    if (timeout != 0 && watchers_pending(&loop->uv)) {
        if (loop_dispatch(loop) < 0) {
            return WAIT_ERROR;
        }
        if (loop->ready_len > 0) {
            return WAIT_DISPATCHED;
        }
    }
    int alive = uv_loop_alive(&loop->uv);
    int uv_deadline = 0;         /* the timeout is libuv's next timer */
    if (alive) {
        int uv_ms = uv_backend_timeout(&loop->uv);
        if (uv_ms >= 0 && (timeout < 0 || uv_ms < timeout * 1e3)) {
            timeout = uv_ms / 1e3;
            uv_deadline = 1;
        }
    }
    if (timeout != 0) {
        struct pollfd pfd = {uv_backend_fd(&loop->uv), POLLIN, 0};
        struct timespec ts, *tsp = NULL;
        if (timeout > 0) {
            ts.tv_sec = (time_t)timeout;
            ts.tv_nsec = (long)((timeout - (double)ts.tv_sec) * 1e9);
            tsp = &ts;
        }
        int rc, err;
        loop->polling = 1;
        Py_BEGIN_ALLOW_THREADS
        rc = ppoll(&pfd, 1, tsp, NULL);
        err = errno;
        Py_END_ALLOW_THREADS
        loop->polling = 0;
        if (rc < 0 && err == EINTR) {
            /* Run the Python-level signal handlers now, e.g. the SIGINT
               handler of asyncio.Runner, or raise KeyboardInterrupt. */
            if (PyErr_CheckSignals() < 0) {
                return WAIT_ERROR;
            }
        }
        if (rc == 0 && !uv_deadline) {
            return WAIT_IDLE;
        }
        alive = 1;
    }
    return alive ? WAIT_READY : WAIT_IDLE;
}

/* ---- the iteration ------------------------------------------------------ */

static int
log_slow_callback(HandleObject *h, PyObject *callback, double dt)
{
    PyObject *what = NULL;
    PyObject *owner = PyObject_GetAttrString(callback, "__self__");
    if (owner == NULL) {
        PyErr_Clear();
    }
    else if (PyObject_TypeCheck(owner, (PyTypeObject *)asyncloop_state.Task)) {
        what = PyObject_Repr(owner);
    }
    Py_XDECREF(owner);
    if (what == NULL) {
        what = PyObject_Str((PyObject *)h);
        if (what == NULL) {
            return -1;
        }
    }
    PyObject *res = PyObject_CallMethod(
        asyncloop_state.logger, "warning", "sOd",
        "Executing %s took %.3f seconds", what, dt);
    Py_DECREF(what);
    Py_XDECREF(res);
    return res == NULL ? -1 : 0;
}

static int
run_handle_debug(LoopObject *loop, HandleObject *h)
{
    PyObject *callback = Py_NewRef(h->callback);
    Py_XSETREF(loop->current_handle, Py_NewRef(h));
    double t0 = loop_now();
    int rc = handle_run(h);
    double dt = loop_now() - t0;
    Py_CLEAR(loop->current_handle);
    if (rc == 0 && dt >= loop->slow_callback_duration) {
        rc = log_slow_callback(h, callback, dt);
    }
    Py_DECREF(callback);
    return rc;
}

/* Runs the first n handles of the ready queue. */
static int
run_ready(LoopObject *loop, Py_ssize_t n)
{
    for (Py_ssize_t i = 0; i < n && loop->ready_len > 0; i++) {
        HandleObject *h = ready_pop(loop);
        int rc = 0;
        if (!h->cancelled) {
            rc = loop->debug ? run_handle_debug(loop, h) : handle_run(h);
        }
        if (loop->corked != NULL && loop_send_corked(loop) < 0 && rc == 0) {
            rc = -1;
        }
        handle_release(h);
        if (rc < 0) {
            return -1;
        }
    }
    return 0;
}

/* Queues the timers due within the clock's resolution and gives their
   number. */
static int
queue_due_timers(LoopObject *loop, Py_ssize_t *count)
{
    *count = 0;
    double now = loop_time(loop);
    if (now == -1.0 && PyErr_Occurred()) {
        return -1;
    }
    double end_time = now + loop->clock_resolution;
    while (loop->timers.len > 0
           && timer_deadline(loop->timers.items[0]) < end_time) {
        HandleObject *h = timers_pop(&loop->timers);
        if (h->cancelled) {
            handle_release(h);
            continue;
        }
        int rc = loop_append_ready(loop, h);
        /* The ready queue holds it now; its pop will decide on tracking. */
        if (rc == 0) {
            Py_DECREF(h);
        }
        else {
            handle_release(h);
            return -1;
        }
        (*count)++;
    }
    return 0;
}

/* One iteration, in asyncio's order: after the wait, the callbacks that
   were ready before it, then the I/O callbacks, then the timers due when
   the wait ended; what any of them schedules runs in the next iteration.
   asyncio queues the I/O callbacks behind the ready ones; libuv runs them
   as it dispatches, so the dispatch comes between the two runs. */
static int
loop_run_once(LoopObject *loop)
{
    if (loop_check_forked(loop) < 0) {
        return -1;
    }
    timers_drop_cancelled(&loop->timers);

    Py_ssize_t nready = loop->ready_len;
    double timeout = -1.0;
    if (nready > 0 || loop->stopping) {
        timeout = 0.0;
    }
    else if (loop->timers.len > 0) {
        double now = loop_time(loop);
        if (now == -1.0 && PyErr_Occurred()) {
            return -1;
        }
        timeout = timer_deadline(loop->timers.items[0]) - now;
        timeout = timeout < 0 ? 0.0 : fmin(timeout, MAXIMUM_WAIT);
    }
    enum wait_result waited = loop_wait(loop, timeout);
    if (waited == WAIT_ERROR) {
        return -1;
    }
    if (waited == WAIT_DISPATCHED) {
        /* Nothing was ready before; what the I/O callbacks queued runs in
           the next iteration, with the timers due by then. */
        return 0;
    }
    Py_ssize_t ntimers;
    if (queue_due_timers(loop, &ntimers) < 0) {
        return -1;
    }
    if (run_ready(loop, nready) < 0) {
        return -1;
    }
    if (waited == WAIT_READY && loop_dispatch(loop) < 0) {
        return -1;
    }
    return run_ready(loop, ntimers);
}

static PyObject *
loop_run_forever_c(LoopObject *loop, PyObject *Py_UNUSED(ignored))
{
    if (loop_check_closed(loop) < 0 || loop_check_forked(loop) < 0) {
        return NULL;
    }
    if (loop->running) {
        PyErr_SetString(PyExc_RuntimeError,
                        "This event loop is already running");
        return NULL;
    }
    loop->running = 1;
    loop->thread_id = PyThread_get_thread_ident();
    int rc = 0;
    while (rc == 0) {
        rc = loop_run_once(loop);
        if (loop->stopping) {
            break;
        }
    }
    loop->stopping = 0;
    loop->running = 0;
    loop->thread_id = 0;
    track_pending(loop);
    if (rc < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

/* ---- scheduling methods ------------------------------------------------- */

/* Parses the keyword-only context= of call_soon and friends. */
static int
parse_context(const char *method, PyObject *const *kwvalues,
              PyObject *kwnames, PyObject **context)
{
    *context = NULL;
    if (kwnames == NULL) {
        return 0;
    }
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(kwnames); i++) {
        PyObject *name = PyTuple_GET_ITEM(kwnames, i);
        if (!PyUnicode_Check(name)
            || PyUnicode_Compare(name, asyncloop_state.str_context) != 0) {
            PyErr_Format(PyExc_TypeError,
                         "%s() got an unexpected keyword argument '%S'",
                         method, name);
            return -1;
        }
        *context = kwvalues[i];
    }
    if (*context == Py_None) {
        *context = NULL;
    }
    return 0;
}

/* The common tail of call_soon/call_later/call_at: validates the callback
   and builds the handle (not yet scheduled). */
static HandleObject *
make_handle(LoopObject *loop, PyTypeObject *type, const char *method,
            PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames,
            int thread_check, int stack_depth)
{
    PyObject *context;
    if (parse_context(method, args + nargs, kwnames, &context) < 0) {
        return NULL;
    }
    if (nargs < 1) {
        PyErr_Format(PyExc_TypeError,
                     "%s() missing 1 required positional argument: "
                     "'callback'", method);
        return NULL;
    }
    if (loop_check_closed(loop) < 0) {
        return NULL;
    }
    if (thread_check && loop->debug && check_thread(loop) < 0) {
        return NULL;
    }
    if (check_callback(loop, args[0], method) < 0) {
        return NULL;
    }
    PyObject *cbargs = PyTuple_New(nargs - 1);
    if (cbargs == NULL) {
        return NULL;
    }
    for (Py_ssize_t i = 1; i < nargs; i++) {
        PyTuple_SET_ITEM(cbargs, i - 1, Py_NewRef(args[i]));
    }
    HandleObject *h = handle_new_traced(type, loop, args[0], cbargs, context,
                                        stack_depth);
    Py_DECREF(cbargs);
    return h;
}

static PyObject *
loop_py_call_soon(LoopObject *loop, PyObject *const *args, Py_ssize_t nargs,
                  PyObject *kwnames)
{
    HandleObject *h = make_handle(loop, Handle_Type, "call_soon", args,
                                  nargs, kwnames, 1, HANDLE_STACK_DEPTH);
    if (h != NULL && loop_append_ready(loop, h) < 0) {
        Py_CLEAR(h);
    }
    return (PyObject *)h;
}

static PyObject *
loop_py_call_soon_threadsafe(LoopObject *loop, PyObject *const *args,
                             Py_ssize_t nargs, PyObject *kwnames)
{
    HandleObject *h = make_handle(loop, Handle_Type, "call_soon_threadsafe",
                                  args, nargs, kwnames, 0,
                                  HANDLE_STACK_DEPTH);
    if (h == NULL) {
        return NULL;
    }
    if (loop_append_ready(loop, h) < 0) {
        Py_DECREF(h);
        return NULL;
    }
    /* Both this check and the loop's decision to wait happen with the GIL
       held, so a loop that is not polling yet will see the new handle. */
    if (loop->polling) {
        uv_async_send(&loop->wakeup);
    }
    return (PyObject *)h;
}

static PyObject *
schedule_timer(LoopObject *loop, double when, const char *method,
               PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames,
               int stack_depth)
{
    HandleObject *h = make_handle(loop, TimerHandle_Type, method, args,
                                  nargs, kwnames, 1, stack_depth);
    if (h == NULL) {
        return NULL;
    }
    h->when = when;
    if (timers_push(&loop->timers, h) < 0) {
        Py_DECREF(h);
        return NULL;
    }
    return (PyObject *)h;
}

static PyObject *
loop_py_call_later(LoopObject *loop, PyObject *const *args, Py_ssize_t nargs,
                   PyObject *kwnames)
{
    if (nargs < 1) {
        PyErr_SetString(PyExc_TypeError,
                        "call_later() missing 2 required positional "
                        "arguments: 'delay' and 'callback'");
        return NULL;
    }
    if (args[0] == Py_None) {
        PyErr_SetString(PyExc_TypeError, "delay must not be None");
        return NULL;
    }
    double delay = PyFloat_AsDouble(args[0]);
    if (delay == -1.0 && PyErr_Occurred()) {
        return NULL;
    }
    double now = loop_time(loop);
    if (now == -1.0 && PyErr_Occurred()) {
        return NULL;
    }
    return schedule_timer(loop, now + delay, "call_later", args + 1,
                          nargs - 1, kwnames, HANDLE_STACK_DEPTH - 1);
}

static PyObject *
loop_py_call_at(LoopObject *loop, PyObject *const *args, Py_ssize_t nargs,
                PyObject *kwnames)
{
    if (nargs < 1) {
        PyErr_SetString(PyExc_TypeError,
                        "call_at() missing 2 required positional "
                        "arguments: 'when' and 'callback'");
        return NULL;
    }
    if (args[0] == Py_None) {
        PyErr_SetString(PyExc_TypeError, "when cannot be None");
        return NULL;
    }
    double when = PyFloat_AsDouble(args[0]);
    if (when == -1.0 && PyErr_Occurred()) {
        return NULL;
    }
    PyObject *h = schedule_timer(loop, when, "call_at", args + 1, nargs - 1,
                                 kwnames, HANDLE_STACK_DEPTH);
    if (h != NULL && !PyFloat_CheckExact(args[0])) {
        ((HandleObject *)h)->when_obj = Py_NewRef(args[0]);
    }
    return h;
}

static PyObject *
loop_py_time(LoopObject *Py_UNUSED(loop), PyObject *Py_UNUSED(ignored))
{
    return PyFloat_FromDouble(loop_now());
}

PyObject *
loop_new_future(LoopObject *loop)
{
    if (loop->loop_kwargs != NULL) {
        return PyObject_Call(asyncloop_state.Future, asyncloop_state.empty_tuple,
                             loop->loop_kwargs);
    }
    PyObject *stack[1] = {(PyObject *)loop};
    return PyObject_Vectorcall(asyncloop_state.Future, stack, 0,
                               asyncloop_state.kwnames_loop);
}

static PyObject *
loop_py_create_future(LoopObject *loop, PyObject *Py_UNUSED(ignored))
{
    return loop_new_future(loop);
}

/* create_task without a task factory: Task(coro, loop=self, **kwargs). */
static PyObject *
create_task_direct(LoopObject *loop, PyObject *coro, PyObject *const *kwvalues,
                   PyObject *kwnames)
{
    Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    if (nkw == 0 && loop->loop_kwargs != NULL) {
        PyObject *args = PyTuple_Pack(1, coro);
        if (args == NULL) {
            return NULL;
        }
        PyObject *task = PyObject_Call(asyncloop_state.Task, args,
                                       loop->loop_kwargs);
        Py_DECREF(args);
        return task;
    }
    if (nkw == 0) {
        PyObject *stack[2] = {coro, (PyObject *)loop};
        return PyObject_Vectorcall(asyncloop_state.Task, stack, 1,
                                   asyncloop_state.kwnames_loop);
    }
    PyObject *names = PySequence_Concat(asyncloop_state.kwnames_loop, kwnames);
    PyObject **stack = PyMem_Malloc((nkw + 2) * sizeof(PyObject *));
    PyObject *task = NULL;
    if (names != NULL && stack != NULL) {
        stack[0] = coro;
        stack[1] = (PyObject *)loop;
        for (Py_ssize_t i = 0; i < nkw; i++) {
            stack[i + 2] = kwvalues[i];
        }
        task = PyObject_Vectorcall(asyncloop_state.Task, stack, 1, names);
    }
    else if (stack == NULL) {
        PyErr_NoMemory();
    }
    PyMem_Free(stack);
    Py_XDECREF(names);
    return task;
}

/* create_task with a task factory, as asyncio: factory(loop, coro) when no
   context is given, factory(loop, coro, context=...) otherwise, then the
   name is set on the result. */
static PyObject *
create_task_factory(LoopObject *loop, PyObject *coro, PyObject *kwargs)
{
    PyObject *name = NULL, *context = NULL, *task = NULL;
    if (kwargs != NULL) {
        name = PyDict_GetItemWithError(kwargs, asyncloop_state.str_name);
        Py_XINCREF(name);
        if (name != NULL && PyDict_DelItem(kwargs, asyncloop_state.str_name) < 0) {
            goto done;
        }
        context = PyDict_GetItemWithError(kwargs, asyncloop_state.str_context);
        if (context == Py_None) {
            if (PyDict_DelItem(kwargs, asyncloop_state.str_context) < 0) {
                goto done;
            }
        }
        if (PyErr_Occurred()) {
            goto done;
        }
        if (PyDict_GET_SIZE(kwargs) == 0) {
            kwargs = NULL;      /* the caller's reference, not ours */
        }
        else {
            Py_INCREF(kwargs);
        }
    }
    PyObject *args = PyTuple_Pack(2, (PyObject *)loop, coro);
    if (args == NULL) {
        Py_XDECREF(kwargs);
        goto done;
    }
    task = PyObject_Call(loop->task_factory, args, kwargs);
    Py_DECREF(args);
    Py_XDECREF(kwargs);
    if (task == NULL || name == NULL || name == Py_None) {
        goto done;
    }
    PyObject *res;
    if (asyncloop_state.set_task_name != NULL) {
        res = PyObject_CallFunctionObjArgs(asyncloop_state.set_task_name,
                                           task, name, NULL);
    }
    else {
        res = PyObject_CallMethodOneArg(task, asyncloop_state.str_set_name,
                                        name);
    }
    if (res == NULL) {
        Py_CLEAR(task);
    }
    Py_XDECREF(res);
done:
    Py_XDECREF(name);
    return task;
}

/* The default loop of 3.11-3.13 takes name= and context= only; later
   ones pass any keyword on to the task (eager_start=, ...), which the
   code below already does. */
static int
check_create_task_keywords(PyObject *kwnames)
{
#if PY_VERSION_HEX < 0x030E0000
    Py_ssize_t n = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *name = PyTuple_GET_ITEM(kwnames, i);
        if (PyUnicode_Compare(name, asyncloop_state.str_name) != 0
            && PyUnicode_Compare(name, asyncloop_state.str_context) != 0) {
            PyErr_Format(PyExc_TypeError,
                         "create_task() got an unexpected keyword argument "
                         "'%S'", name);
            return -1;
        }
    }
#endif
    return 0;
}

static PyObject *
loop_py_create_task(LoopObject *loop, PyObject *const *args, Py_ssize_t nargs,
                    PyObject *kwnames)
{
    if (nargs != 1) {
        PyErr_Format(PyExc_TypeError,
                     "create_task() takes exactly one positional argument "
                     "(%zd given)", nargs);
        return NULL;
    }
    if (check_create_task_keywords(kwnames) < 0
        || loop_check_closed(loop) < 0) {
        return NULL;
    }
    if (loop->task_factory == NULL || loop->task_factory == Py_None) {
        return create_task_direct(loop, args[0], args + 1, kwnames);
    }
    PyObject *kwargs = NULL;
    if (kwnames != NULL && PyTuple_GET_SIZE(kwnames) > 0) {
        kwargs = PyDict_New();
        if (kwargs == NULL) {
            return NULL;
        }
        for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(kwnames); i++) {
            if (PyDict_SetItem(kwargs, PyTuple_GET_ITEM(kwnames, i),
                               args[1 + i]) < 0) {
                Py_DECREF(kwargs);
                return NULL;
            }
        }
    }
    PyObject *task = create_task_factory(loop, args[0], kwargs);
    Py_XDECREF(kwargs);
    return task;
}

static PyObject *
loop_py_stop(LoopObject *loop, PyObject *Py_UNUSED(ignored))
{
    loop->stopping = 1;
    Py_RETURN_NONE;
}

static PyObject *
loop_py_is_running(LoopObject *loop, PyObject *Py_UNUSED(ignored))
{
    return PyBool_FromLong(loop->running);
}

static PyObject *
loop_py_is_closed(LoopObject *loop, PyObject *Py_UNUSED(ignored))
{
    return PyBool_FromLong(loop->closed);
}

static PyObject *
loop_py_get_debug(LoopObject *loop, PyObject *Py_UNUSED(ignored))
{
    return PyBool_FromLong(loop->debug);
}

static PyObject *
loop_py_check_closed(LoopObject *loop, PyObject *Py_UNUSED(ignored))
{
    if (loop_check_closed(loop) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
loop_py_check_thread(LoopObject *loop, PyObject *Py_UNUSED(ignored))
{
    if (check_thread(loop) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

/* ---- closing ------------------------------------------------------------ */

static void
close_uv(LoopObject *loop)
{
    if (!loop->uv_initialized) {
        return;
    }
    loop->uv_initialized = 0;
    if (loop->fork_generation != asyncloop_fork_generation) {
        /* In a forked child, closing libuv's handles would edit the epoll
           set shared with the parent: leave them to the process exit. */
        return;
    }
    poll_close(loop);
    loop_drop_corked(loop);
    while (loop->resources.next != &loop->resources) {
        Resource *res = loop->resources.next;
        loop_unlink_resource(res);
        res->close(res);
    }
    uv_close((uv_handle_t *)&loop->wakeup, NULL);
    /* Let libuv call the close callbacks, which drop the references the
       handles held; then nothing of libuv refers to this object. */
    uv_run(&loop->uv, UV_RUN_DEFAULT);
    if (uv_loop_close(&loop->uv) != 0) {
        /* Handles we do not know of are still open: keep the memory
           rather than free what libuv still points to. */
        loop->uv_initialized = 1;
    }
    PyErr_Clear();
    Py_CLEAR(loop->pending_error);
}

static PyObject *
loop_py_close_c(LoopObject *loop, PyObject *Py_UNUSED(ignored))
{
    if (loop->running) {
        PyErr_SetString(PyExc_RuntimeError,
                        "Cannot close a running event loop");
        return NULL;
    }
    if (loop->closed) {
        Py_RETURN_NONE;
    }
    loop->closed = 1;
    ready_clear(loop);
    timers_clear(&loop->timers);
    close_uv(loop);
    /* Breaks the loop -> loop_kwargs -> loop cycle, so that a closed loop is
       freed by its reference count alone, as asyncio's loops are. */
    Py_CLEAR(loop->loop_kwargs);
    Py_RETURN_NONE;
}

/* ---- the type ----------------------------------------------------------- */

static void
wakeup_cb(uv_async_t *Py_UNUSED(handle))
{
    /* Nothing to do: the waiting is over and the ready queue has work. */
}

static PyObject *
loop_new(PyTypeObject *type, PyObject *Py_UNUSED(args),
         PyObject *Py_UNUSED(kwds))
{
    LoopObject *loop = (LoopObject *)type->tp_alloc(type, 0);
    if (loop == NULL) {
        return NULL;
    }
    loop->resources.next = loop->resources.prev = &loop->resources;
    loop->poll_epfd = -1;
    loop->time_replaced = type != &Loop_Type && type_replaces_time(type);
    loop->fork_generation = asyncloop_fork_generation;
    loop->slow_callback_duration = 0.1;
    loop->clock_resolution = 1e-9;
    struct timespec res;
    if (clock_getres(CLOCK_MONOTONIC, &res) == 0) {
        loop->clock_resolution = res.tv_sec + res.tv_nsec * 1e-9;
    }
    int err = uv_loop_init(&loop->uv);
    if (err < 0) {
        error_from_uv(err);
        Py_DECREF(loop);
        return NULL;
    }
    loop->uv.data = loop;
    err = uv_async_init(&loop->uv, &loop->wakeup, wakeup_cb);
    if (err < 0) {
        uv_loop_close(&loop->uv);
        error_from_uv(err);
        Py_DECREF(loop);
        return NULL;
    }
    /* One pass while the wakeup handle is active puts its descriptor in
       libuv's epoll set (see watchers_pending()); after that, the wakeup
       handle alone must not count as work for libuv. */
    uv_run(&loop->uv, UV_RUN_NOWAIT);
    uv_unref((uv_handle_t *)&loop->wakeup);
    loop->uv_initialized = 1;
    loop->readers = PyDict_New();
    loop->writers = PyDict_New();
    loop->watched_files = PyDict_New();
    loop->loop_kwargs = PyDict_New();
    if (loop->loop_kwargs != NULL
        && PyDict_SetItem(loop->loop_kwargs, asyncloop_state.str_loop,
                          (PyObject *)loop) < 0) {
        Py_CLEAR(loop->loop_kwargs);
    }
    if (loop->readers == NULL || loop->writers == NULL
        || loop->watched_files == NULL || loop->loop_kwargs == NULL) {
        Py_DECREF(loop);
        return NULL;
    }
    return (PyObject *)loop;
}

static int
loop_traverse(LoopObject *loop, visitproc visit, void *arg)
{
    for (Resource *res = loop->resources.next; res != &loop->resources;
         res = res->next) {
        Py_VISIT(res->owner);
    }
    for (Py_ssize_t i = 0; i < loop->ready_len; i++) {
        Py_VISIT(loop->ready[(loop->ready_head + i) % loop->ready_cap]);
    }
    if (timers_traverse(&loop->timers, visit, arg) < 0) {
        return -1;
    }
    Py_VISIT(loop->exception_handler);
    Py_VISIT(loop->task_factory);
    Py_VISIT(loop->current_handle);
    Py_VISIT(loop->pending_error);
    Py_VISIT(loop->readers);
    Py_VISIT(loop->writers);
    Py_VISIT(loop->watched_files);
    Py_VISIT(loop->loop_kwargs);
    for (TransportObject *tr = loop->corked; tr != NULL;
         tr = tr->next_corked) {
        Py_VISIT(tr);
    }
    return 0;
}

static int
loop_clear(LoopObject *loop)
{
    loop_drop_corked(loop);
    ready_clear(loop);
    timers_clear(&loop->timers);
    Py_CLEAR(loop->exception_handler);
    Py_CLEAR(loop->task_factory);
    Py_CLEAR(loop->current_handle);
    Py_CLEAR(loop->pending_error);
    Py_CLEAR(loop->loop_kwargs);
    if (loop->readers != NULL) {
        PyDict_Clear(loop->readers);
    }
    if (loop->writers != NULL) {
        PyDict_Clear(loop->writers);
    }
    if (loop->watched_files != NULL) {
        PyDict_Clear(loop->watched_files);
    }
    return 0;
}

static void
loop_dealloc(LoopObject *loop)
{
    PyObject_GC_UnTrack(loop);
    if (loop->weakreflist != NULL) {
        PyObject_ClearWeakRefs((PyObject *)loop);
    }
    loop->closed = 1;
    loop_clear(loop);
    close_uv(loop);
    if (loop->uv_initialized) {
        /* libuv still holds pointers into this object: leak it rather
           than let libuv write into freed memory. */
        return;
    }
    Py_CLEAR(loop->readers);
    Py_CLEAR(loop->writers);
    Py_CLEAR(loop->watched_files);
    timers_free(&loop->timers);
    PyMem_Free(loop->ready);
    Py_TYPE(loop)->tp_free((PyObject *)loop);
}

static PyObject *
loop_get_debug_flag(LoopObject *loop, void *Py_UNUSED(closure))
{
    return PyBool_FromLong(loop->debug);
}

static int
loop_set_debug_flag(LoopObject *loop, PyObject *value, void *Py_UNUSED(c))
{
    int flag = value ? PyObject_IsTrue(value) : 0;
    if (flag < 0) {
        return -1;
    }
    loop->debug = (char)flag;
    return 0;
}

static PyObject *
loop_get_thread_id(LoopObject *loop, void *Py_UNUSED(closure))
{
    if (loop->thread_id == 0) {
        Py_RETURN_NONE;
    }
    return PyLong_FromUnsignedLong(loop->thread_id);
}

static PyObject *
loop_get_ready_count(LoopObject *loop, void *Py_UNUSED(closure))
{
    return PyLong_FromSsize_t(loop->ready_len);
}

static PyObject *
loop_get_timer_count(LoopObject *loop, void *Py_UNUSED(closure))
{
    return PyLong_FromSsize_t(loop->timers.len);
}

static PyObject *
loop_get_stopping(LoopObject *loop, void *Py_UNUSED(closure))
{
    return PyBool_FromLong(loop->stopping);
}

static PyObject *
loop_get_object(PyObject **slot)
{
    return Py_NewRef(*slot ? *slot : Py_None);
}

static int
loop_set_object(PyObject **slot, PyObject *value)
{
    Py_XSETREF(*slot, value == Py_None ? NULL : Py_XNewRef(value));
    return 0;
}

static PyObject *
loop_get_exception_handler(LoopObject *loop, void *Py_UNUSED(c))
{
    return loop_get_object(&loop->exception_handler);
}

static int
loop_set_exception_handler(LoopObject *loop, PyObject *v, void *Py_UNUSED(c))
{
    return loop_set_object(&loop->exception_handler, v);
}

static PyObject *
loop_get_task_factory(LoopObject *loop, void *Py_UNUSED(c))
{
    return loop_get_object(&loop->task_factory);
}

static int
loop_set_task_factory(LoopObject *loop, PyObject *v, void *Py_UNUSED(c))
{
    return loop_set_object(&loop->task_factory, v);
}

static PyObject *
loop_get_current_handle(LoopObject *loop, void *Py_UNUSED(c))
{
    return loop_get_object(&loop->current_handle);
}

static PyGetSetDef loop_getset[] = {
    {"_debug", (getter)loop_get_debug_flag, (setter)loop_set_debug_flag,
     NULL, NULL},
    {"_thread_id", (getter)loop_get_thread_id, NULL, NULL, NULL},
    {"_ready_count", (getter)loop_get_ready_count, NULL,
     "Number of callbacks in the ready queue.", NULL},
    {"_timer_count", (getter)loop_get_timer_count, NULL,
     "Number of timers in the heap, cancelled ones included.", NULL},
    {"_stopping", (getter)loop_get_stopping, NULL, NULL, NULL},
    {"_exception_handler", (getter)loop_get_exception_handler,
     (setter)loop_set_exception_handler, NULL, NULL},
    {"_task_factory", (getter)loop_get_task_factory,
     (setter)loop_set_task_factory, NULL, NULL},
    {"_current_handle", (getter)loop_get_current_handle, NULL, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL}
};

static PyMemberDef loop_members[] = {
    {"slow_callback_duration", T_DOUBLE,
     offsetof(LoopObject, slow_callback_duration), 0,
     "In debug mode, callbacks that take longer are logged (seconds)."},
    {"_clock_resolution", T_DOUBLE, offsetof(LoopObject, clock_resolution),
     READONLY, NULL},
    {NULL, 0, 0, 0, NULL}
};

#define FASTCALL_KW (METH_FASTCALL | METH_KEYWORDS)

static PyMethodDef loop_methods[] = {
    {"call_soon", (PyCFunction)(void (*)(void))loop_py_call_soon, FASTCALL_KW,
     "call_soon(callback, *args, context=None): run callback soon."},
    {"call_soon_threadsafe",
     (PyCFunction)(void (*)(void))loop_py_call_soon_threadsafe, FASTCALL_KW,
     "Like call_soon(), but safe to call from another thread."},
    {"call_later", (PyCFunction)(void (*)(void))loop_py_call_later,
     FASTCALL_KW, "call_later(delay, callback, *args, context=None)"},
    {"call_at", (PyCFunction)(void (*)(void))loop_py_call_at, FASTCALL_KW,
     "call_at(when, callback, *args, context=None)"},
    {"time", (PyCFunction)loop_py_time, METH_NOARGS,
     "The loop's clock: time.monotonic()."},
    {"create_future", (PyCFunction)loop_py_create_future, METH_NOARGS,
     "Create an asyncio.Future attached to the loop."},
    {"create_task", (PyCFunction)(void (*)(void))loop_py_create_task,
     FASTCALL_KW, "create_task(coro, *, name=None, context=None)"},
    {"stop", (PyCFunction)loop_py_stop, METH_NOARGS,
     "Stop the loop after the current iteration."},
    {"is_running", (PyCFunction)loop_py_is_running, METH_NOARGS, NULL},
    {"is_closed", (PyCFunction)loop_py_is_closed, METH_NOARGS, NULL},
    {"get_debug", (PyCFunction)loop_py_get_debug, METH_NOARGS, NULL},
    {"_check_closed", (PyCFunction)loop_py_check_closed, METH_NOARGS, NULL},
    {"_check_thread", (PyCFunction)loop_py_check_thread, METH_NOARGS, NULL},
    {"_run_forever_c", (PyCFunction)loop_run_forever_c, METH_NOARGS, NULL},
    {"_close_c", (PyCFunction)loop_py_close_c, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL}
};

PyTypeObject Loop_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "asyncloop._loop.Loop",
    .tp_doc = "The C core of asyncloop.Loop.",
    .tp_basicsize = sizeof(LoopObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_new = loop_new,
    .tp_setattro = (setattrofunc)loop_setattro,
    .tp_dealloc = (destructor)loop_dealloc,
    .tp_traverse = (traverseproc)loop_traverse,
    .tp_clear = (inquiry)loop_clear,
    .tp_weaklistoffset = offsetof(LoopObject, weakreflist),
    .tp_methods = loop_methods,
    .tp_getset = loop_getset,
    .tp_members = loop_members,
};

/* Lets the other files of the extension add their methods to the Loop type
   after it is ready, each keeping its own method table. */
int
loop_add_methods(PyMethodDef *defs)
{
    PyObject *dict = Loop_Type.tp_dict;
    for (PyMethodDef *def = defs; def->ml_name != NULL; def++) {
        PyObject *descr = PyDescr_NewMethod(&Loop_Type, def);
        if (descr == NULL) {
            return -1;
        }
        int rc = PyDict_SetItemString(dict, def->ml_name, descr);
        Py_DECREF(descr);
        if (rc < 0) {
            return -1;
        }
    }
    PyType_Modified(&Loop_Type);
    return 0;
}
