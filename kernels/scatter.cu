/*
 * scatter.cu - the slice scatter kernel: the device twin of
 * trestle__region_copy_range() (engine/restore/copy_host.c).
 *
 * The CUDA copier (engine/restore/copy_cuda.c) calls trestle__k_scatter() for a
 * region piece, one staging chunk holding source bytes [lo, hi) of a
 * stored extent, whose cut must land at strided places in a device
 * destination. The region's byte layout (trestle__k_layout: `nruns` runs
 * of `run` bytes, indexed row-major by outer dims with byte strides) is
 * built on the CPU; this file turns it into one kernel launch.
 *
 * Work decomposition. Only runs that intersect [lo, hi) are launched: the
 * CPU finds them by binary search (runs lie in increasing source order),
 * so a chunk of a huge tensor never launches threads for the runs of other
 * chunks. Each run's part inside the window is cut into tiles, and one
 * group of G threads (G a power of two, 1..256, several groups per
 * 256-thread block) copies one tile: G is sized to the run, so 4-byte runs
 * use one thread each while a multi-megabyte run spreads over many blocks.
 * Groups walk the (run, tile) items with a grid-stride loop, so the grid
 * stays bounded however many runs there are.
 *
 * Vector width. A piece is copied as a byte head up to the destination's
 * V-byte alignment, V-byte words, and a byte tail. That is valid when
 * source and destination addresses agree modulo V for every run, which
 * the CPU checks once for the whole launch (base addresses and every
 * stride difference); V is the largest of 16, 8, 4, 2, 1 that works, and
 * the kernel is instantiated for each. Common layouts (element sizes of 2
 * or more, 16-byte aligned buffers and chunk boundaries) get V = 16.
 *
 * The layout travels by value as a kernel parameter (about 850 bytes,
 * under the 4 KiB parameter limit of every architecture we build for):
 * kernel parameters live in constant memory, which serves the
 * warp-uniform reads of strides and counts as broadcasts; there is no
 * device allocation to manage, no extra copy to enqueue, and no lifetime
 * to track after the launcher returns. A device copy would cost all three
 * for nothing the constant bank does not already give. (nvcc indexes the
 * parameter arrays in place, `ld.param [reg]`; ptxas -v reports no stack
 * frame, i.e. no per-thread local copy of the struct.)
 */
#include <cuda_runtime.h>
#include <stdint.h>

#include "kernel_launch.cuh"
#include "trestle_kernels.h"

#define SCATTER_THREADS 256   /* threads per block; also the largest group */
#define SCATTER_UNROLL 4      /* words in flight per thread per pass (latency of PCIe reads) */
#define SCATTER_MAX_BLOCKS 32768 /* grid cap: far above full occupancy on any GPU; the loop does the rest */

/* What the kernel needs: the layout reduced to the dims that matter, plus
 * the window and the decomposition chosen on the CPU. */
struct scatter_args {
    uint8_t *dst;                         /* destination block (device) */
    const uint8_t *src;                   /* source bytes [lo, hi) (device or pinned host) */
    uint64_t lo, hi;                      /* the window, source block offsets */
    uint64_t run;                         /* bytes per run */
    uint64_t base_s, base_d;              /* offsets of run 0 */
    uint64_t first;                       /* first run intersecting the window */
    uint64_t nr;                          /* runs intersecting the window */
    uint64_t tiles;                       /* tiles per run */
    uint64_t tile;                        /* bytes per tile */
    int k;                                /* dims left after compaction */
    int gshift;                           /* log2 of the group size */
    int narrow;                           /* run indices and counts fit in 32 bits */
    uint64_t cnt[TRESTLE__K_MAX_RANK];    /* count of each dim, outermost first */
    uint64_t sstr[TRESTLE__K_MAX_RANK];   /* its source byte stride */
    uint64_t dstr[TRESTLE__K_MAX_RANK];   /* its destination byte stride */
};

/* The word type of each vector width. */
template <int V> struct word;
template <> struct word<16> { typedef uint4 t; };
template <> struct word<8> { typedef uint2 t; };
template <> struct word<4> { typedef uint32_t t; };
template <> struct word<2> { typedef uint16_t t; };
template <> struct word<1> { typedef uint8_t t; };

/*
 * Copy `len` bytes from s to d with the G threads of a group (this thread
 * is `lane`). s and d agree modulo V, so after a head that aligns d, s is
 * aligned too.
 */
