/*
 * test_gpu_many.c - a model of 100,001 small tensors (as many as
 * `trestle synth --layers 11111` makes) restored onto a GPU, on the CUDA
 * mock (issue 24): the copies of a staging buffer's many tensors go out in
 * batches, so the copy calls number about the staging buffers, never the
 * tensors; no pageable copy, no spinning wait, and every tensor reads back
 * equal to a host restore of the same plan.
 */
#include <criterion/criterion.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "trestle.h"

#if TRESTLE_CUDA_MOCK

#include "cudamock.h"

#define NTENSORS 100001
#define BATCH 1024 /* copies one cudaMemcpyBatchAsync takes (engine/restore/copy_cuda.c) */

/* 64 B to 4 KiB each, spread over two shards, like a many-layer model. */
static size_t bytes_of(size_t i)
{
    return 64 * (1 + (i * 13) % 64);
}

static char *write_model(const char *dir)
{
    char *prefix;
    trestle_error err;
    trestle_writer_options wo;
    trestle_writer *w;
    cr_assert(asprintf(&prefix, "%s/many", dir) > 0);
    trestle_writer_options_init(&wo);
    wo.num_shards = 2;
    cr_assert_eq(trestle_writer_create(prefix, &wo, &w, &err), TRESTLE_OK, "%s", err.message);
    uint8_t *data = malloc(4096);
    for (size_t i = 0; i < NTENSORS; i++) {
        char name[48];
        int64_t dims[1] = { (int64_t)bytes_of(i) / 2 };
        snprintf(name, sizeof name, "model/layers.%zu/w%zu", i / 9, i % 9);
        tu_fill_random(data, bytes_of(i), i);
        cr_assert_eq(trestle_writer_add(w, name, TRESTLE_DT_BFLOAT16, 1, dims, data, bytes_of(i),
                                        (int)(i % 2), &err),
                     TRESTLE_OK, "%s", err.message);
    }
    free(data);
    cr_assert_eq(trestle_writer_finish(w, &err), TRESTLE_OK, "%s", err.message);
    trestle_writer_free(w);
    return prefix;
}

Test(gpu_many, a_hundred_thousand_tensors_are_copied_in_batches_not_one_call_each,
     .timeout = 600)
{
    char *dir = tu_mkdtemp();
    char *prefix = write_model(dir);
    trestle_checkpoint *c = tu_open(prefix, NULL);
    trestle_plan *host = tu_plan(c, NULL, 0, NULL), *dev = tu_plan(c, NULL, 0, NULL);
    trestle_restore_options o;
    trestle_stats st;
    trestle_error err;
    trestle_plan_stats ps;
    cr_assert_eq(trestle_plan_op_count(dev), NTENSORS);

    trestle_restore_options_init(&o);
    cr_assert_eq(trestle_restore(host, &o, NULL, &err), TRESTLE_OK, "%s", err.message);

    trestle_restore_options_init(&o);
    o.device = 0;
    o.chunk_bytes = 1 << 20;
    trestle_plan_get_stats(dev, &ps);
    cudamock_stats a, b;
    cudamock_get_stats(&a);
    cr_assert_eq(trestle_restore(dev, &o, &st, &err), TRESTLE_OK, "%s", err.message);
    cudamock_get_stats(&b);
    cr_assert_eq(st.tensors, NTENSORS);

    /* Reads: each batch's bytes in chunks, plus a partial one per batch. */
    uint64_t reads = ps.read_bytes / o.chunk_bytes + ps.batches;
    uint64_t calls = b.memcpy_async_calls - a.memcpy_async_calls + b.batch_calls - a.batch_calls;
    cr_assert_leq(calls, reads + NTENSORS / BATCH + 1,
                  "%" PRIu64 " copy calls for %d tensors in %" PRIu64 " reads", calls, NTENSORS,
                  reads);
    cr_assert_lt(calls * 50, NTENSORS, "%" PRIu64 " copy calls: one per tensor, or near it",
                 calls);
    cr_assert_gt(b.batch_calls, a.batch_calls, "small copies went out one by one");
    cr_assert_eq(b.h2d_pageable_copies, a.h2d_pageable_copies, "a copy out of pageable memory");
    cr_assert_eq(b.stream_syncs, a.stream_syncs, "stream syncs spin a core");
    cr_assert_eq(b.device_syncs, a.device_syncs);
    cr_assert_eq(b.spinning_event_syncs, a.spinning_event_syncs);
    cr_assert_leq(b.event_syncs - a.event_syncs, reads, "%" PRIu64 " waits for %" PRIu64 " reads",
                  b.event_syncs - a.event_syncs, reads);
    cr_assert_eq(b.mallocs - a.mallocs, 1, "one device allocation for every tensor");

    uint8_t *back = malloc(4096);
    for (size_t i = 0; i < NTENSORS; i++) {
        trestle_plan_op_info h, d;
        cr_assert_eq(trestle_plan_get_op(host, i, &h), TRESTLE_OK);
        cr_assert_eq(trestle_plan_get_op(dev, i, &d), TRESTLE_OK);
        cr_assert_eq(d.device, 0);
        cr_assert_eq(trestle_plan_read_op(dev, i, back, 4096, &err), TRESTLE_OK, "%s",
                     err.message);
        cr_assert(memcmp(back, h.data, h.bytes) == 0, "op %zu (%s) differs", i, d.name);
    }
    free(back);
    trestle_plan_free(dev);
    trestle_plan_free(host);
    trestle_close(c);
    tu_rmtree(dir);
    free(dir);
    free(prefix);
}

#else

Test(gpu_many, needs_the_cuda_mock)
{
    cr_skip_test("this case runs on tests/cudamock (-DTRESTLE_CUDA_MOCK=ON, scripts/check.sh "
                 "asan)");
}

#endif
