/*
 * test_wire.c - the messages of `trestle serve` (engine/wire/): every
 * message type survives encode and decode field for field; every
 * truncation of a valid frame, every bad header field, a string with a NUL
 * byte, a count past its limit or past the bytes left, a negative dim, a
 * bad tier or CRC kind is refused with its exact message, never read past
 * the end; descriptors travel with the frame that carries them and are
 * refused (closed) with one that does not.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cursor.h"
#include "testutil.h"
#include "wire.h"

static uint64_t shard_bytes[2] = { 1000, 2000 };
static int64_t shard_mtimes[2] = { 111, 222 };
static int64_t dims_a[2] = { 3, 4 };

static trestle__wire_key sample_key(void)
{
    trestle__wire_key k = { 0 };
    k.id.path = "/models/m/ckpt-1";
    k.id.index_bytes = 153;
    k.id.index_crc32c = 0xa90ee093;
    k.id.index_mtime_ns = 1700000000123456789;
    k.id.num_shards = 2;
    k.id.shard_bytes = shard_bytes;
    k.id.shard_mtime_ns = shard_mtimes;
    k.digest = 0x0123456789abcdefull;
    k.tier = TRESTLE__TIER_HOST;
    k.device = -1;
    return k;
}

static trestle__wire_tensor sample_tensors[2] = {
    { "dense/kernel", "model/dense/kernel", "", TRESTLE_DT_FLOAT, TRESTLE_DT_FLOAT, 2, dims_a, 0,
      48, 0xdeadbeef, TRESTLE__CRC_STORED },
    { "global_step", "global_step", "", TRESTLE_DT_INT64, TRESTLE_DT_INT64, 0, NULL, 256, 8,
      0x12345678, TRESTLE__CRC_LANDED },
};

static trestle__buf encode(const trestle__wire_msg *m, unsigned nfds)
{
    trestle__buf b = { 0 };
    cr_assert(trestle__wire_encode(m, nfds, &b), "encoding %s", trestle__wire_type_name(m->type));
    return b;
}

/* Encode, check the header, decode; the caller frees *out. */
static void round_trip(const trestle__wire_msg *m, trestle__wire_msg *out)
{
    trestle__buf b = encode(m, trestle__wire_type_fds(m->type));
    trestle__wire_header h;
    trestle_error err;
    cr_assert_eq(trestle__wire_header_decode(b.data, &h, &err), TRESTLE_OK, "%s", err.message);
    cr_assert_eq(h.type, m->type);
    cr_assert_eq(h.payload_bytes, b.len - TRESTLE__WIRE_HEADER_BYTES);
    int rc = trestle__wire_decode(h.type, b.data + TRESTLE__WIRE_HEADER_BYTES, h.payload_bytes,
                                  out, &err);
    cr_assert_eq(rc, TRESTLE_OK, "%s", err.message);
    trestle__buf_free(&b);
}

static void assert_key(const trestle__wire_key *k)
{
    trestle__wire_key want = sample_key();
    cr_assert(trestle__wire_identity_equal(&k->id, &want.id));
    cr_assert_eq(k->digest, want.digest);
    cr_assert_eq(k->tier, want.tier);
    cr_assert_eq(k->device, want.device);
}