template <int V>
__device__ __forceinline__ void copy_piece(uint8_t *__restrict__ d, const uint8_t *__restrict__ s,
                                           uint64_t len, unsigned lane, unsigned G)
{
    typedef typename word<V>::t T;
    uint64_t head = (V - ((uintptr_t)d & (V - 1))) & (V - 1);
    if (head > len)
        head = len;
    for (uint64_t x = lane; x < head; x += G)
        d[x] = s[x];
    d += head;
    s += head;
    len -= head;

    uint64_t nv = len / V;
    T *__restrict__ dv = reinterpret_cast<T *>(d);
    const T *__restrict__ sv = reinterpret_cast<const T *>(s);
    uint64_t x = lane;
    /* SCATTER_UNROLL independent loads before the stores: reads of pinned
     * host memory cross PCIe, and only many outstanding reads per thread
     * hide that latency. */
    for (; x + (SCATTER_UNROLL - 1) * (uint64_t)G < nv; x += SCATTER_UNROLL * (uint64_t)G) {
        T r[SCATTER_UNROLL];
#pragma unroll
        for (int u = 0; u < SCATTER_UNROLL; u++)
            r[u] = sv[x + u * (uint64_t)G];
#pragma unroll
        for (int u = 0; u < SCATTER_UNROLL; u++)
            dv[x + u * (uint64_t)G] = r[u];
    }
    for (; x < nv; x += G)
        dv[x] = sv[x];

    for (uint64_t y = nv * V + lane; y < len; y += G)
        d[y] = s[y];
}

/* Source and destination offsets of run i: its row-major index digits
 * times the strides, innermost dim first. */
__device__ __forceinline__ void run_offsets(const scatter_args &a, uint64_t i, uint64_t *so,
                                            uint64_t *dof)
{
    uint64_t s = a.base_s, d = a.base_d;
    if (a.narrow) {
        /* 32-bit division is a handful of instructions; 64-bit division
         * is a long software routine. */
        uint32_t r = (uint32_t)i;
        for (int dim = a.k - 1; dim >= 0; dim--) {
            uint32_t c = (uint32_t)a.cnt[dim], q = r / c;
            uint32_t digit = r - q * c;
            s += digit * a.sstr[dim];
            d += digit * a.dstr[dim];
            r = q;
        }
    } else {
        for (int dim = a.k - 1; dim >= 0; dim--) {
            uint64_t q = i / a.cnt[dim];
            uint64_t digit = i - q * a.cnt[dim];
            s += digit * a.sstr[dim];
            d += digit * a.dstr[dim];
            i = q;
        }
    }
    *so = s;
    *dof = d;
}

template <int V>
__global__ void __launch_bounds__(SCATTER_THREADS) scatter_kernel(const scatter_args a)
{
    const unsigned G = 1u << a.gshift;
    const unsigned lane = threadIdx.x & (G - 1);
    const uint64_t groups = (uint64_t)(SCATTER_THREADS >> a.gshift);
    const uint64_t items = a.nr * a.tiles;

    /* The loop bound and step are the same for every thread of a group,
     * so a group stays together through copy_piece. */
    for (uint64_t item = blockIdx.x * groups + (threadIdx.x >> a.gshift); item < items;
         item += gridDim.x * groups) {
        uint64_t j = item, t = 0;
        if (a.tiles > 1) {
            j = item / a.tiles;
            t = item - j * a.tiles;
        }
        uint64_t so, dof;
        run_offsets(a, a.first + j, &so, &dof);

        /* This tile of the run's part inside the window. */
        uint64_t s0 = (so > a.lo ? so : a.lo) + t * a.tile;
        uint64_t e = so + a.run < a.hi ? so + a.run : a.hi;
        if (s0 >= e)
            continue;
        if (e - s0 > a.tile)
            e = s0 + a.tile;
        copy_piece<V>(a.dst + dof + (s0 - so), a.src + (s0 - a.lo), e - s0, lane, G);
    }
}

/* ---- the launcher (CPU side) ---- */

/* Source offset of run i under layout l (as run_src_offset in copy_host.c). */
static uint64_t run_src(const trestle__k_layout *l, uint64_t i)
{
    uint64_t off = l->base_s;
    for (int d = l->k - 1; d >= 0; d--) {
        off += (i % l->cnt[d]) * l->sstr[d];
        i /= l->cnt[d];
    }
    return off;
}

/* The first run for which pred(start of run) holds, pred being monotone
 * over increasing run starts; nruns when none. */
