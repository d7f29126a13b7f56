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
 * Without a usable GPU (no driver, no device: CI) every case skips with the
 * CUDA runtime's reason; in a build without CUDA, one case says so.
 */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <fnmatch.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "trestle.h"

#if TRESTLE_HAVE_CUDA

#include <cuda_runtime_api.h>
#include <time.h>

#include "testcuda.h"

static int gpu_count(void)
{
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess)
        cr_skip_test("no usable CUDA device: %s", cudaGetErrorString(e));
    if (n == 0)
        cr_skip_test("no CUDA device on this host");
    return n;
}


static const int readers[] = { TRESTLE_READER_IO_URING, TRESTLE_READER_PREAD };

static void opts(trestle_restore_options *o, int reader, int device)
{
    trestle_restore_options_init(o);
    o->reader = reader;
    o->device = device;
    o->chunk_bytes = 64 << 10; /* tensors span several chunks */
    o->staging_bytes = 1 << 20;
    o->threads = 3;
    o->queue_depth = 8;
}

/* A model: tensors of several dtypes and sizes (some over many chunks),
 * 1-D to 5-D ones to slice, a partitioned variable with odd partitions,
 * and a string tensor. Returns the prefix (malloc'd); *dir to remove. */
static char *write_model(int shards, char **dir)
{
    char *prefix;
    *dir = tu_mkdtemp();
    cr_assert(asprintf(&prefix, "%s/m", *dir) > 0);
    trestle_writer_options wo;
    trestle_writer_options_init(&wo);
    wo.num_shards = shards;
    trestle_writer *w;
    trestle_error err;
    cr_assert_eq(trestle_writer_create(prefix, &wo, &w, &err), TRESTLE_OK, "%s", err.message);
    static const int dtypes[] = { TRESTLE_DT_BFLOAT16, TRESTLE_DT_FLOAT, TRESTLE_DT_INT8,
                                  TRESTLE_DT_HALF, TRESTLE_DT_INT64 };
    for (int i = 0; i < 24; i++) {
        int dt = dtypes[i % 5];
        int64_t dims[2] = { 1 + (i * 37) % 257, 1 + (i * 53) % 700 };
        size_t size = (size_t)(dims[0] * dims[1]) * trestle_dtype_size(dt);
        void *data = malloc(size);
        tu_fill_random(data, size, 1000 + (uint64_t)i);
        char name[32];
        snprintf(name, sizeof name, "layer%02d/w", i);
        cr_assert_eq(trestle_writer_add(w, name, dt, 2, dims, data, size, i % shards, &err),
                     TRESTLE_OK, "%s", err.message);
        free(data);
    }
    static const int64_t shapes[5][5] = {
        { 1000 }, { 37, 130 }, { 9, 11, 70 }, { 5, 6, 7, 33 }, { 3, 4, 5, 6, 17 },
    };
    for (int r = 1; r <= 5; r++) {
        int64_t n = 1;
        for (int d = 0; d < r; d++)
            n *= shapes[r - 1][d];
        size_t size = (size_t)n * 4;
        void *data = malloc(size);
        tu_fill_random(data, size, 2000 + (uint64_t)r);
        char name[16];
        snprintf(name, sizeof name, "nd%d", r);
        cr_assert_eq(trestle_writer_add(w, name, TRESTLE_DT_FLOAT, r, shapes[r - 1], data, size,
                                        r % shards, &err), TRESTLE_OK, "%s", err.message);
        free(data);
    }
    /* Partitioned 100 x 30 float: rows 0-32, 33-70, 71-99. */
    float *pdata = malloc(100 * 30 * sizeof *pdata);
    tu_fill_random(pdata, 100 * 30 * sizeof *pdata, 3000);
    static const int64_t cuts[4] = { 0, 33, 71, 100 };
    for (int k = 0; k < 3; k++) {
        char spec[64];
        snprintf(spec, sizeof spec, "100 30 %lld,%lld:-", (long long)cuts[k],
                 (long long)(cuts[k + 1] - cuts[k]));
        cr_assert_eq(trestle_writer_add_slice(w, "part", TRESTLE_DT_FLOAT, spec,
                                              pdata + cuts[k] * 30,
                                              (size_t)(cuts[k + 1] - cuts[k]) * 30 * 4, k % shards,
                                              &err),
                     TRESTLE_OK, "%s", err.message);
    }
    free(pdata);
    static const char *strs[] = { "alpha", "", "a longer string value" };
    trestle_bytes elems[3];
    for (int i = 0; i < 3; i++)
        elems[i] = (trestle_bytes){ (const uint8_t *)strs[i], strlen(strs[i]) };
    int64_t sdims[1] = { 3 };
    cr_assert_eq(trestle_writer_add_strings(w, "vocab", 1, sdims, elems, 0, &err),
                 TRESTLE_OK, "%s", err.message);
    cr_assert_eq(trestle_writer_finish(w, &err), TRESTLE_OK, "%s", err.message);
    trestle_writer_free(w);
    return prefix;
}

