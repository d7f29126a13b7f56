/*
 * plan.c - the restore planner: an op list (TensorFlow RestoreV2's names,
 * shape_and_slices and dtypes, plus destinations) becomes a plan of
 * resolved ops, deduplicated stored extents, the pieces that copy each
 * extent into its ops, and the coalesced reads (batches) the pipeline
 * issues.
 *
 * Sits between the checkpoint (engine/checkpoint.h, already validated, so
 * stored numbers are trusted here) and the pipeline (engine/restore.c),
 * which relies on the invariants listed in engine/plan.h. Names (renames,
 * exclusions, the missing-key report) live in engine/plan_names.c.
 *
 * Checks run in TensorFlow's order: every missing key, then every dtype
 * mismatch, then (trestle's own) every target dtype the stored one cannot
 * be converted to, then op by op (in the caller's order) whether the dtype
 * can be restored at all, its shape_and_slices, the shape, the destination
 * and the stored slices. Nothing is read from the shard files; the plan owns
 * its arrays, op names, output shapes and any engine-allocated destinations.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checked.h"
#include "copy.h"
#include "error.h"
#include "plan.h"
#include "plan_names.h"
#include "trestle_kernels.h"

#define DEFAULT_MAX_BATCH_BYTES (16ull << 20) /* one big read, still a small staging share */
#define DEFAULT_MAX_GAP_BYTES (64ull << 10)   /* reading a hole is cheaper than a new request */
#define TRAILER_RESERVE 48                    /* room for "\n... and N more ..." */

void trestle_plan_options_init(trestle_plan_options *opt)
{
    memset(opt, 0, sizeof *opt);
    opt->size = sizeof *opt;
    opt->max_batch_bytes = DEFAULT_MAX_BATCH_BYTES;
    opt->max_gap_bytes = DEFAULT_MAX_GAP_BYTES;
}

/* "Entry E feeds op O": one future piece, before extents are deduplicated. */
typedef struct want {
    int shard;              /* entry's shard, copied so sorting needs no context */
    uint64_t offset, size;  /* entry's bytes in that shard */
    size_t entry;           /* stored entry read */
    size_t op;              /* op fed */
    uint32_t region;        /* region index or TRESTLE__NO_REGION */
    uint64_t dst_offset;    /* verbatim copies: offset in the destination */
    size_t seq;             /* creation order: pieces of an extent stay in op order */
} want;

/* Planner state; only `p` escapes, and only on success. */
typedef struct builder {
    const trestle_checkpoint *c;
    trestle_plan_options o;  /* caller's options over the defaults */
    trestle_plan *p;
    char **lookup;           /* per op: key after renames (malloc'd), NULL unless resolved */
    want *wants;
    size_t n_wants, cap_wants;
    size_t cap_regions;
} builder;

/* Options as the caller's `size` allows, over the defaults. */
static int read_options(const trestle_plan_options *opt, trestle_plan_options *o,
                        trestle_error *err)
{
    trestle_plan_options_init(o);
    if (!opt)
        return TRESTLE_OK;
    if (opt->size < sizeof opt->size)
        return trestle__error_simple(err, TRESTLE_E_INVALID_ARG,
                                     "plan options size %zu is too small; call "
                                     "trestle_plan_options_init() first", opt->size);
    /* A newer caller's struct may be larger: its extra fields are unknown here. */
    memcpy(o, opt, opt->size < sizeof *o ? opt->size : sizeof *o);
    o->size = sizeof *o;
    for (size_t i = 0; i < sizeof o->reserved / sizeof o->reserved[0]; i++)
        if (o->reserved[i])
            return trestle__error_simple(err, TRESTLE_E_INVALID_ARG,
                                         "plan options reserved[%zu] is not zero", i);
    return TRESTLE_OK;
}

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

/* ---- names, missing keys, dtypes ---- */

/*
 * Copy each op's name and destination kind, apply exclusions and resolve
 * the rest to listed entries. With ops == NULL every listed tensor is an
 * op under its own key. Missing keys are only recorded here.
 */
