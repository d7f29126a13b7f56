/*
 * vmm_tier.c - the device tier's CUDA VMM calls (engine/memory/vmm_tier.h):
 * the server's cuMemCreate and export, which make no context current, and
 * a client's import, map and access (read-only but for the preload that
 * fills the memory), in the client's own context.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "error.h"
#include "trestle_version.h"
#include "vmm_tier.h"

#if TRESTLE_HAVE_CUDA

#include "cuda_ctx.h"
#include "cuda_error.h"

typedef CUresult(CUDAAPI *init_fn)(unsigned);
typedef CUresult(CUDAAPI *device_get_fn)(CUdevice *, int);
typedef CUresult(CUDAAPI *granularity_fn)(size_t *, const CUmemAllocationProp *,
                                          CUmemAllocationGranularity_flags);
typedef CUresult(CUDAAPI *create_fn)(CUmemGenericAllocationHandle *, size_t,
                                     const CUmemAllocationProp *, unsigned long long);
typedef CUresult(CUDAAPI *release_fn)(CUmemGenericAllocationHandle);
typedef CUresult(CUDAAPI *export_fn)(void *, CUmemGenericAllocationHandle,
                                     CUmemAllocationHandleType, unsigned long long);
typedef CUresult(CUDAAPI *import_fn)(CUmemGenericAllocationHandle *, void *,
                                     CUmemAllocationHandleType);
typedef CUresult(CUDAAPI *reserve_fn)(CUdeviceptr *, size_t, size_t, CUdeviceptr,
                                      unsigned long long);
typedef CUresult(CUDAAPI *addr_free_fn)(CUdeviceptr, size_t);
typedef CUresult(CUDAAPI *map_fn)(CUdeviceptr, size_t, size_t, CUmemGenericAllocationHandle,
                                  unsigned long long);
typedef CUresult(CUDAAPI *unmap_fn)(CUdeviceptr, size_t);
typedef CUresult(CUDAAPI *access_fn)(CUdeviceptr, size_t, const CUmemAccessDesc *, size_t);
typedef CUresult(CUDAAPI *error_name_fn)(CUresult, const char **);

typedef struct vmm_api {
    init_fn init;
    device_get_fn device_get;
    granularity_fn granularity;
    create_fn create;
    release_fn release;
    export_fn export_handle;
    import_fn import_handle;
    reserve_fn reserve;
    addr_free_fn addr_free;
    map_fn map;
    unmap_fn unmap;
    access_fn access;
    error_name_fn error_name;
} vmm_api;

/* A mapping a client made (trestle__vmm_map). */
typedef struct vmm_mapping {
    vmm_api api;
    CUmemGenericAllocationHandle handle;
    CUdeviceptr va;
    size_t size;
    bool mapped;
} vmm_mapping;

/* The server's allocation (trestle__vmm_create). */
typedef struct vmm_alloc {
    vmm_api api;
    CUmemGenericAllocationHandle handle;
} vmm_alloc;

static int load(vmm_api *a, int device, trestle_error *err)
{
    cudaError_t e = cudaSuccess;
    a->init = (init_fn)trestle__cuda_driver_entry("cuInit", &e);
    a->device_get = (device_get_fn)trestle__cuda_driver_entry("cuDeviceGet", &e);
    a->granularity = (granularity_fn)trestle__cuda_driver_entry("cuMemGetAllocationGranularity",
                                                                &e);
    a->create = (create_fn)trestle__cuda_driver_entry("cuMemCreate", &e);
    a->release = (release_fn)trestle__cuda_driver_entry("cuMemRelease", &e);
    a->export_handle = (export_fn)trestle__cuda_driver_entry("cuMemExportToShareableHandle", &e);
    a->import_handle = (import_fn)trestle__cuda_driver_entry("cuMemImportFromShareableHandle",
                                                             &e);
    a->reserve = (reserve_fn)trestle__cuda_driver_entry("cuMemAddressReserve", &e);
    a->addr_free = (addr_free_fn)trestle__cuda_driver_entry("cuMemAddressFree", &e);
    a->map = (map_fn)trestle__cuda_driver_entry("cuMemMap", &e);
    a->unmap = (unmap_fn)trestle__cuda_driver_entry("cuMemUnmap", &e);
    a->access = (access_fn)trestle__cuda_driver_entry("cuMemSetAccess", &e);
    a->error_name = (error_name_fn)trestle__cuda_driver_entry("cuGetErrorName", &e);
    if (e != cudaSuccess)
        return trestle__cuda_fail(err, e, device, "finding the CUDA VMM calls (cuMemCreate, "
                                                  "cuMemMap, ...) through "
                                                  "cudaGetDriverEntryPointByVersion");
    if (a->init(0) != CUDA_SUCCESS)
        return trestle__error_simple(err, TRESTLE_E_NO_DEVICE, "CUDA device %d: cuInit failed: "
                                     "no usable CUDA driver", device);
    return TRESTLE_OK;
}

