/*
 * group_mpi.c - libtrestle_mpi: a group of MPI processes restoring one
 * checkpoint, each extent read from storage by one rank (include/trestle_mpi.h).
 *
 * The order of a group restore, every step collective or local as marked:
 *   check    (collective) all ranks read one version of the checkpoint
 *            (engine/group/group_same.c) and planned the same extents and op sizes;
 *   split    (local) this rank's consecutive, byte-balanced extent range,
 *            among the ranks of the read-once scope (g->xcomm: the whole
 *            group, or this rank's node; engine/group/group_scope.c);
 *   runs     (local) the destination runs of every rank's part, listed
 *            before the plan is kept to this rank's part;
 *   restore  (local, engine/group/group_live.c) trestle_restore() of the kept plan,
 *            started on a thread of its own;
 *   agree    (collective) did every rank get this far? If not, the lowest
 *            failing rank's error becomes everyone's and nothing is exchanged;
 *   exchange (collective over the scope, engine/group/group_exchange.c) each round of verified
 *            bytes goes out as soon as it is in place at its root, while
 *            the rest is still being read;
 *   agree    (collective) once more, over the restores and the exchange.
 * Every rank takes every collective step whatever happened locally, so a
 * failure on one rank can never leave another waiting in a collective.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "group.h"
#include "trestle_mpi.h"

/* struct trestle_group is in group.h: engine/group/group_scope.c fills its nodes. */

/*
 * The first release's size of each options struct the group reads, for
 * the options rule (trestle_options_read(): libtrestle_mpi cannot use the
 * engine's TRESTLE__OPTIONS_READ). trestle_group_options: 0.2's.
 * trestle_restore_options: 0.1's, as TRESTLE__RESTORE_OPTIONS_FIRST_SIZE
 * in engine/common/options.h says (tests/test_options.c pins both equal to
 * sizeof): change them together.
 */
#define GROUP_OPTIONS_FIRST_SIZE sizeof(trestle_group_options)
#define RESTORE_OPTIONS_FIRST_SIZE sizeof(trestle_restore_options)

/* `opt` by the options rule over the defaults in `o` (meaningful only on
 * success); reserved_int too, which the rule's reserved array does not
 * cover, and which the rule has checked that `size` covers. */
static int read_group_options(trestle_group_options *o, const trestle_group_options *opt,
                              trestle_error *err)
{
    int rc = trestle_options_read(o, opt, sizeof *o, GROUP_OPTIONS_FIRST_SIZE,
                                  offsetof(trestle_group_options, reserved),
                                  "trestle_group_options", err);
    if (rc == TRESTLE_OK && o->reserved_int)
        rc = trestle__group_error(err, TRESTLE_E_INVALID_ARG,
                                  "trestle_group_options.reserved_int is not zero");
    return rc;
}

void trestle_group_options_init(trestle_group_options *opt)
{
    memset(opt, 0, sizeof *opt);
    opt->size = sizeof *opt;
    opt->scope = TRESTLE_GROUP_SCOPE_AUTO;
    opt->node_id = -1;
}

static int agree(trestle_group *g, int rc, trestle_error *err, const trestle_error *mine);

