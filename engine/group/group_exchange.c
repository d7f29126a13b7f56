/*
 * group_exchange.c - the exchange stage of a group restore: the
 * destination byte runs each rank's part produces (from
 * trestle_plan_extent_runs(), in extent order), and the broadcasts that
 * copy them from the rank that read them into the same places of every
 * other rank's destinations.
 *
 * Runs are scattered (one per tensor, one per row of a slice), so each
 * broadcast describes them with an MPI hindexed datatype over absolute
 * addresses (MPI_BOTTOM): MPI moves the bytes between destinations, with no
 * packing buffer and no extra host memory. A broadcast carries at most
 * ROUND_BYTES and ROUND_BLOCKS runs, which keeps every count an int and
 * lets MPI pipeline each one. Every rank derives the same rounds from the
 * same runs, so the collectives always match.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "group.h"

#define ROUND_BYTES TRESTLE__GROUP_ROUND_BYTES /* per broadcast (group.h) */
#define ROUND_BLOCKS 65536               /* runs per broadcast: bounds the type's arrays */

/* ---- runs ---- */

static int add_run(void *user, size_t op, uint64_t offset, uint64_t length)
{
    trestle__group_runs *r = user;
    if (r->n == r->cap) {
        size_t cap = r->cap ? 2 * r->cap : 256;
        trestle__group_run *v = cap > r->cap ? realloc(r->v, cap * sizeof *v) : NULL;
        if (!v)
            return TRESTLE_E_NOMEM;
        r->v = v;
        r->cap = cap;
    }
    r->v[r->n++] = (trestle__group_run){ op, offset, length };
    r->bytes += length;
    return 0;
}

int trestle__group_collect(const trestle_plan *p, size_t first, size_t end,
                           trestle__group_runs *out, trestle_error *err)
{
    for (size_t e = first; e < end; e++) {
        int rc = trestle_plan_extent_runs(p, e, add_run, out);
        if (rc != TRESTLE_OK)
            return trestle__group_error(err, rc, "cannot list the destination runs of extent %zu: "
                                        "%s", e, trestle_strerror(rc));
    }
    return TRESTLE_OK;
}

/* ---- broadcasts ---- */

static int mpi_fail(trestle_error *err, int mrc, const char *what, int root)
{
    char text[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(mrc, text, &len) != MPI_SUCCESS)
        snprintf(text, sizeof text, "MPI error %d", mrc);
    return trestle__group_error(err, TRESTLE_E_GROUP, "%s from rank %d failed: %s", what, root,
                                text);
}

/* Where the next round of one root starts: run `at`, byte `skip` into it. */
typedef struct cursor {
    size_t at;
    uint64_t skip;
} cursor;

/* The runs of the round that starts at c: it ends at *next, covers runs
 * [c->at, *last_run] and `*bytes` bytes. Every rank computes the same. */
static void round_extent(const trestle__group_runs *rs, const cursor *c, cursor *next,
                         size_t *end_run, uint64_t *bytes)
{
    cursor k = *c;
    uint64_t b = 0;
    int nb = 0;
    while (k.at < rs->n && nb < ROUND_BLOCKS - 1 && b < ROUND_BYTES) {
        uint64_t take = rs->v[k.at].length - k.skip;
        if (take > ROUND_BYTES - b)
            take = ROUND_BYTES - b;
        b += take;
        nb++;
        k.skip += take;
        if (k.skip == rs->v[k.at].length) {
            k.at++;
            k.skip = 0;
        }
    }
    *end_run = k.skip ? k.at + 1 : k.at;
    *next = k;
    *bytes = b;
}

/* The pieces of the round [c, next) at this rank: where each run's bytes
 * are in its destinations, and on which device. Their count. */
static int round_pieces(const trestle__group_runs *rs, const cursor *c, const cursor *next,
                        uint8_t *const *data, const int *device, uint8_t **addr, uint64_t *len,
                        int *dev)
{
    int nb = 0;
    cursor k = *c;
    while (k.at < next->at || (k.at == next->at && k.skip < next->skip)) {
        const trestle__group_run *rn = &rs->v[k.at];
        uint64_t stop = k.at == next->at ? next->skip : rn->length;
        addr[nb] = data[rn->op] + rn->offset + k.skip;
        len[nb] = stop - k.skip;
        dev[nb++] = device[rn->op];
        k.skip = stop;
        if (k.skip == rn->length) {
            k.at++;
            k.skip = 0;
        }
    }
    return nb;
}

/* Arrays of one round's pieces, ROUND_BLOCKS long each. */
typedef struct pieces {
    uint8_t **addr;
    uint64_t *len;
    int *dev;
    int *lens;
    MPI_Aint *disps;
} pieces;

