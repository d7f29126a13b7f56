/*
 * restore_layout.c - how a restore reads its plan: which batches go through
 * O_DIRECT, how each batch splits into reads, and the bookkeeping that lets
 * workers check one CRC per extent from the parts that chunks deliver.
 *
 * A batch is read as a sequence of "segments", each at most one chunk:
 * runs of small extents (with the gaps between them) are read into staging
 * buffers and copied out by workers; an extent of at least DEST_READ_MIN
 * bytes in a batch read buffered, with a verbatim piece into host memory
 * that keeps the stored dtype, is read straight into that destination
 * instead, so its bytes are copied once (by the kernel) rather than twice.
 * Reads are numbered in batch order; trestle__restore_segments() is the one
 * definition of the split, used both here (to count) and by the producer
 * (to issue).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "bulk.h"
#include "error.h"
#include "restore.h"

#define DEST_READ_MIN ((uint64_t)256 << 10) /* below this, coalesced staging reads win */

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22 /* Linux >= 5.14; older kernels refuse the advice, which is fine */
#endif

#ifndef SYS_cachestat
#define SYS_cachestat 451 /* Linux >= 6.5, the same number on every architecture */
#endif

/* ---- O_DIRECT policy ---- */

struct cachestat_range_ {
    uint64_t off, len;
};
struct cachestat_ {
    uint64_t nr_cache, nr_dirty, nr_writeback, nr_evicted, nr_recently_evicted;
};

/*
 * Is most of [off, off + len) of fd in the page cache? cachestat(2) answers
 * in one call on Linux >= 6.5; elsewhere mincore(2) on a temporary mapping
 * does. When neither can tell, say yes: buffered reads are always correct.
 */
static bool mostly_cached(trestle__restore *x, int fd, uint64_t off, uint64_t len)
{
    uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
    uint64_t first = off / page, pages = (off + len - 1) / page - first + 1;

    if (!x->no_cachestat) {
        struct cachestat_range_ range = { first * page, pages * page };
        struct cachestat_ cs;
        if (syscall(SYS_cachestat, fd, &range, &cs, 0) == 0)
            return cs.nr_cache * 2 >= pages;
        x->no_cachestat = true; /* ENOSYS, or a seccomp filter: don't ask again */
    }
    unsigned char *vec = malloc((size_t)pages);
    void *map = mmap(NULL, (size_t)(pages * page), PROT_READ, MAP_SHARED, fd,
                     (off_t)(first * page));
    uint64_t cached = pages;
    if (vec && map != MAP_FAILED && mincore(map, (size_t)(pages * page), vec) == 0) {
        cached = 0;
        for (uint64_t i = 0; i < pages; i++)
            cached += vec[i] & 1;
    }
    if (map != MAP_FAILED)
        munmap(map, (size_t)(pages * page));
    free(vec);
    return cached * 2 >= pages;
}

/* The O_DIRECT policy for one batch: cold data skips the page cache. */
static unsigned char batch_mode(trestle__restore *x, const trestle__batch *bt)
{
    if (x->ckpt->store)
        return TRESTLE__BATCH_BUFFERED; /* remote objects: no page cache, no O_DIRECT */
    if (x->opt.direct == TRESTLE_DIRECT_ALWAYS)
        return TRESTLE__BATCH_DIRECT;
    if (bt->length > 0 && mostly_cached(x, x->ckpt->shard_fds[bt->shard], bt->offset, bt->length))
        return TRESTLE__BATCH_CACHED;
    return x->opt.direct == TRESTLE_DIRECT_NEVER ? TRESTLE__BATCH_BUFFERED : TRESTLE__BATCH_DIRECT;
}

/* ---- segments ---- */

/* Append [lo, hi) as chunk-sized reads into `target` (out may be NULL: count). */
static size_t emit(trestle__seg *out, size_t n, uint64_t lo, uint64_t hi, uint64_t chunk,
                   size_t target, size_t batch)
{
    for (uint64_t o = lo; o < hi; o += chunk, n++)
        if (out)
            out[n] = (trestle__seg){ o, hi - o < chunk ? hi - o : chunk, target, batch, 1, false };
    return n;
}

/* Extent e is read whole with others of its kind, in one scattering read
 * straight into their destinations: small (one read holds it), and not
 * mapped (host_map: nothing is read at all). */
