/*
 * test_slice.c - shape_and_slices parsing with TF's exact messages, slice
 * arithmetic, the strided copy against a per-element reference, and the
 * ordered-code slice keys against TF's byte vectors.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "slice.h"
#include "testutil.h"

/* ---- helpers ---- */

static void expect_spec_error(const char *spec, int code, const char *message)
{
    trestle__spec sp;
    trestle_error err;
    trestle_error_clear(&err);
    int rc = trestle__spec_parse(spec, &sp, &err);
    cr_assert_eq(rc, code, "spec '%s': rc %d, want %d (%s)", spec, rc, code, err.message);
    cr_assert_eq(err.code, code);
    cr_assert_str_eq(err.message, message, "spec '%s'", spec);
}

static void expect_spec_ok(const char *spec, trestle__spec *sp)
{
    trestle_error err;
    trestle_error_clear(&err);
    int rc = trestle__spec_parse(spec, sp, &err);
    cr_assert_eq(rc, TRESTLE_OK, "spec '%s': %s", spec, err.message);
}

static void expect_bytes(const uint8_t *got, size_t got_n, const char *hex)
{
    uint8_t want[256];
    size_t n = 0;
    for (const char *p = hex; *p;) {
        unsigned v;
        int used;
        if (*p == ' ' || *p == '|') {
            p++;
            continue;
        }
        cr_assert_eq(sscanf(p, "%2x%n", &v, &used), 1);
        want[n++] = (uint8_t)v;
        p += used;
    }
    cr_assert_eq(got_n, n, "length %zu, want %zu (%s)", got_n, n, hex);
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(got[i], want[i], "byte %zu: %02x, want %02x (%s)", i, got[i], want[i], hex);
}

static void expect_signed(int64_t v, const char *hex)
{
    uint8_t out[10];
    expect_bytes(out, trestle__ordered_signed_num_increasing(v, out), hex);
}

static void expect_unsigned(uint64_t v, const char *hex)
{
    uint8_t out[10];
    expect_bytes(out, trestle__ordered_num_increasing(v, out), hex);
}

static void expect_key(const char *name, size_t name_len, const char *slice, int rank,
                       const char *hex)
{
    trestle__slice s;
    trestle_error err;
    uint8_t key[256];
    cr_assert_eq(trestle__slice_parse(slice, rank, &s, &err), TRESTLE_OK, "%s", err.message);
    size_t need = trestle__slice_key(name, name_len, &s, NULL, 0);
    size_t n = trestle__slice_key(name, name_len, &s, key, sizeof key);
    cr_assert_eq(need, n);
    expect_bytes(key, n, hex);
}

static void make_slice(trestle__slice *s, int rank, const int64_t *start, const int64_t *length)
{
    memset(s, 0, sizeof *s);
    s->rank = rank;
    memcpy(s->start, start, (size_t)rank * sizeof *start);
    memcpy(s->length, length, (size_t)rank * sizeof *length);
}

/* ---- shape_and_slices: errors, with TF's exact texts ---- */

Test(slice, rejects_spec_with_a_single_token)
{
    expect_spec_error("4", TRESTLE_E_BAD_SPEC,
                      "Need least two elements in shape_and_slice specification: 4");
    expect_spec_error("0,2:-", TRESTLE_E_BAD_SPEC,
                      "Need least two elements in shape_and_slice specification: 0,2:-");
}

Test(slice, rejects_double_space_in_spec)
{
    expect_spec_error("4  0,2", TRESTLE_E_BAD_SPEC,
                      "Non numerical dimension in shape_and_slice: 4  0,2");
    expect_spec_error(" 4 0,2", TRESTLE_E_BAD_SPEC,
                      "Non numerical dimension in shape_and_slice:  4 0,2");
}

