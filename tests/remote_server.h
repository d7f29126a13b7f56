/*
 * remote_server.h - a real nginx (Debian's nginx-light) on 127.0.0.1 for
 * the remote-checkpoint suites: started by the test with a config the
 * test writes (HTTP, and HTTPS with HTTP/2 and a self-signed certificate
 * made on the spot), stopped by its PID, and killed with the test process
 * should that die first. Its access log records what every request asked
 * for and got, one line each, so tests count requests, bytes and retries
 * exactly.
 */
#ifndef TRESTLE_REMOTE_SERVER_H
#define TRESTLE_REMOTE_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "trestle.h"

typedef struct tu_nginx {
    pid_t pid;          /* the master process */
    char *dir;          /* scratch: config, logs, certificate (removed by stop) */
    const char *root;   /* the document root (the caller's) */
    int port;           /* plain HTTP */
    int tls_port;       /* HTTPS (HTTP/2 offered), or 0 */
    char *ca_file;      /* the self-signed certificate to trust (CURL_CA_BUNDLE), or NULL */
    char *base;         /* "http://127.0.0.1:PORT" */
    char *tls_base;     /* "https://127.0.0.1:TLS_PORT", or NULL */
} tu_nginx;

/*
 * Start nginx serving `root` (a directory) on a free port of 127.0.0.1,
 * and with `tls` on a second port over HTTPS. `extra` is inserted into the
 * server block (locations that inject faults, headers). Skips the test
 * (tu_missing) when nginx or openssl is not installed; fails it when
 * nginx does not come up within 10 s, with its error log.
 *
 * Access-log lines are:
 *   METHOD URI "ARGS" STATUS BODY_BYTES "RANGE" PROTOCOL "AUTHORIZATION"
 *   "X-AMZ-DATE" "X-AMZ-CONTENT-SHA256" "X-AMZ-SECURITY-TOKEN" "IF-MATCH" "HOST"
 *   "X-AMZ-CHECKSUM-MODE" CONNECTION
 * (nginx writes a '"' inside a value as \x22).
 */
void tu_nginx_start(tu_nginx *n, const char *root, bool tls, const char *extra);

/* Stop it (SIGTERM to the master, then wait) and remove its scratch. */
void tu_nginx_stop(tu_nginx *n);

/* The access log so far (malloc'd, NUL-terminated; "" when empty). nginx
 * writes each line when its request ends. */
char *tu_nginx_log(const tu_nginx *n);

/* Wait until the access log has not grown for 100 ms (3 s at most): nginx
 * writes a request's line after sending its answer, so a client can have
 * its answer before the line is there. Call before counting. */
void tu_nginx_settle(const tu_nginx *n);

/* Lines of the log with `needle` in them. */
size_t tu_nginx_count(const tu_nginx *n, const char *needle);

/* How many distinct connections (the last field) the lines with `needle` came on. */
size_t tu_nginx_connections(const tu_nginx *n, const char *needle);

/* The most requests answered with `status` that began within `window_s`
 * seconds of one another, from a second log of each request's end ($msec)
 * and duration ($request_time), to the millisecond: with requests paced to
 * last longer than the window, how many a client had in flight at once. */
size_t tu_nginx_most_started_within(const tu_nginx *n, int status, double window_s);

/* The body bytes (the fifth field) of the lines with `needle` in them. */
uint64_t tu_nginx_bytes(const tu_nginx *n, const char *needle);

/* The CRC32C of a file's bytes as GCS's x-goog-hash spells it:
 * "crc32c=" + base64 of the big-endian value, into buf (>= 20 bytes). */
void tu_goog_hash(const char *path, char *buf, size_t cap);

/* ---- SigV4 checked by an independent signer ---- */

/* Skip the test (tu_missing) unless Debian's python3-botocore imports. */
void tu_need_botocore(void);

/* Sign every SigV4 request of n's access log again with botocore
 * (tests/sigv4_check.py) under these credentials (token "" for none):
 * the script's exit status, its stdout in *out (malloc'd). */
int tu_sigv4_check(const tu_nginx *n, const char *key, const char *secret, const char *token,
                   const char *region, char **out);

/* ---- what the remote suites serve ---- */

#define TU_REMOTE_SHARDS 4
#define TU_REMOTE_BIG_ROWS 1200 /* "big/kernel" is [1200, 1024] float: 4.7 MiB */

/*
 * The remote suites' checkpoint at ROOT/REL/ckpt (prefix returned,
 * malloc'd; REL's folders are made): every fixed-size dtype "dt/NAME"
 * [7, 300 + dtype] on shard dtype % 4, "big/kernel" [1200, 1024] float on
 * shard 1, the partitioned variable "part/emb" [50, 8] float stored as
 * rows 0-16, 17-33, 34-49 on shards 0, 2, 3, and the strings "vocab" on
 * shard 3. Bytes from tu_fill_random.
 */
char *tu_remote_model(const char *root, const char *rel);

/*
 * Restore the model from `local` (a path) and from `url` with the same
 * ops: every tensor whole, plus rows 10-39 of "part/emb" and rows 100-899
 * of "big/kernel" as slices; assert that every op's bytes are equal. The
 * URL's open options `oo` (may be NULL) and restore chunk `chunk` (0: the
 * default); *st (may be NULL) receives the remote restore's stats.
 */
void tu_remote_compare(const char *local, const char *url, const trestle_open_options *oo,
                       uint64_t chunk, trestle_stats *st);

#endif /* TRESTLE_REMOTE_SERVER_H */
