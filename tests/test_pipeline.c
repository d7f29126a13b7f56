/*
 * test_pipeline.c - the restore pipeline (engine/restore/, the readers,
 * the staging pool and the host copier) driven directly: each test writes
 * shard files of random bytes, builds a struct trestle_checkpoint and a
 * struct trestle_plan by hand (with the planner's invariants, plan.h), and
 * checks what lands in the destinations, the error codes and messages, the
 * callbacks and the stats. Every behaviour runs with both readers, with
 * chunks small enough that tensors span several of them.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* qsort_r, asprintf, O_DIRECT (CMake defines it; plain builds may not) */
#endif
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "checkpoint.h"
#include "copy.h"
#include "crc32c.h"
#include "cuda_host.h"
#include "plan.h"
#include "restore.h"
#include "staging.h"
#include "string_tensor.h"
#include "testutil.h"
#include "trestle.h"

#define MAX_ITEMS 256

/* ---- a hand-made checkpoint and plan ---- */

typedef struct want {
    size_t entry, op;
    uint32_t region;
    uint64_t dst_offset;
} want;

typedef struct fx {
    char *dir;
    int nshards;
    char *paths[8];
    int fds[8], errnos[8];
    uint64_t sizes[8];
    uint8_t *data[8];                 /* shard contents as written */
    trestle__entry entries[MAX_ITEMS];
    int64_t dims[MAX_ITEMS][3];
    size_t nentries;
    trestle__plan_op ops[MAX_ITEMS];
    size_t nops;
    trestle__region regions[8];
    size_t nregions;
    want wants[MAX_ITEMS];
    size_t nwants;
    trestle__extent extents[MAX_ITEMS];
    trestle__piece pieces[MAX_ITEMS];
    trestle__batch batches[MAX_ITEMS];
    struct trestle_checkpoint ckpt;
    trestle_plan plan;
} fx;

static fx *fx_new(int nshards)
{
    fx *f = calloc(1, sizeof *f);
    cr_assert(f);
    f->dir = tu_mkdtemp();
    cr_assert(f->dir);
    f->nshards = nshards;
    for (int s = 0; s < nshards; s++) {
        cr_assert(asprintf(&f->paths[s], "%s/ckpt.data-%05d-of-%05d", f->dir, s, nshards) > 0);
        f->fds[s] = -1;
    }
    return f;
}

/* Append `gap` random bytes and then `size` bytes (random from `seed`, or
 * `bytes`) to shard s; returns the entry index. */
static size_t fx_entry(fx *f, const char *key, int kind, int dtype, int rank,
                       const int64_t *dims, int shard, uint64_t size, uint64_t gap,
                       const void *bytes, uint64_t seed)
{
    size_t i = f->nentries++;
    uint64_t at = f->sizes[shard];
    f->data[shard] = realloc(f->data[shard], at + gap + size + 1);
    cr_assert(f->data[shard]);
    tu_fill_random(f->data[shard] + at, gap, seed ^ 0x5eed);
    if (bytes)
        memcpy(f->data[shard] + at + gap, bytes, size);
    else
        tu_fill_random(f->data[shard] + at + gap, size, seed);
    f->sizes[shard] = at + gap + size;
    trestle__entry *e = &f->entries[i];
    e->key = strdup(key);
    e->key_len = strlen(key);
    e->kind = kind;
    e->dtype = dtype;
    e->rank = rank;
    memcpy(f->dims[i], dims, (size_t)rank * sizeof *dims);
    e->dims = f->dims[i];
    e->num_elements = 1;
    for (int d = 0; d < rank; d++)
        e->num_elements *= dims[d];
    e->shard = shard;
    e->offset = at + gap;
    e->size = size;
    e->crc_masked = trestle__crc_mask(trestle__crc32c(f->data[shard] + e->offset, size));
    return i;
}

/* A plain uint8 tensor of `size` random bytes. */
static size_t fx_blob(fx *f, const char *key, int shard, uint64_t size, uint64_t gap,
                      uint64_t seed)
{
    int64_t dims[1] = { (int64_t)size };
    return fx_entry(f, key, TRESTLE__ENTRY_PLAIN, TRESTLE_DT_UINT8, 1, dims, shard, size, gap,
                    NULL, seed);
}

static size_t fx_op(fx *f, size_t entry, int dest_kind, void *dest, uint64_t bytes, int rank,
                    const int64_t *dims)
{
    size_t i = f->nops++;
    trestle__plan_op *op = &f->ops[i];
    op->name = strdup(f->entries[entry].key);
    op->key = f->entries[entry].key;
    op->entry = entry;
    op->dtype = f->entries[entry].dtype;
    op->rank = rank;
    op->dims = malloc(((size_t)rank + 1) * sizeof *op->dims);
    memcpy(op->dims, dims, (size_t)rank * sizeof *dims);
    op->bytes = bytes;
    op->whole = true;
    op->dest_kind = dest_kind;
    op->dest = dest;
    return i;
}

/* The whole of `entry`, verbatim, into `dest_kind`/`dest`. */
static size_t fx_whole(fx *f, size_t entry, int dest_kind, void *dest)
{
    const trestle__entry *e = &f->entries[entry];
    size_t op = fx_op(f, entry, dest_kind, dest, e->size, e->rank, e->dims);
    f->wants[f->nwants++] = (want){ entry, op, TRESTLE__NO_REGION, 0 };
    return op;
}

