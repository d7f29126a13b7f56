/*
 * ckpt_read.c - everything a caller can ask of an open checkpoint without a
 * plan: facts, the tensor listing, key lookup, and a simple synchronous read
 * of one tensor with CRC verification (for inspect, verify and tests; the
 * fast path is the planner and the pipeline).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "checked.h"
#include "ckpt_entry.h"
#include "ckpt_shard.h"
#include "ckpt_types.h"
#include "crc32c.h"
#include "cursor.h"
#include "error.h"
#include "sstable.h"
#include "string_tensor.h"

void trestle_checkpoint_get_info(const trestle_checkpoint *c, trestle_checkpoint_info *out)
{
    memset(out, 0, sizeof *out);
    out->prefix = c->prefix;
    out->index_path = c->index_path;
    out->num_shards = c->num_shards;
    out->big_endian = c->big_endian;
    out->producer = c->producer;
    out->min_consumer = c->min_consumer;
    out->num_tensors = c->num_listed;
    out->num_entries = c->num_entries;
    out->data_bytes = c->data_bytes;
    out->object_based = c->object_based;
    out->index_snappy_blocks = c->snappy_blocks;
}

int trestle_checkpoint_identity(const trestle_checkpoint *c, uint64_t *index_bytes,
                                uint32_t *index_crc32c)
{
    if (!c || !index_bytes || !index_crc32c)
        return TRESTLE_E_INVALID_ARG;
    *index_bytes = c->index_bytes;
    *index_crc32c = c->index_crc32c;
    return TRESTLE_OK;
}

const char *trestle_shard_path(const trestle_checkpoint *c, int shard)
{
    if (!c || shard < 0 || shard >= c->num_shards)
        return NULL;
    return c->shard_paths[shard];
}

size_t trestle_tensor_count(const trestle_checkpoint *c) { return c ? c->num_listed : 0; }

int trestle_tensor_get_info(const trestle_checkpoint *c, size_t i, trestle_tensor_info *out)
{
    if (!c || !out || i >= c->num_listed)
        return TRESTLE_E_INVALID_ARG;
    const trestle__entry *e = trestle__listed(c, i);
    memset(out, 0, sizeof *out);
    out->name = e->key;
    out->dtype = e->dtype;
    out->kind = e->kind == TRESTLE__ENTRY_PARTITIONED    ? TRESTLE_TENSOR_PARTITIONED
                : e->kind == TRESTLE__ENTRY_OBJECT_GRAPH ? TRESTLE_TENSOR_OBJECT_GRAPH
                                                         : TRESTLE_TENSOR_PLAIN;
    out->rank = e->rank;
    out->dims = e->dims;
    out->num_elements = e->num_elements;
    out->shard = e->shard;
    out->offset = e->offset;
    out->size = e->size;
    out->crc32c_masked = e->crc_masked;
    out->num_slices = e->num_slices;
    return TRESTLE_OK;
}

int trestle_tensor_find(const trestle_checkpoint *c, const char *name, size_t *index,
                        trestle_error *err)
{
    if (!c || !name)
        return trestle__error_simple(err, TRESTLE_E_INVALID_ARG, "NULL argument");
    size_t at = trestle__checkpoint_lookup(c, name, strlen(name));
    if (at != (size_t)-1 && c->entries[at].kind != TRESTLE__ENTRY_SLICE_PART) {
        /* listed[] is sorted like entries[]: binary search for the position. */
        size_t lo = 0, hi = c->num_listed;
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            if (trestle__listed_index(c, mid) < at)
                lo = mid + 1;
            else
                hi = mid;
        }
        if (index)
            *index = lo;
        return TRESTLE_OK;
    }
    return trestle__error_set(err, TRESTLE_E_KEY_NOT_FOUND, 0, name, c->index_path, -1, -1,
                              "Key %s not found in checkpoint", name);
}

/*
 * Check the stored CRC of entry e against crc (the CRC32C of its bytes):
 * TRESTLE_E_CRC_MISMATCH naming the tensor, shard file and offset, with TF's
 * decimal numbers ("stored %u vs. calculated %u").
 */
static int trestle__entry_check_crc(const trestle_checkpoint *c, const trestle__entry *e, uint32_t crc,
                             trestle_error *err)
{
    if (trestle__crc_mask(crc) == e->crc_masked)
        return TRESTLE_OK;
    const char *path = c->shard_paths[e->shard];
    return trestle__error_set(err, TRESTLE_E_CRC_MISMATCH, 0, e->key, path, (int64_t)e->offset,
                              (int64_t)e->size,
                              "CRC32C mismatch in tensor '%s' (%s, offset %" PRIu64 ", %" PRIu64
                              " bytes): Checksum does not match: stored %08u vs. calculated on "
                              "the restored bytes %08u", e->key, path, e->offset, e->size,
                              trestle__crc_unmask(e->crc_masked), crc);
}

