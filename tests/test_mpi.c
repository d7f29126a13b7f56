/*
 * test_mpi.c - a checkpoint restored by a group of MPI processes
 * (libtrestle_mpi through trestle-mpi), run as `mpirun --oversubscribe -np N`
 * on this machine into host memory: every rank's tensors are byte-identical
 * to a single-process restore, storage bytes are read once in all and about
 * 1/N per rank, failures on one rank fail every rank alike, a killed rank
 * ends the job in bounded time, and `trestle restore` under mpirun hands
 * over to trestle-mpi. Skips with a reason when MPI was not found at build
 * time. The other MPI suites: test_mpi_parts.c (tensor-parallel parts),
 * test_mpi_scope.c (read-once scope), test_mpi_device.c (device ranks),
 * test_mpi_bench.c (the group bench); their shared harness is testmpi.h.
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

/* ---- replicated restore ---- */

/* Replicated restore of every tensor on np ranks equals the reference,
 * and storage bytes are read once in all, about 1/np per rank. */
static void check_replicated(const char *path, int np)
{
    uint64_t total, maxx;
    uint64_t want = tm_reference(path, NULL, 0, NULL, 0, &total, &maxx);
    char *args, *out, *err;
    tm_rank_line lines[8];
    cr_assert(asprintf(&args, "'%s' --all --checksum", path) > 0);
    int rc = tm_mpirun(np, NULL, args, &out, &err);
    cr_assert_eq(rc, 0, "np %d: exit %d\n%s%s", np, rc, out, err);
    tm_parse_ranks(out, np, lines);
    uint64_t sum = 0;
    for (int r = 0; r < np; r++) {
        cr_assert_eq(lines[r].whole, want, "%s: rank %d of %d differs from one process", path, r,
                     np);
        cr_assert_eq(lines[r].parts, TM_FNV0, "no tensor-parallel parts without --shard");
        /* Whole extents: a rank's share is 1/np give or take the largest. */
        cr_assert_leq(lines[r].read, total / (uint64_t)np + maxx, "%s: rank %d read %" PRIu64
                      " of %" PRIu64, path, r, lines[r].read, total);
        cr_assert_geq(lines[r].read + maxx, total / (uint64_t)np, "%s: rank %d read only %"
                      PRIu64 " of %" PRIu64, path, r, lines[r].read, total);
        sum += lines[r].read;
    }
    cr_assert_eq(sum, total, "%s: the ranks read %" PRIu64 " bytes, the checkpoint's extents "
                 "are %" PRIu64, path, sum, total);
    char want_line[32];
    snprintf(want_line, sizeof want_line, "group of %d: read ", np);
    cr_assert(strstr(out, want_line), "no aggregate line:\n%s", out);
    free(args);
    free(out);
    free(err);
}

Test(mpi, replicated_restore_is_byte_identical_on_2_3_and_4_ranks, .timeout = 300)
{
    tm_tool();
    char *dir, *prefix = tm_make_multishard(&dir);
    for (int np = 2; np <= 4; np++)
        check_replicated(prefix, np);
    tu_rmtree(dir);
    free(dir);
    free(prefix);
}

Test(mpi, real_tensorflow_checkpoints_restore_identically, .timeout = 300)
{
    tm_tool();
    /* Multi-shard ones first: their parts span shard boundaries. */
    static const char *dirs[] = { "tf-real/t2t_transformer_test_ckpt",
                                  "tf-real/tfx_estimator_ckpt_2shards_2019",
                                  "tf-real/tfkeras_lso_ckpt_2shards",
                                  "tf-real/tf2onnx_regression_ckpt",
                                  "tf-real/deepchem_qm7_graphconv" };
    /* Each must be there: a missing one skips, or fails under CI=true. */
    for (size_t d = 0; d < sizeof dirs / sizeof dirs[0]; d++)
        check_replicated(tu_fixture_present(dirs[d]), 2 + (int)(d % 3));
}

/* ---- failures ---- */

static void check_corrupt(long which, int owner)
{
    tm_check_corrupt_on(which, owner, 3, "");
}

Test(mpi, a_corrupt_byte_in_one_ranks_part_fails_every_rank_alike, .timeout = 300)
{
    tm_tool();
    check_corrupt(-1, 2); /* the last rank's part: found after most of the exchange */
    check_corrupt(0, 0);  /* the first rank's first tensor: the exchange stops early */
}

