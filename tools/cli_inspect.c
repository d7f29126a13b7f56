/*
 * cli_inspect.c - `trestle inspect`: what is in a checkpoint, as TensorFlow's
 * inspect_checkpoint shows it, plus what it does not: byte sizes, shards and
 * offsets, CRC verification of every tensor, per-tensor statistics and a
 * JSON form for machines.
 *
 * Listing needs only the index (no data is read), so it works on an
 * index-only or partly missing checkpoint; --tensor, --stats and --verify
 * read data with trestle_tensor_read().
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char inspect_help[] =
    "Usage: trestle inspect [OPTIONS] PATH\n"
    "\n"
    "List every tensor of a TensorFlow checkpoint: name, dtype, shape, stored\n"
    "size, shard and byte offset. Only the index is read unless --tensor,\n"
    "--stats or --verify asks for data.\n"
    "\n"
    "PATH is a checkpoint prefix (model.ckpt-1000), its .index file, one of its\n"
    ".data-NNNNN-of-MMMMM files, or a directory (its 'checkpoint' state file or\n"
    "its single .index file decides), or the same as a gs://, s3://, https:// or\n"
    "http:// URL (the index is fetched in one GET).\n"
    "\n"
    "Options:\n"
    "  -t, --tensor NAME  print the values of tensor NAME instead of the listing\n"
    "                     (repeatable); numpy-style, big tensors summarised with\n"
    "                     '...'; strings as Python byte literals (b'...')\n"
    "  -a, --all          with --tensor: print every element, never summarise\n"
    "  -s, --stats        add min, max, mean and NaN count of every numeric tensor\n"
    "                     (bfloat16, half and float8 are converted to float); the\n"
    "                     bytes are CRC-checked first: a bad tensor gets no stats,\n"
    "                     is named on stderr, and the exit status is 1\n"
    "      --verify       check the CRC32C of every tensor and name the bad ones;\n"
    "                     exits 1 if any is bad (all are checked regardless); a\n"
    "                     tensor whose data shard is missing is UNREADABLE\n"
    "  -j, --json         print JSON instead of text (one object; names escaped)\n"
    "      --names MODE   'key' (default): the listing above; 'graph': each key of\n"
    "                     a TF2 checkpoint beside its graph name from the object\n"
    "                     graph (dense/kernel; optimizer slots as VAR/SLOT)\n"
    "  -h, --help         show this help\n"
    "\n"
    "Notes:\n"
    "  TF2 object-based checkpoints list their keys as stored\n"
    "  (layer/kernel/.ATTRIBUTES/VARIABLE_VALUE); the _CHECKPOINTABLE_OBJECT_GRAPH\n"
    "  entry shows as \"(object graph, N bytes)\". Partitioned (TF1 sliced)\n"
    "  variables list once, with their slice count. Floats print in Python's\n"
    "  shortest round-trip form (-0.85786223, 32768.0, 1e-05).\n"
    "\n"
    "Examples:\n"
    "  trestle inspect ./ckpt/model.ckpt-1000\n"
    "  trestle inspect --tensor dense/kernel --all saved_model/variables\n"
    "  trestle inspect --stats --verify --json ckpt_dir > report.json\n";

typedef struct inspect_args {
    const char *path;
    char **tensors;     /* --tensor names (pointers into argv) */
    size_t ntensors;
    int all, stats, verify, json;
    int graph_names;    /* --names graph */
} inspect_args;

/* ---- helpers shared by text and JSON ---- */

static const char *kind_name(int kind)
{
    return kind == TRESTLE_TENSOR_PARTITIONED ? "partitioned"
           : kind == TRESTLE_TENSOR_OBJECT_GRAPH ? "object_graph"
                                                 : "plain";
}

/* "(object graph, 613 bytes)", "(partitioned, 4 slices)" or "". */
static void tensor_note(const trestle_tensor_info *t, char *buf, size_t cap)
{
    if (t->kind == TRESTLE_TENSOR_OBJECT_GRAPH)
        snprintf(buf, cap, "(object graph, %" PRIu64 " bytes)", cli_scalar_string_len(t->size));
    else if (t->kind == TRESTLE_TENSOR_PARTITIONED)
        snprintf(buf, cap, "(partitioned, %d slice%s)", t->num_slices,
                 t->num_slices == 1 ? "" : "s");
    else
        buf[0] = '\0';
}

