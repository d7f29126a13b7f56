/*
 * mpicli_bench_ceiling.c - the group's two ceilings for `trestle-mpi
 * bench` (tools/mpicli_bench.c), measured in the same job as the restores:
 *
 *   storage   every rank reads its byte-balanced share of the shard files
 *             at once (1 MiB read()s through the page cache, or with
 *             --cold after dropping it), nothing else: the most the group
 *             can read per second;
 *   exchange  the exchange of a group restore alone, measured by the
 *             library (trestle_group_exchange_ceiling()): each rank
 *             broadcasts its 1/N of the same bytes to all the others by
 *             the restore's own rounds and path, between host buffers or,
 *             with --device, buffers on each rank's device.
 *
 * Both are given in checkpoint bytes delivered to every rank per second.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "trestle_mpi.h"
#include "mpicli.h"

#define READ_BLOCK ((size_t)1 << 20)

/* Read bytes [lo, hi) of the shard files taken end to end, 1 MiB at a time. */
static int read_share(const trestle_checkpoint *c, uint64_t lo, uint64_t hi, char *buf,
                      uint64_t *done, char *why, size_t cap)
{
    trestle_checkpoint_info ci;
    trestle_checkpoint_get_info(c, &ci);
    uint64_t base = 0;
    for (int s = 0; s < ci.num_shards && base < hi; s++) {
        const char *path = trestle_shard_path(c, s);
        struct stat st;
        if (!path || stat(path, &st) != 0) {
            snprintf(why, cap, "%s: %s", path ? path : "shard", strerror(errno));
            return -1;
        }
        uint64_t end = base + (uint64_t)st.st_size;
        if (end > lo) {
            int fd = cli_open_regular(path, 0);
            if (fd < 0) {
                snprintf(why, cap, "%s: %s", path, strerror(errno));
                return -1;
            }
            uint64_t off = lo > base ? lo - base : 0, stop = (hi < end ? hi : end) - base;
            while (off < stop) {
                size_t want = stop - off < READ_BLOCK ? (size_t)(stop - off) : READ_BLOCK;
                ssize_t n = pread(fd, buf, want, (off_t)off);
                if (n <= 0) {
                    snprintf(why, cap, "%s at offset %" PRIu64 ": %s", path, off,
                             n < 0 ? strerror(errno) : "unexpected end of file");
                    close(fd);
                    return -1;
                }
                off += (uint64_t)n;
                *done += (uint64_t)n;
            }
            close(fd);
        }
        base = end;
    }
    return 0;
}

/* Rank 0 of each node drops the page cache of the checkpoint, then all wait. */
void mpi_bench_drop_cache(const trestle_checkpoint *c, MPI_Comm node)
{
    int local;
    MPI_Comm_rank(node, &local);
    if (local == 0) {
        char what[256];
        cli_bench_drop_cache(c, what, sizeof what);
    }
    MPI_Barrier(MPI_COMM_WORLD);
}

/* Every rank reads its 1/N of the shard bytes, N the ranks of its read-once
 * scope (`scope`: the world, or its node), all scopes at once; `copies` is
 * how many scopes read the checkpoint, so the rate is per copy. */
