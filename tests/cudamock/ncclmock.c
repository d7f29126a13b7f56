/*
 * ncclmock.c - the part of NCCL that engine/group/group_device.c uses, across
 * the processes of one machine, on the CUDA mock (tests only, never
 * installed). Built in TRESTLE_CUDA_MOCK builds with MPI as
 * <build>/tests/ncclmock/libnccl.so.2; a test points
 * TRESTLE_CUDAMOCK_NCCL at it and the mock build of trestle-mpi dlopens it
 * as it would the real one.
 *
 * How it works, with no MPI of its own:
 *
 *   ncclGetUniqueId   creates a POSIX shared-memory segment (a header and
 *                     a data window) and puts its name in the id.
 *   ncclCommInitRank  maps it, checks nranks and rank against the other
 *                     ranks', and waits until all nranks have arrived; the
 *                     last one unlinks the name (the mappings stay). Two
 *                     ranks on one device (the same PCI bus id) fail every
 *                     rank with ncclInvalidUsage, as NCCL's "Duplicate GPU
 *                     detected" does.
 *   ncclBroadcast     synchronizes the stream (the work queued before it
 *                     is done, as the stream order of a real broadcast
 *                     promises), then moves the bytes through the data
 *                     window in chunks, with a process-shared barrier
 *                     (atomics in the segment) around each: the root
 *                     copies device-to-host into it with the mock's own
 *                     cudaMemcpyAsync on the caller's stream, the others
 *                     host-to-device out of it. Device memory of the mock
 *                     is PROT_NONE to the host, so the CUDA calls are the
 *                     only way to its bytes; they are the mock's, exported
 *                     by the process that loads this library (libtrestle.so,
 *                     or trestle-mpi in a mock build).
 *   ncclCommInitRankConfig  the same; with config->blocking = 0 it
 *                     returns ncclInProgress at once and the init goes on
 *                     in a thread of its own, polled with
 *                     ncclCommGetAsyncError and cancelled by ncclCommAbort.
 *   ncclCommFinalize, a collective, as NCCL documents it: each waits until
 *   ncclCommDestroy   every rank of the comm has finalized or destroyed its
 *                     own (ranks that aborted do not count), then unmaps.
 *                     A real NCCL waits forever; the mock waits out its
 *                     bound and says so ("would hang").
 *   ncclCommAbort     unmaps at once, waiting for no one; tells the others.
 *
 * Stricter than NCCL where NCCL would hang or corrupt quietly: a buffer
 * that is not device memory of the comm's device (the device current at
 * ncclCommInitRank), a stream of another device, a root out of range, an
 * unknown datatype or a destroyed comm fail with ncclInvalidArgument; count,
 * datatype or root that differ between ranks fail every rank with
 * ncclInvalidUsage; every wait is bounded (TRESTLE_NCCLMOCK_TIMEOUT_MS,
 * default 30000), and a rank that fails tells the others, which fail with
 * ncclRemoteError instead of waiting. Looser than NCCL: a broadcast is done
 * when the call returns, where NCCL only queues it on the stream.
 *
 * Environment (read at each call):
 *   TRESTLE_NCCLMOCK_CHUNK=N           data window bytes (default 1 MiB; at
 *                                      ncclGetUniqueId): small values test
 *                                      messages of many chunks
 *   TRESTLE_NCCLMOCK_TIMEOUT_MS=N      bound of every wait
 *   TRESTLE_NCCLMOCK_FAIL_INIT=R       ncclCommInitRank fails on rank R (after
 *                                      the others have met it: they succeed)
 *   TRESTLE_NCCLMOCK_STALL_INIT=R      rank R's init never arrives (until
 *                                      aborted, or the bound): the others wait
 *                                      for it, as on a network that never connects
 *   TRESTLE_NCCLMOCK_FAIL_BROADCAST=R[:K]  the K-th (default first)
 *                                      ncclBroadcast of rank R fails with
 *                                      ncclUnhandledCudaError
 *   TRESTLE_NCCLMOCK_STATS=1           each comm prints its counters on
 *                                      stderr when destroyed or aborted:
 *     "ncclmock: rank R of N on device D: B broadcasts, S bytes sent, V bytes received"
 *   NCCL_DEBUG=WARN|INFO               why a call failed, on stderr
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <cuda_runtime_api.h>

#define API __attribute__((visibility("default")))

/* NCCL's ABI (nccl.h, 2.x), spelled here: its header need not be installed. */
typedef struct ncclComm *ncclComm_t;
typedef struct { char internal[128]; } ncclUniqueId;
typedef enum {
    ncclSuccess = 0,
    ncclUnhandledCudaError = 1,
    ncclSystemError = 2,
    ncclInternalError = 3,
    ncclInvalidArgument = 4,
    ncclInvalidUsage = 5,
    ncclRemoteError = 6,
    ncclInProgress = 7
} ncclResult_t;
typedef int ncclDataType_t; /* ncclInt8 = 0 ... ncclFloat8e5m2 = 11 */

