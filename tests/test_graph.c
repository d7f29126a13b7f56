/*
 * test_graph.c - graph files to op lists (engine/graph/), on the real
 * TensorFlow graphs of ../shared/fixtures/tf-graphs: every graph's op list
 * names keys its checkpoint has, with the index's dtypes, and restores
 * exactly those. The traps of the real files each get a named test: restore
 * nodes inside a TF2 library function, two savers, warm-start restore nodes
 * that are not the saver's, RestoreSlice from 2016, full-cover slice specs
 * of single-partition variables, an index-only checkpoint.
 *
 * Writer-made graphs (what no real file holds) are in test_graph_made.c.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "trestle_graph.h"

typedef struct fixture {
    const char *graph;      /* under tf-graphs/ */
    const char *ckpt;       /* under tf-real/, or NULL when tf-real has none */
    size_t ops;             /* ops the saver restores (LISTING.md) */
    size_t nodes;           /* restore nodes it reaches */
    int index_only;         /* the checkpoint's data shard is absent */
} fixture;

/* LISTING.md, one row per graph file. */
static const fixture fixtures[] = {
    { "deepchem_qm7_graphconv/model-699.meta", "deepchem_qm7_graphconv/model-699", 291, 291, 0 },
    { "java_saved_model_using_python/saved_model.pb", "java_saved_model_using_python/variables", 2, 1, 0 },
    { "rust_regression_model/saved_model.pb", "rust_regression_model/variables", 2, 2, 0 },
    { "rust_regression_savedmodel/saved_model.pb", "rust_regression_savedmodel/variables", 7, 1, 0 },
    { "serving_bad_half_plus_two_STATEFILEONLY/export.meta", NULL, 2, 2, 0 },
    { "serving_saved_model_counter/saved_model.pb", "serving_saved_model_counter/variables", 1, 1, 0 },
    { "serving_saved_model_half_plus_three/saved_model.pb", "serving_saved_model_half_plus_three/variables", 3, 3, 0 },
    { "serving_saved_model_half_plus_two_cpu/saved_model.pb", "serving_saved_model_half_plus_two_cpu/variables", 5, 1, 0 },
    { "serving_saved_model_half_plus_two_gpu/saved_model.pb", "serving_saved_model_half_plus_two_gpu/variables", 3, 1, 0 },
    { "serving_saved_model_half_plus_two_mkl/saved_model.pb", "serving_saved_model_half_plus_two_mkl/variables", 9, 1, 0 },
    { "serving_saved_model_half_plus_two_tf2_cpu/saved_model.pb", "serving_saved_model_half_plus_two_tf2_cpu/variables", 4, 1, 0 },
    { "t5x_mtf_tiny_t5_bf16_INDEXONLY/model.ckpt-0.meta", "t5x_mtf_tiny_t5_bf16_INDEXONLY/model.ckpt-0", 105, 2, 1 },
    { "tf2onnx_regression_ckpt/model.meta", "tf2onnx_regression_ckpt/model", 2, 1, 0 },
    { "tf2onnx_regression_ckpt/saved_model.pb", "tf2onnx_regression_ckpt/model", 2, 1, 0 },
    { "tfdeploy_keras_1_13/saved_model.pb", "tfdeploy_keras_1_13/variables", 10, 1, 0 },
    { "tfdeploy_keras_multiple_tf2alpha0/saved_model.pb", "tfdeploy_keras_multiple_tf2alpha0/variables", 6, 1, 0 },
    { "tfdeploy_tensorflow_1_12/saved_model.pb", "tfdeploy_tensorflow_1_12/variables", 2, 1, 0 },
    { "tfdf_adult_rf_bool/saved_model.pb", "tfdf_adult_rf_bool/variables", 6, 1, 0 },
    { "tfjs_int64_multiply/saved_model.pb", "tfjs_int64_multiply/variables", 3, 1, 0 },
    { "tfjs_model_multi_output/saved_model.pb", "tfjs_model_multi_output/variables", 3, 2, 0 },
    { "tfjs_times_two_int/saved_model.pb", "tfjs_times_two_int/variables", 2, 2, 0 },
    { "tfkeras_lso_savedmodel_2shards/saved_model.pb", "tfkeras_lso_savedmodel_2shards/variables", 13, 2, 0 },
    { "tfx_bench_tfma_savedmodel/saved_model.pb", "tfx_bench_tfma_savedmodel/variables", 21, 1, 0 },
    { "tfx_estimator_ckpt/model.ckpt-1000.meta", "tfx_estimator_ckpt/model.ckpt-1000", 60, 1, 0 },
    { "tfx_estimator_ckpt/model.ckpt-1000.meta", "tfx_estimator_ckpt/model.ckpt-0", 60, 1, 0 },
    { "tfx_estimator_ckpt/model.ckpt-1000.meta", "tfx_estimator_ckpt/model.ckpt-999", 60, 1, 0 },
    { "tfx_estimator_ckpt_2shards_2019/model.ckpt-10000.meta", "tfx_estimator_ckpt_2shards_2019/model.ckpt-10000", 51, 2, 0 },
    { "tfx_keras_savedmodel/saved_model.pb", "tfx_keras_savedmodel/variables", 28, 1, 0 },
    { "tfx_transform_fn/saved_model.pb", "tfx_transform_fn/variables", 0, 0, 0 },
};
#define NFIXTURES (sizeof fixtures / sizeof fixtures[0])

