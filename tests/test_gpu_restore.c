/*
 * test_gpu_restore.c - the restore matrix into CUDA device memory.
 *
 * Every case restores the same ops twice, into host memory (the path the
 * other suites prove against references computed element by element) and
 * into device memory, copies the device bytes back and compares them: whole
 * tensors across 1, 2 and 8 shards with both readers, N-d slices (through
 * the scatter kernel) into caller device pointers, partitioned variables,
 * string tensors, mixed host and device destinations, a caller stream,
 * adopted device arenas, CRC corruption, bad device pointers, and two GPUs
 * at once when the host has two.
 *
 * The cases a real GPU can prove wrong on its own are in test_gpu_caller,
 * those only the mock can see in test_gpu_mock; the model is gpumodel.c.
 *
 * Without a usable GPU (no driver, no device: CI) every case skips with the
 * CUDA runtime's reason; in a build without CUDA, one case says so.
 */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "trestle.h"

#if TRESTLE_HAVE_CUDA

#include <cuda_runtime_api.h>

#include "gpumodel.h"
#include "testcuda.h"

/* ---- whole tensors, every shard count and reader ---- */

typedef struct matrix_case {
    int shards;
    int reader;
} matrix_case;

ParameterizedTestParameters(gpu, restores_every_tensor_into_device_memory)
{
    static matrix_case cases[6];
    static const int shards[] = { 1, 2, 8 };
    for (int s = 0; s < 3; s++)
        for (int r = 0; r < 2; r++)
            cases[s * 2 + r] = (matrix_case){ shards[s], gm_readers[r] };
    return cr_make_param_array(matrix_case, cases, 6);
}

ParameterizedTest(matrix_case *mc, gpu, restores_every_tensor_into_device_memory)
{
    gm_gpu_count();
    char *dir, *prefix = gm_write_model(mc->shards, &dir);
    trestle_checkpoint *c;
    trestle_plan *ph, *pd;
    trestle_error err;
    trestle_restore_options o;
    trestle_stats st;
    c = tu_open(prefix, NULL);
    ph = tu_plan(c, NULL, 0, NULL);
    pd = tu_plan(c, NULL, 0, NULL);
    gm_opts(&o, mc->reader, -1);
    cr_assert_eq(tu_restore(ph, &o, NULL, &err), TRESTLE_OK, "%s", err.message);
    gm_opts(&o, mc->reader, 0);
    cr_assert_eq(tu_restore(pd, &o, &st, &err), TRESTLE_OK, "%s", err.message);
    cr_assert_eq(st.tensors, trestle_plan_op_count(pd));
    cr_assert_eq(st.reader, mc->reader);
    gm_compare_plans(ph, pd);

    /* The engine memory is one device allocation, adoptable. */
    trestle_arena *a;
    trestle_arena_info ai;
    cr_assert_eq(trestle_plan_adopt_arena(pd, &a), TRESTLE_OK);
    trestle_arena_get_info(a, &ai);
    cr_assert_eq(ai.device, 0);
    struct cudaPointerAttributes pa;
    CUDA_OK(cudaPointerGetAttributes(&pa, ai.base));
    cr_assert_eq(pa.type, cudaMemoryTypeDevice);
    /* Device tensors start on cudaMalloc's 256-byte boundaries (host ones on 64). */
    for (size_t i = 0; i < trestle_plan_op_count(pd); i++) {
        trestle_plan_op_info op;
        cr_assert_eq(trestle_plan_get_op(pd, i, &op), TRESTLE_OK);
        cr_assert_eq((uintptr_t)op.data % 256, 0, "%s", op.name);
    }
    gm_compare_plans(ph, pd); /* the plan's pointers still name the adopted memory */
    trestle_plan_free(pd);
    trestle_arena_free(a);
    trestle_plan_free(ph);
    trestle_close(c);
    free(prefix);
    tu_rmtree(dir);
    free(dir);
}

/* ---- slices into caller device pointers, with a caller stream ---- */

ParameterizedTestParameters(gpu, scatters_slices_into_caller_device_buffers)
{
    return cr_make_param_array(int, (int *)gm_readers, 2);
}

