/*
 * cli_restore.c - `trestle restore`: run a real restore from the command
 * line and report how fast each stage went.
 *
 * Builds the op list (an ops file, or every tensor, converted with --as),
 * plans it with the given renames and exclusions, restores into
 * engine-allocated memory (host unless --device) and prints one summary
 * line from trestle_stats. It is
 * the quickest way to reproduce a production restore, a missing-key
 * report, or a throughput figure outside the inference runtime.
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

static const char restore_help[] =
    "Usage: trestle restore [OPTIONS] PATH\n"
    "\n"
    "Restore tensors of a checkpoint into memory the engine allocates (host\n"
    "memory unless --device), verifying CRC32C, and print one summary line:\n"
    "  restored 42 tensors, 2.00 GiB in 0.512 s: 4.19 GB/s (read 4.40 GB/s,\n"
    "  verify 10.52 GB/s, copy 12.99 GB/s; reader io_uring, O_DIRECT no)\n"
    "Rates are GB/s (1e9 bytes per second), sizes binary (1 GiB = 2^30 bytes).\n"
    "Each stage's rate counts only the bytes that went through it: read is over the\n"
    "wall time with reads in flight, verify and copy over their busy time summed\n"
    "over workers (per core). Bytes read straight into their destination skip the\n"
    "copy, and --map's bytes skip the read: the stage says so ('copy none: all\n"
    "2.00 GiB read straight into place') instead of giving a rate.\n"
    "\n"
    "What to restore:\n"
    "      --all              every tensor, whole (the default without --ops); fails\n"
    "                         on a variant tensor (e.g. a tf.data iterator state),\n"
    "                         which trestle cannot restore, naming each, unless\n"
    "                         --skip-unsupported or --exclude leaves it out\n"
    "      --skip-unsupported restore the rest and report each variant tensor as\n"
    "                         skipped ('variant: opaque to trestle')\n"
    "      --ops FILE         the ops listed in FILE ('-': standard input), as\n"
    "                         TensorFlow's RestoreV2 gets them (format below); an\n"
    "                         empty list is an error\n"
    "      --graph GRAPH      the ops GRAPH's saver restores (a .meta file, a\n"
    "                         saved_model.pb or a SavedModel directory; see\n"
    "                         'trestle ops --graph'); its variables' declared\n"
    "                         shapes rank the suggestions for missing keys\n"
    "      --tag TAG          with --graph: the SavedModel meta graph tagged TAG\n"
    "                         (default: the only one, else 'serve', else the first)\n"
    "      --rename A=B       with --ops or --graph: restore op name A from checkpoint\n"
    "                         key B (repeatable, each A once); 'a/=b/' renames every\n"
    "                         name under prefix a/\n"
    "      --rnn-renames      with --ops or --graph: also try TF 1.x RNN renames\n"
    "                         (weights -> kernel, ...)\n"
    "      --names graph      op names may be graph names (dense/kernel) of a TF2\n"
    "                         checkpoint's keys, from its object graph (names two\n"
    "                         keys share are left alone)\n"
    "      --exclude GLOB     skip op names matching GLOB (fnmatch; repeatable; an\n"
    "                         unclosed '[' is an error)\n"
    "      --allow-missing    skip keys absent from the checkpoint instead of failing\n"
    "                         (TensorFlow's expect_partial)\n"
    "      --as DTYPE         with --all: convert every tensor whose stored dtype\n"
    "                         converts to DTYPE on load, restore the others as stored\n"
    "                         (an error when none converts)\n"
    "                         (float32 -> bfloat16/float16, bfloat16/float16 -> float32;\n"
    "                         round to nearest even, NaN stays NaN); with --ops, use\n"
    "                         as=DTYPE per op\n"
    "\n"
    "How:\n"
    "      --verify           check CRC32C of every byte read (default)\n"
    "      --no-verify        skip the CRC check\n"
    "      --reader KIND      auto (default), io_uring or pread; remote for a URL\n"
    "      --direct POLICY    O_DIRECT: auto (default: only for data not in the page\n"
    "                         cache), always or never\n"
    "      --threads N        verify/copy workers (default: cores, at most 8)\n"
    "      --queue-depth N    reads in flight (default 32)\n"
    "      --chunk SIZE       staging buffer size (default 8M)\n"
    "      --staging SIZE     total staging memory (default 256M)\n"
    "      --device N         restore into CUDA device N (needs a CUDA build and GPU)\n"
    "      --device N,M,...   restore onto each listed GPU ('all': every GPU): every\n"
    "                         byte is read and CRC-checked once and DMA'd from the\n"
    "                         same staging to each; one summary line per device,\n"
    "                         then the aggregate (read once, copied, GB/s)\n"
    "      --shard GLOB:DIM   with --device N,M,...: split every tensor whose name\n"
    "                         matches GLOB (fnmatch) along dimension DIM, part d on\n"
    "                         the d-th listed device, each tensor still read once;\n"
    "                         others are replicated (repeatable; the first matching\n"
    "                         rule wins). A dim of n splits as TensorFlow's\n"
    "                         partitioner does: n / W each, the first n % W one more\n"
    "      --host             restore into host memory (default)\n"
    "      --map              host memory: point tensors whose bytes are in the page\n"
    "                         cache into private mappings of the shard files instead\n"
    "                         of copying them (CRC still checked; no copy, no fresh\n"
    "                         memory); the files must not be rewritten meanwhile;\n"
    "                         not with --device\n"
    "      --no-numa          with --device: leave staging memory and workers where\n"
    "                         the system puts them (by default they go to the GPU's\n"
    "                         NUMA node, when the host says which)\n"
    "      --server S         take the tensors from the 'trestle serve' server on\n"
    "                         socket S ('default': $XDG_RUNTIME_DIR/trestle.sock, else\n"
    "                         /run/trestle/trestle.sock) when 'trestle preload' made\n"
    "                         them resident with the same op options: mapped\n"
    "                         read-only in milliseconds ('attached N tensors ...');\n"
    "                         otherwise say why ('not resident: ...', on stderr) and\n"
    "                         restore from storage as without it. --host (default)\n"
    "                         or --device N picks the tier\n"
    "      --group mpi|none   mpi: restore once for a whole MPI job, each byte read\n"
    "                         by one rank (runs trestle-mpi; the default when\n"
    "                         launched by mpirun); none: this process alone.\n"
    "                         Under mpirun, `trestle-mpi restore --help` teaches\n"
    "                         the group's own options: --shard GLOB:DIM (a part\n"
    "                         per rank), --scope auto|group|node (each byte read\n"
    "                         once per job or once per node), --device local|K\n"
    "                         (each rank onto its GPU, exchanged by NCCL, CUDA-\n"
    "                         aware MPI or pinned host memory):\n"
    "                           mpirun -np 8 trestle restore CKPT --all --device local\n"
    "\n"
    "Output:\n"
    "  -l, --list             print each op: name, checkpoint key (when renamed or\n"
    "                         skipped), dtype (float32->bfloat16 when converted),\n"
    "                         shape, size as restored\n"
    "  -q, --quiet            print nothing but errors (no summary, no progress bar)\n"
    "      --json             print one JSON object instead of the summary: the machine,\n"
    "                         trestle's version and build, and the same \"stats\" object\n"
    "                         as 'trestle bench --json' (per stage bytes, seconds, GB/s)\n"
    "      --checksum         also print each restored tensor's FNV-1a 64 checksum\n"
    "                         (of the bytes as restored, read back from a GPU) and the\n"
    "                         whole model's (every tensor's bytes in op order, as\n"
    "                         trestle-mpi --checksum prints it); in --json too\n"
    "  -h, --help             show this help\n"
    CLI_REMOTE_HELP
    "\n"
    "A progress bar is drawn on stderr when it is a terminal and the restore takes\n"
    "longer than half a second. Ctrl-C, SIGTERM or SIGHUP cancels the restore: it\n"
    "says 'interrupted' and ends by that signal.\n"
    "\n"
    "SIZE takes K, M, G suffixes (binary: 8M = 8 MiB).\n"
    "\n"
    "Ops file format: one op per line,\n"
    "  NAME\n"
    "  NAME<TAB>SHAPE_AND_SLICES\n"
    "  NAME<TAB>SHAPE_AND_SLICES<TAB>dtype=DTYPE\n"
    "  NAME<TAB><TAB>dtype=DTYPE       (whole tensor, dtype checked)\n"
    "  NAME<TAB><TAB>dtype=DTYPE<TAB>as=DTYPE2   (checked, then converted to DTYPE2)\n"
    "SHAPE_AND_SLICES is TensorFlow's string: the full shape, then one start,length\n"
    "or '-' per dimension separated by ':' (e.g. '4 6 0,2:-' = rows 0-1 of a [4,6]\n"
    "tensor); it contains spaces, hence the TABs. DTYPE uses TensorFlow's names\n"
    "(float, bfloat16, half, int64, ...) or numpy's (float32, float16); the stored\n"
    "dtype must match dtype=, and as= converts on load (pairs as for --as; others\n"
    "fail, naming the tensor). Blank lines and lines starting with '#' are ignored.\n"
    "\n"
    "Exit status: 0 on success, 1 when the restore fails (the error names every\n"
    "missing key with the closest existing names), 2 for a bad command line, 4\n"
    "when --graph restores nothing (no saver and no variables); interrupted, the\n"
    "shell sees 130 (Ctrl-C), 143 (SIGTERM) or 129 (SIGHUP).\n"
    "\n"
    "Examples:\n"
    "  trestle restore ./ckpt/model.ckpt-1000\n"
    "  trestle restore --as bfloat16 --list ./ckpt/model.ckpt-1000\n"
    "  trestle restore --map ./ckpt/model.ckpt-1000   # leave cached tensors mapped\n"
    "  trestle restore --json --checksum ckpt > restore.json\n"
    "  trestle restore --ops ops.txt --rename dense/=model/dense/ ckpt_dir\n"
    "  trestle restore saved_model_dir/variables/variables --graph saved_model_dir --tag train\n"
    "  trestle restore --reader pread --direct never --threads 4 --no-verify ckpt\n"
    "  trestle restore gs://bucket/model/ckpt-1000 --all --connections 64\n"
    "  trestle restore --device 0,1,2,3 ckpt        # every tensor on four GPUs\n"
    "  trestle restore --device all --shard '*/attention/*/kernel:1' \\\n"
    "      --shard '*/mlp/wo/kernel:0' ckpt           # tensor-parallel parts per GPU\n";

