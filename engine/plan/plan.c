/*
 * plan.c - a built plan (engine/plan/plan.h): its accessors, the read-back of a
 * restored op, a test's fault plan, and its destructor. engine/plan/plan_create.c builds plans; this
 * file is the planner's bottom and calls none of the building steps, so the
 * pipeline and the builders both depend on it and it on neither.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "bulk.h"
#include "cuda_host.h"
#include "error.h"
#include "plan.h"
#include "replica.h"
#include "staging.h"

void trestle_plan_free(trestle_plan *p)
{
    if (!p)
        return;
    trestle__arena_release(p->arena);
    trestle__replicas_free(p->replicas);
    trestle__staging_free(p->staging);
    trestle__bulk_free(p->ops);
    trestle__bulk_free(p->extents);
    trestle__bulk_free(p->pieces);
    free(p->regions);
    free(p->batches);
    free(p->shares);
    trestle__slab_free(&p->slab);
    free(p);
}

size_t trestle_plan_op_count(const trestle_plan *p) { return p ? p->num_ops : 0; }

int trestle_plan_get_op(const trestle_plan *p, size_t i, trestle_plan_op_info *out)
{
    if (!p || !out || i >= p->num_ops)
        return TRESTLE_E_INVALID_ARG;
    const trestle__plan_op *op = &p->ops[i];
    memset(out, 0, sizeof *out);
    out->name = op->name;
    out->key = op->skipped ? NULL : op->key;
    out->skipped = op->skipped;
    out->dtype = op->dtype;
    out->rank = op->rank;
    out->dims = op->dims;
    out->bytes = op->bytes;
    out->data = op->dest;
    out->out_dtype = op->skipped ? op->dtype : op->out_dtype;
    out->device = op->device;
    return TRESTLE_OK;
}

int trestle_plan_read_op(const trestle_plan *p, size_t i, void *dst, uint64_t cap,
                         trestle_error *err)
{
    trestle_error_clear(err);
    if (!p || !dst || i >= p->num_ops)
        return trestle__error_simple(err, TRESTLE_E_INVALID_ARG, "%s",
                                     !p ? "NULL plan" : !dst ? "NULL destination"
                                        : "op index out of range");
    const trestle__plan_op *op = &p->ops[i];
    if (op->skipped)
        return trestle__error_set(err, TRESTLE_E_INVALID_ARG, 0, op->name, NULL, -1, -1,
                                  "op %zu (%s) is skipped: it has no bytes", i, op->name);
    if (op->bytes > 0 && !op->dest)
        return trestle__error_set(err, TRESTLE_E_INVALID_ARG, 0, op->key, NULL, -1, -1,
                                  "tensor %s: not restored yet", op->name);
    if (cap < op->bytes)
        return trestle__error_set(err, TRESTLE_E_INVALID_ARG, 0, op->key, NULL, -1,
                                  (int64_t)op->bytes, "tensor %s: %" PRIu64 " bytes do not "
                                  "fit in %" PRIu64, op->name, op->bytes, cap);
    if (op->bytes == 0)
        return TRESTLE_OK;
    if (op->device < 0) {
        memcpy(dst, op->dest, (size_t)op->bytes);
        return TRESTLE_OK;
    }
    int rc = trestle__cuda_read(op->device, dst, op->dest, op->bytes, err);
    if (rc != TRESTLE_OK && err) {
        trestle__error_prefix(err, "tensor %s: reading it back", op->name);
        trestle__error_set_key(err, op->key);
        err->length = (int64_t)op->bytes;
    }
    return rc;
}

void trestle_plan_get_stats(const trestle_plan *p, trestle_plan_stats *out)
{
    if (!out)
        return;
    if (!p) {
        memset(out, 0, sizeof *out);
        return;
    }
    *out = p->stats;
}

int trestle__plan_dest_check(const trestle__plan_op *op, const void *ptr, uint64_t capacity,
                             trestle_error *err)
{
    if ((!ptr && op->bytes > 0) || capacity < op->bytes)
        return trestle__error_set(err, TRESTLE_E_INVALID_ARG, 0, op->name, NULL, -1,
                                  (int64_t)op->bytes,
                                  "tensor %s: destination %s%" PRIu64 " bytes, but the "
                                  "restore needs %" PRIu64 " bytes", op->name,
                                  ptr ? "holds " : "is NULL with capacity ", capacity,
                                  op->bytes);
    return TRESTLE_OK;
}

int trestle_plan_set_dest(trestle_plan *p, size_t i, int dest_kind, void *ptr,
                          uint64_t capacity, trestle_error *err)
{
    trestle_error_clear(err);
    if (!p || i >= p->num_ops)
        return trestle__error_simple(err, TRESTLE_E_INVALID_ARG, "%s",
                                     !p ? "NULL plan" : "op index out of range");
    trestle__plan_op *op = &p->ops[i];
    if (dest_kind != TRESTLE_DEST_HOST && dest_kind != TRESTLE_DEST_DEVICE)
        return trestle__error_set(err, TRESTLE_E_INVALID_ARG, 0, op->name, NULL, -1, -1,
                                  "op %zu (%s): dest_kind %d; only TRESTLE_DEST_HOST (1) and "
                                  "TRESTLE_DEST_DEVICE (2), caller memory, can be set after "
                                  "planning", i, op->name, dest_kind);
    if (op->skipped)
        return trestle__error_set(err, TRESTLE_E_INVALID_ARG, 0, op->name, NULL, -1, -1,
                                  "op %zu (%s) is skipped: it has no bytes to land", i,
                                  op->name);
    int rc = trestle__plan_dest_check(op, ptr, capacity, err);
    if (rc != TRESTLE_OK)
        return rc;
    /* Nothing else the plan decided depends on where an op lands: the
     * restore reads dest_kind and dest afresh (restore_dest.c). */
    op->dest_kind = (uint8_t)dest_kind;
    op->dest = ptr;
    op->device = -1; /* a device destination's device is the next restore's */
    return TRESTLE_OK;
}

void trestle__plan_set_faults(trestle_plan *p, struct trestle__faults *f)
{
    if (p)
        p->faults = f;
}
