/*
 * wire_frame.c - frames on a Unix stream socket: whole frames sent with
 * their file descriptors (SCM_RIGHTS on the first byte), received either
 * blocking (clients) or a piece at a time (the server's event loop).
 *
 * A stream socket keeps descriptors with the bytes they were sent with: a
 * recvmsg() never returns bytes from two sendmsg() calls that carry
 * different descriptors, so the header's recvmsg() gets a frame's
 * descriptors. Any descriptor that arrives is accounted for: kept for the
 * caller when the frame's type carries it, otherwise closed, and the frame
 * refused (a peer cannot leave descriptors in this process).
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "error.h"
#include "wire.h"

int trestle__wire_send(int sock, const uint8_t *frame, size_t len, const int *fds, unsigned nfds,
                       trestle_error *err)
{
    union {
        char buf[CMSG_SPACE(sizeof(int) * TRESTLE__WIRE_MAX_FDS)];
        struct cmsghdr align;
    } ctl;
    size_t sent = 0;
    if (nfds > TRESTLE__WIRE_MAX_FDS)
        return trestle__error_simple(err, TRESTLE_E_INVALID_ARG, "%u descriptors in one frame "
                                     "(at most %d)", nfds, TRESTLE__WIRE_MAX_FDS);
    while (sent < len) {
        struct iovec iov = { (void *)(frame + sent), len - sent };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
        if (sent == 0 && nfds) {
            memset(&ctl, 0, sizeof ctl);
            mh.msg_control = ctl.buf;
            mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
            struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
            c->cmsg_level = SOL_SOCKET;
            c->cmsg_type = SCM_RIGHTS;
            c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
            memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
        }
        ssize_t n = sendmsg(sock, &mh, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return trestle__error_set(err, TRESTLE_E_IO, errno, NULL, NULL, -1, (int64_t)len,
                                      "sending a %zu-byte message: %s", len, strerror(errno));
        }
        sent += (size_t)n;
    }
    return TRESTLE_OK;
}

/* Keep the descriptors of a control message, closing what does not fit. */
static void take_fds(struct msghdr *mh, int *fds, unsigned *nfds, bool *overflow)
{
    for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
            continue;
        size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < n; i++) {
            int fd;
            memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
            if (*nfds < TRESTLE__WIRE_MAX_FDS) {
                fds[(*nfds)++] = fd;
            } else {
                close(fd);
                *overflow = true;
            }
        }
    }
    if (mh->msg_flags & MSG_CTRUNC)
        *overflow = true;
}

/* One recvmsg() of up to `len` bytes, descriptors collected: bytes read,
 * 0 at end of stream, -1 with errno. */
static ssize_t recv_some(int sock, void *p, size_t len, int *fds, unsigned *nfds, bool *overflow)
{
    union {
        char buf[CMSG_SPACE(sizeof(int) * TRESTLE__WIRE_MAX_FDS)];
        struct cmsghdr align;
    } ctl;
    struct iovec iov = { p, len };
    struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf,
                         .msg_controllen = sizeof ctl.buf };
    ssize_t n;
    do
        n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
    while (n < 0 && errno == EINTR);
    if (n >= 0 && mh.msg_controllen > 0)
        take_fds(&mh, fds, nfds, overflow);
    return n;
}

static void close_fds(int *fds, unsigned *nfds)
{
    for (unsigned i = 0; i < *nfds; i++)
        close(fds[i]);
    *nfds = 0;
}

/* Wait for `sock` to be readable: 0, or -1 with errno (ETIMEDOUT). */
static int wait_readable(int sock, int timeout_ms)
{
    struct pollfd p = { sock, POLLIN, 0 };
    for (;;) {
        int n = poll(&p, 1, timeout_ms);
        if (n > 0)
            return 0;
        if (n == 0) {
            errno = ETIMEDOUT;
            return -1;
        }
        if (errno != EINTR)
            return -1;
    }
}

/* Read exactly `len` bytes (blocking, `timeout_ms` per wait). 0; 1 when the
 * peer closed before the first byte; -1 with errno (0: closed midway). */
static int read_full(int sock, uint8_t *p, size_t len, int timeout_ms, int *fds, unsigned *nfds,
                     bool *overflow)
{
    size_t got = 0;
    while (got < len) {
        if (wait_readable(sock, timeout_ms) != 0)
            return -1;
        ssize_t n = recv_some(sock, p + got, len - got, fds, nfds, overflow);
        if (n < 0) {
            if (errno == EAGAIN)
                continue;
            return -1;
        }
        if (n == 0) {
            if (got == 0)
                return 1;
            errno = 0;
            return -1;
        }
        got += (size_t)n;
    }
    return 0;
}

