/*
 * conversion.c - planning a conversion to safetensors: trestle_conversion_
 * create(), and the calls that show and rename what it planned.
 *
 * Where it sits: before writer_safetensors.c. The op list is planned once
 * (no bytes read) to learn what each op restores: its key, stored dtype,
 * shape and bytes, or why it is skipped. On top of that plan go the
 * conversion's own choices, each checked here so that nothing is silently
 * ignored: a blanket target dtype (as_dtype), the tensors to transpose
 * (2-D only), and the names in the file (key rules). Names the file cannot
 * hold are checked when it is written, after any name a program set.
 */
#include <fnmatch.h>
#include <stdlib.h>
#include <string.h>

#include "bulk.h"
#include "checkpoint.h"
#include "conversion.h"
#include "error.h"
#include "key_rules.h"
#include "options.h"

const char *trestle__safetensors_dtype(int dtype)
{
    switch (dtype) {
    case TRESTLE_DT_FLOAT: return "F32";
    case TRESTLE_DT_DOUBLE: return "F64";
    case TRESTLE_DT_HALF: return "F16";
    case TRESTLE_DT_BFLOAT16: return "BF16";
    case TRESTLE_DT_FLOAT8_E4M3FN: return "F8_E4M3";
    case TRESTLE_DT_FLOAT8_E5M2: return "F8_E5M2";
    case TRESTLE_DT_INT8: return "I8";
    case TRESTLE_DT_UINT8: return "U8";
    case TRESTLE_DT_INT16: return "I16";
    case TRESTLE_DT_UINT16: return "U16";
    case TRESTLE_DT_INT32: return "I32";
    case TRESTLE_DT_UINT32: return "U32";
    case TRESTLE_DT_INT64: return "I64";
    case TRESTLE_DT_UINT64: return "U64";
    case TRESTLE_DT_BOOL: return "BOOL";
    default: return NULL;
    }
}

void trestle_conversion_free(trestle_conversion *cv)
{
    if (!cv)
        return;
    for (size_t i = 0; i < cv->n; i++)
        if (cv->e[i].out_owned)
            free((char *)cv->e[i].out_name);
    trestle__bulk_free(cv->e);
    trestle_plan_free(cv->plan);
    trestle__slab_free(&cv->slab);
    free(cv);
}

/* A string kept in the conversion's slab, or NULL when out of memory. */
static const char *keep(trestle_conversion *cv, const char *s)
{
    return trestle__slab_strndup(&cv->slab, s, strlen(s));
}

/* A shape kept in the conversion's slab, or NULL when out of memory. */
static int64_t *keep_dims(trestle_conversion *cv, const int64_t *dims, int rank)
{
    int64_t *d = trestle__slab_alloc(&cv->slab, (rank > 0 ? (size_t)rank : 1) * sizeof *d,
                                     sizeof *d);
    if (d && rank > 0)
        memcpy(d, dims, (size_t)rank * sizeof *d);
    return d;
}

/*
 * Entry i from op i of the first plan: names, dtypes, shape, bytes. The
 * key is the checkpoint's own string, and so is the name when the op named
 * the tensor by it (every tensor without ops); every tensor's op i is
 * listed tensor i, whose stored shape is the one in the file. The rest is
 * copied.
 */
static int take_op(trestle_conversion *cv, const trestle_plan *p, size_t i, const trestle_op *op,
                   cv_entry *e, trestle_error *err)
{
    trestle_plan_op_info info;
    trestle_plan_get_op(p, i, &info);
    e->skipped = (uint8_t)info.skipped;
    e->dtype = (uint8_t)info.dtype;
    e->out_dtype = (uint8_t)info.out_dtype;
    e->rank = (uint8_t)info.rank;
    e->bytes = info.bytes;
    e->key = info.key;
    e->name = info.key && (info.name == info.key || strcmp(info.name, info.key) == 0)
                  ? info.key
                  : keep(cv, info.name);
    if (op && op->shape_and_slices && op->shape_and_slices[0])
        e->spec = keep(cv, op->shape_and_slices);
    const trestle__entry *stored = op ? NULL : trestle__listed(cv->c, i);
    if (stored && stored->key == info.key && stored->rank == info.rank &&
        (info.rank == 0 ||
         memcmp(stored->dims, info.dims, (size_t)info.rank * sizeof *info.dims) == 0))
        e->dims = stored->dims;
    else
        e->dims = keep_dims(cv, info.dims, info.rank);
    if (!e->name || (op && op->shape_and_slices && op->shape_and_slices[0] && !e->spec) ||
        !e->dims)
        return trestle__error_simple(err, TRESTLE_E_NOMEM, "out of memory");
    return TRESTLE_OK;
}

