/*
 * test_partial_reads.c - tensor-parallel parts that read only their bytes
 * (trestle_plan_options.partial_reads): each part of a plain tensor reads
 * just its runs, restores the same bytes as the reference slice, defers its
 * CRC32C check to a share, and the shares of all parts combine to the
 * stored CRC (trestle_crc_shares_check()); a corrupt byte in one part's
 * bytes fails the combination, naming the tensor, shard file and offset.
 * One process restores every part here, so no MPI is needed (test_mpi_parts.c
 * does the same across ranks). Also trestle_plan_drop_op_reads(), with which
 * a rank leaves to another the reading of a tensor whose part it cannot read
 * alone: exactly the bytes left are read, batches split around the gap.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plan_shard.h"
#include "testutil.h"
#include "trestle.h"

/* Writer-made tensors, each with its reference bytes. "tiny" has fewer rows
 * than any world tried, so some parts are empty. */
typedef struct tensor {
    const char *name;
    int rank;
    int64_t dims[3];
    float *data;
    size_t bytes;
} tensor;

static tensor tensors[] = {
    { "a", 2, { 12, 10, 0 }, NULL, 0 },   /* even for 2 and 3 along dim 0 */
    { "b", 2, { 7, 9, 0 }, NULL, 0 },     /* uneven along both dims */
    { "c", 3, { 3, 8, 5 }, NULL, 0 },     /* runs from the middle dim */
    { "tiny", 2, { 1, 6, 0 }, NULL, 0 },  /* one row: smaller than W along dim 0 */
    { "big", 3, { 2, 6, 32768 }, NULL, 0 }, /* 256 KiB runs along dim 1: read straight into
                                               the destination, the second run at an offset */
};
#define NTENSORS (sizeof tensors / sizeof tensors[0])

static char *dir, *prefix;
static trestle_checkpoint *ckpt;

static void setup(void)
{
    trestle_writer_options wo;
    trestle_writer *w;
    trestle_error err;
    dir = tu_mkdtemp();
    cr_assert(asprintf(&prefix, "%s/c", dir) > 0);
    trestle_writer_options_init(&wo);
    wo.num_shards = 2;
    cr_assert_eq(trestle_writer_create(prefix, &wo, &w, &err), TRESTLE_OK, "%s", err.message);
    for (size_t t = 0; t < NTENSORS; t++) {
        tensor *x = &tensors[t];
        size_t n = 1;
        for (int d = 0; d < x->rank; d++)
            n *= (size_t)x->dims[d];
        x->bytes = n * sizeof(float);
        x->data = malloc(x->bytes);
        tu_fill_random(x->data, x->bytes, 100 + t);
        cr_assert_eq(trestle_writer_add(w, x->name, TRESTLE_DT_FLOAT, x->rank, x->dims, x->data,
                                        x->bytes, (int)(t % 2), &err),
                     TRESTLE_OK, "%s", err.message);
    }
    cr_assert_eq(trestle_writer_finish(w, &err), TRESTLE_OK, "%s", err.message);
    trestle_writer_free(w);
    ckpt = tu_open(prefix, NULL);
}

static void teardown(void)
{
    trestle_close(ckpt);
    tu_rmtree(dir);
    free(dir);
    free(prefix);
    for (size_t t = 0; t < NTENSORS; t++)
        free(tensors[t].data);
}

TestSuite(partial_reads, .init = setup, .fini = teardown);

/* Plan op `name` (whole) as part r of w of dimension `dim`, partial reads
 * on, with gap `gap`. */
static trestle_plan *plan_part(const char *name, int dim, int r, int w, uint64_t gap, int partial)
{
    char rule[64];
    const char *rules[] = { rule };
    trestle_op op = { .name = name, .dest_kind = TRESTLE_DEST_ALLOCATE };
    trestle_plan_options po;
    trestle_plan *p;
    snprintf(rule, sizeof rule, "%s:%d", name, dim);
    trestle_plan_options_init(&po);
    po.shard_rules = rules;
    po.num_shard_rules = 1;
    po.shard_rank = r;
    po.shard_world = w;
    po.partial_reads = partial;
    po.max_gap_bytes = gap;
    p = tu_plan(ckpt, &op, 1, &po);
    return p;
}

