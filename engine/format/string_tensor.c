/*
 * string_tensor.c - DT_STRING tensors as TensorFlow's BundleWriter lays them out:
 *
 *     varint64 len[0..n) | fixed32 Mask(C1) | bytes elem[0] ... elem[n-1]
 *
 * C1 is the CRC32C of the lengths written as 4-byte little-endian integers
 * (8-byte when a length exceeds 32 bits); the entry CRC continues C1 over
 * the 4 stored checksum bytes and then the element bytes. So a string
 * tensor cannot be verified by hashing its stored bytes: it must be walked.
 */
#include <inttypes.h>
#include <string.h>

#include "checked.h"
#include "crc32c.h"
#include "cursor.h"
#include "error.h"
#include "string_tensor.h"

static uint32_t crc_length(uint32_t crc, uint64_t len)
{
    uint8_t tmp[8];
    if (len <= UINT32_MAX) {
        tr_store_le32(tmp, (uint32_t)len);
        return trestle__crc32c_extend(crc, tmp, 4);
    }
    tr_store_le64(tmp, len);
    return trestle__crc32c_extend(crc, tmp, 8);
}

int trestle__strings_walk(const uint8_t *buf, uint64_t size, uint64_t n, trestle_bytes *elems,
                          uint32_t *crc, trestle_error *err)
{
    trestle__cursor cur = tr_cursor(buf, (size_t)size);
    uint64_t total = 0;
    uint32_t c1 = 0;

    /* Each length takes at least one byte: reject absurd counts up front. */
    if (n > size)
        return trestle__error_simple(err, TRESTLE_E_CORRUPT,
                                     "string tensor of %" PRIu64 " elements cannot fit in %" PRIu64
                                     " bytes", n, size);
    for (uint64_t i = 0; i < n; i++) {
        uint64_t len;
        if (!tr_get_varint64(&cur, &len))
            return trestle__error_simple(err, TRESTLE_E_CORRUPT,
                                         "String lengths longer than expected offset %" PRIu64,
                                         (uint64_t)(cur.p - buf));
        if (!tr_add_u64(total, len, &total))
            return trestle__error_simple(err, TRESTLE_E_CORRUPT, "string lengths overflow");
        if (elems)
            elems[i].len = len;
        c1 = crc_length(c1, len);
    }
    const uint8_t *stored;
    if (!tr_get_bytes(&cur, 4, &stored))
        return trestle__error_simple(err, TRESTLE_E_CORRUPT,
                                     "string tensor truncated before its length checksum");
    uint32_t want = trestle__crc_unmask(tr_load_le32(stored));
    if (want != c1)
        return trestle__error_simple(err, TRESTLE_E_CORRUPT,
                                     "The length checksum does not match: expected %08u but "
                                     "actual is %08u", want, c1);
    if (total != tr_left(&cur))
        return trestle__error_simple(err, TRESTLE_E_CORRUPT,
                                     "string tensor holds %zu element bytes, lengths say %" PRIu64,
                                     tr_left(&cur), total);
    if (elems) {
        const uint8_t *p = cur.p;
        for (uint64_t i = 0; i < n; i++) {
            elems[i].data = p;
            p += elems[i].len;
        }
    }
    uint32_t c2 = trestle__crc32c_extend(c1, stored, 4);
    *crc = trestle__crc32c_extend(c2, cur.p, tr_left(&cur));
    return TRESTLE_OK;
}

int trestle__strings_encode(const trestle_bytes *elems, uint64_t n, trestle__buf *out,
                            uint32_t *crc, trestle_error *err)
{
    uint32_t c1 = 0;
    for (uint64_t i = 0; i < n; i++) {
        if (!trestle__buf_append_varint(out, elems[i].len))
            return trestle__error_simple(err, TRESTLE_E_NOMEM, "out of memory encoding strings");
        c1 = crc_length(c1, elems[i].len);
    }
    uint8_t stored[4];
    tr_store_le32(stored, trestle__crc_mask(c1));
    if (!trestle__buf_append(out, stored, 4))
        return trestle__error_simple(err, TRESTLE_E_NOMEM, "out of memory encoding strings");
    uint32_t c = trestle__crc32c_extend(c1, stored, 4);
    for (uint64_t i = 0; i < n; i++) {
        if (!trestle__buf_append(out, elems[i].data, (size_t)elems[i].len))
            return trestle__error_simple(err, TRESTLE_E_NOMEM, "out of memory encoding strings");
        c = trestle__crc32c_extend(c, elems[i].data, (size_t)elems[i].len);
    }
    *crc = c;
    return TRESTLE_OK;
}

