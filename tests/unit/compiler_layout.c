/*
 * compiler_layout.c: frame slots, storage sharing and sizes (compiler/layout.c).
 *
 * Each test runs the passes up to layout on an in-memory `.ac` text (or a
 * file of bench/ or samples/, so the tests run from the repository root) as
 * compiler/main.c's translate() does, then checks which slots share storage
 * and the computed size. Where layout promises "offsets and total size as the
 * C compiler will lay them out", the test emits the file, appends
 * _Static_asserts of every computed offset, size and alignment, and has the C
 * compiler ($CC, default cc) check them. Fork mode keeps diag_error_count(),
 * which is per process, at zero for each test.
 */
#include "compiler.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* A unit after layout and what the passes printed. */
typedef struct Laid {
    Unit u;    /* the unit */
    bool ok;   /* every pass succeeded */
    Buf diags; /* their diagnostics */
} Laid;

static Laid *lay_out_named(const char *path, const char *text)
{
    Laid *l = xcalloc(1, sizeof *l);
    l->u.src.path = path;
    l->u.src.text = text;
    l->u.src.len = (uint32_t)strlen(text);
    diag_capture(&l->diags);
    l->u.sema = sema_run(&l->u, NULL, 0, "runtime/include");
    l->ok = l->u.sema && parse_unit(&l->u) && liveness_run(&l->u);
    if (l->ok) {
        for (int i = 0; i < l->u.fns.len; i++) {
            AsyncFn *fn = l->u.fns.items[i];
            if (fn->is_def)
                lower_fn(&l->u, fn);
        }
        for (int i = 0; i < l->u.fns.len; i++) {
            AsyncFn *fn = l->u.fns.items[i];
            if (fn->is_def && !fn->frame)
                layout_fn(&l->u, fn);
        }
        l->ok = diag_error_count() == 0;
    }
    diag_capture(NULL);
    ck_assert_msg(l->ok, "translation failed:\n%.2000s", l->diags.data ? l->diags.data : "");
    return l;
}

static Laid *lay_out(const char *text) { return lay_out_named("t.ac", text); }

static char *read_text(const char *path)
{
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s (tests run from the repository root)", path);
    Buf b = {0};
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        buf_putn(&b, chunk, n);
    fclose(f);
    return buf_take(&b);
}

static Laid *lay_out_file(const char *path) { return lay_out_named(path, read_text(path)); }

static Frame *frame_of(Laid *l, const char *fn_name)
{
    AsyncFn *fn = parse_find_fn(&l->u, fn_name);
    ck_assert_msg(fn && fn->frame, "no laid-out async function %s", fn_name);
    return fn->frame;
}

static Slot *slot(Frame *f, const char *name)
{
    for (int i = 0; i < f->slots.len; i++) {
        Slot *s = f->slots.items[i];
        if (strcmp(s->name, name) == 0)
            return s;
    }
    ck_abort_msg("no slot %s", name);
    return NULL;
}

static int group_of(Frame *f, const char *name)
{
    Slot *s = slot(f, name);
    for (int g = 0; g < f->groups.len; g++) {
        SlotGroup *grp = f->groups.items[g];
        for (int k = 0; k < grp->slots.len; k++)
            if (grp->slots.items[k] == s)
                return g;
    }
    ck_abort_msg("slot %s is in no group", name);
    return -1;
}

static bool has_slot(Frame *f, const char *name)
{
    for (int i = 0; i < f->slots.len; i++)
        if (strcmp(((Slot *)f->slots.items[i])->name, name) == 0)
            return true;
    return false;
}

/* Runs the C compiler on `text` with runtime/include; returns its exit status
 * and leaves its messages in *errors. */