Test(wire, every_request_round_trips)
{
    trestle__wire_msg m = { .type = TRESTLE__MSG_ALLOC }, out;
    m.alloc.key = sample_key();
    m.alloc.bytes = 1ull << 33;
    m.alloc.tensors = 291;
    round_trip(&m, &out);
    assert_key(&out.alloc.key);
    cr_assert_eq(out.alloc.bytes, 1ull << 33);
    cr_assert_eq(out.alloc.tensors, 291);
    trestle__wire_msg_free(&out);

    m = (trestle__wire_msg){ .type = TRESTLE__MSG_ATTACH };
    m.attach.key = sample_key();
    m.attach.key.tier = TRESTLE__TIER_DEVICE;
    m.attach.key.device = 3;
    round_trip(&m, &out);
    cr_assert_eq(out.attach.key.tier, TRESTLE__TIER_DEVICE);
    cr_assert_eq(out.attach.key.device, 3);
    trestle__wire_msg_free(&out);

    m = (trestle__wire_msg){ .type = TRESTLE__MSG_COMMIT };
    m.commit.entry_id = 7;
    m.commit.verified = 1;
    m.commit.manifest.count = 2;
    m.commit.manifest.tensors = sample_tensors;
    round_trip(&m, &out);
    cr_assert_eq(out.commit.entry_id, 7);
    cr_assert_eq(out.commit.manifest.count, 2);
    const trestle__wire_tensor *t = &out.commit.manifest.tensors[0];
    cr_assert_str_eq(t->name, "dense/kernel");
    cr_assert_str_eq(t->key, "model/dense/kernel");
    cr_assert_str_eq(t->spec, "");
    cr_assert_eq(t->rank, 2);
    cr_assert_eq(t->dims[1], 4);
    cr_assert_eq(t->crc32c, 0xdeadbeef);
    cr_assert_eq(t->crc_kind, TRESTLE__CRC_STORED);
    cr_assert_eq(out.commit.manifest.tensors[1].offset, 256);
    cr_assert_eq(out.commit.manifest.tensors[1].rank, 0);
    trestle__wire_msg_free(&out);

    m = (trestle__wire_msg){ .type = TRESTLE__MSG_EVICT };
    m.evict.path = "/models/m";
    round_trip(&m, &out);
    cr_assert_str_eq(out.evict.path, "/models/m");
    trestle__wire_msg_free(&out);

    m = (trestle__wire_msg){ .type = TRESTLE__MSG_LIST };
    round_trip(&m, &out);
    cr_assert_eq(out.type, TRESTLE__MSG_LIST);
    trestle__wire_msg_free(&out);
}

Test(wire, every_reply_round_trips)
{
    trestle__wire_msg m = { .type = TRESTLE__MSG_ATTACH_REPLY }, out;
    m.attach_reply.entry.id = 9;
    m.attach_reply.entry.key = sample_key();
    m.attach_reply.entry.bytes = 56;
    m.attach_reply.entry.region_bytes = 4096;
    m.attach_reply.entry.clients = 2;
    m.attach_reply.entry.verified = 1;
    m.attach_reply.entry.pages = TRESTLE__PAGES_HUGETLB;
    m.attach_reply.manifest.count = 2;
    m.attach_reply.manifest.tensors = sample_tensors;
    round_trip(&m, &out);
    cr_assert_eq(out.attach_reply.entry.id, 9);
    cr_assert_eq(out.attach_reply.entry.region_bytes, 4096);
    cr_assert_eq(out.attach_reply.entry.pages, TRESTLE__PAGES_HUGETLB);
    assert_key(&out.attach_reply.entry.key);
    cr_assert_str_eq(out.attach_reply.manifest.tensors[1].name, "global_step");
    trestle__wire_msg_free(&out);

    trestle__wire_entry rows[2] = { m.attach_reply.entry, m.attach_reply.entry };
    rows[1].changed = 1;
    m = (trestle__wire_msg){ .type = TRESTLE__MSG_LIST_REPLY };
    m.list_reply.server.pid = 42;
    m.list_reply.server.host_cap = 1ull << 34;
    m.list_reply.server.connections = 3;
    m.list_reply.count = 2;
    m.list_reply.entries = rows;
    round_trip(&m, &out);
    cr_assert_eq(out.list_reply.server.pid, 42);
    cr_assert_eq(out.list_reply.server.host_cap, 1ull << 34);
    cr_assert_eq(out.list_reply.count, 2);
    cr_assert_eq(out.list_reply.entries[1].changed, 1);
    cr_assert_str_eq(out.list_reply.entries[1].key.id.path, "/models/m/ckpt-1");
    trestle__wire_msg_free(&out);

    m = (trestle__wire_msg){ .type = TRESTLE__MSG_ERROR };
    m.error.code = TRESTLE_E_NOMEM;
    m.error.message = "host tier: no room";
    round_trip(&m, &out);
    cr_assert_eq(out.error.code, TRESTLE_E_NOMEM);
    cr_assert_str_eq(out.error.message, "host tier: no room");
    trestle__wire_msg_free(&out);

    m = (trestle__wire_msg){ .type = TRESTLE__MSG_NOT_RESIDENT };
    m.not_resident.reason = TRESTLE__NR_CHANGED;
    m.not_resident.message = "changed";
    round_trip(&m, &out);
    cr_assert_eq(out.not_resident.reason, TRESTLE__NR_CHANGED);
    trestle__wire_msg_free(&out);

    m = (trestle__wire_msg){ .type = TRESTLE__MSG_ALLOC_REPLY };
    m.alloc_reply.entry_id = 5;
    m.alloc_reply.region_bytes = 8192;
    round_trip(&m, &out);
    cr_assert_eq(out.alloc_reply.region_bytes, 8192);
    trestle__wire_msg_free(&out);

    m = (trestle__wire_msg){ .type = TRESTLE__MSG_EVICT_REPLY };
    m.evict_reply.entries = 2;
    m.evict_reply.in_use = 1;
    round_trip(&m, &out);
    cr_assert_eq(out.evict_reply.in_use, 1);
    trestle__wire_msg_free(&out);

    m = (trestle__wire_msg){ .type = TRESTLE__MSG_COMMIT_REPLY };
    m.commit_reply.replaced = 3;
    round_trip(&m, &out);
    cr_assert_eq(out.commit_reply.replaced, 3);
    trestle__wire_msg_free(&out);
}

