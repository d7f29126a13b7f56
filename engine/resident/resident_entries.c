/*
 * resident_entries.c - the server's entries and the requests on them:
 * COMMIT (check the manifest, seal, publish, replace older versions),
 * ATTACH (a reference and a read-only descriptor, or why not), LIST and
 * EVICT; ALLOC is resident_alloc.c's, what each tier holds and dropping an
 * entry resident_tiers.c's.
 *
 * The server trusts nothing a request says about memory: a manifest must
 * describe exactly the bytes allocated, tensors inside the region, in
 * order, aligned, not overlapping, sized by their dtype and shape. It
 * never reads the checkpoint; a version is what the preload and the attach
 * each computed from the files they opened.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "checked.h"
#include "crc32c.h"
#include "error.h"
#include "memfd_tier.h"
#include "resident_state.h"
#include "vmm_tier.h"

_Static_assert(TRESTLE__PAGES_NORMAL == TRESTLE__MEMFD_PAGES_NORMAL &&
                   TRESTLE__PAGES_HUGETLB == TRESTLE__MEMFD_PAGES_HUGETLB &&
                   TRESTLE__PAGES_THP == TRESTLE__MEMFD_PAGES_THP,
               "the wire's page kinds are engine/memory/memfd_tier.h's");

static trestle__entry *find_id(trestle_server *s, uint64_t id)
{
    for (trestle__entry *e = s->entries; e; e = e->next)
        if (e->id == id)
            return e;
    return NULL;
}

static bool same_place(const trestle__wire_key *a, const trestle__wire_key *b)
{
    return strcmp(a->id.path, b->id.path) == 0 && a->tier == b->tier && a->device == b->device;
}

static bool same_key(const trestle__wire_key *a, const trestle__wire_key *b)
{
    return same_place(a, b) && a->digest == b->digest &&
           trestle__wire_identity_equal(&a->id, &b->id);
}

/* ---- COMMIT ---- */

/* Whether a manifest describes exactly the entry's bytes; else the reason. */
static bool manifest_fits(const trestle__entry *e, const trestle__wire_manifest *m,
                          uint64_t *data_bytes, char *why, size_t cap)
{
    uint64_t sum = 0, end = 0;
    if (m->count != e->tensors) {
        snprintf(why, cap, "%u tensors, but the preload announced %u", m->count, e->tensors);
        return false;
    }
    for (uint32_t i = 0; i < m->count; i++) {
        const trestle__wire_tensor *t = &m->tensors[i];
        uint64_t stop, size = trestle_dtype_size((int)t->dtype);
        int64_t elems;
        if (t->offset % TRESTLE__RESIDENT_ALIGN != 0 || t->offset < end ||
            !tr_add_u64(t->offset, t->bytes, &stop) || stop > e->region_bytes) {
            snprintf(why, cap, "tensor %u ('%s') at offset %llu, %llu bytes: not %d-aligned, "
                     "overlapping the one before, or past the %llu bytes allocated", i, t->name,
                     (unsigned long long)t->offset, (unsigned long long)t->bytes,
                     TRESTLE__RESIDENT_ALIGN, (unsigned long long)e->region_bytes);
            return false;
        }
        uint64_t want;
        if (!tr_num_elements((int)t->rank, t->dims, &elems) ||
            (size && (!tr_mul_u64((uint64_t)elems, size, &want) || want != t->bytes))) {
            snprintf(why, cap, "tensor %u ('%s'): %llu bytes do not hold its shape of %s", i,
                     t->name, (unsigned long long)t->bytes, trestle_dtype_name((int)t->dtype));
            return false;
        }
        end = stop;
        sum += t->bytes;
    }
    if (end > e->bytes) {
        snprintf(why, cap, "its tensors end at byte %llu, past the %llu the preload asked for",
                 (unsigned long long)end, (unsigned long long)e->bytes);
        return false;
    }
    *data_bytes = sum;
    return true;
}

/* Publish `e`, whose manifest and bytes are checked: older versions of the
 * checkpoint, and this selection's previous entry, are never served again
 * and go now. The COMMIT_REPLY (false: it could not be queued). */