ParameterizedTest(int *reader, gpu, scatters_slices_into_caller_device_buffers)
{
    gm_gpu_count();
    char *dir, *prefix = gm_write_model(3, &dir);
    trestle_checkpoint *c;
    trestle_plan *ph, *pd;
    trestle_error err;
    trestle_restore_options o;
    c = tu_open(prefix, NULL);

    trestle_op hops[GM_NSLICES], dops[GM_NSLICES];
    for (size_t i = 0; i < GM_NSLICES; i++)
        hops[i] = (trestle_op){ .name = gm_slice_names[i], .shape_and_slices = gm_slice_specs[i] };
    ph = tu_plan(c, hops, GM_NSLICES, NULL);
    gm_opts(&o, *reader, -1);
    cr_assert_eq(tu_restore(ph, &o, NULL, &err), TRESTLE_OK, "%s", err.message);

    /* The caller's stream first fills the buffers with a pattern; the
     * restore's copies must come after it. */
    cudaStream_t s;
    CUDA_OK(cudaStreamCreate(&s));
    void *bufs[GM_NSLICES];
    for (size_t i = 0; i < GM_NSLICES; i++) {
        trestle_plan_op_info h;
        cr_assert_eq(trestle_plan_get_op(ph, i, &h), TRESTLE_OK);
        CUDA_OK(cudaMalloc(&bufs[i], h.bytes));
        CUDA_OK(cudaMemsetAsync(bufs[i], 0xA5, h.bytes, s));
        dops[i] = hops[i];
        dops[i].dest_kind = TRESTLE_DEST_DEVICE;
        dops[i].ptr = bufs[i];
        dops[i].capacity = h.bytes;
    }
    pd = tu_plan(c, dops, GM_NSLICES, NULL);
    gm_opts(&o, *reader, -1); /* the device comes from the pointers */
    o.cuda_stream = s;
    cr_assert_eq(tu_restore(pd, &o, NULL, &err), TRESTLE_OK, "%s", err.message);
    gm_compare_plans(ph, pd);
    for (size_t i = 0; i < GM_NSLICES; i++)
        CUDA_OK(cudaFree(bufs[i]));
    CUDA_OK(cudaStreamDestroy(s));
    trestle_plan_free(pd);
    trestle_plan_free(ph);
    trestle_close(c);
    free(prefix);
    tu_rmtree(dir);
    free(dir);
}

/* ---- host and device destinations in one restore ---- */

static int ready_on_device(void *user, size_t i, const trestle_plan_op_info *op)
{
    (void)i;
    struct cudaPointerAttributes pa;
    if (cudaPointerGetAttributes(&pa, op->data) == cudaSuccess && pa.type == cudaMemoryTypeDevice)
        __atomic_add_fetch((int *)user, 1, __ATOMIC_RELAXED);
    return 0;
}

