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
 *    buffer's copies, marks their end with an event (cudaEventBlockingSync,
 *    no timing) and goes on to CRC the next buffer while the DMA flies; it
 *    retires the marks in order (cudaEventQuery, or cudaEventSynchronize
 *    when it must wait: the thread sleeps instead of spinning a core). No
 *    stream or device synchronisation, ever.
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
 *    trestle_restore() returns, every copy has completed.
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
 * next retire() or fence(). Errors are taken from each call's own result:
 * cudaGetLastError() is never called, so the caller's pending errors are
 * neither reported as ours nor cleared.
 *
 * In a build without CUDA (TRESTLE_HAVE_CUDA is 0 in trestle_version.h) this
 * file compiles to stubs that say so.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "copy.h"
#include "cuda_host.h"
#include "error.h"

#if TRESTLE_HAVE_CUDA

#include <cuda_runtime_api.h>

#include "cuda_ctx.h"

#include "trestle_kernels.h"

#define MARKS 8               /* unretired staging buffers per worker */
#define BATCH_MAX_BYTES (64u << 10) /* copies this small are batched */
#define BATCH_MAX 1024        /* copies per cudaMemcpyBatchAsync */
#define MAX_REGIONS 4         /* pinned regions copies read from */

/* ---- state ---- */

/* Per worker: touched only by that worker's thread (and by close()). */
typedef struct cuda_worker {
    cudaStream_t stream;
    cudaEvent_t ev[MARKS];   /* marks, a ring: ev[head] is the oldest of `len` */
    unsigned nev;            /* events made so far */
    cudaEvent_t fence_ev;    /* what fence() waits on, made on first use */
    bool have_fence_ev;
    unsigned head, len;
    bool ready;              /* device set and stream made in this thread */
    cudaError_t failed;      /* first failure, or cudaSuccess */
    const char *what;        /* the call that failed */
    double wait_seconds;     /* slept in retire() and fence() */
    uint8_t *win;            /* device window (window_bytes), made on first use */
    bool win_failed;         /* cudaMalloc refused it: copy without one */
    const uint8_t *win_src;  /* the host bytes it holds, in stream order, or NULL */
    uint64_t win_n;
    void **bdst;             /* small copies not yet queued: BATCH_MAX slots each */
    const void **bsrc;
    size_t *bsize;
    size_t bn;
    char pad[40];            /* workers do not share cache lines */
} cuda_worker;

typedef struct pinned_region {
    const uint8_t *base;
    size_t bytes;
    const uint8_t *dev;      /* its device address (cudaHostGetDevicePointer) */
} pinned_region;

typedef struct cuda_state {
    trestle__ctx_api api;
    int device;
    unsigned nworkers;
    cuda_worker *w;
    cudaEvent_t start;       /* recorded on the caller's (or the legacy) stream at open */
    bool have_start;
    pinned_region regions[MAX_REGIONS];
    unsigned nregions;
    int *current;            /* per worker, its thread's current device (copy_multi.c), or NULL */
} cuda_state;

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static void note(cuda_worker *cw, cudaError_t e, const char *what)
{
    if (e != cudaSuccess && cw->failed == cudaSuccess) {
        cw->failed = e;
        cw->what = what;
    }
}

/* Make worker w's stream in its own thread on first use. */
static cuda_worker *worker_get(cuda_state *s, unsigned w)
{
    unsigned i = w < s->nworkers ? w : s->nworkers - 1;
    cuda_worker *cw = &s->w[i];
    if (cw->ready && s->current && s->current[i] != s->device && cw->failed == cudaSuccess) {
        /* Another device's copier ran here last; kernels need their own. */
        note(cw, cudaSetDevice(s->device), "switching the copy device (cudaSetDevice)");
        s->current[i] = s->device;
    }
    if (cw->ready || cw->failed != cudaSuccess)
        return cw;
    if (s->current)
        s->current[i] = s->device;
    cudaError_t e = cudaSetDevice(s->device);
    if (e == cudaSuccess)
        e = cudaStreamCreateWithFlags(&cw->stream, cudaStreamNonBlocking);
    if (e == cudaSuccess && s->have_start)
        e = cudaStreamWaitEvent(cw->stream, s->start, 0);
    if (e != cudaSuccess) {
        note(cw, e, "creating a copy stream");
        return cw;
    }
    cw->ready = true;
    return cw;
}

