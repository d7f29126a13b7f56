/*
 * cli_figures.c - a restore's figures as `trestle restore` and `trestle
 * bench` report them: what each stage really moved, in how long, spread
 * over repeats, as text and as the one JSON "stats" object both print.
 *
 * A stage's rate counts only the bytes that went through it. Bytes read
 * straight into their destination, or (host_map) mapped from the page
 * cache, count in trestle_stats.bytes_copied and bytes_read, but no copy
 * and no read call moved them (trestle_stats.bytes_placed, bytes_mapped):
 * dividing them by a near-zero busy time gave "copy 474.57 GiB/s". Here
 * they are set apart, and a stage that moved nothing says why instead of
 * giving a rate.
 *
 * Units, everywhere in the CLI: rates in GB/s (10^9 bytes per second, as
 * dd, fio and the bench's ceilings), sizes binary (KiB, MiB, GiB).
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char *const stage_names[CLI_STAGES] = { "read", "verify", "copy", "total" };

const char *cli_stage_name(int s)
{
    return s >= 0 && s < CLI_STAGES ? stage_names[s] : "?";
}

void cli_run_from_stats(const trestle_stats *st, uint64_t output_bytes, int device_copy,
                        int verify, cli_run *out)
{
    memset(out, 0, sizeof *out);
    out->raw = *st;
    out->verify = verify;
    out->device_copy = device_copy;
    cli_stage_run *s = out->stage;
    s[CLI_STAGE_READ].bytes = st->bytes_read - st->bytes_mapped;
    s[CLI_STAGE_READ].bypassed = st->bytes_mapped;
    s[CLI_STAGE_READ].seconds = st->read_seconds;
    s[CLI_STAGE_VERIFY].bytes = st->bytes_verified;
    s[CLI_STAGE_VERIFY].seconds = st->verify_seconds;
    s[CLI_STAGE_COPY].bytes = st->bytes_copied - st->bytes_placed;
    s[CLI_STAGE_COPY].bypassed = st->bytes_placed;
    /* A device copy is the wall time its DMA was in flight (the enqueue
     * time alone would make the rate absurd); a host copy is the
     * workers' memcpy busy time. */
    s[CLI_STAGE_COPY].seconds = device_copy ? st->device_copy_seconds : st->copy_seconds;
    s[CLI_STAGE_TOTAL].bytes = output_bytes;
    s[CLI_STAGE_TOTAL].seconds = st->wall_seconds;
}

double cli_stage_gbps(const cli_stage_run *r)
{
    return r->bytes > 0 && r->seconds > 0 ? (double)r->bytes / r->seconds / 1e9 : 0;
}

/* ---- spread ---- */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int cli_spread_of(const double *v, size_t n, cli_spread *out)
{
    memset(out, 0, sizeof *out);
    double *s = malloc((n ? n : 1) * sizeof *s);
    if (!s)
        return -1;
    memcpy(s, v, n * sizeof *s);
    qsort(s, n, sizeof *s, cmp_double);
    if (n) {
        out->min = s[0];
        out->max = s[n - 1];
        out->median = n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
    }
    free(s);
    return 0;
}

int cli_stage_summarize(const cli_run *runs, size_t n, int stage, cli_stage_sum *out)
{
    double *sec = calloc(n ? n : 1, sizeof *sec), *rate = calloc(n ? n : 1, sizeof *rate);
    size_t ran = 0;
    memset(out, 0, sizeof *out);
    if (!sec || !rate) {
        free(sec);
        free(rate);
        return -1;
    }
    for (size_t k = 0; k < n; k++) {
        const cli_stage_run *r = &runs[k].stage[stage];
        double g = cli_stage_gbps(r);
        out->bytes = r->bytes;
        out->bypassed = r->bypassed;
        if (g > 0) { /* a run where the stage moved nothing has no rate to spread */
            sec[ran] = r->seconds;
            rate[ran] = g;
            ran++;
        }
    }
    out->runs = ran;
    int rc = cli_spread_of(sec, ran, &out->seconds) | cli_spread_of(rate, ran, &out->gbps);
    free(sec);
    free(rate);
    return rc;
}

/* ---- text ---- */

/* Why a stage of `r` has no rate; "" when it has one. */
static void idle_reason(const cli_run *run, int stage, char *buf, size_t cap)
{
    const cli_stage_run *r = &run->stage[stage];
    char size[32];
    cli_human_size(r->bypassed, size, sizeof size);
    buf[0] = '\0';
    if (cli_stage_gbps(r) > 0)
        return;
    if (stage == CLI_STAGE_VERIFY && !run->verify)
        snprintf(buf, cap, "off");
    else if (stage == CLI_STAGE_READ && r->bypassed)
        snprintf(buf, cap, "none: all %s mapped from the page cache", size);
    else if (stage == CLI_STAGE_COPY && r->bypassed)
        snprintf(buf, cap, "none: all %s read straight into place", size);
    else
        snprintf(buf, cap, "none");
}

