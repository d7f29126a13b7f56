/*
 * restore_worker.c - the consuming half of the restore pipeline: worker
 * threads take completed reads off the work queue, and for each extent the
 * chunk overlaps they compute the CRC32C of its bytes and copy them to
 * every destination that wants them. Once the read's copies are done
 * (at once for host memory; for device memory when the copier's mark
 * retires, while the worker already checks the next chunk), its parts
 * count as landed and the staging buffer goes back. The worker that lands
 * an extent's last part combines the partial CRCs and checks the stored
 * one; the worker that lands an op's last piece reports the op ready
 * (engine/restore/restore_ready.c).
 *
 * CRC and copy walk each chunk in cache-sized steps, so the bytes the CRC
 * pulls into the cache are still there for the copy. Pieces whose op
 * converts the dtype go through engine/restore/restore_convert.c on the way.
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
#include "numa.h"
#include "restore.h"
#include "string_tensor.h"

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
    trestle__restore_fail_at(x, e, ext->offset, &le);
    return false;
}

/* Extent e is in: check it, then count its pieces landed, adding the ops
 * that are now complete to rb (reported when it fills, and by the caller). */
static void finish_extent(trestle__restore *x, unsigned worker, size_t e, trestle__ready_batch *rb)
{
    const trestle__extent *ext = &x->plan->extents[e];
    trestle__ext_state *st = &x->ext[e];
    trestle__worker_stats *ws = &x->wstats[worker];

    if (x->opt.verify) {
        /* Timed only when there is work: a one-part extent's CRC is done. */
        bool timed = ext->is_string || st->parts > 1;
        int64_t t = timed ? trestle__restore_now_ns(x) : 0;
        uint32_t crc = 0;
        bool ok = true;
        if (ext->is_string) {
            ok = string_crc(x, e, &crc);
        } else {
            for (uint32_t i = 0; i < st->parts; i++)
                crc = i == 0 ? st->crcs[0]
                             : trestle__crc32c_combine(crc, st->crcs[i], part_length(x, e, i));
        }
        if (timed)
            ws->verify_seconds += (double)(trestle__restore_now_ns(x) - t) * 1e-9;
        if (ext->is_string)
            free(atomic_exchange(&st->tmp, NULL));
        if (!ok)
            return;
        if (ext->partial) {
            /* A run of a part: only every part's runs together make the
             * stored CRC, so fold this one into its tensor's share
             * (engine/common/crc32c.h: the register form, moved past the bytes
             * that follow it in the tensor). */
            uint32_t reg = crc ^ trestle__crc32c_zeros(ext->size);
            atomic_fetch_xor(&x->plan->shares[ext->share].share,
                             trestle__crc32c_shift(reg, ext->after));
            ws->deferred += ext->size;
        } else if (trestle__crc_mask(crc) != ext->crc_masked) {
            fail_crc(x, e, crc);
            return;
        } else {
            ws->verified += ext->size;
        }
    }
    /* Elements cut by part boundaries land last: no op is ready before. */
    if (st->seam && !trestle__restore_convert_seams(x, worker, e))
        return;
    for (size_t k = 0; k < ext->num_pieces; k++) {
        size_t op = x->plan->pieces[ext->first_piece + k].op;
        if (atomic_fetch_sub_explicit(&x->op_left[op], 1, memory_order_acq_rel) == 1)
            trestle__restore_ready_add(x, worker, rb, op);
    }
}

void trestle__restore_finish_extent(trestle__restore *x, unsigned worker, size_t e)
{
    trestle__ready_batch rb = { 0 };
    finish_extent(x, worker, e, &rb);
    trestle__restore_ready_flush(x, worker, &rb);
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
        if (ext->first_piece + k == x->ext[e].primary) { /* read straight into place */
            copied += n;
            x->wstats[w].placed += n;
        }
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
 * is read in place). CRC them into the part's slot and copy them to every
 * other piece; the part lands when the read's copies are done
 * (land_read()).
 */