/* ---- the device arena (made by engine/memory/cuda_host.c) ---- */

static int cuda_arena_alloc(trestle__copier *c, uint64_t bytes, trestle_arena **out,
                            trestle_error *err)
{
    return trestle__cuda_arena_alloc(((cuda_state *)c->state)->device, bytes, out, err);
}

/* ---- staging ---- */

static int cuda_staging_add(trestle__copier *c, void *base, size_t bytes, trestle_error *err)
{
    cuda_state *s = c->state;
    void *dev = NULL;
    cudaError_t e;
    if (s->nregions == MAX_REGIONS)
        return trestle__error_simple(err, TRESTLE_E_LIMIT, "CUDA device %d: more than %d "
                                     "staging regions", s->device, MAX_REGIONS);
    TRESTLE__WITH_DEVICE(&s->api, s->device, e, e = cudaHostGetDevicePointer(&dev, base, 0));
    if (e != cudaSuccess)
        return trestle__cuda_fail(err, e, s->device,
                                  "mapping staging memory (cudaHostGetDevicePointer)");
    s->regions[s->nregions++] = (pinned_region){ base, bytes, dev };
    return TRESTLE_OK;
}

/* The device address of pinned host bytes at p, for a kernel to read. */
static const void *device_address(const cuda_state *s, const void *p)
{
    const uint8_t *b = p;
    for (unsigned i = 0; i < s->nregions; i++)
        if (b >= s->regions[i].base && b < s->regions[i].base + s->regions[i].bytes)
            return s->regions[i].dev + (b - s->regions[i].base);
    return p; /* not staging: the kernel's launch check will say */
}

/* ---- copies ---- */

/* Queue the batched small copies, in one call. Everything else the
 * worker queues comes after them. */
static void flush(cuda_worker *cw)
{
    if (cw->bn == 0 || cw->failed != cudaSuccess) {
        cw->bn = 0;
        return;
    }
    if (cw->bn == 1) {
        note(cw, cudaMemcpyAsync(cw->bdst[0], cw->bsrc[0], cw->bsize[0], cudaMemcpyHostToDevice,
                                 cw->stream), "cudaMemcpyAsync (host to device)");
    } else {
        struct cudaMemcpyAttributes attr;
        size_t first = 0;
        memset(&attr, 0, sizeof attr);
        attr.srcAccessOrder = cudaMemcpySrcAccessOrderStream; /* staging, in stream order */
        note(cw, cudaMemcpyBatchAsync(cw->bdst, cw->bsrc, cw->bsize, cw->bn, &attr, &first, 1,
                                      cw->stream), "cudaMemcpyBatchAsync (host to device)");
    }
    cw->bn = 0;
}

static uint64_t cuda_copy(trestle__copier *c, unsigned worker, void *dst, const void *src,
                          uint64_t n)
{
    cuda_worker *cw = worker_get(c->state, worker);
    if (cw->failed != cudaSuccess || n == 0)
        return n;
    if (n <= BATCH_MAX_BYTES && cw->bdst) {
        cw->bdst[cw->bn] = dst;
        cw->bsrc[cw->bn] = src;
        cw->bsize[cw->bn] = (size_t)n;
        if (++cw->bn == BATCH_MAX)
            flush(cw);
        return n;
    }
    flush(cw);
    note(cw, cudaMemcpyAsync(dst, src, (size_t)n, cudaMemcpyHostToDevice, cw->stream),
         "cudaMemcpyAsync (host to device)");
    return n;
}

/* The device address of host bytes [src, src + n) in the worker's device
 * window, DMA'd there unless it holds them already; NULL without a window
 * (none could be allocated, or n is larger than it). */
static const uint8_t *window(const trestle__copier *c, cuda_worker *cw, const void *src,
                             uint64_t n)
{
    const uint8_t *p = src;
    if (cw->win_src && p >= cw->win_src && p + n <= cw->win_src + cw->win_n)
        return cw->win + (p - cw->win_src);
    if (cw->win_failed || n > c->window_bytes)
        return NULL;
    if (!cw->win && cudaMalloc((void **)&cw->win, (size_t)c->window_bytes) != cudaSuccess) {
        /* Device memory is short: slices and conversions still work
         * without the window, only slower. */
        cw->win = NULL;
        cw->win_failed = true;
        return NULL;
    }
    flush(cw);
    note(cw, cudaMemcpyAsync(cw->win, src, (size_t)n, cudaMemcpyHostToDevice, cw->stream),
         "cudaMemcpyAsync (host to device window)");
    cw->win_src = p;
    cw->win_n = n;
    return cw->win;
}

