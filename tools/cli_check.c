/*
 * cli_check.c - `trestle check GRAPH|OPSFILE CHECKPOINT`: a preflight of a
 * restore, before anything is read. It plans the restore as given (the
 * verdict), then reports every key the op list asks for that the
 * checkpoint lacks, every dtype and shape mismatch, the keys nothing
 * restores, and the renames inferred from that evidence, each with how
 * many keys it fixes and why it is safe, ready to paste. The inference is
 * the library's (trestle_infer_renames()); this file only reads the
 * command line and prints. Inferred renames are proven, not trusted: the
 * library plans the restore again with them, and only a plan that
 * succeeds earns the "fixable" exit code.
 */
#include <getopt.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "trestle_graph.h"

#define CLI_EXIT_FIXABLE 3 /* fails as is; the inferred renames make it restore */

static const char check_help[] =
    "Usage: trestle check [OPTIONS] GRAPH|OPSFILE CHECKPOINT\n"
    "\n"
    "Preflight a restore without reading any tensor: plan the ops a graph's saver\n"
    "restores (GRAPH: a .meta file, a saved_model.pb or a SavedModel directory) or\n"
    "an ops file lists (OPSFILE, as for 'restore --ops') against CHECKPOINT, and\n"
    "report:\n"
    "  - every key the ops ask for that the checkpoint lacks,\n"
    "  - every dtype mismatch, and every shape mismatch: against a sliced op's\n"
    "    full shape, and against the shape a graph declares for the variable an op\n"
    "    restores (TensorFlow's Assign would fail on it),\n"
    "  - the keys the checkpoint has that nothing restores,\n"
    "  - renames inferred from that evidence which would make the restore succeed:\n"
    "    TF2 object-graph names (--names graph), TF 1.x RNN names (--rnn-renames),\n"
    "    a layer renumbered (dense_3 <-> dense), a scope added, removed or moved.\n"
    "    Each rule shows how many keys it fixes and why it is safe (dtypes and,\n"
    "    where known, shapes agree: a slice spec, or a TF1 graph's variable\n"
    "    shapes; one key per op and one op per key). A\n"
    "    missing key with several fitting candidates is listed as ambiguous, never\n"
    "    guessed. Every rule is checked against every op, those that resolve as\n"
    "    they are included: a rule changes exactly the ops listed with it. A wider\n"
    "    rule that would also change others ('dense/=model/dense/' moving\n"
    "    dense/kernel) is shown as refused, naming them, and replaced by one exact\n"
    "    rename per op. The rules are proven by planning again with them.\n"
    "\n"
    "Options:\n"
    "      --rename A=B     as for restore: apply before checking (repeatable)\n"
    "      --rnn-renames    as for restore\n"
    "      --exclude GLOB   as for restore (repeatable)\n"
    "      --names graph    as for restore: op names may be object-graph names\n"
    "      --tag TAG        GRAPH is a SavedModel: read its meta graph tagged TAG\n"
    "                       (default: the only one, else 'serve', else the first)\n"
    "      --write-ops FILE when the restore would succeed (as is or with the\n"
    "                       inferred renames), write its ops with checkpoint keys\n"
    "                       as names: 'restore --ops FILE' then needs no renames\n"
    "      --list-all       name every missing op and unused key (text lists\n"
    "                       stop at 100 of each, then give a count)\n"
    "  -j, --json           print JSON instead of text (always every name)\n"
    "  -h, --help           show this help\n"
    "\n"
    "Exit status: 0 when the restore succeeds as is; 3 when it fails as is but\n"
    "succeeds with the inferred renames (printed as flags for 'trestle restore');\n"
    "1 when it fails either way (or a file cannot be read); 2 for a bad command line;\n"
    "4 when GRAPH restores nothing (no saver and no variables).\n"
    "\n"
    "Examples:\n"
    "  trestle check model.ckpt-1000.meta model.ckpt-1000\n"
    "  trestle check --write-ops fixed.txt saved_model_dir new_ckpt/\n"
    "  trestle check --tag train saved_model_dir saved_model_dir/variables\n";

typedef struct check_args {
    const char *source, *ckpt, *write_ops, *tag;
    const cli_ops *ops;     /* the op list read from source */
    const char **renames, **excludes;
    size_t nrenames, nexcludes;
    int rnn, names, json, list_all;
} check_args;

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