/* Every prefix of a valid payload is refused, naming a byte inside it. */
Test(wire, every_truncation_is_refused)
{
    trestle__wire_msg m = { .type = TRESTLE__MSG_COMMIT }, out;
    m.commit.entry_id = 1;
    m.commit.manifest.count = 2;
    m.commit.manifest.tensors = sample_tensors;
    trestle__buf b = encode(&m, 0);
    size_t len = b.len - TRESTLE__WIRE_HEADER_BYTES;
    for (size_t cut = 0; cut < len; cut++) {
        /* A copy of exactly `cut` bytes: any read past it is ASan's to see. */
        uint8_t *p = malloc(cut ? cut : 1);
        memcpy(p, b.data + TRESTLE__WIRE_HEADER_BYTES, cut);
        trestle_error err;
        int rc = trestle__wire_decode(TRESTLE__MSG_COMMIT, p, cut, &out, &err);
        cr_assert_eq(rc, TRESTLE_E_CORRUPT, "cut at %zu", cut);
        cr_assert(err.offset >= 0 && (size_t)err.offset <= cut, "cut %zu: offset %lld", cut,
                  (long long)err.offset);
        cr_assert(tu_starts_with(err.message, "malformed COMMIT message: bad or missing "),
                  "%s", err.message);
        trestle__wire_msg_free(&out);
        free(p);
    }
    /* And one byte more is refused too. */
    uint8_t *p = malloc(len + 1);
    memcpy(p, b.data + TRESTLE__WIRE_HEADER_BYTES, len);
    p[len] = 0;
    trestle_error err;
    cr_assert_eq(trestle__wire_decode(TRESTLE__MSG_COMMIT, p, len + 1, &out, &err),
                 TRESTLE_E_CORRUPT);
    cr_assert(strstr(err.message, "bad or missing the end of the message at byte"), "%s",
              err.message);
    trestle__wire_msg_free(&out);
    free(p);
    trestle__buf_free(&b);
}

static void expect_header(const uint8_t *h, const char *message)
{
    trestle__wire_header hdr;
    trestle_error err;
    cr_assert_eq(trestle__wire_header_decode(h, &hdr, &err), TRESTLE_E_CORRUPT);
    cr_assert_str_eq(err.message, message);
}

Test(wire, bad_headers_are_refused_by_name)
{
    trestle__wire_msg m = { .type = TRESTLE__MSG_LIST };
    trestle__buf b = encode(&m, 0);
    uint8_t h[16];
    memcpy(h, b.data, 16);
    h[0] = 'X';
    expect_header(h, "not a trestle message: the frame starts with 0x56535258, not the magic "
                     "0x56535254 (\"TRSV\")");
    memcpy(h, b.data, 16);
    h[4] = 2;
    expect_header(h, "protocol version 2, but this trestle speaks version 1: client and server "
                     "come from different trestle releases");
    memcpy(h, b.data, 16);
    h[6] = 99;
    expect_header(h, "unknown message type 99");
    memcpy(h, b.data, 16);
    tr_store_le32(h + 8, TRESTLE__WIRE_MAX_PAYLOAD + 1);
    expect_header(h, "LIST message of 67108865 bytes is over the 67108864-byte limit");
    memcpy(h, b.data, 16);
    h[12] = 1;
    expect_header(h, "LIST message announces 1 file descriptors where it carries 0");
    memcpy(h, b.data, 16);
    h[15] = 1;
    expect_header(h, "LIST message header: padding bytes are 0x0100, not zero");
    trestle__buf_free(&b);
}