static uint64_t cuda_copy_region(trestle__copier *c, unsigned worker, void *dst,
                                 const trestle__region *r, const void *src, uint64_t lo,
                                 uint64_t n)
{
    cuda_state *s = c->state;
    cuda_worker *cw = worker_get(s, worker);
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
            note(cw, cudaMemcpyAsync((uint8_t *)dst + l.base_d + (a - l.base_s),
                                     (const uint8_t *)src + (a - lo), (size_t)(b - a),
                                     cudaMemcpyHostToDevice, cw->stream),
                 "cudaMemcpyAsync (host to device)");
        return b - a;
    }
    uint64_t bytes = trestle__region_count_range(&l, lo, n);
    if (bytes > 0 && cw->failed == cudaSuccess) {
        const void *from = window(c, cw, src, n);
        int e = trestle__k_scatter(dst, from ? from : device_address(s, src), &l, lo, n,
                                   cw->stream);
        note(cw, (cudaError_t)e, "the slice scatter kernel");
    }
    return bytes;
}

static uint64_t cuda_copy_widen(trestle__copier *c, unsigned worker, void *dst, const void *src,
                                int src_dtype, int dst_dtype, uint64_t count)
{
    cuda_state *s = c->state;
    cuda_worker *cw = worker_get(s, worker);
    uint64_t in = count * trestle_dtype_size(src_dtype);
    uint64_t out = count * trestle_dtype_size(dst_dtype);
    if (count == 0 || out <= in || !trestle__convert_supported(dst_dtype, src_dtype) ||
        cw->failed != cudaSuccess)
        return 0;
    const void *from = window(c, cw, src, in);
    if (!from)
        return 0;
    int e = trestle__k_convert(dst, dst_dtype, from, src_dtype, count, cw->stream);
    note(cw, (cudaError_t)e, "the dtype conversion kernel");
    return out;
}

static int worker_error(cuda_state *s, cuda_worker *cw, trestle_error *err)
{
    if (cw->failed == cudaSuccess)
        return TRESTLE_OK;
    return trestle__cuda_fail(err, cw->failed, s->device, cw->what);
}

/* The next event of the worker's ring, made on first use. */
static cudaEvent_t next_event(cuda_worker *cw)
{
    unsigned slot = (cw->head + cw->len) % MARKS;
    if (slot == cw->nev) {
        note(cw, cudaEventCreateWithFlags(&cw->ev[slot], cudaEventBlockingSync |
                                                              cudaEventDisableTiming),
             "creating a copy event (cudaEventCreateWithFlags)");
        if (cw->failed != cudaSuccess)
            return NULL;
        cw->nev++;
    }
    return cw->ev[slot];
}

static int cuda_mark(trestle__copier *c, unsigned worker, trestle_error *err)
{
    cuda_state *s = c->state;
    cuda_worker *cw = worker_get(s, worker);
    if (cw->failed == cudaSuccess && cw->len == MARKS)
        return trestle__error_simple(err, TRESTLE_E_LIMIT, "internal error: CUDA device %d: "
                                     "more than %d copy marks in flight", s->device, MARKS);
    flush(cw);
    cw->win_src = NULL; /* the next staging buffer may sit at the same address */
    cudaEvent_t ev = cw->failed == cudaSuccess ? next_event(cw) : NULL;
    if (ev) {
        note(cw, cudaEventRecord(ev, cw->stream), "marking copies (cudaEventRecord)");
        if (cw->failed == cudaSuccess)
            cw->len++;
    }
    return worker_error(s, cw, err);
}

static int cuda_retire(trestle__copier *c, unsigned worker, bool wait, bool *done,
                       trestle_error *err)
{
    cuda_state *s = c->state;
    cuda_worker *cw = worker_get(s, worker);
    *done = false;
    if (cw->failed == cudaSuccess && cw->len > 0) {
        cudaEvent_t ev = cw->ev[cw->head];
        cudaError_t e = cudaEventQuery(ev);
        if (e == cudaErrorNotReady && wait) {
            double t = now_s();
            e = cudaEventSynchronize(ev);
            cw->wait_seconds += now_s() - t;
            note(cw, e, "waiting for copies (cudaEventSynchronize)");
        } else if (e != cudaErrorNotReady) {
            note(cw, e, "waiting for copies (cudaEventQuery)");
        }
        if (e == cudaSuccess) {
            cw->head = (cw->head + 1) % MARKS;
            cw->len--;
            *done = true;
        }
    }
    return worker_error(s, cw, err);
}