API ncclResult_t ncclGetUniqueId(ncclUniqueId *id);
API ncclResult_t ncclCommInitRank(ncclComm_t *comm, int nranks, ncclUniqueId id, int rank);
/* ncclConfig_t: the 2.14 layout, which every later release begins with. */
typedef struct ncclConfig_v21400 {
    size_t size;
    unsigned int magic;
    unsigned int version;
    int blocking;
    int cgaClusterSize;
    int minCTAs;
    int maxCTAs;
    const char *netName;
} ncclConfig_t;
API ncclResult_t ncclCommInitRankConfig(ncclComm_t *comm, int nranks, ncclUniqueId id, int rank,
                                        ncclConfig_t *config);
API ncclResult_t ncclCommGetAsyncError(ncclComm_t comm, ncclResult_t *state);
API ncclResult_t ncclCommFinalize(ncclComm_t comm);
API ncclResult_t ncclBroadcast(const void *send, void *recv, size_t count, ncclDataType_t type,
                               int root, ncclComm_t comm, cudaStream_t stream);
API ncclResult_t ncclCommDestroy(ncclComm_t comm);
API ncclResult_t ncclCommAbort(ncclComm_t comm);
API const char *ncclGetErrorString(ncclResult_t result);

#define MAX_RANKS 64
#define ID_MAGIC "ncclmock"
#define SEG_MAGIC 0x6e63636c6d6f636bull
#define DATA_AT 4096 /* the data window's offset in the segment */

/* What ncclGetUniqueId puts in the id. */
typedef struct id_body {
    char magic[8];
    char name[64];   /* the segment's shm_open name */
    uint64_t chunk;  /* data window bytes */
} id_body;
_Static_assert(sizeof(id_body) <= sizeof(ncclUniqueId), "the id holds the body");

/* One rank's view of a broadcast, compared across ranks. */
typedef struct op_desc {
    uint64_t count;
    int32_t type, root;
} op_desc;

/* The segment's header; the data window follows at DATA_AT. */
typedef struct seg_hdr {
    uint64_t magic, chunk;
    _Atomic int nranks;         /* 0 until the first rank's init */
    _Atomic int arrived;        /* ranks that have mapped it */
    _Atomic int aborted;        /* 0, or 1 + the first rank that failed */
    _Atomic int bar_count;      /* ranks in the barrier now */
    _Atomic unsigned bar_gen;   /* barriers passed */
    _Atomic int seen[MAX_RANKS];
    _Atomic int departed;       /* ranks that have finalized or destroyed their comm */
    char bus[MAX_RANKS][16];    /* each rank's device (PCI bus id), before it arrives */
    op_desc desc[MAX_RANKS];    /* each rank's current broadcast */
} seg_hdr;
_Static_assert(sizeof(seg_hdr) <= DATA_AT, "the header fits before the data window");

struct ncclComm {
    struct ncclComm *next;      /* the live comms (registry below) */
    seg_hdr *seg;
    size_t seg_bytes;
    int rank, nranks, device;
    uint64_t broadcasts, sent, received;
    _Atomic int state;          /* ncclSuccess, ncclInProgress (a non-blocking init), or why not */
    _Atomic int cancel;         /* ncclCommAbort of an init in progress */
    pthread_t thread;           /* the non-blocking init */
    bool has_thread, finalized;
    ncclUniqueId id;            /* for the non-blocking init */
    char bus[16];
};

static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static struct ncclComm *live;   /* destroyed comms are not here: use is refused */
static _Atomic unsigned ids;    /* ids made by this process */

/* ---- helpers ---- */

