/*
 * gpumodel.c - the model and the checks that the device restore suites
 * share (test_gpu_restore, test_gpu_caller, test_gpu_mock); see gpumodel.h.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpumodel.h"
#include "testutil.h"

#if TRESTLE_HAVE_CUDA

#include <cuda_runtime_api.h>

#include "testcuda.h"

int gm_gpu_count(void)
{
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess)
        cr_skip_test("no usable CUDA device: %s", cudaGetErrorString(e));
    if (n == 0)
        cr_skip_test("no CUDA device on this host");
    return n;
}


const int gm_readers[2] = { TRESTLE_READER_IO_URING, TRESTLE_READER_PREAD };

void gm_opts(trestle_restore_options *o, int reader, int device)
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
char *gm_write_model(int shards, char **dir)
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
const char *const gm_slice_names[GM_NSLICES] = { "nd1", "nd2", "nd3", "nd4", "nd5", "part", "part" };
const char *const gm_slice_specs[GM_NSLICES] = {
    "1000 17,900",
    "37 130 3,30:1,128",
    "9 11 70 -:2,7:10,50",
    "5 6 7 33 1,3:-:2,4:5,20",
    "3 4 5 6 17 1,2:1,2:-:3,3:1,15",
    "100 30 20,70:-",          /* spans all three partitions */
    "100 30 5,90:4,21",        /* and not contiguous in any */
};

/* Device bytes equal host bytes, op by op (skipped ops aside). */
void gm_compare_plans(trestle_plan *host, trestle_plan *dev)
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

/* The non-string tensors of c (strings have no device copy). */
trestle_plan *gm_plan_plain(trestle_checkpoint *c)
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

#endif /* TRESTLE_HAVE_CUDA */