typedef struct restore_args {
    const char *path;
    const char *ops_file;
    const char *graph;      /* --graph: a graph file whose saver's ops to restore */
    const char *tag;        /* --tag: the SavedModel meta graph of --graph */
    int graph_names;        /* --names graph: object-graph names as renames */
    int all, list, quiet, skip_unsupported;
    int json;               /* --json: one JSON object instead of the summary */
    int checksum;           /* --checksum: FNV-1a of each restored tensor and the model */
    int as;                 /* --as: target dtype for every convertible tensor, or 0 */
    const char **renames;   /* pointers into argv */
    size_t nrenames;
    const char **excludes;  /* pointers into argv */
    size_t nexcludes;
    trestle_plan_options plan;
    trestle_restore_options run;
    int devices[CLI_MAX_DEVICES]; /* --device N,M,...: the list (ndevices >= 2) */
    size_t ndevices;
    const char **shards;    /* --shard rules, pointers into argv */
    size_t nshards;
    const char *server;     /* --server: the trestle serve socket to attach through */
} restore_args;

enum {
    OPT_ALL = 256, OPT_OPS, OPT_RENAME, OPT_RNN, OPT_EXCLUDE, OPT_ALLOW_MISSING, OPT_VERIFY,
    OPT_NO_VERIFY, OPT_READER, OPT_DIRECT, OPT_THREADS, OPT_QD, OPT_CHUNK, OPT_STAGING,
    OPT_DEVICE, OPT_HOST, OPT_AS, OPT_MAP, OPT_SKIP_UNSUPPORTED, OPT_GRAPH, OPT_NAMES,
    OPT_NO_NUMA, OPT_GROUP, OPT_TAG, OPT_SHARD, OPT_JSON, OPT_CHECKSUM, OPT_SERVER
};

