"""Bulk loads at engine speed: trestle.restore() and trestle.convert().

restore() plans every requested tensor at once and runs the engine's
pipeline (io_uring reads, CRC32C on worker threads, copies) in one pass
into one engine arena. The arrays it returns are views of that arena, not
copies: the arena is adopted by a Python object that every array keeps
alive, and it is freed when the last array goes.
"""

import os
import sys
import time
import warnings
import weakref

import numpy as np

from . import _dtypes, _trestle
from ._keys import apply_keys, check_keys
from ._reader import _fspath, open_checkpoint
from .errors import NotResidentWarning

__all__ = ["Array", "RestoreResult", "convert", "restore"]

_MAX_THREADS = 1024   # as the CLI's --threads
_SKIP_REASONS = {1: "excluded", 2: "missing", 3: "variant: opaque to trestle",
                 4: "string: safetensors has no strings"}   # as the CLI says them

# DLPack type codes (dlpack.h DLDataTypeCode).
_DL_INT, _DL_UINT, _DL_FLOAT, _DL_BFLOAT, _DL_COMPLEX, _DL_BOOL = 0, 1, 2, 4, 5, 6
_DL_CPU, _DL_CUDA = 1, 2
_FRAMEWORKS = ("numpy", "torch", "dlpack")


def _dlpack_type(dtype):
    """(code, bits) of a restored DataType for DLPack."""
    if dtype == _dtypes.BFLOAT16:
        return _DL_BFLOAT, 16
    np_dtype = _dtypes.numpy_dtype(dtype, "uint16")
    code = {"i": _DL_INT, "u": _DL_UINT, "f": _DL_FLOAT, "c": _DL_COMPLEX, "b": _DL_BOOL}
    if np_dtype.kind not in code:
        raise TypeError(f"dtype {_dtypes.DType(dtype).name} has no DLPack equivalent")
    return code[np_dtype.kind], np_dtype.itemsize * 8


class Array:
    """A restored tensor in engine memory, host or CUDA device, exported by
    DLPack: ``torch.from_dlpack(a)``, ``numpy.from_dlpack(a)`` (host) and
    other DLPack consumers take it without copying. ``framework='dlpack'``
    returns these; they are also what device restores hand to torch.
    """

    __slots__ = ("_buffer", "dtype", "shape")

    def __init__(self, buffer, dtype, shape):
        self._buffer = buffer
        self.dtype = _dtypes.DType(dtype)
        self.shape = tuple(shape)

    @property
    def device(self):
        """'cpu' or 'cuda:N'."""
        d = self._buffer.device
        return "cpu" if d < 0 else f"cuda:{d}"

    @property
    def nbytes(self):
        return self._buffer.nbytes

    def __dlpack_device__(self):
        d = self._buffer.device
        return (_DL_CPU, 0) if d < 0 else (_DL_CUDA, d)

    def __dlpack__(self, stream=None):
        # The restore finished every copy before returning, so there is no
        # pending work for a consumer's stream to wait for.
        code, bits = _dlpack_type(self.dtype.as_datatype_enum)
        return self._buffer.dlpack(code, bits, self.shape)

    def numpy(self, bfloat16="auto"):
        """A numpy view of a host tensor (no copy)."""
        if self._buffer.device >= 0:
            raise TypeError(f"the tensor is on {self.device}; numpy arrays live in host memory")
        return _numpy_view(self._buffer, self.dtype.as_datatype_enum, self.shape, bfloat16)

    def __array__(self, dtype=None):
        a = self.numpy()
        return a if dtype is None else a.astype(dtype)

    def __repr__(self):
        return f"trestle.Array(shape={self.shape}, dtype={self.dtype.name}, device={self.device})"

    def __reduce__(self):
        # Pickled as what it stands for: a host tensor's values as a numpy
        # array (engine memory cannot travel); a device tensor must be
        # brought to the host by its framework first.
        if self._buffer.device >= 0:
            raise TypeError(f"a trestle.Array on {self.device} cannot be pickled: copy it to "
                            "the host first, e.g. torch.from_dlpack(a).cpu()")
        return (np.asarray, (self.numpy(),))


