/*
 * restore.h - the per-restore context shared by the parts of the pipeline:
 * engine/restore/restore.c (options, setup, the producer that keeps reads in
 * flight, teardown, stats), engine/restore/restore_dest.c (which device, engine
 * memory for the destinations), engine/restore/restore_layout.c (how batches split
 * into reads, O_DIRECT choice), engine/restore/restore_worker.c (the workers that
 * verify and copy each completed chunk, finish extents and report ops),
 * engine/restore/restore_convert.c (dtype conversion on load),
 * engine/restore/restore_ready.c (ops reported ready) and, beneath them
 * all, engine/restore/restore_state.c (clock, first error, names).
 *
 * Device copies complete asynchronously: a worker queues a staging
 * buffer's copies, marks them (copy.h) and keeps the buffer, with the
 * extents whose parts it holds, in its pending ring until the mark
 * retires; only then do those parts count as landed and the buffer go
 * back to the pool. Host copies complete at once, and so do their reads.
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
 *
 * Dtype conversion (engine/restore/restore_convert.c): a piece whose op converts
 * gets the whole elements of each span it is handed, converted in the
 * worker's conversion buffer. Part boundaries fall at file-offset chunk
 * boundaries, so with an odd extent offset an element can straddle two
 * parts (two workers): each part leaves its bytes of such an element in the
 * extent's seam slot for that boundary, and the worker that finishes the
 * extent converts and copies the seam elements before any op is ready.
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
#define TRESTLE__COPY_STEP ((uint64_t)256 << 10) /* host CRC-then-copy step: fits in L2 */
#define TRESTLE__GAP_SINK ((uint64_t)64 << 10)   /* the largest gap a scattering read skips */

/* How a batch is read. */
enum trestle__batch_mode {
    TRESTLE__BATCH_BUFFERED = 0, /* through the page cache, data maybe on disk */
    TRESTLE__BATCH_CACHED = 1,   /* through the page cache, which holds most of it */
    TRESTLE__BATCH_DIRECT = 2    /* O_DIRECT into staging */
};

/* One read of a batch: staging reads cover runs of small extents (gaps
 * included); in a batch read buffered, extents with a verbatim host
 * destination are read straight into it, skipping the staging copy: a
 * large one alone, in chunks, and runs of small ones whole, in one
 * scattering read each (the gaps between them into a sink). */
typedef struct trestle__seg {
    uint64_t offset;           /* in the batch's shard */
    uint64_t length;           /* <= chunk */
    size_t extent;             /* TRESTLE__NO_EXTENT: into staging; else the (first) extent it
                                  lands in */
    size_t batch;              /* the batch it belongs to */
    size_t span;               /* in place: it lands in extents [extent, extent + span) */
    bool scatter;              /* a run of small extents, each read whole into its destination
                                  (empty ones among them take nothing), the gaps before and
                                  between them into the sink */
} trestle__seg;

/* Per-extent state: 72 bytes, one per tensor read. */
typedef struct trestle__ext_state {
    uint8_t *dest;             /* read straight into this host destination, or NULL */
    uint32_t *crcs;            /* `parts` CRC slots, one per read, in file order */
    uint8_t *walk_buf;         /* DT_STRING: host destination holding the whole bytes, or NULL */
    _Atomic(uint8_t *) tmp;    /* DT_STRING without walk_buf: a private copy (malloc'd lazily) */
    uint8_t *seam;             /* with convert_es and parts > 1: slot j (convert_es bytes) holds
                                  the element cut by the boundary after part j, else NULL */
    uint64_t first_seq;        /* read sequence number of the extent's first part */
    size_t primary;            /* with dest: the piece (index in plan->pieces) it belongs to */
    uint32_t first_len;        /* bytes of the extent in that first read (at most a chunk) */
    uint32_t parts;            /* reads the extent spans (0 for an empty extent) */
    atomic_uint left;          /* parts not yet verified and copied */
    uint8_t convert_es;        /* stored element bytes when a piece converts the extent, else 0 */
    bool mapped;               /* host_map: dest lies in a mapping of the shard, nothing to read */
} trestle__ext_state;

/* A completed read whose device copies are queued but not yet known done. */
typedef struct trestle__pending {
    struct trestle__read *rq;  /* its buffer goes back to the pool when the mark retires */
    size_t first, end;         /* the extents [first, end) it holds parts of */
    uint64_t conv_end;         /* the worker's conv_head when it was marked: the conversion
                                  space its copies read is free once the mark retires */
} trestle__pending;

/* One worker's own state: busy time and byte counts, its pending ring;
 * padded so workers don't share lines. */
