/*
 * replica.h - a plan's copies on several GPUs (engine/plan/replica.c): the
 * arenas and per-op addresses of its last multi-device restore
 * (trestle_restore_options.devices), and where placed ops go
 * (trestle_plan_place_op). engine/restore/restore_multi.c lays them out and
 * fills them; plan.h only holds a pointer, so single-device plans pay
 * nothing.
 */
#ifndef TRESTLE_REPLICA_H
#define TRESTLE_REPLICA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "plan.h"

#define TRESTLE__MAX_DEVICES 64 /* device sets are uint64_t masks */

typedef struct trestle__replicas {
    int *place;               /* per op: TRESTLE_EVERY_DEVICE or a device index; NULL: all
                                 replicated */
    bool stale;               /* placement or adoption changed since the layout */
    size_t ndev;              /* devices of the last multi-device layout; 0: none */
    int *devices;             /* their ordinals (ndev) */
    trestle_arena **arenas;   /* ndev: arena k on devices[k]; arenas[0] stays NULL, as
                                 device 0's is plan->arena (trestle_plan_adopt_arena) */
    uint8_t **dest;           /* num_ops x ndev: op i on device k at dest[i * ndev + k], or
                                 NULL */
} trestle__replicas;

/* The plan's replica state, made on first use; NULL when out of memory. */
trestle__replicas *trestle__replicas_get(trestle_plan *p);

/* Forget the layout: release arenas 1.. (the plan's own, device 0's, is
 * the caller's to handle) and the address table. Placement stays. */
void trestle__replicas_drop(trestle__replicas *r);

/* Free everything (trestle_plan_free); NULL is fine. */
void trestle__replicas_free(trestle__replicas *r);

/* Op i's placement: TRESTLE_EVERY_DEVICE or a device index. */
int trestle__replicas_place(const trestle_plan *p, size_t i);

#endif /* TRESTLE_REPLICA_H */