/*
 * One round of root r between host destinations: a status word, then the
 * round's pieces, as one hindexed type over absolute addresses. `direct`
 * false: this rank's restore failed before the ops had destinations, so
 * the bytes go to (or come from) a scratch buffer of the same size
 * instead, the type signature (4 + bytes MPI_BYTEs) unchanged. On return
 * *status is the root's.
 */
static int round_bcast(MPI_Comm comm, int root, const pieces *pc, int n, uint64_t bytes,
                       bool direct, int *status, uint8_t **scratch, trestle_error *err)
{
    MPI_Datatype t;
    int mrc, nb = 0;
    if (direct) {
        MPI_Get_address(status, &pc->disps[nb]);
        pc->lens[nb++] = (int)sizeof *status;
        for (int k = 0; k < n; k++) {
            MPI_Get_address(pc->addr[k], &pc->disps[nb]);
            pc->lens[nb++] = (int)pc->len[k];
        }
        mrc = MPI_Type_create_hindexed(nb, pc->lens, pc->disps, MPI_BYTE, &t);
    } else {
        if (!*scratch && !(*scratch = malloc(ROUND_BYTES + sizeof *status))) {
            /* Without it this rank cannot take its part in the collective:
             * ending the job is the only way not to leave the others waiting. */
            MPI_Abort(comm, 1);
        }
        memcpy(*scratch, status, sizeof *status);
        mrc = MPI_Type_contiguous((int)(bytes + sizeof *status), MPI_BYTE, &t);
    }
    if (mrc == MPI_SUCCESS && (mrc = MPI_Type_commit(&t)) == MPI_SUCCESS) {
        mrc = MPI_Bcast(direct ? MPI_BOTTOM : (void *)*scratch, 1, t, root, comm);
        MPI_Type_free(&t);
    }
    if (!direct)
        memcpy(status, *scratch, sizeof *status);
    if (mrc != MPI_SUCCESS)
        return mpi_fail(err, mrc, "broadcast of restored bytes", root);
    return TRESTLE_OK;
}

int trestle__group_exchange(MPI_Comm comm, int rank, int size, trestle__group_live *lv,
                            const trestle__group_runs *runs, trestle__group_dev *dx,
                            bool *stopped, trestle_error *err)
{
    cursor *cur = calloc((size_t)size, sizeof *cur);
    pieces pc = { malloc(ROUND_BLOCKS * sizeof *pc.addr), malloc(ROUND_BLOCKS * sizeof *pc.len),
                  malloc(ROUND_BLOCKS * sizeof *pc.dev), malloc(ROUND_BLOCKS * sizeof *pc.lens),
                  malloc(ROUND_BLOCKS * sizeof *pc.disps) };
    uint8_t *scratch = NULL;
    int rc = TRESTLE_OK;

    *stopped = false;
    if (!cur || !pc.addr || !pc.len || !pc.dev || !pc.lens || !pc.disps) {
        /* Every rank allocates these before its first round; running out
         * here leaves the others in their first broadcast. */
        MPI_Abort(comm, 1);
    }
    /* Roots take turns, one round each, so every part flows from the start. */
    for (bool more = true; more && rc == TRESTLE_OK && !*stopped;) {
        more = false;
        for (int r = 0; r < size && rc == TRESTLE_OK && !*stopped; r++) {
            if (cur[r].at >= runs[r].n)
                continue;
            cursor next;
            size_t end_run;
            uint64_t bytes;
            round_extent(&runs[r], &cur[r], &next, &end_run, &bytes);
            /* The root waits for its bytes to be in place, the others for
             * their destinations to exist; both give up when the restore
             * has returned (then with a failure). */
            bool direct = trestle__group_live_wait(lv, &runs[r], cur[r].at, end_run);
            int status = r == rank && !direct ? 1 : 0;
            int n = direct ? round_pieces(&runs[r], &cur[r], &next, lv->data, lv->device,
                                          pc.addr, pc.len, pc.dev) : 0;
            if (dx)
                rc = trestle__group_dev_round(dx, comm, r, rank, pc.addr, pc.len, pc.dev, n,
                                              bytes, direct, &status, err);
            else
                rc = round_bcast(comm, r, &pc, n, bytes, direct, &status, &scratch, err);
            if (status != 0)
                *stopped = true;
            cur[r] = next;
            more = more || cur[r].at < runs[r].n;
        }
    }
    free(scratch);
    free(cur);
    free(pc.addr);
    free(pc.len);
    free(pc.dev);
    free(pc.lens);
    free(pc.disps);
    return rc;
}