static int compile(const char *text, Buf *errors)
{
    const char *cc = getenv("CC");
    char errpath[] = "/tmp/asyncc-layout-XXXXXX";
    int fd = mkstemp(errpath);
    ck_assert_int_ge(fd, 0);
    close(fd);
    char *cmd = xasprintf("%s -std=gnu11 -fsyntax-only -x c -Iruntime/include - 2>%s",
                          cc && *cc ? cc : "cc", errpath);
    FILE *p = popen(cmd, "w");
    ck_assert_ptr_nonnull(p);
    fputs(text, p);
    int status = pclose(p);
    char *msgs = read_text(errpath);
    unlink(errpath);
    buf_puts(errors, msgs);
    free(msgs);
    free(cmd);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* The translated file plus a _Static_assert of each computed offset, the
 * size and the alignment of every frame; the C compiler checks them. */
static void assert_layout_agrees_with_cc(Laid *l)
{
    Buf out = {0};
    emit_unit(&l->u, &out);
    buf_puts(&out, "\n#include <stddef.h>\n");
    for (int i = 0; i < l->u.fns.len; i++) {
        AsyncFn *fn = l->u.fns.items[i];
        if (!fn->is_def)
            continue;
        Frame *f = fn->frame;
        buf_printf(&out, "_Static_assert(sizeof(struct %s__frame) == %lld, \"size of %s\");\n",
                   fn->name, (long long)f->size, fn->name);
        buf_printf(&out, "_Static_assert(_Alignof(struct %s__frame) == %lld, \"align of %s\");\n",
                   fn->name, (long long)f->align, fn->name);
        buf_printf(&out, "_Static_assert(offsetof(struct %s__frame, ac_state) == %lld, \"%s.ac_state\");\n",
                   fn->name, (long long)f->state_offset, fn->name);
        for (int k = 0; k < f->slots.len; k++) {
            Slot *s = f->slots.items[k];
            buf_printf(&out,
                       "_Static_assert(offsetof(struct %s__frame, %s) == %lld, \"%s.%s offset\");\n",
                       fn->name, s->name, (long long)s->offset, fn->name, s->name);
            buf_printf(&out,
                       "_Static_assert(sizeof(((struct %s__frame *)0)->%s) == %lld, \"%s.%s size\");\n",
                       fn->name, s->name, (long long)s->size, fn->name, s->name);
        }
    }
    Buf errors = {0};
    int status = compile(out.data, &errors);
    ck_assert_msg(status == 0, "the C compiler disagrees with layout (status %d):\n%.2000s", status,
                  errors.data ? errors.data : "");
}

/* ---- sharing -------------------------------------------------------------------- */

START_TEST(callees_awaited_at_different_points_share_storage)
{
    Laid *l = lay_out("#include <asyncc.h>\n"
                      "#include <stdint.h>\n"
                      "static async(uint64_t) big(void)\n"
                      "{\n"
                      "    uint8_t buf[256] = {1};\n"
                      "    await(ac_yield());\n"
                      "    return buf[0];\n"
                      "}\n"
                      "static async(uint64_t) small(void) { await(ac_yield()); return 2; }\n"
                      "async(uint64_t) f(void)\n"
                      "{\n"
                      "    uint64_t x = await(big());\n"
                      "    uint64_t y = await(small());\n"
                      "    return x + y;\n"
                      "}\n");
    Frame *f = frame_of(l, "f");
    ck_assert_int_eq(group_of(f, "ac_aw3"), group_of(f, "ac_aw4"));
    ck_assert_int_eq(slot(f, "ac_aw3")->offset, slot(f, "ac_aw4")->offset);
    SlotGroup *grp = f->groups.items[group_of(f, "ac_aw3")];
    ck_assert_int_eq(grp->size, slot(f, "ac_aw3")->size);
    ck_assert_int_eq(slot(f, "ac_aw3")->size, frame_of(l, "big")->size);
    assert_layout_agrees_with_cc(l);
}
END_TEST

START_TEST(variable_needed_across_both_awaits_shares_with_neither)
{
    Laid *l = lay_out("#include <asyncc.h>\n"
                      "static async(long) a(void) { await(ac_yield()); return 1; }\n"
                      "static async(long) b(void) { await(ac_yield()); return 2; }\n"
                      "async(long) f(long keep)\n"
                      "{\n"
                      "    long x = await(a());\n"
                      "    long y = await(b());\n"
                      "    return keep + x + y;\n"
                      "}\n");
    Frame *f = frame_of(l, "f");
    int keep = group_of(f, "keep"), aw3 = group_of(f, "ac_aw3"), aw4 = group_of(f, "ac_aw4");
    ck_assert_int_ne(keep, aw3);
    ck_assert_int_ne(keep, aw4);
    ck_assert_int_eq(aw3, aw4);
    /* x is needed across the second await only: it may share with the first. */
    ck_assert_int_ne(group_of(f, "x"), aw4);
    ck_assert_str_eq(slot(f, "x")->what, "local");
    assert_layout_agrees_with_cc(l);
}
END_TEST

START_TEST(parameter_dead_before_an_await_shares_with_its_future)
{
    Laid *l = lay_out("#include <asyncc.h>\n"
                      "int use(int);\n"
                      "async(int) f(int early)\n"
                      "{\n"
                      "    int r = use(early);\n"
                      "    await(ac_yield());\n"
                      "    return r;\n"
                      "}\n");
    Frame *f = frame_of(l, "f");
    ck_assert_int_eq(slot(f, "early")->kind, SLOT_PARAM);
    ck_assert_int_eq(group_of(f, "early"), group_of(f, "ac_aw3"));
    ck_assert_int_ne(group_of(f, "r"), group_of(f, "ac_aw3"));
    assert_layout_agrees_with_cc(l);
}
END_TEST

START_TEST(address_taken_variable_keeps_its_storage_for_its_whole_scope)
{
    Laid *l = lay_out("#include <asyncc.h>\n"
                      "void keep(int *);\n"
                      "async(int) f(void)\n"
                      "{\n"
                      "    int x = 1;\n"
                      "    keep(&x);\n"
                      "    await(ac_yield());\n"
                      "    return 0;\n"
                      "}\n");
    Frame *f = frame_of(l, "f");
    /* Someone may write through &x while the future is suspended. */
    ck_assert_int_ne(group_of(f, "x"), group_of(f, "ac_aw3"));
    assert_layout_agrees_with_cc(l);
}
END_TEST

START_TEST(variable_used_in_a_loop_keeps_its_storage_over_the_loop)
{
    Laid *l = lay_out("#include <asyncc.h>\n"
                      "int use(int);\n"
                      "async(void) f(int n)\n"
                      "{\n"
                      "    int acc = 0;\n"
                      "    while (n-- > 0) {\n"
                      "        acc = use(acc);\n"
                      "        await(ac_yield());\n"
                      "    }\n"
                      "}\n");
    Frame *f = frame_of(l, "f");
    ck_assert_int_ne(group_of(f, "acc"), group_of(f, "ac_aw3"));
    ck_assert_int_ne(group_of(f, "n"), group_of(f, "ac_aw3"));
    assert_layout_agrees_with_cc(l);
}
END_TEST

START_TEST(temporary_live_across_a_later_await_gets_a_slot)
{
    Laid *l = lay_out("#include <asyncc.h>\n"
                      "static async(short) one(void) { await(ac_yield()); return 1; }\n"
                      "async(int) f(void)\n"
                      "{\n"
                      "    return await(one()) + await(one());\n"
                      "}\n");
    Frame *f = frame_of(l, "f");
    Slot *t = slot(f, "ac_t1");
    ck_assert_int_eq(t->kind, SLOT_TEMP);
    ck_assert_str_eq(t->decl, "short ac_t1");
    ck_assert_int_eq(t->size, 2);
    ck_assert(set_has(&t->live, 4));
    ck_assert(!has_slot(f, "ac_t2")); /* used before any later await */
    /* The first value waits while the second future runs. */
    ck_assert_int_ne(group_of(f, "ac_t1"), group_of(f, "ac_aw4"));
    assert_layout_agrees_with_cc(l);
}
END_TEST

/* ---- slots ------------------------------------------------------------------------ */

START_TEST(slots_have_kinds_declarations_and_live_states)
{
    Laid *l = lay_out("#include <asyncc.h>\n"
                      "async(long) remote(int);\n"
                      "static async(int) near(void) { return 1; }\n"
                      "async(long) f(const char *name)\n"
                      "{\n"
                      "    const int k = 3;\n"
                      "    int *const p = 0;\n"
                      "    char word[] = \"hello\";\n"
                      "    await(ac_yield());\n"
                      "    long r = await(remote(k));\n"
                      "    r += await(near());\n"
                      "    r += await(ac_box(near()));\n"
                      "    return r + name[0] + word[0] + (p != 0);\n"
                      "}\n");
    Frame *f = frame_of(l, "f");
    Slot *name = slot(f, "name");
    ck_assert_int_eq(name->kind, SLOT_PARAM);
    ck_assert_str_eq(name->decl, "const char *name");
    ck_assert_int_eq(name->size, 8);
    ck_assert_int_eq(name->line, 4);
    /* A top-level const is dropped: the frame field is assigned once. */
    ck_assert_str_eq(slot(f, "k")->decl, "int k");
    ck_assert_str_eq(slot(f, "p")->decl, "int * p");
    /* An unsized array gets the size clang computed from its initializer. */
    ck_assert_str_eq(slot(f, "word")->decl, "char word[6]");
    ck_assert_int_eq(slot(f, "word")->size, 6);
    ck_assert_int_eq(slot(f, "word")->kind, SLOT_LOCAL);
    /* ac_yield's frame is public: embedded by value. */
    ck_assert_str_eq(slot(f, "ac_aw3")->decl, "struct ac_yield__frame ac_aw3");
    ck_assert_int_eq(slot(f, "ac_aw3")->size, 1);
    ck_assert_int_eq(slot(f, "ac_aw3")->kind, SLOT_AWAIT);
    /* A function from elsewhere, or a boxed await: a pointer to an arena frame. */
    ck_assert_str_eq(slot(f, "ac_aw4")->decl, "void *ac_aw4");
    ck_assert_int_eq(slot(f, "ac_aw4")->size, 8);
    ck_assert_str_eq(slot(f, "ac_aw5")->decl, "struct near__frame ac_aw5");
    ck_assert_str_eq(slot(f, "ac_aw6")->decl, "void *ac_aw6");
    ck_assert(set_has(&slot(f, "ac_aw5")->live, 5));
    ck_assert(!set_has(&slot(f, "ac_aw5")->live, 4));
    assert_layout_agrees_with_cc(l);
}
END_TEST

START_TEST(array_parameter_is_stored_as_a_pointer)
{
    Laid *l = lay_out("#include <asyncc.h>\n"
                      "async(int) f(int values[4])\n"
                      "{\n"
                      "    await(ac_yield());\n"
                      "    return values[0];\n"
                      "}\n");
    Frame *f = frame_of(l, "f");
    ck_assert_str_eq(slot(f, "values")->decl, "int (*values)");
    ck_assert_int_eq(slot(f, "values")->size, 8);
    assert_layout_agrees_with_cc(l);
}
END_TEST

START_TEST(groups_are_placed_by_decreasing_alignment_with_the_state_last)
{
    Laid *l = lay_out("#include <asyncc.h>\n"
                      "async(int) f(char c, double d, short s, int i)\n"
                      "{\n"
                      "    await(ac_yield());\n"
                      "    return c + (int)d + s + i;\n"
                      "}\n");
    Frame *f = frame_of(l, "f");
    for (int g = 1; g < f->groups.len; g++)
        ck_assert_int_ge(((SlotGroup *)f->groups.items[g - 1])->align,
                         ((SlotGroup *)f->groups.items[g])->align);
    ck_assert_int_eq(slot(f, "d")->offset, 0);
    ck_assert_int_eq(slot(f, "i")->offset, 8);
    ck_assert_int_eq(slot(f, "s")->offset, 12);
    ck_assert_int_eq(f->state_offset, 16); /* after c and ac_aw3, one byte each */
    ck_assert_str_eq(f->state_type, "uint8_t");
    ck_assert_int_eq(f->size, 24);
    ck_assert_int_eq(f->align, 8);
    assert_layout_agrees_with_cc(l);
}
END_TEST

static char *many_awaits(int n)
{
    Buf b = {0};
    buf_puts(&b, "#include <asyncc.h>\nasync(void) f(void)\n{\n");
    for (int i = 0; i < n; i++)
        buf_puts(&b, "    await(ac_yield());\n");
    buf_puts(&b, "}\n");
    return buf_take(&b);
}

START_TEST(state_field_grows_past_256_states)
{
    Laid *l = lay_out(many_awaits(253)); /* states 0..255 */
    ck_assert_int_eq(parse_find_fn(&l->u, "f")->nstates, 256);
    ck_assert_str_eq(frame_of(l, "f")->state_type, "uint8_t");
    Laid *m = lay_out(many_awaits(254)); /* state 256 needs a second byte */
    ck_assert_int_eq(parse_find_fn(&m->u, "f")->nstates, 257);
    Frame *f = frame_of(m, "f");
    ck_assert_str_eq(f->state_type, "uint16_t");
    ck_assert_int_eq(f->groups.len, 1); /* all 254 futures share one byte */
    ck_assert_int_eq(f->size, 4);
    ck_assert_int_eq(f->align, 2);
    assert_layout_agrees_with_cc(m);
}
END_TEST

/* ---- sizes ------------------------------------------------------------------------ */

START_TEST(frame_sizes_of_the_bench_shapes)
{
    /* bench/frame_[abc].ac: three scalars across two awaits; two children
     * with 256-byte buffers awaited one after the other; an await in a
     * counted loop. */
    Laid *a = lay_out_file("bench/frame_a.ac");
    ck_assert_int_eq(frame_of(a, "fa")->size, 40);
    assert_layout_agrees_with_cc(a);
    Laid *b = lay_out_file("bench/frame_b.ac");
    ck_assert_int_eq(frame_of(b, "fb")->size, 272);
    ck_assert_int_eq(group_of(frame_of(b, "fb"), "ac_aw3"), group_of(frame_of(b, "fb"), "ac_aw4"));
    assert_layout_agrees_with_cc(b);
    Laid *c = lay_out_file("bench/frame_c.ac");
    ck_assert_int_eq(frame_of(c, "fc")->size, 16);
    assert_layout_agrees_with_cc(c);
}
END_TEST

START_TEST(layout_of_the_hello_sample_agrees_with_cc)
{
    Laid *l = lay_out_file("samples/hello.ac");
    ck_assert_int_eq(frame_of(l, "greet")->size, 32);
    assert_layout_agrees_with_cc(l);
}
END_TEST

START_TEST(aligned_local_is_laid_out_as_the_c_compiler_does)
{
    Laid *l = lay_out("#include <asyncc.h>\n"
                      "async(int) f(void)\n"
                      "{\n"
                      "    _Alignas(16) int x = 1;\n"
                      "    await(ac_yield());\n"
                      "    return x;\n"
                      "}\n");
    assert_layout_agrees_with_cc(l);
}
END_TEST

START_TEST(inferred_types_get_fields_that_compile)
{
    /* The frame struct is at file scope: a field cannot refer to the body's
     * variables, so typeof(local) and __auto_type take clang's type. */
    Laid *l = lay_out("#include <asyncc.h>\n"
                      "async(int) f(int n)\n"
                      "{\n"
                      "    __typeof__(n) copy = n;\n"
                      "    __auto_type guess = 2;\n"
                      "    await(ac_yield());\n"
                      "    return copy + guess;\n"
                      "}\n");
    Buf out = {0}, errors = {0};
    emit_unit(&l->u, &out);
    ck_assert_msg(compile(out.data, &errors) == 0, "the translation does not compile:\n%.2000s",
                  errors.data);
}
END_TEST

START_TEST(cleanup_variables_keep_storage_over_their_scope_and_no_cleanup_on_the_field)
{
    /* A variable with a cleanup is read by it at the end of its scope, so
     * its storage is shared with nothing in the scope, although nothing
     * reads it after the await; its field keeps the other attributes and
     * drops the cleanup, which gcc refuses on a struct member. */
    Laid *l = lay_out("#include <asyncc.h>\n"
                      "static void drop_p(char **p) { (void)p; }\n"
                      "static void drop_i(int *i) { (void)i; }\n"
                      "static async(int) step(void) { await(ac_yield()); return 1; }\n"
                      "async(int) f(void)\n"
                      "{\n"
                      "    char *a __attribute__((aligned(16), cleanup(drop_p))) = 0;\n"
                      "    int b __attribute__((cleanup (drop_i) , aligned(8))) = 2;\n"
                      "    char *c __attribute__((__cleanup__(drop_p))) = 0;\n"
                      "    __attribute__((cleanup(drop_i))) int d = 4;\n"
                      "    return await(step());\n"
                      "}\n");
    Frame *f = frame_of(l, "f");
    ck_assert_str_eq(slot(f, "a")->decl, "char *a __attribute__((aligned(16)))");
    ck_assert_str_eq(slot(f, "b")->decl, "int b __attribute__((aligned(8)))");
    ck_assert_str_eq(slot(f, "c")->decl, "char *c");
    ck_assert_str_eq(slot(f, "d")->decl, "int d");
    const char *names[] = {"a", "b", "c", "d"};
    for (int i = 0; i < 4; i++) {
        ck_assert_msg(set_has(&slot(f, names[i])->live, 3), "%s not live across the await", names[i]);
        ck_assert_int_ne(group_of(f, names[i]), group_of(f, "ac_aw3"));
    }
    assert_layout_agrees_with_cc(l);
}
END_TEST

START_TEST(locals_of_block_scope_types_get_bytes_laid_out_as_cc_does)
{
    /* Nor can a field name the body's own types: such a local gets bytes of
     * the type's size and alignment (a raised _Alignas included), which the
     * body casts back, and the translation compiles. */
    Laid *l = lay_out("#include <asyncc.h>\n"
                      "async(int) f(void)\n"
                      "{\n"
                      "    typedef struct { int a; double d; } point;\n"
                      "    struct tag { char c[3]; } t = {{1, 2, 3}};\n"
                      "    point p = {1, 2.0};\n"
                      "    _Alignas(32) point q = {2, 3.0};\n"
                      "    point ps[] = {{1, 0}, {2, 0}};\n"
                      "    await(ac_yield());\n"
                      "    return p.a + q.a + t.c[2] + ps[1].a;\n"
                      "}\n");
    assert_layout_agrees_with_cc(l);
    Buf out = {0}, errors = {0};
    emit_unit(&l->u, &out);
    ck_assert_msg(compile(out.data, &errors) == 0, "the translation does not compile:\n%.2000s",
                  errors.data);
    ck_assert_ptr_nonnull(strstr(out.data, "_Alignas(32) unsigned char q[16]"));
}
END_TEST

static Suite *layout_suite(void)
{
    Suite *s = suite_create("compiler_layout");
    TCase *tc = tcase_create("sharing");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, callees_awaited_at_different_points_share_storage);
    tcase_add_test(tc, variable_needed_across_both_awaits_shares_with_neither);
    tcase_add_test(tc, parameter_dead_before_an_await_shares_with_its_future);
    tcase_add_test(tc, address_taken_variable_keeps_its_storage_for_its_whole_scope);
    tcase_add_test(tc, variable_used_in_a_loop_keeps_its_storage_over_the_loop);
    tcase_add_test(tc, temporary_live_across_a_later_await_gets_a_slot);
    suite_add_tcase(s, tc);

    tc = tcase_create("slots");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, slots_have_kinds_declarations_and_live_states);
    tcase_add_test(tc, array_parameter_is_stored_as_a_pointer);
    tcase_add_test(tc, groups_are_placed_by_decreasing_alignment_with_the_state_last);
    tcase_add_test(tc, state_field_grows_past_256_states);
    suite_add_tcase(s, tc);

    tc = tcase_create("sizes");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, frame_sizes_of_the_bench_shapes);
    tcase_add_test(tc, layout_of_the_hello_sample_agrees_with_cc);
    tcase_add_test(tc, aligned_local_is_laid_out_as_the_c_compiler_does);
    tcase_add_test(tc, inferred_types_get_fields_that_compile);
    tcase_add_test(tc, locals_of_block_scope_types_get_bytes_laid_out_as_cc_does);
    tcase_add_test(tc, cleanup_variables_keep_storage_over_their_scope_and_no_cleanup_on_the_field);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    if (access("runtime/include/asyncc.h", R_OK) != 0) {
        fprintf(stderr, "compiler_layout: run from the repository root "
                        "(runtime/include/asyncc.h not found)\n");
        return EXIT_FAILURE;
    }
    SRunner *sr = srunner_create(layout_suite());
    srunner_set_fork_status(sr, CK_FORK); /* diag_error_count() is per process */
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
