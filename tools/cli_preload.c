/*
 * cli_preload.c - `trestle preload`: make a checkpoint (or part of one,
 * converted or not) resident on a `trestle serve` server; `--list` what is
 * resident; `--evict` entries.
 *
 * The op list is built as `trestle restore` builds it (an ops file, a
 * graph, or every tensor, converted with --as), so that a restore with the
 * same options attaches to what this preloads (trestle_serve.h: an entry
 * is found by the version of the files and the selection).
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "trestle_serve.h"

static const char preload_help[] =
    "Usage: trestle preload [OPTIONS] PATH\n"
    "       trestle preload --list [--json] [--socket S]\n"
    "       trestle preload --evict PATH|--evict-all [--socket S]\n"
    "\n"
    "Make a checkpoint resident on a 'trestle serve' server: plan it, restore it\n"
    "with the same pipeline as 'trestle restore' (every byte CRC-checked, converted\n"
    "as asked) straight into memory the server holds, and publish it with a manifest\n"
    "(each tensor's name, dtype, shape, offset and CRC32C). Then\n"
    "'trestle restore PATH --server S' and Python's trestle.restore(path, server=S),\n"
    "with the same op options, map it read-only in milliseconds. A later preload of a\n"
    "changed checkpoint replaces it; the changed checkpoint is never served stale.\n"
    "The preload reads the files with its own permissions; the server never opens\n"
    "them. PATH may be a URL (gs://, s3://, http(s)://): its entry is keyed by each\n"
    "object's ETag or generation, so an object replaced in the store is not served.\n"
    "\n"
    "What to preload (as for 'trestle restore'):\n"
    "      --ops FILE         the ops listed in FILE ('-': standard input)\n"
    "      --graph GRAPH      the ops GRAPH's saver restores (--tag TAG picks a\n"
    "                         SavedModel's meta graph)\n"
    "      --as DTYPE         convert every tensor whose stored dtype converts to DTYPE\n"
    "      --rename A=B       with --ops or --graph: op name A from checkpoint key B\n"
    "      --exclude GLOB     leave out op names matching GLOB (repeatable)\n"
    "      --allow-missing    leave out keys the checkpoint lacks\n"
    "      --skip-unsupported leave out variant tensors\n"
    "\n"
    "Where:\n"
    "      --host             host memory: a sealed memfd (default)\n"
    "      --device N[,M...]  CUDA device memory on each listed GPU (a CUDA VMM\n"
    "                         allocation per GPU; needs a CUDA build). The checkpoint\n"
    "                         is read and CRC-checked once, and copied to every GPU\n"
    "      --socket S         the server (default: $XDG_RUNTIME_DIR/trestle.sock, else\n"
    "                         /run/trestle/trestle.sock)\n"
    "      --threads N        verify/copy workers of the restore\n"
    "\n"
    "What is resident:\n"
    "      --list             every entry, least recently used first: path, tier,\n"
    "                         tensors, bytes, clients attached, when loaded and last\n"
    "                         used, verified, the version it is (index size and CRC-32C,\n"
    "                         shards), and 'changed' when the files on disk are no\n"
    "                         longer that version\n"
    "      --json             with --list: one JSON object\n"
    "      --evict PATH       drop the entries of the checkpoint at PATH (every\n"
    "                         selection and tier), or of every checkpoint under a\n"
    "                         directory; clients that map them keep their mappings\n"
    "      --evict-all        drop every entry\n"
    "  -q, --quiet            print nothing but errors\n"
    "  -h, --help             show this help\n"
    "\n"
    "A server with --host-cap evicts the least recently used entries that no client\n"
    "holds to make room; a preload that still does not fit fails, naming the tier and\n"
    "the bytes.\n"
    "\n"
    "Examples:\n"
    "  trestle preload /models/llm/ckpt-1000\n"
    "  trestle preload /models/llm/ckpt-1000 --as bfloat16 --socket /run/trestle/trestle.sock\n"
    "  trestle preload /models/llm/ckpt-1000 --device 0,1\n"
    "  trestle preload --list\n"
    "  trestle preload --evict /models/llm/ckpt-1000\n";

enum { OPT_OPS = 256, OPT_GRAPH, OPT_TAG, OPT_AS, OPT_RENAME, OPT_EXCLUDE, OPT_ALLOW_MISSING,
       OPT_SKIP_UNSUPPORTED, OPT_HOST, OPT_DEVICE, OPT_SOCKET, OPT_THREADS, OPT_LIST, OPT_JSON,
       OPT_EVICT, OPT_EVICT_ALL };

static const struct option preload_longopts[] = {
    { "ops", required_argument, NULL, OPT_OPS },
    { "graph", required_argument, NULL, OPT_GRAPH },
    { "tag", required_argument, NULL, OPT_TAG },
    { "as", required_argument, NULL, OPT_AS },
    { "rename", required_argument, NULL, OPT_RENAME },
    { "exclude", required_argument, NULL, OPT_EXCLUDE },
    { "allow-missing", no_argument, NULL, OPT_ALLOW_MISSING },
    { "skip-unsupported", no_argument, NULL, OPT_SKIP_UNSUPPORTED },
    { "host", no_argument, NULL, OPT_HOST },
    { "device", required_argument, NULL, OPT_DEVICE },
    { "socket", required_argument, NULL, OPT_SOCKET },
    { "threads", required_argument, NULL, OPT_THREADS },
    { "list", no_argument, NULL, OPT_LIST },
    { "json", no_argument, NULL, OPT_JSON },
    { "evict", required_argument, NULL, OPT_EVICT },
    { "evict-all", no_argument, NULL, OPT_EVICT_ALL },
    { "quiet", no_argument, NULL, 'q' },
    { "help", no_argument, NULL, 'h' },
    { NULL, 0, NULL, 0 },
};

typedef struct preload_args {
    const char *path, *ops_file, *graph, *tag, *socket, *evict;
    int as, list, json, evict_all, quiet;
    const char **renames, **excludes;
    size_t nrenames, nexcludes;
    trestle_plan_options plan;
    unsigned threads;
    int devices[CLI_MAX_DEVICES];
    size_t ndevices;
} preload_args;

static const char *pages_text(int pages)
{
    return pages == 1 ? "hugetlb pages" : pages == 2 ? "transparent huge pages" : "ordinary pages";
}

static void when_text(double at, char *buf, size_t cap)
{
    time_t t = (time_t)at;
    struct tm tm;
    if (at <= 0 || !localtime_r(&t, &tm))
        snprintf(buf, cap, "-");
    else
        strftime(buf, cap, "%Y-%m-%d %H:%M:%S", &tm);
}

static void ago_text(double at, char *buf, size_t cap)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    double s = (double)now.tv_sec + (double)now.tv_nsec * 1e-9 - at;
    if (s < 0)
        s = 0;
    if (s < 120)
        snprintf(buf, cap, "%.0f s ago", s);
    else if (s < 7200)
        snprintf(buf, cap, "%.0f min ago", s / 60);
    else
        snprintf(buf, cap, "%.1f h ago", s / 3600);
}

static void print_json(const trestle_resident_list *l)
{
    trestle_resident_server sv;
    trestle_resident_list_server(l, &sv);
    printf("{\n  \"server\": {\"pid\": %d, \"started_at\": %.3f, \"host_cap\": %" PRIu64
           ", \"host_used\": %" PRIu64 ", \"device_cap\": %" PRIu64 ", \"device_used\": %" PRIu64
           ", \"connections\": %u},\n  \"entries\": [",
           sv.pid, sv.started_at, sv.host_cap, sv.host_used, sv.device_cap, sv.device_used,
           sv.connections);
    for (size_t i = 0; i < trestle_resident_list_count(l); i++) {
        trestle_resident_entry e;
        trestle_resident_list_get(l, i, &e);
        printf("%s\n    {\"path\": ", i ? "," : "");
        cli_json_cstr(stdout, e.path);
        printf(", \"tier\": \"%s\", \"device\": %d, \"tensors\": %zu, \"bytes\": %" PRIu64
               ", \"memory_bytes\": %" PRIu64 ", \"clients\": %u, \"loaded_at\": %.3f, "
               "\"last_used_at\": %.3f, \"verified\": %s, \"huge_pages\": %d, \"changed\": %s, "
               "\"index_bytes\": %" PRIu64 ", \"index_crc32c\": \"0x%08x\", \"shards\": %d, "
               "\"selection\": \"%016" PRIx64 "\"}",
               e.tier == TRESTLE_TIER_HOST ? "host" : "device", e.device, e.tensors, e.bytes,
               e.memory_bytes, e.clients, e.loaded_at, e.last_used_at,
               e.verified ? "true" : "false", e.huge_pages, e.changed ? "true" : "false",
               e.index_bytes, (unsigned)e.index_crc32c, e.num_shards, e.selection);
    }
    printf("%s]\n}\n", trestle_resident_list_count(l) ? "\n  " : "");
}

static int print_table(const trestle_resident_list *l)
{
    static const char *const head[] = { "PATH", "TIER", "TENSORS", "BYTES", "CLIENTS", "LOADED",
                                        "LAST USED", "VERIFIED", "VERSION" };
    static const int right[] = { 0, 0, 1, 1, 1, 0, 0, 0, 0 };
    trestle_resident_server sv;
    char used[32], cap[32], started[32], dused[32];
    trestle_resident_list_server(l, &sv);
    when_text(sv.started_at, started, sizeof started);
    size_t n = trestle_resident_list_count(l);
    if (n == 0) {
        printf("nothing resident (server pid %d, started %s)\n", sv.pid, started);
        return CLI_EXIT_OK;
    }
    cli_table *t = cli_table_new(9, head, right);
    for (size_t i = 0; t && i < n; i++) {
        trestle_resident_entry e;
        char tier[32], tensors[32], bytes[32], clients[32], loaded[32], last[32], ver[128];
        trestle_resident_list_get(l, i, &e);
        if (e.tier == TRESTLE_TIER_HOST)
            snprintf(tier, sizeof tier, "host");
        else
            snprintf(tier, sizeof tier, "device %d", e.device);
        snprintf(tensors, sizeof tensors, "%zu", e.tensors);
        cli_human_size(e.bytes, bytes, sizeof bytes);
        snprintf(clients, sizeof clients, "%u", e.clients);
        when_text(e.loaded_at, loaded, sizeof loaded);
        ago_text(e.last_used_at, last, sizeof last);
        snprintf(ver, sizeof ver, "index %" PRIu64 " B crc 0x%08x, %d shard%s%s", e.index_bytes,
                 (unsigned)e.index_crc32c, e.num_shards, e.num_shards == 1 ? "" : "s",
                 e.changed ? " (changed on disk since)" : "");
        const char *row[] = { e.path, tier, tensors, bytes, clients, loaded, last,
                              e.verified ? "yes" : "no", ver };
        if (cli_table_add_escaped(t, row) != 0) {
            cli_table_free(t);
            t = NULL;
        }
    }
    if (!t) {
        cli_error("out of memory");
        return CLI_EXIT_FAIL;
    }
    cli_table_print(t, stdout);
    cli_table_free(t);
    cli_human_size(sv.host_used, used, sizeof used);
    cli_human_size(sv.device_used, dused, sizeof dused);
    if (sv.host_cap)
        cli_human_size(sv.host_cap, cap, sizeof cap);
    printf("server pid %d, started %s: host tier %s held (%s%s), device tier %s; %u "
           "connection%s\n", sv.pid, started, used, sv.host_cap ? "cap " : "no cap",
           sv.host_cap ? cap : "", dused, sv.connections, sv.connections == 1 ? "" : "s");
    return CLI_EXIT_OK;
}

static int run_list(const preload_args *a)
{
    trestle_resident_list *l;
    trestle_error err;
    if (trestle_resident_query(cli_socket_arg(a->socket), &l, &err) != TRESTLE_OK)
        return cli_fail(&err);
    int status = CLI_EXIT_OK;
    if (a->json)
        print_json(l);
    else
        status = print_table(l);
    trestle_resident_list_free(l);
    return status;
}

static int run_evict(const preload_args *a)
{
    trestle_evict_info ev;
    trestle_error err;
    char bytes[32];
    if (trestle_resident_evict(cli_socket_arg(a->socket), a->evict_all ? NULL : a->evict, &ev,
                               &err) != TRESTLE_OK)
        return cli_fail(&err);
    cli_human_size(ev.bytes, bytes, sizeof bytes);
    if (!a->quiet) {
        if (ev.entries == 0)
            printf("nothing to evict%s%s\n", a->evict_all ? "" : ": nothing resident of ",
                   a->evict_all ? "" : a->evict);
        else
            printf("evicted %u entr%s, %s%s\n", ev.entries, ev.entries == 1 ? "y" : "ies", bytes,
                   ev.in_use ? " (clients still map some: that memory goes when they detach)"
                             : "");
    }
    return CLI_EXIT_OK;
}

static int preload(const preload_args *a, const trestle_checkpoint *ckpt, const cli_ops *ops,
                   const trestle_plan_options *popt)
{
    trestle_preload_options po;
    trestle_restore_options ro;
    trestle_preload_info info;
    trestle_error err;
    char socket[256], bytes[32], rate[32], read[32];
    trestle_preload_options_init(&po);
    trestle_restore_options_init(&ro);
    if (a->threads)
        ro.threads = a->threads;
    po.socket_path = cli_socket_arg(a->socket);
    /* Every listed GPU in one preload: the files are read and checked once. */
    po.devices = a->ndevices ? a->devices : NULL;
    po.num_devices = a->ndevices;
    po.restore = &ro;
    if (trestle_preload(ckpt, ops->ops, ops->n, popt, &po, &info, &err) != TRESTLE_OK) {
        cli_fail(&err);
        if (err.code == TRESTLE_E_UNSUPPORTED && !popt->skip_unsupported)
            cli_error("--skip-unsupported preloads the rest; --exclude NAME leaves one out");
        return CLI_EXIT_FAIL;
    }
    if (a->quiet)
        return CLI_EXIT_OK;
    if (po.socket_path)
        snprintf(socket, sizeof socket, "%s", po.socket_path);
    else
        trestle_server_default_socket(socket, sizeof socket, NULL);
    cli_human_size(info.bytes, bytes, sizeof bytes);
    cli_rate(info.bytes, info.seconds, rate, sizeof rate);
    if (a->ndevices == 0)
        printf("preloaded %zu tensor%s, %s onto the host tier (%s) of %s in %.3f s: %s, every "
               "byte CRC-checked\n", info.tensors, info.tensors == 1 ? "" : "s", bytes,
               pages_text(info.huge_pages), socket, info.seconds, rate);
    else if (a->ndevices == 1)
        printf("preloaded %zu tensor%s, %s onto the device tier of GPU %d of %s in %.3f s: %s, "
               "every byte CRC-checked\n", info.tensors, info.tensors == 1 ? "" : "s", bytes,
               a->devices[0], socket, info.seconds, rate);
    else {
        for (size_t i = 0; i < a->ndevices; i++)
            printf("preloaded %zu tensor%s, %s onto the device tier of GPU %d of %s\n",
                   info.tensors, info.tensors == 1 ? "" : "s", bytes, a->devices[i], socket);
        cli_human_size(info.stats.bytes_read, read, sizeof read);
        cli_rate(info.stats.bytes_read, info.seconds, rate, sizeof rate);
        printf("read %s from storage once for %zu GPUs in %.3f s: %s, every byte CRC-checked "
               "once and copied to each GPU\n", read, a->ndevices, info.seconds, rate);
    }
    if (info.replaced)
        printf("replaced %u entr%s: an older version of the checkpoint, or the same selection\n",
               info.replaced, info.replaced == 1 ? "y" : "ies");
    return CLI_EXIT_OK;
}

