/*
 * planfake.c - a checkpoint built in memory for the planner suites (see
 * planfake.h).
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "planfake.h"

void fk_init(fake *f, size_t cap)
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

trestle__entry *fk_entry(fake *f, const char *key, size_t key_len, int kind, int dtype,
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

void fk_tensor(fake *f, const char *key, int dtype, int rank, const int64_t *dims,
               int shard, uint64_t offset)
{
    trestle__entry *e = fk_entry(f, key, strlen(key), TRESTLE__ENTRY_PLAIN, dtype, rank, dims);
    e->shard = shard;
    e->offset = offset;
    e->size = (uint64_t)e->num_elements * trestle_dtype_size(dtype);
    e->crc_masked = 0x1234u + (uint32_t)f->c.num_entries;
}

void fk_bytes(fake *f, const char *key, uint64_t size, int shard, uint64_t offset)
{
    int64_t dims[1] = { (int64_t)size };
    fk_tensor(f, key, TRESTLE_DT_UINT8, 1, dims, shard, offset);
}

void fk_strings(fake *f, const char *key, int kind, int64_t n, uint64_t size, int shard,
                uint64_t offset)
{
    trestle__entry *e = fk_entry(f, key, strlen(key), kind, TRESTLE_DT_STRING, 1, &n);
    e->shard = shard;
    e->offset = offset;
    e->size = size;
}

void fk_partitioned(fake *f, const char *key, int dtype, int64_t rows, int64_t cols,
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

void fk_finish(fake *f)
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

void fk_free(fake *f)
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

trestle_error fk_plan_fails(const fake *f, const trestle_op *ops, size_t n,
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

size_t fk_entry_of(const fake *f, const char *key)
{
    size_t at = trestle__checkpoint_lookup(&f->c, key, strlen(key));
    cr_assert_neq(at, (size_t)-1, "%s", key);
    return at;
}

void fk_assert_invariants(const trestle_plan *p)
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
