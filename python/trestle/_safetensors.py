"""safetensors files for arrays a program built: save_safetensors() and
load_safetensors().

convert() writes a checkpoint's tensors straight into a file; these two are
for the dicts of arrays in between (a converter that computed some tensors
itself, a test that reads a file back). The layout is the one convert()
writes and Hugging Face's safetensors library reads: an 8-byte
little-endian header length, a JSON header of each tensor's dtype, shape
and byte range (plus "__metadata__", a str -> str dict), padded with spaces
to a multiple of 8, then the tensors back to back, largest element first and
then by name, so each is aligned to its element size. The same names are
refused as by convert(): "__metadata__" and names that are not valid UTF-8.
"""

import json
import mmap
import os
import stat
import tempfile

import numpy as np

from . import _dtypes

__all__ = ["load_safetensors", "save_safetensors"]

# numpy dtype name -> safetensors dtype; bfloat16 and float8 come from
# ml_dtypes or torch (below).
_ST_DTYPES = {"float64": "F64", "float32": "F32", "float16": "F16", "int64": "I64",
              "int32": "I32", "int16": "I16", "int8": "I8", "uint64": "U64", "uint32": "U32",
              "uint16": "U16", "uint8": "U8", "bool": "BOOL", "bfloat16": "BF16",
              "float8_e4m3fn": "F8_E4M3", "float8_e5m2": "F8_E5M2"}
_ST_TO_NUMPY = {v: k for k, v in _ST_DTYPES.items() if k not in
                ("bfloat16", "float8_e4m3fn", "float8_e5m2")}
# Without ml_dtypes the 16- and 8-bit floats load as their raw bits.
_ST_RAW = {"BF16": "bfloat16", "F8_E4M3": "float8_e4m3fn", "F8_E5M2": "float8_e5m2"}
_METADATA = "__metadata__"


def _as_bytes_and_dtype(name, value):
    """(C-contiguous bytes-like, safetensors dtype, shape) of one value."""
    if type(value).__module__.split(".")[0] == "torch":
        import torch
        t = value.detach().to("cpu").contiguous()
        st = {torch.bfloat16: "BF16", torch.float16: "F16", torch.float32: "F32",
              torch.float64: "F64", torch.int8: "I8", torch.uint8: "U8", torch.int16: "I16",
              torch.int32: "I32", torch.int64: "I64", torch.bool: "BOOL"}.get(t.dtype)
        for fp8, code in (("float8_e4m3fn", "F8_E4M3"), ("float8_e5m2", "F8_E5M2")):
            if getattr(torch, fp8, None) is t.dtype:
                st = code
        if st is None:
            raise TypeError(f"tensor {name!r}: torch dtype {t.dtype} has no safetensors dtype")
        bits = t.view(torch.int16) if t.dtype == torch.bfloat16 else \
            t.view(torch.uint8) if st.startswith("F8") else t
        return bits.numpy().reshape(-1).view(np.uint8), st, tuple(t.shape)
    a = np.asarray(value)   # not ascontiguousarray: it makes scalars 1-D
    if not a.flags.c_contiguous:
        a = a.copy(order="C")
    st = _ST_DTYPES.get(a.dtype.name)
    if st is None:
        raise TypeError(f"tensor {name!r}: numpy dtype {a.dtype} has no safetensors dtype")
    return a.reshape(-1).view(np.uint8), st, a.shape


def _check_name(name):
    if not isinstance(name, str):
        raise TypeError(f"tensor names must be str, not {type(name).__name__}")
    if name == _METADATA:
        raise ValueError(f"tensor {name!r}: {_METADATA} is the safetensors header's own key, "
                         "and no tensor can have that name")
    try:
        name.encode("utf-8")
    except UnicodeEncodeError as e:
        raise ValueError(f"tensor {name!r}: its name is not valid UTF-8 (byte {e.start}), and "
                         "a safetensors header (JSON text) cannot hold it") from None


