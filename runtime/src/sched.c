/*
 * sched.c: runtimes. The multi-thread work-stealing scheduler, the
 * current-thread one, spawned tasks, JoinHandles and join.
 *
 * Multi-thread (Tokio's runtime/scheduler/multi_thread). Each worker thread
 * owns:
 *  - a local run queue: a ring of LOCAL_CAP task pointers. Only the owner
 *    pushes (at the tail) and pops (at the head); other workers steal half
 *    of it from the head. The head word packs two indexes, `steal` and
 *    `real`: a stealer first claims [real, real + n) by moving `real` on,
 *    copies the tasks, then moves `steal` up to `real`; while the two differ
 *    no other stealer starts and the owner does not overwrite the slots. A
 *    push onto a full ring moves half of it to the global inject queue.
 *  - a LIFO slot: a task woken (or spawned) by the task running on this
 *    worker goes there and runs next, before the ring, so that a message
 *    passed to a waiting task is handled while it is hot in the cache. It is
 *    not stealable. Two tasks that keep waking each other would hold the
 *    slot forever, so after MAX_LIFO_POLLS consecutive LIFO runs the slot is
 *    disabled until the worker's turn ends and wakes go to the ring's tail.
 * Shared by all: the inject queue (under a mutex) that receives tasks woken
 * outside the workers, as a list, and ring overflow, as arrays of half a
 * ring (segments, which a worker takes by copying pointers; workers' go
 * before spawners', with a turn for the spawners' after every FRONT_RUN_MAX
 * of the workers'); workers take one task from outside their ring every
 * GLOBAL_INTERVAL ticks, and a fair share into their ring whenever that is
 * empty. And the spawner rings: a thread outside the workers that spawns
 * (the thread in block_on) pushes its spawns to a ring of its own, like a
 * worker's but never popped by its owner, from which workers steal (as much
 * as half a ring of theirs holds) when their ring and the inject queue are
 * empty, and one task every GLOBAL_INTERVAL ticks (taking turns with the
 * inject queue's list and segments). Pushing costs the spawning thread no
 * lock, and a worker takes a run of tasks by copying pointers, not by
 * walking a list. A spawner ring that overflows moves its older half to the
 * inject queue; workers take that before the ring, so that a burst of
 * spawns starts in about the order it was made.
 *
 * A worker that has nothing runs the search: unless half the workers are
 * already searching, it steals from the other workers, starting at a random
 * one, then from the spawner rings, then looks at the inject queue; if that
 * finds nothing it parks on its own condition variable (no spinning). A
 * state word counts unparked and searching workers, and a list under a mutex
 * holds the parked ones. Whoever makes work available that another worker
 * could take (a ring push, an inject push) wakes one parked worker, unless some worker is searching
 * already: a searcher will find the work, and the last searcher to give up
 * looks at every queue once more after it has counted itself out (with a
 * sequentially consistent read-modify-write on each side, so either it sees
 * the work or the pusher sees it parked). A woken worker searches; when it
 * finds work and was the last searcher, it wakes another. This is Tokio's
 * idle.rs protocol.
 *
 * Time: one worker at a time holds the driver (ac__driver, internal.h). A
 * worker about to park takes it if it is free, sleeps at most until the next
 * deadline, then fires due timers; every EVENT_INTERVAL ticks a busy worker
 * also fires timers that are due. `busy` counts the threads that are not
 * idle (workers not parked, block_on threads not sleeping), for a paused
 * clock's auto-advance; when it drops to zero the driver's thread is woken
 * to look again.
 *
 * Current-thread: the thread inside ac_runtime_block_on runs everything: a
 * FIFO local queue that only it touches, the same inject queue for wakes
 * from other threads, and a parker; there is no LIFO slot and no stealing.
 * Its root future is a task of its own (sched = ct_root), whose release hook
 * tells a sleeping block_on that the root can never be woken (AC_EDEADLK),
 * as in executor.c. A multi-thread block_on runs its root with executor.c's
 * engine (ac__block_on_root) on the calling thread.
 *
 * Tasks. A spawned task (ac__spawn) is one allocation (task.c) holding its
 * output slot, which is the JoinHandle. References: the runtime (owner) until
 * it completes, the handle until it is joined or detached, queue entries and
 * waker clones. Its memory comes from the runtime's slab (slab.c), through
 * the heap of the spawning thread: each worker has one, and any other thread
 * claims one when it first spawns inside the runtime and gives it back when
 * it leaves (ac__thread_ctx_restore). The slab is also how ac_runtime_free
 * finds every task that has not completed or whose handle still exists: it
 * walks the slab's chunks, so spawn, completion and join keep no list. The
 * join protocol (JOIN_INTEREST, JOIN_WAKER) is Tokio's task/harness.rs: the
 * handle side owns the join_waker slot while JOIN_WAKER is clear, the task
 * side while it is set.
 *
 * Shutdown (ac_runtime_free): workers stop and are joined; then, on the
 * calling thread, queued tasks and the slab's tasks that have not completed
 * are torn down (their drop runs, their joins report AC_ECANCELED), repeatedly,
 * since a drop may wake or spawn; only then are the handles nobody consumed
 * dropped, as a drop may still have used one.
 */
#define _GNU_SOURCE /* pthread_setname_np */
#include "internal.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#define LOCAL_CAP 256              /* tasks in a worker's ring (power of two) */
#define LOCAL_MASK (LOCAL_CAP - 1)
#define MAX_LIFO_POLLS 3           /* consecutive LIFO runs before the slot is disabled */
#define GLOBAL_INTERVAL 61         /* ticks between looks at the inject queue (Tokio) */
#define EVENT_INTERVAL 61          /* ticks between looks at the time driver (Tokio) */
#define FRONT_RUN_MAX 2            /* workers' overflow segments used up per spawners' one */
#define SEG_CACHE 64               /* emptied overflow segments a runtime keeps for reuse */
#define CT_INJECT_INTERVAL 31      /* current-thread: polls between inject looks */
#define MAX_WORKERS 1024           /* the idle word has 16 bits per count */
#define DEFAULT_COOP_BUDGET 128
#define SPAWN_BATCH 32             /* spawns a non-worker thread announces at once */
#define MAX_SPAWNERS 16            /* rings for threads outside the workers that spawn */
#define CACHE_LINE 64

/* Linked only when the program uses timers or blocking work. */
#pragma weak ac__time_driver
#pragma weak ac__clock_runtime_pause
#pragma weak ac__clock_runtime_unpause
#pragma weak ac__pool_new
#pragma weak ac__pool_free

/* ======================================================================== */
/* Data                                                                      */
/* ======================================================================== */

/* A thread's sleeping place (Tokio's park.rs): the state word makes an
 * unpark before the park, or between the check and the wait, count. */
enum { PARK_EMPTY, PARK_PARKED, PARK_NOTIFIED };

typedef struct parker {
    _Atomic int state;  /* PARK_*: PARKED only while waiting on cv, under mu */
    pthread_mutex_t mu; /* guards the wait */
    pthread_cond_t cv;  /* on CLOCK_MONOTONIC */
} parker;

/* A worker's ring; the head packs (steal << 32) | real. */
/* The head, which stealers write, and the tail, which the owner writes, are
 * on cache lines of their own, so that a thread that keeps pushing (a
 * spawner) and the workers that keep stealing from it do not take each
 * other's line on every operation. */
typedef struct local_queue {
    _Atomic uint64_t head;                 /* next to pop (real) and stealers' claim (steal) */
    _Alignas(CACHE_LINE) _Atomic uint32_t tail; /* next free slot; written by the owner only */
    uint32_t steal_seen;                   /* owner only: a steal index read from head; the
                                            * real one is never behind it */
    struct inject_seg *spare;              /* owner only: a segment for its next overflow */
    _Alignas(CACHE_LINE) _Atomic(ac__task *) buf[LOCAL_CAP]; /* the slots; synchronised by
                                            * head and tail */
} local_queue;

typedef struct worker {
    local_queue q;           /* this worker's ring; other workers steal from it */
    ac_runtime *rt;          /* the runtime */
    unsigned index;          /* in rt->workers */
    ac__task *lifo;          /* the LIFO slot; owner only */
    bool lifo_enabled;       /* wakes may use the slot (off after MAX_LIFO_POLLS in a row) */
    bool searching;          /* counted as searching in rt->idle */
    bool in_park;            /* running the driver while parked: wakes are not announced */
    uint32_t tick;           /* scheduler turns, paces inject and driver looks */
    uint32_t rng;            /* xorshift state, picks the first victim */
    parker park;             /* where it sleeps */
    pthread_t thread;        /* its thread */
    sigjmp_buf *landing;     /* where a panicking poll jumps (worker_main's) */
} __attribute__((aligned(CACHE_LINE))) worker;

/* The ring of a thread outside the workers that spawns on a multi-thread
 * runtime (a block_on thread): only that thread pushes, workers steal from
 * it as from each other. Claimed for as long as the thread is in the
 * runtime's context; never freed before the runtime, since a stealer may
 * still look at one that was given back. */
typedef struct spawner {
    local_queue q;             /* its spawns; workers steal them */
    ac_runtime *rt;            /* the runtime */
    bool claimed;              /* a thread owns it (under rt->spawners_mu) */
    unsigned unannounced;      /* pushes since the last notify_parked (owner only) */
} __attribute__((aligned(CACHE_LINE))) spawner;

/* Half a ring that overflowed, moved to the inject queue as an array: a
 * worker takes from it by copying pointers, where a list would have it
 * follow one cache miss after another with the inject lock held.
 *
 * Segments go round instead of back to malloc: the inject queue keeps up
 * to SEG_CACHE emptied ones, and a ring that queues a segment takes one of
 * them as the spare for its next overflow, under the lock it holds anyway.
 * A segment is malloc'd by the thread whose ring overflowed, as a rule the
 * spawning thread, and emptied by a worker; glibc's free of it from there
 * takes the lock of the spawning thread's arena, which that thread holds
 * for each of its own mallocs. In timers_100k a worker blocked on that lock
 * about 15 times a run during the burst of spawns (futex waits under
 * _int_free, 6 runs); with segments reused, not once. A runtime's first
 * burst still mallocs its segments (its CPU per task and timers_100k's
 * wall did not change measurably); a second burst of 100,000 timer tasks in
 * the same runtime took 4.3 ms to spawn instead of 6.4, and 158 ns of CPU
 * per task instead of 171 (medians of 60 runs). */
typedef struct inject_seg {
    struct inject_seg *next;       /* the next segment of the inject queue */
    uint32_t first;                /* t[first..n) are still queued */
    uint32_t n;                    /* tasks put in t */
    ac__task *t[LOCAL_CAP / 2 + 1]; /* the tasks, oldest first */
} inject_seg;

/* Segments in the order they were queued. */
typedef struct seg_list {
    inject_seg *head;              /* oldest, or NULL */
    inject_seg *tail;              /* newest */
} seg_list;

/* An intrusive FIFO through ac__task.queue_next. */
typedef struct fifo {
    ac__task *head; /* next out; NULL when empty */
    ac__task *tail; /* last in; meaningless when empty */
} fifo;

