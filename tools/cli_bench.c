/*
 * cli_bench.c - `trestle bench`: restore a checkpoint K times and report
 * each stage (read, verify, copy) beside the machine's own ceilings,
 * measured in the same run (cli_bench_ceiling.c), as ratios.
 *
 * Each repeat is what a serving process does when it loads a model again:
 * trestle_restore of one plan of every tensor (made once, with the
 * checkpoint opened once) into fresh engine-allocated memory (host, or
 * --device N), which it then adopts and frees. The plan keeps its pinned
 * staging, streams and events from one restore to the next, as a server's
 * does: a plan per repeat would pin 256 MiB of staging in every repeat.
 * Figures come from trestle_stats; the best and the median repeat are
 * reported. --synthetic writes a temporary LLM-shaped
 * checkpoint with `trestle synth` first and removes it at exit.
 */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "cli.h"

static const char bench_help[] =
    "Usage: trestle bench (PATH | --synthetic SIZE[,SHARDS]) [OPTIONS]\n"
    "\n"
    "Restore every tensor of a checkpoint K times and print, per stage, bytes,\n"
    "seconds and GB/s (read, verify, copy), time to first tensor and peak RSS,\n"
    "beside the machine's own ceilings measured in the same run: raw read of the\n"
    "same shard bytes (buffered, and O_DIRECT with a deep io_uring queue), CRC32C\n"
    "per core, memcpy per core, and pinned and pageable host-to-device copies.\n"
    "Each result is also given as a ratio to its ceiling. GB/s is 1e9 bytes/s.\n"
    "Read is bytes over the wall time with reads in flight; verify and copy are\n"
    "bytes over busy time summed over workers, i.e. per core.\n"
    "\n"
    "Options:\n"
    "      --synthetic SIZE[,SHARDS]  benchmark a temporary `trestle synth`\n"
    "                       checkpoint of SIZE (bf16) in SHARDS files (default 4),\n"
    "                       removed at exit\n"
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
    "      --cold           drop the page cache before each repeat and ceiling run\n"
    "                       (drop_caches when permitted, else fadvise; says which)\n"
    "      --repeat K       restores to run (default 3); best and median reported\n"
    "      --json           print one JSON object instead of the tables\n"
    "  -h, --help           show this help\n"
    "\n"
    "Examples:\n"
    "  trestle bench --synthetic 2G,4 --host\n"
    "  trestle bench /tmp/llm/ckpt --cold --repeat 5\n"
    "  trestle bench /nvme/ckpt --device 0 --json > bench.json\n"
    "  trestle bench --synthetic 8G,8 --device all   # one process onto every GPU\n"
    "  mpirun -np 4 trestle bench --synthetic 2G,8      # a group restore\n";

typedef struct bench_args {
    const char *path;
    uint64_t synth_size;    /* 0 unless --synthetic */
    int synth_shards;
    int device;             /* -1 host, else the (first) device */
    int devices[CLI_MAX_DEVICES]; /* --device N,M,...: the list (ndevices >= 2) */
    size_t ndevices;
    int cold, json;
    int map;                /* --map: restore option host_map */
    int no_numa;            /* --no-numa: restore option no_numa */
    int repeat;
} bench_args;

/* One stage over the repeats. */
typedef struct stage {
    const char *name;
    uint64_t bytes;         /* of the last repeat (the same every repeat) */
    double best, median;    /* seconds */
    const cli_ceiling *ceiling;
    const char *ceiling_name;
} stage;

/* Everything measured, so that text and JSON print the same numbers. */
typedef struct bench_result {
    char path[4200];
    size_t tensors;
    uint64_t output_bytes;
    int reader, direct_reads;
    char reader_note[128];
    char cache[320];        /* what cold mode did, or "warm" */
    stage st[4];            /* read, verify, copy, total */
    double first_best, first_median;
    double device_startup;  /* seconds of the warm-up device restore, or -1 */
    uint64_t peak_rss;      /* bytes */
    cli_ceiling raw_buffered, raw_direct, crc, mem, h2d_pinned, h2d_pageable;
    cli_ceiling h2d_all;    /* several devices: pinned h2d of the first, times their number */
} bench_result;

