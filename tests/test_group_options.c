/*
 * test_group_options.c - libtrestle_mpi reads options by the one rule of
 * trestle.h ("Options", trestle_options_read()): trestle_group_options in
 * trestle_group_create_with(), and the caller's trestle_restore_options in
 * trestle_group_restore(), which copies them before restoring. One MPI
 * process (a singleton, no mpirun), so every message carries the group's
 * "rank 0 of 1: ". Built only where MPI was found (tests/CMakeLists.txt).
 */
#include <criterion/criterion.h>
#include <mpi.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "trestle.h"
#include "trestle_mpi.h"

static char *dir;
static trestle_checkpoint *ckpt;
static trestle_group *group; /* for the restores */

static void setup(void)
{
    static const tu_tensor t[] = { { "w", TRESTLE_DT_FLOAT, 2, { 8, 4 } } };
    trestle_error err;
    cr_assert_eq(MPI_Init(NULL, NULL), MPI_SUCCESS);
    ckpt = tu_zero_checkpoint(&dir, t, 1);
    cr_assert_eq(trestle_group_create(MPI_COMM_WORLD, &group, &err), TRESTLE_OK, "%s",
                 err.message);
}

static void teardown(void)
{
    trestle_group_free(group);
    trestle_close(ckpt);
    tu_rmtree(dir);
    free(dir);
    MPI_Finalize();
}

TestSuite(group_options, .init = setup, .fini = teardown);

static int create_call(const void *opt, trestle_error *err)
{
    trestle_group *g = NULL;
    int rc = trestle_group_create_with(MPI_COMM_WORLD, opt, &g, err);
    trestle_group_free(g);
    return rc;
}

static int restore_call(const void *opt, trestle_error *err)
{
    trestle_plan *p = NULL;
    cr_assert_eq(trestle_plan_create(ckpt, NULL, 0, NULL, &p, err), TRESTLE_OK);
    int rc = trestle_group_restore(group, p, opt, NULL, err);
    trestle_plan_free(p);
    return rc;
}

static void group_init_any(void *opt) { trestle_group_options_init(opt); }
static void restore_init_any(void *opt) { trestle_restore_options_init(opt); }

Test(group_options, trestle_group_options)
{
    if (sizeof(void *) == 8)
        cr_expect_eq(sizeof(trestle_group_options), 72); /* 0.2's, its first release */
    tu_check_options_rule(&(tu_options_kind){
        "trestle_group_options", sizeof(trestle_group_options),
        offsetof(trestle_group_options, reserved), group_init_any, create_call, "create_call",
        TRESTLE_OK, "rank 0 of 1: " });
}

/* The one reserved field outside the reserved array. */
Test(group_options, reserved_int_must_be_zero)
{
    trestle_group_options o;
    trestle_error err;
    trestle_group_options_init(&o);
    o.reserved_int = 1;
    cr_assert_eq(create_call(&o, &err), TRESTLE_E_INVALID_ARG);
    cr_expect_str_eq(err.message,
                     "rank 0 of 1: trestle_group_options.reserved_int is not zero");
}

Test(group_options, trestle_restore_options_of_a_group_restore)
{
    tu_check_options_rule(&(tu_options_kind){
        "trestle_restore_options", sizeof(trestle_restore_options),
        offsetof(trestle_restore_options, reserved), restore_init_any, restore_call,
        "restore_call", TRESTLE_OK, "rank 0 of 1: " });
}