Test(gpu, mixes_host_and_device_destinations)
{
    gm_gpu_count();
    char *dir, *prefix = gm_write_model(2, &dir);
    trestle_checkpoint *c;
    trestle_plan *ph, *pm;
    trestle_error err;
    trestle_restore_options o;
    c = tu_open(prefix, NULL);
    ph = tu_plan(c, NULL, 0, NULL);
    gm_opts(&o, TRESTLE_READER_PREAD, -1);
    cr_assert_eq(tu_restore(ph, &o, NULL, &err), TRESTLE_OK, "%s", err.message);

    size_t n = trestle_plan_op_count(ph);
    trestle_op *ops = calloc(n, sizeof *ops);
    void **bufs = calloc(n, sizeof *bufs);
    int on_device = 0, want_device = 0;
    for (size_t i = 0; i < n; i++) {
        trestle_plan_op_info h;
        cr_assert_eq(trestle_plan_get_op(ph, i, &h), TRESTLE_OK);
        ops[i].name = h.name;
        ops[i].capacity = h.bytes;
        if (i % 2) {
            CUDA_OK(cudaMalloc(&bufs[i], h.bytes ? h.bytes : 1));
            ops[i].dest_kind = TRESTLE_DEST_DEVICE;
            want_device++;
        } else {
            bufs[i] = malloc(h.bytes ? h.bytes : 1);
            ops[i].dest_kind = TRESTLE_DEST_HOST;
        }
        ops[i].ptr = bufs[i];
    }
    pm = tu_plan(c, ops, n, NULL);
    gm_opts(&o, TRESTLE_READER_PREAD, -1);
    o.on_ready = ready_on_device;
    o.user = &on_device;
    cr_assert_eq(tu_restore(pm, &o, NULL, &err), TRESTLE_OK, "%s", err.message);
    cr_assert_eq(on_device, want_device);
    for (size_t i = 0; i < n; i++) {
        trestle_plan_op_info h;
        cr_assert_eq(trestle_plan_get_op(ph, i, &h), TRESTLE_OK);
        trestle_plan_op_info m;
        cr_assert_eq(trestle_plan_get_op(pm, i, &m), TRESTLE_OK);
        cr_assert_eq(m.device, i % 2 ? 0 : -1, "%s", h.name);
        if (i % 2 == 0) {
            cr_assert_arr_eq(bufs[i], h.data, h.bytes, "%s (host)", h.name);
            free(bufs[i]);
            continue;
        }
        uint8_t *back = malloc(h.bytes ? h.bytes : 1);
        CUDA_OK(cudaMemcpy(back, bufs[i], h.bytes, cudaMemcpyDeviceToHost));
        cr_assert_arr_eq(back, h.data, h.bytes, "%s (device)", h.name);
        free(back);
        CUDA_OK(cudaFree(bufs[i]));
    }
    free(bufs);
    free(ops);
    trestle_plan_free(pm);
    trestle_plan_free(ph);
    trestle_close(c);
    free(prefix);
    tu_rmtree(dir);
    free(dir);
}

/* ---- errors ---- */

Test(gpu, names_the_tensor_on_errors)
{
    int count = gm_gpu_count();
    char *dir, *prefix = gm_write_model(2, &dir);
    trestle_checkpoint *c;
    trestle_plan *p;
    trestle_error err;
    trestle_restore_options o;
    c = tu_open(prefix, NULL);

    /* A host pointer passed as device memory. */
    static uint8_t host_buf[4000];
    trestle_op op = { .name = "nd1", .dest_kind = TRESTLE_DEST_DEVICE, .ptr = host_buf,
                      .capacity = sizeof host_buf };
    p = tu_plan(c, &op, 1, NULL);
    gm_opts(&o, TRESTLE_READER_PREAD, -1);
    cr_assert_eq(trestle_restore(p, &o, NULL, &err), TRESTLE_E_INVALID_ARG);
    char want[128];
    snprintf(want, sizeof want, "tensor nd1: destination %p is not CUDA device memory",
             (void *)host_buf);
    cr_assert_str_eq(err.message, want);
    cr_assert_str_eq(err.key, "nd1");
    trestle_plan_free(p);

    /* A device that does not exist. */
    p = tu_plan(c, NULL, 0, NULL);
    gm_opts(&o, TRESTLE_READER_PREAD, count);
    cr_assert_eq(trestle_restore(p, &o, NULL, &err), TRESTLE_E_NO_DEVICE);
    snprintf(want, sizeof want, "CUDA device %d does not exist (this host has %d)", count, count);
    cr_assert_str_eq(err.message, want);

    /* A flipped byte in the middle of a tensor: the CRC check still runs
     * on the staging bytes that go to the device. */
    trestle_tensor_info ti;
    size_t idx;
    cr_assert_eq(trestle_tensor_find(c, "layer23/w", &idx, &err), TRESTLE_OK);
    cr_assert_eq(trestle_tensor_get_info(c, idx, &ti), TRESTLE_OK);
    char *shard = strdup(trestle_shard_path(c, ti.shard));
    size_t len;
    uint8_t *bytes = tu_read_file(shard, &len);
    bytes[ti.offset + ti.size / 2] ^= 0x10;
    cr_assert_eq(tu_write_file(shard, bytes, len), 0);
    gm_opts(&o, TRESTLE_READER_PREAD, 0);
    cr_assert_eq(trestle_restore(p, &o, NULL, &err), TRESTLE_E_CRC_MISMATCH, "%s", err.message);
    cr_assert_str_eq(err.key, "layer23/w");
    free(bytes);
    free(shard);
    trestle_plan_free(p);
    trestle_close(c);
    free(prefix);
    tu_rmtree(dir);
    free(dir);
}

