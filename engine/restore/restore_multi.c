/*
 * restore_multi.c - the restore side of one process restoring onto several
 * GPUs (trestle_restore_options.devices): checking the device list,
 * checking that every caller device pointer is on a listed device, one
 * engine arena per device for the DEST_ALLOCATE ops (replicated, or placed
 * on one device), and the routes that tell the multi-device copier
 * (engine/restore/copy_multi.c) where each destination's bytes go on each device.
 *
 * Nothing here reads or copies: the pipeline is the single-device one,
 * with the multi-device copier in place of the CUDA copier.
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checked.h"
#include "cuda_host.h"
#include "error.h"
#include "replica.h"
#include "restore.h"

int trestle__restore_check_devices(trestle_restore_options *o, trestle_error *err)
{
    size_t n = o->num_devices;
    if (n == 0)
        return TRESTLE_OK;
    if (!o->devices)
        return trestle__error_simple(err, TRESTLE_E_INVALID_ARG,
                                     "restore options: num_devices is %zu but devices is NULL",
                                     n);
    if (n > TRESTLE__MAX_DEVICES)
        return trestle__error_simple(err, TRESTLE_E_INVALID_ARG, "restore options: %zu devices; "
                                     "at most %d", n, TRESTLE__MAX_DEVICES);
    for (size_t k = 0; k < n; k++) {
        if (o->devices[k] < 0)
            return trestle__error_simple(err, TRESTLE_E_INVALID_ARG, "restore options: "
                                         "devices[%zu] is %d, not a CUDA device ordinal", k,
                                         o->devices[k]);
        for (size_t j = 0; j < k; j++)
            if (o->devices[j] == o->devices[k])
                return trestle__error_simple(err, TRESTLE_E_INVALID_ARG, "restore options: "
                                             "CUDA device %d is listed twice (devices[%zu] and "
                                             "devices[%zu])", o->devices[k], j, k);
    }
    if (o->device >= 0 && o->device != o->devices[0])
        return trestle__error_simple(err, TRESTLE_E_INVALID_ARG, "restore options: device is "
                                     "%d but devices[0] is %d; with a device list, leave device "
                                     "at -1", o->device, o->devices[0]);
    /* Engine memory goes to the devices: what `device` says for one. */
    o->device = o->devices[0];
    if (n == 1)
        o->num_devices = 0;
    return TRESTLE_OK;
}

/* The index of ordinal d in the restore's devices, or -1. */
static int index_of(const trestle__restore *x, int d)
{
    for (size_t k = 0; k < x->opt.num_devices; k++)
        if (x->opt.devices[k] == d)
            return (int)k;
    return -1;
}

int trestle__restore_multi_pick(const trestle__restore *x, int *device, trestle_error *err)
{
    const trestle_plan *p = x->plan;
    char why[160];
    int count = trestle__cuda_device_count(why, sizeof why);

    *device = -1;
    if (count <= 0)
        return trestle__error_simple(err, TRESTLE_E_NO_DEVICE, "restoring onto %zu CUDA devices "
                                     "needs %s", x->opt.num_devices, why);
    for (size_t k = 0; k < x->opt.num_devices; k++)
        if (x->opt.devices[k] >= count)
            return trestle__error_simple(err, TRESTLE_E_NO_DEVICE, "CUDA device %d does not "
                                         "exist (this host has %d)", x->opt.devices[k], count);
    for (size_t i = 0; i < p->num_ops; i++) {
        const trestle__plan_op *op = &p->ops[i];
        int d = -1;
        if (op->skipped || op->dest_kind != TRESTLE_DEST_DEVICE || op->bytes == 0)
            continue;
        int rc = trestle__restore_dest_device(op, &d, err);
        if (rc != TRESTLE_OK)
            return rc;
        if (index_of(x, d) < 0)
            return trestle__error_set(err, TRESTLE_E_INVALID_ARG, 0, op->key, NULL, -1, -1,
                                      "tensor %s: destination is on CUDA device %d, which is "
                                      "not in the restore's device list", op->name, d);
    }
    *device = x->opt.devices[0];
    return TRESTLE_OK;
}

/* Whether op i gets engine memory on device index k. */
static bool on_device(const trestle_plan *p, size_t i, size_t k)
{
    int place = trestle__replicas_place(p, i);
    return place == TRESTLE_EVERY_DEVICE || (size_t)place == k;
}

/* Release every arena of the layout (device 0's is the plan's own). */
static void release_layout(trestle_plan *p)
{
    trestle__arena_release(p->arena);
    p->arena = NULL;
    trestle__replicas_drop(p->replicas);
}

/* The layout of the last restore fits this one: same devices, nothing
 * placed or adopted since. */
static bool layout_fits(const trestle__restore *x, const trestle__replicas *r)
{
    if (r->stale || r->ndev != x->opt.num_devices)
        return false;
    return memcmp(r->devices, x->opt.devices, r->ndev * sizeof *r->devices) == 0;
}

/* One arena per device for the DEST_ALLOCATE ops it gets; their addresses
 * in r->dest, op->dest the first. A device that cannot allocate fails the
 * restore with its copier's error (naming the device and the bytes), and
 * the arenas already made are freed. */