/* Everything the worker queued, waited for on an event of its own (the
 * marks' ring is the pending reads'). Older marks are complete then too,
 * and retire at once. */
static int cuda_fence(trestle__copier *c, unsigned worker, trestle_error *err)
{
    cuda_state *s = c->state;
    cuda_worker *cw = worker_get(s, worker);
    if (!cw->ready || cw->failed != cudaSuccess)
        return worker_error(s, cw, err);
    flush(cw);
    cw->win_src = NULL; /* fenced memory gets rewritten: a conversion buffer, say */
    if (!cw->have_fence_ev) {
        note(cw, cudaEventCreateWithFlags(&cw->fence_ev, cudaEventBlockingSync |
                                                             cudaEventDisableTiming),
             "creating a copy event (cudaEventCreateWithFlags)");
        cw->have_fence_ev = cw->failed == cudaSuccess;
    }
    if (cw->failed == cudaSuccess)
        note(cw, cudaEventRecord(cw->fence_ev, cw->stream), "marking copies (cudaEventRecord)");
    if (cw->failed == cudaSuccess) {
        double t = now_s();
        note(cw, cudaEventSynchronize(cw->fence_ev), "waiting for copies (cudaEventSynchronize)");
        cw->wait_seconds += now_s() - t;
    }
    return worker_error(s, cw, err);
}

static void cuda_reenter(trestle__copier *c, unsigned worker)
{
    cuda_state *s = c->state;
    cuda_worker *cw = &s->w[worker < s->nworkers ? worker : s->nworkers - 1];
    if (cw->ready)
        note(cw, cudaSetDevice(s->device), "making the copy device current again after the "
                                           "ready callback (cudaSetDevice)");
}

static double cuda_wait_seconds(const trestle__copier *c)
{
    const cuda_state *s = c->state;
    double sum = 0;
    for (unsigned i = 0; i < s->nworkers; i++)
        sum += s->w[i].wait_seconds;
    return sum;
}

static void cuda_close(trestle__copier *c)
{
    cuda_state *s = c->state;
    cudaError_t e;
    if (!s)
        return;
    TRESTLE__WITH_DEVICE(&s->api, s->device, e, {
        for (unsigned i = 0; i < s->nworkers; i++) {
            cuda_worker *cw = &s->w[i];
            /* Streams are idle unless the restore failed; destroying one
             * lets its work finish first, and the staging it reads stays
             * until the plan is freed. */
            if (cw->ready)
                cudaStreamDestroy(cw->stream);
            for (unsigned k = 0; k < cw->nev; k++)
                cudaEventDestroy(cw->ev[k]);
            if (cw->have_fence_ev)
                cudaEventDestroy(cw->fence_ev);
            if (cw->win)
                cudaFree(cw->win); /* waits for the streams' work, which reads it */
            free(cw->bdst);
            free(cw->bsrc);
            free(cw->bsize);
        }
        if (s->have_start)
            cudaEventDestroy(s->start);
    });
    (void)e;
    free(s->w);
    free(s);
    c->state = NULL;
}

static const trestle__copier_ops cuda_ops = {
    .name = "cuda",
    .arena_alloc = cuda_arena_alloc,
    .staging_add = cuda_staging_add,
    .copy = cuda_copy,
    .copy_region = cuda_copy_region,
    .copy_widen = cuda_copy_widen,
    .fence = cuda_fence,
    .mark = cuda_mark,
    .retire = cuda_retire,
    .reenter = cuda_reenter,
    .wait_seconds = cuda_wait_seconds,
    .close = cuda_close,
};

/* The start event: made on the device of the stream it is recorded on
 * (an event and the stream recording it share a device), and refused for
 * a stream being captured into a graph, which a restore cannot be part
 * of (its copies run on streams of its own, on the host's schedule). */
