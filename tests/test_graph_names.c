/*
 * test_graph_names.c - object-graph names (engine/graph/graph_names.c): a TF2
 * checkpoint's _CHECKPOINTABLE_OBJECT_GRAPH decoded into key -> graph name,
 * optimizer slots as VAR/SLOT; on the real TF2 checkpoints of
 * ../shared/fixtures/tf-real (LISTING.md's TF2 table), on object graphs
 * written here (damaged ones included), and through the CLI
 * (`inspect --names graph`, `restore --names graph`).
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "trackable_object_graph.pb-c.h"
#include "trestle_graph.h"

static trestle_names *open_names(const trestle_checkpoint *c)
{
    trestle_names *m = NULL;
    trestle_error err;
    cr_assert_eq(trestle_names_open(c, &m, &err), TRESTLE_OK, "%s", err.message);
    return m;
}

/* The graph name of `key`, or NULL when the map has no such key. */
static const char *graph_name(const trestle_names *m, const char *key)
{
    size_t at;
    trestle_name_info ni;
    if (trestle_names_find(m, key, &at) != TRESTLE_OK)
        return NULL;
    cr_assert_eq(trestle_names_get(m, at, &ni), TRESTLE_OK);
    return ni.graph_name;
}

/* LISTING.md, TF2 section: saved tensors, and one key -> full_name pair. */
static const struct {
    const char *ckpt, *key, *full_name;
    size_t tensors;
} tf2[] = {
    { "java_saved_model_using_python/variables", "variable/.ATTRIBUTES/VARIABLE_VALUE", "Variable", 1 },
    { "rust_regression_savedmodel/variables", "optimizer/iter/.ATTRIBUTES/VARIABLE_VALUE", "SGD/iter", 6 },
    { "serving_saved_model_half_plus_two_tf2_cpu/variables", "c/.ATTRIBUTES/VARIABLE_VALUE", "c", 3 },
    { "tfdeploy_keras_multiple_tf2alpha0/variables", "layer-0/.ATTRIBUTES/OBJECT_CONFIG_JSON", "", 5 },
    { "tfdf_adult_rf_bool/variables", "_is_trained/.ATTRIBUTES/VARIABLE_VALUE", "is_trained", 5 },
    { "tfjs_int64_multiply/variables", "v2/.ATTRIBUTES/VARIABLE_VALUE", "Variable", 2 },
    { "tfjs_model_multi_output/variables", "two/.ATTRIBUTES/VARIABLE_VALUE", "Variable", 2 },
    { "tfjs_times_two_int/variables", "v/.ATTRIBUTES/VARIABLE_VALUE", "Variable", 1 },
    { "tfkeras_lso_ckpt_2shards/ckpt", "layer_with_weights-0/bias/.ATTRIBUTES/VARIABLE_VALUE", "sequential/dense/bias", 10 },
    { "tfkeras_lso_savedmodel_2shards/variables", "optimizer/base_optimizer/iter/.ATTRIBUTES/VARIABLE_VALUE", "SGD/iter", 12 },
    { "tfranking_bert_lite_tf2/bert_lite_tf2.ckpt", "model/layer_with_weights-1/embeddings/.ATTRIBUTES/VARIABLE_VALUE", "position_embedding/embeddings", 24 },
    { "tfx_keras_savedmodel/variables", "layer_with_weights-0/kernel/.ATTRIBUTES/VARIABLE_VALUE", "", 27 },
    { "tfx_kerastuner_prefix_named_checkpoint/checkpoint", "layer_with_weights-1/kernel/.ATTRIBUTES/VARIABLE_VALUE", "dense_1/kernel", 29 },
    { "tfx_transform_fn/variables", NULL, NULL, 0 },
};

