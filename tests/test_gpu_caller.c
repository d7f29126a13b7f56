/*
 * test_gpu_caller.c - what a real GPU can prove wrong with the CUDA
 * runtime alone (issue 23): work the caller queued on the legacy stream
 * lands before the restore's bytes, a thread without a CUDA context is
 * left without one, and a cancelled restore writes nothing after it
 * returns. Ports of mock-only cases (test_gpu_order, test_gpu_waits), so
 * that a GPU machine runs them as they are; on the mock they run too (the
 * cancellation case in its "late" mode, where work left queued lands after
 * whatever the caller waited for, as on a GPU).
 *
 * Without a usable GPU every case skips with the runtime's reason; in a
 * build without CUDA, one case says so.
 */
#include <criterion/criterion.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "testutil.h"
#include "trestle.h"

#if TRESTLE_HAVE_CUDA

#include <cuda_runtime_api.h>

#include "gpumodel.h"
#include "testcuda.h"

#if TRESTLE_CUDA_MOCK
#include "cudamock.h"
#define LEGACY_BUSY_BYTES ((size_t)8 << 20) /* the mock copies with memcpy: keep it small */
#else
#define LEGACY_BUSY_BYTES ((size_t)512 << 20) /* twice: about 1 GiB, a few ms on an H100 */
#endif

/* The fixture of the cases below: gm_write_model(shards)'s tensors but the
 * string one, restored to host memory (`host`), a device buffer on device
 * 0 for each (`bufs`), and the same ops into them (`dops`, DEST_DEVICE). */
typedef struct dev_case {
    char *dir, *prefix;
    trestle_checkpoint *c;
    trestle_plan *host;
    size_t n;
    void **bufs;
    trestle_op *dops;
} dev_case;

static void dev_case_open(dev_case *k, int shards)
{
    trestle_error err;
    trestle_restore_options o;
    gm_gpu_count();
    k->prefix = gm_write_model(shards, &k->dir);
    k->c = tu_open(k->prefix, NULL);
    k->host = gm_plan_plain(k->c);
    gm_opts(&o, TRESTLE_READER_PREAD, -1);
    cr_assert_eq(tu_restore(k->host, &o, NULL, &err), TRESTLE_OK, "%s", err.message);
    CUDA_OK(cudaSetDevice(0));
    k->n = trestle_plan_op_count(k->host);
    k->bufs = calloc(k->n, sizeof *k->bufs);
    k->dops = calloc(k->n, sizeof *k->dops);
    for (size_t i = 0; i < k->n; i++) {
        trestle_plan_op_info op;
        cr_assert_eq(trestle_plan_get_op(k->host, i, &op), TRESTLE_OK);
        CUDA_OK(cudaMalloc(&k->bufs[i], op.bytes ? op.bytes : 1));
        k->dops[i] = (trestle_op){ .name = op.name, .dest_kind = TRESTLE_DEST_DEVICE,
                                   .ptr = k->bufs[i], .capacity = op.bytes };
    }
}

static void dev_case_close(dev_case *k)
{
    for (size_t i = 0; i < k->n; i++)
        CUDA_OK(cudaFree(k->bufs[i]));
    free(k->bufs);
    free(k->dops);
    trestle_plan_free(k->host);
    trestle_close(k->c);
    free(k->prefix);
    tu_rmtree(k->dir);
    free(k->dir);
}

Test(gpu, work_queued_on_the_legacy_stream_lands_before_the_restore)
{
    dev_case k;
    dev_case_open(&k, 2);
    trestle_error err;
    trestle_restore_options o;
    /* Stream 0 busy with about 1 GiB of device-to-device copies, then a
     * memset of every destination: a restore that did not wait for the
     * legacy stream would finish before the memset and lose its bytes. */
    void *a, *b;
    CUDA_OK(cudaMalloc(&a, LEGACY_BUSY_BYTES));
    CUDA_OK(cudaMalloc(&b, LEGACY_BUSY_BYTES));
    CUDA_OK(cudaMemsetAsync(a, 0x5a, LEGACY_BUSY_BYTES, 0));
    for (int r = 0; r < 2; r++)
        CUDA_OK(cudaMemcpyAsync(b, a, LEGACY_BUSY_BYTES, cudaMemcpyDeviceToDevice, 0));
    for (size_t i = 0; i < k.n; i++)
        CUDA_OK(cudaMemsetAsync(k.bufs[i], 0, k.dops[i].capacity, 0));
    trestle_plan *pd = tu_plan(k.c, k.dops, k.n, NULL);
    gm_opts(&o, TRESTLE_READER_PREAD, -1); /* no stream: the legacy stream's work comes first */
    cr_assert_eq(tu_restore(pd, &o, NULL, &err), TRESTLE_OK, "%s", err.message);
    gm_compare_plans(k.host, pd);
    CUDA_OK(cudaFree(a));
    CUDA_OK(cudaFree(b));
    trestle_plan_free(pd);
    dev_case_close(&k);
}

