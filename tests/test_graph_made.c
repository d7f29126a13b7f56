/*
 * test_graph_made.c - graph files written here with protobuf-c, for what no
 * real graph in the fixtures has: sharded savers with several RestoreV2
 * nodes, partitioned variables restored slice by slice, V1 RestoreSlice
 * and Restore nodes, TF2-style restore functions, SavedModels with several
 * meta graphs, meta graphs without a saver (their variable collections, or
 * nothing at all); and the hostile ones: truncated, cyclic, mislabelled,
 * oversized and nonsensical graphs must give clear errors (file, node,
 * byte offset), never a crash or a hang.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cursor.h"
#include "graph.pb-c.h"
#include "graphmake.h"
#include "testutil.h"
#include "trestle_graph.h"

/* ---- savers TensorFlow writes ---- */

Test(graph_made, a_sharded_saver_restores_every_shard_and_not_a_warm_start)
{
    char *dir = tu_mkdtemp(), *meta = path_in(dir, "model.meta"), *prefix = path_in(dir, "model");
    static const char *const n0[] = { "a", "b" }, *const s0[] = { "", "" };
    static const char *const n1[] = { "c" }, *const s1[] = { "" };
    static const char *const nd[] = { "decoy" };
    static const int t0[] = { TRESTLE_DT_FLOAT, TRESTLE_DT_INT64 }, t1[] = { TRESTLE_DT_FLOAT };
    nspec n[13] = {
        { .name = "save/Const", .op = "Const", .nstrs = 1, .strs = { "model" }, .dim = -1 },
    };
    fill_v2(&n[1], "save/RestoreV2", 2, n0, s0, t0);
    fill_v2(&n[4], "save/RestoreV2_1", 1, n1, s1, t1);
    fill_v2(&n[7], "checkpoint_initializer", 1, nd, s1, t1); /* warm start: not the saver's */
    n[10] = (nspec){ .name = "save/restore_shard", .op = "NoOp",
                     .in = { "^save/Assign", "^save/Assign_1" } };
    n[11] = (nspec){ .name = "save/Assign", .op = "Assign", .in = { "a", "save/RestoreV2" } };
    n[12] = (nspec){ .name = "save/restore_all", .op = "NoOp",
                     .in = { "^save/restore_shard", "^save/restore_shard_1" } };
    nspec more[3] = {
        { .name = "save/Assign_1", .op = "Assign", .in = { "b", "save/RestoreV2:1" } },
        { .name = "save/restore_shard_1", .op = "NoOp", .in = { "^save/Assign_2" } },
        { .name = "save/Assign_2", .op = "Assign", .in = { "c", "save/RestoreV2_1" } },
    };
    trestle__buf b = { 0 }, lib = { 0 };
    nspec all[16];
    memcpy(all, n, sizeof n);
    memcpy(all + 13, more, sizeof more);
    put_meta(&b, NULL, all, 16, &lib, "save/restore_all");
    write_buf(meta, &b);

    trestle_writer *w;
    trestle_writer_options wo;
    trestle_error err;
    trestle_writer_options_init(&wo);
    wo.num_shards = 2;
    cr_assert_eq(trestle_writer_create(prefix, &wo, &w, &err), TRESTLE_OK);
    int64_t d2[] = { 2 }, d3[] = { 3 };
    int64_t step = 7;
    write_float(w, "a", 1, d2, 2, 1.0f, 0);
    cr_assert_eq(trestle_writer_add(w, "b", TRESTLE_DT_INT64, 0, NULL, &step, 8, 0, &err), 0);
    write_float(w, "c", 1, d3, 3, 10.0f, 1);
    write_float(w, "decoy", 1, d2, 2, 0.0f, 1);
    cr_assert_eq(trestle_writer_finish(w, &err), TRESTLE_OK);
    trestle_writer_free(w);

    trestle_graph *g = open_ok(meta, NULL);
    trestle_graph_info gi;
    trestle_graph_get_info(g, &gi);
    const trestle_op *ops = trestle_graph_ops(g);
    cr_assert_eq(trestle_graph_op_count(g), 3);
    cr_expect_eq(gi.restore_nodes, 2);
    cr_expect_str_eq(ops[0].name, "a");
    cr_expect_str_eq(ops[1].name, "b");
    cr_expect_eq(ops[1].dtype, TRESTLE_DT_INT64);
    cr_expect_str_eq(ops[2].name, "c");
    cr_expect_str_eq(gi.checkpoint_prefix, prefix);

    trestle_checkpoint *c;
    trestle_plan *p;
    trestle_stats st;
    c = tu_open(gi.checkpoint_prefix, NULL);
    p = tu_plan(c, ops, 3, NULL);
    trestle_restore_options ro;
    trestle_restore_options_init(&ro);
    ro.reader = TRESTLE_READER_PREAD;
    cr_assert_eq(trestle_restore(p, &ro, &st, &err), TRESTLE_OK, "%s", err.message);
    cr_expect_eq(st.tensors, 3);
    trestle_plan_op_info oi;
    cr_assert_eq(trestle_plan_get_op(p, 2, &oi), TRESTLE_OK);
    cr_expect_eq(((float *)oi.data)[2], 12.0f);
    trestle_plan_free(p);
    trestle_close(c);
    trestle_graph_close(g);
    trestle__buf_free(&b);
    tu_rmtree(dir);
    free(dir);
    free(meta);
    free(prefix);
}