Test(graph_names, every_tf2_fixture_maps_its_keys_to_their_full_names)
{
    for (size_t i = 0; i < sizeof tf2 / sizeof tf2[0]; i++) {
        char rel[512];
        snprintf(rel, sizeof rel, "tf-real/%s", tf2[i].ckpt);
        trestle_checkpoint *c = tu_open(tu_fixture(rel), NULL);
        trestle_names *m = open_names(c);
        cr_expect_eq(trestle_names_count(m), tf2[i].tensors, "%s: %zu", tf2[i].ckpt,
                     trestle_names_count(m));
        /* Every key the map names exists in the checkpoint. */
        for (size_t k = 0; k < trestle_names_count(m); k++) {
            trestle_name_info ni;
            size_t at;
            cr_assert_eq(trestle_names_get(m, k, &ni), TRESTLE_OK);
            cr_expect_eq(trestle_tensor_find(c, ni.key, &at, NULL), TRESTLE_OK, "%s: %s",
                         tf2[i].ckpt, ni.key);
        }
        if (tf2[i].key) {
            const char *g = graph_name(m, tf2[i].key);
            cr_assert(g, "%s: %s not in the map", tf2[i].ckpt, tf2[i].key);
            cr_expect_str_eq(g, tf2[i].full_name, "%s", tf2[i].ckpt);
        }
        trestle_names_free(m);
        trestle_close(c);
    }
}

Test(graph_names, optimizer_slots_are_named_var_slash_slot)
{
    trestle_checkpoint *c =
        tu_open(tu_fixture("tf-real/tfkeras_lso_savedmodel_2shards/variables"), NULL);
    trestle_names *m = open_names(c);
    const char *slot = "layer_with_weights-0/kernel/.OPTIMIZER_SLOT/optimizer/base_optimizer/"
                       "momentum/.ATTRIBUTES/VARIABLE_VALUE";
    size_t at;
    trestle_name_info ni;
    cr_assert_eq(trestle_names_find(m, slot, &at), TRESTLE_OK);
    cr_assert_eq(trestle_names_get(m, at, &ni), TRESTLE_OK);
    cr_expect_str_eq(ni.graph_name, "sequential/dense/kernel/momentum");
    cr_expect_str_eq(ni.slot_name, "momentum");
    cr_expect_str_eq(ni.slot_of, "layer_with_weights-0/kernel/.ATTRIBUTES/VARIABLE_VALUE");
    cr_expect_str_eq(graph_name(m, "layer_with_weights-0/kernel/.ATTRIBUTES/VARIABLE_VALUE"),
                     "sequential/dense/kernel");
    cr_expect_eq(trestle_names_find(m, "_CHECKPOINTABLE_OBJECT_GRAPH", &at),
                 TRESTLE_E_KEY_NOT_FOUND);
    trestle_names_free(m);
    trestle_close(c);
}

Test(graph_names, a_tf1_checkpoint_has_no_name_map)
{
    trestle_checkpoint *c = tu_open(tu_fixture("tf-real/tf2onnx_regression_ckpt/model"), NULL);
    trestle_names *m = (trestle_names *)1;
    trestle_error err;
    cr_expect_eq(trestle_names_open(c, &m, &err), TRESTLE_E_KEY_NOT_FOUND);
    cr_expect_null(m);
    cr_expect(strstr(err.message, "not an object-based (TF2) checkpoint"), "%s", err.message);
    trestle_close(c);
    cr_expect_eq(trestle_names_count(NULL), 0);
    trestle_names_free(NULL);
}

/* ---- object graphs written here ---- */

typedef Tensorflow__TrackableObjectGraph__TrackableObject tobj;
typedef Tensorflow__TrackableObjectGraph__TrackableObject__SerializedTensor tser;
typedef Tensorflow__TrackableObjectGraph__TrackableObject__SlotVariableReference tslot;