static int drv_fail(const vmm_api *a, trestle_error *err, CUresult r, int device,
                    const char *what, uint64_t bytes)
{
    const char *name = "?";
    if (a->error_name)
        a->error_name(r, &name);
    int code = r == CUDA_ERROR_OUT_OF_MEMORY ? TRESTLE_E_NOMEM
               : r == CUDA_ERROR_INVALID_DEVICE || r == CUDA_ERROR_NO_DEVICE
                   ? TRESTLE_E_NO_DEVICE
                   : TRESTLE_E_CUDA;
    if (code == TRESTLE_E_NOMEM)
        return trestle__error_simple(err, code, "device tier (CUDA device %d): cannot allocate "
                                     "%.2f GiB (%llu bytes): %s failed: %s", device,
                                     (double)bytes / (double)(1ull << 30),
                                     (unsigned long long)bytes, what, name);
    return trestle__error_simple(err, code, "CUDA device %d: %s failed: %s (%d)", device, what,
                                 name, (int)r);
}

static void prop_of(CUmemAllocationProp *p, CUdevice dev)
{
    memset(p, 0, sizeof *p);
    p->type = CU_MEM_ALLOCATION_TYPE_PINNED;
    p->location.type = CU_MEM_LOCATION_TYPE_DEVICE;
    p->location.id = dev;
    p->requestedHandleTypes = CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR;
}

/* The device's handle and allocation properties, and its granularity. */
static int granule(const vmm_api *a, int device, CUmemAllocationProp *prop, size_t *gran,
                   trestle_error *err)
{
    CUdevice dev;
    CUresult r;
    if ((r = a->device_get(&dev, device)) != CUDA_SUCCESS)
        return drv_fail(a, err, r, device, "cuDeviceGet", 0);
    prop_of(prop, dev);
    *gran = 0;
    if ((r = a->granularity(gran, prop, CU_MEM_ALLOC_GRANULARITY_MINIMUM)) != CUDA_SUCCESS ||
        *gran == 0)
        return drv_fail(a, err, r, device, "cuMemGetAllocationGranularity", 0);
    return TRESTLE_OK;
}

int trestle__vmm_granularity(int device, uint64_t *out, trestle_error *err)
{
    vmm_api a;
    CUmemAllocationProp prop;
    size_t gran;
    int rc = load(&a, device, err);
    if (rc == TRESTLE_OK)
        rc = granule(&a, device, &prop, &gran, err);
    *out = rc == TRESTLE_OK ? gran : 0;
    return rc;
}

int trestle__vmm_create(int device, uint64_t bytes, void **alloc, int *fd, uint64_t *region,
                        trestle_error *err)
{
    vmm_alloc *v = calloc(1, sizeof *v);
    CUmemAllocationProp prop;
    CUresult r;
    size_t gran = 0;
    int rc, shared = -1;
    bool created = false;

    *alloc = NULL;
    *fd = -1;
    *region = 0;
    TR_FAIL_IF(!v, err, TRESTLE_E_NOMEM, "out of memory");
    TR_FORWARD(load(&v->api, device, err));
    /* Driver calls only: no cudaSetDevice, no context made current. */
    TR_FORWARD(granule(&v->api, device, &prop, &gran, err));
    uint64_t size = (bytes ? bytes : 1) + gran - 1;
    size -= size % gran;
    if ((r = v->api.create(&v->handle, (size_t)size, &prop, 0)) != CUDA_SUCCESS) {
        rc = drv_fail(&v->api, err, r, device, "cuMemCreate", size);
        goto fail;
    }
    created = true;
    if ((r = v->api.export_handle(&shared, v->handle, CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR,
                                  0)) != CUDA_SUCCESS) {
        rc = drv_fail(&v->api, err, r, device, "cuMemExportToShareableHandle", size);
        goto fail;
    }
    fcntl(shared, F_SETFD, FD_CLOEXEC);
    *alloc = v;
    *fd = shared;
    *region = size;
    return TRESTLE_OK;
fail:
    if (created)
        v->api.release(v->handle);
    free(v);
    return rc;
}

