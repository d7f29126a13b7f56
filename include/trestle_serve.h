/**
 * @file trestle_serve.h
 * @brief Keeping weights resident: a per-host server (`trestle serve`)
 * that holds restored checkpoints in shared memory, and the calls that
 * preload a checkpoint into it and attach to it in milliseconds.
 *
 * Who it is for: serving stacks whose inference processes start often
 * (rolling updates, crashes, autoscaling, several engines on one model)
 * and should not read the same weights from storage each time. A process
 * that restores once and keeps its weights needs only trestle.h.
 *
 * Three roles, over one Unix socket:
 * - the server (trestle_server_create(), trestle_server_run()) holds
 *   memory and hands it out; it never opens a checkpoint and never needs
 *   a CUDA context. Its memory is a sealed memfd per entry (host tier) or,
 *   in CUDA builds, a CUDA VMM allocation exported as a POSIX file
 *   descriptor (device tier); descriptors travel with SCM_RIGHTS;
 * - a preload (trestle_preload(), `trestle preload`) plans and restores a
 *   checkpoint, or part of one, converted or not, with the same planner and
 *   pipeline as trestle_restore(), CRC-checked, straight into memory the
 *   server allocated, and publishes it with a manifest: each tensor's
 *   name, dtype, shape, offset and CRC32C;
 * - an attach (trestle_attach(), `trestle restore --server`, Python's
 *   `trestle.restore(path, server=...)`) maps a resident entry read-only
 *   and checks it against its own plan. When nothing resident fits, it
 *   restores from storage as trestle_restore() would and says why: a
 *   missing or refusing server is never, by itself, a failure.
 *
 * Entries are keyed by the checkpoint's version (its index's size and
 * CRC-32C, trestle_checkpoint_identity(), and every file's size and
 * mtime; for a checkpoint in an object store, each data object's size and
 * validators, trestle_shard_version()), the selection (the ops, slices,
 * dtypes and shapes of the plan) and the tier: a checkpoint changed on
 * disk, or an object replaced in its store, is never served stale, since
 * the attaching process computes the version from what it opened itself.
 *
 * Security: the socket is created 0600 (0660 with a group), and every
 * connection's peer is checked with SO_PEERCRED (its uid is the server's,
 * or 0, or it belongs to the server's group). Host-tier memory is sealed
 * against writes, resizing and further seals before any client sees it,
 * and clients get read-only descriptors: no process, the server included,
 * can change published bytes. Device-tier mappings are made read-only by
 * trestle_attach(); CUDA cannot stop a process that has the descriptor
 * from mapping it writable itself, so the device tier trusts the processes
 * the socket admits. Malformed messages get an error reply; the server
 * keeps running.
 *
 * Lifetimes: a client's mappings stay valid when the server exits or
 * evicts the entry (the memory goes when the last mapping does). A
 * client's connection is its reference: when it exits or frees the
 * attachment, the server counts one client less. A server starts empty.
 *
 * Part of libtrestle (nothing else to link); it includes trestle.h, whose
 * global rules (ownership, threads, errors, options, "Since X.Y") hold
 * here too. Linux only. Since 0.2.
 */
#ifndef TRESTLE_SERVE_H
#define TRESTLE_SERVE_H

#include <stddef.h>
#include <stdint.h>

#include "trestle.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ======================================================================= */
/* Where the server listens                                                 */
/* ======================================================================= */

/** Where a resident entry's memory is. Since 0.2. */
typedef enum trestle_tier {
    TRESTLE_TIER_HOST = 0,   /**< host memory: a sealed memfd, mapped read-only */
    TRESTLE_TIER_DEVICE = 1  /**< CUDA device memory: a VMM allocation, mapped read-only */
} trestle_tier;

/**
 * @brief The default socket path: `$XDG_RUNTIME_DIR/trestle.sock` when that
 * variable is set and absolute, else `/run/trestle/trestle.sock`.
 *
 * @param[out] buf  receives the path, NUL-terminated; not NULL.
 * @param[in]  cap  bytes at `buf`.
 * @param[out] err  filled on failure; may be NULL.
 * @return TRESTLE_OK, or TRESTLE_E_INVALID_ARG when `buf` is NULL or the
 *         path does not fit `cap` (or a socket's 107 bytes).
 * Thread-safe (reads the environment). Since 0.2.
 */
TRESTLE_API int trestle_server_default_socket(char *buf, size_t cap, trestle_error *err);

