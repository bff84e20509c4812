/* asyncloop: the one internal header of the C extension asyncloop._loop. */
#ifndef ASYNCLOOP_H
#define ASYNCLOOP_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <uv.h>
#include <stdint.h>
#include <sys/socket.h>

/* ---- compatibility ----------------------------------------------------- */

/* The raised exception as one object (PyErr_GetRaisedException of 3.12). */
static inline PyObject *
err_fetch(void)
{
#if PY_VERSION_HEX >= 0x030C0000
    return PyErr_GetRaisedException();
#else
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    if (type == NULL) {
        return NULL;
    }
    PyErr_NormalizeException(&type, &value, &tb);
    if (tb != NULL) {
        PyException_SetTraceback(value, tb);
    }
    Py_DECREF(type);
    Py_XDECREF(tb);
    return value;
#endif
}

/* Raises exc again; steals the reference. */
static inline void
err_restore(PyObject *exc)
{
#if PY_VERSION_HEX >= 0x030C0000
    PyErr_SetRaisedException(exc);
#else
    PyErr_Restore(Py_NewRef((PyObject *)Py_TYPE(exc)), exc,
                  PyException_GetTraceback(exc));
#endif
}

/* asyncio's default low-water mark, high // 4: Python's floor division,
   so that a negative high gives asyncio's value in the error message. */
static inline Py_ssize_t
default_low_water(Py_ssize_t high)
{
    return high / 4 - (high % 4 != 0 && high < 0);
}

/* ---- module state (module.c) ------------------------------------------ */

/* Objects imported once at module init and kept for the process lifetime. */
typedef struct {
    PyObject *Future;                /* asyncio.Future */
    PyObject *Task;                  /* asyncio.Task */
    PyObject *format_callback_source;/* asyncio.format_helpers._format_callback_source */
    PyObject *extract_stack;         /* asyncio.format_helpers.extract_stack */
    PyObject *iscoroutine;           /* asyncio.coroutines.iscoroutine */
    PyObject *iscoroutinefunction;   /* asyncio.coroutines.iscoroutinefunction */
    PyObject *set_task_name;         /* asyncio.tasks._set_task_name or NULL */
    PyObject *logger;                /* asyncio.log.logger */
    PyObject *str_call_exception_handler;
    PyObject *str_loop;
    PyObject *str_name;
    PyObject *str_context;
    PyObject *str_set_name;
    PyObject *str_message;
    PyObject *str_exception;
    PyObject *str_handle;
    PyObject *str_source_traceback;
    PyObject *kwnames_loop;          /* ('loop',) */
    PyObject *kwnames_debug;         /* ('debug',) */
    PyObject *empty_tuple;
} ModuleState;

extern ModuleState asyncloop_state;

/* Incremented in the child after os.fork(): loops created before it are
   unusable there, since their libuv state (the epoll descriptor) is shared
   with the parent. */
extern unsigned long asyncloop_fork_generation;

/* ---- handles (handle.c) ------------------------------------------------ */

struct LoopObject;

/* Handle and TimerHandle subclass asyncio.Handle and asyncio.TimerHandle,
   as the documentation of call_soon promises an asyncio.Handle. Instances
   therefore start with the __slots__ of those Python classes, which CPython
   lays out in sorted order; asyncloop keeps its own references in them, so
   they cost no memory of their own. module init checks every offset
   against the running interpreter's classes. The slots of flags
   (_cancelled, _scheduled) stay empty: attributes of those names are
   served from the C flags. */
typedef struct HandleObject {
    PyObject_HEAD
    PyObject *args;              /* _args: tuple; NULL once cancelled */
    PyObject *callback;          /* _callback: NULL once cancelled */
    PyObject *cancelled_slot;    /* _cancelled (unused) */
    PyObject *context;           /* _context: contextvars.Context */
    struct LoopObject *loop;     /* _loop */
    PyObject *saved_repr;        /* _repr: kept at cancel() in debug mode */
    PyObject *source_traceback;  /* _source_traceback: debug mode only */
#if PY_VERSION_HEX < 0x030C0000
    PyObject *weakreflist;       /* __weakref__ (3.12+ keep it elsewhere) */
#endif
    PyObject *scheduled_slot;    /* TimerHandle's _scheduled (unused) */
    PyObject *when_obj;          /* TimerHandle's _when: call_at's deadline
                                    when not a float, shown as given */
    double when;                 /* TimerHandle only, from here on */
    uint64_t seq;                /* scheduling order among equal deadlines */
    PyObject *untracked_context; /* the context while it is hidden from the
                                    collector: see handle_track() */
    char cancelled;
    char scheduled;              /* sits in the loop's timer heap */
} HandleObject;

