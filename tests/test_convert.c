/*
 * test_convert.c - the CPU dtype conversions (engine/common/convert.c, the twins
 * of kernels/cast.cu) against independent references, and the region
 * layout behind both the host copier and the scatter kernel
 * (trestle__region_layout, engine/restore/copy_host.c).
 *
 * The references share nothing with the code under test: widening decodes
 * sign, exponent and mantissa with ldexp() in double; narrowing looks the
 * input up in a sorted table of every finite target value (decoded the
 * same way) and picks the nearer neighbour, ties to the even code, with
 * exact double arithmetic.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "copy.h"
#include "slice.h"
#include "testutil.h"
#include "trestle.h"
#include "trestle_kernels.h"

/* ---- references ---- */

static uint32_t f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static float bits_f32(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* The value of a float16 code (NAN for NaNs). */
static double half_value(uint16_t h)
{
    int e = (h >> 10) & 0x1F, m = h & 0x3FF;
    double v = e == 0 ? ldexp(m, -24) : e == 31 ? (m ? NAN : INFINITY) : ldexp(1024 + m, e - 25);
    return h & 0x8000 ? -v : v;
}

/* The value of a bfloat16 code (NAN for NaNs). */
static double bf16_value(uint16_t b)
{
    int e = (b >> 7) & 0xFF, m = b & 0x7F;
    double v = e == 0 ? ldexp(m, -133) : e == 255 ? (m ? NAN : INFINITY) : ldexp(128 + m, e - 134);
    return b & 0x8000 ? -v : v;
}

/*
 * A rounding table: value[c] for every non-negative finite code c below
 * `inf` (the code of +Inf), plus value[inf] = the power of two that would
 * follow the largest finite value if the exponent went on. Rounding to
 * nearest even against that extended value gives exactly IEEE overflow:
 * values from halfway between max and that power of two up become Inf.
 */
typedef struct table {
    double *value;
    uint32_t inf;
} table;

static table make_table(double (*decode)(uint16_t), uint16_t inf, double beyond)
{
    table t = { malloc(((size_t)inf + 1) * sizeof(double)), inf };
    cr_assert(t.value);
    for (uint32_t c = 0; c < inf; c++)
        t.value[c] = decode((uint16_t)c);
    t.value[inf] = beyond;
    return t;
}

/* The code nearest to float32 x, ties to even; NaN gives `nan | sign`. */
static uint16_t round_ref(const table *t, float x, uint16_t nan)
{
    uint16_t sign = signbit(x) ? 0x8000 : 0;
    if (isnan(x))
        return nan | sign;
    double a = fabs((double)x);
    if (a >= t->value[t->inf])
        return (uint16_t)(t->inf | sign);
    uint32_t lo = 0, hi = t->inf; /* value[lo] <= a < value[hi] */
    while (hi - lo > 1) {
        uint32_t mid = (lo + hi) / 2;
        if (t->value[mid] <= a)
            lo = mid;
        else
            hi = mid;
    }
    /* Adjacent codes have significands a few bits long in neighbouring
     * binades: their sum and 2a are exact in double. */
    double twice = 2 * a, sum = t->value[lo] + t->value[hi];
    uint32_t c = twice < sum ? lo : twice > sum ? hi : (lo % 2 == 0 ? lo : hi);
    return (uint16_t)(c | sign);
}

static table half_table(void)
{
    return make_table(half_value, 0x7C00, 65536.0);
}

static table bf16_table(void)
{
    return make_table(bf16_value, 0x7F80, ldexp(1, 128));
}

/* ---- edge cases ---- */

/* float32 inputs that sit on every boundary the conversions have. */
static const uint32_t edges[] = {
    0x00000000, 0x80000000,             /* +-0 */
    0x7F800000, 0xFF800000,             /* +-Inf */
    0x7FC00000, 0xFFC00000, 0x7F800001, /* quiet NaNs, a signalling NaN */
    0xFF800001, 0x7FBFFFFF, 0xFFFFFFFF, 0x7FFFFFFF, 0x7FC00001,
    0x7F7FFFFF, 0xFF7FFFFF,             /* float32 max */
    0x00800000, 0x007FFFFF, 0x00000001, /* float32 min normal, max and min subnormal */
    0x80000001, 0x3F800000, 0xBF800000, /* 1.0 */
    /* float16 */
    0x477FE000, /* 65504, max */
    0x477FEFFF, /* just below 65520: 65504 */
    0x477FF000, /* 65520: the tie between max and "65536" rounds to Inf */
    0x477FF001, 0x47800000, 0x47800001, 0xC77FF000, 0xC77FEFFF,
    0x38800000, /* 2^-14, min normal */
    0x387FFFFF, /* rounds up to min normal */
    0x387FC000, /* max subnormal 1023 x 2^-24 */
    0x387FE000, /* tie between max subnormal and min normal -> min normal (even) */
    0x33800000, /* 2^-24, min subnormal */
    0x33000000, /* 2^-25: tie between 0 and min subnormal -> 0 */
    0x33000001, /* just above: min subnormal */
    0x32FFFFFF, /* just below: 0 */
    0x33C00000, /* 1.5 x 2^-24: tie -> 2 x 2^-24 */
    0x34200000, /* 2.5 x 2^-24: tie -> 2 x 2^-24 */
    0x3F801000, /* 1 + 2^-11: tie -> 1 */
    0x3F803000, /* 1 + 3 x 2^-11: tie -> 1 + 2^-9 */
    0x3F801001, 0x3F800FFF,
    /* bfloat16 */
    0x3F808000, /* tie -> 0x3F80 */
    0x3F818000, /* tie -> 0x3F82 */
    0x3F808001, 0x3F807FFF,
    0x7F7F8000, /* tie between bf16 max 0x7F7F and Inf -> Inf */
    0x7F7F7FFF, /* -> 0x7F7F */
    0x7F7EFFFF, 0x7F7F0000,
    0x00008000, /* bf16 subnormal tie -> 0 */
    0x00018000, /* -> 0x0002 */
    0x00010000, 0x0000FFFF,
};

#define NEDGES (sizeof edges / sizeof edges[0])

/* Convert `n` float32 bit patterns with trestle__convert into `out`, from
 * a copy at an odd address so that the unaligned path runs too. */
static void narrow(int dtype, const uint32_t *in, uint16_t *out, size_t n)
{
    uint8_t *src = malloc(n * 4 + 1), *dst = malloc(n * 2 + 3);
    cr_assert(src && dst);
    memcpy(src + 1, in, n * 4);
    trestle__convert(dst + 3, dtype, src + 1, TRESTLE_DT_FLOAT, n);
    memcpy(out, dst + 3, n * 2);
    free(src);
    free(dst);
}

/*
 * Check trestle__convert(float32 -> dtype) on `n` inputs against the
 * reference, and each result against the scalar function run one element
 * at a time (what the GPU kernel runs).
 */
static void check_narrowing(int dtype, const uint32_t *in, size_t n, const char *what)
{
    table t = dtype == TRESTLE_DT_HALF ? half_table() : bf16_table();
    uint16_t nan = dtype == TRESTLE_DT_HALF ? 0x7E00 : 0x7FC0;
    uint16_t *out = malloc(n * 2);
    cr_assert(out);
    narrow(dtype, in, out, n);
    for (size_t i = 0; i < n; i++) {
        uint16_t want = round_ref(&t, bits_f32(in[i]), nan);
        uint32_t one = dtype == TRESTLE_DT_HALF ? trestle__k_f32_to_f16(in[i])
                                                : trestle__k_f32_to_bf16(in[i]);
        cr_assert_eq(out[i], want, "%s: float32 0x%08x (%a) -> 0x%04x, want 0x%04x", what, in[i],
                     (double)bits_f32(in[i]), out[i], want);
        cr_assert_eq(one, want, "%s: scalar, float32 0x%08x -> 0x%04x, want 0x%04x", what, in[i],
                     one, want);
    }
    free(out);
    free(t.value);
}

/* Every edge, negated too, plus every tie of the target type and its
 * float32 neighbours on either side. */
static uint32_t *edge_inputs(int dtype, size_t *n)
{
    table t = dtype == TRESTLE_DT_HALF ? half_table() : bf16_table();
    size_t cap = 2 * NEDGES + 6 * (size_t)t.inf, k = 0;
    uint32_t *in = malloc(cap * 4);
    cr_assert(in);
    for (size_t i = 0; i < NEDGES; i++) {
        in[k++] = edges[i];
        in[k++] = edges[i] ^ 0x80000000u;
    }
    for (uint32_t c = 0; c < t.inf; c++) {
        /* The midpoint of two neighbouring codes has a significand one bit
         * longer than theirs: a float32 holds it exactly. */
        uint32_t mid = f32_bits((float)((t.value[c] + t.value[c + 1]) / 2));
        for (int s = 0; s < 2; s++) {
            uint32_t sign = s ? 0x80000000u : 0;
            in[k++] = mid | sign;
            in[k++] = (mid + 1) | sign;
            in[k++] = (mid - 1) | sign;
        }
    }
    free(t.value);
    *n = k;
    return in;
}

/* ---- widening, exhaustively ---- */

static void check_widening(int dtype)
{
    uint16_t *in = malloc(65536 * 2);
    uint8_t *out = malloc(65536 * 4 + 1);
    cr_assert(in && out);
    for (uint32_t c = 0; c < 65536; c++)
        in[c] = (uint16_t)c;
    trestle__convert(out + 1, TRESTLE_DT_FLOAT, in, dtype, 65536);
    for (uint32_t c = 0; c < 65536; c++) {
        uint32_t got;
        memcpy(&got, out + 1 + 4 * c, 4);
        double v = dtype == TRESTLE_DT_HALF ? half_value((uint16_t)c) : bf16_value((uint16_t)c);
        uint32_t one = dtype == TRESTLE_DT_HALF ? trestle__k_f16_to_f32(c)
                                                : trestle__k_bf16_to_f32(c);
        cr_assert_eq(one, got, "code 0x%04x: scalar 0x%08x, loop 0x%08x", c, one, got);
        if (isnan(v)) {
            /* Exact for NaNs too: sign and payload kept, quiet or not. */
            uint32_t shift = dtype == TRESTLE_DT_HALF ? 13 : 16;
            uint32_t mant = dtype == TRESTLE_DT_HALF ? (c & 0x3FF) : (c & 0x7F);
            uint32_t want = ((c & 0x8000u) << 16) | 0x7F800000u | (mant << shift);
            cr_assert(isnan(bits_f32(got)), "code 0x%04x -> 0x%08x is not a NaN", c, got);
            cr_assert_eq(got, want, "NaN 0x%04x -> 0x%08x, want 0x%08x", c, got, want);
        } else {
            /* v is exact in double and in float32; the bits include the sign of zero. */
            cr_assert_eq(got, f32_bits((float)v), "code 0x%04x -> 0x%08x (%a), want %a", c, got,
                         (double)bits_f32(got), v);
        }
    }
    free(in);
    free(out);
}

Test(convert, float16_to_float32_is_exact_for_all_65536_codes)
{
    check_widening(TRESTLE_DT_HALF);
}

Test(convert, bfloat16_to_float32_is_exact_for_all_65536_codes)
{
    check_widening(TRESTLE_DT_BFLOAT16);
}

/* ---- narrowing ---- */

Test(convert, float32_to_float16_rounds_edges_and_every_tie_to_nearest_even)
{
    size_t n;
    uint32_t *in = edge_inputs(TRESTLE_DT_HALF, &n);
    check_narrowing(TRESTLE_DT_HALF, in, n, "edges");
    free(in);
}

Test(convert, float32_to_bfloat16_rounds_edges_and_every_tie_to_nearest_even)
{
    size_t n;
    uint32_t *in = edge_inputs(TRESTLE_DT_BFLOAT16, &n);
    check_narrowing(TRESTLE_DT_BFLOAT16, in, n, "edges");
    free(in);
}

/* One million seeded bit patterns: every exponent, NaN payloads, both signs. */
static uint32_t *random_inputs(size_t n, uint64_t seed)
{
    uint32_t *in = malloc(n * 4);
    cr_assert(in);
    uint64_t x = seed;
    for (size_t i = 0; i < n; i++)
        in[i] = (uint32_t)(tu_rng_next(&x) >> 16);
    return in;
}

Test(convert, float32_to_float16_matches_reference_on_a_million_random_patterns)
{
    uint32_t *in = random_inputs(1 << 20, 0x9E3779B97F4A7C15ull);
    check_narrowing(TRESTLE_DT_HALF, in, 1 << 20, "random");
    free(in);
}

Test(convert, float32_to_bfloat16_matches_reference_on_a_million_random_patterns)
{
    uint32_t *in = random_inputs(1 << 20, 0xD1B54A32D192ED03ull);
    check_narrowing(TRESTLE_DT_BFLOAT16, in, 1 << 20, "random");
    free(in);
}

/* Values as weights have them, around float16's subnormal range: blocks
 * where the CPU loop's subnormal fix-up runs for some elements only. */
Test(convert, float32_to_float16_handles_blocks_mixing_normal_and_subnormal_results)
{
    size_t n = 100003;
    uint32_t *in = malloc(n * 4);
    cr_assert(in);
    uint64_t x = 77;
    for (size_t i = 0; i < n; i++) {
        double v = ((double)(tu_rng_next(&x) >> 11) / 9007199254740992.0 * 2 - 1) * 1e-3;
        in[i] = f32_bits((float)v);
    }
    check_narrowing(TRESTLE_DT_HALF, in, n, "mixed");
    free(in);
}

/* ---- the loop around the scalar functions ---- */

/* Every count around the block size, at every alignment of both buffers:
 * element i is converted by itself, and nothing outside [0, count) moves. */
Test(convert, any_count_and_alignment_converts_exactly_the_elements_asked)
{
    static const int pairs[4][2] = { { TRESTLE_DT_BFLOAT16, TRESTLE_DT_FLOAT },
                                     { TRESTLE_DT_HALF, TRESTLE_DT_FLOAT },
                                     { TRESTLE_DT_FLOAT, TRESTLE_DT_HALF },
                                     { TRESTLE_DT_FLOAT, TRESTLE_DT_BFLOAT16 } };
    uint8_t src[1200], dst[1200], want[1200];
    tu_fill_random(src, sizeof src, 3);
    for (int p = 0; p < 4; p++) {
        int dt = pairs[p][0], st = pairs[p][1];
        size_t is = st == TRESTLE_DT_FLOAT ? 4 : 2, os = dt == TRESTLE_DT_FLOAT ? 4 : 2;
        for (size_t count = 0; count <= 140; count += count < 70 ? 1 : 7) {
            for (size_t so = 0; so < 4; so++) {
                for (size_t doff = 0; doff < 4; doff++) {
                    memset(dst, 0xA5, sizeof dst);
                    memset(want, 0xA5, sizeof want);
                    for (size_t i = 0; i < count; i++) {
                        uint32_t x = 0, y;
                        memcpy(&x, src + so + i * is, is);
                        y = dt == TRESTLE_DT_BFLOAT16 ? trestle__k_f32_to_bf16(x)
                            : dt == TRESTLE_DT_HALF   ? trestle__k_f32_to_f16(x)
                            : st == TRESTLE_DT_HALF   ? trestle__k_f16_to_f32(x)
                                                      : trestle__k_bf16_to_f32(x);
                        memcpy(want + doff + i * os, &y, os); /* little-endian */
                    }
                    trestle__convert(dst + doff, dt, src + so, st, count);
                    cr_assert_eq(memcmp(dst, want, sizeof dst), 0,
                                 "pair %d->%d, count %zu, offsets %zu/%zu", st, dt, count, so,
                                 doff);
                }
            }
        }
    }
}

Test(convert, supports_exactly_the_four_float_pairs)
{
    for (int d = -1; d <= TRESTLE_DT_COUNT_ + 1; d++) {
        for (int s = -1; s <= TRESTLE_DT_COUNT_ + 1; s++) {
            int want = (s == TRESTLE_DT_FLOAT && d == TRESTLE_DT_BFLOAT16) ||
                       (s == TRESTLE_DT_FLOAT && d == TRESTLE_DT_HALF) ||
                       (s == TRESTLE_DT_HALF && d == TRESTLE_DT_FLOAT) ||
                       (s == TRESTLE_DT_BFLOAT16 && d == TRESTLE_DT_FLOAT);
            cr_assert_eq(trestle__convert_supported(d, s), want, "%d -> %d", s, d);
        }
    }
}

Test(convert, leaves_the_destination_alone_for_an_unsupported_pair)
{
    uint8_t src[64], dst[64], want[64];
    tu_fill_random(src, sizeof src, 9);
    memset(dst, 0x5A, sizeof dst);
    memcpy(want, dst, sizeof dst);
    trestle__convert(dst, TRESTLE_DT_DOUBLE, src, TRESTLE_DT_FLOAT, 8);
    trestle__convert(dst, TRESTLE_DT_HALF, src, TRESTLE_DT_BFLOAT16, 16);
    trestle__convert(dst, TRESTLE_DT_FLOAT, src, TRESTLE_DT_FLOAT, 16);
    cr_assert_eq(memcmp(dst, want, sizeof dst), 0);
}

/* ---- region layout (engine/restore/copy_host.c) ---- */

Test(region_layout, runs_cover_the_cut_in_increasing_source_order)
{
    static const size_t sizes[] = { 1, 2, 4, 8, 16 };
    uint64_t rng = 0x243F6A8885A308D3ull;
    for (int rank = 1; rank <= 5; rank++) {
        for (int iter = 0; iter < 200; iter++) {
            int64_t dims[5];
            trestle__region r;
            tu_random_region(&rng, rank, 6, dims, &r);
            r.elem_size = sizes[tu_rng_next(&rng) % 5];
            trestle__k_layout l;
            cr_assert(trestle__region_layout(&r, &l));
            uint64_t cut = (uint64_t)trestle__slice_num_elements(&r.cut, dims) * r.elem_size;
            cr_assert_eq(l.nruns * l.run, cut, "rank %d iter %d", rank, iter);
            cr_assert_eq(l.total_s,
                         (uint64_t)trestle__slice_num_elements(&r.src, dims) * r.elem_size);
            cr_assert(l.k >= 0 && l.k <= rank);
            /* Runs do not overlap and go up in the source and the destination. */
            uint64_t idx[5] = { 0 }, prev_s = 0, prev_d = 0;
            for (uint64_t i = 0; i < l.nruns; i++) {
                uint64_t so = l.base_s, dof = l.base_d;
                for (int d = 0; d < l.k; d++) {
                    so += idx[d] * l.sstr[d];
                    dof += idx[d] * l.dstr[d];
                }
                if (i > 0) {
                    cr_assert_geq(so, prev_s + l.run);
                    cr_assert_geq(dof, prev_d + l.run);
                }
                cr_assert_leq(so + l.run, l.total_s);
                prev_s = so;
                prev_d = dof;
                for (int d = l.k - 1; d >= 0 && ++idx[d] == l.cnt[d]; d--)
                    idx[d] = 0;
            }
        }
    }
}

Test(region_layout, empty_cut_has_no_layout)
{
    int64_t dims[2] = { 4, 4 };
    trestle__region r = { .src = { 2, { 0, 0 }, { 4, 4 } },
                          .dst = { 2, { 0, 0 }, { 4, 4 } },
                          .cut = { 2, { 0, 1 }, { 4, 0 } },
                          .dims = dims,
                          .elem_size = 4 };
    trestle__k_layout l;
    cr_assert_not(trestle__region_layout(&r, &l));
    uint8_t src[64] = { 1 }, dst[64] = { 0 };
    cr_assert_eq(trestle__region_copy_range(dst, &r, src, 0, sizeof src), 0);
}

/* The range-restricted copy, fed one random window after another (as the
 * pipeline's chunks feed it), builds exactly what trestle__slice_copy
 * builds in one go, and touches nothing else. */
Test(region_layout, range_copies_agree_with_the_whole_slice_copy)
{
    static const size_t sizes[] = { 1, 2, 4, 8, 16 };
    uint64_t rng = 0x13198A2E03707344ull;
    for (int rank = 1; rank <= 5; rank++) {
        for (int iter = 0; iter < 120; iter++) {
            int64_t dims[5];
            trestle__region r;
            tu_random_region(&rng, rank, 6, dims, &r);
            r.elem_size = sizes[tu_rng_next(&rng) % 5];
            size_t sn = (size_t)trestle__slice_num_elements(&r.src, dims) * r.elem_size;
            size_t dn = (size_t)trestle__slice_num_elements(&r.dst, dims) * r.elem_size;
            uint64_t cut = (uint64_t)trestle__slice_num_elements(&r.cut, dims) * r.elem_size;
            uint8_t *src = malloc(sn), *want = malloc(dn), *got = malloc(dn);
            cr_assert(src && want && got);
            tu_fill_random(src, sn, tu_rng_next(&rng));
            tu_fill_random(want, dn, tu_rng_next(&rng));
            memcpy(got, want, dn);
            trestle__slice_copy(want, &r.dst, src, &r.src, &r.cut, dims, r.elem_size);

            uint64_t total = 0;
            for (uint64_t lo = 0; lo < sn;) {
                uint64_t n = 1 + tu_rng_next(&rng) % (sn / 3 + 1);
                if (n > sn - lo)
                    n = sn - lo;
                uint64_t copied = trestle__region_copy_range(got, &r, src + lo, lo, n);
                /* The CUDA copier counts what the async kernel will write this way. */
                trestle__k_layout l;
                cr_assert(trestle__region_layout(&r, &l));
                cr_assert_eq(trestle__region_count_range(&l, lo, n), copied,
                             "rank %d iter %d window [%llu, +%llu)", rank, iter,
                             (unsigned long long)lo, (unsigned long long)n);
                total += copied;
                lo += n;
            }
            cr_assert_eq(total, cut, "rank %d iter %d", rank, iter);
            cr_assert_eq(memcmp(got, want, dn), 0, "rank %d iter %d elem %zu", rank, iter,
                         r.elem_size);
            free(src);
            free(want);
            free(got);
        }
    }
}
