/*
 * resident_state.h - the server's own state, shared by its files, from
 * the top: resident_server.c (the socket, the event loop, connections,
 * peers), resident_entries.c (the requests on the entries), resident_alloc.c
 * (ALLOC: memory within the caps, allocated a slice at a time),
 * resident_tiers.c (what each tier holds, dropping an entry) and
 * resident_conn.c (replies, errors, the log).
 *
 * One thread runs everything: trestle_server_run()'s loop polls the
 * listening socket, a wake pipe and every connection, reads each request
 * whole before handling it, and writes each reply before reading the next
 * request of that connection (so a reply's descriptors always go with
 * its first byte, and a client that does not read its replies only stalls
 * itself). Nothing here blocks on a client.
 */
#ifndef TRESTLE_RESIDENT_STATE_H
#define TRESTLE_RESIDENT_STATE_H

#include <sys/types.h>

#include "buf.h"
#include "resident.h"

/* One resident (or, while a preload fills it, unpublished) entry. */
typedef struct trestle__entry {
    uint64_t id;                   /* the server's number, never reused */
    trestle__wire_key key;         /* identity, selection digest, tier (owned) */
    trestle__wire_manifest manifest; /* owned; empty until published */
    uint64_t bytes;                /* memory the preload asked for; once published, its
                                      tensors' bytes */
    uint64_t region_bytes;         /* memory held */
    uint32_t tensors;              /* tensors the preload announced */
    int fd;                        /* host: the memfd; device: the exported allocation */
    int ro_fd;                     /* host: a read-only open of it, for clients; else -1 */
    int pages;                     /* TRESTLE__PAGES_* */
    void *vmm;                     /* device tier: the allocation (engine/memory/vmm_tier.h) */
    struct trestle__memfd *alloc;  /* host tier, while its pages are being allocated (owned;
                                      fd is -1 until then); NULL once they all are */
    const void *pinned;            /* host tier: the server's read-only mapping of it, locked
                                      in memory (mlock), or NULL */
    struct trestle__check *check;  /* host tier, while the server checks a COMMIT's bytes
                                      against its manifest (owned); else NULL */
    int64_t loaded_ns;             /* when published */
    int64_t last_used_ns;          /* last attach (or publication) */
    bool verified;                 /* the preload's restore checked every byte */
    bool published;                /* attachable */
    unsigned clients;              /* connections holding a reference */
    struct trestle__entry *next;
} trestle__entry;

/* One client connection. */
typedef struct trestle__conn {
    int fd;
    pid_t pid;                     /* SO_PEERCRED */
    uid_t uid;
    gid_t gid;
    trestle__wire_rx rx;           /* the request being received */
    trestle__buf out;              /* the reply being sent */
    size_t out_sent;               /* bytes of it sent */
    int out_fds[TRESTLE__WIRE_MAX_FDS]; /* descriptors for its first byte (dups, owned) */
    unsigned out_nfds;
    uint64_t *held;                /* ids of the entries it attached, one per attach */
    size_t nheld, held_cap;
    uint64_t pending;              /* id of the entry it allocated and has not published, or 0 */
    bool waiting;                  /* its ALLOC's memory is being allocated, or its COMMIT's
                                      bytes checked: nothing more is read from it until the
                                      reply is out */
    bool close_after;              /* close once the reply is out */
    bool dead;                     /* closed: remove at the end of the pass */
    struct trestle__conn *next;
} trestle__conn;

struct trestle_server {
    char socket_path[TRESTLE__SOCKET_MAX];
    ino_t socket_ino;              /* the socket file this server made (unlinked on free
                                      only if it is still that one) */
    int listen_fd;
    int wake[2];                   /* trestle_server_stop() writes to wake[1] */
    trestle_server_options opt;
    uid_t uid;                     /* the server's effective uid */
    int64_t started_ns;
    trestle__entry *entries;       /* every entry, newest first */
    trestle__conn *conns;
    unsigned nconns;
    uint64_t next_id;              /* entry ids start at 1 */
};

/* resident_tiers.c: */

/* The tier's bytes held now (host, or one device's), allocations in progress included. */
uint64_t trestle__server_tier_used(const trestle_server *s, int tier, int device);

/* "host tier", "device tier (CUDA device N)" into `buf`. */
const char *trestle__server_tier_name(int tier, int device, char *buf, size_t cap);

/* Unlink `e` and free it and its memory (clients' mappings stay valid). */
void trestle__server_drop(trestle_server *s, trestle__entry *e);

/* Free e's check in progress (and the server's view of it), if any. */
void trestle__server_check_free(trestle__entry *e);

/* A COMMIT's bytes being checked against its manifest, a slice per pass. */
typedef struct trestle__check {
    const uint8_t *view;           /* the sealed memory, mapped read-only by the server */
    uint32_t tensor;               /* the manifest's tensor being checked */
    uint64_t done;                 /* its bytes checked so far */
    uint32_t crc;                  /* their CRC-32C */
    uint64_t data_bytes;           /* the tensors' bytes, for the entry once published */
    bool verified;                 /* the preload's restore checked every byte it read */
    bool crc_done;                 /* every tensor checked, and equal */
    uint64_t locked;               /* bytes of the view locked in memory so far (mlock) */
    int lock_errno;                /* why locking stopped, or 0 */
} trestle__check;

/* resident_conn.c: send what is queued on c (the reply, its descriptors
 * with its first byte), as far as the socket takes it without blocking;
 * false when the connection failed. */
bool trestle__conn_flush(trestle__conn *c);

/* resident_alloc.c: the ALLOC request (false: the connection is to close);
 * one slice of each allocation in progress, replying to those done. */
bool trestle__server_alloc(trestle_server *s, trestle__conn *c, const trestle__wire_msg *req);
void trestle__server_alloc_step(trestle_server *s);

/* resident_entries.c: one slice of each COMMIT's check, publishing (or
 * refusing) those done; whether some allocation or check is in progress. */
void trestle__server_check_step(trestle_server *s);
bool trestle__server_busy(const trestle_server *s);

#endif /* TRESTLE_RESIDENT_STATE_H */