static const struct option restore_longopts[] = {
    { "all", no_argument, NULL, OPT_ALL },
    { "ops", required_argument, NULL, OPT_OPS },
    { "skip-unsupported", no_argument, NULL, OPT_SKIP_UNSUPPORTED },
    { "graph", required_argument, NULL, OPT_GRAPH },
    { "tag", required_argument, NULL, OPT_TAG },
    { "names", required_argument, NULL, OPT_NAMES },
    { "rename", required_argument, NULL, OPT_RENAME },
    { "rnn-renames", no_argument, NULL, OPT_RNN },
    { "exclude", required_argument, NULL, OPT_EXCLUDE },
    { "allow-missing", no_argument, NULL, OPT_ALLOW_MISSING },
    { "as", required_argument, NULL, OPT_AS },
    { "verify", no_argument, NULL, OPT_VERIFY },
    { "no-verify", no_argument, NULL, OPT_NO_VERIFY },
    { "reader", required_argument, NULL, OPT_READER },
    { "direct", required_argument, NULL, OPT_DIRECT },
    { "threads", required_argument, NULL, OPT_THREADS },
    { "queue-depth", required_argument, NULL, OPT_QD },
    { "chunk", required_argument, NULL, OPT_CHUNK },
    { "staging", required_argument, NULL, OPT_STAGING },
    { "device", required_argument, NULL, OPT_DEVICE },
    { "host", no_argument, NULL, OPT_HOST },
    { "map", no_argument, NULL, OPT_MAP },
    { "no-numa", no_argument, NULL, OPT_NO_NUMA },
    { "group", required_argument, NULL, OPT_GROUP },
    { "shard", required_argument, NULL, OPT_SHARD },
    { "json", no_argument, NULL, OPT_JSON },
    { "checksum", no_argument, NULL, OPT_CHECKSUM },
    CLI_REMOTE_LONGOPTS,
    { "server", required_argument, NULL, OPT_SERVER },
    { "list", no_argument, NULL, 'l' },
    { "quiet", no_argument, NULL, 'q' },
    { "help", no_argument, NULL, 'h' },
    { NULL, 0, NULL, 0 },
};

