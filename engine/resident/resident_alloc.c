/*
 * resident_alloc.c - the server's ALLOC request: memory for a preload to
 * fill, within the tier's cap (evicting the least recently used entries no
 * client holds), every page allocated before the preload gets it.
 *
 * Allocating is zeroing: a few GB/s, so a minute for a model of hundreds
 * of GB. The server's one thread must not spend that minute deaf to the
 * processes that restart meanwhile and want to attach (they would time out
 * and read from storage), so host memory is allocated a slice at a time,
 * one slice per pass of the event loop (trestle__server_alloc_step), and
 * the ALLOC reply goes out when the last slice is in. The memory counts
 * against the cap from the start. The device tier's cuMemCreate is one
 * driver call and stays one.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "checked.h"
#include "error.h"
#include "memfd_tier.h"
#include "resident_state.h"
#include "vmm_tier.h"

/* One pass's slice: ~10-20 ms of zeroing, the most an attach waits for it. */
#define ALLOC_SLICE_BYTES (64ull << 20)

static const char *base_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

/* ---- ALLOC ---- */

/* The published entry of this tier no client holds that was used least
 * recently, or NULL. */
static trestle__entry *lru_idle(trestle_server *s, int tier, int device)
{
    trestle__entry *best = NULL;
    for (trestle__entry *e = s->entries; e; e = e->next)
        if (e->published && e->clients == 0 && e->key.tier == tier &&
            (tier == TRESTLE__TIER_HOST || e->key.device == device) &&
            (!best || e->last_used_ns < best->last_used_ns))
            best = e;
    return best;
}

/* Make room for `need` bytes under the tier's cap: TRESTLE_OK or an ERROR
 * reply already queued (false). */
static bool make_room(trestle_server *s, trestle__conn *c, int tier, int device, uint64_t need)
{
    uint64_t cap = tier == TRESTLE__TIER_HOST ? s->opt.host_cap : s->opt.device_cap;
    char tn[64], h1[32], h2[32], h3[32];
    if (cap == 0)
        return true;
    trestle__server_tier_name(tier, device, tn, sizeof tn);
    trestle__human_bytes(need, h1, sizeof h1);
    trestle__human_bytes(cap, h2, sizeof h2);
    if (need > cap) {
        trestle__server_log(s, "preload by pid %d refused: it needs %s, over the %s cap of %s",
                            (int)c->pid, h1, tn, h2);
        trestle__conn_error(s, c, TRESTLE_E_NOMEM, "%s: the checkpoint needs %s (%llu bytes), "
                            "more than the tier's cap of %s (%llu bytes)", tn, h1,
                            (unsigned long long)need, h2, (unsigned long long)cap);
        return false;
    }
    for (;;) {
        uint64_t used = trestle__server_tier_used(s, tier, device);
        if (used + need <= cap)
            return true;
        trestle__entry *victim = lru_idle(s, tier, device);
        if (!victim) {
            trestle__human_bytes(cap - used, h3, sizeof h3);
            trestle__server_log(s, "preload by pid %d refused: %s cap %s, %s free, the rest "
                                "held by entries clients attach", (int)c->pid, tn, h2, h3);
            trestle__conn_error(s, c, TRESTLE_E_NOMEM, "%s: the checkpoint needs %s (%llu "
                                "bytes) and the tier's cap of %s has %s free; the rest is "
                                "held by entries that clients attach (or preloads in "
                                "progress), which are not evicted", tn, h1,
                                (unsigned long long)need, h2, h3);
            return false;
        }
        trestle__human_bytes(victim->region_bytes, h3, sizeof h3);
        trestle__server_log(s, "evicted %s (%s, least recently used) to make room under the %s "
                            "cap of %s", victim->key.id.path, h3, tn, h2);
        trestle__server_drop(s, victim);
    }
}

/* The reply to an ALLOC whose memory is all there (logged as the preload's
 * start); false when it could not be queued. */
static bool alloc_reply(trestle_server *s, trestle__conn *c, trestle__entry *e)
{
    char tn[64], h[32];
    trestle__server_tier_name(e->key.tier, e->key.device, tn, sizeof tn);
    trestle__human_bytes(e->bytes, h, sizeof h);
    trestle__server_log(s, "preload of %s by pid %d: %s (%u tensors) on the %s", e->key.id.path,
                        (int)c->pid, h, e->tensors, tn);
    trestle__wire_msg m = { .type = TRESTLE__MSG_ALLOC_REPLY };
    m.alloc_reply.entry_id = e->id;
    m.alloc_reply.region_bytes = e->region_bytes;
    m.alloc_reply.pages = (uint8_t)e->pages;
    return trestle__conn_send(s, c, &m, &e->fd, 1);
}

/* An allocation that failed: said to the preload, the entry dropped. */
static bool alloc_failed(trestle_server *s, trestle__conn *c, trestle__entry *e,
                         const trestle_error *err)
{
    trestle__server_log(s, "preload of %s by pid %d failed: %s", e->key.id.path, (int)c->pid,
                        err->message);
    c->pending = 0;
    c->waiting = false;
    trestle__server_drop(s, e);
    return trestle__conn_error(s, c, err->code, "%s", err->message);
}

/* Whether host memory has room for `e` (ordinary pages: a hugetlb pool is
 * memory set aside already) besides what allocations in progress will
 * still take; else the reason, naming the tier, the bytes and the bound. */
