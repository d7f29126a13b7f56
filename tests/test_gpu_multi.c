/*
 * test_gpu_multi.c - one process, several GPUs (issue 14 item 3):
 * trestle_restore_options.devices replicates every engine-allocated tensor
 * onto each listed device, reading and checking each byte once, and
 * trestle_plan_place_op() splits tensors into one part per device in one
 * plan. Runs on tests/cudamock (two devices by default, three where a
 * test sets TRESTLE_CUDAMOCK_DEVICES before the mock starts); elsewhere
 * every test skips.
 *
 * The mock defers queued copies until something waits for them and
 * aborts when a pinned source changed between enqueue and run, so a
 * staging buffer handed back before the copies to every device were
 * complete fails these tests rather than passing by luck.
 */
#include <criterion/criterion.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "trestle.h"

#if TRESTLE_CUDA_MOCK

#include <cuda_runtime_api.h>

#include "cudamock.h"
#include "testcuda.h"


#define NTINY 600 /* 16-byte tensors: many copies per staging buffer */

typedef struct model {
    char *dir, *prefix;
    trestle_checkpoint *ckpt;
} model;

/* tu_write_gpu_model's checkpoint: "w" splits evenly by 2 on dim 0, "cube"
 * unevenly on dims 1 and 2, "bf" widens, NTINY tiny tensors. */
static void model_open(model *m)
{
    m->dir = tu_mkdtemp();
    m->prefix = tu_write_gpu_model(m->dir, NTINY, 1414);
    m->ckpt = tu_open(m->prefix, NULL);
}

static void model_close(model *m)
{
    trestle_close(m->ckpt);
    tu_rmtree(m->dir);
    free(m->dir);
    free(m->prefix);
}

/* Small chunks and staging: many staging buffers go round the ring. */
static void opts(trestle_restore_options *o, const int *devices, size_t n)
{
    trestle_restore_options_init(o);
    o->reader = TRESTLE_READER_PREAD;
    o->chunk_bytes = 16 << 10;
    o->staging_bytes = 64 << 10;
    o->threads = 2;
    o->devices = devices;
    o->num_devices = n;
}

/* The same ops restored to host memory: the reference, and its stats. */
static trestle_plan *host_restore(model *m, const trestle_op *ops, size_t n, trestle_stats *st)
{
    trestle_plan *h = tu_plan(m->ckpt, ops, n, NULL);
    trestle_restore_options o;
    trestle_error err;
    opts(&o, NULL, 0);
    cr_assert_eq(trestle_restore(h, &o, st, &err), TRESTLE_OK, "%s", err.message);
    return h;
}

/* Op i's bytes at device address d (n bytes) equal `want`. */
static void device_equals(const void *d, const void *want, uint64_t n, const char *what)
{
    uint8_t *back = malloc(n ? n : 1);
    CUDA_OK(cudaMemcpy(back, d, n, cudaMemcpyDeviceToHost));
    cr_assert_eq(memcmp(back, want, n), 0, "%s differs", what);
    free(back);
}

/* Every op of d has a copy on each of its ndev devices, equal to h's. */
static void every_device_same(trestle_plan *h, trestle_plan *d, size_t ndev)
{
    cr_assert_eq(trestle_plan_op_count(h), trestle_plan_op_count(d));
    for (size_t i = 0; i < trestle_plan_op_count(d); i++) {
        trestle_plan_op_info hi, di;
        cr_assert_eq(trestle_plan_get_op(h, i, &hi), TRESTLE_OK);
        cr_assert_eq(trestle_plan_get_op(d, i, &di), TRESTLE_OK);
        for (size_t k = 0; k < ndev; k++) {
            void *at = NULL;
            char what[96];
            cr_assert_eq(trestle_plan_op_replica(d, i, k, &at), TRESTLE_OK);
            cr_assert_not_null(at, "op %zu (%s) has no copy on device index %zu", i, di.name, k);
            if (k == 0)
                cr_assert_eq(at, di.data, "get_op's data is the copy on devices[0]");
            struct cudaPointerAttributes pa;
            CUDA_OK(cudaPointerGetAttributes(&pa, at));
            cr_assert_eq(pa.device, (int)k, "op %zu's copy %zu is on device %d", i, k, pa.device);
            snprintf(what, sizeof what, "op %zu (%s) on device %zu", i, di.name, k);
            device_equals(at, hi.data, di.bytes, what);
        }
    }
}