static void fx_region(fx *f, size_t entry, size_t op, const trestle__slice *src,
                      const trestle__slice *dst, const trestle__slice *cut, const int64_t *full)
{
    trestle__region *r = &f->regions[f->nregions];
    r->src = *src;
    r->dst = *dst;
    r->cut = *cut;
    r->dims = full;
    r->elem_size = trestle_dtype_size(f->entries[entry].dtype);
    f->ops[op].whole = false;
    f->wants[f->nwants++] = (want){ entry, op, (uint32_t)f->nregions++, 0 };
}

static int cmp_want(const void *a, const void *b, void *arg)
{
    const fx *f = arg;
    const want *x = a, *y = b;
    const trestle__entry *ex = &f->entries[x->entry], *ey = &f->entries[y->entry];
    if (ex->shard != ey->shard)
        return ex->shard - ey->shard;
    if (ex->offset != ey->offset)
        return ex->offset < ey->offset ? -1 : 1;
    return (x->op > y->op) - (x->op < y->op);
}

/* Write the shards, open them, and derive extents, pieces and batches the
 * way plan.c does (max_gap 64 KiB, max_batch as given). */
static void fx_finish(fx *f, uint64_t max_batch)
{
    for (int s = 0; s < f->nshards; s++) {
        cr_assert_eq(tu_write_file(f->paths[s], f->data[s] ? f->data[s] : (uint8_t *)"",
                                   f->sizes[s]), 0);
        f->fds[s] = open(f->paths[s], O_RDONLY | O_CLOEXEC);
        cr_assert_geq(f->fds[s], 0);
    }
    f->ckpt.num_shards = f->nshards;
    f->ckpt.shard_paths = f->paths;
    f->ckpt.shard_fds = f->fds;
    f->ckpt.shard_errno = f->errnos;
    f->ckpt.shard_sizes = f->sizes;
    f->ckpt.entries = f->entries;
    f->ckpt.num_entries = f->nentries;

    trestle_plan *p = &f->plan;
    p->extents = f->extents;
    p->pieces = f->pieces;
    p->batches = f->batches;
    qsort_r(f->wants, f->nwants, sizeof *f->wants, cmp_want, f);
    for (size_t i = 0; i < f->nwants; i++) {
        const want *w = &f->wants[i];
        const trestle__entry *e = &f->entries[w->entry];
        if (!p->num_extents || p->extents[p->num_extents - 1].entry != w->entry)
            p->extents[p->num_extents++] = (trestle__extent){
                .entry = w->entry, .shard = e->shard, .offset = e->offset, .size = e->size,
                .crc_masked = e->crc_masked, .is_string = e->dtype == TRESTLE_DT_STRING,
                .first_piece = p->num_pieces };
        p->extents[p->num_extents - 1].num_pieces++;
        p->pieces[p->num_pieces++] = (trestle__piece){ w->op, w->region, w->dst_offset };
        f->ops[w->op].num_pieces++;
    }
    for (size_t i = 0; i < p->num_extents; i++) {
        const trestle__extent *x = &p->extents[i];
        trestle__batch *t = p->num_batches ? &p->batches[p->num_batches - 1] : NULL;
        if (t && t->shard == x->shard && x->offset - (t->offset + t->length) <= (64 << 10) &&
            x->offset + x->size - t->offset <= max_batch) {
            t->length = x->offset + x->size - t->offset;
            t->num_extents++;
        } else {
            p->batches[p->num_batches++] = (trestle__batch){ x->shard, x->offset, x->size, i, 1 };
        }
    }
    p->ckpt = &f->ckpt;
    p->ops = f->ops;
    p->num_ops = f->nops;
    p->regions = f->regions;
    p->num_regions = f->nregions;
    atomic_init(&p->cancel, 0);
}

static void fx_free(fx *f)
{
    trestle__arena_release(f->plan.arena);
    trestle__staging_free(f->plan.staging); /* what trestle_plan_free would free */
    for (size_t i = 0; i < f->nops; i++) {
        free(f->ops[i].name);
        free(f->ops[i].dims);
    }
    for (size_t i = 0; i < f->nentries; i++)
        free(f->entries[i].key);
    for (int s = 0; s < f->nshards; s++) {
        if (f->fds[s] >= 0)
            close(f->fds[s]);
        free(f->paths[s]);
        free(f->data[s]);
    }
    tu_rmtree(f->dir);
    free(f->dir);
    free(f);
}

/* Bytes of entry i as stored. */
static const uint8_t *fx_bytes(const fx *f, size_t i)
{
    return f->data[f->entries[i].shard] + f->entries[i].offset;
}

static void fx_flip_byte(fx *f, int shard, uint64_t at)
{
    int fd = open(f->paths[shard], O_RDWR);
    uint8_t b;
    cr_assert_eq(pread(fd, &b, 1, (off_t)at), 1);
    b ^= 0x10;
    cr_assert_eq(pwrite(fd, &b, 1, (off_t)at), 1);
    close(fd);
    f->data[shard][at] = b;
}

/* ---- running restores ---- */

static const int both_readers[] = { TRESTLE_READER_IO_URING, TRESTLE_READER_PREAD };

static void small_opts(trestle_restore_options *o, int reader)
{
    trestle_restore_options_init(o);
    o->reader = reader;
    o->chunk_bytes = 64 << 10;
    o->staging_bytes = 256 << 10;
    o->threads = 2;
    o->queue_depth = 8;
}

typedef struct ready_log {
    atomic_int calls[MAX_ITEMS];
    atomic_int total;
    int cancel_after; /* return 1 on this call number (1-based), 0 = never */
    trestle_plan *plan_to_cancel; /* call trestle_restore_cancel on it instead */
} ready_log;

