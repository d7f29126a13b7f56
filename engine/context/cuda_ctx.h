/*
 * cuda_ctx.h - the calling thread's CUDA context, saved and put back
 * around the engine's CUDA calls (CUDA builds only; engine/context/cuda_ctx.c).
 *
 * cudaSetDevice alone would leave a thread that had no context with a
 * fresh primary context (hundreds of MiB of device memory on that GPU),
 * and replace a runtime's own driver-API context with the primary one. So
 * the engine takes the driver's cuCtxGetCurrent/cuCtxSetCurrent through
 * cudaGetDriverEntryPointByVersion (no link to libcuda), remembers the
 * caller's context (none too) before it switches, and puts it back after.
 *
 * Why a layer of its own: libtrestle (engine/memory/, engine/restore/) and
 * libtrestle_mpi (engine/group/, which may use only the public API) both
 * make CUDA calls on their caller's thread and need the same guard. It
 * uses nothing but the CUDA runtime and the driver's entry points, keeps
 * no state, and is compiled into both libraries, so neither calls a
 * hidden symbol of the other. Errors are plain cudaError_t: each library
 * words them its own way.
 */
#ifndef TRESTLE_CUDA_CTX_H
#define TRESTLE_CUDA_CTX_H

#include <stdbool.h>

#include <cuda.h> /* CUcontext, CUresult: types of the driver entry points only */
#include <cuda_runtime_api.h>

typedef CUresult(CUDAAPI *trestle__ctx_get_fn)(CUcontext *);
typedef CUresult(CUDAAPI *trestle__ctx_set_fn)(CUcontext);
typedef CUresult(CUDAAPI *trestle__ptr_attr_fn)(void *, CUpointer_attribute, CUdeviceptr);

typedef struct trestle__ctx_api {
    trestle__ctx_get_fn get;       /* cuCtxGetCurrent */
    trestle__ctx_set_fn set;       /* cuCtxSetCurrent */
    trestle__ptr_attr_fn ptr_attr; /* cuPointerGetAttribute */
} trestle__ctx_api;

typedef struct trestle__ctx_guard {
    CUcontext saved;
    bool have;
} trestle__ctx_guard;

/* The driver's context and pointer calls. */
cudaError_t trestle__cuda_ctx_load(trestle__ctx_api *a);

/* One driver call by name, through the runtime (no link to libcuda): its
 * address, or NULL with *e set. Does nothing when *e is already an error,
 * so that several lookups share one check. */
void *trestle__cuda_driver_entry(const char *name, cudaError_t *e);

/* Make `device` current in the calling thread, remembering its context. */
cudaError_t trestle__cuda_enter(const trestle__ctx_api *a, int device, trestle__ctx_guard *g);

/* Remember the calling thread's context (none too) without switching:
 * for runtime calls that name no device but may make one current. */
cudaError_t trestle__cuda_save(const trestle__ctx_api *a, trestle__ctx_guard *g);

/* Put the calling thread's context back, none if it had none. */
cudaError_t trestle__cuda_leave(const trestle__ctx_api *a, const trestle__ctx_guard *g);

/* The device ordinal of device (or managed) memory at p in *device, by the
 * driver, which needs no context and makes none: 0, or -1 when p is not
 * device memory. */
int trestle__cuda_pointer_ordinal(const trestle__ctx_api *a, const void *p, int *device);

/* Record *ev on `stream`, which belongs to `device`, current in the calling
 * thread: the event later work waits for, to come after what the stream
 * holds now. *ev (timing off) is made on first use (*have) and made again
 * when it was made on another device (*ev_device), since an event and the
 * stream that records it share a device. */
cudaError_t trestle__cuda_record_on(cudaEvent_t *ev, bool *have, int *ev_device, int device,
                                    cudaStream_t stream);

/* Run `call` (which sets `e`) after `enter` (which fills the guard g_),
 * and put the thread's context back after it; `e` also catches failures
 * to enter and to leave. */
#define TRESTLE__GUARDED(api, enter, e, call)                                  \
    do {                                                                       \
        trestle__ctx_guard g_;                                                 \
        (e) = (enter);                                                         \
        if ((e) == cudaSuccess) {                                              \
            call;                                                              \
        }                                                                      \
        cudaError_t l_ = trestle__cuda_leave((api), &g_);                      \
        if ((e) == cudaSuccess)                                                \
            (e) = l_;                                                          \
    } while (0)

/* Run `call` with `dev` current in the calling thread. */
#define TRESTLE__WITH_DEVICE(api, dev, e, call)                                \
    TRESTLE__GUARDED(api, trestle__cuda_enter((api), (dev), &g_), e, call)

/* Run `call` and leave the calling thread's context as it was before,
 * whatever the call made current. */
#define TRESTLE__KEEPING_CONTEXT(api, e, call)                                 \
    TRESTLE__GUARDED(api, trestle__cuda_save((api), &g_), e, call)

#endif /* TRESTLE_CUDA_CTX_H */
