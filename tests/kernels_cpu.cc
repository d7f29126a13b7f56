/*
 * kernels_cpu.cc - the real kernels/scatter.cu and kernels/cast.cu,
 * compiled by the host C++ compiler on the CUDA shim in
 * tests/kernel_shim/cuda_runtime.h, for tests/test_kernels_cpu.c.
 *
 * The .cu files are included, not copied, so the test always runs the
 * kernels as they are. They sit inside a namespace and their two extern
 * "C" launchers are renamed (kernels_cpu.h): a CUDA build links the real
 * kernels into the same test, and the kernels' templates (scatter_kernel<16>
 * and the like, weak symbols) must not merge with nvcc's host stubs of the
 * same names, or a "CPU" launch could end up on the GPU and the other way
 * round.
 */
#include <stdint.h>

#include <cuda_runtime.h> /* the shim: tests/kernel_shim is first on this file's path */

#include "kernel_launch.cuh"
#include "kernels_cpu.h"
#include "trestle.h"
#include "trestle_kernels.h"

namespace trestle_kshim {
thread_local uint3 thread_idx, block_idx;
thread_local dim3 block_dim, grid_dim;
thread_local cudaError_t last_error = cudaSuccess;
thread_local uint64_t launches;
}

#define trestle__k_scatter trestle__kcpu_scatter
#define trestle__k_convert trestle__kcpu_convert

namespace trestle_kcpu {
#include "scatter.cu"
#include "cast.cu"
}

extern "C" uint64_t trestle__kcpu_launches(void)
{
    return trestle_kshim::launches;
}

extern "C" void trestle__kcpu_set_last_error(int e)
{
    trestle_kshim::last_error = (cudaError_t)e;
}

extern "C" int trestle__kcpu_last_error(void)
{
    return (int)trestle_kshim::last_error;
}
