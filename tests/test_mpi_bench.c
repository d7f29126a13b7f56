/*
 * test_mpi_bench.c - `trestle bench` under mpirun, the group bench: the
 * checkpoint is read once in all (or once per simulated node) and each
 * rank receives what it did not read; the figures come with the storage
 * and the exchange ceilings, the exchange ceiling measured by the library
 * through the restore's own exchange: MPI on host ranks, staged on the
 * CUDA mock's device ranks, ncclBroadcast through the mock NCCL, and
 * failing alike on every rank when one device cannot hold its buffer.
 * Speeds are not asserted (benchmarks carry them).
 */
#include <criterion/criterion.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testmpi.h"
#include "testutil.h"
#include "trestle.h"

/* ---- the group bench ---- */

/* `trestle bench` under mpirun runs the group bench: the checkpoint is read
 * once in all and each rank receives the (N-1)/N it did not read; figures
 * come with both ceilings. Speeds are not asserted (benchmarks carry them). */
Test(mpi, trestle_bench_under_mpirun_reads_once_and_gives_both_ceilings, .timeout = 300)
{
    tm_tool();
    for (int np = 2; np <= 3; np++) {
        char *out, *err;
        int rc = tm_mpirun_sub(TRESTLE_CLI_PATH, np, NULL, "bench",
                               "--synthetic 8M,3 --repeat 2 --json", &out, &err);
        cr_assert_eq(rc, 0, "%s%s", out, err);
        int ranks = 0;
        uint64_t total = 0, read = 0, exchanged = 0;
        double st = 0, ex = 0;
        const char *j = strstr(out, "{\"ranks\"");
        cr_assert(j, "no JSON line: %s", out);
        cr_assert_eq(sscanf(j, "{\"ranks\": %d, ", &ranks), 1, "%s", j);
        cr_assert_eq(sscanf(strstr(j, "\"checkpoint_bytes\""), "\"checkpoint_bytes\": %" SCNu64,
                            &total), 1, "%s", j);
        cr_assert_eq(sscanf(strstr(j, "\"bytes_read\""), "\"bytes_read\": %" SCNu64
                            ", \"bytes_exchanged\": %" SCNu64, &read, &exchanged), 2, "%s", j);
        cr_assert_eq(sscanf(strstr(j, "\"storage_ceiling_gbps\""),
                            "\"storage_ceiling_gbps\": %lf, \"exchange_ceiling_gbps\": %lf",
                            &st, &ex), 2, "%s", j);
        cr_assert_eq(ranks, np);
        cr_assert_gt(total, 0);
        cr_assert_eq(read, total, "read once in all: %" PRIu64 " of %" PRIu64, read, total);
        cr_assert_eq(exchanged, total * (uint64_t)(np - 1), "%s", j);
        cr_assert_gt(st, 0, "%s", j);
        cr_assert_gt(ex, 0, "%s", j);
        /* The library's ceiling (trestle_group_exchange_ceiling()), by the
         * host restore's own exchange. */
        char note[160];
        snprintf(note, sizeof note, "\"exchange_ceiling_kind\": \"mpi\", "
                 "\"exchange_ceiling_note\": \"mpi: MPI broadcasts host memory; %d roots "
                 "broadcast 1/%d each in 64 MiB rounds, as the restore does, best of 3\"}",
                 np, np);
        cr_assert(strstr(j, note), "wanted %s in %s", note, j);
        cr_assert(strstr(j, "\"exchange\": \"mpi\", \"exchange_note\": \"host destinations: "),
                  "%s", j);
        cr_assert_eq(tm_count(out, "{\"ranks\""), 1, "rank 0 alone prints: %s", out);
        /* Beside it, the same restore by every rank alone (--group none):
         * each reads every byte; and the group's ratio to its ceiling is
         * at most 1 (issue 24). */
        uint64_t alone = 0;
        double ratio = 0;
        const char *ind = strstr(j, "\"independent\": {\"wall_seconds\": {\"min\": ");
        cr_assert(ind, "%s", j);
        cr_assert_eq(sscanf(strstr(ind, "\"bytes_read\""), "\"bytes_read\": %" SCNu64, &alone), 1,
                     "%s", j);
        cr_assert_eq(alone, total * (uint64_t)np, "each rank reads it all: %s", j);
        cr_assert(strstr(j, "\"group_vs_independent\": "), "%s", j);
        cr_assert_eq(sscanf(strstr(j, "\"ratio_to_ceiling\""), "\"ratio_to_ceiling\": %lf", &ratio),
                     1, "%s", j);
        cr_assert(ratio > 0 && ratio <= 1, "%s", j);
        cr_assert(strstr(j, "\"machine\": {\"cpu\": "), "%s", j);
        free(out);
        free(err);
    }
    /* The table names both ceilings. */
    char *out, *err;
    cr_assert_eq(tm_mpirun_sub(TRESTLE_CLI_PATH, 2, NULL, "bench", "--synthetic 4M,2 --repeat 1",
                               &out, &err), 0, "%s%s", out, err);
    cr_assert(strstr(out, "group restore of "), "%s", out);
    cr_assert(strstr(out, "\nindependent restores (as --group none: each rank reads every byte), "
                          "1 repeat: wall "), "%s", out);
    cr_assert(strstr(out, "\n  read once pays here: ") ||
              strstr(out, "\n  read once does not pay here: "), "%s", out);
    cr_assert(strstr(out, "  storage "), "%s", out);
    cr_assert(strstr(out, "  exchange "), "%s", out);
    free(out);
    free(err);
}

