/*
 * graph_restore.c - find what a graph's saver restores: start at the
 * SaverDef's restore op, follow inputs, control inputs and function calls,
 * and turn every restore node reached into ops.
 *
 * Why follow the saver instead of taking every RestoreV2 in the file: an
 * Estimator's warm start adds RestoreV2 nodes of its own
 * (checkpoint_initializer_N), and a SavedModel may carry two savers; only
 * the nodes the saver's restore op runs say what a restore needs. In TF2
 * SavedModels the restore op is a call (StatefulPartitionedCall, attr "f")
 * of a library function that holds the RestoreV2 nodes, so a call reached
 * enters the whole function.
 *
 * The three restore kernels and where their op lists live:
 *   RestoreV2     inputs (prefix, tensor_names, shape_and_slices), attr dtypes
 *   RestoreSlice  inputs (file_pattern, tensor_name, shape_and_slice), attr dt
 *   Restore       inputs (file_pattern, tensor_name), attr dt
 * The name and spec inputs are DT_STRING Const nodes, possibly behind
 * Identity nodes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "graph.h"
#include "graph.pb-c.h"
#include "trestle_graph.h"

/* The node an input names: "^ctl", "node", "node:1" and, inside functions,
 * "node:output:0" all name `node`. Sets *len to the name's length. */
static const char *input_node(const char *input, size_t *len)
{
    if (input[0] == '^')
        input++;
    *len = strcspn(input, ":");
    return input;
}

static int is_restore_op(const char *op)
{
    return strcmp(op, "RestoreV2") == 0 || strcmp(op, "RestoreSlice") == 0 ||
           strcmp(op, "Restore") == 0;
}

/* ---- the walk ---- */

/* A growing list of (scope, node) pairs. */
typedef struct node_list {
    size_t (*at)[2];
    size_t n, cap;
} node_list;

static int list_add(node_list *l, size_t scope, size_t node)
{
    void *grown = tr_graph_grow(l->at, &l->cap, l->n, sizeof *l->at, 16);
    if (!grown)
        return -1;
    l->at = grown;
    l->at[l->n][0] = scope;
    l->at[l->n][1] = node;
    l->n++;
    return 0;
}

typedef struct walk {
    const tr_graph_nodes *t;
    unsigned char **seen;     /* per scope: node queued */
    unsigned char *entered;   /* per scope: function entered */
    size_t (*queue)[2];       /* (scope, node) to visit */
    size_t head, tail, qcap;
    node_list found;          /* restore nodes reached */
    node_list assigns;        /* Assign/AssignVariableOp nodes reached, for shapes */
} walk;

static int push(walk *w, size_t scope, size_t node)
{
    if (w->seen[scope][node])
        return 0;
    w->seen[scope][node] = 1;
    /* Each node is queued at most once, so the queue never outgrows the
     * node count; grow it geometrically up to that. */
    void *grown = tr_graph_grow(w->queue, &w->qcap, w->tail, sizeof *w->queue, 256);
    if (!grown)
        return -1;
    w->queue = grown;
    w->queue[w->tail][0] = scope;
    w->queue[w->tail][1] = node;
    w->tail++;
    return 0;
}

/* A call of function `name` reached: queue all of its nodes once. */
static int enter_function(walk *w, const char *name)
{
    size_t s = name ? trestle__graph_find_function(w->t, name) : 0;
    if (s == 0 || w->entered[s])
        return 0;
    w->entered[s] = 1;
    for (size_t i = 0; i < w->t->scopes[s].n; i++)
        if (push(w, s, i) != 0)
            return -1;
    return 0;
}

