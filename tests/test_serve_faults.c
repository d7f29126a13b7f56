/*
 * test_serve_faults.c - `trestle serve` when things go wrong, and who may
 * use it: a client killed with SIGKILL releases its reference; a server
 * killed with SIGKILL leaves its clients' mappings readable and correct,
 * and a new one starts empty and says so; another user (nobody, in a
 * child) is refused by the socket's mode and, past it, by SO_PEERCRED,
 * unless the server admits its group; resident memory cannot be written
 * (the write faults, in a child; the descriptor refuses writable mappings,
 * writes and resizing); 100 clients attach at once; truncated, oversized,
 * wrong-version, garbled and descriptor-carrying messages get an error
 * reply and the server goes on.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cursor.h"
#include "memfd_tier.h"
#include "resident.h"
#include "servetest.h"
#include "testutil.h"

#define NOBODY 65534

static int attach_code(const char *sock, const char *path, int require, trestle_attachment **out,
                       trestle_error *err)
{
    trestle_checkpoint *c = NULL;
    trestle_attach_options ao;
    int rc = trestle_open(path, NULL, &c, err);
    if (rc != TRESTLE_OK)
        return rc;
    trestle_attach_options_init(&ao);
    ao.socket_path = sock;
    ao.require_resident = require;
    rc = trestle_attach(c, NULL, 0, NULL, &ao, out, err);
    trestle_close(c);
    return rc;
}

static int child_status(pid_t pid)
{
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    return status;
}

Test(serve_faults, a_killed_client_releases_its_reference)
{
    char *dir = tu_mkdtemp();
    char *ck = tu_write_mixed(dir, 4, 1);
    st_server s;
    st_start(&s, dir, NULL);
    st_preload(s.sock, ck, NULL, 0, NULL);
    int ready[2];
    cr_assert_eq(pipe(ready), 0);
    pid_t pid = fork();
    if (pid == 0) {
        trestle_attachment *a;
        if (attach_code(s.sock, ck, 1, &a, NULL) != TRESTLE_OK)
            _exit(1);
        (void)!write(ready[1], "a", 1);
        pause();
        _exit(0);
    }
    char c;
    cr_assert_eq(read(ready[0], &c, 1), 1);
    cr_assert(st_wait_clients(s.sock, 0, 1));
    kill(pid, SIGKILL);
    child_status(pid);
    cr_assert(st_wait_clients(s.sock, 0, 0), "the killed client's reference was not released");
    char *log = st_log(&s);
    char want[64];
    snprintf(want, sizeof want, "pid %d closed its connection: 1 attachment released", (int)pid);
    cr_assert(strstr(log, want), "%s", log);
    free(log);
    st_stop(&s);
    tu_rmtree(dir);
    free(ck);
    free(dir);
}

Test(serve_faults, mappings_outlive_a_killed_server_and_a_new_one_starts_empty)
{
    char *dir = tu_mkdtemp();
    char *ck = tu_write_mixed(dir, 6, 2);
    uint64_t want = st_restore_checksum(ck, NULL, 0);
    st_server s;
    st_start(&s, dir, NULL);
    st_preload(s.sock, ck, NULL, 0, NULL);
    trestle_attachment *a;
    trestle_error err;
    cr_assert_eq(attach_code(s.sock, ck, 1, &a, &err), TRESTLE_OK, "%s", err.message);
    st_kill9(&s);
    /* The server is gone; its memory lives on in this mapping. */
    cr_assert_eq(st_attachment_checksum(a), want);
    st_assert_same_as_restore(a, ck, NULL, 0);

    /* A new server on the same socket (the dead one's file is stale). */
    unlink(s.log);
    st_start(&s, dir, NULL);
    trestle_resident_list *l = st_list(s.sock);
    cr_assert_eq(trestle_resident_list_count(l), 0);
    trestle_resident_list_free(l);
    char *log = st_log(&s);
    cr_assert(strstr(log, "started empty (resident memory does not outlive the server that held "
                          "it)"), "%s", log);
    free(log);
    trestle_attachment *b;
    cr_assert_eq(attach_code(s.sock, ck, 1, &b, &err), TRESTLE_E_NOT_RESIDENT);
    char msg[512];
    snprintf(msg, sizeof msg, "%s is not resident on this server", ck);
    cr_assert_str_eq(err.message, msg);
    /* The old mapping is still good after all that. */
    cr_assert_eq(st_attachment_checksum(a), want);
    trestle_attachment_free(a);
    st_stop(&s);
    tu_rmtree(dir);
    free(ck);
    free(dir);
}