static trestle_stats restore_ok(trestle_plan *p, int verify)
{
    trestle_restore_options ro;
    trestle_stats st;
    trestle_error err;
    trestle_restore_options_init(&ro);
    ro.direct = TRESTLE_DIRECT_NEVER; /* byte counts exactly as planned */
    ro.verify = verify;
    cr_assert_eq(trestle_restore(p, &ro, &st, &err), TRESTLE_OK, "%s", err.message);
    return st;
}

/* Part r of w of dim `dim` of x, as the reference slice (malloc'd). */
static uint8_t *ref_part(const tensor *x, int dim, int r, int w, uint64_t *bytes)
{
    int64_t start[3] = { 0 }, len[3];
    for (int d = 0; d < x->rank; d++)
        len[d] = x->dims[d];
    trestle_shard_part(x->dims[dim], r, w, &start[dim], &len[dim]);
    *bytes = sizeof(float);
    for (int d = 0; d < x->rank; d++)
        *bytes *= (uint64_t)len[d];
    uint8_t *out = malloc(*bytes ? *bytes : 1);
    tu_ref_slice((const uint8_t *)x->data, x->dims, x->rank, start, len, sizeof(float), out);
    return out;
}

/* Restore every part of x along dim for world w; check each part's bytes,
 * reads and deferral, and return the XOR of the parts' shares in *combined
 * (the share fields of part 0). */
static void restore_all_parts(const tensor *x, int dim, int w, trestle_crc_share *combined)
{
    memset(combined, 0, sizeof *combined);
    for (int r = 0; r < w; r++) {
        trestle_plan *p = plan_part(x->name, dim, r, w, 0, 1);
        cr_assert_eq(trestle_plan_crc_share_count(p), 1, "%s:%d part %d of %d", x->name, dim, r,
                     w);
        trestle_stats st = restore_ok(p, 1);
        uint64_t want;
        uint8_t *ref = ref_part(x, dim, r, w, &want);
        trestle_plan_op_info info;
        trestle_error err;
        cr_assert_eq(trestle_plan_get_op(p, 0, &info), TRESTLE_OK);
        cr_assert_eq(info.bytes, want);
        uint8_t *got = malloc(want ? want : 1);
        if (want)
            cr_assert_eq(trestle_plan_read_op(p, 0, got, want, &err), TRESTLE_OK, "%s",
                         err.message);
        cr_assert_eq(memcmp(got, ref, want), 0, "%s:%d part %d of %d differs", x->name, dim, r,
                     w);
        /* Only the part's bytes are read, and none of them is called verified. */
        cr_assert_eq(st.bytes_read, want, "%s:%d part %d of %d read %llu, part is %llu", x->name,
                     dim, r, w, (unsigned long long)st.bytes_read, (unsigned long long)want);
        cr_assert_eq(st.bytes_deferred, want);
        cr_assert_eq(st.bytes_verified, 0);
        trestle_crc_share s;
        cr_assert_eq(trestle_plan_get_crc_share(p, 0, &s), TRESTLE_OK);
        cr_assert_eq(s.ready, 1);
        cr_assert_str_eq(s.key, x->name);
        cr_assert_eq(s.tensor_bytes, x->bytes);
        cr_assert_eq(s.op, 0);
        cr_assert_eq(s.part, r, "the share says which part it is");
        cr_assert_eq(s.parts, w);
        if (want == 0)
            cr_assert_eq(s.share, 0, "an empty part adds nothing");
        uint32_t acc = combined->share ^ s.share;
        if (r == 0)
            *combined = s;
        combined->share = acc;
        free(got);
        free(ref);
        trestle_plan_free(p);
    }
}

Test(partial_reads, every_part_reads_its_bytes_and_the_shares_combine_to_the_stored_crc)
{
    static const int worlds[] = { 2, 3 };
    for (size_t t = 0; t < NTENSORS; t++)
        for (int dim = 0; dim < tensors[t].rank; dim++)
            for (size_t k = 0; k < 2; k++) {
                trestle_crc_share s;
                trestle_error err;
                restore_all_parts(&tensors[t], dim, worlds[k], &s);
                cr_assert_eq(trestle_crc_shares_check(&s, 1, worlds[k], &err), TRESTLE_OK,
                             "%s:%d over %d: %s", tensors[t].name, dim, worlds[k], err.message);
                /* One part missing from the combination does not pass
                 * (unless that part is empty or the tensor is one row). */
                if (tensors[t].dims[dim] >= worlds[k]) {
                    trestle_crc_share alone = s;
                    trestle_plan *p = plan_part(tensors[t].name, dim, 0, worlds[k], 0, 1);
                    restore_ok(p, 1);
                    trestle_crc_share s0;
                    trestle_plan_get_crc_share(p, 0, &s0);
                    alone.share ^= s0.share;
                    cr_assert_eq(trestle_crc_shares_check(&alone, 1, worlds[k], &err),
                                 TRESTLE_E_CRC_MISMATCH);
                    trestle_plan_free(p);
                }
            }
}

