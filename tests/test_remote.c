/*
 * test_remote.c - checkpoints restored straight from object stores, served
 * by a real nginx on 127.0.0.1 (remote_server.c): the same bytes as a
 * local restore over http://, https:// (HTTP/2, a self-signed certificate
 * trusted through CURL_CA_BUNDLE), s3:// (path style under
 * AWS_ENDPOINT_URL, SigV4-signed) and gs:// (XML API under
 * STORAGE_EMULATOR_HOST, with x-goog-hash CRC32Cs that verify whole
 * objects); the index in one GET; what is named when a byte is flipped, a
 * shard is missing or a store's CRC32C disagrees; how URLs resolve (state
 * file, SavedModel, listing, and the http(s) server that cannot list).
 */
#include <criterion/criterion.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "remote_server.h"
#include "testutil.h"

typedef struct served {
    char *root;     /* the document root (scratch) */
    char *local;    /* ROOT/bucket/m/ckpt */
    tu_nginx srv;
} served;

static void serve(served *s, bool tls, const char *extra)
{
    s->root = tu_mkdtemp();
    s->local = tu_remote_model(s->root, "bucket/m");
    tu_nginx_start(&s->srv, s->root, tls, extra);
}

static void unserve(served *s)
{
    tu_nginx_stop(&s->srv);
    tu_rmtree(s->root);
    free(s->root);
    free(s->local);
}

/* Options that keep a failing test short. */
static trestle_open_options quick(void)
{
    trestle_open_options o;
    trestle_open_options_init(&o);
    o.attempts = 3;
    o.backoff_ms = 10;
    return o;
}

/* ---- the same bytes as a local restore, over every scheme ---- */

Test(remote, http_restore_equals_local_restore_index_in_one_get)
{
    served s;
    serve(&s, false, NULL);
    char *url;
    cr_assert(asprintf(&url, "%s/bucket/m/ckpt", s.srv.base) > 0);
    trestle_stats st;
    trestle_open_options o;
    trestle_open_options_init(&o);
    o.connections = 4;
    tu_remote_compare(s.local, url, &o, 256 << 10, &st);
    /* The open is one GET of the index and a HEAD per shard, no more. */
    tu_nginx_settle(&s.srv);
    cr_assert_eq(tu_nginx_count(&s.srv, "GET /bucket/m/ckpt.index "), 1);
    cr_assert_eq(tu_nginx_count(&s.srv, "HEAD /bucket/m/ckpt.data-"), TU_REMOTE_SHARDS);
    cr_assert_eq(tu_nginx_count(&s.srv, " 206 "), st.remote_requests);
    cr_assert_eq(st.remote_retries, 0);
    cr_assert_eq(st.bytes_fetched, st.bytes_read, "nothing fetched twice");
    cr_assert_eq(st.objects_whole, TU_REMOTE_SHARDS);
    cr_assert_eq(st.objects_verified, 0, "nginx reports no CRC32C");
    /* Connections are reused: the ranges came over at most 4 of them. */
    cr_assert_gt(st.remote_requests, 8);
    cr_assert_leq(tu_nginx_connections(&s.srv, " 206 "), 4);
    free(url);
    unserve(&s);
}

Test(remote, https_over_http2_with_a_self_signed_ca_equals_local)
{
    served s;
    serve(&s, true, NULL);
    setenv("CURL_CA_BUNDLE", s.srv.ca_file, 1);
    char *url;
    cr_assert(asprintf(&url, "%s/bucket/m/ckpt.index", s.srv.tls_base) > 0);
    tu_remote_compare(s.local, url, NULL, 256 << 10, NULL);
    tu_nginx_settle(&s.srv);
    cr_assert_gt(tu_nginx_count(&s.srv, "HTTP/2.0"), 0, "HTTP/2 was offered and not used");
    cr_assert_eq(tu_nginx_count(&s.srv, "HTTP/1.1"), 0);

    /* Without the CA, the certificate is refused, not retried. */
    unsetenv("CURL_CA_BUNDLE");
    trestle_checkpoint *c;
    trestle_error err;
    trestle_open_options o = quick();
    cr_assert_eq(trestle_open(url, &o, &c, &err), TRESTLE_E_IO);
    cr_assert(tu_starts_with(err.message, "GET "), "%s", err.message);
    cr_assert(strstr(err.message, "/bucket/m/ckpt.index: SSL certificate problem"), "%s",
              err.message);
    cr_assert_null(strstr(err.message, "attempt"), "%s", err.message);
    free(url);
    unserve(&s);
}

