/*
 * numa.c - find the GPU's NUMA node; put staging memory and workers there.
 *
 * Why. On a dual-socket host each GPU hangs off one socket's PCIe root.
 * Staging memory on the other socket makes every DMA a remote read: the
 * GPU's requests cross the socket link (UPI, Infinity Fabric) to the far
 * memory controller and the bytes cross back, sharing the link with all
 * other cross-socket traffic; a CRC32C worker on the wrong socket adds a
 * second remote pass over the same bytes. With staging on the GPU's node,
 * the DMA, the CRC pass and any dtype conversion each touch one local
 * memory controller: a staged byte goes memory -> root complex instead of
 * memory -> link -> root complex, and a busy link no longer sets the rate.
 *
 * How the restore should use it (nothing here is wired in; the calls
 * belong in engine/memory/staging.c and engine/restore/):
 *  1. Once per device restore, before staging is allocated:
 *     node = trestle__cuda_device_numa_node(device, "") and, when node >= 0,
 *     trestle__numa_node_cpus(node, "", &cpus). A host destination has no
 *     node to follow and skips all of this.
 *  2. Bind each staging area (read buffers, conversion buffers) right after
 *     it is allocated and before anything touches it:
 *     trestle__numa_bind(region, bytes, node). cudaHostRegister faults
 *     every page in when it pins them, and so do io_uring buffer
 *     registration and the first read, so the bind must come first; pages
 *     already present stay where they are, which is why a region from
 *     posix_memalign below glibc's mmap threshold (heap pages perhaps
 *     touched before) places less well than a fresh mmap. A cached area
 *     (staging.c keeps them across restores) remembers its node, and a
 *     restore to a device on another node re-makes it rather than DMA from
 *     the far socket for the rest of the plan's life.
 *  3. Where mbind is refused (EPERM under Docker's default seccomp profile,
 *     ENOSYS without CONFIG_NUMA), placement falls back to first touch,
 *     which is cudaHostRegister's, in the thread that calls
 *     trestle_restore: pin that thread for the allocation and registration
 *     only (trestle__numa_pin_thread(&cpus, &old) ... then
 *     pthread_setaffinity_np(pthread_self(), sizeof old, &old)), never
 *     for longer, since it is the caller's thread. cudaHostAlloc staging
 *     (where registering is refused) is placed the same way: the driver
 *     allocates the pages in the calling thread.
 *  4. Each worker (and each pread reader thread) calls
 *     trestle__numa_pin_thread(&cpus, NULL) first thing: its CRC32C and
 *     conversion reads of staging then stay on the node, and so does the
 *     memory it allocates for itself.
 *  5. Everything is best-effort: a -1 node, a refused mbind or an empty CPU
 *     set changes nothing but the stats, e.g. `numa_node` (-1: unknown),
 *     `numa_bound` (mbind took for every area) and `numa_pinned` (threads
 *     pinned), so a slow run on a two-socket host can be told apart from a
 *     misplaced one.
 *
 * No libnuma: the two system calls and two sysfs files needed here are a
 * page of code, and libnuma would be one more runtime dependency for every
 * consumer of libtrestle.a (and its numa_available() probe reads the same
 * files). The CUDA half (the bus id) is engine/memory/numa_cuda.c.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/mempolicy.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "numa.h"

#define ULONG_BITS (8 * sizeof(unsigned long))
#define SYSFS_FILE_MAX 65536 /* a cpulist is at most a few KiB; anything longer is not one */

/* ---- small sysfs files ---- */

/*
 * Read the whole of <sysroot><rel> into a malloc'd, NUL-terminated buffer.
 * Returns 0 and *out, or an errno (ENAMETOOLONG, the open/read errno,
 * EFBIG past SYSFS_FILE_MAX, ENOMEM).
 */
static int read_sysfs(const char *sysroot, const char *rel, char **out)
{
    char path[PATH_MAX];
    int n = snprintf(path, sizeof path, "%s%s", sysroot ? sysroot : "", rel);
    if (n < 0 || (size_t)n >= sizeof path)
        return ENAMETOOLONG;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno;
    char *buf = malloc(SYSFS_FILE_MAX + 1);
    if (!buf) {
        close(fd);
        return ENOMEM;
    }
    size_t len = 0;
    int rc = 0;
    for (;;) {
        ssize_t got = read(fd, buf + len, SYSFS_FILE_MAX + 1 - len);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            rc = errno;
            break;
        }
        if (got == 0)
            break;
        len += (size_t)got;
        if (len > SYSFS_FILE_MAX) {
            rc = EFBIG;
            break;
        }
    }
    close(fd);
    if (rc != 0) {
        free(buf);
        return rc;
    }
    buf[len] = '\0';
    *out = buf;
    return 0;
}

/* Drop the newline (and any other trailing blanks) sysfs ends a value with. */
static void trim_end(char *s)
{
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == ' ' || s[n - 1] == '\t'))
        s[--n] = '\0';
}

/*
 * A decimal number of at most 9 digits at *s (so no overflow, and no
 * CPU or node number is anywhere near it); advances *s. -1 if none.
 */
static long take_decimal(const char **s)
{
    const char *p = *s;
    long v = 0;
    int digits = 0;
    while (*p >= '0' && *p <= '9') {
        if (++digits > 9)
            return -1;
        v = v * 10 + (*p++ - '0');
    }
    if (digits == 0)
        return -1;
    *s = p;
    return v;
}

/* ---- the PCI device's node ---- */

