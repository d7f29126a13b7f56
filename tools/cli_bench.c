/*
 * cli_bench.c - `trestle bench`: restore a checkpoint K times and report
 * each stage (read, verify, copy, total) beside the machine's own
 * yardsticks, measured in the same run (cli_bench_ceiling.c); the report
 * itself is cli_bench_report.c.
 *
 * Each repeat is what a serving process does when it loads a model again:
 * trestle_restore of one plan of every tensor (made once, with the
 * checkpoint opened once) into fresh engine-allocated memory (host, or
 * --device N), which it then adopts and frees. The plan keeps its pinned
 * staging, streams and events from one restore to the next, as a server's
 * does: a plan per repeat would pin 256 MiB of staging in every repeat.
 * Figures come from trestle_stats through cli_figures.c: every repeat is
 * kept, and min, median and max reported, since the first restore after a
 * pause can take ten times the others. --synthetic writes a temporary
 * LLM-shaped checkpoint with `trestle synth` first and removes it at exit,
 * at a failure, or at Ctrl-C, SIGTERM or SIGHUP.
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "cli_bench_result.h"

static const char bench_help[] =
    "Usage: trestle bench (PATH | --synthetic SIZE[,SHARDS]) [OPTIONS]\n"
    "\n"
    "Restore every tensor of a checkpoint K times and print, per stage (read,\n"
    "verify, copy, total), bytes, seconds (min, median, max) and the median GB/s,\n"
    "time to first tensor and peak RSS, each beside a yardstick measured in the\n"
    "same run, on the same shards:\n"
    "  plain read        what a plain reader gets: 1 thread opens each shard in\n"
    "                    turn and read()s it in 1 MiB blocks into a page-aligned\n"
    "                    buffer (as dd bs=1M or cat), median of 5 (of 3 with --cold,\n"
    "                    where the faster of it and an O_DIRECT deep-queue read is\n"
    "                    used); read and total are given as 'N x plain read', and\n"
    "                    may beat it: the engine keeps many reads in flight\n"
    "  CRC32C per core   ISA-L's crc32_iscsi (the engine's) on a buffer in cache\n"
    "  memcpy per core   into touched memory; or, for --device, a pinned\n"
    "                    host-to-device copy\n"
    "  parallel GETs     for a URL (gs://, s3://, https://, http://), instead of the\n"
    "                    two readers: plain ranged GETs of the same bytes in the same\n"
    "                    8 MiB chunks with the same --connections, into scratch\n"
    "                    buffers and nothing else (no CRC, no copy), best of 3; the\n"
    "                    report adds the bytes fetched (retries included) against\n"
    "                    the bytes needed\n"
    "Those three are ceilings (the best of their runs): a stage is given as the\n"
    "fraction of its ceiling it reached, at most 1.00 (a stage measured above it\n"
    "says so, and by how much). A stage that moved nothing says why instead of\n"
    "giving a rate: with every tensor read straight into its destination there is\n"
    "no copy, and with --map no read. Read is bytes over the wall time with reads\n"
    "in flight; verify and copy are bytes over busy time summed over workers, i.e.\n"
    "per core; total is the plan's bytes over the restore's wall time.\n"
    "\n"
    "Rates are GB/s (1e9 bytes per second), sizes binary (1 GiB = 2^30 bytes), in\n"
    "every trestle command. The report names the machine (CPU, cores, memory,\n"
    "kernel, the shards' file system) and this trestle's version and build type.\n"
    "\n"
    "Options:\n"
    "      --synthetic SIZE[,SHARDS]  benchmark a temporary `trestle synth`\n"
    "                       checkpoint of SIZE (bf16) in SHARDS files (default 4),\n"
    "                       under $TMPDIR, removed at exit (also when interrupted)\n"
    "      --host           restore into host memory (default)\n"
    "      --map            host memory: leave cached tensors mapped from the shards\n"
    "                       instead of copying them (as `trestle restore --map`);\n"
    "                       not with --device\n"
    "      --device N       restore into CUDA device N (needs a CUDA build and GPU)\n"
    "      --device N,M,... every tensor onto each listed GPU ('all': every GPU),\n"
    "                       read and checked once; the copy stage is held against\n"
    "                       the first GPU's pinned copy times the number of GPUs\n"
    "      --no-numa        with --device: leave staging and workers off the GPU's\n"
    "                       NUMA node (to measure what placement buys)\n"
    "      --cold           drop the page cache before each repeat and reader run\n"
    "                       (drop_caches when permitted, else fadvise; says which)\n"
    "      --repeat K       restores to run (default 3); every one is reported\n"
    "      --server S       instead: attach to the checkpoint resident on the\n"
    "                       'trestle serve' server on socket S ('default' for the\n"
    "                       default socket), preloading it first if need be (and\n"
    "                       evicting it after), beside a fresh restore of it from the\n"
    "                       page cache, in turn: the time to every tensor's pointer\n"
    "                       of each, their ratio, and the first read of every\n"
    "                       attached page\n"
    "      --json           print one JSON object instead of the tables: each\n"
    "                       repeat's seconds and GB/s per stage, every yardstick run\n"
    "  -h, --help           show this help\n"
    CLI_REMOTE_HELP
    "\n"
    "Under mpirun, `trestle bench` times a group restore (each byte read once) and\n"
    "beside it the same restore by every rank alone (--group none): see\n"
    "`mpirun -np 2 trestle bench --help`. Ctrl-C, SIGTERM or SIGHUP stop the bench,\n"
    "remove --synthetic's checkpoint, say 'interrupted' and end by the signal (the\n"
    "shell sees 130, 143 or 129).\n"
    "\n"
    "Examples:\n"
    "  trestle bench --synthetic 2G,4 --host\n"
    "  trestle bench /tmp/llm/ckpt --cold --repeat 5\n"
    "  trestle bench /nvme/ckpt --device 0 --json > bench.json\n"
    "  trestle bench --synthetic 8G,8 --device all   # one process onto every GPU\n"
    "  trestle bench s3://bucket/llm/ckpt-1000 --connections 64\n"
    "  trestle bench --synthetic 4G,8 --server /run/trestle/trestle.sock\n"
    "  mpirun -np 4 trestle bench --synthetic 2G,8      # a group restore\n";

/* ---- the restores ---- */