extern PyTypeObject *Handle_Type;
extern PyTypeObject *TimerHandle_Type;

#define Handle_IsTimer(h) (Py_TYPE(h) == TimerHandle_Type || \
                           PyType_IsSubtype(Py_TYPE(h), TimerHandle_Type))

int handle_init_types(PyObject *module);

HandleObject *handle_new(PyTypeObject *type, struct LoopObject *loop,
                         PyObject *callback, PyObject *args,
                         PyObject *context);
/* In debug mode a handle keeps the stack of its creation. asyncio's keeps
   10 frames from inside its own methods, then drops those of its methods:
   8 frames of the caller's stack remain for call_soon and call_at, 7 for
   call_later. handle_new() keeps HANDLE_STACK_DEPTH frames. */
#define HANDLE_STACK_DEPTH 8
HandleObject *handle_new_traced(PyTypeObject *type, struct LoopObject *loop,
                                PyObject *callback, PyObject *args,
                                PyObject *context, int stack_depth);
/* Runs the callback in its context. Returns 0, or -1 with
   KeyboardInterrupt/SystemExit (or an error of the exception handler)
   set, which must stop the loop. */
int handle_run(HandleObject *h);
void handle_cancel_internal(HandleObject *h);
void handle_track(HandleObject *h);
/* Drops the reference the ready queue or the timer heap held. */
void handle_release(HandleObject *h);

/* ---- timer heap (timers.c) -------------------------------------------- */

typedef struct {
    HandleObject **items;        /* strong references */
    Py_ssize_t len;
    Py_ssize_t cap;
    Py_ssize_t cancelled;        /* cancelled handles still in the heap */
    uint64_t next_seq;
} TimerHeap;

/* The deadline the heap orders by: a NaN deadline counts as already due,
   as the default loop runs such a timer at once. */
static inline double
timer_deadline(const HandleObject *h)
{
    return h->when == h->when ? h->when : -Py_HUGE_VAL;
}

int timers_push(TimerHeap *heap, HandleObject *h);
HandleObject *timers_pop(TimerHeap *heap);      /* new reference */
void timers_drop_cancelled(TimerHeap *heap);
void timers_clear(TimerHeap *heap);
void timers_track_all(TimerHeap *heap);
void timers_free(TimerHeap *heap);
int timers_traverse(TimerHeap *heap, visitproc visit, void *arg);

/* ---- loop resources ---------------------------------------------------- */

/* Every object that owns a libuv handle links itself into its loop's list,
   so that Loop.close() can close handles it does not know the type of.
   close() must start uv_close(); the object drops its own references in
   the close callback.

   While linked, the owner holds one reference to itself for libuv, and the
   loop's tp_traverse reports that reference as the loop's: a loop dropped
   with open servers and connections is then garbage with them, and its
   finalizer closes it (as the default loop's __del__ does), where an
   unreported reference would keep the loop and all it holds alive for
   ever. */
typedef struct Resource {
    struct Resource *prev;
    struct Resource *next;
    PyObject *owner;
    void (*close)(struct Resource *res);
} Resource;

/* ---- the loop (loop.c) -------------------------------------------------- */

