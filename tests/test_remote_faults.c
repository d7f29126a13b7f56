/*
 * test_remote_faults.c - faults object stores are known for, injected by
 * the locations of a real nginx on 127.0.0.1 (remote_server.c): 503 on
 * the first requests (a marker file that the test removes once the log
 * shows them), 503 for good, 403 with an S3 error body, a slow body
 * (limit_rate), an object replaced between requests, a server gone.
 * Retries are counted exactly against the access log; failures give one
 * message with the URL, range, HTTP status and attempts; a slow restore
 * makes tensors ready as it goes and stops at once when cancelled.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <arpa/inet.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "remote_server.h"
#include "testutil.h"

/* GETs of data shards answer 503 while ROOT/fail.marker exists; HEADs and
 * the index never do. */
static const char flaky[] =
    "    location /bucket/ {\n"
    "      set $fail \"\";\n"
    "      if (-f $document_root/fail.marker) { set $fail \"1\"; }\n"
    "      if ($request_method != GET) { set $fail \"\"; }\n"
    "      if ($uri !~ \"\\.data-\") { set $fail \"\"; }\n"
    "      if ($fail) { return 503; }\n"
    "    }\n";

typedef struct served {
    char *root, *local, *url;
    tu_nginx srv;
} served;

static void serve(served *s, const char *extra, const char *path)
{
    s->root = tu_mkdtemp();
    s->local = tu_remote_model(s->root, "bucket/m");
    tu_nginx_start(&s->srv, s->root, false, extra);
    cr_assert(asprintf(&s->url, "%s%s", s->srv.base, path) > 0);
}

static void unserve(served *s)
{
    tu_nginx_stop(&s->srv);
    tu_rmtree(s->root);
    free(s->root);
    free(s->local);
    free(s->url);
}

static trestle_open_options opts(unsigned attempts, unsigned backoff_ms, unsigned connections)
{
    trestle_open_options o;
    trestle_open_options_init(&o);
    o.attempts = attempts;
    o.backoff_ms = backoff_ms;
    o.connections = connections;
    return o;
}

/* A checkpoint opened from s->url with `o`, and a plan of tensor `name`
 * into nowhere (NULL: every tensor, into engine memory) with restore
 * options of `chunk` bytes a read (0: the default) and `depth` reads in
 * flight (0: the default). */
typedef struct run {
    trestle_checkpoint *c;
    trestle_plan *p;
    trestle_restore_options ro;
} run;

static void run_start(run *r, const served *s, trestle_open_options o, const char *name,
                      uint64_t chunk, unsigned depth)
{
    trestle_error err;
    cr_assert_eq(trestle_open(s->url, &o, &r->c, &err), TRESTLE_OK, "%s", err.message);
    trestle_op op = { .name = name, .dest_kind = TRESTLE_DEST_DISCARD };
    r->p = tu_plan(r->c, name ? &op : NULL, name ? 1 : 0, NULL);
    trestle_restore_options_init(&r->ro);
    if (chunk)
        r->ro.chunk_bytes = chunk;
    if (depth)
        r->ro.queue_depth = depth;
}

static void run_end(run *r)
{
    trestle_plan_free(r->p);
    trestle_close(r->c);
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* ---- retried until it works ---- */

typedef struct watcher {
    served *s;
    const char *needle;  /* the failed requests' log lines */
    size_t after;       /* remove the marker once the log shows this many of them */
    atomic_int stop;
} watcher;

static void *remove_marker(void *arg)
{
    watcher *w = arg;
    char *marker;
    cr_assert(asprintf(&marker, "%s/fail.marker", w->s->root) > 0);
    while (!atomic_load(&w->stop) && tu_nginx_count(&w->s->srv, w->needle) < w->after)
        usleep(1000);
    unlink(marker);
    free(marker);
    return NULL;
}

/* Serve with `extra` failing data GETs while the marker exists, remove it
 * after three failures (log lines with `needle`), and restore: the bytes
 * of a local restore, every failure retried and counted. */
static void retried_until_it_works(const char *extra, const char *needle)
{
    served s;
    serve(&s, extra, "/bucket/m/ckpt");
    char *marker;
    cr_assert(asprintf(&marker, "%s/fail.marker", s.root) > 0);
    cr_assert_eq(tu_write_file(marker, "", 0), 0);
    watcher w = { .s = &s, .needle = needle, .after = 3 };
    atomic_init(&w.stop, 0);
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, remove_marker, &w), 0);
    trestle_open_options o = opts(8, 60, 4);
    trestle_stats st;
    tu_remote_compare(s.local, s.url, &o, 256 << 10, &st);
    atomic_store(&w.stop, 1);
    pthread_join(t, NULL);
    tu_nginx_settle(&s.srv);
    size_t failed = tu_nginx_count(&s.srv, needle);
    cr_assert_geq(failed, 3);
    cr_assert_eq(st.remote_retries, failed, "every failure was retried, and nothing else");
    cr_assert_eq(st.remote_requests, tu_nginx_count(&s.srv, "GET /bucket/m/ckpt.data-"));
    /* The bytes fetched are the data plus the error pages nginx sent. */
    cr_assert_eq(st.bytes_fetched, st.bytes_read + tu_nginx_bytes(&s.srv, needle));
    free(marker);
    unserve(&s);
}

