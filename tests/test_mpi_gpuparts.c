/*
 * test_mpi_gpuparts.c - tensor-parallel parts that no rank reads alone, on
 * device ranks (trestle-mpi --device local, the CUDA mock's devices in each
 * rank's process): such a tensor is read once, whole, by one rank of the
 * read-once scope, and its parts reach the other ranks' devices through the
 * device exchange, staged through pinned host memory or broadcast by the
 * mock NCCL (tests/cudamock/ncclmock.c). Each case checks the bytes read
 * per rank exactly (the tensors once in all, per scope with --scope node),
 * each rank's parts read back from its device against the reference slices
 * and against the same job on host ranks, in one round and in many rounds
 * cut inside rows and between parts; with the mock NCCL, every byte that
 * went through ncclBroadcast; and the parts land after the work the caller
 * queued on its stream before the call.
 */
#include <criterion/criterion.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testmpi.h"
#include "testutil.h"
#include "trestle.h"

/* What rank 0 says of the parts of tp/n, by the way they travelled. */
#define PARTS_LINE "parts: 1 tensor (8.00 KiB) whose parts no rank reads alone: each read whole " \
                   "by one rank, its parts "
#define STAGED "broadcast through pinned host staging over MPI\n"
#define NCCL "broadcast by NCCL\n"

/* Rounds of 1000 bytes: tp/n's 8 KiB go in 9, cut inside rows and parts. */
#define SMALL_ROUNDS "TRESTLE_CUDAMOCK_PART_ROUND=1000"

/* The narrow fixture's tp/n (columns: no rank reads its part alone) and
 * tp/q (rows: each rank reads its own run), on np ranks with `env` and
 * `extra` options (NULL: host ranks, no --device). Each rank's parts equal
 * the reference slices; rank r reads its rows of q, and the owner of tp/n
 * (rank 0 of each scope: `scope` ranks each) reads it whole, so the job
 * reads the tensors once per scope; rank 0 prints `line` and no note. The
 * ranks' lines go to lines[np]; the caller frees *out and *err. */
static void run_narrow(const tm_narrow *f, int np, int scope, const char *env, const char *extra,
                       const char *line, tm_rank_line *lines, char **out, char **err)
{
    char *ops = tm_ops_file(f->dir, "tp/n\ntp/q\n"), *args;
    cr_assert(asprintf(&args, "'%s' --ops '%s' --checksum --shard 'tp/n:1' --shard 'tp/q:0' %s",
                       f->prefix, ops, extra ? extra : "") > 0);
    int rc = tm_mpirun(np, env, args, out, err);
    cr_assert_eq(rc, 0, "np %d %s: exit %d\n%s%s", np, args, rc, *out, *err);
    tm_parse_ranks(*out, np, lines);
    uint64_t sum = 0;
    for (int r = 0; r < np; r++) {
        int64_t s, qn;
        trestle_shard_part(TM_Q_ROWS, r, np, &s, &qn);
        uint64_t want = tm_fnv_part(tm_fnv_part(TM_FNV0, f->n, TM_N_ROWS, TM_N_COLS, 1, r, np),
                                    f->q, TM_Q_ROWS, TM_Q_COLS, 0, r, np);
        uint64_t read = (uint64_t)qn * TM_Q_COLS * 4 + (r % scope == 0 ? sizeof f->n : 0);
        cr_assert_eq(lines[r].parts, want, "np %d %s: rank %d's parts (device %d) differ from "
                     "the reference slices\n%s", np, args, r, lines[r].device, *out);
        cr_assert_eq(lines[r].read, read, "np %d %s: rank %d read %" PRIu64 " bytes, not %"
                     PRIu64 "\n%s", np, args, r, lines[r].read, read, *out);
        sum += lines[r].read;
    }
    cr_assert_eq(sum, (uint64_t)(np / scope) * sizeof f->n + sizeof f->q, "np %d: the tensors are "
                 "read once per scope", np);
    cr_assert(strstr(*out, line), "np %d %s: wanted '%s' in:\n%s", np, args, line, *out);
    cr_assert(!strstr(*out, "note: read"), "read once, no note:\n%s", *out);
    free(args);
    free(ops);
}

/* Rank r's line says it sent `sent` bytes and received `received` (under
 * 1 MiB, as the CLI writes sizes). */