/* A checkpoint holding float tensors `keys` and an object graph of `og_len` bytes. */
static char *write_ckpt(const char *dir, const char *const *keys, size_t n, const void *og,
                        size_t og_len)
{
    char *prefix;
    trestle_writer *w;
    trestle_error err;
    cr_assert(asprintf(&prefix, "%s/ckpt", dir) > 0);
    cr_assert_eq(trestle_writer_create(prefix, NULL, &w, &err), TRESTLE_OK);
    float v = 1.0f;
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(trestle_writer_add(w, keys[i], TRESTLE_DT_FLOAT, 0, NULL, &v, 4, 0, &err), 0);
    trestle_bytes s = { og, og_len };
    cr_assert_eq(trestle_writer_add_strings(w, "_CHECKPOINTABLE_OBJECT_GRAPH", 0, NULL, &s, 0,
                                            &err), TRESTLE_OK, "%s", err.message);
    cr_assert_eq(trestle_writer_finish(w, &err), TRESTLE_OK);
    trestle_writer_free(w);
    return prefix;
}

/* Two nodes: a variable (node 0: key k, full name "dense/kernel", with a
 * slot reference to node `slot_node`) and its slot "m" (node 1: key s). */
static uint8_t *pack_graph(int32_t slot_node, const char *second_key, size_t *len)
{
    tser var = TENSORFLOW__TRACKABLE_OBJECT_GRAPH__TRACKABLE_OBJECT__SERIALIZED_TENSOR__INIT;
    tser sl = TENSORFLOW__TRACKABLE_OBJECT_GRAPH__TRACKABLE_OBJECT__SERIALIZED_TENSOR__INIT;
    tslot ref = TENSORFLOW__TRACKABLE_OBJECT_GRAPH__TRACKABLE_OBJECT__SLOT_VARIABLE_REFERENCE__INIT;
    tobj n0 = TENSORFLOW__TRACKABLE_OBJECT_GRAPH__TRACKABLE_OBJECT__INIT;
    tobj n1 = TENSORFLOW__TRACKABLE_OBJECT_GRAPH__TRACKABLE_OBJECT__INIT;
    Tensorflow__TrackableObjectGraph g = TENSORFLOW__TRACKABLE_OBJECT_GRAPH__INIT;
    var.name = "VARIABLE_VALUE";
    var.full_name = "dense/kernel";
    var.checkpoint_key = "k/.ATTRIBUTES/VARIABLE_VALUE";
    sl.name = "VARIABLE_VALUE";
    sl.checkpoint_key = (char *)second_key;
    ref.original_variable_node_id = 0;
    ref.slot_name = "m";
    ref.slot_variable_node_id = slot_node;
    tser *a0[] = { &var }, *a1[] = { &sl };
    tslot *refs[] = { &ref };
    n0.n_attributes = 1;
    n0.attributes = a0;
    n0.n_slot_variables = 1;
    n0.slot_variables = refs;
    n1.n_attributes = 1;
    n1.attributes = a1;
    tobj *nodes[] = { &n0, &n1 };
    g.n_nodes = 2;
    g.nodes = nodes;
    *len = tensorflow__trackable_object_graph__get_packed_size(&g);
    uint8_t *buf = malloc(*len);
    tensorflow__trackable_object_graph__pack(&g, buf);
    return buf;
}

Test(graph_names, a_written_object_graph_names_its_slot_and_ignores_bad_references)
{
    static const char *const keys[] = { "k/.ATTRIBUTES/VARIABLE_VALUE",
                                        "k/.OPTIMIZER_SLOT/opt/m/.ATTRIBUTES/VARIABLE_VALUE" };
    for (int bad = 0; bad < 2; bad++) {
        char *dir = tu_mkdtemp();
        size_t len;
        /* bad: the slot reference points past the last node. */
        uint8_t *og = pack_graph(bad ? 77 : 1, keys[1], &len);
        char *prefix = write_ckpt(dir, keys, 2, og, len);
        trestle_checkpoint *c = tu_open(prefix, NULL);
        trestle_names *m = open_names(c);
        cr_expect_eq(trestle_names_count(m), 2);
        cr_expect_str_eq(graph_name(m, keys[0]), "dense/kernel");
        cr_expect_str_eq(graph_name(m, keys[1]), bad ? "" : "dense/kernel/m");
        trestle_names_free(m);
        trestle_close(c);
        free(og);
        free(prefix);
        tu_rmtree(dir);
        free(dir);
    }
}

