/*
 * io_uring.c - the fast reader: one ring per restore, many reads in flight
 * across all shards, staging buffers registered for O_DIRECT reads
 * (IORING_OP_READ_FIXED skips the per-read page pinning) and shard fds
 * registered as fixed files.
 *
 * Sits under engine/restore/restore.c behind the interface in reader.h. The ring
 * is used by one thread only (the restore's producer), so it is created
 * SINGLE_ISSUER with deferred task work where the kernel allows: completions
 * are then processed only when that thread waits for them.
 *
 * Buffered reads are issued IOSQE_ASYNC: data in the page cache would
 * otherwise be copied inline by the producer inside io_uring_submit(), one
 * read after another on one core, while io-wq copies on every core.
 *
 * Registering a buffer pins (and so faults in) all of its memory, which
 * only O_DIRECT reads benefit from. So the buffer table starts sparse and a
 * staging buffer is registered the first time an O_DIRECT read uses it; a
 * restore served from the page cache touches only the buffers it recycles.
 *
 * Fixed-file table: slot s is shard s's buffered fd (-1, a sparse slot,
 * when the shard is missing), slot nshards + s its O_DIRECT fd, filled in
 * when the first O_DIRECT read of that shard is submitted. When buffer or
 * file registration is refused (RLIMIT_MEMLOCK, RLIMIT_NOFILE, old
 * kernels) the reader carries on with plain reads and says so in `note`.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <liburing.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include "error.h"
#include "reader.h"

#define SUBMIT_RETRIES 10000 /* EAGAIN from io_uring_submit: the kernel is short of memory */

struct trestle__uring {
    struct io_uring ring;   /* the one ring of this restore */
    bool sparse_bufs;       /* the buffer table exists; slots fill on first O_DIRECT use */
    unsigned char *buf_state; /* per staging buffer: BUF_* */
    size_t buf_bytes;       /* bytes per staging buffer */
    bool fixed_files;       /* fds registered: slot s buffered, nshards + s O_DIRECT */
    int nshards;
};

#define BUF_UNREGISTERED 0  /* plain reads */
#define BUF_REGISTERED 1    /* READ_FIXED */
#define BUF_REFUSED 2       /* registration failed: plain reads */

/* ---- setup ---- */

/* Try the cheapest ring setup first and fall back flag by flag: each flag
 * is refused with EINVAL by kernels that predate it. */
static int ring_init(struct io_uring *ring, unsigned entries)
{
    static const unsigned flag_sets[] = {
        IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
        IORING_SETUP_COOP_TASKRUN,
        0,
    };
    int ret = -EINVAL;
    for (size_t i = 0; i < sizeof flag_sets / sizeof flag_sets[0]; i++) {
        ret = io_uring_queue_init(entries, ring, flag_sets[i]);
        if (ret != -EINVAL)
            break;
    }
    return ret;
}

static void register_buffers(trestle__reader *r, const trestle__reader_config *cfg)
{
    struct trestle__uring *u = r->u.uring;
    u->buf_bytes = cfg->buf_bytes;
    u->buf_state = calloc(cfg->nbufs ? cfg->nbufs : 1, 1);
    int ret = u->buf_state ? io_uring_register_buffers_sparse(&u->ring, cfg->nbufs) : -ENOMEM;
    u->sparse_bufs = ret == 0;
    if (ret < 0 && cfg->expect_direct)
        snprintf(r->note, sizeof r->note, "io_uring: staging buffers not registered (%s)",
                 strerror(-ret));
}

/* Register staging buffer i for READ_FIXED on its first O_DIRECT read. */
static bool buffer_fixed(trestle__reader *r, const trestle__read *rq)
{
    struct trestle__uring *u = r->u.uring;
    unsigned i = rq->buf_index;
    if (!u->sparse_bufs || u->buf_state[i] == BUF_REFUSED)
        return false;
    if (u->buf_state[i] == BUF_UNREGISTERED) {
        struct iovec iov = { rq->buf, u->buf_bytes };
        __u64 tag = 0;
        int ret = io_uring_register_buffers_update_tag(&u->ring, i, &iov, &tag, 1);
        u->buf_state[i] = ret == 1 ? BUF_REGISTERED : BUF_REFUSED;
        if (ret != 1 && !r->note[0])
            snprintf(r->note, sizeof r->note, "io_uring: staging buffers not registered (%s)",
                     strerror(ret < 0 ? -ret : EINVAL));
    }
    return u->buf_state[i] == BUF_REGISTERED;
}

