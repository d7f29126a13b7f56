/*
 * test_regress_issue14.c - issue 14 (scale-out): what the group library
 * found wrong in the engine while building device ranks. The ready
 * callback's trestle_plan_op_info left `device` at 0 whatever the
 * destination, so a group exchange took host destinations for device 0's
 * memory and device 1's for device 0's (the CUDA mock aborted on the
 * copies). Both tests failed before the fix.
 */
#include <criterion/criterion.h>
#include <stdlib.h>

#include "testutil.h"
#include "trestle.h"

#define MAX_OPS 64

typedef struct seen {
    int device[MAX_OPS];        /* what the callback said, per op */
    size_t calls;
} seen;

static int record(void *user, size_t i, const trestle_plan_op_info *op)
{
    seen *s = user;
    /* Workers may call at once; each op is reported once, in its own slot. */
    if (i < MAX_OPS)
        s->device[i] = op->device;
    __atomic_fetch_add(&s->calls, 1, __ATOMIC_RELAXED);
    return 0;
}

/* Restore every tensor of a mixed checkpoint onto `device` (-1: host) and
 * check that the callback named it for every op. */
static void check_reported(int device)
{
    char *dir = tu_mkdtemp(), *prefix = tu_write_mixed(dir, 12, 2);
    trestle_checkpoint *c;
    trestle_plan *p;
    trestle_error err;
    trestle_restore_options ro;
    seen s;
    for (int k = 0; k < MAX_OPS; k++)
        s.device[k] = -7;
    s.calls = 0;
    c = tu_open(prefix, NULL);
    p = tu_plan(c, NULL, 0, NULL);
    trestle_restore_options_init(&ro);
    ro.device = device;
    ro.on_ready = record;
    ro.user = &s;
    int rc = trestle_restore(p, &ro, NULL, &err);
    /* Only a missing device skips: a CUDA error is the copier's, a failure. */
    if (device >= 0 && rc == TRESTLE_E_NO_DEVICE)
        cr_skip("no usable CUDA device %d: %s", device, err.message);
    cr_assert_eq(rc, TRESTLE_OK, "%s", err.message);
    size_t n = trestle_plan_op_count(p);
    cr_assert_leq(n, MAX_OPS);
    cr_assert_eq(s.calls, n);
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(s.device[i], device, "op %zu: the callback said device %d, not %d", i,
                     s.device[i], device);
    trestle_plan_free(p);
    trestle_close(c);
    tu_rmtree(dir);
    free(dir);
    free(prefix);
}

Test(regress, issue_14_ready_callback_says_host_memory_is_host_memory)
{
    check_reported(-1);
}

Test(regress, issue_14_ready_callback_names_the_restore_device)
{
#if !TRESTLE_HAVE_CUDA
    cr_skip("a build without CUDA has no device to restore to");
#endif
    check_reported(1); /* not 0, which the callback used to say for everything */
}