static trestle_graph *open_graph(const char *rel)
{
    char path[1024];
    trestle_graph *g = NULL;
    trestle_error err;
    snprintf(path, sizeof path, "tf-graphs/%s", rel);
    int rc = trestle_graph_open(tu_fixture(path), NULL, &g, &err);
    cr_assert_eq(rc, TRESTLE_OK, "%s: %s", rel, err.message);
    return g;
}

static trestle_checkpoint *open_ckpt(const char *rel)
{
    char path[1024];
    snprintf(path, sizeof path, "tf-real/%s", rel);
    return tu_open(tu_fixture(path), NULL);
}

static const trestle_op *find_op(const trestle_graph *g, const char *name)
{
    const trestle_op *ops = trestle_graph_ops(g);
    for (size_t i = 0; i < trestle_graph_op_count(g); i++)
        if (strcmp(ops[i].name, name) == 0)
            return &ops[i];
    return NULL;
}

Test(graph, every_fixture_asks_for_keys_its_checkpoint_has_with_the_index_dtypes)
{
    for (size_t f = 0; f < NFIXTURES; f++) {
        const fixture *fx = &fixtures[f];
        trestle_graph *g = open_graph(fx->graph);
        trestle_graph_info gi;
        trestle_graph_get_info(g, &gi);
        cr_expect_eq(trestle_graph_op_count(g), fx->ops, "%s: %zu ops, LISTING.md says %zu",
                     fx->graph, trestle_graph_op_count(g), fx->ops);
        cr_expect_eq(gi.restore_nodes, fx->nodes, "%s: %zu restore nodes, expected %zu",
                     fx->graph, gi.restore_nodes, fx->nodes);
        if (!fx->ckpt) {
            trestle_graph_close(g);
            continue;
        }
        trestle_checkpoint *c = open_ckpt(fx->ckpt);
        const trestle_op *ops = trestle_graph_ops(g);
        for (size_t i = 0; i < trestle_graph_op_count(g); i++) {
            size_t at;
            trestle_tensor_info t;
            trestle_error err;
            cr_assert_eq(trestle_tensor_find(c, ops[i].name, &at, &err), TRESTLE_OK,
                         "%s: %s", fx->graph, err.message);
            cr_assert_eq(trestle_tensor_get_info(c, at, &t), TRESTLE_OK);
            cr_expect_eq(t.dtype, ops[i].dtype, "%s: %s is %s in the index, %s in the graph",
                         fx->graph, ops[i].name, trestle_dtype_name(t.dtype),
                         trestle_dtype_name(ops[i].dtype));
            /* A shape the graph declares is the stored one. */
            int rank;
            const int64_t *dims;
            cr_assert_eq(trestle_graph_op_shape(g, i, &rank, &dims), TRESTLE_OK);
            if (rank >= 0) {
                cr_expect_eq(rank, t.rank, "%s: %s rank", fx->graph, ops[i].name);
                if (rank == t.rank)
                    cr_expect_eq(memcmp(dims, t.dims, (size_t)rank * sizeof *dims), 0,
                                 "%s: %s dims", fx->graph, ops[i].name);
            }
        }
        trestle_close(c);
        trestle_graph_close(g);
    }
}