static bool publish(trestle_server *s, trestle__conn *c, trestle__entry *e, uint64_t data_bytes,
                    bool verified, const char *pin)
{
    char tn[64], h[32];
    unsigned replaced = 0;
    for (trestle__entry *o = s->entries, *next; o; o = next) {
        next = o->next;
        if (o == e || !o->published || !same_place(&o->key, &e->key))
            continue;
        bool stale = !trestle__wire_identity_equal(&o->key.id, &e->key.id);
        if (!stale && o->key.digest != e->key.digest)
            continue;
        trestle__server_log(s, "replaced %s (entry %llu, %s)%s", o->key.id.path,
                            (unsigned long long)o->id,
                            stale ? "an older version of the files" : "the same selection",
                            o->clients ? "; its clients keep their mappings" : "");
        trestle__server_drop(s, o);
        replaced++;
    }
    e->published = true;
    e->bytes = data_bytes;
    e->verified = verified;
    e->loaded_ns = e->last_used_ns = trestle__now_ns();
    c->pending = 0;
    trestle__server_tier_name(e->key.tier, e->key.device, tn, sizeof tn);
    trestle__human_bytes(e->bytes, h, sizeof h);
    trestle__server_log(s, "published %s (entry %llu): %u tensors, %s on the %s%s, %s%s%s",
                        e->key.id.path, (unsigned long long)e->id, e->tensors, h, tn,
                        e->pages == TRESTLE__PAGES_HUGETLB ? " (hugetlb pages)"
                        : e->pages == TRESTLE__PAGES_THP   ? " (transparent huge pages)"
                                                           : "",
                        e->verified ? "every byte CRC-checked" : "NOT fully verified",
                        e->key.tier == TRESTLE__TIER_HOST ? ", and checked by the server in "
                                                            "its sealed memory"
                                                          : "",
                        pin);
    trestle__wire_msg m = { .type = TRESTLE__MSG_COMMIT_REPLY };
    m.commit_reply.entry_id = e->id;
    m.commit_reply.replaced = replaced;
    return trestle__conn_send(s, c, &m, NULL, 0);
}

static bool do_commit(trestle_server *s, trestle__conn *c, const trestle__wire_msg *req)
{
    trestle__entry *e = c->pending ? find_id(s, c->pending) : NULL;
    char why[512];
    trestle_error err;
    if (!e || e->id != req->commit.entry_id || e->alloc || e->check)
        return trestle__conn_error(s, c, TRESTLE_E_SERVER, "COMMIT of entry %llu, which this "
                                   "connection did not allocate",
                                   (unsigned long long)req->commit.entry_id);
    uint64_t data_bytes;
    if (!manifest_fits(e, &req->commit.manifest, &data_bytes, why, sizeof why))
        return trestle__conn_error(s, c, TRESTLE_E_CORRUPT, "the manifest of %s does not fit "
                                   "its memory: %s", e->key.id.path, why);
    if (e->key.tier == TRESTLE__TIER_HOST) {
        if (trestle__memfd_seal(e->fd, &err) != TRESTLE_OK)
            return trestle__conn_error(s, c, err.code, "%s: %s", e->key.id.path, err.message);
        if (e->ro_fd < 0)
            e->ro_fd = trestle__memfd_reopen_readonly(e->fd);
        if (e->ro_fd < 0)
            return trestle__conn_error(s, c, TRESTLE_E_IO, "reopening %s's memory read-only: %s",
                                       e->key.id.path, strerror(errno));
    }
    trestle__wire_manifest_free(&e->manifest);
    if (!trestle__wire_manifest_copy(&e->manifest, &req->commit.manifest))
        return trestle__conn_error(s, c, TRESTLE_E_NOMEM, "out of memory");
    if (e->key.tier != TRESTLE__TIER_HOST) /* the server holds no CUDA context to read it */
        return publish(s, c, e, data_bytes, req->commit.verified != 0, "");
    /* Sealed, the bytes can no longer change: the server checks them
     * against the manifest before anyone maps them, a slice per pass. */
    e->check = calloc(1, sizeof *e->check);
    void *view = e->check ? trestle__memfd_map(e->ro_fd, e->region_bytes, false) : NULL;
    if (!view) {
        free(e->check);
        e->check = NULL;
        return trestle__conn_error(s, c, TRESTLE_E_NOMEM, "mapping %s's memory to check it: %s",
                                   e->key.id.path, strerror(errno));
    }
    e->check->view = view;
    e->check->data_bytes = data_bytes;
    e->check->verified = req->commit.verified != 0;
    c->waiting = true;
    return true;
}

/* One pass's share of checking: ~5-10 ms of CRC-32C. */
#define CHECK_SLICE_BYTES (64ull << 20)

/* Check up to a slice more of `e`'s bytes: 1 done and equal, 0 not done, -1
 * a tensor differs (`why` says which and how). */
