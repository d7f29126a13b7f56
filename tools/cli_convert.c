/*
 * cli_convert.c - `trestle convert CKPT OUT.safetensors`: a restore whose
 * destination is a safetensors file (trestle_conversion_create/write).
 *
 * Takes what `trestle restore` takes to choose tensors (an ops file,
 * renames, exclusions, --allow-missing, --as) so a conversion is exactly a
 * restore written down, plus what a file for another framework needs: the
 * names it wants (--key, --key-regex) and 2-D kernels transposed
 * (--transpose). --list shows the plan without writing. Ctrl-C, SIGTERM
 * and SIGHUP (cli_signal.c) cancel at the next finished tensor, or remove
 * the temporary file when flushing, and, like any failure, leave no
 * output file behind.
 */
#include <getopt.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

static const char convert_help[] =
    "Usage: trestle convert [OPTIONS] CKPT OUT.safetensors\n"
    "       trestle convert --list [OPTIONS] CKPT\n"
    "\n"
    "Write the tensors of a TensorFlow checkpoint into a safetensors file (the\n"
    "format of huggingface safetensors: an 8-byte header length, a JSON header\n"
    "with each tensor's dtype, shape and byte range, then the raw tensors), as\n"
    "fast as the checkpoint can be read. It is a restore into the file: the same\n"
    "reads, every CRC32C checked, each byte read once. The file appears only when\n"
    "complete (written as OUT.safetensors.tmp-XXXXXX, flushed, then renamed); a\n"
    "failure, Ctrl-C, SIGTERM or SIGHUP leaves nothing behind. OUT may not be\n"
    "one of the checkpoint's own files, nor a device, FIFO or directory. Sizes\n"
    "are binary (MiB, GiB), rates GB/s (1e9 bytes per second).\n"
    "\n"
    "What goes in (as for 'trestle restore'):\n"
    "      --ops FILE         the ops listed in FILE (NAME<TAB>SHAPE_AND_SLICES<TAB>\n"
    "                         dtype=DTYPE<TAB>as=DTYPE); tensors are named by op name\n"
    "      --rename A=B       with --ops: op name A is read from checkpoint key B\n"
    "                         (repeatable; 'a/=b/' renames every name under a/). To\n"
    "                         name the tensors in the file, use --key\n"
    "      --rnn-renames      with --ops: also try TF 1.x RNN renames (weights ->\n"
    "                         kernel, ...)\n"
    "      --exclude GLOB     leave out names matching GLOB (repeatable), e.g.\n"
    "                         --exclude '*/Adam*' --exclude '*/.OPTIMIZER_SLOT/*'\n"
    "      --allow-missing    leave out ops whose key is not in the checkpoint\n"
    "      --skip-unsupported leave out variant tensors (tf.data iterator states),\n"
    "                         which are refused otherwise\n"
    "      --as DTYPE         without --ops: store every tensor that converts to\n"
    "                         DTYPE as DTYPE (float32 -> bfloat16/float16, bfloat16/\n"
    "                         float16 -> float32), the rest as stored\n"
    "Without --ops every tensor goes in under its checkpoint key, except string\n"
    "tensors (such as TF2's _CHECKPOINTABLE_OBJECT_GRAPH), which safetensors\n"
    "cannot hold; they are skipped, and named in the summary.\n"
    "\n"
    "Names and layout in the file (for another framework, e.g. PyTorch):\n"
    "      --key FROM=TO      the tensor named FROM is named TO in the file; with\n"
    "                         FROM ending in '/', every name starting with FROM has\n"
    "                         that prefix replaced by TO ('model/=' drops it)\n"
    "      --key-regex PATTERN=REPLACEMENT\n"
    "                         every match of the POSIX extended regular expression\n"
    "                         PATTERN (no bare '=': write [=]) is replaced, \\1..\\9\n"
    "                         standing for its groups, \\0 for the match\n"
    "                         --key and --key-regex (repeatable) apply in the order\n"
    "                         given, each to the name the ones before it left, as a\n"
    "                         sed script; each must match some tensor\n"
    "      --transpose GLOB   write the 2-D tensors whose name (before --key)\n"
    "                         matches GLOB transposed: [a, b] becomes [b, a] (TF's\n"
    "                         Dense kernels are [in, out], torch's Linear weights\n"
    "                         [out, in]); done as each tensor lands, not in a\n"
    "                         second pass (repeatable)\n"
    "  -l, --list             write nothing: print each tensor, its name in the file,\n"
    "                         dtype and shape there, and what is left out and why\n"
    "\n"
    "How:\n"
    "      --threads N        verify/copy workers (default: cores, at most 8)\n"
    "      --no-sync          do not flush the file to disk before the rename\n"
    "                         (faster; a crash soon after may lose the file)\n"
    "  -q, --quiet            print nothing but errors (no progress bar, which is\n"
    "                         otherwise drawn on a terminal after half a second)\n"
    "  -h, --help             show this help\n"
    CLI_REMOTE_HELP
    "\n"
    "Exit status: 0 on success, 1 when the conversion fails (nothing written),\n"
    "2 for a bad command line.\n"
    "\n"
    "Examples:\n"
    "  trestle convert ckpt_dir model.safetensors\n"
    "  trestle convert --exclude '*/.OPTIMIZER_SLOT/*' --as bfloat16 run/ckpt-3 model.safetensors\n"
    "  trestle convert --ops ops.txt --rename bert/=model/bert/ ckpt out.safetensors\n"
    "  trestle convert --key model/= ckpt out.safetensors      # drop the model/ prefix\n"
    "  trestle convert --exclude '*adam*' --exclude global_step \\\n"
    "      --key-regex 'layer_([0-9]+)=layer.\\1' --key-regex '/=.' \\\n"
    "      --key-regex '(kernel|gamma)$=weight' --key-regex 'beta$=bias' \\\n"
    "      --transpose '*/kernel' --list bert_tf/     # Google's BERT names -> torch's\n"
    "Read it back in Python with safetensors.numpy.load_file, safetensors.torch or\n"
    "trestle.load_safetensors.\n";

