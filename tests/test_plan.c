/*
 * test_plan.c - the restore planner (engine/plan/plan.c) against
 * checkpoints built in memory (planfake.h): whole tensors, the options'
 * defaults, bad arguments and destinations, extent dedupe and batch
 * coalescing, down to the plan.h structures the pipeline consumes. Names
 * are in test_plan_names.c, slices in test_plan_slices.c.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "checkpoint.h"
#include "plan.h"
#include "planfake.h"
#include "testutil.h"

/* The single extent holding `entry`, or fails. */
static const trestle__extent *extent_of(const trestle_plan *p, size_t entry)
{
    for (size_t i = 0; i < p->num_extents; i++)
        if (p->extents[i].entry == entry)
            return &p->extents[i];
    cr_assert_fail("no extent for entry %zu", entry);
    return NULL;
}

/* A small model: two floats, an int32, on two shards. */
static void small_model(fake *f)
{
    fk_init(f, 16);
    int64_t d23[2] = { 2, 3 }, d4[1] = { 4 };
    fk_tensor(f, "b/int", TRESTLE_DT_INT32, 1, d4, 0, 24);
    fk_tensor(f, "a/float", TRESTLE_DT_FLOAT, 2, d23, 0, 0);
    fk_tensor(f, "c/float", TRESTLE_DT_FLOAT, 1, d4, 1, 0);
    fk_finish(f);
}

/* ---- whole tensors ---- */

Test(plan, options_init_sets_the_documented_defaults)
{
    trestle_plan_options po;
    memset(&po, 0xab, sizeof po);
    trestle_plan_options_init(&po);
    cr_assert_eq(po.size, sizeof po);
    cr_assert_eq(po.max_batch_bytes, 16u << 20);
    cr_assert_eq(po.max_gap_bytes, 64u << 10);
    cr_assert_eq(po.num_renames, 0);
    cr_assert_eq(po.allow_missing, 0);
    cr_assert_eq(po.skip_unsupported, 0);
    cr_assert_eq(po.num_shard_rules, 0);
    cr_assert_eq(po.shard_rank, 0);
    cr_assert_eq(po.shard_world, 1);
    cr_assert_null(po.op_shapes);
    cr_assert_eq(po.partial_reads, 0);
    cr_assert_null(po.reserved[1]);
    /* Fields since 0.1 took reserved slots only: the size a 0.1 program passes is today's. */
    if (sizeof(void *) == 8)
        cr_assert_eq(sizeof po, 136);
}

Test(plan, restores_whole_tensors_as_verbatim_pieces)
{
    fake f;
    small_model(&f);
    float a[6];
    trestle_op ops[] = {
        { .name = "a/float", .dtype = TRESTLE_DT_FLOAT, .dest_kind = TRESTLE_DEST_HOST, .ptr = a,
          .capacity = sizeof a },
        { .name = "b/int", .dest_kind = TRESTLE_DEST_ALLOCATE },
    };
    trestle_plan *p = tu_plan(&f.c, ops, 2, NULL);
    fk_assert_invariants(p);
    cr_assert_eq(trestle_plan_op_count(p), 2);

    trestle_plan_op_info info;
    cr_assert_eq(trestle_plan_get_op(p, 0, &info), TRESTLE_OK);
    cr_assert_str_eq(info.name, "a/float");
    cr_assert_str_eq(info.key, "a/float");
    cr_assert_eq(info.skipped, 0);
    cr_assert_eq(info.dtype, TRESTLE_DT_FLOAT);
    cr_assert_eq(info.rank, 2);
    cr_assert_eq(info.dims[0], 2);
    cr_assert_eq(info.dims[1], 3);
    cr_assert_eq(info.bytes, 24);
    cr_assert_eq(info.data, a);
    cr_assert_eq(trestle_plan_get_op(p, 1, &info), TRESTLE_OK);
    cr_assert_eq(info.dtype, TRESTLE_DT_INT32);
    cr_assert_eq(info.bytes, 16);
    cr_assert_null(info.data, "ALLOCATE leaves the destination to the pipeline");
    cr_assert_eq(trestle_plan_get_op(p, 2, &info), TRESTLE_E_INVALID_ARG);

    cr_assert_eq(p->num_extents, 2);
    cr_assert_eq(p->extents[0].entry, fk_entry_of(&f, "a/float"));
    cr_assert_eq(p->extents[0].offset, 0);
    cr_assert_eq(p->extents[0].size, 24);
    cr_assert_eq(p->extents[1].entry, fk_entry_of(&f, "b/int"));
    cr_assert_eq(p->extents[1].crc_masked, f.c.entries[fk_entry_of(&f, "b/int")].crc_masked);
    cr_assert_eq(p->num_pieces, 2);
    cr_assert_eq(p->pieces[0].op, 0);
    cr_assert_eq(p->pieces[0].region, TRESTLE__NO_REGION);
    cr_assert_eq(p->pieces[0].dst_offset, 0);
    cr_assert_eq(p->pieces[1].op, 1);
    cr_assert_eq(p->num_regions, 0);
    cr_assert(p->ops[0].whole);
    cr_assert_eq(p->num_batches, 1, "adjacent extents make one read");
    cr_assert_eq(p->batches[0].length, 40);
    trestle_plan_free(p);
    fk_free(&f);
}

