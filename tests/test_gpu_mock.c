/*
 * test_gpu_mock.c - what only the mock runtime can see of a device
 * restore (tests/cudamock): allocation counts, device-wide syncs, pageable
 * copies, leaked streams and events, the caller's current device, an op's
 * bytes on the device when it is reported ready, and every CUDA failure
 * path, each followed by a healthy restore of the same plan.
 *
 * These run in -DTRESTLE_CUDA_MOCK=ON builds (scripts/check.sh asan
 * builds one); elsewhere they skip.
 */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <fnmatch.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "trestle.h"

#if TRESTLE_CUDA_MOCK

#include <cuda_runtime_api.h>

#include "cudamock.h"
#include "gpumodel.h"
#include "testcuda.h"

/* The mock defers every queued copy until something waits for it and
 * aborts when a copy's pinned source changed before it ran, so the other
 * device suites already prove the fencing; these check what a GPU would
 * not report at all. */

/* Nothing a restore queued is still queued when it returns, failed or
 * not, and no stream went with work on it: the caller may free the
 * destinations, and a retry refill the staging, at once. */
static void assert_nothing_queued(void)
{
    cudamock_stats st;
    cudamock_get_stats(&st);
    cr_assert_eq(cudamock_pending_ops(), 0, "%" PRIu64 " copies still queued after the restore",
                 cudamock_pending_ops());
    cr_assert_eq(st.ops_pending_at_destroy, 0, "%" PRIu64 " copies were queued on streams when "
                 "they were destroyed", st.ops_pending_at_destroy);
}

/* Nothing the copier made outlives the plan that keeps it for the next
 * restore (the test's own streams aside); `pinned` ranges stay pinned: the
 * plans' staging memory, kept until trestle_plan_free() (-1: any number). */
static void assert_no_cuda_leftovers(uint64_t own_streams, int pinned)
{
    cudamock_stats st;
    cudamock_get_stats(&st);
    cr_assert_eq(st.streams_live, own_streams, "%" PRIu64 " streams left",
                 st.streams_live - own_streams);
    cr_assert_eq(st.events_live, 0, "%" PRIu64 " events left", st.events_live);
    if (pinned >= 0)
        cr_assert_eq(st.host_registered_live + st.host_allocs_live, (uint64_t)pinned,
                     "%" PRIu64 " pinned ranges left, %d expected",
                     st.host_registered_live + st.host_allocs_live, pinned);
}

Test(gpu_mock, allocates_once_never_syncs_the_device_and_leaves_the_callers_device)
{
    char *dir, *prefix = gm_write_model(3, &dir);
    trestle_checkpoint *c;
    trestle_plan *p;
    trestle_error err;
    trestle_restore_options o;
    cudamock_stats a, b;
    c = tu_open(prefix, NULL);
    p = tu_plan(c, NULL, 0, NULL);
    uint64_t want = 0;
    for (size_t i = 0; i < trestle_plan_op_count(p); i++) {
        trestle_plan_op_info op;
        cr_assert_eq(trestle_plan_get_op(p, i, &op), TRESTLE_OK);
        want += op.bytes;
    }
    /* The embedding runtime works on device 1; the restore goes to 0. */
    CUDA_OK(cudaSetDevice(1));
    cudamock_get_stats(&a);
    gm_opts(&o, TRESTLE_READER_IO_URING, 0);
    cr_assert_eq(tu_restore(p, &o, NULL, &err), TRESTLE_OK, "%s", err.message);
    cudamock_get_stats(&b);
    int dev = -1;
    CUDA_OK(cudaGetDevice(&dev));
    cr_assert_eq(dev, 1, "the caller's current device was switched to %d", dev);
    cr_assert_eq(b.mallocs - a.mallocs, 1, "one device arena, not one allocation per tensor");
    cr_assert_eq(b.device_syncs, a.device_syncs, "no device-wide synchronisation");
    cr_assert_eq(b.h2d_pageable_copies, a.h2d_pageable_copies, "every copy from pinned memory");
    cr_assert_eq(b.h2d_pinned_bytes - a.h2d_pinned_bytes, want,
                 "%" PRIu64 " of %" PRIu64 " bytes went by DMA from pinned staging",
                 b.h2d_pinned_bytes - a.h2d_pinned_bytes, want);
    cr_assert_eq(b.ops_run[1], a.ops_run[1], "nothing ran on device 1");
    assert_nothing_queued();
    cr_assert_eq(b.host_registered_live + b.host_allocs_live, 1, "the plan's staging stays pinned");

    /* Restored again: the arena is reused, not reallocated, and the
     * streams and events the plan kept are used again. */
    cr_assert_eq(tu_restore(p, &o, NULL, &err), TRESTLE_OK, "%s", err.message);
    cudamock_get_stats(&a);
    cr_assert_eq(a.mallocs, b.mallocs);
    cr_assert_eq(a.streams_created, b.streams_created, "new streams for the second restore");
    cr_assert_eq(a.events_created, b.events_created, "new events for the second restore");
    trestle_plan_free(p);
    cudamock_get_stats(&a);
    cr_assert_eq(a.device_bytes_live, 0, "trestle_plan_free releases the device arena");
    assert_no_cuda_leftovers(0, 0);
    trestle_close(c);
    free(prefix);
    tu_rmtree(dir);
    free(dir);
}

