/*
 * restore.c - trestle_restore(): the producing half of the pipeline and
 * everything around it. Resolves the options, checks the plan can run
 * (shards present, destinations supported), allocates engine-owned
 * destinations, lays out the chunk bookkeeping, opens the staging pool,
 * the reader (io_uring, or pread when io_uring is forbidden; ranged HTTP
 * GETs for a checkpoint opened from a URL) and the
 * copier, starts the workers (engine/restore/restore_worker.c), then keeps up to
 * queue_depth reads in flight from the calling thread and hands each
 * completed one to the work queue (engine/restore/restore_produce.c). Teardown waits out every read and joins
 * every thread on success, failure and cancellation alike, then fills the
 * stats. How batches split into reads is engine/restore/restore_layout.c.
 *
 *     batches ──split──► reads ──reader──► staging buffer ──queue──► workers
 *        (plan.h)         (chunk bytes)      (pool.c)                 (CRC, copy, ready)
 *                                  └─────► host destination (large extents read buffered)
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bulk.h"
#include "checked.h"
#include "error.h"
#include "numa.h"
#include "options.h"
#include "restore.h"
#include "staging.h"

#define DEFAULT_CHUNK ((uint64_t)8 << 20)
#define DEFAULT_STAGING ((uint64_t)256 << 20)
#define DEFAULT_QUEUE_DEPTH 32
#define MAX_CHUNK ((uint64_t)1 << 30)  /* one read(2) moves at most ~2 GiB; stay well below */
#define MAX_QUEUE_DEPTH 4096
#define MAX_THREADS 256
#define MAX_DEFAULT_THREADS 8

/* ---- options ---- */

void trestle_restore_options_init(trestle_restore_options *opt)
{
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    memset(opt, 0, sizeof *opt);
    opt->size = sizeof *opt;
    opt->verify = 1;
    opt->reader = TRESTLE_READER_AUTO;
    opt->direct = TRESTLE_DIRECT_AUTO;
    opt->device = -1;
    opt->threads = cores < 1 ? 1 : cores > MAX_DEFAULT_THREADS ? MAX_DEFAULT_THREADS : (unsigned)cores;
    opt->queue_depth = DEFAULT_QUEUE_DEPTH;
    opt->chunk_bytes = DEFAULT_CHUNK;
    opt->staging_bytes = DEFAULT_STAGING;
}

/* Copy the fields the caller knows about over the defaults (by the
 * options rule, engine/common/options.c), fill zeros with defaults and
 * clamp to what the pipeline supports. */
static int read_options(const trestle_restore_options *in, trestle_restore_options *o,
                        trestle_error *err)
{
    trestle_restore_options_init(o);
    int rc = TRESTLE__OPTIONS_READ(trestle_restore_options, o, in,
                                   TRESTLE__RESTORE_OPTIONS_FIRST_SIZE, err);
    if (rc != TRESTLE_OK)
        return rc;
    if (o->reader < TRESTLE_READER_AUTO || o->reader > TRESTLE_READER_REMOTE)
        return trestle__error_simple(err, TRESTLE_E_INVALID_ARG, "unknown reader kind %d",
                                     o->reader);
    if (o->direct < TRESTLE_DIRECT_AUTO || o->direct > TRESTLE_DIRECT_ALWAYS)
        return trestle__error_simple(err, TRESTLE_E_INVALID_ARG, "unknown O_DIRECT policy %d",
                                     o->direct);
    if (o->threads == 0) {
        trestle_restore_options d;
        trestle_restore_options_init(&d);
        o->threads = d.threads;
    }
    if (o->threads > MAX_THREADS)
        o->threads = MAX_THREADS;
    if (o->queue_depth == 0)
        o->queue_depth = DEFAULT_QUEUE_DEPTH;
    if (o->queue_depth > MAX_QUEUE_DEPTH)
        o->queue_depth = MAX_QUEUE_DEPTH;
    if (o->chunk_bytes == 0)
        o->chunk_bytes = DEFAULT_CHUNK;
    if (o->chunk_bytes > MAX_CHUNK)
        o->chunk_bytes = MAX_CHUNK;
    /* Whole pages: O_DIRECT reads of middle chunks then need no padding. */
    o->chunk_bytes = (o->chunk_bytes + TRESTLE__DIO_ALIGN - 1) & ~(uint64_t)(TRESTLE__DIO_ALIGN - 1);
    if (o->staging_bytes == 0)
        o->staging_bytes = DEFAULT_STAGING;
    return trestle__restore_check_devices(o, err);
}