Test(plan, plans_every_listed_tensor_when_ops_is_null)
{
    fake f;
    fk_init(&f, 16);
    int64_t d2[1] = { 2 };
    fk_tensor(&f, "w", TRESTLE_DT_FLOAT, 1, d2, 0, 0);
    fk_strings(&f, TRESTLE_OBJECT_GRAPH_KEY, TRESTLE__ENTRY_OBJECT_GRAPH, 1, 37, 0, 8);
    fk_strings(&f, "vocab", TRESTLE__ENTRY_PLAIN, 3, 16, 0, 45);
    int64_t starts[2] = { 0, 1 }, lens[2] = { 1, 2 };
    int shards[2] = { 1, 1 };
    uint64_t offs[2] = { 0, 8 };
    fk_partitioned(&f, "emb", TRESTLE_DT_FLOAT, 3, 2, 2, starts, lens, shards, offs);
    fk_finish(&f);

    trestle_plan *p = tu_plan(&f.c, NULL, 0, NULL);
    fk_assert_invariants(p);
    cr_assert_eq(trestle_plan_op_count(p), 4, "slice parts are not listed");
    const char *want[] = { TRESTLE_OBJECT_GRAPH_KEY, "emb", "vocab", "w" };
    for (size_t i = 0; i < 4; i++) {
        trestle_plan_op_info info;
        cr_assert_eq(trestle_plan_get_op(p, i, &info), TRESTLE_OK);
        cr_assert_str_eq(info.name, want[i]);
        cr_assert_str_eq(info.key, want[i]);
        cr_assert_eq(p->ops[i].dest_kind, TRESTLE_DEST_ALLOCATE);
        cr_assert(p->ops[i].whole);
    }
    cr_assert_eq(p->ops[0].bytes, 37, "strings restore as stored");
    cr_assert_eq(p->ops[1].bytes, 24);
    cr_assert_eq(p->ops[1].num_pieces, 2);
    cr_assert(extent_of(p, fk_entry_of(&f, TRESTLE_OBJECT_GRAPH_KEY))->is_string);
    cr_assert_not(extent_of(p, fk_entry_of(&f, "w"))->is_string);
    cr_assert_eq(p->num_extents, 5);
    trestle_plan_stats st;
    trestle_plan_get_stats(p, &st);
    cr_assert_eq(st.ops, 4);
    cr_assert_eq(st.output_bytes, 37 + 24 + 16 + 8);
    trestle_plan_free(p);
    fk_free(&f);
}