/* A checkpoint nobody can read: its directory and files open to all. */
static char *readable_checkpoint(char *dir)
{
    char *ck = tu_write_mixed(dir, 3, 1);
    chmod(dir, 0755);
    char path[512];
    snprintf(path, sizeof path, "%s.index", ck);
    chmod(path, 0644);
    snprintf(path, sizeof path, "%s.data-00000-of-00001", ck);
    chmod(path, 0644);
    return ck;
}

static char child_msg[1024];

/* Attach (resident required) as uid and gid nobody, in a child: 0 resident,
 * 1 not resident, 2 another failure; what it said in child_msg. */
static int nobody_attaches(const char *sock, const char *ck)
{
    int p[2];
    cr_assert_eq(pipe(p), 0);
    pid_t pid = fork();
    if (pid == 0) {
        close(p[0]);
        if (setgroups(0, NULL) != 0 || setgid(NOBODY) != 0 || setuid(NOBODY) != 0)
            _exit(99);
        trestle_attachment *a = NULL;
        trestle_error err;
        int rc = attach_code(sock, ck, 1, &a, &err);
        const char *said = rc == TRESTLE_OK ? "resident" : err.message;
        (void)!write(p[1], said, strlen(said));
        _exit(rc == TRESTLE_OK ? 0 : rc == TRESTLE_E_NOT_RESIDENT ? 1 : 2);
    }
    close(p[1]);
    ssize_t n = read(p[0], child_msg, sizeof child_msg - 1);
    child_msg[n > 0 ? n : 0] = 0;
    close(p[0]);
    int status = child_status(pid);
    cr_assert(WIFEXITED(status), "status %d", status);
    return WEXITSTATUS(status);
}

