/*
 * regular_file.c - open and read a file a user named without ever
 * blocking (regular_file.h). A plain open(O_RDONLY) of a FIFO waits for a
 * writer, forever if none comes, and a read of a character device such as
 * /dev/zero never ends; both hung trestle and Python's latest_checkpoint
 * (issue 22). So the open is O_NONBLOCK, the type is taken from the
 * descriptor (fstat, not a stat of the name that could change in between),
 * and only a regular file is kept, with O_NONBLOCK cleared again so later
 * reads behave as usual. Used by engine/format/ (index, state file,
 * shards) and engine/graph/ (graph files).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bulk.h"
#include "error.h"
#include "regular_file.h"

const char *trestle__file_kind(unsigned mode)
{
    switch (mode & S_IFMT) {
    case S_IFREG: return "a regular file";
    case S_IFDIR: return "a directory";
    case S_IFIFO: return "a FIFO";
    case S_IFSOCK: return "a socket";
    case S_IFCHR: return "a character device";
    case S_IFBLK: return "a block device";
    default: return "not a regular file";
    }
}

int trestle__file_open_regular(const char *path, const trestle__file_rule *rule, int *fd,
                               uint64_t *size, trestle_error *err)
{
    const char *what = rule && rule->what ? rule->what : NULL;
    *fd = -1;
    *size = 0;
    int f = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (f < 0) {
        int e = errno;
        int code = e == ENOENT ? TRESTLE_E_NOT_FOUND : TRESTLE_E_IO;
        if (what)
            return trestle__error_set(err, code, e, NULL, path, -1, -1, "cannot read %s %s: %s",
                                      what, path, strerror(e));
        return trestle__error_set(err, code, e, NULL, path, -1, -1, "cannot open %s: %s", path,
                                  strerror(e));
    }
    struct stat st;
    int rc = TRESTLE_OK;
    if (fstat(f, &st) != 0) {
        int e = errno;
        rc = trestle__error_set(err, TRESTLE_E_IO, e, NULL, path, -1, -1, "cannot stat %s: %s",
                                path, strerror(e));
    } else if (!S_ISREG(st.st_mode)) {
        int e = S_ISDIR(st.st_mode) ? EISDIR : 0;
        const char *kind = trestle__file_kind(st.st_mode);
        rc = what ? trestle__error_set(err, TRESTLE_E_IO, e, NULL, path, -1, -1,
                                       "cannot read %s %s: it is %s; trestle reads only "
                                       "regular files", what, path, kind)
                  : trestle__error_set(err, TRESTLE_E_IO, e, NULL, path, -1, -1,
                                       "cannot use %s: it is %s; trestle reads only regular "
                                       "files", path, kind);
    } else if (rule && rule->max_bytes && (uint64_t)st.st_size > rule->max_bytes) {
        uint64_t n = (uint64_t)st.st_size;
        rc = what ? trestle__error_set(err, TRESTLE_E_LIMIT, 0, NULL, path, -1, (int64_t)n,
                                       "cannot read %s %s: it is %" PRIu64 " bytes; %s", what,
                                       path, n, rule->limit)
                  : trestle__error_set(err, TRESTLE_E_LIMIT, 0, NULL, path, -1, (int64_t)n,
                                       "cannot use %s: it is %" PRIu64 " bytes; %s", path, n,
                                       rule->limit);
    }
    if (rc != TRESTLE_OK) {
        close(f);
        return rc;
    }
    (void)fcntl(f, F_SETFL, fcntl(f, F_GETFL) & ~O_NONBLOCK);
    *fd = f;
    *size = (uint64_t)st.st_size;
    return TRESTLE_OK;
}

int trestle__file_read_regular(const char *path, const trestle__file_rule *rule, char **out,
                               size_t *len, trestle_error *err)
{
    int fd;
    uint64_t size;
    *out = NULL;
    *len = 0;
    int rc = trestle__file_open_regular(path, rule, &fd, &size, err);
    if (rc != TRESTLE_OK)
        return rc;
    if (size >= SIZE_MAX) {
        close(fd);
        return trestle__error_set(err, TRESTLE_E_LIMIT, 0, NULL, path, -1, (int64_t)size,
                                  "cannot read %s: %" PRIu64 " bytes do not fit in memory",
                                  path, size);
    }
    size_t n = (size_t)size, got = 0;
    char *buf = rule->bulk ? trestle__bulk_calloc(n + 1, 1) : malloc(n + 1);
    if (!buf) {
        close(fd);
        return trestle__error_set(err, TRESTLE_E_NOMEM, ENOMEM, NULL, path, -1, (int64_t)size,
                                  "out of memory reading %s (%zu bytes)", path, n);
    }
    while (got < n) {
        ssize_t r = pread(fd, buf + got, n - got, (off_t)got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            int e = r < 0 ? errno : 0;
            if (rule->bulk)
                trestle__bulk_free(buf);
            else
                free(buf);
            close(fd);
            return trestle__error_set(err, r < 0 ? TRESTLE_E_IO : TRESTLE_E_SHORT_READ, e, NULL,
                                      path, (int64_t)got, -1, "%s: read failed at offset %zu: %s",
                                      path, got, r < 0 ? strerror(e) : "unexpected end of file");
        }
        got += (size_t)r;
    }
    close(fd);
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return TRESTLE_OK;
}