Test(plan, zero_byte_tensors_have_no_extents_or_pieces)
{
    fake f;
    fk_init(&f, 4);
    int64_t d[2] = { 0, 5 };
    fk_tensor(&f, "empty", TRESTLE_DT_FLOAT, 2, d, 0, 0);
    fk_finish(&f);
    trestle_op op = { .name = "empty", .dest_kind = TRESTLE_DEST_HOST, .ptr = NULL };
    trestle_plan *p = tu_plan(&f.c, &op, 1, NULL);
    fk_assert_invariants(p);
    cr_assert_eq(p->num_extents, 0);
    cr_assert_eq(p->num_batches, 0);
    cr_assert_eq(p->ops[0].num_pieces, 0);
    cr_assert_eq(p->ops[0].skipped, 0);
    cr_assert_eq(p->ops[0].bytes, 0);
    trestle_plan_free(p);
    fk_free(&f);
}

/* ---- bad arguments ---- */

Test(plan, rejects_a_destination_smaller_than_the_tensor)
{
    fake f;
    small_model(&f);
    float buf[6];
    trestle_op op = { .name = "a/float", .dest_kind = TRESTLE_DEST_HOST, .ptr = buf,
                      .capacity = 10 };
    trestle_error err = fk_plan_fails(&f, &op, 1, NULL, TRESTLE_E_INVALID_ARG);
    cr_assert(strstr(err.message, "a/float") != NULL, "%s", err.message);
    cr_assert(strstr(err.message, "10") != NULL, "%s", err.message);
    cr_assert(strstr(err.message, "24") != NULL, "%s", err.message);
    cr_assert_str_eq(err.key, "a/float");
    trestle_op null_ptr = { .name = "a/float", .dest_kind = TRESTLE_DEST_DEVICE, .capacity = 24 };
    err = fk_plan_fails(&f, &null_ptr, 1, NULL, TRESTLE_E_INVALID_ARG);
    cr_assert(strstr(err.message, "NULL") != NULL, "%s", err.message);
    trestle_op bad_kind = { .name = "a/float", .dest_kind = 7 };
    fk_plan_fails(&f, &bad_kind, 1, NULL, TRESTLE_E_INVALID_ARG);
    fk_free(&f);
}

Test(plan, rejects_bad_arguments)
{
    fake f;
    small_model(&f);
    trestle_plan *p = (trestle_plan *)1;
    trestle_error err;
    cr_assert_eq(trestle_plan_create(&f.c, NULL, 3, NULL, &p, &err), TRESTLE_E_INVALID_ARG);
    cr_assert_null(p);
    cr_assert_eq(trestle_plan_create(&f.c, NULL, 0, NULL, NULL, &err), TRESTLE_E_INVALID_ARG);
    trestle_op unnamed = { .name = NULL };
    cr_assert_eq(trestle_plan_create(&f.c, &unnamed, 1, NULL, &p, &err), TRESTLE_E_INVALID_ARG);
    trestle_plan_options po;
    trestle_plan_options_init(&po);
    po.reserved[0] = &po;
    cr_assert_eq(trestle_plan_create(&f.c, NULL, 0, &po, &p, &err), TRESTLE_E_INVALID_ARG);
    cr_assert_null(p);
    fk_free(&f);
}

/* A piece names its op in 32 bits (16-byte pieces: one per tensor read,
 * issue 24), so more ops than that are refused before any is looked at. */
Test(plan, refuses_more_ops_than_a_piece_can_name)
{
    fake f;
    small_model(&f);
    trestle_op op = { .name = "a/float" };
    trestle_plan *p = (trestle_plan *)1;
    trestle_error err;
    if (sizeof(size_t) <= 4)
        cr_skip_test("size_t cannot count past 32 bits here");
    size_t n = (size_t)UINT32_MAX + 1;
    cr_assert_eq(trestle_plan_create(&f.c, &op, n, NULL, &p, &err), TRESTLE_E_INVALID_ARG);
    cr_assert_str_eq(err.message, "4294967296 ops: a plan holds at most 4294967295");
    cr_assert_null(p);
    fk_free(&f);
}

/* ---- extents and batches ---- */

