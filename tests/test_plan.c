/*
 * test_plan.c - the restore planner (engine/plan/plan.c, engine/plan/plan_names.c)
 * against checkpoints built in memory: entries filled in by hand, kept in
 * key order, no files. Checks name resolution (renames, RNN table,
 * exclusions, allow_missing), TensorFlow's error texts, slices of plain
 * and partitioned tensors, extent dedupe and batch coalescing, down to the
 * plan.h structures the pipeline consumes.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "checkpoint.h"
#include "plan.h"
#include "testutil.h"

/* ---- a checkpoint in memory ---- */

#define FK_SHARDS 4

typedef struct fake {
    trestle_checkpoint c;
    size_t cap;                     /* entries allocated */
    char *paths[FK_SHARDS];         /* shard_paths */
    int fds[FK_SHARDS];             /* shard_fds: all -1, nothing is read */
} fake;

static void fk_init(fake *f, size_t cap)
{
    static char *const names[FK_SHARDS] = { "fake.data-00000-of-00004", "fake.data-00001-of-00004",
                                            "fake.data-00002-of-00004", "fake.data-00003-of-00004" };
    memset(f, 0, sizeof *f);
    f->cap = cap;
    f->c.entries = calloc(cap, sizeof *f->c.entries);
    f->c.listed = calloc(cap, sizeof *f->c.listed);
    cr_assert(f->c.entries && f->c.listed);
    f->c.prefix = "fake";
    f->c.index_path = "fake.index";
    f->c.num_shards = FK_SHARDS;
    for (int i = 0; i < FK_SHARDS; i++) {
        f->paths[i] = names[i];
        f->fds[i] = -1;
    }
    f->c.shard_paths = f->paths;
    f->c.shard_fds = f->fds;
}

static trestle__entry *fk_entry(fake *f, const char *key, size_t key_len, int kind, int dtype,
                                int rank, const int64_t *dims)
{
    cr_assert_lt(f->c.num_entries, f->cap);
    trestle__entry *e = &f->c.entries[f->c.num_entries++];
    memset(e, 0, sizeof *e);
    e->key = malloc(key_len + 1);
    memcpy(e->key, key, key_len);
    e->key[key_len] = '\0';
    e->key_len = key_len;
    e->kind = kind;
    e->dtype = dtype;
    e->rank = rank;
    e->dims = malloc((rank ? (size_t)rank : 1) * sizeof *e->dims);
    e->num_elements = 1;
    for (int d = 0; d < rank; d++) {
        e->dims[d] = dims[d];
        e->num_elements *= dims[d];
    }
    return e;
}

/* A plain fixed-size tensor at shard:offset. */
static void fk_tensor(fake *f, const char *key, int dtype, int rank, const int64_t *dims,
                      int shard, uint64_t offset)
{
    trestle__entry *e = fk_entry(f, key, strlen(key), TRESTLE__ENTRY_PLAIN, dtype, rank, dims);
    e->shard = shard;
    e->offset = offset;
    e->size = (uint64_t)e->num_elements * trestle_dtype_size(dtype);
    e->crc_masked = 0x1234u + (uint32_t)f->c.num_entries;
}

/* A 1-D uint8 tensor of `size` bytes: byte sizes chosen freely. */
static void fk_bytes(fake *f, const char *key, uint64_t size, int shard, uint64_t offset)
{
    int64_t dims[1] = { (int64_t)size };
    fk_tensor(f, key, TRESTLE_DT_UINT8, 1, dims, shard, offset);
}

/* A DT_STRING tensor (or the object graph) of n elements, `size` stored bytes. */
static void fk_strings(fake *f, const char *key, int kind, int64_t n, uint64_t size, int shard,
                       uint64_t offset)
{
    trestle__entry *e = fk_entry(f, key, strlen(key), kind, TRESTLE_DT_STRING, 1, &n);
    e->shard = shard;
    e->offset = offset;
    e->size = size;
}

