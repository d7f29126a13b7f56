/*
 * plan_suggest.c - what the planner says when keys stay missing: all of
 * them at once, in TensorFlow's words, with up to three suggestions each
 * that fit the op (its dtype, and the full shape of a sliced op, or the
 * declared shape of a whole-tensor op's variable when the caller knows it):
 * rename neighbours first (the TF 1.x RNN table, the TF2
 * ".ATTRIBUTES/VARIABLE_VALUE" suffix), then keys on the same path with one component changed, then
 * listed keys a few edits away. The edit-distance search is bounded
 * (length and byte-histogram filters, a banded DP that stops early) so a
 * 100k-key checkpoint answers quickly, and it only runs for the lines that
 * fit in the error message.
 *
 * Everything here is a pure function of its arguments; nothing is kept.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checked.h"
#include "error.h"
#include "plan_names.h"
#include "slice.h"

#define MAX_SUGGESTIONS 3 /* "did you mean a, b or c?" at most */
#define TF2_SUFFIX "/.ATTRIBUTES/VARIABLE_VALUE" /* object-based checkpoint keys */
#define TRAILER_RESERVE 48 /* room kept for "\n... and N more missing keys" */
#define MAX_SUGGEST_KEY 256 /* longest key given near-spelling suggestions */

/* ---- suggestions ---- */

/* Search state for one missing key. */
typedef struct finder {
    const trestle_checkpoint *c;
    const char *key;             /* the missing key */
    size_t len;                  /* its length */
    size_t limit;                /* largest edit distance worth suggesting */
    int hist[128];               /* key's byte counts (folded to 7 bits) */
    int work[128];               /* hist, restored after each candidate */
    uint32_t *dp;                /* DP rows: row i = first i bytes of a candidate,
                                    (len + limit + 1) rows of len + 1 cells */
    uint32_t *row_min;           /* smallest in-band value of each row */
    const char *prev;            /* candidate whose prefix rows dp holds */
    size_t rows;                 /* rows 0 .. rows-1 are valid for prev */
    int dtype;                   /* the op's dtype, or TRESTLE_DT_INVALID for any */
    int rank;                    /* the op's full shape, or -1 when it names none */
    int64_t dims[TRESTLE_MAX_SLICE_RANK];
    const char *pick[MAX_SUGGESTIONS]; /* suggestions, in the order shown */
    size_t n_pick;
    size_t best;                 /* distance of the near-key picks */
} finder;

/*
 * Levenshtein distance from the key to b (lb <= len + limit) when it is
 * <= k (k <= limit), else more than k. Only the band |i - j| <= k is
 * computed, a row whose every cell exceeds k ends the walk, and the rows
 * of the prefix b shares with the previous candidate are reused: listed
 * keys come sorted, so most of each key's rows are already there. Rows
 * made under a wider band stay valid, since k only shrinks during a scan.
 */
static size_t distance(finder *f, const char *b, size_t lb, size_t k)
{
    const size_t la = f->len, w = la + 1;
    const uint32_t inf = (uint32_t)f->limit + 1;
    size_t shared = 0, top = lb < f->rows - 1 ? lb : f->rows - 1;

    if (f->prev)
        while (shared < top && f->prev[shared] == b[shared])
            shared++;
    f->prev = b;
    f->rows = shared + 1;
    /* Row minima never decrease down the rows: a bad shared row rules b out. */
    if (f->row_min[shared] > k)
        return k + 1;
    for (size_t i = shared + 1; i <= lb; i++) {
        uint32_t *cur = f->dp + i * w, *up = cur - w, row_min = inf;
        size_t lo = i > k ? i - k : 0, hi = i + k < la ? i + k : la;
        size_t up_hi = i - 1 + k < la ? i - 1 + k : la;
        for (size_t j = lo; j <= hi; j++) {
            uint32_t v;
            if (j == 0) {
                v = i < inf ? (uint32_t)i : inf;
            } else {
                v = up[j - 1] + (b[i - 1] != f->key[j - 1]);
                if (j <= up_hi && up[j] + 1 < v)
                    v = up[j] + 1;
                if (j > lo && cur[j - 1] + 1 < v)
                    v = cur[j - 1] + 1;
                if (v > inf)
                    v = inf;
            }
            cur[j] = v;
            if (v < row_min)
                row_min = v;
        }
        f->row_min[i] = row_min;
        f->rows = i + 1;
        if (row_min > k)
            return k + 1;
    }
    size_t d = f->dp[lb * w + la];
    return d <= k ? d : k + 1;
}