template <typename P> static uint64_t first_run(const trestle__k_layout *l, P pred)
{
    uint64_t a = 0, b = l->nruns;
    while (a < b) {
        uint64_t mid = a + (b - a) / 2;
        if (pred(run_src(l, mid)))
            b = mid;
        else
            a = mid + 1;
    }
    return a;
}

extern "C" int trestle__k_scatter(void *dst, const void *src, const trestle__k_layout *l,
                                  uint64_t lo, uint64_t n, void *stream)
{
    if (n == 0 || l->nruns == 0 || l->run == 0)
        return 0;
    const uint64_t hi = lo + n, run = l->run;

    scatter_args a;
    a.first = first_run(l, [&](uint64_t so) { return so + run > lo; });
    uint64_t end = first_run(l, [&](uint64_t so) { return so >= hi; });
    if (end <= a.first)
        return 0;
    a.dst = static_cast<uint8_t *>(dst);
    a.src = static_cast<const uint8_t *>(src);
    a.lo = lo;
    a.hi = hi;
    a.run = run;
    a.base_s = l->base_s;
    a.base_d = l->base_d;
    a.nr = end - a.first;

    /* Compact the dims: a dim of count 1 never moves a run, and a dim
     * that its inner neighbour continues in both blocks (stride = the
     * inner one's stride x count) merges with it. Fewer dims mean fewer
     * divisions per item. Row-major run numbering is unchanged. */
    a.k = 0;
    for (int d = 0; d < l->k; d++) {
        if (l->cnt[d] == 1)
            continue;
        if (a.k > 0 && a.sstr[a.k - 1] == l->sstr[d] * l->cnt[d] &&
            a.dstr[a.k - 1] == l->dstr[d] * l->cnt[d]) {
            a.cnt[a.k - 1] *= l->cnt[d];
            a.sstr[a.k - 1] = l->sstr[d];
            a.dstr[a.k - 1] = l->dstr[d];
            continue;
        }
        a.cnt[a.k] = l->cnt[d];
        a.sstr[a.k] = l->sstr[d];
        a.dstr[a.k] = l->dstr[d];
        a.k++;
    }
    a.narrow = l->nruns <= UINT32_MAX;

    /* The widest V at which source and destination addresses agree for
     * every run: run i's source address minus its destination address is
     * (src - lo + base_s) - (dst + base_d) + sum of digit x (sstr - dstr),
     * so V must divide the constant and every stride difference. Unsigned
     * wrap-around keeps the low bits right. */
    uint64_t mis = ((uint64_t)(uintptr_t)src - lo + l->base_s) - ((uint64_t)(uintptr_t)dst + l->base_d);
    for (int d = 0; d < a.k; d++)
        mis |= a.sstr[d] - a.dstr[d];
    int V = 16;
    while (V > 1 && (mis & (uint64_t)(V - 1)))
        V >>= 1;

    /* Group size: enough threads that each copies about SCATTER_UNROLL
     * words of the longest piece (a run, or the window when smaller). */
    uint64_t len = run < n ? run : n;
    uint64_t words = (len + (uint64_t)V * SCATTER_UNROLL - 1) / ((uint64_t)V * SCATTER_UNROLL);
    a.gshift = 0;
    while ((1ull << a.gshift) < words && (1 << a.gshift) < SCATTER_THREADS)
        a.gshift++;
    a.tile = ((uint64_t)1 << a.gshift) * V * SCATTER_UNROLL;
    a.tiles = (len + a.tile - 1) / a.tile;

    uint64_t groups = SCATTER_THREADS >> a.gshift;
    uint64_t blocks = (a.nr * a.tiles + groups - 1) / groups;
    if (blocks > SCATTER_MAX_BLOCKS)
        blocks = SCATTER_MAX_BLOCKS;
    dim3 grid((unsigned)blocks), block(SCATTER_THREADS);
    cudaStream_t s = static_cast<cudaStream_t>(stream);
    switch (V) {
    case 16: return (int)TRESTLE__K_LAUNCH(grid, block, s, scatter_kernel<16>)(a);
    case 8: return (int)TRESTLE__K_LAUNCH(grid, block, s, scatter_kernel<8>)(a);
    case 4: return (int)TRESTLE__K_LAUNCH(grid, block, s, scatter_kernel<4>)(a);
    case 2: return (int)TRESTLE__K_LAUNCH(grid, block, s, scatter_kernel<2>)(a);
    default: return (int)TRESTLE__K_LAUNCH(grid, block, s, scatter_kernel<1>)(a);
    }
}