Test(graph_names, damaged_object_graphs_are_corrupt)
{
    static const char *const keys[] = { "k/.ATTRIBUTES/VARIABLE_VALUE" };
    char *dir = tu_mkdtemp();
    size_t len;
    /* The same key twice. */
    uint8_t *og = pack_graph(1, keys[0], &len);
    char *prefix = write_ckpt(dir, keys, 1, og, len);
    trestle_checkpoint *c = tu_open(prefix, NULL);
    trestle_names *m = (trestle_names *)1;
    trestle_error err;
    cr_expect_eq(trestle_names_open(c, &m, &err), TRESTLE_E_CORRUPT);
    cr_expect_null(m);
    cr_expect(strstr(err.message, "lists checkpoint key 'k/.ATTRIBUTES/VARIABLE_VALUE' twice"),
              "%s", err.message);
    trestle_close(c);
    free(prefix);
    /* Bytes that are no protobuf. */
    prefix = write_ckpt(dir, keys, 1, "\x0a\xff\xff\xff\x0f", 5);
    c = tu_open(prefix, NULL);
    cr_expect_eq(trestle_names_open(c, &m, &err), TRESTLE_E_CORRUPT);
    cr_expect(strstr(err.message, "is not a TrackableObjectGraph protobuf"), "%s", err.message);
    trestle_close(c);
    free(prefix);
    free(og);
    tu_rmtree(dir);
    free(dir);
}

/* ---- the CLI ---- */

Test(graph_names_cli, inspect_shows_each_key_beside_its_graph_name)
{
    tu_cli_result r = tu_cli("inspect --names graph '%s'",
                             tu_fixture("tf-real/tfkeras_lso_ckpt_2shards/ckpt"));
    cr_assert_eq(r.rc, 0, "%s", r.err);
    cr_expect(strstr(r.out, "layer_with_weights-0/kernel/.ATTRIBUTES/VARIABLE_VALUE  "), "%s",
              r.out);
    cr_expect(strstr(r.out, "  sequential/dense/kernel\n"), "%s", r.out);
    cr_expect(strstr(r.out, "(the object graph)"), "%s", r.out);
    tu_cli_free(&r);

    r = tu_cli("inspect --names graph --json '%s'",
               tu_fixture("tf-real/tfjs_int64_multiply/variables"));
    cr_assert_eq(r.rc, 0, "%s", r.err);
    cr_expect(strstr(r.out, "{\"key\": \"v1/.ATTRIBUTES/VARIABLE_VALUE\", \"graph_name\": "
                            "\"Variable\", \"full_name\": \"Variable\"}"), "%s", r.out);
    tu_cli_free(&r);

    r = tu_cli("inspect --names graph '%s'", tu_fixture("tf-real/tf2onnx_regression_ckpt/model"));
    cr_expect_eq(r.rc, 1);
    cr_expect(strstr(r.err, "not an object-based (TF2) checkpoint"), "%s", r.err);
    tu_cli_free(&r);
    r = tu_cli("inspect --names nope '%s'", tu_fixture("tf-real/tf2onnx_regression_ckpt/model"));
    cr_expect_eq(r.rc, 2);
    tu_cli_free(&r);
}