/* Apply one option; returns CLI_EXIT_OK, or CLI_EXIT_USAGE after reporting. */
static int apply_option(restore_args *a, int c, const char *arg)
{
    long long v;
    uint64_t size;
    switch (c) {
    case OPT_ALL: a->all = 1; break;
    case OPT_OPS: a->ops_file = arg; break;
    case OPT_SKIP_UNSUPPORTED: a->plan.skip_unsupported = 1; break;
    case OPT_GRAPH: a->graph = arg; break;
    case OPT_TAG: a->tag = arg; break;
    case OPT_NAMES:
        if (strcmp(arg, "graph") != 0 && strcmp(arg, "key") != 0)
            return cli_usage("restore", "--names is 'key' or 'graph', not '%s'", arg);
        a->graph_names = strcmp(arg, "graph") == 0;
        break;
    case OPT_RENAME:
        if (!strchr(arg, '=') || arg[0] == '=')
            return cli_usage("restore", "--rename wants GRAPH_NAME=CHECKPOINT_KEY, not '%s'", arg);
        a->renames[a->nrenames++] = arg;
        break;
    case OPT_RNN: a->plan.tf1_rnn_renames = 1; break;
    case OPT_EXCLUDE: a->excludes[a->nexcludes++] = arg; break;
    case OPT_ALLOW_MISSING: a->plan.allow_missing = 1; break;
    case OPT_AS:
        a->as = trestle_dtype_from_name(arg);
        if (a->as == TRESTLE_DT_INVALID)
            return cli_usage("restore", "--as wants a dtype such as bfloat16 or float32, not "
                             "'%s'", arg);
        break;
    case OPT_VERIFY: a->run.verify = 1; break;
    case OPT_NO_VERIFY: a->run.verify = 0; break;
    case OPT_READER:
        if (strcmp(arg, "auto") == 0) a->run.reader = TRESTLE_READER_AUTO;
        else if (strcmp(arg, "io_uring") == 0) a->run.reader = TRESTLE_READER_IO_URING;
        else if (strcmp(arg, "pread") == 0) a->run.reader = TRESTLE_READER_PREAD;
        else if (strcmp(arg, "remote") == 0) a->run.reader = TRESTLE_READER_REMOTE;
        else return cli_usage("restore", "--reader is auto, io_uring, pread or remote, not "
                              "'%s'", arg);
        break;
    case OPT_DIRECT:
        if (strcmp(arg, "auto") == 0) a->run.direct = TRESTLE_DIRECT_AUTO;
        else if (strcmp(arg, "always") == 0) a->run.direct = TRESTLE_DIRECT_ALWAYS;
        else if (strcmp(arg, "never") == 0) a->run.direct = TRESTLE_DIRECT_NEVER;
        else return cli_usage("restore", "--direct is auto, always or never, not '%s'", arg);
        break;
    case OPT_THREADS:
        if (cli_parse_int(arg, 1, 1024, &v) != 0)
            return cli_usage("restore", "--threads wants a number from 1 to 1024, not '%s'", arg);
        a->run.threads = (unsigned)v;
        break;
    case OPT_QD:
        if (cli_parse_int(arg, 1, 65536, &v) != 0)
            return cli_usage("restore", "--queue-depth wants a number from 1 to 65536, not '%s'",
                             arg);
        a->run.queue_depth = (unsigned)v;
        break;
    case OPT_CHUNK:
    case OPT_STAGING:
        if (cli_parse_size(arg, &size) != 0 || size == 0)
            return cli_usage("restore", "--%s wants a size such as 8M or 1G, not '%s'",
                             c == OPT_CHUNK ? "chunk" : "staging", arg);
        if (c == OPT_CHUNK)
            a->run.chunk_bytes = size;
        else
            a->run.staging_bytes = size;
        break;
    case OPT_DEVICE: {
        int rc = cli_devices_parse("restore", arg, a->devices, CLI_MAX_DEVICES, &a->ndevices);
        if (rc != CLI_EXIT_OK)
            return rc;
        a->run.device = a->ndevices == 1 ? a->devices[0] : -1;
        break;
    }
    case OPT_SHARD:
        if (cli_devices_check_rule(arg) != CLI_EXIT_OK)
            return CLI_EXIT_USAGE;
        a->shards[a->nshards++] = arg;
        break;
    case OPT_HOST: a->run.device = -1; a->ndevices = 0; break;
    case OPT_MAP: a->run.host_map = 1; break;
    case OPT_NO_NUMA: a->run.no_numa = 1; break;
    case OPT_GROUP: break; /* "none": cli_group_exec() took the others */
    case OPT_JSON: a->json = 1; break;
    case OPT_CHECKSUM: a->checksum = 1; break;
    case OPT_SERVER: a->server = arg; break;
    case 'l': a->list = 1; break;
    case 'q': a->quiet = 1; break;
    case CLI_OPT_CONNECTIONS:
    case CLI_OPT_ATTEMPTS:
    case CLI_OPT_BACKOFF: return cli_remote_option("restore", c, arg);
    default: return CLI_EXIT_USAGE;
    }
    return CLI_EXIT_OK;
}

