/*
 * test_mpi_device.c - device ranks of an MPI restore (trestle-mpi --device
 * local) on the CUDA mock's two devices, in each rank's process: each
 * rank's tensors, read back from its device, equal a host restore, with
 * the exchange staged through pinned host memory or, with the mock NCCL
 * (tests/cudamock/ncclmock.c), through ncclBroadcast; a failed NCCL init
 * on one rank stages on every rank, a failed broadcast fails every rank
 * alike, and a corrupt byte fails both device ranks. Without the mock
 * (a build without CUDA) --device local fails every rank alike.
 */
#include <criterion/criterion.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "testmpi.h"
#include "testutil.h"
#include "trestle.h"

/* ---- device ranks (the CUDA mock: two devices, in each rank's process) ---- */

/* np ranks restore `path` with `env` and `extra` onto their mock devices
 * (--device local): each rank's tensors, read back from device memory,
 * equal a single-process host restore. Fills lines[np] and *total (the
 * checkpoint's extent bytes); the caller frees *out and *err. */
static void run_device_ranks(const char *path, int np, const char *env, const char *extra,
                             tm_rank_line *lines, uint64_t *total, char **out, char **err)
{
    uint64_t maxx, want = tm_reference(path, NULL, 0, NULL, 0, total, &maxx);
    char *args;
    cr_assert(asprintf(&args, "'%s' --all --checksum --device local %s", path,
                       extra ? extra : "") > 0);
    int rc = tm_mpirun(np, env, args, out, err);
    cr_assert_eq(rc, 0, "np %d: exit %d\n%s%s", np, rc, *out, *err);
    tm_parse_ranks(*out, np, lines);
    for (int r = 0; r < np; r++)
        cr_assert_eq(lines[r].whole, want, "%s: rank %d of %d (device %d) differs from a host "
                     "restore", path, r, np, lines[r].device);
    free(args);
}

/* run_device_ranks on two mock devices: rank r is on device r % 2, the
 * ranks read the checkpoint `copies` times in all, and rank 0 says the
 * exchange was staged through host memory, and why. */
static void check_device_ranks(const char *path, int np, uint64_t copies, const char *extra)
{
    uint64_t total, sum = 0;
    char *out, *err;
    tm_rank_line lines[8];
    run_device_ranks(path, np, TM_MOCK_ENV, extra, lines, &total, &out, &err);
    for (int r = 0; r < np; r++) {
        cr_assert_eq(lines[r].device, r % 2, "rank %d restored to device %d", r, lines[r].device);
        sum += lines[r].read;
    }
    cr_assert_eq(sum, copies * total, "the ranks read %" PRIu64 ", not %" PRIu64 " x %" PRIu64,
                 sum, copies, total);
    /* NCCL may even be installed here: on the mock's memory it is declined. */
    cr_assert(strstr(out, "exchange staged: device destinations: ") &&
              strstr(out, "pinned host staging over MPI\n"), "no staged exchange:\n%s", out);
    free(out);
    free(err);
}

Test(mpi, device_ranks_restore_onto_their_own_mock_devices_like_a_host_restore, .timeout = 300)
{
    tm_tool();
    tm_need_mock();
    char *dir, *prefix = tm_make_multishard(&dir);
    check_device_ranks(prefix, 2, 1, "");
    check_device_ranks(prefix, 3, 1, "");            /* ranks 0 and 2 share device 0 */
    check_device_ranks(prefix, 2, 1, "--exchange staged");
    tu_rmtree(dir);
    free(dir);
    free(prefix);
    /* A real two-shard checkpoint: a skip without ../shared, a failure in CI. */
    check_device_ranks(tu_fixture_present("tf-real/tfkeras_lso_ckpt_2shards"), 2, 1, "");
}

