/**
 * @file trestle_mpi.h
 * @brief The public API of libtrestle_mpi: one checkpoint restored by a
 * group of MPI processes, read from storage once.
 *
 * libtrestle itself never links MPI. This small library, built when CMake
 * finds MPI, turns an MPI communicator into a trestle_group and restores a
 * plan across it:
 *
 *     every rank plans the same ops        (trestle_plan_create, as usual)
 *     trestle_group_restore():
 *       1. the plan's extents are split into one consecutive part per
 *          rank, balanced by bytes (whole extents, in (shard, offset)
 *          order, so each rank reads sequentially within a shard);
 *       2. each rank restores only its part (read, CRC32C, copy), through
 *          trestle_plan_keep_extents(), on a thread of its own;
 *       3. one collective checks that every rank got that far;
 *       4. meanwhile the calling thread exchanges: each rank broadcasts the
 *          verified destination bytes of its part (trestle_plan_extent_runs())
 *          straight between the destinations, with MPI derived datatypes,
 *          in rounds of at most 64 MiB that go out as soon as their tensors
 *          are in place at the root, so exchange overlaps reading; roots
 *          take turns round by round;
 *       5. a last collective agrees on the outcome: the first failing
 *          rank's error, prefixed "rank R of N: ", becomes every rank's, so
 *          nothing counts as restored on any rank unless it is on all.
 *     every rank now holds every planned tensor.
 *
 * Each round carries its root's status, so a root whose restore failed
 * stops the exchange for everyone at its next round.
 *
 * Read-once scope (trestle_group_create_with()): the whole group, as
 * above, or each node on its own: steps 1, 2 and 4 then run among the
 * ranks of each node, so every node reads the checkpoint once from its own
 * disks or page cache and nothing crosses between nodes, while steps 3 and
 * 5 still span the whole group.
 *
 * Device ranks: with `opt->device` set, each rank restores its part
 * straight to its GPU (trestle_group_local_device() picks one by
 * node-local rank) and the rounds travel between GPUs by the best way
 * every rank of the exchange has (trestle_group_exchange_kind): NCCL when
 * libnccl.so.2 (2.14 or later) loads at run time (libtrestle_mpi neither
 * links nor requires it; its absence, or a failed or slow
 * ncclCommInitRankConfig, falls back quietly: the init is non-blocking and
 * given TRESTLE_NCCL_TIMEOUT seconds, default 120), else pinned host
 * staging over MPI; MPI on device memory only when asked for
 * (trestle_group_options.exchange MPI_CUDA) and every rank's MPI says it
 * is CUDA-aware (Open MPI's MPIX_Query_cuda_support()).
 * trestle_group_stats.exchange and exchange_note say which ran and why.
 * The exchange's copies wait for the work queued on `opt->cuda_stream`
 * (or the legacy default stream) before the call, as the restore's own
 * do; the calling thread's CUDA context is left as it was. The NCCL
 * communicator, stream and bounce buffers are made by a group's first
 * device exchange and kept for the next, until trestle_group_free(). trestle_group_exchange_ceiling() times that same exchange alone,
 * between buffers of a given size, for benchmarks (`trestle bench`). The
 * staged path is tested on the CUDA mock, the NCCL path on the CUDA mock
 * with a mock NCCL (tests/cudamock/ncclmock.c); CUDA-aware MPI, and NCCL
 * on real GPUs, are not tested in CI.
 *
 * Tensor-parallel parts (trestle_plan_options.shard_rules) differ per rank:
 * plan those tensors separately. trestle_group_restore_parts() restores
 * them reading each stored byte once (tools/mpicli_main.c uses it): each
 * rank reads its own part's bytes where they can be read alone
 * (partial_reads, the parts' CRC32C checked together by
 * trestle_group_check_shares()), and one rank reads a tensor whole for the
 * others where they cannot (narrow tensors split by columns), sending each
 * its part, into host memory or onto its device. The lower-level path stays: trestle_restore() of a plan with
 * partial_reads on each rank, then trestle_group_check_shares().
 *
 * Rules of trestle.h hold here: one error type, 0 or a positive
 * trestle_code, `err` filled on failure, nothing printed. All calls on a
 * group are collective unless said otherwise: every rank of the
 * communicator makes them, in the same order, from one thread at a time.
 * MPI must be initialised before trestle_group_create() and finalised after
 * trestle_group_free(). Only the thread that calls into the group makes
 * MPI calls (the restore's own threads never do), so MPI_THREAD_FUNNELED
 * is enough when that is the thread that initialised MPI, and
 * MPI_THREAD_SERIALIZED otherwise.
 *
 * Failure of a process: MPI without fault tolerance cannot report a dead
 * peer to the survivors. With Open MPI, mpirun notices a rank that died and
 * ends the others (non-zero exit) within about a second; the tests check
 * that they end within 30 s.
 */