int cli_as_check(const trestle_checkpoint *ckpt, int as)
{
    size_t n = trestle_tensor_count(ckpt);
    for (size_t i = 0; i < n; i++) {
        trestle_tensor_info t;
        if (trestle_tensor_get_info(ckpt, i, &t) == TRESTLE_OK &&
            trestle_dtype_can_convert(t.dtype, as))
            return CLI_EXIT_OK;
    }
    cli_error("--as %s: no tensor of this checkpoint converts to %s (supported: float32 -> "
              "bfloat16, float32 -> float16, float16 -> float32, bfloat16 -> float32)",
              trestle_dtype_name(as), trestle_dtype_name(as));
    return CLI_EXIT_FAIL;
}

/*
 * --as without --ops: one op per listed tensor, whole, into engine memory,
 * with target_dtype set where the stored dtype converts to `as`. A variant
 * tensor stays in the list: the planner refuses it, or skips it with
 * --skip-unsupported, as for --all. None converting is an error: --as
 * would silently do nothing. Names point into the checkpoint.
 */
int cli_ops_converting_all(const trestle_checkpoint *ckpt, int as, cli_ops *out)
{
    size_t n = trestle_tensor_count(ckpt);
    memset(out, 0, sizeof *out);
    if (cli_as_check(ckpt, as) != CLI_EXIT_OK)
        return CLI_EXIT_FAIL;
    out->ops = calloc(n ? n : 1, sizeof *out->ops);
    if (!out->ops) {
        cli_error("out of memory");
        return CLI_EXIT_FAIL;
    }
    for (size_t i = 0; i < n; i++) {
        trestle_tensor_info t;
        if (trestle_tensor_get_info(ckpt, i, &t) != TRESTLE_OK)
            continue;
        trestle_op *op = &out->ops[out->n++];
        op->name = t.name;
        op->dest_kind = TRESTLE_DEST_ALLOCATE;
        if (trestle_dtype_can_convert(t.dtype, as))
            op->target_dtype = as;
    }
    return CLI_EXIT_OK;
}