Test(slice, rejects_non_numerical_and_overflowing_dims)
{
    expect_spec_error("4 x 0,2:-", TRESTLE_E_BAD_SPEC,
                      "Non numerical dimension in shape_and_slice: 4 x 0,2:-");
    expect_spec_error("4x 0,2", TRESTLE_E_BAD_SPEC,
                      "Non numerical dimension in shape_and_slice: 4x 0,2");
    expect_spec_error("9223372036854775808 0,1", TRESTLE_E_BAD_SPEC,
                      "Non numerical dimension in shape_and_slice: 9223372036854775808 0,1");
    expect_spec_error("- 0,1", TRESTLE_E_BAD_SPEC,
                      "Non numerical dimension in shape_and_slice: - 0,1");
}

Test(slice, rejects_negative_dims_and_too_many_elements)
{
    expect_spec_error("-4 -", TRESTLE_E_BAD_SPEC,
                      "Negative dimension in shape_and_slice: -4 -");
    expect_spec_error("4294967296 4294967296 -:-", TRESTLE_E_BAD_SPEC,
                      "Shape in shape_and_slice has more than 2^63-1 elements: "
                      "4294967296 4294967296 -:-");
}

Test(slice, rejects_extent_that_is_not_a_pair)
{
    expect_spec_error("4 6 0,2:abc", TRESTLE_E_BAD_SPEC,
                      "Expected a pair of numbers or '-' but got 'abc': string = 0,2:abc");
    expect_spec_error("4 6 1,2,3:-", TRESTLE_E_BAD_SPEC,
                      "Expected a pair of numbers or '-' but got '1,2,3': string = 1,2,3:-");
    expect_spec_error("4 0,", TRESTLE_E_BAD_SPEC,
                      "Expected a pair of numbers or '-' but got '0,': string = 0,");
    expect_spec_error("4 --", TRESTLE_E_BAD_SPEC,
                      "Expected a pair of numbers or '-' but got '--': string = --");
    expect_spec_error("4 0,99999999999999999999", TRESTLE_E_BAD_SPEC,
                      "Expected a pair of numbers or '-' but got '0,99999999999999999999': "
                      "string = 0,99999999999999999999");
}

Test(slice, checks_the_slice_before_the_dims_as_tf_does)
{
    expect_spec_error("x 0,2:abc", TRESTLE_E_BAD_SPEC,
                      "Expected a pair of numbers or '-' but got 'abc': string = 0,2:abc");
}

Test(slice, rejects_negative_start_and_non_positive_length)
{
    expect_spec_error("4 6 -1,2:-", TRESTLE_E_BAD_SPEC,
                      "Expected non-negative start and positive length but got start = -1, "
                      "length = 2: string = -1,2:-");
    expect_spec_error("4 6 0,0:-", TRESTLE_E_BAD_SPEC,
                      "Expected non-negative start and positive length but got start = 0, "
                      "length = 0: string = 0,0:-");
    expect_spec_error("4 6 -:1,-3", TRESTLE_E_BAD_SPEC,
                      "Expected non-negative start and positive length but got start = 1, "
                      "length = -3: string = -:1,-3");
}

Test(slice, rejects_mismatching_ranks)
{
    expect_spec_error("4 6 0,2", TRESTLE_E_BAD_SPEC,
                      "Mismatching ranks: shape = [4,6], slice = 0,2");
    expect_spec_error("4 6 -:-:-", TRESTLE_E_BAD_SPEC,
                      "Mismatching ranks: shape = [4,6], slice = -:-:-");
    expect_spec_error("4 ", TRESTLE_E_BAD_SPEC, "Mismatching ranks: shape = [4], slice = ");
}

Test(slice, rejects_extent_past_its_dim)
{
    expect_spec_error("4 6 0,7:-", TRESTLE_E_BAD_SPEC,
                      "Extent in dimension 0 out of bounds: shape = [4,6], slice = 0,7:-");
    expect_spec_error("4 6 -:0,7", TRESTLE_E_BAD_SPEC,
                      "Extent in dimension 1 out of bounds: shape = [4,6], slice = -:0,7");
    expect_spec_error("4 6 0,4:5,2", TRESTLE_E_BAD_SPEC,
                      "Extent in dimension 1 out of bounds: shape = [4,6], slice = 0,4:5,2");
}

