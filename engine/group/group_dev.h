/*
 * group_dev.h - what the two halves of the device exchange share
 * (engine/group/group_device.c: choosing, setting up and freeing it;
 * engine/group/group_rounds.c: moving each round). Private to
 * engine/group/.
 */
#ifndef TRESTLE_GROUP_DEV_H
#define TRESTLE_GROUP_DEV_H

#include "group.h"

#if TRESTLE_HAVE_CUDA
#include <cuda_runtime_api.h>

#include "cuda_ctx.h"
#endif

struct trestle__group_dev {
    int kind;                   /* STAGED, MPI_CUDA or NCCL */
    int device;                 /* this rank's exchange device, or -1 (host only) */
    int want;                   /* the trestle_group_exchange_kind it was made for */
    char note[160];             /* why this kind: each restore that reuses it says so too */
    unsigned round;             /* rounds so far: which bounce buffer is next */
    int failed;                 /* the first CUDA failure, kept for end */
    trestle_error fail;
#if TRESTLE_HAVE_CUDA
    trestle__ctx_api api;
    cudaStream_t stream;        /* every copy of the exchange, on `device` */
    cudaEvent_t ev[2];          /* the last copies out of each bounce buffer */
    bool ev_armed[2];
    cudaEvent_t start;          /* on the caller's stream: what the copies come after */
    bool have_start;
    int start_device;
    bool start_waited;          /* the host waited for it (copies on another device) */
    uint8_t *h_bounce[2];       /* STAGED: pinned, header + ROUND_BYTES */
    uint8_t *d_bounce[2];       /* MPI_CUDA, NCCL: device memory, ROUND_BYTES */
    uint8_t *h_pack;            /* MPI_CUDA, NCCL: where a part round's root gathers its
                                   host payload (pageable, ROUND_BYTES; made when first used) */
    bool d_async;               /* the device buffers came from cudaMallocAsync on `stream` */
    trestle__nccl nccl;
#else
    uint8_t *h_bounce[2];
#endif
};

#define TRESTLE__GROUP_HEADER 64 /* the status word, padded so the payload stays aligned */

#if TRESTLE_HAVE_CUDA

/* Keep the first CUDA failure of the exchange (group_device.c); the
 * exchange goes on without copies so the collectives still match, and
 * trestle__group_dev_end() reports it. */
void trestle__group_dev_failed(trestle__group_dev *dx, cudaError_t e, const char *what);

#define CU(dx, stmt)                                                                           \
    do {                                                                                       \
        cudaError_t e_ = (stmt);                                                               \
        if (e_ != cudaSuccess)                                                                 \
            trestle__group_dev_failed((dx), e_, #stmt);                                        \
    } while (0)

/* Run `body` with the exchange's device current in the calling thread, and
 * the thread's own context (or none) back after it. */
#define ON_DEVICE(dx, body)                                                                    \
    do {                                                                                       \
        cudaError_t ge_;                                                                       \
        if ((dx)->device < 0) {                                                                \
            body;                                                                              \
            break;                                                                             \
        }                                                                                      \
        TRESTLE__WITH_DEVICE(&(dx)->api, (dx)->device, ge_, body);                             \
        if (ge_ != cudaSuccess)                                                                \
            trestle__group_dev_failed((dx), ge_, "making the exchange's device current "      \
                                                 "(cudaSetDevice)");                           \
    } while (0)

#endif /* TRESTLE_HAVE_CUDA */

#endif /* TRESTLE_GROUP_DEV_H */
