/*
 * pyplan.c - _trestle.Plan (trestle_plan_create/restore), and handing its
 * engine memory over as an Arena with Buffers and numpy views (pyarena.c).
 *
 * Zero copy: a restore writes every tensor into one engine arena; the plan
 * hands that arena over (trestle_plan_adopt_arena) to an Arena object, and
 * each tensor becomes a Buffer that holds the Arena and exports its bytes
 * through the buffer protocol (host) or DLPack (host or device), or, for
 * numpy on the host, an array over one Buffer of the whole arena
 * (host_arrays). numpy arrays and torch tensors keep their Buffer, and so
 * the arena, alive; the arena is freed when the last of them goes.
 *
 * A restore runs on its own thread while the calling thread, GIL released,
 * wakes every 100 ms to draw progress and to turn Ctrl-C (or an exception
 * from the progress callback) into trestle_restore_cancel() (pywatch.c).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <time.h>

#include "pytrestle.h"

/* ---- Plan ---- */

typedef struct pyt_plan {
    PyObject_HEAD
    trestle_plan *p;
    PyObject *ckpt;         /* the pyt_checkpoint, kept open while the plan lives */
} pyt_plan;

static const char *hold(pyt_held *h, PyObject *s)
{
    PyObject *b;
    if (!PyUnicode_FSConverter(s, &b))
        return NULL;
    if (PyList_Append(h->list, b) < 0) {
        Py_DECREF(b);
        return NULL;
    }
    Py_DECREF(b);
    return PyBytes_AS_STRING(b);
}

/* A list of str as a C array of strings held by `h`. */
int pyt_hold_strings(pyt_held *h, PyObject *seq, const char ***out, size_t *n)
{
    *out = NULL;
    *n = 0;
    if (seq == Py_None)
        return 0;
    PyObject *fast = PySequence_Fast(seq, "expected a list of str");
    if (!fast)
        return -1;
    Py_ssize_t len = PySequence_Fast_GET_SIZE(fast);
    const char **arr = PyMem_Calloc(len ? (size_t)len : 1, sizeof *arr);
    if (!arr) {
        Py_DECREF(fast);
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < len; i++)
        if (!(arr[i] = hold(h, PySequence_Fast_GET_ITEM(fast, i)))) {
            PyMem_Free(arr);
            Py_DECREF(fast);
            return -1;
        }
    Py_DECREF(fast);
    *out = arr;
    *n = (size_t)len;
    return 0;
}

/* ops: None (every tensor) or [(name, shape_and_slices or None, dtype, target_dtype)]. */
int pyt_hold_ops(pyt_held *h, PyObject *seq, trestle_op **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    if (seq == Py_None)
        return 0;
    PyObject *fast = PySequence_Fast(seq, "ops must be a list of tuples");
    if (!fast)
        return -1;
    Py_ssize_t len = PySequence_Fast_GET_SIZE(fast);
    trestle_op *ops = PyMem_Calloc(len ? (size_t)len : 1, sizeof *ops);
    if (!ops) {
        Py_DECREF(fast);
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < len; i++) {
        PyObject *name, *spec;
        int dtype, target;
        if (!PyArg_ParseTuple(PySequence_Fast_GET_ITEM(fast, i), "OOii", &name, &spec, &dtype,
                              &target) ||
            !(ops[i].name = hold(h, name)) ||
            (spec != Py_None && !(ops[i].shape_and_slices = hold(h, spec)))) {
            PyMem_Free(ops);
            Py_DECREF(fast);
            return -1;
        }
        ops[i].dtype = dtype;
        ops[i].target_dtype = target;
        ops[i].dest_kind = TRESTLE_DEST_ALLOCATE;
    }
    Py_DECREF(fast);
    *out = ops;
    *n = (size_t)len;
    return 0;
}

