/*
 * infer_rules.c - rename inference, second half: the public
 * trestle_infer_renames() and its accessors. engine/graph/infer.c finds what each
 * op resolves to and its candidate keys; this file groups the unique
 * mappings into rules (one per rename text, RNN flag or object-graph
 * names), counts what stays ambiguous or unresolved, and proves the rules
 * by planning the ops again with them: only a plan that succeeds makes an
 * inference "fixable".
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "infer.h"
#include "options.h"
#include "trestle_graph.h"

/* ---- object-graph names ---- */

/* By graph name, the text before '=' (a graph name may be a prefix of
 * another, so whole strings do not sort the same way). */
static int cmp_by_name(const void *a, const void *b)
{
    const char *x = *(char *const *)a, *y = *(char *const *)b;
    size_t n = strcspn(x, "="), m = strcspn(y, "=");
    int c = strncmp(x, y, n < m ? n : m);
    return c ? c : (n > m) - (n < m);
}

/* "graph_name=key" for every key whose graph name another key has too, into
 * inf->shared, sorted by graph name. Returns 0, or -1 when out of memory. */
static int shared_names(trestle_inference *inf, const trestle_names *m)
{
    size_t n = trestle_names_count(m), k = 0;
    char **all = calloc(n ? n : 1, sizeof *all);
    if (!all)
        return -1;
    for (size_t i = 0; i < n; i++) {
        trestle_name_info ni;
        if (trestle_names_get(m, i, &ni) != TRESTLE_OK || !ni.graph_name[0])
            continue;
        if (asprintf(&all[k], "%s=%s", ni.graph_name, ni.key) < 0) {
            all[k] = NULL;
            goto nomem;
        }
        k++;
    }
    qsort(all, k, sizeof *all, cmp_by_name);
    inf->shared = calloc(k ? k : 1, sizeof *inf->shared);
    if (!inf->shared)
        goto nomem;
    /* all[i] joins a run of one graph name when it equals a neighbour. */
    int twin_before = 0;
    for (size_t i = 0; i < k; i++) {
        int twin_after = i + 1 < k && cmp_by_name(&all[i], &all[i + 1]) == 0;
        if (twin_before || twin_after)
            inf->shared[inf->nshared++] = all[i];
        else
            free(all[i]);
        twin_before = twin_after;
    }
    free(all);
    return 0;
nomem:
    for (size_t i = 0; i < k; i++)
        free(all[i]);
    free(all);
    return -1;
}

/* The graph-name renames of trestle_names_renames(), as `--names graph`
 * makes them, copied (the map is freed at once), and the shared ones. */
int trestle__infer_names(trestle_inference *inf, trestle_error *err)
{
    trestle_checkpoint_info ci;
    trestle_names *m = NULL;
    trestle_checkpoint_get_info(inf->c, &ci);
    /* A checkpoint whose object graph does not read just offers no names. */
    if (!ci.object_based || trestle_names_open(inf->c, &m, NULL) != TRESTLE_OK)
        return TRESTLE_OK;
    const char *const *rules;
    size_t n = trestle_names_renames(m, &rules);
    int rc = TRESTLE_OK;
    inf->names = calloc(n ? n : 1, sizeof *inf->names);
    for (size_t i = 0; inf->names && i < n; i++) {
        if (!(inf->names[inf->nnames] = strdup(rules[i])))
            break;
        inf->nnames++;
    }
    if (!inf->names || inf->nnames < n || shared_names(inf, m) != 0)
        rc = trestle__error_simple(err, TRESTLE_E_NOMEM, "out of memory");
    trestle_names_free(m);
    return rc;
}

/* ---- rules and the verdict ---- */

/* The op's one safe mapping, or NULL when it has none (0 or several keys). */
static int mapped(const tr_infer_op *o)
{
    return o->status == TRESTLE_INFER_MISSING && o->ncand == 1 && !o->shared;
}

/* Plan the ops with `po`, DISCARD destinations; 1 when it plans. `why`
 * (may be NULL) receives the failure. */
