/*
 * numa_cuda.c - the NUMA node of a CUDA device (see numa.h).
 *
 * The CUDA half of engine/numa.c, kept apart so numa.c builds and tests
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
    /* A failure here is ours to clear, so a later cudaGetLastError in the
     * caller's code does not report a lookup it never made. When an error
     * was pending already, it is the caller's and is not cleared (though
     * CUDA, which keeps one last error, has replaced it with ours). */
    cudaError_t before = cudaPeekAtLastError();
    if (cudaDeviceGetPCIBusId(id, (int)sizeof id, device) != cudaSuccess) {
        if (before == cudaSuccess)
            (void)cudaGetLastError();
        return -1;
    }
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
