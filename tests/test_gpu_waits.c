/*
 * test_gpu_waits.c - what a real GPU would still expose after issue 12
 * (issue 23): a failed or cancelled restore that returns with copies in
 * flight, waits that narrowing conversions pay per part, device-wide
 * synchronisations mid-restore, a copy time measured by the host, streams
 * and staging made again for every restore, pinning refused with an
 * unexpected code, an idle worker that waits for every mark, and a
 * caller's thread left with a context.
 *
 * These run on tests/cudamock only (-DTRESTLE_CUDA_MOCK=ON): it leaves the
 * work of a destroyed stream queued, as a GPU does, counts the calls that
 * synchronise the device, stamps events when their stream runs past them,
 * and counts what a GPU cannot report. Elsewhere they skip; the plain-CUDA
 * ports of the ordering, context and cancellation cases are in
 * tests/test_gpu_restore.c.
 */
#include <criterion/criterion.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "testutil.h"
#include "trestle.h"

#if TRESTLE_CUDA_MOCK

#include <cuda.h>
#include <cuda_runtime_api.h>

#include "cudamock.h"
#include "testcuda.h"

#define NTINY 3000 /* float32 tensors of 4 elements: thousands of conversions per read */

typedef struct model {
    char *dir, *prefix;
    trestle_checkpoint *ckpt;
} model;

/* NTINY tiny float32 tensors around a 300 x 50 float32 and a 200 x 30
 * bfloat16 one, over two shards. */
static void model_open(model *m)
{
    trestle_error err;
    m->dir = tu_mkdtemp();
    cr_assert(asprintf(&m->prefix, "%s/m", m->dir) > 0);
    trestle_writer_options wo;
    trestle_writer_options_init(&wo);
    wo.num_shards = 2;
    trestle_writer *w;
    cr_assert_eq(trestle_writer_create(m->prefix, &wo, &w, &err), TRESTLE_OK, "%s", err.message);
    float *f = malloc(300 * 50 * sizeof *f);
    for (int i = 0; i < 300 * 50; i++)
        f[i] = (float)(i % 977) * 0.37f - 150.0f;
    static const int64_t wdims[2] = { 300, 50 }, bdims[2] = { 200, 30 }, tdims[1] = { 4 };
    cr_assert_eq(trestle_writer_add(w, "w", TRESTLE_DT_FLOAT, 2, wdims, f, 300 * 50 * 4, 0, &err),
                 TRESTLE_OK, "%s", err.message);
    uint16_t *bf = malloc(200 * 30 * 2);
    for (int i = 0; i < 200 * 30; i++)
        bf[i] = (uint16_t)(0x3f80 + (i % 251) - 125);
    cr_assert_eq(trestle_writer_add(w, "bf", TRESTLE_DT_BFLOAT16, 2, bdims, bf, 200 * 30 * 2, 1,
                                    &err), TRESTLE_OK, "%s", err.message);
    for (int i = 0; i < NTINY; i++) {
        char name[32];
        snprintf(name, sizeof name, "tiny/%05d", i);
        cr_assert_eq(trestle_writer_add(w, name, TRESTLE_DT_FLOAT, 1, tdims, f + 4 * (i % 3000),
                                        16, i % 2, &err), TRESTLE_OK, "%s", err.message);
    }
    cr_assert_eq(trestle_writer_finish(w, &err), TRESTLE_OK, "%s", err.message);
    trestle_writer_free(w);
    free(f);
    free(bf);
    m->ckpt = tu_open(m->prefix, NULL);
}

static void model_close(model *m)
{
    trestle_close(m->ckpt);
    tu_rmtree(m->dir);
    free(m->dir);
    free(m->prefix);
}

static void opts(trestle_restore_options *o, int device)
{
    trestle_restore_options_init(o);
    o->reader = TRESTLE_READER_PREAD;
    o->device = device;
    o->chunk_bytes = 16 << 10;
    o->staging_bytes = 256 << 10;
    o->threads = 2;
}

/* Every tensor of m, float32 ones restored as bfloat16 when `narrow`. */
static trestle_plan *plan_all(model *m, int narrow)
{
    size_t n = trestle_tensor_count(m->ckpt);
    trestle_op *ops = calloc(n, sizeof *ops);
    for (size_t i = 0; i < n; i++) {
        trestle_tensor_info t;
        cr_assert_eq(trestle_tensor_get_info(m->ckpt, i, &t), TRESTLE_OK);
        ops[i].name = t.name;
        if (narrow && t.dtype == TRESTLE_DT_FLOAT)
            ops[i].target_dtype = TRESTLE_DT_BFLOAT16;
    }
    trestle_plan *p = tu_plan(m->ckpt, ops, n, NULL);
    free(ops);
    return p;
}

