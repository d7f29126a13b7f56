/*
 * test_kernels.c - the CUDA kernels (kernels/scatter.cu, kernels/cast.cu)
 * against their CPU twins, byte for byte: trestle__k_scatter against
 * trestle__region_copy_range, trestle__k_convert against trestle__convert.
 *
 * Built only in CUDA builds. Every test first looks for a usable device
 * and skips, naming the CUDA error, when there is none (no driver, no GPU:
 * the CI machines), so the suite passes there without testing anything;
 * tests/test_kernels_cpu.c runs the same kernels on the CPU in every build.
 */
#include <criterion/criterion.h>
#include <cuda_runtime_api.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "copy.h"
#include "slice.h"
#include "testutil.h"
#include "trestle.h"
#include "trestle_kernels.h"

/* ---- helpers ---- */

/* Skip the current test unless a CUDA device can be used. */
static void need_device(void)
{
    int count = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess)
        cr_skip_test("no CUDA device: %s (%s)", cudaGetErrorString(e), cudaGetErrorName(e));
    if (count == 0)
        cr_skip_test("no CUDA device: cudaGetDeviceCount found 0 devices");
    e = cudaSetDevice(0);
    if (e != cudaSuccess)
        cr_skip_test("no CUDA device: cudaSetDevice(0): %s", cudaGetErrorString(e));
}