/* A payload edited at byte `at` (after the header) to `v` (4 bytes, LE). */
static int decode_patched(const trestle__wire_msg *m, size_t at, uint32_t v, trestle_error *err)
{
    trestle__buf b = encode(m, 0);
    trestle__wire_msg out;
    tr_store_le32(b.data + TRESTLE__WIRE_HEADER_BYTES + at, v);
    int rc = trestle__wire_decode(m->type, b.data + TRESTLE__WIRE_HEADER_BYTES,
                                  b.len - TRESTLE__WIRE_HEADER_BYTES, &out, err);
    trestle__wire_msg_free(&out);
    trestle__buf_free(&b);
    return rc;
}

Test(wire, hostile_counts_strings_and_values_are_refused)
{
    trestle__wire_msg m = { .type = TRESTLE__MSG_ATTACH };
    trestle_error err;
    m.attach.key = sample_key();
    size_t path_len = strlen(m.attach.key.id.path);
    /* A path longer than its limit (before any allocation). */
    cr_assert_eq(decode_patched(&m, 0, TRESTLE__WIRE_MAX_PATH + 1, &err), TRESTLE_E_CORRUPT);
    cr_assert_str_eq(err.message, "malformed ATTACH message: bad or missing identity path at "
                                  "byte 0 of its 89-byte payload");
    /* A shard count the bytes left cannot hold. */
    size_t shards_at = 4 + path_len + 8 + 4 + 8;
    cr_assert_eq(decode_patched(&m, shards_at, 1000, &err), TRESTLE_E_CORRUPT);
    cr_assert(strstr(err.message, "bad or missing shard count at byte 40 "), "%s", err.message);
    /* A bad tier, and a host-tier key that names a device. */
    size_t tier_at = shards_at + 4 + 2 * 16 + 8;
    trestle__buf b = encode(&m, 0);
    b.data[TRESTLE__WIRE_HEADER_BYTES + tier_at] = 7;
    trestle__wire_msg out;
    cr_assert_eq(trestle__wire_decode(m.type, b.data + 16, b.len - 16, &out, &err),
                 TRESTLE_E_CORRUPT);
    cr_assert(strstr(err.message, "bad or missing tier (0 host or 1 device) at byte 84"), "%s",
              err.message);
    trestle__wire_msg_free(&out);
    b.data[TRESTLE__WIRE_HEADER_BYTES + tier_at] = 0;
    tr_store_le32(b.data + 16 + tier_at + 1, 2);
    cr_assert_eq(trestle__wire_decode(m.type, b.data + 16, b.len - 16, &out, &err),
                 TRESTLE_E_CORRUPT);
    cr_assert(strstr(err.message, "device (-1 for the host tier, an ordinal for the device "
                                  "tier) at byte 85"), "%s", err.message);
    trestle__wire_msg_free(&out);
    trestle__buf_free(&b);

    /* A NUL inside a string. */
    m = (trestle__wire_msg){ .type = TRESTLE__MSG_EVICT };
    m.evict.path = "/a/b";
    b = encode(&m, 0);
    b.data[16 + 4 + 1] = 0;
    cr_assert_eq(trestle__wire_decode(m.type, b.data + 16, b.len - 16, &out, &err),
                 TRESTLE_E_CORRUPT);
    cr_assert_str_eq(err.message, "malformed EVICT message: bad or missing evict path at byte 4 "
                                  "of its 8-byte payload");
    trestle__wire_msg_free(&out);
    trestle__buf_free(&b);

    /* A negative dim, a CRC kind out of range, a tensor count past the limit. */
    m = (trestle__wire_msg){ .type = TRESTLE__MSG_COMMIT };
    m.commit.manifest.count = 1;
    m.commit.manifest.tensors = sample_tensors;
    b = encode(&m, 0);
    size_t dims_at = 8 + 1 + 4 + (4 + 12) + (4 + 18) + 4 + 4 + 4 + 4;
    tr_store_le64(b.data + 16 + dims_at, (uint64_t)-5);
    cr_assert_eq(trestle__wire_decode(m.type, b.data + 16, b.len - 16, &out, &err),
                 TRESTLE_E_CORRUPT);
    cr_assert(strstr(err.message, "bad or missing dim (>= 0) at byte"), "%s", err.message);
    trestle__wire_msg_free(&out);
    tr_store_le64(b.data + 16 + dims_at, 3);
    b.data[b.len - 1] = 2;
    cr_assert_eq(trestle__wire_decode(m.type, b.data + 16, b.len - 16, &out, &err),
                 TRESTLE_E_CORRUPT);
    cr_assert(strstr(err.message, "bad or missing CRC kind (0 landed or 1 stored)"), "%s",
              err.message);
    trestle__wire_msg_free(&out);
    tr_store_le32(b.data + 16 + 9, TRESTLE__WIRE_MAX_TENSORS + 1);
    cr_assert_eq(trestle__wire_decode(m.type, b.data + 16, b.len - 16, &out, &err),
                 TRESTLE_E_CORRUPT);
    cr_assert(strstr(err.message, "bad or missing tensor count at byte 9 "), "%s", err.message);
    trestle__wire_msg_free(&out);
    trestle__buf_free(&b);
}