/* ======================================================================= */
/* The server                                                               */
/* ======================================================================= */

/** A server: a listening socket and the entries it holds. */
typedef struct trestle_server trestle_server;

/**
 * A log sink: called with one line (no newline) per event: listening,
 * each connection refused, each preload published, each attach, each
 * eviction and why, each client gone, stopping. `line` is valid during the
 * call only. Called from the thread running trestle_server_run().
 */
typedef void (*trestle_log_fn)(void *user, const char *line);

/**
 * Options for trestle_server_create(). Fill with
 * trestle_server_options_init(). Read by the options rule.
 */
typedef struct trestle_server_options {
    size_t size;             /**< sizeof(trestle_server_options), set by init */
    const char *socket_path; /**< where to listen; NULL (default):
                                  trestle_server_default_socket(). Its directory is made
                                  (0755) when missing; a socket file left by a server that
                                  is gone is replaced, one that answers is refused */
    long group;              /**< a group id: the socket is created 0660 with this group
                                  and the group's members are admitted; -1 (default): the
                                  socket is 0600 and only the server's uid (and root) are */
    uint64_t host_cap;       /**< bytes the host tier may hold; a preload that would pass
                                  it evicts the least recently used entries no client holds,
                                  and fails when that is not enough; 0 (default): no cap
                                  (memory runs out first, which is a clean error too) */
    uint64_t device_cap;     /**< the same per CUDA device for the device tier; 0: none */
    int huge_pages;          /**< 1 (default): host-tier memory from the hugetlb pool when
                                  it has room, else ordinary pages with transparent huge
                                  pages advised; 0: ordinary pages */
    unsigned max_clients;    /**< connections at once (default 4096); more wait in the
                                  listen backlog */
    trestle_log_fn log;      /**< one line per event, or NULL for none */
    void *log_user;          /**< passed to `log` */
    void *reserved[8];       /**< must be zero */
} trestle_server_options;

/**
 * @brief Fill `opt` with the defaults (default socket, no group, no caps,
 * huge pages tried, 4096 clients, no log) and set `opt->size`.
 * @param[out] opt  caller-owned options; must not be NULL.
 * Thread-safe. Since 0.2.
 */
TRESTLE_API void trestle_server_options_init(trestle_server_options *opt);

/**
 * @brief Create a server: bind its socket (mode 0600, or 0660 and the group)
 * and listen. Nothing is served until trestle_server_run().
 *
 * A server starts empty: resident memory does not outlive the server
 * that held it (clients' mappings do), and a new server says so in its
 * first log line.
 *
 * @param[in]  opt  options, or NULL for the defaults; read during the call.
 * @param[out] out  the server, or NULL on failure; free with
 *                  trestle_server_free().
 * @param[out] err  filled on failure, naming the socket; may be NULL.
 * @return TRESTLE_OK; TRESTLE_E_SERVER when another server answers on the
 *         socket; TRESTLE_E_IO (bind, listen, chmod, chown, mkdir:
 *         sys_errno tells); TRESTLE_E_INVALID_ARG (a path over 107 bytes,
 *         `opt` refused by the options rule); TRESTLE_E_NOMEM.
 * Thread-safe. Since 0.2.
 */
TRESTLE_API int trestle_server_create(const trestle_server_options *opt, trestle_server **out,
                                      trestle_error *err);

/**
 * @brief Serve until trestle_server_stop(): accept connections, check
 * each peer, answer preloads, attaches, lists and evictions.
 *
 * A request that does not decode, or that breaks the protocol (wrong
 * version, oversized, descriptors where none belong), gets an error reply
 * and the server goes on. A client that exits releases what it held.
 *
 * @param[in,out] s    the server; not NULL.
 * @param[out]    err  filled on failure; may be NULL.
 * @return TRESTLE_OK after a stop, or TRESTLE_E_IO when waiting on the
 *         sockets fails for good (sys_errno tells).
 * Blocks the calling thread, the only one that may run it. Since 0.2.
 */
TRESTLE_API int trestle_server_run(trestle_server *s, trestle_error *err);

/**
 * @brief Ask a running trestle_server_run() to return (soon: within one
 * pass of its loop). Harmless when it is not running; it then returns at
 * once when started.
 * @param[in] s  the server; NULL is ignored.
 * Async-signal-safe (a write to a pipe): call it from a SIGTERM handler.
 * Since 0.2.
 */