Test(graph, every_fixture_restores_its_op_list_and_nothing_else)
{
    for (size_t f = 0; f < NFIXTURES; f++) {
        const fixture *fx = &fixtures[f];
        if (!fx->ckpt)
            continue;
        trestle_graph *g = open_graph(fx->graph);
        trestle_checkpoint *c = open_ckpt(fx->ckpt);
        trestle_error err;
        size_t n = trestle_graph_op_count(g);
        if (n == 0) { /* nothing to restore: the planner's n == 0 means "everything" */
            trestle_close(c);
            trestle_graph_close(g);
            continue;
        }
        trestle_plan *p = tu_plan(c, trestle_graph_ops(g), n, NULL);
        cr_expect_eq(trestle_plan_op_count(p), n);
        trestle_restore_options o;
        trestle_restore_options_init(&o);
        o.reader = TRESTLE_READER_PREAD;
        trestle_stats st;
        int rc = trestle_restore(p, &o, &st, &err);
        if (fx->index_only) {
            /* The plan is fine; the read must fail on the absent shard. */
            cr_expect_neq(rc, TRESTLE_OK, "%s: restored from a missing shard", fx->graph);
        } else {
            cr_expect_eq(rc, TRESTLE_OK, "%s: %s", fx->graph, err.message);
            cr_expect_eq(st.tensors, n, "%s: restored %zu of %zu", fx->graph, st.tensors, n);
        }
        trestle_plan_free(p);
        trestle_close(c);
        trestle_graph_close(g);
    }
}

Test(graph, tf2_saved_model_restore_nodes_are_found_inside_the_library_function)
{
    trestle_graph *g = open_graph("serving_saved_model_half_plus_two_tf2_cpu/saved_model.pb");
    trestle_graph_info gi;
    trestle_graph_get_info(g, &gi);
    cr_expect_str_eq(gi.restore_op, "StatefulPartitionedCall_7");
    cr_expect_eq(gi.kind, TRESTLE_GRAPH_SAVED_MODEL);
    cr_expect(gi.object_based);
    cr_expect_str_eq(gi.tensorflow_version, "2.14.0");
    cr_expect_str_eq(gi.tags, "serve");
    const trestle_op *ops = trestle_graph_ops(g);
    cr_assert_eq(trestle_graph_op_count(g), 4);
    cr_expect_str_eq(ops[0].name, "a/.ATTRIBUTES/VARIABLE_VALUE");
    cr_expect_eq(ops[0].dtype, TRESTLE_DT_FLOAT);
    cr_expect_str_eq(ops[3].name, "_CHECKPOINTABLE_OBJECT_GRAPH");
    cr_expect_eq(ops[3].dtype, TRESTLE_DT_STRING);
    trestle_graph_close(g);
}

Test(graph, follows_the_saver_def_when_a_saved_model_has_two_savers)
{
    trestle_graph *g = open_graph("tf2onnx_regression_ckpt/saved_model.pb");
    trestle_graph_info gi;
    trestle_graph_get_info(g, &gi);
    cr_expect_str_eq(gi.restore_op, "save_1/restore_all");
    cr_expect_eq(gi.restore_nodes, 1);
    cr_expect_eq(trestle_graph_op_count(g), 2);
    cr_expect(find_op(g, "W") && find_op(g, "b"));
    trestle_graph_close(g);
}

Test(graph, ignores_warm_start_restore_nodes_that_are_not_the_savers)
{
    /* 21 RestoreV2 nodes in the file; 20 are checkpoint_initializer_N. */
    trestle_graph *g = open_graph("tfx_estimator_ckpt/model.ckpt-1000.meta");
    trestle_graph_info gi;
    trestle_graph_get_info(g, &gi);
    cr_expect_eq(gi.restore_nodes, 1);
    cr_expect_eq(trestle_graph_op_count(g), 60);
    cr_expect_str_eq(gi.checkpoint_prefix + strlen(gi.checkpoint_prefix) -
                         strlen("tfx_estimator_ckpt/model.ckpt-1000"),
                     "tfx_estimator_ckpt/model.ckpt-1000");
    trestle_graph_close(g);
}