/* The current-thread runtime's one core, driven by block_on's thread. */
typedef struct ct_core {
    fifo local;            /* runnable tasks; touched only by the driving thread */
    parker park;           /* the driving thread sleeps here */
    unsigned tick;         /* polls, paces inject and driver looks */
    _Atomic bool driving;  /* a block_on is running this core */
} ct_core;

struct ac_runtime {
    ac__scheduler base;        /* hooks of spawned tasks; first, tasks point here */
    ac__scheduler ct_root;     /* hooks of a current-thread block_on's root task */
    ac_runtime_config config;  /* as built, defaults resolved */
    char thread_name[16];      /* worker thread name (15 characters and NUL) */
    unsigned coop;             /* budget per turn */
    unsigned nworkers;         /* multi-thread: worker threads; current-thread: 0 */
    _Atomic bool closed;       /* ac_runtime_free began: new spawns are cancelled at once */
    _Atomic bool shutdown;     /* workers must return */

    /* Inject queue. */
    pthread_mutex_t inject_mu; /* guards inject_head/tail and the segments */
    ac__task *inject_head;     /* tasks from outside the workers */
    ac__task *inject_tail;     /* last of them */
    seg_list worker_segs;      /* overflow of workers' rings (see inject_push_seg) */
    seg_list spawner_segs;     /* overflow of spawners' rings */
    unsigned worker_run;       /* worker segments used up since a spawner's was */
    _Atomic bool has_spawner_segs; /* spawner_segs is not empty (a hint outside the lock) */
    _Atomic bool has_segs;     /* either list is not empty (a hint outside the lock) */
    _Atomic size_t inject_len; /* tasks in both, also read without the lock */
    inject_seg *free_segs;     /* emptied segments kept for reuse, linked by next */
    unsigned nfree_segs;       /* their number, at most SEG_CACHE */
    size_t segs_queued;        /* segments queued, ever (a figure for tests) */
    size_t segs_allocated;     /* of those, the ones malloc'd for it */

    /* Multi-thread. */
    worker *workers;           /* nworkers of them */
    pthread_mutex_t idle_mu;   /* guards sleepers and changes of the parked set */
    _Atomic uint32_t idle;     /* (unparked << 16) | searching */
    unsigned *sleepers;        /* indexes of parked workers */
    unsigned nsleepers;        /* their number */
    unsigned started;          /* threads started, to join */

    /* Threads outside the workers that spawn (multi-thread). */
    pthread_mutex_t spawners_mu;           /* guards claiming and creating them */
    _Atomic(spawner *) spawners[MAX_SPAWNERS]; /* the first nspawners are set */
    _Atomic unsigned nspawners;            /* how many exist */

    /* Current-thread. */
    ct_core ct;

    ac__pool *blocking;        /* blocking pool; NULL when blocking.c is not linked */

    /* Time driver. */
    _Atomic(const ac__driver *) driver; /* installed driver (not owned), or NULL */
    _Atomic bool driver_taken;         /* a thread holds the driver */
    _Atomic(parker *) driver_parker;   /* the thread parked with it, or NULL */
    _Atomic int busy;                  /* threads not idle (see ac__runtime_all_idle) */

    /* Task memory. */
    ac__slab *slab;            /* where spawned tasks live; shutdown walks it */
};

/* What running one task from a queue came to. */
typedef enum run_result {
    RAN_PENDING,   /* still pending (requeued if it was woken meanwhile) */
    RAN_COMPLETE,  /* returned READY */
    RAN_CANCELLED, /* torn down after an abort */
    RAN_PANICKED   /* called ac_panic; torn down */
} run_result;

/* The runtime this thread works for, and its worker (multi-thread) or core
 * (current-thread, while driving); a block_on thread of a multi-thread
 * runtime has rt and no core. */
static _Thread_local ac_runtime *tls_rt;
static _Thread_local void *tls_core;
/* Spawns of a thread outside rt's workers, not yet in the inject queue. */
static _Thread_local struct {
    ac_runtime *rt;     /* their runtime */
    ac__task *first;    /* oldest, linked through queue_next */
    ac__task *last;     /* newest */
    unsigned n;         /* how many */
} tls_spawns;

/* The spawner ring this thread pushes to (multi-thread runtimes), or NULL. */
static _Thread_local spawner *tls_spawner;

static bool is_mt(const ac_runtime *rt) { return rt->config.flavor == AC_RUNTIME_MULTI_THREAD; }
static void busy_inc(ac_runtime *rt);
static void spawner_release(spawner *sp);

/* ======================================================================== */
/* Parker                                                                    */
/* ======================================================================== */

static int parker_init(parker *p)
{
    atomic_init(&p->state, PARK_EMPTY);
    pthread_condattr_t attr;
    if (pthread_condattr_init(&attr) != 0)
        return AC_ENOMEM;
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    int rc = pthread_cond_init(&p->cv, &attr);
    pthread_condattr_destroy(&attr);
    if (rc != 0)
        return AC_ENOMEM;
    if (pthread_mutex_init(&p->mu, NULL) != 0) {
        pthread_cond_destroy(&p->cv);
        return AC_ENOMEM;
    }
    return 0;
}

static void parker_destroy(parker *p)
{
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
}

/* The CLOCK_MONOTONIC time ms from now. */
static struct timespec deadline_in(int64_t ns)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += (time_t)(ns / 1000000000);
    ts.tv_nsec += (long)(ns % 1000000000);
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

/* Sleeps until unparked or for timeout_ns (< 0: no limit); returns at once
 * if an unpark came since the last park. Spurious returns are possible. */
static void parker_park(parker *p, int64_t timeout_ns)
{
    int expected = PARK_NOTIFIED;
    if (atomic_compare_exchange_strong(&p->state, &expected, PARK_EMPTY) || timeout_ns == 0)
        return;
    struct timespec deadline = {0, 0};
    if (timeout_ns > 0)
        deadline = deadline_in(timeout_ns);
    pthread_mutex_lock(&p->mu);
    expected = PARK_EMPTY;
    if (!atomic_compare_exchange_strong(&p->state, &expected, PARK_PARKED)) {
        atomic_store(&p->state, PARK_EMPTY); /* notified meanwhile: consume it */
        pthread_mutex_unlock(&p->mu);
        return;
    }
    for (;;) {
        int rc = timeout_ns > 0 ? pthread_cond_timedwait(&p->cv, &p->mu, &deadline)
                                : pthread_cond_wait(&p->cv, &p->mu);
        expected = PARK_NOTIFIED;
        if (atomic_compare_exchange_strong(&p->state, &expected, PARK_EMPTY))
            break;
        if (rc == ETIMEDOUT) {
            atomic_store(&p->state, PARK_EMPTY);
            break;
        }
    }
    pthread_mutex_unlock(&p->mu);
}

/* Wakes the parker's thread, now or at its next park. Any thread. */
static void parker_unpark(parker *p)
{
    if (atomic_exchange(&p->state, PARK_NOTIFIED) == PARK_PARKED) {
        /* Taking the lock orders us after its check: it is waiting now. */
        pthread_mutex_lock(&p->mu);
        pthread_mutex_unlock(&p->mu);
        pthread_cond_signal(&p->cv);
    }
}

/* ======================================================================== */
/* Queues                                                                    */
/* ======================================================================== */

static void fifo_push(fifo *q, ac__task *task)
{
    task->queue_next = NULL;
    if (q->head)
        q->tail->queue_next = task;
    else
        q->head = task;
    q->tail = task;
}

static ac__task *fifo_pop(fifo *q)
{
    ac__task *task = q->head;
    if (task) {
        q->head = task->queue_next;
        if (q->head)
            ac__task_prefetch(q->head); /* the next to run */
    }
    return task;
}

/* Appends the list first..last (n tasks) to the inject queue. */
static void inject_push_list(ac_runtime *rt, ac__task *first, ac__task *last, size_t n)
{
    last->queue_next = NULL;
    pthread_mutex_lock(&rt->inject_mu);
    if (rt->inject_head)
        rt->inject_tail->queue_next = first;
    else
        rt->inject_head = first;
    rt->inject_tail = last;
    atomic_fetch_add(&rt->inject_len, n); /* seq_cst: pairs with the idle protocol */
    pthread_mutex_unlock(&rt->inject_mu);
}

static size_t inject_len(ac_runtime *rt)
{
    return atomic_load_explicit(&rt->inject_len, memory_order_relaxed);
}

/*
 * Appends the overflow of a ring to the inject queue: a worker's ring's if
 * `worker`, else a spawner's. The two go to lists of their own, and the
 * workers' list goes first (seg_pick_locked). Unlike Tokio's single queue:
 * a worker's overflow holds, as a rule, tasks queued before what is still
 * in the inject queue (the worker took them from there, or stole them,
 * while a burst of spawns went on); behind the burst's later segments, runs
 * of 128 of 100,000 spawns started up to 10 ms late in timers_100k. But
 * workers whose rings overflow all the time would then hold back spawns
 * from outside for ever, so once FRONT_RUN_MAX of the workers' segments
 * have been used up, one of the spawners' goes. (Sending the next worker
 * segment to the back of one queue instead left its old tasks behind every
 * spawn queued meanwhile: under load, 92-104 of a burst of 20,000 started
 * last.)
 */
static void inject_push_seg(ac_runtime *rt, inject_seg *seg, bool worker, bool fresh,
                            inject_seg **spare)
{
    seg_list *l = worker ? &rt->worker_segs : &rt->spawner_segs;
    seg->next = NULL;
    pthread_mutex_lock(&rt->inject_mu);
    rt->segs_queued++;
    rt->segs_allocated += fresh;
    if (!*spare && rt->free_segs) {
        *spare = rt->free_segs;
        rt->free_segs = (*spare)->next;
        rt->nfree_segs--;
    }
    if (l->tail)
        l->tail->next = seg;
    else
        l->head = seg;
    l->tail = seg;
    if (!worker)
        atomic_store_explicit(&rt->has_spawner_segs, true, memory_order_relaxed);
    atomic_store_explicit(&rt->has_segs, true, memory_order_relaxed);
    atomic_fetch_add(&rt->inject_len, seg->n - seg->first); /* as inject_push_list */
    pthread_mutex_unlock(&rt->inject_mu);
}

/* The list that segment tasks come from next (see inject_push_seg), or NULL
 * if both are empty; only the spawners' if `spawners`. Under the inject
 * lock. */
static seg_list *seg_pick_locked(ac_runtime *rt, bool spawners)
{
    bool w = rt->worker_segs.head && !spawners, sp = rt->spawner_segs.head;
    if (w && (!sp || rt->worker_run < FRONT_RUN_MAX))
        return &rt->worker_segs;
    return sp ? &rt->spawner_segs : NULL;
}

/* Copies up to max tasks of l's oldest segment to out; returns how many. A
 * segment that this empties is kept for reuse, or if SEG_CACHE are kept
 * already, put in *done for the caller to free. Under the inject lock. */
