/*
 * wire_encode.c - writing the messages of engine/wire/wire.h, field for
 * field as wire_msg.c reads them (and refusing what it would refuse), and
 * owning them: freeing decoded messages, deep copies of the keys and
 * manifests the server keeps, comparing versions.
 */
#include <stdlib.h>
#include <string.h>

#include "cursor.h"
#include "wire.h"

/* ---- encoding ---- */

typedef struct wr {
    trestle__buf *b;
    bool ok;
} wr;

static void put(wr *w, const void *p, size_t n)
{
    if (w->ok && !trestle__buf_append(w->b, p, n))
        w->ok = false;
}

static void put_u8(wr *w, uint8_t v) { put(w, &v, 1); }

static void put_u16(wr *w, uint16_t v)
{
    uint8_t b[2] = { (uint8_t)v, (uint8_t)(v >> 8) };
    put(w, b, 2);
}

static void put_u32(wr *w, uint32_t v)
{
    uint8_t b[4];
    tr_store_le32(b, v);
    put(w, b, 4);
}

static void put_u64(wr *w, uint64_t v)
{
    uint8_t b[8];
    tr_store_le64(b, v);
    put(w, b, 8);
}

static void put_i64(wr *w, int64_t v)
{
    uint64_t u;
    memcpy(&u, &v, sizeof u);
    put_u64(w, u);
}

static void put_str(wr *w, const char *s, size_t max)
{
    size_t n = s ? strlen(s) : 0;
    if (n > max) {
        w->ok = false;
        return;
    }
    put_u32(w, (uint32_t)n);
    put(w, s, n);
}

static void put_identity(wr *w, const trestle__wire_identity *id)
{
    put_str(w, id->path, TRESTLE__WIRE_MAX_PATH);
    put_u64(w, id->index_bytes);
    put_u32(w, id->index_crc32c);
    put_i64(w, id->index_mtime_ns);
    if (id->num_shards > TRESTLE__WIRE_MAX_SHARDS)
        w->ok = false;
    put_u32(w, id->num_shards);
    for (uint32_t i = 0; i < id->num_shards && w->ok; i++) {
        put_u64(w, id->shard_bytes[i]);
        put_i64(w, id->shard_mtime_ns[i]);
    }
}

static void put_key(wr *w, const trestle__wire_key *k)
{
    put_identity(w, &k->id);
    put_u64(w, k->digest);
    put_u8(w, k->tier);
    put_u32(w, (uint32_t)k->device);
}

static void put_manifest(wr *w, const trestle__wire_manifest *m)
{
    if (m->count > TRESTLE__WIRE_MAX_TENSORS)
        w->ok = false;
    put_u32(w, m->count);
    for (uint32_t i = 0; i < m->count && w->ok; i++) {
        const trestle__wire_tensor *t = &m->tensors[i];
        put_str(w, t->name, TRESTLE__WIRE_MAX_STRING);
        put_str(w, t->key, TRESTLE__WIRE_MAX_STRING);
        put_str(w, t->spec, TRESTLE__WIRE_MAX_STRING);
        put_u32(w, t->dtype);
        put_u32(w, t->stored_dtype);
        if (t->rank > TRESTLE__WIRE_MAX_RANK)
            w->ok = false;
        put_u32(w, t->rank);
        for (uint32_t d = 0; d < t->rank && w->ok; d++)
            put_i64(w, t->dims[d]);
        put_u64(w, t->offset);
        put_u64(w, t->bytes);
        put_u32(w, t->crc32c);
        put_u8(w, t->crc_kind);
    }
}

static void put_entry(wr *w, const trestle__wire_entry *e)
{
    put_u64(w, e->id);
    put_key(w, &e->key);
    put_u64(w, e->bytes);
    put_u64(w, e->region_bytes);
    put_u32(w, e->tensors);
    put_u32(w, e->clients);
    put_i64(w, e->loaded_ns);
    put_i64(w, e->last_used_ns);
    put_u8(w, e->verified);
    put_u8(w, e->pages);
    put_u8(w, e->changed);
}

static void encode_body(wr *w, const trestle__wire_msg *m)
{
    switch (m->type) {
    case TRESTLE__MSG_LIST:
        break;
    case TRESTLE__MSG_EVICT:
        put_str(w, m->evict.path, TRESTLE__WIRE_MAX_PATH);
        break;
    case TRESTLE__MSG_ALLOC:
        put_key(w, &m->alloc.key);
        put_u64(w, m->alloc.bytes);
        put_u32(w, m->alloc.tensors);
        break;
    case TRESTLE__MSG_COMMIT:
        put_u64(w, m->commit.entry_id);
        put_u8(w, m->commit.verified);
        put_manifest(w, &m->commit.manifest);
        break;
    case TRESTLE__MSG_ATTACH:
        put_key(w, &m->attach.key);
        break;
    case TRESTLE__MSG_ERROR:
        put_u32(w, (uint32_t)m->error.code);
        put_str(w, m->error.message, TRESTLE__WIRE_MAX_MESSAGE);
        break;
    case TRESTLE__MSG_LIST_REPLY: {
        const trestle__wire_server *s = &m->list_reply.server;
        put_u32(w, s->pid);
        put_i64(w, s->started_ns);
        put_u64(w, s->host_cap);
        put_u64(w, s->host_used);
        put_u64(w, s->device_cap);
        put_u64(w, s->device_used);
        put_u32(w, s->connections);
        if (m->list_reply.count > TRESTLE__WIRE_MAX_ENTRIES)
            w->ok = false;
        put_u32(w, m->list_reply.count);
        for (uint32_t i = 0; i < m->list_reply.count && w->ok; i++)
            put_entry(w, &m->list_reply.entries[i]);
        break;
    }
    case TRESTLE__MSG_EVICT_REPLY:
        put_u32(w, m->evict_reply.entries);
        put_u64(w, m->evict_reply.bytes);
        put_u32(w, m->evict_reply.in_use);
        break;
    case TRESTLE__MSG_ALLOC_REPLY:
        put_u64(w, m->alloc_reply.entry_id);
        put_u64(w, m->alloc_reply.region_bytes);
        put_u8(w, m->alloc_reply.pages);
        break;
    case TRESTLE__MSG_COMMIT_REPLY:
        put_u64(w, m->commit_reply.entry_id);
        put_u32(w, m->commit_reply.replaced);
        break;
    case TRESTLE__MSG_ATTACH_REPLY:
        put_entry(w, &m->attach_reply.entry);
        put_manifest(w, &m->attach_reply.manifest);
        break;
    case TRESTLE__MSG_NOT_RESIDENT:
        put_u32(w, m->not_resident.reason);
        put_str(w, m->not_resident.message, TRESTLE__WIRE_MAX_MESSAGE);
        break;
    default:
        w->ok = false;
    }
}

