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
#define TRESTLE__K_LAUNCH(grid, block, stream, ...) __VA_ARGS__<<<(grid), (block), 0, (stream)>>>
#endif

#endif /* TRESTLE_KERNEL_LAUNCH_CUH */
