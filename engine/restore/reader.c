/*
 * reader.c - what the two read backends (io_uring.c, io_pread.c) share
 * (reader.h): opening and freeing the common reader state, O_DIRECT fds
 * opened on first use, the aligned range of a read, the accounting of one
 * read(2)-like result (retries, short reads, O_DIRECT refused), and the
 * sticky error that names the shard file and the offset.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "reader.h"

/* The reader fields common to both backends. false: out of memory. */
static bool base_init(trestle__reader *r, const trestle__reader_config *cfg)
{
    const trestle_checkpoint *c = cfg->ckpt;
    size_t n = c->num_shards > 0 ? (size_t)c->num_shards : 1;
    memset(r, 0, sizeof *r);
    r->ckpt = c;
    r->faults = cfg->faults;
    trestle_error_clear(&r->err);
    r->direct_fds = malloc(n * sizeof *r->direct_fds);
    r->direct_off = calloc(n, 1);
    if (!r->direct_fds || !r->direct_off)
        return false;
    for (size_t s = 0; s < n; s++)
        r->direct_fds[s] = TRESTLE__DIRECT_UNTRIED;
    return true;
}

void trestle__reader_base_free(trestle__reader *r)
{
    for (int s = 0; r->direct_fds && s < r->ckpt->num_shards; s++)
        if (r->direct_fds[s] >= 0)
            close(r->direct_fds[s]);
    free(r->direct_fds);
    free(r->direct_off);
    r->direct_fds = NULL;
    r->direct_off = NULL;
}

void *trestle__reader_base_open(trestle__reader *r, const trestle__reader_config *cfg,
                                size_t bytes, trestle_error *err)
{
    bool base_ok = base_init(r, cfg);
    void *state = calloc(1, bytes);
    if (!state || !base_ok) {
        free(state);
        trestle__reader_base_free(r);
        trestle__error_simple(err, TRESTLE_E_NOMEM, "out of memory");
        return NULL;
    }
    return state;
}

bool trestle__direct_open(trestle__reader *r, int s)
{
    if (r->direct_fds[s] != TRESTLE__DIRECT_UNTRIED)
        return false;
    /* The name is opened again (O_DIRECT is per open file): O_NONBLOCK so
     * that a FIFO put there since the plan opened the shard cannot block,
     * and only the very file the plan opened is used; anything else reads
     * buffered through the plan's own descriptor. */
    int fd = open(r->ckpt->shard_paths[s], O_RDONLY | O_DIRECT | O_CLOEXEC | O_NONBLOCK);
    int plan_fd = __atomic_load_n(&r->ckpt->shard_fds[s], __ATOMIC_ACQUIRE);
    struct stat st, orig;
    if (fd >= 0 && (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || plan_fd < 0 ||
                    fstat(plan_fd, &orig) != 0 || st.st_dev != orig.st_dev ||
                    st.st_ino != orig.st_ino)) {
        close(fd);
        fd = -1;
    }
    if (fd >= 0) /* io_uring would fail reads of an O_NONBLOCK file with EAGAIN */
        (void)fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    r->direct_fds[s] = fd >= 0 ? fd : TRESTLE__DIRECT_REFUSED;
    return fd >= 0;
}

void trestle__read_prepare(trestle__read *rq, bool direct)
{
    rq->direct = direct;
    rq->was_direct = direct;
    rq->done = 0;
    rq->iov_at = 0;
    rq->retries = 0;
    rq->status = TRESTLE_OK;
    rq->sys_errno = 0;
    if (direct) {
        rq->skip = rq->offset % TRESTLE__DIO_ALIGN;
        rq->io_offset = rq->offset - rq->skip;
        rq->io_length = (rq->skip + rq->length + TRESTLE__DIO_ALIGN - 1) &
                        ~(uint64_t)(TRESTLE__DIO_ALIGN - 1);
    } else {
        rq->skip = 0;
        rq->io_offset = rq->offset;
        rq->io_length = rq->length;
    }
}


int64_t trestle__read_filter(const trestle__reader *r, const trestle__read *rq, int64_t res)
{
    if (__builtin_expect(r->faults != NULL, 0))
        res = trestle__fault_read(r->faults, rq->shard, rq->offset, rq->offset + rq->length,
                                  rq->io_offset + rq->done, res);
    return res;
}

enum trestle__read_step trestle__read_step(trestle__read *rq, int64_t res)
{
    if (res == -EINTR || res == -EAGAIN) {
        if (++rq->retries <= TRESTLE__READ_RETRIES)
            return TRESTLE__READ_AGAIN;
        rq->status = TRESTLE_E_IO;
        rq->sys_errno = (int)-res;
        return TRESTLE__READ_FAILED;
    }
    if (res == -EINVAL && rq->direct) {
        if (rq->done == 0)
            trestle__read_prepare(rq, false);
        else
            rq->direct = false;
        return TRESTLE__READ_NO_DIRECT;
    }
    if (res < 0) {
        rq->status = TRESTLE_E_IO;
        rq->sys_errno = (int)-res;
        return TRESTLE__READ_FAILED;
    }
    if (res == 0) {
        rq->status = TRESTLE_E_SHORT_READ;
        return TRESTLE__READ_FAILED;
    }
    rq->done += (uint64_t)res;
    rq->retries = 0;
    /* Scattered: move the iovecs on past the bytes that arrived, so that
     * the rest can be asked for again after a short read. */
    for (uint64_t left = (uint64_t)res; rq->iov && left > 0 && rq->iov_at < rq->niov;) {
        struct iovec *v = &rq->iov[rq->iov_at];
        if (left < v->iov_len) {
            v->iov_base = (uint8_t *)v->iov_base + left;
            v->iov_len -= left;
            break;
        }
        left -= v->iov_len;
        rq->iov_at++;
    }
    if (rq->done >= rq->skip + rq->length)
        return TRESTLE__READ_DONE;
    if (rq->direct && rq->done % TRESTLE__DIO_ALIGN != 0)
        rq->direct = false;
    return TRESTLE__READ_AGAIN;
}

int trestle__reader_fail(trestle__reader *r, const trestle__read *rq)
{
    const char *path = r->ckpt->shard_paths[rq->shard];
    uint64_t at = rq->io_offset + rq->done;
    struct stat st;
    char why[64] = "";

    if (at < rq->offset)
        at = rq->offset;

    if (r->status != TRESTLE_OK)
        return r->status;
    if (rq->status == TRESTLE_E_SHORT_READ) {
        int fd = r->ckpt->shard_fds[rq->shard];
        if (fd >= 0 && fstat(fd, &st) == 0 && st.st_size >= 0 && (uint64_t)st.st_size < at)
            at = (uint64_t)st.st_size;
        trestle__error_set(&r->err, TRESTLE_E_SHORT_READ, 0, NULL, path, (int64_t)at,
                           (int64_t)(rq->offset + rq->length - at),
                           "unexpected end of file in %s at offset %" PRIu64 " (the file was "
                           "shorter than the index says; was it truncated?)", path, at);
    } else {
        if (rq->retries > TRESTLE__READ_RETRIES)
            snprintf(why, sizeof why, " (still failing after %u retries)", TRESTLE__READ_RETRIES);
        trestle__error_set(&r->err, rq->status, rq->sys_errno, NULL, path, (int64_t)at,
                           (int64_t)(rq->offset + rq->length - at),
                           "reading %s at offset %" PRIu64 ": %s%s", path, at,
                           rq->sys_errno ? strerror(rq->sys_errno) : "failed", why);
    }
    r->status = rq->status;
    r->failed = rq;
    return r->status;
}
