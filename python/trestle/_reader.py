"""TensorFlow's checkpoint-reading calls, without TensorFlow.

Same names, arguments, path resolution and results as ``tf.train``:
``list_variables``, ``load_variable``, ``latest_checkpoint`` and
``load_checkpoint`` (whose reader has ``get_variable_to_shape_map``,
``get_variable_to_dtype_map``, ``has_tensor`` and ``get_tensor``). A path is
a checkpoint prefix, its ``.index`` or a data file, or a directory resolved
through its ``checkpoint`` state file (as ``tf.train.latest_checkpoint``),
else a SavedModel's ``variables/variables`` or the directory's one index.

Results: numpy arrays, with scalars as numpy scalars as TensorFlow gives
them; strings as ``bytes`` (object arrays of bytes for non-scalars);
bfloat16 as described in :func:`load_checkpoint`.
"""

import os
import warnings

import numpy as np

from . import _dtypes, _trestle
from .errors import InvalidCheckpointStateError, KeyNotFoundError, TrestleError

__all__ = ["CheckpointReader", "latest_checkpoint", "list_variables", "load_checkpoint",
           "load_variable"]


def _fspath(path, what="path"):
    if isinstance(path, bytes):
        return os.fsdecode(path)
    try:
        return os.fspath(path)
    except TypeError:
        raise TypeError(f"{what} must be a str or os.PathLike, not {type(path).__name__}") from None


def _tensor_name(name, what="tensor name"):
    """A tensor name as str: TensorFlow also takes bytes (decoded as file
    names are, so any key round-trips)."""
    if isinstance(name, bytes):
        return os.fsdecode(name)
    if not isinstance(name, str):
        raise TypeError(f"{what} must be a str or bytes, not {type(name).__name__}")
    return name


# A URL's remote options as the CLI's --connections, --attempts and --backoff take them.
_REMOTE_LIMITS = {"connections": 1024, "attempts": 100, "backoff_ms": 600000}


def _remote_options(**given):
    """The remote options given (not None), each checked: an int in range."""
    out = {}
    for name, value in given.items():
        if value is None:
            continue
        message = f"{name} wants a number from 1 to {_REMOTE_LIMITS[name]}, not {value!r}"
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(message)
        if not 1 <= value <= _REMOTE_LIMITS[name]:
            raise ValueError(message)
        out[name] = value
    return out


def open_checkpoint(path, connections=None, attempts=None, backoff_ms=None):
    """A _trestle.Checkpoint for a path, after the argument checks."""
    remote = _remote_options(connections=connections, attempts=attempts, backoff_ms=backoff_ms)
    return _trestle.Checkpoint(_fspath(path), **remote)


def raise_missing(ckpt, names):
    """Raise the engine's report for keys that are not in `ckpt`: every
    missing key, each with the nearest existing names (a plan of the names
    is made for that; planning reads no tensor data)."""
    _trestle.Plan(ckpt, [(n, None, 0, 0) for n in names])
    raise KeyNotFoundError("\n".join(f"Key {n} not found in checkpoint" for n in names),
                           names)  # not reached: the plan raised


