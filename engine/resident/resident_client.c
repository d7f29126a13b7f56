/*
 * resident_client.c - a client's side of the socket: where the server is,
 * connecting (and saying plainly when there is none, or when it may not be
 * used), one request and its reply.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "error.h"
#include "resident.h"

int trestle_server_default_socket(char *buf, size_t cap, trestle_error *err)
{
    return trestle__socket_resolve(NULL, buf, cap, err);
}

int trestle__socket_resolve(const char *given, char *out, size_t cap, trestle_error *err)
{
    char path[TRESTLE__SOCKET_MAX + 64];
    if (!out || cap == 0)
        return trestle__error_simple(err, TRESTLE_E_INVALID_ARG, "no buffer for the socket path");
    const char *xdg = getenv("XDG_RUNTIME_DIR");
    if (given && given[0])
        snprintf(path, sizeof path, "%s", given);
    else if (xdg && xdg[0] == '/')
        snprintf(path, sizeof path, "%s/trestle.sock", xdg);
    else
        snprintf(path, sizeof path, "/run/trestle/trestle.sock");
    size_t n = strlen(path);
    if (n >= TRESTLE__SOCKET_MAX || n >= cap)
        return trestle__error_set(err, TRESTLE_E_INVALID_ARG, ENAMETOOLONG, NULL, path, -1,
                                  (int64_t)n, "socket path %s is %zu bytes: a Unix socket's "
                                  "path holds at most %d", path, n, TRESTLE__SOCKET_MAX - 1);
    memcpy(out, path, n + 1);
    return TRESTLE_OK;
}

int trestle__resident_connect(const char *path, int *out, trestle_error *err)
{
    struct sockaddr_un a;
    *out = -1;
    memset(&a, 0, sizeof a);
    a.sun_family = AF_UNIX;
    snprintf(a.sun_path, sizeof a.sun_path, "%s", path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return trestle__error_set(err, TRESTLE_E_SERVER, errno, NULL, path, -1, -1,
                                  "socket(): %s", strerror(errno));
    int rc;
    do
        rc = connect(fd, (struct sockaddr *)&a, sizeof a);
    while (rc != 0 && errno == EINTR);
    if (rc != 0) {
        int e = errno;
        close(fd);
        if (e == ENOENT || e == ECONNREFUSED || e == ENOTDIR)
            return trestle__error_set(err, TRESTLE_E_SERVER, e, NULL, path, -1, -1,
                                      "no trestle server on %s (connect: %s)", path, strerror(e));
        if (e == EACCES || e == EPERM)
            return trestle__error_set(err, TRESTLE_E_SERVER, e, NULL, path, -1, -1,
                                      "this process may not use the trestle server on %s "
                                      "(connect: %s): its socket admits the server's user, and "
                                      "its group when started with --group", path, strerror(e));
        return trestle__error_set(err, TRESTLE_E_SERVER, e, NULL, path, -1, -1,
                                  "connecting to the trestle server on %s: %s", path,
                                  strerror(e));
    }
    *out = fd;
    return TRESTLE_OK;
}

int trestle__resident_call(int sock, const char *path, const trestle__wire_msg *req,
                           int timeout_ms, trestle__wire_msg *reply, int *fds, unsigned *nfds,
                           trestle_error *err)
{
    trestle__buf frame = { 0 };
    char what[TRESTLE__SOCKET_MAX + 32];
    int rc;

    memset(reply, 0, sizeof *reply);
    *nfds = 0;
    snprintf(what, sizeof what, "server %s", path);
    if (!trestle__wire_encode(req, 0, &frame))
        return trestle__error_simple(err, TRESTLE_E_LIMIT, "a %s request over the protocol's "
                                     "limits (a path over %d bytes, or too many tensors)",
                                     trestle__wire_type_name(req->type), TRESTLE__WIRE_MAX_PATH);
    rc = trestle__wire_send(sock, frame.data, frame.len, NULL, 0, err);
    trestle__buf_free(&frame);
    if (rc != TRESTLE_OK) {
        /* A server that refused this peer has replied and closed: its
         * reason is worth more than the EPIPE. */
        if (trestle__wire_recv(sock, 1000, what, reply, fds, nfds, NULL) == TRESTLE_OK &&
            reply->type == TRESTLE__MSG_ERROR)
            goto error_reply;
        trestle__wire_msg_free(reply);
        trestle__error_prefix(err, "%s", what);
        if (err)
            err->code = TRESTLE_E_SERVER;
        return TRESTLE_E_SERVER;
    }
    rc = trestle__wire_recv(sock, timeout_ms, what, reply, fds, nfds, err);
    if (rc != TRESTLE_OK) {
        if (err)
            err->code = TRESTLE_E_SERVER;
        return TRESTLE_E_SERVER;
    }
    if (reply->type != TRESTLE__MSG_ERROR)
        return TRESTLE_OK;
error_reply:;
    int code = reply->error.code;
    /* Codes are the library's own; anything else is the server's trouble. */
    if (strcmp(trestle_code_name(code), "UNKNOWN") == 0 || code == TRESTLE_OK)
        code = TRESTLE_E_SERVER;
    for (unsigned i = 0; i < *nfds; i++)
        close(fds[i]);
    *nfds = 0;
    return trestle__error_set(err, code, 0, NULL, path, -1, -1, "%s: %s", what,
                              reply->error.message ? reply->error.message : "error");
}