/* ---- two GPUs at once ---- */

typedef struct gpu_job {
    const char *prefix;
    int device;
    int rc;
    char message[512];
} gpu_job;

static void *restore_on(void *arg)
{
    gpu_job *j = arg;
    trestle_checkpoint *c;
    trestle_plan *ph, *pd;
    trestle_error err;
    trestle_restore_options o;
    j->rc = trestle_open(j->prefix, NULL, &c, &err);
    if (j->rc == TRESTLE_OK && (j->rc = trestle_plan_create(c, NULL, 0, NULL, &ph, &err)) == 0 &&
        (j->rc = trestle_plan_create(c, NULL, 0, NULL, &pd, &err)) == 0) {
        gm_opts(&o, TRESTLE_READER_AUTO, -1);
        j->rc = trestle_restore(ph, &o, NULL, &err);
        gm_opts(&o, TRESTLE_READER_AUTO, j->device);
        if (j->rc == TRESTLE_OK)
            j->rc = trestle_restore(pd, &o, NULL, &err);
        for (size_t i = 0; j->rc == TRESTLE_OK && i < trestle_plan_op_count(ph); i++) {
            trestle_plan_op_info h, d;
            trestle_plan_get_op(ph, i, &h);
            trestle_plan_get_op(pd, i, &d);
            if (h.bytes == 0)
                continue;
            uint8_t *back = malloc(h.bytes);
            if (cudaMemcpy(back, d.data, h.bytes, cudaMemcpyDeviceToHost) != cudaSuccess ||
                memcmp(back, h.data, h.bytes) != 0) {
                j->rc = -1;
                snprintf(err.message, sizeof err.message, "op %s differs on device %d", h.name,
                         j->device);
            }
            free(back);
        }
        trestle_plan_free(pd);
        trestle_plan_free(ph);
        trestle_close(c);
    }
    if (j->rc != TRESTLE_OK)
        snprintf(j->message, sizeof j->message, "%s", err.message);
    return NULL;
}

Test(gpu, restores_onto_two_gpus_at_once)
{
    if (gm_gpu_count() < 2)
        cr_skip_test("needs two CUDA devices; this host has one");
    char *dir, *prefix = gm_write_model(4, &dir);
    gpu_job jobs[2] = { { .prefix = prefix, .device = 0 }, { .prefix = prefix, .device = 1 } };
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        cr_assert_eq(pthread_create(&t[i], NULL, restore_on, &jobs[i]), 0);
    for (int i = 0; i < 2; i++) {
        pthread_join(t[i], NULL);
        cr_assert_eq(jobs[i].rc, TRESTLE_OK, "device %d: %s", i, jobs[i].message);
    }
    free(prefix);
    tu_rmtree(dir);
    free(dir);
}

/* ---- the example program ---- */

/* The checksum lines of tools/example_restore's output, in order; any
 * other line than those and its "landed" lines fails the test. */
static char *example_sums(const char *args, const char *prefix)
{
    char cmd[4200], *out, *err;
    snprintf(cmd, sizeof cmd, "'%s' %s '%s'", TRESTLE_EXAMPLE_PATH, args, prefix);
    cr_assert_eq(tu_run(cmd, &out, &err), 0, "%s failed: %s", cmd, err);
    cr_assert_str_eq(err, "", "%s", cmd);
    char *sums = calloc(1, strlen(out) + 1), *save = NULL;
    for (char *line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (strstr(line, "fnv1a64")) {
            strcat(sums, line);
            strcat(sums, "\n");
        } else {
            cr_assert(tu_starts_with(line, "landed "), "%s: %s", cmd, line);
        }
    }
    free(out);
    free(err);
    return sums;
}