Test(remote_faults, five_hundred_threes_then_success_restores_and_counts_each_retry)
{
    retried_until_it_works(flaky, "\" 503 ");
}

/* S3's throttling answer: 503 SlowDown is above; 429 (and its body) here. */
static const char throttled[] =
    "    location /bucket/ {\n"
    "      set $fail \"\";\n"
    "      if (-f $document_root/fail.marker) { set $fail \"1\"; }\n"
    "      if ($request_method != GET) { set $fail \"\"; }\n"
    "      if ($uri !~ \"\\.data-\") { set $fail \"\"; }\n"
    "      if ($fail) { return 429 '<Error><Code>SlowDown</Code>"
    "<Message>Please reduce your request rate.</Message></Error>'; }\n"
    "    }\n";

Test(remote_faults, too_many_requests_429_then_success_restores_and_counts_each_retry)
{
    retried_until_it_works(throttled, "\" 429 ");
}

Test(remote_faults, persistent_503_fails_after_the_bound_naming_url_range_status_attempts)
{
    served s;
    serve(&s, flaky, "/bucket/m/ckpt");
    char *marker;
    cr_assert(asprintf(&marker, "%s/fail.marker", s.root) > 0);
    cr_assert_eq(tu_write_file(marker, "", 0), 0);
    /* One read in flight: the first is the one that fails. */
    run r;
    run_start(&r, &s, opts(3, 10, 1), "big/kernel", 1 << 20, 1);
    size_t i;
    trestle_tensor_info t;
    cr_assert_eq(trestle_tensor_find(r.c, "big/kernel", &i, NULL), TRESTLE_OK);
    cr_assert_eq(trestle_tensor_get_info(r.c, i, &t), TRESTLE_OK);
    trestle_stats st;
    trestle_error err;
    double t0 = now_s();
    cr_assert_eq(trestle_restore(r.p, &r.ro, &st, &err), TRESTLE_E_IO);
    double took = now_s() - t0;
    char *want;
    cr_assert(asprintf(&want, "tensor 'big/kernel': GET %s.data-00001-of-00004 bytes %" PRIu64
                              "-%" PRIu64 ": HTTP 503 Service Unavailable, after 3 attempts",
                       s.url, t.offset, t.offset + (1 << 20) - 1) > 0);
    cr_assert_str_eq(err.message, want);
    cr_assert_eq(err.offset, (int64_t)t.offset);
    tu_nginx_settle(&s.srv);
    cr_assert_eq(tu_nginx_count(&s.srv, "\" 503 "), 3, "three attempts, no more");
    cr_assert_eq(st.remote_retries, 2);
    cr_assert_lt(took, 2.0, "3 attempts 10-40 ms apart took %.2f s", took);
    run_end(&r);
    free(want);
    free(marker);
    unserve(&s);
}

