/*
 * cli_check_report.c - what `trestle check` prints (tools/cli_check.c reads
 * the command line and asks the library): the inference of
 * trestle_infer_renames() as text, every missing op with its fix or its
 * candidates, every mismatch with both dtypes or shapes, the unused keys,
 * the inferred rules and the refused wider ones, and the verdict; or the
 * same as JSON.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cli_check.h"
#include "trestle_graph.h"

#define LIST_SHOWN 100 /* names a text list gives before it counts the rest */

/* ---- printing ---- */

/* The flag that applies a rule or candidate on `trestle restore`'s
 * command line: "--names graph", "--rnn-renames" or "--rename 'A=B'". */
static void flag_text(int kind, const char *rename, char *buf, size_t cap)
{
    if (rename && rename[0])
        snprintf(buf, cap, "--rename '%s'", rename);
    else if (kind == TRESTLE_RULE_NAMES)
        snprintf(buf, cap, "--names graph");
    else
        snprintf(buf, cap, "--rnn-renames");
}

static void rule_flag(const trestle_inference *inf, size_t r, char *buf, size_t cap)
{
    trestle_inferred_rule ru;
    trestle_inference_rule(inf, r, &ru);
    flag_text(ru.kind, ru.rename, buf, cap);
}

static int is_mapped(const trestle_inferred_op *o)
{
    return o->status == TRESTLE_INFER_MISSING && o->rule >= 0;
}

#define FLAG_MAX 8192 /* bytes of one printed flag */

static void shape_text(const trestle_tensor_info *t, char *buf, size_t cap)
{
    cli_shape_format(t->rank, t->dims, buf, cap);
}

/* A whole-tensor op's shape as its graph declares it ("[5,5,1,6]"): 1, or
 * 0 when the op has a slice spec (whose full shape is what it wants) or
 * no declared shape. */
static int declared_text(const cli_ops *ops, size_t i, char *buf, size_t cap)
{
    const char *spec = ops->ops[i].shape_and_slices;
    if ((spec && *spec) || !ops->shapes || ops->shapes[i].rank < 0)
        return 0;
    cli_shape_format(ops->shapes[i].rank, ops->shapes[i].dims, buf, cap);
    return 1;
}

/* The shape the op asks for, as a JSON array: its slice spec's full shape,
 * else its declared shape; "null" when it names none. */
static void json_want_shape(const cli_ops *ops, size_t i)
{
    char buf[256];
    const char *spec = ops->ops[i].shape_and_slices;
    if (declared_text(ops, i, buf, sizeof buf)) {
        fputs(buf, stdout);
        return;
    }
    /* "d0 d1 ... slice": every token but the last is a dimension. */
    const char *last = spec ? strrchr(spec, ' ') : NULL;
    if (!last || strspn(spec, "0123456789 ") < (size_t)(last - spec)) {
        fputs("null", stdout);
        return;
    }
    putchar('[');
    for (const char *p = spec; p < last; p++)
        putchar(*p == ' ' ? ',' : *p);
    putchar(']');
}

#define CHANGES_SHOWN 3 /* ops a refused rule would change, named before a count */

/* The key op i resolves to as the ops stand (or "missing"), and tensor t's
 * name (or "missing" for SIZE_MAX). */
static const char *key_now(const trestle_checkpoint *c, const trestle_inference *inf, size_t i)
{
    trestle_inferred_op o;
    trestle_tensor_info t;
    trestle_inference_op(inf, i, &o);
    if (o.status == TRESTLE_INFER_MISSING || o.status == TRESTLE_INFER_EXCLUDED ||
        trestle_tensor_get_info(c, o.tensor, &t) != TRESTLE_OK)
        return NULL;
    return t.name;
}

static const char *key_of(const trestle_checkpoint *c, size_t tensor)
{
    trestle_tensor_info t;
    return trestle_tensor_get_info(c, tensor, &t) == TRESTLE_OK ? t.name : NULL;
}

