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
#include <stdlib.h>
#include <string.h>

#include "plan.h"

void trestle__arena_release(trestle_arena *a)
{
    if (!a)
        return;
    if (a->release)
        a->release(a);
    free(a);
}

int trestle_plan_adopt_arena(trestle_plan *p, trestle_arena **out)
{
    if (out)
        *out = NULL;
    if (!p || !out)
        return TRESTLE_E_INVALID_ARG;
    *out = p->arena;
    p->arena = NULL;
    return TRESTLE_OK;
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
