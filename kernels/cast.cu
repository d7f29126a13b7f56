/*
 * cast.cu - dtype conversion on load, on the device: float32 ->
 * bfloat16, float32 -> float16, float16 -> float32, bfloat16 -> float32.
 * The device twin of engine/common/convert.c.
 *
 * The CUDA copier lands a stored tensor's bytes in device memory (or
 * reads them from pinned staging) and converts them here when the caller
 * asked for another float type than the checkpoint stores. The rounding
 * is done by the scalar functions of trestle_kernels.h, the same ones the
 * CPU twin inlines, so both produce the same bits by construction;
 * nothing here rounds on its own.
 *
 * The kernel is memory-bound: each thread converts 8 elements with 16-byte
 * loads and stores when both pointers are 16-byte aligned (the usual case
 * for engine destinations and staging chunks), and falls back to one
 * element per load when they are only element-aligned, and to byte loads
 * when they are not even that (tensors in a shard file have no alignment
 * guarantee). The branch-free bit manipulation costs far less than the
 * memory traffic, so the subnormal path is computed for every element
 * rather than skipped per block as on the CPU.
 */
#include <cuda_runtime.h>
#include <stdint.h>

#include "kernel_launch.cuh"
#include "trestle.h"
#include "trestle_kernels.h"

#define CONVERT_THREADS 256       /* threads per block */
#define CONVERT_PER_THREAD 8      /* elements per thread per pass in the vector mode */
#define CONVERT_MAX_BLOCKS 32768  /* grid cap; the grid-stride loop does the rest */

enum pair { F32_BF16, F32_F16, F16_F32, BF16_F32 };
enum mode { VEC, ELEM, BYTES };

/* The one conversion of each pair; every input and output is the bit
 * pattern in a uint32_t. */
template <int P> __device__ __forceinline__ uint32_t cvt(uint32_t x);
template <> __device__ __forceinline__ uint32_t cvt<F32_BF16>(uint32_t x)
{
    return trestle__k_f32_to_bf16(x);
}
template <> __device__ __forceinline__ uint32_t cvt<F32_F16>(uint32_t x)
{
    return trestle__k_f32_to_f16(x);
}
template <> __device__ __forceinline__ uint32_t cvt<F16_F32>(uint32_t x)
{
    return trestle__k_f16_to_f32(x);
}
template <> __device__ __forceinline__ uint32_t cvt<BF16_F32>(uint32_t x)
{
    return trestle__k_bf16_to_f32(x);
}

/* Source and destination element sizes of a pair. */
template <int P> struct sizes {
    static const int in = (P == F32_BF16 || P == F32_F16) ? 4 : 2;
    static const int out = (P == F32_BF16 || P == F32_F16) ? 2 : 4;
};

/* One element at index i, through loads and stores of the element's own
 * width (ELEM) or of single bytes (BYTES, any alignment; little-endian as
 * the stored tensors and every CUDA host are). */
template <int P, int M>
__device__ __forceinline__ void convert_one(uint8_t *__restrict__ dst,
                                            const uint8_t *__restrict__ src, uint64_t i)
{
    const int IN = sizes<P>::in, OUT = sizes<P>::out;
    uint32_t x = 0, y;
    if (M == BYTES) {
        for (int b = 0; b < IN; b++)
            x |= (uint32_t)src[i * IN + b] << (8 * b);
        y = cvt<P>(x);
        for (int b = 0; b < OUT; b++)
            dst[i * OUT + b] = (uint8_t)(y >> (8 * b));
        return;
    }
    if (IN == 4)
        x = reinterpret_cast<const uint32_t *>(src)[i];
    else
        x = reinterpret_cast<const uint16_t *>(src)[i];
    y = cvt<P>(x);
    if (OUT == 4)
        reinterpret_cast<uint32_t *>(dst)[i] = y;
    else
        reinterpret_cast<uint16_t *>(dst)[i] = (uint16_t)y;
}

