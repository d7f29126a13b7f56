/*
 * test_remote_cli.c - the CLI and the signatures on remote checkpoints
 * served by a real nginx on 127.0.0.1 (remote_server.c): no credential is
 * ever printed, on success or failure, in text or --json; Ctrl-C stops a
 * slow remote restore at once; a slow server shows the progress bar on a
 * terminal; every S3 request is signed as botocore's S3SigV4Auth (Debian's
 * python3-botocore, an independent signer) signs it, byte for byte;
 * `trestle bench URL` reports the read against plain parallel GETs; and
 * verify checks whole objects where the store has their CRC32C.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "remote_server.h"
#include "testutil.h"


typedef struct served {
    char *root, *local;
    tu_nginx srv;
} served;

static void serve(served *s, const char *extra_fmt)
{
    char *extra = NULL;
    s->root = tu_mkdtemp();
    s->local = tu_remote_model(s->root, "bucket/m");
    if (extra_fmt)
        cr_assert(asprintf(&extra, extra_fmt, s->root) > 0);
    tu_nginx_start(&s->srv, s->root, false, extra);
    free(extra);
}

static void unserve(served *s)
{
    tu_nginx_stop(&s->srv);
    tu_rmtree(s->root);
    free(s->root);
    free(s->local);
}

/* ---- secrets ---- */

static const char *const secrets[] = {
    "wJalrXUtnFEMI-secret-access-key", "FwoGZXIvYXdzEXAMPLEsessiontoken", "ya29.google-oauth-token",
    "bearer-token-for-https", "pa55word", "sig0123456789abcdef", "AKIDTRESTLECLITEST",
    "gs-hmac-secret-never-shown",
};

static void assert_no_secret(const tu_cli_result *r, const char *what)
{
    for (size_t i = 0; i < sizeof secrets / sizeof secrets[0]; i++) {
        cr_assert_null(strstr(r->out, secrets[i]), "%s printed '%s' on stdout:\n%s", what,
                       secrets[i], r->out);
        cr_assert_null(strstr(r->err, secrets[i]), "%s printed '%s' on stderr:\n%s", what,
                       secrets[i], r->err);
    }
}

/* Data GETs (not HEADs) answer 503 under /down/, and 403 with an S3 error body that
 * echoes the key id under /deny/. */
static const char faults[] =
    "    location /down/ { alias %1$s/bucket/;\n      set $f \"\";\n"
    "      if ($uri ~ \"\\.data-\") { set $f 1; }\n"
    "      if ($request_method = HEAD) { set $f \"\"; }\n"
    "      if ($f) { return 503; }\n    }\n"
    "    location /deny/ { alias %1$s/bucket/;\n"
    "      if ($uri ~ \"\\.data-\") { return 403 '<Error><Code>SignatureDoesNotMatch</Code>"
    "<AWSAccessKeyId>AKIDTRESTLECLITEST</AWSAccessKeyId></Error>'; }\n    }\n";

