/*
 * cudamock.c - the CUDA runtime subset trestle uses, on the CPU, for tests.
 * What it promises and why is in cudamock.h; how:
 *
 *  - One process-wide mutex guards everything, and queued work runs under
 *    it, in the thread that waits for it. Simple and slow; tests are small.
 *  - A stream is a queue of ops with a count of ops enqueued and ops run.
 *    An event is (stream, count at record); it is complete once the stream
 *    has run that many. cudaStreamWaitEvent queues a WAIT op that, when it
 *    runs, first runs the other stream up to the event.
 *  - The legacy default stream (NULL, cudaStreamLegacy) is a stream like
 *    any other: its work waits until something waits for it. Its implicit
 *    synchronisation is a WAIT op: work queued on it first waits for the
 *    device's blocking streams, and work queued on a blocking stream first
 *    waits for the legacy stream. Non-blocking streams (the engine's) wait
 *    for neither, as on a GPU, so a memset the caller queued on the legacy
 *    stream lands after the engine's copies unless the engine orders them.
 *  - Contexts: each thread has a current context (none at first);
 *    cudaSetDevice makes the device's primary context current, creating it,
 *    and so does any call that needs a context when the thread has none
 *    (on the thread's device, 0 by default). cuCtxGetCurrent and
 *    cuCtxSetCurrent come through cudaGetDriverEntryPointByVersion, as
 *    the engine reaches them, so a test sees whose context was left where.
 *  - Mapped pinned memory has a device address of its own unless
 *    TRESTLE_CUDAMOCK_HOST_POINTERS=1 (the device attribute
 *    cudaDevAttrCanUseHostPointerForRegisteredMem): a kernel handed the host
 *    address instead of cudaHostGetDevicePointer's aborts.
 *  - Device memory is a memfd mapped twice: a PROT_NONE view whose address
 *    is the "device pointer", and a read-write alias the mock copies
 *    through.
 *  - cudaStreamDestroy does not wait, as on a GPU: a destroyed stream that
 *    still holds work becomes a zombie whose work runs only at a
 *    device-wide wait (cudaDeviceSynchronize, cudaFree) or, in "late"
 *    mode, after whatever the next wait waited for; its copies still read
 *    their pinned sources, which may not be unpinned meanwhile.
 *  - Events carry timestamps: an event's stamp is taken when its stream
 *    runs past it, so cudaEventElapsedTime measures the queued work
 *    between two events, not when the host noticed.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <cuda.h> /* CUcontext and CUresult for the driver entry points: types only */
#include <cuda_runtime_api.h>

#include "cudamock.h"
#include "cudamock_internal.h"
#include "trestle.h"
#include "trestle_kernels.h"

#define MAGIC_STREAM 0x5354524dU /* "STRM" */
#define MAGIC_EVENT 0x4556544eU  /* "EVTN" */
#define MAGIC_CTX 0x43545854U    /* "CTXT" */
#define MAGIC_ZOMBIE 0x5a4f4d42U /* "ZOMB": a destroyed stream whose work has not run */
/* Where the device view of mapped pinned memory lies: above any user
 * address of x86-64 or arm64, so it is never a host pointer by accident. */
#define DEV_VIEW_OFFSET ((uintptr_t)1 << 48)

typedef enum { OP_COPY, OP_MEMSET, OP_SCATTER, OP_CONVERT, OP_WAIT, OP_STAMP, OP_FREE } op_kind;

typedef struct mop {
    op_kind kind;
    void *dst;                  /* as the caller gave it */
    const void *src;
    size_t n;                   /* bytes read from src (COPY, SCATTER, CONVERT) or set */
    int value;                  /* MEMSET */
    enum cudaMemcpyKind dir;    /* COPY */
    trestle__k_layout l;        /* SCATTER */
    uint64_t lo;
    int dt_dst, dt_src;         /* CONVERT */
    uint64_t count;
    struct CUstream_st *wait_s; /* WAIT: run wait_s up to wait_seq */
    uint64_t wait_seq;
    struct CUevent_st *ev;      /* STAMP: the event whose timestamp this takes, */
    uint64_t gen;               /* ... if it was not recorded again since */
    void *snapshot;             /* pinned source bytes at enqueue, checked when run */
    cudaError_t fail;           /* an armed asynchronous failure */
    const char *what;           /* the call that queued it, for messages */
} mop;

struct CUstream_st {
    uint32_t magic;
    int device;
    unsigned flags;             /* cudaStreamNonBlocking or 0 */
    bool legacy;
    bool capturing;             /* cudamock_set_capturing */
    mop *q;                     /* ring of queued ops: q[done % cap] .. q[(enq - 1) % cap] */
    size_t cap;
    uint64_t enq, done;
    bool zombie;                /* destroyed while it held work: runs at device-wide waits */
    struct CUstream_st *next;   /* all created streams (zombies: the zombie list) */
};

struct CUevent_st {
    uint32_t magic;
    int device;
    unsigned flags;             /* cudaEventBlockingSync, cudaEventDisableTiming */
    unsigned queries;           /* cudaEventQuery calls while incomplete */
    struct CUstream_st *s;      /* NULL: complete */
    uint64_t seq;
    bool recorded;              /* recorded at least once */
    uint64_t gen;               /* records so far: a stale STAMP op leaves ts alone */
    int64_t ts_ns;              /* when its stream ran past it (CLOCK_MONOTONIC) */
    struct CUevent_st *next;
};

typedef struct dev_alloc {
    uint8_t *dev;               /* PROT_NONE view: the pointer handed out */
    uint8_t *alias;             /* read-write view of the same pages (read-only for a VMM
                                   range mapped read-only) */
    size_t size, mapped;
    int device;
    bool vmm;                   /* a cuMemMap'ped range (cudamock_vmm.c), not cudaMalloc's */
    int access;                 /* CUDAMOCK_ACCESS_* bits: what the device may do here */
} dev_alloc;

typedef struct host_range {
    uint8_t *base;
    uint8_t *dev;               /* its device address: base, or base + DEV_VIEW_OFFSET */
    size_t size;
    bool mapped;                /* a kernel may read it (cudaHostRegisterMapped, cudaHostAlloc) */
    bool owned;                 /* cudaHostAlloc'd: cudaFreeHost frees it */
} host_range;

struct CUctx_st {
    uint32_t magic;
    int device;
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static int ndevices = -1;
static int host_pointers;        /* cudaDevAttrCanUseHostPointerForRegisteredMem */
static __thread struct CUctx_st *ctx_current; /* the thread's current context, or none */
static __thread int thread_device;            /* the device with no context current */
static struct CUctx_st primary[CUDAMOCK_MAX_DEVICES];
static __thread cudaError_t last_error = cudaSuccess;
static cudaError_t sticky[CUDAMOCK_MAX_DEVICES];
static struct CUstream_st legacy[CUDAMOCK_MAX_DEVICES];
static struct CUstream_st *streams;
static struct CUstream_st *zombies;  /* destroyed with work still queued */
static bool late;                    /* cudamock_set_late */
static __thread uint64_t syncs_since_enqueue; /* this thread's waits since it last queued work */
static struct CUevent_st *events;
static dev_alloc *allocs;
static size_t nallocs, cap_allocs;
static host_range *hosts;
static size_t nhosts, cap_hosts;
static cudamock_stats stats;
#define ARMED_MAX 4
static struct {
    char fn[64];
    unsigned nth;
    cudaError_t err;
    bool async;
} armed[ARMED_MAX];

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("cudamock: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    abort();
}

static void print_stats(void);

static void lock(void)
{
    pthread_mutex_lock(&mu);
    if (ndevices < 0) {
        const char *e = getenv("TRESTLE_CUDAMOCK_DEVICES");
        ndevices = e ? atoi(e) : 2;
        if (ndevices < 0)
            ndevices = 0;
        if (ndevices > CUDAMOCK_MAX_DEVICES)
            ndevices = CUDAMOCK_MAX_DEVICES;
        const char *hp = getenv("TRESTLE_CUDAMOCK_HOST_POINTERS");
        host_pointers = hp && atoi(hp) == 1;
        for (int d = 0; d < CUDAMOCK_MAX_DEVICES; d++) {
            legacy[d].magic = MAGIC_STREAM;
            legacy[d].device = d;
            legacy[d].legacy = true;
            primary[d].device = d;
        }
        const char *st = getenv("TRESTLE_CUDAMOCK_STATS");
        if (st && atoi(st) == 1)
            atexit(print_stats);
    }
}

/* The calling thread's device: its current context's. */
static int cur_dev(void)
{
    return ctx_current ? ctx_current->device : thread_device;
}

/* A call that needs a context: with none current, the runtime makes the
 * primary context of the thread's device current (creating it). */
static int need_ctx(void)
{
    if (!ctx_current && thread_device < ndevices) {
        if (primary[thread_device].magic != MAGIC_CTX) {
            primary[thread_device].magic = MAGIC_CTX;
            stats.primary_contexts++;
        }
        ctx_current = &primary[thread_device];
    }
    return cur_dev();
}

static void unlock(void)
{
    pthread_mutex_unlock(&mu);
}

/* Every return goes through here: errors become the thread's last error. */
static cudaError_t ret(cudaError_t e)
{
    if (e != cudaSuccess && e != cudaErrorNotReady) /* "not ready" is an answer, not an error */
        last_error = e;
    return e;
}

static cudaError_t unlock_ret(cudaError_t e)
{
    unlock();
    return ret(e);
}

/* An armed failure for this call of fn: 0, or the error (async: *async). */
static cudaError_t armed_for(const char *fn, bool *async)
{
    if (async)
        *async = false;
    for (int k = 0; k < ARMED_MAX; k++) {
        if (armed[k].nth == 0 || strcmp(armed[k].fn, fn) != 0)
            continue;
        if (--armed[k].nth > 0)
            return cudaSuccess;
        if (async)
            *async = armed[k].async;
        return armed[k].err;
    }
    return cudaSuccess;
}

static int64_t now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

/* ---- memory lookup ---- */

static dev_alloc *find_dev(const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < nallocs; i++)
        if (b >= allocs[i].dev && b < allocs[i].dev + allocs[i].size) {
            if ((size_t)(b - allocs[i].dev) + n > allocs[i].size)
                die("%zu bytes at %p run past the end of the %zu-byte device allocation at %p",
                    n, p, allocs[i].size, (void *)allocs[i].dev);
            return &allocs[i];
        }
    return NULL;
}

