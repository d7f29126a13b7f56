/*
 * resident_conn.c - what every file of the server uses to answer: a reply
 * (and the descriptors that go with its first byte) queued and sent
 * without blocking, an error reply, the log line, sizes for both, and the
 * clock entries are stamped with. The connections themselves (accepting,
 * reading requests, closing) are resident_server.c's event loop.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "resident_state.h"

int64_t trestle__now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void trestle__human_bytes(uint64_t b, char *buf, size_t cap)
{
    if (b >= (1ull << 30))
        snprintf(buf, cap, "%.2f GiB", (double)b / (double)(1ull << 30));
    else if (b >= (1ull << 20))
        snprintf(buf, cap, "%.2f MiB", (double)b / (double)(1ull << 20));
    else if (b >= 1024)
        snprintf(buf, cap, "%.2f KiB", (double)b / 1024.0);
    else
        snprintf(buf, cap, "%llu B", (unsigned long long)b);
}

void trestle__server_log(const trestle_server *s, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    if (!s->opt.log)
        return;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    s->opt.log(s->opt.log_user, line);
}

/* Send what is queued; false when the connection failed. */
bool trestle__conn_flush(trestle__conn *c)
{
    union {
        char buf[CMSG_SPACE(sizeof(int) * TRESTLE__WIRE_MAX_FDS)];
        struct cmsghdr align;
    } ctl;
    while (c->out_sent < c->out.len) {
        struct iovec iov = { c->out.data + c->out_sent, c->out.len - c->out_sent };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
        if (c->out_sent == 0 && c->out_nfds) {
            memset(&ctl, 0, sizeof ctl);
            mh.msg_control = ctl.buf;
            mh.msg_controllen = CMSG_SPACE(sizeof(int) * c->out_nfds);
            struct cmsghdr *h = CMSG_FIRSTHDR(&mh);
            h->cmsg_level = SOL_SOCKET;
            h->cmsg_type = SCM_RIGHTS;
            h->cmsg_len = CMSG_LEN(sizeof(int) * c->out_nfds);
            memcpy(CMSG_DATA(h), c->out_fds, sizeof(int) * c->out_nfds);
        }
        ssize_t n = sendmsg(c->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return errno == EAGAIN || errno == EWOULDBLOCK;
        }
        if (c->out_sent == 0)
            for (unsigned i = 0; i < c->out_nfds; i++)
                close(c->out_fds[i]);
        if (c->out_sent == 0)
            c->out_nfds = 0;
        c->out_sent += (size_t)n;
    }
    c->out.len = 0;
    c->out_sent = 0;
    return true;
}

bool trestle__conn_send(trestle_server *s, trestle__conn *c, const trestle__wire_msg *m,
                        const int *fds, unsigned nfds)
{
    (void)s;
    if (c->out.len != 0 || nfds > TRESTLE__WIRE_MAX_FDS ||
        !trestle__wire_encode(m, nfds, &c->out))
        return false;
    for (unsigned i = 0; i < nfds; i++) {
        c->out_fds[i] = fcntl(fds[i], F_DUPFD_CLOEXEC, 0);
        if (c->out_fds[i] < 0) {
            c->out_nfds = i;
            return false;
        }
        c->out_nfds = i + 1;
    }
    return trestle__conn_flush(c);
}

bool trestle__conn_error(trestle_server *s, trestle__conn *c, int code, const char *fmt, ...)
{
    char text[TRESTLE__WIRE_MAX_MESSAGE];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    trestle__wire_msg m = { .type = TRESTLE__MSG_ERROR };
    m.error.code = code;
    m.error.message = text;
    return trestle__conn_send(s, c, &m, NULL, 0);
}