Test(plan, one_extent_feeds_every_op_that_needs_the_same_entry)
{
    fake f;
    small_model(&f);
    trestle_op ops[] = {
        { .name = "a/float" }, { .name = "c/float" },
        { .name = "a/float", .shape_and_slices = "2 3 1,1:-" }, { .name = "a/float" },
    };
    trestle_plan *p = tu_plan(&f.c, ops, 4, NULL);
    fk_assert_invariants(p);
    cr_assert_eq(p->num_extents, 2);
    const trestle__extent *x = extent_of(p, fk_entry_of(&f, "a/float"));
    cr_assert_eq(x->num_pieces, 3);
    cr_assert_eq(p->pieces[x->first_piece].op, 0, "pieces keep op order");
    cr_assert_eq(p->pieces[x->first_piece + 1].op, 2);
    cr_assert_eq(p->pieces[x->first_piece + 2].op, 3);
    cr_assert_neq(p->pieces[x->first_piece + 1].region, TRESTLE__NO_REGION);
    trestle_plan_stats st;
    trestle_plan_get_stats(p, &st);
    cr_assert_eq(st.extents, 2);
    cr_assert_eq(st.read_bytes, 24 + 16, "a/float is read once");
    cr_assert_eq(st.output_bytes, 24 + 16 + 12 + 24);
    trestle_plan_free(p);
    fk_free(&f);
}

Test(plan, coalesces_extents_by_gap_size_and_shard)
{
    fake f;
    fk_init(&f, 16);
    fk_bytes(&f, "t6", 10, 1, 0);
    fk_bytes(&f, "t5", 2000, 0, 1500);
    fk_bytes(&f, "t4", 400, 0, 1100);
    fk_bytes(&f, "t3", 600, 0, 500);
    fk_bytes(&f, "t2", 100, 0, 400);
    fk_bytes(&f, "t1", 100, 0, 150);
    fk_bytes(&f, "t0", 100, 0, 0);
    fk_finish(&f);
    trestle_plan_options po;
    trestle_plan_options_init(&po);
    po.max_gap_bytes = 100;
    po.max_batch_bytes = 1000;
    trestle_plan *p = tu_plan(&f.c, NULL, 0, &po);
    fk_assert_invariants(p);
    static const struct { int shard; uint64_t offset, length; size_t first, n; } want[] = {
        { 0, 0, 250, 0, 2 },     /* t0 + t1: a 50-byte hole is read through */
        { 0, 400, 700, 2, 2 },   /* t2 after a 150-byte hole; t3 fits in 1000 */
        { 0, 1100, 400, 4, 1 },  /* t4 would take the batch to 1100 bytes */
        { 0, 1500, 2000, 5, 1 }, /* t5 alone is larger than max_batch_bytes */
        { 1, 0, 10, 6, 1 },      /* a new shard */
    };
    cr_assert_eq(p->num_batches, 5);
    for (size_t i = 0; i < 5; i++) {
        const trestle__batch *b = &p->batches[i];
        cr_assert_eq(b->shard, want[i].shard, "batch %zu", i);
        cr_assert_eq(b->offset, want[i].offset, "batch %zu", i);
        cr_assert_eq(b->length, want[i].length, "batch %zu", i);
        cr_assert_eq(b->first_extent, want[i].first, "batch %zu", i);
        cr_assert_eq(b->num_extents, want[i].n, "batch %zu", i);
    }
    trestle_plan_stats st;
    trestle_plan_get_stats(p, &st);
    cr_assert_eq(st.ops, 7);
    cr_assert_eq(st.skipped, 0);
    cr_assert_eq(st.extents, 7);
    cr_assert_eq(st.batches, 5);
    cr_assert_eq(st.output_bytes, 3310);
    cr_assert_eq(st.read_bytes, 250 + 700 + 400 + 2000 + 10);
    trestle_plan_free(p);
    fk_free(&f);
}

/*
 * Many tensors whose file order is not their key order, over every shard,
 * at offsets up to 2^42, some read by several ops and some as slices: the
 * extents come out sorted by shard and offset, each extent's pieces in op
 * order, as the one sort of every want used to give them (planning sorts
 * by shard and radix now, issue 24).
 */
