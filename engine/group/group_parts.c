/*
 * group_parts.c - libtrestle_mpi: each rank's tensor-parallel parts, every
 * stored byte read once by the read-once scope
 * (trestle_group_restore_parts()).
 *
 * Each rank plans its own parts: the caller's shard rules, part `rank` of
 * the group's size, partial reads on. A part its rank can read alone (one
 * run, or runs far enough apart: trestle_plan_options.partial_reads) is
 * read so, its CRC32C folded into a share that the ranks check together
 * (trestle_group_check_shares()). Any other part would make its rank read
 * more than the part: the whole tensor when the part's rows lie closer than
 * max_gap_bytes (a column split of a narrow tensor: about N times the
 * tensor over N ranks), or stored slices that other parts share. Those
 * tensors ("shared" here) are read once, whole and fully CRC-checked, by
 * one rank of the read-once scope, their owner (chosen to even out the
 * bytes), which sends every other rank of the scope its part
 * (engine/group/group_scatter.c); the others leave those ops unread
 * (trestle_plan_drop_op_reads()). Measured on issue 22's case before this
 * was chosen (bench/RESULTS.md): reading each rank's runs without the
 * whole rows read 1/N as counted but took 10-19x as long as this (thousands
 * of sub-page reads, each widened to whole pages by O_DIRECT and the page
 * cache anyway, so the device still served every page to every rank).
 *
 * The steps, collective or local as marked:
 *   same     (collective) one version of the checkpoint (group_same.c);
 *   plan     (local) this rank's parts; then agree;
 *   shared   (collective) the ops that read more than their part on some
 *            rank (MPI_BOR); a rank alone in its scope reads them itself
 *            (once in its scope), as its plan of the parts has them;
 *   owners   (local, the same on every rank of a scope) greedy by bytes;
 *   plans    (local) drop the shared ops' reads; the owner plans its
 *            shared ops whole (no rules) into host memory;
 *   restore  (local) the owner's whole ops, then the parts; then agree;
 *   shares   (collective) trestle_group_check_shares();
 *   exchange (collective within the scope) host destinations only: none;
 *            else the group's device exchange (group_device.c), made or
 *            reused as a group restore does; then agree;
 *   send     within the scope: point to point between host destinations
 *            (group_scatter.c), else rounds of the device exchange that
 *            broadcast the scope's parts, each rank keeping its own, on
 *            the exchange's stream after the caller's pending work; then
 *            agree.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "group.h"

/* trestle_plan_options' first release (0.1; engine/common/options.h pins it). */
#define PLAN_OPTIONS_FIRST_SIZE sizeof(trestle_plan_options)

/* What one call works with. */
typedef struct job {
    trestle_group *g;
    const trestle_checkpoint *c;
    const trestle_op *ops;        /* the caller's, or NULL: every tensor */
    trestle_plan_options o;       /* the caller's, as part `rank` of the group, partial reads on */
    trestle_restore_options ro;   /* the caller's, checked */
    trestle_plan *parts;          /* this rank's parts */
    trestle_plan *whole;          /* the shared ops this rank owns, whole (NULL: none) */
    trestle__group_shared *sh;    /* the shared ops, in op order */
    size_t nsh;
    size_t found;                 /* shared ops found in the group (also where nsh is 0) */
    uint64_t shared_bytes;        /* their stored bytes */
    bool *hidden;                 /* per op of parts: shared, so not reported ready by the restore */
    int *global;                  /* scope rank -> group rank (its part) */
} job;

/* ---- which ops are shared ---- */

typedef struct reads {
    uint64_t *bytes;              /* per op: stored bytes of the extents that feed it */
    size_t extent_op;             /* the op the current extent fed last (SIZE_MAX: none yet) */
    uint64_t extent_size;
} reads;

static int count_read(void *user, size_t op, uint64_t offset, uint64_t length)
{
    (void)offset, (void)length;
    reads *r = user;
    if (r->extent_op != op) /* an extent counts once per op it feeds */
        r->bytes[op] += r->extent_size;
    r->extent_op = op;
    return 0;
}