static size_t seg_take_locked(ac_runtime *rt, seg_list *l, size_t max, ac__task **out,
                              inject_seg **done)
{
    inject_seg *seg = l->head;
    size_t got = seg->n - seg->first;
    if (got > max)
        got = max;
    memcpy(out, &seg->t[seg->first], got * sizeof *out);
    seg->first += (uint32_t)got;
    if (seg->first == seg->n) {
        if (!(l->head = seg->next))
            l->tail = NULL;
        if (l == &rt->spawner_segs) {
            rt->worker_run = 0;
            if (!l->head)
                atomic_store_explicit(&rt->has_spawner_segs, false, memory_order_relaxed);
        } else if (rt->worker_run < FRONT_RUN_MAX) {
            rt->worker_run++;
        }
        if (!rt->worker_segs.head && !rt->spawner_segs.head)
            atomic_store_explicit(&rt->has_segs, false, memory_order_relaxed);
        if (rt->nfree_segs < SEG_CACHE) {
            seg->next = rt->free_segs;
            rt->free_segs = seg;
            rt->nfree_segs++;
        } else {
            *done = seg;
        }
    }
    return got;
}

/* Takes up to max tasks from the inject queue as a list; *n gets the count.
 * Single tasks (remote wakes) go first, then ring overflow. */
static ac__task *inject_pop(ac_runtime *rt, size_t max, size_t *n)
{
    *n = 0;
    if (!inject_len(rt) || max == 0)
        return NULL;
    ac__task *got_seg[LOCAL_CAP / 2 + 1];
    inject_seg *done = NULL;
    size_t from_seg = 0;
    pthread_mutex_lock(&rt->inject_mu);
    ac__task *first = rt->inject_head, *last = NULL, *t = first;
    size_t got = 0;
    seg_list *l;
    while (t && got < max) {
        last = t;
        t = t->queue_next;
        got++;
    }
    if (got) {
        rt->inject_head = t;
        last->queue_next = NULL;
    } else if ((l = seg_pick_locked(rt, false))) {
        from_seg = seg_take_locked(rt, l, max, got_seg, &done);
        got = from_seg;
    }
    if (got)
        atomic_fetch_sub_explicit(&rt->inject_len, got, memory_order_relaxed);
    pthread_mutex_unlock(&rt->inject_mu);
    free(done);
    if (from_seg) {
        for (size_t i = 0; i < from_seg; i++)
            got_seg[i]->queue_next = i + 1 < from_seg ? got_seg[i + 1] : NULL;
        first = got_seg[0];
    }
    *n = got;
    return got ? first : NULL;
}

static uint64_t pack(uint32_t steal, uint32_t real) { return ((uint64_t)steal << 32) | real; }
static uint32_t head_steal(uint64_t h) { return (uint32_t)(h >> 32); }
static uint32_t head_real(uint64_t h) { return (uint32_t)h; }

/* Tasks in a ring (exact for its owner, a snapshot for others). */
static uint32_t lq_len(local_queue *q)
{
    uint64_t head = atomic_load_explicit(&q->head, memory_order_acquire);
    uint32_t tail = atomic_load_explicit(&q->tail, memory_order_acquire);
    return tail - head_real(head);
}

/* Full ring, no stealer: moves its older half and `task` to the inject
 * queue, as a worker's overflow if `worker` (see inject_push_seg). Returns
 * false if a stealer got in first (the caller retries). */
static bool lq_push_overflow(local_queue *q, ac_runtime *rt, ac__task *task, uint32_t head,
                             bool worker)
{
    const uint32_t n = LOCAL_CAP / 2;
    uint64_t expected = pack(head, head);
    if (!atomic_compare_exchange_strong_explicit(&q->head, &expected, pack(head + n, head + n),
                                                 memory_order_acq_rel, memory_order_acquire))
        return false;
    inject_seg *seg = q->spare;
    bool fresh = !seg;
    if (seg)
        q->spare = NULL;
    else
        seg = malloc(sizeof *seg);
    if (seg) {
        for (uint32_t i = 0; i < n; i++)
            seg->t[i] = atomic_load_explicit(&q->buf[(head + i) & LOCAL_MASK], memory_order_relaxed);
        seg->t[n] = task;
        seg->first = 0;
        seg->n = n + 1;
        inject_push_seg(rt, seg, worker, fresh, &q->spare);
        return true;
    }
    ac__task *first = atomic_load_explicit(&q->buf[head & LOCAL_MASK], memory_order_relaxed);
    ac__task *last = first;
    for (uint32_t i = 1; i < n; i++) {
        ac__task *t = atomic_load_explicit(&q->buf[(head + i) & LOCAL_MASK], memory_order_relaxed);
        last->queue_next = t;
        last = t;
    }
    last->queue_next = task;
    inject_push_list(rt, first, task, n + 1);
    return true;
}

/* Owner: appends a task (its notified reference) to the ring q of rt, a
 * worker's if `worker`, else a spawner's. */
static void lq_push(local_queue *q, ac_runtime *rt, ac__task *task, bool worker)
{
    /* Room below the last steal index seen means room now (stealers only
     * move it on), without reading the head's line. */
    uint32_t tail = atomic_load_explicit(&q->tail, memory_order_relaxed);
    if (tail - q->steal_seen < LOCAL_CAP) {
        atomic_store_explicit(&q->buf[tail & LOCAL_MASK], task, memory_order_relaxed);
        atomic_store_explicit(&q->tail, tail + 1, memory_order_release);
        return;
    }
    for (;;) {
        uint64_t head = atomic_load_explicit(&q->head, memory_order_acquire);
        uint32_t steal = head_steal(head), real = head_real(head);
        tail = atomic_load_explicit(&q->tail, memory_order_relaxed);
        q->steal_seen = steal;
        if (tail - steal < LOCAL_CAP) {
            atomic_store_explicit(&q->buf[tail & LOCAL_MASK], task, memory_order_relaxed);
            atomic_store_explicit(&q->tail, tail + 1, memory_order_release);
            return;
        }
        if (steal != real) {
            /* A stealer is about to make room; do not wait for it. */
            inject_push_list(rt, task, task, 1);
            return;
        }
        if (lq_push_overflow(q, rt, task, real, worker))
            return;
    }
}

static void lq_push_back(worker *w, ac__task *task) { lq_push(&w->q, w->rt, task, true); }

/* Owner: takes the oldest task of the ring. */
static ac__task *lq_pop_q(local_queue *q)
{
    uint64_t head = atomic_load_explicit(&q->head, memory_order_acquire);
    for (;;) {
        uint32_t steal = head_steal(head), real = head_real(head);
        uint32_t tail = atomic_load_explicit(&q->tail, memory_order_relaxed);
        if (real == tail)
            return NULL;
        /* With no stealer at work, steal follows real. */
        uint64_t next = steal == real ? pack(real + 1, real + 1) : pack(steal, real + 1);
        if (atomic_compare_exchange_weak_explicit(&q->head, &head, next, memory_order_acq_rel,
                                                  memory_order_acquire)) {
            if (real + 1 != tail) /* the next to run */
                ac__task_prefetch(atomic_load_explicit(&q->buf[(real + 1) & LOCAL_MASK],
                                                       memory_order_relaxed));
            return atomic_load_explicit(&q->buf[real & LOCAL_MASK], memory_order_relaxed);
        }
    }
}

static ac__task *lq_pop(worker *w) { return lq_pop_q(&w->q); }

/* Moves half of src's ring (rounded up), or if max is not 0 as much as max
 * of it, into dst's slots from dst_tail on, without publishing them;
 * returns how many. */
static uint32_t lq_steal_half(local_queue *src, local_queue *dst, uint32_t dst_tail, uint32_t max)
{
    uint64_t prev = atomic_load_explicit(&src->head, memory_order_acquire);
    uint64_t next;
    uint32_t n;
    for (;;) {
        uint32_t steal = head_steal(prev), real = head_real(prev);
        if (steal != real)
            return 0; /* another stealer is at work */
        uint32_t tail = atomic_load_explicit(&src->tail, memory_order_acquire);
        n = tail - real;
        n = max ? (n > max ? max : n) : n - n / 2;
        if (n == 0)
            return 0;
        next = pack(steal, real + n); /* claim [real, real + n) */
        if (atomic_compare_exchange_weak_explicit(&src->head, &prev, next, memory_order_acq_rel,
                                                  memory_order_acquire))
            break;
    }
    uint32_t from = head_steal(next);
    for (uint32_t i = 0; i < n; i++) {
        ac__task *t = atomic_load_explicit(&src->buf[(from + i) & LOCAL_MASK], memory_order_relaxed);
        atomic_store_explicit(&dst->buf[(dst_tail + i) & LOCAL_MASK], t, memory_order_relaxed);
    }
    /* Release the claim: steal catches up with real (which the owner may
     * have moved on meanwhile). */
    prev = next;
    for (;;) {
        uint32_t real = head_real(prev);
        if (atomic_compare_exchange_weak_explicit(&src->head, &prev, pack(real, real),
                                                  memory_order_acq_rel, memory_order_acquire))
            return n;
    }
}

/* Steals half of src's ring into dst's (dst is the caller's), or as much
 * as max of it if max is not 0 (src is a spawner's, which never runs its
 * tasks; max is at most half a ring); returns one of the stolen tasks to
 * run now, or NULL. */
static ac__task *lq_steal_into(local_queue *src, worker *dst, uint32_t max)
{
    local_queue *dq = &dst->q;
    uint32_t dst_tail = atomic_load_explicit(&dq->tail, memory_order_relaxed);
    uint64_t dst_head = atomic_load_explicit(&dq->head, memory_order_acquire);
    if (LOCAL_CAP - (dst_tail - head_steal(dst_head)) < (max ? max : LOCAL_CAP / 2))
        return NULL; /* no room for what it may take */
    uint32_t n = lq_steal_half(src, dq, dst_tail, max);
    if (n == 0)
        return NULL;
    n--;
    ac__task *ret = atomic_load_explicit(&dq->buf[(dst_tail + n) & LOCAL_MASK], memory_order_relaxed);
    if (n)
        atomic_store_explicit(&dq->tail, dst_tail + n, memory_order_release);
    return ret;
}

/* ======================================================================== */
/* Idle workers (Tokio's idle.rs)                                            */
/* ======================================================================== */

#define IDLE_UNPARKED_ONE (1u << 16)
#define IDLE_SEARCHING_MASK 0xffffu

static uint32_t idle_searching(uint32_t s) { return s & IDLE_SEARCHING_MASK; }
static uint32_t idle_unparked(uint32_t s) { return s >> 16; }

/* Whether a push should wake a worker: none searching, some parked. The
 * read-modify-write orders it after the caller's push. */
static bool should_wake_one(ac_runtime *rt)
{
    uint32_t s = atomic_fetch_add(&rt->idle, 0);
    return idle_searching(s) == 0 && idle_unparked(s) < rt->nworkers;
}