Test(remote_faults, forbidden_answer_is_not_retried_and_names_where_credentials_came_from)
{
    served s;
    serve(&s, "    location ~ \\.data- {\n"
              "      if ($request_method = GET) {\n"
              "        return 403 '<?xml version=\"1.0\"?><Error><Code>AccessDenied</Code>"
              "<Message>Access Denied</Message><AWSAccessKeyId>AKIDTRESTLETEST</AWSAccessKeyId>"
              "</Error>';\n      }\n    }\n", "");
    setenv("AWS_ENDPOINT_URL", s.srv.base, 1);
    setenv("AWS_ACCESS_KEY_ID", "AKIDTRESTLETEST", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "s3cr3t-never-printed", 1);
    unsetenv("AWS_REGION");
    unsetenv("AWS_DEFAULT_REGION");
    setenv("AWS_CONFIG_FILE", "/nonexistent", 1);
    free(s.url);
    s.url = strdup("s3://bucket/m/ckpt");
    run r;
    run_start(&r, &s, opts(3, 10, 1), "vocab", 0, 0);
    trestle_error err;
    cr_assert_eq(trestle_restore(r.p, NULL, NULL, &err), TRESTLE_E_IO);
    cr_assert(strstr(err.message, ": GET s3://bucket/m/ckpt.data-00003-of-00004 bytes "), "%s",
              err.message);
    cr_assert(strstr(err.message, ": HTTP 403 Forbidden (AccessDenied: Access Denied); "
                                  "credentials used: AWS_ACCESS_KEY_ID (SigV4, us-east-1)"),
              "%s", err.message);
    cr_assert_null(strstr(err.message, "AKIDTRESTLETEST"), "the key id stays out: %s",
                   err.message);
    tu_nginx_settle(&s.srv);
    cr_assert_eq(tu_nginx_count(&s.srv, "\" 403 "), 1, "a 403 is not retried");
    run_end(&r);
    unserve(&s);
}

Test(remote_faults, server_gone_after_open_fails_after_the_bound)
{
    served s;
    serve(&s, NULL, "/bucket/m/ckpt");
    run r;
    run_start(&r, &s, opts(3, 10, 2), NULL, 0, 0);
    trestle_error err;
    pid_t pid = s.srv.pid;
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
    s.srv.pid = 0;
    cr_assert_eq(trestle_restore(r.p, NULL, NULL, &err), TRESTLE_E_IO);
    cr_assert(strstr(err.message, ": Failed to connect to 127.0.0.1 port "), "%s", err.message);
    cr_assert(strstr(err.message, ", after 3 attempts"), "%s", err.message);
    cr_assert(strstr(err.message, s.url), "%s", err.message);
    run_end(&r);
    unserve(&s);
}

/* ---- slow, changing, cancelled ---- */

static const char slow[] =
    "    location /slow/ {\n      alias %s/bucket/;\n      limit_rate 1m;\n    }\n";

/* Serve with locations `fmt` made for the scratch root (its first
 * argument, a string) and `port` (its second, an int, where it has one);
 * s->url is the server's base and `path`. */
static void serve_with(served *s, const char *fmt, int port, const char *path)
{
    s->root = tu_mkdtemp();
    s->local = tu_remote_model(s->root, "bucket/m");
    char *extra;
    cr_assert(asprintf(&extra, fmt, s->root, port) > 0);
    tu_nginx_start(&s->srv, s->root, false, extra);
    free(extra);
    cr_assert(asprintf(&s->url, "%s%s", s->srv.base, path) > 0);
}

static void serve_slow(served *s)
{
    serve_with(s, slow, 0, "/slow/m/ckpt");
}

typedef struct progress {
    double t0;
    atomic_int ready;
    double first, last;   /* seconds after t0 of the first and last ready op */
    trestle_plan *plan;
    double cancel_after;  /* > 0: cancel at the first ready op after this */
    double cancelled_at;
} progress;

static int on_ready(void *user, size_t i, const trestle_plan_op_info *op)
{
    progress *pg = user;
    double t = now_s() - pg->t0;
    if (atomic_fetch_add(&pg->ready, 1) == 0)
        pg->first = t;
    pg->last = t;
    return 0;
}

static void *canceller(void *arg)
{
    progress *pg = arg;
    while (now_s() - pg->t0 < pg->cancel_after)
        usleep(1000);
    pg->cancelled_at = now_s();
    trestle_restore_cancel(pg->plan);
    return NULL;
}

