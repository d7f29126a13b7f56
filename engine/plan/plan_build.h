/*
 * plan_build.h - the planner's working state, shared by the three files
 * that build a plan:
 *   engine/plan/plan_create.c  options and the order of the steps (trestle_plan_create);
 *   engine/plan/plan_ops.c     op list -> resolved ops: names, missing keys, dtypes and
 *                         target dtypes, checked in TensorFlow's order;
 *   engine/plan/plan_pieces.c  resolved ops -> wants (future pieces) and regions;
 *   engine/plan/plan_extents.c wants -> sorted extents with their pieces -> batches.
 * Calls point one way: plan_create.c calls the others, which call neither
 * it nor each other; all three build the types of engine/plan/plan.h. Nothing
 * outside the planner includes this header.
 */
#ifndef TRESTLE_PLAN_BUILD_H
#define TRESTLE_PLAN_BUILD_H

#include <stddef.h>
#include <stdint.h>

#include "checkpoint.h"
#include "plan.h"
#include "trestle.h"

/* "Entry E feeds op O": one future piece, before extents are deduplicated.
 * 64 bytes: a model of 100,000 tensors has as many, made and walked once
 * (issue 24). Wants are compared by their place in the array last (the
 * order they were made in), so the pieces of an extent stay in op order. */
typedef struct want {
    uint64_t offset, size;  /* entry's bytes in its shard (a partial run's: the run's) */
    uint64_t dst_offset;    /* verbatim copies: offset in the destination */
    uint64_t after;         /* partial: bytes of the stored tensor after the run */
    size_t entry;           /* stored entry read */
    uint32_t op;            /* op fed (a plan holds at most TRESTLE__MAX_OPS) */
    uint32_t region;        /* region index or TRESTLE__NO_REGION */
    uint32_t crc_masked;    /* entry's stored CRC and whether it is a string tensor, */
    int32_t shard;          /* and its shard, copied so sorting and building extents need
                               no entry lookups */
    uint32_t share;         /* partial: its tensor's index in plan->shares (one per op at most) */
    bool is_string;
    bool partial;           /* a run of a part (partial_reads) */
} want;

_Static_assert(sizeof(void *) != 8 || sizeof(want) == 64, "a want is 64 bytes on LP64");

/* Planner state; only `p` escapes, and only on success. */
typedef struct builder {
    const trestle_checkpoint *c;
    trestle_plan_options o;  /* caller's options over the defaults */
    trestle_plan *p;
    char **lookup;           /* per op: key after renames (malloc'd), NULL unless resolved */
    want *wants;
    size_t n_wants, cap_wants;
    size_t *order;           /* the wants in extent order (indexes), or NULL: as they are */
    size_t cap_regions;
    unsigned *entry_refs;    /* partial_reads with rules: per entry, the ops reading it */
    size_t cap_shares;
    size_t missing;          /* ops that resolved to no listed entry */
    size_t variants;         /* ops (not skipped) of a DT_VARIANT entry */
} builder;

/* ---- op resolution (engine/plan/plan_ops.c) ---- */

/* Copy each op's name and destination kind, apply exclusions and resolve
 * the rest to listed entries; missing keys are only recorded. */
int trestle__plan_ops_resolve(builder *b, const trestle_op *ops, trestle_error *err);

/* Every missing key at once: skipped with allow_missing, else the report. */
int trestle__plan_ops_check_missing(builder *b, const trestle_op *ops, trestle_error *err);

/* All dtype mismatches in one TRESTLE_E_DTYPE_MISMATCH, sorted by key. */
int trestle__plan_ops_check_dtypes(builder *b, const trestle_op *ops, trestle_error *err);

/* Record each op's target dtype; every unsupported one in one error. */
int trestle__plan_ops_check_conversions(builder *b, const trestle_op *ops, trestle_error *err);

/* Every op whose restored shape is not the declared one (plan option
 * op_shapes) in one TRESTLE_E_SHAPE_MISMATCH, in op order; after pieces. */
int trestle__plan_ops_check_declared(builder *b, const trestle_op *ops, trestle_error *err);

/* ---- pieces (engine/plan/plan_pieces.c) ---- */

/* Plan resolved op i (shape, bytes, destination) and add its pieces;
 * `given` is the caller's op, or NULL for "whole, allocate". */
int trestle__plan_pieces_add(builder *b, size_t i, const trestle_op *given, trestle_error *err);

/* ---- extents and batches (engine/plan/plan_extents.c) ---- */

/* Deduplicate the pieces' entries into sorted extents, pieces in op order. */
int trestle__plan_pieces_extents(builder *b, trestle_error *err);

/* Coalesce the sorted extents into batches (max_gap_bytes, max_batch_bytes). */
int trestle__plan_pieces_batches(builder *b, trestle_error *err);

#endif /* TRESTLE_PLAN_BUILD_H */
