/*
 * test_plan_shard.c - tensor-parallel shard rules (trestle_plan_options
 * shard_rules / shard_rank / shard_world, engine/plan/plan_shard.c): each rank's
 * part follows TensorFlow's partitioner rule, the parts of all ranks put
 * back together are the whole tensor, unmatched ops stay whole, rules
 * compose with renames and with an op's own slice, and bad rules are
 * refused with messages that name the rule or the tensor.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plan_shard.h"
#include "testutil.h"
#include "trestle.h"

/* A checkpoint at dir/c: "attn/q/kernel" float [10,7] (shard 0),
 * "mlp/wo/kernel" float [8,6] (shard 1), "step" int64 scalar (shard 1),
 * "emb" float [13,5] stored as a partitioned variable in parts of 5, 5, 3
 * rows over both shards. The full bytes of each are kept for reference. */
typedef struct fixture {
    char *dir, *prefix;
    trestle_checkpoint *c;  /* the checkpoint, open */
    float q[70], wo[48], emb[65];
    int64_t step;
} fixture;

static void make_fixture(fixture *f)
{
    trestle_writer_options wo;
    trestle_writer *w;
    trestle_error err;
    f->dir = tu_mkdtemp();
    cr_assert(asprintf(&f->prefix, "%s/c", f->dir) > 0);
    tu_fill_random(f->q, sizeof f->q, 1);
    tu_fill_random(f->wo, sizeof f->wo, 2);
    tu_fill_random(f->emb, sizeof f->emb, 3);
    f->step = 42;
    trestle_writer_options_init(&wo);
    wo.num_shards = 2;
    cr_assert_eq(trestle_writer_create(f->prefix, &wo, &w, &err), TRESTLE_OK, "%s", err.message);
    static const int64_t qd[] = { 10, 7 }, wod[] = { 8, 6 };
    cr_assert_eq(trestle_writer_add(w, "attn/q/kernel", TRESTLE_DT_FLOAT, 2, qd, f->q,
                                    sizeof f->q, 0, &err), TRESTLE_OK);
    cr_assert_eq(trestle_writer_add(w, "mlp/wo/kernel", TRESTLE_DT_FLOAT, 2, wod, f->wo,
                                    sizeof f->wo, 1, &err), TRESTLE_OK);
    cr_assert_eq(trestle_writer_add(w, "step", TRESTLE_DT_INT64, 0, NULL, &f->step,
                                    sizeof f->step, 1, &err), TRESTLE_OK);
    static const char *parts[] = { "13 5 0,5:-", "13 5 5,5:-", "13 5 10,3:-" };
    static const int rows[] = { 5, 5, 3 };
    for (int k = 0, at = 0; k < 3; at += rows[k], k++)
        cr_assert_eq(trestle_writer_add_slice(w, "emb", TRESTLE_DT_FLOAT, parts[k], f->emb + at * 5,
                                              (uint64_t)rows[k] * 5 * 4, k % 2, &err),
                     TRESTLE_OK, "%s", err.message);
    cr_assert_eq(trestle_writer_finish(w, &err), TRESTLE_OK, "%s", err.message);
    trestle_writer_free(w);
    f->c = tu_open(f->prefix, NULL);
}

static void free_fixture(fixture *f)
{
    trestle_close(f->c);
    tu_rmtree(f->dir);
    free(f->dir);
    free(f->prefix);
}

/* Plan options with `rules` (and `renames`) as rank r of world w. */
static void shard_options(trestle_plan_options *po, const char *const *rules, size_t nrules,
                          const char *const *renames, size_t nrenames, int r, int w)
{
    trestle_plan_options_init(po);
    po->shard_rules = rules;
    po->num_shard_rules = nrules;
    po->shard_rank = r;
    po->shard_world = w;
    po->renames = renames;
    po->num_renames = nrenames;
}

/* Plan `n` ops (NULL: every tensor) with `rules` as rank r of world w. */
static int plan_with(const trestle_checkpoint *c, const trestle_op *ops, size_t n,
                     const char *const *rules, size_t nrules, const char *const *renames,
                     size_t nrenames, int r, int w, trestle_plan **p, trestle_error *err)
{
    trestle_plan_options po;
    shard_options(&po, rules, nrules, renames, nrenames, r, w);
    return trestle_plan_create(c, ops, n, &po, p, err);
}

/* plan_with() on the fixture's checkpoint, which must succeed. */
static trestle_plan *plan_ok(const fixture *f, const trestle_op *ops, size_t n,
                             const char *const *rules, size_t nrules, const char *const *renames,
                             size_t nrenames, int r, int w)
{
    trestle_plan_options po;
    shard_options(&po, rules, nrules, renames, nrenames, r, w);
    return tu_plan(f->c, ops, n, &po);
}

