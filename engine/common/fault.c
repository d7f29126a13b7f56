/*
 * fault.c - the fault-injection seam for tests (see fault.h): rewriting
 * read results by a fault plan (plan/plan.c attaches one to a restore plan).
 *
 * Nothing here runs unless a test attached a fault plan: the readers call
 * trestle__fault_read() only when the reader's fault pointer is not NULL.
 */
#include <errno.h>

#include "fault.h"

bool trestle__fault_take(trestle__faults *f)
{
    unsigned n = atomic_load(&f->injected);
    while (n < f->times)
        if (atomic_compare_exchange_weak(&f->injected, &n, n + 1))
            return true;
    return false;
}

int64_t trestle__fault_read(trestle__faults *f, int shard, uint64_t lo, uint64_t hi,
                            uint64_t start, int64_t res)
{
    int kind = f->read_fault;
    uint64_t at = f->at;

    /* Real failures pass through; so do reads that do not reach `at`. */
    if (kind == TRESTLE__FAULT_NONE || res < 0 || shard != f->shard || at < lo || at >= hi ||
        start > at)
        return res;
    if (kind == TRESTLE__FAULT_SHORT)
        return res > 1 && trestle__fault_take(f) ? res / 2 : res;
    if (atomic_load(&f->injected) >= f->times)
        return res;
    if (start < at) /* the bytes before the fault arrive: a partial read */
        return res < (int64_t)(at - start) ? res : (int64_t)(at - start);
    if (!trestle__fault_take(f))
        return res;
    switch (kind) {
    case TRESTLE__FAULT_EIO:
        return -EIO;
    case TRESTLE__FAULT_EOF:
        return 0;
    case TRESTLE__FAULT_EINTR:
        return -EINTR;
    case TRESTLE__FAULT_EAGAIN:
        return -EAGAIN;
    }
    return res;
}