static host_range *find_host(const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < nhosts; i++)
        if (b >= hosts[i].base && b < hosts[i].base + hosts[i].size) {
            if ((size_t)(b - hosts[i].base) + n > hosts[i].size)
                die("%zu bytes at %p run past the end of the %zu-byte pinned range at %p", n, p,
                    hosts[i].size, (void *)hosts[i].base);
            return &hosts[i];
        }
    return NULL;
}

/* A mapped pinned range whose device address holds [p, p + n). */
static host_range *find_host_dev_view(const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < nhosts; i++)
        if (hosts[i].mapped && b >= hosts[i].dev && b < hosts[i].dev + hosts[i].size) {
            if ((size_t)(b - hosts[i].dev) + n > hosts[i].size)
                die("%zu bytes at device address %p run past the end of the %zu-byte pinned "
                    "range mapped at %p", n, p, hosts[i].size, (void *)hosts[i].dev);
            return &hosts[i];
        }
    return NULL;
}

/* Where the mock reads or writes the bytes of p: the alias for device
 * memory, the host address for the device view of pinned memory. */
static host_range *find_host_dev_view(const void *p, size_t n);

static void *host_view(const void *p, size_t n)
{
    dev_alloc *a = find_dev(p, n);
    if (a)
        return a->alias + ((const uint8_t *)p - a->dev);
    host_range *h = find_host_dev_view(p, n);
    if (h && h->dev != h->base)
        return h->base + ((const uint8_t *)p - h->dev);
    return (void *)p;
}

static bool overlaps(const void *p, size_t n, const void *base, size_t size)
{
    const uint8_t *a = p, *b = base;
    return n > 0 && a < b + size && b < a + n;
}

/* ---- streams ---- */

static struct CUstream_st *resolve(cudaStream_t s)
{
    /* The per-thread default stream is stricter here than on a GPU: it is
     * the legacy stream, which at least never lets non-blocking work slip. */
    if (s == NULL || s == cudaStreamLegacy || s == cudaStreamPerThread)
        return &legacy[need_ctx()];
    if (s->magic != MAGIC_STREAM)
        die("%p is not a live stream", (void *)s);
    return s;
}

static void run_stream(struct CUstream_st *s, uint64_t upto);

/* The scatter kernel, read independently of kernels/scatter.cu: walk every
 * run of the layout and copy the part of it that lies in [lo, lo + n) of
 * the source block (with `copy` false, only count those bytes). */
static uint64_t scatter_runs(const mop *o, bool copy)
{
    const trestle__k_layout *l = &o->l;
    const uint8_t *src = o->src;
    uint64_t bytes = 0;
    for (uint64_t i = 0; i < l->nruns; i++) {
        uint64_t so = l->base_s, dof = l->base_d, rest = i;
        for (int d = l->k - 1; d >= 0; d--) {
            so += (rest % l->cnt[d]) * l->sstr[d];
            dof += (rest % l->cnt[d]) * l->dstr[d];
            rest /= l->cnt[d];
        }
        uint64_t a = so > o->lo ? so : o->lo;
        uint64_t b = so + l->run < o->lo + o->n ? so + l->run : o->lo + o->n;
        if (a >= b)
            continue;
        bytes += b - a;
        if (!copy)
            continue;
        uint8_t *d = (uint8_t *)o->dst + dof + (a - so);
        if (!find_dev(d, (size_t)(b - a)))
            die("the scatter kernel writes %" PRIu64 " bytes at %p, outside device memory", b - a,
                (void *)d);
        memcpy(host_view(d, (size_t)(b - a)), host_view(src + (a - o->lo), (size_t)(b - a)),
               (size_t)(b - a));
    }
    return bytes;
}

static void free_alloc(size_t i);

static void run_op(struct CUstream_st *s, mop *o)
{
    if (o->kind == OP_WAIT) {
        if (o->wait_s)
            run_stream(o->wait_s, o->wait_seq);
        return;
    }
    if (o->kind == OP_STAMP) {
        if (o->ev && o->ev->gen == o->gen)
            o->ev->ts_ns = now_ns();
        return;
    }
    if (o->kind == OP_FREE) {
        size_t i = 0;
        while (i < nallocs && allocs[i].dev != o->dst)
            i++;
        if (i == nallocs)
            die("cudaFreeAsync(%p) on stream %p: no such allocation when it ran", o->dst,
                (void *)s);
        free_alloc(i);
        return;
    }
    stats.ops_run[s->device]++;
    if (o->fail != cudaSuccess || sticky[s->device] != cudaSuccess) {
        if (sticky[s->device] == cudaSuccess)
            sticky[s->device] = o->fail;
        return;
    }
    if (o->snapshot && memcmp(o->snapshot, host_view(o->src, o->n), o->n) != 0)
        die("the %zu source bytes at %p of a %s on device %d stream %p changed between the "
            "call and the moment the copy ran: the source was reused before the copy was "
            "fenced",
            o->n, o->src, o->what, s->device, (void *)s);
    switch (o->kind) {
    case OP_COPY:
        memcpy(host_view(o->dst, o->n), o->snapshot ? o->snapshot : host_view(o->src, o->n),
               o->n);
        break;
    case OP_MEMSET:
        memset(host_view(o->dst, o->n), o->value, o->n);
        break;
    case OP_SCATTER:
        scatter_runs(o, true);
        break;
    case OP_CONVERT: {
        size_t out = (size_t)o->count * trestle_dtype_size(o->dt_dst);
        if (!find_dev(o->dst, out))
            die("the convert kernel writes %zu bytes at %p, outside device memory", out, o->dst);
        trestle__convert(host_view(o->dst, out), o->dt_dst, host_view(o->src, o->n),
                         o->dt_src, o->count);
        break;
    }
    case OP_WAIT:
    case OP_STAMP:
    case OP_FREE:
        break;
    }
}

/* Run s's queued ops until `upto` of them have run. Each op is taken off
 * the queue before it runs, so a WAIT inside it that comes back to s
 * (the legacy stream's implicit synchronisation) finds it done. */
static void run_stream(struct CUstream_st *s, uint64_t upto)
{
    while (s->done < upto && s->done < s->enq) {
        mop o = s->q[s->done % s->cap];
        s->done++;
        run_op(s, &o);
        free(o.snapshot);
    }
}

static void reap_zombies(void);

static void run_all(int device, bool blocking_only)
{
    for (struct CUstream_st *s = streams; s; s = s->next)
        if ((device < 0 || s->device == device) &&
            (!blocking_only || !(s->flags & cudaStreamNonBlocking)))
            run_stream(s, s->enq);
    for (int d = 0; d < CUDAMOCK_MAX_DEVICES; d++)
        if (device < 0 || d == device)
            run_stream(&legacy[d], legacy[d].enq);
    /* A device-wide wait waits for the work of destroyed streams too. */
    for (struct CUstream_st *z = zombies; z; z = z->next)
        if (device < 0 || z->device == device)
            run_stream(z, z->enq);
    reap_zombies();
}

