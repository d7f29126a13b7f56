/*
 * cli_diff.c - `trestle diff`: how do two checkpoints differ, key by key?
 * Or: would this op list restore from that checkpoint?
 *
 * Both listings are in key order (the index is a sorted table), so the
 * comparison is one merge pass; --values then reads each common tensor from
 * both sides (CRC-verified) and compares the bytes. The ops form asks the
 * planner itself, so renames and TF1 RNN renames count exactly as a restore
 * would count them.
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char diff_help[] =
    "Usage: trestle diff [OPTIONS] A B\n"
    "       trestle diff [OPTIONS] --ops FILE A\n"
    "       trestle diff [OPTIONS] GRAPH A    (or A GRAPH)\n"
    "\n"
    "Compare checkpoints A and B key by key and print one line per difference:\n"
    "  only in A: NAME  DTYPE SHAPE\n"
    "  only in B: NAME  DTYPE SHAPE\n"
    "  dtype differs: NAME  float -> half\n"
    "  shape differs: NAME  [2,2] -> [2,3]\n"
    "  values differ: NAME              (with --values)\n"
    "then a summary line. With --ops, report instead which ops of FILE (the\n"
    "format of 'trestle restore --ops') have no key in A. A graph on either\n"
    "side (a .meta file, a saved_model.pb or a SavedModel directory) stands for\n"
    "the ops its saver restores, as with --ops ('trestle ops --graph'); --tag\n"
    "picks a SavedModel's meta graph.\n"
    "\n"
    "A and B are checkpoint prefixes, .index files, data files or directories.\n"
    "\n"
    "Options:\n"
    "      --values        also read every common tensor from both sides\n"
    "                      (CRC-verified) and compare the bytes (two checkpoints\n"
    "                      only: not with --ops or a graph)\n"
    "      --ops FILE      check the op names of FILE against A instead of\n"
    "                      comparing with B\n"
    "      --rename A=B    with --ops: op name A is checkpoint key B (repeatable;\n"
    "                      'a/=b/' renames a prefix), as in 'trestle restore'\n"
    "      --rnn-renames   with --ops: also try TF 1.x RNN renames\n"
    "      --list-missing-all  with --ops: name every missing op (by default the\n"
    "                      first 100, then a count of the rest)\n"
    "      --tag TAG       with a graph: the SavedModel meta graph tagged TAG\n"
    "                      (default: the only one, else 'serve', else the first)\n"
    "      --names graph   with --ops: op names may be a TF2 checkpoint's\n"
    "                      object-graph names, as in 'trestle restore'\n"
    "  -q, --quiet         print nothing; the exit status tells\n"
    "  -h, --help          show this help\n"
    "\n"
    "Exit status: 0 when identical (or every op is found), 1 when different\n"
    "(or an op is missing or mismatched), 2 on trouble (bad command line,\n"
    "unreadable checkpoint, corrupt data, a graph that restores nothing), as\n"
    "diff(1) does.\n"
    "\n"
    "Examples:\n"
    "  trestle diff run1/ckpt-1000 run2/ckpt-1000\n"
    "  trestle diff --values original/ckpt copied/ckpt\n"
    "  trestle diff --ops ops.txt --rename dense/=model/dense/ ckpt_dir\n"
    "  trestle diff --tag train saved_model_dir saved_model_dir/variables\n";

#define DIFF_TROUBLE CLI_EXIT_USAGE /* diff(1)'s "trouble" status */

typedef struct diff_args {
    const char *ops_file;
    const char *tag;       /* --tag: the SavedModel meta graph of a graph side */
    const char **renames;  /* pointers into argv */
    size_t nrenames;
    int rnn, values, quiet, all_missing;
    int graph_names;       /* --names graph */
} diff_args;

#define MISSING_SHOWN 100 /* missing ops named before the rest are counted */

typedef struct diff_counts {
    size_t only_a, only_b, dtype, shape, values, common;
    uint64_t compared_bytes;
} diff_counts;

/* ---- checkpoint against checkpoint ---- */

static void describe(const trestle_tensor_info *t, char *buf, size_t cap)
{
    char shape[256];
    cli_shape_format(t->rank, t->dims, shape, sizeof shape);
    snprintf(buf, cap, "%s %s", trestle_dtype_name(t->dtype), shape);
}

