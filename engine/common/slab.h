/*
 * slab.h - bump allocation in blocks, freed all at once (engine/common/slab.c).
 *
 * For the many small things an open checkpoint and a plan keep per tensor
 * (keys, shapes, op names): one malloc per block instead of one per
 * tensor, no per-object header, and one pass to free. A model of 100,000
 * tensors otherwise spends more time in malloc and free than in reading
 * its index, and more memory on allocator headers than on the shapes.
 * Objects never move, so pointers into a slab stay valid until it is freed.
 */
#ifndef TRESTLE_SLAB_H
#define TRESTLE_SLAB_H

#include <stddef.h>
#include <stdint.h>

typedef struct trestle__slab_block trestle__slab_block;

typedef struct trestle__slab {
    trestle__slab_block *head; /* newest block (a list through each block's `prev`) */
    uint8_t *next;             /* first free byte of head */
    uint8_t *end;              /* end of head */
    size_t grow;               /* bytes of the next block: doubles up to a cap */
} trestle__slab;

/* `bytes` (may be 0) at an `align`-aligned address (a power of two, at
 * most 16), or NULL when out of memory. Never returns NULL for 0 bytes
 * unless out of memory. */
void *trestle__slab_alloc(trestle__slab *s, size_t bytes, size_t align);

/* A copy of `n` bytes of `p` with a NUL after them, or NULL. */
char *trestle__slab_strndup(trestle__slab *s, const void *p, size_t n);

/* Move every block of `src` into `dst` (what was allocated from either
 * stays where it is, now freed with `dst`); `src` is left empty. Slabs
 * filled by two threads become one. */
void trestle__slab_adopt(trestle__slab *dst, trestle__slab *src);

/* Free every block; the slab is empty (and reusable) afterwards. NULL-safe. */
void trestle__slab_free(trestle__slab *s);

#endif /* TRESTLE_SLAB_H */