Test(graph_made, a_partitioned_variable_restores_slice_by_slice)
{
    char *dir = tu_mkdtemp(), *meta = path_in(dir, "part.meta"), *prefix = path_in(dir, "part");
    static const char *const names[] = { "w", "w" };
    static const char *const specs[] = { "4 6 0,2:-", "4 6 2,2:-" };
    static const int types[] = { TRESTLE_DT_FLOAT, TRESTLE_DT_FLOAT };
    nspec n[5] = { { .name = "save/Const", .op = "Const", .nstrs = 1, .strs = { "p" }, .dim = -1 } };
    fill_v2(&n[1], "save/RestoreV2", 2, names, specs, types);
    n[4] = (nspec){ .name = "save/restore_all", .op = "NoOp", .in = { "^save/RestoreV2" } };
    trestle__buf b = { 0 };
    put_meta(&b, NULL, n, 5, NULL, "save/restore_all");
    write_buf(meta, &b);

    float full[24];
    for (int i = 0; i < 24; i++)
        full[i] = (float)i;
    trestle_writer *w;
    trestle_error err;
    cr_assert_eq(trestle_writer_create(prefix, NULL, &w, &err), TRESTLE_OK);
    cr_assert_eq(trestle_writer_add_slice(w, "w", TRESTLE_DT_FLOAT, specs[0], full, 48, 0, &err), 0);
    cr_assert_eq(trestle_writer_add_slice(w, "w", TRESTLE_DT_FLOAT, specs[1], full + 12, 48, 0,
                                          &err), 0, "%s", err.message);
    cr_assert_eq(trestle_writer_finish(w, &err), TRESTLE_OK);
    trestle_writer_free(w);

    trestle_graph *g = open_ok(meta, NULL);
    const trestle_op *ops = trestle_graph_ops(g);
    cr_assert_eq(trestle_graph_op_count(g), 2);
    cr_expect_str_eq(ops[1].shape_and_slices, "4 6 2,2:-");
    trestle_checkpoint *c;
    trestle_plan *p;
    c = tu_open(prefix, NULL);
    p = tu_plan(c, ops, 2, NULL);
    trestle_restore_options ro;
    trestle_restore_options_init(&ro);
    ro.reader = TRESTLE_READER_PREAD;
    cr_assert_eq(trestle_restore(p, &ro, NULL, &err), TRESTLE_OK, "%s", err.message);
    for (size_t i = 0; i < 2; i++) {
        trestle_plan_op_info oi;
        cr_assert_eq(trestle_plan_get_op(p, i, &oi), TRESTLE_OK);
        cr_assert_eq(oi.bytes, 48);
        cr_expect_eq(memcmp(oi.data, full + 12 * i, 48), 0, "part %zu differs", i);
    }
    trestle_plan_free(p);
    trestle_close(c);
    trestle_graph_close(g);
    trestle__buf_free(&b);
    tu_rmtree(dir);
    free(dir);
    free(meta);
    free(prefix);
}

Test(graph_made, v1_restore_slice_and_restore_nodes_give_one_op_each)
{
    char *dir = tu_mkdtemp(), *meta = path_in(dir, "old.meta");
    nspec n[] = {
        { .name = "save/Const", .op = "Const", .nstrs = 1, .strs = { "old" }, .dim = -1 },
        { .name = "save/restore_slice/tensor_name", .op = "Const", .nstrs = 1, .strs = { "v" },
          .dim = -1 },
        { .name = "save/restore_slice/shape_and_slice", .op = "Const", .nstrs = 1,
          .strs = { "4 0,2" }, .dim = -1 },
        { .name = "save/restore_slice", .op = "RestoreSlice",
          .in = { "save/Const", "save/restore_slice/tensor_name",
                  "save/restore_slice/shape_and_slice" },
          .dt = TRESTLE_DT_DOUBLE },
        { .name = "save/restore/tensor_name", .op = "Const", .nstrs = 1, .strs = { "u" }, .dim = -1 },
        { .name = "save/restore", .op = "Restore", .in = { "save/Const", "save/restore/tensor_name" },
          .dt = TRESTLE_DT_INT32 },
        { .name = "save/restore_all", .op = "NoOp", .in = { "^save/restore_slice", "^save/restore" } },
    };
    trestle__buf b = { 0 };
    put_meta(&b, NULL, n, sizeof n / sizeof n[0], NULL, "save/restore_all");
    write_buf(meta, &b);
    trestle_graph *g = open_ok(meta, NULL);
    const trestle_op *ops = trestle_graph_ops(g);
    cr_assert_eq(trestle_graph_op_count(g), 2);
    cr_expect_str_eq(ops[0].name, "v");
    cr_expect_str_eq(ops[0].shape_and_slices, "4 0,2");
    cr_expect_eq(ops[0].dtype, TRESTLE_DT_DOUBLE);
    cr_expect_str_eq(ops[1].name, "u");
    cr_expect_str_eq(ops[1].shape_and_slices, "");
    cr_expect_eq(ops[1].dtype, TRESTLE_DT_INT32);
    trestle_graph_close(g);
    trestle__buf_free(&b);
    tu_rmtree(dir);
    free(dir);
    free(meta);
}