/*
 * What goes in and in which dtype: string tensors of every-tensor mode
 * are left out (counted); any other dtype safetensors lacks is an error;
 * as_dtype converts what converts, unless the op chose its own target.
 */
static int choose_dtype(cv_entry *e, const trestle_op *op, int as_dtype, size_t *converting,
                        size_t *left_out, trestle_error *err)
{
    if (e->skipped)
        return TRESTLE_OK;
    if (!op && e->dtype == TRESTLE_DT_STRING) {
        e->skipped = TRESTLE_SKIP_NO_SAFETENSORS;
        (*left_out)++;
        return TRESTLE_OK;
    }
    if (as_dtype && !(op && op->target_dtype) && trestle_dtype_can_convert(e->dtype, as_dtype)) {
        e->bytes = e->bytes / trestle_dtype_size(e->out_dtype) * trestle_dtype_size(as_dtype);
        e->out_dtype = as_dtype;
        (*converting)++;
    }
    if (!trestle__safetensors_dtype(e->out_dtype))
        return trestle__error_set(err, TRESTLE_E_UNSUPPORTED, 0, e->name, NULL, -1, -1,
                                  "tensor %s has dtype %s, which safetensors cannot hold",
                                  e->name, trestle_dtype_name(e->out_dtype));
    return TRESTLE_OK;
}

/* A glob with an unclosed '[' would match nothing, silently: refused. */
static int check_glob(const char *what, const char *glob, trestle_error *err)
{
    const char *open = strchr(glob, '[');
    if (open && !strchr(open + 1, ']'))
        return trestle__error_simple(err, TRESTLE_E_INVALID_ARG,
                                     "%s '%s' has an unclosed '['", what, glob);
    return TRESTLE_OK;
}

/* Mark the entries the transpose patterns match; each pattern must match
 * something, and only 2-D tensors transpose. */
static int mark_transposed(trestle_conversion *cv, const char *const *globs, size_t n,
                           trestle_error *err)
{
    if (n && !globs)
        return trestle__error_simple(err, TRESTLE_E_INVALID_ARG,
                                     "transpose is NULL with num_transpose %zu", n);
    for (size_t g = 0; g < n; g++) {
        size_t matched = 0;
        int rc = globs[g] ? check_glob("transpose", globs[g], err)
                          : trestle__error_simple(err, TRESTLE_E_INVALID_ARG,
                                                  "transpose pattern %zu is NULL", g);
        if (rc != TRESTLE_OK)
            return rc;
        for (size_t i = 0; i < cv->n; i++) {
            cv_entry *e = &cv->e[i];
            if (e->skipped || fnmatch(globs[g], e->name, 0) != 0)
                continue;
            matched++;
            if (e->transposed)
                continue;
            if (e->rank != 2)
                return trestle__error_set(
                    err, TRESTLE_E_INVALID_ARG, 0, e->name, NULL, -1, -1,
                    "transpose '%s' matches tensor %s of rank %d; only 2-D tensors transpose "
                    "(narrow the pattern, e.g. '*/kernel')", globs[g], e->name, e->rank);
            const int64_t swapped[2] = { e->dims[1], e->dims[0] };
            if (!(e->dims = keep_dims(cv, swapped, 2)))
                return trestle__error_simple(err, TRESTLE_E_NOMEM, "out of memory");
            e->transposed = 1;
            cv->transposed++;
        }
        if (!matched)
            return trestle__error_simple(err, TRESTLE_E_INVALID_ARG,
                                         "transpose '%s' matches no tensor of the conversion",
                                         globs[g]);
    }
    return TRESTLE_OK;
}