class RestoreResult(dict):
    """{name: array} of a restore, plus ``stats``: the engine's figures
    (bytes read and verified, per-stage seconds, reader used), and
    ``arena``: a weak reference to the engine memory the arrays view (None
    once the last of them is gone; ``arena().info()`` gives base, bytes and
    device while it lives). With ``server=``: ``resident``, True when the
    arrays map a trestle server's memory (read-only), and ``server_note``,
    why not when they were restored from storage instead."""

    stats = None
    arena = None
    resident = False
    server_note = ""

    def __reduce__(self):
        # pickle.dumps() and torch.save() get the plain dict of arrays the
        # result stands for; `stats` and the weak `arena` stay behind.
        return (dict, (dict(self),))


def _numpy_view(buffer, dtype, shape, bfloat16):
    if dtype == _dtypes.STRING:
        n = int(np.prod(shape, dtype=np.int64))
        value = np.empty(n, dtype=object)
        value[:] = _trestle.decode_strings(buffer, n)
        return value.reshape(shape)
    np_dtype = _dtypes.returned_dtype(dtype, bfloat16)
    if buffer.nbytes == 0:
        return np.empty(shape, dtype=np_dtype)
    return np.frombuffer(buffer, dtype=np_dtype).reshape(shape)


def _torch_view(torch, buffer, dtype, shape):
    """A torch tensor over the buffer (no copy). Strings, and unsigned 16/32/
    64-bit ints on a torch too old to have them (< 2.3), stay numpy views.
    Read-only (resident) memory gives tensors that must not be written: torch
    has no read-only tensors, and its warning about that is left out."""
    if buffer.readonly:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "The given NumPy array is not writable")
            return _torch_view_of(torch, buffer, dtype, shape)
    return _torch_view_of(torch, buffer, dtype, shape)


def _torch_view_of(torch, buffer, dtype, shape):
    if buffer.device >= 0:
        if dtype == _dtypes.STRING:
            raise TypeError("string tensors cannot be restored to a device; read them with "
                            "load_checkpoint(path).get_tensor(name)")
        if dtype == _dtypes.BOOL:   # older torch reads DLPack bools as uint8
            return torch.from_dlpack(Array(buffer, 4, shape)).view(torch.bool)
        return torch.from_dlpack(Array(buffer, dtype, shape))
    array = _numpy_view(buffer, dtype, shape, "uint16")
    if dtype == _dtypes.BFLOAT16:
        return torch.from_numpy(array.view(np.int16)).view(torch.bfloat16)
    name = _dtypes.DType(dtype).name
    if name.startswith("float8") and hasattr(torch, name):
        return torch.from_numpy(array).view(getattr(torch, name))
    try:
        return torch.from_numpy(array)
    except TypeError:
        return array


def _parse_device(device):
    if not isinstance(device, str):
        raise TypeError(f"device must be 'cpu' or 'cuda:N', not {type(device).__name__}")
    if device == "cpu":
        return -1
    if device == "cuda":
        return 0
    if device.startswith("cuda:") and device[5:].isdigit():
        return int(device[5:])
    raise ValueError(f"device must be 'cpu', 'cuda' or 'cuda:N', not {device!r}")


def _str_list(value, what):
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise TypeError(f"{what} must be a str or a list of str")
    return list(value)


def _renames(rename):
    """rename: {graph_name: checkpoint_key} or ["graph=ckpt", ...] ('a/=b/'
    renames a prefix) -> engine rules."""
    if rename is None:
        return []
    if isinstance(rename, dict):
        rules = []
        for k, v in rename.items():
            if not isinstance(k, str) or not isinstance(v, str):
                raise TypeError("rename must map str to str")
            if not k or "=" in k:
                raise ValueError(f"rename: graph name {k!r} must be non-empty and without '='")
            rules.append(f"{k}={v}")
        return rules
    rules = _str_list(rename, "rename")
    for r in rules:
        if "=" not in r or r.startswith("="):
            raise ValueError(f"rename rule {r!r} is not GRAPH_NAME=CHECKPOINT_KEY")
    return rules