Test(mpi, a_missing_key_fails_every_rank_alike, .timeout = 300)
{
    tm_tool();
    tm_tp_fixture f;
    tm_make_tp(&f);
    char *ops, *args, *out, *err;
    cr_assert(asprintf(&ops, "%s/ops.txt", f.dir) > 0);
    static const char text[] = "model/attn/q/kernel\nmodel/norm/scales\n";
    cr_assert_eq(tu_write_file(ops, text, strlen(text)), 0);
    cr_assert(asprintf(&args, "'%s' --ops '%s'", f.prefix, ops) > 0);
    int rc = tm_mpirun(2, NULL, args, &out, &err);
    cr_assert_neq(rc, 0);
    cr_assert_eq(tm_count(err, "trestle: rank 0 of 2: Key model/norm/scales not found in "
                               "checkpoint (did you mean model/norm/scale?)"), 2, "%s", err);
    free(ops);
    free(args);
    free(out);
    free(err);
    tm_free_tp(&f);
}

Test(mpi, a_bad_shard_rule_fails_every_rank_alike_even_matching_nothing, .timeout = 300)
{
    tm_tool();
    tm_tp_fixture f;
    tm_make_tp(&f);
    char *args, *out, *err;
    cr_assert(asprintf(&args, "'%s' --all --shard 'model/attn/*:0' --shard 'x'", f.prefix) > 0);
    int rc = tm_mpirun(2, NULL, args, &out, &err);
    cr_assert_neq(rc, 0);
    cr_assert_eq(tm_count(err, "trestle: rank 0 of 2: shard rule 1 (x) is not of the form "
                               "GLOB:DIM"), 2, "%s", err);
    free(args);
    free(out);
    free(err);
    cr_assert(asprintf(&args, "'%s' --all --shard 'model/norm/*:1'", f.prefix) > 0);
    rc = tm_mpirun(2, NULL, args, &out, &err);
    cr_assert_neq(rc, 0);
    cr_assert_eq(tm_count(err, "trestle: rank 0 of 2: tensor 'model/norm/scale' has rank 1: shard "
                               "rule 'model/norm/*:1' names dimension 1"), 2, "%s", err);
    free(args);
    free(out);
    free(err);
    tm_free_tp(&f);
}

Test(mpi, a_killed_rank_ends_the_others_within_30_s, .timeout = 300)
{
    tm_tool();
    char *dir, *prefix = tm_make_multishard(&dir), *args, *out, *err;
    struct timespec t0, t1;
    cr_assert(asprintf(&args, "'%s' --all", prefix) > 0);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int rc = tm_mpirun(3, "TRESTLE_MPI_TEST_KILL_RANK=1", args, &out, &err);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9;
    cr_assert_neq(rc, 0, "the job succeeded with a dead rank:\n%s", out);
    cr_assert_lt(s, 30.0, "the surviving ranks took %.1f s to end", s);
    cr_assert(strstr(err, "rank 1") && strstr(err, "signal 9"), "mpirun names the dead rank:\n%s",
              err);
    cr_assert(!strstr(out, "group of 3"), "no aggregate after a failure:\n%s", out);
    free(args);
    free(out);
    free(err);
    tu_rmtree(dir);
    free(dir);
    free(prefix);
}

/* ---- the trestle CLI under mpirun ---- */

Test(mpi, trestle_restore_under_mpirun_hands_over_to_trestle_mpi, .timeout = 300)
{
    tm_tool();
    tm_tp_fixture f;
    tm_make_tp(&f);
    char *args, *out, *err;
    cr_assert(asprintf(&args, "'%s' --all --checksum --shard 'model/mlp/*:1'", f.prefix) > 0);
    int rc = tm_mpirun_prog(TRESTLE_CLI_PATH, 2, NULL, args, &out, &err);
    cr_assert_eq(rc, 0, "%s%s", out, err);
    cr_assert_eq(tm_count(out, " checksum: whole "), 2, "%s", out);
    cr_assert_eq(tm_count(out, "group of 2: read "), 1, "%s", out);
    free(args);
    free(out);
    free(err);
    /* --group none: each process restores alone, as without mpirun. */
    cr_assert(asprintf(&args, "'%s' --all --group none", f.prefix) > 0);
    rc = tm_mpirun_prog(TRESTLE_CLI_PATH, 2, NULL, args, &out, &err);
    cr_assert_eq(rc, 0, "%s%s", out, err);
    cr_assert_eq(tm_count(out, "restored 3 tensors"), 2, "%s", out);
    cr_assert_eq(tm_count(out, "group of"), 0, "%s", out);
    free(args);
    free(out);
    free(err);
    tm_free_tp(&f);
}