/* The sliced ops every slice case uses. */
static const char *const slice_names[] = { "nd1", "nd2", "nd3", "nd4", "nd5", "part", "part" };
static const char *const slice_specs[] = {
    "1000 17,900",
    "37 130 3,30:1,128",
    "9 11 70 -:2,7:10,50",
    "5 6 7 33 1,3:-:2,4:5,20",
    "3 4 5 6 17 1,2:1,2:-:3,3:1,15",
    "100 30 20,70:-",          /* spans all three partitions */
    "100 30 5,90:4,21",        /* and not contiguous in any */
};
#define NSLICES (sizeof slice_specs / sizeof *slice_specs)

/* Device bytes equal host bytes, op by op (skipped ops aside). */
static void compare_plans(trestle_plan *host, trestle_plan *dev)
{
    size_t n = trestle_plan_op_count(host);
    cr_assert_eq(trestle_plan_op_count(dev), n);
    for (size_t i = 0; i < n; i++) {
        trestle_plan_op_info h, d;
        cr_assert_eq(trestle_plan_get_op(host, i, &h), TRESTLE_OK);
        cr_assert_eq(trestle_plan_get_op(dev, i, &d), TRESTLE_OK);
        if (h.skipped || h.bytes == 0)
            continue;
        cr_assert_eq(d.bytes, h.bytes, "%s", h.name);
        cr_assert_geq(d.device, 0, "op %zu (%s) says it is in host memory", i, h.name);
        uint8_t *back = malloc(d.bytes);
        CUDA_OK(cudaMemcpy(back, d.data, d.bytes, cudaMemcpyDeviceToHost));
        cr_assert_arr_eq(back, h.data, h.bytes, "op %zu (%s) differs on the device", i, h.name);
        /* And through the API, as a program without CUDA code reads it. */
        trestle_error err;
        memset(back, 0, d.bytes);
        cr_assert_eq(trestle_plan_read_op(dev, i, back, d.bytes, &err), TRESTLE_OK, "%s",
                     err.message);
        cr_assert_arr_eq(back, h.data, h.bytes, "op %zu (%s) read back", i, h.name);
        free(back);
    }
}

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
            cases[s * 2 + r] = (matrix_case){ shards[s], readers[r] };
    return cr_make_param_array(matrix_case, cases, 6);
}

ParameterizedTest(matrix_case *mc, gpu, restores_every_tensor_into_device_memory)
{
    gpu_count();
    char *dir, *prefix = write_model(mc->shards, &dir);
    trestle_checkpoint *c;
    trestle_plan *ph, *pd;
    trestle_error err;
    trestle_restore_options o;
    trestle_stats st;
    c = tu_open(prefix, NULL);
    ph = tu_plan(c, NULL, 0, NULL);
    pd = tu_plan(c, NULL, 0, NULL);
    opts(&o, mc->reader, -1);
    cr_assert_eq(tu_restore(ph, &o, NULL, &err), TRESTLE_OK, "%s", err.message);
    opts(&o, mc->reader, 0);
    cr_assert_eq(tu_restore(pd, &o, &st, &err), TRESTLE_OK, "%s", err.message);
    cr_assert_eq(st.tensors, trestle_plan_op_count(pd));
    cr_assert_eq(st.reader, mc->reader);
    compare_plans(ph, pd);

    /* The engine memory is one device allocation, adoptable. */
    trestle_arena *a;
    trestle_arena_info ai;
    cr_assert_eq(trestle_plan_adopt_arena(pd, &a), TRESTLE_OK);
    trestle_arena_get_info(a, &ai);
    cr_assert_eq(ai.device, 0);
    struct cudaPointerAttributes pa;
    CUDA_OK(cudaPointerGetAttributes(&pa, ai.base));
    cr_assert_eq(pa.type, cudaMemoryTypeDevice);
    compare_plans(ph, pd); /* the plan's pointers still name the adopted memory */
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
    return cr_make_param_array(int, (int *)readers, 2);
}