enum { OPT_OPS = 256, OPT_RENAME, OPT_RNN, OPT_EXCLUDE, OPT_ALLOW_MISSING, OPT_SKIP_UNSUPPORTED,
       OPT_AS, OPT_KEY, OPT_KEY_REGEX, OPT_TRANSPOSE, OPT_THREADS, OPT_NO_SYNC };

static const struct option convert_longopts[] = {
    { "ops", required_argument, NULL, OPT_OPS },
    { "rename", required_argument, NULL, OPT_RENAME },
    { "rnn-renames", no_argument, NULL, OPT_RNN },
    { "exclude", required_argument, NULL, OPT_EXCLUDE },
    { "allow-missing", no_argument, NULL, OPT_ALLOW_MISSING },
    { "skip-unsupported", no_argument, NULL, OPT_SKIP_UNSUPPORTED },
    { "as", required_argument, NULL, OPT_AS },
    { "key", required_argument, NULL, OPT_KEY },
    { "key-regex", required_argument, NULL, OPT_KEY_REGEX },
    { "transpose", required_argument, NULL, OPT_TRANSPOSE },
    { "list", no_argument, NULL, 'l' },
    { "threads", required_argument, NULL, OPT_THREADS },
    { "no-sync", no_argument, NULL, OPT_NO_SYNC },
    CLI_REMOTE_LONGOPTS,
    { "quiet", no_argument, NULL, 'q' },
    { "help", no_argument, NULL, 'h' },
    { NULL, 0, NULL, 0 },
};

/* What the command line asked for; pointers into argv unless noted. */
typedef struct convert_args {
    const char *ops_file;
    const char *out;
    int list, quiet;   /* --list, --quiet */
    char **owned;      /* "re:..." rules made from --key-regex (malloc'd) */
    size_t nowned;
} convert_args;

/* The ready callback's `user`: the bar, which starts after planning. */
typedef struct convert_watch {
    cli_progress *bar;  /* NULL without one */
} convert_watch;

/* Per tensor written: count it for the bar, and stop once a signal is
 * taken (cli_signal.c). */
static int on_written(void *user, size_t i, const trestle_plan_op_info *op)
{
    convert_watch *w = user;
    return w->bar ? cli_progress_on_ready(w->bar, i, op) : cli_signals_ready(NULL, i, op);
}