static int plan_init(PyObject *self, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = { "checkpoint", "ops", "renames", "excludes", "allow_missing",
                              "rnn_renames", NULL };
    pyt_plan *pl = (pyt_plan *)self;
    PyObject *ckpt, *ops_obj = Py_None, *ren_obj = Py_None, *exc_obj = Py_None;
    int allow_missing = 0, rnn = 0, rc = -1;
    pyt_held h = { NULL };
    trestle_op *ops = NULL;
    size_t nops = 0;
    trestle_plan_options popt;
    trestle_error err;

    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O!|OOOpp", kwlist, &pyt_checkpoint_type,
                                     &ckpt, &ops_obj, &ren_obj, &exc_obj, &allow_missing, &rnn))
        return -1;
    if (pl->p || !((pyt_checkpoint *)ckpt)->c) {
        PyErr_SetString(PyExc_ValueError, "Plan needs an open checkpoint, once");
        return -1;
    }
    trestle_plan_options_init(&popt);
    if (!(h.list = PyList_New(0)) || pyt_hold_ops(&h, ops_obj, &ops, &nops) < 0 ||
        pyt_hold_strings(&h, ren_obj, (const char ***)&popt.renames, &popt.num_renames) < 0 ||
        pyt_hold_strings(&h, exc_obj, (const char ***)&popt.excludes, &popt.num_excludes) < 0)
        goto out;
    popt.allow_missing = allow_missing;
    popt.tf1_rnn_renames = rnn;
    int prc;
    trestle_checkpoint *c = ((pyt_checkpoint *)ckpt)->c;
    Py_BEGIN_ALLOW_THREADS
    prc = trestle_plan_create(c, ops, nops, &popt, &pl->p, &err);
    Py_END_ALLOW_THREADS
    if (prc != TRESTLE_OK) {
        pyt_raise(prc, &err);
        goto out;
    }
    Py_INCREF(ckpt);
    pl->ckpt = ckpt;
    rc = 0;
out:
    PyMem_Free(ops);
    PyMem_Free((void *)popt.renames);
    PyMem_Free((void *)popt.excludes);
    Py_XDECREF(h.list);
    return rc;
}

static void plan_dealloc(PyObject *self)
{
    pyt_plan *pl = (pyt_plan *)self;
    trestle_plan_free(pl->p);   /* before the checkpoint it was made from */
    Py_XDECREF(pl->ckpt);
    Py_TYPE(self)->tp_free(self);
}

static int plan_check(pyt_plan *pl)
{
    if (pl->p)
        return 0;
    PyErr_SetString(PyExc_ValueError, "Plan is not initialised");
    return -1;
}

PyObject *pyt_op_tuple(const trestle_plan_op_info *op)
{
    PyObject *shape = PyTuple_New(op->skipped ? 0 : op->rank);
    if (!shape)
        return NULL;
    for (int d = 0; !op->skipped && d < op->rank; d++)
        PyTuple_SET_ITEM(shape, d, PyLong_FromLongLong(op->dims[d]));
    return Py_BuildValue("(NNiiiNK)", pyt_str(op->name),
                         op->key ? pyt_str(op->key) : (Py_INCREF(Py_None), Py_None),
                         op->skipped, op->dtype, op->out_dtype, shape,
                         (unsigned long long)op->bytes);
}

/* ops() -> [(name, key or None, skipped, dtype, out_dtype, shape, bytes)]. */
static PyObject *plan_ops(PyObject *self, PyObject *unused)
{
    pyt_plan *pl = (pyt_plan *)self;
    if (plan_check(pl) < 0)
        return NULL;
    size_t n = trestle_plan_op_count(pl->p);
    PyObject *list = PyList_New((Py_ssize_t)n);
    for (size_t i = 0; list && i < n; i++) {
        trestle_plan_op_info op;
        trestle_plan_get_op(pl->p, i, &op);
        PyObject *item = pyt_op_tuple(&op);
        if (!item) {
            Py_CLEAR(list);
            break;
        }
        PyList_SET_ITEM(list, (Py_ssize_t)i, item);
    }
    return list;
}

static PyObject *plan_stats(PyObject *self, PyObject *unused)
{
    trestle_plan_stats s;
    trestle_plan_get_stats(((pyt_plan *)self)->p, &s);
    return Py_BuildValue("{s:n,s:n,s:K,s:K,s:n,s:n}", "ops", (Py_ssize_t)s.ops, "skipped",
                         (Py_ssize_t)s.skipped, "output_bytes",
                         (unsigned long long)s.output_bytes, "read_bytes",
                         (unsigned long long)s.read_bytes, "extents", (Py_ssize_t)s.extents,
                         "batches", (Py_ssize_t)s.batches);
}

/* ---- restore on a thread, progress and cancellation on the caller's ---- */

typedef struct restore_run {
    trestle_plan *p;
    trestle_restore_options opt;
    trestle_stats stats;
    trestle_error err;
    int rc;
    _Atomic uint64_t done_bytes;  /* summed by the ready callback */
} restore_run;