static void warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void warn(const char *fmt, ...)
{
    const char *d = getenv("NCCL_DEBUG");
    if (!d || (strcasecmp(d, "WARN") && strcasecmp(d, "INFO") && strcasecmp(d, "TRACE")))
        return;
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fprintf(stderr, "ncclmock %d: NCCL WARN %s\n", (int)getpid(), line);
}

static long env_long(const char *name, long dflt)
{
    const char *v = getenv(name);
    if (!v || !*v)
        return dflt;
    char *end;
    long x = strtol(v, &end, 10);
    return *end && *end != ':' ? dflt : x;
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static double deadline(void)
{
    return now_s() + (double)env_long("TRESTLE_NCCLMOCK_TIMEOUT_MS", 30000) / 1000.0;
}

/* Yield a while, then sleep in short naps: ranks oversubscribe the cores. */
static void backoff(unsigned *spins)
{
    if ((*spins)++ < 64) {
        sched_yield();
    } else {
        struct timespec t = { 0, 50 * 1000 };
        nanosleep(&t, NULL);
    }
}

static size_t type_size(ncclDataType_t t)
{
    static const unsigned char sizes[] = { 1, 1, 4, 4, 8, 8, 2, 4, 8, 2, 1, 1 };
    return t >= 0 && t < (int)sizeof sizes ? sizes[t] : 0;
}

/* Tell the other ranks that this one failed: their waits end at once. */
static void abort_seg(seg_hdr *s, int rank)
{
    int zero = 0;
    atomic_compare_exchange_strong(&s->aborted, &zero, 1 + rank);
}

/* All ranks meet here: 0, ncclRemoteError when some rank failed (or
 * failed now, past the deadline). */
static ncclResult_t barrier(struct ncclComm *c, const char *where)
{
    seg_hdr *s = c->seg;
    unsigned gen = atomic_load(&s->bar_gen);
    if (atomic_load(&s->aborted))
        return ncclRemoteError;
    if (atomic_fetch_add(&s->bar_count, 1) == c->nranks - 1) {
        atomic_store(&s->bar_count, 0);
        atomic_fetch_add(&s->bar_gen, 1);
        return ncclSuccess;
    }
    double end = deadline();
    for (unsigned spins = 0; atomic_load(&s->bar_gen) == gen;) {
        int ab = atomic_load(&s->aborted);
        /* A barrier that completed just before a rank failed still counts. */
        if (ab && atomic_load(&s->bar_gen) == gen) {
            warn("rank %d: %s: rank %d failed", c->rank, where, ab - 1);
            return ncclRemoteError;
        }
        if (now_s() > end) {
            warn("rank %d: %s: timed out waiting for the other ranks", c->rank, where);
            abort_seg(s, c->rank);
            return ncclRemoteError;
        }
        backoff(&spins);
    }
    return ncclSuccess;
}

/* Whether c is a comm of this process that is not destroyed. */
static bool is_live(const struct ncclComm *c)
{
    bool found = false;
    pthread_mutex_lock(&reg_lock);
    for (const struct ncclComm *k = live; k && !found; k = k->next)
        found = k == c;
    pthread_mutex_unlock(&reg_lock);
    return found;
}

/* ---- the calls ---- */

API const char *ncclGetErrorString(ncclResult_t r)
{
    switch (r) {
    case ncclSuccess: return "no error";
    case ncclUnhandledCudaError: return "unhandled cuda error (run with NCCL_DEBUG=INFO for details)";
    case ncclSystemError: return "unhandled system error (run with NCCL_DEBUG=INFO for details)";
    case ncclInternalError: return "internal error - please report this issue to the NCCL developers";
    case ncclInvalidArgument: return "invalid argument (run with NCCL_DEBUG=WARN for details)";
    case ncclInvalidUsage: return "invalid usage (run with NCCL_DEBUG=WARN for details)";
    case ncclRemoteError: return "remote process exited or there was a network error";
    case ncclInProgress: return "NCCL operation in progress";
    }
    return "unknown result code";
}

API ncclResult_t ncclGetUniqueId(ncclUniqueId *id)
{
    if (!id)
        return ncclInvalidArgument;
    id_body b;
    memset(&b, 0, sizeof b);
    memcpy(b.magic, ID_MAGIC, sizeof b.magic);
    long chunk = env_long("TRESTLE_NCCLMOCK_CHUNK", 1 << 20);
    b.chunk = chunk > 0 ? (uint64_t)chunk : 1u << 20;
    snprintf(b.name, sizeof b.name, "/trestle-ncclmock-%d-%u-%lx", (int)getpid(),
             atomic_fetch_add(&ids, 1), (unsigned long)(now_s() * 1e6));
    int fd = shm_open(b.name, O_RDWR | O_CREAT | O_EXCL, 0600);
    if (fd < 0) {
        warn("shm_open %s: %s", b.name, strerror(errno));
        return ncclSystemError;
    }
    size_t bytes = DATA_AT + b.chunk;
    void *m = ftruncate(fd, (off_t)bytes) == 0
                  ? mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0) : MAP_FAILED;
    close(fd);
    if (m == MAP_FAILED) {
        warn("segment %s of %zu bytes: %s", b.name, bytes, strerror(errno));
        shm_unlink(b.name);
        return ncclSystemError;
    }
    seg_hdr *s = m;
    s->chunk = b.chunk;
    s->magic = SEG_MAGIC; /* the rest is zero: ftruncate's fill */
    munmap(m, bytes);
    memset(id, 0, sizeof *id);
    memcpy(id->internal, &b, sizeof b);
    return ncclSuccess;
}

