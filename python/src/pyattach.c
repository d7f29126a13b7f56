/*
 * pyattach.c - _trestle.attach() and _trestle.Attachment: the tensors of
 * a `trestle serve` server's resident entry (trestle_attach), for
 * trestle.restore(path, server=...).
 *
 * An Attachment plays the Arena's part: each tensor becomes a Buffer that
 * holds the Attachment, read-only (the memory is sealed; numpy arrays made
 * from it are not writeable), and the mapping goes, and the server counts
 * one client less, when the last Buffer does. Restoring from storage when
 * nothing resident fits is the Python package's (it has progress and
 * Ctrl-C), so the attach here requires a resident entry and says why not.
 */
#include "pytrestle.h"
#include "trestle_serve.h"

typedef struct pyt_attachment {
    PyObject_HEAD
    trestle_attachment *a;
    PyObject *weakrefs;     /* RestoreResult.arena is a weak reference to it */
} pyt_attachment;

static void attachment_dealloc(PyObject *self)
{
    pyt_attachment *at = (pyt_attachment *)self;
    if (at->weakrefs)
        PyObject_ClearWeakRefs(self);
    trestle_attachment_free(at->a);
    Py_TYPE(self)->tp_free(self);
}

/* info() -> {'resident', 'tier', 'device', 'tensors', 'bytes', 'seconds'}. */
static PyObject *attachment_info(PyObject *self, PyObject *unused)
{
    trestle_attach_info in;
    trestle_attachment_get_info(((pyt_attachment *)self)->a, &in);
    return Py_BuildValue("{s:O,s:s,s:i,s:n,s:K,s:d}", "resident", in.resident ? Py_True : Py_False,
                         "tier", in.tier == TRESTLE_TIER_HOST ? "host" : "device", "device",
                         in.device, "tensors", (Py_ssize_t)in.tensors, "bytes",
                         (unsigned long long)in.bytes, "seconds", in.seconds);
}

/* ops() -> [(name, key or None, skipped, dtype, out_dtype, shape, bytes)], as Plan.ops(). */
static PyObject *attachment_ops(PyObject *self, PyObject *unused)
{
    trestle_attachment *a = ((pyt_attachment *)self)->a;
    size_t n = trestle_attachment_op_count(a);
    PyObject *list = PyList_New((Py_ssize_t)n);
    for (size_t i = 0; list && i < n; i++) {
        trestle_plan_op_info op;
        trestle_attachment_get_op(a, i, &op);
        PyObject *item = pyt_op_tuple(&op);
        if (!item) {
            Py_CLEAR(list);
            break;
        }
        PyList_SET_ITEM(list, (Py_ssize_t)i, item);
    }
    return list;
}

static PyMethodDef attachment_methods[] = {
    { "info", attachment_info, METH_NOARGS, "info() -> how the attach went." },
    { "ops", attachment_ops, METH_NOARGS,
      "ops() -> [(name, key, skipped, dtype, out_dtype, shape, bytes)]." },
    { NULL, NULL, 0, NULL },
};

PyTypeObject pyt_attachment_type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "trestle._trestle.Attachment",
    .tp_doc = "Resident tensors mapped read-only from a trestle server; unmapped (and the "
              "server's reference dropped) when the object dies.",
    .tp_basicsize = sizeof(pyt_attachment),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_dealloc = attachment_dealloc,
    .tp_weaklistoffset = offsetof(pyt_attachment, weakrefs),
    .tp_methods = attachment_methods,
};

/* [Buffer or None per op], each holding `owner`. */
static PyObject *buffers_of(PyObject *owner, trestle_attachment *a)
{
    size_t n = trestle_attachment_op_count(a);
    PyObject *bufs = PyList_New((Py_ssize_t)n);
    for (size_t i = 0; bufs && i < n; i++) {
        trestle_plan_op_info op;
        PyObject *item = Py_None;
        trestle_attachment_get_op(a, i, &op);
        if (!op.skipped) {
            item = pyt_new_buffer_of(owner, op.data, (Py_ssize_t)op.bytes, op.device, 1);
            if (!item) {
                Py_CLEAR(bufs);
                break;
            }
        } else {
            Py_INCREF(Py_None);
        }
        PyList_SET_ITEM(bufs, (Py_ssize_t)i, item);
    }
    return bufs;
}

/*
 * attach(checkpoint, ops=None, renames=None, excludes=None,
 *        allow_missing=False, rnn_renames=False, socket=None, device=-1)
 * -> (Attachment, [Buffer or None]) when resident, else (None, note).
 */
PyObject *pyt_attach(PyObject *self, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = { "checkpoint", "ops", "renames", "excludes", "allow_missing",
                              "rnn_renames", "socket", "device", NULL };
    PyObject *ckpt, *ops_obj = Py_None, *ren_obj = Py_None, *exc_obj = Py_None;
    PyObject *sock_obj = Py_None, *sock_bytes = NULL, *result = NULL;
    int allow_missing = 0, rnn = 0, device = -1, rc;
    pyt_held h = { NULL };
    trestle_op *ops = NULL;
    size_t nops = 0;
    trestle_plan_options popt;
    trestle_attach_options ao;
    trestle_attachment *a = NULL;
    trestle_error err;

    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O!|OOOppOi", kwlist, &pyt_checkpoint_type,
                                     &ckpt, &ops_obj, &ren_obj, &exc_obj, &allow_missing, &rnn,
                                     &sock_obj, &device))
        return NULL;
    trestle_plan_options_init(&popt);
    trestle_attach_options_init(&ao);
    if (sock_obj != Py_None) {
        if (!PyUnicode_FSConverter(sock_obj, &sock_bytes))
            return NULL;
        ao.socket_path = PyBytes_AS_STRING(sock_bytes);
    }
    ao.device = device;
    ao.require_resident = 1;
    if (!(h.list = PyList_New(0)) || pyt_hold_ops(&h, ops_obj, &ops, &nops) < 0 ||
        pyt_hold_strings(&h, ren_obj, (const char ***)&popt.renames, &popt.num_renames) < 0 ||
        pyt_hold_strings(&h, exc_obj, (const char ***)&popt.excludes, &popt.num_excludes) < 0)
        goto out;
    popt.allow_missing = allow_missing;
    popt.tf1_rnn_renames = rnn;
    trestle_checkpoint *c = ((pyt_checkpoint *)ckpt)->c;
    Py_BEGIN_ALLOW_THREADS
    rc = trestle_attach(c, ops, nops, &popt, &ao, &a, &err);
    Py_END_ALLOW_THREADS
    if (rc == TRESTLE_E_NOT_RESIDENT) {
        result = Py_BuildValue("(ON)", Py_None, pyt_str(err.message));
        goto out;
    }
    if (rc != TRESTLE_OK) {
        pyt_raise(rc, &err);
        goto out;
    }
    pyt_attachment *at = PyObject_New(pyt_attachment, &pyt_attachment_type);
    if (!at) {
        trestle_attachment_free(a);
        goto out;
    }
    at->a = a;
    at->weakrefs = NULL;
    PyObject *bufs = buffers_of((PyObject *)at, a);
    if (bufs)
        result = Py_BuildValue("(ON)", at, bufs);
    Py_DECREF(at);
out:
    PyMem_Free(ops);
    PyMem_Free((void *)popt.renames);
    PyMem_Free((void *)popt.excludes);
    Py_XDECREF(h.list);
    Py_XDECREF(sock_bytes);
    return result;
}
