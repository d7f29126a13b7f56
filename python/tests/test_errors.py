"""Errors as Python users expect them: the engine's code, key, file and
byte offset on every exception; a KeyError listing every missing key with
suggestions; TypeError/ValueError for bad arguments before any I/O."""
import os
import signal

import numpy as np
import pytest

import trestle
from conftest import has_cuda_device

NOWHERE = "/nonexistent/trestle/ckpt"   # any I/O on it would raise CheckpointNotFoundError


def test_missing_keys_raise_one_keyerror_listing_all_with_suggestions(mixed_ckpt):
    prefix, _ = mixed_ckpt
    with pytest.raises(KeyError) as e:
        trestle.restore(prefix, ["dense/kernal", "dense/bias", "dense/biass", "zzz"],
                        progress=False)
    err = e.value
    assert isinstance(err, trestle.KeyNotFoundError) and isinstance(err, trestle.TrestleError)
    assert err.code == 40 and err.code_name == "E_KEY_NOT_FOUND"
    assert sorted(err.missing) == ["dense/biass", "dense/kernal", "zzz"]
    assert err.suggestions["dense/kernal"] == ["dense/kernel"]
    assert "dense/bias" in err.suggestions["dense/biass"]
    assert "Key dense/kernal not found in checkpoint (did you mean dense/kernel?)" in str(err)
    assert len(str(err).splitlines()) == 3
    assert err.path and err.path.endswith(".index")


def test_get_tensor_of_a_missing_key_suggests_like_the_cli(mixed_ckpt):
    prefix, _ = mixed_ckpt
    reader = trestle.load_checkpoint(prefix)
    with pytest.raises(trestle.KeyNotFoundError) as e:
        reader.get_tensor("dense/kernal")
    assert e.value.missing == ["dense/kernal"] and e.value.key == "dense/kernal"
    assert str(e.value) == ("Key dense/kernal not found in checkpoint "
                            "(did you mean dense/kernel?)")
    with pytest.raises(KeyError):
        trestle.load_variable(prefix, "nope")


def test_missing_checkpoint_is_a_file_not_found_error(tmp_path):
    with pytest.raises(FileNotFoundError) as e:
        trestle.load_checkpoint(str(tmp_path / "none"))
    assert isinstance(e.value, trestle.CheckpointNotFoundError)
    assert e.value.code == 31 and e.value.code_name == "E_NOT_FOUND"
    with pytest.raises(trestle.CheckpointNotFoundError):
        trestle.restore(str(tmp_path / "none"), progress=False)


def _corrupt_tensor(prefix, name):
    """Flip one byte of `name`'s data; returns (shard path, its offset)."""
    import json
    import subprocess
    from conftest import CLI
    listing = json.loads(subprocess.run([CLI, "inspect", prefix, "--json"], check=True,
                                        capture_output=True, text=True).stdout)
    t = next(t for t in listing["tensors"] if t["name"] == name)
    shard = listing["shards"][t["shard"]]
    with open(shard, "r+b") as f:
        f.seek(t["offset"] + 3)
        b = f.read(1)
        f.seek(t["offset"] + 3)
        f.write(bytes([b[0] ^ 0x40]))
    return os.path.abspath(shard), t["offset"]


def test_crc_mismatch_names_tensor_file_and_offset(mixed_ckpt):
    prefix, _ = mixed_ckpt
    shard, offset = _corrupt_tensor(prefix, "dense/kernel")
    with pytest.raises(trestle.ChecksumError) as e:
        trestle.load_checkpoint(prefix).get_tensor("dense/kernel")
    for err in (e.value,):
        assert err.code == 21 and err.code_name == "E_CRC_MISMATCH"
        assert err.key == "dense/kernel"
        assert os.path.abspath(err.path) == shard and err.offset == offset
        assert isinstance(err, trestle.CorruptCheckpointError)
    with pytest.raises(trestle.ChecksumError) as e:
        trestle.restore(prefix, progress=False)
    assert e.value.key == "dense/kernel" and os.path.abspath(e.value.path) == shard
    assert e.value.offset is not None
    # The other tensors still read, and verify=False reads the damaged one.
    assert trestle.load_variable(prefix, "dense/bias").shape == (6,)
    assert trestle.restore(prefix, ["dense/kernel"], verify=False, progress=False)