ParameterizedTest(int *reader, gpu, scatters_slices_into_caller_device_buffers)
{
    gpu_count();
    char *dir, *prefix = write_model(3, &dir);
    trestle_checkpoint *c;
    trestle_plan *ph, *pd;
    trestle_error err;
    trestle_restore_options o;
    c = tu_open(prefix, NULL);

    trestle_op hops[NSLICES], dops[NSLICES];
    for (size_t i = 0; i < NSLICES; i++)
        hops[i] = (trestle_op){ .name = slice_names[i], .shape_and_slices = slice_specs[i] };
    ph = tu_plan(c, hops, NSLICES, NULL);
    opts(&o, *reader, -1);
    cr_assert_eq(tu_restore(ph, &o, NULL, &err), TRESTLE_OK, "%s", err.message);

    /* The caller's stream first fills the buffers with a pattern; the
     * restore's copies must come after it. */
    cudaStream_t s;
    CUDA_OK(cudaStreamCreate(&s));
    void *bufs[NSLICES];
    for (size_t i = 0; i < NSLICES; i++) {
        trestle_plan_op_info h;
        cr_assert_eq(trestle_plan_get_op(ph, i, &h), TRESTLE_OK);
        CUDA_OK(cudaMalloc(&bufs[i], h.bytes));
        CUDA_OK(cudaMemsetAsync(bufs[i], 0xA5, h.bytes, s));
        dops[i] = hops[i];
        dops[i].dest_kind = TRESTLE_DEST_DEVICE;
        dops[i].ptr = bufs[i];
        dops[i].capacity = h.bytes;
    }
    pd = tu_plan(c, dops, NSLICES, NULL);
    opts(&o, *reader, -1); /* the device comes from the pointers */
    o.cuda_stream = s;
    cr_assert_eq(tu_restore(pd, &o, NULL, &err), TRESTLE_OK, "%s", err.message);
    compare_plans(ph, pd);
    for (size_t i = 0; i < NSLICES; i++)
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
    gpu_count();
    char *dir, *prefix = write_model(2, &dir);
    trestle_checkpoint *c;
    trestle_plan *ph, *pm;
    trestle_error err;
    trestle_restore_options o;
    c = tu_open(prefix, NULL);
    ph = tu_plan(c, NULL, 0, NULL);
    opts(&o, TRESTLE_READER_PREAD, -1);
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
    opts(&o, TRESTLE_READER_PREAD, -1);
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
    int count = gpu_count();
    char *dir, *prefix = write_model(2, &dir);
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
    opts(&o, TRESTLE_READER_PREAD, -1);
    cr_assert_eq(trestle_restore(p, &o, NULL, &err), TRESTLE_E_INVALID_ARG);
    char want[128];
    snprintf(want, sizeof want, "tensor nd1: destination %p is not CUDA device memory",
             (void *)host_buf);
    cr_assert_str_eq(err.message, want);
    cr_assert_str_eq(err.key, "nd1");
    trestle_plan_free(p);

    /* A device that does not exist. */
    p = tu_plan(c, NULL, 0, NULL);
    opts(&o, TRESTLE_READER_PREAD, count);
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
    opts(&o, TRESTLE_READER_PREAD, 0);
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
        opts(&o, TRESTLE_READER_AUTO, -1);
        j->rc = trestle_restore(ph, &o, NULL, &err);
        opts(&o, TRESTLE_READER_AUTO, j->device);
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
    if (gpu_count() < 2)
        cr_skip_test("needs two CUDA devices; this host has one");
    char *dir, *prefix = write_model(4, &dir);
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
    gpu_count();
    char *dir, *prefix = write_model(2, &dir);
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
    int count = gpu_count();
    char *dir, *prefix = write_model(2, &dir);
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
    gpu_count();
    char *dir, *prefix = write_model(2, &dir);
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
    opts(&o, TRESTLE_READER_PREAD, -1);
    cr_assert_eq(tu_restore(ph, &o, NULL, &err), TRESTLE_OK, "%s", err.message);
    opts(&o, TRESTLE_READER_PREAD, 0);
    cr_assert_eq(tu_restore(pd, &o, NULL, &err), TRESTLE_OK, "%s", err.message);
    compare_plans(ph, pd);
    trestle_plan_free(pd);
    trestle_plan_free(ph);
    trestle_close(c);
    free(prefix);
    tu_rmtree(dir);
    free(dir);
}

/* ---- what a real GPU can prove wrong (issue 23): plain CUDA ----
 *
 * Ports of mock-only cases (test_gpu_order, test_gpu_waits) to the CUDA
 * runtime alone, so that a GPU machine runs them as they are: on the mock
 * they run too (the cancellation case in its "late" mode, where work left
 * queued lands after whatever the caller waited for, as on a GPU). */

#if TRESTLE_CUDA_MOCK
#include "cudamock.h"
#define LEGACY_BUSY_BYTES ((size_t)8 << 20) /* the mock copies with memcpy: keep it small */
#else
#define LEGACY_BUSY_BYTES ((size_t)512 << 20) /* twice: about 1 GiB, a few ms on an H100 */
#endif

