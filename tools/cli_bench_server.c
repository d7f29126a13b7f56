/*
 * cli_bench_server.c - `trestle bench PATH --server S`: how long a serving
 * process waits for its weights when they are resident on a `trestle
 * serve` server, beside a fresh restore of the same checkpoint from the
 * page cache, measured in turn in one run.
 *
 * Each repeat is a process's start-up: open the checkpoint, then either
 * attach (plan, look up, check the manifest, map read-only: every tensor's
 * pointer ready) or restore (plan, read, CRC-check, copy into fresh
 * memory, which is then freed). The page cache is warm for both (the
 * checkpoint is read once first). A mapping's pages are faulted in by the
 * first read of each: that cost comes later, in whatever reads the
 * tensors, and is timed apart ("first touch"). When the checkpoint is not
 * resident, the bench preloads it first and evicts it at the end.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli_bench_result.h"
#include "trestle_serve.h"

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

typedef struct spread3 {
    double min, median, max;
} spread3;

static spread3 spread_of(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    spread3 s = { v[0], n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2, v[n - 1] };
    return s;
}

/* One start-up by attach: open, attach (resident required), timed; then
 * the first read of every page of every tensor, timed apart. */
static int one_attach(const bench_args *a, double *seconds, double *touch, uint64_t *sum)
{
    trestle_checkpoint *c = NULL;
    trestle_attachment *at = NULL;
    trestle_attach_options ao;
    trestle_error err;
    double t0 = now_s();
    if (trestle_open(a->path, NULL, &c, &err) != TRESTLE_OK)
        return cli_fail(&err);
    trestle_attach_options_init(&ao);
    ao.socket_path = cli_socket_arg(a->server);
    ao.require_resident = 1;
    int rc = trestle_attach(c, NULL, 0, NULL, &ao, &at, &err);
    *seconds = now_s() - t0;
    trestle_close(c);
    if (rc != TRESTLE_OK)
        return cli_fail(&err);
    long page = sysconf(_SC_PAGESIZE);
    uint64_t s = 0;
    t0 = now_s();
    for (size_t i = 0; i < trestle_attachment_op_count(at); i++) {
        trestle_plan_op_info op;
        trestle_attachment_get_op(at, i, &op);
        const volatile uint8_t *p = op.data;
        for (uint64_t k = 0; !op.skipped && k < op.bytes; k += (uint64_t)page)
            s += p[k];
    }
    *touch = now_s() - t0;
    *sum += s;
    trestle_attachment_free(at);
    return CLI_EXIT_OK;
}

/* One start-up by restore: open, plan, restore into fresh memory; freed. */
static int one_restore(const bench_args *a, double *seconds)
{
    trestle_checkpoint *c = NULL;
    trestle_plan *p = NULL;
    trestle_error err;
    double t0 = now_s();
    int status = CLI_EXIT_FAIL;
    if (trestle_open(a->path, NULL, &c, &err) != TRESTLE_OK ||
        trestle_plan_create(c, NULL, 0, NULL, &p, &err) != TRESTLE_OK ||
        trestle_restore(p, NULL, NULL, &err) != TRESTLE_OK) {
        cli_fail(&err);
        goto out;
    }
    *seconds = now_s() - t0;
    status = CLI_EXIT_OK;
out:
    trestle_plan_free(p);
    trestle_close(c);
    return status;
}

/* Resident already, or preloaded now (*preloaded: its seconds, else -1). */
static int make_resident(const bench_args *a, uint64_t *bytes, size_t *tensors, double *preloaded)
{
    trestle_checkpoint *c = NULL;
    trestle_attachment *at = NULL;
    trestle_attach_options ao;
    trestle_preload_options po;
    trestle_preload_info pi;
    trestle_attach_info ai;
    trestle_error err;
    *preloaded = -1;
    if (trestle_open(a->path, NULL, &c, &err) != TRESTLE_OK)
        return cli_fail(&err);
    trestle_attach_options_init(&ao);
    ao.socket_path = cli_socket_arg(a->server);
    ao.require_resident = 1;
    int rc = trestle_attach(c, NULL, 0, NULL, &ao, &at, &err);
    if (rc == TRESTLE_E_NOT_RESIDENT) {
        trestle_preload_options_init(&po);
        po.socket_path = ao.socket_path;
        rc = trestle_preload(c, NULL, 0, NULL, &po, &pi, &err);
        if (rc == TRESTLE_OK)
            *preloaded = pi.seconds;
        rc = rc == TRESTLE_OK ? trestle_attach(c, NULL, 0, NULL, &ao, &at, &err) : rc;
    }
    trestle_close(c);
    if (rc != TRESTLE_OK)
        return cli_fail(&err);
    trestle_attachment_get_info(at, &ai);
    *bytes = ai.bytes;
    *tensors = ai.tensors;
    trestle_attachment_free(at);
    return CLI_EXIT_OK;
}

