/*
 * cuda_error.h - CUDA failures as trestle errors, for the engine's CUDA
 * code (CUDA builds only; engine/memory/cuda_host.c): the copier
 * (engine/restore/copy_cuda*.c) and the calls outside it word a failed
 * CUDA call alike. Apart from cuda_host.h, which the planner includes in
 * every build, because this one needs the CUDA headers and the context
 * guard (engine/context/cuda_ctx.h).
 */
#ifndef TRESTLE_CUDA_ERROR_H
#define TRESTLE_CUDA_ERROR_H

#include <cuda_runtime_api.h>

#include "cuda_ctx.h"
#include "trestle.h"

/* Fill err with "CUDA device D: WHAT failed: <string> (<name>)", coded
 * NO_DEVICE, NOMEM or CUDA by e. Returns the code. */
int trestle__cuda_fail(trestle_error *err, cudaError_t e, int device, const char *what);

/* trestle__cuda_ctx_load(), a failure reported as an error of `device`. */
int trestle__cuda_load_api(trestle__ctx_api *a, int device, trestle_error *err);

#endif /* TRESTLE_CUDA_ERROR_H */
