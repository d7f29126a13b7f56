/*
 * fault.h - fault injection for the read path: the seam tests/test_faults.c
 * uses to prove that an EIO, a short read, EINTR/EAGAIN, end of file, a
 * failed staging allocation or a refused io_uring each end the way they
 * should (a clear error, or a retry that succeeds), with nothing leaked
 * and nothing hung.
 *
 * A fault plan is one small caller-owned struct attached to a plan with
 * trestle__plan_set_faults() (engine/plan/plan.h); it is internal (not in trestle.h, not
 * exported) and NULL by default, so a restore without one pays a single
 * NULL test per read result. There is no global state: each plan carries
 * its own. The hooks:
 *   - both readers pass every raw read result through trestle__fault_read()
 *     (reader.h: trestle__read_filter) before trestle__read_step();
 *   - trestle__reader_open_uring() fails with uring_setup_errno as a
 *     refused io_uring_setup(2) would;
 *   - trestle__staging_get() fails the read buffers' allocation when staging_nomem;
 *   - a device restore reads the GPU's NUMA node under `sysroot` (engine/memory/numa.h).
 */
#ifndef TRESTLE_FAULT_H
#define TRESTLE_FAULT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

/* What happens to the read results that reach byte `at`. */
enum trestle__fault_kind {
    TRESTLE__FAULT_NONE = 0,  /* reads are left alone */
    TRESTLE__FAULT_EIO,       /* the read stops short of `at`, the next one fails with EIO */
    TRESTLE__FAULT_SHORT,     /* a read covering `at` returns half of what it got */
    TRESTLE__FAULT_EOF,       /* the read stops short of `at`, the next one returns 0 */
    TRESTLE__FAULT_EINTR,     /* the read stops short of `at`, the next one fails with EINTR */
    TRESTLE__FAULT_EAGAIN     /* the read stops short of `at`, the next one fails with EAGAIN */
};

typedef struct trestle__faults {
    /* Read faults hit reads of shard `shard` whose requested bytes contain
     * file offset `at` (never the O_DIRECT alignment padding around them).
     * Every kind but SHORT places the fault exactly at `at`: the read that
     * covers it first returns the bytes before `at`, as a disk with a bad
     * sector does, and the read from `at` on gets the fault. */
    int read_fault;           /* enum trestle__fault_kind */
    int shard;                /* data shard index */
    uint64_t at;              /* file offset in that shard */
    unsigned times;           /* results to corrupt at most (EINTR/EAGAIN/SHORT are
                                 transient: the restore must still succeed) */
    atomic_uint injected;     /* faults injected so far, of every kind (tests assert > 0) */
    bool staging_nomem;       /* the read buffers' allocation fails, host or pinned alike */
    int uring_setup_errno;    /* io_uring setup fails with this errno, e.g. EPERM; 0: no */
    const char *sysroot;      /* NUMA lookups read sysfs under this fake root, not "/" */
} trestle__faults;

/* Count one injection if fewer than `times` were; false when the budget is spent. */
bool trestle__fault_take(trestle__faults *f);

/*
 * The result `res` (bytes, or -errno) of a read of shard `shard` that asked
 * for bytes from file offset `start` on, for a request whose wanted bytes
 * are [lo, hi): the result as the fault plan rewrites it. Thread-safe (the
 * pread backend calls it from several threads).
 */
int64_t trestle__fault_read(trestle__faults *f, int shard, uint64_t lo, uint64_t hi,
                            uint64_t start, int64_t res);

#endif /* TRESTLE_FAULT_H */