Test(remote, s3_path_style_under_aws_endpoint_url_equals_local_and_is_signed)
{
    served s;
    serve(&s, false, NULL);
    setenv("AWS_ENDPOINT_URL", s.srv.base, 1);
    setenv("AWS_ACCESS_KEY_ID", "AKIDTRESTLETEST", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "not-a-real-secret", 1);
    setenv("AWS_REGION", "eu-west-3", 1);
    unsetenv("AWS_SESSION_TOKEN");
    unsetenv("AWS_PROFILE");
    tu_remote_compare(s.local, "s3://bucket/m/ckpt", NULL, 0, NULL);
    tu_nginx_settle(&s.srv);
    size_t lines = tu_nginx_count(&s.srv, "/bucket/m/ckpt");
    cr_assert_gt(lines, TU_REMOTE_SHARDS);
    cr_assert_eq(tu_nginx_count(&s.srv, "\"AWS4-HMAC-SHA256 Credential=AKIDTRESTLETEST/"), lines,
                 "every request is signed");
    cr_assert_eq(tu_nginx_count(&s.srv, "/eu-west-3/s3/aws4_request, SignedHeaders="), lines);
    cr_assert_eq(tu_nginx_count(&s.srv, "\"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991"
                                        "b7852b855\""), lines);
    unserve(&s);
}

/* One nginx location per shard of the model at `local`, holding what
 * `lines` writes for shard i (into out, cap bytes) given the shard's CRC32C
 * as x-goog-hash spells it ("crc32c=BASE64"); `arg` is passed through. */
typedef void shard_lines_fn(int i, char *hash, char *out, size_t cap, int arg);

static char *shard_locations(const char *local, shard_lines_fn *lines, int arg)
{
    char *out = strdup("");
    for (int i = 0; i < TU_REMOTE_SHARDS; i++) {
        char *path, hash[32], body[400], *next;
        cr_assert(asprintf(&path, "%s.data-%05d-of-%05d", local, i, TU_REMOTE_SHARDS) > 0);
        tu_goog_hash(path, hash, sizeof hash);
        lines(i, hash, body, sizeof body, arg);
        cr_assert(asprintf(&next, "%s    location = /bucket/m/ckpt.data-%05d-of-%05d {\n%s"
                                  "    }\n", out, i, TU_REMOTE_SHARDS, body) > 0);
        free(out);
        free(path);
        out = next;
    }
    return out;
}

/* GCS's headers: the shard's CRC32C (wrong for shard `bad` when >= 0) and a
 * generation. */
static void gcs_lines(int i, char *hash, char *out, size_t cap, int bad)
{
    if (i == bad)
        memcpy(hash + 7, "AAAAAA", 6); /* the CRC32C of nothing that is here */
    snprintf(out, cap, "      add_header x-goog-hash \"%s,md5=x\";\n"
                       "      add_header x-goog-generation 170000000000%d;\n", hash, i);
}

static char *gcs_locations(const char *local, int bad)
{
    return shard_locations(local, gcs_lines, bad);
}

/* The model's local prefix before the server starts: its locations need it. */
static void serve_gcs(served *s, int bad)
{
    s->root = tu_mkdtemp();
    s->local = tu_remote_model(s->root, "bucket/m");
    char *locs = gcs_locations(s->local, bad);
    tu_nginx_start(&s->srv, s->root, false, locs);
    free(locs);
    setenv("STORAGE_EMULATOR_HOST", s->srv.base, 1);
    setenv("GOOGLE_OAUTH_ACCESS_TOKEN", "ya29.test-token", 1);
}