static int same_shape(const trestle_tensor_info *x, const trestle_tensor_info *y)
{
    return x->rank == y->rank && memcmp(x->dims, y->dims, (size_t)x->rank * sizeof *x->dims) == 0;
}

typedef struct buffer {
    void *p;
    size_t cap;
} buffer;

static int read_into(const trestle_checkpoint *c, size_t i, const trestle_tensor_info *t,
                     buffer *b, trestle_error *err)
{
    uint64_t need = cli_read_size(t);
    if (need > b->cap) {
        free(b->p);
        b->cap = 0;
        b->p = malloc(need ? (size_t)need : 1);
        if (!b->p) {
            err->code = TRESTLE_E_NOMEM;
            snprintf(err->message, sizeof err->message,
                     "out of memory reading tensor '%s' (%" PRIu64 " bytes)", t->name, need);
            return TRESTLE_E_NOMEM;
        }
        b->cap = (size_t)need;
    }
    return trestle_tensor_read(c, i, b->p, b->cap, 1, err);
}

/* Compare one common key; returns 0, or DIFF_TROUBLE after reporting. */
static int compare_common(const trestle_checkpoint *a, size_t ia, const trestle_checkpoint *b,
                          size_t ib, const diff_args *args, diff_counts *n, buffer *ba,
                          buffer *bb)
{
    trestle_tensor_info ta, tb;
    char sa[256], sb[256];
    trestle_tensor_get_info(a, ia, &ta);
    trestle_tensor_get_info(b, ib, &tb);
    n->common++;
    if (ta.dtype != tb.dtype) {
        n->dtype++;
        if (!args->quiet)
            printf("dtype differs: %s  %s -> %s\n", ta.name, trestle_dtype_name(ta.dtype),
                   trestle_dtype_name(tb.dtype));
    }
    if (!same_shape(&ta, &tb)) {
        n->shape++;
        cli_shape_format(ta.rank, ta.dims, sa, sizeof sa);
        cli_shape_format(tb.rank, tb.dims, sb, sizeof sb);
        if (!args->quiet)
            printf("shape differs: %s  %s -> %s\n", ta.name, sa, sb);
    }
    if (!args->values || ta.dtype != tb.dtype || !same_shape(&ta, &tb))
        return CLI_EXIT_OK;

    trestle_error err;
    trestle_error_clear(&err);
    if (read_into(a, ia, &ta, ba, &err) != TRESTLE_OK ||
        read_into(b, ib, &tb, bb, &err) != TRESTLE_OK) {
        cli_fail(&err);
        return DIFF_TROUBLE;
    }
    uint64_t la = cli_read_size(&ta), lb = cli_read_size(&tb);
    n->compared_bytes += la;
    if (la != lb || memcmp(ba->p, bb->p, (size_t)la) != 0) {
        n->values++;
        if (!args->quiet)
            printf("values differ: %s\n", ta.name);
    }
    return CLI_EXIT_OK;
}

static void print_only(const char *side, const trestle_checkpoint *c, size_t i)
{
    trestle_tensor_info t;
    char d[300];
    trestle_tensor_get_info(c, i, &t);
    describe(&t, d, sizeof d);
    printf("only in %s: %s  %s\n", side, t.name, d);
}

static void print_summary(const diff_counts *n, int values)
{
    size_t total = n->only_a + n->only_b + n->dtype + n->shape + n->values;
    if (total == 0) {
        char bytes[32];
        cli_human_size(n->compared_bytes, bytes, sizeof bytes);
        if (values)
            printf("identical: %zu tensor%s, %s compared\n", n->common,
                   n->common == 1 ? "" : "s", bytes);
        else
            printf("identical keys, dtypes and shapes: %zu tensor%s (values not compared; "
                   "use --values)\n", n->common, n->common == 1 ? "" : "s");
        return;
    }
    const struct { size_t count; const char *what; } parts[] = {
        { n->only_a, "only in A" }, { n->only_b, "only in B" }, { n->dtype, "dtype" },
        { n->shape, "shape" },      { n->values, "values" },
    };
    printf("different:");
    int first = 1;
    for (size_t k = 0; k < sizeof parts / sizeof parts[0]; k++) {
        if (!parts[k].count)
            continue;
        printf("%s %zu %s", first ? "" : ",", parts[k].count, parts[k].what);
        first = 0;
    }
    putchar('\n');
}

