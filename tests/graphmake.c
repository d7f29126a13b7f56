/*
 * graphmake.c - a tiny TensorFlow graph writer for the graph suites
 * (test_graph_made.c, test_graph_shapes.c): NodeDefs, library functions,
 * MetaGraphDefs and SavedModels written field by field with protobuf-c, so
 * that a test can make what no real graph file has, hostile ones included,
 * and TF1 savers whose variables declare shapes (gm_write_saver_meta()).
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graphmake.h"
#include "testutil.h"

void put_len(trestle__buf *b, uint32_t field, const void *p, size_t n)
{
    cr_assert(trestle__buf_append_varint(b, (uint64_t)field << 3 | 2));
    cr_assert(trestle__buf_append_varint(b, n));
    cr_assert(trestle__buf_append(b, p, n));
}

void put_packed(trestle__buf *b, uint32_t field, const ProtobufCMessage *m)
{
    size_t n = protobuf_c_message_get_packed_size(m);
    uint8_t *tmp = malloc(n ? n : 1);
    protobuf_c_message_pack(m, tmp);
    put_len(b, field, tmp, n);
    free(tmp);
}

/* Append node `s` as field `field` of `b` (GraphDef 1, FunctionDef 3). */
void put_node(trestle__buf *b, uint32_t field, const nspec *s)
{
    Tensorflow__NodeDef nd = TENSORFLOW__NODE_DEF__INIT;
    Tensorflow__NodeDef__AttrEntry e[3] = { TENSORFLOW__NODE_DEF__ATTR_ENTRY__INIT,
                                            TENSORFLOW__NODE_DEF__ATTR_ENTRY__INIT,
                                            TENSORFLOW__NODE_DEF__ATTR_ENTRY__INIT };
    Tensorflow__NodeDef__AttrEntry *ep[3];
    Tensorflow__AttrValue v[3] = { TENSORFLOW__ATTR_VALUE__INIT, TENSORFLOW__ATTR_VALUE__INIT,
                                   TENSORFLOW__ATTR_VALUE__INIT };
    Tensorflow__AttrValue__ListValue list = TENSORFLOW__ATTR_VALUE__LIST_VALUE__INIT;
    Tensorflow__TensorProto tp = TENSORFLOW__TENSOR_PROTO__INIT;
    Tensorflow__TensorShapeProto shape = TENSORFLOW__TENSOR_SHAPE_PROTO__INIT;
    Tensorflow__TensorShapeProto__Dim dim = TENSORFLOW__TENSOR_SHAPE_PROTO__DIM__INIT;
    Tensorflow__TensorShapeProto__Dim *dimp = &dim;
    Tensorflow__NameAttrList fn = TENSORFLOW__NAME_ATTR_LIST__INIT;
    ProtobufCBinaryData sv[8];
    size_t ne = 0, nin = 0;

    nd.name = (char *)s->name;
    nd.op = (char *)s->op;
    while (nin < 8 && s->in[nin])
        nin++;
    nd.n_input = nin;
    nd.input = (char **)s->in;
    if (strcmp(s->op, "Const") == 0) {
        for (int i = 0; i < s->nstrs; i++)
            sv[i] = (ProtobufCBinaryData){ strlen(s->strs[i]), (uint8_t *)s->strs[i] };
        tp.dtype = TENSORFLOW__DATA_TYPE__DT_STRING;
        tp.n_string_val = (size_t)s->nstrs;
        tp.string_val = sv;
        if (s->dim >= 0) {
            dim.size = s->dim;
            shape.n_dim = 1;
            shape.dim = &dimp;
        }
        tp.tensor_shape = &shape;
        v[ne].value_case = TENSORFLOW__ATTR_VALUE__VALUE_TENSOR;
        v[ne].tensor = &tp;
        e[ne].key = "value";
        ne++;
    }
    if (s->ntypes) {
        list.n_type = (size_t)s->ntypes;
        list.type = (Tensorflow__DataType *)s->types;
        v[ne].value_case = TENSORFLOW__ATTR_VALUE__VALUE_LIST;
        v[ne].list = &list;
        e[ne].key = "dtypes";
        ne++;
    }
    if (s->dt) {
        v[ne].value_case = TENSORFLOW__ATTR_VALUE__VALUE_TYPE;
        v[ne].type = (Tensorflow__DataType)s->dt;
        e[ne].key = "dt";
        ne++;
    }
    if (s->func) {
        fn.name = (char *)s->func;
        v[ne].value_case = TENSORFLOW__ATTR_VALUE__VALUE_FUNC;
        v[ne].func = &fn;
        e[ne].key = "f";
        ne++;
    }
    for (size_t i = 0; i < ne; i++) {
        e[i].value = &v[i];
        ep[i] = &e[i];
    }
    nd.n_attr = ne;
    nd.attr = ep;
    put_packed(b, field, &nd.base);
}

