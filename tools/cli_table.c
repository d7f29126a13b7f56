/*
 * cli_table.c - aligned plain-text tables for listings (`inspect`,
 * `restore --list`): each column as wide as its widest cell, two spaces
 * between columns, no trailing blanks, and columns that are empty in every
 * row left out, so optional facts (notes, stats) cost nothing when absent.
 */
#include <stdlib.h>
#include <string.h>

#include "cli.h"

struct cli_table {
    int ncols;
    char **headers;   /* ncols copies */
    int *right;       /* ncols flags: right-align */
    char **cells;     /* rows x ncols copies, row-major */
    size_t rows, cap;
};

static char *dup_cell(const char *s) { return strdup(s ? s : ""); }

/* Terminal columns of a cell: one per UTF-8 character, not per byte, so a
 * key such as "m\u00f6del" lines up (inspect escapes everything else). */
static size_t columns(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += ((unsigned char)*s & 0xC0) != 0x80;
    return n;
}

cli_table *cli_table_new(int ncols, const char *const *headers, const int *right)
{
    cli_table *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->ncols = ncols;
    t->headers = calloc((size_t)ncols, sizeof *t->headers);
    t->right = calloc((size_t)ncols, sizeof *t->right);
    if (!t->headers || !t->right) {
        cli_table_free(t);
        return NULL;
    }
    for (int c = 0; c < ncols; c++) {
        t->headers[c] = dup_cell(headers[c]);
        t->right[c] = right ? right[c] : 0;
        if (!t->headers[c]) {
            cli_table_free(t);
            return NULL;
        }
    }
    return t;
}

int cli_table_add(cli_table *t, const char *const *cells)
{
    if (t->rows == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 16;
        char **grown = realloc(t->cells, cap * (size_t)t->ncols * sizeof *grown);
        if (!grown)
            return -1;
        t->cells = grown;
        t->cap = cap;
    }
    char **row = t->cells + t->rows * (size_t)t->ncols;
    for (int c = 0; c < t->ncols; c++) {
        row[c] = dup_cell(cells[c]);
        if (!row[c]) {
            while (c-- > 0)
                free(row[c]);
            return -1;
        }
    }
    t->rows++;
    return 0;
}

int cli_table_add_escaped(cli_table *t, const char *const *cells)
{
    char **esc = calloc((size_t)t->ncols, sizeof *esc);
    int rc = esc ? 0 : -1;
    for (int c = 0; rc == 0 && c < t->ncols; c++)
        if (!(esc[c] = cli_escape_text(cells[c])))
            rc = -1;
    if (rc == 0)
        rc = cli_table_add(t, (const char *const *)esc);
    for (int c = 0; esc && c < t->ncols; c++)
        free(esc[c]);
    free(esc);
    return rc;
}

static void print_row(const cli_table *t, FILE *f, char *const *row, const size_t *width,
                      const int *shown)
{
    int last = -1;
    for (int c = 0; c < t->ncols; c++)
        if (shown[c] && row[c][0])
            last = c;
    int first = 1;
    for (int c = 0; c <= last; c++) {
        if (!shown[c])
            continue;
        size_t len = columns(row[c]);
        size_t pad = width[c] > len ? width[c] - len : 0;
        if (!first)
            fputs("  ", f);
        first = 0;
        if (t->right[c])
            fprintf(f, "%*s", (int)pad, "");
        fputs(row[c], f);
        /* Left-aligned cells are padded only when something follows them. */
        if (!t->right[c] && c < last)
            fprintf(f, "%*s", (int)pad, "");
    }
    fputc('\n', f);
}

void cli_table_print(const cli_table *t, FILE *f)
{
    size_t *width = calloc((size_t)t->ncols, sizeof *width);
    int *shown = calloc((size_t)t->ncols, sizeof *shown);
    if (!width || !shown) {
        free(width);
        free(shown);
        return;
    }
    for (int c = 0; c < t->ncols; c++) {
        width[c] = columns(t->headers[c]);
        for (size_t r = 0; r < t->rows; r++) {
            const char *cell = t->cells[r * (size_t)t->ncols + (size_t)c];
            size_t len = columns(cell);
            if (len)
                shown[c] = 1;
            if (len > width[c])
                width[c] = len;
        }
    }
    print_row(t, f, t->headers, width, shown);
    for (size_t r = 0; r < t->rows; r++)
        print_row(t, f, t->cells + r * (size_t)t->ncols, width, shown);
    free(width);
    free(shown);
}

void cli_table_free(cli_table *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->rows * (size_t)t->ncols; i++)
        free(t->cells[i]);
    free(t->cells);
    if (t->headers)
        for (int c = 0; c < t->ncols; c++)
            free(t->headers[c]);
    free(t->headers);
    free(t->right);
    free(t);
}