static int diff_checkpoints(const char *pa, const char *pb, const diff_args *args)
{
    trestle_checkpoint *a = NULL, *b = NULL;
    diff_counts n = { 0 };
    buffer ba = { 0 }, bb = { 0 };
    int status = DIFF_TROUBLE;

    if (cli_open(pa, &a) != CLI_EXIT_OK || cli_open(pb, &b) != CLI_EXIT_OK)
        goto done;
    size_t na = trestle_tensor_count(a), nb = trestle_tensor_count(b), i = 0, j = 0;
    while (i < na || j < nb) {
        trestle_tensor_info ta, tb;
        int cmp;
        if (i < na)
            trestle_tensor_get_info(a, i, &ta);
        if (j < nb)
            trestle_tensor_get_info(b, j, &tb);
        /* strcmp orders as unsigned bytes, as the index does. */
        cmp = i >= na ? 1 : j >= nb ? -1 : strcmp(ta.name, tb.name);
        if (cmp < 0) {
            n.only_a++;
            if (!args->quiet)
                print_only("A", a, i);
            i++;
        } else if (cmp > 0) {
            n.only_b++;
            if (!args->quiet)
                print_only("B", b, j);
            j++;
        } else {
            if (compare_common(a, i, b, j, args, &n, &ba, &bb) != CLI_EXIT_OK)
                goto done;
            i++;
            j++;
        }
    }
    if (!args->quiet)
        print_summary(&n, args->values);
    status = n.only_a + n.only_b + n.dtype + n.shape + n.values ? CLI_EXIT_FAIL : CLI_EXIT_OK;
done:
    free(ba.p);
    free(bb.p);
    trestle_close(a);
    trestle_close(b);
    return status;
}

/* ---- op list against checkpoint ---- */

static int diff_ops(const char *pa, const diff_args *args)
{
    trestle_checkpoint *a = NULL;
    trestle_plan *plan = NULL;
    cli_ops ops = { 0 };
    cli_names_rules names = { 0 };
    const char **renames = NULL; /* --names graph: the user's and the object graph's */
    trestle_plan_options popt;
    trestle_error err;
    int status = DIFF_TROUBLE;

    trestle_error_clear(&err);
    if (cli_open(pa, &a) != CLI_EXIT_OK)
        return DIFF_TROUBLE;
    if (cli_op_list_read(args->ops_file, args->tag, TRESTLE_DEST_DISCARD, &ops) != CLI_EXIT_OK)
        goto done;
    trestle_plan_options_init(&popt);
    popt.renames = args->renames;
    popt.num_renames = args->nrenames;
    popt.tf1_rnn_renames = args->rnn;
    popt.op_shapes = ops.shapes;
    if (args->graph_names && (cli_names_renames(a, &names) != CLI_EXIT_OK ||
                              !(renames = cli_names_merge(&popt, &names))))
        goto done;
    /* Missing keys become skipped ops, so every one of them can be listed. */
    popt.allow_missing = 1;
    if (trestle_plan_create(a, ops.ops, ops.n, &popt, &plan, &err) != TRESTLE_OK) {
        /* A dtype or shape mismatch: the op list would not restore. */
        cli_fail(&err);
        status = err.code == TRESTLE_E_NOMEM || err.code == TRESTLE_E_INVALID_ARG ? DIFF_TROUBLE
                                                                                   : CLI_EXIT_FAIL;
        goto done;
    }
    size_t missing = 0, count = trestle_plan_op_count(plan);
    for (size_t i = 0; i < count; i++) {
        trestle_plan_op_info op;
        if (trestle_plan_get_op(plan, i, &op) == TRESTLE_OK &&
            op.skipped == TRESTLE_SKIP_MISSING) {
            missing++;
            if (!args->quiet && (args->all_missing || missing <= MISSING_SHOWN))
                printf("missing from A: %s\n", op.name);
        }
    }
    if (!args->quiet) {
        if (missing > MISSING_SHOWN && !args->all_missing)
            printf("... and %zu more missing from A (--list-missing-all names them all)\n",
                   missing - MISSING_SHOWN);
        if (missing && args->graph_names)
            cli_names_note_shared(a, ops.ops, ops.n);
        if (missing)
            printf("different: %zu of %zu op%s missing from A\n", missing, count,
                   count == 1 ? "" : "s");
        else
            printf("identical: all %zu op%s found in A\n", count, count == 1 ? "" : "s");
    }
    status = missing ? CLI_EXIT_FAIL : CLI_EXIT_OK;
done:
    trestle_plan_free(plan);
    cli_ops_free(&ops);
    free(renames);
    cli_names_rules_free(&names);
    trestle_close(a);
    return status;
}