static void process_part(trestle__restore *x, unsigned w, size_t e, uint64_t seq,
                         const uint8_t *p, uint64_t pos, uint64_t n)
{
    const trestle__extent *ext = &x->plan->extents[e];
    trestle__ext_state *st = &x->ext[e];
    trestle__worker_stats *ws = &x->wstats[w];
    bool crc_here = x->opt.verify && !ext->is_string;
    uint8_t *tmp = NULL;
    uint32_t crc = 0;

    if (x->opt.verify && ext->is_string && !st->walk_buf && !(tmp = string_tmp(x, e)))
        return;
    if (st->seam)
        trestle__restore_seam_store(x, e, p, pos, n);
    int64_t t0 = trestle__restore_now_ns(x);
    if (!x->copier.host_dests) {
        /* Device destinations: hand the whole part to the DMA engine first,
         * then CRC it on this core while the copies fly. (The host path
         * interleaves instead, to CRC and copy each step while it is in
         * cache.) */
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
}

/* The extents [*first, *end) of read rq's batch that it overlaps (one,
 * read in place, for a destination read). */
static void read_extents(const trestle__restore *x, const trestle__read *rq, size_t *first,
                         size_t *end)
{
    const trestle_plan *plan = x->plan;
    const trestle__batch *b = &plan->batches[rq->batch];
    uint64_t lo = rq->offset, hi = rq->offset + rq->length;

    if (rq->extent != TRESTLE__NO_EXTENT) {
        *first = rq->extent;
        *end = rq->extent + rq->span;
        return;
    }
    /* The first extent of the batch that ends after lo. */
    size_t f = b->first_extent, l = b->first_extent + b->num_extents;
    while (f < l) {
        size_t mid = f + (l - f) / 2;
        const trestle__extent *m = &plan->extents[mid];
        if (m->offset + m->size > lo)
            l = mid;
        else
            f = mid + 1;
    }
    size_t e = f;
    while (e < b->first_extent + b->num_extents && plan->extents[e].offset < hi)
        e++;
    *first = f;
    *end = e;
}

/* Part of extent e that read rq holds: its extent positions [*s, *t), or
 * false when it holds none (in-place extents never share a staging read;
 * a read scattered over small extents holds each whole). */
static bool read_part(const trestle__restore *x, const trestle__read *rq, size_t e, uint64_t *s,
                      uint64_t *t)
{
    const trestle__extent *ext = &x->plan->extents[e];
    uint64_t lo = rq->offset, hi = rq->offset + rq->length;
    if (rq->iov) { /* scattered: every extent whole */
        *s = 0;
        *t = ext->size;
        return ext->size > 0;
    }
    if (rq->extent != TRESTLE__NO_EXTENT) {
        *s = lo - ext->offset;
        *t = *s + rq->length;
        return true;
    }
    uint64_t a = ext->offset > lo ? ext->offset : lo;
    uint64_t b = ext->offset + ext->size < hi ? ext->offset + ext->size : hi;
    *s = a - ext->offset;
    *t = b - ext->offset;
    return a < b && !x->ext[e].dest;
}

/*
 * Small parts of a staging read (extents [first, end), none a string or
 * cut by a conversion's seam), at most TRESTLE__COPY_STEP bytes together:
 * CRC them all and copy them all, in the order the copier wants (host:
 * CRC first, while the step is in cache; device: DMAs queued first), with
 * two clock reads for the group instead of three for each tiny tensor.
 */
static void process_group(trestle__restore *x, unsigned w, const trestle__read *rq, size_t first,
                          size_t end)
{
    const trestle_plan *p = x->plan;
    trestle__worker_stats *ws = &x->wstats[w];
    const uint8_t *data = rq->buf + rq->skip;
    bool host = x->copier.host_dests;
    int64_t t0 = trestle__restore_now_ns(x), t1 = t0;

    for (int pass = 0; pass < 2; pass++) {
        bool crc = host == (pass == 0);
        for (size_t e = first; e < end; e++) {
            const trestle__extent *ext = &p->extents[e];
            trestle__ext_state *st = &x->ext[e];
            uint64_t s, t;
            if (!read_part(x, rq, e, &s, &t))
                continue;
            const uint8_t *at = data + (ext->offset + s - rq->offset);
            if (crc && x->opt.verify)
                st->crcs[rq->seq - st->first_seq] = trestle__crc32c(at, (size_t)(t - s));
            else if (!crc)
                ws->copied += copy_pieces(x, w, e, at, s, t - s);
        }
        if (pass == 0)
            t1 = trestle__restore_now_ns(x);
    }
    int64_t t2 = trestle__restore_now_ns(x);
    ws->verify_seconds += (double)(host ? t1 - t0 : t2 - t1) * 1e-9;
    ws->copy_seconds += (double)(host ? t2 - t1 : t1 - t0) * 1e-9;
}

/* Part [s, t) of extent e in read rq goes into a group of small parts. */
static bool groups(const trestle__restore *x, size_t e, uint64_t s, uint64_t t)
{
    return t - s < TRESTLE__COPY_STEP && !x->ext[e].seam && !x->plan->extents[e].is_string;
}

/*
 * CRC and copy every extent part a completed read holds, in file order.
 * The extents of a scattered read are whole and in place already: one that
 * no other piece wants only needs its CRC, taken here in a tight loop and
 * timed once for the read (a clock read per tiny tensor would cost more
 * than its CRC). Small parts of a staging read go in groups.
 */
static void process_read(trestle__restore *x, unsigned w, const trestle__read *rq, size_t first,
                         size_t end)
{
    const uint8_t *data = rq->buf + rq->skip;
    const trestle_plan *p = x->plan;
    int64_t t0 = rq->iov ? trestle__restore_now_ns(x) : 0;
    bool quick = false;
    for (size_t e = first; e < end && !trestle__restore_stopping(x); e++) {
        const trestle__extent *ext = &p->extents[e];
        trestle__ext_state *st = &x->ext[e];
        uint64_t s, t;
        if (!read_part(x, rq, e, &s, &t))
            continue;
        if (rq->iov && ext->num_pieces == 1 && !st->seam) {
            if (x->opt.verify)
                st->crcs[0] = trestle__crc32c(st->dest, (size_t)ext->size);
            x->wstats[w].copied += ext->size; /* its primary piece, read in place: */
            x->wstats[w].placed += ext->size; /* landed, with no copy to time */
            quick = true;
            continue;
        }
        if (rq->extent == TRESTLE__NO_EXTENT && groups(x, e, s, t)) {
            uint64_t bytes = t - s;
            size_t g = e + 1;
            for (uint64_t s2, t2; g < end && read_part(x, rq, g, &s2, &t2) && groups(x, g, s2, t2) &&
                                  bytes + (t2 - s2) <= TRESTLE__COPY_STEP; g++)
                bytes += t2 - s2;
            process_group(x, w, rq, e, g);
            e = g - 1;
            continue;
        }
        process_part(x, w, e, rq->seq,
                     rq->extent != TRESTLE__NO_EXTENT ? st->dest + s
                                                      : data + (ext->offset + s - rq->offset),
                     s, t - s);
    }
    if (quick)
        x->wstats[w].verify_seconds += (double)(trestle__restore_now_ns(x) - t0) * 1e-9;
}

/* The read's copies are done: its parts land (an extent whose last part
 * this was is finished), and its buffer goes back to the pool, as does
 * the conversion space its mark covers (engine/restore/restore_convert.c). */
static void land_read(trestle__restore *x, unsigned w, const trestle__pending *pd)
{
    trestle__worker_stats *ws = &x->wstats[w];
    if (pd->conv_end > ws->conv_free)
        ws->conv_free = pd->conv_end;
    trestle__ready_batch rb = { 0 };
    for (size_t e = pd->first; e < pd->end && !trestle__restore_stopping(x); e++) {
        uint64_t s, t;
        /* acq_rel: the last worker must see every other part's CRC slot and bytes. */
        if (read_part(x, pd->rq, e, &s, &t) &&
            atomic_fetch_sub_explicit(&x->ext[e].left, 1, memory_order_acq_rel) == 1)
            finish_extent(x, w, e, &rb);
    }
    trestle__restore_ready_flush(x, w, &rb);
    trestle__pool_release(&x->pool, pd->rq->buf_index);
}

/* How retire() waits. */
enum retire_wait {
    RETIRE_DONE,   /* only marks already complete; the oldest too when the ring is full */
    RETIRE_OLDEST, /* the oldest, waiting for it, then those already complete */
    RETIRE_ALL     /* every one, waiting for each */
};

/* Retire worker w's pending reads in order while their copies are done,
 * waiting as `how` says. After a failure or a cancellation the buffers
 * still go back only once their copies are done: a DMA still in flight
 * would read a buffer the next read (of this restore, or of a retry)
 * fills, and write into destinations the caller may free as soon as the
 * restore returns. */
static void retire(trestle__restore *x, unsigned w, enum retire_wait how)
{
    trestle__worker_stats *ws = &x->wstats[w];
    trestle__copier *cp = &x->copier;
    bool waited = false;
    while (ws->plen > 0) {
        trestle__pending cur = ws->pend[ws->phead], *pd = &cur;
        bool stopping = trestle__restore_stopping(x);
        bool wait = stopping || how == RETIRE_ALL || (how == RETIRE_OLDEST && !waited) ||
                    ws->plen == cp->marks;
        bool done = false;
        trestle_error le;
        if (cp->ops->retire(cp, w, wait, &done, &le) != TRESTLE_OK && !stopping) {
            /* The mark covers this read's copies: name its first tensor. */
            le.length = (int64_t)pd->rq->length;
            trestle__restore_fail_at(x, pd->first, pd->rq->offset, &le);
        }
        if (!done && !wait)
            return;
        waited = true;
        ws->phead = (ws->phead + 1) % cp->marks;
        ws->plen--;
        land_read(x, w, pd);
    }
}

/* A completed read: check and copy its bytes, then land it now (host
 * copies are done) or once its device copies are (the pending ring). */
static void handle_read(trestle__restore *x, unsigned w, trestle__read *rq)
{
    trestle__worker_stats *ws = &x->wstats[w];
    trestle__copier *cp = &x->copier;
    trestle__pending pd = { .rq = rq };
    read_extents(x, rq, &pd.first, &pd.end);
    process_read(x, w, rq, pd.first, pd.end);
    /* The conversions queued for this read are done when its mark is. */
    pd.conv_end = ws->conv_head;
    if (!cp->ops->mark) {
        land_read(x, w, &pd);
        return;
    }
    /* Marked even when stopping: copies may have been queued, and the
     * buffer goes back only once they are done (retire()). */
    trestle_error le;
    if (cp->ops->mark(cp, w, &le) != TRESTLE_OK) {
        le.length = (int64_t)rq->length;
        trestle__restore_fail_at(x, pd.first, rq->offset, &le);
        /* No mark covers the copies queued before the failure: wait for
         * them all before the buffer goes back to be read into. */
        trestle_error fe;
        cp->ops->fence(cp, w, &fe);
        land_read(x, w, &pd);
        return;
    }
    ws->pend[(ws->phead + ws->plen) % cp->marks] = pd;
    ws->plen++;
    retire(x, w, RETIRE_DONE);
}

void *trestle__restore_worker(void *arg)
{
    const trestle__worker_arg *a = arg;
    trestle__restore *x = a->x;
    trestle__worker_stats *ws = &x->wstats[a->index];

    /* Near the GPU's staging memory (engine/memory/numa.h), when that is known. */
    if (x->numa_cpus && trestle__numa_pin_thread(x->numa_cpus, NULL) == 0)
        atomic_fetch_add(&x->numa_pinned, 1);

    for (;;) {
        pthread_mutex_lock(&x->wq_mu);
        while (x->wq_len == 0 && !x->wq_closed && !atomic_load(&x->stop)) {
            if (ws->plen > 0) {
                /* Nothing to check: land the oldest read in flight rather
                 * than sit on buffers the producer needs, then look at the
                 * queue again (its buffer may bring the next read). */
                pthread_mutex_unlock(&x->wq_mu);
                retire(x, a->index, RETIRE_OLDEST);
                pthread_mutex_lock(&x->wq_mu);
                continue;
            }
            pthread_cond_wait(&x->wq_cv, &x->wq_mu);
        }
        if (atomic_load(&x->stop) || x->wq_len == 0) {
            pthread_mutex_unlock(&x->wq_mu);
            break;
        }
        trestle__read *rq = x->wq[x->wq_head];
        x->wq_head = (x->wq_head + 1) % x->wq_cap;
        x->wq_len--;
        pthread_mutex_unlock(&x->wq_mu);

        if (!trestle__restore_stopping(x))
            handle_read(x, a->index, rq);
        else
            trestle__pool_release(&x->pool, rq->buf_index);
    }
    retire(x, a->index, RETIRE_ALL);
    return NULL;
}

/* ---- figures ---- */

double trestle__restore_device_copy_seconds(const trestle__restore *x)
{
    if (!x->copier_open || !x->copier.ops->device_seconds)
        return 0;
    return x->copier.ops->device_seconds(&x->copier);
}