/* Wakes a parked worker, as a searcher, if no worker is searching. */
static void notify_parked(ac_runtime *rt)
{
    if (!should_wake_one(rt))
        return;
    pthread_mutex_lock(&rt->idle_mu);
    int idx = -1;
    if (should_wake_one(rt) && rt->nsleepers > 0) {
        atomic_fetch_add(&rt->idle, IDLE_UNPARKED_ONE | 1u);
        idx = (int)rt->sleepers[--rt->nsleepers];
        busy_inc(rt); /* on its behalf: it has work from now on */
    }
    pthread_mutex_unlock(&rt->idle_mu);
    if (idx >= 0)
        parker_unpark(&rt->workers[idx].park);
}

static bool idle_to_searching(ac_runtime *rt)
{
    uint32_t s = atomic_load(&rt->idle);
    if (2 * idle_searching(s) >= rt->nworkers)
        return false;
    atomic_fetch_add(&rt->idle, 1u);
    return true;
}

/* Returns true if the caller was the last searcher. */
static bool idle_from_searching(ac_runtime *rt)
{
    return idle_searching(atomic_fetch_sub(&rt->idle, 1u)) == 1;
}

/* Counts the worker out and lists it as parked; returns true if it was the
 * last searcher. */
static bool idle_to_parked(ac_runtime *rt, unsigned index, bool searching)
{
    pthread_mutex_lock(&rt->idle_mu);
    uint32_t prev = atomic_fetch_sub(&rt->idle, IDLE_UNPARKED_ONE | (searching ? 1u : 0u));
    rt->sleepers[rt->nsleepers++] = index;
    pthread_mutex_unlock(&rt->idle_mu);
    return searching && idle_searching(prev) == 1;
}

/* Takes the worker off the parked list if it is on it (it woke up on its
 * own, with work); returns whether it was. */
static bool idle_unpark_self(ac_runtime *rt, unsigned index)
{
    bool found = false;
    pthread_mutex_lock(&rt->idle_mu);
    for (unsigned i = 0; i < rt->nsleepers; i++) {
        if (rt->sleepers[i] == index) {
            rt->sleepers[i] = rt->sleepers[--rt->nsleepers];
            atomic_fetch_add(&rt->idle, IDLE_UNPARKED_ONE);
            found = true;
            break;
        }
    }
    pthread_mutex_unlock(&rt->idle_mu);
    return found;
}

static bool idle_is_parked(ac_runtime *rt, unsigned index)
{
    bool found = false;
    pthread_mutex_lock(&rt->idle_mu);
    for (unsigned i = 0; i < rt->nsleepers && !found; i++)
        found = rt->sleepers[i] == index;
    pthread_mutex_unlock(&rt->idle_mu);
    return found;
}

/* The last searcher is parking: if work appeared meanwhile, wake someone. */
static void notify_if_work_pending(ac_runtime *rt)
{
    atomic_thread_fence(memory_order_seq_cst);
    for (unsigned i = 0; i < rt->nworkers; i++) {
        if (lq_len(&rt->workers[i].q) != 0) {
            notify_parked(rt);
            return;
        }
    }
    unsigned n = atomic_load(&rt->nspawners);
    for (unsigned i = 0; i < n; i++) {
        if (lq_len(&atomic_load(&rt->spawners[i])->q) != 0) {
            notify_parked(rt);
            return;
        }
    }
    if (atomic_load(&rt->inject_len))
        notify_parked(rt);
}

/* ======================================================================== */
/* Busy threads and the driver                                               */
/* ======================================================================== */

/* A thread of rt stops being idle. */
static void busy_inc(ac_runtime *rt) { atomic_fetch_add(&rt->busy, 1); }

/* A thread of rt becomes idle; the last one makes the driver's thread look
 * again (a paused clock may now jump). `self` is the caller's parker. */
static void busy_dec(ac_runtime *rt, parker *self)
{
    if (atomic_fetch_sub(&rt->busy, 1) == 1) {
        parker *p = atomic_load(&rt->driver_parker);
        if (p && p != self)
            parker_unpark(p);
    }
}

/* Takes the driver if one is installed and no other thread has it. */
static const ac__driver *driver_take(ac_runtime *rt)
{
    if (!atomic_load_explicit(&rt->driver, memory_order_acquire))
        return NULL;
    bool expected = false;
    if (!atomic_compare_exchange_strong(&rt->driver_taken, &expected, true))
        return NULL;
    const ac__driver *d = atomic_load(&rt->driver);
    if (!d)
        atomic_store(&rt->driver_taken, false);
    return d;
}

static void driver_give_back(ac_runtime *rt) { atomic_store(&rt->driver_taken, false); }

/* Fires due timers if the driver is free (busy threads, now and then). */
static void driver_maintenance(ac_runtime *rt)
{
    const ac__driver *d = driver_take(rt);
    if (!d)
        return;
    if (d->next_deadline_ns(d->ctx) == 0)
        d->fire_due(d->ctx);
    driver_give_back(rt);
}

void ac__runtime_set_driver(ac_runtime *rt, const ac__driver *d)
{
    atomic_store_explicit(&rt->driver, d, memory_order_release);
    ac__runtime_unpark_one(rt);
}

void ac__runtime_unpark_one(ac_runtime *rt)
{
    parker *p = atomic_load(&rt->driver_parker);
    if (p)
        parker_unpark(p);
    else if (is_mt(rt))
        notify_parked(rt);
    else
        parker_unpark(&rt->ct.park);
}

int ac__runtime_all_idle(ac_runtime *rt) { return atomic_load(&rt->busy) == 0; }

void ac__runtime_thread_idle(ac_runtime *rt) { busy_dec(rt, NULL); }

void ac__runtime_thread_busy(ac_runtime *rt) { busy_inc(rt); }

const ac_runtime_config *ac__runtime_config(ac_runtime *rt) { return &rt->config; }

ac__pool *ac__runtime_blocking_pool(ac_runtime *rt) { return rt->blocking; }

void ac__runtime_seg_counts(ac_runtime *rt, size_t *queued, size_t *allocated)
{
    pthread_mutex_lock(&rt->inject_mu);
    *queued = rt->segs_queued;
    *allocated = rt->segs_allocated;
    pthread_mutex_unlock(&rt->inject_mu);
}

bool ac__runtime_is_own_thread(const ac__scheduler *sched)
{
    return tls_rt && tls_core && sched == &tls_rt->base;
}

/* ======================================================================== */
/* Thread context                                                            */
/* ======================================================================== */

ac_runtime *ac_runtime_current(void) { return tls_rt; }

ac__thread_ctx ac__thread_ctx_enter(ac_runtime *rt)
{
    ac__thread_ctx prev = {tls_rt, tls_core, ac__slab_heap_current(), tls_spawner};
    tls_rt = rt;
    tls_core = NULL;
    return prev;
}

void ac__thread_ctx_restore(ac__thread_ctx prev)
{
    /* A heap claimed inside the context (ac__runtime_heap) is given back. */
    ac__slab_heap *heap = ac__slab_heap_current();
    if (heap != prev.heap) {
        ac__slab_heap_release(heap);
        ac__slab_heap_set(prev.heap);
    }
    /* So is a spawner ring. */
    if (tls_spawner != prev.spawner) {
        if (tls_spawner)
            spawner_release(tls_spawner);
        tls_spawner = prev.spawner;
    }
    tls_rt = prev.rt;
    tls_core = prev.worker;
}

ac__slab_heap *ac__runtime_heap(void)
{
    ac_runtime *rt = tls_rt;
    if (!rt)
        return NULL;
    if (ac__tls_heap_slab == rt->slab)
        return ac__slab_heap_current();
    /* The first spawn of this thread in this context (a block_on thread):
     * the context's end gives the heap back. A heap of another runtime
     * (this thread's outer context) is put back then too. */
    ac__slab_heap *heap = ac__slab_heap_claim(rt->slab);
    if (heap)
        ac__slab_heap_set(heap);
    return heap;
}

unsigned ac__coop_budget_current(void) { return tls_rt ? tls_rt->coop : DEFAULT_COOP_BUDGET; }

/* ======================================================================== */
/* Scheduling                                                                */
/* ======================================================================== */

/* A task woken or spawned by the task running on worker w. */
static void schedule_local(worker *w, ac__task *task)
{
    bool announce;
    if (w->in_park || !w->lifo_enabled) {
        lq_push_back(w, task);
        announce = !w->in_park; /* the driver's wakes are announced after the park */
    } else {
        ac__task *prev = w->lifo;
        w->lifo = task;
        announce = prev != NULL;
        if (prev)
            lq_push_back(w, prev);
    }
    if (announce)
        notify_parked(w->rt);
}

void (*ac__test_after_outside_queue)(void);

static void schedule_remote(ac_runtime *rt, ac__task *task)
{
    inject_push_list(rt, task, task, 1);
    if (ac__test_after_outside_queue)
        ac__test_after_outside_queue();
    if (is_mt(rt))
        notify_parked(rt);
    else
        parker_unpark(&rt->ct.park);
}

/* Publishes this thread's batched spawns (current-thread runtimes). */
static void flush_spawns(void)
{
    ac_runtime *rt = tls_spawns.rt;
    inject_push_list(rt, tls_spawns.first, tls_spawns.last, tls_spawns.n);
    tls_spawns.n = 0;
    if (is_mt(rt))
        notify_parked(rt);
    else
        parker_unpark(&rt->ct.park);
}

/* Wakes a worker, if none is awake to look, for the spawns in sp's ring. */
static void announce(spawner *sp)
{
    sp->unannounced = 0;
    notify_parked(sp->rt);
}

void ac__spawn_flush(void)
{
    if (tls_spawns.n)
        flush_spawns();
    if (tls_spawner && tls_spawner->unannounced)
        announce(tls_spawner);
}

/* This thread's spawner ring for rt (claimed at its first spawn in the
 * context, given back when the context ends), or NULL if all are taken. */
static spawner *spawner_get(ac_runtime *rt)
{
    spawner *sp = tls_spawner;
    if (sp && sp->rt == rt)
        return sp;
    sp = NULL;
    pthread_mutex_lock(&rt->spawners_mu);
    unsigned n = atomic_load_explicit(&rt->nspawners, memory_order_relaxed);
    for (unsigned i = 0; i < n && !sp; i++) {
        spawner *s = atomic_load_explicit(&rt->spawners[i], memory_order_relaxed);
        if (!s->claimed)
            sp = s;
    }
    if (!sp && n < MAX_SPAWNERS && (sp = aligned_alloc(CACHE_LINE, sizeof *sp))) {
        memset(sp, 0, sizeof *sp);
        atomic_init(&sp->q.head, 0);
        atomic_init(&sp->q.tail, 0);
        sp->rt = rt;
        atomic_store_explicit(&rt->spawners[n], sp, memory_order_release);
        atomic_store_explicit(&rt->nspawners, n + 1, memory_order_release);
    }
    if (sp)
        sp->claimed = true;
    pthread_mutex_unlock(&rt->spawners_mu);
    if (sp) {
        if (tls_spawner && tls_spawner->unannounced)
            announce(tls_spawner); /* the outer context's, kept until it resumes */
        tls_spawner = sp;
    }
    return sp;
}