static int run_restore(const restore_args *a, trestle_checkpoint *ckpt)
{
    cli_ops ops = { 0 };
    trestle_plan *plan = NULL;
    trestle_error err;
    trestle_stats st;
    trestle_restore_options run = a->run;
    trestle_plan_options popt = a->plan;
    int status = CLI_EXIT_FAIL;
    cli_names_rules names = { 0 };
    const char **renames = NULL;

    trestle_error_clear(&err);
    memset(&st, 0, sizeof st);
    if (a->ops_file && cli_ops_read(a->ops_file, TRESTLE_DEST_ALLOCATE, &ops) != CLI_EXIT_OK)
        return CLI_EXIT_FAIL;
    if (a->as && cli_ops_converting_all(ckpt, a->as, &ops) != CLI_EXIT_OK)
        return CLI_EXIT_FAIL;
    if (a->graph && (status = cli_graph_ops(a->graph, a->tag, TRESTLE_DEST_ALLOCATE, &ops)) !=
                        CLI_EXIT_OK)
        return status;
    status = CLI_EXIT_FAIL;
    /* The graph's variable shapes tell "did you mean" candidates apart. */
    popt.op_shapes = ops.shapes;
    int *place = NULL;
    if (a->nshards && cli_devices_split_ops(ckpt, a->shards, a->nshards, a->ndevices, &ops,
                                            &place) != CLI_EXIT_OK)
        return CLI_EXIT_FAIL;
    if (a->ndevices >= 2) {
        run.devices = a->devices;
        run.num_devices = a->ndevices;
    }
    popt.renames = a->renames;
    popt.num_renames = a->nrenames;
    /* --names graph: the user's renames, then one per object-graph name. */
    if (a->graph_names && (cli_names_renames(ckpt, &names) != CLI_EXIT_OK ||
                           !(renames = cli_names_merge(&popt, &names))))
        goto done;
    popt.excludes = a->excludes;
    popt.num_excludes = a->nexcludes;
    if (a->server) {
        cli_attach_req req = { a->server, a->path, run.device, a->quiet, a->json, a->list,
                               a->checksum };
        if ((status = cli_attach_restore(&req, ckpt, ops.ops, ops.n, &popt)) !=
            CLI_ATTACH_FALLBACK)
            goto done;
        status = CLI_EXIT_FAIL;
    }
    if (trestle_plan_create(ckpt, ops.ops, ops.n, &popt, &plan, &err) != TRESTLE_OK) {
        cli_fail(&err);
        if (err.code == TRESTLE_E_KEY_NOT_FOUND && a->graph_names)
            cli_names_note_shared(ckpt, ops.ops, ops.n);
        if (err.code == TRESTLE_E_UNSUPPORTED && !popt.skip_unsupported)
            cli_error("--skip-unsupported restores the rest and reports each as skipped; "
                      "--exclude NAME leaves one out");
        goto done;
    }
    for (size_t i = 0; place && i < ops.n; i++)
        if (trestle_plan_place_op(plan, i, place[i], &err) != TRESTLE_OK) {
            cli_fail(&err);
            goto done;
        }

    trestle_plan_stats ps;
    trestle_plan_get_stats(plan, &ps);
    cli_signals_test_pause("before-restore");
    if (cli_interrupted())
        goto done;
    cli_progress *pg = cli_progress_start(plan, ps.output_bytes,
                                          !a->quiet && !a->json && isatty(STDERR_FILENO));
    run.on_ready = cli_progress_ready_fn(pg);
    run.user = pg;
    int rc = trestle_restore(plan, &run, &st, &err);
    cli_progress_stop(pg);
    if (rc != TRESTLE_OK && cli_interrupted())
        goto done; /* main() says "interrupted"; the cancel message is no news */
    if (rc != TRESTLE_OK) {
        cli_fail(&err);
        /* The engine's message says why (no CUDA in this build, no such
         * device); the hint says what works instead. */
        if (rc == TRESTLE_E_NO_DEVICE && (run.device >= 0 || run.num_devices))
            cli_error("--host restores to host memory instead");
        goto done;
    }
    cli_signals_test_pause("after-restore");
    if (cli_interrupted())
        goto done;
    cli_run fig;
    cli_run_from_stats(&st, ps.output_bytes, run.device >= 0 || run.num_devices > 0, run.verify,
                       &fig);
    if (a->json) {
        int one = run.device;
        status = cli_restore_json(a->path, ckpt, plan, &fig, a->ndevices >= 2 ? a->devices : &one,
                                  a->ndevices >= 2 ? a->ndevices : run.device >= 0, a->checksum);
        goto done;
    }
    if (a->list && cli_restore_list(plan) != 0) {
        cli_error("out of memory");
        goto done;
    }
    if (!a->quiet && a->ndevices >= 2)
        cli_devices_summary(plan, &st, a->devices, a->ndevices);
    else if (!a->quiet)
        cli_restore_summary(plan, &fig);
    if (a->checksum && cli_restore_checksums(plan) != CLI_EXIT_OK)
        goto done;
    status = CLI_EXIT_OK;
done:
    trestle_plan_free(plan);
    cli_ops_free(&ops);
    cli_names_rules_free(&names);
    free(renames);
    free(place);
    return status;
}