/* Late mode (cudamock_set_late): after a wait, the work nobody waited for
 * runs too, as a GPU may run it at any later moment: the work of streams
 * the engine left behind lands after whatever the caller did meanwhile. */
static void run_late(void)
{
    if (late)
        run_all(-1, false);
}

/* The ops of every queue that refer to stream z or event ev (one of them
 * NULL) stop referring to it: it is about to be freed. */
static void forget(const struct CUstream_st *z, const struct CUevent_st *ev);

/* Free the zombies whose work has all run. */
static void reap_zombies(void)
{
    for (struct CUstream_st **pp = &zombies; *pp;) {
        struct CUstream_st *z = *pp;
        if (z->done < z->enq) {
            pp = &z->next;
            continue;
        }
        *pp = z->next;
        forget(z, NULL);
        free(z->q);
        free(z);
    }
}

static bool memory_op(const mop *o)
{
    return o->kind == OP_COPY || o->kind == OP_MEMSET || o->kind == OP_SCATTER ||
           o->kind == OP_CONVERT;
}

static void push_raw(struct CUstream_st *s, const mop *o)
{
    if (s->enq - s->done == s->cap) {
        size_t ncap = s->cap ? s->cap * 2 : 16;
        mop *q = malloc(ncap * sizeof *q);
        if (!q)
            die("out of memory");
        for (uint64_t i = s->done; i < s->enq; i++)
            q[i % ncap] = s->q[i % s->cap];
        free(s->q);
        s->q = q;
        s->cap = ncap;
    }
    s->q[s->enq % s->cap] = *o;
    s->enq++;
}

/* Queue o on s behind the legacy stream's implicit synchronisation: work
 * on the legacy stream waits for what the device's blocking streams hold,
 * work on a blocking stream waits for what the legacy stream holds. */
/*
 * A VMM range's access (cuMemSetAccess), checked when work is queued: a
 * write into a range the device may not write (a read-only mapping), or a
 * read of one it may not read, is an illegal address when it runs, which
 * leaves the device's sticky error, as a GPU's fault does. The op writes
 * nothing.
 */
static cudaError_t access_fault(const mop *o)
{
    const void *dst = o->dst, *src = o->src;
    bool writes_dev = o->kind != OP_COPY || o->dir == cudaMemcpyHostToDevice ||
                      o->dir == cudaMemcpyDeviceToDevice;
    bool reads_dev = o->kind == OP_SCATTER || o->kind == OP_CONVERT ||
                     (o->kind == OP_COPY && (o->dir == cudaMemcpyDeviceToHost ||
                                             o->dir == cudaMemcpyDeviceToDevice));
    dev_alloc *d = writes_dev && dst ? find_dev(dst, 1) : NULL;
    dev_alloc *r = reads_dev && src ? find_dev(src, 1) : NULL;
    if ((d && d->vmm && !(d->access & CUDAMOCK_ACCESS_WRITE)) ||
        (r && r->vmm && !(r->access & CUDAMOCK_ACCESS_READ))) {
        stats.vmm_access_faults++;
        return cudaErrorIllegalAddress;
    }
    return cudaSuccess;
}

static void push(struct CUstream_st *s, const mop *o)
{
    if (memory_op(o) && o->fail == cudaSuccess) {
        cudaError_t f = access_fault(o);
        if (f != cudaSuccess) {
            mop faulting = *o;
            faulting.fail = f;
            push(s, &faulting);
            return;
        }
    }
    if (s->legacy) {
        for (struct CUstream_st *b = streams; b; b = b->next)
            if (b->device == s->device && !(b->flags & cudaStreamNonBlocking) && b->done < b->enq) {
                mop w = { .kind = OP_WAIT, .wait_s = b, .wait_seq = b->enq,
                          .what = "legacy stream synchronisation" };
                push_raw(s, &w);
            }
    } else if (!(s->flags & cudaStreamNonBlocking)) {
        struct CUstream_st *l = &legacy[s->device];
        if (l->done < l->enq) {
            mop w = { .kind = OP_WAIT, .wait_s = l, .wait_seq = l->enq,
                      .what = "legacy stream synchronisation" };
            push_raw(s, &w);
        }
    }
    if (memory_op(o)) {
        /* How long this thread waited before it queued work again. */
        if (syncs_since_enqueue > stats.max_syncs_before_enqueue)
            stats.max_syncs_before_enqueue = syncs_since_enqueue;
        syncs_since_enqueue = 0;
    }
    push_raw(s, o);
}

/* Does queued, unrun work read or write [p, p + n)? */
static bool stream_uses(const struct CUstream_st *s, const void *p, size_t n)
{
    for (uint64_t i = s->done; i < s->enq; i++) {
        const mop *o = &s->q[i % s->cap];
        size_t dn = o->kind == OP_COPY || o->kind == OP_MEMSET ? o->n : 1;
        if (memory_op(o) && (overlaps(host_view(o->src, 1), o->n, p, n) ||
                             overlaps(o->dst, dn, p, n)))
            return true;
    }
    return false;
}

static bool queued_uses(const void *p, size_t n)
{
    for (struct CUstream_st *s = streams; s; s = s->next)
        if (stream_uses(s, p, n))
            return true;
    for (int d = 0; d < CUDAMOCK_MAX_DEVICES; d++)
        if (stream_uses(&legacy[d], p, n))
            return true;
    for (struct CUstream_st *z = zombies; z; z = z->next)
        if (stream_uses(z, p, n))
            return true;
    return false;
}

/* Unrun copies, memsets and kernels queued on s. */
static uint64_t pending_on(const struct CUstream_st *s)
{
    uint64_t n = 0;
    for (uint64_t i = s->done; i < s->enq; i++)
        n += memory_op(&s->q[i % s->cap]);
    return n;
}

static void forget_in(struct CUstream_st *s, const struct CUstream_st *z,
                      const struct CUevent_st *ev)
{
    for (uint64_t i = s->done; i < s->enq; i++) {
        mop *o = &s->q[i % s->cap];
        if (z && o->kind == OP_WAIT && o->wait_s == z)
            o->wait_s = NULL; /* z's work has all run: the wait is met */
        if (ev && o->kind == OP_STAMP && o->ev == ev)
            o->ev = NULL;
    }
}

static void forget(const struct CUstream_st *z, const struct CUevent_st *ev)
{
    for (struct CUstream_st *s = streams; s; s = s->next)
        forget_in(s, z, ev);
    for (struct CUstream_st *s = zombies; s; s = s->next)
        forget_in(s, z, ev);
    for (int d = 0; d < CUDAMOCK_MAX_DEVICES; d++)
        forget_in(&legacy[d], z, ev);
    for (struct CUevent_st *e = events; z && e; e = e->next)
        if (e->s == z)
            e->s = NULL;
}

/* ---- devices ---- */

cudaError_t cudaGetDeviceCount(int *count)
{
    lock();
    cudaError_t e = armed_for("cudaGetDeviceCount", NULL);
    *count = e == cudaSuccess ? ndevices : 0;
    if (e == cudaSuccess && ndevices == 0)
        e = cudaErrorNoDevice;
    return unlock_ret(e);
}

cudaError_t cudaSetDevice(int device)
{
    lock();
    cudaError_t e = armed_for("cudaSetDevice", NULL);
    if (e == cudaSuccess && (device < 0 || device >= ndevices))
        e = ndevices == 0 ? cudaErrorNoDevice : cudaErrorInvalidDevice;
    if (e == cudaSuccess) {
        /* Since CUDA 12 this creates the device's primary context and
         * makes it current: a thread that had none now has one. */
        thread_device = device;
        ctx_current = NULL;
        need_ctx();
    }
    return unlock_ret(e);
}

cudaError_t cudaGetDevice(int *device)
{
    lock();
    cudaError_t e = ndevices == 0 ? cudaErrorNoDevice : cudaSuccess;
    *device = cur_dev();
    return unlock_ret(e);
}

cudaError_t cudaDeviceSynchronize(void)
{
    lock();
    stats.device_syncs++;
    int d = need_ctx();
    run_all(d, false);
    return unlock_ret(sticky[d]);
}

cudaError_t cudaGetLastError(void)
{
    cudaError_t e = last_error;
    last_error = cudaSuccess;
    lock();
    stats.last_error_calls++;
    if (e == cudaSuccess)
        e = sticky[cur_dev()];
    unlock();
    return e;
}

