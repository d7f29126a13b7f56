/*
 * cli_remote.c - the options every data-reading command takes for a
 * checkpoint given as a URL (gs://, s3://, https://, http://):
 * --connections, --attempts and --backoff, kept for the process and
 * handed to trestle_open() by cli_open(), so that each command only lists
 * them in its option table (CLI_REMOTE_LONGOPTS) and its help
 * (CLI_REMOTE_HELP).
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

/* The CLI's one open-options struct: set while the command line is parsed. */
static trestle_open_options open_opts;
static int open_opts_ready;

const trestle_open_options *cli_open_options(void)
{
    if (!open_opts_ready) {
        trestle_open_options_init(&open_opts);
        open_opts_ready = 1;
    }
    return &open_opts;
}

int cli_open(const char *path, trestle_checkpoint **out)
{
    trestle_error err;
    trestle_error_clear(&err);
    if (trestle_open(path, cli_open_options(), out, &err) != TRESTLE_OK) {
        cli_fail(&err);
        cli_graph_hint(path);
        return CLI_EXIT_FAIL;
    }
    return CLI_EXIT_OK;
}

/* A usage error: printed unless `quiet` (an MPI rank other than 0, whose
 * copy of the same message would only repeat rank 0's). */
#define REMOTE_USAGE(quiet, cmd, ...) ((quiet) ? CLI_EXIT_USAGE : cli_usage(cmd, __VA_ARGS__))

int cli_remote_option_quiet(const char *cmd, int c, const char *arg, int quiet)
{
    trestle_open_options *o = (trestle_open_options *)cli_open_options();
    long long v;
    switch (c) {
    case CLI_OPT_CONNECTIONS:
        if (cli_parse_int(arg, 1, 1024, &v) != 0)
            return REMOTE_USAGE(quiet, cmd, "--connections wants a number from 1 to 1024, "
                                            "not '%s'", arg);
        o->connections = (unsigned)v;
        return CLI_EXIT_OK;
    case CLI_OPT_ATTEMPTS:
        if (cli_parse_int(arg, 1, 100, &v) != 0)
            return REMOTE_USAGE(quiet, cmd, "--attempts wants a number from 1 to 100, not '%s'",
                                arg);
        o->attempts = (unsigned)v;
        return CLI_EXIT_OK;
    case CLI_OPT_BACKOFF:
        if (cli_parse_int(arg, 1, 600000, &v) != 0)
            return REMOTE_USAGE(quiet, cmd, "--backoff wants milliseconds from 1 to 600000, "
                                            "not '%s'", arg);
        o->backoff_ms = (unsigned)v;
        return CLI_EXIT_OK;
    default:
        return CLI_EXIT_USAGE;
    }
}

int cli_remote_option(const char *cmd, int c, const char *arg)
{
    return cli_remote_option_quiet(cmd, c, arg, 0);
}

void cli_remote_fit(trestle_restore_options *run)
{
    trestle_restore_options d;
    unsigned n = cli_open_options()->connections;
    trestle_restore_options_init(&d);
    if (n == 0)
        return;
    /* As many reads in flight as connections, each holding a staging
     * buffer: raise what the user left at its default, never what was set. */
    if (run->queue_depth == d.queue_depth && run->queue_depth < n)
        run->queue_depth = n;
    uint64_t chunk = run->chunk_bytes ? run->chunk_bytes : d.chunk_bytes;
    uint64_t want = (uint64_t)(n + 1) * (chunk + (64u << 10));
    if (run->staging_bytes == d.staging_bytes && run->staging_bytes < want)
        run->staging_bytes = want;
}

/* ---- what a remote restore did ---- */

void cli_remote_summary(const trestle_stats *st)
{
    char fetched[32], needed[32];
    if (st->reader != TRESTLE_READER_REMOTE)
        return;
    cli_human_size(st->bytes_fetched, fetched, sizeof fetched);
    cli_human_size(st->bytes_read, needed, sizeof needed);
    printf("remote: %" PRIu64 " request%s (%" PRIu64 " retried), %s fetched for %s read; %u "
           "shard object%s read whole, ", st->remote_requests,
           st->remote_requests == 1 ? "" : "s", st->remote_retries, fetched, needed,
           st->objects_whole, st->objects_whole == 1 ? "" : "s");
    if (st->objects_verified)
        printf("%u verified whole against the store's CRC32C\n", st->objects_verified);
    else if (st->objects_whole)
        printf("none verified whole (the store reports no CRC32C; every tensor's own was "
               "checked)\n");
    else
        printf("so the store's CRC32C could check none (every tensor's own was checked)\n");
}

void cli_remote_json(FILE *f, const trestle_stats *st, const char *indent)
{
    if (st->reader != TRESTLE_READER_REMOTE)
        return;
    fprintf(f, ",\n%s  \"remote\": {\"requests\": %" PRIu64 ", \"retries\": %" PRIu64
               ", \"bytes_fetched\": %" PRIu64 ", \"bytes_needed\": %" PRIu64
               ", \"objects_whole\": %u, \"objects_verified\": %u}",
            indent, st->remote_requests, st->remote_retries, st->bytes_fetched, st->bytes_read,
            st->objects_whole, st->objects_verified);
}
