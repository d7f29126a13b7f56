/*
 * remote_xfer.h - one attempt of one transfer (engine/remote/remote_xfer.c):
 * the curl easy handle set up for it, the headers and bytes it receives,
 * and the verdict once curl is done with it. The fetcher
 * (remote_fetch.c) decides when attempts run; this file decides what an
 * answer means.
 */
#ifndef TRESTLE_REMOTE_XFER_H
#define TRESTLE_REMOTE_XFER_H

#include <curl/curl.h>

#include "buf.h"
#include "remote_store.h"

/* What one attempt's answer means. */
enum trestle__verdict {
    TRESTLE__XFER_DONE = 0,   /* the transfer succeeded: hand it back */
    TRESTLE__XFER_RETRY = 1,  /* a fault stores are expected to have: try again later */
    TRESTLE__XFER_FAILED = 2  /* no point trying again (x->status and x->err say why) */
};

/* The fetcher's state of one transfer, for all its attempts. */
struct trestle__xfer_state {
    CURL *easy;                 /* while an attempt runs */
    struct curl_slist *headers; /* this attempt's request headers */
    int64_t not_before_ns;      /* a retry waits until then (CLOCK_MONOTONIC) */
    uint64_t *fetched;          /* the fetcher's byte counter (atomic adds) */
    /* This attempt's answer. */
    int http_status;            /* of the last status line, 0 before one came */
    uint64_t got;               /* body bytes taken */
    bool overflow;              /* the server sent more than was asked */
    uint32_t crc;               /* running CRC32C of the range (want_crc) */
    trestle__buf grow;          /* WHOLE: the body so far */
    trestle__buf body;          /* an error answer's body, at most 2 KiB */
    char etag[160], last_modified[64];
    int64_t generation;         /* x-goog-generation, or -1 */
    bool has_length;
    uint64_t length;            /* Content-Length */
    bool has_range;
    uint64_t range_first, range_last, range_total; /* Content-Range (total 0: '*') */
    bool has_crc32c;
    bool crc_not_full;          /* x-amz-checksum-type other than FULL_OBJECT, in any order */
    uint32_t crc32c;
    char crc_source[32];
    char errbuf[CURL_ERROR_SIZE];
    /* The last failure, for the final message. */
    char why[400];
};

/* Set up `easy` for x's next attempt (x->st allocated and zeroed before the
 * first). TRESTLE_OK, or TRESTLE_E_NOMEM with x failed. */
int trestle__xfer_prepare(const trestle__store *s, trestle__xfer *x, CURL *easy);

/* Judge the attempt curl finished with `res`; on FAILED, x->status and
 * x->err are final (they name the display URL, the range, the HTTP status
 * and the attempts, `max_attempts` being the bound). Frees the attempt's
 * headers. */
enum trestle__verdict trestle__xfer_judge(const trestle__store *s, trestle__xfer *x,
                                          CURLcode res, unsigned max_attempts);

/* Free x->st and whatever it holds (not the easy handle). */
void trestle__xfer_state_free(trestle__xfer *x);

#endif /* TRESTLE_REMOTE_XFER_H */