static int run_repeats(const bench_args *a, bench_result *r)
{
    trestle_checkpoint *ckpt = NULL;
    trestle_plan *plan = NULL;
    trestle_error err;
    trestle_plan_stats ps;
    int status = CLI_EXIT_FAIL;

    r->runs = calloc((size_t)a->repeat, sizeof *r->runs);
    if (!r->runs) {
        cli_error("out of memory");
        return CLI_EXIT_FAIL;
    }
    if (cli_open(a->path, &ckpt) != CLI_EXIT_OK)
        return CLI_EXIT_FAIL;
    if (trestle_plan_create(ckpt, NULL, 0, NULL, &plan, &err) != TRESTLE_OK) {
        cli_fail(&err);
        goto done;
    }
    trestle_plan_get_stats(plan, &ps);
    r->output_bytes = ps.output_bytes;
    for (int k = 0; k < a->repeat; k++) {
        trestle_restore_options ro;
        trestle_stats st;

        trestle_error_clear(&err);
        memset(&st, 0, sizeof st);
        if (a->cold)
            cli_bench_drop_cache(ckpt, r->cache, sizeof r->cache);
        trestle_restore_options_init(&ro);
        cli_remote_fit(&ro);
        ro.device = a->device;
        if (a->ndevices >= 2) {
            ro.devices = a->devices;
            ro.num_devices = a->ndevices;
        }
        ro.host_map = a->map;
        ro.no_numa = a->no_numa;
        /* No bar: it is the cancel hook, and the ready callback that stops
         * at a signal. */
        cli_progress *pg = cli_progress_start(plan, ps.output_bytes, 0);
        ro.on_ready = cli_progress_ready_fn(pg);
        ro.user = pg;
        int rc = trestle_restore(plan, &ro, &st, &err);
        cli_progress_stop(pg);
        if (rc != TRESTLE_OK) {
            if (!cli_interrupted())
                cli_fail(&err);
            if (rc == TRESTLE_E_NO_DEVICE && a->device >= 0)
                cli_error("--host benchmarks host memory instead");
            goto done;
        }
        cli_run_from_stats(&st, ps.output_bytes, a->device >= 0, 1, &r->runs[k]);
        r->nruns = (size_t)k + 1;
        /* The tensors go, as a reloading server's old weights do: the next
         * repeat restores into fresh memory, not into these pages. */
        for (size_t d = 0; d < (a->ndevices >= 2 ? (size_t)a->ndevices : 1); d++) {
            trestle_arena *arena = NULL;
            if (a->ndevices >= 2)
                trestle_plan_adopt_arena_of(plan, d, &arena);
            else
                trestle_plan_adopt_arena(plan, &arena);
            trestle_arena_free(arena);
        }
        if (cli_interrupted())
            goto done;
    }
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) == 0)
        r->peak_rss = (uint64_t)ru.ru_maxrss * 1024;
    status = CLI_EXIT_OK;
