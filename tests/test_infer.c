/*
 * test_infer.c - the rename-inference API (engine/graph/infer.c,
 * engine/graph/infer_rules.c): trestle_infer_renames() and its accessors on
 * small checkpoints written here. `trestle check` prints the same
 * inference; test_check.c covers it on drifted real checkpoints.
 */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "trestle_graph.h"

static void done(trestle_checkpoint *c, char *dir)
{
    trestle_close(c);
    tu_rmtree(dir);
    free(dir);
}

static trestle_inference *infer(const trestle_checkpoint *c, const trestle_op *ops, size_t n,
                                const trestle_plan_options *po)
{
    trestle_inference *inf = NULL;
    trestle_error err;
    cr_assert_eq(trestle_infer_renames(c, ops, n, po, &inf, &err), TRESTLE_OK, "%s",
                 err.message);
    cr_assert_not_null(inf);
    return inf;
}

static const char *tensor_name(const trestle_checkpoint *c, size_t at)
{
    static trestle_tensor_info t;
    cr_assert_eq(trestle_tensor_get_info(c, at, &t), TRESTLE_OK);
    return t.name;
}

Test(infer, a_renumbered_layer_is_one_scope_rule_proven_by_planning)
{
    static const tu_tensor t[] = { { "dense/bias", TRESTLE_DT_FLOAT, 1, { 6 } },
                                   { "dense/kernel", TRESTLE_DT_FLOAT, 2, { 4, 6 } },
                                   { "global_step", TRESTLE_DT_FLOAT, 0, { 0 } } };
    char *dir;
    trestle_checkpoint *c = tu_zero_checkpoint(&dir, t, 3);
    trestle_op ops[] = { { .name = "dense_3/kernel", .dtype = TRESTLE_DT_FLOAT },
                         { .name = "dense_3/bias", .dtype = TRESTLE_DT_FLOAT } };
    trestle_inference *inf = infer(c, ops, 2, NULL);

    trestle_inference_info v;
    trestle_inference_get_info(inf, &v);
    cr_expect_eq(v.ops, 2);
    cr_expect_eq(v.ok, 0);
    cr_expect_eq(v.missing, 2);
    cr_expect_eq(v.unused, 3);
    cr_expect_eq(v.rules, 1);
    cr_expect_eq(v.ambiguous + v.unresolved, 0);
    cr_expect_eq(v.restores, 0);
    cr_expect_eq(v.fixable, 1);
    cr_expect_str_eq(v.failure, "Key dense_3/bias not found in checkpoint (did you mean "
                                "dense/bias?)\nKey dense_3/kernel not found in checkpoint (did "
                                "you mean dense/kernel?)");

    trestle_inferred_rule r;
    cr_assert_eq(trestle_inference_rule(inf, 0, &r), TRESTLE_OK);
    cr_expect_eq(r.kind, TRESTLE_RULE_RENUMBER);
    cr_expect_str_eq(r.rename, "dense_3/=dense/");
    cr_expect_eq(r.fixes, 2);
    cr_expect_eq(r.shapes_checked, 0); /* whole tensors, no declared shapes */
    cr_expect_str_eq(r.why, "a layer renumbered (only the _N suffix differs)");
    cr_expect_eq(trestle_inference_rule(inf, 1, &r), TRESTLE_E_INVALID_ARG);

    trestle_inferred_op o;
    cr_assert_eq(trestle_inference_op(inf, 0, &o), TRESTLE_OK);
    cr_expect_str_eq(o.name, "dense_3/kernel");
    cr_expect_eq(o.status, TRESTLE_INFER_MISSING);
    cr_expect_eq(o.rule, 0);
    cr_expect_eq(o.candidates, 1);
    cr_expect_str_eq(tensor_name(c, o.tensor), "dense/kernel");
    size_t at;
    int kind;
    const char *rename;
    cr_assert_eq(trestle_inference_candidate(inf, 0, 0, &at, &kind, &rename), TRESTLE_OK);
    cr_expect_eq(at, o.tensor);
    cr_expect_eq(kind, TRESTLE_RULE_RENUMBER);
    cr_expect_str_eq(rename, "dense_3/=dense/");
    cr_expect_eq(trestle_inference_candidate(inf, 0, 1, &at, NULL, NULL), TRESTLE_E_INVALID_ARG);
    cr_expect_eq(trestle_inference_op(inf, 2, &o), TRESTLE_E_INVALID_ARG);
    /* Keys a rule maps to are still unused as the ops stand. */
    cr_expect_eq(trestle_inference_tensor_used(inf, o.tensor), 0);

    /* The fixed options restore the same ops. */
    trestle_plan_options po;
    cr_assert_eq(trestle_inference_fixed_options(inf, &po), TRESTLE_OK);
    cr_expect_eq(po.num_renames, 1);
    cr_expect_str_eq(po.renames[0], "dense_3/=dense/");
    ops[0].dest_kind = ops[1].dest_kind = TRESTLE_DEST_DISCARD;
    trestle_plan_free(tu_plan(c, ops, 2, &po));
    trestle_inference_free(inf);
    done(c, dir);
}

