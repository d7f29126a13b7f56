/*
 * wire.h - the messages between `trestle serve` (engine/resident/'s
 * server) and its clients (preload, attach, list, evict), and the frames
 * that carry them over a Unix stream socket, file descriptors riding along
 * with SCM_RIGHTS.
 *
 * Every frame is a 16-byte header and a payload:
 *
 *     u32 magic "TRSV"  u16 version  u16 type  u32 payload bytes
 *     u16 file descriptors attached  u16 zero
 *
 * all little-endian, like the payload's numbers. Strings are a u32 length
 * and that many bytes (no NUL inside); arrays are a u32 count and the
 * elements. Both sides are untrusted by the other: every count and length
 * is bounded (below) and checked against the bytes left before anything is
 * allocated, and a frame's file descriptors must be exactly the ones its
 * type carries (only ALLOC_REPLY and ATTACH_REPLY carry any). The decoder
 * is a fuzz target (tests/fuzz/fuzz_wire.c).
 *
 * This layer knows bytes and sockets only; what an entry means (identity,
 * manifest checks, tiers) is engine/resident/'s.
 */
#ifndef TRESTLE_WIRE_H
#define TRESTLE_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "trestle.h"

#define TRESTLE__WIRE_MAGIC 0x56535254u        /* "TRSV" read as a little-endian u32 */
#define TRESTLE__WIRE_VERSION 1                /* bumped on any incompatible change */
#define TRESTLE__WIRE_HEADER_BYTES 16          /* the fixed frame header */
#define TRESTLE__WIRE_MAX_PAYLOAD (64u << 20)  /* a manifest of ~300k tensors fits */
#define TRESTLE__WIRE_MAX_FDS 8                /* descriptors one frame may carry */
#define TRESTLE__WIRE_MAX_STRING 65536         /* bytes of one name, key or spec */
#define TRESTLE__WIRE_MAX_PATH 4096            /* bytes of a checkpoint path (PATH_MAX) */
#define TRESTLE__WIRE_MAX_MESSAGE 4096         /* bytes of an error or refusal text */
#define TRESTLE__WIRE_MAX_RANK 255             /* dims of one tensor */
#define TRESTLE__WIRE_MAX_SHARDS 100000        /* shards in one identity */
#define TRESTLE__WIRE_MAX_TENSORS (1u << 22)   /* tensors in one manifest */
#define TRESTLE__WIRE_MAX_ENTRIES 65536        /* rows in one list */

/* Frame types. Requests (client to server) carry no descriptors. */
enum trestle__wire_type {
    TRESTLE__MSG_LIST = 1,          /* what is resident */
    TRESTLE__MSG_EVICT = 2,         /* drop the entries of a path (or all) */
    TRESTLE__MSG_ALLOC = 3,         /* a preload asks for memory to fill */
    TRESTLE__MSG_COMMIT = 4,        /* ... and publishes it, with its manifest */
    TRESTLE__MSG_ATTACH = 5,        /* a client asks for a resident entry */
    TRESTLE__MSG_ERROR = 64,        /* any request refused: code and text */
    TRESTLE__MSG_LIST_REPLY = 65,
    TRESTLE__MSG_EVICT_REPLY = 66,
    TRESTLE__MSG_ALLOC_REPLY = 67,  /* + one descriptor: the memory to fill */
    TRESTLE__MSG_COMMIT_REPLY = 68,
    TRESTLE__MSG_ATTACH_REPLY = 69, /* + one descriptor: the memory, read-only */
    TRESTLE__MSG_NOT_RESIDENT = 70  /* no entry for that identity and selection */
};

/* Where an entry's memory is. */
#define TRESTLE__TIER_HOST 0   /* a sealed memfd */
#define TRESTLE__TIER_DEVICE 1 /* a CUDA VMM allocation exported as a POSIX fd */

/* What a manifest tensor's crc32c is of. */
#define TRESTLE__CRC_LANDED 0 /* the bytes as landed, computed by the preload after its
                                 CRC-checked restore (converted or sliced tensors) */
#define TRESTLE__CRC_STORED 1 /* the checkpoint's own CRC of the tensor, which the
                                 restore checked and the bytes as landed equal */

/* How the host tier's pages are backed (entry.pages). */
#define TRESTLE__PAGES_NORMAL 0
#define TRESTLE__PAGES_HUGETLB 1 /* MFD_HUGETLB: 2 MiB pages from the hugetlb pool */
#define TRESTLE__PAGES_THP 2     /* transparent huge pages advised on shmem */

/* Why an attach found nothing (not_resident.reason). */
#define TRESTLE__NR_ABSENT 1  /* nothing of that path is resident */
#define TRESTLE__NR_CHANGED 2 /* the path is resident as another version of its files */
#define TRESTLE__NR_OTHER 3   /* the path is resident with another selection or tier */