/* Gives back a spawner ring whose thread leaves the runtime's context: what
 * the workers have not taken moves to the inject queue. */
static void spawner_release(spawner *sp)
{
    ac_runtime *rt = sp->rt;
    ac__task *first = NULL, *last = NULL, *t;
    size_t n = 0;
    while ((t = lq_pop_q(&sp->q))) {
        t->queue_next = NULL;
        if (last)
            last->queue_next = t;
        else
            first = t;
        last = t;
        n++;
    }
    if (n)
        inject_push_list(rt, first, last, n);
    if (n || sp->unannounced)
        notify_parked(rt);
    sp->unannounced = 0;
    pthread_mutex_lock(&rt->spawners_mu);
    sp->claimed = false;
    pthread_mutex_unlock(&rt->spawners_mu);
}

/*
 * A spawn from a thread that is not one of rt's workers (the thread in a
 * multi-thread block_on) goes to that thread's spawner ring, where workers
 * steal it (the whole ring at a time, up to half a ring of theirs). Waking a
 * parked worker costs a system call, so the thread announces its spawns once
 * per SPAWN_BATCH, when its poll returns, and before it looks at a handle:
 * a spawned task waits at most until the spawning poll ends for a worker to
 * be woken, and no longer than that if one is awake. A current-thread
 * runtime's spawns from another thread join a batch that goes to the inject
 * queue as a whole, published at the same points.
 */
static void spawn_remote(ac_runtime *rt, ac__task *task)
{
    spawner *sp;
    if (is_mt(rt) && (sp = spawner_get(rt))) {
        lq_push(&sp->q, rt, task, false);
        if (++sp->unannounced == SPAWN_BATCH)
            announce(sp);
        return;
    }
    if (tls_spawns.n && tls_spawns.rt != rt)
        flush_spawns();
    task->queue_next = NULL;
    if (tls_spawns.n)
        tls_spawns.last->queue_next = task;
    else
        tls_spawns.first = task;
    tls_spawns.last = task;
    tls_spawns.rt = rt;
    if (++tls_spawns.n == SPAWN_BATCH)
        flush_spawns();
}

static void schedule_on(ac_runtime *rt, ac__task *task)
{
    if (tls_rt == rt && tls_core) {
        if (is_mt(rt))
            schedule_local(tls_core, task);
        else
            fifo_push(&rt->ct.local, task);
        return;
    }
    schedule_remote(rt, task);
}

/* ac__scheduler.schedule of spawned tasks: takes the notified reference. */
static void schedule(ac__scheduler *sched, ac__task *task)
{
    schedule_on((ac_runtime *)sched, task);
}

/* ac__scheduler.release of spawned tasks: nobody waits for an orphaned
 * spawned task (it stays listed until the runtime is freed). */
static void release(ac__scheduler *sched, ac__task *task)
{
    (void)sched;
    ac__task_ref_dec_unchecked(task);
}

static ac_runtime *rt_of_ct_root(ac__scheduler *sched)
{
    return (ac_runtime *)((char *)sched - offsetof(ac_runtime, ct_root));
}

/* A wake of a current-thread block_on's root. From another thread it
 * queues the root and signals under the parker's lock, which ct_block_on
 * takes once the root is complete: then no such wake is still in the
 * runtime, which the caller may free as soon as block_on returns (a later
 * wake finds the root complete). */
