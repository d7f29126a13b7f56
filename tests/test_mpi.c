/*
 * test_mpi.c - a checkpoint restored by a group of MPI processes
 * (libtrestle_mpi through trestle-mpi), run as `mpirun --oversubscribe -np N`
 * on this machine into host memory: every rank's tensors are byte-identical
 * to a single-process restore, storage bytes are read once in all and about
 * 1/N per rank, tensor-parallel parts equal reference slices, failures on
 * one rank fail every rank alike, and a killed rank ends the job in bounded
 * time. Skips with a reason when MPI was not found at build time. In CUDA
 * mock builds, device ranks restore onto mock GPUs and exchange by pinned
 * staging or through the mock NCCL (tests/cudamock/ncclmock.c).
 *
 * References are computed here, in this process, with libtrestle and
 * element-by-element slices: each rank prints FNV-1a checksums of its
 * whole tensors and of its parts (--checksum), and its bytes read.
 */
#include <criterion/criterion.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "plan_shard.h"
#include "testutil.h"
#include "trestle.h"

static const char *tool(void)
{
    if (!TRESTLE_MPI_PATH[0] || access(TRESTLE_MPI_PATH, X_OK) != 0 || !TRESTLE_MPIEXEC[0])
        cr_skip("MPI was not found at build time: libtrestle_mpi and trestle-mpi are not built "
                "(install libopenmpi-dev openmpi-bin, scripts/deps.sh does)");
    return TRESTLE_MPI_PATH;
}

/* Run `mpirun -np N PROG SUB ARGS` with extra environment. */
static int mpirun_sub(const char *t, int np, const char *env, const char *sub, const char *args,
                      char **out, char **err)
{
    char *cmd;
    /* Under ASan (scripts/check.sh asan) the ranks check leaks, except Open
     * MPI's own, which it keeps past MPI_Finalize on purpose; its plugins
     * stay loaded so that the suppressions can name their frames. */
    cr_assert(asprintf(&cmd, "env OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 "
                             "OMPI_MCA_mca_base_component_disable_dlclose=1 "
                             "LSAN_OPTIONS=suppressions=%s/tests/lsan_mpi.supp:"
                             "print_suppressions=0 "
                             "ASAN_OPTIONS=\"$ASAN_OPTIONS:fast_unwind_on_malloc=0\" "
                             "%s timeout 120 %s --oversubscribe -np %d %s %s %s",
                       TRESTLE_SOURCE_DIR, env ? env : "", TRESTLE_MPIEXEC, np, t, sub,
                       args) > 0);
    int rc = tu_run(cmd, out, err);
    free(cmd);
    return rc;
}

/* Run `mpirun -np N PROG restore ARGS` with extra environment. */
static int mpirun_prog(const char *t, int np, const char *env, const char *args, char **out,
                       char **err)
{
    return mpirun_sub(t, np, env, "restore", args, out, err);
}

/* The same with trestle-mpi. */
static int mpirun(int np, const char *env, const char *args, char **out, char **err)
{
    return mpirun_prog(tool(), np, env, args, out, err);
}

/* ---- references ---- */

static uint64_t fnv(uint64_t h, const uint8_t *p, uint64_t n)
{
    for (uint64_t k = 0; k < n; k++)
        h = (h ^ p[k]) * 1099511628211ull;
    return h;
}
#define FNV0 1469598103934665603ull

/* FNV of a single-process restore of `ops` (NULL: every tensor). */
static uint64_t reference(const char *path, const trestle_op *ops, size_t n,
                          const char *const *renames, size_t nrenames, uint64_t *extent_bytes,
                          uint64_t *max_extent)
{
    trestle_checkpoint *c;
    trestle_plan *p;
    trestle_error err;
    trestle_plan_options po;
    trestle_plan_options_init(&po);
    po.renames = renames;
    po.num_renames = nrenames;
    c = tu_open(path, NULL);
    p = tu_plan(c, ops, n, &po);
    cr_assert_eq(trestle_restore(p, NULL, NULL, &err), TRESTLE_OK, "%s", err.message);
    uint64_t h = FNV0;
    for (size_t i = 0; i < trestle_plan_op_count(p); i++) {
        trestle_plan_op_info o;
        trestle_plan_get_op(p, i, &o);
        if (o.data)
            h = fnv(h, o.data, o.bytes);
    }
    if (extent_bytes) {
        *extent_bytes = *max_extent = 0;
        for (size_t e = 0; e < trestle_plan_extent_count(p); e++) {
            trestle_plan_extent_info x;
            trestle_plan_get_extent(p, e, &x);
            *extent_bytes += x.size;
            if (x.size > *max_extent)
                *max_extent = x.size;
        }
    }
    trestle_plan_free(p);
    trestle_close(c);
    return h;
}

/* Each rank's "rank R/N checksum: whole H parts H read B" line. */
typedef struct rank_line {
    int seen;
    uint64_t whole, parts, read;
    int node;                   /* the node it says it is on */
    int device;                 /* the GPU it restored to, -1 for host memory */
} rank_line;

