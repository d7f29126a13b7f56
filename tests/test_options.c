/*
 * test_options.c - the one rule by which every function reads a caller's
 * size-versioned options struct (include/trestle.h, "Options";
 * engine/common/options.c): first on a two-release struct made up here,
 * through trestle_options_read() itself, then through each public
 * function on each public struct, with the exact messages. libtrestle_mpi's
 * trestle_group_options has its own suite (test_group_options.c), since it
 * needs MPI.
 */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph.h"
#include "options.h"
#include "testutil.h"
#include "trestle.h"

/* ---- the rule itself, on a struct with two releases ---- */

/* Release 1 ended at `added`; release 2 added it (in a reserved slot's
 * place, here at the end, for the test's sake). */
typedef struct demo_options {
    size_t size;
    int kept;         /* default 7 */
    int added;        /* since release 2; default 0, as every later field's */
    void *reserved[2];
} demo_options;

#define DEMO_FIRST offsetof(demo_options, added)

static void demo_init(demo_options *o)
{
    memset(o, 0, sizeof *o);
    o->size = sizeof *o;
    o->kept = 7;
}

static int demo_read(demo_options *dst, const void *src, trestle_error *err)
{
    demo_init(dst);
    return trestle_options_read(dst, src, sizeof *dst, DEMO_FIRST,
                                offsetof(demo_options, reserved), "demo_options", err);
}

Test(options, null_means_the_defaults)
{
    demo_options o;
    trestle_error err;
    cr_assert_eq(demo_read(&o, NULL, &err), TRESTLE_OK);
    cr_expect_eq(o.size, sizeof o);
    cr_expect_eq(o.kept, 7);
}

Test(options, a_first_release_caller_gets_the_defaults_of_later_fields)
{
    /* What a caller built against release 1 passes: its bytes end at `added`. */
    unsigned char buf[sizeof(demo_options)];
    memset(buf, 0xee, sizeof buf); /* beyond its struct: not the caller's */
    demo_options old;
    demo_init(&old);
    old.size = DEMO_FIRST;
    old.kept = 3;
    memcpy(buf, &old, DEMO_FIRST);
    demo_options o;
    trestle_error err;
    cr_assert_eq(demo_read(&o, buf, &err), TRESTLE_OK, "%s", err.message);
    cr_expect_eq(o.size, sizeof o);
    cr_expect_eq(o.kept, 3);
    cr_expect_eq(o.added, 0);
    cr_expect_null(o.reserved[0]);
    cr_expect_null(o.reserved[1]);
}

Test(options, a_newer_callers_zero_tail_is_accepted_and_a_nonzero_one_refused)
{
    struct {
        demo_options o;
        uint64_t newer[2];
    } big;
    memset(&big, 0, sizeof big);
    demo_init(&big.o);
    big.o.size = sizeof big;
    big.o.added = 5;
    demo_options o;
    trestle_error err;
    cr_assert_eq(demo_read(&o, &big, &err), TRESTLE_OK, "%s", err.message);
    cr_expect_eq(o.size, sizeof o);
    cr_expect_eq(o.added, 5);

    big.newer[1] = 1;
    cr_assert_eq(demo_read(&o, &big, &err), TRESTLE_E_INVALID_ARG);
    char want[256];
    snprintf(want, sizeof want, "demo_options.size is %zu and its byte %zu is not zero: an "
             "option newer than the %zu bytes this library (trestle %s) knows",
             sizeof big, sizeof big - 8, sizeof o, TRESTLE_VERSION_STRING);
    cr_expect_str_eq(err.message, want);
    cr_expect_eq(err.code, TRESTLE_E_INVALID_ARG);
    cr_expect_eq(o.added, 0, "a refused struct leaves dst as it was");
}

Test(options, a_size_below_the_first_release_or_absurdly_large_is_refused)
{
    demo_options src, o;
    trestle_error err;
    demo_init(&src);
    src.size = DEMO_FIRST - 1;
    cr_assert_eq(demo_read(&o, &src, &err), TRESTLE_E_INVALID_ARG);
    char want[256];
    snprintf(want, sizeof want, "demo_options.size is %zu: smaller than the %zu bytes of its "
             "first release; fill it with demo_options_init()", DEMO_FIRST - 1, DEMO_FIRST);
    cr_expect_str_eq(err.message, want);
    /* Garbage in `size` (no init) is refused before a byte past the struct is read. */
    src.size = (size_t)1 << 40;
    cr_assert_eq(demo_read(&o, &src, &err), TRESTLE_E_INVALID_ARG);
    snprintf(want, sizeof want, "demo_options.size is %zu: larger than any options struct "
             "(4096 bytes); fill it with demo_options_init()", (size_t)1 << 40);
    cr_expect_str_eq(err.message, want);
}

Test(options, covered_reserved_fields_must_be_zero)
{
    demo_options src, o;
    trestle_error err;
    demo_init(&src);
    src.reserved[1] = &src;
    cr_assert_eq(demo_read(&o, &src, &err), TRESTLE_E_INVALID_ARG);
    cr_expect_str_eq(err.message, "demo_options.reserved[1] is not zero");
    /* A first-release size does not cover them: they are not read. */
    src.size = DEMO_FIRST;
    cr_assert_eq(demo_read(&o, &src, &err), TRESTLE_OK, "%s", err.message);
    cr_expect_null(o.reserved[1]);
}

