/*
 * cli_restore_report.c - what `trestle restore` prints after a restore:
 * the summary line, the --list table, the --checksum lines, and the
 * --json object (the same "stats" object as `trestle bench`, from
 * cli_figures.c).
 *
 * Rates are GB/s (1e9 bytes per second), sizes binary (MiB, GiB). A stage
 * that moved nothing (every byte read in place, or mapped) says so
 * instead of giving a rate.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* Why a skipped op was skipped, as --list's KEY column says it. */
const char *cli_skip_reason(int skipped)
{
    return skipped == TRESTLE_SKIP_EXCLUDED          ? "excluded"
           : skipped == TRESTLE_SKIP_MISSING         ? "missing"
           : skipped == TRESTLE_SKIP_UNSUPPORTED     ? "variant: opaque to trestle"
           : skipped == TRESTLE_SKIP_NO_SAFETENSORS ? "string: safetensors has no strings"
                                                     : "skipped";
}

/* " (3 skipped: 1 excluded, 2 variant: opaque to trestle)" */
static void skip_summary(const trestle_plan *plan, size_t total, char *buf, size_t cap)
{
    size_t count[4] = { 0 }, len;
    for (size_t i = 0; i < trestle_plan_op_count(plan); i++) {
        trestle_plan_op_info op;
        if (trestle_plan_get_op(plan, i, &op) == TRESTLE_OK && op.skipped > 0 && op.skipped < 4)
            count[op.skipped]++;
    }
    const char *sep = ":";
    len = (size_t)snprintf(buf, cap, " (%zu skipped", total);
    for (int r = 1; r < 4 && len < cap; r++)
        if (count[r]) {
            len += (size_t)snprintf(buf + len, cap - len, "%s %zu %s", sep, count[r],
                                    cli_skip_reason(r));
            sep = ",";
        }
    if (len < cap)
        snprintf(buf + len, cap - len, ")");
}

void cli_restore_summary(const trestle_plan *plan, const cli_run *run)
{
    const trestle_stats *st = &run->raw;
    trestle_plan_stats ps;
    char total[32], all[32], rd[96], vf[96], cp[96], skipped[128] = "";
    trestle_plan_get_stats(plan, &ps);
    cli_human_size(ps.output_bytes, total, sizeof total);
    cli_rate(ps.output_bytes, st->wall_seconds, all, sizeof all);
    cli_stage_text(run, CLI_STAGE_READ, rd, sizeof rd);
    cli_stage_text(run, CLI_STAGE_VERIFY, vf, sizeof vf);
    cli_stage_text(run, CLI_STAGE_COPY, cp, sizeof cp);
    if (ps.skipped)
        skip_summary(plan, ps.skipped, skipped, sizeof skipped);
    printf("restored %zu tensor%s%s, %s in %.3f s: %s (read %s, verify %s, copy %s; reader %s%s%s%s, "
           "O_DIRECT %s)\n",
           st->tensors, st->tensors == 1 ? "" : "s", skipped, total, st->wall_seconds, all, rd,
           vf, cp, cli_reader_name(st->reader), st->reader_note[0] ? " (" : "", st->reader_note,
           st->reader_note[0] ? ")" : "", st->direct_reads ? "yes" : "no");
    cli_remote_summary(st);
    if (st->staging_note[0])
        printf("note: %s\n", st->staging_note);
    if (st->bytes_deferred > 0) { /* partial_reads: never call those bytes verified */
        char def[32];
        cli_human_size(st->bytes_deferred, def, sizeof def);
        printf("note: %s of tensor parts read but NOT verified: their CRC32C shares must be "
               "combined with the other parts' (trestle_crc_shares_check)\n", def);
    }
    if (st->numa_node >= 0)
        printf("numa: GPU on node %d; staging %s, %u worker%s pinned there\n", st->numa_node,
               st->numa_bound ? "bound there" : "not bound (the kernel refused mbind)",
               st->numa_pinned, st->numa_pinned == 1 ? "" : "s");
}

/* A converted dtype as --as spells it: numpy's float32/float16 rather than
 * TensorFlow's float/half. */
const char *cli_conversion_name(int dtype)
{
    return dtype == TRESTLE_DT_FLOAT ? "float32"
           : dtype == TRESTLE_DT_HALF ? "float16"
                                      : trestle_dtype_name(dtype);
}

static int plan_op(const void *src, size_t i, trestle_plan_op_info *out)
{
    return trestle_plan_get_op(src, i, out);
}

int cli_restore_list(const trestle_plan *plan)
{
    return cli_op_table(plan, trestle_plan_op_count(plan), plan_op);
}

