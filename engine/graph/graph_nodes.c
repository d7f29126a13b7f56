/*
 * graph_nodes.c - finding and decoding the nodes of a graph file's
 * GraphDef and function library: the name index, lookups by name in a
 * scope (the graph or one function), and a node's attrs. Beneath both the
 * saver walk (engine/graph/graph_restore.c) and the variable shapes
 * (engine/graph/graph_shapes.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "graph.h"
#include "graph.pb-c.h"

/* ---- name lookups ---- */

static int cmp_bytes(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
    size_t n = alen < blen ? alen : blen;
    int c = n ? memcmp(a, b, n) : 0; /* a nameless node has a NULL name */
    return c ? c : (alen > blen) - (alen < blen);
}

static int cmp_node(const void *x, const void *y, void *ctx)
{
    const tr_graph_node *nodes = ctx;
    const tr_graph_node *a = &nodes[*(const size_t *)x], *b = &nodes[*(const size_t *)y];
    return cmp_bytes(a->name, a->name_len, b->name, b->name_len);
}

static int cmp_fn(const void *x, const void *y, void *ctx)
{
    const tr_graph_scope *s = ctx;
    const tr_graph_scope *a = &s[*(const size_t *)x], *b = &s[*(const size_t *)y];
    return cmp_bytes(a->fname, a->fname_len, b->fname, b->fname_len);
}

int trestle__graph_index(tr_graph_nodes *t, trestle_error *err)
{
    for (size_t s = 0; s < t->n; s++) {
        tr_graph_scope *sc = &t->scopes[s];
        sc->by_name = malloc((sc->n ? sc->n : 1) * sizeof *sc->by_name);
        if (!sc->by_name)
            return trestle__error_simple(err, TRESTLE_E_NOMEM, "out of memory indexing %s",
                                         t->path);
        for (size_t i = 0; i < sc->n; i++)
            sc->by_name[i] = i;
        qsort_r(sc->by_name, sc->n, sizeof *sc->by_name, cmp_node, sc->nodes);
    }
    t->fn_by_name = malloc(t->n * sizeof *t->fn_by_name);
    if (!t->fn_by_name)
        return trestle__error_simple(err, TRESTLE_E_NOMEM, "out of memory indexing %s", t->path);
    for (size_t s = 1; s < t->n; s++)
        t->fn_by_name[s - 1] = s;
    qsort_r(t->fn_by_name, t->n - 1, sizeof *t->fn_by_name, cmp_fn, t->scopes);
    return TRESTLE_OK;
}

/* Index of the node called `name` (len bytes) in scope `sc`, or -1. */
ptrdiff_t trestle__graph_find_node(const tr_graph_scope *sc, const char *name, size_t len)
{
    size_t lo = 0, hi = sc->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const tr_graph_node *nd = &sc->nodes[sc->by_name[mid]];
        int c = cmp_bytes(nd->name, nd->name_len, (const uint8_t *)name, len);
        if (c == 0)
            return (ptrdiff_t)sc->by_name[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

/* Scope index of the library function `name`, or 0 when there is none. */
size_t trestle__graph_find_function(const tr_graph_nodes *t, const char *name)
{
    size_t len = strlen(name), lo = 0, hi = t->n - 1;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const tr_graph_scope *sc = &t->scopes[t->fn_by_name[mid]];
        int c = cmp_bytes(sc->fname, sc->fname_len, (const uint8_t *)name, len);
        if (c == 0)
            return t->fn_by_name[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return 0;
}

/* ---- decoding one node ---- */

int trestle__graph_unpack_node(const tr_graph_nodes *t, const tr_graph_node *nd,
                               Tensorflow__NodeDef **out, trestle_error *err)
{
    *out = tensorflow__node_def__unpack(NULL, nd->body.len, nd->body.p);
    if (!*out)
        return trestle__error_set(err, TRESTLE_E_CORRUPT, 0, NULL, t->path,
                                  (int64_t)nd->body.offset, (int64_t)nd->body.len,
                                  "%s: the NodeDef at byte offset %zu (%zu bytes) does not decode",
                                  t->path, nd->body.offset, nd->body.len);
    return TRESTLE_OK;
}

const Tensorflow__AttrValue *trestle__graph_attr(const Tensorflow__NodeDef *n, const char *key)
{
    for (size_t i = 0; i < n->n_attr; i++)
        if (n->attr[i]->key && strcmp(n->attr[i]->key, key) == 0)
            return n->attr[i]->value;
    return NULL;
}