static void check_moved(const char *out, int np, int r, uint64_t sent, uint64_t received)
{
    char head[32], want[96], s[32], v[32];
    const uint64_t b[2] = { sent, received };
    char *h[2] = { s, v };
    for (int k = 0; k < 2; k++)
        if (b[k] < 1024)
            snprintf(h[k], 32, "%" PRIu64 " B", b[k]);
        else
            snprintf(h[k], 32, "%.2f KiB", (double)b[k] / 1024);
    snprintf(head, sizeof head, "rank %d/%d: ", r, np);
    snprintf(want, sizeof want, "; sent %s, received %s in ", s, v);
    const char *line = strstr(out, head), *end = line ? strchr(line, '\n') : NULL;
    const char *got = line ? strstr(line, want) : NULL;
    cr_assert(got && got < end, "rank %d of %d: wanted '%s' in:\n%s", r, np, want, out);
}

/* Device ranks in scopes of `scope`: the owner of tp/n in each (its rank
 * 0) broadcast its scope's parts, and every other rank received them all. */
static void check_broadcast(const char *out, int np, int scope)
{
    for (int r = 0; r < np; r++) {
        uint64_t payload = 0;
        for (int q = r / scope * scope; q < (r / scope + 1) * scope; q++) {
            int64_t s, len;
            trestle_shard_part(TM_N_COLS, q, np, &s, &len);
            payload += (uint64_t)(TM_N_ROWS * len * 4);
        }
        if (scope == 1)
            payload = 0; /* alone: nothing to send */
        check_moved(out, np, r, r % scope == 0 ? payload : 0, r % scope == 0 ? 0 : payload);
    }
}

/* run_narrow on device ranks of the mock's two devices (rank i of a node
 * on device i % 2), staged, then the same job on host ranks: each rank's
 * parts and bytes read are the same. */
static void check_staged(const tm_narrow *f, int np, int scope, const char *env,
                         const char *extra)
{
    tm_rank_line dev[4], host[4];
    char *out, *err, *more, *full;
    const char *alone = "parts: 1 tensor (8.00 KiB) whose parts no rank reads alone: each read "
                        "whole by this rank, alone in its read-once scope\n";
    cr_assert(asprintf(&more, "--device local %s", extra ? extra : "") > 0);
    cr_assert(asprintf(&full, "%s %s", TM_MOCK_ENV, env ? env : "") > 0);
    run_narrow(f, np, scope, full, more, scope > 1 ? PARTS_LINE STAGED : alone, dev, &out, &err);
    for (int r = 0; r < np; r++)
        cr_assert_eq(dev[r].device, r % scope % 2, "rank %d restored to device %d", r,
                     dev[r].device);
    check_broadcast(out, np, scope);
    free(out);
    free(err);
    run_narrow(f, np, scope, NULL, extra, scope > 1 ? PARTS_LINE "sent over MPI\n" : alone, host,
               &out, &err);
    for (int r = 0; r < np; r++) {
        cr_assert_eq(dev[r].parts, host[r].parts, "rank %d: device and host parts differ", r);
        cr_assert_eq(dev[r].read, host[r].read, "rank %d: device and host reads differ", r);
        cr_assert_eq(host[r].device, -1);
    }
    free(out);
    free(err);
    free(more);
    free(full);
}

Test(mpi, narrow_parts_reach_device_ranks_through_staging_read_once_per_scope, .timeout = 300)
{
    tm_tool();
    tm_need_mock();
    tm_narrow f;
    tm_make_narrow(&f);
    check_staged(&f, 2, 2, NULL, NULL);
    check_staged(&f, 3, 3, NULL, NULL); /* ranks 0 and 2 share device 0 */
    check_staged(&f, 3, 3, SMALL_ROUNDS, NULL);
    check_staged(&f, 4, 4, SMALL_ROUNDS, "--exchange staged");
    /* Two simulated nodes of two: each node's rank 0 reads tp/n and sends
     * its node's two parts of the four, and nothing crosses between nodes. */
    check_staged(&f, 4, 2, SMALL_ROUNDS, "--simulate-nodes 2 --scope node");
    /* Alone on its node, a rank reads tp/n for its own part: once per node. */
    check_staged(&f, 2, 1, NULL, "--simulate-nodes 2 --scope node");
    tm_free_narrow(&f);
}

