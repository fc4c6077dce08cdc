/*
 * slab.c: the memory of a runtime's spawned tasks.
 *
 * Why: spawning and joining a task used to cost a malloc and a free (and,
 * for a burst of tasks, page faults as glibc gave the memory back and took
 * it again), plus two locked operations on a list of the runtime's tasks
 * that shutdown needs. A slab gives both for less: task memory is carved
 * from the runtime's chunks, recycled through per-thread free lists without
 * a lock or an atomic read-modify-write, and shutdown finds every task by
 * walking the chunks, so no list is kept at all.
 *
 * Shape (tcmalloc's thread caches over central lists):
 *  - A chunk is CHUNK_SIZE bytes carved into slots of one size class
 *    (multiples of GRAIN up to MAX_SMALL). A task bigger than that, or more
 *    aligned than GRAIN, gets a chunk of its own (a "large" chunk, one slot).
 *  - A heap is one thread's cache: a free list per class. Only the thread
 *    that claimed it touches it. Workers claim one each for their life; any
 *    other thread that spawns (a block_on thread) claims one for as long as
 *    it is in the runtime (sched.c).
 *  - A free on a thread whose heap belongs to the task's slab goes to that
 *    heap, whichever thread allocated the slot; a heap holding more than
 *    HEAP_MAX free slots of a class gives BATCH of them to the slab's
 *    central list for the class. An allocation from an empty list takes a
 *    batch back, or carves a new chunk. A free on any other thread goes to
 *    the central list under the slab's lock.
 *  - A free slot's state word holds SLOT_FREE, which no task's state can
 *    be, so a walk over the chunks (ac__slab_each) tells tasks from free
 *    slots. Its next words link it into a free list.
 *
 * Page faults: a burst of spawns into fresh memory takes a page fault per
 * 4 KiB, which costs more than the spawns themselves (about 2 us each on a
 * virtual machine: 100,000 small tasks, 18 MB, take 9 ms of faults). Once a
 * slab holds REGION_AFTER bytes of chunks, further small chunks are carved
 * from REGION_SIZE regions mapped on a huge-page boundary and marked
 * MADV_HUGEPAGE, so that where the system allows transparent huge pages
 * (the default "madvise" setting) a region takes one fault; elsewhere the
 * advice is ignored and nothing changes. Small programs (up to about 2,000
 * tasks of 128 bytes) stay below the threshold and never hold a region's
 * worth of memory; past it, the malloc'd chunks before the first region
 * cost 2 us a page again, so the threshold is low (a 2 MiB one cost a burst
 * of 100,000 spawns 2 ms more on the spawning thread).
 *
 * Memory goes back to the system when the runtime is freed (ac__slab_close),
 * not before: a runtime keeps the high-water mark of its task memory for
 * reuse, as an allocator's cache would. A task still referenced then (a
 * waker clone kept outside the runtime) keeps its chunk alive; the chunk is
 * freed with its last such task, and the slab with its last chunk; until
 * then the slab stays on a process-wide list of closed slabs, so that leak
 * checkers see its memory as reachable (it is: through those references).
 *
 * The slab's lock guards the chunk list, the central lists, the heap list
 * and, after close, the live counts; the chunk header fields set at carving
 * never change.
 */
#include "internal.h"

#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

/* Under AddressSanitizer, a free slot's bytes past the task header are
 * poisoned, so that a program reading a task's output slot or frame after
 * the task's memory went back to the slab (a pointer into a finished task,
 * kept too long) is reported, as it would be for malloc'd memory. The
 * header stays readable: the free lists and the walks use it. */
#if defined(__SANITIZE_ADDRESS__)
#define SLAB_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SLAB_ASAN 1
#endif
#endif
#ifdef SLAB_ASAN
#include <sanitizer/asan_interface.h>
#define POISON(p, n) ASAN_POISON_MEMORY_REGION(p, n)
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION(p, n)
#else
#define POISON(p, n) ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif

