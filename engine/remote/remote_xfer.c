/*
 * remote_xfer.c - one attempt of a transfer (remote_xfer.h): the request
 * (URL, range, signature, the validators that pin a version), the answer
 * taken apart as it arrives (status line, ETag, Content-Range, the
 * store's CRC32C, the body into the caller's buffer with its CRC32C), and
 * the verdict: done, retry, or failed with one message that names the
 * display URL, the range, the HTTP status and the attempts made.
 *
 * What is retried: 408, 429, every 5xx, connection failures and resets,
 * timeouts, and bodies shorter than asked. What is not: 4xx answers (404
 * names the object as missing), a server that ignores the range or sends
 * more than asked, and an object that is not the version first seen (a
 * 412 to If-Match, another ETag or generation, another size): that is an
 * error, never a mix of two versions.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "crc32c.h"
#include "error.h"
#include "remote_xfer.h"
#include "trestle_version.h"

#define ERROR_BODY_MAX 2048            /* enough of an error answer for its <Code> */
#define CONNECT_TIMEOUT_S 15L
#define RECV_BUFFER (512L << 10)       /* curl's receive buffer: fewer callbacks */
/* SHA-256 of an empty body: S3 wants the payload hash of every SigV4 request. */
#define EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

/* ---- parsing an answer ---- */

static int b64(int c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    return c == '+' ? 62 : c == '/' ? 63 : -1;
}

/* A big-endian CRC32C in base64 ("AAAAAA==", as GCS and S3 send it). */
static bool crc_from_base64(const char *p, size_t n, uint32_t *out)
{
    uint8_t b[6];
    if (n < 8 || p[6] != '=' || p[7] != '=')
        return false;
    for (int i = 0; i < 6; i++) {
        int v = b64((unsigned char)p[i]);
        if (v < 0)
            return false;
        b[i] = (uint8_t)v;
    }
    *out = (uint32_t)b[0] << 26 | (uint32_t)b[1] << 20 | (uint32_t)b[2] << 14 |
           (uint32_t)b[3] << 8 | (uint32_t)b[4] << 2 | (uint32_t)b[5] >> 4;
    return true;
}

static bool is_header(const char *line, size_t n, const char *name, const char **value,
                      size_t *vlen)
{
    size_t k = strlen(name);
    if (n <= k || line[k] != ':' || strncasecmp(line, name, k) != 0)
        return false;
    const char *v = line + k + 1, *e = line + n;
    while (v < e && (*v == ' ' || *v == '\t'))
        v++;
    while (e > v && (e[-1] == '\r' || e[-1] == '\n' || e[-1] == ' '))
        e--;
    *value = v;
    *vlen = (size_t)(e - v);
    return true;
}

static void copy_value(char *dst, size_t cap, const char *v, size_t n)
{
    snprintf(dst, cap, "%.*s", (int)(n < cap ? n : cap - 1), v);
}

