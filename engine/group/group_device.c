/*
 * group_device.c - the exchange of a group restore whose destinations are
 * in device memory (include/trestle_mpi.h, trestle_group_exchange_kind).
 * engine/group/group_exchange.c decides the rounds and hands each one here as
 * pieces (address, length, device); this file moves them, by the best way
 * every rank of the exchange can use:
 *
 *   NCCL      libnccl.so.2 loaded at run time (never linked, never
 *             required): the root packs its pieces into a device bounce
 *             buffer, ncclBroadcast sends it on a stream, the others unpack;
 *             no host memory on the way.
 *   MPI_CUDA  an MPI that says it is CUDA-aware (Open MPI's
 *             MPIX_Query_cuda_support()): the same, with MPI_Bcast of the
 *             device buffer.
 *   STAGED    anything else: the root copies its pieces device-to-host
 *             into a pinned bounce buffer, MPI broadcasts it, the others
 *             copy host-to-device. Two buffers are used in turn, so a
 *             round's host-to-device copies overlap the next broadcast.
 *
 * Host pieces (a host destination beside device ones, or a rank restoring
 * to host memory) travel the same way, copied with memcpy or by the CUDA
 * runtime. Each round's status word (the root's restore failed) travels
 * first, in the host bounce buffer or by a small MPI_Bcast.
 *
 * On the CUDA mock (TRESTLE_CUDA_MOCK, tests) neither the real NCCL nor a
 * CUDA-aware MPI can reach device memory (the host's, behind PROT_NONE), so
 * by default only staging runs there. TRESTLE_CUDAMOCK_NCCL=path makes a
 * mock build load that library in place of libnccl.so.2: the tests name
 * the mock NCCL (tests/cudamock/ncclmock.c), which moves the bytes between
 * the ranks' processes through shared memory with the mock's own CUDA
 * calls, so the NCCL path, its fallback when ncclCommInitRank fails on
 * some rank, and a failed broadcast run in CI. What the mock cannot show
 * (a broadcast queued on the stream, NCCL's transports, its own failures
 * and speed) waits for real GPUs.
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "group.h"
#include "trestle_mpi.h"

#if defined(OPEN_MPI) && OPEN_MPI && defined(__has_include)
#if __has_include(<mpi-ext.h>)
#include <mpi-ext.h>
#endif
#endif

#if TRESTLE_HAVE_CUDA
#include <cuda_runtime_api.h>

/* ---- NCCL, declared here: its header need not be installed ---- */

typedef struct nccl_comm *nccl_comm_t;               /* ncclComm_t */
typedef struct { char internal[128]; } nccl_unique_id; /* ncclUniqueId (NCCL_UNIQUE_ID_BYTES) */
enum { NCCL_SUCCESS = 0, NCCL_UINT8 = 1 };           /* ncclSuccess, ncclUint8 */

typedef struct nccl_api {
    void *lib;
    int (*get_unique_id)(nccl_unique_id *id);
    int (*comm_init_rank)(nccl_comm_t *comm, int nranks, nccl_unique_id id, int rank);
    int (*broadcast)(const void *send, void *recv, size_t count, int dtype, int root,
                     nccl_comm_t comm, cudaStream_t stream);
    int (*comm_destroy)(nccl_comm_t comm);
    int (*comm_abort)(nccl_comm_t comm); /* NCCL >= 2.4; else NULL */
    const char *(*error_string)(int result);
} nccl_api;

/* Load `path` (libnccl.so.2) and the five calls the exchange makes; false
 * (and why, in note) when it is not there, which is no error. */
static bool nccl_load(nccl_api *n, const char *path, char *note, size_t cap)
{
    memset(n, 0, sizeof *n);
    n->lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!n->lib) {
        const char *why = dlerror();
        snprintf(note, cap, "libnccl.so.2 not loaded (%.60s)", why ? why : "not found");
        return false;
    }
    *(void **)&n->get_unique_id = dlsym(n->lib, "ncclGetUniqueId");
    *(void **)&n->comm_init_rank = dlsym(n->lib, "ncclCommInitRank");
    *(void **)&n->broadcast = dlsym(n->lib, "ncclBroadcast");
    *(void **)&n->comm_destroy = dlsym(n->lib, "ncclCommDestroy");
    *(void **)&n->comm_abort = dlsym(n->lib, "ncclCommAbort");
    *(void **)&n->error_string = dlsym(n->lib, "ncclGetErrorString");
    if (!n->get_unique_id || !n->comm_init_rank || !n->broadcast || !n->comm_destroy ||
        !n->error_string) {
        snprintf(note, cap, "libnccl.so.2 lacks ncclBroadcast or its kin (too old)");
        dlclose(n->lib);
        n->lib = NULL;
        return false;
    }
    return true;
}
#endif /* TRESTLE_HAVE_CUDA */

