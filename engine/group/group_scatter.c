/*
 * group_scatter.c - libtrestle_mpi: the parts of tensors that one rank read
 * whole for the others (engine/group/group_parts.c decides which and who),
 * each sent to the rank it belongs to.
 *
 * An op split along dimension `dim` is, in the whole op's row-major layout,
 * `outer` runs (one per index of the dims before `dim`) of `len x inner`
 * bytes each, inner being the bytes of one slab of the dims after `dim`;
 * a rank's part is those runs end to end, which is its destination's
 * layout. The owner describes each message's runs with an MPI hindexed
 * datatype over its whole copy (no packing copy); the receiver takes the
 * bytes contiguously into its destination. Both cut a part into the same
 * messages (at most ROUND_BYTES bytes and ROUND_BLOCKS runs each) from the
 * part's geometry alone, so the counts match without a word exchanged, and
 * MPI keeps the order of messages between two ranks on one tag, so each
 * receive meets its send as long as every rank walks the shared ops in the
 * same order.
 *
 * Destinations in device memory on some rank of the scope take the device
 * exchange instead (engine/group/group_device.c: NCCL, CUDA-aware MPI or
 * pinned host staging), which broadcasts: the owner gathers the scope's
 * parts end to end in host memory (each in its destination's layout, so
 * every rank's part is one contiguous piece of the payload), the rounds
 * carry the payload to every rank, and each copies its own piece of each
 * round on the exchange's stream, after the caller's pending work. The
 * fabric carries every part to every rank of the scope (each keeps its
 * own), where point to point would carry each part once; one collective
 * per round is what NCCL, the staging buffers and the rounds' failure
 * handling already give, and these tensors are the narrow ones.
 */
#include <stdlib.h>
#include <string.h>

#include "group.h"

#define ROUND_BYTES TRESTLE__GROUP_ROUND_BYTES /* per message (group.h) */
#define ROUND_BLOCKS 65536                      /* runs per message: bounds the type's arrays */
#define BATCH 256                               /* requests in flight before a rank waits */
#define TAG 0x7470                              /* "tp": the parts' messages */

/* Where one part lies in the row-major layout it is taken from. */
typedef struct geometry {
    uint64_t outer;     /* runs */
    uint64_t run;       /* bytes of each run */
    uint64_t row;       /* bytes from one run's start to the next's */
    uint64_t first;     /* bytes before the first run */
} geometry;

/* Part `part` of `world` along `dim` of an op of rank `rank`, dims `dims`
 * and `es`-byte elements. part 0 of world 1 is the op itself, contiguous. */
static void part_geometry(int rank, const int64_t *dims, int dim, size_t es, int part, int world,
                          geometry *gm)
{
    uint64_t outer = 1, inner = es;
    int64_t start, len;
    for (int d = 0; d < dim; d++)
        outer *= (uint64_t)dims[d];
    for (int d = dim + 1; d < rank; d++)
        inner *= (uint64_t)dims[d];
    trestle_shard_part(dims[dim], part, world, &start, &len);
    gm->outer = outer;
    gm->run = (uint64_t)len * inner;
    gm->row = (uint64_t)dims[dim] * inner;
    gm->first = (uint64_t)start * inner;
}

/* A position in a part: run k, `skip` bytes into it. */
typedef struct cursor {
    uint64_t k, skip;
} cursor;

/* The message that starts at *c: its bytes, and its runs (pieces of runs)
 * in *blocks; *c moves past it. 0 once the part is done. */
static uint64_t next_message(const geometry *gm, cursor *c, int *blocks)
{
    uint64_t bytes = 0;
    int nb = 0;
    while (gm->run > 0 && c->k < gm->outer && nb < ROUND_BLOCKS && bytes < ROUND_BYTES) {
        uint64_t take = gm->run - c->skip;
        if (take > ROUND_BYTES - bytes)
            take = ROUND_BYTES - bytes;
        bytes += take;
        nb++;
        c->skip += take;
        if (c->skip == gm->run) {
            c->k++;
            c->skip = 0;
        }
    }
    *blocks = nb;
    return bytes;
}

/* Requests in flight, and the arrays one message's datatype is built in. */
typedef struct flight {
    MPI_Request req[BATCH];
    int n;
    int *lens;
    MPI_Aint *disps;
} flight;