static void three_devices(void)
{
    setenv("TRESTLE_CUDAMOCK_DEVICES", "3", 1);
}

/* ---- replicated ---- */

Test(gpu_multi, replicates_every_tensor_onto_two_devices_reading_each_byte_once)
{
    model m;
    model_open(&m);
    trestle_stats hs, st;
    trestle_plan *h = host_restore(&m, NULL, 0, &hs);
    trestle_plan *d = tu_plan(m.ckpt, NULL, 0, NULL);
    trestle_restore_options o;
    trestle_error err;
    static const int devs[2] = { 0, 1 };
    opts(&o, devs, 2);
    cr_assert_eq(trestle_restore(d, &o, &st, &err), TRESTLE_OK, "%s", err.message);
    every_device_same(h, d, 2);

    trestle_plan_stats ps;
    trestle_plan_get_stats(d, &ps);
    cr_assert_eq(st.bytes_read, hs.bytes_read, "storage read once: %" PRIu64 " vs %" PRIu64,
                 st.bytes_read, hs.bytes_read);
    cr_assert_eq(st.bytes_verified, hs.bytes_verified, "each byte checked once");
    cr_assert_eq(st.bytes_copied, 2 * ps.output_bytes, "bytes_copied counts both devices");
    cr_assert_eq(st.tensors, trestle_plan_op_count(d));
    cudamock_stats cs;
    cudamock_get_stats(&cs);
    cr_assert_gt(cs.ops_run[0], 0);
    cr_assert_gt(cs.ops_run[1], 0);
    cr_assert_eq(cs.h2d_pageable_copies, 0, "every copy reads pinned staging");
    trestle_plan_free(d);
    trestle_plan_free(h);
    model_close(&m);
}

Test(gpu_multi, replicates_onto_three_devices, .init = three_devices)
{
    model m;
    model_open(&m);
    trestle_stats hs, st;
    trestle_plan *h = host_restore(&m, NULL, 0, &hs);
    trestle_plan *d = tu_plan(m.ckpt, NULL, 0, NULL);
    trestle_restore_options o;
    trestle_error err;
    static const int devs[3] = { 2, 0, 1 }; /* any order: index k is devices[k] */
    opts(&o, devs, 3);
    cr_assert_eq(trestle_restore(d, &o, &st, &err), TRESTLE_OK, "%s", err.message);
    cr_assert_eq(st.bytes_read, hs.bytes_read);
    for (size_t i = 0; i < trestle_plan_op_count(d); i++) {
        trestle_plan_op_info hi, di;
        cr_assert_eq(trestle_plan_get_op(h, i, &hi), TRESTLE_OK);
        cr_assert_eq(trestle_plan_get_op(d, i, &di), TRESTLE_OK);
        cr_assert_eq(di.device, 2, "get_op describes the copy on devices[0]");
        for (size_t k = 0; k < 3; k++) {
            void *at;
            struct cudaPointerAttributes pa;
            cr_assert_eq(trestle_plan_op_replica(d, i, k, &at), TRESTLE_OK);
            CUDA_OK(cudaPointerGetAttributes(&pa, at));
            cr_assert_eq(pa.device, devs[k]);
            device_equals(at, hi.data, di.bytes, di.name);
        }
    }
    trestle_plan_free(d);
    trestle_plan_free(h);
    model_close(&m);
}

/* Slices (scatter kernels on each device's stream, which need their own
 * device current in the worker's thread) and conversions (on the CPU when
 * replicated, on the device for one) alongside. */
