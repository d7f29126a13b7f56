/*
 * cuda_host.h - the CUDA calls the engine makes outside a restore's copier
 * (engine/memory/cuda_host.c): pinning staging memory, device arenas,
 * which devices there are and where a pointer lives, reading device
 * memory back. Each keeps the caller's current context
 * (engine/context/cuda_ctx.h). In a build without CUDA they are stubs that
 * say so (TRESTLE_E_NO_DEVICE), so the planner and the staging pool call
 * them unconditionally.
 */
#ifndef TRESTLE_CUDA_HOST_H
#define TRESTLE_CUDA_HOST_H

#include <stddef.h>
#include <stdint.h>

#include "arena.h"
#include "trestle.h"

/*
 * Pinned host memory for device copies (engine/memory/staging.c): page-lock
 * `bytes` at p for every device (cudaHostRegister, portable and mapped).
 * TRESTLE_E_NOMEM with *refused set to the runtime's reason (a static
 * string) whenever the runtime refused (sandboxes and some kernels cannot
 * register ordinary pages at all; the locked-memory limit or a full
 * IOMMU refuse them with other codes), so that the caller can fall back to
 * trestle__cuda_host_alloc(); *refused is NULL when the runtime itself
 * could not be reached. TRESTLE_E_NO_DEVICE without CUDA.
 */
int trestle__cuda_pin(int device, void *p, size_t bytes, const char **refused,
                      trestle_error *err);
void trestle__cuda_unpin(int device, void *p);
/* `bytes` of pinned, mapped memory from the CUDA runtime (cudaHostAlloc).
 * TRESTLE_E_NOMEM with *why set to the runtime's reason (a static string)
 * when it refused; *why is NULL otherwise. */
int trestle__cuda_host_alloc(int device, size_t bytes, void **p, const char **why,
                             trestle_error *err);
void trestle__cuda_host_free(int device, void *p);

/* One device allocation of `bytes` on `device` as an arena that frees
 * itself (cudaFree on its device): a CUDA copier's arena_alloc. The
 * caller's current context is kept. TRESTLE_E_NOMEM naming the device and
 * the bytes, TRESTLE_E_CUDA, TRESTLE_E_NO_DEVICE without CUDA. */
int trestle__cuda_arena_alloc(int device, uint64_t bytes, trestle_arena **out,
                              trestle_error *err);

/* CUDA devices usable here: > 0, or 0 with `why` (n bytes) saying what is
 * missing, to follow "needs": "a CUDA build of trestle; ...", or "a usable
 * CUDA device (cudaGetDeviceCount: <the runtime's reason>)". */
int trestle__cuda_device_count(char *why, size_t n);

/* The device ordinal of CUDA device (or managed) memory at p: 0, or -1
 * when p is not device memory or the build has no CUDA. */
int trestle__cuda_pointer_device(const void *p, int *device);

/* Copy n bytes of device memory at src on `device` into host memory at
 * dst, synchronously (cudaMemcpy), keeping the caller's current device.
 * TRESTLE_E_NO_DEVICE in a build without CUDA. */
int trestle__cuda_read(int device, void *dst, const void *src, uint64_t n, trestle_error *err);

/* Queue a copy of n bytes of device memory at src (on `device`) to device
 * memory at dst (any device) on `stream`, a cudaStream_t of the caller's
 * (NULL: the legacy default stream), keeping the caller's current device;
 * then, when `done` is not NULL, record a new event after it in *done (for
 * trestle__cuda_done_wait). Nothing waits: the copy runs in stream order.
 * TRESTLE_E_NO_DEVICE in a build without CUDA. */
int trestle__cuda_copy_queued(int device, void *dst, const void *src, uint64_t n, void *stream,
                              void **done, trestle_error *err);

/* Wait for an event of trestle__cuda_copy_queued (the copies before it
 * have read their sources), then destroy it; NULL does nothing. */
void trestle__cuda_done_wait(int device, void *done);

#endif /* TRESTLE_CUDA_HOST_H */