static int flush(flight *f, trestle_error *err)
{
    int mrc = f->n ? MPI_Waitall(f->n, f->req, MPI_STATUSES_IGNORE) : MPI_SUCCESS;
    f->n = 0;
    if (mrc != MPI_SUCCESS)
        return trestle__group_error(err, TRESTLE_E_GROUP, "sending tensor-parallel parts: "
                                    "MPI_Waitall failed (%d)", mrc);
    return TRESTLE_OK;
}

/* A free request slot, waiting for the batch when none is left. */
static int slot(flight *f, MPI_Request **out, trestle_error *err)
{
    int rc = f->n == BATCH ? flush(f, err) : TRESTLE_OK;
    *out = &f->req[f->n++];
    return rc;
}

/* Owner: send part `gm` of the whole copy at `base` to scope rank q. */
static int send_part(flight *f, MPI_Comm comm, int q, const uint8_t *base, const geometry *gm,
                     uint64_t *sent, trestle_error *err)
{
    cursor c = { 0, 0 };
    for (;;) {
        cursor at = c;
        int nb, rc, mrc;
        uint64_t bytes = next_message(gm, &c, &nb);
        if (bytes == 0)
            return TRESTLE_OK;
        for (int b = 0; b < nb; b++) {
            uint64_t take = gm->run - at.skip;
            if (take > bytes)
                take = bytes;
            MPI_Get_address(base + at.k * gm->row + gm->first + at.skip, &f->disps[b]);
            f->lens[b] = (int)take;
            bytes -= take;
            *sent += take;
            at.skip += take;
            if (at.skip == gm->run) {
                at.k++;
                at.skip = 0;
            }
        }
        MPI_Request *req;
        if ((rc = slot(f, &req, err)) != TRESTLE_OK)
            return rc;
        MPI_Datatype t;
        mrc = MPI_Type_create_hindexed(nb, f->lens, f->disps, MPI_BYTE, &t);
        if (mrc == MPI_SUCCESS && (mrc = MPI_Type_commit(&t)) == MPI_SUCCESS) {
            /* A type may be freed once the send is posted: MPI keeps it
             * until the send completes. */
            mrc = MPI_Isend(MPI_BOTTOM, 1, t, q, TAG, comm, req);
            MPI_Type_free(&t);
        }
        if (mrc != MPI_SUCCESS) {
            f->n--;
            return trestle__group_error(err, TRESTLE_E_GROUP, "sending a tensor-parallel part to "
                                        "rank %d failed (%d)", q, mrc);
        }
    }
}

/* Receiver: the messages of part `gm` from scope rank `owner`, into `dst`. */
static int receive_part(flight *f, MPI_Comm comm, int owner, uint8_t *dst, const geometry *gm,
                        uint64_t *received, trestle_error *err)
{
    cursor c = { 0, 0 };
    uint64_t at = 0;
    for (;;) {
        int nb, rc;
        uint64_t bytes = next_message(gm, &c, &nb);
        if (bytes == 0)
            return TRESTLE_OK;
        MPI_Request *req;
        if ((rc = slot(f, &req, err)) != TRESTLE_OK)
            return rc;
        int mrc = MPI_Irecv(dst + at, (int)bytes, MPI_BYTE, owner, TAG, comm, req);
        if (mrc != MPI_SUCCESS) {
            f->n--;
            return trestle__group_error(err, TRESTLE_E_GROUP, "receiving a tensor-parallel part "
                                        "from rank %d failed (%d)", owner, mrc);
        }
        at += bytes;
        *received += bytes;
    }
}

/* Owner: its own part, copied run by run from the whole copy. */
static void copy_part(uint8_t *dst, const uint8_t *base, const geometry *gm)
{
    for (uint64_t k = 0; k < gm->outer && gm->run > 0; k++)
        memcpy(dst + k * gm->run, base + k * gm->row + gm->first, gm->run);
}

/* One shared op: its owner sends, the others receive. An own part of the
 * wrong size (plans that differ) goes to *local and the sends go on, so
 * that no other rank is left waiting; MPI failures return. */