Test(mpi, device_ranks_with_node_scope_and_tensor_parallel_parts, .timeout = 300)
{
    tm_tool();
    tm_need_mock();
    char *dir, *prefix = tm_make_multishard(&dir);
    /* Two simulated nodes of two: each node's ranks on devices 0 and 1. */
    check_device_ranks(prefix, 4, 2, "--simulate-nodes 2 --scope node");
    tu_rmtree(dir);
    free(dir);
    free(prefix);
    tm_tp_fixture f;
    tm_make_tp(&f);
    trestle_op norm = { .name = "model/norm/scale" };
    uint64_t whole = tm_reference(f.prefix, &norm, 1, NULL, 0, NULL, NULL);
    char *args;
    cr_assert(asprintf(&args, "'%s' --all --checksum --device local --shard 'model/attn/*:0' "
                              "--shard 'model/mlp/*:1'", f.prefix) > 0);
    tm_check_tp_env(&f, 3, TM_MOCK_ENV, args, whole);
    free(args);
    tm_free_tp(&f);
}

Test(mpi, device_ranks_read_narrow_parts_themselves_and_say_so, .timeout = 300)
{
    tm_tool();
    tm_need_mock();
    tm_tp_fixture f;
    tm_make_tp(&f);
    char *args, *out, *err;
    /* model/mlp/wo/kernel [8,12] split by columns over 3 ranks: 16-byte
     * runs, which no rank reads alone. Parts are not sent to devices, so
     * each device rank reads all 384 bytes itself, and rank 0 says why the
     * job read twice what its tensors take. */
    cr_assert(asprintf(&args, "'%s' --all --device local --shard 'model/attn/*:0' "
                              "--shard 'model/mlp/*:1'", f.prefix) > 0);
    int rc = tm_mpirun(3, TM_MOCK_ENV, args, &out, &err);
    cr_assert_eq(rc, 0, "exit %d\n%s%s", rc, out, err);
    cr_assert_eq(tm_count(out, "parts: 1 tensor (384 B) whose parts no rank reads alone: read "
                               "whole by every rank (no parts are sent to devices)\n"), 1, "%s",
                 out);
    cr_assert_eq(tm_count(out, "note: read 1.43 KiB from storage in all, 2.10x the 700 B the "
                               "tensors take: 1 tensor (384 B) whose parts no rank reads alone: "
                               "read whole by every rank (no parts are sent to devices)\n"), 1,
                 "%s", out);
    free(args);
    free(out);
    free(err);
    tm_free_tp(&f);
}

Test(mpi, a_corrupt_byte_fails_both_device_ranks_alike, .timeout = 300)
{
    tm_tool();
    tm_need_mock();
    tm_check_corrupt_env(-1, 1, 2, TM_MOCK_ENV, "--device local");
    tm_check_corrupt_env(0, 0, 2, TM_MOCK_ENV, "--device local");
}

/* ---- device ranks over NCCL: the mock NCCL (tests/cudamock/ncclmock.c) ---- */

/* The environment of ranks that exchange through the mock NCCL on
 * `devices` mock devices: windows of 4000 bytes, so that every broadcast
 * goes in many chunks, one partial; counters printed; then `extra`. */
static char *nccl_env(int devices, const char *extra)
{
    char *env;
    cr_assert(asprintf(&env, "TRESTLE_CUDAMOCK_DEVICES=%d TRESTLE_CUDAMOCK_NCCL='%s' "
                             "TRESTLE_NCCLMOCK_CHUNK=4000 TRESTLE_NCCLMOCK_STATS=1 %s",
                       devices, tm_need_ncclmock(), extra ? extra : "") > 0);
    return env;
}

static void parse_nccl(const char *err, int np, tm_nccl_line *v)
{
    memset(v, 0, (size_t)np * sizeof *v);
    for (const char *s = err; s && *s; s = strchr(s, '\n') ? strchr(s, '\n') + 1 : NULL) {
        int r, n, d;
        uint64_t b, snt, rcv;
        if (sscanf(s, "ncclmock: rank %d of %d on device %d: %" SCNu64 " broadcasts, %" SCNu64
                   " bytes sent, %" SCNu64 " bytes received", &r, &n, &d, &b, &snt, &rcv) == 6) {
            cr_assert(n == np && r >= 0 && r < np && !v[r].seen, "bad line: %.100s", s);
            v[r] = (tm_nccl_line){ 1, d, b, snt, rcv };
        }
    }
}