static int count_ready(void *user, size_t i, const trestle_plan_op_info *op)
{
    atomic_fetch_add(&((restore_run *)user)->done_bytes, op->bytes);
    return 0;
}

static void restore_work(void *arg)
{
    restore_run *r = arg;
    r->rc = trestle_restore(r->p, &r->opt, &r->stats, &r->err);
}

static void restore_cancel(void *arg)
{
    trestle_restore_cancel(((restore_run *)arg)->p);
}

static int restore_succeeded(void *arg)
{
    return ((restore_run *)arg)->rc == TRESTLE_OK;
}

static PyObject *stats_dict(const trestle_stats *s)
{
    /* bytes_placed and bytes_mapped bypassed the copy and the read: a
     * stage's rate is over the other bytes (trestle_stats). */
    return Py_BuildValue("{s:K,s:K,s:K,s:K,s:K,s:d,s:d,s:d,s:d,s:d,s:n,s:s,s:O,s:s}",
                         "bytes_read", (unsigned long long)s->bytes_read, "bytes_mapped",
                         (unsigned long long)s->bytes_mapped, "bytes_verified",
                         (unsigned long long)s->bytes_verified, "bytes_copied",
                         (unsigned long long)s->bytes_copied, "bytes_placed",
                         (unsigned long long)s->bytes_placed, "read_seconds", s->read_seconds,
                         "verify_seconds", s->verify_seconds, "copy_seconds", s->copy_seconds,
                         "wall_seconds", s->wall_seconds, "first_ready_seconds",
                         s->first_ready_seconds, "tensors", (Py_ssize_t)s->tensors, "reader",
                         s->reader == TRESTLE_READER_IO_URING ? "io_uring"
                         : s->reader == TRESTLE_READER_REMOTE ? "remote" : "pread",
                         "direct_reads", s->direct_reads ? Py_True : Py_False, "reader_note", s->reader_note);
}

/*
 * restore(device=-1, threads=0, verify=True, progress=None) -> stats dict.
 * `progress(done_bytes)` is called about ten times a second from this
 * thread; an exception from it, or a signal handler's (Ctrl-C), cancels the
 * restore and is raised once the pipeline has stopped.
 */
static PyObject *plan_restore(PyObject *self, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = { "device", "threads", "verify", "progress", NULL };
    pyt_plan *pl = (pyt_plan *)self;
    int device = -1, verify = 1;
    unsigned threads = 0;
    PyObject *progress = Py_None;
    if (plan_check(pl) < 0 || !PyArg_ParseTupleAndKeywords(args, kwargs, "|iIpO", kwlist, &device,
                                                           &threads, &verify, &progress))
        return NULL;
    restore_run *r = PyMem_Calloc(1, sizeof *r);
    if (!r)
        return PyErr_NoMemory();
    r->p = pl->p;
    trestle_restore_options_init(&r->opt);
    r->opt.device = device;
    r->opt.verify = verify;
    if (threads)
        r->opt.threads = threads;
    r->opt.on_ready = count_ready;
    r->opt.user = r;
    pyt_watch w = { restore_work, restore_cancel, restore_succeeded, r, &r->done_bytes,
                    progress };
    PyObject *result = NULL;
    if (pyt_watch_run(&w) == 0) {
        if (r->rc != TRESTLE_OK)
            pyt_raise(r->rc, &r->err);
        else
            result = stats_dict(&r->stats);
    }
    PyMem_Free(r);
    return result;
}

/*
 * take_arena(per_op=True) -> (Arena or None, [Buffer or None per op]):
 * adopt the restored plan's engine memory. Skipped ops give None. The plan
 * may be dropped afterwards; the Buffers keep the Arena alive. With
 * per_op=False, (Arena or None, one Buffer over the whole arena or None):
 * a model of 100,000 tensors then makes one Buffer, not 100,000, and
 * host_arrays() views it.
 */