int trestle_strings_decode(const void *buf, uint64_t size, uint64_t n, trestle_bytes *elems,
                           trestle_error *err)
{
    uint32_t crc;
    if (!buf && size > 0)
        return trestle__error_simple(err, TRESTLE_E_INVALID_ARG, "NULL buffer");
    if (n > 0 && !elems)
        return trestle__error_simple(err, TRESTLE_E_INVALID_ARG, "NULL element array");
    return trestle__strings_walk(buf, size, n, elems, &crc, err);
}

/* ---- DT_VARIANT (format doc §4.5) ---- */

/* Per element: varint64 length L, L bytes, then the masked running CRC;
 * the CRC takes each length as an 8-byte integer, then the bytes, then the
 * 4 stored bytes. */
int trestle__variants_walk(const uint8_t *buf, uint64_t size, uint64_t n, uint32_t *crc,
                           trestle_error *err)
{
    trestle__cursor cur = tr_cursor(buf, (size_t)size);
    uint32_t c = 0;
    for (uint64_t i = 0; i < n; i++) {
        uint64_t len;
        const uint8_t *bytes, *stored;
        uint8_t le[8];
        size_t at = size - tr_left(&cur);
        if (!tr_get_varint64(&cur, &len) || len > tr_left(&cur) ||
            !tr_get_bytes(&cur, (size_t)len, &bytes) || !tr_get_bytes(&cur, 4, &stored))
            return trestle__error_simple(err, TRESTLE_E_CORRUPT,
                                         "variant element %" PRIu64 " at byte %zu overruns the "
                                         "tensor", i, at);
        tr_store_le64(le, len);
        c = trestle__crc32c_extend(c, le, 8);
        c = trestle__crc32c_extend(c, bytes, (size_t)len);
        if (trestle__crc_unmask(tr_load_le32(stored)) != c)
            return trestle__error_simple(err, TRESTLE_E_CRC_MISMATCH,
                                         "variant element %" PRIu64 " at byte %zu: Checksum does "
                                         "not match: stored %08u vs. calculated %08u", i, at,
                                         trestle__crc_unmask(tr_load_le32(stored)), c);
        c = trestle__crc32c_extend(c, stored, 4);
    }
    if (tr_left(&cur) != 0)
        return trestle__error_simple(err, TRESTLE_E_CORRUPT, "%zu trailing bytes after variant "
                                     "elements", tr_left(&cur));
    *crc = c;
    return TRESTLE_OK;
}

int trestle__variants_encode(const trestle_bytes *elems, uint64_t n, trestle__buf *out,
                             uint32_t *crc, trestle_error *err)
{
    uint32_t c = 0;
    for (uint64_t i = 0; i < n; i++) {
        uint8_t le[8], stored[4];
        tr_store_le64(le, elems[i].len);
        c = trestle__crc32c_extend(c, le, 8);
        c = trestle__crc32c_extend(c, elems[i].data, (size_t)elems[i].len);
        tr_store_le32(stored, trestle__crc_mask(c));
        if (!trestle__buf_append_varint(out, elems[i].len) ||
            !trestle__buf_append(out, elems[i].data, (size_t)elems[i].len) ||
            !trestle__buf_append(out, stored, 4))
            return trestle__error_simple(err, TRESTLE_E_NOMEM, "out of memory encoding variants");
        c = trestle__crc32c_extend(c, stored, 4);
    }
    *crc = c;
    return TRESTLE_OK;
}
