/*
 * transpose.c - a cache-blocked 2-D transpose.
 *
 * Walking a matrix by columns touches a new cache line per element; in
 * square tiles both the reads and the writes stay within a few lines, so
 * the transpose runs near memory speed. Element sizes of 1, 2, 4 and 8
 * bytes get a loop of their own type (the common ones: float8, bfloat16,
 * float32, float64); any other size copies with memcpy.
 */
#include <string.h>

#include "transpose.h"

#define TILE 32 /* elements per tile side: 32 x 32 x 8 bytes = 8 KiB of source */

/* Run COPY(dst_index, src_index) for every element, tile by tile. */
#define FOR_EACH_TILED(COPY)                                                            \
    for (uint64_t r0 = 0; r0 < rows; r0 += TILE)                                        \
        for (uint64_t c0 = 0; c0 < cols; c0 += TILE) {                                  \
            uint64_t r1 = r0 + TILE < rows ? r0 + TILE : rows;                          \
            uint64_t c1 = c0 + TILE < cols ? c0 + TILE : cols;                          \
            for (uint64_t r = r0; r < r1; r++)                                          \
                for (uint64_t c = c0; c < c1; c++)                                      \
                    COPY(c * rows + r, r * cols + c);                                   \
        }

#define COPY_U8(di, si) ((uint8_t *)dst)[di] = ((const uint8_t *)src)[si]
#define COPY_U16(di, si) ((uint16_t *)dst)[di] = ((const uint16_t *)src)[si]
#define COPY_U32(di, si) ((uint32_t *)dst)[di] = ((const uint32_t *)src)[si]
#define COPY_U64(di, si) ((uint64_t *)dst)[di] = ((const uint64_t *)src)[si]
#define COPY_BYTES(di, si) \
    memcpy((uint8_t *)dst + (di) * esize, (const uint8_t *)src + (si) * esize, esize)

void trestle__transpose2d(void *dst, const void *src, uint64_t rows, uint64_t cols,
                          size_t esize)
{
    switch (esize) {
    case 1: FOR_EACH_TILED(COPY_U8); break;
    case 2: FOR_EACH_TILED(COPY_U16); break;
    case 4: FOR_EACH_TILED(COPY_U32); break;
    case 8: FOR_EACH_TILED(COPY_U64); break;
    default: FOR_EACH_TILED(COPY_BYTES); break;
    }
}
