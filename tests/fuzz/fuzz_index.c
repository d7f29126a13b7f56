/*
 * fuzz_index.c - libFuzzer target for the index parser: the input is a
 * whole .index file. In fuzzing builds block CRCs pass whatever they hold
 * (engine/format/sstable.c), so mutations reach the entry parser behind
 * them. It is written to a scratch directory and opened with trestle_open,
 * which scans the SSTable, decodes the header and every entry, links
 * partitioned tensors and checks ranges; when it opens, every tensor is
 * also read, and it is opened a second time with require_all_shards.
 *
 * Data files of 64 KiB of zeros lie beside it for 1 to 8 shards, so reads
 * reach the shards and the CRC checks behind them: the seeds
 * (tests/fuzz/fuzz_seeds.c) store zero tensors, whose CRC32C holds there,
 * and mutated offsets and sizes run past the ends. A few shards are not
 * regular files on purpose: shard 4 of 5 is missing, shard 2 of 6 is a
 * directory, shard 1 of 7 a FIFO (which must never block), shard 3 of 7 a
 * character device (a link to /dev/null), shard 7 of 8 a socket. And a
 * checkpoint of 5 shards has three of them changed between its open and
 * its reads, as a copy or a cleanup running beside a restore would:
 * shard 1 removed, shard 2 truncated to nothing, shard 3 made a FIFO (all
 * three put back afterwards).
 *
 * A one-byte input names what stands at the index's own path instead of a
 * file of its bytes, so that every refusal of trestle_open() runs too: 'F'
 * a FIFO, 'D' a directory, 'C' a character device, 'M' nothing at all,
 * 'B' a sparse file over the 4 GiB an index may have, 'S' a sysfs file
 * (regular, but shorter than the size stat gives it)
 * (tests/fuzz/seeds/index/kind_*).
 * Every input is also walked as an SSTable directly, the way
 * engine/format/ckpt_scan.c splits a large index between two threads: its
 * data blocks in two ranges cut where the input's first byte says, each
 * range walked on its own (the second starting mid-table, checked against
 * the blocks before it), which no input small enough to fuzz reaches
 * through trestle_open().
 * Any crash, leak or sanitizer report is a bug.
 */
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz_util.h"
#include "sstable.h"
#include "trestle.h"

#define MAX_SHARDS 8
#define SHARD_BYTES 65536

static char index_path[4096], prefix[4096];

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* prefix.data-K-of-N into buf. */
static void shard_name(char *buf, size_t cap, int k, int n)
{
    snprintf(buf, cap, "%s.data-%05d-of-%05d", prefix, k, n);
}

/* A Unix socket bound at path (closed again: the file stays). */
static void make_socket(const char *path)
{
    struct sockaddr_un a = { .sun_family = AF_UNIX };
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd < 0 || strlen(path) >= sizeof a.sun_path) {
        if (fd >= 0)
            close(fd);
        return;
    }
    memcpy(a.sun_path, path, strlen(path) + 1);
    (void)!bind(fd, (struct sockaddr *)&a, sizeof a);
    close(fd);
}

/* Make what one-byte input k names at the index's path; false for any
 * other byte (then the byte is an index like any input). */
