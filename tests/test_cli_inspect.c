/*
 * test_cli_inspect.c - `trestle inspect` prints keys safely (issue 22):
 * a key is bytes from the file, and one holding a newline, an escape
 * sequence, a C1 control, a bidirectional override or bytes that are not
 * UTF-8 is shown escaped in the human listing (and `--tensor`), so it can
 * neither forge table rows nor drive the terminal; `--json` keeps its own
 * exact escapes.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "trestle.h"

static const char *const keys[] = {
    "a\nb",              /* a newline: would start a forged row */
    "esc\033[31mred",    /* an ANSI colour sequence */
    "back\\slash",       /* escaped itself, so "\\n" above is unambiguous */
    "c1\xc2\x9bx",       /* U+009B, the one-byte CSI of 8-bit terminals */
    "m\xc3\xb6" "del",   /* UTF-8 text is shown as is */
    "rtl\xe2\x80\xae" "abc", /* U+202E: right-to-left override */
    "raw\xff\x01",       /* not UTF-8, and a control byte */
};

static char *make(char **dir)
{
    char *prefix = NULL;
    *dir = tu_mkdtemp();
    cr_assert_geq(asprintf(&prefix, "%s/k", *dir), 0);
    trestle_writer *w;
    trestle_error err;
    float v = 0;
    int64_t one = 1;
    cr_assert_eq(trestle_writer_create(prefix, NULL, &w, &err), TRESTLE_OK, "%s", err.message);
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        cr_assert_eq(trestle_writer_add(w, keys[i], TRESTLE_DT_FLOAT, 1, &one, &v, 4, 0, &err),
                     TRESTLE_OK, "%s", err.message);
    cr_assert_eq(trestle_writer_finish(w, &err), TRESTLE_OK, "%s", err.message);
    trestle_writer_free(w);
    return prefix;
}

Test(cli_inspect, keys_are_escaped_in_the_listing)
{
    char *dir, *prefix = make(&dir), *want = NULL;
    tu_cli_result r = tu_cli("inspect '%s'", prefix);
    cr_assert_eq(r.rc, 0, "%s", r.err);
    /* Key order is byte order, offsets the order written; the NAME column
     * is as wide as its widest cell in characters. */
    cr_assert_geq(asprintf(&want,
        "checkpoint %s: 7 tensors, 28 B in 1 shard\n"
        "NAME          DTYPE  SHAPE  SIZE  SHARD  OFFSET\n"
        "a\\nb          float  [1]     4 B      0       0\n"
        "back\\\\slash   float  [1]     4 B      0       8\n"
        "c1\\u009bx     float  [1]     4 B      0      12\n"
        "esc\\e[31mred  float  [1]     4 B      0       4\n"
        "m\xc3\xb6" "del         float  [1]     4 B      0      16\n"
        "raw\\xff\\x01   float  [1]     4 B      0      24\n"
        "rtl\\u202eabc  float  [1]     4 B      0      20\n", prefix), 0);
    cr_assert_str_eq(r.out, want);
    tu_cli_free(&r);

    r = tu_cli("inspect '%s' --verify", prefix);
    cr_assert_eq(r.rc, 0, "%s", r.err);
    cr_assert(strstr(r.out, "\nesc\\e[31mred "), "%s", r.out);
    cr_assert_null(strchr(r.out, '\033'), "%s", r.out);
    tu_cli_free(&r);

    /* JSON was always right: its own escapes, the key's bytes otherwise. */
    r = tu_cli("inspect '%s' --json", prefix);
    cr_assert_eq(r.rc, 0, "%s", r.err);
    cr_assert(strstr(r.out, "{\"name\": \"a\\nb\""), "%s", r.out);
    cr_assert(strstr(r.out, "{\"name\": \"esc\\u001b[31mred\""), "%s", r.out);
    tu_cli_free(&r);
    free(want);
    free(prefix);
    tu_rmtree(dir);
    free(dir);
}

