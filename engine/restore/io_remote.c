/*
 * io_remote.c - the reader of remote objects (reader.h), for a checkpoint
 * opened from a gs://, s3:// or http(s):// URL: every read the producer
 * submits becomes one ranged GET of its shard object, issued by a fetcher
 * (engine/remote/) that keeps up to `connections` of them in flight over
 * reused connections, retries what object stores are expected to fail,
 * and pins each GET to the version the open's HEAD saw. Reads are the
 * restore's chunks (8 MiB by default, aligned to the plan's batches), and
 * each holds a staging buffer or its destination while in flight, so the
 * staging pool bounds the bytes in flight as it does for local reads.
 *
 * Integrity beyond the tensors' own CRC32C: where the store reports a
 * whole-object CRC32C (GCS always, S3 for objects uploaded with one), the
 * CRC32C of each range is computed as its bytes arrive, and once a
 * shard's ranges cover the whole object they are combined in offset
 * order (crc32c_combine) and compared with the store's: the object is
 * then verified byte for byte, gaps between tensors included.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crc32c.h"
#include "error.h"
#include "reader.h"
#include "remote.h"

/* One range read of a shard, for the whole-object check. */
typedef struct piece {
    uint64_t offset, length;
    uint32_t crc;
} piece;

/* What has been read of one shard. */
typedef struct cover {
    uint64_t bytes;   /* sum of the lengths read */
    piece *pieces;    /* with their CRCs, when the store has the object's */
    size_t n, cap;
    bool judged;      /* the whole-object verdict is in */
} cover;

struct trestle__rreader {
    trestle__fetcher *f;
    trestle__xfer *xfers;   /* one per staging buffer: a read in flight holds one */
    unsigned nxfers;
    cover *covers;          /* per shard */
};

#define REAP_MAX 64

