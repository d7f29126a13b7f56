/*
 * test_ckpt_wire.c - the hand decoder of BundleEntryProto (ckpt_wire.c)
 * against protobuf-c's unpack, which it stands in for: on every entry of
 * every real TensorFlow index, on messages protobuf-c packs, and on
 * thousands of mutations of both, whenever the hand decoder says "mine"
 * its fields must be exactly protobuf-c's; and it must say "mine" for the
 * plain entries TensorFlow writes, or it saves nothing.
 */
#include <criterion/criterion.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt_entry.h"
#include "sstable.h"
#include "tensor_bundle.pb-c.h"
#include "testutil.h"

/* ---- the property ---- */

typedef struct tally {
    size_t values;   /* messages tried */
    size_t fast;     /* the hand decoder took them */
    size_t parsed;   /* protobuf-c parsed them */
} tally;

/* If the hand decoder takes `v`, protobuf-c must parse it to the same fields. */
static void same_as_protobuf_c(const uint8_t *v, size_t n, tally *t)
{
    trestle__entry_wire w;
    Tensorflow__BundleEntryProto *m = tensorflow__bundle_entry_proto__unpack(NULL, n, v);
    bool fast = trestle__entry_wire_decode(v, n, &w);
    t->values++;
    t->parsed += m != NULL;
    t->fast += fast;
    if (fast) {
        cr_assert_not_null(m, "the hand decoder took %zu bytes protobuf-c refuses", n);
        cr_assert_eq(w.dtype, (int)m->dtype);
        cr_assert_eq(w.shard_id, m->shard_id);
        cr_assert_eq(w.offset, m->offset);
        cr_assert_eq(w.size, m->size);
        cr_assert_eq(w.crc32c, m->crc32c);
        cr_assert_eq(m->n_slices, 0);
        size_t rank = m->shape ? m->shape->n_dim : 0;
        cr_assert_eq(w.rank, rank);
        cr_assert_eq(w.unknown_rank, m->shape && m->shape->unknown_rank);
        for (size_t d = 0; d < rank; d++) {
            cr_assert_eq(w.dims[d], m->shape->dim[d]->size, "dim %zu", d);
            cr_assert(!m->shape->dim[d]->name || !m->shape->dim[d]->name[0]);
        }
    }
    if (m)
        tensorflow__bundle_entry_proto__free_unpacked(m, NULL);
}

/* Mutations of v: every single-byte change to a few values at every
 * position, truncations, and random splices. */
static void mutations(const uint8_t *v, size_t n, uint64_t *rng, tally *t)
{
    static const uint8_t bytes[] = { 0x00, 0x01, 0x7f, 0x80, 0xff, 0x08, 0x12, 0x18, 0x35, 0x3a };
    uint8_t *buf = malloc(n + 16);
    cr_assert_not_null(buf);
    for (size_t len = 0; len < n; len++)
        same_as_protobuf_c(v, len, t);
    for (size_t i = 0; i < n; i++)
        for (size_t b = 0; b < sizeof bytes; b++) {
            memcpy(buf, v, n);
            buf[i] = bytes[b];
            same_as_protobuf_c(buf, n, t);
        }
    for (int k = 0; k < 200; k++) {
        size_t at = (size_t)(tu_rng_next(rng) % (n + 1)), add = tu_rng_next(rng) % 8;
        memcpy(buf, v, at);
        for (size_t j = 0; j < add; j++)
            buf[at + j] = (uint8_t)tu_rng_next(rng);
        memcpy(buf + at + add, v + at, n - at);
        same_as_protobuf_c(buf, n + add, t);
    }
    free(buf);
}

/* ---- entries of real indexes ---- */

typedef struct walk {
    tally t;
    uint64_t rng;
    size_t files, entries, plain_fast;
} walk;

static int visit(void *user, const uint8_t *key, size_t key_len, const uint8_t *value,
                 size_t value_len, uint64_t value_offset, trestle_error *err)
{
    walk *w = user;
    trestle__entry_wire wire;
    if (key_len == 0)
        return TRESTLE_OK; /* the header */
    w->entries++;
    same_as_protobuf_c(value, value_len, &w->t);
    Tensorflow__BundleEntryProto *m = tensorflow__bundle_entry_proto__unpack(NULL, value_len, value);
    cr_assert_not_null(m);
    /* TF's plain entries (no stored slices, unnamed dims) take the fast path. */
    bool named = false;
    for (size_t d = 0; m->shape && d < m->shape->n_dim; d++)
        named = named || (m->shape->dim[d]->name && m->shape->dim[d]->name[0]);
    bool plain = m->n_slices == 0 && !named && m->offset >= 0 && m->size >= 0 &&
                 (!m->shape || m->shape->n_dim <= TRESTLE__WIRE_MAX_DIMS);
    if (plain) {
        cr_assert(trestle__entry_wire_decode(value, value_len, &wire),
                  "a plain entry of %zu bytes went to protobuf-c", value_len);
        w->plain_fast++;
    }
    tensorflow__bundle_entry_proto__free_unpacked(m, NULL);
    if (w->entries % 3 == 1) /* mutate some, or the suite takes minutes */
        mutations(value, value_len, &w->rng, &w->t);
    return TRESTLE_OK;
}

static walk *g_walk; /* nftw gives its callback no user pointer */

static int visit_file(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
    size_t n = strlen(path), len;
    if (type != FTW_F || n < 6 || strcmp(path + n - 6, ".index") != 0)
        return 0;
    uint8_t *file = tu_read_file(path, &len);
    cr_assert_not_null(file);
    trestle_error err;
    /* Fixtures of broken files are others' business: take what scans. */
    if (trestle__table_scan(file, len, path, 1, visit, g_walk, NULL, &err) == TRESTLE_OK)
        g_walk->files++;
    free(file);
    return 0;
}