/* Mark in cand[] the ops this rank would read more of than its part: a
 * shard rule splits it, its destination is kept, its elements are of a
 * fixed size and no CRC share reads it in runs. */
static int candidates(const job *j, uint8_t *cand, trestle_error *err)
{
    size_t n = trestle_plan_op_count(j->parts);
    reads r = { calloc(n ? n : 1, sizeof *r.bytes), SIZE_MAX, 0 };
    bool *deferred = calloc(n ? n : 1, sizeof *deferred);
    if (!r.bytes || !deferred) {
        free(r.bytes);
        free(deferred);
        return trestle__group_error(err, TRESTLE_E_NOMEM, "out of memory");
    }
    for (size_t k = 0; k < trestle_plan_crc_share_count(j->parts); k++) {
        trestle_crc_share s;
        trestle_plan_get_crc_share(j->parts, k, &s);
        deferred[s.op] = true;
    }
    for (size_t e = 0; e < trestle_plan_extent_count(j->parts); e++) {
        trestle_plan_extent_info x;
        trestle_plan_get_extent(j->parts, e, &x);
        r.extent_op = SIZE_MAX;
        r.extent_size = x.size;
        trestle_plan_extent_runs(j->parts, e, count_read, &r);
    }
    for (size_t i = 0; i < n; i++) {
        trestle_plan_op_info o;
        trestle_plan_get_op(j->parts, i, &o);
        size_t src = trestle_dtype_size(o.dtype), dst = trestle_dtype_size(o.out_dtype);
        if (o.skipped || deferred[i] || src == 0 || dst == 0 ||
            (j->ops && j->ops[i].dest_kind == TRESTLE_DEST_DISCARD) ||
            trestle_shard_rule_match(j->o.shard_rules, j->o.num_shard_rules, o.name, NULL) < 0)
            continue;
        /* Elements, since a converting op lands in another width. */
        cand[i] = r.bytes[i] / src > o.bytes / dst;
    }
    free(r.bytes);
    free(deferred);
    return TRESTLE_OK;
}

/* Agree on the shared ops (any rank's candidates) and on whether every
 * rank restores into host memory, then list them with their rule's dim. */
static int find_shared(job *j, trestle_error *err)
{
    size_t n = trestle_plan_op_count(j->parts);
    /* The op lists must agree before a table of them is reduced: the same
     * verdict on every rank, from the largest and smallest count. */
    long long counts[2] = { (long long)n, -(long long)n };
    int mrc = MPI_Allreduce(MPI_IN_PLACE, counts, 2, MPI_LONG_LONG, MPI_MAX, j->g->comm);
    if (mrc != MPI_SUCCESS)
        return trestle__group_error(err, TRESTLE_E_GROUP, "MPI_Allreduce failed (%d)", mrc);
    if (counts[0] != -counts[1])
        return trestle__group_error(err, TRESTLE_E_INVALID_ARG, "the ranks planned %lld to %lld "
                                    "tensor-parallel ops: every rank must plan the same ops",
                                    -counts[1], counts[0]);
    uint8_t *v = calloc(n ? n : 1, 1);
    if (!v) {
        /* Every other rank is about to reduce its table with this one's. */
        MPI_Abort(j->g->comm, 1);
    }
    int rc = candidates(j, v, err);
    /* A failed count still takes part: it adds nothing and agrees after. */
    mrc = MPI_Allreduce(MPI_IN_PLACE, v, (int)n, MPI_UNSIGNED_CHAR, MPI_BOR, j->g->comm);
    if (rc == TRESTLE_OK && mrc != MPI_SUCCESS)
        rc = trestle__group_error(err, TRESTLE_E_GROUP, "MPI_Allreduce failed (%d)", mrc);
    for (size_t i = 0; i < n; i++)
        j->nsh += v[i];
    j->sh = calloc(j->nsh ? j->nsh : 1, sizeof *j->sh);
    j->hidden = calloc(n ? n : 1, sizeof *j->hidden);
    if (rc == TRESTLE_OK && (!j->sh || !j->hidden))
        rc = trestle__group_error(err, TRESTLE_E_NOMEM, "out of memory");
    size_t k = 0;
    for (size_t i = 0; rc == TRESTLE_OK && i < n; i++) {
        if (!v[i])
            continue;
        trestle_plan_op_info o;
        trestle_tensor_info t;
        size_t at;
        trestle_plan_get_op(j->parts, i, &o);
        trestle_shard_rule_match(j->o.shard_rules, j->o.num_shard_rules, o.name, &j->sh[k].dim);
        j->sh[k].op = i;
        if (trestle_tensor_find(j->c, o.key, &at, NULL) == TRESTLE_OK &&
            trestle_tensor_get_info(j->c, at, &t) == TRESTLE_OK)
            j->shared_bytes += t.size;
        k++;
    }
    j->found = j->nsh;
    /* Alone in its read-once scope, a rank reads such a tensor whole for
     * its own part: that is reading it once in the scope, with nothing to
     * send, so its plan of the parts reads it as it is. */
    if (rc != TRESTLE_OK || j->g->xsize == 1)
        j->nsh = 0;
    free(v);
    return rc;
}

