/*
 * fuzz_wire.c - libFuzzer target for the messages of `trestle serve`
 * (engine/wire/): what a hostile client sends the server, and what a
 * hostile server sends a client.
 *
 * Each input goes two ways. As a stream, through the server's own
 * receiver: written into one end of a socketpair, read frame by frame with
 * trestle__wire_rx_step() as the event loop reads a connection, each
 * complete frame decoded as its type says. And as one payload of every
 * message type, so that each decoder sees every input. A payload that
 * decodes must encode back to exactly the same bytes (the decoder accepts
 * only the canonical encoding, and reads every byte). Any crash, leak,
 * sanitizer report or disagreement is a bug.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const unsigned types[] = {
    TRESTLE__MSG_LIST, TRESTLE__MSG_EVICT, TRESTLE__MSG_ALLOC, TRESTLE__MSG_COMMIT,
    TRESTLE__MSG_ATTACH, TRESTLE__MSG_ERROR, TRESTLE__MSG_LIST_REPLY, TRESTLE__MSG_EVICT_REPLY,
    TRESTLE__MSG_ALLOC_REPLY, TRESTLE__MSG_COMMIT_REPLY, TRESTLE__MSG_ATTACH_REPLY,
    TRESTLE__MSG_NOT_RESIDENT,
};

/* Decode `p` as a `type` payload; when it decodes, it must re-encode to `p`. */
static void decode_one(unsigned type, const uint8_t *p, size_t n)
{
    trestle__wire_msg m;
    trestle_error err;
    if (trestle__wire_decode(type, p, n, &m, &err) == TRESTLE_OK) {
        trestle__buf b = { 0 };
        if (!trestle__wire_encode(&m, trestle__wire_type_fds(type), &b) ||
            b.len != n + TRESTLE__WIRE_HEADER_BYTES ||
            memcmp(b.data + TRESTLE__WIRE_HEADER_BYTES, p, n) != 0)
            abort(); /* decoded, but not to what was sent */
        trestle__buf_free(&b);
    }
    trestle__wire_msg_free(&m);
}

/* The server's reading of one connection that sent `data` and closed. */
static void as_stream(const uint8_t *data, size_t size)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
        return;
    int big = 1 << 20;
    setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &big, sizeof big);
    setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
    size_t sent = 0;
    while (sent < size) {
        ssize_t k = send(sv[0], data + sent, size - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (k <= 0)
            break;
        sent += (size_t)k;
    }
    shutdown(sv[0], SHUT_WR);
    fcntl(sv[1], F_SETFL, O_NONBLOCK);
    trestle__wire_rx rx;
    memset(&rx, 0, sizeof rx);
    for (int frames = 0; frames < 64; frames++) {
        trestle_error err;
        int r = trestle__wire_rx_step(sv[1], &rx, &err);
        if (r != TRESTLE__RX_FRAME)
            break;
        decode_one(rx.hdr.type, rx.payload, rx.hdr.payload_bytes);
        trestle__wire_rx_reset(&rx, false);
    }
    trestle__wire_rx_reset(&rx, false);
    close(sv[0]);
    close(sv[1]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    as_stream(data, size);
    /* The payload of a frame, if the input is one, or all of it. */
    const uint8_t *p = data;
    size_t n = size;
    trestle__wire_header h;
    if (size >= TRESTLE__WIRE_HEADER_BYTES &&
        trestle__wire_header_decode(data, &h, NULL) == TRESTLE_OK) {
        p += TRESTLE__WIRE_HEADER_BYTES;
        n -= TRESTLE__WIRE_HEADER_BYTES;
    }
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        decode_one(types[i], p, n);
    return 0;
}