static size_t on_header(char *line, size_t size, size_t nitems, void *user)
{
    trestle__xfer *x = user;
    struct trestle__xfer_state *st = x->st;
    size_t n = size * nitems;
    const char *v;
    size_t vn;

    if (n > 5 && strncmp(line, "HTTP/", 5) == 0) {
        /* A new answer (after a redirect): forget the last one's headers. */
        const char *sp = memchr(line, ' ', n);
        st->http_status = sp ? atoi(sp + 1) : 0;
        st->etag[0] = st->last_modified[0] = st->crc_source[0] = '\0';
        st->generation = -1;
        st->has_length = st->has_range = st->has_crc32c = st->crc_not_full = false;
    } else if (is_header(line, n, "ETag", &v, &vn)) {
        copy_value(st->etag, sizeof st->etag, v, vn);
    } else if (is_header(line, n, "Last-Modified", &v, &vn)) {
        copy_value(st->last_modified, sizeof st->last_modified, v, vn);
    } else if (is_header(line, n, "Content-Length", &v, &vn)) {
        st->has_length = sscanf(v, "%" SCNu64, &st->length) == 1;
    } else if (is_header(line, n, "Content-Range", &v, &vn)) {
        char total[32] = "";
        st->has_range = sscanf(v, "bytes %" SCNu64 "-%" SCNu64 "/%31s", &st->range_first,
                               &st->range_last, total) == 3;
        st->range_total = strtoull(total, NULL, 10);
    } else if (is_header(line, n, "x-goog-generation", &v, &vn)) {
        st->generation = strtoll(v, NULL, 10);
    } else if (is_header(line, n, "x-goog-hash", &v, &vn)) {
        /* "crc32c=AAAAAA==,md5=..." (one header or several). */
        for (const char *p = v; p < v + vn; p++)
            if ((size_t)(v + vn - p) >= 15 && strncmp(p, "crc32c=", 7) == 0 &&
                crc_from_base64(p + 7, 8, &st->crc32c)) {
                st->has_crc32c = true;
                snprintf(st->crc_source, sizeof st->crc_source, "x-goog-hash");
            }
    } else if (is_header(line, n, "x-amz-checksum-crc32c", &v, &vn)) {
        /* A composite checksum of parts ("...-3") is not the object's. */
        if (vn == 8 && crc_from_base64(v, vn, &st->crc32c)) {
            st->has_crc32c = true;
            snprintf(st->crc_source, sizeof st->crc_source, "x-amz-checksum-crc32c");
        }
    } else if (is_header(line, n, "x-amz-checksum-type", &v, &vn)) {
        /* A COMPOSITE CRC32C (of parts) is not the object's, whichever header came first. */
        if (!(vn == 11 && strncasecmp(v, "FULL_OBJECT", 11) == 0))
            st->crc_not_full = true;
    }
    return n;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *user)
{
    trestle__xfer *x = user;
    struct trestle__xfer_state *st = x->st;
    size_t n = size * nmemb;

    __atomic_add_fetch(st->fetched, n, __ATOMIC_RELAXED);
    if (st->http_status < 200 || st->http_status > 299) {
        size_t room = ERROR_BODY_MAX - st->body.len;
        if (room > 0)
            trestle__buf_append(&st->body, data, n < room ? n : room);
        return n;
    }
    if (x->kind == TRESTLE__XFER_RANGE) {
        if (n > x->length - st->got) {
            st->overflow = true;
            return 0; /* CURLE_WRITE_ERROR: more than the range */
        }
        memcpy(x->buf + st->got, data, n);
        if (x->want_crc)
            st->crc = trestle__crc32c_extend(st->crc, data, n);
    } else if (x->kind == TRESTLE__XFER_WHOLE) {
        if (st->grow.len + n > x->max_bytes) {
            st->overflow = true;
            return 0;
        }
        if (!trestle__buf_append(&st->grow, data, n))
            return 0;
    }
    st->got += n;
    return n;
}

/* ---- the request ---- */

static bool add_header(struct curl_slist **list, const char *line)
{
    struct curl_slist *l = curl_slist_append(*list, line);
    if (!l)
        return false;
    *list = l;
    return true;
}

