/*
 * buf.c - the growable byte buffer used by the index and bundle writers.
 */
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "cursor.h"

bool trestle__buf_reserve(trestle__buf *b, size_t extra)
{
    if (extra <= b->cap - b->len)
        return true;
    if (extra > SIZE_MAX / 2 - b->len)
        return false;
    size_t cap = b->cap ? b->cap : 256;
    while (cap - b->len < extra)
        cap *= 2;
    uint8_t *p = realloc(b->data, cap);
    if (!p)
        return false;
    b->data = p;
    b->cap = cap;
    return true;
}

bool trestle__buf_append_slow(trestle__buf *b, const void *p, size_t n)
{
    if (n == 0)
        return true;
    if (!trestle__buf_reserve(b, n))
        return false;
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return true;
}

bool trestle__buf_append_varint(trestle__buf *b, uint64_t v)
{
    uint8_t tmp[10];
    return trestle__buf_append(b, tmp, tr_put_varint64(tmp, v));
}

bool trestle__buf_append_le32(trestle__buf *b, uint32_t v)
{
    uint8_t tmp[4];
    tr_store_le32(tmp, v);
    return trestle__buf_append(b, tmp, 4);
}

void trestle__buf_free(trestle__buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}
