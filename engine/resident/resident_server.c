/*
 * resident_server.c - the server of trestle_serve.h: its socket (made 0600
 * or 0660 under its final name at once, by a rename), the one-thread event
 * loop, connections and their peers (SO_PEERCRED), and the log.
 *
 * What requests do to entries is resident_entries.c's. This file owns the
 * connection lifecycle: a peer the server does not admit gets an ERROR
 * reply and is closed; a request that does not decode gets an ERROR reply
 * and the connection goes on; a frame that breaks the framing (bad magic,
 * version, size or descriptors) gets an ERROR reply and the connection is
 * closed, since what follows cannot be delimited. Nothing a client sends
 * stops the server.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "error.h"
#include "resident_state.h"

#ifndef SO_PEERGROUPS
#define SO_PEERGROUPS 59
#endif

void trestle_server_options_init(trestle_server_options *opt)
{
    memset(opt, 0, sizeof *opt);
    opt->size = sizeof *opt;
    opt->group = -1;
    opt->huge_pages = 1;
    opt->max_clients = 4096;
}

const char *trestle_server_socket(const trestle_server *s)
{
    return s ? s->socket_path : NULL;
}

/* ---- the socket ---- */

static int mkdirs(const char *dir)
{
    char tmp[TRESTLE__SOCKET_MAX];
    snprintf(tmp, sizeof tmp, "%s", dir);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    return mkdir(tmp, 0755) != 0 && errno != EEXIST ? -1 : 0;
}

static void fill_addr(struct sockaddr_un *a, const char *path)
{
    memset(a, 0, sizeof *a);
    a->sun_family = AF_UNIX;
    memcpy(a->sun_path, path, strlen(path) + 1);
}

/* A socket file at `path`: refuse it if a server answers there, remove it
 * if none does (left by a server that died), refuse anything else. */
static int clear_stale(const char *path, trestle_error *err)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return errno == ENOENT ? TRESTLE_OK
                               : trestle__error_set(err, TRESTLE_E_IO, errno, NULL, path, -1, -1,
                                                    "%s: %s", path, strerror(errno));
    if (!S_ISSOCK(st.st_mode))
        return trestle__error_set(err, TRESTLE_E_IO, EEXIST, NULL, path, -1, -1,
                                  "%s exists and is not a socket: refusing to replace it", path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un a;
    fill_addr(&a, path);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) == 0) {
        close(fd);
        return trestle__error_set(err, TRESTLE_E_SERVER, EADDRINUSE, NULL, path, -1, -1,
                                  "another trestle server answers on %s: stop it first, or give "
                                  "this one another --socket", path);
    }
    if (fd >= 0)
        close(fd);
    if (unlink(path) != 0 && errno != ENOENT)
        return trestle__error_set(err, TRESTLE_E_IO, errno, NULL, path, -1, -1,
                                  "removing the stale socket %s: %s", path, strerror(errno));
    return TRESTLE_OK;
}

/* Bind under a temporary name, set mode and group, then rename onto the
 * final path: no moment where the socket has looser permissions. */
static int bind_socket(trestle_server *s, trestle_error *err)
{
    const char *path = s->socket_path;
    char tmp[TRESTLE__SOCKET_MAX + 32];
    char dir[TRESTLE__SOCKET_MAX];
    struct sockaddr_un a;
    struct stat st;
    int rc;

    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash && slash != dir) {
        *slash = '\0';
        if (mkdirs(dir) != 0)
            return trestle__error_set(err, TRESTLE_E_IO, errno, NULL, dir, -1, -1,
                                      "creating the socket's directory %s: %s", dir,
                                      strerror(errno));
    }
    TR_FORWARD(clear_stale(path, err));
    snprintf(tmp, sizeof tmp, "%s.%d.tmp", path, (int)getpid());
    if (strlen(tmp) >= sizeof a.sun_path)
        snprintf(tmp, sizeof tmp, "%.*s%d", (int)(sizeof a.sun_path - 12), path, (int)getpid());
    unlink(tmp);
    s->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    TR_FAIL_IF(s->listen_fd < 0, err, TRESTLE_E_IO, "socket(): %s", strerror(errno));
    fill_addr(&a, tmp);
    if (bind(s->listen_fd, (struct sockaddr *)&a, sizeof a) != 0)
        return trestle__error_set(err, TRESTLE_E_IO, errno, NULL, path, -1, -1, "binding %s: %s",
                                  path, strerror(errno));
    mode_t mode = s->opt.group >= 0 ? 0660 : 0600;
    if (chmod(tmp, mode) != 0 ||
        (s->opt.group >= 0 && chown(tmp, (uid_t)-1, (gid_t)s->opt.group) != 0) ||
        listen(s->listen_fd, SOMAXCONN) != 0 || rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return trestle__error_set(err, TRESTLE_E_IO, e, NULL, path, -1, -1,
                                  "setting up %s (mode %04o%s): %s", path, (unsigned)mode,
                                  s->opt.group >= 0 ? ", group" : "", strerror(e));
    }
    if (stat(path, &st) == 0)
        s->socket_ino = st.st_ino;
    return TRESTLE_OK;