static int on_ready(void *user, size_t i, const trestle_plan_op_info *op)
{
    ready_log *log = user;
    cr_assert_not_null(op->name);
    atomic_fetch_add(&log->calls[i], 1);
    int n = atomic_fetch_add(&log->total, 1) + 1;
    if (log->cancel_after && n == log->cancel_after) {
        if (log->plan_to_cancel) {
            trestle_restore_cancel(log->plan_to_cancel);
            return 0;
        }
        return 1;
    }
    return 0;
}

static int count_threads(void)
{
    DIR *d = opendir("/proc/self/task");
    int n = 0;
    for (struct dirent *de; d && (de = readdir(d));)
        n += de->d_name[0] != '.';
    if (d)
        closedir(d);
    return n;
}

/* ---- many tensors across shards ---- */

typedef struct many_case {
    int shards;
    int reader;
} many_case;

ParameterizedTestParameters(pipeline, restores_many_tensors_across_shards)
{
    static many_case cases[6];
    static const int shards[] = { 1, 2, 8 };
    for (int i = 0; i < 6; i++)
        cases[i] = (many_case){ shards[i / 2], both_readers[i % 2] };
    return cr_make_param_array(many_case, cases, 6);
}

ParameterizedTest(many_case *mc, pipeline, restores_many_tensors_across_shards)
{
    enum { N = 40 };
    fx *f = fx_new(mc->shards);
    uint8_t *host[N] = { 0 };
    uint64_t total = 0, copied = 0;
    uint64_t seed = 42;

    for (int i = 0; i < N; i++) {
        char key[32];
        snprintf(key, sizeof key, "layer%02d/kernel", i);
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        uint64_t size = 1 + (seed >> 33) % (1 << 20);
        uint64_t gap = i % 3 == 0 ? (seed >> 13) % 5000 : 0;
        size_t e = fx_blob(f, key, i % mc->shards, size, gap, (uint64_t)i + 1);
        int kind = i % 5 == 4 ? TRESTLE_DEST_HOST : i == 7 ? TRESTLE_DEST_DISCARD
                                                          : TRESTLE_DEST_ALLOCATE;
        if (kind == TRESTLE_DEST_HOST)
            host[i] = malloc(size);
        fx_whole(f, e, kind, host[i]);
        total += size;
        copied += kind == TRESTLE_DEST_DISCARD ? 0 : size;
    }
    /* A second op on the largest tensor: read in place into one destination,
     * then copied from there into the other. */
    size_t big = 0;
    for (size_t i = 1; i < N; i++)
        if (f->entries[i].size > f->entries[big].size)
            big = i;
    fx_whole(f, big, TRESTLE_DEST_ALLOCATE, NULL);
    copied += f->entries[big].size;
    /* A zero-byte tensor (ready at once) and a skipped op (never ready). */
    int64_t zero_dims[2] = { 0, 7 };
    size_t z = fx_entry(f, "empty", TRESTLE__ENTRY_PLAIN, TRESTLE_DT_FLOAT, 2, zero_dims, 0, 0, 0,
                        NULL, 9);
    fx_op(f, z, TRESTLE_DEST_ALLOCATE, NULL, 0, 2, zero_dims);
    size_t skipped = fx_op(f, z, TRESTLE_DEST_ALLOCATE, NULL, 0, 2, zero_dims);
    f->ops[skipped].skipped = 1;
    fx_finish(f, 4 << 20);

    trestle_restore_options o;
    small_opts(&o, mc->reader);
    ready_log *log = calloc(1, sizeof *log);
    o.on_ready = on_ready;
    o.user = log;
    trestle_stats st;
    trestle_error err;
    cr_assert_eq(tu_restore(&f->plan, &o, &st, &err), TRESTLE_OK, "%s", err.message);

    for (size_t i = 0; i <= N; i++) {
        const trestle__plan_op *op = &f->ops[i];
        cr_assert_eq(atomic_load(&log->calls[i]), 1, "op %zu ready %d times", i,
                     atomic_load(&log->calls[i]));
        if (op->dest_kind == TRESTLE_DEST_DISCARD)
            continue;
        cr_assert_not_null(op->dest);
        cr_assert(memcmp(op->dest, fx_bytes(f, op->entry), op->bytes) == 0, "op %zu differs", i);
        if (op->dest_kind == TRESTLE_DEST_ALLOCATE)
            cr_assert_eq((uintptr_t)op->dest % 64, 0); /* host engine memory */
    }
    cr_assert_eq(atomic_load(&log->calls[N + 1]), 1, "zero-byte op");
    cr_assert_not_null(f->ops[N + 1].dest, "zero-byte ops still get a pointer");
    cr_assert_eq(atomic_load(&log->calls[N + 2]), 0, "skipped op");
    cr_assert_eq(st.tensors, N + 2);
    cr_assert_eq(st.bytes_copied, copied);
    cr_assert_eq(st.bytes_verified, total);
    cr_assert_geq(st.bytes_read, total);
    cr_assert_eq(st.reader, mc->reader);
    cr_assert_geq(st.first_ready_seconds, 0.0);
    cr_assert_geq(st.wall_seconds, st.first_ready_seconds);
    cr_assert_gt(st.read_seconds, 0.0);
    cr_assert_geq(st.verify_seconds, 0.0);
    for (int i = 0; i < N; i++)
        free(host[i]);
    free(log);
    fx_free(f);
}

/* ---- region pieces ---- */

ParameterizedTestParameters(pipeline, cuts_a_2d_slice_spanning_chunks)
{
    return cr_make_param_array(int, (int *)both_readers, 2);
}

