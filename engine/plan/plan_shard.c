/*
 * plan_shard.c - tensor-parallel shard rules. A rule "GLOB:DIM" gives rank
 * r of W the r-th part of dimension DIM of every op whose name matches
 * GLOB, as a slice spec, so that the rest of the planner (and the
 * pipeline) sees nothing but an op with a shape_and_slices. Parts follow
 * TensorFlow's partitioner (fixed_size_partitioner / the TF1 variable
 * partitioner): a dim of n gives parts of n / W elements, the first n % W
 * of them one element more, in rank order.
 *
 * Rules match the op's name as the caller gave it (the graph's name),
 * before renames: a rule written against the model's names keeps working
 * whatever checkpoint the names are mapped to. With "every tensor" plans
 * the name is the key. Called by engine/plan/plan_create.c (check) and
 * engine/plan/plan_pieces.c (apply); owns nothing.
 */
#include <fnmatch.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "plan_shard.h"

#define MAX_GLOB 1024 /* bytes of a rule's GLOB, with its NUL */

/* One parsed rule: GLOB is rule[0 .. glob_len), DIM the number after the
 * last ':'. False when the rule is not of that form. */
static bool split_rule(const char *rule, size_t *glob_len, int *dim)
{
    const char *colon = rule ? strrchr(rule, ':') : NULL;
    if (!colon || colon == rule || colon[1] == '\0')
        return false;
    long v = 0;
    for (const char *d = colon + 1; *d; d++) {
        if (*d < '0' || *d > '9')
            return false;
        v = v * 10 + (*d - '0');
        if (v >= TRESTLE_MAX_SLICE_RANK)
            return false; /* no sliceable tensor has this dimension */
    }
    *glob_len = (size_t)(colon - rule);
    *dim = (int)v;
    return true;
}

/*
 * What is wrong with GLOB (g[0 .. n)), or NULL when nothing is.
 * fnmatch(3) treats a malformed pattern as one that never matches, which
 * would silently replicate tensors meant to be split: an unclosed bracket
 * class or a trailing backslash is refused instead. So is a ':' outside a
 * class: a rule has one ':', before DIM, and '*:1:2' (read as GLOB '*:1',
 * DIM 2) is a typo, not a request to split keys that contain ":1" (TF names
 * hold no ':'); "\:" matches a ':' of a key written by another tool.
 */
static const char *glob_problem(const char *g, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (g[i] == '\\') {
            if (++i == n)
                return "a trailing '\\'";
        } else if (g[i] == ':') {
            return "more than one ':' (a rule is GLOB:DIM; write '\\:' for a ':' in a name)";
        } else if (g[i] == '[') {
            size_t j = i + 1;
            if (j < n && (g[j] == '!' || g[j] == '^'))
                j++;
            if (j < n && g[j] == ']') /* a leading ']' is a member, not the end */
                j++;
            while (j < n && g[j] != ']')
                j++;
            if (j == n)
                return "an unclosed '['";
            i = j;
        }
    }
    return NULL;
}

int trestle_shard_rules_check(const char *const *rules, size_t n, trestle_error *err)
{
    trestle_error_clear(err);
    if (n > 0 && !rules)
        return trestle__error_simple(err, TRESTLE_E_INVALID_ARG,
                                     "num_shard_rules is %zu but shard_rules is NULL", n);
    for (size_t i = 0; i < n; i++) {
        const char *r = rules[i];
        size_t glob_len;
        int dim;
        const char *why;
        if (!split_rule(r, &glob_len, &dim))
            return trestle__error_simple(err, TRESTLE_E_INVALID_ARG,
                                         "shard rule %zu (%s) is not of the form GLOB:DIM "
                                         "(DIM a dimension number below %d)", i,
                                         r ? r : "NULL", TRESTLE_MAX_SLICE_RANK);
        if ((why = glob_problem(r, glob_len)) != NULL)
            return trestle__error_simple(err, TRESTLE_E_INVALID_ARG,
                                         "shard rule %zu (%s): malformed glob: %s", i, r, why);
        if (glob_len >= MAX_GLOB)
            return trestle__error_simple(err, TRESTLE_E_INVALID_ARG,
                                         "shard rule %zu: its glob is %zu characters long, more "
                                         "than %d", i, glob_len, MAX_GLOB - 1);
    }
    return TRESTLE_OK;
}

