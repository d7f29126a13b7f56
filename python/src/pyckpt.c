/*
 * pyckpt.c - _trestle.Checkpoint: an open checkpoint (trestle_open), its
 * tensor listing, and synchronous reads of single tensors into a buffer the
 * caller (Python) allocated, for get_tensor().
 *
 * The handle is closed when the object dies, never before: plans hold a
 * reference, so a checkpoint always outlives the plans made from it, as
 * trestle_plan_create() requires. Reads and opens release the GIL.
 */
#include "pytrestle.h"

static int ckpt_init(PyObject *self, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = { "path", "connections", "attempts", "backoff_ms", NULL };
    pyt_checkpoint *ck = (pyt_checkpoint *)self;
    PyObject *path_obj;
    trestle_error err;
    trestle_open_options o;
    int rc;
    /* A URL's remote options (0: the default), checked by the Python layer. */
    trestle_open_options_init(&o);
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O&|$III", kwlist, PyUnicode_FSConverter,
                                     &path_obj, &o.connections, &o.attempts, &o.backoff_ms))
        return -1;
    if (ck->c) {
        Py_DECREF(path_obj);
        PyErr_SetString(PyExc_RuntimeError, "Checkpoint is already open");
        return -1;
    }
    const char *path = PyBytes_AS_STRING(path_obj);
    Py_BEGIN_ALLOW_THREADS
    rc = trestle_open(path, &o, &ck->c, &err);
    Py_END_ALLOW_THREADS
    Py_DECREF(path_obj);
    if (rc != TRESTLE_OK) {
        pyt_raise(rc, &err);
        return -1;
    }
    return 0;
}

static void ckpt_dealloc(PyObject *self)
{
    trestle_close(((pyt_checkpoint *)self)->c);
    Py_TYPE(self)->tp_free(self);
}

static int ckpt_check(pyt_checkpoint *ck)
{
    if (ck->c)
        return 0;
    PyErr_SetString(PyExc_ValueError, "Checkpoint is not open");
    return -1;
}

/* info() -> dict: the checkpoint as a whole. */
static PyObject *ckpt_info(PyObject *self, PyObject *unused)
{
    pyt_checkpoint *ck = (pyt_checkpoint *)self;
    trestle_checkpoint_info in;
    if (ckpt_check(ck) < 0)
        return NULL;
    trestle_checkpoint_get_info(ck->c, &in);
    PyObject *shards = PyList_New(in.num_shards);
    if (!shards)
        return NULL;
    for (int i = 0; i < in.num_shards; i++) {
        PyObject *s = pyt_str(trestle_shard_path(ck->c, i));
        if (!s) {
            Py_DECREF(shards);
            return NULL;
        }
        PyList_SET_ITEM(shards, i, s);
    }
    return Py_BuildValue("{s:N,s:N,s:N,s:i,s:n,s:K,s:O}", "prefix", pyt_str(in.prefix),
                         "index_path", pyt_str(in.index_path), "shards", shards, "num_shards",
                         in.num_shards, "num_tensors", (Py_ssize_t)in.num_tensors, "data_bytes",
                         (unsigned long long)in.data_bytes, "object_based",
                         in.object_based ? Py_True : Py_False);
}

static PyObject *shape_tuple(int rank, const int64_t *dims)
{
    PyObject *t = PyTuple_New(rank);
    for (int d = 0; t && d < rank; d++) {
        PyObject *v = PyLong_FromLongLong(dims[d]);
        if (!v) {
            Py_CLEAR(t);
            break;
        }
        PyTuple_SET_ITEM(t, d, v);
    }
    return t;
}

/* One listed tensor as (name, dtype, kind, shape, size, shard, offset,
 * read_size), read_size being the bytes trestle_tensor_read() writes. */
static PyObject *tensor_tuple(const trestle_tensor_info *t)
{
    uint64_t read_size = t->size;
    size_t es = trestle_dtype_size(t->dtype);
    if (t->kind == TRESTLE_TENSOR_PARTITIONED && es)
        read_size = (uint64_t)t->num_elements * es;
    return Py_BuildValue("(NiiNKiKK)", pyt_str(t->name), t->dtype, t->kind,
                         shape_tuple(t->rank, t->dims), (unsigned long long)t->size, t->shard,
                         (unsigned long long)t->offset, (unsigned long long)read_size);
}

