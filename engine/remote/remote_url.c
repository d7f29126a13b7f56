/*
 * remote_url.c - a URL becomes a store (remote.h): which kind, which
 * bucket, the endpoint requests go to, the query a presigned or
 * token-carrying URL brings along, and the display form every message
 * uses instead of the URL itself.
 *
 *   gs://BUCKET/KEY    GCS XML API: https://storage.googleapis.com/BUCKET/KEY,
 *                      or $STORAGE_EMULATOR_HOST/BUCKET/KEY
 *   s3://BUCKET/KEY    https://BUCKET.s3.REGION.amazonaws.com/KEY (path style
 *                      for a bucket with dots), or $AWS_ENDPOINT_URL_S3 /
 *                      $AWS_ENDPOINT_URL + /BUCKET/KEY, path style, as MinIO,
 *                      Ceph and R2 want
 *   http(s)://[USER:PASSWORD@]HOST[:PORT]/PATH[?QUERY]
 *                      as given; the query (a signature, a token) is sent
 *                      with every object derived from the URL
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "remote_store.h"

const char *trestle__env(const char *name)
{
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

bool trestle__is_url(const char *path)
{
    return path && (strncmp(path, "gs://", 5) == 0 || strncmp(path, "s3://", 5) == 0 ||
                    strncmp(path, "http://", 7) == 0 || strncmp(path, "https://", 8) == 0);
}

void trestle__url_redact(const char *url, char *buf, size_t cap)
{
    const char *scheme_end = strstr(url, "://");
    const char *auth = scheme_end ? scheme_end + 3 : url;
    const char *path = auth + strcspn(auth, "/?#");
    const char *at = memchr(auth, '@', (size_t)(path - auth));
    const char *query = strpbrk(path, "?#");
    size_t head = (size_t)(auth - url);
    const char *host = at ? at + 1 : auth;
    int n = snprintf(buf, cap, "%.*s%.*s%.*s%s", (int)head, url, (int)(path - host), host,
                     (int)(query ? (size_t)(query - path) : strlen(path)), path,
                     query ? "?<redacted>" : "");
    (void)n;
}

static char *dup_range(const char *a, const char *b)
{
    return strndup(a, (size_t)(b - a));
}

static int bad_url(const char *url, const char *why, trestle_error *err)
{
    char shown[TRESTLE_ERROR_FIELD_MAX];
    trestle__url_redact(url, shown, sizeof shown);
    return trestle__error_set(err, TRESTLE_E_INVALID_ARG, 0, NULL, shown, -1, -1,
                              "cannot use URL %s: %s", shown, why);
}

/* An endpoint from the environment: "host:port" gets http://, trailing '/' go. */
static char *endpoint_from(const char *value, const char *bucket)
{
    char *e = NULL;
    size_t n = strlen(value);
    while (n > 0 && value[n - 1] == '/')
        n--;
    if (asprintf(&e, "%s%.*s/%s", strstr(value, "://") ? "" : "http://", (int)n, value,
                 bucket) < 0)
        return NULL;
    return e;
}

/* s3:// and gs://: the bucket, the key, and the endpoint. */
static int parse_bucket_url(trestle__store *s, const char *url, char **key, trestle_error *err)
{
    const char *b = url + 5;
    const char *slash = strchr(b, '/');
    const char *end = slash ? slash : b + strlen(b);
    if (end == b)
        return bad_url(url, "no bucket name after the scheme", err);
    s->bucket = dup_range(b, end);
    *key = strdup(slash ? slash + 1 : "");
    if (asprintf(&s->display_root, "%.5s%s", url, s->bucket) < 0)
        s->display_root = NULL;
    if (!s->bucket || !*key || !s->display_root)
        return trestle__error_simple(err, TRESTLE_E_NOMEM, "out of memory");
    s->encode_keys = true;
    return TRESTLE_OK;
}