/* Join the comm's segment: c's rank, nranks, device, bus and id are set;
 * on success c->seg is mapped. Waits for every rank (bounded; an abort of
 * c, c->cancel, ends the wait too). */
static ncclResult_t init_core(struct ncclComm *c)
{
    id_body b;
    int rank = c->rank, nranks = c->nranks;
    memcpy(&b, c->id.internal, sizeof b);
    double end = deadline();
    if (env_long("TRESTLE_NCCLMOCK_STALL_INIT", -1) == rank) {
        /* This rank never arrives: the others wait for it. */
        warn("rank %d: init stalls (TRESTLE_NCCLMOCK_STALL_INIT)", rank);
        for (unsigned spins = 0; !atomic_load(&c->cancel) && now_s() < end;)
            backoff(&spins);
        return ncclSystemError;
    }
    int fd = shm_open(b.name, O_RDWR, 0);
    if (fd < 0) {
        /* Used already by nranks ranks, or given up on after a timeout. */
        warn("rank %d: the id's segment %s: %s", rank, b.name, strerror(errno));
        return ncclSystemError;
    }
    size_t bytes = DATA_AT + (size_t)b.chunk;
    seg_hdr *s = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (s == MAP_FAILED)
        return ncclSystemError;
    ncclResult_t r = ncclSuccess;
    int zero = 0;
    if (s->magic != SEG_MAGIC || s->chunk != b.chunk) {
        r = ncclInvalidArgument;
    } else if (!atomic_compare_exchange_strong(&s->nranks, &zero, nranks) && zero != nranks) {
        warn("rank %d: nranks %d here, %d on another rank", rank, nranks, zero);
        r = ncclInvalidUsage;
    } else if (atomic_exchange(&s->seen[rank], 1) != 0) {
        warn("rank %d: two ranks say they are rank %d", rank, rank);
        r = ncclInvalidUsage;
    }
    if (r != ncclSuccess) {
        abort_seg(s, rank);
        munmap(s, bytes);
        return r;
    }
    memcpy(s->bus[rank], c->bus, sizeof c->bus);
    if (atomic_fetch_add(&s->arrived, 1) == nranks - 1)
        shm_unlink(b.name); /* every rank has it mapped */
    for (unsigned spins = 0; atomic_load(&s->arrived) < nranks;) {
        int ab = atomic_load(&s->aborted), cancel = atomic_load(&c->cancel);
        if (ab || cancel || now_s() > end) {
            warn("rank %d: %s waiting for %d ranks", rank,
                 cancel ? "aborted" : ab ? "a rank failed" : "timed out", nranks);
            abort_seg(s, rank);
            shm_unlink(b.name); /* no one will come for it now */
            munmap(s, bytes);
            return ab || cancel ? ncclRemoteError : ncclSystemError;
        }
        backoff(&spins);
    }
    /* As NCCL: one GPU per rank. Every rank sees the same table, so all
     * fail alike, and none needs to tell the others. */
    for (int k = 0; k < nranks; k++)
        if (k != rank && !strcmp(s->bus[k], c->bus)) {
            warn("Duplicate GPU detected : rank %d and rank %d both on CUDA device %s", rank, k,
                 c->bus);
            munmap(s, bytes);
            return ncclInvalidUsage;
        }
    if (env_long("TRESTLE_NCCLMOCK_FAIL_INIT", -1) == rank) {
        /* As a failure after the bootstrap would: the others have met this
         * rank and hold comms that work among themselves. */
        warn("rank %d: ncclCommInitRank fails (TRESTLE_NCCLMOCK_FAIL_INIT)", rank);
        munmap(s, bytes);
        return ncclSystemError;
    }
    c->seg = s;
    c->seg_bytes = bytes;
    return ncclSuccess;
}