static void parse_ranks(const char *out, int np, rank_line *lines)
{
    memset(lines, 0, (size_t)np * sizeof *lines);
    for (const char *s = out; s && *s; s = strchr(s, '\n') ? strchr(s, '\n') + 1 : NULL) {
        int r, n, node = -1, device = -1;
        uint64_t w, p, b;
        if (sscanf(s, "rank %d/%d checksum: whole %" SCNx64 " parts %" SCNx64 " read %" SCNu64
                   " node %d device %d", &r, &n, &w, &p, &b, &node, &device) >= 5) {
            cr_assert(n == np && r >= 0 && r < np, "bad line: %.80s", s);
            cr_assert(!lines[r].seen, "rank %d printed twice", r);
            lines[r] = (rank_line){ 1, w, p, b, node, device };
        }
    }
    for (int r = 0; r < np; r++)
        cr_assert(lines[r].seen, "rank %d printed no checksum line in:\n%s", r, out);
}

/* ---- checkpoints ---- */

/* The suites' mixed checkpoint (testutil.h): 30 tensors over 3 shards. */
static char *make_multishard(char **dir)
{
    *dir = tu_mkdtemp();
    return tu_write_mixed(*dir, 30, 3);
}

/* Replicated restore of every tensor on np ranks equals the reference,
 * and storage bytes are read once in all, about 1/np per rank. */
