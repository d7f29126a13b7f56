/*
 * pyconvert.c - _trestle.Conversion: trestle_conversion_create() when made,
 * entries() to see what goes into the file, set_name() for names the
 * package computes (keys=), and write(), which runs on a thread of its own
 * while the caller draws progress and turns Ctrl-C into a cancellation
 * (pywatch.c). The engine leaves no partial file either way.
 */
#include "pytrestle.h"

typedef struct pyt_conversion {
    PyObject_HEAD
    trestle_conversion *cv;
    PyObject *ckpt;             /* the Checkpoint, kept open while the conversion lives */
    _Atomic uint64_t done;      /* bytes written by the running write() */
    atomic_int cancel;          /* set to stop the running write() at its next tensor */
    int busy;                   /* a write() is running (another call must wait) */
} pyt_conversion;

/* The ready callback of every write: count the bytes, stop when asked. */
static int count_written(void *user, size_t i, const trestle_plan_op_info *op)
{
    pyt_conversion *self = user;
    (void)i;
    atomic_fetch_add(&self->done, op->bytes);
    return atomic_load(&self->cancel);
}

/*
 * Conversion(checkpoint, ops=None, renames=None, excludes=None,
 *            allow_missing=False, rnn_renames=False, skip_unsupported=False,
 *            key_rules=None, transpose=None, as_dtype=0, threads=0, sync=True)
 */
static int conversion_init(PyObject *obj, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = { "checkpoint", "ops", "renames", "excludes", "allow_missing",
                              "rnn_renames", "skip_unsupported", "key_rules", "transpose",
                              "as_dtype", "threads", "sync", NULL };
    pyt_conversion *self = (pyt_conversion *)obj;
    PyObject *ckpt, *ops_obj = Py_None, *ren = Py_None, *exc = Py_None, *keys = Py_None,
                    *tr = Py_None;
    int allow_missing = 0, rnn = 0, skip_unsupported = 0, as_dtype = 0, sync = 1, rc = -1;
    unsigned threads = 0;
    pyt_held h = { NULL };
    trestle_op *ops = NULL;
    size_t n = 0;
    trestle_plan_options popt;
    trestle_restore_options ropt;
    trestle_convert_options copt;
    trestle_error err;

    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O!|OOOpppOOiIp", kwlist,
                                     &pyt_checkpoint_type, &ckpt, &ops_obj, &ren, &exc,
                                     &allow_missing, &rnn, &skip_unsupported, &keys, &tr,
                                     &as_dtype, &threads, &sync))
        return -1;
    if (!((pyt_checkpoint *)ckpt)->c) {
        PyErr_SetString(PyExc_ValueError, "Checkpoint is not open");
        return -1;
    }
    trestle_plan_options_init(&popt);
    trestle_restore_options_init(&ropt);
    trestle_convert_options_init(&copt);
    if (!(h.list = PyList_New(0)) || pyt_hold_ops(&h, ops_obj, &ops, &n) < 0 ||
        pyt_hold_strings(&h, ren, (const char ***)&popt.renames, &popt.num_renames) < 0 ||
        pyt_hold_strings(&h, exc, (const char ***)&popt.excludes, &popt.num_excludes) < 0 ||
        pyt_hold_strings(&h, keys, (const char ***)&copt.key_rules, &copt.num_key_rules) < 0 ||
        pyt_hold_strings(&h, tr, (const char ***)&copt.transpose, &copt.num_transpose) < 0)
        goto out;
    popt.allow_missing = allow_missing;
    popt.tf1_rnn_renames = rnn;
    popt.skip_unsupported = skip_unsupported;
    if (threads)
        ropt.threads = threads;
    ropt.on_ready = count_written;
    ropt.user = self;
    copt.plan = &popt;
    copt.restore = &ropt;
    copt.sync = sync;
    copt.as_dtype = as_dtype;
    trestle_conversion_free(self->cv);
    self->cv = NULL;
    int code;
    Py_BEGIN_ALLOW_THREADS
    code = trestle_conversion_create(((pyt_checkpoint *)ckpt)->c, ops, n, &copt, &self->cv, &err);
    Py_END_ALLOW_THREADS
    if (code != TRESTLE_OK) {
        pyt_raise(code, &err);
        goto out;
    }
    Py_INCREF(ckpt);
    Py_XSETREF(self->ckpt, ckpt);
    rc = 0;
out:
    PyMem_Free(ops);
    PyMem_Free((void *)popt.renames);
    PyMem_Free((void *)popt.excludes);
    PyMem_Free((void *)copt.key_rules);
    PyMem_Free((void *)copt.transpose);
    Py_XDECREF(h.list);
    return rc;
}

static void conversion_dealloc(PyObject *obj)
{
    pyt_conversion *self = (pyt_conversion *)obj;
    trestle_conversion_free(self->cv);
    Py_XDECREF(self->ckpt);
    Py_TYPE(obj)->tp_free(obj);
}

static int conversion_check(pyt_conversion *self)
{
    if (!self->cv) {
        PyErr_SetString(PyExc_ValueError, "the Conversion was not created");
        return -1;
    }
    if (self->busy) {
        PyErr_SetString(PyExc_RuntimeError, "the Conversion is being written");
        return -1;
    }
    return 0;
}

/* entries() -> [(name, key, out_name, skipped, dtype, out_dtype, transposed,
 * shape, bytes)], one per op (key and out_name None when skipped). */