int trestle__store_endpoint(trestle__store *s, trestle_error *err)
{
    const char *v;
    if (s->kind == TRESTLE__STORE_HTTP)
        return TRESTLE_OK; /* the URL is the endpoint */
    if (s->kind == TRESTLE__STORE_GCS) {
        v = trestle__env("STORAGE_EMULATOR_HOST");
        s->endpoint = endpoint_from(v ? v : "https://storage.googleapis.com", s->bucket);
    } else if ((v = trestle__env("AWS_ENDPOINT_URL_S3")) || (v = trestle__env("AWS_ENDPOINT_URL"))) {
        s->endpoint = endpoint_from(v, s->bucket);
    } else if (strchr(s->bucket, '.')) {
        /* A dotted bucket breaks the virtual host's TLS name: path style. */
        if (asprintf(&s->endpoint, "https://s3.%s.amazonaws.com/%s", s->region, s->bucket) < 0)
            s->endpoint = NULL;
    } else if (asprintf(&s->endpoint, "https://%s.s3.%s.amazonaws.com", s->bucket,
                        s->region) < 0) {
        s->endpoint = NULL;
    }
    return s->endpoint ? TRESTLE_OK : trestle__error_simple(err, TRESTLE_E_NOMEM, "out of memory");
}

/* http(s)://: userinfo to basic auth, the path as the key, the query kept. */
static int parse_http_url(trestle__store *s, const char *url, char **key, trestle_error *err)
{
    const char *auth = strstr(url, "://") + 3;
    const char *path = auth + strcspn(auth, "/?#");
    const char *at = memchr(auth, '@', (size_t)(path - auth));
    const char *host = at ? at + 1 : auth;
    if (path == host)
        return bad_url(url, "no host name", err);
    const char *query = path + strcspn(path, "?#");
    const char *frag = strchr(query, '#');
    if (at && !(s->userpwd = dup_range(auth, at)))
        return trestle__error_simple(err, TRESTLE_E_NOMEM, "out of memory");
    if (asprintf(&s->display_root, "%.*s%.*s", (int)(auth - url), url, (int)(path - host),
                 host) < 0)
        s->display_root = NULL;
    s->endpoint = s->display_root ? strdup(s->display_root) : NULL;
    if (*query == '?' && query[1] && query + 1 != frag)
        s->query = frag ? dup_range(query, frag) : strdup(query);
    *key = dup_range(*path == '/' ? path + 1 : path, query);
    if (!s->display_root || !s->endpoint || !*key || (*query == '?' && query + 1 != frag &&
                                                      query[1] && !s->query))
        return trestle__error_simple(err, TRESTLE_E_NOMEM, "out of memory");
    return TRESTLE_OK;
}

int trestle__store_parse(const char *url, const trestle__remote_config *cfg,
                         trestle__store **store, char **key, trestle_error *err)
{
    int rc;
    trestle__store *s = calloc(1, sizeof *s);
    *store = NULL;
    *key = NULL;
    if (!s)
        return trestle__error_simple(err, TRESTLE_E_NOMEM, "out of memory");
    if (cfg)
        s->cfg = *cfg;
    if (!s->cfg.connections)
        s->cfg.connections = TRESTLE__REMOTE_CONNECTIONS;
    if (s->cfg.connections > TRESTLE__REMOTE_MAX_CONNECTIONS)
        s->cfg.connections = TRESTLE__REMOTE_MAX_CONNECTIONS;
    if (!s->cfg.attempts)
        s->cfg.attempts = TRESTLE__REMOTE_ATTEMPTS;
    if (!s->cfg.backoff_ms)
        s->cfg.backoff_ms = TRESTLE__REMOTE_BACKOFF_MS;
    if (!s->cfg.backoff_max_ms)
        s->cfg.backoff_max_ms = TRESTLE__REMOTE_BACKOFF_MAX_MS;
    if (s->cfg.backoff_max_ms < s->cfg.backoff_ms)
        s->cfg.backoff_max_ms = s->cfg.backoff_ms;
    if (!s->cfg.stall_s) {
        /* A network that pauses longer than a minute is rare; a test's is not. */
        const char *v = trestle__env("TRESTLE_REMOTE_STALL_SECONDS");
        long stall = v ? strtol(v, NULL, 10) : 0;
        s->cfg.stall_s = stall > 0 && stall <= 3600 ? (unsigned)stall : TRESTLE__REMOTE_STALL_S;
    }

    if (!trestle__is_url(url)) {
        rc = bad_url(url ? url : "", "not a gs://, s3://, https:// or http:// URL", err);
        goto fail;
    }
    if (strncmp(url, "gs://", 5) == 0 || strncmp(url, "s3://", 5) == 0) {
        s->kind = url[0] == 'g' ? TRESTLE__STORE_GCS : TRESTLE__STORE_S3;
        TR_FORWARD(parse_bucket_url(s, url, key, err));
    } else {
        s->kind = TRESTLE__STORE_HTTP;
        TR_FORWARD(parse_http_url(s, url, key, err));
    }
    *store = s;
    return TRESTLE_OK;
fail:
    free(*key);
    *key = NULL;
    trestle__store_free(s);
    return rc;
}

