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
