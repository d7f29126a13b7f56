/*
 * cli_check.c - `trestle check GRAPH|OPSFILE CHECKPOINT`: a preflight of a
 * restore, before anything is read. It plans the restore as given (the
 * verdict), then reports every key the op list asks for that the
 * checkpoint lacks, every dtype and shape mismatch, the keys nothing
 * restores, and the renames inferred from that evidence, each with how
 * many keys it fixes and why it is safe, ready to paste. The inference is
 * the library's (trestle_infer_renames()); this file only reads the
 * command line, and tools/cli_check_report.c prints. Inferred renames are proven, not trusted: the
 * library plans the restore again with them, and only a plan that
 * succeeds earns the "fixable" exit code.
 */
#include <errno.h>
#include <getopt.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "cli_check.h"
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
    "                       as names: 'restore --ops FILE' then needs no renames;\n"
    "                       otherwise nothing is written, and it says so\n"
    "      --list-all       name every missing op and unused key (text lists\n"
    "                       stop at 100 of each, then give a count)\n"
    "  -j, --json           print JSON instead of text (always every name)\n"
    "  -h, --help           show this help\n"
    "\n"
    "GRAPH|OPSFILE comes first: a checkpoint there (a directory that is no\n"
    "SavedModel, an .index or data file, a prefix) is a usage error that shows\n"
    "the arguments the other way round.\n"
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
        cli_error("--write-ops: cannot write %s: %s", path, strerror(errno));
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
    /* fclose flushes: a full disk shows here, with its errno. */
    if ((ferror(f) | fclose(f)) != 0 && rc == 0) {
        cli_error("--write-ops: cannot write %s: %s", path, strerror(errno));
        rc = -1;
    }
    /* Half an op list would restore half the model: leave none. */
    if (rc != 0)
        unlink(path);
    trestle_plan_free(p);
    return rc;
}

/* The first argument names a checkpoint, not a graph or ops file: a
 * directory other than a SavedModel's, an .index or data file, or a
 * prefix with an .index beside it. */
static int is_checkpoint(const char *path)
{
    struct stat st;
    char *index = NULL;
    if (cli_graph_is_path(path))
        return 0;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
        return 1;
    size_t n = strlen(path);
    if ((n > 6 && strcmp(path + n - 6, ".index") == 0) || strstr(path, ".data-"))
        return 1;
    int found = asprintf(&index, "%s.index", path) > 0 && stat(index, &st) == 0;
    free(index);
    return found;
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
        cli_check_print_json(ops, c, inf);
    else
        cli_check_print_text(a, c, inf);
    trestle_inference_info v;
    trestle_inference_get_info(inf, &v);
    if (a->write_ops && !v.restores && !v.fixable)
        cli_error("--write-ops: nothing written to %s: the restore fails%s", a->write_ops,
                  v.rules ? " even with the inferred renames" : "");
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
    if (is_checkpoint(a.source)) {
        if (cli_graph_is_path(a.ckpt) || !is_checkpoint(a.ckpt))
            status = cli_usage("check", "the graph or ops file comes first, then the checkpoint: "
                                        "'%s' is a checkpoint (swapped? try: trestle check '%s' "
                                        "'%s')", a.source, a.ckpt, a.source);
        else
            status = cli_usage("check", "the graph or ops file comes first, then the checkpoint: "
                                        "'%s' is a checkpoint", a.source);
        goto out;
    }

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
