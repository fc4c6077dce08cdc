/* worker.h: async functions defined in worker.ac, awaited from main.ac. */
#ifndef WORKER_H
#define WORKER_H
#include <asyncc.h>

struct tally {
    int calls;  /* how many times work() ran */
    long total; /* sum of its results */
};

async(long) work(int n, struct tally *t);
async(void) note(const char *what);
#endif
