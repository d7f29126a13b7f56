/*
 * test_plan_names.c - how the planner (engine/plan/plan_names.c,
 * engine/plan/plan_suggest.c) finds each op's key, against checkpoints
 * built in memory (planfake.h): renames, the TF 1.x RNN table,
 * exclusions and allow_missing, then TensorFlow's error texts for missing
 * keys (with suggestions, also on 100k keys) and dtype mismatches.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "checkpoint.h"
#include "plan.h"
#include "planfake.h"
#include "testutil.h"

/* ---- names ---- */

static fake rnn_model(void)
{
    fake f;
    fk_init(&f, 16);
    int64_t d[1] = { 4 };
    fk_tensor(&f, "rnn/lstm_cell/kernel", TRESTLE_DT_FLOAT, 1, d, 0, 0);
    fk_tensor(&f, "rnn/lstm_cell/bias", TRESTLE_DT_FLOAT, 1, d, 0, 16);
    fk_tensor(&f, "old/gru_cell/weights", TRESTLE_DT_FLOAT, 1, d, 0, 32);
    fk_tensor(&f, "input/w", TRESTLE_DT_FLOAT, 1, d, 0, 48);
    fk_tensor(&f, "input/deep/w", TRESTLE_DT_FLOAT, 1, d, 0, 64);
    fk_tensor(&f, "exact/w", TRESTLE_DT_FLOAT, 1, d, 0, 80);
    fk_finish(&f);
    return f;
}

static const char *key_of(const trestle_plan *p, size_t i)
{
    trestle_plan_op_info info;
    cr_assert_eq(trestle_plan_get_op(p, i, &info), TRESTLE_OK);
    return info.key;
}

Test(plan, exact_rename_maps_the_whole_name)
{
    fake f = rnn_model();
    const char *renames[] = { "graph/w=exact/w" };
    trestle_plan_options po;
    trestle_plan_options_init(&po);
    po.renames = renames;
    po.num_renames = 1;
    trestle_op ops[] = { { .name = "graph/w" } };
    trestle_plan *p = tu_plan(&f.c, ops, 1, &po);
    cr_assert_str_eq(key_of(p, 0), "exact/w");
    trestle_plan_op_info info;
    trestle_plan_get_op(p, 0, &info);
    cr_assert_str_eq(info.name, "graph/w", "the op keeps its graph name");
    trestle_plan_free(p);
    fk_free(&f);
}

Test(plan, prefix_renames_take_the_longest_prefix_and_exact_rules_win)
{
    fake f = rnn_model();
    const char *renames[] = { "init/=input/", "init/deep/=input/deep/", "init/x=exact/w" };
    trestle_plan_options po;
    trestle_plan_options_init(&po);
    po.renames = renames;
    po.num_renames = 3;
    trestle_op ops[] = { { .name = "init/w" }, { .name = "init/deep/w" }, { .name = "init/x" } };
    trestle_plan *p = tu_plan(&f.c, ops, 3, &po);
    cr_assert_str_eq(key_of(p, 0), "input/w");
    cr_assert_str_eq(key_of(p, 1), "input/deep/w");
    cr_assert_str_eq(key_of(p, 2), "exact/w");
    trestle_plan_free(p);
    fk_free(&f);
}

Test(plan, rejects_a_rename_rule_without_an_equals_sign)
{
    fake f = rnn_model();
    const char *renames[] = { "init/" };
    trestle_plan_options po;
    trestle_plan_options_init(&po);
    po.renames = renames;
    po.num_renames = 1;
    trestle_op ops[] = { { .name = "init/w" } };
    trestle_error err = fk_plan_fails(&f, ops, 1, &po, TRESTLE_E_INVALID_ARG);
    cr_assert(strstr(err.message, "init/") != NULL, "%s", err.message);
    fk_free(&f);
}

Test(plan, rnn_renames_load_old_names_from_a_new_checkpoint)
{
    fake f = rnn_model();
    const char *renames[] = { "old/=rnn/" };
    trestle_plan_options po;
    trestle_plan_options_init(&po);
    po.renames = renames;
    po.num_renames = 1;
    po.tf1_rnn_renames = 1;
    trestle_op ops[] = { { .name = "old/lstm_cell/weights" }, { .name = "rnn/lstm_cell/biases" } };
    trestle_plan *p = tu_plan(&f.c, ops, 2, &po);
    cr_assert_str_eq(key_of(p, 0), "rnn/lstm_cell/kernel");
    cr_assert_str_eq(key_of(p, 1), "rnn/lstm_cell/bias");
    trestle_plan_free(p);
    fk_free(&f);
}

Test(plan, rnn_renames_load_new_names_from_an_old_checkpoint)
{
    fake f = rnn_model();
    trestle_plan_options po;
    trestle_plan_options_init(&po);
    po.tf1_rnn_renames = 1;
    trestle_op ops[] = { { .name = "old/gru_cell/kernel" } };
    trestle_plan *p = tu_plan(&f.c, ops, 1, &po);
    cr_assert_str_eq(key_of(p, 0), "old/gru_cell/weights");
    trestle_plan_free(p);
    fk_free(&f);
}

