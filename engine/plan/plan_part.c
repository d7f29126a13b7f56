/*
 * plan_part.c - parts of a built plan, for groups of processes that share
 * one restore (include/trestle_mpi.h, engine/group/): the extents a plan
 * reads, the destination byte runs each one produces, restricting a plan
 * to a consecutive range of extents so that a process reads, checks and
 * copies only its part, and leaving an op's bytes to the caller
 * (trestle_plan_drop_op_reads()) when another process reads them.
 *
 * Sits beside engine/plan/plan.c (accessors of a built plan) and knows nothing
 * of groups or MPI: a group splits extents by rank with these calls before
 * the pipeline starts, and moves the runs' bytes itself afterwards. The
 * pipeline sees an ordinary plan that happens to read less.
 */
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "plan.h"

const trestle_checkpoint *trestle_plan_checkpoint(const trestle_plan *p)
{
    return p ? p->ckpt : NULL;
}

size_t trestle_plan_extent_count(const trestle_plan *p) { return p ? p->num_extents : 0; }

int trestle_plan_get_extent(const trestle_plan *p, size_t i, trestle_plan_extent_info *out)
{
    if (!p || !out || i >= p->num_extents)
        return TRESTLE_E_INVALID_ARG;
    const trestle__extent *x = &p->extents[i];
    out->shard = x->shard;
    out->offset = x->offset;
    out->size = x->size;
    /* Slice parts are stored under binary keys: name the op's tensor. */
    out->key = x->num_pieces ? p->ops[p->pieces[x->first_piece].op].key : NULL;
    if (!out->key)
        out->key = p->ckpt->entries[x->entry].key;
    return TRESTLE_OK;
}

/* ---- destination runs ---- */

/* Runs are merged while they continue one another, so a slice that is
 * whole along its inner dims gives one run, not one per row. */
typedef struct run_walk {
    trestle_run_fn fn;
    void *user;
    size_t op;
    uint64_t offset, length;    /* the run not yet given to fn (length 0: none) */
} run_walk;

static int flush(run_walk *w)
{
    int rc = w->length ? w->fn(w->user, w->op, w->offset, w->length) : 0;
    w->length = 0;
    return rc;
}

static int emit(run_walk *w, size_t op, uint64_t offset, uint64_t length)
{
    if (length == 0)
        return 0;
    if (w->length && w->op == op && w->offset + w->length == offset) {
        w->length += length;
        return 0;
    }
    int rc = flush(w);
    w->op = op;
    w->offset = offset;
    w->length = length;
    return rc;
}

/* The rows of region r's cut inside its op's row-major destination block. */
static int region_runs(run_walk *w, size_t op, const trestle__region *r)
{
    const trestle__slice *dst = &r->dst, *cut = &r->cut;
    int rank = cut->rank;
    uint64_t stride[TRESTLE_MAX_SLICE_RANK];
    int64_t idx[TRESTLE_MAX_SLICE_RANK] = { 0 };

    if (rank == 0)
        return emit(w, op, 0, r->elem_size);
    for (int d = 0; d < rank; d++)
        if (cut->length[d] <= 0)
            return 0;
    /* The plan checked these products when it sized the destination. */
    stride[rank - 1] = r->elem_size;
    for (int d = rank - 2; d >= 0; d--)
        stride[d] = stride[d + 1] * (uint64_t)dst->length[d + 1];
    uint64_t row = (uint64_t)cut->length[rank - 1] * r->elem_size;
    for (;;) {
        uint64_t off = 0;
        for (int d = 0; d < rank; d++)
            off += (uint64_t)(cut->start[d] + (d < rank - 1 ? idx[d] : 0) - dst->start[d]) *
                   stride[d];
        int rc = emit(w, op, off, row);
        if (rc)
            return rc;
        int d = rank - 2;
        while (d >= 0 && ++idx[d] == cut->length[d])
            idx[d--] = 0;
        if (d < 0)
            return 0;
    }
}

int trestle_plan_extent_runs(const trestle_plan *p, size_t i, trestle_run_fn fn, void *user)
{
    if (!p || !fn || i >= p->num_extents)
        return TRESTLE_E_INVALID_ARG;
    const trestle__extent *x = &p->extents[i];
    run_walk w = { .fn = fn, .user = user };
    for (size_t k = 0; k < x->num_pieces; k++) {
        const trestle__piece *pc = &p->pieces[x->first_piece + k];
        const trestle__plan_op *op = &p->ops[pc->op];
        int rc;
        if (op->dest_kind == TRESTLE_DEST_DISCARD)
            continue;
        if (pc->region == TRESTLE__NO_REGION) {
            /* plan.h: a verbatim piece is the extent's elements in out_dtype
             * (strings, src_es 0, move as stored). */
            uint64_t n = op->src_es ? x->size / op->src_es * op->dst_es : x->size;
            rc = emit(&w, pc->op, pc->dst_offset, n);
        } else {
            rc = region_runs(&w, pc->op, &p->regions[pc->region]);
        }
        if (rc)
            return rc;
    }
    return flush(&w);
}

/* ---- keeping a range of extents ---- */

