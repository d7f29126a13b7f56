/*
 * test_plan_slices.c - slices in the planner (engine/plan/plan.c) against
 * checkpoints built in memory (planfake.h): the regions of a slice of a
 * plain tensor, of one partition, across partitions and of a whole
 * partitioned tensor; specs that cover everything; and the refusals:
 * a spec of another shape, a bad spec, slices of strings and variants,
 * partitions that do not cover the request.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "checkpoint.h"
#include "plan.h"
#include "planfake.h"
#include "testutil.h"

/* The SLICE_PART entry of stored slice k of `key`. */
static size_t part_of(const fake *f, const char *key, int k)
{
    return f->c.entries[fk_entry_of(f, key)].slice_entries[k];
}

static void assert_slice(const trestle__slice *s, int64_t s0, int64_t l0, int64_t s1, int64_t l1)
{
    cr_assert_eq(s->rank, 2);
    cr_assert_eq(s->start[0], s0, "start0 %lld", (long long)s->start[0]);
    cr_assert_eq(s->length[0], l0, "length0 %lld", (long long)s->length[0]);
    cr_assert_eq(s->start[1], s1, "start1 %lld", (long long)s->start[1]);
    cr_assert_eq(s->length[1], l1, "length1 %lld", (long long)s->length[1]);
}

/* ---- refusals ---- */

Test(plan, rejects_a_spec_whose_shape_differs_from_the_stored_one)
{
    fake f;
    fk_init(&f, 4);
    int64_t d[2] = { 4, 5 };
    fk_tensor(&f, "m", TRESTLE_DT_FLOAT, 2, d, 0, 0);
    fk_finish(&f);
    trestle_op op = { .name = "m", .shape_and_slices = "4 6 0,2:-" };
    trestle_error err = fk_plan_fails(&f, &op, 1, NULL, TRESTLE_E_SHAPE_MISMATCH);
    cr_assert_str_eq(err.message, "tensor_name = m; shape in shape_and_slice spec [4,6] does not "
                                  "match the shape stored in checkpoint: [4,5]");
    cr_assert_str_eq(err.key, "m");
    trestle_op rank = { .name = "m", .shape_and_slices = "4 5 2 -:-:-" };
    err = fk_plan_fails(&f, &rank, 1, NULL, TRESTLE_E_SHAPE_MISMATCH);
    cr_assert(strstr(err.message, "spec [4,5,2] does not match") != NULL, "%s", err.message);
    fk_free(&f);
}

Test(plan, propagates_bad_spec_errors_naming_the_tensor)
{
    fake f;
    fk_init(&f, 4);
    int64_t d[2] = { 4, 5 };
    fk_tensor(&f, "m", TRESTLE_DT_FLOAT, 2, d, 0, 0);
    fk_finish(&f);
    trestle_op op = { .name = "m", .shape_and_slices = "4" };
    trestle_error err = fk_plan_fails(&f, &op, 1, NULL, TRESTLE_E_BAD_SPEC);
    cr_assert_str_eq(err.key, "m");
    cr_assert(strstr(err.message, "m") != NULL, "%s", err.message);
    trestle_op out_of_bounds = { .name = "m", .shape_and_slices = "4 5 0,7:-" };
    fk_plan_fails(&f, &out_of_bounds, 1, NULL, TRESTLE_E_BAD_SPEC);
    fk_free(&f);
}

Test(plan, refuses_slices_of_strings_and_any_variant)
{
    fake f;
    fk_init(&f, 8);
    fk_strings(&f, "s", TRESTLE__ENTRY_PLAIN, 4, 20, 0, 0);
    int64_t d[1] = { 2 };
    trestle__entry *v = fk_entry(&f, "v", 1, TRESTLE__ENTRY_PLAIN, TRESTLE_DT_VARIANT, 1, d);
    v->offset = 20;
    v->size = 30;
    fk_finish(&f);
    trestle_op slice = { .name = "s", .shape_and_slices = "4 1,2" };
    trestle_error err = fk_plan_fails(&f, &slice, 1, NULL, TRESTLE_E_UNSUPPORTED);
    cr_assert_str_eq(err.key, "s");
    trestle_op whole = { .name = "s", .shape_and_slices = "4 0,4" };
    trestle_plan *p = tu_plan(&f.c, &whole, 1, NULL);
    cr_assert_eq(p->ops[0].bytes, 20, "a covering spec is whole, so strings are fine");
    trestle_plan_free(p);
    trestle_op variant = { .name = "v" };
    err = fk_plan_fails(&f, &variant, 1, NULL, TRESTLE_E_UNSUPPORTED);
    cr_assert(strstr(err.message, "v") != NULL, "%s", err.message);
    fk_free(&f);
}