Test(serve_faults, another_user_is_refused)
{
    char *dir = tu_mkdtemp();
    char *ck = readable_checkpoint(dir);
    st_server s;
    st_start(&s, dir, NULL);
    st_preload(s.sock, ck, NULL, 0, NULL);
    struct stat st;
    cr_assert_eq(stat(s.sock, &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0600);
    /* The socket's mode keeps nobody out. */
    cr_assert_eq(nobody_attaches(s.sock, ck), 1);
    char want[700];
    snprintf(want, sizeof want, "this process may not use the trestle server on %s (connect: "
             "Permission denied): its socket admits the server's user, and its group when "
             "started with --group", s.sock);
    cr_assert_str_eq(child_msg, want);
    /* Past the mode, the server checks the peer's credentials itself. */
    chmod(s.sock, 0666);
    cr_assert_eq(nobody_attaches(s.sock, ck), 1);
    snprintf(want, sizeof want, "server %s: permission denied: uid 65534 (pid ", s.sock);
    cr_assert(tu_starts_with(child_msg, want), "%s", child_msg);
    cr_assert(strstr(child_msg, ") may not use this trestle server, which admits uid 0 and root "
                                "(start it with --group G to admit a group)"), "%s", child_msg);
    char *log = st_log(&s);
    cr_assert(strstr(log, "refused pid ") && strstr(log, " uid 65534 gid 65534: not the server's "
                                                         "uid 0 or root"), "%s", log);
    free(log);
    cr_assert(st_wait_clients(s.sock, 0, 0));
    st_stop(&s);
    tu_rmtree(dir);
    free(ck);
    free(dir);
}

Test(serve_faults, a_group_given_to_the_server_is_admitted)
{
    char *dir = tu_mkdtemp();
    char *ck = readable_checkpoint(dir);
    char gid[16];
    snprintf(gid, sizeof gid, "%d", NOBODY);
    const char *extra[] = { "--group", gid, NULL };
    st_server s;
    st_start(&s, dir, extra);
    st_preload(s.sock, ck, NULL, 0, NULL);
    struct stat st;
    cr_assert_eq(stat(s.sock, &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0660);
    cr_assert_eq(st.st_gid, (gid_t)NOBODY);
    cr_assert_eq(nobody_attaches(s.sock, ck), 0, "%s", child_msg);
    st_stop(&s);
    tu_rmtree(dir);
    free(ck);
    free(dir);
}

Test(serve_faults, resident_memory_cannot_be_written)
{
    char *dir = tu_mkdtemp();
    char *ck = tu_write_mixed(dir, 3, 1);
    st_server s;
    st_start(&s, dir, NULL);
    st_preload(s.sock, ck, NULL, 0, NULL);
    trestle_attachment *a;
    trestle_error err;
    cr_assert_eq(attach_code(s.sock, ck, 1, &a, &err), TRESTLE_OK, "%s", err.message);
    trestle_plan_op_info op;
    trestle_attachment_get_op(a, 1, &op);
    uint8_t before = ((const uint8_t *)op.data)[0];
    /* A write through the mapping faults (in a child). */
    pid_t pid = fork();
    if (pid == 0) {
        signal(SIGSEGV, SIG_DFL); /* the kernel's verdict, not a sanitizer's handler */
        ((volatile uint8_t *)op.data)[0] ^= 0xff;
        _exit(0);
    }
    int status = child_status(pid);
    cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV, "the write did not fault "
              "(status %d)", status);
    cr_assert_eq(((const uint8_t *)op.data)[0], before);
    /* Nor can the mapping be made writable. */
    long page = sysconf(_SC_PAGESIZE);
    void *base = (void *)((uintptr_t)op.data & ~(uintptr_t)(page - 1));
    cr_assert_neq(mprotect(base, (size_t)page, PROT_READ | PROT_WRITE), 0);

    /* The descriptor a client receives: read-only, sealed. */
    trestle_checkpoint *c = tu_open(ck, NULL);
    trestle__selection sel;
    cr_assert_eq(trestle__selection_make(c, NULL, 0, NULL, TRESTLE__TIER_HOST, -1, &sel, &err),
                 TRESTLE_OK);
    int sock;
    cr_assert_eq(trestle__resident_connect(s.sock, &sock, &err), TRESTLE_OK);
    trestle__wire_msg req = { .type = TRESTLE__MSG_ATTACH }, reply;
    req.attach.key = sel.key;
    int fds[TRESTLE__WIRE_MAX_FDS];
    unsigned nfds;
    cr_assert_eq(trestle__resident_call(sock, s.sock, &req, 5000, &reply, fds, &nfds, &err),
                 TRESTLE_OK, "%s", err.message);
    cr_assert_eq(nfds, 1);
    uint64_t region = reply.attach_reply.entry.region_bytes;
    cr_assert_eq(fcntl(fds[0], F_GETFL) & O_ACCMODE, O_RDONLY);
    cr_assert_eq(mmap(NULL, region, PROT_READ | PROT_WRITE, MAP_SHARED, fds[0], 0), MAP_FAILED);
    cr_assert_eq(write(fds[0], "x", 1), -1);
    cr_assert_neq(ftruncate(fds[0], 0), 0);
    /* Even a writable descriptor of it (reopened) cannot write or map it writable. */
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fds[0]);
    int rw = open(path, O_RDWR);
    if (rw >= 0) {
        cr_assert_eq(mmap(NULL, region, PROT_READ | PROT_WRITE, MAP_SHARED, rw, 0), MAP_FAILED);
        cr_assert_eq(pwrite(rw, "x", 1, 0), -1);
        cr_assert_neq(ftruncate(rw, 0), 0);
        cr_assert_neq(fcntl(rw, F_ADD_SEALS, 0), 0, "F_SEAL_SEAL: no seal can be removed or "
                                                    "added");
        close(rw);
    }
    cr_assert_eq(trestle__memfd_check_sealed(fds[0], region, "server", &err), TRESTLE_OK);
    close(fds[0]);
    close(sock);
    trestle__wire_msg_free(&reply);
    trestle__selection_free(&sel);
    trestle_close(c);
    trestle_attachment_free(a);
    st_stop(&s);
    tu_rmtree(dir);
    free(ck);
    free(dir);
}

