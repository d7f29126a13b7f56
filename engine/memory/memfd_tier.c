/*
 * memfd_tier.c - sealed memfds for the host tier of `trestle serve`
 * (engine/memory/memfd_tier.h): created, every page allocated (a slice at a
 * time, between a server's other work), sealed once filled, mapped
 * read-only by clients.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "memfd_tier.h"

#ifndef MFD_HUGETLB
#define MFD_HUGETLB 0x0004U
#endif

#define SEALS (F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL)

static void human(uint64_t b, char *buf, size_t cap)
{
    if (b >= (1ull << 30))
        snprintf(buf, cap, "%.2f GiB", (double)b / (double)(1ull << 30));
    else if (b >= (1ull << 20))
        snprintf(buf, cap, "%.2f MiB", (double)b / (double)(1ull << 20));
    else
        snprintf(buf, cap, "%.2f KiB", (double)b / 1024.0);
}

/* Whether the kernel puts transparent huge pages on shmem when advised:
 * shmem_enabled's bracketed choice is always, within_size or advise. */
static bool shmem_thp(void)
{
    char line[256];
    FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/shmem_enabled", "re");
    if (!f)
        return false;
    bool yes = false;
    if (fgets(line, sizeof line, f))
        yes = strstr(line, "[always]") || strstr(line, "[within_size]") ||
              strstr(line, "[advise]") || strstr(line, "[force]");
    fclose(f);
    return yes;
}

/* Whether the 2 MiB hugetlb pool has `pages` pages free and unreserved
 * now (another process may still take them first: the fill falls back). */
static bool hugetlb_room(uint64_t pages)
{
    static const char dir[] = "/sys/kernel/mm/hugepages/hugepages-2048kB/";
    const char *names[2] = { "free_hugepages", "resv_hugepages" };
    unsigned long long v[2] = { 0, 0 };
    for (int i = 0; i < 2; i++) {
        char path[128];
        snprintf(path, sizeof path, "%s%s", dir, names[i]);
        FILE *f = fopen(path, "re");
        if (!f)
            return false;
        int ok = fscanf(f, "%llu", &v[i]);
        fclose(f);
        if (ok != 1)
            return false;
    }
    return v[0] >= v[1] && v[0] - v[1] >= pages;
}

/* memfd_create + size; -1 with errno. */
static int make(const char *name, unsigned flags, uint64_t bytes)
{
    int fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING | flags);
    if (fd < 0)
        return -1;
    if (ftruncate(fd, (off_t)bytes) == 0)
        return fd;
    int e = errno;
    close(fd);
    errno = e;
    return -1;
}

static int host_error(int e, uint64_t bytes, const char *what, trestle_error *err)
{
    char h[32];
    human(bytes, h, sizeof h);
    if (e == ENOSPC || e == ENOMEM || e == EFBIG)
        return trestle__error_set(err, TRESTLE_E_NOMEM, e, NULL, NULL, -1, (int64_t)bytes,
                                  "host tier: cannot allocate %s (%llu bytes): %s", h,
                                  (unsigned long long)bytes, strerror(e));
    return trestle__error_set(err, TRESTLE_E_IO, e, NULL, NULL, -1, (int64_t)bytes,
                              "host tier: %s of %s (%llu bytes): %s", what, h,
                              (unsigned long long)bytes, strerror(e));
}

/* The region on ordinary pages, nothing allocated yet. */
static int open_small(trestle__memfd *m, trestle_error *err)
{
    long page = sysconf(_SC_PAGESIZE);
    uint64_t small = (m->want + (uint64_t)page - 1) / (uint64_t)page * (uint64_t)page;
    if (small == 0)
        small = (uint64_t)page; /* a mapping needs a page, even for no tensor bytes */
    int fd = make(m->name, 0, small);
    if (fd < 0)
        return host_error(errno, small, "memfd", err);
    m->fd = fd;
    m->bytes = small;
    m->filled = 0;
    /* Only a region that would have had huge pages is advised them. */
    bool thp = m->pages == TRESTLE__MEMFD_PAGES_HUGETLB && shmem_thp();
    m->pages = thp ? TRESTLE__MEMFD_PAGES_THP : TRESTLE__MEMFD_PAGES_NORMAL;
    return TRESTLE_OK;
}

