/*
 * mpicli_group.c - the group options both trestle-mpi commands take
 * (tools/mpicli.h): parsed once, made into one group, so that
 * `restore` and `bench` read each byte once the same way.
 */
#include <getopt.h>
#include <string.h>

#include "cli.h"
#include "mpicli.h"

void mpi_group_args_init(mpi_group_args *g)
{
    memset(g, 0, sizeof *g);
    g->scope = TRESTLE_GROUP_SCOPE_AUTO;
    g->exchange = TRESTLE_GROUP_EXCHANGE_AUTO;
    g->device = -1;
}

#define USAGE(...) (rank ? CLI_EXIT_USAGE : cli_usage(cmd, __VA_ARGS__))

int mpi_group_option(const char *cmd, int c, const char *arg, int rank, mpi_group_args *g)
{
    long long v;
    switch (c) {
    case 'g':
        return strcmp(arg, "mpi") == 0 ? CLI_EXIT_OK : USAGE("--group is mpi, not '%s'", arg);
    case 'S':
        if (!strcmp(arg, "auto")) g->scope = TRESTLE_GROUP_SCOPE_AUTO;
        else if (!strcmp(arg, "group")) g->scope = TRESTLE_GROUP_SCOPE_GROUP;
        else if (!strcmp(arg, "node")) g->scope = TRESTLE_GROUP_SCOPE_NODE;
        else return USAGE("--scope is auto, group or node, not '%s'", arg);
        return CLI_EXIT_OK;
    case 'N':
        if (cli_parse_int(arg, 1, 1 << 20, &v))
            return USAGE("--simulate-nodes wants a count of nodes, not '%s'", arg);
        g->simulate_nodes = (int)v;
        return CLI_EXIT_OK;
    case 'd':
        if (!strcmp(arg, "local"))
            g->device = -2;
        else if (cli_parse_int(arg, 0, 1023, &v))
            return USAGE("--device is local or a GPU ordinal, not '%s'", arg);
        else
            g->device = (int)v;
        return CLI_EXIT_OK;
    case 'X':
        if (!strcmp(arg, "auto")) g->exchange = TRESTLE_GROUP_EXCHANGE_AUTO;
        else if (!strcmp(arg, "staged")) g->exchange = TRESTLE_GROUP_EXCHANGE_STAGED;
        else if (!strcmp(arg, "mpi-cuda")) g->exchange = TRESTLE_GROUP_EXCHANGE_MPI_CUDA;
        else return USAGE("--exchange is auto, staged or mpi-cuda, not '%s'", arg);
        return CLI_EXIT_OK;
    default:
        return -1;
    }
}

int mpi_group_create(const mpi_group_args *g, const char *path, trestle_group **out,
                     MPI_Comm *node, trestle_error *err)
{
    int rank = 0, world = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &world);
    trestle_group_options go;
    trestle_group_options_init(&go);
    go.scope = g->scope;
    go.exchange = g->exchange;
    go.path = path;
    /* mpirun places ranks by slot: consecutive ranks share a node. */
    if (g->simulate_nodes > 0)
        go.node_id = (int)((long long)rank * g->simulate_nodes / world);
    if (node) {
        if (g->simulate_nodes > 0)
            MPI_Comm_split(MPI_COMM_WORLD, go.node_id, rank, node);
        else
            MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank, MPI_INFO_NULL, node);
    }
    return trestle_group_create_with(MPI_COMM_WORLD, &go, out, err);
}

int mpi_group_device(const mpi_group_args *g, const trestle_group *group, int *device,
                     trestle_error *err)
{
    *device = g->device;
    return g->device == -2 ? trestle_group_local_device(group, device, err) : TRESTLE_OK;
}