/* Restore p into host memory and return op `i`'s bytes (malloc'd), its info in *info. */
static uint8_t *restore_op(trestle_plan *p, size_t i, trestle_plan_op_info *info)
{
    trestle_error err;
    cr_assert_eq(trestle_restore(p, NULL, NULL, &err), TRESTLE_OK, "%s", err.message);
    cr_assert_eq(trestle_plan_get_op(p, i, info), TRESTLE_OK);
    uint8_t *buf = malloc(info->bytes ? info->bytes : 1);
    if (info->bytes)
        cr_assert_eq(trestle_plan_read_op(p, i, buf, info->bytes, &err), TRESTLE_OK, "%s",
                     err.message);
    return buf;
}

/* Index of op `name` in an every-tensor plan. */
static size_t op_index(const trestle_plan *p, const char *name)
{
    for (size_t i = 0; i < trestle_plan_op_count(p); i++) {
        trestle_plan_op_info info;
        trestle_plan_get_op(p, i, &info);
        if (strcmp(info.name, name) == 0)
            return i;
    }
    cr_assert_fail("no op %s", name);
    return 0;
}

Test(plan_shard, partitioner_rule_gives_the_first_ranks_one_more)
{
    int64_t s, n;
    static const int64_t want[][2] = { { 0, 4 }, { 4, 3 }, { 7, 3 } }; /* 10 over 3 */
    for (int r = 0; r < 3; r++) {
        trestle_shard_part(10, r, 3, &s, &n);
        cr_assert_eq(s, want[r][0]);
        cr_assert_eq(n, want[r][1]);
    }
    trestle_shard_part(8, 3, 4, &s, &n);
    cr_assert(s == 6 && n == 2);
    trestle_shard_part(2, 3, 4, &s, &n); /* more ranks than rows: empty parts last */
    cr_assert(s == 2 && n == 0);
}

/* Every rank's part of `name` along dim, put back together, is the whole tensor. */
static void check_reassembles(fixture *f, const char *name, const char *rule, int dim, int world,
                              const float *whole, int64_t d0, int64_t d1)
{
    float *back = calloc((size_t)(d0 * d1), sizeof *back);
    int64_t at = 0;
    for (int r = 0; r < world; r++) {
        const char *rules[] = { rule };
        trestle_plan *p = plan_ok(f, NULL, 0, rules, 1, NULL, 0, r, world);
        trestle_plan_op_info info;
        size_t i = op_index(p, name);
        float *part = (float *)restore_op(p, i, &info);
        int64_t s, n;
        trestle_shard_part(dim ? d1 : d0, r, world, &s, &n);
        cr_assert_eq(s, at, "rank %d starts at %lld", r, (long long)s);
        cr_assert_eq(info.rank, 2);
        cr_assert_eq(info.dims[dim], n, "rank %d of %d: dim %d is %lld, expected %lld", r, world,
                     dim, (long long)info.dims[dim], (long long)n);
        cr_assert_eq(info.dims[1 - dim], dim ? d0 : d1);
        for (int64_t a = 0; a < info.dims[0]; a++)
            for (int64_t b = 0; b < info.dims[1]; b++) {
                int64_t row = dim ? a : s + a, col = dim ? s + b : b;
                back[row * d1 + col] = part[a * info.dims[1] + b];
            }
        at += n;
        free(part);
        trestle_plan_free(p);
    }
    cr_assert_eq(at, dim ? d1 : d0);
    cr_assert_arr_eq(back, whole, (size_t)(d0 * d1) * sizeof *back);
    free(back);
}

Test(plan_shard, even_dim_parts_reassemble_to_the_whole_tensor)
{
    fixture f;
    make_fixture(&f);
    check_reassembles(&f, "mlp/wo/kernel", "mlp/wo/kernel:0", 0, 4, f.wo, 8, 6);
    check_reassembles(&f, "mlp/wo/kernel", "mlp/*:1", 1, 3, f.wo, 8, 6);
    free_fixture(&f);
}

Test(plan_shard, uneven_dim_parts_reassemble_to_the_whole_tensor)
{
    fixture f;
    make_fixture(&f);
    check_reassembles(&f, "attn/q/kernel", "attn/*/kernel:0", 0, 3, f.q, 10, 7);
    check_reassembles(&f, "attn/q/kernel", "attn/*/kernel:1", 1, 4, f.q, 10, 7);
    check_reassembles(&f, "attn/q/kernel", "attn/*/kernel:1", 1, 9, f.q, 10, 7); /* empty parts */
    free_fixture(&f);
}

