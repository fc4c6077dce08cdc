/*
 * error.c: the text of the runtime's error codes, from the same AC_ERRNO_MAP
 * table that defines them, so a new code cannot lack a message.
 */
#include "internal.h"

const char *ac_strerror(int err)
{
    switch (err) {
    case 0:
        return "success";
#define AC__ERR_TEXT(name, value, text)                                                            \
    case name:                                                                                     \
        return text;
        AC_ERRNO_MAP(AC__ERR_TEXT)
#undef AC__ERR_TEXT
    }
    return "unknown error";
}
