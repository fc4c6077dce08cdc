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

static int errors;

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
    fprintf(stderr, "%s:%d:%d: %s: ", src->path, line, col, kind);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);

    uint32_t bol = offset > src->len ? src->len : offset;
    while (bol > 0 && src->text[bol - 1] != '\n')
        bol--;
    uint32_t eol = bol;
    while (eol < src->len && src->text[eol] != '\n')
        eol++;
    /* Quote at most 200 bytes so a huge line cannot flood the terminal; show
     * control bytes as '?' so binary input cannot garble it. */
    uint32_t shown = eol - bol > 200 ? 200 : eol - bol;
    fputs("  ", stderr);
    for (uint32_t i = 0; i < shown; i++) {
        unsigned char c = (unsigned char)src->text[bol + i];
        fputc(c == '\t' || c >= 0x20 ? c : '?', stderr);
    }
    fputs("\n  ", stderr);
    for (uint32_t i = 0; i + 1 < (uint32_t)col && i < shown; i++)
        fputc(src->text[bol + i] == '\t' ? '\t' : ' ', stderr);
    fputs("^\n", stderr);
}

void diag_error(const Source *src, uint32_t offset, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    report(src, offset, "error", fmt, ap);
    va_end(ap);
    errors++;
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

void diag_fatal(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("asyncc: error: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    errors++;
}

int diag_error_count(void) { return errors; }