/* Could entry e restore the op? Never suggest a key that cannot. */
static bool fits(const finder *f, const trestle__entry *e)
{
    if (f->dtype != TRESTLE_DT_INVALID && e->dtype != f->dtype)
        return false;
    if (f->rank < 0)
        return true;
    return e->rank == f->rank && memcmp(e->dims, f->dims, (size_t)f->rank * sizeof *f->dims) == 0;
}

/* Suggest `cand` when it is a listed key that fits and is not yet picked.
 * 0, or -1 on ENOMEM (cand is NULL after a failed allocation). */
static int add_neighbour(finder *f, char *cand)
{
    if (!cand)
        return -1;
    size_t at = trestle__plan_lookup_listed(f->c, cand);
    free(cand);
    if (at == TRESTLE__NOT_LISTED || f->n_pick == MAX_SUGGESTIONS || !fits(f, &f->c->entries[at]))
        return 0;
    for (size_t i = 0; i < f->n_pick; i++)
        if (f->pick[i] == f->c->entries[at].key)
            return 0;
    f->pick[f->n_pick++] = f->c->entries[at].key;
    return 0;
}

/* Rename neighbours: the RNN table both ways and the TF2 variable suffix
 * stripped or added. */
static int find_neighbours(finder *f)
{
    for (int reverse = 0; reverse < 2; reverse++) {
        char *alt;
        int r = trestle__plan_rnn_rename(f->key, reverse, &alt);
        if (r < 0 || (r > 0 && add_neighbour(f, alt) < 0))
            return -1;
    }
    size_t sl = sizeof TF2_SUFFIX - 1;
    if (f->len > sl && memcmp(f->key + f->len - sl, TF2_SUFFIX, sl) == 0)
        return add_neighbour(f, trestle__plan_join(f->key, f->len - sl, ""));
    return add_neighbour(f, trestle__plan_join(f->key, f->len, TF2_SUFFIX));
}

/* Lower bound on the edit distance from the byte histograms: one edit
 * changes the multiset difference by at most 2. */
static size_t histogram_bound(finder *f, const char *s, size_t n)
{
    size_t common = 0;
    for (size_t i = 0; i < n; i++) {
        int *w = &f->work[(unsigned char)s[i] & 127];
        if (*w > 0) {
            (*w)--;
            common++;
        }
    }
    for (size_t i = 0; i < n; i++)
        f->work[(unsigned char)s[i] & 127] = f->hist[(unsigned char)s[i] & 127];
    return (f->len + n - 2 * common + 1) / 2;
}

/*
 * The listed keys nearest to the key, all at the same smallest distance
 * (<= f->limit), in key order. A farther key next to a nearer one is
 * noise, and so is one as far from the key as the key is long. The bound
 * shrinks as hits come in, so most keys fall to the length or histogram
 * test before any DP runs.
 */
static void find_near(finder *f)
{
    for (size_t i = 0; i < f->len; i++)
        f->hist[(unsigned char)f->key[i] & 127]++;
    memcpy(f->work, f->hist, sizeof f->work);
    f->best = f->limit;
    for (size_t li = 0; li < f->c->num_listed; li++) {
        /* Once full, only a strictly nearer key can change the answer. */
        size_t k = f->n_pick == MAX_SUGGESTIONS ? f->best - 1 : f->best;
        if (k == 0)
            break;
        const trestle__entry *e = trestle__listed(f->c, li);
        size_t gap = e->key_len > f->len ? e->key_len - f->len : f->len - e->key_len;
        if (gap > k || !fits(f, e) || histogram_bound(f, e->key, e->key_len) > k)
            continue;
        size_t d = distance(f, e->key, e->key_len, k);
        if (d > k || d >= f->len)
            continue;
        if (d < f->best || f->n_pick == 0) {
            f->best = d;
            f->n_pick = 0;
        }
        f->pick[f->n_pick++] = e->key;
    }
}

