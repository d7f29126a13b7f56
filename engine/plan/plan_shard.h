/*
 * plan_shard.h - tensor-parallel shard rules (trestle_plan_options.shard_rules):
 * "GLOB:DIM" turns every op whose name matches GLOB into the slice spec of
 * part shard_rank of shard_world of dimension DIM. Used by the planner only:
 * engine/plan/plan_create.c checks the rules, engine/plan/plan_pieces.c applies them
 * to each op's parsed spec, so the pipeline only ever sees ops.
 */
#ifndef TRESTLE_PLAN_SHARD_H
#define TRESTLE_PLAN_SHARD_H

#include "checkpoint.h"
#include "slice.h"
#include "trestle.h"

/* Check every rule's form (GLOB:DIM, a closed '[' class) and the rank and
 * world. TRESTLE_E_INVALID_ARG naming the rule. */
int trestle__plan_shard_check(const trestle_plan_options *o, trestle_error *err);

/* If a rule matches op `name`, narrow *spec (as parsed from the op's
 * shape_and_slices, `whole` or a slice of e's shape) to this rank's part of
 * the rule's dimension of stored entry e. A spec whose shape is not e's is
 * left alone for the planner's shape check to report. *dim_out receives
 * the rule's dimension when one narrowed the spec, else -1 (partial reads
 * need it). TRESTLE_E_BAD_SPEC naming the tensor and rule for a dimension
 * e lacks or a scalar. */
int trestle__plan_shard_apply(const trestle_plan_options *o, const char *name, const char *key,
                              const trestle__entry *e, trestle__spec *spec, int *dim_out,
                              trestle_error *err);

#endif /* TRESTLE_PLAN_SHARD_H */
