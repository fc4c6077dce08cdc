/* A pointer that releases what it points to, by type, as glib's
 * g_autoptr(T) does: the cleanup attribute comes from a macro defined in a
 * header, which only clang sees (cleanup_cancel.ac). */
#include <stdio.h>
#include <stdlib.h>

#define AUTOPTR(T) __attribute__((cleanup(T##_release))) T *

typedef struct note {
    char text[16];
} note;

static inline void note_release(note **n)
{
    if (*n) {
        printf("release note %s\n", (*n)->text);
        free(*n);
    }
}