Test(plan_shard, partitioned_variable_parts_read_only_the_slices_they_meet)
{
    fixture f;
    make_fixture(&f);
    check_reassembles(&f, "emb", "emb:0", 0, 2, f.emb, 13, 5);
    check_reassembles(&f, "emb", "emb:1", 1, 3, f.emb, 13, 5);
    trestle_plan *p;
    trestle_plan_stats st;
    const char *rules[] = { "emb:0" };
    trestle_op op = { .name = "emb" };
    /* Rank 0 of 3 holds rows 0..4: exactly the first stored part. */
    p = plan_ok(&f, &op, 1, rules, 1, NULL, 0, 0, 3);
    trestle_plan_get_stats(p, &st);
    cr_assert_eq(st.read_bytes, 5 * 5 * 4);
    cr_assert_eq(st.output_bytes, 5 * 5 * 4);
    trestle_plan_free(p);
    free_fixture(&f);
}

Test(plan_shard, unmatched_ops_are_restored_whole)
{
    fixture f;
    make_fixture(&f);
    trestle_plan *p;
    trestle_plan_op_info info;
    const char *rules[] = { "attn/*:0" };
    p = plan_ok(&f, NULL, 0, rules, 1, NULL, 0, 1, 2);
    uint8_t *wo = restore_op(p, op_index(p, "mlp/wo/kernel"), &info);
    cr_assert_arr_eq(wo, f.wo, sizeof f.wo);
    uint8_t *step = restore_op(p, op_index(p, "step"), &info);
    cr_assert_arr_eq(step, &f.step, sizeof f.step);
    free(wo);
    free(step);
    trestle_plan_free(p);
    free_fixture(&f);
}

Test(plan_shard, first_matching_rule_wins)
{
    fixture f;
    make_fixture(&f);
    trestle_plan *p;
    trestle_plan_op_info info;
    const char *rules[] = { "attn/q/*:1", "attn/*:0" };
    trestle_op op = { .name = "attn/q/kernel" };
    p = plan_ok(&f, &op, 1, rules, 2, NULL, 0, 0, 2);
    cr_assert_eq(trestle_plan_get_op(p, 0, &info), TRESTLE_OK);
    cr_assert(info.dims[0] == 10 && info.dims[1] == 4);
    trestle_plan_free(p);
    free_fixture(&f);
}

Test(plan_shard, rules_match_the_op_name_before_renames)
{
    fixture f;
    make_fixture(&f);
    trestle_plan *p;
    trestle_plan_op_info info;
    const char *renames[] = { "model/=attn/" };
    const char *rules[] = { "model/*/kernel:0" };
    trestle_op op = { .name = "model/q/kernel" };
    p = plan_ok(&f, &op, 1, rules, 1, renames, 1, 2, 3);
    float *part = (float *)restore_op(p, 0, &info);
    cr_assert_str_eq(info.key, "attn/q/kernel");
    cr_assert(info.dims[0] == 3 && info.dims[1] == 7); /* rows 7..9 of 10 over 3 */
    cr_assert_arr_eq(part, f.q + 7 * 7, 3 * 7 * sizeof(float));
    free(part);
    trestle_plan_free(p);
    /* The checkpoint key does not match a rule written for the graph's names. */
    const char *key_rules[] = { "attn/*/kernel:0" };
    p = plan_ok(&f, &op, 1, key_rules, 1, renames, 1, 2, 3);
    cr_assert_eq(trestle_plan_get_op(p, 0, &info), TRESTLE_OK);
    cr_assert(info.dims[0] == 10 && info.dims[1] == 7);
    trestle_plan_free(p);
    free_fixture(&f);
}

Test(plan_shard, an_op_slice_is_split_within_itself)
{
    fixture f;
    make_fixture(&f);
    trestle_plan *p;
    trestle_plan_op_info info;
    const char *rules[] = { "attn/q/kernel:1" };
    /* Rows 2..7, columns 1..6 (6 of them); rank 1 of 2 gets columns 4..6. */
    trestle_op op = { .name = "attn/q/kernel", .shape_and_slices = "10 7 2,6:1,6" };
    p = plan_ok(&f, &op, 1, rules, 1, NULL, 0, 1, 2);
    uint8_t *part = restore_op(p, 0, &info);
    cr_assert(info.dims[0] == 6 && info.dims[1] == 3);
    uint8_t ref[6 * 3 * 4];
    static const int64_t dims[] = { 10, 7 }, start[] = { 2, 4 }, len[] = { 6, 3 };
    tu_ref_slice((const uint8_t *)f.q, dims, 2, start, len, 4, ref);
    cr_assert_arr_eq(part, ref, sizeof ref);
    free(part);
    trestle_plan_free(p);
    free_fixture(&f);
}