def _ops(ops):
    """ops: None, or names, or (name, shape_and_slices[, dtype]) tuples."""
    if ops is None:
        return None
    if isinstance(ops, (str, bytes)) or not hasattr(ops, "__iter__"):
        raise TypeError("ops must be a list of names or (name, shape_and_slices[, dtype]) tuples")
    out, seen = [], set()
    for op in ops:
        if isinstance(op, str):
            op = (op,)
        if not isinstance(op, (tuple, list)) or not 1 <= len(op) <= 3:
            raise TypeError(f"op {op!r} is not a name or (name, shape_and_slices[, dtype])")
        name, spec, dtype = (list(op) + [None, None])[:3]
        if not isinstance(name, str) or not name:
            raise TypeError(f"op name must be a non-empty str, not {name!r}")
        if spec is not None and not isinstance(spec, str):
            raise TypeError(f"shape_and_slices of {name!r} must be a str")
        if name in seen:
            raise ValueError(f"op {name!r} is listed twice; restore returns one array per name")
        seen.add(name)
        out.append((name, spec or None,
                    0 if dtype is None else _dtypes.as_dtype(dtype).as_datatype_enum, 0))
    return out


def _progress(progress, total, what="trestle.restore"):
    """A callback for the engine's progress, or None. The default bar is
    drawn only on a terminal, as the CLI's: logs get no carriage returns."""
    if progress is False or progress is None:
        return None
    if callable(progress) and progress is not True:
        return lambda done: progress(done, total)
    if progress is not True:
        raise TypeError("progress must be True, False or a callable(done_bytes, total_bytes)")
    # As the CLI: a bar on a terminal (or a notebook), never drawn into a log file.
    if not _interactive(sys.stderr):
        return None
    return _Bar(total, what)


def _interactive(stream):
    """True when `stream` shows a progress bar to a person: a terminal, or
    a Jupyter kernel's stream (which tqdm draws as a widget)."""
    if type(stream).__module__.startswith("ipykernel"):
        return True
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


class _Bar:
    """tqdm when installed, else one line on stderr; shown only when the
    work has run for half a second, so small loads print nothing."""

    def __init__(self, total, what):
        self.total, self.what, self.start, self.bar, self.last = (total, what, time.monotonic(),
                                                                  None, 0)

    def __call__(self, done):
        if self.bar is None:
            if time.monotonic() - self.start < 0.5:
                return
            try:
                from tqdm import tqdm
                # GB/s (1e9 bytes per second), as every trestle command prints rates.
                self.bar = tqdm(total=self.total, unit="B", unit_scale=True, unit_divisor=1000,
                                desc=self.what, leave=False)
            except ImportError:
                self.bar = False
        if self.bar:
            self.bar.update(done - self.last)
            if done >= self.total:
                self.bar.close()
        else:
            pct = 100.0 * done / self.total if self.total else 100.0
            end = "\n" if done >= self.total else ""
            sys.stderr.write(f"\r{self.what}: {pct:5.1f}% of {self.total / 2**30:.2f} GiB" + end)
            sys.stderr.flush()
        self.last = done


def _check_threads(threads):
    """threads as the CLI's --threads takes it: 1 to 1024, or None."""
    if threads is None:
        return 0
    message = f"threads wants a number from 1 to {_MAX_THREADS}, not {threads!r}"
    if isinstance(threads, bool) or not isinstance(threads, int):
        raise TypeError(message)
    if not 1 <= threads <= _MAX_THREADS:
        raise ValueError(message)
    return threads


def _check_renames(ops, rename, rnn_renames):
    """rename= maps op names to keys: without ops, as the CLI's --rename
    without --ops, it would do nothing and is refused."""
    if ops is None and (rename or rnn_renames):
        raise ValueError("rename and rnn_renames map the names of ops to checkpoint keys; they "
                         "need ops (to name the tensors of the result or the file, use keys=)")


def _check_as_dtype(ckpt, as_dtype):
    """The target dtype, or 0; as the CLI's --as, one that no tensor of the
    checkpoint converts to is refused."""
    if as_dtype is None:
        return 0
    target = _dtypes.as_dtype(as_dtype)
    if not any(_trestle.dtype_can_convert(t[1], target.as_datatype_enum) for t in ckpt.tensors()):
        raise ValueError(f"as_dtype {target.name}: no tensor of this checkpoint converts to "
                         f"{target.name} (supported: float32 -> bfloat16, float32 -> float16, "
                         "float16 -> float32, bfloat16 -> float32)")
    return target.as_datatype_enum