/*
 * A [rows, cols] partitioned tensor stored as row blocks, each slice with
 * explicit extents in both dims as Python's partitioners write them. The
 * part entries get NUL-led keys, as real slice keys have; slice_entries
 * hold pre-sort indexes until fk_finish remaps them.
 */
static void fk_partitioned(fake *f, const char *key, int dtype, int64_t rows, int64_t cols,
                           int n, const int64_t *row_start, const int64_t *row_len,
                           const int *shard, const uint64_t *offset)
{
    int64_t dims[2] = { rows, cols };
    trestle__entry *e = fk_entry(f, key, strlen(key), TRESTLE__ENTRY_PARTITIONED, dtype, 2, dims);
    size_t full = f->c.num_entries - 1;
    e->shard = -1;
    e->num_slices = n;
    e->slices = calloc((size_t)n, sizeof *e->slices);
    e->slice_entries = calloc((size_t)n, sizeof *e->slice_entries);
    for (int k = 0; k < n; k++) {
        char part_key[256];
        int len = snprintf(part_key, sizeof part_key, "%c%s%c%d", 1, key, 0, k);
        part_key[0] = '\0';
        int64_t part_dims[2] = { row_len[k], cols };
        trestle__entry *p = fk_entry(f, part_key, (size_t)len, TRESTLE__ENTRY_SLICE_PART, dtype, 2,
                                     part_dims);
        p->shard = shard[k];
        p->offset = offset[k];
        p->size = (uint64_t)p->num_elements * trestle_dtype_size(dtype);
        e = &f->c.entries[full];
        e->slices[k].rank = 2;
        e->slices[k].start[0] = row_start[k];
        e->slices[k].length[0] = row_len[k];
        e->slices[k].start[1] = 0;
        e->slices[k].length[1] = cols;
        e->slice_entries[k] = f->c.num_entries - 1;
        e->size += p->size;
    }
}

typedef struct slot {
    trestle__entry e;
    size_t old;
} slot;

static int compare_slots(const void *a, const void *b)
{
    const trestle__entry *x = &((const slot *)a)->e, *y = &((const slot *)b)->e;
    size_t n = x->key_len < y->key_len ? x->key_len : y->key_len;
    int r = memcmp(x->key, y->key, n);
    return r ? r : (x->key_len > y->key_len) - (x->key_len < y->key_len);
}

/* Sort entries into key order (as trestle_open leaves them), remap slice
 * entries and list the visible tensors. */
static void fk_finish(fake *f)
{
    size_t n = f->c.num_entries;
    slot *s = calloc(n ? n : 1, sizeof *s);
    size_t *where = calloc(n ? n : 1, sizeof *where);
    for (size_t i = 0; i < n; i++)
        s[i] = (slot){ f->c.entries[i], i };
    qsort(s, n, sizeof *s, compare_slots);
    for (size_t i = 0; i < n; i++) {
        f->c.entries[i] = s[i].e;
        where[s[i].old] = i;
    }
    f->c.num_listed = 0;
    for (size_t i = 0; i < n; i++) {
        trestle__entry *e = &f->c.entries[i];
        for (int k = 0; k < e->num_slices; k++)
            e->slice_entries[k] = where[e->slice_entries[k]];
        if (e->kind != TRESTLE__ENTRY_SLICE_PART)
            f->c.listed[f->c.num_listed++] = i;
    }
    free(s);
    free(where);
}

static void fk_free(fake *f)
{
    for (size_t i = 0; i < f->c.num_entries; i++) {
        free(f->c.entries[i].key);
        free(f->c.entries[i].dims);
        free(f->c.entries[i].slices);
        free(f->c.entries[i].slice_entries);
    }
    free(f->c.entries);
    free(f->c.listed);
}

/* Expect failure with `code`; returns the error for further checks. */
static trestle_error plan_fails(const fake *f, const trestle_op *ops, size_t n,
                                const trestle_plan_options *po, int code)
{
    trestle_plan *p = (trestle_plan *)1;
    trestle_error err;
    int rc = trestle_plan_create(&f->c, ops, n, po, &p, &err);
    cr_assert_eq(rc, code, "got %s: %s", trestle_code_name(rc), err.message);
    cr_assert_eq(err.code, code);
    cr_assert_null(p);
    return err;
}

