/*
 * wire_msg.c - decoding the payloads of engine/wire/wire.h's messages
 * (wire_encode.c writes them).
 *
 * The decoder reads untrusted bytes (a client's request in the server, the
 * server's reply in a client) through one bounded reader that knows the
 * bytes left and the offset of the first failure: every count is checked
 * against a limit and against what the remaining bytes could hold before
 * anything is allocated, every string is bounded and free of NUL bytes, and
 * a payload must be used to its last byte.
 */
#include <stdlib.h>
#include <string.h>

#include "cursor.h"
#include "error.h"
#include "wire.h"

/* ---- the bounded reader ---- */

typedef struct rd {
    trestle__cursor c;
    const uint8_t *start;
    const char *failed;      /* what could not be read, or NULL */
    size_t failed_at;        /* its offset in the payload */
    bool nomem;
} rd;

static bool fail(rd *r, const char *what)
{
    if (!r->failed) {
        r->failed = what;
        r->failed_at = (size_t)(r->c.p - r->start);
    }
    return false;
}

static bool get_u8(rd *r, uint8_t *v, const char *what)
{
    if (tr_left(&r->c) < 1)
        return fail(r, what);
    *v = *r->c.p++;
    return true;
}

static bool get_u32(rd *r, uint32_t *v, const char *what)
{
    if (tr_left(&r->c) < 4)
        return fail(r, what);
    *v = tr_load_le32(r->c.p);
    r->c.p += 4;
    return true;
}

static bool get_u64(rd *r, uint64_t *v, const char *what)
{
    if (tr_left(&r->c) < 8)
        return fail(r, what);
    *v = tr_load_le64(r->c.p);
    r->c.p += 8;
    return true;
}

static bool get_i64(rd *r, int64_t *v, const char *what)
{
    uint64_t u;
    if (!get_u64(r, &u, what))
        return false;
    memcpy(v, &u, sizeof *v);
    return true;
}

static bool get_i32(rd *r, int32_t *v, const char *what)
{
    uint32_t u;
    if (!get_u32(r, &u, what))
        return false;
    memcpy(v, &u, sizeof *v);
    return true;
}

/* A string of at most `max` bytes, no NUL inside, copied NUL-terminated. */
static bool get_str(rd *r, char **out, size_t max, const char *what)
{
    uint32_t n;
    const uint8_t *p;
    if (!get_u32(r, &n, what))
        return false;
    if (n > max || n > tr_left(&r->c)) {
        r->c.p -= 4; /* point the offset at the length */
        return fail(r, what);
    }
    tr_get_bytes(&r->c, n, &p);
    if (memchr(p, '\0', n)) {
        r->c.p = p;
        return fail(r, what);
    }
    char *s = malloc((size_t)n + 1);
    if (!s) {
        r->nomem = true;
        return fail(r, what);
    }
    memcpy(s, p, n);
    s[n] = '\0';
    *out = s;
    return true;
}

/* A count of at most `max` items, each at least `min_bytes` long, so that
 * the bytes left could hold them: checked before anything is allocated. */
static bool get_count(rd *r, uint32_t *n, uint32_t max, size_t min_bytes, const char *what)
{
    if (!get_u32(r, n, what))
        return false;
    if (*n > max || (min_bytes && *n > tr_left(&r->c) / min_bytes)) {
        r->c.p -= 4;
        return fail(r, what);
    }
    return true;
}

static void *alloc_array(rd *r, size_t n, size_t size, const char *what)
{
    void *p = calloc(n ? n : 1, size);
    if (!p) {
        r->nomem = true;
        fail(r, what);
    }
    return p;
}

/* ---- shared structures ---- */