/* Edit distance of two short strings (a path component each), capped at 64. */
static size_t small_distance(const char *a, size_t la, const char *b, size_t lb)
{
    size_t row[65];
    if (la > 64 || lb > 64)
        return 64;
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j], v = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < v)
                v = up + 1;
            if (row[j - 1] + 1 < v)
                v = row[j - 1] + 1;
            diag = up;
            row[j] = v;
        }
    }
    return row[lb];
}

/*
 * The distance between the one path component in which key `b` differs
 * from the missing key `a`, or SIZE_MAX when they differ in none or in more
 * than one, have different numbers of components, or the component
 * changed beyond recognition (more than half of it, and more than 2 edits).
 */
static size_t one_component_apart(const char *a, size_t la, const char *b, size_t lb)
{
    size_t diff = SIZE_MAX, pa = 0, pb = 0;
    for (;;) {
        size_t ea = pa, eb = pb;
        while (ea < la && a[ea] != '/')
            ea++;
        while (eb < lb && b[eb] != '/')
            eb++;
        if (ea - pa != eb - pb || memcmp(a + pa, b + pb, ea - pa) != 0) {
            size_t d = small_distance(a + pa, ea - pa, b + pb, eb - pb);
            size_t limit = (ea - pa) / 2 > 2 ? (ea - pa) / 2 : 2;
            if (diff != SIZE_MAX || d > limit)
                return SIZE_MAX;
            diff = d;
        }
        if ((ea == la) != (eb == lb))
            return SIZE_MAX;
        if (ea == la)
            return diff;
        pa = ea + 1;
        pb = eb + 1;
    }
}

/* Keys on the same path with one component changed a little (dense_3/bias
 * -> dense/bias, head/w -> head/w1), the nearest ones in key order; only
 * for names with a path. */
static void find_one_component(finder *f)
{
    size_t best = SIZE_MAX;
    if (!memchr(f->key, '/', f->len))
        return;
    for (size_t li = 0; li < f->c->num_listed; li++) {
        const trestle__entry *e = trestle__listed(f->c, li);
        if (!fits(f, e))
            continue;
        size_t d = one_component_apart(f->key, f->len, e->key, e->key_len);
        if (d == SIZE_MAX || d > best)
            continue;
        if (d < best) {
            best = d;
            f->n_pick = 0;
        }
        if (f->n_pick < MAX_SUGGESTIONS)
            f->pick[f->n_pick++] = e->key;
    }
}

/* ---- the report ---- */

/* A bounded text buffer: appends are truncated, never overflow. */
typedef struct text {
    char *buf;
    size_t cap, len;
} text;

__attribute__((format(printf, 2, 3))) static void text_add(text *t, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(t->buf + t->len, t->cap - t->len, fmt, ap);
    va_end(ap);
    if (n > 0)
        t->len = t->len + (size_t)n < t->cap ? t->len + (size_t)n : t->cap - 1;
}

