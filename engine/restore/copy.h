/*
 * copy.h - the internal copier interface: how verified staging bytes reach
 * their destinations. The host copier (engine/restore/copy_host.c) uses
 * memcpy and a range-restricted N-d copy; the CUDA copier
 * (engine/restore/copy_cuda.c) issues asynchronous copies and scatter
 * kernels on per-worker streams out of pinned staging memory, and the
 * multi-device copier (engine/restore/copy_multi.c) fans one staging
 * buffer out to several GPUs, all behind the same table. The CUDA calls
 * made outside a copier (pinning, device arenas) are engine/memory/cuda_host.h.
 *
 * Calls come from the restore's worker threads; `worker` (0..workers-1)
 * lets a backend keep per-worker state (a CUDA stream) without locks.
 * Copies may complete asynchronously. A worker marks the end of each
 * staging buffer's copies (mark()) and retires the marks in order
 * (retire()): only then is the buffer reused and its ops reported ready.
 * wait_mark() waits for a later mark without retiring it (a conversion
 * buffer filled under it is then free); fence() waits for everything the
 * worker has queued. close() returns only when nothing queued still runs,
 * also after a failure. The host copier copies synchronously: it has no
 * marks, and its fence does nothing.
 */
#ifndef TRESTLE_COPY_H
#define TRESTLE_COPY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "plan.h"
#include "trestle.h"
#include "trestle_kernels.h"

typedef struct trestle__copier trestle__copier;
struct trestle__staging; /* engine/memory/staging.h */

typedef struct trestle__copier_ops {
    const char *name; /* "host", "cuda" */
    /* The arena for a restore's DEST_ALLOCATE ops, `bytes` (> 0) in all:
     * host memory or this copier's device memory; it carries its own
     * release hook (plan.h), so trestle_plan_free() and
     * trestle_arena_free() need not know which. */
    int (*arena_alloc)(trestle__copier *c, uint64_t bytes, trestle_arena **out,
                       trestle_error *err);
    /* Optional (NULL for host): tell the copier about a pinned host region
     * that copies read from (the staging pool, the dtype conversion
     * buffers; engine/memory/staging.c pins them), before the first copy out of
     * it, so that kernels can read it through its device address. */
    int (*staging_add)(trestle__copier *c, void *base, size_t bytes, trestle_error *err);
    /* Copy n staging bytes verbatim to dst. Returns n. */
    uint64_t (*copy)(trestle__copier *c, unsigned worker, void *dst, const void *src, uint64_t n);
    /*
     * Region piece: `src` holds bytes [lo, lo + n) of the extent, whose whole
     * block is laid out row-major over r->src; copy those of them that lie
     * in r->cut to their places in dst (row-major over r->dst). Returns the
     * bytes copied.
     */
    uint64_t (*copy_region)(trestle__copier *c, unsigned worker, void *dst,
                            const trestle__region *r, const void *src, uint64_t lo, uint64_t n);
    /* Wait until this worker's copies so far are complete. */
    int (*fence)(trestle__copier *c, unsigned worker, trestle_error *err);
    /* Optional (NULL: copies are synchronous). Mark the end of the
     * worker's copies so far; at most `marks` marks may be unretired. */
    int (*mark)(trestle__copier *c, unsigned worker, trestle_error *err);
    /* Whether the worker's oldest unretired mark is complete: *done true
     * (and the mark retired) or false (only when `wait` is false). With
     * `wait` the thread sleeps until it is, without spinning. After a
     * failure it still waits for the mark's copies, then reports it. */
    int (*retire)(trestle__copier *c, unsigned worker, bool wait, bool *done, trestle_error *err);
    /* Optional (with mark()): wait until the worker's k-th oldest
     * unretired mark (0: the oldest) is complete, without retiring it. */
    int (*wait_mark)(trestle__copier *c, unsigned worker, unsigned k, trestle_error *err);
    /* Optional (NULL: the caller converts on the CPU): `count` elements at
     * src, stored as src_dtype in staging, converted to dst_dtype on the
     * device into dst (contiguous). For widening pairs, which halve the
     * bytes that cross the bus. Returns the destination bytes written, or
     * 0 when the copier cannot do it (then nothing was queued). */
    uint64_t (*copy_widen)(trestle__copier *c, unsigned worker, void *dst, const void *src,
                           int src_dtype, int dst_dtype, uint64_t count);
    /* Optional (NULL: never waits): seconds the workers slept in retire()
     * and fence(), all of them together. Call once the workers are done. */
    double (*wait_seconds)(const trestle__copier *c);
    /* Optional (NULL: copies take no device time): seconds during which
     * some mark's copies ran on the device, timed by the device. Call once
     * the workers are done, before close(). */
    double (*device_seconds)(const trestle__copier *c);
    /* Optional: the worker's thread ran caller code (a ready callback)
     * that may have switched its CUDA device; make the worker's current. */
    void (*reenter)(trestle__copier *c, unsigned worker);
    void (*close)(trestle__copier *c);
} trestle__copier_ops;