/* Which version of a checkpoint: its index's bytes and files' sizes and mtimes. */
typedef struct trestle__wire_identity {
    char *path;              /* absolute checkpoint prefix (owned) */
    uint64_t index_bytes;    /* size of P.index */
    uint32_t index_crc32c;   /* CRC-32C of all of P.index (trestle_checkpoint_identity) */
    int64_t index_mtime_ns;  /* mtime of P.index */
    uint32_t num_shards;
    uint64_t *shard_bytes;   /* num_shards sizes (owned) */
    int64_t *shard_mtime_ns; /* num_shards mtimes (owned) */
} trestle__wire_identity;

/* What an entry is looked up by: the version, the selection, the tier. */
typedef struct trestle__wire_key {
    trestle__wire_identity id;
    uint64_t digest;         /* of the selection: ops, slices, dtypes, shapes */
    uint8_t tier;            /* TRESTLE__TIER_* */
    int32_t device;          /* CUDA ordinal (device tier), else -1 */
} trestle__wire_key;

/* One tensor of an entry's manifest. */
typedef struct trestle__wire_tensor {
    char *name;              /* the op's name (owned) */
    char *key;               /* the checkpoint key it restores (owned) */
    char *spec;              /* its shape_and_slices, "" for a whole tensor (owned) */
    uint32_t dtype;          /* dtype as landed */
    uint32_t stored_dtype;   /* dtype in the checkpoint */
    uint32_t rank;
    int64_t *dims;           /* rank sizes, each >= 0 (owned) */
    uint64_t offset;         /* in the entry's memory */
    uint64_t bytes;          /* as landed */
    uint32_t crc32c;         /* see crc_kind */
    uint8_t crc_kind;        /* TRESTLE__CRC_* */
} trestle__wire_tensor;

typedef struct trestle__wire_manifest {
    uint32_t count;
    trestle__wire_tensor *tensors; /* count (owned) */
} trestle__wire_manifest;

/* One resident entry, as the server describes it. */
typedef struct trestle__wire_entry {
    uint64_t id;             /* the server's number for it */
    trestle__wire_key key;
    uint64_t bytes;          /* tensor bytes */
    uint64_t region_bytes;   /* memory held (rounded to pages) */
    uint32_t tensors;
    uint32_t clients;        /* connections holding it now */
    int64_t loaded_ns;       /* CLOCK_REALTIME when published */
    int64_t last_used_ns;    /* CLOCK_REALTIME of the last attach (or loaded_ns) */
    uint8_t verified;        /* the preload's restore checked every byte's CRC32C */
    uint8_t pages;           /* TRESTLE__PAGES_* */
    uint8_t changed;         /* list: the files on disk are no longer this version */
} trestle__wire_entry;

/* The server as a whole (list replies). */
typedef struct trestle__wire_server {
    uint32_t pid;
    int64_t started_ns;      /* CLOCK_REALTIME */
    uint64_t host_cap;       /* 0: no cap */
    uint64_t host_used;
    uint64_t device_cap;     /* per device; 0: no cap */
    uint64_t device_used;    /* all devices */
    uint32_t connections;
} trestle__wire_server;

/* A decoded message: the member of `type` is filled, the others zero. */
typedef struct trestle__wire_msg {
    uint16_t type;
    struct { int32_t code; char *message; } error;
    struct { char *path; } evict;   /* "" evicts every entry */
    struct { uint32_t entries; uint64_t bytes; uint32_t in_use; } evict_reply;
    struct { trestle__wire_key key; uint64_t bytes; uint32_t tensors; } alloc;
    struct { uint64_t entry_id; uint64_t region_bytes; uint8_t pages; } alloc_reply;
    struct { uint64_t entry_id; uint8_t verified; trestle__wire_manifest manifest; } commit;
    struct { uint64_t entry_id; uint32_t replaced; } commit_reply;
    struct { trestle__wire_key key; } attach;
    struct { trestle__wire_entry entry; trestle__wire_manifest manifest; } attach_reply;
    struct { uint32_t reason; char *message; } not_resident;
    struct {
        trestle__wire_server server;
        uint32_t count;
        trestle__wire_entry *entries;
    } list_reply;
} trestle__wire_msg;

/* The fixed header, decoded. */
typedef struct trestle__wire_header {
    uint16_t type;
    uint32_t payload_bytes;
    uint16_t nfds;
} trestle__wire_header;

/* ---- messages (engine/wire/wire_msg.c decodes, wire_encode.c writes and owns) ---- */

/* "LIST", "ATTACH_REPLY", ...; "unknown" for other numbers. */
const char *trestle__wire_type_name(unsigned type);

/* The descriptors a frame of `type` must carry: 1 for ALLOC_REPLY and
 * ATTACH_REPLY, 0 for the others (and for unknown types). */
unsigned trestle__wire_type_fds(unsigned type);