Test(graph, reads_2016_restore_slice_nodes)
{
    trestle_graph *g = open_graph("serving_bad_half_plus_two_STATEFILEONLY/export.meta");
    const trestle_op *ops = trestle_graph_ops(g);
    cr_assert_eq(trestle_graph_op_count(g), 2);
    cr_expect_str_eq(ops[0].name, "Variable");
    cr_expect_str_eq(ops[1].name, "Variable_1");
    cr_expect_str_eq(ops[0].shape_and_slices, "");
    cr_expect_eq(ops[0].dtype, TRESTLE_DT_FLOAT);
    trestle_graph_close(g);
}

Test(graph, single_partition_variables_ask_for_full_cover_slices)
{
    trestle_graph *g = open_graph("tfx_estimator_ckpt_2shards_2019/model.ckpt-10000.meta");
    const trestle_op *ops = trestle_graph_ops(g);
    cr_assert_eq(trestle_graph_op_count(g), 51);
    cr_expect_str_eq(ops[0].name, "global_step"); /* shard 0's node comes first */
    cr_expect_eq(ops[0].dtype, TRESTLE_DT_INT64);
    const trestle_op *k = find_op(g, "dnn/hiddenlayer_0/kernel");
    cr_assert(k);
    cr_expect_str_eq(k->shape_and_slices, "3 100 0,3:0,100");
    trestle_graph_close(g);
}

Test(graph, tf1_graphs_declare_every_restored_variables_shape)
{
    /* Resource variables (AssignVariableOp into VarHandleOp) and ref
     * variables (Assign into VariableV2) alike; TF2 restore functions
     * assign to arguments, so their shapes stay unknown. */
    static const char *const tf1[] = {
        "tfdeploy_keras_1_13/saved_model.pb",
        "deepchem_qm7_graphconv/model-699.meta",
        "tfx_estimator_ckpt_2shards_2019/model.ckpt-10000.meta",
        "serving_bad_half_plus_two_STATEFILEONLY/export.meta",
    };
    for (size_t f = 0; f < sizeof tf1 / sizeof tf1[0]; f++) {
        trestle_graph *g = open_graph(tf1[f]);
        for (size_t i = 0; i < trestle_graph_op_count(g); i++) {
            int rank;
            const int64_t *dims;
            cr_assert_eq(trestle_graph_op_shape(g, i, &rank, &dims), TRESTLE_OK);
            cr_expect_geq(rank, 0, "%s: op %zu has no shape", tf1[f], i);
            /* The array for plan options says the same. */
            const trestle_shape *all = trestle_graph_op_shapes(g);
            cr_assert_not_null(all);
            cr_expect(all[i].rank == rank && all[i].dims == dims, "%s: op %zu", tf1[f], i);
        }
        trestle_graph_close(g);
    }
    trestle_graph *g = open_graph("tfdeploy_keras_1_13/saved_model.pb");
    const trestle_op *k = find_op(g, "dense/kernel");
    int rank;
    const int64_t *dims;
    cr_assert(k);
    cr_assert_eq(trestle_graph_op_shape(g, (size_t)(k - trestle_graph_ops(g)), &rank, &dims), 0);
    cr_expect(rank == 2 && dims[0] == 784 && dims[1] == 10);
    cr_expect_eq(trestle_graph_op_shape(g, 99, &rank, &dims), TRESTLE_E_INVALID_ARG);
    trestle_graph_close(g);
    g = open_graph("tfjs_int64_multiply/saved_model.pb");
    cr_assert_eq(trestle_graph_op_shape(g, 0, &rank, &dims), TRESTLE_OK);
    cr_expect_eq(rank, -1);
    cr_expect_null(dims);
    cr_expect_null(trestle_graph_op_shapes(g)); /* no op's shape is known */
    trestle_graph_close(g);
    cr_expect_null(trestle_graph_op_shapes(NULL));
}

Test(graph, bfloat16_dtypes_come_from_the_dtypes_attr)
{
    trestle_graph *g = open_graph("t5x_mtf_tiny_t5_bf16_INDEXONLY/model.ckpt-0.meta");
    const trestle_op *k = find_op(g, "decoder/block_000/layer_000/SelfAttention/k");
    cr_assert(k);
    cr_expect_eq(k->dtype, TRESTLE_DT_BFLOAT16);
    trestle_graph_close(g);
}

