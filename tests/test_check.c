/*
 * test_check.c - `trestle check GRAPH|OPSFILE CHECKPOINT` (tools/cli_check.c,
 * engine/graph/infer*.c) on drifted checkpoints made here by rewriting the keys
 * of real ones (or writing small ones): each drift kind is found, its rule
 * inferred and shown, and `trestle restore` with the printed flags
 * succeeds; an ambiguous drift is reported ambiguous and not guessed.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"
#include "trestle.h"

typedef char *(*rename_fn)(const char *key); /* malloc'd new key, or NULL to drop */

/* Copy checkpoint `src` to `dst` with every key passed through `fn`. */
static void rewrite(const char *src, const char *dst, rename_fn fn)
{
    trestle_checkpoint *c;
    trestle_writer *w;
    trestle_error err;
    c = tu_open(src, NULL);
    cr_assert_eq(trestle_writer_create(dst, NULL, &w, &err), TRESTLE_OK, "%s", err.message);
    for (size_t i = 0; i < trestle_tensor_count(c); i++) {
        trestle_tensor_info t;
        cr_assert_eq(trestle_tensor_get_info(c, i, &t), TRESTLE_OK);
        char *name = fn(t.name);
        if (!name)
            continue;
        size_t es = trestle_dtype_size(t.dtype);
        uint64_t size = es ? (uint64_t)t.num_elements * es : t.size;
        void *buf = malloc(size ? size : 1);
        cr_assert_eq(trestle_tensor_read(c, i, buf, size, 1, &err), TRESTLE_OK, "%s", err.message);
        if (t.dtype == TRESTLE_DT_STRING) {
            trestle_bytes *e = calloc((size_t)t.num_elements + 1, sizeof *e);
            cr_assert_eq(trestle_strings_decode(buf, size, (uint64_t)t.num_elements, e, &err), 0);
            cr_assert_eq(trestle_writer_add_strings(w, name, t.rank, t.dims, e, 0, &err), 0);
            free(e);
        } else {
            cr_assert_eq(trestle_writer_add(w, name, t.dtype, t.rank, t.dims, buf, size, 0, &err),
                         TRESTLE_OK, "%s", err.message);
        }
        free(buf);
        free(name);
    }
    cr_assert_eq(trestle_writer_finish(w, &err), TRESTLE_OK);
    trestle_writer_free(w);
    trestle_close(c);
}

/* The drift of the next rewrite: pairs of key prefixes, from and to,
 * ending in NULL; the first pair whose `from` starts a key applies. */
static const char *const *drift;

static char *apply_drift(const char *key)
{
    char *s;
    for (const char *const *d = drift; *d; d += 2)
        if (strncmp(key, d[0], strlen(d[0])) == 0) {
            cr_assert(asprintf(&s, "%s%s", d[1], key + strlen(d[0])) > 0);
            return s;
        }
    return strdup(key);
}

/* A copy of checkpoint `src` with `pairs` applied to its keys, at
 * <*dir>/drift in a fresh directory (both malloc'd). */
static char *drifted(const char *src, const char *const *pairs, char **dir)
{
    char *ckpt;
    *dir = tu_mkdtemp();
    cr_assert(asprintf(&ckpt, "%s/drift", *dir) > 0);
    drift = pairs;
    rewrite(src, ckpt, apply_drift);
    return ckpt;
}

static const char *const estimator_graph =
    "tf-graphs/tfx_estimator_ckpt_2shards_2019/model.ckpt-10000.meta";
static const char *const estimator_ckpt = "tf-real/tfx_estimator_ckpt_2shards_2019/model.ckpt-10000";

/* The text after "  flags:" in check's output (malloc'd), or fail. */
static char *flags_of(const char *out)
{
    const char *p = strstr(out, "\n  flags:");
    cr_assert(p, "no flags line in:\n%s", out);
    p += strlen("\n  flags:");
    return strndup(p, strcspn(p, "\n"));
}