/* Reads a restore of p makes: each batch's bytes in chunks, plus a partial
 * one per batch. */
static uint64_t reads_of(trestle_plan *p, const trestle_restore_options *o)
{
    trestle_plan_stats ps;
    trestle_plan_get_stats(p, &ps);
    return ps.read_bytes / o->chunk_bytes + ps.batches;
}

/* Nothing a restore queued is still queued when it returns, and no stream
 * went with work on it. */
static void assert_nothing_queued(const char *after)
{
    cudamock_stats st;
    cudamock_get_stats(&st);
    cr_assert_eq(cudamock_pending_ops(), 0, "%s: %" PRIu64 " copies still queued when the "
                 "restore returned", after, cudamock_pending_ops());
    cr_assert_eq(st.ops_pending_at_destroy, 0, "%s: %" PRIu64 " copies were queued on streams "
                 "when they were destroyed", after, st.ops_pending_at_destroy);
}

/* ---- a failed or cancelled restore returns with nothing in flight ---- */

static int cancel_first(void *user, size_t i, const trestle_plan_op_info *op)
{
    (void)user, (void)i, (void)op;
    return 1;
}

Test(gpu_waits, a_cancelled_restore_returns_with_no_copy_in_flight)
{
    model m;
    model_open(&m);
    trestle_plan *p = plan_all(&m, 0);
    trestle_error err;
    trestle_restore_options o;
    opts(&o, 0);
    o.on_ready = cancel_first;
    cr_assert_eq(trestle_restore(p, &o, NULL, &err), TRESTLE_E_CANCELLED, "%s", err.message);
    assert_nothing_queued("cancelled");
    /* A retry refills the same staging: no old copy may read it now (the
     * mock aborts on a source changed before its copy ran). */
    o.on_ready = NULL;
    cr_assert_eq(trestle_restore(p, &o, NULL, &err), TRESTLE_OK, "%s", err.message);
    trestle_plan_free(p); /* unpinning staging that queued work reads aborts the mock */
    model_close(&m);
}

Test(gpu_waits, a_failed_restore_returns_with_no_copy_in_flight)
{
    model m;
    model_open(&m);
    trestle_plan *p = plan_all(&m, 0);
    trestle_error err;
    trestle_restore_options o;
    opts(&o, 0);
    /* A copy that fails as it runs (the device's sticky error), and one
     * refused when queued, with copies of its read queued before it. */
    cudamock_fail("cudaMemcpyAsync", 3, cudaErrorIllegalAddress, 1);
    cr_assert_eq(trestle_restore(p, &o, NULL, &err), TRESTLE_E_CUDA, "%s", err.message);
    assert_nothing_queued("an asynchronous failure");
    cudamock_reset();
    cudamock_fail("cudaMemcpyBatchAsync", 2, cudaErrorInvalidValue, 0);
    cr_assert_eq(trestle_restore(p, &o, NULL, &err), TRESTLE_E_CUDA, "%s", err.message);
    assert_nothing_queued("a refused copy");
    cudamock_reset();
    cr_assert_eq(trestle_restore(p, &o, NULL, &err), TRESTLE_OK, "%s", err.message);
    trestle_plan_free(p);
    model_close(&m);
}

/* ---- narrowing conversions: a wait per read at most ---- */

Test(gpu_waits, narrowing_conversions_wait_at_most_once_per_read)
{
    model m;
    model_open(&m);
    trestle_plan *h = plan_all(&m, 1), *d = plan_all(&m, 1);
    trestle_error err;
    trestle_restore_options o;
    opts(&o, -1);
    cr_assert_eq(trestle_restore(h, &o, NULL, &err), TRESTLE_OK, "%s", err.message);
    opts(&o, 0);
    uint64_t reads = reads_of(d, &o);
    cudamock_stats a, b;
    cudamock_get_stats(&a);
    cr_assert_eq(trestle_restore(d, &o, NULL, &err), TRESTLE_OK, "%s", err.message);
    cudamock_get_stats(&b);
    tc_same_bytes(h, d);
    /* As for plain copies: a conversion buffer is reused once the mark of
     * the read that filled it is done, not after the whole stream. */
    cr_assert_leq(b.event_syncs - a.event_syncs, reads, "%" PRIu64 " waits for %" PRIu64
                  " reads of %d float32 tensors restored as bfloat16",
                  b.event_syncs - a.event_syncs, reads, NTINY + 1);
    cr_assert_eq(b.stream_syncs, a.stream_syncs);
    cr_assert_eq(b.device_syncs, a.device_syncs);
    trestle_plan_free(d);
    trestle_plan_free(h);
    model_close(&m);
}

