"""TensorFlow dtypes without TensorFlow: names, numpy equivalents, bfloat16.

``get_variable_to_dtype_map()`` returns :class:`DType` objects, which stand
in for ``tf.DType``: ``.name`` is TensorFlow's Python name (``"float32"``,
``"bfloat16"``, ``"string"``), ``.as_datatype_enum`` the DataType number,
and they compare equal to each other, to those names, and to numpy dtypes.
"""

import os
import sys
import warnings

import numpy as np

from . import _trestle
from .errors import RawBitsWarning

# DataType value -> (TensorFlow's Python name, numpy dtype or None). A few
# have no numpy type of their own: bfloat16 and float8 depend on ml_dtypes
# (see numpy_dtype()), string is an object array of bytes, and the quantized
# types come back as their plain integer storage.
_TABLE = {
    1: ("float32", np.float32), 2: ("float64", np.float64), 3: ("int32", np.int32),
    4: ("uint8", np.uint8), 5: ("int16", np.int16), 6: ("int8", np.int8),
    7: ("string", object), 8: ("complex64", np.complex64), 9: ("int64", np.int64),
    10: ("bool", np.bool_), 11: ("qint8", np.int8), 12: ("quint8", np.uint8),
    13: ("qint32", np.int32), 14: ("bfloat16", None), 15: ("qint16", np.int16),
    16: ("quint16", np.uint16), 17: ("uint16", np.uint16), 18: ("complex128", np.complex128),
    19: ("float16", np.float16), 20: ("resource", None), 21: ("variant", None),
    22: ("uint32", np.uint32), 23: ("uint64", np.uint64), 24: ("float8_e5m2", None),
    25: ("float8_e4m3fn", None), 26: ("float8_e4m3fnuz", None), 27: ("float8_e4m3b11fnuz", None),
    28: ("float8_e5m2fnuz", None), 29: ("int4", np.int8), 30: ("uint4", np.uint8),
    31: ("int2", np.int8), 32: ("uint2", np.uint8),
}
_BY_NAME = {name: value for value, (name, _) in _TABLE.items()}
# numpy's and TensorFlow C++'s spellings, accepted wherever a dtype is given.
_BY_NAME.update({"float": 1, "double": 2, "half": 19, "bf16": 14, "fp32": 1, "fp16": 19})

# numpy dtype -> DataType, for the plain types (not the quantized aliases).
_FROM_NUMPY = {np.dtype(_TABLE[v][1]): v for v in (1, 2, 3, 4, 5, 6, 8, 9, 10, 17, 18, 19, 22, 23)}

FLOAT32, BFLOAT16, STRING, FLOAT16, BOOL = 1, 14, 7, 19, 10
BFLOAT16_MODES = ("auto", "uint16", "float32", "ml_dtypes")


_ML_DTYPES_MISSING = []   # [True] once an import of ml_dtypes has failed


def _ml_dtypes():
    # Python does not remember a failed import: searching sys.path again
    # for every bfloat16 tensor took ~150 us each, 15 s for a model of
    # 100,000 tensors (issue 24). So a failure is remembered here; a module
    # put in sys.modules later (a test's stand-in) is still found.
    module = sys.modules.get("ml_dtypes")
    if module is not None or _ML_DTYPES_MISSING:
        return module
    try:
        import ml_dtypes
    except ImportError:
        _ML_DTYPES_MISSING.append(True)
        return None
    return ml_dtypes


class DType:
    """A TensorFlow dtype, as ``tf.DType`` presents it (name, enum, size).

    ``bfloat16`` is the reading mode of the reader that listed it (see
    ``load_checkpoint``), so that ``as_numpy_dtype`` is the type of the
    arrays that reader's ``get_tensor`` returns."""

    __slots__ = ("_value", "_bfloat16")

    def __init__(self, value, bfloat16="auto"):
        if value not in _TABLE:
            raise ValueError(f"unknown TensorFlow DataType {value}")
        self._value = value
        self._bfloat16 = bfloat16

    @property
    def name(self):
        """TensorFlow's Python name: 'float32', 'bfloat16', 'string', ..."""
        return _TABLE[self._value][0]

    @property
    def as_datatype_enum(self):
        """The DataType number stored in checkpoints (types.proto)."""
        return self._value

    @property
    def as_numpy_dtype(self):
        """The numpy type of the arrays get_tensor() returns for it: bfloat16
        is ml_dtypes.bfloat16, numpy.uint16 (raw bits, without ml_dtypes or
        with bfloat16='uint16') or numpy.float32 (bfloat16='float32')."""
        return array_dtype(self._value, self._bfloat16).type

    @property
    def size(self):
        """Bytes per element as stored (0 for string, resource, variant)."""
        return _trestle.dtype_size(self._value)

    def __eq__(self, other):
        if isinstance(other, DType):
            return other._value == self._value
        if isinstance(other, str):
            return _BY_NAME.get(other) == self._value
        try:
            return np.dtype(other) == array_dtype(self._value, self._bfloat16)
        except TypeError:
            return NotImplemented

    def __hash__(self):
        return hash(self._value)

    def __repr__(self):
        return f"trestle.{self.name}"

    __str__ = __repr__