int trestle__plan_shard_check(const trestle_plan_options *o, trestle_error *err)
{
    int world = o->shard_world ? o->shard_world : 1;
    if (world < 0 || o->shard_rank < 0 || o->shard_rank >= world)
        return trestle__error_simple(err, TRESTLE_E_INVALID_ARG,
                                     "shard_rank %d is not a part of shard_world %d",
                                     o->shard_rank, o->shard_world);
    return trestle_shard_rules_check(o->shard_rules, o->num_shard_rules, err);
}

void trestle_shard_part(int64_t n, int rank, int world, int64_t *start, int64_t *len)
{
    int64_t base = world > 0 ? n / world : n, extra = world > 0 ? n % world : 0;
    *len = base + (rank < extra ? 1 : 0);
    *start = (int64_t)rank * base + (rank < extra ? rank : extra);
}

long trestle_shard_rule_match(const char *const *rules, size_t n, const char *name, int *dim)
{
    char glob[MAX_GLOB];
    for (size_t i = 0; rules && name && i < n; i++) {
        size_t glob_len;
        int d;
        if (!split_rule(rules[i], &glob_len, &d) || glob_len >= sizeof glob ||
            glob_problem(rules[i], glob_len))
            continue; /* trestle_shard_rules_check() refuses it */
        memcpy(glob, rules[i], glob_len);
        glob[glob_len] = '\0';
        if (fnmatch(glob, name, 0) == 0) {
            if (dim)
                *dim = d;
            return (long)i;
        }
    }
    return -1;
}

int trestle__plan_shard_apply(const trestle_plan_options *o, const char *name, const char *key,
                              const trestle__entry *e, trestle__spec *spec, int *dim_out,
                              trestle_error *err)
{
    int dim = 0;
    *dim_out = -1;
    long which = trestle_shard_rule_match(o->shard_rules, o->num_shard_rules, name, &dim);
    const char *rule = which >= 0 ? o->shard_rules[which] : NULL;
    if (!rule)
        return TRESTLE_OK;
    if (e->rank == 0)
        return trestle__error_set(err, TRESTLE_E_BAD_SPEC, 0, key, NULL, -1, -1,
                                  "tensor '%s' is a scalar: shard rule '%s' has no dimension "
                                  "%d to split", key, rule, dim);
    if (dim >= e->rank)
        return trestle__error_set(err, TRESTLE_E_BAD_SPEC, 0, key, NULL, -1, -1,
                                  "tensor '%s' has rank %d: shard rule '%s' names dimension %d",
                                  key, e->rank, rule, dim);
    if (e->rank > TRESTLE_MAX_SLICE_RANK)
        return trestle__error_set(err, TRESTLE_E_LIMIT, 0, key, NULL, -1, -1,
                                  "tensor '%s' has rank %d, above %d: shard rule '%s' cannot "
                                  "slice it", key, e->rank, TRESTLE_MAX_SLICE_RANK, rule);
    if (spec->whole) {
        spec->whole = false;
        spec->rank = e->rank;
        memcpy(spec->shape, e->dims, (size_t)e->rank * sizeof *e->dims);
        trestle__slice_full(&spec->slice, e->rank);
    } else if (spec->rank != e->rank ||
               memcmp(spec->shape, e->dims, (size_t)e->rank * sizeof *e->dims) != 0) {
        return TRESTLE_OK; /* the planner's shape check names the mismatch */
    }
    int64_t start[TRESTLE_MAX_SLICE_RANK], length[TRESTLE_MAX_SLICE_RANK], s, n;
    trestle__slice_resolve(&spec->slice, e->dims, start, length);
    trestle_shard_part(length[dim], o->shard_rank, o->shard_world ? o->shard_world : 1, &s,
                             &n);
    spec->slice.start[dim] = start[dim] + s;
    spec->slice.length[dim] = n;
    *dim_out = dim;
    return TRESTLE_OK;
}