/*
 * Report a missing --tensor NAME. A one-op plan asks the library for its
 * missing-key report, which suggests the closest existing names.
 */
static void report_missing(const trestle_checkpoint *c, const char *name, trestle_error *find_err)
{
    trestle_op op = { .name = name, .dest_kind = TRESTLE_DEST_DISCARD };
    trestle_plan *plan = NULL;
    trestle_error err;
    trestle_error_clear(&err);
    int rc = trestle_plan_create(c, &op, 1, NULL, &plan, &err);
    trestle_plan_free(plan);
    cli_fail(rc == TRESTLE_E_KEY_NOT_FOUND ? &err : find_err);
}

static void json_info_fields(FILE *f, const trestle_tensor_info *t)
{
    fputs("{\"name\": ", f);
    cli_json_cstr(f, t->name);
    fprintf(f, ", \"dtype\": \"%s\", \"shape\": [", trestle_dtype_name(t->dtype));
    for (int d = 0; d < t->rank; d++)
        fprintf(f, "%s%" PRId64, d ? ", " : "", t->dims[d]);
    fprintf(f, "], \"bytes\": %" PRIu64 ", \"kind\": \"%s\"", t->size, kind_name(t->kind));
    if (t->kind == TRESTLE_TENSOR_PARTITIONED)
        fprintf(f, ", \"shard\": null, \"offset\": null, \"slices\": %d", t->num_slices);
    else
        fprintf(f, ", \"shard\": %d, \"offset\": %" PRIu64 ", \"crc32c_masked\": %" PRIu32,
                t->shard, t->offset, t->crc32c_masked);
    if (t->kind == TRESTLE_TENSOR_OBJECT_GRAPH)
        fprintf(f, ", \"object_graph_bytes\": %" PRIu64, cli_scalar_string_len(t->size));
}

static void json_checkpoint_head(FILE *f, const trestle_checkpoint *c)
{
    trestle_checkpoint_info ci;
    trestle_checkpoint_get_info(c, &ci);
    fputs("{\n  \"prefix\": ", f);
    cli_json_cstr(f, ci.prefix);
    fputs(",\n  \"index\": ", f);
    cli_json_cstr(f, ci.index_path);
    fputs(",\n  \"shards\": [", f);
    for (int s = 0; s < ci.num_shards; s++) {
        if (s)
            fputs(", ", f);
        cli_json_cstr(f, trestle_shard_path(c, s));
    }
    fprintf(f, "],\n  \"num_tensors\": %zu,\n  \"data_bytes\": %" PRIu64
               ",\n  \"object_based\": %s,\n  \"tensors\": [\n",
            ci.num_tensors, ci.data_bytes, ci.object_based ? "true" : "false");
}

/* ---- --tensor NAME ---- */

/* Read one tensor (verified) into a malloc'd buffer. */
static void *read_tensor(const trestle_checkpoint *c, size_t i, const trestle_tensor_info *t,
                         uint64_t *size, trestle_error *err)
{
    uint64_t need = cli_read_size(t);
    void *buf = malloc(need ? (size_t)need : 1);
    if (!buf) {
        err->code = TRESTLE_E_NOMEM;
        snprintf(err->message, sizeof err->message,
                 "out of memory reading tensor '%s' (%" PRIu64 " bytes)", t->name, need);
        return NULL;
    }
    if (trestle_tensor_read(c, i, buf, (size_t)need, 1, err) != TRESTLE_OK) {
        free(buf);
        return NULL;
    }
    *size = need;
    return buf;
}