static size_t entry_of(const fake *f, const char *key)
{
    size_t at = trestle__checkpoint_lookup(&f->c, key, strlen(key));
    cr_assert_neq(at, (size_t)-1, "%s", key);
    return at;
}

/* The SLICE_PART entry of stored slice k of `key`. */
static size_t part_of(const fake *f, const char *key, int k)
{
    return f->c.entries[entry_of(f, key)].slice_entries[k];
}

static void assert_slice(const trestle__slice *s, int64_t s0, int64_t l0, int64_t s1, int64_t l1)
{
    cr_assert_eq(s->rank, 2);
    cr_assert_eq(s->start[0], s0, "start0 %lld", (long long)s->start[0]);
    cr_assert_eq(s->length[0], l0, "length0 %lld", (long long)s->length[0]);
    cr_assert_eq(s->start[1], s1, "start1 %lld", (long long)s->start[1]);
    cr_assert_eq(s->length[1], l1, "length1 %lld", (long long)s->length[1]);
}

/* Invariants of plan.h every plan must keep. */
static void assert_invariants(const trestle_plan *p)
{
    size_t pieces = 0;
    for (size_t i = 0; i < p->num_extents; i++) {
        const trestle__extent *x = &p->extents[i];
        if (i > 0) {
            const trestle__extent *w = &p->extents[i - 1];
            cr_assert(w->shard < x->shard ||
                      (w->shard == x->shard && w->offset + w->size <= x->offset));
        }
        cr_assert_eq(x->first_piece, pieces);
        pieces += x->num_pieces;
        for (size_t j = x->first_piece; j < x->first_piece + x->num_pieces; j++) {
            const trestle__piece *pc = &p->pieces[j];
            if (pc->region == TRESTLE__NO_REGION)
                cr_assert_leq(pc->dst_offset + x->size, p->ops[pc->op].bytes);
            else
                cr_assert_lt(pc->region, p->num_regions);
        }
    }
    cr_assert_eq(pieces, p->num_pieces);
    size_t next = 0;
    for (size_t b = 0; b < p->num_batches; b++) {
        const trestle__batch *t = &p->batches[b];
        const trestle__extent *first = &p->extents[t->first_extent];
        const trestle__extent *last = &p->extents[t->first_extent + t->num_extents - 1];
        cr_assert_eq(t->first_extent, next);
        cr_assert_eq(t->offset, first->offset);
        cr_assert_eq(t->length, last->offset + last->size - t->offset);
        next += t->num_extents;
    }
    cr_assert_eq(next, p->num_extents);
    for (size_t o = 0; o < p->num_ops; o++) {
        uint32_t n = 0;
        for (size_t j = 0; j < p->num_pieces; j++)
            n += p->pieces[j].op == o;
        cr_assert_eq(p->ops[o].num_pieces, n, "op %zu", o);
        if (p->ops[o].skipped)
            cr_assert_eq(n, 0);
    }
}

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
    assert_invariants(p);
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
    cr_assert_eq(p->extents[0].entry, entry_of(&f, "a/float"));
    cr_assert_eq(p->extents[0].offset, 0);
    cr_assert_eq(p->extents[0].size, 24);
    cr_assert_eq(p->extents[1].entry, entry_of(&f, "b/int"));
    cr_assert_eq(p->extents[1].crc_masked, f.c.entries[entry_of(&f, "b/int")].crc_masked);
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
    assert_invariants(p);
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
    cr_assert(extent_of(p, entry_of(&f, TRESTLE_OBJECT_GRAPH_KEY))->is_string);
    cr_assert_not(extent_of(p, entry_of(&f, "w"))->is_string);
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
    assert_invariants(p);
    cr_assert_eq(p->num_extents, 0);
    cr_assert_eq(p->num_batches, 0);
    cr_assert_eq(p->ops[0].num_pieces, 0);
    cr_assert_eq(p->ops[0].skipped, 0);
    cr_assert_eq(p->ops[0].bytes, 0);
    trestle_plan_free(p);
    fk_free(&f);
}

