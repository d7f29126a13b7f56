/*
 * copy_cuda.c - the CUDA copier: verified staging bytes to device memory.
 *
 * Sits under engine/restore/restore.c behind copy.h, like copy_host.c. What makes
 * it fast, and why each piece is there:
 *
 *  - Pinned staging. The staging pool and the conversion buffers are
 *    page-locked (engine/memory/staging.c, through trestle__cuda_pin() in cuda_host.c:
 *    cudaHostRegister of ordinary pages, so they stay usable for O_DIRECT
 *    and io_uring registered buffers; cudaHostAlloc where registering is
 *    refused), once per plan rather than per restore. Copies out of them
 *    are true asynchronous DMA at the PCIe line rate. Kernels read them
 *    through the device address cudaHostGetDevicePointer gives, which is
 *    the host address only where the device says so.
 *  - One stream per worker, created lazily in the worker's own thread, so
 *    workers never share a queue or a lock. A worker queues a staging
 *    buffer's copies, marks their end with an event (cudaEventBlockingSync)
 *    and goes on to CRC the next buffer while the DMA flies; it retires the
 *    marks in order (cudaEventQuery, or cudaEventSynchronize when it must
 *    wait: the thread sleeps instead of spinning a core). No stream or
 *    device synchronisation, ever. Each mark has a start event too, so the
 *    DMA is timed on the GPU's clock (engine/restore/copy_cuda_marks.c).
 *  - Streams, events and device windows are made once per plan: a restore
 *    leaves them in the plan for the next one (engine/memory/staging.h),
 *    and windows come from the stream-ordered allocator (cudaMallocAsync),
 *    so neither a restore nor trestle_plan_free() synchronises the device
 *    as cudaMalloc and cudaFree would, stalling the caller's unrelated
 *    kernels.
 *  - One device allocation (the arena) for all DEST_ALLOCATE tensors of a
 *    restore: no cudaMalloc per tensor.
 *  - Small copies (tensors of a few KiB, thousands to a staging buffer)
 *    are batched into one cudaMemcpyBatchAsync per buffer instead of one
 *    call each.
 *  - A slice that is one contiguous run is a plain DMA copy. Other slices
 *    DMA the part into a per-worker device window once (whole, at the
 *    line rate) and the scatter kernel places the runs device-to-device at
 *    memory speed, instead of reading pinned memory over PCIe in pieces of
 *    an element or two. Widening conversions (bfloat16 or float16 to
 *    float32) DMA the stored bytes into the window and convert there
 *    (kernels/cast.cu): half the bytes cross the bus, and no CPU converts.
 *    Without device memory for a window, slices fall back to the kernel
 *    reading staging through its mapped device address, and conversions
 *    to the CPU.
 *  - Ordering with the caller: every worker stream first waits for the
 *    work queued before the restore started on the caller's stream, or on
 *    the legacy default stream when none is given (the worker streams are
 *    non-blocking: without that wait they would not wait for, say, a
 *    cudaMemsetAsync(dst, 0, n, 0) of the destinations). When
 *    trestle_restore() returns, every copy has completed, also when it
 *    failed or was cancelled: nothing the restore queued may still write a
 *    destination the caller frees, or read staging a retry refills.
 *
 * Contexts: the calling thread's current CUDA context (not just its device)
 * is saved and put back around every CUDA call made from it, through the
 * driver's cuCtxGetCurrent/cuCtxSetCurrent reached with
 * cudaGetDriverEntryPointByVersion (no -lcuda): cudaSetDevice alone would
 * leave a thread that had no context with a fresh primary context, and
 * replace a runtime's own driver-API context. Worker threads are the
 * engine's own and keep the restore's device current, re-asserted after a
 * ready callback ran on them.
 *
 * Errors of asynchronous calls are sticky per worker and reported by the
 * next retire() or fence(), which still wait for what was queued before
 * they say so. Errors are taken from each call's own result:
 * cudaGetLastError() is never called, so the caller's pending errors are
 * neither reported as ours nor cleared.
 *
 * This file queues the copies; copy_cuda_worker.c holds each worker's
 * stream, events, batch and window (copy_cuda_worker.h), and
 * copy_cuda_marks.c its marks, their retirement and the copier's
 * lifetime. In a build without CUDA (TRESTLE_HAVE_CUDA is 0 in
 * trestle_version.h) it compiles to stubs that say so.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "copy.h"
#include "cuda_host.h"
#include "error.h"

#if TRESTLE_HAVE_CUDA

#include "copy_cuda.h"
#include "trestle_kernels.h"

#define BATCH_MAX_BYTES (64u << 10) /* copies this small are batched */