static int resolve_ops(builder *b, const trestle_op *ops, trestle_error *err)
{
    for (size_t i = 0; i < b->p->num_ops; i++) {
        trestle__plan_op *op = &b->p->ops[i];
        const char *name;
        size_t name_len;
        op->device = -1; /* set by each restore */
        if (ops) {
            name = ops[i].name;
            if (!name)
                return trestle__error_simple(err, TRESTLE_E_INVALID_ARG, "op %zu has no name", i);
            if (ops[i].dest_kind < TRESTLE_DEST_ALLOCATE || ops[i].dest_kind > TRESTLE_DEST_DISCARD)
                return trestle__error_set(err, TRESTLE_E_INVALID_ARG, 0, name, NULL, -1, -1,
                                          "op %zu (%s) has unknown destination kind %d", i, name,
                                          ops[i].dest_kind);
            name_len = strlen(name);
            op->dest_kind = ops[i].dest_kind;
        } else {
            const trestle__entry *e = trestle__listed(b->c, i);
            name = e->key;
            name_len = e->key_len;
            op->dest_kind = TRESTLE_DEST_ALLOCATE;
        }
        op->name = malloc(name_len + 1);
        if (!op->name)
            return trestle__error_simple(err, TRESTLE_E_NOMEM, "out of memory");
        memcpy(op->name, name, name_len);
        op->name[name_len] = '\0';
        op->entry = TRESTLE__NOT_LISTED;
        if (trestle__plan_excluded(&b->o, op->name)) {
            op->skipped = 1;
            continue;
        }
        if (!ops) {
            op->entry = b->c->listed[i];
        } else {
            int rc = trestle__plan_resolve(b->c, &b->o, name, &op->entry, &b->lookup[i], err);
            if (rc != TRESTLE_OK)
                return rc;
        }
        /* A DT_VARIANT (e.g. a tf.data iterator state) is skipped only when
         * asked: otherwise check_unsupported() names every one. */
        if (op->entry != TRESTLE__NOT_LISTED && b->o.skip_unsupported &&
            b->c->entries[op->entry].dtype == TRESTLE_DT_VARIANT) {
            op->skipped = TRESTLE_SKIP_UNSUPPORTED;
            op->entry = TRESTLE__NOT_LISTED;
            continue;
        }
        if (op->entry != TRESTLE__NOT_LISTED) {
            op->key = b->c->entries[op->entry].key;
            op->dtype = b->c->entries[op->entry].dtype;
            op->out_dtype = op->dtype; /* check_conversions() may change it */
        }
    }
    return TRESTLE_OK;
}

/* Every missing key at once: skipped with allow_missing, else the report. */
static int check_missing(builder *b, trestle_error *err)
{
    size_t m = 0;
    for (size_t i = 0; i < b->p->num_ops; i++)
        if (!b->p->ops[i].skipped && b->p->ops[i].entry == TRESTLE__NOT_LISTED)
            m++;
    if (m == 0)
        return TRESTLE_OK;
    if (b->o.allow_missing) {
        for (size_t i = 0; i < b->p->num_ops; i++)
            if (!b->p->ops[i].skipped && b->p->ops[i].entry == TRESTLE__NOT_LISTED)
                b->p->ops[i].skipped = 2;
        return TRESTLE_OK;
    }
    const char **keys = malloc(m * sizeof *keys);
    if (!keys)
        return trestle__error_simple(err, TRESTLE_E_NOMEM, "out of memory");
    m = 0;
    for (size_t i = 0; i < b->p->num_ops; i++)
        if (!b->p->ops[i].skipped && b->p->ops[i].entry == TRESTLE__NOT_LISTED)
            keys[m++] = b->lookup[i];
    int rc = trestle__plan_report_missing(b->c, keys, m, err);
    free(keys);
    return rc;
}

typedef struct mismatch {
    const char *key; /* checkpoint key, the name TF's message uses */
    size_t op;
} mismatch;

static int compare_mismatch(const void *a, const void *b)
{
    const mismatch *x = a, *y = b;
    int r = strcmp(x->key, y->key);
    return r ? r : (x->op > y->op) - (x->op < y->op);
}

/* All dtype mismatches in one TRESTLE_E_DTYPE_MISMATCH, sorted by key as
 * TF checks them, one TF-worded line each. */
