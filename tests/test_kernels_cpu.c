/*
 * test_kernels_cpu.c - the real CUDA kernels (kernels/scatter.cu,
 * kernels/cast.cu), built by the host C++ compiler on a CUDA shim and run
 * on the CPU, every block and every thread in turn (tests/kernels_cpu.cc,
 * tests/kernel_shim/), against their CPU twins byte for byte:
 * trestle__k_scatter against trestle__region_copy_range, trestle__k_convert
 * against trestle__convert.
 *
 * test_kernels runs the same comparisons on a GPU and skips without one,
 * so on CI machines only this suite can catch a kernel whose arithmetic is
 * wrong: indexing, windows, vector widths and heads/tails, group sizes,
 * tiles, the 32/64-bit run index paths, and the launch configuration
 * (the shim refuses one no GPU would run). It cannot see what only a GPU
 * has: timing, coalescing, real concurrency between threads.
 *
 * Every buffer is allocated at exactly the size used, at every alignment,
 * so ASan (scripts/check.sh asan) catches a kernel touching a byte outside
 * its window or destination, and UBSan a vector access at an address that
 * would fault on the GPU.
 */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "copy.h"
#include "kernels_cpu.h"
#include "slice.h"
#include "testutil.h"
#include "trestle.h"
#include "trestle_kernels.h"

/* ---- scatter ---- */

/* Source and destination byte offsets of run i of layout l. */
static void run_offsets(const trestle__k_layout *l, uint64_t i, uint64_t *so, uint64_t *dof)
{
    *so = l->base_s;
    *dof = l->base_d;
    for (int d = l->k - 1; d >= 0; d--) {
        *so += (i % l->cnt[d]) * l->sstr[d];
        *dof += (i % l->cnt[d]) * l->dstr[d];
        i /= l->cnt[d];
    }
}

/* `n` bytes at `shift` past a 16-byte aligned address, in an allocation
 * that ends exactly at the last byte; *base receives what to free. */
static uint8_t *exact_alloc(size_t n, size_t shift, uint8_t **base)
{
    *base = malloc(shift + n ? shift + n : 1);
    cr_assert(*base);
    return *base + shift;
}

/*
 * Copy windows [lo, lo + n) of region r's source block with both twins
 * into destinations holding the same random bytes, and compare the whole
 * destination block after each. Window and destination each sit at a
 * random shift from 16-byte alignment, so every relative alignment of
 * source and destination, hence every vector width, occurs. Window 0 is
 * the whole block.
 */
static void check_scatter(const trestle__region *r, uint64_t *rng, int windows, const char *what)
{
    size_t sn = (size_t)trestle__slice_num_elements(&r->src, r->dims) * r->elem_size;
    size_t dn = (size_t)trestle__slice_num_elements(&r->dst, r->dims) * r->elem_size;
    trestle__k_layout l;
    cr_assert(trestle__region_layout(r, &l));
    uint8_t *src = malloc(sn), *want = malloc(dn);
    cr_assert(src && want);
    tu_fill_random(src, sn, tu_rng_next(rng));

    for (int w = 0; w < windows; w++) {
        uint64_t lo = 0, n = sn;
        if (w > 0) {
            lo = tu_rng_next(rng) % sn;
            n = 1 + tu_rng_next(rng) % (sn - lo);
        }
        size_t s_shift = (size_t)(tu_rng_next(rng) % 16), d_shift = (size_t)(tu_rng_next(rng) % 16);
        uint8_t *win_base, *got_base;
        uint8_t *win = exact_alloc((size_t)n, s_shift, &win_base);
        uint8_t *got = exact_alloc(dn, d_shift, &got_base);
        memcpy(win, src + lo, (size_t)n);
        tu_fill_random(want, dn, tu_rng_next(rng));
        memcpy(got, want, dn);

        uint64_t copied = trestle__region_copy_range(want, r, win, lo, n);
        cr_assert_eq(copied, trestle__region_count_range(&l, lo, n));
        cr_assert_eq(trestle__kcpu_scatter(got, win, &l, lo, n, NULL), TRESTLE__KCPU_SUCCESS,
                     "%s: the launch failed", what);
        cr_assert_eq(memcmp(got, want, dn), 0,
                     "%s: rank %d elem %zu, window [%llu, +%llu) of %zu, shifts %zu/%zu "
                     "(run %llu x %llu, k %d)",
                     what, r->cut.rank, r->elem_size, (unsigned long long)lo,
                     (unsigned long long)n, sn, s_shift, d_shift, (unsigned long long)l.run,
                     (unsigned long long)l.nruns, l.k);
        free(win_base);
        free(got_base);
    }
    free(src);
    free(want);
}

