/*
 * bench_bodies.c - C bodies of the microbenchmarks (see bench_bodies.h).
 * Checkpoints are made with trestle's writer in a temporary directory and
 * removed at teardown.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench_bodies.h"
#include "crc32c.h"
#include "scratch_dir.h"
#include "trestle.h"

/* ---- helpers ---- */

static void fill(void *buf, size_t n, uint64_t seed)
{
    uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1, *p = buf;
    for (size_t i = 0; i < n / 8; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        p[i] = x;
    }
}

/* Write N float tensors of `elems` elements each over `shards` shards. */
static char *write_ckpt(const char *dir, size_t n, size_t elems, int shards)
{
    char *prefix = NULL;
    trestle_writer_options wo;
    trestle_writer *w;
    if (asprintf(&prefix, "%s/ckpt", dir) < 0)
        return NULL;
    trestle_writer_options_init(&wo);
    wo.num_shards = shards;
    if (trestle_writer_create(prefix, &wo, &w, NULL) != TRESTLE_OK) {
        free(prefix);
        return NULL;
    }
    float *data = malloc(elems * sizeof *data);
    fill(data, elems * sizeof *data, 1);
    int ok = data != NULL;
    for (size_t i = 0; ok && i < n; i++) {
        char name[64];
        int64_t dims[2] = { (int64_t)elems / 16, 16 };
        snprintf(name, sizeof name, "model/layer_%06zu/kernel", i);
        ok = trestle_writer_add(w, name, TRESTLE_DT_FLOAT, 2, dims, data, elems * 4,
                                (int)(i % (size_t)shards), NULL) == TRESTLE_OK;
    }
    ok = ok && trestle_writer_finish(w, NULL) == TRESTLE_OK;
    trestle_writer_free(w);
    free(data);
    if (!ok) {
        free(prefix);
        return NULL;
    }
    return prefix;
}

/* ---- CRC32C ---- */

typedef struct crc_ctx {
    uint8_t *buf;
    size_t n;
} crc_ctx;

void *tb_crc_setup(size_t bytes)
{
    crc_ctx *c = malloc(sizeof *c);
    if (!c)
        return NULL;
    c->n = bytes;
    c->buf = malloc(bytes);
    if (!c->buf) {
        free(c);
        return NULL;
    }
    fill(c->buf, bytes, 7);
    return c;
}

uint64_t tb_crc_run(void *ctx)
{
    crc_ctx *c = ctx;
    volatile uint32_t crc = trestle__crc32c(c->buf, c->n);
    (void)crc;
    return c->n;
}

uint64_t tb_crc_combine_run(void *ctx)
{
    crc_ctx *c = ctx;
    uint32_t acc = 0;
    for (size_t off = 0; off < c->n; off += 1 << 20) {
        size_t len = c->n - off < (1u << 20) ? c->n - off : (1u << 20);
        acc = trestle__crc32c_combine(acc, trestle__crc32c(c->buf + off, len), len);
    }
    volatile uint32_t keep = acc;
    (void)keep;
    return c->n;
}

void tb_crc_teardown(void *ctx)
{
    crc_ctx *c = ctx;
    free(c->buf);
    free(c);
}

/* ---- index open + listing ---- */

typedef struct table_ctx {
    char *dir, *prefix;
} table_ctx;

void *tb_table_setup(size_t tensors)
{
    table_ctx *t = calloc(1, sizeof *t);
    if (!t || !(t->dir = scratch_dir_create("bench")) ||
        !(t->prefix = write_ckpt(t->dir, tensors, 16, 1))) {
        tb_table_teardown(t);
        return NULL;
    }
    return t;
}

uint64_t tb_table_open_run(void *ctx)
{
    table_ctx *t = ctx;
    trestle_checkpoint *c;
    if (trestle_open(t->prefix, NULL, &c, NULL) != TRESTLE_OK)
        return 0;
    size_t n = trestle_tensor_count(c);
    trestle_close(c);
    return n;
}

void tb_table_teardown(void *ctx)
{
    table_ctx *t = ctx;
    if (!t)
        return;
    scratch_dir_remove(t->dir);
    free(t->dir);
    free(t->prefix);
    free(t);
}

/* ---- planner: N ops, every other one sliced, all through a prefix rename ---- */