static int print_one_text(const trestle_checkpoint *c, size_t i, const inspect_args *a)
{
    trestle_tensor_info t;
    trestle_error err;
    char shape[256], note[96];
    uint64_t size = 0;

    trestle_error_clear(&err);
    trestle_tensor_get_info(c, i, &t);
    cli_shape_format(t.rank, t.dims, shape, sizeof shape);
    tensor_note(&t, note, sizeof note);
    char *name = cli_escape_text(t.name);
    if (!name) {
        cli_error("out of memory");
        return CLI_EXIT_FAIL;
    }
    printf("%s: %s %s%s%s\n", name, trestle_dtype_name(t.dtype), shape,
           t.kind == TRESTLE_TENSOR_PARTITIONED ? " " : "",
           t.kind == TRESTLE_TENSOR_PARTITIONED ? note : "");
    free(name);
    if (t.kind == TRESTLE_TENSOR_OBJECT_GRAPH) {
        /* A serialized TrackableObjectGraph proto: bytes, not something to read. */
        printf("%s\n", note);
        return CLI_EXIT_OK;
    }
    void *buf = read_tensor(c, i, &t, &size, &err);
    if (!buf)
        return cli_fail(&err);
    int rc = cli_print_values(stdout, &t, buf, size, a->all, &err);
    if (rc == TRESTLE_OK && a->stats) {
        cli_stats st;
        cli_stats_compute(t.dtype, buf, (uint64_t)t.num_elements, &st);
        if (st.valid)
            printf("min %s  max %s  mean %s  nan %" PRIu64 "\n", st.min[0], st.max[0],
                   st.mean[0], st.nans);
    }
    free(buf);
    return rc == TRESTLE_OK ? CLI_EXIT_OK : cli_fail(&err);
}

static int print_one_json(const trestle_checkpoint *c, size_t i, const inspect_args *a,
                          int first)
{
    trestle_tensor_info t;
    trestle_error err;
    uint64_t size = 0;
    int truncated = 0, rc = TRESTLE_OK;

    trestle_error_clear(&err);
    trestle_tensor_get_info(c, i, &t);
    void *buf = NULL;
    if (t.kind != TRESTLE_TENSOR_OBJECT_GRAPH) {
        buf = read_tensor(c, i, &t, &size, &err);
        if (!buf)
            return cli_fail(&err);
    }
    printf("%s    ", first ? "" : ",\n");
    json_info_fields(stdout, &t);
    fputs(", \"values\": ", stdout);
    if (buf)
        rc = cli_print_values_json(stdout, &t, buf, size, a->all, &truncated, &err);
    else
        fputs("null", stdout);
    printf(", \"truncated\": %s", truncated ? "true" : "false");
    if (buf && a->stats) {
        cli_stats st;
        cli_stats_compute(t.dtype, buf, (uint64_t)t.num_elements, &st);
        if (st.valid)
            printf(", \"stats\": {\"min\": %s, \"max\": %s, \"mean\": %s, \"nans\": %" PRIu64 "}",
                   st.min[1], st.max[1], st.mean[1], st.nans);
    }
    fputs("}", stdout);
    free(buf);
    return rc == TRESTLE_OK ? CLI_EXIT_OK : cli_fail(&err);
}

static int print_tensors(const trestle_checkpoint *c, const inspect_args *a)
{
    int status = CLI_EXIT_OK, printed = 0;
    if (a->json)
        json_checkpoint_head(stdout, c);
    for (size_t k = 0; k < a->ntensors; k++) {
        size_t i;
        trestle_error err;
        trestle_error_clear(&err);
        if (trestle_tensor_find(c, a->tensors[k], &i, &err) != TRESTLE_OK) {
            report_missing(c, a->tensors[k], &err);
            status = CLI_EXIT_FAIL;
            continue;
        }
        if (!a->json && printed)
            putchar('\n');
        int rc = a->json ? print_one_json(c, i, a, printed == 0) : print_one_text(c, i, a);
        printed++;
        if (rc != CLI_EXIT_OK)
            status = rc;
    }
    if (a->json)
        printf("%s  ]\n}\n", printed ? "\n" : "");
    return status;
}

/* ---- the listing ---- */