static void check_replicated(const char *path, int np)
{
    uint64_t total, maxx;
    uint64_t want = reference(path, NULL, 0, NULL, 0, &total, &maxx);
    char *args, *out, *err;
    rank_line lines[8];
    cr_assert(asprintf(&args, "'%s' --all --checksum", path) > 0);
    int rc = mpirun(np, NULL, args, &out, &err);
    cr_assert_eq(rc, 0, "np %d: exit %d\n%s%s", np, rc, out, err);
    parse_ranks(out, np, lines);
    uint64_t sum = 0;
    for (int r = 0; r < np; r++) {
        cr_assert_eq(lines[r].whole, want, "%s: rank %d of %d differs from one process", path, r,
                     np);
        cr_assert_eq(lines[r].parts, FNV0, "no tensor-parallel parts without --shard");
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
    tool();
    char *dir, *prefix = make_multishard(&dir);
    for (int np = 2; np <= 4; np++)
        check_replicated(prefix, np);
    tu_rmtree(dir);
    free(dir);
    free(prefix);
}

Test(mpi, real_tensorflow_checkpoints_restore_identically, .timeout = 300)
{
    tool();
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

/* ---- tensor parallelism ---- */

/* The checkpoint of the tensor-parallel tests: keys model/attn/q/kernel
 * [10,7] (uneven over 3 and 4), model/mlp/wo/kernel [8,12] (even over 4),
 * model/norm/scale [9]; each kept for the reference slices. */
typedef struct tp_fixture {
    char *dir, *prefix;
    float q[70], wo[96], scale[9];
} tp_fixture;

static void free_tp(tp_fixture *f)
{
    tu_rmtree(f->dir);
    free(f->dir);
    free(f->prefix);
}

static void make_tp(tp_fixture *f)
{
    trestle_writer_options wo;
    trestle_writer *w;
    trestle_error err;
    f->dir = tu_mkdtemp();
    cr_assert(asprintf(&f->prefix, "%s/tp", f->dir) > 0);
    tu_fill_random(f->q, sizeof f->q, 11);
    tu_fill_random(f->wo, sizeof f->wo, 12);
    tu_fill_random(f->scale, sizeof f->scale, 13);
    trestle_writer_options_init(&wo);
    wo.num_shards = 2;
    cr_assert_eq(trestle_writer_create(f->prefix, &wo, &w, &err), TRESTLE_OK);
    static const int64_t qd[] = { 10, 7 }, wd[] = { 8, 12 }, sd[] = { 9 };
    cr_assert_eq(trestle_writer_add(w, "model/attn/q/kernel", TRESTLE_DT_FLOAT, 2, qd, f->q,
                                    sizeof f->q, 0, &err), TRESTLE_OK);
    cr_assert_eq(trestle_writer_add(w, "model/mlp/wo/kernel", TRESTLE_DT_FLOAT, 2, wd, f->wo,
                                    sizeof f->wo, 1, &err), TRESTLE_OK);
    cr_assert_eq(trestle_writer_add(w, "model/norm/scale", TRESTLE_DT_FLOAT, 1, sd, f->scale,
                                    sizeof f->scale, 1, &err), TRESTLE_OK);
    cr_assert_eq(trestle_writer_finish(w, &err), TRESTLE_OK);
    trestle_writer_free(w);
}

/* FNV of rank r's parts: q split along dim 0, wo along dim 1, in key order. */
static uint64_t tp_parts(const tp_fixture *f, int r, int np)
{
    static const int64_t qd[] = { 10, 7 }, wd[] = { 8, 12 };
    uint8_t buf[sizeof f->wo];
    int64_t s, n;
    uint64_t h = FNV0;
    trestle_shard_part(10, r, np, &s, &n);
    int64_t qs[] = { s, 0 }, ql[] = { n, 7 };
    tu_ref_slice((const uint8_t *)f->q, qd, 2, qs, ql, 4, buf);
    h = fnv(h, buf, (uint64_t)(n * 7 * 4));
    trestle_shard_part(12, r, np, &s, &n);
    int64_t ws[] = { 0, s }, wl[] = { 8, n };
    tu_ref_slice((const uint8_t *)f->wo, wd, 2, ws, wl, 4, buf);
    return fnv(h, buf, (uint64_t)(8 * n * 4));
}

static void check_tp_env(tp_fixture *f, int np, const char *env, const char *args,
                         uint64_t whole)
{
    char *out, *err;
    rank_line lines[8];
    int rc = mpirun(np, env, args, &out, &err);
    cr_assert_eq(rc, 0, "np %d: exit %d\n%s%s", np, rc, out, err);
    parse_ranks(out, np, lines);
    for (int r = 0; r < np; r++) {
        cr_assert_eq(lines[r].parts, tp_parts(f, r, np), "rank %d of %d: parts differ from the "
                     "reference slices", r, np);
        cr_assert_eq(lines[r].whole, whole, "rank %d of %d: the replicated tensor differs", r, np);
    }
    free(out);
    free(err);
}

static void check_tp(tp_fixture *f, int np, const char *args, uint64_t whole)
{
    check_tp_env(f, np, NULL, args, whole);
}

Test(mpi, tensor_parallel_parts_equal_reference_slices_even_and_uneven, .timeout = 300)
{
    tool();
    tp_fixture f;
    make_tp(&f);
    trestle_op norm = { .name = "model/norm/scale" };
    uint64_t whole = reference(f.prefix, &norm, 1, NULL, 0, NULL, NULL);
    char *args;
    cr_assert(asprintf(&args, "'%s' --all --checksum --shard 'model/attn/*:0' "
                              "--shard 'model/mlp/*:1'", f.prefix) > 0);
    check_tp(&f, 3, args, whole);
    check_tp(&f, 4, args, whole);
    free(args);
    free_tp(&f);
}

Test(mpi, renames_and_shard_rules_together, .timeout = 300)
{
    tool();
    tp_fixture f;
    make_tp(&f);
    /* The graph calls them net/...: rules are written against those names. */
    char *ops, *args;
    cr_assert(asprintf(&ops, "%s/ops.txt", f.dir) > 0);
    static const char text[] = "net/attn/q/kernel\nnet/mlp/wo/kernel\nnet/norm/scale\n";
    cr_assert_eq(tu_write_file(ops, text, strlen(text)), 0);
    const char *renames[] = { "net/=model/" };
    trestle_op norm = { .name = "net/norm/scale" };
    uint64_t whole = reference(f.prefix, &norm, 1, renames, 1, NULL, NULL);
    cr_assert(asprintf(&args, "'%s' --ops '%s' --rename net/=model/ --checksum "
                              "--shard 'net/attn/*:0' --shard 'net/mlp/*:1'", f.prefix, ops) > 0);
    check_tp(&f, 2, args, whole);
    check_tp(&f, 3, args, whole);
    free(args);
    free(ops);
    free_tp(&f);
}

/* ---- failures ---- */

/* Occurrences of needle in hay. */
static int count(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *s = hay; (s = strstr(s, needle)); s += strlen(needle))
        n++;
    return n;
}

/* Flip a byte in the middle of extent `which` (-1: the last) of a fresh
 * multi-shard checkpoint; restoring it on np ranks (with `extra` options)
 * must fail every rank with rank `owner`'s CRC error, the same line np
 * times. */
static void check_corrupt_env(long which, int owner, int np, const char *env,
                              const char *extra)
{
    char *dir, *prefix = make_multishard(&dir), *args, *out, *err, *shard;
    trestle_checkpoint *c;
    trestle_plan *p;
    c = tu_open(prefix, NULL);
    p = tu_plan(c, NULL, 0, NULL);
    size_t n = trestle_plan_extent_count(p);
    trestle_plan_extent_info x;
    trestle_plan_get_extent(p, which < 0 ? n - 1 : (size_t)which, &x);
    char key[256];
    snprintf(key, sizeof key, "%s", x.key);
    cr_assert(asprintf(&shard, "%s", trestle_shard_path(c, x.shard)) > 0);
    trestle_plan_free(p);
    trestle_close(c);
    tu_flip_byte(shard, (size_t)(x.offset + x.size / 2), 0x5a);

    cr_assert(asprintf(&args, "'%s' --all %s", prefix, extra) > 0);
    int rc = mpirun(np, env, args, &out, &err);
    cr_assert_neq(rc, 0, "a corrupt checkpoint restored:\n%s", out);
    char want[512];
    snprintf(want, sizeof want, "trestle: rank %d of %d: CRC32C mismatch in tensor '%s' (shard "
             "%s, offset %" PRIu64 ",", owner, np, key, shard, x.offset);
    cr_assert_eq(count(err, want), np, "every rank reports rank %d's error; wanted %d x '%s' "
                 "in:\n%s", owner, np, want, err);
    cr_assert(!strstr(out, "group of "), "no aggregate after a failure:\n%s", out);
    free(args);
    free(out);
    free(err);
    free(shard);
    tu_rmtree(dir);
    free(dir);
    free(prefix);
}

static void check_corrupt_on(long which, int owner, int np, const char *extra)
{
    check_corrupt_env(which, owner, np, NULL, extra);
}

static void check_corrupt(long which, int owner)
{
    check_corrupt_on(which, owner, 3, "");
}

Test(mpi, a_corrupt_byte_in_one_ranks_part_fails_every_rank_alike, .timeout = 300)
{
    tool();
    check_corrupt(-1, 2); /* the last rank's part: found after most of the exchange */
    check_corrupt(0, 0);  /* the first rank's first tensor: the exchange stops early */
}

Test(mpi, a_missing_key_fails_every_rank_alike, .timeout = 300)
{
    tool();
    tp_fixture f;
    make_tp(&f);
    char *ops, *args, *out, *err;
    cr_assert(asprintf(&ops, "%s/ops.txt", f.dir) > 0);
    static const char text[] = "model/attn/q/kernel\nmodel/norm/scales\n";
    cr_assert_eq(tu_write_file(ops, text, strlen(text)), 0);
    cr_assert(asprintf(&args, "'%s' --ops '%s'", f.prefix, ops) > 0);
    int rc = mpirun(2, NULL, args, &out, &err);
    cr_assert_neq(rc, 0);
    cr_assert_eq(count(err, "trestle: rank 0 of 2: Key model/norm/scales not found in checkpoint "
                            "(did you mean model/norm/scale?)"), 2, "%s", err);
    free(ops);
    free(args);
    free(out);
    free(err);
    free_tp(&f);
}

Test(mpi, a_bad_shard_rule_fails_every_rank_alike_even_matching_nothing, .timeout = 300)
{
    tool();
    tp_fixture f;
    make_tp(&f);
    char *args, *out, *err;
    cr_assert(asprintf(&args, "'%s' --all --shard 'model/attn/*:0' --shard 'x'", f.prefix) > 0);
    int rc = mpirun(2, NULL, args, &out, &err);
    cr_assert_neq(rc, 0);
    cr_assert_eq(count(err, "trestle: rank 0 of 2: shard rule 1 (x) is not of the form GLOB:DIM"),
                 2, "%s", err);
    free(args);
    free(out);
    free(err);
    cr_assert(asprintf(&args, "'%s' --all --shard 'model/norm/*:1'", f.prefix) > 0);
    rc = mpirun(2, NULL, args, &out, &err);
    cr_assert_neq(rc, 0);
    cr_assert_eq(count(err, "trestle: rank 0 of 2: tensor 'model/norm/scale' has rank 1: shard "
                            "rule 'model/norm/*:1' names dimension 1"), 2, "%s", err);
    free(args);
    free(out);
    free(err);
    free_tp(&f);
}

Test(mpi, a_killed_rank_ends_the_others_within_30_s, .timeout = 300)
{
    tool();
    char *dir, *prefix = make_multishard(&dir), *args, *out, *err;
    struct timespec t0, t1;
    cr_assert(asprintf(&args, "'%s' --all", prefix) > 0);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int rc = mpirun(3, "TRESTLE_MPI_TEST_KILL_RANK=1", args, &out, &err);
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
    tool();
    tp_fixture f;
    make_tp(&f);
    char *args, *out, *err;
    cr_assert(asprintf(&args, "'%s' --all --checksum --shard 'model/mlp/*:1'", f.prefix) > 0);
    int rc = mpirun_prog(TRESTLE_CLI_PATH, 2, NULL, args, &out, &err);
    cr_assert_eq(rc, 0, "%s%s", out, err);
    cr_assert_eq(count(out, " checksum: whole "), 2, "%s", out);
    cr_assert_eq(count(out, "group of 2: read "), 1, "%s", out);
    free(args);
    free(out);
    free(err);
    /* --group none: each process restores alone, as without mpirun. */
    cr_assert(asprintf(&args, "'%s' --all --group none", f.prefix) > 0);
    rc = mpirun_prog(TRESTLE_CLI_PATH, 2, NULL, args, &out, &err);
    cr_assert_eq(rc, 0, "%s%s", out, err);
    cr_assert_eq(count(out, "restored 3 tensors"), 2, "%s", out);
    cr_assert_eq(count(out, "group of"), 0, "%s", out);
    free(args);
    free(out);
    free(err);
    free_tp(&f);
}

/* ---- the group bench ---- */

/* `trestle bench` under mpirun runs the group bench: the checkpoint is read
 * once in all and each rank receives the (N-1)/N it did not read; figures
 * come with both ceilings. Speeds are not asserted (benchmarks carry them). */
Test(mpi, trestle_bench_under_mpirun_reads_once_and_gives_both_ceilings, .timeout = 300)
{
    tool();
    for (int np = 2; np <= 3; np++) {
        char *out, *err;
        int rc = mpirun_sub(TRESTLE_CLI_PATH, np, NULL, "bench",
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
        cr_assert_eq(count(out, "{\"ranks\""), 1, "rank 0 alone prints: %s", out);
        free(out);
        free(err);
    }
    /* The table names both ceilings. */
    char *out, *err;
    cr_assert_eq(mpirun_sub(TRESTLE_CLI_PATH, 2, NULL, "bench", "--synthetic 4M,2 --repeat 1",
                            &out, &err), 0, "%s%s", out, err);
    cr_assert(strstr(out, "group restore of "), "%s", out);
    cr_assert(strstr(out, "  storage "), "%s", out);
    cr_assert(strstr(out, "  exchange "), "%s", out);
    free(out);
    free(err);
}

/* ---- read-once scope ---- */

/* np ranks on `nodes` simulated nodes with `extra` options: every rank's
 * tensors equal the reference, rank 0 says which scope and why, and the
 * ranks of each node read `per_node` times the checkpoint's extents
 * together (1: once per node; 0: the node's share of reading once for the
 * whole group). Returns the bytes all ranks read. */
static uint64_t check_scope(const char *path, int np, int nodes, const char *extra,
                            const char *scope_line, uint64_t *total)
{
    uint64_t maxx, want = reference(path, NULL, 0, NULL, 0, total, &maxx);
    char *args, *out, *err;
    rank_line lines[8];
    uint64_t node_read[8] = { 0 }, sum = 0;
    cr_assert(asprintf(&args, "'%s' --all --checksum --simulate-nodes %d %s", path, nodes,
                       extra) > 0);
    int rc = mpirun(np, NULL, args, &out, &err);
    cr_assert_eq(rc, 0, "exit %d\n%s%s", rc, out, err);
    parse_ranks(out, np, lines);
    for (int r = 0; r < np; r++) {
        cr_assert_eq(lines[r].whole, want, "rank %d of %d differs from one process", r, np);
        /* mpirun's by-slot placement: consecutive ranks share a node. */
        cr_assert_eq(lines[r].node, r * nodes / np, "rank %d says node %d", r, lines[r].node);
        node_read[lines[r].node] += lines[r].read;
        sum += lines[r].read;
    }
    cr_assert_eq(count(out, scope_line), 1, "wanted '%s' once in:\n%s", scope_line, out);
    if (strstr(scope_line, "scope node"))
        for (int k = 0; k < nodes; k++)
            cr_assert_eq(node_read[k], *total, "node %d read %" PRIu64 " bytes, the checkpoint's "
                         "extents are %" PRIu64, k, node_read[k], *total);
    free(args);
    free(out);
    free(err);
    return sum;
}

Test(mpi, node_scope_reads_the_checkpoint_once_per_simulated_node, .timeout = 300)
{
    tool();
    char *dir, *prefix = make_multishard(&dir);
    uint64_t total;
    /* A temporary directory is on a local file system: AUTO picks node. */
    uint64_t sum = check_scope(prefix, 4, 2, "", "scope node: 2 nodes and the checkpoint is on ",
                               &total);
    cr_assert_eq(sum, 2 * total, "4 ranks on 2 nodes read %" PRIu64 ", not twice %" PRIu64, sum,
                 total);
    sum = check_scope(prefix, 4, 2, "--scope node", "scope node: asked for: each byte read once "
                      "on each of 2 nodes\n", &total);
    cr_assert_eq(sum, 2 * total);
    /* group: once for the job, exchanged across the simulated nodes. */
    sum = check_scope(prefix, 4, 2, "--scope group", "scope group: asked for: each byte read "
                      "once by the group of 4 ranks on 2 nodes\n", &total);
    cr_assert_eq(sum, total);
    /* Uneven nodes: 3 ranks on 2 nodes (2 + 1), and the lone rank reads all. */
    sum = check_scope(prefix, 3, 2, "", "scope node: 2 nodes", &total);
    cr_assert_eq(sum, 2 * total);
    /* One node: both scopes are the same. */
    sum = check_scope(prefix, 2, 1, "", "scope group: all 2 ranks are on one node, where both "
                      "scopes are the same\n", &total);
    cr_assert_eq(sum, total);
    tu_rmtree(dir);
    free(dir);
    free(prefix);
}

Test(mpi, node_scope_real_tensorflow_checkpoint_restores_identically, .timeout = 300)
{
    tool();
    const char *p = tu_fixture_present("tf-real/tfx_estimator_ckpt_2shards_2019");
    uint64_t total;
    uint64_t sum = check_scope(p, 4, 2, "--scope node", "scope node: ", &total);
    cr_assert_eq(sum, 2 * total);
}

Test(mpi, a_corrupt_byte_on_one_node_fails_every_rank_of_every_node_alike, .timeout = 300)
{
    tool();
    /* Each simulated node reads the checkpoint once: node rank 1 of each
     * (ranks 1 and 3) meets the last extent, and the lowest, 1, speaks for
     * all; the first extent is node rank 0's (ranks 0 and 2). */
    check_corrupt_on(-1, 1, 4, "--simulate-nodes 2 --scope node");
    check_corrupt_on(0, 0, 4, "--simulate-nodes 2 --scope node");
}

Test(mpi, a_bad_scope_is_a_usage_error, .timeout = 60)
{
    tool();
    char *out, *err;
    int rc = mpirun(2, NULL, "x --scope rack", &out, &err);
    cr_assert_eq(rc, 2, "exit %d\n%s%s", rc, out, err);
    cr_assert_eq(count(err, "--scope is auto, group or node, not 'rack'"), 1, "%s", err);
    free(out);
    free(err);
}

/* ---- tensor-parallel parts read only their bytes ---- */

/* Two tensors split across ranks, big enough that reading whole shows:
 * "tp/q" [48,256] float along dim 0 (one run per rank) and "tp/w"
 * [24,4096] float along dim 1 (one 16 KiB-row run per row per rank, rows
 * far more than trestle-mpi's 4 KiB gap apart). */
#define TPQ_ROWS 48
#define TPQ_COLS 256
#define TPW_ROWS 24
#define TPW_COLS 4096

static char *make_tp_big(char **dir, uint64_t *q_offset, uint64_t *w_offset, char **q_shard)
{
    trestle_writer_options wo;
    trestle_writer *w;
    trestle_error err;
    trestle_checkpoint *c;
    char *prefix;
    size_t qn = TPQ_ROWS * TPQ_COLS, wn = TPW_ROWS * TPW_COLS;
    float *q = malloc(qn * 4), *wt = malloc(wn * 4);
    *dir = tu_mkdtemp();
    cr_assert(asprintf(&prefix, "%s/tpbig", *dir) > 0);
    tu_fill_random(q, qn * 4, 21);
    tu_fill_random(wt, wn * 4, 22);
    trestle_writer_options_init(&wo);
    wo.num_shards = 2;
    cr_assert_eq(trestle_writer_create(prefix, &wo, &w, &err), TRESTLE_OK);
    static const int64_t qd[] = { TPQ_ROWS, TPQ_COLS }, wd[] = { TPW_ROWS, TPW_COLS };
    cr_assert_eq(trestle_writer_add(w, "tp/q", TRESTLE_DT_FLOAT, 2, qd, q, qn * 4, 0, &err),
                 TRESTLE_OK);
    cr_assert_eq(trestle_writer_add(w, "tp/w", TRESTLE_DT_FLOAT, 2, wd, wt, wn * 4, 1, &err),
                 TRESTLE_OK);
    cr_assert_eq(trestle_writer_finish(w, &err), TRESTLE_OK);
    trestle_writer_free(w);
    c = tu_open(prefix, NULL);
    trestle_tensor_info ti;
    size_t i;
    cr_assert_eq(trestle_tensor_find(c, "tp/q", &i, NULL), TRESTLE_OK);
    trestle_tensor_get_info(c, i, &ti);
    *q_offset = ti.offset;
    cr_assert(asprintf(q_shard, "%s", trestle_shard_path(c, ti.shard)) > 0);
    cr_assert_eq(trestle_tensor_find(c, "tp/w", &i, NULL), TRESTLE_OK);
    trestle_tensor_get_info(c, i, &ti);
    *w_offset = ti.offset;
    trestle_close(c);
    free(q);
    free(wt);
    return prefix;
}

Test(mpi, tensor_parallel_ranks_read_about_1_over_n_of_the_parts_bytes, .timeout = 300)
{
    tool();
    uint64_t qo, wo;
    char *dir, *qs, *prefix = make_tp_big(&dir, &qo, &wo, &qs), *args;
    cr_assert(asprintf(&args, "'%s' --all --checksum --shard 'tp/q:0' --shard 'tp/w:1'",
                       prefix) > 0);
    const uint64_t total = (TPQ_ROWS * TPQ_COLS + TPW_ROWS * TPW_COLS) * 4ull;
    for (int np = 2; np <= 3; np++) {
        char *out, *err;
        rank_line lines[4];
        int rc = mpirun(np, NULL, args, &out, &err);
        cr_assert_eq(rc, 0, "np %d: exit %d\n%s%s", np, rc, out, err);
        parse_ranks(out, np, lines);
        uint64_t sum = 0;
        for (int r = 0; r < np; r++) {
            int64_t s, n, s2, n2;
            trestle_shard_part(TPQ_ROWS, r, np, &s, &n);
            trestle_shard_part(TPW_COLS, r, np, &s2, &n2);
            uint64_t part = (uint64_t)(n * TPQ_COLS + TPW_ROWS * n2) * 4;
            cr_assert_eq(lines[r].read, part, "np %d rank %d read %" PRIu64 " bytes, its parts "
                         "are %" PRIu64 " of %" PRIu64, np, r, lines[r].read, part, total);
            sum += lines[r].read;
        }
        cr_assert_eq(sum, total, "np %d: the parts are read once in all", np);
        cr_assert(strstr(out, "bytes read per rank: 0: "), "rank 0 lists each rank:\n%s", out);
        cr_assert(strstr(out, "CRC32C checked across the"), "parts say how they were checked:\n%s",
                  out);
        free(out);
        free(err);
    }
    free(args);
    free(qs);
    tu_rmtree(dir);
    free(dir);
    free(prefix);
}

/* ---- device ranks (the CUDA mock: two devices, in each rank's process) ---- */

#define MOCK_ENV "TRESTLE_CUDAMOCK_DEVICES=2"

/* Device ranks need the mock build (scripts/check.sh cudamock); a CUDA build
 * on a machine without a GPU has nothing to run them on. */
static void need_mock(void)
{
#if !TRESTLE_HAVE_CUDA || !defined(TRESTLE_CUDA_MOCK)
    cr_skip("device ranks run on the CUDA mock (-DTRESTLE_CUDA_MOCK=ON), and this build has none");
#endif
}

/* np ranks restore `path` with `env` and `extra` onto their mock devices
 * (--device local): each rank's tensors, read back from device memory,
 * equal a single-process host restore. Fills lines[np] and *total (the
 * checkpoint's extent bytes); the caller frees *out and *err. */
static void run_device_ranks(const char *path, int np, const char *env, const char *extra,
                             rank_line *lines, uint64_t *total, char **out, char **err)
{
    uint64_t maxx, want = reference(path, NULL, 0, NULL, 0, total, &maxx);
    char *args;
    cr_assert(asprintf(&args, "'%s' --all --checksum --device local %s", path,
                       extra ? extra : "") > 0);
    int rc = mpirun(np, env, args, out, err);
    cr_assert_eq(rc, 0, "np %d: exit %d\n%s%s", np, rc, *out, *err);
    parse_ranks(*out, np, lines);
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
    rank_line lines[8];
    run_device_ranks(path, np, MOCK_ENV, extra, lines, &total, &out, &err);
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
    tool();
    need_mock();
    char *dir, *prefix = make_multishard(&dir);
    check_device_ranks(prefix, 2, 1, "");
    check_device_ranks(prefix, 3, 1, "");            /* ranks 0 and 2 share device 0 */
    check_device_ranks(prefix, 2, 1, "--exchange staged");
    tu_rmtree(dir);
    free(dir);
    free(prefix);
    /* A real two-shard checkpoint: a skip without ../shared, a failure in CI. */
    check_device_ranks(tu_fixture_present("tf-real/tfkeras_lso_ckpt_2shards"), 2, 1, "");
}

Test(mpi, a_corrupt_byte_in_a_tensor_parallel_part_fails_every_rank_alike, .timeout = 300)
{
    tool();
    uint64_t qo, wo;
    char *dir, *qs, *prefix = make_tp_big(&dir, &qo, &wo, &qs), *args;
    /* Row 40 of tp/q: rank 1's part with 2 ranks, rank 2's with 3. No
     * rank can see it alone: only the shares' combination. */
    tu_flip_byte(qs, (size_t)(qo + (40 * TPQ_COLS + 3) * 4), 0x5a);
    cr_assert(asprintf(&args, "'%s' --all --shard 'tp/q:0' --shard 'tp/w:1'", prefix) > 0);
    for (int np = 2; np <= 3; np++) {
        char *out, *err, want[512];
        int rc = mpirun(np, NULL, args, &out, &err);
        cr_assert_neq(rc, 0, "np %d: a corrupt part restored:\n%s", np, out);
        snprintf(want, sizeof want, "trestle: CRC32C of tensor 'tp/q' (shard %s, offset %" PRIu64
                 ") over the %d ranks' parts does not match", qs, qo, np);
        cr_assert_eq(count(err, want), np, "np %d: every rank reports it; wanted %d x '%s' in:\n%s",
                     np, np, want, err);
        cr_assert(!strstr(out, "group of"), "no aggregate after a failure:\n%s", out);
        free(out);
        free(err);
    }
    free(args);
    free(qs);
    tu_rmtree(dir);
    free(dir);
    free(prefix);
}

Test(mpi, device_ranks_with_node_scope_and_tensor_parallel_parts, .timeout = 300)
{
    tool();
    need_mock();
    char *dir, *prefix = make_multishard(&dir);
    /* Two simulated nodes of two: each node's ranks on devices 0 and 1. */
    check_device_ranks(prefix, 4, 2, "--simulate-nodes 2 --scope node");
    tu_rmtree(dir);
    free(dir);
    free(prefix);
    tp_fixture f;
    make_tp(&f);
    trestle_op norm = { .name = "model/norm/scale" };
    uint64_t whole = reference(f.prefix, &norm, 1, NULL, 0, NULL, NULL);
    char *args;
    cr_assert(asprintf(&args, "'%s' --all --checksum --device local --shard 'model/attn/*:0' "
                              "--shard 'model/mlp/*:1'", f.prefix) > 0);
    check_tp_env(&f, 3, MOCK_ENV, args, whole);
    free(args);
    free_tp(&f);
}

Test(mpi, a_corrupt_byte_fails_both_device_ranks_alike, .timeout = 300)
{
    tool();
    need_mock();
    check_corrupt_env(-1, 1, 2, MOCK_ENV, "--device local");
    check_corrupt_env(0, 0, 2, MOCK_ENV, "--device local");
}

/* ---- device ranks over NCCL: the mock NCCL (tests/cudamock/ncclmock.c) ---- */

/* The mock NCCL's path; skips where the mock or MPI is absent. */
static const char *need_ncclmock(void)
{
    tool();
    need_mock();
    if (!TRESTLE_NCCLMOCK_PATH[0] || access(TRESTLE_NCCLMOCK_PATH, R_OK) != 0)
        cr_skip("the mock NCCL is built only in CUDA mock builds with MPI");
    return TRESTLE_NCCLMOCK_PATH;
}

/* The environment of ranks that exchange through the mock NCCL on
 * `devices` mock devices: windows of 4000 bytes, so that every broadcast
 * goes in many chunks, one partial; counters printed; then `extra`. */
static char *nccl_env(int devices, const char *extra)
{
    char *env;
    cr_assert(asprintf(&env, "TRESTLE_CUDAMOCK_DEVICES=%d TRESTLE_CUDAMOCK_NCCL='%s' "
                             "TRESTLE_NCCLMOCK_CHUNK=4000 TRESTLE_NCCLMOCK_STATS=1 %s",
                       devices, need_ncclmock(), extra ? extra : "") > 0);
    return env;
}

/* Each rank's "ncclmock: rank R of N on device D: B broadcasts, S bytes
 * sent, V bytes received" line (at ncclCommDestroy). */
typedef struct nccl_line {
    int seen, device;
    uint64_t broadcasts, sent, received;
} nccl_line;

static void parse_nccl(const char *err, int np, nccl_line *v)
{
    memset(v, 0, (size_t)np * sizeof *v);
    for (const char *s = err; s && *s; s = strchr(s, '\n') ? strchr(s, '\n') + 1 : NULL) {
        int r, n, d;
        uint64_t b, snt, rcv;
        if (sscanf(s, "ncclmock: rank %d of %d on device %d: %" SCNu64 " broadcasts, %" SCNu64
                   " bytes sent, %" SCNu64 " bytes received", &r, &n, &d, &b, &snt, &rcv) == 6) {
            cr_assert(n == np && r >= 0 && r < np && !v[r].seen, "bad line: %.100s", s);
            v[r] = (nccl_line){ 1, d, b, snt, rcv };
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
    rank_line lines[8];
    nccl_line nl[8];
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
    need_ncclmock();
    char *dir, *prefix = make_multishard(&dir);
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
    rank_line lines[8];
    nccl_line nl[8];
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
    need_ncclmock();
    char *dir, *prefix = make_multishard(&dir);
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
    int rc = mpirun(np, env, args, &out, &err);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    cr_assert_neq(rc, 0, "a failed broadcast restored:\n%s", out);
    cr_assert_eq(count(err, want), np, "every rank fails alike; wanted %d x '%s' in:\n%s", np,
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
    need_ncclmock();
    char *dir, *prefix = make_multishard(&dir);
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

Test(mpi, device_ranks_without_cuda_fail_every_rank_alike, .timeout = 120)
{
    tool();
#if TRESTLE_HAVE_CUDA
    cr_skip("this build has CUDA (or its mock): --device local is tested on the mock");
#else
    char *dir, *prefix = make_multishard(&dir), *args, *out, *err;
    cr_assert(asprintf(&args, "'%s' --all --device local", prefix) > 0);
    int rc = mpirun(2, NULL, args, &out, &err);
    cr_assert_neq(rc, 0);
    cr_assert_eq(count(err, "trestle: rank 0 of 2: this build of trestle has no CUDA support: "
                            "--device local needs one"), 2, "%s", err);
    free(args);
    free(out);
    free(err);
    tu_rmtree(dir);
    free(dir);
    free(prefix);
#endif
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
    tool();
    char *out, *err;
    int rc = mpirun_sub(TRESTLE_CLI_PATH, 4, NULL, "bench",
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
    rc = mpirun_sub(TRESTLE_CLI_PATH, 4, NULL, "bench",
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
    tool();
    need_mock();
    char *out, *err;
    int rc = mpirun_sub(TRESTLE_CLI_PATH, 2, MOCK_ENV, "bench",
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
        rc = mpirun_sub(TRESTLE_CLI_PATH, np, MOCK_ENV, "bench",
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
 * rank's mock NCCL counters show the ceiling's own comm (made after the
 * restore's, so printed after it): three runs of one broadcast per root,
 * each rank sending its 1/N of the checkpoint's bytes each run and
 * receiving the rest. */
Test(mpi, trestle_bench_exchange_ceiling_goes_through_the_mock_nccl, .timeout = 300)
{
    const char *nccl = need_ncclmock();
    for (int np = 2; np <= 3; np++) {
        char *env, *out, *err;
        cr_assert(asprintf(&env, "TRESTLE_CUDAMOCK_DEVICES=%d TRESTLE_CUDAMOCK_NCCL='%s' "
                                 "TRESTLE_NCCLMOCK_STATS=1", np, nccl) > 0);
        int rc = mpirun_sub(TRESTLE_CLI_PATH, np, env, "bench",
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
        nccl_line last[8];
        memset(last, 0, sizeof last);
        for (const char *s = err; s && *s; s = strchr(s, '\n') ? strchr(s, '\n') + 1 : NULL) {
            int r, n, d;
            uint64_t b, snt, rcv;
            if (sscanf(s, "ncclmock: rank %d of %d on device %d: %" SCNu64 " broadcasts, %"
                       SCNu64 " bytes sent, %" SCNu64 " bytes received", &r, &n, &d, &b, &snt,
                       &rcv) == 6 && n == np && r >= 0 && r < np)
                last[r] = (nccl_line){ last[r].seen + 1, d, b, snt, rcv };
        }
        for (int r = 0; r < np; r++) {
            uint64_t lo = total / (uint64_t)np * (uint64_t)r;
            uint64_t hi = r + 1 == np ? total : total / (uint64_t)np * (uint64_t)(r + 1);
            cr_assert_eq(last[r].seen, 2, "np %d: rank %d: a comm for the restore and one for "
                         "the ceiling, not %d:\n%s", np, r, last[r].seen, err);
            cr_assert_eq(last[r].device, r, "rank %d's ceiling on device %d", r, last[r].device);
            cr_assert_eq(last[r].broadcasts, 3 * (uint64_t)np, "np %d rank %d: %" PRIu64
                         " broadcasts", np, r, last[r].broadcasts);
            cr_assert_eq(last[r].sent, 3 * (hi - lo), "np %d rank %d sent %" PRIu64, np, r,
                         last[r].sent);
            cr_assert_eq(last[r].received, 3 * (total - (hi - lo)), "np %d rank %d received %"
                         PRIu64, np, r, last[r].received);
        }
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
    tool();
    need_mock();
    char *out, *err;
    const char *env = MOCK_ENV " TRESTLE_CUDAMOCK_DEVICE_BYTES=0,16000000 "
                      "TRESTLE_MPI_TEST_CEILING_BYTES=20000000";
    int rc = mpirun_sub(TRESTLE_CLI_PATH, 2, env, "bench",
                        "--synthetic 4M,2 --repeat 1 --device local", &out, &err);
    cr_assert_eq(rc, 0, "%s%s", out, err);
    cr_assert(strstr(out, "group restore of "), "%s", out);
    cr_assert(strstr(out, "\n  exchange       n/a       n/a: rank 1 of 2: cannot allocate "
                          "20000000 bytes on CUDA device 1 for the exchange ceiling: out of "
                          "memory\n"), "%s", out);
    free(out);
    free(err);
    rc = mpirun_sub(TRESTLE_CLI_PATH, 2, env, "bench",
                    "--synthetic 4M,2 --repeat 1 --device local --json", &out, &err);
    cr_assert_eq(rc, 0, "%s%s", out, err);
    const char *j = strstr(out, "{\"ranks\"");
    cr_assert(j, "%s", out);
    cr_assert_eq(json_double(j, "exchange_ceiling_gbps"), -1.0, "%s", j);
    cr_assert_gt(json_double(j, "delivered_gbps"), 0, "%s", j);
    free(out);
    free(err);
}