/* ---- owners and plans ---- */

/* Each shared op to the scope rank with the fewest bytes so far (the lowest
 * on a tie), in op order: the same on every rank of the scope. */
static int choose_owners(job *j, trestle_error *err)
{
    trestle_group *g = j->g;
    uint64_t *load = calloc((size_t)g->xsize, sizeof *load);
    j->global = malloc((size_t)g->xsize * sizeof *j->global);
    if (!load || !j->global) {
        free(load);
        return trestle__group_error(err, TRESTLE_E_NOMEM, "out of memory");
    }
    int mrc = MPI_Allgather(&g->rank, 1, MPI_INT, j->global, 1, MPI_INT, g->xcomm);
    for (size_t k = 0; k < j->nsh; k++) {
        trestle_plan_op_info o;
        trestle_tensor_info t = { 0 };
        size_t at;
        trestle_plan_get_op(j->parts, j->sh[k].op, &o);
        if (trestle_tensor_find(j->c, o.key, &at, NULL) == TRESTLE_OK)
            trestle_tensor_get_info(j->c, at, &t);
        int best = 0;
        for (int q = 1; q < g->xsize; q++)
            if (load[q] < load[best])
                best = q;
        j->sh[k].owner = best;
        load[best] += t.size;
    }
    free(load);
    if (mrc != MPI_SUCCESS)
        return trestle__group_error(err, TRESTLE_E_GROUP, "MPI_Allgather failed (%d)", mrc);
    return TRESTLE_OK;
}

/* Drop the shared ops' reads from this rank's parts, and plan the ones it
 * owns whole, into engine host memory, as the caller asked for them but
 * without the rules. */
static int plan_shared(job *j, trestle_error *err)
{
    trestle_op *w = calloc(j->nsh ? j->nsh : 1, sizeof *w);
    size_t m = 0;
    int rc = w ? TRESTLE_OK : trestle__group_error(err, TRESTLE_E_NOMEM, "out of memory");
    for (size_t k = 0; rc == TRESTLE_OK && k < j->nsh; k++) {
        trestle__group_shared *s = &j->sh[k];
        rc = trestle_plan_drop_op_reads(j->parts, s->op, err);
        j->hidden[s->op] = true;
        if (rc != TRESTLE_OK || s->owner != j->g->xrank)
            continue;
        trestle_plan_op_info o;
        trestle_plan_get_op(j->parts, s->op, &o);
        w[m] = j->ops ? j->ops[s->op] : (trestle_op){ .name = o.name };
        w[m].dest_kind = TRESTLE_DEST_ALLOCATE;
        w[m].ptr = NULL;
        w[m].capacity = 0;
        s->whole = m++;
    }
    if (rc == TRESTLE_OK && m > 0) {
        trestle_plan_options wo = j->o;
        wo.shard_rules = NULL;
        wo.num_shard_rules = 0;
        wo.shard_rank = 0;
        wo.shard_world = 1;
        wo.partial_reads = 0;
        wo.op_shapes = NULL; /* parallel to the caller's ops, not to these */
        rc = trestle_plan_create(j->c, w, m, &wo, &j->whole, err);
    }
    free(w);
    return rc;
}

