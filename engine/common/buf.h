/*
 * buf.h - a growable byte buffer for the writers (index blocks, string
 * tensors). Not used on the restore path, which never grows memory.
 */
#ifndef TRESTLE_BUF_H
#define TRESTLE_BUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef struct trestle__buf {
    uint8_t *data; /* owned; NULL while empty */
    size_t len;    /* bytes used */
    size_t cap;    /* bytes allocated */
} trestle__buf;

/* Each returns false (buffer unchanged) when memory runs out. */
bool trestle__buf_reserve(trestle__buf *b, size_t extra);
bool trestle__buf_append_slow(trestle__buf *b, const void *p, size_t n);

/* Inline: a safetensors header of 100,000 tensors is ~1,000,000 appends of
 * a few bytes each, where a call and a reserve each cost more than the
 * copy (issue 24). */
static inline bool trestle__buf_append(trestle__buf *b, const void *p, size_t n)
{
    if (n > b->cap - b->len)
        return trestle__buf_append_slow(b, p, n);
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    return true;
}

bool trestle__buf_append_varint(trestle__buf *b, uint64_t v);
bool trestle__buf_append_le32(trestle__buf *b, uint32_t v);
void trestle__buf_free(trestle__buf *b);

#endif /* TRESTLE_BUF_H */