/* ---- names ---- */

static fake rnn_model(void)
{
    fake f;
    fk_init(&f, 16);
    int64_t d[1] = { 4 };
    fk_tensor(&f, "rnn/lstm_cell/kernel", TRESTLE_DT_FLOAT, 1, d, 0, 0);
    fk_tensor(&f, "rnn/lstm_cell/bias", TRESTLE_DT_FLOAT, 1, d, 0, 16);
    fk_tensor(&f, "old/gru_cell/weights", TRESTLE_DT_FLOAT, 1, d, 0, 32);
    fk_tensor(&f, "input/w", TRESTLE_DT_FLOAT, 1, d, 0, 48);
    fk_tensor(&f, "input/deep/w", TRESTLE_DT_FLOAT, 1, d, 0, 64);
    fk_tensor(&f, "exact/w", TRESTLE_DT_FLOAT, 1, d, 0, 80);
    fk_finish(&f);
    return f;
}

static const char *key_of(const trestle_plan *p, size_t i)
{
    trestle_plan_op_info info;
    cr_assert_eq(trestle_plan_get_op(p, i, &info), TRESTLE_OK);
    return info.key;
}

Test(plan, exact_rename_maps_the_whole_name)
{
    fake f = rnn_model();
    const char *renames[] = { "graph/w=exact/w" };
    trestle_plan_options po;
    trestle_plan_options_init(&po);
    po.renames = renames;
    po.num_renames = 1;
    trestle_op ops[] = { { .name = "graph/w" } };
    trestle_plan *p = tu_plan(&f.c, ops, 1, &po);
    cr_assert_str_eq(key_of(p, 0), "exact/w");
    trestle_plan_op_info info;
    trestle_plan_get_op(p, 0, &info);
    cr_assert_str_eq(info.name, "graph/w", "the op keeps its graph name");
    trestle_plan_free(p);
    fk_free(&f);
}

Test(plan, prefix_renames_take_the_longest_prefix_and_exact_rules_win)
{
    fake f = rnn_model();
    const char *renames[] = { "init/=input/", "init/deep/=input/deep/", "init/x=exact/w" };
    trestle_plan_options po;
    trestle_plan_options_init(&po);
    po.renames = renames;
    po.num_renames = 3;
    trestle_op ops[] = { { .name = "init/w" }, { .name = "init/deep/w" }, { .name = "init/x" } };
    trestle_plan *p = tu_plan(&f.c, ops, 3, &po);
    cr_assert_str_eq(key_of(p, 0), "input/w");
    cr_assert_str_eq(key_of(p, 1), "input/deep/w");
    cr_assert_str_eq(key_of(p, 2), "exact/w");
    trestle_plan_free(p);
    fk_free(&f);
}

Test(plan, rejects_a_rename_rule_without_an_equals_sign)
{
    fake f = rnn_model();
    const char *renames[] = { "init/" };
    trestle_plan_options po;
    trestle_plan_options_init(&po);
    po.renames = renames;
    po.num_renames = 1;
    trestle_op ops[] = { { .name = "init/w" } };
    trestle_error err = plan_fails(&f, ops, 1, &po, TRESTLE_E_INVALID_ARG);
    cr_assert(strstr(err.message, "init/") != NULL, "%s", err.message);
    fk_free(&f);
}

