/*
 * cuda_runtime.h (test shim) - just enough of CUDA for a plain C++
 * compiler to build the real kernels (kernels/scatter.cu, kernels/cast.cu)
 * and run them on the CPU, for tests/test_kernels_cpu.c. It is first on
 * the include path of tests/kernels_cpu.cc only, so the kernels' own
 * `#include <cuda_runtime.h>` lands here; nothing else sees it.
 *
 * Execution model. A launch (TRESTLE__K_LAUNCH, see
 * kernels/kernel_launch.cuh) checks the configuration as the driver would
 * and returns its result (cudaErrorInvalidConfiguration), as
 * cudaLaunchKernelEx does, leaving the thread's last error alone, and
 * then runs the kernel once per thread: every block in turn, and in
 * each block every thread in turn, with threadIdx/blockIdx/blockDim/gridDim
 * set as thread-locals. Serial threads are only a faithful model of
 * kernels whose threads never wait for each other: so __syncthreads,
 * __shared__, warp shuffles and atomics are deliberately left undefined,
 * and a kernel that starts using one fails to build here rather than
 * passing a test that cannot see its races. (Give such a kernel a phased
 * runner first: threads of a block run up to each barrier, then on.)
 *
 * Types keep their device alignment (uint4 is 16-byte aligned), so a
 * vector access at an address the GPU would fault on is misaligned here
 * too, which UBSan reports in the scripts/check.sh asan build.
 */
#ifndef TRESTLE_KERNEL_SHIM_CUDA_RUNTIME_H
#define TRESTLE_KERNEL_SHIM_CUDA_RUNTIME_H

#ifndef __cplusplus
#error "the kernel shim is C++: it builds kernels/*.cu with a host compiler"
#endif

#include <stddef.h>
#include <stdint.h>

#include "kernels_cpu.h"

/* ---- qualifiers: host code is all there is ---- */
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
/* __restrict__ is a GNU C++ keyword already. */

/* ---- types ---- */
typedef enum cudaError {
    cudaSuccess = TRESTLE__KCPU_SUCCESS,
    cudaErrorInvalidValue = TRESTLE__KCPU_INVALID_VALUE,
    cudaErrorInvalidConfiguration = TRESTLE__KCPU_INVALID_CONFIGURATION,
} cudaError_t;

typedef struct CUstream_st *cudaStream_t;

struct dim3 {
    unsigned x, y, z;
    dim3(unsigned vx = 1, unsigned vy = 1, unsigned vz = 1) : x(vx), y(vy), z(vz) {}
};
struct uint3 { unsigned x, y, z; };
struct alignas(8) uint2 { unsigned x, y; };
struct alignas(16) uint4 { unsigned x, y, z, w; };

static inline uint4 make_uint4(unsigned x, unsigned y, unsigned z, unsigned w)
{
    uint4 v = { x, y, z, w };
    return v;
}

/* ---- the thread being run ---- */
namespace trestle_kshim {
extern thread_local uint3 thread_idx, block_idx; /* this thread, this block */
extern thread_local dim3 block_dim, grid_dim;    /* the launch's configuration */
extern thread_local cudaError_t last_error;      /* what cudaGetLastError returns */
extern thread_local uint64_t launches;           /* kernels run, for the tests */
}
#define threadIdx (::trestle_kshim::thread_idx)
#define blockIdx (::trestle_kshim::block_idx)
#define blockDim (::trestle_kshim::block_dim)
#define gridDim (::trestle_kshim::grid_dim)

static inline cudaError_t cudaGetLastError(void)
{
    cudaError_t e = trestle_kshim::last_error;
    trestle_kshim::last_error = cudaSuccess;
    return e;
}

/* ---- launches ---- */
namespace trestle_kshim {

/* The limits every architecture we build for (sm_80..sm_90) has. */
static inline bool config_ok(dim3 g, dim3 b)
{
    return g.x >= 1 && g.y >= 1 && g.z >= 1 && g.x <= 0x7FFFFFFFu && g.y <= 65535 &&
           g.z <= 65535 && b.x >= 1 && b.y >= 1 && b.z >= 1 && b.z <= 64 &&
           (uint64_t)b.x * b.y * b.z <= 1024;
}

/* A kernel bound to its configuration; calling it with the arguments runs
 * the grid, as kernel<<<grid, block, 0, stream>>>(args...) enqueues it. */
template <typename... P> struct launcher {
    void (*kernel)(P...);
    dim3 grid, block;

    template <typename... A> cudaError_t operator()(A &&...args) const
    {
        if (!config_ok(grid, block))
            return cudaErrorInvalidConfiguration;
        launches++;
        grid_dim = grid;
        block_dim = block;
        for (unsigned bz = 0; bz < grid.z; bz++)
            for (unsigned by = 0; by < grid.y; by++)
                for (unsigned bx = 0; bx < grid.x; bx++)
                    for (unsigned tz = 0; tz < block.z; tz++)
                        for (unsigned ty = 0; ty < block.y; ty++)
                            for (unsigned tx = 0; tx < block.x; tx++) {
                                block_idx = uint3{ bx, by, bz };
                                thread_idx = uint3{ tx, ty, tz };
                                kernel(args...); /* by value, as a launch copies them */
                            }
        return cudaSuccess;
    }
};

template <typename... P>
launcher<P...> launch(dim3 grid, dim3 block, cudaStream_t stream, void (*kernel)(P...))
{
    (void)stream; /* the CPU runs each launch to completion: every stream is in order */
    return launcher<P...>{ kernel, grid, block };
}

} /* namespace trestle_kshim */

#define TRESTLE__K_LAUNCH(grid, block, stream, ...) \
    ::trestle_kshim::launch((grid), (block), (stream), __VA_ARGS__)

#endif /* TRESTLE_KERNEL_SHIM_CUDA_RUNTIME_H */
