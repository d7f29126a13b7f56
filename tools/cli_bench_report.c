/*
 * cli_bench_report.c - what `trestle bench` prints: the stage table with
 * min, median and max seconds, each stage against its yardstick, every
 * repeat, the machine, and the yardsticks themselves; or all of it, every
 * run's value included, as one JSON object whose "stats" member is the one
 * `trestle restore --json` prints (cli_figures.c).
 *
 * A ratio to a reference (plain read) may exceed 1 and is written "1.20 x
 * plain read"; a ratio to a ceiling is a fraction, "0.67 of CRC32C per
 * core", never above 1.00: a stage measured above its ceiling is capped
 * there and the report says by how much, since the ceiling's runs must
 * have been disturbed.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cli_bench_result.h"

double bench_ratio(const bench_result *r, int stage, int *capped, double *over)
{
    const cli_ceiling *y = r->against[stage].by;
    cli_stage_sum sum;
    *capped = 0;
    *over = 0;
    if (!y || !y->valid || y->gbps <= 0 ||
        cli_stage_summarize(r->runs, r->nruns, stage, &sum) != 0 || sum.runs == 0)
        return 0;
    double ratio = sum.gbps.median / y->gbps;
    if (y->kind == CLI_CEILING && ratio > 1) {
        /* Nothing beats a ceiling: its runs were disturbed (a shared machine). */
        *capped = 1;
        *over = ratio - 1;
        ratio = 1;
    }
    return ratio;
}

/* The AGAINST cell of `stage`, and a note line when it was capped. */
static void against_text(const bench_result *r, int stage, char *cell, size_t cap, char *note,
                         size_t ncap)
{
    const bench_against *ag = &r->against[stage];
    const cli_run *last = &r->runs[r->nruns - 1];
    int capped;
    double over, ratio = bench_ratio(r, stage, &capped, &over);
    note[0] = '\0';
    if (cli_stage_gbps(&last->stage[stage]) <= 0) {
        char why[128];
        cli_stage_text(last, stage, why, sizeof why);
        snprintf(cell, cap, "n/a: %s", why);
    } else if (ratio <= 0) {
        snprintf(cell, cap, "n/a (%s: %s)", ag->name, ag->by ? ag->by->note : "none");
    } else if (ag->by->kind == CLI_REFERENCE) {
        snprintf(cell, cap, "%.2f x %s", ratio, ag->name);
    } else {
        snprintf(cell, cap, "%.2f of %s%s", ratio, ag->name, capped ? " (capped)" : "");
        if (capped)
            snprintf(note, ncap, "note: %s measured %.0f%% above its ceiling, %s, which no "
                     "stage can beat: the ceiling's runs were disturbed (a shared machine?); "
                     "the ratio is capped at 1.00\n", cli_stage_name(stage), 100 * over,
                     ag->name);
    }
}

static void print_header(const bench_args *a, const bench_result *r)
{
    const trestle_stats *st = &r->runs[r->nruns - 1].raw;
    char size[32];
    cli_human_size(r->output_bytes, size, sizeof size);
    printf("trestle bench: %s\n", r->path);
    printf("%zu tensors, %s; %s, %zu repeat%s, verify on, reader %s%s%s%s, O_DIRECT %s\n",
           st->tensors, size, a->device >= 0 ? "device" : "host memory", r->nruns,
           r->nruns == 1 ? "" : "s", cli_reader_name(st->reader), st->reader_note[0] ? " (" : "",
           st->reader_note, st->reader_note[0] ? ")" : "", st->direct_reads ? "yes" : "no");
    if (a->ndevices >= 2) {
        printf("destination: CUDA devices");
        for (size_t k = 0; k < a->ndevices; k++)
            printf("%s%d", k ? "," : " ", a->devices[k]);
        printf(" (every tensor on each, read and checked once)\n");
    } else if (a->device >= 0) {
        printf("destination: CUDA device %d\n", a->device);
    }
    printf("cache: %s\n", r->cache);
    cli_machine_text(stdout, &r->machine);
    printf("\n");
}

