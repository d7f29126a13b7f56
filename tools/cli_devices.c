/*
 * cli_devices.c - `trestle restore --device 0,1,2,3`: one process, several
 * GPUs. Parses the device list (`all`: every GPU this process sees), builds
 * the op list that splits tensors by --shard GLOB:DIM rules (part d of
 * every matching tensor placed on device d, the rest replicated), and
 * prints one summary line per device and an aggregate one. The engine
 * reads and checks each stored byte once whatever the device count
 * (trestle_restore_options.devices).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

int cli_devices_parse(const char *cmd, const char *arg, int *out, size_t cap, size_t *n)
{
    *n = 0;
    if (strcmp(arg, "all") == 0) {
        int count = trestle_cuda_device_count();
        if (count <= 0) {
            cli_error("--device all: no usable CUDA device (or a build without CUDA); --host "
                      "restores to host memory");
            return CLI_EXIT_FAIL;
        }
        for (int d = 0; d < count && (size_t)d < cap; d++)
            out[(*n)++] = d;
        return CLI_EXIT_OK;
    }
    const char *p = arg;
    for (;;) {
        char num[16];
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        long long v;
        if (len == 0 || len >= sizeof num || *n == cap)
            return cli_usage(cmd, "--device wants N, a list N,M,... of distinct CUDA "
                             "devices (at most %zu) or 'all', not '%s'", cap, arg);
        memcpy(num, p, len);
        num[len] = '\0';
        if (cli_parse_int(num, 0, 1023, &v) != 0)
            return cli_usage(cmd, "--device wants N, a list N,M,... of distinct CUDA "
                             "devices (at most %zu) or 'all', not '%s'", cap, arg);
        for (size_t k = 0; k < *n; k++)
            if (out[k] == (int)v)
                return cli_usage(cmd, "--device lists device %lld twice in '%s'", v, arg);
        out[(*n)++] = (int)v;
        if (!comma)
            return CLI_EXIT_OK;
        p = comma + 1;
    }
}

int cli_devices_check_rule(const char *rule)
{
    trestle_error err;
    if (trestle_shard_rules_check(&rule, 1, &err) != TRESTLE_OK)
        return cli_usage("restore", "--shard wants GLOB:DIM (e.g. '*/attention/*/kernel:1'): "
                         "%s", err.message);
    return CLI_EXIT_OK;
}

int cli_shard_tally_init(cli_shard_tally *t, size_t nrules)
{
    t->nrules = nrules;
    t->matched = calloc(nrules + 1, sizeof *t->matched);
    t->taken = calloc(nrules + 1, sizeof *t->taken);
    if (t->matched && t->taken)
        return CLI_EXIT_OK;
    cli_shard_tally_done(t, NULL, 0);
    cli_error("out of memory");
    return CLI_EXIT_FAIL;
}

void cli_shard_tally_add(cli_shard_tally *t, const char *const *rules, const char *name)
{
    for (size_t i = 0; i < t->nrules; i++)
        if (trestle_shard_rule_match(rules + i, 1, name, NULL) == 0)
            t->matched[i]++;
    long which = trestle_shard_rule_match(rules, t->nrules, name, NULL);
    if (which >= 0)
        t->taken[which]++;
}

void cli_shard_tally_done(cli_shard_tally *t, const char *const *rules, int print)
{
    for (size_t i = 0; print && i < t->nrules; i++) {
        /* A malformed rule is refused by name where it is checked. */
        if (t->taken[i] > 0 || trestle_shard_rules_check(rules + i, 1, NULL) != TRESTLE_OK)
            continue;
        if (t->matched[i] == 0)
            fprintf(stderr, "note: --shard '%s' matches no tensor: it splits nothing\n",
                    rules[i]);
        else
            fprintf(stderr, "note: --shard '%s' splits nothing: an earlier --shard rule takes "
                    "%s %zu tensor%s it matches (the first matching rule wins)\n", rules[i],
                    t->matched[i] == 1 ? "the" : "all", t->matched[i],
                    t->matched[i] == 1 ? "" : "s");
    }
    free(t->matched);
    free(t->taken);
    t->matched = t->taken = NULL;
}

/* Keep s (malloc'd) in ops->strings; NULL when out of memory. */
static char *keep(cli_ops *ops, char *s)
{
    char **grown = s ? realloc(ops->strings, (ops->nstrings + 1) * sizeof *grown) : NULL;
    if (!grown) {
        free(s);
        return NULL;
    }
    ops->strings = grown;
    ops->strings[ops->nstrings++] = s;
    return s;
}

/* "d0 d1 ... " then "-" or "start,len" per dim: part r of w of `dim`, by
 * the planner's own rule (trestle_shard_part()). */