Test(plan, rnn_renames_are_off_unless_asked_for)
{
    fake f = rnn_model();
    trestle_op ops[] = { { .name = "rnn/lstm_cell/weights" } };
    trestle_error err = fk_plan_fails(&f, ops, 1, NULL, TRESTLE_E_KEY_NOT_FOUND);
    cr_assert_str_eq(err.message, "Key rnn/lstm_cell/weights not found in checkpoint (did you "
                                  "mean rnn/lstm_cell/kernel?)");
    fk_free(&f);
}

Test(plan, exclusions_skip_matching_ops_at_any_depth)
{
    fake f = rnn_model();
    const char *excludes[] = { "*/w", "nothing*" };
    trestle_plan_options po;
    trestle_plan_options_init(&po);
    po.excludes = excludes;
    po.num_excludes = 2;
    trestle_op ops[] = { { .name = "input/deep/w" }, { .name = "rnn/lstm_cell/bias" },
                         { .name = "absent/w" } };
    trestle_plan *p = tu_plan(&f.c, ops, 3, &po);
    fk_assert_invariants(p);
    trestle_plan_op_info info;
    trestle_plan_get_op(p, 0, &info);
    cr_assert_eq(info.skipped, 1);
    cr_assert_null(info.key);
    trestle_plan_get_op(p, 2, &info);
    cr_assert_eq(info.skipped, 1, "excluded before lookup, so never missing");
    trestle_plan_get_op(p, 1, &info);
    cr_assert_eq(info.skipped, 0);
    cr_assert_eq(p->num_extents, 1);
    trestle_plan_stats st;
    trestle_plan_get_stats(p, &st);
    cr_assert_eq(st.skipped, 2);
    cr_assert_eq(st.output_bytes, 16);
    trestle_plan_free(p);
    fk_free(&f);
}

Test(plan, allow_missing_skips_absent_keys)
{
    fake f = rnn_model();
    trestle_plan_options po;
    trestle_plan_options_init(&po);
    po.allow_missing = 1;
    trestle_op ops[] = { { .name = "gone" }, { .name = "exact/w", .dtype = TRESTLE_DT_FLOAT } };
    trestle_plan *p = tu_plan(&f.c, ops, 2, &po);
    fk_assert_invariants(p);
    trestle_plan_op_info info;
    trestle_plan_get_op(p, 0, &info);
    cr_assert_eq(info.skipped, 2);
    cr_assert_null(info.key);
    cr_assert_eq(info.bytes, 0);
    trestle_plan_get_op(p, 1, &info);
    cr_assert_eq(info.skipped, 0);
    cr_assert_eq(p->num_pieces, 1);
    trestle_plan_stats st;
    trestle_plan_get_stats(p, &st);
    cr_assert_eq(st.skipped, 1);
    trestle_plan_free(p);
    fk_free(&f);
}

/* ---- error reports ---- */

static fake names_model(void)
{
    fake f;
    fk_init(&f, 32);
    int64_t d[1] = { 2 };
    const char *keys[] = {
        "rnn/lstm_cell/bias", "rnn/lstm_cell/kernel", "dense/bias", "dense/kernel",
        "model/layer/.ATTRIBUTES/VARIABLE_VALUE", "conv1/w", "conv2/w", "conv3/w",
        "head/w1", "head/w2", "x/gru_cell/weights",
    };
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        fk_tensor(&f, keys[i], TRESTLE_DT_FLOAT, 1, d, 0, 8 * i);
    fk_finish(&f);
    return f;
}

Test(plan, reports_every_missing_key_sorted_with_suggestions)
{
    fake f = names_model();
    trestle_op ops[] = {
        { .name = "x/gru_cell/kernel" }, { .name = "totally/unrelated" },
        { .name = "rnn/lstm_cell/biases" }, { .name = "model/layer" }, { .name = "dense/bias" },
        { .name = "head/w" }, { .name = "dense/bais" }, { .name = "conv4/w" },
        { .name = "dense/bais", .dtype = TRESTLE_DT_INT8 },
    };
    trestle_error err = fk_plan_fails(&f, ops, 9, NULL, TRESTLE_E_KEY_NOT_FOUND);
    cr_assert_str_eq(err.message,
                     "Key conv4/w not found in checkpoint (did you mean conv1/w, conv2/w or "
                     "conv3/w?)\n"
                     "Key dense/bais not found in checkpoint (did you mean dense/bias?)\n"
                     "Key head/w not found in checkpoint (did you mean head/w1 or head/w2?)\n"
                     "Key model/layer not found in checkpoint (did you mean "
                     "model/layer/.ATTRIBUTES/VARIABLE_VALUE?)\n"
                     "Key rnn/lstm_cell/biases not found in checkpoint (did you mean "
                     "rnn/lstm_cell/bias?)\n"
                     "Key totally/unrelated not found in checkpoint\n"
                     "Key x/gru_cell/kernel not found in checkpoint (did you mean "
                     "x/gru_cell/weights?)");
    cr_assert_str_eq(err.key, "conv4/w");
    cr_assert_str_eq(err.path, "fake.index");
    fk_free(&f);
}

