/*
 * cli_graph.c - graphs on the command line: `trestle ops` (an op list as an
 * ops file, from a graph's saver or from a checkpoint's listing), the op
 * list behind `trestle restore --graph`, and the hint for a graph file
 * given where a checkpoint is expected.
 *
 * The ops file is the hand-off format: `trestle ops --graph model.meta`
 * writes what the saver would restore, in the format `restore --ops` and
 * `diff --ops` read back unchanged (tools/cli_opsfile.c).
 */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "trestle_graph.h"

static const char ops_help[] =
    "Usage: trestle ops [OPTIONS] --graph GRAPH\n"
    "       trestle ops [OPTIONS] CHECKPOINT\n"
    "\n"
    "Print an op list in the ops-file format that 'trestle restore --ops' and\n"
    "'trestle diff --ops' read: one op per line, NAME<TAB>SHAPE_AND_SLICES<TAB>\n"
    "dtype=DTYPE, after '#' comment lines saying where it came from.\n"
    "\n"
    "With --graph, the ops are what the graph's saver restores: every RestoreV2\n"
    "(or, in 2016 graphs, RestoreSlice) node its SaverDef's restore op reaches,\n"
    "including those inside a TF2 SavedModel's restore function; restore nodes\n"
    "that are not the saver's (warm starts, a second saver) are left out. A\n"
    "graph without a saver gives the global variables of its collections, each\n"
    "by its op name (with its slice when partitioned), as a default\n"
    "tf.compat.v1.train.Saver() would restore them.\n"
    "GRAPH is a .meta file, a checkpoint prefix P with P.meta beside it, a\n"
    "saved_model.pb or a SavedModel directory. Without --graph, the ops are\n"
    "every tensor a CHECKPOINT lists, whole; with --names graph, a TF2\n"
    "checkpoint's tensors are named by their object-graph names (dense/kernel)\n"
    "where one key has that name, for 'restore --names graph'.\n"
    "\n"
    "Options:\n"
    "      --graph GRAPH   read the op list from a graph file\n"
    "      --tag TAG       SavedModel: the meta graph tagged TAG (default: the\n"
    "                      only one, else the one tagged 'serve', else the first)\n"
    "      --names MODE    with CHECKPOINT: 'key' (default) or 'graph'\n"
    "  -q, --quiet         no '#' comment lines\n"
    "  -h, --help          show this help\n"
    "\n"
    "Exit status: 0 on success, 1 when the graph or checkpoint cannot be read\n"
    "(the error names the file and byte offset), 2 for a bad command line, 4\n"
    "when the graph restores nothing (no saver and no variables).\n"
    "\n"
    "Examples:\n"
    "  trestle ops --graph ckpt/model.ckpt-1000.meta > ops.txt\n"
    "  trestle ops --graph saved_model_dir --tag train\n"
    "  trestle restore ckpt/model.ckpt-1000 --graph ckpt/model.ckpt-1000.meta\n";

/* Would cli_ops_read() read `name` back unchanged as an op's NAME? */
static int ops_file_safe(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || strpbrk(name, "\t\n\r"))
        return 0;
    if (name[0] == ' ' || name[n - 1] == ' ')
        return 0;
    return name[0] != '#';
}

int cli_ops_write_line(FILE *f, const trestle_op *op)
{
    const char *spec = op->shape_and_slices ? op->shape_and_slices : "";
    if (!ops_file_safe(op->name) || strpbrk(spec, "\t\n\r")) {
        cli_error("op '%s' cannot be written in an ops file (a TAB, newline, leading '#' "
                  "or edge space in it would not read back)", op->name);
        return -1;
    }
    fprintf(f, "%s\t%s", op->name, spec);
    if (op->dtype != TRESTLE_DT_INVALID)
        fprintf(f, "\tdtype=%s", trestle_dtype_name(op->dtype));
    fputc('\n', f);
    return 0;
}

static int explain_source(const char *path, const trestle_graph *g);