Test(slice, rejects_extent_whose_end_overflows)
{
    expect_spec_error("4 6 9223372036854775807,1:-", TRESTLE_E_BAD_SPEC,
                      "Extent in dimension 0 out of bounds: shape = [4,6], "
                      "slice = 9223372036854775807,1:-");
}

Test(slice, rejects_rank_above_the_limit)
{
    char spec[512] = "", slice[256] = "";
    for (int d = 0; d < TRESTLE_MAX_SLICE_RANK + 1; d++) {
        strcat(spec, "1 ");
        strcat(slice, d ? ":-" : "-");
    }
    strcat(spec, slice);
    trestle__spec sp;
    trestle_error err;
    cr_assert_eq(trestle__spec_parse(spec, &sp, &err), TRESTLE_E_LIMIT);
    cr_assert_eq(err.code, TRESTLE_E_LIMIT);
    /* The limit is the slice's or the shape's, whichever is over it. */
    spec[strlen(spec) - 2] = '\0';
    cr_assert_eq(trestle__spec_parse(spec, &sp, &err), TRESTLE_E_LIMIT);
}

Test(slice, slice_parse_checks_the_rank)
{
    trestle__slice s;
    trestle_error err;
    cr_assert_eq(trestle__slice_parse("0,2:-", 3, &s, &err), TRESTLE_E_BAD_SPEC);
    cr_assert_str_eq(err.message, "Mismatching ranks: expected 3 dimensions, slice = 0,2:-");
    cr_assert_eq(trestle__slice_parse("0,2:x", 2, &s, &err), TRESTLE_E_BAD_SPEC);
    cr_assert_str_eq(err.message,
                     "Expected a pair of numbers or '-' but got 'x': string = 0,2:x");
    cr_assert_eq(trestle__slice_parse("", 0, &s, &err), TRESTLE_OK);
    cr_assert_eq(s.rank, 0);
}

/* ---- shape_and_slices: valid specs ---- */

Test(slice, empty_or_null_spec_means_the_whole_tensor)
{
    trestle__spec sp;
    expect_spec_ok("", &sp);
    cr_assert(sp.whole);
    expect_spec_ok(NULL, &sp);
    cr_assert(sp.whole);
}

Test(slice, parses_valid_specs_of_rank_1_to_5)
{
    static const struct {
        const char *spec;
        int rank;
        int64_t shape[5], start[5], length[5];
    } cases[] = {
        { "10 3,5", 1, { 10 }, { 3 }, { 5 } },
        { "4 6 0,2:-", 2, { 4, 6 }, { 0, 0 }, { 2, -1 } },
        { "2 3 4 -:1,2:0,4", 3, { 2, 3, 4 }, { 0, 1, 0 }, { -1, 2, 4 } },
        { "5 5 5 5 -:-:-:-", 4, { 5, 5, 5, 5 }, { 0 }, { -1, -1, -1, -1 } },
        { "2 3 4 5 6 1,1:0,3:-:2,3:5,1", 5, { 2, 3, 4, 5, 6 }, { 1, 0, 0, 2, 5 },
          { 1, 3, -1, 3, 1 } },
        { "0 -", 1, { 0 }, { 0 }, { -1 } },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        trestle__spec sp;
        expect_spec_ok(cases[i].spec, &sp);
        cr_assert(!sp.whole);
        cr_assert_eq(sp.rank, cases[i].rank, "%s", cases[i].spec);
        cr_assert_eq(sp.slice.rank, cases[i].rank);
        for (int d = 0; d < sp.rank; d++) {
            cr_assert_eq(sp.shape[d], cases[i].shape[d], "%s dim %d", cases[i].spec, d);
            cr_assert_eq(sp.slice.start[d], cases[i].start[d], "%s dim %d", cases[i].spec, d);
            cr_assert_eq(sp.slice.length[d], cases[i].length[d], "%s dim %d", cases[i].spec, d);
        }
    }
}

