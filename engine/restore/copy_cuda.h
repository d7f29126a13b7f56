/*
 * copy_cuda.h - the copies of the CUDA copier (CUDA builds only), which
 * engine/restore/copy_cuda_marks.c puts in the copier's ops table; the
 * state they work on is engine/restore/copy_cuda_worker.h.
 */
#ifndef TRESTLE_COPY_CUDA_H
#define TRESTLE_COPY_CUDA_H

#include <stddef.h>
#include <stdint.h>

#include "copy.h"
#include "copy_cuda_worker.h"

/* The copies (engine/restore/copy_cuda.c), for the ops table. */
uint64_t trestle__cuda_copy(trestle__copier *c, unsigned worker, void *dst, const void *src,
                            uint64_t n);
uint64_t trestle__cuda_copy_region(trestle__copier *c, unsigned worker, void *dst,
                                   const trestle__region *r, const void *src, uint64_t lo,
                                   uint64_t n);
uint64_t trestle__cuda_copy_widen(trestle__copier *c, unsigned worker, void *dst, const void *src,
                                  int src_dtype, int dst_dtype, uint64_t count);
int trestle__cuda_staging_add(trestle__copier *c, void *base, size_t bytes, trestle_error *err);
int trestle__cuda_copier_arena(trestle__copier *c, uint64_t bytes, trestle_arena **out,
                               trestle_error *err);

#endif /* TRESTLE_COPY_CUDA_H */