ParameterizedTest(int *reader, pipeline, cuts_a_2d_slice_spanning_chunks)
{
    enum { R = 300, C = 500, R0 = 37, NR = 200, C0 = 123, NC = 300 };
    fx *f = fx_new(1);
    int64_t full[2] = { R, C };
    size_t e = fx_entry(f, "emb/table", TRESTLE__ENTRY_PLAIN, TRESTLE_DT_FLOAT, 2, full, 0,
                        (uint64_t)R * C * 4, 100, NULL, 7);
    /* One op cuts a slice, another takes the whole tensor: two pieces, one extent. */
    int64_t out_dims[2] = { NR, NC };
    size_t cut_op = fx_op(f, e, TRESTLE_DEST_ALLOCATE, NULL, (uint64_t)NR * NC * 4, 2, out_dims);
    trestle__slice src = { 2, { 0, 0 }, { R, C } }, dst = { 2, { R0, C0 }, { NR, NC } };
    fx_region(f, e, cut_op, &src, &dst, &dst, f->dims[e]);
    size_t whole_op = fx_whole(f, e, TRESTLE_DEST_ALLOCATE, NULL);
    fx_finish(f, 16 << 20);

    trestle_restore_options o;
    small_opts(&o, *reader);
    trestle_stats st;
    trestle_error err;
    cr_assert_eq(tu_restore(&f->plan, &o, &st, &err), TRESTLE_OK, "%s", err.message);
    const float *in = (const float *)fx_bytes(f, e), *out = f->ops[cut_op].dest;
    for (int i = 0; i < NR; i++)
        for (int j = 0; j < NC; j++)
            cr_assert(memcmp(&out[i * NC + j], &in[(R0 + i) * C + C0 + j], 4) == 0,
                      "element (%d,%d)", i, j);
    cr_assert(memcmp(f->ops[whole_op].dest, in, (size_t)R * C * 4) == 0);
    cr_assert_eq(st.bytes_copied, (uint64_t)NR * NC * 4 + (uint64_t)R * C * 4);
    cr_assert_eq(st.tensors, 2);
    fx_free(f);
}

ParameterizedTestParameters(pipeline, assembles_a_3d_slice_from_partitions_on_two_shards)
{
    return cr_make_param_array(int, (int *)both_readers, 2);
}

ParameterizedTest(int *reader, pipeline, assembles_a_3d_slice_from_partitions_on_two_shards)
{
    enum { D0 = 6, D1 = 40, D2 = 300 };
    static int32_t whole[D0][D1][D2];
    fx *f = fx_new(2);
    int64_t full[3] = { D0, D1, D2 };
    tu_fill_random(whole, sizeof whole, 99);
    /* Two stored slices along dim 0: rows [0,3) on shard 0, [3,6) on shard 1. */
    int64_t part_dims[3] = { 3, D1, D2 };
    size_t part[2];
    for (int k = 0; k < 2; k++)
        part[k] = fx_entry(f, k ? "part/1" : "part/0", TRESTLE__ENTRY_SLICE_PART,
                           TRESTLE_DT_INT32, 3, part_dims, k, sizeof whole / 2, 333,
                           whole[3 * k], 0);
    size_t pe = fx_entry(f, "encoder/w", TRESTLE__ENTRY_PARTITIONED, TRESTLE_DT_INT32, 3, full, 0,
                         0, 0, NULL, 0);
    trestle__slice req = { 3, { 1, 5, 17 }, { 4, 30, 266 } };
    size_t op = fx_op(f, pe, TRESTLE_DEST_ALLOCATE, NULL, 4ull * 30 * 266 * 4, 3, req.length);
    for (int k = 0; k < 2; k++) {
        trestle__slice src = { 3, { 3 * k, 0, 0 }, { 3, D1, D2 } }, cut = req;
        cut.start[0] = k ? 3 : 1;
        cut.length[0] = 2;
        fx_region(f, part[k], op, &src, &req, &cut, f->dims[pe]);
    }
    fx_finish(f, 16 << 20);

    trestle_restore_options o;
    small_opts(&o, *reader);
    trestle_stats st;
    trestle_error err;
    cr_assert_eq(tu_restore(&f->plan, &o, &st, &err), TRESTLE_OK, "%s", err.message);
    const int32_t *out = f->ops[op].dest;
    for (int a = 0; a < 4; a++)
        for (int b = 0; b < 30; b++)
            for (int c = 0; c < 266; c++)
                cr_assert_eq(out[(a * 30 + b) * 266 + c], whole[1 + a][5 + b][17 + c],
                             "element (%d,%d,%d)", a, b, c);
    cr_assert_eq(st.tensors, 1);
    cr_assert_eq(st.bytes_copied, 4ull * 30 * 266 * 4);
    fx_free(f);
}

