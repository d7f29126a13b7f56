/*
 * bulk.c - zeroed arrays of per-tensor state, in huge pages when large
 * (bulk.h). Each block starts with a header saying how it was made and how
 * big it is, so that realloc and free need nothing from the caller.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "bulk.h"

#define HUGE_PAGE ((size_t)2 << 20) /* PMD size with 4 KiB base pages (x86-64, arm64) */
#define HEADER TRESTLE__BULK_HEADER
#define MAP_MIN ((size_t)256 << 10) /* from here on, a mapping of its own */
#define HUGE_MIN ((size_t)2 << 20)  /* a growing array from here on in huge pages: its half-used
                                       last huge page costs at most 2 MiB, where a fault per
                                       4 KiB costs more time than the rest of its use (issue 24) */

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23      /* Linux >= 5.14; older kernels refuse it, which is fine */
#endif

typedef struct header {
    size_t bytes;  /* data bytes asked for */
    size_t span;   /* mapped bytes (header included), or 0: malloc'd */
} header;

static header *head_of(void *p)
{
    return (header *)((uint8_t *)p - HEADER);
}

/*
 * A mapping of `span` bytes, in huge pages where it pays (advice: the
 * kernel may decline; the whole mapping is advised, so that it stays one
 * VMA, which mremap() needs). With `populate` its pages are made now, in
 * one call: an array about to be filled pays one system call instead of a
 * fault per page. A populated array uses every page it has, so from one
 * huge page up it starts on a huge-page boundary and is advised whole:
 * 512 times fewer faults, charges and LRU insertions, which at 100,000
 * tensors cost more than zeroing the pages (issue 24); one that grows is
 * advised only from HUGE_MIN, where a half-used last huge page is small
 * beside it.
 */
static void *map(size_t span, bool populate)
{
    bool huge = span >= (populate ? HUGE_PAGE : HUGE_MIN);
    size_t extra = huge ? HUGE_PAGE - 4096 : 0;
    uint8_t *m = mmap(NULL, span + extra, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                      -1, 0);
    if (m == MAP_FAILED)
        return NULL;
    if (extra) {
        /* Keep the aligned part: unmap the head before it and the tail after. */
        uint8_t *p = (uint8_t *)(((uintptr_t)m + HUGE_PAGE - 1) & ~(uintptr_t)(HUGE_PAGE - 1));
        if (p > m)
            munmap(m, (size_t)(p - m));
        if (p + span < m + span + extra)
            munmap(p + span, (size_t)(m + span + extra - (p + span)));
        m = p;
    }
    if (huge)
        madvise(m, span, MADV_HUGEPAGE);
    if (populate)
        madvise(m, span, MADV_POPULATE_WRITE);
    return m;
}

/*
 * Grow a huge-page mapping to `span`, moving it (pages, not bytes) to a
 * huge-page boundary: a plain mremap() may put it anywhere, and a huge
 * page moved off a 2 MiB boundary is split into 4 KiB ones, each
 * faulted afresh for the rest of the array's life. MAP_FAILED when out of
 * address space or memory. The advice moves with the pages.
 */
static void *move_huge(header *h, size_t span)
{
    uint8_t *r = mmap(NULL, span + HUGE_PAGE, PROT_NONE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (r == MAP_FAILED)
        return MAP_FAILED;
    uint8_t *at = (uint8_t *)(((uintptr_t)r + HUGE_PAGE - 1) & ~(uintptr_t)(HUGE_PAGE - 1));
    void *m = mremap(h, h->span, span, MREMAP_MAYMOVE | MREMAP_FIXED, at);
    if (m == MAP_FAILED) {
        munmap(r, span + HUGE_PAGE);
        return MAP_FAILED;
    }
    /* The reservation's head and tail, around what now holds the array. */
    if (at > r)
        munmap(r, (size_t)(at - r));
    if (at + span < r + span + HUGE_PAGE)
        munmap(at + span, (size_t)(r + span + HUGE_PAGE - (at + span)));
    madvise(at, span, MADV_HUGEPAGE); /* the grown tail: advice only, failure is fine */
    return m;
}

static void *make(size_t bytes, bool populate)
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
        if (!(h = map(span, populate)))
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
    return make(bytes, true);
}

void *trestle__bulk_realloc(void *p, size_t n, size_t size)
{
    size_t bytes;
    if (__builtin_mul_overflow(n, size, &bytes) || bytes > SIZE_MAX - HUGE_PAGE)
        return NULL;
    if (!p)
        return make(bytes, false); /* growing: the capacity is not used yet */
    header *h = head_of(p);
    size_t want_span = (bytes + HEADER + 4095) & ~(size_t)4095;
    if (h->span && bytes + HEADER >= MAP_MIN && (h->span >= HUGE_MIN || want_span < HUGE_MIN)) {
        /* Mapped both before and after, and in huge pages either both times
         * or neither: move the pages, copy nothing. (An array that reaches
         * HUGE_MIN is copied once into a mapping that starts on a huge-page
         * boundary, below.) */
        size_t span = want_span;
        header *m = h->span >= HUGE_MIN ? move_huge(h, span)
                                        : mremap(h, h->span, span, MREMAP_MAYMOVE);
        if (m == MAP_FAILED)
            return NULL;
        m->span = span;
        m->bytes = bytes;
        return (uint8_t *)m + HEADER;
    }
    void *q = make(bytes, false);
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