Test(plan, rnn_renames_load_old_names_from_a_new_checkpoint)
{
    fake f = rnn_model();
    const char *renames[] = { "old/=rnn/" };
    trestle_plan_options po;
    trestle_plan_options_init(&po);
    po.renames = renames;
    po.num_renames = 1;
    po.tf1_rnn_renames = 1;
    trestle_op ops[] = { { .name = "old/lstm_cell/weights" }, { .name = "rnn/lstm_cell/biases" } };
    trestle_plan *p = tu_plan(&f.c, ops, 2, &po);
    cr_assert_str_eq(key_of(p, 0), "rnn/lstm_cell/kernel");
    cr_assert_str_eq(key_of(p, 1), "rnn/lstm_cell/bias");
    trestle_plan_free(p);
    fk_free(&f);
}

Test(plan, rnn_renames_load_new_names_from_an_old_checkpoint)
{
    fake f = rnn_model();
    trestle_plan_options po;
    trestle_plan_options_init(&po);
    po.tf1_rnn_renames = 1;
    trestle_op ops[] = { { .name = "old/gru_cell/kernel" } };
    trestle_plan *p = tu_plan(&f.c, ops, 1, &po);
    cr_assert_str_eq(key_of(p, 0), "old/gru_cell/weights");
    trestle_plan_free(p);
    fk_free(&f);
}

Test(plan, rnn_renames_are_off_unless_asked_for)
{
    fake f = rnn_model();
    trestle_op ops[] = { { .name = "rnn/lstm_cell/weights" } };
    trestle_error err = plan_fails(&f, ops, 1, NULL, TRESTLE_E_KEY_NOT_FOUND);
    cr_assert_str_eq(err.message, "Key rnn/lstm_cell/weights not found in checkpoint (did you "
                                  "mean rnn/lstm_cell/kernel?)");
    fk_free(&f);
}

Test(plan, exclusions_skip_matching_ops_at_any_depth)
{
    fake f = rnn_model();
    const char *excludes[] = { "*/w", "nothing*" };
    trestle_plan_options po;
    trestle_plan_options_init(&po);
    po.excludes = excludes;
    po.num_excludes = 2;
    trestle_op ops[] = { { .name = "input/deep/w" }, { .name = "rnn/lstm_cell/bias" },
                         { .name = "absent/w" } };
    trestle_plan *p = tu_plan(&f.c, ops, 3, &po);
    assert_invariants(p);
    trestle_plan_op_info info;
    trestle_plan_get_op(p, 0, &info);
    cr_assert_eq(info.skipped, 1);
    cr_assert_null(info.key);
    trestle_plan_get_op(p, 2, &info);
    cr_assert_eq(info.skipped, 1, "excluded before lookup, so never missing");
    trestle_plan_get_op(p, 1, &info);
    cr_assert_eq(info.skipped, 0);
    cr_assert_eq(p->num_extents, 1);
    trestle_plan_stats st;
    trestle_plan_get_stats(p, &st);
    cr_assert_eq(st.skipped, 2);
    cr_assert_eq(st.output_bytes, 16);
    trestle_plan_free(p);
    fk_free(&f);
}

Test(plan, allow_missing_skips_absent_keys)
{
    fake f = rnn_model();
    trestle_plan_options po;
    trestle_plan_options_init(&po);
    po.allow_missing = 1;
    trestle_op ops[] = { { .name = "gone" }, { .name = "exact/w", .dtype = TRESTLE_DT_FLOAT } };
    trestle_plan *p = tu_plan(&f.c, ops, 2, &po);
    assert_invariants(p);
    trestle_plan_op_info info;
    trestle_plan_get_op(p, 0, &info);
    cr_assert_eq(info.skipped, 2);
    cr_assert_null(info.key);
    cr_assert_eq(info.bytes, 0);
    trestle_plan_get_op(p, 1, &info);
    cr_assert_eq(info.skipped, 0);
    cr_assert_eq(p->num_pieces, 1);
    trestle_plan_stats st;
    trestle_plan_get_stats(p, &st);
    cr_assert_eq(st.skipped, 1);
    trestle_plan_free(p);
    fk_free(&f);
}

/* ---- error reports ---- */

