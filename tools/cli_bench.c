/*
 * cli_bench.c - `trestle bench`: a placeholder that says so. The stage-by-
 * stage benchmark (raw read vs. restore vs. pinned copy ceilings) lands in
 * a later change; until then the command exists only to answer clearly.
 */
#include <string.h>

#include "cli.h"

static const char bench_help[] =
    "Usage: trestle bench PATH\n"
    "\n"
    "Not implemented yet. It will measure each restore stage separately (raw\n"
    "read, CRC32C, copy) against the hardware ceilings. Until then, use\n"
    "'trestle restore' for end-to-end throughput.\n"
    "\n"
    "Options:\n"
    "  -h, --help  show this help\n"
    "\n"
    "Examples:\n"
    "  trestle synth /tmp/llm/ckpt --size 2G --shards 8\n"
    "  trestle restore --all /tmp/llm/ckpt\n";

int cli_bench_main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            fputs(bench_help, stdout);
            return CLI_EXIT_OK;
        }
    }
    fputs("trestle bench: not implemented yet\n", stderr);
    return CLI_EXIT_USAGE;
}
