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

#include "error.h"
#include "plan.h"
#include "plan_build.h"
#include "plan_names.h"
#include "trestle_kernels.h"

#define TRAILER_RESERVE 48                    /* room for "\n... and N more ..." */

/*
 * Copy each op's name and destination kind, apply exclusions and resolve
 * the rest to listed entries. With ops == NULL every listed tensor is an
 * op under its own key. Missing keys are only recorded here.
 */
int trestle__plan_ops_resolve(builder *b, const trestle_op *ops, trestle_error *err)
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
        op->entry = TRESTLE__NOT_LISTED;
        if (b->o.num_excludes && trestle__plan_excluded(&b->o, name)) {
            op->skipped = 1;
        } else if (!ops) {
            op->entry = trestle__listed_index(b->c, i);
        } else {
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
