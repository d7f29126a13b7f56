/*
 * plan_ops.c - the first half of planning: the caller's op list becomes
 * resolved ops. Each op gets its name, destination kind and listed entry
 * (through the exclusions and renames of engine/plan/plan_names.c); then, in
 * TensorFlow's order, every missing key, every dtype mismatch and every
 * target dtype that cannot be converted is reported at once.
 *
 * Called by engine/plan/plan_create.c only; engine/plan/plan_pieces.c takes the resolved
 * ops from here. Owns nothing beyond the op names it copies into the plan.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt_entry.h"
#include "error.h"
#include "plan.h"
#include "plan_build.h"
#include "plan_names.h"
#include "slice.h"
#include "trestle_kernels.h"

#define TRAILER_RESERVE 48                    /* room for "\n... and N more ..." */

/*
 * The entry at `hint` if it is the one `name` names: ops that list keys in
 * key order (convert's, Python's, a graph's) then resolve in one
 * comparison each, not a binary search of the index each (issue 24). Not
 * with rename rules, which may change what a name looks up.
 */
static bool resolve_at(const builder *b, const char *name, size_t name_len, size_t hint,
                       size_t *entry)
{
    if (b->o.num_renames || hint >= b->c->num_entries)
        return false;
    const trestle__entry *e = &b->c->entries[hint];
    if (e->kind == TRESTLE__ENTRY_SLICE_PART ||
        (e->key != name && (e->key_len != name_len || memcmp(e->key, name, name_len) != 0)))
        return false;
    *entry = hint;
    return true;
}

/*
 * Copy each op's name and destination kind, apply exclusions and resolve
 * the rest to listed entries. With ops == NULL every listed tensor is an
 * op under its own key. Missing keys are only recorded here.
 */
int trestle__plan_ops_resolve(builder *b, const trestle_op *ops, trestle_error *err)
{
    size_t hint = 0; /* the entry after the last op's */
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
        op->entry = TRESTLE__NOT_LISTED;
        if (b->o.num_excludes && trestle__plan_excluded(&b->o, name)) {
            op->skipped = 1;
        } else if (!ops) {
            op->entry = trestle__listed_index(b->c, i);
        } else if (!resolve_at(b, name, name_len, hint, &op->entry)) {
            int rc = trestle__plan_resolve(b->c, &b->o, name, &op->entry, &b->lookup[i], err);
            if (rc != TRESTLE_OK)
                return rc;
            /* The key after renames matters only to the missing-key report. */
            if (op->entry != TRESTLE__NOT_LISTED) {
                free(b->lookup[i]);
                b->lookup[i] = NULL;
            }
        }
        /* An op named by a key of the checkpoint, that very string (every
         * tensor's ops; a caller such as convert that passes the keys it
         * listed), keeps pointing at it: the checkpoint outlives the plan.
         * Any other name is copied. */
        if (!ops || (op->entry != TRESTLE__NOT_LISTED && name == b->c->entries[op->entry].key))
            op->name = (char *)name;
        else if (!(op->name = trestle__slab_strndup(&b->p->slab, name, name_len)))
            return trestle__error_simple(err, TRESTLE_E_NOMEM, "out of memory");
        if (op->entry != TRESTLE__NOT_LISTED)
            hint = op->entry + 1;
        if (op->skipped)
            continue;
        /* A DT_VARIANT (e.g. a tf.data iterator state) is skipped only when
         * asked: otherwise trestle__plan_check_unsupported() names every one. */
        if (op->entry != TRESTLE__NOT_LISTED && b->o.skip_unsupported &&
            b->c->entries[op->entry].dtype == TRESTLE_DT_VARIANT) {
            op->skipped = TRESTLE_SKIP_UNSUPPORTED;
            op->entry = TRESTLE__NOT_LISTED;
            continue;
        }
        if (op->entry != TRESTLE__NOT_LISTED) {
            op->key = b->c->entries[op->entry].key;
            op->dtype = b->c->entries[op->entry].dtype;
            op->out_dtype = op->dtype; /* trestle__plan_ops_check_conversions() may change it */
            b->variants += op->dtype == TRESTLE_DT_VARIANT;
        } else {
            b->missing++;
        }
    }
    return TRESTLE_OK;
}

/* Every missing key at once: skipped with allow_missing, else the report. */
int trestle__plan_ops_check_missing(builder *b, const trestle_op *ops, trestle_error *err)
{
    size_t m = 0;
    if (b->missing == 0)
        return TRESTLE_OK;
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
    trestle__missing *miss = malloc(m * sizeof *miss);
    if (!miss)
        return trestle__error_simple(err, TRESTLE_E_NOMEM, "out of memory");
    m = 0;
    for (size_t i = 0; i < b->p->num_ops; i++)
        if (!b->p->ops[i].skipped && b->p->ops[i].entry == TRESTLE__NOT_LISTED)
            miss[m++] = (trestle__missing){ b->lookup[i], ops[i].dtype, ops[i].shape_and_slices,
                                            b->o.op_shapes ? &b->o.op_shapes[i] : NULL };
    int rc = trestle__plan_report_missing(b->c, miss, m, err);
    free(miss);
    return rc;
}

/*
 * Append line `j` of `m` to the report in msg (*len bytes used), one line
 * each, so that "\n... and N more <what>" still fits after it. Returns 1
 * when the line did not fit and the trailer was written instead (stop),
 * else 0.
 */