/* Eight elements starting at 8 * g, with 16-byte loads and stores. */
template <int P>
__device__ __forceinline__ void convert_eight(uint8_t *__restrict__ dst,
                                              const uint8_t *__restrict__ src, uint64_t g)
{
    uint32_t x[CONVERT_PER_THREAD], y[CONVERT_PER_THREAD];
    if (sizes<P>::in == 4) {
        const uint4 *s = reinterpret_cast<const uint4 *>(src) + 2 * g;
        uint4 a = s[0], b = s[1];
        x[0] = a.x, x[1] = a.y, x[2] = a.z, x[3] = a.w;
        x[4] = b.x, x[5] = b.y, x[6] = b.z, x[7] = b.w;
    } else {
        uint4 a = reinterpret_cast<const uint4 *>(src)[g];
        x[0] = a.x & 0xFFFFu, x[1] = a.x >> 16, x[2] = a.y & 0xFFFFu, x[3] = a.y >> 16;
        x[4] = a.z & 0xFFFFu, x[5] = a.z >> 16, x[6] = a.w & 0xFFFFu, x[7] = a.w >> 16;
    }
#pragma unroll
    for (int j = 0; j < CONVERT_PER_THREAD; j++)
        y[j] = cvt<P>(x[j]);
    if (sizes<P>::out == 4) {
        uint4 *d = reinterpret_cast<uint4 *>(dst) + 2 * g;
        d[0] = make_uint4(y[0], y[1], y[2], y[3]);
        d[1] = make_uint4(y[4], y[5], y[6], y[7]);
    } else {
        reinterpret_cast<uint4 *>(dst)[g] =
            make_uint4(y[0] | y[1] << 16, y[2] | y[3] << 16, y[4] | y[5] << 16, y[6] | y[7] << 16);
    }
}

template <int P, int M>
__global__ void __launch_bounds__(CONVERT_THREADS)
    convert_kernel(uint8_t *__restrict__ dst, const uint8_t *__restrict__ src, uint64_t count)
{
    const uint64_t stride = (uint64_t)gridDim.x * blockDim.x;
    const uint64_t t = (uint64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (M == VEC) {
        uint64_t groups = count / CONVERT_PER_THREAD;
        for (uint64_t g = t; g < groups; g += stride)
            convert_eight<P>(dst, src, g);
        /* The last count % 8 elements, one per thread of the first few. */
        uint64_t rest = groups * CONVERT_PER_THREAD + t;
        if (rest < count)
            convert_one<P, ELEM>(dst, src, rest);
    } else {
        for (uint64_t i = t; i < count; i += stride)
            convert_one<P, M>(dst, src, i);
    }
}

/* Launch the kernel for pair P in the widest mode the alignment allows. */
template <int P>
static cudaError_t launch(uint8_t *dst, const uint8_t *src, uint64_t count, cudaStream_t s)
{
    const uintptr_t ds = (uintptr_t)dst, ss = (uintptr_t)src;
    int m = ((ds | ss) & 15) == 0                                       ? VEC
            : (ss % sizes<P>::in == 0 && ds % sizes<P>::out == 0) ? ELEM
                                                                    : BYTES;
    uint64_t work = m == VEC ? count / CONVERT_PER_THREAD + CONVERT_PER_THREAD : count;
    uint64_t blocks = (work + CONVERT_THREADS - 1) / CONVERT_THREADS;
    if (blocks > CONVERT_MAX_BLOCKS)
        blocks = CONVERT_MAX_BLOCKS;
    dim3 grid((unsigned)blocks), block(CONVERT_THREADS);
    if (m == VEC)
        return TRESTLE__K_LAUNCH(grid, block, s, convert_kernel<P, VEC>)(dst, src, count);
    if (m == ELEM)
        return TRESTLE__K_LAUNCH(grid, block, s, convert_kernel<P, ELEM>)(dst, src, count);
    return TRESTLE__K_LAUNCH(grid, block, s, convert_kernel<P, BYTES>)(dst, src, count);
}

extern "C" int trestle__k_convert(void *dst, int dst_dtype, const void *src, int src_dtype,
                                  uint64_t count, void *stream)
{
    uint8_t *d = static_cast<uint8_t *>(dst);
    const uint8_t *sp = static_cast<const uint8_t *>(src);
    cudaStream_t s = static_cast<cudaStream_t>(stream);
    if (!trestle__convert_supported(dst_dtype, src_dtype))
        return (int)cudaErrorInvalidValue;
    if (count == 0)
        return 0;
    if (src_dtype == TRESTLE_DT_FLOAT && dst_dtype == TRESTLE_DT_BFLOAT16)
        return (int)launch<F32_BF16>(d, sp, count, s);
    if (src_dtype == TRESTLE_DT_FLOAT)
        return (int)launch<F32_F16>(d, sp, count, s);
    if (src_dtype == TRESTLE_DT_HALF)
        return (int)launch<F16_F32>(d, sp, count, s);
    return (int)launch<BF16_F32>(d, sp, count, s);
}
