/*
 * fuzz_seeds_graph.c - the graph seeds of fuzz_seeds (tests/fuzz/fuzz_seeds.c):
 * small `.meta` files, written with protobuf-c, whose saver's restore op
 * reaches what the real graphs in the fixtures never do, so that the graph
 * reader's refusals start one mutation away: key constants behind Identity
 * nodes (and behind too many of them), a RestoreV2 without its dtypes, key
 * names that are empty or hold a NUL byte, a dtype TensorFlow does not
 * have, a key constant of negative or unknown shape, a sharded saver that
 * restores one key twice in different ways, and a restore op reached
 * through a function listed in an attr (a Case node's branches).
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "fuzz_seeds.h"
#include "graph.pb-c.h"

/* One NodeDef, described flatly. */
typedef struct node {
    const char *name, *op;
    const char *in[4];           /* inputs, NULL-terminated */
    const ProtobufCBinaryData *strs; /* Const: DT_STRING values */
    int nstrs;
    int64_t dim;                 /* Const: shape [dim]; -2: scalar; -3: unknown rank */
    const int *types;            /* RestoreV2: its dtypes */
    int ntypes;
    const char *branch;          /* Case: its one branch function */
} node;

static void put_len(trestle__buf *b, uint32_t field, const void *p, size_t n)
{
    if (!trestle__buf_append_varint(b, (uint64_t)field << 3 | 2) ||
        !trestle__buf_append_varint(b, n) || !trestle__buf_append(b, p, n))
        fuzz_seeds_fail("out of memory", NULL);
}

static void put_packed(trestle__buf *b, uint32_t field, const ProtobufCMessage *m)
{
    size_t n = protobuf_c_message_get_packed_size(m);
    uint8_t *tmp = malloc(n ? n : 1);
    if (!tmp)
        fuzz_seeds_fail("out of memory", NULL);
    protobuf_c_message_pack(m, tmp);
    put_len(b, field, tmp, n);
    free(tmp);
}

/* Node s as field `field` of b (GraphDef 1, FunctionDef 3). */
static void put_node(trestle__buf *b, uint32_t field, const node *s)
{
    Tensorflow__NodeDef nd = TENSORFLOW__NODE_DEF__INIT;
    Tensorflow__NodeDef__AttrEntry e = TENSORFLOW__NODE_DEF__ATTR_ENTRY__INIT, *ep = &e;
    Tensorflow__AttrValue v = TENSORFLOW__ATTR_VALUE__INIT;
    Tensorflow__AttrValue__ListValue list = TENSORFLOW__ATTR_VALUE__LIST_VALUE__INIT;
    Tensorflow__TensorProto tp = TENSORFLOW__TENSOR_PROTO__INIT;
    Tensorflow__TensorShapeProto shape = TENSORFLOW__TENSOR_SHAPE_PROTO__INIT;
    Tensorflow__TensorShapeProto__Dim dim = TENSORFLOW__TENSOR_SHAPE_PROTO__DIM__INIT;
    Tensorflow__TensorShapeProto__Dim *dimp = &dim;
    Tensorflow__NameAttrList fn = TENSORFLOW__NAME_ATTR_LIST__INIT, *fnp = &fn;
    size_t nin = 0;
    bool attr = true;
    while (nin < 4 && s->in[nin])
        nin++;
    nd.name = (char *)s->name;
    nd.op = (char *)s->op;
    nd.n_input = nin;
    nd.input = (char **)s->in;
    if (strcmp(s->op, "Const") == 0) {
        tp.dtype = TENSORFLOW__DATA_TYPE__DT_STRING;
        tp.n_string_val = (size_t)s->nstrs;
        tp.string_val = (ProtobufCBinaryData *)s->strs;
        if (s->dim >= -1) {
            dim.size = s->dim;
            shape.n_dim = 1;
            shape.dim = &dimp;
        }
        shape.unknown_rank = s->dim == -3;
        tp.tensor_shape = &shape;
        v.value_case = TENSORFLOW__ATTR_VALUE__VALUE_TENSOR;
        v.tensor = &tp;
        e.key = "value";
    } else if (s->types) {
        list.n_type = (size_t)s->ntypes;
        list.type = (Tensorflow__DataType *)s->types;
        v.value_case = TENSORFLOW__ATTR_VALUE__VALUE_LIST;
        v.list = &list;
        e.key = "dtypes";
    } else if (s->branch) {
        fn.name = (char *)s->branch;
        list.n_func = 1;
        list.func = &fnp;
        v.value_case = TENSORFLOW__ATTR_VALUE__VALUE_LIST;
        v.list = &list;
        e.key = "branches";
    } else {
        attr = false;
    }
    if (attr) {
        e.value = &v;
        nd.n_attr = 1;
        nd.attr = &ep;
    }
    put_packed(b, field, &nd.base);
}