/* check exits 3 with `rule` shown, and restore with the printed flags works. */
static void fixable(const char *source, const char *ckpt, const char *source_flag,
                    const char *rule)
{
    tu_cli_result r = tu_cli("check '%s' '%s'", source, ckpt);
    cr_assert_eq(r.rc, 3, "rc %d\n%s%s", r.rc, r.out, r.err);
    cr_expect(strstr(r.out, rule), "'%s' not in:\n%s", rule, r.out);
    char *flags = flags_of(r.out);
    tu_cli_free(&r);
    r = tu_cli("restore -q '%s' %s '%s' %s", ckpt, source_flag, source, flags);
    cr_expect_eq(r.rc, 0, "restore with%s: %s", flags, r.err);
    tu_cli_free(&r);
    free(flags);
}

Test(check, a_checkpoint_that_matches_its_graph_passes_as_is)
{
    tu_cli_result r = tu_cli("check '%s' '%s'", tu_fixture(estimator_graph),
                             tu_fixture(estimator_ckpt));
    cr_expect_eq(r.rc, 0, "%s%s", r.out, r.err);
    cr_expect(strstr(r.out, ": 51 ops, 51 ok, 0 missing, 0 mismatched, 0 unused keys\n"), "%s",
              r.out);
    cr_expect(strstr(r.out, "verdict: the restore succeeds as is\n"), "%s", r.out);
    tu_cli_free(&r);
}

Test(check, a_scope_added_in_the_checkpoint_is_inferred_per_first_component)
{
    static const char *const add_model[] = { "", "model/", NULL };
    char *dir, *ckpt = drifted(tu_fixture(estimator_ckpt), add_model, &dir);
    const char *graph = tu_fixture(estimator_graph);
    fixable(graph, ckpt, "--graph", "--rename 'dnn/=model/dnn/'  fixes ");
    tu_cli_result r = tu_cli("check '%s' '%s'", graph, ckpt);
    cr_expect(strstr(r.out, "--rename 'global_step=model/global_step'  fixes 1 key: the same "
                            "path under another scope; dtypes and shapes agree, one op per key\n"),
              "%s", r.out);
    tu_cli_free(&r);

    /* --write-ops: the fixed op list restores with no flags at all. */
    char *ops;
    cr_assert(asprintf(&ops, "%s/fixed.txt", dir) > 0);
    r = tu_cli("check --write-ops '%s' '%s' '%s'", ops, graph, ckpt);
    cr_expect_eq(r.rc, 3);
    tu_cli_free(&r);
    r = tu_cli("restore -q '%s' --ops '%s'", ckpt, ops);
    cr_expect_eq(r.rc, 0, "%s", r.err);
    tu_cli_free(&r);
    free(ops);
    free(ckpt);
    tu_rmtree(dir);
    free(dir);
}

Test(check, a_scope_removed_from_the_checkpoint_is_one_prefix_rule)
{
    static const char *const drop_dnn[] = { "dnn/", "", NULL };
    char *dir, *ckpt = drifted(tu_fixture(estimator_ckpt), drop_dnn, &dir);
    fixable(tu_fixture(estimator_graph), ckpt, "--graph", "--rename 'dnn/='  fixes 20 keys");
    free(ckpt);
    tu_rmtree(dir);
    free(dir);
}

/* A small checkpoint of float tensors: names[i] with shape dims[i] (rank 1 or 2). */
static char *small_ckpt(const char *dir, const char *const *names, const int64_t (*dims)[2],
                        const int *ranks, size_t n)
{
    char *prefix;
    trestle_writer *w;
    trestle_error err;
    cr_assert(asprintf(&prefix, "%s/small", dir) > 0);
    cr_assert_eq(trestle_writer_create(prefix, NULL, &w, &err), TRESTLE_OK);
    static const float v[256]; /* zeros, enough for every tensor here */
    for (size_t i = 0; i < n; i++) {
        cr_assert_leq(dims[i][0] * (ranks[i] == 2 ? dims[i][1] : 1), 256);
        int64_t el = dims[i][0] * (ranks[i] == 2 ? dims[i][1] : 1);
        cr_assert_eq(trestle_writer_add(w, names[i], TRESTLE_DT_FLOAT, ranks[i], dims[i], v,
                                        (uint64_t)el * 4, 0, &err), TRESTLE_OK);
    }
    cr_assert_eq(trestle_writer_finish(w, &err), TRESTLE_OK);
    trestle_writer_free(w);
    return prefix;
}