def test_corrupt_index_names_the_file(mixed_ckpt):
    prefix, _ = mixed_ckpt
    index = prefix + ".index"
    data = bytearray(open(index, "rb").read())
    data[len(data) // 2] ^= 0xFF
    open(index, "wb").write(bytes(data))
    with pytest.raises(trestle.CorruptCheckpointError) as e:
        trestle.list_variables(prefix)
    assert e.value.code == 20 and e.value.path.endswith(".index")
    assert e.value.offset is not None


def test_dtype_and_shape_mismatches(mixed_ckpt):
    prefix, _ = mixed_ckpt
    with pytest.raises(trestle.DTypeMismatchError) as e:
        trestle.restore(prefix, [("dense/bias", "", "int32")], progress=False)
    assert isinstance(e.value, TypeError) and e.value.key == "dense/bias"
    with pytest.raises(trestle.ShapeMismatchError) as e:
        trestle.restore(prefix, [("dense/kernel", "5 6 0,2:-")], progress=False)
    assert isinstance(e.value, ValueError) and e.value.code == 42
    with pytest.raises(trestle.TrestleError) as e:
        trestle.restore(prefix, [("dense/kernel", "not a spec")], progress=False)
    assert e.value.code_name == "E_BAD_SPEC"


@pytest.mark.parametrize("call, exc", [
    (lambda: trestle.restore(123), TypeError),
    (lambda: trestle.restore(NOWHERE, ops="dense/bias"), TypeError),
    (lambda: trestle.restore(NOWHERE, ops=[1]), TypeError),
    (lambda: trestle.restore(NOWHERE, ops=[("a", 5)]), TypeError),
    (lambda: trestle.restore(NOWHERE, ops=[("a", "", "int33")]), ValueError),
    (lambda: trestle.restore(NOWHERE, ops=["a", "a"]), ValueError),
    (lambda: trestle.restore(NOWHERE, rename={"a": 1}), TypeError),
    (lambda: trestle.restore(NOWHERE, rename=["no-equals"]), ValueError),
    (lambda: trestle.restore(NOWHERE, exclude=5), TypeError),
    (lambda: trestle.restore(NOWHERE, device="gpu"), ValueError),
    (lambda: trestle.restore(NOWHERE, device=0), TypeError),
    (lambda: trestle.restore(NOWHERE, framework="jax"), ValueError),
    (lambda: trestle.restore(NOWHERE, device="cuda:0"), ValueError),  # numpy cannot hold it
    (lambda: trestle.restore(NOWHERE, bfloat16="float64"), ValueError),
    (lambda: trestle.restore(NOWHERE, threads=0), ValueError),
    (lambda: trestle.restore(NOWHERE, as_dtype="float33"), ValueError),
    (lambda: trestle.restore(NOWHERE, as_dtype=3.5), TypeError),
    (lambda: trestle.restore(NOWHERE, progress="yes"), TypeError),
    (lambda: trestle.load_checkpoint(None), TypeError),
    (lambda: trestle.load_checkpoint(NOWHERE, bfloat16="fp8"), ValueError),
    (lambda: trestle.load_variable(NOWHERE, 7), TypeError),
    (lambda: trestle.latest_checkpoint(None), TypeError),
    (lambda: trestle.convert(NOWHERE, 5), TypeError),
    (lambda: trestle.convert(NOWHERE, "/nonexistent/dir/x.safetensors"), ValueError),
    (lambda: trestle.convert(NOWHERE, "x.safetensors", rename=["bad"]), ValueError),
], ids=lambda v: "" if callable(v) else v.__name__)
def test_bad_arguments_fail_before_any_io(call, exc):
    with pytest.raises(exc) as e:
        call()
    assert not isinstance(e.value, trestle.CheckpointNotFoundError)


def test_get_tensor_takes_str_or_bytes_names_as_tensorflow(mixed_ckpt):
    """TensorFlow's reader takes bytes names too (issue 25); anything else
    is still a TypeError, before any read."""
    prefix, values = mixed_ckpt
    reader = trestle.load_checkpoint(prefix)
    assert np.array_equal(reader.get_tensor(b"dense/bias"), values["dense/bias"])
    assert reader.has_tensor(b"dense/bias") and not reader.has_tensor(b"dense/nope")
    assert np.array_equal(trestle.load_variable(prefix, b"dense/bias:0"), values["dense/bias"])
    with pytest.raises(TypeError, match="tensor name must be a str or bytes, not int"):
        reader.get_tensor(7)
    with pytest.raises(trestle.errors.NotFoundError):
        reader.get_tensor(b"dense/nope")


@pytest.mark.skipif(has_cuda_device() or trestle._trestle.cuda_mock,
                    reason="a CUDA device (or the CUDA mock) is present")
def test_cuda_without_a_device_raises_no_device(mixed_ckpt):
    pytest.importorskip("torch")
    prefix, _ = mixed_ckpt
    with pytest.raises(trestle.TrestleError) as e:
        trestle.restore(prefix, device="cuda:0", framework="torch", progress=False)
    assert e.value.code_name in ("E_NO_DEVICE", "E_CUDA")


def test_ctrl_c_cancels_the_restore_and_the_next_one_works(synth_ckpt):
    def interrupt(done, total):
        signal.raise_signal(signal.SIGINT)

    with pytest.raises(KeyboardInterrupt):
        trestle.restore(synth_ckpt, progress=interrupt, threads=1)
    assert trestle.restore(synth_ckpt, progress=False)