static bool host_has_room(const trestle_server *s, const trestle__entry *e, trestle_error *err)
{
    uint64_t avail, pending = 0;
    char source[PATH_MAX + 64], h1[32], h2[32], h3[32];
    if (e->alloc->pages == TRESTLE__MEMFD_PAGES_HUGETLB || !trestle__host_room(&avail, source,
                                                                               sizeof source))
        return true;
    for (const trestle__entry *o = s->entries; o; o = o->next)
        if (o->alloc)
            pending += o->alloc->bytes - o->alloc->filled;
    if (e->alloc->bytes <= avail && pending <= avail - e->alloc->bytes)
        return true;
    trestle__human_bytes(e->alloc->bytes, h1, sizeof h1);
    trestle__human_bytes(avail, h2, sizeof h2);
    trestle__human_bytes(pending, h3, sizeof h3);
    char also[96] = "";
    if (pending)
        snprintf(also, sizeof also, ", of which preloads in progress will still take %s", h3);
    trestle__error_set(err, TRESTLE_E_NOMEM, ENOMEM, NULL, NULL, -1, (int64_t)e->alloc->bytes,
                       "host tier: the checkpoint needs %s (%llu bytes) and %s is available "
                       "(%s)%s; allocating it would bring in the OOM killer", h1,
                       (unsigned long long)e->alloc->bytes, h2, source, also);
    return false;
}

bool trestle__server_alloc(trestle_server *s, trestle__conn *c, const trestle__wire_msg *req)
{
    const trestle__wire_key *k = &req->alloc.key;
    char name[64];
    trestle_error err;
    long page = sysconf(_SC_PAGESIZE);
    uint64_t need;

    if (c->pending)
        return trestle__conn_error(s, c, TRESTLE_E_SERVER, "this connection is already filling "
                                   "entry %llu: one preload per connection",
                                   (unsigned long long)c->pending);
    /* What the allocation will hold: whole pages, or whole VMM granules. */
    uint64_t unit = (uint64_t)page;
    int rc;
    if (k->tier == TRESTLE__TIER_DEVICE &&
        (rc = trestle__vmm_granularity(k->device, &unit, &err)) != TRESTLE_OK)
        return trestle__conn_error(s, c, rc, "%s", err.message);
    if (!tr_add_u64(req->alloc.bytes ? req->alloc.bytes : 1, unit - 1, &need))
        return trestle__conn_error(s, c, TRESTLE_E_NOMEM, "a preload of %llu bytes cannot be "
                                   "held", (unsigned long long)req->alloc.bytes);
    need = need / unit * unit;
    if (!make_room(s, c, k->tier, k->device, need))
        return true;
    trestle__entry *e = calloc(1, sizeof *e);
    if (!e || !trestle__wire_key_copy(&e->key, k)) {
        free(e);
        return trestle__conn_error(s, c, TRESTLE_E_NOMEM, "out of memory");
    }
    e->fd = e->ro_fd = -1;
    e->bytes = req->alloc.bytes;
    e->tensors = req->alloc.tensors;
    snprintf(name, sizeof name, "trestle:%s", base_name(k->id.path));
    if (k->tier == TRESTLE__TIER_HOST) {
        e->alloc = malloc(sizeof *e->alloc);
        rc = !e->alloc ? trestle__error_simple(&err, TRESTLE_E_NOMEM, "out of memory")
                       : trestle__memfd_open(name, req->alloc.bytes, s->opt.huge_pages != 0,
                                             e->alloc, &err);
        if (rc == TRESTLE_OK && !host_has_room(s, e, &err)) {
            close(e->alloc->fd);
            rc = err.code;
        }
        if (rc == TRESTLE_OK) {
            e->region_bytes = e->alloc->bytes;
            e->pages = e->alloc->pages;
        } else {
            free(e->alloc);
            e->alloc = NULL;
        }
    } else {
        rc = trestle__vmm_create(k->device, req->alloc.bytes, &e->vmm, &e->fd, &e->region_bytes,
                                 &err);
    }
    if (rc != TRESTLE_OK) {
        trestle__server_log(s, "preload of %s by pid %d failed: %s", k->id.path, (int)c->pid,
                            err.message);
        trestle__wire_key_free(&e->key);
        free(e);
        return trestle__conn_error(s, c, rc, "%s", err.message);
    }
    /* Huge pages round up further than planned: the cap still holds. */
    if (e->region_bytes > need && !make_room(s, c, k->tier, k->device, e->region_bytes)) {
        if (e->alloc) {
            close(e->alloc->fd);
            free(e->alloc);
        }
        close(e->fd);
        trestle__vmm_release(e->vmm);
        trestle__wire_key_free(&e->key);
        free(e);
        return true;
    }
    e->id = s->next_id++;
    e->next = s->entries;
    s->entries = e;
    c->pending = e->id;
    if (e->alloc) {
        c->waiting = true; /* the reply waits for the last slice */
        return true;
    }
    return alloc_reply(s, c, e);
}

void trestle__server_alloc_step(trestle_server *s)
{
    for (trestle__conn *c = s->conns; c; c = c->next) {
        trestle__entry *e = NULL;
        if (c->dead || !c->waiting)
            continue;
        for (e = s->entries; e && e->id != c->pending; e = e->next) {
        }
        if (!e || !e->alloc) /* waiting for its COMMIT's check instead */
            continue;
        trestle_error err;
        if (trestle__memfd_fill(e->alloc, ALLOC_SLICE_BYTES, &err) != TRESTLE_OK) {
            if (!alloc_failed(s, c, e, &err))
                c->close_after = true;
            continue;
        }
        /* A hugetlb pool that ran short: the region is smaller now. */
        e->region_bytes = e->alloc->bytes;
        e->pages = e->alloc->pages;
        if (e->alloc->filled < e->alloc->bytes)
            continue;
        e->fd = e->alloc->fd;
        free(e->alloc);
        e->alloc = NULL;
        c->waiting = false;
        if (!alloc_reply(s, c, e))
            c->close_after = true;
    }
}
