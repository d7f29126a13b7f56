/*
 * test_graph_shapes.c - the shapes a TF1 graph declares for its variables
 * against the checkpoint's (issue 22): TensorFlow's restore fails at the
 * Assign when they differ, so the planner refuses such a restore when it is
 * given the declared shapes (plan option op_shapes, which `restore
 * --graph`, `check` and `diff` pass), `check` exits 1 and prints both
 * shapes, and `diff GRAPH CKPT` reports it. Graphs are written with
 * tests/graphmake.c, checkpoints with trestle's own writer.
 *
 * What shapes can and cannot catch: two variables of different shapes
 * swapped by name (w1 [4,8] and w2 [8,4], the same size) are caught; two of
 * the same dtype and shape swapped are not, by shapes or by anything short
 * of the values, and `check` says the restore succeeds.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graphmake.h"
#include "testutil.h"
#include "trestle_graph.h"

/* A LeNet-like first layer: conv weights [5,5,C,6] (C input channels) and
 * their bias [6]. The two variants share every name. */
static void lenet_graph(const char *path, int64_t channels)
{
    const gm_var vars[] = {
        { "Variable", TRESTLE_DT_FLOAT, 4, { 5, 5, channels, 6 } },
        { "Variable_1", TRESTLE_DT_FLOAT, 1, { 6 } },
    };
    gm_write_saver_meta(path, vars, 2);
}

static void lenet_ckpt(const char *prefix, int64_t channels)
{
    static float zeros[5 * 5 * 3 * 6];
    int64_t w[] = { 5, 5, channels, 6 }, b[] = { 6 };
    trestle_writer *wr;
    trestle_error err;
    cr_assert_eq(trestle_writer_create(prefix, NULL, &wr, &err), TRESTLE_OK, "%s", err.message);
    cr_assert_eq(trestle_writer_add(wr, "Variable", TRESTLE_DT_FLOAT, 4, w, zeros,
                                    (uint64_t)(150 * channels) * 4, 0, &err), TRESTLE_OK);
    cr_assert_eq(trestle_writer_add(wr, "Variable_1", TRESTLE_DT_FLOAT, 1, b, zeros, 24, 0, &err),
                 TRESTLE_OK);
    cr_assert_eq(trestle_writer_finish(wr, &err), TRESTLE_OK);
    trestle_writer_free(wr);
}

#define LENET_MISMATCH                                                                           \
    "tensor_name = Variable; shape in checkpoint [5,5,3,6] does not match the declared shape "  \
    "[5,5,1,6] of its variable (Assign requires shapes of both tensors to match)"

Test(graph_shapes, the_planner_refuses_a_tensor_whose_shape_is_not_the_declared_one)
{
    char *dir = tu_mkdtemp(), *meta = path_in(dir, "gray.meta"), *ckpt = path_in(dir, "rgb");
    lenet_graph(meta, 1);
    lenet_ckpt(ckpt, 3);
    trestle_graph *g = open_ok(meta, NULL);
    trestle_checkpoint *c = tu_open(ckpt, NULL);
    trestle_plan_options po;
    trestle_plan *p = (trestle_plan *)1;
    trestle_error err;
    trestle_plan_options_init(&po);
    po.op_shapes = trestle_graph_op_shapes(g);
    cr_assert_not_null(po.op_shapes);
    cr_expect_eq(trestle_plan_create(c, trestle_graph_ops(g), 2, &po, &p, &err),
                 TRESTLE_E_SHAPE_MISMATCH);
    cr_expect_null(p);
    cr_expect_str_eq(err.message, LENET_MISMATCH);
    cr_expect_str_eq(err.key, "Variable");
    /* Without the declared shapes the planner cannot know. */
    trestle_plan_free(tu_plan(c, trestle_graph_ops(g), 2, NULL));
    /* The shapes of the right variant pass. */
    trestle_close(c);
    char *gray = path_in(dir, "gray");
    lenet_ckpt(gray, 1);
    c = tu_open(gray, NULL);
    trestle_plan_free(tu_plan(c, trestle_graph_ops(g), 2, &po));
    trestle_close(c);
    trestle_graph_close(g);
    free(gray);
    free(meta);
    free(ckpt);
    tu_rmtree(dir);
    free(dir);
}

