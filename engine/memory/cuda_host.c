/*
 * cuda_host.c - the CUDA calls the engine makes outside a restore's
 * copier: pinning and freeing staging memory (engine/memory/staging.c), asking
 * which devices there are and which device a pointer is on, reading
 * device memory back (trestle_plan_read_op), and the device arenas a CUDA
 * copier allocates (one cudaMalloc per plan and device). Each saves and puts back the
 * caller's context (engine/context/cuda_ctx.h); none reads or clears the thread's
 * last error. Without CUDA, stubs that say so.
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "cuda_host.h"
#include "error.h"

#if TRESTLE_HAVE_CUDA

#include "cuda_error.h"

/* ---- errors ---- */

int trestle__cuda_fail(trestle_error *err, cudaError_t e, int device, const char *what)
{
    int code = e == cudaErrorNoDevice || e == cudaErrorInsufficientDriver ||
                       e == cudaErrorInvalidDevice
                   ? TRESTLE_E_NO_DEVICE
                   : e == cudaErrorMemoryAllocation ? TRESTLE_E_NOMEM : TRESTLE_E_CUDA;
    return trestle__error_simple(err, code, "CUDA device %d: %s failed: %s (%s)", device, what,
                                 cudaGetErrorString(e), cudaGetErrorName(e));
}

int trestle__cuda_load_api(trestle__ctx_api *a, int device, trestle_error *err)
{
    cudaError_t e = trestle__cuda_ctx_load(a);
    if (e == cudaSuccess)
        return TRESTLE_OK;
    return trestle__cuda_fail(err, e, device, "finding cuCtxGetCurrent/cuCtxSetCurrent/"
                                              "cuPointerGetAttribute "
                                              "(cudaGetDriverEntryPointByVersion)");
}

/* ---- pinned host memory (engine/memory/staging.c) ---- */

int trestle__cuda_pin(int device, void *p, size_t bytes, const char **refused,
                      trestle_error *err)
{
    trestle__ctx_api api;
    cudaError_t e;
    *refused = NULL;
    int rc = trestle__cuda_load_api(&api, device, err);
    if (rc != TRESTLE_OK)
        return rc;
    TRESTLE__WITH_DEVICE(&api, device, e, e = cudaHostRegister(p, bytes, cudaHostRegisterPortable |
                                                                   cudaHostRegisterMapped));
    if (e == cudaSuccess)
        return TRESTLE_OK;
    /* Any refusal: a host that cannot pin ordinary pages at all (no IOMMU
     * support for it, a sandbox, a kernel without the needed calls) has
     * many ways to say so, and a locked-memory limit or a fragmented
     * IOMMU space say it as "out of memory", where cudaHostAlloc's own
     * pool may still have room. The caller tries that next. */
    *refused = cudaGetErrorString(e);
    return trestle__error_set(err, TRESTLE_E_NOMEM, 0, NULL, NULL, -1, (int64_t)bytes,
                              "cannot pin %zu bytes of staging memory for CUDA device %d "
                              "(cudaHostRegister: %s); lower the staging size (--staging, "
                              "staging_bytes) or free host memory", bytes, device,
                              cudaGetErrorString(e));
}

void trestle__cuda_unpin(int device, void *p)
{
    trestle__ctx_api api;
    cudaError_t e;
    if (trestle__cuda_ctx_load(&api) == cudaSuccess)
        TRESTLE__WITH_DEVICE(&api, device, e, e = cudaHostUnregister(p));
    (void)e;
}

int trestle__cuda_host_alloc(int device, size_t bytes, void **p, const char **why,
                             trestle_error *err)
{
    trestle__ctx_api api;
    cudaError_t e;
    *p = NULL;
    *why = NULL;
    int rc = trestle__cuda_load_api(&api, device, err);
    if (rc != TRESTLE_OK)
        return rc;
    TRESTLE__WITH_DEVICE(&api, device, e, e = cudaHostAlloc(p, bytes, cudaHostAllocPortable |
                                                                 cudaHostAllocMapped));
    if (e == cudaSuccess)
        return TRESTLE_OK;
    *why = cudaGetErrorString(e);
    return trestle__error_set(err, TRESTLE_E_NOMEM, 0, NULL, NULL, -1, (int64_t)bytes,
                              "cannot allocate %zu bytes of pinned staging memory for CUDA "
                              "device %d (cudaHostAlloc: %s); lower the staging size "
                              "(--staging, staging_bytes) or free host memory", bytes, device,
                              cudaGetErrorString(e));
}

