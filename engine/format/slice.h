/*
 * slice.h - tensor slices: TensorFlow's `shape_and_slices` strings, slice
 * arithmetic (intersection, containment, element counts), conversion from
 * stored TensorSliceProto extents, and the ordered-code keys under which
 * the slices of a partitioned variable are stored.
 *
 * Format: tf-checkpoint-format.md §5 and §6.1.
 */
#ifndef TRESTLE_SLICE_H
#define TRESTLE_SLICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "trestle.h"

/* Slices go up to TRESTLE_MAX_SLICE_RANK dims (trestle.h). */

/* One slice: for each dim, start and length; length -1 = the whole dim
 * (TF's kFullExtent, then start is 0). */
typedef struct trestle__slice {
    int rank;
    int64_t start[TRESTLE_MAX_SLICE_RANK];
    int64_t length[TRESTLE_MAX_SLICE_RANK];
} trestle__slice;

/* A parsed `shape_and_slices` string. */
typedef struct trestle__spec {
    bool whole;                          /* "" : the whole tensor, no shape check */
    int rank;                            /* rank of the full shape */
    int64_t shape[TRESTLE_MAX_SLICE_RANK]; /* full shape given in the spec */
    trestle__slice slice;                /* requested slice (rank == .rank) */
} trestle__spec;

/*
 * Parse "d0 d1 ... dN-1 SLICE" with TF's grammar and TF's InvalidArgument
 * messages (see §6.1), e.g. "Need least two elements in shape_and_slice
 * specification: 4". NULL or "" gives whole = true. Also checks each
 * extent against its dim ("Extent in dimension 1 out of bounds: shape =
 * [4,6], slice = -:0,7"). Errors: TRESTLE_E_BAD_SPEC; TRESTLE_E_LIMIT
 * for rank > TRESTLE_MAX_SLICE_RANK.
 */
int trestle__spec_parse(const char *text, trestle__spec *out, trestle_error *err);

/* Parse only the SLICE part ("0,2:-") for a given rank; same errors. */
int trestle__slice_parse(const char *text, int rank, trestle__slice *out, trestle_error *err);

/* TF's TensorSlice::DebugString form: "0,2:-" ("" for rank 0). Returns the
 * length that would have been written (snprintf contract). */
size_t trestle__slice_format(const trestle__slice *s, char *buf, size_t cap);

/* A full slice of `rank` dims (every length -1). */
void trestle__slice_full(trestle__slice *s, int rank);

/* True when every dim of s covers the whole of `dims` (either -1, or
 * start 0 and length == dim). */
bool trestle__slice_covers_all(const trestle__slice *s, const int64_t *dims);

/* Resolve -1 extents against dims: out[d] = concrete [start, start+len). */
void trestle__slice_resolve(const trestle__slice *s, const int64_t *dims, int64_t *start,
                            int64_t *length);

/* Number of elements of s within dims (full extents use dims). */
int64_t trestle__slice_num_elements(const trestle__slice *s, const int64_t *dims);

/* Intersect a and b within dims; false when empty. out has concrete
 * extents (no -1). */
bool trestle__slice_intersect(const trestle__slice *a, const trestle__slice *b,
                              const int64_t *dims, trestle__slice *out);

/* Same extents after resolving against dims. */
bool trestle__slice_equal(const trestle__slice *a, const trestle__slice *b, const int64_t *dims);

/*
 * Copy the elements of `region` (concrete, inside both) from a row-major
 * source block covering `src_slice` to a row-major destination block
 * covering `dst_slice`, elements of `elem_size` bytes. The N-d strided copy
 * that assembles partitioned tensors and cuts requested slices on the host
 * (the CPU twin of the GPU scatter kernel).
 */
void trestle__slice_copy(void *dst, const trestle__slice *dst_slice, const void *src,
                         const trestle__slice *src_slice, const trestle__slice *region,
                         const int64_t *dims, size_t elem_size);

/* ---- ordered-code slice keys (EncodeTensorNameSlice) ---- */

/*
 * Encode the key of slice s of tensor `name` into buf (cap bytes). Returns
 * the encoded length; when it exceeds cap nothing useful was written and
 * the caller retries with a larger buffer.
 */
size_t trestle__slice_key(const char *name, size_t name_len, const trestle__slice *s,
                          uint8_t *buf, size_t cap);

/* Pieces of the encoding, exposed for tests (return bytes written, <= 10). */
size_t trestle__ordered_num_increasing(uint64_t v, uint8_t *out);
size_t trestle__ordered_signed_num_increasing(int64_t v, uint8_t *out);

#endif /* TRESTLE_SLICE_H */