int trestle__wire_recv(int sock, int timeout_ms, const char *what, trestle__wire_msg *out,
                       int *fds, unsigned *nfds, trestle_error *err)
{
    uint8_t head[TRESTLE__WIRE_HEADER_BYTES];
    trestle__wire_header hdr;
    bool overflow = false;
    uint8_t *payload = NULL;
    int rc;

    memset(out, 0, sizeof *out);
    *nfds = 0;
    rc = read_full(sock, head, sizeof head, timeout_ms, fds, nfds, &overflow);
    if (rc != 0) {
        int e = rc > 0 ? 0 : errno;
        close_fds(fds, nfds);
        return trestle__error_set(err, TRESTLE_E_IO, e, NULL, NULL, -1, -1, "%s: %s", what,
                                  rc > 0 || e == 0 ? "closed the connection without replying"
                                  : e == ETIMEDOUT ? "no reply in time"
                                                   : strerror(e));
    }
    rc = trestle__wire_header_decode(head, &hdr, err);
    if (rc != TRESTLE_OK)
        goto fail;
    payload = malloc(hdr.payload_bytes ? hdr.payload_bytes : 1);
    if (!payload) {
        rc = trestle__error_simple(err, TRESTLE_E_NOMEM, "%s: out of memory for a %u-byte reply",
                                   what, (unsigned)hdr.payload_bytes);
        goto fail;
    }
    int r2 = read_full(sock, payload, hdr.payload_bytes, timeout_ms, fds, nfds, &overflow);
    if (r2 != 0) {
        int e = r2 > 0 ? 0 : errno;
        rc = trestle__error_set(err, TRESTLE_E_IO, e, NULL, NULL, -1, hdr.payload_bytes,
                                "%s: the connection ended inside a %u-byte %s message%s%s",
                                what, (unsigned)hdr.payload_bytes,
                                trestle__wire_type_name(hdr.type), e ? ": " : "",
                                e ? strerror(e) : "");
        goto fail;
    }
    if (overflow || *nfds != hdr.nfds) {
        rc = trestle__error_simple(err, TRESTLE_E_CORRUPT, "%s: a %s message came with %s%u file "
                                   "descriptors, not %u", what, trestle__wire_type_name(hdr.type),
                                   overflow ? "more than " : "", *nfds, (unsigned)hdr.nfds);
        goto fail;
    }
    rc = trestle__wire_decode(hdr.type, payload, hdr.payload_bytes, out, err);
    if (rc != TRESTLE_OK) {
        trestle__error_prefix(err, "%s", what);
        goto fail;
    }
    free(payload);
    return TRESTLE_OK;
fail:
    free(payload);
    trestle__wire_msg_free(out);
    close_fds(fds, nfds);
    return rc;
}

int trestle__wire_rx_step(int sock, trestle__wire_rx *rx, trestle_error *err)
{
    for (;;) {
        uint8_t *dst;
        size_t want;
        if (rx->head_got < TRESTLE__WIRE_HEADER_BYTES) {
            dst = rx->head + rx->head_got;
            want = TRESTLE__WIRE_HEADER_BYTES - rx->head_got;
        } else {
            if (rx->payload_got == rx->hdr.payload_bytes)
                return TRESTLE__RX_FRAME;
            dst = rx->payload + rx->payload_got;
            want = rx->hdr.payload_bytes - rx->payload_got;
        }
        ssize_t n = recv_some(sock, dst, want, rx->fds, &rx->nfds, &rx->fds_overflow);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return TRESTLE__RX_MORE;
            trestle__error_set(err, TRESTLE_E_IO, errno, NULL, NULL, -1, -1, "reading a request: "
                               "%s", strerror(errno));
            return TRESTLE__RX_ERROR;
        }
        if (n == 0) {
            if (rx->head_got == 0)
                return TRESTLE__RX_CLOSED;
            /* The peer may have shut down only its sending side: an
             * error reply may still reach it. */
            if (rx->head_got < TRESTLE__WIRE_HEADER_BYTES)
                trestle__error_simple(err, TRESTLE_E_CORRUPT, "truncated message: the client "
                                      "stopped sending after %zu of the 16 header bytes",
                                      rx->head_got);
            else
                trestle__error_simple(err, TRESTLE_E_CORRUPT, "truncated %s message: the "
                                      "client stopped sending after %zu of its %zu bytes",
                                      trestle__wire_type_name(rx->hdr.type),
                                      TRESTLE__WIRE_HEADER_BYTES + rx->payload_got,
                                      TRESTLE__WIRE_HEADER_BYTES + (size_t)rx->hdr.payload_bytes);
            return TRESTLE__RX_ERROR;
        }
        if (rx->head_got < TRESTLE__WIRE_HEADER_BYTES) {
            rx->head_got += (size_t)n;
            if (rx->head_got < TRESTLE__WIRE_HEADER_BYTES)
                continue;
            if (trestle__wire_header_decode(rx->head, &rx->hdr, err) != TRESTLE_OK)
                return TRESTLE__RX_ERROR;
            rx->payload = malloc(rx->hdr.payload_bytes ? rx->hdr.payload_bytes : 1);
            if (!rx->payload) {
                trestle__error_simple(err, TRESTLE_E_NOMEM, "out of memory for a %u-byte request",
                                      (unsigned)rx->hdr.payload_bytes);
                return TRESTLE__RX_ERROR;
            }
        } else {
            rx->payload_got += (size_t)n;
        }
    }
}

void trestle__wire_rx_reset(trestle__wire_rx *rx, bool keep_fds)
{
    if (!keep_fds)
        close_fds(rx->fds, &rx->nfds);
    free(rx->payload);
    memset(rx, 0, sizeof *rx);
}