static int open_graph(const char *path, const char *tag, trestle_graph **out)
{
    trestle_graph_options o;
    trestle_error err;
    trestle_graph_options_init(&o);
    o.tag = tag;
    trestle_error_clear(&err);
    if (trestle_graph_open(path, &o, out, &err) != TRESTLE_OK)
        return cli_fail(&err);
    return CLI_EXIT_OK;
}

static void print_graph_comments(const trestle_graph *g)
{
    trestle_graph_info gi;
    trestle_graph_get_info(g, &gi);
    printf("# graph: %s (%s%s%s%s%s)\n", gi.path,
           gi.kind == TRESTLE_GRAPH_SAVED_MODEL ? "SavedModel" : "MetaGraphDef",
           gi.tags[0] ? ", tags " : "", gi.tags,
           gi.tensorflow_version[0] ? ", TensorFlow " : "", gi.tensorflow_version);
    if (gi.restore_op[0])
        printf("# restore op: %s, %zu restore node%s, %zu op%s\n", gi.restore_op,
               gi.restore_nodes, gi.restore_nodes == 1 ? "" : "s", trestle_graph_op_count(g),
               trestle_graph_op_count(g) == 1 ? "" : "s");
    else if (trestle_graph_op_source(g) == TRESTLE_GRAPH_OPS_VARIABLES)
        printf("# no saver: the %zu global variable%s of its collections, as a default "
               "Saver restores them\n", trestle_graph_op_count(g),
               trestle_graph_op_count(g) == 1 ? "" : "s");
    /* Where the checkpoint normally is, which need not exist: a SavedModel
     * exported without its variables/ has none. */
    struct stat st;
    char *index = NULL;
    /* (At a URL, finding out would cost a request to the store: not checked.) */
    if (!trestle_is_url(gi.checkpoint_prefix) &&
        asprintf(&index, "%s.index", gi.checkpoint_prefix) > 0 && stat(index, &st) != 0)
        printf("# checkpoint: %s (absent: no %s)\n", gi.checkpoint_prefix, index);
    else
        printf("# checkpoint: %s\n", gi.checkpoint_prefix);
    free(index);
}

static int ops_from_graph(const char *path, const char *tag, int quiet)
{
    trestle_graph *g = NULL;
    if (open_graph(path, tag, &g) != CLI_EXIT_OK)
        return CLI_EXIT_FAIL;
    if (trestle_graph_op_count(g) == 0) {
        int status = explain_source(path, g);
        trestle_graph_close(g);
        return status;
    }
    if (!quiet)
        print_graph_comments(g);
    int status = CLI_EXIT_OK;
    const trestle_op *ops = trestle_graph_ops(g);
    for (size_t i = 0; i < trestle_graph_op_count(g) && status == CLI_EXIT_OK; i++)
        if (cli_ops_write_line(stdout, &ops[i]) != 0)
            status = CLI_EXIT_FAIL;
    trestle_graph_close(g);
    return status;
}

/* The graph name rule "graph=key" gives `key`, or NULL. */
static const char *graph_name_of(const cli_names_rules *r, const char *key, char *buf, size_t cap)
{
    for (size_t i = 0; i < r->n; i++) {
        const char *eq = strchr(r->rules[i], '=');
        if (eq && strcmp(eq + 1, key) == 0 && (size_t)(eq - r->rules[i]) < cap) {
            snprintf(buf, cap, "%.*s", (int)(eq - r->rules[i]), r->rules[i]);
            return buf;
        }
    }
    return NULL;
}