Test(graph, a_saved_model_directory_and_a_checkpoint_prefix_open_their_graph)
{
    trestle_graph *g = NULL;
    trestle_error err;
    trestle_graph_info gi;
    cr_assert_eq(trestle_graph_open(tu_fixture("tf-graphs/tfjs_int64_multiply"), NULL, &g, &err),
                 TRESTLE_OK, "%s", err.message);
    trestle_graph_get_info(g, &gi);
    cr_expect(strstr(gi.path, "tfjs_int64_multiply/saved_model.pb"));
    cr_expect(strstr(gi.checkpoint_prefix, "tfjs_int64_multiply/variables/variables"));
    cr_expect_eq(trestle_graph_op_count(g), 3);
    trestle_graph_close(g);

    /* A prefix P finds P.meta. */
    cr_assert_eq(trestle_graph_open(tu_fixture("tf-graphs/tf2onnx_regression_ckpt/model"), NULL,
                                    &g, &err), TRESTLE_OK, "%s", err.message);
    trestle_graph_get_info(g, &gi);
    cr_expect_eq(gi.kind, TRESTLE_GRAPH_META);
    cr_expect_eq(trestle_graph_op_count(g), 2);
    trestle_graph_close(g);
}

Test(graph, a_graph_without_a_saver_restores_nothing)
{
    trestle_graph *g = open_graph("tfx_transform_fn/saved_model.pb");
    trestle_graph_info gi;
    trestle_graph_get_info(g, &gi);
    cr_expect_str_eq(gi.restore_op, "");
    cr_expect_eq(trestle_graph_op_count(g), 0);
    cr_expect_null(trestle_graph_ops(g));
    trestle_graph_close(g);
}

/* ---- the CLI: trestle ops --graph, trestle restore --graph ---- */

Test(graph_cli, ops_prints_the_savers_op_list_as_an_ops_file)
{
    const char *g = tu_fixture("tf-graphs/tfjs_model_multi_output");
    tu_cli_result r = tu_cli("ops -q --graph '%s'", g);
    cr_assert_eq(r.rc, 0, "%s", r.err);
    cr_expect_str_eq(r.out, "v/.ATTRIBUTES/VARIABLE_VALUE\t\tdtype=float\n"
                            "two/.ATTRIBUTES/VARIABLE_VALUE\t\tdtype=int32\n"
                            "_CHECKPOINTABLE_OBJECT_GRAPH\t\tdtype=string\n");
    tu_cli_free(&r);

    r = tu_cli("ops --graph '%s'", tu_fixture("tf-graphs/tfx_estimator_ckpt_2shards_2019/"
                                              "model.ckpt-10000.meta"));
    cr_assert_eq(r.rc, 0, "%s", r.err);
    cr_expect(strstr(r.out, "# restore op: save/restore_all, 2 restore nodes, 51 ops\n"), "%s",
              r.out);
    cr_expect(strstr(r.out, "\nglobal_step\t\tdtype=int64\n"), "%s", r.out);
    cr_expect(strstr(r.out, "\ndnn/hiddenlayer_0/kernel\t3 100 0,3:0,100\tdtype=float\n"), "%s",
              r.out);
    tu_cli_free(&r);
}

Test(graph_cli, restore_by_graph_equals_restore_by_its_printed_ops_file)
{
    const char *g = tu_fixture("tf-graphs/tfx_estimator_ckpt_2shards_2019/model.ckpt-10000.meta");
    const char *ckpt = tu_fixture("tf-real/tfx_estimator_ckpt_2shards_2019/model.ckpt-10000");
    char *dir = tu_mkdtemp(), *ops;
    cr_assert(asprintf(&ops, "%s/ops.txt", dir) > 0);
    tu_cli_result r = tu_cli("ops --graph '%s' > '%s'", g, ops);
    cr_assert_eq(r.rc, 0, "%s", r.err);
    tu_cli_free(&r);
    tu_cli_result a = tu_cli("restore -l -q '%s' --graph '%s'", ckpt, g);
    tu_cli_result b = tu_cli("restore -l -q '%s' --ops '%s'", ckpt, ops);
    cr_assert_eq(a.rc, 0, "%s", a.err);
    cr_assert_eq(b.rc, 0, "%s", b.err);
    cr_expect_str_eq(a.out, b.out);
    size_t rows = 0;
    for (const char *p = a.out; (p = strchr(p, '\n')); p++)
        rows++;
    cr_expect_eq(rows, 1 + 51, "%s", a.out); /* header + one row per op */
    tu_cli_free(&a);
    tu_cli_free(&b);
    free(ops);
    tu_rmtree(dir);
    free(dir);
}

