/*
 * diag.c: the one place diagnostics are printed.
 *
 * Format (as clang and chibicc's error_tok): `path:line:col: error: message`,
 * then the source line and a caret under the column. Columns count bytes from
 * 1; tabs in the quoted line are kept so the caret lines up in a terminal.
 */
#include "compiler.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static _Atomic int errors;
static _Thread_local int thread_errors; /* of those, this thread's */
/* While set, this thread's diagnostics go here instead of stderr, so passes
 * running on two threads still print in a fixed order. */
static _Thread_local Buf *capture;

void diag_capture(Buf *into) { capture = into; }

static void out(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void out(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (capture) {
        va_list ap2;
        va_copy(ap2, ap);
        int n = vsnprintf(NULL, 0, fmt, ap2);
        va_end(ap2);
        char *tmp = xmalloc((size_t)n + 1);
        vsnprintf(tmp, (size_t)n + 1, fmt, ap);
        buf_putn(capture, tmp, (size_t)n);
        free(tmp);
    } else {
        vfprintf(stderr, fmt, ap);
    }
    va_end(ap);
}

void diag_position(const Source *src, uint32_t offset, int *line, int *col)
{
    if (offset > src->len)
        offset = src->len;
    int l = 1;
    uint32_t bol = 0;
    for (uint32_t i = 0; i < offset; i++)
        if (src->text[i] == '\n') {
            l++;
            bol = i + 1;
        }
    *line = l;
    *col = (int)(offset - bol) + 1;
}

static void report(const Source *src, uint32_t offset, const char *kind, const char *fmt,
                   va_list ap)
{
    int line, col;
    diag_position(src, offset, &line, &col);
    char msg[1024];
    vsnprintf(msg, sizeof msg, fmt, ap);
    out("%s:%d:%d: %s: %s\n", src->path, line, col, kind, msg);

    uint32_t bol = offset > src->len ? src->len : offset;
    while (bol > 0 && src->text[bol - 1] != '\n')
        bol--;
    uint32_t eol = bol;
    while (eol < src->len && src->text[eol] != '\n')
        eol++;
    /* Quote at most 200 bytes around the column so a huge line cannot flood
     * the terminal; show control bytes as '?' so binary input cannot garble
     * it. */
    uint32_t at = bol + (uint32_t)col - 1;
    if (at - bol > 150) {
        bol = at - 100;
        col = 101;
    }
    uint32_t shown = eol - bol > 200 ? 200 : eol - bol;
    char quoted[256], caret[256];
    uint32_t k = 0;
    for (uint32_t i = 0; i < shown; i++) {
        unsigned char c = (unsigned char)src->text[bol + i];
        quoted[i] = (char)(c == '\t' || c >= 0x20 ? c : '?');
        if (i + 1 < (uint32_t)col)
            caret[k++] = src->text[bol + i] == '\t' ? '\t' : ' ';
    }
    quoted[shown] = 0;
    caret[k] = 0;
    out("  %s\n  %s^\n", quoted, caret);
}

void diag_error(const Source *src, uint32_t offset, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    report(src, offset, "error", fmt, ap);
    va_end(ap);
    errors++;
    thread_errors++;
}

void diag_warning(const Source *src, uint32_t offset, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    report(src, offset, "warning", fmt, ap);
    va_end(ap);
}

void diag_note(const Source *src, uint32_t offset, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    report(src, offset, "note", fmt, ap);
    va_end(ap);
}

bool diag_werror;

/* The source line holding `offset`, as [*b, *e). */
static void line_span(const Source *src, uint32_t offset, uint32_t *b, uint32_t *e)
{
    uint32_t bol = offset > src->len ? src->len : offset;
    while (bol > 0 && src->text[bol - 1] != '\n')
        bol--;
    uint32_t eol = bol;
    while (eol < src->len && src->text[eol] != '\n')
        eol++;
    *b = bol;
    *e = eol;
}

/* A comment `asyncc: allow(KIND)` or a line `#pragma asyncc allow(KIND)`. */
static bool line_allows(const Source *src, uint32_t b, uint32_t e, const char *kind)
{
    const char *forms[] = {"asyncc: allow(%s)", "asyncc allow(%s)"};
    for (int f = 0; f < 2; f++) {
        for (int k = 0; k < 2; k++) {
            char want[64];
            snprintf(want, sizeof want, forms[f], k ? "all" : kind);
            size_t wn = strlen(want);
            for (uint32_t i = b; i < e; i++)
                if (e - i >= wn && memcmp(src->text + i, want, wn) == 0)
                    return true;
        }
    }
    return false;
}

bool diag_allowed(const Source *src, uint32_t offset, const char *kind)
{
    uint32_t b, e;
    line_span(src, offset, &b, &e);
    if (line_allows(src, b, e, kind))
        return true;
    if (b == 0)
        return false;
    uint32_t pb, pe;
    line_span(src, b - 1, &pb, &pe);
    return line_allows(src, pb, pe, kind);
}

bool diag_check(const Source *src, uint32_t offset, bool error, const char *kind,
                const char *hint, const char *fmt, ...)
{
    if (diag_allowed(src, offset, kind))
        return false;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    bool as_error = error || diag_werror;
    if (as_error)
        diag_error(src, offset, "%s [%s%s]", msg, kind, error ? "" : ", -Werror");
    else
        diag_warning(src, offset, "%s [%s]", msg, kind);
    if (hint)
        out("  hint: %s\n", hint);
    return as_error;
}

void diag_fatal(const char *fmt, ...)
{
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    out("asyncc: error: %s\n", msg);
    errors++;
    thread_errors++;
}

int diag_error_count(void) { return errors; }

int diag_thread_error_count(void) { return thread_errors; }

void diag_discard_errors(int n)
{
    errors -= n;
    thread_errors -= n;
}
