/*
 * resident_tiers.c - the server's entries as memory: what each tier holds
 * (host, or one device's), the tier's name in messages, and dropping an
 * entry with everything it holds (its memfd or device allocation, the
 * server's pinned view, a check in progress). Below both the requests
 * (resident_entries.c) and the allocation (resident_alloc.c), which both
 * drop entries and count tiers.
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "memfd_tier.h"
#include "resident_state.h"
#include "vmm_tier.h"

const char *trestle__server_tier_name(int tier, int device, char *buf, size_t cap)
{
    if (tier == TRESTLE__TIER_HOST)
        snprintf(buf, cap, "host tier");
    else
        snprintf(buf, cap, "device tier (CUDA device %d)", device);
    return buf;
}

uint64_t trestle__server_tier_used(const trestle_server *s, int tier, int device)
{
    uint64_t used = 0;
    for (const trestle__entry *e = s->entries; e; e = e->next)
        if (e->key.tier == tier && (tier == TRESTLE__TIER_HOST || e->key.device == device))
            used += e->region_bytes;
    return used;
}

void trestle__server_check_free(trestle__entry *e)
{
    if (e->check) {
        if (e->check->view != e->pinned)
            munmap((void *)e->check->view, (size_t)e->region_bytes);
        free(e->check);
        e->check = NULL;
    }
}

void trestle__server_drop(trestle_server *s, trestle__entry *e)
{
    for (trestle__entry **pp = &s->entries; *pp; pp = &(*pp)->next)
        if (*pp == e) {
            *pp = e->next;
            break;
        }
    if (e->ro_fd >= 0)
        close(e->ro_fd);
    if (e->fd >= 0)
        close(e->fd);
    if (e->alloc) {
        close(e->alloc->fd);
        free(e->alloc);
    }
    trestle__server_check_free(e);
    if (e->pinned)
        munmap((void *)e->pinned, (size_t)e->region_bytes); /* unlocks it */
    trestle__vmm_release(e->vmm);
    trestle__wire_key_free(&e->key);
    trestle__wire_manifest_free(&e->manifest);
    free(e);
}

void trestle__server_entries_free(trestle_server *s)
{
    while (s->entries)
        trestle__server_drop(s, s->entries);
}
