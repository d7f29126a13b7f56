/*
 * copy_cuda.c - the CUDA copier: verified staging bytes to device memory.
 *
 * Sits under engine/restore.c behind copy.h, like copy_host.c. What makes
 * it fast, and why each piece is there:
 *
 *  - Pinned staging. The pool's buffers (one region, engine/pool.c) are
 *    page-locked with cudaHostRegister, so copies out of them are true
 *    asynchronous DMA at the PCIe line rate; from pageable memory the
 *    driver would bounce through its own buffers at a fraction of it.
 *    Registering ordinary pages (rather than taking cudaHostAlloc memory)
 *    keeps them usable for O_DIRECT and io_uring registered buffers, which
 *    both need pages the kernel can pin itself. Mapped, so kernels read
 *    them at their host address (unified addressing). The workers' dtype
 *    conversion buffers (engine/restore_convert.c), which converted
 *    elements are copied out of, are registered the same way.
 *  - One stream per worker, created lazily in the worker's own thread, so
 *    workers never share a queue or a lock; a worker's copies of one chunk
 *    go out before it computes the chunk's CRC32C, so the DMA and the CRC
 *    overlap, and fence() waits on that worker's stream only: no device-wide
 *    synchronisation, ever.
 *  - One device allocation (the arena) for all DEST_ALLOCATE tensors of a
 *    restore: no cudaMalloc per tensor.
 *  - Slices that are not contiguous in the stored tensor go through the
 *    scatter kernel (kernels/), which reads the pinned staging bytes over
 *    PCIe through unified addressing and writes each run to its place;
 *    a slice that is one contiguous run is a plain DMA copy.
 *  - A stream supplied by the caller is honoured: every worker stream first
 *    waits for the work queued on it before the restore started (e.g. the
 *    cudaMallocAsync of the destinations). When trestle_restore() returns,
 *    every copy has completed (each part is fenced before its op is
 *    reported ready), so work the caller queues afterwards sees the bytes.
 *
 * Errors of asynchronous calls are sticky per worker and reported by the
 * next fence(), which the worker calls before it releases the buffer or
 * reports an op ready.
 *
 * The calling thread's current device is saved and restored around every
 * CUDA call made from it: an embedding runtime must not find its device
 * switched under it.
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

#include "copy.h"
#include "error.h"

#if TRESTLE_HAVE_CUDA

#include <cuda_runtime_api.h>

#include "trestle_kernels.h"

/* Per worker: touched only by that worker's thread (and by close()). */
typedef struct cuda_worker {
    cudaStream_t stream;
    bool ready;              /* device set and stream made in this thread */
    cudaError_t failed;      /* first failure since the last fence, or cudaSuccess */
    const char *what;        /* the call that failed */
    char pad[40];            /* workers do not share cache lines */
} cuda_worker;

typedef struct cuda_state {
    int device;
    unsigned nworkers;
    cuda_worker *w;
    cudaEvent_t start;       /* recorded on the caller's stream at open */
    bool have_start;
    void *pinned[2];         /* host regions registered with cudaHostRegister: the staging
                                pool, and the dtype conversion buffers when an op converts */
    unsigned npinned;
} cuda_state;

/* Run `call` with `device` current in the calling thread, then put the
 * caller's device back. */
#define WITH_DEVICE(dev, call)                                                 \
    do {                                                                       \
        int prev_ = -1;                                                        \
        cudaGetDevice(&prev_);                                                 \
        if (prev_ != (dev))                                                    \
            cudaSetDevice(dev);                                                \
        call;                                                                  \
        if (prev_ >= 0 && prev_ != (dev))                                      \
            cudaSetDevice(prev_);                                              \
    } while (0)

static int cuda_fail(trestle_error *err, cudaError_t e, int device, const char *what)
{
    int code = e == cudaErrorNoDevice || e == cudaErrorInsufficientDriver ||
                       e == cudaErrorInvalidDevice
                   ? TRESTLE_E_NO_DEVICE
                   : e == cudaErrorMemoryAllocation ? TRESTLE_E_NOMEM : TRESTLE_E_CUDA;
    return trestle__error_simple(err, code, "CUDA device %d: %s failed: %s (%s)", device, what,
                                 cudaGetErrorString(e), cudaGetErrorName(e));
}

