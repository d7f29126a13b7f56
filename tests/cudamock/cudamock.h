/*
 * cudamock.h - a CUDA runtime on the CPU, for tests (never installed).
 *
 * A build configured with -DTRESTLE_CUDA_MOCK=ON compiles the CUDA copier
 * (engine/restore/copy_cuda.c) exactly as a CUDA build does, against the toolkit's
 * own cuda_runtime_api.h, but links tests/cudamock/cudamock.c in place of
 * libcudart and the kernels/ .cu files. The engine's GPU path then runs on any
 * machine, CI included, and the mock is stricter than a GPU about the
 * things a GPU would get wrong quietly or only sometimes:
 *
 *  - Device memory cannot be touched by the host: cudaMalloc returns the
 *    address of a PROT_NONE mapping (the mock reaches the bytes through a
 *    second mapping of the same memory), so a host read or write of device
 *    memory crashes at once instead of working by luck on a GPU with
 *    unified memory or corrupting nothing visible.
 *  - Work on a stream runs only when something waits for it
 *    (cudaStreamSynchronize, cudaEventSynchronize, cudaDeviceSynchronize,
 *    a stream waiting on an event of it, or the legacy default stream for
 *    blocking streams), never earlier. A copy whose source the engine
 *    reuses before fencing the copy would read the new bytes; the mock
 *    keeps a snapshot of every pinned source at enqueue and aborts, naming
 *    the copy, when the bytes it finally reads differ.
 *  - Misuse aborts with a message: a kernel reading host memory that is
 *    not pinned and mapped, a copy to memory of another device than its
 *    stream's, a write past the end of an allocation, unregistering or
 *    freeing memory that queued work still reads.
 *  - Calls that need a context create the primary one of the thread's
 *    device, as the runtime does; cuCtxGetCurrent and cuCtxSetCurrent (via
 *    cudaGetDriverEntryPointByVersion) let tests see whose context is left.
 *  - Every call can be made to fail (cudamock_fail), synchronously or, for
 *    queued work, when it runs (the device's sticky error, as a GPU fault
 *    leaves it).
 *  - cudaStreamDestroy does not wait for the stream's work, as on a GPU: the
 *    work stays queued (counted in ops_pending_at_destroy) and runs at the
 *    next device-wide wait or, in late mode (cudamock_set_late), after any
 *    wait, where it lands after whatever the caller did since.
 *  - The calls that order every stream's work (device allocations and
 *    frees, page-locking) are counted as implicit synchronisations.
 *  - Events are stamped when their stream runs past them, so
 *    cudaEventElapsedTime measures the work between two events.
 *
 * State is process-wide (a test double, not library code): Criterion runs
 * each test in its own process. TRESTLE_CUDAMOCK_DEVICES (default 2, at
 * most 8) sets how many devices the host appears to have, and
 * TRESTLE_CUDAMOCK_DEVICE_BYTES ("B0,B1,...", read at each cudaMalloc;
 * default, or 0, unbounded) how much memory each: an allocation past it
 * fails with cudaErrorMemoryAllocation, as on a full GPU.
 * TRESTLE_CUDAMOCK_SYNC_DELAY_US=N makes every cudaEventSynchronize take N
 * microseconds more, out of the lock (a DMA that takes a while);
 * TRESTLE_CUDAMOCK_QUERY_DONE=N makes every N-th cudaEventQuery of an
 * incomplete event find it done (default 3; 0: never, only waits);
 * TRESTLE_CUDAMOCK_STATS=1 prints some counters on stderr at exit, for
 * tests of other processes ("cudamock: streams_created N, ...").
 *
 * The driver's virtual memory calls (cuMemCreate, cuMemExportToShareable-
 * Handle, cuMemImportFromShareableHandle, cuMemAddressReserve, cuMemMap,
 * cuMemSetAccess, cuMemUnmap, cuMemAddressFree, cuMemRelease, through
 * cudaGetDriverEntryPointByVersion; tests/cudamock/cudamock_vmm.c) work
 * across processes: an allocation is a memfd, its exported handle a
 * descriptor of it that travels over a Unix socket, and each process that
 * imports and maps it sees the same bytes. cuMemCreate needs no context
 * and makes none, as the driver's. Access is enforced: a mapped range is
 * unusable until cuMemSetAccess, and a copy, memset or kernel that writes
 * a range mapped read-only fails with cudaErrorIllegalAddress (sticky: the
 * device is unusable after, as after a GPU fault) and writes nothing; the
 * mock's own view of such a range is read-only, so a write that got past
 * the check would crash.
 */
#ifndef TRESTLE_CUDAMOCK_H
#define TRESTLE_CUDAMOCK_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CUDAMOCK_MAX_DEVICES 8