/* ---- the group bench over a scope, and onto devices ---- */

/* One JSON field of the group bench's line, as an unsigned number. */
static uint64_t json_u64(const char *j, const char *key)
{
    char pat[64];
    uint64_t v = 0;
    snprintf(pat, sizeof pat, "\"%s\": ", key);
    const char *at = strstr(j, pat);
    cr_assert(at, "no %s in %s", key, j);
    cr_assert_eq(sscanf(at + strlen(pat), "%" SCNu64, &v), 1, "%s", j);
    return v;
}

/* With scope node each simulated node reads the checkpoint once, and both
 * ceilings are measured within the nodes. */
Test(mpi, trestle_bench_with_node_scope_reads_once_per_node, .timeout = 300)
{
    tm_tool();
    char *out, *err;
    int rc = tm_mpirun_sub(TRESTLE_CLI_PATH, 4, NULL, "bench",
                           "--synthetic 8M,2 --repeat 1 --simulate-nodes 2 --json", &out, &err);
    cr_assert_eq(rc, 0, "%s%s", out, err);
    const char *j = strstr(out, "{\"ranks\"");
    cr_assert(j, "%s", out);
    cr_assert(strstr(j, "\"ranks\": 4, \"nodes\": 2, \"scope\": \"node\""), "%s", j);
    uint64_t total = json_u64(j, "checkpoint_bytes");
    cr_assert_eq(json_u64(j, "bytes_read"), 2 * total, "once per node: %s", j);
    cr_assert_eq(json_u64(j, "bytes_exchanged"), 2 * total, "within each node: %s", j);
    free(out);
    free(err);
    rc = tm_mpirun_sub(TRESTLE_CLI_PATH, 4, NULL, "bench",
                       "--synthetic 8M,2 --repeat 1 --simulate-nodes 2", &out, &err);
    cr_assert_eq(rc, 0, "%s%s", out, err);
    cr_assert(strstr(out, "scope node: 2 nodes and the checkpoint is on "), "%s", out);
    cr_assert(strstr(out, "on each of 2 nodes at once"), "%s", out);
    cr_assert(strstr(out, "within each node"), "%s", out);
    free(out);
    free(err);
}

/* One JSON field of the group bench's line, as a number. */
static double json_double(const char *j, const char *key)
{
    char pat[64];
    double v = 0;
    snprintf(pat, sizeof pat, "\"%s\": ", key);
    const char *at = strstr(j, pat);
    cr_assert(at, "no %s in %s", key, j);
    cr_assert_eq(sscanf(at + strlen(pat), "%lf", &v), 1, "%s", j);
    return v;
}