#define CK(stmt)                                                                    \
    do {                                                                            \
        cudaError_t ck_ = (stmt);                                                   \
        cr_assert_eq(ck_, cudaSuccess, "%s: %s", #stmt, cudaGetErrorString(ck_));   \
    } while (0)

/* ---- scatter ---- */

enum src_kind { SRC_DEVICE, SRC_PINNED };

/*
 * Copy windows [lo, lo + n) of region r's source block with both twins,
 * and compare the whole destination block after each. The window's bytes
 * sit at `shift` bytes past an aligned address, in device or pinned host
 * memory, so every relative alignment of source and destination occurs.
 */
static void check_scatter(const trestle__region *r, enum src_kind kind, uint64_t *rng,
                          int windows, const char *what)
{
    size_t sn = (size_t)trestle__slice_num_elements(&r->src, r->dims) * r->elem_size;
    size_t dn = (size_t)trestle__slice_num_elements(&r->dst, r->dims) * r->elem_size;
    uint8_t *src = malloc(sn), *want = malloc(dn), *got = malloc(dn);
    cr_assert(src && want && got);
    tu_fill_random(src, sn, tu_rng_next(rng));
    tu_fill_random(want, dn, tu_rng_next(rng));

    uint8_t *d_dst, *d_win = NULL, *h_win = NULL;
    CK(cudaMalloc((void **)&d_dst, dn));
    CK(cudaMemcpy(d_dst, want, dn, cudaMemcpyHostToDevice));
    if (kind == SRC_DEVICE)
        CK(cudaMalloc((void **)&d_win, sn + 16));
    else
        CK(cudaHostAlloc((void **)&h_win, sn + 16, cudaHostAllocDefault));
    cudaStream_t stream;
    CK(cudaStreamCreate(&stream));

    trestle__k_layout l;
    cr_assert(trestle__region_layout(r, &l));
    for (int w = 0; w < windows; w++) {
        uint64_t lo, n;
        if (w == 0) {
            lo = 0; /* the whole block once */
            n = sn;
        } else {
            lo = tu_rng_next(rng) % sn;
            n = 1 + tu_rng_next(rng) % (sn - lo);
        }
        size_t shift = (size_t)(tu_rng_next(rng) % 17);
        if (shift == 16)
            shift = (size_t)(lo % 16); /* the alignment a chunked read would give */
        trestle__region_copy_range(want, r, src + lo, lo, n);
        if (kind == SRC_DEVICE) {
            CK(cudaMemcpy(d_win + shift, src + lo, n, cudaMemcpyHostToDevice));
            CK((cudaError_t)trestle__k_scatter(d_dst, d_win + shift, &l, lo, n, stream));
        } else {
            /* Kernels read pinned memory through its device address, which
             * is the host address only where the device says so. */
            uint8_t *dev_win;
            memcpy(h_win + shift, src + lo, n);
            CK(cudaHostGetDevicePointer((void **)&dev_win, h_win, 0));
            CK((cudaError_t)trestle__k_scatter(d_dst, dev_win + shift, &l, lo, n, stream));
        }
        CK(cudaStreamSynchronize(stream));
        CK(cudaMemcpy(got, d_dst, dn, cudaMemcpyDeviceToHost));
        cr_assert_eq(memcmp(got, want, dn), 0,
                     "%s: rank %d elem %zu, window [%llu, +%llu) of %zu, shift %zu, %s source "
                     "(run %llu x %llu, k %d)",
                     what, r->cut.rank, r->elem_size, (unsigned long long)lo,
                     (unsigned long long)n, sn, shift, kind == SRC_DEVICE ? "device" : "pinned",
                     (unsigned long long)l.run, (unsigned long long)l.nruns, l.k);
    }

    CK(cudaStreamDestroy(stream));
    CK(cudaFree(d_dst));
    if (d_win)
        CK(cudaFree(d_win));
    if (h_win)
        CK(cudaFreeHost(h_win));
    free(src);
    free(want);
    free(got);
}

static void random_scatters(enum src_kind kind, uint64_t seed)
{
    static const size_t sizes[] = { 1, 2, 4, 8, 16 };
    uint64_t rng = seed;
    /* Small dims for many shapes; larger ones (blocks up to ~8 MiB) for
     * long runs, many runs and multi-tile runs. */
    static const int64_t maxdims[5][3] = {
        { 6, 5000, 200000 }, { 6, 100, 700 }, { 6, 25, 80 }, { 6, 12, 25 }, { 6, 8, 12 },
    };
    for (int rank = 1; rank <= 5; rank++) {
        for (int m = 0; m < 3; m++) {
            int64_t maxdim = maxdims[rank - 1][m];
            int iters = m == 0 ? 60 : 12;
            for (int iter = 0; iter < iters; iter++) {
                int64_t dims[5];
                trestle__region r;
                tu_random_region(&rng, rank, maxdim, dims, &r);
                r.elem_size = sizes[tu_rng_next(&rng) % 5];
                check_scatter(&r, kind, &rng, 6, "random");
            }
        }
    }
}

Test(kernels, scatter_matches_the_host_copy_from_device_memory)
{
    need_device();
    random_scatters(SRC_DEVICE, 0x452821E638D01377ull);
}

Test(kernels, scatter_matches_the_host_copy_from_pinned_host_memory)
{
    need_device();
    random_scatters(SRC_PINNED, 0xBE5466CF34E90C6Cull);
}

/* One contiguous run larger than many blocks' tiles, of 1-byte elements,
 * and many short runs of 1-byte elements. */
Test(kernels, scatter_handles_huge_runs_and_byte_elements)
{
    need_device();
    uint64_t rng = 0xC0AC29B7C97C50DDull;
    static int64_t dims1[1] = { 5000000 };
    trestle__region big = { .src = { 1, { 0 }, { 5000000 } },
                            .dst = { 1, { 1000 }, { 4000000 } },
                            .cut = { 1, { 1000 }, { 4000000 } },
                            .dims = dims1,
                            .elem_size = 1 };
    check_scatter(&big, SRC_DEVICE, &rng, 5, "one huge run");
    check_scatter(&big, SRC_PINNED, &rng, 5, "one huge run");

    static int64_t dims2[2] = { 3000, 777 };
    trestle__region cols = { .src = { 2, { 0, 0 }, { 3000, 777 } },
                             .dst = { 2, { 0, 5 }, { 3000, 1 } },
                             .cut = { 2, { 0, 5 }, { 3000, 1 } },
                             .dims = dims2,
                             .elem_size = 1 };
    check_scatter(&cols, SRC_DEVICE, &rng, 5, "one byte column");

    static int64_t dims3[3] = { 7, 9000, 64 };
    trestle__region wide = { .src = { 3, { 2, 0, 0 }, { 3, 9000, 64 } },
                             .dst = { 3, { 0, 10, 0 }, { 7, 8000, 64 } },
                             .cut = { 3, { 2, 10, 0 }, { 3, 8000, 64 } },
                             .dims = dims3,
                             .elem_size = 2 };
    check_scatter(&wide, SRC_PINNED, &rng, 5, "partition into a whole tensor");
}

Test(kernels, scatter_of_an_empty_window_enqueues_nothing)
{
    need_device();
    static int64_t dims[2] = { 4, 8 };
    trestle__region r = { .src = { 2, { 0, 0 }, { 4, 8 } },
                          .dst = { 2, { 0, 2 }, { 4, 2 } },
                          .cut = { 2, { 0, 2 }, { 4, 2 } },
                          .dims = dims,
                          .elem_size = 4 };
    trestle__k_layout l;
    cr_assert(trestle__region_layout(&r, &l));
    /* Bytes [16, 24) of row 0 hold columns 4 and 5: no run. NULL pointers
     * prove that nothing is dereferenced. */
    cr_assert_eq(trestle__k_scatter(NULL, NULL, &l, 16, 8, NULL), 0);
    cr_assert_eq(trestle__k_scatter(NULL, NULL, &l, 0, 0, NULL), 0);
}

/* ---- convert ---- */

/* float32 patterns for the narrowing pairs: every edge the CPU suite
 * checks, then seeded random bit patterns. */
static const uint32_t edges[] = {
    0x00000000, 0x80000000, 0x7F800000, 0xFF800000, 0x7FC00000, 0xFFC00000, 0x7F800001,
    0xFF800001, 0x7FBFFFFF, 0xFFFFFFFF, 0x7FFFFFFF, 0x7F7FFFFF, 0xFF7FFFFF, 0x00800000,
    0x007FFFFF, 0x00000001, 0x477FE000, 0x477FEFFF, 0x477FF000, 0x477FF001, 0x47800000,
    0x38800000, 0x387FFFFF, 0x387FC000, 0x387FE000, 0x33800000, 0x33000000, 0x33000001,
    0x32FFFFFF, 0x33C00000, 0x34200000, 0x3F801000, 0x3F803000, 0x3F808000, 0x3F818000,
    0x7F7F8000, 0x7F7F7FFF, 0x00008000, 0x00018000,
};

#define NEDGES (sizeof edges / sizeof edges[0])

/*
 * Convert `count` elements of `in` (src_dtype) with both twins and compare
 * the bytes; the device buffers sit at `sh_s`/`sh_d` bytes past aligned
 * addresses so that all three of the kernel's load modes run.
 */
static void check_convert(int dst_dtype, int src_dtype, const uint8_t *in, size_t count,
                          size_t sh_s, size_t sh_d)
{
    size_t is = src_dtype == TRESTLE_DT_FLOAT ? 4 : 2, os = dst_dtype == TRESTLE_DT_FLOAT ? 4 : 2;
    uint8_t *want = malloc(count * os + 1), *got = malloc(count * os + 1);
    uint8_t *d_src, *d_dst;
    cr_assert(want && got);
    trestle__convert(want, dst_dtype, in, src_dtype, count);
    CK(cudaMalloc((void **)&d_src, count * is + 16));
    CK(cudaMalloc((void **)&d_dst, count * os + 16));
    CK(cudaMemcpy(d_src + sh_s, in, count * is, cudaMemcpyHostToDevice));
    CK((cudaError_t)trestle__k_convert(d_dst + sh_d, dst_dtype, d_src + sh_s, src_dtype, count,
                                       NULL));
    CK(cudaDeviceSynchronize());
    CK(cudaMemcpy(got, d_dst + sh_d, count * os, cudaMemcpyDeviceToHost));
    for (size_t i = 0; i < count; i++)
        cr_assert_eq(memcmp(got + i * os, want + i * os, os), 0,
                     "%d -> %d, element %zu of %zu (shifts %zu/%zu): input 0x%0*llx", src_dtype,
                     dst_dtype, i, count, sh_s, sh_d, (int)(2 * is),
                     (unsigned long long)(is == 4 ? ((const uint32_t *)(const void *)in)[i]
                                                  : ((const uint16_t *)(const void *)in)[i]));
    CK(cudaFree(d_src));
    CK(cudaFree(d_dst));
    free(want);
    free(got);
}

static void check_pair(int dst_dtype, int src_dtype)
{
    size_t n = (1 << 20) + 13, is = src_dtype == TRESTLE_DT_FLOAT ? 4 : 2;
    uint8_t *in = malloc(n * is);
    cr_assert(in);
    uint64_t x = 0x3707344A40938222ull ^ (uint64_t)(dst_dtype * 64 + src_dtype);
    size_t k = 0;
    if (is == 4) {
        uint32_t *in32 = (uint32_t *)(void *)in;
        for (size_t i = 0; i < NEDGES; i++) {
            in32[k++] = edges[i];
            in32[k++] = edges[i] ^ 0x80000000u;
        }
        for (; k < n; k++)
            in32[k] = (uint32_t)(tu_rng_next(&x) >> 16);
    } else {
        /* Every 16-bit code once, then random ones. */
        uint16_t *in16 = (uint16_t *)(void *)in;
        for (; k < 65536; k++)
            in16[k] = (uint16_t)k;
        for (; k < n; k++)
            in16[k] = (uint16_t)(tu_rng_next(&x) >> 24);
    }
    check_convert(dst_dtype, src_dtype, in, n, 0, 0);            /* 16-byte vectors */
    check_convert(dst_dtype, src_dtype, in, n - 5, 4, 4);        /* element loads */
    check_convert(dst_dtype, src_dtype, in, n - 7, 1, 3);        /* byte loads */
    for (size_t c = 0; c < 20; c++)                              /* short counts and tails */
        check_convert(dst_dtype, src_dtype, in, c, 0, 0);
    free(in);
}

Test(kernels, convert_float32_to_bfloat16_matches_the_cpu_twin)
{
    need_device();
    check_pair(TRESTLE_DT_BFLOAT16, TRESTLE_DT_FLOAT);
}

Test(kernels, convert_float32_to_float16_matches_the_cpu_twin)
{
    need_device();
    check_pair(TRESTLE_DT_HALF, TRESTLE_DT_FLOAT);
}

Test(kernels, convert_float16_to_float32_matches_the_cpu_twin)
{
    need_device();
    check_pair(TRESTLE_DT_FLOAT, TRESTLE_DT_HALF);
}

Test(kernels, convert_bfloat16_to_float32_matches_the_cpu_twin)
{
    need_device();
    check_pair(TRESTLE_DT_FLOAT, TRESTLE_DT_BFLOAT16);
}

Test(kernels, convert_rejects_an_unsupported_pair)
{
    need_device();
    cr_assert_eq(trestle__k_convert(NULL, TRESTLE_DT_DOUBLE, NULL, TRESTLE_DT_FLOAT, 16, NULL),
                 (int)cudaErrorInvalidValue);
    cr_assert_eq(trestle__k_convert(NULL, TRESTLE_DT_FLOAT, NULL, TRESTLE_DT_FLOAT, 16, NULL),
                 (int)cudaErrorInvalidValue);
}