/* ---- no implicit device synchronisation mid-restore ---- */

Test(gpu_waits, a_restore_makes_no_implicit_device_sync)
{
    model m;
    model_open(&m);
    /* Slices that need the device window, a widening conversion done in
     * it, into the caller's device buffers. */
    trestle_op ops[3] = {
        { .name = "w", .shape_and_slices = "300 50 -:2,5" },
        { .name = "bf", .target_dtype = TRESTLE_DT_FLOAT },
        { .name = "w", .shape_and_slices = "300 50 10,200:7,30" },
    };
    trestle_plan *h = tu_plan(m.ckpt, ops, 3, NULL);
    trestle_error err;
    trestle_restore_options o;
    opts(&o, -1);
    cr_assert_eq(trestle_restore(h, &o, NULL, &err), TRESTLE_OK, "%s", err.message);
    void *bufs[3];
    for (int i = 0; i < 3; i++) {
        trestle_plan_op_info hi;
        cr_assert_eq(trestle_plan_get_op(h, (size_t)i, &hi), TRESTLE_OK);
        CUDA_OK(cudaMalloc(&bufs[i], hi.bytes));
        ops[i].dest_kind = TRESTLE_DEST_DEVICE;
        ops[i].ptr = bufs[i];
        ops[i].capacity = hi.bytes;
    }
    trestle_plan *d = tu_plan(m.ckpt, ops, 3, NULL);
    opts(&o, 0);
    cudamock_stats a, b, c;
    cudamock_get_stats(&a);
    cr_assert_eq(trestle_restore(d, &o, NULL, &err), TRESTLE_OK, "%s", err.message);
    cudamock_get_stats(&b);
    tc_same_bytes(h, d);
    cr_assert_gt(b.kernels, a.kernels, "no kernel ran: the window was not used");
    /* The first restore pins the plan's staging (reads, conversions), nothing else. */
    cr_assert_leq(b.implicit_syncs - a.implicit_syncs, 2, "%" PRIu64 " implicit device syncs",
                  b.implicit_syncs - a.implicit_syncs);
    cr_assert_eq(b.implicit_syncs - a.implicit_syncs, b.host_registers - a.host_registers);
    /* A later one, beside the caller's live work, none at all. */
    cr_assert_eq(trestle_restore(d, &o, NULL, &err), TRESTLE_OK, "%s", err.message);
    cudamock_get_stats(&c);
    cr_assert_eq(c.implicit_syncs, b.implicit_syncs, "%" PRIu64 " implicit device syncs in a "
                 "second restore", c.implicit_syncs - b.implicit_syncs);
    tc_same_bytes(h, d);
    trestle_plan_free(d);
    cudamock_get_stats(&a);
    cr_assert_eq(a.implicit_syncs - c.implicit_syncs, c.host_registered_live,
                 "trestle_plan_free: only unpinning, no cudaFree of the windows");
    for (int i = 0; i < 3; i++)
        CUDA_OK(cudaFree(bufs[i]));
    cudamock_get_stats(&a);
    cr_assert_eq(a.device_bytes_live, 0, "the windows were freed");
    trestle_plan_free(h);
    model_close(&m);
}

/* ---- the copy time is the DMA's ---- */

static int slow_ready(void *user, size_t i, const trestle_plan_op_info *op)
{
    (void)user, (void)i, (void)op;
    struct timespec t = { 0, 10 * 1000 * 1000 };
    nanosleep(&t, NULL);
    return 0;
}

Test(gpu_waits, device_copy_seconds_times_the_dma_not_when_it_is_noticed)
{
    model m;
    model_open(&m);
    /* 30 small tensors spread over the reads, each reported ready (a
     * callback that sleeps 10 ms) while later reads' copies are queued. */
    trestle_op ops[31];
    char names[30][32];
    for (int i = 0; i < 30; i++) {
        snprintf(names[i], sizeof names[i], "tiny/%05d", i * 100);
        ops[i] = (trestle_op){ .name = names[i] };
    }
    ops[30] = (trestle_op){ .name = "w" };
    trestle_plan *p = tu_plan(m.ckpt, ops, 31, NULL);
    trestle_error err;
    trestle_restore_options o;
    trestle_stats st;
    opts(&o, 0);
    o.threads = 1;
    o.chunk_bytes = 4096;
    o.on_ready = slow_ready;
    cr_assert_eq(trestle_restore(p, &o, &st, &err), TRESTLE_OK, "%s", err.message);
    cr_assert_gt(st.wall_seconds, 0.3);
    cr_assert_gt(st.device_copy_seconds, 0.0, "no copy was timed");
    /* The mock's copies are memcpys of 62 KB: far under a millisecond. */
    cr_assert_lt(st.device_copy_seconds, 0.05, "device_copy_seconds %.3f s of a %.3f s restore: "
                 "the host's notice was timed, not the DMA", st.device_copy_seconds,
                 st.wall_seconds);
    trestle_plan_free(p);
    model_close(&m);
}