static int check_slice(trestle__entry *e, char *why, size_t cap)
{
    trestle__check *k = e->check;
    uint64_t budget = CHECK_SLICE_BYTES;
    while (k->tensor < e->manifest.count) {
        const trestle__wire_tensor *t = &e->manifest.tensors[k->tensor];
        uint64_t n = t->bytes - k->done < budget ? t->bytes - k->done : budget;
        k->crc = trestle__crc32c_extend(k->crc, k->view + t->offset + k->done, (size_t)n);
        k->done += n;
        budget -= n;
        if (k->done < t->bytes)
            return 0;
        if (k->crc != t->crc32c) {
            snprintf(why, cap, "tensor %u ('%s'), %llu bytes at offset %llu: CRC32C 0x%08x in "
                     "memory, not the manifest's 0x%08x", k->tensor, t->name,
                     (unsigned long long)t->bytes, (unsigned long long)t->offset,
                     (unsigned)k->crc, (unsigned)t->crc32c);
            return -1;
        }
        k->tensor++;
        k->done = 0;
        k->crc = 0;
        if (budget == 0)
            return k->tensor == e->manifest.count;
    }
    return 1;
}

/* Lock a slice more of the sealed memory in RAM (the host tier is pinned:
 * never swapped out under the clients that map it); a refusal (the
 * server's RLIMIT_MEMLOCK) unlocks it all and is said at publication. */
static void lock_slice(trestle__entry *e)
{
    trestle__check *k = e->check;
    if (k->lock_errno || k->locked >= e->region_bytes)
        return;
    uint64_t n = e->region_bytes - k->locked < CHECK_SLICE_BYTES ? e->region_bytes - k->locked
                                                                 : CHECK_SLICE_BYTES;
    if (mlock(k->view + k->locked, (size_t)n) != 0) {
        k->lock_errno = errno;
        munlock(k->view, (size_t)k->locked);
        return;
    }
    k->locked += n;
}

void trestle__server_check_step(trestle_server *s)
{
    for (trestle__conn *c = s->conns; c; c = c->next) {
        trestle__entry *e = c->dead || !c->waiting ? NULL : find_id(s, c->pending);
        if (!e || !e->check)
            continue;
        char why[TRESTLE__WIRE_MAX_MESSAGE / 2];
        trestle__check *k = e->check;
        int done = k->crc_done ? 1 : check_slice(e, why, sizeof why);
        k->crc_done = done == 1;
        if (done >= 0)
            lock_slice(e);
        if (done == 0 || (done == 1 && !k->lock_errno && k->locked < e->region_bytes))
            continue;
        c->waiting = false;
        bool queued;
        if (done < 0) {
            trestle__server_log(s, "preload of %s by pid %d refused: its bytes are not what its "
                                "manifest says: %s", e->key.id.path, (int)c->pid, why);
            queued = trestle__conn_error(s, c, TRESTLE_E_CRC_MISMATCH, "%s: the bytes in "
                                         "memory are not what the manifest says: %s; not "
                                         "published", e->key.id.path, why);
            c->pending = 0;
            trestle__server_drop(s, e);
        } else {
            uint64_t data_bytes = k->data_bytes;
            bool verified = k->verified;
            char pin[160] = ", pinned in memory (mlock)";
            if (k->lock_errno)
                snprintf(pin, sizeof pin, ", NOT pinned (mlock: %s; raise the server's "
                         "RLIMIT_MEMLOCK, e.g. LimitMEMLOCK=infinity)", strerror(k->lock_errno));
            else
                e->pinned = k->view;
            trestle__server_check_free(e);
            queued = publish(s, c, e, data_bytes, verified, pin);
        }
        if (!queued)
            c->close_after = true;
    }
}

bool trestle__server_busy(const trestle_server *s)
{
    for (const trestle__entry *e = s->entries; e; e = e->next)
        if (e->alloc || e->check)
            return true;
    return false;
}

/* ---- ATTACH ---- */

static void describe(const trestle__entry *e, trestle__wire_entry *out)
{
    memset(out, 0, sizeof *out);
    out->id = e->id;
    out->key = e->key; /* shallow: the reply is encoded before anything changes */
    out->bytes = e->bytes;
    out->region_bytes = e->region_bytes;
    out->tensors = e->tensors;
    out->clients = e->clients;
    out->loaded_ns = e->loaded_ns;
    out->last_used_ns = e->last_used_ns;
    out->verified = e->verified;
    out->pages = (uint8_t)e->pages;
}