done:
    trestle_plan_free(plan);
    trestle_close(ckpt);
    return status;
}

/*
 * 1 when the library can restore into `device`: a restore of the smallest
 * tensor there succeeds (TRESTLE_E_NO_DEVICE in builds without CUDA). Its
 * wall time goes to *seconds when not NULL.
 */
static int library_has_device(trestle_checkpoint *ckpt, int device, double *seconds)
{
    size_t n = trestle_tensor_count(ckpt), pick = n;
    uint64_t smallest = UINT64_MAX;
    for (size_t i = 0; i < n; i++) {
        trestle_tensor_info t;
        if (trestle_tensor_get_info(ckpt, i, &t) == TRESTLE_OK && t.kind == TRESTLE_TENSOR_PLAIN &&
            trestle_dtype_size(t.dtype) > 0 && t.size < smallest) {
            smallest = t.size;
            pick = i;
        }
    }
    trestle_tensor_info t;
    if (pick == n || trestle_tensor_get_info(ckpt, pick, &t) != TRESTLE_OK)
        return 0;
    trestle_op op = { .name = t.name, .dest_kind = TRESTLE_DEST_ALLOCATE };
    trestle_plan *plan = NULL;
    trestle_restore_options ro;
    trestle_restore_options_init(&ro);
    ro.device = device;
    trestle_stats st;
    int ok = trestle_plan_create(ckpt, &op, 1, NULL, &plan, NULL) == TRESTLE_OK &&
             trestle_restore(plan, &ro, &st, NULL) == TRESTLE_OK;
    trestle_plan_free(plan);
    if (ok && seconds)
        *seconds = st.wall_seconds;
    return ok;
}

/* Every yardstick, after the restores so that they do not count in peak RSS. */
static int measure_yardsticks(const bench_args *a, bench_result *r)
{
    trestle_checkpoint *ckpt = NULL;
    if (cli_open(a->path, &ckpt) != CLI_EXIT_OK)
        return CLI_EXIT_FAIL;
    cli_machine_probe(trestle_shard_path(ckpt, 0), &r->machine);
    int remote = trestle_is_url(a->path);
    if (remote) {
        cli_bench_gets(ckpt, 3, &r->gets);
        r->plain.kind = r->direct.kind = CLI_REFERENCE;
        snprintf(r->plain.note, sizeof r->plain.note, "a URL: no local file to read");
        snprintf(r->direct.note, sizeof r->direct.note, "a URL: no local file to read");
    } else {
        cli_bench_plain_read(ckpt, a->cold, a->cold ? 3 : 5, &r->plain);
        cli_bench_direct_read(ckpt, a->cold, 3, &r->direct);
    }
    cli_bench_crc(&r->crc);
    cli_bench_memcpy(&r->mem);
    /* A device bench has already restored onto its device (the start-up
     * warm-up); a host bench probes device 0. */
    int dev = a->device >= 0 ? a->device : 0;
    if (!cli_interrupted() &&
        (a->device >= 0 ? r->device_startup >= 0 : library_has_device(ckpt, dev, NULL))) {
        cli_bench_h2d(dev, 1, &r->h2d_pinned);
        cli_bench_h2d(dev, 0, &r->h2d_pageable);
    } else {
        r->h2d_pinned.kind = r->h2d_pageable.kind = CLI_CEILING;
        snprintf(r->h2d_pinned.note, sizeof r->h2d_pinned.note, "no CUDA device");
        snprintf(r->h2d_pageable.note, sizeof r->h2d_pageable.note, "no CUDA device");
    }
    trestle_close(ckpt);
    if (cli_interrupted())
        return CLI_EXIT_FAIL;

    /* What each stage is held against. Cold, the faster of the two readers. */
    bench_against rd = { &r->plain, "plain read", "plain_read" };
    if (a->cold && r->direct.valid && (!r->plain.valid || r->direct.gbps > r->plain.gbps))
        rd = (bench_against){ &r->direct, "O_DIRECT read", "direct_read" };
    if (remote)
        rd = (bench_against){ &r->gets, "parallel GETs", "parallel_gets" };
    r->against[CLI_STAGE_READ] = rd;
    r->against[CLI_STAGE_TOTAL] = rd;
    r->against[CLI_STAGE_VERIFY] = (bench_against){ &r->crc, "CRC32C per core", "crc32c_per_core" };
    if (a->device < 0)
        r->against[CLI_STAGE_COPY] =
            (bench_against){ &r->mem, "memcpy per core", "memcpy_per_core" };
    else
        r->against[CLI_STAGE_COPY] =
            (bench_against){ &r->h2d_pinned, "pinned host-to-device", "h2d_pinned" };
    if (a->ndevices >= 2) {
        /* Each GPU has its own link: the copies to all of them can run at
         * once, so the ceiling is one link's times their number (assumed
         * alike; measured on the first). */
        r->h2d_all = r->h2d_pinned;
        r->h2d_all.gbps *= (double)a->ndevices;
        r->h2d_all.bytes *= a->ndevices;
        for (int k = 0; k < r->h2d_all.runs; k++)
            r->h2d_all.each[k] *= (double)a->ndevices;
        if (r->h2d_pinned.valid)
            snprintf(r->h2d_all.note, sizeof r->h2d_all.note, "device %d's pinned copy x %zu "
                     "devices, each with its own link", a->devices[0], a->ndevices);
        r->against[CLI_STAGE_COPY] = (bench_against){ &r->h2d_all,
            "pinned host-to-device x devices", "h2d_pinned_all_devices" };
    }
    return CLI_EXIT_OK;
}

