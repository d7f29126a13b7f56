/*
 * ckpt_types.h - the in-memory form of an open checkpoint: its entries and
 * the checkpoint object itself. Only types and one inline accessor live
 * here, so the format modules (ckpt_entry.c, ckpt_slices.c, ckpt_shard.c,
 * ckpt_read.c) and the open sequence in checkpoint.c all depend on this
 * header and none of them on another's code in a circle.
 */
#ifndef TRESTLE_CKPT_TYPES_H
#define TRESTLE_CKPT_TYPES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "slab.h"
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

/* One entry of the index. A model of 100,000 tensors keeps 100,000 of
 * these for as long as the checkpoint is open: the fields are ordered and
 * sized so that one takes 80 bytes. */
typedef struct trestle__entry {
    char *key;              /* NUL-terminated copy in the checkpoint's slab (slice keys
                               contain NULs: use key_len) */
    int64_t *dims;          /* rank sizes (in the checkpoint's slab) */
    int64_t num_elements;
    uint64_t offset;        /* offset + size <= shard size, unless past_end */
    uint64_t size;
    trestle__slice *slices; /* PARTITIONED: their extents (owned) */
    size_t *slice_entries;  /* PARTITIONED: index of each slice's SLICE_PART entry */
    uint32_t index_offset;  /* where the entry's value sits in the .index, which is at most
                               4 GiB (errors) */
    uint32_t key_len;       /* a key is shorter than its index */
    uint32_t crc_masked;
    int32_t shard;          /* validated 0 <= shard < num_shards */
    int32_t num_slices;     /* PARTITIONED: stored slices */
    uint8_t kind;           /* trestle__entry_kind */
    uint8_t dtype;          /* validated: known and storable, so below TRESTLE_DT_COUNT_ */
    uint8_t rank;           /* at most TRESTLE_MAX_RANK */
    bool past_end;          /* bytes lie (partly) past the end of its shard file at open */
} trestle__entry;

_Static_assert(TRESTLE_DT_COUNT_ <= 256 && TRESTLE_MAX_RANK <= 255,
               "trestle__entry keeps dtype and rank in a byte");

struct trestle_checkpoint {
    char *prefix;            /* resolved prefix P */
    char *index_path;        /* P.index */
    int num_shards;
    int big_endian;
    int producer, min_consumer;
    char **shard_paths;      /* num_shards data file names */
    int *shard_fds;          /* O_RDONLY fds, opened when first needed; -1 until then or
                                when the file cannot be used (atomic: see ckpt_shard.c) */
    int *shard_errno;        /* errno of a failed stat or open, else 0 */
    uint64_t *shard_sizes;   /* st_size at trestle_open() */
    int *shard_state;        /* trestle__shard_state; NULL when the fds were set up by hand
                                (test fixtures): then nothing is opened lazily */
    int shard_lock;          /* spin lock for the lazy opens (0 = free) */
    trestle__entry *entries; /* every entry but the header, in key order */
    size_t num_entries;
    size_t *listed;          /* indexes of listed entries (not SLICE_PART), key order; NULL
                                when every entry is listed (trestle__listed_index) */
    size_t num_listed;
    uint64_t data_bytes;     /* sum of listed sizes */
    bool object_based;
    int snappy_blocks;
    uint64_t index_bytes;    /* size of the .index as read at open */
    uint32_t index_crc32c;   /* CRC-32C of those bytes: with index_bytes, which version this
                                is (trestle_checkpoint_identity()) */
    size_t num_partitioned;  /* PARTITIONED entries (they own their slice arrays) */
    trestle__slab slab;      /* every entry's key and dims: one free at close */
    /* A remote checkpoint (gs://, s3://, http(s)://; ckpt_remote.c), else both NULL: its
     * names above are display URLs (no secret in them), shard_fds stay -1, and a shard
     * whose HEAD succeeded is TRESTLE__SHARD_OPEN. */
    struct trestle__store *store;          /* where its objects live (engine/remote/) */
    struct trestle__object *remote_shards; /* num_shards: size, validators, CRC32C */
};

/* What trestle_open() found out about a shard file (shard_state). */
enum trestle__shard_state {
    TRESTLE__SHARD_UNOPENED = 0, /* a regular file, not opened yet */
    TRESTLE__SHARD_OPEN = 1,     /* shard_fds holds its descriptor */
    TRESTLE__SHARD_MISSING = 2,  /* stat or open failed: shard_errno says why */
    TRESTLE__SHARD_IRREGULAR = 3 /* a directory, FIFO, socket or device: never opened */
};

/* The entry index of listed tensor i. */
static inline size_t trestle__listed_index(const trestle_checkpoint *c, size_t i)
{
    return c->listed ? c->listed[i] : i;
}

/* The entry of listed tensor i. */
static inline const trestle__entry *trestle__listed(const trestle_checkpoint *c, size_t i)
{
    return &c->entries[trestle__listed_index(c, i)];
}

#endif /* TRESTLE_CKPT_TYPES_H */
