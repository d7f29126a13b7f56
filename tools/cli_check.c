/*
 * cli_check.c - `trestle check GRAPH|OPSFILE CHECKPOINT`: a preflight of a
 * restore, before anything is read. It plans the restore as given (the
 * verdict), then reports every key the op list asks for that the
 * checkpoint lacks, every dtype and shape mismatch, the keys nothing
 * restores, and the renames inferred from that evidence (cli_infer.c),
 * each with how many keys it fixes and why it is safe, ready to paste.
 * Inferred renames are proven, not trusted: the restore is planned again
 * with them, and only a plan that succeeds earns the "fixable" exit code.
 */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli_check.h"

#define CLI_EXIT_FIXABLE 3 /* fails as is; the inferred renames make it restore */

static const char check_help[] =
    "Usage: trestle check [OPTIONS] GRAPH|OPSFILE CHECKPOINT\n"
    "\n"
    "Preflight a restore without reading any tensor: plan the ops a graph's saver\n"
    "restores (GRAPH: a .meta file, a saved_model.pb or a SavedModel directory) or\n"
    "an ops file lists (OPSFILE, as for 'restore --ops') against CHECKPOINT, and\n"
    "report:\n"
    "  - every key the ops ask for that the checkpoint lacks,\n"
    "  - every dtype mismatch, and shape mismatch of sliced ops,\n"
    "  - the keys the checkpoint has that nothing restores,\n"
    "  - renames inferred from that evidence which would make the restore succeed:\n"
    "    TF2 object-graph names (--names graph), TF 1.x RNN names (--rnn-renames),\n"
    "    a layer renumbered (dense_3 <-> dense), a scope added, removed or moved.\n"
    "    Each rule shows how many keys it fixes and why it is safe (dtypes and,\n"
    "    where known, shapes agree: a slice spec, or a TF1 graph's variable\n"
    "    shapes; one key per op and one op per key). A\n"
    "    missing key with several fitting candidates is listed as ambiguous, never\n"
    "    guessed. The rules are proven by planning again with them.\n"
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
    const char **renames, **excludes;
    size_t nrenames, nexcludes;
    int rnn, names, json, list_all;
} check_args;

#define LIST_SHOWN 100 /* names a text list gives before it counts the rest */

/* One inferred rule and what it fixes. */
typedef struct rule {
    const char *text;   /* "--rnn-renames", "--rename 'a/=b/'" (owned by a chk_op) */
    int kind;           /* CHK_RULE_* */
    size_t fixes;       /* ops it maps */
    int shaped;         /* every op it maps had a shape to compare */
} rule;

typedef struct verdict {
    int ok;              /* the restore plans as is */
    int fixable;         /* ... or with the inferred rules */
    rule *rules;
    size_t nrules;
    size_t ambiguous, unresolved, unused;
    trestle_plan *plan;  /* the successful plan (as is or fixed), for --write-ops */
    char fail[TRESTLE_ERROR_MESSAGE_MAX]; /* why the fixed plan failed */
} verdict;

/* ---- the verdict ---- */

static trestle_plan *plan_with(const chk_state *s, const trestle_plan_options *po, char *why)
{
    trestle_op *ops = malloc((s->n ? s->n : 1) * sizeof *ops);
    trestle_plan *p = NULL;
    trestle_error err;
    if (!ops)
        return NULL;
    for (size_t i = 0; i < s->n; i++) {
        ops[i] = s->ops[i].op;
        ops[i].dest_kind = TRESTLE_DEST_DISCARD;
    }
    if (trestle_plan_create(s->c, ops, s->n, po, &p, &err) != TRESTLE_OK && why)
        snprintf(why, TRESTLE_ERROR_MESSAGE_MAX, "%s", err.message);
    free(ops);
    return p;
}

/* The mapping rule of op o, or NULL when it has none (0 or several keys). */
static const chk_op *mapped(const chk_op *o)
{
    return o->status == CHK_MISSING && o->ncand == 1 && !o->shared ? o : NULL;
}