static char *ops_file(const char *dir, const char *text)
{
    char *path;
    cr_assert(asprintf(&path, "%s/ops.txt", dir) > 0);
    cr_assert_eq(tu_write_file(path, text, strlen(text)), 0);
    return path;
}

Test(check, tf1_rnn_cell_names_are_one_flag)
{
    static const char *const names[] = { "bi-lstm/fw/lstm_cell/kernel", "bi-lstm/fw/lstm_cell/bias",
                                         "bi-lstm/bw/lstm_cell/kernel", "bi-lstm/bw/lstm_cell/bias" };
    static const int64_t dims[][2] = { { 8, 16 }, { 16, 0 }, { 8, 16 }, { 16, 0 } };
    static const int ranks[] = { 2, 1, 2, 1 };
    char *dir = tu_mkdtemp(), *ckpt = small_ckpt(dir, names, dims, ranks, 4);
    char *ops = ops_file(dir, "bi-lstm/fw/lstm_cell/weights\t\tdtype=float\n"
                              "bi-lstm/fw/lstm_cell/biases\t\tdtype=float\n"
                              "bi-lstm/bw/lstm_cell/weights\t\tdtype=float\n"
                              "bi-lstm/bw/lstm_cell/biases\t\tdtype=float\n");
    fixable(ops, ckpt, "--ops", "--rnn-renames  fixes 4 keys: TF 1.x RNN cell names");
    tu_cli_result r = tu_cli("check --json '%s' '%s'", ops, ckpt);
    cr_expect_eq(r.rc, 3);
    cr_expect(strstr(r.out, "\"fixable\": true"), "%s", r.out);
    cr_expect(strstr(r.out, "{\"flag\": \"--rnn-renames\", \"fixes\": 4"), "%s", r.out);
    tu_cli_free(&r);
    free(ops);
    free(ckpt);
    tu_rmtree(dir);
    free(dir);
}

static const char *const renumbered[] = { "dense/kernel", "dense/bias", "dense_1/kernel",
                                          "dense_1/bias" };
static const int ranks_dense[] = { 2, 1, 2, 1 };

Test(check, keras_layer_renumbering_is_inferred_when_shapes_make_it_unique)
{
    static const int64_t dims[][2] = { { 4, 6 }, { 6, 0 }, { 6, 2 }, { 2, 0 } };
    char *dir = tu_mkdtemp(), *ckpt = small_ckpt(dir, renumbered, dims, ranks_dense, 4);
    char *ops = ops_file(dir, "dense_3/kernel\t4 6 0,4:0,6\tdtype=float\n"
                              "dense_3/bias\t6 0,6\tdtype=float\n"
                              "dense_4/kernel\t6 2 0,6:0,2\tdtype=float\n"
                              "dense_4/bias\t2 0,2\tdtype=float\n");
    fixable(ops, ckpt, "--ops", "--rename 'dense_3/=dense/'  fixes 2 keys: a layer renumbered");
    tu_cli_result r = tu_cli("check '%s' '%s'", ops, ckpt);
    cr_expect(strstr(r.out, "--rename 'dense_4/=dense_1/'  fixes 2 keys: a layer renumbered (only "
                            "the _N suffix differs); dtypes and shapes agree"), "%s", r.out);
    tu_cli_free(&r);
    free(ops);
    free(ckpt);
    tu_rmtree(dir);
    free(dir);
}