TRESTLE_API void trestle_server_stop(trestle_server *s);

/**
 * @brief The socket path a server listens on.
 * @param[in] s  the server; NULL gives NULL.
 * @return a string owned by `s`. Thread-safe. Since 0.2.
 */
TRESTLE_API const char *trestle_server_socket(const trestle_server *s);

/**
 * @brief Close the socket (and remove its file), drop every entry and
 * free the server. Clients' mappings stay valid.
 * @param[in] s  the server, or NULL (then nothing happens). It must not be
 *               running. Since 0.2.
 */
TRESTLE_API void trestle_server_free(trestle_server *s);

/* ======================================================================= */
/* Preloading a checkpoint                                                  */
/* ======================================================================= */

/**
 * Options for trestle_preload(). Fill with trestle_preload_options_init().
 * Read by the options rule.
 */
typedef struct trestle_preload_options {
    size_t size;             /**< sizeof(trestle_preload_options), set by init */
    const char *socket_path; /**< the server; NULL (default): trestle_server_default_socket() */
    int device;              /**< -1 (default): host tier; N: device tier on CUDA device N
                                  (CUDA builds) */
    const trestle_restore_options *restore; /**< how to read (threads, reader, O_DIRECT,
                                  staging), or NULL; `verify` is always on and `device`,
                                  `devices` and `host_map` are the preload's own */
    /* Several GPUs (two of the reserved slots, so the struct's size is unchanged on LP64). */
    const int *devices;      /**< `num_devices` distinct CUDA ordinals, or NULL: with two or
                                  more, one device-tier entry on each, all filled by one
                                  restore (trestle_restore_options.devices): the checkpoint is
                                  read from storage and CRC-checked once, and the same staging
                                  bytes are copied to every device. `device` must then be -1
                                  or devices[0]. Each device's entry gets its own manifest and
                                  is published, in list order, when all are filled. Copied
                                  during the call only; at most 64 */
    size_t num_devices;      /**< entries of `devices`; 0 (default): `device` alone */
    void *reserved[6];       /**< must be zero */
} trestle_preload_options;

/**
 * @brief Fill `opt` with the defaults (default socket, host tier, default
 * restore options) and set `opt->size`.
 * @param[out] opt  caller-owned options; must not be NULL.
 * Thread-safe. Since 0.2.
 */
TRESTLE_API void trestle_preload_options_init(trestle_preload_options *opt);

/** What a preload made resident. */
typedef struct trestle_preload_info {
    size_t tensors;          /**< tensors in the entry (skipped ops left out) */
    uint64_t bytes;          /**< their bytes (in each entry, with a device list) */
    uint64_t memory_bytes;   /**< memory the server holds for them (whole pages; with a
                                  device list, every device's entry together) */
    unsigned replaced;       /**< entries it replaced: the same selection, or older versions
                                  of the same checkpoint (never served again); with a device
                                  list, on every device together */
    unsigned entries;        /**< entries published: 1, or num_devices with a device list */
    int huge_pages;          /**< host tier: 1 hugetlb pages, 2 transparent huge pages
                                  advised, 0 ordinary pages */
    double seconds;          /**< wall time of the whole preload */
    trestle_stats stats;     /**< its restore's figures */
} trestle_preload_info;

/**
 * @brief Make a checkpoint, or the part `ops` selects, resident on the
 * server: plan it, have the server allocate the memory, restore into it
 * (CRC-checked, converted as the ops ask), and publish it with its
 * manifest.
 *
 * The selection is what trestle_plan_create() makes of `c`, `ops`, `n`
 * and `popt`; an attach finds the entry only with the same selection
 * (the same ops, slices and target dtypes, resolved to the same keys and
 * shapes) of the same version of the files. Entries of an older version
 * of the same checkpoint, and one of the same selection, are replaced.
 *
 * The preload reads the files itself, with its own permissions; the
 * server never opens them. If the preload fails or its process dies
 * before publishing, the server frees the memory.
 *
 * @param[in]  c     the checkpoint; not NULL.
 * @param[in]  ops   as for trestle_plan_create() (NULL with n == 0: every
 *                   tensor); destinations are ignored: tensors land in the
 *                   server's memory, 256-byte aligned, in op order.
 * @param[in]  n     number of ops.
 * @param[in]  popt  plan options, or NULL.
 * @param[in]  opt   options, or NULL for the defaults.
 * @param[out] info  filled on success when not NULL.
 * @param[out] err   filled on failure; may be NULL.
 * @return TRESTLE_OK; any code of trestle_plan_create() or
 *         trestle_restore(); TRESTLE_E_SERVER (no server on the socket, it
 *         refused this process, or it failed: the message says which and
 *         names the socket); TRESTLE_E_NOMEM naming the tier and the bytes
 *         when the server cannot allocate them or its cap leaves no room.
 * Thread-safe for distinct calls. Since 0.2.
 */