/* Each wider rule refused, with the ops it would also have changed. */
static void print_refused(const trestle_checkpoint *c, const trestle_inference *inf)
{
    char flag[FLAG_MAX];
    for (size_t k = 0; k < trestle_inference_refused_count(inf); k++) {
        trestle_inferred_rule ru;
        size_t n = 0;
        trestle_inference_refused(inf, k, &ru, &n);
        flag_text(ru.kind, ru.rename, flag, sizeof flag);
        printf("  refused %s: it would also change ", flag);
        for (size_t j = 0; j < n && j < CHANGES_SHOWN; j++) {
            size_t op, to;
            trestle_inferred_op o;
            trestle_inference_refused_change(inf, k, j, &op, &to);
            trestle_inference_op(inf, op, &o);
            const char *from = key_now(c, inf, op), *dest = key_of(c, to);
            printf("%s%s (%s -> %s)", j ? ", " : "", o.name, from ? from : "missing",
                   dest ? dest : "missing");
        }
        if (n > CHANGES_SHOWN)
            printf(" and %zu more op%s", n - CHANGES_SHOWN, n - CHANGES_SHOWN == 1 ? "" : "s");
        printf("\n");
    }
}

void cli_check_print_text(const check_args *a, const trestle_checkpoint *c,
                       const trestle_inference *inf)
{
    trestle_inference_info v;
    trestle_inferred_op o;
    trestle_tensor_info t;
    char flag[FLAG_MAX];
    trestle_inference_get_info(inf, &v);
    printf("check %s against %s: %zu op%s, %zu ok, %zu missing, %zu mismatched, %zu unused "
           "key%s\n", a->source, a->ckpt, v.ops, v.ops == 1 ? "" : "s", v.ok, v.missing,
           v.mismatched, v.unused, v.unused == 1 ? "" : "s");
    if (v.missing) {
        size_t shown = 0;
        printf("missing (the ops ask for them, the checkpoint lacks them):\n");
        for (size_t i = 0; i < v.ops; i++) {
            trestle_inference_op(inf, i, &o);
            if (o.status != TRESTLE_INFER_MISSING || (!a->list_all && shown++ >= LIST_SHOWN))
                continue;
            if (is_mapped(&o)) {
                trestle_tensor_get_info(c, o.tensor, &t);
                rule_flag(inf, (size_t)o.rule, flag, sizeof flag);
                printf("  %s -> %s  (%s)\n", o.name, t.name, flag);
            } else if (o.candidates == 0) {
                printf("  %s  (no unused key fits)\n", o.name);
            } else {
                int by_name = 1;
                printf("  %s  (ambiguous: ", o.name);
                for (size_t k = 0; k < o.candidates; k++) {
                    size_t at;
                    int kind;
                    trestle_inference_candidate(inf, i, k, &at, &kind, NULL);
                    trestle_tensor_get_info(c, at, &t);
                    printf("%s%s", k ? " or " : "", t.name);
                    by_name &= kind == TRESTLE_RULE_NAMES;
                }
                /* A graph name two keys share: TF's name-based restore
                 * could take either; --rename picks one. */
                if (by_name && o.candidates > 1)
                    printf("; the object graph gives each this graph name, --rename '%s=KEY' "
                           "picks one", o.name);
                printf("%s)\n", o.shared ? "; another op fits the same key" : "");
            }
        }
        if (shown > LIST_SHOWN)
            printf("  ... and %zu more missing (--list-all or --json names them all)\n",
                   shown - LIST_SHOWN);
    }
    for (size_t i = 0; i < v.ops; i++) {
        trestle_inference_op(inf, i, &o);
        if (o.status != TRESTLE_INFER_DTYPE && o.status != TRESTLE_INFER_SHAPE)
            continue;
        char shape[256], want[256];
        trestle_tensor_get_info(c, o.tensor, &t);
        shape_text(&t, shape, sizeof shape);
        if (o.status == TRESTLE_INFER_DTYPE)
            printf("dtype mismatch: %s: the ops want %s, the checkpoint has %s\n", o.name,
                   trestle_dtype_name(a->ops->ops[i].dtype), trestle_dtype_name(t.dtype));
        else if (declared_text(a->ops, i, want, sizeof want))
            printf("shape mismatch: %s: the graph declares %s, the checkpoint has %s\n", o.name,
                   want, shape);
        else
            printf("shape mismatch: %s: the ops want '%s', the checkpoint has %s\n", o.name,
                   a->ops->ops[i].shape_and_slices, shape);
    }
    if (v.unused) {
        size_t shown = 0;
        printf("unused (the checkpoint has them, nothing restores them):\n");
        for (size_t k = 0; k < trestle_tensor_count(c); k++) {
            trestle_tensor_get_info(c, k, &t);
            if (trestle_inference_tensor_used(inf, k) || t.kind == TRESTLE_TENSOR_OBJECT_GRAPH ||
                (!a->list_all && shown++ >= LIST_SHOWN))
                continue;
            const char *by = NULL;
            for (size_t i = 0; i < v.ops && !by; i++)
                if (trestle_inference_op(inf, i, &o) == TRESTLE_OK && is_mapped(&o) &&
                    o.tensor == k)
                    by = o.name;
            if (by)
                printf("  %s  (for %s, once renamed)\n", t.name, by);
            else
                printf("  %s\n", t.name);
        }
        if (shown > LIST_SHOWN)
            printf("  ... and %zu more unused (--list-all or --json names them all)\n",
                   shown - LIST_SHOWN);
    }
    if (v.rules) {
        printf("inferred renames:\n");
        for (size_t r = 0; r < v.rules; r++) {
            trestle_inferred_rule ru;
            trestle_inference_rule(inf, r, &ru);
            rule_flag(inf, r, flag, sizeof flag);
            printf("  %s  fixes %zu key%s: %s; dtypes%s agree, one op per key\n", flag, ru.fixes,
                   ru.fixes == 1 ? "" : "s", ru.why, ru.shapes_checked ? " and shapes" : "");
        }
    }
    print_refused(c, inf);
    if (v.restores) {
        printf("verdict: the restore succeeds as is\n");
        return;
    }
    if (v.fixable) {
        printf("verdict: the restore fails as is and succeeds with the inferred renames:\n");
        printf("  flags:");
        for (size_t r = 0; r < v.rules; r++) {
            rule_flag(inf, r, flag, sizeof flag);
            printf(" %s", flag);
        }
        printf("\n");
        return;
    }
    printf("verdict: the restore fails");
    if (v.ambiguous || v.unresolved || v.mismatched)
        printf(" (%zu ambiguous, %zu with no candidate, %zu mismatched)", v.ambiguous,
               v.unresolved, v.mismatched);
    else if (v.failure[0])
        printf("%s: %s", v.rules ? " even with the inferred renames" : "", v.failure);
    printf("\n");
}

