/*
 * plan.h - the resolved form of a restore, produced by engine/plan/ and
 * consumed by the pipeline (engine/restore/restore.c and the readers/copiers).
 *
 * Vocabulary:
 *   op      one requested tensor (or slice of one), with its destination;
 *   extent  one stored entry's bytes [offset, offset+size) in one shard,
 *           read once even when several ops need it, CRC-checked whole;
 *           or, with partial_reads, one run of an op's part of a stored
 *           tensor, whose CRC only goes into the tensor's share;
 *   piece   "extent E feeds op O": either a verbatim copy of the extent's
 *           bytes to dest + dst_offset, or an N-d region copy;
 *   convert an op whose out_dtype differs from the stored dtype: its pieces
 *           convert the extent's elements on the way (engine/common/convert.c).
 *   batch   one coalesced read: consecutive extents of one shard whose
 *           gaps are small, up to max_batch_bytes (a single extent larger
 *           than that is a batch of its own; the pipeline splits batches
 *           into chunk-sized reads).
 *
 * Invariants the planner guarantees and the pipeline relies on:
 *   - extents are sorted by (shard, offset) and do not overlap;
 *   - each batch covers whole extents: batch.offset == first extent's
 *     offset, batch.length == last extent end - batch.offset;
 *   - batches are sorted by (shard, offset) and reference consecutive
 *     extents [first_extent, first_extent + num_extents);
 *   - pieces are grouped by extent: extent.first_piece .. + num_pieces;
 *   - op.num_pieces == number of pieces whose .op is that op; skipped ops
 *     have none; an op with 0 pieces that is not skipped is a zero-byte
 *     tensor and is ready at once;
 *   - a verbatim piece fits: dst_offset + extent.size / src_es * dst_es
 *     <= op.bytes;
 *   - pieces and regions describe the DESTINATION layout: a verbatim
 *     piece's dst_offset is in bytes of the op's out_dtype, and a region's
 *     elem_size is the op's dst_es. For an op that converts, the copy path
 *     first converts the whole elements of a stored byte range [lo, hi)
 *     into a buffer; those bytes are [lo / src_es * dst_es, ...) of the
 *     extent as it would be stored in out_dtype, which is what the piece
 *     and its region then copy, unchanged (engine/restore/restore_convert.c). Ops
 *     that convert nothing have src_es == dst_es, so both readings agree.
 *     Regions are never shared between ops.
 */
#ifndef TRESTLE_PLAN_H
#define TRESTLE_PLAN_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "arena.h"
#include "checkpoint.h"
#include "slice.h"
#include "trestle.h"

#define TRESTLE__NO_REGION UINT32_MAX
/* Ops of one plan: a piece names its op in 32 bits. */
#define TRESTLE__MAX_OPS ((size_t)UINT32_MAX)

/* One op of a plan: 72 bytes, of which a model of 100,000 tensors keeps
 * 100,000 (small fields are bytes: dtypes, ranks and element sizes are
 * validated below 256 before they are stored; the caller's capacity is
 * checked when planned and not kept). */
typedef struct trestle__plan_op {
    char *name;             /* as given by the caller (in the plan's slab), or for a plan of
                               every tensor its key (the checkpoint's) */
    const char *key;        /* resolved checkpoint key (owned by the checkpoint), NULL if skipped */
    size_t entry;           /* listed entry index in ckpt->entries (PLAIN/PARTITIONED/OBJECT_GRAPH) */
    int64_t *dims;          /* output shape: the stored one (the checkpoint's) for a whole
                               tensor, else in the plan's slab */
    uint64_t bytes;         /* output bytes = elements x dst_es (stored size for strings) */
    void *dest;             /* caller pointer, or engine memory once allocated */
    uint32_t num_pieces;    /* pieces that must land before the op is ready */
    int32_t device;         /* CUDA device of dest as of the last restore, or -1: host */
    uint8_t skipped;        /* 0; 1 excluded; 2 missing and allowed; 3 unsupported dtype */
    uint8_t dtype;          /* stored dtype */
    uint8_t out_dtype;      /* dtype of the restored bytes: the target dtype, or `dtype` */
    uint8_t rank;           /* output rank */
    uint8_t dest_kind;      /* trestle_dest_kind as given */
    uint8_t src_es, dst_es; /* element bytes of dtype and out_dtype (0 for strings) */
    bool convert;           /* out_dtype != dtype: pieces convert on load */
    bool whole;             /* the whole stored tensor, laid out as stored */
} trestle__plan_op;

_Static_assert(sizeof(void *) != 8 || sizeof(trestle__plan_op) == 72,
               "a plan op is 72 bytes on LP64 (issue 24: 100,000 of them per plan)");

typedef struct trestle__region {
    trestle__slice src;     /* what the stored extent covers, full-tensor coords, concrete */
    trestle__slice dst;     /* what the op's destination covers, concrete */
    trestle__slice cut;     /* src ∩ dst: the elements to copy */
    const int64_t *dims;    /* full tensor shape (owned by the checkpoint entry) */
    size_t elem_size;       /* bytes per element as restored (the op's dst_es) */
} trestle__region;