/* ---- restoring ---- */

/* The caller's ready callback, told only of ops this rank's plan writes:
 * shared ops are "ready" at once with nothing in them yet. */
typedef struct relay {
    const job *j;
} relay;

static int relay_ready(void *user, size_t i, const trestle_plan_op_info *op)
{
    const job *j = ((const relay *)user)->j;
    return j->hidden[i] ? 0 : j->ro.on_ready(j->ro.user, i, op);
}

static void add_stats(trestle_stats *to, const trestle_stats *from)
{
    to->bytes_read += from->bytes_read;
    to->bytes_verified += from->bytes_verified;
    to->read_seconds += from->read_seconds;
    to->verify_seconds += from->verify_seconds;
    to->copy_seconds += from->copy_seconds;
}

/* The owner's whole ops (host memory, no callback), then the parts. */
static int restore_local(job *j, trestle_group_stats *st, trestle_error *err)
{
    double t0 = MPI_Wtime();
    trestle_stats ws;
    int rc = TRESTLE_OK;
    if (j->whole) {
        trestle_restore_options wo = j->ro;
        wo.device = -1;
        wo.devices = NULL;
        wo.num_devices = 0;
        wo.on_ready = NULL;
        wo.user = NULL;
        rc = trestle_restore(j->whole, &wo, &ws, err);
    }
    if (rc == TRESTLE_OK) {
        trestle_restore_options po = j->ro;
        relay r = { j };
        if (po.on_ready) {
            po.on_ready = relay_ready;
            po.user = &r;
        }
        rc = trestle_restore(j->parts, &po, &st->local, err);
    }
    if (j->whole && rc == TRESTLE_OK)
        add_stats(&st->local, &ws);
    st->bytes_read = st->local.bytes_read;
    st->extents = trestle_plan_extent_count(j->parts) + trestle_plan_extent_count(j->whole);
    st->restore_seconds = MPI_Wtime() - t0;
    return rc;
}

/* "1.50 MiB", for the note. */
static void human(uint64_t b, char *buf, size_t cap)
{
    static const char *const unit[] = { "B", "KiB", "MiB", "GiB", "TiB" };
    double v = (double)b;
    int u = 0;
    while (v >= 1024 && u < 4) {
        v /= 1024;
        u++;
    }
    snprintf(buf, cap, u ? "%.2f %s" : "%.0f %s", v, unit[u]);
}

/* trestle_group_stats.exchange_note of a parts restore: the shared ops and
 * how their parts travelled (st->exchange), or why nothing did. */