static int record_start(cuda_state *s, cudaStream_t stream, trestle_error *err)
{
    int sdev = s->device;
    cudaError_t e = cudaSuccess;
    if (stream) {
        enum cudaStreamCaptureStatus cap = cudaStreamCaptureStatusNone;
        TRESTLE__WITH_DEVICE(&s->api, s->device, e, {
            e = cudaStreamGetDevice(stream, &sdev);
            if (e == cudaSuccess)
                e = cudaStreamIsCapturing(stream, &cap);
        });
        if (e != cudaSuccess)
            return trestle__cuda_fail(err, e, s->device, "inspecting the caller's stream "
                                                "(cudaStreamGetDevice)");
        if (cap != cudaStreamCaptureStatusNone)
            return trestle__error_simple(err, TRESTLE_E_INVALID_ARG,
                                         "the cuda_stream of the restore options is capturing a "
                                         "CUDA graph: a restore cannot be captured (its copies "
                                         "run on trestle's own streams); restore before the "
                                         "capture or on another stream");
    }
    TRESTLE__WITH_DEVICE(&s->api, sdev, e, {
        e = cudaEventCreateWithFlags(&s->start, cudaEventDisableTiming);
        if (e == cudaSuccess) {
            s->have_start = true;
            e = cudaEventRecord(s->start, stream ? stream : cudaStreamLegacy);
        }
    });
    if (e != cudaSuccess)
        return trestle__cuda_fail(err, e, s->device,
                         stream ? "waiting on the caller's stream (cudaEventRecord)"
                                : "waiting on the legacy default stream (cudaEventRecord)");
    return TRESTLE_OK;
}

int trestle__copier_open_cuda(trestle__copier *c, int device, unsigned workers, void *stream,
                              trestle_error *err)
{
    int count = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess || count == 0)
        return trestle__error_simple(err, TRESTLE_E_NO_DEVICE,
                                     "no usable CUDA device (cudaGetDeviceCount: %s)",
                                     e != cudaSuccess ? cudaGetErrorString(e) : "0 devices");
    if (device < 0 || device >= count)
        return trestle__error_simple(err, TRESTLE_E_NO_DEVICE,
                                     "CUDA device %d does not exist (this host has %d)", device,
                                     count);
    cuda_state *s = calloc(1, sizeof *s);
    if (s)
        s->w = calloc(workers ? workers : 1, sizeof *s->w);
    if (!s || !s->w) {
        free(s);
        return trestle__error_simple(err, TRESTLE_E_NOMEM, "out of memory");
    }
    s->device = device;
    s->nworkers = workers ? workers : 1;
    for (unsigned i = 0; i < s->nworkers; i++) {
        cuda_worker *cw = &s->w[i];
        cw->bdst = malloc(BATCH_MAX * sizeof *cw->bdst);
        cw->bsrc = malloc(BATCH_MAX * sizeof *cw->bsrc);
        cw->bsize = malloc(BATCH_MAX * sizeof *cw->bsize);
        if (!cw->bdst || !cw->bsrc || !cw->bsize) {
            /* Unbatched, then: every small copy is a call of its own. */
            free(cw->bdst);
            free(cw->bsrc);
            free(cw->bsize);
            cw->bdst = NULL;
            cw->bsrc = NULL;
            cw->bsize = NULL;
        }
    }
    c->ops = &cuda_ops;
    c->state = s;
    c->host_dests = false;
    c->marks = MARKS;
    int rc = trestle__cuda_load_api(&s->api, device, err);
    if (rc == TRESTLE_OK)
        rc = record_start(s, (cudaStream_t)stream, err);
    if (rc != TRESTLE_OK)
        cuda_close(c);
    return rc;
}

void trestle__copier_cuda_share(trestle__copier *c, int *current)
{
    ((cuda_state *)c->state)->current = current;
}

#else /* !TRESTLE_HAVE_CUDA */

void trestle__copier_cuda_share(trestle__copier *c, int *current) { (void)c, (void)current; }

int trestle__copier_open_cuda(trestle__copier *c, int device, unsigned workers, void *stream,
                              trestle_error *err)
{
    (void)c;
    (void)workers;
    (void)stream;
    return trestle__error_simple(err, TRESTLE_E_NO_DEVICE,
                                 "restoring into CUDA device memory (device %d) needs a CUDA "
                                 "build of trestle; this one copies to host memory only",
                                 device);
}

#endif /* TRESTLE_HAVE_CUDA */