void cli_stage_text(const cli_run *run, int stage, char *buf, size_t cap)
{
    const cli_stage_run *r = &run->stage[stage];
    double g = cli_stage_gbps(r);
    char size[32];
    if (g <= 0) {
        idle_reason(run, stage, buf, cap);
        return;
    }
    cli_human_size(r->bypassed, size, sizeof size);
    if (r->bypassed && stage == CLI_STAGE_READ)
        snprintf(buf, cap, "%.2f GB/s, %s more mapped", g, size);
    else if (r->bypassed && stage == CLI_STAGE_COPY)
        snprintf(buf, cap, "%.2f GB/s, %s more read in place", g, size);
    else
        snprintf(buf, cap, "%.2f GB/s", g);
}

/* ---- JSON ---- */

static void json_spread(FILE *f, const char *key, const cli_spread *s, int valid,
                        const cli_run *runs, size_t n, int stage, int rates)
{
    fprintf(f, "\"%s\": {", key);
    if (valid)
        fprintf(f, "\"min\": %.6g, \"median\": %.6g, \"max\": %.6g", s->min, s->median, s->max);
    else
        fputs("\"min\": null, \"median\": null, \"max\": null", f);
    fputs(", \"each\": [", f);
    for (size_t k = 0; k < n; k++) {
        double v = rates ? cli_stage_gbps(&runs[k].stage[stage]) : runs[k].stage[stage].seconds;
        if (rates && v <= 0)
            fprintf(f, "%snull", k ? ", " : "");
        else
            fprintf(f, "%s%.6g", k ? ", " : "", v);
    }
    fputs("]}", f);
}

static const char *stage_timing(const cli_run *run, int stage)
{
    switch (stage) {
    case CLI_STAGE_READ: return "wall time with reads in flight";
    case CLI_STAGE_VERIFY: return "busy time summed over workers (per core)";
    case CLI_STAGE_COPY:
        return run->device_copy ? "wall time with a device copy in flight"
                                : "busy time summed over workers (per core)";
    default: return "wall time of the whole restore";
    }
}

int cli_json_stats(FILE *f, const cli_run *runs, size_t n, const char *indent)
{
    const cli_run *last = &runs[n - 1];
    const trestle_stats *st = &last->raw;
    fprintf(f, "{\n%s  \"repeats\": %zu,\n%s  \"tensors\": %zu,\n%s  \"bytes\": %" PRIu64 ",\n",
            indent, n, indent, st->tensors, indent, last->stage[CLI_STAGE_TOTAL].bytes);
    fprintf(f, "%s  \"reader\": \"%s\",\n%s  \"reader_note\": ", indent,
            cli_reader_name(st->reader), indent);
    cli_json_cstr(f, st->reader_note);
    fprintf(f, ",\n%s  \"direct_reads\": %s,\n%s  \"verify\": %s,\n%s  \"stages\": {\n", indent,
            st->direct_reads ? "true" : "false", indent, last->verify ? "true" : "false",
            indent);
    for (int s = 0; s < CLI_STAGES; s++) {
        cli_stage_sum sum;
        char why[160];
        if (cli_stage_summarize(runs, n, s, &sum) != 0)
            return -1;
        idle_reason(last, s, why, sizeof why);
        fprintf(f, "%s    \"%s\": {\"ran\": %s, \"bytes\": %" PRIu64, indent, stage_names[s],
                sum.runs ? "true" : "false", sum.bytes);
        if (s == CLI_STAGE_READ)
            fprintf(f, ", \"mapped_bytes\": %" PRIu64, sum.bypassed);
        if (s == CLI_STAGE_COPY)
            fprintf(f, ", \"in_place_bytes\": %" PRIu64, sum.bypassed);
        fprintf(f, ", \"timing\": \"%s\", ", stage_timing(last, s));
        json_spread(f, "seconds", &sum.seconds, sum.runs > 0, runs, n, s, 0);
        fputs(", ", f);
        json_spread(f, "gbps", &sum.gbps, sum.runs > 0, runs, n, s, 1);
        fputs(", \"note\": ", f);
        cli_json_cstr(f, why[0] ? why : NULL);
        fprintf(f, "}%s\n", s == CLI_STAGES - 1 ? "" : ",");
    }
    /* Time to the first ready tensor, per repeat (-1: none was ready). */
    double *first = calloc(n, sizeof *first);
    size_t nf = 0;
    cli_spread fs;
    if (!first)
        return -1;
    for (size_t k = 0; k < n; k++)
        if (runs[k].raw.first_ready_seconds >= 0)
            first[nf++] = runs[k].raw.first_ready_seconds;
    cli_spread_of(first, nf, &fs);
    fprintf(f, "%s  },\n%s  \"first_tensor_seconds\": ", indent, indent);
    if (nf)
        fprintf(f, "{\"min\": %.6g, \"median\": %.6g, \"max\": %.6g, \"each\": [", fs.min,
                fs.median, fs.max);
    else
        fputs("{\"min\": null, \"median\": null, \"max\": null, \"each\": [", f);
    for (size_t k = 0; k < n; k++) {
        double v = runs[k].raw.first_ready_seconds;
        if (v >= 0)
            fprintf(f, "%s%.6g", k ? ", " : "", v);
        else
            fprintf(f, "%snull", k ? ", " : "");
    }
    fputs("]}", f);
    cli_remote_json(f, st, indent);
    fprintf(f, "\n%s}", indent);
    free(first);
    return 0;
}