Test(graph_cli, a_graph_given_as_the_checkpoint_gets_a_hint_naming_the_prefix)
{
    const char *meta = tu_fixture("tf-graphs/tf2onnx_regression_ckpt/model.meta");
    tu_cli_result r = tu_cli("restore '%s'", meta);
    cr_expect_eq(r.rc, 1);
    char want[2048];
    snprintf(want, sizeof want, "is a graph, not a checkpoint; its checkpoint is the prefix %.*s:",
             (int)(strlen(meta) - 5), meta);
    cr_expect(strstr(r.err, want), "%s", r.err);
    tu_cli_free(&r);

    const char *pb = tu_fixture("tf-graphs/tfjs_int64_multiply/saved_model.pb");
    r = tu_cli("inspect '%s'", pb);
    cr_expect_eq(r.rc, 1);
    snprintf(want, sizeof want, "is a SavedModel graph, not a checkpoint; its checkpoint is "
             "usually %.*svariables/variables", (int)(strlen(pb) - 14), pb);
    cr_expect(strstr(r.err, want), "%s", r.err);
    tu_cli_free(&r);
}

Test(graph_cli, bad_graph_command_lines_and_files)
{
    const char *g = tu_fixture("tf-graphs/tfjs_model_multi_output");
    const char *ckpt = tu_fixture("tf-real/tfjs_model_multi_output/variables");
    tu_cli_result r = tu_cli("restore '%s' --graph '%s' --all", ckpt, g);
    cr_expect_eq(r.rc, 2);
    cr_expect(strstr(r.err, "--graph gives the op list"), "%s", r.err);
    tu_cli_free(&r);
    r = tu_cli("ops");
    cr_expect_eq(r.rc, 2);
    tu_cli_free(&r);
    r = tu_cli("ops --graph '%s' '%s'", g, ckpt);
    cr_expect_eq(r.rc, 2);
    tu_cli_free(&r);
    /* A checkpoint's index is no graph: a clear error, exit 1. */
    r = tu_cli("ops --graph '%s.index'", ckpt);
    cr_expect_eq(r.rc, 1);
    cr_expect(tu_starts_with(r.err, "trestle: "), "%s", r.err);
    cr_expect(strstr(r.err, "byte offset"), "%s", r.err);
    tu_cli_free(&r);
    r = tu_cli("restore '%s' --graph '%s'", tu_fixture("tf-real/tfx_transform_fn/variables"),
               tu_fixture("tf-graphs/tfx_transform_fn"));
    cr_expect_eq(r.rc, 4);
    cr_expect(strstr(r.err, "/tfx_transform_fn: the graph restores nothing: it has no saver (no "
                            "SaverDef) and no variables in its collections (meta graph tagged "
                            "transform)\n"),
              "%s", r.err);
    tu_cli_free(&r);
}

Test(graph_cli, ops_of_a_checkpoint_lists_every_tensor_with_its_dtype)
{
    tu_cli_result r = tu_cli("ops -q '%s'", tu_fixture("tf-real/tfjs_int64_multiply/variables"));
    cr_assert_eq(r.rc, 0, "%s", r.err);
    cr_expect(strstr(r.out, "v1/.ATTRIBUTES/VARIABLE_VALUE\t\tdtype=int64\n"), "%s", r.out);
    tu_cli_free(&r);
}

Test(graph_cli, diff_takes_a_graph_on_either_side)
{
    const char *g = tu_fixture("tf-graphs/tfjs_model_multi_output");
    const char *ckpt = tu_fixture("tf-real/tfjs_model_multi_output/variables");
    tu_cli_result r = tu_cli("diff '%s' '%s'", g, ckpt);
    cr_expect_eq(r.rc, 0, "%s%s", r.out, r.err);
    cr_expect_str_eq(r.out, "identical: all 3 ops found in A\n");
    tu_cli_free(&r);
    r = tu_cli("diff '%s' '%s'", ckpt, g);
    cr_expect_eq(r.rc, 0, "%s%s", r.out, r.err);
    tu_cli_free(&r);
    /* Another model's checkpoint: every op the graph restores is missing. */
    r = tu_cli("diff '%s' '%s'", tu_fixture("tf-real/tfjs_times_two_int/variables"),
               tu_fixture("tf-graphs/tfjs_int64_multiply/saved_model.pb"));
    cr_expect_eq(r.rc, 1, "%s%s", r.out, r.err);
    cr_expect(strstr(r.out, "missing from A: v1/.ATTRIBUTES/VARIABLE_VALUE\n"), "%s", r.out);
    tu_cli_free(&r);
}

