/*
 * checked.h - overflow-checked arithmetic for numbers that come from files.
 *
 * Every multiply or add on a value read from an index or data file goes
 * through these, so a hostile shape or offset becomes an error, never a
 * wrapped size (gguf's and zstd's rule).
 */
#ifndef TRESTLE_CHECKED_H
#define TRESTLE_CHECKED_H

#include <stdbool.h>
#include <stdint.h>

/* *out = a + b; false on overflow (then *out is unspecified). */
static inline bool tr_add_u64(uint64_t a, uint64_t b, uint64_t *out)
{
    return !__builtin_add_overflow(a, b, out);
}

static inline bool tr_mul_u64(uint64_t a, uint64_t b, uint64_t *out)
{
    return !__builtin_mul_overflow(a, b, out);
}

static inline bool tr_mul_i64(int64_t a, int64_t b, int64_t *out)
{
    return !__builtin_mul_overflow(a, b, out);
}

static inline bool tr_add_i64(int64_t a, int64_t b, int64_t *out)
{
    return !__builtin_add_overflow(a, b, out);
}

/* Element count of a shape; false if any dim < 0 or the product overflows int64. */
static inline bool tr_num_elements(int rank, const int64_t *dims, int64_t *out)
{
    int64_t n = 1;
    for (int i = 0; i < rank; i++) {
        if (dims[i] < 0 || !tr_mul_i64(n, dims[i], &n))
            return false;
    }
    *out = n;
    return true;
}

#endif /* TRESTLE_CHECKED_H */
