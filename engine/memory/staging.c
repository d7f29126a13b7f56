/*
 * staging.c - a plan's staging memory, kept across restores (staging.h).
 *
 * Each area is one region of fresh pages from mmap: 2 MiB-aligned and
 * advised into transparent huge pages when large (a restore touches its
 * staging memory fresh, and first-touch faults on 4 KiB pages can cost
 * more than the reads themselves, on virtual machines especially), bound
 * to the GPU's NUMA node before anything touches them (engine/memory/numa.h:
 * cudaHostRegister faults every page in, where the binding decides), and
 * one registration when pinned. Fresh from mmap because heap memory may
 * already have been touched, on whichever node that happened.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "cuda_host.h"
#include "error.h"
#include "numa.h"
#include "staging.h"

#define HUGE_PAGE ((size_t)2 << 20) /* PMD size with 4 KiB base pages (x86-64, arm64) */
#define PAGE 4096

enum how { HOW_NONE, HOW_HOST, HOW_REGISTERED, HOW_HOSTALLOC };

typedef struct area {
    uint8_t *base;
    size_t bytes;
    int how;        /* enum how */
    int device;     /* the device it was pinned through (for unpinning), or -1 */
    int node;       /* the NUMA node it was placed for, or -1 */
    bool bound;     /* the kernel took the binding to `node` */
} area;

struct trestle__staging {
    area a[TRESTLE__STAGING_AREAS];
    trestle__kept *kept;  /* what copiers keep for the next restore, one per device */
    const char *refused; /* why the host refused to register ordinary pages (the
                            runtime's static string): use cudaHostAlloc; or NULL */
    char note[160];
};

static const char *const area_names[TRESTLE__STAGING_AREAS] = {
    "staging buffers", "dtype conversion buffers"
};

/* The allocation failure of `count` buffers of `each` bytes of area_id. */
static int nomem(trestle_error *err, int area_id, unsigned count, size_t each)
{
    return trestle__error_set(err, TRESTLE_E_NOMEM, ENOMEM, NULL, NULL, -1,
                              (int64_t)count * (int64_t)each, "cannot allocate %u %s of %zu bytes",
                              count, area_names[area_id], each);
}

/* A new staging object with nothing in it, or NULL. */
static trestle__staging *staging_new(void)
{
    trestle__staging *s = calloc(1, sizeof *s);
    for (int i = 0; s && i < TRESTLE__STAGING_AREAS; i++)
        s->a[i].node = -1;
    return s;
}

/* `bytes` (whole pages) of untouched memory, 2 MiB-aligned when that
 * large, bound to `node` when it is >= 0 (*bound says if the kernel took
 * it); NULL when out of memory. */