static int plans(const trestle_inference *inf, const trestle_plan_options *po, char *why)
{
    trestle_op *ops = malloc((inf->n ? inf->n : 1) * sizeof *ops);
    trestle_plan *p = NULL;
    trestle_error err;
    if (!ops)
        return -1;
    for (size_t i = 0; i < inf->n; i++) {
        ops[i] = inf->ops[i].op;
        ops[i].dest_kind = TRESTLE_DEST_DISCARD;
    }
    int rc = trestle_plan_create(inf->c, ops, inf->n, po, &p, &err);
    if (rc != TRESTLE_OK && why)
        memcpy(why, err.message, sizeof err.message);
    trestle_plan_free(p);
    free(ops);
    return rc == TRESTLE_E_NOMEM ? -1 : rc == TRESTLE_OK;
}

/* The caller's options plus every rule, kept for
 * trestle_inference_fixed_options(). */
static int fix_options(trestle_inference *inf, trestle_plan_options *po)
{
    free(inf->fixed);
    inf->fixed = NULL;
    if (trestle__infer_options(inf, -1, po, &inf->fixed) != 0)
        return -1;
    inf->nfixed = po->num_renames;
    inf->fixed_rnn = po->tf1_rnn_renames;
    return 0;
}

/* Plan as is; when that fails, group the mappings and prove them. */
static int decide(trestle_inference *inf, trestle_error *err)
{
    int ok = plans(inf, &inf->user, inf->fail);
    if (ok < 0)
        goto nomem;
    inf->ok = ok;
    size_t total = trestle_tensor_count(inf->c);
    for (size_t t = 0; t < total; t++) {
        trestle_tensor_info ti;
        trestle_tensor_get_info(inf->c, t, &ti);
        inf->unused += !inf->used[t] && ti.kind != TRESTLE_TENSOR_OBJECT_GRAPH;
    }
    if (inf->ok) {
        inf->fail[0] = '\0';
        return TRESTLE_OK;
    }
    for (size_t i = 0; i < inf->n; i++) {
        tr_infer_op *o = &inf->ops[i];
        if (o->status != TRESTLE_INFER_MISSING)
            continue;
        if (!mapped(o)) {
            inf->ambiguous += o->ncand > 1 || o->shared;
            inf->unresolved += o->ncand == 0;
            continue;
        }
        if (trestle__infer_add_rule(inf, o, o->cand_kind[0], o->cand_rule[0], NULL) != 0)
            goto nomem;
    }
    /* A rule must change nothing but the ops it maps. */
    if (trestle__infer_narrow(inf, err) != TRESTLE_OK)
        return TRESTLE_E_NOMEM;
    trestle_plan_options po;
    if (inf->nrules == 0)
        return TRESTLE_OK;
    if (fix_options(inf, &po) != 0)
        goto nomem;
    if (inf->ambiguous || inf->unresolved || inf->nmismatch)
        return TRESTLE_OK;
    if ((ok = plans(inf, &po, inf->fail)) < 0)
        goto nomem;
    inf->fixable = ok;
    return TRESTLE_OK;
nomem:
    return trestle__error_simple(err, TRESTLE_E_NOMEM, "out of memory");
}

/* ---- public API ---- */