typedef struct ready_check {
    trestle_plan *host;
    int ready, wrong;
} ready_check;

/* A ready op's bytes are on the device when the callback runs: a plain
 * cudaMemcpy (legacy stream, which never waits for the copier's
 * non-blocking streams) must already see them. */
static int check_on_ready(void *user, size_t i, const trestle_plan_op_info *op)
{
    ready_check *rc = user;
    trestle_plan_op_info h;
    trestle_plan_get_op(rc->host, i, &h);
    uint8_t *back = malloc(h.bytes ? h.bytes : 1);
    if (cudaMemcpy(back, op->data, h.bytes, cudaMemcpyDeviceToHost) != cudaSuccess ||
        memcmp(back, h.data, h.bytes) != 0)
        __atomic_add_fetch(&rc->wrong, 1, __ATOMIC_RELAXED);
    __atomic_add_fetch(&rc->ready, 1, __ATOMIC_RELAXED);
    free(back);
    return 0;
}

Test(gpu_mock, an_op_is_on_the_device_when_reported_ready)
{
    char *dir, *prefix = gm_write_model(2, &dir);
    trestle_checkpoint *c;
    trestle_plan *ph, *pd;
    trestle_error err;
    trestle_restore_options o;
    c = tu_open(prefix, NULL);
    ph = tu_plan(c, NULL, 0, NULL);
    pd = tu_plan(c, NULL, 0, NULL);
    gm_opts(&o, TRESTLE_READER_PREAD, -1);
    cr_assert_eq(tu_restore(ph, &o, NULL, &err), TRESTLE_OK, "%s", err.message);
    ready_check rc = { .host = ph };
    gm_opts(&o, TRESTLE_READER_IO_URING, 0);
    o.on_ready = check_on_ready;
    o.user = &rc;
    cr_assert_eq(tu_restore(pd, &o, NULL, &err), TRESTLE_OK, "%s", err.message);
    cr_assert_eq(rc.ready, (int)trestle_plan_op_count(pd));
    cr_assert_eq(rc.wrong, 0, "%d ops were reported ready before their bytes were on the device",
                 rc.wrong);
    trestle_plan_free(pd);
    trestle_plan_free(ph);
    trestle_close(c);
    free(prefix);
    tu_rmtree(dir);
    free(dir);
}