Test(remote_cli, no_credential_is_ever_printed_in_text_json_or_errors)
{
    served s;
    serve(&s, faults);
    setenv("AWS_ENDPOINT_URL", s.srv.base, 1);
    setenv("AWS_ACCESS_KEY_ID", "AKIDTRESTLECLITEST", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI-secret-access-key", 1);
    setenv("AWS_SESSION_TOKEN", "FwoGZXIvYXdzEXAMPLEsessiontoken", 1);
    setenv("STORAGE_EMULATOR_HOST", s.srv.base, 1);
    setenv("GOOGLE_OAUTH_ACCESS_TOKEN", "ya29.google-oauth-token", 1);
    setenv("TRESTLE_HTTP_BEARER_TOKEN", "bearer-token-for-https", 1);
    char *presigned;
    cr_assert(asprintf(&presigned, "http://reader:pa55word@127.0.0.1:%d", s.srv.port) > 0);
    const char *q = "?X-Amz-Signature=sig0123456789abcdef&X-Amz-Expires=60";
    struct { const char *fmt; int rc; } runs[] = {
        { "restore s3://bucket/m/ckpt --all --json", 0 },
        { "restore s3://bucket/m/ckpt --all", 0 },
        { "verify gs://bucket/m/ckpt", 0 },
        { "inspect s3://bucket/absent/ckpt --json", 1 },
        { "restore 's3://deny/m/ckpt' --all --json --attempts 2 --backoff 1", 1 },
        { "restore '%s/down/m/ckpt%s' --all --attempts 2 --backoff 1", 1 },
        { "restore '%s/bucket/m/ckpt%s' --all --json", 0 },
        { "inspect '%s/bucket/absent%s'", 1 },
        { "bench '%s/bucket/m/ckpt%s' --repeat 1 --json", 0 },
    };
    for (size_t i = 0; i < sizeof runs / sizeof runs[0]; i++) {
        char args[1024];
        snprintf(args, sizeof args, runs[i].fmt, presigned, q);
        tu_cli_result r = tu_cli("%s", args);
        cr_assert_eq(r.rc, runs[i].rc, "trestle %s: %d\n%s%s", args, r.rc, r.out, r.err);
        assert_no_secret(&r, args);
        if (strstr(args, "pa55word"))
            cr_assert(strstr(r.out, "?<redacted>") || strstr(r.err, "?<redacted>"),
                      "trestle %s names the URL redacted:\n%s%s", args, r.out, r.err);
        tu_cli_free(&r);
    }
    /* GCS HMAC keys: the secret never shows, succeeding or refused. */
    unsetenv("GOOGLE_OAUTH_ACCESS_TOKEN");
    setenv("GS_ACCESS_KEY_ID", "GOOG1EHMACCLITEST", 1);
    setenv("GS_SECRET_ACCESS_KEY", "gs-hmac-secret-never-shown", 1);
    static const char *const hmac_runs[] = {
        "restore gs://bucket/m/ckpt --all --json",
        "restore gs://deny/m/ckpt --all --json --attempts 2 --backoff 1",
        "inspect gs://bucket/absent/ckpt",
    };
    for (size_t i = 0; i < sizeof hmac_runs / sizeof hmac_runs[0]; i++) {
        tu_cli_result h = tu_cli("%s", hmac_runs[i]);
        cr_assert_eq(h.rc, i == 0 ? 0 : 1, "trestle %s: %d\n%s%s", hmac_runs[i], h.rc, h.out,
                     h.err);
        assert_no_secret(&h, hmac_runs[i]);
        if (i == 1)
            cr_assert(strstr(h.err, "credentials used: GS_ACCESS_KEY_ID (HMAC, SigV4)"), "%s",
                      h.err);
        tu_cli_free(&h);
    }
    /* The failures say what failed, with the URL as the user may see it. */
    tu_cli_result r = tu_cli("restore '%s/down/m/ckpt%s' --attempts 2 --backoff 1", presigned, q);
    cr_assert(strstr(r.err, "': GET http://127.0.0.1:") && strstr(r.err, "/down/m/ckpt.data-"),
              "%s", r.err);
    cr_assert(strstr(r.err, "-of-00004?<redacted> bytes "), "%s", r.err);
    cr_assert(strstr(r.err, ": HTTP 503 Service Unavailable, after 2 attempts\n"), "%s", r.err);
    tu_cli_free(&r);
    free(presigned);
    unserve(&s);
}

/* ---- Ctrl-C and progress ---- */

/* nginx sends a second's worth at once, then limit_rate per second: 256 KiB
 * ranges take about 1.6 s each. */
static const char slow[] =
    "    location /slow/ {\n      alias %s/bucket/;\n      limit_rate 100k;\n    }\n";

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

Test(remote_cli, ctrl_c_stops_a_slow_remote_restore_at_once)
{
    served s;
    serve(&s, slow);
    char *url, *errpath;
    cr_assert(asprintf(&url, "%s/slow/m/ckpt", s.srv.base) > 0);
    cr_assert(asprintf(&errpath, "%s/stderr", s.root) > 0);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        int e = open(errpath, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int o = open("/dev/null", O_WRONLY);
        dup2(o, STDOUT_FILENO);
        dup2(e, STDERR_FILENO);
        signal(SIGINT, SIG_DFL);
        execl(TRESTLE_CLI_PATH, "trestle", "restore", url, "--all", "--chunk", "256K",
              (char *)NULL);
        _exit(127);
    }
    /* Wait until the restore is fetching (some ranges done), then interrupt. */
    double until = now() + 20;
    while (tu_nginx_count(&s.srv, "\" 206 ") < 2 && now() < until)
        usleep(10000);
    cr_assert_geq(tu_nginx_count(&s.srv, "\" 206 "), 2, "the restore never got going");
    double sent = now();
    kill(pid, SIGINT);
    int status;
    while (waitpid(pid, &status, WNOHANG) == 0) {
        if (now() - sent > 5) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            cr_assert_fail("still running 5 s after Ctrl-C");
        }
        usleep(5000);
    }
    double took = now() - sent;
    size_t len;
    char *err = (char *)tu_read_file(errpath, &len);
    cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGINT, "status %#x: %.*s", status,
              (int)len, err);
    cr_assert_lt(took, 0.5, "ended %.3f s after Ctrl-C", took);
    cr_assert(err && len >= 30 && memcmp(err, "trestle: interrupted (SIGINT)\n", 30) == 0,
              "%.*s", (int)len, err ? err : "");
    free(err);
    free(errpath);
    free(url);
    unserve(&s);
}

