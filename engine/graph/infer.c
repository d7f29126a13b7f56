/*
 * infer.c - rename inference, first half: each op of a graph or ops file
 * against a checkpoint (found, missing, dtype or shape mismatch), the keys
 * nothing restores, and the candidate keys of each missing op, with the
 * rename that would map it there (engine/graph/infer_rules.c groups them into
 * rules, proves them and answers the public calls). `trestle check` prints
 * what this finds.
 *
 * The planner decides what resolves (a plan with allow_missing, dtypes and
 * slices left open, so every op gets an answer); this file only compares
 * and guesses, and a guess is offered only when it is unique. For each
 * missing op, four kinds of candidates among the unused keys:
 *   names     the TF2 object graph names the op (--names graph)
 *   rnn       TF 1.x RNN weights/biases <-> kernel/bias (--rnn-renames)
 *   renumber  one path component differs only in its _N suffix
 *             (dense_3 <-> dense, Keras layer renumbering)
 *   scope     the same path under another scope (a prefix added, removed
 *             or replaced)
 * A candidate must agree with the op's dtype and with its shape where that
 * is known: the full shape of a shape_and_slices, else the shape the
 * caller declares for it (plan option op_shapes, e.g. a TF1 graph's
 * variable shapes). One candidate key: a mapping; several: ambiguous,
 * never guessed; two ops on one key: both ambiguous.
 *
 * Inference sits above the planner and uses only its public calls: it
 * plans (allow_missing, dtypes and slices open) and never reads a tensor.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "infer.h"
#include "trestle_graph.h"

/* ---- small string helpers ---- */

/* A trailing "_<digits>" dropped: "dense_3" -> "dense" (length). */
static size_t base_len(const char *s, size_t n)
{
    size_t i = n;
    while (i > 0 && s[i - 1] >= '0' && s[i - 1] <= '9')
        i--;
    return i < n && i > 0 && s[i - 1] == '_' ? i - 1 : n;
}

static char *concat(const char *a, size_t an, const char *b, size_t bn, const char *c)
{
    size_t cn = c ? strlen(c) : 0;
    char *s = malloc(an + bn + cn + 1);
    if (!s)
        return NULL;
    memcpy(s, a, an);
    memcpy(s + an, b, bn);
    if (cn)
        memcpy(s + an + bn, c, cn);
    s[an + bn + cn] = '\0';
    return s;
}

/* The full shape of a shape_and_slices string ("4 6 0,2:-" -> [4, 6]);
 * returns the rank, or -1 when there is none (a whole-tensor op). */
static int spec_shape(const char *spec, int64_t *dims, int max)
{
    if (!spec || !*spec)
        return -1;
    int rank = 0;
    const char *p = spec;
    for (;;) {
        const char *sp = strchr(p, ' ');
        if (!sp)
            break; /* the last token is the slice */
        if (rank == max)
            return -1;
        dims[rank++] = strtoll(p, NULL, 10);
        p = sp + 1;
    }
    return rank;
}

/* ---- resolution ---- */

static int compatible(const tr_infer_op *o, const trestle_tensor_info *t)
{
    if (o->op.dtype != TRESTLE_DT_INVALID && o->op.dtype != t->dtype)
        return 0;
    int64_t spec[32];
    int rank = spec_shape(o->op.shape_and_slices, spec, 32);
    const int64_t *dims = spec;
    if (rank < 0) {
        /* A whole-tensor op: the graph's declared shape, when it has one. */
        rank = o->rank;
        dims = o->dims;
    }
    if (rank < 0)
        return 1;
    /* A scalar's dims may be NULL: memcmp must not see them. */
    return rank == t->rank &&
           (rank == 0 || memcmp(dims, t->dims, (size_t)rank * sizeof *dims) == 0);
}

/*
 * What op `o` resolves to, as the planner says: 1 excluded or unrestorable,
 * 2 missing, else 0 with *key (owned by *plan, which the caller frees, or
 * the op's name). Dtypes and slices are left open, so only names decide;
 * when the whole tensor cannot be planned (a partitioned tensor stored in
 * part), the op's own slice is tried, and when that fails too, the name
 * stands for itself and the verdict's plan says what is wrong.
 */