TRESTLE_API int trestle_preload(const trestle_checkpoint *c, const trestle_op *ops, size_t n,
                                const trestle_plan_options *popt,
                                const trestle_preload_options *opt, trestle_preload_info *info,
                                trestle_error *err);

/* ======================================================================= */
/* Attaching to resident tensors                                            */
/* ======================================================================= */

/**
 * The tensors of one attach: mapped read-only from the server's memory,
 * or, when nothing resident fitted, restored from storage into engine
 * memory. Holds one reference on the server's entry until freed.
 */
typedef struct trestle_attachment trestle_attachment;

/**
 * Options for trestle_attach(). Fill with trestle_attach_options_init().
 * Read by the options rule.
 */
typedef struct trestle_attach_options {
    size_t size;             /**< sizeof(trestle_attach_options), set by init */
    const char *socket_path; /**< the server; NULL (default): trestle_server_default_socket() */
    int device;              /**< -1 (default): the host tier; N: the device tier on CUDA
                                  device N (and a fallback restore onto device N) */
    int require_resident;    /**< 1: fail with TRESTLE_E_NOT_RESIDENT instead of restoring
                                  from storage; 0 (default): restore from storage, saying
                                  why in trestle_attach_info.note */
    int verify;              /**< host tier: 1 recomputes every tensor's CRC32C from the
                                  mapped bytes and compares it with the manifest (reads every
                                  byte); 0 (default): the manifest's layout and stored CRCs are
                                  checked against this process's own index only */
    const trestle_restore_options *restore; /**< the restore from storage when not
                                  resident, or NULL for its defaults */
    void *reserved[8];       /**< must be zero */
} trestle_attach_options;

/**
 * @brief Fill `opt` with the defaults (default socket, host tier, restore
 * from storage when not resident, no CRC recomputation) and set
 * `opt->size`.
 * @param[out] opt  caller-owned options; must not be NULL.
 * Thread-safe. Since 0.2.
 */
TRESTLE_API void trestle_attach_options_init(trestle_attach_options *opt);

/** How an attach went. */
typedef struct trestle_attach_info {
    int resident;            /**< 1: mapped from the server; 0: restored from storage */
    int tier;                /**< trestle_tier of the mapping (resident only) */
    int device;              /**< CUDA device of the tensors, or -1 for host memory */
    size_t tensors;          /**< tensors (skipped ops left out) */
    uint64_t bytes;          /**< their bytes */
    double seconds;          /**< wall time of trestle_attach(), planning included */
    char note[512];          /**< not resident: why, e.g. "no server on /run/trestle/
                                  trestle.sock (connect: No such file or directory)" or
                                  "ckpt is resident as another version of its files";
                                  resident: "" */
    trestle_stats stats;     /**< the restore from storage's figures (zero when resident) */
} trestle_attach_info;

