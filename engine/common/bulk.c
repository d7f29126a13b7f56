/*
 * bulk.c - zeroed arrays of per-tensor state, in huge pages when large
 * (bulk.h). Each block starts with a header saying how it was made and how
 * big it is, so that realloc and free need nothing from the caller.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "bulk.h"

#define HUGE_PAGE ((size_t)2 << 20) /* PMD size with 4 KiB base pages (x86-64, arm64) */
#define HEADER 64                   /* keeps the data 64-byte aligned */
#define MAP_MIN ((size_t)8 << 20)   /* below this, malloc: a huge page half used would cost
                                       more memory than its faults cost time */

typedef struct header {
    size_t bytes;  /* data bytes asked for */
    size_t span;   /* mapped bytes (header included), or 0: malloc'd */
} header;

static header *head_of(void *p)
{
    return (header *)((uint8_t *)p - HEADER);
}

/* A mapping of `span` bytes advised into huge pages (advice: the kernel
 * may decline; it backs only the 2 MiB-aligned parts). The whole mapping
 * is advised, so that it stays one VMA, which mremap() needs. */
static void *map(size_t span)
{
    void *m = mmap(NULL, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED)
        return NULL;
    madvise(m, span, MADV_HUGEPAGE);
    return m;
}

static void *make(size_t bytes)
{
    header *h;
    if (bytes > SIZE_MAX - HUGE_PAGE)
        return NULL;
    if (bytes + HEADER < MAP_MIN) {
        if (!(h = calloc(1, bytes + HEADER)))
            return NULL;
        h->span = 0;
    } else {
        size_t span = (bytes + HEADER + 4095) & ~(size_t)4095;
        if (!(h = map(span)))
            return NULL;
        h->span = span;
    }
    h->bytes = bytes;
    return (uint8_t *)h + HEADER;
}

void *trestle__bulk_calloc(size_t n, size_t size)
{
    size_t bytes;
    if (__builtin_mul_overflow(n, size, &bytes))
        return NULL;
    return make(bytes);
}

void *trestle__bulk_realloc(void *p, size_t n, size_t size)
{
    size_t bytes;
    if (__builtin_mul_overflow(n, size, &bytes) || bytes > SIZE_MAX - HUGE_PAGE)
        return NULL;
    if (!p)
        return make(bytes);
    header *h = head_of(p);
    if (h->span && bytes + HEADER >= MAP_MIN) {
        /* Mapped both before and after: move the pages, copy nothing. */
        size_t span = (bytes + HEADER + 4095) & ~(size_t)4095;
        header *m = mremap(h, h->span, span, MREMAP_MAYMOVE); /* keeps the advice */
        if (m == MAP_FAILED)
            return NULL;
        m->span = span;
        m->bytes = bytes;
        return (uint8_t *)m + HEADER;
    }
    void *q = make(bytes);
    if (!q)
        return NULL;
    memcpy(q, p, h->bytes < bytes ? h->bytes : bytes);
    trestle__bulk_free(p);
    return q;
}

void trestle__bulk_free(void *p)
{
    if (!p)
        return;
    header *h = head_of(p);
    if (h->span)
        munmap(h, h->span);
    else
        free(h);
}
