/*
 * cursor.h - one bounded reader for untrusted bytes (gguf's nbytes_remain,
 * Redis's rio): every read knows how many bytes are left, and fails instead
 * of running past the end. Also the little-endian and varint encoders.
 */
#ifndef TRESTLE_CURSOR_H
#define TRESTLE_CURSOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef struct trestle__cursor {
    const uint8_t *p;   /* next unread byte */
    const uint8_t *end; /* one past the last readable byte */
} trestle__cursor;

static inline trestle__cursor tr_cursor(const void *p, size_t n)
{
    trestle__cursor c = { (const uint8_t *)p, (const uint8_t *)p + n };
    return c;
}

static inline size_t tr_left(const trestle__cursor *c) { return (size_t)(c->end - c->p); }

/* Protobuf-style base-128 varint, at most 10 bytes; false on overrun or an
 * over-long encoding (a 10th byte above 1 cannot fit 64 bits). */
static inline bool tr_get_varint64(trestle__cursor *c, uint64_t *v)
{
    uint64_t r = 0;
    for (int shift = 0; shift < 70; shift += 7) {
        if (c->p >= c->end)
            return false;
        uint8_t b = *c->p++;
        if (shift == 63 && b > 1)
            return false;
        r |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *v = r;
            return true;
        }
    }
    return false;
}

/* varint32 as LevelDB's GetVarint32: at most 5 bytes, value must fit 32 bits. */
static inline bool tr_get_varint32(trestle__cursor *c, uint32_t *v)
{
    uint64_t r = 0;
    for (int shift = 0; shift < 35; shift += 7) {
        if (c->p >= c->end)
            return false;
        uint8_t b = *c->p++;
        r |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            if (r > UINT32_MAX)
                return false;
            *v = (uint32_t)r;
            return true;
        }
    }
    return false;
}

static inline bool tr_get_bytes(trestle__cursor *c, size_t n, const uint8_t **out)
{
    if (tr_left(c) < n)
        return false;
    *out = c->p;
    c->p += n;
    return true;
}

static inline uint32_t tr_load_le32(const void *p)
{
    const uint8_t *b = (const uint8_t *)p;
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

static inline uint64_t tr_load_le64(const void *p)
{
    return (uint64_t)tr_load_le32(p) | (uint64_t)tr_load_le32((const uint8_t *)p + 4) << 32;
}

static inline void tr_store_le32(void *p, uint32_t v)
{
    uint8_t *b = (uint8_t *)p;
    b[0] = (uint8_t)v;
    b[1] = (uint8_t)(v >> 8);
    b[2] = (uint8_t)(v >> 16);
    b[3] = (uint8_t)(v >> 24);
}

static inline void tr_store_le64(void *p, uint64_t v)
{
    tr_store_le32(p, (uint32_t)v);
    tr_store_le32((uint8_t *)p + 4, (uint32_t)(v >> 32));
}

/* Encode v as a varint into out (>= 10 bytes); returns the byte count. */
static inline size_t tr_put_varint64(uint8_t *out, uint64_t v)
{
    size_t n = 0;
    while (v >= 0x80) {
        out[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    out[n++] = (uint8_t)v;
    return n;
}

#endif /* TRESTLE_CURSOR_H */
