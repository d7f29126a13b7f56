/*
 * resident.h - what engine/resident/'s files share: keeping checkpoints
 * resident on a per-host server (include/trestle_serve.h).
 *
 * The folder holds both sides of the socket. The server (resident_server.c,
 * resident_entries.c) allocates memory, publishes entries, hands out
 * read-only descriptors and counts references; it never opens a checkpoint.
 * The clients (resident_preload.c, resident_attach.c, resident_admin.c) plan
 * and restore with the public API, and describe what they planned the same
 * way (resident_identity.c, resident_manifest.c), so that a preload's entry
 * and an attach's request meet on one key and the attach can check what it
 * maps against what it would have restored itself. Messages are
 * engine/wire/'s; memory is engine/memory/'s.
 */
#ifndef TRESTLE_RESIDENT_H
#define TRESTLE_RESIDENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "options.h"
#include "trestle_serve.h"
#include "wire.h"

#define TRESTLE__RESIDENT_ALIGN 256        /* every tensor of an entry starts on this boundary */
#define TRESTLE__RESIDENT_TIMEOUT_MS 30000 /* a client waits this long for any one reply */
#define TRESTLE__SOCKET_MAX 108            /* sizeof sockaddr_un.sun_path */

/* Sizes of each options struct's first release (engine/common/options.h's rule). */
#define TRESTLE__SERVER_OPTIONS_FIRST_SIZE sizeof(trestle_server_options)   /* 0.2 */
#define TRESTLE__PRELOAD_OPTIONS_FIRST_SIZE sizeof(trestle_preload_options) /* 0.2 */
#define TRESTLE__ATTACH_OPTIONS_FIRST_SIZE sizeof(trestle_attach_options)   /* 0.2 */
TRESTLE__ENDS_IN_RESERVED(trestle_server_options);
TRESTLE__ENDS_IN_RESERVED(trestle_preload_options);
TRESTLE__ENDS_IN_RESERVED(trestle_attach_options);

/* ---- what a client planned (resident_identity.c) ---- */

/*
 * A client's plan of a selection: `c` planned with `ops` (copied, every
 * destination TRESTLE_DEST_ALLOCATE), and what the server knows it by.
 */
typedef struct trestle__selection {
    trestle_plan *plan;        /* owned */
    const trestle_op *ops;     /* the caller's ops (NULL: every tensor), for slice specs */
    size_t n;
    trestle__wire_key key;     /* identity, digest and tier (owned) */
    size_t kept;               /* ops not skipped: the entry's tensors */
    uint64_t *offsets;         /* plan op count offsets in the entry (skipped: unused) */
    uint64_t bytes;            /* end of the last tensor: the memory the entry needs */
    uint64_t data_bytes;       /* the kept ops' bytes */
    char unidentified[256];    /* why the files' version could not be taken ("" when it
                                  was: key.id is then set) */
} trestle__selection;

/* Plan `ops` of `c` and key it for tier `tier` on `device` (-1: host).
 * Any code of trestle_plan_create(), TRESTLE_E_NOMEM. A version that cannot
 * be taken is no failure here: `unidentified` says why, for the caller. */
int trestle__selection_make(const trestle_checkpoint *c, const trestle_op *ops, size_t n,
                            const trestle_plan_options *popt, int tier, int device,
                            trestle__selection *out, trestle_error *err);
void trestle__selection_free(trestle__selection *s);

/* The slice spec of plan op `i` as the caller gave it ("" when whole). */
const char *trestle__selection_spec(const trestle__selection *s, size_t i);

/* The version of `c`'s files (absolute prefix, index size, CRC and mtime,
 * each shard's size and mtime) into `out` (owned). */
int trestle__identity_of(const trestle_checkpoint *c, trestle__wire_identity *out,
                         trestle_error *err);

/* Whether an identity's path is a URL (gs://, s3://, http(s)://): a checkpoint
 * in an object store, versioned by its objects' validators (ETag, GCS
 * generation), which only a process that opens it can see. */
bool trestle__identity_is_url(const char *path);

/* The version of the files at `prefix` now, from stat() alone (the index's
 * CRC is not read: `crc` is used): for the server's "changed" flag. false
 * when a file is gone. */
bool trestle__identity_restat(const trestle__wire_identity *id, trestle__wire_identity *now);

