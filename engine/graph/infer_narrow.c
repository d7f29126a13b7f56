/*
 * infer_narrow.c - rename inference, last step before the proof: every
 * rule checked against every op. engine/graph/infer_rules.c groups the
 * mappings of missing ops into rules, but a rule may do more than map
 * them: the scope rule 'dense/=model/dense/' that fixes dense/bias also
 * moves dense/kernel, which resolved as is (or breaks it, when
 * model/dense/kernel does not exist); --rnn-renames and --names graph also
 * map ops that no evidence mapped. So each rule that is not an exact
 * rename is planned alone with the caller's options, by name, and its
 * effect on every op compared with what it must be: the ops it maps land
 * on their candidates, every other op resolves as before. A rule that does
 * more is refused, kept with the ops it would change for the report, and
 * narrowed to one exact rename per op it maps ("dense/bias=model/dense/bias"),
 * which changes nothing else. Rules that pass alone are then planned
 * together, since a longer prefix shadows a shorter one and two rules may
 * rename one prefix, and narrowed all the way when they interfere.
 *
 * Like the rest of inference, this only plans (engine/graph/infer.c's
 * trestle__infer_keys()) and never reads a tensor.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "infer.h"
#include "trestle_graph.h"

/* An exact rename changes only the ops of that name, which all missed the
 * same key: it needs no planning to know what it changes. */
static int is_exact(const tr_infer_rule *r)
{
    const char *eq = strchr(r->rename, '=');
    return eq && eq > r->rename && eq[-1] != '/';
}

/* What op i must resolve to with the rules: its candidate when a rule maps
 * it, else what it resolved to as is. */
static size_t intended(const trestle_inference *inf, size_t i)
{
    const tr_infer_op *o = &inf->ops[i];
    if (o->rule >= 0)
        return o->cand[0];
    if (o->status == TRESTLE_INFER_MISSING)
        return TR_INFER_NO_KEY;
    return o->status == TRESTLE_INFER_EXCLUDED ? TR_INFER_EXCLUDED : o->tensor;
}

/* Rule r (or every live rule, r = -1) applied: keys[] per op. */
static int keys_with(const trestle_inference *inf, long r, size_t *keys)
{
    trestle_plan_options po;
    const char **renames = NULL;
    int rc = trestle__infer_options(inf, r, &po, &renames);
    if (rc == 0)
        rc = trestle__infer_keys(inf, &po, keys);
    free(renames);
    return rc;
}

/* Replace rule r by one exact rename "name=key" per op it maps. */
static int narrow(trestle_inference *inf, size_t r)
{
    int kind = inf->rules[r].kind;
    inf->rules[r].fixes = 0;
    for (size_t i = 0; i < inf->n; i++) {
        tr_infer_op *o = &inf->ops[i];
        if (o->rule != (int)r)
            continue;
        trestle_tensor_info t;
        char *text;
        trestle_tensor_get_info(inf->c, o->cand[0], &t);
        if (asprintf(&text, "%s=%s", o->op.name, t.name) < 0 ||
            trestle__infer_add_rule(inf, o, kind, text, text) != 0)
            return -1;
    }
    return 0;
}

/* Whether rule r alone (its effect in keys[]) changes op i, which no rule
 * maps. */
static int changes(const trestle_inference *inf, size_t i, const size_t *keys)
{
    return inf->ops[i].rule < 0 && keys[i] != intended(inf, i);
}

/* Keep rule r, about to be narrowed, with the ops it would change that no
 * rule maps (keys[] is its effect alone). One that only fails to land its
 * own ops (a caller's longer prefix shadows it) changes nothing to report. */
static int refuse(trestle_inference *inf, size_t r, const size_t *keys)
{
    const tr_infer_rule *ru = &inf->rules[r];
    tr_infer_refused f = { .kind = ru->kind, .fixes = ru->fixes, .shaped = ru->shaped };
    for (size_t i = 0; i < inf->n; i++)
        f.nchange += changes(inf, i, keys);
    if (f.nchange == 0)
        return 0;
    f.rename = strdup(ru->rename);
    f.change = malloc((f.nchange ? f.nchange : 1) * sizeof *f.change);
    tr_infer_refused *grown = realloc(inf->refused, (inf->nrefused + 1) * sizeof *grown);
    if (!f.rename || !f.change || !grown) {
        free(f.rename);
        free(f.change);
        if (grown)
            inf->refused = grown;
        return -1;
    }
    inf->refused = grown;
    size_t j = 0;
    for (size_t i = 0; i < inf->n; i++)
        if (changes(inf, i, keys)) {
            f.change[j][0] = i;
            f.change[j][1] = keys[i];
            j++;
        }
    inf->refused[inf->nrefused++] = f;
    return 0;
}