Test(mpi, partitioned_parts_reach_device_ranks_read_once, .timeout = 300)
{
    tm_tool();
    tm_need_mock();
    tm_narrow f;
    tm_make_narrow(&f);
    char *args, *out, *err, *ops = tm_ops_file(f.dir, "tp/emb\ntp/cols\n");
    /* tp/emb's two row slices split by columns: rank 0 reads both, once,
     * and the parts travel; tp/cols: each rank reads its own slice. */
    cr_assert(asprintf(&args, "'%s' --ops '%s' --checksum --device local --shard 'tp/*:1'",
                       f.prefix, ops) > 0);
    int rc = tm_mpirun(3, TM_MOCK_ENV " " SMALL_ROUNDS, args, &out, &err);
    cr_assert_eq(rc, 0, "exit %d\n%s%s", rc, out, err);
    tm_rank_line lines[3];
    tm_parse_ranks(out, 3, lines);
    for (int r = 0; r < 3; r++) {
        uint64_t want = tm_fnv_part(tm_fnv_part(TM_FNV0, f.emb, 12, 8, 1, r, 3), f.cols, 12, 9,
                                    1, r, 3);
        cr_assert_eq(lines[r].parts, want, "rank %d's parts differ\n%s", r, out);
        cr_assert_eq(lines[r].read, 12 * 3 * 4 + (r == 0 ? sizeof f.emb : 0), "rank %d read %"
                     PRIu64 "\n%s", r, lines[r].read, out);
    }
    cr_assert(strstr(out, "parts: 1 tensor (384 B) whose parts no rank reads alone: each read "
                          "whole by one rank, its parts " STAGED), "%s", out);
    cr_assert(!strstr(out, "note: read"), "%s", out);
    free(out);
    free(err);
    free(args);
    free(ops);
    tm_free_narrow(&f);
}

/* run_narrow on np ranks, one mock device each, through the mock NCCL in
 * rounds of `round` bytes (0: one round): rank 0, the owner, broadcast
 * tp/n's 8 KiB in ceil(8192 / round) broadcasts, every other rank took
 * part in each and received them all, and each group made one
 * communicator, which its restore of the rest reused. */
static void check_nccl(const tm_narrow *f, int np, int round)
{
    char *more, *env, *out, *err;
    cr_assert(asprintf(&more, "TRESTLE_CUDAMOCK_PART_ROUND=%d", round) > 0);
    env = tm_nccl_env(np, more);
    tm_rank_line lines[4];
    tm_nccl_line nl[4];
    run_narrow(f, np, np, env, "--device local", PARTS_LINE NCCL, lines, &out, &err);
    cr_assert(strstr(out, "exchange nccl: device destinations: NCCL broadcasts between the "
                          "devices\n"), "%s", out);
    tm_parse_nccl(err, np, nl);
    check_broadcast(out, np, np);
    uint64_t rounds = round ? (sizeof f->n + (uint64_t)round - 1) / (uint64_t)round : 1;
    for (int r = 0; r < np; r++) {
        char head[64];
        snprintf(head, sizeof head, "ncclmock: rank %d of %d on device %d: ", r, np, r);
        cr_assert_eq(tm_count(err, head), 1, "rank %d: one communicator\n%s", r, err);
        cr_assert_eq(lines[r].device, r);
        cr_assert_eq(nl[r].broadcasts, rounds, "rank %d: %" PRIu64 " broadcasts, not %" PRIu64,
                     r, nl[r].broadcasts, rounds);
        cr_assert_eq(nl[r].sent, r == 0 ? sizeof f->n : 0, "rank %d sent %" PRIu64, r,
                     nl[r].sent);
        cr_assert_eq(nl[r].received, r == 0 ? 0 : sizeof f->n, "rank %d received %" PRIu64, r,
                     nl[r].received);
    }
    free(more);
    free(env);
    free(out);
    free(err);
}

Test(mpi, narrow_parts_reach_device_ranks_through_the_mock_nccl_read_once, .timeout = 300)
{
    tm_need_ncclmock();
    tm_narrow f;
    tm_make_narrow(&f);
    check_nccl(&f, 2, 0);
    check_nccl(&f, 3, 0);
    check_nccl(&f, 3, 1000);
    tm_free_narrow(&f);
}

Test(mpi, parts_land_on_devices_after_the_callers_pending_work, .timeout = 300)
{
    tm_tool();
    tm_need_mock();
    tm_narrow f;
    tm_make_narrow(&f);
    /* tp/emb and tp/n by columns over 3 ranks: rank 0 reads tp/emb and
     * rank 1 tp/n (whole, into host memory), and the parts of both go
     * through the exchange, so no rank's own restore copies anything onto
     * its device (which would wait for the caller's stream, and so run its
     * memsets, first): each rank's buffers, zeroed on the caller's stream
     * just before the call, get their bytes from the exchange alone. */
    uint64_t received[3];
    tm_check_order(f.prefix, 3, "legacy", "tp/[en]*:1", received);
    for (int r = 0; r < 3; r++)
        cr_assert_gt(received[r], 0, "rank %d received no parts: the order is not tested", r);
    tm_check_order(f.prefix, 3, "stream", "tp/[en]*:1", NULL);
    tm_free_narrow(&f);
}