static void registry_add(struct ncclComm *c)
{
    pthread_mutex_lock(&reg_lock);
    c->next = live;
    live = c;
    pthread_mutex_unlock(&reg_lock);
}

static void *init_thread(void *arg)
{
    struct ncclComm *c = arg;
    atomic_store(&c->state, init_core(c));
    return NULL;
}

/* A comm for rank of nranks on the calling thread's device, or an error. */
static ncclResult_t comm_new(struct ncclComm **out, int nranks, ncclUniqueId id, int rank)
{
    id_body b;
    memcpy(&b, id.internal, sizeof b);
    *out = NULL;
    if (nranks < 1 || nranks > MAX_RANKS || rank < 0 || rank >= nranks ||
        memcmp(b.magic, ID_MAGIC, sizeof b.magic) || !memchr(b.name, 0, sizeof b.name)) {
        warn("ncclCommInitRank: invalid comm, nranks %d, rank %d or id", nranks, rank);
        return ncclInvalidArgument;
    }
    struct ncclComm *c = calloc(1, sizeof *c);
    if (!c)
        return ncclSystemError;
    c->rank = rank;
    c->nranks = nranks;
    c->id = id;
    /* The comm's device is the one current when it is made, as in NCCL. */
    if (cudaGetDevice(&c->device) != cudaSuccess ||
        cudaDeviceGetPCIBusId(c->bus, (int)sizeof c->bus, c->device) != cudaSuccess) {
        free(c);
        return ncclUnhandledCudaError;
    }
    *out = c;
    return ncclSuccess;
}

/* Blocking: returns when every rank has arrived (or the bound has passed). */
API ncclResult_t ncclCommInitRank(ncclComm_t *out, int nranks, ncclUniqueId id, int rank)
{
    struct ncclComm *c;
    if (!out)
        return ncclInvalidArgument;
    *out = NULL;
    ncclResult_t r = comm_new(&c, nranks, id, rank);
    if (r == ncclSuccess && (r = init_core(c)) != ncclSuccess)
        free(c);
    if (r != ncclSuccess)
        return r;
    atomic_store(&c->state, ncclSuccess);
    registry_add(c);
    *out = c;
    return ncclSuccess;
}

API ncclResult_t ncclCommInitRankConfig(ncclComm_t *out, int nranks, ncclUniqueId id, int rank,
                                        ncclConfig_t *config)
{
    if (!out || (config && (config->magic != 0xcafebeef || config->size < sizeof *config))) {
        warn("ncclCommInitRankConfig: no comm pointer, or a config not made by "
             "NCCL_CONFIG_INITIALIZER");
        return ncclInvalidArgument;
    }
    if (!config || config->blocking != 0)
        return ncclCommInitRank(out, nranks, id, rank);
    struct ncclComm *c;
    *out = NULL;
    ncclResult_t r = comm_new(&c, nranks, id, rank);
    if (r != ncclSuccess)
        return r;
    atomic_store(&c->state, ncclInProgress);
    if (pthread_create(&c->thread, NULL, init_thread, c) != 0) {
        free(c);
        return ncclSystemError;
    }
    c->has_thread = true;
    registry_add(c);
    *out = c;
    return ncclInProgress;
}

/* Whether p is device memory of `device` (NULL is not). */
static bool on_device(const void *p, int device)
{
    struct cudaPointerAttributes a;
    return p && cudaPointerGetAttributes(&a, p) == cudaSuccess &&
           a.type == cudaMemoryTypeDevice && a.device == device;
}

/* Whether this call is the one TRESTLE_NCCLMOCK_FAIL_BROADCAST names. */
static bool fail_here(const struct ncclComm *c)
{
    const char *v = getenv("TRESTLE_NCCLMOCK_FAIL_BROADCAST");
    if (!v || !*v)
        return false;
    const char *colon = strchr(v, ':');
    long rank = strtol(v, NULL, 10), nth = colon ? strtol(colon + 1, NULL, 10) : 1;
    return rank == c->rank && (uint64_t)nth == c->broadcasts + 1;
}