Test(remote, gs_xml_api_equals_local_and_verifies_every_object_crc32c)
{
    served s;
    serve_gcs(&s, -1);
    trestle_stats st;
    tu_remote_compare(s.local, "gs://bucket/m/ckpt", NULL, 256 << 10, &st);
    cr_assert_eq(st.objects_whole, TU_REMOTE_SHARDS);
    cr_assert_eq(st.objects_verified, TU_REMOTE_SHARDS,
                 "every shard read whole is verified against x-goog-hash");
    tu_cli_result r = tu_cli("verify gs://bucket/m/ckpt");
    cr_assert_eq(r.rc, 0, "%s", r.err);
    cr_assert(strstr(r.out, " verified; 4 of 4 shard objects also whole, against the store's "
                            "CRC32C\n"), "%s", r.out);
    tu_cli_free(&r);
    tu_nginx_settle(&s.srv);
    cr_assert_eq(tu_nginx_count(&s.srv, "\"Bearer ya29.test-token\""),
                 tu_nginx_count(&s.srv, "/bucket/m/ckpt"));
    /* Each range was pinned to the version the HEAD saw: If-Match, whose
     * quotes nginx logs as \x22, is on every ranged GET and nothing else. */
    cr_assert_eq(tu_nginx_count(&s.srv, "\"\\x22"), tu_nginx_count(&s.srv, "GET /bucket/m/ckpt.data-"));
    unserve(&s);
}

Test(remote, gs_object_whose_crc32c_disagrees_with_its_ranges_fails_naming_it)
{
    served s;
    serve_gcs(&s, 2);
    trestle_checkpoint *c;
    trestle_error err;
    cr_assert_eq(trestle_open("gs://bucket/m/ckpt", NULL, &c, &err), TRESTLE_OK, "%s",
                 err.message);
    trestle_op op = { .name = "part/emb", .dest_kind = TRESTLE_DEST_DISCARD };
    trestle_plan *p = tu_plan(c, NULL, 0, NULL);
    trestle_plan *one = tu_plan(c, &op, 1, NULL);
    /* A part of shard 2 is checked tensor by tensor only: it passes. */
    trestle_stats st;
    cr_assert_eq(trestle_restore(one, NULL, &st, &err), TRESTLE_OK, "%s", err.message);
    cr_assert_eq(st.objects_verified, 0);
    /* All of it: the combined CRC32C of its ranges meets the store's, which is wrong. */
    cr_assert_eq(trestle_restore(p, NULL, &st, &err), TRESTLE_E_CRC_MISMATCH, "%s", err.message);
    cr_assert(tu_starts_with(err.message, "object gs://bucket/m/ckpt.data-00002-of-00004: the "
                                          "CRC32C of the "), "%s", err.message);
    cr_assert(strstr(err.message, "but the store's x-goog-hash says "), "%s", err.message);
    cr_assert_str_eq(err.path, "gs://bucket/m/ckpt.data-00002-of-00004");
    trestle_plan_free(one);
    trestle_plan_free(p);
    trestle_close(c);
    unserve(&s);
}

/* S3's x-amz-checksum-crc32c, answered when asked (x-amz-checksum-mode:
 * ENABLED): the object's own CRC32C with type FULL_OBJECT, the type header
 * first on even shards and last on odd ones; for shard `composite` a CRC32C
 * of parts (type COMPOSITE), which is not the object's and must not be held
 * against it. */
static void s3_checksum_lines(int i, char *hash, char *out, size_t cap, int composite)
{
    const char *type = "FULL_OBJECT";
    if (i == composite)
        memcpy(hash + 7, "AAAAAA", 6), type = "COMPOSITE";
    char crc[64], kind[64];
    snprintf(crc, sizeof crc, "add_header x-amz-checksum-crc32c \"%s\";", hash + 7);
    snprintf(kind, sizeof kind, "add_header x-amz-checksum-type %s;", type);
    snprintf(out, cap, "      if ($http_x_amz_checksum_mode = ENABLED) { %s %s }\n",
             i % 2 ? crc : kind, i % 2 ? kind : crc);
}