static PyObject *plan_take_arena(PyObject *self, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = { "per_op", NULL };
    pyt_plan *pl = (pyt_plan *)self;
    int per_op = 1;
    if (plan_check(pl) < 0 ||
        !PyArg_ParseTupleAndKeywords(args, kwargs, "|p", kwlist, &per_op))
        return NULL;
    size_t n = trestle_plan_op_count(pl->p);
    PyObject *bufs = per_op ? PyList_New((Py_ssize_t)n) : NULL;
    pyt_arena *ar = PyObject_New(pyt_arena, &pyt_arena_type);
    if ((per_op && !bufs) || !ar) {
        Py_XDECREF(bufs);
        if (ar) {
            ar->a = NULL;
            ar->weakrefs = NULL;
            Py_DECREF(ar);
        }
        return NULL;
    }
    ar->a = NULL;
    ar->weakrefs = NULL;
    /* Pointers first: they stay valid through the adoption. */
    for (size_t i = 0; per_op && i < n; i++) {
        trestle_plan_op_info op;
        PyObject *item = Py_None;
        trestle_plan_get_op(pl->p, i, &op);
        if (!op.skipped) {
            if (!(item = pyt_new_buffer(ar, op.data, (Py_ssize_t)op.bytes, op.device))) {
                Py_DECREF(bufs);
                Py_DECREF(ar);
                return NULL;
            }
        } else {
            Py_INCREF(Py_None);
        }
        PyList_SET_ITEM(bufs, (Py_ssize_t)i, item);
    }
    trestle_plan_adopt_arena(pl->p, &ar->a);
    if (!per_op) {
        trestle_arena_info in = { 0 };
        if (ar->a)
            trestle_arena_get_info(ar->a, &in);
        if (!(bufs = ar->a ? pyt_new_buffer(ar, in.base, (Py_ssize_t)in.bytes, in.device)
                           : (Py_INCREF(Py_None), Py_None))) {
            Py_DECREF(ar);
            return NULL;
        }
    }
    return Py_BuildValue("(NN)", ar, bufs);
}

/*
 * host_arrays(whole, dtypes, result, used=None) -> [(name, out_dtype, shape, Buffer)]:
 * after take_arena(per_op=False), a numpy array over `whole` (the arena's
 * Buffer, host memory) for every op that is not skipped and whose restored
 * dtype is a key of `dtypes` ({DataType: numpy dtype}), put into the dict
 * `result` under the op's name, in op order. The ops it leaves to the
 * caller (strings, dtypes it was not given) get None there, so that the
 * caller's values keep the order, and come back with a Buffer of their
 * bytes. `used`, a set, gets the out_dtype of every op given an array here
 * (so that the caller can say what raw-bits dtypes came back without a
 * Python loop over the ops).
 *
 * It uses the plan up: what each array needs is copied out of the plan
 * (names and shapes, some 60 bytes a tensor), then the plan is freed, and
 * the checkpoint with it when the caller no longer holds it; only then
 * are the Python objects made. A model of 100,000 tensors so never holds
 * the engine's per-tensor state and 100,000 numpy arrays at once. One
 * ndarray(shape, dtype, buffer, offset) call per tensor, made here: the
 * Python loop it replaces cost more than the restore.
 */