int trestle__memfd_open(const char *name, uint64_t bytes, bool try_huge, trestle__memfd *out,
                        trestle_error *err)
{
    memset(out, 0, sizeof *out);
    out->fd = -1;
    out->want = bytes;
    snprintf(out->name, sizeof out->name, "%s", name);
    if (try_huge) {
        uint64_t huge = (bytes + TRESTLE__MEMFD_HUGE_BYTES - 1) / TRESTLE__MEMFD_HUGE_BYTES *
                        TRESTLE__MEMFD_HUGE_BYTES;
        if (huge == 0)
            huge = TRESTLE__MEMFD_HUGE_BYTES;
        int fd = hugetlb_room(huge / TRESTLE__MEMFD_HUGE_BYTES) ? make(name, MFD_HUGETLB, huge)
                                                                 : -1;
        out->pages = TRESTLE__MEMFD_PAGES_HUGETLB;
        if (fd >= 0) {
            out->fd = fd;
            out->bytes = huge;
            return TRESTLE_OK;
        }
        /* No pool, or too small a pool: ordinary pages, transparent huge ones
         * advised. */
    }
    return open_small(out, err);
}

int trestle__memfd_fill(trestle__memfd *m, uint64_t chunk, trestle_error *err)
{
    uint64_t n = m->bytes - m->filled < chunk ? m->bytes - m->filled : chunk;
    int rc;
    if (n == 0)
        return TRESTLE_OK;
    do
        rc = fallocate(m->fd, 0, (off_t)m->filled, (off_t)n);
    while (rc != 0 && errno == EINTR);
    if (rc == 0) {
        m->filled += n;
        return TRESTLE_OK;
    }
    int e = errno;
    if (m->pages == TRESTLE__MEMFD_PAGES_HUGETLB) {
        /* The pool is too small: its pages go back with the descriptor. */
        close(m->fd);
        m->fd = -1;
        return open_small(m, err);
    }
    return host_error(e, m->bytes, "allocating a memfd", err);
}

/* The first number in `path` (or "max"); false when unreadable. */
static bool read_u64(const char *path, uint64_t *out, bool *unlimited)
{
    char line[64];
    FILE *f = fopen(path, "re");
    if (!f)
        return false;
    bool ok = fgets(line, sizeof line, f) != NULL;
    fclose(f);
    *unlimited = ok && strncmp(line, "max", 3) == 0;
    unsigned long long v = 0;
    if (ok && !*unlimited)
        ok = sscanf(line, "%llu", &v) == 1;
    *out = v;
    return ok;
}

/* Lower *avail to the room under the limit of cgroup `cg` and each of its
 * ancestors, below `root` (v2: memory.max/current; v1: memory.limit_in_bytes
 * /usage_in_bytes). */
static void cgroup_room(const char *root, bool v2, char *cg, uint64_t *avail, bool *any,
                        char *source, size_t cap)
{
    for (;;) {
        char lim_path[PATH_MAX], use_path[PATH_MAX];
        uint64_t lim, use;
        bool unlimited, u2;
        snprintf(lim_path, sizeof lim_path, "%s%s/%s", root, cg,
                 v2 ? "memory.max" : "memory.limit_in_bytes");
        snprintf(use_path, sizeof use_path, "%s%s/%s", root, cg,
                 v2 ? "memory.current" : "memory.usage_in_bytes");
        /* v1 says "no limit" with a number near 2^63. */
        if (read_u64(lim_path, &lim, &unlimited) && !unlimited && lim < (1ull << 62) &&
            read_u64(use_path, &use, &u2)) {
            uint64_t room = use < lim ? lim - use : 0;
            if (!*any || room < *avail) {
                *avail = room;
                snprintf(source, cap, "the %s of cgroup %s", v2 ? "memory.max" : "memory limit",
                         cg[0] ? cg : "/");
            }
            *any = true;
        }
        char *slash = strrchr(cg, '/');
        if (!slash || !cg[0])
            return;
        *slash = 0; /* the parent ("" is the root) */
    }
}