Test(graph_names_cli, restore_takes_graph_names_but_not_ambiguous_ones)
{
    char *dir = tu_mkdtemp(), *ops;
    cr_assert(asprintf(&ops, "%s/ops.txt", dir) > 0);
    const char *text = "sequential/dense/kernel\nSGD/iter\tdtype=int64\n"
                       "sequential/dense/kernel/momentum\n";
    cr_assert_eq(tu_write_file(ops, text, strlen(text)), 0);
    const char *ckpt = tu_fixture("tf-real/tfkeras_lso_ckpt_2shards/ckpt");
    tu_cli_result r = tu_cli("restore -q --names graph --ops '%s' '%s'", ops, ckpt);
    cr_expect_eq(r.rc, 0, "%s", r.err);
    tu_cli_free(&r);
    r = tu_cli("restore -q --ops '%s' '%s'", ops, ckpt);
    cr_expect_eq(r.rc, 1);
    tu_cli_free(&r);
    /* v1 and v2 are both "Variable": no rule, so the key stays missing. */
    cr_assert_eq(tu_write_file(ops, "Variable\n", 9), 0);
    r = tu_cli("restore -q --names graph --ops '%s' '%s'", ops,
               tu_fixture("tf-real/tfjs_int64_multiply/variables"));
    cr_expect_eq(r.rc, 1);
    cr_expect(strstr(r.err, "Key Variable not found in checkpoint"), "%s", r.err);
    tu_cli_free(&r);
    free(ops);
    tu_rmtree(dir);
    free(dir);
}

Test(graph_names_cli, ops_diff_and_check_take_graph_names)
{
    const char *ckpt = tu_fixture("tf-real/tfkeras_lso_ckpt_2shards/ckpt");
    char *dir = tu_mkdtemp(), *ops;
    cr_assert(asprintf(&ops, "%s/ops.txt", dir) > 0);
    /* ops --names graph: the listing under graph names... */
    tu_cli_result r = tu_cli("ops -q --names graph '%s' > '%s'", ckpt, ops);
    cr_assert_eq(r.rc, 0, "%s", r.err);
    tu_cli_free(&r);
    size_t len;
    uint8_t *bytes = tu_read_file(ops, &len);
    cr_assert(bytes);
    char *text = malloc(len + 1); /* the bytes have no NUL of their own */
    memcpy(text, bytes, len);
    text[len] = '\0';
    free(bytes);
    cr_expect(strstr(text, "\nsequential/dense/kernel\t\tdtype=float\n"), "%s", text);
    cr_expect(strstr(text, "_CHECKPOINTABLE_OBJECT_GRAPH\t\tdtype=string\n"), "%s", text);
    free(text);
    /* ...which diff and check accept with --names graph, and not without. */
    r = tu_cli("diff --names graph --ops '%s' '%s'", ops, ckpt);
    cr_expect_eq(r.rc, 0, "%s%s", r.out, r.err);
    tu_cli_free(&r);
    r = tu_cli("diff --ops '%s' '%s'", ops, ckpt);
    cr_expect_eq(r.rc, 1, "%s%s", r.out, r.err);
    tu_cli_free(&r);
    r = tu_cli("check --names graph '%s' '%s'", ops, ckpt);
    cr_expect_eq(r.rc, 0, "%s%s", r.out, r.err);
    tu_cli_free(&r);
    r = tu_cli("check '%s' '%s'", ops, ckpt);
    cr_expect_eq(r.rc, 3, "%s%s", r.out, r.err);
    cr_expect(strstr(r.out, "  flags: --names graph\n"), "%s", r.out);
    tu_cli_free(&r);
    free(ops);
    tu_rmtree(dir);
    free(dir);
}

/* trestle_names_renames: one "graph=key" rule per graph name of its own,
 * none for a name two keys share (v1 and v2 are both "Variable"). */