/**
 * @brief The tensors `ops` selects from `c`, from the server's memory when
 * an entry of this version and selection is resident there, else restored
 * from storage.
 *
 * Resident: the entry's manifest must match this process's own plan of
 * `c` and `ops` (names, keys, slices, dtypes, shapes, bytes, each offset
 * inside the memory, no overlaps) and its stored CRC32Cs this process's
 * index; host memory must carry every seal. Anything else is not used:
 * the attach restores from storage instead and `info.note` says why (or,
 * with `require_resident`, fails). Resident tensors are read-only: a
 * write faults.
 *
 * @param[in]  c     the checkpoint; not NULL; opened by this process, so
 *                   its version is the one on disk now. May be closed
 *                   once this returns.
 * @param[in]  ops   as for trestle_plan_create() (NULL with n == 0: every
 *                   tensor), each op TRESTLE_DEST_ALLOCATE (the tensor is
 *                   mapped, or restored into engine memory) or, with
 *                   `opt->device` set, TRESTLE_DEST_DEVICE: the caller's
 *                   device memory (`ptr`, `capacity`), which gets the
 *                   tensor by a device-to-device copy from the device tier
 *                   (or the restore from storage) queued on
 *                   `opt->restore->cuda_stream` (a stream of that device;
 *                   NULL: the legacy default stream) and not waited for:
 *                   the bytes are there once that stream passes the copy,
 *                   and the op's `data` is `ptr`. Resident or not, the
 *                   selection is the same as with TRESTLE_DEST_ALLOCATE.
 *                   trestle_attachment_free() waits for the copies.
 * @param[in]  n     number of ops.
 * @param[in]  popt  plan options, or NULL.
 * @param[in]  opt   options, or NULL for the defaults.
 * @param[out] out   the attachment, or NULL on failure; free with
 *                   trestle_attachment_free().
 * @param[out] err   filled on failure; may be NULL.
 * @return TRESTLE_OK; any code of trestle_plan_create(); from storage, any
 *         code of trestle_restore(); TRESTLE_E_NOT_RESIDENT with
 *         `require_resident` (the message says why); TRESTLE_E_INVALID_ARG
 *         for an op that is neither TRESTLE_DEST_ALLOCATE nor, with a
 *         device, TRESTLE_DEST_DEVICE, or a destination smaller than its
 *         tensor; TRESTLE_E_CUDA when a copy cannot be queued; TRESTLE_E_NO_DEVICE
 *         for the device tier in a build without CUDA; TRESTLE_E_NOMEM.
 * Thread-safe for distinct calls. Since 0.2.
 */
TRESTLE_API int trestle_attach(const trestle_checkpoint *c, const trestle_op *ops, size_t n,
                               const trestle_plan_options *popt,
                               const trestle_attach_options *opt, trestle_attachment **out,
                               trestle_error *err);

/**
 * @brief Number of ops, skipped ones included, as trestle_plan_op_count()
 * of the same plan.
 * @param[in] a  the attachment; NULL gives 0.
 * @return the count. Thread-safe. Since 0.2.
 */
TRESTLE_API size_t trestle_attachment_op_count(const trestle_attachment *a);

/**
 * @brief Describe op `i` as trestle_plan_get_op() would after a restore:
 * its name, key, dtypes, shape, bytes, and `data`, a read-only mapping of
 * resident memory (or engine memory when restored from storage).
 * @param[in]  a    the attachment.
 * @param[in]  i    0 <= i < trestle_attachment_op_count(a).
 * @param[out] out  caller-owned; its pointers are owned by `a` and valid
 *                  until trestle_attachment_free(a).
 * @return TRESTLE_OK, or TRESTLE_E_INVALID_ARG (NULL argument, `i` out of
 *         range). Thread-safe. Since 0.2.
 */
TRESTLE_API int trestle_attachment_get_op(const trestle_attachment *a, size_t i,
                                          trestle_plan_op_info *out);

/**
 * @brief How the attach went: resident or not and why, tier, time.
 * @param[in]  a    the attachment; NULL fills zeros.
 * @param[out] out  caller-owned; NULL is ignored.
 * Thread-safe. Since 0.2.
 */
TRESTLE_API void trestle_attachment_get_info(const trestle_attachment *a,
                                             trestle_attach_info *out);

/**
 * @brief Unmap (or free) the tensors and drop the reference on the
 * server's entry.
 * @param[in] a  the attachment, or NULL (then nothing happens). No pointer
 *               from it may be used afterwards. Since 0.2.
 */
TRESTLE_API void trestle_attachment_free(trestle_attachment *a);

/* ======================================================================= */
/* What is resident: listing and evicting                                  */
/* ======================================================================= */

/** One resident entry (strings owned by the list). */
typedef struct trestle_resident_entry {
    const char *path;        /**< the checkpoint prefix, absolute */
    int tier;                /**< trestle_tier */
    int device;              /**< CUDA device (device tier), else -1 */
    size_t tensors;          /**< tensors in it */
    uint64_t bytes;          /**< their bytes */
    uint64_t memory_bytes;   /**< memory held */
    unsigned clients;        /**< attachments holding it now */
    double loaded_at;        /**< seconds since the epoch when it was published */
    double last_used_at;     /**< seconds since the epoch of the last attach (or load) */
    int verified;            /**< 1: its restore checked every byte's CRC32C */
    int huge_pages;          /**< host tier: 1 hugetlb, 2 transparent huge pages, 0 none */
    int changed;             /**< 1: the files on disk are no longer this version (it will
                                  not be served; a preload of the new version replaces it) */
    uint64_t index_bytes;    /**< identity: the index's size */
    uint32_t index_crc32c;   /**< identity: the index's CRC-32C */
    int num_shards;          /**< identity: the number of data files */
    uint64_t selection;      /**< the selection's digest (ops, slices, dtypes, shapes) */
} trestle_resident_entry;