Test(gpu, example_program_prints_the_same_checksums_from_the_device)
{
    gm_gpu_count();
    char *dir, *prefix = gm_write_model(2, &dir);
    char *host = example_sums("", prefix), *dev = example_sums("--device 0", prefix);
    cr_assert_neq(host[0], 0, "no checksums printed");
    cr_assert_str_eq(dev, host);
    free(host);
    free(dev);
    free(prefix);
    tu_rmtree(dir);
    free(dir);
}

/* ---- the CLI ---- */

Test(gpu, cli_restores_and_benches_onto_a_device)
{
    int count = gm_gpu_count();
    char *dir, *prefix = gm_write_model(2, &dir);
    tu_cli_result r = tu_cli("restore '%s' --all --device 0", prefix);
    cr_assert_eq(r.rc, 0, "%s", r.err);
    cr_assert_str_eq(r.err, "");
    cr_assert(tu_starts_with(r.out, "restored 31 tensors, "), "%s", r.out);
    tu_cli_free(&r);

    r = tu_cli("restore '%s' --all --device %d", prefix, count);
    cr_assert_eq(r.rc, 1, "%s", r.err);
    char want[256];
    snprintf(want, sizeof want, "trestle: CUDA device %d does not exist (this host has %d)\n"
             "trestle: --host restores to host memory instead\n", count, count);
    cr_assert_str_eq(r.err, want);
    cr_assert_str_eq(r.out, "");
    tu_cli_free(&r);

    r = tu_cli("bench '%s' --device 0 --repeat 1 --json", prefix);
    cr_assert_eq(r.rc, 0, "%s", r.err);
    cr_assert(strstr(r.out, "\"destination\": \"device\""), "%s", r.out);
    cr_assert(strstr(r.out, "\"device\": 0"), "%s", r.out);
    cr_assert(strstr(r.out, "\"device_startup_seconds\": "), "%s", r.out);
    cr_assert(!strstr(r.out, "\"device_startup_seconds\": null"), "%s", r.out);
    tu_cli_free(&r);
    free(prefix);
    tu_rmtree(dir);
    free(dir);
}

/* ---- dtype conversion on the way to the device ---- */

Test(gpu, converts_dtypes_into_device_memory)
{
    gm_gpu_count();
    char *dir, *prefix = gm_write_model(2, &dir);
    trestle_checkpoint *c;
    trestle_plan *ph, *pd;
    trestle_error err;
    trestle_restore_options o;
    c = tu_open(prefix, NULL);
    /* layer00 is bfloat16, layer01 float32, layer03 float16 (write_model);
     * nd2 is float32, sliced so its rows land through the scatter path. */
    static const trestle_op ops[] = {
        { .name = "layer00/w", .target_dtype = TRESTLE_DT_FLOAT },
        { .name = "layer01/w", .target_dtype = TRESTLE_DT_BFLOAT16 },
        { .name = "layer01/w", .target_dtype = TRESTLE_DT_HALF },
        { .name = "layer03/w", .target_dtype = TRESTLE_DT_FLOAT },
        { .name = "nd2", .shape_and_slices = "37 130 3,30:1,128",
          .target_dtype = TRESTLE_DT_BFLOAT16 },
    };
    size_t n = sizeof ops / sizeof *ops;
    ph = tu_plan(c, ops, n, NULL);
    pd = tu_plan(c, ops, n, NULL);
    gm_opts(&o, TRESTLE_READER_PREAD, -1);
    cr_assert_eq(tu_restore(ph, &o, NULL, &err), TRESTLE_OK, "%s", err.message);
    gm_opts(&o, TRESTLE_READER_PREAD, 0);
    cr_assert_eq(tu_restore(pd, &o, NULL, &err), TRESTLE_OK, "%s", err.message);
    gm_compare_plans(ph, pd);
    trestle_plan_free(pd);
    trestle_plan_free(ph);
    trestle_close(c);
    free(prefix);
    tu_rmtree(dir);
    free(dir);
}

#else /* !TRESTLE_HAVE_CUDA */

Test(gpu, needs_a_cuda_build)
{
    cr_skip_test("this build of trestle has no CUDA (configure with -DTRESTLE_CUDA=ON and nvcc)");
}

#endif
