/*
 * test_plan_part.c - the parts of a plan that a group of processes shares
 * (engine/plan/plan_part.c): extents, the destination runs each produces, and
 * plans kept to a range of extents. A group is played here in one process:
 * N plans of the same ops, each kept to its range and restored, whose runs
 * are then copied into one result, must give exactly the bytes of one
 * whole restore, for whole, sliced, partitioned, converted and string
 * tensors.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "trestle.h"

/* The suites' mixed checkpoint (testutil.h): 12 tensors over 3 shards. */
static char *make_checkpoint(char **dir)
{
    *dir = tu_mkdtemp();
    return tu_write_mixed(*dir, 12, 3);
}

/* The ops: everything whole, a slice of one kernel, the partitioned
 * variable in a slice that crosses its parts, one converted to bfloat16. */
static const trestle_op OPS[] = {
    { .name = "model/layer00/attn/kernel" },
    { .name = "model/layer00/mlp/kernel", .target_dtype = TRESTLE_DT_BFLOAT16 },
    { .name = "model/layer00/norm/kernel" },
    { .name = "model/layer01/attn/kernel", .shape_and_slices = "127 67 3,17:2,5" },
    { .name = "model/layer01/mlp/kernel" },
    { .name = "model/layer01/norm/kernel" },
    { .name = "model/layer02/attn/kernel" },
    { .name = "model/layer02/mlp/kernel" },
    { .name = "model/layer02/norm/kernel" },
    { .name = "model/layer03/attn/kernel" },
    { .name = "model/layer03/mlp/kernel" },
    { .name = "model/layer03/norm/kernel" },
    { .name = "model/emb", .shape_and_slices = "50 8 5,30:1,4" },
    { .name = "model/emb" },
    { .name = "model/vocab" },
};
#define NOPS (sizeof OPS / sizeof OPS[0])

typedef struct copy_ctx {
    const trestle_plan *from;
    uint8_t **to;      /* per op: the assembled result */
    uint64_t *covered; /* per op: bytes the runs covered */
} copy_ctx;

static int copy_run(void *user, size_t op, uint64_t offset, uint64_t length)
{
    copy_ctx *c = user;
    trestle_plan_op_info info;
    cr_assert_eq(trestle_plan_get_op(c->from, op, &info), TRESTLE_OK);
    cr_assert_leq(offset + length, info.bytes, "op %zu: run [%llu, +%llu) past %llu bytes", op,
                  (unsigned long long)offset, (unsigned long long)length,
                  (unsigned long long)info.bytes);
    memcpy(c->to[op] + offset, (const uint8_t *)info.data + offset, length);
    c->covered[op] += length;
    return 0;
}

static void play_group(const char *prefix, int world)
{
    trestle_checkpoint *c;
    trestle_error err;
    trestle_plan *whole;
    c = tu_open(prefix, NULL);
    whole = tu_plan(c, OPS, NOPS, NULL);
    cr_assert_eq(trestle_restore(whole, NULL, NULL, &err), TRESTLE_OK, "%s", err.message);
    size_t nx = trestle_plan_extent_count(whole);
    trestle_plan_stats ws;
    trestle_plan_get_stats(whole, &ws);

    uint8_t *to[NOPS];
    uint64_t covered[NOPS] = { 0 };
    for (size_t i = 0; i < NOPS; i++) {
        trestle_plan_op_info info;
        trestle_plan_get_op(whole, i, &info);
        to[i] = calloc(1, info.bytes + 1);
    }
    uint64_t extent_bytes = 0, part_bytes = 0, part_read = 0;
    for (size_t e = 0; e < nx; e++) {
        trestle_plan_extent_info xi;
        cr_assert_eq(trestle_plan_get_extent(whole, e, &xi), TRESTLE_OK);
        cr_assert_not_null(xi.key);
        extent_bytes += xi.size;
    }
    for (int r = 0; r < world; r++) {
        size_t first = nx * (size_t)r / (size_t)world, end = nx * (size_t)(r + 1) / (size_t)world;
        trestle_plan *p;
        p = tu_plan(c, OPS, NOPS, NULL);
        /* Runs come from the whole plan: keeping renumbers the extents. */
        trestle_plan_extent_info *keep = calloc(end - first + 1, sizeof *keep);
        for (size_t e = first; e < end; e++)
            trestle_plan_get_extent(p, e, &keep[e - first]);
        cr_assert_eq(trestle_plan_keep_extents(p, first, end, &err), TRESTLE_OK, "%s",
                     err.message);
        cr_assert_eq(trestle_plan_extent_count(p), end - first);
        for (size_t e = first; e < end; e++) {
            trestle_plan_extent_info xi;
            trestle_plan_get_extent(p, e - first, &xi);
            cr_assert(xi.shard == keep[e - first].shard && xi.offset == keep[e - first].offset);
            part_bytes += xi.size;
        }
        trestle_stats st;
        cr_assert_eq(trestle_restore(p, NULL, &st, &err), TRESTLE_OK, "%s", err.message);
        cr_assert_eq(st.tensors, NOPS, "every op is reported ready on every part");
        trestle_plan_stats ps;
        trestle_plan_get_stats(p, &ps);
        cr_assert_eq(st.bytes_read, ps.read_bytes);
        part_read += st.bytes_read;
        copy_ctx ctx = { p, to, covered };
        for (size_t e = first; e < end; e++)
            cr_assert_eq(trestle_plan_extent_runs(whole, e, copy_run, &ctx), TRESTLE_OK);
        free(keep);
        /* The runs read from p: the whole plan's extent e is p's e - first,
         * and p holds exactly those bytes. */
        trestle_plan_free(p);
    }
    cr_assert_eq(part_bytes, extent_bytes, "the parts read every extent once");
    cr_assert_leq(part_read, ws.read_bytes, "no part reads more than its share of the whole");
    for (size_t i = 0; i < NOPS; i++) {
        trestle_plan_op_info info;
        trestle_plan_get_op(whole, i, &info);
        cr_assert_eq(covered[i], info.bytes, "op %zu (%s): runs cover %llu of %llu bytes", i,
                     info.name, (unsigned long long)covered[i], (unsigned long long)info.bytes);
        cr_assert_arr_eq(to[i], info.data, info.bytes, "op %zu (%s) differs after the exchange", i,
                         info.name);
        free(to[i]);
    }
    trestle_plan_free(whole);
    trestle_close(c);
}

