/*
 * pyplan.c - _trestle.Plan (trestle_plan_create/restore), _trestle.Arena
 * (an adopted trestle_arena) and _trestle.Buffer (one tensor's bytes in an
 * arena).
 *
 * Zero copy: a restore writes every tensor into one engine arena; the plan
 * hands that arena over (trestle_plan_adopt_arena) to an Arena object, and
 * each tensor becomes a Buffer that holds the Arena and exports its bytes
 * through the buffer protocol (host) or DLPack (host or device). numpy
 * arrays and torch tensors made from a Buffer keep it, and so the arena,
 * alive; the arena is freed when the last of them goes.
 *
 * A restore runs on its own thread while the calling thread, GIL released,
 * wakes every 100 ms to draw progress and to turn Ctrl-C (or an exception
 * from the progress callback) into trestle_restore_cancel() (pywatch.c).
 */
#include "pytrestle.h"

/* ---- Arena ---- */

typedef struct pyt_arena {
    PyObject_HEAD
    trestle_arena *a;
    PyObject *weakrefs;     /* tests watch the arena's death with weakref */
} pyt_arena;

static void arena_dealloc(PyObject *self)
{
    pyt_arena *ar = (pyt_arena *)self;
    if (ar->weakrefs)
        PyObject_ClearWeakRefs(self);
    trestle_arena_free(ar->a);
    Py_TYPE(self)->tp_free(self);
}

static PyObject *arena_info(PyObject *self, PyObject *unused)
{
    trestle_arena_info in;
    trestle_arena_get_info(((pyt_arena *)self)->a, &in);
    return Py_BuildValue("{s:K,s:K,s:i}", "base", (unsigned long long)(uintptr_t)in.base, "bytes",
                         (unsigned long long)in.bytes, "device", in.device);
}

static PyMethodDef arena_methods[] = {
    { "info", arena_info, METH_NOARGS, "info() -> {'base', 'bytes', 'device'}." },
    { NULL, NULL, 0, NULL },
};

PyTypeObject pyt_arena_type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "trestle._trestle.Arena",
    .tp_doc = "Engine memory adopted from a restored plan; freed when the object dies.",
    .tp_basicsize = sizeof(pyt_arena),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_dealloc = arena_dealloc,
    .tp_weaklistoffset = offsetof(pyt_arena, weakrefs),
    .tp_methods = arena_methods,
};

/* ---- Buffer ---- */

static void buffer_dealloc(PyObject *self)
{
    Py_XDECREF(((pyt_buffer *)self)->arena);
    Py_TYPE(self)->tp_free(self);
}

static int buffer_get(PyObject *self, Py_buffer *view, int flags)
{
    pyt_buffer *b = (pyt_buffer *)self;
    if (b->device >= 0) {
        PyErr_SetString(PyExc_BufferError, "the tensor is in CUDA device memory; use DLPack");
        return -1;
    }
    return PyBuffer_FillInfo(view, self, b->ptr, b->len, b->readonly, flags);
}

static PyBufferProcs buffer_procs = { .bf_getbuffer = buffer_get };

static PyObject *buffer_get_arena(PyObject *self, void *c)
{
    PyObject *a = ((pyt_buffer *)self)->arena;
    Py_INCREF(a);
    return a;
}

static PyObject *buffer_get_nbytes(PyObject *self, void *c)
{
    return PyLong_FromSsize_t(((pyt_buffer *)self)->len);
}

static PyObject *buffer_get_device(PyObject *self, void *c)
{
    return PyLong_FromLong(((pyt_buffer *)self)->device);
}

static PyObject *buffer_get_readonly(PyObject *self, void *c)
{
    return PyBool_FromLong(((pyt_buffer *)self)->readonly);
}

static PyObject *buffer_get_address(PyObject *self, void *c)
{
    return PyLong_FromVoidPtr(((pyt_buffer *)self)->ptr);
}

