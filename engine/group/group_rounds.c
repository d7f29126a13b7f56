/*
 * group_rounds.c - one round of a device exchange
 * (engine/group/group_device.c chose how it travels and set it up): the
 * root packs its pieces into a bounce buffer, NCCL, a CUDA-aware MPI or
 * MPI over pinned host staging broadcasts it, the others unpack; a part
 * round, whose payload the root holds in host memory (tensor-parallel parts
 * of a tensor it read whole: engine/group/group_scatter.c) and of which
 * every rank, the root too, unpacks its own piece; then the exchange's end,
 * which waits for the last unpack. Every CUDA call runs
 * with the exchange's device current inside the context guard, on the
 * exchange's stream, which waits for the caller's work before the restore.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "group_dev.h"
#include "trestle_mpi.h"

#define HEADER TRESTLE__GROUP_HEADER

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
    if (p_dev < 0 && !b_dev) {
        memcpy(dst, src, n);
    } else if (p_dev < 0 || p_dev == dx->device) {
        CU(dx, cudaMemcpyAsync(dst, src, n, cudaMemcpyDefault, dx->stream));
    } else {
        /* cudaMemcpy runs on the legacy stream, which does not wait for our
         * non-blocking one: let the broadcasts queued there (that fill or
         * still read the bounce buffer) finish first, and the caller's own
         * work before the restore, which the stream waits for. */
        CU(dx, cudaStreamSynchronize(dx->stream));
        if (!dx->start_waited && dx->have_start)
            CU(dx, cudaEventSynchronize(dx->start));
        dx->start_waited = true;
        CU(dx, cudaMemcpy(dst, src, n, cudaMemcpyDefault));
    }
}

/* The bounce buffer of the next round, once its last unpack is done
 * (the round's slot in *slot). */
static uint8_t *round_buffer(trestle__group_dev *dx, int *slot)
{
    *slot = (int)(dx->round++ % 2);
    if (dx->ev_armed[*slot]) {
        CU(dx, cudaEventSynchronize(dx->ev[*slot]));
        dx->ev_armed[*slot] = false;
    }
    return dx->kind != TRESTLE_GROUP_EXCHANGE_STAGED ? dx->d_bounce[*slot]
                                                     : dx->h_bounce[*slot] + HEADER;
}

/* The root's status, then the `bytes` at b (filled at the root) from root
 * to every rank of comm; *status is the root's on return. */