Test(pipeline, region_copy_of_any_byte_range_matches_the_whole_copy)
{
    enum { A = 5, B = 7, C = 9, ES = 4 };
    uint8_t src[A * B * C * ES], expect[3 * 4 * 5 * ES], got[sizeof expect];
    int64_t dims[3] = { A, B, C };
    trestle__region r = { .src = { 3, { 0, 0, 0 }, { A, B, C } },
                          .dst = { 3, { 1, 2, 3 }, { 3, 4, 5 } },
                          .cut = { 3, { 1, 2, 3 }, { 3, 4, 5 } },
                          .dims = dims, .elem_size = ES };
    tu_fill_random(src, sizeof src, 5);
    trestle__slice_copy(expect, &r.dst, src, &r.src, &r.cut, dims, ES);
    /* Every split into two ranges, at every byte, including mid-element. */
    for (uint64_t cut = 0; cut <= sizeof src; cut++) {
        memset(got, 0, sizeof got);
        uint64_t n = trestle__region_copy_range(got, &r, src, 0, cut) +
                     trestle__region_copy_range(got, &r, src + cut, cut, sizeof src - cut);
        cr_assert_eq(n, sizeof expect, "split at %llu", (unsigned long long)cut);
        cr_assert(memcmp(got, expect, sizeof expect) == 0, "split at %llu", (unsigned long long)cut);
    }
    /* Odd-sized ranges of 13 bytes, in reverse order. */
    memset(got, 0, sizeof got);
    for (uint64_t lo = sizeof src / 13 * 13;; lo -= 13) {
        uint64_t n = sizeof src - lo < 13 ? sizeof src - lo : 13;
        trestle__region_copy_range(got, &r, src + lo, lo, n);
        if (lo == 0)
            break;
    }
    cr_assert(memcmp(got, expect, sizeof expect) == 0);
}

/* ---- failures ---- */

/* Two shards; `victim` is a 1 MiB tensor on shard 1 between two others. */
static fx *two_shard_model(size_t *victim)
{
    fx *f = fx_new(2);
    fx_whole(f, fx_blob(f, "embedding", 0, 300000, 0, 1), TRESTLE_DEST_ALLOCATE, NULL);
    fx_whole(f, fx_blob(f, "dense/bias", 1, 4096, 0, 2), TRESTLE_DEST_ALLOCATE, NULL);
    *victim = fx_blob(f, "dense/kernel", 1, 1 << 20, 1000, 3);
    fx_whole(f, *victim, TRESTLE_DEST_ALLOCATE, NULL);
    fx_whole(f, fx_blob(f, "dense/kernel/Adam", 1, 200000, 10, 4), TRESTLE_DEST_ALLOCATE, NULL);
    fx_finish(f, 16 << 20);
    return f;
}

ParameterizedTestParameters(pipeline, names_tensor_and_file_on_a_crc_mismatch_mid_tensor)
{
    return cr_make_param_array(int, (int *)both_readers, 2);
}

ParameterizedTest(int *reader, pipeline, names_tensor_and_file_on_a_crc_mismatch_mid_tensor)
{
    size_t v;
    fx *f = two_shard_model(&v);
    const trestle__entry *e = &f->entries[v];
    fx_flip_byte(f, 1, e->offset + e->size / 2 + 3); /* chunk 8 of 16 */
    trestle_restore_options o;
    small_opts(&o, *reader);
    trestle_stats st;
    trestle_error err;
    cr_assert_eq(tu_restore(&f->plan, &o, &st, &err), TRESTLE_E_CRC_MISMATCH, "%s", err.message);
    cr_assert_str_eq(err.key, "dense/kernel");
    cr_assert_str_eq(err.path, f->paths[1]);
    cr_assert_eq(err.offset, (int64_t)e->offset);
    cr_assert_eq(err.length, (int64_t)e->size);
    cr_assert(strstr(err.message, "'dense/kernel'") != NULL, "%s", err.message);
    cr_assert(strstr(err.message, f->paths[1]) != NULL, "%s", err.message);
    char stored[64];
    snprintf(stored, sizeof stored, "stored %u vs. calculated", trestle__crc_unmask(e->crc_masked));
    cr_assert(strstr(err.message, stored) != NULL, "%s", err.message);
    cr_assert_lt(st.tensors, 4);
    fx_free(f);
}

ParameterizedTestParameters(pipeline, reports_a_truncated_shard_with_file_and_offset)
{
    return cr_make_param_array(int, (int *)both_readers, 2);
}

ParameterizedTest(int *reader, pipeline, reports_a_truncated_shard_with_file_and_offset)
{
    size_t v;
    fx *f = two_shard_model(&v);
    const trestle__entry *e = &f->entries[v];
    cr_assert_eq(truncate(f->paths[1], (off_t)(e->offset + 1000)), 0);
    trestle_restore_options o;
    small_opts(&o, *reader);
    trestle_error err;
    int rc = tu_restore(&f->plan, &o, NULL, &err);
    cr_assert_eq(rc, TRESTLE_E_SHORT_READ, "%s: %s", trestle_code_name(rc), err.message);
    cr_assert_str_eq(err.path, f->paths[1]);
    cr_assert_eq(err.offset, (int64_t)(e->offset + 1000));
    cr_assert_str_eq(err.key, "dense/kernel");
    cr_assert(strstr(err.message, f->paths[1]) != NULL, "%s", err.message);
    cr_assert(strstr(err.message, "dense/kernel") != NULL, "%s", err.message);
    fx_free(f);
}

ParameterizedTestParameters(pipeline, reports_a_missing_shard_naming_file_and_tensor)
{
    return cr_make_param_array(int, (int *)both_readers, 2);
}

ParameterizedTest(int *reader, pipeline, reports_a_missing_shard_naming_file_and_tensor)
{
    size_t v;
    fx *f = two_shard_model(&v);
    close(f->fds[1]);
    f->fds[1] = -1;
    f->errnos[1] = ENOENT;
    unlink(f->paths[1]);
    trestle_restore_options o;
    small_opts(&o, *reader);
    trestle_stats st;
    trestle_error err;
    cr_assert_eq(tu_restore(&f->plan, &o, &st, &err), TRESTLE_E_NOT_FOUND, "%s", err.message);
    cr_assert_str_eq(err.path, f->paths[1]);
    cr_assert_str_eq(err.key, "dense/bias");
    cr_assert(strstr(err.message, f->paths[1]) != NULL, "%s", err.message);
    cr_assert(strstr(err.message, "dense/bias") != NULL, "%s", err.message);
    cr_assert_eq(st.tensors, 0);
    cr_assert_eq(st.bytes_read, 0);
    fx_free(f);
}

