/*
 * ckpt_entry.h - decoding and validating the header and entry protos of an
 * index (engine/format/ckpt_entry.c), used by engine/format/checkpoint.c while scanning.
 */
#ifndef TRESTLE_CKPT_ENTRY_H
#define TRESTLE_CKPT_ENTRY_H

#include "ckpt_types.h"

/* Parse the BundleHeaderProto value of key "" into c (num_shards, endianness,
 * version checks with TF's messages). */
int trestle__header_parse(trestle_checkpoint *c, const uint8_t *value, size_t len,
                          uint64_t value_offset, trestle_error *err);

/* Parse and validate one BundleEntryProto into e (key already set); its
 * shape goes into c's slab. */
int trestle__entry_parse(trestle_checkpoint *c, trestle__entry *e, const uint8_t *value,
                         size_t len, trestle_error *err);

#define TRESTLE__WIRE_MAX_DIMS 16 /* more dims take protobuf-c's path */

/* A plain tensor's BundleEntryProto as the hand decoder (ckpt_wire.c) reads
 * it: the fields protobuf-c would give, absent ones 0. */
typedef struct trestle__entry_wire {
    int32_t dtype;
    int32_t shard_id;
    int64_t offset, size;
    uint32_t crc32c;
    bool unknown_rank;
    size_t rank;                            /* dims in the shape */
    int64_t dims[TRESTLE__WIRE_MAX_DIMS];
} trestle__entry_wire;

/*
 * Decode the common encoding of a BundleEntryProto without allocating:
 * true when `value` is in it, and then *w holds exactly what protobuf-c's
 * unpack would; false (nothing decided) for anything else, which the
 * caller hands to protobuf-c.
 */
bool trestle__entry_wire_decode(const uint8_t *value, size_t len, trestle__entry_wire *w);

/* Binary search by key bytes; returns the entry index or (size_t)-1. */
size_t trestle__checkpoint_lookup(const trestle_checkpoint *c, const char *key, size_t key_len);

/* "[2,3]" form of a shape, TF's TensorShape::DebugString without spaces. */
void trestle__shape_format(int rank, const int64_t *dims, char *buf, size_t cap);

#endif /* TRESTLE_CKPT_ENTRY_H */