cudaError_t cudaPeekAtLastError(void)
{
    lock();
    stats.last_error_calls++;
    cudaError_t e = last_error != cudaSuccess ? last_error : sticky[cur_dev()];
    unlock();
    return e;
}

const char *cudaGetErrorName(cudaError_t e)
{
    switch (e) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
    case cudaErrorNoDevice: return "cudaErrorNoDevice";
    case cudaErrorInvalidResourceHandle: return "cudaErrorInvalidResourceHandle";
    case cudaErrorIllegalAddress: return "cudaErrorIllegalAddress";
    case cudaErrorLaunchFailure: return "cudaErrorLaunchFailure";
    case cudaErrorHostMemoryAlreadyRegistered: return "cudaErrorHostMemoryAlreadyRegistered";
    case cudaErrorHostMemoryNotRegistered: return "cudaErrorHostMemoryNotRegistered";
    case cudaErrorNotSupported: return "cudaErrorNotSupported";
    case cudaErrorStreamCaptureUnsupported: return "cudaErrorStreamCaptureUnsupported";
    default: return "cudaErrorUnknown";
    }
}

const char *cudaGetErrorString(cudaError_t e)
{
    switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInvalidDevice: return "invalid device ordinal";
    case cudaErrorNoDevice: return "no CUDA-capable device is detected";
    case cudaErrorInvalidResourceHandle: return "invalid resource handle";
    case cudaErrorIllegalAddress: return "an illegal memory access was encountered";
    case cudaErrorLaunchFailure: return "unspecified launch failure";
    case cudaErrorHostMemoryAlreadyRegistered:
        return "part or all of the requested memory range is already mapped";
    case cudaErrorHostMemoryNotRegistered:
        return "pointer does not correspond to a registered memory region";
    case cudaErrorNotSupported: return "operation not supported";
    case cudaErrorStreamCaptureUnsupported:
        return "operation not permitted when stream is capturing";
    default: return "unrecognized error code";
    }
}

/* ---- device memory ---- */

/* The memory of `device` (TRESTLE_CUDAMOCK_DEVICE_BYTES="B0,B1,...", read at
 * each call; a device not listed, or 0, is unbounded). */
static uint64_t device_capacity(int device)
{
    const char *e = getenv("TRESTLE_CUDAMOCK_DEVICE_BYTES");
    for (int d = 0; e && *e; d++) {
        char *end;
        unsigned long long v = strtoull(e, &end, 10);
        if (d == device)
            return v;
        e = *end == ',' ? end + 1 : NULL;
    }
    return 0;
}

