/*
 * pool.h - the bounded staging memory of one restore: a fixed set of
 * equally sized, 4096-aligned buffers that reads land in and workers
 * verify and copy out of, carved out of one region of the plan's staging
 * memory (engine/memory/staging.h), so host memory stays bounded by
 * staging_bytes whatever the checkpoint size.
 *
 * A buffer is owned by exactly one stage at a time: free -> in flight at
 * the reader -> queued for a worker -> free again. The free list is a stack
 * under a mutex; acquire blocks (with a timeout, so the caller can poll for
 * cancellation) until a buffer comes back or the pool is stopped.
 */
#ifndef TRESTLE_POOL_H
#define TRESTLE_POOL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "trestle.h"

#define TRESTLE__POOL_ALIGN 4096 /* O_DIRECT and page alignment of every buffer */

typedef struct trestle__pool {
    pthread_mutex_t mu;   /* guards free_list, nfree and stopped */
    pthread_cond_t cv;    /* signalled when a buffer is released or the pool stops */
    uint8_t *region;      /* the region all buffers live in (the plan's staging memory) */
    uint8_t **bufs;       /* count buffers of buf_bytes each, inside region */
    unsigned *free_list;  /* stack of free buffer indexes */
    unsigned count;       /* buffers in the pool */
    unsigned nfree;       /* entries on free_list */
    uint64_t releases;    /* buffers given back so far (for trestle__pool_wait) */
    size_t buf_bytes;     /* usable bytes per buffer (a multiple of TRESTLE__POOL_ALIGN) */
    bool stopped;         /* acquire fails at once: the restore is stopping */
    bool sync_ready;      /* mu and cv are initialised */
} trestle__pool;

/*
 * `count` buffers of `buf_bytes` (a multiple of TRESTLE__POOL_ALIGN) at
 * `region`, which holds count x buf_bytes and outlives the pool.
 * TRESTLE_E_NOMEM on failure, with nothing left allocated; the pool may be
 * passed to trestle__pool_destroy() either way.
 */
int trestle__pool_init(trestle__pool *pool, unsigned count, size_t buf_bytes, uint8_t *region,
                       trestle_error *err);

/* Free the bookkeeping (not the region). The caller guarantees no read or
 * worker still uses a buffer. */
void trestle__pool_destroy(trestle__pool *pool);

/*
 * Take a free buffer: its index, or -1 when none became free within
 * `timeout_ms` (0 = do not wait) or the pool is stopped.
 */
int trestle__pool_acquire(trestle__pool *pool, int timeout_ms);

/* Give buffer `index` back and wake one waiter. */
void trestle__pool_release(trestle__pool *pool, unsigned index);

/* Wait until some buffer is given back, up to timeout_ms (or a stop). */
void trestle__pool_wait(trestle__pool *pool, int timeout_ms);

/* Make every present and future acquire fail (error or cancellation). */
void trestle__pool_stop(trestle__pool *pool);

#endif /* TRESTLE_POOL_H */