/* ---- checks before anything is allocated ---- */

/* A missing shard (file or object) fails the restore before any read,
 * naming it and the first tensor that needs it (engine/format/ckpt_shard.c). */
static int check_shards(const trestle__restore *x, trestle_error *err)
{
    const trestle__batch *bt = x->plan->batches;
    for (size_t b = 0; b < x->plan->num_batches; b++)
        if (trestle__shard_check(x->ckpt, bt[b].shard, NULL, 0, NULL) != TRESTLE_OK)
            return trestle__shard_check(x->ckpt, bt[b].shard,
                                        trestle__restore_tensor_name(x, bt[b].first_extent),
                                        bt[b].offset, err);
    return TRESTLE_OK;
}

/* ---- setup and teardown ---- */

static int open_reader(trestle__restore *x, trestle_error *err)
{
    trestle__reader_config cfg = {
        .ckpt = x->ckpt,
        .queue_depth = x->opt.queue_depth,
        .bufs = x->pool.bufs,
        .nbufs = x->pool.count,
        .buf_bytes = x->pool.buf_bytes,
        .expect_direct = x->opt.direct != TRESTLE_DIRECT_NEVER,
        .faults = x->plan->faults,
    };
    int rc = TRESTLE_E_NO_IO_URING;
    char why[TRESTLE_ERROR_MESSAGE_MAX] = "";

    if (x->ckpt->store || x->opt.reader == TRESTLE_READER_REMOTE) { /* io_remote.c */
        rc = trestle__reader_open_remote(&x->reader, &cfg, x->opt.reader, err);
        x->reader_open = rc == TRESTLE_OK;
        return rc;
    }
    if (x->opt.reader != TRESTLE_READER_PREAD) {
        trestle_error uerr;
        trestle_error_clear(&uerr);
        rc = trestle__reader_open_uring(&x->reader, &cfg, &uerr);
        if (rc != TRESTLE_OK && (x->opt.reader == TRESTLE_READER_IO_URING ||
                                 rc != TRESTLE_E_NO_IO_URING)) {
            if (err)
                *err = uerr;
            return rc;
        }
        if (rc != TRESTLE_OK)
            snprintf(why, sizeof why, "%s", uerr.message);
    }
    if (rc != TRESTLE_OK) {
        rc = trestle__reader_open_pread(&x->reader, &cfg, err);
        if (rc != TRESTLE_OK)
            return rc;
        if (why[0])
            snprintf(x->reader.note, sizeof x->reader.note, "%.60s: using pread", why);
    }
    x->reader_open = true;
    return TRESTLE_OK;
}

static int start_workers(trestle__restore *x, trestle_error *err)
{
    unsigned n = x->opt.threads;
    x->wq_cap = x->pool.count;
    x->wq = calloc(x->wq_cap, sizeof *x->wq);
    x->reqs = calloc(x->pool.count, sizeof *x->reqs);
    if (x->vruns && !(x->iovs = malloc((size_t)x->pool.count * TRESTLE__READ_MAX_IOV *
                                       sizeof *x->iovs)))
        return trestle__error_simple(err, TRESTLE_E_NOMEM, "out of memory");
    x->threads = calloc(n, sizeof *x->threads);
    x->args = calloc(n, sizeof *x->args);
    x->wstats = calloc(n + 1, sizeof *x->wstats);
    if (!x->wq || !x->reqs || !x->threads || !x->args || !x->wstats)
        return trestle__error_simple(err, TRESTLE_E_NOMEM, "out of memory");
    for (unsigned i = 0; x->copier.marks && i < n; i++)
        if (!(x->wstats[i].pend = calloc(x->copier.marks, sizeof *x->wstats[i].pend)))
            return trestle__error_simple(err, TRESTLE_E_NOMEM, "out of memory");
    for (unsigned i = 0; i < n; i++) {
        x->args[i] = (trestle__worker_arg){ x, i };
        int ret = pthread_create(&x->threads[i], NULL, trestle__restore_worker, &x->args[i]);
        if (ret != 0) {
            if (x->nthreads > 0)
                break; /* run with the workers we have */
            return trestle__error_set(err, TRESTLE_E_NOMEM, ret, NULL, NULL, -1, -1,
                                      "cannot start worker threads: %s", strerror(ret));
        }
        x->nthreads++;
    }
    return TRESTLE_OK;
}

