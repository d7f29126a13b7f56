/*
 * cuda_ctx.c - the calling thread's CUDA context, saved and put back
 * (engine/memory/cuda_ctx.h).
 */
#include "trestle_version.h"

#if TRESTLE_HAVE_CUDA

#include "cuda_ctx.h"
#include "error.h"

#define DRIVER_API_VERSION 12000

/* The driver's context calls, through the runtime: no link to libcuda. */
cudaError_t trestle__cuda_ctx_load(trestle__ctx_api *a)
{
    enum cudaDriverEntryPointQueryResult q = cudaDriverEntryPointSymbolNotFound;
    void *get = NULL, *set = NULL;
    cudaError_t e = cudaGetDriverEntryPointByVersion("cuCtxGetCurrent", &get, DRIVER_API_VERSION,
                                                     cudaEnableDefault, &q);
    if (e == cudaSuccess && q == cudaDriverEntryPointSuccess)
        e = cudaGetDriverEntryPointByVersion("cuCtxSetCurrent", &set, DRIVER_API_VERSION,
                                             cudaEnableDefault, &q);
    if (e == cudaSuccess && (q != cudaDriverEntryPointSuccess || !get || !set))
        e = cudaErrorSymbolNotFound;
    a->get = (trestle__ctx_get_fn)get;
    a->set = (trestle__ctx_set_fn)set;
    return e;
}

cudaError_t trestle__cuda_enter(const trestle__ctx_api *a, int device, trestle__ctx_guard *g)
{
    g->saved = NULL;
    g->have = a->get(&g->saved) == CUDA_SUCCESS;
    if (!g->have)
        return cudaErrorDeviceUninitialized;
    return cudaSetDevice(device);
}

cudaError_t trestle__cuda_leave(const trestle__ctx_api *a, const trestle__ctx_guard *g)
{
    if (!g->have)
        return cudaSuccess;
    return a->set(g->saved) == CUDA_SUCCESS ? cudaSuccess : cudaErrorDeviceUninitialized;
}

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
    return trestle__cuda_fail(err, e, device, "finding cuCtxGetCurrent/cuCtxSetCurrent "
                                              "(cudaGetDriverEntryPointByVersion)");
}

#endif /* TRESTLE_HAVE_CUDA */
