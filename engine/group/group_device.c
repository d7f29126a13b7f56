/*
 * group_device.c - the exchange of a group restore whose destinations are
 * in device memory (include/trestle_mpi.h, trestle_group_exchange_kind).
 * engine/group/group_exchange.c decides the rounds and hands each one here as
 * pieces (address, length, device); this file moves them, by the best way
 * every rank of the exchange can use:
 *
 *   NCCL      libnccl.so.2 loaded at run time (never linked, never
 *             required; engine/group/group_nccl.c): the root packs its
 *             pieces into a device bounce buffer, ncclBroadcast sends it
 *             on a stream, the others unpack; no host memory on the way.
 *   MPI_CUDA  only when asked for (trestle_group_options.exchange): the
 *             same, with MPI_Bcast of the device buffer, when every rank's
 *             MPI says it is CUDA-aware. Open MPI's
 *             MPIX_Query_cuda_support() tells how the library was built,
 *             not whether the transport that runs (UCX without its CUDA
 *             transports, say) takes device pointers, and the usual
 *             outcome of trusting it wrongly is a segfault in MPI_Bcast.
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
 * The exchange's copies into this rank's destinations run on a stream of
 * its own, which first waits for what the caller queued before the restore
 * on its stream (or the legacy default stream): as the restore's own
 * copies do, so that a caller's pending memset of a destination cannot
 * land on received bytes. Every CUDA call runs inside the context guard
 * (engine/context/cuda_ctx.h): the caller's thread keeps its context, or
 * its lack of one. The stream, events, bounce buffers and NCCL
 * communicator are kept in the group from one restore to the next.
 *
 * On the CUDA mock (TRESTLE_CUDA_MOCK, tests) neither the real NCCL nor a
 * CUDA-aware MPI can reach device memory (the host's, behind PROT_NONE), so
 * by default only staging runs there. TRESTLE_CUDAMOCK_NCCL=path makes a
 * mock build load that library in place of libnccl.so.2: the tests name
 * the mock NCCL (tests/cudamock/ncclmock.c), which moves the bytes between
 * the ranks' processes through shared memory with the mock's own CUDA
 * calls. TRESTLE_CUDAMOCK_MPI_CUDA_AWARE=1 makes the mock build's MPI say
 * it is CUDA-aware, which only an exchange that asked for it may believe.
 *
 * This file chooses, sets up and frees the exchange; each round is
 * engine/group/group_rounds.c (the state they share: group_dev.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "group_dev.h"
#include "trestle_mpi.h"

#if defined(OPEN_MPI) && OPEN_MPI && defined(__has_include)
#if __has_include(<mpi-ext.h>)
#include <mpi-ext.h>
#endif
#endif

/* Whether the MPI library says it can take device pointers. */
static bool mpi_cuda_aware(void)
{
#if TRESTLE_CUDA_MOCK
    const char *v = getenv("TRESTLE_CUDAMOCK_MPI_CUDA_AWARE");
    return v && atoi(v) == 1;
#elif defined(OMPI_HAVE_MPI_EXT_CUDA) && OMPI_HAVE_MPI_EXT_CUDA
    return MPIX_Query_cuda_support() == 1;
#else
    return false;
#endif
}