static char *part_spec(const trestle_tensor_info *t, int dim, size_t r, size_t w)
{
    size_t cap = (size_t)t->rank * 48 + 1, at = 0;
    char *s = malloc(cap);
    if (!s)
        return NULL;
    for (int i = 0; i < t->rank; i++)
        at += (size_t)snprintf(s + at, cap - at, "%" PRId64 " ", t->dims[i]);
    for (int i = 0; i < t->rank; i++) {
        int64_t start, len;
        trestle_shard_part(t->dims[i], (int)r, (int)w, &start, &len);
        if (i == dim)
            at += (size_t)snprintf(s + at, cap - at, "%" PRId64 ",%" PRId64, start, len);
        else
            at += (size_t)snprintf(s + at, cap - at, "-");
        if (i + 1 < t->rank)
            at += (size_t)snprintf(s + at, cap - at, ":");
    }
    return s;
}

int cli_devices_split_ops(const trestle_checkpoint *ckpt, const char *const *rules,
                          size_t nrules, size_t w, cli_ops *out, int **place)
{
    size_t n = trestle_tensor_count(ckpt);
    memset(out, 0, sizeof *out);
    *place = NULL;
    out->ops = calloc(n * w + 1, sizeof *out->ops);
    int *pl = calloc(n * w + 1, sizeof *pl);
    cli_shard_tally tally;
    if (!out->ops || !pl)
        goto nomem;
    if (cli_shard_tally_init(&tally, nrules) != CLI_EXIT_OK) {
        free(pl);
        cli_ops_free(out);
        return CLI_EXIT_FAIL;
    }
    for (size_t i = 0; i < n; i++) {
        trestle_tensor_info t;
        if (trestle_tensor_get_info(ckpt, i, &t) == TRESTLE_OK)
            cli_shard_tally_add(&tally, rules, t.name);
    }
    cli_shard_tally_done(&tally, rules, 1);
    for (size_t i = 0; i < n; i++) {
        trestle_tensor_info t;
        int dim = 0;
        if (trestle_tensor_get_info(ckpt, i, &t) != TRESTLE_OK)
            continue;
        long which = trestle_shard_rule_match(rules, nrules, t.name, &dim);
        const char *rule = which >= 0 ? rules[which] : NULL;
        if (!rule) {
            pl[out->n] = TRESTLE_EVERY_DEVICE;
            out->ops[out->n++] = (trestle_op){ .name = t.name,
                                               .dest_kind = TRESTLE_DEST_ALLOCATE };
            continue;
        }
        if (dim >= t.rank) {
            cli_error("tensor '%s' has rank %d: --shard '%s' names dimension %d, which it "
                      "lacks", t.name, t.rank, rule, dim);
            cli_ops_free(out);
            free(pl);
            return CLI_EXIT_FAIL;
        }
        for (size_t r = 0; r < w; r++) {
            int64_t start, len;
            trestle_shard_part(t.dims[dim], (int)r, (int)w, &start, &len);
            if (len == 0)
                continue; /* fewer elements than devices: this device gets none */
            char *spec = keep(out, part_spec(&t, dim, r, w));
            if (!spec)
                goto nomem;
            pl[out->n] = (int)r;
            out->ops[out->n++] = (trestle_op){ .name = t.name, .shape_and_slices = spec,
                                               .dest_kind = TRESTLE_DEST_ALLOCATE };
        }
    }
    *place = pl;
    return CLI_EXIT_OK;
nomem:
    cli_error("out of memory");
    cli_ops_free(out);
    free(pl);
    return CLI_EXIT_FAIL;
}

void cli_devices_summary(const trestle_plan *plan, const trestle_stats *st, const int *devices,
                         size_t ndev)
{
    char size[32], rate[32], read[32], copied[32], rd[32];
    for (size_t k = 0; k < ndev; k++) {
        uint64_t bytes = 0;
        size_t tensors = 0;
        for (size_t i = 0; i < trestle_plan_op_count(plan); i++) {
            trestle_plan_op_info op;
            void *at = NULL;
            if (trestle_plan_get_op(plan, i, &op) != TRESTLE_OK || op.skipped ||
                trestle_plan_op_replica(plan, i, k, &at) != TRESTLE_OK || !at)
                continue;
            bytes += op.bytes;
            tensors++;
        }
        cli_human_size(bytes, size, sizeof size);
        cli_rate(bytes, st->wall_seconds, rate, sizeof rate);
        printf("device %d: %zu tensor%s, %s in %.3f s: %s\n", devices[k], tensors,
               tensors == 1 ? "" : "s", size, st->wall_seconds, rate);
    }
    cli_human_size(st->bytes_read, read, sizeof read);
    cli_human_size(st->bytes_copied, copied, sizeof copied);
    cli_rate(st->bytes_copied, st->wall_seconds, rate, sizeof rate);
    cli_rate(st->bytes_read, st->read_seconds, rd, sizeof rd);
    printf("restored onto %zu devices: read %s once (%s), copied %s in %.3f s: %s aggregate\n",
           ndev, read, rd, copied, st->wall_seconds, rate);
}
