/*
 * restore_worker.c - the consuming half of the restore pipeline: worker
 * threads take completed reads off the work queue, and for each extent the
 * chunk overlaps they compute the CRC32C of its bytes, copy them to every
 * destination that wants them, and give the staging buffer back. The
 * worker that lands an extent's last part combines the partial CRCs and
 * checks the stored one; the worker that lands an op's last piece reports
 * the op ready. Also here: the sticky first error and cancellation, which
 * both halves of the pipeline use.
 *
 * CRC and copy walk each chunk in cache-sized steps, so the bytes the CRC
 * pulls into the cache are still there for the copy. Pieces whose op
 * converts the dtype go through engine/restore_convert.c on the way.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "crc32c.h"
#include "error.h"
#include "restore.h"
#include "string_tensor.h"

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

/* ---- ops ---- */

void trestle__restore_op_ready(trestle__restore *x, size_t i)
{
    const trestle__plan_op *op = &x->plan->ops[i];

    /* After a failure nothing more is reported: the restore as a whole failed. */
    if (trestle__restore_stopping(x))
        return;
    atomic_fetch_add(&x->tensors, 1);
    long long none = -1;
    atomic_compare_exchange_strong(&x->first_ready_ns, &none,
                                   (long long)trestle__restore_now_ns(x));
    if (!x->opt.on_ready)
        return;
    trestle_plan_op_info info = {
        .name = op->name,
        .key = op->skipped ? NULL : op->key,
        .skipped = op->skipped,
        .dtype = op->dtype,
        .rank = op->rank,
        .dims = op->dims,
        .bytes = op->bytes,
        .data = op->dest,
        .out_dtype = op->out_dtype,
    };
    int stop = x->opt.on_ready(x->opt.user, i, &info);
    if (stop != 0) {
        trestle_error e;
        trestle__error_set(&e, TRESTLE_E_CANCELLED, 0, op->key, NULL, -1, -1,
                           "restore cancelled by the ready callback (it returned %d for op %zu, "
                           "'%s')", stop, i, op->name);
        trestle__restore_fail(x, &e);
    }
}

/* ---- extents ---- */

/* Bytes of extent `e` in its part `i`: the first part runs to a chunk
 * boundary, middle parts are whole chunks, the last takes the rest. */
static uint64_t part_length(const trestle__restore *x, size_t e, uint32_t i)
{
    const trestle__ext_state *st = &x->ext[e];
    uint64_t size = x->plan->extents[e].size;
    if (i == 0)
        return st->first_len;
    if (i + 1 < st->parts)
        return x->chunk;
    return size - st->first_len - (uint64_t)(st->parts - 2) * x->chunk;
}

static void fail_crc(trestle__restore *x, size_t e, uint32_t crc)
{
    const trestle__extent *ext = &x->plan->extents[e];
    const char *name = trestle__restore_tensor_name(x, e);
    const char *path = x->ckpt->shard_paths[ext->shard];
    trestle_error le;
    trestle__error_set(&le, TRESTLE_E_CRC_MISMATCH, 0, name, path, (int64_t)ext->offset,
                       (int64_t)ext->size,
                       "CRC32C mismatch in tensor '%s' (shard %s, offset %" PRIu64 ", %" PRIu64
                       " bytes): Checksum does not match: stored %u vs. calculated on the "
                       "restored bytes %u", name, path, ext->offset, ext->size,
                       trestle__crc_unmask(ext->crc_masked), crc);
    trestle__restore_fail(x, &le);
}

/* Fail the restore with `le`, an error met at byte `offset` of extent e's
 * shard, as "tensor 'NAME' (shard PATH, offset N): <le's message>" with
 * the key, path and offset filled in. */
static void fail_at(trestle__restore *x, size_t e, uint64_t offset, trestle_error *le)
{
    const char *name = trestle__restore_tensor_name(x, e);
    const char *path = x->ckpt->shard_paths[x->plan->extents[e].shard];
    trestle__error_prefix(le, "tensor '%s' (shard %s, offset %" PRIu64 ")", name, path, offset);
    snprintf(le->key, sizeof le->key, "%s", name);
    snprintf(le->path, sizeof le->path, "%s", path);
    le->offset = (int64_t)offset;
    trestle__restore_fail(x, le);
}

/* The entry CRC of a string extent: walk its whole bytes. False on failure
 * (recorded). */
static bool string_crc(trestle__restore *x, size_t e, uint32_t *crc)
{
    static const uint8_t empty[1];
    const trestle__extent *ext = &x->plan->extents[e];
    trestle__ext_state *st = &x->ext[e];
    const uint8_t *buf = st->walk_buf ? st->walk_buf : atomic_load(&st->tmp);
    const trestle__entry *entry = &x->ckpt->entries[ext->entry];
    trestle_error le;

    int rc = trestle__strings_walk(buf ? buf : empty, ext->size, (uint64_t)entry->num_elements,
                                   NULL, crc, &le);
    if (rc == TRESTLE_OK)
        return true;
    fail_at(x, e, ext->offset, &le);
    return false;
}

