/*
 * remote_sync.c - the synchronous side of engine/remote/ (remote.h): run a
 * set of transfers to completion (the HEADs of a checkpoint's shards, all
 * at once), GET one small object whole (an index, a state file, a graph),
 * GET one range (a tensor read outside a restore), and list the keys
 * under a prefix where the store can list (s3://, gs://).
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "remote_store.h"

#define REAP_MAX 64
#define LIST_MAX_BYTES (64u << 20) /* one page of a listing is at most 1000 keys */
#define LIST_MAX_PAGES 1000u       /* a million keys under one folder */

void trestle__object_clear(trestle__object *o)
{
    free(o->key);
    free(o->display);
    o->key = o->display = NULL;
}

int trestle__fetch_all(const trestle__store *s, trestle__xfer *xs, size_t n,
                       unsigned connections, trestle__remote_counts *counts,
                       trestle_error *err)
{
    trestle__fetcher *f;
    int rc = trestle__fetcher_open(s, connections, &f, err);
    if (rc != TRESTLE_OK)
        return rc;
    for (size_t i = 0; i < n; i++)
        trestle__fetcher_submit(f, &xs[i]);
    for (size_t left = n; left > 0;) {
        trestle__xfer *done[REAP_MAX];
        left -= trestle__fetcher_reap(f, done, REAP_MAX, 1000);
    }
    if (counts) {
        trestle__remote_counts c;
        trestle__fetcher_counts(f, &c);
        counts->requests += c.requests;
        counts->retries += c.retries;
        counts->bytes_fetched += c.bytes_fetched;
    }
    trestle__fetcher_close(f);
    return TRESTLE_OK;
}

/* One transfer on its own; its status, its error copied to err. */
static int fetch_one(const trestle__store *s, trestle__xfer *x, trestle_error *err)
{
    int rc = trestle__fetch_all(s, x, 1, 1, NULL, err);
    if (rc != TRESTLE_OK)
        return rc;
    if (x->status != TRESTLE_OK && err)
        *err = x->err;
    return x->status;
}

int trestle__remote_get(const trestle__store *s, const char *key, uint64_t max_bytes,
                        const char *limit, uint8_t **data, size_t *len, trestle__object *obj,
                        trestle_error *err)
{
    trestle__object mine = { 0 };
    trestle__object *o = obj ? obj : &mine;
    trestle__xfer x = { .kind = TRESTLE__XFER_WHOLE, .obj = o, .max_bytes = max_bytes,
                        .limit = limit };
    *data = NULL;
    *len = 0;
    if (!o->key && !(o->key = strdup(key)))
        return trestle__error_simple(err, TRESTLE_E_NOMEM, "out of memory");
    if (!o->display && !(o->display = trestle__store_display(s, key))) {
        trestle__object_clear(&mine);
        return trestle__error_simple(err, TRESTLE_E_NOMEM, "out of memory");
    }
    int rc = fetch_one(s, &x, err);
    if (rc == TRESTLE_OK) {
        *data = x.data;
        *len = x.data_len;
    }
    trestle__object_clear(&mine);
    return rc;
}

int trestle__remote_read(const trestle__store *s, const trestle__object *obj, uint64_t offset,
                         void *buf, uint64_t n, trestle_error *err)
{
    trestle__xfer x = { .kind = TRESTLE__XFER_RANGE, .obj = (trestle__object *)obj,
                        .offset = offset, .length = n, .buf = buf };
    if (n == 0)
        return TRESTLE_OK;
    return fetch_one(s, &x, err);
}

/* ---- listing ---- */

/* Append "%XX"-encoded `v` (every byte but unreserved ones): SigV4's
 * canonical query, which the signature covers as sent. */
static void query_encode(char *out, size_t cap, const char *v)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = strlen(out);
    for (const unsigned char *p = (const unsigned char *)v; *p && n + 4 < cap; p++) {
        if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
            *p == '-' || *p == '.' || *p == '_' || *p == '~') {
            out[n++] = (char)*p;
        } else {
            out[n++] = '%';
            out[n++] = hex[*p >> 4];
            out[n++] = hex[*p & 15];
        }
    }
    out[n] = '\0';
}

