/*
 * test_gpu_order.c - what a real GPU would expose that a lenient one
 * hides: ordering with the caller's streams (the legacy default stream
 * too), whose CUDA context is left current, errors that belong to the
 * caller, callbacks that switch the device, pinned memory that cannot be
 * registered, and how often a restore waits and pins (issue 12).
 *
 * These run on tests/cudamock only (-DTRESTLE_CUDA_MOCK=ON, as
 * scripts/check.sh asan builds): the mock defers all queued work, legacy
 * stream included, until something waits for it, keeps per-thread
 * contexts, and counts what a GPU cannot report. Elsewhere they skip.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "trestle.h"

#if TRESTLE_CUDA_MOCK

#include <cuda.h>
#include <cuda_runtime_api.h>

#include "cudamock.h"
#include "testcuda.h"
#include "fault.h"
#include "numa.h"
#include "plan.h"


#define NTINY 3000 /* 16-byte tensors: many copies per staging buffer */

typedef struct model {
    char *dir, *prefix;
    trestle_checkpoint *ckpt;
    trestle_plan *host;    /* every tensor restored to host memory: the reference */
} model;

/* tu_write_gpu_model's checkpoint, with `tiny` NTINY tiny tensors or none,
 * and every tensor restored to host memory as the reference. */
static void model_open(model *m, int tiny)
{
    trestle_error err;
    m->dir = tu_mkdtemp();
    m->prefix = tu_write_gpu_model(m->dir, tiny ? NTINY : 0, 77);
    m->ckpt = tu_open(m->prefix, NULL);
    m->host = tu_plan(m->ckpt, NULL, 0, NULL);
    trestle_restore_options o;
    trestle_restore_options_init(&o);
    o.reader = TRESTLE_READER_PREAD;
    cr_assert_eq(trestle_restore(m->host, &o, NULL, &err), TRESTLE_OK, "%s", err.message);
}

static void model_close(model *m)
{
    trestle_plan_free(m->host);
    trestle_close(m->ckpt);
    tu_rmtree(m->dir);
    free(m->dir);
    free(m->prefix);
}