static int check_dtypes(builder *b, const trestle_op *ops, trestle_error *err)
{
    char msg[TRESTLE_ERROR_MESSAGE_MAX], line[TRESTLE_ERROR_MESSAGE_MAX];
    size_t m = 0, len = 0;

    if (!ops)
        return TRESTLE_OK;
    mismatch *bad = malloc((b->p->num_ops ? b->p->num_ops : 1) * sizeof *bad);
    if (!bad)
        return trestle__error_simple(err, TRESTLE_E_NOMEM, "out of memory");
    for (size_t i = 0; i < b->p->num_ops; i++) {
        const trestle__plan_op *op = &b->p->ops[i];
        if (!op->skipped && ops[i].dtype != TRESTLE_DT_INVALID && ops[i].dtype != op->dtype)
            bad[m++] = (mismatch){ op->key, i };
    }
    if (m == 0) {
        free(bad);
        return TRESTLE_OK;
    }
    qsort(bad, m, sizeof *bad, compare_mismatch);
    msg[0] = '\0';
    for (size_t j = 0; j < m; j++) {
        size_t n = (size_t)snprintf(line, sizeof line,
                                    "tensor_name = %s; expected dtype %s does not equal original "
                                    "dtype %s", bad[j].key,
                                    trestle_dtype_name(ops[bad[j].op].dtype),
                                    trestle_dtype_name(b->p->ops[bad[j].op].dtype));
        size_t reserve = j + 1 < m ? TRAILER_RESERVE : 0;
        if (j > 0 && len + 1 + n + reserve >= sizeof msg) {
            snprintf(msg + len, sizeof msg - len, "\n... and %zu more dtype mismatches", m - j);
            break;
        }
        len += (size_t)snprintf(msg + len, sizeof msg - len, "%s%s", j ? "\n" : "", line);
        if (len >= sizeof msg)
            len = sizeof msg - 1;
    }
    int rc = trestle__error_set(err, TRESTLE_E_DTYPE_MISMATCH, 0, bad[0].key, b->c->index_path,
                                -1, -1, "%s", msg);
    free(bad);
    return rc;
}

/* A conversion's dtype as the message spells it: numpy's float32/float16
 * (the names --as and the kernels use) rather than TF's float/half. */
static const char *conversion_name(int dtype)
{
    return dtype == TRESTLE_DT_FLOAT ? "float32"
           : dtype == TRESTLE_DT_HALF ? "float16"
                                      : trestle_dtype_name(dtype);
}

/*
 * Record each op's target dtype, and report every one the engine cannot
 * convert its stored dtype to in one TRESTLE_E_DTYPE_MISMATCH, one line
 * per op in the caller's order, each naming the tensor, both dtypes and
 * the conversions there are. A target equal to the stored dtype is no
 * conversion.
 */
