/*
 * fuzz_entry.c - libFuzzer target for the protobuf values of an index
 * alone: the first byte picks BundleHeaderProto (even) or
 * BundleEntryProto (odd), the rest is the serialized message. The entry is
 * decoded and validated as trestle_open() does (dtype, shape, size, shard
 * range, stored slices) against a header of 4 shards, without the SSTable
 * around it, so every mutation reaches the decoders and the checks. Where
 * the hand decoder (ckpt_wire.c) takes a value, protobuf-c must decode it
 * to the same fields. Any crash, leak, sanitizer report or abort is a bug.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "ckpt_entry.h"
#include "tensor_bundle.pb-c.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The hand decoder agrees with protobuf-c wherever it takes a value. */
static void same_as_protobuf_c(const uint8_t *v, size_t n)
{
    trestle__entry_wire w;
    if (!trestle__entry_wire_decode(v, n, &w))
        return;
    Tensorflow__BundleEntryProto *m = tensorflow__bundle_entry_proto__unpack(NULL, n, v);
    size_t rank = m && m->shape ? m->shape->n_dim : 0;
    bool same = m && w.dtype == (int)m->dtype && w.shard_id == m->shard_id &&
                w.offset == m->offset && w.size == m->size && w.crc32c == m->crc32c &&
                m->n_slices == 0 && w.rank == rank &&
                w.unknown_rank == (m->shape && m->shape->unknown_rank);
    for (size_t d = 0; same && d < rank; d++)
        same = w.dims[d] == m->shape->dim[d]->size;
    if (m)
        tensorflow__bundle_entry_proto__free_unpacked(m, NULL);
    if (!same)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    trestle_checkpoint c;
    trestle__entry e;
    trestle_error err;
    char index_path[] = "fuzz.index", key[] = "layer/kernel";

    if (size < 1)
        return 0;
    memset(&c, 0, sizeof c);
    c.index_path = index_path;
    c.num_shards = 4;
    if ((data[0] & 1) == 0) {
        int rc = trestle__header_parse(&c, data + 1, size - 1, 0, &err);
        if (rc != TRESTLE_OK && err.code != rc)
            abort(); /* a failure must fill err */
        return 0;
    }
    same_as_protobuf_c(data + 1, size - 1);
    memset(&e, 0, sizeof e);
    e.key = key;
    e.key_len = sizeof key - 1;
    int rc = trestle__entry_parse(&c, &e, data + 1, size - 1, &err);
    if (rc != TRESTLE_OK && err.code != rc)
        abort();
    if (rc == TRESTLE_OK && e.kind != TRESTLE__ENTRY_PARTITIONED &&
        (e.shard < 0 || e.shard >= c.num_shards))
        abort(); /* validated entries name a real shard */
    trestle__slab_free(&c.slab); /* e.dims */
    free(e.slices);
    free(e.slice_entries);
    return 0;
}