/* One line, "Key K not found in checkpoint (did you mean A, B or C?)". */
static int format_line(const trestle_checkpoint *c, const trestle__missing *m, text *line)
{
    const char *key = m->key;
    finder f;
    trestle__spec spec;
    memset(&f, 0, sizeof f);
    f.c = c;
    f.key = key;
    f.len = strlen(key);
    f.dtype = m->dtype;
    f.rank = -1;
    /* A sliced op names its full shape; a bad spec just constrains nothing. */
    if (m->spec && *m->spec && trestle__spec_parse(m->spec, &spec, NULL) == TRESTLE_OK &&
        !spec.whole) {
        f.rank = spec.rank;
        memcpy(f.dims, spec.shape, (size_t)spec.rank * sizeof *f.dims);
    } else if ((!m->spec || !*m->spec) && m->shape && m->shape->rank >= 0 &&
               m->shape->rank <= TRESTLE_MAX_SLICE_RANK &&
               (m->shape->rank == 0 || m->shape->dims)) {
        /* A whole-tensor op has no shape of its own; its variable's
         * declared one (plan option op_shapes) tells candidates apart. */
        f.rank = m->shape->rank;
        if (f.rank > 0)
            memcpy(f.dims, m->shape->dims, (size_t)f.rank * sizeof *f.dims);
    }
    f.limit = f.len / 4 > 2 ? f.len / 4 : 2;
    if (find_neighbours(&f) < 0)
        return TRESTLE_E_NOMEM;
    /* A rename neighbour explains the miss; the same path with one part
     * changed comes next, and near spellings only when neither found one.
     * Keys too long to show twice in a message get no spelling search. */
    if (f.n_pick == 0)
        find_one_component(&f);
    if (f.n_pick == 0 && f.len <= MAX_SUGGEST_KEY) {
        size_t rows = f.len + f.limit + 1;
        f.dp = malloc(rows * (f.len + 1) * sizeof *f.dp);
        f.row_min = malloc(rows * sizeof *f.row_min);
        if (!f.dp || !f.row_min) {
            free(f.dp);
            free(f.row_min);
            return TRESTLE_E_NOMEM;
        }
        for (size_t j = 0; j <= f.len; j++)
            f.dp[j] = j <= f.limit ? (uint32_t)j : (uint32_t)f.limit + 1;
        f.row_min[0] = 0;
        f.rows = 1;
        find_near(&f);
        free(f.dp);
        free(f.row_min);
    }
    line->len = 0;
    line->buf[0] = '\0';
    text_add(line, "Key %s not found in checkpoint", key);
    for (size_t i = 0; i < f.n_pick; i++)
        text_add(line, "%s%s", i == 0 ? " (did you mean " : i + 1 == f.n_pick ? " or " : ", ",
                 f.pick[i]);
    if (f.n_pick > 0)
        text_add(line, "?)");
    return TRESTLE_OK;
}

static int compare_missing(const void *a, const void *b)
{
    /* strcmp orders like memcmp, as TF sorts names and the index sorts keys. */
    return strcmp(((const trestle__missing *)a)->key, ((const trestle__missing *)b)->key);
}

int trestle__plan_report_missing(const trestle_checkpoint *c, trestle__missing *miss, size_t n,
                                 trestle_error *err)
{
    char msg_buf[TRESTLE_ERROR_MESSAGE_MAX], line_buf[TRESTLE_ERROR_MESSAGE_MAX];
    text msg = { msg_buf, sizeof msg_buf, 0 }, line = { line_buf, sizeof line_buf, 0 };
    size_t m = 0;

    qsort(miss, n, sizeof *miss, compare_missing);
    for (size_t i = 0; i < n; i++)
        if (m == 0 || strcmp(miss[m - 1].key, miss[i].key) != 0)
            miss[m++] = miss[i];
    msg_buf[0] = '\0';
    for (size_t i = 0; i < m; i++) {
        if (format_line(c, &miss[i], &line) != TRESTLE_OK)
            return trestle__error_simple(err, TRESTLE_E_NOMEM, "out of memory");
        /* Suggestions are searched only for lines that fit; the rest are counted. */
        size_t reserve = i + 1 < m ? TRAILER_RESERVE : 0;
        if (i > 0 && msg.len + 1 + line.len + reserve >= msg.cap) {
            text_add(&msg, "\n... and %zu more missing keys", m - i);
            break;
        }
        text_add(&msg, "%s%s", i > 0 ? "\n" : "", line_buf);
    }
    return trestle__error_set(err, TRESTLE_E_KEY_NOT_FOUND, 0, miss[0].key, c->index_path, -1, -1,
                              "%s", msg_buf);
}
