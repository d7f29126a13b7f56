/*
 * plan_names.c - the name half of the restore planner: which checkpoint key
 * an op's graph name means, and what to say when there is none.
 *
 * A graph name goes through exclusion globs, then the caller's rename rules
 * ("graph=ckpt" exact, "prefix/=ckpt_prefix/" by prefix), then, when that
 * key is absent, the TF 1.x RNN rename table (tf-checkpoint-format.md
 * Appendix C) in both directions, so an old graph loads a new checkpoint
 * and a new graph an old one. When keys stay missing, engine/plan/plan_suggest.c
 * reports them.
 *
 * Everything here is a pure function of its arguments; nothing is kept.
 */
#include <fnmatch.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checked.h"
#include "error.h"
#include "plan_names.h"
#include "slice.h"

/* TF 1.x contrib RNN renames, in checkpoint_convert.py's order: for a name,
 * only the first rule whose substring occurs applies. */
static const struct {
    const char *old_name; /* TF <= 1.1 spelling */
    const char *new_name; /* TF >= 1.2 spelling */
} rnn_table[] = {
    { "basic_rnn_cell/weights", "basic_rnn_cell/kernel" },
    { "basic_rnn_cell/biases", "basic_rnn_cell/bias" },
    { "gru_cell/weights", "gru_cell/kernel" },
    { "gru_cell/biases", "gru_cell/bias" },
    { "gru_cell/gates/weights", "gru_cell/gates/kernel" },
    { "gru_cell/gates/biases", "gru_cell/gates/bias" },
    { "gru_cell/candidate/weights", "gru_cell/candidate/kernel" },
    { "gru_cell/candidate/biases", "gru_cell/candidate/bias" },
    { "basic_lstm_cell/weights", "basic_lstm_cell/kernel" },
    { "basic_lstm_cell/biases", "basic_lstm_cell/bias" },
    { "lstm_cell/weights", "lstm_cell/kernel" },
    { "lstm_cell/biases", "lstm_cell/bias" },
    { "lstm_cell/projection/weights", "lstm_cell/projection/kernel" },
    { "lstm_cell/projection/biases", "lstm_cell/projection/bias" },
    { "output_projection_wrapper/weights", "output_projection_wrapper/kernel" },
    { "output_projection_wrapper/biases", "output_projection_wrapper/bias" },
    { "input_projection_wrapper/weights", "input_projection_wrapper/kernel" },
    { "input_projection_wrapper/biases", "input_projection_wrapper/bias" },
    { "lstm_block_wrapper/weights", "lstm_block_wrapper/kernel" },
    { "lstm_block_wrapper/biases", "lstm_block_wrapper/bias" },
    { "layer_norm_basic_lstm_cell/weights", "layer_norm_basic_lstm_cell/kernel" },
    { "layer_norm_basic_lstm_cell/biases", "layer_norm_basic_lstm_cell/bias" },
    { "ugrnn_cell/weights", "ugrnn_cell/kernel" },
    { "ugrnn_cell/biases", "ugrnn_cell/bias" },
    { "nas_rnn/weights", "nas_rnn/kernel" },
    { "nas_rnn/recurrent_weights", "nas_rnn/recurrent_kernel" },
    { "intersection_rnn_cell/weights", "intersection_rnn_cell/kernel" },
    { "intersection_rnn_cell/biases", "intersection_rnn_cell/bias" },
    { "intersection_rnn_cell/in_projection/weights", "intersection_rnn_cell/in_projection/kernel" },
    { "intersection_rnn_cell/in_projection/biases", "intersection_rnn_cell/in_projection/bias" },
    { "phased_lstm_cell/mask_gates/weights", "phased_lstm_cell/mask_gates/kernel" },
    { "phased_lstm_cell/mask_gates/biases", "phased_lstm_cell/mask_gates/bias" },
    { "phased_lstm_cell/new_input/weights", "phased_lstm_cell/new_input/kernel" },
    { "phased_lstm_cell/new_input/biases", "phased_lstm_cell/new_input/bias" },
    { "phased_lstm_cell/output_gate/weights", "phased_lstm_cell/output_gate/kernel" },
    { "phased_lstm_cell/output_gate/biases", "phased_lstm_cell/output_gate/bias" },
    { "attention_cell_wrapper/weights", "attention_cell_wrapper/kernel" },
    { "attention_cell_wrapper/biases", "attention_cell_wrapper/bias" },
    { "attention_cell_wrapper/attn_output_projection/weights",
      "attention_cell_wrapper/attn_output_projection/kernel" },
    { "attention_cell_wrapper/attn_output_projection/biases",
      "attention_cell_wrapper/attn_output_projection/bias" },
    { "attention_cell_wrapper/attention/weights", "attention_cell_wrapper/attention/kernel" },
    { "attention_cell_wrapper/attention/biases", "attention_cell_wrapper/attention/bias" },
};