/* Wait out reads in flight, let workers drain (or drop, after a failure)
 * the queue and join them. Safe at any point of setup. */
static void stop_pipeline(trestle__restore *x)
{
    if (x->reader_open) {
        x->reader.ops->close(&x->reader);
        x->reader_open = false;
    }
    if (x->sync_ready) {
        pthread_mutex_lock(&x->wq_mu);
        x->wq_closed = true;
        pthread_cond_broadcast(&x->wq_cv);
        pthread_mutex_unlock(&x->wq_mu);
    }
    for (unsigned i = 0; i < x->nthreads; i++)
        pthread_join(x->threads[i], NULL);
    x->nthreads = 0;
}

static void free_context(trestle__restore *x)
{
    if (x->copier_open)
        x->copier.ops->close(&x->copier);
    trestle__restore_convert_close(x); /* after close() unregistered its buffers */
    for (size_t e = 0; x->ext && x->strings && e < x->plan->num_extents; e++)
        free(atomic_load(&x->ext[e].tmp)); /* string extents' private copies */
    trestle__pool_destroy(&x->pool);
    free(x->numa_cpus);
    free(x->batch_seq);
    free(x->batch_mode);
    free(x->segs);
    trestle__bulk_free(x->ext);
    free(x->slots);
    trestle__bulk_free(x->op_left);
    free(x->reqs);
    free(x->iovs);
    free(x->gap_sink);
    free(x->wq);
    free(x->threads);
    free(x->args);
    for (unsigned i = 0; x->wstats && i <= x->opt.threads; i++)
        free(x->wstats[i].pend);
    free(x->wstats);
    if (x->sync_ready) {
        pthread_mutex_destroy(&x->wq_mu);
        pthread_cond_destroy(&x->wq_cv);
        pthread_mutex_destroy(&x->err_mu);
    }
    free(x);
}

/* ---- public API ---- */

static void fill_stats(const trestle__restore *x, trestle_stats *st)
{
    memset(st, 0, sizeof *st);
    st->bytes_read = x->bytes_read;
    st->bytes_mapped = x->bytes_mapped;
    for (unsigned i = 0; x->wstats && i <= x->opt.threads; i++) {
        st->bytes_verified += x->wstats[i].verified;
        st->bytes_deferred += x->wstats[i].deferred;
        st->bytes_copied += x->wstats[i].copied;
        st->bytes_placed += x->wstats[i].placed;
        st->verify_seconds += x->wstats[i].verify_seconds;
        st->copy_seconds += x->wstats[i].copy_seconds;
    }
    st->read_seconds = x->read_seconds;
    st->wall_seconds = (double)trestle__restore_now_ns(x) * 1e-9;
    long long fr = atomic_load(&x->first_ready_ns);
    st->first_ready_seconds = fr >= 0 ? (double)fr * 1e-9 : -1.0;
    st->tensors = atomic_load(&x->tensors);
    st->reader = x->reader_kind;
    st->direct_reads = x->reader.direct_reads > 0;
    snprintf(st->reader_note, sizeof st->reader_note, "%s", x->reader.note);
    trestle__reader_remote_stats(&x->reader, st);
    /* Before free_context() closes the copier: its workers' figures go with it. */
    if (x->copier_open && x->copier.ops->wait_seconds)
        st->copy_wait_seconds = x->copier.ops->wait_seconds(&x->copier);
    st->device_copy_seconds = trestle__restore_device_copy_seconds(x);
    snprintf(st->staging_note, sizeof st->staging_note, "%s",
             trestle__staging_note(x->plan->staging));
    st->numa_node = x->numa_node;
    st->numa_bound = x->numa_node >= 0 && trestle__staging_bound(x->plan->staging, x->numa_node);
    st->numa_pinned = atomic_load(&x->numa_pinned);
}