static int round_move(trestle__group_dev *dx, MPI_Comm comm, int root, int rank, int slot,
                      uint8_t *b, uint64_t bytes, int *status, trestle_error *err)
{
    bool on_device = dx->kind != TRESTLE_GROUP_EXCHANGE_STAGED;
    int mrc;
    if (rank == root && dx->device >= 0 && dx->kind != TRESTLE_GROUP_EXCHANGE_NCCL)
        CU(dx, cudaStreamSynchronize(dx->stream)); /* MPI reads what the stream packed */
    if (on_device) {
        if ((mrc = MPI_Bcast(status, 1, MPI_INT, root, comm)) != MPI_SUCCESS)
            return trestle__group_error(err, TRESTLE_E_GROUP, "broadcast of a round's status "
                                        "from rank %d failed (%d)", root, mrc);
    } else {
        memcpy(dx->h_bounce[slot], status, sizeof *status);
    }
    if (dx->kind == TRESTLE_GROUP_EXCHANGE_NCCL) {
        int nrc = trestle__nccl_broadcast(&dx->nccl, b, bytes, root, dx->stream);
        /* A rank whose enqueue failed must not leave alone: the others would
         * wait in the next round's collective, and on a broadcast that never
         * completes. Every rank learns of it and all leave together. */
        int bad = nrc != 0, any = 0;
        mrc = MPI_Allreduce(&bad, &any, 1, MPI_INT, MPI_MAX, comm);
        if (mrc != MPI_SUCCESS || any) {
            dx->nccl.failed = true; /* end() aborts the comm */
            if (mrc != MPI_SUCCESS)
                return trestle__group_error(err, TRESTLE_E_GROUP, "MPI_Allreduce after a round "
                                            "from rank %d failed (%d)", root, mrc);
            return trestle__group_error(err, TRESTLE_E_GROUP, "ncclBroadcast from rank %d "
                                        "failed%s%s", root, bad ? ": " : " on another rank",
                                        bad ? trestle__nccl_error(&dx->nccl, nrc) : "");
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
    return TRESTLE_OK;
}

/* The unpacks of this round are queued: the slot's buffer is free again
 * once they have run. */
static void round_unpacked(trestle__group_dev *dx, int slot)
{
    if (dx->device >= 0) {
        CU(dx, cudaEventRecord(dx->ev[slot], dx->stream));
        dx->ev_armed[slot] = !dx->failed;
    }
}

/* One round, on the exchange's device (dev_round() enters it). */
static int round_on_device(trestle__group_dev *dx, MPI_Comm comm, int root, int rank,
                           uint8_t *const *addr, const uint64_t *len, const int *dev, int n,
                           uint64_t bytes, bool direct, int *status, trestle_error *err)
{
    int slot, rc;
    bool on_device = dx->kind != TRESTLE_GROUP_EXCHANGE_STAGED;
    uint8_t *b = round_buffer(dx, &slot), *at = b;
    bool copy = direct && !dx->failed;
    if (rank == root) {
        if (!copy)
            *status = 1; /* no bytes to give: everyone stops after this round */
        for (int k = 0; copy && *status == 0 && k < n; k++) {
            copy_piece(dx, at, on_device, addr[k], dev[k], len[k], true);
            at += len[k];
        }
    }
    if ((rc = round_move(dx, comm, root, rank, slot, b, bytes, status, err)) != TRESTLE_OK)
        return rc;
    if (rank != root && copy && *status == 0) {
        for (int k = 0; k < n; k++) {
            copy_piece(dx, at, on_device, addr[k], dev[k], len[k], false);
            at += len[k];
        }
        round_unpacked(dx, slot);
    }
    return TRESTLE_OK;
}

/* One part round, on the exchange's device (dev_part_round() enters it). */
static int part_round_on_device(trestle__group_dev *dx, MPI_Comm comm, int root, int rank,
                                trestle__group_fill_fn fill, void *user, uint64_t at,
                                uint64_t bytes, uint8_t *dst, int dst_dev, uint64_t from,
                                uint64_t len, trestle_error *err)
{
    int slot, rc, status = 0;
    bool on_device = dx->kind != TRESTLE_GROUP_EXCHANGE_STAGED;
    uint8_t *b = round_buffer(dx, &slot);
    if (rank == root) {
        /* The payload is host memory: written where MPI reads it (the host
         * bounce buffer), or gathered in host memory and sent to the device
         * bounce buffer in one copy, not one per row. */
        if (on_device && !dx->h_pack && !(dx->h_pack = malloc(TRESTLE__GROUP_ROUND_BYTES)) &&
            !dx->failed) {
            dx->failed = TRESTLE_E_NOMEM;
            trestle__group_error(&dx->fail, TRESTLE_E_NOMEM, "out of memory for the exchange's "
                                 "host buffer (%llu bytes)",
                                 (unsigned long long)TRESTLE__GROUP_ROUND_BYTES);
        }
        if (!fill || dx->failed) {
            status = 1; /* nothing to give: no rank copies this round's bytes */
        } else if (!on_device) {
            fill(user, b, at, bytes);
        } else {
            fill(user, dx->h_pack, at, bytes);
            /* From pageable memory the runtime stages the bytes before the
             * call returns, so h_pack may be filled again at once. */
            CU(dx, cudaMemcpyAsync(b, dx->h_pack, bytes, cudaMemcpyHostToDevice, dx->stream));
        }
    }
    if ((rc = round_move(dx, comm, root, rank, slot, b, bytes, &status, err)) != TRESTLE_OK)
        return rc;
    if (status == 0 && !dx->failed && len > 0) {
        copy_piece(dx, b + from, on_device, dst, dst_dev, len, false);
        round_unpacked(dx, slot);
    }
    return TRESTLE_OK;
}

int trestle__group_dev_part_round(trestle__group_dev *dx, MPI_Comm comm, int root, int rank,
                                  trestle__group_fill_fn fill, void *user, uint64_t at,
                                  uint64_t bytes, uint8_t *dst, int dst_dev, uint64_t from,
                                  uint64_t len, trestle_error *err)
{
    int rc = TRESTLE_OK;
    ON_DEVICE(dx, rc = part_round_on_device(dx, comm, root, rank, fill, user, at, bytes, dst,
                                            dst_dev, from, len, err));
    return rc;
}

int trestle__group_dev_round(trestle__group_dev *dx, MPI_Comm comm, int root, int rank,
                             uint8_t *const *addr, const uint64_t *len, const int *dev, int n,
                             uint64_t bytes, bool direct, int *status, trestle_error *err)
{
    int rc = TRESTLE_OK;
    ON_DEVICE(dx, rc = round_on_device(dx, comm, root, rank, addr, len, dev, n, bytes, direct,
                                       status, err));
    return rc;
}

int trestle__group_dev_drain(trestle__group_dev *dx, trestle_error *err)
{
    if (!dx)
        return TRESTLE_OK;
    /* After a failed NCCL broadcast the stream may never drain: end()
     * aborts the comm first. */
    if (dx->device >= 0 && dx->stream && !dx->nccl.failed)
        ON_DEVICE(dx, CU(dx, cudaStreamSynchronize(dx->stream)));
    if (dx->failed && err)
        *err = dx->fail;
    return dx->failed;
}

int trestle__group_dev_end(trestle__group_dev *dx, trestle_error *err)
{
    if (!dx)
        return TRESTLE_OK;
    if (dx->nccl.failed && dx->nccl.comm) {
        /* After a failed collective NCCL's queued work may wait forever for
         * a peer: abort it before the stream is waited for. */
        ON_DEVICE(dx, trestle__nccl_abort(&dx->nccl));
    }
    if (dx->device >= 0 && dx->stream)
        ON_DEVICE(dx, CU(dx, cudaStreamSynchronize(dx->stream)));
    if (dx->failed && err)
        *err = dx->fail;
    return dx->failed;
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

int trestle__group_dev_part_round(trestle__group_dev *dx, MPI_Comm comm, int root, int rank,
                                  trestle__group_fill_fn fill, void *user, uint64_t at,
                                  uint64_t bytes, uint8_t *dst, int dst_dev, uint64_t from,
                                  uint64_t len, trestle_error *err)
{
    (void)dx, (void)comm, (void)root, (void)rank, (void)fill, (void)user, (void)at, (void)bytes;
    (void)dst, (void)dst_dev, (void)from, (void)len;
    return trestle__group_error(err, TRESTLE_E_UNSUPPORTED, "no CUDA in this build");
}

int trestle__group_dev_drain(trestle__group_dev *dx, trestle_error *err)
{
    (void)dx, (void)err;
    return TRESTLE_OK;
}

int trestle__group_dev_end(trestle__group_dev *dx, trestle_error *err)
{
    (void)dx, (void)err;
    return TRESTLE_OK;
}

#endif /* TRESTLE_HAVE_CUDA */
