/*
 * main.c: the asyncc command line.
 *
 *   asyncc IN.ac -o OUT.c [-I DIR] [-D NAME[=V]] [-U NAME] [-std=STD]
 *   asyncc --emit=states IN.ac [flags]
 *   asyncc cc [C compiler options] FILES... -o PROG
 *
 * Runs the passes in order (sema, parse, liveness, lower, layout, emit) and
 * writes the output only when all succeed: the file is written to a
 * temporary name and renamed, so a failed translation leaves no output.
 * `asyncc cc` translates each .ac file into a temporary directory, then runs
 * $CC (default cc) with the generated files in their places, the runtime's
 * include directory and library.
 */
#include "compiler.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <pthread.h>
#include <time.h>
#include <unistd.h>

#ifndef ASYNCC_VERSION
#define ASYNCC_VERSION "0.1.0"
#endif

static const char usage[] =
    "usage: asyncc IN.ac -o OUT.c [-I DIR] [-D NAME[=VALUE]] [-U NAME] [-std=STD] [-Werror]\n"
    "       asyncc --emit=states IN.ac [-I DIR] [-D ...]\n"
    "       asyncc cc [C compiler options] FILES... -o PROG\n"
    "Translates the async dialect of C (async(T), await(e)) into C state machines\n"
    "(-o - writes the translation to standard output).\n";

/* Directory holding this executable, e.g. build/bin or PREFIX/bin. */
static char *exe_dir(void)
{
    char path[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", path, sizeof path - 1);
    if (n <= 0)
        return xstrdup(".");
    path[n] = 0;
    char *slash = strrchr(path, '/');
    if (slash)
        *slash = 0;
    return xstrdup(path);
}

static bool exists(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0;
}

/* Where asyncc.h lives: $ASYNCC_INCLUDE, else next to the executable. */
static char *include_dir(void)
{
    const char *env = getenv("ASYNCC_INCLUDE");
    if (env && *env)
        return xstrdup(env);
    char *d = exe_dir();
    const char *tries[] = {"%s/../include", "%s/../../runtime/include"};
    for (size_t i = 0; i < sizeof tries / sizeof *tries; i++) {
        char *dir = xasprintf(tries[i], d);
        char *h = xasprintf("%s/asyncc.h", dir);
        bool ok = exists(h);
        free(h);
        if (ok) {
            free(d);
            return dir;
        }
        free(dir);
    }
    free(d);
    return xstrdup("/usr/local/include");
}

static char *library_path(void)
{
    const char *env = getenv("ASYNCC_LIB");
    if (env && *env)
        return xstrdup(env);
    char *d = exe_dir();
    char *p = xasprintf("%s/../lib/libasyncc.a", d);
    free(d);
    return p;
}

static char *read_file(const char *path, uint32_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        diag_fatal("cannot open %s: %s", path, strerror(errno));
        return NULL;
    }
    Buf b = {0};
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
        if (b.len + n > (size_t)UINT32_MAX / 2) {
            fclose(f);
            diag_fatal("%s: file too large", path);
            buf_free(&b);
            return NULL;
        }
        buf_putn(&b, chunk, n);
    }
    bool err = ferror(f);
    fclose(f);
    if (err) {
        diag_fatal("cannot read %s", path);
        buf_free(&b);
        return NULL;
    }
    *len = (uint32_t)b.len;
    return b.data ? b.data : xstrdup("");
}

/* With ASYNCC_TIME set, each pass's wall time goes to stderr. */
static void phase(const char *name)
{
    static struct timespec last;
    static int on = -1;
    if (on < 0)
        on = getenv("ASYNCC_TIME") != NULL;
    if (!on)
        return;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    if (name)
        fprintf(stderr, "asyncc: %-8s %7.2f ms\n", name,
                (double)(now.tv_sec - last.tv_sec) * 1e3 + (double)(now.tv_nsec - last.tv_nsec) / 1e6);
    last = now;
}

typedef struct SemaJob {
    Unit *u;                /* the unit (sema reads only src) */
    const char *const *args;/* user's -I/-D flags */
    int nargs;              /* how many */
    char *inc;              /* the runtime include directory */
    Sema *sema;             /* result, NULL on error */
    Buf diags;              /* diagnostics it printed */
} SemaJob;

/* Stack for the threads that run the passes. They recurse as deep as the
 * syntax tree, and so does libclang: a sum of 20,000 terms, 20,000 levels,
 * took between 7.5 and 8 MiB on the main thread, all of its usual 8 MiB,
 * and 50,000 terms crashed. The memory is reserved, not used: only the
 * pages a deep input touches are. */
#define PASS_STACK ((size_t)1 << 30)

