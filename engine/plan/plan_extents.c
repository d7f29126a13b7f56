/*
 * plan_extents.c - the last steps of planning: the wants of every op
 * (engine/plan/plan_pieces.c) are sorted by where their bytes lie,
 * deduplicated into extents with their pieces, and the extents coalesced
 * into the batches the pipeline reads (the invariants of engine/plan/plan.h).
 *
 * Called by engine/plan/plan_create.c only. A model of 100,000 tensors
 * has 100,000 wants: they are sorted in linear time (a stable split by
 * shard, then a radix sort of the offsets where a shard's wants are not
 * already in order), and every later pass walks them in order.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bulk.h"
#include "error.h"
#include "plan.h"
#include "plan_build.h"

#define RADIX_BITS 11 /* 2,048 counters: they stay in L1 while a pass runs */

/* The order of wants: by shard, offset, entry, then creation (so the
 * pieces of an extent stay in op order). Total: both are elements of
 * b->wants, made in array order, so their places tell creation apart. */
static int compare_want(const void *a, const void *b)
{
    const want *x = a, *y = b;
    if (x->shard != y->shard)
        return x->shard < y->shard ? -1 : 1;
    if (x->offset != y->offset)
        return x->offset < y->offset ? -1 : 1;
    if (x->entry != y->entry)
        return x->entry < y->entry ? -1 : 1;
    return (x > y) - (x < y);
}

/* One want's sort key: its offset, and its index in b->wants. */
typedef struct keyed {
    uint64_t offset;
    size_t at;
} keyed;

static int compare_keyed(const void *a, const void *b, void *wants)
{
    const want *w = wants;
    return compare_want(&w[((const keyed *)a)->at], &w[((const keyed *)b)->at]);
}

/*
 * Sort k[0..n) (one shard's wants, in creation order) by compare_want: a
 * stable LSD radix sort of the offsets (scratch: tmp, n keys), then the
 * runs of equal offsets put in order by entry and creation. Those are several
 * ops of one entry, already in order, or entries that share bytes, which
 * planning then refuses. False when out of memory.
 */
static bool sort_run(const want *w, keyed *k, keyed *tmp, size_t n)
{
    size_t *count = malloc(((size_t)1 << RADIX_BITS) * sizeof *count);
    size_t mask = ((size_t)1 << RADIX_BITS) - 1;
    uint64_t top = 0;
    keyed *from = k, *to = tmp;

    if (!count)
        return false;
    for (size_t i = 0; i < n; i++)
        top |= k[i].offset;
    for (unsigned shift = 0; shift < 64 && (top >> shift) != 0; shift += RADIX_BITS) {
        size_t sum = 0;
        memset(count, 0, (mask + 1) * sizeof *count);
        for (size_t i = 0; i < n; i++)
            count[(from[i].offset >> shift) & mask]++;
        for (size_t d = 0; d <= mask; d++) {
            size_t c = count[d];
            count[d] = sum;
            sum += c;
        }
        for (size_t i = 0; i < n; i++)
            to[count[(from[i].offset >> shift) & mask]++] = from[i];
        keyed *t = from;
        from = to;
        to = t;
    }
    if (from != k)
        memcpy(k, from, n * sizeof *k);
    free(count);
    for (size_t i = 0, j; i < n; i = j) {
        bool in_order = true;
        for (j = i + 1; j < n && k[j].offset == k[i].offset; j++)
            in_order = in_order && compare_want(&w[k[j - 1].at], &w[k[j].at]) < 0;
        if (!in_order)
            qsort_r(k + i, j - i, sizeof *k, compare_keyed, (void *)w);
    }
    return true;
}

/*
 * The order of the wants by compare_want, as one qsort of them all would
 * give it, in b->order (NULL: they are in order already). They come in op
 * order; for a whole checkpoint that is key order, which is file order
 * when the writer wrote tensors in key order (TF's savers do): then
 * nothing is sorted. Otherwise split them by shard (stable, so each
 * shard's run stays in creation order) and radix-sort the runs that are
 * out of order: linear, where a sort of 80-byte wants by comparison took
 * longer than everything else planning does.
 */
