/*
 * ckpt_path.c - turn what a user typed into a checkpoint prefix P.
 *
 * Accepted, in this order: a directory (its `checkpoint` state file, as
 * tf.train.latest_checkpoint; failing that a SavedModel's
 * variables/variables, or the single *.index inside), the file P.index, a
 * data file P.data-NNNNN-of-MMMMM, or P itself. TensorFlow accepts only
 * the first and the last; the others are conveniences (format doc §7.3).
 */
#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ckpt_path.h"
#include "ckpt_remote.h"
#include "error.h"
#include "remote.h"
#include "state_file.h"

static bool is_file(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

/* Anything but a directory counts, so that trestle_open() can say what is
 * wrong with a FIFO or device named P.index instead of "does not exist". */
static bool exists(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && !S_ISDIR(st.st_mode);
}

static bool has_index(const char *prefix)
{
    char *idx = NULL;
    if (asprintf(&idx, "%s.index", prefix) < 0)
        return false;
    bool ok = exists(idx);
    free(idx);
    return ok;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && memcmp(s + a - b, suffix, b) == 0;
}

/* Length of P when `path` is "P.data-NNNNN-of-MMMMM", else 0. */
static size_t data_file_prefix_len(const char *path)
{
    const char *tag = ".data-";
    size_t n = strlen(path);
    /* ".data-" + 5 digits + "-of-" + 5 digits = 20 bytes. */
    if (n <= 20)
        return 0;
    const char *t = path + n - 20;
    if (memcmp(t, tag, 6) != 0 || memcmp(t + 11, "-of-", 4) != 0)
        return 0;
    for (int i = 0; i < 5; i++)
        if (t[6 + i] < '0' || t[6 + i] > '9' || t[15 + i] < '0' || t[15 + i] > '9')
            return 0;
    return (size_t)(t - path);
}

/* A directory without a state file: SavedModel layout, or exactly one index. */
static int resolve_bare_dir(const char *dir, char **prefix, trestle_error *err)
{
    char *p = NULL;
    if (asprintf(&p, "%s/variables/variables", dir) >= 0 && has_index(p)) {
        *prefix = p;
        return TRESTLE_OK;
    }
    free(p);

    DIR *d = opendir(dir);
    if (!d)
        return trestle__error_set(err, TRESTLE_E_IO, errno, NULL, dir, -1, -1,
                                  "cannot list directory %s: %s", dir, strerror(errno));
    char *found = NULL;
    int count = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (!ends_with(de->d_name, ".index"))
            continue;
        count++;
        free(found);
        found = NULL;
        if (asprintf(&found, "%s/%.*s", dir, (int)(strlen(de->d_name) - 6), de->d_name) < 0)
            found = NULL;
    }
    closedir(d);
    if (count == 1 && found) {
        *prefix = found;
        return TRESTLE_OK;
    }
    free(found);
    if (count == 0)
        return trestle__error_set(err, TRESTLE_E_NOT_FOUND, ENOENT, NULL, dir, -1, -1,
                                  "no checkpoint in directory %s: no `checkpoint` state file, "
                                  "no variables/variables.index and no *.index file", dir);
    return trestle__error_set(err, TRESTLE_E_NOT_FOUND, 0, NULL, dir, -1, -1,
                              "directory %s holds %d *.index files and no `checkpoint` state "
                              "file: name the prefix to open", dir, count);
}

