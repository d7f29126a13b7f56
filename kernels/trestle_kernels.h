/*
 * trestle_kernels.h - the C boundary of the CUDA kernels, and their CPU
 * twins.
 *
 * This is the only header host C sees from kernels/. It uses plain C types
 * only: a CUDA stream travels as `void *` (a cudaStream_t; NULL is the
 * legacy default stream), and CUDA errors come back as the int value of a
 * cudaError_t. It compiles as C11 under gcc (engine/, tests/) and as C++
 * under nvcc (the kernels/ .cu files).
 *
 * Two kernel families sit behind it, one per .cu file:
 *   - kernels/scatter.cu: the N-d region copy of engine/restore/copy_host.c
 *     (trestle__region_copy_range) on the device, out of the copier's
 *     device window (or, without one, pinned staging by its device
 *     address);
 *   - kernels/cast.cu: dtype conversion on load (float32 <-> bfloat16,
 *     float32 <-> float16), whose CPU twin is engine/common/convert.c.
 *
 * The scalar conversions at the end of this header are the single
 * definition of the rounding rules: engine/common/convert.c and kernels/cast.cu
 * both inline them, so the CPU and GPU results are bit-identical by
 * construction rather than by testing alone.
 *
 * Launchers take a stream, never synchronise, check the launch and return
 * 0 or a cudaError_t value; they exist only in CUDA builds
 * (TRESTLE_HAVE_CUDA). The CPU twins exist in every build.
 */
#ifndef TRESTLE_KERNELS_H
#define TRESTLE_KERNELS_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TRESTLE__K_MAX_RANK 32 /* == TRESTLE_MAX_SLICE_RANK (engine/format/slice.h), checked in copy_host.c */

/*
 * Byte layout of a region copy (engine/plan/plan.h trestle__region): the cut
 * seen as `nruns` contiguous runs of `run` bytes, the outer `k` dims
 * indexing them row-major, with the byte strides of those dims in the
 * source block and in the destination block. Runs lie in increasing
 * source (and destination) order. Built on the CPU by
 * trestle__region_layout() (engine/restore/copy.h); plain data, so it can be
 * passed to a kernel by value.
 */
typedef struct trestle__k_layout {
    int k;                               /* outer dims that index runs (0: one run) */
    uint64_t run;                        /* bytes per contiguous run */
    uint64_t nruns;                      /* runs in the cut */
    uint64_t base_s, base_d;             /* byte offset of the cut's first element */
    uint64_t total_s;                    /* bytes of the whole source block */
    uint64_t cnt[TRESTLE__K_MAX_RANK];   /* cut length of each outer dim */
    uint64_t sstr[TRESTLE__K_MAX_RANK];  /* source byte stride of each dim */
    uint64_t dstr[TRESTLE__K_MAX_RANK];  /* destination byte stride of each dim */
} trestle__k_layout;

/* ---- device launchers (CUDA builds only) ---- */

/*
 * The device twin of trestle__region_copy_range(dst, r, src, lo, n): `src`
 * holds bytes [lo, lo + n) of the source block described by `l`; copy
 * those of them that belong to runs to their places in `dst`, the
 * destination block (device memory). `src` is a device address. The CUDA
 * copier (engine/restore/copy_cuda.c) passes its per-worker device window,
 * into which it has DMA'd the staging bytes. Only when no window can be
 * allocated does it pass pinned staging memory, by the device address
 * cudaHostGetDevicePointer() gives for it (the host address only where the
 * device says so), which the kernel then reads over PCIe.
 * Any alignment and any run size work; 16-byte copies are used whenever
 * the source and destination addresses agree modulo 16.
 *
 * `l` is read on the CPU before the call returns (the caller may reuse it
 * at once); `src` and `dst` must stay valid until the work on `stream`
 * (a cudaStream_t, NULL for the legacy default stream) is done. Enqueues
 * at most one kernel; never synchronises. Returns 0, or the cudaError_t of
 * a failed launch, taken from the launch's own cudaLaunchKernelEx() result
 * (kernels/kernel_launch.cuh): cudaGetLastError() is never called, so an
 * earlier error of the calling thread is neither reported nor cleared.
 */
int trestle__k_scatter(void *dst, const void *src, const trestle__k_layout *l, uint64_t lo,
                       uint64_t n, void *stream);

/*
 * The device twin of trestle__convert(): convert `count` elements of
 * TensorFlow dtype `src_dtype` at `src` into `dst_dtype` at `dst`, both
 * device addresses (the copier's `src` is its device window), any
 * alignment, not overlapping. Asynchronous on `stream` as above. Returns 0,
 * the cudaError_t of a failed launch (its own result, as above), or
 * cudaErrorInvalidValue when trestle__convert_supported(dst_dtype,
 * src_dtype) is 0 (nothing is enqueued then).
 */
int trestle__k_convert(void *dst, int dst_dtype, const void *src, int src_dtype,
                       uint64_t count, void *stream);