ParameterizedTestParameters(pipeline, a_ready_callback_cancels_and_every_thread_is_joined)
{
    return cr_make_param_array(int, (int *)both_readers, 2);
}

ParameterizedTest(int *reader, pipeline, a_ready_callback_cancels_and_every_thread_is_joined)
{
    size_t v;
    fx *f = two_shard_model(&v);
    trestle_restore_options o;
    small_opts(&o, *reader);
    ready_log *log = calloc(1, sizeof *log);
    log->cancel_after = 1;
    o.on_ready = on_ready;
    o.user = log;
    trestle_error err;
    int before = count_threads();
    cr_assert_eq(tu_restore(&f->plan, &o, NULL, &err), TRESTLE_E_CANCELLED, "%s", err.message);
    cr_assert(strstr(err.message, "cancelled") != NULL, "%s", err.message);
    for (int tries = 0; count_threads() != before && tries < 100; tries++)
        usleep(10000); /* a joined thread's task may linger a moment */
    cr_assert_eq(count_threads(), before);

    /* trestle_restore_cancel() from a pipeline thread: the same outcome. */
    memset(log, 0, sizeof *log);
    log->cancel_after = 2;
    log->plan_to_cancel = &f->plan;
    cr_assert_eq(tu_restore(&f->plan, &o, NULL, &err), TRESTLE_E_CANCELLED, "%s", err.message);

    /* The flag resets: the plan restores again, each op reported once. */
    memset(log, 0, sizeof *log);
    trestle_stats st;
    cr_assert_eq(tu_restore(&f->plan, &o, &st, &err), TRESTLE_OK, "%s", err.message);
    for (size_t i = 0; i < f->nops; i++) {
        cr_assert_eq(atomic_load(&log->calls[i]), 1, "op %zu", i);
        cr_assert(memcmp(f->ops[i].dest, fx_bytes(f, f->ops[i].entry), f->ops[i].bytes) == 0);
    }
    cr_assert_eq(st.tensors, f->nops);
    free(log);
    fx_free(f);
}

ParameterizedTestParameters(pipeline, verify_off_restores_corrupt_bytes_without_complaint)
{
    return cr_make_param_array(int, (int *)both_readers, 2);
}

ParameterizedTest(int *reader, pipeline, verify_off_restores_corrupt_bytes_without_complaint)
{
    size_t v;
    fx *f = two_shard_model(&v);
    fx_flip_byte(f, 1, f->entries[v].offset + 77777);
    trestle_restore_options o;
    small_opts(&o, *reader);
    o.verify = 0;
    trestle_stats st;
    trestle_error err;
    cr_assert_eq(tu_restore(&f->plan, &o, &st, &err), TRESTLE_OK, "%s", err.message);
    cr_assert_eq(st.bytes_verified, 0);
    cr_assert_eq(st.tensors, 4);
    for (size_t i = 0; i < f->nops; i++)
        cr_assert(memcmp(f->ops[i].dest, fx_bytes(f, f->ops[i].entry), f->ops[i].bytes) == 0);
    o.verify = 1;
    cr_assert_eq(tu_restore(&f->plan, &o, &st, &err), TRESTLE_E_CRC_MISMATCH, "%s", err.message);
    fx_free(f);
}

/* ---- O_DIRECT ---- */

/* Tensors at odd offsets, the last one ending at an unaligned end of file. */
static fx *odd_offsets_model(const char *tmpdir)
{
    if (tmpdir)
        setenv("TMPDIR", tmpdir, 1);
    fx *f = fx_new(2);
    for (int i = 0; i < 12; i++) {
        char key[16];
        snprintf(key, sizeof key, "w%d", i);
        fx_whole(f, fx_blob(f, key, i % 2, 10000 + (uint64_t)i * 37777, (uint64_t)i * 111, i + 1),
                 TRESTLE_DEST_ALLOCATE, NULL);
    }
    fx_finish(f, 16 << 20);
    return f;
}

typedef struct direct_case {
    int reader;
    char tmpdir[16]; /* inline: Criterion copies parameters into the test process */
} direct_case;

ParameterizedTestParameters(pipeline, direct_always_reads_with_o_direct)
{
    static direct_case cases[] = {
        { TRESTLE_READER_IO_URING, "/tmp" }, { TRESTLE_READER_PREAD, "/tmp" },
        { TRESTLE_READER_IO_URING, "/var/tmp" }, { TRESTLE_READER_PREAD, "/var/tmp" },
    };
    return cr_make_param_array(direct_case, cases, 4);
}

ParameterizedTest(direct_case *dc, pipeline, direct_always_reads_with_o_direct)
{
    fx *f = odd_offsets_model(dc->tmpdir);
    int fd = open(f->paths[0], O_RDONLY | O_DIRECT);
    if (fd < 0) {
        int e = errno;
        fx_free(f);
        cr_skip_test("%s refuses O_DIRECT (%s)", dc->tmpdir, strerror(e));
    }
    close(fd);
    trestle_restore_options o;
    small_opts(&o, dc->reader);
    o.direct = TRESTLE_DIRECT_ALWAYS;
    trestle_stats st;
    trestle_error err;
    cr_assert_eq(tu_restore(&f->plan, &o, &st, &err), TRESTLE_OK, "%s", err.message);
    cr_assert_eq(st.direct_reads, 1);
    for (size_t i = 0; i < f->nops; i++)
        cr_assert(memcmp(f->ops[i].dest, fx_bytes(f, f->ops[i].entry), f->ops[i].bytes) == 0,
                  "op %zu", i);
    cr_assert_eq(st.tensors, f->nops);
    fx_free(f);
}

