/*
 * copy_host.c - the host copier: staging bytes to host destinations with
 * memcpy, and region pieces (slices of a stored tensor, stored slices of a
 * partitioned one) with an N-d copy restricted to the bytes one chunk
 * holds. Sits under engine/restore/restore.c behind copy.h; synchronous, so
 * fence() has nothing to wait for.
 *
 * Engine-allocated destinations (the host arena) come from posix_memalign
 * and go back with free(). A large arena is 2 MiB-aligned and marked
 * MADV_HUGEPAGE: first-touch page faults on fresh destination memory are a
 * large share of a restore from the page cache, and huge pages cut their
 * number 512-fold.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "copy.h"
#include "error.h"

#define HUGE_ALIGN ((size_t)2 << 20)   /* x86-64 and arm64 (4K pages) PMD size */
#define HUGE_MIN ((size_t)2 << 20)     /* one huge page: smaller ones keep 4 KiB pages */

/* ---- range-restricted region copy ---- */

/* The layout is declared in kernels/trestle_kernels.h, so that the CUDA
 * copier can hand one built here to the scatter kernel; its arrays must
 * hold every dim a slice can have. */
_Static_assert(TRESTLE__K_MAX_RANK == TRESTLE_MAX_SLICE_RANK,
               "trestle__k_layout must hold TRESTLE_MAX_SLICE_RANK dims");

/* Slices are concrete (the planner resolved them). */
bool trestle__region_layout(const trestle__region *r, trestle__k_layout *l)
{
    const trestle__slice *src = &r->src, *dst = &r->dst, *cut = &r->cut;
    uint64_t s_acc = r->elem_size, d_acc = r->elem_size;
    int rank = cut->rank;

    l->base_s = l->base_d = 0;
    for (int d = rank - 1; d >= 0; d--) {
        if (cut->length[d] <= 0)
            return false;
        l->base_s += (uint64_t)(cut->start[d] - src->start[d]) * s_acc;
        l->base_d += (uint64_t)(cut->start[d] - dst->start[d]) * d_acc;
        l->sstr[d] = s_acc;
        l->dstr[d] = d_acc;
        l->cnt[d] = (uint64_t)cut->length[d];
        s_acc *= (uint64_t)src->length[d];
        d_acc *= (uint64_t)dst->length[d];
    }
    l->total_s = s_acc;
    /* Inner dims whose elements follow each other in both blocks merge
     * into the run: a dim does when its stride equals the run so far. */
    l->run = r->elem_size;
    l->k = rank;
    while (l->k > 0 && l->sstr[l->k - 1] == l->run && l->dstr[l->k - 1] == l->run) {
        l->run *= l->cnt[l->k - 1];
        l->k--;
    }
    l->nruns = 1;
    for (int d = 0; d < l->k; d++)
        l->nruns *= l->cnt[d];
    return true;
}

/* Source byte offset of run number `i` (row-major over the outer dims). */
static uint64_t run_src_offset(const trestle__k_layout *l, uint64_t i)
{
    uint64_t off = l->base_s;
    for (int d = l->k - 1; d >= 0; d--) {
        off += (i % l->cnt[d]) * l->sstr[d];
        i /= l->cnt[d];
    }
    return off;
}

/* The first run whose last byte lies at or after source offset x (nruns
 * when none): runs lie in increasing source order, so binary-search them
 * instead of walking every run before x. */
static uint64_t first_run_reaching(const trestle__k_layout *l, uint64_t x)
{
    uint64_t a = 0, b = l->nruns;
    while (a < b) {
        uint64_t mid = a + (b - a) / 2;
        if (run_src_offset(l, mid) + l->run > x)
            b = mid;
        else
            a = mid + 1;
    }
    return a;
}

uint64_t trestle__region_count_range(const trestle__k_layout *l, uint64_t lo, uint64_t n)
{
    uint64_t hi = lo + n;
    uint64_t f = first_run_reaching(l, lo), g = first_run_reaching(l, hi);
    if (g < l->nruns && run_src_offset(l, g) < hi)
        g++; /* the run straddling hi */
    if (n == 0 || g <= f)
        return 0;
    uint64_t bytes = (g - f) * l->run;
    uint64_t first = run_src_offset(l, f), last_end = run_src_offset(l, g - 1) + l->run;
    if (lo > first)
        bytes -= lo - first;
    if (last_end > hi)
        bytes -= last_end - hi;
    return bytes;
}