/* Runs fn(arg) on a new thread with PASS_STACK of stack and waits for it;
 * returns false (fn not run) if the thread cannot be started. */
static bool run_thread(void *(*fn)(void *), void *arg, pthread_t *th)
{
    pthread_attr_t attr;
    if (pthread_attr_init(&attr) != 0)
        return false;
    bool ok = pthread_attr_setstacksize(&attr, PASS_STACK) == 0 &&
              pthread_create(th, &attr, fn, arg) == 0;
    pthread_attr_destroy(&attr);
    return ok;
}

static void *sema_thread(void *arg)
{
    SemaJob *job = arg;
    diag_capture(&job->diags);
    job->sema = sema_run(job->u, job->args, job->nargs, job->inc);
    diag_capture(NULL);
    return NULL;
}

/* Makes the lines of b that hold only blanks empty: the code the
 * preprocessor skipped is spaces in the translation (gaps_keep_active).
 * A line of blanks means nothing anywhere in C (a string literal cannot
 * span lines but through a backslash-newline). */
static void empty_blank_lines(Buf *b)
{
    size_t w = 0, line = 0;
    for (size_t r = 0; r < b->len; r++) {
        char c = b->data[r];
        if (c == '\n') {
            bool blank = true;
            for (size_t k = line; k < w && blank; k++)
                blank = b->data[k] == ' ' || b->data[k] == '\t';
            if (blank)
                w = line;
            b->data[w++] = '\n';
            line = w;
        } else {
            b->data[w++] = c;
        }
    }
    b->len = w;
    if (b->data)
        b->data[w] = 0;
}

/* Runs every pass on `in`; on success returns the translation (or the
 * state report when `states`). */
static char *translate(const char *in, const char *const *cargs, int ncargs, bool states)
{
    Unit u = {0};
    u.src.path = in;

    char *text = read_file(in, &u.src.len);
    if (!text)
        return NULL;
    u.src.text = text;
    const char *nul = memchr(text, 0, u.src.len);
    if (nul) {
        diag_error(&u.src, (uint32_t)(nul - text), "file contains a NUL byte; not C source");
        return NULL;
    }
    /* libclang and tree-sitter read the same bytes independently: run them
     * on two threads. Diagnostics are held back and printed in pipeline
     * order, clang's first; syntax errors only matter if clang had none. */
    SemaJob job = {.u = &u, .args = cargs, .nargs = ncargs, .inc = include_dir()};
    phase(NULL);
    pthread_t th;
    bool threaded = run_thread(sema_thread, &job, &th) ||
                    pthread_create(&th, NULL, sema_thread, &job) == 0;
    if (!threaded)
        sema_thread(&job);
    Buf parse_diags = {0};
    diag_capture(&parse_diags);
    int parse_errors = diag_thread_error_count();
    bool parsed = parse_unit(&u);
    parse_errors = diag_thread_error_count() - parse_errors;
    diag_capture(NULL);
    if (threaded)
        pthread_join(th, NULL);
    free(job.inc);
    phase("sema+parse");
    if (job.sema && sema_inactive(job.sema)->len) {
        /* The preprocessor skipped some code, which tree-sitter read, and
         * whose #if branches need not even be balanced: translate what clang
         * saw. The skipped code and the conditional directives become blank
         * (lines kept, so #line and diagnostics still point at the file),
         * and the file is read again (the first reading's diagnostics, which
         * may be about what is gone, go too). */
        if (u.tree)
            ts_tree_delete(u.tree);
        if (u.parser)
            ts_parser_delete(u.parser);
        gaps_keep_active(text, u.src.len, sema_inactive(job.sema));
        u = (Unit){.src = u.src};
        buf_truncate(&parse_diags, 0);
        diag_discard_errors(parse_errors);
        diag_capture(&parse_diags);
        parsed = parse_unit(&u);
        diag_capture(NULL);
        phase("parse again");
    }
    /* An await outside an async function is the root cause of whatever
     * clang says about it (at file scope: "not a compile-time constant"). */
    if (parsed && liveness_report_strays(&u)) {
        buf_free(&parse_diags);
        buf_free(&job.diags);
        return NULL;
    }
    if (job.diags.len)
        fputs(job.diags.data, stderr);
    u.sema = job.sema;
    if (!u.sema)
        return NULL;
    if (parse_diags.len)
        fputs(parse_diags.data, stderr);
    buf_free(&parse_diags);
    buf_free(&job.diags);
    if (!parsed)
        return NULL;
    if (!liveness_run(&u))
        return NULL;
    phase("liveness");
    if (!check_run(&u))
        return NULL;
    phase("check");
    for (int i = 0; i < u.fns.len; i++) {
        AsyncFn *fn = u.fns.items[i];
        if (fn->is_def)
            lower_fn(&u, fn);
    }
    phase("lower");
    for (int i = 0; i < u.fns.len; i++) {
        AsyncFn *fn = u.fns.items[i];
        if (fn->is_def && !fn->frame)
            layout_fn(&u, fn);
    }
    phase("layout");
    if (diag_error_count())
        return NULL;
    Buf out = {0};
    if (states)
        emit_states(&u, &out);
    else
        emit_unit(&u, &out);
    phase("emit");
    if (!states && sema_inactive(u.sema)->len)
        empty_blank_lines(&out);
    return buf_take(&out);
}