Test(kernels_cpu, scatter_matches_the_host_copy_on_random_regions)
{
    uint64_t rng = 0x452821E638D01377ull;
    /* Small dims for many shapes; larger ones for long runs, many runs and
     * runs of many tiles (a tile is at most 16 KiB). */
    static const int64_t maxdims[5][3] = {
        { 6, 5000, 100000 }, { 6, 100, 500 }, { 6, 25, 60 }, { 6, 12, 20 }, { 6, 8, 10 },
    };
    for (int rank = 1; rank <= 5; rank++) {
        for (int m = 0; m < 3; m++) {
            int iters = m == 0 ? 60 : 12;
            for (int iter = 0; iter < iters; iter++) {
                int64_t dims[5];
                trestle__region r;
                tu_random_region(&rng, rank, maxdims[rank - 1][m], dims, &r);
                r.elem_size = 1 + (size_t)(tu_rng_next(&rng) % 16); /* 1..16, odd ones too */
                check_scatter(&r, &rng, 6, "random");
            }
        }
    }
}

/*
 * Runs of one byte, the hardest case for the vector paths: a one-byte
 * column cut out of a whole stored tensor (a slice), and a stored column
 * placed into a whole destination (a partition), at ranks 2 to 5.
 */
Test(kernels_cpu, scatter_matches_the_host_copy_on_one_byte_runs)
{
    uint64_t rng = 0xC0AC29B7C97C50DDull;
    for (int rank = 2; rank <= 5; rank++) {
        for (int iter = 0; iter < 40; iter++) {
            int64_t dims[5];
            trestle__region r;
            memset(&r, 0, sizeof r);
            r.src.rank = r.dst.rank = r.cut.rank = rank;
            for (int d = 0; d < rank; d++) {
                dims[d] = 1 + (int64_t)(tu_rng_next(&rng) % (rank == 2 ? 3000 : 12));
                r.src.length[d] = r.dst.length[d] = r.cut.length[d] = dims[d];
            }
            dims[rank - 1] = 2 + (int64_t)(tu_rng_next(&rng) % 40);
            int64_t col = (int64_t)(tu_rng_next(&rng) % (uint64_t)dims[rank - 1]);
            trestle__slice *column = iter % 2 ? &r.src : &r.dst, *whole = iter % 2 ? &r.dst : &r.src;
            whole->length[rank - 1] = dims[rank - 1];
            column->start[rank - 1] = r.cut.start[rank - 1] = col;
            column->length[rank - 1] = r.cut.length[rank - 1] = 1;
            r.dims = dims;
            r.elem_size = 1;
            check_scatter(&r, &rng, 6, iter % 2 ? "one stored byte column" : "one byte column");
        }
    }
}

/*
 * Layouts of 2^32 runs and more, where the kernel leaves its 32-bit
 * division path: one-byte column cols0..cols of a [rows, cols, 2] uint8
 * tensor, cut out of the whole stored tensor. With cols0 == 0 and cols ==
 * 1 the runs merge into one dim; otherwise they keep two (two 64-bit
 * divisions per run). The window holds runs [run_lo, run_lo + runs). Only
 * the window's source bytes and the destination bytes its runs reach
 * exist: both twins get a destination pointer shifted so that those bytes
 * land in a small buffer. Counts and indices are what is checked; nothing
 * near 2^32 bytes is allocated.
 */