void trestle__restore_finish_extent(trestle__restore *x, unsigned worker, size_t e)
{
    const trestle__extent *ext = &x->plan->extents[e];
    trestle__ext_state *st = &x->ext[e];
    trestle__worker_stats *ws = &x->wstats[worker];

    if (x->opt.verify) {
        int64_t t = trestle__restore_now_ns(x);
        uint32_t crc = 0;
        bool ok = true;
        if (ext->is_string) {
            ok = string_crc(x, e, &crc);
        } else {
            for (uint32_t i = 0; i < st->parts; i++)
                crc = i == 0 ? st->crcs[0]
                             : trestle__crc32c_combine(crc, st->crcs[i], part_length(x, e, i));
        }
        ws->verify_seconds += (double)(trestle__restore_now_ns(x) - t) * 1e-9;
        free(atomic_exchange(&st->tmp, NULL));
        if (!ok)
            return;
        if (trestle__crc_mask(crc) != ext->crc_masked) {
            fail_crc(x, e, crc);
            return;
        }
        ws->verified += ext->size;
    }
    /* Elements cut by part boundaries land last: no op is ready before. */
    if (st->seam && !trestle__restore_convert_seams(x, worker, e))
        return;
    for (size_t k = 0; k < ext->num_pieces; k++) {
        size_t op = x->plan->pieces[ext->first_piece + k].op;
        if (atomic_fetch_sub_explicit(&x->op_left[op], 1, memory_order_acq_rel) == 1)
            trestle__restore_op_ready(x, op);
    }
}

/* ---- chunks ---- */

/* The private copy a string extent is walked in when no host destination
 * holds its bytes; the first worker to need it allocates it. */
static uint8_t *string_tmp(trestle__restore *x, size_t e)
{
    trestle__ext_state *st = &x->ext[e];
    uint8_t *buf = atomic_load(&st->tmp);
    if (buf)
        return buf;
    uint8_t *mine = malloc(x->plan->extents[e].size ? x->plan->extents[e].size : 1);
    if (!mine) {
        trestle_error le;
        trestle__error_set(&le, TRESTLE_E_NOMEM, 0, trestle__restore_tensor_name(x, e), NULL, -1,
                           (int64_t)x->plan->extents[e].size,
                           "out of memory for the %" PRIu64 " bytes of string tensor '%s'",
                           x->plan->extents[e].size, trestle__restore_tensor_name(x, e));
        trestle__restore_fail(x, &le);
        return NULL;
    }
    if (atomic_compare_exchange_strong(&st->tmp, &buf, mine))
        return mine;
    free(mine);
    return buf;
}

trestle__copier *trestle__restore_copier_for(trestle__restore *x, const trestle__plan_op *op)
{
    bool device = !x->copier.host_dests &&
                  (op->dest_kind == TRESTLE_DEST_DEVICE ||
                   (op->dest_kind == TRESTLE_DEST_ALLOCATE && x->opt.device >= 0));
    return device ? &x->copier : &x->host;
}

/* Bytes [pos, pos + n) of extent e, at p, to every piece that wants them.
 * Returns the bytes that landed (a piece read in place counts as landed). */
static uint64_t copy_pieces(trestle__restore *x, unsigned w, size_t e, const uint8_t *p,
                            uint64_t pos, uint64_t n)
{
    const trestle_plan *plan = x->plan;
    const trestle__extent *ext = &plan->extents[e];
    trestle__conv_span span = { 0 };
    uint64_t copied = 0;

    for (size_t k = 0; k < ext->num_pieces; k++) {
        const trestle__piece *pc = &plan->pieces[ext->first_piece + k];
        const trestle__plan_op *op = &plan->ops[pc->op];
        if (op->dest_kind == TRESTLE_DEST_DISCARD)
            continue;
        trestle__copier *cp = trestle__restore_copier_for(x, op);
        if (ext->first_piece + k == x->ext[e].primary) /* read straight into place */
            copied += n;
        else if (op->convert)
            copied += trestle__restore_copy_converted(x, w, cp, pc, p, pos, n, &span);
        else if (pc->region == TRESTLE__NO_REGION)
            copied += cp->ops->copy(cp, w, (uint8_t *)op->dest + pc->dst_offset + pos, p, n);
        else
            copied += cp->ops->copy_region(cp, w, op->dest, &plan->regions[pc->region], p, pos,
                                           n);
    }
    return copied;
}

/*
 * Part of extent `e` arrived in read `seq`: bytes [pos, pos + n) of the
 * extent at p (staging, or the primary destination itself when the extent
 * is read in place). CRC them into the part's slot, copy them to every
 * other piece, and finish the extent if this was its last part.
 */