/* Device ranks on the mock: the bench restores onto each rank's device,
 * and its exchange ceiling runs between buffers on those devices by the
 * restore's own staged exchange (2 and 3 ranks; ranks 0 and 2 share
 * device 0). */
Test(mpi, trestle_bench_onto_device_ranks, .timeout = 300)
{
    tm_tool();
    tm_need_mock();
    char *out, *err;
    int rc = tm_mpirun_sub(TRESTLE_CLI_PATH, 2, TM_MOCK_ENV, "bench",
                           "--synthetic 8M,2 --repeat 1 --device local", &out, &err);
    cr_assert_eq(rc, 0, "%s%s", out, err);
    cr_assert(strstr(out, "group restore of "), "%s", out);
    cr_assert(strstr(out, "exchange: device destinations: "), "%s", out);
    cr_assert(strstr(out, "pinned host staging over MPI"), "%s", out);
    cr_assert(strstr(out, " GB/s  staged: pinned host staging over MPI; 2 roots broadcast 1/2 "
                          "each in 64 MiB rounds, as the restore does, best of 3\n"),
              "the exchange ceiling is the staged one:\n%s", out);
    free(out);
    free(err);
    for (int np = 2; np <= 3; np++) {
        rc = tm_mpirun_sub(TRESTLE_CLI_PATH, np, TM_MOCK_ENV, "bench",
                           "--synthetic 4M,2 --repeat 1 --device local --exchange staged --json",
                           &out, &err);
        cr_assert_eq(rc, 0, "%s%s", out, err);
        const char *j = strstr(out, "{\"ranks\"");
        cr_assert(j, "%s", out);
        cr_assert(strstr(j, "\"exchange\": \"staged\", \"exchange_note\": \"device "
                            "destinations: staging asked for; "), "%s", j);
        cr_assert(strstr(j, "\"exchange_ceiling_kind\": \"staged\""), "%s", j);
        cr_assert_gt(json_double(j, "exchange_ceiling_gbps"), 0, "%s", j);
        free(out);
        free(err);
    }
}

/* The exchange ceiling through the mock NCCL: the bench says so, and every
 * rank's mock NCCL counters show one comm (the group keeps it: the restore
 * and the ceiling share it), printed when the group goes: the restore's
 * rounds (its parts, the checkpoint once in all), then three runs of one
 * broadcast per root, each rank sending its 1/N of the checkpoint's bytes
 * each run and receiving the rest. */