int trestle_latest_checkpoint(const char *dir, const char *state_name, char **out,
                              trestle_error *err)
{
    char *latest = NULL;
    trestle_error_clear(err);
    if (out)
        *out = NULL;
    if (!dir || !out)
        return trestle__error_simple(err, TRESTLE_E_INVALID_ARG,
                                     "trestle_latest_checkpoint: NULL %s", dir ? "out" : "dir");
    if (trestle__is_url(dir))
        return trestle__remote_latest(dir, state_name, out, err);
    int rc = trestle__state_read(dir, state_name, &latest, err);
    if (rc != TRESTLE_OK || !latest)
        return rc;
    if (!has_index(latest)) {
        char *state = NULL;
        if (asprintf(&state, "%s%s%s", dir, dir[0] && dir[strlen(dir) - 1] != '/' ? "/" : "",
                     state_name ? state_name : "checkpoint") < 0)
            state = NULL;
        rc = trestle__error_set(err, TRESTLE_E_NOT_FOUND, ENOENT, NULL, state ? state : dir, -1,
                                -1, "Couldn't match files for checkpoint %s (named by %s)",
                                latest, state ? state : dir);
        free(state);
        free(latest);
        return rc;
    }
    *out = latest;
    return TRESTLE_OK;
}

/* A directory: the checkpoint its state file names, else (no state file)
 * a SavedModel's variables or its one index. */
static int resolve_dir(const char *dir, char **prefix, trestle_error *err)
{
    int rc = trestle_latest_checkpoint(dir, NULL, prefix, err);
    if (rc == TRESTLE_OK && !*prefix)
        return resolve_bare_dir(dir, prefix, err);
    return rc;
}

/* PATH names no checkpoint: say so, and when it is a file that goes with
 * one (a MetaGraph P.meta, the `checkpoint` state file) what to give instead. */
static int not_a_prefix(const char *path, trestle_error *err)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    char hint[4200] = "";
    if (ends_with(path, ".meta")) {
        char *p = strndup(path, strlen(path) - 5);
        if (p && has_index(p))
            snprintf(hint, sizeof hint, " (%s is a MetaGraph; its checkpoint prefix is %s)",
                     path, p);
        free(p);
    } else if (strcmp(base, "checkpoint") == 0 && is_file(path)) {
        snprintf(hint, sizeof hint, " (%s is the checkpoint state file: give its directory, "
                 "%.*s, to open the latest checkpoint it names)", path,
                 base == path ? 1 : (int)(base - path - (base - path > 1)),
                 base == path ? "." : path);
    }
    return trestle__error_set(err, TRESTLE_E_NOT_FOUND, ENOENT, NULL, path, -1, -1,
                              "no checkpoint at %s: %s.index does not exist%s", path, path, hint);
}

int trestle__resolve_prefix(const char *path, char **prefix, trestle_error *err)
{
    struct stat st;
    size_t n;

    *prefix = NULL;
    if (!path || !*path)
        return trestle__error_simple(err, TRESTLE_E_INVALID_ARG, "empty checkpoint path");
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
        /* "dir/" and "dir" name the same directory: drop trailing slashes so
         * the paths built from it (and shown in messages) have no "//". */
        char *dir = strdup(path);
        if (!dir)
            return trestle__error_simple(err, TRESTLE_E_NOMEM, "out of memory");
        for (size_t len = strlen(dir); len > 1 && dir[len - 1] == '/'; len--)
            dir[len - 1] = '\0';
        int rc = resolve_dir(dir, prefix, err);
        free(dir);
        return rc;
    }
    if (has_index(path)) {
        *prefix = strdup(path);
    } else if (ends_with(path, ".index") && exists(path)) {
        *prefix = strndup(path, strlen(path) - 6);
    } else if ((n = data_file_prefix_len(path)) > 0 && is_file(path)) {
        *prefix = strndup(path, n);
        if (*prefix && !has_index(*prefix)) {
            free(*prefix);
            *prefix = NULL;
            return trestle__error_set(err, TRESTLE_E_NOT_FOUND, ENOENT, NULL, path, -1, -1,
                                      "%s is a data shard but %.*s.index does not exist", path,
                                      (int)n, path);
        }
    } else {
        return not_a_prefix(path, err);
    }
    if (!*prefix)
        return trestle__error_simple(err, TRESTLE_E_NOMEM, "out of memory");
    return TRESTLE_OK;
}