static void check_huge(int64_t rows, int64_t cols, int64_t cols0, uint64_t run_lo,
                       uint64_t runs, uint64_t *rng)
{
    int64_t dims[3] = { rows, cols, 2 };
    trestle__region r;
    memset(&r, 0, sizeof r);
    r.src = (trestle__slice){ 3, { 0, 0, 0 }, { rows, cols, 2 } };
    r.dst = r.cut = (trestle__slice){ 3, { 0, cols0, 0 }, { rows, cols - cols0, 1 } };
    r.dims = dims;
    r.elem_size = 1;
    trestle__k_layout l;
    cr_assert(trestle__region_layout(&r, &l));
    cr_assert_eq(l.nruns, (uint64_t)rows * (uint64_t)(cols - cols0));
    cr_assert_eq(l.run, 1);

    /* The window: the first byte of run run_lo through the last of the last run. */
    uint64_t so, dof, so_end, dof_end;
    run_offsets(&l, run_lo, &so, &dof);
    run_offsets(&l, run_lo + runs - 1, &so_end, &dof_end);
    uint64_t lo = so, n = so_end + 1 - so;
    uint64_t dn = dof_end + 1 - dof;
    uint8_t *win = malloc(n), *want = malloc(dn), *got = malloc(dn);
    cr_assert(win && want && got);
    tu_fill_random(win, n, tu_rng_next(rng));
    tu_fill_random(want, dn, tu_rng_next(rng));
    memcpy(got, want, dn);

    /* Pointer arithmetic on integers: the shifted bases point nowhere,
     * but every byte either twin writes is inside [want, want + dn). */
    uint8_t *want_at = (uint8_t *)((uintptr_t)want - dof), *got_at = (uint8_t *)((uintptr_t)got - dof);
    uint64_t launches = trestle__kcpu_launches();
    cr_assert_eq(trestle__region_copy_range(want_at, &r, win, lo, n), runs);
    cr_assert_eq(trestle__region_count_range(&l, lo, n), runs);
    cr_assert_eq(trestle__kcpu_scatter(got_at, win, &l, lo, n, NULL), TRESTLE__KCPU_SUCCESS);
    cr_assert_eq(trestle__kcpu_launches(), launches + 1);
    cr_assert_eq(memcmp(got, want, dn), 0,
                 "[%lld, %lld, 2] column %lld..: runs [%llu, +%llu) of %llu", (long long)rows,
                 (long long)cols, (long long)cols0, (unsigned long long)run_lo,
                 (unsigned long long)runs, (unsigned long long)l.nruns);
    /* And each run's byte is where its index says, independently of the
     * host twin. */
    for (uint64_t j = 0; j < runs; j++) {
        uint64_t s, d;
        run_offsets(&l, run_lo + j, &s, &d);
        cr_assert_eq(got[d - dof], win[s - lo], "run %llu", (unsigned long long)(run_lo + j));
    }
    free(win);
    free(want);
    free(got);
}

Test(kernels_cpu, scatter_indexes_layouts_of_more_than_2_32_runs)
{
    uint64_t rng = 0x9216D5D98979FB1Bull;
    const uint64_t two32 = (uint64_t)1 << 32;
    /* One dim: 2^32 - 1 runs (the last 32-bit layout), 2^32 (the first
     * 64-bit one) and over 3 x 2^32, with windows across run 2^32 - 1. */
    check_huge((int64_t)two32 - 1, 1, 0, two32 - 700, 699, &rng);
    check_huge((int64_t)two32, 1, 0, two32 - 700, 700, &rng);
    check_huge(3 * (int64_t)two32 + 7, 1, 0, two32 - 500, 1500, &rng);
    check_huge(3 * (int64_t)two32 + 7, 1, 0, 3 * two32 - 100, 107, &rng);
    /* Two dims: 65536 x 65537 runs, across run 2^32 and at the end. */
    check_huge(65536, 65538, 1, two32 - 300, 1000, &rng);
    check_huge(65536, 65538, 1, 65536ull * 65537 - 2000, 2000, &rng);
}

/* Columns 2 and 3 of a 4 x 8 float32 tensor: the layout of a small
 * scatter. */
static void two_columns(trestle__k_layout *l)
{
    static int64_t dims[2] = { 4, 8 };
    trestle__region r = { .src = { 2, { 0, 0 }, { 4, 8 } },
                          .dst = { 2, { 0, 2 }, { 4, 2 } },
                          .cut = { 2, { 0, 2 }, { 4, 2 } },
                          .dims = dims,
                          .elem_size = 4 };
    cr_assert(trestle__region_layout(&r, l));
}