Test(mpi, trestle_bench_exchange_ceiling_goes_through_the_mock_nccl, .timeout = 300)
{
    const char *nccl = tm_need_ncclmock();
    for (int np = 2; np <= 3; np++) {
        char *env, *out, *err;
        cr_assert(asprintf(&env, "TRESTLE_CUDAMOCK_DEVICES=%d TRESTLE_CUDAMOCK_NCCL='%s' "
                                 "TRESTLE_NCCLMOCK_STATS=1", np, nccl) > 0);
        int rc = tm_mpirun_sub(TRESTLE_CLI_PATH, np, env, "bench",
                               "--synthetic 4M,2 --repeat 1 --device local --json", &out, &err);
        cr_assert_eq(rc, 0, "%s%s", out, err);
        const char *j = strstr(out, "{\"ranks\"");
        cr_assert(j, "%s", out);
        cr_assert(strstr(j, "\"exchange\": \"nccl\""), "the restore's: %s", j);
        cr_assert(strstr(j, "\"exchange_ceiling_kind\": \"nccl\", \"exchange_ceiling_note\": "
                            "\"nccl: ncclBroadcast between the devices; "), "%s", j);
        cr_assert_gt(json_double(j, "exchange_ceiling_gbps"), 0, "%s", j);
        uint64_t total = json_u64(j, "checkpoint_bytes");
        /* Each rank's last counters line is the ceiling's comm. */
        tm_nccl_line last[8];
        memset(last, 0, sizeof last);
        for (const char *s = err; s && *s; s = strchr(s, '\n') ? strchr(s, '\n') + 1 : NULL) {
            int r, n, d;
            uint64_t b, snt, rcv;
            if (sscanf(s, "ncclmock: rank %d of %d on device %d: %" SCNu64 " broadcasts, %"
                       SCNu64 " bytes sent, %" SCNu64 " bytes received", &r, &n, &d, &b, &snt,
                       &rcv) == 6 && n == np && r >= 0 && r < np)
                last[r] = (tm_nccl_line){ last[r].seen + 1, d, b, snt, rcv };
        }
        uint64_t restore_sent = 0;
        for (int r = 0; r < np; r++) {
            uint64_t lo = total / (uint64_t)np * (uint64_t)r;
            uint64_t hi = r + 1 == np ? total : total / (uint64_t)np * (uint64_t)(r + 1);
            cr_assert_eq(last[r].seen, 1, "np %d: rank %d: one comm for the restore and the "
                         "ceiling, not %d:\n%s", np, r, last[r].seen, err);
            cr_assert_eq(last[r].device, r, "rank %d's comm on device %d", r, last[r].device);
            /* The ceiling's part of the counters, then the restore's. */
            cr_assert_geq(last[r].broadcasts, 4 * (uint64_t)np, "np %d rank %d: %" PRIu64
                          " broadcasts", np, r, last[r].broadcasts);
            cr_assert_eq(last[r].broadcasts, last[0].broadcasts, "every rank in every round");
            cr_assert_geq(last[r].sent, 3 * (hi - lo), "np %d rank %d sent %" PRIu64, np, r,
                          last[r].sent);
            uint64_t mine = last[r].sent - 3 * (hi - lo);
            restore_sent += mine;
            cr_assert_eq(last[r].received, 3 * (total - (hi - lo)) + (total - mine),
                         "np %d rank %d received %" PRIu64, np, r, last[r].received);
        }
        cr_assert_eq(restore_sent, total, "the restore's parts: %" PRIu64 " of %" PRIu64 " bytes",
                     restore_sent, total);
        free(env);
        free(out);
        free(err);
    }
}

/* A ceiling buffer that one rank's device cannot hold (the mock's device 1
 * given 16 MB, the ceiling asked over 20 MB): the ceiling fails on every
 * rank alike, so rank 0 reports rank 1's error, and the restore's figures
 * stand (the bench still succeeds). */
Test(mpi, an_exchange_ceiling_one_device_cannot_hold_fails_every_rank_alike, .timeout = 300)
{
    tm_tool();
    tm_need_mock();
    char *out, *err;
    const char *env = TM_MOCK_ENV " TRESTLE_CUDAMOCK_DEVICE_BYTES=0,16000000 "
                      "TRESTLE_MPI_TEST_CEILING_BYTES=20000000";
    int rc = tm_mpirun_sub(TRESTLE_CLI_PATH, 2, env, "bench",
                           "--synthetic 4M,2 --repeat 1 --device local", &out, &err);
    cr_assert_eq(rc, 0, "%s%s", out, err);
    cr_assert(strstr(out, "group restore of "), "%s", out);
    cr_assert(strstr(out, "\n  exchange       n/a       n/a: rank 1 of 2: cannot allocate "
                          "20000000 bytes on CUDA device 1 for the exchange ceiling: out of "
                          "memory\n"), "%s", out);
    free(out);
    free(err);
    rc = tm_mpirun_sub(TRESTLE_CLI_PATH, 2, env, "bench",
                       "--synthetic 4M,2 --repeat 1 --device local --json", &out, &err);
    cr_assert_eq(rc, 0, "%s%s", out, err);
    const char *j = strstr(out, "{\"ranks\"");
    cr_assert(j, "%s", out);
    cr_assert_eq(json_double(j, "exchange_ceiling_gbps"), -1.0, "%s", j);
    cr_assert_gt(json_double(j, "delivered_gbps"), 0, "%s", j);
    free(out);
    free(err);
}