/* np ranks on np mock devices restore `path` through the mock NCCL: rank
 * 0 says the exchange was NCCL's; each rank's tensors, read back from its
 * device, equal a host restore; and the bytes went through ncclBroadcast:
 * every rank took part in every broadcast, sent what it read (its part)
 * and received the rest. */
static void check_nccl_ranks(const char *path, int np)
{
    uint64_t total;
    char *env = nccl_env(np, NULL), *out, *err;
    tm_rank_line lines[8];
    tm_nccl_line nl[8];
    run_device_ranks(path, np, env, NULL, lines, &total, &out, &err);
    cr_assert(strstr(out, "exchange nccl: device destinations: NCCL broadcasts between the "
                          "devices\n"), "np %d: no NCCL exchange:\n%s", np, out);
    parse_nccl(err, np, nl);
    uint64_t sent = 0;
    for (int r = 0; r < np; r++) {
        cr_assert_eq(lines[r].device, r, "rank %d restored to device %d", r, lines[r].device);
        cr_assert(nl[r].seen, "np %d: rank %d printed no mock NCCL counters:\n%s", np, r, err);
        cr_assert_eq(nl[r].device, r, "rank %d's comm is on device %d", r, nl[r].device);
        cr_assert_geq(nl[r].broadcasts, (uint64_t)np, "rank %d: %" PRIu64 " broadcasts", r,
                      nl[r].broadcasts);
        cr_assert_eq(nl[r].broadcasts, nl[0].broadcasts, "every rank is in every broadcast");
        cr_assert_eq(nl[r].sent, lines[r].read, "rank %d sent %" PRIu64 ", read %" PRIu64, r,
                     nl[r].sent, lines[r].read);
        sent += nl[r].sent;
    }
    cr_assert_eq(sent, total, "the ranks broadcast %" PRIu64 " bytes of %" PRIu64, sent, total);
    for (int r = 0; r < np; r++)
        cr_assert_eq(nl[r].received, total - nl[r].sent, "rank %d received %" PRIu64, r,
                     nl[r].received);
    free(env);
    free(out);
    free(err);
}

Test(mpi, device_ranks_exchange_through_the_mock_nccl_like_a_host_restore, .timeout = 300)
{
    tm_need_ncclmock();
    char *dir, *prefix = tm_make_multishard(&dir);
    check_nccl_ranks(prefix, 2);
    check_nccl_ranks(prefix, 3);
    tu_rmtree(dir);
    free(dir);
    free(prefix);
    /* A real two-shard checkpoint: a skip without ../shared, a failure in CI. */
    check_nccl_ranks(tu_fixture_present("tf-real/tfkeras_lso_ckpt_2shards"), 2);
}

/* np ranks on `devices` mock devices, with the mock NCCL and `extra`
 * environment, fall back to staging, every rank alike (the collectives of
 * two exchanges would not match): rank 0 says why (`note`), each rank's
 * tensors equal a host restore, and no rank broadcast through NCCL. */
static void check_nccl_fallback(const char *path, int np, int devices, const char *extra,
                                const char *note)
{
    uint64_t total;
    char *env = nccl_env(devices, extra), *out, *err, line[256];
    tm_rank_line lines[8];
    tm_nccl_line nl[8];
    run_device_ranks(path, np, env, NULL, lines, &total, &out, &err);
    snprintf(line, sizeof line, "exchange staged: device destinations: %s; MPI is not "
             "CUDA-aware: pinned host staging over MPI\n", note);
    cr_assert(strstr(out, line), "wanted '%s' in:\n%s", line, out);
    parse_nccl(err, np, nl);
    for (int r = 0; r < np; r++)
        cr_assert_eq(nl[r].broadcasts, 0, "rank %d broadcast through NCCL", r);
    free(env);
    free(out);
    free(err);
}