/* ---- helpers ---- */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Best (smallest) and median of v[0..n). */
static void best_median(double *v, int n, double *best, double *median)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    *best = v[0];
    *median = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static double gbps(uint64_t bytes, double seconds)
{
    return seconds > 0 && bytes ? (double)bytes / seconds / 1e9 : 0;
}

static const char *reader_name(int reader)
{
    return reader == TRESTLE_READER_IO_URING ? "io_uring"
           : reader == TRESTLE_READER_PREAD  ? "pread"
                                             : "auto";
}

/* Remove a flat directory of files (the synthetic checkpoint). */
static void remove_dir(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char path[4096];
    if (d) {
        while ((e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            unlink(path);
        }
        closedir(d);
    }
    rmdir(dir);
}

/*
 * Write the synthetic checkpoint through `trestle synth` (cli_synth.c), so
 * that its tensors are exactly what `trestle synth` writes. Its summary line
 * goes to stderr, keeping stdout for the results (and --json clean).
 */
static int write_synthetic(const bench_args *a, const char *prefix)
{
    char size[32], shards[16];
    snprintf(size, sizeof size, "%" PRIu64, a->synth_size);
    snprintf(shards, sizeof shards, "%d", a->synth_shards);
    char *argv[] = { "synth", (char *)prefix, "--size", size, "--shards", shards, "--dtype",
                     "bf16", NULL };
    fflush(stdout);
    int saved = dup(STDOUT_FILENO);
    if (saved >= 0)
        dup2(STDERR_FILENO, STDOUT_FILENO);
    int rc = cli_synth_main(8, argv);
    fflush(stdout);
    if (saved >= 0) {
        dup2(saved, STDOUT_FILENO);
        close(saved);
    }
    cli_getopt_reset();
    return rc;
}

/* ---- the restores ---- */

static int run_repeats(const bench_args *a, bench_result *r)
{
    double *sec[5];
    int status = CLI_EXIT_FAIL;
    trestle_checkpoint *ckpt = NULL;
    trestle_plan *plan = NULL;
    trestle_error err;
    for (int s = 0; s < 5; s++)
        sec[s] = calloc((size_t)a->repeat, sizeof(double));
    if (!sec[0] || !sec[1] || !sec[2] || !sec[3] || !sec[4]) {
        cli_error("out of memory");
        goto done;
    }
    trestle_error_clear(&err);
    if (cli_open(a->path, &ckpt) != CLI_EXIT_OK)
        goto done;
    if (trestle_plan_create(ckpt, NULL, 0, NULL, &plan, &err) != TRESTLE_OK) {
        cli_fail(&err);
        goto done;
    }
    for (int k = 0; k < a->repeat; k++) {
        trestle_restore_options ro;
        trestle_stats st;
        trestle_plan_stats ps;

        memset(&st, 0, sizeof st);
        if (a->cold)
            cli_bench_drop_cache(ckpt, r->cache, sizeof r->cache);
        trestle_restore_options_init(&ro);
        ro.device = a->device;
        if (a->ndevices >= 2) {
            ro.devices = a->devices;
            ro.num_devices = a->ndevices;
        }
        ro.host_map = a->map;
        ro.no_numa = a->no_numa;
        int rc = trestle_restore(plan, &ro, &st, &err);
        if (rc != TRESTLE_OK) {
            cli_fail(&err);
            if (rc == TRESTLE_E_NO_DEVICE && a->device >= 0)
                cli_error("--host benchmarks host memory instead");
            goto done;
        }
        trestle_plan_get_stats(plan, &ps);
        r->output_bytes = ps.output_bytes;
        r->tensors = st.tensors;
        r->reader = st.reader;
        r->direct_reads = st.direct_reads;
        snprintf(r->reader_note, sizeof r->reader_note, "%s", st.reader_note);
        r->st[0].bytes = st.bytes_read;
        r->st[1].bytes = st.bytes_verified;
        r->st[2].bytes = st.bytes_copied;
        r->st[3].bytes = ps.output_bytes;
        sec[0][k] = st.read_seconds;
        sec[1][k] = st.verify_seconds;
        /* A device's copy stage is the time its DMA was in flight (the
         * enqueue time alone would make the rate absurd); a host's is
         * the workers' memcpy time. */
        sec[2][k] = a->device >= 0 ? st.device_copy_seconds : st.copy_seconds;
        sec[3][k] = st.wall_seconds;
        sec[4][k] = st.first_ready_seconds;
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
    }
    for (int s = 0; s < 4; s++)
        best_median(sec[s], a->repeat, &r->st[s].best, &r->st[s].median);
    best_median(sec[4], a->repeat, &r->first_best, &r->first_median);
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) == 0)
        r->peak_rss = (uint64_t)ru.ru_maxrss * 1024;
    status = CLI_EXIT_OK;
