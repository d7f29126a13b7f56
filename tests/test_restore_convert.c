/*
 * test_restore_convert.c - dtype conversion on load (trestle_op.target_dtype)
 * end to end: checkpoints made by the writer, restored with conversion
 * into engine memory and caller buffers, and compared byte for byte with
 * trestle__convert() (engine/common/convert.c, itself checked against independent
 * references in test_convert.c) of the writer's input.
 *
 * The tensors start at odd file offsets (small bool/int8 tensors are
 * written before them in the same shard) and span many chunks, so their
 * elements straddle the chunk boundaries where parts are cut: the seam
 * path (engine/restore/restore_convert.c) runs in every case. Values are random,
 * never zero, with NaNs, infinities, subnormals, rounding ties and
 * near-overflow values mixed in. Both readers, O_DIRECT never and always.
 */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plan.h"
#include "testutil.h"
#include "trestle.h"
#include "trestle_kernels.h"

#define CHUNK (64 << 10)

static const int readers[] = { TRESTLE_READER_IO_URING, TRESTLE_READER_PREAD };

/* ---- helpers ---- */

static void restore_opts(trestle_restore_options *o, int reader, int direct, uint64_t chunk)
{
    trestle_restore_options_init(o);
    o->reader = reader;
    o->direct = direct;
    o->chunk_bytes = chunk; /* small chunks: tensors span many parts */
    o->staging_bytes = 8 * chunk;
    o->threads = 3;
    o->queue_depth = 8;
}