Test(wire, encoder_refuses_what_the_decoder_would)
{
    trestle__wire_msg m = { .type = TRESTLE__MSG_EVICT };
    trestle__buf b = { 0 };
    char *long_path = malloc(TRESTLE__WIRE_MAX_PATH + 2);
    memset(long_path, 'a', TRESTLE__WIRE_MAX_PATH + 1);
    long_path[TRESTLE__WIRE_MAX_PATH + 1] = 0;
    m.evict.path = long_path;
    cr_assert_not(trestle__wire_encode(&m, 0, &b));
    cr_assert_eq(b.len, 0);
    m.type = 99;
    cr_assert_not(trestle__wire_encode(&m, 0, &b));
    free(long_path);
    trestle__buf_free(&b);
}

/* Descriptors ride with their frame; a frame that should carry none but
 * does is refused and the descriptors closed. */
Test(wire, descriptors_travel_with_their_frame)
{
    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    int pipefd[2];
    cr_assert_eq(pipe(pipefd), 0);
    trestle__wire_msg m = { .type = TRESTLE__MSG_ALLOC_REPLY }, out;
    m.alloc_reply.entry_id = 1;
    trestle__buf b = encode(&m, 1);
    trestle_error err;
    cr_assert_eq(trestle__wire_send(sv[0], b.data, b.len, &pipefd[1], 1, &err), TRESTLE_OK);
    int fds[TRESTLE__WIRE_MAX_FDS];
    unsigned nfds;
    cr_assert_eq(trestle__wire_recv(sv[1], 1000, "peer", &out, fds, &nfds, &err), TRESTLE_OK,
                 "%s", err.message);
    cr_assert_eq(nfds, 1);
    cr_assert_eq(write(fds[0], "x", 1), 1); /* the pipe's write end came through */
    char c;
    cr_assert_eq(read(pipefd[0], &c, 1), 1);
    close(fds[0]);
    trestle__wire_msg_free(&out);
    trestle__buf_free(&b);

    /* A LIST_REPLY (no descriptors) sent with one. */
    m = (trestle__wire_msg){ .type = TRESTLE__MSG_LIST_REPLY };
    b = encode(&m, 0);
    cr_assert_eq(trestle__wire_send(sv[0], b.data, b.len, &pipefd[1], 1, &err), TRESTLE_OK);
    cr_assert_eq(trestle__wire_recv(sv[1], 1000, "peer", &out, fds, &nfds, &err),
                 TRESTLE_E_CORRUPT);
    cr_assert_str_eq(err.message, "peer: a LIST_REPLY message came with 1 file descriptors, "
                                  "not 0");
    cr_assert_eq(nfds, 0);
    trestle__buf_free(&b);
    close(pipefd[1]);
    /* The received copy was closed too: the read end sees end of file. */
    cr_assert_eq(read(pipefd[0], &c, 1), 0);
    close(pipefd[0]);
    close(sv[0]);
    close(sv[1]);
}