typedef struct trestle__worker_stats {
    double verify_seconds;
    double copy_seconds;
    uint64_t verified;
    uint64_t deferred;         /* partial extents' bytes folded into CRC shares, not checked */
    uint64_t copied;
    uint64_t placed;           /* of copied: read straight into their destination (or mapped) */
    trestle__pending *pend;    /* copier.marks slots: pend[phead] is the oldest of plen */
    unsigned phead, plen;
    uint64_t conv_head;        /* bytes of its conversion ring handed out so far (a count that
                                  only grows: position conv_head % ring is the next free byte) */
    uint64_t conv_free;        /* ... of which the first conv_free are free again: the copies
                                  out of them are done (engine/restore/restore_convert.c) */
    char pad[24];
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
    trestle__seg *segs;          /* every read of the restore, indexed by sequence number */
    uint64_t nreads;             /* reads in the whole restore */
    trestle__ext_state *ext;     /* per extent */
    uint32_t *slots;             /* the CRC slots of all extents */
    size_t nslots;               /* slots handed out (extents + reads bound them) */
    atomic_uint *op_left;        /* per op: pieces not yet landed and verified */
    size_t ops_expected;         /* ops that must become ready (not skipped) */
    size_t ready_at_once;        /* of them, those with no pieces (zero bytes) */
    size_t empty_extents;        /* extents with no parts (zero bytes) */
    bool strings;                /* some extent is a DT_STRING (may get a private copy) */

    /* Stages. */
    trestle__pool pool;
    trestle__read *reqs;         /* one read descriptor per staging buffer */
    struct iovec *iovs;          /* TRESTLE__READ_MAX_IOV per read descriptor, for reads that
                                    scatter a run of small extents; NULL when there are none */
    uint8_t *gap_sink;           /* where the gaps inside such runs are read to, or NULL */
    bool vruns;                  /* some read scatters a run of small extents */
    bool vrun_gaps;              /* and some such run has gaps: gap_sink is allocated */
    trestle__reader reader;
    bool reader_open;
    trestle__copier copier;      /* to the restore's destinations: host, or CUDA */
    trestle__copier host;        /* host destinations of a restore whose copier is CUDA */
    int device;                  /* the CUDA device copied to, or -1 */
    int numa_node;               /* that device's NUMA node, or -1 (engine/memory/numa.h) */
    void *numa_cpus;             /* a cpu_set_t: the node's CPUs, for the workers; or NULL */
    atomic_uint numa_pinned;     /* workers pinned to them */
    bool copier_open;
    uint8_t *conv_region;        /* per-worker conversion buffers, one allocation registered like
                                    staging; NULL when no op converts */
    size_t conv_bytes;           /* bytes of each worker's conversion buffer */
    uint8_t *seam_bytes;         /* every converting extent's seam slots, one allocation */

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
    uint64_t bytes_mapped;       /* of bytes_read: host_map tensors, mapped, not read */
    double read_seconds;         /* calling thread only */
    int reader_kind;             /* backend in use (trestle_reader_kind) */
    bool no_cachestat;           /* calling thread: cachestat(2) refused, probe with mincore */
};

/* Which GPU the restore copies to, or -1 (engine/restore/restore_dest.c); a
 * device list's restore asks trestle__restore_multi_pick instead. */
int trestle__restore_pick_device(const trestle__restore *x, int *device, trestle_error *err);

/* The CUDA device of op's DEST_DEVICE pointer in *device, or
 * TRESTLE_E_INVALID_ARG naming the tensor when it is not device memory. */
int trestle__restore_dest_device(const trestle__plan_op *op, int *device, trestle_error *err);

/* Engine memory for DEST_ALLOCATE ops: the plan's arena, reused when it
 * is of the restore's kind (engine/restore/restore_dest.c); then each op's device.
 * A device list's restore asks trestle__restore_multi_allocate instead. */
int trestle__restore_allocate(trestle__restore *x, trestle_error *err);

/* Bytes op takes in an arena: its size (at least 1) rounded up to the
 * tensor alignment; 0 when that overflows. */
uint64_t trestle__arena_span(const trestle__plan_op *op, int device);

/* ---- several GPUs (engine/restore/restore_multi.c) ---- */

/* Check o's device list (distinct ordinals, device -1 or devices[0]); make
 * o->device devices[0], and a list of one just that device. */
int trestle__restore_check_devices(trestle_restore_options *o, trestle_error *err);

/* The device picker for a device list: every listed device exists, every
 * DEST_DEVICE pointer is on one of them; *device is devices[0]. */
int trestle__restore_multi_pick(const trestle__restore *x, int *device, trestle_error *err);

/* One arena per listed device (kept from the last restore when it fits),
 * each op's device, and the multi-device copier's routes. */
int trestle__restore_multi_allocate(trestle__restore *x, trestle_error *err);

/* Chunk bookkeeping (engine/restore/restore_layout.c): probe the page cache per
 * batch, pick extents read straight into their destination, number the
 * reads, give each extent its parts and CRC slots, count op pieces. */
int trestle__restore_layout(trestle__restore *x, trestle_error *err);