static fake names_model(void)
{
    fake f;
    fk_init(&f, 32);
    int64_t d[1] = { 2 };
    const char *keys[] = {
        "rnn/lstm_cell/bias", "rnn/lstm_cell/kernel", "dense/bias", "dense/kernel",
        "model/layer/.ATTRIBUTES/VARIABLE_VALUE", "conv1/w", "conv2/w", "conv3/w",
        "head/w1", "head/w2", "x/gru_cell/weights",
    };
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        fk_tensor(&f, keys[i], TRESTLE_DT_FLOAT, 1, d, 0, 8 * i);
    fk_finish(&f);
    return f;
}

Test(plan, reports_every_missing_key_sorted_with_suggestions)
{
    fake f = names_model();
    trestle_op ops[] = {
        { .name = "x/gru_cell/kernel" }, { .name = "totally/unrelated" },
        { .name = "rnn/lstm_cell/biases" }, { .name = "model/layer" }, { .name = "dense/bias" },
        { .name = "head/w" }, { .name = "dense/bais" }, { .name = "conv4/w" },
        { .name = "dense/bais", .dtype = TRESTLE_DT_INT8 },
    };
    trestle_error err = plan_fails(&f, ops, 9, NULL, TRESTLE_E_KEY_NOT_FOUND);
    cr_assert_str_eq(err.message,
                     "Key conv4/w not found in checkpoint (did you mean conv1/w, conv2/w or "
                     "conv3/w?)\n"
                     "Key dense/bais not found in checkpoint (did you mean dense/bias?)\n"
                     "Key head/w not found in checkpoint (did you mean head/w1 or head/w2?)\n"
                     "Key model/layer not found in checkpoint (did you mean "
                     "model/layer/.ATTRIBUTES/VARIABLE_VALUE?)\n"
                     "Key rnn/lstm_cell/biases not found in checkpoint (did you mean "
                     "rnn/lstm_cell/bias?)\n"
                     "Key totally/unrelated not found in checkpoint\n"
                     "Key x/gru_cell/kernel not found in checkpoint (did you mean "
                     "x/gru_cell/weights?)");
    cr_assert_str_eq(err.key, "conv4/w");
    cr_assert_str_eq(err.path, "fake.index");
    fk_free(&f);
}

Test(plan, strips_the_tf2_suffix_in_suggestions)
{
    fake f = names_model();
    trestle_op ops[] = { { .name = "conv1/w/.ATTRIBUTES/VARIABLE_VALUE" } };
    trestle_error err = plan_fails(&f, ops, 1, NULL, TRESTLE_E_KEY_NOT_FOUND);
    cr_assert_str_eq(err.message, "Key conv1/w/.ATTRIBUTES/VARIABLE_VALUE not found in "
                                  "checkpoint (did you mean conv1/w?)");
    fk_free(&f);
}

Test(plan, names_the_renamed_key_when_it_is_missing)
{
    fake f = names_model();
    const char *renames[] = { "g/=dense/" };
    trestle_plan_options po;
    trestle_plan_options_init(&po);
    po.renames = renames;
    po.num_renames = 1;
    trestle_op ops[] = { { .name = "g/bais" } };
    trestle_error err = plan_fails(&f, ops, 1, &po, TRESTLE_E_KEY_NOT_FOUND);
    cr_assert_str_eq(err.message,
                     "Key dense/bais not found in checkpoint (did you mean dense/bias?)");
    fk_free(&f);
}

Test(plan, missing_keys_are_reported_before_dtype_mismatches)
{
    fake f = names_model();
    trestle_op ops[] = { { .name = "dense/bias", .dtype = TRESTLE_DT_INT64 }, { .name = "nope" } };
    trestle_error err = plan_fails(&f, ops, 2, NULL, TRESTLE_E_KEY_NOT_FOUND);
    cr_assert_str_eq(err.message, "Key nope not found in checkpoint");
    fk_free(&f);
}

