/*
 * arena.c: storage for frames whose size is only known at run time (a future
 * awaited across files, the frame of async_main).
 *
 * An await of such a future allocates its frame when the await starts and
 * frees it when the await ends, so a loop that awaits would call malloc and
 * free on every iteration. Instead each thread keeps free lists by size class
 * (multiples of GRAIN bytes up to MAX_CACHED), each holding at most
 * PER_CLASS blocks; a block is linked through its first word while it is
 * cached. Steady-state allocation is then a pop from a thread-local list.
 *
 * Blocks come from malloc, which aligns to alignof(max_align_t); frames that
 * need more, or are bigger than MAX_CACHED, go straight to posix_memalign and
 * free. A block may be freed on another thread than the one that allocated it
 * (a task that moved): it then joins the freeing thread's cache, which is fine
 * because every cached block is an ordinary malloc block.
 *
 * A thread's cache is emptied when the thread exits (a pthread key
 * destructor) or, for the thread that calls exit(), by an atexit handler, so
 * that nothing cached is reported as leaked. After that, frees on that thread
 * bypass the cache.
 */
#include "internal.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#define GRAIN 16                         /* size class step, bytes */
#define MAX_CACHED 1024                  /* largest cached block, bytes */
#define CLASSES (MAX_CACHED / GRAIN)     /* class c holds blocks of (c + 1) * GRAIN bytes */
#define PER_CLASS 64                     /* cached blocks per class and thread, at most */

/* A cached block's first word. */
typedef struct block {
    struct block *next; /* next free block of the same class */
} block;

typedef struct cache {
    block *free[CLASSES];           /* free blocks by class */
    unsigned short count[CLASSES];  /* length of each list, at most PER_CLASS */
    bool registered;                /* the key destructor will empty this cache */
    bool closed;                    /* emptied at thread exit: frees bypass it */
} cache;

static _Thread_local cache tls_cache;

static pthread_once_t key_once = PTHREAD_ONCE_INIT;
static pthread_key_t key;
static bool key_ok; /* whether key was created; written once under key_once */

/* Frees every cached block of `c` and closes it. */
static void empty(cache *c)
{
    for (int i = 0; i < CLASSES; i++) {
        while (c->free[i]) {
            block *b = c->free[i];
            c->free[i] = b->next;
            free(b);
        }
        c->count[i] = 0;
    }
    c->closed = true;
}

static void on_thread_exit(void *arg) { empty(arg); }

/* Runs in the thread that calls exit(); other threads' caches are theirs. */
static void on_process_exit(void) { empty(&tls_cache); }

static void make_key(void)
{
    key_ok = pthread_key_create(&key, on_thread_exit) == 0;
    if (key_ok)
        atexit(on_process_exit);
}

/* Arranges for this thread's cache to be emptied at exit; false if it can't. */
static bool register_cache(cache *c)
{
    pthread_once(&key_once, make_key);
    c->registered = key_ok && pthread_setspecific(key, c) == 0;
    return c->registered;
}

static bool power_of_two(size_t n) { return n && !(n & (n - 1)); }

/* The size class for vt, or -1 when its frames are not cached. */
static int class_of(const ac_future_vt *vt)
{
    if (vt->size > MAX_CACHED || vt->align > _Alignof(max_align_t))
        return -1;
    return vt->size ? (int)((vt->size - 1) / GRAIN) : 0;
}

void *ac_frame_alloc(const ac_future_vt *vt)
{
    size_t align = vt->align ? vt->align : 1;
    if (!power_of_two(align))
        return NULL;

    int c = class_of(vt);
    if (c < 0) {
        if (align < sizeof(void *))
            align = sizeof(void *); /* posix_memalign's minimum */
        void *p = NULL;
        return posix_memalign(&p, align, vt->size ? vt->size : 1) == 0 ? p : NULL;
    }

    cache *tc = &tls_cache;
    block *b = tc->free[c];
    if (b) {
        tc->free[c] = b->next;
        tc->count[c]--;
        return b;
    }
    return malloc((size_t)(c + 1) * GRAIN);
}

void ac_frame_free(const ac_future_vt *vt, void *frame)
{
    if (!frame)
        return;
    int c = class_of(vt);
    cache *tc = &tls_cache;
    if (c < 0 || tc->closed || tc->count[c] >= PER_CLASS ||
        (!tc->registered && !register_cache(tc))) {
        free(frame);
        return;
    }
    block *b = frame;
    b->next = tc->free[c];
    tc->free[c] = b;
    tc->count[c]++;
}

void *ac__frame_new(const ac_future_vt *vt)
{
    void *frame = ac_frame_alloc(vt);
    if (!frame) {
        fprintf(stderr, "asyncc: out of memory for the frame of '%s' (%zu bytes)\n",
                vt->name ? vt->name : "?", vt->size);
        abort();
    }
    return frame;
}