static void list_json(const trestle_checkpoint *c, const inspect_args *a,
                      const cli_scan_result *res, const cli_scan_counts *k)
{
    size_t n = trestle_tensor_count(c);
    json_checkpoint_head(stdout, c);
    for (size_t i = 0; i < n; i++) {
        trestle_tensor_info t;
        trestle_tensor_get_info(c, i, &t);
        fputs("    ", stdout);
        json_info_fields(stdout, &t);
        if (a->verify)
            printf(", \"crc_ok\": %s", res[i].code == TRESTLE_OK ? "true" : "false");
        if (res && res[i].code != TRESTLE_OK) { /* --stats checks the bytes too */
            fputs(", \"error\": ", stdout);
            cli_json_cstr(stdout, res[i].message);
            if (res[i].unreadable)
                fputs(", \"unreadable\": true", stdout);
        }
        if (a->stats) {
            const cli_stats *st = &res[i].stats;
            if (st->valid)
                printf(", \"stats\": {\"min\": %s, \"max\": %s, \"mean\": %s, \"nans\": %" PRIu64
                       "}", st->min[1], st->max[1], st->mean[1], st->nans);
            else
                fputs(", \"stats\": null", stdout);
        }
        printf("}%s\n", i + 1 < n ? "," : "");
    }
    fputs("  ]", stdout);
    if (a->verify)
        printf(",\n  \"verify\": {\"checked\": %zu, \"bad\": %zu, \"corrupt\": %zu, "
               "\"unreadable\": %zu}", n, k->corrupt + k->unreadable, k->corrupt, k->unreadable);
    fputs("\n}\n", stdout);
}

static int list_text(const trestle_checkpoint *c, const inspect_args *a,
                     const cli_scan_result *res, const cli_scan_counts *k)
{
    static const char *const headers[] = { "NAME", "DTYPE", "SHAPE", "SIZE", "SHARD", "OFFSET",
                                           "CRC32C", "MIN", "MAX", "MEAN", "NAN", "NOTE" };
    static const int right[] = { 0, 0, 0, 1, 1, 1, 0, 1, 1, 1, 1, 0 };
    trestle_checkpoint_info ci;
    char total[32];
    size_t n = trestle_tensor_count(c);

    trestle_checkpoint_get_info(c, &ci);
    cli_human_size(ci.data_bytes, total, sizeof total);
    char *prefix = cli_escape_text(ci.prefix);
    if (!prefix) {
        cli_error("out of memory");
        return CLI_EXIT_FAIL;
    }
    printf("checkpoint %s: %zu tensor%s, %s in %d shard%s%s\n", prefix, ci.num_tensors,
           ci.num_tensors == 1 ? "" : "s", total, ci.num_shards, ci.num_shards == 1 ? "" : "s",
           ci.object_based ? ", object-based (TF2)" : "");
    free(prefix);

    cli_table *tab = cli_table_new(12, headers, right);
    if (!tab) {
        cli_error("out of memory");
        return CLI_EXIT_FAIL;
    }
    for (size_t i = 0; i < n; i++) {
        trestle_tensor_info t;
        char shape[256], size[32], shard[16] = "-", offset[32] = "-", nans[32] = "", note[96];
        const char *crc = "", *mn = "", *mx = "", *mean = "";
        trestle_tensor_get_info(c, i, &t);
        cli_shape_format(t.rank, t.dims, shape, sizeof shape);
        cli_human_size(t.size, size, sizeof size);
        if (t.kind != TRESTLE_TENSOR_PARTITIONED) {
            cli_fmt_i64(shard, t.shard);
            cli_fmt_u64(offset, t.offset);
        }
        if (a->verify)
            crc = res[i].code == TRESTLE_OK ? "ok" : res[i].unreadable ? "UNREADABLE" : "BAD";
        if (a->stats) {
            const cli_stats *st = &res[i].stats;
            mn = mx = mean = "-";
            snprintf(nans, sizeof nans, "-");
            if (st->valid) {
                mn = st->min[0];
                mx = st->max[0];
                mean = st->mean[0];
                snprintf(nans, sizeof nans, "%" PRIu64, st->nans);
            }
        }
        tensor_note(&t, note, sizeof note);
        /* Keys are bytes from the file: escaped, so that a newline or an
         * escape sequence in one cannot forge rows or drive the terminal. */
        const char *row[] = { t.name, trestle_dtype_name(t.dtype), shape, size, shard, offset,
                              crc, mn, mx, mean, nans, note };
        if (cli_table_add_escaped(tab, row) != 0) {
            cli_table_free(tab);
            cli_error("out of memory");
            return CLI_EXIT_FAIL;
        }
    }
    cli_table_print(tab, stdout);
    cli_table_free(tab);
    if (a->verify || k->corrupt + k->unreadable > 0) {
        /* --stats reads (and checks) the bytes too, so it reports failures. */
        char unreadable[48] = "";
        if (k->unreadable)
            snprintf(unreadable, sizeof unreadable, "%s%zu unreadable", k->corrupt ? ", " : "",
                     k->unreadable);
        if (k->corrupt + k->unreadable == 0)
            printf("verified %zu tensor%s: all CRC32C OK\n", n, n == 1 ? "" : "s");
        else if (k->corrupt)
            printf("verified %zu tensor%s: %zu BAD%s\n", n, n == 1 ? "" : "s", k->corrupt,
                   unreadable);
        else
            printf("verified %zu tensor%s: %s\n", n, n == 1 ? "" : "s", unreadable);
    }
    return CLI_EXIT_OK;
}