typedef struct plan_ctx {
    table_ctx t;
    trestle_checkpoint *c;
    trestle_op *ops;
    char (*names)[64];
    size_t n;
} plan_ctx;

void *tb_plan_setup(size_t n)
{
    plan_ctx *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->n = n;
    p->t.dir = scratch_dir_create("bench");
    p->t.prefix = p->t.dir ? write_ckpt(p->t.dir, n, 64, 4) : NULL;
    p->ops = calloc(n, sizeof *p->ops);
    p->names = calloc(n, sizeof *p->names);
    if (!p->t.prefix || !p->ops || !p->names ||
        trestle_open(p->t.prefix, NULL, &p->c, NULL) != TRESTLE_OK) {
        tb_plan_teardown(p);
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        snprintf(p->names[i], sizeof p->names[i], "graph/layer_%06zu/kernel", i);
        p->ops[i].name = p->names[i];
        p->ops[i].shape_and_slices = (i % 2) ? "4 16 1,2:-" : "";
        p->ops[i].dest_kind = TRESTLE_DEST_DISCARD;
    }
    return p;
}

uint64_t tb_plan_run(void *ctx)
{
    plan_ctx *p = ctx;
    static const char *const renames[] = { "graph/=model/" };
    trestle_plan_options po;
    trestle_plan *plan;
    trestle_plan_options_init(&po);
    po.renames = renames;
    po.num_renames = 1;
    if (trestle_plan_create(p->c, p->ops, p->n, &po, &plan, NULL) != TRESTLE_OK)
        return 0;
    trestle_plan_free(plan);
    return p->n;
}

void tb_plan_teardown(void *ctx)
{
    plan_ctx *p = ctx;
    if (!p)
        return;
    trestle_close(p->c);
    scratch_dir_remove(p->t.dir);
    free(p->t.dir);
    free(p->t.prefix);
    free(p->ops);
    free(p->names);
    free(p);
}

/* ---- reader: restore 256 MiB from the page cache, discarding ---- */

typedef struct reader_ctx {
    table_ctx t;
    trestle_checkpoint *c;
    trestle_plan *plan;
    trestle_restore_options opt;
} reader_ctx;

void *tb_reader_setup(int reader, size_t chunk_bytes, unsigned queue_depth)
{
    reader_ctx *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->t.dir = scratch_dir_create("bench");
    /* 64 tensors x 4 MiB over 4 shards. */
    r->t.prefix = r->t.dir ? write_ckpt(r->t.dir, 64, 1u << 20, 4) : NULL;
    if (!r->t.prefix || trestle_open(r->t.prefix, NULL, &r->c, NULL) != TRESTLE_OK) {
        tb_reader_teardown(r);
        return NULL;
    }
    size_t n = trestle_tensor_count(r->c);
    trestle_op *ops = calloc(n, sizeof *ops);
    trestle_tensor_info ti;
    for (size_t i = 0; ops && i < n; i++) {
        trestle_tensor_get_info(r->c, i, &ti);
        ops[i].name = ti.name;
        ops[i].dest_kind = TRESTLE_DEST_DISCARD;
    }
    int rc = ops ? trestle_plan_create(r->c, ops, n, NULL, &r->plan, NULL) : TRESTLE_E_NOMEM;
    free(ops);
    trestle_restore_options_init(&r->opt);
    r->opt.reader = reader;
    r->opt.chunk_bytes = chunk_bytes;
    r->opt.queue_depth = queue_depth;
    r->opt.direct = TRESTLE_DIRECT_NEVER;
    if (rc != TRESTLE_OK || trestle_restore(r->plan, &r->opt, NULL, NULL) != TRESTLE_OK) {
        tb_reader_teardown(r);
        return NULL;
    }
    return r;
}

uint64_t tb_reader_run(void *ctx)
{
    reader_ctx *r = ctx;
    trestle_stats st;
    if (trestle_restore(r->plan, &r->opt, &st, NULL) != TRESTLE_OK)
        return 0;
    return st.bytes_read;
}

void tb_reader_teardown(void *ctx)
{
    reader_ctx *r = ctx;
    if (!r)
        return;
    trestle_plan_free(r->plan);
    trestle_close(r->c);
    scratch_dir_remove(r->t.dir);
    free(r->t.dir);
    free(r->t.prefix);
    free(r);
}