/* Poisons the bytes of a free slot of `size` bytes past its header. */
static void poison_slot(void *slot, size_t size)
{
    POISON((char *)slot + sizeof(ac__task), size - sizeof(ac__task));
}

#define CHUNK_SIZE (16 * 1024)      /* bytes of a small chunk, header included */
#define GRAIN 16                    /* size class step, bytes; also the slot alignment */
#define MAX_SMALL 1024              /* largest slot of a small chunk, bytes */
#define CLASSES (MAX_SMALL / GRAIN) /* class c holds slots of (c + 1) * GRAIN bytes */
#define BATCH 256                   /* slots moved between a heap and the central list at once */
#define HEAP_MAX (2 * BATCH)        /* a heap's free slots per class before it gives a batch back */
#define CACHE_LINE 64
#define REGION_SIZE ((size_t)2 << 20)  /* a huge page on x86-64 and arm64 (4 KiB base pages) */
#define REGION_AFTER ((size_t)256 << 10) /* chunk bytes a slab holds before it maps regions */

#define SLOT_FREE AC__SLOT_FREE /* the state word of a free slot (internal.h) */

/* A free slot. It overlays the task header: `state` is the task's state
 * word, and the other fields lie within the header's first 32 bytes, away
 * from chunk_off and slab_class, which stay valid while the slot is free. */
typedef struct slot {
    _Atomic size_t state;    /* SLOT_FREE */
    struct slot *next;       /* next free slot of the list */
    struct slot *next_batch; /* central list: the next batch (in a batch's first slot) */
    size_t count;            /* central list: slots in this batch (in its first slot) */
} slot;

/* A REGION_SIZE mapping that small chunks are carved from, in order. */
typedef struct region {
    char *base;              /* REGION_SIZE bytes at a REGION_SIZE boundary */
    size_t carved;           /* bytes handed out as chunks */
    size_t live;             /* chunks handed out and not given back */
} region;

typedef struct chunk {
    struct chunk *prev;      /* the slab's chunk list (under its lock) */
    struct chunk *next;      /* ... */
    ac__slab *slab;          /* owner */
    region *region;          /* the region it was carved from, or NULL: malloc'd */
    uint32_t slot_size;      /* bytes per slot */
    uint32_t nslots;         /* slots carved (1 for a large chunk) */
    uint32_t first;          /* offset of the first slot from the chunk */
    uint32_t live;           /* after close: slots still holding a task */
} chunk;

struct ac__slab_heap {
    ac__slab *slab;            /* the slab it caches for */
    ac__slab_heap *next;       /* the slab's list of heaps (under its lock) */
    bool claimed;              /* a thread uses it (under the slab's lock) */
    struct {
        slot *free;            /* free slots of the class */
        unsigned n;            /* their number */
    } cls[CLASSES];
};

struct ac__slab {
    ac__scheduler *sched;      /* owner of its tasks (set at creation) */
    pthread_mutex_t mu;        /* guards everything below */
    chunk *chunks;             /* every chunk, doubly linked */
    ac__slab_heap *heaps;      /* every heap, claimed or not */
    struct {
        slot *batches;         /* batches of BATCH slots, linked through next_batch */
        slot *loose;           /* single frees from threads without a heap */
        size_t nloose;         /* their number */
    } central[CLASSES];
    size_t chunk_bytes;        /* small chunks carved so far */
    region *carving;           /* the region small chunks come from now, or NULL */
    bool closed;               /* the runtime is gone: frees count chunks down */
    size_t kept;               /* after close: chunks with live slots */
    ac__slab *closed_prev;     /* after close: the list of closed slabs (under closed_mu) */
    ac__slab *closed_next;     /* ... */
    _Atomic unsigned outside;  /* wakes in flight from outside the runtime; last, away
                                  from `sched`, which every wake reads */
};

/* Closed slabs that still hold tasks (see above). */
static pthread_mutex_t closed_mu = PTHREAD_MUTEX_INITIALIZER;
static ac__slab *closed_slabs;

/* The heap of the calling thread (sched.c claims and sets it), or NULL, and
 * its slab. */
