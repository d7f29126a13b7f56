/*
 * group_nccl.c - NCCL for the device exchange of libtrestle_mpi
 * (engine/group/group_device.c): loaded at run time, never linked, never
 * required, and used so that no rank can hang in it.
 *
 *  - Init is non-blocking: ncclCommInitRankConfig with blocking = 0, then
 *    ncclCommGetAsyncError polled against a deadline
 *    (TRESTLE_NCCL_TIMEOUT seconds, default 120). A blocking
 *    ncclCommInitRank has no deadline: a rank that never arrives (or a
 *    network that never connects) would keep every other rank in it.
 *  - The outcome is agreed over MPI, and on any failure every rank that
 *    holds a communicator aborts it (ncclCommAbort, which waits for no
 *    one). ncclCommDestroy is an intra-node collective: called by only the
 *    ranks whose init succeeded, it waits for the others forever.
 *  - Teardown with every rank healthy (agreed) is ncclCommFinalize, polled,
 *    then ncclCommDestroy; otherwise ncclCommAbort.
 *  - A non-blocking communicator may answer ncclInProgress to a
 *    broadcast's enqueue too: it is polled like the init.
 *
 * NCCL's ABI is spelled here (nccl.h need not be installed): the 2.14
 * layout of ncclConfig_t, which later releases still read by its size and
 * version. A libnccl.so.2 older than 2.14 (no ncclCommInitRankConfig) is
 * declined, as one that is missing.
 */
#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "group.h"

#if TRESTLE_HAVE_CUDA

#define NCCL_IN_PROGRESS 7                 /* ncclInProgress */
#define NCCL_CONFIG_MAGIC 0xcafebeefu
#define NCCL_CONFIG_VERSION 21400          /* NCCL_VERSION(2, 14, 0) */
#define DEFAULT_TIMEOUT_S 120.0
#define POLL_NS 200000                     /* between ncclCommGetAsyncError calls */

/* ncclConfig_t as NCCL 2.14 laid it out (NCCL_CONFIG_INITIALIZER: every
 * field but size, magic and version undefined, INT_MIN or NULL). */
typedef struct nccl_config {
    size_t size;
    unsigned int magic;
    unsigned int version;
    int blocking;
    int cga_cluster_size;
    int min_ctas;
    int max_ctas;
    const char *net_name;
} nccl_config;

/* Seconds to wait for NCCL's non-blocking calls (TRESTLE_NCCL_TIMEOUT). */
static double timeout_s(void)
{
    const char *v = getenv("TRESTLE_NCCL_TIMEOUT");
    double t = v && *v ? strtod(v, NULL) : 0;
    return t > 0 ? t : DEFAULT_TIMEOUT_S;
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* Poll comm's state while NCCL says it is in progress, until the deadline:
 * its final state, or NCCL_IN_PROGRESS when the time ran out. */
static int settle(const trestle__nccl *n, int r, double deadline)
{
    while (r == NCCL_IN_PROGRESS && now_s() < deadline) {
        struct timespec t = { 0, POLL_NS };
        nanosleep(&t, NULL);
        if (n->get_async_error(n->comm, &r) != 0)
            break; /* the query itself failed: the comm's state is the answer */
    }
    return r;
}

/* NCCL's text without its "(run with NCCL_DEBUG=...)" tail: notes are short. */
static void nccl_text(const trestle__nccl *n, int r, char *out, size_t cap)
{
    const char *text = n->error_string(r);
    int len = (int)strcspn(text, "(");
    while (len > 0 && text[len - 1] == ' ')
        len--;
    snprintf(out, cap, "%.*s", len < 48 ? len : 48, text);
}

bool trestle__nccl_load(trestle__nccl *n, const char *path, char *note, size_t cap)
{
    memset(n, 0, sizeof *n);
    n->lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!n->lib) {
        const char *why = dlerror();
        snprintf(note, cap, "libnccl.so.2 not loaded (%.60s)", why ? why : "not found");
        return false;
    }
    *(void **)&n->get_unique_id = dlsym(n->lib, "ncclGetUniqueId");
    *(void **)&n->init_config = dlsym(n->lib, "ncclCommInitRankConfig");
    *(void **)&n->get_async_error = dlsym(n->lib, "ncclCommGetAsyncError");
    *(void **)&n->broadcast = dlsym(n->lib, "ncclBroadcast");
    *(void **)&n->finalize = dlsym(n->lib, "ncclCommFinalize");
    *(void **)&n->destroy = dlsym(n->lib, "ncclCommDestroy");
    *(void **)&n->abort = dlsym(n->lib, "ncclCommAbort");
    *(void **)&n->error_string = dlsym(n->lib, "ncclGetErrorString");
    if (!n->get_unique_id || !n->init_config || !n->get_async_error || !n->broadcast ||
        !n->finalize || !n->destroy || !n->abort || !n->error_string) {
        snprintf(note, cap, "libnccl.so.2 is older than 2.14 (no non-blocking "
                 "ncclCommInitRankConfig)");
        dlclose(n->lib);
        n->lib = NULL;
        return false;
    }
    return true;
}

