/*
 * plan_arena.c - handing a plan's engine memory to the caller: the arena
 * of its last restore (trestle_plan_adopt_arena), or with several GPUs the
 * arena of one of them (trestle_plan_adopt_arena_of). The arenas
 * themselves are engine/memory/arena.c's; after adoption the caller frees
 * them with trestle_arena_free(), and the plan's next restore allocates
 * anew.
 */
#include "plan.h"
#include "replica.h"

int trestle_plan_adopt_arena(trestle_plan *p, trestle_arena **out)
{
    if (out)
        *out = NULL;
    if (!p || !out)
        return TRESTLE_E_INVALID_ARG;
    *out = p->arena;
    p->arena = NULL;
    if (p->replicas)
        p->replicas->stale = true; /* device 0 of a multi-device layout needs new memory */
    return TRESTLE_OK;
}

int trestle_plan_adopt_arena_of(trestle_plan *p, size_t device_index, trestle_arena **out)
{
    if (out)
        *out = NULL;
    if (!p || !out)
        return TRESTLE_E_INVALID_ARG;
    if (device_index == 0)
        return trestle_plan_adopt_arena(p, out);
    trestle__replicas *r = p->replicas;
    if (!r || device_index >= r->ndev)
        return TRESTLE_E_INVALID_ARG;
    *out = r->arenas[device_index];
    r->arenas[device_index] = NULL;
    r->stale = true; /* the addresses stay readable, but the next restore needs new memory */
    return TRESTLE_OK;
}