int trestle_group_create_with(MPI_Comm comm, const trestle_group_options *opt,
                              trestle_group **out, trestle_error *err)
{
    int inited = 0, mrc;
    trestle_group_options o;
    trestle_error mine;
    trestle_error_clear(err);
    trestle_error_clear(&mine);
    trestle_group_options_init(&o);
    /* A refused struct fails every rank alike, below. */
    int rc = read_group_options(&o, opt, &mine);
    if (!out)
        return trestle__group_error(err, TRESTLE_E_INVALID_ARG, "NULL output pointer");
    *out = NULL;
    MPI_Initialized(&inited);
    if (!inited)
        return trestle__group_error(err, TRESTLE_E_INVALID_ARG,
                                    "MPI is not initialised: call MPI_Init first");
    trestle_group *g = calloc(1, sizeof *g);
    if (!g)
        return trestle__group_error(err, TRESTLE_E_NOMEM, "out of memory");
    if ((mrc = MPI_Comm_dup(comm, &g->comm)) != MPI_SUCCESS) {
        free(g);
        return trestle__group_error(err, TRESTLE_E_GROUP, "MPI_Comm_dup failed (%d)", mrc);
    }
    MPI_Comm_set_errhandler(g->comm, MPI_ERRORS_RETURN);
    g->node_comm = MPI_COMM_NULL; /* what trestle_group_free() looks at, until the scope is made */
    MPI_Comm_rank(g->comm, &g->rank);
    MPI_Comm_size(g->comm, &g->size);
    g->exchange = o.exchange;
    if (rc == TRESTLE_OK && o.exchange != TRESTLE_GROUP_EXCHANGE_AUTO &&
        o.exchange != TRESTLE_GROUP_EXCHANGE_STAGED &&
        o.exchange != TRESTLE_GROUP_EXCHANGE_MPI_CUDA)
        rc = trestle__group_error(&mine, TRESTLE_E_INVALID_ARG, "exchange %d: only AUTO (0), "
                                  "STAGED (2) or MPI_CUDA (3) can be asked for", o.exchange);
    else if (rc == TRESTLE_OK &&
             (o.scope < TRESTLE_GROUP_SCOPE_AUTO || o.scope > TRESTLE_GROUP_SCOPE_NODE))
        rc = trestle__group_error(&mine, TRESTLE_E_INVALID_ARG, "unknown group scope %d (AUTO "
                                  "0, GROUP 1 or NODE 2)", o.scope);
    /* Options may differ between ranks: all agree on them before the
     * scope's collectives, so that no rank is left alone in those, and
     * every rank fails with the lowest bad rank's message. */
    rc = agree(g, rc, err, &mine);
    if (rc == TRESTLE_OK)
        rc = trestle__group_scope_init(g, o.scope, o.node_id, o.path, err);
    if (rc != TRESTLE_OK) {
        trestle_group_free(g);
        return rc;
    }
    *out = g;
    return TRESTLE_OK;
}

int trestle_group_create(MPI_Comm comm, trestle_group **out, trestle_error *err)
{
    return trestle_group_create_with(comm, NULL, out, err);
}

void trestle_group_free(trestle_group *g)
{
    if (!g)
        return;
    /* Every rank holds a kept device exchange or none: freed together. */
    if (g->dev)
        trestle__group_dev_free(g->dev, g->xcomm);
    if (g->node_comm != MPI_COMM_NULL)
        MPI_Comm_free(&g->node_comm);
    MPI_Comm_free(&g->comm);
    free(g);
}

int trestle_group_rank(const trestle_group *g) { return g ? g->rank : 0; }

int trestle_group_size(const trestle_group *g) { return g ? g->size : 1; }

MPI_Comm trestle__group_comm(const trestle_group *g) { return g->comm; }

int trestle__group_end(int rc, const trestle_error *e, trestle_error *err, trestle_group_stats *st,
                       double t0, trestle_group_stats *stats)
{
    if (err && e)
        *err = *e;
    st->wall_seconds = MPI_Wtime() - t0;
    if (stats)
        *stats = *st;
    return rc;
}

void trestle__group_stats_init(const trestle_group *g, trestle_group_stats *st)
{
    memset(st, 0, sizeof *st);
    st->rank = g->rank;
    st->size = g->size;
    st->scope = g->scope;
    st->nodes = g->nodes;
    st->node = g->node;
    st->node_size = g->node_size;
    snprintf(st->scope_note, sizeof st->scope_note, "%s", g->scope_note);
}

/* ---- the split ---- */

/* Where part k starts: the first extent whose middle lies past k/size of
 * the bytes. Monotone in k, so parts are consecutive and cover everything. */
static size_t boundary(const trestle_plan *p, size_t n, uint64_t total, int k, int size)
{
    if (k <= 0)
        return 0;
    if (k >= size)
        return n;
    if (total == 0)
        return n * (size_t)k / (size_t)size;
    unsigned __int128 target = (unsigned __int128)total * (unsigned)k / (unsigned)size;
    uint64_t acc = 0;
    size_t i = 0;
    for (; i < n; i++) {
        trestle_plan_extent_info x;
        trestle_plan_get_extent(p, i, &x);
        if (acc + x.size / 2 >= target)
            break;
        acc += x.size;
    }
    return i;
}

