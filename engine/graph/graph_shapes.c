/*
 * graph_shapes.c - the shapes of the variables a graph's restore ops feed.
 *
 * A RestoreV2 op list names keys, slices and dtypes but no shapes; the
 * shapes are in the variables. In a TF1 graph the saver assigns output k of
 * its restore node to a variable (Assign, or AssignVariableOp for resource
 * variables, possibly through an Identity), and that variable (VariableV2,
 * VarHandleOp) declares its "shape". Knowing it lets `trestle check` tell
 * two same-dtype candidates apart (a renumbered layer) for whole-tensor
 * ops. The search only reads nodes the restore op already reached, and any
 * surprise leaves a shape unknown: shapes are evidence, never required.
 */
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "graph.h"
#include "graph.pb-c.h"
#include "trestle_graph.h"

#define MAX_IDENTITY_HOPS 8 /* Identity nodes between a restore output and its Assign */

/* The node and output index an input names: "n" (0), "n:3" and, inside
 * functions, "n:tensors:3" (3). Returns the node name's length. */
static size_t parse_input(const char *input, size_t *out)
{
    size_t len = strcspn(input, ":");
    const char *last = strrchr(input, ':');
    *out = 0;
    if (last && last >= input + len && last[1] >= '0' && last[1] <= '9') {
        char *end;
        unsigned long v = strtoul(last + 1, &end, 10);
        if (*end == '\0')
            *out = (size_t)v;
    }
    return len;
}

static int cmp_found(const void *key, const void *elem)
{
    const size_t *k = key;
    const tr_graph_found *f = elem;
    if (k[0] != f->scope)
        return (k[0] > f->scope) - (k[0] < f->scope);
    return (k[1] > f->node) - (k[1] < f->node);
}

/* Which op the value input of an assign node is, or -1: follow Identity
 * nodes to a restore node in `found`, then take its output index. */
static ptrdiff_t op_of_value(const tr_graph_nodes *t, size_t scope, const char *input,
                             const tr_graph_found *found, size_t nfound)
{
    const tr_graph_scope *sc = &t->scopes[scope];
    char *cur = strdup(input);
    ptrdiff_t op = -1;
    /* A control input ("^n") carries no value. */
    for (int hop = 0; cur && cur[0] != '^' && hop <= MAX_IDENTITY_HOPS; hop++) {
        size_t k, len = parse_input(cur, &k);
        ptrdiff_t j = trestle__graph_find_node(sc, cur, len);
        if (j < 0)
            break;
        size_t key[2] = { scope, (size_t)j };
        const tr_graph_found *f = bsearch(key, found, nfound, sizeof *found, cmp_found);
        if (f) {
            op = k < f->count ? (ptrdiff_t)(f->first + k) : -1;
            break;
        }
        Tensorflow__NodeDef *n;
        if (trestle__graph_unpack_node(t, &sc->nodes[j], &n, NULL) != TRESTLE_OK)
            break;
        char *next = strcmp(n->op, "Identity") == 0 && n->n_input > 0 ? strdup(n->input[0]) : NULL;
        tensorflow__node_def__free_unpacked(n, NULL);
        free(cur);
        cur = next;
    }
    free(cur);
    return op;
}

/* The declared shape of the variable `input` names, into *out (rank -1
 * when unknown or partly unknown). Returns 0, or -1 when out of memory. */
static int variable_shape(const tr_graph_nodes *t, size_t scope, const char *input,
                          tr_graph_shape *out)
{
    const tr_graph_scope *sc = &t->scopes[scope];
    size_t k, len = parse_input(input, &k);
    ptrdiff_t j = trestle__graph_find_node(sc, input, len);
    Tensorflow__NodeDef *n;
    out->rank = -1;
    out->dims = NULL;
    if (j < 0 || trestle__graph_unpack_node(t, &sc->nodes[j], &n, NULL) != TRESTLE_OK)
        return 0;
    const Tensorflow__AttrValue *v = trestle__graph_attr(n, "shape");
    const Tensorflow__TensorShapeProto *sp =
        v && v->value_case == TENSORFLOW__ATTR_VALUE__VALUE_SHAPE ? v->shape : NULL;
    int rc = 0;
    if (sp && !sp->unknown_rank && sp->n_dim <= 64) {
        int known = 1;
        for (size_t d = 0; d < sp->n_dim; d++)
            known &= sp->dim[d]->size >= 0;
        if (known) {
            int64_t *dims = malloc((sp->n_dim ? sp->n_dim : 1) * sizeof *dims);
            if (!dims) {
                rc = -1;
            } else {
                for (size_t d = 0; d < sp->n_dim; d++)
                    dims[d] = sp->dim[d]->size;
                out->dims = dims;
                out->rank = (int)sp->n_dim;
            }
        }
    }
    tensorflow__node_def__free_unpacked(n, NULL);
    return rc;
}

int trestle__graph_shapes(const tr_graph_nodes *t, const tr_graph_found *found, size_t nfound,
                          const size_t (*assigns)[2], size_t nassigns, trestle_graph *g,
                          trestle_error *err)
{
    if (nassigns == 0 || g->nops == 0)
        return TRESTLE_OK;
    g->shapes = malloc(g->nops * sizeof *g->shapes);
    if (!g->shapes)
        return trestle__error_simple(err, TRESTLE_E_NOMEM, "out of memory");
    for (size_t i = 0; i < g->nops; i++)
        g->shapes[i] = (tr_graph_shape){ -1, NULL };
    for (size_t a = 0; a < nassigns; a++) {
        size_t scope = assigns[a][0];
        Tensorflow__NodeDef *n;
        if (trestle__graph_unpack_node(t, &t->scopes[scope].nodes[assigns[a][1]], &n, NULL) !=
            TRESTLE_OK)
            continue;
        ptrdiff_t op = n->n_input >= 2 ? op_of_value(t, scope, n->input[1], found, nfound) : -1;
        int rc = 0;
        /* The first assign of an op decides; the others assign the same value. */
        if (op >= 0 && g->shapes[op].rank < 0)
            rc = variable_shape(t, scope, n->input[0], &g->shapes[op]);
        tensorflow__node_def__free_unpacked(n, NULL);
        if (rc != 0)
            return trestle__error_simple(err, TRESTLE_E_NOMEM, "out of memory");
    }
    /* trestle_graph_op_shapes() promises NULL when nothing is known. */
    int any = 0;
    for (size_t i = 0; i < g->nops; i++)
        any |= g->shapes[i].rank >= 0;
    if (!any) {
        free(g->shapes);
        g->shapes = NULL;
    }
    return TRESTLE_OK;
}

int trestle_graph_op_shape(const trestle_graph *g, size_t i, int *rank, const int64_t **dims)
{
    if (!g || !rank || !dims || i >= g->nops)
        return TRESTLE_E_INVALID_ARG;
    *rank = g->shapes ? g->shapes[i].rank : -1;
    *dims = g->shapes ? g->shapes[i].dims : NULL;
    return TRESTLE_OK;
}

const trestle_shape *trestle_graph_op_shapes(const trestle_graph *g)
{
    return g ? g->shapes : NULL;
}