Test(plan, reports_every_dtype_mismatch_in_one_error)
{
    fake f;
    fk_init(&f, 8);
    int64_t d[1] = { 2 };
    fk_tensor(&f, "b_int", TRESTLE_DT_INT32, 1, d, 0, 0);
    fk_tensor(&f, "a_float", TRESTLE_DT_FLOAT, 1, d, 0, 8);
    fk_tensor(&f, "c_ok", TRESTLE_DT_BFLOAT16, 1, d, 0, 16);
    fk_finish(&f);
    trestle_op ops[] = {
        { .name = "b_int", .dtype = TRESTLE_DT_FLOAT },
        { .name = "c_ok", .dtype = TRESTLE_DT_BFLOAT16 },
        { .name = "a_float", .dtype = TRESTLE_DT_DOUBLE },
    };
    trestle_error err = plan_fails(&f, ops, 3, NULL, TRESTLE_E_DTYPE_MISMATCH);
    cr_assert_str_eq(err.message,
                     "tensor_name = a_float; expected dtype double does not equal original dtype "
                     "float\n"
                     "tensor_name = b_int; expected dtype float does not equal original dtype "
                     "int32");
    cr_assert_str_eq(err.key, "a_float");
    fk_free(&f);
}

Test(plan, rejects_a_spec_whose_shape_differs_from_the_stored_one)
{
    fake f;
    fk_init(&f, 4);
    int64_t d[2] = { 4, 5 };
    fk_tensor(&f, "m", TRESTLE_DT_FLOAT, 2, d, 0, 0);
    fk_finish(&f);
    trestle_op op = { .name = "m", .shape_and_slices = "4 6 0,2:-" };
    trestle_error err = plan_fails(&f, &op, 1, NULL, TRESTLE_E_SHAPE_MISMATCH);
    cr_assert_str_eq(err.message, "tensor_name = m; shape in shape_and_slice spec [4,6] does not "
                                  "match the shape stored in checkpoint: [4,5]");
    cr_assert_str_eq(err.key, "m");
    trestle_op rank = { .name = "m", .shape_and_slices = "4 5 2 -:-:-" };
    err = plan_fails(&f, &rank, 1, NULL, TRESTLE_E_SHAPE_MISMATCH);
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
    trestle_error err = plan_fails(&f, &op, 1, NULL, TRESTLE_E_BAD_SPEC);
    cr_assert_str_eq(err.key, "m");
    cr_assert(strstr(err.message, "m") != NULL, "%s", err.message);
    trestle_op out_of_bounds = { .name = "m", .shape_and_slices = "4 5 0,7:-" };
    plan_fails(&f, &out_of_bounds, 1, NULL, TRESTLE_E_BAD_SPEC);
    fk_free(&f);
}

