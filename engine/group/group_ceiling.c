/*
 * group_ceiling.c - the exchange ceiling of a group
 * (include/trestle_mpi.h, trestle_group_exchange_ceiling()): the exchange
 * stage of a restore timed alone, so that a restore's delivery can be held
 * against what the fabric gives.
 *
 * Nothing here broadcasts: each rank's buffer is handed to
 * trestle__group_exchange() (engine/group/group_exchange.c) as the one op of a
 * restore that has already returned (trestle__group_live_ready()), each
 * rank's 1/N of it as that rank's one run, so the rounds, their status
 * words, the roots' turns and the device path (engine/group/group_device.c:
 * NCCL, CUDA-aware MPI or pinned staging, chosen as for a restore) are the
 * restore's own. Only contiguous runs differ from a restore's, whose runs
 * are as scattered as its tensors: the ceiling is the fabric's, not the
 * layout's.
 *
 * Like every group call, each step that can fail on one rank ends in an
 * agreement over the whole group, so every rank makes the same collectives
 * and returns the same error.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "group.h"
#include "trestle_mpi.h"

#if TRESTLE_HAVE_CUDA
#include <cuda_runtime_api.h>

#include "cuda_ctx.h"
#endif

#define RUNS 3 /* timed runs; the best counts */

/* ---- the buffer ---- */

/* `bytes` on `device` (-1: host memory, touched as restored tensors are,
 * so that no page fault is timed). TRESTLE_E_NOMEM, TRESTLE_E_CUDA,
 * TRESTLE_E_NO_DEVICE; *out NULL on failure. The calling thread's context
 * (or its lack of one) is left as it was (engine/context/cuda_ctx.h). */
static int buffer_alloc(uint64_t bytes, int device, int fill, uint8_t **out, trestle_error *err)
{
    *out = NULL;
    if (bytes > SIZE_MAX)
        return trestle__group_error(err, TRESTLE_E_NOMEM, "%" PRIu64 " bytes for the exchange "
                                    "ceiling do not fit this process's address space", bytes);
    if (device < 0) {
        if (!(*out = malloc((size_t)bytes)))
            return trestle__group_error(err, TRESTLE_E_NOMEM, "out of memory: cannot allocate "
                                        "%" PRIu64 " bytes of host memory for the exchange "
                                        "ceiling", bytes);
        memset(*out, fill, (size_t)bytes);
        return TRESTLE_OK;
    }
#if TRESTLE_HAVE_CUDA
    trestle__ctx_api api;
    void *d_buf = NULL;
    cudaError_t e = trestle__cuda_ctx_load(&api);
    if (e == cudaSuccess)
        TRESTLE__WITH_DEVICE(&api, device, e, e = cudaMalloc(&d_buf, (size_t)bytes));
    if (e == cudaSuccess) {
        *out = d_buf;
        return TRESTLE_OK;
    }
    /* The thread's last error is the caller's business: not read, not
     * cleared (a failed allocation is not sticky anyway). */
    return trestle__group_error(err, e == cudaErrorMemoryAllocation ? TRESTLE_E_NOMEM :
                                TRESTLE_E_CUDA, "cannot allocate %" PRIu64 " bytes on CUDA "
                                "device %d for the exchange ceiling: %s", bytes, device,
                                cudaGetErrorString(e));
#else
    return trestle__group_error(err, TRESTLE_E_NO_DEVICE, "this build of trestle has no CUDA "
                                "support: the exchange ceiling on device %d needs one", device);
#endif
}

static void buffer_free(uint8_t *buf, int device)
{
    if (device < 0) {
        free(buf);
        return;
    }
#if TRESTLE_HAVE_CUDA
    /* On its device, in the guard: a cudaFree in a thread without a
     * context would make device 0's primary context current there. */
    trestle__ctx_api api;
    cudaError_t e = cudaSuccess;
    if (buf && trestle__cuda_ctx_load(&api) == cudaSuccess)
        TRESTLE__WITH_DEVICE(&api, device, e, e = cudaFree(buf));
    (void)e;
#endif
}

