/*
 * restore.h - the per-restore context shared by the parts of the pipeline:
 * engine/restore.c (options, setup, the producer that keeps reads in
 * flight, teardown, stats), engine/restore_layout.c (how batches split into
 * reads, O_DIRECT choice) and engine/restore_worker.c (the workers that
 * verify and copy each completed chunk, finish extents and report ops).
 *
 * Everything a restore touches lives in one trestle__restore, so any
 * number of restores of different plans can run at once.
 *
 * Chunk bookkeeping: every batch is split into reads of at most `chunk`
 * bytes, numbered by a global sequence in batch order. An extent spans the
 * reads first_seq .. first_seq + parts - 1 (its first part ends on a chunk
 * boundary, middle parts are whole chunks); the worker that handles read
 * `seq` stores the CRC of the extent's bytes in it at slot seq - first_seq,
 * and the worker that processes the last part combines the slots in order
 * and checks the stored CRC.
 */
#ifndef TRESTLE_RESTORE_H
#define TRESTLE_RESTORE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "copy.h"
#include "plan.h"
#include "pool.h"
#include "reader.h"
#include "trestle.h"

#define TRESTLE__NO_EXTENT SIZE_MAX

/* How a batch is read. */
enum trestle__batch_mode {
    TRESTLE__BATCH_BUFFERED = 0, /* through the page cache, data maybe on disk */
    TRESTLE__BATCH_CACHED = 1,   /* through the page cache, which holds most of it */
    TRESTLE__BATCH_DIRECT = 2    /* O_DIRECT into staging */
};

/* One read of a batch: staging reads cover runs of small extents (gaps
 * included); a large extent read buffered into host memory is read straight
 * into its primary destination, skipping the staging copy. */
typedef struct trestle__seg {
    uint64_t offset;           /* in the batch's shard */
    uint64_t length;           /* <= chunk */
    size_t extent;             /* TRESTLE__NO_EXTENT: into staging; else the extent it lands in */
} trestle__seg;

/* Per-extent state. */
typedef struct trestle__ext_state {
    uint64_t first_seq;        /* read sequence number of the extent's first part */
    uint64_t first_len;        /* bytes of the extent in that first read */
    uint32_t parts;            /* reads the extent spans (0 for an empty extent) */
    uint8_t *dest;             /* read straight into this host destination, or NULL */
    size_t primary;            /* with dest: the piece (index in plan->pieces) it belongs to */
    atomic_uint left;          /* parts not yet verified and copied */
    uint32_t *crcs;            /* `parts` CRC slots, one per read, in file order */
    uint8_t *walk_buf;         /* DT_STRING: host destination holding the whole bytes, or NULL */
    _Atomic(uint8_t *) tmp;    /* DT_STRING without walk_buf: a private copy (malloc'd lazily) */
} trestle__ext_state;

/* Busy time and byte counts of one worker; padded so workers don't share lines. */
typedef struct trestle__worker_stats {
    double verify_seconds;
    double copy_seconds;
    uint64_t verified;
    uint64_t copied;
    char pad[32];
} trestle__worker_stats;

typedef struct trestle__restore trestle__restore;

/* What a worker thread is started with. */
typedef struct trestle__worker_arg {
    trestle__restore *x;
    unsigned index;            /* 0..nthreads-1, the copier's worker id */
} trestle__worker_arg;

struct trestle__restore {
    trestle_plan *plan;
    const trestle_checkpoint *ckpt;
    trestle_restore_options opt; /* resolved: every default filled in */
    uint64_t chunk;              /* bytes per read */
    struct timespec t0;          /* restore start (CLOCK_MONOTONIC) */

    /* Chunk bookkeeping. */
    uint64_t *batch_seq;         /* per batch: sequence number of its first read */
    unsigned char *batch_mode;   /* per batch: TRESTLE__BATCH_* (policy and page-cache probe) */
    trestle__seg *segs;          /* producer scratch: the reads of one batch */
    uint64_t nreads;             /* reads in the whole restore */
    trestle__ext_state *ext;     /* per extent */
    uint32_t *slots;             /* the CRC slots of all extents */
    atomic_uint *op_left;        /* per op: pieces not yet landed and verified */
    size_t ops_expected;         /* ops that must become ready (not skipped) */

    /* Stages. */
    trestle__pool pool;
    trestle__read *reqs;         /* one read descriptor per staging buffer */
    trestle__reader reader;
    bool reader_open;
    trestle__copier copier;      /* to the restore's destinations: host, or CUDA */
    trestle__copier host;        /* host destinations of a restore whose copier is CUDA */
    bool copier_open;

    /* Completed reads waiting for a worker: a ring with one slot per buffer. */
    pthread_mutex_t wq_mu;
    pthread_cond_t wq_cv;
    trestle__read **wq;
    unsigned wq_head, wq_len, wq_cap;
    bool wq_closed;              /* no more pushes: workers exit when it is empty */
    bool sync_ready;             /* wq_mu, wq_cv and err_mu are initialised */

    /* Workers. */
    pthread_t *threads;
    trestle__worker_arg *args;
    unsigned nthreads;           /* started */
    trestle__worker_stats *wstats; /* opt.threads + 1: the last is the calling thread's */

    /* Outcome. */
    pthread_mutex_t err_mu;      /* guards rc and err */
    int rc;                      /* first error, TRESTLE_OK until then */
    trestle_error err;
    atomic_int stop;             /* set with the first error: everything winds down */
    atomic_size_t tensors;       /* ops made ready */
    atomic_llong first_ready_ns; /* ns from t0 to the first ready op, or -1 */
    uint64_t bytes_read;         /* calling thread (the producer) only */
    double read_seconds;         /* calling thread only */
    int reader_kind;             /* backend in use (trestle_reader_kind) */
    bool no_cachestat;           /* calling thread: cachestat(2) refused, probe with mincore */
};

/* Chunk bookkeeping (engine/restore_layout.c): probe the page cache per
 * batch, pick extents read straight into their destination, number the
 * reads, give each extent its parts and CRC slots, count op pieces. */
int trestle__restore_layout(trestle__restore *x, trestle_error *err);

/* The reads of batch b, in file order, into out (room for all of them;
 * NULL to count only). Returns how many. */
size_t trestle__restore_segments(const trestle__restore *x, size_t b, trestle__seg *out);

/* The order to read batches in (malloc'd), or NULL when out of memory. */
size_t *trestle__restore_issue_order(const trestle_plan *p);

/* Nanoseconds since the restore started. */
int64_t trestle__restore_now_ns(const trestle__restore *x);

/* Record `e` as the restore's error unless one is recorded already, and
 * stop the pipeline. Thread-safe. Returns the code now in force. */
int trestle__restore_fail(trestle__restore *x, const trestle_error *e);

/* True when the restore should stop: an error, or trestle_restore_cancel()
 * (which this turns into TRESTLE_E_CANCELLED). Thread-safe. */
bool trestle__restore_stopping(trestle__restore *x);

/* The readable name of the tensor behind extent `e` (the key of its first
 * piece's op: slice parts are stored under binary keys). */
const char *trestle__restore_tensor_name(const trestle__restore *x, size_t e);

/* Op `i` has all its bytes in place and verified: count it, call on_ready. */
void trestle__restore_op_ready(trestle__restore *x, size_t i);

/* Verify, check and release extent `e` once all its parts are in. */
void trestle__restore_finish_extent(trestle__restore *x, unsigned worker, size_t e);

/* Worker thread body: serve the work queue until it closes or the restore stops. */
void *trestle__restore_worker(void *arg);

#endif /* TRESTLE_RESTORE_H */
