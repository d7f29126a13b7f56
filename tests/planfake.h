/*
 * planfake.h - a checkpoint built in memory for the planner suites
 * (test_plan.c, test_plan_names.c, test_plan_slices.c): index entries
 * filled in by hand and kept in key order as trestle_open leaves them, no
 * files (every shard fd is -1: nothing is read). Also what those suites
 * check alike: a plan that must fail with a code, an entry's index, and
 * the invariants of engine/plan/plan.h every plan must keep.
 */
#ifndef TRESTLE_PLANFAKE_H
#define TRESTLE_PLANFAKE_H

#include <stddef.h>
#include <stdint.h>

#include "checkpoint.h"
#include "plan.h"
#include "trestle.h"

#define FK_SHARDS 4 /* shards of every fake checkpoint */

typedef struct fake {
    trestle_checkpoint c;
    size_t cap;                     /* entries allocated */
    char *paths[FK_SHARDS];         /* shard_paths */
    int fds[FK_SHARDS];             /* shard_fds: all -1, nothing is read */
} fake;

/* An empty checkpoint "fake" of FK_SHARDS shards with room for `cap` entries. */
void fk_init(fake *f, size_t cap);

/* Append an entry (key of key_len bytes, maybe NUL-led) of `kind`, dtype
 * and shape; its place in the file is the caller's to fill in. */
trestle__entry *fk_entry(fake *f, const char *key, size_t key_len, int kind, int dtype, int rank,
                         const int64_t *dims);

/* A plain fixed-size tensor at shard:offset. */
void fk_tensor(fake *f, const char *key, int dtype, int rank, const int64_t *dims, int shard,
               uint64_t offset);

/* A 1-D uint8 tensor of `size` bytes: byte sizes chosen freely. */
void fk_bytes(fake *f, const char *key, uint64_t size, int shard, uint64_t offset);

/* A DT_STRING tensor (or the object graph) of n elements, `size` stored bytes. */
void fk_strings(fake *f, const char *key, int kind, int64_t n, uint64_t size, int shard,
                uint64_t offset);

/*
 * A [rows, cols] partitioned tensor stored as row blocks, each slice with
 * explicit extents in both dims as Python's partitioners write them. The
 * part entries get NUL-led keys, as real slice keys have; slice_entries
 * hold pre-sort indexes until fk_finish remaps them.
 */
void fk_partitioned(fake *f, const char *key, int dtype, int64_t rows, int64_t cols, int n,
                    const int64_t *row_start, const int64_t *row_len, const int *shard,
                    const uint64_t *offset);

/* Sort entries into key order (as trestle_open leaves them), remap slice
 * entries and list the visible tensors. Call once, after the last entry. */
void fk_finish(fake *f);

void fk_free(fake *f);

/* Expect planning to fail with `code` (and *out NULL); returns the error
 * for further checks. */
trestle_error fk_plan_fails(const fake *f, const trestle_op *ops, size_t n,
                            const trestle_plan_options *po, int code);

/* The index of the entry `key`, or the test fails. */
size_t fk_entry_of(const fake *f, const char *key);

/* Invariants of plan.h every plan must keep. */
void fk_assert_invariants(const trestle_plan *p);

#endif /* TRESTLE_PLANFAKE_H */
