/*
 * key_rules.c - naming a conversion's tensors in the output file.
 *
 * A checkpoint's keys are TensorFlow's names (bert/encoder/layer_0/...);
 * the program that loads the file wants its own (encoder.layer.0....).
 * The rules say how, in three kinds that cover what converters do: an
 * exact rename, a prefix swap (the same '/'-ended prefix rule as the
 * planner's renames), and a POSIX extended regular expression whose
 * matches are replaced, groups and all (Python's re.sub, sed's s///g).
 * They run in order, each on the name the previous ones left, so a few
 * general rules compose into a whole naming scheme. Which rules matched
 * is recorded, so a rule that names nothing can be reported rather than
 * silently ignored.
 */
#include <regex.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "error.h"
#include "key_rules.h"

#define REGEX_PREFIX "re:"
#define MAX_GROUPS 10 /* \0 .. \9 */

enum rule_kind { RULE_EXACT, RULE_PREFIX, RULE_REGEX };

typedef struct key_rule {
    const char *text;   /* the rule as given (the caller's, for messages) */
    int kind;           /* rule_kind */
    char *from;         /* EXACT, PREFIX: the name or prefix matched (owned) */
    size_t from_len;
    char *to;           /* the replacement (owned): REGEX keeps its escapes */
    regex_t re;         /* REGEX: compiled when kind == RULE_REGEX */
    bool used;          /* matched some name */
} key_rule;

struct trestle__key_rules {
    key_rule *rules;
    size_t n;
};

static int malformed(trestle_error *err, const char *rule, const char *why)
{
    return trestle__error_simple(err, TRESTLE_E_INVALID_ARG, "key rule '%s' %s", rule, why);
}

/* The replacement's escapes: \0..\9 (groups the pattern has), \\ only. */
static int check_replacement(const key_rule *k, trestle_error *err)
{
    for (const char *p = k->to; *p; p++) {
        if (*p != '\\')
            continue;
        p++;
        if (*p == '\\')
            continue;
        if (*p < '0' || *p > '9')
            return malformed(err, k->text,
                             "has an unknown escape in its replacement (use \\0..\\9 for the "
                             "match and its groups, \\\\ for a backslash)");
        if ((size_t)(*p - '0') > k->re.re_nsub) {
            char why[96];
            snprintf(why, sizeof why, "refers to group %c, and its pattern has %zu", *p,
                     k->re.re_nsub);
            return malformed(err, k->text, why);
        }
    }
    return TRESTLE_OK;
}

static int parse_one(const char *text, key_rule *k, trestle_error *err)
{
    bool regex = strncmp(text, REGEX_PREFIX, strlen(REGEX_PREFIX)) == 0;
    const char *body = regex ? text + strlen(REGEX_PREFIX) : text;
    const char *eq = strchr(body, '=');
    k->text = text;
    if (!eq || eq == body)
        return malformed(err, text, regex ? "is not re:PATTERN=REPLACEMENT" : "is not FROM=TO");
    k->from_len = (size_t)(eq - body);
    if (!(k->from = strndup(body, k->from_len)) || !(k->to = strdup(eq + 1)))
        return trestle__error_simple(err, TRESTLE_E_NOMEM, "out of memory");
    if (!regex) {
        k->kind = k->from[k->from_len - 1] == '/' ? RULE_PREFIX : RULE_EXACT;
        return TRESTLE_OK;
    }
    int rc = regcomp(&k->re, k->from, REG_EXTENDED);
    if (rc != 0) {
        char why[192], msg[128];
        regerror(rc, &k->re, msg, sizeof msg);
        snprintf(why, sizeof why, "is not a valid regular expression: %s", msg);
        return malformed(err, text, why);
    }
    k->kind = RULE_REGEX;
    return check_replacement(k, err);
}

int trestle__key_rules_parse(const char *const *rules, size_t n, trestle__key_rules **out,
                             trestle_error *err)
{
    trestle__key_rules *r = NULL;
    int rc = TRESTLE_OK;
    *out = NULL;
    if (n == 0)
        return TRESTLE_OK;
    TR_FAIL_IF(!rules, err, TRESTLE_E_INVALID_ARG, "key_rules is NULL with num_key_rules %zu", n);
    r = calloc(1, sizeof *r);
    TR_FAIL_IF(!r || !(r->rules = calloc(n, sizeof *r->rules)), err, TRESTLE_E_NOMEM,
               "out of memory");
    r->n = n; /* zeroed rules free as nothing; a pattern is freed once compiled */
    for (size_t i = 0; i < n; i++) {
        TR_FAIL_IF(!rules[i], err, TRESTLE_E_INVALID_ARG, "key rule %zu is NULL", i);
        TR_FORWARD(parse_one(rules[i], &r->rules[i], err));
    }
    *out = r;
    return TRESTLE_OK;
fail:
    trestle__key_rules_free(r);
    return rc;
}