Test(gpu_multi, replicates_slices_and_conversions)
{
    model m;
    model_open(&m);
    const trestle_op ops[] = {
        { .name = "cube", .shape_and_slices = "6 40 33 1,4:5,30:2,20" },
        { .name = "w", .shape_and_slices = "300 50 10,200:-" },
        { .name = "bf", .target_dtype = TRESTLE_DT_FLOAT },
        { .name = "w", .target_dtype = TRESTLE_DT_BFLOAT16 },
        { .name = "tiny/00007" },
    };
    size_t n = sizeof ops / sizeof ops[0];
    trestle_stats hs, st;
    trestle_plan *h = host_restore(&m, ops, n, &hs);
    trestle_plan *d = tu_plan(m.ckpt, ops, n, NULL);
    trestle_restore_options o;
    trestle_error err;
    static const int devs[2] = { 1, 0 };
    opts(&o, devs, 2);
    cr_assert_eq(trestle_restore(d, &o, &st, &err), TRESTLE_OK, "%s", err.message);
    for (size_t i = 0; i < n; i++) {
        trestle_plan_op_info hi, di;
        cr_assert_eq(trestle_plan_get_op(h, i, &hi), TRESTLE_OK);
        cr_assert_eq(trestle_plan_get_op(d, i, &di), TRESTLE_OK);
        for (size_t k = 0; k < 2; k++) {
            void *at;
            cr_assert_eq(trestle_plan_op_replica(d, i, k, &at), TRESTLE_OK);
            device_equals(at, hi.data, di.bytes, di.name);
        }
    }
    cr_assert_eq(st.bytes_read, hs.bytes_read);
    trestle_plan_free(d);
    trestle_plan_free(h);
    model_close(&m);
}

/* A staging buffer goes back to the pool only when both devices' copies
 * out of it are complete: two staging buffers, hundreds of tiny tensors,
 * and a mock that runs device 1's copies only when waited for. A retire
 * that looked at device 0 alone would let the reader overwrite the
 * buffer under device 1's queued copies, which the mock aborts on. */
Test(gpu_multi, staging_is_not_reused_before_every_devices_copies_complete)
{
    model m;
    model_open(&m);
    trestle_stats hs;
    trestle_plan *h = host_restore(&m, NULL, 0, &hs);
    trestle_plan *d = tu_plan(m.ckpt, NULL, 0, NULL);
    trestle_restore_options o;
    trestle_error err;
    static const int devs[2] = { 0, 1 };
    opts(&o, devs, 2);
    o.chunk_bytes = 4096;
    o.staging_bytes = 2 * 8192; /* two buffers */
    o.threads = 1;
    cr_assert_eq(trestle_restore(d, &o, NULL, &err), TRESTLE_OK, "%s", err.message);
    every_device_same(h, d, 2);
    /* And again: the layout is reused, no new device memory. */
    cudamock_stats before, after;
    cudamock_get_stats(&before);
    cr_assert_eq(trestle_restore(d, &o, NULL, &err), TRESTLE_OK, "%s", err.message);
    cudamock_get_stats(&after);
    cr_assert_eq(after.device_bytes_live, before.device_bytes_live);
    every_device_same(h, d, 2);
    trestle_plan_free(d);
    trestle_plan_free(h);
    model_close(&m);
}

/* ---- split by parts, one plan ---- */

/* Part `r` of `w` of a dim of n, as TensorFlow's partitioner gives it. */
static void part(int64_t n, int r, int w, int64_t *start, int64_t *len)
{
    int64_t base = n / w, extra = n % w;
    *start = r * base + (r < extra ? r : extra);
    *len = base + (r < extra ? 1 : 0);
}

/* The shape_and_slices of part r of w of `dim` of a tensor of shape dims. */
static char *part_spec(int rank, const int64_t *dims, int dim, int r, int w)
{
    char buf[256];
    size_t at = 0;
    for (int i = 0; i < rank; i++)
        at += (size_t)snprintf(buf + at, sizeof buf - at, "%" PRId64 " ", dims[i]);
    for (int i = 0; i < rank; i++) {
        int64_t s, l;
        part(dims[i], r, w, &s, &l);
        if (i == dim)
            at += (size_t)snprintf(buf + at, sizeof buf - at, "%" PRId64 ",%" PRId64, s, l);
        else
            at += (size_t)snprintf(buf + at, sizeof buf - at, "-");
        if (i + 1 < rank)
            at += (size_t)snprintf(buf + at, sizeof buf - at, ":");
    }
    return strdup(buf);
}

/* Split "w" on dim 0 (even with 2) and "cube" on dim 2 (33: uneven) over
 * `w` devices, "bf" replicated; each part on its device equals the
 * reference slice, and storage is read once. */
