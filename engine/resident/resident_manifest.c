/*
 * resident_manifest.c - an entry's manifest: made by the preload from what
 * it restored, checked by every attach against what it would restore
 * itself.
 *
 * Each tensor carries a CRC32C. For a whole, unconverted, plain tensor it
 * is the checkpoint's own CRC (the index's), which the preload's restore
 * checked the bytes against, and which an attaching process compares with
 * its own index: the bytes it maps are then tied to the files it opened,
 * not to what the server says. Converted, sliced and string tensors carry
 * the CRC of their bytes as landed, computed by the preload; an attach
 * recomputes every CRC only when asked (trestle_attach_options.verify).
 */
#include <stdlib.h>
#include <string.h>

#include "crc32c.h"
#include "error.h"
#include "resident.h"

/* The stored CRC of op `op` when its bytes as landed are exactly the stored
 * tensor's bytes (so the index's CRC is theirs): *crc set, true. */
static bool stored_crc(const trestle_checkpoint *c, const trestle_plan_op_info *op,
                       const char *spec, uint32_t *crc)
{
    size_t idx;
    trestle_tensor_info t;
    if (spec[0] || op->dtype != op->out_dtype || op->dtype == TRESTLE_DT_STRING ||
        trestle_tensor_find(c, op->key, &idx, NULL) != TRESTLE_OK ||
        trestle_tensor_get_info(c, idx, &t) != TRESTLE_OK || t.kind != TRESTLE_TENSOR_PLAIN ||
        t.size != op->bytes)
        return false;
    *crc = trestle__crc_unmask(t.crc32c_masked);
    return true;
}

/* CRC32C of kept op `j`'s bytes, read back from the device through `fill`. */
static int device_crc(const trestle_plan *fill, size_t j, uint64_t bytes, uint32_t *crc,
                      trestle_error *err)
{
    void *tmp = malloc(bytes ? (size_t)bytes : 1);
    if (!tmp)
        return trestle__error_simple(err, TRESTLE_E_NOMEM, "out of memory reading back %llu "
                                     "bytes", (unsigned long long)bytes);
    int rc = trestle_plan_read_op(fill, j, tmp, bytes, err);
    if (rc == TRESTLE_OK)
        *crc = trestle__crc32c(tmp, (size_t)bytes);
    free(tmp);
    return rc;
}

int trestle__manifest_build(const trestle_checkpoint *c, const trestle__selection *s,
                            const uint8_t *base, const trestle_plan *fill, size_t first,
                            trestle__wire_manifest *out, trestle_error *err)
{
    size_t n = trestle_plan_op_count(s->plan), j = 0;
    memset(out, 0, sizeof *out);
    out->tensors = calloc(s->kept ? s->kept : 1, sizeof *out->tensors);
    if (!out->tensors)
        return trestle__error_simple(err, TRESTLE_E_NOMEM, "out of memory");
    out->count = (uint32_t)s->kept;
    for (size_t i = 0; i < n; i++) {
        trestle_plan_op_info op;
        trestle_plan_get_op(s->plan, i, &op);
        if (op.skipped)
            continue;
        trestle__wire_tensor *t = &out->tensors[j++];
        const char *spec = trestle__selection_spec(s, i);
        t->name = strdup(op.name);
        t->key = strdup(op.key);
        t->spec = strdup(spec);
        t->dims = calloc(op.rank ? (size_t)op.rank : 1, sizeof *t->dims);
        if (!t->name || !t->key || !t->spec || !t->dims) {
            trestle__wire_manifest_free(out);
            return trestle__error_simple(err, TRESTLE_E_NOMEM, "out of memory");
        }
        t->dtype = (uint32_t)op.out_dtype;
        t->stored_dtype = (uint32_t)op.dtype;
        t->rank = (uint32_t)op.rank;
        memcpy(t->dims, op.dims, (size_t)op.rank * sizeof *t->dims);
        t->offset = s->offsets[i];
        t->bytes = op.bytes;
        if (stored_crc(c, &op, spec, &t->crc32c)) {
            t->crc_kind = TRESTLE__CRC_STORED;
        } else {
            t->crc_kind = TRESTLE__CRC_LANDED;
            if (base) {
                t->crc32c = trestle__crc32c(base + t->offset, (size_t)t->bytes);
            } else {
                int rc = device_crc(fill, first + j - 1, t->bytes, &t->crc32c, err);
                if (rc != TRESTLE_OK) {
                    trestle__wire_manifest_free(out);
                    return rc;
                }
            }
        }
    }
    return TRESTLE_OK;
}