static void json_key_list(const trestle_checkpoint *c, const trestle_inference *inf, size_t i,
                          size_t n)
{
    fputs("[", stdout);
    for (size_t k = 0; k < n; k++) {
        trestle_tensor_info t;
        size_t at;
        trestle_inference_candidate(inf, i, k, &at, NULL, NULL);
        trestle_tensor_get_info(c, at, &t);
        fputs(k ? ", " : "", stdout);
        cli_json_cstr(stdout, t.name);
    }
    fputs("]", stdout);
}

void cli_check_print_json(const cli_ops *ops, const trestle_checkpoint *c,
                       const trestle_inference *inf)
{
    trestle_inference_info v;
    trestle_inferred_op o;
    char flag[FLAG_MAX];
    trestle_inference_get_info(inf, &v);
    printf("{\n  \"ok\": %s,\n  \"fixable\": %s,\n  \"missing\": [", v.restores ? "true" : "false",
           v.fixable ? "true" : "false");
    int first = 1;
    for (size_t i = 0; i < v.ops; i++) {
        trestle_inference_op(inf, i, &o);
        if (o.status != TRESTLE_INFER_MISSING)
            continue;
        fputs(first ? "\n    {\"name\": " : ",\n    {\"name\": ", stdout);
        first = 0;
        cli_json_cstr(stdout, o.name);
        fputs(is_mapped(&o) ? ", \"fix\": " : ", \"fix\": null", stdout);
        if (is_mapped(&o)) {
            rule_flag(inf, (size_t)o.rule, flag, sizeof flag);
            cli_json_cstr(stdout, flag);
        }
        fputs(", \"candidates\": ", stdout);
        json_key_list(c, inf, i, o.candidates);
        fputs("}", stdout);
    }
    fputs("],\n  \"mismatched\": [", stdout);
    first = 1;
    for (size_t i = 0; i < v.ops; i++) {
        trestle_inference_op(inf, i, &o);
        if (o.status != TRESTLE_INFER_DTYPE && o.status != TRESTLE_INFER_SHAPE)
            continue;
        fputs(first ? "\n    {\"name\": " : ",\n    {\"name\": ", stdout);
        first = 0;
        cli_json_cstr(stdout, o.name);
        trestle_tensor_info t;
        trestle_tensor_get_info(c, o.tensor, &t);
        if (o.status == TRESTLE_INFER_DTYPE) {
            printf(", \"what\": \"dtype\", \"want\": \"%s\", \"have\": \"%s\"}",
                   trestle_dtype_name(ops->ops[i].dtype), trestle_dtype_name(t.dtype));
            continue;
        }
        char have[256];
        shape_text(&t, have, sizeof have);
        fputs(", \"what\": \"shape\", \"want\": ", stdout);
        json_want_shape(ops, i);
        printf(", \"have\": %s}", have);
    }
    fputs("],\n  \"unused\": [", stdout);
    first = 1;
    for (size_t k = 0; k < trestle_tensor_count(c); k++) {
        trestle_tensor_info ti;
        trestle_tensor_get_info(c, k, &ti);
        if (trestle_inference_tensor_used(inf, k) || ti.kind == TRESTLE_TENSOR_OBJECT_GRAPH)
            continue;
        fputs(first ? "\n    " : ",\n    ", stdout);
        first = 0;
        cli_json_cstr(stdout, ti.name);
    }
    fputs("],\n  \"rules\": [", stdout);
    for (size_t r = 0; r < v.rules; r++) {
        trestle_inferred_rule ru;
        trestle_inference_rule(inf, r, &ru);
        rule_flag(inf, r, flag, sizeof flag);
        fputs(r ? ",\n    {\"flag\": " : "\n    {\"flag\": ", stdout);
        cli_json_cstr(stdout, flag);
        printf(", \"fixes\": %zu, \"why\": ", ru.fixes);
        cli_json_cstr(stdout, ru.why);
        printf(", \"shapes_checked\": %s}", ru.shapes_checked ? "true" : "false");
    }
    fputs("],\n  \"refused\": [", stdout);
    for (size_t k = 0; k < trestle_inference_refused_count(inf); k++) {
        trestle_inferred_rule ru;
        size_t n = 0;
        trestle_inference_refused(inf, k, &ru, &n);
        flag_text(ru.kind, ru.rename, flag, sizeof flag);
        fputs(k ? ",\n    {\"flag\": " : "\n    {\"flag\": ", stdout);
        cli_json_cstr(stdout, flag);
        fputs(", \"changes\": [", stdout);
        for (size_t j = 0; j < n; j++) {
            size_t op, to;
            trestle_inference_refused_change(inf, k, j, &op, &to);
            trestle_inference_op(inf, op, &o);
            const char *from = key_now(c, inf, op), *dest = key_of(c, to);
            fputs(j ? ", {\"op\": " : "{\"op\": ", stdout);
            cli_json_cstr(stdout, o.name);
            fputs(", \"from\": ", stdout);
            from ? cli_json_cstr(stdout, from) : (void)fputs("null", stdout);
            fputs(", \"to\": ", stdout);
            dest ? cli_json_cstr(stdout, dest) : (void)fputs("null", stdout);
            fputs("}", stdout);
        }
        fputs("]}", stdout);
    }
    printf("],\n  \"ambiguous\": %zu,\n  \"unresolved\": %zu\n}\n", v.ambiguous, v.unresolved);
}
