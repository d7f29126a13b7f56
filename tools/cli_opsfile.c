/*
 * cli_opsfile.c - the ops file of `trestle restore --ops` and
 * `trestle diff --ops`: a RestoreV2 op list as text.
 *
 * One op per line: NAME, then optionally a TAB and TensorFlow's
 * shape_and_slices string (which itself contains spaces, hence the TAB),
 * then optionally another TAB and `dtype=DTYPE`. Blank lines and lines
 * whose first non-blank character is '#' are ignored. An empty spec
 * (`NAME<TAB><TAB>dtype=float`) means the whole tensor, and a second field
 * that starts with "dtype=" is taken as the dtype.
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

/* Parse one non-comment line into `op`. Returns NULL or an error text. */
static const char *parse_line(cli_ops *o, char *line, trestle_op *op)
{
    char *fields[3] = { NULL, NULL, NULL };
    int nf = 0;
    char *p = line;
    for (;;) {
        char *tab = strchr(p, '\t');
        if (nf == 3)
            return "too many TAB-separated fields (expected NAME[<TAB>SPEC[<TAB>dtype=DTYPE]])";
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
    char *dtype = nf > 2 ? trim(fields[2]) : NULL;
    if (spec && !dtype && strncmp(spec, "dtype=", 6) == 0) {
        dtype = spec;
        spec = NULL;
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
    if (dtype && *dtype) {
        if (strncmp(dtype, "dtype=", 6) != 0)
            return "third field must be dtype=DTYPE";
        op->dtype = trestle_dtype_from_name(dtype + 6);
        if (op->dtype == TRESTLE_DT_INVALID)
            return "unknown dtype (use TensorFlow's names: float, bfloat16, half, int64...)";
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
