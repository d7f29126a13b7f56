/*
 * restore_state.c - what every part of a running restore shares, beneath
 * the producer (engine/restore/restore.c), the workers (engine/restore/restore_worker.c)
 * and the dtype conversion (engine/restore/restore_convert.c): its clock, its
 * first error and cancellation, the names its messages give, and which
 * copier writes an op's destination.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <inttypes.h>
#include <stdio.h>
#include <time.h>

#include "error.h"
#include "restore.h"

int64_t trestle__restore_now_ns(const trestle__restore *x)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)(t.tv_sec - x->t0.tv_sec) * 1000000000LL + (t.tv_nsec - x->t0.tv_nsec);
}

/* ---- first error and cancellation ---- */

int trestle__restore_fail(trestle__restore *x, const trestle_error *e)
{
    int rc;
    pthread_mutex_lock(&x->err_mu);
    if (x->rc == TRESTLE_OK) {
        x->rc = e->code;
        x->err = *e;
    }
    rc = x->rc;
    pthread_mutex_unlock(&x->err_mu);
    atomic_store(&x->stop, 1);
    /* Wake whoever waits for a buffer or for work, so they see the stop. */
    trestle__pool_stop(&x->pool);
    pthread_mutex_lock(&x->wq_mu);
    pthread_cond_broadcast(&x->wq_cv);
    pthread_mutex_unlock(&x->wq_mu);
    return rc;
}

bool trestle__restore_stopping(trestle__restore *x)
{
    if (atomic_load_explicit(&x->stop, memory_order_acquire))
        return true;
    if (atomic_load_explicit(&x->plan->cancel, memory_order_relaxed)) {
        trestle_error e;
        trestle__error_simple(&e, TRESTLE_E_CANCELLED, "restore cancelled");
        trestle__restore_fail(x, &e);
        return true;
    }
    return false;
}

const char *trestle__restore_tensor_name(const trestle__restore *x, size_t e)
{
    const trestle__extent *ext = &x->plan->extents[e];
    if (ext->num_pieces > 0) {
        const trestle__plan_op *op = &x->plan->ops[x->plan->pieces[ext->first_piece].op];
        if (op->key)
            return op->key;
    }
    return x->ckpt->entries[ext->entry].key;
}

trestle__copier *trestle__restore_copier_for(trestle__restore *x, const trestle__plan_op *op)
{
    bool device = !x->copier.host_dests &&
                  (op->dest_kind == TRESTLE_DEST_DEVICE ||
                   (op->dest_kind == TRESTLE_DEST_ALLOCATE && x->opt.device >= 0));
    return device ? &x->copier : &x->host;
}

/* Fail the restore with `le`, an error met at byte `offset` of extent e's
 * shard, as "tensor 'NAME' (shard PATH, offset N): <le's message>" with
 * the key, path and offset filled in. */
void trestle__restore_fail_at(trestle__restore *x, size_t e, uint64_t offset, trestle_error *le)
{
    const char *name = trestle__restore_tensor_name(x, e);
    const char *path = x->ckpt->shard_paths[x->plan->extents[e].shard];
    trestle__error_prefix(le, "tensor '%s' (shard %s, offset %" PRIu64 ")", name, path, offset);
    snprintf(le->key, sizeof le->key, "%s", name);
    snprintf(le->path, sizeof le->path, "%s", path);
    le->offset = (int64_t)offset;
    trestle__restore_fail(x, le);
}