static int move_one(const trestle_group *g, const int *global, const trestle__group_shared *s,
                    trestle_plan *parts, const trestle_plan *whole, flight *f, uint64_t *sent,
                    uint64_t *received, int *local, trestle_error *err)
{
    trestle_plan_op_info mine;
    geometry own;
    trestle_plan_get_op(parts, s->op, &mine);
    size_t es = trestle_dtype_size(mine.out_dtype);
    part_geometry(mine.rank, mine.dims, s->dim, es, 0, 1, &own);
    if (g->xrank != s->owner)
        return receive_part(f, g->xcomm, s->owner, mine.data, &own, received, err);
    trestle_plan_op_info w;
    trestle_plan_get_op(whole, s->whole, &w);
    for (int q = 0; q < g->xsize; q++) {
        geometry gm;
        part_geometry(w.rank, w.dims, s->dim, es, global[q], g->size, &gm);
        if (q != g->xrank) {
            int rc = send_part(f, g->xcomm, q, w.data, &gm, sent, err);
            if (rc != TRESTLE_OK)
                return rc;
            continue;
        }
        if (gm.outer * gm.run == mine.bytes)
            copy_part(mine.data, w.data, &gm);
        else if (*local == TRESTLE_OK)
            *local = trestle__group_error(err, TRESTLE_E_INVALID_ARG, "tensor '%s': part %d of %d "
                                          "holds %llu bytes, the plan of the parts %llu",
                                          mine.name, global[q], g->size,
                                          (unsigned long long)(gm.outer * gm.run),
                                          (unsigned long long)mine.bytes);
    }
    return TRESTLE_OK;
}

int trestle__group_send_parts(const trestle_group *g, const int *global,
                              const trestle__group_shared *sh, size_t n, trestle_plan *parts,
                              const trestle_plan *whole, uint64_t *sent, uint64_t *received,
                              trestle_error *err)
{
    flight f = { .n = 0, .lens = malloc(ROUND_BLOCKS * sizeof *f.lens),
                 .disps = malloc(ROUND_BLOCKS * sizeof *f.disps) };
    int rc = TRESTLE_OK, local = TRESTLE_OK;
    if (!f.lens || !f.disps) {
        /* The others are about to send to and wait for this rank: without
         * the arrays it cannot take part, and ending the job is the only
         * way not to leave them waiting. */
        MPI_Abort(g->xcomm, 1);
    }
    for (size_t k = 0; k < n && rc == TRESTLE_OK; k++)
        rc = move_one(g, global, &sh[k], parts, whole, &f, sent, received, &local, err);
    /* Complete what was posted, also after a failure: a send left pending
     * would leave its receiver waiting. */
    trestle_error ferr;
    int frc = flush(&f, &ferr);
    if (rc == TRESTLE_OK && frc != TRESTLE_OK) {
        rc = frc;
        if (err)
            *err = ferr;
    }
    free(f.lens);
    free(f.disps);
    return rc != TRESTLE_OK ? rc : local;
}

/* ---- through the device exchange ---- */

/* The payload of one shared op's part rounds: the parts of the scope's
 * ranks end to end, in scope-rank order, each in its destination's
 * layout, gathered by the owner from its whole copy. */
typedef struct payload {
    const uint8_t *whole;       /* the owner's whole copy, in host memory */
    const geometry *gm;         /* per scope rank: where its part lies in the whole */
    const uint64_t *off;        /* per scope rank: where its part starts in the payload;
                                   off[scope size] is the payload's size */
} payload;

/* trestle__group_fill_fn: payload bytes [at, at + len), run by run. */
static void fill_payload(void *user, uint8_t *buf, uint64_t at, uint64_t len)
{
    const payload *pl = user;
    int q = 0;
    while (len > 0) {
        while (at >= pl->off[q + 1])
            q++;
        const geometry *gm = &pl->gm[q];
        uint64_t p = at - pl->off[q], k = p / gm->run, skip = p % gm->run;
        uint64_t take = gm->run - skip < len ? gm->run - skip : len;
        memcpy(buf, pl->whole + k * gm->row + gm->first + skip, take);
        buf += take;
        at += take;
        len -= take;
    }
}

/* Bytes per part round: ROUND_BYTES, the bounce buffers' size. A mock
 * build takes fewer from TRESTLE_CUDAMOCK_PART_ROUND (tests), so that small
 * tensors go in many rounds, cut inside rows and between parts. */
static uint64_t part_round_bytes(void)
{
#if TRESTLE_CUDA_MOCK
    const char *v = getenv("TRESTLE_CUDAMOCK_PART_ROUND");
    long long n = v ? atoll(v) : 0;
    if (n > 0 && (uint64_t)n < ROUND_BYTES)
        return (uint64_t)n;
#endif
    return ROUND_BYTES;
}

/* One shared op, through the device exchange: its payload in rounds of at
 * most part_round_bytes() from the owner, each rank taking the piece of every
 * round that is its part. `bytes[q]`: scope rank q's part; gm and off have
 * room for the scope. The round count comes from `bytes`, the same on
 * every rank. An owner whose parts do not match `bytes` (plans that differ)
 * gives nothing, notes it in *local, and the rounds go on. */
