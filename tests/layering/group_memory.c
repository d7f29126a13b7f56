/*
 * group_memory.c - libtrestle_mpi reaching into libtrestle's memory layer,
 * which must not compile.
 *
 * The ctest `layering_group` compiles this file with engine/group/'s
 * include path and passes only when the compiler says cuda_host.h cannot
 * be found. The group may use the public API and the CUDA context guard
 * (engine/context/cuda_ctx.h, compiled into both libraries), nothing else:
 * a libtrestle internal it could include it could also call, and
 * libtrestle.so hides every trestle__ symbol.
 */
#include "cuda_ctx.h" /* allowed: engine/context/ */
#include "cuda_host.h" /* not allowed: engine/memory/ */

typedef int trestle_layering_group_probe; /* ISO C wants one declaration */