static int lay_out(trestle__restore *x, trestle__replicas *r, trestle_error *err)
{
    trestle_plan *p = x->plan;
    size_t n = x->opt.num_devices;
    uint64_t *bytes = calloc(n, sizeof *bytes);
    r->devices = malloc(n * sizeof *r->devices);
    r->arenas = calloc(n, sizeof *r->arenas);
    r->dest = calloc(p->num_ops ? p->num_ops * n : 1, sizeof *r->dest);
    if (!bytes || !r->devices || !r->arenas || !r->dest) {
        free(bytes);
        return trestle__error_simple(err, TRESTLE_E_NOMEM, "out of memory");
    }
    memcpy(r->devices, x->opt.devices, n * sizeof *r->devices);
    r->ndev = n;
    for (size_t i = 0; i < p->num_ops; i++) {
        trestle__plan_op *op = &p->ops[i];
        if (op->dest_kind != TRESTLE_DEST_ALLOCATE)
            continue;
        op->dest = NULL;
        int place = trestle__replicas_place(p, i);
        if (place != TRESTLE_EVERY_DEVICE && (size_t)place >= n) {
            free(bytes);
            return trestle__error_set(err, TRESTLE_E_INVALID_ARG, 0, op->key, NULL, -1, -1,
                                      "tensor %s is placed on device index %d, but the restore "
                                      "has %zu devices", op->name, place, n);
        }
        uint64_t span = trestle__arena_span(op, x->opt.devices[0]);
        for (size_t k = 0; !op->skipped && k < n; k++)
            if (on_device(p, i, k) && (span == 0 || !tr_add_u64(bytes[k], span, &bytes[k]))) {
                free(bytes);
                return trestle__error_set(err, TRESTLE_E_NOMEM, 0, op->key, NULL, -1, -1,
                                          "destinations of %zu ops overflow", p->num_ops);
            }
    }
    for (size_t k = 0; k < n; k++) {
        trestle__copier *c = trestle__copier_of_device(&x->copier, k);
        int rc = bytes[k] ? c->ops->arena_alloc(c, bytes[k], k ? &r->arenas[k] : &p->arena, err)
                          : TRESTLE_OK;
        if (rc != TRESTLE_OK) {
            free(bytes);
            return rc;
        }
    }
    free(bytes);
    uint8_t **at = calloc(n, sizeof *at);
    if (!at)
        return trestle__error_simple(err, TRESTLE_E_NOMEM, "out of memory");
    for (size_t k = 0; k < n; k++) {
        trestle_arena *a = k ? r->arenas[k] : p->arena;
        at[k] = a ? a->base : NULL;
    }
    for (size_t i = 0; i < p->num_ops; i++) {
        trestle__plan_op *op = &p->ops[i];
        if (op->skipped || op->dest_kind != TRESTLE_DEST_ALLOCATE)
            continue;
        for (size_t k = 0; k < n; k++) {
            if (!on_device(p, i, k))
                continue;
            r->dest[i * n + k] = at[k];
            if (!op->dest)
                op->dest = at[k];
            at[k] += trestle__arena_span(op, x->opt.devices[0]); /* no overflow: summed above */
        }
    }
    free(at);
    r->stale = false;
    return TRESTLE_OK;
}

int trestle__restore_multi_allocate(trestle__restore *x, trestle_error *err)
{
    trestle_plan *p = x->plan;
    size_t n = x->opt.num_devices;
    trestle__replicas *r = trestle__replicas_get(p);
    trestle__route *routes = NULL;
    size_t nroutes = 0;
    int rc = TRESTLE_OK;

    if (!r)
        return trestle__error_simple(err, TRESTLE_E_NOMEM, "out of memory");
    if (!layout_fits(x, r)) {
        release_layout(p);
        if ((rc = lay_out(x, r, err)) != TRESTLE_OK) {
            /* Nothing half-made stays: no device keeps memory of a failed layout. */
            release_layout(p);
            for (size_t i = 0; i < p->num_ops; i++)
                if (p->ops[i].dest_kind == TRESTLE_DEST_ALLOCATE)
                    p->ops[i].dest = NULL;
            return rc;
        }
    }
    routes = calloc(p->num_ops ? p->num_ops : 1, sizeof *routes);
    if (!routes)
        return trestle__error_simple(err, TRESTLE_E_NOMEM, "out of memory");
    for (size_t i = 0; i < p->num_ops; i++) {
        trestle__plan_op *op = &p->ops[i];
        uint8_t **to = &r->dest[i * n];
        int d = -1;
        op->device = -1;
        if (op->skipped)
            continue;
        if (op->dest_kind == TRESTLE_DEST_DEVICE) {
            /* Copied once, on the device of the caller's pointer. */
            for (size_t k = 0; k < n; k++)
                to[k] = NULL;
            if (op->bytes == 0 || trestle__cuda_pointer_device(op->dest, &d) != 0)
                continue;
            to[index_of(x, d)] = op->dest;
        } else if (op->dest_kind != TRESTLE_DEST_ALLOCATE) {
            continue;
        }
        uint64_t mask = 0;
        for (size_t k = 0; k < n; k++)
            if (to[k]) {
                mask |= (uint64_t)1 << k;
                if (op->device < 0)
                    op->device = x->opt.devices[k];
            }
        if (op->bytes > 0)
            routes[nroutes++] = (trestle__route){ op->dest, op->bytes, mask, to };
    }
    rc = trestle__copier_multi_routes(&x->copier, routes, nroutes, err);
    free(routes);
    return rc;
}