Test(serve_faults, a_hundred_clients_attach_at_once)
{
    char *dir = tu_mkdtemp();
    char *ck = tu_write_mixed(dir, 30, 2);
    uint64_t want = st_restore_checksum(ck, NULL, 0);
    st_server s;
    st_start(&s, dir, NULL);
    st_preload(s.sock, ck, NULL, 0, NULL);
    enum { N = 100 };
    pid_t pids[N];
    int go[2];
    cr_assert_eq(pipe(go), 0);
    for (int i = 0; i < N; i++) {
        pids[i] = fork();
        cr_assert_geq(pids[i], 0);
        if (pids[i] == 0) {
            char b;
            close(go[1]);
            if (read(go[0], &b, 1) != 0) /* all start when the pipe closes */
                _exit(3);
            trestle_attachment *a;
            if (attach_code(s.sock, ck, 1, &a, NULL) != TRESTLE_OK)
                _exit(1);
            _exit(st_attachment_checksum(a) == want ? 0 : 2);
        }
    }
    close(go[0]);
    close(go[1]);
    int failed = 0;
    for (int i = 0; i < N; i++) {
        int status = child_status(pids[i]);
        failed += !(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    cr_assert_eq(failed, 0, "%d of %d clients did not attach the right bytes", failed, N);
    cr_assert(st_wait_clients(s.sock, 0, 0));
    char *log = st_log(&s);
    char line[64];
    int attaches = 0;
    for (const char *p = log; (p = strstr(p, "attach of ")); p++)
        attaches++;
    snprintf(line, sizeof line, "%d", attaches);
    cr_assert_eq(attaches, N, "attach log lines: %s", line);
    free(log);
    st_stop(&s);
    tu_rmtree(dir);
    free(ck);
    free(dir);
}

/* Pipes among the open descriptors of process `pid`. */
static int pipes_of(pid_t pid)
{
    char cmd[128], *out = NULL, *errout = NULL;
    snprintf(cmd, sizeof cmd, "ls -l /proc/%d/fd | grep -c pipe", (int)pid);
    tu_run(cmd, &out, &errout);
    int n = atoi(out ? out : "0");
    free(out);
    free(errout);
    return n;
}

/* Send raw bytes (and maybe a descriptor) on a fresh connection; the reply. */
static int raw(const char *sock, const void *p, size_t n, int fd, int shut, trestle__wire_msg *reply,
               trestle_error *err)
{
    int c;
    cr_assert_eq(trestle__resident_connect(sock, &c, err), TRESTLE_OK);
    cr_assert_eq(trestle__wire_send(c, p, n, fd >= 0 ? &fd : NULL, fd >= 0, err), TRESTLE_OK);
    if (shut)
        shutdown(c, SHUT_WR);
    int fds[TRESTLE__WIRE_MAX_FDS];
    unsigned nfds;
    int rc = trestle__wire_recv(c, 5000, "server", reply, fds, &nfds, err);
    close(c);
    return rc;
}

static void expect_error(const char *sock, const void *p, size_t n, int fd, int shut,
                         const char *message)
{
    trestle__wire_msg reply;
    trestle_error err;
    cr_assert_eq(raw(sock, p, n, fd, shut, &reply, &err), TRESTLE_OK, "%s", err.message);
    cr_assert_eq(reply.type, TRESTLE__MSG_ERROR);
    cr_assert_str_eq(reply.error.message, message);
    trestle__wire_msg_free(&reply);
}

Test(serve_faults, hostile_messages_get_an_error_and_the_server_goes_on)
{
    char *dir = tu_mkdtemp();
    st_server s;
    st_start(&s, dir, NULL);
    int pipes_before = pipes_of(s.pid);
    trestle__wire_msg m = { .type = TRESTLE__MSG_LIST };
    trestle__buf b = { 0 };
    cr_assert(trestle__wire_encode(&m, 0, &b));
    uint8_t f[16];

    memcpy(f, b.data, 16);
    f[0] = 'X';
    expect_error(s.sock, f, 16, -1, 0, "not a trestle message: the frame starts with 0x56535258, "
                                       "not the magic 0x56535254 (\"TRSV\")");
    memcpy(f, b.data, 16);
    f[4] = 9;
    expect_error(s.sock, f, 16, -1, 0, "protocol version 9, but this trestle speaks version 1: "
                                       "client and server come from different trestle releases");
    memcpy(f, b.data, 16);
    tr_store_le32(f + 8, 0x7fffffff);
    expect_error(s.sock, f, 16, -1, 0, "LIST message of 2147483647 bytes is over the "
                                       "67108864-byte limit");
    /* Truncated: the header, then the client stops sending. */
    expect_error(s.sock, b.data, 10, -1, 1, "truncated message: the client stopped sending after "
                                            "10 of the 16 header bytes");
    trestle__wire_msg ev = { .type = TRESTLE__MSG_EVICT };
    ev.evict.path = "/x";
    trestle__buf e = { 0 };
    cr_assert(trestle__wire_encode(&ev, 0, &e));
    expect_error(s.sock, e.data, e.len - 1, -1, 1, "truncated EVICT message: the client stopped "
                                                   "sending after 21 of its 22 bytes");
    /* A payload that does not decode: the connection goes on. */
    tr_store_le32(e.data + 16, 5); /* a path longer than what follows */
    expect_error(s.sock, e.data, e.len, -1, 0, "malformed EVICT message: bad or missing evict "
                                               "path at byte 0 of its 6-byte payload");
    /* A descriptor with a request. */
    int pfd[2];
    cr_assert_eq(pipe(pfd), 0);
    expect_error(s.sock, b.data, b.len, pfd[0], 0, "LIST request with 1 file descriptors: "
                                                   "requests carry none");
    /* A reply sent as a request. */
    trestle__wire_msg rep = { .type = TRESTLE__MSG_COMMIT_REPLY };
    trestle__buf r = { 0 };
    cr_assert(trestle__wire_encode(&rep, 0, &r));
    expect_error(s.sock, r.data, r.len, -1, 0, "a COMMIT_REPLY message is a reply: the server "
                                               "takes LIST, EVICT, ALLOC, COMMIT and ATTACH");
    /* A COMMIT of an entry this connection never allocated. */
    trestle__wire_msg cm = { .type = TRESTLE__MSG_COMMIT };
    cm.commit.entry_id = 42;
    trestle__buf cb = { 0 };
    cr_assert(trestle__wire_encode(&cm, 0, &cb));
    expect_error(s.sock, cb.data, cb.len, -1, 0, "COMMIT of entry 42, which this connection did "
                                                 "not allocate");
    /* Garbage, a lot of it. */
    uint8_t junk[4096];
    tu_fill_random(junk, sizeof junk, 3);
    trestle__wire_msg reply;
    trestle_error err;
    raw(s.sock, junk, sizeof junk, -1, 1, &reply, &err);
    trestle__wire_msg_free(&reply);
    /* After all that: alive, and nothing leaked into it. */
    trestle_resident_list *l = st_list(s.sock);
    trestle_resident_server sv;
    trestle_resident_list_server(l, &sv);
    cr_assert_eq(sv.connections, 1);
    trestle_resident_list_free(l);
    cr_assert_eq(pipes_of(s.pid), pipes_before, "the server kept a descriptor a client sent");
    close(pfd[0]);
    close(pfd[1]);
    trestle__buf_free(&b);
    trestle__buf_free(&e);
    trestle__buf_free(&r);
    trestle__buf_free(&cb);
    cr_assert_eq(st_stop(&s), 0);
    tu_rmtree(dir);
    free(dir);
}