def _check_out(path):
    """The rename at the end must not replace a device node, FIFO or
    directory (as convert() refuses them)."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISREG(mode):
        raise ValueError(f"cannot write to {path}: it is not a regular file; a safetensors "
                         "file is written to a new file renamed into place, which would "
                         "replace it")


def save_safetensors(mapping, path, metadata=None):
    """Write {name: array} (numpy arrays, torch tensors, anything numpy
    takes) to a safetensors file at `path`, atomically: a temporary file
    beside it, renamed over `path` when complete. `metadata` is a dict of
    str to str for the header's "__metadata__" (default {"format": "pt"},
    what convert() writes). Returns the file's size in bytes.
    """
    path = os.fspath(path)
    if not hasattr(mapping, "items"):
        raise TypeError("save_safetensors wants a mapping of name to array")
    if metadata is None:
        metadata = {"format": "pt"}
    if not isinstance(metadata, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
        raise TypeError("metadata must be a dict of str to str")
    tensors = []
    for name, value in mapping.items():
        _check_name(name)
        data, st, shape = _as_bytes_and_dtype(name, value)
        esize = np.dtype(_ST_TO_NUMPY.get(st, "uint16" if st == "BF16" else "uint8")).itemsize
        tensors.append((-esize, name, data, st, shape))
    tensors.sort(key=lambda t: (t[0], t[1].encode("utf-8")))
    header, at = {_METADATA: metadata}, 0
    for _, name, data, st, shape in tensors:
        header[name] = {"dtype": st, "shape": [int(d) for d in shape],
                        "data_offsets": [at, at + data.nbytes]}
        at += data.nbytes
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    text += b" " * (-len(text) % 8)
    _check_out(path)
    fd, tmp = tempfile.mkstemp(prefix=os.path.basename(path) + ".tmp-",
                               dir=os.path.dirname(os.path.abspath(path)))
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(len(text).to_bytes(8, "little"))
            f.write(text)
            for _, _, data, _, _ in tensors:
                f.write(memoryview(data))
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        _check_out(path)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    return 8 + len(text) + at


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def load_safetensors(path, framework="numpy"):
    """{name: array} of a safetensors file, each a view of a private
    copy-on-write mapping of it (no copy; changing an array does not change
    the file). framework: 'numpy' (bfloat16 and float8 as ml_dtypes when
    installed, else their raw bits as uint16/uint8) or 'torch'. The
    header's "__metadata__" is the result's ``metadata`` attribute.
    """
    if framework not in ("numpy", "torch"):
        raise ValueError(f"framework must be 'numpy' or 'torch', not {framework!r}")
    with open(os.fspath(path), "rb") as f:
        size = os.fstat(f.fileno()).st_size
        m = mmap.mmap(f.fileno(), size, access=mmap.ACCESS_COPY) if size else b""
    if size < 8:
        raise ValueError(f"{path}: not a safetensors file ({size} bytes)")
    n = int.from_bytes(m[:8], "little")
    if 8 + n > size:
        raise ValueError(f"{path}: header of {n} bytes runs past the end of the file")
    header = json.loads(bytes(m[8:8 + n]).decode("utf-8"))
    result = _Loaded()
    result.metadata = header.pop(_METADATA, None)
    torch = None
    if framework == "torch":
        import torch
    for name, t in header.items():
        begin, end = t["data_offsets"]
        st = t["dtype"]
        raw = np.frombuffer(m, dtype=np.uint8, count=end - begin, offset=8 + n + begin)
        if torch is not None and st in _ST_RAW and hasattr(torch, _ST_RAW[st]):
            bits = raw.view(np.int16) if st == "BF16" else raw
            result[name] = torch.from_numpy(bits).view(getattr(torch, _ST_RAW[st])).reshape(
                t["shape"])
            continue
        if st in _ST_RAW:
            np_dtype = _dtypes.numpy_dtype(_dtypes.as_dtype(_ST_RAW[st]).as_datatype_enum,
                                           "auto")
        else:
            np_dtype = np.dtype(_ST_TO_NUMPY[st])
        a = raw.view(np_dtype).reshape(t["shape"])
        result[name] = torch.from_numpy(a) if torch is not None else a
    return result


class _Loaded(dict):
    """{name: array} of load_safetensors(), with the header's metadata."""

    metadata = None
