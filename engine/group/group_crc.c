/*
 * group_crc.c - libtrestle_mpi: the check of tensor-parallel parts read
 * under partial_reads (trestle_group_check_shares()). Each rank's plan read
 * only its part of some tensors and could not check their CRC32C; it holds
 * one 32-bit share per such tensor (trestle_plan_get_crc_share()), listed in
 * the same order on every rank. One MPI_Allreduce with MPI_BXOR combines all
 * of them at once, and every rank then checks the same combined shares.
 *
 * The ranks' parts must come from one version of the checkpoint, checked
 * first (engine/group/group_same.c). A client of the public API (trestle.h)
 * like the rest of the group; sits beside engine/group/group_mpi.c, which
 * owns the communicator.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "group.h"

/* The lowest rank whose rc failed gives every rank its error, unchanged:
 * unlike trestle_group_agree() no "rank R" prefix, since a combination that
 * does not match is every rank's finding, not one rank's. */
static int agree_plain(MPI_Comm comm, int rank, int size, int rc, const trestle_error *mine,
                       trestle_error *err)
{
    int me = rc != TRESTLE_OK ? rank : size, first = size;
    if (MPI_Allreduce(&me, &first, 1, MPI_INT, MPI_MIN, comm) != MPI_SUCCESS)
        return trestle__group_error(err, TRESTLE_E_GROUP, "MPI_Allreduce failed");
    if (first == size)
        return TRESTLE_OK;
    trestle_error out = *mine;
    if (MPI_Bcast(&out, (int)sizeof out, MPI_BYTE, first, comm) != MPI_SUCCESS)
        return trestle__group_error(err, TRESTLE_E_GROUP, "MPI_Bcast failed");
    if (err)
        *err = out;
    return out.code;
}

int trestle_group_check_shares(trestle_group *g, const trestle_plan *p, trestle_error *err)
{
    trestle_error mine;
    trestle_crc_share *shares = NULL;
    uint32_t *v = NULL;
    int rc = TRESTLE_OK, mrc;

    trestle_error_clear(err);
    trestle_error_clear(&mine);
    if (!g)
        return trestle__group_error(err, TRESTLE_E_INVALID_ARG, "NULL group");
    MPI_Comm comm = trestle__group_comm(g);
    int rank = trestle_group_rank(g), size = trestle_group_size(g);
    size_t n = trestle_plan_crc_share_count(p);

    /* Parts of two versions would combine to neither's CRC: say so, rather
     * than blame a corrupt byte. The verdict is every rank's. */
    rc = trestle__group_same_checkpoint(g, trestle_plan_checkpoint(p), err);
    if (rc != TRESTLE_OK)
        return rc;

    /* Every rank must list as many tensors, each with its share computed
     * and planned as part `rank` of `size` (else the XOR would count some
     * parts twice or not at all): [n, -n, not ready, other part] reduced
     * with MAX gives the largest and smallest n and any rank's trouble. */
    long long mine_v[4] = { (long long)n, -(long long)n, 0, 0 }, all[4];
    shares = calloc(n ? n : 1, sizeof *shares);
    v = calloc(n ? n : 1, sizeof *v);
    if (!p || !shares || !v)
        mine_v[2] = 1;
    for (size_t i = 0; !mine_v[2] && i < n; i++) {
        trestle_plan_get_crc_share(p, i, &shares[i]);
        if (!shares[i].ready)
            mine_v[2] = 1;
        if (shares[i].part != rank || shares[i].parts != size)
            mine_v[3] = 1;
        v[i] = shares[i].share;
    }
    mrc = MPI_Allreduce(mine_v, all, 4, MPI_LONG_LONG, MPI_MAX, comm);
    if (mrc != MPI_SUCCESS) {
        rc = trestle__group_error(err, TRESTLE_E_GROUP, "MPI_Allreduce failed (%d)", mrc);
        goto out;
    }
    if (all[0] != -all[1]) {
        rc = trestle__group_error(err, TRESTLE_E_INVALID_ARG,
                                  "CRC shares: the ranks' plans defer %lld to %lld tensors: plan "
                                  "the same ops, rules and options on every rank", -all[1], all[0]);
        goto out;
    }
    if (all[3] && !all[2]) {
        size_t i = 0;
        while (i < n && shares[i].part == rank && shares[i].parts == size)
            i++;
        rc = trestle__group_error(&mine, TRESTLE_E_INVALID_ARG,
                                  "CRC shares: rank %d of %d planned tensor '%s' as part %d of "
                                  "%d; each rank must plan part `rank` of the group's size "
                                  "(shard_rank, shard_world)", rank, size,
                                  i < n ? shares[i].key : "?", i < n ? shares[i].part : -1,
                                  i < n ? shares[i].parts : -1);
        rc = agree_plain(comm, rank, size, mine_v[3] ? rc : TRESTLE_OK, &mine, err);
        goto out;
    }
    if (all[2]) {
        rc = trestle__group_error(&mine, TRESTLE_E_INVALID_ARG,
                                  "rank %d of %d: no CRC shares to check (%s)", rank, size,
                                  !p ? "NULL plan" : !shares || !v ? "out of memory"
                                  : "its last restore failed or ran without verify");
        rc = agree_plain(comm, rank, size, mine_v[2] ? rc : TRESTLE_OK, &mine, err);
        goto out;
    }
    if (n > 0) {
        mrc = MPI_Allreduce(MPI_IN_PLACE, v, (int)n, MPI_UINT32_T, MPI_BXOR, comm);
        if (mrc != MPI_SUCCESS) {
            rc = trestle__group_error(err, TRESTLE_E_GROUP, "MPI_Allreduce failed (%d)", mrc);
            goto out;
        }
    }
    for (size_t i = 0; i < n; i++)
        shares[i].share = v[i];
    rc = trestle_crc_shares_check(shares, n, size, &mine);
    /* Identical inputs give every rank the same verdict; agreeing still
     * keeps ranks whose checkpoints differ from parting ways here. */
    rc = agree_plain(comm, rank, size, rc, &mine, err);
out:
    free(shares);
    free(v);
    return rc;
}
