/*
 * cli_group.c - `trestle restore` or `trestle bench` launched by mpirun:
 * hand the command to trestle-mpi, the binary that links MPI
 * (tools/mpicli_main.c), so that `mpirun -np 8 trestle restore CKPT --all`
 * restores once for the whole job while `trestle` itself never needs an MPI
 * library to start.
 *
 * Launched by mpirun means: Open MPI's OMPI_COMM_WORLD_SIZE, or the PMI
 * size variable of MPICH's launcher and Slurm, saying more than one process; or an
 * explicit --group mpi. --group none restores alone even under mpirun.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

/* The world size a launcher gave this process, or 1. */
static long launcher_size(void)
{
    static const char *vars[] = { "OMPI_COMM_WORLD_SIZE", "PMI_SIZE" };
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
        const char *v = getenv(vars[i]);
        if (v && atol(v) > 0)
            return atol(v);
    }
    return 1;
}

int cli_group_exec(const char *cmd, int argc, char **argv)
{
    const char *group = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--group") && i + 1 < argc)
            group = argv[i + 1];
        else if (!strncmp(argv[i], "--group=", 8))
            group = argv[i] + 8;
    }
    if (group && !strcmp(group, "none"))
        return -1;
    if (!group && launcher_size() <= 1)
        return -1;
    if (group && strcmp(group, "mpi") != 0)
        return cli_usage(cmd, "--group is mpi or none, not '%s'", group);

    /* trestle-mpi sits beside this binary (build tree and install alike). */
    char self[PATH_MAX], path[PATH_MAX + 16];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) {
        cli_error("cannot find this program's path to run trestle-mpi beside it");
        return CLI_EXIT_FAIL;
    }
    self[n] = '\0';
    char *slash = strrchr(self, '/');
    snprintf(path, sizeof path, "%.*s/trestle-mpi", slash ? (int)(slash - self) : 0, self);
    char **args = calloc((size_t)argc + 2, sizeof *args);
    if (!args)
        return CLI_EXIT_FAIL;
    args[0] = path;
    args[1] = (char *)cmd;
    for (int i = 1; i < argc; i++)
        args[i + 1] = argv[i];
    cli_signals_release(); /* an exec keeps the blocked mask: trestle-mpi takes its own signals */
    execv(path, args);
    cli_error("%s with --group mpi (or under mpirun) needs %s, the MPI build of the "
              "command (built when CMake finds MPI): %s; --group none runs it in this "
              "process alone", cmd, path, strerror(errno));
    free(args);
    return CLI_EXIT_FAIL;
}