void bench_print_text(const bench_args *a, const bench_result *r)
{
    static const char *const headers[] = { "STAGE", "BYTES", "MIN S", "MEDIAN S", "MAX S",
                                           "MEDIAN GB/S", "AGAINST" };
    static const int right[] = { 0, 1, 1, 1, 1, 1, 0 };
    char notes[CLI_STAGES][320];

    print_header(a, r);
    cli_table *tab = cli_table_new(7, headers, right);
    for (int s = 0; tab && s < CLI_STAGES; s++) {
        cli_stage_sum sum;
        char b[32], mn[32] = "-", md[32] = "-", mx[32] = "-", g[32] = "-", vs[512];
        cli_stage_summarize(r->runs, r->nruns, s, &sum);
        cli_human_size(sum.bytes, b, sizeof b);
        if (sum.runs) {
            snprintf(mn, sizeof mn, "%.3f", sum.seconds.min);
            snprintf(md, sizeof md, "%.3f", sum.seconds.median);
            snprintf(mx, sizeof mx, "%.3f", sum.seconds.max);
            snprintf(g, sizeof g, "%.2f", sum.gbps.median);
        }
        against_text(r, s, vs, sizeof vs, notes[s], sizeof notes[s]);
        const char *row[] = { cli_stage_name(s), b, mn, md, mx, g, vs };
        cli_table_add(tab, row);
    }
    if (tab)
        cli_table_print(tab, stdout);
    cli_table_free(tab);
    /* Bytes that bypassed a stage that did run are in none of its figures. */
    static const int bypassable[] = { CLI_STAGE_READ, CLI_STAGE_COPY };
    for (size_t i = 0; i < sizeof bypassable / sizeof bypassable[0]; i++) {
        int s = bypassable[i];
        cli_stage_sum sum;
        char size[32];
        if (cli_stage_summarize(r->runs, r->nruns, s, &sum) != 0 || !sum.runs || !sum.bypassed)
            continue;
        cli_human_size(sum.bypassed, size, sizeof size);
        printf("%s: %s more %s, in none of its figures\n", cli_stage_name(s), size,
               s == CLI_STAGE_READ ? "mapped from the page cache, not read"
                                   : "read straight into place, not copied");
    }

    printf("\neach repeat, total seconds:");
    for (size_t k = 0; k < r->nruns; k++)
        printf(" %.3f", r->runs[k].stage[CLI_STAGE_TOTAL].seconds);
    double *first = calloc(r->nruns, sizeof *first);
    cli_spread fs = { 0 };
    size_t nf = 0;
    for (size_t k = 0; first && k < r->nruns; k++)
        if (r->runs[k].raw.first_ready_seconds >= 0)
            first[nf++] = r->runs[k].raw.first_ready_seconds;
    cli_spread_of(first, nf, &fs);
    free(first);
    printf("\nfirst tensor: %.4f s min, %.4f s median, %.4f s max\n", fs.min, fs.median, fs.max);
    if (r->device_startup >= 0)
        printf("device start-up: %.4f s (first CUDA use in this process, paid by a one-tensor\n"
               "      restore before the repeats, as a server has paid it before it restores)\n",
               r->device_startup);
    char rss[32];
    cli_human_size(r->peak_rss, rss, sizeof rss);
    printf("peak RSS: %s\n", rss);
    cli_remote_summary(&r->runs[r->nruns - 1].raw); /* fetched vs needed, for a URL */
    for (int s = 0; s < CLI_STAGES; s++)
        fputs(notes[s], stdout);

    printf("\nyardsticks (same run; GB/s: the median run of a reader, the best of a ceiling):\n");
    const struct { const char *label; const cli_ceiling *c; } rows[] = {
        { "parallel ranged GETs", &r->gets },
        { "plain read", &r->plain },
        { "O_DIRECT read", &r->direct },
        { "CRC32C per core", &r->crc },
        { "memcpy per core", &r->mem },
        { "host-to-device, pinned", &r->h2d_pinned },
        { "host-to-device, pageable", &r->h2d_pageable },
        { "host-to-device, all GPUs", &r->h2d_all },
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        const cli_ceiling *c = rows[i].c;
        if ((c == &r->h2d_all && a->ndevices < 2) || (c == &r->gets && !trestle_is_url(a->path)))
            continue;
        if (!c->valid) {
            printf("  %-26s n/a (%s)\n", rows[i].label, c->note);
            continue;
        }
        printf("  %-26s %7.2f GB/s  %s (%s; runs:", rows[i].label, c->gbps,
               c->kind == CLI_CEILING ? "ceiling" : "reader", c->note);
        for (int k = 0; k < c->runs; k++)
            printf(" %.2f", c->each[k]);
        printf(")\n");
    }
}