/* plan_create with one rule fails with `code` and a message containing `want`. */
static void expect_refused(fixture *f, const char *rule, int rank, int world, int code,
                           const char *want)
{
    trestle_error err;
    trestle_plan *p = (trestle_plan *)&err;
    const char *rules[] = { rule };
    int rc = plan_with(f->c, NULL, 0, rules, 1, NULL, 0, rank, world, &p, &err);
    cr_assert_eq(rc, code, "rule %s: %s (%d), expected %s", rule, trestle_code_name(rc), rc,
                 trestle_code_name(code));
    cr_assert_null(p);
    cr_assert(strstr(err.message, want), "rule %s: '%s' lacks '%s'", rule, err.message, want);
}

Test(plan_shard, bad_rules_are_refused_naming_the_rule_or_the_tensor)
{
    fixture f;
    make_fixture(&f);
    expect_refused(&f, "mlp/wo/kernel", 0, 2, TRESTLE_E_INVALID_ARG,
                   "shard rule 0 (mlp/wo/kernel) is not of the form GLOB:DIM");
    expect_refused(&f, "mlp/*:x", 0, 2, TRESTLE_E_INVALID_ARG, "(mlp/*:x) is not of the form");
    expect_refused(&f, ":0", 0, 2, TRESTLE_E_INVALID_ARG, "is not of the form GLOB:DIM");
    expect_refused(&f, "mlp/*:", 0, 2, TRESTLE_E_INVALID_ARG, "is not of the form GLOB:DIM");
    expect_refused(&f, "mlp/[wo/*:0", 0, 2, TRESTLE_E_INVALID_ARG,
                   "shard rule 0 (mlp/[wo/*:0): malformed glob");
    expect_refused(&f, "mlp/*:0", 2, 2, TRESTLE_E_INVALID_ARG,
                   "shard_rank 2 is not a part of shard_world 2");
    expect_refused(&f, "mlp/*:0", -1, 2, TRESTLE_E_INVALID_ARG, "shard_rank -1");
    expect_refused(&f, "mlp/*:2", 0, 2, TRESTLE_E_BAD_SPEC,
                   "tensor 'mlp/wo/kernel' has rank 2: shard rule 'mlp/*:2' names dimension 2");
    expect_refused(&f, "st*:0", 0, 2, TRESTLE_E_BAD_SPEC,
                   "tensor 'step' is a scalar: shard rule 'st*:0' has no dimension 0 to split");
    free_fixture(&f);
}

Test(plan_shard, a_well_formed_bracket_class_matches)
{
    fixture f;
    make_fixture(&f);
    trestle_plan *p;
    trestle_plan_op_info info;
    const char *rules[] = { "[]am]lp/w[!x]/kernel:0" };
    trestle_op op = { .name = "mlp/wo/kernel" };
    p = plan_ok(&f, &op, 1, rules, 1, NULL, 0, 0, 2);
    cr_assert_eq(trestle_plan_get_op(p, 0, &info), TRESTLE_OK);
    cr_assert(info.dims[0] == 4 && info.dims[1] == 6);
    trestle_plan_free(p);
    free_fixture(&f);
}

/* The public rule calls decide as the planner does: tools that build their
 * own per-part ops (trestle restore --device 0,1 --shard) rely on it. */
