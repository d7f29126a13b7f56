/*
 * ckpt_wire.c - a hand decoder for the BundleEntryProto of a plain tensor,
 * the one message an index holds per tensor (ckpt_entry.h).
 *
 * protobuf-c's unpack allocates the message, its shape and every dimension
 * (five or more mallocs and frees an entry), which at 100,000 tensors costs
 * more than reading and checking the index. This decoder reads the common
 * encoding straight into a struct on the stack, and says "not mine" for
 * anything else: a field out of order or repeated, an unknown field, a
 * multi-byte tag, a named dimension, a negative or over-long number,
 * stored slices. ckpt_entry.c then hands those bytes to protobuf-c as
 * before, so every input it accepts decodes to exactly what protobuf-c
 * would give, and every input it refuses gets protobuf-c's answer: the
 * fast path changes the speed, never the result (tests/test_ckpt_wire.c
 * compares the two on every entry of every fixture and on mutations).
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ckpt_entry.h"

/* Wire tags (field number << 3 | wire type) of the fields decoded here. */
#define TAG_DTYPE 0x08      /* 1, varint */
#define TAG_SHAPE 0x12      /* 2, length-delimited */
#define TAG_SHARD 0x18      /* 3, varint */
#define TAG_OFFSET 0x20     /* 4, varint */
#define TAG_SIZE 0x28       /* 5, varint */
#define TAG_CRC 0x35        /* 6, fixed32 */
#define TAG_SHAPE_DIM 0x12  /* TensorShapeProto.dim = 2 */
#define TAG_SHAPE_UNK 0x18  /* TensorShapeProto.unknown_rank = 3 */
#define TAG_DIM_SIZE 0x08   /* TensorShapeProto.Dim.size = 1 */

/* A varint of at most `max` bytes (5: below 2^35, 9: below 2^63), so that
 * the value is the same whatever width protobuf-c reads it at once it is
 * range-checked by the caller. */
static bool varint(const uint8_t **pp, const uint8_t *end, unsigned max, uint64_t *v)
{
    const uint8_t *p = *pp;
    uint64_t r = 0;
    for (unsigned i = 0; i < max && p < end; i++) {
        uint8_t b = *p++;
        r |= (uint64_t)(b & 0x7f) << (7 * i);
        if (!(b & 0x80)) {
            *pp = p;
            *v = r;
            return true;
        }
    }
    return false;
}

/* A non-negative int32 (protobuf-c keeps the low 32 bits of up to 5 bytes,
 * which is the value itself below 2^31). */
static bool int32_field(const uint8_t **pp, const uint8_t *end, int32_t *out)
{
    uint64_t v;
    if (!varint(pp, end, 5, &v) || v > INT32_MAX)
        return false;
    *out = (int32_t)v;
    return true;
}

/* A non-negative int64. */
static bool int64_field(const uint8_t **pp, const uint8_t *end, int64_t *out)
{
    uint64_t v;
    if (!varint(pp, end, 9, &v))
        return false;
    *out = (int64_t)v;
    return true;
}

/* A length prefix and the bytes it covers: [*body, *body_end). */
static bool sub(const uint8_t **pp, const uint8_t *end, const uint8_t **body,
                const uint8_t **body_end)
{
    uint64_t n;
    if (!varint(pp, end, 5, &n) || n > (uint64_t)(end - *pp))
        return false;
    *body = *pp;
    *body_end = *pp + n;
    *pp = *body_end;
    return true;
}

static bool dim(const uint8_t *p, const uint8_t *end, int64_t *size)
{
    bool seen = false;
    *size = 0;
    while (p < end) {
        if (*p++ != TAG_DIM_SIZE || seen || !int64_field(&p, end, size))
            return false; /* a name, an unknown field, a repeat */
        seen = true;
    }
    return true;
}

static bool shape(const uint8_t *p, const uint8_t *end, trestle__entry_wire *w)
{
    bool seen_unknown = false;
    while (p < end) {
        const uint8_t *body, *body_end;
        uint8_t tag = *p++;
        if (tag == TAG_SHAPE_DIM) {
            if (w->rank == TRESTLE__WIRE_MAX_DIMS || !sub(&p, end, &body, &body_end) ||
                !dim(body, body_end, &w->dims[w->rank]))
                return false;
            w->rank++;
        } else if (tag == TAG_SHAPE_UNK && !seen_unknown && p < end && *p <= 1) {
            w->unknown_rank = *p++ == 1;
            seen_unknown = true;
        } else {
            return false;
        }
    }
    return true;
}

bool trestle__entry_wire_decode(const uint8_t *p, size_t len, trestle__entry_wire *w)
{
    const uint8_t *end = p + len;
    unsigned last = 0;

    *w = (trestle__entry_wire){ 0 };
    while (p < end) {
        const uint8_t *body, *body_end;
        uint8_t tag = *p++;
        unsigned field = tag >> 3;
        if (field <= last) /* out of order, repeated, or a multi-byte tag's first byte */
            return false;
        last = field;
        switch (tag) {
        case TAG_DTYPE:
            if (!int32_field(&p, end, &w->dtype))
                return false;
            break;
        case TAG_SHAPE:
            if (!sub(&p, end, &body, &body_end) || !shape(body, body_end, w))
                return false;
            break;
        case TAG_SHARD:
            if (!int32_field(&p, end, &w->shard_id))
                return false;
            break;
        case TAG_OFFSET:
            if (!int64_field(&p, end, &w->offset))
                return false;
            break;
        case TAG_SIZE:
            if (!int64_field(&p, end, &w->size))
                return false;
            break;
        case TAG_CRC:
            if (end - p < 4)
                return false;
            w->crc32c = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                        (uint32_t)p[3] << 24;
            p += 4;
            break;
        default: /* stored slices (7), unknown fields, other wire types */
            return false;
        }
    }
    return true;
}
