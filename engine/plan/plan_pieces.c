/*
 * plan_pieces.c - the second half of planning: each resolved op's
 * shape_and_slices is checked against the stored shape and becomes pieces
 * (a verbatim copy of an extent, or an N-d region of it; partitioned
 * tensors by TF's LookupSlice), then the pieces' entries are deduplicated
 * into sorted extents and coalesced into the batches the pipeline reads.
 *
 * Called by engine/plan/plan_create.c only, after engine/plan/plan_ops.c; what it builds
 * keeps the invariants listed in engine/plan/plan.h. Nothing is read from the
 * shard files: the stored numbers were validated at open.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bulk.h"
#include "checked.h"
#include "error.h"
#include "plan.h"
#include "plan_build.h"
#include "plan_shard.h"

/* TF's TensorShape::DebugString: "[4,5]", "[]" for a scalar. */
static void shape_format(int rank, const int64_t *dims, char *buf, size_t cap)
{
    size_t n = (size_t)snprintf(buf, cap, "[");
    for (int d = 0; d < rank && n < cap; d++)
        n += (size_t)snprintf(buf + n, cap - n, "%s%" PRId64, d ? "," : "", dims[d]);
    if (n < cap)
        snprintf(buf + n, cap - n, "]");
}

/* s with its full (-1) extents resolved against dims; unused dims zeroed. */
static void concrete(const trestle__slice *s, const int64_t *dims, trestle__slice *out)
{
    memset(out, 0, sizeof *out);
    out->rank = s->rank;
    trestle__slice_resolve(s, dims, out->start, out->length);
}

/* ---- per-op slices and pieces ---- */

static int add_want(builder *b, size_t entry, size_t op, uint32_t region, uint64_t dst_offset,
                    trestle_error *err)
{
    if (b->n_wants == b->cap_wants) {
        size_t cap = b->cap_wants ? b->cap_wants * 2 : 64;
        uint64_t bytes;
        if (cap < b->cap_wants || !tr_mul_u64(cap, sizeof *b->wants, &bytes) || bytes > SIZE_MAX)
            return trestle__error_simple(err, TRESTLE_E_NOMEM, "out of memory");
        want *grown = trestle__bulk_realloc(b->wants, cap, sizeof *grown);
        if (!grown)
            return trestle__error_simple(err, TRESTLE_E_NOMEM, "out of memory");
        b->wants = grown;
        b->cap_wants = cap;
    }
    const trestle__entry *e = &b->c->entries[entry];
    trestle__plan_op *o = &b->p->ops[op];
    if (o->num_pieces == UINT32_MAX)
        return trestle__error_set(err, TRESTLE_E_LIMIT, 0, o->name, NULL, -1, -1,
                                  "tensor %s needs more than %u pieces", o->name, UINT32_MAX);
    o->num_pieces++;
    b->wants[b->n_wants] = (want){ .offset = e->offset,
                                   .size = e->size,
                                   .dst_offset = dst_offset,
                                   .entry = entry,
                                   .op = (uint32_t)op,
                                   .region = region,
                                   .crc_masked = e->crc_masked,
                                   .shard = e->shard,
                                   .is_string = e->dtype == TRESTLE_DT_STRING };
    b->n_wants++;
    return TRESTLE_OK;
}

/* ---- partial reads: a part's runs of a plain tensor ---- */

/* Largest number of runs one part may be read as; past it (a tall, thin
 * tensor split along an inner dim) reading the whole is cheaper. */
#define MAX_PART_RUNS (1u << 20)

/*
 * Whether op i (a whole op that rule dimension `dim` narrowed, of a plain
 * entry) reads only its part. The answer must be the same for every
 * shard_rank, since all parts list the same deferred tensors: it depends on
 * the shapes, the world and the options, never on this rank's part.
 * Parts whose runs the batches would coalesce anyway (the gap next to the
 * largest part within max_gap_bytes) gain nothing and read whole.
 */
static bool reads_part(const builder *b, size_t i, const trestle__entry *e, int dim)
{
    int world = b->o.shard_world ? b->o.shard_world : 1;
    size_t es = trestle_dtype_size(e->dtype);
    if (!b->o.partial_reads || world < 2 || !b->entry_refs || b->entry_refs[b->p->ops[i].entry] != 1 ||
        e->kind != TRESTLE__ENTRY_PLAIN || es == 0 || e->size == 0 || dim < 0)
        return false;
    uint64_t outer = 1, inner = es;
    for (int d = 0; d < dim; d++)
        outer *= (uint64_t)e->dims[d]; /* bounded: elements x es == size, checked at open */
    for (int d = dim + 1; d < e->rank; d++)
        inner *= (uint64_t)e->dims[d];
    uint64_t n = (uint64_t)e->dims[dim], biggest = (n + (uint64_t)world - 1) / (uint64_t)world;
    if (outer == 1)
        return true;
    return outer <= MAX_PART_RUNS && (n - biggest) * inner > b->o.max_gap_bytes;
}

