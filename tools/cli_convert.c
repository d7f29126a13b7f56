/*
 * cli_convert.c - `trestle convert CKPT OUT.safetensors`: a restore whose
 * destination is a safetensors file (trestle_convert_safetensors()).
 *
 * Takes what `trestle restore` takes to choose tensors (an ops file,
 * renames, exclusions, --allow-missing, --as) so a conversion is exactly a
 * restore written down. Ctrl-C, SIGTERM and SIGHUP (cli_signal.c) cancel
 * at the next finished tensor, or remove the temporary file when flushing,
 * and, like any failure, leave no output file behind.
 */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"

static const char convert_help[] =
    "Usage: trestle convert [OPTIONS] CKPT OUT.safetensors\n"
    "\n"
    "Write the tensors of a TensorFlow checkpoint into a safetensors file (the\n"
    "format of huggingface safetensors: an 8-byte header length, a JSON header\n"
    "with each tensor's dtype, shape and byte range, then the raw tensors), as\n"
    "fast as the checkpoint can be read. It is a restore into the file: the same\n"
    "reads, every CRC32C checked, each byte read once. The file appears only when\n"
    "complete (written as OUT.safetensors.tmp-XXXXXX, flushed, then renamed); a\n"
    "failure, Ctrl-C, SIGTERM or SIGHUP leaves nothing behind. Sizes are binary\n"
    "(MiB, GiB), rates GB/s (1e9 bytes per second).\n"
    "\n"
    "What goes in (as for 'trestle restore'):\n"
    "      --ops FILE         the ops listed in FILE (NAME<TAB>SHAPE_AND_SLICES<TAB>\n"
    "                         dtype=DTYPE<TAB>as=DTYPE); tensors are named by op name\n"
    "      --rename A=B       op name A is read from checkpoint key B (repeatable;\n"
    "                         'a/=b/' renames every name under a/)\n"
    "      --rnn-renames      also try TF 1.x RNN renames (weights -> kernel, ...)\n"
    "      --exclude GLOB     leave out names matching GLOB (repeatable), e.g.\n"
    "                         --exclude '*/Adam*' --exclude '*/.OPTIMIZER_SLOT/*'\n"
    "      --allow-missing    leave out ops whose key is not in the checkpoint\n"
    "      --as DTYPE         without --ops: store every tensor that converts to\n"
    "                         DTYPE as DTYPE (float32 -> bfloat16/float16, bfloat16/\n"
    "                         float16 -> float32), the rest as stored\n"
    "Without --ops every tensor goes in under its checkpoint key, except string\n"
    "tensors (such as TF2's _CHECKPOINTABLE_OBJECT_GRAPH), which safetensors\n"
    "cannot hold; they are counted as skipped.\n"
    "\n"
    "How:\n"
    "      --threads N        verify/copy workers (default: cores, at most 8)\n"
    "      --no-sync          do not flush the file to disk before the rename\n"
    "                         (faster; a crash soon after may lose the file)\n"
    "  -q, --quiet            print nothing but errors\n"
    "  -h, --help             show this help\n"
    "\n"
    "Exit status: 0 on success, 1 when the conversion fails (nothing written),\n"
    "2 for a bad command line; interrupted, it says so and ends by the signal\n"
    "(the shell shows 130 for Ctrl-C, 143 for SIGTERM, 129 for SIGHUP).\n"
    "\n"
    "Examples:\n"
    "  trestle convert ckpt_dir model.safetensors\n"
    "  trestle convert --exclude '*/.OPTIMIZER_SLOT/*' --as bfloat16 run/ckpt-3 model.safetensors\n"
    "  trestle convert --ops ops.txt --rename bert/=model/bert/ ckpt out.safetensors\n"
    "Read it back in Python with safetensors.numpy.load_file or safetensors.torch.\n";

enum { OPT_OPS = 256, OPT_RENAME, OPT_RNN, OPT_EXCLUDE, OPT_ALLOW_MISSING, OPT_AS, OPT_THREADS,
       OPT_NO_SYNC };

static const struct option convert_longopts[] = {
    { "ops", required_argument, NULL, OPT_OPS },
    { "rename", required_argument, NULL, OPT_RENAME },
    { "rnn-renames", no_argument, NULL, OPT_RNN },
    { "exclude", required_argument, NULL, OPT_EXCLUDE },
    { "allow-missing", no_argument, NULL, OPT_ALLOW_MISSING },
    { "as", required_argument, NULL, OPT_AS },
    { "threads", required_argument, NULL, OPT_THREADS },
    { "no-sync", no_argument, NULL, OPT_NO_SYNC },
    { "quiet", no_argument, NULL, 'q' },
    { "help", no_argument, NULL, 'h' },
    { NULL, 0, NULL, 0 },
};

/*
 * --as without --ops: one op per tensor safetensors can hold, with
 * target_dtype where the stored dtype converts to `as`. Names point into
 * the checkpoint.
 */
static int ops_converting(const trestle_checkpoint *ckpt, int as, cli_ops *out)
{
    size_t n = trestle_tensor_count(ckpt);
    memset(out, 0, sizeof *out);
    if (!(out->ops = calloc(n ? n : 1, sizeof *out->ops))) {
        cli_error("out of memory");
        return CLI_EXIT_FAIL;
    }
    for (size_t i = 0; i < n; i++) {
        trestle_tensor_info t;
        if (trestle_tensor_get_info(ckpt, i, &t) != TRESTLE_OK || trestle_dtype_size(t.dtype) == 0)
            continue; /* strings, variants: not for safetensors */
        trestle_op *op = &out->ops[out->n++];
        op->name = t.name;
        op->dest_kind = TRESTLE_DEST_ALLOCATE;
        if (trestle_dtype_can_convert(t.dtype, as))
            op->target_dtype = as;
    }
    return CLI_EXIT_OK;
}

