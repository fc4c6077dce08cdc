/*
 * joinset.c: JoinSet (tokio::task::JoinSet): spawned tasks whose outputs are
 * handed back in completion order.
 *
 * Design (Tokio's task/join_set.rs over util/idle_notified_set.rs). The set
 * holds each task's JoinHandle in an entry. At spawn, the entry installs a
 * waker of its own in the handle's join waker slot (sched.c's join protocol,
 * the JOIN_WAKER bit), exactly as an await of the handle would; so the
 * task's completion, on whatever thread, wakes the entry, and the entry's
 * wake moves it to the set's ready queue under the set's mutex and wakes the
 * task waiting in ac_joinset_next. Neither the task nor the scheduler needs
 * a hook: to them the set is one more joiner.
 *
 * Lists. Every entry the set holds (spawned, not yet returned by next) is in
 * the `all` list, which only the set's owner touches (spawn, next,
 * abort_all, free: one task at a time, like Rust's &mut JoinSet). An entry
 * whose task has completed is also in the `ready` FIFO, in completion order;
 * that queue, the entries' `where` and the waiting task's waker are guarded
 * by `mu`, which completions take on any thread.
 *
 * Lifetimes. An entry is reference counted: the set's reference while the
 * entry is in `all`, and the entry waker clone in its task's join waker slot
 * (released by whichever side of the join protocol ends up owning the slot).
 * The set is counted too: its owner's reference until ac_joinset_free, and
 * one per living entry. So a completion that races with ac_joinset_free
 * still finds its entry and the set's mutex valid; it sees that the entry is
 * no longer the set's (GONE) and does nothing.
 *
 * Output. When next takes an entry, its task has completed (its wake comes
 * from the task's completion, or spawn found the task complete): next reads
 * the outcome and output slot as ac_join__poll does and detaches the handle,
 * which releases the task.
 */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Where an entry is, guarded by the set's mutex. */
enum {
    IDLE,  /* its task has not completed (or has, and is about to wake it) */
    READY, /* in the ready queue */
    GONE   /* returned by next, or the set was freed: wakes do nothing */
};

typedef struct entry {
    struct ac_joinset *set;    /* the set; the entry holds a reference to it */
    void *handle;              /* the task's JoinHandle, consumed by next or free */
    struct entry *prev;        /* the set's `all` list (owner only) */
    struct entry *next;        /* ... */
    struct entry *ready_next;  /* the ready queue (under set->mu) */
    _Atomic size_t refs;       /* the set's, while in `all`, plus each waker clone */
    uint8_t where;             /* IDLE, READY or GONE (under set->mu) */
} entry;

struct ac_joinset {
    pthread_mutex_t mu;        /* guards the ready queue, entries' where, waiter */
    _Atomic size_t refs;       /* the owner's, until ac_joinset_free, plus one per entry */
    entry *all;                /* entries not yet returned by next, newest first (owner only) */
    size_t len;                /* how many (owner only) */
    entry *ready_head;         /* completed entries, oldest first (under mu) */
    entry *ready_tail;         /* the newest of them (under mu) */
    ac_waker waiter;           /* the waker of the pending next; vtable NULL: none (under mu) */
    const void *waiter_frame;  /* the next frame that registered it (under mu) */
};

static const ac_waker_vtable entry_waker_vtable;

/* ======================================================================== */
/* References                                                                */
/* ======================================================================== */

static void set_release(struct ac_joinset *s)
{
    if (atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) == 1) {
        pthread_mutex_destroy(&s->mu);
        free(s);
    }
}

static void entry_release(entry *e)
{
    if (atomic_fetch_sub_explicit(&e->refs, 1, memory_order_acq_rel) == 1) {
        struct ac_joinset *s = e->set;
        free(e);
        set_release(s);
    }
}

/* Takes the waker registered by next (the caller drops or wakes it after
 * unlocking, since either may take a scheduler's lock). Under mu. */
static ac_waker take_waiter(struct ac_joinset *s)
{
    ac_waker w = s->waiter;
    s->waiter = (ac_waker){NULL, NULL};
    s->waiter_frame = NULL;
    return w;
}

/* ======================================================================== */
/* The entry's waker: the join waker of its task                             */
/* ======================================================================== */

static entry *as_entry(const void *data) { return (entry *)(uintptr_t)data; }