static int resolve_one(const trestle_inference *s, const trestle_plan_options *po, const tr_infer_op *o,
                       trestle_plan **plan, const char **key)
{
    trestle_plan_op_info pi;
    trestle_op op = { .name = o->op.name, .dest_kind = TRESTLE_DEST_DISCARD };
    trestle_plan_options one = *po;
    one.op_shapes = NULL; /* parallel to all ops, not to this one */
    po = &one;
    *plan = NULL;
    if (trestle_plan_create(s->c, &op, 1, po, plan, NULL) != TRESTLE_OK) {
        op.shape_and_slices = o->op.shape_and_slices;
        if (trestle_plan_create(s->c, &op, 1, po, plan, NULL) != TRESTLE_OK) {
            /* Neither plans: the name is what it is, the verdict says why. */
            *key = o->op.name;
            return 0;
        }
    }
    trestle_plan_get_op(*plan, 0, &pi);
    *key = pi.key;
    return pi.skipped;
}

int trestle__infer_keys(const trestle_inference *s, const trestle_plan_options *given,
                        size_t *keys)
{
    trestle_op *open_ops = calloc(s->n ? s->n : 1, sizeof *open_ops);
    trestle_plan *all = NULL;
    trestle_plan_options po = *given;
    if (!open_ops)
        return -1;
    for (size_t i = 0; i < s->n; i++) {
        open_ops[i].name = s->ops[i].op.name;
        open_ops[i].dest_kind = TRESTLE_DEST_DISCARD;
    }
    po.allow_missing = 1;
    /* Names decide here; compatible() compares the declared shapes. */
    po.op_shapes = NULL;
    /* One plan answers for every op; op by op only when it fails. */
    if (trestle_plan_create(s->c, open_ops, s->n, &po, &all, NULL) != TRESTLE_OK)
        all = NULL;
    free(open_ops);
    for (size_t i = 0; i < s->n; i++) {
        trestle_plan *one = NULL;
        trestle_plan_op_info pi;
        const char *key = NULL;
        int skipped;
        size_t at;
        if (all) {
            trestle_plan_get_op(all, i, &pi);
            skipped = pi.skipped;
            key = pi.key;
        } else {
            skipped = resolve_one(s, &po, &s->ops[i], &one, &key);
        }
        keys[i] = skipped == TRESTLE_SKIP_MISSING ? TR_INFER_NO_KEY
                  : skipped || trestle_tensor_find(s->c, key, &at, NULL) != TRESTLE_OK
                      ? TR_INFER_EXCLUDED
                      : at;
        trestle_plan_free(one);
    }
    trestle_plan_free(all);
    return 0;
}

/* Resolve every op as the planner does, dtypes and slices left open. */
static int resolve(trestle_inference *s)
{
    size_t *keys = malloc((s->n ? s->n : 1) * sizeof *keys);
    if (!keys || trestle__infer_keys(s, &s->user, keys) != 0) {
        free(keys);
        return -1;
    }
    for (size_t i = 0; i < s->n; i++) {
        tr_infer_op *o = &s->ops[i];
        if (keys[i] == TR_INFER_NO_KEY) {
            o->status = TRESTLE_INFER_MISSING;
            s->nmissing++;
        } else if (keys[i] == TR_INFER_EXCLUDED) {
            o->status = TRESTLE_INFER_EXCLUDED;
        } else {
            trestle_tensor_info t;
            o->tensor = keys[i];
            s->used[keys[i]] = 1;
            trestle_tensor_get_info(s->c, keys[i], &t);
            o->status = o->op.dtype != TRESTLE_DT_INVALID && o->op.dtype != t.dtype ? TRESTLE_INFER_DTYPE
                        : !compatible(o, &t)                                      ? TRESTLE_INFER_SHAPE
                                                                                  : TRESTLE_INFER_OK;
            s->nmismatch += o->status != TRESTLE_INFER_OK;
        }
    }
    free(keys);
    return 0;
}

/* ---- candidates ---- */