static bool small_in_place(const trestle__restore *x, size_t e)
{
    const trestle__ext_state *st = &x->ext[e];
    uint64_t size = x->plan->extents[e].size;
    return st->dest && !st->mapped && !x->ckpt->store && size > 0 && size < DEST_READ_MIN &&
           size <= x->chunk;
}


/* Iovecs a gap of `g` bytes takes: the sink holds TRESTLE__GAP_SINK. */
static unsigned gap_iovs(uint64_t g)
{
    return (unsigned)((g + TRESTLE__GAP_SINK - 1) / TRESTLE__GAP_SINK);
}

/* A run of small extents read in place: [first, last], the bytes it reads
 * (from the end of the read before it in the batch, so that the bytes a
 * batch reads are the ones they always were), its iovecs, and where its
 * last destination ends (the next one starting there joins its iovec, as
 * restore.c's scatter() joins them). */
typedef struct vrun {
    bool open;
    size_t first, last;
    uint64_t lo, hi;
    unsigned niov;
    const uint8_t *dest_end;
} vrun;

static size_t vrun_flush(vrun *v, trestle__seg *out, size_t n, size_t b)
{
    if (v->open && out)
        out[n] = (trestle__seg){ v->lo, v->hi - v->lo, v->first, b, v->last - v->first + 1, true };
    n += v->open;
    v->open = false;
    return n;
}

/* Add small extent e to run v, whose bytes start at `lead` (the end of the
 * read before it, or its own offset), or start a new run when it does not
 * fit: past a chunk or the iovecs one read takes. A leading gap too large
 * for one read goes through staging on its own. (Runs as long as a chunk
 * measured fastest once engine memory lay in file order: fewer reads,
 * and the workers' checks walk memory in order.) */
static size_t vrun_add(vrun *v, const trestle__restore *x, trestle__seg *out, size_t n,
                       size_t b, size_t e, uint64_t lead)
{
    const trestle__extent *ext = &x->plan->extents[e];
    const uint8_t *dest = x->ext[e].dest;
    uint64_t end = ext->offset + ext->size;
    if (v->open) {
        unsigned gaps = gap_iovs(ext->offset - v->hi);
        unsigned need = v->niov + gaps + (gaps == 0 && dest == v->dest_end ? 0 : 1);
        if (need <= TRESTLE__READ_MAX_IOV && end - v->lo <= x->chunk) {
            v->last = e;
            v->hi = end;
            v->niov = need;
            v->dest_end = dest + ext->size;
            return n;
        }
        n = vrun_flush(v, out, n, b);
    }
    if (end - lead > x->chunk || gap_iovs(ext->offset - lead) + 1 > TRESTLE__READ_MAX_IOV) {
        n = emit(out, n, lead, ext->offset, x->chunk, TRESTLE__NO_EXTENT, b);
        lead = ext->offset;
    }
    *v = (vrun){ true, e, e, lead, end, gap_iovs(ext->offset - lead) + 1, dest + ext->size };
    return n;
}

/*
 * The reads of batch b. Every byte a batch read before small extents were
 * read in place is read still: a run of extents without a large
 * destination between them was one staging read through the gaps, and is
 * now staging reads and scattering reads end to end (each starting where
 * the one before ended), so bytes_read, and what a read-once group shares,
 * do not change. Large extents with a destination are read alone, as
 * before, without the gaps around them.
 */
size_t trestle__restore_segments(const trestle__restore *x, size_t b, trestle__seg *out)
{
    const trestle_plan *p = x->plan;
    const trestle__batch *bt = &p->batches[b];
    uint64_t run_lo = 0, run_hi = 0, cover = 0;
    bool run = false, region = false; /* region: cover is where the next read starts */
    vrun v = { 0 };
    size_t n = 0;

    for (size_t e = bt->first_extent; e < bt->first_extent + bt->num_extents; e++) {
        const trestle__extent *ext = &p->extents[e];
        if (ext->size == 0)
            continue; /* finished at start */
        bool small = small_in_place(x, e);
        if (x->ext[e].dest && !small) {
            if (run)
                n = emit(out, n, run_lo, run_hi, x->chunk, TRESTLE__NO_EXTENT, b);
            run = region = false;
            n = vrun_flush(&v, out, n, b);
            n = emit(out, n, ext->offset, ext->offset + ext->size, x->chunk, e, b);
            continue;
        }
        uint64_t lead = region ? cover : ext->offset;
        if (small) {
            if (run)
                n = emit(out, n, run_lo, run_hi, x->chunk, TRESTLE__NO_EXTENT, b);
            run = false;
            n = vrun_add(&v, x, out, n, b, e, lead);
        } else {
            n = vrun_flush(&v, out, n, b);
            if (!run)
                run_lo = lead;
            run = true;
            run_hi = ext->offset + ext->size;
        }
        region = true;
        cover = ext->offset + ext->size;
    }
    if (run)
        n = emit(out, n, run_lo, run_hi, x->chunk, TRESTLE__NO_EXTENT, b);
    return vrun_flush(&v, out, n, b);
}