static bool write_atomically(const char *path, const char *text)
{
    /* A device or FIFO (-o /dev/null, -o /dev/stdout) is written in place:
     * renaming over it would replace it with a regular file. `-o -` is
     * standard output, as for cc -E. */
    struct stat st;
    bool dash = strcmp(path, "-") == 0;
    if (dash || (stat(path, &st) == 0 && !S_ISREG(st.st_mode))) {
        FILE *f = dash ? fdopen(dup(STDOUT_FILENO), "wb") : fopen(path, "wb");
        size_t n = strlen(text);
        bool ok = f && fwrite(text, 1, n, f) == n;
        ok = f && fclose(f) == 0 && ok;
        if (!ok)
            diag_fatal("cannot write %s: %s", path, strerror(errno));
        return ok;
    }
    char *tmp = xasprintf("%s.tmp%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        diag_fatal("cannot write %s: %s", path, strerror(errno));
        free(tmp);
        return false;
    }
    size_t n = strlen(text);
    bool ok = fwrite(text, 1, n, f) == n;
    ok = (fclose(f) == 0) && ok;
    if (ok && rename(tmp, path) != 0)
        ok = false;
    if (!ok) {
        unlink(tmp);
        diag_fatal("cannot write %s: %s", path, strerror(errno));
    }
    free(tmp);
    return ok;
}

/* Flags that reach libclang: -I -D -U -std= -include -isystem -iquote
 * (joined or separate). Returns how many argv entries were consumed (0 if
 * not one), or -1 for one that takes an argument and is last. */
