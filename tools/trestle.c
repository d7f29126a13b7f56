/*
 * trestle.c - the `trestle` command-line tool: command dispatch, the
 * command list, and version.
 *
 * Each command lives in its own tools/cli_<command>.c and is called with
 * argv starting at the command's name. The CLI uses only the public API
 * (include/trestle.h, and include/trestle_graph.h for graphs), like any
 * other client of libtrestle.
 *
 * Exit status everywhere: 0 success, 1 failure (the message on stderr
 * starts with "trestle: "), 2 bad command line; interrupted by SIGINT,
 * SIGTERM or SIGHUP, the process ends by that signal after cleaning up
 * (cli_signal.c), which the shell shows as 130, 143 or 129.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"

typedef struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary; /* one line for the command list */
    int own_signals;     /* 1: the command takes SIGINT/SIGTERM/SIGHUP itself (`serve`, for
                            which a stop is its normal end), so no signal watcher is started */
} command;

static const command commands[] = {
    { "inspect", cli_inspect_main, "list tensors with shapes, sizes and offsets; values, stats, "
                                   "JSON", 0 },
    { "verify", cli_verify_main, "check every tensor's CRC32C and name the bad ones", 0 },
    { "restore", cli_restore_main, "restore tensors (all, or an ops file) and report throughput",
      0 },
    { "convert", cli_convert_main, "write tensors into a safetensors file, CRC-checked, "
                                   "atomically", 0 },
    { "ops", cli_ops_main, "print the op list a graph's saver restores (or a checkpoint's) "
                           "as an ops file", 0 },
    { "check", cli_check_main, "preflight a graph's or ops file's restore: missing keys, "
                               "mismatches, inferred renames", 0 },
    { "diff", cli_diff_main, "compare two checkpoints (or an ops file) key by key", 0 },
    { "synth", cli_synth_main, "write a synthetic LLM-shaped checkpoint of a given size", 0 },
    { "bench", cli_bench_main, "time each restore stage against this machine's read, CRC and "
                                 "copy ceilings", 0 },
    { "serve", cli_serve_main, "run the per-host server that keeps checkpoints resident in "
                               "memory", 1 },
    { "preload", cli_preload_main, "make a checkpoint resident on the server; --list, --evict",
      0 },
};
#define NUM_COMMANDS (sizeof commands / sizeof commands[0])

static void print_usage(FILE *f)
{
    fprintf(f,
            "Usage: trestle COMMAND [OPTIONS] ...\n"
            "\n"
            "Read, verify and restore TensorFlow V2 checkpoints (tensor bundles) fast.\n"
            "\n"
            "Commands:\n");
    for (size_t i = 0; i < NUM_COMMANDS; i++)
        fprintf(f, "  %-9s %s\n", commands[i].name, commands[i].summary);
    fprintf(f,
            "  %-9s %s\n"
            "  %-9s %s\n"
            "\n"
            "Run 'trestle COMMAND --help' (or 'trestle help COMMAND') for its options.\n"
            "\n"
            "Examples:\n"
            "  trestle inspect ./ckpt/model.ckpt-1000\n"
            "  trestle verify saved_model/variables\n"
            "  trestle restore --ops ops.txt --allow-missing ckpt_dir\n"
            "  trestle convert ckpt_dir model.safetensors\n"
            "  trestle preload ckpt_dir    # with 'trestle serve' running: keep it resident\n"
            "  trestle restore ckpt_dir --server default\n",
            "help", "show this list, or a command's help", "version", "print the version");
}

static const command *find_command(const char *name)
{
    for (size_t i = 0; i < NUM_COMMANDS; i++)
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    return NULL;
}

static int print_version(void)
{
    printf("trestle %s\n", trestle_version_string());
    if (trestle_version_number() != TRESTLE_VERSION_NUMBER)
        printf("(built against headers %s)\n", TRESTLE_VERSION_STRING);
    return CLI_EXIT_OK;
}

/* `trestle help [COMMAND]` */
static int run_help(int argc, char **argv)
{
    if (argc < 2) {
        print_usage(stdout);
        return CLI_EXIT_OK;
    }
    const command *cmd = find_command(argv[1]);
    if (!cmd) {
        if (strcmp(argv[1], "help") == 0 || strcmp(argv[1], "version") == 0) {
            print_usage(stdout);
            return CLI_EXIT_OK;
        }
        cli_error("unknown command '%s'; run 'trestle help' for the list", argv[1]);
        return CLI_EXIT_USAGE;
    }
    char help[] = "--help";
    char *args[] = { argv[1], help, NULL };
    return cmd->run(2, args);
}

int main(int argc, char **argv)
{
    const command *cmd = argc >= 2 ? find_command(argv[1]) : NULL;
    if (!cmd || !cmd->own_signals)
        cli_signals_install();
    if (argc < 2) {
        print_usage(stderr);
        return CLI_EXIT_USAGE;
    }
    const char *name = argv[1];
    if (strcmp(name, "help") == 0 || strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0)
        return run_help(argc - 1, argv + 1);
    if (strcmp(name, "version") == 0 || strcmp(name, "--version") == 0 ||
        strcmp(name, "-V") == 0)
        return print_version();
    if (!cmd) {
        if (name[0] == '-')
            cli_error("unknown option '%s'; run 'trestle help' for the list of commands", name);
        else
            cli_error("unknown command '%s'; run 'trestle help' for the list", name);
        return CLI_EXIT_USAGE;
    }
    int status = cmd->run(argc - 1, argv + 1);
    /* Interrupted: say so and end by the signal, whatever the command returned. */
    status = cli_signals_finish(status);
    /* A write error on stdout (full disk, closed pipe) must not pass as success. */
    if (fflush(stdout) != 0 || ferror(stdout)) {
        cli_error("error writing output");
        return CLI_EXIT_FAIL;
    }
    return status;
}