/* Read one stored entry's bytes (PLAIN, SLICE_PART, OBJECT_GRAPH) and verify. */
static int read_entry(const trestle_checkpoint *c, const trestle__entry *e, void *buf,
                      int verify, trestle_error *err)
{
    if (e->past_end)
        return trestle__entry_past_end(c, e, err);
    int rc = trestle__shard_pread(c, e->shard, e->offset, buf, e->size, e->key, err);
    if (rc != TRESTLE_OK || !verify)
        return rc;
    uint32_t crc;
    if (e->dtype == TRESTLE_DT_STRING || e->dtype == TRESTLE_DT_VARIANT) {
        rc = e->dtype == TRESTLE_DT_STRING
                 ? trestle__strings_walk(buf, e->size, (uint64_t)e->num_elements, NULL, &crc, err)
                 : trestle__variants_walk(buf, e->size, (uint64_t)e->num_elements, &crc, err);
        if (rc != TRESTLE_OK) {
            trestle__error_prefix(err, "tensor '%s' (%s, offset %" PRIu64 ")", e->key,
                                  c->shard_paths[e->shard], e->offset);
            if (err) {
                snprintf(err->key, sizeof err->key, "%s", e->key);
                snprintf(err->path, sizeof err->path, "%s", c->shard_paths[e->shard]);
                err->offset = (int64_t)e->offset;
            }
            return rc;
        }
    } else {
        crc = trestle__crc32c(buf, (size_t)e->size);
    }
    return trestle__entry_check_crc(c, e, crc, err);
}

int trestle_tensor_read(const trestle_checkpoint *c, size_t i, void *buf, size_t cap, int verify,
                        trestle_error *err)
{
    if (!c || i >= c->num_listed || (!buf && cap > 0))
        return trestle__error_simple(err, TRESTLE_E_INVALID_ARG, "bad tensor index or buffer");
    const trestle__entry *e = trestle__listed(c, i);
    if (e->kind != TRESTLE__ENTRY_PARTITIONED) {
        if (cap < e->size)
            return trestle__error_set(err, TRESTLE_E_INVALID_ARG, 0, e->key, NULL, -1,
                                      (int64_t)e->size,
                                      "buffer of %zu bytes is too small for tensor '%s' (%" PRIu64
                                      " bytes)", cap, e->key, e->size);
        return read_entry(c, e, buf, verify, err);
    }

    /* Partitioned: read each stored slice and place it in the full tensor. */
    size_t esize = trestle_dtype_size(e->dtype);
    uint64_t total = (uint64_t)e->num_elements * esize;
    if (esize == 0)
        return trestle__error_set(err, TRESTLE_E_UNSUPPORTED, 0, e->key, NULL, -1, -1,
                                  "partitioned %s tensor '%s' cannot be assembled",
                                  trestle_dtype_name(e->dtype), e->key);
    if (cap < total)
        return trestle__error_set(err, TRESTLE_E_INVALID_ARG, 0, e->key, NULL, -1,
                                  (int64_t)total,
                                  "buffer of %zu bytes is too small for tensor '%s' (%" PRIu64
                                  " bytes)", cap, e->key, total);
    trestle__slice full;
    trestle__slice_full(&full, e->rank);
    for (int k = 0; k < e->num_slices; k++) {
        const trestle__entry *part = &c->entries[e->slice_entries[k]];
        void *tmp = malloc(part->size ? part->size : 1);
        if (!tmp)
            return trestle__error_simple(err, TRESTLE_E_NOMEM, "out of memory");
        int rc = read_entry(c, part, tmp, verify, err);
        if (rc == TRESTLE_OK) {
            trestle__slice region;
            region.rank = e->rank;
            trestle__slice_resolve(&e->slices[k], e->dims, region.start, region.length);
            trestle__slice_copy(buf, &full, tmp, &e->slices[k], &region, e->dims, esize);
        } else {
            /* Name the tensor the user knows, not the hidden slice key. */
            if (err)
                snprintf(err->key, sizeof err->key, "%s", e->key);
        }
        free(tmp);
        if (rc != TRESTLE_OK)
            return rc;
    }
    return TRESTLE_OK;
}
