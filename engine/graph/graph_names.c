/*
 * graph_names.c - the name map of a TF2 checkpoint: its
 * _CHECKPOINTABLE_OBJECT_GRAPH entry (a TrackableObjectGraph) decoded into
 * one row per saved tensor, checkpoint key beside the graph name.
 *
 * A TF2 checkpoint keys variables by object path
 * (layer_with_weights-0/kernel/.ATTRIBUTES/VARIABLE_VALUE); each
 * SerializedTensor also records full_name, the variable's graph name
 * (dense/kernel), which is what a TF1-style restore asks for. Optimizer
 * slots are their own nodes, tied to their variable by a
 * SlotVariableReference; their graph name is VAR/SLOT (dense/kernel/m),
 * as TF1's slot variables were named. The map sits beside planning, like
 * graphs: it turns names into renames, the planner never sees it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "trackable_object_graph.pb-c.h"
#include "trestle_graph.h"

#define OBJECT_GRAPH_KEY "_CHECKPOINTABLE_OBJECT_GRAPH"

typedef struct name_row {
    char *key, *full_name, *graph_name, *slot_name, *slot_of;
} name_row;

struct trestle_names {
    name_row *rows;     /* sorted by key */
    size_t n;
    char **renames;     /* trestle_names_renames(): "graph_name=key", by graph name */
    size_t nrenames;
};

void trestle_names_free(trestle_names *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->n; i++) {
        free(m->rows[i].key);
        free(m->rows[i].full_name);
        free(m->rows[i].graph_name);
        free(m->rows[i].slot_name);
        free(m->rows[i].slot_of);
    }
    for (size_t i = 0; i < m->nrenames; i++)
        free(m->renames[i]);
    free(m->renames);
    free(m->rows);
    free(m);
}

static int cmp_row(const void *a, const void *b)
{
    return strcmp(((const name_row *)a)->key, ((const name_row *)b)->key);
}

/* Read and decode the object graph entry's one string. */
static int read_object_graph(const trestle_checkpoint *c, uint8_t **buf, trestle_bytes *out,
                             trestle_error *err)
{
    size_t at;
    trestle_tensor_info t;
    int rc = trestle_tensor_find(c, OBJECT_GRAPH_KEY, &at, NULL);
    if (rc != TRESTLE_OK) {
        trestle_checkpoint_info ci;
        trestle_checkpoint_get_info(c, &ci);
        return trestle__error_set(err, TRESTLE_E_KEY_NOT_FOUND, 0, OBJECT_GRAPH_KEY, ci.index_path,
                                  -1, -1, "%s: no %s entry: not an object-based (TF2) checkpoint",
                                  ci.prefix, OBJECT_GRAPH_KEY);
    }
    trestle_tensor_get_info(c, at, &t);
    if (t.dtype != TRESTLE_DT_STRING || t.num_elements != 1 || t.kind == TRESTLE_TENSOR_PARTITIONED)
        return trestle__error_set(err, TRESTLE_E_CORRUPT, 0, OBJECT_GRAPH_KEY, NULL, -1, -1,
                                  "%s is not one string (dtype %s, %lld elements)",
                                  OBJECT_GRAPH_KEY, trestle_dtype_name(t.dtype),
                                  (long long)t.num_elements);
    /* The index already checked the size against the shard file. */
    *buf = malloc(t.size ? (size_t)t.size : 1);
    if (!*buf)
        return trestle__error_simple(err, TRESTLE_E_NOMEM, "out of memory reading %s",
                                     OBJECT_GRAPH_KEY);
    rc = trestle_tensor_read(c, at, *buf, (size_t)t.size, 1, err);
    if (rc == TRESTLE_OK)
        rc = trestle_strings_decode(*buf, t.size, 1, out, err);
    return rc;
}

static char *dup_or_empty(const char *s)
{
    return strdup(s ? s : "");
}

/* The tensor a node saves as its variable value: the attribute named
 * VARIABLE_VALUE, else its only attribute. */
static const Tensorflow__TrackableObjectGraph__TrackableObject__SerializedTensor *
value_of(const Tensorflow__TrackableObjectGraph__TrackableObject *node)
{
    for (size_t i = 0; i < node->n_attributes; i++)
        if (node->attributes[i]->name && strcmp(node->attributes[i]->name, "VARIABLE_VALUE") == 0)
            return node->attributes[i];
    return node->n_attributes == 1 ? node->attributes[0] : NULL;
}