static int check_conversions(builder *b, const trestle_op *ops, trestle_error *err)
{
    static const int pairs[][2] = {
        { TRESTLE_DT_FLOAT, TRESTLE_DT_BFLOAT16 }, { TRESTLE_DT_FLOAT, TRESTLE_DT_HALF },
        { TRESTLE_DT_HALF, TRESTLE_DT_FLOAT },     { TRESTLE_DT_BFLOAT16, TRESTLE_DT_FLOAT },
    };
    char supported[256], msg[TRESTLE_ERROR_MESSAGE_MAX], line[TRESTLE_ERROR_MESSAGE_MAX];
    size_t m = 0, len = 0, n = 0, first = 0;

    if (!ops)
        return TRESTLE_OK;
    for (size_t i = 0; i < b->p->num_ops; i++) {
        trestle__plan_op *op = &b->p->ops[i];
        int target = ops[i].target_dtype;
        if (op->skipped || target == TRESTLE_DT_INVALID || target == op->dtype)
            continue;
        if (trestle__convert_supported(target, op->dtype)) {
            op->out_dtype = target;
            op->convert = true;
        } else if (m++ == 0) {
            first = i;
        }
    }
    if (m == 0)
        return TRESTLE_OK;
    /* convert.c alone decides what converts; this table only lists the
     * pairs in the order trestle_kernels.h documents them. */
    supported[0] = '\0';
    for (size_t k = 0; k < sizeof pairs / sizeof pairs[0]; k++)
        if (trestle__convert_supported(pairs[k][1], pairs[k][0]))
            n += (size_t)snprintf(supported + n, sizeof supported - n, "%s%s -> %s",
                                  n ? ", " : "", conversion_name(pairs[k][0]),
                                  conversion_name(pairs[k][1]));
    msg[0] = '\0';
    for (size_t i = first, j = 0; i < b->p->num_ops && j < m; i++) {
        const trestle__plan_op *op = &b->p->ops[i];
        int target = ops[i].target_dtype;
        if (op->skipped || target == TRESTLE_DT_INVALID || target == op->dtype || op->convert)
            continue;
        size_t k = (size_t)snprintf(line, sizeof line,
                                    "tensor '%s': cannot convert %s to %s on load (supported: %s)",
                                    op->key, conversion_name(op->dtype), conversion_name(target),
                                    supported);
        size_t reserve = j + 1 < m ? TRAILER_RESERVE : 0;
        if (j > 0 && len + 1 + k + reserve >= sizeof msg) {
            snprintf(msg + len, sizeof msg - len, "\n... and %zu more unsupported conversions",
                     m - j);
            break;
        }
        len += (size_t)snprintf(msg + len, sizeof msg - len, "%s%s", j ? "\n" : "", line);
        if (len >= sizeof msg)
            len = sizeof msg - 1;
        j++;
    }
    return trestle__error_set(err, TRESTLE_E_DTYPE_MISMATCH, 0, b->p->ops[first].key, NULL, -1,
                              -1, "%s", msg);
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
        want *grown = realloc(b->wants, (size_t)bytes);
        if (!grown)
            return trestle__error_simple(err, TRESTLE_E_NOMEM, "out of memory");
        b->wants = grown;
        b->cap_wants = cap;
    }
    const trestle__entry *e = &b->c->entries[entry];
    b->wants[b->n_wants] = (want){ e->shard, e->offset, e->size, entry, op, region, dst_offset,
                                   b->n_wants };
    b->n_wants++;
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
static int plan_op(builder *b, size_t i, const trestle_op *given, trestle_error *err)
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
    rc = trestle__spec_parse(given ? given->shape_and_slices : NULL, &spec, err);
    if (rc != TRESTLE_OK) {
        trestle__error_set_key(err, op->key);
        trestle__error_prefix(err, "tensor_name = %s", op->key);
        return rc;
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
    op->dims = malloc((op->rank ? (size_t)op->rank : 1) * sizeof *op->dims);
    if (!op->dims)
        return trestle__error_simple(err, TRESTLE_E_NOMEM, "out of memory");
    if (op->whole) {
        memcpy(op->dims, e->dims, (size_t)op->rank * sizeof *op->dims);
    } else {
        trestle__slice out;
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
        if ((!given->ptr && bytes > 0) || given->capacity < bytes)
            return trestle__error_set(err, TRESTLE_E_INVALID_ARG, 0, op->name, NULL, -1,
                                      (int64_t)bytes,
                                      "tensor %s: destination %s%" PRIu64 " bytes, but the "
                                      "restore needs %" PRIu64 " bytes", op->name,
                                      given->ptr ? "holds " : "is NULL with capacity ",
                                      given->capacity, bytes);
        op->dest = given->ptr;
        op->capacity = given->capacity;
    }
    if (bytes == 0)
        return TRESTLE_OK; /* no pieces: ready at once */

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

/* ---- extents and batches ---- */

static int compare_want(const void *a, const void *b)
{
    const want *x = a, *y = b;
    if (x->shard != y->shard)
        return x->shard < y->shard ? -1 : 1;
    if (x->offset != y->offset)
        return x->offset < y->offset ? -1 : 1;
    if (x->entry != y->entry)
        return x->entry < y->entry ? -1 : 1;
    return (x->seq > y->seq) - (x->seq < y->seq);
}

/* One extent per stored entry, sorted by (shard, offset), its pieces after
 * it in op order. Entries sharing bytes cannot be planned: TF's writer
 * never makes them, and the pipeline checks one CRC per extent. */
static int build_extents(builder *b, trestle_error *err)
{
    trestle_plan *p = b->p;
    size_t n = b->n_wants ? b->n_wants : 1;

    if (b->n_wants > 1) /* qsort wants a non-NULL base even for 0 elements */
        qsort(b->wants, b->n_wants, sizeof *b->wants, compare_want);
    p->pieces = malloc(n * sizeof *p->pieces);
    p->extents = malloc(n * sizeof *p->extents);
    if (!p->pieces || !p->extents)
        return trestle__error_simple(err, TRESTLE_E_NOMEM, "out of memory");
    for (size_t i = 0; i < b->n_wants; i++) {
        const want *w = &b->wants[i];
        trestle__extent *x = p->num_extents ? &p->extents[p->num_extents - 1] : NULL;
        if (!x || x->entry != w->entry) {
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
                .crc_masked = b->c->entries[w->entry].crc_masked,
                .is_string = b->c->entries[w->entry].dtype == TRESTLE_DT_STRING,
                .first_piece = p->num_pieces,
            };
        }
        trestle__plan_op *op = &p->ops[w->op];
        if (op->num_pieces == UINT32_MAX)
            return trestle__error_set(err, TRESTLE_E_LIMIT, 0, op->name, NULL, -1, -1,
                                      "tensor %s needs more than %u pieces", op->name, UINT32_MAX);
        op->num_pieces++;
        p->pieces[p->num_pieces++] = (trestle__piece){ w->op, w->region, w->dst_offset };
        x->num_pieces++;
    }
    return TRESTLE_OK;
}