int trestle_group_local_device(const trestle_group *g, int *device, trestle_error *err)
{
    trestle_error_clear(err);
    if (!g || !device)
        return trestle__group_error(err, TRESTLE_E_INVALID_ARG, "NULL group or device");
    *device = -1;
#if TRESTLE_HAVE_CUDA
    trestle__ctx_api api;
    int count = 0;
    cudaError_t e = trestle__cuda_ctx_load(&api), ce = cudaSuccess;
    if (e == cudaSuccess)
        TRESTLE__KEEPING_CONTEXT(&api, e, ce = cudaGetDeviceCount(&count));
    else
        ce = cudaGetDeviceCount(&count);
    if (ce != cudaSuccess)
        return trestle__group_error(err, TRESTLE_E_NO_DEVICE, "no usable CUDA device for "
                                    "--device local (cudaGetDeviceCount: %s)",
                                    cudaGetErrorString(ce));
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

void trestle__group_dev_failed(trestle__group_dev *dx, cudaError_t e, const char *what)
{
    if (dx->failed)
        return;
    dx->failed = TRESTLE_E_CUDA;
    trestle__group_error(&dx->fail, TRESTLE_E_CUDA, "exchange on CUDA device %d: %s failed: %s",
                         dx->device, what, cudaGetErrorString(e));
}

/* ---- setup ---- */

static void dev_free_now(trestle__group_dev *dx, MPI_Comm comm)
{
    if (dx->kind == TRESTLE_GROUP_EXCHANGE_NCCL) {
        /* The kind was agreed: every rank holding one is here. */
        int mine = dx->nccl.comm && !dx->nccl.failed, all = 0;
        if (comm == MPI_COMM_NULL ||
            MPI_Allreduce(&mine, &all, 1, MPI_INT, MPI_MIN, comm) != MPI_SUCCESS)
            all = 0;
        ON_DEVICE(dx, trestle__nccl_close(&dx->nccl, all != 0));
    } else if (dx->nccl.lib) {
        trestle__nccl_close(&dx->nccl, false);
    }
    if (dx->device >= 0) {
        ON_DEVICE(dx, {
            for (int k = 0; k < 2; k++) {
                if (dx->ev[k])
                    cudaEventDestroy(dx->ev[k]);
                if (dx->h_bounce[k])
                    cudaFreeHost(dx->h_bounce[k]);
                /* In stream order: cudaFree would wait for the whole device. */
                if (dx->d_bounce[k] && dx->d_async)
                    cudaFreeAsync(dx->d_bounce[k], dx->stream);
                else if (dx->d_bounce[k])
                    cudaFree(dx->d_bounce[k]);
            }
            free(dx->h_pack);
            if (dx->have_start)
                cudaEventDestroy(dx->start);
            if (dx->stream) {
                cudaStreamSynchronize(dx->stream); /* the frees above */
                cudaStreamDestroy(dx->stream);
            }
        });
    } else {
        for (int k = 0; k < 2; k++)
            free(dx->h_bounce[k]);
    }
    free(dx);
}

/* The buffers and stream of `kind`: 0 or a CUDA failure (kept in dx). */
static int dev_alloc(trestle__group_dev *dx, int kind)
{
    size_t hbytes = TRESTLE__GROUP_HEADER + TRESTLE__GROUP_ROUND_BYTES;
    if (dx->device < 0) {
        /* A host-only rank in a device exchange: plain memory will do. */
        for (int k = 0; k < 2; k++)
            if (!(dx->h_bounce[k] = malloc(hbytes)))
                return trestle__group_error(&dx->fail, TRESTLE_E_NOMEM, "out of memory for the "
                                            "exchange's bounce buffers");
        return TRESTLE_OK;
    }
    ON_DEVICE(dx, {
        CU(dx, cudaStreamCreateWithFlags(&dx->stream, cudaStreamNonBlocking));
        for (int k = 0; k < 2 && !dx->failed; k++) {
            CU(dx, cudaEventCreateWithFlags(&dx->ev[k], cudaEventDisableTiming |
                                                        cudaEventBlockingSync));
            if (kind == TRESTLE_GROUP_EXCHANGE_STAGED) {
                CU(dx, cudaHostAlloc((void **)&dx->h_bounce[k], hbytes, cudaHostAllocPortable));
                continue;
            }
            cudaError_t e = cudaMallocAsync((void **)&dx->d_bounce[k],
                                            TRESTLE__GROUP_ROUND_BYTES, dx->stream);
            dx->d_async = e == cudaSuccess;
            if (e == cudaErrorNotSupported)
                e = cudaMalloc((void **)&dx->d_bounce[k], TRESTLE__GROUP_ROUND_BYTES);
            CU(dx, e);
        }
    });
    return dx->failed;
}

/* The exchange's copies come after what the caller queued before the
 * restore on its stream (NULL: the legacy default stream). */
static void record_start(trestle__group_dev *dx, void *stream)
{
    cudaStream_t s = stream ? (cudaStream_t)stream : cudaStreamLegacy;
    int sdev = dx->device;
    dx->start_waited = false;
    ON_DEVICE(dx, {
        if (stream)
            CU(dx, cudaStreamGetDevice(s, &sdev));
    });
    if (dx->failed)
        return;
    cudaError_t e;
    TRESTLE__WITH_DEVICE(&dx->api, sdev, e,
                         e = trestle__cuda_record_on(&dx->start, &dx->have_start,
                                                     &dx->start_device, sdev, s));
    if (e != cudaSuccess)
        trestle__group_dev_failed(dx, e, stream ? "waiting on the caller's stream (cudaEventRecord)"
                                  : "waiting on the legacy default stream (cudaEventRecord)");
    else
        ON_DEVICE(dx, CU(dx, cudaStreamWaitEvent(dx->stream, dx->start, 0)));
}

/* A new exchange of `kind` for this rank, or NULL (out of memory). */
static trestle__group_dev *dev_new(int device, int want)
{
    trestle__group_dev *dx = calloc(1, sizeof *dx);
    if (!dx)
        return NULL;
    dx->device = device;
    dx->want = want;
    dx->kind = TRESTLE_GROUP_EXCHANGE_STAGED;
    if (device >= 0 && trestle__cuda_ctx_load(&dx->api) != cudaSuccess) {
        free(dx);
        return NULL;
    }
    return dx;
}

#endif /* TRESTLE_HAVE_CUDA */

/* Every rank's kept exchange fits this exchange: reuse them all. Each rank
 * whose does not fit drops it, and so does every rank when any one cannot
 * reuse (a communicator is all ranks' or none's). Collective. */
static bool reuse_kept(trestle__group_dev **kept, MPI_Comm comm, int device, int want)
{
    trestle__group_dev *dx = *kept;
    int mine = dx && dx->device == device && dx->want == want && !dx->failed, all = 0;
#if TRESTLE_HAVE_CUDA
    mine = mine && !dx->nccl.failed;
#endif
    if (MPI_Allreduce(&mine, &all, 1, MPI_INT, MPI_MIN, comm) != MPI_SUCCESS)
        all = 0;
    if (all)
        return true;
    /* Not collectively: an NCCL comm is aborted, which waits for no one. */
    if (dx)
        trestle__group_dev_free(dx, MPI_COMM_NULL);
    *kept = NULL;
    return false;
}

int trestle__group_dev_open(trestle__group_dev **kept, MPI_Comm comm, int rank, int size,
                            int device, int want, void *stream, int *kind, char *note,
                            size_t cap, trestle_error *err)
{
    int mine[4], all[4], mrc;
    char why[160] = "";
    *kind = TRESTLE_GROUP_EXCHANGE_MPI_HOST;
    snprintf(note, cap, "host destinations: MPI moves the bytes straight between them");
    if (reuse_kept(kept, comm, device, want)) {
        trestle__group_dev *dx = *kept;
        dx->round = 0;
        dx->failed = 0;
        *kind = dx->kind;
        snprintf(note, cap, "%s", dx->note);
#if TRESTLE_HAVE_CUDA
        dx->ev_armed[0] = dx->ev_armed[1] = false;
        if (device >= 0)
            record_start(dx, stream);
        if (dx->failed) {
            if (err)
                *err = dx->fail;
            return dx->failed;
        }
#endif
        return TRESTLE_OK;
    }
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
    trestle__nccl nccl = { 0 };
    bool have_nccl = device >= 0 && want == TRESTLE_GROUP_EXCHANGE_AUTO && nccl_path &&
                     trestle__nccl_load(&nccl, nccl_path, why, sizeof why);
    if (want == TRESTLE_GROUP_EXCHANGE_STAGED)
        snprintf(why, sizeof why, "staging asked for");
    else if (want == TRESTLE_GROUP_EXCHANGE_MPI_CUDA)
        snprintf(why, sizeof why, "CUDA-aware MPI asked for");
    else if (!nccl_path)
        snprintf(why, sizeof why, "NCCL is not tried on the CUDA mock");
    /* Allocated before the decision, so that a rank without memory says so
     * in it and no rank is left alone in the NCCL init's collectives. */
    trestle__group_dev *dx = dev_new(device, want);
#else
    bool have_nccl = false;
    snprintf(why, sizeof why, "no CUDA in this build");
    void *dx = NULL;
#endif
    bool aware = device >= 0 && mpi_cuda_aware();
    /* One reduction decides for all: any device at all, whether every rank
     * can do NCCL, and whether every rank's MPI says it is CUDA-aware. */
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
            trestle__nccl_close(&nccl, false);
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
    (void)rank, (void)size, (void)have_nccl, (void)stream, (void)aware;
    /* The restore of the rank with a device fails too; this says why on all. */
    return trestle__group_error(err, TRESTLE_E_NO_DEVICE, "a rank asked for device "
                                "destinations, and this build of trestle has no CUDA support");
#else
    /* all[0] == 1: some rank is host only, so the bytes cannot stay on devices. */
    int k = TRESTLE_GROUP_EXCHANGE_STAGED;
    const char *host_only = all[0] ? "some rank restores to host memory" : NULL;
    if (have_nccl)
        dx->nccl = nccl; /* freed with dx */
    bool nccl_ok = false;
    if (!all[0] && !all[1])
        ON_DEVICE(dx, nccl_ok = trestle__nccl_init(&dx->nccl, comm, rank, size, why,
                                                   sizeof why));
    if (nccl_ok)
        k = TRESTLE_GROUP_EXCHANGE_NCCL;
    else if (!all[0] && !all[2] && want == TRESTLE_GROUP_EXCHANGE_MPI_CUDA)
        k = TRESTLE_GROUP_EXCHANGE_MPI_CUDA;
    dx->kind = k;
    *kind = k;
    if (k == TRESTLE_GROUP_EXCHANGE_NCCL)
        snprintf(note, cap, "device destinations: NCCL broadcasts between the devices");
    else if (k == TRESTLE_GROUP_EXCHANGE_MPI_CUDA)
        snprintf(note, cap, "device destinations: %s; every rank's MPI says it is CUDA-aware "
                 "and broadcasts device memory", why);
    else if (want == TRESTLE_GROUP_EXCHANGE_MPI_CUDA && !host_only)
        snprintf(note, cap, "device destinations: %s, but some rank's MPI does not say it is "
                 "CUDA-aware: pinned host staging over MPI", why);
    else
        snprintf(note, cap, "device destinations: %s; %s: pinned host staging over MPI",
                 host_only ? host_only : why[0] ? why : "NCCL not on every rank",
                 host_only ? "so"
                 : all[2] ? "MPI is not CUDA-aware"
                          : "MPI says CUDA-aware, used only if asked (--exchange mpi-cuda)");
    snprintf(dx->note, sizeof dx->note, "%s", note);
    int arc = dev_alloc(dx, k);
    if (arc == TRESTLE_OK && device >= 0)
        record_start(dx, stream);
    /* Kept even when this rank's setup failed (the caller agrees on the
     * error): every rank then holds one, so that the group's end frees
     * them together; failed, it is not reused. */
    *kept = dx;
    if (dx->failed || arc != TRESTLE_OK) {
        if (err)
            *err = dx->fail;
        dx->failed = dx->failed ? dx->failed : arc;
        return dx->failed;
    }
    return TRESTLE_OK;
#endif /* TRESTLE_HAVE_CUDA */
}

void trestle__group_dev_free(trestle__group_dev *dx, MPI_Comm comm)
{
#if TRESTLE_HAVE_CUDA
    if (dx)
        dev_free_now(dx, comm);
#else
    (void)comm;
    free(dx);
#endif
}