static bool get_identity(rd *r, trestle__wire_identity *id)
{
    if (!get_str(r, &id->path, TRESTLE__WIRE_MAX_PATH, "identity path") ||
        !get_u64(r, &id->index_bytes, "index size") ||
        !get_u32(r, &id->index_crc32c, "index CRC32C") ||
        !get_i64(r, &id->index_mtime_ns, "index mtime") ||
        !get_count(r, &id->num_shards, TRESTLE__WIRE_MAX_SHARDS, 16, "shard count"))
        return false;
    if (!(id->shard_bytes = alloc_array(r, id->num_shards, sizeof *id->shard_bytes, "shards")) ||
        !(id->shard_mtime_ns = alloc_array(r, id->num_shards, sizeof *id->shard_mtime_ns,
                                           "shards")))
        return false;
    for (uint32_t i = 0; i < id->num_shards; i++)
        if (!get_u64(r, &id->shard_bytes[i], "shard size") ||
            !get_i64(r, &id->shard_mtime_ns[i], "shard mtime"))
            return false;
    return true;
}

static bool get_key(rd *r, trestle__wire_key *k)
{
    if (!get_identity(r, &k->id) || !get_u64(r, &k->digest, "selection digest") ||
        !get_u8(r, &k->tier, "tier") || !get_i32(r, &k->device, "device"))
        return false;
    if (k->tier > TRESTLE__TIER_DEVICE) {
        r->c.p -= 5;
        return fail(r, "tier (0 host or 1 device)");
    }
    if (k->tier == TRESTLE__TIER_HOST ? k->device != -1 : k->device < 0) {
        r->c.p -= 4;
        return fail(r, "device (-1 for the host tier, an ordinal for the device tier)");
    }
    return true;
}

/* Smallest encoded tensor: three empty strings, the fixed fields, no dims. */
#define MIN_TENSOR_BYTES (3 * 4 + 4 + 4 + 4 + 8 + 8 + 4 + 1)

static bool get_tensor(rd *r, trestle__wire_tensor *t)
{
    if (!get_str(r, &t->name, TRESTLE__WIRE_MAX_STRING, "tensor name") ||
        !get_str(r, &t->key, TRESTLE__WIRE_MAX_STRING, "tensor key") ||
        !get_str(r, &t->spec, TRESTLE__WIRE_MAX_STRING, "tensor slice spec") ||
        !get_u32(r, &t->dtype, "tensor dtype") || !get_u32(r, &t->stored_dtype, "stored dtype") ||
        !get_count(r, &t->rank, TRESTLE__WIRE_MAX_RANK, 8, "tensor rank"))
        return false;
    if (!(t->dims = alloc_array(r, t->rank, sizeof *t->dims, "dims")))
        return false;
    for (uint32_t d = 0; d < t->rank; d++) {
        if (!get_i64(r, &t->dims[d], "dim"))
            return false;
        if (t->dims[d] < 0) {
            r->c.p -= 8;
            return fail(r, "dim (>= 0)");
        }
    }
    if (!get_u64(r, &t->offset, "tensor offset") || !get_u64(r, &t->bytes, "tensor bytes") ||
        !get_u32(r, &t->crc32c, "tensor CRC32C") || !get_u8(r, &t->crc_kind, "CRC kind"))
        return false;
    if (t->crc_kind > TRESTLE__CRC_STORED) {
        r->c.p -= 1;
        return fail(r, "CRC kind (0 landed or 1 stored)");
    }
    return true;
}

static bool get_manifest(rd *r, trestle__wire_manifest *m)
{
    if (!get_count(r, &m->count, TRESTLE__WIRE_MAX_TENSORS, MIN_TENSOR_BYTES, "tensor count"))
        return false;
    if (!(m->tensors = alloc_array(r, m->count, sizeof *m->tensors, "tensors")))
        return false;
    for (uint32_t i = 0; i < m->count; i++)
        if (!get_tensor(r, &m->tensors[i]))
            return false;
    return true;
}

static bool get_entry(rd *r, trestle__wire_entry *e)
{
    return get_u64(r, &e->id, "entry id") && get_key(r, &e->key) &&
           get_u64(r, &e->bytes, "entry bytes") &&
           get_u64(r, &e->region_bytes, "entry memory bytes") &&
           get_u32(r, &e->tensors, "entry tensors") && get_u32(r, &e->clients, "entry clients") &&
           get_i64(r, &e->loaded_ns, "entry load time") &&
           get_i64(r, &e->last_used_ns, "entry last use") &&
           get_u8(r, &e->verified, "entry verified") && get_u8(r, &e->pages, "entry pages") &&
           get_u8(r, &e->changed, "entry changed");
}