Test(infer, declared_shapes_turn_an_ambiguous_renumbering_into_a_mapping)
{
    static const tu_tensor t[] = { { "dense_1/kernel", TRESTLE_DT_FLOAT, 2, { 6, 2 } },
                                   { "dense_2/kernel", TRESTLE_DT_FLOAT, 2, { 4, 6 } } };
    static const int64_t dims[] = { 4, 6 };
    char *dir;
    trestle_checkpoint *c = tu_zero_checkpoint(&dir, t, 2);
    trestle_op op = { .name = "dense/kernel", .dtype = TRESTLE_DT_FLOAT };

    trestle_inference *inf = infer(c, &op, 1, NULL);
    trestle_inference_info v;
    trestle_inferred_op o;
    trestle_inference_get_info(inf, &v);
    cr_expect_eq(v.ambiguous, 1);
    cr_expect_eq(v.rules, 0);
    cr_expect_eq(v.fixable, 0);
    trestle_inference_op(inf, 0, &o);
    cr_expect_eq(o.candidates, 2);
    cr_expect_eq(o.rule, -1);
    cr_expect_eq(o.tensor, SIZE_MAX);
    /* No rule: the fixed options are the caller's. */
    trestle_plan_options po;
    cr_assert_eq(trestle_inference_fixed_options(inf, &po), TRESTLE_OK);
    cr_expect_eq(po.num_renames, 0);
    trestle_inference_free(inf);

    trestle_shape shape = { 2, dims };
    trestle_plan_options_init(&po);
    po.op_shapes = &shape;
    inf = infer(c, &op, 1, &po);
    trestle_inference_get_info(inf, &v);
    cr_expect_eq(v.ambiguous, 0);
    cr_expect_eq(v.fixable, 1);
    trestle_inference_op(inf, 0, &o);
    cr_expect_eq(o.candidates, 1);
    cr_expect_str_eq(tensor_name(c, o.tensor), "dense_2/kernel");
    trestle_inferred_rule r;
    trestle_inference_rule(inf, 0, &r);
    cr_expect_str_eq(r.rename, "dense/=dense_2/");
    cr_expect_eq(r.shapes_checked, 1);
    /* op_shapes was read during the call only. */
    trestle_inference_fixed_options(inf, &po);
    cr_expect_null(po.op_shapes);
    trestle_inference_free(inf);
    done(c, dir);
}

Test(infer, rnn_names_are_a_flag_not_a_rename)
{
    static const tu_tensor t[] = { { "rnn/lstm_cell/kernel", TRESTLE_DT_FLOAT, 2, { 4, 8 } },
                                   { "rnn/lstm_cell/bias", TRESTLE_DT_FLOAT, 1, { 8 } } };
    char *dir;
    trestle_checkpoint *c = tu_zero_checkpoint(&dir, t, 2);
    trestle_op ops[] = { { .name = "rnn/lstm_cell/weights" }, { .name = "rnn/lstm_cell/biases" } };
    trestle_inference *inf = infer(c, ops, 2, NULL);
    trestle_inference_info v;
    trestle_inferred_rule r;
    trestle_plan_options po;
    trestle_inference_get_info(inf, &v);
    cr_expect_eq(v.fixable, 1);
    cr_assert_eq(v.rules, 1);
    trestle_inference_rule(inf, 0, &r);
    cr_expect_eq(r.kind, TRESTLE_RULE_RNN);
    cr_expect_str_eq(r.rename, "");
    cr_expect_eq(r.fixes, 2);
    trestle_inference_fixed_options(inf, &po);
    cr_expect_eq(po.tf1_rnn_renames, 1);
    cr_expect_eq(po.num_renames, 0);
    trestle_inference_free(inf);
    done(c, dir);
}