Test(graph_names, renames_give_one_rule_per_unshared_graph_name)
{
    trestle_checkpoint *c = tu_open(tu_fixture("tf-real/tfkeras_lso_ckpt_2shards/ckpt"), NULL);
    trestle_names *m = open_names(c);
    const char *const *rules;
    size_t n = trestle_names_renames(m, &rules);
    cr_assert_gt(n, 0);
    int found = 0;
    for (size_t i = 0; i < n; i++) {
        cr_assert(strchr(rules[i], '='), "%s", rules[i]);
        if (i > 0) {
            /* Sorted by graph name: the part before '='. */
            size_t a = (size_t)(strchr(rules[i - 1], '=') - rules[i - 1]);
            size_t b = (size_t)(strchr(rules[i], '=') - rules[i]);
            int cmp = strncmp(rules[i - 1], rules[i], a < b ? a : b);
            cr_assert(cmp < 0 || (cmp == 0 && a < b), "%s before %s", rules[i - 1], rules[i]);
        }
        found |= strcmp(rules[i], "sequential/dense/bias=layer_with_weights-0/bias/.ATTRIBUTES/"
                                  "VARIABLE_VALUE") == 0;
    }
    cr_assert(found, "the dense bias rule is missing");
    trestle_names_free(m);
    trestle_close(c);

    c = tu_open(tu_fixture("tf-real/tfjs_int64_multiply/variables"), NULL);
    m = open_names(c);
    n = trestle_names_renames(m, &rules);
    for (size_t i = 0; i < n; i++)
        cr_assert(strncmp(rules[i], "Variable=", 9) != 0, "ambiguous: %s", rules[i]);
    trestle_names_free(m);
    trestle_close(c);
    cr_assert_eq(trestle_names_renames(NULL, &rules), 0);
    cr_assert_null(rules);
}

/* Issue 22: a graph name two keys share ("Variable" for v1 and v2) gave
 * only "Key Variable not found"; check and restore now name both keys. */
Test(graph_names_cli, a_graph_name_two_keys_share_names_both)
{
    const char *ckpt = tu_fixture("tf-real/tfjs_int64_multiply/variables");
    char *dir = tu_mkdtemp(), *ops;
    cr_assert(asprintf(&ops, "%s/ops.txt", dir) > 0);
    cr_assert_eq(tu_write_file(ops, "Variable\n", 9), 0);
    tu_cli_result r = tu_cli("check '%s' '%s'", ops, ckpt);
    cr_expect_eq(r.rc, 1, "%s%s", r.out, r.err);
    cr_expect(strstr(r.out, "  Variable  (ambiguous: v1/.ATTRIBUTES/VARIABLE_VALUE or "
                            "v2/.ATTRIBUTES/VARIABLE_VALUE; the object graph gives each this "
                            "graph name, --rename 'Variable=KEY' picks one)\n"), "%s", r.out);
    tu_cli_free(&r);
    const char *cmds[] = { "restore -q --names graph --ops '%s' '%s'",
                           "diff --names graph --ops '%s' '%s'" };
    for (int i = 0; i < 2; i++) {
        r = tu_cli(cmds[i], ops, ckpt);
        cr_expect_eq(r.rc, 1, "%s", r.err);
        cr_expect(strstr(r.err, "trestle: graph name 'Variable' is shared by 2 keys: "
                                "v1/.ATTRIBUTES/VARIABLE_VALUE and v2/.ATTRIBUTES/VARIABLE_VALUE; "
                                "name one by its key, or --rename 'Variable=KEY'\n"),
                  "%s: %s", cmds[i], r.err);
        tu_cli_free(&r);
    }
    /* With v1 restored by its key, v2 is the one key left with that name. */
    const char *text = "v1/.ATTRIBUTES/VARIABLE_VALUE\nVariable\n";
    cr_assert_eq(tu_write_file(ops, text, strlen(text)), 0);
    r = tu_cli("check '%s' '%s'", ops, ckpt);
    cr_expect_eq(r.rc, 3, "%s%s", r.out, r.err);
    cr_expect(strstr(r.out, "  flags: --rename 'Variable=v2/.ATTRIBUTES/VARIABLE_VALUE'\n"), "%s",
              r.out);
    tu_cli_free(&r);
    free(ops);
    tu_rmtree(dir);
    free(dir);
}