typedef struct LoopObject {
    PyObject_HEAD
    uv_loop_t uv;
    uv_async_t wakeup;           /* call_soon_threadsafe from other threads */
    Resource resources;          /* list head of open libuv-owning objects */

    HandleObject **ready;        /* ring buffer of strong references */
    Py_ssize_t ready_head;
    Py_ssize_t ready_len;
    Py_ssize_t ready_cap;
    TimerHeap timers;

    char uv_initialized;
    char closed;
    char running;
    char stopping;
    char debug;
    char polling;                /* waiting for events with the GIL released */
    char time_replaced;          /* time() is not the C one (see loop_time) */
    unsigned long thread_id;     /* of run_forever, 0 when not running */
    unsigned long fork_generation;
    double slow_callback_duration;
    double clock_resolution;

    PyObject *exception_handler;
    PyObject *task_factory;
    PyObject *current_handle;    /* set while a handle runs in debug mode */
    PyObject *pending_error;     /* KeyboardInterrupt/SystemExit raised inside
                                    a libuv callback, re-raised after uv_run */
    /* add_reader/add_writer: an epoll instance of our own, watched by one
       uv_poll_t, so that a bad or closed descriptor is an OSError of ours
       rather than an abort() inside libuv (see poll.c). */
    int poll_epfd;
    uv_poll_t poll_watcher;
    char poll_watcher_open;
    PyObject *readers;           /* {fd: Handle} */
    PyObject *writers;           /* {fd: Handle} */
    PyObject *watched_files;     /* {fd: file object} for the watchers added
                                    with an object rather than a number, so
                                    that a closed one (fileno() -1) is still
                                    found, as selectors finds it */
    /* {'loop': self}: asyncio's C Future and Task have no vectorcall, so a
       call with keywords builds a dict each time; this one is reused. */
    PyObject *loop_kwargs;
    /* Transports holding the writes of the running callback, to send when
       it returns (see stream.c); one strong reference each. */
    struct TransportObject *corked;

    PyObject *weakreflist;
} LoopObject;

extern PyTypeObject Loop_Type;

double loop_now(void);
int loop_check_closed(LoopObject *loop);
int loop_check_forked(LoopObject *loop);
int loop_append_ready(LoopObject *loop, HandleObject *h);
HandleObject *loop_call_soon(LoopObject *loop, PyObject *callback,
                             PyObject *args, PyObject *context);
void loop_link_resource(LoopObject *loop, Resource *res);
void loop_unlink_resource(Resource *res);
/* Called by libuv callbacks when a Python callback raised
   KeyboardInterrupt/SystemExit: keeps the exception and stops uv_run. */
void loop_set_pending_error(LoopObject *loop);
int loop_add_methods(PyMethodDef *defs);
/* stream.c: sends the writes held while a callback ran; -1 if a protocol's
   pause_writing() raised KeyboardInterrupt/SystemExit. */
int loop_send_corked(LoopObject *loop);
void loop_drop_corked(LoopObject *loop);
/* asyncio.Future(loop=loop) */
PyObject *loop_new_future(LoopObject *loop);

/* ---- descriptor watchers (poll.c) -------------------------------------- */

int poll_init(PyObject *module);
/* Unregisters every reader and writer and closes the epoll instance. */
void poll_close(LoopObject *loop);
/* An int, or an object with fileno(): the descriptor, or -1 with
   ValueError set. */
int poll_fileobj_to_fd(PyObject *fileobj);
/* add_reader (for_write 0) / add_writer (1) for C code: callback(*args)
   runs from the ready queue whenever fd is ready. Replaces (and cancels)
   the handle watching fd before. Returns the new Handle (a new reference)
   or NULL with an exception set. */
HandleObject *poll_watch(LoopObject *loop, int for_write, int fd,
                         PyObject *callback, PyObject *args);
/* remove_reader / remove_writer: 1 if fd was watched, 0 if not, -1 on
   error. */
int poll_unwatch(LoopObject *loop, int for_write, int fd);
/* RuntimeError unless fd is free of the loop's transports: the registry
   is loop._transports, {fd: transport}, which transports fill when they
   adopt a descriptor (see asyncloop/_lowlevel.py). 0 or -1. */
int poll_check_no_transport(LoopObject *loop, int fd);

/* ---- sock_* coroutines (sock.c), datagram transport (udp.c) ------------ */

int sock_init(PyObject *module);
int udp_init(PyObject *module);

/* ---- errors (errors.c) --------------------------------------------------- */

/* Sets the OSError subclass matching a negative libuv error code. */
PyObject *error_from_uv(int uverr);
PyObject *error_from_uv_with_text(int uverr, const char *what);
/* A write to a transport whose connection is lost: counted, and logged
   as asyncio does once the count reaches its threshold. */
