/*
 * io_pread.c - the fallback reader: a small pool of threads doing pread(2),
 * for kernels and sandboxes where io_uring is missing or forbidden
 * (containers commonly return EPERM or ENOSYS from io_uring_setup).
 *
 * Same contract as the io_uring reader (reader.h): the producer submits
 * reads into a FIFO, up to MAX_THREADS threads each take one, read it
 * completely (retrying EINTR, EAGAIN and short reads; O_DIRECT with
 * aligned ranges when asked) and put it on the completed list, which the
 * producer drains with reap(). Closing lets each thread finish the read in
 * its hands (the staging buffer must not be freed under it) and drops reads
 * that were queued but never started.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "deadline.h"
#include "error.h"
#include "reader.h"

#define MAX_THREADS 16 /* more threads than this only add contention on the page cache */

struct trestle__preader {
    pthread_mutex_t mu;        /* guards everything below and the reader's direct_* tables */
    pthread_cond_t work_cv;    /* a read was queued, or the reader is closing */
    pthread_cond_t done_cv;    /* a read completed (waits on CLOCK_MONOTONIC) */
    trestle__read *todo_head, *todo_tail; /* submitted, not started */
    trestle__read *done_head, *done_tail; /* finished (completely or failed) */
    bool closing;              /* threads exit instead of taking more work */
    pthread_t threads[MAX_THREADS];
    unsigned nthreads;         /* threads started */
    trestle__reader *r;        /* the reader this state belongs to */
};

static void push(trestle__read **head, trestle__read **tail, trestle__read *rq)
{
    rq->next = NULL;
    if (*tail)
        (*tail)->next = rq;
    else
        *head = rq;
    *tail = rq;
}

static trestle__read *pop(trestle__read **head, trestle__read **tail)
{
    trestle__read *rq = *head;
    if (rq) {
        *head = rq->next;
        if (!*head)
            *tail = NULL;
    }
    return rq;
}

/* Read all of rq; its status says how it ended. Runs without the lock. */
static void read_fully(struct trestle__preader *p, trestle__read *rq)
{
    trestle__reader *r = p->r;
    int s = rq->shard;
    for (;;) {
        int fd = rq->direct ? r->direct_fds[s] : r->ckpt->shard_fds[s];
        size_t len = (size_t)(rq->io_length - rq->done);
        off_t at = (off_t)(rq->io_offset + rq->done);
        ssize_t got = rq->iov ? preadv(fd, rq->iov + rq->iov_at, (int)(rq->niov - rq->iov_at), at)
                              : pread(fd, rq->buf + rq->done, len, at);
        int64_t res = trestle__read_filter(r, rq, got < 0 ? -(int64_t)errno : (int64_t)got);
        switch (trestle__read_step(rq, res)) {
        case TRESTLE__READ_DONE:
        case TRESTLE__READ_FAILED:
            return;
        case TRESTLE__READ_NO_DIRECT:
            pthread_mutex_lock(&p->mu);
            r->direct_off[s] = 1;
            pthread_mutex_unlock(&p->mu);
            break;
        case TRESTLE__READ_AGAIN:
            break;
        }
    }
}

static void *reader_thread(void *arg)
{
    struct trestle__preader *p = arg;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->closing && !p->todo_head)
            pthread_cond_wait(&p->work_cv, &p->mu);
        if (p->closing)
            break;
        trestle__read *rq = pop(&p->todo_head, &p->todo_tail);
        pthread_mutex_unlock(&p->mu);
        read_fully(p, rq);
        pthread_mutex_lock(&p->mu);
        push(&p->done_head, &p->done_tail, rq);
        pthread_cond_signal(&p->done_cv);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