static int add_rule(verdict *v, const chk_op *o)
{
    int shaped = o->rank >= 0 || (o->op.shape_and_slices && strchr(o->op.shape_and_slices, ' '));
    for (size_t r = 0; r < v->nrules; r++)
        if (strcmp(v->rules[r].text, o->cand_rule[0]) == 0) {
            v->rules[r].fixes++;
            v->rules[r].shaped &= shaped;
            return 0;
        }
    rule *grown = realloc(v->rules, (v->nrules + 1) * sizeof *grown);
    if (!grown)
        return -1;
    v->rules = grown;
    v->rules[v->nrules++] = (rule){ o->cand_rule[0], o->cand_kind[0], 1, shaped };
    return 0;
}

/*
 * po (the user's options) plus every inferred rule: the RNN flag, and the
 * --rename rules appended to po->renames, which becomes a new array
 * (*fixed, to free, with the rule strings in *owned). Object-graph name
 * rules are added by the caller. Returns 0, or -1 when out of memory.
 */
static int fixed_options(const verdict *v, trestle_plan_options *po, const char ***fixed,
                         char ***owned, size_t *nowned)
{
    const char **all = calloc(po->num_renames + v->nrules + 1, sizeof *all);
    char **mine = calloc(v->nrules + 1, sizeof *mine);
    size_t n = po->num_renames, m = 0;
    *fixed = all;
    *owned = mine;
    *nowned = 0;
    if (!all || !mine)
        return -1;
    if (n)
        memcpy(all, po->renames, n * sizeof *all);
    for (size_t r = 0; r < v->nrules; r++) {
        const char *t = v->rules[r].text;
        if (v->rules[r].kind == CHK_RULE_RNN) {
            po->tf1_rnn_renames = 1;
        } else if (v->rules[r].kind != CHK_RULE_NAMES) {
            /* "--rename 'A=B'" -> "A=B" */
            mine[m] = strndup(t + 10, strlen(t) - 11);
            if (!mine[m])
                return -1;
            all[n++] = mine[m++];
            *nowned = m;
        }
    }
    po->renames = all;
    po->num_renames = n;
    return 0;
}

static int decide(const check_args *a, chk_state *s, const trestle_plan_options *user,
                  const cli_names_rules *names, verdict *v)
{
    memset(v, 0, sizeof *v);
    v->plan = plan_with(s, user, v->fail);
    v->ok = v->plan != NULL;
    for (size_t t = 0; t < trestle_tensor_count(s->c); t++) {
        trestle_tensor_info ti;
        trestle_tensor_get_info(s->c, t, &ti);
        v->unused += !s->used[t] && ti.kind != TRESTLE_TENSOR_OBJECT_GRAPH;
    }
    if (v->ok)
        return 0;
    int names_rule = 0;
    for (size_t i = 0; i < s->n; i++) {
        const chk_op *o = &s->ops[i];
        if (o->status != CHK_MISSING)
            continue;
        if (!mapped(o)) {
            v->ambiguous += o->ncand > 1 || o->shared;
            v->unresolved += o->ncand == 0;
            continue;
        }
        names_rule |= o->cand_kind[0] == CHK_RULE_NAMES;
        if (add_rule(v, o) != 0)
            return -1;
    }
    if (v->nrules == 0 || v->ambiguous || v->unresolved || s->nmismatch)
        return 0;
    /* Prove it: plan again with the user's options and the inferred rules. */
    trestle_plan_options po = *user;
    const char **fixed = NULL, **with_names = NULL;
    char **owned = NULL;
    size_t nowned = 0;
    int rc = -1;
    if (fixed_options(v, &po, &fixed, &owned, &nowned) != 0)
        goto done;
    if (names_rule && !a->names && !(with_names = cli_names_merge(&po, names)))
        goto done;
    v->plan = plan_with(s, &po, v->fail);
    v->fixable = v->plan != NULL;
    rc = 0;
done:
    for (size_t i = 0; i < nowned; i++)
        free(owned[i]);
    free(owned);
    free(fixed);
    free(with_names);
    return rc;
}

