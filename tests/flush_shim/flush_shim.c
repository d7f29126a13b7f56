/*
 * flush_shim.c - an LD_PRELOAD library for tests/test_cli_signals.c: it
 * makes a process's msync(2) and fdatasync(2) take 30 seconds, as flushing
 * gigabytes to a slow disk does, and says so on stderr when it starts, so
 * that a test can send a signal while `trestle convert` flushes its file
 * (a phase nothing can cancel). Signals do not shorten it: a flush is
 * uninterruptible. Only the process it is preloaded into is affected; its
 * two calls are exported by name, whatever the build's default visibility.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define STALL_SECONDS 30

static void stall(const char *what)
{
    static const char head[] = "flush shim: stalling ";
    (void)!write(STDERR_FILENO, head, sizeof head - 1);
    (void)!write(STDERR_FILENO, what, strlen(what));
    (void)!write(STDERR_FILENO, "\n", 1);
    struct timespec left = { STALL_SECONDS, 0 };
    while (nanosleep(&left, &left) != 0 && errno == EINTR)
        ;
}

__attribute__((visibility("default"))) int msync(void *addr, size_t len, int flags)
{
    int (*real)(void *, size_t, int);
    void *sym = dlsym(RTLD_NEXT, "msync");
    memcpy(&real, &sym, sizeof real);
    stall("msync");
    return real(addr, len, flags);
}

__attribute__((visibility("default"))) int fdatasync(int fd)
{
    int (*real)(int);
    void *sym = dlsym(RTLD_NEXT, "fdatasync");
    memcpy(&real, &sym, sizeof real);
    stall("fdatasync");
    return real(fd);
}