Test(check, renumbering_that_shapes_cannot_decide_is_ambiguous)
{
    static const int64_t dims[][2] = { { 4, 4 }, { 4, 0 }, { 4, 4 }, { 4, 0 } };
    char *dir = tu_mkdtemp(), *ckpt = small_ckpt(dir, renumbered, dims, ranks_dense, 4);
    char *ops = ops_file(dir, "dense_3/kernel\ndense_3/bias\ndense_4/kernel\ndense_4/bias\n");
    tu_cli_result r = tu_cli("check '%s' '%s'", ops, ckpt);
    cr_expect_eq(r.rc, 1, "%s", r.out);
    cr_expect(strstr(r.out, "  dense_3/kernel  (ambiguous: dense/kernel or dense_1/kernel)\n"),
              "%s", r.out);
    cr_expect(!strstr(r.out, "inferred renames"), "%s", r.out);
    cr_expect(strstr(r.out, "verdict: the restore fails (4 ambiguous"), "%s", r.out);
    tu_cli_free(&r);
    free(ops);
    free(ckpt);
    tu_rmtree(dir);
    free(dir);
}

Test(check, graph_names_of_a_tf2_checkpoint_are_inferred)
{
    char *dir = tu_mkdtemp();
    char *ops = ops_file(dir, "sequential/dense/kernel\nSGD/iter\tdtype=int64\n"
                              "sequential/dense/kernel/momentum\n");
    const char *ckpt = tu_fixture("tf-real/tfkeras_lso_ckpt_2shards/ckpt");
    fixable(ops, ckpt, "--ops", "--names graph  fixes 3 keys: the checkpoint's object graph");
    free(ops);
    tu_rmtree(dir);
    free(dir);
}

Test(check, a_dtype_mismatch_is_reported_and_not_fixable)
{
    static const int64_t dims[][2] = { { 2, 2 } };
    static const char *const names[] = { "w" };
    static const int ranks[] = { 2 };
    char *dir = tu_mkdtemp(), *ckpt = small_ckpt(dir, names, dims, ranks, 1);
    char *ops = ops_file(dir, "w\t\tdtype=int64\nw\t3 2 0,3:-\n");
    tu_cli_result r = tu_cli("check '%s' '%s'", ops, ckpt);
    cr_expect_eq(r.rc, 1);
    cr_expect(strstr(r.out, "dtype mismatch: w: the ops want int64, the checkpoint has float\n"),
              "%s", r.out);
    cr_expect(strstr(r.out, "shape mismatch: w: the ops want '3 2 0,3:-', the checkpoint has [2,2]"),
              "%s", r.out);
    tu_cli_free(&r);
    r = tu_cli("check '%s'", ops);
    cr_expect_eq(r.rc, 2);
    tu_cli_free(&r);
    free(ops);
    free(ckpt);
    tu_rmtree(dir);
    free(dir);
}

Test(check, a_failure_that_is_no_naming_problem_is_said_as_the_planner_says_it)
{
    char *dir = tu_mkdtemp(), *prefix;
    trestle_writer *w;
    trestle_error err;
    float rows[24] = { 0 };
    int64_t dims[2] = { 4, 6 };
    cr_assert(asprintf(&prefix, "%s/conv", dir) > 0);
    cr_assert_eq(trestle_writer_create(prefix, NULL, &w, &err), TRESTLE_OK);
    cr_assert_eq(trestle_writer_add(w, "w", TRESTLE_DT_FLOAT, 2, dims, rows, sizeof rows, 0, &err),
                 TRESTLE_OK);
    cr_assert_eq(trestle_writer_finish(w, &err), TRESTLE_OK);
    trestle_writer_free(w);
    /* The name, dtype and shape are right; the conversion is not one trestle makes. */
    char *ops = ops_file(dir, "w\t\tdtype=float\tas=int8\n");
    tu_cli_result r = tu_cli("check '%s' '%s'", ops, prefix);
    cr_expect_eq(r.rc, 1, "%s", r.out);
    cr_expect(strstr(r.out, ": 1 op, 1 ok, 0 missing, 0 mismatched, 0 unused keys\n"), "%s", r.out);
    cr_expect(strstr(r.out, "verdict: the restore fails: "), "%s", r.out);
    tu_cli_free(&r);
    free(ops);
    free(prefix);
    tu_rmtree(dir);
    free(dir);
}