uint64_t trestle__region_copy_range(void *dst, const trestle__region *r, const void *src,
                                    uint64_t lo, uint64_t n)
{
    uint64_t idx[TRESTLE_MAX_SLICE_RANK];
    uint8_t *dp = dst;
    const uint8_t *sp = src;
    uint64_t hi = lo + n, copied = 0;
    trestle__k_layout l;

    if (n == 0 || !trestle__region_layout(r, &l))
        return 0;
    if (lo == 0 && n >= l.total_s) {
        trestle__slice_copy(dst, &r->dst, src, &r->src, &r->cut, r->dims, r->elem_size);
        return l.nruns * l.run;
    }

    uint64_t first = first_run_reaching(&l, lo);
    if (first == l.nruns)
        return 0;
    uint64_t so = l.base_s, doff = l.base_d, rest = first;
    for (int d = l.k - 1; d >= 0; d--) {
        idx[d] = rest % l.cnt[d];
        rest /= l.cnt[d];
        so += idx[d] * l.sstr[d];
        doff += idx[d] * l.dstr[d];
    }

    while (so < hi) {
        uint64_t a = so > lo ? so : lo;
        uint64_t b = so + l.run < hi ? so + l.run : hi;
        if (a < b) {
            memcpy(dp + doff + (a - so), sp + (a - lo), (size_t)(b - a));
            copied += b - a;
        }
        int d = l.k - 1;
        for (; d >= 0; d--) {
            so += l.sstr[d];
            doff += l.dstr[d];
            if (++idx[d] < l.cnt[d])
                break;
            /* This axis wrapped: rewind it and carry into the next outer one. */
            so -= l.sstr[d] * l.cnt[d];
            doff -= l.dstr[d] * l.cnt[d];
            idx[d] = 0;
        }
        if (d < 0)
            break;
    }
    return copied;
}

/* ---- the host copier ---- */

static void host_arena_release(trestle_arena *a)
{
    free(a->base);
}

static int host_arena_alloc(trestle__copier *c, uint64_t bytes, trestle_arena **out,
                            trestle_error *err)
{
    (void)c;
    void *p = NULL;
    trestle_arena *a = calloc(1, sizeof *a);
    if (!a || bytes > SIZE_MAX - HUGE_ALIGN) {
        free(a);
        return trestle__error_simple(err, TRESTLE_E_NOMEM, "cannot allocate %" PRIu64 " bytes",
                                     bytes);
    }
    size_t n = bytes ? (size_t)bytes : 1;
    size_t align = n >= HUGE_MIN ? HUGE_ALIGN : TRESTLE__HOST_ARENA_ALIGN;
    if (posix_memalign(&p, align, n) != 0) {
        free(a);
        return trestle__error_set(err, TRESTLE_E_NOMEM, ENOMEM, NULL, NULL, -1, (int64_t)bytes,
                                  "cannot allocate %" PRIu64 " bytes of host memory", bytes);
    }
    if (align == HUGE_ALIGN)
        madvise(p, n & ~(HUGE_ALIGN - 1), MADV_HUGEPAGE); /* advice only: failure is fine */
    a->base = p;
    a->bytes = bytes;
    a->device = -1;
    a->release = host_arena_release;
    *out = a;
    return TRESTLE_OK;
}

static uint64_t host_copy(trestle__copier *c, unsigned worker, void *dst, const void *src,
                          uint64_t n)
{
    (void)c;
    (void)worker;
    memcpy(dst, src, (size_t)n);
    return n;
}

static uint64_t host_copy_region(trestle__copier *c, unsigned worker, void *dst,
                                 const trestle__region *r, const void *src, uint64_t lo,
                                 uint64_t n)
{
    (void)c;
    (void)worker;
    return trestle__region_copy_range(dst, r, src, lo, n);
}

static int host_fence(trestle__copier *c, unsigned worker, trestle_error *err)
{
    (void)c;
    (void)worker;
    (void)err;
    return TRESTLE_OK;
}

static void host_close(trestle__copier *c)
{
    (void)c;
}

static const trestle__copier_ops host_ops = {
    .name = "host",
    .arena_alloc = host_arena_alloc,
    .copy = host_copy,
    .copy_region = host_copy_region,
    .fence = host_fence,
    .close = host_close,
};

void trestle__copier_open_host(trestle__copier *c)
{
    c->ops = &host_ops;
    c->state = NULL;
    c->host_dests = true;
}