/* The entry's task has completed: queue the entry and wake next. */
static void entry_ready(entry *e)
{
    struct ac_joinset *s = e->set;
    ac_waker w = {NULL, NULL};
    pthread_mutex_lock(&s->mu);
    if (e->where == IDLE) {
        e->where = READY;
        e->ready_next = NULL;
        if (s->ready_head)
            s->ready_tail->ready_next = e;
        else
            s->ready_head = e;
        s->ready_tail = e;
        w = take_waiter(s);
    }
    pthread_mutex_unlock(&s->mu);
    if (w.vtable)
        ac_waker_wake(w);
}

static ac_waker entry_clone(const void *data)
{
    /* Relaxed: the caller holds a reference, so the entry stays. */
    atomic_fetch_add_explicit(&as_entry(data)->refs, 1, memory_order_relaxed);
    return (ac_waker){&entry_waker_vtable, data};
}

static void entry_wake(const void *data)
{
    entry_ready(as_entry(data));
    entry_release(as_entry(data));
}

static void entry_wake_by_ref(const void *data) { entry_ready(as_entry(data)); }

static void entry_drop(const void *data) { entry_release(as_entry(data)); }

static const ac_waker_vtable entry_waker_vtable = {
    entry_clone,
    entry_wake,
    entry_wake_by_ref,
    entry_drop,
};

/* ======================================================================== */
/* The set                                                                   */
/* ======================================================================== */

void *ac_joinset_new(void)
{
    struct ac_joinset *s = calloc(1, sizeof *s);
    if (!s || pthread_mutex_init(&s->mu, NULL) != 0) {
        fputs("asyncc: out of memory creating a JoinSet\n", stderr);
        abort();
    }
    atomic_init(&s->refs, 1);
    return s;
}

void ac__joinset_spawn(void *set, void *frame)
{
    struct ac_joinset *s = set;
    const ac_future_vt *vt = ac__task_of_frame(frame)->vt;
    const char *name = vt->name ? vt->name : "<unknown>";
    if (!s) {
        fprintf(stderr, "asyncc: ac_joinset_spawn of '%s' into a NULL set\n", name);
        abort();
    }
    entry *e = malloc(sizeof *e);
    if (!e) {
        fprintf(stderr, "asyncc: out of memory spawning '%s' into a JoinSet\n", name);
        abort();
    }
    void *h = ac__spawn(frame);
    ac__task *task = ac__task_of_handle(h);

    e->set = s;
    e->handle = h;
    e->where = IDLE;
    e->ready_next = NULL;
    /* The set's reference, and the clone that goes into the join waker slot. */
    atomic_init(&e->refs, 2);
    atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
    e->prev = NULL;
    e->next = s->all;
    if (s->all)
        s->all->prev = e;
    s->all = e;
    s->len++;

    /* The slot is the handle side's (JOIN_WAKER is clear on a new handle):
     * fill it, then hand it to the task side, which wakes it on completion.
     * Setting the bit publishes everything above to the completing thread. */
    task->join_waker = (ac_waker){&entry_waker_vtable, e};
    if (!ac__task_set_join_waker(task)) {
        /* Completed already (or cancelled at once by a closing runtime): the
         * slot stayed ours and nobody will wake it. */
        task->join_waker.vtable = NULL;
        entry_ready(e);
        entry_release(e); /* the clone that was not installed */
    }
}

size_t ac_joinset_len(void *set)
{
    struct ac_joinset *s = set;
    return s ? s->len : 0;
}

void ac_joinset_abort_all(void *set)
{
    struct ac_joinset *s = set;
    if (!s)
        return;
    for (entry *e = s->all; e; e = e->next)
        ac_handle_abort(e->handle);
}

void ac_joinset_free(void *set)
{
    struct ac_joinset *s = set;
    if (!s)
        return;
    /* Abort first: a handle that is only dropped lets its task run on. */
    ac_joinset_abort_all(s);
    pthread_mutex_lock(&s->mu);
    for (entry *e = s->all; e; e = e->next)
        e->where = GONE;
    s->ready_head = s->ready_tail = NULL;
    ac_waker w = take_waiter(s);
    pthread_mutex_unlock(&s->mu);
    if (w.vtable)
        ac_waker_drop(w);
    for (entry *e = s->all, *next; e; e = next) {
        next = e->next;
        /* Releases the join waker clone too, unless the task side holds the
         * slot while it completes; it releases it then. */
        ac_handle_detach(e->handle);
        entry_release(e);
    }
    s->all = NULL;
    s->len = 0;
    set_release(s);
}