Test(options, a_layout_no_struct_has_is_the_callers_mistake)
{
    demo_options o;
    trestle_error err;
    demo_init(&o);
    cr_expect_eq(trestle_options_read(&o, NULL, sizeof o, sizeof o + 8, 16, "x", &err),
                 TRESTLE_E_INVALID_ARG);
    cr_expect_eq(trestle_options_read(&o, NULL, sizeof o, 16, 20, "x", &err),
                 TRESTLE_E_INVALID_ARG); /* reserved slots are whole pointers */
    cr_expect_eq(trestle_options_read(NULL, NULL, sizeof o, 16, 16, "x", &err),
                 TRESTLE_E_INVALID_ARG);
    cr_expect_eq(trestle_options_read(&o, NULL, sizeof o, 16, 16, NULL, &err),
                 TRESTLE_E_INVALID_ARG);
    cr_expect_str_eq(err.message, "trestle_options_read: a layout no options struct has "
                                  "(size 32, first_size 16, reserved at 16)");
}

/* ---- every public struct, through the function that reads it ---- */

/* Each struct as today's sizeof is its first release's: the sizes pinned
 * on LP64 keep a field from growing one by accident. libtrestle_mpi passes
 * sizeof(trestle_restore_options) as its first size too (group_mpi.c). */
Test(options, every_struct_is_still_its_first_release_size)
{
    cr_expect_eq(TRESTLE__OPEN_OPTIONS_FIRST_SIZE, sizeof(trestle_open_options));
    cr_expect_eq(TRESTLE__WRITER_OPTIONS_FIRST_SIZE, sizeof(trestle_writer_options));
    cr_expect_eq(TRESTLE__PLAN_OPTIONS_FIRST_SIZE, sizeof(trestle_plan_options));
    cr_expect_eq(TRESTLE__RESTORE_OPTIONS_FIRST_SIZE, sizeof(trestle_restore_options));
    cr_expect_eq(TRESTLE__CONVERT_OPTIONS_FIRST_SIZE, sizeof(trestle_convert_options));
    cr_expect_eq(TRESTLE__GRAPH_OPTIONS_FIRST_SIZE, sizeof(trestle_graph_options));
    if (sizeof(void *) == 8) {
        cr_expect_eq(sizeof(trestle_open_options), 80);
        cr_expect_eq(sizeof(trestle_writer_options), 88);
        cr_expect_eq(sizeof(trestle_plan_options), 136);
        cr_expect_eq(sizeof(trestle_restore_options), 128);
        cr_expect_eq(sizeof(trestle_convert_options), 96);
        cr_expect_eq(sizeof(trestle_graph_options), 80);
    }
}

static char *dir, *prefix; /* the checkpoint DIR/c, of the running test */
static trestle_checkpoint *ckpt;

static void setup(void)
{
    static const tu_tensor t[] = { { "dense/kernel", TRESTLE_DT_FLOAT, 2, { 4, 6 } },
                                   { "step", TRESTLE_DT_INT64, 0, { 0 } } };
    ckpt = tu_zero_checkpoint(&dir, t, 2);
    cr_assert(asprintf(&prefix, "%s/c", dir) > 0);
}

static void teardown(void)
{
    trestle_close(ckpt);
    tu_rmtree(dir);
    free(dir);
    free(prefix);
}

static int open_call(const void *opt, trestle_error *err)
{
    trestle_checkpoint *c = NULL;
    int rc = trestle_open(prefix, opt, &c, err);
    trestle_close(c);
    return rc;
}

static int writer_call(const void *opt, trestle_error *err)
{
    char *p;
    trestle_writer *w = NULL;
    cr_assert(asprintf(&p, "%s/w", dir) > 0);
    int rc = trestle_writer_create(p, opt, &w, err);
    if (rc == TRESTLE_OK)
        rc = trestle_writer_finish(w, err);
    trestle_writer_free(w);
    free(p);
    return rc;
}

static int plan_call(const void *opt, trestle_error *err)
{
    trestle_plan *p = NULL;
    int rc = trestle_plan_create(ckpt, NULL, 0, opt, &p, err);
    trestle_plan_free(p);
    return rc;
}

static int restore_call(const void *opt, trestle_error *err)
{
    trestle_plan *p = NULL;
    cr_assert_eq(trestle_plan_create(ckpt, NULL, 0, NULL, &p, err), TRESTLE_OK);
    int rc = trestle_restore(p, opt, NULL, err);
    trestle_plan_free(p);
    return rc;
}

static int convert_call(const void *opt, trestle_error *err)
{
    char *out;
    cr_assert(asprintf(&out, "%s/c.safetensors", dir) > 0);
    int rc = trestle_convert_safetensors(ckpt, NULL, 0, opt, out, NULL, err);
    free(out);
    return rc;
}

