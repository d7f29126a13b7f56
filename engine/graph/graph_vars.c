/*
 * graph_vars.c - the op list of a meta graph without a saver: what a
 * default tf.compat.v1.train.Saver() built on the graph would restore.
 *
 * Such a Saver saves the global variables (the "variables" collection, one
 * serialized VariableDef each), keyed by each variable's op name
 * (`dense/kernel` for `dense/kernel:0`); a partition of a partitioned
 * variable is keyed by the whole variable's name and restores its slice
 * ("full_shape offset,length:..."), as SaveSliceInfo.spec writes it. The
 * dtype and shape are not in the VariableDef but in the variable's node
 * (VariableV2 or VarHandleOp attrs "dtype" and "shape"), looked up in the
 * graph's own nodes; a variable whose node is absent restores with any
 * dtype and no known shape. Tables and other saveables are not variables
 * and are left out, as they are by trestle's op lists generally.
 *
 * Untrusted bytes: the collection map is walked field by field, each
 * VariableDef is decoded on its own (two messages, no recursion), and a
 * partition's rank is bounded.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "graph.h"
#include "graph.pb-c.h"
#include "trestle_graph.h"

#define GLOBAL_VARIABLES "variables" /* tf.compat.v1.GraphKeys.GLOBAL_VARIABLES */

static int malformed(trestle_error *err, const char *path, const char *what, size_t at,
                     const char *why)
{
    return trestle__error_set(err, TRESTLE_E_CORRUPT, 0, NULL, path, (int64_t)at, -1,
                              "%s: malformed %s at byte offset %zu: %s", path, what, at, why);
}

/* The variable node's "dtype" and "shape" attrs into op and *shape (rank -1
 * when unknown). Returns 0, or -1 when out of memory. */
static int node_facts(const tr_graph_nodes *t, const char *name, size_t len, trestle_op *op,
                      tr_graph_shape *shape)
{
    const tr_graph_scope *sc = &t->scopes[0];
    ptrdiff_t j = trestle__graph_find_node(sc, name, len);
    Tensorflow__NodeDef *n;
    shape->rank = -1;
    shape->dims = NULL;
    if (j < 0 || trestle__graph_unpack_node(t, &sc->nodes[j], &n, NULL) != TRESTLE_OK)
        return 0;
    const Tensorflow__AttrValue *dt = trestle__graph_attr(n, "dtype");
    if (dt && dt->value_case == TENSORFLOW__ATTR_VALUE__VALUE_TYPE && dt->type > 0 &&
        (int)dt->type < TRESTLE_DT_COUNT_)
        op->dtype = (int)dt->type;
    const Tensorflow__AttrValue *v = trestle__graph_attr(n, "shape");
    const Tensorflow__TensorShapeProto *sp =
        v && v->value_case == TENSORFLOW__ATTR_VALUE__VALUE_SHAPE ? v->shape : NULL;
    int rc = 0;
    if (sp && !sp->unknown_rank && sp->n_dim <= TRESTLE_MAX_SLICE_RANK) {
        int known = 1;
        for (size_t d = 0; d < sp->n_dim; d++)
            known &= sp->dim[d]->size >= 0;
        int64_t *dims = known ? malloc((sp->n_dim ? sp->n_dim : 1) * sizeof *dims) : NULL;
        if (known && !dims)
            rc = -1;
        if (dims) {
            for (size_t d = 0; d < sp->n_dim; d++)
                dims[d] = sp->dim[d]->size;
            shape->dims = dims;
            shape->rank = (int)sp->n_dim;
        }
    }
    tensorflow__node_def__free_unpacked(n, NULL);
    return rc;
}

/* "3 100 0,3:0,100" of a partition, or NULL (out of memory or, with
 * *bad set, a slice that does not fit its full shape). */
static char *partition_spec(const Tensorflow__SaveSliceInfoDef *si, int *bad)
{
    size_t r = si->n_full_shape, cap = 2 + r * 3 * 21;
    *bad = r == 0 || r > TRESTLE_MAX_SLICE_RANK || si->n_var_offset != r || si->n_var_shape != r;
    for (size_t d = 0; !*bad && d < r; d++)
        *bad = si->full_shape[d] < 0 || si->var_offset[d] < 0 || si->var_shape[d] < 0 ||
               si->var_offset[d] > si->full_shape[d] ||
               si->var_shape[d] > si->full_shape[d] - si->var_offset[d];
    char *s = *bad ? NULL : malloc(cap);
    if (!s)
        return NULL;
    size_t at = 0;
    for (size_t d = 0; d < r; d++)
        at += (size_t)snprintf(s + at, cap - at, "%" PRId64 " ", si->full_shape[d]);
    for (size_t d = 0; d < r; d++)
        at += (size_t)snprintf(s + at, cap - at, "%s%" PRId64 ",%" PRId64, d ? ":" : "",
                               si->var_offset[d], si->var_shape[d]);
    return s;
}

/* Append one op (name and spec owned from now on) with its shape. */
static int append(trestle_graph *g, char *name, char *spec, int dtype, tr_graph_shape shape)
{
    size_t cap = g->cap, scap = g->cap;
    trestle_op *ops = tr_graph_grow(g->ops, &cap, g->nops, sizeof *ops, 64);
    if (ops)
        g->ops = ops;
    tr_graph_shape *shapes = ops ? tr_graph_grow(g->shapes, &scap, g->nops, sizeof *shapes, 64)
                                 : NULL;
    if (!ops || !shapes) {
        free(name);
        free(spec);
        free((int64_t *)shape.dims);
        return TRESTLE_E_NOMEM;
    }
    g->shapes = shapes;
    g->cap = cap;
    g->ops[g->nops] = (trestle_op){ .name = name, .shape_and_slices = spec, .dtype = dtype,
                                    .dest_kind = TRESTLE_DEST_ALLOCATE };
    g->shapes[g->nops++] = shape;
    return TRESTLE_OK;
}