/* DIR/NAME: a MetaGraphDef of `nodes` (and of function `fn_name` holding
 * `fn`, when given) whose saver restores through "save/restore_all". */
static void write_meta(const char *dir, const char *name, const node *nodes, size_t n,
                       const char *fn_name, const node *fn, size_t nfn)
{
    trestle__buf graph = { 0 }, out = { 0 };
    Tensorflow__SaverDef saver = TENSORFLOW__SAVER_DEF__INIT;
    for (size_t i = 0; i < n; i++)
        put_node(&graph, 1, &nodes[i]);
    if (fn_name) {
        trestle__buf lib = { 0 }, def = { 0 }, sig = { 0 };
        put_len(&sig, 1, fn_name, strlen(fn_name));
        put_len(&def, 1, sig.data, sig.len);
        for (size_t i = 0; i < nfn; i++)
            put_node(&def, 3, &fn[i]);
        put_len(&lib, 1, def.data, def.len);
        put_len(&graph, 2, lib.data, lib.len);
        trestle__buf_free(&lib);
        trestle__buf_free(&def);
        trestle__buf_free(&sig);
    }
    put_len(&out, 2, graph.data ? graph.data : (const uint8_t *)"", graph.len);
    saver.restore_op_name = "save/restore_all";
    put_packed(&out, 3, &saver.base);
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(out.data, 1, out.len, f) != out.len || fclose(f) != 0)
        fuzz_seeds_fail(path, NULL);
    trestle__buf_free(&graph);
    trestle__buf_free(&out);
}

#define B(s) { sizeof(s) - 1, (uint8_t *)(s) }