class CheckpointReader:
    """What ``tf.train.load_checkpoint`` returns: one open checkpoint.

    The tensor listing is read once, at open; ``get_tensor`` reads one
    tensor synchronously (pread) and verifies its CRC32C. For many tensors
    at once, :func:`trestle.restore` is the fast path.
    """

    def __init__(self, path, bfloat16="auto"):
        _dtypes.check_bfloat16_mode(bfloat16)
        self._ckpt = open_checkpoint(path)
        self._bfloat16 = bfloat16
        self._tensors = {t[0]: (i, t) for i, t in enumerate(self._ckpt.tensors())}
        self._info = self._ckpt.info()

    @property
    def prefix(self):
        """The resolved checkpoint prefix."""
        return self._info["prefix"]

    def get_variable_to_shape_map(self):
        """{name: [dims]} for every tensor, as TensorFlow's reader."""
        return {name: list(t[3]) for name, (_, t) in self._tensors.items()}

    def get_variable_to_dtype_map(self):
        """{name: trestle.DType}; ``.name`` is TensorFlow's ('float32', 'bfloat16', ...),
        ``.as_numpy_dtype`` the type of the arrays ``get_tensor`` returns for it."""
        return {name: _dtypes.DType(t[1], self._bfloat16) for name, (_, t) in self._tensors.items()}

    def has_tensor(self, name):
        """True when the checkpoint lists `name` (str or bytes)."""
        return _tensor_name(name) in self._tensors

    def get_tensor(self, name, *, bfloat16=None):
        """The value of tensor `name` as numpy (a numpy scalar or bytes for
        scalars, as TensorFlow returns them).

        ``bfloat16`` overrides the reader's bfloat16 mode for this call.
        Raises :class:`trestle.KeyNotFoundError` (a KeyError) naming the
        closest keys when `name` is not in the checkpoint.
        """
        name = _tensor_name(name)
        mode = self._bfloat16 if bfloat16 is None else bfloat16
        _dtypes.check_bfloat16_mode(mode)
        if name not in self._tensors:
            raise_missing(self._ckpt, [name])
        index, (_, dtype, _, shape, _, _, _, read_size) = self._tensors[name]
        if dtype != _dtypes.STRING and not (dtype == _dtypes.BFLOAT16 and mode == "float32"):
            np_dtype = _dtypes.returned_dtype(dtype, mode)   # TypeError for variant/resource
        raw = np.empty(read_size, dtype=np.uint8)
        self._ckpt.read(index, raw)
        if dtype == _dtypes.STRING:
            value = np.empty(int(np.prod(shape, dtype=np.int64)), dtype=object)
            value[:] = _trestle.decode_strings(raw, value.size)
            value = value.reshape(shape)
        elif dtype == _dtypes.BFLOAT16 and mode == "float32":
            value = _dtypes.bfloat16_to_float32(raw.view(np.uint16)).reshape(shape)
        else:
            value = raw.view(np_dtype).reshape(shape)
        return value[()] if value.ndim == 0 else value

    def debug_string(self):
        """One line per tensor, 'name (dtype) [dims]', as TensorFlow's reader."""
        return "".join(f"{name} ({_dtypes.DType(t[1]).name}) {list(t[3])}\n"
                       for name, (_, t) in sorted(self._tensors.items())).encode()


def load_checkpoint(ckpt_dir_or_file, *, bfloat16="auto"):
    """``tf.train.load_checkpoint``: a :class:`CheckpointReader`.

    bfloat16 tensors (numpy has no bfloat16) come back according to
    ``bfloat16``:

    - ``"auto"`` (default): ``ml_dtypes.bfloat16`` arrays when ml_dtypes is
      importable (as TensorFlow returns them), else ``"uint16"``;
    - ``"uint16"``: the raw bits as a uint16 array (a view, no copy);
    - ``"float32"``: widened exactly to float32;
    - ``"ml_dtypes"``: ``ml_dtypes.bfloat16``, or ValueError without it.

    float8 tensors follow the same rule (ml_dtypes types, else raw uint8).
    """
    return CheckpointReader(ckpt_dir_or_file, bfloat16=bfloat16)


def list_variables(ckpt_dir_or_file):
    """``tf.train.list_variables``: sorted [(name, shape)] of the checkpoint."""
    shapes = load_checkpoint(ckpt_dir_or_file).get_variable_to_shape_map()
    return [(name, shapes[name]) for name in sorted(shapes)]


def load_variable(ckpt_dir_or_file, name, *, bfloat16="auto"):
    """``tf.train.load_variable``: one tensor's value (a trailing ':0' is dropped)."""
    name = _tensor_name(name, "name")
    if name.endswith(":0"):
        name = name[:-2]
    return load_checkpoint(ckpt_dir_or_file, bfloat16=bfloat16).get_tensor(name)


def latest_checkpoint(checkpoint_dir, latest_filename=None):
    """``tf.train.latest_checkpoint``: the prefix the directory's
    ``checkpoint`` state file names (joined to the directory when relative),
    or None when there is no state file.

    The file is read and parsed by the engine, as ``load_checkpoint`` of the
    directory reads it (``trestle_latest_checkpoint``), so both give one
    answer: escapes (TensorFlow writes non-ASCII paths in octal), the last
    ``model_checkpoint_path`` line, ``#`` comments. Where TensorFlow logs a
    warning and returns None (a state file it cannot read or parse, or one
    naming a checkpoint whose files are gone), this warns with the engine's
    message and returns None; a FIFO, device or file over 16 MiB is such an
    unreadable file, refused without blocking. An empty
    model_checkpoint_path raises :class:`trestle.InvalidCheckpointStateError`,
    a ValueError, as TensorFlow's does.
    """
    checkpoint_dir = _fspath(checkpoint_dir, "checkpoint_dir")
    if latest_filename is not None:
        latest_filename = _fspath(latest_filename, "latest_filename")
    try:
        return _trestle.latest_checkpoint(checkpoint_dir, latest_filename)
    except InvalidCheckpointStateError:
        raise
    except TrestleError as e:
        warnings.warn(f"{e.message}; checkpoint ignored", RuntimeWarning, stacklevel=2)
        return None