/* ---- command line ---- */

/* Parse "SIZE[,SHARDS]" of --synthetic. */
static int parse_synthetic(const char *arg, bench_args *a)
{
    char buf[64];
    long long v = 4;
    snprintf(buf, sizeof buf, "%s", arg);
    char *comma = strchr(buf, ',');
    if (comma) {
        *comma = '\0';
        if (cli_parse_int(comma + 1, 1, 99999, &v) != 0)
            return -1;
    }
    if (cli_parse_size(buf, &a->synth_size) != 0 || a->synth_size == 0)
        return -1;
    a->synth_shards = (int)v;
    return 0;
}

static int parse_args(int argc, char **argv, bench_args *a)
{
    enum { OPT_SYNTH = 256, OPT_HOST, OPT_DEVICE, OPT_COLD, OPT_REPEAT, OPT_JSON, OPT_MAP,
           OPT_NO_NUMA, OPT_GROUP, OPT_SERVER };
    static const struct option longopts[] = {
        { "synthetic", required_argument, NULL, OPT_SYNTH },
        { "host", no_argument, NULL, OPT_HOST },
        { "map", no_argument, NULL, OPT_MAP },
        { "no-numa", no_argument, NULL, OPT_NO_NUMA },
        { "device", required_argument, NULL, OPT_DEVICE },
        { "cold", no_argument, NULL, OPT_COLD },
        { "repeat", required_argument, NULL, OPT_REPEAT },
        { "json", no_argument, NULL, OPT_JSON },
        { "group", required_argument, NULL, OPT_GROUP },
        CLI_REMOTE_LONGOPTS,
        { "server", required_argument, NULL, OPT_SERVER },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    long long v;
    int c;

    cli_getopt_reset();
    while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        switch (c) {
        case OPT_SYNTH:
            if (parse_synthetic(optarg, a) != 0)
                return cli_usage("bench", "--synthetic wants SIZE[,SHARDS] such as 2G,4, not "
                                 "'%s'", optarg);
            break;
        case OPT_HOST: a->device = -1, a->ndevices = 0; break;
        case OPT_MAP: a->map = 1; break;
        case OPT_NO_NUMA: a->no_numa = 1; break;
        case OPT_DEVICE: {
            int rc = cli_devices_parse("bench", optarg, a->devices, CLI_MAX_DEVICES,
                                       &a->ndevices);
            if (rc != CLI_EXIT_OK)
                return rc;
            a->device = a->devices[0];
            break;
        }
        case OPT_COLD: a->cold = 1; break;
        case OPT_REPEAT:
            if (cli_parse_int(optarg, 1, 1000, &v) != 0)
                return cli_usage("bench", "--repeat wants a number from 1 to 1000, not '%s'",
                                 optarg);
            a->repeat = (int)v;
            break;
        case OPT_JSON: a->json = 1; break;
        case OPT_GROUP: break; /* "none": cli_group_exec() took the others */
        case CLI_OPT_CONNECTIONS:
        case CLI_OPT_ATTEMPTS:
        case CLI_OPT_BACKOFF:
            if (cli_remote_option("bench", c, optarg) != CLI_EXIT_OK)
                return CLI_EXIT_USAGE;
            break;
        case OPT_SERVER: a->server = optarg; break;
        case 'h': fputs(bench_help, stdout); return -1;
        default: return cli_bad_option("bench", argv, c);
        }
    }
    if (a->map && a->device >= 0)
        return cli_usage("bench", "--map leaves tensors in host memory; it cannot go with "
                         "--device");
    if (a->server && (a->device >= 0 || a->map || a->cold))
        return cli_usage("bench", "--server benchmarks the host tier with a warm page cache: "
                         "not with --device, --map or --cold");
    if (argc - optind > 1)
        return cli_usage("bench", "expected one PATH, got %d arguments", argc - optind);
    if (argc - optind == 1 && a->synth_size)
        return cli_usage("bench", "PATH and --synthetic exclude each other");
    if (argc - optind == 0 && !a->synth_size)
        return cli_usage("bench", "missing PATH (or --synthetic SIZE,SHARDS)");
    a->path = argc - optind == 1 ? argv[optind] : NULL;
    return CLI_EXIT_OK;
}