Test(gpu_mock, read_op_names_the_tensor_when_the_device_copy_fails)
{
    char *dir, *prefix = gm_write_model(1, &dir);
    trestle_checkpoint *c;
    trestle_plan *p;
    trestle_error err;
    trestle_restore_options o;
    c = tu_open(prefix, NULL);
    trestle_op op = { .name = "nd2" };
    p = tu_plan(c, &op, 1, NULL);
    gm_opts(&o, TRESTLE_READER_PREAD, 1);
    cr_assert_eq(tu_restore(p, &o, NULL, &err), TRESTLE_OK, "%s", err.message);
    trestle_plan_op_info info;
    cr_assert_eq(trestle_plan_get_op(p, 0, &info), TRESTLE_OK);
    cr_assert_eq(info.device, 1);
    uint8_t *back = malloc(info.bytes);
    cudamock_fail("cudaMemcpy", 1, cudaErrorIllegalAddress, 0);
    cr_assert_eq(trestle_plan_read_op(p, 0, back, info.bytes, &err), TRESTLE_E_CUDA);
    cr_assert_str_eq(err.message, "tensor nd2: reading it back: CUDA device 1: cudaMemcpy (device "
                                  "to host) failed: an illegal memory access was encountered "
                                  "(cudaErrorIllegalAddress)");
    cr_assert_str_eq(err.key, "nd2");
    free(back);
    trestle_plan_free(p);
    trestle_close(c);
    free(prefix);
    tu_rmtree(dir);
    free(dir);
}

/* One CUDA failure: the call that fails, how, and what the restore says. */
/* Strings as arrays: Criterion runs each parameter in a fresh process
 * image, where the addresses of this one's static strings mean nothing. */
typedef struct cuda_fault {
    char fn[32];
    unsigned nth;
    int err;         /* cudaError_t */
    int async;       /* fails when the queued work runs */
    char also[32];   /* a second call that fails the same way ("": none) */
    int sliced;      /* restore the slice ops (scatter kernel) */
    int stream;      /* pass a caller stream */
    int code;        /* trestle code */
    char msg[256];   /* the message, or its tail after the tensor's name; "" for cudaMalloc */
} cuda_fault;

ParameterizedTestParameters(gpu_mock, reports_every_cuda_failure_and_recovers)
{
    static cuda_fault cases[] = {
        /* A refused registration falls back to cudaHostAlloc: both must fail. */
        { "cudaHostRegister", 1, cudaErrorMemoryAllocation, 0, "cudaHostAlloc", 0, 0,
          TRESTLE_E_NOMEM,
          "cannot pin 1032192 bytes of staging memory for CUDA device 0 (cudaHostRegister: out "
          "of memory; cudaHostAlloc: out of memory); lower the staging size (--staging, "
          "staging_bytes) or free host memory" },
        { "cudaMalloc", 1, cudaErrorMemoryAllocation, 0, "", 0, 0, TRESTLE_E_NOMEM, "" },
        { "cudaEventRecord", 1, cudaErrorInvalidResourceHandle, 0, "", 0, 1, TRESTLE_E_CUDA,
          "CUDA device 0: waiting on the caller's stream (cudaEventRecord) failed: invalid "
          "resource handle (cudaErrorInvalidResourceHandle)" },
        { "cudaStreamCreateWithFlags", 1, cudaErrorLaunchFailure, 0, "", 0, 0, TRESTLE_E_CUDA,
          "CUDA device 0: creating a copy stream failed: unspecified launch failure "
          "(cudaErrorLaunchFailure)" },
        { "cudaMemcpyAsync", 5, cudaErrorInvalidValue, 0, "", 0, 0, TRESTLE_E_CUDA,
          "CUDA device 0: cudaMemcpyAsync (host to device) failed: invalid argument "
          "(cudaErrorInvalidValue)" },
        { "cudaMemcpyAsync", 9, cudaErrorIllegalAddress, 1, "", 0, 0, TRESTLE_E_CUDA,
          "CUDA device 0: waiting for copies (cudaEvent*) failed: an illegal memory access was "
          "encountered (cudaErrorIllegalAddress)" },
        { "trestle__k_scatter", 2, cudaErrorLaunchFailure, 0, "", 1, 0, TRESTLE_E_CUDA,
          "CUDA device 0: the slice scatter kernel failed: unspecified launch failure "
          "(cudaErrorLaunchFailure)" },
        { "trestle__k_scatter", 3, cudaErrorIllegalAddress, 1, "", 1, 1, TRESTLE_E_CUDA,
          "CUDA device 0: waiting for copies (cudaEvent*) failed: an illegal memory access was "
          "encountered (cudaErrorIllegalAddress)" },
    };
    return cr_make_param_array(cuda_fault, cases, sizeof cases / sizeof *cases);
}

