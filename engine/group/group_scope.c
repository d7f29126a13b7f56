/*
 * group_scope.c - where a group reads each byte once: which ranks share a
 * node, and whether the checkpoint sits on storage the whole group shares
 * (include/trestle_mpi.h, trestle_group_options). Runs once, when a group
 * is made; every restore of the group then splits its extents and
 * exchanges over g->xcomm, the whole group or this rank's node.
 *
 * Every step is collective over the whole group and ends in the same
 * outcome on every rank (a reduction decides it), so a rank can never be
 * left in a collective the others skipped.
 */
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/vfs.h>

#include "group.h"
#include "trestle_mpi.h"

/* ---- file systems ---- */

/* statfs f_type values (linux/magic.h and the file systems' own headers)
 * of file systems that many hosts mount at once. FUSE is counted shared:
 * local FUSE file systems are rare beside the network ones mounted
 * through it (GlusterFS, JuiceFS, s3fs/gcsfuse buckets, BeeOND). */
static const struct {
    unsigned long magic;
    const char *name;
} shared_fs[] = {
    { 0x6969, "nfs" },           { 0x517B, "smb" },          { 0xFF534D42, "cifs" },
    { 0xFE534D42, "smb2" },      { 0x0BD00BD0, "lustre" },   { 0x47504653, "gpfs" },
    { 0x00C36400, "ceph" },      { 0x65735546, "fuse" },     { 0x19830326, "beegfs" },
    { 0x5346414F, "afs" },       { 0x6B414653, "kafs" },     { 0x01021997, "9p" },
    { 0x20030528, "orangefs" },  { 0xAAD7AAEA, "panfs" },
};

/* A few local ones, named in the reason rather than by number. */
static const struct {
    unsigned long magic;
    const char *name;
} local_fs[] = {
    { 0xEF53, "ext4" },        { 0x58465342, "xfs" },      { 0x9123683E, "btrfs" },
    { 0x01021994, "tmpfs" },   { 0x794C7630, "overlayfs" }, { 0x2FC12FC1, "zfs" },
    { 0xF2F52010, "f2fs" },
};

/* 1 when `path` (or, for a checkpoint prefix that is no file itself, its
 * directory) is on a shared file system, 0 when on a local one, -1 when
 * statfs fails on both; its name goes to `name` either way. */
static int fs_shared(const char *path, char *name, size_t cap)
{
    struct statfs sf;
    if (trestle_is_url(path)) {
        /* gs://, s3://, http(s)://: every node reaches the same objects. */
        snprintf(name, cap, "an object store (%.*s)", (int)strcspn(path, ":"), path);
        return 1;
    }
    int rc = statfs(path, &sf);
    if (rc != 0) {
        char *copy = strdup(path);
        rc = copy ? statfs(dirname(copy), &sf) : -1;
        free(copy);
    }
    if (rc != 0) {
        snprintf(name, cap, "an unreadable path");
        return -1;
    }
    unsigned long magic = (unsigned long)(unsigned)sf.f_type;
    for (size_t i = 0; i < sizeof shared_fs / sizeof shared_fs[0]; i++) {
        if (shared_fs[i].magic == magic) {
            snprintf(name, cap, "%s", shared_fs[i].name);
            return 1;
        }
    }
    snprintf(name, cap, "file system 0x%lx", magic);
    for (size_t i = 0; i < sizeof local_fs / sizeof local_fs[0]; i++)
        if (local_fs[i].magic == magic)
            snprintf(name, cap, "%s", local_fs[i].name);
    return 0;
}

/* ---- nodes ---- */

static int mpi_failed(trestle_error *err, const char *what, int mrc)
{
    return trestle__group_error(err, TRESTLE_E_GROUP, "%s failed (%d)", what, mrc);
}

/* Split g->comm into nodes: by the caller's node_id when every rank gives
 * one, else by shared memory. Fills node_comm, node_rank, node_size, nodes
 * and node. */