/* ---- rules and lookups ---- */

/* fnmatch() treats an unclosed '[' or a trailing '\\' as a literal, so a
 * typo would silently exclude nothing: find them first. NULL when fine. */
static const char *glob_problem(const char *g)
{
    for (const char *p = g; *p; p++) {
        if (*p == '\\') {
            if (!*++p)
                return "ends in a lone '\\'";
            continue;
        }
        if (*p != '[')
            continue;
        const char *q = p + 1;
        q += *q == '!' || *q == '^';
        q += *q == ']'; /* a ']' first in the set is a member */
        q = strchr(q, ']');
        if (!q)
            return "has an unclosed '[' (write '\\[' for a literal one)";
        p = q;
    }
    return NULL;
}

int trestle__plan_names_check(const trestle_plan_options *o, trestle_error *err)
{
    if (o->num_renames > 0 && !o->renames)
        return trestle__error_simple(err, TRESTLE_E_INVALID_ARG,
                                     "num_renames is %zu but renames is NULL", o->num_renames);
    if (o->num_excludes > 0 && !o->excludes)
        return trestle__error_simple(err, TRESTLE_E_INVALID_ARG,
                                     "num_excludes is %zu but excludes is NULL", o->num_excludes);
    for (size_t i = 0; i < o->num_renames; i++) {
        const char *r = o->renames[i];
        const char *eq = r ? strchr(r, '=') : NULL;
        if (!eq || eq == r)
            return trestle__error_simple(err, TRESTLE_E_INVALID_ARG,
                                         "rename rule %zu (%s) is not of the form graph=ckpt", i,
                                         r ? r : "NULL");
        /* Only the first rule for a name would ever apply. */
        for (size_t j = 0; j < i; j++)
            if (strncmp(o->renames[j], r, (size_t)(eq - r) + 1) == 0)
                return trestle__error_simple(err, TRESTLE_E_INVALID_ARG,
                                             "rename rules %zu (%s) and %zu (%s) both rename "
                                             "'%.*s'", j, o->renames[j], i, r, (int)(eq - r), r);
    }
    for (size_t i = 0; i < o->num_excludes; i++) {
        const char *problem = o->excludes[i] ? glob_problem(o->excludes[i]) : "is NULL";
        if (problem)
            return trestle__error_simple(err, TRESTLE_E_INVALID_ARG,
                                         "exclusion pattern %zu ('%s') %s", i,
                                         o->excludes[i] ? o->excludes[i] : "", problem);
    }
    return TRESTLE_OK;
}

bool trestle__plan_excluded(const trestle_plan_options *o, const char *name)
{
    for (size_t i = 0; i < o->num_excludes; i++)
        if (fnmatch(o->excludes[i], name, 0) == 0)
            return true;
    return false;
}

size_t trestle__plan_lookup_listed(const trestle_checkpoint *c, const char *key)
{
    size_t at = trestle__checkpoint_lookup(c, key, strlen(key));
    if (at == (size_t)-1 || c->entries[at].kind == TRESTLE__ENTRY_SLICE_PART)
        return TRESTLE__NOT_LISTED;
    return at;
}