void trestle_group_part(const trestle_plan *p, int rank, int size, size_t *first, size_t *end)
{
    size_t n = trestle_plan_extent_count(p);
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++) {
        trestle_plan_extent_info x;
        trestle_plan_get_extent(p, i, &x);
        total += x.size;
    }
    if (size < 1)
        size = 1;
    *first = boundary(p, n, total, rank, size);
    *end = boundary(p, n, total, rank + 1, size);
}

/* ---- collectives ---- */

/* FNV-1a over what must agree between ranks: every extent and op size.
 * Its own loop: libtrestle_mpi uses no engine header (engine/common/fnv.h
 * has the same basis and prime). Only ranks of one job compare these. */
static uint64_t fingerprint(const trestle_plan *p)
{
    uint64_t h = 14695981039346656037ull;
    size_t n = trestle_plan_extent_count(p), m = trestle_plan_op_count(p);
    uint64_t words[3];
    for (size_t i = 0; i < n + m; i++) {
        if (i < n) {
            trestle_plan_extent_info x;
            trestle_plan_get_extent(p, i, &x);
            words[0] = (uint64_t)x.shard;
            words[1] = x.offset;
            words[2] = x.size;
        } else {
            trestle_plan_op_info o;
            trestle_plan_get_op(p, i - n, &o);
            words[0] = o.bytes;
            words[1] = (uint64_t)o.skipped;
            words[2] = (uint64_t)o.out_dtype;
        }
        const uint8_t *b = (const uint8_t *)words;
        for (size_t k = 0; k < sizeof words; k++)
            h = (h ^ b[k]) * 1099511628211ull;
    }
    return h ^ n ^ (m << 32);
}

/* Do all ranks hold the same plan? One allreduce of (h, ~h) under MAX
 * gives the largest and (inverted) smallest fingerprint. p NULL: this rank
 * takes part with (0, 0), which changes neither. */
static int check_same_plan(trestle_group *g, const trestle_plan *p, trestle_error *err)
{
    uint64_t h = p ? fingerprint(p) : 0, mine[2] = { h, p ? ~h : 0 }, all[2];
    int mrc = MPI_Allreduce(mine, all, 2, MPI_UINT64_T, MPI_MAX, g->comm);
    if (mrc != MPI_SUCCESS)
        return trestle__group_error(err, TRESTLE_E_GROUP, "MPI_Allreduce failed (%d)", mrc);
    if (p && all[0] != ~all[1])
        return trestle__group_error(err, TRESTLE_E_INVALID_ARG,
                                    "the ranks planned different restores (extents or op sizes "
                                    "differ): every rank must plan the same ops of the same "
                                    "checkpoint with the same options");
    return TRESTLE_OK;
}

/*
 * The one collective that decides an outcome: the lowest rank whose rc is
 * not OK broadcasts its error, prefixed "rank R of N: ", and every rank
 * returns it. All OK: returns TRESTLE_OK and leaves err alone.
 */
static int agree(trestle_group *g, int rc, trestle_error *err, const trestle_error *mine)
{
    int me = rc != TRESTLE_OK ? g->rank : g->size, first = g->size;
    int mrc = MPI_Allreduce(&me, &first, 1, MPI_INT, MPI_MIN, g->comm);
    if (mrc != MPI_SUCCESS)
        return trestle__group_error(err, TRESTLE_E_GROUP, "MPI_Allreduce failed (%d)", mrc);
    if (first == g->size)
        return TRESTLE_OK;
    trestle_error out = *mine;
    if (g->rank == first) {
        /* The prefix goes first; the end of a long message gives way. */
        char prefix[48];
        size_t n = (size_t)snprintf(prefix, sizeof prefix, "rank %d of %d: ", first, g->size);
        size_t len = strnlen(mine->message, sizeof out.message - 1);
        if (len > sizeof out.message - 1 - n)
            len = sizeof out.message - 1 - n;
        memcpy(out.message + n, mine->message, len);
        memcpy(out.message, prefix, n);
        out.message[n + len] = '\0';
    }
    mrc = MPI_Bcast(&out, (int)sizeof out, MPI_BYTE, first, g->comm);
    if (mrc != MPI_SUCCESS)
        return trestle__group_error(err, TRESTLE_E_GROUP, "MPI_Bcast failed (%d)", mrc);
    if (err)
        *err = out;
    return out.code;
}