static int run_preload(const preload_args *a)
{
    trestle_checkpoint *ckpt = NULL;
    cli_ops ops = { 0 };
    trestle_plan_options popt = a->plan;
    int status = cli_open(a->path, &ckpt);
    if (status != CLI_EXIT_OK)
        return status;
    if (a->ops_file || a->graph)
        status = cli_op_list_read(a->ops_file ? a->ops_file : a->graph, a->tag,
                                  TRESTLE_DEST_ALLOCATE, &ops);
    else if (a->as)
        status = cli_ops_converting_all(ckpt, a->as, &ops);
    if (status != CLI_EXIT_OK)
        goto out;
    popt.op_shapes = ops.shapes;
    popt.renames = a->renames;
    popt.num_renames = a->nrenames;
    popt.excludes = a->excludes;
    popt.num_excludes = a->nexcludes;
    status = preload(a, ckpt, &ops, &popt);
out:
    cli_ops_free(&ops);
    trestle_close(ckpt);
    return status;
}

static int apply(preload_args *a, int c, const char *arg)
{
    long long v;
    switch (c) {
    case OPT_OPS: a->ops_file = arg; break;
    case OPT_GRAPH: a->graph = arg; break;
    case OPT_TAG: a->tag = arg; break;
    case OPT_AS:
        if ((a->as = trestle_dtype_from_name(arg)) == TRESTLE_DT_INVALID)
            return cli_usage("preload", "--as wants a dtype such as bfloat16 or float32, not "
                             "'%s'", arg);
        break;
    case OPT_RENAME:
        if (!strchr(arg, '=') || arg[0] == '=')
            return cli_usage("preload", "--rename wants GRAPH_NAME=CHECKPOINT_KEY, not '%s'",
                             arg);
        a->renames[a->nrenames++] = arg;
        break;
    case OPT_EXCLUDE: a->excludes[a->nexcludes++] = arg; break;
    case OPT_ALLOW_MISSING: a->plan.allow_missing = 1; break;
    case OPT_SKIP_UNSUPPORTED: a->plan.skip_unsupported = 1; break;
    case OPT_HOST: a->ndevices = 0; break;
    case OPT_DEVICE:
        return cli_devices_parse("preload", arg, a->devices, CLI_MAX_DEVICES, &a->ndevices);
    case OPT_SOCKET: a->socket = arg; break;
    case OPT_THREADS:
        if (cli_parse_int(arg, 1, 1024, &v) != 0)
            return cli_usage("preload", "--threads wants a number from 1 to 1024, not '%s'", arg);
        a->threads = (unsigned)v;
        break;
    case OPT_LIST: a->list = 1; break;
    case OPT_JSON: a->json = 1; break;
    case OPT_EVICT: a->evict = arg; break;
    case OPT_EVICT_ALL: a->evict_all = 1; break;
    case 'q': a->quiet = 1; break;
    default: return CLI_EXIT_USAGE;
    }
    return CLI_EXIT_OK;
}

