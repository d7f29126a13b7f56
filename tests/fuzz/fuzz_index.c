/*
 * fuzz_index.c - libFuzzer target for the index parser: the input is a
 * whole .index file. In fuzzing builds block CRCs pass whatever they hold
 * (engine/format/sstable.c), so mutations reach the entry parser behind them. It is written to a scratch directory and opened with
 * trestle_open, which scans the SSTable, decodes the header and every entry,
 * links partitioned tensors and checks ranges; when it opens, every tensor
 * is also read (their shard is absent, so reads must fail cleanly).
 * Any crash, leak or sanitizer report is a bug.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz_util.h"
#include "trestle.h"

static char index_path[4096], prefix[4096];

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_scratch_prefix(prefix, sizeof prefix, "index");
    snprintf(index_path, sizeof index_path, "%s.index", prefix);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (fuzz_write_file(index_path, data, size) != 0)
        return 0;

    trestle_checkpoint *c = NULL;
    trestle_error err;
    if (trestle_open(prefix, NULL, &c, &err) == TRESTLE_OK) {
        for (size_t i = 0; i < trestle_tensor_count(c) && i < 64; i++) {
            trestle_tensor_info t;
            uint8_t buf[64];
            if (trestle_tensor_get_info(c, i, &t) == TRESTLE_OK)
                (void)trestle_tensor_read(c, i, buf, sizeof buf, 1, &err);
        }
        trestle_close(c);
    } else if (c != NULL || err.code == TRESTLE_OK) {
        abort(); /* failure must leave *out NULL and fill err */
    }
    return 0;
}
