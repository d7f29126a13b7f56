/*
 * group_live.c - this rank's part of a group restore, run on a thread of
 * its own so that the calling thread, which makes every MPI call (so
 * MPI_THREAD_FUNNELED suffices), can exchange the bytes already in place
 * while the rest is still being read. The ready callback is the only
 * window into a running restore (trestle.h): it records each op's
 * destination as it lands, and the exchange waits on that. The exchange
 * ceiling (engine/group/group_ceiling.c) hands the exchange a restore that has
 * already returned, its destinations given (trestle__group_live_ready()).
 */
#include <stdlib.h>
#include <string.h>

#include "group.h"

static int on_ready(void *user, size_t i, const trestle_plan_op_info *op)
{
    trestle__group_live *lv = user;
    pthread_mutex_lock(&lv->mu);
    lv->data[i] = op->data ? op->data : (uint8_t *)lv; /* zero bytes: any address */
    lv->device[i] = op->data ? op->device : -1;
    pthread_cond_broadcast(&lv->cv);
    pthread_mutex_unlock(&lv->mu);
    /* The caller hears of ops this rank writes; the others are in place
     * only once the exchange is over. */
    return lv->user_fn && lv->mine[i] ? lv->user_fn(lv->user, i, op) : 0;
}

static void *run(void *arg)
{
    trestle__group_live *lv = arg;
    trestle_error err;
    trestle_stats st;
    double t0 = MPI_Wtime();
    int rc = trestle_restore(lv->p, &lv->opt, &st, &err);
    pthread_mutex_lock(&lv->mu);
    lv->rc = rc;
    lv->err = err;
    lv->stats = st;
    lv->seconds = MPI_Wtime() - t0;
    lv->done = true;
    pthread_cond_broadcast(&lv->cv);
    pthread_mutex_unlock(&lv->mu);
    return NULL;
}

int trestle__group_live_start(trestle__group_live *lv, trestle_plan *p,
                              const trestle_restore_options *opt, const bool *mine,
                              trestle_error *err)
{
    memset(lv, 0, sizeof *lv);
    pthread_mutex_init(&lv->mu, NULL);
    pthread_cond_init(&lv->cv, NULL);
    lv->p = p;
    lv->mine = mine;
    if (opt)
        lv->opt = *opt;
    else
        trestle_restore_options_init(&lv->opt);
    lv->user_fn = lv->opt.on_ready;
    lv->user = lv->opt.user;
    lv->opt.on_ready = on_ready;
    lv->opt.user = lv;
    size_t n = trestle_plan_op_count(p);
    lv->data = calloc(n ? n : 1, sizeof *lv->data);
    lv->device = calloc(n ? n : 1, sizeof *lv->device);
    if (!lv->data || !lv->device)
        return trestle__group_error(err, TRESTLE_E_NOMEM, "out of memory");
    int ret = pthread_create(&lv->thread, NULL, run, lv);
    if (ret != 0)
        return trestle__group_error(err, TRESTLE_E_NOMEM, "cannot start the restore thread (%d)",
                                    ret);
    lv->started = true;
    return TRESTLE_OK;
}

int trestle__group_live_ready(trestle__group_live *lv, uint8_t *const *data, const int *device,
                              size_t n, trestle_error *err)
{
    memset(lv, 0, sizeof *lv);
    pthread_mutex_init(&lv->mu, NULL);
    pthread_cond_init(&lv->cv, NULL);
    lv->data = calloc(n ? n : 1, sizeof *lv->data);
    lv->device = calloc(n ? n : 1, sizeof *lv->device);
    /* Returned, and OK: trestle__group_live_wait() never waits on it, and
     * trestle__group_live_join() has no thread to join. */
    lv->done = true;
    if (!lv->data || !lv->device)
        return trestle__group_error(err, TRESTLE_E_NOMEM, "out of memory");
    memcpy(lv->data, data, n * sizeof *data);
    memcpy(lv->device, device, n * sizeof *device);
    return TRESTLE_OK;
}

bool trestle__group_live_wait(trestle__group_live *lv, const trestle__group_runs *rs,
                              size_t first, size_t end)
{
    bool all = false;
    pthread_mutex_lock(&lv->mu);
    for (;;) {
        size_t k = first;
        while (k < end && lv->data[rs->v[k].op])
            k++;
        all = k == end;
        if (all || lv->done)
            break;
        pthread_cond_wait(&lv->cv, &lv->mu);
    }
    pthread_mutex_unlock(&lv->mu);
    return all;
}

bool trestle__group_live_failed(trestle__group_live *lv)
{
    pthread_mutex_lock(&lv->mu);
    bool failed = lv->done && lv->rc != TRESTLE_OK;
    pthread_mutex_unlock(&lv->mu);
    return failed;
}

int trestle__group_live_join(trestle__group_live *lv, trestle_error *err)
{
    if (lv->started)
        pthread_join(lv->thread, NULL);
    lv->started = false;
    if (lv->done && lv->rc != TRESTLE_OK && err)
        *err = lv->err;
    int rc = lv->done ? lv->rc : TRESTLE_E_INVALID_ARG;
    free(lv->data);
    free(lv->device);
    lv->data = NULL;
    lv->device = NULL;
    pthread_mutex_destroy(&lv->mu);
    pthread_cond_destroy(&lv->cv);
    return rc;
}
