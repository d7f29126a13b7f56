/*
 * ckpt_shard.c - the data files of an open checkpoint.
 *
 * trestle_open() only names and measures the shards (stat, never open), so
 * listing a checkpoint needs nothing but its index, and a FIFO or device
 * where a shard should be cannot block it. A shard is opened the first
 * time its bytes are needed: by trestle_plan_create() for the shards a plan
 * reads, or by a synchronous read. The checkpoint is shared read-only
 * across threads, so the lazy open takes a small spin lock and publishes
 * the descriptor with an atomic store; readers of a plan only look at the
 * descriptors that its own plan_create() opened (or an atomic load).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ckpt_remote.h"
#include "ckpt_shard.h"
#include "error.h"
#include "regular_file.h"

/* Record what stat() says about shard i; 0, or the errno it failed with. */
static void probe(trestle_checkpoint *c, size_t i)
{
    struct stat st;
    if (stat(c->shard_paths[i], &st) != 0) {
        c->shard_errno[i] = errno;
        c->shard_state[i] = TRESTLE__SHARD_MISSING;
    } else if (!S_ISREG(st.st_mode)) {
        /* EISDIR keeps a reader's strerror() true for the common case. */
        c->shard_errno[i] = S_ISDIR(st.st_mode) ? EISDIR : ENXIO;
        c->shard_state[i] = TRESTLE__SHARD_IRREGULAR;
    } else {
        c->shard_sizes[i] = (uint64_t)st.st_size;
        c->shard_state[i] = TRESTLE__SHARD_UNOPENED;
    }
}

int trestle__shards_init(trestle_checkpoint *c, bool require_all, trestle_error *err)
{
    size_t n = (size_t)c->num_shards;
    if (c->store)
        return trestle__remote_shards_init(c, require_all, err); /* HEADs, not stat() */
    c->shard_paths = calloc(n, sizeof *c->shard_paths);
    c->shard_fds = malloc(n * sizeof *c->shard_fds);
    c->shard_errno = calloc(n, sizeof *c->shard_errno);
    c->shard_sizes = calloc(n, sizeof *c->shard_sizes);
    c->shard_state = calloc(n, sizeof *c->shard_state);
    if (!c->shard_paths || !c->shard_fds || !c->shard_errno || !c->shard_sizes ||
        !c->shard_state)
        return trestle__error_simple(err, TRESTLE_E_NOMEM, "out of memory");
    for (size_t i = 0; i < n; i++)
        c->shard_fds[i] = -1;
    for (size_t i = 0; i < n; i++) {
        /* Names come from the header's num_shards, like TF's DataFilename. */
        if (asprintf(&c->shard_paths[i], "%s.data-%05zu-of-%05d", c->prefix, i,
                     c->num_shards) < 0) {
            c->shard_paths[i] = NULL;
            return trestle__error_simple(err, TRESTLE_E_NOMEM, "out of memory");
        }
        probe(c, i);
        if (!require_all)
            continue;
        int rc = trestle__shard_open(c, (int)i, NULL, err);
        if (rc == TRESTLE_OK)
            rc = trestle__shard_check(c, (int)i, NULL, 0, err);
        if (rc != TRESTLE_OK)
            return rc;
    }
    return TRESTLE_OK;
}

static void lock(const trestle_checkpoint *c)
{
    int *l = (int *)&c->shard_lock; /* the object itself is never const */
    while (__atomic_exchange_n(l, 1, __ATOMIC_ACQUIRE))
        sched_yield();
}

static void unlock(const trestle_checkpoint *c)
{
    __atomic_store_n((int *)&c->shard_lock, 0, __ATOMIC_RELEASE);
}

int trestle__shard_open(const trestle_checkpoint *c, int shard, const char *key,
                        trestle_error *err)
{
    if (!c->shard_state || c->store)
        return TRESTLE_OK; /* hand-made fds, or remote objects, known since the open */
    lock(c);
    if (c->shard_state[shard] == TRESTLE__SHARD_UNOPENED) {
        /* O_NONBLOCK: should the file have become a FIFO since the stat,
         * open() returns at once and fstat() below refuses it. */
        int fd = open(c->shard_paths[shard], O_RDONLY | O_CLOEXEC | O_NONBLOCK);
        struct stat st;
        if (fd < 0) {
            c->shard_errno[shard] = errno;
            c->shard_state[shard] = TRESTLE__SHARD_MISSING;
        } else if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
            c->shard_errno[shard] = errno ? errno : ENXIO;
            c->shard_state[shard] = TRESTLE__SHARD_IRREGULAR;
            close(fd);
        } else {
            (void)fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
            __atomic_store_n(&c->shard_fds[shard], fd, __ATOMIC_RELEASE);
            c->shard_state[shard] = TRESTLE__SHARD_OPEN;
        }
    }
    int state = c->shard_state[shard];
    unlock(c);
    if (state == TRESTLE__SHARD_IRREGULAR)
        return trestle__shard_check(c, shard, key, 0, err);
    return TRESTLE_OK;
}