/* One XML character reference, `p` just past its '&' and `e` its ';' (code
 * point N as "#N", or "#xH"), as UTF-8 into out; its length, or 0 when it
 * is no character (0, a surrogate, past U+10FFFF, not a number). */
static size_t char_ref(const char *p, const char *e, char *out)
{
    unsigned long c = 0;
    bool hex = p < e && (*p == 'x' || *p == 'X');
    p += hex;
    if (p == e)
        return 0;
    for (; p < e; p++) {
        int d = *p >= '0' && *p <= '9' ? *p - '0'
                : hex && *p >= 'a' && *p <= 'f' ? *p - 'a' + 10
                : hex && *p >= 'A' && *p <= 'F' ? *p - 'A' + 10 : -1;
        if (d < 0 || (c = c * (hex ? 16 : 10) + (unsigned long)d) > 0x10FFFF)
            return 0;
    }
    if (c == 0 || (c >= 0xD800 && c <= 0xDFFF))
        return 0;
    if (c < 0x80)
        return out[0] = (char)c, 1;
    if (c < 0x800)
        return out[0] = (char)(0xC0 | c >> 6), out[1] = (char)(0x80 | (c & 63)), 2;
    if (c < 0x10000)
        return out[0] = (char)(0xE0 | c >> 12), out[1] = (char)(0x80 | (c >> 6 & 63)),
               out[2] = (char)(0x80 | (c & 63)), 3;
    return out[0] = (char)(0xF0 | c >> 18), out[1] = (char)(0x80 | (c >> 12 & 63)),
           out[2] = (char)(0x80 | (c >> 6 & 63)), out[3] = (char)(0x80 | (c & 63)), 4;
}

/* The n bytes of XML character data at p as text (malloc'd, or NULL when
 * out of memory): S3 and GCS write '&', '<' and '>' in a listed key as
 * entities, and may write any character as a reference. A malformed one
 * stays as it is. No reference is longer as text than as XML. */
static char *xml_text(const char *p, size_t n)
{
    static const struct { const char *name; char c; } entity[] = {
        { "amp", '&' }, { "lt", '<' }, { "gt", '>' }, { "quot", '"' }, { "apos", '\'' },
    };
    char *out = malloc(n + 1), *w = out;
    const char *end = p + n;
    if (!out)
        return NULL;
    while (p < end) {
        const char *semi = *p == '&' ? memchr(p, ';', (size_t)(end - p)) : NULL;
        size_t len = 0, k;
        if (semi && p[1] == '#')
            len = char_ref(p + 2, semi, w);
        for (k = 0; semi && !len && k < sizeof entity / sizeof entity[0]; k++)
            if ((size_t)(semi - p - 1) == strlen(entity[k].name) &&
                memcmp(p + 1, entity[k].name, (size_t)(semi - p - 1)) == 0)
                len = 1, *w = entity[k].c;
        if (len) {
            w += len;
            p = semi + 1;
        } else {
            *w++ = *p++;
        }
    }
    *w = '\0';
    return out;
}

/* Each <Key>...</Key> of a ListObjects answer that ends in `suffix`, as
 * text (xml_text). */
static int keys_of(const char *xml, const char *suffix, char ***keys, size_t *n)
{
    size_t cap = 0, sl = strlen(suffix);
    for (const char *p = xml; (p = strstr(p, "<Key>")) != NULL;) {
        p += 5;
        const char *e = strstr(p, "</Key>");
        if (!e)
            break;
        char *key = xml_text(p, (size_t)(e - p));
        if (!key)
            return TRESTLE_E_NOMEM;
        size_t kl = strlen(key);
        if (kl >= sl && memcmp(key + kl - sl, suffix, sl) == 0) {
            if (*n == cap) {
                cap = cap ? 2 * cap : 8;
                char **grown = realloc(*keys, cap * sizeof *grown);
                if (!grown) {
                    free(key);
                    return TRESTLE_E_NOMEM;
                }
                *keys = grown;
            }
            (*keys)[(*n)++] = key;
        } else {
            free(key);
        }
        p = e;
    }
    return TRESTLE_OK;
}