#define CUDA_OR_FAIL(c, what, stmt)                                                            \
    do {                                                                                       \
        cudaError_t e_ = (stmt);                                                               \
        if (e_ != cudaSuccess) {                                                               \
            warn("rank %d: %s: %s", (c)->rank, what, cudaGetErrorString(e_));                 \
            abort_seg((c)->seg, (c)->rank);                                                    \
            return ncclUnhandledCudaError;                                                     \
        }                                                                                      \
    } while (0)

API ncclResult_t ncclBroadcast(const void *send, void *recv, size_t count, ncclDataType_t type,
                               int root, ncclComm_t c, cudaStream_t stream)
{
    if (!c || !is_live(c)) {
        warn("ncclBroadcast: comm %p is not a live communicator (destroyed?)", (void *)c);
        return ncclInvalidArgument;
    }
    if (atomic_load(&c->state) != ncclSuccess) {
        warn("ncclBroadcast: comm %p is not ready (%d)", (void *)c, atomic_load(&c->state));
        return ncclInvalidUsage;
    }
    seg_hdr *s = c->seg;
    if (atomic_load(&s->aborted))
        return ncclRemoteError; /* the comm is in error since a rank failed */
    if (fail_here(c)) {
        warn("rank %d: broadcast %" PRIu64 " fails (TRESTLE_NCCLMOCK_FAIL_BROADCAST)", c->rank,
             c->broadcasts + 1);
        abort_seg(s, c->rank);
        return ncclUnhandledCudaError;
    }
    size_t size = type_size(type);
    int sdev = -1;
    const char *bad = size == 0 ? "unknown datatype"
                      : root < 0 || root >= c->nranks ? "root out of range"
                      : !on_device(recv, c->device) ? "recvbuff is not memory of the comm's device"
                      : c->rank == root && !on_device(send, c->device)
                          ? "sendbuff is not memory of the comm's device"
                      : cudaStreamGetDevice(stream, &sdev) != cudaSuccess || sdev != c->device
                          ? "the stream is not of the comm's device"
                          : NULL;
    if (bad) {
        warn("rank %d: ncclBroadcast: %s (device %d; root %d of %d)", c->rank, bad, c->device,
             root, c->nranks);
        abort_seg(s, c->rank);
        return ncclInvalidArgument;
    }
    /* Every rank must ask for the same broadcast. */
    s->desc[c->rank] = (op_desc){ count, type, root };
    ncclResult_t r = barrier(c, "ncclBroadcast");
    if (r != ncclSuccess)
        return r;
    for (int k = 0; k < c->nranks; k++)
        if (memcmp(&s->desc[k], &s->desc[c->rank], sizeof s->desc[k])) {
            warn("rank %d: count %zu, type %d, root %d here; rank %d: %" PRIu64 ", %d, %d",
                 c->rank, count, type, root, k, s->desc[k].count, s->desc[k].type,
                 s->desc[k].root);
            abort_seg(s, c->rank);
            return ncclInvalidUsage;
        }
    size_t bytes = count * size;
    uint8_t *win = (uint8_t *)s + DATA_AT;
    /* Stream order: what was queued before the broadcast is done first. */
    CUDA_OR_FAIL(c, "cudaStreamSynchronize", cudaStreamSynchronize(stream));
    if (c->rank == root && send != recv && bytes)
        CUDA_OR_FAIL(c, "cudaMemcpyAsync to recvbuff",
                     cudaMemcpyAsync(recv, send, bytes, cudaMemcpyDeviceToDevice, stream));
    for (size_t at = 0; at < bytes; at += s->chunk) {
        size_t n = bytes - at < s->chunk ? bytes - at : s->chunk;
        if (c->rank == root) {
            CUDA_OR_FAIL(c, "cudaMemcpyAsync out of sendbuff",
                         cudaMemcpyAsync(win, (const uint8_t *)send + at, n,
                                         cudaMemcpyDeviceToHost, stream));
            CUDA_OR_FAIL(c, "cudaStreamSynchronize", cudaStreamSynchronize(stream));
        }
        if ((r = barrier(c, "ncclBroadcast (chunk filled)")) != ncclSuccess)
            return r;
        if (c->rank != root) {
            CUDA_OR_FAIL(c, "cudaMemcpyAsync into recvbuff",
                         cudaMemcpyAsync((uint8_t *)recv + at, win, n, cudaMemcpyHostToDevice,
                                         stream));
            CUDA_OR_FAIL(c, "cudaStreamSynchronize", cudaStreamSynchronize(stream));
        }
        if ((r = barrier(c, "ncclBroadcast (chunk taken)")) != ncclSuccess)
            return r;
    }
    /* No rank rewrites its desc before every rank has compared them. */
    if (bytes == 0 && (r = barrier(c, "ncclBroadcast (empty)")) != ncclSuccess)
        return r;
    c->broadcasts++;
    if (c->rank == root)
        c->sent += bytes;
    else
        c->received += bytes;
    return ncclSuccess;
}