static _Thread_local ac__slab_heap *tls_heap;
_Thread_local ac__slab *ac__tls_heap_slab;

static size_t round_up(size_t n, size_t align) { return (n + align - 1) & ~(align - 1); }

static chunk *chunk_of(ac__task *task) { return (chunk *)((char *)task - task->chunk_off); }

/* ======================================================================== */
/* Slabs and heaps                                                           */
/* ======================================================================== */

ac__slab *ac__slab_new(ac__scheduler *sched)
{
    ac__slab *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    if (pthread_mutex_init(&s->mu, NULL) != 0) {
        free(s);
        return NULL;
    }
    s->sched = sched;
    atomic_init(&s->outside, 0);
    return s;
}

ac__scheduler *ac__slab_sched(const ac__task *task)
{
    if (task->slab_class == AC__SLAB_NONE)
        return NULL;
    return chunk_of((ac__task *)task)->slab->sched;
}

ac__slab *ac__slab_outside_enter(const ac__task *task)
{
    ac__slab *s = chunk_of((ac__task *)task)->slab;
    atomic_fetch_add(&s->outside, 1); /* seq_cst: see ac__slab_wait_outside */
    return s;
}

void ac__slab_outside_exit(ac__slab *s) { atomic_fetch_sub_explicit(&s->outside, 1, memory_order_release); }

/* Called once every task of the runtime has completed. A wake that entered
 * before then is waited for. One that enters later finds its task complete
 * and schedules nothing: entering comes before the wake's transition, a
 * read-modify-write of the task's state word, and so does the completion
 * before this load; whichever transition comes first in the word's order
 * is seen by the other side. */
void ac__slab_wait_outside(ac__slab *s)
{
    while (atomic_load(&s->outside) != 0)
        sched_yield();
}

ac__slab_heap *ac__slab_heap_claim(ac__slab *s)
{
    pthread_mutex_lock(&s->mu);
    ac__slab_heap *h = s->heaps;
    while (h && h->claimed)
        h = h->next;
    if (!h && (h = calloc(1, sizeof *h))) {
        h->slab = s;
        h->next = s->heaps;
        s->heaps = h;
    }
    if (h)
        h->claimed = true;
    pthread_mutex_unlock(&s->mu);
    return h;
}

/* Gives `list` (n slots, linked through next) to the central list of class
 * c. Under the lock. */
static void central_put_locked(ac__slab *s, int c, slot *list, size_t n)
{
    while (list) {
        slot *next = list->next;
        list->next = s->central[c].loose;
        s->central[c].loose = list;
        list = next;
    }
    s->central[c].nloose += n;
}

void ac__slab_heap_release(ac__slab_heap *h)
{
    if (!h)
        return;
    ac__slab *s = h->slab;
    pthread_mutex_lock(&s->mu);
    /* Its free slots go to the central lists, where other threads find them. */
    for (int c = 0; c < CLASSES; c++) {
        if (h->cls[c].n) {
            central_put_locked(s, c, h->cls[c].free, h->cls[c].n);
            h->cls[c].free = NULL;
            h->cls[c].n = 0;
        }
    }
    h->claimed = false;
    pthread_mutex_unlock(&s->mu);
}

ac__slab_heap *ac__slab_heap_current(void) { return tls_heap; }

void ac__slab_heap_set(ac__slab_heap *h)
{
    tls_heap = h;
    ac__tls_heap_slab = h ? h->slab : NULL;
}


/* ======================================================================== */
/* Chunks                                                                    */
/* ======================================================================== */

static void link_chunk_locked(ac__slab *s, chunk *ch)
{
    ch->prev = NULL;
    ch->next = s->chunks;
    if (s->chunks)
        s->chunks->prev = ch;
    s->chunks = ch;
}

static void unlink_chunk_locked(ac__slab *s, chunk *ch)
{
    if (ch->prev)
        ch->prev->next = ch->next;
    else
        s->chunks = ch->next;
    if (ch->next)
        ch->next->prev = ch->prev;
}

