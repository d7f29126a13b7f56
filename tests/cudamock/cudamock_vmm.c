/*
 * cudamock_vmm.c - the CUDA driver's virtual memory management calls on
 * the CPU, for the device tier of `trestle serve` (cudamock.h says what
 * they promise).
 *
 * A physical allocation (cuMemCreate) is a memfd named after its device
 * ("cudamock-vmm-dev0"), filled with garbage as fresh device memory is. Its
 * shareable handle is a descriptor of that memfd, so it travels between
 * processes over a Unix socket (SCM_RIGHTS) like the driver's, and every
 * process that imports and maps it shares the bytes. An address range
 * (cuMemAddressReserve) is an inaccessible anonymous mapping; cuMemMap puts
 * the memfd there, still inaccessible to the host (the device address),
 * and registers it in cudamock.c's table of device memory, through which
 * copies, memsets and kernels reach it, with the mock's own view of it
 * (the alias) mapped with no access, then read-only or read-write as
 * cuMemSetAccess says. A write the access does not allow fails when
 * queued work runs (cudamock.c's access check), and cannot land anyway:
 * the alias refuses it.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cuda.h>

#include "cudamock_internal.h"

#define MAGIC_HANDLE 0x484d4d56U /* "VMMH" */
#define GRANULARITY (2u << 20)   /* as on current GPUs */
#define NAME_PREFIX "cudamock-vmm-dev"

typedef struct vmm_handle {
    uint32_t magic;
    int fd;                  /* the memfd (owned) */
    size_t size;
    int device;
    bool exportable;         /* created with a POSIX descriptor handle type */
    bool created;            /* by cuMemCreate here (counted against the device), not imported */
} vmm_handle;

typedef struct reservation {
    uintptr_t va;
    size_t size;
    struct reservation *next;
} reservation;

static reservation *reservations;    /* guarded by the mock's lock */
static uint64_t vmm_bytes[CUDAMOCK_MAX_DEVICES]; /* created here, not yet released */

static vmm_handle *handle_of(CUmemGenericAllocationHandle h)
{
    vmm_handle *v = (vmm_handle *)(uintptr_t)h;
    return v && v->magic == MAGIC_HANDLE ? v : NULL;
}

static CUresult CUDAAPI mock_init(unsigned int flags)
{
    return flags == 0 ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE;
}

static CUresult CUDAAPI mock_device_get(CUdevice *dev, int ordinal)
{
    cudamock__lock();
    CUresult r = ordinal >= 0 && ordinal < cudamock__device_count() ? CUDA_SUCCESS
                                                                      : CUDA_ERROR_INVALID_DEVICE;
    if (r == CUDA_SUCCESS)
        *dev = ordinal;
    cudamock__unlock();
    return r;
}

static bool prop_ok(const CUmemAllocationProp *p)
{
    return p && p->type == CU_MEM_ALLOCATION_TYPE_PINNED &&
           p->location.type == CU_MEM_LOCATION_TYPE_DEVICE && p->location.id >= 0 &&
           p->location.id < cudamock__device_count();
}

static CUresult CUDAAPI mock_granularity(size_t *g, const CUmemAllocationProp *p,
                                         CUmemAllocationGranularity_flags option)
{
    (void)option;
    cudamock__lock();
    CUresult r = prop_ok(p) ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE;
    if (r == CUDA_SUCCESS)
        *g = GRANULARITY;
    cudamock__unlock();
    return r;
}

/* No context is needed or made: the server that holds device memory never has one. */
static CUresult CUDAAPI mock_create(CUmemGenericAllocationHandle *out, size_t size,
                                    const CUmemAllocationProp *p, unsigned long long flags)
{
    char name[64];
    CUresult r = CUDA_SUCCESS;
    *out = 0;
    cudamock__lock();
    if (!prop_ok(p) || flags != 0 || size == 0 || size % GRANULARITY != 0) {
        r = CUDA_ERROR_INVALID_VALUE;
        goto out;
    }
    int device = p->location.id;
    if (!cudamock__device_room(device, size, vmm_bytes[device])) {
        r = CUDA_ERROR_OUT_OF_MEMORY;
        goto out;
    }
    vmm_handle *v = calloc(1, sizeof *v);
    snprintf(name, sizeof name, NAME_PREFIX "%d", device);
    int fd = memfd_create(name, MFD_CLOEXEC);
    if (!v || fd < 0 || ftruncate(fd, (off_t)size) != 0) {
        free(v);
        if (fd >= 0)
            close(fd);
        r = CUDA_ERROR_OUT_OF_MEMORY;
        goto out;
    }
    /* Fresh device memory is not zero on a GPU. */
    void *fill = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (fill != MAP_FAILED) {
        memset(fill, 0xCD, size);
        munmap(fill, size);
    }
    *v = (vmm_handle){ MAGIC_HANDLE, fd, size, device,
                       (p->requestedHandleTypes & CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR) != 0,
                       true };
    vmm_bytes[device] += size;
    cudamock__stats()->vmm_creates++;
    *out = (CUmemGenericAllocationHandle)(uintptr_t)v;
out:
    cudamock__unlock();
    return r;
}