static void split_over(int w)
{
    model m;
    model_open(&m);
    static const int64_t wd[2] = { 300, 50 }, cd[3] = { 6, 40, 33 };
    trestle_op ops[2 * 8 + 1];
    char *specs[2 * 8];
    size_t n = 0;
    for (int r = 0; r < w; r++) {
        specs[2 * r] = part_spec(2, wd, 0, r, w);
        specs[2 * r + 1] = part_spec(3, cd, 2, r, w);
        ops[n++] = (trestle_op){ .name = "w", .shape_and_slices = specs[2 * r] };
        ops[n++] = (trestle_op){ .name = "cube", .shape_and_slices = specs[2 * r + 1] };
    }
    ops[n++] = (trestle_op){ .name = "bf" };
    trestle_stats hs, st, whole;
    trestle_plan *h = host_restore(&m, ops, n, &hs);
    const trestle_op all[] = { { .name = "w" }, { .name = "cube" }, { .name = "bf" } };
    trestle_plan_free(host_restore(&m, all, 3, &whole));
    trestle_plan *d = tu_plan(m.ckpt, ops, n, NULL);
    trestle_error err;
    for (size_t i = 0; i + 1 < n; i++)
        cr_assert_eq(trestle_plan_place_op(d, i, (int)(i / 2), &err), TRESTLE_OK, "%s",
                     err.message);
    trestle_restore_options o;
    static const int devs[3] = { 0, 1, 2 };
    opts(&o, devs, (size_t)w);
    cr_assert_eq(trestle_restore(d, &o, &st, &err), TRESTLE_OK, "%s", err.message);
    cr_assert_eq(st.bytes_read, whole.bytes_read, "each stored tensor read once: %" PRIu64
                 " vs %" PRIu64, st.bytes_read, whole.bytes_read);
    cr_assert_eq(st.bytes_verified, whole.bytes_verified, "and checked once");
    for (size_t i = 0; i < n; i++) {
        trestle_plan_op_info hi, di;
        cr_assert_eq(trestle_plan_get_op(h, i, &hi), TRESTLE_OK);
        cr_assert_eq(trestle_plan_get_op(d, i, &di), TRESTLE_OK);
        for (int k = 0; k < w; k++) {
            void *at;
            cr_assert_eq(trestle_plan_op_replica(d, i, (size_t)k, &at), TRESTLE_OK);
            bool here = i + 1 == n || (int)(i / 2) == k;
            cr_assert_eq(at != NULL, here, "op %zu (%s %s) on device %d", i, di.name,
                         ops[i].shape_and_slices ? ops[i].shape_and_slices : "", k);
            if (!here)
                continue;
            if (i + 1 < n) {
                cr_assert_eq(at, di.data, "a placed op's data is its one copy");
                cr_assert_eq(di.device, k);
            }
            device_equals(at, hi.data, di.bytes, di.name);
        }
    }
    for (int i = 0; i < 2 * w; i++)
        free(specs[i]);
    trestle_plan_free(d);
    trestle_plan_free(h);
    model_close(&m);
}

Test(gpu_multi, splits_parts_over_two_devices) { split_over(2); }

Test(gpu_multi, splits_uneven_parts_over_three_devices, .init = three_devices) { split_over(3); }

/* ---- failures ---- */

Test(gpu_multi, an_allocation_failure_on_device_1_names_it_and_frees_device_0)
{
    model m;
    model_open(&m);
    trestle_plan *d = tu_plan(m.ckpt, NULL, 0, NULL);
    trestle_restore_options o;
    trestle_error err;
    static const int devs[2] = { 0, 1 };
    opts(&o, devs, 2);
    /* Device 0's arena is the first cudaMalloc, device 1's the second. */
    cudamock_fail("cudaMalloc", 2, cudaErrorMemoryAllocation, 0);
    cr_assert_eq(trestle_restore(d, &o, NULL, &err), TRESTLE_E_NOMEM, "%s", err.message);
    cr_assert(strstr(err.message, "on CUDA device 1"), "%s", err.message);
    cr_assert(strstr(err.message, "cannot allocate "), "%s", err.message);
    cr_assert_eq(err.length > 0, true, "the bytes are in the error");
    cudamock_stats cs;
    cudamock_get_stats(&cs);
    cr_assert_eq(cs.device_bytes_live, 0, "device 0's arena was freed");
    trestle_plan_op_info info;
    cr_assert_eq(trestle_plan_get_op(d, 0, &info), TRESTLE_OK);
    cr_assert_null(info.data);
    /* The plan is still good: a restore without the failure works. */
    cr_assert_eq(trestle_restore(d, &o, NULL, &err), TRESTLE_OK, "%s", err.message);
    trestle_plan_free(d);
    model_close(&m);
}