/* A TF2-style SavedModel: the restore op calls a library function whose
 * RestoreV2 reads its names through an Identity; two meta graphs. */
static void write_tf2_saved_model(const char *path)
{
    static const char *const names[] = { "x/.ATTRIBUTES/VARIABLE_VALUE", "_CHECKPOINTABLE_OBJECT_GRAPH" };
    static const char *const specs[] = { "" };
    static const int types[] = { TRESTLE_DT_FLOAT, TRESTLE_DT_STRING };
    nspec fnodes[] = {
        { .name = "RestoreV2/tensor_names", .op = "Const", .nstrs = 2, .strs = { names[0], names[1] },
          .dim = 2 },
        { .name = "names_id", .op = "Identity", .in = { "RestoreV2/tensor_names:output:0" } },
        /* One value for two elements: TensorFlow repeats the last one. */
        { .name = "RestoreV2/shape_and_slices", .op = "Const", .nstrs = 1, .strs = { specs[0] },
          .dim = 2 },
        { .name = "RestoreV2", .op = "RestoreV2",
          .in = { "file_prefix", "names_id:output:0", "RestoreV2/shape_and_slices:output:0" },
          .types = { types[0], types[1] }, .ntypes = 2 },
    };
    nspec gnodes[] = {
        { .name = "saver_filename", .op = "Placeholder" },
        { .name = "StatefulPartitionedCall_2", .op = "StatefulPartitionedCall",
          .in = { "saver_filename" }, .func = "__inference__traced_restore_9" },
    };
    nspec train_nodes[] = { { .name = "save/restore_all", .op = "NoOp" } };
    trestle__buf lib = { 0 }, sm = { 0 }, m1 = { 0 }, m2 = { 0 };
    put_function(&lib, "__inference__traced_restore_9", fnodes, 4);
    /* A decoy function with a RestoreV2 that nothing calls. */
    put_function(&lib, "__inference_unrelated_3", fnodes, 4);
    put_meta(&m1, "train", train_nodes, 1, NULL, "save/restore_all");
    put_meta(&m2, "serve", gnodes, 2, &lib, "StatefulPartitionedCall_2");
    cr_assert(trestle__buf_append_varint(&sm, 1 << 3));
    cr_assert(trestle__buf_append_varint(&sm, 1));
    put_len(&sm, 2, m1.data, m1.len);
    put_len(&sm, 2, m2.data, m2.len);
    write_buf(path, &sm);
    trestle__buf_free(&lib);
    trestle__buf_free(&sm);
    trestle__buf_free(&m1);
    trestle__buf_free(&m2);
}

Test(graph_made, a_tf2_restore_function_is_entered_and_serve_is_the_default_meta_graph)
{
    char *dir = tu_mkdtemp(), *pb = path_in(dir, "saved_model.pb");
    write_tf2_saved_model(pb);
    trestle_graph *g = open_ok(dir, NULL);
    trestle_graph_info gi;
    trestle_graph_get_info(g, &gi);
    cr_expect_eq(gi.meta_graphs, 2);
    cr_expect_str_eq(gi.tags, "serve");
    cr_expect_eq(gi.restore_nodes, 1);
    const trestle_op *ops = trestle_graph_ops(g);
    cr_assert_eq(trestle_graph_op_count(g), 2);
    cr_expect_str_eq(ops[0].name, "x/.ATTRIBUTES/VARIABLE_VALUE");
    cr_expect_str_eq(ops[1].shape_and_slices, "");
    cr_expect_eq(ops[1].dtype, TRESTLE_DT_STRING);
    trestle_graph_close(g);

    g = open_ok(pb, "train"); /* its restore op reaches no restore node */
    trestle_graph_get_info(g, &gi);
    cr_expect_str_eq(gi.tags, "train");
    cr_expect_eq(trestle_graph_op_count(g), 0);
    trestle_graph_close(g);

    trestle_graph_options o;
    trestle_error err;
    trestle_graph_options_init(&o);
    o.tag = "gpu";
    cr_expect_eq(trestle_graph_open(pb, &o, &g, &err), TRESTLE_E_NOT_FOUND);
    cr_expect(strstr(err.message, "no meta graph is tagged 'gpu'"), "%s", err.message);
    tu_rmtree(dir);
    free(dir);
    free(pb);
}

/* ---- hostile and broken graphs ---- */

/* Write a one-RestoreV2 graph with `n` (mutated by `mutate`) and open it. */
static char *write_graph(const char *dir, const char *file, nspec *n, size_t count,
                         const char *restore_op)
{
    char *path = path_in(dir, file);
    trestle__buf b = { 0 };
    put_meta(&b, NULL, n, count, NULL, restore_op);
    write_buf(path, &b);
    trestle__buf_free(&b);
    return path;
}

static void base_graph(nspec n[5])
{
    static const char *const names[] = { "a", "b" }, *const specs[] = { "", "" };
    static const int types[] = { TRESTLE_DT_FLOAT, TRESTLE_DT_FLOAT };
    n[0] = (nspec){ .name = "save/Const", .op = "Const", .nstrs = 1, .strs = { "m" }, .dim = -1 };
    fill_v2(&n[1], "save/RestoreV2", 2, names, specs, types);
    n[4] = (nspec){ .name = "save/restore_all", .op = "NoOp", .in = { "^save/RestoreV2" } };
}