static PyObject *plan_host_arrays(PyObject *self, PyObject *args)
{
    pyt_plan *pl = (pyt_plan *)self;
    PyObject *whole, *dtypes, *result, *used = NULL, *ndarray = NULL, *left = NULL;
    view_spec *spec = NULL;
    int64_t *dims = NULL;
    char *names = NULL;
    size_t nspec = 0, ndims = 0, nnames = 0;
    if (plan_check(pl) < 0 || !PyArg_ParseTuple(args, "OO!O!|O!", &whole, &PyDict_Type, &dtypes,
                                                &PyDict_Type, &result, &PySet_Type, &used))
        return NULL;
    const pyt_buffer *wb = whole != Py_None && Py_TYPE(whole) == &pyt_buffer_type
                               ? (const pyt_buffer *)whole : NULL;
    if (wb && wb->device >= 0) {
        PyErr_SetString(PyExc_ValueError, "host_arrays: the arena is in CUDA device memory");
        return NULL;
    }
    size_t n = trestle_plan_op_count(pl->p), rank_sum = 0, name_sum = 0;
    for (size_t i = 0; i < n; i++) {
        trestle_plan_op_info op;
        trestle_plan_get_op(pl->p, i, &op);
        if (!op.skipped) {
            rank_sum += (size_t)op.rank;
            name_sum += strlen(op.name) + 1;
        }
    }
    if (!(ndarray = pyt_ndarray_type()) || !(left = PyList_New(0)))
        goto fail;
    pyt_numpy_api(-1); /* numpy is imported now: its C API, where the build has it */
    spec = PyMem_Malloc((n ? n : 1) * sizeof *spec);
    dims = PyMem_Malloc((rank_sum ? rank_sum : 1) * sizeof *dims);
    names = PyMem_Malloc(name_sum ? name_sum : 1);
    if (!spec || !dims || !names) {
        PyErr_NoMemory();
        goto fail;
    }
    /* Pass 1, plan in hand: copy out names, shapes, places and dtypes. */
    int last_code = -1;
    PyObject *last_dt = NULL;
    for (size_t i = 0; i < n; i++) {
        trestle_plan_op_info op;
        trestle_plan_get_op(pl->p, i, &op);
        if (op.skipped)
            continue;
        /* Models hold few dtypes, mostly in runs: look one up (and note
         * it used) only when it changes. */
        if (op.out_dtype != last_code) {
            PyObject *code = PyLong_FromLong(op.out_dtype);
            last_dt = code ? PyDict_GetItemWithError(dtypes, code) : NULL;
            if (last_dt && used && PySet_Add(used, code) != 0)
                last_dt = NULL;
            Py_XDECREF(code);
            if (PyErr_Occurred())
                goto fail;
            last_code = op.out_dtype;
        }
        PyObject *dt = last_dt;
        uintptr_t at = (uintptr_t)op.data, lo = wb ? (uintptr_t)wb->ptr : 0;
        bool inside = op.bytes == 0 || (wb && at >= lo && op.bytes <= (uint64_t)wb->len &&
                                        at - lo <= (uint64_t)wb->len - op.bytes);
        size_t len = strlen(op.name) + 1;
        spec[nspec++] = (view_spec){ nnames, inside ? dt : NULL, op.data, op.bytes, ndims,
                                     op.rank, op.out_dtype };
        memcpy(names + nnames, op.name, len);
        nnames += len;
        memcpy(dims + ndims, op.dims, (size_t)op.rank * sizeof *dims);
        ndims += (size_t)op.rank;
    }
    /* The plan is spent: free it, and with it the checkpoint when the
     * caller holds no other reference. */
    trestle_plan_free(pl->p);
    pl->p = NULL;
    Py_CLEAR(pl->ckpt);
    /* Pass 2: the values, in op order. */
    pyt_shape_cache shapes = { 0 };
    for (size_t k = 0; k < nspec; k++)
        if (pyt_put_view(ndarray, wb, whole, result, left, &spec[k], names + spec[k].name,
                         dims + spec[k].dims, &shapes) != 0) {
            Py_XDECREF(shapes.tuple);
            goto fail;
        }
    Py_XDECREF(shapes.tuple);
    PyMem_Free(spec);
    PyMem_Free(dims);
    PyMem_Free(names);
    Py_DECREF(ndarray);
    return left;
fail:
    PyMem_Free(spec);
    PyMem_Free(dims);
    PyMem_Free(names);
    Py_XDECREF(ndarray);
    Py_XDECREF(left);
    return NULL;
}

static PyMethodDef plan_methods[] = {
    { "ops", plan_ops, METH_NOARGS,
      "ops() -> [(name, key, skipped, dtype, out_dtype, shape, bytes)]." },
    { "stats", plan_stats, METH_NOARGS, "stats() -> plan totals." },
    { "restore", (PyCFunction)(void (*)(void))plan_restore, METH_VARARGS | METH_KEYWORDS,
      "restore(device=-1, threads=0, verify=True, progress=None) -> stats dict." },
    { "take_arena", (PyCFunction)(void (*)(void))plan_take_arena, METH_VARARGS | METH_KEYWORDS,
      "take_arena(per_op=True) -> (Arena, [Buffer or None]) or, per_op=False, (Arena, Buffer "
      "over the whole arena): adopt the restored tensors." },
    { "host_arrays", plan_host_arrays, METH_VARARGS,
      "host_arrays(whole, dtypes, result, used=None) -> [(name, out_dtype, shape, Buffer)]: numpy views "
      "of the restored host tensors into the dict result, by name, and the ops left to the "
      "caller; uses the plan up (it is freed)." },
    { NULL, NULL, 0, NULL },
};

PyTypeObject pyt_plan_type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "trestle._trestle.Plan",
    .tp_doc = "Plan(checkpoint, ops=None, renames=None, excludes=None, allow_missing=False, "
              "rnn_renames=False): a resolved restore (trestle_plan_create).",
    .tp_basicsize = sizeof(pyt_plan),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = plan_init,
    .tp_dealloc = plan_dealloc,
    .tp_methods = plan_methods,
};