Test(infer, a_restore_that_succeeds_or_mismatches_needs_no_rule)
{
    static const tu_tensor t[] = { { "w", TRESTLE_DT_FLOAT, 2, { 2, 3 } },
                                   { "b", TRESTLE_DT_FLOAT, 1, { 3 } } };
    char *dir;
    trestle_checkpoint *c = tu_zero_checkpoint(&dir, t, 2);
    trestle_op ok[] = { { .name = "w", .dtype = TRESTLE_DT_FLOAT } };
    trestle_inference *inf = infer(c, ok, 1, NULL);
    trestle_inference_info v;
    trestle_inferred_op o;
    trestle_inference_get_info(inf, &v);
    cr_expect_eq(v.restores, 1);
    cr_expect_eq(v.ok, 1);
    cr_expect_eq(v.unused, 1);
    cr_expect_str_eq(v.failure, "");
    trestle_inference_op(inf, 0, &o);
    cr_expect_eq(o.status, TRESTLE_INFER_OK);
    cr_expect_str_eq(tensor_name(c, o.tensor), "w");
    cr_expect_eq(trestle_inference_tensor_used(inf, o.tensor), 1);
    trestle_inference_free(inf);

    trestle_op bad[] = { { .name = "w", .dtype = TRESTLE_DT_INT64 },
                         { .name = "b", .shape_and_slices = "4 0,4" } };
    inf = infer(c, bad, 2, NULL);
    trestle_inference_get_info(inf, &v);
    cr_expect_eq(v.restores, 0);
    cr_expect_eq(v.fixable, 0);
    cr_expect_eq(v.mismatched, 2);
    cr_expect(strstr(v.failure, "w"), "%s", v.failure);
    trestle_inference_op(inf, 0, &o);
    cr_expect_eq(o.status, TRESTLE_INFER_DTYPE);
    trestle_inference_op(inf, 1, &o);
    cr_expect_eq(o.status, TRESTLE_INFER_SHAPE);
    trestle_inference_free(inf);
    done(c, dir);
}

Test(infer, bad_arguments_are_refused)
{
    static const tu_tensor t[] = { { "w", TRESTLE_DT_FLOAT, 1, { 2 } } };
    char *dir;
    trestle_checkpoint *c = tu_zero_checkpoint(&dir, t, 1);
    trestle_op op = { .name = "w" };
    trestle_inference *inf = (trestle_inference *)1;
    trestle_error err;
    cr_expect_eq(trestle_infer_renames(c, &op, 0, NULL, &inf, &err), TRESTLE_E_INVALID_ARG);
    cr_expect_null(inf);
    cr_expect_str_eq(err.message, "trestle_infer_renames: no ops");
    cr_expect_eq(trestle_infer_renames(NULL, &op, 1, NULL, &inf, &err), TRESTLE_E_INVALID_ARG);
    trestle_plan_options po;
    trestle_plan_options_init(&po);
    po.reserved[0] = (void *)1;
    cr_expect_eq(trestle_infer_renames(c, &op, 1, &po, &inf, &err), TRESTLE_E_INVALID_ARG);
    cr_expect_null(inf);
    trestle_inference_info v;
    trestle_inference_get_info(NULL, &v);
    cr_expect_eq(v.ops, 0);
    cr_expect_eq(trestle_inference_tensor_used(NULL, 0), 0);
    trestle_inference_free(NULL);
    done(c, dir);
}

/* ---- a rule is checked against every op, not just the ones it fixes ---- */