Test(remote, s3_full_object_crc32c_verifies_each_object_and_a_composite_one_is_left_alone)
{
    served s;
    s.root = tu_mkdtemp();
    s.local = tu_remote_model(s.root, "bucket/m");
    char *locs = shard_locations(s.local, s3_checksum_lines, 2);
    tu_nginx_start(&s.srv, s.root, false, locs);
    free(locs);
    setenv("AWS_ENDPOINT_URL", s.srv.base, 1);
    setenv("AWS_ACCESS_KEY_ID", "AKIDTRESTLETEST", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "not-a-real-secret", 1);
    unsetenv("AWS_SESSION_TOKEN");
    unsetenv("AWS_PROFILE");
    trestle_stats st;
    tu_remote_compare(s.local, "s3://bucket/m/ckpt", NULL, 256 << 10, &st);
    cr_assert_eq(st.objects_whole, TU_REMOTE_SHARDS);
    cr_assert_eq(st.objects_verified, TU_REMOTE_SHARDS - 1,
                 "each FULL_OBJECT CRC32C is checked, the COMPOSITE one is not");
    tu_cli_result r = tu_cli("verify s3://bucket/m/ckpt");
    cr_assert_eq(r.rc, 0, "%s", r.err);
    cr_assert(strstr(r.out, " verified; 3 of 4 shard objects also whole, against the store's "
                            "CRC32C\n"), "%s", r.out);
    tu_cli_free(&r);
    unserve(&s);
}

Test(remote, gs_token_from_the_metadata_server_gce_metadata_host_names)
{
    served s;
    s.root = tu_mkdtemp();
    s.local = tu_remote_model(s.root, "bucket/m");
    /* The metadata server's answer, only to a request that says Metadata-Flavor: Google. */
    tu_nginx_start(&s.srv, s.root, false,
                   "    location = /computeMetadata/v1/instance/service-accounts/default/token {\n"
                   "      if ($http_metadata_flavor != \"Google\") { return 403; }\n"
                   "      default_type application/json;\n"
                   "      return 200 '{\"access_token\": \"ya29.from-metadata\", "
                   "\"expires_in\": 3599, \"token_type\": \"Bearer\"}';\n    }\n");
    char host[64];
    snprintf(host, sizeof host, "127.0.0.1:%d", s.srv.port);
    setenv("GCE_METADATA_HOST", host, 1);
    setenv("STORAGE_EMULATOR_HOST", s.srv.base, 1);
    unsetenv("GOOGLE_OAUTH_ACCESS_TOKEN");
    tu_remote_compare(s.local, "gs://bucket/m/ckpt", NULL, 0, NULL);
    tu_nginx_settle(&s.srv);
    cr_assert_eq(tu_nginx_count(&s.srv, "GET /computeMetadata/v1/instance/service-accounts/"
                                        "default/token \"-\" 200 "), 1, "%s", tu_nginx_log(&s.srv));
    cr_assert_eq(tu_nginx_count(&s.srv, "\"Bearer ya29.from-metadata\""),
                 tu_nginx_count(&s.srv, "/bucket/m/ckpt"), "every request carries its token");

    /* A metadata server that gives no token fails the open, naming it. */
    unsetenv("GCE_METADATA_HOST");
    setenv("GCE_METADATA_HOST", "127.0.0.1:1", 1);
    trestle_checkpoint *c;
    trestle_error err;
    trestle_open_options o = quick();
    cr_assert_eq(trestle_open("gs://bucket/m/ckpt", &o, &c, &err), TRESTLE_E_IO);
    cr_assert(tu_starts_with(err.message, "gs:// credentials from the metadata server: GET "
                                          "http://127.0.0.1:1/computeMetadata/v1/"), "%s",
              err.message);
    unserve(&s);
}

/* ---- what a failure names ---- */

