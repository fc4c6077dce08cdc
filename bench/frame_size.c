/*
 * frame_size.c: prints the frame size of one exported async function, read
 * from its vtable. Linked with the translated frame_[abc].ac (whose async_main
 * goes unused: this file's main takes precedence over libasyncc's).
 *
 * Build: cc -O2 -Iruntime/include -DASYNCC_LOWERED -DFRAME_VT=fa__vt
 *        -DFIGURE=frame_size_a bench/frame_size.c frame_a.o libasyncc.a -pthread
 * Prints `bench FIGURE SIZE bytes`.
 */
#include <asyncc.h>
#include <stdio.h>

#if !defined(FRAME_VT) || !defined(FIGURE)
#error "define FRAME_VT (the vtable, e.g. fa__vt) and FIGURE (e.g. frame_size_a)"
#endif

#define STR(x) #x
#define XSTR(x) STR(x)

extern const ac_future_vt FRAME_VT;

int main(void)
{
    printf("bench %s %zu bytes\n", XSTR(FIGURE), FRAME_VT.size);
    return 0;
}