static uint64_t rng(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

/*
 * n elements of `dtype` (float, half or bfloat16): one in eight from a
 * table of special values, half of the rest "ordinary" magnitudes, the
 * rest random bit patterns of every magnitude; never a zero.
 */
static void make_values(int dtype, size_t n, uint64_t seed, void *out)
{
    static const uint32_t f32_special[] = {
        0x7FC00000u, 0xFFC00001u, 0x7F800001u, 0xFFBFFFFFu, /* NaNs: quiet, signalling */
        0x7F800000u, 0xFF800000u,                            /* infinities */
        0x00000001u, 0x807FFFFFu, 0x00400000u,               /* float32 subnormals */
        0x3F808000u, 0x3F818000u, 0xBF808001u,               /* bfloat16 ties, just above */
        0x477FF000u, 0x477FE000u, 0xC77FEFFFu,               /* float16 overflow edge */
        0x33800000u, 0x33000000u, 0x33000001u, 0x387FC000u,  /* float16 subnormal range */
        0x7F7FFFFFu,                                         /* rounds to bfloat16 Inf */
    };
    static const uint16_t f16_special[] = { 0x7E00, 0xFE01, 0x7C01, 0x7C00, 0xFC00,
                                            0x0001, 0x83FF, 0x0200, 0x7BFF };
    static const uint16_t bf16_special[] = { 0x7FC0, 0xFF81, 0x7F81, 0x7F80, 0xFF80,
                                             0x0001, 0x807F, 0x0040, 0x7F7F };
    uint64_t x = seed * 0x9e3779b97f4a7c15ull + 12345;
    for (size_t i = 0; i < n; i++) {
        uint64_t r = rng(&x);
        if (dtype == TRESTLE_DT_FLOAT) {
            uint32_t u;
            if (i % 8 == 0)
                u = f32_special[(i / 8) % (sizeof f32_special / sizeof f32_special[0])];
            else if (i % 2)
                u = (uint32_t)(r & 0x807FFFFFu) | (uint32_t)(103 + (r >> 40) % 48) << 23;
            else
                u = (uint32_t)r;
            if ((u & 0x7FFFFFFFu) == 0)
                u |= 1;
            memcpy((uint8_t *)out + i * 4, &u, 4);
        } else {
            const uint16_t *sp = dtype == TRESTLE_DT_HALF ? f16_special : bf16_special;
            uint16_t h = i % 8 == 0 ? sp[(i / 8) % 9] : (uint16_t)r;
            if ((h & 0x7FFF) == 0)
                h |= 1;
            memcpy((uint8_t *)out + i * 2, &h, 2);
        }
    }
}

static char *new_prefix(char **dir, const char *name)
{
    char *prefix;
    *dir = tu_mkdtemp();
    cr_assert(asprintf(&prefix, "%s/%s", *dir, name) > 0);
    return prefix;
}

static void add_pad(trestle_writer *w, const char *name, int64_t bytes)
{
    trestle_error err;
    uint8_t *data = malloc((size_t)bytes);
    tu_fill_random(data, (size_t)bytes, (uint64_t)bytes);
    int dt = bytes == 1 ? TRESTLE_DT_BOOL : TRESTLE_DT_INT8;
    if (dt == TRESTLE_DT_BOOL)
        data[0] = 1;
    cr_assert_eq(trestle_writer_add(w, name, dt, 1, &bytes, data, (uint64_t)bytes, 0, &err),
                 TRESTLE_OK, "%s", err.message);
    free(data);
}

static int64_t count_of(int rank, const int64_t *dims)
{
    int64_t n = 1;
    for (int d = 0; d < rank; d++)
        n *= dims[d];
    return n;
}

/* "d0 d1 ... s0,l0:s1,l1:..." with '-' where the slice is the whole dim. */
static void make_spec(char *buf, size_t cap, int rank, const int64_t *dims, const int64_t *start,
                      const int64_t *len)
{
    size_t n = 0;
    for (int d = 0; d < rank; d++)
        n += (size_t)snprintf(buf + n, cap - n, "%lld ", (long long)dims[d]);
    for (int d = 0; d < rank; d++) {
        if (start[d] == 0 && len[d] == dims[d])
            n += (size_t)snprintf(buf + n, cap - n, "%s-", d ? ":" : "");
        else
            n += (size_t)snprintf(buf + n, cap - n, "%s%lld,%lld", d ? ":" : "",
                                  (long long)start[d], (long long)len[d]);
    }
}

/* The whole stored tensor converted, as the reference for its restores. */
static uint8_t *converted(const void *src, int src_dt, int dst_dt, size_t n)
{
    uint8_t *out = malloc(n * trestle_dtype_size(dst_dt) + 1);
    cr_assert(trestle__convert_supported(dst_dt, src_dt));
    trestle__convert(out, dst_dt, src, src_dt, n);
    return out;
}

/* ---- every pair, odd offsets, many chunks ---- */

typedef struct pair_case {
    int src, dst;
    int reader;
    int direct;
} pair_case;

ParameterizedTestParameters(convert, restores_every_pair_from_odd_offsets_across_chunks)
{
    static const int pairs[4][2] = {
        { TRESTLE_DT_FLOAT, TRESTLE_DT_BFLOAT16 }, { TRESTLE_DT_FLOAT, TRESTLE_DT_HALF },
        { TRESTLE_DT_HALF, TRESTLE_DT_FLOAT },     { TRESTLE_DT_BFLOAT16, TRESTLE_DT_FLOAT },
    };
    static pair_case cases[16];
    size_t n = 0;
    for (int k = 0; k < 4; k++)
        for (int r = 0; r < 2; r++)
            for (int d = 0; d < 2; d++)
                cases[n++] = (pair_case){ pairs[k][0], pairs[k][1], readers[r],
                                          d ? TRESTLE_DIRECT_ALWAYS : TRESTLE_DIRECT_NEVER };
    return cr_make_param_array(pair_case, cases, n);
}

#define NT 4     /* tensors */
#define MAX_OPS (3 * NT)

typedef struct expect {
    const uint8_t *want[MAX_OPS]; /* per op: the bytes it must hold when ready */
    uint64_t bytes[MAX_OPS];
    atomic_int bad;               /* ops whose bytes were wrong when reported ready */
    atomic_int ready;
} expect;

/* Ready means every element is in place, the seam elements included. */
static int check_on_ready(void *user, size_t i, const trestle_plan_op_info *op)
{
    expect *ex = user;
    atomic_fetch_add(&ex->ready, 1);
    if (op->bytes != ex->bytes[i] || memcmp(op->data, ex->want[i], (size_t)op->bytes) != 0)
        atomic_fetch_add(&ex->bad, 1);
    return 0;
}

ParameterizedTest(pair_case *pc, convert, restores_every_pair_from_odd_offsets_across_chunks)
{
    char *dir, *prefix = new_prefix(&dir, "pairs");
    size_t ses = trestle_dtype_size(pc->src), des = trestle_dtype_size(pc->dst);
    static const int ranks[NT] = { 1, 2, 1, 3 };
    static const int64_t shapes[NT][3] = { { 100003 }, { 233, 301 }, { 5 }, { 7, 11, 613 } };
    static const char *const names[NT] = { "a", "b/kernel", "c", "d" };
    uint8_t *data[NT], *want[NT], *want_other[NT];
    /* float32 also goes to the other 16-bit type in the same restore. */
    int other = pc->src != TRESTLE_DT_FLOAT ? 0
                : pc->dst == TRESTLE_DT_BFLOAT16 ? TRESTLE_DT_HALF
                                                 : TRESTLE_DT_BFLOAT16;
    trestle_writer *w;
    trestle_error err;
    uint64_t at = 0;

    cr_assert_eq(trestle_writer_create(prefix, NULL, &w, &err), TRESTLE_OK);
    static const int64_t pads[NT] = { 1, 2, 0, 2 };
    for (int t = 0; t < NT; t++) {
        int64_t pad = pads[t];
        if (t == 2) /* the small tensor straddles a chunk boundary, cut after its 5th byte */
            pad = (int64_t)((at / CHUNK + 1) * CHUNK - 5 - at);
        char pname[16];
        snprintf(pname, sizeof pname, "pad%d", t);
        add_pad(w, pname, pad);
        at += (uint64_t)pad;
        size_t n = (size_t)count_of(ranks[t], shapes[t]);
        data[t] = malloc(n * ses);
        make_values(pc->src, n, (uint64_t)t + 1, data[t]);
        cr_assert_eq(trestle_writer_add(w, names[t], pc->src, ranks[t], shapes[t], data[t],
                                        n * ses, 0, &err), TRESTLE_OK, "%s", err.message);
        cr_assert(t == 2 || at % 2 == 1, "%s starts at odd offset %llu", names[t],
                  (unsigned long long)at);
        at += n * ses;
        want[t] = converted(data[t], pc->src, pc->dst, n);
        want_other[t] = other ? converted(data[t], pc->src, other, n) : NULL;
    }
    cr_assert_eq(trestle_writer_finish(w, &err), TRESTLE_OK, "%s", err.message);
    trestle_writer_free(w);

    /* Per tensor: engine memory, a caller buffer, and (float32) the other target. */
    trestle_op ops[MAX_OPS];
    void *bufs[MAX_OPS] = { 0 };
    expect ex = { 0 };
    size_t nops = 0;
    uint64_t total = 0;
    for (int t = 0; t < NT; t++) {
        size_t n = (size_t)count_of(ranks[t], shapes[t]);
        ops[nops] = (trestle_op){ .name = names[t], .dest_kind = TRESTLE_DEST_ALLOCATE,
                                  .target_dtype = pc->dst };
        ex.want[nops] = want[t];
        ex.bytes[nops++] = n * des;
        bufs[nops] = malloc(n * des);
        ops[nops] = (trestle_op){ .name = names[t], .dtype = pc->src,
                                  .dest_kind = TRESTLE_DEST_HOST, .ptr = bufs[nops],
                                  .capacity = n * des, .target_dtype = pc->dst };
        ex.want[nops] = want[t];
        ex.bytes[nops++] = n * des;
        if (other) {
            size_t oes = trestle_dtype_size(other);
            bufs[nops] = malloc(n * oes);
            ops[nops] = (trestle_op){ .name = names[t], .dest_kind = TRESTLE_DEST_HOST,
                                      .ptr = bufs[nops], .capacity = n * oes,
                                      .target_dtype = other };
            ex.want[nops] = want_other[t];
            ex.bytes[nops++] = n * oes;
        }
    }
    for (size_t i = 0; i < nops; i++)
        total += ex.bytes[i];

    trestle_checkpoint *c;
    trestle_plan *p;
    c = tu_open(prefix, NULL);
    p = tu_plan(c, ops, nops, NULL);
    trestle_restore_options o;
    restore_opts(&o, pc->reader, pc->direct, CHUNK);
    o.on_ready = check_on_ready;
    o.user = &ex;
    trestle_stats st;
    /* Twice: the plan restores again into the same memory. */
    for (int round = 0; round < 2; round++) {
        cr_assert_eq(tu_restore(p, &o, &st, &err), TRESTLE_OK, "%s", err.message);
        cr_assert_eq(atomic_load(&ex.bad), 0, "an op was reported ready before its bytes were");
        cr_assert_eq(atomic_load(&ex.ready), (int)(nops * (size_t)(round + 1)));
        cr_assert_eq(st.tensors, nops);
        cr_assert_eq(st.bytes_copied, total, "every destination byte copied once");
        for (size_t i = 0; i < nops; i++) {
            trestle_plan_op_info info;
            cr_assert_eq(trestle_plan_get_op(p, i, &info), TRESTLE_OK);
            cr_assert_eq(info.dtype, pc->src);
            cr_assert_eq(info.out_dtype, ops[i].target_dtype);
            cr_assert_eq(info.bytes, ex.bytes[i]);
            cr_assert_arr_eq(info.data, ex.want[i], (size_t)info.bytes, "op %zu (%s -> %s)", i,
                             info.name, trestle_dtype_name(info.out_dtype));
            if (bufs[i]) {
                cr_assert_eq(info.data, bufs[i]);
                memset(bufs[i], 0, (size_t)info.bytes); /* the second round fills them anew */
            }
        }
    }
    trestle_plan_free(p);
    trestle_close(c);
    for (int t = 0; t < NT; t++) {
        free(data[t]);
        free(want[t]);
        free(want_other[t]);
    }
    for (size_t i = 0; i < nops; i++)
        free(bufs[i]);
    free(prefix);
    tu_rmtree(dir);
    free(dir);
}

/* ---- chunks larger than the host copy step ---- */

ParameterizedTestParameters(convert, large_chunks_convert_in_element_aligned_steps)
{
    return cr_make_param_array(int, (int *)readers, 2);
}

/* A host restore CRCs and copies a chunk in 256 KiB steps; with 1 MiB
 * chunks, a part that starts inside an element has steps that would too,
 * unless they are cut at element boundaries. */
ParameterizedTest(int *reader, convert, large_chunks_convert_in_element_aligned_steps)
{
    char *dir, *prefix = new_prefix(&dir, "big");
    int64_t nh = 1500001, nf = 700001;
    uint8_t *h = malloc((size_t)nh * 2), *f = malloc((size_t)nf * 4);
    trestle_writer *w;
    trestle_error err;
    make_values(TRESTLE_DT_HALF, (size_t)nh, 7, h);
    make_values(TRESTLE_DT_FLOAT, (size_t)nf, 8, f);
    cr_assert_eq(trestle_writer_create(prefix, NULL, &w, &err), TRESTLE_OK);
    add_pad(w, "flag", 1);
    cr_assert_eq(trestle_writer_add(w, "h", TRESTLE_DT_HALF, 1, &nh, h, (uint64_t)nh * 2, 0, &err),
                 TRESTLE_OK);
    add_pad(w, "pad", 2);
    cr_assert_eq(trestle_writer_add(w, "f", TRESTLE_DT_FLOAT, 1, &nf, f, (uint64_t)nf * 4, 0, &err),
                 TRESTLE_OK);
    cr_assert_eq(trestle_writer_finish(w, &err), TRESTLE_OK);
    trestle_writer_free(w);

    uint8_t *want_h = converted(h, TRESTLE_DT_HALF, TRESTLE_DT_FLOAT, (size_t)nh);
    uint8_t *want_f = converted(f, TRESTLE_DT_FLOAT, TRESTLE_DT_BFLOAT16, (size_t)nf);
    trestle_op ops[3] = {
        { .name = "flag", .dest_kind = TRESTLE_DEST_DISCARD },
        { .name = "h", .target_dtype = TRESTLE_DT_FLOAT },
        { .name = "f", .target_dtype = TRESTLE_DT_BFLOAT16 },
    };
    trestle_checkpoint *c;
    trestle_plan *p;
    c = tu_open(prefix, NULL);
    p = tu_plan(c, ops, 3, NULL);
    trestle_restore_options o;
    restore_opts(&o, *reader, TRESTLE_DIRECT_AUTO, 1 << 20);
    cr_assert_eq(tu_restore(p, &o, NULL, &err), TRESTLE_OK, "%s", err.message);
    trestle_plan_op_info info;
    trestle_plan_get_op(p, 1, &info);
    cr_assert_arr_eq(info.data, want_h, (size_t)nh * 4);
    trestle_plan_get_op(p, 2, &info);
    cr_assert_arr_eq(info.data, want_f, (size_t)nf * 2);
    trestle_plan_free(p);
    trestle_close(c);
    free(h);
    free(f);
    free(want_h);
    free(want_f);
    free(prefix);
    tu_rmtree(dir);
    free(dir);
}

/* ---- one tensor converted and not, in one plan ---- */

ParameterizedTestParameters(convert, same_tensor_converted_and_not_in_one_plan)
{
    return cr_make_param_array(int, (int *)readers, 2);
}

/* The unconverted caller buffer is large enough to be read into in place
 * (a buffered read straight into host memory); the converted ops read the
 * stored bytes from there, and are never that destination themselves. */
ParameterizedTest(int *reader, convert, same_tensor_converted_and_not_in_one_plan)
{
    char *dir, *prefix = new_prefix(&dir, "twice");
    int64_t dims[2] = { 300, 301 };
    size_t n = 300 * 301;
    uint8_t *data = malloc(n * 4);
    trestle_writer *w;
    trestle_error err;
    make_values(TRESTLE_DT_FLOAT, n, 99, data);
    cr_assert_eq(trestle_writer_create(prefix, NULL, &w, &err), TRESTLE_OK);
    add_pad(w, "flag", 1);
    cr_assert_eq(trestle_writer_add(w, "w", TRESTLE_DT_FLOAT, 2, dims, data, n * 4, 0, &err),
                 TRESTLE_OK);
    cr_assert_eq(trestle_writer_finish(w, &err), TRESTLE_OK);
    trestle_writer_free(w);

    uint8_t *as_bf16 = malloc(n * 2), *as_is = malloc(n * 4);
    uint8_t *want_bf16 = converted(data, TRESTLE_DT_FLOAT, TRESTLE_DT_BFLOAT16, n);
    uint8_t *want_f16 = converted(data, TRESTLE_DT_FLOAT, TRESTLE_DT_HALF, n);
    trestle_op ops[3] = {
        { .name = "w", .dest_kind = TRESTLE_DEST_HOST, .ptr = as_bf16, .capacity = n * 2,
          .target_dtype = TRESTLE_DT_BFLOAT16 },
        { .name = "w", .dtype = TRESTLE_DT_FLOAT, .dest_kind = TRESTLE_DEST_HOST, .ptr = as_is,
          .capacity = n * 4 },
        { .name = "w", .dest_kind = TRESTLE_DEST_ALLOCATE, .target_dtype = TRESTLE_DT_HALF },
    };
    trestle_checkpoint *c;
    trestle_plan *p;
    c = tu_open(prefix, NULL);
    p = tu_plan(c, ops, 3, NULL);
    trestle_plan_stats ps;
    trestle_plan_get_stats(p, &ps);
    cr_assert_eq(ps.extents, 1, "one read feeds all three");
    cr_assert_eq(ps.output_bytes, n * 2 + n * 4 + n * 2);
    trestle_restore_options o;
    restore_opts(&o, *reader, TRESTLE_DIRECT_NEVER, CHUNK);
    trestle_stats st;
    cr_assert_eq(tu_restore(p, &o, &st, &err), TRESTLE_OK, "%s", err.message);
    cr_assert_arr_eq(as_is, data, n * 4);
    cr_assert_arr_eq(as_bf16, want_bf16, n * 2);
    trestle_plan_op_info info;
    cr_assert_eq(trestle_plan_get_op(p, 2, &info), TRESTLE_OK);
    cr_assert_eq(info.out_dtype, TRESTLE_DT_HALF);
    cr_assert_arr_eq(info.data, want_f16, n * 2);
    cr_assert_eq(trestle_plan_get_op(p, 1, &info), TRESTLE_OK);
    cr_assert_eq(info.out_dtype, TRESTLE_DT_FLOAT);
    cr_assert_eq(st.bytes_copied, ps.output_bytes);
    trestle_plan_free(p);
    trestle_close(c);
    free(data);
    free(as_bf16);
    free(as_is);
    free(want_bf16);
    free(want_f16);
    free(prefix);
    tu_rmtree(dir);
    free(dir);
}

/* ---- slices and partitioned variables ---- */

ParameterizedTestParameters(convert, restores_converted_slices_of_1d_to_4d_and_partitioned)
{
    return cr_make_param_array(int, (int *)readers, 2);
}

typedef struct slice_tensor {
    const char *name;
    const char *lead;       /* the pad written just before it */
    int src, dst, rank;
    int64_t dims[4];
} slice_tensor;

/*
 * Restore `spec` (start/len per dim) of tensor t converted into a caller
 * buffer and compare with the same slice of the converted full tensor.
 * The pad before t is read too (and discarded): the batch then starts at
 * the pad, so the chunks it is cut into split t's elements.
 */
static void check_slice(trestle_checkpoint *c, int reader, const slice_tensor *t,
                        const uint8_t *full_conv, const int64_t *st, const int64_t *ln)
{
    size_t des = trestle_dtype_size(t->dst);
    size_t n = (size_t)count_of(t->rank, ln);
    char spec[256];
    trestle_error err;
    make_spec(spec, sizeof spec, t->rank, t->dims, st, ln);
    uint8_t *want = malloc(n * des + 1), *got = calloc(1, n * des + 1);
    tu_ref_slice(full_conv, t->dims, t->rank, st, ln, des, want);
    trestle_op ops[2] = {
        { .name = t->name, .shape_and_slices = spec, .dtype = t->src,
          .dest_kind = TRESTLE_DEST_HOST, .ptr = got, .capacity = n * des,
          .target_dtype = t->dst },
        { .name = t->lead, .dest_kind = TRESTLE_DEST_DISCARD },
    };
    trestle_plan *p = tu_plan(c, ops, 2, NULL);
    trestle_restore_options o;
    restore_opts(&o, reader, TRESTLE_DIRECT_AUTO, 4096); /* many parts per stored tensor */
    cr_assert_eq(tu_restore(p, &o, NULL, &err), TRESTLE_OK, "%s: %s", spec, err.message);
    cr_assert_arr_eq(got, want, n * des, "%s %s -> %s", t->name, spec,
                     trestle_dtype_name(t->dst));
    trestle_plan_op_info info;
    trestle_plan_get_op(p, 0, &info);
    cr_assert_eq(info.bytes, n * des);
    cr_assert_eq(info.rank, t->rank);
    for (int d = 0; d < t->rank; d++)
        cr_assert_eq(info.dims[d], ln[d]);
    trestle_plan_free(p);
    free(want);
    free(got);
}

ParameterizedTest(int *reader, convert, restores_converted_slices_of_1d_to_4d_and_partitioned)
{
    /* With 4 KiB chunks, boundaries cut elements of every plain tensor and
     * of the partitioned one's second and fourth parts (rows 1-2 and 6-10). */
    static const slice_tensor ts[5] = {
        { "t1", "pad0", TRESTLE_DT_FLOAT, TRESTLE_DT_BFLOAT16, 1, { 5003 } },
        { "t2", "pad1", TRESTLE_DT_FLOAT, TRESTLE_DT_HALF, 2, { 37, 131 } },
        { "t3", "pad2", TRESTLE_DT_BFLOAT16, TRESTLE_DT_FLOAT, 3, { 9, 11, 71 } },
        { "t4", "pad3", TRESTLE_DT_HALF, TRESTLE_DT_FLOAT, 4, { 5, 6, 7, 33 } },
        { "part", "ppad0", TRESTLE_DT_HALF, TRESTLE_DT_FLOAT, 2, { 11, 1001 } }, /* partitioned */
    };
    char *dir, *prefix = new_prefix(&dir, "slices");
    uint8_t *full[5], *conv[5];
    trestle_writer *w;
    trestle_error err;
    cr_assert_eq(trestle_writer_create(prefix, NULL, &w, &err), TRESTLE_OK);
    for (int k = 0; k < 5; k++) {
        const slice_tensor *t = &ts[k];
        size_t ses = trestle_dtype_size(t->src), n = (size_t)count_of(t->rank, t->dims);
        char pad[16];
        full[k] = malloc(n * ses);
        make_values(t->src, n, 50 + (uint64_t)k, full[k]);
        conv[k] = converted(full[k], t->src, t->dst, n);
        snprintf(pad, sizeof pad, "pad%d", k);
        add_pad(w, pad, 1 + 2 * (k % 2)); /* 1 or 3 bytes: odd offsets */
        if (k < 4) {
            cr_assert_eq(trestle_writer_add(w, t->name, t->src, t->rank, t->dims, full[k],
                                            n * ses, 0, &err), TRESTLE_OK, "%s", err.message);
            continue;
        }
        /* Partitions of 1, 2, 3 and 5 rows, a 3-byte pad before each. */
        static const int64_t rows[4] = { 1, 2, 3, 5 };
        size_t row = (size_t)t->dims[1] * ses;
        for (int64_t r0 = 0, j = 0; j < 4; r0 += rows[j], j++) {
            char spec[64], pname[16];
            snprintf(spec, sizeof spec, "11 1001 %lld,%lld:-", (long long)r0,
                     (long long)rows[j]);
            snprintf(pname, sizeof pname, "ppad%lld", (long long)j);
            add_pad(w, pname, 3);
            cr_assert_eq(trestle_writer_add_slice(w, t->name, t->src, spec,
                                                  full[k] + (size_t)r0 * row,
                                                  (size_t)rows[j] * row, 0, &err),
                         TRESTLE_OK, "%s: %s", spec, err.message);
        }
    }
    cr_assert_eq(trestle_writer_finish(w, &err), TRESTLE_OK, "%s", err.message);
    trestle_writer_free(w);

    trestle_checkpoint *c;
    c = tu_open(prefix, NULL);
    for (int k = 0; k < 5; k++) {
        const slice_tensor *t = &ts[k];
        /* A slice along each dimension, then one cut in every dimension. */
        for (int along = 0; along <= t->rank; along++) {
            int64_t st[4], ln[4];
            for (int d = 0; d < t->rank; d++) {
                bool cut = along == t->rank || d == along;
                st[d] = cut ? t->dims[d] / 3 : 0;
                ln[d] = cut ? (t->dims[d] - t->dims[d] / 3 + 1) / 2 : t->dims[d];
                if (ln[d] < 1)
                    ln[d] = 1;
            }
            check_slice(c, *reader, t, conv[k], st, ln);
        }
    }
    /* The partitioned tensor whole (every part a region), a request equal
     * to one stored part (copied verbatim) and one across three parts. */
    const slice_tensor *pt = &ts[4];
    int64_t whole_st[2] = { 0, 0 }, whole_ln[2] = { 11, 1001 };
    int64_t part_st[2] = { 3, 0 }, part_ln[2] = { 3, 1001 };
    int64_t span_st[2] = { 2, 5 }, span_ln[2] = { 6, 995 };
    check_slice(c, *reader, pt, conv[4], whole_st, whole_ln);
    check_slice(c, *reader, pt, conv[4], part_st, part_ln);
    check_slice(c, *reader, pt, conv[4], span_st, span_ln);
    trestle_op whole[2] = { { .name = "part", .dest_kind = TRESTLE_DEST_ALLOCATE,
                              .target_dtype = TRESTLE_DT_FLOAT },
                            { .name = "ppad0", .dest_kind = TRESTLE_DEST_DISCARD } };
    trestle_plan *p;
    p = tu_plan(c, whole, 2, NULL);
    trestle_restore_options o;
    restore_opts(&o, *reader, TRESTLE_DIRECT_ALWAYS, 4096);
    cr_assert_eq(tu_restore(p, &o, NULL, &err), TRESTLE_OK, "%s", err.message);
    trestle_plan_op_info info;
    trestle_plan_get_op(p, 0, &info);
    cr_assert_eq(info.bytes, 11 * 1001 * 4);
    cr_assert_arr_eq(info.data, conv[4], 11 * 1001 * 4);
    trestle_plan_free(p);

    trestle_close(c);
    for (int k = 0; k < 5; k++) {
        free(full[k]);
        free(conv[k]);
    }
    free(prefix);
    tu_rmtree(dir);
    free(dir);
}

/* ---- planning ---- */

/* A small checkpoint for the planner cases. */
static trestle_checkpoint *small_checkpoint(char **dir, char **prefix)
{
    trestle_writer *w;
    trestle_error err;
    trestle_checkpoint *c;
    int32_t ints[4] = { 1, 2, 3, 4 };
    float floats[2] = { 1.5f, -2.25f };
    uint16_t halves[3] = { 0x3C00, 0x7C00, 0x0001 };
    int64_t four = 4, two = 2, three = 3, zero = 0;
    *prefix = new_prefix(dir, "small");
    cr_assert_eq(trestle_writer_create(*prefix, NULL, &w, &err), TRESTLE_OK);
    cr_assert_eq(trestle_writer_add(w, "x", TRESTLE_DT_INT32, 1, &four, ints, 16, 0, &err),
                 TRESTLE_OK);
    cr_assert_eq(trestle_writer_add(w, "w", TRESTLE_DT_FLOAT, 1, &two, floats, 8, 0, &err),
                 TRESTLE_OK);
    cr_assert_eq(trestle_writer_add(w, "h", TRESTLE_DT_HALF, 1, &three, halves, 6, 0, &err),
                 TRESTLE_OK);
    cr_assert_eq(trestle_writer_add(w, "empty", TRESTLE_DT_FLOAT, 1, &zero, NULL, 0, 0, &err),
                 TRESTLE_OK, "%s", err.message);
    cr_assert_eq(trestle_writer_finish(w, &err), TRESTLE_OK);
    trestle_writer_free(w);
    c = tu_open(*prefix, NULL);
    return c;
}

static void drop_checkpoint(trestle_checkpoint *c, char *dir, char *prefix)
{
    trestle_close(c);
    tu_rmtree(dir);
    free(dir);
    free(prefix);
}

#define SUPPORTED "(supported: float32 -> bfloat16, float32 -> float16, float16 -> float32, " \
                  "bfloat16 -> float32)"

Test(convert, rejects_an_unsupported_pair_naming_tensor_and_dtypes)
{
    char *dir, *prefix;
    trestle_checkpoint *c = small_checkpoint(&dir, &prefix);
    trestle_plan *p = (trestle_plan *)&dir;
    trestle_error err;
    trestle_op op = { .name = "x", .target_dtype = TRESTLE_DT_BFLOAT16 };
    cr_assert_eq(trestle_plan_create(c, &op, 1, NULL, &p, &err), TRESTLE_E_DTYPE_MISMATCH);
    cr_assert_null(p);
    cr_assert_str_eq(err.message,
                     "tensor 'x': cannot convert int32 to bfloat16 on load " SUPPORTED);
    cr_assert_str_eq(err.key, "x");
    drop_checkpoint(c, dir, prefix);
}

Test(convert, reports_every_unsupported_pair_at_once_in_op_order)
{
    char *dir, *prefix;
    trestle_checkpoint *c = small_checkpoint(&dir, &prefix);
    trestle_plan *p;
    trestle_error err;
    trestle_op ops[3] = {
        { .name = "h", .target_dtype = TRESTLE_DT_BFLOAT16 },
        { .name = "w", .target_dtype = TRESTLE_DT_HALF }, /* fine */
        { .name = "x", .target_dtype = TRESTLE_DT_FLOAT },
    };
    cr_assert_eq(trestle_plan_create(c, ops, 3, NULL, &p, &err), TRESTLE_E_DTYPE_MISMATCH);
    cr_assert_str_eq(err.message,
                     "tensor 'h': cannot convert float16 to bfloat16 on load " SUPPORTED "\n"
                     "tensor 'x': cannot convert int32 to float32 on load " SUPPORTED);
    cr_assert_str_eq(err.key, "h");
    drop_checkpoint(c, dir, prefix);
}

Test(convert, expected_dtype_is_still_checked_against_the_stored_dtype)
{
    char *dir, *prefix;
    trestle_checkpoint *c = small_checkpoint(&dir, &prefix);
    trestle_plan *p;
    trestle_error err;
    /* dtype names what is stored, target_dtype what is wanted: asking for
     * bfloat16 in both is a mismatch, whatever the conversion. */
    trestle_op bad = { .name = "w", .dtype = TRESTLE_DT_BFLOAT16,
                       .target_dtype = TRESTLE_DT_BFLOAT16 };
    cr_assert_eq(trestle_plan_create(c, &bad, 1, NULL, &p, &err), TRESTLE_E_DTYPE_MISMATCH);
    cr_assert_str_eq(err.message, "tensor_name = w; expected dtype bfloat16 does not equal "
                                  "original dtype float");
    trestle_op good = { .name = "w", .dtype = TRESTLE_DT_FLOAT,
                        .target_dtype = TRESTLE_DT_BFLOAT16 };
    p = tu_plan(c, &good, 1, NULL);
    trestle_plan_op_info info;
    cr_assert_eq(trestle_plan_get_op(p, 0, &info), TRESTLE_OK);
    cr_assert_eq(info.dtype, TRESTLE_DT_FLOAT);
    cr_assert_eq(info.out_dtype, TRESTLE_DT_BFLOAT16);
    cr_assert_eq(info.bytes, 4);
    trestle_plan_free(p);
    drop_checkpoint(c, dir, prefix);
}

Test(convert, a_target_equal_to_the_stored_dtype_converts_nothing)
{
    char *dir, *prefix;
    trestle_checkpoint *c = small_checkpoint(&dir, &prefix);
    trestle_plan *p;
    trestle_op ops[2] = { { .name = "w", .target_dtype = TRESTLE_DT_FLOAT },
                          { .name = "x" } };
    p = tu_plan(c, ops, 2, NULL);
    trestle_plan_op_info info;
    cr_assert_eq(trestle_plan_get_op(p, 0, &info), TRESTLE_OK);
    cr_assert_eq(info.out_dtype, TRESTLE_DT_FLOAT);
    cr_assert_eq(info.bytes, 8);
    cr_assert_not(p->ops[0].convert);
    cr_assert_eq(trestle_plan_get_op(p, 1, &info), TRESTLE_OK);
    cr_assert_eq(info.out_dtype, TRESTLE_DT_INT32);
    trestle_plan_free(p);
    /* Every-tensor plans convert nothing either. */
    p = tu_plan(c, NULL, 0, NULL);
    for (size_t i = 0; i < trestle_plan_op_count(p); i++) {
        cr_assert_eq(trestle_plan_get_op(p, i, &info), TRESTLE_OK);
        cr_assert_eq(info.out_dtype, info.dtype, "%s", info.name);
    }
    trestle_plan_free(p);
    drop_checkpoint(c, dir, prefix);
}

Test(convert, pieces_and_regions_describe_the_destination_layout)
{
    char *dir, *prefix;
    trestle_checkpoint *c = small_checkpoint(&dir, &prefix);
    trestle_plan *p;
    trestle_error err;
    /* A slice of h widened to float32: its region counts 4-byte elements. */
    trestle_op ops[2] = { { .name = "h", .shape_and_slices = "3 1,2",
                            .target_dtype = TRESTLE_DT_FLOAT },
                          { .name = "w", .target_dtype = TRESTLE_DT_HALF } };
    p = tu_plan(c, ops, 2, NULL);
    cr_assert_eq(p->num_regions, 1);
    cr_assert_eq(p->regions[0].elem_size, 4);
    cr_assert_eq(p->ops[0].src_es, 2);
    cr_assert_eq(p->ops[0].dst_es, 4);
    cr_assert_eq(p->ops[0].bytes, 8);
    cr_assert_eq(p->ops[1].bytes, 4);
    trestle_plan_stats ps;
    trestle_plan_get_stats(p, &ps);
    cr_assert_eq(ps.output_bytes, 12);
    cr_assert_eq(ps.read_bytes, 6 + 8, "reads count stored bytes");

    trestle_restore_options o;
    restore_opts(&o, TRESTLE_READER_PREAD, TRESTLE_DIRECT_AUTO, 4096);
    cr_assert_eq(trestle_restore(p, &o, NULL, &err), TRESTLE_OK, "%s", err.message);
    trestle_plan_op_info info;
    trestle_plan_get_op(p, 0, &info);
    uint32_t want_h[2] = { 0x7F800000u, 0x33800000u }; /* Inf, 2^-24 */
    cr_assert_arr_eq(info.data, want_h, 8);
    trestle_plan_get_op(p, 1, &info);
    uint16_t want_w[2] = { 0x3E00, 0xC080 }; /* 1.5, -2.25 */
    cr_assert_arr_eq(info.data, want_w, 4);
    trestle_plan_free(p);
    drop_checkpoint(c, dir, prefix);
}

Test(convert, caller_buffers_are_sized_in_the_target_dtype)
{
    char *dir, *prefix;
    trestle_checkpoint *c = small_checkpoint(&dir, &prefix);
    trestle_plan *p;
    trestle_error err;
    float out[3];
    /* Three float16 values widen to 12 bytes: the stored 6 are not enough. */
    trestle_op op = { .name = "h", .dest_kind = TRESTLE_DEST_HOST, .ptr = out, .capacity = 6,
                      .target_dtype = TRESTLE_DT_FLOAT };
    cr_assert_eq(trestle_plan_create(c, &op, 1, NULL, &p, &err), TRESTLE_E_INVALID_ARG);
    cr_assert_str_eq(err.message, "tensor h: destination holds 6 bytes, but the restore needs "
                                  "12 bytes");
    op.capacity = sizeof out;
    p = tu_plan(c, &op, 1, NULL);
    trestle_restore_options o;
    restore_opts(&o, TRESTLE_READER_PREAD, TRESTLE_DIRECT_AUTO, 4096);
    cr_assert_eq(trestle_restore(p, &o, NULL, &err), TRESTLE_OK, "%s", err.message);
    uint32_t want[3] = { 0x3F800000u, 0x7F800000u, 0x33800000u };
    cr_assert_arr_eq(out, want, sizeof want);
    trestle_plan_free(p);

    /* A zero-element tensor converts to zero bytes, ready at once. */
    trestle_op empty = { .name = "empty", .target_dtype = TRESTLE_DT_BFLOAT16 };
    p = tu_plan(c, &empty, 1, NULL);
    trestle_stats st;
    cr_assert_eq(trestle_restore(p, &o, &st, &err), TRESTLE_OK, "%s", err.message);
    cr_assert_eq(st.tensors, 1);
    trestle_plan_op_info info;
    trestle_plan_get_op(p, 0, &info);
    cr_assert_eq(info.bytes, 0);
    cr_assert_eq(info.out_dtype, TRESTLE_DT_BFLOAT16);
    trestle_plan_free(p);
    drop_checkpoint(c, dir, prefix);
}

Test(convert, public_pair_table_matches_the_converters)
{
    for (int s = -1; s <= TRESTLE_DT_COUNT_; s++)
        for (int t = -1; t <= TRESTLE_DT_COUNT_; t++)
            cr_assert_eq(trestle_dtype_can_convert(s, t), trestle__convert_supported(t, s),
                         "%d -> %d", s, t);
    cr_assert(trestle_dtype_can_convert(TRESTLE_DT_FLOAT, TRESTLE_DT_BFLOAT16));
    cr_assert(trestle_dtype_can_convert(TRESTLE_DT_BFLOAT16, TRESTLE_DT_FLOAT));
    cr_assert_not(trestle_dtype_can_convert(TRESTLE_DT_BFLOAT16, TRESTLE_DT_HALF));
    cr_assert_not(trestle_dtype_can_convert(TRESTLE_DT_FLOAT, TRESTLE_DT_FLOAT));
}

/* ---- the CLI ---- */

/* emb (float32, at offset 1), flag, h (float16), step (int64). */
static char *cli_checkpoint(char **dir)
{
    char *prefix = new_prefix(dir, "model");
    trestle_writer *w;
    trestle_error err;
    float emb[12];
    uint16_t h[2] = { 0x3C00, 0xC000 };
    int64_t step = 7, d_emb[2] = { 4, 3 }, d_h = 2;
    make_values(TRESTLE_DT_FLOAT, 12, 3, emb);
    cr_assert_eq(trestle_writer_create(prefix, NULL, &w, &err), TRESTLE_OK);
    add_pad(w, "flag", 1);
    cr_assert_eq(trestle_writer_add(w, "emb", TRESTLE_DT_FLOAT, 2, d_emb, emb, 48, 0, &err),
                 TRESTLE_OK);
    cr_assert_eq(trestle_writer_add(w, "h", TRESTLE_DT_HALF, 1, &d_h, h, 4, 0, &err), TRESTLE_OK);
    cr_assert_eq(trestle_writer_add(w, "step", TRESTLE_DT_INT64, 0, NULL, &step, 8, 0, &err),
                 TRESTLE_OK);
    cr_assert_eq(trestle_writer_finish(w, &err), TRESTLE_OK);
    trestle_writer_free(w);
    return prefix;
}

Test(convert, cli_restore_as_converts_every_tensor_that_converts)
{
    char *dir, *prefix = cli_checkpoint(&dir);
    tu_cli_result r = tu_cli("restore --as bfloat16 --list --reader pread '%s'", prefix);
    cr_assert_eq(r.rc, 0, "stderr: %s", r.err);
    cr_assert(tu_starts_with(r.out, "OP    DTYPE              SHAPE  SIZE\n"
                                 "emb   float32->bfloat16  [4,3]  24 B\n"
                                 "flag  bool               [1]     1 B\n"
                                 "h     half               [2]     4 B\n"
                                 "step  int64              []      8 B\n"
                                 "restored 4 tensors, 37 B in "),
              "%s", r.out);
    tu_cli_free(&r);

    r = tu_cli("restore --as float32 --list --reader pread '%s'", prefix);
    cr_assert_eq(r.rc, 0, "stderr: %s", r.err);
    cr_assert(tu_starts_with(r.out, "OP    DTYPE             SHAPE  SIZE\n"
                                 "emb   float             [4,3]  48 B\n"
                                 "flag  bool              [1]     1 B\n"
                                 "h     float16->float32  [2]     8 B\n"
                                 "step  int64             []      8 B\n"
                                 "restored 4 tensors, 65 B in "),
              "%s", r.out);
    tu_cli_free(&r);

    r = tu_cli("restore --as floaty '%s'", prefix);
    cr_assert_eq(r.rc, 2);
    cr_assert(strstr(r.err, "--as wants a dtype such as bfloat16 or float32, not 'floaty'"), "%s",
              r.err);
    tu_cli_free(&r);
    free(prefix);
    tu_rmtree(dir);
    free(dir);
}

Test(convert, cli_ops_file_as_field_converts_that_op)
{
    char *dir, *prefix = cli_checkpoint(&dir), *ops;
    cr_assert(asprintf(&ops, "%s/ops.txt", dir) > 0);
    const char *text = "emb\t\tdtype=float32\tas=bfloat16\n"
                       "emb\t4 3 1,2:-\tas=float16\n"
                       "h\tas=float32\n"
                       "step\n";
    cr_assert_eq(tu_write_file(ops, text, strlen(text)), 0);
    tu_cli_result r = tu_cli("restore --list --reader pread --ops '%s' '%s'", ops, prefix);
    cr_assert_eq(r.rc, 0, "stderr: %s", r.err);
    cr_assert(tu_starts_with(r.out, "OP    DTYPE              SHAPE  SIZE\n"
                                 "emb   float32->bfloat16  [4,3]  24 B\n"
                                 "emb   float32->float16   [2,3]  12 B\n"
                                 "h     float16->float32   [2]     8 B\n"
                                 "step  int64              []      8 B\n"
                                 "restored 4 tensors, 52 B in "),
              "%s", r.out);
    tu_cli_free(&r);

    /* --as is for every tensor; an ops file says it per op. */
    r = tu_cli("restore --as bfloat16 --ops '%s' '%s'", ops, prefix);
    cr_assert_eq(r.rc, 2);
    cr_assert(strstr(r.err, "--as goes with --all; in an ops file, write as=DTYPE on each op"),
              "%s", r.err);
    tu_cli_free(&r);

    /* An unsupported pair fails with the library's message. */
    text = "step\t\tas=bfloat16\n";
    cr_assert_eq(tu_write_file(ops, text, strlen(text)), 0);
    r = tu_cli("restore --ops '%s' '%s'", ops, prefix);
    cr_assert_eq(r.rc, 1);
    cr_assert_str_eq(r.err, "trestle: tensor 'step': cannot convert int64 to bfloat16 on load "
                            SUPPORTED "\n");
    tu_cli_free(&r);

    text = "emb\t\tas=bfloat16\tas=float16\n";
    cr_assert_eq(tu_write_file(ops, text, strlen(text)), 0);
    r = tu_cli("restore --ops '%s' '%s'", ops, prefix);
    cr_assert_eq(r.rc, 1);
    char want[4096];
    snprintf(want, sizeof want, "trestle: %s:1: as= given twice\n", ops);
    cr_assert_str_eq(r.err, want);
    tu_cli_free(&r);

    text = "emb\t\tto=bfloat16\n";
    cr_assert_eq(tu_write_file(ops, text, strlen(text)), 0);
    r = tu_cli("restore --ops '%s' '%s'", ops, prefix);
    cr_assert_eq(r.rc, 1);
    snprintf(want, sizeof want,
             "trestle: %s:1: fields after SHAPE_AND_SLICES must be dtype=DTYPE or as=DTYPE\n",
             ops);
    cr_assert_str_eq(r.err, want);
    tu_cli_free(&r);
    free(ops);
    free(prefix);
    tu_rmtree(dir);
    free(dir);
}