void put_nodes(trestle__buf *b, uint32_t field, const nspec *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        put_node(b, field, &s[i]);
}

/* Append a FunctionDef named `name` holding `nodes` to library body `lib`. */
void put_function(trestle__buf *lib, const char *name, const nspec *nodes, size_t n)
{
    trestle__buf fn = { 0 }, sig = { 0 };
    put_len(&sig, 1, name, strlen(name));
    put_len(&fn, 1, sig.data, sig.len);
    put_nodes(&fn, 3, nodes, n);
    put_len(lib, 1, fn.data, fn.len);
    trestle__buf_free(&fn);
    trestle__buf_free(&sig);
}

/* A MetaGraphDef: tags, the graph's nodes, a library, the saver. */
void put_meta(trestle__buf *out, const char *tag, const nspec *nodes, size_t n,
                     const trestle__buf *lib, const char *restore_op)
{
    trestle__buf graph = { 0 };
    Tensorflow__MetaInfoDef info = TENSORFLOW__META_INFO_DEF__INIT;
    char *tags[1] = { (char *)tag };
    Tensorflow__SaverDef saver = TENSORFLOW__SAVER_DEF__INIT;
    info.tensorflow_version = "1.15.0";
    info.n_tags = tag ? 1 : 0;
    info.tags = tags;
    put_packed(out, 1, &info.base);
    put_nodes(&graph, 1, nodes, n);
    if (lib && lib->len)
        put_len(&graph, 2, lib->data, lib->len);
    put_len(out, 2, graph.data ? graph.data : (const uint8_t *)"", graph.len);
    if (restore_op) {
        saver.restore_op_name = (char *)restore_op;
        put_packed(out, 3, &saver.base);
    }
    trestle__buf_free(&graph);
}

void write_buf(const char *path, const trestle__buf *b)
{
    cr_assert_eq(tu_write_file(path, b->data, b->len), 0);
}

char *path_in(const char *dir, const char *name)
{
    char *p;
    cr_assert(asprintf(&p, "%s/%s", dir, name) > 0);
    return p;
}

/* The three nodes of one RestoreV2: names and specs constants, the restore. */
void fill_v2(nspec out[3], const char *node, int n, const char *const *names,
                    const char *const *specs, const int *types)
{
    static char buf[3][3][128];
    static int round;
    char (*b)[128] = buf[round++ % 3];
    snprintf(b[0], 128, "%s/tensor_names", node);
    snprintf(b[1], 128, "%s/shape_and_slices", node);
    snprintf(b[2], 128, "%s", node);
    memset(out, 0, 3 * sizeof *out);
    out[0] = (nspec){ .name = b[0], .op = "Const", .nstrs = n, .dim = n };
    out[1] = (nspec){ .name = b[1], .op = "Const", .nstrs = n, .dim = n };
    for (int i = 0; i < n; i++) {
        out[0].strs[i] = names[i];
        out[1].strs[i] = specs[i];
        out[2].types[i] = types[i];
    }
    out[2].name = b[2];
    out[2].op = "RestoreV2";
    out[2].in[0] = "save/Const";
    out[2].in[1] = b[0];
    out[2].in[2] = b[1];
    out[2].ntypes = n;
}

trestle_graph *open_ok(const char *path, const char *tag)
{
    trestle_graph *g = NULL;
    trestle_graph_options o;
    trestle_error err;
    trestle_graph_options_init(&o);
    o.tag = tag;
    int rc = trestle_graph_open(path, &o, &g, &err);
    cr_assert_eq(rc, TRESTLE_OK, "%s", err.message);
    return g;
}

/* Open must fail with `code`, a message naming the file and containing `needle`. */
void open_fails(const char *path, int code, const char *needle)
{
    trestle_graph *g = (trestle_graph *)1;
    trestle_error err;
    int rc = trestle_graph_open(path, NULL, &g, &err);
    cr_assert_eq(rc, code, "expected %s, got %s: %s", trestle_code_name(code),
                 trestle_code_name(rc), rc ? err.message : "");
    cr_expect_null(g);
    cr_expect(strstr(err.message, needle), "'%s' not in: %s", needle, err.message);
    cr_expect(strstr(err.message, path) || strstr(err.path, path) || strstr(path, err.path),
              "the error names no file: %s", err.message);
}

