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
    const char *rename;             /* a tr_infer_op's cand_rule */
    int kind;                       /* trestle_rule_kind */
    size_t fixes;                   /* ops it maps */
    int shaped;                     /* every op it maps had a shape to compare */
} tr_infer_rule;

struct trestle_inference {
    const trestle_checkpoint *c;
    trestle_plan_options user;      /* the caller's options (op_shapes cleared after the call) */
    tr_infer_op *ops;
    size_t n;
    unsigned char *used;            /* per tensor: some op resolves to it */
    size_t nmissing, nmismatch;
    char **names;                   /* "graph_name=key" of the object graph, unambiguous */
    size_t nnames;
    /* the verdict (infer_rules.c) */
    int ok, fixable;
    tr_infer_rule *rules;
    size_t nrules, ambiguous, unresolved, unused;
    const char **fixed;             /* the renames of the fixed options, or NULL (no rules) */
    size_t nfixed;
    int fixed_rnn;                  /* the fixed options' tf1_rnn_renames */
    char fail[TRESTLE_ERROR_MESSAGE_MAX]; /* why the last plan tried failed */
};

/*
 * Resolve inf->ops against inf->c with inf->user (renames, RNN, exclusions
 * as given), mark used keys, and for every missing op collect the
 * compatible unused keys each kind of evidence offers. Returns TRESTLE_OK
 * or TRESTLE_E_NOMEM.
 */
int trestle__infer_analyse(trestle_inference *inf, trestle_error *err);

/* The object graph's unambiguous "graph_name=key" rules into inf->names;
 * nothing for a checkpoint without a readable object graph. Returns
 * TRESTLE_OK or TRESTLE_E_NOMEM. */
int trestle__infer_names(trestle_inference *inf, trestle_error *err);

#endif /* TRESTLE_INFER_H */