/* Queue what node `n` of `scope` depends on: inputs and called functions. */
static int follow(walk *w, size_t scope, const Tensorflow__NodeDef *n)
{
    for (size_t i = 0; i < n->n_input; i++) {
        size_t len;
        const char *name = input_node(n->input[i], &len);
        ptrdiff_t j = trestle__graph_find_node(&w->t->scopes[scope], name, len);
        if (j >= 0 && push(w, scope, (size_t)j) != 0)
            return -1;
    }
    if (enter_function(w, n->op) != 0)
        return -1;
    for (size_t i = 0; i < n->n_attr; i++) {
        const Tensorflow__AttrValue *v = n->attr[i]->value;
        if (!v)
            continue;
        if (v->value_case == TENSORFLOW__ATTR_VALUE__VALUE_FUNC && v->func &&
            enter_function(w, v->func->name) != 0)
            return -1;
        if (v->value_case == TENSORFLOW__ATTR_VALUE__VALUE_LIST && v->list)
            for (size_t k = 0; k < v->list->n_func; k++)
                if (enter_function(w, v->list->func[k]->name) != 0)
                    return -1;
    }
    return 0;
}

static int cmp_found(const void *x, const void *y)
{
    const size_t *a = x, *b = y;
    if (a[0] != b[0])
        return (a[0] > b[0]) - (a[0] < b[0]);
    return (a[1] > b[1]) - (a[1] < b[1]);
}

/* ---- from restore node to ops ---- */

/* A DT_STRING constant feeding a restore node. */
typedef struct strings {
    Tensorflow__NodeDef *node;          /* the Const (owned) */
    const Tensorflow__TensorProto *value;
    uint64_t n;                         /* elements of its shape */
} strings;

/* Element i: string_val[i], or the last value repeated when the constant
 * stores fewer values than elements (TensorFlow's rule), or "". */
static ProtobufCBinaryData string_at(const strings *s, uint64_t i)
{
    ProtobufCBinaryData none = { 0, NULL };
    size_t have = s->value->n_string_val;
    if (have == 0)
        return none;
    return s->value->string_val[i < have ? i : have - 1];
}

static int node_fail(const tr_graph_nodes *t, const tr_graph_node *nd, const char *name,
                     trestle_error *err, const char *fmt, const char *detail)
{
    return trestle__error_set(err, TRESTLE_E_CORRUPT, 0, NULL, t->path, (int64_t)nd->body.offset,
                              (int64_t)nd->body.len,
                              "%s: restore node '%s' (NodeDef at byte offset %zu): %s%s", t->path,
                              name, nd->body.offset, fmt, detail ? detail : "");
}

/*
 * Resolve input `which` of restore node `rn` (in `scope`) to a DT_STRING
 * Const, through Identity nodes, and check its element count is `want`
 * (or any count when `want` is UINT64_MAX).
 */
static int const_strings(const tr_graph_nodes *t, size_t scope, const tr_graph_node *rnd,
                         const Tensorflow__NodeDef *rn, size_t which, const char *what,
                         uint64_t want, strings *out, trestle_error *err)
{
    const tr_graph_scope *sc = &t->scopes[scope];
    memset(out, 0, sizeof *out);
    if (rn->n_input <= which || rn->input[which][0] == '^')
        return node_fail(t, rnd, rn->name, err, "missing input ", what);
    size_t len;
    const char *name = input_node(rn->input[which], &len);
    ptrdiff_t j = trestle__graph_find_node(sc, name, len);
    for (int hop = 0; hop <= TR_GRAPH_MAX_HOPS; hop++) {
        if (j < 0)
            return node_fail(t, rnd, rn->name, err, "is not fed by a constant: ", what);
        Tensorflow__NodeDef *n;
        int rc = trestle__graph_unpack_node(t, &sc->nodes[j], &n, err);
        if (rc != TRESTLE_OK)
            return rc;
        if (strcmp(n->op, "Identity") == 0) {
            /* Look through: the constant is the Identity's first input. */
            j = -1;
            if (n->n_input > 0 && n->input[0][0] != '^') {
                name = input_node(n->input[0], &len);
                j = trestle__graph_find_node(sc, name, len);
            }
            tensorflow__node_def__free_unpacked(n, NULL);
            continue;
        }
        const Tensorflow__AttrValue *v = trestle__graph_attr(n, "value");
        const Tensorflow__TensorProto *tp =
            v && v->value_case == TENSORFLOW__ATTR_VALUE__VALUE_TENSOR ? v->tensor : NULL;
        if (strcmp(n->op, "Const") != 0 || !tp || tp->dtype != TENSORFLOW__DATA_TYPE__DT_STRING) {
            tensorflow__node_def__free_unpacked(n, NULL);
            return node_fail(t, rnd, rn->name, err, "is not fed by a string constant: ", what);
        }
        uint64_t elems = 1;
        int bad = tp->tensor_shape == NULL ? 0 : tp->tensor_shape->unknown_rank;
        for (size_t d = 0; tp->tensor_shape && d < tp->tensor_shape->n_dim; d++) {
            int64_t sz = tp->tensor_shape->dim[d]->size;
            if (sz < 0 || (uint64_t)sz > TR_GRAPH_MAX_OPS ||
                elems * (uint64_t)sz > TR_GRAPH_MAX_OPS)
                bad = 1;
            else
                elems *= (uint64_t)sz;
        }
        if (bad || tp->n_string_val > elems ||
            (want != UINT64_MAX && elems != want)) {
            tensorflow__node_def__free_unpacked(n, NULL);
            return node_fail(t, rnd, rn->name, err,
                             "its constant's shape does not match its dtypes: ", what);
        }
        out->node = n;
        out->value = tp;
        out->n = elems;
        return TRESTLE_OK;
    }
    return node_fail(t, rnd, rn->name, err, "too many Identity nodes before constant ", what);
}