static void print_text(const check_args *a, const trestle_checkpoint *c,
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
                printf("  %s  (ambiguous: ", o.name);
                for (size_t k = 0; k < o.candidates; k++) {
                    size_t at;
                    trestle_inference_candidate(inf, i, k, &at, NULL, NULL);
                    trestle_tensor_get_info(c, at, &t);
                    printf("%s%s", k ? " or " : "", t.name);
                }
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

static void print_json(const cli_ops *ops, const trestle_checkpoint *c,
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

/* The restorable ops with checkpoint keys as names, planned with `po`
 * (the caller's options, or the fixed ones). */
static int write_ops(const char *path, const trestle_checkpoint *c, const cli_ops *ops,
                     const trestle_plan_options *po)
{
    trestle_plan *p = NULL;
    trestle_error err;
    if (trestle_plan_create(c, ops->ops, ops->n, po, &p, &err) != TRESTLE_OK)
        return cli_fail(&err), -1;
    FILE *f = fopen(path, "w");
    if (!f) {
        cli_error("cannot write %s", path);
        trestle_plan_free(p);
        return -1;
    }
    int rc = 0;
    for (size_t i = 0; i < ops->n && rc == 0; i++) {
        trestle_plan_op_info pi;
        if (trestle_plan_get_op(p, i, &pi) != TRESTLE_OK || pi.skipped)
            continue;
        trestle_op op = ops->ops[i];
        op.name = pi.key;
        rc = cli_ops_write_line(f, &op);
    }
    if (fclose(f) != 0 && rc == 0) {
        cli_error("cannot write %s", path);
        rc = -1;
    }
    trestle_plan_free(p);
    return rc;
}

/* ---- command ---- */

static int run_check(const check_args *a, const cli_ops *ops, const trestle_checkpoint *c)
{
    cli_names_rules names = { 0 };
    trestle_inference *inf = NULL;
    const char **renames = NULL;
    trestle_error err;
    int status = CLI_EXIT_FAIL;

    trestle_plan_options user;
    trestle_plan_options_init(&user);
    user.renames = a->renames;
    user.num_renames = a->nrenames;
    user.excludes = a->excludes;
    user.num_excludes = a->nexcludes;
    user.tf1_rnn_renames = a->rnn;
    /* A graph's declared shapes are evidence, and rank the verdict's suggestions. */
    user.op_shapes = ops->shapes;
    /* --names graph: op names are graph names, as on restore. */
    if (a->names) {
        trestle_checkpoint_info ci;
        trestle_checkpoint_get_info(c, &ci);
        if (!ci.object_based) {
            cli_error("%s: --names graph needs a TF2 checkpoint with an object graph", a->ckpt);
            return CLI_EXIT_FAIL;
        }
        if (cli_names_renames(c, &names) != CLI_EXIT_OK ||
            !(renames = cli_names_merge(&user, &names)))
            goto done;
    }
    if (trestle_infer_renames(c, ops->ops, ops->n, &user, &inf, &err) != TRESTLE_OK) {
        cli_fail(&err);
        goto done;
    }
    if (a->json)
        print_json(ops, c, inf);
    else
        print_text(a, c, inf);
    trestle_inference_info v;
    trestle_inference_get_info(inf, &v);
    if (a->write_ops && (v.restores || v.fixable)) {
        trestle_plan_options po = user;
        if (!v.restores)
            trestle_inference_fixed_options(inf, &po);
        po.op_shapes = NULL;
        if (write_ops(a->write_ops, c, ops, &po) != 0)
            goto done;
    }
    status = v.restores ? CLI_EXIT_OK : v.fixable ? CLI_EXIT_FIXABLE : CLI_EXIT_FAIL;
done:
    trestle_inference_free(inf);
    free(renames);
    cli_names_rules_free(&names);
    return status;
}

int cli_check_main(int argc, char **argv)
{
    enum { OPT_RENAME = 256, OPT_RNN, OPT_EXCLUDE, OPT_NAMES, OPT_WRITE_OPS, OPT_LIST_ALL, OPT_TAG };
    static const struct option longopts[] = {
        { "rename", required_argument, NULL, OPT_RENAME },
        { "rnn-renames", no_argument, NULL, OPT_RNN },
        { "exclude", required_argument, NULL, OPT_EXCLUDE },
        { "names", required_argument, NULL, OPT_NAMES },
        { "write-ops", required_argument, NULL, OPT_WRITE_OPS },
        { "list-all", no_argument, NULL, OPT_LIST_ALL },
        { "tag", required_argument, NULL, OPT_TAG },
        { "json", no_argument, NULL, 'j' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    check_args a;
    int c, status = CLI_EXIT_USAGE;
    memset(&a, 0, sizeof a);
    a.renames = calloc((size_t)argc, sizeof *a.renames);
    a.excludes = calloc((size_t)argc, sizeof *a.excludes);
    if (!a.renames || !a.excludes) {
        cli_error("out of memory");
        status = CLI_EXIT_FAIL;
        goto out;
    }
    cli_getopt_reset();
    while ((c = getopt_long(argc, argv, ":jh", longopts, NULL)) != -1) {
        switch (c) {
        case OPT_RENAME:
            if (!strchr(optarg, '=') || optarg[0] == '=') {
                status = cli_usage("check", "--rename wants GRAPH_NAME=CHECKPOINT_KEY, not '%s'",
                                   optarg);
                goto out;
            }
            a.renames[a.nrenames++] = optarg;
            break;
        case OPT_RNN: a.rnn = 1; break;
        case OPT_EXCLUDE: a.excludes[a.nexcludes++] = optarg; break;
        case OPT_NAMES:
            if (strcmp(optarg, "graph") != 0 && strcmp(optarg, "key") != 0) {
                status = cli_usage("check", "--names is 'key' or 'graph', not '%s'", optarg);
                goto out;
            }
            a.names = strcmp(optarg, "graph") == 0;
            break;
        case OPT_WRITE_OPS: a.write_ops = optarg; break;
        case OPT_LIST_ALL: a.list_all = 1; break;
        case OPT_TAG: a.tag = optarg; break;
        case 'j': a.json = 1; break;
        case 'h':
            fputs(check_help, stdout);
            status = CLI_EXIT_OK;
            goto out;
        default: status = cli_bad_option("check", argv, c); goto out;
        }
    }
    if (argc - optind != 2) {
        status = cli_usage("check", "expected GRAPH|OPSFILE and CHECKPOINT, got %d argument%s",
                           argc - optind, argc - optind == 1 ? "" : "s");
        goto out;
    }
    a.source = argv[optind];
    a.ckpt = argv[optind + 1];

    cli_ops ops = { 0 };
    trestle_checkpoint *ckpt = NULL;
    status = cli_op_list_read(a.source, a.tag, TRESTLE_DEST_DISCARD, &ops);
    if (status == CLI_EXIT_OK)
        status = cli_open(a.ckpt, &ckpt);
    a.ops = &ops;
    if (status == CLI_EXIT_OK)
        status = run_check(&a, &ops, ckpt);
    trestle_close(ckpt);
    cli_ops_free(&ops);
out:
    free(a.renames);
    free(a.excludes);
    return status;
}
