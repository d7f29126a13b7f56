/*
 * fuzz_state.c - libFuzzer target for the `checkpoint` state file: the
 * text-format CheckpointState that tf.train.latest_checkpoint reads
 * (quoted strings with escapes, repeated fields, timestamps, comments).
 *
 * Each input goes two ways: to the parser in memory, as trestle_open()
 * parses it (with all_model_checkpoint_paths), and through the public
 * trestle_latest_checkpoint(), as Python's trestle.latest_checkpoint()
 * calls it: written as DIR/checkpoint in a scratch directory of this
 * process, read back by the engine's bounded, non-blocking reader and
 * resolved against the files there. Both must agree on the prefix.
 * Any crash, leak, sanitizer report or disagreement is a bug.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "state_file.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[64];

/* Leave nothing in /tmp when the fuzzer exits. */
static void scratch_remove(void)
{
    char p[96];
    snprintf(p, sizeof p, "%s/checkpoint", dir);
    unlink(p);
    snprintf(p, sizeof p, "%s/ck.index", dir);
    unlink(p);
    rmdir(dir);
}

/* A scratch directory holding one checkpoint index, "ck.index", so that a
 * state file naming "ck" resolves and the success path is reached too. */
static const char *scratch(void)
{
    if (!dir[0]) {
        snprintf(dir, sizeof dir, "%s", "/tmp/trestle-fuzz-state-XXXXXX");
        if (!mkdtemp(dir))
            abort();
        char index[96];
        snprintf(index, sizeof index, "%s/ck.index", dir);
        FILE *f = fopen(index, "w");
        if (!f)
            abort();
        fclose(f);
        atexit(scratch_remove);
    }
    return dir;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *latest = NULL, **all = NULL;
    size_t n_all = 0;
    trestle_error err;
    scratch();
    int rc = trestle__state_parse((const char *)data, size, dir, "/ckpt/checkpoint", &latest,
                                  &all, &n_all, &err);
    if (rc == TRESTLE_OK && !latest)
        abort();
    for (size_t i = 0; i < n_all; i++)
        free(all[i]);
    free(all);

    char path[96], *found = NULL;
    snprintf(path, sizeof path, "%s/checkpoint", dir);
    if (size == 0) {
        /* No state file at all: TensorFlow's None, not an error. */
        unlink(path);
        if (trestle_latest_checkpoint(dir, NULL, &found, &err) != TRESTLE_OK || found)
            abort();
    }
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, size, f) != size || fclose(f) != 0)
        abort();
    int prc = trestle_latest_checkpoint(dir, NULL, &found, &err);
    /* One parser, one answer: what parses here resolves there when its
     * index exists, and a parse failure is the same failure. */
    if (rc != TRESTLE_OK && prc != rc)
        abort();
    if (prc == TRESTLE_OK && (!found || !latest || strcmp(found, latest) != 0))
        abort();
    free(found);
    free(latest);
    return 0;
}