void trestle__cuda_host_free(int device, void *p)
{
    trestle__ctx_api api;
    cudaError_t e;
    if (trestle__cuda_ctx_load(&api) == cudaSuccess)
        TRESTLE__WITH_DEVICE(&api, device, e, e = cudaFreeHost(p));
    (void)e;
}

/* ---- queries ---- */

int trestle__cuda_device_count(char *why, size_t n)
{
    trestle__ctx_api api;
    int count = 0;
    cudaError_t e = trestle__cuda_ctx_load(&api);
    /* A device query, run so that it leaves the caller's context as it was
     * whatever the runtime does inside (cuda_ctx.h). */
    if (e == cudaSuccess)
        TRESTLE__KEEPING_CONTEXT(&api, e, e = cudaGetDeviceCount(&count));
    if (e != cudaSuccess) {
        snprintf(why, n, "a usable CUDA device (cudaGetDeviceCount: %s)", cudaGetErrorString(e));
        return 0;
    }
    if (count == 0)
        snprintf(why, n, "a CUDA device, and this host has none");
    return count;
}

/* By the driver (cuPointerGetAttribute): cudaPointerGetAttributes would
 * make the primary context of the thread's device current in a thread that
 * had none. */
int trestle__cuda_pointer_device(const void *p, int *device)
{
    trestle__ctx_api api;
    if (trestle__cuda_ctx_load(&api) != cudaSuccess)
        return -1;
    return trestle__cuda_pointer_ordinal(&api, p, device);
}

int trestle__cuda_read(int device, void *dst, const void *src, uint64_t n, trestle_error *err)
{
    trestle__ctx_api api;
    cudaError_t e;
    int rc = trestle__cuda_load_api(&api, device, err);
    if (rc != TRESTLE_OK)
        return rc;
    TRESTLE__WITH_DEVICE(&api, device, e,
                         e = cudaMemcpy(dst, src, (size_t)n, cudaMemcpyDeviceToHost));
    if (e != cudaSuccess)
        return trestle__cuda_fail(err, e, device, "cudaMemcpy (device to host)");
    return TRESTLE_OK;
}

int trestle__cuda_copy_queued(int device, void *dst, const void *src, uint64_t n, void *stream,
                              void **done, trestle_error *err)
{
    trestle__ctx_api api;
    cudaError_t e;
    cudaEvent_t ev = NULL;
    int rc = trestle__cuda_load_api(&api, device, err);
    if (rc != TRESTLE_OK)
        return rc;
    TRESTLE__WITH_DEVICE(&api, device, e,
                         e = cudaMemcpyAsync(dst, src, (size_t)n, cudaMemcpyDeviceToDevice,
                                             (cudaStream_t)stream));
    if (e != cudaSuccess)
        return trestle__cuda_fail(err, e, device, "cudaMemcpyAsync (device to device)");
    if (!done)
        return TRESTLE_OK;
    TRESTLE__WITH_DEVICE(&api, device, e,
                         e = cudaEventCreateWithFlags(&ev, cudaEventDisableTiming);
                         if (e == cudaSuccess) e = cudaEventRecord(ev, (cudaStream_t)stream));
    if (e != cudaSuccess) {
        if (ev)
            trestle__cuda_done_wait(device, ev);
        return trestle__cuda_fail(err, e, device, "cudaEventRecord");
    }
    *done = ev;
    return TRESTLE_OK;
}

void trestle__cuda_done_wait(int device, void *done)
{
    trestle__ctx_api api;
    cudaError_t e;
    if (!done || trestle__cuda_load_api(&api, device, NULL) != TRESTLE_OK)
        return;
    TRESTLE__WITH_DEVICE(&api, device, e, e = cudaEventSynchronize((cudaEvent_t)done);
                         (void)cudaEventDestroy((cudaEvent_t)done));
    (void)e;
}