static bool dims_equal(const trestle__wire_tensor *t, const trestle_plan_op_info *op)
{
    if (t->rank != (uint32_t)op->rank)
        return false;
    for (int d = 0; d < op->rank; d++)
        if (t->dims[d] != op->dims[d])
            return false;
    return true;
}

int trestle__manifest_check(const trestle_checkpoint *c, const trestle__selection *s,
                            const trestle__wire_manifest *m, uint64_t region_bytes,
                            const char *what, trestle_error *err)
{
    size_t n = trestle_plan_op_count(s->plan), j = 0;
    uint64_t end = 0;
    const char *path = s->key.id.path;
    if (m->count != s->kept)
        return trestle__error_simple(err, TRESTLE_E_CORRUPT, "%s: its entry for %s has %u "
                                     "tensors where this process's plan has %zu", what, path,
                                     m->count, s->kept);
    for (size_t i = 0; i < n; i++) {
        trestle_plan_op_info op;
        trestle_plan_get_op(s->plan, i, &op);
        if (op.skipped)
            continue;
        const trestle__wire_tensor *t = &m->tensors[j];
        const char *spec = trestle__selection_spec(s, i);
        const char *bad = NULL;
        uint32_t crc;
        bool stored = stored_crc(c, &op, spec, &crc);
        if (strcmp(t->name, op.name) != 0)
            bad = "its name";
        else if (strcmp(t->key, op.key) != 0)
            bad = "the checkpoint key it restores";
        else if (strcmp(t->spec, spec) != 0)
            bad = "its slice";
        else if (t->dtype != (uint32_t)op.out_dtype || t->stored_dtype != (uint32_t)op.dtype)
            bad = "its dtype";
        else if (!dims_equal(t, &op) || t->bytes != op.bytes)
            bad = "its shape or size";
        else if (t->offset % TRESTLE__RESIDENT_ALIGN || t->offset < end ||
                 t->offset > region_bytes || t->bytes > region_bytes - t->offset)
            bad = "its place in the memory (unaligned, overlapping or outside it)";
        else if (stored != (t->crc_kind == TRESTLE__CRC_STORED) || (stored && t->crc32c != crc))
            bad = "its CRC32C (the index of the files this process opened says otherwise)";
        if (bad)
            return trestle__error_set(err, TRESTLE_E_CORRUPT, 0, op.name, NULL,
                                      (int64_t)t->offset, (int64_t)t->bytes,
                                      "%s: its entry for %s does not match this process's plan: "
                                      "tensor %zu ('%s') differs in %s", what, path, j, op.name,
                                      bad);
        end = t->offset + t->bytes;
        j++;
    }
    return TRESTLE_OK;
}

int trestle__manifest_verify(const trestle__wire_manifest *m, const uint8_t *base,
                             const char *what, trestle_error *err)
{
    for (uint32_t i = 0; i < m->count; i++) {
        const trestle__wire_tensor *t = &m->tensors[i];
        uint32_t got = trestle__crc32c(base + t->offset, (size_t)t->bytes);
        if (got != t->crc32c)
            return trestle__error_set(err, TRESTLE_E_CRC_MISMATCH, 0, t->name, NULL,
                                      (int64_t)t->offset, (int64_t)t->bytes,
                                      "%s: tensor '%s' (offset %llu in resident memory): "
                                      "CRC32C of its bytes is 0x%08x, its manifest says 0x%08x",
                                      what, t->name, (unsigned long long)t->offset,
                                      (unsigned)got, (unsigned)t->crc32c);
    }
    return TRESTLE_OK;
}
