/*
 * cuda_ctx.h - the calling thread's CUDA context, saved and put back
 * around the engine's CUDA calls (CUDA builds only; engine/memory/cuda_ctx.c).
 *
 * cudaSetDevice alone would leave a thread that had no context with a
 * fresh primary context (hundreds of MiB of device memory on that GPU),
 * and replace a runtime's own driver-API context with the primary one. So
 * the engine takes the driver's cuCtxGetCurrent/cuCtxSetCurrent through
 * cudaGetDriverEntryPointByVersion (no link to libcuda), remembers the
 * caller's context (none too) before it switches, and puts it back after.
 */
#ifndef TRESTLE_CUDA_CTX_H
#define TRESTLE_CUDA_CTX_H

#include <stdbool.h>

#include <cuda.h> /* CUcontext, CUresult: types of the driver entry points only */
#include <cuda_runtime_api.h>

#include "trestle.h"

typedef CUresult(CUDAAPI *trestle__ctx_get_fn)(CUcontext *);
typedef CUresult(CUDAAPI *trestle__ctx_set_fn)(CUcontext);

typedef struct trestle__ctx_api {
    trestle__ctx_get_fn get;
    trestle__ctx_set_fn set;
} trestle__ctx_api;

typedef struct trestle__ctx_guard {
    CUcontext saved;
    bool have;
} trestle__ctx_guard;

/* The driver's two context calls. */
cudaError_t trestle__cuda_ctx_load(trestle__ctx_api *a);

/* The same, a failure reported as an error of `device`. */
int trestle__cuda_load_api(trestle__ctx_api *a, int device, trestle_error *err);

/* Make `device` current in the calling thread, remembering its context. */
cudaError_t trestle__cuda_enter(const trestle__ctx_api *a, int device, trestle__ctx_guard *g);

/* Put the calling thread's context back, none if it had none. */
cudaError_t trestle__cuda_leave(const trestle__ctx_api *a, const trestle__ctx_guard *g);

/* Run `call` (which sets `e`) with `dev` current in the calling thread;
 * `e` also catches failures to switch there and back. */
#define TRESTLE__WITH_DEVICE(api, dev, e, call)                                \
    do {                                                                       \
        trestle__ctx_guard g_;                                                 \
        (e) = trestle__cuda_enter((api), (dev), &g_);                          \
        if ((e) == cudaSuccess) {                                              \
            call;                                                              \
        }                                                                      \
        cudaError_t l_ = trestle__cuda_leave((api), &g_);                      \
        if ((e) == cudaSuccess)                                                \
            (e) = l_;                                                          \
    } while (0)

/* Fill err with "CUDA device D: WHAT failed: <string> (<name>)", coded
 * NO_DEVICE, NOMEM or CUDA by e. Returns the code. */
int trestle__cuda_fail(trestle_error *err, cudaError_t e, int device, const char *what);

#endif /* TRESTLE_CUDA_CTX_H */
