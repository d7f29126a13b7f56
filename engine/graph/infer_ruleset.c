/*
 * infer_ruleset.c - rename inference's rules as a set: adding a mapping to
 * the rule of its rename text (one rule per text, RNN flag or object-graph
 * names, counting the ops it fixes), and the plan options that the rules,
 * all or one, make with the caller's. engine/graph/infer_rules.c groups
 * the mappings and gives the verdict; engine/graph/infer_narrow.c tries
 * each rule alone against every op. Both build on these two.
 */
#include <stdlib.h>
#include <string.h>

#include "infer.h"

int trestle__infer_op_shaped(const tr_infer_op *o)
{
    return o->rank >= 0 || (o->op.shape_and_slices && strchr(o->op.shape_and_slices, ' '));
}

int trestle__infer_add_rule(trestle_inference *inf, tr_infer_op *o, int kind, const char *rename,
                            char *own)
{
    int shaped = trestle__infer_op_shaped(o);
    for (size_t r = 0; r < inf->nrules; r++)
        if (inf->rules[r].fixes && inf->rules[r].kind == kind &&
            strcmp(inf->rules[r].rename, rename) == 0) {
            inf->rules[r].fixes++;
            inf->rules[r].shaped &= shaped;
            o->rule = (int)r;
            free(own);
            return 0;
        }
    tr_infer_rule *grown = realloc(inf->rules, (inf->nrules + 1) * sizeof *grown);
    if (!grown) {
        free(own);
        return -1;
    }
    inf->rules = grown;
    o->rule = (int)inf->nrules;
    inf->rules[inf->nrules++] = (tr_infer_rule){ own ? own : rename, own, kind, 1, shaped };
    return 0;
}

int trestle__infer_options(const trestle_inference *inf, long only, trestle_plan_options *po,
                           const char ***renames)
{
    *po = inf->user;
    int names = 0;
    size_t n = po->num_renames;
    const char **all = calloc(n + inf->nrules + inf->nnames + 1, sizeof *all);
    if (!all)
        return -1;
    if (n)
        memcpy(all, po->renames, n * sizeof *all);
    for (size_t r = 0; r < inf->nrules; r++) {
        const tr_infer_rule *ru = &inf->rules[r];
        if (ru->fixes == 0 || (only >= 0 && (size_t)only != r))
            continue;
        if (ru->rename[0])
            all[n++] = ru->rename;
        else if (ru->kind == TRESTLE_RULE_RNN)
            po->tf1_rnn_renames = 1;
        else
            names = 1;
    }
    /* As `--names graph`: the user's renames, then one per object-graph name. */
    for (size_t i = 0; names && i < inf->nnames; i++)
        all[n++] = inf->names[i];
    po->renames = all;
    po->num_renames = n;
    *renames = all;
    return 0;
}
