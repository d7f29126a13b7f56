/*
 * cli_opsfile.c - the ops file of `trestle restore --ops` and
 * `trestle diff --ops`: a RestoreV2 op list as text.
 *
 * One op per line: NAME, then optionally a TAB and TensorFlow's
 * shape_and_slices string (which itself contains spaces, hence the TAB),
 * then optionally TAB-separated `dtype=DTYPE` (the stored dtype must be
 * DTYPE) and `as=DTYPE` (convert to DTYPE on load), each at most once, in
 * either order. Blank lines and lines whose first non-blank character is
 * '#' are ignored. An empty spec (`NAME<TAB><TAB>dtype=float`) means the
 * whole tensor, and a second field that starts with "dtype=" or "as=" is
 * taken as such a field, not a spec.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static int keep(cli_ops *o, char *s, char **out)
{
    char *copy = strdup(s);
    char **grown = realloc(o->strings, (o->nstrings + 1) * sizeof *grown);
    if (!copy || !grown) {
        free(copy);
        if (grown)
            o->strings = grown;
        return -1;
    }
    o->strings = grown;
    o->strings[o->nstrings++] = copy;
    *out = copy;
    return 0;
}

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r' || s[n - 1] == '\n'))
        s[--n] = '\0';
    return s;
}

static int keyword(const char *field)
{
    return strncmp(field, "dtype=", 6) == 0 || strncmp(field, "as=", 3) == 0;
}

/* A `dtype=`/`as=` field into op. Returns NULL or an error text. */
static const char *parse_keyword(char *field, trestle_op *op)
{
    int as = strncmp(field, "as=", 3) == 0;
    int *slot = as ? &op->target_dtype : &op->dtype;
    if (!keyword(field))
        return "fields after SHAPE_AND_SLICES must be dtype=DTYPE or as=DTYPE";
    if (*slot != TRESTLE_DT_INVALID)
        return as ? "as= given twice" : "dtype= given twice";
    *slot = trestle_dtype_from_name(field + (as ? 3 : 6));
    if (*slot == TRESTLE_DT_INVALID)
        return "unknown dtype (use TensorFlow's names: float, bfloat16, half, int64...)";
    return NULL;
}

/* Parse one non-comment line into `op`. Returns NULL or an error text. */
static const char *parse_line(cli_ops *o, char *line, trestle_op *op)
{
    char *fields[4] = { NULL, NULL, NULL, NULL };
    int nf = 0;
    char *p = line;
    for (;;) {
        char *tab = strchr(p, '\t');
        if (nf == 4)
            return "too many TAB-separated fields (expected "
                   "NAME[<TAB>SPEC[<TAB>dtype=DTYPE][<TAB>as=DTYPE]])";
        fields[nf++] = p;
        if (!tab)
            break;
        *tab = '\0';
        p = tab + 1;
    }
    char *name = trim(fields[0]);
    if (!*name)
        return "empty tensor name";
    char *spec = nf > 1 ? trim(fields[1]) : NULL;
    int first_kw = 2;
    if (spec && keyword(spec)) { /* NAME<TAB>dtype=...: no spec (a spec starts with a digit) */
        spec = NULL;
        first_kw = 1;
    }
    memset(op, 0, sizeof *op);
    char *kept;
    if (keep(o, name, &kept) != 0)
        return "out of memory";
    op->name = kept;
    if (spec && *spec) {
        if (keep(o, spec, &kept) != 0)
            return "out of memory";
        op->shape_and_slices = kept;
    }
    for (int f = first_kw; f < nf; f++) {
        char *field = trim(fields[f]);
        const char *problem = *field ? parse_keyword(field, op) : NULL;
        if (problem)
            return problem;
    }
    return NULL;
}

/* Bounds on what an ops file may hold: a line is one name and a spec (TF
 * keys are short; 64 KiB is far past any real one), and the file a few
 * million ops. /dev/zero or a binary file hits one of them at once. */
#define MAX_LINE ((size_t)64 << 10)
#define MAX_FILE ((uint64_t)256 << 20)

enum { LINE_OK, LINE_EOF, LINE_TOO_LONG, FILE_TOO_BIG, LINE_NOMEM, LINE_READ_ERROR };

/*
 * Read one line (without its newline) into *buf; tells the end of the file
 * apart from a read error (errno kept in *sys_errno), an allocation failure
 * and the bounds above. *total counts the bytes read so far.
 */