ParameterizedTestParameters(pipeline, direct_auto_reads_cached_data_buffered)
{
    return cr_make_param_array(int, (int *)both_readers, 2);
}

ParameterizedTest(int *reader, pipeline, direct_auto_reads_cached_data_buffered)
{
    fx *f = odd_offsets_model(NULL); /* just written: in the page cache */
    trestle_restore_options o;
    small_opts(&o, *reader);
    trestle_stats st;
    trestle_error err;
    cr_assert_eq(tu_restore(&f->plan, &o, &st, &err), TRESTLE_OK, "%s", err.message);
    cr_assert_eq(st.direct_reads, 0);
    o.direct = TRESTLE_DIRECT_NEVER;
    cr_assert_eq(tu_restore(&f->plan, &o, &st, &err), TRESTLE_OK, "%s", err.message);
    cr_assert_eq(st.direct_reads, 0);
    fx_free(f);
}

/* ---- strings ---- */

ParameterizedTestParameters(pipeline, verifies_string_tensors_by_walking_them)
{
    return cr_make_param_array(int, (int *)both_readers, 2);
}

ParameterizedTest(int *reader, pipeline, verifies_string_tensors_by_walking_them)
{
    enum { N = 300 };
    static uint8_t text[N * 1500];
    trestle_bytes elems[N];
    trestle__buf enc = { 0 };
    uint32_t crc;
    tu_fill_random(text, sizeof text, 17);
    for (int i = 0; i < N; i++)
        elems[i] = (trestle_bytes){ text + i * 1500, (uint64_t)(i * 13) % 1500 };
    cr_assert_eq(trestle__strings_encode(elems, N, &enc, &crc, NULL), TRESTLE_OK);

    fx *f = fx_new(1);
    int64_t dims[1] = { N };
    fx_whole(f, fx_blob(f, "before", 0, 5000, 0, 1), TRESTLE_DEST_ALLOCATE, NULL);
    size_t s = fx_entry(f, "vocab", TRESTLE__ENTRY_PLAIN, TRESTLE_DT_STRING, 1, dims, 0, enc.len,
                        3, enc.data, 0);
    f->entries[s].crc_masked = trestle__crc_mask(crc); /* not the CRC of the bytes */
    size_t kept = fx_whole(f, s, TRESTLE_DEST_ALLOCATE, NULL);
    fx_whole(f, s, TRESTLE_DEST_DISCARD, NULL);
    fx_finish(f, 16 << 20);
    cr_assert_gt(enc.len, 3 * (64 << 10), "spans several chunks");

    trestle_restore_options o;
    small_opts(&o, *reader);
    trestle_stats st;
    trestle_error err;
    cr_assert_eq(tu_restore(&f->plan, &o, &st, &err), TRESTLE_OK, "%s", err.message);
    cr_assert(memcmp(f->ops[kept].dest, enc.data, enc.len) == 0);
    cr_assert_eq(st.tensors, 3);

    /* Only the discarding op: the pipeline walks a private copy. */
    f->plan.pieces[f->plan.extents[1].first_piece] = f->plan.pieces[f->plan.extents[1].first_piece + 1];
    f->plan.extents[1].num_pieces = 1;
    f->ops[kept].num_pieces = 0;
    f->ops[kept].skipped = 1;
    cr_assert_eq(tu_restore(&f->plan, &o, &st, &err), TRESTLE_OK, "%s", err.message);

    fx_flip_byte(f, 0, f->entries[s].offset + enc.len - 100); /* an element byte */
    cr_assert_eq(tu_restore(&f->plan, &o, &st, &err), TRESTLE_E_CRC_MISMATCH, "%s", err.message);
    cr_assert_str_eq(err.key, "vocab");
    fx_flip_byte(f, 0, f->entries[s].offset + 1); /* a length: the walk itself fails */
    cr_assert_eq(tu_restore(&f->plan, &o, &st, &err), TRESTLE_E_CORRUPT, "%s", err.message);
    cr_assert_str_eq(err.key, "vocab");
    cr_assert_str_eq(err.path, f->paths[0]);
    cr_assert(strstr(err.message, "tensor 'vocab'") != NULL, "%s", err.message);
    trestle__buf_free(&enc);
    fx_free(f);
}

/* ---- misuse ---- */

Test(pipeline, refuses_device_memory_when_there_is_no_device)
{
    char why[160];
    if (trestle__cuda_device_count(why, sizeof why) > 0)
        cr_skip_test("this host has a CUDA device (tests/test_gpu_restore.c restores onto it)");
    size_t v;
    fx *f = two_shard_model(&v);
    trestle_restore_options o;
    small_opts(&o, TRESTLE_READER_PREAD);
    o.device = 0;
    trestle_stats st;
    trestle_error err;
    cr_assert_eq(trestle_restore(&f->plan, &o, &st, &err), TRESTLE_E_NO_DEVICE, "%s", err.message);
    cr_assert_eq(st.tensors, 0);
    cr_assert_null(f->ops[0].dest, "nothing allocated");
    o.device = -1;
    f->ops[v].dest_kind = TRESTLE_DEST_DEVICE;
    cr_assert_eq(trestle_restore(&f->plan, &o, NULL, &err), TRESTLE_E_NO_DEVICE, "%s", err.message);
    cr_assert_str_eq(err.key, "dense/kernel");
    f->ops[v].dest_kind = TRESTLE_DEST_ALLOCATE;
    fx_free(f);
}