Test(slice, accepts_what_tf_tolerates)
{
    trestle__spec sp;
    /* Empty ':' and ',' pieces are skipped; numbers may carry whitespace. */
    expect_spec_ok("4 6 ::1,,2::-:", &sp);
    cr_assert_eq(sp.slice.start[0], 1);
    cr_assert_eq(sp.slice.length[0], 2);
    cr_assert_eq(sp.slice.length[1], -1);
    expect_spec_ok("\t4\t 6 0,\t2:-", &sp);
    cr_assert_eq(sp.shape[0], 4);
    cr_assert_eq(sp.slice.length[0], 2);
    expect_spec_ok("9223372036854775807 0,9223372036854775807", &sp);
    cr_assert_eq(sp.slice.length[0], INT64_MAX);
}

Test(slice, accepts_the_maximum_rank)
{
    char spec[512] = "", slice[256] = "";
    for (int d = 0; d < TRESTLE_MAX_SLICE_RANK; d++) {
        strcat(spec, "2 ");
        strcat(slice, d ? ":1,1" : "0,1");
    }
    strcat(spec, slice);
    trestle__spec sp;
    expect_spec_ok(spec, &sp);
    cr_assert_eq(sp.rank, TRESTLE_MAX_SLICE_RANK);
    cr_assert_eq(sp.slice.start[TRESTLE_MAX_SLICE_RANK - 1], 1);
}

/* ---- format ---- */

Test(slice, formats_like_tf_debug_string)
{
    char buf[64];
    trestle__slice s;
    make_slice(&s, 3, (int64_t[]){ 0, 0, 100 }, (int64_t[]){ 2, -1, 200 });
    cr_assert_eq(trestle__slice_format(&s, buf, sizeof buf), strlen("0,2:-:100,200"));
    cr_assert_str_eq(buf, "0,2:-:100,200");
    s.rank = 0;
    cr_assert_eq(trestle__slice_format(&s, buf, sizeof buf), 0);
    cr_assert_str_eq(buf, "");
}

Test(slice, format_truncates_with_snprintf_contract)
{
    char buf[5];
    trestle__slice s;
    make_slice(&s, 2, (int64_t[]){ 10, 0 }, (int64_t[]){ 20, -1 });
    cr_assert_eq(trestle__slice_format(&s, NULL, 0), 7);
    cr_assert_eq(trestle__slice_format(&s, buf, sizeof buf), 7);
    cr_assert_str_eq(buf, "10,2");
}

Test(slice, format_round_trips_through_parse)
{
    static const char *slices[] = { "0,2:-", "-", "-:-:1,3:4,5", "100,200:-", "5,5:0,4",
                                    "9223372036854775806,1" };
    static const int ranks[] = { 2, 1, 4, 2, 2, 1 };
    for (size_t i = 0; i < sizeof slices / sizeof slices[0]; i++) {
        trestle__slice s, again;
        trestle_error err;
        char buf[128];
        cr_assert_eq(trestle__slice_parse(slices[i], ranks[i], &s, &err), TRESTLE_OK);
        trestle__slice_format(&s, buf, sizeof buf);
        cr_assert_str_eq(buf, slices[i]);
        cr_assert_eq(trestle__slice_parse(buf, ranks[i], &again, &err), TRESTLE_OK);
        cr_assert_eq(memcmp(&s, &again, sizeof s), 0);
    }
    /* A tolerated spelling comes back in TF's canonical form. */
    trestle__spec sp;
    char buf[64];
    expect_spec_ok("4 6 :1,,2::-", &sp);
    trestle__slice_format(&sp.slice, buf, sizeof buf);
    cr_assert_str_eq(buf, "1,2:-");
}

/* ---- arithmetic ---- */

Test(slice, full_covers_all_and_resolves_to_the_shape)
{
    const int64_t dims[3] = { 4, 5, 6 };
    trestle__slice s;
    int64_t start[3], length[3];
    trestle__slice_full(&s, 3);
    cr_assert(trestle__slice_covers_all(&s, dims));
    trestle__slice_resolve(&s, dims, start, length);
    for (int d = 0; d < 3; d++) {
        cr_assert_eq(start[d], 0);
        cr_assert_eq(length[d], dims[d]);
    }
    cr_assert_eq(trestle__slice_num_elements(&s, dims), 120);
    s.length[1] = 5; /* explicit 0,5 still covers the dim */
    cr_assert(trestle__slice_covers_all(&s, dims));
    s.start[2] = 1;
    s.length[2] = 5;
    cr_assert(!trestle__slice_covers_all(&s, dims));
    cr_assert_eq(trestle__slice_num_elements(&s, dims), 100);
}