Test(partial_reads, a_corrupt_byte_in_one_part_fails_the_combination_naming_the_tensor)
{
    /* Tensor "c" [3,8,5], split along dim 1 in 3: flip a byte inside part
     * 2's second run (row 1 of dim 0, columns 6..7 of dim 1). */
    tensor *x = &tensors[2];
    trestle_tensor_info ti;
    size_t idx = 0;
    while (strcmp((trestle_tensor_get_info(ckpt, idx, &ti), ti.name), x->name) != 0)
        idx++;
    trestle_close(ckpt);
    ckpt = NULL;
    char *shard;
    cr_assert(asprintf(&shard, "%s.data-%05d-of-%05d", prefix, ti.shard, 2) > 0);
    uint64_t at = ti.offset + (1 * 8 * 5 + 6 * 5 + 2) * sizeof(float) + 1;
    tu_flip_byte(shard, at, 0x10);
    ((uint8_t *)x->data)[at - ti.offset] ^= 0x10; /* what the part now restores */
    trestle_error err;
    ckpt = tu_open(prefix, NULL);

    /* Each part's restore succeeds: no part can tell... */
    trestle_crc_share s;
    restore_all_parts(x, 1, 3, &s);
    /* ...but the combination can. */
    cr_assert_eq(trestle_crc_shares_check(&s, 1, 3, &err), TRESTLE_E_CRC_MISMATCH);
    char want[512];
    snprintf(want, sizeof want, "CRC32C of tensor 'c' (shard %s, offset %llu) over the 3 ranks' "
             "parts does not match", shard, (unsigned long long)ti.offset);
    cr_assert(tu_starts_with(err.message, want), "%s", err.message);
    cr_assert(strstr(err.message, "some part read corrupt bytes"), "%s", err.message);
    cr_assert_str_eq(err.key, "c");
    cr_assert_eq(err.offset, (int64_t)ti.offset);
    /* The same plans without partial reads read the whole tensor and fail
     * on the part's own restore. */
    trestle_plan *p = plan_part(x->name, 1, 0, 3, 0, 0);
    cr_assert_eq(trestle_plan_crc_share_count(p), 0);
    cr_assert_eq(trestle_restore(p, NULL, NULL, &err), TRESTLE_E_CRC_MISMATCH);
    trestle_plan_free(p);
    free(shard);
}

Test(partial_reads, off_by_default_and_parts_read_whole)
{
    trestle_plan *p = plan_part("a", 0, 1, 2, 0, 0);
    cr_assert_eq(trestle_plan_crc_share_count(p), 0);
    trestle_stats st = restore_ok(p, 1);
    cr_assert_eq(st.bytes_read, tensors[0].bytes);
    cr_assert_eq(st.bytes_verified, tensors[0].bytes);
    cr_assert_eq(st.bytes_deferred, 0);
    trestle_plan_free(p);
}

Test(partial_reads, runs_the_batches_would_coalesce_anyway_read_whole_on_every_rank)
{
    /* The default 64 KiB gap swallows the gaps between "b"'s rows split
     * along dim 1: no part of any rank is deferred, so all ranks agree. */
    for (int r = 0; r < 2; r++) {
        trestle_plan *p = plan_part("b", 1, r, 2, 64 << 10, 1);
        cr_assert_eq(trestle_plan_crc_share_count(p), 0);
        trestle_stats st = restore_ok(p, 1);
        cr_assert_eq(st.bytes_verified, tensors[1].bytes);
        trestle_plan_free(p);
    }
    /* Along dim 0 a part is one run, so it is read alone whatever the gap. */
    trestle_plan *p = plan_part("b", 0, 1, 2, 64 << 10, 1);
    cr_assert_eq(trestle_plan_crc_share_count(p), 1);
    trestle_plan_free(p);
}