Test(kernels_cpu, scatter_of_an_empty_window_launches_nothing)
{
    trestle__k_layout l;
    two_columns(&l);
    uint64_t launches = trestle__kcpu_launches();
    /* Bytes [16, 24) of row 0 hold columns 4 and 5: no run. NULL pointers
     * prove that nothing is dereferenced. */
    cr_assert_eq(trestle__kcpu_scatter(NULL, NULL, &l, 16, 8, NULL), TRESTLE__KCPU_SUCCESS);
    cr_assert_eq(trestle__kcpu_scatter(NULL, NULL, &l, 0, 0, NULL), TRESTLE__KCPU_SUCCESS);
    cr_assert_eq(trestle__kcpu_launches(), launches);
}

/* ---- convert ---- */

static size_t dtype_bytes(int dtype)
{
    return dtype == TRESTLE_DT_FLOAT ? 4 : 2;
}

/*
 * Convert `count` elements of `in` with both twins and compare the bytes.
 * The kernel's source and destination sit at `sh_s`/`sh_d` bytes past
 * 16-byte aligned addresses in allocations that end at their last byte:
 * (0, 0) runs its 16-byte vector mode, element-aligned shifts its element
 * mode, odd shifts its byte mode.
 */
static void check_convert(int dst_dtype, int src_dtype, const uint8_t *in, size_t count,
                          size_t sh_s, size_t sh_d)
{
    size_t is = dtype_bytes(src_dtype), os = dtype_bytes(dst_dtype);
    uint8_t *s_base, *d_base, *want = malloc(count * os + 1);
    uint8_t *src = exact_alloc(count * is, sh_s, &s_base);
    uint8_t *got = exact_alloc(count * os, sh_d, &d_base);
    cr_assert(want);
    memcpy(src, in, count * is);
    memset(got, 0xA5, count * os);
    trestle__convert(want, dst_dtype, in, src_dtype, count);
    uint64_t launches = trestle__kcpu_launches();
    cr_assert_eq(trestle__kcpu_convert(got, dst_dtype, src, src_dtype, count, NULL),
                 TRESTLE__KCPU_SUCCESS);
    cr_assert_eq(trestle__kcpu_launches(), launches + (count > 0));
    for (size_t i = 0; i < count; i++)
        cr_assert_eq(memcmp(got + i * os, want + i * os, os), 0,
                     "%d -> %d, element %zu of %zu (shifts %zu/%zu): input 0x%0*llx", src_dtype,
                     dst_dtype, i, count, sh_s, sh_d, (int)(2 * is),
                     (unsigned long long)(is == 4 ? ((const uint32_t *)(const void *)in)[i]
                                                  : ((const uint16_t *)(const void *)in)[i]));
    free(s_base);
    free(d_base);
    free(want);
}

/* `in` (n elements of src_dtype) through every load mode, and its first
 * 0..19 elements for the short counts and the tails of the vector mode. */
static void check_modes(int dst_dtype, int src_dtype, const uint8_t *in, size_t n)
{
    size_t is = dtype_bytes(src_dtype), os = dtype_bytes(dst_dtype);
    check_convert(dst_dtype, src_dtype, in, n, 0, 0);          /* 16-byte vectors */
    check_convert(dst_dtype, src_dtype, in, n - 3, is, os);    /* element loads */
    check_convert(dst_dtype, src_dtype, in, n - 5, 0, 2 * os); /* element loads, one side aligned */
    check_convert(dst_dtype, src_dtype, in, n - 7, 1, 3);      /* byte loads */
    for (size_t c = 0; c < 20; c++)
        check_convert(dst_dtype, src_dtype, in, c, c % 2 ? 16 - c % 16 : 0, 0);
}

/* Every 16-bit input, then seeded random ones. */
static void check_widening(int src_dtype)
{
    size_t n = 65536 + 4099;
    uint16_t *in = malloc(n * sizeof *in);
    cr_assert(in);
    uint64_t x = 0x3707344A40938222ull ^ (uint64_t)src_dtype;
    for (size_t k = 0; k < n; k++)
        in[k] = k < 65536 ? (uint16_t)k : (uint16_t)(tu_rng_next(&x) >> 24);
    check_modes(TRESTLE_DT_FLOAT, src_dtype, (const uint8_t *)in, n);
    free(in);
}

/*
 * float32 inputs that reach every 16-bit output of a narrowing pair, each
 * with its rounding neighbours: every 16-bit pattern h as the float32 it
 * stands for (bfloat16: h << 16; float16: its exact float32), then that
 * float32 plus the low bits of a tie, just below and just above a tie,
 * and the next and previous float32; then seeded random bit patterns.
 */