int trestle_infer_renames(const trestle_checkpoint *c, const trestle_op *ops, size_t n,
                          const trestle_plan_options *opt, trestle_inference **out,
                          trestle_error *err)
{
    trestle_inference *inf = NULL;
    int rc = TRESTLE_OK;
    if (out)
        *out = NULL;
    TR_FAIL_IF(!c || !ops || !out || n == 0, err, TRESTLE_E_INVALID_ARG,
               "trestle_infer_renames: %s", n == 0 && c && ops && out ? "no ops"
                                                                     : "NULL argument");
    inf = calloc(1, sizeof *inf);
    TR_FAIL_IF(!inf, err, TRESTLE_E_NOMEM, "out of memory");
    inf->c = c;
    trestle_plan_options_init(&inf->user);
    TR_FORWARD(TRESTLE__OPTIONS_READ(trestle_plan_options, &inf->user, opt,
                                     TRESTLE__PLAN_OPTIONS_FIRST_SIZE, err));
    if (opt) {
        /* The planner checks the fields (renames, shard rules); a bad one fails here. */
        trestle_plan *p = NULL;
        trestle_op probe = { .name = ops[0].name, .dest_kind = TRESTLE_DEST_DISCARD };
        trestle_plan_options o = inf->user;
        o.op_shapes = NULL;
        o.allow_missing = 1;
        rc = trestle_plan_create(c, &probe, 1, &o, &p, err);
        trestle_plan_free(p);
        if (rc == TRESTLE_E_INVALID_ARG || rc == TRESTLE_E_NOMEM)
            goto fail;
        rc = TRESTLE_OK;
    }
    inf->ops = calloc(n, sizeof *inf->ops);
    inf->n = n;
    TR_FAIL_IF(!inf->ops, err, TRESTLE_E_NOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        tr_infer_op *o = &inf->ops[i];
        const trestle_shape *sh = inf->user.op_shapes ? &inf->user.op_shapes[i] : NULL;
        o->op = ops[i];
        o->op.name = strdup(ops[i].name ? ops[i].name : "");
        o->op.shape_and_slices = strdup(ops[i].shape_and_slices ? ops[i].shape_and_slices : "");
        o->rank = sh && (sh->rank == 0 || (sh->rank > 0 && sh->dims)) ? sh->rank : -1;
        o->dims = o->rank > 0 ? sh->dims : NULL;
        o->rule = -1;
        TR_FAIL_IF(!o->op.name || !o->op.shape_and_slices, err, TRESTLE_E_NOMEM,
                   "out of memory");
    }
    TR_FORWARD(trestle__infer_names(inf, err));
    TR_FORWARD(trestle__infer_analyse(inf, err));
    TR_FORWARD(decide(inf, err));
    /* The caller's shapes are read during the call only. */
    inf->user.op_shapes = NULL;
    for (size_t i = 0; i < n; i++)
        inf->ops[i].dims = NULL;
    *out = inf;
    inf = NULL;
fail:
    trestle_inference_free(inf);
    return rc;
}

void trestle_inference_free(trestle_inference *inf)
{
    if (!inf)
        return;
    for (size_t i = 0; inf->ops && i < inf->n; i++) {
        free((char *)inf->ops[i].op.name);
        free((char *)inf->ops[i].op.shape_and_slices);
        for (int k = 0; k < inf->ops[i].ncand; k++)
            free(inf->ops[i].cand_rule[k]);
    }
    for (size_t i = 0; i < inf->nnames; i++)
        free(inf->names[i]);
    free(inf->names);
    for (size_t i = 0; i < inf->nshared; i++)
        free(inf->shared[i]);
    free(inf->shared);
    for (size_t r = 0; r < inf->nrules; r++)
        free(inf->rules[r].own);
    for (size_t k = 0; k < inf->nrefused; k++) {
        free(inf->refused[k].rename);
        free(inf->refused[k].change);
    }
    free(inf->refused);
    free(inf->ops);
    free(inf->used);
    free(inf->rules);
    free(inf->fixed);
    free(inf);
}

void trestle_inference_get_info(const trestle_inference *inf, trestle_inference_info *out)
{
    if (!out)
        return;
    memset(out, 0, sizeof *out);
    if (!inf)
        return;
    out->ops = inf->n;
    for (size_t i = 0; i < inf->n; i++)
        out->ok += inf->ops[i].status == TRESTLE_INFER_OK;
    out->missing = inf->nmissing;
    out->mismatched = inf->nmismatch;
    out->unused = inf->unused;
    out->ambiguous = inf->ambiguous;
    out->unresolved = inf->unresolved;
    out->rules = inf->nrules;
    out->restores = inf->ok;
    out->fixable = inf->fixable;
    out->failure = inf->fail;
}