static int find_nodes(struct trestle_group *g, int node_id, trestle_error *err)
{
    int ids[2] = { node_id, -node_id }, all[2], mrc;
    /* One reduction tells whether every rank, or none, gave a node_id. */
    if ((mrc = MPI_Allreduce(ids, all, 2, MPI_INT, MPI_MAX, g->comm)) != MPI_SUCCESS)
        return mpi_failed(err, "MPI_Allreduce", mrc);
    int lowest = -all[1];
    if (lowest < 0 && all[0] >= 0)
        return trestle__group_error(err, TRESTLE_E_INVALID_ARG,
                                    "node_id is set on some ranks only (lowest %d, highest %d): "
                                    "give every rank its node, or none", lowest, all[0]);
    if (all[0] >= 0)
        mrc = MPI_Comm_split(g->comm, node_id, g->rank, &g->node_comm);
    else
        mrc = MPI_Comm_split_type(g->comm, MPI_COMM_TYPE_SHARED, g->rank, MPI_INFO_NULL,
                                  &g->node_comm);
    if (mrc != MPI_SUCCESS)
        return mpi_failed(err, all[0] >= 0 ? "MPI_Comm_split" : "MPI_Comm_split_type", mrc);
    MPI_Comm_set_errhandler(g->node_comm, MPI_ERRORS_RETURN);
    MPI_Comm_rank(g->node_comm, &g->node_rank);
    MPI_Comm_size(g->node_comm, &g->node_size);

    /* Nodes are numbered by their lowest rank's order: each node's rank 0
     * counts the leaders below it, and tells its node. */
    int leader = g->node_rank == 0, before = 0;
    if ((mrc = MPI_Exscan(&leader, &before, 1, MPI_INT, MPI_SUM, g->comm)) != MPI_SUCCESS)
        return mpi_failed(err, "MPI_Exscan", mrc);
    if (g->rank == 0)
        before = 0; /* MPI_Exscan leaves rank 0's result undefined */
    if ((mrc = MPI_Allreduce(&leader, &g->nodes, 1, MPI_INT, MPI_SUM, g->comm)) != MPI_SUCCESS)
        return mpi_failed(err, "MPI_Allreduce", mrc);
    g->node = before;
    if ((mrc = MPI_Bcast(&g->node, 1, MPI_INT, 0, g->node_comm)) != MPI_SUCCESS)
        return mpi_failed(err, "MPI_Bcast", mrc);
    return TRESTLE_OK;
}

/* ---- the scope ---- */

int trestle__group_scope_init(struct trestle_group *g, int scope, int node_id, const char *path,
                              trestle_error *err)
{
    g->node_comm = MPI_COMM_NULL;
    g->xcomm = g->comm;
    g->xrank = g->rank;
    g->xsize = g->size;
    g->scope = TRESTLE_GROUP_SCOPE_GROUP;
    g->nodes = 1;
    g->node_size = g->size;
    if (scope < TRESTLE_GROUP_SCOPE_AUTO || scope > TRESTLE_GROUP_SCOPE_NODE)
        return trestle__group_error(err, TRESTLE_E_INVALID_ARG, "unknown group scope %d "
                                    "(AUTO 0, GROUP 1 or NODE 2)", scope);
    int rc = find_nodes(g, node_id < 0 ? -1 : node_id, err);
    if (rc != TRESTLE_OK)
        return rc;

    char fs[48] = "";
    int shared = -1, everywhere = 0, mrc;
    if (scope == TRESTLE_GROUP_SCOPE_AUTO && g->nodes > 1) {
        shared = path ? fs_shared(path, fs, sizeof fs) : 0;
        /* GROUP only if every rank sees shared storage: one rank on a
         * local disk would otherwise serve other nodes from it. */
        int mine = shared == 1;
        if ((mrc = MPI_Allreduce(&mine, &everywhere, 1, MPI_INT, MPI_MIN, g->comm)) !=
            MPI_SUCCESS)
            return mpi_failed(err, "MPI_Allreduce", mrc);
    }
    char *note = g->scope_note;
    size_t cap = sizeof g->scope_note;
    if (scope == TRESTLE_GROUP_SCOPE_GROUP) {
        snprintf(note, cap, "asked for: each byte read once by the group of %d ranks on %d "
                 "node%s", g->size, g->nodes, g->nodes == 1 ? "" : "s");
    } else if (scope == TRESTLE_GROUP_SCOPE_NODE) {
        g->scope = TRESTLE_GROUP_SCOPE_NODE;
        snprintf(note, cap, "asked for: each byte read once on each of %d node%s", g->nodes,
                 g->nodes == 1 ? "" : "s");
    } else if (g->nodes == 1) {
        snprintf(note, cap, "all %d ranks are on one node, where both scopes are the same",
                 g->size);
    } else if (everywhere) {
        snprintf(note, cap, "%d nodes and the checkpoint is on %s, a shared file system: each "
                 "byte read once by the group", g->nodes, fs);
    } else {
        g->scope = TRESTLE_GROUP_SCOPE_NODE;
        if (!path)
            snprintf(note, cap, "%d nodes and no checkpoint path to look at: each byte read "
                     "once per node", g->nodes);
        else if (shared == 1)
            snprintf(note, cap, "%d nodes and the checkpoint is on %s here but not on shared "
                     "storage on every rank: each byte read once per node", g->nodes, fs);
        else
            snprintf(note, cap, "%d nodes and the checkpoint is on %s, not a shared file "
                     "system: each byte read once per node", g->nodes, fs);
    }
    if (g->scope == TRESTLE_GROUP_SCOPE_NODE) {
        g->xcomm = g->node_comm;
        g->xrank = g->node_rank;
        g->xsize = g->node_size;
    }
    return TRESTLE_OK;
}