Test(ckpt_wire, decodes_every_real_index_entry_as_protobuf_c_does)
{
    walk w = { .rng = 11 };
    g_walk = &w;
    cr_assert_eq(nftw(tu_fixture_present("."), visit_file, 16, FTW_PHYS), 0);
    cr_log_info("%zu files, %zu entries (%zu fast), %zu mutations (%zu fast, %zu parsed)", w.files, w.entries, w.plain_fast, w.t.values, w.t.fast, w.t.parsed);
    cr_assert_gt(w.files, 20);
    cr_assert_gt(w.entries, 100);
    cr_assert_gt(w.plain_fast, w.entries / 2, "%zu of %zu entries fast", w.plain_fast, w.entries);
    cr_assert_gt(w.t.fast, 1000, "mutations the fast path took: %zu", w.t.fast);
    cr_assert_gt(w.t.values - w.t.fast, 1000, "mutations left to protobuf-c");
}

/* ---- messages protobuf-c packs ---- */

static size_t pack(const Tensorflow__BundleEntryProto *m, uint8_t *out, size_t cap)
{
    size_t n = tensorflow__bundle_entry_proto__get_packed_size(m);
    cr_assert_leq(n, cap);
    return tensorflow__bundle_entry_proto__pack(m, out);
}

Test(ckpt_wire, takes_what_protobuf_c_packs_and_leaves_the_rest)
{
    static const int64_t sizes[] = { 0, 1, 127, 128, 16383, 16384, INT32_MAX, (int64_t)1 << 40,
                                     INT64_MAX, -1 };
    Tensorflow__TensorShapeProto__Dim dims[TRESTLE__WIRE_MAX_DIMS + 1], *dp[TRESTLE__WIRE_MAX_DIMS + 1];
    Tensorflow__TensorShapeProto shape = TENSORFLOW__TENSOR_SHAPE_PROTO__INIT;
    uint8_t buf[4096];
    tally t = { 0 };
    uint64_t rng = 5;

    for (size_t d = 0; d <= TRESTLE__WIRE_MAX_DIMS; d++) {
        tensorflow__tensor_shape_proto__dim__init(&dims[d]);
        dp[d] = &dims[d];
    }
    shape.dim = dp;
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        static const size_t ranks[] = { 0, 1, 2, 5, TRESTLE__WIRE_MAX_DIMS, TRESTLE__WIRE_MAX_DIMS + 1 };
        for (size_t r = 0; r < sizeof ranks / sizeof ranks[0]; r++) {
            size_t rank = ranks[r];
            Tensorflow__BundleEntryProto m = TENSORFLOW__BUNDLE_ENTRY_PROTO__INIT;
            m.dtype = (Tensorflow__DataType)(k % 24);
            m.shard_id = (int32_t)(k * 3);
            m.offset = sizes[k];
            m.size = sizes[(k + 3) % 10];
            m.crc32c = 0x9abcdef0u + (uint32_t)k;
            for (size_t d = 0; d < rank; d++)
                dims[d].size = sizes[(k + d) % 10];
            shape.n_dim = rank;
            shape.unknown_rank = k == 4;
            m.shape = rank == 0 && k % 2 ? NULL : &shape;
            size_t n = pack(&m, buf, sizeof buf);
            bool negative = m.offset < 0 || m.size < 0;
            for (size_t d = 0; d < shape.n_dim && m.shape; d++)
                negative = negative || dims[d].size < 0;
            trestle__entry_wire w;
            bool fast = trestle__entry_wire_decode(buf, n, &w);
            cr_assert_eq(fast, !negative && shape.n_dim <= TRESTLE__WIRE_MAX_DIMS,
                         "size %zu rank %zu: fast %d", k, rank, fast);
            same_as_protobuf_c(buf, n, &t);
            mutations(buf, n, &rng, &t);
        }
    }
    /* A named dimension and stored slices go to protobuf-c. */
    Tensorflow__BundleEntryProto m = TENSORFLOW__BUNDLE_ENTRY_PROTO__INIT;
    dims[0].size = 4;
    dims[0].name = "rows";
    shape.n_dim = 1;
    shape.unknown_rank = 0;
    m.shape = &shape;
    trestle__entry_wire w;
    cr_assert_not(trestle__entry_wire_decode(buf, pack(&m, buf, sizeof buf), &w));
    dims[0].name = (char *)protobuf_c_empty_string;
    Tensorflow__TensorSliceProto slice = TENSORFLOW__TENSOR_SLICE_PROTO__INIT, *sp = &slice;
    m.n_slices = 1;
    m.slices = &sp;
    cr_assert_not(trestle__entry_wire_decode(buf, pack(&m, buf, sizeof buf), &w));
    m.n_slices = 0;
    /* A field repeated (protobuf-c keeps the last) and fields out of order. */
    static const uint8_t twice[] = { 0x08, 0x01, 0x08, 0x02 };
    static const uint8_t reversed[] = { 0x28, 0x04, 0x08, 0x01 };
    cr_assert_not(trestle__entry_wire_decode(twice, sizeof twice, &w));
    cr_assert_not(trestle__entry_wire_decode(reversed, sizeof reversed, &w));
    same_as_protobuf_c(twice, sizeof twice, &t);
    same_as_protobuf_c(reversed, sizeof reversed, &t);
    /* The empty message: every field 0, as protobuf-c gives it. */
    cr_assert(trestle__entry_wire_decode(buf, 0, &w));
    cr_assert_eq(w.rank, 0);
    cr_assert_eq(w.dtype, 0);
    cr_assert_gt(t.fast, 1000);
}