static bool make_kind(uint8_t k)
{
    switch (k) {
    case 'F': return mkfifo(index_path, 0600) == 0;
    case 'D': return mkdir(index_path, 0700) == 0;
    case 'C': return symlink("/dev/null", index_path) == 0;
    case 'M': return true;
    case 'S': return symlink("/sys/devices/system/cpu/online", index_path) == 0;
    case 'B': {
        int fd = open(index_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        bool ok = fd >= 0 && ftruncate(fd, (off_t)(5ull << 30)) == 0;
        if (fd >= 0)
            close(fd);
        return ok;
    }
    default: return false;
    }
}

/* Remove what Initialize made (libFuzzer ends through exit()). */
static void cleanup(void)
{
    char path[4200];
    for (int n = 1; n <= MAX_SHARDS; n++)
        for (int k = 0; k < n; k++) {
            shard_name(path, sizeof path, k, n);
            if (unlink(path) != 0)
                rmdir(path);
        }
    unlink(index_path);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    static const uint8_t zeros[SHARD_BYTES];
    char path[4200];
    fuzz_scratch_prefix(prefix, sizeof prefix, "index");
    snprintf(index_path, sizeof index_path, "%s.index", prefix);
    for (int n = 1; n <= MAX_SHARDS; n++)
        for (int k = 0; k < n; k++) {
            shard_name(path, sizeof path, k, n);
            if (n == 5 && k == 4)
                continue;
            if (n == 6 && k == 2)
                mkdir(path, 0700);
            else if (n == 7 && k == 1)
                mkfifo(path, 0600);
            else if (n == 7 && k == 3)
                (void)!symlink("/dev/null", path);
            else if (n == 8 && k == 7)
                make_socket(path);
            else
                fuzz_write_file(path, zeros, sizeof zeros);
        }
    atexit(cleanup);
    return 0;
}

/* Change (put back: false) shards 1-3 of 5 under an open checkpoint. */
static void change_shards(bool change)
{
    static const uint8_t zeros[SHARD_BYTES];
    char path[4200];
    for (int k = 1; k <= 3; k++) {
        shard_name(path, sizeof path, k, 5);
        unlink(path);
        if (!change)
            fuzz_write_file(path, zeros, sizeof zeros);
        else if (k == 2)
            fuzz_write_file(path, zeros, 0);
        else if (k == 3)
            mkfifo(path, 0600);
    }
}

/* Open the index at prefix; read every tensor (up to 64) when it opens. */
static void open_and_read(int require_all)
{
    trestle_open_options oo;
    trestle_checkpoint *c = NULL;
    trestle_error err;
    trestle_open_options_init(&oo);
    oo.require_all_shards = require_all;
    if (trestle_open(prefix, &oo, &c, &err) == TRESTLE_OK) {
        trestle_checkpoint_info info;
        trestle_checkpoint_get_info(c, &info);
        bool changed = !require_all && info.num_shards == 5;
        if (changed)
            change_shards(true);
        for (size_t i = 0; i < trestle_tensor_count(c) && i < 64; i++) {
            trestle_tensor_info t;
            uint8_t buf[4096];
            if (trestle_tensor_get_info(c, i, &t) == TRESTLE_OK)
                (void)trestle_tensor_read(c, i, buf, sizeof buf, 1, &err);
        }
        trestle_close(c);
        if (changed)
            change_shards(false);
    } else if (c != NULL || err.code == TRESTLE_OK) {
        abort(); /* failure must leave *out NULL and fill err */
    }
}

static int visit_none(void *user, const uint8_t *key, size_t key_len, const uint8_t *value,
                      size_t value_len, uint64_t value_offset, trestle_error *err)
{
    (void)user, (void)key, (void)key_len, (void)value, (void)value_len, (void)value_offset;
    (void)err;
    return TRESTLE_OK;
}

/* The table's data blocks in two ranges, as two threads walk a large index
 * (each range on its own, whatever the other found); trestle_open() below
 * walks it whole. */
static void walk_in_parts(const uint8_t *data, size_t size)
{
    trestle__table *t;
    trestle__table_stats st;
    trestle_error err;
    if (trestle__table_open(data, size, "fuzz.index", 1, &t, &err) != TRESTLE_OK)
        return;
    size_t n = trestle__table_blocks(t), cut = n ? data[0] % (n + 1) : 0;
    (void)trestle__table_scan_blocks(t, 0, cut, visit_none, NULL, &st, &err);
    (void)trestle__table_scan_blocks(t, cut, n, visit_none, NULL, &st, &err);
    trestle__table_free(t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* Whatever the last input left there goes first: a FIFO must never be
     * opened for writing (it would block), nor a directory. */
    if (unlink(index_path) != 0)
        rmdir(index_path);
    if (size == 1 && make_kind(data[0])) {
        open_and_read(0);
        if (unlink(index_path) != 0)
            rmdir(index_path);
        return 0;
    }
    if (size > 0)
        walk_in_parts(data, size);
    if (fuzz_write_file(index_path, data, size) != 0)
        return 0;
    open_and_read(0);
    open_and_read(1);
    return 0;
}