static cudaError_t dev_alloc_new(void **p, size_t size, int device)
{
    *p = NULL;
    if (size == 0)
        return cudaSuccess;
    uint64_t cap = device_capacity(device), used = 0;
    for (size_t i = 0; cap && i < nallocs; i++)
        if (allocs[i].device == device)
            used += allocs[i].size;
    if (cap && (size > cap || used > cap - size))
        return cudaErrorMemoryAllocation; /* a full GPU: no memory is touched */
    size_t page = (size_t)sysconf(_SC_PAGESIZE), mapped = (size + page - 1) / page * page;
    int fd = memfd_create("cudamock", MFD_CLOEXEC);
    if (fd < 0)
        return cudaErrorMemoryAllocation;
    void *alias = MAP_FAILED, *dev = MAP_FAILED;
    if (ftruncate(fd, (off_t)mapped) == 0) {
        alias = mmap(NULL, mapped, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        dev = mmap(NULL, mapped, PROT_NONE, MAP_SHARED, fd, 0);
    }
    close(fd);
    if (alias == MAP_FAILED || dev == MAP_FAILED) {
        if (alias != MAP_FAILED)
            munmap(alias, mapped);
        if (dev != MAP_FAILED)
            munmap(dev, mapped);
        return cudaErrorMemoryAllocation;
    }
    /* Fresh device memory is not zero on a GPU: make sure nobody relies on it. */
    memset(alias, 0xCD, size);
    if (nallocs == cap_allocs) {
        size_t ncap = cap_allocs ? cap_allocs * 2 : 16;
        dev_alloc *na = realloc(allocs, ncap * sizeof *na);
        if (!na)
            die("out of memory");
        allocs = na;
        cap_allocs = ncap;
    }
    allocs[nallocs++] = (dev_alloc){ dev, alias, size, mapped, device, false,
                                     CUDAMOCK_ACCESS_READ | CUDAMOCK_ACCESS_WRITE };
    stats.mallocs++;
    stats.device_bytes_live += size;
    *p = dev;
    return cudaSuccess;
}

cudaError_t cudaMalloc(void **p, size_t size)
{
    lock();
    int d = need_ctx();
    stats.implicit_syncs++; /* a device allocation between two streams' work orders them */
    cudaError_t e = armed_for("cudaMalloc", NULL);
    if (e == cudaSuccess)
        e = sticky[d];
    if (e == cudaSuccess)
        e = dev_alloc_new(p, size, d);
    return unlock_ret(e);
}

cudaError_t cudaMallocAsync(void **p, size_t size, cudaStream_t stream)
{
    lock();
    struct CUstream_st *s = resolve(stream);
    cudaError_t e = armed_for("cudaMallocAsync", NULL);
    if (e == cudaSuccess)
        e = sticky[s->device];
    if (e == cudaSuccess)
        e = dev_alloc_new(p, size, s->device);
    return unlock_ret(e);
}

static void free_alloc(size_t i)
{
    munmap(allocs[i].dev, allocs[i].mapped);
    munmap(allocs[i].alias, allocs[i].mapped);
    stats.device_bytes_live -= allocs[i].size;
    allocs[i] = allocs[--nallocs];
}

cudaError_t cudaFree(void *p)
{
    if (!p)
        return cudaSuccess;
    lock();
    size_t i = 0;
    while (i < nallocs && allocs[i].dev != p)
        i++;
    if (i == nallocs || allocs[i].vmm) /* a VMM range is cuMemUnmap's */
        return unlock_ret(cudaErrorInvalidValue);
    /* cudaFree synchronises the whole device: queued work finishes first,
     * the caller's unrelated kernels too. */
    stats.implicit_syncs++;
    run_all(-1, false);
    free_alloc(i);
    return unlock_ret(cudaSuccess);
}

/* Stream-ordered: the memory goes when the stream reaches the free. */
cudaError_t cudaFreeAsync(void *p, cudaStream_t stream)
{
    if (!p)
        return cudaSuccess;
    lock();
    struct CUstream_st *s = resolve(stream);
    cudaError_t e = armed_for("cudaFreeAsync", NULL);
    size_t i = 0;
    while (e == cudaSuccess && i < nallocs && allocs[i].dev != p)
        i++;
    if (e == cudaSuccess && i == nallocs)
        e = cudaErrorInvalidValue;
    if (e != cudaSuccess)
        return unlock_ret(e);
    mop o = { .kind = OP_FREE, .dst = p, .what = "cudaFreeAsync" };
    push(s, &o);
    return unlock_ret(cudaSuccess);
}

/* ---- pinned host memory ---- */

static cudaError_t host_add(void *p, size_t size, bool mapped, bool owned)
{
    for (size_t i = 0; i < nhosts; i++)
        if (overlaps(p, size, hosts[i].base, hosts[i].size))
            return cudaErrorHostMemoryAlreadyRegistered;
    if (nhosts == cap_hosts) {
        size_t ncap = cap_hosts ? cap_hosts * 2 : 8;
        host_range *nh = realloc(hosts, ncap * sizeof *nh);
        if (!nh)
            die("out of memory");
        hosts = nh;
        cap_hosts = ncap;
    }
    uint8_t *dev = host_pointers ? p : (uint8_t *)p + DEV_VIEW_OFFSET;
    hosts[nhosts++] = (host_range){ p, dev, size, mapped, owned };
    return cudaSuccess;
}

static cudaError_t host_remove(void *p, bool owned)
{
    size_t i = 0;
    while (i < nhosts && (hosts[i].base != p || hosts[i].owned != owned))
        i++;
    if (i == nhosts)
        return owned ? cudaErrorInvalidValue : cudaErrorHostMemoryNotRegistered;
    if (queued_uses(hosts[i].base, hosts[i].size))
        die("%s(%p) while queued work still uses that memory",
            owned ? "cudaFreeHost" : "cudaHostUnregister", p);
    if (owned)
        free(p);
    hosts[i] = hosts[--nhosts];
    return cudaSuccess;
}

cudaError_t cudaHostRegister(void *p, size_t size, unsigned int flags)
{
    lock();
    need_ctx();
    stats.implicit_syncs++; /* page-locking host memory orders the streams' work */
    cudaError_t e = armed_for("cudaHostRegister", NULL);
    if (e == cudaSuccess && (!p || size == 0))
        e = cudaErrorInvalidValue;
    if (e == cudaSuccess)
        e = host_add(p, size, (flags & cudaHostRegisterMapped) != 0, false);
    if (e == cudaSuccess) {
        stats.host_registered_live++;
        stats.host_registers++;
    }
    return unlock_ret(e);
}

cudaError_t cudaHostUnregister(void *p)
{
    lock();
    need_ctx();
    stats.implicit_syncs++;
    cudaError_t e = host_remove(p, false);
    if (e == cudaSuccess)
        stats.host_registered_live--;
    return unlock_ret(e);
}

cudaError_t cudaHostAlloc(void **p, size_t size, unsigned int flags)
{
    (void)flags; /* unified addressing: every cudaHostAlloc block is mapped */
    lock();
    need_ctx();
    stats.implicit_syncs++;
    cudaError_t e = armed_for("cudaHostAlloc", NULL);
    *p = NULL;
    if (e == cudaSuccess && !(*p = aligned_alloc(4096, (size + 4095) / 4096 * 4096 + 4096)))
        e = cudaErrorMemoryAllocation;
    if (e == cudaSuccess)
        e = host_add(*p, size ? size : 1, true, true);
    if (e == cudaSuccess)
        stats.host_allocs_live++;
    return unlock_ret(e);
}

cudaError_t cudaMallocHost(void **p, size_t size)
{
    return cudaHostAlloc(p, size, cudaHostAllocDefault);
}

cudaError_t cudaFreeHost(void *p)
{
    if (!p)
        return cudaSuccess;
    lock();
    stats.implicit_syncs++; /* cudaFreeHost synchronises the device */
    run_all(-1, false);
    cudaError_t e = host_remove(p, true);
    if (e == cudaSuccess)
        stats.host_allocs_live--;
    return unlock_ret(e);
}

cudaError_t cudaPointerGetAttributes(struct cudaPointerAttributes *a, const void *p)
{
    lock();
    /* A runtime call, and the runtime makes a context current for it in a
     * thread that has none (the driver's cuPointerGetAttribute does not). */
    need_ctx();
    memset(a, 0, sizeof *a);
    dev_alloc *d = find_dev(p, 1);
    host_range *h = d ? NULL : find_host(p, 1);
    if (d) {
        a->type = cudaMemoryTypeDevice;
        a->device = d->device;
        a->devicePointer = (void *)p;
    } else if (h) {
        a->type = cudaMemoryTypeHost;
        a->device = cur_dev();
        a->devicePointer = h->mapped ? h->dev + ((const uint8_t *)p - h->base) : NULL;
        a->hostPointer = (void *)p;
    } else {
        a->type = cudaMemoryTypeUnregistered;
        a->device = -2;
        a->hostPointer = (void *)p;
    }
    return unlock_ret(cudaSuccess);
}

/* ---- streams and events ---- */

cudaError_t cudaStreamCreateWithFlags(cudaStream_t *out, unsigned int flags)
{
    lock();
    int d = need_ctx();
    cudaError_t e = armed_for("cudaStreamCreateWithFlags", NULL);
    if (e == cudaSuccess)
        e = sticky[d];
    if (e != cudaSuccess)
        return unlock_ret(e);
    struct CUstream_st *s = calloc(1, sizeof *s);
    if (!s)
        return unlock_ret(cudaErrorMemoryAllocation);
    s->magic = MAGIC_STREAM;
    s->device = d;
    s->flags = flags;
    s->next = streams;
    streams = s;
    stats.streams_live++;
    stats.streams_created++;
    *out = s;
    return unlock_ret(cudaSuccess);
}

cudaError_t cudaStreamCreate(cudaStream_t *out)
{
    return cudaStreamCreateWithFlags(out, cudaStreamDefault);
}

cudaError_t cudaStreamDestroy(cudaStream_t stream)
{
    lock();
    struct CUstream_st *s = resolve(stream);
    if (s->legacy)
        return unlock_ret(cudaErrorInvalidResourceHandle);
    for (struct CUstream_st **pp = &streams; *pp; pp = &(*pp)->next)
        if (*pp == s) {
            *pp = s->next;
            break;
        }
    stats.streams_live--;
    if (s->done < s->enq) {
        /* As on a GPU, the call does not wait: queued work still runs,
         * later, and still reads and writes its memory. */
        stats.ops_pending_at_destroy += pending_on(s);
        s->magic = MAGIC_ZOMBIE;
        s->zombie = true;
        s->next = zombies;
        zombies = s;
        return unlock_ret(cudaSuccess);
    }
    forget(s, NULL);
    s->magic = 0;
    free(s->q);
    free(s);
    return unlock_ret(cudaSuccess);
}

cudaError_t cudaStreamSynchronize(cudaStream_t stream)
{
    lock();
    struct CUstream_st *s = resolve(stream);
    cudaError_t e = armed_for("cudaStreamSynchronize", NULL);
    stats.stream_syncs++;
    run_stream(s, s->enq);
    run_late();
    if (e == cudaSuccess)
        e = sticky[s->device];
    return unlock_ret(e);
}

cudaError_t cudaEventCreateWithFlags(cudaEvent_t *out, unsigned int flags)
{
    lock();
    int d = need_ctx();
    cudaError_t e = armed_for("cudaEventCreateWithFlags", NULL);
    if (e != cudaSuccess)
        return unlock_ret(e);
    struct CUevent_st *ev = calloc(1, sizeof *ev);
    if (!ev)
        return unlock_ret(cudaErrorMemoryAllocation);
    ev->magic = MAGIC_EVENT;
    ev->device = d;
    ev->flags = flags;
    ev->next = events;
    events = ev;
    stats.events_live++;
    stats.events_created++;
    *out = ev;
    return unlock_ret(cudaSuccess);
}

cudaError_t cudaEventCreate(cudaEvent_t *out)
{
    return cudaEventCreateWithFlags(out, cudaEventDefault);
}

cudaError_t cudaEventDestroy(cudaEvent_t ev)
{
    lock();
    if (!ev || ev->magic != MAGIC_EVENT)
        die("cudaEventDestroy(%p): not a live event", (void *)ev);
    for (struct CUevent_st **pp = &events; *pp; pp = &(*pp)->next)
        if (*pp == ev) {
            *pp = ev->next;
            break;
        }
    forget(NULL, ev); /* a record still queued stamps nothing now */
    ev->magic = 0;
    free(ev);
    stats.events_live--;
    return unlock_ret(cudaSuccess);
}

cudaError_t cudaEventRecord(cudaEvent_t ev, cudaStream_t stream)
{
    lock();
    if (!ev || ev->magic != MAGIC_EVENT)
        die("cudaEventRecord(%p): not a live event", (void *)ev);
    struct CUstream_st *s = resolve(stream);
    cudaError_t e = armed_for("cudaEventRecord", NULL);
    if (e == cudaSuccess && s->device != ev->device)
        e = cudaErrorInvalidResourceHandle; /* as the runtime: event and stream share a device */
    if (e != cudaSuccess)
        return unlock_ret(e);
    if (s->capturing)
        return unlock_ret(cudaErrorStreamCaptureUnsupported);
    if (s->legacy) {
        /* The legacy stream's implicit synchronisation: the event
         * completes after what the blocking streams hold now too. */
        mop w = { .kind = OP_WAIT, .what = "cudaEventRecord" };
        push(s, &w);
    }
    ev->gen++;
    ev->recorded = true;
    if (s->done == s->enq) {
        ev->ts_ns = now_ns(); /* nothing queued before it: complete now */
    } else {
        mop st = { .kind = OP_STAMP, .ev = ev, .gen = ev->gen, .what = "cudaEventRecord" };
        push_raw(s, &st);
    }
    ev->s = s;
    ev->seq = s->enq;
    ev->queries = 0;
    return unlock_ret(cudaSuccess);
}

/* A host thread blocked on ev: it yields its core only when ev was made
 * with cudaEventBlockingSync; else it spins (the default schedule). */
cudaError_t cudaEventSynchronize(cudaEvent_t ev)
{
    lock();
    if (!ev || ev->magic != MAGIC_EVENT)
        die("cudaEventSynchronize(%p): not a live event", (void *)ev);
    cudaError_t e = armed_for("cudaEventSynchronize", NULL);
    stats.event_syncs++;
    syncs_since_enqueue++;
    if (!(ev->flags & cudaEventBlockingSync))
        stats.spinning_event_syncs++;
    if (ev->s)
        run_stream(ev->s, ev->seq);
    run_late();
    if (e == cudaSuccess)
        e = sticky[ev->device];
    unlock();
    /* TRESTLE_CUDAMOCK_SYNC_DELAY_US: a wait that takes a while, as a DMA
     * of a few MiB does, during which other threads go on. */
    const char *d = getenv("TRESTLE_CUDAMOCK_SYNC_DELAY_US");
    if (d && atol(d) > 0) {
        struct timespec t = { atol(d) / 1000000, atol(d) % 1000000 * 1000 };
        nanosleep(&t, NULL);
    }
    return ret(e);
}

/* The time between two completed events, each stamped when its stream ran
 * past it; both must have been made with timing on. */
cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t start, cudaEvent_t end)
{
    lock();
    if (!start || start->magic != MAGIC_EVENT || !end || end->magic != MAGIC_EVENT)
        die("cudaEventElapsedTime(%p, %p): not live events", (void *)start, (void *)end);
    cudaError_t e = armed_for("cudaEventElapsedTime", NULL);
    if (e == cudaSuccess && ((start->flags | end->flags) & cudaEventDisableTiming))
        e = cudaErrorInvalidResourceHandle;
    if (e == cudaSuccess && (!start->recorded || !end->recorded))
        e = cudaErrorInvalidResourceHandle;
    if (e == cudaSuccess && start->device != end->device)
        e = cudaErrorInvalidResourceHandle;
    if (e == cudaSuccess && ((start->s && start->s->done < start->seq) ||
                             (end->s && end->s->done < end->seq)))
        e = cudaErrorNotReady;
    if (e == cudaSuccess)
        *ms = (float)((double)(end->ts_ns - start->ts_ns) / 1e6);
    return unlock_ret(e);
}