/* Make worker w's stream in its own thread on first use. */
static cuda_worker *worker_get(cuda_state *s, unsigned w)
{
    cuda_worker *cw = &s->w[w < s->nworkers ? w : s->nworkers - 1];
    if (cw->ready || cw->failed != cudaSuccess)
        return cw;
    cudaError_t e = cudaSetDevice(s->device);
    if (e == cudaSuccess)
        e = cudaStreamCreateWithFlags(&cw->stream, cudaStreamNonBlocking);
    if (e == cudaSuccess && s->have_start)
        e = cudaStreamWaitEvent(cw->stream, s->start, 0);
    if (e != cudaSuccess) {
        cw->failed = e;
        cw->what = "creating a copy stream";
        return cw;
    }
    cw->ready = true;
    return cw;
}

static void note(cuda_worker *cw, cudaError_t e, const char *what)
{
    if (e != cudaSuccess && cw->failed == cudaSuccess) {
        cw->failed = e;
        cw->what = what;
    }
}

/* ---- the device arena ---- */

static void cuda_arena_release(trestle_arena *a)
{
    int dev = a->device;
    WITH_DEVICE(dev, cudaFree(a->base));
}

static int cuda_arena_alloc(trestle__copier *c, uint64_t bytes, trestle_arena **out,
                            trestle_error *err)
{
    cuda_state *s = c->state;
    void *p = NULL;
    cudaError_t e = cudaSuccess;
    trestle_arena *a = calloc(1, sizeof *a);
    if (!a)
        return trestle__error_simple(err, TRESTLE_E_NOMEM, "out of memory");
    /* cudaMalloc aligns to at least 256 bytes, the arena's tensor alignment. */
    WITH_DEVICE(s->device, e = cudaMalloc(&p, (size_t)(bytes ? bytes : 1)));
    if (e != cudaSuccess) {
        free(a);
        cudaGetLastError(); /* clear the sticky-free error state of the runtime */
        return trestle__error_set(err, TRESTLE_E_NOMEM, 0, NULL, NULL, -1, (int64_t)bytes,
                                  "cannot allocate %" PRIu64 " bytes of device memory on CUDA "
                                  "device %d: %s", bytes, s->device, cudaGetErrorString(e));
    }
    a->base = p;
    a->bytes = bytes;
    a->device = s->device;
    a->release = cuda_arena_release;
    *out = a;
    return TRESTLE_OK;
}

/* ---- staging ---- */

static int cuda_staging_register(trestle__copier *c, void *base, size_t bytes, trestle_error *err)
{
    cuda_state *s = c->state;
    cudaError_t e = cudaSuccess;
    if (s->npinned == sizeof s->pinned / sizeof s->pinned[0])
        return trestle__error_simple(err, TRESTLE_E_LIMIT, "CUDA device %d: more than %zu "
                                     "staging regions to pin", s->device,
                                     sizeof s->pinned / sizeof s->pinned[0]);
    WITH_DEVICE(s->device, e = cudaHostRegister(base, bytes, cudaHostRegisterPortable |
                                                                 cudaHostRegisterMapped));
    if (e != cudaSuccess) {
        cudaGetLastError();
        return trestle__error_set(err, TRESTLE_E_NOMEM, 0, NULL, NULL, -1, (int64_t)bytes,
                                  "cannot pin %zu bytes of staging memory for CUDA device %d "
                                  "(cudaHostRegister: %s); lower the staging size or raise "
                                  "RLIMIT_MEMLOCK", bytes, s->device, cudaGetErrorString(e));
    }
    s->pinned[s->npinned++] = base;
    return TRESTLE_OK;
}

/* ---- copies ---- */

static uint64_t cuda_copy(trestle__copier *c, unsigned worker, void *dst, const void *src,
                          uint64_t n)
{
    cuda_worker *cw = worker_get(c->state, worker);
    if (cw->failed == cudaSuccess)
        note(cw, cudaMemcpyAsync(dst, src, (size_t)n, cudaMemcpyHostToDevice, cw->stream),
             "cudaMemcpyAsync (host to device)");
    return n;
}

static uint64_t cuda_copy_region(trestle__copier *c, unsigned worker, void *dst,
                                 const trestle__region *r, const void *src, uint64_t lo,
                                 uint64_t n)
{
    cuda_worker *cw = worker_get(c->state, worker);
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
        int e = trestle__k_scatter(dst, src, &l, lo, n, cw->stream);
        note(cw, (cudaError_t)e, "the slice scatter kernel");
    }
    return bytes;
}

