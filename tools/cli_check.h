/*
 * cli_check.h - what the two halves of `trestle check` share: the command
 * line (tools/cli_check.c) and the report (tools/cli_check_report.c).
 */
#ifndef TRESTLE_CLI_CHECK_H
#define TRESTLE_CLI_CHECK_H

#include "cli.h"
#include "trestle_graph.h"

/* The command line of one `trestle check`. */
typedef struct check_args {
    const char *source, *ckpt, *write_ops, *tag; /* the arguments and option values */
    const cli_ops *ops;     /* the op list read from source */
    const char **renames, **excludes;   /* --rename, --exclude (pointers into argv) */
    size_t nrenames, nexcludes;
    int rnn, names, json, list_all;     /* --rnn-renames, --names graph, --json, --list-all */
} check_args;

/* The report as text: the summary line, missing ops, mismatches, unused
 * keys, inferred and refused rules, the verdict. */
void cli_check_print_text(const check_args *a, const trestle_checkpoint *c,
                          const trestle_inference *inf);

/* The same as one JSON object (every name, no lists cut short). */
void cli_check_print_json(const cli_ops *ops, const trestle_checkpoint *c,
                          const trestle_inference *inf);

#endif /* TRESTLE_CLI_CHECK_H */
