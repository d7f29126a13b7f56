/*
 * mpicli.h - what the two commands of trestle-mpi (restore in
 * tools/mpicli_main.c, bench in tools/mpicli_bench.c) share: the
 * options that shape the group, parsed once and turned into one group.
 */
#ifndef TRESTLE_MPICLI_H
#define TRESTLE_MPICLI_H

#include "trestle_mpi.h"

/* The group options: --group, --scope, --simulate-nodes, --device, --exchange.
 * Their getopt codes are these letters. */
#define TRESTLE_MPI_GROUP_LONGOPTS                                                                  \
    { "group", required_argument, NULL, 'g' }, { "scope", required_argument, NULL, 'S' },          \
    { "simulate-nodes", required_argument, NULL, 'N' },                                            \
    { "device", required_argument, NULL, 'd' }, { "exchange", required_argument, NULL, 'X' }

typedef struct mpi_group_args {
    int scope;              /* trestle_group_scope */
    int simulate_nodes;     /* 0, or ranks pretend to be on this many nodes */
    int exchange;           /* trestle_group_exchange_kind */
    int device;             /* -1 host (the default), -2 local, else a GPU ordinal */
} mpi_group_args;

/* Fill g with the defaults. */
void mpi_group_args_init(mpi_group_args *g);

/* Apply getopt result c with argument arg for command cmd: CLI_EXIT_OK,
 * CLI_EXIT_USAGE (printed by rank 0 only), or -1 when c is not a group
 * option. */
int mpi_group_option(const char *cmd, int c, const char *arg, int rank, mpi_group_args *g);

/* Make the group of MPI_COMM_WORLD with g's options (path: the checkpoint
 * the AUTO scope looks at); with simulate_nodes, *node (if not NULL)
 * receives a communicator of this rank's pretend node, else of the ranks
 * that share its memory. TRESTLE_OK or the error, the same on every rank. */
int mpi_group_create(const mpi_group_args *g, const char *path, trestle_group **out,
                     MPI_Comm *node, trestle_error *err);

/* The device this rank restores to (-1: host memory): g->device, or by
 * node-local rank for "local". */
int mpi_group_device(const mpi_group_args *g, const trestle_group *group, int *device,
                     trestle_error *err);

/* ---- the group bench's ceilings (mpicli_bench_ceiling.c) ---- */

/* Rank 0 of each node drops the page cache of the checkpoint, then all wait. */
void mpi_bench_drop_cache(const trestle_checkpoint *c, MPI_Comm node);

/* Storage: every rank of `scope` (the world, or its node) reads its 1/N of
 * the shard bytes, all scopes at once; `copies` scopes read the checkpoint,
 * so the rate is per copy. Collective over MPI_COMM_WORLD. A ceiling. */
void mpi_bench_storage_ceiling(const trestle_checkpoint *c, int cold, MPI_Comm node,
                               MPI_Comm scope, int copies, cli_ceiling *out);

/* Exchange: the restore's exchange alone, over `total` bytes, between
 * buffers on `device` (-1: host), within each node when `per_node`
 * (trestle_group_exchange_ceiling()). Collective. A ceiling. */
void mpi_bench_exchange_ceiling(trestle_group *g, uint64_t total, int device, int per_node,
                                cli_ceiling *out, trestle_group_ceiling *gc);

/* "auto", "mpi", "staged", "mpi-cuda", "nccl": trestle_group_exchange_kind's names. */
const char *mpi_exchange_kind_name(int kind);

#endif /* TRESTLE_MPICLI_H */
