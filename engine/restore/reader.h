/*
 * reader.h - the internal reader interface shared by the io_uring reader
 * (engine/restore/io_uring.c), the pread thread-pool fallback
 * (engine/restore/io_pread.c) and the reader of remote objects
 * (engine/restore/io_remote.c: ranged HTTP GETs, for a checkpoint opened
 * from a URL).
 *
 * Modelled on Redis's rio: a small table of function pointers, a union of
 * backend state, and a sticky error. The contract is "complete or error":
 * a read handed back by reap() holds every byte that was asked for, or the
 * reader has failed and says why. Short reads, EINTR and EAGAIN are retried
 * inside the backend (EINTR and EAGAIN at most TRESTLE__READ_RETRIES times
 * in a row without progress, so a stuck device cannot spin a thread
 * forever); end of file before the last requested byte becomes
 * TRESTLE_E_SHORT_READ naming the shard file and the offset where the data
 * ran out. Once a reader has failed it stays failed: every later call
 * returns the same code.
 *
 * A buffered read may scatter its bytes over an iovec array (readv(2)),
 * e.g. a run of small tensors straight into their destinations.
 *
 * Reads may ask for O_DIRECT. The backend then reads the enclosing
 * 4096-aligned range into the (4096-aligned) staging buffer and reports
 * where the requested bytes start (`skip`); end of file inside the
 * alignment padding is fine. A shard whose filesystem refuses O_DIRECT
 * (open or read fails with EINVAL, e.g. tmpfs) is read buffered instead,
 * silently. Only the producing thread calls submit() and reap().
 *
 * Tests inject faults here: every raw read result passes through
 * trestle__read_filter() (a NULL test unless a fault plan is attached,
 * see fault.h) before trestle__read_step() accounts it.
 */
#ifndef TRESTLE_READER_H
#define TRESTLE_READER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sys/uio.h>

#include "checkpoint.h"
#include "fault.h"
#include "trestle.h"

#define TRESTLE__DIO_ALIGN 4096u                         /* O_DIRECT offset/length/buffer alignment */
#define TRESTLE__READ_SLACK (2 * (uint64_t)TRESTLE__DIO_ALIGN) /* extra staging bytes an aligned read may need */
#define TRESTLE__DIRECT_UNTRIED (-1)                     /* direct_fds[]: not opened yet */
#define TRESTLE__DIRECT_REFUSED (-2)                     /* direct_fds[]: O_DIRECT unusable, read buffered */
#define TRESTLE__READ_MAX_IOV 1024u /* UIO_MAXIOV: the most iovecs one readv(2) takes */
#define TRESTLE__READ_RETRIES 10000u /* EINTR/EAGAIN results in a row, without a byte read, before giving up */

/* One read: at most one staging buffer's worth of one shard file. */
typedef struct trestle__read {
    /* Set by the submitter. */
    int shard;              /* data shard index */
    uint64_t offset;        /* first requested byte in the shard file */
    uint64_t length;        /* requested bytes (> 0) */
    uint8_t *buf;           /* staging buffer (length + TRESTLE__READ_SLACK bytes, 4096-aligned),
                               or for a buffered read any memory, e.g. the destination */
    unsigned buf_index;     /* pool index: the staging buffer's registered slot */
    bool want_direct;       /* ask for O_DIRECT; the backend may read buffered instead */
    uint64_t seq;           /* submitter's tag: global read sequence number */
    size_t batch;           /* submitter's tag: plan batch the read belongs to */
    size_t extent;          /* submitter's tag: the (first) extent a destination read lands in */
    size_t span;            /* submitter's tag: extents [extent, extent + span) it lands in */
    struct iovec *iov;      /* buffered reads only, or NULL: the requested bytes land in these
                               one after another (their lengths add up to `length`) instead
                               of at buf; the backend advances them as bytes arrive */
    unsigned niov;          /* entries of iov (at most TRESTLE__READ_MAX_IOV) */
    /* Set by the backend; valid once reap() hands the read back. */
    uint64_t skip;          /* the requested bytes start at buf + skip */
    bool was_direct;        /* at least part of the data came through O_DIRECT */
    /* Backend progress. */
    bool direct;            /* the next chunk of I/O goes through the O_DIRECT fd */
    uint64_t io_offset;     /* file offset of buf[0] */
    uint64_t io_length;     /* bytes to read from io_offset */
    uint64_t done;          /* buf[0..done) holds data (or the first `done` bytes of iov) */
    unsigned iov_at;        /* iov[iov_at] is where byte `done` goes (base and length moved on) */
    unsigned retries;       /* EINTR/EAGAIN results since the last byte arrived */
    int status;             /* TRESTLE_OK, or the code it failed with */
    int sys_errno;          /* errno of a failed read */
    struct trestle__read *next; /* queue link inside the pread backend */
} trestle__read;

typedef struct trestle__reader trestle__reader;

typedef struct trestle__reader_ops {
    const char *name; /* "io_uring", "pread" */
    int kind;         /* trestle_reader_kind */
    /* Start a read. TRESTLE_OK, or the sticky error. */
    int (*submit)(trestle__reader *r, trestle__read *rq);
    /* Hand back up to `max` completed reads in done[], *n of them, waiting up
     * to timeout_ms for the first. TRESTLE_OK (maybe *n == 0), or the error. */
    int (*reap)(trestle__reader *r, trestle__read **done, unsigned max, unsigned *n,
                int timeout_ms);
    /* Wait out every read still in flight, then free everything. */
    void (*close)(trestle__reader *r);
} trestle__reader_ops;

