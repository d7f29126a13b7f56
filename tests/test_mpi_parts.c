/*
 * test_mpi_parts.c - tensor-parallel parts over MPI (trestle-mpi --shard
 * GLOB:DIM under mpirun): each rank's parts equal reference slices, even
 * and uneven, also through renames; each rank reads only about 1/N of the
 * parts' bytes; and a corrupt byte that no rank can see alone, only the
 * combination of the ranks' CRC32C shares, fails every rank alike. Parts
 * no rank can read alone (a narrow tensor split by columns, a partitioned
 * variable split across its slices) are read once by one rank, exact bytes
 * per rank, and rank 0 notes a job that reads more than 1.1x.
 */
#include <criterion/criterion.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testmpi.h"
#include "testutil.h"
#include "trestle.h"

/* ---- tensor parallelism ---- */

static void check_tp(tm_tp_fixture *f, int np, const char *args, uint64_t whole)
{
    tm_check_tp_env(f, np, NULL, args, whole);
}

Test(mpi, tensor_parallel_parts_equal_reference_slices_even_and_uneven, .timeout = 300)
{
    tm_tool();
    tm_tp_fixture f;
    tm_make_tp(&f);
    trestle_op norm = { .name = "model/norm/scale" };
    uint64_t whole = tm_reference(f.prefix, &norm, 1, NULL, 0, NULL, NULL);
    char *args;
    cr_assert(asprintf(&args, "'%s' --all --checksum --shard 'model/attn/*:0' "
                              "--shard 'model/mlp/*:1'", f.prefix) > 0);
    check_tp(&f, 3, args, whole);
    check_tp(&f, 4, args, whole);
    free(args);
    tm_free_tp(&f);
}

Test(mpi, renames_and_shard_rules_together, .timeout = 300)
{
    tm_tool();
    tm_tp_fixture f;
    tm_make_tp(&f);
    /* The graph calls them net/...: rules are written against those names. */
    char *ops, *args;
    cr_assert(asprintf(&ops, "%s/ops.txt", f.dir) > 0);
    static const char text[] = "net/attn/q/kernel\nnet/mlp/wo/kernel\nnet/norm/scale\n";
    cr_assert_eq(tu_write_file(ops, text, strlen(text)), 0);
    const char *renames[] = { "net/=model/" };
    trestle_op norm = { .name = "net/norm/scale" };
    uint64_t whole = tm_reference(f.prefix, &norm, 1, renames, 1, NULL, NULL);
    cr_assert(asprintf(&args, "'%s' --ops '%s' --rename net/=model/ --checksum "
                              "--shard 'net/attn/*:0' --shard 'net/mlp/*:1'", f.prefix, ops) > 0);
    check_tp(&f, 2, args, whole);
    check_tp(&f, 3, args, whole);
    free(args);
    free(ops);
    tm_free_tp(&f);
}

/* ---- tensor-parallel parts read only their bytes ---- */

/* Two tensors split across ranks, big enough that reading whole shows:
 * "tp/q" [48,256] float along dim 0 (one run per rank) and "tp/w"
 * [24,4096] float along dim 1 (one 16 KiB-row run per row per rank, rows
 * far more than trestle-mpi's 4 KiB gap apart). */