static int read_line(FILE *f, char **buf, size_t *cap, size_t *len_out, uint64_t *total,
                     int *sys_errno)
{
    size_t len = 0;
    int ch;
    errno = 0;
    while ((ch = getc(f)) != EOF) {
        if (++*total > MAX_FILE)
            return FILE_TOO_BIG;
        if (ch == '\n')
            break;
        if (len + 1 >= MAX_LINE)
            return LINE_TOO_LONG;
        if (len + 1 >= *cap) {
            size_t grown_cap = *cap ? *cap * 2 : 256;
            char *grown = realloc(*buf, grown_cap);
            if (!grown)
                return LINE_NOMEM;
            *buf = grown;
            *cap = grown_cap;
        }
        (*buf)[len++] = (char)ch;
    }
    if (ch == EOF && ferror(f)) {
        *sys_errno = errno;
        return LINE_READ_ERROR;
    }
    if (ch == EOF && len == 0)
        return LINE_EOF;
    if (!*buf && !(*buf = malloc(*cap = 1)))
        return LINE_NOMEM;
    (*buf)[len] = '\0';
    *len_out = len;
    return LINE_OK;
}

/* Parse every line of f into out; NULL, or the problem (at line *lineno). */
static const char *read_ops(FILE *f, int dest_kind, cli_ops *out, size_t *lineno, char *why,
                            size_t why_cap)
{
    char *line = NULL;
    size_t cap = 0, alloc = 0, len = 0;
    uint64_t total = 0;
    const char *problem = NULL;
    int e = 0, got;

    while (!problem && (got = read_line(f, &line, &cap, &len, &total, &e)) != LINE_EOF) {
        ++*lineno;
        if (got == LINE_TOO_LONG) {
            snprintf(why, why_cap, "line longer than %zu bytes (is this an ops file?)",
                     MAX_LINE);
            problem = why;
            break;
        }
        if (got == FILE_TOO_BIG) {
            snprintf(why, why_cap, "file larger than %" PRIu64 " MiB (is this an ops file?)",
                     MAX_FILE >> 20);
            problem = why;
            break;
        }
        if (got == LINE_NOMEM) {
            problem = "out of memory";
            break;
        }
        if (got == LINE_READ_ERROR) {
            snprintf(why, why_cap, "read error: %s", strerror(e));
            problem = why;
            break;
        }
        if (memchr(line, '\0', len)) {
            problem = "NUL byte in the line (is this an ops file?)";
            break;
        }
        while (len && line[len - 1] == '\r')
            line[--len] = '\0';
        const char *first = line + strspn(line, " \t");
        if (!*first || *first == '#')
            continue;
        if (out->n == alloc) {
            alloc = alloc ? alloc * 2 : 64;
            trestle_op *grown = realloc(out->ops, alloc * sizeof *grown);
            if (!grown) {
                problem = "out of memory";
                break;
            }
            out->ops = grown;
        }
        /* Fields are split before trimming: a leading TAB means an empty name. */
        problem = parse_line(out, line, &out->ops[out->n]);
        if (!problem)
            out->ops[out->n++].dest_kind = dest_kind;
    }
    free(line);
    return problem;
}

int cli_ops_read(const char *path, int dest_kind, cli_ops *out)
{
    bool use_stdin = strcmp(path, "-") == 0;
    const char *shown = use_stdin ? "standard input" : path;
    char why[160];
    size_t lineno = 0;

    memset(out, 0, sizeof *out);
    FILE *f = use_stdin ? stdin : fopen(path, "r");
    if (!f) {
        cli_error("cannot open ops file %s: %s", path, strerror(errno));
        return CLI_EXIT_FAIL;
    }
    const char *problem = read_ops(f, dest_kind, out, &lineno, why, sizeof why);
    if (!use_stdin)
        fclose(f);
    if (problem) {
        cli_error("%s:%zu: %s", shown, lineno, problem);
        cli_ops_free(out);
        return CLI_EXIT_FAIL;
    }
    if (out->n == 0) {
        /* An empty list restoring everything would be a silent surprise. */
        cli_error("%s lists no ops (only blank lines or comments); use --all to restore every "
                  "tensor", shown);
        cli_ops_free(out);
        return CLI_EXIT_FAIL;
    }
    return CLI_EXIT_OK;
}

void cli_ops_free(cli_ops *ops)
{
    for (size_t i = 0; i < ops->nstrings; i++)
        free(ops->strings[i]);
    free(ops->strings);
    free(ops->ops);
    free(ops->shapes);
    free(ops->shape_dims);
    memset(ops, 0, sizeof *ops);
}