Test(partial_reads, a_tensor_another_op_reads_whole_is_read_whole)
{
    char rule[] = "part:0";
    const char *rules[] = { rule }, *renames[] = { "part=a" };
    trestle_op ops[] = {
        { .name = "part", .dest_kind = TRESTLE_DEST_ALLOCATE },
        { .name = "a", .dest_kind = TRESTLE_DEST_ALLOCATE },
    };
    trestle_plan_options po;
    trestle_plan *p;
    trestle_plan_options_init(&po);
    po.shard_rules = rules;
    po.num_shard_rules = 1;
    po.renames = renames;
    po.num_renames = 1;
    po.shard_rank = 1;
    po.shard_world = 2;
    po.partial_reads = 1;
    p = tu_plan(ckpt, ops, 2, &po);
    cr_assert_eq(trestle_plan_crc_share_count(p), 0);
    trestle_stats st = restore_ok(p, 1);
    cr_assert_eq(st.bytes_deferred, 0);
    trestle_plan_free(p);
}

Test(partial_reads, shares_are_not_ready_without_verify_and_the_check_refuses_them)
{
    trestle_plan *p = plan_part("a", 0, 0, 2, 0, 1);
    trestle_stats st = restore_ok(p, 0);
    cr_assert_eq(st.bytes_deferred, 0);
    trestle_crc_share s;
    trestle_error err;
    cr_assert_eq(trestle_plan_get_crc_share(p, 0, &s), TRESTLE_OK);
    cr_assert_eq(s.ready, 0);
    cr_assert_eq(trestle_crc_shares_check(&s, 1, 2, &err), TRESTLE_E_INVALID_ARG);
    cr_assert(strstr(err.message, "CRC share of tensor 'a' was not computed"), "%s", err.message);
    cr_assert_eq(trestle_plan_get_crc_share(p, 1, &s), TRESTLE_E_INVALID_ARG);
    cr_assert_eq(trestle_crc_shares_check(NULL, 0, 2, &err), TRESTLE_OK);
    cr_assert_eq(trestle_crc_shares_check(&s, 1, 0, &err), TRESTLE_E_INVALID_ARG);
    trestle_plan_free(p);
}

Test(partial_reads, a_converting_part_lands_converted_and_still_combines)
{
    /* float32 -> float16 on load: the part's runs convert, the shares are
     * over the stored bytes. */
    const tensor *x = &tensors[2];
    trestle_crc_share total = { 0 };
    for (int r = 0; r < 2; r++) {
        const char *rules[] = { "c:2" };
        trestle_op op = { .name = "c", .dest_kind = TRESTLE_DEST_ALLOCATE,
                          .target_dtype = TRESTLE_DT_HALF };
        trestle_plan_options po;
        trestle_plan *p, *ref;
        trestle_plan_options_init(&po);
        po.shard_rules = rules;
        po.num_shard_rules = 1;
        po.shard_rank = r;
        po.shard_world = 2;
        po.max_gap_bytes = 0;
        ref = tu_plan(ckpt, &op, 1, &po);
        po.partial_reads = 1;
        p = tu_plan(ckpt, &op, 1, &po);
        restore_ok(ref, 1);
        trestle_stats st = restore_ok(p, 1);
        trestle_plan_op_info a, b;
        trestle_plan_get_op(p, 0, &a);
        trestle_plan_get_op(ref, 0, &b);
        cr_assert_eq(a.bytes, b.bytes);
        cr_assert_eq(memcmp(a.data, b.data, a.bytes), 0, "part %d", r);
        cr_assert_lt(st.bytes_read, x->bytes);
        trestle_crc_share s;
        trestle_plan_get_crc_share(p, 0, &s);
        uint32_t acc = total.share ^ s.share;
        total = s;
        total.share = acc;
        trestle_plan_free(p);
        trestle_plan_free(ref);
    }
    trestle_error err;
    cr_assert_eq(trestle_crc_shares_check(&total, 1, 2, &err), TRESTLE_OK, "%s", err.message);
}