/* The reads of batch b, in file order, into out (room for all of them;
 * NULL to count only). Returns how many. */
size_t trestle__restore_segments(const trestle__restore *x, size_t b, trestle__seg *out);

/* The order to issue the reads in, as sequence numbers (x->nreads of
 * them, malloc'd), or NULL when out of memory. */
uint64_t *trestle__restore_issue_order(const trestle__restore *x);

/* Keep reads in flight and queue each completed one for the workers, in
 * `order` (sequence numbers), until all are done or the restore stops
 * (engine/restore/restore_produce.c). Calling thread only. */
void trestle__restore_produce(trestle__restore *x, const uint64_t *order);

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

/* Fail the restore with `le`, an error met at byte `offset` of extent e's
 * shard, as "tensor 'NAME' (shard PATH, offset N): <le's message>" with
 * the key, path and offset filled in. */
void trestle__restore_fail_at(trestle__restore *x, size_t e, uint64_t offset, trestle_error *le);

/* Op `i` has all its bytes in place and verified: count it, call on_ready
 * (from worker `worker`'s thread, or the calling thread's slot). */
void trestle__restore_op_ready(trestle__restore *x, unsigned worker, size_t i);

/* The same for the n ops of `ops`, in that order, with one clock read and
 * (without on_ready) one count for them all; after a callback stops the
 * restore, the rest are not reported (engine/restore/restore_ready.c). */
void trestle__restore_ops_ready(trestle__restore *x, unsigned worker, const size_t *ops,
                                size_t n);

/* Ops that became ready while one read landed, not yet reported. */
typedef struct trestle__ready_batch {
    size_t n;
    size_t op[64];
} trestle__ready_batch;

/* Add op to rb, reporting rb's ops when it is full; report the rest with
 * trestle__restore_ready_flush() (which empties rb). */
void trestle__restore_ready_add(trestle__restore *x, unsigned worker, trestle__ready_batch *rb,
                                size_t op);
void trestle__restore_ready_flush(trestle__restore *x, unsigned worker, trestle__ready_batch *rb);

/* Verify, check and release extent `e` once all its parts are in. */
void trestle__restore_finish_extent(trestle__restore *x, unsigned worker, size_t e);

/* Worker thread body: serve the work queue until it closes or the restore
 * stops, then retire every pending read. */
void *trestle__restore_worker(void *arg);

/* Time during which some device copy was running, timed by the device
 * (the copier's device_seconds: every mark's DMA interval, in union); 0
 * for a host restore. Before the copier is closed. */
double trestle__restore_device_copy_seconds(const trestle__restore *x);

/* The copier that writes op's destination: the restore's (CUDA) copier for
 * device memory, else the host copier. */
trestle__copier *trestle__restore_copier_for(trestle__restore *x, const trestle__plan_op *op);

/* ---- dtype conversion on load (engine/restore/restore_convert.c) ---- */

/* The conversions one copy_pieces() call has made in the worker's buffer:
 * pieces that want the same target dtype of the same span share them. */
typedef struct trestle__conv_span {
    unsigned n;                /* conversions made */
    int dtype[4];              /* target dtype of each */
    const uint8_t *at[4];      /* its converted elements */
} trestle__conv_span;

/*
 * After the layout, before the first read: give every extent that a
 * converting op reads its element size and seam slots, and each worker a
 * conversion buffer. The buffers are one allocation registered with the
 * copier through staging_register(), as the staging pool is: the CUDA
 * copier DMAs converted bytes out of them. Nothing is allocated when no op
 * converts. TRESTLE_E_NOMEM, or the copier's registration error.
 */
int trestle__restore_convert_open(trestle__restore *x, trestle_error *err);

/* Free what convert_open made; call after the copier is closed (which
 * unregisters the buffers). Safe at any point of setup. */
void trestle__restore_convert_close(trestle__restore *x);

/* Part bytes [pos, pos + n) of extent e (a whole part) at p: keep the bytes
 * of the elements the part's ends cut in the extent's seam slots. */
void trestle__restore_seam_store(trestle__restore *x, size_t e, const uint8_t *p, uint64_t pos,
                                 uint64_t n);

/*
 * Piece pc of an extent converts: convert the whole elements among bytes
 * [pos, pos + n) of the extent at p (reusing span's conversions) and copy
 * them with cp to their places. Returns the destination bytes copied; 0
 * with the error recorded when a fence failed.
 */
uint64_t trestle__restore_copy_converted(trestle__restore *x, unsigned w, trestle__copier *cp,
                                         const trestle__piece *pc, const uint8_t *p, uint64_t pos,
                                         uint64_t n, trestle__conv_span *span);

/* All parts of extent e are in: convert and copy its seam elements to every
 * converting piece and fence the copies. False with the error recorded. */
bool trestle__restore_convert_seams(trestle__restore *x, unsigned w, size_t e);

#endif /* TRESTLE_RESTORE_H */