Test(slice, equal_compares_resolved_extents)
{
    const int64_t dims[2] = { 10, 4 };
    trestle__slice a, b;
    make_slice(&a, 2, (int64_t[]){ 5, 0 }, (int64_t[]){ 5, -1 });
    make_slice(&b, 2, (int64_t[]){ 5, 0 }, (int64_t[]){ 5, 4 });
    cr_assert(trestle__slice_equal(&a, &b, dims));
    b.length[0] = 4;
    cr_assert(!trestle__slice_equal(&a, &b, dims));
    b.rank = 1;
    cr_assert(!trestle__slice_equal(&a, &b, dims));
}

Test(slice, intersects_partial_and_full_extents)
{
    const int64_t dims[2] = { 10, 4 };
    trestle__slice a, b, out;
    make_slice(&a, 2, (int64_t[]){ 0, 0 }, (int64_t[]){ 5, -1 });
    make_slice(&b, 2, (int64_t[]){ 3, 1 }, (int64_t[]){ 4, 2 });
    cr_assert(trestle__slice_intersect(&a, &b, dims, &out));
    cr_assert_eq(out.rank, 2);
    cr_assert_eq(out.start[0], 3);
    cr_assert_eq(out.length[0], 2);
    cr_assert_eq(out.start[1], 1);
    cr_assert_eq(out.length[1], 2);
    cr_assert_eq(trestle__slice_num_elements(&out, dims), 4);

    /* Two full slices intersect as the concrete whole. */
    trestle__slice_full(&a, 2);
    trestle__slice_full(&b, 2);
    cr_assert(trestle__slice_intersect(&a, &b, dims, &out));
    cr_assert_eq(out.length[0], 10);
    cr_assert_eq(out.length[1], 4);

    /* out may alias an input. */
    make_slice(&b, 2, (int64_t[]){ 7, 0 }, (int64_t[]){ 3, -1 });
    cr_assert(trestle__slice_intersect(&a, &b, dims, &a));
    cr_assert_eq(a.start[0], 7);
    cr_assert_eq(a.length[0], 3);
    cr_assert_eq(a.start[1], 0);
    cr_assert_eq(a.length[1], 4);
}

Test(slice, empty_intersections_are_false)
{
    const int64_t dims[2] = { 10, 4 };
    trestle__slice a, b, out;
    make_slice(&a, 2, (int64_t[]){ 0, 0 }, (int64_t[]){ 5, -1 });
    make_slice(&b, 2, (int64_t[]){ 5, 0 }, (int64_t[]){ 5, -1 });
    cr_assert(!trestle__slice_intersect(&a, &b, dims, &out)); /* touching rows */
    make_slice(&b, 2, (int64_t[]){ 0, 2 }, (int64_t[]){ 5, 2 });
    make_slice(&a, 2, (int64_t[]){ 0, 0 }, (int64_t[]){ -1, 2 });
    cr_assert(!trestle__slice_intersect(&a, &b, dims, &out)); /* disjoint in dim 1 only */
    make_slice(&a, 2, (int64_t[]){ 2, 0 }, (int64_t[]){ 0, -1 });
    cr_assert(!trestle__slice_intersect(&a, &b, dims, &out)); /* a stored empty extent */
    trestle__slice_full(&a, 2);
    trestle__slice_full(&b, 1);
    cr_assert(!trestle__slice_intersect(&a, &b, dims, &out)); /* ranks differ */
}

/* ---- strided copy ---- */

