/*
 * restore_produce.c - the producing half of a restore (engine/restore/restore.c
 * sets it up): from the calling thread, keep up to queue_depth reads in
 * flight, each into a staging buffer, a destination, or scattered over the
 * destinations of a run of small tensors, and hand every completed read to
 * the workers' queue (engine/restore/restore_worker.c). A failed read is
 * recorded naming the tensor whose bytes were at its offset.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "restore.h"

#define WAIT_MS 50                     /* longest sleep before re-checking cancellation */
#define REAP_BATCH 64                  /* completions taken per reap */

/* A read failed: the reader's error, prefixed with "tensor 'NAME'" for the
 * tensor whose bytes were at the failing offset (the first of that shard to
 * end after it), e.g. "tensor 'w': reading PATH at offset N: Input/output
 * error". */
static void fail_read(trestle__restore *x)
{
    const trestle_plan *p = x->plan;
    const trestle__read *rq = x->reader.failed;
    trestle_error e = x->reader.err;

    if (rq && p->num_extents > 0) {
        uint64_t at = e.offset >= 0 ? (uint64_t)e.offset : rq->offset;
        size_t pick = p->batches[rq->batch].first_extent;
        for (size_t i = 0; i < p->num_extents; i++) {
            const trestle__extent *ext = &p->extents[i];
            if (ext->shard == rq->shard && ext->offset + ext->size > at) {
                pick = i;
                break;
            }
        }
        const char *name = trestle__restore_tensor_name(x, pick);
        trestle__error_prefix(&e, "tensor '%s'", name);
        trestle__error_set_key(&e, name);
    }
    trestle__restore_fail(x, &e);
}

static void queue_push(trestle__restore *x, trestle__read *rq)
{
    pthread_mutex_lock(&x->wq_mu);
    x->wq[(x->wq_head + x->wq_len) % x->wq_cap] = rq; /* one slot per buffer: never full */
    x->wq_len++;
    pthread_cond_signal(&x->wq_cv);
    pthread_mutex_unlock(&x->wq_mu);
}

/* Completed reads waiting for a worker. */
static unsigned queue_len(trestle__restore *x)
{
    pthread_mutex_lock(&x->wq_mu);
    unsigned n = x->wq_len;
    pthread_mutex_unlock(&x->wq_mu);
    return n;
}

/* Hand completed reads to the workers, waiting up to timeout_ms for the
 * first. False after a read failed (the error is recorded). */
static bool collect(trestle__restore *x, unsigned *inflight, int64_t *last_done, int timeout_ms)
{
    trestle__read *done[REAP_BATCH];
    unsigned n = 0;
    if (x->reader.ops->reap(&x->reader, done, REAP_BATCH, &n, timeout_ms) != TRESTLE_OK) {
        fail_read(x);
        return false;
    }
    if (n > 0)
        *last_done = trestle__restore_now_ns(x);
    for (unsigned i = 0; i < n; i++) {
        x->bytes_read += done[i]->length;
        queue_push(x, done[i]);
    }
    *inflight -= n;
    return true;
}

/* Read `seq` is a page-cache hit, which needs a shallower queue. */
static bool cached(const trestle__restore *x, uint64_t seq)
{
    return x->batch_mode[x->segs[seq].batch] == TRESTLE__BATCH_CACHED;
}

/* The iovecs of read sg, which lands whole in its extents' destinations
 * (the gaps between them in the sink); returns how many. */
static unsigned scatter(const trestle__restore *x, const trestle__seg *sg, struct iovec *iov)
{
    const trestle__extent *ext = &x->plan->extents[sg->extent];
    uint64_t at = sg->offset;
    unsigned n = 0;
    for (size_t e = sg->extent; e < sg->extent + sg->span; e++, ext++) {
        if (ext->size == 0)
            continue;
        bool gap = at < ext->offset;
        for (; at < ext->offset; at += TRESTLE__GAP_SINK) /* the sink is this large */
            iov[n++] = (struct iovec){ x->gap_sink, (size_t)(ext->offset - at < TRESTLE__GAP_SINK
                                                              ? ext->offset - at
                                                              : TRESTLE__GAP_SINK) };
        /* Destinations end to end (the arena lies in file order, so small
         * tensors whose sizes are multiples of its alignment do) are one. */
        if (!gap && n > 0 &&
            (uint8_t *)iov[n - 1].iov_base + iov[n - 1].iov_len == x->ext[e].dest)
            iov[n - 1].iov_len += (size_t)ext->size;
        else
            iov[n++] = (struct iovec){ x->ext[e].dest, (size_t)ext->size };
        at = ext->offset + ext->size;
    }
    return n;
}

