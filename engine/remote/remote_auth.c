/*
 * remote_auth.c - credentials for a store, by each ecosystem's own
 * conventions, so that what works for the aws CLI, gsutil or curl works
 * here unchanged:
 *
 *   s3://   AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN; else
 *           the profile AWS_PROFILE (or "default") of
 *           AWS_SHARED_CREDENTIALS_FILE (~/.aws/credentials) and
 *           AWS_CONFIG_FILE (~/.aws/config); else unsigned (public buckets).
 *           Region: AWS_REGION, AWS_DEFAULT_REGION, the profile's region,
 *           us-east-1. Requests are signed with SigV4 by libcurl
 *           (CURLOPT_AWS_SIGV4).
 *   gs://   GOOGLE_OAUTH_ACCESS_TOKEN as a bearer token; else HMAC keys
 *           GS_ACCESS_KEY_ID + GS_SECRET_ACCESS_KEY (boto's names), signing
 *           the XML API's requests with SigV4; else the token of
 *           the metadata server GCE_METADATA_HOST names (as google-auth
 *           reads it); else, with STORAGE_EMULATOR_HOST, none (an
 *           emulator); else on GCE/GKE the metadata server's token of the
 *           default service account; else none (public buckets).
 *   http(s) TRESTLE_HTTP_BEARER_TOKEN as a bearer token, USER:PASSWORD@ in
 *           the URL as basic auth, a presigned URL's query as it is.
 *
 * TLS trusts the system's CAs, or the file in AWS_CA_BUNDLE (s3://),
 * CURL_CA_BUNDLE or SSL_CERT_FILE. Nothing read here is ever formatted
 * into a message; auth_note says where credentials came from, by name.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "remote_store.h"

#define INI_MAX_BYTES (1u << 20)   /* an AWS config file is a few lines */
#define TOKEN_MAX_BYTES (64u << 10)

/* ---- ~/.aws files ---- */

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1]))
        *--e = '\0';
    return s;
}

/* The value of `name` in section `section` of an INI file, malloc'd, or
 * NULL. *found_section is set when the section exists. */
static char *ini_value(const char *path, const char *section, const char *name,
                       bool *found_section)
{
    FILE *f = path ? fopen(path, "re") : NULL;
    char line[4096], *value = NULL;
    bool in = false;
    size_t total = 0;
    if (!f)
        return NULL;
    while (!value && fgets(line, sizeof line, f) && (total += strlen(line)) < INI_MAX_BYTES) {
        char *t = trim(line);
        if (*t == '#' || *t == ';' || !*t)
            continue;
        if (*t == '[') {
            char *close = strchr(t, ']');
            if (close)
                *close = '\0';
            in = strcmp(trim(t + 1), section) == 0;
            if (in && found_section)
                *found_section = true;
            continue;
        }
        char *eq = strchr(t, '=');
        if (!in || !eq)
            continue;
        *eq = '\0';
        if (strcmp(trim(t), name) == 0)
            value = strdup(trim(eq + 1));
    }
    fclose(f);
    return value;
}

static char *aws_file(const char *env, const char *name)
{
    const char *v = trestle__env(env), *home = trestle__env("HOME");
    char *p = NULL;
    if (v)
        return strdup(v);
    if (home && asprintf(&p, "%s/.aws/%s", home, name) < 0)
        p = NULL;
    return p;
}

/* A profile's setting: the credentials file's [NAME], then the config
 * file's [profile NAME] ([default] for the default profile). */
static char *profile_value(const char *creds, const char *config, const char *profile,
                           const char *name, bool *seen)
{
    char *v = ini_value(creds, profile, name, seen);
    if (v)
        return v;
    char section[300];
    if (strcmp(profile, "default") == 0)
        snprintf(section, sizeof section, "default");
    else
        snprintf(section, sizeof section, "profile %.280s", profile);
    return ini_value(config, section, name, seen);
}