static void strings_free(strings *s)
{
    if (s->node)
        tensorflow__node_def__free_unpacked(s->node, NULL);
    s->node = NULL;
}

static int valid_dtype(int dt)
{
    return dt > TRESTLE_DT_INVALID && dt < TRESTLE_DT_COUNT_;
}

/* Append one op; the name and spec bytes are copied. */
static int add_op(trestle_graph *g, ProtobufCBinaryData name, ProtobufCBinaryData spec,
                  int dtype)
{
    trestle_op *grown = tr_graph_grow(g->ops, &g->cap, g->nops, sizeof *grown, 64);
    if (!grown)
        return TRESTLE_E_NOMEM;
    g->ops = grown;
    char *n = malloc(name.len + 1), *s = malloc(spec.len + 1);
    if (!n || !s) {
        free(n);
        free(s);
        return TRESTLE_E_NOMEM;
    }
    if (name.len)
        memcpy(n, name.data, name.len);
    n[name.len] = '\0';
    if (spec.len)
        memcpy(s, spec.data, spec.len);
    s[spec.len] = '\0';
    trestle_op *op = &g->ops[g->nops++];
    memset(op, 0, sizeof *op);
    op->name = n;
    op->shape_and_slices = s;
    op->dtype = dtype;
    op->dest_kind = TRESTLE_DEST_ALLOCATE;
    return TRESTLE_OK;
}

/* A key must be a non-empty C string: "" is the bundle header's key, and an
 * embedded NUL would silently cut the name. */
static const char *bad_key(ProtobufCBinaryData b)
{
    if (b.len == 0)
        return "an empty tensor name";
    if (memchr(b.data, 0, b.len))
        return "a tensor name with a NUL byte";
    return NULL;
}