Test(partial_reads, parts_restore_onto_a_device_alike)
{
    /* Device copies take each run as a verbatim piece too (the CUDA mock
     * in CI; skipped without a device). */
    const tensor *x = &tensors[2];
    trestle_crc_share total = { 0 };
    for (int r = 0; r < 3; r++) {
        trestle_plan *p = plan_part(x->name, 1, r, 3, 0, 1);
        trestle_restore_options ro;
        trestle_stats st;
        trestle_error err;
        trestle_restore_options_init(&ro);
        ro.device = 0;
        int rc = trestle_restore(p, &ro, &st, &err);
        /* Only a missing device skips: a CUDA error is the copier's, a failure. */
        if (rc == TRESTLE_E_NO_DEVICE) {
            trestle_plan_free(p);
            cr_skip("no usable CUDA device: %s", err.message);
        }
        cr_assert_eq(rc, TRESTLE_OK, "%s", err.message);
        uint64_t want;
        uint8_t *ref = ref_part(x, 1, r, 3, &want), *got = malloc(want);
        cr_assert_eq(trestle_plan_read_op(p, 0, got, want, &err), TRESTLE_OK, "%s", err.message);
        cr_assert_eq(memcmp(got, ref, want), 0, "part %d on the device differs", r);
        cr_assert_eq(st.bytes_deferred, want);
        trestle_crc_share s;
        trestle_plan_get_crc_share(p, 0, &s);
        uint32_t acc = total.share ^ s.share;
        total = s;
        total.share = acc;
        free(got);
        free(ref);
        trestle_plan_free(p);
    }
    trestle_error err;
    cr_assert_eq(trestle_crc_shares_check(&total, 1, 3, &err), TRESTLE_OK, "%s", err.message);
}

/* A part's share needs every one of its runs: keeping some extents is refused. */
Test(partial_reads, a_plan_with_partial_reads_cannot_be_kept_to_some_extents)
{
    trestle_plan *p = plan_part("a", 0, 0, 2, 0, 1);
    trestle_error err;
    cr_assert_eq(trestle_plan_crc_share_count(p), 1);
    size_t n = trestle_plan_extent_count(p);
    cr_assert_eq(trestle_plan_keep_extents(p, 0, n, &err), TRESTLE_E_INVALID_ARG);
    cr_assert_str_eq(err.message, "a plan with partial reads (1 tensors whose CRC32C the parts "
                                  "check together) cannot be kept to a range of extents: restore "
                                  "it whole on each rank");
    cr_assert_eq(trestle_plan_extent_count(p), n, "the plan is unchanged");
    trestle_plan_free(p);
}

/* ---- leaving an op's bytes to another process: trestle_plan_drop_op_reads() ---- */

static int count_ready(void *user, size_t i, const trestle_plan_op_info *op)
{
    (void)op;
    ((int *)user)[i]++;
    return 0;
}

Test(partial_reads, a_dropped_op_reads_nothing_and_splits_its_batch)
{
    /* Shard 0 holds a, c and big end to end: one batch with the default
     * 64 KiB gap. Dropping c (the middle) leaves a and big, as two batches,
     * so c's bytes are not read through as a gap. */
    trestle_op ops[] = {
        { .name = "a", .dest_kind = TRESTLE_DEST_ALLOCATE },
        { .name = "b", .dest_kind = TRESTLE_DEST_ALLOCATE },
        { .name = "c", .dest_kind = TRESTLE_DEST_ALLOCATE },
        { .name = "big", .dest_kind = TRESTLE_DEST_ALLOCATE },
    };
    const tensor *a = &tensors[0], *b = &tensors[1], *c = &tensors[2], *big = &tensors[4];
    trestle_plan *p = tu_plan(ckpt, ops, 4, NULL);
    trestle_plan_stats ps;
    trestle_error err;
    trestle_plan_get_stats(p, &ps);
    cr_assert_eq(ps.batches, 2, "shard 0 in one batch, shard 1 in another");
    cr_assert_eq(trestle_plan_drop_op_reads(p, 2, &err), TRESTLE_OK, "%s", err.message);
    trestle_plan_get_stats(p, &ps);
    cr_assert_eq(ps.batches, 3);
    cr_assert_eq(ps.extents, 3);
    cr_assert_eq(ps.read_bytes, a->bytes + b->bytes + big->bytes);
    cr_assert_eq(ps.output_bytes, a->bytes + b->bytes + c->bytes + big->bytes,
                 "c still lands: its bytes come from elsewhere");
    int ready[4] = { 0 };
    trestle_restore_options ro;
    trestle_stats st;
    trestle_restore_options_init(&ro);
    ro.direct = TRESTLE_DIRECT_NEVER;
    ro.on_ready = count_ready;
    ro.user = ready;
    cr_assert_eq(trestle_restore(p, &ro, &st, &err), TRESTLE_OK, "%s", err.message);
    cr_assert_eq(st.bytes_read, a->bytes + b->bytes + big->bytes);
    cr_assert_eq(st.bytes_verified, st.bytes_read);
    cr_assert_eq(st.tensors, 4);
    const tensor *want[] = { a, b, c, big };
    for (size_t i = 0; i < 4; i++) {
        trestle_plan_op_info o;
        trestle_plan_get_op(p, i, &o);
        cr_assert_eq(ready[i], 1, "op %zu reported ready once", i);
        cr_assert_not_null(o.data, "op %zu has its destination", i);
        cr_assert_eq(o.bytes, want[i]->bytes);
        if (i != 2)
            cr_assert_eq(memcmp(o.data, want[i]->data, o.bytes), 0, "op %zu", i);
    }
    trestle_plan_free(p);
}