/* One serialized VariableDef at `vd` into g's ops. */
static int add_variable(const tr_graph_nodes *t, tr_pb_span vd, trestle_graph *g,
                        trestle_error *err)
{
    Tensorflow__VariableDef *v = tensorflow__variable_def__unpack(NULL, vd.len, vd.p);
    if (!v)
        return malformed(err, t->path, "VariableDef", vd.offset, "does not decode");
    const char *vname = v->variable_name ? v->variable_name : "";
    /* The op name: "dense/kernel:0" -> "dense/kernel". */
    size_t len = strcspn(vname, ":");
    tr_graph_shape shape = { -1, NULL };
    trestle_op op = { .dtype = TRESTLE_DT_INVALID };
    char *name = NULL, *spec = NULL;
    int rc = TRESTLE_OK, bad = 0;
    const Tensorflow__SaveSliceInfoDef *si = v->save_slice_info_def;
    if (len == 0 || (si && (!si->full_name || !si->full_name[0]))) {
        rc = malformed(err, t->path, "VariableDef", vd.offset, "a variable without a name");
        goto done;
    }
    if (node_facts(t, vname, len, &op, &shape) != 0)
        goto nomem;
    if (si) {
        /* The partition's own shape is its slice's; the key is the whole's. */
        name = strdup(si->full_name);
        spec = partition_spec(si, &bad);
        if (bad) {
            rc = malformed(err, t->path, "VariableDef", vd.offset,
                           "a partition whose offsets and shape do not fit its full shape");
            goto done;
        }
    } else {
        name = strndup(vname, len);
        spec = strdup("");
    }
    if (!name || !spec)
        goto nomem;
    rc = append(g, name, spec, op.dtype, shape);
    name = spec = NULL;
    shape.dims = NULL;
    if (rc != TRESTLE_OK)
        goto nomem;
done:
    free(name);
    free(spec);
    free((int64_t *)shape.dims);
    tensorflow__variable_def__free_unpacked(v, NULL);
    return rc;
nomem:
    rc = trestle__error_simple(err, TRESTLE_E_NOMEM, "out of memory reading %s", t->path);
    goto done;
}

/* CollectionDef (`col`): its bytes_list (2) values (1), VariableDefs each. */
static int add_collection(const tr_graph_nodes *t, tr_pb_span col, trestle_graph *g,
                          trestle_error *err)
{
    tr_pb_walk w = tr_pb_walk_begin(col);
    int rc;
    while ((rc = tr_pb_walk_next(&w)) == 1) {
        if (w.f.num != 2 || w.f.wire != TR_WIRE_LEN)
            continue;
        tr_pb_walk list = tr_pb_walk_begin(w.f.body);
        while ((rc = tr_pb_walk_next(&list)) == 1) {
            if (list.f.num != 1 || list.f.wire != TR_WIRE_LEN)
                continue;
            if (g->nops >= TR_GRAPH_MAX_OPS)
                return trestle__error_set(err, TRESTLE_E_LIMIT, 0, NULL, t->path,
                                          (int64_t)list.f.offset, -1,
                                          "%s: more than %u variables", t->path,
                                          TR_GRAPH_MAX_OPS);
            if ((rc = add_variable(t, list.f.body, g, err)) != TRESTLE_OK)
                return rc;
        }
        if (rc < 0)
            return malformed(err, t->path, "collection", list.bad, list.why);
    }
    return rc < 0 ? malformed(err, t->path, "collection", w.bad, w.why) : TRESTLE_OK;
}

int trestle__graph_variables(const tr_graph_nodes *t, tr_pb_span meta, trestle_graph *g,
                             trestle_error *err)
{
    tr_pb_walk w = tr_pb_walk_begin(meta);
    int rc;
    /* collection_def (4) is a map: entries of key (1) and CollectionDef (2). */
    while ((rc = tr_pb_walk_next(&w)) == 1) {
        if (w.f.num != 4 || w.f.wire != TR_WIRE_LEN)
            continue;
        tr_pb_span key = { NULL, 0, 0 }, value = { NULL, 0, 0 };
        tr_pb_walk e = tr_pb_walk_begin(w.f.body);
        while ((rc = tr_pb_walk_next(&e)) == 1) {
            if (e.f.wire == TR_WIRE_LEN && e.f.num == 1)
                key = e.f.body;
            else if (e.f.wire == TR_WIRE_LEN && e.f.num == 2)
                value = e.f.body;
        }
        if (rc < 0)
            return malformed(err, t->path, "collection_def entry", e.bad, e.why);
        if (key.len == sizeof GLOBAL_VARIABLES - 1 &&
            memcmp(key.p, GLOBAL_VARIABLES, key.len) == 0 && value.p &&
            (rc = add_collection(t, value, g, err)) != TRESTLE_OK)
            return rc;
    }
    if (rc < 0)
        return malformed(err, t->path, "MetaGraphDef", w.bad, w.why);
    /* Keep the shapes only when one is known, as the saver's path does. */
    int any = 0;
    for (size_t i = 0; g->shapes && i < g->nops; i++)
        any |= g->shapes[i].rank >= 0;
    if (!any) {
        free(g->shapes);
        g->shapes = NULL;
    }
    return TRESTLE_OK;
}
