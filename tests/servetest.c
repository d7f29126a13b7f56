/*
 * servetest.c - the `trestle serve` suites' shared helpers (servetest.h).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "servetest.h"
#include "testutil.h"

static void sleep_ms(int ms)
{
    struct timespec t = { ms / 1000, (long)(ms % 1000) * 1000000L };
    nanosleep(&t, NULL);
}

void st_start(st_server *s, const char *dir, const char *const *extra)
{
    char *argv[32];
    int n = 0;
    snprintf(s->sock, sizeof s->sock, "%s/s.sock", dir);
    snprintf(s->log, sizeof s->log, "%s/serve.log", dir);
    argv[n++] = (char *)TRESTLE_CLI_PATH;
    argv[n++] = (char *)"serve";
    argv[n++] = (char *)"--socket";
    argv[n++] = s->sock;
    for (int i = 0; extra && extra[i] && n < 30; i++)
        argv[n++] = (char *)extra[i];
    argv[n] = NULL;
    s->pid = fork();
    cr_assert_geq(s->pid, 0);
    if (s->pid == 0) {
        int fd = open(s->log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        dup2(fd, STDERR_FILENO);
        dup2(fd, STDOUT_FILENO);
        execv(argv[0], argv);
        _exit(127);
    }
    for (int waited = 0; waited < 10000; waited += 10) {
        trestle_resident_list *l = NULL;
        if (trestle_resident_query(s->sock, &l, NULL) == TRESTLE_OK) {
            trestle_resident_list_free(l);
            return;
        }
        int status;
        if (waitpid(s->pid, &status, WNOHANG) == s->pid) {
            char *log = st_log(s);
            cr_assert_fail("trestle serve exited (status %d) before it answered: %s", status, log);
        }
        sleep_ms(10);
    }
    cr_assert_fail("trestle serve did not answer on %s within 10 s", s->sock);
}

int st_stop(st_server *s)
{
    int status = -1;
    if (s->pid <= 0)
        return -1;
    kill(s->pid, SIGTERM);
    waitpid(s->pid, &status, 0);
    s->pid = 0;
    return status;
}

void st_kill9(st_server *s)
{
    int status;
    kill(s->pid, SIGKILL);
    waitpid(s->pid, &status, 0);
    s->pid = 0;
}

char *st_log(const st_server *s)
{
    size_t len;
    uint8_t *b = tu_read_file(s->log, &len);
    if (!b)
        return strdup("");
    char *t = malloc(len + 1);
    memcpy(t, b, len);
    t[len] = 0;
    free(b);
    return t;
}

trestle_resident_list *st_list(const char *sock)
{
    trestle_resident_list *l = NULL;
    trestle_error err;
    int rc = trestle_resident_query(sock, &l, &err);
    cr_assert_eq(rc, TRESTLE_OK, "listing %s: %s", sock, err.message);
    return l;
}

int st_wait_clients(const char *sock, size_t i, unsigned clients)
{
    for (int waited = 0; waited < 5000; waited += 10) {
        trestle_resident_list *l = st_list(sock);
        trestle_resident_entry e;
        int ok = trestle_resident_list_get(l, i, &e) == TRESTLE_OK && e.clients == clients;
        trestle_resident_list_free(l);
        if (ok)
            return 1;
        sleep_ms(10);
    }
    return 0;
}

void st_preload(const char *sock, const char *path, const trestle_op *ops, size_t n,
                trestle_preload_info *info)
{
    trestle_checkpoint *c = tu_open(path, NULL);
    trestle_preload_options po;
    trestle_error err;
    trestle_preload_options_init(&po);
    po.socket_path = sock;
    int rc = trestle_preload(c, ops, n, NULL, &po, info, &err);
    cr_assert_eq(rc, TRESTLE_OK, "preloading %s: %s", path, err.message);
    trestle_close(c);
}

static uint64_t fnv(uint64_t h, const void *p, uint64_t n)
{
    const uint8_t *b = p;
    for (uint64_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 1099511628211ull;
    return h;
}

uint64_t st_restore_checksum(const char *path, const trestle_op *ops, size_t n)
{
    trestle_checkpoint *c = tu_open(path, NULL);
    trestle_plan *p = tu_plan(c, ops, n, NULL);
    trestle_error err;
    cr_assert_eq(trestle_restore(p, NULL, NULL, &err), TRESTLE_OK, "%s", err.message);
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < trestle_plan_op_count(p); i++) {
        trestle_plan_op_info op;
        trestle_plan_get_op(p, i, &op);
        if (!op.skipped)
            h = fnv(h, op.data, op.bytes);
    }
    trestle_plan_free(p);
    trestle_close(c);
    return h;
}

uint64_t st_attachment_checksum(const trestle_attachment *a)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < trestle_attachment_op_count(a); i++) {
        trestle_plan_op_info op;
        trestle_attachment_get_op(a, i, &op);
        if (!op.skipped)
            h = fnv(h, op.data, op.bytes);
    }
    return h;
}

void st_assert_same_as_restore(const trestle_attachment *a, const char *path,
                               const trestle_op *ops, size_t n)
{
    trestle_checkpoint *c = tu_open(path, NULL);
    trestle_plan *p = tu_plan(c, ops, n, NULL);
    trestle_error err;
    cr_assert_eq(trestle_restore(p, NULL, NULL, &err), TRESTLE_OK, "%s", err.message);
    cr_assert_eq(trestle_attachment_op_count(a), trestle_plan_op_count(p));
    for (size_t i = 0; i < trestle_plan_op_count(p); i++) {
        trestle_plan_op_info want, got;
        trestle_plan_get_op(p, i, &want);
        cr_assert_eq(trestle_attachment_get_op(a, i, &got), TRESTLE_OK);
        cr_assert_str_eq(got.name, want.name);
        cr_assert_eq(got.skipped, want.skipped, "%s", want.name);
        if (want.skipped)
            continue;
        cr_assert_str_eq(got.key, want.key);
        cr_assert_eq(got.dtype, want.dtype, "%s", want.name);
        cr_assert_eq(got.out_dtype, want.out_dtype, "%s", want.name);
        cr_assert_eq(got.rank, want.rank, "%s", want.name);
        for (int d = 0; d < want.rank; d++)
            cr_assert_eq(got.dims[d], want.dims[d], "%s dim %d", want.name, d);
        cr_assert_eq(got.bytes, want.bytes, "%s", want.name);
        cr_assert_eq(got.device, -1);
        cr_assert(want.bytes == 0 || memcmp(got.data, want.data, want.bytes) == 0,
                  "tensor %s: bytes differ from a plain restore", want.name);
    }
    trestle_plan_free(p);
    trestle_close(c);
}