/* Hex digits at *s, 1..maxd of them; advances *s. -1 if none or too many. */
static long long take_hex(const char **s, int maxd)
{
    const char *p = *s;
    long long v = 0;
    int digits = 0;
    for (;; p++) {
        int d;
        if (*p >= '0' && *p <= '9')
            d = *p - '0';
        else if (*p >= 'a' && *p <= 'f')
            d = *p - 'a' + 10;
        else if (*p >= 'A' && *p <= 'F')
            d = *p - 'A' + 10;
        else
            break;
        if (++digits > maxd)
            return -1;
        v = v * 16 + d;
    }
    if (digits == 0)
        return -1;
    *s = p;
    return v;
}

/*
 * "domain:bus:device.function" in any case, domain 1-8 hex digits, into
 * the kernel's pci_name() spelling ("%04x:%02x:%02x.%d") in out. Strict,
 * because the result becomes a path: nothing else may follow (no "/..").
 */
static bool pci_sysfs_name(const char *id, char out[TRESTLE__PCI_ID_MAX])
{
    const char *s = id;
    long long dom = take_hex(&s, 8);
    if (dom < 0 || *s++ != ':')
        return false;
    long long bus = take_hex(&s, 2);
    if (bus < 0 || *s++ != ':')
        return false;
    long long dev = take_hex(&s, 2);
    if (dev < 0 || dev > 0x1f || *s++ != '.')
        return false;
    long long fn = take_hex(&s, 1);
    if (fn < 0 || fn > 7 || *s != '\0')
        return false;
    snprintf(out, TRESTLE__PCI_ID_MAX, "%04x:%02x:%02x.%x", (unsigned)dom, (unsigned char)bus,
             (unsigned char)dev, (unsigned char)fn);
    return true;
}

int trestle__numa_pci_node(const char *bus_id, const char *sysroot)
{
    char name[TRESTLE__PCI_ID_MAX];
    char rel[96];
    char *text = NULL;
    if (!bus_id || !pci_sysfs_name(bus_id, name))
        return -1;
    snprintf(rel, sizeof rel, "/sys/bus/pci/devices/%s/numa_node", name);
    if (read_sysfs(sysroot, rel, &text) != 0)
        return -1;
    trim_end(text);
    /* The kernel writes "%d": -1 for "no node", else the node. */
    const char *p = text;
    long node = take_decimal(&p);
    if (node < 0 || *p != '\0' || node >= TRESTLE__NUMA_MAX_NODES)
        node = -1;
    free(text);
    return (int)node;
}

/* ---- a node's CPUs ---- */

/*
 * The kernel's list format as sysfs prints it (%*pbl): comma-separated
 * "N" or "N-M" with N <= M, or nothing at all. The stride forms that the
 * kernel accepts on input ("0-31:2/4") are never printed, so they are
 * refused with the rest of the garbage. Returns false, set untouched, on
 * anything else.
 */
static bool parse_cpulist(const char *s, cpu_set_t *out)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    while (*s != '\0') {
        long lo = take_decimal(&s);
        long hi = lo;
        if (lo < 0)
            return false;
        if (*s == '-') {
            s++;
            hi = take_decimal(&s);
            if (hi < lo)
                return false; /* also a missing upper bound (-1) */
        }
        for (long c = lo; c <= hi && c < CPU_SETSIZE; c++)
            CPU_SET((int)c, &set);
        if (*s == ',' && s[1] != '\0')
            s++;
        else if (*s != '\0')
            return false;
    }
    *out = set;
    return true;
}

int trestle__numa_node_cpus(int node, const char *sysroot, cpu_set_t *cpus)
{
    char rel[64];
    char *text = NULL;
    if (node < 0 || node >= TRESTLE__NUMA_MAX_NODES)
        return EINVAL;
    snprintf(rel, sizeof rel, "/sys/devices/system/node/node%d/cpulist", node);
    int rc = read_sysfs(sysroot, rel, &text);
    if (rc != 0)
        return rc;
    trim_end(text);
    rc = parse_cpulist(text, cpus) ? 0 : EINVAL;
    free(text);
    return rc;
}

/* ---- placing memory and threads ---- */

int trestle__numa_bind(void *p, size_t len, int node)
{
    long page = sysconf(_SC_PAGESIZE);
    if (!p || node < 0 || node >= TRESTLE__NUMA_MAX_NODES || page <= 0 ||
        (uintptr_t)p % (uintptr_t)page != 0)
        return EINVAL;
    if (len == 0)
        return 0; /* no pages to place, as mbind itself says */
    unsigned long mask[TRESTLE__NUMA_MAX_NODES / ULONG_BITS] = { 0 };
    mask[(size_t)node / ULONG_BITS] = 1UL << ((size_t)node % ULONG_BITS);
    /* The kernel reads maxnode - 1 bits, an off-by-one kept for its ABI
     * (libnuma passes its bit count + 1 too). Bits past the kernel's own
     * MAX_NUMNODES must be clear, so the mask ends with the word holding
     * `node`: only a node this kernel cannot have is refused (EINVAL). */
    unsigned long maxnode = ((size_t)node / ULONG_BITS + 1) * ULONG_BITS + 1;
    if (syscall(SYS_mbind, p, len, MPOL_PREFERRED, mask, maxnode, 0UL) != 0)
        return errno;
    return 0;
}

int trestle__numa_pin_thread(const cpu_set_t *cpus, cpu_set_t *old)
{
    cpu_set_t allowed, want;
    pthread_t self = pthread_self();
    int rc = pthread_getaffinity_np(self, sizeof allowed, &allowed);
    if (rc != 0)
        return rc;
    CPU_AND(&want, &allowed, cpus);
    if (CPU_COUNT(&want) == 0)
        return EINVAL; /* the node's CPUs are all outside what this thread may use */
    rc = pthread_setaffinity_np(self, sizeof want, &want);
    if (rc == 0 && old)
        *old = allowed;
    return rc;
}