/* tensors() -> list of tensor tuples, in key order. */
static PyObject *ckpt_tensors(PyObject *self, PyObject *unused)
{
    pyt_checkpoint *ck = (pyt_checkpoint *)self;
    if (ckpt_check(ck) < 0)
        return NULL;
    size_t n = trestle_tensor_count(ck->c);
    PyObject *list = PyList_New((Py_ssize_t)n);
    for (size_t i = 0; list && i < n; i++) {
        trestle_tensor_info t;
        PyObject *item;
        if (trestle_tensor_get_info(ck->c, i, &t) != TRESTLE_OK || !(item = tensor_tuple(&t))) {
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_RuntimeError, "trestle_tensor_get_info failed");
            Py_CLEAR(list);
            break;
        }
        PyList_SET_ITEM(list, (Py_ssize_t)i, item);
    }
    return list;
}

/* find(name) -> (index, tensor tuple); raises the engine's KEY_NOT_FOUND. */
static PyObject *ckpt_find(PyObject *self, PyObject *arg)
{
    pyt_checkpoint *ck = (pyt_checkpoint *)self;
    PyObject *name_obj;
    size_t i;
    trestle_error err;
    trestle_tensor_info t;
    if (ckpt_check(ck) < 0 || !PyUnicode_FSConverter(arg, &name_obj))
        return NULL;
    int rc = trestle_tensor_find(ck->c, PyBytes_AS_STRING(name_obj), &i, &err);
    Py_DECREF(name_obj);
    if (rc != TRESTLE_OK)
        return pyt_raise(rc, &err);
    if (trestle_tensor_get_info(ck->c, i, &t) != TRESTLE_OK) {
        PyErr_SetString(PyExc_RuntimeError, "trestle_tensor_get_info failed");
        return NULL;
    }
    return Py_BuildValue("(nN)", (Py_ssize_t)i, tensor_tuple(&t));
}

/* read(index, buffer, verify=True): the tensor's bytes into a writable,
 * contiguous buffer (e.g. a fresh numpy array), CRC-checked. */
static PyObject *ckpt_read(PyObject *self, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = { "index", "buffer", "verify", NULL };
    pyt_checkpoint *ck = (pyt_checkpoint *)self;
    Py_ssize_t index;
    Py_buffer view;
    int verify = 1, rc;
    trestle_error err;
    if (ckpt_check(ck) < 0 ||
        !PyArg_ParseTupleAndKeywords(args, kwargs, "nw*|p", kwlist, &index, &view, &verify))
        return NULL;
    if (index < 0) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_IndexError, "tensor index out of range");
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    rc = trestle_tensor_read(ck->c, (size_t)index, view.buf, (size_t)view.len, verify, &err);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&view);
    if (rc != TRESTLE_OK)
        return pyt_raise(rc, &err);
    Py_RETURN_NONE;
}

static PyMethodDef ckpt_methods[] = {
    { "info", ckpt_info, METH_NOARGS, "info() -> dict describing the checkpoint." },
    { "tensors", ckpt_tensors, METH_NOARGS,
      "tensors() -> [(name, dtype, kind, shape, size, shard, offset, read_size)]." },
    { "find", ckpt_find, METH_O, "find(name) -> (index, tensor tuple)." },
    { "read", (PyCFunction)(void (*)(void))ckpt_read, METH_VARARGS | METH_KEYWORDS,
      "read(index, buffer, verify=True): read one tensor's bytes into buffer." },
    { NULL, NULL, 0, NULL },
};

PyTypeObject pyt_checkpoint_type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "trestle._trestle.Checkpoint",
    .tp_doc = "Checkpoint(path): an open TensorFlow V2 checkpoint (trestle_open).",
    .tp_basicsize = sizeof(pyt_checkpoint),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = ckpt_init,
    .tp_dealloc = ckpt_dealloc,
    .tp_methods = ckpt_methods,
};
