/*
 * testcuda.h - for the suites that call the CUDA runtime themselves (the
 * mock's, in TRESTLE_CUDA_MOCK builds): CUDA_OK asserts a call succeeded,
 * naming the call and the runtime's text for its error.
 */
#ifndef TRESTLE_TESTCUDA_H
#define TRESTLE_TESTCUDA_H

#include <criterion/criterion.h>
#include <cuda_runtime_api.h>

#define CUDA_OK(call)                                                                              \
    do {                                                                                           \
        cudaError_t e_ = (call);                                                                   \
        cr_assert_eq(e_, cudaSuccess, "%s: %s", #call, cudaGetErrorString(e_));                    \
    } while (0)

#endif /* TRESTLE_TESTCUDA_H */