typedef struct cudamock_stats {
    uint64_t mallocs;              /* successful cudaMalloc / cudaMallocAsync calls */
    uint64_t device_bytes_live;    /* device memory allocated and not freed */
    uint64_t h2d_pinned_copies;    /* host-to-device copies out of pinned memory */
    uint64_t h2d_pinned_bytes;
    uint64_t h2d_pageable_copies;  /* ... out of pageable memory (staged by the runtime) */
    uint64_t kernels;              /* scatter and convert launches */
    uint64_t stream_syncs;         /* cudaStreamSynchronize calls (they spin by default) */
    uint64_t event_syncs;          /* cudaEventSynchronize calls */
    uint64_t spinning_event_syncs; /* ... on events made without cudaEventBlockingSync */
    uint64_t event_queries;        /* cudaEventQuery calls */
    uint64_t last_error_calls;     /* cudaGetLastError and cudaPeekAtLastError calls */
    uint64_t primary_contexts;     /* primary contexts created */
    uint64_t host_registers;       /* successful cudaHostRegister calls */
    uint64_t host_allocs_live;     /* cudaHostAlloc'd blocks not freed */
    uint64_t memcpy_async_calls;   /* cudaMemcpyAsync calls */
    uint64_t batch_calls;          /* cudaMemcpyBatchAsync calls */
    uint64_t kernel_host_reads;    /* kernels launched to read host (pinned) memory */
    uint64_t device_syncs;         /* cudaDeviceSynchronize calls */
    uint64_t streams_live;         /* created and not destroyed (legacy streams aside) */
    uint64_t events_live;
    uint64_t host_registered_live; /* cudaHostRegister'ed ranges not unregistered */
    uint64_t ops_run[CUDAMOCK_MAX_DEVICES]; /* queued copies/kernels run, per device */
    uint64_t streams_created;      /* cudaStreamCreate* calls that made a stream */
    uint64_t events_created;       /* cudaEventCreate* calls that made an event */
    uint64_t implicit_syncs;       /* calls that synchronise the device or order every stream's
                                      work: cudaMalloc, cudaFree, cudaHostRegister,
                                      cudaHostUnregister, cudaHostAlloc, cudaFreeHost */
    uint64_t ops_pending_at_destroy; /* copies/kernels still queued when their stream was
                                        destroyed (they run later: see the zombies above) */
    uint64_t max_syncs_before_enqueue; /* the most cudaEventSynchronize calls one thread made
                                          between queueing work and queueing work again */
    /* CUDA VMM (cudamock_vmm.c), the device tier of `trestle serve`. */
    uint64_t vmm_creates;          /* cuMemCreate calls that made an allocation */
    uint64_t vmm_exports;          /* cuMemExportToShareableHandle calls that gave a descriptor */
    uint64_t vmm_imports;          /* cuMemImportFromShareableHandle calls that took one */
    uint64_t vmm_maps_live;        /* cuMemMap'ped ranges not unmapped */
    uint64_t vmm_access_faults;    /* copies, memsets and kernels that wrote a mapping without
                                      write access (or read one without read access): each
                                      failed with cudaErrorIllegalAddress, sticky, as a GPU's
                                      fault does */
} cudamock_stats;

/* A snapshot of the counters. */
void cudamock_get_stats(cudamock_stats *s);

/*
 * Make the `nth` next call (1: the very next) of CUDA runtime function `fn`
 * (e.g. "cudaHostRegister", "cudaMemcpyAsync", "trestle__k_scatter") fail
 * with cudaError_t value `err`. With `async` 0 the call returns the error
 * and does nothing; with `async` 1 (queued work only: copies, memsets,
 * kernels) the call succeeds and the work fails when it runs, leaving
 * `err` as its device's sticky error: every later call on that device
 * returns it, as after a GPU fault. One failure is armed at a time.
 */
void cudamock_fail(const char *fn, unsigned nth, int err, int async);

/* Arm one more failure beside those armed (at most four in all). */
void cudamock_fail_more(const char *fn, unsigned nth, int err, int async);

/* Disarm failures and clear sticky errors. */
void cudamock_reset(void);

/* Late mode: every wait (stream, event, device, cudaMemcpy) also runs the
 * work of every other stream after the work it waited for, as a GPU may
 * run it at any later moment. Work a restore leaves queued when it returns
 * then lands after the caller's own. */
void cudamock_set_late(int on);

/* Copies, memsets and kernels queued and not run on every stream but the
 * legacy ones, destroyed streams included. */
uint64_t cudamock_pending_ops(void);

/* Mark `stream` (a cudaStream_t) as capturing a CUDA graph, or not. */
void cudamock_set_capturing(void *stream, int on);

/* A context of `device` that is not its primary one (a CUcontext), as the
 * driver API's cuCtxCreate makes: set it current with cuCtxSetCurrent. */
void *cudamock_ctx_create(int device);

/* 1 when device's primary context has been created in this process. */
int cudamock_has_primary(int device);

/*
 * cudaDeviceGetPCIBusId: device d is at "0000:%02X:00.0", bus 0x1B + 0x20 * d
 * (uppercase, as the runtime writes it; sysfs names are lowercase), unless
 * TRESTLE_CUDAMOCK_PCI_BUS_IDS ("id0,id1,...", read at each call) names it.
 */

#ifdef __cplusplus
}
#endif

#endif /* TRESTLE_CUDAMOCK_H */
