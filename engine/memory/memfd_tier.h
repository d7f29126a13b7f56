/*
 * memfd_tier.h - the host tier of resident checkpoints (`trestle serve`):
 * anonymous shared memory (memfd) that the server creates and holds, a
 * preload fills through a writable mapping, the server then seals against
 * any write, resize or new seal, and clients map read-only.
 *
 * Sealing is the kernel's guarantee that no process, the server included,
 * can change the bytes once published: with F_SEAL_WRITE no writable
 * shared mapping or write() is possible, with F_SEAL_SHRINK a client's
 * mapping cannot lose its pages (no SIGBUS), and with F_SEAL_SEAL the
 * seals stay. A client's mapping keeps the memory alive after the server
 * exits or drops its descriptor.
 */
#ifndef TRESTLE_MEMFD_TIER_H
#define TRESTLE_MEMFD_TIER_H

#include <stdbool.h>
#include <stdint.h>

#include "trestle.h"

#define TRESTLE__MEMFD_HUGE_BYTES (2u << 20) /* hugetlb page size tried first */

/* How a region's pages are backed (the same numbers as the wire's
 * TRESTLE__PAGES_*, which engine/resident/ asserts). */
#define TRESTLE__MEMFD_PAGES_NORMAL 0  /* ordinary shmem pages */
#define TRESTLE__MEMFD_PAGES_HUGETLB 1 /* MFD_HUGETLB: 2 MiB pages from the hugetlb pool */
#define TRESTLE__MEMFD_PAGES_THP 2     /* transparent huge pages (where shmem may have them) */

/* The seals a published region carries, all of them required of it. */
#define TRESTLE__MEMFD_SEALS_NAMES "F_SEAL_WRITE, F_SEAL_SHRINK, F_SEAL_GROW and F_SEAL_SEAL"

typedef struct trestle__memfd {
    int fd;                  /* read-write, sealable, close-on-exec */
    uint64_t bytes;          /* its size: the request rounded up to whole pages */
    int pages;               /* TRESTLE__MEMFD_PAGES_*: how it is backed */
    uint64_t filled;         /* bytes allocated so far, from 0; done at `bytes` */
    uint64_t want;           /* the bytes asked for */
    char name[64];           /* shows in /proc/PID/fd */
} trestle__memfd;

/*
 * Create a memfd of at least `bytes` bytes, its pages not yet allocated:
 * from the hugetlb pool when `try_huge` (if the pool turns out to lack the
 * pages, trestle__memfd_fill() moves to ordinary pages by itself), else
 * ordinary shmem pages (with transparent huge pages advised where the
 * kernel allows them on shmem). `name` shows in /proc/PID/fd.
 * TRESTLE_OK, or TRESTLE_E_NOMEM / TRESTLE_E_IO naming the host tier and
 * the bytes. Close out->fd when done with it.
 */
int trestle__memfd_open(const char *name, uint64_t bytes, bool try_huge, trestle__memfd *out,
                        trestle_error *err);

/*
 * Allocate up to `chunk` more bytes of `m` (fallocate), so that running out
 * of memory is this call's clean error and never a SIGBUS or the OOM
 * killer later; called until m->filled == m->bytes, it lets a server
 * allocate a large region a slice at a time between other work (zeroing
 * hundreds of GB takes a minute). A hugetlb region whose pool runs out
 * starts again on ordinary pages (m->fd, bytes and pages change, filled
 * goes back to 0). TRESTLE_OK, or TRESTLE_E_NOMEM naming the host tier
 * and the bytes needed ("host tier: cannot allocate 4.00 GiB (4294967296
 * bytes): No space left on device"), TRESTLE_E_IO; m->fd stays open.
 */
int trestle__memfd_fill(trestle__memfd *m, uint64_t chunk, trestle_error *err);

/*
 * The host memory a new region may still take, in *avail: MemAvailable
 * (/proc/meminfo), and no more than the room left under the memory limit
 * of this process's cgroup and of each of its ancestors (v2 memory.max, v1
 * memory.limit_in_bytes). `source` says which bound it is ("MemAvailable
 * in /proc/meminfo", "the memory.max of cgroup /system.slice/x.service").
 * False when none can be read. Running past either bound is not an error
 * return but the OOM killer (shmem without swap cannot be reclaimed): a
 * server checks first.
 */
bool trestle__host_room(uint64_t *avail, char *source, size_t cap);

/* Seal `fd` against writes, resizing and further seals. TRESTLE_E_INVALID_ARG
 * (EBUSY) when some process still maps it writable; TRESTLE_E_IO otherwise. */
int trestle__memfd_seal(int fd, trestle_error *err);

/* A read-only descriptor of the same memory (a new open of
 * /proc/self/fd/N), for handing to clients: -1 with errno on failure. */
int trestle__memfd_reopen_readonly(int fd);

/*
 * A client's check of a descriptor it received: a memfd carrying every
 * seal above, exactly `bytes` long. TRESTLE_OK or TRESTLE_E_CORRUPT naming
 * what is missing ("memory from server S is not sealed against writes").
 */
int trestle__memfd_check_sealed(int fd, uint64_t bytes, const char *what, trestle_error *err);

/* Map `bytes` of `fd` shared, read-only (or read-write for the preload
 * that fills it), advising huge pages; NULL with errno on failure. */
void *trestle__memfd_map(int fd, uint64_t bytes, bool writable);

#endif /* TRESTLE_MEMFD_TIER_H */