/* Offer tensor `at` for op `o` through `rule` (copied) of `kind`. */
static int offer(trestle_inference *s, tr_infer_op *o, size_t at, int kind, const char *rule)
{
    trestle_tensor_info t;
    if (!s->used || s->used[at] || trestle_tensor_get_info(s->c, at, &t) != TRESTLE_OK ||
        t.kind == TRESTLE_TENSOR_OBJECT_GRAPH || !compatible(o, &t))
        return 0;
    for (int i = 0; i < o->ncand; i++)
        if (o->cand[i] == at)
            return 0; /* the same key by another route: the first rule stays */
    if (o->ncand == TRESTLE_INFER_MAX_CANDIDATES)
        return 0;
    char *copy = strdup(rule);
    if (!copy)
        return -1;
    o->cand[o->ncand] = at;
    o->cand_kind[o->ncand] = kind;
    o->cand_rule[o->ncand] = copy;
    o->ncand++;
    return 0;
}

static int find_unused(const trestle_inference *s, const char *key, size_t *at)
{
    return trestle_tensor_find(s->c, key, at, NULL) == TRESTLE_OK && !s->used[*at];
}

/* names: the object graph's unambiguous graph-name rules (`--names graph`
 * maps them); a graph name several keys share offers each of its unused
 * keys that fits, by an exact rename, so that two of them are reported as
 * ambiguous, naming both, and one alone that fits can be proven. */
static int by_names(trestle_inference *s, tr_infer_op *o)
{
    size_t len = strlen(o->op.name);
    for (size_t r = 0; r < s->nnames; r++) {
        const char *rule = s->names[r];
        size_t at;
        if (strncmp(rule, o->op.name, len) == 0 && rule[len] == '=' &&
            find_unused(s, rule + len + 1, &at))
            return offer(s, o, at, TRESTLE_RULE_NAMES, "");
    }
    for (size_t r = 0; r < s->nshared; r++) {
        const char *rule = s->shared[r];
        size_t at;
        if (strncmp(rule, o->op.name, len) == 0 && rule[len] == '=' &&
            find_unused(s, rule + len + 1, &at) &&
            offer(s, o, at, TRESTLE_RULE_NAMES, rule) != 0)
            return -1;
    }
    return 0;
}

/* rnn: let the planner's RNN table try the one op. */
static int by_rnn(trestle_inference *s, tr_infer_op *o)
{
    trestle_op one = { .name = o->op.name, .dest_kind = TRESTLE_DEST_DISCARD };
    trestle_plan_options po;
    trestle_plan *p = NULL;
    trestle_plan_op_info pi;
    size_t at;
    trestle_plan_options_init(&po);
    po.tf1_rnn_renames = 1;
    po.allow_missing = 1;
    if (trestle_plan_create(s->c, &one, 1, &po, &p, NULL) != TRESTLE_OK)
        return 0;
    int rc = 0;
    if (trestle_plan_get_op(p, 0, &pi) == TRESTLE_OK && !pi.skipped && find_unused(s, pi.key, &at))
        rc = offer(s, o, at, TRESTLE_RULE_RNN, "");
    trestle_plan_free(p);
    return rc;
}

/*
 * Offer key `at` through a rename (the text of a plan option rename, as
 * `--rename` takes it). With `exact`, the rule is "name=key".
 * Otherwise the first `alen` bytes of the name (a scope ending in '/', or
 * nothing) become the first `blen` bytes of the key: 'A/=B/' moves a
 * scope (B may be empty: a scope removed); a scope added in front of a
 * name is written per first component, 'first/=B/first/', as rules match
 * prefixes only; a one-component name gets an exact rule.
 */