static bool get_server(rd *r, trestle__wire_server *s)
{
    return get_u32(r, &s->pid, "server pid") && get_i64(r, &s->started_ns, "server start") &&
           get_u64(r, &s->host_cap, "host cap") && get_u64(r, &s->host_used, "host used") &&
           get_u64(r, &s->device_cap, "device cap") &&
           get_u64(r, &s->device_used, "device used") &&
           get_u32(r, &s->connections, "connections");
}

/* ---- messages ---- */

static bool decode_body(rd *r, unsigned type, trestle__wire_msg *m)
{
    switch (type) {
    case TRESTLE__MSG_LIST:
        return true;
    case TRESTLE__MSG_EVICT:
        return get_str(r, &m->evict.path, TRESTLE__WIRE_MAX_PATH, "evict path");
    case TRESTLE__MSG_ALLOC:
        return get_key(r, &m->alloc.key) && get_u64(r, &m->alloc.bytes, "bytes") &&
               get_u32(r, &m->alloc.tensors, "tensor count");
    case TRESTLE__MSG_COMMIT:
        return get_u64(r, &m->commit.entry_id, "entry id") &&
               get_u8(r, &m->commit.verified, "verified") &&
               get_manifest(r, &m->commit.manifest);
    case TRESTLE__MSG_ATTACH:
        return get_key(r, &m->attach.key);
    case TRESTLE__MSG_ERROR:
        return get_i32(r, &m->error.code, "error code") &&
               get_str(r, &m->error.message, TRESTLE__WIRE_MAX_MESSAGE, "error message");
    case TRESTLE__MSG_LIST_REPLY: {
        trestle__wire_server *s = &m->list_reply.server;
        if (!get_server(r, s) ||
            !get_count(r, &m->list_reply.count, TRESTLE__WIRE_MAX_ENTRIES, 64, "entry count"))
            return false;
        m->list_reply.entries = alloc_array(r, m->list_reply.count, sizeof *m->list_reply.entries,
                                            "entries");
        if (!m->list_reply.entries)
            return false;
        for (uint32_t i = 0; i < m->list_reply.count; i++)
            if (!get_entry(r, &m->list_reply.entries[i]))
                return false;
        return true;
    }
    case TRESTLE__MSG_EVICT_REPLY:
        return get_u32(r, &m->evict_reply.entries, "evicted entries") &&
               get_u64(r, &m->evict_reply.bytes, "evicted bytes") &&
               get_u32(r, &m->evict_reply.in_use, "evicted entries in use");
    case TRESTLE__MSG_ALLOC_REPLY:
        return get_u64(r, &m->alloc_reply.entry_id, "entry id") &&
               get_u64(r, &m->alloc_reply.region_bytes, "memory bytes") &&
               get_u8(r, &m->alloc_reply.pages, "pages");
    case TRESTLE__MSG_COMMIT_REPLY:
        return get_u64(r, &m->commit_reply.entry_id, "entry id") &&
               get_u32(r, &m->commit_reply.replaced, "replaced entries");
    case TRESTLE__MSG_ATTACH_REPLY:
        return get_entry(r, &m->attach_reply.entry) && get_manifest(r, &m->attach_reply.manifest);
    case TRESTLE__MSG_NOT_RESIDENT:
        if (!get_u32(r, &m->not_resident.reason, "reason"))
            return false;
        if (m->not_resident.reason < TRESTLE__NR_ABSENT ||
            m->not_resident.reason > TRESTLE__NR_OTHER) {
            r->c.p -= 4;
            return fail(r, "reason (1 to 3)");
        }
        return get_str(r, &m->not_resident.message, TRESTLE__WIRE_MAX_MESSAGE, "reason text");
    }
    return fail(r, "a known message type");
}