/* Every kept entry's name in the file, by the key rules: the op's name
 * itself (not a copy) where no rule changes it. */
static int name_entries(trestle_conversion *cv, const char *const *rules, size_t n,
                        trestle_error *err)
{
    trestle__key_rules *kr = NULL;
    int rc = trestle__key_rules_parse(rules, n, &kr, err);
    for (size_t i = 0; rc == TRESTLE_OK && i < cv->n; i++) {
        cv_entry *e = &cv->e[i];
        char *named = NULL;
        if (e->skipped)
            continue;
        if (!kr) {
            e->out_name = e->name;
            continue;
        }
        rc = trestle__key_rules_apply(kr, e->name, &named, err);
        if (rc == TRESTLE_OK) {
            e->out_name = strcmp(named, e->name) == 0 ? e->name : keep(cv, named);
            if (!e->out_name)
                rc = trestle__error_simple(err, TRESTLE_E_NOMEM, "out of memory");
        }
        free(named);
    }
    if (rc == TRESTLE_OK)
        rc = trestle__key_rules_check_used(kr, err);
    trestle__key_rules_free(kr);
    return rc;
}

void trestle_convert_options_init(trestle_convert_options *opt)
{
    memset(opt, 0, sizeof *opt);
    opt->size = sizeof *opt;
    opt->sync = 1;
}