/* ---- bookkeeping ---- */

#define MAP_ALIGN 64 /* a mapped tensor keeps at least this alignment (its file offset's) */

/*
 * host_map: a whole tensor bound for the host arena, in a batch the page
 * cache holds, is not read at all: its op points into a private mapping of
 * the shard (engine/memory/arena.c) and the workers CRC it there. Only a plain
 * verbatim whole-tensor piece qualifies (no conversion, no region), and
 * only at a MAP_ALIGN-aligned file offset, so mapped tensors stay aligned
 * for vector code. Anything else is read and copied as usual.
 */
static void map_extent(trestle__restore *x, size_t e)
{
    trestle_plan *p = x->plan;
    const trestle__extent *ext = &p->extents[e];
    trestle__ext_state *st = &x->ext[e];

    if (ext->size == 0 || ext->offset % MAP_ALIGN != 0 || !p->arena || p->arena->device >= 0)
        return;
    for (size_t k = 0; k < ext->num_pieces; k++) {
        const trestle__piece *pc = &p->pieces[ext->first_piece + k];
        trestle__plan_op *op = &p->ops[pc->op];
        if (pc->region != TRESTLE__NO_REGION || op->convert || op->skipped ||
            op->dest_kind != TRESTLE_DEST_ALLOCATE || op->num_pieces != 1 || pc->dst_offset != 0 ||
            op->bytes != ext->size)
            continue;
        uint8_t *m = trestle__arena_map(p->arena, ext->shard, x->ckpt->shard_fds[ext->shard],
                                        x->ckpt->shard_sizes[ext->shard]);
        if (!m)
            return;
        /* A plan restored again reuses its mapping, where the caller may
         * have written (private copies of pages): drop those, so the file's
         * bytes show through again and are what gets checked. Then map the
         * cached pages up front, in one call, rather than one fault per
         * 64 KiB when the workers first read them (advice: may fail). */
        uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE), lo = ext->offset / page * page;
        size_t len = (size_t)(ext->offset + ext->size - lo);
        if (madvise(m + lo, len, MADV_DONTNEED) != 0)
            return;
        madvise(m + lo, len, MADV_POPULATE_READ);
        op->dest = m + ext->offset;
        st->dest = op->dest;
        st->primary = ext->first_piece + k;
        st->mapped = true;
        if (ext->is_string)
            st->walk_buf = st->dest;
        return;
    }
}

/* A host copier means that no destination of this restore is device
 * memory (pick_device in restore.c would have opened the CUDA copier). */
static bool host_memory(const trestle__restore *x, const trestle__plan_op *op)
{
    return x->copier.host_dests && op->dest &&
           (op->dest_kind == TRESTLE_DEST_HOST || op->dest_kind == TRESTLE_DEST_ALLOCATE);
}

/* Extent e of a buffered batch: read it straight into a host destination?
 * Large ones alone, small ones (not strings, which are walked whole) in
 * runs. Never into one whose op converts: the stored bytes would not fit
 * its layout, and the other pieces read the stored bytes from there. */
