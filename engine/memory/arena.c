/*
 * arena.c - engine memory for DEST_ALLOCATE tensors, and handing it to the
 * caller.
 *
 * A restore puts all its engine-allocated tensors into one allocation made
 * by its copier (copy.h: arena_alloc): host memory backed by huge pages, or
 * one device allocation, so that there is no allocation per tensor. The
 * arena records how to release itself, so plan.c frees host and device
 * memory alike without knowing CUDA. A plan owns its arena until the
 * caller adopts it (trestle_plan_adopt_arena) or the plan is freed.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "arena.h"

void trestle__arena_release(trestle_arena *a)
{
    if (!a)
        return;
    if (a->release)
        a->release(a);
    for (size_t i = 0; i < a->nmaps; i++)
        munmap(a->maps[i].base, (size_t)a->maps[i].bytes);
    free(a->maps);
    free(a);
}

/*
 * Host-map restores (trestle_restore_options.host_map) point tensors into
 * private mappings of the shard files instead of copying them: the page
 * cache already holds the bytes, and a mapping costs neither a copy nor
 * fresh zeroed memory. MAP_PRIVATE, writable: a caller that writes to a
 * tensor gets its own copy of those pages and the file is never touched.
 * The arena owns the mappings, so adoption and trestle_plan_free() treat
 * them like the rest of the engine memory.
 */
uint8_t *trestle__arena_map(trestle_arena *a, int shard, int fd, uint64_t bytes)
{
    for (size_t i = 0; i < a->nmaps; i++)
        if (a->maps[i].shard == shard)
            return a->maps[i].bytes == bytes ? a->maps[i].base : NULL;
    if (bytes == 0 || bytes > SIZE_MAX || fd < 0)
        return NULL;
    trestle__map *grown = realloc(a->maps, (a->nmaps + 1) * sizeof *grown);
    if (!grown)
        return NULL;
    a->maps = grown;
    void *m = mmap(NULL, (size_t)bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    if (m == MAP_FAILED)
        return NULL;
    a->maps[a->nmaps++] = (trestle__map){ shard, m, bytes };
    return m;
}

void trestle_arena_get_info(const trestle_arena *a, trestle_arena_info *out)
{
    if (!out)
        return;
    memset(out, 0, sizeof *out);
    out->device = -1;
    if (!a)
        return;
    out->base = a->base;
    out->bytes = a->bytes;
    out->device = a->device;
}

void trestle_arena_free(trestle_arena *a)
{
    trestle__arena_release(a);
}