static int piece_cmp(const void *a, const void *b)
{
    const piece *x = a, *y = b;
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

/* A shard's ranges cover its object: combine their CRCs and hold the
 * result against the store's. Overlapping ranges (not made by one plan)
 * are left unjudged. */
static int judge_object(trestle__reader *r, int shard, cover *cv)
{
    const trestle__object *o = &r->ckpt->remote_shards[shard];
    cv->judged = true;
    r->remote.objects_whole++;
    if (!o->has_crc32c)
        return TRESTLE_OK;
    qsort(cv->pieces, cv->n, sizeof *cv->pieces, piece_cmp);
    uint64_t at = 0;
    uint32_t crc = 0;
    for (size_t i = 0; i < cv->n; i++) {
        if (cv->pieces[i].offset != at)
            return TRESTLE_OK;
        crc = i == 0 ? cv->pieces[i].crc
                     : trestle__crc32c_combine(crc, cv->pieces[i].crc, cv->pieces[i].length);
        at += cv->pieces[i].length;
    }
    if (at != o->size)
        return TRESTLE_OK;
    if (crc == o->crc32c) {
        r->remote.objects_verified++;
        return TRESTLE_OK;
    }
    trestle__error_set(&r->err, TRESTLE_E_CRC_MISMATCH, 0, NULL, o->display, 0, (int64_t)o->size,
                       "object %s: the CRC32C of the %zu ranges read (the whole object, %" PRIu64
                       " bytes) is %08x, but the store's %s says %08x", o->display, cv->n,
                       o->size, crc, o->crc_source, o->crc32c);
    r->status = TRESTLE_E_CRC_MISMATCH;
    r->failed = NULL;
    return r->status;
}

/* Account one completed range of `shard`. */
static int account(trestle__reader *r, const trestle__xfer *x, int shard)
{
    cover *cv = &r->u.remote->covers[shard];
    const trestle__object *o = x->obj;
    if (cv->judged)
        return TRESTLE_OK;
    cv->bytes += x->length;
    if (o->has_crc32c) {
        if (cv->n == cv->cap) {
            size_t cap = cv->cap ? 2 * cv->cap : 16;
            piece *grown = realloc(cv->pieces, cap * sizeof *grown);
            if (!grown) {
                cv->judged = true; /* cannot keep count: leave the object unjudged */
                return TRESTLE_OK;
            }
            cv->pieces = grown;
            cv->cap = cap;
        }
        cv->pieces[cv->n++] = (piece){ x->offset, x->length, x->crc };
    }
    return cv->bytes >= o->size ? judge_object(r, shard, cv) : TRESTLE_OK;
}

static int remote_submit(trestle__reader *r, trestle__read *rq)
{
    struct trestle__rreader *m = r->u.remote;
    if (r->status != TRESTLE_OK)
        return r->status;
    trestle__read_prepare(rq, false);
    trestle__xfer *x = &m->xfers[rq->buf_index];
    const trestle__object *o = &r->ckpt->remote_shards[rq->shard];
    *x = (trestle__xfer){ .kind = TRESTLE__XFER_RANGE, .obj = (trestle__object *)o,
                          .offset = rq->offset, .length = rq->length, .buf = rq->buf,
                          .want_crc = o->has_crc32c, .user = rq };
    trestle__fetcher_submit(m->f, x);
    r->inflight++;
    return TRESTLE_OK;
}

static int remote_reap(trestle__reader *r, trestle__read **done, unsigned max, unsigned *n,
                       int timeout_ms)
{
    struct trestle__rreader *m = r->u.remote;
    trestle__xfer *xs[REAP_MAX];
    *n = 0;
    if (r->status != TRESTLE_OK)
        return r->status;
    if (r->inflight == 0)
        return TRESTLE_OK;
    unsigned got = trestle__fetcher_reap(m->f, xs, max < REAP_MAX ? max : REAP_MAX, timeout_ms);
    for (unsigned i = 0; i < got; i++) {
        trestle__xfer *x = xs[i];
        trestle__read *rq = x->user;
        r->inflight--;
        if (r->status != TRESTLE_OK)
            continue;
        if (x->status != TRESTLE_OK) {
            /* The fetcher's error names the URL, range, status and attempts. */
            r->err = x->err;
            r->status = x->status;
            r->failed = rq;
            rq->status = x->status;
            continue;
        }
        rq->done = rq->length;
        if (account(r, x, rq->shard) != TRESTLE_OK)
            continue;
        done[(*n)++] = rq;
    }
    return r->status;
}

/* Keep the fetcher's counts for the stats, which are filled after close. */
static void keep_counts(trestle__reader *r)
{
    trestle__remote_counts c;
    trestle__fetcher_counts(r->u.remote->f, &c);
    r->remote.requests = c.requests;
    r->remote.retries = c.retries;
    r->remote.bytes_fetched = c.bytes_fetched;
}

static void remote_close(trestle__reader *r)
{
    struct trestle__rreader *m = r->u.remote;
    if (!m)
        return;
    if (m->f) {
        keep_counts(r);
        trestle__fetcher_close(m->f); /* aborts what is in flight, at once */
    }
    for (int s = 0; m->covers && s < r->ckpt->num_shards; s++)
        free(m->covers[s].pieces);
    free(m->covers);
    free(m->xfers);
    free(m);
    r->u.remote = NULL;
    r->inflight = 0;
    trestle__reader_base_free(r);
}

static const trestle__reader_ops remote_ops = {
    .name = "remote",
    .kind = TRESTLE_READER_REMOTE,
    .submit = remote_submit,
    .reap = remote_reap,
    .close = remote_close,
};

int trestle__reader_open_remote(trestle__reader *r, const trestle__reader_config *cfg,
                                int asked, trestle_error *err)
{
    const trestle_checkpoint *c = cfg->ckpt;
    if (!c->store)
        return trestle__error_simple(err, TRESTLE_E_INVALID_ARG,
                                     "reader REMOTE reads checkpoints opened from a URL; %s is "
                                     "a local path", c->prefix);
    if (asked != TRESTLE_READER_AUTO && asked != TRESTLE_READER_REMOTE)
        return trestle__error_simple(err, TRESTLE_E_INVALID_ARG,
                                     "checkpoint %s was opened from a URL: only the remote "
                                     "reader (AUTO or REMOTE) reads it", c->prefix);
    struct trestle__rreader *m = trestle__reader_base_open(r, cfg, sizeof *m, err);
    if (!m)
        return TRESTLE_E_NOMEM;
    r->ops = &remote_ops;
    r->u.remote = m;
    m->nxfers = cfg->nbufs;
    m->xfers = calloc(cfg->nbufs ? cfg->nbufs : 1, sizeof *m->xfers);
    m->covers = calloc(c->num_shards > 0 ? (size_t)c->num_shards : 1, sizeof *m->covers);
    if (!m->xfers || !m->covers) {
        remote_close(r);
        return trestle__error_simple(err, TRESTLE_E_NOMEM, "out of memory");
    }
    int rc = trestle__fetcher_open(c->store, 0, &m->f, err);
    if (rc != TRESTLE_OK) {
        remote_close(r);
        return rc;
    }
    return TRESTLE_OK;
}

void trestle__reader_remote_stats(const trestle__reader *r, trestle_stats *st)
{
    st->bytes_fetched = r->remote.bytes_fetched;
    st->remote_requests = r->remote.requests;
    st->remote_retries = r->remote.retries;
    st->objects_whole = r->remote.objects_whole;
    st->objects_verified = r->remote.objects_verified;
}