Test(partial_reads, a_dropped_op_leaves_an_extent_another_op_needs)
{
    const char *renames[] = { "part_of_a=a" };
    trestle_op ops[] = {
        { .name = "a", .dest_kind = TRESTLE_DEST_ALLOCATE },
        { .name = "part_of_a", .shape_and_slices = "12 10 0,4:-",
          .dest_kind = TRESTLE_DEST_ALLOCATE },
    };
    trestle_plan_options po;
    trestle_plan_options_init(&po);
    po.renames = renames;
    po.num_renames = 1;
    trestle_plan *p = tu_plan(ckpt, ops, 2, &po);
    trestle_error err;
    cr_assert_eq(trestle_plan_drop_op_reads(p, 0, &err), TRESTLE_OK, "%s", err.message);
    trestle_plan_stats ps;
    trestle_plan_get_stats(p, &ps);
    cr_assert_eq(ps.extents, 1);
    cr_assert_eq(ps.read_bytes, tensors[0].bytes, "the slice still reads a");
    trestle_stats st = restore_ok(p, 1);
    cr_assert_eq(st.bytes_read, tensors[0].bytes);
    trestle_plan_op_info o;
    trestle_plan_get_op(p, 1, &o);
    cr_assert_eq(memcmp(o.data, tensors[0].data, o.bytes), 0, "rows 0-3 of a");
    trestle_plan_free(p);
}

Test(partial_reads, dropping_reads_is_refused_for_parts_skipped_ops_and_bad_indexes)
{
    trestle_error err;
    trestle_plan *p = plan_part("a", 0, 0, 2, 0, 1);
    size_t extents = trestle_plan_extent_count(p);
    cr_assert_eq(trestle_plan_drop_op_reads(p, 0, &err), TRESTLE_E_INVALID_ARG);
    cr_assert_str_eq(err.message, "op 'a' reads a part of its tensor under partial_reads: its "
                                  "CRC share needs every one of its runs");
    cr_assert_eq(trestle_plan_extent_count(p), extents, "the plan is unchanged");
    cr_assert_eq(trestle_plan_drop_op_reads(p, 1, &err), TRESTLE_E_INVALID_ARG);
    cr_assert_str_eq(err.message, "op index out of range");
    cr_assert_eq(trestle_plan_drop_op_reads(NULL, 0, &err), TRESTLE_E_INVALID_ARG);
    cr_assert_str_eq(err.message, "NULL plan");
    trestle_plan_free(p);
    const char *excludes[] = { "b" };
    trestle_op ops[] = { { .name = "b", .dest_kind = TRESTLE_DEST_ALLOCATE } };
    trestle_plan_options po;
    trestle_plan_options_init(&po);
    po.excludes = excludes;
    po.num_excludes = 1;
    p = tu_plan(ckpt, ops, 1, &po);
    cr_assert_eq(trestle_plan_drop_op_reads(p, 0, &err), TRESTLE_E_INVALID_ARG);
    cr_assert_str_eq(err.message, "op 'b' is skipped: it reads nothing");
    trestle_plan_free(p);
}
