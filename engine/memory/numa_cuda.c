/*
 * numa_cuda.c - the NUMA node of a CUDA device (see numa.h).
 *
 * The CUDA half of engine/memory/numa.c, kept apart so numa.c builds and tests
 * without the toolkit: the runtime names the device's PCI address, sysfs
 * names its node. cudaDeviceGetPCIBusId is a device query: it needs no
 * current device and creates no context, so it runs in any thread, before
 * the copier has set anything up, and leaves the caller's CUDA state alone.
 *
 * In a build without CUDA (TRESTLE_HAVE_CUDA is 0 in trestle_version.h) the
 * node is simply unknown.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "numa.h"
#include "trestle_version.h"

#if TRESTLE_HAVE_CUDA

#include <cuda_runtime_api.h>

int trestle__cuda_device_numa_node(int device, const char *sysroot)
{
    /* Room for a domain of 8 hex digits ("00000000:00:00.0"), though the
     * runtime writes 4 ("0000:1B:00.0"): the domain can be wider. */
    char id[TRESTLE__PCI_ID_MAX];
    /* The call's own result says whether it worked; the thread's last
     * error is the caller's, never read or cleared here (issue 12 item 3). */
    if (cudaDeviceGetPCIBusId(id, (int)sizeof id, device) != cudaSuccess)
        return -1;
    return trestle__numa_pci_node(id, sysroot);
}

#else /* !TRESTLE_HAVE_CUDA */

int trestle__cuda_device_numa_node(int device, const char *sysroot)
{
    (void)device;
    (void)sysroot;
    return -1;
}

#endif /* TRESTLE_HAVE_CUDA */