static int ops_from_checkpoint(const char *path, int quiet, int graph_names)
{
    trestle_checkpoint *c = NULL;
    cli_names_rules names = { 0 };
    char name[4096];
    if (cli_open(path, &c) != CLI_EXIT_OK)
        return CLI_EXIT_FAIL;
    if (graph_names && cli_names_renames(c, &names) != CLI_EXIT_OK) {
        trestle_close(c);
        return CLI_EXIT_FAIL;
    }
    trestle_checkpoint_info ci;
    trestle_checkpoint_get_info(c, &ci);
    if (!quiet)
        printf("# checkpoint: %s, %zu tensors\n", ci.prefix, trestle_tensor_count(c));
    int status = CLI_EXIT_OK;
    for (size_t i = 0; i < trestle_tensor_count(c) && status == CLI_EXIT_OK; i++) {
        trestle_tensor_info t;
        if (trestle_tensor_get_info(c, i, &t) != TRESTLE_OK)
            continue;
        const char *as = graph_names ? graph_name_of(&names, t.name, name, sizeof name) : NULL;
        trestle_op op = { .name = as ? as : t.name, .dtype = t.dtype };
        if (cli_ops_write_line(stdout, &op) != 0)
            status = CLI_EXIT_FAIL;
    }
    cli_names_rules_free(&names);
    trestle_close(c);
    return status;
}

enum { OPT_GRAPH = 256, OPT_TAG, OPT_NAMES };

int cli_ops_main(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "graph", required_argument, NULL, OPT_GRAPH },
        { "tag", required_argument, NULL, OPT_TAG },
        { "names", required_argument, NULL, OPT_NAMES },
        { "quiet", no_argument, NULL, 'q' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    const char *graph = NULL, *tag = NULL;
    int quiet = 0, graph_names = 0, c;
    cli_getopt_reset();
    while ((c = getopt_long(argc, argv, ":qh", longopts, NULL)) != -1) {
        switch (c) {
        case OPT_GRAPH: graph = optarg; break;
        case OPT_TAG: tag = optarg; break;
        case OPT_NAMES:
            if (strcmp(optarg, "graph") != 0 && strcmp(optarg, "key") != 0)
                return cli_usage("ops", "--names is 'key' or 'graph', not '%s'", optarg);
            graph_names = strcmp(optarg, "graph") == 0;
            break;
        case 'q': quiet = 1; break;
        case 'h': fputs(ops_help, stdout); return CLI_EXIT_OK;
        default: return cli_bad_option("ops", argv, c);
        }
    }
    int rest = argc - optind;
    if (graph && rest > 0)
        return cli_usage("ops", "--graph takes the place of CHECKPOINT; got both");
    if (!graph && rest == 0)
        return cli_usage("ops", "missing --graph GRAPH or CHECKPOINT");
    if (!graph && rest > 1)
        return cli_usage("ops", "expected one CHECKPOINT, got %d arguments", rest);
    if (tag && !graph)
        return cli_usage("ops", "--tag goes with --graph");
    if (graph_names && graph)
        return cli_usage("ops", "--names graph goes with CHECKPOINT, not --graph");
    return graph ? ops_from_graph(graph, tag, quiet)
                 : ops_from_checkpoint(argv[optind], quiet, graph_names);
}

/* Copy the graph's declared shapes (when it has any) into out->shapes. */
static int copy_shapes(const trestle_graph *g, cli_ops *out)
{
    const trestle_shape *sh = trestle_graph_op_shapes(g);
    size_t n = trestle_graph_op_count(g), total = 0;
    if (!sh)
        return 0;
    for (size_t i = 0; i < n; i++)
        total += sh[i].rank > 0 ? (size_t)sh[i].rank : 0;
    out->shapes = calloc(n ? n : 1, sizeof *out->shapes);
    out->shape_dims = calloc(total ? total : 1, sizeof *out->shape_dims);
    if (!out->shapes || !out->shape_dims)
        return -1;
    for (size_t i = 0, at = 0; i < n; i++) {
        out->shapes[i].rank = sh[i].rank;
        if (sh[i].rank > 0) {
            memcpy(out->shape_dims + at, sh[i].dims, (size_t)sh[i].rank * sizeof *sh[i].dims);
            out->shapes[i].dims = out->shape_dims + at;
            at += (size_t)sh[i].rank;
        }
    }
    return 0;
}

