/*
 * remote_sync.c - the synchronous side of engine/remote/ (remote.h): run a
 * set of transfers to completion (the HEADs of a checkpoint's shards, all
 * at once), GET one small object whole (an index, a state file, a graph),
 * GET one range (a tensor read outside a restore), and list the keys
 * under a prefix where the store can list (s3://, gs://).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "remote_listing.h"
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
        if (rc == TRESTLE_OK && trestle__listing_keys(xml, suffix, keys, n) != TRESTLE_OK)
            rc = trestle__error_simple(err, TRESTLE_E_NOMEM, "out of memory");
        free(token);
        token = rc == TRESTLE_OK ? trestle__listing_token(xml) : NULL;
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