static int report_add(char *msg, size_t cap, size_t *len, const char *line, size_t j, size_t m,
                      const char *what)
{
    size_t n = strlen(line);
    size_t reserve = j + 1 < m ? TRAILER_RESERVE : 0;
    if (j > 0 && *len + 1 + n + reserve >= cap) {
        snprintf(msg + *len, cap - *len, "\n... and %zu more %s", m - j, what);
        return 1;
    }
    *len += (size_t)snprintf(msg + *len, cap - *len, "%s%s", j ? "\n" : "", line);
    if (*len >= cap)
        *len = cap - 1;
    return 0;
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
int trestle__plan_ops_check_dtypes(builder *b, const trestle_op *ops, trestle_error *err)
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
        snprintf(line, sizeof line,
                 "tensor_name = %s; expected dtype %s does not equal original dtype %s",
                 bad[j].key, trestle_dtype_name(ops[bad[j].op].dtype),
                 trestle_dtype_name(b->p->ops[bad[j].op].dtype));
        if (report_add(msg, sizeof msg, &len, line, j, m, "dtype mismatches"))
            break;
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
int trestle__plan_ops_check_conversions(builder *b, const trestle_op *ops, trestle_error *err)
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
        snprintf(line, sizeof line,
                 "tensor '%s': cannot convert %s to %s on load (supported: %s)", op->key,
                 conversion_name(op->dtype), conversion_name(target), supported);
        if (report_add(msg, sizeof msg, &len, line, j, m, "unsupported conversions"))
            break;
        j++;
    }
    return trestle__error_set(err, TRESTLE_E_DTYPE_MISMATCH, 0, b->p->ops[first].key, NULL, -1,
                              -1, "%s", msg);
}

/* The shape op `i` restores before any shard rule splits it: the whole
 * stored tensor's, or its slice's. 0 with *rank and dims filled, or -1
 * when its spec does not parse (trestle__plan_pieces_add() said why). */
static int restored_shape(const builder *b, size_t i, const trestle_op *given, int *rank,
                          const int64_t **dims, int64_t *buf, char *slice, size_t cap)
{
    const trestle__entry *e = &b->c->entries[b->p->ops[i].entry];
    trestle__spec spec;
    int64_t start[TRESTLE_MAX_SLICE_RANK];
    slice[0] = '\0';
    if (trestle__spec_parse(given->shape_and_slices, &spec, NULL) != TRESTLE_OK)
        return -1;
    if (spec.whole) {
        *rank = e->rank;
        *dims = e->dims;
        return 0;
    }
    trestle__slice_resolve(&spec.slice, spec.shape, start, buf);
    trestle__slice_format(&spec.slice, slice, cap);
    *rank = spec.rank;
    *dims = buf;
    return 0;
}

/*
 * TensorFlow restores a variable by assigning it the restored tensor, and
 * Assign requires both shapes to match. Given the variables' declared
 * shapes (plan option op_shapes: a graph's, known only to the caller),
 * every op whose restored shape differs is reported at once, in op order,
 * one line each naming the key (and the op, when renamed), the shape the
 * checkpoint gives and the declared one. Runs after the RestoreV2-level
 * checks, as the Assign runs after the restore.
 */
int trestle__plan_ops_check_declared(builder *b, const trestle_op *ops, trestle_error *err)
{
    char msg[TRESTLE_ERROR_MESSAGE_MAX], line[TRESTLE_ERROR_MESSAGE_MAX];
    char have[512], declared[512], slice[256], where[320], named[300];
    int64_t buf[TRESTLE_MAX_SLICE_RANK];
    size_t m = 0, len = 0, first = 0;

    if (!ops || !b->o.op_shapes)
        return TRESTLE_OK;
    msg[0] = '\0';
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0, j = 0; i < b->p->num_ops; i++) {
            const trestle__plan_op *op = &b->p->ops[i];
            const trestle_shape *sh = &b->o.op_shapes[i];
            const int64_t *dims;
            int rank;
            if (op->skipped || sh->rank < 0 || (sh->rank > 0 && !sh->dims) ||
                restored_shape(b, i, &ops[i], &rank, &dims, buf, slice, sizeof slice) != 0 ||
                (rank == sh->rank &&
                 (rank == 0 || memcmp(dims, sh->dims, (size_t)rank * sizeof *dims) == 0)))
                continue;
            if (pass == 0) {
                first = m++ == 0 ? i : first;
                continue;
            }
            trestle__shape_format(rank, dims, have, sizeof have);
            trestle__shape_format(sh->rank, sh->dims, declared, sizeof declared);
            if (slice[0])
                snprintf(where, sizeof where, "shape of slice %s", slice);
            else
                snprintf(where, sizeof where, "shape in checkpoint");
            named[0] = '\0';
            if (strcmp(op->name, op->key) != 0)
                snprintf(named, sizeof named, " (op %s)", op->name);
            /* A line cut short still names the tensor first. */
            if (snprintf(line, sizeof line,
                         "tensor_name = %s%s; %s %s does not match the declared shape %s of its "
                         "variable (Assign requires shapes of both tensors to match)",
                         op->key, named, where, have, declared) < 0)
                line[0] = '\0';
            if (report_add(msg, sizeof msg, &len, line, j++, m, "declared-shape mismatches"))
                break;
        }
        if (m == 0)
            return TRESTLE_OK;
    }
    return trestle__error_set(err, TRESTLE_E_SHAPE_MISMATCH, 0, b->p->ops[first].key,
                              b->c->index_path, -1, -1, "%s", msg);
}
