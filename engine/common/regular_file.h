/*
 * regular_file.h - opening a file a user named, for reading, in a way that
 * cannot block (engine/common/regular_file.c). Every file the library reads
 * whole or maps (an index, the `checkpoint` state file, a graph) and every
 * data shard goes through one rule: open with O_NONBLOCK, so a FIFO with
 * no writer returns at once, then fstat() the descriptor and refuse
 * anything but a regular file, naming what it is.
 */
#ifndef TRESTLE_REGULAR_FILE_H
#define TRESTLE_REGULAR_FILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "trestle.h"

/* How a caller names its file in messages, and how big it may be. */
typedef struct trestle__file_rule {
    const char *what;     /* e.g. "the checkpoint state file": messages then say "cannot read
                             WHAT PATH: ..."; NULL: "cannot open PATH" / "cannot use PATH" */
    uint64_t max_bytes;   /* a larger file is TRESTLE_E_LIMIT; 0: no limit */
    const char *limit;    /* why, for that message: "trestle reads indexes up to 4 GiB" */
    bool bulk;            /* trestle__file_read_regular's buffer from trestle__bulk_calloc()
                             (free it with trestle__bulk_free()): a large file lands in huge
                             pages, a fault per 2 MiB instead of per 4 KiB (an index of
                             100,000 tensors is ~5 MB); else malloc'd */
} trestle__file_rule;

/*
 * Open `path` read-only without blocking and keep it only if it is a
 * regular file within rule->max_bytes. On success *fd is a blocking
 * descriptor (close it) and *size the file's size. Errors, each naming
 * the file (err->path) and leaving nothing open:
 *   TRESTLE_E_NOT_FOUND (ENOENT) or TRESTLE_E_IO with the open's errno;
 *   TRESTLE_E_IO "...: it is a FIFO; trestle reads only regular files"
 *     (a directory: sys_errno EISDIR, others 0);
 *   TRESTLE_E_LIMIT "...: it is N bytes; <rule->limit>".
 */
int trestle__file_open_regular(const char *path, const trestle__file_rule *rule, int *fd,
                               uint64_t *size, trestle_error *err);

/*
 * Read a regular file whole (trestle__file_open_regular, then pread to its
 * size, retrying EINTR and short reads). *out is malloc'd (or bulk, as the
 * rule says) with a NUL after
 * the *len bytes. Adds TRESTLE_E_NOMEM, TRESTLE_E_IO for a failed read and
 * TRESTLE_E_SHORT_READ when the file shrank under it, both with the offset.
 */
int trestle__file_read_regular(const char *path, const trestle__file_rule *rule, char **out,
                               size_t *len, trestle_error *err);

/* "a directory", "a FIFO", ... for an st_mode (the type of a file refused). */
const char *trestle__file_kind(unsigned mode);

#endif /* TRESTLE_REGULAR_FILE_H */