/* ---- checks ---- */

/* Do all ranks pass the same bytes? Their rounds, and so the collectives,
 * follow from it. One allreduce of (b, ~b) under MAX, as the plan check;
 * it also tells whether any scope of the group has bytes to move. */
static int check_same_bytes(trestle_group *g, uint64_t bytes, bool bad, bool moves,
                            bool *any_moves, trestle_error *err)
{
    /* A rank whose own arguments are bad takes part with values that
     * cannot change the outcome. The third word: does any rank move bytes? */
    uint64_t mine[3] = { bad ? 0 : bytes, bad ? 0 : ~bytes, moves }, all[3];
    int mrc = MPI_Allreduce(mine, all, 3, MPI_UINT64_T, MPI_MAX, trestle__group_comm(g));
    *any_moves = mrc == MPI_SUCCESS && all[2];
    if (mrc != MPI_SUCCESS)
        return trestle__group_error(err, TRESTLE_E_GROUP, "MPI_Allreduce failed (%d)", mrc);
    if (!bad && all[0] != ~all[1])
        return trestle__group_error(err, TRESTLE_E_INVALID_ARG, "the ranks asked for exchange "
                                    "ceilings of different sizes (this rank %" PRIu64 " bytes): "
                                    "every rank must pass the same", bytes);
    return TRESTLE_OK;
}

/* ---- the ceiling ---- */

/* One timed run: every rank starts together, exchanges, waits for its last
 * copy; the slowest rank's wall time goes to *wall. Agreed. */
static int timed_run(trestle_group *g, bool moves, trestle__group_live *lv,
                     const trestle__group_runs *runs, trestle__group_dev *dx, double *wall,
                     trestle_error *err)
{
    MPI_Comm comm = trestle__group_comm(g);
    trestle_error mine;
    trestle_error_clear(&mine);
    int rc = TRESTLE_OK, mrc = MPI_Barrier(comm);
    if (mrc != MPI_SUCCESS)
        rc = trestle__group_error(&mine, TRESTLE_E_GROUP, "MPI_Barrier failed (%d)", mrc);
    double t0 = MPI_Wtime();
    if (rc == TRESTLE_OK && moves) {
        bool stopped;
        rc = trestle__group_exchange(g->xcomm, g->xrank, g->xsize, lv, runs, dx, &stopped,
                                     &mine);
        if (rc == TRESTLE_OK)
            rc = trestle__group_dev_drain(dx, &mine);
    }
    double took = MPI_Wtime() - t0;
    rc = trestle_group_agree(g, rc, &mine, err);
    if (rc == TRESTLE_OK && (mrc = MPI_Allreduce(&took, wall, 1, MPI_DOUBLE, MPI_MAX, comm)) !=
                                MPI_SUCCESS)
        rc = trestle__group_error(err, TRESTLE_E_GROUP, "MPI_Allreduce failed (%d)", mrc);
    return rc;
}