Test(cli_inspect, a_tensor_header_escapes_its_key)
{
    char *dir, *prefix = make(&dir);
    tu_cli_result r = tu_cli("inspect '%s' --tensor 'esc\033[31mred'", prefix);
    cr_assert_eq(r.rc, 0, "%s", r.err);
    cr_assert_str_eq(r.out, "esc\\e[31mred: float [1]\n[0.0]\n");
    tu_cli_free(&r);
    free(prefix);
    tu_rmtree(dir);
    free(dir);
}

/* Writer index of the keys of many_keys(), for sorting them by byte order. */
static int by_key(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/*
 * A listing of thousands of rows (issue 24: its cells share one growing
 * buffer, and each column's width is taken as rows arrive): every row is
 * the one a table of that width prints, the widest key and offset set
 * their columns, and an escaped key late in the listing still lines up.
 */
Test(cli_inspect, a_long_listing_lines_up_every_row)
{
    enum { N = 3000 };
    char *dir = tu_mkdtemp(), *prefix = NULL, *keys_at[N];
    cr_assert_geq(asprintf(&prefix, "%s/many", dir), 0);
    trestle_writer *w;
    trestle_error err;
    float v = 0;
    int64_t one = 1;
    size_t name_w = 4, off_w = 6;
    cr_assert_eq(trestle_writer_create(prefix, NULL, &w, &err), TRESTLE_OK, "%s", err.message);
    for (int i = 0; i < N; i++) {
        /* Lengths vary, one key is far the longest, and one needs escaping. */
        if (i == 2500)
            cr_assert_geq(asprintf(&keys_at[i], "z/%0120d", i), 0);
        else if (i == 2999)
            cr_assert_geq(asprintf(&keys_at[i], "zz\n%d", i), 0);
        else
            cr_assert_geq(asprintf(&keys_at[i], "layer_%d/%.*s", i, i % 17, "kernel_and_bias__"), 0);
        cr_assert_eq(trestle_writer_add(w, keys_at[i], TRESTLE_DT_FLOAT, 1, &one, &v, 4, 0, &err),
                     TRESTLE_OK, "%s", err.message);
        size_t shown = strlen(keys_at[i]) + (strchr(keys_at[i], '\n') ? 1 : 0);
        name_w = shown > name_w ? shown : name_w;
    }
    cr_assert_eq(trestle_writer_finish(w, &err), TRESTLE_OK, "%s", err.message);
    trestle_writer_free(w);

    char *sorted[N], *want = NULL, *line = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&want, &len);
    memcpy(sorted, keys_at, sizeof sorted);
    qsort(sorted, N, sizeof *sorted, by_key);
    fprintf(f, "checkpoint %s: %d tensors, 11.72 KiB in 1 shard\n", prefix, N);
    fprintf(f, "%-*s  DTYPE  SHAPE  SIZE  SHARD  %*s\n", (int)name_w, "NAME", (int)off_w, "OFFSET");
    for (int k = 0; k < N; k++) {
        int i = 0;
        while (keys_at[i] != sorted[k])
            i++;
        free(line);
        line = NULL;
        if (strchr(sorted[k], '\n'))
            cr_assert_geq(asprintf(&line, "zz\\n%d", i), 0);
        else
            line = strdup(sorted[k]);
        fprintf(f, "%-*s  float  [1]     4 B      0  %*d\n", (int)name_w, line, (int)off_w, 4 * i);
    }
    fclose(f);
    tu_cli_result r = tu_cli("inspect '%s'", prefix);
    cr_assert_eq(r.rc, 0, "%s", r.err);
    cr_assert_str_eq(r.out, want);
    tu_cli_free(&r);
    for (int i = 0; i < N; i++)
        free(keys_at[i]);
    free(line);
    free(want);
    free(prefix);
    tu_rmtree(dir);
    free(dir);
}
