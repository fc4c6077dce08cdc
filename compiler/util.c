/*
 * util.c: allocation that cannot fail, growable buffers, vectors, bit sets and
 * a node-identity hash map. Allocation failure ends the translator with a
 * message: a translator that cannot allocate has nothing sensible to emit.
 */
#include "compiler.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void out_of_memory(void)
{
    fputs("asyncc: error: out of memory\n", stderr);
    exit(1);
}

void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        out_of_memory();
    return p;
}

void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p)
        out_of_memory();
    return p;
}

void *xrealloc(void *p, size_t n)
{
    p = realloc(p, n ? n : 1);
    if (!p)
        out_of_memory();
    return p;
}

char *xstrdup(const char *s) { return xstrndup(s, strlen(s)); }

bool c_ident_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '$';
}

char *xstrndup(const char *s, size_t n)
{
    char *p = xmalloc(n + 1);
    memcpy(p, s, n);
    p[n] = 0;
    return p;
}

char *xasprintf(const char *fmt, ...)
{
    Buf b = {0};
    va_list ap;
    va_start(ap, fmt);
    char tmp[256];
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    if (n < (int)sizeof tmp) {
        buf_putn(&b, tmp, (size_t)n);
    } else {
        char *big = xmalloc((size_t)n + 1);
        vsnprintf(big, (size_t)n + 1, fmt, ap2);
        buf_putn(&b, big, (size_t)n);
        free(big);
    }
    va_end(ap2);
    va_end(ap);
    return buf_take(&b);
}

void buf_putn(Buf *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->len + n + 1)
            cap *= 2;
        b->data = xrealloc(b->data, cap);
        b->cap = cap;
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = 0;
}

void buf_puts(Buf *b, const char *s) { buf_putn(b, s, strlen(s)); }

void buf_putc(Buf *b, char c) { buf_putn(b, &c, 1); }

void buf_printf(Buf *b, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < (int)sizeof tmp) {
        buf_putn(b, tmp, (size_t)n);
        return;
    }
    char *big = xmalloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    buf_putn(b, big, (size_t)n);
    free(big);
}

void buf_free(Buf *b)
{
    free(b->data);
    *b = (Buf){0};
}

void buf_truncate(Buf *b, size_t len)
{
    b->len = len;
    if (b->data)
        b->data[len] = 0;
}

char *buf_take(Buf *b)
{
    char *s = b->data ? b->data : xstrdup("");
    *b = (Buf){0};
    return s;
}

void vec_push(Vec *v, void *item)
{
    if (v->len == v->cap) {
        v->cap = v->cap ? v->cap * 2 : 8;
        v->items = xrealloc(v->items, (size_t)v->cap * sizeof *v->items);
    }
    v->items[v->len++] = item;
}

void set_add(StateSet *s, int i)
{
    int w = i / 64;
    if (w >= s->words) {
        int words = w + 1;
        s->bits = xrealloc(s->bits, (size_t)words * sizeof *s->bits);
        memset(s->bits + s->words, 0, (size_t)(words - s->words) * sizeof *s->bits);
        s->words = words;
    }
    s->bits[w] |= (uint64_t)1 << (i % 64);
}

bool set_has(const StateSet *s, int i)
{
    int w = i / 64;
    return w < s->words && (s->bits[w] >> (i % 64) & 1);
}

bool set_disjoint(const StateSet *a, const StateSet *b)
{
    int n = a->words < b->words ? a->words : b->words;
    for (int i = 0; i < n; i++)
        if (a->bits[i] & b->bits[i])
            return false;
    return true;
}

bool set_empty(const StateSet *s)
{
    for (int i = 0; i < s->words; i++)
        if (s->bits[i])
            return false;
    return true;
}

void set_union(StateSet *into, const StateSet *from)
{
    for (int i = 0; i < from->words; i++)
        if (from->bits[i])
            for (int j = 0; j < 64; j++)
                if (from->bits[i] >> j & 1)
                    set_add(into, i * 64 + j);
}

static size_t hash_ptr(const void *p)
{
    uintptr_t x = (uintptr_t)p;
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    return (size_t)x;
}

static void nodemap_grow(NodeMap *m)
{
    NodeMap n = {0};
    n.cap = m->cap ? m->cap * 2 : 64;
    n.keys = xcalloc(n.cap, sizeof *n.keys);
    n.vals = xcalloc(n.cap, sizeof *n.vals);
    for (size_t i = 0; i < m->cap; i++) {
        if (!m->keys[i])
            continue;
        size_t j = hash_ptr(m->keys[i]) & (n.cap - 1);
        while (n.keys[j])
            j = (j + 1) & (n.cap - 1);
        n.keys[j] = m->keys[i];
        n.vals[j] = m->vals[i];
        n.len++;
    }
    free(m->keys);
    free(m->vals);
    *m = n;
}

void nodemap_put(NodeMap *m, TSNode node, void *val)
{
    if ((m->len + 1) * 2 > m->cap)
        nodemap_grow(m);
    size_t j = hash_ptr(node.id) & (m->cap - 1);
    while (m->keys[j] && m->keys[j] != node.id)
        j = (j + 1) & (m->cap - 1);
    if (!m->keys[j])
        m->len++;
    m->keys[j] = node.id;
    m->vals[j] = val;
}

void *nodemap_get(const NodeMap *m, TSNode node)
{
    if (!m->cap)
        return NULL;
    size_t j = hash_ptr(node.id) & (m->cap - 1);
    while (m->keys[j]) {
        if (m->keys[j] == node.id)
            return m->vals[j];
        j = (j + 1) & (m->cap - 1);
    }
    return NULL;
}

void nodemap_free(NodeMap *m)
{
    free(m->keys);
    free(m->vals);
    *m = (NodeMap){0};
}

const TSLanguage *tree_sitter_c(void);

bool sym_in(TSSymbol s, const char *const *names, uint8_t cache[SYM_CACHE])
{
    if (s < SYM_CACHE && cache[s])
        return cache[s] == 2;
    /* ERROR is 65535: above any cache, so compared each time */
    const char *t = ts_language_symbol_name(tree_sitter_c(), s);
    bool yes = false;
    for (int i = 0; names[i] && !yes; i++)
        yes = strcmp(t, names[i]) == 0;
    if (s < SYM_CACHE)
        cache[s] = yes ? 2 : 1;
    return yes;
}

TSFieldId field_id(const char *name)
{
    return ts_language_field_id_for_name(tree_sitter_c(), name, (uint32_t)strlen(name));
}

bool cursor_advance(TSTreeCursor *c, bool descend)
{
    if (descend && ts_tree_cursor_goto_first_child(c))
        return true;
    while (!ts_tree_cursor_goto_next_sibling(c))
        if (!ts_tree_cursor_goto_parent(c))
            return false;
    return true;
}