done:
    trestle_plan_free(plan);
    trestle_close(ckpt);
    for (int s = 0; s < 5; s++)
        free(sec[s]);
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

/* Every ceiling, after the restores so that they do not count in peak RSS. */
static int measure_ceilings(const bench_args *a, bench_result *r)
{
    trestle_checkpoint *ckpt = NULL;
    if (cli_open(a->path, &ckpt) != CLI_EXIT_OK)
        return CLI_EXIT_FAIL;
    cli_bench_raw_read(ckpt, 0, a->cold, a->cold ? 2 : 3, &r->raw_buffered);
    cli_bench_raw_read(ckpt, 1, a->cold, 2, &r->raw_direct);
    cli_bench_crc(ckpt, &r->crc);
    cli_bench_memcpy(&r->mem);
    /* A device bench has already restored onto its device (the start-up
     * warm-up); a host bench probes device 0. */
    int dev = a->device >= 0 ? a->device : 0;
    if (a->device >= 0 ? r->device_startup >= 0 : library_has_device(ckpt, dev, NULL)) {
        cli_bench_h2d(dev, 1, &r->h2d_pinned);
        cli_bench_h2d(dev, 0, &r->h2d_pageable);
    } else {
        snprintf(r->h2d_pinned.note, sizeof r->h2d_pinned.note, "no CUDA device");
        snprintf(r->h2d_pageable.note, sizeof r->h2d_pageable.note, "no CUDA device");
    }
    trestle_close(ckpt);

    /* Which ceiling each stage is held against. */
    const cli_ceiling *rd = &r->raw_buffered;
    const char *rd_name = "raw buffered read";
    if (a->cold && r->raw_direct.valid && r->raw_direct.gbps > r->raw_buffered.gbps) {
        rd = &r->raw_direct;
        rd_name = "raw O_DIRECT read";
    }
    r->st[0].ceiling = rd;
    r->st[0].ceiling_name = rd_name;
    r->st[1].ceiling = &r->crc;
    r->st[1].ceiling_name = "CRC32C per core";
    r->st[2].ceiling = a->device >= 0 ? &r->h2d_pinned : &r->mem;
    r->st[2].ceiling_name = a->device >= 0 ? "pinned host-to-device" : "memcpy per core";
    if (a->ndevices >= 2) {
        /* Each GPU has its own link: the copies to all of them can run at
         * once, so the ceiling is one link's times their number (assumed
         * alike; measured on the first). */
        r->h2d_all = r->h2d_pinned;
        r->h2d_all.gbps *= (double)a->ndevices;
        r->h2d_all.bytes *= a->ndevices;
        if (r->h2d_pinned.valid)
            snprintf(r->h2d_all.note, sizeof r->h2d_all.note, "device %d's pinned copy x %zu "
                     "devices, each with its own link", a->devices[0], a->ndevices);
        r->st[2].ceiling = &r->h2d_all;
        r->st[2].ceiling_name = "pinned host-to-device x devices";
    }
    r->st[3].ceiling = rd;
    r->st[3].ceiling_name = rd_name;
    return CLI_EXIT_OK;
}

