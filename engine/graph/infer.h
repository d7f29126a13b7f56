/*
 * infer.h - what engine/graph/infer.c (resolution and candidates) and
 * engine/graph/infer_rules.c (rules, proof and the public trestle_inference
 * calls) share.
 *
 * Place in the data flow: beside the planner, above it. Inference plans
 * op lists through the public trestle_plan_create() and never reads a
 * tensor; the planner does not know it exists.
 */
#ifndef TRESTLE_INFER_H
#define TRESTLE_INFER_H

#include <stddef.h>
#include <stdint.h>

#include "trestle_graph.h"

/* One op of the inference. */
typedef struct tr_infer_op {
    trestle_op op;                  /* name and spec owned (copies); dtype as given */
    int rank;                       /* the declared shape (plan option op_shapes), or -1; */
    const int64_t *dims;            /*   the caller's: valid during trestle_infer_renames() */
    int status;                     /* trestle_infer_status */
    size_t tensor;                  /* the resolved tensor (not MISSING) */
    size_t cand[TRESTLE_INFER_MAX_CANDIDATES];  /* MISSING: compatible unused keys */
    int cand_kind[TRESTLE_INFER_MAX_CANDIDATES]; /* trestle_rule_kind of each */
    char *cand_rule[TRESTLE_INFER_MAX_CANDIDATES]; /* the rename to it, "" for NAMES/RNN */
    int ncand;
    int shared;                     /* its one candidate is another op's too */
    int rule;                       /* mapped: index into rules, else -1 */
} tr_infer_op;

/* One rule and what it fixes. */
typedef struct tr_infer_rule {
    const char *rename;             /* a tr_infer_op's cand_rule, or `own`; "" for the
                                       --names graph and --rnn-renames flags */
    char *own;                      /* a narrowed rule's "name=key" (owned), else NULL */
    int kind;                       /* trestle_rule_kind */
    size_t fixes;                   /* ops it maps; 0 once narrowed (dropped) */
    int shaped;                     /* every op it maps had a shape to compare */
} tr_infer_rule;

/* A rule refused because it would change ops it does not map. */
typedef struct tr_infer_refused {
    char *rename;                   /* its text (owned), "" for a flag */
    int kind;                       /* trestle_rule_kind */
    size_t fixes;                   /* ops it would map */
    int shaped;
    size_t (*change)[2];            /* op, and the tensor it would move it to
                                       (TR_INFER_NO_KEY: it would lose its key) */
    size_t nchange;
} tr_infer_refused;

struct trestle_inference {
    const trestle_checkpoint *c;
    trestle_plan_options user;      /* the caller's options (op_shapes cleared after the call) */
    tr_infer_op *ops;
    size_t n;
    unsigned char *used;            /* per tensor: some op resolves to it */
    size_t nmissing, nmismatch;
    char **names;                   /* "graph_name=key" of the object graph, unambiguous */
    size_t nnames;
    char **shared;                  /* "graph_name=key" for each key of a graph name that
                                       several keys share, sorted by graph name */
    size_t nshared;
    /* the verdict (infer_rules.c) */
    int ok, fixable;
    tr_infer_rule *rules;
    size_t nrules, ambiguous, unresolved, unused;
    tr_infer_refused *refused;      /* wider rules refused (infer_narrow.c) */
    size_t nrefused;
    const char **fixed;             /* the renames of the fixed options, or NULL (no rules) */
    size_t nfixed;
    int fixed_rnn;                  /* the fixed options' tf1_rnn_renames */
    char fail[TRESTLE_ERROR_MESSAGE_MAX]; /* why the last plan tried failed */
};

/* What an op resolves to, beside tensor indexes (trestle__infer_keys()). */
#define TR_INFER_NO_KEY SIZE_MAX          /* missing: no key after the renames */
#define TR_INFER_EXCLUDED (SIZE_MAX - 1)  /* excluded, or skipped as unrestorable */

/*
 * What every op of `inf` resolves to with options `po` (renames, RNN
 * table, exclusions), by name only: dtypes, slices and declared shapes are
 * left open. keys[i] (inf->n of them) receives the tensor index, or
 * TR_INFER_NO_KEY or TR_INFER_EXCLUDED. Returns 0, or -1 when out of
 * memory.
 */
int trestle__infer_keys(const trestle_inference *inf, const trestle_plan_options *po,
                        size_t *keys);

/*
 * Resolve inf->ops against inf->c with inf->user (renames, RNN, exclusions
 * as given), mark used keys, and for every missing op collect the
 * compatible unused keys each kind of evidence offers. Returns TRESTLE_OK
 * or TRESTLE_E_NOMEM.
 */
int trestle__infer_analyse(trestle_inference *inf, trestle_error *err);

/* ---- infer_ruleset.c, for infer_rules.c and infer_narrow.c ---- */

/* Whether op `o` has a shape to compare (a slice spec, a declared shape). */
int trestle__infer_op_shaped(const tr_infer_op *o);

/*
 * Map op `o` by rule text `rename` of `kind`: the live rule of that kind
 * and text counts it, else a new rule is appended (taking `own`, a malloc'd
 * copy of the text or NULL, which is freed when not needed). Sets
 * o->rule. Returns 0, or -1 when out of memory (`own` freed).
 */
int trestle__infer_add_rule(trestle_inference *inf, tr_infer_op *o, int kind, const char *rename,
                            char *own);

/*
 * The caller's options plus rule `only` (or, when `only` is -1, every live
 * rule): renames appended (an exact rename for a narrowed flag), the RNN
 * table for an RNN flag, every object-graph name for a --names graph flag.
 * *renames receives the renames array (malloc'd; the caller frees it),
 * which po->renames points to. Returns 0, or -1 when out of memory.
 */
int trestle__infer_options(const trestle_inference *inf, long only, trestle_plan_options *po,
                           const char ***renames);

/* ---- infer_narrow.c ---- */

/*
 * Check every rule against every op (see infer_narrow.c): refuse and narrow
 * to exact renames any rule that would change an op it does not map, or
 * not land an op it maps on its candidate; then drop the narrowed rules and
 * number the rest in the order the ops first need them. Returns TRESTLE_OK
 * or TRESTLE_E_NOMEM.
 */
int trestle__infer_narrow(trestle_inference *inf, trestle_error *err);

/* The object graph's unambiguous "graph_name=key" rules into inf->names,
 * and those of graph names several keys share into inf->shared; nothing
 * for a checkpoint without a readable object graph. Returns TRESTLE_OK or
 * TRESTLE_E_NOMEM. */
int trestle__infer_names(trestle_inference *inf, trestle_error *err);

#endif /* TRESTLE_INFER_H */