Test(remote_cli, a_slow_server_shows_the_progress_bar_on_a_terminal)
{
    served s;
    serve(&s, slow);
    char *out = NULL, *err = NULL, *cmd;
    /* script(1) gives the CLI a terminal, where it draws its bar. */
    cr_assert(asprintf(&cmd, "script -qfec \"'%s' restore '%s/slow/m/ckpt' --all --chunk 256K\" "
                             "/dev/null", TRESTLE_CLI_PATH, s.srv.base) > 0);
    int rc = tu_run(cmd, &out, &err);
    cr_assert_eq(rc, 0, "%s%s", out, err);
    /* Frames are redrawn with \r: one short of done, then the summary. */
    const char *frame = strstr(out, "%  ");
    cr_assert(frame, "no progress bar in:\n%s", out);
    int partial = 0;
    for (const char *p = out; (p = strstr(p, "%  ")) != NULL; p++)
        if (p >= out + 3 && strncmp(p - 3, "100", 3) != 0)
            partial++;
    cr_assert_gt(partial, 0, "the bar never showed a restore part way:\n%s", out);
    cr_assert(strstr(out, "restored "), "%s", out);
    cr_assert(strstr(out, "remote: "), "%s", out);
    free(cmd);
    free(out);
    free(err);
    unserve(&s);
}

/* ---- SigV4, checked by an independent signer ---- */

Test(remote_cli, s3_requests_are_signed_as_botocore_signs_them_byte_for_byte)
{
    tu_need_botocore();
    served s;
    serve(&s, NULL);
    setenv("AWS_ENDPOINT_URL", s.srv.base, 1);
    setenv("AWS_ACCESS_KEY_ID", "AKIDTRESTLESIGV4", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "sigv4/secret+key=with/odd+chars", 1);
    setenv("AWS_SESSION_TOKEN", "session-token-value", 1);
    setenv("AWS_REGION", "ap-southeast-2", 1);
    trestle_checkpoint *c;
    trestle_error err;
    cr_assert_eq(trestle_open("s3://bucket/m/ckpt", NULL, &c, &err), TRESTLE_OK, "%s",
                 err.message);
    trestle_plan *p = tu_plan(c, NULL, 0, NULL);
    trestle_restore_options ro;
    trestle_restore_options_init(&ro);
    ro.chunk_bytes = 1 << 20;
    cr_assert_eq(trestle_restore(p, &ro, NULL, &err), TRESTLE_OK, "%s", err.message);
    trestle_plan_free(p);
    trestle_close(c);
    tu_nginx_settle(&s.srv);
    size_t lines = tu_nginx_count(&s.srv, "\"AWS4-HMAC-SHA256 ");
    cr_assert_gt(lines, 10);
    char *out, *want;
    int rc = tu_sigv4_check(&s.srv, "AKIDTRESTLESIGV4", "sigv4/secret+key=with/odd+chars",
                            "session-token-value", "ap-southeast-2", &out);
    cr_assert(asprintf(&want, "%zu requests signed as botocore signs them\n", lines) > 0);
    cr_assert_eq(rc, 0, "%s", out);
    cr_assert_str_eq(out, want);
    free(out);
    /* The check can fail: with another secret, botocore signs otherwise. */
    rc = tu_sigv4_check(&s.srv, "AKIDTRESTLESIGV4", "other-secret", "session-token-value",
                        "ap-southeast-2", &out);
    cr_assert_eq(rc, 1, "%s", out);
    cr_assert(strstr(out, "botocore signs\n"), "%s", out);
    /* HEADs (x-amz-checksum-mode), the index GET and ranged GETs (If-Match) all signed. */
    cr_assert_gt(tu_nginx_count(&s.srv, "HEAD "), 0);
    cr_assert_gt(tu_nginx_count(&s.srv, "\"ENABLED\""), 0);
    free(want);
    free(out);
    unserve(&s);
}