static CUresult CUDAAPI mock_release(CUmemGenericAllocationHandle h)
{
    cudamock__lock();
    vmm_handle *v = handle_of(h);
    if (v) {
        /* The memory stays while any process maps it; this device's
         * account is of what was created here. */
        if (v->created)
            vmm_bytes[v->device] -= v->size;
        close(v->fd);
        v->magic = 0;
        free(v);
    }
    cudamock__unlock();
    return v ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE;
}

static CUresult CUDAAPI mock_export(void *shareable, CUmemGenericAllocationHandle h,
                                    CUmemAllocationHandleType type, unsigned long long flags)
{
    cudamock__lock();
    vmm_handle *v = handle_of(h);
    CUresult r = !v || flags || type != CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR ||
                         !v->exportable
                     ? CUDA_ERROR_INVALID_VALUE
                     : CUDA_SUCCESS;
    if (r == CUDA_SUCCESS) {
        int fd = fcntl(v->fd, F_DUPFD_CLOEXEC, 0);
        if (fd < 0)
            r = CUDA_ERROR_OUT_OF_MEMORY;
        else
            *(int *)shareable = fd;
        cudamock__stats()->vmm_exports += fd >= 0;
    }
    cudamock__unlock();
    return r;
}

/* The device a descriptor's allocation is on, from its memfd's name; -1
 * when it is no allocation of this mock. */
static int device_of_fd(int fd)
{
    char link[64], target[256];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, target, sizeof target - 1);
    if (n <= 0)
        return -1;
    target[n] = '\0';
    const char *at = strstr(target, "/memfd:" NAME_PREFIX);
    if (at != target)
        return -1;
    return atoi(target + strlen("/memfd:" NAME_PREFIX));
}

static CUresult CUDAAPI mock_import(CUmemGenericAllocationHandle *out, void *os_handle,
                                    CUmemAllocationHandleType type)
{
    int fd = (int)(uintptr_t)os_handle;
    struct stat st;
    *out = 0;
    if (type != CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR || fstat(fd, &st) != 0)
        return CUDA_ERROR_INVALID_VALUE;
    int device = device_of_fd(fd);
    cudamock__lock();
    CUresult r = device < 0 || device >= cudamock__device_count() ? CUDA_ERROR_INVALID_VALUE
                                                                   : CUDA_SUCCESS;
    vmm_handle *v = r == CUDA_SUCCESS ? calloc(1, sizeof *v) : NULL;
    int own = v ? fcntl(fd, F_DUPFD_CLOEXEC, 0) : -1;
    if (r == CUDA_SUCCESS && (!v || own < 0)) {
        free(v);
        r = CUDA_ERROR_OUT_OF_MEMORY;
    }
    if (r == CUDA_SUCCESS) {
        *v = (vmm_handle){ MAGIC_HANDLE, own, (size_t)st.st_size, device, false, false };
        cudamock__stats()->vmm_imports++;
        *out = (CUmemGenericAllocationHandle)(uintptr_t)v;
    }
    cudamock__unlock();
    return r;
}

