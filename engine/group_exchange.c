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
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "group.h"

#define ROUND_BYTES ((uint64_t)64 << 20) /* per broadcast: big enough for full bandwidth */
#define ROUND_BLOCKS 65536               /* runs per broadcast: bounds the type's arrays */

int trestle__group_error(trestle_error *err, int code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        trestle_error_clear(err);
        err->code = code;
        va_start(ap, fmt);
        vsnprintf(err->message, sizeof err->message, fmt, ap);
        va_end(ap);
    }
    return code;
}

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

/* One round: runs from *at (byte *skip into it) of root r, as one hindexed
 * type over absolute addresses, broadcast from r. Advances the cursor. */
static int round_bcast(MPI_Comm comm, int root, const trestle__group_runs *runs, uint8_t **data,
                       size_t *at, uint64_t *skip, int *lens, MPI_Aint *disps, trestle_error *err)
{
    int nb = 0;
    uint64_t bytes = 0;
    while (*at < runs->n && nb < ROUND_BLOCKS && bytes < ROUND_BYTES) {
        const trestle__group_run *rn = &runs->v[*at];
        uint64_t take = rn->length - *skip;
        if (take > ROUND_BYTES - bytes)
            take = ROUND_BYTES - bytes;
        MPI_Get_address(data[rn->op] + rn->offset + *skip, &disps[nb]);
        lens[nb++] = (int)take;
        bytes += take;
        *skip += take;
        if (*skip == rn->length) {
            (*at)++;
            *skip = 0;
        }
    }
    MPI_Datatype t;
    int mrc = MPI_Type_create_hindexed(nb, lens, disps, MPI_BYTE, &t);
    if (mrc == MPI_SUCCESS && (mrc = MPI_Type_commit(&t)) == MPI_SUCCESS) {
        mrc = MPI_Bcast(MPI_BOTTOM, 1, t, root, comm);
        MPI_Type_free(&t);
    }
    return mrc == MPI_SUCCESS ? TRESTLE_OK : mpi_fail(err, mrc, "broadcast of restored bytes", root);
}

int trestle__group_exchange(MPI_Comm comm, int rank, int size, const trestle_plan *p,
                            const trestle__group_runs *runs, trestle_error *err)
{
    size_t nops = trestle_plan_op_count(p);
    uint8_t **data = calloc(nops ? nops : 1, sizeof *data);
    int *lens = malloc(ROUND_BLOCKS * sizeof *lens);
    MPI_Aint *disps = malloc(ROUND_BLOCKS * sizeof *disps);
    int rc = TRESTLE_OK;

    (void)rank;
    if (!data || !lens || !disps) {
        rc = trestle__group_error(err, TRESTLE_E_NOMEM, "out of memory for the exchange");
        goto out;
    }
    for (size_t i = 0; i < nops; i++) {
        trestle_plan_op_info info;
        trestle_plan_get_op(p, i, &info);
        data[i] = info.data;
    }
    for (int r = 0; r < size && rc == TRESTLE_OK; r++) {
        size_t at = 0;
        uint64_t skip = 0;
        while (at < runs[r].n && rc == TRESTLE_OK)
            rc = round_bcast(comm, r, &runs[r], data, &at, &skip, lens, disps, err);
    }
out:
    free(data);
    free(lens);
    free(disps);
    return rc;
}
