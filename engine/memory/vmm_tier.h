/*
 * vmm_tier.h - the device tier of resident checkpoints (`trestle serve`):
 * CUDA virtual memory management (engine/memory/vmm_tier.c).
 *
 * The server creates each entry's device memory with cuMemCreate, asking
 * for a POSIX file descriptor handle type, exports it
 * (cuMemExportToShareableHandle) and keeps the handle; it never maps the
 * memory and so never needs a CUDA context, which a driver fault could
 * poison (the model is NVIDIA Dynamo's GPU Memory Service). The preload
 * imports the descriptor, maps it read-write, fills it, and unmaps it
 * before publishing; every attach imports it and maps it read-only
 * (cuMemSetAccess with CU_MEM_ACCESS_FLAGS_PROT_READ). A client's mapping
 * keeps the memory alive after the server releases its handle.
 *
 * The driver calls are taken through cudaGetDriverEntryPointByVersion, as
 * engine/context/ takes its own, so libtrestle does not link libcuda. In a
 * build without CUDA every call is TRESTLE_E_NO_DEVICE.
 */
#ifndef TRESTLE_VMM_TIER_H
#define TRESTLE_VMM_TIER_H

#include <stdbool.h>
#include <stdint.h>

#include "trestle.h"

/*
 * The server's side: device memory of at least `bytes` bytes on CUDA
 * device `device`, rounded up to the allocation granularity (*region),
 * exported as a descriptor (*fd, close-on-exec, the caller's to close),
 * with *alloc the handle to release with trestle__vmm_release(). Makes no
 * context current. TRESTLE_E_NOMEM naming the device and the bytes,
 * TRESTLE_E_NO_DEVICE, TRESTLE_E_CUDA.
 */
int trestle__vmm_create(int device, uint64_t bytes, void **alloc, int *fd, uint64_t *region,
                        trestle_error *err);

/* The allocation granularity of `device` (what trestle__vmm_create rounds
 * up to), by driver calls only: TRESTLE_OK, TRESTLE_E_NO_DEVICE, TRESTLE_E_CUDA. */
int trestle__vmm_granularity(int device, uint64_t *out, trestle_error *err);

/* Release the server's handle (NULL is fine); mappings elsewhere stay. */
void trestle__vmm_release(void *alloc);

/*
 * A client's side: import descriptor `fd` (not consumed) of `region`
 * bytes, reserve an address range, map it on `device`, and allow `device`
 * to read it (and write it when `writable`: the preload only). *mapping
 * is for trestle__vmm_unmap(); *base the device address. The calling
 * thread's context is kept. TRESTLE_E_CUDA or TRESTLE_E_NO_DEVICE naming
 * the step that failed.
 */
int trestle__vmm_map(int fd, int device, uint64_t region, bool writable, void **mapping,
                     void **base, trestle_error *err);

/* Unmap, free the address range and release the imported handle (NULL is fine). */
void trestle__vmm_unmap(void *mapping);

#endif /* TRESTLE_VMM_TIER_H */