/* Not ready until something ran the work, except that every third query
 * (TRESTLE_CUDAMOCK_QUERY_DONE) of an incomplete event finds it done: the copies finished while the host
 * did other work. Both answers get exercised, and so does a wait after
 * "not ready" (the engine polls, then waits on a later, second query). */
cudaError_t cudaEventQuery(cudaEvent_t ev)
{
    lock();
    if (!ev || ev->magic != MAGIC_EVENT)
        die("cudaEventQuery(%p): not a live event", (void *)ev);
    stats.event_queries++;
    cudaError_t e = armed_for("cudaEventQuery", NULL);
    if (e != cudaSuccess)
        return unlock_ret(e);
    if (ev->s && ev->s->done < ev->seq) {
        /* TRESTLE_CUDAMOCK_QUERY_DONE=N: every N-th query finds it done
         * (default 3; 0: only a wait completes an event). */
        const char *every = getenv("TRESTLE_CUDAMOCK_QUERY_DONE");
        unsigned n = every ? (unsigned)atoi(every) : 3;
        if (n == 0 || ++ev->queries % n != 0)
            return unlock_ret(cudaErrorNotReady);
        run_stream(ev->s, ev->seq);
    }
    return unlock_ret(sticky[ev->device]);
}

cudaError_t cudaStreamWaitEvent(cudaStream_t stream, cudaEvent_t ev, unsigned int flags)
{
    (void)flags;
    lock();
    if (!ev || ev->magic != MAGIC_EVENT)
        die("cudaStreamWaitEvent(%p): not a live event", (void *)ev);
    struct CUstream_st *s = resolve(stream);
    cudaError_t e = armed_for("cudaStreamWaitEvent", NULL);
    if (e != cudaSuccess)
        return unlock_ret(e);
    mop o = { .kind = OP_WAIT, .wait_s = ev->s, .wait_seq = ev->seq,
              .what = "cudaStreamWaitEvent" };
    push(s, &o);
    return unlock_ret(cudaSuccess);
}

/* ---- copies ---- */

/*
 * Whether fn may queue work on s: the armed synchronous failure, else the
 * device's sticky error, else cudaSuccess. An armed asynchronous failure
 * goes to *later, for the queued op to meet when it runs.
 */
static cudaError_t admit(const char *fn, const struct CUstream_st *s, cudaError_t *later)
{
    bool async;
    cudaError_t e = armed_for(fn, &async);
    *later = async ? e : cudaSuccess;
    if (e != cudaSuccess && !async)
        return e;
    return sticky[s->device];
}

/* A copy of the n bytes at p, which the queued op checks when it runs. */
static void *snapshot_of(const void *p, size_t n)
{
    void *copy = malloc(n ? n : 1);
    if (!copy)
        die("out of memory");
    memcpy(copy, p, n);
    return copy;
}

/* Queue a copy or memset on s, checking what a GPU would fault on. */
static cudaError_t enqueue_copy(const char *fn, struct CUstream_st *s, void *dst, const void *src,
                                size_t n, enum cudaMemcpyKind dir)
{
    cudaError_t e; /* an armed failure for the op to meet when it runs */
    cudaError_t refused = admit(fn, s, &e);
    if (refused != cudaSuccess)
        return refused;
    if (n == 0)
        return cudaSuccess;
    dev_alloc *dd = find_dev(dst, n), *sd = find_dev(src, n);
    if (dir == cudaMemcpyDefault)
        dir = dd ? (sd ? cudaMemcpyDeviceToDevice : cudaMemcpyHostToDevice)
                 : (sd ? cudaMemcpyDeviceToHost : cudaMemcpyHostToHost);
    if ((dir == cudaMemcpyHostToDevice || dir == cudaMemcpyDeviceToDevice) && !dd)
        return cudaErrorInvalidValue;
    if ((dir == cudaMemcpyDeviceToHost || dir == cudaMemcpyDeviceToDevice) && !sd)
        return cudaErrorInvalidValue;
    if ((dir == cudaMemcpyHostToDevice || dir == cudaMemcpyHostToHost) && sd)
        return cudaErrorInvalidValue;
    if (dd && dd->device != s->device)
        die("%s writes memory of device %d on a stream of device %d", fn, dd->device, s->device);
    mop o = { .kind = OP_COPY, .dst = dst, .src = src, .n = n, .dir = dir, .fail = e,
              .what = fn };
    if (dir == cudaMemcpyHostToDevice) {
        /* Pageable sources are staged by the runtime before the call
         * returns; pinned ones are read by the DMA engine when the copy
         * runs, so the snapshot is what the caller promised not to touch. */
        o.snapshot = snapshot_of(src, n);
        if (find_host(src, n)) {
            stats.h2d_pinned_copies++;
            stats.h2d_pinned_bytes += n;
        } else {
            stats.h2d_pageable_copies++;
            o.src = o.snapshot; /* staged: the caller may reuse src at once */
        }
    }
    push(s, &o);
    /* A copy into pageable host memory returns only when it is done. */
    if (dir == cudaMemcpyDeviceToHost && !find_host(dst, n))
        run_stream(s, s->enq);
    return cudaSuccess;
}

cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t n, enum cudaMemcpyKind kind,
                            cudaStream_t stream)
{
    lock();
    stats.memcpy_async_calls++;
    return unlock_ret(enqueue_copy("cudaMemcpyAsync", resolve(stream), dst, src, n, kind));
}

/* As the runtime: attributes for every copy (the first index 0), stream
 * order for sources the stream may still be writing, no legacy stream. */
cudaError_t cudaMemcpyBatchAsync(void *const *dsts, const void *const *srcs, const size_t *sizes,
                                 size_t count, struct cudaMemcpyAttributes *attrs,
                                 size_t *attrs_idxs, size_t num_attrs, cudaStream_t stream)
{
    lock();
    struct CUstream_st *s = resolve(stream);
    stats.batch_calls++;
    if (s->legacy || count == 0 || num_attrs == 0 || num_attrs > count || attrs_idxs[0] != 0)
        return unlock_ret(cudaErrorInvalidValue);
    for (size_t k = 0; k < num_attrs; k++)
        if (attrs[k].srcAccessOrder != cudaMemcpySrcAccessOrderStream &&
            attrs[k].srcAccessOrder != cudaMemcpySrcAccessOrderDuringApiCall &&
            attrs[k].srcAccessOrder != cudaMemcpySrcAccessOrderAny)
            return unlock_ret(cudaErrorInvalidValue);
    cudaError_t e = cudaSuccess;
    for (size_t i = 0; i < count && e == cudaSuccess; i++)
        e = enqueue_copy("cudaMemcpyBatchAsync", s, dsts[i], srcs[i], sizes[i], cudaMemcpyDefault);
    return unlock_ret(e);
}