static int sort_wants(builder *b, trestle_error *err)
{
    const want *w = b->wants;
    size_t n = b->n_wants, nshards = b->c->num_shards > 0 ? (size_t)b->c->num_shards : 1;
    bool sorted = true, ok;

    for (size_t i = 1; i < n && sorted; i++)
        sorted = compare_want(&w[i - 1], &w[i]) < 0;
    if (sorted)
        return TRESTLE_OK;
    for (size_t i = 0; i < n && nshards > 1; i++)
        if (w[i].shard < 0 || (size_t)w[i].shard >= nshards)
            nshards = 1; /* not a shard of this checkpoint (a hand-made one): one run */
    size_t *start = calloc(nshards + 1, sizeof *start);
    /* Mappings of their own (bulk.c): freed, they leave no heap behind. */
    keyed *k = trestle__bulk_calloc(n, sizeof *k), *tmp = trestle__bulk_calloc(n, sizeof *tmp);
    b->order = trestle__bulk_calloc(n, sizeof *b->order);
    ok = start && k && tmp && b->order;
    if (ok) {
        for (size_t i = 0; i < n; i++)
            start[(nshards > 1 ? (size_t)w[i].shard : 0) + 1]++;
        for (size_t s = 0; s < nshards; s++)
            start[s + 1] += start[s];
        for (size_t i = 0; i < n; i++)
            k[start[nshards > 1 ? (size_t)w[i].shard : 0]++] = (keyed){ w[i].offset, i };
    }
    for (size_t s = 0, lo = 0; ok && s < nshards; s++) {
        size_t hi = start[s]; /* now the end of shard s's run */
        bool in_order = true;
        for (size_t i = lo + 1; i < hi && in_order; i++)
            in_order = compare_want(&w[k[i - 1].at], &w[k[i].at]) < 0;
        if (!in_order)
            ok = sort_run(w, k + lo, tmp, hi - lo);
        lo = hi;
    }
    for (size_t i = 0; ok && i < n; i++)
        b->order[i] = k[i].at;
    free(start);
    trestle__bulk_free(k);
    trestle__bulk_free(tmp);
    return ok ? TRESTLE_OK : trestle__error_simple(err, TRESTLE_E_NOMEM, "out of memory");
}

/* One extent per stored entry, sorted by (shard, offset), its pieces after
 * it in op order. Entries sharing bytes cannot be planned: TF's writer
 * never makes them, and the pipeline checks one CRC per extent. */
int trestle__plan_pieces_extents(builder *b, trestle_error *err)
{
    trestle_plan *p = b->p;
    size_t n = b->n_wants ? b->n_wants : 1;
    int rc = sort_wants(b, err);

    if (rc != TRESTLE_OK)
        return rc;
    p->pieces = trestle__bulk_calloc(n, sizeof *p->pieces);
    p->extents = trestle__bulk_calloc(n, sizeof *p->extents);
    if (!p->pieces || !p->extents)
        return trestle__error_simple(err, TRESTLE_E_NOMEM, "out of memory");
    for (size_t i = 0; i < b->n_wants; i++) {
        /* A permutation walks the wants out of order: fetch ahead. */
        if (b->order && i + 16 < b->n_wants)
            __builtin_prefetch(&b->wants[b->order[i + 16]]);
        const want *w = &b->wants[b->order ? b->order[i] : i];
        trestle__extent *x = p->num_extents ? &p->extents[p->num_extents - 1] : NULL;
        /* A part's runs share their entry: each is an extent of its own. */
        if (!x || x->entry != w->entry || x->offset != w->offset) {
            if (x && x->shard == w->shard && w->offset < x->offset + x->size) {
                const trestle_checkpoint *c = b->c;
                return trestle__error_set(
                    err, TRESTLE_E_CORRUPT, 0, c->entries[w->entry].key,
                    c->shard_paths ? c->shard_paths[w->shard] : NULL, (int64_t)w->offset,
                    (int64_t)w->size, "tensors %s and %s share bytes at offset %" PRIu64
                    " of data shard %d", c->entries[x->entry].key, c->entries[w->entry].key,
                    w->offset, w->shard);
            }
            x = &p->extents[p->num_extents++];
            *x = (trestle__extent){
                .entry = w->entry,
                .shard = w->shard,
                .offset = w->offset,
                .size = w->size,
                .crc_masked = w->crc_masked,
                .is_string = w->is_string,
                .partial = w->partial,
                .after = w->after,
                .share = w->share,
                .first_piece = p->num_pieces,
            };
        }
        p->pieces[p->num_pieces++] = (trestle__piece){ w->op, w->region, w->dst_offset };
        x->num_pieces++;
    }
    return TRESTLE_OK;
}

/* Coalesce sorted extents: a new batch at a shard change, a gap over
 * max_gap_bytes, or when the batch would pass max_batch_bytes. */
int trestle__plan_pieces_batches(builder *b, trestle_error *err)
{
    trestle_plan *p = b->p;
    p->batches = malloc((p->num_extents ? p->num_extents : 1) * sizeof *p->batches);
    if (!p->batches)
        return trestle__error_simple(err, TRESTLE_E_NOMEM, "out of memory");
    for (size_t i = 0; i < p->num_extents; i++) {
        const trestle__extent *x = &p->extents[i];
        trestle__batch *t = p->num_batches ? &p->batches[p->num_batches - 1] : NULL;
        /* Extents lie inside their shard (checked at open): ends cannot wrap. */
        uint64_t end = x->offset + x->size;
        if (t && t->shard == x->shard && x->offset - (t->offset + t->length) <= b->o.max_gap_bytes &&
            end - t->offset <= b->o.max_batch_bytes) {
            t->length = end - t->offset;
            t->num_extents++;
            continue;
        }
        p->batches[p->num_batches++] = (trestle__batch){ x->shard, x->offset, x->size, i, 1 };
    }
    return TRESTLE_OK;
}