Test(plan, strips_the_tf2_suffix_in_suggestions)
{
    fake f = names_model();
    trestle_op ops[] = { { .name = "conv1/w/.ATTRIBUTES/VARIABLE_VALUE" } };
    trestle_error err = fk_plan_fails(&f, ops, 1, NULL, TRESTLE_E_KEY_NOT_FOUND);
    cr_assert_str_eq(err.message, "Key conv1/w/.ATTRIBUTES/VARIABLE_VALUE not found in "
                                  "checkpoint (did you mean conv1/w?)");
    fk_free(&f);
}

Test(plan, names_the_renamed_key_when_it_is_missing)
{
    fake f = names_model();
    const char *renames[] = { "g/=dense/" };
    trestle_plan_options po;
    trestle_plan_options_init(&po);
    po.renames = renames;
    po.num_renames = 1;
    trestle_op ops[] = { { .name = "g/bais" } };
    trestle_error err = fk_plan_fails(&f, ops, 1, &po, TRESTLE_E_KEY_NOT_FOUND);
    cr_assert_str_eq(err.message,
                     "Key dense/bais not found in checkpoint (did you mean dense/bias?)");
    fk_free(&f);
}

Test(plan, missing_keys_are_reported_before_dtype_mismatches)
{
    fake f = names_model();
    trestle_op ops[] = { { .name = "dense/bias", .dtype = TRESTLE_DT_INT64 }, { .name = "nope" } };
    trestle_error err = fk_plan_fails(&f, ops, 2, NULL, TRESTLE_E_KEY_NOT_FOUND);
    cr_assert_str_eq(err.message, "Key nope not found in checkpoint");
    fk_free(&f);
}

Test(plan, reports_every_dtype_mismatch_in_one_error)
{
    fake f;
    fk_init(&f, 8);
    int64_t d[1] = { 2 };
    fk_tensor(&f, "b_int", TRESTLE_DT_INT32, 1, d, 0, 0);
    fk_tensor(&f, "a_float", TRESTLE_DT_FLOAT, 1, d, 0, 8);
    fk_tensor(&f, "c_ok", TRESTLE_DT_BFLOAT16, 1, d, 0, 16);
    fk_finish(&f);
    trestle_op ops[] = {
        { .name = "b_int", .dtype = TRESTLE_DT_FLOAT },
        { .name = "c_ok", .dtype = TRESTLE_DT_BFLOAT16 },
        { .name = "a_float", .dtype = TRESTLE_DT_DOUBLE },
    };
    trestle_error err = fk_plan_fails(&f, ops, 3, NULL, TRESTLE_E_DTYPE_MISMATCH);
    cr_assert_str_eq(err.message,
                     "tensor_name = a_float; expected dtype double does not equal original dtype "
                     "float\n"
                     "tensor_name = b_int; expected dtype float does not equal original dtype "
                     "int32");
    cr_assert_str_eq(err.key, "a_float");
    fk_free(&f);
}

/* ---- scale ---- */

Test(plan, missing_key_report_stays_fast_and_bounded_on_100k_keys)
{
    enum { N = 100000, MISSING = 200 };
    fake f;
    fk_init(&f, N);
    int64_t d[1] = { 1 };
    for (int i = 0; i < N; i++) {
        char key[64];
        snprintf(key, sizeof key, "model/block_%03d/layer_%02d/dense/kernel", i / 100, i % 100);
        fk_tensor(&f, key, TRESTLE_DT_FLOAT, 1, d, 0, 4 * (uint64_t)i);
    }
    fk_finish(&f);
    trestle_op *ops = calloc(MISSING, sizeof *ops);
    char (*names)[64] = calloc(MISSING, sizeof *names);
    for (int i = 0; i < MISSING; i++) {
        snprintf(names[i], sizeof names[i], "model/block_%03d/layer_%02d/dense/kernal", i, i % 100);
        ops[i].name = names[i];
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    trestle_error err = fk_plan_fails(&f, ops, MISSING, NULL, TRESTLE_E_KEY_NOT_FOUND);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    cr_assert_lt(secs, 20.0, "took %.2f s", secs); /* generous: sanitizer builds are slow */
    const char *first = "Key model/block_000/layer_00/dense/kernal not found in checkpoint (did "
                        "you mean model/block_000/layer_00/dense/kernel?)\n";
    cr_assert(strncmp(err.message, first, strlen(first)) == 0, "%s", err.message);
    cr_assert(strstr(err.message, "more missing keys") != NULL, "%s", err.message);
    cr_assert_lt(strlen(err.message), TRESTLE_ERROR_MESSAGE_MAX);
    free(ops);
    free(names);
    fk_free(&f);
}