static int s3_auth(trestle__store *s, trestle_error *err)
{
    const char *id = trestle__env("AWS_ACCESS_KEY_ID");
    const char *secret = trestle__env("AWS_SECRET_ACCESS_KEY");
    const char *token = trestle__env("AWS_SESSION_TOKEN");
    const char *named = trestle__env("AWS_PROFILE");
    const char *profile = named ? named : "default";
    char *creds = aws_file("AWS_SHARED_CREDENTIALS_FILE", "credentials");
    char *config = aws_file("AWS_CONFIG_FILE", "config");
    char *fid = NULL, *fsecret = NULL, *ftoken = NULL, *fregion = NULL;
    bool seen = false;
    int rc = TRESTLE_OK;

    if (!(id && secret)) {
        fid = profile_value(creds, config, profile, "aws_access_key_id", &seen);
        fsecret = profile_value(creds, config, profile, "aws_secret_access_key", &seen);
        ftoken = profile_value(creds, config, profile, "aws_session_token", &seen);
        if (named && !seen) {
            rc = trestle__error_simple(err, TRESTLE_E_IO,
                                       "AWS_PROFILE names profile '%.200s', which neither %.300s "
                                       "nor %.300s has", profile, creds ? creds : "~/.aws/credentials",
                                       config ? config : "~/.aws/config");
            goto out;
        }
    }
    const char *region = trestle__env("AWS_REGION");
    if (!region)
        region = trestle__env("AWS_DEFAULT_REGION");
    if (!region)
        region = fregion = profile_value(creds, config, profile, "region", NULL);
    s->region = strdup(region ? region : "us-east-1");
    if (id && secret) {
        snprintf(s->auth_note, sizeof s->auth_note, "AWS_ACCESS_KEY_ID (SigV4, %.60s)", s->region);
    } else if (fid && fsecret) {
        id = fid, secret = fsecret, token = ftoken;
        snprintf(s->auth_note, sizeof s->auth_note, "AWS profile '%.60s' (SigV4, %.60s)", profile,
                 s->region);
    } else {
        id = secret = token = NULL;
        snprintf(s->auth_note, sizeof s->auth_note, "anonymous (no AWS credentials)");
    }
    if (id && (asprintf(&s->userpwd, "%s:%s", id, secret) < 0 ||
               asprintf(&s->sigv4, "aws:amz:%s:s3", s->region ? s->region : "us-east-1") < 0))
        s->userpwd = s->sigv4 = NULL, rc = TRESTLE_E_NOMEM;
    if (id && token && asprintf(&s->token_header, "x-amz-security-token: %s", token) < 0)
        s->token_header = NULL, rc = TRESTLE_E_NOMEM;
    if (!s->region)
        rc = TRESTLE_E_NOMEM;
    if (rc == TRESTLE_E_NOMEM)
        trestle__error_simple(err, rc, "out of memory");
out:
    free(creds);
    free(config);
    free(fid);
    free(fsecret);
    free(ftoken);
    free(fregion);
    return rc;
}

/* ---- GCS ---- */

/* On Google Compute Engine (and GKE), DMI says so; asking the metadata
 * server anywhere else would only wait for a name that does not resolve. */
static bool on_gce(void)
{
    char name[64] = "";
    FILE *f = fopen("/sys/class/dmi/id/product_name", "re");
    if (f) {
        if (!fgets(name, sizeof name, f))
            name[0] = '\0';
        fclose(f);
    }
    return strncmp(name, "Google", 6) == 0;
}

/* "access_token": "..." out of the metadata server's JSON (tokens hold no
 * escapes), malloc'd, or NULL. */
static char *json_token(const char *json)
{
    const char *p = strstr(json, "\"access_token\"");
    if (!p)
        return NULL;
    p += 14;
    while (isspace((unsigned char)*p) || *p == ':')
        p++;
    if (*p != '"')
        return NULL;
    const char *end = strchr(++p, '"');
    return end && end > p ? strndup(p, (size_t)(end - p)) : NULL;
}

static int metadata_token(trestle__store *s, const char *host, trestle_error *err)
{
    char *url = NULL, *key = NULL, *token = NULL;
    trestle__store *md = NULL;
    uint8_t *body = NULL;
    size_t len = 0;
    trestle__remote_config cfg = { .connections = 1, .attempts = 3, .backoff_ms = 100 };
    int rc;

    if (asprintf(&url, "%s%s/computeMetadata/v1/instance/service-accounts/default/token",
                 strstr(host, "://") ? "" : "http://", host) < 0)
        return trestle__error_simple(err, TRESTLE_E_NOMEM, "out of memory");
    rc = trestle__store_parse(url, &cfg, &md, &key, err);
    if (rc == TRESTLE_OK) {
        free(md->auth_header); /* the metadata server takes no token of ours */
        md->auth_header = strdup("Metadata-Flavor: Google");
        rc = md->auth_header ? trestle__remote_get(md, key, TOKEN_MAX_BYTES,
                                                   "a token answer is a few hundred bytes",
                                                   &body, &len, NULL, err)
                             : trestle__error_simple(err, TRESTLE_E_NOMEM, "out of memory");
    }
    if (rc == TRESTLE_OK && !(token = json_token((const char *)body)))
        rc = trestle__error_simple(err, TRESTLE_E_IO,
                                   "the metadata server %.200s gave no access_token", host);
    if (rc == TRESTLE_OK && asprintf(&s->auth_header, "Authorization: Bearer %s", token) < 0)
        s->auth_header = NULL, rc = trestle__error_simple(err, TRESTLE_E_NOMEM, "out of memory");
    if (rc == TRESTLE_OK)
        snprintf(s->auth_note, sizeof s->auth_note, "the metadata server's token (%.100s)", host);
    else
        trestle__error_prefix(err, "gs:// credentials from the metadata server");
    if (token)
        memset(token, 0, strlen(token));
    if (body)
        memset(body, 0, len);
    free(token);
    free(body);
    free(key);
    free(url);
    trestle__store_free(md);
    return rc;
}