/* The <NextContinuationToken> of a truncated ListObjectsV2 page (malloc'd),
 * or NULL on its last page. */
static char *next_token(const char *xml)
{
    const char *t = strstr(xml, "<IsTruncated>true</IsTruncated>") ?
                    strstr(xml, "<NextContinuationToken>") : NULL;
    if (!t)
        return NULL;
    t += strlen("<NextContinuationToken>");
    const char *e = strstr(t, "</NextContinuationToken>");
    return e && e > t ? xml_text(t, (size_t)(e - t)) : NULL;
}

int trestle__remote_list(const trestle__store *s, const char *prefix, const char *suffix,
                         char ***keys, size_t *n, trestle_error *err)
{
    trestle__object dir = { 0 };
    char *token = NULL;
    int rc = TRESTLE_OK;
    *keys = NULL;
    *n = 0;
    if (s->kind == TRESTLE__STORE_HTTP) {
        char *shown = trestle__store_display(s, prefix);
        rc = trestle__error_set(err, TRESTLE_E_UNSUPPORTED, 0, NULL, shown, -1, -1,
                                "cannot list %s: an http(s) server has no listing to ask; "
                                "give the checkpoint prefix (the path of its .index "
                                "without \".index\")", shown ? shown : prefix);
        free(shown);
        return rc;
    }
    dir.key = strdup("");
    dir.display = trestle__store_display(s, prefix);
    if (!dir.key || !dir.display) {
        trestle__object_clear(&dir);
        return trestle__error_simple(err, TRESTLE_E_NOMEM, "out of memory");
    }
    /* Page after page: a folder of a checkpoint with 1000 data shards has
     * its .index (after "data-" in key order) on the second. */
    for (unsigned page = 0; page < LIST_MAX_PAGES && rc == TRESTLE_OK; page++) {
        /* Parameters in SigV4's canonical (sorted) order, which is how they are sent;
         * each byte of the token and prefix takes at most 3 encoded. */
        char query[8192] = "?";
        if (3 * ((token ? strlen(token) : 0) + strlen(prefix)) + 64 > sizeof query) {
            rc = trestle__error_set(err, TRESTLE_E_IO, 0, NULL, dir.display, -1, -1,
                                    "listing %s: its continuation token or prefix is too long "
                                    "for a request", dir.display);
            break;
        }
        if (token) {
            strcat(query, "continuation-token=");
            query_encode(query, sizeof query, token);
            strcat(query, "&");
        }
        strcat(query, "delimiter=%2F&list-type=2&prefix=");
        query_encode(query, sizeof query, prefix);
        trestle__xfer x = { .kind = TRESTLE__XFER_WHOLE, .obj = &dir,
                            .max_bytes = LIST_MAX_BYTES,
                            .limit = "a listing page is at most 1000 keys", .query = query };
        rc = fetch_one(s, &x, err);
        const char *xml = x.data ? (const char *)x.data : ""; /* an empty answer lists nothing */
        if (rc == TRESTLE_OK && keys_of(xml, suffix, keys, n) != TRESTLE_OK)
            rc = trestle__error_simple(err, TRESTLE_E_NOMEM, "out of memory");
        free(token);
        token = rc == TRESTLE_OK ? next_token(xml) : NULL;
        free(x.data);
        if (!token)
            break;
    }
    if (rc == TRESTLE_OK && token)
        rc = trestle__error_set(err, TRESTLE_E_IO, 0, NULL, dir.display, -1, -1,
                                "listing %s: more than %u pages of keys", dir.display,
                                LIST_MAX_PAGES);
    free(token);
    if (rc != TRESTLE_OK) {
        for (size_t i = 0; i < *n; i++)
            free((*keys)[i]);
        free(*keys);
        *keys = NULL;
        *n = 0;
    }
    trestle__object_clear(&dir);
    return rc;
}