/* 1 when some op does not resolve as it must with rule r (or all, -1). */
static int interferes(const trestle_inference *inf, long r, const size_t *keys)
{
    for (size_t i = 0; i < inf->n; i++) {
        if (r >= 0 && inf->ops[i].rule >= 0 && inf->ops[i].rule != (int)r)
            continue; /* another rule maps it: not this rule's business alone */
        if (keys[i] != intended(inf, i))
            return 1;
    }
    return 0;
}

/* The left side of rule text `a` equals that of `b` ("x/=..." vs "x/=..."). */
static int same_left(const char *a, const char *b)
{
    size_t n = strcspn(a, "=");
    return strncmp(a, b, n + 1) == 0;
}

/* Two live prefix rules (or one and a caller's rule) renaming one prefix
 * cannot both be planned: each is narrowed. */
static int narrow_clashes(trestle_inference *inf)
{
    size_t n = inf->nrules;
    unsigned char *clash = calloc(n ? n : 1, 1);
    if (!clash)
        return -1;
    for (size_t r = 0; r < n; r++) {
        const tr_infer_rule *a = &inf->rules[r];
        if (!a->fixes || !a->rename[0] || is_exact(a))
            continue;
        for (size_t q = 0; q < n && !clash[r]; q++)
            clash[r] = q != r && inf->rules[q].fixes && same_left(a->rename, inf->rules[q].rename);
        for (size_t u = 0; u < inf->user.num_renames && !clash[r]; u++)
            clash[r] = same_left(a->rename, inf->user.renames[u]);
    }
    int rc = 0;
    for (size_t r = 0; r < n && rc == 0; r++)
        if (clash[r])
            rc = narrow(inf, r);
    free(clash);
    return rc;
}

/* Drop narrowed rules; number the rest in the order ops first need them. */
static int compact(trestle_inference *inf)
{
    size_t n = inf->nrules, kept = 0;
    size_t *to = malloc((n ? n : 1) * sizeof *to);
    tr_infer_rule *rules = malloc((n ? n : 1) * sizeof *rules);
    if (!to || !rules) {
        free(to);
        free(rules);
        return -1;
    }
    for (size_t r = 0; r < n; r++)
        to[r] = SIZE_MAX;
    for (size_t i = 0; i < inf->n; i++) {
        tr_infer_op *o = &inf->ops[i];
        if (o->rule < 0)
            continue;
        if (to[o->rule] == SIZE_MAX) {
            to[o->rule] = kept;
            rules[kept++] = inf->rules[o->rule];
        }
        o->rule = (int)to[o->rule];
    }
    for (size_t r = 0; r < n; r++)
        if (to[r] == SIZE_MAX)
            free(inf->rules[r].own); /* narrowed rules own nothing; this is for safety */
    free(inf->rules);
    inf->rules = rules;
    inf->nrules = kept;
    free(to);
    return 0;
}

int trestle__infer_narrow(trestle_inference *inf, trestle_error *err)
{
    size_t *keys = malloc((inf->n ? inf->n : 1) * sizeof *keys);
    size_t first = inf->nrules;
    int rc = keys ? 0 : -1;
    /* Each rule alone: rules narrowed here are exact and appended past `first`. */
    for (size_t r = 0; r < first && rc == 0; r++) {
        if (!inf->rules[r].fixes || is_exact(&inf->rules[r]))
            continue;
        rc = keys_with(inf, (long)r, keys);
        if (rc == 0 && interferes(inf, (long)r, keys))
            rc = refuse(inf, r, keys) != 0 || narrow(inf, r) != 0 ? -1 : 0;
    }
    if (rc == 0)
        rc = narrow_clashes(inf);
    /* All together: a longer prefix may shadow a shorter one. */
    if (rc == 0 && inf->nrules > 0)
        rc = keys_with(inf, -1, keys);
    if (rc == 0 && inf->nrules > 0 && interferes(inf, -1, keys))
        for (size_t r = 0, n = inf->nrules; r < n && rc == 0; r++)
            if (inf->rules[r].fixes && !is_exact(&inf->rules[r]))
                rc = narrow(inf, r);
    if (rc == 0)
        rc = compact(inf);
    free(keys);
    return rc == 0 ? TRESTLE_OK : trestle__error_simple(err, TRESTLE_E_NOMEM, "out of memory");
}