/* Say why a graph gives no ops, or where ops that no saver names came from. */
static int explain_source(const char *path, const trestle_graph *g)
{
    trestle_graph_info gi;
    trestle_graph_get_info(g, &gi);
    size_t n = trestle_graph_op_count(g);
    if (trestle_graph_op_source(g) == TRESTLE_GRAPH_OPS_VARIABLES) {
        fprintf(stderr, "note: %s has no saver; restoring the %zu global variable%s of its "
                        "collections, as a default tf.compat.v1.train.Saver() would\n",
                path, n, n == 1 ? "" : "s");
        return CLI_EXIT_OK;
    }
    if (n > 0)
        return CLI_EXIT_OK;
    /* An empty op list would mean "every tensor" to the planner. A saver
     * whose restore op runs no restore node is a saver all the same. */
    char why[512];
    if (gi.restore_op[0])
        snprintf(why, sizeof why, "its saver's restore op '%s' reaches no restore node "
                 "(RestoreV2, RestoreSlice or Restore)", gi.restore_op);
    else
        snprintf(why, sizeof why, "it has no saver (no SaverDef) and no variables in its "
                 "collections");
    cli_error("%s: the graph restores nothing: %s%s%s%s", path, why,
              gi.tags[0] ? " (meta graph tagged " : "", gi.tags, gi.tags[0] ? ")" : "");
    return CLI_EXIT_NOTHING;
}

int cli_graph_ops(const char *path, const char *tag, int dest_kind, cli_ops *out)
{
    trestle_graph *g = NULL;
    memset(out, 0, sizeof *out);
    if (open_graph(path, tag, &g) != CLI_EXIT_OK)
        return CLI_EXIT_FAIL;
    int status = explain_source(path, g);
    if (status != CLI_EXIT_OK) {
        trestle_graph_close(g);
        return status;
    }
    size_t n = trestle_graph_op_count(g);
    const trestle_op *ops = trestle_graph_ops(g);
    out->ops = calloc(n ? n : 1, sizeof *out->ops);
    out->strings = calloc(2 * n + 1, sizeof *out->strings);
    if (!out->ops || !out->strings || copy_shapes(g, out) != 0)
        goto nomem;
    for (size_t i = 0; i < n; i++) {
        char *name = strdup(ops[i].name), *spec = strdup(ops[i].shape_and_slices);
        if (name)
            out->strings[out->nstrings++] = name;
        if (spec)
            out->strings[out->nstrings++] = spec;
        if (!name || !spec)
            goto nomem;
        out->ops[i] = ops[i];
        out->ops[i].name = name;
        out->ops[i].shape_and_slices = spec;
        out->ops[i].dest_kind = dest_kind;
        out->n++;
    }
    trestle_graph_close(g);
    return CLI_EXIT_OK;
nomem:
    cli_error("out of memory");
    cli_ops_free(out);
    trestle_graph_close(g);
    return CLI_EXIT_FAIL;
}

int cli_graph_is_path(const char *given)
{
    struct stat st;
    char path[4200];
    /* A URL by its name alone (its query left out): asking the store costs a request. */
    trestle_url_redact(given, path, sizeof path);
    if (trestle_is_url(given)) {
        char *q = strstr(path, "?<redacted>");
        if (q)
            *q = '\0';
    }
    size_t n = strlen(path);
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
        /* A SavedModel directory, not a checkpoint directory. */
        char *pb = malloc(n + sizeof "/saved_model.pb");
        int is = 0;
        if (pb) {
            snprintf(pb, n + sizeof "/saved_model.pb", "%s/saved_model.pb", path);
            is = stat(pb, &st) == 0;
            free(pb);
        }
        return is;
    }
    return (n >= 5 && strcmp(path + n - 5, ".meta") == 0) ||
           (n >= 3 && strcmp(path + n - 3, ".pb") == 0);
}

int cli_op_list_read(const char *path, const char *tag, int dest_kind, cli_ops *out)
{
    /* An ops file is local; a URL here names a graph (a SavedModel "directory" too). */
    if (cli_graph_is_path(path) || trestle_is_url(path))
        return cli_graph_ops(path, tag, dest_kind, out);
    if (tag) {
        memset(out, 0, sizeof *out);
        cli_error("--tag picks a SavedModel's meta graph, but %s is an ops file, not a graph",
                  path);
        return CLI_EXIT_USAGE;
    }
    return cli_ops_read(path, dest_kind, out);
}