static void register_files(trestle__reader *r)
{
    struct trestle__uring *u = r->u.uring;
    int n = u->nshards;
    int *fds = malloc((size_t)(2 * n > 0 ? 2 * n : 1) * sizeof *fds);
    int ret = -ENOMEM;
    if (fds) {
        for (int s = 0; s < n; s++) {
            /* Shards open lazily (ckpt_shard.c): another plan may be opening
             * one this restore does not read, hence the atomic load. */
            int fd = __atomic_load_n(&r->ckpt->shard_fds[s], __ATOMIC_ACQUIRE);
            fds[s] = fd >= 0 ? fd : -1;
            fds[n + s] = -1;
        }
        ret = n > 0 ? io_uring_register_files(&u->ring, fds, (unsigned)(2 * n)) : -EINVAL;
        free(fds);
    }
    u->fixed_files = ret == 0;
    if (ret < 0 && n > 0 && !r->note[0])
        snprintf(r->note, sizeof r->note, "io_uring: shard files not registered (%s)",
                 strerror(-ret));
}

/* ---- submission ---- */

/* Queue the rest of rq (from rq->done on) and submit it. */
static int issue(trestle__reader *r, trestle__read *rq)
{
    struct trestle__uring *u = r->u.uring;
    int s = rq->shard;

    /* Another read of this shard found O_DIRECT refused: go buffered. */
    if (rq->direct && (r->direct_off[s] || r->direct_fds[s] < 0)) {
        if (rq->done == 0)
            trestle__read_prepare(rq, false);
        else
            rq->direct = false;
    }
    struct io_uring_sqe *sqe = io_uring_get_sqe(&u->ring);
    if (!sqe) {
        io_uring_submit(&u->ring);
        sqe = io_uring_get_sqe(&u->ring);
    }
    if (!sqe) {
        rq->status = TRESTLE_E_IO;
        rq->sys_errno = EBUSY;
        return rq->status;
    }
    int fd;
    if (u->fixed_files)
        fd = rq->direct ? u->nshards + s : s;
    else
        fd = rq->direct ? r->direct_fds[s] : r->ckpt->shard_fds[s];
    uint8_t *dst = rq->buf + rq->done;
    unsigned len = (unsigned)(rq->io_length - rq->done);
    uint64_t off = rq->io_offset + rq->done;
    if (rq->iov)
        io_uring_prep_readv(sqe, fd, rq->iov + rq->iov_at, rq->niov - rq->iov_at, off);
    else if (rq->direct && buffer_fixed(r, rq))
        io_uring_prep_read_fixed(sqe, fd, dst, len, off, (int)rq->buf_index);
    else
        io_uring_prep_read(sqe, fd, dst, len, off);
    if (u->fixed_files)
        sqe->flags |= IOSQE_FIXED_FILE;
    if (!rq->direct)
        sqe->flags |= IOSQE_ASYNC;
    io_uring_sqe_set_data(sqe, rq);

    /* Submitting also runs deferred completions, so the producer's next
     * non-blocking reap sees reads that io-wq has finished meanwhile. */
    for (int tries = 0;; tries++) {
        int ret = io_uring_submit_and_get_events(&u->ring);
        if (ret >= 0)
            return TRESTLE_OK;
        if ((ret == -EINTR || ret == -EAGAIN) && tries < SUBMIT_RETRIES) {
            sched_yield();
            continue;
        }
        rq->status = TRESTLE_E_IO;
        rq->sys_errno = -ret;
        return rq->status;
    }
}

static int uring_submit(trestle__reader *r, trestle__read *rq)
{
    struct trestle__uring *u = r->u.uring;
    int s = rq->shard;
    bool direct = false;

    if (r->status != TRESTLE_OK)
        return r->status;
    if (r->ckpt->shard_fds[s] < 0) {
        trestle__read_prepare(rq, false);
        rq->status = TRESTLE_E_NOT_FOUND;
        rq->sys_errno = r->ckpt->shard_errno[s] ? r->ckpt->shard_errno[s] : ENOENT;
        return trestle__reader_fail(r, rq);
    }
    if (rq->want_direct && !r->direct_off[s]) {
        if (trestle__direct_open(r, s) && u->fixed_files) {
            int fd = r->direct_fds[s];
            if (io_uring_register_files_update(&u->ring, (unsigned)(u->nshards + s), &fd, 1) != 1)
                r->direct_off[s] = 1; /* the fd stays open until close: harmless */
        }
        direct = r->direct_fds[s] >= 0 && !r->direct_off[s];
    }
    trestle__read_prepare(rq, direct);
    r->inflight++;
    if (issue(r, rq) != TRESTLE_OK) {
        r->inflight--;
        return trestle__reader_fail(r, rq);
    }
    return TRESTLE_OK;
}