Test(remote_faults, slow_server_makes_tensors_ready_as_it_goes_and_cancels_at_once)
{
    served s;
    serve_slow(&s);
    run r;
    run_start(&r, &s, opts(3, 10, 4), NULL, 256 << 10, 0);
    trestle_plan *p = r.p;
    trestle_restore_options ro = r.ro;
    trestle_error err;
    progress pg = { .t0 = now_s(), .plan = p };
    atomic_init(&pg.ready, 0);
    ro.on_ready = on_ready;
    ro.user = &pg;
    trestle_stats st;
    cr_assert_eq(trestle_restore(p, &ro, &st, &err), TRESTLE_OK, "%s", err.message);
    /* About 5 MiB at 1 MB/s per connection, 4 connections: over a second. */
    cr_assert_gt(st.wall_seconds, 1.0);
    cr_assert_lt(pg.first, st.wall_seconds / 4, "first tensor at %.2f s of %.2f", pg.first,
                 st.wall_seconds);
    cr_assert_eq(atomic_load(&pg.ready), (int)st.tensors);

    /* Again, cancelled half a second in: it returns at once, nothing left running. */
    progress again = { .t0 = now_s(), .plan = p, .cancel_after = 0.5 };
    atomic_init(&again.ready, 0);
    ro.user = &again;
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, canceller, &again), 0);
    cr_assert_eq(trestle_restore(p, &ro, &st, &err), TRESTLE_E_CANCELLED, "%s", err.message);
    double late = now_s() - again.cancelled_at;
    pthread_join(t, NULL);
    cr_assert_lt(late, 0.3, "the restore returned %.3f s after the cancel", late);
    run_end(&r);
    unserve(&s);
}

/* Replace shard 1 by other bytes of the same size (another ETag), once
 * the restore's first ranges are under way. */
static void *replace_shard_later(void *arg)
{
    usleep(300000);
    const served *s = arg;
    char *path, *tmp;
    cr_assert(asprintf(&path, "%s.data-00001-of-00004", s->local) > 0);
    cr_assert(asprintf(&tmp, "%s.new", path) > 0);
    size_t len;
    uint8_t *bytes = tu_read_file(path, &len);
    bytes[len / 2] ^= 1;
    cr_assert_eq(tu_write_file(tmp, bytes, len), 0);
    struct timespec times[2] = { { 1000000000, 0 }, { 1000000000, 0 } };
    cr_assert_eq(utimensat(AT_FDCWD, tmp, times, 0), 0);
    cr_assert_eq(rename(tmp, path), 0);
    free(bytes);
    free(tmp);
    free(path);
    return NULL;
}

Test(remote_faults, object_replaced_between_requests_fails_instead_of_mixing_versions)
{
    served s;
    serve_slow(&s);
    run r;
    run_start(&r, &s, opts(3, 10, 2), "big/kernel", 256 << 10, 2);
    trestle_error err;
    /* The first chunks arrive from one version; the file changes under the rest. */
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, replace_shard_later, &s), 0);
    cr_assert_eq(trestle_restore(r.p, &r.ro, NULL, &err), TRESTLE_E_IO, "%s", err.message);
    pthread_join(t, NULL);
    cr_assert(tu_starts_with(err.message, "tensor 'big/kernel': GET "), "%s", err.message);
    cr_assert(strstr(err.message, "/slow/m/ckpt.data-00001-of-00004 bytes "), "%s", err.message);
    cr_assert(strstr(err.message, ": HTTP 412 Precondition Failed: the object changed during "
                                  "the restore"), "%s", err.message);
    tu_nginx_settle(&s.srv);
    cr_assert_gt(tu_nginx_count(&s.srv, "\" 206 "), 0, "some ranges came from the old version");
    run_end(&r);
    unserve(&s);
}

/* GCS pins a version by generation: shard 1 reports generation ...1, or ...2
 * once ROOT/replaced.marker exists, and answers 412 to a GET whose
 * x-goog-if-generation-match is not the current one (as GCS does; its
 * bytes, and so nginx's ETag, are unchanged: only the generation tells). */
