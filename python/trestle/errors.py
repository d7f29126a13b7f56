"""Exceptions raised by trestle.

Every failure of the engine becomes a :class:`TrestleError` carrying the
engine's structured facts, so code never parses messages:

``code``
    the engine's numeric error code (stable; see ``trestle_code`` in trestle.h)
``code_name``
    its name, e.g. ``"E_CRC_MISMATCH"``
``key``
    the tensor involved, or ``None``
``path``
    the file involved, or ``None``
``offset``, ``length``
    the byte offset in ``path`` and the byte count involved, or ``None``
``errno``
    the OS error number behind an I/O failure, or ``None``

Subclasses say what kind of failure it is, and are also what code written
for TensorFlow catches, so a port keeps its ``except`` clauses:

=============================  ==============================================
trestle class                  also an instance of
=============================  ==============================================
:class:`KeyNotFoundError`      :class:`NotFoundError` (``tf.errors.NotFoundError``),
                               ``KeyError``
:class:`CheckpointNotFoundError`  :class:`NotFoundError`, ``FileNotFoundError``,
                               ``ValueError`` (``tf.train.load_checkpoint`` of a
                               directory without a checkpoint)
:class:`CorruptCheckpointError`,  :class:`DataLossError` (``tf.errors.DataLossError``)
:class:`ChecksumError`
:class:`InvalidCheckpointStateError`  :class:`CorruptCheckpointError`, ``ValueError``
                               (``Invalid checkpoint state loaded from DIR``)
:class:`DTypeMismatchError`    :class:`InvalidArgumentError`, ``TypeError``
:class:`ShapeMismatchError`    :class:`InvalidArgumentError`, ``ValueError``
=============================  ==============================================

``NotFoundError``, ``DataLossError``, ``InvalidArgumentError`` and ``OpError``
(every engine error: :class:`TrestleError`) stand in for the ``tf.errors``
classes of those names: replace ``tf.errors`` with ``trestle.errors``.
"""

import re

__all__ = [
    "TrestleError", "KeyNotFoundError", "CheckpointNotFoundError", "CorruptCheckpointError",
    "ChecksumError", "DTypeMismatchError", "ShapeMismatchError", "NoDeviceError",
    "InvalidCheckpointStateError", "OpError", "NotFoundError", "DataLossError",
    "InvalidArgumentError", "RawBitsWarning",
]


class TrestleError(Exception):
    """A failure reported by the trestle engine (see the module docstring)."""

    def __init__(self, message, code=None, code_name=None, key=None, path=None, offset=None,
                 length=None, errno=None):
        super().__init__(message)
        self.message = message
        self.code = code
        self.code_name = code_name
        self.key = key or None
        self.path = path or None
        self.offset = offset if offset is not None and offset >= 0 else None
        self.length = length if length is not None and length >= 0 else None
        self.errno = errno or None

    def __str__(self):
        return self.message


OpError = TrestleError
"""``tf.errors.OpError``'s name: every failure the engine reports."""


class NotFoundError(TrestleError):
    """A key or file that is not there: ``tf.errors.NotFoundError``'s stand-in."""


class DataLossError(TrestleError):
    """Corrupt or unreadable data: ``tf.errors.DataLossError``'s stand-in."""


class InvalidArgumentError(TrestleError):
    """An op that does not fit the stored tensor: ``tf.errors.InvalidArgumentError``'s
    stand-in (TensorFlow's restore fails with it on a dtype or shape mismatch)."""


class KeyNotFoundError(NotFoundError, KeyError):
    """One or more keys are not in the checkpoint.

    ``missing`` lists every missing name (all of them, not just the first);
    ``suggestions`` maps a missing name to the closest existing keys, when
    there are any. The message has one line per missing key, as the CLI
    prints it: ``Key a/biases not found in checkpoint (did you mean a/bias?)``.
    """

    def __init__(self, message, missing=(), suggestions=None, **kw):
        super().__init__(message, **kw)
        self.missing = list(missing)
        self.suggestions = dict(suggestions or {})

    def __str__(self):  # KeyError would show repr(message)
        return self.message


class CheckpointNotFoundError(NotFoundError, FileNotFoundError, ValueError):
    """No checkpoint at that path (no index, or a missing data shard).

    Also a ``ValueError``, which ``tf.train.load_checkpoint`` raises for a
    directory without a checkpoint, and a :class:`NotFoundError`, which it
    raises for a prefix without files."""

    def __str__(self):
        return self.message


class CorruptCheckpointError(DataLossError):
    """Malformed index or data: the message names the file and byte offset."""


class ChecksumError(CorruptCheckpointError):
    """A tensor's bytes do not match their stored CRC32C."""


class InvalidCheckpointStateError(CorruptCheckpointError, ValueError):
    """A ``checkpoint`` state file whose model_checkpoint_path is empty:
    ``Invalid checkpoint state loaded from DIR``, a ValueError in TensorFlow."""


class DTypeMismatchError(InvalidArgumentError, TypeError):
    """An op's dtype differs from the stored one, or cannot be converted."""


class ShapeMismatchError(InvalidArgumentError, ValueError):
    """An op's shape or slice does not fit the stored tensor."""


class NoDeviceError(TrestleError):
    """A CUDA destination was asked for and no usable device (or CUDA build) exists."""


_CLASSES = {
    "E_KEY_NOT_FOUND": KeyNotFoundError,
    "E_NOT_FOUND": CheckpointNotFoundError,
    "E_CORRUPT": CorruptCheckpointError,
    "E_CRC_MISMATCH": ChecksumError,
    "E_DTYPE_MISMATCH": DTypeMismatchError,
    "E_SHAPE_MISMATCH": ShapeMismatchError,
    "E_NO_DEVICE": NoDeviceError,
}

# TensorFlow's words for an empty model_checkpoint_path (a ValueError there).
_INVALID_STATE = "Invalid checkpoint state loaded from "

_MISSING_LINE = re.compile(r"^Key (.*?) not found in checkpoint(?: \(did you mean (.*)\?\))?$")


def parse_missing(message):
    """The missing keys and suggestions of an engine KEY_NOT_FOUND message."""
    missing, suggestions = [], {}
    for line in message.splitlines():
        m = _MISSING_LINE.match(line)
        if not m:
            continue
        missing.append(m.group(1))
        if m.group(2):
            last = m.group(2).rsplit(" or ", 1)
            suggestions[m.group(1)] = last[0].split(", ") + last[1:]
    return missing, suggestions


def from_engine(code, code_name, message, key, path, offset, length, errno):
    """Called by the C extension: the exception for one engine error."""
    cls = _CLASSES.get(code_name, TrestleError)
    if cls is CorruptCheckpointError and message.startswith(_INVALID_STATE):
        cls = InvalidCheckpointStateError
    kw = dict(code=code, code_name=code_name, key=key, path=path, offset=offset, length=length,
              errno=errno)
    if cls is KeyNotFoundError:
        missing, suggestions = parse_missing(message)
        return cls(message, missing or ([key] if key else []), suggestions, **kw)
    return cls(message, **kw)


class NotResidentWarning(UserWarning):
    """trestle.restore(path, server=...) found nothing resident that fits
    (no server, another version of the files, another selection) and
    restored from storage; the message says why."""


class RawBitsWarning(UserWarning):
    """A tensor came back as its raw bits (bfloat16 as uint16, float8 as
    uint8) because numpy has no such type and ml_dtypes is not installed.
    Issued once per dtype; ``bfloat16='uint16'`` asks for the bits and is
    never warned about."""