/* What a backend needs to know when it opens. */
typedef struct trestle__reader_config {
    const trestle_checkpoint *ckpt; /* shard paths and buffered fds */
    unsigned queue_depth;           /* reads the caller keeps in flight at most */
    uint8_t *const *bufs;           /* staging buffers, to register with the kernel */
    unsigned nbufs;
    size_t buf_bytes;               /* bytes per staging buffer */
    bool expect_direct;             /* O_DIRECT reads are likely (policy not NEVER) */
    trestle__faults *faults;        /* tests only: faults to inject (fault.h), else NULL */
} trestle__reader_config;

struct trestle__reader {
    const trestle__reader_ops *ops;
    const trestle_checkpoint *ckpt;
    int *direct_fds;        /* per shard: an O_DIRECT fd, or TRESTLE__DIRECT_* */
    unsigned char *direct_off; /* per shard: 1 once a read saw O_DIRECT refused (fd kept open:
                                  reads in flight may still use it) */
    unsigned inflight;      /* submitted and not yet handed back */
    uint64_t direct_reads;  /* reads handed back that used O_DIRECT */
    int status;             /* sticky: TRESTLE_OK until the first failure */
    trestle_error err;      /* the failure, when status != TRESTLE_OK */
    char note[96];          /* a degradation worth reporting (e.g. buffers not registered), or "" */
    const trestle__read *failed; /* the read behind the sticky error, if one was */
    trestle__faults *faults; /* tests only: faults to inject (fault.h), else NULL */
    struct trestle__reader_remote {
        uint64_t requests, retries, bytes_fetched; /* HTTP requests, of them retries, bytes */
        unsigned objects_whole, objects_verified;  /* shards read whole; CRC32C'd whole */
    } remote;               /* the remote reader's counts, kept after close() for the stats */
    union {
        struct trestle__uring *uring;
        struct trestle__preader *pread;
        struct trestle__rreader *remote;
    } u;                    /* backend state */
};

/* Open a backend. TRESTLE_E_NO_IO_URING (sys_errno set) when the kernel or a
 * sandbox forbids io_uring; TRESTLE_E_NOMEM. On failure nothing is left open. */
int trestle__reader_open_uring(trestle__reader *r, const trestle__reader_config *cfg,
                               trestle_error *err);
int trestle__reader_open_pread(trestle__reader *r, const trestle__reader_config *cfg,
                               trestle_error *err);

/* The remote reader, for a checkpoint opened from a URL; `asked` is the
 * restore's reader option: AUTO or REMOTE, anything else (and REMOTE for
 * a local checkpoint) is TRESTLE_E_INVALID_ARG. Up to the store's
 * connections in flight (trestle_open_options.connections). */
int trestle__reader_open_remote(trestle__reader *r, const trestle__reader_config *cfg,
                                int asked, trestle_error *err);

/* Copy the remote reader's counts (kept in r->remote) into the stats. */
void trestle__reader_remote_stats(const trestle__reader *r, trestle_stats *st);

/* ---- helpers shared by the two backends (engine/restore/reader.c) ---- */

/* The start of every backend's open(): the common fields plus the
 * backend's zeroed state of `bytes`, or NULL (TRESTLE_E_NOMEM in err) with
 * nothing left allocated. */
void *trestle__reader_base_open(trestle__reader *r, const trestle__reader_config *cfg,
                                size_t bytes, trestle_error *err);

/* Free what trestle__reader_base_open() set up (the O_DIRECT fds). */
void trestle__reader_base_free(trestle__reader *r);

/*
 * Open shard `s` for O_DIRECT on first use. Any failure (EINVAL from tmpfs
 * and friends, or anything else) marks the shard refused, so it is read
 * buffered. Returns true when it opened a new fd (io_uring registers it).
 */
bool trestle__direct_open(trestle__reader *r, int s);

/* Fix the I/O range of a fresh read: the aligned enclosing range for
 * O_DIRECT, exactly the requested bytes otherwise. */
void trestle__read_prepare(trestle__read *rq, bool direct);

/* What a backend does after one read(2)-like result. */
enum trestle__read_step {
    TRESTLE__READ_DONE,      /* every requested byte is in */
    TRESTLE__READ_AGAIN,     /* issue the rest (rq already updated) */
    TRESTLE__READ_NO_DIRECT, /* O_DIRECT refused: mark the shard, issue the rest buffered */
    TRESTLE__READ_FAILED     /* rq->status says why */
};

/* The raw result `res` of one read(2)-like call for rq, as the reader's
 * fault plan (tests only) rewrites it; unchanged without one. */
int64_t trestle__read_filter(const trestle__reader *r, const trestle__read *rq, int64_t res);

/*
 * Account one result: `res` bytes read, or -errno. Retries EINTR/EAGAIN (up
 * to TRESTLE__READ_RETRIES in a row without progress, then it is an I/O
 * error with that errno) and short reads; a read that ends unaligned under
 * O_DIRECT continues on the buffered fd (which has no alignment rules). EOF
 * is fine once the requested bytes are in, which matters only inside
 * O_DIRECT padding.
 */
enum trestle__read_step trestle__read_step(trestle__read *rq, int64_t res);

/*
 * Record the failure of rq as the reader's sticky error; returns its code.
 * The offset is the first requested byte that did not arrive: an O_DIRECT
 * read starts at an aligned offset that may lie in the bytes before the
 * request (another tensor's), which must not be named. For end of file the
 * offset is where the data really ends now (fstat): with many reads in
 * flight, the first to fail may lie past the point where a truncated file
 * stops, and the report should name that point.
 */
int trestle__reader_fail(trestle__reader *r, const trestle__read *rq);

#endif /* TRESTLE_READER_H */