/* Overwrite a secret before it goes back to the allocator. */
static void free_secret(char *p)
{
    if (p) {
        volatile char *v = p;
        while (*v)
            *v++ = 0;
    }
    free(p);
}

void trestle__store_free(trestle__store *s)
{
    if (!s)
        return;
    free(s->display_root);
    free(s->endpoint);
    free_secret(s->query);
    free(s->bucket);
    free(s->region);
    free_secret(s->userpwd);
    free(s->sigv4);
    free_secret(s->auth_header);
    free_secret(s->token_header);
    free(s->ca_bundle);
    free(s);
}

int trestle__store_kind(const trestle__store *s) { return s->kind; }

const trestle__remote_config *trestle__store_config(const trestle__store *s) { return &s->cfg; }

const char *trestle__store_root(const trestle__store *s) { return s->display_root; }

bool trestle__store_has_query(const trestle__store *s) { return s->query != NULL; }

const char *trestle__store_auth_note(const trestle__store *s) { return s->auth_note; }

char *trestle__store_user_url(const trestle__store *s, const char *key)
{
    char *u = NULL;
    if (asprintf(&u, "%s/%s%s", s->display_root, key, s->query ? s->query : "") < 0)
        return NULL;
    return u;
}

char *trestle__store_display(const trestle__store *s, const char *key)
{
    char *d = NULL;
    if (asprintf(&d, "%s/%s%s", s->display_root, key, s->query ? "?<redacted>" : "") < 0)
        return NULL;
    return d;
}

/* Unreserved bytes and '/' stay; everything else is %XX (SigV4's rule for
 * an S3 key, which GCS's XML API accepts too). */
static char *encode_key(const char *key)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = strlen(key);
    char *out = malloc(3 * n + 1), *o = out;
    if (!out)
        return NULL;
    for (const unsigned char *p = (const unsigned char *)key; *p; p++) {
        if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
            *p == '-' || *p == '.' || *p == '_' || *p == '~' || *p == '/') {
            *o++ = (char)*p;
        } else {
            *o++ = '%';
            *o++ = hex[*p >> 4];
            *o++ = hex[*p & 15];
        }
    }
    *o = '\0';
    return out;
}

char *trestle__store_request_url(const trestle__store *s, const char *key)
{
    char *enc = s->encode_keys ? encode_key(key) : strdup(key), *u = NULL;
    if (!enc)
        return NULL;
    /* The empty key is the bucket itself (a listing), with no '/' after it. */
    if (asprintf(&u, "%s%s%s%s", s->endpoint, *enc ? "/" : "", enc, s->query ? s->query : "") < 0)
        u = NULL;
    free(enc);
    return u;
}
