/*
 * testcuda.h - for the suites that call the CUDA runtime themselves (the
 * mock's, in TRESTLE_CUDA_MOCK builds): CUDA_OK asserts a call succeeded,
 * naming the call and the runtime's text for its error; tc_ctx_current()
 * and tc_ctx_set() are the driver's cuCtxGetCurrent and cuCtxSetCurrent,
 * reached through the runtime as an embedding runtime reaches them, so
 * that a suite sees whose context (or none) a thread is left with;
 * tc_same_bytes() compares a device restore with a host one, op by op.
 */
#ifndef TRESTLE_TESTCUDA_H
#define TRESTLE_TESTCUDA_H

#include <criterion/criterion.h>
#include <cuda.h> /* CUcontext, CUresult: types of the driver entry points only */
#include <cuda_runtime_api.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "trestle.h"

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

/* Every op of plan d (restored onto a device) holds the bytes of the same
 * op of plan h (restored to host memory), read back through the API. */
static inline void tc_same_bytes(trestle_plan *h, trestle_plan *d)
{
    cr_assert_eq(trestle_plan_op_count(h), trestle_plan_op_count(d));
    for (size_t i = 0; i < trestle_plan_op_count(d); i++) {
        trestle_plan_op_info hi, di;
        trestle_error err;
        cr_assert_eq(trestle_plan_get_op(h, i, &hi), TRESTLE_OK);
        cr_assert_eq(trestle_plan_get_op(d, i, &di), TRESTLE_OK);
        uint8_t *back = malloc(di.bytes ? di.bytes : 1);
        cr_assert_eq(trestle_plan_read_op(d, i, back, di.bytes, &err), TRESTLE_OK, "%s",
                     err.message);
        cr_assert_eq(memcmp(back, hi.data, di.bytes), 0, "op %zu (%s) differs", i, di.name);
        free(back);
    }
}

#endif /* TRESTLE_TESTCUDA_H */