Test(check, a_tf1_graphs_variable_shapes_tell_renumbered_layers_apart)
{
    /* Dense_1 is [256,1], Dense_4 [64,128]: the graph's shapes decide. */
    static const char *const renumber[] = { "Dense_1/", "Dense_2/", "Dense_4/", "Dense_5/", NULL };
    char *dir,
        *ckpt = drifted(tu_fixture("tf-real/deepchem_qm7_graphconv/model-699"), renumber, &dir);
    const char *graph = tu_fixture("tf-graphs/deepchem_qm7_graphconv/model-699.meta");
    fixable(graph, ckpt, "--graph", "--rename 'Dense_1/=Dense_2/'  fixes 6 keys: a layer "
                                    "renumbered (only the _N suffix differs); dtypes and shapes "
                                    "agree, one op per key\n");
    free(ckpt);
    tu_rmtree(dir);
    free(dir);
}

Test(check, renumbered_layers_of_one_shape_are_ambiguous_on_a_real_graph)
{
    /* dense and dense_1 are both [784,10] and [10]. */
    static const char *const renumber[] = { "dense/", "dense_7/", "dense_1/", "dense_8/", NULL };
    char *dir,
        *ckpt = drifted(tu_fixture("tf-real/tfdeploy_keras_1_13/variables"), renumber, &dir);
    tu_cli_result r = tu_cli("check '%s' '%s'", tu_fixture("tf-graphs/tfdeploy_keras_1_13"), ckpt);
    cr_expect_eq(r.rc, 1, "%s", r.out);
    cr_expect(strstr(r.out, "  dense/kernel  (ambiguous: dense_7/kernel or dense_8/kernel)\n"),
              "%s", r.out);
    cr_expect(strstr(r.out, "verdict: the restore fails (4 ambiguous, 0 with no candidate"), "%s",
              r.out);
    tu_cli_free(&r);
    free(ckpt);
    tu_rmtree(dir);
    free(dir);
}

Test(check, restore_by_graph_ranks_suggestions_by_the_graphs_variable_shapes)
{
    /* Dense_1 became Dense_2 and Dense_4 Dense_5: for a missing whole
     * tensor under Dense_1 both Dense_2 and Dense_5 are one component away
     * with the same dtype; only the graph's variable shapes (Dense_1/weights
     * is [256,1], Dense_4/weights [64,128]) tell them apart. */
    static const char *const renumber[] = { "Dense_1/", "Dense_2/", "Dense_4/", "Dense_5/", NULL };
    char *dir,
        *ckpt = drifted(tu_fixture("tf-real/deepchem_qm7_graphconv/model-699"), renumber, &dir);
    const char *graph = tu_fixture("tf-graphs/deepchem_qm7_graphconv/model-699.meta");
    tu_cli_result r = tu_cli("restore -q '%s' --graph '%s'", ckpt, graph);
    cr_expect_eq(r.rc, 1, "%s", r.err);
    cr_expect(tu_starts_with(r.err, "trestle: Key Dense_1/biases not found in checkpoint (did you "
                                    "mean Dense_2/biases?)\n"
                                    "Key Dense_1/biases/Adam not found in checkpoint (did you mean "
                                    "Dense_2/biases/Adam?)\n"),
              "%s", r.err);
    cr_expect(strstr(r.err, "\nKey Dense_4/weights not found in checkpoint (did you mean "
                            "Dense_5/weights?)\n"),
              "%s", r.err);
    tu_cli_free(&r);
    /* The same ops from an ops file carry no shapes: both candidates. */
    char *ops;
    cr_assert(asprintf(&ops, "%s/ops.txt", dir) > 0);
    r = tu_cli("ops -q --graph '%s' > '%s'", graph, ops);
    cr_assert_eq(r.rc, 0, "%s", r.err);
    tu_cli_free(&r);
    r = tu_cli("restore -q '%s' --ops '%s'", ckpt, ops);
    cr_expect_eq(r.rc, 1, "%s", r.err);
    cr_expect(tu_starts_with(r.err, "trestle: Key Dense_1/biases not found in checkpoint (did you "
                                    "mean Dense_2/biases or Dense_5/biases?)\n"),
              "%s", r.err);
    tu_cli_free(&r);
    free(ops);
    free(ckpt);
    tu_rmtree(dir);
    free(dir);
}

