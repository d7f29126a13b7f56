/*
 * pool.c - staging buffers for the restore pipeline (see pool.h).
 *
 * Sits between the readers and the copiers: the producer takes a buffer
 * before it submits a read, the worker that has verified and copied the
 * bytes gives it back. The memory is the plan's (engine/memory/staging.c: kept
 * across restores, pinned for device copies); the pool only hands it out.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "error.h"
#include "pool.h"

/* ---- the pool ---- */

int trestle__pool_init(trestle__pool *pool, unsigned count, size_t buf_bytes, uint8_t *region,
                       trestle_error *err)
{
    pthread_condattr_t attr;

    memset(pool, 0, sizeof *pool);
    pool->bufs = calloc(count ? count : 1, sizeof *pool->bufs);
    pool->free_list = calloc(count ? count : 1, sizeof *pool->free_list);
    if (!pool->bufs || !pool->free_list) {
        trestle__pool_destroy(pool);
        return trestle__error_simple(err, TRESTLE_E_NOMEM, "out of memory");
    }
    pool->region = region;
    pool->buf_bytes = buf_bytes;
    pool->count = count;
    /* Stack in reverse so that buffer 0 is handed out first. */
    for (unsigned i = 0; i < count; i++) {
        pool->bufs[i] = pool->region + (size_t)i * buf_bytes;
        pool->free_list[i] = count - 1 - i;
    }
    pool->nfree = count;

    /* Timed waits measure on the monotonic clock: wall-clock jumps must not
     * stretch or cut them. */
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_mutex_init(&pool->mu, NULL);
    pthread_cond_init(&pool->cv, &attr);
    pthread_condattr_destroy(&attr);
    pool->sync_ready = true;
    return TRESTLE_OK;
}

void trestle__pool_destroy(trestle__pool *pool)
{
    free(pool->bufs);
    free(pool->free_list);
    if (pool->sync_ready) {
        pthread_mutex_destroy(&pool->mu);
        pthread_cond_destroy(&pool->cv);
    }
    memset(pool, 0, sizeof *pool);
}

static void deadline_after(struct timespec *ts, int ms)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

int trestle__pool_acquire(trestle__pool *pool, int timeout_ms)
{
    struct timespec deadline;
    int index = -1;

    if (timeout_ms > 0)
        deadline_after(&deadline, timeout_ms);
    pthread_mutex_lock(&pool->mu);
    while (!pool->stopped && pool->nfree == 0 && timeout_ms > 0) {
        if (pthread_cond_timedwait(&pool->cv, &pool->mu, &deadline) == ETIMEDOUT)
            break;
    }
    if (!pool->stopped && pool->nfree > 0)
        index = (int)pool->free_list[--pool->nfree];
    pthread_mutex_unlock(&pool->mu);
    return index;
}

void trestle__pool_release(trestle__pool *pool, unsigned index)
{
    pthread_mutex_lock(&pool->mu);
    pool->free_list[pool->nfree++] = index;
    pool->releases++;
    /* Broadcast: the producer may wait for a release while holding none. */
    pthread_cond_broadcast(&pool->cv);
    pthread_mutex_unlock(&pool->mu);
}

void trestle__pool_wait(trestle__pool *pool, int timeout_ms)
{
    struct timespec deadline;
    deadline_after(&deadline, timeout_ms);
    pthread_mutex_lock(&pool->mu);
    uint64_t seen = pool->releases;
    while (!pool->stopped && pool->releases == seen)
        if (pthread_cond_timedwait(&pool->cv, &pool->mu, &deadline) == ETIMEDOUT)
            break;
    pthread_mutex_unlock(&pool->mu);
}

void trestle__pool_stop(trestle__pool *pool)
{
    pthread_mutex_lock(&pool->mu);
    pool->stopped = true;
    pthread_cond_broadcast(&pool->cv);
    pthread_mutex_unlock(&pool->mu);
}
