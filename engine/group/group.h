/*
 * group.h - what the files of libtrestle_mpi share (engine/group/group_mpi.c:
 * the group, its collectives and the restore's order of steps;
 * engine/group/group_exchange.c: the destination runs of each rank's part and
 * the broadcasts that move them). libtrestle_mpi is a client of the public
 * API (trestle.h) only, like the CLI: nothing here reaches into the
 * engine's private headers, and libtrestle never sees MPI.
 */
#ifndef TRESTLE_GROUP_H
#define TRESTLE_GROUP_H

#include <mpi.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "trestle.h"
#include "trestle_mpi.h"
#include "trestle_version.h"

/* Bytes per exchange round: big enough for full bandwidth, small enough
 * that the first rounds go out while the rest is still being read, and
 * the size of each device exchange's bounce buffers. */
#define TRESTLE__GROUP_ROUND_BYTES ((uint64_t)64 << 20)

/* A destination run (trestle_run_fn): bytes [offset, offset + length) of op. */
typedef struct trestle__group_run {
    size_t op;
    uint64_t offset, length;
} trestle__group_run;

/* The runs of one rank's part, in extent order. */
typedef struct trestle__group_runs {
    trestle__group_run *v;
    size_t n, cap;
    uint64_t bytes;             /* sum of the lengths */
} trestle__group_runs;

/* A group (include/trestle_mpi.h). Two communicators: `comm` spans the
 * whole group, and every collective that decides an outcome runs on it;
 * `xcomm` is the one a restore reads once over and exchanges within: comm
 * itself (scope GROUP) or this rank's node (scope NODE). */
struct trestle_group {
    MPI_Comm comm;              /* our own duplicate, MPI_ERRORS_RETURN */
    int rank, size;
    MPI_Comm node_comm;         /* the ranks of this rank's node (MPI_COMM_NULL: none made) */
    int node_rank, node_size;   /* this rank in it, and its size */
    int nodes, node;            /* nodes in the group, and this rank's, 0 <= node < nodes */
    int scope;                  /* the resolved scope: TRESTLE_GROUP_SCOPE_GROUP or _NODE */
    char scope_note[160];       /* why that scope, for summaries */
    MPI_Comm xcomm;             /* comm or node_comm, as scope says (not owned) */
    int xrank, xsize;           /* this rank in xcomm, and its size */
    int exchange;               /* the caller's trestle_group_exchange_kind: AUTO, STAGED or
                                   MPI_CUDA */
    struct trestle__group_dev *dev; /* the device exchange kept for the next restore, or NULL
                                       (engine/group/group_device.c) */
};

/* The group's own communicator (engine/group/group_mpi.c), for the group's other
 * files: engine/group/group_crc.c. */
MPI_Comm trestle__group_comm(const trestle_group *g);

/* Do all ranks read one version of the checkpoint? Compares every rank's
 * trestle_checkpoint_identity() of c (engine/group/group_same.c). c NULL:
 * this rank takes part without being judged. Collective over g->comm; the
 * same verdict on every rank: TRESTLE_OK, TRESTLE_E_INVALID_ARG naming each
 * version's size, CRC and ranks, or TRESTLE_E_GROUP. */
int trestle__group_same_checkpoint(trestle_group *g, const trestle_checkpoint *c,
                                   trestle_error *err);

/* What this rank can check alone before anything collective happens:
 * the caller's `opt` by the options rule into `ro` (over the defaults
 * there), then what a group restore cannot do (map shard files, a device
 * list, a plan restored before). TRESTLE_E_INVALID_ARG or _UNSUPPORTED
 * (engine/group/group_mpi.c). */
int trestle__group_check_local(const trestle_plan *p, const trestle_restore_options *opt,
                               trestle_restore_options *ro, trestle_error *err);

/* A group call's early end, the same on every rank: `e` into err (NULL: err
 * untouched), st's wall time since t0, st into *stats (if not NULL); rc. */
int trestle__group_end(int rc, const trestle_error *e, trestle_error *err, trestle_group_stats *st,
                       double t0, trestle_group_stats *stats);

/* Zero *st and fill in who this rank is in g: rank, size, scope, nodes. */
void trestle__group_stats_init(const trestle_group *g, trestle_group_stats *st);