static uint8_t *host_alloc(size_t bytes, int node, bool *bound)
{
    size_t align = bytes >= HUGE_PAGE ? HUGE_PAGE : PAGE;
    size_t span = bytes + align - PAGE;
    uint8_t *m = mmap(NULL, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    *bound = false;
    if (m == MAP_FAILED)
        return NULL;
    /* Keep the aligned part: unmap the head before it and the tail after. */
    uint8_t *p = (uint8_t *)(((uintptr_t)m + align - 1) & ~(uintptr_t)(align - 1));
    if (p > m)
        munmap(m, (size_t)(p - m));
    if (p + bytes < m + span)
        munmap(p + bytes, (size_t)(m + span - (p + bytes)));
    if (align == HUGE_PAGE)
        madvise(p, bytes & ~(HUGE_PAGE - 1), MADV_HUGEPAGE); /* advice: failure is harmless */
    *bound = node >= 0 && trestle__numa_bind(p, bytes, node) == 0;
    return p;
}

static void area_free(area *a)
{
    if (a->how == HOW_REGISTERED)
        trestle__cuda_unpin(a->device, a->base);
    if (a->how == HOW_HOSTALLOC)
        trestle__cuda_host_free(a->device, a->base);
    else if (a->base)
        munmap(a->base, a->bytes);
    memset(a, 0, sizeof *a);
    a->node = -1;
}

/* Pinned memory for `device`: registered pages, or cudaHostAlloc'd where
 * registering is refused. */
static int pinned_alloc(trestle__staging *s, int area_id, unsigned count, size_t each,
                        size_t bytes, int device, int node, trestle_error *err)
{
    area *a = &s->a[area_id];
    if (!s->refused) {
        bool bound;
        uint8_t *p = host_alloc(bytes, node, &bound);
        if (!p)
            return nomem(err, area_id, count, each);
        const char *refused = NULL;
        trestle_error perr;
        if (trestle__cuda_pin(device, p, bytes, &refused, &perr) == TRESTLE_OK) {
            *a = (area){ p, bytes, HOW_REGISTERED, device, node, bound };
            return TRESTLE_OK;
        }
        munmap(p, bytes);
        if (!refused) {
            if (err)
                *err = perr;
            return perr.code;
        }
        /* Whatever the reason, the runtime's own pinned allocator may
         * still succeed: try it before giving up (and for every later
         * area of this plan, which would be refused alike). */
        s->refused = refused;
        snprintf(s->note, sizeof s->note, "cudaHostRegister refused (%s): staging is "
                 "cudaHostAlloc memory", refused);
    }
    /* The driver places these pages itself, where first touched: not
     * bound. */
    void *p = NULL;
    const char *why = NULL;
    int rc = trestle__cuda_host_alloc(device, bytes, &p, &why, err);
    if (rc != TRESTLE_OK && why)
        return trestle__error_set(err, rc, 0, NULL, NULL, -1, (int64_t)bytes,
                                  "cannot pin %zu bytes of staging memory for CUDA device %d "
                                  "(cudaHostRegister: %s; cudaHostAlloc: %s); lower the "
                                  "staging size (--staging, staging_bytes) or free host memory",
                                  bytes, device, s->refused, why);
    if (rc != TRESTLE_OK)
        return rc;
    *a = (area){ p, bytes, HOW_HOSTALLOC, device, node, false };
    return TRESTLE_OK;
}

int trestle__staging_get(trestle__staging **sp, int area_id, unsigned count, size_t each,
                         int device, int node, trestle__faults *faults, uint8_t **out,
                         trestle_error *err)
{
    size_t bytes;
    *out = NULL;
    if (count == 0 || each > SIZE_MAX / count - PAGE)
        return nomem(err, area_id, count, each);
    bytes = (size_t)count * each;
    if (!*sp && !(*sp = staging_new()))
        return trestle__error_simple(err, TRESTLE_E_NOMEM, "out of memory");
    trestle__staging *s = *sp;
    area *a = &s->a[area_id];
    bool pinned = a->how == HOW_REGISTERED || a->how == HOW_HOSTALLOC;

    bytes = (bytes + PAGE - 1) & ~(size_t)(PAGE - 1);
    if (a->how != HOW_NONE && a->bytes >= bytes && (device < 0 || pinned) &&
        (node < 0 || a->node == node)) {
        *out = a->base;
        return TRESTLE_OK;
    }
    area_free(a);
    if (faults && faults->staging_nomem && area_id == TRESTLE__STAGING_READS) {
        atomic_fetch_add(&faults->injected, 1);
        return nomem(err, area_id, count, each);
    }
    if (device >= 0) {
        int rc = pinned_alloc(s, area_id, count, each, bytes, device, node, err);
        if (rc != TRESTLE_OK)
            return rc;
    } else {
        bool bound;
        uint8_t *p = host_alloc(bytes, node, &bound);
        if (!p)
            return nomem(err, area_id, count, each);
        *a = (area){ p, bytes, HOW_HOST, -1, node, bound };
    }
    *out = a->base;
    return TRESTLE_OK;
}

const char *trestle__staging_note(const trestle__staging *s)
{
    return s ? s->note : "";
}

bool trestle__staging_bound(const trestle__staging *s, int node)
{
    bool any = false;
    for (int i = 0; s && i < TRESTLE__STAGING_AREAS; i++) {
        if (s->a[i].how == HOW_NONE)
            continue;
        if (s->a[i].node != node || !s->a[i].bound)
            return false;
        any = true;
    }
    return any;
}

trestle__kept *trestle__staging_take(trestle__staging *s, int device)
{
    for (trestle__kept **pp = s ? &s->kept : NULL; pp && *pp; pp = &(*pp)->next) {
        trestle__kept *k = *pp;
        if (k->device == device) {
            *pp = k->next;
            k->next = NULL;
            return k;
        }
    }
    return NULL;
}

void trestle__staging_keep(trestle__staging **sp, trestle__kept *k)
{
    if (!*sp && !(*sp = staging_new())) {
        k->release(k);
        return;
    }
    trestle__kept *old = trestle__staging_take(*sp, k->device);
    if (old)
        old->release(old);
    k->next = (*sp)->kept;
    (*sp)->kept = k;
}

void trestle__staging_free(trestle__staging *s)
{
    if (!s)
        return;
    /* First: a kept stream's copies read the areas (it is idle by now, and
     * its release makes sure). */
    while (s->kept) {
        trestle__kept *k = s->kept;
        s->kept = k->next;
        k->release(k);
    }
    for (int i = 0; i < TRESTLE__STAGING_AREAS; i++)
        area_free(&s->a[i]);
    free(s);
}