int trestle_conversion_create(const trestle_checkpoint *c, const trestle_op *ops, size_t n,
                              const trestle_convert_options *opt, trestle_conversion **out,
                              trestle_error *err)
{
    trestle_convert_options o;
    trestle_plan_options popt;
    trestle_plan *p = NULL;
    trestle_op *plan_ops = NULL;
    trestle_conversion *cv = NULL;
    size_t converting = 0, left_out = 0;
    int rc = TRESTLE_OK;

    if (out)
        *out = NULL;
    TR_FAIL_IF(!c || !out || (!ops && n), err, TRESTLE_E_INVALID_ARG,
               "trestle_conversion_create needs a checkpoint, ops or n = 0, and somewhere to "
               "put the conversion");
    trestle_convert_options_init(&o);
    TR_FORWARD(TRESTLE__OPTIONS_READ(trestle_convert_options, &o, opt,
                                     TRESTLE__CONVERT_OPTIONS_FIRST_SIZE, err));
    trestle_plan_options_init(&popt);
    TR_FORWARD(TRESTLE__OPTIONS_READ(trestle_plan_options, &popt, o.plan,
                                     TRESTLE__PLAN_OPTIONS_FIRST_SIZE, err));
    TR_FAIL_IF(!ops && (popt.num_renames || popt.tf1_rnn_renames), err, TRESTLE_E_INVALID_ARG,
               "renames map op names to checkpoint keys, and without ops every tensor is named "
               "by its key, so they would do nothing; to name the tensors in the file, use "
               "key_rules");
    TR_FAIL_IF(!(cv = calloc(1, sizeof *cv)), err, TRESTLE_E_NOMEM, "out of memory");
    cv->c = c;
    cv->sync = o.sync;
    cv->max_batch_bytes = popt.max_batch_bytes;
    cv->max_gap_bytes = popt.max_gap_bytes;
    trestle_restore_options_init(&cv->ropt);
    TR_FORWARD(TRESTLE__OPTIONS_READ(trestle_restore_options, &cv->ropt, o.restore,
                                     TRESTLE__RESTORE_OPTIONS_FIRST_SIZE, err));

    /* The first plan: what each op restores to, into engine memory it never
     * allocates (the plan is not restored), whatever the caller's dest_kind. */
    if (ops) {
        TR_FAIL_IF(!(plan_ops = calloc(n ? n : 1, sizeof *plan_ops)), err, TRESTLE_E_NOMEM,
                   "out of memory");
        for (size_t i = 0; i < n; i++) {
            plan_ops[i] = ops[i];
            plan_ops[i].dest_kind = TRESTLE_DEST_ALLOCATE;
            plan_ops[i].ptr = NULL;
            plan_ops[i].capacity = 0;
        }
    }
    TR_FORWARD(trestle_plan_create(c, plan_ops, n, &popt, &p, err));
    cv->n = trestle_plan_op_count(p);
    TR_FAIL_IF(!(cv->e = trestle__bulk_calloc(cv->n ? cv->n : 1, sizeof *cv->e)), err,
               TRESTLE_E_NOMEM, "out of memory");
    for (size_t i = 0; i < cv->n; i++) {
        TR_FORWARD(take_op(cv, p, i, ops ? &ops[i] : NULL, &cv->e[i], err));
        TR_FORWARD(choose_dtype(&cv->e[i], ops ? &ops[i] : NULL, o.as_dtype, &converting,
                                &left_out, err));
    }
    if (o.as_dtype && !converting) {
        rc = trestle__error_simple(
            err, TRESTLE_E_DTYPE_MISMATCH,
            "as_dtype %s: no tensor of this conversion converts to %s (supported: float32 -> "
            "bfloat16, float32 -> float16, float16 -> float32, bfloat16 -> float32)",
            trestle_dtype_name(o.as_dtype), trestle_dtype_name(o.as_dtype));
        goto fail;
    }
    TR_FORWARD(mark_transposed(cv, o.transpose, o.num_transpose, err));
    TR_FORWARD(name_entries(cv, o.key_rules, o.num_key_rules, err));
    /* The file holds what this plan restores, op for op: the write
     * restores it into the file rather than planning the same tensors
     * again (at 100,000 tensors a second plan cost as much as the header;
     * issue 24). Names and transposes are the file's business, not the
     * plan's; a dtype as_dtype changed or a string left out is, and then
     * the write plans what the file holds. */
    if (!converting && !left_out) {
        cv->plan = p;
        p = NULL;
    }
    trestle_plan_free(p);
    free(plan_ops);
    *out = cv;
    return TRESTLE_OK;
fail:
    trestle_plan_free(p);
    free(plan_ops);
    trestle_conversion_free(cv);
    return rc;
}

size_t trestle_conversion_count(const trestle_conversion *cv)
{
    return cv ? cv->n : 0;
}

int trestle_conversion_get(const trestle_conversion *cv, size_t i, trestle_conversion_entry *out)
{
    if (!cv || !out || i >= cv->n)
        return trestle__error_simple(NULL, TRESTLE_E_INVALID_ARG, "bad conversion entry");
    const cv_entry *e = &cv->e[i];
    *out = (trestle_conversion_entry){ e->name, e->key, e->skipped ? NULL : e->out_name,
                                       e->skipped, e->dtype, e->out_dtype, e->transposed,
                                       e->rank, e->dims, e->bytes };
    return TRESTLE_OK;
}

int trestle_conversion_set_name(trestle_conversion *cv, size_t i, const char *name,
                                trestle_error *err)
{
    if (!cv || !name || i >= cv->n)
        return trestle__error_simple(err, TRESTLE_E_INVALID_ARG,
                                     "trestle_conversion_set_name needs a conversion, an entry "
                                     "below its count and a name");
    cv_entry *e = &cv->e[i];
    if (e->skipped)
        return trestle__error_set(err, TRESTLE_E_INVALID_ARG, 0, e->name, NULL, -1, -1,
                                  "tensor %s is left out of the file; it has no name to set",
                                  e->name);
    char *copy = strdup(name);
    if (!copy)
        return trestle__error_simple(err, TRESTLE_E_NOMEM, "out of memory");
    if (e->out_owned)
        free((char *)e->out_name);
    e->out_name = copy;
    e->out_owned = 1;
    return TRESTLE_OK;
}
