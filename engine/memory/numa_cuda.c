/*
 * numa_cuda.c - the NUMA node of a CUDA device (see numa.h).
 *
 * The CUDA half of engine/memory/numa.c, kept apart so numa.c builds and tests
 * without the toolkit: the runtime names the device's PCI address, sysfs
 * names its node. cudaDeviceGetPCIBusId is a device query: it needs no
 * current device, so it runs in any thread, before the copier has set
 * anything up; it runs inside the context guard all the same
 * (engine/context/cuda_ctx.h), so that a caller's thread without a context
 * is left without one whatever the runtime does inside.
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

#include "cuda_ctx.h"

int trestle__cuda_device_numa_node(int device, const char *sysroot)
{
    /* Room for a domain of 8 hex digits ("00000000:00:00.0"), though the
     * runtime writes 4 ("0000:1B:00.0"): the domain can be wider. */
    char id[TRESTLE__PCI_ID_MAX];
    /* The call's own result says whether it worked; the thread's last
     * error is the caller's, never read or cleared here (issue 12 item 3). */
    trestle__ctx_api api;
    cudaError_t e = trestle__cuda_ctx_load(&api);
    if (e == cudaSuccess)
        TRESTLE__KEEPING_CONTEXT(&api, e, e = cudaDeviceGetPCIBusId(id, (int)sizeof id, device));
    if (e != cudaSuccess)
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