static int restore_node_ops(const tr_graph_nodes *t, size_t scope, size_t idx, trestle_graph *g,
                            trestle_error *err)
{
    const tr_graph_node *nd = &t->scopes[scope].nodes[idx];
    Tensorflow__NodeDef *rn = NULL;
    strings names = { 0 }, specs = { 0 };
    int rc = trestle__graph_unpack_node(t, nd, &rn, err);
    if (rc != TRESTLE_OK)
        return rc;
    int v2 = strcmp(rn->op, "RestoreV2") == 0, slice = strcmp(rn->op, "RestoreSlice") == 0;
    const Tensorflow__AttrValue *types = trestle__graph_attr(rn, v2 ? "dtypes" : "dt");
    const int *dts;
    uint64_t n;
    if (v2) {
        if (!types || types->value_case != TENSORFLOW__ATTR_VALUE__VALUE_LIST || !types->list) {
            rc = node_fail(t, nd, rn->name, err, "has no dtypes list", NULL);
            goto done;
        }
        dts = (const int *)types->list->type;
        n = types->list->n_type;
    } else {
        if (!types || types->value_case != TENSORFLOW__ATTR_VALUE__VALUE_TYPE) {
            rc = node_fail(t, nd, rn->name, err, "has no dt attr", NULL);
            goto done;
        }
        dts = (const int *)&types->type;
        n = 1;
    }
    if (g->nops + n > TR_GRAPH_MAX_OPS) {
        rc = trestle__error_set(err, TRESTLE_E_LIMIT, 0, NULL, t->path, (int64_t)nd->body.offset,
                                -1, "%s: more than %u restore ops", t->path, TR_GRAPH_MAX_OPS);
        goto done;
    }
    if ((rc = const_strings(t, scope, nd, rn, 1, "tensor names", n, &names, err)) != TRESTLE_OK)
        goto done;
    if ((v2 || slice) &&
        (rc = const_strings(t, scope, nd, rn, 2, "shape_and_slices", n, &specs, err)) != TRESTLE_OK)
        goto done;
    for (uint64_t i = 0; i < n; i++) {
        ProtobufCBinaryData name = string_at(&names, i), none = { 0, NULL };
        ProtobufCBinaryData spec = specs.node ? string_at(&specs, i) : none;
        const char *why = bad_key(name);
        if (!why && memchr(spec.data ? spec.data : (const uint8_t *)"", 0, spec.len))
            why = "a shape_and_slices string with a NUL byte";
        if (why) {
            rc = node_fail(t, nd, rn->name, err, "asks for ", why);
            goto done;
        }
        if (!valid_dtype(dts[i])) {
            char detail[64];
            snprintf(detail, sizeof detail, "%d", dts[i]);
            rc = node_fail(t, nd, rn->name, err, "has a dtype that is not TensorFlow's: ", detail);
            goto done;
        }
        if (add_op(g, name, spec, dts[i]) != TRESTLE_OK) {
            rc = trestle__error_simple(err, TRESTLE_E_NOMEM, "out of memory reading %s", t->path);
            goto done;
        }
    }
    rc = TRESTLE_OK;
done:
    strings_free(&names);
    strings_free(&specs);
    tensorflow__node_def__free_unpacked(rn, NULL);
    return rc;
}

/* Drop ops that repeat an earlier op exactly (a key restored twice by two
 * restore nodes); the first stays where it was. */
static int cmp_op_index(const void *x, const void *y, void *ctx)
{
    const trestle_op *ops = ctx;
    size_t a = *(const size_t *)x, b = *(const size_t *)y;
    int c = strcmp(ops[a].name, ops[b].name);
    if (!c)
        c = strcmp(ops[a].shape_and_slices, ops[b].shape_and_slices);
    if (!c)
        c = (ops[a].dtype > ops[b].dtype) - (ops[a].dtype < ops[b].dtype);
    return c ? c : (a > b) - (a < b);
}

static int dedupe(trestle_graph *g)
{
    if (g->nops < 2)
        return TRESTLE_OK;
    size_t *order = malloc(g->nops * sizeof *order);
    unsigned char *drop = calloc(g->nops, 1);
    if (!order || !drop) {
        free(order);
        free(drop);
        return TRESTLE_E_NOMEM;
    }
    for (size_t i = 0; i < g->nops; i++)
        order[i] = i;
    qsort_r(order, g->nops, sizeof *order, cmp_op_index, g->ops);
    for (size_t i = 1; i < g->nops; i++) {
        const trestle_op *a = &g->ops[order[i - 1]], *b = &g->ops[order[i]];
        if (strcmp(a->name, b->name) == 0 &&
            strcmp(a->shape_and_slices, b->shape_and_slices) == 0 && a->dtype == b->dtype)
            drop[order[i]] = 1;
    }
    size_t kept = 0;
    for (size_t i = 0; i < g->nops; i++) {
        if (drop[i]) {
            free((char *)g->ops[i].name);
            free((char *)g->ops[i].shape_and_slices);
            if (g->shapes)
                free((int64_t *)g->shapes[i].dims);
            continue;
        }
        if (g->shapes)
            g->shapes[kept] = g->shapes[i];
        g->ops[kept++] = g->ops[i];
    }
    g->nops = kept;
    free(order);
    free(drop);
    return TRESTLE_OK;
}