/* Register op i's tensor as deferred: its share slot, in op order. */
static int add_share(builder *b, size_t i, size_t *index, trestle_error *err)
{
    trestle_plan *p = b->p;
    if (p->num_shares == b->cap_shares) {
        size_t cap = b->cap_shares ? b->cap_shares * 2 : 16;
        trestle__share *grown = realloc(p->shares, cap * sizeof *grown);
        if (!grown)
            return trestle__error_simple(err, TRESTLE_E_NOMEM, "out of memory");
        p->shares = grown;
        b->cap_shares = cap;
    }
    trestle__share *sh = &p->shares[p->num_shares];
    sh->op = i;
    sh->entry = p->ops[i].entry;
    sh->part = b->o.shard_rank;
    sh->parts = b->o.shard_world ? b->o.shard_world : 1;
    atomic_init(&sh->share, 0);
    *index = p->num_shares++;
    return TRESTLE_OK;
}

/* One run of a part: bytes [pos, pos + len) of the stored tensor, which land
 * at byte `packed` of the part as stored (the part's row-major layout is its
 * runs end to end, so each run is a verbatim piece). */
static int add_run(builder *b, size_t i, uint64_t pos, uint64_t len, uint64_t packed,
                   size_t share, trestle_error *err)
{
    const trestle__plan_op *op = &b->p->ops[i];
    int rc = add_want(b, op->entry, i, TRESTLE__NO_REGION, packed / op->src_es * op->dst_es, err);
    if (rc != TRESTLE_OK)
        return rc;
    want *w = &b->wants[b->n_wants - 1];
    w->offset += pos;
    w->after = w->size - pos - len;
    w->size = len;
    w->partial = true;
    w->share = (uint32_t)share;
    return TRESTLE_OK;
}

/* The runs of op i's part `req` (narrowed along `dim` only): one per index
 * of the dims before `dim`, or one in all when the part spans whole rows. */
static int plan_part_runs(builder *b, size_t i, const trestle__slice *req, int dim, size_t share,
                          trestle_error *err)
{
    const trestle__plan_op *op = &b->p->ops[i];
    const trestle__entry *e = &b->c->entries[op->entry];
    int64_t start[TRESTLE_MAX_SLICE_RANK], length[TRESTLE_MAX_SLICE_RANK];
    uint64_t outer = 1, inner = op->src_es;
    int rc;

    trestle__slice_resolve(req, e->dims, start, length);
    for (int d = 0; d < dim; d++)
        outer *= (uint64_t)e->dims[d];
    for (int d = dim + 1; d < e->rank; d++)
        inner *= (uint64_t)e->dims[d];
    uint64_t row = (uint64_t)e->dims[dim] * inner, run = (uint64_t)length[dim] * inner;
    uint64_t first = (uint64_t)start[dim] * inner;
    if (run == row || outer == 1)
        return add_run(b, i, first, outer * run, 0, share, err);
    for (uint64_t k = 0; k < outer; k++)
        if ((rc = add_run(b, i, k * row + first, run, k * run, share, err)) != TRESTLE_OK)
            return rc;
    return TRESTLE_OK;
}

/* Append a region (src, dst, cut of a tensor shaped like e) for op `op`,
 * in its restored elements (see plan.h); *index receives it. */
static int add_region(builder *b, const trestle__slice *src, const trestle__slice *dst,
                      const trestle__slice *cut, const trestle__entry *e,
                      const trestle__plan_op *op, uint32_t *index, trestle_error *err)
{
    trestle_plan *p = b->p;
    if (p->num_regions >= TRESTLE__NO_REGION - 1)
        return trestle__error_simple(err, TRESTLE_E_LIMIT, "more than %u sliced pieces in one plan",
                                     TRESTLE__NO_REGION - 1);
    if (p->num_regions == b->cap_regions) {
        size_t cap = b->cap_regions ? b->cap_regions * 2 : 16;
        uint64_t bytes;
        if (!tr_mul_u64(cap, sizeof *p->regions, &bytes) || bytes > SIZE_MAX)
            return trestle__error_simple(err, TRESTLE_E_NOMEM, "out of memory");
        trestle__region *grown = realloc(p->regions, (size_t)bytes);
        if (!grown)
            return trestle__error_simple(err, TRESTLE_E_NOMEM, "out of memory");
        p->regions = grown;
        b->cap_regions = cap;
    }
    trestle__region *r = &p->regions[p->num_regions];
    r->src = *src;
    r->dst = *dst;
    r->cut = *cut;
    r->dims = e->dims;
    r->elem_size = op->dst_es;
    *index = (uint32_t)p->num_regions++;
    return TRESTLE_OK;
}