bool trestle__host_room(uint64_t *avail, char *source, size_t cap)
{
    bool any = false;
    char line[PATH_MAX + 64];
    FILE *f = fopen("/proc/meminfo", "re");
    while (f && fgets(line, sizeof line, f)) {
        unsigned long long kb;
        if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1) {
            *avail = (uint64_t)kb * 1024;
            snprintf(source, cap, "MemAvailable in /proc/meminfo");
            any = true;
            break;
        }
    }
    if (f)
        fclose(f);
    f = fopen("/proc/self/cgroup", "re");
    while (f && fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = 0;
        if (strncmp(line, "0::", 3) == 0) {
            cgroup_room("/sys/fs/cgroup", true, line + 3, avail, &any, source, cap);
        } else {
            char *ctl = strchr(line, ':'), *path = ctl ? strchr(ctl + 1, ':') : NULL;
            if (path && (size_t)(path - ctl - 1) == strlen("memory") &&
                strncmp(ctl + 1, "memory", 6) == 0)
                cgroup_room("/sys/fs/cgroup/memory", false, path + 1, avail, &any, source, cap);
        }
    }
    if (f)
        fclose(f);
    return any;
}

int trestle__memfd_seal(int fd, trestle_error *err)
{
    if (fcntl(fd, F_ADD_SEALS, SEALS) == 0)
        return TRESTLE_OK;
    int e = errno;
    if (e == EBUSY)
        return trestle__error_set(err, TRESTLE_E_INVALID_ARG, e, NULL, NULL, -1, -1,
                                  "cannot seal the memory: a process still maps it writable "
                                  "(the preload must unmap it before it commits)");
    return trestle__error_set(err, TRESTLE_E_IO, e, NULL, NULL, -1, -1, "sealing the memory: %s",
                              strerror(e));
}

int trestle__memfd_reopen_readonly(int fd)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    return open(path, O_RDONLY | O_CLOEXEC);
}

int trestle__memfd_check_sealed(int fd, uint64_t bytes, const char *what, trestle_error *err)
{
    struct stat st;
    int seals = fcntl(fd, F_GET_SEALS);
    if (seals < 0)
        return trestle__error_set(err, TRESTLE_E_CORRUPT, errno, NULL, NULL, -1, -1,
                                  "%s: the memory it sent is not a sealable memfd (%s)", what,
                                  strerror(errno));
    if ((seals & SEALS) != SEALS)
        return trestle__error_simple(err, TRESTLE_E_CORRUPT, "%s: the memory it sent lacks "
                                     "seals (has 0x%x; needs " TRESTLE__MEMFD_SEALS_NAMES "): "
                                     "another process could change it", what, seals);
    if (fstat(fd, &st) != 0 || (uint64_t)st.st_size != bytes)
        return trestle__error_simple(err, TRESTLE_E_CORRUPT, "%s: the memory it sent is %lld "
                                     "bytes, not the %llu its manifest says", what,
                                     (long long)st.st_size, (unsigned long long)bytes);
    return TRESTLE_OK;
}

void *trestle__memfd_map(int fd, uint64_t bytes, bool writable)
{
    void *p = mmap(NULL, (size_t)bytes, writable ? PROT_READ | PROT_WRITE : PROT_READ, MAP_SHARED,
                   fd, 0);
    if (p == MAP_FAILED)
        return NULL;
    /* Harmless where shmem gets no transparent huge pages; fewer TLB
     * misses (and page faults) where it does. */
    madvise(p, (size_t)bytes, MADV_HUGEPAGE);
    return p;
}
