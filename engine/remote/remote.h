/*
 * remote.h - objects in remote stores (gs://, s3://, https://, http://),
 * fetched with libcurl's multi interface: the layer under engine/format/
 * (which reads an index, a state file and stats shards through it) and
 * engine/restore/ (whose remote reader streams shard ranges through it).
 * It may use engine/common/ only.
 *
 * Three parts:
 *   - a store (remote_url.c, remote_auth.c): where a URL's objects live
 *     and how to sign a request for them, parsed once and immutable, so
 *     any number of threads may use one;
 *   - a fetcher (remote_fetch.c, remote_xfer.c): one thread driving a curl
 *     multi handle with up to N transfers at once, each a HEAD, a ranged
 *     GET into a caller's buffer, or a whole-object GET, retried with
 *     jittered exponential backoff on what object stores answer under load
 *     (5xx, 429, 408, resets, timeouts, short bodies), pinned to the
 *     object's validators (ETag, GCS generation) so that an object
 *     replaced mid-restore fails rather than mixing two versions;
 *   - synchronous helpers over a fetcher (remote_sync.c).
 *
 * Secrets (query strings of presigned URLs, user:password, tokens, keys)
 * never appear in any message: every URL a message names is a "display"
 * URL, the store's root and the object's key, with the query left out
 * (`?<redacted>` marks that one was used) and userinfo dropped.
 */
#ifndef TRESTLE_REMOTE_H
#define TRESTLE_REMOTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "trestle.h"

#define TRESTLE__REMOTE_CONNECTIONS 32    /* default parallel transfers: ~50 MB/s each on S3 */
#define TRESTLE__REMOTE_MAX_CONNECTIONS 1024
#define TRESTLE__REMOTE_ATTEMPTS 8        /* default tries per request, the first included */
#define TRESTLE__REMOTE_BACKOFF_MS 200    /* default first retry delay (jittered) */
#define TRESTLE__REMOTE_BACKOFF_MAX_MS 10000 /* default longest retry delay */
#define TRESTLE__REMOTE_STALL_S 60           /* default: no byte this long is a timeout */

/* How hard to try; zeros mean the defaults above. */
typedef struct trestle__remote_config {
    unsigned connections;    /* transfers in flight at most */
    unsigned attempts;       /* tries per request, first included */
    unsigned backoff_ms;     /* the first retry waits between half and all of this */
    unsigned backoff_max_ms; /* no retry waits longer */
    unsigned stall_s;        /* no byte for this long: a timeout, retried (default:
                                TRESTLE_REMOTE_STALL_SECONDS, else 60) */
} trestle__remote_config;

/* Store kinds, by URL scheme. */
enum trestle__store_kind {
    TRESTLE__STORE_HTTP = 0, /* http:// or https:// as given */
    TRESTLE__STORE_S3 = 1,   /* s3://BUCKET/KEY */
    TRESTLE__STORE_GCS = 2   /* gs://BUCKET/KEY */
};

/* ---- the store: where objects live and how to ask for them ---- */

typedef struct trestle__store trestle__store;

/* 1 when `path` starts with gs://, s3://, http:// or https://. */
bool trestle__is_url(const char *path);

/*
 * Parse `url` and gather its credentials (remote_auth.c: AWS_* variables
 * and ~/.aws files for s3://, GOOGLE_OAUTH_ACCESS_TOKEN or the metadata
 * server for gs://, TRESTLE_HTTP_BEARER_TOKEN for http(s)://). *store is
 * shared read-only afterwards; *key (malloc'd) is the object key the URL
 * names inside it, without a leading '/', possibly "". TRESTLE_E_INVALID_ARG
 * for a URL that does not parse (the message shows it redacted),
 * TRESTLE_E_IO when credentials cannot be had, TRESTLE_E_NOMEM.
 */
int trestle__store_open(const char *url, const trestle__remote_config *cfg,
                        trestle__store **store, char **key, trestle_error *err);