/* One element at a time: the oracle for trestle__slice_copy. */
static void naive_copy(uint8_t *dst, const trestle__slice *dsl, const uint8_t *src,
                       const trestle__slice *ssl, const trestle__slice *region,
                       const int64_t *dims, size_t es)
{
    int rank = region->rank;
    int64_t ds[8], dl[8], ss[8], sl[8], rs[8], rl[8], idx[8] = { 0 };
    trestle__slice_resolve(dsl, dims, ds, dl);
    trestle__slice_resolve(ssl, dims, ss, sl);
    trestle__slice_resolve(region, dims, rs, rl);
    int64_t total = trestle__slice_num_elements(region, dims);
    for (int64_t n = 0; n < total; n++) {
        int64_t so = 0, dof = 0;
        for (int d = 0; d < rank; d++) {
            so = so * sl[d] + (rs[d] + idx[d] - ss[d]);
            dof = dof * dl[d] + (rs[d] + idx[d] - ds[d]);
        }
        memcpy(dst + (size_t)dof * es, src + (size_t)so * es, es);
        for (int d = rank - 1; d >= 0 && ++idx[d] == rl[d]; d--)
            idx[d] = 0;
    }
}

/* A random extent of dim n: full (-1), explicit whole, or a proper part. */
static void random_extent(uint64_t *rng, int64_t n, int64_t *start, int64_t *length)
{
    switch (tu_rng_next(rng) % 4) {
    case 0:
        *start = 0;
        *length = -1;
        return;
    case 1:
        *start = 0;
        *length = n;
        return;
    default:
        *start = (int64_t)(tu_rng_next(rng) % (uint64_t)n);
        *length = 1 + (int64_t)(tu_rng_next(rng) % (uint64_t)(n - *start));
    }
}

/*
 * Copy `region` between random blocks with both implementations and compare
 * the whole destination, so stray writes outside the region show up too.
 */
static void check_copy(const trestle__slice *dsl, const trestle__slice *ssl,
                       const trestle__slice *region, const int64_t *dims, size_t es,
                       uint64_t seed)
{
    size_t sn = (size_t)trestle__slice_num_elements(ssl, dims) * es;
    size_t dn = (size_t)trestle__slice_num_elements(dsl, dims) * es;
    uint8_t *src = malloc(sn), *want = malloc(dn), *got = malloc(dn);
    cr_assert(src && want && got);
    tu_fill_random(src, sn, seed);
    tu_fill_random(want, dn, seed + 1000003);
    memcpy(got, want, dn);
    naive_copy(want, dsl, src, ssl, region, dims, es);
    trestle__slice_copy(got, dsl, src, ssl, region, dims, es);
    cr_assert_eq(memcmp(got, want, dn), 0, "rank %d elem %zu seed %llu", region->rank, es,
                 (unsigned long long)seed);
    free(src);
    free(want);
    free(got);
}

Test(slice, copy_matches_reference_on_random_slices)
{
    static const size_t sizes[] = { 1, 2, 4, 8, 16 };
    uint64_t rng = 0x2545f4914f6cdd1dull;
    for (int rank = 1; rank <= 5; rank++) {
        for (size_t e = 0; e < sizeof sizes / sizeof sizes[0]; e++) {
            for (int iter = 0; iter < 150; iter++) {
                int64_t dims[5];
                trestle__slice ssl, dsl, cut, region;
                for (int d = 0; d < rank; d++)
                    dims[d] = 1 + (int64_t)(tu_rng_next(&rng) % 7);
                ssl.rank = dsl.rank = region.rank = rank;
                for (int d = 0; d < rank; d++) {
                    random_extent(&rng, dims[d], &ssl.start[d], &ssl.length[d]);
                    random_extent(&rng, dims[d], &dsl.start[d], &dsl.length[d]);
                }
                if (!trestle__slice_intersect(&ssl, &dsl, dims, &cut))
                    continue;
                /* Half the time copy only a random box inside the intersection. */
                bool sub = tu_rng_next(&rng) & 1;
                for (int d = 0; d < rank; d++) {
                    region.start[d] = cut.start[d];
                    region.length[d] = cut.length[d];
                    if (sub) {
                        int64_t off = (int64_t)(tu_rng_next(&rng) % (uint64_t)cut.length[d]);
                        region.start[d] += off;
                        region.length[d] =
                            1 + (int64_t)(tu_rng_next(&rng) % (uint64_t)(cut.length[d] - off));
                    }
                }
                check_copy(&dsl, &ssl, &region, dims, sizes[e], rng);
            }
        }
    }
}

