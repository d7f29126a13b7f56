/*
 * fuzz_scratch.h - where a fuzz target writes its inputs: one path per
 * process, in /dev/shm when it is writable (no disk I/O per input), else
 * /tmp.
 */
#ifndef TRESTLE_FUZZ_SCRATCH_H
#define TRESTLE_FUZZ_SCRATCH_H

#include <stdio.h>
#include <unistd.h>

/* "<base>/trestle-fuzz-<what>-<pid>" into buf. */
static inline void fuzz_scratch_path(char *buf, size_t cap, const char *what)
{
    const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(buf, cap, "%s/trestle-fuzz-%s-%ld", base, what, (long)getpid());
}

#endif /* TRESTLE_FUZZ_SCRATCH_H */
