/*
 * test_remote_auth.c - credentials found by each ecosystem's conventions
 * and sent with every request, against a real nginx on 127.0.0.1
 * (remote_server.c) whose access log shows each request's headers: an AWS
 * profile of ~/.aws/credentials and ~/.aws/config picked by AWS_PROFILE
 * (region and session token included); GCS HMAC keys signing the XML API
 * with SigV4, checked by botocore's signer; a bearer token over HTTPS and
 * a presigned URL's query.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "remote_server.h"
#include "testutil.h"

typedef struct served {
    char *root, *local;
    tu_nginx srv;
} served;

static void serve(served *s, bool tls)
{
    s->root = tu_mkdtemp();
    s->local = tu_remote_model(s->root, "bucket/m");
    tu_nginx_start(&s->srv, s->root, tls, NULL);
}

static void unserve(served *s)
{
    tu_nginx_stop(&s->srv);
    tu_rmtree(s->root);
    free(s->root);
    free(s->local);
}

static void write_in(const char *dir, const char *name, const char *text)
{
    char *path;
    cr_assert(asprintf(&path, "%s/%s", dir, name) > 0);
    cr_assert_eq(tu_write_file(path, text, strlen(text)), 0);
    free(path);
}

/* No AWS or Google credentials but those a test sets. */
static void no_credentials(void)
{
    static const char *const vars[] = {
        "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
        "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE",
        "GOOGLE_OAUTH_ACCESS_TOKEN", "GS_ACCESS_KEY_ID", "GS_SECRET_ACCESS_KEY",
        "GCE_METADATA_HOST", "TRESTLE_HTTP_BEARER_TOKEN",
    };
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
        unsetenv(vars[i]);
}

Test(remote_auth, s3_credentials_from_the_aws_profile_in_home_aws_files)
{
    served s;
    serve(&s, false);
    no_credentials();
    setenv("AWS_ENDPOINT_URL", s.srv.base, 1);
    /* ~/.aws as the aws CLI writes it: keys in credentials, the region in config. */
    char *home, *aws;
    cr_assert(home = tu_mkdtemp());
    cr_assert(asprintf(&aws, "%s/.aws", home) > 0);
    cr_assert_eq(mkdir(aws, 0700), 0);
    write_in(aws, "credentials",
             "[default]\naws_access_key_id = AKIDDEFAULTPROFILE\n"
             "aws_secret_access_key = default-secret\n\n"
             "# the training job's role\n[trainer]\n"
             "aws_access_key_id=AKIDTRAINERPROFILE\naws_secret_access_key=trainer-secret\n"
             "aws_session_token = trainer-session-token\n");
    write_in(aws, "config", "[default]\nregion = us-west-2\n\n"
                            "[profile trainer]\nregion = ap-northeast-1\noutput = json\n");
    setenv("HOME", home, 1);

    /* AWS_PROFILE picks [trainer] and its region from [profile trainer]. */
    setenv("AWS_PROFILE", "trainer", 1);
    tu_remote_compare(s.local, "s3://bucket/m/ckpt", NULL, 0, NULL);
    tu_nginx_settle(&s.srv);
    size_t lines = tu_nginx_count(&s.srv, "/bucket/m/ckpt");
    cr_assert_gt(lines, TU_REMOTE_SHARDS);
    cr_assert_eq(tu_nginx_count(&s.srv, "\"AWS4-HMAC-SHA256 Credential=AKIDTRAINERPROFILE/"),
                 lines, "%s", tu_nginx_log(&s.srv));
    cr_assert_eq(tu_nginx_count(&s.srv, "/ap-northeast-1/s3/aws4_request, "), lines);
    cr_assert_eq(tu_nginx_count(&s.srv, "\"trainer-session-token\""), lines);

    /* Without AWS_PROFILE, [default]; AWS_REGION outranks the profile's region. */
    unsetenv("AWS_PROFILE");
    setenv("AWS_REGION", "eu-central-1", 1);
    tu_remote_compare(s.local, "s3://bucket/m/ckpt", NULL, 0, NULL);
    tu_nginx_settle(&s.srv);
    size_t all = tu_nginx_count(&s.srv, "/bucket/m/ckpt");
    cr_assert_eq(tu_nginx_count(&s.srv, "\"AWS4-HMAC-SHA256 Credential=AKIDDEFAULTPROFILE/"),
                 all - lines);
    cr_assert_eq(tu_nginx_count(&s.srv, "/eu-central-1/s3/aws4_request, "), all - lines);

    /* A profile that is in neither file fails the open, naming both files. */
    setenv("AWS_PROFILE", "nosuch", 1);
    trestle_checkpoint *c;
    trestle_error err;
    cr_assert_eq(trestle_open("s3://bucket/m/ckpt", NULL, &c, &err), TRESTLE_E_IO);
    char *want;
    cr_assert(asprintf(&want, "AWS_PROFILE names profile 'nosuch', which neither "
                              "%1$s/credentials nor %1$s/config has", aws) > 0);
    cr_assert(strstr(err.message, want), "%s", err.message);
    cr_assert_null(strstr(err.message, "secret"), "%s", err.message);
    free(want);
    tu_rmtree(home);
    free(home);
    free(aws);
    unserve(&s);
}

