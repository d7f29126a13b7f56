/*
 * bulk.h - zeroed arrays of per-tensor state (engine/common/bulk.c): an
 * open checkpoint's entries, a plan's ops, extents and pieces, a restore's
 * per-extent state. Small ones come from malloc; from 256 KiB up they are
 * their own mapping, made whole at once (an array that is about to be
 * filled); a zeroed one from 2 MiB up starts on a huge-page boundary and
 * is advised into transparent huge pages, a growing one from 8 MiB. A model
 * of 100,000 tensors keeps some 40 MiB of such arrays, and first-touch
 * page faults (one per 4 KiB, each zeroing its page and charging it) cost
 * as much as everything planning computes. Pointers must go back through
 * trestle__bulk_free().
 */
#ifndef TRESTLE_BULK_H
#define TRESTLE_BULK_H

#include <stddef.h>

/* Bytes each block keeps before its data (which is 64-byte aligned): a
 * caller that wants a block to fill whole huge pages asks for a multiple of
 * 2 MiB less this. */
#define TRESTLE__BULK_HEADER 64

/* n * size zeroed bytes, all of them made resident now, or NULL (also when
 * n * size overflows). */
void *trestle__bulk_calloc(size_t n, size_t size);

/* Grow or shrink p (from this allocator, or NULL) to n * size bytes,
 * keeping the contents (bytes past the old size are unspecified). A large
 * block moves its pages rather than copying them. NULL (p untouched) when
 * out of memory. */
void *trestle__bulk_realloc(void *p, size_t n, size_t size);

/* Free p (NULL is fine). */
void trestle__bulk_free(void *p);

#endif /* TRESTLE_BULK_H */