static void process_part(trestle__restore *x, unsigned w, size_t e, uint64_t seq,
                         const uint8_t *p, uint64_t pos, uint64_t n)
{
    const trestle_plan *plan = x->plan;
    const trestle__extent *ext = &plan->extents[e];
    trestle__ext_state *st = &x->ext[e];
    trestle__worker_stats *ws = &x->wstats[w];
    trestle__copier *cp = &x->copier;
    bool crc_here = x->opt.verify && !ext->is_string;
    uint8_t *tmp = NULL;
    uint32_t crc = 0;

    if (x->opt.verify && ext->is_string && !st->walk_buf && !(tmp = string_tmp(x, e)))
        return;
    if (st->seam)
        trestle__restore_seam_store(x, e, p, pos, n);
    int64_t t0 = trestle__restore_now_ns(x);
    if (!cp->host_dests) {
        /* Device destinations: hand the whole part to the DMA engine first,
         * then CRC it on this core while the copies fly; fence() below
         * waits for them. (The host path interleaves instead, to CRC and
         * copy each step while it is in cache.) */
        ws->copied += copy_pieces(x, w, e, p, pos, n);
        int64_t t1 = trestle__restore_now_ns(x);
        if (crc_here)
            crc = trestle__crc32c_extend(crc, p, (size_t)n);
        if (tmp)
            memcpy(tmp + pos, p, (size_t)n);
        ws->copy_seconds += (double)(t1 - t0) * 1e-9;
        ws->verify_seconds += (double)(trestle__restore_now_ns(x) - t1) * 1e-9;
    } else {
        for (uint64_t off = 0; off < n;) {
            uint64_t step = n - off < TRESTLE__COPY_STEP ? n - off : TRESTLE__COPY_STEP;
            /* Conversions take whole elements: steps end on element
             * boundaries, so only the part's own ends cut one (seams). */
            if (st->convert_es && off + step < n)
                step -= (pos + off + step) % st->convert_es;
            if (crc_here)
                crc = trestle__crc32c_extend(crc, p + off, (size_t)step);
            int64_t t1 = trestle__restore_now_ns(x);
            ws->copied += copy_pieces(x, w, e, p + off, pos + off, step);
            if (tmp)
                memcpy(tmp + pos + off, p + off, (size_t)step);
            int64_t t2 = trestle__restore_now_ns(x);
            ws->verify_seconds += (double)(t1 - t0) * 1e-9;
            ws->copy_seconds += (double)(t2 - t1) * 1e-9;
            t0 = t2;
            off += step;
        }
    }
    if (crc_here)
        st->crcs[seq - st->first_seq] = crc;
    trestle_error le;
    if (cp->ops->fence(cp, w, &le) != TRESTLE_OK) {
        /* The fence covers this part's copies only: name their tensor. */
        le.length = (int64_t)n;
        fail_at(x, e, ext->offset + pos, &le);
        return;
    }
    /* acq_rel: the last worker must see every other part's CRC slot and bytes. */
    if (atomic_fetch_sub_explicit(&st->left, 1, memory_order_acq_rel) == 1)
        trestle__restore_finish_extent(x, w, e);
}

/* Every extent a completed read overlaps, in file order. */
static void process_read(trestle__restore *x, unsigned w, const trestle__read *rq)
{
    const trestle_plan *plan = x->plan;
    const trestle__batch *b = &plan->batches[rq->batch];
    const uint8_t *data = rq->buf + rq->skip;
    uint64_t lo = rq->offset, hi = rq->offset + rq->length;

    if (rq->extent != TRESTLE__NO_EXTENT) { /* a destination read: one extent, in place */
        const trestle__extent *ext = &plan->extents[rq->extent];
        process_part(x, w, rq->extent, rq->seq, data, lo - ext->offset, rq->length);
        return;
    }

    /* The first extent of the batch that ends after lo. */
    size_t first = b->first_extent, last = b->first_extent + b->num_extents;
    while (first < last) {
        size_t mid = first + (last - first) / 2;
        const trestle__extent *m = &plan->extents[mid];
        if (m->offset + m->size > lo)
            last = mid;
        else
            first = mid + 1;
    }
    for (size_t e = first; e < b->first_extent + b->num_extents; e++) {
        const trestle__extent *ext = &plan->extents[e];
        if (ext->offset >= hi || trestle__restore_stopping(x))
            break;
        uint64_t s = ext->offset > lo ? ext->offset : lo;
        uint64_t t = ext->offset + ext->size < hi ? ext->offset + ext->size : hi;
        if (s < t && !x->ext[e].dest) /* in-place extents never share a staging read */
            process_part(x, w, e, rq->seq, data + (s - lo), s - ext->offset, t - s);
    }
}

void *trestle__restore_worker(void *arg)
{
    const trestle__worker_arg *a = arg;
    trestle__restore *x = a->x;

    for (;;) {
        pthread_mutex_lock(&x->wq_mu);
        while (x->wq_len == 0 && !x->wq_closed && !atomic_load(&x->stop))
            pthread_cond_wait(&x->wq_cv, &x->wq_mu);
        if (atomic_load(&x->stop) || x->wq_len == 0) {
            pthread_mutex_unlock(&x->wq_mu);
            break;
        }
        trestle__read *rq = x->wq[x->wq_head];
        x->wq_head = (x->wq_head + 1) % x->wq_cap;
        x->wq_len--;
        pthread_mutex_unlock(&x->wq_mu);

        if (!trestle__restore_stopping(x))
            process_read(x, a->index, rq);
        trestle__pool_release(&x->pool, rq->buf_index);
    }
    return NULL;
}
