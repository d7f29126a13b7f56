/*
 * crc32c.h - CRC-32C (Castagnoli) as TensorFlow uses it: finished values,
 * incremental extension, TF's mask/unmask, and combination of the CRCs of
 * adjacent pieces so a tensor split over chunks is checked without
 * re-reading it.
 */
#ifndef TRESTLE_CRC32C_H
#define TRESTLE_CRC32C_H

#include <stddef.h>
#include <stdint.h>

#define TRESTLE_CRC_MASK_DELTA 0xa282ead8u /* TF's kMaskDelta */

/* crc32c(bytes): check value crc32c("123456789") == 0xe3069283. */
uint32_t trestle__crc32c(const void *p, size_t n);

/* CRC of A||B given crc = CRC(A); extend(0, B) == crc32c(B). */
uint32_t trestle__crc32c_extend(uint32_t crc, const void *p, size_t n);

/* CRC of A||B from crc_a = CRC(A), crc_b = CRC(B) and len_b = |B|. */
uint32_t trestle__crc32c_combine(uint32_t crc_a, uint32_t crc_b, uint64_t len_b);

/*
 * The register form, for CRCs of tensors read in parts by different
 * processes (tensor-parallel partial reads): raw(M) is the register after
 * M from init 0 with no final xor, which is linear, so
 *     crc32c(T) = (XOR over runs R of T: shift(raw(R), bytes of T after R))
 *                 ^ zeros(|T|)
 * for any split of T into runs, each run hashed by whoever read it.
 */

/* The register form of M: crc32c(M) ^ zeros(|M|). */
uint32_t trestle__crc32c_raw(const void *p, size_t n);

/* crc32c of n zero bytes, in O(log n): the affine constant of length n. */
uint32_t trestle__crc32c_zeros(uint64_t n);

/* reg * x^(8n) mod P: a register moved past n more bytes (any n; at most
 * 64 multiplications, by a table of x^(8 * 2^k)). */
uint32_t trestle__crc32c_shift(uint32_t reg, uint64_t n);

/* TF stores CRCs masked, because a CRC of data that embeds CRCs is weak. */
static inline uint32_t trestle__crc_mask(uint32_t crc)
{
    return ((crc >> 15) | (crc << 17)) + TRESTLE_CRC_MASK_DELTA;
}

static inline uint32_t trestle__crc_unmask(uint32_t masked)
{
    uint32_t rot = masked - TRESTLE_CRC_MASK_DELTA;
    return (rot >> 17) | (rot << 15);
}

#endif /* TRESTLE_CRC32C_H */