static const char generations[] =
    "    location = /bucket/m/ckpt.data-00001-of-00004 {\n"
    "      set $g 1700000000001;\n"
    "      if (-f $document_root/replaced.marker) { set $g 1700000000002; }\n"
    "      set $stale \"\";\n"
    "      if ($http_x_goog_if_generation_match != $g) { set $stale 1; }\n"
    "      if ($http_x_goog_if_generation_match = \"\") { set $stale \"\"; }\n"
    "      if ($stale) { return 412 '<Error><Code>ConditionNotMet</Code></Error>'; }\n"
    "      add_header x-goog-generation $g;\n"
    "    }\n";

Test(remote_faults, gs_generation_changed_after_the_open_fails_instead_of_mixing_versions)
{
    served s;
    serve(&s, generations, "");
    setenv("STORAGE_EMULATOR_HOST", s.srv.base, 1);
    setenv("GOOGLE_OAUTH_ACCESS_TOKEN", "ya29.test-token", 1);
    free(s.url);
    s.url = strdup("gs://bucket/m/ckpt");
    /* Unchanged, the pinned generation is asked for and matches. */
    tu_remote_compare(s.local, s.url, NULL, 0, NULL);
    run r;
    run_start(&r, &s, opts(3, 10, 1), "big/kernel", 0, 0);
    char *marker;
    cr_assert(asprintf(&marker, "%s/replaced.marker", s.root) > 0);
    cr_assert_eq(tu_write_file(marker, "", 0), 0);
    trestle_error err;
    cr_assert_eq(trestle_restore(r.p, NULL, NULL, &err), TRESTLE_E_IO, "%s", err.message);
    cr_assert(tu_starts_with(err.message, "tensor 'big/kernel': GET gs://bucket/m/ckpt."
                                          "data-00001-of-00004 bytes "), "%s", err.message);
    cr_assert(strstr(err.message, ": HTTP 412 Precondition Failed (ConditionNotMet): the object "
                                  "changed during the restore"), "%s", err.message);
    tu_nginx_settle(&s.srv);
    cr_assert_eq(tu_nginx_count(&s.srv, "\" 412 "), 1, "a changed object is not retried");
    run_end(&r);
    free(marker);
    unserve(&s);
}

/* Bodies cut short: /cut/ proxies to a slow copy of the files, and gives up
 * on it (closing the client's connection mid-body) after 300 ms without a
 * byte, as a load balancer in front of a stalled server does. */
static const char cut[] =
    "    location /cut/ {\n"
    "      rewrite ^/cut/(.*)$ /slowsrc/$1 break;\n"
    "      proxy_pass http://127.0.0.1:$server_port;\n"
    "      proxy_read_timeout 300ms;\n    }\n"
    "    location /slowsrc/ {\n      alias %s/bucket/;\n      limit_rate 50k;\n    }\n";

Test(remote_faults, short_bodies_are_retried_then_fail_after_the_bound)
{
    served s;
    serve_with(&s, cut, 0, "/cut/m/ckpt");
    run r;
    run_start(&r, &s, opts(3, 10, 1), "big/kernel", 256 << 10, 1);
    trestle_stats st;
    trestle_error err;
    cr_assert_eq(trestle_restore(r.p, &r.ro, &st, &err), TRESTLE_E_SHORT_READ, "%s",
                 err.message);
    cr_assert(tu_starts_with(err.message, "tensor 'big/kernel': GET "), "%s", err.message);
    cr_assert(strstr(err.message, "/cut/m/ckpt.data-00001-of-00004 bytes "), "%s", err.message);
    cr_assert(strstr(err.message, ": short body: "), "%s", err.message);
    cr_assert(strstr(err.message, " of 262144 bytes ("), "%s", err.message);
    cr_assert(strstr(err.message, "), after 3 attempts"), "%s", err.message);
    cr_assert_eq(st.remote_retries, 2);
    /* Each attempt is logged twice, by the rewritten URI: the client's
     * request and the proxy's to the slow copy. */
    tu_nginx_settle(&s.srv);
    cr_assert_eq(tu_nginx_count(&s.srv, "GET /slowsrc/m/ckpt.data-"), 2 * 3,
                 "three attempts, no more");
    cr_assert_gt(st.bytes_fetched, 0, "the cut bodies' bytes count as fetched");
    run_end(&r);
    unserve(&s);
}

/* A stalled store: /stall/ sends data GETs through nginx's proxy to a port
 * of the test's that accepts connections (the kernel's backlog) and never
 * answers, with no byte for longer than the client waits. */