/* Issue 22, case (a): the scope rule 'dense/=model/dense/' that fixes
 * dense/bias would also move dense/kernel, which resolves as is. */
Test(check, a_rule_is_checked_against_the_ops_that_already_resolve)
{
    static const char *const names[] = { "dense/kernel", "model/dense/kernel", "model/dense/bias" };
    static const int64_t dims[][2] = { { 4, 6 }, { 4, 6 }, { 6, 0 } };
    static const int ranks[] = { 2, 2, 1 };
    char *dir = tu_mkdtemp(), *ckpt = small_ckpt(dir, names, dims, ranks, 3);
    char *ops = ops_file(dir, "dense/kernel\ndense/bias\n");
    fixable(ops, ckpt, "--ops", "  --rename 'dense/bias=model/dense/bias'  fixes 1 key: the same "
                               "path under another scope; dtypes agree, one op per key\n");
    tu_cli_result r = tu_cli("check '%s' '%s'", ops, ckpt);
    cr_expect(strstr(r.out, "  dense/bias -> model/dense/bias  (--rename "
                            "'dense/bias=model/dense/bias')\n"), "%s", r.out);
    cr_expect(strstr(r.out, "  refused --rename 'dense/=model/dense/': it would also change "
                            "dense/kernel (dense/kernel -> model/dense/kernel)\n"), "%s", r.out);
    cr_expect(strstr(r.out, "  flags: --rename 'dense/bias=model/dense/bias'\n"), "%s", r.out);
    tu_cli_free(&r);

    /* --write-ops keeps dense/kernel where it was. */
    char *fixed;
    cr_assert(asprintf(&fixed, "%s/fixed.txt", dir) > 0);
    r = tu_cli("check --write-ops '%s' '%s' '%s'", fixed, ops, ckpt);
    cr_expect_eq(r.rc, 3);
    tu_cli_free(&r);
    size_t len;
    char *text = (char *)tu_read_file(fixed, &len);
    cr_assert_not_null(text);
    cr_expect_eq(len, strlen("dense/kernel\t\nmodel/dense/bias\t\n"));
    cr_expect_eq(memcmp(text, "dense/kernel\t\nmodel/dense/bias\t\n", len), 0, "%.*s", (int)len,
                 text);
    free(text);

    r = tu_cli("check --json '%s' '%s'", ops, ckpt);
    cr_expect(strstr(r.out, "\"refused\": [\n    {\"flag\": \"--rename 'dense/=model/dense/'\", "
                            "\"changes\": [{\"op\": \"dense/kernel\", \"from\": \"dense/kernel\", "
                            "\"to\": \"model/dense/kernel\"}]}]"), "%s", r.out);
    tu_cli_free(&r);
    free(fixed);
    free(ops);
    free(ckpt);
    tu_rmtree(dir);
    free(dir);
}

/* Issue 22, case (b): the same rule would break dense/kernel, and check
 * said the restore could not be fixed. */