/* Coalesce sorted extents: a new batch at a shard change, a gap over
 * max_gap_bytes, or when the batch would pass max_batch_bytes. */
static int build_batches(builder *b, trestle_error *err)
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

static void fill_stats(trestle_plan *p)
{
    trestle_plan_stats *s = &p->stats;
    memset(s, 0, sizeof *s);
    s->ops = p->num_ops;
    for (size_t i = 0; i < p->num_ops; i++) {
        if (p->ops[i].skipped)
            s->skipped++;
        else
            s->output_bytes += p->ops[i].bytes;
    }
    for (size_t i = 0; i < p->num_batches; i++)
        s->read_bytes += p->batches[i].length;
    s->extents = p->num_extents;
    s->batches = p->num_batches;
}

/* ---- public API ---- */

int trestle_plan_create(const trestle_checkpoint *c, const trestle_op *ops, size_t n,
                        const trestle_plan_options *opt, trestle_plan **out, trestle_error *err)
{
    builder b;
    size_t count = 0;
    int rc = TRESTLE_OK;

    memset(&b, 0, sizeof b);
    trestle_error_clear(err);
    if (!out)
        return trestle__error_simple(err, TRESTLE_E_INVALID_ARG, "NULL output pointer");
    *out = NULL;
    TR_FAIL_IF(!c, err, TRESTLE_E_INVALID_ARG, "NULL checkpoint");
    TR_FAIL_IF(!ops && n > 0, err, TRESTLE_E_INVALID_ARG, "ops is NULL but n is %zu", n);
    TR_FORWARD(read_options(opt, &b.o, err));
    TR_FORWARD(trestle__plan_names_check(&b.o, err));
    b.c = c;

    count = ops ? n : c->num_listed;
    b.p = calloc(1, sizeof *b.p);
    TR_FAIL_IF(!b.p, err, TRESTLE_E_NOMEM, "out of memory");
    b.p->ckpt = c;
    atomic_init(&b.p->cancel, 0);
    /* Zeroed ops free cleanly however far planning gets. */
    b.p->ops = calloc(count ? count : 1, sizeof *b.p->ops);
    b.lookup = calloc(count ? count : 1, sizeof *b.lookup);
    TR_FAIL_IF(!b.p->ops || !b.lookup, err, TRESTLE_E_NOMEM, "out of memory");
    b.p->num_ops = count;

    TR_FORWARD(resolve_ops(&b, ops, err));
    TR_FORWARD(check_missing(&b, err));
    TR_FORWARD(trestle__plan_check_unsupported(c, b.p->ops, count, err));
    TR_FORWARD(check_dtypes(&b, ops, err));
    TR_FORWARD(check_conversions(&b, ops, err));
    for (size_t i = 0; i < count; i++)
        if (!b.p->ops[i].skipped)
            TR_FORWARD(plan_op(&b, i, ops ? &ops[i] : NULL, err));
    TR_FORWARD(build_extents(&b, err));
    TR_FORWARD(build_batches(&b, err));
    /* Shards open when first needed: now, for the ones this plan reads. */
    for (size_t k = 0; k < b.p->num_batches; k++)
        TR_FORWARD(trestle__shard_open(c, b.p->batches[k].shard, NULL, err));
    fill_stats(b.p);
    *out = b.p;
    b.p = NULL;
fail:
    for (size_t i = 0; b.lookup && i < count; i++)
        free(b.lookup[i]);
    free(b.lookup);
    free(b.wants);
    trestle_plan_free(b.p);
    return rc;
}