/* ---- output ---- */

static double stage_ratio(const stage *s)
{
    double g = gbps(s->bytes, s->best);
    return s->ceiling && s->ceiling->valid && g > 0 ? g / s->ceiling->gbps : 0;
}

/* 1 when the copy figure cannot be a real copy rate: large extents are
 * read straight into their destination and count as copied bytes with
 * (almost) no copy time, so the rate beats a memcpy of the same machine. */
static int copy_is_direct(const bench_result *r)
{
    return r->mem.valid && gbps(r->st[2].bytes, r->st[2].best) > 1.5 * r->mem.gbps &&
           r->st[2].ceiling == &r->mem;
}

static void print_text(const bench_args *a, const bench_result *r)
{
    static const char *const headers[] = { "STAGE", "BYTES", "BEST S", "BEST GB/S",
                                           "MEDIAN S", "MEDIAN GB/S", "VS CEILING" };
    static const int right[] = { 0, 1, 1, 1, 1, 1, 0 };
    char size[32], rss[32];

    cli_human_size(r->output_bytes, size, sizeof size);
    printf("trestle bench: %s\n", r->path);
    printf("%zu tensors, %s; %s, %d repeat%s, verify on, reader %s%s%s%s, O_DIRECT %s\n",
           r->tensors, size, a->device >= 0 ? "device" : "host memory", a->repeat,
           a->repeat == 1 ? "" : "s", reader_name(r->reader), r->reader_note[0] ? " (" : "",
           r->reader_note, r->reader_note[0] ? ")" : "", r->direct_reads ? "yes" : "no");
    if (a->ndevices >= 2) {
        printf("destination: CUDA devices");
        for (size_t k = 0; k < a->ndevices; k++)
            printf("%s%d", k ? "," : " ", a->devices[k]);
        printf(" (every tensor on each, read and checked once)\n");
    } else if (a->device >= 0) {
        printf("destination: CUDA device %d\n", a->device);
    }
    printf("cache: %s\n\n", r->cache);

    cli_table *tab = cli_table_new(7, headers, right);
    for (int s = 0; tab && s < 4; s++) {
        const stage *st = &r->st[s];
        char b[32], bs[32], bg[32], ms[32], mg[32], vs[96];
        cli_human_size(st->bytes, b, sizeof b);
        snprintf(bs, sizeof bs, "%.3f", st->best);
        snprintf(ms, sizeof ms, "%.3f", st->median);
        double g = gbps(st->bytes, st->best), gm = gbps(st->bytes, st->median);
        snprintf(bg, sizeof bg, "%.2f", g);
        snprintf(mg, sizeof mg, "%.2f", gm);
        if (g <= 0)
            snprintf(bg, sizeof bg, "-");
        if (gm <= 0)
            snprintf(mg, sizeof mg, "-");
        double ratio = stage_ratio(st);
        if (ratio > 0)
            snprintf(vs, sizeof vs, "%.2f x %s", ratio, st->ceiling_name);
        else
            snprintf(vs, sizeof vs, "n/a (%s: %s)", st->ceiling_name,
                     g > 0 ? "not measured" : "stage idle");
        const char *row[] = { st->name, b, bs, bg, ms, mg, vs };
        cli_table_add(tab, row);
    }
    if (tab)
        cli_table_print(tab, stdout);
    cli_table_free(tab);
    cli_human_size(r->peak_rss, rss, sizeof rss);
    printf("\nfirst tensor: %.4f s best, %.4f s median\n", r->first_best, r->first_median);
    if (r->device_startup >= 0)
        printf("device start-up: %.4f s (first CUDA use in this process, paid by a one-tensor\n"
               "      restore before the repeats, as a server has paid it before it restores)\n",
               r->device_startup);
    printf("peak RSS: %s\n", rss);
    if (copy_is_direct(r))
        printf("copy: most bytes were read straight into their destination, so the copy\n"
               "      stage's GB/s is bytes over a near-zero busy time, not a memcpy rate\n");

    printf("\nceilings (same run):\n");
    const struct { const char *label; const cli_ceiling *c; } rows[] = {
        { "raw read, buffered", &r->raw_buffered },
        { "raw read, O_DIRECT", &r->raw_direct },
        { "CRC32C per core", &r->crc },
        { "memcpy per core", &r->mem },
        { "host-to-device, pinned", &r->h2d_pinned },
        { "host-to-device, pageable", &r->h2d_pageable },
        { "host-to-device, all GPUs", &r->h2d_all },
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        if (rows[i].c == &r->h2d_all && a->ndevices < 2)
            continue;
        if (rows[i].c->valid)
            printf("  %-26s %7.2f GB/s  (%s)\n", rows[i].label, rows[i].c->gbps, rows[i].c->note);
        else
            printf("  %-26s n/a (%s)\n", rows[i].label, rows[i].c->note);
    }
}

