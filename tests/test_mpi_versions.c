/*
 * test_mpi_versions.c - ranks that read different versions of one
 * checkpoint: node-local copies of two saves with the same names, shapes
 * and layout but other values. Each rank is given its own copy's path (as
 * each node's disk would hold its own), and the ranks must compare the
 * versions (trestle_checkpoint_identity(): the .index file's size and
 * CRC-32C) and fail every rank alike, naming each version and its ranks,
 * both for replicated tensors (trestle_group_restore()) and for
 * tensor-parallel parts (trestle_group_check_shares()), where the mix would
 * otherwise be blamed on a corrupt byte or go unnoticed. Identical copies
 * at different paths restore as one.
 */
#include <criterion/criterion.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "testmpi.h"
#include "testutil.h"
#include "trestle.h"

#define W_ROWS 64
#define W_COLS 16

/* DIR/rK/ckpt: model/w [64,16] on shard 0 and model/b [16] on shard 1, of
 * float values drawn from `seed`: every seed gives the same layout. */
static void write_copy(const char *dir, int k, uint64_t seed)
{
    char sub[4096], prefix[4200];
    float w[W_ROWS * W_COLS], b[W_COLS];
    trestle_writer_options wo;
    trestle_writer *wr;
    trestle_error err;
    snprintf(sub, sizeof sub, "%s/r%d", dir, k);
    cr_assert_eq(mkdir(sub, 0700), 0);
    snprintf(prefix, sizeof prefix, "%s/ckpt", sub);
    tu_fill_random(w, sizeof w, seed);
    tu_fill_random(b, sizeof b, seed + 1000);
    trestle_writer_options_init(&wo);
    wo.num_shards = 2;
    cr_assert_eq(trestle_writer_create(prefix, &wo, &wr, &err), TRESTLE_OK, "%s", err.message);
    static const int64_t wd[] = { W_ROWS, W_COLS }, bd[] = { W_COLS };
    cr_assert_eq(trestle_writer_add(wr, "model/w", TRESTLE_DT_FLOAT, 2, wd, w, sizeof w, 0, &err),
                 TRESTLE_OK);
    cr_assert_eq(trestle_writer_add(wr, "model/b", TRESTLE_DT_FLOAT, 1, bd, b, sizeof b, 1, &err),
                 TRESTLE_OK);
    cr_assert_eq(trestle_writer_finish(wr, &err), TRESTLE_OK, "%s", err.message);
    trestle_writer_free(wr);
}

/* "N bytes with CRC32C 0x..." of copy k, as the message words it. */
static void identity_text(const char *dir, int k, char *buf, size_t cap)
{
    char prefix[4200];
    uint64_t bytes;
    uint32_t crc;
    snprintf(prefix, sizeof prefix, "%s/r%d/ckpt", dir, k);
    trestle_checkpoint *c = tu_open(prefix, NULL);
    cr_assert_eq(trestle_checkpoint_identity(c, &bytes, &crc), TRESTLE_OK);
    snprintf(buf, cap, "%" PRIu64 " bytes with CRC32C 0x%08" PRIx32, bytes, crc);
    trestle_close(c);
}

/* np ranks, rank r reading copy r (written from seeds[r]) with `extra`
 * options: every rank fails alike, the same line np times, naming two
 * versions: copy `a`'s on ranks `a_ranks`, copy `b`'s on `b_ranks` (as the
 * message lists them). */
static void check_versions_fail(int np, const uint64_t *seeds, const char *extra, int a,
                                const char *a_ranks, int b, const char *b_ranks)
{
    char *dir = tu_mkdtemp(), head[4200], *out, *err, line[2200], ia[128], ib[128];
    for (int r = 0; r < np; r++)
        write_copy(dir, r, seeds[r]);
    snprintf(head, sizeof head, "%s/r", dir);
    int rc = tm_mpirun_per_rank(np, head, "/ckpt", extra, &out, &err);
    cr_assert_eq(rc, 1, "two versions restored (exit %d):\n%s%s", rc, out, err);
    identity_text(dir, a, ia, sizeof ia);
    identity_text(dir, b, ib, sizeof ib);
    snprintf(line, sizeof line, "trestle: the ranks read 2 different versions of the checkpoint "
             "(their .index files differ): %s on %s; %s on %s. Every rank must read the same "
             "files: a node-local copy that differs from the others mixes two versions\n", ia,
             a_ranks, ib, b_ranks);
    cr_assert_eq(tm_count(err, line), np, "every rank names the versions; wanted %d x '%s' "
                 "in:\n%s", np, line, err);
    cr_assert(!strstr(out, "group of"), "no aggregate after a failure:\n%s", out);
    free(out);
    free(err);
    tu_rmtree(dir);
    free(dir);
}

/* Ranks 0 and 1 hold one save, ranks 2 and 3 another: two nodes, two versions. */
static const uint64_t two_nodes[] = { 1, 1, 2, 2 };

Test(mpi, ranks_reading_two_versions_of_a_checkpoint_fail_alike_naming_them, .timeout = 300)
{
    tm_tool();
    check_versions_fail(4, two_nodes, "--all --checksum", 0, "ranks 0, 1", 2, "ranks 2, 3");
}

Test(mpi, tensor_parallel_parts_of_two_versions_fail_alike_naming_them, .timeout = 300)
{
    tm_tool();
    /* Column parts of model/w, read by each rank from its own copy: their
     * shares would combine to neither version's CRC32C. */
    check_versions_fail(4, two_nodes, "--all --checksum --shard 'model/w:1'", 0, "ranks 0, 1", 2,
                        "ranks 2, 3");
    /* Row parts too, whose every byte a rank reads itself. */
    check_versions_fail(4, two_nodes, "--all --checksum --shard 'model/w:0' --no-verify", 0,
                        "ranks 0, 1", 2, "ranks 2, 3");
}

Test(mpi, one_rank_with_another_version_is_named, .timeout = 300)
{
    tm_tool();
    /* Rank 1 alone holds another save than ranks 0 and 2. */
    static const uint64_t seeds[] = { 5, 6, 5 };
    check_versions_fail(3, seeds, "--all", 0, "ranks 0, 2", 1, "rank 1");
}

Test(mpi, identical_copies_at_different_paths_restore_as_one, .timeout = 300)
{
    tm_tool();
    char *dir = tu_mkdtemp(), head[4200], ref[4200], *out, *err;
    for (int r = 0; r < 3; r++)
        write_copy(dir, r, 7);
    snprintf(head, sizeof head, "%s/r", dir);
    snprintf(ref, sizeof ref, "%s/r0/ckpt", dir);
    uint64_t want = tm_reference(ref, NULL, 0, NULL, 0, NULL, NULL);
    int rc = tm_mpirun_per_rank(3, head, "/ckpt", "--all --checksum", &out, &err);
    cr_assert_eq(rc, 0, "exit %d\n%s%s", rc, out, err);
    tm_rank_line lines[3];
    tm_parse_ranks(out, 3, lines);
    for (int r = 0; r < 3; r++)
        cr_assert_eq(lines[r].whole, want, "rank %d differs from one process", r);
    free(out);
    free(err);
    tu_rmtree(dir);
    free(dir);
}