#ifndef TRESTLE_MPI_H
#define TRESTLE_MPI_H

#include <mpi.h>

#include "trestle.h"

#ifdef __cplusplus
extern "C" {
#endif

/** A group of processes that share restores; made from an MPI communicator. */
typedef struct trestle_group trestle_group;

/**
 * @brief Make a group of the processes of `comm`, scope AUTO.
 *
 * The same as trestle_group_create_with() with default options and no
 * path, so across nodes the scope is NODE. The communicator is duplicated
 * (so the group's collectives never match the caller's) with
 * MPI_ERRORS_RETURN on the copy, so an MPI failure comes back as an error
 * instead of aborting the job.
 *
 * @param[in]  comm  an intracommunicator; every member calls this.
 * @param[out] out   the group, or NULL on failure; free with trestle_group_free().
 * @param[out] err   filled on failure; may be NULL.
 * @return TRESTLE_OK, TRESTLE_E_INVALID_ARG (MPI not initialised, NULL out),
 *         TRESTLE_E_GROUP (an MPI call failed), TRESTLE_E_NOMEM.
 * Collective. Since 0.2.
 */
TRESTLE_API int trestle_group_create(MPI_Comm comm, trestle_group **out, trestle_error *err);

/** Where a group restore reads each byte once (trestle_group_options.scope). */
typedef enum trestle_group_scope {
    TRESTLE_GROUP_SCOPE_AUTO = 0,  /**< choose from locality (the rule below); the default */
    TRESTLE_GROUP_SCOPE_GROUP = 1, /**< once for the whole group: ranks split the extents and
                                        exchange across nodes (shared storage: NFS, Lustre, ...) */
    TRESTLE_GROUP_SCOPE_NODE = 2   /**< once per node: the ranks of each node split the extents
                                        and exchange within the node only (node-local disks, or
                                        a page cache each node fills for itself) */
} trestle_group_scope;

/** How a group restore moves verified bytes between ranks
 *  (trestle_group_options.exchange, trestle_group_stats.exchange). */
typedef enum trestle_group_exchange_kind {
    TRESTLE_GROUP_EXCHANGE_AUTO = 0,     /**< options: the best one available (below) */
    TRESTLE_GROUP_EXCHANGE_MPI_HOST = 1, /**< host destinations on every rank: MPI broadcasts
                                              straight between them (hindexed datatypes) */
    TRESTLE_GROUP_EXCHANGE_STAGED = 2,   /**< device destinations: the round's root copies its
                                              bytes device-to-host into a pinned bounce buffer
                                              (2 x 64 MiB, used in turn), MPI broadcasts it, the
                                              others copy host-to-device */
    TRESTLE_GROUP_EXCHANGE_MPI_CUDA = 3, /**< device destinations, CUDA-aware MPI: MPI
                                              broadcasts a device bounce buffer */
    TRESTLE_GROUP_EXCHANGE_NCCL = 4      /**< device destinations, NCCL (libnccl.so.2, loaded
                                              at run time): ncclBroadcast of a device bounce
                                              buffer on a stream, no host copy */
} trestle_group_exchange_kind;

/**
 * Options for trestle_group_create_with(). Fill with
 * trestle_group_options_init(); read by the options rule of trestle.h
 * (its overview's "Options"), the struct's first release being 0.2's.
 * Every rank passes the same scope, and node_id either on every rank or
 * on none. Since 0.2.
 *
 * The AUTO rule: when every rank is on one node, both scopes are the same
 * and GROUP is reported. Across nodes, GROUP when every rank finds `path`
 * on a shared file system (statfs f_type: NFS, Lustre, CIFS/SMB, GPFS,
 * CephFS, BeeGFS, AFS, 9P, OrangeFS, Panasas or FUSE, which network file
 * systems such as GlusterFS, JuiceFS and cloud buckets mount through), so
 * that the slowest part of the system, the shared storage, serves each
 * byte once; NODE otherwise (a local file system on any rank, or no `path`),
 * so that no byte crosses the fabric that a node's own disk or page cache
 * can serve. Rank 0 of trestle-mpi prints the choice and the reason.
 */
typedef struct trestle_group_options {
    size_t size;        /**< sizeof(trestle_group_options), set by init */
    int scope;          /**< a trestle_group_scope (default AUTO) */
    int node_id;        /**< -1 (default): nodes are the ranks that share memory
                             (MPI_Comm_split_type with MPI_COMM_TYPE_SHARED). >= 0: this rank's
                             node, the colour of an MPI_Comm_split, so that tests on one
                             machine can simulate several nodes (trestle-mpi --simulate-nodes) */
    const char *path;   /**< the checkpoint (prefix, .index file or directory) the AUTO rule
                             looks at, or NULL; read during the call only */
    int exchange;       /**< a trestle_group_exchange_kind for device restores: AUTO (default:
                             NCCL, else STAGED), STAGED, to compare with or rule out the
                             others, or MPI_CUDA (since 0.2: CUDA-aware MPI when every rank's
                             MPI says it is, which AUTO never trusts, since the answer is how
                             the MPI was built, not whether its transport takes device
                             pointers); a kind that is not available falls back to STAGED,
                             never an error */
    int reserved_int;   /**< must be zero */
    void *reserved[5];  /**< must be zero */
} trestle_group_options;

/**
 * @brief Fill `opt` with the defaults (scope AUTO, node_id -1, no path)
 * and set `opt->size`.
 * @param[out] opt  caller-owned options; must not be NULL.
 * Thread-safe. Since 0.2.
 */
TRESTLE_API void trestle_group_options_init(trestle_group_options *opt);

/**
 * @brief Make a group of the processes of `comm`, with a read-once scope.
 *
 * As trestle_group_create(), and: finds each rank's node (see
 * trestle_group_options.node_id) and resolves the scope (the AUTO rule
 * above) once for every restore of the group. With scope NODE each
 * restore splits the extents among the ranks of each node and exchanges
 * within the node, so storage serves the checkpoint once per node; the
 * collectives that agree on an outcome still span the whole group, so a
 * failure on any node fails every rank alike.
 *
 * @param[in]  comm  an intracommunicator; every member calls this.
 * @param[in]  opt   options, or NULL for the defaults.
 * @param[out] out   the group, or NULL on failure; free with trestle_group_free().
 * @param[out] err   filled on failure (the same on every rank); may be NULL.
 * @return TRESTLE_OK, TRESTLE_E_INVALID_ARG (MPI not initialised, NULL out,
 *         `opt` refused by the options rule, an unknown scope, node_id
 *         given on some ranks only),
 *         TRESTLE_E_GROUP (an MPI call failed), TRESTLE_E_NOMEM.
 * Collective. Since 0.2.
 */
TRESTLE_API int trestle_group_create_with(MPI_Comm comm, const trestle_group_options *opt,
                                          trestle_group **out, trestle_error *err);

/**
 * @brief Free a group, its communicator and the device exchange its
 * restores kept (an NCCL communicator, destroyed together when every
 * rank's is healthy, else aborted; the stream and bounce buffers).
 * @param[in] g  the group, or NULL (then nothing happens).
 * Collective (MPI_Comm_free). Since 0.2.
 */
TRESTLE_API void trestle_group_free(trestle_group *g);

/**
 * @brief This process's rank in the group, 0 <= rank < size.
 * @param[in] g  the group; NULL gives 0.
 * @return the rank. Local, thread-safe. Since 0.2.
 */
TRESTLE_API int trestle_group_rank(const trestle_group *g);

/**
 * @brief Number of processes in the group.
 * @param[in] g  the group; NULL gives 1.
 * @return the count. Local, thread-safe. Since 0.2.
 */
TRESTLE_API int trestle_group_size(const trestle_group *g);

/**
 * @brief The CUDA device of this rank by node-local rank: the rank's index
 * among the group's ranks on its node, modulo the node's device count
 * (`--device local`). One process per GPU, as inference servers run, gets
 * GPU 0, 1, ... on every node.
 *
 * @param[in]  g       the group.
 * @param[out] device  the ordinal, or -1 on failure; not NULL.
 * @param[out] err     filled on failure; may be NULL.
 * @return TRESTLE_OK, TRESTLE_E_INVALID_ARG (NULL arguments),
 *         TRESTLE_E_NO_DEVICE (no device, or a build without CUDA).
 * Local; thread-safe. Since 0.2.
 */
TRESTLE_API int trestle_group_local_device(const trestle_group *g, int *device,
                                           trestle_error *err);

/** What one rank did in a group restore. Bytes exchanged are destination
 *  bytes (after any dtype conversion); bytes read are storage bytes. */
typedef struct trestle_group_stats {
    int rank;                  /**< this process's rank */
    int size;                  /**< processes in the group */
    size_t extents;            /**< extents this rank read and checked */
    uint64_t bytes_read;       /**< bytes this rank read from storage */
    uint64_t bytes_sent;       /**< destination bytes of its part it gave the others (counted
                                    once, whatever the number of receivers) */
    uint64_t bytes_received;   /**< destination bytes it received from the others */
    double restore_seconds;    /**< wall time of its own part's restore (read, check, copy) */
    double exchange_seconds;   /**< wall time of the exchange */
    double agree_seconds;      /**< wall time in the collectives that agree on the outcome
                                    (waiting for the slowest rank's part shows here) */
    double wall_seconds;       /**< the whole call */
    trestle_stats local;       /**< this rank's own restore, as trestle_restore() fills it */
    int scope;                 /**< the scope it read once over: TRESTLE_GROUP_SCOPE_GROUP or
                                    _NODE (AUTO resolved); since 0.2 */
    int nodes;                 /**< nodes in the group; since 0.2 */
    int node;                  /**< this rank's node, 0 <= node < nodes; since 0.2 */
    int node_size;             /**< ranks on this rank's node; since 0.2 */
    char scope_note[160];      /**< why that scope, e.g. "2 nodes and the checkpoint is on ext4,
                                    not a shared file system: each byte read once per node";
                                    since 0.2 */
    int exchange;              /**< the trestle_group_exchange_kind that ran; MPI_HOST also when
                                    nothing was exchanged; since 0.2 */
    char exchange_note[160];   /**< why that exchange, e.g. "libnccl.so.2 not loaded (...); MPI is
                                    not CUDA-aware: pinned host staging"; since 0.2 */
} trestle_group_stats;

/**
 * @brief Restore plan `p` on every rank of the group, reading each extent
 * from storage on one rank only.
 *
 * Every rank must pass a plan of the same ops, options and checkpoint
 * (checked: a fingerprint of the plans' extents and op sizes is compared,
 * and a mismatch fails every rank). "The same checkpoint" means the same
 * version, wherever each rank finds it: since 0.2 the ranks compare their
 * checkpoints' trestle_checkpoint_identity() (the .index file's size and
 * CRC-32C) before anything is read, so node-local copies of two versions
 * with one layout fail every rank alike instead of mixing, naming each
 * version and its ranks: "the ranks read 2 different versions of the
 * checkpoint (their .index files differ): 153 bytes with CRC32C 0xa90ee093
 * on ranks 0, 1; 153 bytes with CRC32C 0x8ce0ff44 on ranks 2, 3. Every rank
 * must read the same files: ...".
 *
 * Destinations are host memory (TRESTLE_DEST_ALLOCATE with `opt->device` -1, or TRESTLE_DEST_HOST) or,
 * since 0.2, device memory (TRESTLE_DEST_ALLOCATE or TRESTLE_DEST_DEVICE,
 * with `opt->device` >= 0 naming this rank's GPU, which the exchange uses
 * too), which ranks may mix; ops with
 * TRESTLE_DEST_DISCARD are checked by their reader only. Device
 * destinations are complete when the call returns: the exchange's copies
 * run on a stream of its own, synchronised before the last agreement. The
 * calling thread's current CUDA device is left as it was.
 *
 * `p` is kept to this rank's part (trestle_plan_keep_extents()) and cannot
 * be group-restored again: plan again for another restore. The ready
 * callback in `opt`, if any, is called from this rank's restore for the
 * ops its own part writes, when that part of them is in place (before the
 * exchange has brought the rest).
 *
 * @param[in]     g      the group.
 * @param[in,out] p      the plan; not NULL.
 * @param[in]     opt    restore options, or NULL for defaults; `host_map`
 *                       must be 0 (a mapping of this rank's shard files
 *                       has no room for bytes other ranks read).
 * @param[out]    stats  this rank's figures (also on failure); may be NULL.
 * @param[out]    err    filled on failure; may be NULL. Every rank gets the
 *                       same code and message, "rank R of N: <the error of
 *                       the lowest failing rank R>".
 * @return TRESTLE_OK or the failing rank's code (TRESTLE_E_CRC_MISMATCH,
 *         TRESTLE_E_IO, ... as trestle_restore()), TRESTLE_E_UNSUPPORTED
 *         (host_map, a device list in `opt->devices`, a plan restored
 *         before), TRESTLE_E_INVALID_ARG (plans or checkpoint versions
 *         differ between ranks, `opt` refused by the options rule),
 *         TRESTLE_E_GROUP (an MPI or NCCL call failed), TRESTLE_E_CUDA (a
 *         copy of the exchange failed),
 *         TRESTLE_E_NO_DEVICE (device destinations in a build without CUDA).
 * Collective; blocks the calling thread, which makes every MPI call. Since 0.2.
 */
TRESTLE_API int trestle_group_restore(trestle_group *g, trestle_plan *p,
                                      const trestle_restore_options *opt,
                                      trestle_group_stats *stats, trestle_error *err);

/** The exchange ceiling of a group: its restore's exchange alone
 *  (trestle_group_exchange_ceiling()). Since 0.2. */
typedef struct trestle_group_ceiling {
    uint64_t bytes;            /**< bytes every rank ended each run with: the `bytes` asked for */
    double seconds;            /**< the best run's wall time, the slowest rank's (0: no rank
                                    exchanged anything: one rank in every scope, or no bytes) */
    double gbps;               /**< bytes / seconds / 1e9: bytes delivered to every rank per
                                    second, the unit of a restore's delivery (0 with seconds 0) */
    int runs;                  /**< runs timed; the best one counts */
    int ranks;                 /**< ranks that took turns as roots: this rank's read-once scope
                                    (the group, or its node) */
    int exchange;              /**< the trestle_group_exchange_kind that ran (MPI_HOST also when
                                    nothing was exchanged) */
    char exchange_note[160];   /**< why that exchange, as trestle_group_stats.exchange_note */
    uint64_t reserved[4];      /**< zero; room to grow */
} trestle_group_ceiling;

/**
 * @brief Time the exchange of a group restore alone: the most bytes per
 * second a restore of this group can deliver to every rank, whatever its
 * storage (the fabric's ceiling, beside the storage's).
 *
 * Every rank takes a buffer of `bytes`, in host memory (`device` -1) or on
 * CUDA device `device` (as a restore's destinations with
 * trestle_restore_options.device), and broadcasts its 1/N of it to the
 * other ranks of its read-once scope (the whole group, or its node under
 * scope NODE, every node at once), by exactly the path
 * trestle_group_restore() takes: the same 64 MiB rounds, roots taking
 * turns, each with its status word; MPI broadcasts between host buffers,
 * or for device buffers the exchange the group would choose
 * (trestle_group_exchange_kind: NCCL, CUDA-aware MPI or pinned staging,
 * honouring trestle_group_options.exchange). Setting the exchange up (e.g.
 * ncclCommInitRank) is not timed, as in trestle_group_stats.exchange_seconds;
 * a run ends when every rank's last copy into its buffer is done. The
 * best of three runs counts. The bytes are not a checkpoint's: what
 * arrives is not checked.
 *
 * @param[in]  g       the group.
 * @param[in]  bytes   bytes each rank ends with (e.g. a plan's
 *                     trestle_plan_stats.output_bytes); the same on every
 *                     rank (checked). 0: nothing is exchanged.
 * @param[in]  device  this rank's CUDA device, or -1 for host memory; ranks
 *                     may differ, as in a restore.
 * @param[out] out     the figures; also on failure, with seconds and gbps 0;
 *                     not NULL.
 * @param[out] err     filled on failure; may be NULL. Every rank gets the
 *                     same code and message, "rank R of N: <the error of
 *                     the lowest failing rank R>".
 * @return TRESTLE_OK, TRESTLE_E_INVALID_ARG (NULL out, `bytes` differing
 *         between ranks, a device below -1), TRESTLE_E_NOMEM (the buffer
 *         cannot be had, in host or device memory), TRESTLE_E_CUDA (a CUDA
 *         call or a copy of the exchange failed), TRESTLE_E_GROUP (an MPI
 *         or NCCL call failed), TRESTLE_E_NO_DEVICE (a device in a build
 *         without CUDA).
 * Collective; blocks the calling thread, which makes every MPI call; the
 * calling thread's current CUDA device is left as it was. Since 0.2.
 */
TRESTLE_API int trestle_group_exchange_ceiling(trestle_group *g, uint64_t bytes, int device,
                                               trestle_group_ceiling *out, trestle_error *err);

/**
 * @brief Agree on an outcome: the one collective that makes a failure on
 * any rank the failure of every rank.
 *
 * For work a caller does on each rank beside a group restore (e.g. the
 * tensor-parallel parts each rank restores alone): every rank passes its
 * own result, and all get the lowest failing rank's, the same code and
 * message, "rank R of N: <its message>".
 *
 * @param[in]  g     the group.
 * @param[in]  rc    this rank's result: TRESTLE_OK or a trestle_code.
 * @param[in]  mine  this rank's error when rc is not OK; may be NULL then
 *                   too (the code's text is used).
 * @param[out] err   filled with the agreed error on failure; may be NULL.
 * @return TRESTLE_OK when every rank passed TRESTLE_OK, else the agreed
 *         code; TRESTLE_E_GROUP when an MPI call failed.
 * Collective. Since 0.2.
 */
TRESTLE_API int trestle_group_agree(trestle_group *g, int rc, const trestle_error *mine,
                                    trestle_error *err);

/**
 * @brief Check the CRC32C of every tensor the ranks read in parts
 * (trestle_plan_options.partial_reads): combine each rank's CRC shares with
 * one MPI_Allreduce (MPI_BXOR) and compare every combination with the
 * stored CRC.
 *
 * Call it on every rank after each has restored its part's plan (made with
 * the same ops, rules and options, shard_rank = its rank, shard_world = the
 * group's size) and before anything counts as restored: until it returns
 * TRESTLE_OK those parts are read but not verified
 * (trestle_stats.bytes_deferred). Which rank read a corrupt byte cannot be
 * told, so no rank is named. Parts of two versions of the checkpoint would
 * not combine either: the ranks' checkpoint versions are compared first,
 * as trestle_group_restore() does, and named when they differ.
 *
 * @param[in]  g    the group.
 * @param[in]  p    this rank's plan of its parts, restored with verify on.
 * @param[out] err  filled on failure; may be NULL. Every rank gets the same
 *                  code and message, e.g. "CRC32C of tensor 'X' (shard
 *                  PATH, offset N) over the 4 ranks' parts does not match
 *                  (stored CRC32C 0x..., the parts combine to 0x...): some
 *                  part read corrupt bytes", with key, path and offset set.
 * @return TRESTLE_OK (also when no tensor was read in parts),
 *         TRESTLE_E_CRC_MISMATCH, TRESTLE_E_INVALID_ARG (the ranks read
 *         different versions of the checkpoint; their plans defer
 *         different numbers of tensors; a rank planned another part
 *         than its rank of the group's size, as with one tensor-parallel
 *         group per node of a larger job: check within each such group;
 *         a rank's shares are not computed: its restore failed or ran
 *         without verify, naming the lowest such rank), TRESTLE_E_GROUP (an
 *         MPI call failed).
 * Collective. Since 0.2.
 */
TRESTLE_API int trestle_group_check_shares(trestle_group *g, const trestle_plan *p,
                                           trestle_error *err);

/**
 * @brief Restore this rank's tensor-parallel parts of `ops`, reading every
 * stored byte once in the read-once scope, and check their CRC32C.
 *
 * Plans `ops` with the caller's options as part `rank` of the group's size
 * (trestle_plan_options.shard_rules; shard_rank, shard_world and
 * partial_reads are set here), then:
 *   - a part its rank can read alone (one run, or runs more than
 *     max_gap_bytes apart) is read so, and the parts' CRC32C shares are
 *     checked together (trestle_group_check_shares()) when `opt->verify`;
 *   - a tensor whose parts no rank can read alone (column splits of narrow
 *     tensors, whose rows lie closer than max_gap_bytes; stored slices that
 *     several parts share) is read once, whole and CRC-checked, by one rank
 *     of the read-once scope, chosen to even out the bytes; it sends every
 *     other rank of the scope its part (MPI, point to point, no packing
 *     copy), and the others read none of it (trestle_plan_drop_op_reads()).
 *     When some rank of the scope restores to a device (`opt->device`),
 *     the parts travel by the group's device exchange instead, the one
 *     trestle_group_restore() chooses and keeps (NCCL, CUDA-aware MPI
 *     only when asked for, or pinned host staging): the owner broadcasts
 *     the scope's parts end to end, in rounds of at most 64 MiB, and each
 *     rank copies its own part out of every round on the exchange's
 *     stream, after the work queued on `opt->cuda_stream` before the call
 *     (the fabric so carries every part to every rank of the scope, where
 *     point to point between host destinations carries each once). A rank
 *     alone in its read-once scope reads such a tensor whole itself, which
 *     is reading it once there.
 * So the ranks of a scope read the parts' stored bytes once between them,
 * whatever the rules and destinations, instead of up to N times. Ops that no rule matches are
 * restored whole by every rank (plan them for trestle_group_restore() to
 * read them once instead).
 *
 * The ready callback in `opt` is called for the ops this rank's own reads
 * write; an op whose part another rank sends is in place when the call
 * returns, and is not reported to it.
 *
 * @param[in]  g      the group.
 * @param[in]  c      this rank's open checkpoint: the same version on every
 *                    rank (compared first, as trestle_group_restore() does).
 * @param[in]  ops    the ops, the same on every rank, or NULL for every
 *                    tensor (n 0); as for trestle_plan_create().
 * @param[in]  n      the count.
 * @param[in]  po     plan options (renames, exclusions, shard rules,
 *                    max_gap_bytes, ...), or NULL for defaults; the same on
 *                    every rank.
 * @param[in]  opt    restore options, or NULL for defaults; as for
 *                    trestle_group_restore().
 * @param[out] out    this rank's plan of its parts, restored: its ops hold
 *                    the parts (trestle_plan_get_op()); NULL on failure.
 *                    Free with trestle_plan_free().
 * @param[out] stats  this rank's figures (also on failure); may be NULL.
 *                    bytes_read counts every byte this rank read, its own
 *                    parts and whole tensors read for others; bytes_sent
 *                    and bytes_received the parts' bytes that went between
 *                    ranks (between host destinations each part once, to
 *                    its rank; by the device exchange the owner's payload
 *                    of the scope's parts, which every other rank of the
 *                    scope receives whole); `local` the restore of its
 *                    parts plus, in its byte and busy-time counts, the
 *                    whole tensors it read;
 *                    exchange is the kind that moved the parts (MPI_HOST
 *                    between host destinations, else the device exchange's
 *                    NCCL, MPI_CUDA or STAGED) and exchange_note says which
 *                    tensors were read whole for others and how their parts
 *                    went (e.g. "96 tensors (42.00 MiB) whose parts no rank
 *                    reads alone: each read whole by one rank, its parts
 *                    broadcast by NCCL"), or why nothing was sent.
 * @param[out] err    filled on failure; may be NULL. Every rank gets the
 *                    same code and message: "rank R of N: <the error of the
 *                    lowest failing rank R>", or the group's own finding
 *                    (versions differ, shares do not combine) as it is.
 * @return TRESTLE_OK, or any code of trestle_plan_create(),
 *         trestle_restore() and trestle_group_check_shares();
 *         TRESTLE_E_INVALID_ARG also for NULL arguments and checkpoint
 *         versions that differ between ranks; TRESTLE_E_GROUP when an MPI
 *         or NCCL call failed; TRESTLE_E_CUDA (a copy of the device
 *         exchange failed), TRESTLE_E_NOMEM (its buffers).
 * Collective; blocks the calling thread, which makes every MPI call; the
 * calling thread's current CUDA device is left as it was. Since 0.2.
 */
TRESTLE_API int trestle_group_restore_parts(trestle_group *g, const trestle_checkpoint *c,
                                            const trestle_op *ops, size_t n,
                                            const trestle_plan_options *po,
                                            const trestle_restore_options *opt,
                                            trestle_plan **out, trestle_group_stats *stats,
                                            trestle_error *err);

/**
 * @brief The consecutive extent range [*first, *end) that `rank` of `size`
 * reads: parts balanced by bytes over the extents' sizes, whole extents.
 *
 * Exposed so tools and tests can tell which rank reads which bytes.
 * @param[in]  p     the plan (not yet kept to a part).
 * @param[in]  rank  0 <= rank < size.
 * @param[in]  size  number of parts, >= 1.
 * @param[out] first, end  the range; not NULL.
 * Local, thread-safe. Since 0.2.
 */
TRESTLE_API void trestle_group_part(const trestle_plan *p, int rank, int size, size_t *first,
                                    size_t *end);

#ifdef __cplusplus
}
#endif

#endif /* TRESTLE_MPI_H */
