/*
 * test_mpi_scope.c - the read-once scope of an MPI restore (trestle-mpi
 * --scope auto|group|node) on nodes simulated on this machine
 * (--simulate-nodes): node scope reads the checkpoint once per node,
 * group scope once for the job, AUTO says which it picked and why, a
 * corrupt byte on one node fails every rank of every node alike, and a
 * bad scope is a usage error.
 */
#include <criterion/criterion.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testmpi.h"
#include "testutil.h"
#include "trestle.h"

/* ---- read-once scope ---- */

/* np ranks on `nodes` simulated nodes with `extra` options: every rank's
 * tensors equal the reference, rank 0 says which scope and why, and the
 * ranks of each node read `per_node` times the checkpoint's extents
 * together (1: once per node; 0: the node's share of reading once for the
 * whole group). Returns the bytes all ranks read. */
static uint64_t check_scope(const char *path, int np, int nodes, const char *extra,
                            const char *scope_line, uint64_t *total)
{
    uint64_t maxx, want = tm_reference(path, NULL, 0, NULL, 0, total, &maxx);
    char *args, *out, *err;
    tm_rank_line lines[8];
    uint64_t node_read[8] = { 0 }, sum = 0;
    cr_assert(asprintf(&args, "'%s' --all --checksum --simulate-nodes %d %s", path, nodes,
                       extra) > 0);
    int rc = tm_mpirun(np, NULL, args, &out, &err);
    cr_assert_eq(rc, 0, "exit %d\n%s%s", rc, out, err);
    tm_parse_ranks(out, np, lines);
    for (int r = 0; r < np; r++) {
        cr_assert_eq(lines[r].whole, want, "rank %d of %d differs from one process", r, np);
        /* mpirun's by-slot placement: consecutive ranks share a node. */
        cr_assert_eq(lines[r].node, r * nodes / np, "rank %d says node %d", r, lines[r].node);
        node_read[lines[r].node] += lines[r].read;
        sum += lines[r].read;
    }
    cr_assert_eq(tm_count(out, scope_line), 1, "wanted '%s' once in:\n%s", scope_line, out);
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
    tm_tool();
    char *dir, *prefix = tm_make_multishard(&dir);
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
    tm_tool();
    const char *p = tu_fixture_present("tf-real/tfx_estimator_ckpt_2shards_2019");
    uint64_t total;
    uint64_t sum = check_scope(p, 4, 2, "--scope node", "scope node: ", &total);
    cr_assert_eq(sum, 2 * total);
}

Test(mpi, a_corrupt_byte_on_one_node_fails_every_rank_of_every_node_alike, .timeout = 300)
{
    tm_tool();
    /* Each simulated node reads the checkpoint once: node rank 1 of each
     * (ranks 1 and 3) meets the last extent, and the lowest, 1, speaks for
     * all; the first extent is node rank 0's (ranks 0 and 2). */
    tm_check_corrupt_on(-1, 1, 4, "--simulate-nodes 2 --scope node");
    tm_check_corrupt_on(0, 0, 4, "--simulate-nodes 2 --scope node");
}

Test(mpi, a_bad_scope_is_a_usage_error, .timeout = 60)
{
    tm_tool();
    char *out, *err;
    int rc = tm_mpirun(2, NULL, "x --scope rack", &out, &err);
    cr_assert_eq(rc, 2, "exit %d\n%s%s", rc, out, err);
    cr_assert_eq(tm_count(err, "--scope is auto, group or node, not 'rack'"), 1, "%s", err);
    free(out);
    free(err);
}
