/*
 * pyconvert.c - _trestle.convert_safetensors(): trestle_convert_safetensors()
 * with the GIL released. A Ctrl-C during the call is raised when it
 * returns; the engine leaves no partial file either way.
 */
#include "pytrestle.h"

typedef struct convert_run {
    const trestle_checkpoint *c;
    const trestle_op *ops;
    size_t n;
    trestle_convert_options opt;
    const char *out;
    trestle_convert_stats stats;
    trestle_error err;
    int rc;
} convert_run;

/*
 * convert_safetensors(checkpoint, out, ops=None, renames=None, excludes=None,
 *                     allow_missing=False, rnn_renames=False, threads=0,
 *                     sync=True) -> dict
 */
PyObject *pyt_convert_safetensors(PyObject *module, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = { "checkpoint", "out", "ops", "renames", "excludes",
                              "allow_missing", "rnn_renames", "threads", "sync", NULL };
    PyObject *ckpt, *out_obj, *ops_obj = Py_None, *ren_obj = Py_None, *exc_obj = Py_None;
    int allow_missing = 0, rnn = 0, sync = 1;
    unsigned threads = 0;
    pyt_held h = { NULL };
    trestle_op *ops = NULL;
    trestle_plan_options popt;
    trestle_restore_options ropt;
    convert_run r;
    PyObject *result = NULL;

    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O!O&|OOOppIp", kwlist, &pyt_checkpoint_type,
                                     &ckpt, PyUnicode_FSConverter, &out_obj, &ops_obj, &ren_obj,
                                     &exc_obj, &allow_missing, &rnn, &threads, &sync))
        return NULL;
    memset(&r, 0, sizeof r);
    trestle_plan_options_init(&popt);
    trestle_restore_options_init(&ropt);
    trestle_convert_options_init(&r.opt);
    if (!(h.list = PyList_New(0)) || pyt_hold_ops(&h, ops_obj, &ops, &r.n) < 0 ||
        pyt_hold_strings(&h, ren_obj, (const char ***)&popt.renames, &popt.num_renames) < 0 ||
        pyt_hold_strings(&h, exc_obj, (const char ***)&popt.excludes, &popt.num_excludes) < 0)
        goto out;
    popt.allow_missing = allow_missing;
    popt.tf1_rnn_renames = rnn;
    if (threads)
        ropt.threads = threads;
    r.c = ((pyt_checkpoint *)ckpt)->c;
    r.ops = ops;
    r.opt.plan = &popt;
    r.opt.restore = &ropt;
    r.opt.sync = sync;
    r.out = PyBytes_AS_STRING(out_obj);
    if (!r.c) {
        PyErr_SetString(PyExc_ValueError, "Checkpoint is not open");
        goto out;
    }
    Py_BEGIN_ALLOW_THREADS
    r.rc = trestle_convert_safetensors(r.c, r.ops, r.n, &r.opt, r.out, &r.stats, &r.err);
    Py_END_ALLOW_THREADS
    if (r.rc != TRESTLE_OK) {
        pyt_raise(r.rc, &r.err);
        goto out;
    }
    result = Py_BuildValue("{s:n,s:n,s:K,s:K,s:d}", "tensors", (Py_ssize_t)r.stats.tensors,
                           "skipped", (Py_ssize_t)r.stats.skipped, "header_bytes",
                           (unsigned long long)r.stats.header_bytes, "file_bytes",
                           (unsigned long long)r.stats.file_bytes, "wall_seconds",
                           r.stats.restore.wall_seconds);
out:
    PyMem_Free(ops);
    PyMem_Free((void *)popt.renames);
    PyMem_Free((void *)popt.excludes);
    Py_XDECREF(h.list);
    Py_DECREF(out_obj);
    return result;
}
