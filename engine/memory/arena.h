/*
 * arena.h - engine memory for DEST_ALLOCATE tensors (engine/memory/arena.c):
 * one allocation per restore and device, made by the copier that restores
 * into it (host pages, or a device allocation from cuda_host.c), which
 * records how to release itself, so that whoever frees it (the plan, the
 * caller after adopting it) need not know which kind it is.
 */
#ifndef TRESTLE_ARENA_H
#define TRESTLE_ARENA_H

#include <stddef.h>
#include <stdint.h>

#include "trestle.h"

/* Every tensor in an arena starts on a boundary of this many bytes: on a
 * device, cudaMalloc's 256, which kernels and copy engines expect; in host
 * memory a cache line (64, AVX-512's widest load, and what host_map's
 * mapped tensors get), so that a model of many small tensors pays ~32
 * bytes a tensor of padding, not ~128 (issue 24's memory per tensor). */
#define TRESTLE__ARENA_ALIGN 256
#define TRESTLE__HOST_ARENA_ALIGN 64
#define TRESTLE__ARENA_ALIGN_OF(device) \
    ((device) >= 0 ? TRESTLE__ARENA_ALIGN : TRESTLE__HOST_ARENA_ALIGN)

struct trestle_arena {
    uint8_t *base;
    uint64_t bytes;
    int device;                            /* CUDA ordinal, or -1 for host memory */
    void (*release)(struct trestle_arena *a); /* frees base (not the struct) */
    void *ctx;                             /* the releasing backend's, if it needs one */
    struct trestle__map *maps;             /* shard files mapped by host_map restores */
    size_t nmaps;
};

/* One shard file mapped private (copy-on-write) for a host_map restore. */
typedef struct trestle__map {
    int shard;
    uint8_t *base;
    uint64_t bytes;
} trestle__map;

/* Free an arena, its memory and its mappings; NULL is fine. */
void trestle__arena_release(trestle_arena *a);

/* Shard `shard` (open as fd, `bytes` long) mapped into arena a, mapping it
 * on first use; NULL when it cannot be mapped (the caller copies instead). */
uint8_t *trestle__arena_map(trestle_arena *a, int shard, int fd, uint64_t bytes);

#endif /* TRESTLE_ARENA_H */
