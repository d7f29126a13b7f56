/*
 * cli_scan.c - read every tensor of a checkpoint once, one at a time, for
 * `inspect --verify`, `inspect --stats` and `verify`.
 *
 * Unlike a restore, which stops at the first error, the scan keeps going
 * so that every bad tensor is named in one run. It uses the synchronous
 * trestle_tensor_read(), always verifying: statistics of corrupt bytes
 * would be a wrong answer. One buffer, grown to the largest tensor, is
 * reused throughout, so memory stays at one tensor whatever the size.
 * Tensors whose shard cannot be used at all are counted as unreadable and
 * reported once per shard, not once per tensor.
 */
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* A failure of the shard as a whole (missing, EACCES, a directory), not of
 * the tensor's bytes: the engine gives those no byte count. */
static int shard_failure(const trestle_error *err, int code)
{
    return code == TRESTLE_E_NOT_FOUND || (code == TRESTLE_E_IO && err->length < 0);
}

static void record_failure(cli_scan_result *r, const trestle_error *err, int code,
                           cli_scan_counts *counts)
{
    r->code = code ? code : TRESTLE_E_IO;
    r->message = strdup(err->message[0] ? err->message : trestle_strerror(r->code));
    if (shard_failure(err, r->code) && err->path[0]) {
        r->shard = strdup(err->path);
        r->unreadable = 1;
        counts->unreadable++;
        return;
    }
    counts->corrupt++;
    cli_fail(err);
}

/* Add tensor i's name to a short list of at most 5. */
static void add_name(const trestle_checkpoint *c, size_t i, char *names, size_t cap,
                     size_t *shown)
{
    trestle_tensor_info t;
    size_t len = strlen(names);
    if (*shown >= 5 || trestle_tensor_get_info(c, i, &t) != TRESTLE_OK)
        return;
    snprintf(names + len, cap - len, "%s%s", *shown ? ", " : "", t.name);
    ++*shown;
}

/* Two lines per unusable shard: why (the engine's message for its first
 * tensor), and how many tensors, which, it holds. */
static void report_shards(const trestle_checkpoint *c, cli_scan_result *res, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char *path = res[i].shard, names[512] = "";
        size_t count = 1, shown = 0;
        if (!path)
            continue;
        res[i].shard = NULL;
        add_name(c, i, names, sizeof names, &shown);
        for (size_t j = i + 1; j < n; j++) {
            if (!res[j].shard || strcmp(res[j].shard, path) != 0)
                continue;
            add_name(c, j, names, sizeof names, &shown);
            count++;
            free(res[j].shard); /* reported now: kept out of later groups */
            res[j].shard = NULL;
        }
        cli_error("%s", res[i].message);
        cli_error("data shard %s holds %zu unreadable tensor%s: %s%s", path, count,
                  count == 1 ? "" : "s", names, count > shown ? ", ..." : "");
        free(path);
    }
}

cli_scan_result *cli_scan(const trestle_checkpoint *c, int stats, cli_scan_counts *counts)
{
    size_t n = trestle_tensor_count(c);
    cli_scan_result *res = calloc(n ? n : 1, sizeof *res);
    void *buf = NULL;
    size_t cap = 0;

    memset(counts, 0, sizeof *counts);
    if (!res)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        trestle_tensor_info t;
        trestle_error err;
        trestle_error_clear(&err);
        if (trestle_tensor_get_info(c, i, &t) != TRESTLE_OK)
            continue;
        uint64_t need = cli_read_size(&t);
        if (need > cap) {
            free(buf);
            cap = (size_t)need;
            buf = malloc(cap);
            if (!buf) {
                cap = 0;
                err.code = TRESTLE_E_NOMEM;
                snprintf(err.message, sizeof err.message,
                         "out of memory reading tensor '%s' (%llu bytes)", t.name,
                         (unsigned long long)need);
                record_failure(&res[i], &err, TRESTLE_E_NOMEM, counts);
                continue;
            }
        }
        int rc = trestle_tensor_read(c, i, buf, cap, 1, &err);
        if (rc != TRESTLE_OK) {
            record_failure(&res[i], &err, rc, counts);
            continue;
        }
        if (stats && t.kind != TRESTLE_TENSOR_OBJECT_GRAPH)
            cli_stats_compute(t.dtype, buf, (uint64_t)t.num_elements, &res[i].stats);
    }
    free(buf);
    report_shards(c, res, n);
    return res;
}

void cli_scan_free(cli_scan_result *r, size_t n)
{
    if (!r)
        return;
    for (size_t i = 0; i < n; i++) {
        free(r[i].message);
        free(r[i].shard);
    }
    free(r);
}
