/*
 * cli_bench_synth.c - the temporary checkpoint of `trestle bench
 * --synthetic` and `trestle-mpi bench --synthetic`: a directory under
 * $TMPDIR holding what `trestle synth` writes, removed when the bench ends,
 * fails or is interrupted (the signals' cleanup hook, cli_signal.c).
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

/* Remove the flat directory `dir` and its files. A signal's cleanup may
 * run while `trestle synth` still creates a shard in it: try again then. */
static void remove_dir(void *arg)
{
    const char *dir = arg;
    for (int attempt = 0; attempt < 5; attempt++) {
        DIR *d = opendir(dir);
        struct dirent *e;
        char path[4400];
        while (d && (e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            unlink(path);
        }
        if (d)
            closedir(d);
        if (rmdir(dir) == 0 || errno != ENOTEMPTY)
            return;
    }
}

int cli_bench_synth_make(uint64_t size, int shards, char *dir, size_t dcap, char *prefix,
                         size_t pcap)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, dcap, "%s/trestle-bench-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) {
        cli_error("cannot create a directory for --synthetic under %s: %s",
                  tmp && *tmp ? tmp : "/tmp", strerror(errno));
        dir[0] = '\0';
        return CLI_EXIT_FAIL;
    }
    cli_signals_push_cleanup(remove_dir, dir);
    snprintf(prefix, pcap, "%s/ckpt", dir);
    /* Through `trestle synth` itself, so that the tensors are exactly what
     * it writes; its summary line goes to stderr, keeping stdout for the
     * results (and --json clean). */
    char sz[32], sh[16];
    snprintf(sz, sizeof sz, "%" PRIu64, size);
    snprintf(sh, sizeof sh, "%d", shards);
    char *argv[] = { "synth", prefix, "--size", sz, "--shards", sh, "--dtype", "bf16", NULL };
    fflush(stdout);
    int saved = dup(STDOUT_FILENO);
    if (saved >= 0)
        dup2(STDERR_FILENO, STDOUT_FILENO);
    int rc = cli_synth_main(8, argv);
    fflush(stdout);
    if (saved >= 0) {
        dup2(saved, STDOUT_FILENO);
        close(saved);
    }
    cli_getopt_reset();
    if (rc != CLI_EXIT_OK) {
        cli_bench_synth_remove(dir);
        prefix[0] = '\0';
    }
    return rc;
}

void cli_bench_synth_remove(char *dir)
{
    if (!dir[0])
        return;
    remove_dir(dir);
    cli_signals_pop_cleanup();
    dir[0] = '\0';
}