/* ---- printing ---- */

static const char *why_kind(int kind)
{
    switch (kind) {
    case CHK_RULE_NAMES: return "the checkpoint's object graph gives these keys these graph names";
    case CHK_RULE_RNN: return "TF 1.x RNN cell names (weights/biases -> kernel/bias)";
    case CHK_RULE_RENUMBER: return "a layer renumbered (only the _N suffix differs)";
    default: return "the same path under another scope";
    }
}

static void shape_text(const trestle_tensor_info *t, char *buf, size_t cap)
{
    cli_shape_format(t->rank, t->dims, buf, cap);
}

static void print_text(const check_args *a, const chk_state *s, const verdict *v)
{
    size_t ok = 0;
    for (size_t i = 0; i < s->n; i++)
        ok += s->ops[i].status == CHK_OK;
    printf("check %s against %s: %zu op%s, %zu ok, %zu missing, %zu mismatched, %zu unused "
           "key%s\n", a->source, a->ckpt, s->n, s->n == 1 ? "" : "s", ok, s->nmissing,
           s->nmismatch, v->unused, v->unused == 1 ? "" : "s");
    if (s->nmissing) {
        size_t shown = 0;
        printf("missing (the ops ask for them, the checkpoint lacks them):\n");
        for (size_t i = 0; i < s->n; i++) {
            const chk_op *o = &s->ops[i];
            if (o->status != CHK_MISSING || (!a->list_all && shown++ >= LIST_SHOWN))
                continue;
            trestle_tensor_info t;
            if (mapped(o)) {
                trestle_tensor_get_info(s->c, o->cand[0], &t);
                printf("  %s -> %s  (%s)\n", o->op.name, t.name, o->cand_rule[0]);
            } else if (o->ncand == 0) {
                printf("  %s  (no unused key fits)\n", o->op.name);
            } else {
                printf("  %s  (ambiguous: ", o->op.name);
                for (int c = 0; c < o->ncand; c++) {
                    trestle_tensor_get_info(s->c, o->cand[c], &t);
                    printf("%s%s", c ? " or " : "", t.name);
                }
                printf("%s)\n", o->shared ? "; another op fits the same key" : "");
            }
        }
        if (shown > LIST_SHOWN)
            printf("  ... and %zu more missing (--list-all or --json names them all)\n",
                   shown - LIST_SHOWN);
    }
    for (size_t i = 0; i < s->n; i++) {
        const chk_op *o = &s->ops[i];
        if (o->status != CHK_DTYPE && o->status != CHK_SHAPE)
            continue;
        trestle_tensor_info t;
        char shape[256];
        trestle_tensor_get_info(s->c, o->tensor, &t);
        shape_text(&t, shape, sizeof shape);
        if (o->status == CHK_DTYPE)
            printf("dtype mismatch: %s: the ops want %s, the checkpoint has %s\n", o->op.name,
                   trestle_dtype_name(o->op.dtype), trestle_dtype_name(t.dtype));
        else
            printf("shape mismatch: %s: the ops want '%s', the checkpoint has %s\n", o->op.name,
                   o->op.shape_and_slices, shape);
    }
    if (v->unused) {
        size_t shown = 0;
        printf("unused (the checkpoint has them, nothing restores them):\n");
        for (size_t t = 0; t < trestle_tensor_count(s->c); t++) {
            trestle_tensor_info ti;
            trestle_tensor_get_info(s->c, t, &ti);
            if (s->used[t] || ti.kind == TRESTLE_TENSOR_OBJECT_GRAPH ||
                (!a->list_all && shown++ >= LIST_SHOWN))
                continue;
            const chk_op *by = NULL;
            for (size_t i = 0; i < s->n && !by; i++)
                if (mapped(&s->ops[i]) && s->ops[i].cand[0] == t)
                    by = &s->ops[i];
            if (by)
                printf("  %s  (for %s, once renamed)\n", ti.name, by->op.name);
            else
                printf("  %s\n", ti.name);
        }
        if (shown > LIST_SHOWN)
            printf("  ... and %zu more unused (--list-all or --json names them all)\n",
                   shown - LIST_SHOWN);
    }
    if (v->nrules) {
        printf("inferred renames:\n");
        for (size_t r = 0; r < v->nrules; r++)
            printf("  %s  fixes %zu key%s: %s; dtypes%s agree, one op per key\n",
                   v->rules[r].text, v->rules[r].fixes, v->rules[r].fixes == 1 ? "" : "s",
                   why_kind(v->rules[r].kind), v->rules[r].shaped ? " and shapes" : "");
    }
    if (v->ok) {
        printf("verdict: the restore succeeds as is\n");
        return;
    }
    if (v->fixable) {
        printf("verdict: the restore fails as is and succeeds with the inferred renames:\n");
        printf("  flags:");
        for (size_t r = 0; r < v->nrules; r++)
            printf(" %s", v->rules[r].text);
        printf("\n");
        return;
    }
    printf("verdict: the restore fails");
    if (v->ambiguous || v->unresolved || s->nmismatch)
        printf(" (%zu ambiguous, %zu with no candidate, %zu mismatched)", v->ambiguous,
               v->unresolved, s->nmismatch);
    else if (v->fail[0])
        printf("%s: %s", v->nrules ? " even with the inferred renames" : "", v->fail);
    printf("\n");
}