Test(plan_shard, public_rule_calls_check_and_match_as_the_planner)
{
    trestle_error err;
    const char *ok[] = { "*/mlp/*:1", "x:0", "*:2" };
    cr_assert_eq(trestle_shard_rules_check(ok, 3, &err), TRESTLE_OK);
    cr_assert_eq(trestle_shard_rules_check(NULL, 0, &err), TRESTLE_OK);
    cr_assert_eq(trestle_shard_rules_check(NULL, 1, &err), TRESTLE_E_INVALID_ARG);
    const char *bad_dim[] = { "x:0", "y:z" };
    cr_assert_eq(trestle_shard_rules_check(bad_dim, 2, &err), TRESTLE_E_INVALID_ARG);
    cr_assert(strstr(err.message, "shard rule 1 (y:z) is not of the form GLOB:DIM"), "%s",
              err.message);
    const char *bad_glob[] = { "[ab:1" };
    cr_assert_eq(trestle_shard_rules_check(bad_glob, 1, &err), TRESTLE_E_INVALID_ARG);
    cr_assert(strstr(err.message, "malformed glob"), "%s", err.message);
    /* A glob too long to match is refused, not silently never matched. */
    char *long_rule = malloc(1100);
    memset(long_rule, 'a', 1096);
    strcpy(long_rule + 1096, ":0");
    const char *lr[] = { long_rule };
    cr_assert_eq(trestle_shard_rules_check(lr, 1, &err), TRESTLE_E_INVALID_ARG);
    cr_assert_str_eq(err.message, "shard rule 0: its glob is 1096 characters long, more than "
                                  "1023");
    free(long_rule);

    int dim = -1;
    cr_assert_eq(trestle_shard_rule_match(ok, 3, "model/mlp/kernel", &dim), 0);
    cr_assert_eq(dim, 1);
    cr_assert_eq(trestle_shard_rule_match(ok, 3, "x", &dim), 1, "first matching rule wins");
    cr_assert_eq(dim, 0);
    cr_assert_eq(trestle_shard_rule_match(ok, 2, "y", NULL), -1);
    cr_assert_eq(trestle_shard_rule_match(bad_glob, 1, "[ab", &dim), -1,
                 "a malformed rule never matches");
    cr_assert_eq(trestle_shard_rule_match(NULL, 0, "x", &dim), -1);
}

/* Issue 22: '*:1:2' was read as GLOB '*:1', DIM 2, and silently matched
 * nothing; a rule has one ':' (TensorFlow names hold none). */
Test(plan_shard, a_rule_with_two_colons_is_refused)
{
    fixture f;
    make_fixture(&f);
    expect_refused(&f, "*:1:2", 0, 2, TRESTLE_E_INVALID_ARG,
                   "shard rule 0 (*:1:2): malformed glob: more than one ':' (a rule is "
                   "GLOB:DIM; write '\\:' for a ':' in a name)");
    trestle_error err;
    const char *bad[] = { "mlp/*:0", "attn/*:1:0" };
    cr_assert_eq(trestle_shard_rules_check(bad, 2, &err), TRESTLE_E_INVALID_ARG);
    cr_assert_str_eq(err.message, "shard rule 1 (attn/*:1:0): malformed glob: more than one "
                                  "':' (a rule is GLOB:DIM; write '\\:' for a ':' in a name)");
    /* Never matched by the public call either, as the planner refuses it. */
    cr_assert_eq(trestle_shard_rule_match(bad + 1, 1, "attn/*:1", NULL), -1);
    free_fixture(&f);
}

/* A ':' inside a bracket class, or escaped, is part of the glob. */
Test(plan_shard, an_escaped_or_bracketed_colon_matches_a_colon)
{
    trestle_error err;
    const char *ok[] = { "w\\:1/*:0", "v[:]2:1" };
    cr_assert_eq(trestle_shard_rules_check(ok, 2, &err), TRESTLE_OK, "%s", err.message);
    int dim = -1;
    cr_assert_eq(trestle_shard_rule_match(ok, 2, "w:1/kernel", &dim), 0);
    cr_assert_eq(dim, 0);
    cr_assert_eq(trestle_shard_rule_match(ok, 2, "v:2", &dim), 1);
    cr_assert_eq(dim, 1);
}

/* `trestle restore --device 0,1 --shard`: a rule that splits nothing is
 * said on stderr (before any device is needed), not silently replicated. */
Test(plan_shard, the_cli_notes_rules_that_split_nothing)
{
    fixture f;
    make_fixture(&f);
    tu_cli_result r = tu_cli("restore '%s' --device 0,1 --shard 'nomatch/*:1' --shard "
                             "'*/kernel:0' --shard 'mlp/*:1'", f.prefix);
    cr_assert(strstr(r.err, "note: --shard 'nomatch/*:1' matches no tensor: it splits "
                            "nothing\n"), "%s", r.err);
    cr_assert(strstr(r.err, "note: --shard 'mlp/*:1' splits nothing: an earlier --shard rule "
                            "takes the 1 tensor it matches (the first matching rule "
                            "wins)\n"), "%s", r.err);
    cr_assert_null(strstr(r.err, "'*/kernel:0'"), "%s", r.err);
    tu_cli_free(&r);
    r = tu_cli("restore '%s' --device 0,1 --shard '*:1:2'", f.prefix);
    cr_assert_eq(r.rc, 2);
    cr_assert(strstr(r.err, "--shard wants GLOB:DIM (e.g. '*/attention/*/kernel:1'): shard rule "
                            "0 (*:1:2): malformed glob: more than one ':'"), "%s", r.err);
    tu_cli_free(&r);
    free_fixture(&f);
}
