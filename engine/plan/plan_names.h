/*
 * plan_names.h - the name half of the planner (engine/plan/plan_names.c and,
 * for the report, engine/plan/plan_suggest.c): from
 * an op's graph name to a listed checkpoint key through exclusions, rename
 * rules and the TF 1.x RNN table, and the all-missing-keys report with its
 * "did you mean" suggestions. Only the planner (engine/plan/plan_create.c,
 * engine/plan/plan_ops.c) uses it.
 */
#ifndef TRESTLE_PLAN_NAMES_H
#define TRESTLE_PLAN_NAMES_H

#include <stdbool.h>
#include <stddef.h>

#include "checkpoint.h"
#include "trestle.h"

#define TRESTLE__NOT_LISTED ((size_t)-1) /* no listed entry has that key */

/* Check the rename rules ("a=b", left side non-empty) and exclusion
 * patterns (non-NULL) of `o`: TRESTLE_E_INVALID_ARG naming the bad one. */
int trestle__plan_names_check(const trestle_plan_options *o, trestle_error *err);

/* True when `name` matches one of the exclusion globs (fnmatch without
 * FNM_PATHNAME: '*' also matches '/', so one pattern covers any depth). */
bool trestle__plan_excluded(const trestle_plan_options *o, const char *name);

/* Entry index of the listed tensor keyed `key`, or TRESTLE__NOT_LISTED
 * (slice-part keys are never found). */
size_t trestle__plan_lookup_listed(const trestle_checkpoint *c, const char *key);

/* head followed by tail, as a new string; NULL when out of memory. */
char *trestle__plan_join(const char *head, size_t head_len, const char *tail);

/* Apply the first TF 1.x RNN rename rule whose source occurs in s (old to
 * new, or new to old with `reverse`): 1 with *out the new name (malloc'd),
 * 0 when no rule applies, -1 when out of memory. */
int trestle__plan_rnn_rename(const char *s, bool reverse, char **out);

/*
 * Resolve `name`: rename rules first (exact beats prefix, longest prefix
 * wins), then, when that key is absent and o->tf1_rnn_renames is set, the
 * RNN table old->new, then new->old. *entry receives the entry index or
 * TRESTLE__NOT_LISTED; *lookup (malloc'd, the caller frees it) the key
 * after renames, which is the one a missing-key report names.
 * Returns TRESTLE_OK or TRESTLE_E_NOMEM (then *lookup is NULL).
 */
int trestle__plan_resolve(const trestle_checkpoint *c, const trestle_plan_options *o,
                          const char *name, size_t *entry, char **lookup, trestle_error *err);

/* One missing key and what the op asking for it can take. */
typedef struct trestle__missing {
    const char *key;        /* the key after renames */
    int dtype;              /* the op's dtype, or TRESTLE_DT_INVALID for any */
    const char *spec;       /* the op's shape_and_slices (NULL or "": no shape known) */
    const trestle_shape *shape; /* a whole-tensor op's declared shape (plan option
                                   op_shapes), or NULL */
} trestle__missing;

/*
 * Fill `err` with TRESTLE_E_KEY_NOT_FOUND listing the `n` (>= 1) missing
 * keys, sorted and without repeats, one TF-worded line each with up to
 * three suggestions. A suggestion always fits the op (its dtype, and the
 * full shape of a sliced op, else its declared shape when known); rename neighbours (RNN table, TF2 suffix)
 * come first, then keys on the same path with one component changed, then
 * near spellings. `miss` is sorted in place; err->key is the first key in
 * sorted order. Returns TRESTLE_E_KEY_NOT_FOUND, or TRESTLE_E_NOMEM.
 */
int trestle__plan_report_missing(const trestle_checkpoint *c, trestle__missing *miss, size_t n,
                                 trestle_error *err);

#endif /* TRESTLE_PLAN_NAMES_H */