/* Fill rows from the decoded graph; slot rows get VAR/SLOT names. */
static int build_rows(const Tensorflow__TrackableObjectGraph *og, trestle_names *m,
                      trestle_error *err)
{
    size_t total = 0;
    for (size_t i = 0; i < og->n_nodes; i++)
        total += og->nodes[i]->n_attributes;
    m->rows = calloc(total ? total : 1, sizeof *m->rows);
    if (!m->rows)
        return trestle__error_simple(err, TRESTLE_E_NOMEM, "out of memory");
    /* slot_for[k]: the slot reference naming node k, if any. */
    const Tensorflow__TrackableObjectGraph__TrackableObject__SlotVariableReference **slot_for =
        calloc(og->n_nodes ? og->n_nodes : 1, sizeof *slot_for);
    if (!slot_for)
        return trestle__error_simple(err, TRESTLE_E_NOMEM, "out of memory");
    for (size_t i = 0; i < og->n_nodes; i++) {
        const Tensorflow__TrackableObjectGraph__TrackableObject *node = og->nodes[i];
        for (size_t s = 0; s < node->n_slot_variables; s++) {
            const Tensorflow__TrackableObjectGraph__TrackableObject__SlotVariableReference *ref =
                node->slot_variables[s];
            /* Node ids are untrusted: out-of-range references are ignored,
             * not followed. */
            if (ref->slot_variable_node_id >= 0 &&
                (size_t)ref->slot_variable_node_id < og->n_nodes &&
                ref->original_variable_node_id >= 0 &&
                (size_t)ref->original_variable_node_id < og->n_nodes)
                slot_for[ref->slot_variable_node_id] = ref;
        }
    }
    int rc = TRESTLE_OK;
    for (size_t i = 0; i < og->n_nodes && rc == TRESTLE_OK; i++) {
        const Tensorflow__TrackableObjectGraph__TrackableObject *node = og->nodes[i];
        const Tensorflow__TrackableObjectGraph__TrackableObject__SlotVariableReference *ref =
            slot_for[i];
        const Tensorflow__TrackableObjectGraph__TrackableObject__SerializedTensor *var =
            ref ? value_of(og->nodes[ref->original_variable_node_id]) : NULL;
        for (size_t a = 0; a < node->n_attributes; a++) {
            const Tensorflow__TrackableObjectGraph__TrackableObject__SerializedTensor *st =
                node->attributes[a];
            if (!st->checkpoint_key || !st->checkpoint_key[0])
                continue;
            name_row *r = &m->rows[m->n++];
            r->key = dup_or_empty(st->checkpoint_key);
            r->full_name = dup_or_empty(st->full_name);
            if (ref && var) {
                /* VAR/SLOT, VAR being the variable's graph name when it has
                 * one, else its key. */
                const char *v = var->full_name && var->full_name[0] ? var->full_name
                                                                     : var->checkpoint_key;
                const char *slot = ref->slot_name ? ref->slot_name : "";
                r->graph_name = malloc(strlen(v ? v : "") + strlen(slot) + 2);
                if (r->graph_name) {
                    strcpy(r->graph_name, v ? v : "");
                    strcat(r->graph_name, "/");
                    strcat(r->graph_name, slot);
                }
                r->slot_name = dup_or_empty(slot);
                r->slot_of = dup_or_empty(var->checkpoint_key);
            } else {
                r->graph_name = dup_or_empty(st->full_name);
                r->slot_name = dup_or_empty("");
                r->slot_of = dup_or_empty("");
            }
            if (!r->key || !r->full_name || !r->graph_name || !r->slot_name || !r->slot_of)
                rc = trestle__error_simple(err, TRESTLE_E_NOMEM, "out of memory");
        }
    }
    free(slot_for);
    if (rc != TRESTLE_OK)
        return rc;
    qsort(m->rows, m->n, sizeof *m->rows, cmp_row);
    /* One key, one row: a key listed twice is a damaged object graph. */
    for (size_t i = 1; i < m->n; i++)
        if (strcmp(m->rows[i - 1].key, m->rows[i].key) == 0)
            return trestle__error_set(err, TRESTLE_E_CORRUPT, 0, m->rows[i].key, NULL, -1, -1,
                                      "%s lists checkpoint key '%s' twice", OBJECT_GRAPH_KEY,
                                      m->rows[i].key);
    return TRESTLE_OK;
}