def _conversions(ckpt, ops, rules, exclude, allow_missing, rnn, as_dtype, bfloat16, strings):
    """The op list with target dtypes: `as_dtype` for every op whose stored
    dtype converts to it, float32 for bfloat16 ops when bfloat16='float32'.
    Stored dtypes come from a first plan (no data read). `strings` False
    leaves string tensors out of an every-tensor list (safetensors)."""
    target = None if as_dtype is None else _dtypes.as_dtype(as_dtype).as_datatype_enum
    if target is None and bfloat16 != "float32" and (strings or ops is not None):
        return ops
    probe = _trestle.Plan(ckpt, ops, rules, exclude, allow_missing, rnn).ops()
    out = []
    for i, (name, key, skipped, dtype, _, _, _) in enumerate(probe):
        if skipped and ops is None:
            continue
        if ops is None and not strings and _trestle.dtype_size(dtype) == 0:
            continue
        base = ops[i] if ops is not None else (name, None, 0, 0)
        want = 0
        if target is not None and _trestle.dtype_can_convert(dtype, target):
            want = target
        elif bfloat16 == "float32" and dtype == _dtypes.BFLOAT16:
            want = _dtypes.FLOAT32
        out.append(base[:3] + (want,))
    return out


def restore(path, ops=None, *, rename=None, keys=None, exclude=None, allow_missing=False,
            as_dtype=None, device="cpu", framework="numpy", bfloat16="auto", progress=True,
            threads=None, verify=True, rnn_renames=False, connections=None, attempts=None,
            backoff_ms=None, server=None):
    """Restore tensors in one pipeline pass; returns {name: array}.

    path: a checkpoint prefix, file or directory (as load_checkpoint).
    ops: None for every tensor, or a list of names or
        (name, shape_and_slices[, dtype]) tuples, as TensorFlow's RestoreV2
        takes them; `dtype` is checked against the stored one.
    rename: with ops, {op_name: checkpoint_key} or ["op=key", "a/=b/"]:
        where each op is read from (a rule ending in '/' renames a prefix), as
        the CLI's --rename. Refused without ops.
    keys: the names of the result: a callable(name) -> name, or a mapping
        applied in order, each entry to the name the entries before it left:
        {"model/": ""} drops a prefix (str keys ending in '/'), other str
        keys rename one name, compiled re.Pattern keys replace every match
        (re.sub). See trestle._keys.
    exclude: glob pattern(s) of op names to leave out.
    allow_missing: leave out ops whose key is not in the checkpoint (else a
        KeyNotFoundError lists every missing key with suggestions).
    as_dtype: convert every tensor whose stored dtype converts to it on load
        (float32 -> bfloat16/float16, bfloat16/float16 -> float32).
    device: 'cpu' or 'cuda:N' (engine-allocated device memory; string
        tensors, which have no device form, are then left out).
    framework: 'numpy' (host only), 'torch', or 'dlpack' (trestle.Array).
    bfloat16: numpy's view of bfloat16 (see load_checkpoint); 'float32'
        converts on load in the engine.
    progress: True (on a terminal, a bar after half a second: tqdm if
        installed), False, or a callable(done_bytes, total_bytes) called
        about ten times a second.
    threads, verify: engine workers, 1 to 1024 (default: cores, at most 8);
        CRC32C checking (on by default).
    connections, attempts, backoff_ms: for a gs://, s3:// or http(s):// URL,
        ranged GETs in flight (default 32), tries per request (default 8)
        and the first retry's delay (default 200 ms), as the CLI's
        --connections, --attempts and --backoff.
    server: a `trestle serve` socket path ('default': $XDG_RUNTIME_DIR/
        trestle.sock, else /run/trestle/trestle.sock). When `trestle preload`
        made this selection (the same ops, rename, exclude, as_dtype) of this
        version of the files resident there, the arrays map its memory,
        read-only, in milliseconds (numpy arrays are not writeable; torch
        tensors must not be written: a write faults); otherwise a
        NotResidentWarning says why and the restore goes ahead from storage.
        ``result.resident`` tells which.

    The arrays are views of one engine allocation, kept alive by the arrays
    themselves and freed when the last one is gone. Ctrl-C cancels cleanly.
    """
    path = _fspath(path)
    ops = _ops(ops)
    rules = _renames(rename)
    _check_renames(ops, rules, rnn_renames)
    check_keys(keys)
    exclude = _str_list(exclude, "exclude")
    device_id = _parse_device(device)
    if framework not in _FRAMEWORKS:
        raise ValueError(f"framework must be one of {', '.join(map(repr, _FRAMEWORKS))}, "
                         f"not {framework!r}")
    if framework == "numpy" and device_id >= 0:
        raise ValueError("numpy arrays live in host memory: use framework='torch' or 'dlpack' "
                         "with device='cuda:N'")
    _dtypes.check_bfloat16_mode(bfloat16)
    threads = _check_threads(threads)
    if as_dtype is not None:
        _dtypes.as_dtype(as_dtype)
    _progress(progress, 0)   # its type, before any I/O
    torch = None
    if framework == "torch":
        import torch

    ckpt = open_checkpoint(path, connections, attempts, backoff_ms)
    _check_as_dtype(ckpt, as_dtype)
    # String tensors have no device form (and DLPack no string type): a
    # device restore of every tensor leaves them out, as convert() does.
    ops = _conversions(ckpt, ops, rules, exclude, allow_missing, rnn_renames, as_dtype, bfloat16,
                       device_id < 0)
    result = RestoreResult()
    attached = None
    if server is not None:
        socket = None if server == "default" else _fspath(server, "server")
        attached, buffers = _trestle.attach(ckpt, ops, rules, exclude, bool(allow_missing),
                                            bool(rnn_renames), socket=socket, device=device_id)
        if attached is None:
            result.server_note = buffers
            warnings.warn(f"trestle.restore: not resident: {buffers}; restoring from storage",
                          NotResidentWarning, stacklevel=2)
    if attached is not None:
        result.resident = True
        result.stats = {"tensors": attached.info()["tensors"], "bytes_read": 0,
                        "attach_seconds": attached.info()["seconds"]}
        result.arena = weakref.ref(attached)
        op_infos = attached.ops()
        del attached   # the arrays alone keep the mapping
    else:
        plan = _trestle.Plan(ckpt, ops, rules, exclude, bool(allow_missing), bool(rnn_renames))
        total = plan.stats()["output_bytes"]
        result.stats = plan.restore(device=device_id, threads=threads, verify=bool(verify),
                                    progress=_progress(progress, total))
        if framework == "numpy":
            del ckpt   # host_arrays() frees the plan, and then the checkpoint
            return _numpy_result(plan, result, keys, bfloat16)
        arena, buffers = plan.take_arena()
        result.arena = weakref.ref(arena)
        del arena   # the arrays alone keep it alive
        op_infos = plan.ops()
    kept = [(op, buf) for op, buf in zip(op_infos, buffers) if not op[2]]
    names = apply_keys(keys, [op[0] for op, _ in kept])
    for name, ((_, _, _, _, out_dtype, shape, _), buf) in zip(names, kept):
        if framework == "numpy":   # resident: views of the server's read-only memory
            result[name] = _numpy_view(buf, out_dtype, shape, bfloat16)
        elif framework == "torch":
            result[name] = _torch_view(torch, buf, out_dtype, shape)
        else:
            result[name] = Array(buf, out_dtype, shape)
    return result