int trestle_group_agree(trestle_group *g, int rc, const trestle_error *mine, trestle_error *err)
{
    trestle_error e;
    if (!g)
        return trestle__group_error(err, TRESTLE_E_INVALID_ARG, "NULL group");
    if (mine && rc != TRESTLE_OK)
        e = *mine;
    else
        trestle__group_error(&e, rc, "%s", trestle_strerror(rc));
    if (rc != TRESTLE_OK && e.code == TRESTLE_OK)
        e.code = rc;
    return agree(g, rc, err, &e);
}

/* ---- the restore ---- */

/* group.h: what a group restore cannot do, checked by each rank alone. */
int trestle__group_check_local(const trestle_plan *p, const trestle_restore_options *opt,
                               trestle_restore_options *ro, trestle_error *err)
{
    if (!p)
        return trestle__group_error(err, TRESTLE_E_INVALID_ARG, "NULL plan");
    int rc = trestle_options_read(ro, opt, sizeof *ro, RESTORE_OPTIONS_FIRST_SIZE,
                                  offsetof(trestle_restore_options, reserved),
                                  "trestle_restore_options", err);
    if (rc != TRESTLE_OK)
        return rc;
    /* host_map destinations are mappings of this rank's shard files: the
     * bytes other ranks read would have nowhere to go. */
    if (ro->host_map)
        return trestle__group_error(err, TRESTLE_E_UNSUPPORTED,
                                    "group restores cannot map shard files (host_map %d)",
                                    ro->host_map);
    /* The exchange writes each op's bytes to one destination: the copies a
     * device list makes on its other devices would stay unwritten. */
    if (ro->num_devices >= 2)
        return trestle__group_error(err, TRESTLE_E_UNSUPPORTED,
                                    "group restores take one device per rank, not a list of "
                                    "%zu (run one rank per GPU: --device local)",
                                    ro->num_devices);
    for (size_t i = 0; i < trestle_plan_op_count(p); i++) {
        trestle_plan_op_info o;
        trestle_plan_get_op(p, i, &o);
        if (o.device >= 0) /* set only once restored */
            return trestle__group_error(err, TRESTLE_E_UNSUPPORTED,
                                        "op '%s' was restored before: plan again for a group "
                                        "restore", o.name);
    }
    return TRESTLE_OK;
}

