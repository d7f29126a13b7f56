/*
 * ckpt_entry.c - BundleHeaderProto and BundleEntryProto, decoded with the
 * protobuf-c code generated from proto/ and then checked number by number:
 * dtype known and storable, shape valid (TF's limits), size consistent
 * with shape x dtype, shard id in range, slices inside the full shape and
 * not overlapping. Messages use TF's words where TF has them. Entries are
 * kept in key order, so lookup by key is a binary search here too.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checked.h"
#include "ckpt_entry.h"
#include "error.h"
#include "sstable.h"
#include "slab.h"
#include "tensor_bundle.pb-c.h"

#define TRESTLE_BUNDLE_VERSION 1 /* TF's kTensorBundleVersion */

size_t trestle__checkpoint_lookup(const trestle_checkpoint *c, const char *key, size_t key_len)
{
    size_t lo = 0, hi = c->num_entries;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const trestle__entry *e = &c->entries[mid];
        int cmp = trestle__key_cmp(e->key, e->key_len, key, key_len);
        if (cmp == 0)
            return mid;
        if (cmp < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return (size_t)-1;
}

void trestle__shape_format(int rank, const int64_t *dims, char *buf, size_t cap)
{
    size_t n = 0;
    if (cap == 0)
        return;
    n += (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < rank && n < cap; i++)
        n += (size_t)snprintf(buf + n, cap - n, i ? ",%" PRId64 : "%" PRId64, dims[i]);
    if (n < cap)
        snprintf(buf + n, cap - n, "]");
}

int trestle__header_parse(trestle_checkpoint *c, const uint8_t *value, size_t len,
                          uint64_t value_offset, trestle_error *err)
{
    Tensorflow__BundleHeaderProto *h = tensorflow__bundle_header_proto__unpack(NULL, len, value);
    int rc = TRESTLE_OK;

    if (!h)
        return trestle__error_set(err, TRESTLE_E_CORRUPT, 0, NULL, c->index_path,
                                  (int64_t)value_offset, (int64_t)len,
                                  "Unable to read file (%s). Perhaps the file is corrupt or was "
                                  "produced by a newer version of TensorFlow with format changes "
                                  "(unable to parse header at offset %" PRIu64 ")",
                                  c->index_path, value_offset);
    c->num_shards = h->num_shards;
    c->big_endian = h->endianness == TENSORFLOW__BUNDLE_HEADER_PROTO__ENDIANNESS__BIG;
    c->producer = h->version ? h->version->producer : 0;
    c->min_consumer = h->version ? h->version->min_consumer : 0;

    if (h->num_shards < 1 || h->num_shards > (1 << 20))
        rc = trestle__error_set(err, TRESTLE_E_CORRUPT, 0, NULL, c->index_path,
                                (int64_t)value_offset, -1,
                                "%s: header says num_shards = %d (offset %" PRIu64 ")",
                                c->index_path, h->num_shards, value_offset);
    else if ((int)h->endianness != 0 && (int)h->endianness != 1)
        rc = trestle__error_set(err, TRESTLE_E_CORRUPT, 0, NULL, c->index_path,
                                (int64_t)value_offset, -1, "%s: header has unknown endianness %d",
                                c->index_path, (int)h->endianness);
    else if (c->big_endian)
        rc = trestle__error_set(err, TRESTLE_E_UNSUPPORTED, 0, NULL, c->index_path, -1, -1,
                                "%s: big-endian bundles are not supported (tensor bytes would "
                                "need swapping)", c->index_path);
    else if (c->producer < 0)
        rc = trestle__error_set(err, TRESTLE_E_BAD_VERSION, 0, NULL, c->index_path, -1, -1,
                                "Checkpoint producer version %d below min producer 0 supported "
                                "by trestle (%s)", c->producer, c->index_path);
    else if (c->min_consumer > TRESTLE_BUNDLE_VERSION)
        rc = trestle__error_set(err, TRESTLE_E_BAD_VERSION, 0, NULL, c->index_path, -1, -1,
                                "Checkpoint min consumer version %d above current version %d "
                                "(%s)", c->min_consumer, TRESTLE_BUNDLE_VERSION, c->index_path);
    for (size_t i = 0; rc == TRESTLE_OK && h->version && i < h->version->n_bad_consumers; i++)
        if (h->version->bad_consumers[i] == TRESTLE_BUNDLE_VERSION)
            rc = trestle__error_set(err, TRESTLE_E_BAD_VERSION, 0, NULL, c->index_path, -1, -1,
                                    "Checkpoint disallows consumer version %d (%s)",
                                    TRESTLE_BUNDLE_VERSION, c->index_path);
    tensorflow__bundle_header_proto__free_unpacked(h, NULL);
    return rc;
}

static bool storable(int dtype)
{
    return dtype > 0 && dtype < TRESTLE_DT_COUNT_ && dtype != TRESTLE_DT_RESOURCE;
}

/* Copy the stored slices of a partitioned entry, checking them against the shape. */
static int parse_slices(const trestle_checkpoint *c, trestle__entry *e,
                        const Tensorflow__BundleEntryProto *m, const char *shown,
                        trestle_error *err)
{
    if (e->rank > TRESTLE_MAX_SLICE_RANK)
        return trestle__error_set(err, TRESTLE_E_LIMIT, 0, e->key, c->index_path,
                                  (int64_t)(uint64_t)e->index_offset, -1,
                                  "partitioned tensor '%s' has rank %d; trestle slices up to "
                                  "rank %d", shown, e->rank, TRESTLE_MAX_SLICE_RANK);
    if (m->n_slices > (1u << 20))
        return trestle__error_simple(err, TRESTLE_E_LIMIT, "tensor '%s' lists %zu slices",
                                     shown, m->n_slices);
    e->slices = calloc(m->n_slices, sizeof *e->slices);
    e->slice_entries = calloc(m->n_slices, sizeof *e->slice_entries);
    if (!e->slices || !e->slice_entries)
        return trestle__error_simple(err, TRESTLE_E_NOMEM, "out of memory");
    e->num_slices = (int)m->n_slices;
    for (size_t i = 0; i < m->n_slices; i++) {
        const Tensorflow__TensorSliceProto *sp = m->slices[i];
        trestle__slice *s = &e->slices[i];
        if (sp->n_extent != (size_t)e->rank)
            return trestle__error_set(err, TRESTLE_E_CORRUPT, 0, e->key, c->index_path,
                                      (int64_t)(uint64_t)e->index_offset, -1,
                                      "tensor '%s': stored slice %zu has %zu extents for rank %d "
                                      "(entry at offset %" PRIu64 " of %s)", shown, i,
                                      sp->n_extent, e->rank, (uint64_t)e->index_offset, c->index_path);
        s->rank = e->rank;
        for (int d = 0; d < e->rank; d++) {
            const Tensorflow__TensorSliceProto__Extent *x = sp->extent[d];
            bool has_len = x->has_length_case ==
                           TENSORFLOW__TENSOR_SLICE_PROTO__EXTENT__HAS_LENGTH_LENGTH;
            int64_t end;
            s->start[d] = x->start;
            s->length[d] = has_len ? x->length : -1;
            if (x->start < 0 || (has_len && x->length < 0) ||
                (!has_len && x->start != 0) ||
                !tr_add_i64(x->start, has_len ? x->length : e->dims[d], &end) ||
                end > e->dims[d])
                return trestle__error_set(err, TRESTLE_E_CORRUPT, 0, e->key, c->index_path,
                                          (int64_t)(uint64_t)e->index_offset, -1,
                                          "tensor '%s': stored slice %zu dimension %d "
                                          "(start %" PRId64 ", length %" PRId64 ") is outside "
                                          "the shape (entry at offset %" PRIu64 " of %s)",
                                          shown, i, d, x->start, has_len ? x->length : -1,
                                          (uint64_t)e->index_offset, c->index_path);
        }
    }
    return TRESTLE_OK;
}

/* What one entry says, from either decoder. */
typedef struct entry_fields {
    int dtype;
    int shard_id;
    int64_t offset, size;
    uint32_t crc32c;
    bool unknown_rank;
    size_t rank;
    const int64_t *dims;                          /* rank sizes (not yet copied) */
    const Tensorflow__BundleEntryProto *m;        /* protobuf-c's message, for stored
                                                     slices; NULL from the hand decoder */
} entry_fields;

/* The error's key, path and offset: those of entry e. */
static int located(const trestle_checkpoint *c, const trestle__entry *e, const char *shown,
                   int rc, trestle_error *err)
{
    if (rc != TRESTLE_OK && err) {
        snprintf(err->key, sizeof err->key, "%s", shown);
        snprintf(err->path, sizeof err->path, "%s", c->index_path);
        err->offset = (int64_t)(uint64_t)e->index_offset;
    }
    return rc;
}

/*
 * Check the decoded fields f of entry e number by number and fill e. The
 * key as messages show it, and the shape, are formatted only for an
 * error: an index of 100,000 tensors has no time to print each one.
 */
static int check_entry(trestle_checkpoint *c, trestle__entry *e, const entry_fields *f,
                       trestle_error *err)
{
    char shown[512], shape[256];
    int rc = TRESTLE_OK;

#define SHOWN() trestle__key_display(e->key, e->key_len, shown, sizeof shown)
#define SHAPE() (trestle__shape_format(e->rank, e->dims, shape, sizeof shape), shape)
    e->shard = f->shard_id;
    TR_FAIL_IF(!storable(f->dtype), err, TRESTLE_E_CORRUPT,
               "tensor '%s' has unknown or unstorable dtype %d (entry at offset %" PRIu64
               " of %s)", SHOWN(), f->dtype, (uint64_t)e->index_offset, c->index_path);
    e->dtype = (uint8_t)f->dtype;
    TR_FAIL_IF(f->unknown_rank || f->rank > TRESTLE_MAX_RANK, err, TRESTLE_E_CORRUPT,
               "Invalid tensor shape: %s (%s rank; entry at offset %" PRIu64 " of %s)", SHOWN(),
               f->rank > TRESTLE_MAX_RANK ? "more than 254 dims of" : "unknown", (uint64_t)e->index_offset,
               c->index_path);
    e->rank = (uint8_t)f->rank;
    int64_t *dims = trestle__slab_alloc(&c->slab, (f->rank ? f->rank : 1) * sizeof *dims,
                                        sizeof *dims);
    TR_FAIL_IF(!dims, err, TRESTLE_E_NOMEM, "out of memory");
    if (f->rank)
        memcpy(dims, f->dims, f->rank * sizeof *dims);
    e->dims = dims;
    TR_FAIL_IF(!tr_num_elements(e->rank, e->dims, &e->num_elements), err, TRESTLE_E_CORRUPT,
               "Invalid tensor shape: %s %s (negative or overflowing; entry at offset %" PRIu64
               " of %s)", SHOWN(), SHAPE(), (uint64_t)e->index_offset, c->index_path);

    if (f->m && f->m->n_slices > 0) {
        e->kind = TRESTLE__ENTRY_PARTITIONED;
        e->shard = -1;
        c->num_partitioned++;
        TR_FORWARD(parse_slices(c, e, f->m, SHOWN(), err));
        goto done;
    }
    TR_FAIL_IF(f->shard_id < 0 || f->shard_id >= c->num_shards, err, TRESTLE_E_CORRUPT,
               "tensor '%s' names shard %d of %d (entry at offset %" PRIu64 " of %s)", SHOWN(),
               f->shard_id, c->num_shards, (uint64_t)e->index_offset, c->index_path);
    TR_FAIL_IF(f->offset < 0 || f->size < 0, err, TRESTLE_E_CORRUPT,
               "tensor '%s' has offset %" PRId64 ", size %" PRId64 " (entry at offset %" PRIu64
               " of %s)", SHOWN(), f->offset, f->size, (uint64_t)e->index_offset, c->index_path);
    e->offset = (uint64_t)f->offset;
    e->size = (uint64_t)f->size;
    e->crc_masked = f->crc32c;

    size_t esize = trestle_dtype_size(e->dtype);
    if (esize > 0) {
        uint64_t want;
        TR_FAIL_IF(!tr_mul_u64((uint64_t)e->num_elements, esize, &want) || want != e->size, err,
                   TRESTLE_E_CORRUPT,
                   "Invalid size in bundle entry: key %s; stored size %" PRIu64
                   "; expected size %" PRIu64 " (%s %s; entry at offset %" PRIu64 " of %s)",
                   SHOWN(), e->size, (uint64_t)e->num_elements * esize,
                   trestle_dtype_name(e->dtype), SHAPE(), (uint64_t)e->index_offset, c->index_path);
    } else {
        /* Strings: a length byte per element plus the 4-byte length checksum;
         * variants: a length byte and a 4-byte checksum per element. */
        uint64_t min = (uint64_t)e->num_elements * (e->dtype == TRESTLE_DT_STRING ? 1 : 5) +
                       (e->dtype == TRESTLE_DT_STRING ? 4 : 0);
        TR_FAIL_IF((uint64_t)e->num_elements > e->size || e->size < min, err, TRESTLE_E_CORRUPT,
                   "Invalid size in bundle entry: key %s; stored size %" PRIu64 " is too small "
                   "for %" PRId64 " %s elements (entry at offset %" PRIu64 " of %s)",
                   SHOWN(), e->size, e->num_elements, trestle_dtype_name(e->dtype),
                   (uint64_t)e->index_offset, c->index_path);
    }
    if (e->key_len == sizeof TRESTLE_OBJECT_GRAPH_KEY - 1 &&
        memcmp(e->key, TRESTLE_OBJECT_GRAPH_KEY, e->key_len) == 0 &&
        e->dtype == TRESTLE_DT_STRING)
        e->kind = TRESTLE__ENTRY_OBJECT_GRAPH;
done:
fail:
    return rc == TRESTLE_OK ? rc : located(c, e, SHOWN(), rc, err);
#undef SHOWN
#undef SHAPE
}

/* Anything the hand decoder leaves: protobuf-c's unpack, as every entry
 * was read before it. */
static int parse_with_protobuf_c(trestle_checkpoint *c, trestle__entry *e, const uint8_t *value,
                                 size_t len, trestle_error *err)
{
    Tensorflow__BundleEntryProto *m = tensorflow__bundle_entry_proto__unpack(NULL, len, value);
    if (!m) {
        char shown[512];
        trestle__key_display(e->key, e->key_len, shown, sizeof shown);
        return trestle__error_set(err, TRESTLE_E_CORRUPT, 0, shown, c->index_path,
                                  (int64_t)(uint64_t)e->index_offset, (int64_t)len,
                                  "Entry for key %s not parseable (offset %" PRIu64 " of %s)",
                                  shown, (uint64_t)e->index_offset, c->index_path);
    }
    const Tensorflow__TensorShapeProto *sp = m->shape;
    size_t rank = sp ? sp->n_dim : 0;
    int64_t *dims = NULL;
    int rc;
    if (rank > 0 && rank <= TRESTLE_MAX_RANK) {
        dims = malloc(rank * sizeof *dims);
        if (!dims) {
            tensorflow__bundle_entry_proto__free_unpacked(m, NULL);
            return trestle__error_simple(err, TRESTLE_E_NOMEM, "out of memory");
        }
        for (size_t d = 0; d < rank; d++)
            dims[d] = sp->dim[d]->size;
    }
    entry_fields f = { (int)m->dtype, m->shard_id, m->offset, m->size, m->crc32c,
                       sp && sp->unknown_rank, rank, dims, m };
    rc = check_entry(c, e, &f, err);
    free(dims);
    tensorflow__bundle_entry_proto__free_unpacked(m, NULL);
    return rc;
}

int trestle__entry_parse(trestle_checkpoint *c, trestle__entry *e, const uint8_t *value,
                         size_t len, trestle_error *err)
{
    trestle__entry_wire w;
    if (!trestle__entry_wire_decode(value, len, &w))
        return parse_with_protobuf_c(c, e, value, len, err);
    entry_fields f = { w.dtype, w.shard_id, w.offset, w.size, w.crc32c, w.unknown_rank, w.rank,
                       w.dims, NULL };
    return check_entry(c, e, &f, err);
}