Test(remote_auth, gs_hmac_keys_sign_the_xml_api_as_botocore_signs)
{
    tu_need_botocore();
    served s;
    serve(&s, false);
    no_credentials();
    setenv("STORAGE_EMULATOR_HOST", s.srv.base, 1);
    setenv("GS_ACCESS_KEY_ID", "GOOG1EHMACKEYIDFORTESTS", 1);
    setenv("GS_SECRET_ACCESS_KEY", "hmac/secret+for=tests", 1);
    tu_remote_compare(s.local, "gs://bucket/m/ckpt", NULL, 0, NULL);
    tu_nginx_settle(&s.srv);
    size_t lines = tu_nginx_count(&s.srv, "/bucket/m/ckpt");
    cr_assert_gt(lines, TU_REMOTE_SHARDS);
    cr_assert_eq(tu_nginx_count(&s.srv, "\"AWS4-HMAC-SHA256 Credential=GOOG1EHMACKEYIDFORTESTS/"),
                 lines, "every request is signed:\n%s", tu_nginx_log(&s.srv));
    cr_assert_eq(tu_nginx_count(&s.srv, "/auto/s3/aws4_request, "), lines);
    char *out, *want;
    int rc = tu_sigv4_check(&s.srv, "GOOG1EHMACKEYIDFORTESTS", "hmac/secret+for=tests", "",
                            "auto", &out);
    cr_assert(asprintf(&want, "%zu requests signed as botocore signs them\n", lines) > 0);
    cr_assert_eq(rc, 0, "%s", out);
    cr_assert_str_eq(out, want);
    /* A bearer token, where there is one, is what gsutil would send instead. */
    setenv("GOOGLE_OAUTH_ACCESS_TOKEN", "ya29.preferred", 1);
    tu_remote_compare(s.local, "gs://bucket/m/ckpt", NULL, 0, NULL);
    tu_nginx_settle(&s.srv);
    cr_assert_eq(tu_nginx_count(&s.srv, "\"Bearer ya29.preferred\""),
                 tu_nginx_count(&s.srv, "/bucket/m/ckpt") - lines);
    free(want);
    free(out);
    unserve(&s);
}