cudaError_t cudaMemcpy(void *dst, const void *src, size_t n, enum cudaMemcpyKind kind)
{
    lock();
    /* The legacy stream of the device that owns the device side. */
    dev_alloc *d = find_dev(kind == cudaMemcpyDeviceToHost ? src : dst, n);
    struct CUstream_st *s = &legacy[d ? d->device : need_ctx()];
    cudaError_t e = enqueue_copy("cudaMemcpy", s, dst, src, n, kind);
    run_late();
    if (e == cudaSuccess)
        e = sticky[s->device];
    return unlock_ret(e);
}

static cudaError_t enqueue_memset(const char *fn, struct CUstream_st *s, void *p, int value,
                                  size_t n)
{
    cudaError_t e; /* an armed failure for the op to meet when it runs */
    cudaError_t refused = admit(fn, s, &e);
    if (refused != cudaSuccess)
        return refused;
    if (n == 0)
        return cudaSuccess;
    dev_alloc *d = find_dev(p, n);
    if (!d)
        return cudaErrorInvalidValue;
    if (d->device != s->device)
        die("%s writes memory of device %d on a stream of device %d", fn, d->device, s->device);
    mop o = { .kind = OP_MEMSET, .dst = p, .n = n, .value = value, .fail = e, .what = fn };
    push(s, &o);
    return cudaSuccess;
}

cudaError_t cudaMemsetAsync(void *p, int value, size_t n, cudaStream_t stream)
{
    lock();
    return unlock_ret(enqueue_memset("cudaMemsetAsync", resolve(stream), p, value, n));
}

cudaError_t cudaMemset(void *p, int value, size_t n)
{
    lock();
    dev_alloc *d = find_dev(p, n);
    struct CUstream_st *s = &legacy[d ? d->device : need_ctx()];
    return unlock_ret(enqueue_memset("cudaMemset", s, p, value, n));
}

/* ---- the kernels of kernels/trestle_kernels.h ---- */

/* A kernel's source: device memory of its device, or pinned memory the
 * device can map; anything else is an illegal address on a GPU. */
static void check_kernel_src(const char *fn, struct CUstream_st *s, const void *src, size_t n)
{
    dev_alloc *d = find_dev(src, n);
    host_range *h = d ? NULL : find_host_dev_view(src, n);
    if (d && d->device != s->device)
        die("%s reads memory of device %d on a stream of device %d", fn, d->device, s->device);
    if (!d)
        stats.kernel_host_reads++;
    if (!d && !h) {
        h = find_host(src, n);
        if (h && h->mapped)
            die("%s reads pinned memory through its host address %p, which this device cannot "
                "use (cudaDevAttrCanUseHostPointerForRegisteredMem is 0): pass the address "
                "cudaHostGetDevicePointer gives", fn, src);
        die("%s reads %zu bytes at %p, host memory that is not pinned and mapped", fn, n, src);
    }
}

/* A kernel launched into a stream of another device than the current one
 * fails to launch, as on a GPU (copies do not care). */
static cudaError_t check_launch_device(const struct CUstream_st *s)
{
    return s->device == cur_dev() ? cudaSuccess : cudaErrorInvalidResourceHandle;
}

int trestle__k_scatter(void *dst, const void *src, const trestle__k_layout *l, uint64_t lo,
                       uint64_t n, void *stream)
{
    lock();
    struct CUstream_st *s = resolve((cudaStream_t)stream);
    cudaError_t e; /* an armed failure for the op to meet when it runs */
    cudaError_t refused = admit("trestle__k_scatter", s, &e);
    if (refused == cudaSuccess)
        refused = check_launch_device(s);
    if (refused != cudaSuccess)
        return (int)unlock_ret(refused);
    if (l->k < 0 || l->k > TRESTLE__K_MAX_RANK)
        return (int)unlock_ret(cudaErrorInvalidValue);
    mop o = { .kind = OP_SCATTER, .dst = dst, .src = src, .n = (size_t)n, .l = *l, .lo = lo,
              .fail = e, .what = "slice scatter kernel" };
    /* As the real launcher: a window that holds no run's bytes enqueues nothing. */
    if (n == 0 || scatter_runs(&o, false) == 0)
        return (int)unlock_ret(cudaSuccess);
    stats.kernels++;
    check_kernel_src("trestle__k_scatter", s, src, (size_t)n);
    if (!find_dev(src, (size_t)n))
        o.snapshot = snapshot_of(host_view(src, (size_t)n), (size_t)n);
    push(s, &o);
    return (int)unlock_ret(cudaSuccess);
}

int trestle__k_convert(void *dst, int dst_dtype, const void *src, int src_dtype, uint64_t count,
                       void *stream)
{
    if (!trestle__convert_supported(dst_dtype, src_dtype))
        return (int)ret(cudaErrorInvalidValue);
    lock();
    struct CUstream_st *s = resolve((cudaStream_t)stream);
    cudaError_t e; /* an armed failure for the op to meet when it runs */
    cudaError_t refused = admit("trestle__k_convert", s, &e);
    if (refused == cudaSuccess)
        refused = check_launch_device(s);
    if (refused != cudaSuccess)
        return (int)unlock_ret(refused);
    size_t n = (size_t)count * trestle_dtype_size(src_dtype);
    if (count == 0)
        return (int)unlock_ret(cudaSuccess);
    stats.kernels++;
    check_kernel_src("trestle__k_convert", s, src, n);
    mop o = { .kind = OP_CONVERT, .dst = dst, .src = src, .n = n, .dt_dst = dst_dtype,
              .dt_src = src_dtype, .count = count, .fail = e, .what = "convert kernel" };
    if (!find_dev(src, n))
        o.snapshot = snapshot_of(host_view(src, n), n);
    push(s, &o);
    return (int)unlock_ret(cudaSuccess);
}

/* ---- contexts and device properties ---- */

static CUresult CUDAAPI mock_ctx_get_current(CUcontext *out)
{
    lock();
    *out = (CUcontext)ctx_current;
    unlock();
    return CUDA_SUCCESS;
}

static CUresult CUDAAPI mock_ctx_set_current(CUcontext c)
{
    lock();
    struct CUctx_st *x = (struct CUctx_st *)c;
    if (x && x->magic != MAGIC_CTX)
        die("cuCtxSetCurrent(%p): not a live context", (void *)c);
    ctx_current = x;
    if (x)
        thread_device = x->device;
    unlock();
    return CUDA_SUCCESS;
}

/* The driver's view of a pointer: no context needed, none made. */
static CUresult CUDAAPI mock_pointer_get_attribute(void *data, CUpointer_attribute attr,
                                                   CUdeviceptr ptr)
{
    lock();
    const void *p = (const void *)(uintptr_t)ptr;
    dev_alloc *d = find_dev(p, 1);
    host_range *h = d ? NULL : find_host(p, 1);
    CUresult r = d || h ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE;
    if (r == CUDA_SUCCESS) {
        switch (attr) {
        case CU_POINTER_ATTRIBUTE_MEMORY_TYPE:
            *(unsigned int *)data = d ? CU_MEMORYTYPE_DEVICE : CU_MEMORYTYPE_HOST;
            break;
        case CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL:
            *(int *)data = d ? d->device : cur_dev();
            break;
        case CU_POINTER_ATTRIBUTE_IS_MANAGED:
            *(unsigned int *)data = 0;
            break;
        default:
            r = CUDA_ERROR_INVALID_VALUE;
        }
    }
    unlock();
    return r;
}

cudaError_t cudaGetDriverEntryPointByVersion(const char *symbol, void **fn, unsigned int version,
                                             unsigned long long flags,
                                             enum cudaDriverEntryPointQueryResult *status)
{
    (void)version;
    (void)flags;
    lock();
    cudaError_t e = armed_for("cudaGetDriverEntryPointByVersion", NULL);
    unlock();
    *fn = NULL;
    if (e == cudaSuccess && strcmp(symbol, "cuCtxGetCurrent") == 0)
        *fn = (void *)mock_ctx_get_current;
    else if (e == cudaSuccess && strcmp(symbol, "cuCtxSetCurrent") == 0)
        *fn = (void *)mock_ctx_set_current;
    else if (e == cudaSuccess && strcmp(symbol, "cuPointerGetAttribute") == 0)
        *fn = (void *)mock_pointer_get_attribute;
    else if (e == cudaSuccess)
        *fn = cudamock__vmm_entry(symbol);
    if (status)
        *status = *fn ? cudaDriverEntryPointSuccess : cudaDriverEntryPointSymbolNotFound;
    return ret(e);
}