int trestle_group_exchange_ceiling(trestle_group *g, uint64_t bytes, int device,
                                   trestle_group_ceiling *out, trestle_error *err)
{
    trestle_group_ceiling c;
    trestle_error mine;
    trestle__group_runs *runs = NULL;
    trestle__group_live lv;
    bool live = false;
    uint8_t *buf = NULL;
    int rc = TRESTLE_OK;

    memset(&c, 0, sizeof c);
    trestle_error_clear(&mine);
    trestle_error_clear(err);
    if (!g)
        return trestle__group_error(err, TRESTLE_E_INVALID_ARG, "NULL group");
    c.bytes = bytes;
    c.runs = RUNS;
    c.ranks = g->xsize;
    c.exchange = TRESTLE_GROUP_EXCHANGE_MPI_HOST;
    snprintf(c.exchange_note, sizeof c.exchange_note, "nothing to exchange: %s",
             bytes ? "one rank reads all" : "no bytes");
    /* A node of one rank under scope NODE has nothing to move, yet takes
     * part in every agreement of the others. */
    bool moves = g->xsize > 1 && bytes > 0;

    if (!out)
        rc = trestle__group_error(&mine, TRESTLE_E_INVALID_ARG, "NULL output pointer");
    else if (device < -1)
        rc = trestle__group_error(&mine, TRESTLE_E_INVALID_ARG, "device %d: a CUDA ordinal, or "
                                  "-1 for host memory", device);
    bool any_moves = false;
    int src = check_same_bytes(g, bytes, rc != TRESTLE_OK, moves, &any_moves, &mine);
    if (rc == TRESTLE_OK)
        rc = src;
    if (rc == TRESTLE_OK && moves)
        rc = buffer_alloc(bytes, device, g->xrank + 1, &buf, &mine);
    if (rc == TRESTLE_OK && moves && !(runs = calloc((size_t)g->xsize, sizeof *runs)))
        rc = trestle__group_error(&mine, TRESTLE_E_NOMEM, "out of memory");
    for (int r = 0; rc == TRESTLE_OK && moves && r < g->xsize; r++) {
        /* Root r's share: bytes [lo, hi) of the one op, as one run. */
        uint64_t lo = bytes / (uint64_t)g->xsize * (uint64_t)r;
        uint64_t hi = r + 1 == g->xsize ? bytes : bytes / (uint64_t)g->xsize * (uint64_t)(r + 1);
        trestle__group_run *v = malloc(sizeof *v);
        if (!v) {
            rc = trestle__group_error(&mine, TRESTLE_E_NOMEM, "out of memory");
            break;
        }
        *v = (trestle__group_run){ 0, lo, hi - lo };
        runs[r] = (trestle__group_runs){ v, 1, 1, hi - lo };
    }
    if (rc == TRESTLE_OK && moves) {
        rc = trestle__group_live_ready(&lv, &buf, &device, 1, &mine);
        live = true;
    }
    rc = trestle_group_agree(g, rc, &mine, err);

    /* How the bytes travel, chosen as a restore chooses, and agreed. */
    trestle__group_dev *dx = NULL;
    if (rc == TRESTLE_OK) {
        int orc = TRESTLE_OK;
        if (moves) {
            orc = trestle__group_dev_open(&g->dev, g->xcomm, g->xrank, g->xsize, device,
                                          g->exchange, NULL, &c.exchange, c.exchange_note,
                                          sizeof c.exchange_note, &mine);
            dx = g->dev;
        }
        rc = trestle_group_agree(g, orc, &mine, err);
    }
    for (int k = 0; rc == TRESTLE_OK && k < RUNS; k++) {
        double wall = 0;
        rc = timed_run(g, moves, &lv, runs, dx, &wall, err);
        if (rc == TRESTLE_OK && wall > 0 && (c.seconds == 0 || wall < c.seconds))
            c.seconds = wall;
    }
    /* A CUDA failure left for the end (none after a drained run) is agreed
     * too, so no rank reports a ceiling another could not measure. The
     * exchange itself stays with the group for its restores. */
    int drc = trestle__group_dev_end(dx, &mine);
    if (rc == TRESTLE_OK)
        rc = trestle_group_agree(g, drc, &mine, err);
    if (live)
        trestle__group_live_join(&lv, NULL);
    for (int r = 0; runs && r < g->xsize; r++)
        free(runs[r].v);
    free(runs);
    buffer_free(buf, device);

    if (rc != TRESTLE_OK || !any_moves)
        c.seconds = 0;
    c.gbps = c.seconds > 0 ? (double)bytes / c.seconds / 1e9 : 0;
    if (out)
        *out = c;
    return rc;
}