/*
 * Decode the 16 header bytes at `p`: TRESTLE_OK, or TRESTLE_E_CORRUPT naming
 * what is wrong (magic, version, type, payload over the limit, descriptor
 * count other than the type's, nonzero padding), `out` then unspecified.
 */
int trestle__wire_header_decode(const uint8_t *p, trestle__wire_header *out, trestle_error *err);

/*
 * Decode the payload of a frame of `type` into `out` (zeroed first; free it
 * with trestle__wire_msg_free, also after a failure). Every byte must be
 * used. TRESTLE_OK, TRESTLE_E_CORRUPT with the byte offset in the payload
 * and what was expected, or TRESTLE_E_NOMEM.
 */
int trestle__wire_decode(unsigned type, const uint8_t *payload, size_t len, trestle__wire_msg *out,
                         trestle_error *err);

/* Encode `m` (its `type` member) as one whole frame, header included, that
 * announces `nfds` descriptors, appended to `out`. false out of memory or
 * when a field is over the limits above (which the decoder would refuse). */
bool trestle__wire_encode(const trestle__wire_msg *m, unsigned nfds, trestle__buf *out);

/* Free what a decoded (or hand-built) message owns; the struct is zeroed. */
void trestle__wire_msg_free(trestle__wire_msg *m);

/* Deep copies for the server, which keeps keys and manifests of entries:
 * false out of memory (dst then holds nothing to free). */
bool trestle__wire_key_copy(trestle__wire_key *dst, const trestle__wire_key *src);
bool trestle__wire_manifest_copy(trestle__wire_manifest *dst, const trestle__wire_manifest *src);
void trestle__wire_key_free(trestle__wire_key *k);
void trestle__wire_manifest_free(trestle__wire_manifest *m);

/* 1 when both name the same version of the same files (path included). */
bool trestle__wire_identity_equal(const trestle__wire_identity *a,
                                  const trestle__wire_identity *b);

/* ---- frames over a socket (engine/wire/wire_frame.c) ---- */

/*
 * Send `frame` (a whole encoded frame) on the blocking stream socket
 * `sock`, the `nfds` descriptors `fds` attached to its first byte.
 * TRESTLE_OK, or TRESTLE_E_IO with errno (EPIPE when the peer is gone; the
 * socket must have MSG_NOSIGNAL semantics, which this uses).
 */
int trestle__wire_send(int sock, const uint8_t *frame, size_t len, const int *fds, unsigned nfds,
                       trestle_error *err);

/*
 * Receive one frame on the blocking socket `sock`, waiting at most
 * `timeout_ms` (< 0: forever) for each part: the header, checked, then
 * the payload, decoded into `out`. The descriptors that came with it are
 * stored in fds[0..*nfds) (close-on-exec; the caller owns them), at most
 * TRESTLE__WIRE_MAX_FDS. TRESTLE_OK; TRESTLE_E_IO when the peer closed or
 * a read failed or timed out (sys_errno: 0 for a closed peer, ETIMEDOUT);
 * TRESTLE_E_CORRUPT for a frame that does not decode, descriptors then
 * closed. `what` names the peer in messages ("server /run/trestle.sock").
 */
int trestle__wire_recv(int sock, int timeout_ms, const char *what, trestle__wire_msg *out,
                       int *fds, unsigned *nfds, trestle_error *err);

/*
 * Incremental receive for an event loop (non-blocking sockets): a frame's
 * header, payload and descriptors as they arrive.
 */
typedef struct trestle__wire_rx {
    uint8_t head[TRESTLE__WIRE_HEADER_BYTES];
    size_t head_got;         /* header bytes so far */
    trestle__wire_header hdr; /* valid once head_got == 16 */
    uint8_t *payload;        /* hdr.payload_bytes (owned) */
    size_t payload_got;
    int fds[TRESTLE__WIRE_MAX_FDS];
    unsigned nfds;           /* descriptors received with this frame so far */
    bool fds_overflow;       /* more arrived than fit (they were closed) */
} trestle__wire_rx;

#define TRESTLE__RX_MORE 0   /* nothing complete yet: wait for the socket */
#define TRESTLE__RX_FRAME 1  /* a frame is complete: header, payload, descriptors */
#define TRESTLE__RX_CLOSED 2 /* the peer closed between frames */
#define TRESTLE__RX_ERROR 3  /* a read failed, the peer closed inside a frame, or the
                                header is bad: `err` says which; the connection is done */

/* Read what `sock` has now into `rx`; one of TRESTLE__RX_*. */
int trestle__wire_rx_step(int sock, trestle__wire_rx *rx, trestle_error *err);

/* Forget the completed frame (its payload freed, descriptors closed unless
 * `keep_fds`) to receive the next one. */
void trestle__wire_rx_reset(trestle__wire_rx *rx, bool keep_fds);

#endif /* TRESTLE_WIRE_H */