int trestle__shard_check(const trestle_checkpoint *c, int shard, const char *key,
                         uint64_t offset, trestle_error *err)
{
    const char *path = c->shard_paths[shard];
    int e = c->shard_errno[shard];
    char who[600] = "";
    if (c->store)
        return trestle__remote_shard_check(c, shard, key, offset, err);
    if (__atomic_load_n(&c->shard_fds[shard], __ATOMIC_ACQUIRE) >= 0)
        return TRESTLE_OK;
    if (key)
        snprintf(who, sizeof who, "tensor '%.500s' needs ", key);
    if (c->shard_state && c->shard_state[shard] == TRESTLE__SHARD_IRREGULAR) {
        struct stat st;
        const char *kind = stat(path, &st) == 0 ? trestle__file_kind(st.st_mode)
                                                : "not a regular file";
        return trestle__error_set(err, TRESTLE_E_IO, e, key, path, (int64_t)offset, -1,
                                  "%sdata shard %s, which is %s; trestle reads only regular "
                                  "files", key ? who : "", path, kind);
    }
    if (e == 0)
        e = ENOENT;
    int code = e == ENOENT ? TRESTLE_E_NOT_FOUND : TRESTLE_E_IO;
    if (!key)
        return trestle__error_set(err, code, e, NULL, path, -1, -1,
                                  "cannot open data shard %s: %s", path, strerror(e));
    return trestle__error_set(err, code, e, key, path, (int64_t)offset, -1,
                              "tensor '%s' needs data shard %s, which could not be opened: %s",
                              key, path, strerror(e));
}

int trestle__shard_pread(const trestle_checkpoint *c, int shard, uint64_t offset, void *buf,
                         uint64_t n, const char *key, trestle_error *err)
{
    const char *path = c->shard_paths[shard];
    uint64_t got = 0;
    if (c->store)
        return trestle__remote_shard_read(c, shard, offset, buf, n, key, err);
    int rc = trestle__shard_open(c, shard, key, err);
    if (rc == TRESTLE_OK)
        rc = trestle__shard_check(c, shard, key, offset, err);
    if (rc != TRESTLE_OK)
        return rc;
    int fd = __atomic_load_n(&c->shard_fds[shard], __ATOMIC_ACQUIRE);
    while (got < n) {
        size_t step = n - got > (1u << 30) ? (1u << 30) : (size_t)(n - got);
        ssize_t r = pread(fd, (uint8_t *)buf + got, step, (off_t)(offset + got));
        if (r < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (r < 0) {
            int e = errno;
            return trestle__error_set(err, TRESTLE_E_IO, e, key, path, (int64_t)(offset + got),
                                      (int64_t)(n - got),
                                      "reading tensor '%s' from %s at offset %" PRIu64 ": %s",
                                      key, path, offset + got, strerror(e));
        }
        if (r == 0)
            return trestle__error_set(err, TRESTLE_E_SHORT_READ, 0, key, path,
                                      (int64_t)(offset + got), (int64_t)(n - got),
                                      "reading tensor '%s' from %s: unexpected end of file at "
                                      "offset %" PRIu64 " (%" PRIu64 " bytes missing)",
                                      key, path, offset + got, n - got);
        got += (uint64_t)r;
    }
    return TRESTLE_OK;
}

void trestle__shards_free(trestle_checkpoint *c)
{
    for (int i = 0; c->shard_paths && i < c->num_shards; i++) {
        free(c->shard_paths[i]);
        if (c->shard_fds && c->shard_fds[i] >= 0)
            close(c->shard_fds[i]);
    }
    free(c->shard_paths);
    free(c->shard_fds);
    free(c->shard_errno);
    free(c->shard_sizes);
    free(c->shard_state);
}

int trestle__entry_past_end(const trestle_checkpoint *c, const trestle__entry *e,
                            trestle_error *err)
{
    const char *path = c->shard_paths[e->shard];
    return trestle__error_set(err, TRESTLE_E_CORRUPT, 0, e->key, path, (int64_t)e->offset,
                              (int64_t)e->size,
                              "tensor '%s': bytes [%" PRIu64 ", %" PRIu64 "+%" PRIu64 ") lie past "
                              "the end of data shard %s (%" PRIu64 " bytes); entry at offset "
                              "%" PRIu64 " of %s", e->key, e->offset, e->offset, e->size, path,
                              c->shard_sizes[e->shard], (uint64_t)e->index_offset, c->index_path);
}