static int graph_call(const void *opt, trestle_error *err)
{
    char *path;
    trestle_graph *g = NULL;
    cr_assert(asprintf(&path, "%s/absent.meta", dir) > 0);
    int rc = trestle_graph_open(path, opt, &g, err);
    trestle_graph_close(g);
    free(path);
    return rc;
}

static int infer_call(const void *opt, trestle_error *err)
{
    trestle_op op = { .name = "dense_1/kernel" };
    trestle_inference *inf = NULL;
    int rc = trestle_infer_renames(ckpt, &op, 1, opt, &inf, err);
    trestle_inference_free(inf);
    return rc;
}

/* type_init() behind a `void *`, for the table. */
#define INIT_ANY(type)                                                                       \
    static void type##_init_any(void *opt) { type##_init(opt); }
INIT_ANY(trestle_open_options)
INIT_ANY(trestle_writer_options)
INIT_ANY(trestle_plan_options)
INIT_ANY(trestle_restore_options)
INIT_ANY(trestle_convert_options)
INIT_ANY(trestle_graph_options)

#define KIND(type, call, accepted)                                                           \
    { #type, sizeof(type), offsetof(type, reserved), type##_init_any, call, #call, accepted, "" }

TestSuite(public_options, .init = setup, .fini = teardown);

/* Each struct through each public function that reads it (a graph's good
 * options reach the file, which is absent). */
static const tu_options_kind kinds[] = {
    KIND(trestle_open_options, open_call, TRESTLE_OK),
    KIND(trestle_writer_options, writer_call, TRESTLE_OK),
    KIND(trestle_plan_options, plan_call, TRESTLE_OK),
    KIND(trestle_plan_options, infer_call, TRESTLE_OK),
    KIND(trestle_restore_options, restore_call, TRESTLE_OK),
    KIND(trestle_convert_options, convert_call, TRESTLE_OK),
    KIND(trestle_graph_options, graph_call, TRESTLE_E_NOT_FOUND),
};

/* Indices, not kinds: Criterion hands parameters to a fresh process,
 * where the parent's pointers mean nothing. */
ParameterizedTestParameters(public_options, each_struct_follows_the_rule)
{
    static int at[sizeof kinds / sizeof kinds[0]];
    for (size_t i = 0; i < sizeof at / sizeof at[0]; i++)
        at[i] = (int)i;
    return cr_make_param_array(int, at, sizeof at / sizeof at[0]);
}

ParameterizedTest(int *at, public_options, each_struct_follows_the_rule)
{
    tu_check_options_rule(&kinds[*at]);
}

/* ---- what each struct's later fields read as from a first-release caller ---- */

/* 0.1's header had reserved slots where the shard rules and op_shapes are
 * now: a 0.1 caller's zeros there plan as the defaults do (shard_world 0
 * reads as 1). */
Test(public_options, plan_options_from_a_0_1_caller_plan_as_the_defaults)
{
    trestle_plan_options po;
    trestle_plan_options_init(&po);
    po.skip_unsupported = 0;
    po.shard_rules = NULL;
    po.num_shard_rules = 0;
    po.shard_rank = 0;
    po.shard_world = 0;
    po.partial_reads = 0;
    po.op_shapes = NULL;
    trestle_plan *a = NULL, *b = NULL;
    trestle_error err;
    cr_assert_eq(trestle_plan_create(ckpt, NULL, 0, &po, &a, &err), TRESTLE_OK, "%s",
                 err.message);
    cr_assert_eq(trestle_plan_create(ckpt, NULL, 0, NULL, &b, &err), TRESTLE_OK);
    trestle_plan_stats sa, sb;
    trestle_plan_get_stats(a, &sa);
    trestle_plan_get_stats(b, &sb);
    cr_expect_eq(memcmp(&sa, &sb, sizeof sa), 0);
    trestle_plan_free(a);
    trestle_plan_free(b);
}

/* The structs a convert options struct points to follow the rule, named as themselves. */
Test(public_options, convert_reads_its_plan_and_restore_options_by_the_rule)
{
    trestle_convert_options co;
    trestle_plan_options po;
    trestle_restore_options ro;
    trestle_error err;
    trestle_convert_options_init(&co);
    trestle_plan_options_init(&po);
    trestle_restore_options_init(&ro);
    co.plan = &po;
    co.restore = &ro;
    cr_assert_eq(convert_call(&co, &err), TRESTLE_OK, "%s", err.message);
    po.reserved[1] = &po;
    cr_assert_eq(convert_call(&co, &err), TRESTLE_E_INVALID_ARG);
    cr_expect_str_eq(err.message, "trestle_plan_options.reserved[1] is not zero");
    po.reserved[1] = NULL;
    ro.size = 8;
    cr_assert_eq(convert_call(&co, &err), TRESTLE_E_INVALID_ARG);
    char want[256];
    snprintf(want, sizeof want, "trestle_restore_options.size is 8: smaller than the %zu bytes "
             "of its first release; fill it with trestle_restore_options_init()", sizeof ro);
    cr_expect_str_eq(err.message, want);
}