fail:
    return rc;
}

int trestle_server_create(const trestle_server_options *opt, trestle_server **out,
                          trestle_error *err)
{
    trestle_server *s = NULL;
    int rc;
    TR_FAIL_IF(!out, err, TRESTLE_E_INVALID_ARG, "trestle_server_create: out is NULL");
    *out = NULL;
    s = calloc(1, sizeof *s);
    TR_FAIL_IF(!s, err, TRESTLE_E_NOMEM, "out of memory");
    s->listen_fd = -1;
    s->wake[0] = s->wake[1] = -1;
    trestle_server_options_init(&s->opt);
    TR_FORWARD(TRESTLE__OPTIONS_READ(trestle_server_options, &s->opt, opt,
                                     TRESTLE__SERVER_OPTIONS_FIRST_SIZE, err));
    TR_FORWARD(trestle__socket_resolve(s->opt.socket_path, s->socket_path,
                                       sizeof s->socket_path, err));
    s->opt.socket_path = s->socket_path;
    if (!s->opt.max_clients)
        s->opt.max_clients = 4096;
    TR_FAIL_IF(pipe2(s->wake, O_CLOEXEC | O_NONBLOCK) != 0, err, TRESTLE_E_IO, "pipe: %s",
               strerror(errno));
    s->uid = geteuid();
    s->next_id = 1;
    s->started_ns = trestle__now_ns();
    TR_FORWARD(bind_socket(s, err));
    *out = s;
    return TRESTLE_OK;
fail:
    if (s) {
        if (s->listen_fd >= 0)
            close(s->listen_fd);
        if (s->wake[0] >= 0) {
            close(s->wake[0]);
            close(s->wake[1]);
        }
        free(s);
    }
    return rc;
}

void trestle_server_stop(trestle_server *s)
{
    if (s) {
        char b = 1;
        ssize_t n = write(s->wake[1], &b, 1);
        (void)n; /* a full pipe already holds a stop */
    }
}

/* ---- connections ---- */

static void conn_close(trestle_server *s, trestle__conn *c)
{
    if (c->dead)
        return;
    trestle__server_conn_gone(s, c);
    close(c->fd);
    trestle__wire_rx_reset(&c->rx, false);
    trestle__buf_free(&c->out);
    for (unsigned i = 0; i < c->out_nfds; i++)
        close(c->out_fds[i]);
    free(c->held);
    c->dead = true;
    s->nconns--;
}

/* Whether the server admits this peer: its own uid, root, or its group. */
static bool admitted(const trestle_server *s, const trestle__conn *c)
{
    if (c->uid == s->uid || c->uid == 0)
        return true;
    if (s->opt.group < 0)
        return false;
    if (c->gid == (gid_t)s->opt.group)
        return true;
    gid_t groups[256];
    socklen_t len = sizeof groups;
    if (getsockopt(c->fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) == 0)
        for (size_t i = 0; i < len / sizeof(gid_t); i++)
            if (groups[i] == (gid_t)s->opt.group)
                return true;
    return false;
}