void mpi_bench_storage_ceiling(const trestle_checkpoint *c, int cold, MPI_Comm node,
                               MPI_Comm scope, int copies, cli_ceiling *out)
{
    int rank, n;
    MPI_Comm_rank(scope, &rank);
    MPI_Comm_size(scope, &n);
    trestle_checkpoint_info ci;
    trestle_checkpoint_get_info(c, &ci);
    memset(out, 0, sizeof *out);
    out->kind = CLI_CEILING;
    if (trestle_is_url(ci.prefix)) {
        /* Shares of files read(); an object store has none to read: say so,
         * rather than a rate of nothing. (Every rank agrees: one URL.) */
        snprintf(out->note, sizeof out->note,
                 "n/a: a URL, whose objects this ceiling cannot read() (`trestle bench URL` "
                 "holds one process against parallel ranged GETs)");
        return;
    }
    uint64_t total = 0;
    for (int s = 0; s < ci.num_shards; s++) {
        struct stat st;
        if (trestle_shard_path(c, s) && stat(trestle_shard_path(c, s), &st) == 0)
            total += (uint64_t)st.st_size;
    }
    uint64_t lo = total / (uint64_t)n * (uint64_t)rank;
    uint64_t hi = rank + 1 == n ? total : total / (uint64_t)n * (uint64_t)(rank + 1);
    char *buf = malloc(READ_BLOCK);
    for (int run = 0; run < 3; run++) {
        if (cold)
            mpi_bench_drop_cache(c, node);
        char why[160] = "";
        uint64_t done = 0;
        MPI_Barrier(MPI_COMM_WORLD);
        double t0 = MPI_Wtime();
        int bad = !buf ? (snprintf(why, sizeof why, "out of memory"), 1)
                       : read_share(c, lo, hi, buf, &done, why, sizeof why) != 0;
        double mine = MPI_Wtime() - t0, wall;
        int any_bad;
        uint64_t all = 0;
        MPI_Allreduce(&mine, &wall, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
        MPI_Allreduce(&bad, &any_bad, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
        MPI_Allreduce(&done, &all, 1, MPI_UINT64_T, MPI_SUM, MPI_COMM_WORLD);
        if (any_bad) {
            snprintf(out->note, sizeof out->note, "n/a: a rank could not read%s%s",
                     bad ? ": " : "", bad ? why : "");
            out->valid = 0;
            break;
        }
        all /= (uint64_t)copies;
        if (wall > 0 && (!out->valid || all / wall > out->bytes / out->seconds)) {
            out->valid = 1;
            out->bytes = all;
            out->seconds = wall;
            out->gbps = (double)all / wall / 1e9;
        }
    }
    if (out->valid && copies > 1)
        snprintf(out->note, sizeof out->note, "on each of %d nodes at once, its ranks each "
                 "read() 1/%d of the shard bytes%s, best of 3", copies, n,
                 cold ? " (cache dropped)" : "");
    else if (out->valid)
        snprintf(out->note, sizeof out->note, "%d ranks each read() 1/%d of the shard bytes at "
                 "once%s, best of 3", n, n, cold ? " (cache dropped)" : "");
    free(buf);
}

/* The kinds of trestle_group_exchange_kind, as trestle-mpi restore names them. */
const char *mpi_exchange_kind_name(int kind)
{
    static const char *const kinds[] = { "auto", "mpi", "staged", "mpi-cuda", "nccl" };
    return kinds[kind >= 0 && kind <= 4 ? kind : 0];
}

/* The exchange of a restore alone, between buffers where this rank's
 * restore puts its tensors (`device`, -1: host memory), by the path the
 * restore takes, within each read-once scope, all scopes at once
 * (trestle_group_exchange_ceiling()). */
void mpi_bench_exchange_ceiling(trestle_group *g, uint64_t total, int device, int per_node,
                                cli_ceiling *out, trestle_group_ceiling *gc)
{
    trestle_error err;
    memset(out, 0, sizeof *out);
    out->kind = CLI_CEILING;
    int rc = trestle_group_exchange_ceiling(g, total, device, gc, &err);
    if (rc != TRESTLE_OK) {
        snprintf(out->note, sizeof out->note, "n/a: %.180s", err.message);
        return;
    }
    if (gc->seconds <= 0) {
        snprintf(out->note, sizeof out->note, "n/a: %s", gc->exchange_note);
        return;
    }
    out->valid = 1;
    out->bytes = gc->bytes;
    out->seconds = gc->seconds;
    out->gbps = gc->gbps;
    /* Which exchange ran first: the note is cut at its end. */
    const char *how = gc->exchange == TRESTLE_GROUP_EXCHANGE_STAGED ? "pinned host staging over MPI"
                      : gc->exchange == TRESTLE_GROUP_EXCHANGE_MPI_CUDA
                          ? "CUDA-aware MPI broadcasts device memory"
                      : gc->exchange == TRESTLE_GROUP_EXCHANGE_NCCL ? "ncclBroadcast between the devices"
                                                                    : "MPI broadcasts host memory";
    snprintf(out->note, sizeof out->note, "%s: %s; %d roots broadcast 1/%d each in 64 MiB "
             "rounds%s, as the restore does, best of %d", mpi_exchange_kind_name(gc->exchange), how,
             gc->ranks, gc->ranks, per_node ? " within each node" : "", gc->runs);
}