/* Regions mapped now, in all slabs. */
static atomic_size_t regions_mapped;

size_t ac__slab_regions_mapped(void) { return atomic_load(&regions_mapped); }

/* Maps a new region, or returns NULL. */
static region *region_new(void)
{
    region *r = malloc(sizeof *r);
    if (!r)
        return NULL;
    /* Twice the size, then the unaligned ends are unmapped. */
    char *p = mmap(NULL, 2 * REGION_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        free(r);
        return NULL;
    }
    char *base = (char *)(((uintptr_t)p + REGION_SIZE - 1) & ~(uintptr_t)(REGION_SIZE - 1));
    if (base > p)
        munmap(p, (size_t)(base - p));
    if (base + REGION_SIZE < p + 2 * REGION_SIZE)
        munmap(base + REGION_SIZE, (size_t)(p + 2 * REGION_SIZE - (base + REGION_SIZE)));
    madvise(base, REGION_SIZE, MADV_HUGEPAGE); /* advice: failure changes nothing */
    *r = (region){base, 0, 0};
    atomic_fetch_add(&regions_mapped, 1);
    return r;
}

static void region_free(region *r)
{
    UNPOISON(r->base, REGION_SIZE); /* a later mapping there starts clean */
    munmap(r->base, REGION_SIZE);
    free(r);
    atomic_fetch_sub(&regions_mapped, 1);
}

/* A new small chunk (not yet linked), or NULL. Under the lock. */
static chunk *chunk_new_locked(ac__slab *s)
{
    chunk *ch = NULL;
    if (s->chunk_bytes >= REGION_AFTER) {
        if (!s->carving)
            s->carving = region_new();
        region *r = s->carving;
        if (r) {
            ch = (chunk *)(r->base + r->carved);
            ch->region = r;
            r->carved += CHUNK_SIZE;
            r->live++;
            if (r->carved + CHUNK_SIZE > REGION_SIZE)
                s->carving = NULL; /* full: its chunks own it now */
        }
    }
    if (!ch) {
        ch = aligned_alloc(CACHE_LINE, CHUNK_SIZE);
        if (!ch)
            return NULL;
        ch->region = NULL;
    }
    s->chunk_bytes += CHUNK_SIZE;
    return ch;
}

/* Gives back the memory of a small chunk. Under the lock. */
static void chunk_free_locked(ac__slab *s, chunk *ch)
{
    region *r = ch->region;
    if (!r) {
        UNPOISON(ch, CHUNK_SIZE);
        free(ch);
        return;
    }
    if (--r->live == 0 && r != s->carving)
        region_free(r);
}

/* Carves a new chunk of class c; returns its slots as a list (*n of them),
 * or NULL when memory is exhausted. */
static slot *carve(ac__slab *s, int c, unsigned *n)
{
    size_t size = (size_t)(c + 1) * GRAIN;
    pthread_mutex_lock(&s->mu);
    chunk *ch = chunk_new_locked(s);
    pthread_mutex_unlock(&s->mu);
    if (!ch)
        return NULL;
    ch->slab = s;
    ch->slot_size = (uint32_t)size;
    ch->first = (uint32_t)round_up(sizeof *ch, CACHE_LINE);
    ch->nslots = (uint32_t)((CHUNK_SIZE - ch->first) / size);
    ch->live = 0;
    /* Linked in address order, so that a burst of spawns walks memory
     * forwards. */
    slot *head = NULL;
    for (uint32_t i = ch->nslots; i-- > 0;) {
        size_t off = ch->first + (size_t)i * size;
        ac__task *t = (ac__task *)((char *)ch + off);
        t->chunk_off = (uint32_t)off;
        t->slab_class = (uint8_t)c;
        slot *sl = (slot *)t;
        atomic_store_explicit(&sl->state, SLOT_FREE, memory_order_relaxed);
        sl->next = head;
        head = sl;
        poison_slot(sl, size);
    }
    pthread_mutex_lock(&s->mu);
    link_chunk_locked(s, ch);
    pthread_mutex_unlock(&s->mu);
    *n = ch->nslots;
    return head;
}