int log_write_after_lost(unsigned long *conn_lost);

/* ---- network transports and servers (stream.c, server.c) --------------- */

/* A part of the write buffer: len bytes at base, kept alive by obj (a
   write queued by reference), or in block (small writes copied). */
typedef struct {
    PyObject *obj;
    char *block;
    char *base;
    size_t len;
} WriteChunk;

/* write_blocks.c: the memory small queued writes are copied into. */
#define WRITE_BLOCK_SIZE (256 * 1024)
char *write_block_alloc(void);          /* NULL with MemoryError set */
void write_block_free(char *block);

typedef struct TransportObject {
    PyObject_HEAD
    PyObject *extra;             /* asyncio.BaseTransport's `_extra` slot:
                                    must stay the first field */
    PyObject *flow_slots[4];     /* the slots of asyncio's _FlowControlMixin
                                    (the base class), left NULL: the type
                                    overrides each with a getter */
    PyObject *weakreflist;
    PyObject *dict;              /* __dict__, made when first used */
    Resource res;
    LoopObject *loop;
    union {
        uv_handle_t handle;
        uv_stream_t stream;
        uv_tcp_t tcp;
        uv_pipe_t pipe;
    } uv;
    PyObject *protocol;
    PyObject *cb_data_received;  /* bound methods of the protocol */
    PyObject *cb_get_buffer;
    PyObject *cb_buffer_updated;
    PyObject *sock;              /* Python socket owned, or NULL */
    PyObject *server;            /* asyncio Server to _attach/_detach */
    PyObject *context;           /* contextvars.Context the protocol's
                                    callbacks run in: a copy of the one
                                    current at creation, as asyncio's */
    PyObject *read_error;        /* get_buffer() failure, for read_cb */
    PyObject *empty_waiter;      /* sendfile(): future of an empty buffer */
    Py_buffer read_view;         /* BufferedProtocol buffer being filled */
    WriteChunk *pending;         /* written, not yet handed to libuv */
    Py_ssize_t npending, pending_cap;
    size_t pending_size;
    WriteChunk *inflight;        /* owned by write_req */
    Py_ssize_t ninflight, inflight_cap;
    uv_write_t write_req;
    size_t high_water, low_water;
    unsigned long conn_lost;     /* asyncio's _conn_lost */
    char is_tcp;
    char uv_open;                /* handle open (not uv_close()d) */
    char started;                /* connection_made() was called */
    char closing;                /* asyncio's _closing */
    char eof;                    /* write_eof() called */
    char paused;                 /* pause_reading() called */
    char reading;                /* uv_read_start() in effect */
    char in_read_cb;             /* between libuv's alloc and read callbacks */
    char stop_after_read;
    char in_buffer;              /* read_view is held */
    char buffered;               /* protocol is a BufferedProtocol */
    char protocol_connected;
    char protocol_paused;        /* pause_writing() called */
    char write_inflight;
    char connection_lost_called;
    char sock_closed;            /* the Python socket was closed */
    char corked;                 /* pending holds writes not yet tried */
    char in_cork_list;           /* linked from loop->corked */
    struct TransportObject *next_corked;
} TransportObject;

extern PyTypeObject *SocketTransport_Type;

int stream_init(PyObject *module);      /* stream.c: calls the one below */
int server_init(PyObject *module);
PyObject *import_from(const char *module, const char *name);
TransportObject *transport_alloc(LoopObject *loop, int is_tcp);
void transport_discard(TransportObject *tr);
int transport_start_accepted(TransportObject *tr, PyObject *protocol,
                             PyObject *server, int nodelay);
int transport_setup(TransportObject *tr, PyObject *protocol, PyObject *waiter,
                    PyObject *server, int nodelay);
int transport_fd(TransportObject *tr);
void transport_log_debug(TransportObject *tr, const char *message);
/* tcp.c */
PyObject *socket_transport_new(PyTypeObject *type, PyObject *args,
                               PyObject *kwds);
int transport_set_names(TransportObject *tr, int fd);
PyObject *sockaddr_to_python(const struct sockaddr *sa, socklen_t len);

#endif /* ASYNCLOOP_H */