void trestle_plan_free(trestle_plan *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->num_ops; i++) {
        trestle__plan_op *op = &p->ops[i];
        free(op->name);
        free(op->dims);
    }
    trestle__arena_release(p->arena);
    free(p->ops);
    free(p->extents);
    free(p->pieces);
    free(p->regions);
    free(p->batches);
    free(p);
}

size_t trestle_plan_op_count(const trestle_plan *p) { return p ? p->num_ops : 0; }

int trestle_plan_get_op(const trestle_plan *p, size_t i, trestle_plan_op_info *out)
{
    if (!p || !out || i >= p->num_ops)
        return TRESTLE_E_INVALID_ARG;
    const trestle__plan_op *op = &p->ops[i];
    memset(out, 0, sizeof *out);
    out->name = op->name;
    out->key = op->skipped ? NULL : op->key;
    out->skipped = op->skipped;
    out->dtype = op->dtype;
    out->rank = op->rank;
    out->dims = op->dims;
    out->bytes = op->bytes;
    out->data = op->dest;
    out->out_dtype = op->skipped ? op->dtype : op->out_dtype;
    out->device = op->device;
    return TRESTLE_OK;
}

int trestle_plan_read_op(const trestle_plan *p, size_t i, void *dst, uint64_t cap,
                         trestle_error *err)
{
    trestle_error_clear(err);
    if (!p || !dst || i >= p->num_ops)
        return trestle__error_simple(err, TRESTLE_E_INVALID_ARG, "%s",
                                     !p ? "NULL plan" : !dst ? "NULL destination"
                                        : "op index out of range");
    const trestle__plan_op *op = &p->ops[i];
    if (op->skipped)
        return trestle__error_set(err, TRESTLE_E_INVALID_ARG, 0, op->name, NULL, -1, -1,
                                  "op %zu (%s) is skipped: it has no bytes", i, op->name);
    if (op->bytes > 0 && !op->dest)
        return trestle__error_set(err, TRESTLE_E_INVALID_ARG, 0, op->key, NULL, -1, -1,
                                  "tensor %s: not restored yet", op->name);
    if (cap < op->bytes)
        return trestle__error_set(err, TRESTLE_E_INVALID_ARG, 0, op->key, NULL, -1,
                                  (int64_t)op->bytes, "tensor %s: %" PRIu64 " bytes do not "
                                  "fit in %" PRIu64, op->name, op->bytes, cap);
    if (op->bytes == 0)
        return TRESTLE_OK;
    if (op->device < 0) {
        memcpy(dst, op->dest, (size_t)op->bytes);
        return TRESTLE_OK;
    }
    int rc = trestle__cuda_read(op->device, dst, op->dest, op->bytes, err);
    if (rc != TRESTLE_OK && err) {
        trestle__error_prefix(err, "tensor %s: reading it back", op->name);
        trestle__error_set_key(err, op->key);
        err->length = (int64_t)op->bytes;
    }
    return rc;
}

void trestle_plan_get_stats(const trestle_plan *p, trestle_plan_stats *out)
{
    if (!out)
        return;
    if (!p) {
        memset(out, 0, sizeof *out);
        return;
    }
    *out = p->stats;
}