typedef struct ctx_case {
    dev_case *k;
    int before, after_restore, after_read, after_free; /* 1: a context was current */
    int rc;
    char msg[TRESTLE_ERROR_MESSAGE_MAX];
} ctx_case;

/* A thread of its own, which has no CUDA context: a restore onto device 0
 * (the caller's buffers, then engine memory), a read back, a free. */
static void *restore_without_context(void *arg)
{
    ctx_case *t = arg;
    trestle_error err;
    trestle_restore_options o;
    t->before = tc_ctx_current() != NULL;
    trestle_plan *pd = tu_plan(t->k->c, t->k->dops, t->k->n, NULL), *pa = gm_plan_plain(t->k->c);
    gm_opts(&o, TRESTLE_READER_PREAD, 0);
    t->rc = trestle_restore(pd, &o, NULL, &err);
    if (t->rc == TRESTLE_OK)
        t->rc = trestle_restore(pa, &o, NULL, &err);
    snprintf(t->msg, sizeof t->msg, "%s", t->rc ? err.message : "");
    t->after_restore = tc_ctx_current() != NULL;
    trestle_plan_op_info op;
    trestle_plan_get_op(pa, 0, &op);
    uint8_t *back = malloc(op.bytes ? op.bytes : 1);
    if (t->rc == TRESTLE_OK)
        t->rc = trestle_plan_read_op(pa, 0, back, op.bytes, &err);
    free(back);
    t->after_read = tc_ctx_current() != NULL;
    trestle_plan_free(pd);
    trestle_plan_free(pa);
    t->after_free = tc_ctx_current() != NULL;
    return NULL;
}

Test(gpu, a_thread_without_a_context_stays_without_one)
{
    dev_case k;
    dev_case_open(&k, 2); /* this thread's context; the other's has none */
    ctx_case t = { .k = &k };
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, restore_without_context, &t), 0);
    pthread_join(th, NULL);
    cr_assert_eq(t.rc, TRESTLE_OK, "%s", t.msg);
    cr_assert_not(t.before, "a new thread had a context to begin with");
    cr_assert_not(t.after_restore, "the restores left a context current in a thread that had "
                  "none");
    cr_assert_not(t.after_read, "trestle_plan_read_op left a context current");
    cr_assert_not(t.after_free, "trestle_plan_free left a context current");
    dev_case_close(&k);
}

static int cancel_at_once(void *user, size_t i, const trestle_plan_op_info *op)
{
    (void)user, (void)i, (void)op;
    return 1;
}

Test(gpu, a_cancelled_restore_writes_nothing_after_it_returns)
{
    dev_case k;
    dev_case_open(&k, 8);
    trestle_error err;
    trestle_restore_options o;
    trestle_plan *pd = tu_plan(k.c, k.dops, k.n, NULL);
#if TRESTLE_CUDA_MOCK
    cudamock_set_late(1); /* work left queued runs after the caller's waits, as on a GPU */
#endif
    gm_opts(&o, TRESTLE_READER_PREAD, 0);
    o.on_ready = cancel_at_once;
    cr_assert_eq(tu_restore(pd, &o, NULL, &err), TRESTLE_E_CANCELLED, "%s", err.message);
    /* The caller takes its buffers back at once: zeroes them on its
     * stream and waits. A copy of the restore still in flight would land
     * on the zeros. */
    cudaStream_t s;
    CUDA_OK(cudaStreamCreate(&s));
    for (size_t i = 0; i < k.n; i++)
        CUDA_OK(cudaMemsetAsync(k.bufs[i], 0, k.dops[i].capacity, s));
    CUDA_OK(cudaStreamSynchronize(s));
    struct timespec pause = { 0, 50 * 1000 * 1000 }; /* stray DMAs have time to land */
    nanosleep(&pause, NULL);
    for (size_t i = 0; i < k.n; i++) {
        uint8_t *back = malloc(k.dops[i].capacity ? k.dops[i].capacity : 1);
        CUDA_OK(cudaMemcpy(back, k.bufs[i], k.dops[i].capacity, cudaMemcpyDeviceToHost));
        for (uint64_t j = 0; j < k.dops[i].capacity; j++)
            cr_assert_eq(back[j], 0, "%s: byte %" PRIu64 " written after the cancelled restore "
                         "returned", k.dops[i].name, j);
        free(back);
    }
    CUDA_OK(cudaStreamDestroy(s));
    trestle_plan_free(pd);
    dev_case_close(&k);
}

#else /* !TRESTLE_HAVE_CUDA */

Test(gpu_caller, needs_a_cuda_build)
{
    cr_skip_test("this build of trestle has no CUDA (configure with -DTRESTLE_CUDA=ON and nvcc)");
}

#endif