/*
 * Pieces of a partitioned tensor, by TF's LookupSlice (§5.3): a stored
 * slice equal to the request is copied verbatim; otherwise every stored
 * slice meeting the request gives a region piece, and together they must
 * cover all of it. `req` is the request as given (for the message).
 */
static int plan_partitioned(builder *b, size_t i, const trestle__slice *req, trestle_error *err)
{
    trestle__plan_op *op = &b->p->ops[i];
    const trestle__entry *e = &b->c->entries[op->entry];
    trestle__slice dst, src, cut;
    int64_t covered = 0, need = trestle__slice_num_elements(req, e->dims);
    uint32_t region;
    int rc;

    for (int k = 0; k < e->num_slices; k++) {
        if (!trestle__slice_equal(&e->slices[k], req, e->dims))
            continue;
        /* Open checked the part's shape, so its size is the request's
         * stored bytes (elements x src_es: op->bytes counts dst_es). */
        uint64_t size = b->c->entries[e->slice_entries[k]].size;
        if (size / op->src_es != op->bytes / op->dst_es)
            return trestle__error_set(err, TRESTLE_E_CORRUPT, 0, op->key, b->c->index_path, -1,
                                      -1, "partitioned tensor %s: stored slice %d holds %" PRIu64
                                      " bytes, expected %" PRIu64, op->key, k, size,
                                      op->bytes / op->dst_es * op->src_es);
        return add_want(b, e->slice_entries[k], i, TRESTLE__NO_REGION, 0, err);
    }
    concrete(req, e->dims, &dst);
    for (int k = 0; k < e->num_slices; k++) {
        memset(&cut, 0, sizeof cut);
        if (!trestle__slice_intersect(&e->slices[k], req, e->dims, &cut))
            continue;
        /* Stored slices do not overlap (checked at open), so counts add up. */
        if (!tr_add_i64(covered, trestle__slice_num_elements(&cut, e->dims), &covered))
            covered = INT64_MAX;
        concrete(&e->slices[k], e->dims, &src);
        if ((rc = add_region(b, &src, &dst, &cut, e, op, &region, err)) != TRESTLE_OK ||
            (rc = add_want(b, e->slice_entries[k], i, region, 0, err)) != TRESTLE_OK)
            return rc;
    }
    if (covered != need) {
        char spec[1024];
        trestle__slice_format(req, spec, sizeof spec);
        return trestle__error_set(err, TRESTLE_E_INSUFFICIENT_SLICES, 0, op->key,
                                  b->c->index_path, -1, -1,
                                  "Does not have sufficient slices for partitioned tensor %s to "
                                  "restore in slice_spec: %s", op->key, spec);
    }
    return TRESTLE_OK;
}

/*
 * Plan one resolved op: parse its shape_and_slices, check it against the
 * stored shape, fix the output shape and bytes, check the destination and
 * add its pieces. `given` is the caller's op, or NULL for "whole, allocate".
 */