/* ---- slices ---- */

Test(plan, slices_a_plain_tensor_with_one_region_piece)
{
    fake f;
    fk_init(&f, 4);
    int64_t d[2] = { 4, 6 };
    fk_tensor(&f, "m", TRESTLE_DT_FLOAT, 2, d, 2, 1000);
    fk_finish(&f);
    float out[12];
    trestle_op op = { .name = "m", .shape_and_slices = "4 6 1,2:-", .dtype = TRESTLE_DT_FLOAT,
                      .dest_kind = TRESTLE_DEST_HOST, .ptr = out, .capacity = sizeof out };
    trestle_plan *p = tu_plan(&f.c, &op, 1, NULL);
    fk_assert_invariants(p);
    trestle_plan_op_info info;
    trestle_plan_get_op(p, 0, &info);
    cr_assert_eq(info.rank, 2);
    cr_assert_eq(info.dims[0], 2);
    cr_assert_eq(info.dims[1], 6);
    cr_assert_eq(info.bytes, 48);
    cr_assert_not(p->ops[0].whole);
    cr_assert_eq(p->num_extents, 1);
    cr_assert_eq(p->extents[0].shard, 2);
    cr_assert_eq(p->extents[0].offset, 1000);
    cr_assert_eq(p->extents[0].size, 96, "the whole stored tensor is read");
    cr_assert_eq(p->num_regions, 1);
    cr_assert_eq(p->pieces[0].region, 0);
    const trestle__region *r = &p->regions[0];
    assert_slice(&r->src, 0, 4, 0, 6);
    assert_slice(&r->dst, 1, 2, 0, 6);
    assert_slice(&r->cut, 1, 2, 0, 6);
    cr_assert_eq(r->elem_size, 4);
    cr_assert_eq(r->dims[1], 6);
    trestle_plan_stats st;
    trestle_plan_get_stats(p, &st);
    cr_assert_eq(st.output_bytes, 48);
    cr_assert_eq(st.read_bytes, 96);
    trestle_plan_free(p);
    fk_free(&f);
}

Test(plan, a_spec_covering_everything_is_a_whole_restore)
{
    fake f;
    fk_init(&f, 4);
    int64_t d[2] = { 4, 6 };
    fk_tensor(&f, "m", TRESTLE_DT_FLOAT, 2, d, 0, 0);
    fk_finish(&f);
    trestle_op op = { .name = "m", .shape_and_slices = "4 6 0,4:-" };
    trestle_plan *p = tu_plan(&f.c, &op, 1, NULL);
    cr_assert(p->ops[0].whole);
    cr_assert_eq(p->num_regions, 0);
    cr_assert_eq(p->pieces[0].region, TRESTLE__NO_REGION);
    cr_assert_eq(p->ops[0].bytes, 96);
    trestle_plan_free(p);
    fk_free(&f);
}

/* emb: [10, 4] float in three odd row blocks 0-2, 3-7, 8-9 on two shards;
 * gap: [10, 4] with rows 3-4 never stored. */
static void partitioned_model(fake *f)
{
    fk_init(f, 16);
    int64_t st[3] = { 0, 3, 8 }, ln[3] = { 3, 5, 2 };
    int sh[3] = { 0, 1, 0 };
    uint64_t off[3] = { 0, 0, 48 };
    fk_partitioned(f, "emb", TRESTLE_DT_FLOAT, 10, 4, 3, st, ln, sh, off);
    int64_t gst[2] = { 0, 5 }, gln[2] = { 3, 5 };
    int gsh[2] = { 2, 2 };
    uint64_t goff[2] = { 0, 48 };
    fk_partitioned(f, "gap", TRESTLE_DT_FLOAT, 10, 4, 2, gst, gln, gsh, goff);
    fk_finish(f);
}

