/*
 * test_concurrency.c - an open checkpoint shared by threads, through the
 * public API only: two plans restoring it at once, byte-exact, and
 * trestle_restore_cancel() from another thread stopping a running
 * restore. (Moved from test_install.c, which is about installs.)
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "testutil.h"
#include "trestle.h"

static void sleep_ms(long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

/* ---- concurrent restores of one checkpoint ---- */

enum { NT = 8, TENSOR_BYTES = 1 << 20 };

static uint8_t *expected_bytes; /* NT * TENSOR_BYTES, tensor t at t * TENSOR_BYTES */

static char *write_big_checkpoint(char **dir, int ntensors, int shards)
{
    trestle_writer *w;
    trestle_writer_options wo;
    trestle_error err;
    char *prefix, name[32];
    *dir = tu_mkdtemp();
    cr_assert(asprintf(&prefix, "%s/big", *dir) > 0);
    expected_bytes = malloc((size_t)ntensors * TENSOR_BYTES);
    cr_assert_not_null(expected_bytes);
    tu_fill_random(expected_bytes, (size_t)ntensors * TENSOR_BYTES, 42);
    trestle_writer_options_init(&wo);
    wo.num_shards = shards;
    cr_assert_eq(trestle_writer_create(prefix, &wo, &w, &err), TRESTLE_OK, "%s", err.message);
    const int64_t dims[1] = { TENSOR_BYTES / 4 };
    for (int t = 0; t < ntensors; t++) {
        snprintf(name, sizeof name, "layer_%03d/w", t);
        cr_assert_eq(trestle_writer_add(w, name, TRESTLE_DT_FLOAT, 1, dims,
                                        expected_bytes + (size_t)t * TENSOR_BYTES, TENSOR_BYTES,
                                        t % shards, &err), TRESTLE_OK, "%s", err.message);
    }
    cr_assert_eq(trestle_writer_finish(w, &err), TRESTLE_OK, "%s", err.message);
    trestle_writer_free(w);
    return prefix;
}

typedef struct restorer {
    const trestle_checkpoint *ckpt;
    pthread_barrier_t *start;
    uint8_t *buf;      /* NT * TENSOR_BYTES, caller-owned destination */
    int rc;
    trestle_error err;
} restorer;

static void *restore_thread(void *arg)
{
    restorer *r = arg;
    trestle_op ops[NT];
    char names[NT][32];
    trestle_plan *p = NULL;
    for (int t = 0; t < NT; t++) {
        snprintf(names[t], sizeof names[t], "layer_%03d/w", t);
        ops[t] = (trestle_op){ .name = names[t], .dest_kind = TRESTLE_DEST_HOST,
                               .ptr = r->buf + (size_t)t * TENSOR_BYTES,
                               .capacity = TENSOR_BYTES };
    }
    r->rc = trestle_plan_create(r->ckpt, ops, NT, NULL, &p, &r->err);
    pthread_barrier_wait(r->start);
    if (r->rc == TRESTLE_OK) {
        trestle_restore_options o;
        trestle_restore_options_init(&o);
        o.reader = TRESTLE_READER_PREAD;
        o.chunk_bytes = 64 << 10;
        o.threads = 2;
        r->rc = trestle_restore(p, &o, NULL, &r->err);
    }
    trestle_plan_free(p);
    return NULL;
}

Test(concurrency, two_plans_restore_one_checkpoint_at_once)
{
    char *dir, *prefix = write_big_checkpoint(&dir, NT, 2);
    trestle_checkpoint *c;
    c = tu_open(prefix, NULL);
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, 2);
    restorer r[2];
    pthread_t th[2];
    for (int i = 0; i < 2; i++) {
        r[i] = (restorer){ .ckpt = c, .start = &start, .buf = malloc((size_t)NT * TENSOR_BYTES) };
        cr_assert_not_null(r[i].buf);
        memset(r[i].buf, 0xEE, (size_t)NT * TENSOR_BYTES);
        cr_assert_eq(pthread_create(&th[i], NULL, restore_thread, &r[i]), 0);
    }
    for (int i = 0; i < 2; i++) {
        pthread_join(th[i], NULL);
        cr_assert_eq(r[i].rc, TRESTLE_OK, "restore %d: %s", i, r[i].err.message);
        cr_assert(memcmp(r[i].buf, expected_bytes, (size_t)NT * TENSOR_BYTES) == 0,
                  "restore %d is not byte-exact", i);
        free(r[i].buf);
    }
    pthread_barrier_destroy(&start);
    trestle_close(c);
    free(expected_bytes);
    free(prefix);
    tu_rmtree(dir);
    free(dir);
}

/* ---- cancellation from another thread ---- */

enum { CANCEL_TENSORS = 64 }; /* 64 MiB in all */

typedef struct cancel_state {
    trestle_plan *plan;
    atomic_int started;     /* a tensor has landed: the restore is running */
    atomic_int cancel_sent; /* trestle_restore_cancel() has returned */
} cancel_state;

/* Holds every landing until the other thread has cancelled, so the cancel
 * is sure to arrive while the restore runs (bounded at 10 s). */
static int hold_until_cancelled(void *user, size_t i, const trestle_plan_op_info *op)
{
    cancel_state *s = user;
    atomic_store(&s->started, 1);
    for (int waited = 0; !atomic_load(&s->cancel_sent) && waited < 10000; waited++)
        sleep_ms(1);
    return 0;
}

static void *canceller(void *arg)
{
    cancel_state *s = arg;
    while (!atomic_load(&s->started))
        sleep_ms(1);
    trestle_restore_cancel(s->plan);
    atomic_store(&s->cancel_sent, 1);
    return NULL;
}

Test(cancel, cancel_from_another_thread_stops_a_running_restore)
{
    char *dir, *prefix = write_big_checkpoint(&dir, CANCEL_TENSORS, 4);
    trestle_checkpoint *c;
    trestle_plan *p;
    trestle_error err;
    c = tu_open(prefix, NULL);
    p = tu_plan(c, NULL, 0, NULL);

    cancel_state s = { .plan = p };
    trestle_restore_options o;
    trestle_restore_options_init(&o);
    o.reader = TRESTLE_READER_PREAD;
    o.chunk_bytes = 64 << 10;
    o.threads = 2;
    o.on_ready = hold_until_cancelled;
    o.user = &s;
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, canceller, &s), 0);
    int rc = trestle_restore(p, &o, NULL, &err);
    pthread_join(th, NULL);
    cr_assert_eq(rc, TRESTLE_E_CANCELLED, "restore returned %s: %s", trestle_code_name(rc),
                 err.message);
    cr_assert_eq(err.code, TRESTLE_E_CANCELLED);

    /* The plan is reusable: the next restore resets the flag and completes. */
    o.on_ready = NULL;
    o.user = NULL;
    trestle_stats st;
    cr_assert_eq(trestle_restore(p, &o, &st, &err), TRESTLE_OK, "%s", err.message);
    cr_assert_eq(st.tensors, CANCEL_TENSORS);
    for (size_t i = 0; i < trestle_plan_op_count(p); i++) {
        trestle_plan_op_info op;
        cr_assert_eq(trestle_plan_get_op(p, i, &op), TRESTLE_OK);
        cr_assert_eq(op.bytes, TENSOR_BYTES);
        cr_assert(memcmp(op.data, expected_bytes + i * TENSOR_BYTES, TENSOR_BYTES) == 0,
                  "tensor %zu (%s) differs after the second restore", i, op.name);
    }
    trestle_plan_free(p);
    trestle_close(c);
    free(expected_bytes);
    free(prefix);
    tu_rmtree(dir);
    free(dir);
}
