/*
 * cli_machine.c - what a benchmark figure was measured on, for `trestle
 * bench` and `trestle restore --json`: the CPU model, cores, memory,
 * kernel, the file system the shards are on, and this trestle's version
 * and build type. A figure without these cannot be compared with another.
 *
 * Read from /proc and uname(2); anything unknown is said so ("unknown"),
 * never guessed.
 */
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "cli.h"

#ifndef TRESTLE_BUILD_TYPE
#define TRESTLE_BUILD_TYPE "" /* set by CMake (CMAKE_BUILD_TYPE) */
#endif

/* The first "model name" of /proc/cpuinfo (x86), else its "Hardware" or "cpu model". */
static void cpu_model(char *buf, size_t cap)
{
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[512];
    snprintf(buf, cap, "unknown");
    while (f && fgets(line, sizeof line, f)) {
        char *colon = strchr(line, ':');
        if (!colon || (strncmp(line, "model name", 10) && strncmp(line, "Hardware", 8) &&
                       strncmp(line, "cpu model", 9)))
            continue;
        char *v = colon + 1 + strspn(colon + 1, " \t");
        v[strcspn(v, "\n")] = '\0';
        if (*v) {
            snprintf(buf, cap, "%s", v);
            break;
        }
    }
    if (f)
        fclose(f);
}

/* Undo mountinfo's octal escapes (\040 for a space) in place. */
static void unescape(char *s)
{
    char *o = s;
    for (; *s; s++) {
        if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' && s[2] <= '7' &&
            s[3] >= '0' && s[3] <= '7') {
            *o++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 + (s[3] - '0'));
            s += 3;
        } else {
            *o++ = *s;
        }
    }
    *o = '\0';
}

/* The mount that holds `path`: the longest mount point that is a prefix of
 * its real path, from /proc/self/mountinfo. */
static void file_system(const char *path, cli_machine *m)
{
    char real[PATH_MAX], line[4096];
    snprintf(m->fs, sizeof m->fs, "unknown");
    snprintf(m->fs_source, sizeof m->fs_source, "unknown");
    m->mount[0] = '\0';
    if (path && trestle_is_url(path)) {
        /* An object store: its scheme says which kind ("gs", "s3", "https"). */
        snprintf(m->fs, sizeof m->fs, "remote");
        snprintf(m->fs_source, sizeof m->fs_source, "%.*s", (int)strcspn(path, ":"), path);
        return;
    }
    if (!path || !realpath(path, real))
        return;
    FILE *f = fopen("/proc/self/mountinfo", "r");
    size_t best = 0;
    while (f && fgets(line, sizeof line, f)) {
        /* ID PARENT MAJ:MIN ROOT MOUNT_POINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPER */
        char *save = NULL, *field[5], *dash = strstr(line, " - ");
        int k = 0;
        if (!dash)
            continue;
        *dash = '\0'; /* fields with escaped spaces before it, the file system after */
        for (char *t = strtok_r(line, " ", &save); t && k < 5; t = strtok_r(NULL, " ", &save))
            field[k++] = t;
        if (k < 5)
            continue;
        char *mp = field[4];
        unescape(mp);
        size_t len = strlen(mp);
        int prefix = strcmp(mp, "/") == 0 ||
                     (strncmp(real, mp, len) == 0 && (real[len] == '/' || real[len] == '\0'));
        if (!prefix || len < best)
            continue;
        char fstype[64] = "", source[256] = "";
        if (sscanf(dash + 3, "%63s %255s", fstype, source) < 1)
            continue;
        best = len;
        snprintf(m->fs, sizeof m->fs, "%s", fstype);
        unescape(source);
        snprintf(m->fs_source, sizeof m->fs_source, "%s", source);
        snprintf(m->mount, sizeof m->mount, "%s", mp);
    }
    if (f)
        fclose(f);
}

void cli_machine_probe(const char *path, cli_machine *m)
{
    struct utsname u;
    memset(m, 0, sizeof *m);
    cpu_model(m->cpu, sizeof m->cpu);
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    m->cores = cores > 0 ? cores : 0;
    m->memory = pages > 0 && page > 0 ? (uint64_t)pages * (uint64_t)page : 0;
    if (uname(&u) == 0)
        snprintf(m->kernel, sizeof m->kernel, "%s %s %s", u.sysname, u.release, u.machine);
    else
        snprintf(m->kernel, sizeof m->kernel, "unknown");
    file_system(path, m);
}

const char *cli_build_type(void)
{
    return TRESTLE_BUILD_TYPE[0] ? TRESTLE_BUILD_TYPE : "unknown";
}

void cli_machine_text(FILE *f, const cli_machine *m)
{
    char mem[32];
    cli_human_size(m->memory, mem, sizeof mem);
    fprintf(f, "machine: %s, %ld cores, %s memory, %s; shards on %s (%s)\n", m->cpu, m->cores,
            mem, m->kernel, m->fs, m->fs_source);
    fprintf(f, "trestle %s, %s build\n", trestle_version_string(), cli_build_type());
}

void cli_machine_json(FILE *f, const cli_machine *m, const char *indent)
{
    fprintf(f, "%s\"trestle\": {\"version\": ", indent);
    cli_json_cstr(f, trestle_version_string());
    fputs(", \"build_type\": ", f);
    cli_json_cstr(f, cli_build_type());
    fprintf(f, "},\n%s\"machine\": {\"cpu\": ", indent);
    cli_json_cstr(f, m->cpu);
    fprintf(f, ", \"cores\": %ld, \"memory_bytes\": %" PRIu64 ", \"kernel\": ", m->cores,
            m->memory);
    cli_json_cstr(f, m->kernel);
    fputs(", \"filesystem\": ", f);
    cli_json_cstr(f, m->fs);
    fputs(", \"filesystem_source\": ", f);
    cli_json_cstr(f, m->fs_source);
    fputs(", \"mount_point\": ", f);
    cli_json_cstr(f, m->mount);
    fputs("}", f);
}