static void json_key_list(const chk_state *s, const chk_op *o)
{
    fputs("[", stdout);
    for (int c = 0; c < o->ncand; c++) {
        trestle_tensor_info t;
        trestle_tensor_get_info(s->c, o->cand[c], &t);
        fputs(c ? ", " : "", stdout);
        cli_json_cstr(stdout, t.name);
    }
    fputs("]", stdout);
}

static void print_json(const chk_state *s, const verdict *v)
{
    printf("{\n  \"ok\": %s,\n  \"fixable\": %s,\n  \"missing\": [", v->ok ? "true" : "false",
           v->fixable ? "true" : "false");
    int first = 1;
    for (size_t i = 0; i < s->n; i++) {
        const chk_op *o = &s->ops[i];
        if (o->status != CHK_MISSING)
            continue;
        fputs(first ? "\n    {\"name\": " : ",\n    {\"name\": ", stdout);
        first = 0;
        cli_json_cstr(stdout, o->op.name);
        fputs(mapped(o) ? ", \"fix\": " : ", \"fix\": null", stdout);
        if (mapped(o))
            cli_json_cstr(stdout, o->cand_rule[0]);
        fputs(", \"candidates\": ", stdout);
        json_key_list(s, o);
        fputs("}", stdout);
    }
    fputs("],\n  \"mismatched\": [", stdout);
    first = 1;
    for (size_t i = 0; i < s->n; i++) {
        const chk_op *o = &s->ops[i];
        if (o->status != CHK_DTYPE && o->status != CHK_SHAPE)
            continue;
        fputs(first ? "\n    {\"name\": " : ",\n    {\"name\": ", stdout);
        first = 0;
        cli_json_cstr(stdout, o->op.name);
        printf(", \"what\": \"%s\"}", o->status == CHK_DTYPE ? "dtype" : "shape");
    }
    fputs("],\n  \"unused\": [", stdout);
    first = 1;
    for (size_t t = 0; t < trestle_tensor_count(s->c); t++) {
        trestle_tensor_info ti;
        trestle_tensor_get_info(s->c, t, &ti);
        if (s->used[t] || ti.kind == TRESTLE_TENSOR_OBJECT_GRAPH)
            continue;
        fputs(first ? "\n    " : ",\n    ", stdout);
        first = 0;
        cli_json_cstr(stdout, ti.name);
    }
    fputs("],\n  \"rules\": [", stdout);
    for (size_t r = 0; r < v->nrules; r++) {
        fputs(r ? ",\n    {\"flag\": " : "\n    {\"flag\": ", stdout);
        cli_json_cstr(stdout, v->rules[r].text);
        printf(", \"fixes\": %zu, \"why\": ", v->rules[r].fixes);
        cli_json_cstr(stdout, why_kind(v->rules[r].kind));
        printf(", \"shapes_checked\": %s}", v->rules[r].shaped ? "true" : "false");
    }
    printf("],\n  \"ambiguous\": %zu,\n  \"unresolved\": %zu\n}\n", v->ambiguous, v->unresolved);
}