Test(gpu_multi, refuses_bad_device_lists)
{
    model m;
    model_open(&m);
    trestle_plan *d = tu_plan(m.ckpt, NULL, 0, NULL);
    trestle_restore_options o;
    trestle_error err;
    static const int twice[2] = { 1, 1 }, devs[2] = { 0, 1 }, missing[2] = { 0, 5 };
    opts(&o, twice, 2);
    cr_assert_eq(trestle_restore(d, &o, NULL, &err), TRESTLE_E_INVALID_ARG);
    cr_assert_str_eq(err.message, "restore options: CUDA device 1 is listed twice (devices[0] "
                                  "and devices[1])");
    opts(&o, devs, 2);
    o.device = 1;
    cr_assert_eq(trestle_restore(d, &o, NULL, &err), TRESTLE_E_INVALID_ARG);
    cr_assert_str_eq(err.message, "restore options: device is 1 but devices[0] is 0; with a "
                                  "device list, leave device at -1");
    opts(&o, missing, 2);
    cr_assert_eq(trestle_restore(d, &o, NULL, &err), TRESTLE_E_NO_DEVICE);
    cr_assert_str_eq(err.message, "CUDA device 5 does not exist (this host has 2)");
    cr_assert_eq(trestle_plan_place_op(d, 0, 7, &err), TRESTLE_OK);
    opts(&o, devs, 2);
    cr_assert_eq(trestle_restore(d, &o, NULL, &err), TRESTLE_E_INVALID_ARG);
    cr_assert(strstr(err.message, "is placed on device index 7, but the restore has 2 devices"),
              "%s", err.message);
    trestle_plan_free(d);
    model_close(&m);
}

/* Caller device pointers go to their own device, once; one on a device
 * that is not listed is refused, naming it. */
Test(gpu_multi, device_pointers_are_copied_once_to_their_own_device, .init = three_devices)
{
    model m;
    model_open(&m);
    trestle_stats hs;
    const trestle_op ref[] = { { .name = "w" }, { .name = "bf" } };
    trestle_plan *h = host_restore(&m, ref, 2, &hs);
    trestle_plan_op_info wi;
    cr_assert_eq(trestle_plan_get_op(h, 0, &wi), TRESTLE_OK);
    void *on1, *on2;
    CUDA_OK(cudaSetDevice(1));
    CUDA_OK(cudaMalloc(&on1, wi.bytes));
    CUDA_OK(cudaSetDevice(2));
    CUDA_OK(cudaMalloc(&on2, wi.bytes));
    CUDA_OK(cudaSetDevice(0));
    trestle_op ops[] = {
        { .name = "w", .dest_kind = TRESTLE_DEST_DEVICE, .ptr = on1, .capacity = wi.bytes },
        { .name = "bf" },
    };
    trestle_plan *d = tu_plan(m.ckpt, ops, 2, NULL);
    trestle_restore_options o;
    trestle_error err;
    trestle_stats st;
    static const int devs[2] = { 0, 1 };
    opts(&o, devs, 2);
    cr_assert_eq(trestle_restore(d, &o, &st, &err), TRESTLE_OK, "%s", err.message);
    device_equals(on1, wi.data, wi.bytes, "w");
    void *at;
    cr_assert_eq(trestle_plan_op_replica(d, 0, 0, &at), TRESTLE_OK);
    cr_assert_null(at);
    cr_assert_eq(trestle_plan_op_replica(d, 0, 1, &at), TRESTLE_OK);
    cr_assert_eq(at, on1);
    trestle_plan_op_info di;
    cr_assert_eq(trestle_plan_get_op(d, 0, &di), TRESTLE_OK);
    cr_assert_eq(di.device, 1);
    trestle_plan_op_info bi, hb;
    cr_assert_eq(trestle_plan_get_op(d, 1, &bi), TRESTLE_OK);
    cr_assert_eq(trestle_plan_get_op(h, 1, &hb), TRESTLE_OK);
    cr_assert_eq(st.bytes_copied, wi.bytes + 2 * bi.bytes);
    trestle_plan_free(d);

    ops[0].ptr = on2;
    d = tu_plan(m.ckpt, ops, 2, NULL);
    cr_assert_eq(trestle_restore(d, &o, NULL, &err), TRESTLE_E_INVALID_ARG);
    cr_assert_str_eq(err.message, "tensor w: destination is on CUDA device 2, which is not in "
                                  "the restore's device list");
    trestle_plan_free(d);
    CUDA_OK(cudaFree(on1));
    CUDA_OK(cudaFree(on2));
    trestle_plan_free(h);
    model_close(&m);
}

