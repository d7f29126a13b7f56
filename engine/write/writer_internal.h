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
    uint64_t *sizes;         /* bytes written per shard */
    wentry *entries;
    size_t num_entries, cap;
    bool finished;
};

#endif /* TRESTLE_WRITER_INTERNAL_H */