/* ======================================================================== */
/* ac_joinset_next                                                           */
/* ======================================================================== */

/* Ready: a next that registered a waker no longer needs it. */
static ac_poll_t next_ready(struct ac_joinset_next__frame *f, struct ac_joinset *s, int *out, int v)
{
    ac_waker w = {NULL, NULL};
    if (s) {
        pthread_mutex_lock(&s->mu);
        if (s->waiter_frame == f)
            w = take_waiter(s);
        pthread_mutex_unlock(&s->mu);
    }
    if (w.vtable)
        ac_waker_drop(w);
    f->state = AC_STATE_RETURNED;
    if (out)
        *out = v;
    return AC_READY;
}

ac_poll_t ac_joinset_next__poll(struct ac_joinset_next__frame *f, ac_context *cx, int *out)
{
    ac__spawn_flush();
    if (f->state != AC_STATE_UNRESUMED && f->state != AC_STATE_FIRST)
        ac__bad_resume("ac_joinset_next", f->state);
    struct ac_joinset *s = f->set;
    if (!s || s->len == 0)
        return next_ready(f, s, out, 0);

    ac_waker old = {NULL, NULL};
    pthread_mutex_lock(&s->mu);
    entry *e = s->ready_head;
    if (!e) {
        /* Register (or refresh) the waker; a completion takes it. */
        const ac_waker *w = cx->waker;
        if (s->waiter.vtable && (s->waiter.data != w->data || s->waiter.vtable != w->vtable))
            old = take_waiter(s);
        if (!s->waiter.vtable)
            s->waiter = ac_waker_clone(w);
        s->waiter_frame = f;
        pthread_mutex_unlock(&s->mu);
        if (old.vtable)
            ac_waker_drop(old);
        f->state = AC_STATE_FIRST;
        return AC_PENDING;
    }
    if (!ac_coop_consume(cx)) {
        pthread_mutex_unlock(&s->mu);
        ac_waker_wake_by_ref(cx->waker);
        f->state = AC_STATE_FIRST;
        return AC_PENDING;
    }
    s->ready_head = e->ready_next;
    e->where = GONE;
    pthread_mutex_unlock(&s->mu);

    if (e->prev)
        e->prev->next = e->next;
    else
        s->all = e->next;
    if (e->next)
        e->next->prev = e->prev;
    s->len--;

    /* The completion happened before its wake, which happened before our
     * lock: the outcome and the output slot are written. */
    ac__task *task = ac__task_of_handle(e->handle);
    int outcome = task->outcome;
    size_t size = task->vt->out_size;
    const char *name = task->vt->name ? task->vt->name : "<unknown>";
    if (f->out && size) {
        if (outcome == 0)
            memcpy(f->out, e->handle, size);
        else
            memset(f->out, 0, size);
    }
    ac_handle_detach(e->handle); /* consumed: may free the task (name is in its vt) */
    entry_release(e);
    ac_poll_t r = next_ready(f, s, out, 1);
    if (f->err)
        *f->err = outcome;
    else if (outcome)
        ac_panic("task '%s' of a JoinSet %s", name,
                 outcome == AC_ECANCELED ? "was cancelled" : "panicked");
    return r;
}

void ac_joinset_next__drop(struct ac_joinset_next__frame *f)
{
    struct ac_joinset *s = f->set;
    if (f->state == AC_STATE_FIRST && s) {
        ac_waker w = {NULL, NULL};
        pthread_mutex_lock(&s->mu);
        if (s->waiter_frame == f)
            w = take_waiter(s);
        pthread_mutex_unlock(&s->mu);
        if (w.vtable)
            ac_waker_drop(w);
    }
    f->state = AC_STATE_RETURNED;
}

static ac_poll_t next_vpoll(void *frame, ac_context *cx, void *out)
{
    return ac_joinset_next__poll(frame, cx, out);
}

static void next_vdrop(void *frame) { ac_joinset_next__drop(frame); }

const ac_future_vt ac_joinset_next__vt = {
    .size = sizeof(struct ac_joinset_next__frame),
    .align = _Alignof(struct ac_joinset_next__frame),
    .out_size = sizeof(int),
    .poll = next_vpoll,
    .drop = next_vdrop,
    .name = "ac_joinset_next",
};
