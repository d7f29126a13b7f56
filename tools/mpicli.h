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

#endif /* TRESTLE_MPICLI_H */