Test(graph_shapes, check_restore_and_diff_refuse_the_other_lenet_variant)
{
    char *dir = tu_mkdtemp(), *meta = path_in(dir, "gray.meta"), *ckpt = path_in(dir, "rgb");
    lenet_graph(meta, 1);
    lenet_ckpt(ckpt, 3);

    tu_cli_result r = tu_cli("check '%s' '%s'", meta, ckpt);
    cr_expect_eq(r.rc, 1, "%s%s", r.out, r.err);
    cr_expect(strstr(r.out, ": 2 ops, 1 ok, 0 missing, 1 mismatched, 0 unused keys\n"), "%s", r.out);
    cr_expect(strstr(r.out, "shape mismatch: Variable: the graph declares [5,5,1,6], the "
                            "checkpoint has [5,5,3,6]\n"), "%s", r.out);
    cr_expect(strstr(r.out, "verdict: the restore fails (0 ambiguous, 0 with no candidate, 1 "
                            "mismatched)\n"), "%s", r.out);
    cr_expect(!strstr(r.out, "''"), "%s", r.out);
    tu_cli_free(&r);

    r = tu_cli("restore -q '%s' --graph '%s'", ckpt, meta);
    cr_expect_eq(r.rc, 1, "%s", r.err);
    cr_expect_str_eq(r.err, "trestle: " LENET_MISMATCH "\n");
    tu_cli_free(&r);

    r = tu_cli("diff '%s' '%s'", meta, ckpt);
    cr_expect_eq(r.rc, 1, "%s%s", r.out, r.err);
    cr_expect_str_eq(r.err, "trestle: " LENET_MISMATCH "\n");
    tu_cli_free(&r);

    /* --json says which kind of mismatch. */
    r = tu_cli("check --json '%s' '%s'", meta, ckpt);
    cr_expect_eq(r.rc, 1);
    cr_expect(strstr(r.out, "{\"name\": \"Variable\", \"what\": \"shape\", \"want\": [5,5,1,6], "
                            "\"have\": [5,5,3,6]}"), "%s", r.out);
    tu_cli_free(&r);

    /* The graph of the checkpoint's own variant: all three agree. */
    char *rgb_meta = path_in(dir, "rgb.meta");
    lenet_graph(rgb_meta, 3);
    r = tu_cli("check '%s' '%s'", rgb_meta, ckpt);
    cr_expect_eq(r.rc, 0, "%s%s", r.out, r.err);
    cr_expect(strstr(r.out, "verdict: the restore succeeds as is\n"), "%s", r.out);
    tu_cli_free(&r);
    r = tu_cli("restore -q '%s' --graph '%s'", ckpt, rgb_meta);
    cr_expect_eq(r.rc, 0, "%s", r.err);
    tu_cli_free(&r);
    r = tu_cli("diff '%s' '%s'", rgb_meta, ckpt);
    cr_expect_eq(r.rc, 0, "%s%s", r.out, r.err);
    cr_expect_str_eq(r.out, "identical: all 2 ops found in A\n");
    tu_cli_free(&r);
    free(rgb_meta);
    free(meta);
    free(ckpt);
    tu_rmtree(dir);
    free(dir);
}

/* A checkpoint of w1 and w2 (32 floats each) written with their names
 * swapped: key w1 holds w2's values and shape, and the reverse. */
static void swapped_ckpt(const char *prefix, const int64_t *d1, const int64_t *d2)
{
    float v1[32], v2[32];
    trestle_writer *wr;
    trestle_error err;
    for (int i = 0; i < 32; i++) {
        v1[i] = (float)i;
        v2[i] = (float)(100 + i);
    }
    cr_assert_eq(trestle_writer_create(prefix, NULL, &wr, &err), TRESTLE_OK);
    cr_assert_eq(trestle_writer_add(wr, "w1", TRESTLE_DT_FLOAT, 2, d2, v2, sizeof v2, 0, &err), 0);
    cr_assert_eq(trestle_writer_add(wr, "w2", TRESTLE_DT_FLOAT, 2, d1, v1, sizeof v1, 0, &err), 0);
    cr_assert_eq(trestle_writer_finish(wr, &err), TRESTLE_OK);
    trestle_writer_free(wr);
}

Test(graph_shapes, variables_swapped_by_name_are_caught_when_their_shapes_differ)
{
    char *dir = tu_mkdtemp(), *meta = path_in(dir, "m.meta"), *ckpt = path_in(dir, "swapped");
    const gm_var vars[] = { { "w1", TRESTLE_DT_FLOAT, 2, { 4, 8 } },
                            { "w2", TRESTLE_DT_FLOAT, 2, { 8, 4 } } };
    gm_write_saver_meta(meta, vars, 2);
    swapped_ckpt(ckpt, vars[0].dims, vars[1].dims);
    tu_cli_result r = tu_cli("check '%s' '%s'", meta, ckpt);
    cr_expect_eq(r.rc, 1, "%s%s", r.out, r.err);
    cr_expect(strstr(r.out, "shape mismatch: w1: the graph declares [4,8], the checkpoint has "
                            "[8,4]\nshape mismatch: w2: the graph declares [8,4], the checkpoint "
                            "has [4,8]\n"), "%s", r.out);
    tu_cli_free(&r);
    r = tu_cli("restore -q '%s' --graph '%s'", ckpt, meta);
    cr_expect_eq(r.rc, 1);
    cr_expect_str_eq(r.err, "trestle: tensor_name = w1; shape in checkpoint [8,4] does not match "
                            "the declared shape [4,8] of its variable (Assign requires shapes of "
                            "both tensors to match)\ntensor_name = w2; shape in checkpoint [4,8] "
                            "does not match the declared shape [8,4] of its variable (Assign "
                            "requires shapes of both tensors to match)\n");
    tu_cli_free(&r);
    free(meta);
    free(ckpt);
    tu_rmtree(dir);
    free(dir);
}

