"""trestle: read TensorFlow checkpoints without TensorFlow, fast.

Drop-in for TensorFlow's checkpoint reading (same names and results)::

    import trestle as tf_train     # instead of tf.train
    tf_train.list_variables(path)             # [(name, shape)]
    tf_train.load_variable(path, "dense/kernel")
    reader = tf_train.load_checkpoint(path)   # get_tensor, has_tensor, ...

Bulk loads at engine speed (one pipeline pass, zero-copy arrays)::

    weights = trestle.restore(path, framework="torch", exclude="*/.OPTIMIZER_SLOT/*")

And safetensors export: ``trestle.convert(path, "model.safetensors")``, with
the names and layout another framework wants (``keys=``, ``transpose=``);
``trestle.save_safetensors(dict, path)`` and ``trestle.load_safetensors(path)``
for arrays in between.
"""

from . import _trestle
from ._bulk import Array, RestoreResult, convert, restore
from ._dtypes import DType, as_dtype
from ._safetensors import load_safetensors, save_safetensors
from ._reader import (CheckpointReader, latest_checkpoint, list_variables, load_checkpoint,
                      load_variable)
from .errors import (CheckpointNotFoundError, ChecksumError, CorruptCheckpointError,
                     DTypeMismatchError, InvalidCheckpointStateError, KeyNotFoundError,
                     NoDeviceError, NotResidentWarning, RawBitsWarning, ShapeMismatchError,
                     TrestleError)

__version__ = _trestle.version

__all__ = [
    "Array", "CheckpointNotFoundError", "CheckpointReader", "ChecksumError",
    "CorruptCheckpointError", "DType", "DTypeMismatchError", "InvalidCheckpointStateError",
    "KeyNotFoundError", "NoDeviceError", "NotResidentWarning", "RawBitsWarning",
    "RestoreResult", "ShapeMismatchError", "TrestleError", "as_dtype", "convert",
    "latest_checkpoint", "list_variables", "load_checkpoint", "load_safetensors", "load_variable",
    "restore", "save_safetensors",
]