static void note(const job *j, trestle_group_stats *st)
{
    static const char *const how[] = {
        [TRESTLE_GROUP_EXCHANGE_MPI_HOST] = "its parts sent over MPI",
        [TRESTLE_GROUP_EXCHANGE_STAGED] = "its parts broadcast through pinned host staging "
                                          "over MPI",
        [TRESTLE_GROUP_EXCHANGE_MPI_CUDA] = "its parts broadcast by CUDA-aware MPI",
        [TRESTLE_GROUP_EXCHANGE_NCCL] = "its parts broadcast by NCCL",
    };
    size_t shared = j->found;
    char size[32];
    human(j->shared_bytes, size, sizeof size);
    int k = st->exchange >= 0 && st->exchange <= TRESTLE_GROUP_EXCHANGE_NCCL && how[st->exchange]
                ? st->exchange : TRESTLE_GROUP_EXCHANGE_MPI_HOST;
    if (shared == 0)
        snprintf(st->exchange_note, sizeof st->exchange_note, "every rank reads its parts "
                 "alone: nothing to send");
    else if (j->g->xsize == 1)
        snprintf(st->exchange_note, sizeof st->exchange_note, "%zu tensor%s (%s) whose parts no "
                 "rank reads alone: each read whole by this rank, alone in its read-once scope",
                 shared, shared == 1 ? "" : "s", size);
    else
        snprintf(st->exchange_note, sizeof st->exchange_note, "%zu tensor%s (%s) whose parts no "
                 "rank reads alone: each read whole by one rank, %s", shared,
                 shared == 1 ? "" : "s", size, how[k]);
}

/* The device this rank's parts land on, for the device exchange: the
 * restore's, else that of a shared op's destination (a caller's device
 * pointer), else -1 (host memory). */
static int exchange_device(const job *j)
{
    for (size_t k = 0; j->ro.device < 0 && k < j->nsh; k++) {
        trestle_plan_op_info o;
        trestle_plan_get_op(j->parts, j->sh[k].op, &o);
        if (o.device >= 0)
            return o.device;
    }
    return j->ro.device;
}

/* Send the shared ops' parts within each scope: straight over MPI between
 * host destinations, else through the group's device exchange (made here
 * or kept from before, and kept for the next restore). Every rank of the
 * group takes part in both agreements, also one alone in its scope, which
 * has nothing to send. */
static int send_shared(job *j, trestle_group_stats *st, trestle_error *err)
{
    trestle_group *g = j->g;
    trestle__group_dev *dx = NULL;
    trestle_error mine;
    double t0, t;
    int orc = TRESTLE_OK, xrc = TRESTLE_OK;
    trestle_error_clear(&mine);
    if (j->nsh > 0) {
        orc = trestle__group_dev_open(&g->dev, g->xcomm, g->xrank, g->xsize, exchange_device(j),
                                      g->exchange, j->ro.cuda_stream, &st->exchange,
                                      st->exchange_note, sizeof st->exchange_note, &mine);
        dx = st->exchange == TRESTLE_GROUP_EXCHANGE_MPI_HOST ? NULL : g->dev;
    }
    t = MPI_Wtime();
    int rc = trestle_group_agree(g, orc, &mine, err);
    st->agree_seconds += MPI_Wtime() - t;
    /* Setting the exchange up is not timed, as in a group restore. */
    t0 = MPI_Wtime();
    if (rc == TRESTLE_OK && j->nsh > 0) {
        if (dx)
            xrc = trestle__group_send_parts_dev(g, dx, j->global, j->sh, j->nsh, j->parts,
                                                j->whole, &st->bytes_sent, &st->bytes_received,
                                                &mine);
        else
            xrc = trestle__group_send_parts(g, j->global, j->sh, j->nsh, j->parts, j->whole,
                                            &st->bytes_sent, &st->bytes_received, &mine);
    }
    /* The last copies onto this rank's devices finish here. */
    trestle_error derr;
    int drc = trestle__group_dev_end(dx, &derr);
    if (xrc == TRESTLE_OK && drc != TRESTLE_OK) {
        xrc = drc;
        mine = derr;
    }
    st->exchange_seconds = MPI_Wtime() - t0;
    if (rc == TRESTLE_OK) {
        t = MPI_Wtime();
        rc = trestle_group_agree(g, xrc, &mine, err);
        st->agree_seconds += MPI_Wtime() - t;
    }
    return rc;
}

/* ---- the call ---- */