/* Fill err with code and a formatted message (no key, path or offset). */
int trestle__group_error(trestle_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The runs of extents [first, end) of p, appended to out. TRESTLE_E_NOMEM. */
int trestle__group_collect(const trestle_plan *p, size_t first, size_t end,
                           trestle__group_runs *out, trestle_error *err);

/* ---- read-once scope (engine/group/group_scope.c) ---- */

/* Find g's nodes (MPI_Comm_split_type SHARED, or the colours node_id when
 * every rank gives one) and resolve opt's scope into g->scope, g->xcomm
 * and g->scope_note. Collective over g->comm, which must be set, as must
 * rank and size. TRESTLE_E_INVALID_ARG (node_id given by some ranks only,
 * an unknown scope) or TRESTLE_E_GROUP; the same on every rank. */
int trestle__group_scope_init(struct trestle_group *g, int scope, int node_id, const char *path,
                              trestle_error *err);

/* ---- this rank's restore, on a thread of its own (engine/group/group_live.c) ---- */

/* A restore of this rank's part running while the calling thread (the one
 * that makes every MPI call) exchanges: which ops are in place, and the
 * outcome once it returns. */
typedef struct trestle__group_live {
    pthread_mutex_t mu;
    pthread_cond_t cv;          /* signalled at every ready op and at the end */
    uint8_t **data;             /* per op: its destination once reported ready, else NULL */
    int *device;                /* per op: the CUDA device of data, or -1 for host memory */
    bool done;                  /* the restore returned */
    int rc;                     /* its result, once done */
    trestle_error err;          /* its error, once done */
    trestle_stats stats;        /* its figures, once done */
    double seconds;             /* its wall time */
    trestle_plan *p;
    trestle_restore_options opt; /* the caller's, on_ready chained through the group */
    trestle_ready_fn user_fn;   /* the caller's callback, or NULL */
    void *user;
    const bool *mine;           /* per op: this rank's part writes some of it */
    pthread_t thread;
    bool started;
} trestle__group_live;

/* Start restoring p (kept to this rank's part) on a new thread. `mine`
 * must outlive trestle__group_live_join(). TRESTLE_E_NOMEM when no thread. */
int trestle__group_live_start(trestle__group_live *lv, trestle_plan *p,
                              const trestle_restore_options *opt, const bool *mine,
                              trestle_error *err);

/* A restore that has already returned OK with its n ops in place at
 * data[k], on CUDA device device[k] (-1: host memory): what the exchange
 * moves when it is timed alone (engine/group/group_ceiling.c). Free it with
 * trestle__group_live_join(), also after a failure. TRESTLE_E_NOMEM. */
int trestle__group_live_ready(trestle__group_live *lv, uint8_t *const *data, const int *device,
                              size_t n, trestle_error *err);

/* Wait until every op of runs [first, end) of rs has its destination, or
 * the restore has returned. True when all of them have one. */
bool trestle__group_live_wait(trestle__group_live *lv, const trestle__group_runs *rs,
                              size_t first, size_t end);

/* True when the restore has returned with an error. */
bool trestle__group_live_failed(trestle__group_live *lv);

/* Wait for the restore to return; its result. Safe after a failed start. */
int trestle__group_live_join(trestle__group_live *lv, trestle_error *err);

/* ---- device exchange (engine/group/group_device.c) ---- */

/* How a device restore's rounds travel (trestle_group_exchange_kind), and
 * the stream, bounce buffers and NCCL communicator that do it: made by the
 * first device exchange of a group and kept in it (trestle_group.dev) for
 * the next, since an NCCL communicator takes 0.3 to 2 s to make and the
 * bounce buffers are 128 MiB of pinned or device memory. */
typedef struct trestle__group_dev trestle__group_dev;

/*
 * Set up the exchange of a restore (or ceiling) whose destinations may be
 * in device memory: `device` is this rank's restore device (-1: host
 * only), `stream` the caller's cudaStream_t (NULL: the legacy default
 * stream), which the exchange's copies into this rank's destinations wait
 * for, as the restore's own copies do. `*kept` is the group's kept
 * exchange: reused when every rank's fits (same device and `want`, no
 * failure), else let go of on every rank and made anew; on return it is
 * the exchange to use (and keep), or NULL when no rank has a device (kind
 * MPI_HOST). Collective over comm; every rank ends with the same kind.
 * `want` is a trestle_group_exchange_kind (AUTO: NCCL when every rank has
 * it, else staging; MPI_CUDA: CUDA-aware MPI when every rank's MPI says
 * so; STAGED). The kind and the reason go to *kind and note.
 * TRESTLE_E_NOMEM, TRESTLE_E_CUDA; on failure *kept is NULL and the caller
 * agrees on the error.
 */
int trestle__group_dev_open(trestle__group_dev **kept, MPI_Comm comm, int rank, int size,
                            int device, int want, void *stream, int *kind, char *note,
                            size_t note_cap, trestle_error *err);

/* Free a kept exchange. With comm (the one it was made over, at the
 * group's end) collective on every rank that holds one, which is every
 * rank or none: an NCCL communicator is then destroyed together when all
 * are healthy. MPI_COMM_NULL: this rank alone, an NCCL comm aborted. */
void trestle__group_dev_free(trestle__group_dev *dx, MPI_Comm comm);

/* One round of root's runs: `n` pieces (addr[k], len[k] bytes, on device
 * dev[k] or -1 for host), `bytes` in all, then *status is the root's.
 * `direct` false: this rank has no destinations (its restore failed), so
 * it takes part without copying. A CUDA failure is kept for
 * trestle__group_dev_close() and turns later rounds indirect, so the
 * collectives still match. TRESTLE_E_GROUP when MPI or NCCL fails. */
int trestle__group_dev_round(trestle__group_dev *dx, MPI_Comm comm, int root, int rank,
                             uint8_t *const *addr, const uint64_t *len, const int *dev, int n,
                             uint64_t bytes, bool direct, int *status, trestle_error *err);

/* Write `len` bytes at buf: bytes [at, at + len) of a part round's payload. */
typedef void (*trestle__group_fill_fn)(void *user, uint8_t *buf, uint64_t at, uint64_t len);

/* One round of a payload the root holds in host memory (the parts of a
 * tensor it read whole, engine/group/group_scatter.c): at the root, fill()
 * writes its bytes [at, at + bytes) into the exchange's host side (NULL:
 * the root has nothing to give, and no rank copies this round); they are
 * broadcast as a round of dev_round() is, status word included; then every
 * rank, the root too, copies bytes [from, from + len) of the round to dst,
 * on device dst_dev or -1 for host memory (len 0: nothing), on the
 * exchange's stream. Failures as for trestle__group_dev_round(). */
int trestle__group_dev_part_round(trestle__group_dev *dx, MPI_Comm comm, int root, int rank,
                                  trestle__group_fill_fn fill, void *user, uint64_t at,
                                  uint64_t bytes, uint8_t *dst, int dst_dev, uint64_t from,
                                  uint64_t len, trestle_error *err);

/* Wait for the copies queued so far (a receiver's unpack of the last
 * round runs on the exchange's stream), so that an exchange can be timed
 * to the end; the first CUDA failure of the exchange, which close() will
 * report too. NULL: OK. */
int trestle__group_dev_drain(trestle__group_dev *dx, trestle_error *err);

/* The exchange is over: wait for its last copies; the first CUDA failure
 * of the exchange, if any (the exchange is then not reused). Everything
 * stays for the next exchange. NULL: OK. */
int trestle__group_dev_end(trestle__group_dev *dx, trestle_error *err);

/* ---- NCCL, loaded at run time (engine/group/group_nccl.c) ---- */

#if TRESTLE_HAVE_CUDA
typedef struct trestle__nccl_comm *trestle__nccl_comm_t;     /* ncclComm_t */
typedef struct { char internal[128]; } trestle__nccl_id;    /* ncclUniqueId */
#define TRESTLE__NCCL_UINT8 1                               /* ncclUint8 */

typedef struct trestle__nccl {
    void *lib;
    int (*get_unique_id)(trestle__nccl_id *id);
    int (*init_config)(trestle__nccl_comm_t *comm, int nranks, trestle__nccl_id id, int rank,
                       void *config);
    int (*get_async_error)(trestle__nccl_comm_t comm, int *state);
    int (*broadcast)(const void *send, void *recv, size_t count, int dtype, int root,
                     trestle__nccl_comm_t comm, void *stream);
    int (*finalize)(trestle__nccl_comm_t comm);
    int (*destroy)(trestle__nccl_comm_t comm);
    int (*abort)(trestle__nccl_comm_t comm);
    const char *(*error_string)(int result);
    trestle__nccl_comm_t comm; /* NULL until initialised, and once aborted */
    bool failed;               /* a broadcast failed: the comm is aborted, not destroyed */
} trestle__nccl;

/* Load `path` (libnccl.so.2, 2.14 or later); false (and why, in note) when
 * it is not there or too old, which is no error. */
bool trestle__nccl_load(trestle__nccl *n, const char *path, char *note, size_t cap);

/* Make the communicator over comm, on the calling thread's current
 * device, without blocking past TRESTLE_NCCL_TIMEOUT; collective, and
 * agreed: true on every rank, or false on every rank with the first
 * failing rank's reason in note and no rank holding a comm. */
bool trestle__nccl_init(trestle__nccl *n, MPI_Comm comm, int rank, int size, char *note,
                        size_t cap);

/* ncclBroadcast of `bytes` at buf in place from root on stream; NCCL's
 * result (7, in progress, when it did not finish in time). */
int trestle__nccl_broadcast(trestle__nccl *n, void *buf, size_t bytes, int root, void *stream);

/* The text of a result of trestle__nccl_broadcast(). */
const char *trestle__nccl_error(const trestle__nccl *n, int r);

/* Abort the comm (after a failed broadcast: its queued work may wait for
 * a peer forever); the comm is then gone. */
void trestle__nccl_abort(trestle__nccl *n);

/* Let go of the comm and the library: finalised and destroyed when
 * `together` (every rank of the comm is closing its healthy comm now:
 * agreed by the caller), else aborted. */
void trestle__nccl_close(trestle__nccl *n, bool together);
#endif

/* ---- the exchange (engine/group/group_exchange.c) ---- */

/*
 * Every rank broadcasts the bytes of its runs (runs[r] for rank r) from its
 * destinations to the same places in everyone else's, while its own part
 * is still being restored by lv: a round goes out as soon as the ops it
 * touches are in place at the root (and have destinations at the
 * receivers). Rounds take turns between the roots. Each carries the root's
 * status first: once a root's restore has failed, every rank stops after
 * that round (*stopped) and the outcome is left to the agreement. dx NULL:
 * host destinations, moved by MPI straight between them; else the rounds
 * go through trestle__group_dev_round().
 * TRESTLE_E_NOMEM or TRESTLE_E_GROUP.
 */
int trestle__group_exchange(MPI_Comm comm, int rank, int size, trestle__group_live *lv,
                            const trestle__group_runs *runs, trestle__group_dev *dx,
                            bool *stopped, trestle_error *err);

/* ---- tensor-parallel parts read once (engine/group/group_parts.c) ---- */

/* A tensor-parallel op whose part no rank can read alone: one rank of the
 * read-once scope (its owner) reads the op whole, without the shard rule,
 * and sends every other rank of the scope its part of dimension `dim`. */
typedef struct trestle__group_shared {
    size_t op;          /* the op, the same index in every rank's plan of its parts */
    int dim;            /* the shard rule's dimension */
    int owner;          /* the rank in g->xcomm that reads it */
    size_t whole;       /* on the owner: its op in the owner's plan of whole ops */
} trestle__group_shared;

/*
 * Move the parts (engine/group/group_scatter.c): for each of the n shared
 * ops, in order, its owner copies its own part out of `whole` (its restored
 * plan of whole ops; NULL on a rank that owns none) into op sh->op of
 * `parts`, and sends every other rank of the scope its part (the rows of
 * part `global[q]` of g->size along sh->dim, for scope rank q), which lands
 * in that rank's op sh->op of `parts`, restored, in host memory. Messages
 * are at most TRESTLE__GROUP_ROUND_BYTES, described on the sending side by
 * hindexed datatypes over the rows, so nothing is packed. Point to point
 * over g->xcomm; every rank of the scope takes part. Bytes sent and
 * received are added to *sent and *received. TRESTLE_E_GROUP (an MPI call
 * failed), TRESTLE_E_INVALID_ARG (a part whose size is not the op's: the
 * plans differ).
 */
int trestle__group_send_parts(const trestle_group *g, const int *global,
                              const trestle__group_shared *sh, size_t n, trestle_plan *parts,
                              const trestle_plan *whole, uint64_t *sent, uint64_t *received,
                              trestle_error *err);

/*
 * The same through the device exchange dx (engine/group/group_device.c),
 * for a scope where some rank's destinations are in device memory: for
 * each shared op the owner broadcasts the scope's parts end to end, in
 * rounds of at most TRESTLE__GROUP_ROUND_BYTES (trestle__group_dev_part_round()),
 * and every rank copies its own part out of them, onto its device or into
 * host memory, on the exchange's stream (trestle__group_dev_end() waits for
 * the last copies). Collective over g->xcomm: an MPI_Allgather of the
 * parts' sizes, then one round after another. *sent: the payload bytes
 * this rank broadcast; *received: those the others broadcast to it (all of
 * each payload, of which it keeps its part). Errors as
 * trestle__group_send_parts().
 */
int trestle__group_send_parts_dev(const trestle_group *g, trestle__group_dev *dx,
                                  const int *global, const trestle__group_shared *sh, size_t n,
                                  trestle_plan *parts, const trestle_plan *whole, uint64_t *sent,
                                  uint64_t *received, trestle_error *err);

#endif /* TRESTLE_GROUP_H */