static void ct_root_schedule(ac__scheduler *sched, ac__task *task)
{
    ac_runtime *rt = rt_of_ct_root(sched);
    if (tls_rt == rt && tls_core) {
        fifo_push(&rt->ct.local, task);
        return;
    }
    parker *p = &rt->ct.park;
    pthread_mutex_lock(&p->mu);
    inject_push_list(rt, task, task, 1);
    if (ac__test_after_outside_queue)
        ac__test_after_outside_queue();
    if (atomic_exchange(&p->state, PARK_NOTIFIED) == PARK_PARKED)
        pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

/* The root can no longer be woken: drop the reference under the core's lock
 * and wake it, so that a sleeping block_on sees it (and cannot return, and
 * let the runtime be freed, before we are done). */
static void ct_root_release(ac__scheduler *sched, ac__task *task)
{
    parker *p = &rt_of_ct_root(sched)->ct.park;
    pthread_mutex_lock(&p->mu);
    ac__task_ref_dec_unchecked(task);
    if (atomic_exchange(&p->state, PARK_NOTIFIED) == PARK_PARKED)
        pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

/* ======================================================================== */
/* Running tasks                                                             */
/* ======================================================================== */

/*
 * Completes a task the caller owns (RUNNING) whose frame has been dropped:
 * records the outcome, wakes the joiner, and drops `refs` references (a
 * spawned task's owner reference and the caller's notified one if it has
 * one; a root's notified one).
 */
static void finish(ac__task *task, int outcome, size_t refs)
{
    task->outcome = (int8_t)outcome;
    /* The common case: a handle exists and nobody is waiting on it yet. */
    if (task->kind == AC__TASK_SPAWNED && ac__task_transition_to_complete_and_drop(task, refs))
        return;
    size_t prev = ac__task_transition_to_complete(task);
    if (task->kind == AC__TASK_SPAWNED && (prev & AC__TASK_JOIN_INTEREST) &&
        (prev & AC__TASK_JOIN_WAKER)) {
        ac_waker_wake_by_ref(&task->join_waker);
        /* The handle may have gone while we woke: then the waker is ours. */
        if (!(ac__task_unset_join_waker_after_complete(task) & AC__TASK_JOIN_INTEREST)) {
            ac_waker_drop(task->join_waker);
            task->join_waker.vtable = NULL;
        }
    }
    ac__task_ref_dec_complete(task, refs);
}

/* Drops a claimed task's future and completes it with `outcome` (0,
 * AC_ECANCELED or AC_EPANIC), as finish does. */
static void drop_and_finish(ac__task *task, int outcome, size_t refs)
{
    task->vt->drop(ac__task_frame(task));
    finish(task, outcome, refs);
}

/* The references a run of the task drops when it completes: a spawned
 * task's owner's and its queue entry's; a root's queue entry's. */
static size_t run_refs(const ac__task *task) { return task->kind == AC__TASK_ROOT ? 1 : 2; }

/* Whether something else waits for this thread's attention. */
static bool other_work(ac_runtime *rt)
{
    if (inject_len(rt) || atomic_load_explicit(&rt->shutdown, memory_order_relaxed))
        return true;
    if (is_mt(rt)) {
        worker *w = tls_core;
        return w->lifo || lq_len(&w->q) != 0;
    }
    return rt->ct.local.head != NULL;
}

/* A task that woke itself goes to the back of this thread's queue. */
static void requeue(ac_runtime *rt, ac__task *task)
{
    if (is_mt(rt)) {
        lq_push_back(tls_core, task);
        notify_parked(rt);
    } else {
        fifo_push(&rt->ct.local, task);
    }
}

/*
 * Runs one task popped from this thread's queues (consuming the queue's
 * reference) with the turn's cooperative budget. A future that wakes itself
 * is polled again at once while nothing else is runnable (ac_yield's cheap
 * path, as in executor.c), else requeued behind the others.
 */
static run_result run_task(ac_runtime *rt, ac__task *task, unsigned *budget)
{
    size_t refs = run_refs(task);
    switch (ac__task_transition_to_running(task)) {
    case AC__RUN_FAILED:
        ac__task_ref_dec(task);
        return RAN_PENDING;
    case AC__RUN_CANCELLED:
        drop_and_finish(task, AC_ECANCELED, refs);
        return RAN_CANCELLED;
    case AC__RUN_SUCCESS:
        break;
    }
    for (;;) {
        bool self_woken;
        /* A worker's polls share the jump buffer of its loop (a panic lands
         * in worker_main, which completes the task); a current-thread
         * runtime's each set one up. */
        ac_poll_t r = is_mt(rt) ? ac__task_poll_landing(task, &self_woken, budget,
                                                        ((worker *)tls_core)->landing)
                                : ac__task_poll_budget(task, &self_woken, budget);
        if (r == AC_READY) {
            drop_and_finish(task, 0, refs); /* RETURNED: the drop only honours the ABI */
            return RAN_COMPLETE;
        }
        if (r == AC__POLL_PANICKED) {
            drop_and_finish(task, AC_EPANIC, refs);
            return RAN_PANICKED;
        }
        if (!self_woken)
            break;
        if (other_work(rt) ||
            (atomic_load_explicit(&task->state, memory_order_relaxed) & AC__TASK_CANCELLED)) {
            ac__task_transition_to_notified_by_ref(task);
            break;
        }
        *budget = rt->coop;
    }
    switch (ac__task_transition_to_idle(task)) {
    case AC__IDLE_OK:
        return RAN_PENDING;
    case AC__IDLE_OK_NOTIFIED:
        requeue(rt, task); /* our reference becomes the queue entry's */
        return RAN_PENDING;
    case AC__IDLE_CANCELLED:
        drop_and_finish(task, AC_ECANCELED, refs);
        return RAN_CANCELLED;
    }
    return RAN_PENDING;
}

/* ======================================================================== */
/* Multi-thread workers                                                      */
/* ======================================================================== */

/* How many tasks a worker takes from the inject queue at once: its share,
 * as much as half its ring holds and there is room for, at least one. */
static size_t remote_share(worker *w)
{
    size_t room = LOCAL_CAP - lq_len(&w->q);
    size_t want = inject_len(w->rt) / w->rt->nworkers + 1;
    if (want > room)
        want = room;
    if (want > LOCAL_CAP / 2)
        want = LOCAL_CAP / 2;
    return want ? want : 1;
}

/* Takes up to `want` tasks of ring overflow (the inject queue's segments;
 * only the spawners' if `spawners`), oldest first, into w's ring; returns
 * one to run, or NULL if there is none. Copying pointers is cheap under the
 * lock. */
static ac__task *take_overflow(worker *w, size_t want, bool spawners)
{
    ac_runtime *rt = w->rt;
    if (!atomic_load_explicit(spawners ? &rt->has_spawner_segs : &rt->has_segs,
                              memory_order_relaxed))
        return NULL;
    ac__task *got[LOCAL_CAP / 2];
    inject_seg *done = NULL;
    size_t n = 0;
    seg_list *l;
    pthread_mutex_lock(&rt->inject_mu);
    if ((l = seg_pick_locked(rt, spawners))) {
        n = seg_take_locked(rt, l, want, got, &done);
        atomic_fetch_sub_explicit(&rt->inject_len, n, memory_order_relaxed);
    }
    pthread_mutex_unlock(&rt->inject_mu);
    free(done);
    if (!n)
        return NULL;
    for (size_t i = 1; i < n; i++)
        lq_push_back(w, got[i]);
    return got[0];
}

/* A fair share of the inject queue into the ring, ring overflow first;
 * returns one to run. */
static ac__task *take_remote_batch(worker *w)
{
    if (!inject_len(w->rt))
        return NULL;
    size_t want = remote_share(w);
    ac__task *got = take_overflow(w, want, false);
    if (got)
        return got;
    size_t n;
    ac__task *first = inject_pop(w->rt, want, &n);
    if (!first)
        return NULL;
    for (ac__task *t = first->queue_next, *next; t; t = next) {
        next = t->queue_next;
        lq_push_back(w, t);
    }
    return first;
}

/* Steals up to max tasks (0: as much as half a ring holds) from the
 * spawners' rings into w's ring; returns one to run. */
static ac__task *take_from_spawners(worker *w, uint32_t max)
{
    ac_runtime *rt = w->rt;
    unsigned n = atomic_load_explicit(&rt->nspawners, memory_order_acquire);
    for (unsigned i = 0; i < n; i++) {
        spawner *sp = atomic_load_explicit(&rt->spawners[i], memory_order_acquire);
        if (lq_len(&sp->q) == 0)
            continue;
        ac__task *t = lq_steal_into(&sp->q, w, max ? max : LOCAL_CAP / 2);
        if (t)
            return t;
    }
    return NULL;
}

/* Takes a fair share (as much as half a ring holds) of the tasks that
 * threads outside the workers spawned, into w's ring; returns one to run. */
static ac__task *take_spawned(worker *w)
{
    /* A ring that overflowed moved its older half to the inject queue's
     * segments: those go first, so that spawns start in the order they
     * were made (a burst's first tasks would otherwise wait behind its
     * last). */
    ac__task *t = take_overflow(w, remote_share(w), false);
    return t ? t : take_from_spawners(w, 0);
}

/* Every GLOBAL_INTERVAL ticks, one task from outside the worker's ring, for
 * fairness: one task, as Tokio takes (a batch would fill a ring that is not
 * empty, and its next push, a wake, would move the ring's older half to the
 * back of the inject queue, behind newer work: tests/unit/runtime_sched.c,
 * a_burst_of_spawns_that_wake_themselves_...). The inject queue's list
 * (remote wakes), its segments (ring overflow) and the spawners' rings take
 * turns at going first, so that none of them waits for another to empty
 * (workers' rings that overflow all the time keep the segments full); but
 * while a spawner's overflow is queued, its ring's turn goes to the
 * spawners' segments, which hold older spawns. */
static ac__task *take_one_from_outside(worker *w)
{
    unsigned turn = (unsigned)(w->tick / GLOBAL_INTERVAL) % 3;
    for (unsigned k = 0; k < 3; k++) {
        size_t n;
        ac__task *t;
        switch ((turn + k) % 3) {
        case 0:
            t = inject_pop(w->rt, 1, &n); /* the list first */
            break;
        case 1:
            t = take_overflow(w, 1, false);
            break;
        default:
            t = atomic_load_explicit(&w->rt->has_spawner_segs, memory_order_relaxed)
                    ? take_overflow(w, 1, true)
                    : take_from_spawners(w, 1);
            break;
        }
        if (t)
            return t;
    }
    return NULL;
}

static ac__task *next_task(worker *w)
{
    if (w->tick % GLOBAL_INTERVAL == 0) {
        ac__task *t = take_one_from_outside(w);
        if (t)
            return t;
    }
    ac__task *t = lq_pop(w);
    if (!t)
        t = take_remote_batch(w);
    return t ? t : take_spawned(w);
}

static uint32_t next_random(worker *w)
{
    uint32_t x = w->rng;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return w->rng = x;
}

static ac__task *steal_work(worker *w)
{
    ac_runtime *rt = w->rt;
    if (!w->searching) {
        if (!idle_to_searching(rt))
            return NULL;
        w->searching = true;
    }
    unsigned n = rt->nworkers;
    unsigned start = next_random(w) % n;
    for (unsigned i = 0; i < n; i++) {
        unsigned victim = (start + i) % n;
        if (victim == w->index)
            continue;
        ac__task *t = lq_steal_into(&rt->workers[victim].q, w, 0);
        if (t)
            return t;
    }
    ac__task *t = take_spawned(w);
    return t ? t : take_remote_batch(w);
}

/* Runs a task, then whatever it put in the LIFO slot, within one budget. */
static void run_turn(worker *w, ac__task *task)
{
    ac_runtime *rt = w->rt;
    if (w->searching) {
        w->searching = false;
        if (idle_from_searching(rt))
            notify_parked(rt); /* keep one searcher going while there is work */
    }
    unsigned budget = rt->coop;
    unsigned lifo_polls = 0;
    for (;;) {
        run_task(rt, task, &budget);
        task = w->lifo;
        if (!task) {
            w->lifo_enabled = true;
            return;
        }
        w->lifo = NULL;
        if (budget == 0 || atomic_load_explicit(&rt->shutdown, memory_order_relaxed)) {
            lq_push_back(w, task);
            return;
        }
        if (++lifo_polls >= MAX_LIFO_POLLS)
            w->lifo_enabled = false; /* a ping-pong pair must not starve the rest */
    }
}

/* A parked worker with tasks in its own queues leaves the parked list and
 * counts busy, unless notify_parked took it off the list first (and counted
 * it busy then); it then searches, as that wake asked. */
static void leave_with_work(worker *w)
{
    bool self = idle_unpark_self(w->rt, w->index);
    if (self)
        busy_inc(w->rt);
    w->searching = !self;
}

/* Sleeps once: with the driver (timed, then firing timers) if it is free.
 * Returns true if the timers it fired queued tasks here, in which case the
 * worker has left the parked list already (leave_with_work). */
static bool park_timeout(worker *w)
{
    ac_runtime *rt = w->rt;
    const ac__driver *d = driver_take(rt);
    bool woke_tasks = false;
    if (d) {
        atomic_store(&rt->driver_parker, &w->park);
        int64_t timeout = d->next_deadline_ns(d->ctx);
        if (timeout != 0)
            parker_park(&w->park, timeout);
        atomic_store(&rt->driver_parker, NULL);
        w->in_park = true;
        d->fire_due(d->ctx);
        w->in_park = false;
        size_t queued = (w->lifo ? 1 : 0) + lq_len(&w->q);
        /* Several tasks: let another worker help. */
        if (queued > 1)
            notify_parked(rt);
        /* Busy before the driver is free again: the next thread to take it
         * must not see an idle runtime and jump a paused clock past the
         * tasks just woken (they would run 1 ms late on it). */
        woke_tasks = queued != 0;
        if (woke_tasks)
            leave_with_work(w);
        driver_give_back(rt);
    } else {
        parker_park(&w->park, -1);
    }
    return woke_tasks;
}

/* After a wake-up: whether to run (true) or park again. A worker that
 * notify_parked took off the parked list was counted busy by it. */
static bool leave_park(worker *w)
{
    ac_runtime *rt = w->rt;
    if (w->lifo || lq_len(&w->q) != 0) {
        leave_with_work(w);
        return true;
    }
    if (idle_is_parked(rt, w->index))
        return false; /* spurious, or the driver's wake-up */
    w->searching = true; /* notify_parked counted us as a searcher */
    return true;
}

static void park(worker *w)
{
    ac_runtime *rt = w->rt;
    if (w->lifo || lq_len(&w->q) != 0)
        return;
    bool last = idle_to_parked(rt, w->index, w->searching);
    w->searching = false;
    if (last)
        notify_if_work_pending(rt);
    busy_dec(rt, &w->park);
    while (!atomic_load(&rt->shutdown)) {
        if (park_timeout(w) || leave_park(w))
            break;
    }
}

/* A poll on this worker called ac_panic, which jumped to worker_main's
 * landing: the task is torn down as run_task does after a caught panic, and
 * what the abandoned turn left in the LIFO slot goes to the ring. */
static void panicked(worker *w, ac__task *task)
{
    drop_and_finish(task, AC_EPANIC, run_refs(task));
    if (w->lifo) {
        lq_push_back(w, w->lifo);
        w->lifo = NULL;
    }
    w->lifo_enabled = true;
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    ac_runtime *rt = w->rt;
    tls_rt = rt;
    tls_core = w;
    ac__slab_heap_set(ac__slab_heap_claim(rt->slab)); /* NULL: claimed at the first spawn */
    pthread_setname_np(pthread_self(), rt->thread_name);
    /* A worker that holds the driver sleeps until the next deadline. The
     * kernel may wake a thread up to its timer slack (50 us by default)
     * late, to batch wake-ups; a timer is late enough by its rounding up to
     * whole ms. With 1 ns of slack, a sleep(1) begun at a random phase
     * took 40-90 us less (mean time past the 1 ms: 616-637 -> 528-589 us,
     * seven runs of 400 each way). */
    prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
    sigjmp_buf landing;
    if (sigsetjmp(landing, 0) != 0)
        panicked(w, ac__task_poll_abandoned());
    w->landing = &landing;
    while (!atomic_load_explicit(&rt->shutdown, memory_order_acquire)) {
        w->tick++;
        if (w->tick % EVENT_INTERVAL == 0)
            driver_maintenance(rt);
        ac__task *task = next_task(w);
        if (!task)
            task = steal_work(w);
        if (task)
            run_turn(w, task);
        else
            park(w);
    }
    ac__slab_heap_release(ac__slab_heap_current());
    ac__slab_heap_set(NULL);
    tls_rt = NULL;
    tls_core = NULL;
    return NULL;
}

/* ======================================================================== */
/* Current-thread core                                                       */
/* ======================================================================== */

static ac__task *ct_next(ac_runtime *rt)
{
    ct_core *c = &rt->ct;
    if ((!c->local.head || c->tick % CT_INJECT_INTERVAL == 0) && inject_len(rt)) {
        size_t n;
        ac__task *list = inject_pop(rt, SIZE_MAX, &n);
        for (ac__task *t = list, *next; t; t = next) {
            next = t->queue_next;
            fifo_push(&c->local, t);
        }
    }
    return fifo_pop(&c->local);
}

/* Whether the root can never run again: not queued or about to be, and no
 * reference but the owner's (no waker clone exists). */
static bool orphaned(ac__task *root)
{
    size_t s = ac__task_state(root);
    return !(s & (AC__TASK_NOTIFIED | AC__TASK_RUNNING | AC__TASK_COMPLETE)) &&
           ac__task_refs(s) == 1;
}

/* Nothing to run: sleeps until a wake, a timer, or the root is orphaned
 * (returns false). Holds the driver while asleep, as a parked worker does. */
static bool ct_park(ac_runtime *rt, ac__task *root)
{
    parker *p = &rt->ct.park;
    const ac__driver *d = driver_take(rt);
    int64_t timeout = -1;
    busy_dec(rt, p);
    if (d) {
        atomic_store(&rt->driver_parker, p);
        timeout = d->next_deadline_ns(d->ctx);
    }
    struct timespec deadline = {0, 0};
    if (timeout > 0)
        deadline = deadline_in(timeout);
    bool alive = true;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        int expected = PARK_NOTIFIED;
        if (atomic_compare_exchange_strong(&p->state, &expected, PARK_EMPTY))
            break;
        if (atomic_load(&rt->inject_len))
            break;
        if (orphaned(root)) {
            alive = false;
            break;
        }
        if (timeout == 0)
            break;
        expected = PARK_EMPTY;
        if (!atomic_compare_exchange_strong(&p->state, &expected, PARK_PARKED))
            continue; /* notified meanwhile */
        int rc = timeout > 0 ? pthread_cond_timedwait(&p->cv, &p->mu, &deadline)
                             : pthread_cond_wait(&p->cv, &p->mu);
        expected = PARK_PARKED;
        atomic_compare_exchange_strong(&p->state, &expected, PARK_EMPTY);
        if (rc == ETIMEDOUT)
            break;
    }
    pthread_mutex_unlock(&p->mu);
    if (d) {
        atomic_store(&rt->driver_parker, NULL);
        if (alive)
            d->fire_due(d->ctx);
        busy_inc(rt); /* before the driver is free again, as park_timeout */
        driver_give_back(rt);
    } else {
        busy_inc(rt);
    }
    return alive;
}

static int ct_block_on(ac_runtime *rt, const ac_future_vt *vt, void *frame, void *out)
{
    ct_core *c = &rt->ct;
    bool expected = false;
    if (!atomic_compare_exchange_strong(&c->driving, &expected, true)) {
        vt->drop(frame);
        return AC_EBUSY;
    }
    ac__task *root = ac__task_new(&rt->ct_root, vt, frame, out);
    if (!root) {
        vt->drop(frame);
        atomic_store(&c->driving, false);
        return AC_ENOMEM;
    }
    ac__thread_ctx prev = {tls_rt, tls_core, ac__slab_heap_current(), tls_spawner};
    tls_rt = rt;
    tls_core = c;
    busy_inc(rt);
    fifo_push(&c->local, root); /* the notified reference from ac__task_new */

    int err;
    for (;;) {
        ac__task *task = ct_next(rt);
        if (!task) {
            if (ct_park(rt, root))
                continue;
            /* Orphaned: nobody else holds a reference; tear it down. */
            if (ac__task_transition_to_shutdown(root)) {
                root->vt->drop(ac__task_frame(root));
                ac__task_transition_to_complete(root);
            }
            err = AC_EDEADLK;
            break;
        }
        if (++c->tick % EVENT_INTERVAL == 0)
            driver_maintenance(rt);
        unsigned budget = rt->coop;
        run_result r = run_task(rt, task, &budget);
        if (task == root && r != RAN_PENDING) {
            err = r == RAN_COMPLETE ? 0 : r == RAN_PANICKED ? AC_EPANIC : AC_ECANCELED;
            break;
        }
    }

    busy_dec(rt, NULL);
    ac__thread_ctx_restore(prev);
    /* The root is complete: its wakers no longer reach the runtime, and one
     * that did is out of it once we have had the parker's lock. */
    pthread_mutex_lock(&c->park.mu);
    pthread_mutex_unlock(&c->park.mu);
    ac__task_ref_dec(root);
    atomic_store(&c->driving, false);
    return err;
}

/* ======================================================================== */
/* Runtime: build, block_on, free                                            */
/* ======================================================================== */

void ac_runtime_config_init(ac_runtime_config *c)
{
    memset(c, 0, sizeof *c);
    c->flavor = AC_RUNTIME_MULTI_THREAD;
    c->max_blocking_threads = 512;
    c->blocking_keep_alive_ms = 10000;
    c->coop_budget = DEFAULT_COOP_BUDGET;
}

static void stop_workers(ac_runtime *rt)
{
    atomic_store(&rt->shutdown, true);
    for (unsigned i = 0; i < rt->started; i++)
        parker_unpark(&rt->workers[i].park);
    for (unsigned i = 0; i < rt->started; i++)
        pthread_join(rt->workers[i].thread, NULL);
    rt->started = 0;
}

/* Frees what ac_runtime_new built, and gives back its pause of the clock;
 * the first `parkers` workers' parkers were initialised. */
static void destroy(ac_runtime *rt, unsigned parkers)
{
    /* After the tasks (ac_runtime_free): a cancelled one has detached its
     * blocking call. */
    if (rt->blocking)
        ac__pool_free(rt->blocking);
    for (unsigned i = 0; i < parkers; i++) {
        parker_destroy(&rt->workers[i].park);
        free(rt->workers[i].q.spare);
    }
    ac__slab_close(rt->slab);
    unsigned ns = atomic_load(&rt->nspawners);
    for (unsigned i = 0; i < ns; i++) {
        spawner *sp = atomic_load(&rt->spawners[i]);
        free(sp->q.spare);
        free(sp);
    }
    while (rt->free_segs) {
        inject_seg *seg = rt->free_segs;
        rt->free_segs = seg->next;
        free(seg);
    }
    pthread_mutex_destroy(&rt->spawners_mu);
    free(rt->workers);
    free(rt->sleepers);
    pthread_mutex_destroy(&rt->inject_mu);
    pthread_mutex_destroy(&rt->idle_mu);
    parker_destroy(&rt->ct.park);
    bool paused = rt->config.start_paused && ac__clock_runtime_unpause;
    free(rt);
    if (paused)
        ac__clock_runtime_unpause(); /* the clock runs again once no runtime asks for it paused */
}

static int start_workers(ac_runtime *rt)
{
    pthread_attr_t attr;
    if (pthread_attr_init(&attr) != 0)
        return AC_ENOMEM;
    if (rt->config.thread_stack_size &&
        pthread_attr_setstacksize(&attr, rt->config.thread_stack_size) != 0) {
        pthread_attr_destroy(&attr);
        return AC_EINVAL;
    }
    int err = 0;
    for (unsigned i = 0; i < rt->nworkers; i++) {
        if (pthread_create(&rt->workers[i].thread, &attr, worker_main, &rt->workers[i]) != 0) {
            err = AC_EAGAIN;
            break;
        }
        rt->started++;
    }
    pthread_attr_destroy(&attr);
    return err;
}

int ac_runtime_new(const ac_runtime_config *cfg, ac_runtime **out)
{
    ac_runtime_config c;
    if (cfg)
        c = *cfg;
    else
        ac_runtime_config_init(&c);
    if (!out || (c.flavor != AC_RUNTIME_MULTI_THREAD && c.flavor != AC_RUNTIME_CURRENT_THREAD) ||
        c.coop_budget == 0 || c.workers > MAX_WORKERS || c.max_blocking_threads == 0)
        return AC_EINVAL;
    if (c.flavor == AC_RUNTIME_MULTI_THREAD && c.workers == 0) {
        long n = ac__usable_cpus();
        c.workers = n < 1 ? 1 : n > MAX_WORKERS ? MAX_WORKERS : (unsigned)n;
    }

    ac_runtime *rt = calloc(1, sizeof *rt);
    if (!rt)
        return AC_ENOMEM;
    rt->base = (ac__scheduler){schedule, release};
    rt->ct_root = (ac__scheduler){ct_root_schedule, ct_root_release};
    snprintf(rt->thread_name, sizeof rt->thread_name, "%s",
             c.thread_name ? c.thread_name : "asyncc-worker");
    c.thread_name = NULL; /* the caller's string need not outlive this call */
    rt->config = c;
    rt->coop = c.coop_budget;
    rt->nworkers = c.flavor == AC_RUNTIME_MULTI_THREAD ? c.workers : 0;
    atomic_init(&rt->closed, false);
    atomic_init(&rt->shutdown, false);
    atomic_init(&rt->inject_len, 0);
    atomic_init(&rt->has_segs, false);
    atomic_init(&rt->has_spawner_segs, false);
    atomic_init(&rt->idle, 0);
    atomic_init(&rt->driver, NULL);
    atomic_init(&rt->driver_taken, false);
    atomic_init(&rt->driver_parker, NULL);
    atomic_init(&rt->busy, (int)rt->nworkers);
    atomic_init(&rt->ct.driving, false);
    atomic_init(&rt->nspawners, 0);
    pthread_mutex_init(&rt->inject_mu, NULL);
    pthread_mutex_init(&rt->idle_mu, NULL);
    pthread_mutex_init(&rt->spawners_mu, NULL);
    if (parker_init(&rt->ct.park) != 0) {
        pthread_mutex_destroy(&rt->inject_mu);
        pthread_mutex_destroy(&rt->idle_mu);
        pthread_mutex_destroy(&rt->spawners_mu);
        free(rt);
        return AC_ENOMEM;
    }
    /* From here on every failure goes through destroy, which gives it back. */
    if (c.start_paused && ac__clock_runtime_pause)
        ac__clock_runtime_pause();

    rt->slab = ac__slab_new(&rt->base);
    if (rt->nworkers) {
        rt->workers = aligned_alloc(CACHE_LINE, rt->nworkers * sizeof(worker));
        rt->sleepers = calloc(rt->nworkers, sizeof *rt->sleepers);
    }
    if (!rt->slab || (rt->nworkers && (!rt->workers || !rt->sleepers))) {
        destroy(rt, 0);
        return AC_ENOMEM;
    }
    for (unsigned i = 0; i < rt->nworkers; i++) {
        worker *w = &rt->workers[i];
        memset(w, 0, sizeof *w);
        atomic_init(&w->q.head, 0);
        atomic_init(&w->q.tail, 0);
        w->rt = rt;
        w->index = i;
        w->lifo_enabled = true;
        w->rng = 2654435761u * (i + 1) | 1u;
        if (parker_init(&w->park) != 0) {
            destroy(rt, i);
            return AC_ENOMEM;
        }
    }
    atomic_store(&rt->idle, rt->nworkers << 16); /* all unparked, none searching */

    if (&ac__time_driver)
        ac__runtime_set_driver(rt, &ac__time_driver);
    if (ac__pool_new && !(rt->blocking = ac__pool_new(c.max_blocking_threads, c.blocking_keep_alive_ms))) {
        destroy(rt, rt->nworkers);
        return AC_ENOMEM;
    }

    int err = start_workers(rt);
    if (err) {
        stop_workers(rt);
        destroy(rt, rt->nworkers);
        return err;
    }
    *out = rt;
    return 0;
}

int ac_runtime_block_on(ac_runtime *rt, const ac_future_vt *vt, void *frame, void *out)
{
    if (!rt || !vt || !vt->poll || !vt->drop || !frame)
        return AC_EINVAL;
    if (!out && vt->out_size) {
        vt->drop(frame);
        return AC_EINVAL;
    }
    /* This thread runs a runtime's tasks (a worker, or a current-thread
     * runtime's block_on): blocking it on a future could wait for one of
     * those tasks, or a task in a worker's LIFO slot, which nobody else may
     * take, and never return; with one worker it always does. Tokio panics
     * here ("Cannot start a runtime from within a runtime"). */
    if (tls_core) {
        vt->drop(frame);
        return AC_EBUSY;
    }
    if (!is_mt(rt))
        return ct_block_on(rt, vt, frame, out);
    return ac__block_on_root(rt, vt, frame, out);
}

/* Pops any queued task (the runtime's threads are stopped). */
static ac__task *pop_any(ac_runtime *rt)
{
    for (unsigned i = 0; i < rt->nworkers; i++) {
        worker *w = &rt->workers[i];
        ac__task *t = w->lifo;
        if (t) {
            w->lifo = NULL;
            return t;
        }
        if ((t = lq_pop(w)))
            return t;
    }
    unsigned ns = atomic_load(&rt->nspawners);
    for (unsigned i = 0; i < ns; i++) {
        ac__task *t = lq_pop_q(&atomic_load(&rt->spawners[i])->q);
        if (t)
            return t;
    }
    ac__task *t = fifo_pop(&rt->ct.local);
    if (t)
        return t;
    size_t n;
    return inject_pop(rt, 1, &n);
}

/* Cancels every queued task; returns whether there was any. */
static bool drain_queues(ac_runtime *rt)
{
    bool any = false;
    ac__task *t;
    while ((t = pop_any(rt))) {
        any = true;
        if (ac__task_transition_to_running(t) == AC__RUN_FAILED)
            ac__task_ref_dec(t);
        else
            drop_and_finish(t, AC_ECANCELED, 2);
    }
    return any;
}

/* Tasks gathered by a walk of the slab. */
typedef struct gathered {
    ac__task **v;     /* the tasks */
    size_t n;         /* how many */
    size_t cap;       /* room in v */
    bool complete;    /* gather complete tasks with a handle (else: incomplete tasks) */
    bool truncated;   /* out of memory: some were left for the next round */
} gathered;

/* ac__slab_each callback. An incomplete task is gathered with a reference
 * of ours; a complete one is held by its handle, which only we will drop. */
static void gather(ac__task *t, void *arg)
{
    gathered *g = arg;
    size_t state = ac__task_state(t);
    if (g->complete ? (state & (AC__TASK_COMPLETE | AC__TASK_JOIN_INTEREST)) !=
                          (AC__TASK_COMPLETE | AC__TASK_JOIN_INTEREST)
                    : (state & AC__TASK_COMPLETE) != 0)
        return;
    if (g->n == g->cap) {
        size_t ncap = g->cap ? 2 * g->cap : 64;
        ac__task **grown = realloc(g->v, ncap * sizeof *g->v);
        if (!grown) {
            g->truncated = true;
            return;
        }
        g->v = grown;
        g->cap = ncap;
    }
    if (!g->complete)
        ac__task_ref_inc(t);
    g->v[g->n++] = t;
}

/* Cancels every task that has not completed; returns whether there was any.
 * The tasks are gathered under the slab's lock and torn down outside it,
 * since drops run user code (and may spawn). */
static bool cancel_all(ac_runtime *rt)
{
    gathered g = {.complete = false};
    ac__slab_each(rt->slab, gather, &g);
    for (size_t k = 0; k < g.n; k++) {
        ac__task *t = g.v[k];
        if (ac__task_transition_to_shutdown(t))
            drop_and_finish(t, AC_ECANCELED, 1); /* the owner's reference; we keep ours */
        ac__task_ref_dec(t);
    }
    free(g.v);
    return g.n > 0 || g.truncated;
}

/* Every task has completed: drops the handles nobody joined or detached.
 * Returns whether there was any. */
static bool release_handles(ac_runtime *rt)
{
    gathered g = {.complete = true};
    ac__slab_each(rt->slab, gather, &g);
    for (size_t k = 0; k < g.n; k++)
        ac_handle_detach(ac__task_handle(g.v[k]));
    free(g.v);
    return g.n > 0 || g.truncated;
}

void ac_runtime_free(ac_runtime *rt)
{
    if (!rt)
        return;
    if (tls_rt == rt) {
        fputs("asyncc: ac_runtime_free called from inside its own runtime\n", stderr);
        abort();
    }
    atomic_store(&rt->closed, true);
    stop_workers(rt);

    ac__thread_ctx prev = ac__thread_ctx_enter(rt);
    bool more;
    do {
        more = drain_queues(rt);
        more |= cancel_all(rt);
    } while (more);
    while (release_handles(rt))
        ;
    /* Every task has completed; wakes from outside that began before may
     * still be queueing theirs (task.c, outside_enter). */
    ac__slab_wait_outside(rt->slab);
    drain_queues(rt);
    ac__thread_ctx_restore(prev);

    destroy(rt, rt->nworkers);
}

/* ======================================================================== */
/* Spawn and JoinHandles                                                     */
/* ======================================================================== */

void *ac__spawn(void *frame)
{
    ac_runtime *rt = tls_rt;
    if (!rt) {
        fputs("asyncc: ac_spawn called outside a runtime\n", stderr);
        abort();
    }
    ac__task *task = ac__task_of_frame(frame);
    if (task->slab_class == AC__SLAB_NONE) {
        /* Not in the slab, where shutdown looks for the runtime's tasks. */
        fputs("asyncc: ac_spawn of a frame made outside the runtime\n", stderr);
        abort();
    }
    if (atomic_load_explicit(&rt->closed, memory_order_acquire)) {
        /* Shutting down: the task is cancelled before it starts. */
        atomic_store_explicit(&task->state,
                              AC__TASK_COMPLETE | AC__TASK_JOIN_INTEREST | AC__TASK_REF_ONE,
                              memory_order_relaxed);
        task->vt->drop(frame);
        task->outcome = AC_ECANCELED;
        return ac__task_handle(task);
    }
    /* References: the runtime's, the handle's, and the queue entry's. */
    atomic_store_explicit(&task->state,
                          AC__TASK_NOTIFIED | AC__TASK_JOIN_INTEREST | 3 * (size_t)AC__TASK_REF_ONE,
                          memory_order_relaxed);
    if (tls_rt == rt && tls_core)
        schedule_on(rt, task);
    else
        spawn_remote(rt, task);
    return ac__task_handle(task);
}

/* The state word of the task of handle h, which `what` was given. A handle
 * consumed already (joined, or detached) whose memory no task has taken
 * since reads as a free slot: that is a use after free in the caller,
 * reported here rather than read as a finished task's (a second join would
 * return the first one's output, and its detach free the slot again). */
static size_t handle_state(ac__task *task, const char *what)
{
    size_t state = ac__task_state(task);
    if (state == AC__SLOT_FREE) {
        fprintf(stderr, "asyncc: %s of a JoinHandle that was already joined or detached\n", what);
        abort();
    }
    return state;
}

int ac_handle_abort(void *h)
{
    ac__spawn_flush();
    if (!h)
        return AC_EINVAL;
    ac__task *task = ac__task_of_handle(h);
    handle_state(task, "ac_handle_abort");
    ac__task_abort(task);
    return 0;
}

int ac_handle_is_finished(void *h)
{
    ac__spawn_flush();
    return h && (handle_state(ac__task_of_handle(h), "ac_handle_is_finished") & AC__TASK_COMPLETE) ? 1 : 0;
}

void ac_handle_detach(void *h)
{
    ac__spawn_flush();
    if (!h)
        return;
    ac__task *task = ac__task_of_handle(h);
    size_t state = handle_state(task, "ac_handle_detach");
    if ((state & AC__TASK_COMPLETE) && !(state & AC__TASK_JOIN_WAKER)) {
        /* Complete, and the completer is done with the join_waker slot, which
         * stays ours: release the slot, and then our reference together
         * with our interest in one step. */
        if (task->join_waker.vtable) {
            ac_waker_drop(task->join_waker);
            task->join_waker.vtable = NULL;
        }
        size_t prev = atomic_fetch_sub_explicit(&task->state, AC__TASK_JOIN_INTEREST + AC__TASK_REF_ONE,
                                                memory_order_acq_rel);
        if (ac__task_refs(prev) == 1)
            ac__task_dealloc(task);
        return;
    }
    size_t prev = ac__task_transition_to_join_handle_dropped(task);
    bool complete = prev & AC__TASK_COMPLETE;
    /* The join_waker slot is ours unless the completing side still has it. */
    if ((!complete || !(prev & AC__TASK_JOIN_WAKER)) && task->join_waker.vtable) {
        ac_waker_drop(task->join_waker);
        task->join_waker.vtable = NULL;
    }
    ac__task_ref_dec(task);
}

/* Leaves w as the waker to wake when the task completes. Returns true if it
 * has completed (the output is readable), false if w will be woken. */
static bool join_register(ac__task *task, size_t state, const ac_waker *w)
{
    if (!(state & AC__TASK_JOIN_WAKER)) {
        /* The slot is ours (and empty). */
        task->join_waker = ac_waker_clone(w);
        if (ac__task_set_join_waker(task))
            return false;
    } else {
        ac_waker *kept = &task->join_waker;
        if (kept->data == w->data && kept->vtable == w->vtable)
            return false;
        /* Another waker (the join moved to another task): take the slot
         * back, replace it, hand it over again. */
        if (!ac__task_unset_join_waker(task))
            return true;
        ac_waker_drop(*kept);
        *kept = ac_waker_clone(w);
        if (ac__task_set_join_waker(task))
            return false;
    }
    /* Completed meanwhile; the slot stayed ours. */
    ac_waker_drop(task->join_waker);
    task->join_waker.vtable = NULL;
    return true;
}

ac_poll_t ac_join__poll(struct ac_join__frame *f, ac_context *cx, void *out)
{
    ac__spawn_flush();
    if (!f->handle)
        ac__bad_resume("ac_join", f->state);
    ac__task *task = ac__task_of_handle(f->handle);
    size_t state = handle_state(task, "ac_join");
    if (!(state & AC__TASK_COMPLETE) && !join_register(task, state, cx->waker)) {
        f->state = AC_STATE_FIRST;
        return AC_PENDING;
    }
    if (!ac_coop_consume(cx)) {
        ac_waker_wake_by_ref(cx->waker);
        f->state = AC_STATE_FIRST;
        return AC_PENDING;
    }
    int outcome = task->outcome;
    size_t size = task->vt->out_size;
    const char *name = task->vt->name ? task->vt->name : "<unknown>";
    if (out && size) {
        if (outcome == 0)
            memcpy(out, f->handle, size);
        else
            memset(out, 0, size);
    }
    ac_handle_detach(f->handle); /* consumed */
    f->handle = NULL;
    f->state = AC_STATE_RETURNED;
    if (f->err)
        *f->err = outcome;
    else if (outcome)
        ac_panic("joined task '%s' %s", name,
                 outcome == AC_ECANCELED ? "was cancelled" : "panicked");
    return AC_READY;
}

void ac_join__drop(struct ac_join__frame *f)
{
    if (f->handle)
        ac_handle_detach(f->handle); /* an unfinished join detaches */
    f->handle = NULL;
    f->state = AC_STATE_RETURNED;
}

static ac_poll_t join_vpoll(void *frame, ac_context *cx, void *out)
{
    return ac_join__poll(frame, cx, out);
}

static void join_vdrop(void *frame) { ac_join__drop(frame); }

const ac_future_vt ac_join__vt = {
    .size = sizeof(struct ac_join__frame),
    .align = _Alignof(struct ac_join__frame),
    .out_size = 0,
    .poll = join_vpoll,
    .drop = join_vdrop,
    .name = "ac_join",
};