struct trestle__copier {
    const trestle__copier_ops *ops;
    void *state;      /* backend state (NULL for the host copier) */
    bool host_dests;  /* destinations are host memory that workers can read back */
    unsigned marks;   /* unretired marks a worker may hold (0 without mark()) */
    uint64_t window_bytes; /* the most bytes one copy_region() or copy_widen() is handed
                              (set before the first copy) */
};

/* The host copier. Never fails. */
void trestle__copier_open_host(trestle__copier *c);

/*
 * The CUDA copier (engine/restore/copy_cuda.c) for `device`, with one stream per
 * worker (`workers` slots). Every copy waits for the work queued so far on
 * `stream`, the caller's cudaStream_t, or on the legacy default stream
 * when `stream` is NULL. Streams, events and device windows come from
 * `keep_in` (the plan's staging, where close() leaves them for the next
 * restore) when it holds some for `device`; NULL: made for this restore
 * alone. TRESTLE_E_NO_DEVICE without a usable device or in a build without
 * CUDA; TRESTLE_E_INVALID_ARG for a stream that is capturing a graph;
 * TRESTLE_E_CUDA, TRESTLE_E_NOMEM.
 */
int trestle__copier_open_cuda(trestle__copier *c, int device, unsigned workers, void *stream,
                              struct trestle__staging **keep_in, trestle_error *err);

/* Several CUDA copiers on the same workers (engine/restore/copy_multi.c): each
 * makes its device current in a worker's thread when current[worker]
 * (shared, one slot per worker) says another one is. */
void trestle__copier_cuda_share(trestle__copier *c, int *current);

/*
 * The multi-device copier (engine/restore/copy_multi.c): one CUDA copier per device
 * of `devices` (n >= 2, distinct), on the same `workers`. A copy goes to
 * every device its destination is routed to (trestle__copier_multi_routes),
 * from the same staging bytes; a mark covers every device's copies, and
 * retires only when all of them are complete. Errors as
 * trestle__copier_open_cuda(), naming the device.
 */
int trestle__copier_open_multi(trestle__copier *c, const int *devices, size_t n,
                               unsigned workers, void *stream, struct trestle__staging **keep_in,
                               trestle_error *err);

/* One destination of a multi-device copier: copies to [lo, lo + bytes) go
 * to to[k] + (dst - lo) on each device k in `mask`. */
typedef struct trestle__route {
    const uint8_t *lo;
    uint64_t bytes;
    uint64_t mask;            /* device indexes */
    uint8_t *const *to;       /* n addresses, indexed by device (owned by the caller, which
                                 keeps them until the copier is closed) */
} trestle__route;

/* Give the multi-device copier its destinations (copied, then sorted).
 * TRESTLE_E_NOMEM. */
int trestle__copier_multi_routes(trestle__copier *c, const trestle__route *r, size_t n,
                                 trestle_error *err);

/* The CUDA copier of device index k of a multi-device copier, or c itself
 * for any other copier. */
trestle__copier *trestle__copier_of_device(trestle__copier *c, size_t k);

/* Set window_bytes (before the first copy), on every device's copier. */
void trestle__copier_set_window(trestle__copier *c, uint64_t bytes);

/*
 * The range-restricted region copy behind the host copier, exposed for
 * tests and for the CUDA copier's host fallback: see copy_region above.
 * When [lo, lo + n) is the whole extent this is trestle__slice_copy().
 */
uint64_t trestle__region_copy_range(void *dst, const trestle__region *r, const void *src,
                                    uint64_t lo, uint64_t n);

/*
 * The byte layout of region r's copy (see trestle__k_layout in
 * kernels/trestle_kernels.h): what trestle__region_copy_range() walks, and
 * what the CUDA copier hands to trestle__k_scatter(). r's slices must be
 * concrete. Returns false, leaving *l partly written, when the cut is
 * empty (nothing to copy).
 */
bool trestle__region_layout(const trestle__region *r, trestle__k_layout *l);

/* Bytes of the layout's runs inside the source window [lo, lo + n): what
 * trestle__region_copy_range() (or the scatter kernel, asynchronously)
 * writes for that window. */
uint64_t trestle__region_count_range(const trestle__k_layout *l, uint64_t lo, uint64_t n);

#endif /* TRESTLE_COPY_H */