Test(remote, flipped_byte_names_the_tensor_the_url_and_the_offset)
{
    served s;
    serve(&s, false, NULL);
    trestle_checkpoint *lc = tu_open(s.local, NULL);
    size_t i;
    trestle_tensor_info t;
    cr_assert_eq(trestle_tensor_find(lc, "big/kernel", &i, NULL), TRESTLE_OK);
    cr_assert_eq(trestle_tensor_get_info(lc, i, &t), TRESTLE_OK);
    char *shard;
    cr_assert(asprintf(&shard, "%s.data-00001-of-00004", s.local) > 0);
    tu_flip_byte(shard, (size_t)t.offset + 12345, 0x10);
    char *url, *want;
    cr_assert(asprintf(&url, "%s/bucket/m/ckpt", s.srv.base) > 0);
    trestle_checkpoint *c;
    trestle_error err;
    cr_assert_eq(trestle_open(url, NULL, &c, &err), TRESTLE_OK, "%s", err.message);
    trestle_plan *p = tu_plan(c, NULL, 0, NULL);
    cr_assert_eq(trestle_restore(p, NULL, NULL, &err), TRESTLE_E_CRC_MISMATCH, "%s",
                 err.message);
    cr_assert(asprintf(&want, "CRC32C mismatch in tensor 'big/kernel' (shard %s.data-00001-of-00004, "
                              "offset %" PRIu64 ", %" PRIu64 " bytes)", url, t.offset,
                       t.size) > 0);
    cr_assert(tu_starts_with(err.message, want), "%s", err.message);
    cr_assert_str_eq(err.key, "big/kernel");
    cr_assert_eq(err.offset, (int64_t)t.offset);
    trestle_plan_free(p);
    trestle_close(c);
    trestle_close(lc);
    free(want);
    free(url);
    free(shard);
    unserve(&s);
}

Test(remote, missing_shard_404_names_the_shard_and_a_tensor_in_it)
{
    served s;
    serve(&s, false, NULL);
    char *shard, *url, *want;
    cr_assert(asprintf(&shard, "%s.data-00002-of-00004", s.local) > 0);
    cr_assert_eq(unlink(shard), 0);
    cr_assert(asprintf(&url, "%s/bucket/m/ckpt", s.srv.base) > 0);
    trestle_checkpoint *c;
    trestle_error err;
    /* It still opens and lists, as a local checkpoint with a shard gone does. */
    cr_assert_eq(trestle_open(url, NULL, &c, &err), TRESTLE_OK, "%s", err.message);
    trestle_plan *p = tu_plan(c, NULL, 0, NULL);
    cr_assert_eq(trestle_restore(p, NULL, NULL, &err), TRESTLE_E_NOT_FOUND, "%s", err.message);
    cr_assert(asprintf(&want, "needs data shard %s.data-00002-of-00004, which could not be "
                              "fetched: HTTP 404 Not Found", url) > 0);
    cr_assert(tu_starts_with(err.message, "tensor '"), "%s", err.message);
    cr_assert(strstr(err.message, want), "%s", err.message);
    trestle_plan_free(p);
    trestle_close(c);

    trestle_open_options o = quick();
    o.require_all_shards = 1;
    cr_assert_eq(trestle_open(url, &o, &c, &err), TRESTLE_E_NOT_FOUND);
    free(want);
    cr_assert(asprintf(&want, "cannot fetch data shard %s.data-00002-of-00004: HTTP 404 Not "
                              "Found", url) > 0);
    cr_assert_str_eq(err.message, want);
    free(want);
    free(url);
    free(shard);
    unserve(&s);
}