static int offer_rename(trestle_inference *s, tr_infer_op *o, size_t at, int kind, size_t alen, size_t blen,
                        int exact)
{
    const char *name = o->op.name, *slash = strchr(name, '/');
    trestle_tensor_info t;
    trestle_tensor_get_info(s->c, at, &t);
    char *rule = NULL, *left = NULL, *mid = NULL;
    if (!exact && alen > 0) {
        left = concat(name, alen, "=", 1, NULL);
        rule = left ? concat(left, strlen(left), t.name, blen, NULL) : NULL;
    } else if (!exact && slash) {
        size_t f = (size_t)(slash - name) + 1;
        left = concat(name, f, "=", 1, NULL);
        mid = left ? concat(left, strlen(left), t.name, blen, NULL) : NULL;
        rule = mid ? concat(mid, strlen(mid), name, f, NULL) : NULL;
    } else {
        left = concat(name, strlen(name), "=", 1, NULL);
        rule = left ? concat(left, strlen(left), t.name, strlen(t.name), NULL) : NULL;
    }
    free(left);
    free(mid);
    if (!rule)
        return -1;
    int rc = offer(s, o, at, kind, rule);
    free(rule);
    return rc;
}

/* Sorted views of the unused keys for the scope and renumber searches. */
typedef struct view {
    char *text;     /* owned: a suffix, or a pattern */
    size_t at;      /* tensor index */
    size_t head;    /* scope: bytes of the key before the suffix; renumber: component index */
} view;

static int cmp_view(const void *a, const void *b)
{
    return strcmp(((const view *)a)->text, ((const view *)b)->text);
}

/* The key with component `comp` replaced by its _N-less base and a marker. */
static char *pattern(const char *key, size_t comp)
{
    const char *p = key;
    for (size_t c = 0; c < comp; c++) {
        p = strchr(p, '/');
        if (!p)
            return NULL;
        p++;
    }
    const char *end = strchr(p, '/');
    size_t n = end ? (size_t)(end - p) : strlen(p);
    char *head = concat(key, (size_t)(p - key), p, base_len(p, n), "\x01");
    char *s = head ? concat(head, strlen(head), end ? end : "", end ? strlen(end) : 0, NULL) : NULL;
    free(head);
    return s;
}

static size_t components(const char *s)
{
    size_t n = 1;
    for (; *s; s++)
        n += *s == '/';
    return n;
}

static int build_views(const trestle_inference *s, int scope, view **out, size_t *nout)
{
    size_t n = 0, cap = 0;
    view *v = NULL;
    size_t total = trestle_tensor_count(s->c);
    for (size_t at = 0; at < total; at++) {
        trestle_tensor_info t;
        if (s->used[at] || trestle_tensor_get_info(s->c, at, &t) != TRESTLE_OK ||
            t.kind == TRESTLE_TENSOR_OBJECT_GRAPH)
            continue;
        size_t parts = components(t.name);
        for (size_t c = 0; c < parts; c++) {
            if (n == cap) {
                cap = cap ? cap * 2 : 256;
                view *grown = realloc(v, cap * sizeof *v);
                if (!grown)
                    goto nomem;
                v = grown;
            }
            const char *suffix = t.name;
            for (size_t k = 0; k < c; k++)
                suffix = strchr(suffix, '/') + 1;
            v[n].text = scope ? strdup(suffix) : pattern(t.name, c);
            if (!v[n].text)
                goto nomem;
            v[n].at = at;
            v[n].head = scope ? (size_t)(suffix - t.name) : c;
            n++;
        }
    }
    if (n)
        qsort(v, n, sizeof *v, cmp_view);
    *out = v;
    *nout = n;
    return 0;
nomem:
    for (size_t i = 0; i < n; i++)
        free(v[i].text);
    free(v);
    return -1;
}

static void free_views(view *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i].text);
    free(v);
}

/* The first view whose text is `text`, or n. */
static size_t lower_bound(const view *v, size_t n, const char *text)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(v[mid].text, text) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* scope: the longest component suffix of the name that unused keys end
 * with; its keys are the candidates. */
static int by_scope(trestle_inference *s, tr_infer_op *o, const view *v, size_t n)
{
    const char *name = o->op.name;
    for (const char *suffix = name; suffix; suffix = strchr(suffix, '/')) {
        if (*suffix == '/')
            suffix++;
        int found = 0;
        for (size_t i = lower_bound(v, n, suffix); i < n && strcmp(v[i].text, suffix) == 0; i++) {
            size_t alen = (size_t)(suffix - name);
            if (alen == 0 && v[i].head == 0)
                continue;
            found = 1;
            if (offer_rename(s, o, v[i].at, TRESTLE_RULE_SCOPE, alen, v[i].head, 0) != 0)
                return -1;
        }
        if (found)
            return 0;
    }
    return 0;
}