static int prepare(job *j, const trestle_plan_options *po, const trestle_restore_options *opt,
                   size_t n, trestle_error *err)
{
    trestle_plan_options_init(&j->o);
    int rc = trestle_options_read(&j->o, po, sizeof j->o, PLAN_OPTIONS_FIRST_SIZE,
                                  offsetof(trestle_plan_options, reserved),
                                  "trestle_plan_options", err);
    if (rc != TRESTLE_OK)
        return rc;
    j->o.shard_rank = j->g->rank;
    j->o.shard_world = j->g->size;
    j->o.partial_reads = 1;
    if ((rc = trestle_plan_create(j->c, j->ops, n, &j->o, &j->parts, err)) != TRESTLE_OK)
        return rc;
    trestle_restore_options_init(&j->ro);
    return trestle__group_check_local(j->parts, opt, &j->ro, err);
}

int trestle_group_restore_parts(trestle_group *g, const trestle_checkpoint *c,
                                const trestle_op *ops, size_t n, const trestle_plan_options *po,
                                const trestle_restore_options *opt, trestle_plan **out,
                                trestle_group_stats *stats, trestle_error *err)
{
    job j = { .g = g, .c = c, .ops = ops };
    trestle_group_stats st;
    trestle_error mine;
    double t0 = MPI_Wtime(), t;
    int rc = TRESTLE_OK;

    trestle_error_clear(err);
    trestle_error_clear(&mine);
    if (!g)
        return trestle__group_error(err, TRESTLE_E_INVALID_ARG, "NULL group");
    trestle__group_stats_init(g, &st);
    st.exchange = TRESTLE_GROUP_EXCHANGE_MPI_HOST;
    if (out)
        *out = NULL;
    if (!out || !c || (!ops && n > 0))
        rc = trestle__group_error(&mine, TRESTLE_E_INVALID_ARG, "%s", !out ? "NULL output pointer"
                                  : !c ? "NULL checkpoint" : "ops is NULL but n > 0");

    /* One version before anything is planned. Every rank computes the
     * verdict from every rank's identity, so all stop here alike, with the
     * message as it is: it is the group's finding, not one rank's. */
    trestle_error serr;
    int src = trestle__group_same_checkpoint(g, rc == TRESTLE_OK ? c : NULL, &serr);
    if (src != TRESTLE_OK)
        return trestle__group_end(src, &serr, err, &st, t0, stats);
    if (rc == TRESTLE_OK)
        rc = prepare(&j, po, opt, n, &mine);
    t = MPI_Wtime();
    rc = trestle_group_agree(g, rc, &mine, err);
    st.agree_seconds += MPI_Wtime() - t;
    if (rc == TRESTLE_OK) {
        /* Collective steps, each taken by every rank (the agreement below
         * reports a local failure among them). */
        int lrc = find_shared(&j, &mine);
        int orc = choose_owners(&j, lrc == TRESTLE_OK ? &mine : NULL);
        if (lrc == TRESTLE_OK)
            lrc = orc;
        if (lrc == TRESTLE_OK)
            lrc = plan_shared(&j, &mine);
        if (lrc == TRESTLE_OK)
            lrc = restore_local(&j, &st, &mine);
        t = MPI_Wtime();
        rc = trestle_group_agree(g, lrc, &mine, err);
        st.agree_seconds += MPI_Wtime() - t;
    }
    /* The parts read in runs are verified only when their shares combine. */
    if (rc == TRESTLE_OK && j.ro.verify)
        rc = trestle_group_check_shares(g, j.parts, err);
    /* Found on every rank alike, so every rank takes this step. */
    if (rc == TRESTLE_OK && j.found > 0)
        rc = send_shared(&j, &st, err);
    note(&j, &st);
    if (rc != TRESTLE_OK)
        st.bytes_sent = st.bytes_received = 0;
    trestle__group_end(rc, NULL, NULL, &st, t0, stats);
    trestle_plan_free(j.whole);
    free(j.sh);
    free(j.hidden);
    free(j.global);
    if (rc == TRESTLE_OK && out)
        *out = j.parts;
    else
        trestle_plan_free(j.parts);
    return rc;
}