/* ---- the device arena (made by engine/memory/cuda_host.c) ---- */

int trestle__cuda_copier_arena(trestle__copier *c, uint64_t bytes, trestle_arena **out,
                               trestle_error *err)
{
    return trestle__cuda_arena_alloc(((trestle__cuda_state *)c->state)->device, bytes, out,
                                     err);
}

/* ---- staging ---- */

int trestle__cuda_staging_add(trestle__copier *c, void *base, size_t bytes, trestle_error *err)
{
    trestle__cuda_state *s = c->state;
    void *dev = NULL;
    cudaError_t e;
    if (s->nregions == TRESTLE__CUDA_REGIONS)
        return trestle__error_simple(err, TRESTLE_E_LIMIT, "CUDA device %d: more than %d "
                                     "staging regions", s->device, TRESTLE__CUDA_REGIONS);
    TRESTLE__WITH_DEVICE(&s->api, s->device, e, e = cudaHostGetDevicePointer(&dev, base, 0));
    if (e != cudaSuccess)
        return trestle__cuda_fail(err, e, s->device,
                                  "mapping staging memory (cudaHostGetDevicePointer)");
    s->regions[s->nregions++] = (trestle__cuda_pinned){ base, bytes, dev };
    return TRESTLE_OK;
}

/* The device address of pinned host bytes at p, for a kernel to read. */
static const void *device_address(const trestle__cuda_state *s, const void *p)
{
    const uint8_t *b = p;
    for (unsigned i = 0; i < s->nregions; i++)
        if (b >= s->regions[i].base && b < s->regions[i].base + s->regions[i].bytes)
            return s->regions[i].dev + (b - s->regions[i].base);
    return p; /* not staging: the kernel's launch check will say */
}

/* ---- copies ---- */

/* One host-to-device DMA on cw's stream, after the batched ones. */
static void dma(trestle__cuda_worker *cw, void *dst, const void *src, uint64_t n,
                const char *what)
{
    trestle__cuda_flush(cw);
    trestle__cuda_begin(cw);
    trestle__cuda_note(cw, cudaMemcpyAsync(dst, src, (size_t)n, cudaMemcpyHostToDevice,
                                           cw->stream), what);
}

uint64_t trestle__cuda_copy(trestle__copier *c, unsigned worker, void *dst, const void *src,
                            uint64_t n)
{
    trestle__cuda_worker *cw = trestle__cuda_worker_get(c->state, worker);
    if (cw->failed != cudaSuccess || n == 0)
        return n;
    if (n <= BATCH_MAX_BYTES && cw->bdst) {
        cw->bdst[cw->bn] = dst;
        cw->bsrc[cw->bn] = src;
        cw->bsize[cw->bn] = (size_t)n;
        if (++cw->bn == TRESTLE__CUDA_BATCH_MAX)
            trestle__cuda_flush(cw);
        return n;
    }
    dma(cw, dst, src, n, "cudaMemcpyAsync (host to device)");
    return n;
}

/* ---- the device window ---- */

/* A window of at least `bytes` for cw, kept with the plan: from the
 * stream-ordered allocator, which neither waits for the device nor makes
 * the caller's kernels wait; where the device has no memory pools,
 * cudaMalloc, once per plan. False when there is no memory for one. */
static bool window_get(trestle__cuda_worker *cw, uint64_t bytes)
{
    if (cw->win && cw->win_bytes >= bytes)
        return true;
    trestle__cuda_window_free(cw);
    void *p = NULL;
    cudaError_t e = cudaMallocAsync(&p, (size_t)bytes, cw->stream);
    cw->win_async = e == cudaSuccess;
    if (e == cudaErrorNotSupported)
        e = cudaMalloc(&p, (size_t)bytes);
    if (e != cudaSuccess)
        return false;
    cw->win = p;
    cw->win_bytes = bytes;
    return true;
}