/* ---- CPU twins (engine/common/convert.c, every build) ---- */

/*
 * 1 when trestle__convert() and trestle__k_convert() convert `src_dtype`
 * to `dst_dtype`, else 0. The pairs are float32 -> bfloat16,
 * float32 -> float16, float16 -> float32 and bfloat16 -> float32 (TF dtype
 * numbers: TRESTLE_DT_FLOAT, TRESTLE_DT_HALF, TRESTLE_DT_BFLOAT16). A
 * dtype to itself is not a conversion and gives 0.
 */
int trestle__convert_supported(int dst_dtype, int src_dtype);

/*
 * Convert `count` elements from `src` to `dst` (host memory, any
 * alignment, not overlapping). Rounding is to nearest, ties to even.
 * float32 -> bfloat16: NaN becomes 0x7FC0 with the input's sign (as
 * Eigen/TensorFlow), infinities stay. float32 -> float16: overflow gives
 * +-Inf, subnormals are rounded correctly, NaN becomes 0x7E00 with the
 * input's sign. float16/bfloat16 -> float32 are exact (NaN payloads kept).
 * Does nothing for an unsupported pair: check trestle__convert_supported()
 * first. Thread-safe (no state).
 */
void trestle__convert(void *dst, int dst_dtype, const void *src, int src_dtype, uint64_t count);

#ifdef __cplusplus
}
#endif

/* ---- scalar conversions shared by the CPU and GPU twins ---- */

/*
 * Integer bit manipulation only, written as selects without branches or
 * variable shifts: gcc then vectorises the CPU loops with baseline SSE2
 * (which has no per-lane shift and, under the default -ftrapping-math,
 * will not if-convert float operations), warps never diverge, and the
 * result cannot depend on a floating-point environment (rounding mode,
 * flush-to-zero) on either side. Not intrinsics: CUDA's
 * __float2bfloat16/__float2half turn every NaN into 0x7FFF and F16C's
 * vcvtps2ph keeps NaN payload bits, where TensorFlow's rule wants
 * 0x7FC0/0x7E00 with the input's sign; each twin would then need its own
 * NaN fix-up, and two fix-ups can drift apart.
 *
 * Narrowing conversions return the 16-bit result in a uint32_t: gcc's
 * vectoriser gives up on a loop that mixes 32-bit work with a 16-bit
 * result, so engine/common/convert.c narrows in a separate pass.
 */
#if defined(__CUDACC__)
#define TRESTLE__K_INLINE static __host__ __device__ __forceinline__
#else
#define TRESTLE__K_INLINE static inline
#endif

/* float32 -> bfloat16: round to nearest even on the top 16 bits; NaN ->
 * 0x7FC0 | sign. Overflow needs no case: the carry walks into the
 * exponent and lands exactly on 0x7F80 (Inf). */
TRESTLE__K_INLINE uint32_t trestle__k_f32_to_bf16(uint32_t u)
{
    uint32_t rounded = (u + 0x7FFFu + ((u >> 16) & 1u)) >> 16;
    uint32_t nan = ((u >> 16) & 0x8000u) | 0x7FC0u;
    return (int32_t)(u & 0x7FFFFFFFu) > 0x7F800000 ? nan : rounded;
}

/*
 * float32 -> float16, round to nearest even, in two parts so that the CPU
 * loop can skip the expensive one for whole blocks (engine/common/convert.c):
 *
 * trestle__k_f32_to_f16_easy() is exact for every input except those
 * trestle__k_f32_to_f16_hard() flags, |x| in (2^-25, 2^-14):
 *   normal:  |x| in [2^-14, 65536): re-bias the exponent (127 -> 15, i.e.
 *            subtract 112 << 23) and round off 13 mantissa bits; a carry
 *            out of the mantissa bumps the exponent, which also turns
 *            [65520, 65536) into 0x7C00 (Inf);
 *   tiny:    |x| <= 2^-25 rounds to 0 (2^-25 itself is the tie between 0
 *            and the smallest subnormal 2^-24, and 0 is even);
 *   special: |x| >= 65536, finite or Inf -> Inf; NaN -> 0x7E00.
 *
 * trestle__k_f32_to_f16_sub() handles the hard range, results that are
 * float16 subnormals (or round up to the smallest normal): the count of
 * 2^-24 units is the 24-bit significand x shifted right by 14 + t, where
 * t = 112 - exponent (0..11 in this range, clamped so that other lanes
 * never shift by an undefined amount), rounded. The shift by t is four
 * fixed shifts by 8, 4, 2, 1, each collecting the bits it drops into a
 * sticky bit folded into bit 0; bit 0 lies below the rounding bit (bit
 * 13), so the final rounding shift by 14 still sees whether the dropped
 * part was zero, below, at or above one half.
 */
