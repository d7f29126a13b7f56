/*
 * host_register_time.c - how long pinning the staging memory takes on this
 * machine: cudaHostRegister/cudaHostUnregister of SIZE bytes (default 256
 * MiB, trestle's default staging), already touched and untouched, beside
 * cudaHostAlloc/cudaFreeHost of the same size (the fallback when
 * registering is refused), and the context creation that any first CUDA
 * call pays. Issue 12 (item 10) asks whether registering once per restore
 * is worth keeping out of time to first tensor; this is the figure.
 *
 * A standalone helper for the GPU runbook (scripts/gpu_session.sh 3), not
 * part of the build: it needs only the CUDA runtime.
 *   nvcc -O2 -o host_register_time bench/host_register_time.c
 *   ./host_register_time [SIZE_MIB] [REPEATS]
 * Prints one Markdown table (bench/RESULTS.md form); exits 1 with the CUDA
 * error when there is no usable device.
 */
#define _GNU_SOURCE
#include <cuda_runtime_api.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#define MAX_REPEATS 64

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Exit with the failed call named: a runbook step must fail loudly. */
static void check(cudaError_t e, const char *what)
{
    if (e != cudaSuccess) {
        fprintf(stderr, "host_register_time: %s: %s (%s)\n", what, cudaGetErrorString(e),
                cudaGetErrorName(e));
        exit(1);
    }
}

static void row(const char *what, double *t, int n)
{
    qsort(t, (size_t)n, sizeof *t, cmp_double);
    printf("| %s | %.2f | %.2f |\n", what, t[0] * 1e3, t[n / 2] * 1e3);
}

/* Fresh anonymous memory each repeat, so no repeat finds pages pinned or
 * faulted in by the one before; `touch` writes every page first, as the
 * staging pool does before a restore registers it. */
static void *fresh(size_t bytes, int touch)
{
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        perror("host_register_time: mmap");
        exit(1);
    }
    if (touch)
        memset(p, 1, bytes);
    return p;
}

int main(int argc, char **argv)
{
    size_t mib = argc > 1 ? strtoul(argv[1], NULL, 10) : 256;
    int repeats = argc > 2 ? atoi(argv[2]) : 5;
    if (mib == 0 || repeats < 1 || repeats > MAX_REPEATS) {
        fprintf(stderr, "usage: host_register_time [SIZE_MIB > 0] [REPEATS 1..%d]\n",
                MAX_REPEATS);
        return 2;
    }
    size_t bytes = mib << 20;
    double reg[2][MAX_REPEATS], unreg[2][MAX_REPEATS], alloc[MAX_REPEATS], freeh[MAX_REPEATS];

    double t0 = now();
    check(cudaFree(0), "cudaFree(0) (context creation)");
    double ctx = now() - t0;
    for (int touch = 0; touch < 2; touch++) {
        for (int i = 0; i < repeats; i++) {
            void *p = fresh(bytes, touch);
            t0 = now();
            check(cudaHostRegister(p, bytes, cudaHostRegisterPortable | cudaHostRegisterMapped),
                  "cudaHostRegister");
            reg[touch][i] = now() - t0;
            t0 = now();
            check(cudaHostUnregister(p), "cudaHostUnregister");
            unreg[touch][i] = now() - t0;
            munmap(p, bytes);
        }
    }
    for (int i = 0; i < repeats; i++) {
        void *p;
        t0 = now();
        check(cudaHostAlloc(&p, bytes, cudaHostAllocPortable | cudaHostAllocMapped),
              "cudaHostAlloc");
        alloc[i] = now() - t0;
        t0 = now();
        check(cudaFreeHost(p), "cudaFreeHost");
        freeh[i] = now() - t0;
    }

    int dev = 0;
    struct cudaDeviceProp prop;
    check(cudaGetDevice(&dev), "cudaGetDevice");
    check(cudaGetDeviceProperties(&prop, dev), "cudaGetDeviceProperties");
    printf("Pinning %zu MiB of host memory on %s (device %d), %d repeats, fresh memory each;\n"
           "context creation (cudaFree(0), once): %.1f ms.\n\n", mib, prop.name, dev, repeats,
           ctx * 1e3);
    printf("| call (%zu MiB) | best ms | median ms |\n|---|---|---|\n", mib);
    row("cudaHostRegister, pages already touched", reg[1], repeats);
    row("cudaHostUnregister, pages already touched", unreg[1], repeats);
    row("cudaHostRegister, untouched pages", reg[0], repeats);
    row("cudaHostUnregister, untouched pages", unreg[0], repeats);
    row("cudaHostAlloc", alloc, repeats);
    row("cudaFreeHost", freeh, repeats);
    return 0;
}