static int cuda_fence(trestle__copier *c, unsigned worker, trestle_error *err)
{
    cuda_state *s = c->state;
    cuda_worker *cw = worker_get(s, worker);
    if (cw->ready && cw->failed == cudaSuccess)
        note(cw, cudaStreamSynchronize(cw->stream), "waiting for copies (cudaStreamSynchronize)");
    if (cw->failed == cudaSuccess)
        return TRESTLE_OK;
    return cuda_fail(err, cw->failed, s->device, cw->what);
}

static void cuda_close(trestle__copier *c)
{
    cuda_state *s = c->state;
    if (!s)
        return;
    WITH_DEVICE(s->device, {
        for (unsigned i = 0; i < s->nworkers; i++)
            if (s->w[i].ready) {
                cudaStreamSynchronize(s->w[i].stream);
                cudaStreamDestroy(s->w[i].stream);
            }
        if (s->have_start)
            cudaEventDestroy(s->start);
        for (unsigned i = 0; i < s->npinned; i++)
            cudaHostUnregister(s->pinned[i]);
    });
    free(s->w);
    free(s);
    c->state = NULL;
}

static const trestle__copier_ops cuda_ops = {
    .name = "cuda",
    .arena_alloc = cuda_arena_alloc,
    .staging_register = cuda_staging_register,
    .copy = cuda_copy,
    .copy_region = cuda_copy_region,
    .fence = cuda_fence,
    .close = cuda_close,
};

int trestle__copier_open_cuda(trestle__copier *c, int device, unsigned workers, void *stream,
                              trestle_error *err)
{
    int count = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess || count == 0) {
        cudaGetLastError();
        return trestle__error_simple(err, TRESTLE_E_NO_DEVICE,
                                     "no usable CUDA device (cudaGetDeviceCount: %s)",
                                     e != cudaSuccess ? cudaGetErrorString(e) : "0 devices");
    }
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
    if (stream) {
        WITH_DEVICE(device, {
            e = cudaEventCreateWithFlags(&s->start, cudaEventDisableTiming);
            if (e == cudaSuccess) {
                s->have_start = true;
                e = cudaEventRecord(s->start, (cudaStream_t)stream);
            }
        });
        if (e != cudaSuccess) {
            c->state = s;
            cuda_close(c);
            return cuda_fail(err, e, device, "waiting on the caller's stream (cudaEventRecord)");
        }
    }
    c->ops = &cuda_ops;
    c->state = s;
    c->host_dests = false;
    return TRESTLE_OK;
}

int trestle__cuda_device_count(char *why, size_t n)
{
    int count = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess) {
        cudaGetLastError();
        snprintf(why, n, "a usable CUDA device (cudaGetDeviceCount: %s)", cudaGetErrorString(e));
        return 0;
    }
    if (count == 0)
        snprintf(why, n, "a CUDA device, and this host has none");
    return count;
}

int trestle__cuda_pointer_device(const void *p, int *device)
{
    struct cudaPointerAttributes a;
    cudaError_t e = cudaPointerGetAttributes(&a, p);
    if (e != cudaSuccess) {
        cudaGetLastError();
        return -1;
    }
    if (a.type != cudaMemoryTypeDevice && a.type != cudaMemoryTypeManaged)
        return -1;
    *device = a.device;
    return 0;
}

int trestle__cuda_read(int device, void *dst, const void *src, uint64_t n, trestle_error *err)
{
    cudaError_t e = cudaSuccess;
    WITH_DEVICE(device, e = cudaMemcpy(dst, src, (size_t)n, cudaMemcpyDeviceToHost));
    if (e != cudaSuccess) {
        cudaGetLastError();
        return cuda_fail(err, e, device, "cudaMemcpy (device to host)");
    }
    return TRESTLE_OK;
}

#else /* !TRESTLE_HAVE_CUDA */

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

int trestle__cuda_device_count(char *why, size_t n)
{
    snprintf(why, n, "a CUDA build of trestle; this one copies to host memory only");
    return 0;
}

int trestle__cuda_pointer_device(const void *p, int *device)
{
    (void)p;
    (void)device;
    return -1;
}

int trestle__cuda_read(int device, void *dst, const void *src, uint64_t n, trestle_error *err)
{
    (void)dst;
    (void)src;
    (void)n;
    return trestle__error_simple(err, TRESTLE_E_NO_DEVICE, "reading CUDA device %d memory "
                                 "needs a CUDA build of trestle", device);
}

#endif /* TRESTLE_HAVE_CUDA */
