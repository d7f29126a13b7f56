/*
 * transpose.h - the 2-D transpose a conversion applies to a tensor as its
 * bytes land (trestle_convert_options.transpose).
 */
#ifndef TRESTLE_TRANSPOSE_H
#define TRESTLE_TRANSPOSE_H

#include <stddef.h>
#include <stdint.h>

/*
 * dst[c][r] = src[r][c] for a row-major `rows` x `cols` matrix of
 * `esize`-byte elements (1, 2, 4, 8 or any other size). src and dst must
 * not overlap.
 */
void trestle__transpose2d(void *dst, const void *src, uint64_t rows, uint64_t cols,
                          size_t esize);

#endif /* TRESTLE_TRANSPOSE_H */