static void accept_all(trestle_server *s)
{
    while (s->nconns < s->opt.max_clients) {
        int fd = accept4(s->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
                trestle__server_log(s, "accept: %s", strerror(errno));
            return;
        }
        trestle__conn *c = calloc(1, sizeof *c);
        struct ucred cred;
        socklen_t len = sizeof cred;
        if (!c || getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
            trestle__server_log(s, "dropping a connection: %s",
                                c ? strerror(errno) : "out of memory");
            free(c);
            close(fd);
            continue;
        }
        c->fd = fd;
        c->pid = cred.pid;
        c->uid = cred.uid;
        c->gid = cred.gid;
        c->next = s->conns;
        s->conns = c;
        s->nconns++;
        if (!admitted(s, c)) {
            trestle__server_log(s, "refused pid %d uid %d gid %d: not the server's uid %d%s",
                                (int)c->pid, (int)c->uid, (int)c->gid, (int)s->uid,
                                s->opt.group >= 0 ? ", root or a member of its group" : " or root");
            trestle__conn_error(s, c, TRESTLE_E_SERVER, "permission denied: uid %d (pid %d) may "
                                "not use this trestle server, which admits uid %d and root%s",
                                (int)c->uid, (int)c->pid, (int)s->uid,
                                s->opt.group >= 0 ? " and its group's members"
                                                  : " (start it with --group G to admit a group)");
            conn_close(s, c);
        }
    }
}

/* Read and handle what a connection sent. */
static void conn_readable(trestle_server *s, trestle__conn *c)
{
    trestle_error err;
    while (!c->dead && c->out.len == 0 && !c->waiting) {
        int r = trestle__wire_rx_step(c->fd, &c->rx, &err);
        if (r == TRESTLE__RX_MORE)
            return;
        if (r == TRESTLE__RX_CLOSED) {
            conn_close(s, c);
            return;
        }
        if (r == TRESTLE__RX_ERROR) {
            if (err.code != TRESTLE_E_IO) {
                trestle__server_log(s, "pid %d: %s; closing its connection", (int)c->pid,
                                    err.message);
                trestle__conn_error(s, c, err.code, "%s", err.message);
            }
            conn_close(s, c);
            return;
        }
        /* A whole frame: requests carry no descriptors. */
        const char *name = trestle__wire_type_name(c->rx.hdr.type);
        if (c->rx.nfds || c->rx.fds_overflow) {
            trestle__server_log(s, "pid %d: a %s request came with %s%u file descriptors; "
                                "refused", (int)c->pid, name, c->rx.fds_overflow ? "over " : "",
                                c->rx.nfds);
            trestle__conn_error(s, c, TRESTLE_E_SERVER, "%s request with %s%u file descriptors: "
                                "requests carry none", name, c->rx.fds_overflow ? "over " : "",
                                c->rx.nfds);
            trestle__wire_rx_reset(&c->rx, false);
            continue;
        }
        trestle__wire_msg req;
        int rc = trestle__wire_decode(c->rx.hdr.type, c->rx.payload, c->rx.hdr.payload_bytes,
                                      &req, &err);
        trestle__wire_rx_reset(&c->rx, false);
        if (rc != TRESTLE_OK) {
            trestle__server_log(s, "pid %d: %s", (int)c->pid, err.message);
            trestle__conn_error(s, c, rc, "%s", err.message);
        } else if (!trestle__server_request(s, c, &req)) {
            c->close_after = true;
        }
        trestle__wire_msg_free(&req);
        if (c->close_after && c->out.len == 0)
            conn_close(s, c);
    }
}

static void reap(trestle_server *s)
{
    trestle__conn **pp = &s->conns;
    while (*pp) {
        trestle__conn *c = *pp;
        if (c->dead) {
            *pp = c->next;
            free(c);
        } else {
            pp = &c->next;
        }
    }
}

/* The connections a stop cuts off: not those whose client has already
 * hung up, when this loop has not yet read the hangup (a client that ran
 * and exited just before the stop: `serve` probing a live socket). */
static unsigned live_conns(const trestle_server *s)
{
    unsigned n = 0;
    for (const trestle__conn *c = s->conns; c; c = c->next) {
        char b;
        if (c->dead)
            continue;
        ssize_t got = recv(c->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
        if (got > 0 || (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)))
            n++; /* a request pending, or a client waiting: still there */
    }
    return n;
}