/* ======================================================================== */
/* Allocation                                                                */
/* ======================================================================== */

/* Refills h's empty list of class c: a batch from the central list, the
 * central list's loose slots, or a new chunk. Returns false when memory is
 * exhausted. */
static bool refill(ac__slab_heap *h, int c)
{
    ac__slab *s = h->slab;
    pthread_mutex_lock(&s->mu);
    slot *b = s->central[c].batches;
    if (b) {
        s->central[c].batches = b->next_batch;
        h->cls[c].free = b;
        h->cls[c].n = (unsigned)b->count;
    } else if (s->central[c].loose) {
        h->cls[c].free = s->central[c].loose;
        h->cls[c].n = (unsigned)s->central[c].nloose;
        s->central[c].loose = NULL;
        s->central[c].nloose = 0;
    }
    pthread_mutex_unlock(&s->mu);
    if (h->cls[c].free)
        return true;
    unsigned n;
    slot *list = carve(s, c, &n);
    if (!list)
        return false;
    h->cls[c].free = list;
    h->cls[c].n = n;
    return true;
}

/* A large chunk for one task of `size` bytes aligned to `align`. */
static ac__task *alloc_large(ac__slab *s, size_t size, size_t align)
{
    if (align < CACHE_LINE)
        align = CACHE_LINE;
    size_t first = round_up(sizeof(chunk), align);
    if (size > UINT32_MAX || first > UINT32_MAX)
        return NULL;
    void *p = NULL;
    if (posix_memalign(&p, align, first + size) != 0)
        return NULL;
    chunk *ch = p;
    ch->region = NULL;
    ch->slab = s;
    ch->slot_size = (uint32_t)size;
    ch->nslots = 1;
    ch->first = (uint32_t)first;
    ch->live = 0;
    ac__task *t = (ac__task *)((char *)ch + first);
    t->chunk_off = (uint32_t)first;
    t->slab_class = AC__SLAB_LARGE;
    pthread_mutex_lock(&s->mu);
    link_chunk_locked(s, ch);
    pthread_mutex_unlock(&s->mu);
    return t;
}

ac__task *ac__slab_alloc(ac__slab_heap *h, size_t size, size_t align)
{
    if (size > MAX_SMALL || align > GRAIN)
        return alloc_large(h->slab, size, align);
    int c = size ? (int)((size - 1) / GRAIN) : 0;
    if (!h->cls[c].free && !refill(h, c))
        return NULL;
    slot *sl = h->cls[c].free;
    h->cls[c].free = sl->next;
    h->cls[c].n--;
    UNPOISON(sl, (size_t)(c + 1) * GRAIN);
    if (sl->next)
        ac__task_prefetch(sl->next); /* the next spawn's */
    return (ac__task *)sl;
}

/* ======================================================================== */
/* Freeing                                                                   */
/* ======================================================================== */

/* After close: one fewer live slot in ch; frees ch, and the slab with its
 * last chunk. Under the lock, which it releases. */
static void free_orphan_unlock(ac__slab *s, chunk *ch)
{
    bool last = false;
    if (--ch->live == 0) {
        unlink_chunk_locked(s, ch);
        chunk_free_locked(s, ch);
        last = --s->kept == 0;
    }
    pthread_mutex_unlock(&s->mu);
    if (last) {
        pthread_mutex_lock(&closed_mu);
        if (s->closed_prev)
            s->closed_prev->closed_next = s->closed_next;
        else
            closed_slabs = s->closed_next;
        if (s->closed_next)
            s->closed_next->closed_prev = s->closed_prev;
        pthread_mutex_unlock(&closed_mu);
        pthread_mutex_destroy(&s->mu);
        free(s);
    }
}