Test(graph_shapes, variables_of_one_shape_swapped_by_name_are_not_detectable_by_shapes)
{
    /* Names, dtypes and shapes all agree: only the values differ, and TF's
     * own restore would load them too. check says so, and the README's
     * "What is checked" says it cannot know. */
    char *dir = tu_mkdtemp(), *meta = path_in(dir, "m.meta"), *ckpt = path_in(dir, "swapped");
    const gm_var vars[] = { { "w1", TRESTLE_DT_FLOAT, 2, { 4, 8 } },
                            { "w2", TRESTLE_DT_FLOAT, 2, { 4, 8 } } };
    gm_write_saver_meta(meta, vars, 2);
    swapped_ckpt(ckpt, vars[0].dims, vars[1].dims);
    tu_cli_result r = tu_cli("check '%s' '%s'", meta, ckpt);
    cr_expect_eq(r.rc, 0, "%s%s", r.out, r.err);
    cr_expect(strstr(r.out, "verdict: the restore succeeds as is\n"), "%s", r.out);
    tu_cli_free(&r);
    free(meta);
    free(ckpt);
    tu_rmtree(dir);
    free(dir);
}

Test(graph_shapes, a_sliced_ops_declared_shape_is_its_slices)
{
    /* A partition variable declares the slice's shape: [2,6] of a [4,6]
     * tensor. A declared [3,6] cannot take it; [2,6] can. */
    static const tu_tensor t[] = { { "w", TRESTLE_DT_FLOAT, 2, { 4, 6 } } };
    char *dir;
    trestle_checkpoint *c = tu_zero_checkpoint(&dir, t, 1);
    trestle_error err;
    trestle_op op = { .name = "w", .shape_and_slices = "4 6 2,2:-" };
    trestle_shape wrong = { 2, (const int64_t[]){ 3, 6 } }, right = { 2, (const int64_t[]){ 2, 6 } };
    trestle_plan_options po;
    trestle_plan *p = NULL;
    trestle_plan_options_init(&po);
    po.op_shapes = &wrong;
    cr_expect_eq(trestle_plan_create(c, &op, 1, &po, &p, &err), TRESTLE_E_SHAPE_MISMATCH);
    cr_expect_str_eq(err.message, "tensor_name = w; shape of slice 2,2:- [2,6] does not match the "
                                  "declared shape [3,6] of its variable (Assign requires shapes of "
                                  "both tensors to match)");
    po.op_shapes = &right;
    trestle_plan_free(tu_plan(c, &op, 1, &po));
    /* An unknown declared shape (rank -1) checks nothing. */
    trestle_shape unknown = { -1, NULL };
    po.op_shapes = &unknown;
    trestle_plan_free(tu_plan(c, &op, 1, &po));
    trestle_close(c);
    tu_rmtree(dir);
    free(dir);
}

Test(graph_shapes, a_renamed_op_is_named_beside_its_key)
{
    static const tu_tensor t[] = { { "model/b", TRESTLE_DT_FLOAT, 1, { 6 } } };
    char *dir;
    trestle_checkpoint *c = tu_zero_checkpoint(&dir, t, 1);
    trestle_error err;
    static const char *const renames[] = { "b=model/b" };
    trestle_op op = { .name = "b" };
    trestle_shape scalar = { 0, NULL };
    trestle_plan_options po;
    trestle_plan *p = NULL;
    trestle_plan_options_init(&po);
    po.renames = renames;
    po.num_renames = 1;
    po.op_shapes = &scalar;
    cr_expect_eq(trestle_plan_create(c, &op, 1, &po, &p, &err), TRESTLE_E_SHAPE_MISMATCH);
    cr_expect_str_eq(err.message, "tensor_name = model/b (op b); shape in checkpoint [6] does not "
                                  "match the declared shape [] of its variable (Assign requires "
                                  "shapes of both tensors to match)");
    trestle_close(c);
    tu_rmtree(dir);
    free(dir);
}