/* ---- bench and verify ---- */

Test(remote_cli, bench_url_holds_the_read_against_parallel_gets_and_counts_bytes_fetched)
{
    served s;
    serve(&s, NULL);
    tu_cli_result r = tu_cli("bench '%s/bucket/m/ckpt' --repeat 2 --connections 4 --json",
                             s.srv.base);
    cr_assert_eq(r.rc, 0, "%s%s", r.out, r.err);
    cr_assert(strstr(r.out, "\"read\": {\"yardstick\": \"parallel_gets\", \"kind\": \"ceiling\""),
              "%s", r.out);
    cr_assert(strstr(r.out, "\"parallel_gets\": {\"kind\": \"ceiling\", \"gbps\": "), "%s", r.out);
    cr_assert(strstr(r.out, "\"note\": \"4 connections, "), "%s", r.out);
    cr_assert(strstr(r.out, "\"remote\": {\"requests\": "), "%s", r.out);
    cr_assert(strstr(r.out, "\"first_tensor_seconds\": {\"min\": "), "%s", r.out);
    cr_assert(strstr(r.out, "\"reader\": \"remote\""), "%s", r.out);
    tu_cli_free(&r);
    r = tu_cli("bench '%s/bucket/m/ckpt' --repeat 1", s.srv.base);
    cr_assert_eq(r.rc, 0, "%s%s", r.out, r.err);
    cr_assert(strstr(r.out, "of parallel GETs"), "%s", r.out);
    cr_assert(strstr(r.out, "fetched for "), "%s", r.out);
    cr_assert(strstr(r.out, "  parallel ranged GETs "), "%s", r.out);
    tu_cli_free(&r);
    unserve(&s);
}

/* ---- graphs in a bucket ---- */

/* `text` with every `from` replaced by `to` (malloc'd). */
static char *replace_all(const char *text, const char *from, const char *to)
{
    size_t fl = strlen(from), tl = strlen(to), n = 0;
    for (const char *p = text; (p = strstr(p, from)) != NULL; p += fl)
        n++;
    char *out = malloc(strlen(text) + n * (tl > fl ? tl - fl : 0) + 1), *o = out;
    for (const char *p = text;;) {
        const char *q = strstr(p, from);
        if (!q) {
            strcpy(o, p);
            break;
        }
        memcpy(o, p, (size_t)(q - p));
        o += q - p;
        memcpy(o, to, tl);
        o += tl;
        p = q + fl;
    }
    return out;
}