def as_dtype(value):
    """A DType from a DType, DataType number, name ('bfloat16', 'float') or numpy dtype."""
    if isinstance(value, DType):
        return value
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return DType(int(value))
    if isinstance(value, str):
        if value not in _BY_NAME:
            raise ValueError(f"unknown dtype name {value!r}")
        return DType(_BY_NAME[value])
    try:
        np_dt = np.dtype(value)
    except TypeError:
        raise TypeError(f"expected a dtype, got {type(value).__name__}") from None
    ml = _ml_dtypes()
    if ml is not None and np_dt == np.dtype(ml.bfloat16):
        return DType(BFLOAT16)
    if np_dt not in _FROM_NUMPY:
        raise ValueError(f"numpy dtype {np_dt} has no TensorFlow equivalent")
    return DType(_FROM_NUMPY[np_dt])


def check_bfloat16_mode(mode):
    if mode not in BFLOAT16_MODES:
        raise ValueError(f"bfloat16 must be one of {', '.join(map(repr, BFLOAT16_MODES))}, "
                         f"not {mode!r}")
    if mode == "ml_dtypes" and _ml_dtypes() is None:
        raise ValueError("bfloat16='ml_dtypes' needs the ml_dtypes package, which is not "
                         "importable; use 'uint16' or 'float32'")


def values():
    """Every DataType number this table knows."""
    return list(_TABLE)


def numpy_dtype(value, bfloat16="auto"):
    """The numpy dtype of a DataType's restored bytes.

    bfloat16 (and the float8 types) have no numpy type: with ``bfloat16``
    'auto' they are ml_dtypes' types when ml_dtypes is importable, else their
    raw bits (uint16 / uint8); 'uint16' is always the raw bits; 'ml_dtypes'
    insists on ml_dtypes. ('float32' is handled by the caller: a conversion.)
    """
    name, t = _TABLE[value]
    if t is not None:
        return np.dtype(t)
    if value == BFLOAT16 or name.startswith("float8"):
        ml = _ml_dtypes() if bfloat16 in ("auto", "ml_dtypes", "float32") else None
        if ml is not None and hasattr(ml, name):
            return np.dtype(getattr(ml, name))
        return np.dtype(np.uint16 if value == BFLOAT16 else np.uint8)
    raise TypeError(f"tensors of dtype {name} cannot be read into memory")


def array_dtype(value, bfloat16="auto"):
    """The numpy dtype of the arrays get_tensor() and restore() return for a
    stored DataType under a bfloat16 mode: numpy_dtype(), except that
    'float32' widens bfloat16."""
    if value == BFLOAT16 and bfloat16 == "float32":
        return np.dtype(np.float32)
    return numpy_dtype(value, bfloat16)


def native(value):
    """Whether numpy has a type of its own for DataType `value` (not
    bfloat16 or float8, which depend on ml_dtypes, and not string)."""
    return value in _TABLE and _TABLE[value][1] not in (None, object)


# DataType names already warned about by returned_dtype(): once each per
# process, so a checkpoint of 300 bfloat16 tensors says it once.
_warned_raw = set()


def returned_dtype(value, bfloat16="auto"):
    """numpy_dtype() for an array about to be handed to the user: when
    'auto' falls back to raw bits (no ml_dtypes), say so once, naming what
    gives real values."""
    dt = numpy_dtype(value, bfloat16)
    name = _TABLE[value][0]
    if (bfloat16 == "auto" and dt.kind == "u" and _TABLE[value][1] is None
            and name not in _warned_raw):
        _warned_raw.add(name)
        bits = f"uint{dt.itemsize * 8}"
        warnings.warn(
            f"{name} tensors come back as {bits} arrays of their raw bits: numpy has no "
            f"{name} and ml_dtypes is not installed. For real values: "
            f"trestle.restore(..., framework='torch') gives torch.{name} tensors"
            + ("; " if value == BFLOAT16 else " (torch 2.1 and later); ") +
            f"`pip install ml_dtypes` gives numpy {name} arrays"
            + ("; bfloat16='float32' widens them exactly. " if value == BFLOAT16 else ". ")
            + f"bfloat16='uint16' asks for the raw bits without this warning.",
            RawBitsWarning, stacklevel=_caller_level())
    return dt


def _caller_level():
    """The warnings stacklevel of the first frame outside this package, so a
    warning points at the user's line whichever call led here."""
    here = os.path.dirname(os.path.abspath(__file__))
    level, frame = 1, sys._getframe(1)
    while frame is not None and os.path.dirname(os.path.abspath(frame.f_code.co_filename)) == here:
        level += 1
        frame = frame.f_back
    return level


def bfloat16_to_float32(bits):
    """Exact widening of raw bfloat16 bits (a uint16 array) to float32."""
    return (np.asarray(bits, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)
