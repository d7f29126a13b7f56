/*
 * checkpoint.h - the in-memory form of an open checkpoint, shared by the
 * modules above the format layer (plan, readers, restore, CLI helpers).
 *
 * trestle_open() reads the whole index once, validates every entry and
 * keeps them in key order; after that the object is immutable, so any
 * number of threads can plan and read from it.
 */
#ifndef TRESTLE_CHECKPOINT_H
#define TRESTLE_CHECKPOINT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "slice.h"
#include "trestle.h"

#define TRESTLE_OBJECT_GRAPH_KEY "_CHECKPOINTABLE_OBJECT_GRAPH"
#define TRESTLE_MAX_RANK 254 /* TF's TensorShape limit */

/* What an index entry is. */
enum trestle__entry_kind {
    TRESTLE__ENTRY_PLAIN = 0,       /* a whole tensor's bytes */
    TRESTLE__ENTRY_PARTITIONED = 1, /* full entry listing stored slices; no bytes */
    TRESTLE__ENTRY_SLICE_PART = 2,  /* bytes of one stored slice (hidden key) */
    TRESTLE__ENTRY_OBJECT_GRAPH = 3 /* the TF2 object graph string */
};

typedef struct trestle__entry {
    char *key;              /* NUL-terminated copy (slice keys contain NULs: use key_len) */
    size_t key_len;
    int kind;               /* trestle__entry_kind */
    int dtype;              /* validated: known, storable */
    int rank;
    int64_t *dims;          /* rank sizes (owned) */
    int64_t num_elements;
    int shard;              /* validated 0 <= shard < num_shards */
    uint64_t offset;        /* validated offset + size <= shard size (when present) */
    uint64_t size;
    uint32_t crc_masked;
    int num_slices;         /* PARTITIONED: stored slices */
    trestle__slice *slices; /* PARTITIONED: their extents (owned) */
    size_t *slice_entries;  /* PARTITIONED: index of each slice's SLICE_PART entry */
    uint64_t index_offset;  /* where the entry's value sits in the .index (errors) */
} trestle__entry;

struct trestle_checkpoint {
    char *prefix;            /* resolved prefix P */
    char *index_path;        /* P.index */
    int num_shards;
    int big_endian;
    int producer, min_consumer;
    char **shard_paths;      /* num_shards data file names */
    int *shard_fds;          /* O_RDONLY fds; -1 when the file is missing */
    int *shard_errno;        /* errno of a failed open, else 0 */
    uint64_t *shard_sizes;   /* st_size at open */
    trestle__entry *entries; /* every entry but the header, in key order */
    size_t num_entries;
    size_t *listed;          /* indexes of listed entries (not SLICE_PART), key order */
    size_t num_listed;
    uint64_t data_bytes;     /* sum of listed sizes */
    bool object_based;
    int snappy_blocks;
};

/* Binary search by key bytes; returns the entry index or (size_t)-1. */
size_t trestle__checkpoint_lookup(const trestle_checkpoint *c, const char *key, size_t key_len);

/* The entry of listed tensor i. */
static inline const trestle__entry *trestle__listed(const trestle_checkpoint *c, size_t i)
{
    return &c->entries[c->listed[i]];
}

/*
 * pread exactly `n` bytes of shard `shard` at `offset` into buf, retrying
 * EINTR and short reads; TRESTLE_E_SHORT_READ at EOF, TRESTLE_E_IO on
 * error, TRESTLE_E_NOT_FOUND when the shard file is missing. `key` names
 * the tensor in the error.
 */
int trestle__shard_pread(const trestle_checkpoint *c, int shard, uint64_t offset, void *buf,
                         uint64_t n, const char *key, trestle_error *err);

/*
 * Check the stored CRC of entry e against crc (the CRC32C of its bytes):
 * TRESTLE_E_CRC_MISMATCH naming the tensor, shard file and offset, with TF's
 * decimal numbers ("stored %u vs. calculated %u").
 */
int trestle__entry_check_crc(const trestle_checkpoint *c, const trestle__entry *e, uint32_t crc,
                             trestle_error *err);

/* ---- the `checkpoint` state file (engine/state_file.c) ---- */

/*
 * Parse the text-format CheckpointState in `text` and return, in *out
 * (malloc'd), model_checkpoint_path joined to `dir` when relative.
 * TRESTLE_E_CORRUPT for unparseable text or an empty path (TF's
 * "Invalid checkpoint state loaded from <dir>"). `all_out`/`n_all` (may be
 * NULL) receive all_model_checkpoint_paths, joined likewise.
 */
int trestle__state_parse(const char *text, size_t len, const char *dir, const char *file_path,
                         char **out, char ***all_out, size_t *n_all, trestle_error *err);

#endif /* TRESTLE_CHECKPOINT_H */
