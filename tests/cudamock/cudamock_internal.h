/*
 * cudamock_internal.h - what cudamock.c lends cudamock_vmm.c (the driver's
 * virtual memory calls): its lock, its devices, and its table of device
 * memory, in which a cuMemMap'ped range is device memory like cudaMalloc's
 * (copies, memsets and kernels find it) with an access of its own.
 */
#ifndef TRESTLE_CUDAMOCK_INTERNAL_H
#define TRESTLE_CUDAMOCK_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "cudamock.h"

#define CUDAMOCK_ACCESS_READ 1  /* the device may read the range */
#define CUDAMOCK_ACCESS_WRITE 2 /* ... and write it */

/* The mock's one lock (every call below but cudamock__vmm_entry needs it held). */
void cudamock__lock(void);
void cudamock__unlock(void);

/* Devices this process sees (TRESTLE_CUDAMOCK_DEVICES). */
int cudamock__device_count(void);

/* 1 when `bytes` more fit `device`'s memory (TRESTLE_CUDAMOCK_DEVICE_BYTES)
 * beside its cudaMalloc'ed memory and `vmm_bytes` of VMM allocations. */
int cudamock__device_room(int device, uint64_t bytes, uint64_t vmm_bytes);

/* The counters (to add to). */
cudamock_stats *cudamock__stats(void);

/* A mapped range: `dev` (PROT_NONE, the device address) over `alias`
 * (the mock's own view), of `device`, with no access yet. */
void cudamock__vmm_add(void *dev, void *alias, size_t size, int device);

/* Forget a mapped range: its alias (to unmap), or NULL when there is none. */
void *cudamock__vmm_remove(void *dev, size_t size);

/* A mapped range's alias, or NULL when there is no such range. */
void *cudamock__vmm_alias(void *dev, size_t size);

/* Set a mapped range's device and access (CUDAMOCK_ACCESS_* bits): 0, or -1 when unknown. */
int cudamock__vmm_access(void *dev, size_t size, int device, int access);

/* The VMM driver call named `symbol` (cuMemCreate, ...), or NULL (cudamock_vmm.c). */
void *cudamock__vmm_entry(const char *symbol);

#endif /* TRESTLE_CUDAMOCK_INTERNAL_H */