Test(remote_cli, ops_graph_reads_a_meta_and_a_saved_model_from_a_bucket)
{
    const char *sm = tu_fixture_present("tf-graphs/serving_saved_model_half_plus_two_cpu");
    const char *meta = tu_fixture_present("tf-graphs/deepchem_qm7_graphconv/model-699.meta");
    served s;
    serve(&s, NULL);
    char *cmd;
    cr_assert(asprintf(&cmd, "mkdir -p '%s/bucket/g/sm' && cp '%s/saved_model.pb' "
                             "'%s/bucket/g/sm/' && cp '%s' '%s/bucket/g/'", s.root, sm, s.root,
                       meta, s.root) > 0);
    cr_assert_eq(system(cmd), 0);
    free(cmd);
    setenv("AWS_ENDPOINT_URL", s.srv.base, 1);
    setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent", 1);
    setenv("AWS_CONFIG_FILE", "/nonexistent", 1);
    unsetenv("AWS_ACCESS_KEY_ID");
    struct { const char *local, *url; } cases[] = {
        { sm, "s3://bucket/g/sm" },
        { meta, "s3://bucket/g/model-699.meta" },
    };
    char local_dir[4096];
    for (size_t i = 0; i < 2; i++) {
        tu_cli_result l = tu_cli("ops --graph '%s'", cases[i].local);
        tu_cli_result r = tu_cli("ops --graph '%s'", cases[i].url);
        cr_assert_eq(l.rc, 0, "%s", l.err);
        cr_assert_eq(r.rc, 0, "%s", r.err);
        /* The same ops; the names are the URL's, with no local "absent" check. */
        snprintf(local_dir, sizeof local_dir, "%s", cases[i].local);
        if (i == 1)
            *strrchr(local_dir, '/') = '\0';
        char *mapped = replace_all(l.out, local_dir, i == 0 ? "s3://bucket/g/sm"
                                                            : "s3://bucket/g");
        char *absent = strstr(mapped, " (absent: ");
        if (absent) {
            const char *eol = strchr(absent, '\n'); /* overlapping: memmove, not strcpy */
            memmove(absent, eol, strlen(eol) + 1);
        }
        if (i == 0) {
            char *pb = replace_all(mapped, "s3://bucket/g/sm\n", "s3://bucket/g/sm/saved_model.pb\n");
            free(mapped);
            mapped = pb;
        }
        cr_assert_str_eq(r.out, mapped);
        free(mapped);
        tu_cli_free(&l);
        tu_cli_free(&r);
    }
    unserve(&s);
}

/* ---- every command on a URL ---- */

/* `trestle ARGS` run once with the local copy and once with its URL in place
 * of each %1$s (and the graph's, %2$s): the exit status `want_rc` both times, and the same
 * output once the local paths read as the URLs. */
static void same_as_local(int want_rc, const char *fmt, const char *local, const char *url,
                          const char *local_graph, const char *url_graph)
{
    char largs[2048], rargs[2048];
    snprintf(largs, sizeof largs, fmt, local, local_graph ? local_graph : "");
    snprintf(rargs, sizeof rargs, fmt, url, url_graph ? url_graph : "");
    tu_cli_result l = tu_cli("%s", largs), r = tu_cli("%s", rargs);
    cr_assert_eq(l.rc, want_rc, "trestle %s: %d\n%s%s", largs, l.rc, l.out, l.err);
    cr_assert_eq(r.rc, want_rc, "trestle %s: %d\n%s%s", rargs, r.rc, r.out, r.err);
    char *mapped = replace_all(l.out, local, url);
    if (local_graph) {
        char *g = replace_all(mapped, local_graph, url_graph);
        free(mapped);
        mapped = g;
    }
    cr_assert_str_eq(r.out, mapped, "trestle %s\nlocally: trestle %s\n%s", rargs, largs, r.err);
    free(mapped);
    tu_cli_free(&l);
    tu_cli_free(&r);
}