/** The server as a whole. */
typedef struct trestle_resident_server {
    int pid;                 /**< the server's process id */
    double started_at;       /**< seconds since the epoch */
    uint64_t host_cap;       /**< 0: none */
    uint64_t host_used;      /**< bytes the host tier holds */
    uint64_t device_cap;     /**< per device; 0: none */
    uint64_t device_used;    /**< bytes the device tier holds, all devices */
    unsigned connections;    /**< client connections open now (this one included) */
} trestle_resident_server;

/** A snapshot of a server's entries, from trestle_resident_query(). */
typedef struct trestle_resident_list trestle_resident_list;

/**
 * @brief Ask the server what it holds.
 * @param[in]  socket_path  the server; NULL: trestle_server_default_socket().
 * @param[out] out          the list, or NULL on failure; free with
 *                          trestle_resident_list_free().
 * @param[out] err          filled on failure; may be NULL.
 * @return TRESTLE_OK; TRESTLE_E_SERVER (no server, refused, or a reply that
 *         does not decode: the message names the socket); TRESTLE_E_NOMEM;
 *         TRESTLE_E_INVALID_ARG (NULL `out`).
 * Thread-safe. Since 0.2.
 */
TRESTLE_API int trestle_resident_query(const char *socket_path, trestle_resident_list **out,
                                       trestle_error *err);

/**
 * @brief Number of entries in a list (least recently used first).
 * @param[in] l  the list; NULL gives 0.
 * @return the count. Thread-safe. Since 0.2.
 */
TRESTLE_API size_t trestle_resident_list_count(const trestle_resident_list *l);

/**
 * @brief Describe entry `i`.
 * @param[in]  l    the list.
 * @param[in]  i    0 <= i < trestle_resident_list_count(l).
 * @param[out] out  caller-owned; its strings are owned by `l`.
 * @return TRESTLE_OK, or TRESTLE_E_INVALID_ARG (NULL argument, `i` out of
 *         range). Thread-safe. Since 0.2.
 */
TRESTLE_API int trestle_resident_list_get(const trestle_resident_list *l, size_t i,
                                          trestle_resident_entry *out);

/**
 * @brief Describe the server the list came from.
 * @param[in]  l    the list; NULL fills zeros.
 * @param[out] out  caller-owned; NULL is ignored.
 * Thread-safe. Since 0.2.
 */
TRESTLE_API void trestle_resident_list_server(const trestle_resident_list *l,
                                              trestle_resident_server *out);

/**
 * @brief Free a list.
 * @param[in] l  the list, or NULL (then nothing happens). Since 0.2.
 */
TRESTLE_API void trestle_resident_list_free(trestle_resident_list *l);

/** What an eviction dropped. */
typedef struct trestle_evict_info {
    unsigned entries;        /**< entries dropped */
    uint64_t bytes;          /**< memory they held */
    unsigned in_use;         /**< of them, entries clients still map: their memory goes when
                                  the last client detaches */
} trestle_evict_info;

/**
 * @brief Drop resident entries: those of the checkpoint at `path` (every
 * selection, tier and version), or every entry when `path` is NULL.
 *
 * @param[in]  socket_path  the server; NULL: trestle_server_default_socket().
 * @param[in]  path         a checkpoint path as trestle_open() takes it
 *                          (resolved to its absolute prefix; a path whose
 *                          files are gone is taken as the prefix itself),
 *                          or a directory (every entry under it), or NULL.
 * @param[out] out          filled on success when not NULL.
 * @param[out] err          filled on failure; may be NULL.
 * @return TRESTLE_OK (also when nothing matched: out->entries is 0);
 *         TRESTLE_E_SERVER; TRESTLE_E_NOMEM.
 * Thread-safe. Since 0.2.
 */
TRESTLE_API int trestle_resident_evict(const char *socket_path, const char *path,
                                       trestle_evict_info *out, trestle_error *err);

#ifdef __cplusplus
}
#endif

#endif /* TRESTLE_SERVE_H */