static int pread_submit(trestle__reader *r, trestle__read *rq)
{
    struct trestle__preader *p = r->u.pread;
    int s = rq->shard;

    if (r->status != TRESTLE_OK)
        return r->status;
    if (r->ckpt->shard_fds[s] < 0) {
        trestle__read_prepare(rq, false);
        rq->status = TRESTLE_E_NOT_FOUND;
        rq->sys_errno = r->ckpt->shard_errno[s] ? r->ckpt->shard_errno[s] : ENOENT;
        return trestle__reader_fail(r, rq);
    }
    pthread_mutex_lock(&p->mu);
    bool direct = false;
    if (rq->want_direct && !r->direct_off[s]) {
        trestle__direct_open(r, s);
        direct = r->direct_fds[s] >= 0;
    }
    trestle__read_prepare(rq, direct);
    push(&p->todo_head, &p->todo_tail, rq);
    r->inflight++;
    pthread_cond_signal(&p->work_cv);
    pthread_mutex_unlock(&p->mu);
    return TRESTLE_OK;
}

static int pread_reap(trestle__reader *r, trestle__read **done, unsigned max, unsigned *n,
                      int timeout_ms)
{
    struct trestle__preader *p = r->u.pread;
    trestle__read *failed = NULL;

    *n = 0;
    if (r->status != TRESTLE_OK)
        return r->status;
    if (r->inflight == 0)
        return TRESTLE_OK;
    pthread_mutex_lock(&p->mu);
    if (!p->done_head && timeout_ms > 0) {
        struct timespec deadline;
        trestle__deadline_after(&deadline, timeout_ms);
        while (!p->done_head)
            if (pthread_cond_timedwait(&p->done_cv, &p->mu, &deadline) == ETIMEDOUT)
                break;
    }
    while (*n < max && p->done_head) {
        trestle__read *rq = pop(&p->done_head, &p->done_tail);
        r->inflight--;
        if (rq->status != TRESTLE_OK) {
            if (!failed)
                failed = rq;
            continue;
        }
        r->direct_reads += rq->was_direct;
        done[(*n)++] = rq;
    }
    pthread_mutex_unlock(&p->mu);
    return failed ? trestle__reader_fail(r, failed) : TRESTLE_OK;
}

static void pread_close(trestle__reader *r)
{
    struct trestle__preader *p = r->u.pread;
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->closing = true;
    pthread_cond_broadcast(&p->work_cv);
    pthread_mutex_unlock(&p->mu);
    for (unsigned i = 0; i < p->nthreads; i++)
        pthread_join(p->threads[i], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->work_cv);
    pthread_cond_destroy(&p->done_cv);
    free(p);
    r->u.pread = NULL;
    r->inflight = 0;
    trestle__reader_base_free(r);
}

static const trestle__reader_ops pread_ops = {
    .name = "pread",
    .kind = TRESTLE_READER_PREAD,
    .submit = pread_submit,
    .reap = pread_reap,
    .close = pread_close,
};

int trestle__reader_open_pread(trestle__reader *r, const trestle__reader_config *cfg,
                               trestle_error *err)
{
    struct trestle__preader *p = trestle__reader_base_open(r, cfg, sizeof *p, err);
    if (!p)
        return TRESTLE_E_NOMEM;
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->work_cv, NULL);
    pthread_cond_init(&p->done_cv, &attr);
    pthread_condattr_destroy(&attr);
    p->r = r;
    r->ops = &pread_ops;
    r->u.pread = p;

    unsigned want = cfg->queue_depth < MAX_THREADS ? cfg->queue_depth : MAX_THREADS;
    if (want == 0)
        want = 1;
    int ret = 0;
    while (p->nthreads < want) {
        ret = pthread_create(&p->threads[p->nthreads], NULL, reader_thread, p);
        if (ret != 0)
            break;
        p->nthreads++;
    }
    if (p->nthreads == 0) {
        pread_close(r);
        return trestle__error_set(err, TRESTLE_E_NOMEM, ret, NULL, NULL, -1, -1,
                                  "cannot start pread threads: %s", strerror(ret));
    }
    return TRESTLE_OK;
}