Test(remote_cli, every_command_prints_for_a_url_what_it_prints_for_the_local_copy)
{
    const char *meta = tu_fixture_present("tf-graphs/deepchem_qm7_graphconv/model-699.meta");
    const char *ckpt = tu_fixture_present("tf-real/deepchem_qm7_graphconv/model-699");
    served s;
    serve(&s, NULL);
    char *cmd, *url, *gurl, *curl_, *lgraph, *lckpt, *ops, *lst, *rst;
    /* The graph and its checkpoint copied beside each other into the bucket. */
    cr_assert(asprintf(&cmd, "mkdir -p '%1$s/bucket/g' && cp '%2$s' '%3$s.index' "
                             "'%3$s.data-00000-of-00001' '%1$s/bucket/g/'", s.root, meta,
                       ckpt) > 0);
    cr_assert_eq(system(cmd), 0);
    free(cmd);
    cr_assert(asprintf(&lgraph, "%s/bucket/g/model-699.meta", s.root) > 0);
    cr_assert(asprintf(&lckpt, "%s/bucket/g/model-699", s.root) > 0);
    cr_assert(asprintf(&url, "%s/bucket/m/ckpt", s.srv.base) > 0);
    cr_assert(asprintf(&gurl, "%s/bucket/g/model-699.meta", s.srv.base) > 0);
    cr_assert(asprintf(&curl_, "%s/bucket/g/model-699", s.srv.base) > 0);
    cr_assert(asprintf(&ops, "%s/ops.txt", s.root) > 0);
    cr_assert(asprintf(&lst, "%s/local.safetensors", s.root) > 0);
    cr_assert(asprintf(&rst, "%s/remote.safetensors", s.root) > 0);

    same_as_local(0, "inspect '%1$s'", s.local, url, NULL, NULL);
    same_as_local(0, "inspect '%1$s' --json", s.local, url, NULL, NULL);
    same_as_local(0, "inspect '%1$s' --stats --verify --json", s.local, url, NULL, NULL);
    same_as_local(0, "inspect '%1$s' -t vocab -t part/emb -t dt/bfloat16", s.local, url, NULL, NULL);
    same_as_local(0, "verify '%1$s'", s.local, url, NULL, NULL);
    same_as_local(0, "diff --values '%1$s' '%2$s'", s.local, url, s.local, s.local);
    same_as_local(1, "diff '%1$s' '%2$s'", s.local, url, lckpt, curl_);
    same_as_local(0, "ops '%1$s'", s.local, url, NULL, NULL);
    /* A graph and its checkpoint both in the bucket: the ops, the preflight. */
    same_as_local(0, "ops --graph '%2$s'", lckpt, curl_, lgraph, gurl);
    same_as_local(0, "check '%2$s' '%1$s'", lckpt, curl_, lgraph, gurl);
    same_as_local(0, "diff '%2$s' '%1$s'", lckpt, curl_, lgraph, gurl);

    /* restore --graph and --ops restore what the local copy restores. */
    tu_cli_result r = tu_cli("restore --graph '%s' '%s'", gurl, curl_);
    cr_assert_eq(r.rc, 0, "%s%s", r.out, r.err);
    cr_assert(tu_starts_with(r.out, "restored 291 tensors, "), "%s", r.out);
    tu_cli_free(&r);
    r = tu_cli("ops '%s'", url);
    cr_assert_eq(tu_write_file(ops, r.out, strlen(r.out)), 0);
    tu_cli_free(&r);
    same_as_local(0, "check '%2$s' '%1$s'", s.local, url, ops, ops);
    r = tu_cli("restore --ops '%s' '%s'", ops, url);
    cr_assert_eq(r.rc, 0, "%s%s", r.out, r.err);
    cr_assert(strstr(r.out, "remote: "), "%s", r.out);
    tu_cli_free(&r);

    /* convert writes the same file from either (a model safetensors can hold). */
    tu_cli_result l = tu_cli("convert '%s' '%s'", lckpt, lst);
    r = tu_cli("convert '%s' '%s'", curl_, rst);
    cr_assert_eq(l.rc, 0, "%s", l.err);
    cr_assert_eq(r.rc, 0, "%s", r.err);
    size_t ln, rn;
    uint8_t *lb = tu_read_file(lst, &ln), *rb = tu_read_file(rst, &rn);
    cr_assert(lb && rb && ln == rn && memcmp(lb, rb, ln) == 0, "the safetensors files differ");
    free(lb);
    free(rb);
    tu_cli_free(&l);
    tu_cli_free(&r);
    free(lgraph), free(lckpt), free(url), free(gurl), free(curl_), free(ops), free(lst), free(rst);
    unserve(&s);
}
