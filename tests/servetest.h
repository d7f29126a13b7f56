/*
 * servetest.h - what the `trestle serve` suites share (test_serve*.c,
 * test_cli_serve.c): a server started as the real CLI (`trestle serve`,
 * fork and exec, its log in a file), stopped or killed by its pid; asking
 * it what it holds; a checkpoint to keep resident, and the bytes a plain
 * restore gives of it, to compare with.
 */
#ifndef TRESTLE_SERVETEST_H
#define TRESTLE_SERVETEST_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "trestle_serve.h"

typedef struct st_server {
    pid_t pid;
    char sock[256];          /* DIR/s.sock */
    char log[256];           /* DIR/serve.log: its stderr */
} st_server;

/* Start `trestle serve --socket DIR/s.sock` with `extra` more arguments
 * (NULL-terminated, or NULL), and wait (10 s at most) until it answers. */
void st_start(st_server *s, const char *dir, const char *const *extra);

/* SIGTERM, then wait: the exit status (0 for a clean stop). */
int st_stop(st_server *s);

/* SIGKILL, then reap. */
void st_kill9(st_server *s);

/* The server's log so far (malloc'd). */
char *st_log(const st_server *s);

/* What the server holds: the list (failing the test if it cannot be had). */
trestle_resident_list *st_list(const char *sock);

/* Wait (5 s at most) until entry `i` of the list has `clients` clients: 1 when it did. */
int st_wait_clients(const char *sock, size_t i, unsigned clients);

/* Preload `ops` (NULL: every tensor) of the checkpoint at `path`, failing the test on error. */
void st_preload(const char *sock, const char *path, const trestle_op *ops, size_t n,
                trestle_preload_info *info);

/* FNV-1a 64 of every kept op's bytes in op order (host memory), from a
 * plain restore of `ops` of `path` (as `restore --checksum` gives it). */
uint64_t st_restore_checksum(const char *path, const trestle_op *ops, size_t n);

/* The same of an attachment's host tensors. */
uint64_t st_attachment_checksum(const trestle_attachment *a);

/* Every op of `a` equal to a plain restore's (names, dtypes, shapes, bytes). */
void st_assert_same_as_restore(const trestle_attachment *a, const char *path,
                               const trestle_op *ops, size_t n);

#endif /* TRESTLE_SERVETEST_H */