int trestle_group_restore(trestle_group *g, trestle_plan *p, const trestle_restore_options *opt,
                          trestle_group_stats *stats, trestle_error *err)
{
    trestle_group_stats st;
    trestle_restore_options ro;
    trestle_error mine;
    trestle__group_runs *runs = NULL;
    double t0 = MPI_Wtime(), t;
    int rc;

    trestle_error_clear(&mine);
    trestle_error_clear(err);
    if (!g)
        return trestle__group_error(err, TRESTLE_E_INVALID_ARG, "NULL group");
    trestle__group_stats_init(g, &st);

    trestle_restore_options_init(&ro);
    rc = trestle__group_check_local(p, opt, &ro, &mine);
    /* Versions first: two versions of one layout also plan alike. A rank
     * whose local check failed still takes part in both collectives, with
     * values that cannot change their outcome; agree() below reports it. */
    trestle_error serr;
    const trestle_checkpoint *c = rc == TRESTLE_OK ? trestle_plan_checkpoint(p) : NULL;
    int src = trestle__group_same_checkpoint(g, c, &serr);
    /* Every rank has this verdict, so all stop here alike, with the message
     * as it is: it is the group's finding, not one rank's. */
    if (src != TRESTLE_OK)
        return trestle__group_end(src, &serr, err, &st, t0, stats);
    if (rc == TRESTLE_OK)
        rc = check_same_plan(g, p, &mine);
    else
        check_same_plan(g, NULL, NULL);
    if (rc == TRESTLE_OK) {
        runs = calloc((size_t)g->xsize, sizeof *runs);
        if (!runs)
            rc = trestle__group_error(&mine, TRESTLE_E_NOMEM, "out of memory");
    }
    size_t first = 0, end = 0;
    for (int r = 0; rc == TRESTLE_OK && r < g->xsize; r++) {
        size_t a, b;
        trestle_group_part(p, r, g->xsize, &a, &b);
        if (r == g->xrank) {
            first = a;
            end = b;
        }
        rc = trestle__group_collect(p, a, b, &runs[r], &mine);
    }
    if (rc == TRESTLE_OK)
        rc = trestle_plan_keep_extents(p, first, end, &mine);
    /* Which ops this rank's part writes: its caller hears of those. */
    size_t nops = p ? trestle_plan_op_count(p) : 0;
    bool *writes = calloc(nops ? nops : 1, sizeof *writes);
    if (rc == TRESTLE_OK && !writes)
        rc = trestle__group_error(&mine, TRESTLE_E_NOMEM, "out of memory");
    for (size_t k = 0; rc == TRESTLE_OK && k < runs[g->xrank].n; k++)
        writes[runs[g->xrank].v[k].op] = true;
    st.extents = end - first;

    /* This rank's part restores on its own thread from here on. */
    trestle__group_live lv;
    bool live = false;
    if (rc == TRESTLE_OK) {
        rc = trestle__group_live_start(&lv, p, &ro, writes, &mine);
        live = true;
    }
    /* Whether every rank got this far decides whether any exchanges. */
    t = MPI_Wtime();
    rc = agree(g, rc, err, &mine);
    st.agree_seconds += MPI_Wtime() - t;
    if (rc != TRESTLE_OK && live)
        trestle_restore_cancel(p);
    /* Device destinations on some rank: choose how they travel (NCCL, a
     * CUDA-aware MPI, pinned staging), and agree that every rank could. */
    trestle__group_dev *dx = NULL;
    st.exchange = TRESTLE_GROUP_EXCHANGE_MPI_HOST;
    snprintf(st.exchange_note, sizeof st.exchange_note, "nothing to exchange: one rank reads "
             "all");
    if (rc == TRESTLE_OK) {
        int orc = TRESTLE_OK;
        if (g->xsize > 1) {
            orc = trestle__group_dev_open(&g->dev, g->xcomm, g->xrank, g->xsize, ro.device,
                                          g->exchange, ro.cuda_stream, &st.exchange,
                                          st.exchange_note, sizeof st.exchange_note, &mine);
            dx = g->dev;
        }
        t = MPI_Wtime();
        rc = agree(g, orc, err, &mine);
        st.agree_seconds += MPI_Wtime() - t;
        if (rc != TRESTLE_OK)
            trestle_restore_cancel(p);
    }
    int xrc = TRESTLE_OK;
    if (rc == TRESTLE_OK && g->xsize > 1) {
        bool stopped;
        t = MPI_Wtime();
        xrc = trestle__group_exchange(g->xcomm, g->xrank, g->xsize, &lv, runs, dx, &stopped,
                                      &mine);
        /* The last copies into this rank's devices finish here. */
        trestle_error derr;
        int drc = trestle__group_dev_end(dx, &derr);
        if (xrc == TRESTLE_OK && drc != TRESTLE_OK) {
            xrc = drc;
            mine = derr;
        }
        st.exchange_seconds = MPI_Wtime() - t;
    } else {
        trestle__group_dev_end(dx, NULL);
    }
    if (live) {
        int lrc = trestle__group_live_join(&lv, &mine);
        st.local = lv.stats;
        st.bytes_read = lv.stats.bytes_read;
        st.restore_seconds = lv.seconds;
        if (rc == TRESTLE_OK) {
            /* The restore's own failure first: a failed exchange follows from it. */
            int mine_rc = lrc != TRESTLE_OK ? lrc : xrc;
            t = MPI_Wtime();
            rc = agree(g, mine_rc, err, &mine);
            st.agree_seconds += MPI_Wtime() - t;
        }
    }
    free(writes);
    if (runs) {
        for (int r = 0; r < g->xsize; r++) {
            if (r == g->xrank)
                st.bytes_sent = runs[r].bytes;
            else
                st.bytes_received += runs[r].bytes;
            free(runs[r].v);
        }
        free(runs);
    }
    if (rc != TRESTLE_OK)
        st.bytes_sent = st.bytes_received = 0;
    return trestle__group_end(rc, NULL, NULL, &st, t0, stats);
}