def _numpy_result(plan, result, keys, bfloat16):
    """restore()'s numpy arrays of a restored plan, made by the engine: one
    ndarray() call each over one Buffer of the whole arena; strings (object
    arrays) are left here. host_arrays() frees the plan, and the checkpoint
    once nothing else holds it (the caller does not), before it makes the
    arrays."""
    arena, whole = plan.take_arena(per_op=False)
    result.arena = weakref.ref(arena)
    del arena   # the arrays alone keep the arena alive
    names = [op[0] for op in plan.ops() if not op[2]] if keys is not None else None
    used = set()
    for name, out_dtype, shape, buf in plan.host_arrays(whole, _host_dtypes(bfloat16),
                                                         result, used):
        result[name] = (_numpy_view(buf, out_dtype, shape, bfloat16) if buf is not None
                        else np.empty(shape, _dtypes.returned_dtype(out_dtype, bfloat16)))
    for value in sorted(used):
        if not _dtypes.native(value):
            _dtypes.returned_dtype(value, bfloat16)   # says once that they are raw bits
    if names is not None:
        # The result's names (keys=), applied to the ops in op order.
        values = [result.pop(name) for name in names]
        for name, value in zip(apply_keys(keys, names), values):
            result[name] = value
    return result


def _host_dtypes(bfloat16):
    """{DataType: numpy dtype} of every dtype whose restored bytes are a
    plain numpy array (not strings, not the ones that cannot be read):
    bfloat16 and float8 too, as ml_dtypes' types or their raw bits, so that
    100,000 bfloat16 tensors are one ndarray each, not two and a Buffer
    (issue 24); restore() says afterwards when raw bits came back."""
    out = {}
    for value in _dtypes.values():
        if value == _dtypes.STRING:
            continue
        try:
            out[value] = _dtypes.numpy_dtype(value, bfloat16)
        except TypeError:
            pass    # left to _numpy_view, which raises it
    return out