/* head ‖ tail as a new string, or NULL when out of memory. */
char *trestle__plan_join(const char *head, size_t head_len, const char *tail)
{
    size_t tail_len = strlen(tail);
    uint64_t n;
    if (!tr_add_u64(head_len, tail_len, &n) || n >= SIZE_MAX)
        return NULL;
    char *s = malloc((size_t)n + 1);
    if (!s)
        return NULL;
    memcpy(s, head, head_len);
    memcpy(s + head_len, tail, tail_len + 1);
    return s;
}

/* The caller's rename rules applied to name: exact rules win, else the
 * longest matching prefix rule, else the name itself. NULL on ENOMEM. */
static char *apply_renames(const trestle_plan_options *o, const char *name)
{
    size_t name_len = strlen(name), best_len = 0;
    const char *best = NULL;

    for (size_t i = 0; i < o->num_renames; i++) {
        const char *r = o->renames[i];
        size_t left = (size_t)(strchr(r, '=') - r); /* checked by names_check */
        if (r[left - 1] != '/') {
            if (left == name_len && memcmp(r, name, left) == 0)
                return strdup(r + left + 1);
        } else if (left <= name_len && left > best_len && memcmp(r, name, left) == 0) {
            best = r;
            best_len = left;
        }
    }
    if (!best)
        return strdup(name);
    const char *to = best + best_len + 1;
    return trestle__plan_join(to, strlen(to), name + best_len);
}

/* Every occurrence of `from` in s replaced by `to` (Python's str.replace,
 * as checkpoint_convert.py does). NULL on ENOMEM. */
static char *replace_all(const char *s, const char *from, const char *to)
{
    size_t from_len = strlen(from), to_len = strlen(to), count = 0;
    for (const char *p = strstr(s, from); p; p = strstr(p + from_len, from))
        count++;
    uint64_t grow, len;
    if (!tr_mul_u64(count, to_len, &grow) || !tr_add_u64(strlen(s) - count * from_len, grow, &len) ||
        len >= SIZE_MAX)
        return NULL;
    char *out = malloc((size_t)len + 1), *w = out;
    if (!out)
        return NULL;
    const char *p = s;
    for (const char *hit; (hit = strstr(p, from)) != NULL; p = hit + from_len) {
        memcpy(w, p, (size_t)(hit - p));
        w += hit - p;
        memcpy(w, to, to_len);
        w += to_len;
    }
    strcpy(w, p);
    return out;
}

/* Apply the first RNN rule whose source occurs in s (old->new, or new->old
 * when `reverse`): 1 with *out set, 0 when no rule matches, -1 on ENOMEM. */
int trestle__plan_rnn_rename(const char *s, bool reverse, char **out)
{
    *out = NULL;
    for (size_t i = 0; i < sizeof rnn_table / sizeof rnn_table[0]; i++) {
        const char *from = reverse ? rnn_table[i].new_name : rnn_table[i].old_name;
        const char *to = reverse ? rnn_table[i].old_name : rnn_table[i].new_name;
        if (strstr(s, from)) {
            *out = replace_all(s, from, to);
            return *out ? 1 : -1;
        }
    }
    return 0;
}

int trestle__plan_resolve(const trestle_checkpoint *c, const trestle_plan_options *o,
                          const char *name, size_t *entry, char **lookup, trestle_error *err)
{
    *entry = TRESTLE__NOT_LISTED;
    *lookup = apply_renames(o, name);
    if (!*lookup)
        return trestle__error_simple(err, TRESTLE_E_NOMEM, "out of memory");
    *entry = trestle__plan_lookup_listed(c, *lookup);
    if (*entry != TRESTLE__NOT_LISTED || !o->tf1_rnn_renames)
        return TRESTLE_OK;
    /* Old graph names against a new checkpoint first, then the reverse. */
    for (int reverse = 0; reverse < 2; reverse++) {
        char *alt;
        int r = trestle__plan_rnn_rename(*lookup, reverse, &alt);
        if (r < 0) {
            free(*lookup);
            *lookup = NULL;
            return trestle__error_simple(err, TRESTLE_E_NOMEM, "out of memory");
        }
        if (r == 0)
            continue;
        *entry = trestle__plan_lookup_listed(c, alt);
        free(alt);
        if (*entry != TRESTLE__NOT_LISTED)
            return TRESTLE_OK;
    }
    return TRESTLE_OK;
}
