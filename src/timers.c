/* The timer heap: a binary min-heap of TimerHandles ordered by deadline,
   then by scheduling order, as asyncio orders them. Cancelled timers stay
   in the heap (cancel is O(1)) and are dropped when they reach the top, or
   all at once when they are the majority, as asyncio does. One libuv-free
   structure: the loop computes its poll timeout from the top. */
#include "asyncloop.h"

/* asyncio's _MIN_SCHEDULED_TIMER_HANDLES and
   _MIN_CANCELLED_TIMER_HANDLES_FRACTION. */
#define MIN_SCHEDULED_FOR_COMPACTION 100

static inline int
timer_before(HandleObject *a, HandleObject *b)
{
    double wa = timer_deadline(a), wb = timer_deadline(b);
    return wa < wb || (wa == wb && a->seq < b->seq);
}

static void
sift_up(HandleObject **items, Py_ssize_t pos)
{
    HandleObject *item = items[pos];
    while (pos > 0) {
        Py_ssize_t parent = (pos - 1) / 2;
        if (!timer_before(item, items[parent])) {
            break;
        }
        items[pos] = items[parent];
        pos = parent;
    }
    items[pos] = item;
}

static void
sift_down(HandleObject **items, Py_ssize_t len, Py_ssize_t pos)
{
    HandleObject *item = items[pos];
    for (;;) {
        Py_ssize_t child = 2 * pos + 1;
        if (child >= len) {
            break;
        }
        if (child + 1 < len && timer_before(items[child + 1], items[child])) {
            child++;
        }
        if (!timer_before(items[child], item)) {
            break;
        }
        items[pos] = items[child];
        pos = child;
    }
    items[pos] = item;
}

int
timers_push(TimerHeap *heap, HandleObject *h)
{
    if (heap->len == heap->cap) {
        Py_ssize_t cap = heap->cap ? heap->cap * 2 : 64;
        HandleObject **items = PyMem_Realloc(heap->items,
                                             cap * sizeof(HandleObject *));
        if (items == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        heap->items = items;
        heap->cap = cap;
    }
    if (!h->loop->running) {
        handle_track(h);
    }
    h->seq = heap->next_seq++;
    h->scheduled = 1;
    heap->items[heap->len] = (HandleObject *)Py_NewRef(h);
    sift_up(heap->items, heap->len);
    heap->len++;
    return 0;
}

HandleObject *
timers_pop(TimerHeap *heap)
{
    HandleObject *top = heap->items[0];
    heap->len--;
    if (heap->len > 0) {
        heap->items[0] = heap->items[heap->len];
        sift_down(heap->items, heap->len, 0);
    }
    top->scheduled = 0;
    if (top->cancelled) {
        heap->cancelled--;
    }
    return top;
}

/* Removes every cancelled timer and heapifies the rest. The references are
   dropped only once the heap is whole again: a finalizer they run may
   schedule timers. */
static void
compact(TimerHeap *heap)
{
    Py_ssize_t ncancelled = heap->cancelled;
    HandleObject **dropped = PyMem_Malloc(ncancelled * sizeof(HandleObject *));
    if (dropped == NULL) {
        /* Not now, then: the heap stays correct, only larger. */
        return;
    }
    Py_ssize_t kept = 0, ndropped = 0;
    for (Py_ssize_t i = 0; i < heap->len; i++) {
        HandleObject *h = heap->items[i];
        if (h->cancelled && ndropped < ncancelled) {
            h->scheduled = 0;
            dropped[ndropped++] = h;
        }
        else {
            heap->items[kept++] = h;
        }
    }
    heap->len = kept;
    heap->cancelled -= ndropped;
    for (Py_ssize_t i = kept / 2 - 1; i >= 0; i--) {
        sift_down(heap->items, kept, i);
    }
    for (Py_ssize_t i = 0; i < ndropped; i++) {
        handle_release(dropped[i]);
    }
    PyMem_Free(dropped);
}

/* Drops cancelled timers: all of them when they are more than half of the
   heap, else those at the top, so the top is always a live timer. */
void
timers_drop_cancelled(TimerHeap *heap)
{
    if (heap->len > MIN_SCHEDULED_FOR_COMPACTION
        && heap->cancelled * 2 > heap->len) {
        compact(heap);
        return;
    }
    while (heap->len > 0 && heap->items[0]->cancelled) {
        handle_release(timers_pop(heap));
    }
}

void
timers_clear(TimerHeap *heap)
{
    /* Decrefs may run arbitrary code that schedules timers again: empty
       the heap before dropping the references. */
    while (heap->len > 0) {
        Py_ssize_t len = heap->len;
        HandleObject **items = heap->items;
        heap->items = NULL;
        heap->len = heap->cap = heap->cancelled = 0;
        for (Py_ssize_t i = 0; i < len; i++) {
            items[i]->scheduled = 0;
            handle_release(items[i]);
        }
        PyMem_Free(items);
    }
}

void
timers_free(TimerHeap *heap)
{
    timers_clear(heap);
    PyMem_Free(heap->items);
    heap->items = NULL;
    heap->cap = 0;
}

void
timers_track_all(TimerHeap *heap)
{
    for (Py_ssize_t i = 0; i < heap->len; i++) {
        handle_track(heap->items[i]);
    }
}

int
timers_traverse(TimerHeap *heap, visitproc visit, void *arg)
{
    for (Py_ssize_t i = 0; i < heap->len; i++) {
        Py_VISIT(heap->items[i]);
    }
    return 0;
}