Test(graph_cli, tag_picks_the_meta_graph_on_restore_check_and_diff)
{
    /* rust_regression_model holds one meta graph tagged train,serve;
     * tfx_bench_tfma_savedmodel one tagged eval. */
    const char *rg = tu_fixture("tf-graphs/rust_regression_model");
    const char *rc = tu_fixture("tf-real/rust_regression_model/variables");
    const char *eg = tu_fixture("tf-graphs/tfx_bench_tfma_savedmodel");
    const char *ec = tu_fixture("tf-real/tfx_bench_tfma_savedmodel/variables");
    char want[1024];

    tu_cli_result r = tu_cli("restore -q '%s' --graph '%s' --tag train", rc, rg);
    cr_expect_eq(r.rc, 0, "%s", r.err);
    tu_cli_free(&r);
    r = tu_cli("restore -q '%s' --graph '%s' --tag eval", rc, rg);
    cr_expect_eq(r.rc, 1);
    snprintf(want, sizeof want, "trestle: %s/saved_model.pb: no meta graph is tagged 'eval' (its "
             "meta graphs are tagged: [train,serve])\n", rg);
    cr_expect_str_eq(r.err, want);
    tu_cli_free(&r);

    r = tu_cli("check --tag eval '%s' '%s'", eg, ec);
    cr_expect_eq(r.rc, 0, "%s%s", r.out, r.err);
    cr_expect(strstr(r.out, ": 21 ops, 21 ok, 0 missing"), "%s", r.out);
    tu_cli_free(&r);
    r = tu_cli("check --tag serve '%s' '%s'", eg, ec);
    cr_expect_eq(r.rc, 1);
    snprintf(want, sizeof want, "trestle: %s/saved_model.pb: no meta graph is tagged 'serve' (its "
             "meta graphs are tagged: [eval])\n", eg);
    cr_expect_str_eq(r.err, want);
    tu_cli_free(&r);

    r = tu_cli("diff --tag eval '%s' '%s'", ec, eg);
    cr_expect_eq(r.rc, 0, "%s%s", r.out, r.err);
    cr_expect_str_eq(r.out, "identical: all 21 ops found in A\n");
    tu_cli_free(&r);
    r = tu_cli("diff --tag train '%s' '%s'", eg, ec);
    cr_expect_eq(r.rc, 2);
    cr_expect(strstr(r.err, "no meta graph is tagged 'train' (its meta graphs are tagged: "
                            "[eval])\n"), "%s", r.err);
    tu_cli_free(&r);
}

Test(graph_cli, tag_without_a_graph_is_a_usage_error)
{
    const char *ckpt = tu_fixture("tf-real/rust_regression_model/variables");
    tu_cli_result r = tu_cli("restore -q '%s' --tag serve", ckpt);
    cr_expect_eq(r.rc, 2);
    cr_expect(strstr(r.err, "--tag picks the meta graph of --graph; it needs --graph"), "%s",
              r.err);
    tu_cli_free(&r);
    r = tu_cli("diff --tag serve '%s' '%s'", ckpt, ckpt);
    cr_expect_eq(r.rc, 2);
    cr_expect(strstr(r.err, "--tag picks a SavedModel's meta graph; it needs a graph"), "%s",
              r.err);
    tu_cli_free(&r);
    char *dir = tu_mkdtemp(), *ops;
    cr_assert(asprintf(&ops, "%s/ops.txt", dir) > 0);
    cr_assert_eq(tu_write_file(ops, "w\t\tdtype=float\n", 15), 0);
    r = tu_cli("check --tag serve '%s' '%s'", ops, ckpt);
    cr_expect_eq(r.rc, 2);
    cr_expect(strstr(r.err, "--tag picks a SavedModel's meta graph, but"), "%s", r.err);
    tu_cli_free(&r);
    free(ops);
    tu_rmtree(dir);
    free(dir);
}