Test(remote, truncated_object_names_the_tensor_past_its_end)
{
    served s;
    serve(&s, false, NULL);
    char *shard, *url;
    cr_assert(asprintf(&shard, "%s.data-00001-of-00004", s.local) > 0);
    cr_assert_eq(truncate(shard, 1000000), 0);
    cr_assert(asprintf(&url, "%s/bucket/m/ckpt", s.srv.base) > 0);
    trestle_checkpoint *c;
    trestle_error err;
    cr_assert_eq(trestle_open(url, NULL, &c, &err), TRESTLE_OK, "%s", err.message);
    trestle_op op = { .name = "big/kernel", .dest_kind = TRESTLE_DEST_DISCARD };
    trestle_plan *p = tu_plan(c, &op, 1, NULL);
    cr_assert_eq(trestle_restore(p, NULL, NULL, &err), TRESTLE_E_SHORT_READ, "%s", err.message);
    char *want;
    trestle_tensor_info t;
    size_t i;
    cr_assert_eq(trestle_tensor_find(c, "big/kernel", &i, NULL), TRESTLE_OK);
    cr_assert_eq(trestle_tensor_get_info(c, i, &t), TRESTLE_OK);
    cr_assert(asprintf(&want, "tensor 'big/kernel': GET %s.data-00001-of-00004 bytes %" PRIu64
                              "-%" PRIu64 ": the object ends at byte 1000000, inside the range "
                              "(the index says its bytes go further: was it truncated?)", url,
                       t.offset, t.offset + t.size - 1) > 0);
    cr_assert_str_eq(err.message, want);
    free(want);
    trestle_plan_free(p);
    trestle_close(c);
    free(url);
    free(shard);
    unserve(&s);
}

/* ---- resolving a URL as a path ---- */

static void write_text(const char *dir, const char *name, const char *text)
{
    char *p;
    cr_assert(asprintf(&p, "%s/%s", dir, name) > 0);
    cr_assert_eq(tu_write_file(p, text, strlen(text)), 0);
    free(p);
}

static void opens_as(const char *url, const char *prefix)
{
    trestle_checkpoint *c;
    trestle_error err;
    trestle_open_options o = quick();
    cr_assert_eq(trestle_open(url, &o, &c, &err), TRESTLE_OK, "%s: %s", url, err.message);
    trestle_checkpoint_info ci;
    trestle_checkpoint_get_info(c, &ci);
    cr_assert_str_eq(ci.prefix, prefix, "%s", url);
    trestle_close(c);
}

Test(remote, a_directory_resolves_through_its_state_file_as_tensorflow_does)
{
    served s;
    serve(&s, false, NULL);
    char *dir, *url, *prefix, *got;
    cr_assert(asprintf(&dir, "%s/bucket/m", s.root) > 0);
    write_text(dir, "checkpoint", "model_checkpoint_path: \"ckpt\"\n"
                                  "all_model_checkpoint_paths: \"ckpt\"\n");
    cr_assert(asprintf(&url, "%s/bucket/m/", s.srv.base) > 0);
    cr_assert(asprintf(&prefix, "%s/bucket/m/ckpt", s.srv.base) > 0);
    opens_as(url, prefix);
    url[strlen(url) - 1] = '\0'; /* "m": no m.index, so a directory */
    opens_as(url, prefix);
    trestle_error err;
    cr_assert_eq(trestle_latest_checkpoint(url, NULL, &got, &err), TRESTLE_OK, "%s", err.message);
    cr_assert_str_eq(got, prefix);
    free(got);

    /* A state file naming a checkpoint that is not there: TensorFlow's words. */
    write_text(dir, "checkpoint", "model_checkpoint_path: \"ckpt-7\"\n");
    trestle_checkpoint *c;
    trestle_open_options o = quick();
    cr_assert_eq(trestle_open(url, &o, &c, &err), TRESTLE_E_NOT_FOUND);
    char *want;
    cr_assert(asprintf(&want, "Couldn't match files for checkpoint %s-7 (named by %s/checkpoint)",
                       prefix, url) > 0);
    cr_assert_str_eq(err.message, want);
    free(want);
    free(dir);
    free(url);
    free(prefix);
    unserve(&s);
}

