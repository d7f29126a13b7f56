/*
 * remote_ceiling.c - trestle_remote_ceiling(): what plain parallel ranged
 * GETs of a plan's bytes achieve, and nothing else: the yardstick `trestle
 * bench URL` holds a remote restore's read stage against, measured in the
 * same run, over the same store, connections and chunks. Each batch of the
 * plan is cut into chunk-sized ranges, as the restore cuts it; the ranges
 * go through a fetcher of their own (engine/remote/), as many at once as
 * the store allows, each into one of as many scratch buffers; no CRC, no
 * copy, no staging pool.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "error.h"
#include "plan.h"
#include "remote.h"

#define REAP_MAX 64

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

int trestle_remote_ceiling(const trestle_plan *p, uint64_t chunk_bytes,
                           trestle_remote_ceiling_result *out, trestle_error *err)
{
    trestle_error_clear(err);
    if (!p || !out)
        return trestle__error_simple(err, TRESTLE_E_INVALID_ARG, "NULL %s", p ? "out" : "plan");
    memset(out, 0, sizeof *out);
    const trestle_checkpoint *c = p->ckpt;
    if (!c->store)
        return trestle__error_simple(err, TRESTLE_E_INVALID_ARG,
                                     "trestle_remote_ceiling: %s was not opened from a URL",
                                     c->prefix);
    uint64_t chunk = chunk_bytes ? chunk_bytes : (uint64_t)8 << 20;
    unsigned slots = trestle__store_config(c->store)->connections;
    /* No more scratch than there are ranges to fetch. */
    uint64_t ranges = 0;
    for (size_t k = 0; k < p->num_batches; k++)
        ranges += (p->batches[k].length + chunk - 1) / chunk;
    if (ranges < slots)
        slots = ranges ? (unsigned)ranges : 1;
    trestle__fetcher *f = NULL;
    trestle__xfer *xs = calloc(slots, sizeof *xs);
    uint8_t *scratch = aligned_alloc(4096, (size_t)slots * chunk);
    trestle__xfer **free_slots = calloc(slots, sizeof *free_slots);
    int rc;

    TR_FAIL_IF(!xs || !scratch || !free_slots, err, TRESTLE_E_NOMEM, "out of memory");
    /* Page-aligned (as staging is: a misaligned target halves memcpy's
     * rate here) and faulted in before the clock starts, as a restore's
     * reused staging is. */
    memset(scratch, 0, (size_t)slots * chunk);
    TR_FORWARD(trestle__fetcher_open(c->store, slots, &f, err));
    for (unsigned i = 0; i < slots; i++)
        free_slots[i] = &xs[i];
    unsigned nfree = slots, inflight = 0;
    size_t b = 0;
    uint64_t at = p->num_batches ? p->batches[0].offset : 0;
    double t0 = now_s();
    while (b < p->num_batches || inflight > 0) {
        while (nfree > 0 && b < p->num_batches) {
            const trestle__batch *bt = &p->batches[b];
            uint64_t end = bt->offset + bt->length;
            if (at >= end || bt->length == 0) {
                if (++b < p->num_batches)
                    at = p->batches[b].offset;
                continue;
            }
            trestle__xfer *x = free_slots[--nfree];
            uint8_t *buf = scratch + (size_t)(x - xs) * chunk;
            uint64_t n = end - at < chunk ? end - at : chunk;
            *x = (trestle__xfer){ .kind = TRESTLE__XFER_RANGE,
                                  .obj = &c->remote_shards[bt->shard], .offset = at,
                                  .length = n, .buf = buf };
            trestle__fetcher_submit(f, x);
            inflight++;
            at += n;
        }
        trestle__xfer *done[REAP_MAX];
        unsigned got = trestle__fetcher_reap(f, done, REAP_MAX, 100);
        for (unsigned i = 0; i < got; i++) {
            inflight--;
            if (done[i]->status != TRESTLE_OK && rc == TRESTLE_OK) {
                rc = done[i]->status;
                if (err)
                    *err = done[i]->err;
            }
            out->bytes += done[i]->length;
            free_slots[nfree++] = done[i];
        }
        if (rc != TRESTLE_OK)
            goto fail;
    }
    out->seconds = now_s() - t0;
    trestle__remote_counts counts;
    trestle__fetcher_counts(f, &counts);
    out->requests = counts.requests;
fail:
    trestle__fetcher_close(f);
    free(free_slots);
    free(scratch);
    free(xs);
    return rc;
}