/* --list: every entry, its name and shape in the file, or why it is out. */
static int print_entries(const trestle_conversion *cv)
{
    static const char *const headers[] = { "TENSOR", "NAME IN FILE", "DTYPE", "SHAPE", "SIZE" };
    static const int right[] = { 0, 0, 0, 0, 1 };
    cli_table *tab = cli_table_new(5, headers, right);
    if (!tab)
        return -1;
    int ok = 1;
    for (size_t i = 0; ok && i < trestle_conversion_count(cv); i++) {
        trestle_conversion_entry e;
        char shape[256] = "-", size[32] = "-", note[80], dtype[64] = "-";
        const char *name = "";
        trestle_conversion_get(cv, i, &e);
        if (e.skipped) {
            snprintf(note, sizeof note, "(%s)", cli_skip_reason(e.skipped));
            name = note;
        } else {
            /* Only a new name says something: a name kept as is leaves it blank. */
            name = strcmp(e.out_name, e.name) == 0 ? "" : e.out_name;
            snprintf(dtype, sizeof dtype, "%s%s%s",
                     e.out_dtype != e.dtype ? cli_conversion_name(e.dtype) : "",
                     e.out_dtype != e.dtype ? "->" : "", cli_conversion_name(e.out_dtype));
            cli_shape_format(e.rank, e.dims, shape, sizeof shape);
            if (e.transposed)
                strncat(shape, " (transposed)", sizeof shape - strlen(shape) - 1);
            cli_human_size(e.bytes, size, sizeof size);
        }
        const char *row[] = { e.name, name, dtype, shape, size };
        ok = cli_table_add(tab, row) == 0;
    }
    if (ok)
        cli_table_print(tab, stdout);
    cli_table_free(tab);
    return ok ? 0 : -1;
}

#define SKIPPED_NAMED 10 /* names printed per reason; --list gives them all */

/* One line per reason something was left out, naming the tensors. */
static void print_skipped(const trestle_conversion *cv)
{
    for (int reason = 1; reason <= TRESTLE_SKIP_NO_SAFETENSORS; reason++) {
        size_t n = 0;
        for (size_t i = 0; i < trestle_conversion_count(cv); i++) {
            trestle_conversion_entry e;
            trestle_conversion_get(cv, i, &e);
            if (e.skipped != reason)
                continue;
            if (n == 0)
                printf("skipped (%s): %s", cli_skip_reason(reason), e.name);
            else if (n < SKIPPED_NAMED)
                printf(", %s", e.name);
            n++;
        }
        if (n > SKIPPED_NAMED)
            printf(", and %zu more (--list names them all)", n - SKIPPED_NAMED);
        if (n)
            putchar('\n');
    }
}

static int write_file(trestle_conversion *cv, const convert_args *a, convert_watch *w)
{
    trestle_convert_stats st;
    trestle_error err;
    uint64_t total = 0;
    struct timespec t0, t1;

    for (size_t i = 0; i < trestle_conversion_count(cv); i++) {
        trestle_conversion_entry e;
        trestle_conversion_get(cv, i, &e);
        total += e.skipped ? 0 : e.bytes;
    }
    cli_signals_test_pause("before-restore");
    if (cli_interrupted())
        return CLI_EXIT_FAIL;
    cli_signals_guard_temp(a->out); /* a signal while flushing removes the temporary file */
    clock_gettime(CLOCK_MONOTONIC, &t0);
    w->bar = cli_progress_start(NULL, total, !a->quiet && isatty(STDERR_FILENO));
    int rc = trestle_conversion_write(cv, a->out, &st, &err);
    cli_progress_stop(w->bar);
    w->bar = NULL;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    cli_signals_pop_cleanup();
    if (rc != TRESTLE_OK) {
        if (!cli_interrupted()) /* else the library's cancel message is no news */
            cli_fail(&err);
        return CLI_EXIT_FAIL;
    }
    if (cli_interrupted()) { /* the signal came in the last moments of the flush */
        cli_error("%s was complete before the signal could stop it; it is kept", a->out);
        return CLI_EXIT_FAIL;
    }
    if (!a->quiet) {
        char size[32], skipped[48] = "";
        /* The whole conversion: planning, allocating and flushing the file
         * as well as the restore into it. */
        double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
        cli_human_size(st.file_bytes, size, sizeof size);
        if (st.skipped)
            snprintf(skipped, sizeof skipped, " (%zu skipped)", st.skipped);
        printf("wrote %s: %zu tensor%s%s, %s in %.3f s", a->out, st.tensors,
               st.tensors == 1 ? "" : "s", skipped, size, secs);
        if (secs > 0)
            printf(": %.2f GB/s", (double)st.file_bytes / secs / 1e9);
        printf(" (CRC32C verified)\n");
        print_skipped(cv);
    }
    return CLI_EXIT_OK;
}