static int cmp_graph_name(const void *a, const void *b)
{
    const name_row *x = *(const name_row *const *)a, *y = *(const name_row *const *)b;
    return strcmp(x->graph_name, y->graph_name);
}

/* The renames of trestle_names_renames(), made once at open so that the map
 * stays immutable (and thread-safe) after. */
static int build_renames(trestle_names *m, trestle_error *err)
{
    int rc = TRESTLE_OK;
    const name_row **by = calloc(m->n ? m->n : 1, sizeof *by);
    m->renames = calloc(m->n ? m->n : 1, sizeof *m->renames);
    TR_FAIL_IF(!by || !m->renames, err, TRESTLE_E_NOMEM, "out of memory");
    for (size_t i = 0; i < m->n; i++)
        by[i] = &m->rows[i];
    /* Sorted by graph name, a name shared by several keys sits beside its twin. */
    qsort(by, m->n, sizeof *by, cmp_graph_name);
    for (size_t i = 0; i < m->n; i++) {
        const char *g = by[i]->graph_name;
        if (!g[0] || strcmp(g, by[i]->key) == 0 ||
            (i > 0 && strcmp(g, by[i - 1]->graph_name) == 0) ||
            (i + 1 < m->n && strcmp(g, by[i + 1]->graph_name) == 0))
            continue;
        size_t len = strlen(g) + strlen(by[i]->key) + 2;
        char *rule = malloc(len);
        TR_FAIL_IF(!rule, err, TRESTLE_E_NOMEM, "out of memory");
        snprintf(rule, len, "%s=%s", g, by[i]->key);
        m->renames[m->nrenames++] = rule;
    }
fail:
    free(by);
    return rc;
}

size_t trestle_names_renames(const trestle_names *m, const char *const **rules)
{
    if (rules)
        *rules = m ? (const char *const *)m->renames : NULL;
    return m ? m->nrenames : 0;
}

int trestle_names_open(const trestle_checkpoint *c, trestle_names **out, trestle_error *err)
{
    uint8_t *buf = NULL;
    trestle_bytes s;
    Tensorflow__TrackableObjectGraph *og = NULL;
    trestle_names *m = NULL;
    int rc = TRESTLE_OK;

    if (out)
        *out = NULL;
    TR_FAIL_IF(!c || !out, err, TRESTLE_E_INVALID_ARG, "trestle_names_open: NULL argument");
    TR_FORWARD(read_object_graph(c, &buf, &s, err));
    og = tensorflow__trackable_object_graph__unpack(NULL, (size_t)s.len, s.data);
    TR_FAIL_IF(!og, err, TRESTLE_E_CORRUPT,
               "%s (%llu bytes) is not a TrackableObjectGraph protobuf", OBJECT_GRAPH_KEY,
               (unsigned long long)s.len);
    m = calloc(1, sizeof *m);
    TR_FAIL_IF(!m, err, TRESTLE_E_NOMEM, "out of memory");
    TR_FORWARD(build_rows(og, m, err));
    TR_FORWARD(build_renames(m, err));
    *out = m;
    m = NULL;
fail:
    if (og)
        tensorflow__trackable_object_graph__free_unpacked(og, NULL);
    free(buf);
    trestle_names_free(m);
    return rc;
}

size_t trestle_names_count(const trestle_names *m)
{
    return m ? m->n : 0;
}

int trestle_names_get(const trestle_names *m, size_t i, trestle_name_info *out)
{
    if (!m || !out || i >= m->n)
        return TRESTLE_E_INVALID_ARG;
    out->key = m->rows[i].key;
    out->full_name = m->rows[i].full_name;
    out->graph_name = m->rows[i].graph_name;
    out->slot_name = m->rows[i].slot_name;
    out->slot_of = m->rows[i].slot_of;
    return TRESTLE_OK;
}

int trestle_names_find(const trestle_names *m, const char *key, size_t *index)
{
    if (!m || !key || !index)
        return TRESTLE_E_INVALID_ARG;
    size_t lo = 0, hi = m->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(m->rows[mid].key, key);
        if (c == 0) {
            *index = mid;
            return TRESTLE_OK;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return TRESTLE_E_KEY_NOT_FOUND;
}