/* renumber: same path, one component differing only in its _N suffix. */
static int by_renumber(trestle_inference *s, tr_infer_op *o, const view *v, size_t n)
{
    const char *name = o->op.name;
    size_t parts = components(name);
    for (size_t c = 0; c < parts; c++) {
        char *pat = pattern(name, c);
        if (!pat)
            return -1;
        for (size_t i = lower_bound(v, n, pat); i < n && strcmp(v[i].text, pat) == 0; i++) {
            if (v[i].head != c)
                continue;
            trestle_tensor_info t;
            trestle_tensor_get_info(s->c, v[i].at, &t);
            /* The first component's rename is a scope rule; deeper ones exact. */
            const char *slash = strchr(name, '/'), *kslash = strchr(t.name, '/');
            int scope = c == 0 && slash && kslash && slash != name && kslash != t.name;
            int rc = scope ? offer_rename(s, o, v[i].at, TRESTLE_RULE_RENUMBER,
                                          (size_t)(slash - name) + 1,
                                          (size_t)(kslash - t.name) + 1, 0)
                           : offer_rename(s, o, v[i].at, TRESTLE_RULE_RENUMBER, 0, 0, 1);
            if (rc != 0) {
                free(pat);
                return -1;
            }
        }
        free(pat);
    }
    return 0;
}

/* ---- the whole analysis ---- */

static int cmp_chosen(const void *a, const void *b, void *ctx)
{
    const tr_infer_op *ops = ctx;
    size_t x = ops[*(const size_t *)a].cand[0], y = ops[*(const size_t *)b].cand[0];
    return (x > y) - (x < y);
}

/* Two ops on one key: neither mapping is safe. */
static int one_to_one(trestle_inference *s)
{
    size_t *idx = malloc((s->n ? s->n : 1) * sizeof *idx), m = 0;
    if (!idx)
        return -1;
    for (size_t i = 0; i < s->n; i++)
        if (s->ops[i].status == TRESTLE_INFER_MISSING && s->ops[i].ncand == 1)
            idx[m++] = i;
    qsort_r(idx, m, sizeof *idx, cmp_chosen, s->ops);
    for (size_t i = 0; i + 1 < m; i++)
        if (s->ops[idx[i]].cand[0] == s->ops[idx[i + 1]].cand[0])
            s->ops[idx[i]].shared = s->ops[idx[i + 1]].shared = 1;
    free(idx);
    return 0;
}

int trestle__infer_analyse(trestle_inference *s, trestle_error *err)
{
    size_t total = trestle_tensor_count(s->c);
    s->used = calloc(total ? total : 1, 1);
    if (!s->used || resolve(s) != 0)
        return trestle__error_simple(err, TRESTLE_E_NOMEM, "out of memory");
    if (s->nmissing == 0)
        return TRESTLE_OK;
    view *sv = NULL, *rv = NULL;
    size_t nsv = 0, nrv = 0;
    int rc = -1;
    if (build_views(s, 1, &sv, &nsv) != 0 || build_views(s, 0, &rv, &nrv) != 0)
        goto done;
    for (size_t i = 0; i < s->n; i++) {
        tr_infer_op *o = &s->ops[i];
        if (o->status != TRESTLE_INFER_MISSING)
            continue;
        if (by_names(s, o) != 0 || by_rnn(s, o) != 0 ||
            by_renumber(s, o, rv, nrv) != 0)
            goto done;
        /* A scope move is the weakest evidence: only when nothing closer fits. */
        if (o->ncand == 0 && by_scope(s, o, sv, nsv) != 0)
            goto done;
    }
    rc = one_to_one(s);
done:
    free_views(sv, nsv);
    free_views(rv, nrv);
    return rc == 0 ? TRESTLE_OK : trestle__error_simple(err, TRESTLE_E_NOMEM, "out of memory");
}
