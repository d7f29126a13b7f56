/*
 * cuda_ctx.c - the calling thread's CUDA context, saved and put back
 * (engine/context/cuda_ctx.h). No state: compiled into libtrestle and
 * libtrestle_mpi alike.
 */
#include "trestle_version.h"

#if TRESTLE_HAVE_CUDA

#include <stdint.h>

#include "cuda_ctx.h"

#define DRIVER_API_VERSION 12000

void *trestle__cuda_driver_entry(const char *name, cudaError_t *e)
{
    enum cudaDriverEntryPointQueryResult q = cudaDriverEntryPointSymbolNotFound;
    void *fn = NULL;
    if (*e != cudaSuccess)
        return NULL;
    *e = cudaGetDriverEntryPointByVersion(name, &fn, DRIVER_API_VERSION, cudaEnableDefault, &q);
    if (*e == cudaSuccess && (q != cudaDriverEntryPointSuccess || !fn))
        *e = cudaErrorSymbolNotFound;
    return *e == cudaSuccess ? fn : NULL;
}

/* The driver's calls, through the runtime: no link to libcuda. */
cudaError_t trestle__cuda_ctx_load(trestle__ctx_api *a)
{
    cudaError_t e = cudaSuccess;
    a->get = (trestle__ctx_get_fn)trestle__cuda_driver_entry("cuCtxGetCurrent", &e);
    a->set = (trestle__ctx_set_fn)trestle__cuda_driver_entry("cuCtxSetCurrent", &e);
    a->ptr_attr = (trestle__ptr_attr_fn)trestle__cuda_driver_entry("cuPointerGetAttribute", &e);
    return e;
}

cudaError_t trestle__cuda_save(const trestle__ctx_api *a, trestle__ctx_guard *g)
{
    g->saved = NULL;
    g->have = a->get(&g->saved) == CUDA_SUCCESS;
    return g->have ? cudaSuccess : cudaErrorDeviceUninitialized;
}

cudaError_t trestle__cuda_enter(const trestle__ctx_api *a, int device, trestle__ctx_guard *g)
{
    cudaError_t e = trestle__cuda_save(a, g);
    return e == cudaSuccess ? cudaSetDevice(device) : e;
}

cudaError_t trestle__cuda_leave(const trestle__ctx_api *a, const trestle__ctx_guard *g)
{
    if (!g->have)
        return cudaSuccess;
    return a->set(g->saved) == CUDA_SUCCESS ? cudaSuccess : cudaErrorDeviceUninitialized;
}

cudaError_t trestle__cuda_record_on(cudaEvent_t *ev, bool *have, int *ev_device, int device,
                                    cudaStream_t stream)
{
    if (*have && *ev_device != device) {
        cudaEventDestroy(*ev);
        *have = false;
    }
    if (!*have) {
        cudaError_t e = cudaEventCreateWithFlags(ev, cudaEventDisableTiming);
        if (e != cudaSuccess)
            return e;
        *have = true;
        *ev_device = device;
    }
    return cudaEventRecord(*ev, stream);
}

int trestle__cuda_pointer_ordinal(const trestle__ctx_api *a, const void *p, int *device)
{
    unsigned int type = 0, managed = 0;
    int ordinal = -1;
    CUdeviceptr d = (CUdeviceptr)(uintptr_t)p;
    if (!p || a->ptr_attr(&type, CU_POINTER_ATTRIBUTE_MEMORY_TYPE, d) != CUDA_SUCCESS)
        return -1; /* not memory any context knows: host memory */
    if (type != CU_MEMORYTYPE_DEVICE &&
        (a->ptr_attr(&managed, CU_POINTER_ATTRIBUTE_IS_MANAGED, d) != CUDA_SUCCESS || !managed))
        return -1;
    if (a->ptr_attr(&ordinal, CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL, d) != CUDA_SUCCESS)
        return -1;
    *device = ordinal;
    return 0;
}

#endif /* TRESTLE_HAVE_CUDA */