int trestle_plan_keep_extents(trestle_plan *p, size_t first, size_t end, trestle_error *err)
{
    trestle_error_clear(err);
    if (!p)
        return trestle__error_simple(err, TRESTLE_E_INVALID_ARG, "NULL plan");
    if (first > end || end > p->num_extents)
        return trestle__error_simple(err, TRESTLE_E_INVALID_ARG,
                                     "extents [%zu, %zu) are not a range of the plan's %zu",
                                     first, end, p->num_extents);
    /* A part's CRC share is the XOR over all of its runs: a plan that kept
     * some of them would hand out shares that can never combine. */
    if (p->num_shares > 0)
        return trestle__error_simple(err, TRESTLE_E_INVALID_ARG,
                                     "a plan with partial reads (%zu tensors whose CRC32C the "
                                     "parts check together) cannot be kept to a range of "
                                     "extents: restore it whole on each rank", p->num_shares);
    /* Pieces are grouped by extent in extent order (plan.h), so the kept
     * extents' pieces are one run of the array. */
    size_t pfirst = first < end ? p->extents[first].first_piece : 0;
    size_t pend = first < end ? p->extents[end - 1].first_piece + p->extents[end - 1].num_pieces
                              : 0;
    memmove(p->pieces, p->pieces + pfirst, (pend - pfirst) * sizeof *p->pieces);
    p->num_pieces = pend - pfirst;
    memmove(p->extents, p->extents + first, (end - first) * sizeof *p->extents);
    p->num_extents = end - first;
    for (size_t e = 0; e < p->num_extents; e++)
        p->extents[e].first_piece -= pfirst;
    for (size_t i = 0; i < p->num_ops; i++)
        p->ops[i].num_pieces = 0;
    for (size_t k = 0; k < p->num_pieces; k++)
        p->ops[p->pieces[k].op].num_pieces++;

    /* Batches cover whole extents: keep those that meet the range, cut to it. */
    size_t nb = 0;
    for (size_t b = 0; b < p->num_batches; b++) {
        trestle__batch t = p->batches[b];
        size_t lo = t.first_extent > first ? t.first_extent : first;
        size_t hi = t.first_extent + t.num_extents < end ? t.first_extent + t.num_extents : end;
        if (lo >= hi)
            continue;
        const trestle__extent *a = &p->extents[lo - first], *z = &p->extents[hi - 1 - first];
        p->batches[nb++] = (trestle__batch){ t.shard, a->offset, z->offset + z->size - a->offset,
                                             lo - first, hi - lo };
    }
    p->num_batches = nb;
    trestle__plan_fill_stats(p);
    return TRESTLE_OK;
}

/* ---- leaving an op's bytes to someone else ---- */

int trestle_plan_drop_op_reads(trestle_plan *p, size_t i, trestle_error *err)
{
    trestle_error_clear(err);
    if (!p || i >= p->num_ops)
        return trestle__error_simple(err, TRESTLE_E_INVALID_ARG, "%s",
                                     p ? "op index out of range" : "NULL plan");
    const trestle__plan_op *op = &p->ops[i];
    if (op->skipped)
        return trestle__error_set(err, TRESTLE_E_INVALID_ARG, 0, op->name, NULL, -1, -1,
                                  "op '%s' is skipped: it reads nothing", op->name);
    /* Its runs fold into a CRC share that the other parts' shares expect. */
    for (size_t s = 0; s < p->num_shares; s++)
        if (p->shares[s].op == i)
            return trestle__error_set(err, TRESTLE_E_INVALID_ARG, 0, op->name, NULL, -1, -1,
                                      "op '%s' reads a part of its tensor under partial_reads: "
                                      "its CRC share needs every one of its runs", op->name);
    /* Drop its pieces, then the extents nothing else needs; pieces stay
     * grouped by extent in extent order (plan.h). */
    size_t np = 0, nx = 0, *renumber = malloc((p->num_extents ? p->num_extents : 1) *
                                              sizeof *renumber);
    if (!renumber)
        return trestle__error_simple(err, TRESTLE_E_NOMEM, "out of memory");
    for (size_t e = 0; e < p->num_extents; e++) {
        trestle__extent x = p->extents[e];
        size_t first = np;
        for (size_t k = 0; k < x.num_pieces; k++)
            if (p->pieces[x.first_piece + k].op != i)
                p->pieces[np++] = p->pieces[x.first_piece + k];
        renumber[e] = SIZE_MAX;
        if (np == first && x.num_pieces > 0)
            continue; /* only op i read it */
        x.first_piece = first;
        x.num_pieces = np - first;
        renumber[e] = nx;
        p->extents[nx++] = x;
    }
    p->num_pieces = np;
    /* A batch loses the extents dropped from it and splits where they were,
     * so their bytes are not read through as a gap. The pieces left keep
     * every gap they had, so each part still meets the batching rules. */
    size_t nb = 0, cap = p->num_batches + p->num_extents;
    trestle__batch *batches = malloc((cap ? cap : 1) * sizeof *batches);
    if (!batches) {
        free(renumber);
        return trestle__error_simple(err, TRESTLE_E_NOMEM, "out of memory");
    }
    for (size_t b = 0; b < p->num_batches; b++) {
        const trestle__batch *t = &p->batches[b];
        trestle__batch *cur = NULL;
        for (size_t e = t->first_extent; e < t->first_extent + t->num_extents; e++) {
            if (renumber[e] == SIZE_MAX) {
                cur = NULL;
                continue;
            }
            const trestle__extent *x = &p->extents[renumber[e]];
            if (!cur) {
                cur = &batches[nb++];
                *cur = (trestle__batch){ t->shard, x->offset, 0, renumber[e], 0 };
            }
            cur->length = x->offset + x->size - cur->offset;
            cur->num_extents++;
        }
    }
    free(renumber);
    free(p->batches);
    p->batches = batches;
    p->num_batches = nb;
    p->num_extents = nx;
    p->ops[i].num_pieces = 0;
    trestle__plan_fill_stats(p);
    return TRESTLE_OK;
}