Test(graph_made, truncated_graphs_fail_naming_the_file_and_offset)
{
    char *dir = tu_mkdtemp();
    nspec n[5];
    base_graph(n);
    char *path = write_graph(dir, "full.meta", n, 5, "save/restore_all");
    size_t len;
    uint8_t *bytes = tu_read_file(path, &len);
    char *cut = path_in(dir, "cut.meta");
    int corrupt = 0;
    for (size_t keep = 1; keep < len; keep++) {
        cr_assert_eq(tu_write_file(cut, bytes, keep), 0);
        trestle_graph *g = NULL;
        trestle_error err;
        int rc = trestle_graph_open(cut, NULL, &g, &err);
        /* A cut at a field boundary is a valid, shorter message. */
        if (rc == TRESTLE_OK) {
            trestle_graph_close(g);
            continue;
        }
        cr_assert_eq(rc, TRESTLE_E_CORRUPT, "cut at %zu: %s", keep, err.message);
        cr_assert(strstr(err.message, cut), "cut at %zu: %s", keep, err.message);
        corrupt++;
    }
    cr_expect_gt(corrupt, (int)len / 2);
    /* A cut inside the graph_def names the MetaGraphDef and the offset. */
    cr_assert_eq(tu_write_file(cut, bytes, len - 3), 0);
    trestle_graph *g;
    trestle_error err;
    cr_assert_eq(trestle_graph_open(cut, NULL, &g, &err), TRESTLE_E_CORRUPT);
    cr_expect(strstr(err.message, "malformed MetaGraphDef at byte offset"), "%s", err.message);
    cr_expect_geq(err.offset, 0);
    free(bytes);
    free(path);
    free(cut);
    tu_rmtree(dir);
    free(dir);
}

Test(graph_made, a_restore_node_whose_names_and_dtypes_disagree_is_corrupt)
{
    char *dir = tu_mkdtemp();
    nspec n[5];
    base_graph(n);
    n[3].ntypes = 3;
    n[3].types[2] = TRESTLE_DT_FLOAT;
    char *path = write_graph(dir, "m.meta", n, 5, "save/restore_all");
    open_fails(path, TRESTLE_E_CORRUPT, "restore node 'save/RestoreV2' (NodeDef at byte offset");
    free(path);
    tu_rmtree(dir);
    free(dir);
}