int cli_restore_main(int argc, char **argv)
{
    restore_args a;
    int c, status;

    if ((status = cli_group_exec("restore", argc, argv)) >= 0)
        return status; /* a group's restore: trestle-mpi could not start */
    memset(&a, 0, sizeof a);
    trestle_plan_options_init(&a.plan);
    trestle_restore_options_init(&a.run);
    a.renames = calloc((size_t)argc, sizeof *a.renames);
    a.excludes = calloc((size_t)argc, sizeof *a.excludes);
    a.shards = calloc((size_t)argc, sizeof *a.shards);
    if (!a.renames || !a.excludes || !a.shards) {
        status = CLI_EXIT_FAIL;
        cli_error("out of memory");
        goto out;
    }
    cli_getopt_reset();
    while ((c = getopt_long(argc, argv, ":lqh", restore_longopts, NULL)) != -1) {
        if (c == 'h') {
            fputs(restore_help, stdout);
            status = CLI_EXIT_OK;
            goto out;
        }
        if (c == '?' || c == ':') {
            status = cli_bad_option("restore", argv, c);
            goto out;
        }
        if ((status = apply_option(&a, c, optarg)) != CLI_EXIT_OK)
            goto out;
    }
    if (argc == optind) {
        status = cli_usage("restore", "missing PATH");
        goto out;
    }
    if (argc - optind > 1) {
        status = cli_usage("restore", "expected one PATH, got %d arguments", argc - optind);
        goto out;
    }
    if (a.all && a.ops_file) {
        status = cli_usage("restore", "--all and --ops exclude each other");
        goto out;
    }
    if (a.nshards && (a.ndevices < 2 || a.ops_file || a.graph || a.as)) {
        status = cli_usage("restore", "--shard splits every tensor over a device list: it "
                           "needs --device N,M,... (or all, with two or more GPUs) and no "
                           "--ops, --graph or --as; across processes, run under mpirun");
        goto out;
    }
    if (a.run.host_map && (a.run.device >= 0 || a.ndevices)) {
        status = cli_usage("restore", "--map leaves tensors in host memory; it cannot go with "
                           "--device");
        goto out;
    }
    if (a.server && (a.ndevices >= 2 || a.nshards || a.run.host_map)) {
        status = cli_usage("restore", "--server attaches to one tier: --host or --device N, "
                           "without --map or --shard");
        goto out;
    }
    if (a.json && a.list) {
        status = cli_usage("restore", "--list prints a table and --json one JSON object; "
                           "--json --checksum lists every tensor");
        goto out;
    }
    if (a.graph && (a.all || a.ops_file || a.as)) {
        status = cli_usage("restore", "--graph gives the op list; it cannot go with --all, --ops "
                           "or --as");
        goto out;
    }
    if (a.tag && !a.graph) {
        status = cli_usage("restore", "--tag picks the meta graph of --graph; it needs --graph");
        goto out;
    }
    if (!a.ops_file && !a.graph && (a.nrenames || a.plan.tf1_rnn_renames)) {
        /* Every-tensor ops are named by their keys: a rename has nothing to map. */
        status = cli_usage("restore", "--rename and --rnn-renames map the names of an ops file "
                           "or a graph to checkpoint keys; they need --ops or --graph");
        goto out;
    }
    if (a.as && a.ops_file) {
        status = cli_usage("restore", "--as goes with --all; in an ops file, write as=DTYPE on "
                           "each op to convert");
        goto out;
    }
    a.path = argv[optind];
    cli_remote_fit(&a.run);

    trestle_checkpoint *ckpt = NULL;
    status = cli_open(a.path, &ckpt);
    if (status == CLI_EXIT_OK)
        status = run_restore(&a, ckpt);
    trestle_close(ckpt);
out:
    free(a.renames);
    free(a.excludes);
    free(a.shards);
    return status;
}