def convert(path, out, ops=None, *, rename=None, keys=None, transpose=None, exclude=None,
            allow_missing=False, skip_unsupported=False, as_dtype=None, threads=None, sync=True,
            rnn_renames=False, progress=True, connections=None, attempts=None,
            backoff_ms=None):
    """Write tensors into a safetensors file at `out` (trestle convert).

    The same selection as restore() (ops, rename, keys, exclude,
    allow_missing, as_dtype); every CRC32C is checked and the file appears
    only when complete (a temporary file renamed over `out`; nothing is left
    behind on failure). Without ops, string tensors are left out
    (safetensors cannot hold them); variant tensors are refused unless
    excluded or `skip_unsupported`.

    keys: the tensors' names in the file, as for restore() (a callable or a
        mapping of names, '/'-ended prefixes and re.Pattern substitutions).
    transpose: glob pattern(s) of op names (checkpoint keys without ops)
        whose 2-D tensors are written transposed, [a, b] -> [b, a] (TF's
        Dense kernels are [in, out], torch's Linear weights [out, in]); each
        is transposed as its bytes land. A pattern that matches nothing, or
        a tensor that is not 2-D, is an error.
    progress, connections, attempts, backoff_ms: as for restore().

    `out` may not be one of the checkpoint's own files, nor a device node,
    FIFO or directory. Returns {'tensors', 'skipped', 'skipped_tensors'
    ({name: why}), 'header_bytes', 'file_bytes', 'wall_seconds'}.
    """
    path = _fspath(path)
    out = _fspath(out, "out")
    ops = _ops(ops)
    rules = _renames(rename)
    _check_renames(ops, rules, rnn_renames)
    check_keys(keys)
    exclude = _str_list(exclude, "exclude")
    transpose = _str_list(transpose, "transpose")
    threads = _check_threads(threads)
    if as_dtype is not None:
        _dtypes.as_dtype(as_dtype)
    _progress(progress, 0)
    if not os.path.isdir(os.path.dirname(os.path.abspath(out))):
        raise ValueError(f"the directory of {out!r} does not exist")
    ckpt = open_checkpoint(path, connections, attempts, backoff_ms)
    conv = _trestle.Conversion(ckpt, ops, rules, exclude, bool(allow_missing), bool(rnn_renames),
                               bool(skip_unsupported), transpose=transpose,
                               as_dtype=_check_as_dtype(ckpt, as_dtype), threads=threads,
                               sync=bool(sync))
    entries = conv.entries()
    kept = [i for i, e in enumerate(entries) if not e[3]]
    if keys is not None:
        for i, name in zip(kept, apply_keys(keys, [entries[i][0] for i in kept])):
            conv.set_name(i, name)
    total = sum(entries[i][8] for i in kept)
    stats = conv.write(out, progress=_progress(progress, total, "trestle.convert"))
    stats["skipped_tensors"] = {e[0]: _SKIP_REASONS.get(e[3], "skipped") for e in entries
                                if e[3]}
    return stats
