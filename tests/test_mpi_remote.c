/*
 * test_mpi_remote.c - read-once across MPI ranks for a checkpoint in an
 * object store: `mpirun -np 3 trestle-mpi restore URL` fetches each byte
 * of the shards once in all (every ranged GET nginx logged, summed and
 * checked for overlaps), the ranks' tensors equal a single process's, and
 * with --scope node each (simulated) node fetches its own copy; AUTO
 * takes an object store for shared storage, read once by the group.
 */
#include <criterion/criterion.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "remote_server.h"
#include "testmpi.h"
#include "testutil.h"

/* One ranged GET of a shard, from the access log. */
typedef struct span {
    int shard;
    uint64_t first, last;
} span;

static int span_cmp(const void *a, const void *b)
{
    const span *x = a, *y = b;
    if (x->shard != y->shard)
        return x->shard - y->shard;
    return x->first < y->first ? -1 : x->first > y->first;
}

/* Every 206 of a shard in the log; the number in *n. */
static span *ranges(const tu_nginx *srv, size_t *n)
{
    tu_nginx_settle(srv);
    char *log = tu_nginx_log(srv), *line = log, *save = NULL;
    span *out = calloc(4096, sizeof *out);
    *n = 0;
    for (line = strtok_r(log, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        int shard, status;
        unsigned long long first, last, body;
        const char *uri = strstr(line, "GET /bucket/m/ckpt.data-");
        if (!uri)
            continue;
        cr_assert(sscanf(uri, "GET /bucket/m/ckpt.data-%5d-of-%*5d \"%*[^\"]\" %d %llu "
                               "\"bytes=%llu-%llu\"", &shard, &status, &body, &first,
                         &last) == 5, "%s", line);
        cr_assert_eq(status, 206, "%s", line);
        cr_assert_eq(body, last - first + 1, "%s", line);
        cr_assert_lt(*n, 4096);
        out[(*n)++] = (span){ shard, first, last };
    }
    free(log);
    qsort(out, *n, sizeof *out, span_cmp);
    return out;
}

static uint64_t shard_bytes(const char *local)
{
    uint64_t total = 0;
    for (int i = 0; i < TU_REMOTE_SHARDS; i++) {
        char *path;
        size_t len;
        cr_assert(asprintf(&path, "%s.data-%05d-of-%05d", local, i, TU_REMOTE_SHARDS) > 0);
        free(tu_read_file(path, &len));
        total += len;
        free(path);
    }
    return total;
}

Test(mpi_remote, three_ranks_fetch_each_byte_once_in_all, .timeout = 300)
{
    tm_tool();
    char *root = tu_mkdtemp(), *local = tu_remote_model(root, "bucket/m");
    tu_nginx srv;
    tu_nginx_start(&srv, root, false, NULL);
    uint64_t total, maxx, want = tm_reference(local, NULL, 0, NULL, 0, &total, &maxx);
    char *args, *out, *err;
    cr_assert(asprintf(&args, "'%s/bucket/m/ckpt' --all --checksum",
                       srv.base) > 0);
    int rc = tm_mpirun(3, NULL, args, &out, &err);
    cr_assert_eq(rc, 0, "%s%s", out, err);
    tm_rank_line lines[3];
    tm_parse_ranks(out, 3, lines);
    uint64_t read = 0;
    for (int r = 0; r < 3; r++) {
        cr_assert_eq(lines[r].whole, want, "rank %d differs from one process", r);
        read += lines[r].read;
    }
    cr_assert_eq(read, total);

    /* The store saw every shard byte exactly once: ranges that cover the
     * shards, no two overlapping, summing to their size. */
    size_t n;
    span *s = ranges(&srv, &n);
    uint64_t fetched = 0;
    for (size_t i = 0; i < n; i++) {
        fetched += s[i].last - s[i].first + 1;
        if (i > 0 && s[i].shard == s[i - 1].shard)
            cr_assert_gt(s[i].first, s[i - 1].last, "shard %d: bytes %" PRIu64 "-%" PRIu64
                         " fetched twice", s[i].shard, s[i].first, s[i - 1].last);
    }
    cr_assert_eq(fetched, shard_bytes(local), "fetched %" PRIu64 " bytes in %zu GETs", fetched,
                 n);
    cr_assert_eq(fetched, tu_nginx_bytes(&srv, "GET /bucket/m/ckpt.data-"));
    /* Each rank opens the checkpoint: the index is fetched once per rank. */
    cr_assert_eq(tu_nginx_count(&srv, "GET /bucket/m/ckpt.index "), 3);
    cr_assert(strstr(out, "scope group: all 3 ranks are on one node"), "%s", out);
    free(s);
    free(out);
    free(err);
    free(args);

    /* --scope node on 3 simulated nodes: once per node, three times in all. */
    tu_nginx_stop(&srv);
    tu_nginx_start(&srv, root, false, NULL);
    cr_assert(asprintf(&args, "'%s/bucket/m/ckpt' --all --checksum --simulate-nodes 3 "
                              "--scope node", srv.base) > 0);
    rc = tm_mpirun(3, NULL, args, &out, &err);
    cr_assert_eq(rc, 0, "%s%s", out, err);
    tu_nginx_settle(&srv);
    cr_assert_eq(tu_nginx_bytes(&srv, "GET /bucket/m/ckpt.data-"), 3 * shard_bytes(local));
    free(out);
    free(err);
    free(args);

    /* AUTO on 3 nodes: an object store is shared storage, read once by the group. */
    tu_nginx_stop(&srv);
    tu_nginx_start(&srv, root, false, NULL);
    cr_assert(asprintf(&args, "'%s/bucket/m/ckpt' --all --checksum --simulate-nodes 3",
                       srv.base) > 0);
    rc = tm_mpirun(3, NULL, args, &out, &err);
    cr_assert_eq(rc, 0, "%s%s", out, err);
    cr_assert(strstr(out, "the checkpoint is on an object store (http), a shared file system: "
                          "each byte read once by the group"), "%s", out);
    tu_nginx_settle(&srv);
    cr_assert_eq(tu_nginx_bytes(&srv, "GET /bucket/m/ckpt.data-"), shard_bytes(local));
    free(out);
    free(err);
    free(args);
    tu_nginx_stop(&srv);
    tu_rmtree(root);
    free(root);
    free(local);
}

/* Data GETs under /down/ answer 503; everything else is served. */
static const char down[] =
    "    location /down/ { alias %s/bucket/;\n      set $f \"\";\n"
    "      if ($uri ~ \"\\.data-\") { set $f 1; }\n"
    "      if ($request_method = HEAD) { set $f \"\"; }\n"
    "      if ($f) { return 503; }\n    }\n";

static size_t occurrences(const char *text, const char *needle)
{
    size_t n = 0;
    for (const char *p = text; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    return n;
}

Test(mpi_remote, connections_attempts_and_backoff_reach_every_rank_restore_and_bench,
     .timeout = 300)
{
    tm_tool();
    char *root = tu_mkdtemp(), *local = tu_remote_model(root, "bucket/m"), *extra;
    cr_assert(asprintf(&extra, down, root) > 0);
    tu_nginx srv;
    tu_nginx_start(&srv, root, false, extra);
    char *args, *out, *err;

    /* --connections 1: each rank fetches its ranges over one connection. */
    cr_assert(asprintf(&args, "'%s/bucket/m/ckpt' --all --connections 1", srv.base) > 0);
    int rc = tm_mpirun(3, NULL, args, &out, &err);
    cr_assert_eq(rc, 0, "%s%s", out, err);
    tu_nginx_settle(&srv);
    cr_assert_geq(tu_nginx_count(&srv, "\" 206 "), TU_REMOTE_SHARDS);
    cr_assert_leq(tu_nginx_connections(&srv, "\" 206 "), 3, "%s", tu_nginx_log(&srv));
    free(args), free(out), free(err);

    /* --attempts 2 --backoff 1: a store that keeps failing fails the job after two tries. */
    cr_assert(asprintf(&args, "'%s/down/m/ckpt' --all --attempts 2 --backoff 1", srv.base) > 0);
    rc = tm_mpirun(3, NULL, args, &out, &err);
    cr_assert_neq(rc, 0, "%s%s", out, err);
    cr_assert(strstr(err, ": HTTP 503 Service Unavailable, after 2 attempts"), "%s%s", out, err);
    free(args), free(out), free(err);

    /* mpirun trestle bench takes them too, and says its file-reading storage
     * ceiling does not apply to a URL rather than give a rate of nothing. */
    cr_assert(asprintf(&args, "'%s/bucket/m/ckpt' --repeat 1 --connections 1", srv.base) > 0);
    rc = tm_mpirun_sub(tm_tool(), 2, NULL, "bench", args, &out, &err);
    cr_assert_eq(rc, 0, "%s%s", out, err);
    cr_assert(strstr(out, "  storage        n/a       n/a: a URL, whose objects this ceiling "
                          "cannot read() (`trestle bench URL` holds one process against "
                          "parallel ranged GETs)\n"), "%s", out);
    cr_assert_null(strstr(out, "0.00 GB/s"), "%s", out);
    free(args), free(out), free(err);

    /* A bad value is one usage error, from rank 0 alone. */
    cr_assert(asprintf(&args, "'%s/bucket/m/ckpt' --all --connections 0", srv.base) > 0);
    rc = tm_mpirun(3, NULL, args, &out, &err);
    cr_assert_neq(rc, 0, "%s%s", out, err);
    cr_assert_eq(occurrences(err, "trestle: restore: --connections wants a number from 1 to "
                                  "1024, not '0'\n"), 1, "%s", err);
    free(args), free(out), free(err);
    tu_nginx_stop(&srv);
    tu_rmtree(root);
    free(root);
    free(local);
    free(extra);
}
