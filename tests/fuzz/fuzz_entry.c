/*
 * fuzz_entry.c - libFuzzer target for the protobuf values of an index
 * alone: the first byte picks BundleHeaderProto (even) or
 * BundleEntryProto (odd), the rest is the serialized message. The entry is
 * decoded and validated as trestle_open() does (dtype, shape, size, shard
 * range, stored slices) against a header of 4 shards, without the SSTable
 * around it, so every mutation reaches protobuf-c and the checks.
 * Any crash, leak or sanitizer report is a bug.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "ckpt_entry.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

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
    memset(&e, 0, sizeof e);
    e.key = key;
    e.key_len = sizeof key - 1;
    int rc = trestle__entry_parse(&c, &e, data + 1, size - 1, &err);
    if (rc != TRESTLE_OK && err.code != rc)
        abort();
    if (rc == TRESTLE_OK && e.kind != TRESTLE__ENTRY_PARTITIONED &&
        (e.shard < 0 || e.shard >= c.num_shards))
        abort(); /* validated entries name a real shard */
    free(e.dims);
    free(e.slices);
    free(e.slice_entries);
    return 0;
}