/* Each device's arena can be kept past the plan. */
Test(gpu_multi, each_devices_arena_is_adopted)
{
    model m;
    model_open(&m);
    trestle_stats hs;
    const trestle_op ops[] = { { .name = "w" }, { .name = "cube" } };
    trestle_plan *h = host_restore(&m, ops, 2, &hs);
    trestle_plan *d = tu_plan(m.ckpt, ops, 2, NULL);
    trestle_restore_options o;
    trestle_error err;
    static const int devs[2] = { 0, 1 };
    opts(&o, devs, 2);
    cr_assert_eq(trestle_restore(d, &o, NULL, &err), TRESTLE_OK, "%s", err.message);
    void *at[2][2];
    for (size_t i = 0; i < 2; i++)
        for (size_t k = 0; k < 2; k++)
            cr_assert_eq(trestle_plan_op_replica(d, i, k, &at[i][k]), TRESTLE_OK);
    trestle_arena *a0, *a1, *none;
    cr_assert_eq(trestle_plan_adopt_arena_of(d, 0, &a0), TRESTLE_OK);
    cr_assert_eq(trestle_plan_adopt_arena_of(d, 1, &a1), TRESTLE_OK);
    cr_assert_eq(trestle_plan_adopt_arena_of(d, 2, &none), TRESTLE_E_INVALID_ARG);
    trestle_arena_info i0, i1;
    trestle_arena_get_info(a0, &i0);
    trestle_arena_get_info(a1, &i1);
    cr_assert_eq(i0.device, 0);
    cr_assert_eq(i1.device, 1);
    trestle_plan_free(d);
    for (size_t i = 0; i < 2; i++) {
        trestle_plan_op_info hi;
        cr_assert_eq(trestle_plan_get_op(h, i, &hi), TRESTLE_OK);
        for (size_t k = 0; k < 2; k++)
            device_equals(at[i][k], hi.data, hi.bytes, hi.name);
    }
    trestle_arena_free(a0);
    trestle_arena_free(a1);
    cudamock_stats cs;
    cudamock_get_stats(&cs);
    cr_assert_eq(cs.device_bytes_live, 0);
    trestle_plan_free(h);
    model_close(&m);
}

/* ---- the CLI ---- */

/* `trestle restore --device 0,1`: a line per device and the aggregate,
 * which reads the checkpoint once and copies it twice. */
Test(gpu_multi, cli_restores_onto_a_device_list)
{
    model m;
    model_open(&m);
    tu_cli_result r = tu_cli("restore '%s' --device 0,1 --reader pread", m.prefix);
    cr_assert_eq(r.rc, 0, "%s", r.err);
    char *l2 = strchr(r.out, '\n'), *l3 = l2 ? strchr(l2 + 1, '\n') : NULL;
    cr_assert(l3, "%s", r.out);
    cr_assert(tu_starts_with(r.out, "device 0: 603 tensors, "), "%s", r.out);
    cr_assert(tu_starts_with(l2 + 1, "device 1: 603 tensors, "), "%s", r.out);
    cr_assert(tu_starts_with(l3 + 1, "restored onto 2 devices: read "), "%s", r.out);
    cr_assert(strstr(l3 + 1, " once ("), "%s", r.out);
    cr_assert(strstr(l3 + 1, " aggregate\n"), "%s", r.out);
    tu_cli_free(&r);
    model_close(&m);
}