int trestle__wire_decode(unsigned type, const uint8_t *payload, size_t len, trestle__wire_msg *out,
                         trestle_error *err)
{
    rd r = { tr_cursor(payload, len), payload, NULL, 0, false };
    memset(out, 0, sizeof *out);
    out->type = (uint16_t)type;
    if (decode_body(&r, type, out) && tr_left(&r.c) != 0)
        fail(&r, "the end of the message");
    if (!r.failed)
        return TRESTLE_OK;
    if (r.nomem)
        return trestle__error_simple(err, TRESTLE_E_NOMEM, "out of memory decoding a %s message "
                                     "(%zu bytes)", trestle__wire_type_name(type), len);
    return trestle__error_set(err, TRESTLE_E_CORRUPT, 0, NULL, NULL, (int64_t)r.failed_at,
                              (int64_t)len, "malformed %s message: bad or missing %s at byte %zu "
                              "of its %zu-byte payload", trestle__wire_type_name(type), r.failed,
                              r.failed_at, len);
}

const char *trestle__wire_type_name(unsigned type)
{
    switch (type) {
    case TRESTLE__MSG_LIST: return "LIST";
    case TRESTLE__MSG_EVICT: return "EVICT";
    case TRESTLE__MSG_ALLOC: return "ALLOC";
    case TRESTLE__MSG_COMMIT: return "COMMIT";
    case TRESTLE__MSG_ATTACH: return "ATTACH";
    case TRESTLE__MSG_ERROR: return "ERROR";
    case TRESTLE__MSG_LIST_REPLY: return "LIST_REPLY";
    case TRESTLE__MSG_EVICT_REPLY: return "EVICT_REPLY";
    case TRESTLE__MSG_ALLOC_REPLY: return "ALLOC_REPLY";
    case TRESTLE__MSG_COMMIT_REPLY: return "COMMIT_REPLY";
    case TRESTLE__MSG_ATTACH_REPLY: return "ATTACH_REPLY";
    case TRESTLE__MSG_NOT_RESIDENT: return "NOT_RESIDENT";
    }
    return "unknown";
}

unsigned trestle__wire_type_fds(unsigned type)
{
    return type == TRESTLE__MSG_ALLOC_REPLY || type == TRESTLE__MSG_ATTACH_REPLY;
}

int trestle__wire_header_decode(const uint8_t *p, trestle__wire_header *out, trestle_error *err)
{
    uint32_t magic = tr_load_le32(p);
    unsigned version = (unsigned)(p[4] | p[5] << 8);
    out->type = (uint16_t)(p[6] | p[7] << 8);
    out->payload_bytes = tr_load_le32(p + 8);
    out->nfds = (uint16_t)(p[12] | p[13] << 8);
    unsigned pad = (unsigned)(p[14] | p[15] << 8);
    if (magic != TRESTLE__WIRE_MAGIC)
        return trestle__error_simple(err, TRESTLE_E_CORRUPT, "not a trestle message: the frame "
                                     "starts with 0x%08x, not the magic 0x%08x (\"TRSV\")",
                                     (unsigned)magic, TRESTLE__WIRE_MAGIC);
    if (version != TRESTLE__WIRE_VERSION)
        return trestle__error_simple(err, TRESTLE_E_CORRUPT, "protocol version %u, but this "
                                     "trestle speaks version %u: client and server come from "
                                     "different trestle releases", version,
                                     TRESTLE__WIRE_VERSION);
    if (strcmp(trestle__wire_type_name(out->type), "unknown") == 0)
        return trestle__error_simple(err, TRESTLE_E_CORRUPT, "unknown message type %u",
                                     (unsigned)out->type);
    if (out->payload_bytes > TRESTLE__WIRE_MAX_PAYLOAD)
        return trestle__error_simple(err, TRESTLE_E_CORRUPT, "%s message of %u bytes is over the "
                                     "%u-byte limit", trestle__wire_type_name(out->type),
                                     (unsigned)out->payload_bytes, TRESTLE__WIRE_MAX_PAYLOAD);
    if (out->nfds != trestle__wire_type_fds(out->type))
        return trestle__error_simple(err, TRESTLE_E_CORRUPT, "%s message announces %u file "
                                     "descriptors where it carries %u",
                                     trestle__wire_type_name(out->type), (unsigned)out->nfds,
                                     trestle__wire_type_fds(out->type));
    if (pad != 0)
        return trestle__error_simple(err, TRESTLE_E_CORRUPT, "%s message header: padding bytes "
                                     "are 0x%04x, not zero", trestle__wire_type_name(out->type),
                                     pad);
    return TRESTLE_OK;
}