static int check_args(const preload_args *a, int npaths)
{
    int modes = a->list + (a->evict != NULL) + a->evict_all;
    if (modes > 1)
        return cli_usage("preload", "--list, --evict and --evict-all exclude each other");
    if (modes && npaths)
        return cli_usage("preload", "--list and --evict take no PATH to preload");
    if (a->json && !a->list)
        return cli_usage("preload", "--json goes with --list");
    if (!modes && npaths == 0)
        return cli_usage("preload", "missing PATH (or --list, --evict PATH)");
    if (npaths > 1)
        return cli_usage("preload", "expected one PATH, got %d arguments", npaths);
    if (!!a->ops_file + !!a->graph + !!a->as > 1)
        return cli_usage("preload", "--ops, --graph and --as exclude each other");
    if (a->tag && !a->graph)
        return cli_usage("preload", "--tag picks the meta graph of --graph; it needs --graph");
    if (a->nrenames && !a->ops_file && !a->graph)
        return cli_usage("preload", "--rename maps the names of an ops file or a graph; it "
                         "needs --ops or --graph");
    return CLI_EXIT_OK;
}

int cli_preload_main(int argc, char **argv)
{
    preload_args a;
    int c, status;
    memset(&a, 0, sizeof a);
    trestle_plan_options_init(&a.plan);
    a.renames = calloc((size_t)argc, sizeof *a.renames);
    a.excludes = calloc((size_t)argc, sizeof *a.excludes);
    if (!a.renames || !a.excludes) {
        cli_error("out of memory");
        status = CLI_EXIT_FAIL;
        goto out;
    }
    cli_getopt_reset();
    while ((c = getopt_long(argc, argv, ":qh", preload_longopts, NULL)) != -1) {
        if (c == 'h') {
            fputs(preload_help, stdout);
            status = CLI_EXIT_OK;
            goto out;
        }
        if (c == '?' || c == ':') {
            status = cli_bad_option("preload", argv, c);
            goto out;
        }
        if ((status = apply(&a, c, optarg)) != CLI_EXIT_OK)
            goto out;
    }
    if ((status = check_args(&a, argc - optind)) != CLI_EXIT_OK)
        goto out;
    if (a.list)
        status = run_list(&a);
    else if (a.evict || a.evict_all)
        status = run_evict(&a);
    else {
        a.path = argv[optind];
        status = run_preload(&a);
    }
out:
    free(a.renames);
    free(a.excludes);
    return status;
}
