/*
 * fuzz_util.c - helpers shared by the libFuzzer targets: scratch files in
 * memory-backed /dev/shm when it is there, and the small writer-made
 * checkpoint that op lists are planned against.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "fuzz_util.h"

void fuzz_scratch_prefix(char *buf, size_t cap, const char *tag)
{
    const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(buf, cap, "%s/trestle-fuzz-%s-%ld", base, tag, (long)getpid());
}

int fuzz_write_file(const char *path, const uint8_t *data, size_t size)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0)
        return -1;
    int ok = write(fd, data, size) == (ssize_t)size;
    close(fd);
    return ok ? 0 : -1;
}

trestle_checkpoint *fuzz_small_checkpoint(const char *tag)
{
    char prefix[4096];
    fuzz_scratch_prefix(prefix, sizeof prefix, tag);
    trestle_writer_options wo;
    trestle_writer_options_init(&wo);
    wo.num_shards = 2;
    trestle_writer *w;
    if (trestle_writer_create(prefix, &wo, &w, NULL) != TRESTLE_OK)
        abort();
    float buf[10 * 6];
    for (int i = 0; i < 60; i++)
        buf[i] = (float)i;
    int64_t d2[2] = { 10, 6 }, d1 = 6;
    trestle_writer_add(w, "dense/kernel", TRESTLE_DT_FLOAT, 2, d2, buf, sizeof buf, 0, NULL);
    trestle_writer_add(w, "dense/bias", TRESTLE_DT_FLOAT, 1, &d1, buf, 24, 1, NULL);
    trestle_writer_add(w, "rnn/lstm_cell/kernel", TRESTLE_DT_FLOAT, 2, d2, buf, sizeof buf, 1, NULL);
    trestle_writer_add_slice(w, "emb", TRESTLE_DT_FLOAT, "10 6 0,3:-", buf, 72, 0, NULL);
    trestle_writer_add_slice(w, "emb", TRESTLE_DT_FLOAT, "10 6 3,7:-", buf + 18, 168, 1, NULL);
    trestle_bytes s = { (const uint8_t *)"x", 1 };
    int64_t one = 1;
    trestle_writer_add_strings(w, "vocab", 1, &one, &s, 0, NULL);
    if (trestle_writer_finish(w, NULL) != TRESTLE_OK)
        abort();
    trestle_writer_free(w);
    trestle_checkpoint *c;
    if (trestle_open(prefix, NULL, &c, NULL) != TRESTLE_OK)
        abort();
    return c;
}