/* The restorable ops with checkpoint keys as names, from the plan that succeeded. */
static int write_ops(const char *path, const chk_state *s, const trestle_plan *p)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        cli_error("cannot write %s", path);
        return -1;
    }
    int rc = 0;
    for (size_t i = 0; i < s->n && rc == 0; i++) {
        trestle_plan_op_info pi;
        if (trestle_plan_get_op(p, i, &pi) != TRESTLE_OK || pi.skipped)
            continue;
        trestle_op op = s->ops[i].op;
        op.name = pi.key;
        rc = cli_ops_write_line(f, &op);
    }
    if (fclose(f) != 0 && rc == 0) {
        cli_error("cannot write %s", path);
        rc = -1;
    }
    return rc;
}

/* ---- command ---- */

static int run_check(const check_args *a, const cli_ops *ops, const trestle_checkpoint *c)
{
    chk_state s = { .c = c, .n = ops->n };
    cli_names_rules names = { 0 };
    verdict v;
    const char **renames = NULL;
    int status = CLI_EXIT_FAIL;
    memset(&v, 0, sizeof v);

    trestle_plan_options user;
    trestle_plan_options_init(&user);
    user.renames = a->renames;
    user.num_renames = a->nrenames;
    user.excludes = a->excludes;
    user.num_excludes = a->nexcludes;
    user.tf1_rnn_renames = a->rnn;
    user.op_shapes = ops->shapes; /* the verdict's missing keys get shape-ranked suggestions */
    trestle_checkpoint_info ci;
    trestle_checkpoint_get_info(c, &ci);
    trestle_names *m = NULL;
    /* A TF2 checkpoint whose object graph does not read just offers no names. */
    if (ci.object_based && trestle_names_open(c, &m, NULL) == TRESTLE_OK) {
        trestle_names_free(m);
        if (cli_names_renames(c, &names) != CLI_EXIT_OK)
            return CLI_EXIT_FAIL;
    } else if (a->names) {
        cli_error("%s: --names graph needs a TF2 checkpoint with an object graph", a->ckpt);
        return CLI_EXIT_FAIL;
    }
    if (a->names && !(renames = cli_names_merge(&user, &names)))
        goto done;
    s.ops = calloc(ops->n ? ops->n : 1, sizeof *s.ops);
    if (!s.ops)
        goto done;
    /* A graph's declared shapes are evidence. */
    for (size_t i = 0; i < ops->n; i++) {
        s.ops[i].op = ops->ops[i];
        s.ops[i].rank = ops->shapes ? ops->shapes[i].rank : -1;
        s.ops[i].dims = ops->shapes ? ops->shapes[i].dims : NULL;
    }
    if (cli_check_analyse(&s, &user, a->names ? NULL : &names) != 0 ||
        decide(a, &s, &user, &names, &v) != 0)
        goto done;
    if (a->json)
        print_json(&s, &v);
    else
        print_text(a, &s, &v);
    if (a->write_ops && v.plan && write_ops(a->write_ops, &s, v.plan) != 0)
        goto done;
    status = v.ok ? CLI_EXIT_OK : v.fixable ? CLI_EXIT_FIXABLE : CLI_EXIT_FAIL;
done:
    if (status == CLI_EXIT_FAIL && !s.ops)
        cli_error("out of memory");
    trestle_plan_free(v.plan);
    free(v.rules);
    free(renames);
    cli_names_rules_free(&names);
    cli_check_free(&s);
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
    if (status == CLI_EXIT_OK)
        status = run_check(&a, &ops, ckpt);
    trestle_close(ckpt);
    cli_ops_free(&ops);
out:
    free(a.renames);
    free(a.excludes);
    return status;
}
