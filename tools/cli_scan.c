/*
 * cli_scan.c - read every tensor of a checkpoint once, one at a time, for
 * `inspect --verify`, `inspect --stats` and `verify`.
 *
 * Unlike a restore, which stops at the first error, the scan keeps going
 * so that every bad tensor is named in one run. It uses the synchronous
 * trestle_tensor_read(); one buffer, grown to the largest tensor, is reused
 * throughout, so memory stays at one tensor whatever the checkpoint size.
 */
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static void record_failure(cli_scan_result *r, const trestle_error *err, int code)
{
    r->code = code ? code : TRESTLE_E_IO;
    r->message = strdup(err->message[0] ? err->message : trestle_strerror(r->code));
    cli_fail(err);
}

cli_scan_result *cli_scan(const trestle_checkpoint *c, int verify, int stats, size_t *bad)
{
    size_t n = trestle_tensor_count(c);
    cli_scan_result *res = calloc(n ? n : 1, sizeof *res);
    void *buf = NULL;
    size_t cap = 0;

    *bad = 0;
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
                record_failure(&res[i], &err, TRESTLE_E_NOMEM);
                (*bad)++;
                continue;
            }
        }
        int rc = trestle_tensor_read(c, i, buf, cap, verify, &err);
        if (rc != TRESTLE_OK) {
            record_failure(&res[i], &err, rc);
            (*bad)++;
            continue;
        }
        if (stats && t.kind != TRESTLE_TENSOR_OBJECT_GRAPH)
            cli_stats_compute(t.dtype, buf, (uint64_t)t.num_elements, &res[i].stats);
    }
    free(buf);
    return res;
}

void cli_scan_free(cli_scan_result *r, size_t n)
{
    if (!r)
        return;
    for (size_t i = 0; i < n; i++)
        free(r[i].message);
    free(r);
}