/* OUT may not be the ops file either: the rename would replace it. */
static int check_not_ops_file(const convert_args *a)
{
    struct stat o, f;
    if (!a->ops_file || strcmp(a->ops_file, "-") == 0 || stat(a->out, &o) != 0 ||
        stat(a->ops_file, &f) != 0 || o.st_dev != f.st_dev || o.st_ino != f.st_ino)
        return CLI_EXIT_OK;
    cli_error("cannot write to %s: it is the same file as the ops file %s; write the file "
              "elsewhere", a->out, a->ops_file);
    return CLI_EXIT_FAIL;
}

static int run_convert(trestle_checkpoint *ckpt, const convert_args *a,
                       trestle_convert_options *copt)
{
    cli_ops ops = { 0 };
    trestle_conversion *cv = NULL;
    trestle_error err;
    trestle_restore_options ropt = *copt->restore;
    convert_watch watch = { NULL };
    int status = CLI_EXIT_FAIL;

    if (a->ops_file && cli_ops_read(a->ops_file, TRESTLE_DEST_ALLOCATE, &ops) != CLI_EXIT_OK)
        return CLI_EXIT_FAIL;
    if (copt->as_dtype && cli_as_check(ckpt, copt->as_dtype) != CLI_EXIT_OK)
        goto done;
    if (!a->list && check_not_ops_file(a) != CLI_EXIT_OK)
        goto done;
    ropt.on_ready = on_written;
    ropt.user = &watch;
    copt->restore = &ropt;
    if (trestle_conversion_create(ckpt, a->ops_file ? ops.ops : NULL, ops.n, copt, &cv, &err) !=
        TRESTLE_OK) {
        cli_fail(&err);
        goto done;
    }
    if (a->list)
        status = print_entries(cv) == 0 ? CLI_EXIT_OK : CLI_EXIT_FAIL;
    else
        status = write_file(cv, a, &watch);
done:
    trestle_conversion_free(cv);
    cli_ops_free(&ops);
    return status;
}

/* One option; CLI_EXIT_OK, or a usage error (reported). */
static int parse_option(int c, convert_args *a, trestle_plan_options *popt,
                        trestle_restore_options *ropt, trestle_convert_options *copt,
                        const char **keys, const char **transposes, char **argv)
{
    long long v;
    switch (c) {
    case 'q': a->quiet = 1; break;
    case 'l': a->list = 1; break;
    case OPT_OPS: a->ops_file = optarg; break;
    case OPT_RENAME:
        if (!strchr(optarg, '=') || optarg[0] == '=')
            return cli_usage("convert", "--rename wants GRAPH_NAME=CHECKPOINT_KEY, not '%s'",
                             optarg);
        ((const char **)popt->renames)[popt->num_renames++] = optarg;
        break;
    case OPT_RNN: popt->tf1_rnn_renames = 1; break;
    case OPT_EXCLUDE: ((const char **)popt->excludes)[popt->num_excludes++] = optarg; break;
    case OPT_ALLOW_MISSING: popt->allow_missing = 1; break;
    case OPT_SKIP_UNSUPPORTED: popt->skip_unsupported = 1; break;
    case OPT_AS:
        if ((copt->as_dtype = trestle_dtype_from_name(optarg)) == TRESTLE_DT_INVALID)
            return cli_usage("convert", "--as wants a dtype such as bfloat16 or float32, not '%s'",
                             optarg);
        break;
    case OPT_KEY:
        if (strncmp(optarg, "re:", 3) == 0)
            return cli_usage("convert", "--key '%s': a regular expression goes in --key-regex",
                             optarg);
        keys[copt->num_key_rules++] = optarg;
        break;
    case OPT_KEY_REGEX: {
        char *rule = malloc(strlen(optarg) + 4);
        if (!rule) {
            cli_error("out of memory");
            return CLI_EXIT_FAIL;
        }
        strcpy(rule, "re:");
        strcat(rule, optarg);
        a->owned[a->nowned++] = rule;
        keys[copt->num_key_rules++] = rule;
        break;
    }
    case OPT_TRANSPOSE: transposes[copt->num_transpose++] = optarg; break;
    case OPT_THREADS:
        if (cli_parse_int(optarg, 1, 1024, &v) != 0)
            return cli_usage("convert", "--threads wants a number from 1 to 1024, not '%s'",
                             optarg);
        ropt->threads = (unsigned)v;
        break;
    case OPT_NO_SYNC: copt->sync = 0; break;
    case CLI_OPT_CONNECTIONS:
    case CLI_OPT_ATTEMPTS:
    case CLI_OPT_BACKOFF: return cli_remote_option("convert", c, optarg);
    default: return cli_bad_option("convert", argv, c);
    }
    return CLI_EXIT_OK;
}