/* ---- device arenas ---- */

static void cuda_arena_release(trestle_arena *a)
{
    trestle__ctx_api api;
    cudaError_t e;
    if (trestle__cuda_ctx_load(&api) == cudaSuccess)
        TRESTLE__WITH_DEVICE(&api, a->device, e, e = cudaFree(a->base));
    (void)e; /* nothing to report to: a free that fails leaves a leak, not a wrong byte */
}

int trestle__cuda_arena_alloc(int device, uint64_t bytes, trestle_arena **out,
                              trestle_error *err)
{
    trestle__ctx_api api;
    void *p = NULL;
    cudaError_t e = cudaSuccess;
    int rc = trestle__cuda_load_api(&api, device, err);
    if (rc != TRESTLE_OK)
        return rc;
    trestle_arena *a = calloc(1, sizeof *a);
    if (!a)
        return trestle__error_simple(err, TRESTLE_E_NOMEM, "out of memory");
    /* cudaMalloc aligns to at least 256 bytes, the arena's tensor alignment. */
    TRESTLE__WITH_DEVICE(&api, device, e, e = cudaMalloc(&p, (size_t)(bytes ? bytes : 1)));
    if (e != cudaSuccess) {
        free(a);
        return trestle__error_set(err, e == cudaErrorMemoryAllocation ? TRESTLE_E_NOMEM
                                                                      : TRESTLE_E_CUDA,
                                  0, NULL, NULL, -1, (int64_t)bytes,
                                  "cannot allocate %" PRIu64 " bytes of device memory on CUDA "
                                  "device %d: %s", bytes, device, cudaGetErrorString(e));
    }
    a->base = p;
    a->bytes = bytes;
    a->device = device;
    a->release = cuda_arena_release;
    *out = a;
    return TRESTLE_OK;
}

#else /* !TRESTLE_HAVE_CUDA */

int trestle__cuda_arena_alloc(int device, uint64_t bytes, trestle_arena **out,
                              trestle_error *err)
{
    (void)bytes;
    *out = NULL;
    return trestle__error_simple(err, TRESTLE_E_NO_DEVICE, "device memory on CUDA device %d "
                                 "needs a CUDA build of trestle", device);
}

int trestle__cuda_device_count(char *why, size_t n)
{
    snprintf(why, n, "a CUDA build of trestle; this one copies to host memory only");
    return 0;
}

int trestle__cuda_pin(int device, void *p, size_t bytes, const char **refused,
                      trestle_error *err)
{
    (void)p;
    (void)bytes;
    *refused = NULL;
    return trestle__error_simple(err, TRESTLE_E_NO_DEVICE, "pinning memory for CUDA device %d "
                                 "needs a CUDA build of trestle", device);
}

void trestle__cuda_unpin(int device, void *p)
{
    (void)device;
    (void)p;
}

int trestle__cuda_host_alloc(int device, size_t bytes, void **p, const char **why,
                             trestle_error *err)
{
    (void)bytes;
    *p = NULL;
    *why = NULL;
    return trestle__error_simple(err, TRESTLE_E_NO_DEVICE, "pinned memory for CUDA device %d "
                                 "needs a CUDA build of trestle", device);
}

void trestle__cuda_host_free(int device, void *p)
{
    (void)device;
    (void)p;
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

int trestle__cuda_copy_queued(int device, void *dst, const void *src, uint64_t n, void *stream,
                              void **done, trestle_error *err)
{
    (void)dst;
    (void)src;
    (void)n;
    (void)stream;
    (void)done;
    return trestle__error_simple(err, TRESTLE_E_NO_DEVICE, "copying CUDA device %d memory "
                                 "needs a CUDA build of trestle", device);
}

void trestle__cuda_done_wait(int device, void *done)
{
    (void)device;
    (void)done;
}

#endif /* TRESTLE_HAVE_CUDA */