void trestle__store_free(trestle__store *s);

/* The store's kind (trestle__store_kind) and its config (defaults filled). */
int trestle__store_kind(const trestle__store *s);
const trestle__remote_config *trestle__store_config(const trestle__store *s);

/* The root every key hangs from, as the user wrote it, without userinfo:
 * "gs://bucket", "s3://bucket", "https://host:8443". */
const char *trestle__store_root(const trestle__store *s);

/* 1 when the URL carried a query (a presigned URL's signature, a token). */
bool trestle__store_has_query(const trestle__store *s);

/* Where the credentials came from, by name only ("AWS_ACCESS_KEY_ID"). */
const char *trestle__store_auth_note(const trestle__store *s);

/* The URL of `key` as the user could give it again (malloc'd): the root,
 * the key and the URL's query. Holds what the user's URL held, so it is
 * for handing back to the user, never for a message. */
char *trestle__store_user_url(const trestle__store *s, const char *key);

/* The display URL of `key` (malloc'd; NULL out of memory): the root as the
 * user wrote it ("gs://bucket", "https://host:8443") + "/" + key, plus
 * "?<redacted>" when the URL carried a query. Never holds a secret. */
char *trestle__store_display(const trestle__store *s, const char *key);

/* The request URL of `key` (malloc'd): endpoint, bucket, percent-encoded
 * key and the URL's query. Holds secrets of presigned URLs: never print it. */
char *trestle__store_request_url(const trestle__store *s, const char *key);

/* "s3://b/k?X-Amz-Signature=..." -> "s3://b/k?<redacted>" into buf: what a
 * message may show of a URL that did not even parse. */
void trestle__url_redact(const char *url, char *buf, size_t cap);

/* ---- objects and transfers ---- */

/* One object, as a HEAD or a whole GET found it; its validators pin later
 * range requests to this version. */
typedef struct trestle__object {
    char *key;              /* key in the store (owned) */
    char *display;          /* display URL (owned): what messages name */
    uint64_t size;          /* Content-Length of the whole object */
    char etag[160];         /* ETag as sent (quotes kept), or "" */
    char last_modified[64]; /* Last-Modified, used when there is no ETag, or "" */
    int64_t generation;     /* GCS x-goog-generation, or -1 */
    uint32_t crc32c;        /* the store's whole-object CRC32C, when has_crc32c */
    bool has_crc32c;
    char crc_source[32];    /* the header it came from: "x-goog-hash", "x-amz-checksum-crc32c" */
    int code;               /* how the HEAD or whole GET ended: TRESTLE_OK, _NOT_FOUND, ... */
    int http_status;        /* its last HTTP status, or 0 when none came */
    char why[400];          /* when code != OK: what failed, without the URL */
} trestle__object;

/* Free what an object owns (not the struct). */
void trestle__object_clear(trestle__object *o);

/* What a transfer does. */
enum trestle__xfer_kind {
    TRESTLE__XFER_HEAD = 0,  /* fill the object's size and validators */
    TRESTLE__XFER_RANGE = 1, /* GET [offset, offset + length) into buf, exactly */
    TRESTLE__XFER_WHOLE = 2  /* GET the whole object into a growing buffer */
};

/* One request, retried until it succeeds or the attempts run out. */
typedef struct trestle__xfer {
    /* Set by the caller. */
    int kind;                  /* trestle__xfer_kind */
    trestle__object *obj;      /* HEAD/WHOLE: filled in; RANGE: read (validators pinned) */
    uint64_t offset, length;   /* RANGE: the bytes (length > 0) */
    uint8_t *buf;              /* RANGE: length bytes of destination */
    uint64_t max_bytes;        /* WHOLE: larger objects fail with TRESTLE_E_LIMIT */
    const char *limit;         /* WHOLE: why, for that message */
    bool want_crc;             /* RANGE: compute crc of the bytes received */
    const char *query;         /* WHOLE: "?..." appended to the URL (a listing), or NULL */
    void *user;                /* caller's tag */
    /* Set by the fetcher once the transfer is handed back. */
    int status;                /* TRESTLE_OK or the code it failed with */
    trestle_error err;         /* the failure: display URL, range, status, attempts */
    unsigned attempts;         /* tries made */
    uint32_t crc;              /* RANGE with want_crc: CRC32C of the range */
    uint8_t *data;             /* WHOLE: the bytes (malloc'd, NUL after them; caller frees) */
    size_t data_len;
    /* The fetcher's own. */
    struct trestle__xfer_state *st;
    struct trestle__xfer *next;
} trestle__xfer;

