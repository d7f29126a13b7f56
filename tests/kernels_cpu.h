/*
 * kernels_cpu.h - the real kernel launchers of kernels/scatter.cu and
 * kernels/cast.cu, built by a plain C++ compiler for the CPU
 * (tests/kernels_cpu.cc, through the shim in tests/kernel_shim/): what
 * tests/test_kernels_cpu.c calls.
 *
 * They are trestle__k_scatter and trestle__k_convert (whose contracts in
 * kernels/trestle_kernels.h hold) under other names, so that a CUDA build
 * can link them beside the real ones. A "launch" runs the whole grid
 * before it returns; the stream argument is ignored.
 */
#ifndef TRESTLE_KERNELS_CPU_H
#define TRESTLE_KERNELS_CPU_H

#include <stdint.h>

#include "trestle_kernels.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The cudaError_t values the shim can produce: CUDA's own numbers. */
#define TRESTLE__KCPU_SUCCESS 0
#define TRESTLE__KCPU_INVALID_VALUE 1          /* cudaErrorInvalidValue */
#define TRESTLE__KCPU_INVALID_CONFIGURATION 9  /* cudaErrorInvalidConfiguration */

/* kernels/scatter.cu's trestle__k_scatter, run on the CPU. */
int trestle__kcpu_scatter(void *dst, const void *src, const trestle__k_layout *l, uint64_t lo,
                          uint64_t n, void *stream);

/* kernels/cast.cu's trestle__k_convert, run on the CPU. */
int trestle__kcpu_convert(void *dst, int dst_dtype, const void *src, int src_dtype,
                          uint64_t count, void *stream);

/* Kernels this thread has launched (grids run) so far. */
uint64_t trestle__kcpu_launches(void);

/* The thread's last error (what cudaGetLastError would return and clear),
 * set and read without clearing it. */
void trestle__kcpu_set_last_error(int e);
int trestle__kcpu_last_error(void);

#ifdef __cplusplus
}
#endif

#endif /* TRESTLE_KERNELS_CPU_H */