Test(slice, copy_cuts_along_each_single_dimension)
{
    static const size_t sizes[] = { 1, 2, 4, 8, 16 };
    const int64_t dims[5] = { 3, 4, 5, 6, 7 };
    for (int rank = 1; rank <= 5; rank++) {
        for (int cut = 0; cut < rank; cut++) {
            for (size_t e = 0; e < sizeof sizes / sizeof sizes[0]; e++) {
                trestle__slice full, part;
                trestle__slice_full(&full, rank);
                part = full;
                part.start[cut] = 1;
                part.length[cut] = dims[cut] - 2;
                /* Cut a part out of the whole, and place a part into the whole. */
                check_copy(&part, &full, &part, dims, sizes[e], (uint64_t)(rank * 100 + cut));
                check_copy(&full, &part, &part, dims, sizes[e], (uint64_t)(rank * 100 + cut + 50));
            }
        }
    }
}

Test(slice, copy_assembles_a_tensor_from_row_parts)
{
    const int64_t dims[2] = { 10, 4 };
    float parts[2][5 * 4], whole[10 * 4];
    trestle__slice full, p0, p1;
    tu_fill_random(parts, sizeof parts, 7);
    trestle__slice_full(&full, 2);
    make_slice(&p0, 2, (int64_t[]){ 0, 0 }, (int64_t[]){ 5, 4 });
    make_slice(&p1, 2, (int64_t[]){ 5, 0 }, (int64_t[]){ 5, 4 });
    trestle__slice_copy(whole, &full, parts[0], &p0, &p0, dims, sizeof(float));
    trestle__slice_copy(whole, &full, parts[1], &p1, &p1, dims, sizeof(float));
    cr_assert_eq(memcmp(whole, parts, sizeof whole), 0);
}

Test(slice, copy_handles_rank_0)
{
    uint8_t src[16], dst[16], want[16];
    trestle__slice s;
    trestle__slice_full(&s, 0);
    tu_fill_random(src, sizeof src, 3);
    tu_fill_random(dst, sizeof dst, 4);
    memcpy(want, src, 8);
    memcpy(want + 8, dst + 8, 8);
    trestle__slice_copy(dst, &s, src, &s, &s, NULL, 8);
    cr_assert_eq(memcmp(dst, want, sizeof dst), 0);
}

Test(slice, copy_of_an_empty_region_writes_nothing)
{
    const int64_t dims[2] = { 0, 4 };
    uint8_t dst[4] = { 1, 2, 3, 4 };
    trestle__slice s;
    trestle__slice_full(&s, 2);
    trestle__slice_copy(dst, &s, NULL, &s, &s, dims, 1);
    cr_assert_eq(dst[0], 1);
    cr_assert_eq(dst[3], 4);
}

/* ---- ordered code ---- */

Test(slice, encodes_num_increasing_like_tf)
{
    expect_unsigned(0, "00");
    expect_unsigned(1, "01 01");
    expect_unsigned(255, "01 ff");
    expect_unsigned(256, "02 01 00");
    expect_unsigned(0xffff, "02 ff ff");
    expect_unsigned(0x10000, "03 01 00 00");
    expect_unsigned((1ull << 63) + 1, "08 80 00 00 00 00 00 00 01");
    expect_unsigned(UINT64_MAX, "08 ff ff ff ff ff ff ff ff");
}