/* What differs between two versions of one checkpoint, first difference
 * first: "its data file P.data-00001-of-00003 changed (resident: N bytes,
 * modified T; on disk now: ...)". */
void trestle__identity_diff(const trestle__wire_identity *was, const trestle__wire_identity *now,
                            char *buf, size_t cap);

/* ---- manifests (resident_manifest.c) ---- */

/* The manifest of a selection restored by `fill` (one op per kept op,
 * this entry's from op `first` on: a fill of several entries holds a
 * block of ops per entry) into `base`: one tensor per kept op; CRCs stored
 * (a whole, unconverted, plain tensor: the index's, which the restore
 * checked) or computed from the landed bytes, read at `base` (host memory)
 * or, with `base` NULL, copied back from the device (trestle_plan_read_op
 * of `fill`). */
int trestle__manifest_build(const trestle_checkpoint *c, const trestle__selection *s,
                            const uint8_t *base, const trestle_plan *fill, size_t first,
                            trestle__wire_manifest *out, trestle_error *err);

/*
 * Check an entry's manifest against this process's own selection of its
 * own checkpoint: every tensor's name, key, slice, dtypes, shape and bytes;
 * offsets inside `region_bytes`, aligned, in order, not overlapping; a
 * stored CRC equal to this index's. TRESTLE_OK or TRESTLE_E_CORRUPT naming
 * the tensor and what differs, prefixed with `what`.
 */
int trestle__manifest_check(const trestle_checkpoint *c, const trestle__selection *s,
                            const trestle__wire_manifest *m, uint64_t region_bytes,
                            const char *what, trestle_error *err);

/* Recompute each tensor's CRC32C from `base` and compare (attach verify). */
int trestle__manifest_verify(const trestle__wire_manifest *m, const uint8_t *base,
                             const char *what, trestle_error *err);

/* ---- talking to a server (resident_client.c) ---- */

/* The socket path: `given`, or the default. TRESTLE_E_INVALID_ARG when too long. */
int trestle__socket_resolve(const char *given, char *out, size_t cap, trestle_error *err);

/*
 * Connect to the server at `path`: the socket, or TRESTLE_E_SERVER whose
 * message says there is no server (ENOENT, ECONNREFUSED) or that this
 * process may not use it (EACCES), naming the socket.
 */
int trestle__resident_connect(const char *path, int *out, trestle_error *err);

/*
 * Send `req` on `sock` and receive the reply into `reply` (descriptors in
 * fds[0..*nfds)). An ERROR reply becomes its code and text, prefixed with
 * "server PATH"; a lost or garbled connection TRESTLE_E_SERVER. `reply`
 * must be freed (trestle__wire_msg_free) in every case.
 */
int trestle__resident_call(int sock, const char *path, const trestle__wire_msg *req,
                           int timeout_ms, trestle__wire_msg *reply, int *fds, unsigned *nfds,
                           trestle_error *err);

/* ---- the server (resident_server.c, resident_entries.c) ---- */

struct trestle__entry;
struct trestle__conn;

/* Append "[text]" as one log line through the server's callback. */
void trestle__server_log(const trestle_server *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Handle one decoded request of `conn` (resident_entries.c): queue the
 * reply. Returns false when the connection must close after the reply. */
bool trestle__server_request(trestle_server *s, struct trestle__conn *conn,
                             const trestle__wire_msg *req);

/* A connection is going away: release its references, drop its unpublished entry. */
void trestle__server_conn_gone(trestle_server *s, struct trestle__conn *conn);

/* Queue `m` (with `nfds` descriptors, which stay the caller's) on `conn`:
 * false when it cannot be encoded or queued (the connection then closes). */
bool trestle__conn_send(trestle_server *s, struct trestle__conn *conn, const trestle__wire_msg *m,
                        const int *fds, unsigned nfds);

/* Queue an ERROR reply with `code` and a printf message. */
bool trestle__conn_error(trestle_server *s, struct trestle__conn *conn, int code, const char *fmt,
                         ...) __attribute__((format(printf, 4, 5)));

/* Drop every entry (trestle_server_free). */
void trestle__server_entries_free(trestle_server *s);

/* "4.00 GiB" into buf. */
void trestle__human_bytes(uint64_t bytes, char *buf, size_t cap);

/* CLOCK_REALTIME in nanoseconds. */
int64_t trestle__now_ns(void);

#endif /* TRESTLE_RESIDENT_H */
