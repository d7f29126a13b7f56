/*
 * group_same.c - libtrestle_mpi: do the ranks read one version of the
 * checkpoint? Part of the plan agreement that every group call making
 * ranks share bytes starts with (engine/group/group_mpi.c's restore,
 * engine/group/group_crc.c's share check).
 *
 * Each rank opens the checkpoint at its own path, often a copy of its own
 * (node-local disks, a page cache filled from different mounts). Copies of
 * two versions under one path can have the same names, shapes and layout,
 * so the plans' extents agree while the bytes do not: without this check
 * every rank would end with a mix of both versions. The index holds every
 * tensor's CRC32C, so its size and CRC-32C (trestle_checkpoint_identity())
 * tell the versions apart; one MPI_Allgather gives every rank every
 * identity, and every rank formats the same verdict from the same table.
 *
 * A client of the public API (trestle.h) like the rest of the group.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "group.h"

#define NO_IDENTITY UINT64_MAX /* a rank without a plan: it takes part, unjudged */
#define MAX_VERSIONS_NAMED 4   /* versions spelled out in the message; the rest are counted */

/* One rank's identity: index bytes and CRC-32C, or NO_IDENTITY twice. */
typedef struct identity {
    uint64_t bytes, crc;
} identity;

static bool same(const identity *a, const identity *b)
{
    return a->bytes == b->bytes && a->crc == b->crc;
}

/* Append the ranks r (r < size) whose identity is *want to buf as ranges,
 * "0-1, 4, 6-7". Returns the new length (buf stays NUL-terminated). */
static size_t list_ranks(char *buf, size_t cap, size_t at, const identity *all, int size,
                         const identity *want)
{
    bool first = true;
    for (int r = 0; r < size && at < cap; r++) {
        if (!same(&all[r], want))
            continue;
        int end = r;
        while (end + 1 < size && same(&all[end + 1], want))
            end++;
        at += (size_t)snprintf(buf + at, cap - at, first ? "%d" : ", %d", r);
        if (end > r && at < cap)
            at += (size_t)snprintf(buf + at, cap - at, "%s%d", end == r + 1 ? ", " : "-", end);
        first = false;
        r = end;
    }
    return at < cap ? at : cap - 1;
}

int trestle__group_same_checkpoint(trestle_group *g, const trestle_checkpoint *c,
                                   trestle_error *err)
{
    identity mine = { NO_IDENTITY, NO_IDENTITY }, *all = malloc((size_t)g->size * sizeof *all);
    uint32_t crc;
    if (c && trestle_checkpoint_identity(c, &mine.bytes, &crc) == TRESTLE_OK)
        mine.crc = crc;
    else
        mine.bytes = NO_IDENTITY;
    if (!all) {
        /* Every other rank is about to gather from this one: without the
         * table it cannot take part, and ending the job is the only way
         * not to leave them waiting. */
        MPI_Abort(g->comm, 1);
    }
    int mrc = MPI_Allgather(&mine, 2, MPI_UINT64_T, all, 2, MPI_UINT64_T, g->comm);
    if (mrc != MPI_SUCCESS) {
        free(all);
        return trestle__group_error(err, TRESTLE_E_GROUP, "MPI_Allgather failed (%d)", mrc);
    }
    /* The versions in order of their lowest rank, ranks without a plan left out. */
    int versions = 0, named[MAX_VERSIONS_NAMED];
    for (int r = 0; r < g->size; r++) {
        if (all[r].bytes == NO_IDENTITY)
            continue;
        int k = 0;
        while (k < versions && k < MAX_VERSIONS_NAMED && !same(&all[named[k]], &all[r]))
            k++;
        if (k < versions && k < MAX_VERSIONS_NAMED)
            continue;
        /* A version past the named ones may repeat: count it once. */
        bool seen = false;
        for (int q = 0; q < r && !seen; q++)
            seen = all[q].bytes != NO_IDENTITY && same(&all[q], &all[r]);
        if (seen)
            continue;
        if (versions < MAX_VERSIONS_NAMED)
            named[versions] = r;
        versions++;
    }
    if (versions <= 1) {
        free(all);
        return TRESTLE_OK;
    }
    char msg[TRESTLE_ERROR_MESSAGE_MAX];
    size_t at = (size_t)snprintf(msg, sizeof msg, "the ranks read %d different versions of the "
                                 "checkpoint (their .index files differ): ", versions);
    for (int k = 0; k < versions && k < MAX_VERSIONS_NAMED && at < sizeof msg; k++) {
        const identity *v = &all[named[k]];
        int holders = 0;
        for (int r = 0; r < g->size; r++)
            holders += same(&all[r], v);
        at += (size_t)snprintf(msg + at, sizeof msg - at, "%s%" PRIu64 " bytes with CRC32C "
                               "0x%08" PRIx64 " on rank%s ", k ? "; " : "", v->bytes, v->crc,
                               holders > 1 ? "s" : "");
        if (at < sizeof msg)
            at = list_ranks(msg, sizeof msg, at, all, g->size, v);
    }
    if (versions > MAX_VERSIONS_NAMED && at < sizeof msg)
        at += (size_t)snprintf(msg + at, sizeof msg - at, "; and %d more",
                               versions - MAX_VERSIONS_NAMED);
    if (at < sizeof msg)
        snprintf(msg + at, sizeof msg - at, ". Every rank must read the same files: a node-local "
                 "copy that differs from the others mixes two versions");
    free(all);
    trestle__group_error(err, TRESTLE_E_INVALID_ARG, "%s", msg);
    if (err && c) {
        trestle_checkpoint_info info;
        trestle_checkpoint_get_info(c, &info);
        snprintf(err->path, sizeof err->path, "%s", info.index_path);
    }
    return TRESTLE_E_INVALID_ARG;
}