void trestle__vmm_release(void *alloc)
{
    vmm_alloc *v = alloc;
    if (!v)
        return;
    v->api.release(v->handle);
    free(v);
}

/* Import, reserve, map and allow access, undoing each step when a later
 * one fails: the first failure's result, and its call in *step. */
static CUresult map_steps(vmm_mapping *m, int fd, int device, bool writable, const char **step)
{
    CUmemAccessDesc acc;
    CUresult r;
    memset(&acc, 0, sizeof acc);
    acc.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
    acc.location.id = device;
    acc.flags = writable ? CU_MEM_ACCESS_FLAGS_PROT_READWRITE : CU_MEM_ACCESS_FLAGS_PROT_READ;
    *step = "cuMemImportFromShareableHandle";
    r = m->api.import_handle(&m->handle, (void *)(uintptr_t)fd,
                             CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR);
    if (r != CUDA_SUCCESS)
        return r;
    *step = "cuMemAddressReserve";
    if ((r = m->api.reserve(&m->va, m->size, 0, 0, 0)) != CUDA_SUCCESS)
        goto release;
    *step = "cuMemMap";
    if ((r = m->api.map(m->va, m->size, 0, m->handle, 0)) != CUDA_SUCCESS)
        goto free_va;
    *step = writable ? "cuMemSetAccess (read-write)" : "cuMemSetAccess (read-only)";
    if ((r = m->api.access(m->va, m->size, &acc, 1)) == CUDA_SUCCESS)
        return r;
    m->api.unmap(m->va, m->size);
free_va:
    m->api.addr_free(m->va, m->size);
release:
    m->api.release(m->handle);
    return r;
}

int trestle__vmm_map(int fd, int device, uint64_t region, bool writable, void **mapping,
                     void **base, trestle_error *err)
{
    vmm_mapping *m = calloc(1, sizeof *m);
    trestle__ctx_api ctx;
    cudaError_t ce;
    CUresult r = CUDA_SUCCESS;
    const char *step = "";
    int rc;

    *mapping = NULL;
    *base = NULL;
    TR_FAIL_IF(!m, err, TRESTLE_E_NOMEM, "out of memory");
    TR_FORWARD(load(&m->api, device, err));
    TR_FORWARD(trestle__cuda_load_api(&ctx, device, err));
    m->size = (size_t)region;
    /* In the caller's thread, on `device`, its context put back after. */
    TRESTLE__WITH_DEVICE(&ctx, device, ce, r = map_steps(m, fd, device, writable, &step));
    if (ce != cudaSuccess) {
        rc = trestle__cuda_fail(err, ce, device, "making the device current");
        goto fail;
    }
    if (r != CUDA_SUCCESS) {
        rc = drv_fail(&m->api, err, r, device, step, region);
        goto fail;
    }
    m->mapped = true;
    *mapping = m;
    *base = (void *)(uintptr_t)m->va;
    return TRESTLE_OK;
fail:
    free(m);
    return rc;
}

void trestle__vmm_unmap(void *mapping)
{
    vmm_mapping *m = mapping;
    if (!m)
        return;
    if (m->mapped) {
        m->api.unmap(m->va, m->size);
        m->api.addr_free(m->va, m->size);
        m->api.release(m->handle);
    }
    free(m);
}

#else /* no CUDA */

static int no_cuda(trestle_error *err)
{
    return trestle__error_simple(err, TRESTLE_E_NO_DEVICE, "the device tier needs a CUDA build "
                                 "of trestle (this one has no CUDA)");
}

int trestle__vmm_create(int device, uint64_t bytes, void **alloc, int *fd, uint64_t *region,
                        trestle_error *err)
{
    *alloc = NULL;
    *fd = -1;
    *region = 0;
    return no_cuda(err);
}

void trestle__vmm_release(void *alloc) { (void)alloc; }

int trestle__vmm_granularity(int device, uint64_t *out, trestle_error *err)
{
    *out = 0;
    return no_cuda(err);
}

int trestle__vmm_map(int fd, int device, uint64_t region, bool writable, void **mapping,
                     void **base, trestle_error *err)
{
    *mapping = NULL;
    *base = NULL;
    return no_cuda(err);
}

void trestle__vmm_unmap(void *mapping) { (void)mapping; }

#endif /* TRESTLE_HAVE_CUDA */
