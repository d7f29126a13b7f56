/*
 * test_plan_suggest.c - the "did you mean" of the missing-key report
 * (engine/plan/plan_names.c) ranks by evidence: a suggestion must fit the op
 * (its dtype, and the full shape of a sliced op), the same path with one
 * component changed comes before near spellings, and a key of the wrong
 * dtype or shape is never offered, however close its spelling.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "trestle.h"

/* The missing-key report for one op. */
static void report(const trestle_checkpoint *c, trestle_op op, char *msg, size_t cap)
{
    trestle_plan *p = NULL;
    trestle_error err;
    op.dest_kind = TRESTLE_DEST_DISCARD;
    cr_assert_eq(trestle_plan_create(c, &op, 1, NULL, &p, &err), TRESTLE_E_KEY_NOT_FOUND);
    snprintf(msg, cap, "%s", err.message);
}

Test(plan_suggest, never_offers_a_key_of_another_dtype)
{
    static const tu_tensor t[] = {
        { "training/Ftrl/iter_1", TRESTLE_DT_FLOAT, 0, { 0 } },
        { "training/Ftrl/itr", TRESTLE_DT_INT64, 0, { 0 } },
    };
    char *dir, msg[1024];
    trestle_checkpoint *c = tu_zero_checkpoint(&dir, t, 2);
    report(c, (trestle_op){ .name = "training/Ftrl/iter", .dtype = TRESTLE_DT_INT64 }, msg,
           sizeof msg);
    cr_expect_str_eq(msg, "Key training/Ftrl/iter not found in checkpoint (did you mean "
                          "training/Ftrl/itr?)");
    /* Without a dtype, the float key fits too. */
    report(c, (trestle_op){ .name = "training/Ftrl/iter_" }, msg, sizeof msg);
    cr_expect_str_eq(msg, "Key training/Ftrl/iter_ not found in checkpoint (did you mean "
                          "training/Ftrl/iter_1?)");
    trestle_close(c);
    tu_rmtree(dir);
    free(dir);
}

Test(plan_suggest, a_renumbered_layer_is_told_apart_by_shape)
{
    static const tu_tensor t[] = {
        { "dense/kernel", TRESTLE_DT_FLOAT, 2, { 4, 6 } },
        { "dense_1/kernel", TRESTLE_DT_FLOAT, 2, { 6, 2 } },
    };
    char *dir, msg[1024];
    trestle_checkpoint *c = tu_zero_checkpoint(&dir, t, 2);
    report(c, (trestle_op){ .name = "dense_3/kernel", .shape_and_slices = "6 2 0,6:0,2" }, msg,
           sizeof msg);
    cr_expect_str_eq(msg, "Key dense_3/kernel not found in checkpoint (did you mean "
                          "dense_1/kernel?)");
    report(c, (trestle_op){ .name = "dense_3/kernel", .shape_and_slices = "4 6 0,4:-" }, msg,
           sizeof msg);
    cr_expect_str_eq(msg, "Key dense_3/kernel not found in checkpoint (did you mean "
                          "dense/kernel?)");
    /* No key has this shape: no suggestion beats a wrong one. */
    report(c, (trestle_op){ .name = "dense_3/kernel", .shape_and_slices = "5 5 0,5:-" }, msg,
           sizeof msg);
    cr_expect_str_eq(msg, "Key dense_3/kernel not found in checkpoint");
    trestle_close(c);
    tu_rmtree(dir);
    free(dir);
}

Test(plan_suggest, the_same_path_with_one_component_changed_comes_before_spelling)
{
    static const tu_tensor t[] = {
        { "encoder/block_3/bias", TRESTLE_DT_FLOAT, 1, { 4 } },
        { "encoder/block_12/bias", TRESTLE_DT_FLOAT, 1, { 4 } },
        { "encoder/blocks/bias_", TRESTLE_DT_FLOAT, 1, { 4 } },
    };
    char *dir, msg[1024];
    trestle_checkpoint *c = tu_zero_checkpoint(&dir, t, 3);
    /* blocks/bias_ is as near in spelling, but two components away. */
    report(c, (trestle_op){ .name = "encoder/block_1/bias" }, msg, sizeof msg);
    cr_expect_str_eq(msg, "Key encoder/block_1/bias not found in checkpoint (did you mean "
                          "encoder/block_12/bias or encoder/block_3/bias?)");
    trestle_close(c);
    tu_rmtree(dir);
    free(dir);
}

Test(plan_suggest, rename_neighbours_must_fit_too)
{
    static const tu_tensor t[] = {
        { "rnn/lstm_cell/bias", TRESTLE_DT_INT32, 1, { 4 } },
    };
    char *dir, msg[1024];
    trestle_checkpoint *c = tu_zero_checkpoint(&dir, t, 1);
    report(c, (trestle_op){ .name = "rnn/lstm_cell/biases", .dtype = TRESTLE_DT_FLOAT }, msg,
           sizeof msg);
    cr_expect_str_eq(msg, "Key rnn/lstm_cell/biases not found in checkpoint");
    trestle_close(c);
    tu_rmtree(dir);
    free(dir);
}

Test(plan_suggest, a_whole_tensor_ops_declared_shape_tells_renamed_candidates_apart)
{
    /* Both keys are one component away and float: only the graph's
     * declared shape (plan option op_shapes) picks dense_2/kernel. */
    static const tu_tensor t[] = {
        { "dense_1/kernel", TRESTLE_DT_FLOAT, 2, { 6, 2 } },
        { "dense_2/kernel", TRESTLE_DT_FLOAT, 2, { 4, 6 } },
    };
    static const int64_t dims[] = { 4, 6 };
    char *dir;
    trestle_checkpoint *c = tu_zero_checkpoint(&dir, t, 2);
    trestle_op op = { .name = "dense_3/kernel", .dtype = TRESTLE_DT_FLOAT,
                      .dest_kind = TRESTLE_DEST_DISCARD };
    trestle_plan_options po;
    trestle_plan *p = NULL;
    trestle_error err;
    trestle_plan_options_init(&po);
    cr_assert_eq(trestle_plan_create(c, &op, 1, &po, &p, &err), TRESTLE_E_KEY_NOT_FOUND);
    cr_expect_str_eq(err.message, "Key dense_3/kernel not found in checkpoint (did you mean "
                                  "dense_1/kernel or dense_2/kernel?)");
    trestle_shape shape = { 2, dims };
    po.op_shapes = &shape;
    cr_assert_eq(trestle_plan_create(c, &op, 1, &po, &p, &err), TRESTLE_E_KEY_NOT_FOUND);
    cr_expect_str_eq(err.message, "Key dense_3/kernel not found in checkpoint (did you mean "
                                  "dense_2/kernel?)");
    /* Unknown (rank -1) constrains nothing. */
    shape.rank = -1;
    cr_assert_eq(trestle_plan_create(c, &op, 1, &po, &p, &err), TRESTLE_E_KEY_NOT_FOUND);
    cr_expect_str_eq(err.message, "Key dense_3/kernel not found in checkpoint (did you mean "
                                  "dense_1/kernel or dense_2/kernel?)");
    /* A shape no key has: no suggestion rather than a wrong one. */
    static const int64_t other[] = { 3, 3 };
    shape = (trestle_shape){ 2, other };
    cr_assert_eq(trestle_plan_create(c, &op, 1, &po, &p, &err), TRESTLE_E_KEY_NOT_FOUND);
    cr_expect_str_eq(err.message, "Key dense_3/kernel not found in checkpoint");
    cr_expect_null(p);
    trestle_close(c);
    tu_rmtree(dir);
    free(dir);
}