static int run_convert(trestle_checkpoint *ckpt, const char *ops_file, int as,
                       trestle_convert_options *copt, const char *out, int quiet)
{
    cli_ops ops = { 0 };
    trestle_convert_stats st;
    trestle_error err;
    int status = CLI_EXIT_FAIL;

    if (ops_file && cli_ops_read(ops_file, TRESTLE_DEST_ALLOCATE, &ops) != CLI_EXIT_OK)
        return CLI_EXIT_FAIL;
    if (as && ops_converting(ckpt, as, &ops) != CLI_EXIT_OK)
        return CLI_EXIT_FAIL;
    if (ops_file && ops.n == 0) {   /* NULL ops would mean every tensor */
        cli_error("%s lists no ops; nothing to convert", ops_file);
        cli_ops_free(&ops);
        return CLI_EXIT_FAIL;
    }
    cli_signals_test_pause("before-restore");
    if (cli_interrupted())
        goto done;
    cli_signals_guard_temp(out); /* a signal while flushing removes the temporary file */
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int rc = trestle_convert_safetensors(ckpt, ops_file || as ? ops.ops : NULL, ops.n, copt, out,
                                         &st, &err);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    cli_signals_pop_cleanup();
    if (rc != TRESTLE_OK) {
        if (!cli_interrupted()) /* else the library's cancel message is no news */
            cli_fail(&err);
        goto done;
    }
    if (cli_interrupted()) { /* the signal came in the last moments of the flush */
        cli_error("%s was complete before the signal could stop it; it is kept", out);
        goto done;
    }
    if (!quiet) {
        char size[32], skipped[48] = "";
        /* The whole conversion: planning, allocating and flushing the file
         * as well as the restore into it. */
        double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
        cli_human_size(st.file_bytes, size, sizeof size);
        if (st.skipped)
            snprintf(skipped, sizeof skipped, " (%zu skipped)", st.skipped);
        printf("wrote %s: %zu tensor%s%s, %s in %.3f s", out, st.tensors,
               st.tensors == 1 ? "" : "s", skipped, size, secs);
        if (secs > 0)
            printf(": %.2f GB/s", (double)st.file_bytes / secs / 1e9);
        printf(" (CRC32C verified)\n");
    }
    status = CLI_EXIT_OK;
done:
    cli_ops_free(&ops);
    return status;
}

int cli_convert_main(int argc, char **argv)
{
    const char *ops_file = NULL;
    int c, as = 0, quiet = 0, status;
    long long v;
    trestle_plan_options popt;
    trestle_restore_options ropt;
    trestle_convert_options copt;
    const char **renames = calloc((size_t)argc, sizeof *renames);
    const char **excludes = calloc((size_t)argc, sizeof *excludes);

    trestle_plan_options_init(&popt);
    trestle_restore_options_init(&ropt);
    trestle_convert_options_init(&copt);
    if (!renames || !excludes) {
        cli_error("out of memory");
        status = CLI_EXIT_FAIL;
        goto out;
    }
    popt.renames = renames;
    popt.excludes = excludes;
    cli_getopt_reset();
    while ((c = getopt_long(argc, argv, ":qh", convert_longopts, NULL)) != -1) {
        status = CLI_EXIT_USAGE;
        switch (c) {
        case 'h': fputs(convert_help, stdout); status = CLI_EXIT_OK; goto out;
        case 'q': quiet = 1; break;
        case OPT_OPS: ops_file = optarg; break;
        case OPT_RENAME:
            if (!strchr(optarg, '=') || optarg[0] == '=') {
                cli_usage("convert", "--rename wants GRAPH_NAME=CHECKPOINT_KEY, not '%s'", optarg);
                goto out;
            }
            renames[popt.num_renames++] = optarg;
            break;
        case OPT_RNN: popt.tf1_rnn_renames = 1; break;
        case OPT_EXCLUDE: excludes[popt.num_excludes++] = optarg; break;
        case OPT_ALLOW_MISSING: popt.allow_missing = 1; break;
        case OPT_AS:
            if ((as = trestle_dtype_from_name(optarg)) == TRESTLE_DT_INVALID) {
                cli_usage("convert", "--as wants a dtype such as bfloat16 or float32, not '%s'",
                          optarg);
                goto out;
            }
            break;
        case OPT_THREADS:
            if (cli_parse_int(optarg, 1, 1024, &v) != 0) {
                cli_usage("convert", "--threads wants a number from 1 to 1024, not '%s'", optarg);
                goto out;
            }
            ropt.threads = (unsigned)v;
            break;
        case OPT_NO_SYNC: copt.sync = 0; break;
        default: status = cli_bad_option("convert", argv, c); goto out;
        }
    }
    if (argc - optind != 2) {
        status = cli_usage("convert", "expected CKPT and OUT.safetensors, got %d argument%s",
                           argc - optind, argc - optind == 1 ? "" : "s");
        goto out;
    }
    if (as && ops_file) {
        status = cli_usage("convert", "--as goes without --ops; in an ops file, write as=DTYPE "
                           "on each op to convert");
        goto out;
    }
    ropt.on_ready = cli_signals_ready;
    copt.plan = &popt;
    copt.restore = &ropt;
    trestle_checkpoint *ckpt = NULL;
    status = cli_open(argv[optind], &ckpt);
    if (status == CLI_EXIT_OK)
        status = run_convert(ckpt, ops_file, as, &copt, argv[optind + 1], quiet);
    trestle_close(ckpt);
out:
    free(renames);
    free(excludes);
    return status;
}
