/*
 * numa.h - where the GPU sits on a multi-socket host, and putting staging
 * memory and worker threads there (engine/memory/numa.c, engine/memory/numa_cuda.c).
 *
 * Every call is best-effort: a host without NUMA, a container that refuses
 * mbind or a CPU set, or a sysfs without the file all give "unknown" or an
 * errno, never a restore error. The caller notes the outcome in its stats.
 *
 * `sysroot` is prefixed to every sysfs path: "" in production, a scratch
 * directory holding a fake sys/ tree in tests. Nothing here keeps state.
 */
#ifndef TRESTLE_NUMA_H
#define TRESTLE_NUMA_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <sched.h>
#include <stddef.h>

#define TRESTLE__NUMA_MAX_NODES 1024 /* the kernel's MAX_NUMNODES ceiling (NODES_SHIFT 10) */
#define TRESTLE__PCI_ID_MAX 32       /* bytes for a bus id, as cudaDeviceGetPCIBusId's buffer */

/*
 * The NUMA node of the PCI device `bus_id` ("0000:1B:00.0", as
 * cudaDeviceGetPCIBusId gives it; any case, a domain of 1-8 hex digits,
 * as nvidia-smi's "00000000:1b:00.0"), read from
 * <sysroot>/sys/bus/pci/devices/<id>/numa_node with <id> in sysfs's own
 * spelling (lowercase, domain %04x). Returns the node (0 or more), or -1
 * when the id is malformed, the file is missing or holds anything but a
 * node number below TRESTLE__NUMA_MAX_NODES, or the kernel says -1 (no
 * NUMA, or firmware that does not tell).
 */
int trestle__numa_pci_node(const char *bus_id, const char *sysroot);

/*
 * The CPUs of `node`, from <sysroot>/sys/devices/system/node/node<N>/cpulist
 * ("0-7,16-23", "5", "" for a node with memory only). Returns 0 and fills
 * *cpus (possibly empty: a CPU-less node, e.g. GPU or CXL memory); or an
 * errno, *cpus left untouched: EINVAL for a node out of range or a list
 * that does not parse, the open/read errno (ENOENT) for a missing file.
 * CPUs at or above CPU_SETSIZE (1024) are left out: a cpu_set_t cannot
 * name them, and pinning to the rest is still pinning to the node.
 */
int trestle__numa_node_cpus(int node, const char *sysroot, cpu_set_t *cpus);

/*
 * Ask the kernel to place the pages of [p, p + len) on `node` when they
 * are first touched (mbind MPOL_PREFERRED: another node once this one is
 * full, never a failure to allocate). Call it before the first touch and
 * before cudaHostRegister, which faults the pages in: pages already
 * present stay where they are. `p` must be page-aligned; `len` is rounded
 * up to whole pages by the kernel. Returns 0, or an errno, the range left
 * as it was: EINVAL for a bad argument or a node without memory, ENOSYS
 * for a kernel without NUMA, EPERM where seccomp refuses mbind (Docker's
 * default profile without CAP_SYS_NICE).
 */
int trestle__numa_bind(void *p, size_t len, int node);

/*
 * Pin the calling thread to `cpus` (the set from trestle__numa_node_cpus),
 * less any CPU the thread may not run on already (a container's cpuset, a
 * caller's taskset), so pinning never widens what the thread was given.
 * When `old` is not NULL it receives the affinity before, so a thread that
 * is not the engine's can be put back with
 * pthread_setaffinity_np(pthread_self(), sizeof *old, old).
 * Returns 0, or an errno, the thread's affinity left as it was: EINVAL
 * when no CPU is left after that, or pthread_{get,set}affinity_np's error.
 */
int trestle__numa_pin_thread(const cpu_set_t *cpus, cpu_set_t *old);

/*
 * The NUMA node of CUDA device `device`: cudaDeviceGetPCIBusId, then
 * trestle__numa_pci_node. -1 when unknown, in a build without CUDA, or when
 * the CUDA call fails. Never reads or clears the thread's last CUDA error,
 * which is the caller's; a failed lookup leaves its own error there, as
 * any failed runtime call does, so ask only for a device known to exist.
 * Needs no current device and creates no context.
 */
int trestle__cuda_device_numa_node(int device, const char *sysroot);

#endif /* TRESTLE_NUMA_H */