Test(remote_auth, https_bearer_token_and_presigned_query_go_with_every_request)
{
    served s;
    serve(&s, true);
    no_credentials();
    setenv("CURL_CA_BUNDLE", s.srv.ca_file, 1);
    setenv("TRESTLE_HTTP_BEARER_TOKEN", "hub-token-123", 1);
    char *url;
    cr_assert(asprintf(&url, "%s/bucket/m/ckpt", s.srv.tls_base) > 0);
    tu_remote_compare(s.local, url, NULL, 0, NULL);
    tu_nginx_settle(&s.srv);
    size_t lines = tu_nginx_count(&s.srv, "/bucket/m/ckpt");
    cr_assert_gt(lines, TU_REMOTE_SHARDS);
    cr_assert_eq(tu_nginx_count(&s.srv, "\"Bearer hub-token-123\""), lines);
    free(url);

    /* A presigned (or SAS-style) query is sent as it is with every object's request. */
    unsetenv("TRESTLE_HTTP_BEARER_TOKEN");
    const char *q = "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature=0a1b2c&X-Amz-Expires=900";
    cr_assert(asprintf(&url, "%s/bucket/m/ckpt?%s", s.srv.tls_base, q) > 0);
    tu_remote_compare(s.local, url, NULL, 0, NULL);
    tu_nginx_settle(&s.srv);
    char *with_q;
    cr_assert(asprintf(&with_q, "\"%s\" 20", q) > 0);
    cr_assert_eq(tu_nginx_count(&s.srv, with_q), tu_nginx_count(&s.srv, "/bucket/m/ckpt") - lines,
                 "%s", tu_nginx_log(&s.srv));
    cr_assert_gt(tu_nginx_count(&s.srv, with_q), TU_REMOTE_SHARDS);
    free(with_q);
    free(url);
    unserve(&s);
}

/* S3 to a user who may read objects but not list the bucket: a listing,
 * and a GET or HEAD of an absent key, answer 403 AccessDenied. */
static const char no_list[] =
    "    location = /bucket { return 403 '<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error>"
    "<Code>AccessDenied</Code><Message>Access Denied</Message></Error>'; }\n"
    "    location /bucket/ { try_files $uri @denied; }\n"
    "    location @denied { return 403 '<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error>"
    "<Code>AccessDenied</Code><Message>Access Denied</Message></Error>'; }\n";

Test(remote_auth, s3_without_list_permission_opens_a_prefix_and_asks_for_one_otherwise)
{
    served s;
    s.root = tu_mkdtemp();
    s.local = tu_remote_model(s.root, "bucket/m");
    tu_nginx_start(&s.srv, s.root, false, no_list);
    no_credentials();
    setenv("AWS_ENDPOINT_URL", s.srv.base, 1);
    setenv("AWS_ACCESS_KEY_ID", "AKIDREADONLY", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "read-only-secret", 1);
    setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent", 1);
    setenv("AWS_CONFIG_FILE", "/nonexistent", 1);
    /* The prefix needs no listing. */
    tu_remote_compare(s.local, "s3://bucket/m/ckpt", NULL, 0, NULL);
    /* A folder does: the error says the listing was refused and asks for the prefix. */
    trestle_checkpoint *c;
    trestle_error err;
    int rc = trestle_open("s3://bucket/m", NULL, &c, &err);
    cr_assert_eq(rc, TRESTLE_E_NOT_FOUND, "%d %s", rc, err.message);
    cr_assert_str_eq(err.message,
                     "no checkpoint at s3://bucket/m: no s3://bucket/m.index, no `checkpoint` "
                     "state file and no variables/variables.index under it, and it could not "
                     "be listed (GET s3://bucket/m/: HTTP 403 Forbidden (AccessDenied: Access "
                     "Denied); credentials used: AWS_ACCESS_KEY_ID (SigV4, us-east-1)): give the "
                     "checkpoint prefix (its .index URL without \".index\")");
    /* A prefix that is not there is a 403 too, and says so with the credentials used. */
    rc = trestle_open("s3://bucket/m/ckpt-9.index", NULL, &c, &err);
    cr_assert_eq(rc, TRESTLE_E_IO, "%d %s", rc, err.message);
    cr_assert_str_eq(err.message, "GET s3://bucket/m/ckpt-9.index: HTTP 403 Forbidden "
                                  "(AccessDenied: Access Denied); credentials used: "
                                  "AWS_ACCESS_KEY_ID (SigV4, us-east-1)");
    unserve(&s);
}