int trestle__plan_pieces_add(builder *b, size_t i, const trestle_op *given, trestle_error *err)
{
    trestle__plan_op *op = &b->p->ops[i];
    const trestle__entry *e = &b->c->entries[op->entry];
    size_t es = trestle_dtype_size(op->out_dtype);
    bool fixed = es > 0;
    trestle__spec spec;
    trestle__slice req;
    char want_shape[512], have_shape[512];
    uint64_t bytes;
    int rc;

    if (e->dtype == TRESTLE_DT_VARIANT || e->dtype == TRESTLE_DT_RESOURCE)
        return trestle__error_set(err, TRESTLE_E_UNSUPPORTED, 0, op->key, NULL, -1, -1,
                                  "tensor %s has dtype %s, which trestle cannot restore", op->key,
                                  trestle_dtype_name(e->dtype));
    /* The common case, every tensor whole and no shard rule: nothing to
     * parse (a spec is some 800 bytes to clear, per op). */
    bool was_whole = true;
    int dim = -1;
    if ((given && given->shape_and_slices && given->shape_and_slices[0]) ||
        b->o.num_shard_rules > 0) {
        rc = trestle__spec_parse(given ? given->shape_and_slices : NULL, &spec, err);
        if (rc != TRESTLE_OK) {
            trestle__error_set_key(err, op->key);
            trestle__error_prefix(err, "tensor_name = %s", op->key);
            return rc;
        }
        /* A tensor-parallel rule is only a narrower spec from here on. */
        was_whole = spec.whole ||
                    (spec.rank == e->rank && e->rank <= TRESTLE_MAX_SLICE_RANK &&
                     !memcmp(spec.shape, e->dims, (size_t)e->rank * sizeof *e->dims) &&
                     trestle__slice_covers_all(&spec.slice, e->dims));
        if ((rc = trestle__plan_shard_apply(&b->o, op->name, op->key, e, &spec, &dim, err)) !=
            TRESTLE_OK)
            return rc;
    } else {
        spec.whole = true;
    }
    op->src_es = trestle_dtype_size(e->dtype);
    op->dst_es = es;
    op->whole = spec.whole;
    if (!spec.whole) {
        bool same = spec.rank == e->rank;
        for (int d = 0; same && d < e->rank; d++)
            same = spec.shape[d] == e->dims[d];
        if (!same) {
            shape_format(spec.rank, spec.shape, want_shape, sizeof want_shape);
            shape_format(e->rank, e->dims, have_shape, sizeof have_shape);
            return trestle__error_set(err, TRESTLE_E_SHAPE_MISMATCH, 0, op->key, NULL, -1, -1,
                                      "tensor_name = %s; shape in shape_and_slice spec %s does "
                                      "not match the shape stored in checkpoint: %s", op->key,
                                      want_shape, have_shape);
        }
        /* A slice covering everything is the whole tensor, laid out as stored. */
        op->whole = trestle__slice_covers_all(&spec.slice, e->dims);
        req = spec.slice;
    } else if (e->kind == TRESTLE__ENTRY_PARTITIONED) {
        if (e->rank > TRESTLE_MAX_SLICE_RANK)
            return trestle__error_set(err, TRESTLE_E_LIMIT, 0, op->key, NULL, -1, -1,
                                      "partitioned tensor %s has rank %d, above %d", op->key,
                                      e->rank, TRESTLE_MAX_SLICE_RANK);
        trestle__slice_full(&req, e->rank);
    }
    /* Strings are variable-size: they can only move whole, byte for byte. */
    if (!fixed && (!op->whole || e->kind == TRESTLE__ENTRY_PARTITIONED))
        return trestle__error_set(err, TRESTLE_E_UNSUPPORTED, 0, op->key, NULL, -1, -1,
                                  "tensor %s: slices of %s tensors are not supported", op->key,
                                  trestle_dtype_name(e->dtype));

    op->rank = op->whole ? e->rank : spec.rank;
    if (op->whole) {
        op->dims = e->dims; /* the checkpoint outlives the plan */
    } else {
        trestle__slice out;
        op->dims = trestle__slab_alloc(&b->p->slab, (size_t)op->rank * sizeof *op->dims + 1,
                                       sizeof *op->dims);
        if (!op->dims)
            return trestle__error_simple(err, TRESTLE_E_NOMEM, "out of memory");
        concrete(&req, e->dims, &out);
        memcpy(op->dims, out.length, (size_t)op->rank * sizeof *op->dims);
    }
    int64_t elements = op->whole ? e->num_elements : trestle__slice_num_elements(&req, e->dims);
    if (!fixed) {
        bytes = e->size; /* strings restore as their stored encoding */
    } else if (elements < 0 || !tr_mul_u64((uint64_t)elements, es, &bytes)) {
        return trestle__error_set(err, TRESTLE_E_CORRUPT, 0, op->key, NULL, -1, -1,
                                  "tensor %s: %" PRId64 " elements of %zu bytes overflow",
                                  op->key, elements, es);
    }
    op->bytes = bytes;

    if (op->dest_kind == TRESTLE_DEST_HOST || op->dest_kind == TRESTLE_DEST_DEVICE) {
        if ((rc = trestle__plan_dest_check(op, given->ptr, given->capacity, err)) != TRESTLE_OK)
            return rc;
        op->dest = given->ptr;
    }
    /* Deferred whatever this part's size, so every part lists the tensor. */
    size_t share = 0;
    bool part = was_whole && reads_part(b, i, e, dim);
    if (part && (rc = add_share(b, i, &share, err)) != TRESTLE_OK)
        return rc;
    if (bytes == 0)
        return TRESTLE_OK; /* no pieces: ready at once */

    if (part)
        return plan_part_runs(b, i, &req, dim, share, err);
    if (e->kind == TRESTLE__ENTRY_PARTITIONED)
        return plan_partitioned(b, i, &req, err);
    if (op->whole)
        return add_want(b, op->entry, i, TRESTLE__NO_REGION, 0, err);
    /* A slice of a plain tensor: the stored extent is the full tensor. */
    trestle__slice full, src, dst;
    uint32_t region;
    trestle__slice_full(&full, e->rank);
    concrete(&full, e->dims, &src);
    concrete(&req, e->dims, &dst);
    if ((rc = add_region(b, &src, &dst, &dst, e, op, &region, err)) != TRESTLE_OK)
        return rc;
    return add_want(b, op->entry, i, region, 0, err);
}