static CUresult CUDAAPI mock_reserve(CUdeviceptr *ptr, size_t size, size_t alignment,
                                     CUdeviceptr addr, unsigned long long flags)
{
    (void)alignment;
    *ptr = 0;
    if (size == 0 || size % GRANULARITY != 0 || addr != 0 || flags != 0)
        return CUDA_ERROR_INVALID_VALUE;
    void *va = mmap(NULL, size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    reservation *res = malloc(sizeof *res);
    if (va == MAP_FAILED || !res) {
        if (va != MAP_FAILED)
            munmap(va, size);
        free(res);
        return CUDA_ERROR_OUT_OF_MEMORY;
    }
    cudamock__lock();
    *res = (reservation){ (uintptr_t)va, size, reservations };
    reservations = res;
    cudamock__unlock();
    *ptr = (CUdeviceptr)(uintptr_t)va;
    return CUDA_SUCCESS;
}

static reservation *reserved(uintptr_t va, size_t size)
{
    for (reservation *r = reservations; r; r = r->next)
        if (va >= r->va && va + size <= r->va + r->size && va + size > va)
            return r;
    return NULL;
}

static CUresult CUDAAPI mock_addr_free(CUdeviceptr ptr, size_t size)
{
    cudamock__lock();
    CUresult r = CUDA_ERROR_INVALID_VALUE;
    for (reservation **pp = &reservations; *pp; pp = &(*pp)->next)
        if ((*pp)->va == (uintptr_t)ptr && (*pp)->size == size) {
            reservation *res = *pp;
            *pp = res->next;
            munmap((void *)res->va, res->size);
            free(res);
            r = CUDA_SUCCESS;
            break;
        }
    cudamock__unlock();
    return r;
}

static CUresult CUDAAPI mock_map(CUdeviceptr ptr, size_t size, size_t offset,
                                 CUmemGenericAllocationHandle h, unsigned long long flags)
{
    cudamock__lock();
    vmm_handle *v = handle_of(h);
    void *va = (void *)(uintptr_t)ptr, *alias = MAP_FAILED;
    CUresult r = !v || flags || size == 0 || offset > v->size || size > v->size - offset ||
                         !reserved((uintptr_t)ptr, size)
                     ? CUDA_ERROR_INVALID_VALUE
                     : CUDA_SUCCESS;
    if (r == CUDA_SUCCESS &&
        (mmap(va, size, PROT_NONE, MAP_SHARED | MAP_FIXED, v->fd, (off_t)offset) == MAP_FAILED ||
         (alias = mmap(NULL, size, PROT_NONE, MAP_SHARED, v->fd, (off_t)offset)) == MAP_FAILED))
        r = CUDA_ERROR_OUT_OF_MEMORY;
    if (r == CUDA_SUCCESS) {
        cudamock__vmm_add(va, alias, size, v->device);
        cudamock__stats()->vmm_maps_live++;
    }
    cudamock__unlock();
    return r;
}

static CUresult CUDAAPI mock_set_access(CUdeviceptr ptr, size_t size, const CUmemAccessDesc *desc,
                                        size_t count)
{
    if (count != 1 || !desc || desc->location.type != CU_MEM_LOCATION_TYPE_DEVICE)
        return CUDA_ERROR_INVALID_VALUE; /* one device at a time is all trestle asks */
    int access = desc->flags == CU_MEM_ACCESS_FLAGS_PROT_READWRITE
                     ? CUDAMOCK_ACCESS_READ | CUDAMOCK_ACCESS_WRITE
                 : desc->flags == CU_MEM_ACCESS_FLAGS_PROT_READ ? CUDAMOCK_ACCESS_READ
                                                                 : 0;
    cudamock__lock();
    CUresult r = desc->location.id < 0 || desc->location.id >= cudamock__device_count()
                     ? CUDA_ERROR_INVALID_DEVICE
                     : CUDA_SUCCESS;
    void *alias = r == CUDA_SUCCESS ? cudamock__vmm_alias((void *)(uintptr_t)ptr, size) : NULL;
    if (r == CUDA_SUCCESS && !alias)
        r = CUDA_ERROR_INVALID_VALUE;
    if (r == CUDA_SUCCESS) {
        /* The mock's own view allows what the device may do, no more. */
        int prot = (access & CUDAMOCK_ACCESS_READ ? PROT_READ : 0) |
                   (access & CUDAMOCK_ACCESS_WRITE ? PROT_WRITE : 0);
        if (mprotect(alias, size, prot) != 0)
            r = CUDA_ERROR_OUT_OF_MEMORY;
        else
            cudamock__vmm_access((void *)(uintptr_t)ptr, size, desc->location.id, access);
    }
    cudamock__unlock();
    return r;
}

static CUresult CUDAAPI mock_unmap(CUdeviceptr ptr, size_t size)
{
    cudamock__lock();
    void *va = (void *)(uintptr_t)ptr;
    void *alias = cudamock__vmm_remove(va, size);
    if (alias) {
        munmap(alias, size);
        /* Back to a reserved, inaccessible range. */
        mmap(va, size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE, -1, 0);
        cudamock__stats()->vmm_maps_live--;
    }
    cudamock__unlock();
    return alias ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE;
}

static CUresult CUDAAPI mock_error_name(CUresult r, const char **out)
{
    *out = r == CUDA_SUCCESS               ? "CUDA_SUCCESS"
           : r == CUDA_ERROR_INVALID_VALUE ? "CUDA_ERROR_INVALID_VALUE"
           : r == CUDA_ERROR_OUT_OF_MEMORY ? "CUDA_ERROR_OUT_OF_MEMORY"
           : r == CUDA_ERROR_INVALID_DEVICE ? "CUDA_ERROR_INVALID_DEVICE"
                                            : "CUDA_ERROR_UNKNOWN";
    return CUDA_SUCCESS;
}

void *cudamock__vmm_entry(const char *symbol)
{
    static const struct {
        const char *name;
        void *fn;
    } calls[] = {
        { "cuInit", (void *)mock_init },
        { "cuDeviceGet", (void *)mock_device_get },
        { "cuMemGetAllocationGranularity", (void *)mock_granularity },
        { "cuMemCreate", (void *)mock_create },
        { "cuMemRelease", (void *)mock_release },
        { "cuMemExportToShareableHandle", (void *)mock_export },
        { "cuMemImportFromShareableHandle", (void *)mock_import },
        { "cuMemAddressReserve", (void *)mock_reserve },
        { "cuMemAddressFree", (void *)mock_addr_free },
        { "cuMemMap", (void *)mock_map },
        { "cuMemSetAccess", (void *)mock_set_access },
        { "cuMemUnmap", (void *)mock_unmap },
        { "cuGetErrorName", (void *)mock_error_name },
    };
    for (size_t i = 0; i < sizeof calls / sizeof calls[0]; i++)
        if (strcmp(calls[i].name, symbol) == 0)
            return calls[i].fn;
    return NULL;
}