API ncclResult_t ncclCommGetAsyncError(ncclComm_t c, ncclResult_t *state)
{
    if (!c || !state || !is_live(c))
        return ncclInvalidArgument;
    *state = (ncclResult_t)atomic_load(&c->state);
    if (*state == ncclSuccess && atomic_load(&c->seg->aborted))
        *state = ncclRemoteError;
    return ncclSuccess;
}

/* A collective: wait until every rank of c has finalized or destroyed its
 * comm. Aborted ranks never come: a real NCCL waits for them forever. */
static ncclResult_t depart(struct ncclComm *c, const char *what)
{
    if (c->finalized)
        return ncclSuccess;
    c->finalized = true;
    seg_hdr *s = c->seg;
    atomic_fetch_add(&s->departed, 1);
    double end = deadline();
    for (unsigned spins = 0; atomic_load(&s->departed) < c->nranks;) {
        if (now_s() > end) {
            /* Always said, NCCL_DEBUG or not: a test's reason to fail. */
            fprintf(stderr, "ncclmock %d: rank %d: %s waited %ld ms for the other ranks of its "
                    "comm, which never came (a real NCCL would hang here)\n", (int)getpid(),
                    c->rank, what, env_long("TRESTLE_NCCLMOCK_TIMEOUT_MS", 30000));
            return ncclSystemError;
        }
        backoff(&spins);
    }
    return ncclSuccess;
}

API ncclResult_t ncclCommFinalize(ncclComm_t c)
{
    if (!c || !is_live(c) || atomic_load(&c->state) != ncclSuccess) {
        warn("ncclCommFinalize: comm %p is not a live, ready communicator", (void *)c);
        return ncclInvalidArgument;
    }
    return depart(c, "ncclCommFinalize");
}

/* Take c out of the registry: false when it was not in it. */
static bool unregister(struct ncclComm *c)
{
    bool found = false;
    pthread_mutex_lock(&reg_lock);
    for (struct ncclComm **pp = &live; *pp; pp = &(*pp)->next)
        if (*pp == c) {
            *pp = c->next;
            found = true;
            break;
        }
    pthread_mutex_unlock(&reg_lock);
    return found;
}

static ncclResult_t finish(ncclComm_t c, bool abort)
{
    if (!c || !unregister(c)) {
        warn("%s: comm %p is not a live communicator (destroyed twice?)",
             abort ? "ncclCommAbort" : "ncclCommDestroy", (void *)c);
        return ncclInvalidArgument;
    }
    if (c->has_thread) {
        /* An init in progress: abort cancels it; a destroy waits for it. */
        if (abort)
            atomic_store(&c->cancel, 1);
        pthread_join(c->thread, NULL);
    }
    ncclResult_t r = ncclSuccess;
    if (!c->seg) { /* its init never completed: nothing to leave */
        free(c);
        return r;
    }
    if (abort)
        abort_seg(c->seg, c->rank);
    else
        r = depart(c, "ncclCommDestroy");
    if (getenv("TRESTLE_NCCLMOCK_STATS"))
        fprintf(stderr, "ncclmock: rank %d of %d on device %d: %" PRIu64 " broadcasts, %" PRIu64
                " bytes sent, %" PRIu64 " bytes received\n", c->rank, c->nranks, c->device,
                c->broadcasts, c->sent, c->received);
    munmap(c->seg, c->seg_bytes);
    free(c);
    return r;
}

API ncclResult_t ncclCommDestroy(ncclComm_t c)
{
    return finish(c, false);
}

API ncclResult_t ncclCommAbort(ncclComm_t c)
{
    return finish(c, true);
}
