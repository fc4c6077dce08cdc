/*
 * main.c: the program entry point of a lowered program, alone in its object
 * file so that the linker takes it from libasyncc.a only when the program
 * defines no main() of its own.
 *
 * It runs `async(int) async_main(int argc, char **argv)` (or an async(void)
 * one) to completion on a default multi-thread runtime (the calling thread
 * drives async_main, worker threads run what it spawns) and exits with its
 * value; the work is in ac__run_main (executor.c), where it can be
 * unit-tested.
 */
#include "internal.h"

/* Exported by the translation of the program's async_main. */
extern const ac_future_vt async_main__vt;
void async_main__init(void *frame, int argc, char **argv);

int main(int argc, char **argv) { return ac__run_main(&async_main__vt, async_main__init, argc, argv); }