/* ---- what is made once per plan ---- */

Test(gpu_waits, streams_and_events_are_made_once_per_plan)
{
    model m;
    model_open(&m);
    trestle_plan *p = plan_all(&m, 0);
    trestle_error err;
    trestle_restore_options o;
    opts(&o, 0);
    cudamock_stats z, a, b;
    cudamock_get_stats(&z);
    cr_assert_eq(trestle_restore(p, &o, NULL, &err), TRESTLE_OK, "%s", err.message);
    cudamock_get_stats(&a);
    for (int i = 0; i < 9; i++)
        cr_assert_eq(trestle_restore(p, &o, NULL, &err), TRESTLE_OK, "%s", err.message);
    cudamock_get_stats(&b);
    /* A worker makes its stream and events in its own thread on its first
     * read, and a worker that got no read in the first restore (the other
     * took them all: a busy machine) makes them in a later one. So: at most
     * one stream per worker over all ten, and nothing made was destroyed
     * and made again. */
    uint64_t streams = b.streams_created - z.streams_created;
    uint64_t events = b.events_created - z.events_created;
    cr_assert_leq(streams, (uint64_t)o.threads, "%" PRIu64 " streams made by 10 restores with %u "
                  "workers", streams, o.threads);
    cr_assert_eq(b.streams_live, streams, "%" PRIu64 " streams made, %" PRIu64 " kept: some were "
                 "destroyed and made again", streams, b.streams_live);
    cr_assert_eq(b.events_live, events, "%" PRIu64 " events made, %" PRIu64 " kept: some were "
                 "destroyed and made again", events, b.events_live);
    cr_assert_eq(b.host_registers, a.host_registers, "staging pinned again");
    cr_assert_gt(b.streams_live, 0, "the plan keeps its streams");
    trestle_plan_free(p);
    cudamock_get_stats(&b);
    cr_assert_eq(b.streams_live, 0, "trestle_plan_free destroys the streams");
    cr_assert_eq(b.events_live, 0, "trestle_plan_free destroys the events");
    cr_assert_eq(b.ops_pending_at_destroy, 0);
    model_close(&m);
}

/* The counters a mock-built CLI prints at exit (TRESTLE_CUDAMOCK_STATS=1). */
static uint64_t cli_counter(const char *err, const char *name)
{
    const char *line = strstr(err, "cudamock: ");
    cr_assert(line, "no mock counters in:\n%s", err);
    const char *at = strstr(line, name);
    cr_assert(at, "no %s in %s", name, line);
    return strtoull(at + strlen(name) + 1, NULL, 10);
}

Test(gpu_waits, bench_repeats_pin_staging_once)
{
    model m;
    model_open(&m);
    uint64_t regs[2];
    for (int k = 0; k < 2; k++) {
        char *cmd, *out, *err;
        cr_assert(asprintf(&cmd, "TRESTLE_CUDAMOCK_STATS=1 '%s' bench '%s' --device 0 --repeat %d",
                           TRESTLE_CLI_PATH, m.prefix, k ? 4 : 1) > 0);
        int rc = tu_run(cmd, &out, &err);
        cr_assert_eq(rc, 0, "%s\n%s", out, err);
        regs[k] = cli_counter(err, "host_registers");
        free(cmd);
        free(out);
        free(err);
    }
    cr_assert_eq(regs[1], regs[0], "4 repeats pinned staging %" PRIu64 " times, 1 repeat %" PRIu64
                 ": every repeat pins it again", regs[1], regs[0]);
    model_close(&m);
}

/* ---- pinning refused, whatever the code ---- */