static int move_one_dev(const trestle_group *g, trestle__group_dev *dx, const int *global,
                        const trestle__group_shared *s, const uint64_t *bytes, geometry *gm,
                        uint64_t *off, trestle_plan *parts, const trestle_plan *whole,
                        uint64_t *sent, uint64_t *received, int *local, trestle_error *err)
{
    trestle_plan_op_info mine;
    trestle_plan_get_op(parts, s->op, &mine);
    off[0] = 0;
    for (int q = 0; q < g->xsize; q++)
        off[q + 1] = off[q] + bytes[q];
    bool owner = g->xrank == s->owner, give = owner;
    payload pl = { NULL, gm, off };
    if (owner) {
        trestle_plan_op_info w;
        trestle_plan_get_op(whole, s->whole, &w);
        size_t es = trestle_dtype_size(mine.out_dtype);
        pl.whole = w.data;
        for (int q = 0; q < g->xsize && give; q++) {
            part_geometry(w.rank, w.dims, s->dim, es, global[q], g->size, &gm[q]);
            if (gm[q].outer * gm[q].run == bytes[q])
                continue;
            give = false;
            if (*local == TRESTLE_OK)
                *local = trestle__group_error(err, TRESTLE_E_INVALID_ARG, "tensor '%s': part %d "
                                              "of %d holds %llu bytes, the plan of the parts "
                                              "%llu", mine.name, global[q], g->size,
                                              (unsigned long long)(gm[q].outer * gm[q].run),
                                              (unsigned long long)bytes[q]);
        }
    }
    uint64_t lo = off[g->xrank], hi = off[g->xrank + 1], round = part_round_bytes();
    for (uint64_t c0 = 0; c0 < off[g->xsize]; c0 += round) {
        uint64_t c1 = off[g->xsize] - c0 < round ? off[g->xsize] : c0 + round;
        uint64_t a = lo > c0 ? lo : c0, b = hi < c1 ? hi : c1, len = b > a ? b - a : 0;
        int rc = trestle__group_dev_part_round(dx, g->xcomm, s->owner, g->xrank,
                                               give ? fill_payload : NULL, &pl, c0, c1 - c0,
                                               len ? (uint8_t *)mine.data + (a - lo) : NULL,
                                               mine.device, a - c0, len, err);
        if (rc != TRESTLE_OK)
            return rc;
        /* What crossed between ranks: each round, from its owner to all. */
        if (owner)
            *sent += c1 - c0;
        else
            *received += c1 - c0;
    }
    return TRESTLE_OK;
}

int trestle__group_send_parts_dev(const trestle_group *g, trestle__group_dev *dx,
                                  const int *global, const trestle__group_shared *sh, size_t n,
                                  trestle_plan *parts, const trestle_plan *whole, uint64_t *sent,
                                  uint64_t *received, trestle_error *err)
{
    size_t q = (size_t)g->xsize;
    uint64_t *mine = malloc((n ? n : 1) * sizeof *mine), *table = malloc(q * n * sizeof *table);
    uint64_t *bytes = malloc(q * sizeof *bytes), *off = malloc((q + 1) * sizeof *off);
    geometry *gm = malloc(q * sizeof *gm);
    if (!mine || !table || !bytes || !off || !gm) {
        /* The others are about to gather the parts' sizes with this rank. */
        MPI_Abort(g->xcomm, 1);
    }
    for (size_t k = 0; k < n; k++) {
        trestle_plan_op_info o;
        trestle_plan_get_op(parts, sh[k].op, &o);
        mine[k] = o.bytes;
    }
    /* Every rank's part of every shared op: where each lies in the rounds. */
    int rc = TRESTLE_OK, local = TRESTLE_OK;
    int mrc = MPI_Allgather(mine, (int)n, MPI_UINT64_T, table, (int)n, MPI_UINT64_T, g->xcomm);
    if (mrc != MPI_SUCCESS)
        rc = trestle__group_error(err, TRESTLE_E_GROUP, "gathering the sizes of the "
                                  "tensor-parallel parts: MPI_Allgather failed (%d)", mrc);
    for (size_t k = 0; k < n && rc == TRESTLE_OK; k++) {
        for (size_t r = 0; r < q; r++)
            bytes[r] = table[r * n + k];
        rc = move_one_dev(g, dx, global, &sh[k], bytes, gm, off, parts, whole, sent, received,
                          &local, err);
    }
    free(mine);
    free(table);
    free(bytes);
    free(off);
    free(gm);
    return rc != TRESTLE_OK ? rc : local;
}