/* What a fetcher did, for the stats. */
typedef struct trestle__remote_counts {
    uint64_t requests;      /* HTTP requests started, retries included */
    uint64_t retries;       /* of which retries */
    uint64_t bytes_fetched; /* body bytes received, retried and wasted ones included */
} trestle__remote_counts;

typedef struct trestle__fetcher trestle__fetcher;

/*
 * Start a fetcher on store `s` (which must outlive it): a thread and a
 * curl multi handle with up to `connections` transfers at once (0: the
 * store's config). TRESTLE_E_NOMEM, TRESTLE_E_IO (curl refused to start).
 */
int trestle__fetcher_open(const trestle__store *s, unsigned connections,
                          trestle__fetcher **out, trestle_error *err);

/* Queue x (its caller fields set, the rest zeroed). From one thread at a
 * time. x must stay alive until reaped or until close. */
void trestle__fetcher_submit(trestle__fetcher *f, trestle__xfer *x);

/* Hand back up to `max` finished transfers (succeeded or failed), waiting
 * up to timeout_ms for the first; the count. */
unsigned trestle__fetcher_reap(trestle__fetcher *f, trestle__xfer **done, unsigned max,
                               int timeout_ms);

/* The counts so far. */
void trestle__fetcher_counts(trestle__fetcher *f, trestle__remote_counts *out);

/* Abort whatever is in flight or queued (never handed back), stop the
 * thread and free the fetcher. NULL is fine. */
void trestle__fetcher_close(trestle__fetcher *f);

/* ---- synchronous helpers (remote_sync.c) ---- */

/* Run n transfers on a fresh fetcher with up to `connections` at once and
 * wait for all. Each keeps its own status; counts added to *counts when
 * not NULL. TRESTLE_OK, or the fetcher's own failure to start. */
int trestle__fetch_all(const trestle__store *s, trestle__xfer *xs, size_t n,
                       unsigned connections, trestle__remote_counts *counts,
                       trestle_error *err);

/*
 * GET the whole object `key` (at most max_bytes, else TRESTLE_E_LIMIT with
 * `limit` as the reason) into *data (malloc'd, NUL-terminated) and *len;
 * `obj` (may be NULL) receives its size and validators. A missing object
 * is TRESTLE_E_NOT_FOUND naming its display URL.
 */
int trestle__remote_get(const trestle__store *s, const char *key, uint64_t max_bytes,
                        const char *limit, uint8_t **data, size_t *len, trestle__object *obj,
                        trestle_error *err);

/* GET exactly [offset, offset + n) of `obj` into buf, pinned to its
 * validators. The error names the display URL, the range, the HTTP status
 * and the attempts. */
int trestle__remote_read(const trestle__store *s, const trestle__object *obj, uint64_t offset,
                         void *buf, uint64_t n, trestle_error *err);

/* List the keys under `prefix` that end in `suffix`, one level deep
 * (S3 ListObjectsV2 and GCS's XML API with delimiter '/'): *keys (malloc'd
 * array of malloc'd strings) and *n. TRESTLE_E_UNSUPPORTED for http(s)
 * stores, which cannot list. */
int trestle__remote_list(const trestle__store *s, const char *prefix, const char *suffix,
                         char ***keys, size_t *n, trestle_error *err);

#endif /* TRESTLE_REMOTE_H */