int cli_bench_main(int argc, char **argv)
{
    bench_args a = { .device = -1, .repeat = 3 };
    bench_result *r = NULL;
    char dir[4096] = "", prefix[4200];
    int status;

    if ((status = cli_group_exec("bench", argc, argv)) >= 0)
        return status;
    status = parse_args(argc, argv, &a);
    if (status != CLI_EXIT_OK)
        return status < 0 ? CLI_EXIT_OK : status; /* -1: --help was printed */
    r = calloc(1, sizeof *r);
    if (!r) {
        cli_error("out of memory");
        return CLI_EXIT_FAIL;
    }
    if (a.synth_size) {
        status = cli_bench_synth_make(a.synth_size, a.synth_shards, dir, sizeof dir, prefix,
                                      sizeof prefix);
        if (status != CLI_EXIT_OK)
            goto done;
        a.path = prefix;
    }
    trestle_url_redact(a.path, r->path, sizeof r->path); /* printed: no URL secrets */
    snprintf(r->cache, sizeof r->cache, "warm (not dropped; pass --cold to drop it)");

    status = CLI_EXIT_FAIL;
    if (!a.cold && !trestle_is_url(a.path)) {
        /* Warm the cache so that the first repeat is like the others. */
        trestle_checkpoint *ckpt = NULL;
        cli_ceiling warm;
        if (cli_open(a.path, &ckpt) != CLI_EXIT_OK)
            goto done;
        cli_bench_plain_read(ckpt, 0, 1, &warm);
        trestle_close(ckpt);
    }
    if (a.server) {
        status = cli_bench_server(&a);
        goto done;
    }
    r->device_startup = -1;
    if (a.device >= 0) {
        /* The first CUDA use in a process creates the device's context
         * (hundreds of milliseconds on a large GPU). An inference server
         * has paid that long before it restores: pay it here, timed and
         * reported apart, so each repeat's time to first tensor is the
         * restore's own. A failure shows in the first repeat's error. */
        trestle_checkpoint *ckpt = NULL;
        if (cli_open(a.path, &ckpt) != CLI_EXIT_OK)
            goto done;
        library_has_device(ckpt, a.device, &r->device_startup);
        trestle_close(ckpt);
    }
    cli_signals_test_pause("before-restore");
    if (cli_interrupted() || run_repeats(&a, r) != CLI_EXIT_OK)
        goto done;
    cli_signals_test_pause("after-restore");
    if (cli_interrupted() || measure_yardsticks(&a, r) != CLI_EXIT_OK)
        goto done;
    status = CLI_EXIT_OK;
    if (a.json)
        status = bench_print_json(&a, r);
    else
        bench_print_text(&a, r);
done:
    cli_bench_synth_remove(dir);
    if (r)
        free(r->runs);
    free(r);
    return status;
}
