/*
 * test_mpi_device.c - device ranks of an MPI restore (trestle-mpi --device
 * local) on the CUDA mock's two devices, in each rank's process: each
 * rank's tensors, read back from its device, equal a host restore, with
 * the exchange staged through pinned host memory or, with the mock NCCL
 * (tests/cudamock/ncclmock.c), through ncclBroadcast; a failed or stalled
 * NCCL init on one rank stages on every rank without a hang (the mock's
 * destroy waits for its peers, as NCCL's does), a failed broadcast fails
 * every rank alike, the communicator is made once per group, a CUDA-aware
 * MPI is used only when asked for, the exchange's copies land after the
 * caller's pending work and leave a thread without a context without one,
 * and a corrupt byte fails both device ranks. Without the mock (a build
 * without CUDA) --device local fails every rank alike.
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

/* np ranks restore `path` with `env` and `extra` options onto their mock
 * devices, like a host restore, and rank 0 prints `line`. */
static void check_device_ranks_env(const char *path, int np, const char *env, const char *extra,
                                   const char *line)
{
    uint64_t total;
    char *out, *err;
    tm_rank_line lines[8];
    run_device_ranks(path, np, env, extra, lines, &total, &out, &err);
    cr_assert(strstr(out, line), "wanted '%s' in:\n%s", line, out);
    free(out);
    free(err);
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

Test(mpi, a_corrupt_byte_fails_both_device_ranks_alike, .timeout = 300)
{
    tm_tool();
    tm_need_mock();
    tm_check_corrupt_env(-1, 1, 2, TM_MOCK_ENV, "--device local");
    tm_check_corrupt_env(0, 0, 2, TM_MOCK_ENV, "--device local");
}

/* ---- device ranks over NCCL: the mock NCCL (tests/cudamock/ncclmock.c) ---- */

/* np ranks on np mock devices restore `path` through the mock NCCL: rank
 * 0 says the exchange was NCCL's; each rank's tensors, read back from its
 * device, equal a host restore; and the bytes went through ncclBroadcast:
 * every rank took part in every broadcast, sent what it read (its part)
 * and received the rest. */
static void check_nccl_ranks(const char *path, int np)
{
    uint64_t total;
    char *env = tm_nccl_env(np, NULL), *out, *err;
    tm_rank_line lines[8];
    tm_nccl_line nl[8];
    run_device_ranks(path, np, env, NULL, lines, &total, &out, &err);
    cr_assert(strstr(out, "exchange nccl: device destinations: NCCL broadcasts between the "
                          "devices\n"), "np %d: no NCCL exchange:\n%s", np, out);
    tm_parse_nccl(err, np, nl);
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
 * tensors equal a host restore, and no rank broadcast through NCCL, all
 * within 30 s: the mock's waits are bounded by 60 s, and a rank left in
 * a blocking init or in a destroy that waits for peers would sit them out. */
static void check_nccl_fallback(const char *path, int np, int devices, const char *extra,
                                const char *note)
{
    uint64_t total;
    char *more, *env, *out, *err, line[256];
    cr_assert(asprintf(&more, "TRESTLE_NCCLMOCK_TIMEOUT_MS=60000 %s", extra ? extra : "") > 0);
    env = tm_nccl_env(devices, more);
    tm_rank_line lines[8];
    tm_nccl_line nl[8];
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    run_device_ranks(path, np, env, NULL, lines, &total, &out, &err);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    cr_assert_lt(t1.tv_sec - t0.tv_sec, 30, "the ranks took %ld s to fall back: someone waited "
                 "in NCCL\n%s", (long)(t1.tv_sec - t0.tv_sec), err);
    cr_assert(!strstr(err, "would hang"), "%s", err);
    snprintf(line, sizeof line, "exchange staged: device destinations: %s; MPI is not "
             "CUDA-aware: pinned host staging over MPI\n", note);
    cr_assert(strstr(out, line), "wanted '%s' in:\n%s", line, out);
    tm_parse_nccl(err, np, nl);
    for (int r = 0; r < np; r++)
        cr_assert_eq(nl[r].broadcasts, 0, "rank %d broadcast through NCCL", r);
    free(more);
    free(env);
    free(out);
    free(err);
}

Test(mpi, a_failed_nccl_init_on_one_rank_stages_on_every_rank, .timeout = 300)
{
    tm_need_ncclmock();
    char *dir, *prefix = tm_make_multishard(&dir);
    /* Ranks 0 and 2 hold working comms: they must give them up too, and
     * not with ncclCommDestroy, which would wait for rank 1 forever. */
    check_nccl_fallback(prefix, 3, 3, "TRESTLE_NCCLMOCK_FAIL_INIT=1",
                        "ncclCommInitRankConfig failed on rank 1: unhandled system error");
    check_nccl_fallback(prefix, 2, 2, "TRESTLE_NCCLMOCK_FAIL_INIT=0",
                        "ncclCommInitRankConfig failed on rank 0: unhandled system error");
    /* Three ranks on two GPUs: NCCL refuses two ranks on one device. */
    check_nccl_fallback(prefix, 3, 2, NULL,
                        "ncclCommInitRankConfig failed on rank 0: invalid usage");
    tu_rmtree(dir);
    free(dir);
    free(prefix);
}

Test(mpi, a_stalled_nccl_init_stages_on_every_rank_by_its_deadline, .timeout = 300)
{
    tm_need_ncclmock();
    char *dir, *prefix = tm_make_multishard(&dir);
    /* Rank 1 never arrives: a blocking init would keep the others in it
     * for the mock's 60 s; the non-blocking one gives up after 2. */
    check_nccl_fallback(prefix, 3, 3, "TRESTLE_NCCLMOCK_STALL_INIT=1 TRESTLE_NCCL_TIMEOUT=2",
                        "ncclCommInitRankConfig failed on rank 0: did not finish within 2 s");
    tu_rmtree(dir);
    free(dir);
    free(prefix);
}

Test(mpi, the_nccl_communicator_is_made_once_per_group, .timeout = 300)
{
    tm_need_ncclmock();
    char *dir, *prefix = tm_make_multishard(&dir), *env = tm_nccl_env(2, NULL), *args, *out, *err;
    /* Three timed restores and the exchange ceiling: one group, one comm. */
    cr_assert(asprintf(&args, "'%s' --device local --repeat 3", prefix) > 0);
    int rc = tm_mpirun_sub(tm_tool(), 2, env, "bench", args, &out, &err);
    cr_assert_eq(rc, 0, "%s\n%s", out, err);
    cr_assert(strstr(out, "nccl"), "the bench did not exchange through NCCL:\n%s", out);
    /* The mock prints one line per communicator, when it goes. */
    for (int r = 0; r < 2; r++) {
        char head[64];
        snprintf(head, sizeof head, "ncclmock: rank %d of 2 on device %d: ", r, r);
        cr_assert_eq(tm_count(err, head), 1, "rank %d made %d communicators:\n%s", r,
                     tm_count(err, head), err);
    }
    free(args);
    free(env);
    free(out);
    free(err);
    tu_rmtree(dir);
    free(dir);
    free(prefix);
}

/* ---- CUDA-aware MPI: only when asked for ---- */

Test(mpi, a_cuda_aware_mpi_is_used_only_when_asked_for, .timeout = 300)
{
    tm_tool();
    tm_need_mock();
    char *dir, *prefix = tm_make_multishard(&dir);
    /* The mock's MPI says it is CUDA-aware, and its device memory is
     * PROT_NONE to the host, as a transport without CUDA support finds a
     * GPU's: an MPI_Bcast of it would crash. AUTO must not believe it. */
    check_device_ranks_env(prefix, 2, TM_MOCK_ENV " TRESTLE_CUDAMOCK_MPI_CUDA_AWARE=1", "",
                           "exchange staged: device destinations: NCCL is not tried on the CUDA "
                           "mock; MPI says CUDA-aware, used only if asked (--exchange "
                           "mpi-cuda): pinned host staging over MPI\n");
    /* Asked for, where the MPI does not say so: staging, and why. */
    check_device_ranks_env(prefix, 2, TM_MOCK_ENV, "--exchange mpi-cuda",
                           "exchange staged: device destinations: CUDA-aware MPI asked for, but "
                           "some rank's MPI does not say it is CUDA-aware: pinned host staging "
                           "over MPI\n");
    tu_rmtree(dir);
    free(dir);
    free(prefix);
}

/* ---- the caller's stream and context ---- */

/* Two float32 tensors of 64 KiB: over three ranks, one rank reads none of
 * them and restores everything it holds through the exchange, so no copy
 * of its own restore waits for (and runs) the caller's stream first. */
static char *write_two(char **dir)
{
    char *prefix;
    trestle_error err;
    trestle_writer *w;
    *dir = tu_mkdtemp();
    cr_assert(asprintf(&prefix, "%s/two", *dir) > 0);
    cr_assert_eq(trestle_writer_create(prefix, NULL, &w, &err), TRESTLE_OK, "%s", err.message);
    static const int64_t dims[1] = { 16384 };
    float *v = malloc(16384 * sizeof *v);
    for (int t = 0; t < 2; t++) {
        for (int i = 0; i < 16384; i++)
            v[i] = (float)(t * 16384 + i) + 0.5f;
        cr_assert_eq(trestle_writer_add(w, t ? "b" : "a", TRESTLE_DT_FLOAT, 1, dims, v,
                                        16384 * sizeof *v, 0, &err), TRESTLE_OK, "%s",
                     err.message);
    }
    free(v);
    cr_assert_eq(trestle_writer_finish(w, &err), TRESTLE_OK, "%s", err.message);
    trestle_writer_free(w);
    return prefix;
}

Test(mpi, received_bytes_land_after_the_callers_pending_work, .timeout = 300)
{
    tm_tool();
    tm_need_mock();
    char *dir, *prefix = write_two(&dir);
    tm_check_order(prefix, 3, "legacy", NULL, NULL);
    tm_check_order(prefix, 3, "stream", NULL, NULL);
    tu_rmtree(dir);
    free(dir);
    free(prefix);
    prefix = tm_make_multishard(&dir);
    tm_check_order(prefix, 2, "legacy", NULL, NULL);
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
    env = tm_nccl_env(np, extra);
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