/* 16 bytes: a plan holds at most TRESTLE__MAX_OPS ops (plan_create.c). */
typedef struct trestle__piece {
    uint32_t op;            /* index into plan->ops */
    uint32_t region;        /* TRESTLE__NO_REGION for a verbatim copy, else index into plan->regions */
    uint64_t dst_offset;    /* verbatim copies: offset in the op's destination, out_dtype bytes */
} trestle__piece;

/* 64 bytes, one per tensor read. */
typedef struct trestle__extent {
    size_t entry;           /* stored entry (PLAIN, SLICE_PART or OBJECT_GRAPH) */
    uint64_t offset;        /* in the shard file */
    uint64_t size;
    uint64_t after;         /* partial: bytes of the stored tensor after this run */
    size_t share;           /* partial: index into plan->shares */
    size_t first_piece;
    int shard;
    uint32_t crc_masked;    /* stored CRC of the entry */
    uint32_t num_pieces;    /* at most one per op: below TRESTLE__MAX_OPS */
    bool is_string;         /* DT_STRING: CRC covers fixed-width lengths, see string_tensor.h */
    bool partial;           /* one run of a part of its entry (partial_reads): its CRC goes into
                               share `share` instead of being checked against crc_masked */
} trestle__extent;

_Static_assert(sizeof(void *) != 8 || (sizeof(trestle__extent) == 64 &&
                                       sizeof(trestle__piece) == 16),
               "an extent is 64 bytes and a piece 16 on LP64 (one each per tensor read)");

/* A stored tensor of which the plan reads only a part (partial_reads): the
 * restore XORs shift(raw(run), after) of each of its runs into `share`
 * (engine/common/crc32c.h), which only the combination of every part can check. */
typedef struct trestle__share {
    size_t op;              /* the op reading the part */
    size_t entry;           /* the stored (PLAIN) entry */
    int part, parts;        /* the shard_rank and shard_world it was planned as */
    _Atomic uint32_t share; /* XOR of this plan's runs' contributions */
} trestle__share;

typedef struct trestle__batch {
    int shard;
    uint64_t offset;        /* == extents[first_extent].offset */
    uint64_t length;        /* through the end of the last extent (gaps included) */
    size_t first_extent;
    size_t num_extents;
} trestle__batch;

struct trestle_plan {
    const trestle_checkpoint *ckpt;
    trestle__plan_op *ops;
    size_t num_ops;
    trestle__extent *extents;
    size_t num_extents;
    trestle__piece *pieces;
    size_t num_pieces;
    trestle__region *regions;
    size_t num_regions;
    trestle__batch *batches;
    size_t num_batches;
    trestle__share *shares; /* partial_reads: deferred tensors, in op order */
    size_t num_shares;
    bool shares_ready;      /* the last restore succeeded with verify on: shares are its */
    trestle_plan_stats stats;
    trestle_arena *arena;   /* DEST_ALLOCATE memory of the last restore; NULL once adopted */
    struct trestle__staging *staging; /* staging memory kept across restores (engine/memory/staging.h) */
    atomic_int cancel;      /* set by trestle_restore_cancel, cleared when a restore starts */
    struct trestle__faults *faults; /* tests only: injected I/O faults (engine/common/fault.h), else NULL */
    struct trestle__replicas *replicas; /* copies on several GPUs (engine/plan/replica.h), or NULL */
    trestle__slab slab;     /* op names and sliced shapes: freed with the plan */
};

/*
 * TRESTLE_E_UNSUPPORTED naming every op (not skipped) whose entry is a
 * DT_VARIANT, which no restore can produce; TRESTLE_OK when there is none
 * (engine/plan/plan_unsupported.c).
 */
int trestle__plan_check_unsupported(const trestle_checkpoint *c, const trestle__plan_op *ops,
                                    size_t n, trestle_error *err);

/* TRESTLE_E_INVALID_ARG, naming the tensor, when `capacity` bytes at `ptr`
 * cannot hold op's bytes (a NULL ptr holds none): the one check of a
 * caller's destination, at planning and at trestle_plan_set_dest()
 * (engine/plan/plan.c). */
int trestle__plan_dest_check(const trestle__plan_op *op, const void *ptr, uint64_t capacity,
                             trestle_error *err);

/* Recompute p->stats from its ops and batches (engine/plan/plan_create.c). */
void trestle__plan_fill_stats(trestle_plan *p);

/* Tests only: attach fault plan `f` (engine/common/fault.h; caller-owned,
 * it must outlive every restore of `p`) to plan `p`, or detach it with
 * NULL. Not while `p` is being restored (engine/plan/plan.c). */
struct trestle__faults;
void trestle__plan_set_faults(trestle_plan *p, struct trestle__faults *f);

#endif /* TRESTLE_PLAN_H */