static void pick_destination(trestle__restore *x, size_t e)
{
    const trestle_plan *p = x->plan;
    const trestle__extent *ext = &p->extents[e];
    trestle__ext_state *st = &x->ext[e];

    st->primary = TRESTLE__NO_EXTENT;
    for (size_t k = 0; k < ext->num_pieces; k++) {
        const trestle__piece *pc = &p->pieces[ext->first_piece + k];
        const trestle__plan_op *op = &p->ops[pc->op];
        if (pc->region == TRESTLE__NO_REGION && !op->convert && host_memory(x, op)) {
            /* Strings are walked where a host destination holds them all. */
            if (ext->is_string && !st->walk_buf)
                st->walk_buf = (uint8_t *)op->dest + pc->dst_offset;
            /* A remote GET costs a round trip: there only extents of a
             * whole chunk or more get one of their own, and no run of
             * small ones is scattered (the remote reader fills buffers). */
            bool own_read = x->ckpt->store
                                ? ext->size >= x->chunk
                                : ext->size >= DEST_READ_MIN ||
                                      (!ext->is_string && ext->size <= x->chunk);
            if (!st->dest && own_read) {
                st->dest = (uint8_t *)op->dest + pc->dst_offset;
                st->primary = ext->first_piece + k;
            }
        }
    }
}

/* Read `seq` holds part of extent e, `len` bytes of it: count the part and
 * give it a CRC slot. An extent's parts come in consecutive reads, and no
 * other extent starts between them, so handing out slots in the order
 * parts are found keeps each extent's slots together. */
static void add_part(trestle__restore *x, size_t e, uint64_t seq, uint64_t len)
{
    trestle__ext_state *st = &x->ext[e];
    if (st->parts == 0) {
        st->first_seq = seq;
        st->first_len = (uint32_t)len; /* a part is at most a chunk (MAX_CHUNK: 1 GiB) */
        st->crcs = x->slots + x->nslots;
    }
    st->parts++;
    x->nslots++;
    atomic_init(&st->left, st->parts);
}

/* Count the parts of every extent in batch b's reads, which are x->segs
 * from its first sequence number on. */
static void count_parts(trestle__restore *x, size_t b)
{
    const trestle_plan *p = x->plan;
    const trestle__batch *bt = &p->batches[b];
    trestle__seg *segs = x->segs + x->batch_seq[b];
    size_t n = trestle__restore_segments(x, b, segs);
    size_t e = bt->first_extent, end = bt->first_extent + bt->num_extents;

    for (size_t i = 0; i < n; i++) {
        uint64_t seq = x->batch_seq[b] + i, lo = segs[i].offset, hi = lo + segs[i].length;
        if (segs[i].scatter) {
            uint64_t bytes = 0;
            for (size_t k = segs[i].extent; k < segs[i].extent + segs[i].span; k++) {
                if (p->extents[k].size == 0)
                    continue;
                add_part(x, k, seq, p->extents[k].size);
                bytes += p->extents[k].size;
            }
            x->vruns = true;
            x->vrun_gaps |= bytes != segs[i].length;
            continue;
        }
        if (segs[i].extent != TRESTLE__NO_EXTENT) {
            add_part(x, segs[i].extent, seq, segs[i].length);
            continue;
        }
        /* Staging reads come in file order: extents before lo are done. */
        while (e < end && p->extents[e].offset + p->extents[e].size <= lo)
            e++;
        for (size_t k = e; k < end && p->extents[k].offset < hi; k++) {
            const trestle__extent *ext = &p->extents[k];
            trestle__ext_state *st = &x->ext[k];
            uint64_t s = ext->offset > lo ? ext->offset : lo;
            uint64_t t = ext->offset + ext->size < hi ? ext->offset + ext->size : hi;
            if (st->dest || s >= t)
                continue;
            add_part(x, k, seq, t - s);
        }
    }
}

