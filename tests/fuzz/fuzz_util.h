/*
 * fuzz_util.h - what several libFuzzer targets share (tests/fuzz/fuzz_util.c):
 * a scratch path, writing the input to a file, and a small checkpoint to
 * plan op lists against.
 */
#ifndef TRESTLE_FUZZ_UTIL_H
#define TRESTLE_FUZZ_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include "trestle.h"

/* "/dev/shm/trestle-fuzz-TAG-PID" (or under /tmp) into buf. */
void fuzz_scratch_prefix(char *buf, size_t cap, const char *tag);

/* Replace the file at path with data; 0, or -1 when it could not. */
int fuzz_write_file(const char *path, const uint8_t *data, size_t size);

/*
 * A checkpoint made once with trestle's writer and opened: dense/kernel
 * [10,6], dense/bias [6], rnn/lstm_cell/kernel [10,6], a partitioned emb
 * [10,6] in two slices and a string vocab [1], over two shards. Aborts
 * when it cannot be made (the target would test nothing).
 */
trestle_checkpoint *fuzz_small_checkpoint(const char *tag);

#endif /* TRESTLE_FUZZ_UTIL_H */