int cli_op_table(const void *src, size_t n, cli_op_getter get)
{
    static const char *const headers[] = { "OP", "KEY", "DTYPE", "SHAPE", "SIZE" };
    static const int right[] = { 0, 0, 0, 0, 1 };
    cli_table *tab = cli_table_new(5, headers, right);
    if (!tab)
        return -1;
    for (size_t i = 0; i < n; i++) {
        trestle_plan_op_info op;
        char shape[256] = "-", size[32] = "-", conv[64];
        const char *key, *dtype = "-";
        if (get(src, i, &op) != TRESTLE_OK)
            continue;
        if (op.skipped) {
            snprintf(conv, sizeof conv, "(%s)", cli_skip_reason(op.skipped));
            key = conv;
        } else {
            /* Only renames say something: an unrenamed op leaves KEY blank. */
            key = strcmp(op.key, op.name) == 0 ? "" : op.key;
            dtype = trestle_dtype_name(op.dtype);
            if (op.out_dtype != op.dtype) {
                snprintf(conv, sizeof conv, "%s->%s", cli_conversion_name(op.dtype),
                         cli_conversion_name(op.out_dtype));
                dtype = conv;
            }
            cli_shape_format(op.rank, op.dims, shape, sizeof shape);
            cli_human_size(op.bytes, size, sizeof size);
        }
        const char *row[] = { op.name, key, dtype, shape, size };
        if (cli_table_add(tab, row) != 0) {
            cli_table_free(tab);
            return -1;
        }
    }
    cli_table_print(tab, stdout);
    cli_table_free(tab);
    return 0;
}

/* ---- --checksum ---- */

/*
 * Print each restored op's checksum and then the whole model's, as text
 * ("fnv1a64 HASH  NAME") or as the members of JSON's "checksums". Stops at
 * a signal. CLI_EXIT_OK, or CLI_EXIT_FAIL (reported) when a tensor cannot
 * be read back.
 */
static int print_checksums(FILE *f, const trestle_plan *plan, int json)
{
    uint64_t chain = CLI_FNV1A_BASIS, one;
    size_t n = 0;
    if (json)
        fputs(",\n  \"checksums\": {\"algorithm\": \"fnv1a64\", \"tensors\": [", f);
    for (size_t i = 0; i < trestle_plan_op_count(plan) && !cli_interrupted(); i++) {
        trestle_plan_op_info op;
        if (trestle_plan_get_op(plan, i, &op) != TRESTLE_OK || op.skipped)
            continue;
        if (cli_checksum_op(plan, i, &one, &chain) != 0) {
            cli_error("cannot read tensor '%s' back for its checksum", op.name);
            return CLI_EXIT_FAIL;
        }
        if (json) {
            fprintf(f, "%s\n    {\"name\": ", n ? "," : "");
            cli_json_cstr(f, op.name);
            fprintf(f, ", \"bytes\": %" PRIu64 ", \"fnv1a64\": \"%016" PRIx64 "\"}", op.bytes,
                    one);
        } else {
            fprintf(f, "fnv1a64 %016" PRIx64 "  %s\n", one, op.name);
        }
        n++;
    }
    if (json)
        fprintf(f, "\n  ], \"model\": \"%016" PRIx64 "\"}", chain);
    else
        fprintf(f, "fnv1a64 %016" PRIx64 "  (whole model: %zu tensor%s in op order)\n", chain, n,
                n == 1 ? "" : "s");
    return CLI_EXIT_OK;
}

int cli_restore_checksums(const trestle_plan *plan)
{
    return print_checksums(stdout, plan, 0);
}

/* ---- --json ---- */

int cli_restore_json(const char *path, const trestle_checkpoint *ckpt, const trestle_plan *plan,
                     const cli_run *run, const int *devices, size_t ndev, int checksum)
{
    FILE *f = stdout;
    const trestle_stats *st = &run->raw;
    size_t count[4] = { 0 };
    cli_machine m;
    for (size_t i = 0; i < trestle_plan_op_count(plan); i++) {
        trestle_plan_op_info op;
        if (trestle_plan_get_op(plan, i, &op) == TRESTLE_OK && op.skipped > 0 && op.skipped < 4)
            count[op.skipped]++;
    }
    cli_machine_probe(trestle_shard_path(ckpt, 0), &m);
    char shown[4200];
    trestle_url_redact(path, shown, sizeof shown); /* a presigned URL's query stays secret */
    fputs("{\n  \"command\": \"restore\",\n  \"path\": ", f);
    cli_json_cstr(f, shown);
    fputs(",\n", f);
    cli_machine_json(f, &m, "  ");
    fprintf(f, ",\n  \"devices\": [");
    for (size_t k = 0; k < ndev; k++)
        fprintf(f, "%s%d", k ? ", " : "", devices[k]);
    fprintf(f, "],\n  \"ops\": %zu,\n  \"skipped\": {\"excluded\": %zu, \"missing\": %zu, "
            "\"unsupported\": %zu},\n  \"stats\": ", trestle_plan_op_count(plan),
            count[TRESTLE_SKIP_EXCLUDED], count[TRESTLE_SKIP_MISSING],
            count[TRESTLE_SKIP_UNSUPPORTED]);
    if (cli_json_stats(f, run, 1, "  ") != 0) {
        cli_error("out of memory");
        return CLI_EXIT_FAIL;
    }
    fprintf(f, ",\n  \"deferred_bytes\": %" PRIu64 ",\n  \"staging_note\": ",
            st->bytes_deferred);
    cli_json_cstr(f, st->staging_note[0] ? st->staging_note : NULL);
    fprintf(f, ",\n  \"numa_node\": %d", st->numa_node);
    if (checksum && print_checksums(f, plan, 1) != CLI_EXIT_OK)
        return CLI_EXIT_FAIL;
    fputs("\n}\n", f);
    return CLI_EXIT_OK;
}