/* A plan of `n` ops (NULL, 0: every tensor) of m's checkpoint. */
/* The reference bytes of tensor `name`, sliced by `spec` ("" whole). */
static void *reference(model *m, const char *name, const char *spec, uint64_t *bytes)
{
    trestle_op op = { .name = name, .shape_and_slices = spec };
    trestle_plan *p;
    trestle_error err;
    trestle_restore_options o;
    trestle_restore_options_init(&o);
    o.reader = TRESTLE_READER_PREAD;
    p = tu_plan(m->ckpt, &op, 1, NULL);
    cr_assert_eq(trestle_restore(p, &o, NULL, &err), TRESTLE_OK, "%s", err.message);
    trestle_plan_op_info info;
    cr_assert_eq(trestle_plan_get_op(p, 0, &info), TRESTLE_OK);
    void *copy = malloc(info.bytes ? info.bytes : 1);
    memcpy(copy, info.data, info.bytes);
    *bytes = info.bytes;
    trestle_plan_free(p);
    return copy;
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

/* ---- ordering ---- */

Test(gpu_order, work_queued_on_the_legacy_stream_lands_before_the_copies)
{
    model m;
    model_open(&m, 0);
    uint64_t n;
    void *want = reference(&m, "w", "", &n);
    void *dst;
    CUDA_OK(cudaMalloc(&dst, n));
    /* A framework zero-fills the destination on the default stream and
     * hands it over without a stream: the copies must come after. */
    CUDA_OK(cudaMemsetAsync(dst, 0, n, 0));
    trestle_op op = { .name = "w", .dest_kind = TRESTLE_DEST_DEVICE, .ptr = dst, .capacity = n };
    trestle_plan *p;
    trestle_error err;
    trestle_restore_options o;
    p = tu_plan(m.ckpt, &op, 1, NULL);
    opts(&o, -1);
    cr_assert_eq(trestle_restore(p, &o, NULL, &err), TRESTLE_OK, "%s", err.message);
    uint8_t *back = malloc(n);
    CUDA_OK(cudaMemcpy(back, dst, n, cudaMemcpyDeviceToHost));
    cr_assert_eq(memcmp(back, want, n), 0, "the memset queued before the restore landed after it");
    free(back);
    free(want);
    CUDA_OK(cudaFree(dst));
    trestle_plan_free(p);
    model_close(&m);
}

Test(gpu_order, a_caller_stream_of_another_device_is_waited_for)
{
    model m;
    model_open(&m, 0);
    cudaStream_t s1;
    CUDA_OK(cudaSetDevice(1));
    CUDA_OK(cudaStreamCreate(&s1));
    CUDA_OK(cudaSetDevice(0));
    trestle_plan *p;
    trestle_error err;
    trestle_restore_options o;
    p = tu_plan(m.ckpt, NULL, 0, NULL);
    opts(&o, 0);
    o.cuda_stream = s1;
    cr_assert_eq(trestle_restore(p, &o, NULL, &err), TRESTLE_OK, "%s", err.message);
    tc_same_bytes(m.host, p);

    cudamock_set_capturing(s1, 1);
    cr_assert_eq(trestle_restore(p, &o, NULL, &err), TRESTLE_E_INVALID_ARG);
    cr_assert_str_eq(err.message, "the cuda_stream of the restore options is capturing a CUDA "
                                  "graph: a restore cannot be captured (its copies run on "
                                  "trestle's own streams); restore before the capture or on "
                                  "another stream");
    cudamock_set_capturing(s1, 0);
    CUDA_OK(cudaStreamDestroy(s1));
    trestle_plan_free(p);
    model_close(&m);
}

/* ---- contexts and errors that belong to the caller ---- */

Test(gpu_order, a_thread_without_a_context_is_left_without_one)
{
    model m;
    model_open(&m, 0); /* no CUDA call: the thread has no context yet */
    trestle_plan *p;
    trestle_error err;
    trestle_restore_options o;
    p = tu_plan(m.ckpt, NULL, 0, NULL);
    opts(&o, 1);
    cr_assert_eq(trestle_restore(p, &o, NULL, &err), TRESTLE_OK, "%s", err.message);
    cr_assert_null(tc_ctx_current(), "the restore left a context current in the caller's thread");
    cr_assert_not(cudamock_has_primary(0), "the restore onto device 1 created a context on 0");
    tc_same_bytes(m.host, p);
    trestle_plan_free(p);
    model_close(&m);
}

Test(gpu_order, a_driver_api_context_stays_current)
{
    model m;
    model_open(&m, 0);
    CUcontext mine = (CUcontext)cudamock_ctx_create(1);
    tc_ctx_set(mine);
    trestle_plan *p;
    trestle_error err;
    trestle_restore_options o;
    p = tu_plan(m.ckpt, NULL, 0, NULL);
    opts(&o, 0);
    cr_assert_eq(trestle_restore(p, &o, NULL, &err), TRESTLE_OK, "%s", err.message);
    cr_assert_eq(tc_ctx_current(), mine, "the caller's own context was replaced");
    trestle_plan_free(p);
    cr_assert_eq(tc_ctx_current(), mine, "trestle_plan_free replaced the caller's context");
    model_close(&m);
}

Test(gpu_order, the_callers_pending_error_is_neither_reported_nor_cleared)
{
    model m;
    model_open(&m, 0);
    trestle_plan *p;
    trestle_error err;
    trestle_restore_options o;
    p = tu_plan(m.ckpt, NULL, 0, NULL);
    cr_assert_eq(cudaSetDevice(99), cudaErrorInvalidDevice); /* the caller's own mistake */
    cudamock_stats a, b;
    cudamock_get_stats(&a);
    opts(&o, 0);
    cr_assert_eq(trestle_restore(p, &o, NULL, &err), TRESTLE_OK, "%s", err.message);
    cudamock_get_stats(&b);
    cr_assert_eq(b.last_error_calls, a.last_error_calls, "the engine read the last error");
    cr_assert_eq(cudaGetLastError(), cudaErrorInvalidDevice, "the caller's error was cleared");
    trestle_plan_free(p);
    model_close(&m);
}

static int switch_device(void *user, size_t i, const trestle_plan_op_info *op)
{
    (void)user;
    (void)i;
    (void)op;
    return cudaSetDevice(1) == cudaSuccess ? 0 : 1;
}

Test(gpu_order, a_ready_callback_that_switches_the_device_breaks_no_launch)
{
    model m;
    model_open(&m, 0);
    /* Columns of the cube: scatter kernels, launched on the worker's
     * stream of device 0 after the callback moved the thread to 1. */
    trestle_op ops[3] = {
        { .name = "cube", .shape_and_slices = "6 40 33 0,3:-:1,7" },
        { .name = "w", .shape_and_slices = "300 50 -:2,5" },
        { .name = "cube", .shape_and_slices = "6 40 33 3,3:0,20:-" },
    };
    trestle_plan *h, *d;
    trestle_error err;
    trestle_restore_options o;
    h = tu_plan(m.ckpt, ops, 3, NULL);
    d = tu_plan(m.ckpt, ops, 3, NULL);
    opts(&o, -1);
    cr_assert_eq(trestle_restore(h, &o, NULL, &err), TRESTLE_OK, "%s", err.message);
    opts(&o, 0);
    o.threads = 1;
    o.on_ready = switch_device;
    cr_assert_eq(trestle_restore(d, &o, NULL, &err), TRESTLE_OK, "%s", err.message);
    tc_same_bytes(h, d);
    trestle_plan_free(d);
    trestle_plan_free(h);
    model_close(&m);
}

/* ---- pinned memory ---- */

Test(gpu_order, refused_registration_falls_back_to_cudaHostAlloc_staging)
{
    model m;
    model_open(&m, 0);
    trestle_plan *p;
    trestle_error err;
    trestle_restore_options o;
    trestle_stats st;
    p = tu_plan(m.ckpt, NULL, 0, NULL);
    opts(&o, 0);
    cudamock_fail("cudaHostRegister", 1, cudaErrorNotSupported, 0);
    cr_assert_eq(trestle_restore(p, &o, &st, &err), TRESTLE_OK, "%s", err.message);
    cr_assert_str_eq(st.staging_note, "cudaHostRegister refused (operation not supported): "
                                      "staging is cudaHostAlloc memory");
    tc_same_bytes(m.host, p);
    cudamock_stats s;
    cudamock_get_stats(&s);
    cr_assert_eq(s.host_allocs_live, 1);
    cr_assert_eq(s.host_registered_live, 0);
    trestle_plan_free(p);
    cudamock_get_stats(&s);
    cr_assert_eq(s.host_allocs_live, 0, "trestle_plan_free frees the cudaHostAlloc staging");
    model_close(&m);
}

Test(gpu_order, staging_is_pinned_once_for_ten_restores)
{
    model m;
    model_open(&m, 0);
    trestle_plan *p;
    trestle_error err;
    trestle_restore_options o;
    p = tu_plan(m.ckpt, NULL, 0, NULL);
    opts(&o, 0);
    cudamock_stats a, b;
    cudamock_get_stats(&a);
    for (int i = 0; i < 10; i++) {
        o.device = i % 2; /* pinned portably: good for either device */
        cr_assert_eq(trestle_restore(p, &o, NULL, &err), TRESTLE_OK, "%s", err.message);
    }
    cudamock_get_stats(&b);
    cr_assert_eq(b.host_registers - a.host_registers, 1, "%" PRIu64 " registrations",
                 b.host_registers - a.host_registers);
    tc_same_bytes(m.host, p);
    trestle_plan_free(p);
    cudamock_get_stats(&b);
    cr_assert_eq(b.host_registered_live, 0, "trestle_plan_free unpins the staging");
    model_close(&m);
}

/* ---- where the bytes cross the bus ---- */

static const trestle_op slice_ops[3] = {
    { .name = "cube", .shape_and_slices = "6 40 33 0,3:-:1,7" },
    { .name = "w", .shape_and_slices = "300 50 -:2,5" },
    { .name = "cube", .shape_and_slices = "6 40 33 3,3:0,20:-" },
};

/* Restores slice_ops onto device 0 and compares them; the mock's
 * counters before and after in *a and *b. */
static void restore_slices(model *m, cudamock_stats *a, cudamock_stats *b)
{
    trestle_plan *h, *d;
    trestle_error err;
    trestle_restore_options o;
    h = tu_plan(m->ckpt, slice_ops, 3, NULL);
    d = tu_plan(m->ckpt, slice_ops, 3, NULL);
    opts(&o, -1);
    cr_assert_eq(trestle_restore(h, &o, NULL, &err), TRESTLE_OK, "%s", err.message);
    opts(&o, 0);
    cudamock_get_stats(a);
    cr_assert_eq(trestle_restore(d, &o, NULL, &err), TRESTLE_OK, "%s", err.message);
    cudamock_get_stats(b);
    tc_same_bytes(h, d);
    trestle_plan_free(d);
    trestle_plan_free(h);
}

Test(gpu_order, slices_are_scattered_from_device_memory)
{
    model m;
    model_open(&m, 0);
    cudamock_stats a, b;
    restore_slices(&m, &a, &b);
    cr_assert_gt(b.kernels, a.kernels, "no scatter kernel ran");
    cr_assert_eq(b.kernel_host_reads, a.kernel_host_reads,
                 "a kernel read staging over the bus instead of a device window");
    model_close(&m);
}

Test(gpu_order, without_device_memory_for_a_window_slices_still_restore)
{
    model m;
    model_open(&m, 0);
    cudamock_stats a, b;
    /* Windows come from the stream-ordered allocator (the arena from cudaMalloc). */
    cudamock_fail("cudaMallocAsync", 1, cudaErrorMemoryAllocation, 0);
    restore_slices(&m, &a, &b);
    cr_assert_gt(b.kernel_host_reads, a.kernel_host_reads, "the fallback was not taken");
    model_close(&m);
}

Test(gpu_order, widening_conversions_run_on_the_device)
{
    model m;
    model_open(&m, 0);
    trestle_op op = { .name = "bf", .target_dtype = TRESTLE_DT_FLOAT };
    trestle_plan *h, *d;
    trestle_error err;
    trestle_restore_options o;
    h = tu_plan(m.ckpt, &op, 1, NULL);
    d = tu_plan(m.ckpt, &op, 1, NULL);
    opts(&o, -1);
    cr_assert_eq(trestle_restore(h, &o, NULL, &err), TRESTLE_OK, "%s", err.message);
    opts(&o, 0);
    cudamock_stats a, b;
    cudamock_get_stats(&a);
    cr_assert_eq(trestle_restore(d, &o, NULL, &err), TRESTLE_OK, "%s", err.message);
    cudamock_get_stats(&b);
    tc_same_bytes(h, d);
    uint64_t stored = 200 * 30 * 2;
    /* The stored bytes cross the bus once; seams (elements cut by chunk
     * boundaries) go converted, a few bytes each. */
    cr_assert_geq(b.h2d_pinned_bytes - a.h2d_pinned_bytes, stored);
    cr_assert_lt(b.h2d_pinned_bytes - a.h2d_pinned_bytes, stored + 64,
                 "%" PRIu64 " bytes crossed the bus for %" PRIu64 " stored",
                 b.h2d_pinned_bytes - a.h2d_pinned_bytes, stored);
    cr_assert_gt(b.kernels, a.kernels, "no conversion kernel ran");
    trestle_plan_free(d);
    trestle_plan_free(h);
    model_close(&m);
}

/* ---- NUMA placement ---- */

/* A fake sysfs under a fresh directory: mock device 0 (bus 0000:1B:00.0)
 * on node 0, whose CPUs are this machine's own node 0 CPUs (so that
 * pinning can take). Returns the root (malloc'd). */
static char *fake_sysfs(void)
{
    char *root = tu_mkdtemp(), path[4096], cpus[256] = "0";
    FILE *real = fopen("/sys/devices/system/node/node0/cpulist", "r");
    if (real) {
        if (!fgets(cpus, sizeof cpus, real))
            snprintf(cpus, sizeof cpus, "0");
        fclose(real);
    }
    static const char *const dirs[] = { "sys", "sys/bus", "sys/bus/pci", "sys/bus/pci/devices",
                                        "sys/bus/pci/devices/0000:1b:00.0", "sys/devices",
                                        "sys/devices/system", "sys/devices/system/node",
                                        "sys/devices/system/node/node0" };
    for (size_t i = 0; i < sizeof dirs / sizeof *dirs; i++) {
        snprintf(path, sizeof path, "%s/%s", root, dirs[i]);
        cr_assert_eq(mkdir(path, 0755), 0, "%s: %s", path, strerror(errno));
    }
    snprintf(path, sizeof path, "%s/sys/bus/pci/devices/0000:1b:00.0/numa_node", root);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs("0\n", f);
    fclose(f);
    snprintf(path, sizeof path, "%s/sys/devices/system/node/node0/cpulist", root);
    cr_assert_not_null(f = fopen(path, "w"));
    fputs(cpus, f);
    fclose(f);
    return root;
}

/* Whether this kernel lets a process bind memory (containers may not). */
static bool mbind_allowed(void)
{
    void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    cr_assert_neq(p, MAP_FAILED);
    bool ok = trestle__numa_bind(p, 4096, 0) == 0;
    munmap(p, 4096);
    return ok;
}

Test(gpu_order, staging_and_workers_go_to_the_gpus_numa_node)
{
    model m;
    model_open(&m, 0);
    char *root = fake_sysfs();
    trestle__faults f;
    memset(&f, 0, sizeof f);
    f.sysroot = root;
    trestle_plan *p = tu_plan(m.ckpt, NULL, 0, NULL);
    trestle__plan_set_faults(p, &f);
    trestle_error err;
    trestle_restore_options o;
    trestle_stats st;
    opts(&o, 0);
    cr_assert_eq(trestle_restore(p, &o, &st, &err), TRESTLE_OK, "%s", err.message);
    cr_assert_eq(st.numa_node, 0);
    cr_assert_eq(st.numa_pinned, o.threads, "%u of %u workers pinned", st.numa_pinned, o.threads);
    cr_assert_eq(st.numa_bound, mbind_allowed(), "staging bound: %d", st.numa_bound);
    tc_same_bytes(m.host, p);

    /* Off when asked, and unknown for a host restore. */
    o.no_numa = 1;
    cr_assert_eq(trestle_restore(p, &o, &st, &err), TRESTLE_OK, "%s", err.message);
    cr_assert_eq(st.numa_node, -1);
    cr_assert_eq(st.numa_pinned, 0);
    cr_assert_eq(st.numa_bound, 0);
    opts(&o, -1);
    cr_assert_eq(trestle_restore(p, &o, &st, &err), TRESTLE_OK, "%s", err.message);
    cr_assert_eq(st.numa_node, -1);
    trestle_plan_free(p);
    tu_rmtree(root);
    free(root);
    model_close(&m);
}

Test(gpu_order, a_gpu_whose_node_is_unknown_is_left_where_the_system_puts_it)
{
    model m;
    model_open(&m, 0);
    trestle_plan *p = tu_plan(m.ckpt, NULL, 0, NULL);
    trestle_error err;
    trestle_restore_options o;
    trestle_stats st;
    opts(&o, 0); /* the mock's bus ids name no device of this host's sysfs */
    cr_assert_eq(trestle_restore(p, &o, &st, &err), TRESTLE_OK, "%s", err.message);
    cr_assert_eq(st.numa_node, -1);
    cr_assert_eq(st.numa_pinned, 0);
    cr_assert_eq(st.numa_bound, 0);
    trestle_plan_free(p);
    model_close(&m);
}

/* ---- waits ---- */

Test(gpu_order, tiny_tensors_wait_once_per_staging_buffer_and_never_spin)
{
    model m;
    model_open(&m, 1);
    trestle_plan *p;
    trestle_error err;
    trestle_restore_options o;
    trestle_stats st;
    trestle_plan_stats ps;
    p = tu_plan(m.ckpt, NULL, 0, NULL);
    trestle_plan_get_stats(p, &ps);
    opts(&o, 0);
    cudamock_stats a, b;
    cudamock_get_stats(&a);
    cr_assert_eq(trestle_restore(p, &o, &st, &err), TRESTLE_OK, "%s", err.message);
    cudamock_get_stats(&b);
    /* Reads: each batch's bytes in chunks, plus a partial one per batch. */
    uint64_t reads = ps.read_bytes / o.chunk_bytes + ps.batches;
    cr_assert_eq(b.stream_syncs, a.stream_syncs, "stream syncs spin a core");
    cr_assert_eq(b.device_syncs, a.device_syncs);
    cr_assert_eq(b.spinning_event_syncs, a.spinning_event_syncs, "waits on spinning events");
    cr_assert_leq(b.event_syncs - a.event_syncs, reads, "%" PRIu64 " waits for %" PRIu64 " reads",
                  b.event_syncs - a.event_syncs, reads);
    uint64_t calls = b.memcpy_async_calls - a.memcpy_async_calls + b.batch_calls - a.batch_calls;
    cr_assert_leq(calls, reads, "%" PRIu64 " copy calls for %d tiny tensors in %" PRIu64 " reads",
                  calls, NTINY, reads);
    cr_assert_gt(b.event_queries, a.event_queries, "no mark was polled");
    cr_assert_gt(b.event_syncs, a.event_syncs, "no worker waited for its copies");
    cr_assert_gt(st.copy_wait_seconds, 0.0, "the workers' waits went untimed");
    cr_assert_gt(st.device_copy_seconds, 0.0);
    cr_assert_leq(st.device_copy_seconds, st.wall_seconds);
    tc_same_bytes(m.host, p);
    trestle_plan_free(p);
    model_close(&m);
}

Test(gpu_order, a_host_restore_has_no_device_copy_time)
{
    model m;
    model_open(&m, 0);
    trestle_plan *p;
    trestle_error err;
    trestle_restore_options o;
    trestle_stats st;
    p = tu_plan(m.ckpt, NULL, 0, NULL);
    opts(&o, -1);
    cr_assert_eq(trestle_restore(p, &o, &st, &err), TRESTLE_OK, "%s", err.message);
    cr_assert_eq(st.device_copy_seconds, 0.0);
    cr_assert_eq(st.copy_wait_seconds, 0.0);
    cr_assert_str_eq(st.staging_note, "");
    trestle_plan_free(p);
    model_close(&m);
}

#else

Test(gpu_order, needs_the_cuda_mock)
{
    cr_skip_test("these cases run on tests/cudamock (-DTRESTLE_CUDA_MOCK=ON, scripts/check.sh "
                 "asan); a real GPU runs them through test_gpu_restore");
}

#endif