/* Whether the MPI library says it can take device pointers. */
static bool mpi_cuda_aware(void)
{
#if defined(OMPI_HAVE_MPI_EXT_CUDA) && OMPI_HAVE_MPI_EXT_CUDA
    return MPIX_Query_cuda_support() == 1;
#else
    return false;
#endif
}

struct trestle__group_dev {
    int kind;                   /* STAGED, MPI_CUDA or NCCL */
    int device;                 /* this rank's exchange device, or -1 (host only) */
    int caller_device;          /* the calling thread's device, given back at close */
    unsigned round;             /* rounds so far: which bounce buffer is next */
    int failed;                 /* the first CUDA failure, kept for close */
    trestle_error fail;
#if TRESTLE_HAVE_CUDA
    cudaStream_t stream;        /* every copy of the exchange, on `device` */
    cudaEvent_t ev[2];          /* the last copies out of each bounce buffer */
    bool ev_armed[2];
    uint8_t *h_bounce[2];       /* STAGED: pinned, header + ROUND_BYTES */
    uint8_t *d_bounce[2];       /* MPI_CUDA, NCCL: device memory, ROUND_BYTES */
    nccl_api nccl;
    nccl_comm_t nccl_comm;
    bool nccl_failed;           /* a broadcast failed: abort, do not wait, at close */
#endif
};

#define HEADER 64 /* the status word, padded so the payload stays aligned */

int trestle_group_local_device(const trestle_group *g, int *device, trestle_error *err)
{
    trestle_error_clear(err);
    if (!g || !device)
        return trestle__group_error(err, TRESTLE_E_INVALID_ARG, "NULL group or device");
    *device = -1;
#if TRESTLE_HAVE_CUDA
    int count = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess)
        return trestle__group_error(err, TRESTLE_E_NO_DEVICE, "no usable CUDA device for "
                                    "--device local (cudaGetDeviceCount: %s)",
                                    cudaGetErrorString(e));
    if (count < 1)
        return trestle__group_error(err, TRESTLE_E_NO_DEVICE, "no CUDA device on this host "
                                    "for --device local");
    *device = g->node_rank % count;
    return TRESTLE_OK;
#else
    return trestle__group_error(err, TRESTLE_E_NO_DEVICE, "this build of trestle has no CUDA "
                                "support: --device local needs one");
#endif
}

#if TRESTLE_HAVE_CUDA

/* ---- failures ---- */

/* Keep the first CUDA failure; the exchange goes on without copies so the
 * collectives still match, and close() reports it. */
static void cuda_failed(trestle__group_dev *dx, cudaError_t e, const char *what)
{
    if (dx->failed)
        return;
    dx->failed = TRESTLE_E_CUDA;
    trestle__group_error(&dx->fail, TRESTLE_E_CUDA, "exchange on CUDA device %d: %s failed: %s",
                         dx->device, what, cudaGetErrorString(e));
}