/* The device address of host bytes [src, src + n) in the worker's device
 * window, DMA'd there unless it holds them already; NULL without a window
 * (none could be allocated, or n is larger than it). */
static const uint8_t *window(const trestle__copier *c, trestle__cuda_worker *cw, const void *src,
                             uint64_t n)
{
    const uint8_t *p = src;
    if (cw->win_src && p >= cw->win_src && p + n <= cw->win_src + cw->win_n)
        return cw->win + (p - cw->win_src);
    if (cw->win_failed || n > c->window_bytes)
        return NULL;
    if (!window_get(cw, c->window_bytes)) {
        /* Device memory is short: slices and conversions still work
         * without the window, only slower. */
        cw->win_failed = true;
        return NULL;
    }
    dma(cw, cw->win, src, n, "cudaMemcpyAsync (host to device window)");
    cw->win_src = p;
    cw->win_n = n;
    return cw->win;
}

uint64_t trestle__cuda_copy_region(trestle__copier *c, unsigned worker, void *dst,
                                   const trestle__region *r, const void *src, uint64_t lo,
                                   uint64_t n)
{
    trestle__cuda_state *s = c->state;
    trestle__cuda_worker *cw = trestle__cuda_worker_get(s, worker);
    trestle__k_layout l;
    if (n == 0 || !trestle__region_layout(r, &l))
        return 0;
    if (l.k == 0) {
        /* One run, contiguous on both sides (a partition of whole rows, a
         * slice of leading rows): a DMA copy at the line rate rather than a
         * kernel reading the pinned bytes over PCIe. */
        uint64_t a = lo > l.base_s ? lo : l.base_s;
        uint64_t b = lo + n < l.base_s + l.run ? lo + n : l.base_s + l.run;
        if (a >= b)
            return 0;
        if (cw->failed == cudaSuccess)
            dma(cw, (uint8_t *)dst + l.base_d + (a - l.base_s), (const uint8_t *)src + (a - lo),
                b - a, "cudaMemcpyAsync (host to device)");
        return b - a;
    }
    uint64_t bytes = trestle__region_count_range(&l, lo, n);
    if (bytes > 0 && cw->failed == cudaSuccess) {
        const void *from = window(c, cw, src, n);
        trestle__cuda_flush(cw);
        trestle__cuda_begin(cw);
        int e = trestle__k_scatter(dst, from ? from : device_address(s, src), &l, lo, n,
                                   cw->stream);
        trestle__cuda_note(cw, (cudaError_t)e, "the slice scatter kernel");
    }
    return bytes;
}

uint64_t trestle__cuda_copy_widen(trestle__copier *c, unsigned worker, void *dst, const void *src,
                                  int src_dtype, int dst_dtype, uint64_t count)
{
    trestle__cuda_worker *cw = trestle__cuda_worker_get(c->state, worker);
    uint64_t in = count * trestle_dtype_size(src_dtype);
    uint64_t out = count * trestle_dtype_size(dst_dtype);
    if (count == 0 || out <= in || !trestle__convert_supported(dst_dtype, src_dtype) ||
        cw->failed != cudaSuccess)
        return 0;
    const void *from = window(c, cw, src, in);
    if (!from)
        return 0;
    int e = trestle__k_convert(dst, dst_dtype, from, src_dtype, count, cw->stream);
    trestle__cuda_note(cw, (cudaError_t)e, "the dtype conversion kernel");
    return out;
}

#else /* !TRESTLE_HAVE_CUDA */

void trestle__copier_cuda_share(trestle__copier *c, int *current) { (void)c, (void)current; }

int trestle__copier_open_cuda(trestle__copier *c, int device, unsigned workers, void *stream,
                              struct trestle__staging **keep_in, trestle_error *err)
{
    (void)c;
    (void)workers;
    (void)stream;
    (void)keep_in;
    return trestle__error_simple(err, TRESTLE_E_NO_DEVICE,
                                 "restoring into CUDA device memory (device %d) needs a CUDA "
                                 "build of trestle; this one copies to host memory only",
                                 device);
}

#endif /* TRESTLE_HAVE_CUDA */