Test(plan, a_request_spanning_two_partitions_reads_both)
{
    fake f;
    partitioned_model(&f);
    trestle_op op = { .name = "emb", .shape_and_slices = "10 4 2,3:-", .dtype = TRESTLE_DT_FLOAT };
    trestle_plan *p = tu_plan(&f.c, &op, 1, NULL);
    fk_assert_invariants(p);
    cr_assert_eq(p->ops[0].rank, 2);
    cr_assert_eq(p->ops[0].dims[0], 3);
    cr_assert_eq(p->ops[0].dims[1], 4);
    cr_assert_eq(p->ops[0].bytes, 48);
    cr_assert_eq(p->ops[0].num_pieces, 2);
    cr_assert_eq(p->num_extents, 2);
    /* Sorted by (shard, offset): part 0 on shard 0, part 1 on shard 1. */
    cr_assert_eq(p->extents[0].entry, part_of(&f, "emb", 0));
    cr_assert_eq(p->extents[0].size, 48);
    cr_assert_eq(p->extents[1].entry, part_of(&f, "emb", 1));
    cr_assert_eq(p->extents[1].shard, 1);
    cr_assert_eq(p->extents[1].size, 80);
    const trestle__region *r0 = &p->regions[p->pieces[0].region];
    assert_slice(&r0->src, 0, 3, 0, 4);
    assert_slice(&r0->dst, 2, 3, 0, 4);
    assert_slice(&r0->cut, 2, 1, 0, 4);
    const trestle__region *r1 = &p->regions[p->pieces[1].region];
    assert_slice(&r1->src, 3, 5, 0, 4);
    assert_slice(&r1->dst, 2, 3, 0, 4);
    assert_slice(&r1->cut, 3, 2, 0, 4);
    cr_assert_eq(p->num_batches, 2, "one read per shard");
    trestle_plan_stats st;
    trestle_plan_get_stats(p, &st);
    cr_assert_eq(st.output_bytes, 48);
    cr_assert_eq(st.read_bytes, 128);
    trestle_plan_free(p);
    fk_free(&f);
}

Test(plan, a_request_equal_to_a_stored_slice_is_copied_verbatim)
{
    fake f;
    partitioned_model(&f);
    trestle_op op = { .name = "emb", .shape_and_slices = "10 4 3,5:-" };
    trestle_plan *p = tu_plan(&f.c, &op, 1, NULL);
    fk_assert_invariants(p);
    cr_assert_eq(p->num_extents, 1);
    cr_assert_eq(p->extents[0].entry, part_of(&f, "emb", 1));
    cr_assert_eq(p->num_pieces, 1);
    cr_assert_eq(p->pieces[0].region, TRESTLE__NO_REGION);
    cr_assert_eq(p->pieces[0].dst_offset, 0);
    cr_assert_eq(p->num_regions, 0);
    cr_assert_eq(p->ops[0].bytes, 80);
    trestle_plan_free(p);
    fk_free(&f);
}

Test(plan, a_whole_partitioned_tensor_gathers_every_part)
{
    fake f;
    partitioned_model(&f);
    trestle_op op = { .name = "emb" };
    trestle_plan *p = tu_plan(&f.c, &op, 1, NULL);
    fk_assert_invariants(p);
    cr_assert(p->ops[0].whole);
    cr_assert_eq(p->ops[0].bytes, 160);
    cr_assert_eq(p->ops[0].num_pieces, 3);
    cr_assert_eq(p->num_regions, 3);
    for (size_t i = 0; i < 3; i++) {
        const trestle__region *r = &p->regions[p->pieces[i].region];
        assert_slice(&r->dst, 0, 10, 0, 4);
        cr_assert_eq(r->cut.start[0], r->src.start[0]);
        cr_assert_eq(r->cut.length[0], r->src.length[0]);
    }
    trestle_plan_free(p);
    fk_free(&f);
}

Test(plan, reports_insufficient_slices_in_tf_words)
{
    fake f;
    partitioned_model(&f);
    trestle_op whole = { .name = "gap" };
    trestle_error err = fk_plan_fails(&f, &whole, 1, NULL, TRESTLE_E_INSUFFICIENT_SLICES);
    cr_assert_str_eq(err.message, "Does not have sufficient slices for partitioned tensor gap to "
                                  "restore in slice_spec: -:-");
    cr_assert_str_eq(err.key, "gap");
    trestle_op part = { .name = "gap", .shape_and_slices = "10 4 2,2:-" };
    err = fk_plan_fails(&f, &part, 1, NULL, TRESTLE_E_INSUFFICIENT_SLICES);
    cr_assert_str_eq(err.message, "Does not have sufficient slices for partitioned tensor gap to "
                                  "restore in slice_spec: 2,2:-");
    trestle_op covered = { .name = "gap", .shape_and_slices = "10 4 5,5:1,2" };
    trestle_plan *p = tu_plan(&f.c, &covered, 1, NULL);
    cr_assert_eq(p->num_extents, 1);
    assert_slice(&p->regions[0].cut, 5, 5, 1, 2);
    trestle_plan_free(p);
    fk_free(&f);
}