#define CU(dx, stmt)                                                                           \
    do {                                                                                       \
        cudaError_t e_ = (stmt);                                                               \
        if (e_ != cudaSuccess)                                                                 \
            cuda_failed((dx), e_, #stmt);                                                      \
    } while (0)

/* ---- setup ---- */

static void dev_free(trestle__group_dev *dx)
{
    if (dx->device >= 0) {
        cudaSetDevice(dx->device);
        if (dx->stream)
            cudaStreamSynchronize(dx->stream);
        for (int k = 0; k < 2; k++) {
            if (dx->ev[k])
                cudaEventDestroy(dx->ev[k]);
            if (dx->h_bounce[k])
                cudaFreeHost(dx->h_bounce[k]);
            if (dx->d_bounce[k])
                cudaFree(dx->d_bounce[k]);
        }
        if (dx->nccl_comm)
            dx->nccl.comm_destroy(dx->nccl_comm);
        if (dx->stream)
            cudaStreamDestroy(dx->stream);
        if (dx->caller_device >= 0)
            cudaSetDevice(dx->caller_device);
    } else {
        for (int k = 0; k < 2; k++)
            free(dx->h_bounce[k]);
    }
    if (dx->nccl.lib)
        dlclose(dx->nccl.lib);
    free(dx);
}

/* The buffers and stream of `kind`: 0 or a CUDA failure (kept in dx). */
static int dev_alloc(trestle__group_dev *dx, int kind)
{
    size_t hbytes = HEADER + TRESTLE__GROUP_ROUND_BYTES;
    if (dx->device < 0) {
        /* A host-only rank in a device exchange: plain memory will do. */
        for (int k = 0; k < 2; k++)
            if (!(dx->h_bounce[k] = malloc(hbytes)))
                return trestle__group_error(&dx->fail, TRESTLE_E_NOMEM, "out of memory for the "
                                            "exchange's bounce buffers");
        return TRESTLE_OK;
    }
    CU(dx, cudaSetDevice(dx->device));
    CU(dx, cudaStreamCreateWithFlags(&dx->stream, cudaStreamNonBlocking));
    for (int k = 0; k < 2 && !dx->failed; k++) {
        CU(dx, cudaEventCreateWithFlags(&dx->ev[k], cudaEventDisableTiming |
                                                    cudaEventBlockingSync));
        if (kind == TRESTLE_GROUP_EXCHANGE_STAGED)
            CU(dx, cudaHostAlloc((void **)&dx->h_bounce[k], hbytes, cudaHostAllocPortable));
        else
            CU(dx, cudaMalloc((void **)&dx->d_bounce[k], TRESTLE__GROUP_ROUND_BYTES));
    }
    return dx->failed;
}

/* NCCL's communicator over comm: rank 0 makes the id, MPI carries it. An
 * id that rank 0 could not make reaches everyone as all zeros, and every
 * rank then declines NCCL alike. */
static bool nccl_init(trestle__group_dev *dx, MPI_Comm comm, int rank, int size, char *note,
                      size_t cap)
{
    nccl_unique_id id;
    memset(&id, 0, sizeof id);
    int ok = 1, all = 0;
    if (rank == 0 && dx->nccl.get_unique_id(&id) != NCCL_SUCCESS)
        ok = 0;
    MPI_Bcast(&ok, 1, MPI_INT, 0, comm);
    if (!ok) {
        snprintf(note, cap, "ncclGetUniqueId failed on the exchange's first rank");
        return false;
    }
    MPI_Bcast(&id, (int)sizeof id, MPI_BYTE, 0, comm);
    /* ncclCommInitRank is collective and blocking: a rank that could not
     * even enter it would leave the others waiting in it. What can fail
     * before it (the device) is agreed first, and every rank then stages. */
    ok = cudaSetDevice(dx->device) == cudaSuccess;
    MPI_Allreduce(&ok, &all, 1, MPI_INT, MPI_MIN, comm);
    if (!all) {
        if (!ok)
            cudaGetLastError(); /* ours, not sticky: leave no error for the caller */
        snprintf(note, cap, "cudaSetDevice failed on some rank before ncclCommInitRank");
        return false;
    }
    int nrc = dx->nccl.comm_init_rank(&dx->nccl_comm, size, id, rank);
    ok = nrc == NCCL_SUCCESS;
    if (!ok)
        dx->nccl_comm = NULL;
    MPI_Allreduce(&ok, &all, 1, MPI_INT, MPI_MIN, comm);
    if (!all) {
        /* The first failing rank's reason, the same note on every rank. */
        int me = ok ? size : rank, first = 0;
        MPI_Allreduce(&me, &first, 1, MPI_INT, MPI_MIN, comm);
        MPI_Bcast(&nrc, 1, MPI_INT, first, comm);
        /* NCCL's texts end in "(run with NCCL_DEBUG=...)": the note has no room. */
        const char *text = dx->nccl.error_string(nrc);
        int len = (int)strcspn(text, "(");
        while (len > 0 && text[len - 1] == ' ')
            len--;
        snprintf(note, cap, "ncclCommInitRank failed on rank %d: %.*s", first,
                 len < 48 ? len : 48, text);
        if (dx->nccl_comm)
            dx->nccl.comm_destroy(dx->nccl_comm);
        dx->nccl_comm = NULL;
    }
    return all != 0;
}

#endif /* TRESTLE_HAVE_CUDA */

int trestle__group_dev_open(trestle__group_dev **out, MPI_Comm comm, int rank, int size,
                            int device, int want, int *kind, char *note, size_t cap,
                            trestle_error *err)
{
    int mine[4], all[4], mrc;
    char why[128] = "";
    *out = NULL;
    *kind = TRESTLE_GROUP_EXCHANGE_MPI_HOST;
    snprintf(note, cap, "host destinations: MPI moves the bytes straight between them");
#if TRESTLE_HAVE_CUDA
#if TRESTLE_CUDA_MOCK
    /* The mock's device memory is host memory behind PROT_NONE: neither
     * the real NCCL nor a CUDA-aware MPI can reach it. A test that runs
     * the NCCL path names the mock NCCL (tests/cudamock/ncclmock.c), which
     * reaches it through the mock's own CUDA calls. */
    const char *nccl_path = getenv("TRESTLE_CUDAMOCK_NCCL");
    if (nccl_path && !*nccl_path)
        nccl_path = NULL;
#else
    const char *nccl_path = "libnccl.so.2";
#endif
    nccl_api nccl = { 0 };
    bool have_nccl = device >= 0 && want == TRESTLE_GROUP_EXCHANGE_AUTO && nccl_path &&
                     nccl_load(&nccl, nccl_path, why, sizeof why);
    if (want != TRESTLE_GROUP_EXCHANGE_AUTO)
        snprintf(why, sizeof why, "staging asked for");
    else if (!nccl_path)
        snprintf(why, sizeof why, "NCCL is not tried on the CUDA mock");
#else
    bool have_nccl = false;
    snprintf(why, sizeof why, "no CUDA in this build");
#endif
    bool aware = device >= 0 && want == TRESTLE_GROUP_EXCHANGE_AUTO && mpi_cuda_aware();
#if TRESTLE_CUDA_MOCK
    aware = false;
#endif
#if TRESTLE_HAVE_CUDA
    /* Allocated before the decision, so that a rank without memory says so
     * in it and no rank is left alone in nccl_init()'s collectives. */
    trestle__group_dev *dx = calloc(1, sizeof *dx);
#else
    void *dx = NULL;
#endif
    /* One reduction decides for all: any device at all, and whether every
     * rank can do NCCL or CUDA-aware MPI. */
    mine[0] = device >= 0 ? 0 : 1; /* MIN: 0 when some rank has a device */
    mine[1] = have_nccl ? 0 : 1;   /* MAX: 1 when some rank cannot */
    mine[2] = aware ? 0 : 1;
    mine[3] = TRESTLE_HAVE_CUDA && !dx ? 1 : 0; /* MAX: some rank is out of memory */
    mrc = MPI_Allreduce(mine, all, 4, MPI_INT, MPI_MAX, comm);
    int some = 0;
    if (mrc == MPI_SUCCESS)
        mrc = MPI_Allreduce(&mine[0], &some, 1, MPI_INT, MPI_MIN, comm);
    if (mrc != MPI_SUCCESS || some == 1 || all[3]) {
#if TRESTLE_HAVE_CUDA
        if (have_nccl)
            dlclose(nccl.lib);
#endif
        free(dx);
        if (mrc != MPI_SUCCESS)
            return trestle__group_error(err, TRESTLE_E_GROUP, "MPI_Allreduce failed (%d)", mrc);
        if (all[3] && some == 0)
            return trestle__group_error(err, TRESTLE_E_NOMEM, "out of memory on %s for the "
                                        "device exchange", mine[3] ? "this rank" : "a rank");
        return TRESTLE_OK; /* no rank has a device: the host exchange */
    }
#if !TRESTLE_HAVE_CUDA
    (void)rank, (void)size, (void)have_nccl;
    /* The restore of the rank with a device fails too; this says why on all. */
    return trestle__group_error(err, TRESTLE_E_NO_DEVICE, "a rank asked for device "
                                "destinations, and this build of trestle has no CUDA support");
#else
    /* all[0] == 1: some rank is host only, so the bytes cannot stay on devices. */
    dx->device = device;
    dx->caller_device = -1;
    /* Before nccl_init(), which sets the exchange's device. */
    if (device >= 0)
        CU(dx, cudaGetDevice(&dx->caller_device));
    int k = TRESTLE_GROUP_EXCHANGE_STAGED;
    const char *host_only = all[0] ? "some rank restores to host memory" : NULL;
    if (have_nccl)
        dx->nccl = nccl; /* dev_free closes it */
    if (!all[0] && !all[1] && nccl_init(dx, comm, rank, size, why, sizeof why))
        k = TRESTLE_GROUP_EXCHANGE_NCCL;
    else if (!all[0] && !all[2])
        k = TRESTLE_GROUP_EXCHANGE_MPI_CUDA;
    int arc = dev_alloc(dx, k);
    dx->kind = k;
    *kind = k;
    if (k == TRESTLE_GROUP_EXCHANGE_NCCL)
        snprintf(note, cap, "device destinations: NCCL broadcasts between the devices");
    else if (k == TRESTLE_GROUP_EXCHANGE_MPI_CUDA)
        snprintf(note, cap, "device destinations: %s; MPI is CUDA-aware and broadcasts device "
                 "memory", all[1] && why[0] ? why : "NCCL not on every rank");
    else
        snprintf(note, cap, "device destinations: %s; %s: pinned host staging over MPI",
                 host_only ? host_only : why[0] ? why : "NCCL not on every rank",
                 host_only ? "so" : "MPI is not CUDA-aware");
    if (arc != TRESTLE_OK) {
        if (err)
            *err = dx->fail;
        dev_free(dx);
        return arc;
    }
    *out = dx;
    return TRESTLE_OK;
#endif /* TRESTLE_HAVE_CUDA */
}

/* ---- rounds ---- */

#if TRESTLE_HAVE_CUDA

/* Copy piece k between its destination and the bounce buffer at `b`
 * (to_bounce: pack at the root; else unpack at a receiver). Host pieces
 * beside host buffers: memcpy. Pieces of this device: on the stream.
 * Pieces of another device (a caller's buffer there): synchronously. */
static void copy_piece(trestle__group_dev *dx, uint8_t *b, bool b_dev, uint8_t *p, int p_dev,
                       uint64_t n, bool to_bounce)
{
    void *dst = to_bounce ? (void *)b : (void *)p;
    const void *src = to_bounce ? (const void *)p : (const void *)b;
    if (p_dev < 0 && !b_dev)
        memcpy(dst, src, n);
    else if (p_dev < 0 || p_dev == dx->device)
        CU(dx, cudaMemcpyAsync(dst, src, n, cudaMemcpyDefault, dx->stream));
    else {
        /* cudaMemcpy runs on the legacy stream, which does not wait for our
         * non-blocking one: let the broadcasts queued there (that fill or
         * still read the bounce buffer) finish first. */
        CU(dx, cudaStreamSynchronize(dx->stream));
        CU(dx, cudaMemcpy(dst, src, n, cudaMemcpyDefault));
    }
}

int trestle__group_dev_round(trestle__group_dev *dx, MPI_Comm comm, int root, int rank,
                             uint8_t *const *addr, const uint64_t *len, const int *dev, int n,
                             uint64_t bytes, bool direct, int *status, trestle_error *err)
{
    int slot = (int)(dx->round++ % 2), mrc;
    bool on_device = dx->kind != TRESTLE_GROUP_EXCHANGE_STAGED;
    uint8_t *b = on_device ? dx->d_bounce[slot] : dx->h_bounce[slot] + HEADER;
    bool copy = direct && !dx->failed;
    /* The buffer's last unpack must be done before it is filled again. */
    if (dx->ev_armed[slot]) {
        CU(dx, cudaEventSynchronize(dx->ev[slot]));
        dx->ev_armed[slot] = false;
    }
    if (rank == root) {
        if (!copy)
            *status = 1; /* no bytes to give: everyone stops after this round */
        if (copy && *status == 0) {
            for (int k = 0; k < n; k++) {
                copy_piece(dx, b, on_device, addr[k], dev[k], len[k], true);
                b += len[k];
            }
            b -= bytes;
            if (dx->device >= 0 && dx->kind != TRESTLE_GROUP_EXCHANGE_NCCL)
                CU(dx, cudaStreamSynchronize(dx->stream)); /* MPI reads it next */
        }
    }
    if (on_device) {
        if ((mrc = MPI_Bcast(status, 1, MPI_INT, root, comm)) != MPI_SUCCESS)
            return trestle__group_error(err, TRESTLE_E_GROUP, "broadcast of a round's status "
                                        "from rank %d failed (%d)", root, mrc);
    } else {
        memcpy(dx->h_bounce[slot], status, sizeof *status);
    }
    if (dx->kind == TRESTLE_GROUP_EXCHANGE_NCCL) {
        int nrc = dx->nccl.broadcast(b, b, bytes, NCCL_UINT8, root, dx->nccl_comm, dx->stream);
        /* A rank whose enqueue failed must not leave alone: the others would
         * wait in the next round's collective, and on a broadcast that never
         * completes. Every rank learns of it and all leave together. */
        int bad = nrc != NCCL_SUCCESS, any = 0;
        mrc = MPI_Allreduce(&bad, &any, 1, MPI_INT, MPI_MAX, comm);
        if (mrc != MPI_SUCCESS || any) {
            dx->nccl_failed = true; /* close() aborts the comm */
            if (mrc != MPI_SUCCESS)
                return trestle__group_error(err, TRESTLE_E_GROUP, "MPI_Allreduce after a round "
                                            "from rank %d failed (%d)", root, mrc);
            return trestle__group_error(err, TRESTLE_E_GROUP, "ncclBroadcast from rank %d "
                                        "failed%s%s", root, bad ? ": " : " on another rank",
                                        bad ? dx->nccl.error_string(nrc) : "");
        }
    } else {
        void *buf = on_device ? (void *)b : (void *)dx->h_bounce[slot];
        int count = (int)(bytes + (on_device ? 0 : HEADER));
        if ((mrc = MPI_Bcast(buf, count, MPI_BYTE, root, comm)) != MPI_SUCCESS)
            return trestle__group_error(err, TRESTLE_E_GROUP, "broadcast of restored bytes from "
                                        "rank %d failed (%d)", root, mrc);
        if (!on_device)
            memcpy(status, dx->h_bounce[slot], sizeof *status);
    }
    if (rank != root && copy && *status == 0) {
        for (int k = 0; k < n; k++) {
            copy_piece(dx, b, on_device, addr[k], dev[k], len[k], false);
            b += len[k];
        }
        if (dx->device >= 0) {
            CU(dx, cudaEventRecord(dx->ev[slot], dx->stream));
            dx->ev_armed[slot] = !dx->failed;
        }
    }
    return TRESTLE_OK;
}

int trestle__group_dev_drain(trestle__group_dev *dx, trestle_error *err)
{
    if (!dx)
        return TRESTLE_OK;
    /* After a failed NCCL broadcast the stream may never drain: close()
     * aborts the comm first. */
    if (dx->device >= 0 && dx->stream && !dx->nccl_failed)
        CU(dx, cudaStreamSynchronize(dx->stream));
    if (dx->failed && err)
        *err = dx->fail;
    return dx->failed;
}

int trestle__group_dev_close(trestle__group_dev *dx, trestle_error *err)
{
    if (!dx)
        return TRESTLE_OK;
    if (dx->nccl_failed && dx->nccl_comm) {
        /* After a failed collective NCCL's queued work may wait forever for
         * a peer: abort it before the stream is waited for. */
        if (dx->nccl.comm_abort)
            dx->nccl.comm_abort(dx->nccl_comm);
        else
            dx->nccl.comm_destroy(dx->nccl_comm);
        dx->nccl_comm = NULL;
    }
    if (dx->device >= 0 && dx->stream)
        CU(dx, cudaStreamSynchronize(dx->stream));
    int rc = dx->failed;
    if (rc && err)
        *err = dx->fail;
    dev_free(dx);
    return rc;
}

#else /* !TRESTLE_HAVE_CUDA: trestle__group_dev_open() never makes one. */

int trestle__group_dev_round(trestle__group_dev *dx, MPI_Comm comm, int root, int rank,
                             uint8_t *const *addr, const uint64_t *len, const int *dev, int n,
                             uint64_t bytes, bool direct, int *status, trestle_error *err)
{
    (void)dx, (void)comm, (void)root, (void)rank, (void)addr, (void)len, (void)dev, (void)n;
    (void)bytes, (void)direct, (void)status;
    return trestle__group_error(err, TRESTLE_E_UNSUPPORTED, "no CUDA in this build");
}

int trestle__group_dev_drain(trestle__group_dev *dx, trestle_error *err)
{
    (void)dx, (void)err;
    return TRESTLE_OK;
}

int trestle__group_dev_close(trestle__group_dev *dx, trestle_error *err)
{
    (void)err;
    free(dx);
    return TRESTLE_OK;
}

#endif /* TRESTLE_HAVE_CUDA */