static const char stall[] =
    "    location /stall/ {\n      alias %1$s/bucket/;\n      set $f \"\";\n"
    "      if ($uri ~ \"\\.data-\") { set $f 1; }\n"
    "      if ($request_method = HEAD) { set $f \"\"; }\n"
    "      if ($f) { rewrite ^ /blackhole last; }\n    }\n"
    "    location = /blackhole {\n      internal;\n"
    "      proxy_pass http://127.0.0.1:%2$d;\n      proxy_read_timeout 60s;\n    }\n";

Test(remote_faults, a_stalled_body_times_out_is_retried_then_fails_after_the_bound)
{
    int hole = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t alen = sizeof a;
    cr_assert(hole >= 0 && bind(hole, (struct sockaddr *)&a, sizeof a) == 0 &&
              listen(hole, 64) == 0 && getsockname(hole, (struct sockaddr *)&a, &alen) == 0);
    served s;
    serve_with(&s, stall, ntohs(a.sin_port), "/stall/m/ckpt");
    /* No byte for 1 s is a timeout (TRESTLE_REMOTE_STALL_SECONDS; 60 s by default). */
    setenv("TRESTLE_REMOTE_STALL_SECONDS", "1", 1);
    run r;
    run_start(&r, &s, opts(2, 10, 1), "vocab", 0, 0);
    trestle_stats st;
    trestle_error err;
    double t0 = now_s();
    cr_assert_eq(trestle_restore(r.p, &r.ro, &st, &err), TRESTLE_E_IO, "%s", err.message);
    double took = now_s() - t0;
    cr_assert(tu_starts_with(err.message, "tensor 'vocab': GET "), "%s", err.message);
    cr_assert(strstr(err.message, "/stall/m/ckpt.data-00003-of-00004 bytes "), "%s", err.message);
    cr_assert(strstr(err.message, ": Operation too slow. Less than 1 bytes/sec transferred the "
                                  "last 1 seconds, after 2 attempts"), "%s", err.message);
    cr_assert_eq(st.remote_retries, 1);
    cr_assert(took > 1.9 && took < 10, "two 1 s stalls took %.2f s", took);
    run_end(&r);
    unserve(&s);
    close(hole);
}

/* ---- the bytes in flight ---- */

/* Each 8 KiB range takes about a second at 4 KiB/s (nginx sends the first
 * second's worth at once), long enough to see which overlap. */
static const char paced[] =
    "    location /paced/ {\n      alias %s/bucket/;\n      limit_rate 4k;\n    }\n";

/* dt/complex128 ([7, 318], 34.8 KiB: five 8 KiB ranges) into nowhere, with
 * 16 connections and reads in flight and `staging` bytes of staging (0:
 * the default): the most ranged GETs that began within half a second, which
 * (each lasting about a second) is how many the restore had in flight. */
static size_t most_at_once(uint64_t staging)
{
    served s;
    serve_with(&s, paced, 0, "/paced/m/ckpt");
    run r;
    run_start(&r, &s, opts(3, 10, 16), "dt/complex128", 8 << 10, 16);
    if (staging)
        r.ro.staging_bytes = staging;
    trestle_stats st;
    trestle_error err;
    cr_assert_eq(trestle_restore(r.p, &r.ro, &st, &err), TRESTLE_OK, "%s", err.message);
    cr_assert_eq(st.remote_requests, 5, "%" PRIu64 " requests", st.remote_requests);
    run_end(&r);
    tu_nginx_settle(&s.srv);
    size_t most = tu_nginx_most_started_within(&s.srv, 206, 0.5);
    unserve(&s);
    return most;
}

Test(remote_faults, the_staging_pool_bounds_the_ranges_in_flight)
{
    /* Staging for two chunks: never more than two ranges at once, though
     * 16 connections and 16 reads in flight would allow all five. */
    size_t bounded = most_at_once(2 * (8 << 10));
    cr_assert_eq(bounded, 2, "%zu at once", bounded);
    /* With room for all, they all go at once: the pool was the bound. */
    size_t free_run = most_at_once(0);
    cr_assert_eq(free_run, 5, "%zu at once", free_run);
}