Test(plan, rejects_a_destination_smaller_than_the_tensor)
{
    fake f;
    small_model(&f);
    float buf[6];
    trestle_op op = { .name = "a/float", .dest_kind = TRESTLE_DEST_HOST, .ptr = buf,
                      .capacity = 10 };
    trestle_error err = plan_fails(&f, &op, 1, NULL, TRESTLE_E_INVALID_ARG);
    cr_assert(strstr(err.message, "a/float") != NULL, "%s", err.message);
    cr_assert(strstr(err.message, "10") != NULL, "%s", err.message);
    cr_assert(strstr(err.message, "24") != NULL, "%s", err.message);
    cr_assert_str_eq(err.key, "a/float");
    trestle_op null_ptr = { .name = "a/float", .dest_kind = TRESTLE_DEST_DEVICE, .capacity = 24 };
    err = plan_fails(&f, &null_ptr, 1, NULL, TRESTLE_E_INVALID_ARG);
    cr_assert(strstr(err.message, "NULL") != NULL, "%s", err.message);
    trestle_op bad_kind = { .name = "a/float", .dest_kind = 7 };
    plan_fails(&f, &bad_kind, 1, NULL, TRESTLE_E_INVALID_ARG);
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
    trestle_error err = plan_fails(&f, &slice, 1, NULL, TRESTLE_E_UNSUPPORTED);
    cr_assert_str_eq(err.key, "s");
    trestle_op whole = { .name = "s", .shape_and_slices = "4 0,4" };
    trestle_plan *p = tu_plan(&f.c, &whole, 1, NULL);
    cr_assert_eq(p->ops[0].bytes, 20, "a covering spec is whole, so strings are fine");
    trestle_plan_free(p);
    trestle_op variant = { .name = "v" };
    err = plan_fails(&f, &variant, 1, NULL, TRESTLE_E_UNSUPPORTED);
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
    assert_invariants(p);
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
    assert_invariants(p);
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
    assert_invariants(p);
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
    assert_invariants(p);
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
    trestle_error err = plan_fails(&f, &whole, 1, NULL, TRESTLE_E_INSUFFICIENT_SLICES);
    cr_assert_str_eq(err.message, "Does not have sufficient slices for partitioned tensor gap to "
                                  "restore in slice_spec: -:-");
    cr_assert_str_eq(err.key, "gap");
    trestle_op part = { .name = "gap", .shape_and_slices = "10 4 2,2:-" };
    err = plan_fails(&f, &part, 1, NULL, TRESTLE_E_INSUFFICIENT_SLICES);
    cr_assert_str_eq(err.message, "Does not have sufficient slices for partitioned tensor gap to "
                                  "restore in slice_spec: 2,2:-");
    trestle_op covered = { .name = "gap", .shape_and_slices = "10 4 5,5:1,2" };
    trestle_plan *p = tu_plan(&f.c, &covered, 1, NULL);
    cr_assert_eq(p->num_extents, 1);
    assert_slice(&p->regions[0].cut, 5, 5, 1, 2);
    trestle_plan_free(p);
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
    assert_invariants(p);
    cr_assert_eq(p->num_extents, 2);
    const trestle__extent *x = extent_of(p, entry_of(&f, "a/float"));
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
    assert_invariants(p);
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

Test(plan, refuses_two_tensors_sharing_bytes)
{
    fake f;
    fk_init(&f, 4);
    fk_bytes(&f, "x", 100, 0, 0);
    fk_bytes(&f, "y", 100, 0, 50);
    fk_finish(&f);
    trestle_error err = plan_fails(&f, NULL, 0, NULL, TRESTLE_E_CORRUPT);
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
    assert_invariants(p);
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

/* ---- scale ---- */

Test(plan, missing_key_report_stays_fast_and_bounded_on_100k_keys)
{
    enum { N = 100000, MISSING = 200 };
    fake f;
    fk_init(&f, N);
    int64_t d[1] = { 1 };
    for (int i = 0; i < N; i++) {
        char key[64];
        snprintf(key, sizeof key, "model/block_%03d/layer_%02d/dense/kernel", i / 100, i % 100);
        fk_tensor(&f, key, TRESTLE_DT_FLOAT, 1, d, 0, 4 * (uint64_t)i);
    }
    fk_finish(&f);
    trestle_op *ops = calloc(MISSING, sizeof *ops);
    char (*names)[64] = calloc(MISSING, sizeof *names);
    for (int i = 0; i < MISSING; i++) {
        snprintf(names[i], sizeof names[i], "model/block_%03d/layer_%02d/dense/kernal", i, i % 100);
        ops[i].name = names[i];
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    trestle_error err = plan_fails(&f, ops, MISSING, NULL, TRESTLE_E_KEY_NOT_FOUND);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    cr_assert_lt(secs, 20.0, "took %.2f s", secs); /* generous: sanitizer builds are slow */
    const char *first = "Key model/block_000/layer_00/dense/kernal not found in checkpoint (did "
                        "you mean model/block_000/layer_00/dense/kernel?)\n";
    cr_assert(strncmp(err.message, first, strlen(first)) == 0, "%s", err.message);
    cr_assert(strstr(err.message, "more missing keys") != NULL, "%s", err.message);
    cr_assert_lt(strlen(err.message), TRESTLE_ERROR_MESSAGE_MAX);
    free(ops);
    free(names);
    fk_free(&f);
}