static int list_tensors(const trestle_checkpoint *c, const inspect_args *a)
{
    cli_scan_result *res = NULL;
    cli_scan_counts k = { 0, 0 };
    size_t n = trestle_tensor_count(c);
    if (a->verify || a->stats) {
        res = cli_scan(c, a->stats, &k);
        if (!res) {
            cli_error("out of memory");
            return CLI_EXIT_FAIL;
        }
    }
    int status = a->json ? (list_json(c, a, res, &k), CLI_EXIT_OK) : list_text(c, a, res, &k);
    cli_scan_free(res, n);
    return k.corrupt + k.unreadable ? CLI_EXIT_FAIL : status;
}

/* ---- command ---- */

int cli_inspect_main(int argc, char **argv)
{
    enum { OPT_VERIFY = 256, OPT_NAMES };
    static const struct option longopts[] = {
        { "tensor", required_argument, NULL, 't' },
        { "all", no_argument, NULL, 'a' },
        { "stats", no_argument, NULL, 's' },
        { "verify", no_argument, NULL, OPT_VERIFY },
        { "json", no_argument, NULL, 'j' },
        { "names", required_argument, NULL, OPT_NAMES },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    inspect_args a = { 0 };
    int c;

    a.tensors = calloc((size_t)argc, sizeof *a.tensors);
    if (!a.tensors) {
        cli_error("out of memory");
        return CLI_EXIT_FAIL;
    }
    cli_getopt_reset();
    while ((c = getopt_long(argc, argv, ":t:asjh", longopts, NULL)) != -1) {
        switch (c) {
        case 't': a.tensors[a.ntensors++] = optarg; break;
        case 'a': a.all = 1; break;
        case 's': a.stats = 1; break;
        case 'j': a.json = 1; break;
        case OPT_VERIFY: a.verify = 1; break;
        case OPT_NAMES:
            if (strcmp(optarg, "graph") != 0 && strcmp(optarg, "key") != 0) {
                free(a.tensors);
                return cli_usage("inspect", "--names is 'key' or 'graph', not '%s'", optarg);
            }
            a.graph_names = strcmp(optarg, "graph") == 0;
            break;
        case 'h':
            fputs(inspect_help, stdout);
            free(a.tensors);
            return CLI_EXIT_OK;
        default:
            free(a.tensors);
            return cli_bad_option("inspect", argv, c);
        }
    }
    if (argc - optind != 1) {
        free(a.tensors);
        if (argc == optind)
            return cli_usage("inspect", "missing PATH");
        return cli_usage("inspect", "expected one PATH, got %d arguments", argc - optind);
    }
    a.path = argv[optind];

    trestle_checkpoint *ckpt = NULL;
    int status = cli_open(a.path, &ckpt);
    if (status == CLI_EXIT_OK)
        status = a.ntensors      ? print_tensors(ckpt, &a)
                 : a.graph_names ? cli_names_list(ckpt, a.json)
                                 : list_tensors(ckpt, &a);
    trestle_close(ckpt);
    free(a.tensors);
    return status;
}