TRESTLE__K_INLINE uint32_t trestle__k_f32_to_f16_easy(uint32_t u)
{
    uint32_t sign = (u >> 16) & 0x8000u;
    uint32_t a = u & 0x7FFFFFFFu;
    uint32_t o = (a - 0x38000000u + 0xFFFu + ((a >> 13) & 1u)) >> 13;
    o = (int32_t)a <= 0x33000000 ? 0u : o;
    o = (int32_t)a >= 0x47800000 ? 0x7C00u : o;
    o = (int32_t)a > 0x7F800000 ? 0x7E00u : o;
    return o | sign;
}

TRESTLE__K_INLINE uint32_t trestle__k_f32_to_f16_hard(uint32_t u)
{
    int32_t a = (int32_t)(u & 0x7FFFFFFFu);
    return a > 0x33000000 && a < 0x38800000;
}

TRESTLE__K_INLINE uint32_t trestle__k_f32_to_f16_sub(uint32_t u)
{
    uint32_t sign = (u >> 16) & 0x8000u;
    int32_t t = 112 - (int32_t)((u & 0x7FFFFFFFu) >> 23);
    t = t < 0 ? 0 : t;
    t = t > 11 ? 11 : t;
    uint32_t x = (u & 0x7FFFFFu) | 0x800000u, sticky = 0;
    sticky |= (t & 8) ? x & 0xFFu : 0u;
    x = (t & 8) ? x >> 8 : x;
    sticky |= (t & 4) ? x & 0xFu : 0u;
    x = (t & 4) ? x >> 4 : x;
    sticky |= (t & 2) ? x & 0x3u : 0u;
    x = (t & 2) ? x >> 2 : x;
    sticky |= (t & 1) ? x & 0x1u : 0u;
    x = (t & 1) ? x >> 1 : x;
    x |= sticky != 0;
    return ((x + 0x1FFFu + ((x >> 14) & 1u)) >> 14) | sign;
}

/* float32 -> float16, every input. */
TRESTLE__K_INLINE uint32_t trestle__k_f32_to_f16(uint32_t u)
{
    return trestle__k_f32_to_f16_hard(u) ? trestle__k_f32_to_f16_sub(u)
                                         : trestle__k_f32_to_f16_easy(u);
}

/*
 * float16 -> float32, exact, in the same two parts.
 *
 * trestle__k_f16_to_f32_easy() is exact except for the subnormals
 * trestle__k_f16_to_f32_hard() flags: normal numbers re-bias the exponent
 * (+112); Inf/NaN keep their payload (quiet or signalling) under an
 * all-ones exponent; zeros stay zeros.
 *
 * trestle__k_f16_to_f32_sub() normalises a subnormal m x 2^-24
 * (m = 1..1023) with four fixed conditional shifts (8, 4, 2, 1) that move
 * its leading one to bit 9, lowering the exponent from 112 (the exponent
 * of m = 512) by each shift; the bits below the leading one become the top
 * of the float32 mantissa.
 */
TRESTLE__K_INLINE uint32_t trestle__k_f16_to_f32_easy(uint32_t h)
{
    uint32_t sign = (h & 0x8000u) << 16;
    uint32_t em = h & 0x7FFFu;
    uint32_t exp = em & 0x7C00u;
    uint32_t o = (em << 13) + 0x38000000u;
    o = exp == 0x7C00u ? (em << 13) | 0x7F800000u : o;
    o = exp == 0 ? 0u : o;
    return o | sign;
}

TRESTLE__K_INLINE uint32_t trestle__k_f16_to_f32_hard(uint32_t h)
{
    return (h & 0x7C00u) == 0 && (h & 0x3FFu) != 0;
}

TRESTLE__K_INLINE uint32_t trestle__k_f16_to_f32_sub(uint32_t h)
{
    uint32_t m = h & 0x3FFu, e = 112;
    e = m < 0x4u ? e - 8 : e;
    m = m < 0x4u ? m << 8 : m;
    e = m < 0x40u ? e - 4 : e;
    m = m < 0x40u ? m << 4 : m;
    e = m < 0x100u ? e - 2 : e;
    m = m < 0x100u ? m << 2 : m;
    e = m < 0x200u ? e - 1 : e;
    m = m < 0x200u ? m << 1 : m;
    return ((h & 0x8000u) << 16) | (e << 23) | ((m << 14) & 0x7FFFFFu);
}

/* float16 -> float32, every input. */
TRESTLE__K_INLINE uint32_t trestle__k_f16_to_f32(uint32_t h)
{
    return trestle__k_f16_to_f32_hard(h) ? trestle__k_f16_to_f32_sub(h)
                                         : trestle__k_f16_to_f32_easy(h);
}

/* bfloat16 -> float32, exact: bfloat16 is the top half of a float32. */
TRESTLE__K_INLINE uint32_t trestle__k_bf16_to_f32(uint32_t h)
{
    return (h & 0xFFFFu) << 16;
}

#endif /* TRESTLE_KERNELS_H */
