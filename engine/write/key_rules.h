/*
 * key_rules.h - the rules that name a conversion's tensors in its output
 * file (trestle_convert_options.key_rules): exact, prefix and regular
 * expression rules, applied in order like a sed script.
 */
#ifndef TRESTLE_KEY_RULES_H
#define TRESTLE_KEY_RULES_H

#include <stddef.h>

#include "trestle.h"

typedef struct trestle__key_rules trestle__key_rules;

/*
 * Parse `n` rules ("FROM=TO", "PREFIX/=TO", "re:PATTERN=REPLACEMENT").
 * TRESTLE_OK with *out set (NULL when n is 0), or TRESTLE_E_INVALID_ARG
 * naming the malformed rule (no '=', an empty FROM, a pattern regcomp
 * refuses, a replacement with an unknown escape or a group the pattern
 * lacks), or TRESTLE_E_NOMEM; *out is then NULL.
 */
int trestle__key_rules_parse(const char *const *rules, size_t n, trestle__key_rules **out,
                             trestle_error *err);

/*
 * The name every rule in turn makes of `name` (each rule applied to what
 * the previous left), malloc'd into *out; records which rules matched.
 * `r` may be NULL (a copy of `name`). TRESTLE_OK or TRESTLE_E_NOMEM.
 */
int trestle__key_rules_apply(trestle__key_rules *r, const char *name, char **out,
                             trestle_error *err);

/* TRESTLE_E_INVALID_ARG naming the first rule that matched no name in
 * the applications so far, else TRESTLE_OK. */
int trestle__key_rules_check_used(const trestle__key_rules *r, trestle_error *err);

void trestle__key_rules_free(trestle__key_rules *r);

#endif /* TRESTLE_KEY_RULES_H */