int trestle_server_run(trestle_server *s, trestle_error *err)
{
    struct pollfd *pf = NULL;
    trestle__conn **who = NULL;
    size_t cap = 0;
    int rc = TRESTLE_OK;

    trestle__server_log(s, "listening on %s (mode %s%s), pid %d: started empty (resident "
                        "memory does not outlive the server that held it)", s->socket_path,
                        s->opt.group >= 0 ? "0660, group " : "0600",
                        s->opt.group >= 0 ? "set" : "", (int)getpid());
    for (;;) {
        size_t need = 2 + s->nconns;
        if (need > cap) {
            size_t ncap = need * 2;
            struct pollfd *npf = realloc(pf, ncap * sizeof *pf);
            if (npf)
                pf = npf;
            trestle__conn **nwho = npf ? realloc(who, ncap * sizeof *who) : NULL;
            if (!npf || !nwho) {
                rc = trestle__error_simple(err, TRESTLE_E_NOMEM, "out of memory for %zu "
                                           "connections", need);
                break;
            }
            who = nwho;
            cap = ncap;
        }
        size_t n = 0;
        pf[n++] = (struct pollfd){ s->wake[0], POLLIN, 0 };
        pf[n++] = (struct pollfd){ s->listen_fd, s->nconns < s->opt.max_clients ? POLLIN : 0, 0 };
        for (trestle__conn *c = s->conns; c; c = c->next) {
            who[n] = c;
            /* A connection waiting for its allocation or check is not
             * read (its hangup still shows, in revents). */
            short ev = c->out.len ? POLLOUT : c->waiting ? 0 : POLLIN;
            pf[n++] = (struct pollfd){ c->fd, ev, 0 };
        }
        /* While memory is being allocated or checked, a slice per pass,
         * not waiting. */
        if (poll(pf, (nfds_t)n, trestle__server_busy(s) ? 0 : -1) < 0) {
            if (errno == EINTR)
                continue;
            rc = trestle__error_set(err, TRESTLE_E_IO, errno, NULL, NULL, -1, -1, "poll: %s",
                                    strerror(errno));
            break;
        }
        if (pf[0].revents) {
            char b[64];
            while (read(s->wake[0], b, sizeof b) > 0) {
            }
            trestle__server_log(s, "stopping: %u connections closed, %s", live_conns(s),
                                "every entry dropped (clients' mappings stay valid)");
            break;
        }
        for (size_t i = 2; i < n; i++) {
            trestle__conn *c = who[i];
            if (c->dead || !pf[i].revents)
                continue;
            if (c->out.len) {
                if (!trestle__conn_flush(c) || (c->out.len == 0 && c->close_after))
                    conn_close(s, c);
                else if (c->out.len == 0)
                    conn_readable(s, c); /* requests that waited behind the reply */
            } else if (c->waiting) {
                if (pf[i].revents & (POLLHUP | POLLERR))
                    conn_close(s, c); /* the preload is gone: its memory goes */
            } else if (pf[i].revents & (POLLIN | POLLHUP | POLLERR)) {
                conn_readable(s, c);
            }
        }
        if (pf[1].revents & POLLIN)
            accept_all(s);
        trestle__server_alloc_step(s);
        trestle__server_check_step(s);
        for (trestle__conn *c = s->conns; c; c = c->next)
            if (!c->dead && c->close_after && c->out.len == 0)
                conn_close(s, c);
        reap(s);
    }
    free(pf);
    free(who);
    return rc;
}

void trestle_server_free(trestle_server *s)
{
    struct stat st;
    if (!s)
        return;
    for (trestle__conn *c = s->conns; c; c = c->next)
        conn_close(s, c);
    reap(s);
    trestle__server_entries_free(s);
    if (s->listen_fd >= 0)
        close(s->listen_fd);
    /* Only the socket this server made: a newer server may own the path. */
    if (stat(s->socket_path, &st) == 0 && st.st_ino == s->socket_ino)
        unlink(s->socket_path);
    close(s->wake[0]);
    close(s->wake[1]);
    free(s);
}
