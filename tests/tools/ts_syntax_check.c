/*
 * ts_syntax_check: reports the syntax errors tree-sitter-c finds in files.
 *
 * Usage: ts_syntax_check FILE...
 *
 * Each file is parsed with tree-sitter-c (the grammar the translator's parse pass
 * uses), and every ERROR and MISSING node is printed as
 *
 *     file:line:col: error: syntax error near `text`
 *     file:line:col: error: missing `;`
 *
 * with 1-based line and byte column. `async(T)` parses as a macro type
 * specifier and `await(e)` as a call, so a well-formed `.ac` file has no
 * ERROR nodes. The tree is walked with a cursor, not recursion, so deeply
 * nested input cannot overflow the stack; only subtrees that contain an error
 * are entered.
 *
 * Exit status: 0 if every file parsed cleanly, 1 if any error was reported or a
 * file could not be read.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tree_sitter/api.h>

const TSLanguage *tree_sitter_c(void);

/* The longest node text quoted in a message; longer text is cut with "...". */
enum { SNIPPET_MAX = 40 };

/* Reads the whole file into a malloc'd buffer the caller frees; sets *len.
 * Returns NULL (errno set) if the file cannot be opened or read. */
static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 65536, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (n < cap) {
            if (ferror(f)) {
                free(buf);
                buf = NULL;
            }
            break;
        }
        char *bigger = realloc(buf, cap * 2);
        if (!bigger) {
            free(buf);
            buf = NULL;
            errno = ENOMEM;
            break;
        }
        buf = bigger;
        cap *= 2;
    }
    fclose(f);
    *len = n;
    return buf;
}

/* Prints the first line of src[start, end) as a quoted, printable snippet. */
static void print_snippet(const char *src, uint32_t start, uint32_t end)
{
    uint32_t n = 0;
    fputc('`', stdout);
    for (uint32_t i = start; i < end && n < SNIPPET_MAX; i++, n++) {
        unsigned char c = (unsigned char)src[i];
        if (c == '\n' || c == '\r')
            break;
        if (c == '\t')
            c = ' ';
        if (c < 0x20 || c >= 0x7f)
            printf("\\x%02x", c);
        else
            fputc(c, stdout);
    }
    fputs(n >= SNIPPET_MAX ? "...`" : "`", stdout);
}

/* Prints the diagnostic for one ERROR or MISSING node. */
static void report(const char *path, const char *src, TSNode node)
{
    TSPoint at = ts_node_start_point(node);
    printf("%s:%u:%u: error: ", path, at.row + 1, at.column + 1);
    if (ts_node_is_missing(node)) {
        printf("missing `%s`\n", ts_node_type(node));
        return;
    }
    uint32_t start = ts_node_start_byte(node), end = ts_node_end_byte(node);
    if (start == end) {
        printf("syntax error\n");
        return;
    }
    printf("syntax error near ");
    print_snippet(src, start, end);
    fputc('\n', stdout);
}

/* Parses one file and reports its errors. Returns the number reported, or -1
 * if the file could not be read or parsed. */
static long check_file(TSParser *parser, const char *path)
{
    size_t len;
    char *src = read_file(path, &len);
    if (!src) {
        printf("%s: error: cannot read: %s\n", path, strerror(errno));
        return -1;
    }
    if (len > UINT32_MAX) {
        printf("%s: error: file too large\n", path);
        free(src);
        return -1;
    }
    TSTree *tree = ts_parser_parse_string(parser, NULL, src, (uint32_t)len);
    if (!tree) {
        printf("%s: error: tree-sitter could not parse the file\n", path);
        free(src);
        return -1;
    }

    long errors = 0;
    TSNode root = ts_tree_root_node(tree);
    TSTreeCursor cur = ts_tree_cursor_new(root);
    bool done = !ts_node_has_error(root);
    while (!done) {
        TSNode node = ts_tree_cursor_current_node(&cur);
        if (ts_node_is_missing(node) || strcmp(ts_node_type(node), "ERROR") == 0) {
            report(path, src, node);
            errors++;
        }
        /* Enter only subtrees that hold an error; then move to the next
         * sibling, climbing as far as needed. */
        if (ts_node_has_error(node) && ts_tree_cursor_goto_first_child(&cur))
            continue;
        while (!ts_tree_cursor_goto_next_sibling(&cur)) {
            if (!ts_tree_cursor_goto_parent(&cur)) {
                done = true;
                break;
            }
        }
    }
    ts_tree_cursor_delete(&cur);
    ts_tree_delete(tree);
    free(src);
    return errors;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s FILE...\n", argv[0]);
        return 2;
    }
    TSParser *parser = ts_parser_new();
    if (!ts_parser_set_language(parser, tree_sitter_c())) {
        fprintf(stderr, "%s: error: tree-sitter-c ABI %u not supported by this libtree-sitter\n",
                argv[0], ts_language_version(tree_sitter_c()));
        ts_parser_delete(parser);
        return 2;
    }
    int status = 0;
    for (int i = 1; i < argc; i++) {
        if (check_file(parser, argv[i]) != 0)
            status = 1;
        ts_parser_reset(parser);
    }
    ts_parser_delete(parser);
    return status;
}