int trestle__xfer_prepare(const trestle__store *s, trestle__xfer *x, CURL *easy)
{
    struct trestle__xfer_state *st = x->st;
    const trestle__object *o = x->obj;
    char *url = trestle__store_request_url(s, o->key);
    bool ok = url != NULL;
    if (ok && x->query) {
        char *q = NULL;
        if (asprintf(&q, "%s%s", url, x->query) < 0)
            q = NULL;
        free(url);
        ok = (url = q) != NULL;
    }

    st->easy = easy;
    st->http_status = 0;
    st->got = 0;
    st->overflow = false;
    st->crc = 0;
    st->grow.len = 0;
    st->body.len = 0;
    st->errbuf[0] = '\0';
    st->generation = -1;
    st->has_length = st->has_range = st->has_crc32c = st->crc_not_full = false;
    curl_slist_free_all(st->headers);
    st->headers = NULL;

    char line[256];
    if (s->auth_header)
        ok = ok && add_header(&st->headers, s->auth_header);
    if (s->token_header)
        ok = ok && add_header(&st->headers, s->token_header);
    if (s->sigv4)
        ok = ok && add_header(&st->headers, "x-amz-content-sha256: " EMPTY_SHA256);
    /* S3 reports a CRC32C only when asked; GCS always sends x-goog-hash. */
    if (s->sigv4 && s->kind == TRESTLE__STORE_S3 && x->kind == TRESTLE__XFER_HEAD)
        ok = ok && add_header(&st->headers, "x-amz-checksum-mode: ENABLED");
    if (x->kind == TRESTLE__XFER_RANGE && o->etag[0]) {
        snprintf(line, sizeof line, "If-Match: %s", o->etag);
        ok = ok && add_header(&st->headers, line);
    } else if (x->kind == TRESTLE__XFER_RANGE && o->last_modified[0]) {
        snprintf(line, sizeof line, "If-Unmodified-Since: %s", o->last_modified);
        ok = ok && add_header(&st->headers, line);
    }
    if (x->kind == TRESTLE__XFER_RANGE && o->generation >= 0) {
        snprintf(line, sizeof line, "x-goog-if-generation-match: %" PRId64, o->generation);
        ok = ok && add_header(&st->headers, line);
    }
    if (!ok) {
        free(url);
        x->status = trestle__error_simple(&x->err, TRESTLE_E_NOMEM, "out of memory");
        return x->status;
    }

    curl_easy_reset(easy);
    curl_easy_setopt(easy, CURLOPT_URL, url);
    free(url); /* libcurl keeps its own copy */
    curl_easy_setopt(easy, CURLOPT_PRIVATE, x);
    curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(easy, CURLOPT_USERAGENT, "trestle/" TRESTLE_VERSION_STRING);
    curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, st->errbuf);
    curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT, CONNECT_TIMEOUT_S);
    curl_easy_setopt(easy, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(easy, CURLOPT_LOW_SPEED_TIME, (long)s->cfg.stall_s);
    curl_easy_setopt(easy, CURLOPT_BUFFERSIZE, RECV_BUFFER);
    curl_easy_setopt(easy, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
    curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(easy, CURLOPT_MAXREDIRS, 5L);
    curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(easy, CURLOPT_HEADERDATA, x);
    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(easy, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(easy, CURLOPT_HTTPHEADER, st->headers);
    if (s->ca_bundle)
        curl_easy_setopt(easy, CURLOPT_CAINFO, s->ca_bundle);
    if (s->userpwd)
        curl_easy_setopt(easy, CURLOPT_USERPWD, s->userpwd);
    if (s->sigv4)
        curl_easy_setopt(easy, CURLOPT_AWS_SIGV4, s->sigv4);
    if (x->kind == TRESTLE__XFER_HEAD) {
        curl_easy_setopt(easy, CURLOPT_NOBODY, 1L);
    } else if (x->kind == TRESTLE__XFER_RANGE) {
        char range[64];
        snprintf(range, sizeof range, "%" PRIu64 "-%" PRIu64, x->offset,
                 x->offset + x->length - 1);
        curl_easy_setopt(easy, CURLOPT_RANGE, range);
    }
    return TRESTLE_OK;
}

/* ---- the verdict ---- */

static const char *reason(int status)
{
    switch (status) {
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 408: return "Request Timeout";
    case 412: return "Precondition Failed";
    case 416: return "Range Not Satisfiable";
    case 429: return "Too Many Requests";
    case 500: return "Internal Server Error";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return status >= 500 ? "Server Error" : status >= 400 ? "Client Error" : "";
    }
}

/* The text of <TAG>...</TAG> in an S3 or GCS XML error body, printable
 * ASCII only, into out. */
static void xml_field(const trestle__buf *body, const char *tag, char *out, size_t cap)
{
    char open[32], close[32];
    out[0] = '\0';
    if (!body->len)
        return;
    snprintf(open, sizeof open, "<%s>", tag);
    snprintf(close, sizeof close, "</%s>", tag);
    const char *text = memmem(body->data, body->len, open, strlen(open));
    if (!text)
        return;
    text += strlen(open);
    const char *end = memmem(text, body->len - (size_t)(text - (const char *)body->data), close,
                             strlen(close));
    size_t n = 0;
    for (const char *p = text; end && p < end && n + 1 < cap; p++)
        out[n++] = *p >= 32 && *p < 127 ? *p : '?';
    out[n] = '\0';
}

/* "HTTP 503 Service Unavailable (SlowDown: Please reduce your request rate.)" */
static void http_why(struct trestle__xfer_state *st, const char *extra)
{
    char code[64], msg[200];
    xml_field(&st->body, "Code", code, sizeof code);
    xml_field(&st->body, "Message", msg, sizeof msg);
    snprintf(st->why, sizeof st->why, "HTTP %d%s%s%s%s%s%s%s", st->http_status,
             *reason(st->http_status) ? " " : "", reason(st->http_status), code[0] ? " (" : "",
             code, msg[0] ? ": " : "", msg, code[0] ? ")" : "");
    if (extra)
        snprintf(st->why + strlen(st->why), sizeof st->why - strlen(st->why), "%s", extra);
}

static bool retryable_curl(CURLcode res)
{
    switch (res) {
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_PARTIAL_FILE:
    case CURLE_GOT_NOTHING:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_AGAIN:
        return true;
    default:
        return false;
    }
}

/* The final error: "GET URL bytes A-B: WHY (after N attempts)". */
static enum trestle__verdict fail(const trestle__store *s, trestle__xfer *x, int code,
                                  bool exhausted)
{
    const trestle__object *o = x->obj;
    char range[80] = "", tail[64] = "", hint[200] = "";
    const char *method = x->kind == TRESTLE__XFER_HEAD ? "HEAD" : "GET";
    if (x->kind == TRESTLE__XFER_RANGE)
        snprintf(range, sizeof range, " bytes %" PRIu64 "-%" PRIu64, x->offset,
                 x->offset + x->length - 1);
    if (exhausted)
        snprintf(tail, sizeof tail, ", after %u attempts", x->attempts);
    else if (x->attempts > 1)
        snprintf(tail, sizeof tail, " (attempt %u)", x->attempts);
    if (x->st->http_status == 401 || x->st->http_status == 403)
        snprintf(hint, sizeof hint, "; credentials used: %s", s->auth_note);
    trestle__error_set(&x->err, code, 0, NULL, o->display,
                       x->kind == TRESTLE__XFER_RANGE ? (int64_t)x->offset : -1,
                       x->kind == TRESTLE__XFER_RANGE ? (int64_t)x->length : -1,
                       "%s %s%s: %s%s%s", method, o->display, range, x->st->why, tail, hint);
    x->status = code;
    if (x->kind != TRESTLE__XFER_RANGE) { /* a range's object is shared: left alone */
        x->obj->code = code;
        x->obj->http_status = x->st->http_status;
    }
    return TRESTLE__XFER_FAILED;
}

/* Another version than the one pinned: fail, naming what differs. */
static bool changed(trestle__xfer *x)
{
    struct trestle__xfer_state *st = x->st;
    const trestle__object *o = x->obj;
    if (o->etag[0] && st->etag[0] && strcmp(o->etag, st->etag) != 0)
        snprintf(st->why, sizeof st->why, "the object changed during the restore (ETag %.70s, "
                 "was %.70s)", st->etag, o->etag);
    else if (o->generation >= 0 && st->generation >= 0 && o->generation != st->generation)
        snprintf(st->why, sizeof st->why, "the object changed during the restore (generation "
                 "%" PRId64 ", was %" PRId64 ")", st->generation, o->generation);
    else if (st->has_range && st->range_total && st->range_total != o->size)
        snprintf(st->why, sizeof st->why, "the object changed during the restore (%" PRIu64
                 " bytes, was %" PRIu64 ")", st->range_total, o->size);
    else
        return false;
    return true;
}

static void fill_object(trestle__xfer *x, uint64_t size)
{
    struct trestle__xfer_state *st = x->st;
    trestle__object *o = x->obj;
    o->size = size;
    snprintf(o->etag, sizeof o->etag, "%s", st->etag);
    snprintf(o->last_modified, sizeof o->last_modified, "%s", st->last_modified);
    o->generation = st->generation;
    o->has_crc32c = st->has_crc32c && !st->crc_not_full;
    o->crc32c = st->crc32c;
    snprintf(o->crc_source, sizeof o->crc_source, "%s", st->crc_source);
    o->code = TRESTLE_OK;
    o->http_status = st->http_status;
    o->why[0] = '\0';
}

static enum trestle__verdict judge_ok(const trestle__store *s, trestle__xfer *x, unsigned max)
{
    struct trestle__xfer_state *st = x->st;
    if (x->kind == TRESTLE__XFER_HEAD) {
        if (!st->has_length) {
            snprintf(st->why, sizeof st->why, "HTTP %d without a Content-Length", st->http_status);
            return fail(s, x, TRESTLE_E_IO, false);
        }
        fill_object(x, st->length);
        return TRESTLE__XFER_DONE;
    }
    if (x->kind == TRESTLE__XFER_WHOLE) {
        size_t n = st->grow.len;
        if (!trestle__buf_append(&st->grow, "", 1)) { /* callers may read it as text */
            x->status = trestle__error_simple(&x->err, TRESTLE_E_NOMEM, "out of memory");
            return TRESTLE__XFER_FAILED;
        }
        x->data = st->grow.data;
        x->data_len = n;
        st->grow.data = NULL;
        st->grow.len = st->grow.cap = 0;
        fill_object(x, x->data_len);
        return TRESTLE__XFER_DONE;
    }
    /* RANGE: exactly the bytes asked for, of the version pinned. */
    bool whole = st->http_status == 200 && x->offset == 0 && x->length == x->obj->size;
    if (changed(x))
        return fail(s, x, TRESTLE_E_IO, false);
    if (!whole && (st->http_status != 206 || !st->has_range)) {
        snprintf(st->why, sizeof st->why, "HTTP %d without a Content-Range: the server does not "
                 "serve byte ranges", st->http_status);
        return fail(s, x, TRESTLE_E_IO, false);
    }
    uint64_t total = st->has_range && st->range_total ? st->range_total : x->obj->size;
    if (total < x->offset + x->length) {
        snprintf(st->why, sizeof st->why, "the object ends at byte %" PRIu64 ", inside the range "
                 "(the index says its bytes go further: was it truncated?)", total);
        return fail(s, x, TRESTLE_E_SHORT_READ, false);
    }
    if (!whole && (st->range_first != x->offset || st->range_last != x->offset + x->length - 1)) {
        snprintf(st->why, sizeof st->why, "HTTP 206 with bytes %" PRIu64 "-%" PRIu64
                 " instead of the range asked for", st->range_first, st->range_last);
        return fail(s, x, TRESTLE_E_IO, false);
    }
    if (st->got < x->length) {
        snprintf(st->why, sizeof st->why, "short body: %" PRIu64 " of %" PRIu64 " bytes",
                 st->got, x->length);
        return x->attempts < max ? TRESTLE__XFER_RETRY : fail(s, x, TRESTLE_E_SHORT_READ, true);
    }
    x->crc = st->crc;
    return TRESTLE__XFER_DONE;
}

enum trestle__verdict trestle__xfer_judge(const trestle__store *s, trestle__xfer *x,
                                          CURLcode res, unsigned max)
{
    struct trestle__xfer_state *st = x->st;
    int status = st->http_status;

    curl_slist_free_all(st->headers);
    st->headers = NULL;
    st->easy = NULL;
    if (res == CURLE_WRITE_ERROR && st->overflow) {
        if (x->kind == TRESTLE__XFER_WHOLE) {
            snprintf(st->why, sizeof st->why, "larger than %" PRIu64 " bytes; %s", x->max_bytes,
                     x->limit ? x->limit : "too large");
            return fail(s, x, TRESTLE_E_LIMIT, false);
        }
        snprintf(st->why, sizeof st->why, "HTTP %d with more bytes than the range asked for",
                 status);
        return fail(s, x, TRESTLE_E_IO, false);
    }
    if (res != CURLE_OK) {
        if (res == CURLE_PARTIAL_FILE && x->kind == TRESTLE__XFER_RANGE)
            snprintf(st->why, sizeof st->why, "short body: %" PRIu64 " of %" PRIu64 " bytes (%s)",
                     st->got, x->length, st->errbuf[0] ? st->errbuf : curl_easy_strerror(res));
        else
            snprintf(st->why, sizeof st->why, "%s", st->errbuf[0] ? st->errbuf
                                                                  : curl_easy_strerror(res));
        if (!retryable_curl(res))
            return fail(s, x, TRESTLE_E_IO, false);
        return x->attempts < max ? TRESTLE__XFER_RETRY
                                 : fail(s, x, res == CURLE_PARTIAL_FILE ? TRESTLE_E_SHORT_READ
                                                                        : TRESTLE_E_IO, true);
    }
    if (status >= 200 && status <= 299)
        return judge_ok(s, x, max);
    if (status == 412 || status == 416) {
        http_why(st, x->kind == TRESTLE__XFER_RANGE
                         ? ": the object changed during the restore" : NULL);
        return fail(s, x, TRESTLE_E_IO, false);
    }
    http_why(st, NULL);
    if (status == 408 || status == 429 || status >= 500)
        return x->attempts < max ? TRESTLE__XFER_RETRY : fail(s, x, TRESTLE_E_IO, true);
    return fail(s, x, status == 404 ? TRESTLE_E_NOT_FOUND : TRESTLE_E_IO, false);
}

void trestle__xfer_state_free(trestle__xfer *x)
{
    struct trestle__xfer_state *st = x->st;
    if (!st)
        return;
    curl_slist_free_all(st->headers);
    trestle__buf_free(&st->grow);
    trestle__buf_free(&st->body);
    free(st);
    x->st = NULL;
}
