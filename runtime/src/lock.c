/*
 * lock.c: the slow paths of ac__lock (internal.h), a futex mutex for short
 * critical sections on hot paths.
 *
 * States: 0 free, 1 held, 2 held and some taker may be asleep. A taker
 * that finds it held spins for about a microsecond (the holders are short,
 * and sleeping and waking cost system calls on both sides), then marks it
 * 2 and sleeps until a release of a 2 wakes it. A woken taker marks it 2
 * again, since it cannot know whether others still sleep: at worst one
 * release makes a needless wake system call.
 */
#include "internal.h"

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#define SPINS 100 /* looks at the lock before sleeping */

static void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ volatile("yield");
#endif
}

void ac__lock_contended(ac__lock *l)
{
    for (int i = 0; i < SPINS; i++) {
        cpu_relax();
        int free_ = 0;
        if (atomic_load_explicit(&l->state, memory_order_relaxed) == 0 &&
            atomic_compare_exchange_weak_explicit(&l->state, &free_, 1, memory_order_acquire,
                                                  memory_order_relaxed))
            return;
    }
    while (atomic_exchange_explicit(&l->state, 2, memory_order_acquire) != 0)
        syscall(SYS_futex, &l->state, FUTEX_WAIT_PRIVATE, 2, NULL, NULL, 0);
}

void ac__lock_wake(ac__lock *l) { syscall(SYS_futex, &l->state, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0); }