/* Append the replacement of one match: escapes resolved against `m`. */
static bool add_replacement(trestle__buf *b, const char *to, const char *subject,
                            const regmatch_t *m)
{
    bool ok = true;
    for (const char *p = to; ok && *p; p++) {
        if (*p != '\\') {
            ok = trestle__buf_append(b, p, 1);
            continue;
        }
        p++; /* parse checked: a digit of an existing group, or '\\' */
        if (*p == '\\') {
            ok = trestle__buf_append(b, p, 1);
            continue;
        }
        const regmatch_t *g = &m[*p - '0'];
        if (g->rm_so >= 0) /* an optional group that took no part adds nothing */
            ok = trestle__buf_append(b, subject + g->rm_so, (size_t)(g->rm_eo - g->rm_so));
    }
    return ok;
}

/*
 * Every match of k's pattern in `name` replaced, as sed's s///g: after an
 * empty match the next character is copied, so the scan always advances.
 * *matched says whether anything matched. The result is malloc'd (NULL
 * when out of memory).
 */
static char *apply_regex(const key_rule *k, const char *name, bool *matched)
{
    trestle__buf b = { 0 };
    regmatch_t m[MAX_GROUPS];
    size_t len = strlen(name), at = 0;
    bool ok = true;
    *matched = false;
    while (ok && at <= len) {
        if (regexec(&k->re, name + at, MAX_GROUPS, m, at > 0 ? REG_NOTBOL : 0) != 0)
            break;
        *matched = true;
        for (int g = 0; g < MAX_GROUPS; g++)
            if (m[g].rm_so >= 0) {
                m[g].rm_so += (regoff_t)at;
                m[g].rm_eo += (regoff_t)at;
            }
        ok = trestle__buf_append(&b, name + at, (size_t)m[0].rm_so - at) &&
             add_replacement(&b, k->to, name, m);
        at = (size_t)m[0].rm_eo;
        if (m[0].rm_eo == m[0].rm_so) {
            if (at < len)
                ok = ok && trestle__buf_append(&b, name + at, 1);
            at++;
        }
    }
    if (ok && at < len)
        ok = trestle__buf_append(&b, name + at, len - at);
    ok = ok && trestle__buf_append(&b, "", 1);
    if (!ok) {
        trestle__buf_free(&b);
        return NULL;
    }
    return (char *)b.data;
}

/* k applied to `name`: a malloc'd result, or NULL (out of memory). */
static char *apply_one(key_rule *k, const char *name)
{
    bool matched = false;
    char *out = NULL;
    size_t len = strlen(name);
    if (k->kind == RULE_EXACT && strcmp(name, k->from) == 0) {
        matched = true;
        out = strdup(k->to);
    } else if (k->kind == RULE_PREFIX && len >= k->from_len &&
               memcmp(name, k->from, k->from_len) == 0) {
        size_t to_len = strlen(k->to);
        matched = true;
        if ((out = malloc(to_len + len - k->from_len + 1))) {
            memcpy(out, k->to, to_len);
            memcpy(out + to_len, name + k->from_len, len - k->from_len + 1);
        }
    } else if (k->kind == RULE_REGEX) {
        out = apply_regex(k, name, &matched);
    } else {
        out = strdup(name);
    }
    k->used = k->used || matched;
    return out;
}

int trestle__key_rules_apply(trestle__key_rules *r, const char *name, char **out,
                             trestle_error *err)
{
    char *cur = strdup(name);
    for (size_t i = 0; cur && r && i < r->n; i++) {
        char *next = apply_one(&r->rules[i], cur);
        free(cur);
        cur = next;
    }
    *out = cur;
    return cur ? TRESTLE_OK : trestle__error_simple(err, TRESTLE_E_NOMEM, "out of memory");
}

int trestle__key_rules_check_used(const trestle__key_rules *r, trestle_error *err)
{
    for (size_t i = 0; r && i < r->n; i++)
        if (!r->rules[i].used)
            return trestle__error_simple(err, TRESTLE_E_INVALID_ARG,
                                         "key rule '%s' matches no tensor of the conversion",
                                         r->rules[i].text);
    return TRESTLE_OK;
}

void trestle__key_rules_free(trestle__key_rules *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n; i++) {
        if (r->rules[i].kind == RULE_REGEX)
            regfree(&r->rules[i].re);
        free(r->rules[i].from);
        free(r->rules[i].to);
    }
    free(r->rules);
    free(r);
}
