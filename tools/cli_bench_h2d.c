/*
 * cli_bench_h2d.c - the host-to-device ceilings of `trestle bench`: a
 * cudaMemcpy of 256 MiB from pinned or pageable memory to a device, best of
 * three after one warm-up copy. The CUDA runtime is loaded with dlopen, so
 * the CLI builds and runs without CUDA and reports "n/a" instead.
 */
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"

#define COPY_BYTES (256u << 20) /* host-to-device buffer size */

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void set_na(cli_ceiling *out, const char *what)
{
    out->valid = 0;
    snprintf(out->note, sizeof out->note, "%s", what);
}

typedef struct cudart {
    void *lib;
    int (*set_device)(int);
    int (*malloc_dev)(void **, size_t);
    int (*free_dev)(void *);
    int (*malloc_host)(void **, size_t);
    int (*free_host)(void *);
    int (*memcpy_fn)(void *, const void *, size_t, int);
    int (*synchronize)(void);
} cudart;

#define CUDA_MEMCPY_H2D 1 /* cudaMemcpyHostToDevice */

/* dlsym into a function pointer without a data-to-function cast warning. */
static int sym(void *lib, const char *name, void *fnp)
{
    void *p = dlsym(lib, name);
    memcpy(fnp, &p, sizeof p);
    return p ? 0 : -1;
}

static int cudart_load(cudart *rt)
{
    static const char *const names[] = { "libcudart.so", "libcudart.so.13", "libcudart.so.12",
                                         "libcudart.so.11.0" };
    memset(rt, 0, sizeof *rt);
    for (size_t i = 0; i < sizeof names / sizeof names[0] && !rt->lib; i++)
        rt->lib = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
    if (!rt->lib)
        return -1;
    if (sym(rt->lib, "cudaSetDevice", &rt->set_device) ||
        sym(rt->lib, "cudaMalloc", &rt->malloc_dev) || sym(rt->lib, "cudaFree", &rt->free_dev) ||
        sym(rt->lib, "cudaMallocHost", &rt->malloc_host) ||
        sym(rt->lib, "cudaFreeHost", &rt->free_host) ||
        sym(rt->lib, "cudaMemcpy", &rt->memcpy_fn) ||
        sym(rt->lib, "cudaDeviceSynchronize", &rt->synchronize)) {
        dlclose(rt->lib);
        rt->lib = NULL;
        return -1;
    }
    return 0;
}

void cli_bench_h2d(int device, int pinned, cli_ceiling *out)
{
    cudart rt;
    void *d_buf = NULL, *h_buf = NULL;

    memset(out, 0, sizeof *out);
    out->kind = CLI_CEILING;
    if (cudart_load(&rt) != 0) {
        set_na(out, "no CUDA runtime: libcudart.so not loadable");
        return;
    }
    if (rt.set_device(device) != 0 || rt.malloc_dev(&d_buf, COPY_BYTES) != 0) {
        set_na(out, "no CUDA device");
        goto done;
    }
    if (pinned ? rt.malloc_host(&h_buf, COPY_BYTES) != 0 : !(h_buf = malloc(COPY_BYTES))) {
        set_na(out, "host allocation failed");
        goto done;
    }
    memset(h_buf, 0x5a, COPY_BYTES);
    for (int run = 0; run < 4; run++) {
        double t0 = now_seconds();
        if (rt.memcpy_fn(d_buf, h_buf, COPY_BYTES, CUDA_MEMCPY_H2D) != 0 || rt.synchronize() != 0) {
            set_na(out, "cudaMemcpy failed");
            goto done;
        }
        if (run > 0) /* the first copy pays for context and mapping setup */
            cli_ceiling_add(out, COPY_BYTES, now_seconds() - t0);
    }
    cli_ceiling_finish(out);
    snprintf(out->note, sizeof out->note, "cudaMemcpy of 256 MiB from %s memory to device %d, "
             "best of %d", pinned ? "pinned" : "pageable", device, out->runs);
done:
    if (h_buf)
        pinned ? (void)rt.free_host(h_buf) : free(h_buf);
    if (d_buf)
        rt.free_dev(d_buf);
    dlclose(rt.lib);
}