Test(gpu_waits, any_refusal_to_register_falls_back_to_cudaHostAlloc)
{
    model m;
    model_open(&m);
    trestle_op op = { .name = "w" };
    trestle_plan *h = tu_plan(m.ckpt, &op, 1, NULL), *d = tu_plan(m.ckpt, &op, 1, NULL);
    trestle_error err;
    trestle_restore_options o;
    trestle_stats st;
    opts(&o, -1);
    cr_assert_eq(trestle_restore(h, &o, NULL, &err), TRESTLE_OK, "%s", err.message);
    opts(&o, 0);
    /* RLIMIT_MEMLOCK or a full IOMMU space say "out of memory", where
     * cudaHostAlloc's own pool may still have room. */
    cudamock_fail("cudaHostRegister", 1, cudaErrorMemoryAllocation, 0);
    cr_assert_eq(trestle_restore(d, &o, &st, &err), TRESTLE_OK, "%s", err.message);
    cr_assert_str_eq(st.staging_note, "cudaHostRegister refused (out of memory): staging is "
                                      "cudaHostAlloc memory");
    tc_same_bytes(h, d);
    trestle_plan_free(d);
    trestle_plan_free(h);
    model_close(&m);
}

/* ---- an idle worker retires its oldest mark, then looks for work ---- */

Test(gpu_waits, an_idle_worker_waits_for_its_oldest_copies_only)
{
    model m;
    model_open(&m);
    trestle_plan *p = plan_all(&m, 0);
    trestle_error err;
    trestle_restore_options o;
    opts(&o, 0);
    o.threads = 1;
    o.chunk_bytes = 4096; /* about 30 reads */
    o.staging_bytes = 8 * (4096 + 8192); /* eight buffers: the worker holds most, then idles */
    /* Each wait takes 60 ms: long enough for the producer to read into the
     * buffer the first one gives back. */
    setenv("TRESTLE_CUDAMOCK_SYNC_DELAY_US", "60000", 1);
    setenv("TRESTLE_CUDAMOCK_QUERY_DONE", "0", 1); /* marks pile up until waited for */
    cudamock_stats st;
    cr_assert_eq(trestle_restore(p, &o, NULL, &err), TRESTLE_OK, "%s", err.message);
    unsetenv("TRESTLE_CUDAMOCK_SYNC_DELAY_US");
    unsetenv("TRESTLE_CUDAMOCK_QUERY_DONE");
    cudamock_get_stats(&st);
    /* Waiting for the oldest mark frees a buffer, the producer fills it,
     * and the worker takes that read before it waits again, rather than
     * waiting for every mark it holds first. */
    cr_assert_leq(st.max_syncs_before_enqueue, 2, "the worker waited %" PRIu64 " times in a "
                  "row before it took the next read", st.max_syncs_before_enqueue);
    trestle_plan_free(p);
    model_close(&m);
}

/* ---- the caller's thread keeps its lack of a context ---- */

Test(gpu_waits, a_thread_without_a_context_keeps_none_with_caller_device_pointers)
{
    model m;
    model_open(&m);
    trestle_op op = { .name = "w" };
    trestle_plan *h = tu_plan(m.ckpt, &op, 1, NULL);
    trestle_error err;
    trestle_restore_options o;
    opts(&o, -1);
    cr_assert_eq(trestle_restore(h, &o, NULL, &err), TRESTLE_OK, "%s", err.message);
    trestle_plan_op_info hi;
    cr_assert_eq(trestle_plan_get_op(h, 0, &hi), TRESTLE_OK);
    CUDA_OK(cudaSetDevice(1));
    void *buf;
    CUDA_OK(cudaMalloc(&buf, hi.bytes));
    tc_ctx_set(NULL); /* the thread's context goes: the caller works through another thread */
    op.dest_kind = TRESTLE_DEST_DEVICE;
    op.ptr = buf;
    op.capacity = hi.bytes;
    trestle_plan *d = tu_plan(m.ckpt, &op, 1, NULL);
    opts(&o, -1); /* the device comes from the pointer: asked of the runtime */
    cr_assert_eq(trestle_restore(d, &o, NULL, &err), TRESTLE_OK, "%s", err.message);
    cr_assert_null(tc_ctx_current(), "the restore left a context current in the caller's thread");
    trestle_plan_free(d);
    cr_assert_null(tc_ctx_current(), "trestle_plan_free left a context current");
    CUDA_OK(cudaFree(buf));
    trestle_plan_free(h);
    model_close(&m);
}

#else

Test(gpu_waits, needs_the_cuda_mock)
{
    cr_skip_test("these cases run on tests/cudamock (-DTRESTLE_CUDA_MOCK=ON, scripts/check.sh "
                 "asan); a real GPU runs their plain-CUDA ports in test_gpu_restore");
}

#endif