void write_float(trestle_writer *w, const char *name, int rank, const int64_t *dims,
                        int n, float base, int shard)
{
    float v[64];
    trestle_error err;
    for (int i = 0; i < n; i++)
        v[i] = base + (float)i;
    cr_assert_eq(trestle_writer_add(w, name, TRESTLE_DT_FLOAT, rank, dims, v,
                                    (uint64_t)n * 4, shard, &err), TRESTLE_OK, "%s", err.message);
}

/* A variable node (VariableV2, VarHandleOp) with "dtype" and "shape" attrs. */
void put_variable(trestle__buf *b, const char *name, const char *op, int dtype, int rank,
                         const int64_t *dims)
{
    Tensorflow__NodeDef nd = TENSORFLOW__NODE_DEF__INIT;
    Tensorflow__NodeDef__AttrEntry e[2] = { TENSORFLOW__NODE_DEF__ATTR_ENTRY__INIT,
                                            TENSORFLOW__NODE_DEF__ATTR_ENTRY__INIT };
    Tensorflow__NodeDef__AttrEntry *ep[2] = { &e[0], &e[1] };
    Tensorflow__AttrValue v[2] = { TENSORFLOW__ATTR_VALUE__INIT, TENSORFLOW__ATTR_VALUE__INIT };
    Tensorflow__TensorShapeProto shape = TENSORFLOW__TENSOR_SHAPE_PROTO__INIT;
    Tensorflow__TensorShapeProto__Dim dim[4], *dimp[4];
    for (int d = 0; d < rank; d++) {
        dim[d] = (Tensorflow__TensorShapeProto__Dim)TENSORFLOW__TENSOR_SHAPE_PROTO__DIM__INIT;
        dim[d].size = dims[d];
        dimp[d] = &dim[d];
    }
    shape.n_dim = (size_t)rank;
    shape.dim = dimp;
    nd.name = (char *)name;
    nd.op = (char *)op;
    e[0].key = "dtype";
    v[0].value_case = TENSORFLOW__ATTR_VALUE__VALUE_TYPE;
    v[0].type = (Tensorflow__DataType)dtype;
    e[0].value = &v[0];
    e[1].key = "shape";
    v[1].value_case = TENSORFLOW__ATTR_VALUE__VALUE_SHAPE;
    v[1].shape = &shape;
    e[1].value = &v[1];
    nd.n_attr = 2;
    nd.attr = ep;
    put_packed(b, 1, &nd.base);
}

void gm_write_saver_meta(const char *path, const gm_var *vars, size_t n)
{
    static char assign[GM_MAX_VARS][64], value[GM_MAX_VARS][64], control[GM_MAX_VARS][66];
    trestle__buf graph = { 0 }, meta = { 0 };
    Tensorflow__MetaInfoDef info = TENSORFLOW__META_INFO_DEF__INIT;
    Tensorflow__SaverDef saver = TENSORFLOW__SAVER_DEF__INIT;
    const char *names[GM_MAX_VARS], *specs[GM_MAX_VARS];
    int types[GM_MAX_VARS];
    nspec nodes[5 + GM_MAX_VARS] = {
        { .name = "save/Const", .op = "Const", .nstrs = 1, .strs = { "model" }, .dim = -1 },
    };
    cr_assert(n >= 1 && n <= GM_MAX_VARS);
    for (size_t i = 0; i < n; i++) {
        names[i] = vars[i].name;
        specs[i] = "";
        types[i] = vars[i].dtype;
    }
    fill_v2(&nodes[1], "save/RestoreV2", (int)n, names, specs, types);
    nodes[4] = (nspec){ .name = "save/restore_all", .op = "NoOp" };
    /* save/Assign_i = Assign(variable, save/RestoreV2:i), run by restore_all. */
    for (size_t i = 0; i < n; i++) {
        snprintf(assign[i], sizeof assign[i], "save/Assign_%zu", i);
        snprintf(value[i], sizeof value[i], "save/RestoreV2:%zu", i);
        snprintf(control[i], sizeof control[i], "^%s", assign[i]);
        nodes[5 + i] = (nspec){ .name = assign[i], .op = "Assign", .in = { vars[i].name, value[i] } };
        nodes[4].in[i] = control[i];
    }
    info.tensorflow_version = "1.15.0";
    put_packed(&meta, 1, &info.base);
    put_nodes(&graph, 1, nodes, 5 + n);
    for (size_t i = 0; i < n; i++)
        put_variable(&graph, vars[i].name, "VariableV2", vars[i].dtype, vars[i].rank,
                     vars[i].dims);
    put_len(&meta, 2, graph.data, graph.len);
    saver.restore_op_name = "save/restore_all";
    put_packed(&meta, 3, &saver.base);
    write_buf(path, &meta);
    trestle__buf_free(&graph);
    trestle__buf_free(&meta);
}
