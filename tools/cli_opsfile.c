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

int cli_ops_read(const char *path, int dest_kind, cli_ops *out)
{
    FILE *f = fopen(path, "r");
    char *line = NULL;
    size_t cap = 0, lineno = 0, alloc = 0;
    const char *problem = NULL;

    memset(out, 0, sizeof *out);
    if (!f) {
        cli_error("cannot open ops file %s: %s", path, strerror(errno));
        return CLI_EXIT_FAIL;
    }
    while (!problem && getline(&line, &cap, f) != -1) {
        lineno++;
        size_t len = strlen(line);
        while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
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
    if (!problem && ferror(f))
        problem = "read error";
    free(line);
    fclose(f);
    if (problem) {
        cli_error("%s:%zu: %s", path, lineno, problem);
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
    memset(ops, 0, sizeof *ops);
}