static bool not_resident(trestle_server *s, trestle__conn *c, const trestle__wire_key *k)
{
    const trestle__entry *other = NULL, *elsewhere = NULL;
    char text[TRESTLE__WIRE_MAX_MESSAGE], diff[TRESTLE__WIRE_MAX_MESSAGE / 2], was[64], tn[64];
    uint32_t reason = TRESTLE__NR_ABSENT;
    bool same_version = false;
    for (const trestle__entry *e = s->entries; e; e = e->next) {
        if (!e->published || strcmp(e->key.id.path, k->id.path) != 0)
            continue;
        if (!same_place(&e->key, k)) {
            elsewhere = e;
            continue;
        }
        other = e;
        if (trestle__wire_identity_equal(&e->key.id, &k->id)) {
            same_version = true;
            break;
        }
    }
    if (other && !same_version) {
        reason = TRESTLE__NR_CHANGED;
        trestle__identity_diff(&other->key.id, &k->id, diff, sizeof diff);
        snprintf(text, sizeof text, "%s changed %s since it was preloaded: %s; preload it "
                 "again", k->id.path,
                 trestle__identity_is_url(k->id.path) ? "in its store" : "on disk", diff);
    } else if (other) {
        reason = TRESTLE__NR_OTHER;
        snprintf(text, sizeof text, "%s is resident with another selection of tensors: attach "
                 "with the ops, --graph or --as it was preloaded with, or preload this one",
                 k->id.path);
    } else if (elsewhere) {
        reason = TRESTLE__NR_OTHER;
        snprintf(text, sizeof text, "%s is resident on the %s, not the %s", k->id.path,
                 trestle__server_tier_name(elsewhere->key.tier, elsewhere->key.device, was,
                                           sizeof was),
                 trestle__server_tier_name(k->tier, k->device, tn, sizeof tn));
    } else {
        snprintf(text, sizeof text, "%s is not resident on this server", k->id.path);
    }
    trestle__server_log(s, "attach of %s by pid %d: not resident (%s)", k->id.path, (int)c->pid,
                        reason == TRESTLE__NR_CHANGED ? "changed on disk since its preload"
                        : reason == TRESTLE__NR_OTHER ? "another selection or tier"
                                                      : "not preloaded");
    trestle__wire_msg m = { .type = TRESTLE__MSG_NOT_RESIDENT };
    m.not_resident.reason = reason;
    m.not_resident.message = text;
    return trestle__conn_send(s, c, &m, NULL, 0);
}

static bool do_attach(trestle_server *s, trestle__conn *c, const trestle__wire_msg *req)
{
    const trestle__wire_key *k = &req->attach.key;
    trestle__entry *e = s->entries;
    while (e && !(e->published && same_key(&e->key, k)))
        e = e->next;
    if (!e)
        return not_resident(s, c, k);
    if (c->nheld == c->held_cap) {
        size_t ncap = c->held_cap ? c->held_cap * 2 : 4;
        uint64_t *h = realloc(c->held, ncap * sizeof *h);
        if (!h)
            return trestle__conn_error(s, c, TRESTLE_E_NOMEM, "out of memory");
        c->held = h;
        c->held_cap = ncap;
    }
    c->held[c->nheld++] = e->id;
    e->clients++;
    e->last_used_ns = trestle__now_ns();
    trestle__server_log(s, "attach of %s by pid %d (%u client%s)", e->key.id.path, (int)c->pid,
                        e->clients, e->clients == 1 ? "" : "s");
    trestle__wire_msg m = { .type = TRESTLE__MSG_ATTACH_REPLY };
    describe(e, &m.attach_reply.entry);
    m.attach_reply.manifest = e->manifest;
    int fd = e->key.tier == TRESTLE__TIER_HOST ? e->ro_fd : e->fd;
    return trestle__conn_send(s, c, &m, &fd, 1);
}

/* ---- LIST, EVICT ---- */