/*
 * A device restore's NUMA placement (engine/memory/numa.h), best effort: the GPU's
 * node, where staging memory is bound (engine/memory/staging.c) and whose CPUs
 * the workers are pinned to, so that a staged byte is copied in and DMA'd
 * out on the GPU's side of the socket link. Unknown (-1) without NUMA,
 * for host restores and with no_numa.
 */
static void place_on_numa_node(trestle__restore *x)
{
    const trestle__faults *f = x->plan->faults;
    const char *root = f && f->sysroot ? f->sysroot : "";
    x->numa_node = -1;
    if (x->device < 0 || x->opt.no_numa || x->opt.num_devices >= 2)
        return; /* several GPUs may sit on several nodes */
    x->numa_node = trestle__cuda_device_numa_node(x->device, root);
    cpu_set_t *cpus = x->numa_node >= 0 ? malloc(sizeof *cpus) : NULL;
    if (cpus && trestle__numa_node_cpus(x->numa_node, root, cpus) == 0 && CPU_COUNT(cpus) > 0)
        x->numa_cpus = cpus;
    else
        free(cpus);
}

/* Everything up to the first read. The error is returned, not recorded. */
static int setup(trestle__restore *x, const trestle_restore_options *opt, uint64_t **order,
                 trestle_error *err)
{
    const trestle_plan *p = x->plan;
    int device = -1, rc;

    TR_FORWARD(read_options(opt, &x->opt, err));
    x->chunk = x->opt.chunk_bytes;
    x->reader_kind = x->opt.reader;
    TR_FORWARD(check_shards(x, err));
    bool multi = x->opt.num_devices >= 2; /* engine/restore/restore_multi.c, else restore_dest.c */
    /* What the ops need, in one pass: a host restore of a plan without
     * device pointers or conversions skips those steps (each is a walk
     * over every op, and a model may have 100,000). */
    bool device_ops = false, converts = false;
    for (size_t i = 0; i < p->num_ops; i++) {
        const trestle__plan_op *op = &p->ops[i];
        device_ops |= op->dest_kind == TRESTLE_DEST_DEVICE && !op->skipped;
        converts |= op->convert && !op->skipped;
    }
    if (multi)
        TR_FORWARD(trestle__restore_multi_pick(x, &device, err));
    else if (x->opt.device >= 0 || device_ops)
        TR_FORWARD(trestle__restore_pick_device(x, &device, err));
    x->device = device;
    place_on_numa_node(x);
    trestle__copier_open_host(&x->host);
    if (multi)
        TR_FORWARD(trestle__copier_open_multi(&x->copier, x->opt.devices, x->opt.num_devices,
                                              x->opt.threads + 1, x->opt.cuda_stream,
                                              &x->plan->staging, err));
    else if (device >= 0)
        TR_FORWARD(trestle__copier_open_cuda(&x->copier, device, x->opt.threads + 1,
                                             x->opt.cuda_stream, &x->plan->staging, err));
    else
        trestle__copier_open_host(&x->copier);
    x->copier_open = true;
    TR_FORWARD(multi ? trestle__restore_multi_allocate(x, err)    /* and each op's device */
                     : trestle__restore_allocate(x, err));
    TR_FORWARD(trestle__restore_layout(x, err));
    *order = trestle__restore_issue_order(x);
    TR_FAIL_IF(!*order, err, TRESTLE_E_NOMEM, "out of memory");

    /* Staging: as many buffers as staging_bytes holds (at least two, so
     * reading and checking overlap), but no more than there are reads; the
     * plan's staging memory, pinned for a device restore. */
    size_t buf_bytes = (size_t)(x->chunk + TRESTLE__READ_SLACK);
    buf_bytes = (buf_bytes + TRESTLE__POOL_ALIGN - 1) & ~(size_t)(TRESTLE__POOL_ALIGN - 1);
    uint64_t count = x->opt.staging_bytes / buf_bytes;
    if (count > x->nreads)
        count = x->nreads;
    if (count < 2)
        count = 2;
    if (count > 65536)
        count = 65536;
    uint8_t *region = NULL;
    TR_FORWARD(trestle__staging_get(&x->plan->staging, TRESTLE__STAGING_READS, (unsigned)count,
                                    buf_bytes, x->copier.host_dests ? -1 : device, x->numa_node,
                                    p->faults, &region, err));
    TR_FORWARD(trestle__pool_init(&x->pool, (unsigned)count, buf_bytes, region, err));
    if (x->copier.ops->staging_add)
        TR_FORWARD(x->copier.ops->staging_add(&x->copier, region, (size_t)count * buf_bytes,
                                              err));
    /* Conversion buffers are staging too. */
    if (converts)
        TR_FORWARD(trestle__restore_convert_open(x, err));
    /* The most one copy is handed: a part, or a conversion buffer's worth. */
    trestle__copier_set_window(&x->copier, x->chunk > x->conv_bytes ? x->chunk : x->conv_bytes);
    TR_FORWARD(open_reader(x, err));
    x->reader_kind = x->reader.ops->kind;
    TR_FORWARD(start_workers(x, err));
fail:
    return rc;
}

