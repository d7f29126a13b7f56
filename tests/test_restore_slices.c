/*
 * test_restore_slices.c - sliced restores end to end: `shape_and_slices`
 * along every dimension of 1-D to 5-D tensors and partitioned variables
 * with odd partitions, each compared with a reference slice computed here
 * element by element. Both readers.
 */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "trestle.h"

/* "d0 d1 ... s0,l0:s1,l1:..." with '-' where the slice is the whole dim. */
static void make_spec(char *buf, size_t cap, int rank, const int64_t *dims, const int64_t *start,
                      const int64_t *len)
{
    size_t n = 0;
    for (int d = 0; d < rank; d++)
        n += (size_t)snprintf(buf + n, cap - n, "%lld ", (long long)dims[d]);
    for (int d = 0; d < rank; d++) {
        if (start[d] == 0 && len[d] == dims[d] && d % 2 == 1)
            n += (size_t)snprintf(buf + n, cap - n, "%s-", d ? ":" : "");
        else
            n += (size_t)snprintf(buf + n, cap - n, "%s%lld,%lld", d ? ":" : "",
                                  (long long)start[d], (long long)len[d]);
    }
}

typedef struct slice_case {
    int reader;
    int partitioned;
} slice_case;

ParameterizedTestParameters(slices, restore_any_slice_of_1d_to_5d_tensors)
{
    static slice_case cases[] = {
        { TRESTLE_READER_IO_URING, 0 }, { TRESTLE_READER_PREAD, 0 },
        { TRESTLE_READER_IO_URING, 1 }, { TRESTLE_READER_PREAD, 1 },
    };
    return cr_make_param_array(slice_case, cases, 4);
}

ParameterizedTest(slice_case *sc, slices, restore_any_slice_of_1d_to_5d_tensors)
{
    char *dir = tu_mkdtemp(), *prefix;
    cr_assert(asprintf(&prefix, "%s/s", dir) > 0);
    trestle_writer_options wo;
    trestle_writer_options_init(&wo);
    wo.num_shards = 3;
    trestle_writer *w;
    trestle_error err;
    cr_assert_eq(trestle_writer_create(prefix, &wo, &w, &err), TRESTLE_OK);

    static const int64_t shapes[5][5] = {
        { 1000 }, { 37, 130 }, { 9, 11, 70 }, { 5, 6, 7, 33 }, { 3, 4, 5, 6, 17 },
    };
    uint8_t *full[5];
    size_t es = 4;
    for (int r = 1; r <= 5; r++) {
        int64_t n = 1;
        for (int d = 0; d < r; d++)
            n *= shapes[r - 1][d];
        full[r - 1] = malloc((size_t)n * es);
        tu_fill_random(full[r - 1], (size_t)n * es, (uint64_t)r);
        char name[16];
        snprintf(name, sizeof name, "t%d", r);
        if (!sc->partitioned) {
            cr_assert_eq(trestle_writer_add(w, name, TRESTLE_DT_FLOAT, r, shapes[r - 1],
                                            full[r - 1], (size_t)n * es, r % 3, &err), TRESTLE_OK);
            continue;
        }
        /* Odd partitions along dim 0: sizes 1, 2, rest (as many as fit). */
        int64_t d0 = shapes[r - 1][0], at = 0, part = 1;
        size_t row = (size_t)(n / d0) * es;
        for (int k = 0; at < d0; k++) {
            int64_t len = part < d0 - at ? part : d0 - at;
            int64_t st[5] = { at, 0, 0, 0, 0 }, ln[5];
            for (int d = 0; d < r; d++)
                ln[d] = d ? shapes[r - 1][d] : len;
            char spec[256];
            make_spec(spec, sizeof spec, r, shapes[r - 1], st, ln);
            cr_assert_eq(trestle_writer_add_slice(w, name, TRESTLE_DT_FLOAT, spec,
                                                  full[r - 1] + (size_t)at * row, (size_t)len * row,
                                                  k % 3, &err), TRESTLE_OK, "%s: %s", spec,
                         err.message);
            at += len;
            part++;
        }
    }
    cr_assert_eq(trestle_writer_finish(w, &err), TRESTLE_OK, "%s", err.message);
    trestle_writer_free(w);

    trestle_checkpoint *c;
    c = tu_open(prefix, NULL);
    /* For each rank, a slice along each dimension plus one cut in every dimension. */
    for (int r = 1; r <= 5; r++) {
        const int64_t *dims = shapes[r - 1];
        for (int along = 0; along <= r; along++) {
            int64_t st[5], ln[5];
            for (int d = 0; d < r; d++) {
                bool cut = along == r || d == along;
                st[d] = cut ? dims[d] / 3 : 0;
                ln[d] = cut ? (dims[d] - dims[d] / 3 + 1) / 2 : dims[d];
                if (ln[d] < 1)
                    ln[d] = 1;
            }
            char spec[256], name[16];
            make_spec(spec, sizeof spec, r, dims, st, ln);
            snprintf(name, sizeof name, "t%d", r);
            int64_t n = 1;
            for (int d = 0; d < r; d++)
                n *= ln[d];
            uint8_t *want = malloc((size_t)n * es), *got = calloc(1, (size_t)n * es);
            tu_ref_slice(full[r - 1], dims, r, st, ln, es, want);
            trestle_op op = { .name = name, .shape_and_slices = spec, .dtype = TRESTLE_DT_FLOAT,
                              .dest_kind = TRESTLE_DEST_HOST, .ptr = got,
                              .capacity = (uint64_t)n * es };
            trestle_plan *p = tu_plan(c, &op, 1, NULL);
            trestle_restore_options o;
            trestle_restore_options_init(&o);
            o.reader = sc->reader;
            o.chunk_bytes = 4096; /* many chunks per stored slice */
            o.staging_bytes = 64 << 10;
            int rc = tu_restore(p, &o, NULL, &err);
            cr_assert_eq(rc, TRESTLE_OK, "%s: %s", spec, err.message);
            cr_assert_arr_eq(got, want, (size_t)n * es, "rank %d spec %s", r, spec);
            trestle_plan_op_info info;
            trestle_plan_get_op(p, 0, &info);
            cr_assert_eq(info.rank, r);
            for (int d = 0; d < r; d++)
                cr_assert_eq(info.dims[d], ln[d]);
            trestle_plan_free(p);
            free(want);
            free(got);
        }
        free(full[r - 1]);
    }
    trestle_close(c);
    free(prefix);
    tu_rmtree(dir);
    free(dir);
}
