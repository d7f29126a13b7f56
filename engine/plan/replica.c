/*
 * replica.c - the plan side of restoring onto several GPUs: placing ops
 * on one device (trestle_plan_place_op) and finding each device's copy of
 * an op (trestle_plan_op_replica); plan_arena.c hands a device's arena to
 * the caller. The layout itself is made by the restore
 * (engine/restore/restore_multi.c); this file only keeps and frees it.
 */
#include <stdlib.h>
#include <string.h>

#include "cuda_host.h"
#include "error.h"
#include "replica.h"

trestle__replicas *trestle__replicas_get(trestle_plan *p)
{
    if (!p->replicas)
        p->replicas = calloc(1, sizeof *p->replicas);
    return p->replicas;
}

void trestle__replicas_drop(trestle__replicas *r)
{
    if (!r)
        return;
    for (size_t k = 1; r->arenas && k < r->ndev; k++)
        trestle__arena_release(r->arenas[k]);
    free(r->arenas);
    free(r->dest);
    free(r->devices);
    r->arenas = NULL;
    r->dest = NULL;
    r->devices = NULL;
    r->ndev = 0;
}

void trestle__replicas_free(trestle__replicas *r)
{
    if (!r)
        return;
    trestle__replicas_drop(r);
    free(r->place);
    free(r);
}

int trestle__replicas_place(const trestle_plan *p, size_t i)
{
    return p->replicas && p->replicas->place ? p->replicas->place[i] : TRESTLE_EVERY_DEVICE;
}

int trestle_plan_place_op(trestle_plan *p, size_t i, int device_index, trestle_error *err)
{
    trestle_error_clear(err);
    if (!p || i >= p->num_ops)
        return trestle__error_simple(err, TRESTLE_E_INVALID_ARG, "op %zu is not in the plan", i);
    if (p->ops[i].dest_kind != TRESTLE_DEST_ALLOCATE)
        return trestle__error_simple(err, TRESTLE_E_INVALID_ARG,
                                     "op %zu ('%s'): only engine-allocated ops are placed on a "
                                     "device; a DEST_DEVICE op goes where its pointer is", i,
                                     p->ops[i].name);
    if (device_index != TRESTLE_EVERY_DEVICE &&
        (device_index < 0 || device_index >= TRESTLE__MAX_DEVICES))
        return trestle__error_simple(err, TRESTLE_E_INVALID_ARG,
                                     "op %zu ('%s'): device index %d is not 0..%d or "
                                     "TRESTLE_EVERY_DEVICE", i, p->ops[i].name, device_index,
                                     TRESTLE__MAX_DEVICES - 1);
    trestle__replicas *r = trestle__replicas_get(p);
    if (r && !r->place && (r->place = malloc(p->num_ops * sizeof *r->place)) != NULL)
        for (size_t k = 0; k < p->num_ops; k++)
            r->place[k] = TRESTLE_EVERY_DEVICE;
    if (!r || !r->place)
        return trestle__error_simple(err, TRESTLE_E_NOMEM, "out of memory");
    if (r->place[i] != device_index)
        r->stale = true;
    r->place[i] = device_index;
    return TRESTLE_OK;
}

int trestle_plan_op_replica(const trestle_plan *p, size_t i, size_t device_index, void **data)
{
    if (data)
        *data = NULL;
    if (!p || !data || i >= p->num_ops || !p->replicas || device_index >= p->replicas->ndev)
        return TRESTLE_E_INVALID_ARG;
    *data = p->replicas->dest[i * p->replicas->ndev + device_index];
    return TRESTLE_OK;
}

int trestle_cuda_device_count(void)
{
    char why[160];
    int n = trestle__cuda_device_count(why, sizeof why);
    return n > 0 ? n : 0;
}
