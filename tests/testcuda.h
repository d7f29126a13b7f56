/*
 * testcuda.h - for the suites that call the CUDA runtime themselves (the
 * mock's, in TRESTLE_CUDA_MOCK builds): CUDA_OK asserts a call succeeded,
 * naming the call and the runtime's text for its error; tc_ctx_current()
 * and tc_ctx_set() are the driver's cuCtxGetCurrent and cuCtxSetCurrent,
 * reached through the runtime as an embedding runtime reaches them, so
 * that a suite sees whose context (or none) a thread is left with.
 */
#ifndef TRESTLE_TESTCUDA_H
#define TRESTLE_TESTCUDA_H

#include <criterion/criterion.h>
#include <cuda.h> /* CUcontext, CUresult: types of the driver entry points only */
#include <cuda_runtime_api.h>
#include <stdint.h>

#define CUDA_OK(call)                                                                              \
    do {                                                                                           \
        cudaError_t e_ = (call);                                                                   \
        cr_assert_eq(e_, cudaSuccess, "%s: %s", #call, cudaGetErrorString(e_));                    \
    } while (0)

static inline CUcontext tc_ctx_current(void)
{
    void *fn = NULL;
    CUcontext c = (CUcontext)(uintptr_t)1;
    CUDA_OK(cudaGetDriverEntryPointByVersion("cuCtxGetCurrent", &fn, 12000, cudaEnableDefault,
                                             NULL));
    cr_assert_eq(((CUresult(CUDAAPI *)(CUcontext *))fn)(&c), CUDA_SUCCESS);
    return c;
}

static inline void tc_ctx_set(CUcontext c)
{
    void *fn = NULL;
    CUDA_OK(cudaGetDriverEntryPointByVersion("cuCtxSetCurrent", &fn, 12000, cudaEnableDefault,
                                             NULL));
    cr_assert_eq(((CUresult(CUDAAPI *)(CUcontext))fn)(c), CUDA_SUCCESS);
}

#endif /* TRESTLE_TESTCUDA_H */
