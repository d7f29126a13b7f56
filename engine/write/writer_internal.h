/*
 * writer_internal.h - state shared by the two halves of the bundle writer:
 * writer.c (data files, entries) and writer_index.c (the .index).
 */
#ifndef TRESTLE_WRITER_INTERNAL_H
#define TRESTLE_WRITER_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "slice.h"
#include "trestle.h"

typedef struct wentry {
    uint8_t *key;            /* owned key bytes (slice keys contain NULs) */
    size_t key_len;
    int dtype;
    int rank;
    int64_t *dims;           /* owned */
    int shard;
    uint64_t offset, size;
    uint32_t crc_masked;
    trestle__slice *slices;  /* partitioned full entry: stored slices (owned) */
    int num_slices;
} wentry;

struct trestle_writer {
    char *prefix;
    int num_shards;
    uint32_t alignment;
    int snappy;
    int *fds;                /* data file per shard */
    char **paths;
    uint64_t *sizes;         /* bytes added per shard (its buffer's included) */
    uint8_t **bufs;          /* per shard: bytes added but not yet written, or NULL */
    size_t *buf_lens;
    size_t *buf_sizes;       /* per shard: bytes its buffer has room for, grown up to buf_cap */
    size_t buf_cap;          /* bytes each shard's buffer may hold */
    wentry *entries;
    size_t num_entries, cap;
    size_t *slots;           /* open-addressing table of entries by key: index + 1, 0 empty */
    size_t num_slots;        /* a power of two, at least twice num_entries */
    bool finished;
};

/* Write out what shard `shard`'s buffer holds (writer.c). */
int trestle__writer_flush(trestle_writer *w, int shard, trestle_error *err);

#endif /* TRESTLE_WRITER_INTERNAL_H */