static PyObject *conversion_entries(PyObject *obj, PyObject *unused)
{
    pyt_conversion *self = (pyt_conversion *)obj;
    if (conversion_check(self) < 0)
        return NULL;
    size_t n = trestle_conversion_count(self->cv);
    PyObject *list = PyList_New((Py_ssize_t)n);
    for (size_t i = 0; list && i < n; i++) {
        trestle_conversion_entry e;
        trestle_conversion_get(self->cv, i, &e);
        PyObject *shape = PyTuple_New(e.rank);
        for (int d = 0; shape && d < e.rank; d++)
            PyTuple_SET_ITEM(shape, d, PyLong_FromLongLong(e.dims[d]));
        PyObject *item = shape ? Py_BuildValue("(NNNiiiiNK)", pyt_str(e.name),
                                               e.key ? pyt_str(e.key) : Py_NewRef(Py_None),
                                               e.out_name ? pyt_str(e.out_name)
                                                          : Py_NewRef(Py_None),
                                               e.skipped, e.dtype, e.out_dtype, e.transposed,
                                               shape, (unsigned long long)e.bytes)
                               : NULL;
        if (!item) {
            Py_CLEAR(list);
            break;
        }
        PyList_SET_ITEM(list, (Py_ssize_t)i, item);
    }
    return list;
}

/* set_name(i, name): entry i's name in the file (str; surrogateescape'd
 * bytes go back as the bytes they stand for). */
static PyObject *conversion_set_name(PyObject *obj, PyObject *args)
{
    pyt_conversion *self = (pyt_conversion *)obj;
    Py_ssize_t i;
    PyObject *name;
    trestle_error err;
    if (conversion_check(self) < 0 || !PyArg_ParseTuple(args, "nU", &i, &name))
        return NULL;
    PyObject *bytes = PyUnicode_AsEncodedString(name, "utf-8", "surrogateescape");
    if (!bytes)
        return NULL;
    int rc = i < 0 ? TRESTLE_E_INVALID_ARG
                   : trestle_conversion_set_name(self->cv, (size_t)i, PyBytes_AS_STRING(bytes),
                                                 &err);
    Py_DECREF(bytes);
    if (rc != TRESTLE_OK)
        return pyt_raise(rc, i < 0 ? NULL : &err);
    Py_RETURN_NONE;
}

typedef struct write_run {
    pyt_conversion *self;
    const char *out;
    trestle_convert_stats stats;
    trestle_error err;
    int rc;
} write_run;

static void write_work(void *arg)
{
    write_run *r = arg;
    r->rc = trestle_conversion_write(r->self->cv, r->out, &r->stats, &r->err);
}

static void write_cancel(void *arg)
{
    atomic_store(&((write_run *)arg)->self->cancel, 1);
}

static int write_succeeded(void *arg)
{
    return ((write_run *)arg)->rc == TRESTLE_OK;
}

/* write(out, progress=None) -> {'tensors', 'skipped', 'header_bytes',
 * 'file_bytes', 'wall_seconds'}. */
static PyObject *conversion_write(PyObject *obj, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = { "out", "progress", NULL };
    pyt_conversion *self = (pyt_conversion *)obj;
    PyObject *out_obj, *progress = Py_None, *result = NULL;
    if (conversion_check(self) < 0 ||
        !PyArg_ParseTupleAndKeywords(args, kwargs, "O&|O", kwlist, PyUnicode_FSConverter,
                                     &out_obj, &progress))
        return NULL;
    write_run r = { .self = self, .out = PyBytes_AS_STRING(out_obj) };
    atomic_store(&self->done, 0);
    atomic_store(&self->cancel, 0);
    self->busy = 1;
    pyt_watch w = { write_work, write_cancel, write_succeeded, &r, &self->done, progress };
    int watched = pyt_watch_run(&w);
    self->busy = 0;
    if (watched == 0) {
        if (r.rc != TRESTLE_OK)
            pyt_raise(r.rc, &r.err);
        else
            result = Py_BuildValue("{s:n,s:n,s:K,s:K,s:d}", "tensors",
                                   (Py_ssize_t)r.stats.tensors, "skipped",
                                   (Py_ssize_t)r.stats.skipped, "header_bytes",
                                   (unsigned long long)r.stats.header_bytes, "file_bytes",
                                   (unsigned long long)r.stats.file_bytes, "wall_seconds",
                                   r.stats.restore.wall_seconds);
    }
    Py_DECREF(out_obj);
    return result;
}

static PyMethodDef conversion_methods[] = {
    { "entries", conversion_entries, METH_NOARGS,
      "entries() -> [(name, key, out_name, skipped, dtype, out_dtype, transposed, shape, "
      "bytes)]" },
    { "set_name", conversion_set_name, METH_VARARGS, "set_name(i, name): entry i's name in the file." },
    { "write", (PyCFunction)(void (*)(void))conversion_write, METH_VARARGS | METH_KEYWORDS,
      "write(out, progress=None) -> stats dict: write the safetensors file." },
    { NULL, NULL, 0, NULL },
};

PyTypeObject pyt_conversion_type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "trestle._trestle.Conversion",
    .tp_doc = "A conversion to safetensors, planned (trestle_conversion_create), to be written.",
    .tp_basicsize = sizeof(pyt_conversion),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = conversion_init,
    .tp_dealloc = conversion_dealloc,
    .tp_methods = conversion_methods,
};