int cli_bench_server(const bench_args *a)
{
    int n = a->repeat;
    double *att = calloc((size_t)n, sizeof *att), *touch = calloc((size_t)n, sizeof *touch);
    double *res = calloc((size_t)n, sizeof *res), preloaded = -1;
    uint64_t bytes = 0, sum = 0;
    size_t tensors = 0;
    int status = CLI_EXIT_FAIL;
    char size[32], socket[256];

    if (!att || !touch || !res) {
        cli_error("out of memory");
        goto out;
    }
    if (cli_socket_arg(a->server))
        snprintf(socket, sizeof socket, "%s", a->server);
    else
        trestle_server_default_socket(socket, sizeof socket, NULL);
    if (make_resident(a, &bytes, &tensors, &preloaded) != CLI_EXIT_OK)
        goto out;
    /* In turn, so that both see the same machine at the same moments. */
    for (int k = 0; k < n && !cli_interrupted(); k++)
        if (one_restore(a, &res[k]) != CLI_EXIT_OK || one_attach(a, &att[k], &touch[k], &sum) !=
                                                          CLI_EXIT_OK)
            goto out;
    if (cli_interrupted())
        goto out;
    spread3 sa = spread_of(att, n), st = spread_of(touch, n), sr = spread_of(res, n);
    double ratio = sr.median > 0 ? sa.median / sr.median : 0;
    cli_human_size(bytes, size, sizeof size);
    long page = sysconf(_SC_PAGESIZE);
    if (a->json) {
        printf("{\n  \"command\": \"bench\",\n  \"path\": ");
        cli_json_cstr(stdout, a->path);
        printf(",\n  \"server\": ");
        cli_json_cstr(stdout, socket);
        printf(",\n  \"bytes\": %" PRIu64 ",\n  \"tensors\": %zu,\n  \"repeats\": %d,\n"
               "  \"preload_seconds\": %.6f,\n"
               "  \"attach_seconds\": {\"min\": %.6f, \"median\": %.6f, \"max\": %.6f},\n"
               "  \"first_touch_seconds\": {\"min\": %.6f, \"median\": %.6f, \"max\": %.6f},\n"
               "  \"restore_seconds\": {\"min\": %.6f, \"median\": %.6f, \"max\": %.6f},\n"
               "  \"attach_vs_restore\": %.6f\n}\n",
               bytes, tensors, n, preloaded, sa.min, sa.median, sa.max, st.min, st.median,
               st.max, sr.min, sr.median, sr.max, ratio);
    } else {
        printf("bench %s (%s, %zu tensors) against the trestle server on %s, host tier, page "
               "cache warm, %d repeats in turn:\n", a->path, size, tensors, socket, n);
        if (preloaded >= 0)
            printf("  preload (it was not resident): %.3f s\n", preloaded);
        printf("  attach  (open, plan, look up, check, map read-only): median %.4f s (min "
               "%.4f, max %.4f)\n", sa.median, sa.min, sa.max);
        printf("  restore (open, plan, read, CRC-check, copy into fresh memory): median %.3f s "
               "(min %.3f, max %.3f)\n", sr.median, sr.min, sr.max);
        printf("  attach / restore: %.2f %%\n", ratio * 100);
        printf("  first read of every attached page (%ld-byte pages, paid by whatever reads "
               "the tensors first): median %.3f s\n", page, st.median);
    }
    status = CLI_EXIT_OK;
out:
    if (preloaded >= 0) {
        /* Leave the server as the bench found it. */
        trestle_resident_evict(cli_socket_arg(a->server), a->path, NULL, NULL);
    }
    free(att);
    free(touch);
    free(res);
    return status;
}