static int gcs_auth(trestle__store *s, trestle_error *err)
{
    const char *token = trestle__env("GOOGLE_OAUTH_ACCESS_TOKEN");
    const char *md = trestle__env("GCE_METADATA_HOST");
    if (token) {
        if (asprintf(&s->auth_header, "Authorization: Bearer %s", token) < 0)
            return s->auth_header = NULL, trestle__error_simple(err, TRESTLE_E_NOMEM, "out of memory");
        snprintf(s->auth_note, sizeof s->auth_note, "GOOGLE_OAUTH_ACCESS_TOKEN");
        return TRESTLE_OK;
    }
    /* HMAC keys, under the names boto and gsutil read them: the XML API takes
     * SigV4 (AWS4-HMAC-SHA256, region "auto", service "s3") signed with them,
     * as it takes S3's own requests, so libcurl signs as for S3. */
    const char *hmac_id = trestle__env("GS_ACCESS_KEY_ID");
    const char *hmac_secret = trestle__env("GS_SECRET_ACCESS_KEY");
    if (hmac_id && hmac_secret) {
        if (asprintf(&s->userpwd, "%s:%s", hmac_id, hmac_secret) < 0)
            return s->userpwd = NULL, trestle__error_simple(err, TRESTLE_E_NOMEM, "out of memory");
        if (!(s->sigv4 = strdup("aws:amz:auto:s3")))
            return trestle__error_simple(err, TRESTLE_E_NOMEM, "out of memory");
        snprintf(s->auth_note, sizeof s->auth_note, "GS_ACCESS_KEY_ID (HMAC, SigV4)");
        return TRESTLE_OK;
    }
    /* A metadata server named outright is asked even beside an emulator. */
    if (md)
        return metadata_token(s, md, err);
    if (trestle__env("STORAGE_EMULATOR_HOST")) {
        snprintf(s->auth_note, sizeof s->auth_note, "none (STORAGE_EMULATOR_HOST)");
        return TRESTLE_OK;
    }
    if (on_gce())
        return metadata_token(s, "metadata.google.internal", err);
    snprintf(s->auth_note, sizeof s->auth_note, "anonymous (no Google credentials)");
    return TRESTLE_OK;
}

/* ---- all stores ---- */

int trestle__store_auth(trestle__store *s, trestle_error *err)
{
    const char *ca = s->kind == TRESTLE__STORE_S3 ? trestle__env("AWS_CA_BUNDLE") : NULL;
    if (!ca)
        ca = trestle__env("CURL_CA_BUNDLE");
    if (!ca)
        ca = trestle__env("SSL_CERT_FILE");
    if (ca && !(s->ca_bundle = strdup(ca)))
        return trestle__error_simple(err, TRESTLE_E_NOMEM, "out of memory");
    if (s->kind == TRESTLE__STORE_S3)
        return s3_auth(s, err);
    if (s->kind == TRESTLE__STORE_GCS)
        return gcs_auth(s, err);
    const char *bearer = trestle__env("TRESTLE_HTTP_BEARER_TOKEN");
    if (bearer) {
        if (asprintf(&s->auth_header, "Authorization: Bearer %s", bearer) < 0)
            return s->auth_header = NULL, trestle__error_simple(err, TRESTLE_E_NOMEM, "out of memory");
        snprintf(s->auth_note, sizeof s->auth_note, "TRESTLE_HTTP_BEARER_TOKEN");
    } else {
        snprintf(s->auth_note, sizeof s->auth_note, s->userpwd ? "the URL's user:password"
                                                              : s->query ? "the URL's query"
                                                                         : "anonymous");
    }
    return TRESTLE_OK;
}

/* ---- a store: parsed, then its credentials, then its endpoint ---- */

int trestle__store_open(const char *url, const trestle__remote_config *cfg,
                        trestle__store **store, char **key, trestle_error *err)
{
    trestle__store *s;
    int rc = trestle__store_parse(url, cfg, &s, key, err);
    if (rc == TRESTLE_OK)
        rc = trestle__store_auth(s, err);
    if (rc == TRESTLE_OK)
        rc = trestle__store_endpoint(s, err);
    if (rc != TRESTLE_OK) {
        free(*key);
        *key = NULL;
        trestle__store_free(s);
        return rc;
    }
    *store = s;
    return TRESTLE_OK;
}