/* The ops a prefix rule would move are named; a narrower rule is inferred. */
static void expect_refused(const trestle_inference *inf, const trestle_checkpoint *c,
                           const char *rename, size_t op, const char *to)
{
    cr_assert_eq(trestle_inference_refused_count(inf), 1);
    trestle_inferred_rule r;
    size_t changes = 0, at = 0, tensor = 0;
    cr_assert_eq(trestle_inference_refused(inf, 0, &r, &changes), TRESTLE_OK);
    cr_expect_str_eq(r.rename, rename);
    cr_expect_eq(r.kind, TRESTLE_RULE_SCOPE);
    cr_expect_eq(r.fixes, 1);
    cr_assert_eq(changes, 1);
    cr_assert_eq(trestle_inference_refused_change(inf, 0, 0, &at, &tensor), TRESTLE_OK);
    cr_expect_eq(at, op);
    if (to)
        cr_expect_str_eq(tensor_name(c, tensor), to);
    else
        cr_expect_eq(tensor, SIZE_MAX);
    cr_expect_eq(trestle_inference_refused_change(inf, 0, 1, &at, &tensor), TRESTLE_E_INVALID_ARG);
    cr_expect_eq(trestle_inference_refused(inf, 1, &r, &changes), TRESTLE_E_INVALID_ARG);
}

/* Issue 22 case (a): the scope rule that fixes dense/bias would also move
 * dense/kernel, which resolves as is, onto model/dense/kernel. */
Test(infer, a_scope_rule_that_would_move_a_resolved_op_is_narrowed)
{
    static const tu_tensor t[] = { { "dense/kernel", TRESTLE_DT_FLOAT, 2, { 4, 6 } },
                                   { "model/dense/bias", TRESTLE_DT_FLOAT, 1, { 6 } },
                                   { "model/dense/kernel", TRESTLE_DT_FLOAT, 2, { 4, 6 } } };
    char *dir;
    trestle_checkpoint *c = tu_zero_checkpoint(&dir, t, 3);
    trestle_op ops[] = { { .name = "dense/kernel", .dest_kind = TRESTLE_DEST_DISCARD },
                         { .name = "dense/bias", .dest_kind = TRESTLE_DEST_DISCARD } };
    trestle_inference *inf = infer(c, ops, 2, NULL);
    trestle_inference_info v;
    trestle_inference_get_info(inf, &v);
    cr_expect_eq(v.ok, 1);
    cr_expect_eq(v.missing, 1);
    cr_expect_eq(v.fixable, 1);
    cr_assert_eq(v.rules, 1);
    trestle_inferred_rule r;
    trestle_inference_rule(inf, 0, &r);
    cr_expect_str_eq(r.rename, "dense/bias=model/dense/bias");
    cr_expect_eq(r.kind, TRESTLE_RULE_SCOPE);
    cr_expect_eq(r.fixes, 1);
    trestle_inferred_op o;
    trestle_inference_op(inf, 1, &o);
    cr_expect_eq(o.rule, 0);
    expect_refused(inf, c, "dense/=model/dense/", 0, "model/dense/kernel");

    /* The fixed options leave dense/kernel where it was. */
    trestle_plan_options po;
    trestle_inference_fixed_options(inf, &po);
    cr_assert_eq(po.num_renames, 1);
    cr_expect_str_eq(po.renames[0], "dense/bias=model/dense/bias");
    trestle_plan *p = tu_plan(c, ops, 2, &po);
    trestle_plan_op_info pi;
    trestle_plan_get_op(p, 0, &pi);
    cr_expect_str_eq(pi.key, "dense/kernel");
    trestle_plan_get_op(p, 1, &pi);
    cr_expect_str_eq(pi.key, "model/dense/bias");
    trestle_plan_free(p);
    trestle_inference_free(inf);
    done(c, dir);
}

/* Issue 22 case (b): the same rule would break the op that resolves, and
 * the restore was called unfixable; the exact rename fixes it. */
Test(infer, a_scope_rule_that_would_break_a_resolved_op_is_narrowed)
{
    static const tu_tensor t[] = { { "dense/kernel", TRESTLE_DT_FLOAT, 2, { 4, 6 } },
                                   { "model/dense/bias", TRESTLE_DT_FLOAT, 1, { 6 } } };
    char *dir;
    trestle_checkpoint *c = tu_zero_checkpoint(&dir, t, 2);
    trestle_op ops[] = { { .name = "dense/kernel" }, { .name = "dense/bias" } };
    trestle_inference *inf = infer(c, ops, 2, NULL);
    trestle_inference_info v;
    trestle_inference_get_info(inf, &v);
    cr_expect_eq(v.fixable, 1, "%s", v.failure);
    cr_assert_eq(v.rules, 1);
    trestle_inferred_rule r;
    trestle_inference_rule(inf, 0, &r);
    cr_expect_str_eq(r.rename, "dense/bias=model/dense/bias");
    expect_refused(inf, c, "dense/=model/dense/", 0, NULL);
    trestle_inference_free(inf);
    done(c, dir);
}

