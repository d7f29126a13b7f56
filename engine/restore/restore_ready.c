/*
 * restore_ready.c - telling the caller that ops are restored: the last
 * piece of an op lands (engine/restore/restore_worker.c), its bytes are in
 * place and verified, and the op counts as ready and goes to the on_ready
 * callback on that worker's thread. Ops that become ready while one read
 * lands are reported together (issue 24): a model of 100,000 tensors makes
 * 100,000 ops ready, and a clock read and a shared counter update for each
 * cost more than the tensors' own bookkeeping.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdio.h>

#include "error.h"
#include "restore.h"

void trestle__restore_ops_ready(trestle__restore *x, unsigned worker, const size_t *ops,
                                size_t n)
{
    /* After a failure nothing more is reported: the restore as a whole failed. */
    if (n == 0 || trestle__restore_stopping(x))
        return;
    /* One clock read and one count per batch, not per op: a model of
     * 100,000 tensors makes 100,000 ops ready. */
    if (atomic_load_explicit(&x->first_ready_ns, memory_order_relaxed) < 0) {
        long long none = -1;
        atomic_compare_exchange_strong(&x->first_ready_ns, &none,
                                       (long long)trestle__restore_now_ns(x));
    }
    if (!x->opt.on_ready) {
        atomic_fetch_add(&x->tensors, n);
        return;
    }
    /* Counted once for the ops told of, when done: an atomic add per op
     * moved the count's cache line between the workers 100,000 times. */
    size_t k = 0;
    for (; k < n; k++) {
        size_t i = ops[k];
        const trestle__plan_op *op = &x->plan->ops[i];
        if (k > 0 && trestle__restore_stopping(x))
            break;
        trestle_plan_op_info info = {
            .name = op->name,
            .key = op->skipped ? NULL : op->key,
            .skipped = op->skipped,
            .dtype = op->dtype,
            .rank = op->rank,
            .dims = op->dims,
            .bytes = op->bytes,
            .data = op->dest,
            .out_dtype = op->out_dtype,
            .device = op->device, /* 0 would say device 0 for host memory too */
        };
        int stop = x->opt.on_ready(x->opt.user, i, &info);
        /* The callback is the caller's code on our thread: it may have
         * switched the thread's CUDA device, which later kernel launches on
         * the worker's stream would fail on. */
        if (worker < x->opt.threads && x->copier.ops->reenter)
            x->copier.ops->reenter(&x->copier, worker);
        if (stop != 0) {
            trestle_error e;
            trestle__error_set(&e, TRESTLE_E_CANCELLED, 0, op->key, NULL, -1, -1,
                               "restore cancelled by the ready callback (it returned %d for op "
                               "%zu, '%s')", stop, i, op->name);
            trestle__restore_fail(x, &e);
        }
    }
    atomic_fetch_add(&x->tensors, k);
}

void trestle__restore_op_ready(trestle__restore *x, unsigned worker, size_t i)
{
    trestle__restore_ops_ready(x, worker, &i, 1);
}

void trestle__restore_ready_add(trestle__restore *x, unsigned worker, trestle__ready_batch *rb,
                                size_t op)
{
    rb->op[rb->n++] = op;
    if (rb->n == sizeof rb->op / sizeof rb->op[0])
        trestle__restore_ready_flush(x, worker, rb);
}

void trestle__restore_ready_flush(trestle__restore *x, unsigned worker, trestle__ready_batch *rb)
{
    trestle__restore_ops_ready(x, worker, rb->op, rb->n);
    rb->n = 0;
}
