/*
 * slab.c - bump allocation in blocks (slab.h). Blocks start small, so an
 * index of ten tensors takes a few KiB, and double up to SLAB_MAX_BLOCK,
 * so one of a million takes a few hundred blocks; a request larger than
 * a block gets a block of its own. Blocks are bulk memory (bulk.h), sized
 * so that block and headers fill whole pages: a block of 2 MiB is one huge
 * page, one fault where 4 KiB pages took 512, which at 100,000 tensors'
 * keys and shapes (~4 MB) was a visible share of trestle_open() (issue 24).
 */
#include <stdlib.h>
#include <string.h>

#include "bulk.h"
#include "slab.h"

/* Sizes of a whole block, the headers (its own and bulk's) included. */
#define SLAB_FIRST_BLOCK ((size_t)4 << 10)
#define SLAB_MAX_BLOCK ((size_t)2 << 20)
#define BLOCK_OVERHEAD (sizeof(trestle__slab_block) + TRESTLE__BULK_HEADER)

struct trestle__slab_block {
    trestle__slab_block *prev; /* older block, or NULL */
    size_t pad;                /* keeps the data 16-byte aligned */
};

void *trestle__slab_alloc(trestle__slab *s, size_t bytes, size_t align)
{
    uintptr_t at = ((uintptr_t)s->next + (align - 1)) & ~(uintptr_t)(align - 1);
    if (s->next && at <= (uintptr_t)s->end && bytes <= (size_t)((uintptr_t)s->end - at)) {
        s->next = (uint8_t *)at + bytes;
        return (void *)at;
    }
    size_t want = (s->grow ? s->grow : SLAB_FIRST_BLOCK) - BLOCK_OVERHEAD;
    if (bytes + align > want) {
        if (bytes > SIZE_MAX / 2)
            return NULL;
        want = bytes + align;
    }
    trestle__slab_block *b = trestle__bulk_calloc(1, sizeof *b + want);
    if (!b)
        return NULL;
    b->prev = s->head;
    s->head = b;
    uint8_t *data = (uint8_t *)(b + 1);
    s->end = data + want;
    if (s->grow < SLAB_MAX_BLOCK)
        s->grow = (s->grow ? s->grow : SLAB_FIRST_BLOCK) * 2;
    at = ((uintptr_t)data + (align - 1)) & ~(uintptr_t)(align - 1);
    s->next = (uint8_t *)at + bytes;
    return (void *)at;
}

char *trestle__slab_strndup(trestle__slab *s, const void *p, size_t n)
{
    if (n == SIZE_MAX)
        return NULL;
    char *out = trestle__slab_alloc(s, n + 1, 1);
    if (!out)
        return NULL;
    if (n)
        memcpy(out, p, n);
    out[n] = '\0';
    return out;
}

void trestle__slab_adopt(trestle__slab *dst, trestle__slab *src)
{
    if (!src->head)
        return;
    if (!dst->head) {
        *dst = *src;
    } else {
        /* Behind dst's newest block, which keeps serving allocations. */
        trestle__slab_block *oldest = src->head;
        while (oldest->prev)
            oldest = oldest->prev;
        oldest->prev = dst->head->prev;
        dst->head->prev = src->head;
    }
    memset(src, 0, sizeof *src);
}

void trestle__slab_free(trestle__slab *s)
{
    if (!s)
        return;
    for (trestle__slab_block *b = s->head; b;) {
        trestle__slab_block *prev = b->prev;
        trestle__bulk_free(b);
        b = prev;
    }
    memset(s, 0, sizeof *s);
}