static bool do_list(trestle_server *s, trestle__conn *c)
{
    size_t n = 0;
    for (const trestle__entry *e = s->entries; e; e = e->next)
        n += e->published;
    if (n > TRESTLE__WIRE_MAX_ENTRIES)
        n = TRESTLE__WIRE_MAX_ENTRIES;
    trestle__wire_msg m = { .type = TRESTLE__MSG_LIST_REPLY };
    trestle__wire_entry *rows = calloc(n ? n : 1, sizeof *rows);
    trestle__wire_identity *now = calloc(n ? n : 1, sizeof *now);
    if (!rows || !now) {
        free(rows);
        free(now);
        return trestle__conn_error(s, c, TRESTLE_E_NOMEM, "out of memory");
    }
    size_t k = 0;
    for (const trestle__entry *e = s->entries; e && k < n; e = e->next) {
        if (!e->published)
            continue;
        describe(e, &rows[k]);
        rows[k].changed = !trestle__identity_restat(&e->key.id, &now[k]) ||
                          !trestle__wire_identity_equal(&e->key.id, &now[k]);
        k++;
    }
    /* Least recently used first: what a cap evicts next. */
    for (size_t i = 1; i < k; i++)
        for (size_t j = i; j > 0 && rows[j].last_used_ns < rows[j - 1].last_used_ns; j--) {
            trestle__wire_entry t = rows[j];
            rows[j] = rows[j - 1];
            rows[j - 1] = t;
        }
    trestle__wire_server *sv = &m.list_reply.server;
    sv->pid = (uint32_t)getpid();
    sv->started_ns = s->started_ns;
    sv->host_cap = s->opt.host_cap;
    sv->host_used = trestle__server_tier_used(s, TRESTLE__TIER_HOST, -1);
    sv->device_cap = s->opt.device_cap;
    for (const trestle__entry *e = s->entries; e; e = e->next)
        if (e->key.tier == TRESTLE__TIER_DEVICE)
            sv->device_used += e->region_bytes;
    sv->connections = s->nconns;
    m.list_reply.count = (uint32_t)k;
    m.list_reply.entries = rows;
    bool ok = trestle__conn_send(s, c, &m, NULL, 0);
    for (size_t i = 0; i < k; i++)
        trestle__wire_key_free(&(trestle__wire_key){ .id = now[i] });
    free(now);
    free(rows);
    return ok;
}

static bool under(const char *path, const char *target)
{
    size_t n = strlen(target);
    if (n && target[n - 1] == '/')
        n--;
    return strcmp(path, target) == 0 || (strncmp(path, target, n) == 0 && path[n] == '/');
}

static bool do_evict(trestle_server *s, trestle__conn *c, const trestle__wire_msg *req)
{
    const char *target = req->evict.path;
    trestle__wire_msg m = { .type = TRESTLE__MSG_EVICT_REPLY };
    char h[32];
    for (trestle__entry *e = s->entries, *next; e; e = next) {
        next = e->next;
        if (!e->published || (target[0] && !under(e->key.id.path, target)))
            continue;
        trestle__human_bytes(e->region_bytes, h, sizeof h);
        trestle__server_log(s, "evicted %s (entry %llu, %s) at the request of pid %d%s",
                            e->key.id.path, (unsigned long long)e->id, h, (int)c->pid,
                            e->clients ? "; its clients keep their mappings" : "");
        m.evict_reply.entries++;
        m.evict_reply.bytes += e->region_bytes;
        m.evict_reply.in_use += e->clients > 0;
        trestle__server_drop(s, e);
    }
    return trestle__conn_send(s, c, &m, NULL, 0);
}

bool trestle__server_request(trestle_server *s, trestle__conn *c, const trestle__wire_msg *req)
{
    switch (req->type) {
    case TRESTLE__MSG_LIST: return do_list(s, c);
    case TRESTLE__MSG_EVICT: return do_evict(s, c, req);
    case TRESTLE__MSG_ALLOC: return trestle__server_alloc(s, c, req);
    case TRESTLE__MSG_COMMIT: return do_commit(s, c, req);
    case TRESTLE__MSG_ATTACH: return do_attach(s, c, req);
    }
    trestle__server_log(s, "pid %d sent a %s message, which is a reply", (int)c->pid,
                        trestle__wire_type_name(req->type));
    return trestle__conn_error(s, c, TRESTLE_E_SERVER, "a %s message is a reply: the server "
                               "takes LIST, EVICT, ALLOC, COMMIT and ATTACH",
                               trestle__wire_type_name(req->type));
}

void trestle__server_conn_gone(trestle_server *s, trestle__conn *c)
{
    for (size_t i = 0; i < c->nheld; i++) {
        trestle__entry *e = find_id(s, c->held[i]);
        if (e && e->clients)
            e->clients--;
    }
    trestle__entry *p = c->pending ? find_id(s, c->pending) : NULL;
    if (p) {
        trestle__server_log(s, "preload of %s by pid %d ended before it was published: memory "
                            "freed", p->key.id.path, (int)c->pid);
        trestle__server_drop(s, p);
    }
    if (c->nheld)
        trestle__server_log(s, "pid %d closed its connection: %zu attachment%s released",
                            (int)c->pid, c->nheld, c->nheld == 1 ? "" : "s");
    c->nheld = 0;
    c->pending = 0;
}