Test(graph_made, nonsense_in_a_restore_node_is_named)
{
    static const struct {
        const char *what;
        const char *needle;
    } cases[] = {
        { "bad dtype", "has a dtype that is not TensorFlow's: 999" },
        { "placeholder names", "is not fed by a string constant: tensor names" },
        { "missing names node", "is not fed by a constant: tensor names" },
        { "NUL in a name", "a tensor name with a NUL byte" },
        { "empty name", "an empty tensor name" },
        { "huge shape", "its constant's shape does not match its dtypes" },
        { "no dtypes", "has no dtypes list" },
        { "missing restore op", "the saver's restore op 'save/restore_all' is not a node" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *dir = tu_mkdtemp();
        nspec n[5];
        base_graph(n);
        switch (i) {
        case 0: n[3].types[1] = 999; break;
        case 1: n[1].op = "Placeholder"; break;
        case 2: n[3].in[1] = "nowhere"; break;
        case 3: n[1].strs[0] = NULL; break; /* replaced below */
        case 4: n[1].strs[0] = ""; break;
        case 5: n[1].dim = (int64_t)1 << 40; break;
        case 6: n[3].ntypes = 0; break;
        case 7: n[4].name = "save/restore_other"; break;
        }
        char *path;
        if (i == 3) {
            /* A name with an embedded NUL: patch the packed bytes. */
            n[1].strs[0] = "aXb";
            path = write_graph(dir, "m.meta", n, 5, "save/restore_all");
            size_t len;
            uint8_t *bytes = tu_read_file(path, &len);
            uint8_t *x = memmem(bytes, len, "aXb", 3);
            cr_assert(x);
            x[1] = 0;
            cr_assert_eq(tu_write_file(path, bytes, len), 0);
            free(bytes);
        } else {
            path = write_graph(dir, "m.meta", n, 5, "save/restore_all");
        }
        trestle_graph *g;
        trestle_error err;
        int rc = trestle_graph_open(path, NULL, &g, &err);
        cr_expect_eq(rc, TRESTLE_E_CORRUPT, "%s: %s", cases[i].what, rc ? err.message : "opened");
        if (rc)
            cr_expect(strstr(err.message, cases[i].needle) && strstr(err.message, path),
                      "%s: %s", cases[i].what, err.message);
        else
            trestle_graph_close(g);
        free(path);
        tu_rmtree(dir);
        free(dir);
    }
}

Test(graph_made, cycles_through_inputs_and_function_calls_end)
{
    char *dir = tu_mkdtemp(), *path = path_in(dir, "cycle.meta");
    nspec fnodes[] = {
        { .name = "again", .op = "StatefulPartitionedCall", .func = "f", .in = { "back:0" } },
        { .name = "back", .op = "f", .in = { "^again" } }, /* a direct call of itself */
    };
    nspec gnodes[] = {
        { .name = "save/restore_all", .op = "NoOp", .in = { "^x" } },
        { .name = "x", .op = "PartitionedCall", .in = { "^save/restore_all" }, .func = "f" },
    };
    trestle__buf lib = { 0 }, b = { 0 };
    put_function(&lib, "f", fnodes, 2);
    put_meta(&b, NULL, gnodes, 2, &lib, "save/restore_all");
    write_buf(path, &b);
    trestle_graph *g = open_ok(path, NULL);
    cr_expect_eq(trestle_graph_op_count(g), 0);
    trestle_graph_close(g);
    trestle__buf_free(&lib);
    trestle__buf_free(&b);
    free(path);
    tu_rmtree(dir);
    free(dir);
}

/* A SavedModel saved as x.meta, or a MetaGraphDef as saved_model.pb: the
 * name and the content disagree, and the error says which kind it is. */
Test(graph_made, a_graph_file_of_the_other_kind_is_named_as_such)
{
    char *dir = tu_mkdtemp(), *sm_dir = path_in(dir, "sm");
    char *as_meta = path_in(dir, "model.meta"), *as_pb = path_in(sm_dir, "saved_model.pb");
    cr_assert_eq(mkdir(sm_dir, 0755), 0);
    write_tf2_saved_model(as_meta);
    open_fails(as_meta, TRESTLE_E_CORRUPT, ": this file is a SavedModel (a saved_model.pb), not "
                                          "a MetaGraphDef (.meta): give its directory, with the "
                                          "file named saved_model.pb");
    nspec n[5];
    base_graph(n);
    free(write_graph(sm_dir, "saved_model.pb", n, 5, "save/restore_all"));
    open_fails(sm_dir, TRESTLE_E_CORRUPT, ": this file is a MetaGraphDef (a Saver's .meta), not "
                                          "a SavedModel: give it named PREFIX.meta, beside its "
                                          "checkpoint PREFIX");
    tu_cli_result r = tu_cli("ops --graph '%s'", as_pb);
    cr_expect_eq(r.rc, 1);
    cr_expect(strstr(r.err, "this file is a MetaGraphDef"), "%s", r.err);
    tu_cli_free(&r);
    /* Named for what they are, both read. */
    char *meta = path_in(dir, "moved.meta");
    cr_assert_eq(rename(as_pb, meta), 0);
    trestle_graph_close(open_ok(meta, NULL));
    cr_assert_eq(rename(as_meta, as_pb), 0);
    trestle_graph_close(open_ok(sm_dir, NULL));
    free(meta);
    free(as_meta);
    free(as_pb);
    free(sm_dir);
    tu_rmtree(dir);
    free(dir);
}

/* A SaverDef whose restore op reaches no restore node restores nothing,
 * and says that, not "no saver". */
Test(graph_made, a_saver_that_restores_nothing_is_not_called_missing)
{
    char *dir = tu_mkdtemp(), *pb = path_in(dir, "saved_model.pb");
    write_tf2_saved_model(pb);
    char want[1024];
    snprintf(want, sizeof want, "trestle: %s: the graph restores nothing: its saver's restore op "
             "'save/restore_all' reaches no restore node (RestoreV2, RestoreSlice or Restore) "
             "(meta graph tagged train)\n", pb);
    tu_cli_result r = tu_cli("ops --graph '%s' --tag train", pb);
    cr_expect_eq(r.rc, 4, "%s", r.err);
    cr_expect_str_eq(r.err, want);
    tu_cli_free(&r);
    free(pb);
    tu_rmtree(dir);
    free(dir);
}

/* ops --graph says where the checkpoint is, and when it is not there. */
Test(graph_made, ops_says_when_the_graphs_checkpoint_is_absent)
{
    char *dir = tu_mkdtemp(), *pb = path_in(dir, "saved_model.pb");
    write_tf2_saved_model(pb);
    char want[1024];
    snprintf(want, sizeof want, "# checkpoint: %s/variables/variables (absent: no "
             "%s/variables/variables.index)\n", dir, dir);
    tu_cli_result r = tu_cli("ops --graph '%s'", dir);
    cr_expect_eq(r.rc, 0, "%s", r.err);
    cr_expect(strstr(r.out, want), "%s", r.out);
    tu_cli_free(&r);
    /* With the checkpoint there, just its path. */
    char *vars = path_in(dir, "variables"), *prefix = path_in(dir, "variables/variables");
    cr_assert_eq(mkdir(vars, 0755), 0);
    trestle_writer *w;
    trestle_error err;
    cr_assert_eq(trestle_writer_create(prefix, NULL, &w, &err), TRESTLE_OK);
    write_float(w, "x/.ATTRIBUTES/VARIABLE_VALUE", 1, (int64_t[]){ 1 }, 1, 0, 0);
    cr_assert_eq(trestle_writer_finish(w, &err), TRESTLE_OK);
    trestle_writer_free(w);
    snprintf(want, sizeof want, "# checkpoint: %s/variables/variables\n", dir);
    r = tu_cli("ops --graph '%s'", dir);
    cr_expect(strstr(r.out, want), "%s", r.out);
    tu_cli_free(&r);
    free(vars);
    free(prefix);
    free(pb);
    tu_rmtree(dir);
    free(dir);
}

/* diff --values compares two checkpoints' bytes; with a graph there is one. */
Test(graph_made, diff_values_with_a_graph_is_refused)
{
    char *dir = tu_mkdtemp();
    nspec n[5];
    base_graph(n);
    char *meta = write_graph(dir, "m.meta", n, 5, "save/restore_all");
    char *prefix = path_in(dir, "m");
    trestle_writer *w;
    trestle_error err;
    cr_assert_eq(trestle_writer_create(prefix, NULL, &w, &err), TRESTLE_OK);
    write_float(w, "a", 1, (int64_t[]){ 1 }, 1, 0, 0);
    write_float(w, "b", 1, (int64_t[]){ 1 }, 1, 0, 0);
    cr_assert_eq(trestle_writer_finish(w, &err), TRESTLE_OK);
    trestle_writer_free(w);
    const char *forms[] = { "diff --values '%s' '%s'", "diff --values --ops '%s' '%s'" };
    for (int i = 0; i < 2; i++) {
        tu_cli_result r = tu_cli(forms[i], meta, prefix);
        cr_expect_eq(r.rc, 2, "%s: %s%s", forms[i], r.out, r.err);
        cr_expect(tu_starts_with(r.err, "trestle: diff: --values compares the tensor bytes of "
                                        "two checkpoints; a graph or --ops FILE checks names "
                                        "against one\n"), "%s", r.err);
        tu_cli_free(&r);
    }
    tu_cli_result r = tu_cli("diff '%s' '%s'", meta, prefix);
    cr_expect_eq(r.rc, 0, "%s%s", r.out, r.err);
    tu_cli_free(&r);
    free(meta);
    free(prefix);
    tu_rmtree(dir);
    free(dir);
}

Test(graph_made, deeply_nested_unknown_fields_are_skipped_not_recursed)
{
    char *dir = tu_mkdtemp();
    nspec n[5];
    base_graph(n);
    char *path = write_graph(dir, "m.meta", n, 5, "save/restore_all");
    size_t len;
    uint8_t *bytes = tu_read_file(path, &len);
    /* Prepend to the file a field 99 holding 100000 nested empty-ish
     * messages: unknown to every reader, it must be skipped whole. */
    enum { DEPTH = 100000 };
    size_t *lens = malloc((DEPTH + 1) * sizeof *lens);
    uint8_t vb[10];
    lens[0] = 0;
    for (int k = 1; k <= DEPTH; k++) /* level k: tag 0x0a, varint length, level k-1 */
        lens[k] = 1 + tr_put_varint64(vb, lens[k - 1]) + lens[k - 1];
    trestle__buf nest = { 0 }, out = { 0 };
    for (int k = DEPTH; k >= 1; k--) {
        uint8_t tag = 0x0a;
        cr_assert(trestle__buf_append(&nest, &tag, 1));
        cr_assert(trestle__buf_append_varint(&nest, lens[k - 1]));
    }
    free(lens);
    put_len(&out, 99, nest.data, nest.len);
    cr_assert(trestle__buf_append(&out, bytes, len));
    write_buf(path, &out);
    trestle_graph *g = open_ok(path, NULL);
    cr_expect_eq(trestle_graph_op_count(g), 2);
    trestle_graph_close(g);
    trestle__buf_free(&nest);
    trestle__buf_free(&out);
    free(bytes);
    free(path);
    tu_rmtree(dir);
    free(dir);
}

Test(graph_made, files_that_are_not_graphs_say_so)
{
    char *dir = tu_mkdtemp();
    char *empty = path_in(dir, "empty.meta"), *junk = path_in(dir, "junk.meta");
    cr_assert_eq(tu_write_file(empty, "", 0), 0);
    open_fails(empty, TRESTLE_E_CORRUPT, "empty file");
    cr_assert_eq(tu_write_file(junk, "\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff", 11), 0);
    open_fails(junk, TRESTLE_E_CORRUPT, "byte offset 0");
    open_fails(dir, TRESTLE_E_NOT_FOUND, "not a SavedModel directory (no saved_model.pb)");
    char *missing = path_in(dir, "nope");
    open_fails(missing, TRESTLE_E_NOT_FOUND, "no such graph file");
    char *txt = path_in(dir, "saved_model.pbtxt");
    cr_assert_eq(tu_write_file(txt, "meta_graphs {}", 14), 0);
    open_fails(dir, TRESTLE_E_UNSUPPORTED, "text-format saved_model.pbtxt");
    trestle_graph *g = (trestle_graph *)1;
    cr_expect_eq(trestle_graph_open(NULL, NULL, &g, NULL), TRESTLE_E_INVALID_ARG);
    cr_expect_null(g);
    trestle_graph_close(NULL);
    cr_expect_eq(trestle_graph_op_count(NULL), 0);
    free(empty);
    free(junk);
    free(missing);
    free(txt);
    tu_rmtree(dir);
    free(dir);
}

/* Found by fuzz_graph: a node without a name compared its NULL name bytes
 * with memcmp, and a restore op reaching no restore node sorted a NULL list. */
Test(regress, graph_nameless_node_and_no_restore_node)
{
    char *dir = tu_mkdtemp();
    nspec n[] = {
        { .name = NULL, .op = "NoOp" },
        { .name = "save/restore_all", .op = "NoOp", .in = { "^" } },
    };
    char *path = write_graph(dir, "m.meta", n, 2, "save/restore_all");
    trestle_graph *g = open_ok(path, NULL);
    cr_expect_eq(trestle_graph_op_count(g), 0);
    trestle_graph_close(g);
    free(path);
    tu_rmtree(dir);
    free(dir);
}

/* ---- meta graphs without a saver ---- */

/* MetaGraphDef.collection_def["variables"]: `n` serialized VariableDefs
 * (or raw bytes where `raw[i]` is set) as its bytes_list. */
static void put_variables(trestle__buf *meta, const Tensorflow__VariableDef *const *defs,
                          const char *const *raw, size_t n)
{
    trestle__buf list = { 0 }, col = { 0 }, entry = { 0 };
    for (size_t i = 0; i < n; i++) {
        if (raw && raw[i])
            put_len(&list, 1, raw[i], strlen(raw[i]));
        else
            put_packed(&list, 1, &defs[i]->base);
    }
    put_len(&col, 2, list.data ? list.data : (const uint8_t *)"", list.len);
    put_len(&entry, 1, "variables", 9);
    put_len(&entry, 2, col.data, col.len);
    put_len(meta, 4, entry.data, entry.len);
    trestle__buf_free(&list);
    trestle__buf_free(&col);
    trestle__buf_free(&entry);
}

/* A .meta without a SaverDef: the graph's variable nodes and, unless
 * `nvars` is 0, a "variables" collection. */
static char *write_saverless(const char *dir, const Tensorflow__VariableDef *const *defs,
                             const char *const *raw, size_t nvars)
{
    static const int64_t kdims[] = { 2, 3 }, pdims[] = { 4, 2 };
    trestle__buf graph = { 0 }, meta = { 0 };
    Tensorflow__MetaInfoDef info = TENSORFLOW__META_INFO_DEF__INIT;
    info.tensorflow_version = "1.15.0";
    put_packed(&meta, 1, &info.base);
    put_variable(&graph, "dense/kernel", "VariableV2", TRESTLE_DT_FLOAT, 2, kdims);
    put_variable(&graph, "global_step", "VarHandleOp", TRESTLE_DT_INT64, 0, NULL);
    put_variable(&graph, "emb/part_0", "VariableV2", TRESTLE_DT_FLOAT, 2, pdims);
    put_len(&meta, 2, graph.data, graph.len);
    if (nvars)
        put_variables(&meta, defs, raw, nvars);
    char *path = path_in(dir, "m.meta");
    write_buf(path, &meta);
    trestle__buf_free(&graph);
    trestle__buf_free(&meta);
    return path;
}

Test(graph_made, no_saver_restores_the_global_variables_as_a_default_saver_would)
{
    char *dir = tu_mkdtemp();
    int64_t full[] = { 4, 2 }, off[] = { 0, 0 };
    Tensorflow__SaveSliceInfoDef si = TENSORFLOW__SAVE_SLICE_INFO_DEF__INIT;
    si.full_name = "emb";
    si.n_full_shape = si.n_var_offset = si.n_var_shape = 2;
    si.full_shape = full;
    si.var_offset = off;
    si.var_shape = full;
    Tensorflow__VariableDef v[3] = { TENSORFLOW__VARIABLE_DEF__INIT, TENSORFLOW__VARIABLE_DEF__INIT,
                                     TENSORFLOW__VARIABLE_DEF__INIT };
    v[0].variable_name = "dense/kernel:0";
    v[1].variable_name = "global_step:0";
    v[2].variable_name = "emb/part_0:0";
    v[2].save_slice_info_def = &si;
    const Tensorflow__VariableDef *defs[] = { &v[0], &v[1], &v[2] };
    char *meta = write_saverless(dir, defs, NULL, 3);

    trestle_graph *g = open_ok(meta, NULL);
    cr_assert_eq(trestle_graph_op_count(g), 3);
    cr_expect_eq(trestle_graph_op_source(g), TRESTLE_GRAPH_OPS_VARIABLES);
    const trestle_op *ops = trestle_graph_ops(g);
    cr_expect_str_eq(ops[0].name, "dense/kernel");
    cr_expect_str_eq(ops[0].shape_and_slices, "");
    cr_expect_eq(ops[0].dtype, TRESTLE_DT_FLOAT);
    cr_expect_str_eq(ops[1].name, "global_step");
    cr_expect_eq(ops[1].dtype, TRESTLE_DT_INT64);
    cr_expect_str_eq(ops[2].name, "emb");
    cr_expect_str_eq(ops[2].shape_and_slices, "4 2 0,4:0,2");
    const trestle_shape *sh = trestle_graph_op_shapes(g);
    cr_assert_not_null(sh);
    cr_expect_eq(sh[0].rank, 2);
    cr_expect_eq(sh[0].dims[0], 2);
    cr_expect_eq(sh[0].dims[1], 3);
    cr_expect_eq(sh[1].rank, 0);
    trestle_graph_info gi;
    trestle_graph_get_info(g, &gi);
    cr_expect_str_eq(gi.restore_op, "");
    trestle_graph_close(g);

    /* The checkpoint a Saver would have written; restore says where the
     * op list came from. */
    char *prefix = path_in(dir, "m");
    trestle_writer *w;
    trestle_error err;
    int64_t step = 7;
    cr_assert_eq(trestle_writer_create(prefix, NULL, &w, &err), TRESTLE_OK);
    write_float(w, "dense/kernel", 2, (int64_t[]){ 2, 3 }, 6, 1, 0);
    write_float(w, "emb", 2, full, 8, 10, 0);
    cr_assert_eq(trestle_writer_add(w, "global_step", TRESTLE_DT_INT64, 0, NULL, &step, 8, 0, &err),
                 TRESTLE_OK);
    write_float(w, "unrelated", 1, (int64_t[]){ 1 }, 1, 0, 0);
    cr_assert_eq(trestle_writer_finish(w, &err), TRESTLE_OK);
    trestle_writer_free(w);
    tu_cli_result r = tu_cli("restore -q '%s' --graph '%s' --list", prefix, meta);
    cr_expect_eq(r.rc, 0, "%s", r.err);
    char want[1024];
    snprintf(want, sizeof want, "note: %s has no saver; restoring the 3 global variables of its "
             "collections, as a default tf.compat.v1.train.Saver() would\n", meta);
    cr_expect_str_eq(r.err, want);
    cr_expect(strstr(r.out, "emb") && strstr(r.out, "global_step") && !strstr(r.out, "unrelated"),
              "%s", r.out);
    tu_cli_free(&r);
    r = tu_cli("ops --graph '%s'", meta);
    cr_expect_eq(r.rc, 0, "%s", r.err);
    cr_expect(strstr(r.out, "# no saver: the 3 global variables of its collections, as a default "
                            "Saver restores them\n"
                            "# checkpoint: "), "%s", r.out);
    cr_expect(strstr(r.out, "\nemb\t4 2 0,4:0,2\tdtype=float\n"), "%s", r.out);
    tu_cli_free(&r);
    free(prefix);
    free(meta);
    tu_rmtree(dir);
    free(dir);
}

Test(graph_made, no_saver_and_no_variables_is_an_error_of_its_own)
{
    char *dir = tu_mkdtemp();
    char *meta = write_saverless(dir, NULL, NULL, 0);
    trestle_graph *g = open_ok(meta, NULL);
    cr_expect_eq(trestle_graph_op_count(g), 0);
    cr_expect_eq(trestle_graph_op_source(g), TRESTLE_GRAPH_OPS_NONE);
    trestle_graph_close(g);
    char *prefix = path_in(dir, "m");
    trestle_writer *w;
    trestle_error err;
    cr_assert_eq(trestle_writer_create(prefix, NULL, &w, &err), TRESTLE_OK);
    write_float(w, "x", 1, (int64_t[]){ 1 }, 1, 0, 0);
    cr_assert_eq(trestle_writer_finish(w, &err), TRESTLE_OK);
    trestle_writer_free(w);
    char want[1024];
    snprintf(want, sizeof want, "trestle: %s: the graph restores nothing: it has no saver (no "
             "SaverDef) and no variables in its collections\n", meta);
    const char *cmds[] = { "restore -q '%s' --graph '%s'", "check '%s' '%s'", "ops --graph '%s'" };
    for (int i = 0; i < 3; i++) {
        tu_cli_result r = i == 0 ? tu_cli(cmds[0], prefix, meta)
                          : i == 1 ? tu_cli(cmds[1], meta, prefix)
                                   : tu_cli(cmds[2], meta);
        cr_expect_eq(r.rc, 4, "%s: %d %s", cmds[i], r.rc, r.err);
        cr_expect_str_eq(r.err, want, "%s", cmds[i]);
        tu_cli_free(&r);
    }
    free(prefix);
    free(meta);
    tu_rmtree(dir);
    free(dir);
}

Test(graph_made, a_variable_def_that_does_not_decode_is_named_with_its_offset)
{
    char *dir = tu_mkdtemp();
    static const char *const raw[] = { "\x0a\x7f" }; /* a name running past the end */
    char *meta = write_saverless(dir, NULL, raw, 1);
    open_fails(meta, TRESTLE_E_CORRUPT, "malformed VariableDef at byte offset ");
    /* A partition whose slice leaves its full shape. */
    int64_t full[] = { 4 }, off[] = { 3 }, len[] = { 2 };
    Tensorflow__SaveSliceInfoDef si = TENSORFLOW__SAVE_SLICE_INFO_DEF__INIT;
    si.full_name = "emb";
    si.n_full_shape = si.n_var_offset = si.n_var_shape = 1;
    si.full_shape = full;
    si.var_offset = off;
    si.var_shape = len;
    Tensorflow__VariableDef v = TENSORFLOW__VARIABLE_DEF__INIT;
    v.variable_name = "emb/part_1:0";
    v.save_slice_info_def = &si;
    const Tensorflow__VariableDef *defs[] = { &v };
    free(meta);
    meta = write_saverless(dir, defs, NULL, 1);
    open_fails(meta, TRESTLE_E_CORRUPT,
               "a partition whose offsets and shape do not fit its full shape");
    free(meta);
    tu_rmtree(dir);
    free(dir);
}