/* The combinations that would do nothing or cannot be. */
static int check_args(const convert_args *a, const trestle_plan_options *popt,
                      const trestle_convert_options *copt, int nargs)
{
    if (nargs != (a->list ? 1 : 2) && !(a->list && nargs == 2))
        return cli_usage("convert", "expected CKPT and OUT.safetensors%s, got %d argument%s",
                         a->list ? " (or CKPT alone with --list)" : "", nargs,
                         nargs == 1 ? "" : "s");
    if (!a->ops_file && (popt->num_renames || popt->tf1_rnn_renames))
        /* Every-tensor ops are named by their keys: a rename has nothing to map. */
        return cli_usage("convert", "--rename and --rnn-renames map the names of an ops file "
                         "to checkpoint keys; they need --ops (to name the tensors in the "
                         "file, use --key)");
    if (copt->as_dtype && a->ops_file)
        return cli_usage("convert", "--as goes without --ops; in an ops file, write as=DTYPE "
                         "on each op to convert");
    return CLI_EXIT_OK;
}

int cli_convert_main(int argc, char **argv)
{
    convert_args a = { 0 };
    int c, status = CLI_EXIT_FAIL;
    trestle_plan_options popt;
    trestle_restore_options ropt;
    trestle_convert_options copt;
    /* Every option takes at most one slot of one list: argc slots each. */
    const char **renames = calloc((size_t)argc, sizeof *renames);
    const char **excludes = calloc((size_t)argc, sizeof *excludes);
    const char **keys = calloc((size_t)argc, sizeof *keys);
    const char **transposes = calloc((size_t)argc, sizeof *transposes);
    a.owned = calloc((size_t)argc, sizeof *a.owned);

    trestle_plan_options_init(&popt);
    trestle_restore_options_init(&ropt);
    trestle_convert_options_init(&copt);
    if (!renames || !excludes || !keys || !transposes || !a.owned) {
        cli_error("out of memory");
        goto out;
    }
    popt.renames = renames;
    popt.excludes = excludes;
    copt.key_rules = keys;
    copt.transpose = transposes;
    cli_getopt_reset();
    while ((c = getopt_long(argc, argv, ":qlh", convert_longopts, NULL)) != -1) {
        if (c == 'h') {
            fputs(convert_help, stdout);
            status = CLI_EXIT_OK;
            goto out;
        }
        if ((status = parse_option(c, &a, &popt, &ropt, &copt, keys, transposes, argv)) !=
            CLI_EXIT_OK)
            goto out;
    }
    if ((status = check_args(&a, &popt, &copt, argc - optind)) != CLI_EXIT_OK)
        goto out;
    a.out = argc - optind == 2 ? argv[optind + 1] : NULL;
    copt.plan = &popt;
    cli_remote_fit(&ropt);
    copt.restore = &ropt;
    trestle_checkpoint *ckpt = NULL;
    status = cli_open(argv[optind], &ckpt);
    if (status == CLI_EXIT_OK)
        status = run_convert(ckpt, &a, &copt);
    trestle_close(ckpt);
out:
    for (size_t i = 0; i < a.nowned; i++)
        free(a.owned[i]);
    free(a.owned);
    free(renames);
    free(excludes);
    free(keys);
    free(transposes);
    return status;
}
