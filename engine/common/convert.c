/*
 * convert.c - dtype conversion on load, on the CPU: float32 -> bfloat16,
 * float32 -> float16, float16 -> float32, bfloat16 -> float32. The CPU
 * twin of kernels/cast.cu and its test oracle; on host paths it runs on
 * the restore's worker threads, between the CRC check and the copy, so it
 * has to keep up with memcpy-class bandwidth.
 *
 * The rounding rules live in kernels/trestle_kernels.h as branch-free
 * scalar functions shared with the kernels. This file only feeds them:
 * blocks of BLOCK elements are copied into aligned locals, converted by a
 * loop with a constant trip count, and copied out. That shape is what
 * gcc's -O2 vectoriser (the "very cheap" cost model, which refuses loops
 * that would need a scalar epilogue or alias checks) accepts, and the
 * memcpys make any source or destination alignment legal. The few
 * elements left over go through the same functions one at a time.
 *
 * Owns nothing; no state.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "trestle.h"
#include "trestle_kernels.h"

#define BLOCK 64 /* elements per vectorised block: 256 B of float32, a few cache lines */

/* For pairs whose easy function is exact everywhere. */
static inline uint32_t never(uint32_t x)
{
    (void)x;
    return 0;
}

/*
 * One converter per pair, stamped out by a macro because the four differ
 * only in element types and scalar functions. `dst` and `src` are byte
 * pointers so that unaligned tensors (shards give no alignment guarantee)
 * are fine.
 *
 * Each block is converted by the cheap `easy` function while `hard`
 * notes whether any element needs the subnormal path; only then are those
 * elements redone by `sub`. Subnormal results are rare in real weights
 * (|x| < 6.1e-5 for float16), and the branch-free subnormal code costs
 * five times the rest, so computing it for every element (as the GPU
 * does, where it is free next to memory bandwidth) would make the CPU
 * loop compute-bound. Everything is in uint32_t; the separate loop that
 * stores `mid` into `out` is the narrowing pass that keeps the main loop
 * vectorisable (see trestle_kernels.h).
 */
#define CONVERTER(name, in_t, out_t, easy, hard, sub)                               \
    static void name(uint8_t *restrict dst, const uint8_t *restrict src, uint64_t count) \
    {                                                                               \
        in_t in[BLOCK];                                                             \
        uint32_t mid[BLOCK];                                                        \
        out_t out[BLOCK];                                                           \
        uint64_t i = 0;                                                             \
        for (; count - i >= BLOCK; i += BLOCK) {                                    \
            uint32_t any = 0;                                                       \
            memcpy(in, src + i * sizeof(in_t), sizeof in);                          \
            for (int j = 0; j < BLOCK; j++) {                                       \
                mid[j] = easy(in[j]);                                               \
                any |= hard(in[j]);                                                 \
            }                                                                       \
            if (any)                                                                \
                for (int j = 0; j < BLOCK; j++)                                     \
                    if (hard(in[j]))                                                \
                        mid[j] = sub(in[j]);                                        \
            for (int j = 0; j < BLOCK; j++)                                         \
                out[j] = (out_t)mid[j];                                             \
            memcpy(dst + i * sizeof(out_t), out, sizeof out);                       \
        }                                                                           \
        for (; i < count; i++) {                                                    \
            in_t x;                                                                 \
            out_t y;                                                                \
            memcpy(&x, src + i * sizeof(in_t), sizeof x);                           \
            y = (out_t)(hard(x) ? sub(x) : easy(x));                                \
            memcpy(dst + i * sizeof(out_t), &y, sizeof y);                          \
        }                                                                           \
    }

CONVERTER(f32_to_bf16, uint32_t, uint16_t, trestle__k_f32_to_bf16, never, never)
CONVERTER(f32_to_f16, uint32_t, uint16_t, trestle__k_f32_to_f16_easy, trestle__k_f32_to_f16_hard,
          trestle__k_f32_to_f16_sub)
CONVERTER(f16_to_f32, uint16_t, uint32_t, trestle__k_f16_to_f32_easy, trestle__k_f16_to_f32_hard,
          trestle__k_f16_to_f32_sub)
CONVERTER(bf16_to_f32, uint16_t, uint32_t, trestle__k_bf16_to_f32, never, never)

#undef CONVERTER

typedef void (*converter)(uint8_t *restrict, const uint8_t *restrict, uint64_t);

/* The converter for a pair, or NULL when the pair is not supported. */
static converter pick(int dst_dtype, int src_dtype)
{
    if (src_dtype == TRESTLE_DT_FLOAT && dst_dtype == TRESTLE_DT_BFLOAT16)
        return f32_to_bf16;
    if (src_dtype == TRESTLE_DT_FLOAT && dst_dtype == TRESTLE_DT_HALF)
        return f32_to_f16;
    if (src_dtype == TRESTLE_DT_HALF && dst_dtype == TRESTLE_DT_FLOAT)
        return f16_to_f32;
    if (src_dtype == TRESTLE_DT_BFLOAT16 && dst_dtype == TRESTLE_DT_FLOAT)
        return bf16_to_f32;
    return NULL;
}

int trestle__convert_supported(int dst_dtype, int src_dtype)
{
    return pick(dst_dtype, src_dtype) != NULL;
}

void trestle__convert(void *dst, int dst_dtype, const void *src, int src_dtype, uint64_t count)
{
    converter fn = pick(dst_dtype, src_dtype);
    if (fn)
        fn(dst, src, count);
}