int trestle_inference_op(const trestle_inference *inf, size_t i, trestle_inferred_op *out)
{
    if (!inf || !out || i >= inf->n)
        return TRESTLE_E_INVALID_ARG;
    const tr_infer_op *o = &inf->ops[i];
    memset(out, 0, sizeof *out);
    out->name = o->op.name;
    out->status = o->status;
    out->rule = o->rule;
    out->tensor = SIZE_MAX;
    if (o->status == TRESTLE_INFER_OK || o->status == TRESTLE_INFER_DTYPE ||
        o->status == TRESTLE_INFER_SHAPE)
        out->tensor = o->tensor;
    else if (mapped(o))
        out->tensor = o->cand[0];
    out->candidates = o->status == TRESTLE_INFER_MISSING ? (size_t)o->ncand : 0;
    out->shared = o->shared;
    return TRESTLE_OK;
}

int trestle_inference_candidate(const trestle_inference *inf, size_t i, size_t k, size_t *tensor,
                                int *kind, const char **rename)
{
    if (!inf || i >= inf->n || inf->ops[i].status != TRESTLE_INFER_MISSING ||
        k >= (size_t)inf->ops[i].ncand)
        return TRESTLE_E_INVALID_ARG;
    if (tensor)
        *tensor = inf->ops[i].cand[k];
    if (kind)
        *kind = inf->ops[i].cand_kind[k];
    if (rename)
        *rename = inf->ops[i].cand_rule[k];
    return TRESTLE_OK;
}

static const char *why_kind(int kind)
{
    switch (kind) {
    case TRESTLE_RULE_NAMES: return "the checkpoint's object graph gives these keys these graph names";
    case TRESTLE_RULE_RNN: return "TF 1.x RNN cell names (weights/biases -> kernel/bias)";
    case TRESTLE_RULE_RENUMBER: return "a layer renumbered (only the _N suffix differs)";
    default: return "the same path under another scope";
    }
}

int trestle_inference_rule(const trestle_inference *inf, size_t r, trestle_inferred_rule *out)
{
    if (!inf || !out || r >= inf->nrules)
        return TRESTLE_E_INVALID_ARG;
    out->kind = inf->rules[r].kind;
    out->rename = inf->rules[r].rename;
    out->fixes = inf->rules[r].fixes;
    out->shapes_checked = inf->rules[r].shaped;
    out->why = why_kind(inf->rules[r].kind);
    return TRESTLE_OK;
}

size_t trestle_inference_refused_count(const trestle_inference *inf)
{
    return inf ? inf->nrefused : 0;
}

int trestle_inference_refused(const trestle_inference *inf, size_t k, trestle_inferred_rule *out,
                              size_t *changes)
{
    if (!inf || k >= inf->nrefused)
        return TRESTLE_E_INVALID_ARG;
    const tr_infer_refused *f = &inf->refused[k];
    if (out) {
        out->kind = f->kind;
        out->rename = f->rename;
        out->fixes = f->fixes;
        out->shapes_checked = f->shaped;
        out->why = why_kind(f->kind);
    }
    if (changes)
        *changes = f->nchange;
    return TRESTLE_OK;
}

int trestle_inference_refused_change(const trestle_inference *inf, size_t k, size_t j, size_t *op,
                                     size_t *tensor)
{
    if (!inf || k >= inf->nrefused || j >= inf->refused[k].nchange)
        return TRESTLE_E_INVALID_ARG;
    if (op)
        *op = inf->refused[k].change[j][0];
    if (tensor)
        *tensor = inf->refused[k].change[j][1];
    return TRESTLE_OK;
}

int trestle_inference_tensor_used(const trestle_inference *inf, size_t t)
{
    return inf && t < trestle_tensor_count(inf->c) && inf->used[t];
}

int trestle_inference_fixed_options(const trestle_inference *inf, trestle_plan_options *out)
{
    if (!inf || !out)
        return TRESTLE_E_INVALID_ARG;
    *out = inf->user;
    if (!inf->fixed)
        return TRESTLE_OK; /* no rules */
    out->renames = inf->fixed;
    out->num_renames = inf->nfixed;
    out->tf1_rnn_renames = inf->fixed_rnn;
    return TRESTLE_OK;
}
