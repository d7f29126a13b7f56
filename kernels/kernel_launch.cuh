/*
 * kernel_launch.cuh - the one spelling of a kernel launch in the
 * kernels/ .cu files:
 *
 *     TRESTLE__K_LAUNCH(grid, block, stream, kernel<T>)(args...);
 *
 * is kernel<T><<<grid, block, 0, stream>>>(args...) under nvcc. The
 * triple-chevron syntax is not C++, so spelling every launch through this
 * macro is what lets tests/test_kernels_cpu.c build the real kernels with
 * a plain C++ compiler: its shim (tests/kernel_shim/cuda_runtime.h)
 * defines TRESTLE__K_LAUNCH first, as a call that runs every block and
 * every thread of the grid in turn on the CPU. The kernel comes last and
 * variadic because a template-id such as convert_kernel<P, VEC> holds a
 * comma. No dynamic shared memory: no kernel here uses any.
 */
#ifndef TRESTLE_KERNEL_LAUNCH_CUH
#define TRESTLE_KERNEL_LAUNCH_CUH

#ifndef TRESTLE__K_LAUNCH
#include <utility>

/* A kernel bound to its configuration; called with the arguments, it is
 * launched through cudaLaunchKernelEx, whose result is this launch's own:
 * cudaGetLastError() after a <<<>>> launch would also report an earlier
 * error of the thread (a ready callback's, on a worker thread) and, by
 * reading it, clear the caller's. */
template <typename... P> struct trestle__k_launcher {
    void (*kernel)(P...);
    cudaLaunchConfig_t config;

    template <typename... A> cudaError_t operator()(A &&...args) const
    {
        return cudaLaunchKernelEx(&config, kernel, std::forward<A>(args)...);
    }
};

template <typename... P>
static inline trestle__k_launcher<P...> trestle__k_launch(dim3 grid, dim3 block,
                                                          cudaStream_t stream, void (*kernel)(P...))
{
    trestle__k_launcher<P...> l;
    l.kernel = kernel;
    l.config = cudaLaunchConfig_t();
    l.config.gridDim = grid;
    l.config.blockDim = block;
    l.config.dynamicSmemBytes = 0;
    l.config.stream = stream;
    l.config.attrs = nullptr;
    l.config.numAttrs = 0;
    return l;
}

#define TRESTLE__K_LAUNCH(grid, block, stream, ...) \
    trestle__k_launch((grid), (block), (stream), __VA_ARGS__)
#endif

#endif /* TRESTLE_KERNEL_LAUNCH_CUH */