Test(plan_part, parts_and_their_runs_rebuild_one_whole_restore)
{
    char *dir, *prefix = make_checkpoint(&dir);
    for (int world = 1; world <= 5; world++)
        play_group(prefix, world);
    tu_rmtree(dir);
    free(dir);
    free(prefix);
}

static int stop_at_second(void *user, size_t op, uint64_t offset, uint64_t length)
{
    return ++*(int *)user == 2 ? 7 : 0;
}

Test(plan_part, a_run_callback_stops_the_walk_with_its_value)
{
    char *dir, *prefix = make_checkpoint(&dir);
    trestle_checkpoint *c;
    trestle_plan *p;
    c = tu_open(prefix, NULL);
    p = tu_plan(c, OPS, NOPS, NULL);
    /* The partitioned slice gives one run per row. */
    size_t nx = trestle_plan_extent_count(p), e = 0;
    for (; e < nx; e++) {
        trestle_plan_extent_info xi;
        trestle_plan_get_extent(p, e, &xi);
        if (strcmp(xi.key, "model/emb") == 0)
            break;
    }
    cr_assert_lt(e, nx);
    int calls = 0;
    cr_assert_eq(trestle_plan_extent_runs(p, e, stop_at_second, &calls), 7);
    cr_assert_eq(calls, 2);
    cr_assert_eq(trestle_plan_extent_runs(p, nx, stop_at_second, &calls), TRESTLE_E_INVALID_ARG);
    trestle_plan_free(p);
    trestle_close(c);
    tu_rmtree(dir);
    free(dir);
    free(prefix);
}

Test(plan_part, keep_refuses_a_range_outside_the_plan)
{
    char *dir, *prefix = make_checkpoint(&dir);
    trestle_checkpoint *c;
    trestle_plan *p;
    trestle_error err;
    c = tu_open(prefix, NULL);
    p = tu_plan(c, NULL, 0, NULL);
    size_t nx = trestle_plan_extent_count(p);
    cr_assert_eq(trestle_plan_keep_extents(p, 2, 1, &err), TRESTLE_E_INVALID_ARG);
    cr_assert_eq(trestle_plan_keep_extents(p, 0, nx + 1, &err), TRESTLE_E_INVALID_ARG);
    cr_assert(strstr(err.message, "are not a range of the plan's"), "%s", err.message);
    cr_assert_eq(trestle_plan_extent_count(p), nx, "unchanged after a refusal");
    /* An empty part restores nothing but still has every op. */
    cr_assert_eq(trestle_plan_keep_extents(p, 0, 0, &err), TRESTLE_OK);
    trestle_stats st;
    cr_assert_eq(trestle_restore(p, NULL, &st, &err), TRESTLE_OK, "%s", err.message);
    cr_assert_eq(st.bytes_read, 0);
    cr_assert_eq(st.tensors, trestle_plan_op_count(p));
    trestle_plan_free(p);
    trestle_close(c);
    tu_rmtree(dir);
    free(dir);
    free(prefix);
}
