/*
 * fuzz_state.c - libFuzzer target for the `checkpoint` state file: the
 * text-format CheckpointState that tf.train.latest_checkpoint reads, parsed
 * as trestle_open() parses it when given a directory (quoted strings with
 * escapes, repeated fields, timestamps, comments).
 * Any crash, leak or sanitizer report is a bug.
 */
#include <stdint.h>
#include <stdlib.h>

#include "state_file.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *latest = NULL, **all = NULL;
    size_t n_all = 0;
    trestle_error err;
    int rc = trestle__state_parse((const char *)data, size, "/ckpt", "/ckpt/checkpoint", &latest,
                                  &all, &n_all, &err);
    if (rc == TRESTLE_OK && !latest)
        abort();
    free(latest);
    for (size_t i = 0; i < n_all; i++)
        free(all[i]);
    free(all);
    return 0;
}