static void json_num(FILE *f, double v, int valid)
{
    if (valid)
        fprintf(f, "%.6g", v);
    else
        fputs("null", f);
}

static void json_ceiling(FILE *f, const char *key, const cli_ceiling *c, int last)
{
    fprintf(f, "    \"%s\": {\"gbps\": ", key);
    json_num(f, c->gbps, c->valid);
    fprintf(f, ", \"bytes\": %" PRIu64 ", \"seconds\": ", c->bytes);
    json_num(f, c->seconds, c->valid);
    fputs(", \"note\": ", f);
    cli_json_cstr(f, c->note);
    fprintf(f, "}%s\n", last ? "" : ",");
}

static void print_json(const bench_args *a, const bench_result *r)
{
    FILE *f = stdout;
    fputs("{\n  \"path\": ", f);
    cli_json_cstr(f, r->path);
    fputs(",\n  \"synthetic\": ", f);
    if (a->synth_size)
        fprintf(f, "{\"size\": %" PRIu64 ", \"shards\": %d, \"dtype\": \"bfloat16\"}",
                a->synth_size, a->synth_shards);
    else
        fputs("null", f);
    fprintf(f, ",\n  \"destination\": \"%s\",\n  \"device\": %d,\n  \"host_map\": %s,\n"
            "  \"cold\": %s,\n", a->device >= 0 ? "device" : "host", a->device,
            a->map ? "true" : "false", a->cold ? "true" : "false");
    fputs("  \"devices\": [", f);
    for (size_t k = 0; k < a->ndevices; k++)
        fprintf(f, "%s%d", k ? ", " : "", a->devices[k]);
    fputs("],\n  \"cache\": ", f);
    cli_json_cstr(f, r->cache);
    fprintf(f, ",\n  \"repeats\": %d,\n  \"tensors\": %zu,\n  \"bytes\": %" PRIu64 ",\n",
            a->repeat, r->tensors, r->output_bytes);
    fprintf(f, "  \"reader\": \"%s\",\n  \"reader_note\": ", reader_name(r->reader));
    cli_json_cstr(f, r->reader_note);
    fprintf(f, ",\n  \"direct_reads\": %s,\n  \"stages\": {\n", r->direct_reads ? "true" : "false");
    for (int s = 0; s < 4; s++) {
        const stage *st = &r->st[s];
        double g = gbps(st->bytes, st->best), gm = gbps(st->bytes, st->median);
        double ratio = stage_ratio(st);
        fprintf(f, "    \"%s\": {\"bytes\": %" PRIu64 ", \"best_seconds\": %.6g, "
                "\"median_seconds\": %.6g, \"best_gbps\": ", st->name, st->bytes, st->best,
                st->median);
        json_num(f, g, g > 0);
        fputs(", \"median_gbps\": ", f);
        json_num(f, gm, gm > 0);
        fprintf(f, ", \"ceiling\": \"%s\", \"ratio\": ", st->ceiling_name);
        json_num(f, ratio, ratio > 0);
        if (s == 2)
            fprintf(f, ", \"mostly_read_in_place\": %s", copy_is_direct(r) ? "true" : "false");
        fprintf(f, "}%s\n", s == 3 ? "" : ",");
    }
    fputs("  },\n  \"first_tensor_seconds\": {\"best\": ", f);
    json_num(f, r->first_best, r->first_best >= 0);
    fputs(", \"median\": ", f);
    json_num(f, r->first_median, r->first_median >= 0);
    fputs("},\n  \"device_startup_seconds\": ", f);
    json_num(f, r->device_startup, r->device_startup >= 0);
    fprintf(f, ",\n  \"peak_rss_bytes\": %" PRIu64 ",\n  \"ceilings\": {\n", r->peak_rss);
    json_ceiling(f, "raw_read_buffered", &r->raw_buffered, 0);
    json_ceiling(f, "raw_read_direct", &r->raw_direct, 0);
    json_ceiling(f, "crc32c_per_core", &r->crc, 0);
    json_ceiling(f, "memcpy_per_core", &r->mem, 0);
    json_ceiling(f, "h2d_pinned", &r->h2d_pinned, 0);
    json_ceiling(f, "h2d_pageable", &r->h2d_pageable, a->ndevices < 2);
    if (a->ndevices >= 2)
        json_ceiling(f, "h2d_pinned_all_devices", &r->h2d_all, 1);
    fputs("  }\n}\n", f);
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
           OPT_NO_NUMA, OPT_GROUP };
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
        case 'h': fputs(bench_help, stdout); return -1;
        default: return cli_bad_option("bench", argv, c);
        }
    }
    if (a->map && a->device >= 0)
        return cli_usage("bench", "--map leaves tensors in host memory; it cannot go with "
                         "--device");
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
        const char *tmp = getenv("TMPDIR");
        snprintf(dir, sizeof dir, "%s/trestle-bench-XXXXXX", tmp && *tmp ? tmp : "/tmp");
        if (!mkdtemp(dir)) {
            cli_error("cannot create a directory for --synthetic under %s: %s",
                      tmp && *tmp ? tmp : "/tmp", strerror(errno));
            dir[0] = '\0';
            status = CLI_EXIT_FAIL;
            goto done;
        }
        snprintf(prefix, sizeof prefix, "%s/ckpt", dir);
        if ((status = write_synthetic(&a, prefix)) != CLI_EXIT_OK)
            goto done;
        a.path = prefix;
    }
    snprintf(r->path, sizeof r->path, "%s", a.path);
    snprintf(r->cache, sizeof r->cache, "warm (not dropped; pass --cold to drop it)");
    static const char *const names[] = { "read", "verify", "copy", "total" };
    for (int s = 0; s < 4; s++)
        r->st[s].name = names[s];

    if (!a.cold) {
        /* Warm the cache so that the first repeat is like the others. */
        trestle_checkpoint *ckpt = NULL;
        cli_ceiling warm;
        if ((status = cli_open(a.path, &ckpt)) != CLI_EXIT_OK)
            goto done;
        cli_bench_raw_read(ckpt, 0, 0, 1, &warm);
        trestle_close(ckpt);
    }
    r->device_startup = -1;
    if (a.device >= 0) {
        /* The first CUDA use in a process creates the device's context
         * (hundreds of milliseconds on a large GPU). An inference server
         * has paid that long before it restores: pay it here, timed and
         * reported apart, so each repeat's time to first tensor is the
         * restore's own. A failure shows in the first repeat's error. */
        trestle_checkpoint *ckpt = NULL;
        if ((status = cli_open(a.path, &ckpt)) != CLI_EXIT_OK)
            goto done;
        library_has_device(ckpt, a.device, &r->device_startup);
        trestle_close(ckpt);
    }
    if ((status = run_repeats(&a, r)) != CLI_EXIT_OK ||
        (status = measure_ceilings(&a, r)) != CLI_EXIT_OK)
        goto done;
    if (a.json)
        print_json(&a, r);
    else
        print_text(&a, r);
done:
    if (dir[0])
        remove_dir(dir);
    free(r);
    return status;
}
