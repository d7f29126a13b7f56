/*
 * cli_check.h - what tools/cli_check.c (the `check` command: printing and
 * verdict) and tools/cli_infer.c (resolution and rename inference) share.
 */
#ifndef TRESTLE_CLI_CHECK_H
#define TRESTLE_CLI_CHECK_H

#include "cli.h"

#define CHK_MAX_CAND 4 /* candidates kept per missing op (more: still ambiguous) */

/* What became of one op. */
enum { CHK_OK, CHK_MISSING, CHK_DTYPE, CHK_SHAPE, CHK_EXCLUDED };

/* The kinds of inferred renames, strongest evidence first. */
enum { CHK_RULE_NAMES, CHK_RULE_RNN, CHK_RULE_RENUMBER, CHK_RULE_SCOPE };

typedef struct chk_op {
    trestle_op op;                  /* the op as given (strings owned by the op list) */
    int rank;                       /* the graph's shape for it (trestle_graph_op_shape), */
    const int64_t *dims;            /*   or rank -1: unknown */
    int status;                     /* CHK_* */
    size_t tensor;                  /* the resolved listed tensor (not CHK_MISSING) */
    size_t cand[CHK_MAX_CAND];      /* missing: compatible unused keys (tensor indexes) */
    int cand_kind[CHK_MAX_CAND];    /* CHK_RULE_* of each */
    char *cand_rule[CHK_MAX_CAND];  /* the flag that maps the op there, ready to paste */
    int ncand;
    int shared;                     /* its one candidate is another op's too */
} chk_op;

typedef struct chk_state {
    const trestle_checkpoint *c;
    chk_op *ops;                    /* n ops, owned */
    size_t n;
    unsigned char *used;            /* per listed tensor: some op resolves to it */
    size_t nmissing, nmismatch;
} chk_state;

/*
 * Resolve s->ops against s->c with the user's options (renames, RNN and
 * exclusions as given), mark used keys, and for every missing op collect
 * the compatible unused keys each inference offers (object-graph names
 * from `names`, which may be NULL). Returns 0, or -1 (out of memory, or a
 * planning error, printed).
 */
int cli_check_analyse(chk_state *s, const trestle_plan_options *user,
                      const cli_names_rules *names);
void cli_check_free(chk_state *s);

#endif /* TRESTLE_CLI_CHECK_H */