/* Gives the first BATCH slots of h's list of class c to the central list. */
static void give_back(ac__slab_heap *h, int c)
{
    slot *first = h->cls[c].free, *last = first;
    for (unsigned i = 1; i < BATCH; i++)
        last = last->next;
    h->cls[c].free = last->next;
    h->cls[c].n -= BATCH;
    last->next = NULL;
    first->count = BATCH;
    ac__slab *s = h->slab;
    pthread_mutex_lock(&s->mu);
    first->next_batch = s->central[c].batches;
    s->central[c].batches = first;
    pthread_mutex_unlock(&s->mu);
}

void ac__slab_free(ac__task *task)
{
    chunk *ch = chunk_of(task);
    ac__slab *s = ch->slab;
    slot *sl = (slot *)task;
    int c = task->slab_class;
    ac__slab_heap *h = tls_heap;

    if (c != AC__SLAB_LARGE)
        poison_slot(sl, ch->slot_size);
    if (c != AC__SLAB_LARGE && ac__tls_heap_slab == s) {
        atomic_store_explicit(&sl->state, SLOT_FREE, memory_order_relaxed);
        sl->next = h->cls[c].free;
        h->cls[c].free = sl;
        if (++h->cls[c].n > HEAP_MAX)
            give_back(h, c);
        return;
    }

    pthread_mutex_lock(&s->mu);
    atomic_store_explicit(&sl->state, SLOT_FREE, memory_order_relaxed);
    if (s->closed) {
        free_orphan_unlock(s, ch);
        return;
    }
    if (c == AC__SLAB_LARGE) {
        unlink_chunk_locked(s, ch);
        pthread_mutex_unlock(&s->mu);
        free(ch);
        return;
    }
    sl->next = NULL;
    central_put_locked(s, c, sl, 1);
    pthread_mutex_unlock(&s->mu);
}

/* ======================================================================== */
/* Walking and closing                                                       */
/* ======================================================================== */

void ac__slab_each(ac__slab *s, void (*fn)(ac__task *task, void *arg), void *arg)
{
    pthread_mutex_lock(&s->mu);
    for (chunk *ch = s->chunks; ch; ch = ch->next) {
        for (uint32_t i = 0; i < ch->nslots; i++) {
            ac__task *t = (ac__task *)((char *)ch + ch->first + (size_t)i * ch->slot_size);
            size_t state = atomic_load_explicit(&t->state, memory_order_acquire);
            /* A slot that is free, or allocated and not yet spawned (state
             * 0, no reference), holds no task to look at. */
            if (state != SLOT_FREE && ac__task_refs(state) != 0)
                fn(t, arg);
        }
    }
    pthread_mutex_unlock(&s->mu);
}

void ac__slab_close(ac__slab *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->mu);
    while (s->heaps) {
        ac__slab_heap *h = s->heaps;
        s->heaps = h->next;
        free(h);
    }
    memset(s->central, 0, sizeof s->central);
    size_t kept = 0;
    for (chunk *ch = s->chunks, *next; ch; ch = next) {
        next = ch->next;
        uint32_t live = 0;
        for (uint32_t i = 0; i < ch->nslots; i++) {
            ac__task *t = (ac__task *)((char *)ch + ch->first + (size_t)i * ch->slot_size);
            if (atomic_load_explicit(&t->state, memory_order_acquire) != SLOT_FREE)
                live++;
        }
        if (live == 0) {
            unlink_chunk_locked(s, ch);
            chunk_free_locked(s, ch);
        } else {
            ch->live = live;
            kept++;
        }
    }
    /* The region being carved is freed with its last chunk from now on. */
    region *r = s->carving;
    s->carving = NULL;
    if (r && r->live == 0)
        region_free(r);
    s->closed = true;
    s->kept = kept;
    if (kept) {
        pthread_mutex_lock(&closed_mu);
        s->closed_prev = NULL;
        s->closed_next = closed_slabs;
        if (closed_slabs)
            closed_slabs->closed_prev = s;
        closed_slabs = s;
        pthread_mutex_unlock(&closed_mu);
    }
    pthread_mutex_unlock(&s->mu);
    if (kept == 0) {
        pthread_mutex_destroy(&s->mu);
        free(s);
    }
}