static PyGetSetDef buffer_getset[] = {
    { "arena", buffer_get_arena, NULL, "the Arena that owns the bytes", NULL },
    { "nbytes", buffer_get_nbytes, NULL, "size in bytes", NULL },
    { "device", buffer_get_device, NULL, "CUDA ordinal, or -1 for host memory", NULL },
    { "address", buffer_get_address, NULL, "address of the first byte", NULL },
    { "readonly", buffer_get_readonly, NULL, "True for a trestle server's resident memory", NULL },
    { NULL, NULL, NULL, NULL, NULL },
};

static PyMethodDef buffer_methods[] = {
    { "dlpack", pyt_buffer_dlpack, METH_VARARGS,
      "dlpack(code, bits, shape) -> 'dltensor' capsule over these bytes." },
    { NULL, NULL, 0, NULL },
};

PyTypeObject pyt_buffer_type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "trestle._trestle.Buffer",
    .tp_doc = "One restored tensor's bytes inside an Arena (buffer protocol when on the host).",
    .tp_basicsize = sizeof(pyt_buffer),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_dealloc = buffer_dealloc,
    .tp_as_buffer = &buffer_procs,
    .tp_getset = buffer_getset,
    .tp_methods = buffer_methods,
};

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
        PyObject *shape, *item = NULL;
        trestle_plan_get_op(pl->p, i, &op);
        if ((shape = PyTuple_New(op.skipped ? 0 : op.rank)))
            for (int d = 0; !op.skipped && d < op.rank; d++)
                PyTuple_SET_ITEM(shape, d, PyLong_FromLongLong(op.dims[d]));
        if (shape)
            item = Py_BuildValue("(NNiiiNK)", pyt_str(op.name),
                                 op.key ? pyt_str(op.key) : (Py_INCREF(Py_None), Py_None),
                                 op.skipped, op.dtype, op.out_dtype, shape,
                                 (unsigned long long)op.bytes);
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
                         s->reader == TRESTLE_READER_IO_URING ? "io_uring" : "pread",
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
 * take_arena() -> (Arena or None, [Buffer or None per op]): adopt the
 * restored plan's engine memory. Skipped ops give None. The plan may be
 * dropped afterwards; the Buffers keep the Arena alive.
 */
static PyObject *plan_take_arena(PyObject *self, PyObject *unused)
{
    pyt_plan *pl = (pyt_plan *)self;
    if (plan_check(pl) < 0)
        return NULL;
    size_t n = trestle_plan_op_count(pl->p);
    PyObject *bufs = PyList_New((Py_ssize_t)n);
    pyt_arena *ar = PyObject_New(pyt_arena, &pyt_arena_type);
    if (!bufs || !ar) {
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
    for (size_t i = 0; i < n; i++) {
        trestle_plan_op_info op;
        PyObject *item = Py_None;
        trestle_plan_get_op(pl->p, i, &op);
        if (!op.skipped) {
            pyt_buffer *b = PyObject_New(pyt_buffer, &pyt_buffer_type);
            if (!b) {
                Py_DECREF(bufs);
                Py_DECREF(ar);
                return NULL;
            }
            Py_INCREF(ar);
            b->arena = (PyObject *)ar;
            b->ptr = op.data;
            b->len = (Py_ssize_t)op.bytes;
            b->device = op.device;
            b->readonly = 0;
            item = (PyObject *)b;
        } else {
            Py_INCREF(Py_None);
        }
        PyList_SET_ITEM(bufs, (Py_ssize_t)i, item);
    }
    trestle_plan_adopt_arena(pl->p, &ar->a);
    return Py_BuildValue("(NN)", ar, bufs);
}

static PyMethodDef plan_methods[] = {
    { "ops", plan_ops, METH_NOARGS,
      "ops() -> [(name, key, skipped, dtype, out_dtype, shape, bytes)]." },
    { "stats", plan_stats, METH_NOARGS, "stats() -> plan totals." },
    { "restore", (PyCFunction)(void (*)(void))plan_restore, METH_VARARGS | METH_KEYWORDS,
      "restore(device=-1, threads=0, verify=True, progress=None) -> stats dict." },
    { "take_arena", plan_take_arena, METH_NOARGS,
      "take_arena() -> (Arena, [Buffer or None]): adopt the restored tensors." },
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