static void check_narrowing(int dst_dtype)
{
    static const uint32_t bf16_low[] = { 0x0000, 0x7FFF, 0x8000, 0x8001, 0xFFFF, 0x0001 };
    static const int32_t f16_step[] = { 0, 0x1000, 0x0FFF, 0x1001, 1, -1 };
    const size_t per = sizeof bf16_low / sizeof bf16_low[0];
    size_t n = 65536 * per + 4099, k = 0;
    uint32_t *in = malloc(n * sizeof *in);
    cr_assert(in);
    for (uint32_t h = 0; h < 65536; h++) {
        uint32_t base;
        if (dst_dtype == TRESTLE_DT_BFLOAT16) {
            base = h << 16;
        } else {
            uint16_t h16 = (uint16_t)h;
            trestle__convert(&base, TRESTLE_DT_FLOAT, &h16, TRESTLE_DT_HALF, 1);
        }
        for (size_t j = 0; j < per; j++)
            in[k++] = dst_dtype == TRESTLE_DT_BFLOAT16 ? base | bf16_low[j]
                                                       : base + (uint32_t)f16_step[j];
    }
    uint64_t x = 0x13198A2E03707344ull ^ (uint64_t)dst_dtype;
    for (; k < n; k++)
        in[k] = (uint32_t)tu_rng_next(&x);
    check_modes(dst_dtype, TRESTLE_DT_FLOAT, (const uint8_t *)in, n);
    free(in);
}

Test(kernels_cpu, convert_float16_to_float32_matches_the_cpu_twin_for_every_input)
{
    check_widening(TRESTLE_DT_HALF);
}

Test(kernels_cpu, convert_bfloat16_to_float32_matches_the_cpu_twin_for_every_input)
{
    check_widening(TRESTLE_DT_BFLOAT16);
}

Test(kernels_cpu, convert_float32_to_bfloat16_matches_the_cpu_twin_for_every_output)
{
    check_narrowing(TRESTLE_DT_BFLOAT16);
}

Test(kernels_cpu, convert_float32_to_float16_matches_the_cpu_twin_for_every_output)
{
    check_narrowing(TRESTLE_DT_HALF);
}

Test(kernels_cpu, convert_rejects_an_unsupported_pair_and_launches_nothing)
{
    uint64_t launches = trestle__kcpu_launches();
    cr_assert_eq(trestle__kcpu_convert(NULL, TRESTLE_DT_DOUBLE, NULL, TRESTLE_DT_FLOAT, 16, NULL),
                 TRESTLE__KCPU_INVALID_VALUE);
    cr_assert_eq(trestle__kcpu_convert(NULL, TRESTLE_DT_FLOAT, NULL, TRESTLE_DT_FLOAT, 16, NULL),
                 TRESTLE__KCPU_INVALID_VALUE);
    cr_assert_eq(trestle__kcpu_launches(), launches);
}

/* A launcher reports its own launch: an earlier error of the thread (a
 * ready callback's, on a worker thread) is neither returned as the
 * launch's nor cleared. */
Test(kernels_cpu, launches_report_their_own_result_and_leave_the_last_error)
{
    trestle__k_layout l;
    two_columns(&l);
    uint8_t src[128], dst[32];
    float f[4] = { 1, 2, 3, 4 };
    uint16_t h[4];
    memset(src, 7, sizeof src);
    trestle__kcpu_set_last_error(TRESTLE__KCPU_INVALID_VALUE);
    uint64_t launches = trestle__kcpu_launches();
    cr_assert_eq(trestle__kcpu_scatter(dst, src, &l, 0, sizeof src, NULL), TRESTLE__KCPU_SUCCESS);
    cr_assert_eq(trestle__kcpu_convert(h, TRESTLE_DT_BFLOAT16, f, TRESTLE_DT_FLOAT, 4, NULL),
                 TRESTLE__KCPU_SUCCESS);
    cr_assert_eq(trestle__kcpu_launches(), launches + 2);
    cr_assert_eq(trestle__kcpu_last_error(), TRESTLE__KCPU_INVALID_VALUE,
                 "a launch read (and cleared) the thread's earlier error");
}