/*
 * Keep up to queue_depth reads in flight, each into a staging buffer, and
 * queue every completed one for the workers, issuing them in `order`
 * (across shards, engine/restore/restore_layout.c). Returns when every read has
 * completed, or at the first error or cancellation.
 *
 * Completions are collected after every submission too, without waiting,
 * and no read is started while the workers already have a backlog: reads
 * served from the page cache finish at once, faster than they can be
 * checked, and without the brake they would only fill (and fault in) all
 * of the staging memory. With slow storage the backlog stays empty and
 * queue_depth reads stay in flight.
 */
void trestle__restore_produce(trestle__restore *x, const uint64_t *order)
{
    const trestle_plan *p = x->plan;
    trestle__reader *r = &x->reader;
    uint64_t ri = 0;
    unsigned inflight = 0;
    unsigned depth = x->opt.queue_depth < x->pool.count ? x->opt.queue_depth : x->pool.count;
    /* Page-cache hits need no queue: one read per core in flight suffices. */
    unsigned cached_depth = x->nthreads + 2 < depth ? x->nthreads + 2 : depth;
    unsigned backlog = 2 * x->nthreads;
    int held = -1;
    int64_t first_submit = -1, last_done = -1;

    while (!trestle__restore_stopping(x)) {
        while (ri < x->nreads && queue_len(x) < backlog &&
               inflight < (cached(x, order[ri]) ? cached_depth : depth)) {
            /* A destination read takes a token too: it bounds reads and queue alike. */
            int bi = held >= 0 ? held : trestle__pool_acquire(&x->pool, 0);
            held = -1;
            if (bi < 0)
                break;
            uint64_t seq = order[ri];
            const trestle__seg *sg = &x->segs[seq];
            trestle__read *rq = &x->reqs[bi];
            rq->shard = p->batches[sg->batch].shard;
            rq->offset = sg->offset;
            rq->length = sg->length;
            rq->buf_index = (unsigned)bi;
            rq->seq = seq;
            rq->batch = sg->batch;
            rq->extent = sg->extent;
            rq->span = sg->span;
            rq->iov = NULL;
            rq->niov = 0;
            if (sg->extent == TRESTLE__NO_EXTENT) {
                rq->buf = x->pool.bufs[bi];
                rq->want_direct = x->batch_mode[sg->batch] == TRESTLE__BATCH_DIRECT;
            } else {
                const trestle__extent *ext = &p->extents[sg->extent];
                rq->want_direct = false;
                if (sg->scatter) {
                    rq->buf = x->ext[sg->extent].dest; /* unused: the iovecs say where */
                    rq->iov = x->iovs + (size_t)bi * TRESTLE__READ_MAX_IOV;
                    rq->niov = scatter(x, sg, rq->iov);
                } else {
                    rq->buf = x->ext[sg->extent].dest + (sg->offset - ext->offset);
                }
                if (x->ext[sg->extent].mapped) {
                    /* host_map: the bytes are already in place in the
                     * shard's mapping; the workers only check them. The
                     * pool token still bounds the queue. */
                    rq->skip = 0;
                    rq->was_direct = false;
                    x->bytes_read += rq->length;
                    x->bytes_mapped += rq->length;
                    queue_push(x, rq);
                    ri++;
                    continue;
                }
            }
            if (first_submit < 0)
                first_submit = trestle__restore_now_ns(x);
            if (r->ops->submit(r, rq) != TRESTLE_OK) {
                trestle__pool_release(&x->pool, (unsigned)bi);
                fail_read(x);
                goto out;
            }
            inflight++;
            ri++;
            if (!collect(x, &inflight, &last_done, 0))
                goto out;
        }
        if (ri == x->nreads && inflight == 0)
            break;
        bool more = ri < x->nreads && inflight < (cached(x, order[ri]) ? cached_depth : depth);
        if (more && queue_len(x) >= backlog) {
            /* The workers are behind: wait for one to finish a chunk. */
            trestle__pool_wait(&x->pool, WAIT_MS);
            if (!collect(x, &inflight, &last_done, 0))
                break;
            continue;
        }
        if (inflight == 0) {
            /* Every buffer is with the workers: wait for one to come back. */
            held = trestle__pool_acquire(&x->pool, WAIT_MS);
            continue;
        }
        if (!collect(x, &inflight, &last_done, WAIT_MS))
            break;
    }
out:
    if (held >= 0)
        trestle__pool_release(&x->pool, (unsigned)held);
    if (first_submit >= 0 && last_done >= first_submit)
        x->read_seconds = (double)(last_done - first_submit) * 1e-9;
}