#define TPQ_ROWS TM_Q_ROWS /* the narrow fixture's tp/q too */
#define TPQ_COLS TM_Q_COLS
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
    tm_tool();
    uint64_t qo, wo;
    char *dir, *qs, *prefix = make_tp_big(&dir, &qo, &wo, &qs), *args;
    cr_assert(asprintf(&args, "'%s' --all --checksum --shard 'tp/q:0' --shard 'tp/w:1'",
                       prefix) > 0);
    const uint64_t total = (TPQ_ROWS * TPQ_COLS + TPW_ROWS * TPW_COLS) * 4ull;
    for (int np = 2; np <= 3; np++) {
        char *out, *err;
        tm_rank_line lines[4];
        int rc = tm_mpirun(np, NULL, args, &out, &err);
        cr_assert_eq(rc, 0, "np %d: exit %d\n%s%s", np, rc, out, err);
        tm_parse_ranks(out, np, lines);
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

Test(mpi, a_corrupt_byte_in_a_tensor_parallel_part_fails_every_rank_alike, .timeout = 300)
{
    tm_tool();
    uint64_t qo, wo;
    char *dir, *qs, *prefix = make_tp_big(&dir, &qo, &wo, &qs), *args;
    /* Row 40 of tp/q: rank 1's part with 2 ranks, rank 2's with 3. No
     * rank can see it alone: only the shares' combination. */
    tu_flip_byte(qs, (size_t)(qo + (40 * TPQ_COLS + 3) * 4), 0x5a);
    cr_assert(asprintf(&args, "'%s' --all --shard 'tp/q:0' --shard 'tp/w:1'", prefix) > 0);
    for (int np = 2; np <= 3; np++) {
        char *out, *err, want[512];
        int rc = tm_mpirun(np, NULL, args, &out, &err);
        cr_assert_neq(rc, 0, "np %d: a corrupt part restored:\n%s", np, out);
        snprintf(want, sizeof want, "trestle: CRC32C of tensor 'tp/q' (shard %s, offset %" PRIu64
                 ") over the %d ranks' parts does not match", qs, qo, np);
        cr_assert_eq(tm_count(err, want), np, "np %d: every rank reports it; wanted %d x '%s' "
                     "in:\n%s", np, np, want, err);
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

/* ---- parts that no rank can read alone: read once, whole, by one rank ---- */

/* Run np ranks with `args`; each rank's parts FNV must be want[r] and its
 * bytes read read[r]; returns rank 0's output (malloc'd). */
static char *run_parts(int np, const char *args, const uint64_t *want, const uint64_t *read)
{
    char *out, *err;
    tm_rank_line lines[4];
    int rc = tm_mpirun(np, NULL, args, &out, &err);
    cr_assert_eq(rc, 0, "np %d: exit %d\n%s%s", np, rc, out, err);
    tm_parse_ranks(out, np, lines);
    for (int r = 0; r < np; r++) {
        cr_assert_eq(lines[r].parts, want[r], "rank %d of %d: parts differ from the reference "
                     "slices\n%s", r, np, out);
        cr_assert_eq(lines[r].read, read[r], "rank %d of %d read %" PRIu64 " bytes, not %" PRIu64
                     "\n%s", r, np, lines[r].read, read[r], out);
    }
    cr_assert(!strstr(out, "note: read"), "the parts are read once, no note:\n%s", out);
    free(err);
    return out;
}

Test(mpi, a_narrow_column_split_is_read_once_by_one_rank_that_sends_the_parts, .timeout = 300)
{
    tm_tool();
    tm_narrow f;
    tm_make_narrow(&f);
    char *args, *ops = tm_ops_file(f.dir, "tp/n\ntp/q\n");
    cr_assert(asprintf(&args, "'%s' --ops '%s' --checksum --shard 'tp/n:1' --shard 'tp/q:0'",
                       f.prefix, ops) > 0);
    for (int np = 2; np <= 4; np++) {
        uint64_t want[4], read[4];
        for (int r = 0; r < np; r++) {
            int64_t s, qn;
            trestle_shard_part(TPQ_ROWS, r, np, &s, &qn);
            want[r] = tm_fnv_part(tm_fnv_part(TM_FNV0, f.n, TM_N_ROWS, TM_N_COLS, 1, r, np), f.q,
                                  TPQ_ROWS, TPQ_COLS, 0, r, np);
            /* Its own rows of q; rank 0 owns n, the only shared tensor,
             * and reads it whole, once for all. */
            read[r] = (uint64_t)qn * TPQ_COLS * 4 + (r == 0 ? sizeof f.n : 0);
        }
        char *out = run_parts(np, args, want, read);
        char line[256];
        snprintf(line, sizeof line, "parts: 1 tensor (8.00 KiB) whose parts no rank reads alone: "
                 "each read whole by one rank, its parts sent over MPI\n");
        cr_assert(strstr(out, line), "np %d: wanted '%s' in:\n%s", np, line, out);
        free(out);
    }
    /* Two ranks alone on their nodes, reading once per node: each owns n in
     * its scope and takes its own part of it, sending nothing. */
    char *alone;
    cr_assert(asprintf(&alone, "%s --simulate-nodes 2 --scope node", args) > 0);
    uint64_t want[2], read[2];
    for (int r = 0; r < 2; r++) {
        int64_t s, qn;
        trestle_shard_part(TPQ_ROWS, r, 2, &s, &qn);
        want[r] = tm_fnv_part(tm_fnv_part(TM_FNV0, f.n, TM_N_ROWS, TM_N_COLS, 1, r, 2), f.q,
                              TPQ_ROWS, TPQ_COLS, 0, r, 2);
        read[r] = (uint64_t)qn * TPQ_COLS * 4 + sizeof f.n;
    }
    free(run_parts(2, alone, want, read));
    free(alone);
    free(args);
    free(ops);
    tm_free_narrow(&f);
}

Test(mpi, partitioned_variables_are_read_once_whatever_the_split, .timeout = 300)
{
    tm_tool();
    tm_narrow f;
    tm_make_narrow(&f);
    char *args, *ops = tm_ops_file(f.dir, "tp/emb\ntp/cols\n");
    /* tp/emb's row slices split by columns: every part meets both slices,
     * so rank 0 reads both, once, and sends the parts. tp/cols's column
     * slices split by columns over 3 ranks: each rank reads its own slice
     * and nothing travels. */
    cr_assert(asprintf(&args, "'%s' --ops '%s' --checksum --shard 'tp/*:1'", f.prefix, ops) > 0);
    uint64_t want[3], read[3];
    for (int r = 0; r < 3; r++) {
        want[r] = tm_fnv_part(tm_fnv_part(TM_FNV0, f.emb, 12, 8, 1, r, 3), f.cols, 12, 9, 1, r, 3);
        read[r] = 12 * 3 * 4 + (r == 0 ? sizeof f.emb : 0);
    }
    char *out = run_parts(3, args, want, read);
    cr_assert(strstr(out, "parts: 1 tensor (384 B) whose parts no rank reads alone"), "%s", out);
    free(out);
    free(args);
    free(ops);
    tm_free_narrow(&f);
}

Test(mpi, a_tensor_restored_both_whole_and_in_parts_gets_a_note, .timeout = 300)
{
    tm_tool();
    tm_narrow f;
    tm_make_narrow(&f);
    char *args, *out, *err, *ops = tm_ops_file(f.dir, "tp/n\nnet/n\n");
    /* tp/n is asked for twice, whole (as net/n, which no rule matches) and
     * in parts: the group reads it once for the first, its owner once more
     * for the second. */
    cr_assert(asprintf(&args, "'%s' --ops '%s' --rename net/n=tp/n --shard 'tp/n:1'", f.prefix,
                       ops) > 0);
    int rc = tm_mpirun(2, NULL, args, &out, &err);
    cr_assert_eq(rc, 0, "exit %d\n%s%s", rc, out, err);
    cr_assert_eq(tm_count(out, "note: read 16.00 KiB from storage in all, 2.00x the 8.00 KiB "
                               "the tensors take: tensor 'tp/n' is restored both whole and in "
                               "parts, and each is read on its own\n"), 1, "%s", out);
    free(out);
    free(err);
    free(args);
    free(ops);
    tm_free_narrow(&f);
}
