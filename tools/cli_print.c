/*
 * cli_print.c - a tensor's values as text, for `trestle inspect --tensor`.
 *
 * The layout follows numpy's repr of an array (without the "array(...)"
 * wrapper): nested brackets, ", " between elements, one row a line, blank
 * lines between higher-dimensional blocks, lines wrapped at 75 columns,
 * and big tensors (more than 1000 elements) summarised to the first and
 * last 3 entries of each axis around "...". Strings print as Python byte
 * literals, so keys, vocabularies and JSON configs stay readable and
 * unambiguous.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

#define PRINT_THRESHOLD 1000  /* numpy's default: summarise above this many elements */
#define PRINT_EDGE 3          /* entries kept at each end of a summarised axis */
#define PRINT_WIDTH 75        /* numpy's default line width */
#define PRINT_STRING_MAX 1000 /* bytes shown of one string element unless --all */

typedef struct printer {
    FILE *f;
    const trestle_tensor_info *t;
    const void *buf;             /* fixed-size elements */
    const trestle_bytes *strs;   /* decoded elements of a string tensor, else NULL */
    int summarize;               /* cut axes around "..." */
    int all;                     /* print whole strings too */
    int col;                     /* current output column, for wrapping */
} printer;

/* Text of element `i` in a malloc'd string (NULL when out of memory). */
static char *element_text(const printer *pr, uint64_t i)
{
    if (pr->strs) {
        char *s = NULL;
        size_t len = 0;
        FILE *m = open_memstream(&s, &len);
        if (!m)
            return NULL;
        cli_print_pybytes(m, pr->strs[i].data, pr->strs[i].len, pr->all ? 0 : PRINT_STRING_MAX);
        fclose(m);
        return s;
    }
    char tmp[128];
    if (cli_format_element(pr->t->dtype, pr->buf, i, CLI_STYLE_PYTHON, tmp, sizeof tmp) != 0)
        snprintf(tmp, sizeof tmp, "?");
    return strdup(tmp);
}

static void put(printer *pr, const char *s)
{
    fputs(s, pr->f);
    const char *nl = strrchr(s, '\n');
    pr->col = nl ? (int)strlen(nl + 1) : pr->col + (int)strlen(s);
}

static void put_indent(printer *pr, int n)
{
    for (int k = 0; k < n; k++)
        put(pr, " ");
}

/* Print the sub-array of axis `d` that starts at element `base`. */
static void print_axis(printer *pr, int d, uint64_t base)
{
    const trestle_tensor_info *t = pr->t;
    int64_t n = t->dims[d];
    uint64_t stride = 1;
    for (int k = d + 1; k < t->rank; k++)
        stride *= (uint64_t)t->dims[k];
    int cut = pr->summarize && n > 2 * PRINT_EDGE;
    int last = d == t->rank - 1;
    /* Slots: every index, or the edges around one "..." slot (k == -1). */
    int64_t slots = cut ? 2 * PRINT_EDGE + 1 : n;

    put(pr, "[");
    for (int64_t s = 0; s < slots; s++) {
        int64_t k = !cut || s < PRINT_EDGE ? s : s == PRINT_EDGE ? -1 : n - (slots - s);
        char *text = NULL;
        if (last)
            text = k < 0 ? strdup("...") : element_text(pr, base + (uint64_t)k);
        const char *txt = text ? text : (k < 0 ? "..." : "?");
        if (s > 0) {
            put(pr, ",");
            if (!last) {
                for (int b = 0; b < t->rank - d - 1; b++)
                    put(pr, "\n");
                put_indent(pr, d + 1);
            } else if (pr->col + 1 + (int)strlen(txt) + 1 > PRINT_WIDTH) {
                /* Wrap before an element that would pass the width, as numpy does. */
                put(pr, "\n");
                put_indent(pr, d + 1);
            } else {
                put(pr, " ");
            }
        }
        if (last || k < 0)
            put(pr, txt);
        else
            print_axis(pr, d + 1, base + (uint64_t)k * stride);
        free(text);
    }
    put(pr, "]");
}

static int decode_strings(const trestle_tensor_info *t, const void *buf, uint64_t size,
                          trestle_bytes **out, trestle_error *err)
{
    uint64_t n = (uint64_t)t->num_elements;
    *out = malloc((size_t)(n ? n : 1) * sizeof **out);
    if (!*out) {
        err->code = TRESTLE_E_NOMEM;
        snprintf(err->message, sizeof err->message, "out of memory decoding tensor '%s'",
                 t->name);
        return TRESTLE_E_NOMEM;
    }
    int rc = trestle_strings_decode(buf, size, n, *out, err);
    if (rc != TRESTLE_OK) {
        free(*out);
        *out = NULL;
    }
    return rc;
}

int cli_print_values(FILE *f, const trestle_tensor_info *t, const void *buf, uint64_t size,
                     int all, trestle_error *err)
{
    printer pr = { .f = f, .t = t, .buf = buf, .all = all };
    trestle_bytes *strs = NULL;

    if (t->dtype == TRESTLE_DT_VARIANT || t->dtype == TRESTLE_DT_RESOURCE ||
        (t->dtype != TRESTLE_DT_STRING && trestle_dtype_size(t->dtype) == 0)) {
        fprintf(f, "(%s, %" PRIu64 " bytes: values are not printable)\n",
                trestle_dtype_name(t->dtype), size);
        return TRESTLE_OK;
    }
    if (t->dtype == TRESTLE_DT_STRING) {
        int rc = decode_strings(t, buf, size, &strs, err);
        if (rc != TRESTLE_OK)
            return rc;
        pr.strs = strs;
    }
    pr.summarize = !all && t->num_elements > PRINT_THRESHOLD;
    if (t->rank == 0) {
        char *s = element_text(&pr, 0);
        fputs(s ? s : "?", f);
        free(s);
    } else {
        print_axis(&pr, 0, 0);
    }
    fputc('\n', f);
    free(strs);
    return TRESTLE_OK;
}

int cli_print_values_json(FILE *f, const trestle_tensor_info *t, const void *buf, uint64_t size,
                          int all, int *truncated, trestle_error *err)
{
    uint64_t n = (uint64_t)t->num_elements, shown = n;
    trestle_bytes *strs = NULL;

    if (!all && shown > PRINT_THRESHOLD)
        shown = PRINT_THRESHOLD;
    *truncated = shown < n;
    if (t->dtype == TRESTLE_DT_STRING) {
        int rc = decode_strings(t, buf, size, &strs, err);
        if (rc != TRESTLE_OK)
            return rc;
    } else if (trestle_dtype_size(t->dtype) == 0) {
        fputs("null", f);
        return TRESTLE_OK;
    }
    fputc('[', f);
    for (uint64_t i = 0; i < shown; i++) {
        if (i)
            fputs(", ", f);
        if (strs) {
            cli_json_string(f, (const char *)strs[i].data, (size_t)strs[i].len);
        } else {
            char tmp[128];
            if (cli_format_element(t->dtype, buf, i, CLI_STYLE_JSON, tmp, sizeof tmp) != 0)
                snprintf(tmp, sizeof tmp, "null");
            fputs(tmp, f);
        }
    }
    fputc(']', f);
    free(strs);
    return TRESTLE_OK;
}