int trestle_restore(trestle_plan *p, const trestle_restore_options *opt, trestle_stats *stats,
                    trestle_error *err)
{
    trestle__restore *x;
    uint64_t *order = NULL;
    int rc;

    trestle_error_clear(err);
    if (stats) {
        memset(stats, 0, sizeof *stats);
        stats->first_ready_seconds = -1.0;
    }
    if (!p)
        return trestle__error_simple(err, TRESTLE_E_INVALID_ARG, "NULL plan");
    x = calloc(1, sizeof *x);
    if (!x)
        return trestle__error_simple(err, TRESTLE_E_NOMEM, "out of memory");
    clock_gettime(CLOCK_MONOTONIC, &x->t0);
    x->plan = p;
    x->ckpt = p->ckpt;
    trestle_error_clear(&x->err);
    atomic_init(&x->stop, 0);
    atomic_init(&x->tensors, 0);
    atomic_init(&x->numa_pinned, 0);
    atomic_init(&x->first_ready_ns, -1);
    pthread_mutex_init(&x->wq_mu, NULL);
    pthread_cond_init(&x->wq_cv, NULL);
    pthread_mutex_init(&x->err_mu, NULL);
    x->sync_ready = true;
    atomic_store(&p->cancel, 0);

    rc = setup(x, opt, &order, err);
    if (rc == TRESTLE_OK) {
        /* Zero-byte tensors and empty extents have nothing to wait for. The
         * calling thread uses the extra stats slot after the workers'. */
        for (size_t e = 0; x->empty_extents && e < p->num_extents; e++)
            if (x->ext[e].parts == 0)
                trestle__restore_finish_extent(x, x->opt.threads, e);
        for (size_t i = 0; x->ready_at_once && i < p->num_ops; i++)
            if (!p->ops[i].skipped && p->ops[i].num_pieces == 0)
                trestle__restore_op_ready(x, x->opt.threads, i);
        trestle__restore_produce(x, order);
    }
    stop_pipeline(x);
    if (rc == TRESTLE_OK) {
        rc = x->rc;
        if (rc != TRESTLE_OK && err)
            *err = x->err;
        if (rc == TRESTLE_OK && atomic_load(&x->tensors) != x->ops_expected)
            rc = trestle__error_simple(err, TRESTLE_E_CORRUPT,
                                       "internal error: %zu of %zu ops were restored",
                                       atomic_load(&x->tensors), x->ops_expected);
    }
    p->shares_ready = rc == TRESTLE_OK && x->opt.verify; /* CRC shares (layout zeroed them) */
    if (stats)
        fill_stats(x, stats);
    free(order);
    free_context(x);
    return rc;
}

void trestle_restore_cancel(trestle_plan *p)
{
    if (p)
        atomic_store(&p->cancel, 1);
}