Test(remote, a_saved_model_resolves_to_its_variables_and_http_cannot_list)
{
    served s;
    s.root = tu_mkdtemp();
    s.local = tu_remote_model(s.root, "sm/variables");
    char *cmd;
    cr_assert(asprintf(&cmd, "cd '%s/sm/variables' && for f in ckpt.*; do mv \"$f\" "
                             "\"variables${f#ckpt}\"; done", s.root) > 0);
    cr_assert_eq(system(cmd), 0);
    free(cmd);
    tu_nginx_start(&s.srv, s.root, false, NULL);
    char *url, *prefix;
    cr_assert(asprintf(&url, "%s/sm", s.srv.base) > 0);
    cr_assert(asprintf(&prefix, "%s/sm/variables/variables", s.srv.base) > 0);
    opens_as(url, prefix);

    /* A folder with neither: an http server has no listing to give. */
    trestle_checkpoint *c;
    trestle_error err;
    trestle_open_options o = quick();
    char *none, *want;
    cr_assert(asprintf(&none, "%s/elsewhere/", s.srv.base) > 0);
    cr_assert_eq(trestle_open(none, &o, &c, &err), TRESTLE_E_NOT_FOUND);
    cr_assert(asprintf(&want, "no checkpoint at %s/elsewhere: no %s/elsewhere.index, no "
                              "`checkpoint` state file and no variables/variables.index under "
                              "it, and an http(s) server cannot be asked for a listing: give "
                              "the checkpoint prefix (its .index URL without \".index\")",
                       s.srv.base, s.srv.base) > 0);
    cr_assert_str_eq(err.message, want);
    free(want);
    free(none);
    free(url);
    free(prefix);
    unserve(&s);
}

/* The model at ROOT/bucket/`folder`/ckpt served with S3 listings: each page
 * (pages[i], XML) answers the query args[i] of ListObjectsV2 on the bucket,
 * as nginx rewrites to ROOT/lists/pI.xml; anonymous S3 under AWS_ENDPOINT_URL.
 * Then `url` opens as `prefix` and each page was asked for once; or, with
 * `prefix` NULL, the open fails as missing with `error` in its message. */
static void listed(const char *folder, size_t n, const char *const *pages,
                   const char *const *args, const char *url, const char *prefix,
                   const char *error)
{
    served s;
    char *rel, *lists, *locs = strdup("    location = /bucket {\n"), *next;
    s.root = tu_mkdtemp();
    cr_assert(asprintf(&rel, "bucket/%s", folder) > 0);
    s.local = tu_remote_model(s.root, rel);
    cr_assert(asprintf(&lists, "%s/lists", s.root) > 0);
    cr_assert_eq(mkdir(lists, 0755), 0);
    for (size_t i = 0; i < n; i++) {
        char name[32];
        snprintf(name, sizeof name, "p%zu.xml", i);
        write_text(lists, name, pages[i]);
        cr_assert(asprintf(&next, "%s      if ($args = \"%s\") { rewrite ^ /lists/%s last; }\n",
                           locs, args[i], name) > 0);
        free(locs);
        locs = next;
    }
    cr_assert(asprintf(&next, "%s      return 404;\n    }\n", locs) > 0);
    free(locs);
    tu_nginx_start(&s.srv, s.root, false, next);
    free(next);
    setenv("AWS_ENDPOINT_URL", s.srv.base, 1);
    unsetenv("AWS_ACCESS_KEY_ID");
    unsetenv("AWS_SECRET_ACCESS_KEY");
    setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent", 1);
    setenv("AWS_CONFIG_FILE", "/nonexistent", 1);
    unsetenv("AWS_PROFILE");
    if (prefix) {
        opens_as(url, prefix);
    } else {
        trestle_checkpoint *c;
        trestle_error err;
        cr_assert_eq(trestle_open(url, NULL, &c, &err), TRESTLE_E_NOT_FOUND, "%s", err.message);
        cr_assert(strstr(err.message, error), "%s", err.message);
    }
    tu_nginx_settle(&s.srv);
    for (size_t i = 0; i < n; i++) {
        char needle[512];
        snprintf(needle, sizeof needle, "GET /lists/p%zu.xml \"%s\" 200 ", i, args[i]);
        cr_assert_eq(tu_nginx_count(&s.srv, needle), 1, "%s", tu_nginx_log(&s.srv));
    }
    free(rel);
    free(lists);
    unserve(&s);
}