Test(check, a_rule_that_would_break_a_resolved_op_gives_way_to_an_exact_one)
{
    static const char *const names[] = { "dense/kernel", "model/dense/bias" };
    static const int64_t dims[][2] = { { 4, 6 }, { 6, 0 } };
    static const int ranks[] = { 2, 1 };
    char *dir = tu_mkdtemp(), *ckpt = small_ckpt(dir, names, dims, ranks, 2);
    char *ops = ops_file(dir, "dense/kernel\ndense/bias\n");
    fixable(ops, ckpt, "--ops", "  --rename 'dense/bias=model/dense/bias'  fixes 1 key");
    tu_cli_result r = tu_cli("check '%s' '%s'", ops, ckpt);
    cr_expect(strstr(r.out, "  refused --rename 'dense/=model/dense/': it would also change "
                            "dense/kernel (dense/kernel -> missing)\n"), "%s", r.out);
    tu_cli_free(&r);
    free(ops);
    free(ckpt);
    tu_rmtree(dir);
    free(dir);
}

/* A checkpoint of one float tensor w [2] in `dir`, and ops file "w". */
static char *w_ckpt(const char *dir, char **ops)
{
    static const char *const names[] = { "w" };
    static const int64_t dims[][2] = { { 2, 0 } };
    static const int ranks[] = { 1 };
    *ops = ops_file(dir, "w\n");
    return small_ckpt(dir, names, dims, ranks, 1);
}

/* Issue 22: `check CHECKPOINT GRAPH` read the checkpoint directory as an
 * ops file ("read error: Is a directory"). */
Test(check, swapped_arguments_say_which_comes_first)
{
    char *dir = tu_mkdtemp(), *ops, *ckpt = w_ckpt(dir, &ops);
    const char *firsts[] = { dir, ckpt };
    for (int i = 0; i < 2; i++) {
        tu_cli_result r = tu_cli("check '%s' '%s'", firsts[i], ops);
        char want[2048];
        snprintf(want, sizeof want, "trestle: check: the graph or ops file comes first, then the "
                 "checkpoint: '%s' is a checkpoint (swapped? try: trestle check '%s' '%s')\n",
                 firsts[i], ops, firsts[i]);
        cr_expect_eq(r.rc, 2, "%s", r.err);
        cr_expect(tu_starts_with(r.err, want), "%s", r.err);
        tu_cli_free(&r);
    }
    tu_cli_result r = tu_cli("check '%s' '%s'", ckpt, ckpt);
    cr_expect_eq(r.rc, 2);
    cr_expect(strstr(r.err, "is a checkpoint\n"), "%s", r.err);
    tu_cli_free(&r);
    r = tu_cli("check '%s' '%s'", ops, dir);
    cr_expect_eq(r.rc, 0, "%s%s", r.out, r.err);
    tu_cli_free(&r);
    free(ops);
    free(ckpt);
    tu_rmtree(dir);
    free(dir);
}

Test(check, write_ops_failures_give_the_errno_and_leave_no_file)
{
    char *dir = tu_mkdtemp(), *ops, *ckpt = w_ckpt(dir, &ops), *out;
    cr_assert(asprintf(&out, "%s/no/such/dir/fixed.txt", dir) > 0);
    tu_cli_result r = tu_cli("check --write-ops '%s' '%s' '%s'", out, ops, ckpt);
    cr_expect_eq(r.rc, 1);
    char want[1024];
    snprintf(want, sizeof want, "trestle: --write-ops: cannot write %s: No such file or "
             "directory\n", out);
    cr_expect_str_eq(r.err, want);
    tu_cli_free(&r);
    /* A restore that fails gets no file, and says so. */
    free(out);
    cr_assert(asprintf(&out, "%s/fixed.txt", dir) > 0);
    char *bad = ops_file(dir, "nope\n");
    r = tu_cli("check --write-ops '%s' '%s' '%s'", out, bad, ckpt);
    cr_expect_eq(r.rc, 1);
    snprintf(want, sizeof want, "trestle: --write-ops: nothing written to %s: the restore "
             "fails\n", out);
    cr_expect_str_eq(r.err, want);
    cr_expect_eq(access(out, F_OK), -1);
    tu_cli_free(&r);
    free(bad);
    free(out);
    free(ops);
    free(ckpt);
    tu_rmtree(dir);
    free(dir);
}