Test(plan, orders_many_wants_by_place_and_op_as_one_sort_would)
{
    enum { N = 3000, OPS = N + N / 4 };
    fake f;
    uint64_t rng = 24, at[FK_SHARDS] = { 0 };
    static trestle_op ops[OPS];
    static char names[N][24];
    fk_init(&f, N);
    int64_t dims[2] = { 4, 2 };
    for (int i = 0; i < N; i++) {
        /* Keys in one order, bytes laid out in another (the reverse). */
        snprintf(names[i], sizeof names[i], "layer.%d/w", i);
        int shard = (int)(tu_rng_next(&rng) % FK_SHARDS);
        uint64_t off = ((uint64_t)(N - i) << 30) + at[shard];
        at[shard] += 32 + tu_rng_next(&rng) % 100;
        fk_tensor(&f, names[i], TRESTLE_DT_FLOAT, 2, dims, shard, off);
    }
    fk_finish(&f);
    for (int i = 0; i < OPS; i++) {
        int t = i < N ? (i * 7919) % N : (int)(tu_rng_next(&rng) % N);
        ops[i] = (trestle_op){ .name = names[t] };
        if (i >= N && i % 2)
            ops[i].shape_and_slices = "4 2 1,2:-";
    }
    trestle_plan *p = tu_plan(&f.c, ops, OPS, NULL);
    fk_assert_invariants(p);
    cr_assert_eq(p->num_extents, N);
    cr_assert_eq(p->num_pieces, OPS);
    for (size_t e = 0; e < p->num_extents; e++) {
        const trestle__extent *x = &p->extents[e];
        for (size_t k = 0; k < x->num_pieces; k++) {
            const trestle__piece *pc = &p->pieces[x->first_piece + k];
            cr_assert_eq(p->ops[pc->op].entry, x->entry);
            if (k > 0)
                cr_assert_lt(p->pieces[x->first_piece + k - 1].op, pc->op, "op order");
        }
    }
    trestle_plan_free(p);
    fk_free(&f);
}

Test(plan, refuses_two_tensors_sharing_bytes)
{
    fake f;
    fk_init(&f, 4);
    fk_bytes(&f, "x", 100, 0, 0);
    fk_bytes(&f, "y", 100, 0, 50);
    fk_finish(&f);
    trestle_error err = fk_plan_fails(&f, NULL, 0, NULL, TRESTLE_E_CORRUPT);
    cr_assert(strstr(err.message, "x") && strstr(err.message, "y"), "%s", err.message);
    fk_free(&f);
}

Test(plan, stats_add_up_and_null_is_accepted)
{
    trestle_plan_free(NULL);
    cr_assert_eq(trestle_plan_op_count(NULL), 0);
    trestle_plan_stats st;
    memset(&st, 0xff, sizeof st);
    trestle_plan_get_stats(NULL, &st);
    cr_assert_eq(st.ops, 0);
    trestle_plan_op_info info;
    cr_assert_eq(trestle_plan_get_op(NULL, 0, &info), TRESTLE_E_INVALID_ARG);

    fake f;
    small_model(&f);
    trestle_op ops[] = { { .name = "b/int" }, { .name = "a/float", .shape_and_slices = "2 3 -:0,1" },
                         { .name = "c/float", .dest_kind = TRESTLE_DEST_DISCARD } };
    trestle_plan *p = tu_plan(&f.c, ops, 3, NULL);
    fk_assert_invariants(p);
    trestle_plan_get_stats(p, &st);
    cr_assert_eq(st.ops, 3);
    cr_assert_eq(st.skipped, 0);
    cr_assert_eq(st.output_bytes, 16 + 8 + 16);
    cr_assert_eq(st.extents, 3);
    cr_assert_eq(st.batches, 2);
    cr_assert_eq(st.read_bytes, 40 + 16);
    trestle_plan_free(p);
    fk_free(&f);
}