Test(mpi, a_failed_nccl_init_on_one_rank_stages_on_every_rank, .timeout = 300)
{
    tm_need_ncclmock();
    char *dir, *prefix = tm_make_multishard(&dir);
    /* Ranks 0 and 2 hold working comms: they must give them up too. */
    check_nccl_fallback(prefix, 3, 3, "TRESTLE_NCCLMOCK_FAIL_INIT=1",
                        "ncclCommInitRank failed on rank 1: unhandled system error");
    check_nccl_fallback(prefix, 2, 2, "TRESTLE_NCCLMOCK_FAIL_INIT=0",
                        "ncclCommInitRank failed on rank 0: unhandled system error");
    /* Three ranks on two GPUs: NCCL refuses two ranks on one device. */
    check_nccl_fallback(prefix, 3, 2, NULL, "ncclCommInitRank failed on rank 0: invalid usage");
    tu_rmtree(dir);
    free(dir);
    free(prefix);
}

/* A failing ncclBroadcast (`fail`: TRESTLE_NCCLMOCK_FAIL_BROADCAST) fails
 * every rank of np with the same message `want`, promptly: the mock's
 * waits are bounded by 60 s, and no rank may sit them out. */
static void check_nccl_broadcast_fails(const char *path, int np, const char *fail,
                                       const char *want)
{
    char *extra, *env, *args, *out, *err;
    cr_assert(asprintf(&extra, "TRESTLE_NCCLMOCK_TIMEOUT_MS=60000 "
                               "TRESTLE_NCCLMOCK_FAIL_BROADCAST=%s", fail) > 0);
    env = nccl_env(np, extra);
    cr_assert(asprintf(&args, "'%s' --all --device local", path) > 0);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int rc = tm_mpirun(np, env, args, &out, &err);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    cr_assert_neq(rc, 0, "a failed broadcast restored:\n%s", out);
    cr_assert_eq(tm_count(err, want), np, "every rank fails alike; wanted %d x '%s' in:\n%s", np,
                 want, err);
    cr_assert(!strstr(out, "group of "), "no aggregate after a failure:\n%s", out);
    cr_assert_lt(t1.tv_sec - t0.tv_sec, 30, "the ranks took %ld s to fail: someone waited",
                 (long)(t1.tv_sec - t0.tv_sec));
    free(extra);
    free(env);
    free(args);
    free(out);
    free(err);
}

Test(mpi, a_failed_nccl_broadcast_fails_every_rank_alike_without_a_hang, .timeout = 300)
{
    tm_need_ncclmock();
    char *dir, *prefix = tm_make_multishard(&dir);
    /* Rank 0's first broadcast is its own round: its error is every rank's. */
    check_nccl_broadcast_fails(prefix, 2, "0:1", "trestle: rank 0 of 2: ncclBroadcast from rank "
                               "0 failed: unhandled cuda error (run with NCCL_DEBUG=INFO for "
                               "details)\n");
    /* Rank 1 fails in rank 1's round: rank 0 hears of it from the mock
     * (NCCL's remote error), and the lowest failing rank speaks for all. */
    check_nccl_broadcast_fails(prefix, 3, "1:2", "trestle: rank 0 of 3: ncclBroadcast from rank "
                               "1 failed: remote process exited or there was a network "
                               "error\n");
    tu_rmtree(dir);
    free(dir);
    free(prefix);
}

/* ---- without CUDA ---- */

Test(mpi, device_ranks_without_cuda_fail_every_rank_alike, .timeout = 120)
{
    tm_tool();
#if TRESTLE_HAVE_CUDA
    cr_skip("this build has CUDA (or its mock): --device local is tested on the mock");
#else
    char *dir, *prefix = tm_make_multishard(&dir), *args, *out, *err;
    cr_assert(asprintf(&args, "'%s' --all --device local", prefix) > 0);
    int rc = tm_mpirun(2, NULL, args, &out, &err);
    cr_assert_neq(rc, 0);
    cr_assert_eq(tm_count(err, "trestle: rank 0 of 2: this build of trestle has no CUDA support: "
                               "--device local needs one"), 2, "%s", err);
    free(args);
    free(out);
    free(err);
    tu_rmtree(dir);
    free(dir);
    free(prefix);
#endif
}