/* --device all --shard: parts per device; each device holds half of w. */
Test(gpu_multi, cli_splits_by_shard_rules_over_every_device)
{
    model m;
    model_open(&m);
    tu_cli_result r = tu_cli("restore '%s' --device all --shard 'w:0' --shard 'c*:2' "
                             "--exclude 'tiny/*' --list", m.prefix);
    cr_assert_eq(r.rc, 0, "%s", r.err);
    const char *w0 = strstr(r.out, "[150,50]   29.30 KiB\n");
    cr_assert(w0 && strstr(w0 + 1, "[150,50]   29.30 KiB\n"), "two halves of w: %s", r.out);
    cr_assert(strstr(r.out, "[6,40,17]  15.94 KiB\n"), "%s", r.out);
    cr_assert(strstr(r.out, "[6,40,16]  15.00 KiB\n"), "%s", r.out);
    /* w's half, cube's part and bf whole (11.72 KiB) on each. */
    cr_assert(strstr(r.out, "device 0: 3 tensors, 56.95 KiB in "), "%s", r.out);
    cr_assert(strstr(r.out, "device 1: 3 tensors, 56.02 KiB in "), "%s", r.out);
    cr_assert(strstr(r.out, "restored onto 2 devices: read 101.25 KiB once ("), "read once: %s",
              r.out);
    tu_cli_free(&r);

    r = tu_cli("restore '%s' --device 0 --shard 'w:0'", m.prefix);
    cr_assert_eq(r.rc, 2);
    cr_assert(strstr(r.err, "--shard splits every tensor over a device list"), "%s", r.err);
    tu_cli_free(&r);
    r = tu_cli("restore '%s' --device 0,1 --shard 'w:2'", m.prefix);
    cr_assert_eq(r.rc, 1);
    cr_assert_str_eq(r.err, "trestle: tensor 'w' has rank 2: --shard 'w:2' names dimension 2, "
                            "which it lacks\n");
    tu_cli_free(&r);
    r = tu_cli("restore '%s' --device 1,1", m.prefix);
    cr_assert_eq(r.rc, 2);
    cr_assert(tu_starts_with(r.err, "trestle: restore: --device lists device 1 twice in '1,1'\n"),
              "%s", r.err);
    tu_cli_free(&r);
    model_close(&m);
}

/* trestle bench --device 0,1: every tensor on both, read once, and the
 * copy stage held against both devices' links. */
Test(gpu_multi, bench_restores_onto_a_device_list)
{
    tu_cli_result r = tu_cli("bench --synthetic 8M,2 --device 0,1 --repeat 1 --json");
    cr_assert_eq(r.rc, 0, "%s", r.err);
    cr_assert(strstr(r.out, "\"devices\": [0, 1],"), "%s", r.out);
    cr_assert(strstr(r.out, "\"copy\": {\"yardstick\": \"h2d_pinned_all_devices\""), "%s",
              r.out);
    cr_assert(strstr(r.out, "\"h2d_pinned_all_devices\": {"), "%s", r.out);
    uint64_t bytes = 0, read = 0, copied = 0;
    const char *b = strstr(r.out, "\n    \"bytes\": ");
    const char *rd = strstr(r.out, "\"read\": {\"ran\": ");
    const char *cp = strstr(r.out, "\"copy\": {\"ran\": ");
    cr_assert(b && rd && cp, "%s", r.out);
    sscanf(b, "\n    \"bytes\": %" SCNu64, &bytes);
    sscanf(strstr(rd, "\"bytes\": "), "\"bytes\": %" SCNu64, &read);
    sscanf(strstr(cp, "\"bytes\": "), "\"bytes\": %" SCNu64, &copied);
    cr_assert_gt(bytes, 0);
    cr_assert_eq(copied, 2 * bytes, "each device's copy counts: %" PRIu64, copied);
    cr_assert_leq(read, bytes + bytes / 8, "read once, not twice: %" PRIu64, read);
    tu_cli_free(&r);
    r = tu_cli("bench --synthetic 8M,2 --device 0,1 --repeat 1");
    cr_assert_eq(r.rc, 0, "%s", r.err);
    cr_assert(strstr(r.out, "destination: CUDA devices 0,1 (every tensor on each, read and "
                            "checked once)\n"), "%s", r.out);
    cr_assert(strstr(r.out, "host-to-device, all GPUs"), "%s", r.out);
    tu_cli_free(&r);
    r = tu_cli("bench --synthetic 8M,2 --device 0,0");
    cr_assert_eq(r.rc, 2, "%s", r.err);
    cr_assert(strstr(r.err, "bench: --device lists device 0 twice in '0,0'"), "%s", r.err);
    tu_cli_free(&r);
}

#else /* !TRESTLE_CUDA_MOCK */

Test(gpu_multi, needs_the_cuda_mock)
{
    cr_skip_test("several-GPU tests run on tests/cudamock (-DTRESTLE_CUDA_MOCK=ON)");
}

#endif
