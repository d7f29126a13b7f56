/*
 * cli_table.c - aligned plain-text tables for listings (`inspect`,
 * `restore --list`): each column as wide as its widest cell, two spaces
 * between columns, no trailing blanks, and columns that are empty in every
 * row left out, so optional facts (notes, stats) cost nothing when absent.
 *
 * A listing of a model of 100,000 tensors is 1.2 million cells (issue 24):
 * they go back to back into one text buffer, each row a line of offsets
 * into it, and each column's width is taken as its cells arrive. No cell
 * is a malloc of its own, and printing reads each cell once, in order.
 */
#include <stdlib.h>
#include <string.h>

#include "cli.h"

struct cli_table {
    int ncols;
    char **headers;   /* ncols copies */
    int *right;       /* ncols flags: right-align */
    size_t *width;    /* ncols: terminal columns of the widest cell, header included */
    int *shown;       /* ncols flags: some cell of the column is not empty */
    size_t *cells;    /* rows x ncols offsets into text, row-major */
    size_t rows, cap;
    char *text;       /* every cell, NUL-terminated, back to back; text[0] is "" */
    size_t len, text_cap;
};

/* Terminal columns of a cell: one per UTF-8 character, not per byte, so a
 * key such as "m\u00f6del" lines up (inspect escapes everything else).
 * Its length in bytes goes to *bytes when that is not NULL: the same pass. */
static size_t columns(const char *s, size_t *bytes)
{
    size_t n = 0, i = 0;
    for (; s[i]; i++)
        n += ((unsigned char)s[i] & 0xC0) != 0x80;
    if (bytes)
        *bytes = i;
    return n;
}

/* Room for `more` bytes of text; 0, or -1 when out of memory. */
static int reserve_text(cli_table *t, size_t more)
{
    if (t->text_cap - t->len >= more)
        return 0;
    size_t cap = t->text_cap ? t->text_cap : 4096;
    while (cap - t->len < more)
        cap *= 2;
    char *grown = realloc(t->text, cap);
    if (!grown)
        return -1;
    t->text = grown;
    t->text_cap = cap;
    return 0;
}

cli_table *cli_table_new(int ncols, const char *const *headers, const int *right)
{
    cli_table *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->ncols = ncols;
    t->headers = calloc((size_t)ncols, sizeof *t->headers);
    t->right = calloc((size_t)ncols, sizeof *t->right);
    t->width = calloc((size_t)ncols, sizeof *t->width);
    t->shown = calloc((size_t)ncols, sizeof *t->shown);
    if (!t->headers || !t->right || !t->width || !t->shown || reserve_text(t, 1) != 0) {
        cli_table_free(t);
        return NULL;
    }
    t->text[t->len++] = '\0'; /* offset 0: the empty cell */
    for (int c = 0; c < ncols; c++) {
        t->headers[c] = strdup(headers[c] ? headers[c] : "");
        t->right[c] = right ? right[c] : 0;
        if (!t->headers[c]) {
            cli_table_free(t);
            return NULL;
        }
        t->width[c] = columns(t->headers[c], NULL);
    }
    return t;
}

/* Append a row, each cell copied as is or escaped. */
static int add_row(cli_table *t, const char *const *cells, int escaped)
{
    if (t->rows == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 16;
        size_t *grown = realloc(t->cells, cap * (size_t)t->ncols * sizeof *grown);
        if (!grown)
            return -1;
        t->cells = grown;
        t->cap = cap;
    }
    size_t *row = t->cells + t->rows * (size_t)t->ncols, start = t->len;
    for (int c = 0; c < t->ncols; c++) {
        const char *s = cells[c] ? cells[c] : "";
        size_t n = strlen(s);
        if (n == 0) {
            row[c] = 0;
            continue;
        }
        if (reserve_text(t, escaped ? CLI_ESCAPED_MAX(n) : n + 1) != 0) {
            t->len = start; /* the row is not added */
            return -1;
        }
        row[c] = t->len;
        if (escaped) {
            n = cli_escape_into(t->text + t->len, s);
        } else {
            memcpy(t->text + t->len, s, n + 1);
        }
        t->len += n + 1;
    }
    /* Widths once the row is whole: the text may have moved while it grew. */
    for (int c = 0; c < t->ncols; c++) {
        if (!row[c])
            continue;
        size_t w = columns(t->text + row[c], NULL);
        t->shown[c] = 1;
        if (w > t->width[c])
            t->width[c] = w;
    }
    t->rows++;
    return 0;
}

int cli_table_add(cli_table *t, const char *const *cells) { return add_row(t, cells, 0); }

int cli_table_add_escaped(cli_table *t, const char *const *cells) { return add_row(t, cells, 1); }

/* Printing goes through a buffer of a few lines, written out whole: three
 * to five stdio calls a cell (each taking the stream's lock) were most of
 * the cost of listing 100,000 tensors (issue 24). */
typedef struct out {
    FILE *f;
    size_t len;
    char buf[16384];
} out;

static void flush(out *o)
{
    fwrite(o->buf, 1, o->len, o->f);
    o->len = 0;
}

/* n bytes of s, or n spaces when s is NULL. */
static void emit(out *o, const char *s, size_t n)
{
    while (n > 0) {
        size_t room = sizeof o->buf - o->len, k = n < room ? n : room;
        if (s) {
            memcpy(o->buf + o->len, s, k);
            s += k;
        } else {
            memset(o->buf + o->len, ' ', k);
        }
        o->len += k;
        n -= k;
        if (o->len == sizeof o->buf)
            flush(o);
    }
}

/* One line: the header's cells (row NULL) or those of `row`. */
static void print_row(const cli_table *t, out *o, const size_t *row)
{
    int last = -1;
    for (int c = 0; c < t->ncols; c++) {
        const char *cell = row ? t->text + row[c] : t->headers[c];
        if (t->shown[c] && cell[0])
            last = c;
    }
    int first = 1;
    for (int c = 0; c <= last; c++) {
        if (!t->shown[c])
            continue;
        const char *cell = row ? t->text + row[c] : t->headers[c];
        size_t bytes, len = columns(cell, &bytes);
        size_t gap = t->width[c] > len ? t->width[c] - len : 0;
        if (!first)
            emit(o, "  ", 2);
        first = 0;
        if (t->right[c])
            emit(o, NULL, gap);
        emit(o, cell, bytes);
        /* Left-aligned cells are padded only when something follows them. */
        if (!t->right[c] && c < last)
            emit(o, NULL, gap);
    }
    emit(o, "\n", 1);
}

void cli_table_print(const cli_table *t, FILE *f)
{
    out o = { .f = f, .len = 0 };
    print_row(t, &o, NULL);
    for (size_t r = 0; r < t->rows; r++)
        print_row(t, &o, t->cells + r * (size_t)t->ncols);
    flush(&o);
}

void cli_table_free(cli_table *t)
{
    if (!t)
        return;
    if (t->headers)
        for (int c = 0; c < t->ncols; c++)
            free(t->headers[c]);
    free(t->headers);
    free(t->right);
    free(t->width);
    free(t->shown);
    free(t->cells);
    free(t->text);
    free(t);
}