/* ---- JSON ---- */

static void json_num(FILE *f, double v, int valid)
{
    if (valid)
        fprintf(f, "%.6g", v);
    else
        fputs("null", f);
}

static void json_yardstick(FILE *f, const char *key, const cli_ceiling *c, int last)
{
    fprintf(f, "    \"%s\": {\"kind\": \"%s\", \"gbps\": ", key,
            c->kind == CLI_CEILING ? "ceiling" : "reference");
    json_num(f, c->gbps, c->valid);
    fprintf(f, ", \"bytes\": %" PRIu64 ", \"seconds\": ", c->bytes);
    json_num(f, c->seconds, c->valid);
    fputs(", \"each_gbps\": [", f);
    for (int k = 0; k < c->runs; k++)
        fprintf(f, "%s%.6g", k ? ", " : "", c->each[k]);
    fputs("], \"note\": ", f);
    cli_json_cstr(f, c->note);
    fprintf(f, "}%s\n", last ? "" : ",");
}

static void json_against(FILE *f, const bench_result *r)
{
    fputs(",\n  \"against\": {\n", f);
    for (int s = 0; s < CLI_STAGES; s++) {
        const bench_against *ag = &r->against[s];
        int capped;
        double over, ratio = bench_ratio(r, s, &capped, &over);
        fprintf(f, "    \"%s\": {\"yardstick\": \"%s\", \"kind\": \"%s\", \"ratio\": ",
                cli_stage_name(s), ag->key,
                ag->by && ag->by->kind == CLI_CEILING ? "ceiling" : "reference");
        json_num(f, ratio, ratio > 0);
        fprintf(f, ", \"capped\": %s, \"above_ceiling_by\": ", capped ? "true" : "false");
        json_num(f, over, capped);
        fprintf(f, "}%s\n", s == CLI_STAGES - 1 ? "" : ",");
    }
    fputs("  }", f);
}

int bench_print_json(const bench_args *a, const bench_result *r)
{
    FILE *f = stdout;
    fputs("{\n  \"command\": \"bench\",\n  \"path\": ", f);
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
    fputs(",\n", f);
    cli_machine_json(f, &r->machine, "  ");
    fputs(",\n  \"stats\": ", f);
    if (cli_json_stats(f, r->runs, r->nruns, "  ") != 0) {
        cli_error("out of memory");
        return CLI_EXIT_FAIL;
    }
    json_against(f, r);
    fputs(",\n  \"device_startup_seconds\": ", f);
    json_num(f, r->device_startup, r->device_startup >= 0);
    fprintf(f, ",\n  \"peak_rss_bytes\": %" PRIu64 ",\n  \"yardsticks\": {\n", r->peak_rss);
    if (trestle_is_url(a->path))
        json_yardstick(f, "parallel_gets", &r->gets, 0);
    json_yardstick(f, "plain_read", &r->plain, 0);
    json_yardstick(f, "direct_read", &r->direct, 0);
    json_yardstick(f, "crc32c_per_core", &r->crc, 0);
    json_yardstick(f, "memcpy_per_core", &r->mem, 0);
    json_yardstick(f, "h2d_pinned", &r->h2d_pinned, 0);
    json_yardstick(f, "h2d_pageable", &r->h2d_pageable, a->ndevices < 2);
    if (a->ndevices >= 2)
        json_yardstick(f, "h2d_pinned_all_devices", &r->h2d_all, 1);
    fputs("  }\n}\n", f);
    return CLI_EXIT_OK;
}