Test(pipeline, rejects_bad_options_and_reads_zeros_as_defaults)
{
    size_t v;
    fx *f = two_shard_model(&v);
    trestle_restore_options o;
    trestle_error err;
    small_opts(&o, 7);
    cr_assert_eq(trestle_restore(&f->plan, &o, NULL, &err), TRESTLE_E_INVALID_ARG);
    small_opts(&o, TRESTLE_READER_PREAD);
    o.direct = -1;
    cr_assert_eq(trestle_restore(&f->plan, &o, NULL, &err), TRESTLE_E_INVALID_ARG);
    o.size = 0;
    cr_assert_eq(trestle_restore(&f->plan, &o, NULL, &err), TRESTLE_E_INVALID_ARG);
    cr_assert_eq(trestle_restore(NULL, NULL, NULL, &err), TRESTLE_E_INVALID_ARG);
    /* Zeros mean defaults (tests/test_options.c has the size rule), odd
     * chunk sizes round up to whole pages. */
    memset(&o, 0, sizeof o);
    o.size = sizeof o;
    o.verify = 1;
    o.reader = TRESTLE_READER_PREAD;
    o.device = -1;
    trestle_stats st;
    cr_assert_eq(trestle_restore(&f->plan, &o, &st, &err), TRESTLE_OK, "%s", err.message);
    cr_assert_eq(st.tensors, 4);
    small_opts(&o, TRESTLE_READER_PREAD);
    o.chunk_bytes = 10000;
    o.staging_bytes = 1;
    o.threads = 1;
    o.queue_depth = 1;
    cr_assert_eq(trestle_restore(&f->plan, &o, &st, &err), TRESTLE_OK, "%s", err.message);
    for (size_t i = 0; i < f->nops; i++)
        cr_assert(memcmp(f->ops[i].dest, fx_bytes(f, f->ops[i].entry), f->ops[i].bytes) == 0);
    fx_free(f);
}

/* ---- concurrency ---- */

static void *restore_thread(void *arg)
{
    fx *f = arg;
    trestle_restore_options o;
    small_opts(&o, TRESTLE_READER_PREAD);
    trestle_error err;
    intptr_t rc = trestle_restore(&f->plan, &o, NULL, &err);
    return (void *)rc;
}

Test(pipeline, restores_two_plans_at_once)
{
    fx *a = odd_offsets_model(NULL), *b = odd_offsets_model(NULL);
    pthread_t ta, tb;
    void *ra, *rb;
    pthread_create(&ta, NULL, restore_thread, a);
    pthread_create(&tb, NULL, restore_thread, b);
    pthread_join(ta, &ra);
    pthread_join(tb, &rb);
    cr_assert_eq((intptr_t)ra, TRESTLE_OK);
    cr_assert_eq((intptr_t)rb, TRESTLE_OK);
    for (size_t i = 0; i < a->nops; i++) {
        cr_assert(memcmp(a->ops[i].dest, fx_bytes(a, a->ops[i].entry), a->ops[i].bytes) == 0);
        cr_assert(memcmp(b->ops[i].dest, fx_bytes(b, b->ops[i].entry), b->ops[i].bytes) == 0);
    }
    fx_free(a);
    fx_free(b);
}

Test(pipeline, auto_reader_reports_which_backend_ran)
{
    fx *f = odd_offsets_model(NULL);
    trestle_restore_options o;
    small_opts(&o, TRESTLE_READER_AUTO);
    trestle_stats st;
    trestle_error err;
    cr_assert_eq(trestle_restore(&f->plan, &o, &st, &err), TRESTLE_OK, "%s", err.message);
    cr_assert(st.reader == TRESTLE_READER_IO_URING || st.reader == TRESTLE_READER_PREAD);
    if (st.reader == TRESTLE_READER_PREAD)
        cr_assert(strstr(st.reader_note, "io_uring") != NULL, "%s", st.reader_note);
    fx_free(f);
}

/* Reads go out round-robin over shards, one read at a time: a tensor of
 * many chunks in shard 0 must not hold the whole queue while shard 1
 * waits (batch by batch, reads 5-9 would start only after 0-4). */
Test(pipeline, reads_are_issued_round_robin_across_shards_one_read_at_a_time)
{
    trestle__batch batches[4];
    memset(batches, 0, sizeof batches);
    batches[0].shard = 0; /* reads 0-3 */
    batches[1].shard = 0; /* read 4 */
    batches[2].shard = 1; /* reads 5-9 */
    batches[3].shard = 2; /* no reads: only empty extents */
    trestle_plan plan;
    memset(&plan, 0, sizeof plan);
    plan.batches = batches;
    plan.num_batches = 4;
    uint64_t first[4] = { 0, 4, 5, 10 };
    trestle__restore x;
    memset(&x, 0, sizeof x);
    x.plan = &plan;
    x.batch_seq = first;
    x.nreads = 10;
    uint64_t *order = trestle__restore_issue_order(&x);
    cr_assert_not_null(order);
    static const uint64_t want[10] = { 0, 5, 1, 6, 2, 7, 3, 8, 4, 9 };
    for (int i = 0; i < 10; i++)
        cr_assert_eq(order[i], want[i], "read %d: %llu, want %llu", i,
                     (unsigned long long)order[i], (unsigned long long)want[i]);
    free(order);
}