static int clang_flag(char **argv, int i, int argc, Vec *cargs)
{
    const char *a = argv[i];
    const char *two[] = {"-I", "-D", "-U", "-include", "-isystem", "-iquote"};
    for (size_t k = 0; k < sizeof two / sizeof *two; k++) {
        if (strcmp(a, two[k]) == 0) {
            if (i + 1 >= argc)
                return -1;
            vec_push(cargs, xasprintf("%s%s", a, argv[i + 1]));
            return 2;
        }
    }
    if (!strncmp(a, "-I", 2) || !strncmp(a, "-D", 2) || !strncmp(a, "-U", 2) ||
        !strncmp(a, "-std=", 5)) {
        vec_push(cargs, xstrdup(a));
        return 1;
    }
    return 0;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* translate()'s arguments and result, for its thread. */
typedef struct TranslateJob {
    const char *in;
    const char *const *cargs;
    int ncargs;
    bool states;
    char *text;
} TranslateJob;

static void *translate_thread(void *arg)
{
    TranslateJob *job = arg;
    job->text = translate(job->in, job->cargs, job->ncargs, job->states);
    return NULL;
}

/* translate() on a thread with PASS_STACK of stack (without one, on this
 * thread, as deep as its stack allows). */
static char *translate_deep(const char *in, const char *const *cargs, int ncargs, bool states)
{
    TranslateJob job = {in, cargs, ncargs, states, NULL};
    pthread_t th;
    if (run_thread(translate_thread, &job, &th))
        pthread_join(th, NULL);
    else
        translate_thread(&job);
    return job.text;
}

static int run_cc(int argc, char **argv)
{
    if (argc == 2) {
        diag_fatal("no input files\n%s", usage);
        return 2;
    }
    Vec cargs = {0}, ccargs = {0};
    const char *cc = getenv("CC");
    if (!cc || !*cc)
        cc = "cc";
    char tmpl[] = "/tmp/asyncc-cc-XXXXXX";
    char *dir = mkdtemp(tmpl);
    if (!dir) {
        diag_fatal("cannot create a temporary directory: %s", strerror(errno));
        return 1;
    }
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "-Werror"))
            diag_werror = true;
        int n = clang_flag(argv, i, argc, &cargs);
        (void)n;
        if (n == 2)
            i++;
    }
    vec_push(&ccargs, (void *)cc);
    int status = 0, nfile = 0;
    bool links = true; /* no -c, -S, -E or the like: the library is needed */
    Vec generated = {0}, subdirs = {0};
    for (int i = 2; i < argc && !status; i++) {
        if (ends_with(argv[i], ".ac") && (i == 2 || strcmp(argv[i - 1], "-o") != 0)) {
            char *text =
                translate_deep(argv[i], (const char *const *)cargs.items, cargs.len, false);
            if (!text) {
                status = 1;
                break;
            }
            /* DIR/N/NAME.c: NAME as the source's, so that `-c` without -o
             * names the object NAME.o as cc does; N keeps two NAME.ac of
             * different directories apart. */
            const char *base = strrchr(argv[i], '/');
            base = base ? base + 1 : argv[i];
            char *sub = xasprintf("%s/%d", dir, nfile++);
            char *out = xasprintf("%s/%.*s.c", sub, (int)(strlen(base) - 3), base);
            if (mkdir(sub, 0700) != 0) {
                diag_fatal("cannot create %s: %s", sub, strerror(errno));
                status = 1;
            } else {
                vec_push(&subdirs, sub);
                if (!write_atomically(out, text))
                    status = 1;
            }
            free(text);
            /* The generated file lives in a temporary directory: keep the
             * source's own directory first for its #include "..." */
            char *dirname = xstrdup(argv[i]);
            char *slash = strrchr(dirname, '/');
            vec_push(&ccargs, "-iquote");
            vec_push(&ccargs, slash ? (*slash = 0, dirname) : ".");
            vec_push(&ccargs, out);
            vec_push(&generated, out);
        } else {
            const char *a = argv[i];
            if (!strcmp(a, "-c") || !strcmp(a, "-S") || !strcmp(a, "-E") || !strcmp(a, "-M") ||
                !strcmp(a, "-MM") || !strcmp(a, "-fsyntax-only"))
                links = false;
            vec_push(&ccargs, (void *)a);
        }
    }
    if (!status) {
        char *inc = include_dir();
        vec_push(&ccargs, xasprintf("-I%s", inc));
        if (links) /* else cc warns that the library is unused */
            vec_push(&ccargs, library_path());
        vec_push(&ccargs, "-pthread");
        vec_push(&ccargs, NULL);
        pid_t pid = fork();
        if (pid == 0) {
            execvp(cc, (char *const *)ccargs.items);
            fprintf(stderr, "asyncc: error: cannot run %s: %s\n", cc, strerror(errno));
            _exit(127);
        }
        int ws = 0;
        if (pid < 0 || waitpid(pid, &ws, 0) < 0)
            status = 1;
        else
            status = WIFEXITED(ws) ? WEXITSTATUS(ws) : 1;
        free(inc);
    }
    for (int i = 0; i < generated.len; i++)
        unlink(generated.items[i]);
    for (int i = 0; i < subdirs.len; i++)
        rmdir(subdirs.items[i]);
    rmdir(dir);
    return status;
}

int main(int argc, char **argv)
{
    /* libclang parses on a thread of its own with 8 MiB of stack unless told
     * not to; on ours (PASS_STACK) a deep expression cannot exhaust it.
     * Before any thread starts: setenv is not thread-safe. */
    setenv("LIBCLANG_NOTHREADS", "1", 0);
    if (argc >= 2 && strcmp(argv[1], "cc") == 0)
        return run_cc(argc, argv);

    const char *in = NULL, *out = NULL;
    bool states = false;
    Vec cargs = {0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int n;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(usage, stdout);
            return 0;
        } else if (!strcmp(a, "--version")) {
            puts("asyncc " ASYNCC_VERSION);
            return 0;
        } else if (!strcmp(a, "-Werror")) {
            diag_werror = true;
        } else if (!strcmp(a, "--emit=states")) {
            states = true;
        } else if (!strcmp(a, "-o")) {
            if (i + 1 >= argc) {
                diag_fatal("-o needs a file name");
                return 2;
            }
            out = argv[++i];
        } else if ((n = clang_flag(argv, i, argc, &cargs)) != 0) {
            if (n < 0) {
                diag_fatal("%s needs an argument", a);
                return 2;
            }
            i += n - 1;
        } else if (a[0] == '-' && a[1]) {
            diag_fatal("unknown option '%s'\n%s", a, usage);
            return 2;
        } else if (in) {
            diag_fatal("more than one input file ('%s' and '%s')", in, a);
            return 2;
        } else {
            in = a;
        }
    }
    if (!in || (!out && !states)) {
        fputs(usage, stderr);
        return 2;
    }
    char *text = translate_deep(in, (const char *const *)cargs.items, cargs.len, states);
    if (!text)
        return 1;
    if (states) {
        fputs(text, stdout);
        return 0;
    }
    return write_atomically(out, text) ? 0 : 1;
}
