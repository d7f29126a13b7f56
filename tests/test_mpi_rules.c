/*
 * test_mpi_rules.c - `trestle-mpi restore --shard` rules that split
 * nothing, or that are malformed (issue 22): a rule whose glob matches no
 * op, or whose every op an earlier rule takes, is noted once (by rank 0),
 * not silently replicated; '*:1:2' (once read as GLOB '*:1', DIM 2) fails
 * every rank, naming the rule.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testmpi.h"
#include "testutil.h"

Test(mpi_rules, a_rule_that_splits_nothing_is_noted_once, .timeout = 120)
{
    tm_tp_fixture f;
    tm_make_tp(&f);
    char *args = NULL, *out = NULL, *err = NULL;
    cr_assert_geq(asprintf(&args, "'%s' --all --shard 'model/nomatch/*:1' --shard "
                                  "'model/*/kernel:0' --shard 'model/mlp/*:1'", f.prefix), 0);
    int rc = tm_mpirun(2, NULL, args, &out, &err);
    cr_assert_eq(rc, 0, "%s", err);
    cr_assert_eq(tm_count(err, "note: --shard 'model/nomatch/*:1' matches no tensor: it splits "
                               "nothing\n"), 1, "%s", err);
    cr_assert_eq(tm_count(err, "note: --shard 'model/mlp/*:1' splits nothing: an earlier "
                               "--shard rule takes the 1 tensor it matches (the first matching "
                               "rule wins)\n"), 1, "%s", err);
    cr_assert_eq(tm_count(err, "note:"), 2, "%s", err);
    free(args);
    free(out);
    free(err);
    tm_free_tp(&f);
}

Test(mpi_rules, a_rule_with_two_colons_fails_every_rank, .timeout = 120)
{
    tm_tp_fixture f;
    tm_make_tp(&f);
    char *args = NULL, *out = NULL, *err = NULL;
    cr_assert_geq(asprintf(&args, "'%s' --all --shard '*:1:2'", f.prefix), 0);
    int rc = tm_mpirun(2, NULL, args, &out, &err);
    cr_assert_neq(rc, 0, "%s", out);
    cr_assert_eq(tm_count(err, "shard rule 0 (*:1:2): malformed glob: more than one ':' (a rule "
                               "is GLOB:DIM; write '\\:' for a ':' in a name)\n"), 2, "%s", err);
    cr_assert_eq(tm_count(err, "note:"), 0, "%s", err);
    free(args);
    free(out);
    free(err);
    tm_free_tp(&f);
}