/* The fixture of the cases below: write_model(shards)'s tensors but the
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

/* The non-string tensors of c (strings have no device copy). */
static trestle_plan *plan_plain(trestle_checkpoint *c)
{
    size_t n = trestle_tensor_count(c), k = 0;
    trestle_op *ops = calloc(n, sizeof *ops);
    for (size_t i = 0; i < n; i++) {
        trestle_tensor_info t;
        cr_assert_eq(trestle_tensor_get_info(c, i, &t), TRESTLE_OK);
        if (t.dtype != TRESTLE_DT_STRING)
            ops[k++] = (trestle_op){ .name = t.name };
    }
    trestle_plan *p = tu_plan(c, ops, k, NULL);
    free(ops);
    return p;
}

static void dev_case_open(dev_case *k, int shards)
{
    trestle_error err;
    trestle_restore_options o;
    gpu_count();
    k->prefix = write_model(shards, &k->dir);
    k->c = tu_open(k->prefix, NULL);
    k->host = plan_plain(k->c);
    opts(&o, TRESTLE_READER_PREAD, -1);
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
    opts(&o, TRESTLE_READER_PREAD, -1); /* no stream: the legacy stream's work comes first */
    cr_assert_eq(tu_restore(pd, &o, NULL, &err), TRESTLE_OK, "%s", err.message);
    compare_plans(k.host, pd);
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
    trestle_plan *pd = tu_plan(t->k->c, t->k->dops, t->k->n, NULL), *pa = plan_plain(t->k->c);
    opts(&o, TRESTLE_READER_PREAD, 0);
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
    opts(&o, TRESTLE_READER_PREAD, 0);
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

#if TRESTLE_CUDA_MOCK

/* ---- what only the mock runtime can see (tests/cudamock) ----
 *
 * In a -DTRESTLE_CUDA_MOCK=ON build the copier runs on a CUDA runtime that
 * defers every queued copy until something waits for it and aborts when a
 * copy's pinned source changed before it ran, so the cases above already
 * prove the fencing; these check what a GPU would not report at all:
 * allocation counts, device-wide syncs, pageable copies, leaked streams,
 * the caller's current device, and every CUDA failure path. */

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
    char *dir, *prefix = write_model(3, &dir);
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
    opts(&o, TRESTLE_READER_IO_URING, 0);
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
    char *dir, *prefix = write_model(2, &dir);
    trestle_checkpoint *c;
    trestle_plan *ph, *pd;
    trestle_error err;
    trestle_restore_options o;
    c = tu_open(prefix, NULL);
    ph = tu_plan(c, NULL, 0, NULL);
    pd = tu_plan(c, NULL, 0, NULL);
    opts(&o, TRESTLE_READER_PREAD, -1);
    cr_assert_eq(tu_restore(ph, &o, NULL, &err), TRESTLE_OK, "%s", err.message);
    ready_check rc = { .host = ph };
    opts(&o, TRESTLE_READER_IO_URING, 0);
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
    char *dir, *prefix = write_model(1, &dir);
    trestle_checkpoint *c;
    trestle_plan *p;
    trestle_error err;
    trestle_restore_options o;
    c = tu_open(prefix, NULL);
    trestle_op op = { .name = "nd2" };
    p = tu_plan(c, &op, 1, NULL);
    opts(&o, TRESTLE_READER_PREAD, 1);
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
    char *dir, *prefix = write_model(2, &dir);
    trestle_checkpoint *c;
    trestle_plan *ph, *pd;
    trestle_error err;
    trestle_restore_options o;
    c = tu_open(prefix, NULL);
    trestle_op ops[NSLICES];
    for (size_t i = 0; i < NSLICES; i++)
        ops[i] = (trestle_op){ .name = slice_names[i], .shape_and_slices = slice_specs[i] };
    size_t nops = f->sliced ? NSLICES : 0;
    ph = tu_plan(c, f->sliced ? ops : NULL, nops, NULL);
    pd = tu_plan(c, f->sliced ? ops : NULL, nops, NULL);
    opts(&o, TRESTLE_READER_PREAD, -1);
    cr_assert_eq(tu_restore(ph, &o, NULL, &err), TRESTLE_OK, "%s", err.message);

    cudaStream_t s = NULL;
    if (f->stream)
        CUDA_OK(cudaStreamCreate(&s));
    opts(&o, TRESTLE_READER_PREAD, 0);
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
    compare_plans(ph, pd);
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

#endif /* TRESTLE_CUDA_MOCK */

#else /* !TRESTLE_HAVE_CUDA */

Test(gpu, needs_a_cuda_build)
{
    cr_skip_test("this build of trestle has no CUDA (configure with -DTRESTLE_CUDA=ON and nvcc)");
}

#endif
