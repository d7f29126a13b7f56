/*
 * copy_cuda_worker.h - the state of the CUDA copier (CUDA builds only):
 * per worker (its stream, events, marks, batch and window) and per copier,
 * kept in the plan from one restore to the next; and the worker calls of
 * engine/restore/copy_cuda_worker.c that both halves of the copier use
 * (engine/restore/copy_cuda.c queues copies, kernels and windows;
 * engine/restore/copy_cuda_marks.c owns marks and their retirement,
 * fences, the DMA timing, and the lifetime of it all).
 */
#ifndef TRESTLE_COPY_CUDA_WORKER_H
#define TRESTLE_COPY_CUDA_WORKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cuda_runtime_api.h>

#include "copy.h"
#include "cuda_error.h"
#include "cuda_host.h"
#include "staging.h"

#define TRESTLE__CUDA_MARKS 8    /* unretired staging buffers per worker */
#define TRESTLE__CUDA_REGIONS 4  /* pinned regions copies read from */
#define TRESTLE__CUDA_BATCH_MAX 1024 /* small copies per cudaMemcpyBatchAsync */

/* One device-copy interval of a worker, in ms after its reference event. */
typedef struct trestle__cuda_span {
    float from, to;
} trestle__cuda_span;

/*
 * Per worker: touched only by that worker's thread (and by open and close,
 * when no worker runs). The first part is made once and kept with the
 * plan (the stream, events, window, batch arrays); the second is the
 * current restore's.
 */
typedef struct trestle__cuda_worker {
    /* Kept from restore to restore. */
    cudaStream_t stream;
    bool have_stream;
    cudaEvent_t ev[TRESTLE__CUDA_MARKS];   /* marks, a ring: ev[head] is the oldest of `len` */
    cudaEvent_t from[TRESTLE__CUDA_MARKS]; /* each mark's start: before its first copy */
    unsigned nev;            /* event pairs made so far */
    cudaEvent_t fence_ev;    /* what fence() and close() wait on, made on first use */
    bool have_fence_ev;
    cudaEvent_t ref;         /* recorded as the worker starts a restore: its clock's zero */
    bool have_ref;
    uint8_t *win;            /* device window, made on first use */
    uint64_t win_bytes;
    bool win_async;          /* from cudaMallocAsync on `stream`: freed in stream order */
    void **bdst;             /* small copies not yet queued: TRESTLE__CUDA_BATCH slots each */
    const void **bsrc;
    size_t *bsize;

    /* This restore's. */
    bool started;            /* device current, stream after the start event, ref recorded */
    unsigned head, len;
    bool open;               /* from[] of the next mark recorded: copies queued since */
    bool timed[TRESTLE__CUDA_MARKS]; /* the mark in this slot has a start */
    cudaError_t failed;      /* first failure, or cudaSuccess */
    const char *what;        /* the call that failed */
    double wait_seconds;     /* slept in retire(), wait_mark() and fence() */
    bool win_failed;         /* no device memory for a window: copy without one */
    const uint8_t *win_src;  /* the host bytes it holds, in stream order, or NULL */
    uint64_t win_n;
    size_t bn;
    trestle__cuda_span *spans; /* its marks' DMA intervals (kept: the array only) */
    size_t nspans, cap_spans;
    char pad[40];            /* workers do not share cache lines */
} trestle__cuda_worker;

typedef struct trestle__cuda_pinned {
    const uint8_t *base;
    size_t bytes;
    const uint8_t *dev;      /* its device address (cudaHostGetDevicePointer) */
} trestle__cuda_pinned;

typedef struct trestle__cuda_state {
    trestle__kept kept;      /* first: what the plan keeps (engine/memory/staging.h) */
    trestle__ctx_api api;
    int device;
    unsigned nworkers;
    trestle__cuda_worker *w;
    cudaEvent_t start;       /* recorded on the caller's (or the legacy) stream at open */
    bool have_start;
    int start_device;        /* the device it was made on: the caller stream's */
    /* This restore's. */
    trestle__cuda_pinned regions[TRESTLE__CUDA_REGIONS];
    unsigned nregions;
    int *current;            /* per worker, its thread's current device (copy_multi.c), or NULL */
    trestle__staging **keep_in; /* where close() leaves it for the next restore, or NULL */
} trestle__cuda_state;

/* Keep the first failure of worker cw. */
void trestle__cuda_note(trestle__cuda_worker *cw, cudaError_t e, const char *what);

/* Worker w, its device current in the calling thread and its stream made
 * and ordered after the start, on its first call in this restore. */
trestle__cuda_worker *trestle__cuda_worker_get(trestle__cuda_state *s, unsigned w);

/* The event pair (the mark, its start) of every slot up to `slot`, made on
 * first use and kept. False when cw has failed. */
bool trestle__cuda_slot_events(trestle__cuda_worker *cw, unsigned slot);

/* Before anything is queued on cw's stream: the start of the next mark's
 * DMA interval, recorded once per mark. */
void trestle__cuda_begin(trestle__cuda_worker *cw);

/* The failure of cw as an error of the copier's device, or TRESTLE_OK. */
int trestle__cuda_worker_error(const trestle__cuda_state *s, const trestle__cuda_worker *cw,
                               trestle_error *err);

/* Queue cw's batched small copies (before a mark, a fence, or a copy that
 * must follow them). */
void trestle__cuda_flush(trestle__cuda_worker *cw);

/* The batch arrays of a new worker (NULL when out of memory: unbatched). */
void trestle__cuda_batch_alloc(trestle__cuda_worker *cw);

/* Free cw's window (kept state), in stream order when it came from the
 * stream-ordered allocator. */
void trestle__cuda_window_free(trestle__cuda_worker *cw);

#endif /* TRESTLE_COPY_CUDA_WORKER_H */