ParameterizedTest(cuda_fault *f, gpu_mock, reports_every_cuda_failure_and_recovers)
{
    char *dir, *prefix = gm_write_model(2, &dir);
    trestle_checkpoint *c;
    trestle_plan *ph, *pd;
    trestle_error err;
    trestle_restore_options o;
    c = tu_open(prefix, NULL);
    trestle_op ops[GM_NSLICES];
    for (size_t i = 0; i < GM_NSLICES; i++)
        ops[i] = (trestle_op){ .name = gm_slice_names[i], .shape_and_slices = gm_slice_specs[i] };
    size_t nops = f->sliced ? GM_NSLICES : 0;
    ph = tu_plan(c, f->sliced ? ops : NULL, nops, NULL);
    pd = tu_plan(c, f->sliced ? ops : NULL, nops, NULL);
    gm_opts(&o, TRESTLE_READER_PREAD, -1);
    cr_assert_eq(tu_restore(ph, &o, NULL, &err), TRESTLE_OK, "%s", err.message);

    cudaStream_t s = NULL;
    if (f->stream)
        CUDA_OK(cudaStreamCreate(&s));
    gm_opts(&o, TRESTLE_READER_PREAD, 0);
    o.threads = 1; /* one worker: the failing copy belongs to a known tensor */
    o.cuda_stream = s;
    cudamock_fail(f->fn, f->nth, f->err, f->async);
    if (f->also[0])
        cudamock_fail_more(f->also, 1, f->err, f->async);
    int rc = trestle_restore(pd, &o, NULL, &err);
    cr_assert_eq(rc, f->code, "%s: got %d (%s)", f->fn, rc, err.message);
    if (!f->msg[0]) {
        cr_assert(strncmp(err.message, "cannot allocate ", 16) == 0, "%s", err.message);
        cr_assert(strstr(err.message, " bytes of device memory on CUDA device 0: out of memory"),
                  "%s", err.message);
    } else if (strncmp(err.message, "tensor '", 8) == 0) {
        /* Failures of queued copies name the tensor, shard and offset. */
        /* A pattern: "(cudaEvent*)" is cudaEventQuery or cudaEventSynchronize,
         * whichever met the sticky error first. */
        char head[600];
        snprintf(head, sizeof head, "tensor '%s' (shard %s, offset %" PRId64 "): %s", err.key,
                 err.path, err.offset, f->msg);
        cr_assert_eq(fnmatch(head, err.message, 0), 0, "got `%s`, want `%s`", err.message, head);
        cr_assert_neq(err.key[0], 0);
    } else {
        cr_assert_str_eq(err.message, f->msg);
    }
    assert_nothing_queued();

    /* Healthy again, the same plan restores every byte. */
    cudamock_reset();
    cr_assert_eq(trestle_restore(pd, &o, NULL, &err), TRESTLE_OK, "%s", err.message);
    gm_compare_plans(ph, pd);
    if (s)
        CUDA_OK(cudaStreamDestroy(s));
    trestle_plan_free(pd);
    trestle_plan_free(ph);
    assert_no_cuda_leftovers(0, 0);
    trestle_close(c);
    free(prefix);
    tu_rmtree(dir);
    free(dir);
}

#else

Test(gpu_mock, needs_the_cuda_mock)
{
    cr_skip_test("these cases run on tests/cudamock (-DTRESTLE_CUDA_MOCK=ON, scripts/check.sh "
                 "asan); a real GPU runs test_gpu_restore and test_gpu_caller");
}

#endif