int cli_diff_main(int argc, char **argv)
{
    enum { OPT_VALUES = 256, OPT_OPS, OPT_RENAME, OPT_RNN, OPT_ALL_MISSING, OPT_NAMES, OPT_TAG };
    static const struct option longopts[] = {
        { "values", no_argument, NULL, OPT_VALUES },
        { "ops", required_argument, NULL, OPT_OPS },
        { "rename", required_argument, NULL, OPT_RENAME },
        { "rnn-renames", no_argument, NULL, OPT_RNN },
        { "list-missing-all", no_argument, NULL, OPT_ALL_MISSING },
        { "names", required_argument, NULL, OPT_NAMES },
        { "tag", required_argument, NULL, OPT_TAG },
        { "quiet", no_argument, NULL, 'q' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    diff_args args = { 0 };
    int c, status;

    args.renames = calloc((size_t)argc, sizeof *args.renames);
    if (!args.renames) {
        cli_error("out of memory");
        return DIFF_TROUBLE;
    }
    cli_getopt_reset();
    while ((c = getopt_long(argc, argv, ":qh", longopts, NULL)) != -1) {
        switch (c) {
        case OPT_VALUES: args.values = 1; break;
        case OPT_OPS: args.ops_file = optarg; break;
        case OPT_TAG: args.tag = optarg; break;
        case OPT_RENAME:
            if (!strchr(optarg, '=') || optarg[0] == '=') {
                status = cli_usage("diff", "--rename wants GRAPH_NAME=CHECKPOINT_KEY, not '%s'",
                                   optarg);
                goto out;
            }
            args.renames[args.nrenames++] = optarg;
            break;
        case OPT_RNN: args.rnn = 1; break;
        case OPT_ALL_MISSING: args.all_missing = 1; break;
        case OPT_NAMES:
            if (strcmp(optarg, "graph") != 0 && strcmp(optarg, "key") != 0) {
                status = cli_usage("diff", "--names is 'key' or 'graph', not '%s'", optarg);
                goto out;
            }
            args.graph_names = strcmp(optarg, "graph") == 0;
            break;
        case 'q': args.quiet = 1; break;
        case 'h':
            fputs(diff_help, stdout);
            status = CLI_EXIT_OK;
            goto out;
        default:
            status = cli_bad_option("diff", argv, c);
            goto out;
        }
    }
    /* A graph on either side is the op list its saver restores. */
    if (!args.ops_file && argc - optind == 2) {
        for (int side = 0; side < 2; side++)
            if (cli_graph_is_path(argv[optind + side])) {
                args.ops_file = argv[optind + side];
                argv[optind + side] = argv[optind + 1 - side];
                argc--;
                break;
            }
    }
    int want = args.ops_file ? 1 : 2;
    if (argc - optind != want) {
        status = cli_usage("diff", args.ops_file ? "with --ops, give one checkpoint A (got %d)"
                                                 : "give two checkpoints A and B (got %d)",
                           argc - optind);
        goto out;
    }
    if (args.values && args.ops_file) {
        status = cli_usage("diff", "--values compares the tensor bytes of two checkpoints; a "
                                   "graph or --ops FILE checks names against one");
        goto out;
    }
    if (args.tag && !args.ops_file) {
        status = cli_usage("diff", "--tag picks a SavedModel's meta graph; it needs a graph");
        goto out;
    }
    if (!args.ops_file && (args.nrenames || args.rnn)) {
        status = cli_usage("diff", "--rename and --rnn-renames apply only with --ops");
        goto out;
    }
    status = args.ops_file ? diff_ops(argv[optind], &args)
                           : diff_checkpoints(argv[optind], argv[optind + 1], &args);
out:
    free(args.renames);
    return status;
}