Test(slice, encodes_signed_num_increasing_like_tf)
{
    expect_signed(0, "80");
    expect_signed(1, "81");
    expect_signed(63, "bf");
    expect_signed(64, "c0 40");
    expect_signed(255, "c0 ff");
    expect_signed(256, "c1 00");
    expect_signed(8191, "df ff");
    expect_signed(8192, "e0 20 00");
    expect_signed(1 << 20, "f0 10 00 00");
    expect_signed(36028797018963967ll, "ff 7f ff ff ff ff ff ff");
    expect_signed(36028797018963968ll, "ff 80 80 00 00 00 00 00 00");
    expect_signed(4611686018427387903ll, "ff bf ff ff ff ff ff ff ff");
    expect_signed(1ll << 62, "ff c0 40 00 00 00 00 00 00 00");
    expect_signed(INT64_MAX, "ff c0 7f ff ff ff ff ff ff ff");
    expect_signed(-1, "7f");
    expect_signed(-2, "7e");
    expect_signed(-64, "40");
    expect_signed(-65, "3f bf");
    expect_signed(-256, "3f 00");
    expect_signed(-8192, "20 00");
    expect_signed(-8193, "1f df ff");
    expect_signed(-36028797018963969ll, "00 7f 7f ff ff ff ff ff ff");
    expect_signed(-4611686018427387905ll, "00 3f bf ff ff ff ff ff ff ff");
    expect_signed(-INT64_MAX, "00 3f 80 00 00 00 00 00 00 01");
    expect_signed(INT64_MIN, "00 3f 80 00 00 00 00 00 00 00");
}

Test(slice, signed_encoding_sorts_like_the_numbers)
{
    static const int64_t v[] = { INT64_MIN, -4611686018427387905ll, -8193, -65, -64, -1, 0,
                                 63, 64, 8191, 8192, 1ll << 62, INT64_MAX };
    for (size_t i = 0; i + 1 < sizeof v / sizeof v[0]; i++) {
        uint8_t a[10], b[10];
        size_t an = trestle__ordered_signed_num_increasing(v[i], a);
        size_t bn = trestle__ordered_signed_num_increasing(v[i + 1], b);
        int c = memcmp(a, b, an < bn ? an : bn);
        cr_assert(c < 0 || (c == 0 && an < bn), "%lld vs %lld", (long long)v[i],
                  (long long)v[i + 1]);
    }
}

Test(slice, escapes_names_in_keys)
{
    /* A rank-0 key is 00 ‖ String(name) ‖ NumIncreasing(0). */
    expect_key("", 0, "", 0, "00 | 00 01 | 00");
    expect_key("foo", 3, "", 0, "00 | 66 6f 6f 00 01 | 00");
    expect_key("\x00\x01\xff", 3, "", 0, "00 | 00 ff 01 ff 00 00 01 | 00");
}

Test(slice, reproduces_the_worked_key_examples)
{
    expect_key("foo", 3, "0,2:-", 2, "00 | 66 6f 6f 00 01 | 01 02 | 80 82 | 80 7f");
    expect_key("foo", 3, "-:-:1,3:4,5", 4,
               "00 | 66 6f 6f 00 01 | 01 04 | 80 7f | 80 7f | 81 83 | 84 85");
    expect_key("layer/kernel", 12, "100,200:-", 2,
               "00 | 6c 61 79 65 72 2f 6b 65 72 6e 65 6c 00 01 | 01 02 | c0 64 | c0 c8 | 80 7f");
    expect_key("emb", 3, "5,5:0,4", 2, "00 | 65 6d 62 00 01 | 01 02 | 85 | 85 | 80 | 84");
}

Test(slice, key_never_writes_past_cap)
{
    trestle__slice s;
    trestle_error err;
    uint8_t buf[32];
    cr_assert_eq(trestle__slice_parse("100,200:-", 2, &s, &err), TRESTLE_OK);
    size_t need = trestle__slice_key("layer/kernel", 12, &s, NULL, 0);
    cr_assert_eq(need, 23);
    for (size_t cap = 0; cap < need; cap++) {
        memset(buf, 0xaa, sizeof buf);
        cr_assert_eq(trestle__slice_key("layer/kernel", 12, &s, buf, cap), need);
        for (size_t i = cap; i < sizeof buf; i++)
            cr_assert_eq(buf[i], 0xaa, "cap %zu wrote byte %zu", cap, i);
    }
}