int trestle__graph_collect(const tr_graph_nodes *t, const char *restore_op, trestle_graph *g,
                           trestle_error *err)
{
    walk w;
    tr_graph_found *found = NULL;
    int rc = TRESTLE_OK;
    memset(&w, 0, sizeof w);
    w.t = t;
    w.seen = calloc(t->n, sizeof *w.seen);
    w.entered = calloc(t->n, 1);
    TR_FAIL_IF(!w.seen || !w.entered, err, TRESTLE_E_NOMEM, "out of memory reading %s", t->path);
    for (size_t s = 0; s < t->n; s++) {
        w.seen[s] = calloc(t->scopes[s].n ? t->scopes[s].n : 1, 1);
        TR_FAIL_IF(!w.seen[s], err, TRESTLE_E_NOMEM, "out of memory reading %s", t->path);
    }

    size_t len;
    const char *start = input_node(restore_op, &len);
    ptrdiff_t first = trestle__graph_find_node(&t->scopes[0], start, len);
    if (first < 0) {
        rc = trestle__error_set(err, TRESTLE_E_CORRUPT, 0, NULL, t->path, -1, -1,
                                "%s: the saver's restore op '%s' is not a node of the graph",
                                t->path, restore_op);
        goto fail;
    }
    TR_FAIL_IF(push(&w, 0, (size_t)first) != 0, err, TRESTLE_E_NOMEM, "out of memory");
    while (w.head < w.tail) {
        size_t scope = w.queue[w.head][0], idx = w.queue[w.head][1];
        w.head++;
        Tensorflow__NodeDef *n;
        TR_FORWARD(trestle__graph_unpack_node(t, &t->scopes[scope].nodes[idx], &n, err));
        int restore = is_restore_op(n->op);
        int assign = strcmp(n->op, "Assign") == 0 || strcmp(n->op, "AssignVariableOp") == 0;
        int bad = follow(&w, scope, n) != 0;
        tensorflow__node_def__free_unpacked(n, NULL);
        TR_FAIL_IF(bad, err, TRESTLE_E_NOMEM, "out of memory reading %s", t->path);
        TR_FAIL_IF((restore && list_add(&w.found, scope, idx) != 0) ||
                       (assign && list_add(&w.assigns, scope, idx) != 0),
                   err, TRESTLE_E_NOMEM, "out of memory reading %s", t->path);
    }
    /* File order: shard 0's node before shard 1's, the graph before functions. */
    if (w.found.n > 1)
        qsort(w.found.at, w.found.n, sizeof *w.found.at, cmp_found);
    found = calloc(w.found.n ? w.found.n : 1, sizeof *found);
    TR_FAIL_IF(!found, err, TRESTLE_E_NOMEM, "out of memory reading %s", t->path);
    for (size_t i = 0; i < w.found.n; i++) {
        found[i] = (tr_graph_found){ w.found.at[i][0], w.found.at[i][1], g->nops, 0 };
        TR_FORWARD(restore_node_ops(t, w.found.at[i][0], w.found.at[i][1], g, err));
        found[i].count = g->nops - found[i].first;
    }
    g->restore_nodes = w.found.n;
    TR_FORWARD(trestle__graph_shapes(t, found, w.found.n, (const size_t(*)[2])w.assigns.at,
                                     w.assigns.n, g, err));
    TR_FAIL_IF(dedupe(g) != TRESTLE_OK, err, TRESTLE_E_NOMEM, "out of memory reading %s",
               t->path);
fail:
    for (size_t s = 0; w.seen && s < t->n; s++)
        free(w.seen[s]);
    free(w.seen);
    free(w.entered);
    free(w.queue);
    free(w.found.at);
    free(w.assigns.at);
    free(found);
    return rc;
}