Test(infer, a_prefix_rule_that_changes_only_what_it_fixes_is_kept)
{
    static const tu_tensor t[] = { { "model/dense/bias", TRESTLE_DT_FLOAT, 1, { 6 } },
                                   { "model/dense/kernel", TRESTLE_DT_FLOAT, 2, { 4, 6 } },
                                   { "other/w", TRESTLE_DT_FLOAT, 1, { 2 } } };
    char *dir;
    trestle_checkpoint *c = tu_zero_checkpoint(&dir, t, 3);
    trestle_op ops[] = { { .name = "dense/kernel" }, { .name = "dense/bias" },
                         { .name = "other/w" } };
    trestle_inference *inf = infer(c, ops, 3, NULL);
    trestle_inference_info v;
    trestle_inference_get_info(inf, &v);
    cr_expect_eq(v.fixable, 1);
    cr_assert_eq(v.rules, 1);
    trestle_inferred_rule r;
    trestle_inference_rule(inf, 0, &r);
    cr_expect_str_eq(r.rename, "dense/=model/dense/");
    cr_expect_eq(r.fixes, 2);
    cr_expect_eq(trestle_inference_refused_count(inf), 0);
    trestle_inference_free(inf);
    done(c, dir);
}

Test(infer, the_rnn_flag_that_would_also_move_an_unmapped_op_becomes_exact_renames)
{
    /* --rnn-renames fixes rnn/lstm_cell/{weights,biases}, but would also put
     * x/lstm_cell/weights onto x/lstm_cell/kernel, which another op restores. */
    static const tu_tensor t[] = { { "rnn/lstm_cell/bias", TRESTLE_DT_FLOAT, 1, { 8 } },
                                   { "rnn/lstm_cell/kernel", TRESTLE_DT_FLOAT, 2, { 4, 8 } },
                                   { "x/lstm_cell/kernel", TRESTLE_DT_FLOAT, 2, { 4, 8 } } };
    char *dir;
    trestle_checkpoint *c = tu_zero_checkpoint(&dir, t, 3);
    trestle_op ops[] = { { .name = "rnn/lstm_cell/weights" }, { .name = "rnn/lstm_cell/biases" },
                         { .name = "x/lstm_cell/kernel" }, { .name = "x/lstm_cell/weights" } };
    trestle_inference *inf = infer(c, ops, 4, NULL);
    trestle_inference_info v;
    trestle_inference_get_info(inf, &v);
    cr_expect_eq(v.unresolved, 1);
    cr_expect_eq(v.fixable, 0);
    cr_assert_eq(v.rules, 2);
    trestle_inferred_rule r;
    trestle_inference_rule(inf, 0, &r);
    cr_expect_eq(r.kind, TRESTLE_RULE_RNN);
    cr_expect_str_eq(r.rename, "rnn/lstm_cell/weights=rnn/lstm_cell/kernel");
    trestle_inference_rule(inf, 1, &r);
    cr_expect_str_eq(r.rename, "rnn/lstm_cell/biases=rnn/lstm_cell/bias");
    cr_assert_eq(trestle_inference_refused_count(inf), 1);
    size_t changes, at, tensor;
    cr_assert_eq(trestle_inference_refused(inf, 0, &r, &changes), TRESTLE_OK);
    cr_expect_eq(r.kind, TRESTLE_RULE_RNN);
    cr_expect_str_eq(r.rename, "");
    cr_expect_eq(r.fixes, 2);
    cr_assert_eq(changes, 1);
    trestle_inference_refused_change(inf, 0, 0, &at, &tensor);
    cr_expect_eq(at, 3);
    cr_expect_str_eq(tensor_name(c, tensor), "x/lstm_cell/kernel");
    trestle_plan_options po;
    trestle_inference_fixed_options(inf, &po);
    cr_expect_eq(po.tf1_rnn_renames, 0);
    cr_expect_eq(po.num_renames, 2);
    trestle_inference_free(inf);
    done(c, dir);
}
