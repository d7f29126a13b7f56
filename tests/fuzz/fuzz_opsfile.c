/*
 * fuzz_opsfile.c - libFuzzer target for ops files as the CLI reads them
 * (`trestle restore --ops FILE`, `trestle diff --ops FILE`): the input is
 * written to a file and read by tools/cli_opsfile.c itself, with its line
 * and size bounds, comments, TAB-separated fields and dtype= / as=
 * keywords; the ops it yields are then planned against a small checkpoint
 * made once with trestle's writer (fuzz_util.c).
 * cli_error is replaced here by a silent one so the run is not drowned
 * in messages; it still formats them.
 * Any crash, leak or sanitizer report is a bug.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "fuzz_util.h"

static trestle_checkpoint *ckpt;
static char ops_path[4096];

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

void cli_error(const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_scratch_prefix(ops_path, sizeof ops_path, "ops");
    strncat(ops_path, ".ops", sizeof ops_path - strlen(ops_path) - 1);
    ckpt = fuzz_small_checkpoint("opsfile");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (fuzz_write_file(ops_path, data, size) != 0)
        return 0;

    cli_ops ops;
    if (cli_ops_read(ops_path, TRESTLE_DEST_DISCARD, &ops) != CLI_EXIT_OK) {
        if (ops.ops || ops.n || ops.strings)
            abort(); /* a failed read leaves nothing behind */
        return 0;
    }
    if (ops.n == 0)
        abort(); /* an empty op list is an error, never "every tensor" */
    trestle_plan_options o;
    trestle_plan_options_init(&o);
    o.allow_missing = 1;
    trestle_plan *p = NULL;
    trestle_error err;
    if (trestle_plan_create(ckpt, ops.ops, ops.n, &o, &p, &err) == TRESTLE_OK) {
        trestle_restore_options ro;
        trestle_restore_options_init(&ro);
        ro.reader = TRESTLE_READER_PREAD; /* a ring per input would dominate the run */
        ro.threads = 1;
        (void)trestle_restore(p, &ro, NULL, &err);
    }
    trestle_plan_free(p);
    cli_ops_free(&ops);
    return 0;
}