/* ---- completion ---- */

static int uring_reap(trestle__reader *r, trestle__read **done, unsigned max, unsigned *n,
                      int timeout_ms)
{
    struct trestle__uring *u = r->u.uring;
    struct io_uring_cqe *cqe;

    *n = 0;
    if (r->status != TRESTLE_OK)
        return r->status;
    if (r->inflight == 0)
        return TRESTLE_OK;
    /* Without a timeout only look: reads served from the page cache
     * complete inside io_uring_submit(), and their CQEs are already there. */
    if (timeout_ms > 0) {
        struct __kernel_timespec ts = { .tv_sec = timeout_ms / 1000,
                                        .tv_nsec = (long long)(timeout_ms % 1000) * 1000000 };
        int ret = io_uring_wait_cqe_timeout(&u->ring, &cqe, &ts);
        if (ret == -ETIME || ret == -EINTR || ret == -EAGAIN)
            return TRESTLE_OK;
        if (ret < 0) {
            r->status = trestle__error_set(&r->err, TRESTLE_E_IO, -ret, NULL, NULL, -1, -1,
                                           "waiting for io_uring completions: %s",
                                           strerror(-ret));
            return r->status;
        }
    }
    while (*n < max && io_uring_peek_cqe(&u->ring, &cqe) == 0) {
        trestle__read *rq = io_uring_cqe_get_data(cqe);
        int64_t res = trestle__read_filter(r, rq, cqe->res);
        io_uring_cqe_seen(&u->ring, cqe);
        switch (trestle__read_step(rq, res)) {
        case TRESTLE__READ_DONE:
            r->inflight--;
            r->direct_reads += rq->was_direct;
            done[(*n)++] = rq;
            break;
        case TRESTLE__READ_NO_DIRECT:
            r->direct_off[rq->shard] = 1;
            /* fall through */
        case TRESTLE__READ_AGAIN:
            if (issue(r, rq) != TRESTLE_OK) {
                r->inflight--;
                return trestle__reader_fail(r, rq);
            }
            break;
        case TRESTLE__READ_FAILED:
            r->inflight--;
            return trestle__reader_fail(r, rq);
        }
    }
    return TRESTLE_OK;
}

/* The kernel may still be writing into staging buffers of reads in flight:
 * wait for each before the ring (and then the buffers) go away. */
static void uring_close(trestle__reader *r)
{
    struct trestle__uring *u = r->u.uring;
    if (!u)
        return;
    while (r->inflight > 0) {
        struct io_uring_cqe *cqe;
        int ret = io_uring_wait_cqe(&u->ring, &cqe);
        if (ret == -EINTR || ret == -EAGAIN)
            continue;
        if (ret < 0)
            break;
        io_uring_cqe_seen(&u->ring, cqe);
        r->inflight--;
    }
    io_uring_queue_exit(&u->ring);
    free(u->buf_state);
    free(u);
    r->u.uring = NULL;
    trestle__reader_base_free(r);
}

static const trestle__reader_ops uring_ops = {
    .name = "io_uring",
    .kind = TRESTLE_READER_IO_URING,
    .submit = uring_submit,
    .reap = uring_reap,
    .close = uring_close,
};

int trestle__reader_open_uring(trestle__reader *r, const trestle__reader_config *cfg,
                               trestle_error *err)
{
    struct trestle__uring *u = trestle__reader_base_open(r, cfg, sizeof *u, err);
    if (!u)
        return TRESTLE_E_NOMEM;
    unsigned entries = cfg->queue_depth ? cfg->queue_depth : 1;
    int ret;
    if (cfg->faults && cfg->faults->uring_setup_errno) {
        /* A test refuses the ring as seccomp or io_uring_disabled would (fault.h). */
        atomic_fetch_add(&cfg->faults->injected, 1);
        ret = -cfg->faults->uring_setup_errno;
    } else {
        ret = ring_init(&u->ring, entries);
    }
    if (ret < 0) {
        free(u);
        trestle__reader_base_free(r);
        return trestle__error_set(err, TRESTLE_E_NO_IO_URING, -ret, NULL, NULL, -1, -1,
                                  "io_uring unavailable (%s)", strerror(-ret));
    }
    r->ops = &uring_ops;
    r->u.uring = u;
    u->nshards = cfg->ckpt->num_shards;
    register_buffers(r, cfg);
    register_files(r);
    return TRESTLE_OK;
}