int trestle__restore_layout(trestle__restore *x, trestle_error *err)
{
    trestle_plan *p = x->plan;
    size_t nb = p->num_batches ? p->num_batches : 1;
    uint64_t seq = 0;
    size_t covered = 0;

    x->batch_seq = malloc(nb * sizeof *x->batch_seq);
    x->batch_mode = calloc(nb, sizeof *x->batch_mode);
    x->ext = trestle__bulk_calloc(p->num_extents ? p->num_extents : 1, sizeof *x->ext);
    x->op_left = trestle__bulk_calloc(p->num_ops ? p->num_ops : 1, sizeof *x->op_left);
    if (!x->batch_seq || !x->batch_mode || !x->ext || !x->op_left)
        return trestle__error_simple(err, TRESTLE_E_NOMEM, "out of memory");

    /* pick_destination() sets each batch's extents; any other (none, in a
     * plan as built) has no primary piece. */
    for (size_t b = 0; b < p->num_batches; b++)
        covered += p->batches[b].num_extents;
    for (size_t e = 0; covered != p->num_extents && e < p->num_extents; e++)
        x->ext[e].primary = TRESTLE__NO_EXTENT;
    /* Partial extents XOR their runs into these: start from nothing. */
    for (size_t i = 0; i < p->num_shares; i++)
        atomic_store(&p->shares[i].share, 0);
    for (size_t b = 0; b < p->num_batches; b++) {
        const trestle__batch *bt = &p->batches[b];
        x->batch_mode[b] = batch_mode(x, bt);
        for (size_t e = bt->first_extent; e < bt->first_extent + bt->num_extents; e++) {
            /* Ops come in file order, which need not be theirs: fetch ahead. */
            if (e + 16 < p->num_extents && p->extents[e + 16].num_pieces)
                __builtin_prefetch(&p->ops[p->pieces[p->extents[e + 16].first_piece].op]);
            pick_destination(x, e);
            if (x->opt.host_map && x->batch_mode[b] == TRESTLE__BATCH_CACHED)
                map_extent(x, e);
            if (x->batch_mode[b] == TRESTLE__BATCH_DIRECT && x->ext[e].dest) { /* O_DIRECT goes through staging */
                x->ext[e].dest = NULL;
                x->ext[e].primary = TRESTLE__NO_EXTENT;
            }
            x->empty_extents += p->extents[e].size == 0;
            x->strings |= p->extents[e].is_string;
        }
        size_t n = trestle__restore_segments(x, b, NULL);
        x->batch_seq[b] = seq;
        seq += n;
    }
    x->nreads = seq;
    /* Every read, kept: the producer issues them across shards in an
     * order of its own (a few dozen bytes per chunk of the checkpoint).
     * Each read adds at most one part to the extents it starts in, so
     * extents + reads bounds the CRC slots. */
    x->segs = malloc((seq ? seq : 1) * sizeof *x->segs);
    x->slots = malloc((p->num_extents + seq + 1) * sizeof *x->slots);
    if (!x->segs || !x->slots)
        return trestle__error_simple(err, TRESTLE_E_NOMEM, "out of memory");
    for (size_t b = 0; b < p->num_batches; b++)
        count_parts(x, b);
    if (x->vrun_gaps && !(x->gap_sink = malloc(TRESTLE__GAP_SINK)))
        return trestle__error_simple(err, TRESTLE_E_NOMEM, "out of memory");
    for (size_t i = 0; i < p->num_ops; i++) {
        atomic_init(&x->op_left[i], p->ops[i].num_pieces);
        x->ops_expected += !p->ops[i].skipped;
        x->ready_at_once += !p->ops[i].skipped && p->ops[i].num_pieces == 0;
    }
    return TRESTLE_OK;
}

/* ---- issue order ---- */

/*
 * The order reads are issued in: round-robin over shards, one read at a
 * time (batches come sorted by shard, so each shard's reads are one run of
 * sequence numbers, in file order). Shards on different devices are read
 * at once, and a tensor of many chunks in one shard does not hold the
 * whole queue while the other shards wait.
 */
uint64_t *trestle__restore_issue_order(const trestle__restore *x)
{
    const trestle_plan *p = x->plan;
    size_t n = p->num_batches ? p->num_batches : 1;
    uint64_t *order = malloc((x->nreads ? x->nreads : 1) * sizeof *order);
    uint64_t *cur = malloc(n * sizeof *cur), *end = malloc(n * sizeof *end);
    size_t runs = 0;
    uint64_t placed = 0;

    if (!order || !cur || !end) {
        free(order);
        order = NULL;
        goto out;
    }
    for (size_t b = 0; b < p->num_batches; b++) {
        uint64_t last = b + 1 < p->num_batches ? x->batch_seq[b + 1] : x->nreads;
        if (b == 0 || p->batches[b].shard != p->batches[b - 1].shard)
            cur[runs++] = x->batch_seq[b];
        end[runs - 1] = last;
    }
    while (placed < x->nreads) {
        size_t live = 0;
        for (size_t r = 0; r < runs; r++) {
            if (cur[r] < end[r])
                order[placed++] = cur[r]++;
            if (cur[r] < end[r]) {
                cur[live] = cur[r];
                end[live++] = end[r];
            }
        }
        runs = live;
    }
out:
    free(cur);
    free(end);
    return order;
}