bool trestle__nccl_init(trestle__nccl *n, MPI_Comm comm, int rank, int size, char *note,
                        size_t cap)
{
    trestle__nccl_id id;
    memset(&id, 0, sizeof id);
    int ok = 1, all = 0;
    if (rank == 0 && n->get_unique_id(&id) != 0)
        ok = 0;
    MPI_Bcast(&ok, 1, MPI_INT, 0, comm);
    if (!ok) {
        snprintf(note, cap, "ncclGetUniqueId failed on the exchange's first rank");
        return false;
    }
    MPI_Bcast(&id, (int)sizeof id, MPI_BYTE, 0, comm);

    nccl_config config = { sizeof config, NCCL_CONFIG_MAGIC, NCCL_CONFIG_VERSION, 0,
                           INT_MIN, INT_MIN, INT_MIN, NULL };
    double limit = timeout_s();
    n->comm = NULL;
    int r = n->init_config(&n->comm, size, id, rank, &config);
    if (n->comm && (r == 0 || r == NCCL_IN_PROGRESS))
        r = settle(n, NCCL_IN_PROGRESS, now_s() + limit);
    ok = r == 0 && n->comm;
    MPI_Allreduce(&ok, &all, 1, MPI_INT, MPI_MIN, comm);
    if (all)
        return true;
    /* The first failing rank's reason, the same note on every rank. */
    int me = ok ? size : rank, first = 0;
    MPI_Allreduce(&me, &first, 1, MPI_INT, MPI_MIN, comm);
    MPI_Bcast(&r, 1, MPI_INT, first, comm);
    char text[64];
    if (r == NCCL_IN_PROGRESS)
        snprintf(text, sizeof text, "did not finish within %g s", limit);
    else
        nccl_text(n, r, text, sizeof text);
    snprintf(note, cap, "ncclCommInitRankConfig failed on rank %d: %s", first, text);
    /* Every rank that holds a comm lets go of it without waiting for the
     * others: some never got one, and a destroy would wait for them. */
    if (n->comm)
        n->abort(n->comm);
    n->comm = NULL;
    return false;
}

int trestle__nccl_broadcast(trestle__nccl *n, void *buf, size_t bytes, int root, void *stream)
{
    int r = n->broadcast(buf, buf, bytes, TRESTLE__NCCL_UINT8, root, n->comm, stream);
    /* Non-blocking: the enqueue itself may still be under way. */
    if (r == NCCL_IN_PROGRESS)
        r = settle(n, r, now_s() + timeout_s());
    return r;
}

const char *trestle__nccl_error(const trestle__nccl *n, int r)
{
    return r == NCCL_IN_PROGRESS ? "did not finish in time (TRESTLE_NCCL_TIMEOUT)"
                                 : n->error_string(r);
}

void trestle__nccl_close(trestle__nccl *n, bool together)
{
    if (n->comm) {
        /* A destroy waits for the node's other ranks: only when every rank
         * is here with a healthy comm; else an abort, which waits for no one. */
        int r = together && !n->failed ? n->finalize(n->comm) : 1;
        if (r == NCCL_IN_PROGRESS)
            r = settle(n, r, now_s() + timeout_s());
        if (r == 0)
            n->destroy(n->comm);
        else
            n->abort(n->comm);
        n->comm = NULL;
    }
    if (n->lib)
        dlclose(n->lib);
    n->lib = NULL;
}

void trestle__nccl_abort(trestle__nccl *n)
{
    if (n->comm)
        n->abort(n->comm);
    n->comm = NULL;
    n->failed = true;
}

#endif /* TRESTLE_HAVE_CUDA */