cudaError_t cudaDeviceGetAttribute(int *value, enum cudaDeviceAttr attr, int device)
{
    lock();
    cudaError_t e = device < 0 || device >= ndevices ? cudaErrorInvalidDevice : cudaSuccess;
    *value = 0;
    if (e == cudaSuccess && attr == cudaDevAttrCanUseHostPointerForRegisteredMem)
        *value = host_pointers;
    else if (e == cudaSuccess && attr == cudaDevAttrUnifiedAddressing)
        *value = 1;
    return unlock_ret(e);
}

cudaError_t cudaHostGetDevicePointer(void **dev, void *host, unsigned int flags)
{
    lock();
    need_ctx();
    host_range *h = flags == 0 ? find_host(host, 1) : NULL;
    *dev = h && h->mapped ? h->dev + ((uint8_t *)host - h->base) : NULL;
    return unlock_ret(*dev ? cudaSuccess : cudaErrorInvalidValue);
}

cudaError_t cudaStreamGetDevice(cudaStream_t stream, int *device)
{
    lock();
    *device = resolve(stream)->device;
    return unlock_ret(cudaSuccess);
}

cudaError_t cudaStreamIsCapturing(cudaStream_t stream, enum cudaStreamCaptureStatus *status)
{
    lock();
    *status = resolve(stream)->capturing ? cudaStreamCaptureStatusActive
                                         : cudaStreamCaptureStatusNone;
    return unlock_ret(cudaSuccess);
}

/* ---- test controls ---- */

void cudamock_set_capturing(void *stream, int on)
{
    lock();
    resolve((cudaStream_t)stream)->capturing = on != 0;
    unlock();
}

void *cudamock_ctx_create(int device)
{
    struct CUctx_st *c = calloc(1, sizeof *c);
    if (!c)
        die("out of memory");
    c->magic = MAGIC_CTX;
    c->device = device;
    return c;
}

int cudamock_has_primary(int device)
{
    lock();
    int made = device >= 0 && device < CUDAMOCK_MAX_DEVICES && primary[device].magic == MAGIC_CTX;
    unlock();
    return made;
}

void cudamock_get_stats(cudamock_stats *out)
{
    lock();
    *out = stats;
    unlock();
}

static void arm(int k, const char *fn, unsigned nth, int err, int async)
{
    snprintf(armed[k].fn, sizeof armed[k].fn, "%s", fn);
    armed[k].nth = nth;
    armed[k].err = (cudaError_t)err;
    armed[k].async = async != 0;
}

void cudamock_fail(const char *fn, unsigned nth, int err, int async)
{
    lock();
    memset(armed, 0, sizeof armed);
    arm(0, fn, nth, err, async);
    unlock();
}

void cudamock_fail_more(const char *fn, unsigned nth, int err, int async)
{
    lock();
    int k = 0;
    while (k < ARMED_MAX && armed[k].nth != 0)
        k++;
    if (k == ARMED_MAX)
        die("cudamock_fail_more: %d failures are armed already", ARMED_MAX);
    arm(k, fn, nth, err, async);
    unlock();
}

void cudamock_reset(void)
{
    lock();
    memset(armed, 0, sizeof armed);
    memset(sticky, 0, sizeof sticky);
    unlock();
    last_error = cudaSuccess;
}

void cudamock_set_late(int on)
{
    lock();
    late = on != 0;
    unlock();
}

uint64_t cudamock_pending_ops(void)
{
    lock();
    uint64_t n = 0;
    for (struct CUstream_st *s = streams; s; s = s->next)
        n += pending_on(s);
    for (struct CUstream_st *z = zombies; z; z = z->next)
        n += pending_on(z);
    unlock();
    return n;
}

/* TRESTLE_CUDAMOCK_STATS=1: the counters a test of another process (the
 * CLI) reads, on stderr at exit. */
static void print_stats(void)
{
    cudamock_stats st;
    cudamock_get_stats(&st);
    fprintf(stderr, "cudamock: streams_created %" PRIu64 ", events_created %" PRIu64
            ", host_registers %" PRIu64 ", implicit_syncs %" PRIu64 ", mallocs %" PRIu64
            ", ops_pending_at_destroy %" PRIu64 ", event_syncs %" PRIu64
            ", primary_contexts %" PRIu64 ", vmm_creates %" PRIu64 ", vmm_exports %" PRIu64
            ", vmm_imports %" PRIu64 ", vmm_access_faults %" PRIu64 "\n",
            st.streams_created, st.events_created, st.host_registers, st.implicit_syncs,
            st.mallocs, st.ops_pending_at_destroy, st.event_syncs, st.primary_contexts,
            st.vmm_creates, st.vmm_exports, st.vmm_imports, st.vmm_access_faults);
}

/* ---- PCI identity ---- */

/*
 * Device d sits at "0000:%02X:00.0" with bus 0x1B + 0x20 * d (distinct,
 * and in uppercase hex as the real runtime writes it, while sysfs names
 * are lowercase), or at the d-th comma-separated entry of
 * TRESTLE_CUDAMOCK_PCI_BUS_IDS, copied verbatim (garbage included) so a
 * test can move devices around; a list too short for d gives the default.
 * The variable is read at each call, so a test may set it at any time.
 * Like the runtime, the id is cut to fit len bytes with its terminator.
 */
cudaError_t cudaDeviceGetPCIBusId(char *pciBusId, int len, int device)
{
    lock();
    cudaError_t e = armed_for("cudaDeviceGetPCIBusId", NULL);
    if (e == cudaSuccess && (device < 0 || device >= ndevices))
        e = ndevices == 0 ? cudaErrorNoDevice : cudaErrorInvalidDevice;
    if (e == cudaSuccess && (!pciBusId || len <= 0))
        e = cudaErrorInvalidValue;
    if (e == cudaSuccess) {
        char id[64];
        snprintf(id, sizeof id, "0000:%02X:00.0", 0x1b + 0x20 * device);
        const char *list = getenv("TRESTLE_CUDAMOCK_PCI_BUS_IDS");
        for (int d = 0; list && d < device; d++) {
            list = strchr(list, ',');
            list = list ? list + 1 : NULL;
        }
        if (list)
            snprintf(id, sizeof id, "%.*s", (int)strcspn(list, ","), list);
        snprintf(pciBusId, (size_t)len, "%s", id);
    }
    return unlock_ret(e);
}

/* ---- the hooks of cudamock_vmm.c (cudamock_internal.h) ---- */

void cudamock__lock(void)
{
    lock();
}

void cudamock__unlock(void)
{
    unlock();
}

int cudamock__device_count(void)
{
    return ndevices;
}

int cudamock__device_room(int device, uint64_t bytes, uint64_t vmm_bytes)
{
    uint64_t cap = device_capacity(device), used = vmm_bytes;
    for (size_t i = 0; cap && i < nallocs; i++)
        if (allocs[i].device == device && !allocs[i].vmm)
            used += allocs[i].size;
    return !cap || (bytes <= cap && used <= cap - bytes);
}

cudamock_stats *cudamock__stats(void)
{
    return &stats;
}

void cudamock__vmm_add(void *dev, void *alias, size_t size, int device)
{
    if (nallocs == cap_allocs) {
        size_t ncap = cap_allocs ? cap_allocs * 2 : 16;
        dev_alloc *na = realloc(allocs, ncap * sizeof *na);
        if (!na)
            die("out of memory");
        allocs = na;
        cap_allocs = ncap;
    }
    /* Mapped, not yet accessible: cuMemSetAccess grants that. */
    allocs[nallocs++] = (dev_alloc){ dev, alias, size, size, device, true, 0 };
}

static dev_alloc *vmm_range(const void *dev, size_t size)
{
    for (size_t i = 0; i < nallocs; i++)
        if (allocs[i].vmm && allocs[i].dev == dev && allocs[i].size == size)
            return &allocs[i];
    return NULL;
}

void *cudamock__vmm_remove(void *dev, size_t size)
{
    dev_alloc *a = vmm_range(dev, size);
    if (!a)
        return NULL;
    if (queued_uses(dev, size))
        die("cuMemUnmap(%p, %zu): queued work still uses the range", dev, size);
    void *alias = a->alias;
    *a = allocs[--nallocs];
    return alias;
}

void *cudamock__vmm_alias(void *dev, size_t size)
{
    dev_alloc *a = vmm_range(dev, size);
    return a ? a->alias : NULL;
}

int cudamock__vmm_access(void *dev, size_t size, int device, int access)
{
    dev_alloc *a = vmm_range(dev, size);
    if (!a)
        return -1;
    a->device = device;
    a->access = access;
    return 0;
}