Test(remote, an_s3_folder_without_a_state_file_is_listed_for_its_one_index)
{
    /* S3's answer to ListObjectsV2 of prefix run7/. */
    const char *page = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ListBucketResult>"
                       "<Name>bucket</Name><Prefix>run7/</Prefix><KeyCount>5</KeyCount>"
                       "<Contents><Key>run7/ckpt.data-00000-of-00004</Key></Contents>"
                       "<Contents><Key>run7/ckpt.index</Key></Contents>"
                       "<Contents><Key>run7/events.out</Key></Contents></ListBucketResult>";
    const char *args = "delimiter=%2F&list-type=2&prefix=run7%2F";
    listed("run7", 1, &page, &args, "s3://bucket/run7", "s3://bucket/run7/ckpt", NULL);
}

/* S3 writes '&', '<' and '>' in a listed key as entities, and may write
 * any character as a reference: the key is the text, not the XML. It was
 * taken as written, and the folder's index was then "not found". */
Test(remote, a_listed_key_is_read_as_text_not_as_xml)
{
    const char *page = "<ListBucketResult><Name>bucket</Name><Prefix>r&amp;d/</Prefix>"
                       "<Contents><Key>r&amp;d/ckpt.data-00000-of-00004</Key></Contents>"
                       "<Contents><Key>r&amp;d/ckpt.index</Key></Contents></ListBucketResult>";
    const char *args = "delimiter=%2F&list-type=2&prefix=r%26d%2F";
    listed("r&d", 1, &page, &args, "s3://bucket/r&d", "s3://bucket/r&d/ckpt", NULL);
    const char *refs = "<ListBucketResult><Name>bucket</Name>"
                       "<Contents><Key>a&#38;b&#x3c;&#X3E;/ckpt.index</Key></Contents>"
                       "</ListBucketResult>";
    args = "delimiter=%2F&list-type=2&prefix=a%26b%3C%3E%2F";
    listed("a&b<>", 1, &refs, &args, "s3://bucket/a&b<>/", "s3://bucket/a&b<>/ckpt", NULL);
}

Test(remote, an_s3_listing_is_read_page_after_page_for_an_index_past_the_first)
{
    /* A checkpoint of many shards lists its data files first ("data-" sorts
     * before "index"): the .index comes on a later page. */
    const char *pages[] = {
        "<ListBucketResult><Name>bucket</Name><Prefix>run8/</Prefix>"
        "<Contents><Key>run8/ckpt.data-00000-of-00004</Key></Contents>"
        "<IsTruncated>true</IsTruncated><NextContinuationToken>1ueGcxLPRx1Tr/"
        "XYExHnhb+YLgveDs2J=</NextContinuationToken></ListBucketResult>",
        "<ListBucketResult><Name>bucket</Name><Prefix>run8/</Prefix>"
        "<Contents><Key>run8/ckpt.index</Key></Contents>"
        "<IsTruncated>false</IsTruncated></ListBucketResult>",
    };
    const char *args[] = {
        "delimiter=%2F&list-type=2&prefix=run8%2F",
        "continuation-token=1ueGcxLPRx1Tr%2FXYExHnhb%2BYLgveDs2J%3D&delimiter=%2F&list-type=2&"
        "prefix=run8%2F",
    };
    listed("run8", 2, pages, args, "s3://bucket/run8/", "s3://bucket/run8/ckpt", NULL);

    /* A token too long to send back is an error, not a request past its buffer. */
    char page[4200] = "<ListBucketResult><IsTruncated>true</IsTruncated><NextContinuationToken>";
    memset(page + strlen(page), 'A', 3000);
    strcpy(page + strlen(page), "</NextContinuationToken></ListBucketResult>");
    const char *one = page, *arg = "delimiter=%2F&list-type=2&prefix=run9%2F";
    listed("run9", 1, &one, &arg, "s3://bucket/run9/", NULL,
           "it could not be listed (listing s3://bucket/run9/: its continuation token or "
           "prefix is too long for a request): give the checkpoint prefix");
}