bool trestle__wire_encode(const trestle__wire_msg *m, unsigned nfds, trestle__buf *out)
{
    wr w = { out, true };
    size_t start = out->len;
    put_u32(&w, TRESTLE__WIRE_MAGIC);
    put_u16(&w, TRESTLE__WIRE_VERSION);
    put_u16(&w, m->type);
    put_u32(&w, 0); /* the payload's size, once known */
    put_u16(&w, (uint16_t)nfds);
    put_u16(&w, 0);
    encode_body(&w, m);
    size_t payload = out->len - start - TRESTLE__WIRE_HEADER_BYTES;
    if (!w.ok || payload > TRESTLE__WIRE_MAX_PAYLOAD || nfds > TRESTLE__WIRE_MAX_FDS) {
        out->len = start;
        return false;
    }
    tr_store_le32(out->data + start + 8, (uint32_t)payload);
    return true;
}

/* ---- ownership ---- */

void trestle__wire_key_free(trestle__wire_key *k)
{
    free(k->id.path);
    free(k->id.shard_bytes);
    free(k->id.shard_mtime_ns);
    memset(k, 0, sizeof *k);
}

void trestle__wire_manifest_free(trestle__wire_manifest *m)
{
    for (uint32_t i = 0; m->tensors && i < m->count; i++) {
        free(m->tensors[i].name);
        free(m->tensors[i].key);
        free(m->tensors[i].spec);
        free(m->tensors[i].dims);
    }
    free(m->tensors);
    memset(m, 0, sizeof *m);
}

void trestle__wire_msg_free(trestle__wire_msg *m)
{
    free(m->error.message);
    free(m->evict.path);
    trestle__wire_key_free(&m->alloc.key);
    trestle__wire_manifest_free(&m->commit.manifest);
    trestle__wire_key_free(&m->attach.key);
    trestle__wire_key_free(&m->attach_reply.entry.key);
    trestle__wire_manifest_free(&m->attach_reply.manifest);
    free(m->not_resident.message);
    for (uint32_t i = 0; m->list_reply.entries && i < m->list_reply.count; i++)
        trestle__wire_key_free(&m->list_reply.entries[i].key);
    free(m->list_reply.entries);
    memset(m, 0, sizeof *m);
}

static char *dup_str(const char *s)
{
    return strdup(s ? s : "");
}

static void *dup_mem(const void *p, size_t n)
{
    void *q = malloc(n ? n : 1);
    if (q && n)
        memcpy(q, p, n);
    return q;
}

bool trestle__wire_key_copy(trestle__wire_key *dst, const trestle__wire_key *src)
{
    *dst = *src;
    size_t n = src->id.num_shards;
    dst->id.path = dup_str(src->id.path);
    dst->id.shard_bytes = dup_mem(src->id.shard_bytes, n * sizeof *src->id.shard_bytes);
    dst->id.shard_mtime_ns = dup_mem(src->id.shard_mtime_ns, n * sizeof *src->id.shard_mtime_ns);
    if (!dst->id.path || !dst->id.shard_bytes || !dst->id.shard_mtime_ns) {
        trestle__wire_key_free(dst);
        return false;
    }
    return true;
}

bool trestle__wire_manifest_copy(trestle__wire_manifest *dst, const trestle__wire_manifest *src)
{
    memset(dst, 0, sizeof *dst);
    dst->tensors = calloc(src->count ? src->count : 1, sizeof *dst->tensors);
    if (!dst->tensors)
        return false;
    dst->count = src->count;
    for (uint32_t i = 0; i < src->count; i++) {
        const trestle__wire_tensor *s = &src->tensors[i];
        trestle__wire_tensor *d = &dst->tensors[i];
        *d = *s;
        d->name = dup_str(s->name);
        d->key = dup_str(s->key);
        d->spec = dup_str(s->spec);
        d->dims = dup_mem(s->dims, s->rank * sizeof *s->dims);
        if (!d->name || !d->key || !d->spec || !d->dims) {
            trestle__wire_manifest_free(dst);
            return false;
        }
    }
    return true;
}

bool trestle__wire_identity_equal(const trestle__wire_identity *a,
                                  const trestle__wire_identity *b)
{
    if (strcmp(a->path ? a->path : "", b->path ? b->path : "") != 0 ||
        a->index_bytes != b->index_bytes || a->index_crc32c != b->index_crc32c ||
        a->index_mtime_ns != b->index_mtime_ns || a->num_shards != b->num_shards)
        return false;
    for (uint32_t i = 0; i < a->num_shards; i++)
        if (a->shard_bytes[i] != b->shard_bytes[i] || a->shard_mtime_ns[i] != b->shard_mtime_ns[i])
            return false;
    return true;
}