void fuzz_seeds_graphs(const char *dir)
{
    static const ProtobufCBinaryData prefix[] = { B("model") }, names[] = { B("w"), B("b") },
                                     specs[] = { B(""), B("") },
                                     empty_name[] = { B(""), B("b") },
                                     nul_name[] = { B("a\0b"), B("b") },
                                     nul_spec[] = { B(""), B("x\0y") };
    static const int floats[] = { 1, 1 }, odd_types[] = { 1, 999 };
    /* The saver around every RestoreV2 here: prefix, two assigns, the op. */
    node base[] = {
        { .name = "save/Const", .op = "Const", .strs = prefix, .nstrs = 1, .dim = -2 },
        { .name = "save/Assign", .op = "Assign", .in = { "w", "save/RestoreV2" } },
        { .name = "save/Assign_1", .op = "Assign", .in = { "b", "save/RestoreV2:1" } },
        { .name = "save/restore_all", .op = "NoOp",
          .in = { "^save/Assign", "^save/Assign_1" } },
    };
    node g[8 + 80];
#define WITH(...)                                                                              \
    do {                                                                                       \
        node extra[] = { __VA_ARGS__ };                                                        \
        memcpy(g, base, sizeof base);                                                          \
        memcpy(g + 4, extra, sizeof extra);                                                    \
        n = 4 + sizeof extra / sizeof extra[0];                                                \
    } while (0)
    size_t n;

    /* The key constants behind Identity nodes, as graph rewriting leaves them. */
    WITH({ .name = "names", .op = "Const", .strs = names, .nstrs = 2, .dim = 2 },
         { .name = "names/read", .op = "Identity", .in = { "names" } },
         { .name = "specs", .op = "Const", .strs = specs, .nstrs = 2, .dim = 2 },
         { .name = "specs/read", .op = "Identity", .in = { "specs" } },
         { .name = "specs/read/read", .op = "Identity", .in = { "specs/read" } },
         { .name = "save/RestoreV2", .op = "RestoreV2", .types = floats, .ntypes = 2,
           .in = { "save/Const", "names/read", "specs/read/read" } });
    write_meta(dir, "identity_chain.meta", g, n, NULL, NULL, 0);

    /* More Identity hops than the reader follows. */
    WITH({ .name = "names", .op = "Const", .strs = names, .nstrs = 2, .dim = 2 },
         { .name = "specs", .op = "Const", .strs = specs, .nstrs = 2, .dim = 2 },
         { .name = "save/RestoreV2", .op = "RestoreV2", .types = floats, .ntypes = 2,
           .in = { "save/Const", "hop_70", "specs" } });
    static char hop[71][16];
    for (int k = 1; k <= 70; k++) {
        snprintf(hop[k], sizeof hop[k], "hop_%d", k);
        g[n++] = (node){ .name = hop[k], .op = "Identity",
                         .in = { k == 1 ? "names" : hop[k - 1] } };
    }
    write_meta(dir, "identity_too_deep.meta", g, n, NULL, NULL, 0);

    /* A RestoreV2 without its dtypes attr. */
    WITH({ .name = "names", .op = "Const", .strs = names, .nstrs = 2, .dim = 2 },
         { .name = "specs", .op = "Const", .strs = specs, .nstrs = 2, .dim = 2 },
         { .name = "save/RestoreV2", .op = "RestoreV2", .in = { "save/Const", "names", "specs" } });
    write_meta(dir, "no_dtypes.meta", g, n, NULL, NULL, 0);

    /* An empty key; a key with a NUL byte; a spec with one; a dtype TF lacks. */
    const ProtobufCBinaryData *odd[][2] = { { empty_name, specs }, { nul_name, specs },
                                            { names, nul_spec }, { names, specs } };
    static const char *const odd_file[] = { "empty_key.meta", "nul_key.meta", "nul_spec.meta",
                                            "unknown_dtype.meta" };
    for (int k = 0; k < 4; k++) {
        WITH({ .name = "names", .op = "Const", .strs = odd[k][0], .nstrs = 2, .dim = 2 },
             { .name = "specs", .op = "Const", .strs = odd[k][1], .nstrs = 2, .dim = 2 },
             { .name = "save/RestoreV2", .op = "RestoreV2", .types = k == 3 ? odd_types : floats,
               .ntypes = 2, .in = { "save/Const", "names", "specs" } });
        write_meta(dir, odd_file[k], g, n, NULL, NULL, 0);
    }

    /* A V1 RestoreSlice without its dt attr. */
    static const ProtobufCBinaryData one_name[] = { B("w") }, one_spec[] = { B("") };
    WITH({ .name = "names", .op = "Const", .strs = one_name, .nstrs = 1, .dim = -2 },
         { .name = "specs", .op = "Const", .strs = one_spec, .nstrs = 1, .dim = -2 },
         { .name = "save/RestoreV2", .op = "RestoreSlice",
           .in = { "save/Const", "names", "specs" } });
    write_meta(dir, "restore_slice_no_dt.meta", g, n, NULL, NULL, 0);

    /* Key constants of negative and of unknown shape. */
    WITH({ .name = "names", .op = "Const", .strs = names, .nstrs = 2, .dim = -1 },
         { .name = "specs", .op = "Const", .strs = specs, .nstrs = 2, .dim = -3 },
         { .name = "save/RestoreV2", .op = "RestoreV2", .types = floats, .ntypes = 2,
           .in = { "save/Const", "names", "specs" } });
    write_meta(dir, "bad_const_shapes.meta", g, n, NULL, NULL, 0);

    /* A sharded saver whose two shards restore "w" twice, once sliced, and
     * "b" twice alike. */
    static const ProtobufCBinaryData specs2[] = { B("4 0,2"), B("") };
    static const int mixed[] = { 1, 2 };
    WITH({ .name = "names", .op = "Const", .strs = names, .nstrs = 2, .dim = 2 },
         { .name = "specs", .op = "Const", .strs = specs, .nstrs = 2, .dim = 2 },
         { .name = "specs_1", .op = "Const", .strs = specs2, .nstrs = 2, .dim = 2 },
         { .name = "save/RestoreV2", .op = "RestoreV2", .types = floats, .ntypes = 2,
           .in = { "save/Const", "names", "specs" } },
         { .name = "save/RestoreV2_1", .op = "RestoreV2", .types = mixed, .ntypes = 2,
           .in = { "save/Const", "names", "specs_1" } },
         { .name = "save/Assign_2", .op = "Assign", .in = { "w", "save/RestoreV2_1" } },
         { .name = "save/restore_shard", .op = "NoOp", .in = { "^save/Assign_2" } });
    g[3].in[2] = "^save/restore_shard";
    write_meta(dir, "sharded_duplicates.meta", g, n, NULL, NULL, 0);

    /* The restore op reached through a Case node's branch function. */
    node fn[] = {
        { .name = "names", .op = "Const", .strs = names, .nstrs = 2, .dim = 2 },
        { .name = "specs", .op = "Const", .strs = specs, .nstrs = 2, .dim = 2 },
        { .name = "prefix", .op = "Const", .strs = prefix, .nstrs = 1, .dim = -2 },
        { .name = "restore", .op = "RestoreV2", .types = floats, .ntypes = 2,
          .in = { "prefix", "names", "specs" } },
    };
    node call[] = {
        { .name = "save/restore_all", .op = "Case", .branch = "restore_fn" },
    };
    write_meta(dir, "case_branch_function.meta", call, 1, "restore_fn", fn, 4);
}
