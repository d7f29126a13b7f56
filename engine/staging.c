/*
 * staging.c - a plan's staging memory, kept across restores (staging.h).
 *
 * Each area is one region: 2 MiB-aligned and advised into transparent huge
 * pages when large (a restore touches its staging memory fresh, and
 * first-touch faults on 4 KiB pages can cost more than the reads
 * themselves, on virtual machines especially), and one registration when
 * pinned.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "copy.h"
#include "error.h"
#include "staging.h"

#define HUGE_PAGE ((size_t)2 << 20) /* PMD size with 4 KiB base pages (x86-64, arm64) */
#define PAGE 4096

enum how { HOW_NONE, HOW_HOST, HOW_REGISTERED, HOW_HOSTALLOC };

typedef struct area {
    uint8_t *base;
    size_t bytes;
    int how;        /* enum how */
    int device;     /* the device it was pinned through (for unpinning), or -1 */
} area;

struct trestle__staging {
    area a[TRESTLE__STAGING_AREAS];
    bool refused;   /* the host refused to register ordinary pages: use cudaHostAlloc */
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

static uint8_t *host_alloc(size_t bytes)
{
    void *p = NULL;
    size_t align = bytes >= HUGE_PAGE ? HUGE_PAGE : PAGE;
    if (posix_memalign(&p, align, bytes) != 0)
        return NULL;
    if (align == HUGE_PAGE)
        madvise(p, bytes & ~(HUGE_PAGE - 1), MADV_HUGEPAGE); /* advice: failure is harmless */
    return p;
}

static void area_free(area *a)
{
    if (a->how == HOW_REGISTERED)
        trestle__cuda_unpin(a->device, a->base);
    if (a->how == HOW_HOSTALLOC)
        trestle__cuda_host_free(a->device, a->base);
    else
        free(a->base);
    memset(a, 0, sizeof *a);
}

/* Pinned memory for `device`: registered pages, or cudaHostAlloc'd where
 * registering is refused. */
static int pinned_alloc(trestle__staging *s, int area_id, unsigned count, size_t each,
                        size_t bytes, int device, trestle_error *err)
{
    area *a = &s->a[area_id];
    if (!s->refused) {
        uint8_t *p = host_alloc(bytes);
        if (!p)
            return nomem(err, area_id, count, each);
        bool refused = false;
        trestle_error perr;
        if (trestle__cuda_pin(device, p, bytes, &refused, &perr) == TRESTLE_OK) {
            *a = (area){ p, bytes, HOW_REGISTERED, device };
            return TRESTLE_OK;
        }
        free(p);
        if (!refused) {
            if (err)
                *err = perr;
            return perr.code;
        }
        s->refused = true;
        /* perr: "cannot pin N bytes ... (cudaHostRegister: REASON); ..." */
        const char *why = strstr(perr.message, "(cudaHostRegister: ");
        size_t len = why ? strcspn(why + 19, ")") : 0;
        snprintf(s->note, sizeof s->note, "cudaHostRegister refused (%.*s): staging is "
                 "cudaHostAlloc memory", (int)len, why ? why + 19 : "");
    }
    void *p = NULL;
    int rc = trestle__cuda_host_alloc(device, bytes, &p, err);
    if (rc != TRESTLE_OK)
        return rc;
    *a = (area){ p, bytes, HOW_HOSTALLOC, device };
    return TRESTLE_OK;
}

int trestle__staging_get(trestle__staging **sp, int area_id, unsigned count, size_t each,
                         int device, trestle__faults *faults, uint8_t **out, trestle_error *err)
{
    size_t bytes;
    *out = NULL;
    if (count == 0 || each > SIZE_MAX / count - PAGE)
        return nomem(err, area_id, count, each);
    bytes = (size_t)count * each;
    if (!*sp && !(*sp = calloc(1, sizeof **sp)))
        return trestle__error_simple(err, TRESTLE_E_NOMEM, "out of memory");
    trestle__staging *s = *sp;
    area *a = &s->a[area_id];
    bool pinned = a->how == HOW_REGISTERED || a->how == HOW_HOSTALLOC;

    bytes = (bytes + PAGE - 1) & ~(size_t)(PAGE - 1);
    if (a->how != HOW_NONE && a->bytes >= bytes && (device < 0 || pinned)) {
        *out = a->base;
        return TRESTLE_OK;
    }
    area_free(a);
    if (faults && faults->staging_nomem && area_id == TRESTLE__STAGING_READS) {
        atomic_fetch_add(&faults->injected, 1);
        return nomem(err, area_id, count, each);
    }
    if (device >= 0) {
        int rc = pinned_alloc(s, area_id, count, each, bytes, device, err);
        if (rc != TRESTLE_OK)
            return rc;
    } else {
        uint8_t *p = host_alloc(bytes);
        if (!p)
            return nomem(err, area_id, count, each);
        *a = (area){ p, bytes, HOW_HOST, -1 };
    }
    *out = a->base;
    return TRESTLE_OK;
}

const char *trestle__staging_note(const trestle__staging *s)
{
    return s ? s->note : "";
}

void trestle__staging_free(trestle__staging *s)
{
    if (!s)
        return;
    for (int i = 0; i < TRESTLE__STAGING_AREAS; i++)
        area_free(&s->a[i]);
    free(s);
}
