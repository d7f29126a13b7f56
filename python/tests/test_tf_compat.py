"""What code written for TensorFlow, and Python users after a restore,
expect (issue 25): exceptions that are also what TF code catches
(ValueError, trestle.errors.NotFoundError / DataLossError), bfloat16
without ml_dtypes said once, dtype maps that agree with get_tensor, results
that pickle and torch.save as plain dicts, and a progress bar only where a
person sees it, as the CLI draws it."""
import io
import os
import pickle
import sys
import warnings

import numpy as np
import pytest

import trestle
from trestle import _bulk, _dtypes, errors


# ---- errors ----

def test_a_directory_without_a_checkpoint_is_a_value_error_as_in_tensorflow(tmp_path):
    with pytest.raises(ValueError) as e:
        trestle.load_checkpoint(str(tmp_path))
    err = e.value
    # trestle's own classes stay: code, FileNotFoundError, CheckpointNotFoundError.
    assert isinstance(err, trestle.CheckpointNotFoundError)
    assert isinstance(err, FileNotFoundError) and isinstance(err, errors.NotFoundError)
    assert err.code_name == "E_NOT_FOUND"
    assert str(err).startswith(f"no checkpoint in directory {tmp_path}")


def test_missing_keys_and_files_are_not_found_errors(mixed_ckpt, tmp_path):
    prefix, _ = mixed_ckpt
    with pytest.raises(errors.NotFoundError) as e:
        trestle.load_checkpoint(prefix).get_tensor("dense/kernal")
    assert isinstance(e.value, KeyError) and isinstance(e.value, trestle.KeyNotFoundError)
    with pytest.raises(errors.NotFoundError):
        trestle.load_checkpoint(str(tmp_path / "none"))
    assert errors.OpError is trestle.TrestleError


def test_corrupt_data_is_a_data_loss_error(mixed_ckpt):
    prefix, _ = mixed_ckpt
    with open(prefix + ".index", "r+b") as f:
        f.seek(4)
        byte = f.read(1)
        f.seek(4)
        f.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(errors.DataLossError) as e:
        trestle.load_checkpoint(prefix)
    assert isinstance(e.value, trestle.CorruptCheckpointError)


def test_dtype_and_shape_mismatches_are_invalid_argument_errors(mixed_ckpt):
    prefix, _ = mixed_ckpt
    with pytest.raises(errors.InvalidArgumentError) as e:
        trestle.restore(prefix, [("dense/bias", "", "int32")], progress=False)
    assert isinstance(e.value, TypeError)
    with pytest.raises(errors.InvalidArgumentError) as e:
        trestle.restore(prefix, [("dense/kernel", "5 6 0,2:-")], progress=False)
    assert isinstance(e.value, ValueError)


# ---- bfloat16 without ml_dtypes ----

@pytest.fixture
def no_ml_dtypes(monkeypatch):
    """As on a machine without ml_dtypes, with the once-only memory reset."""
    monkeypatch.setattr(_dtypes, "_ml_dtypes", lambda: None)
    monkeypatch.setattr(_dtypes, "_warned_raw", set())


def test_raw_bfloat16_bits_are_warned_about_once_naming_the_alternatives(mixed_ckpt,
                                                                         no_ml_dtypes):
    prefix, _ = mixed_ckpt
    reader = trestle.load_checkpoint(prefix)
    with pytest.warns(trestle.RawBitsWarning) as w:
        got = reader.get_tensor("emb/bf16")
    assert got.dtype == np.uint16 and len(w) == 1
    msg = str(w[0].message)
    assert msg == ("bfloat16 tensors come back as uint16 arrays of their raw bits: numpy has no "
                   "bfloat16 and ml_dtypes is not installed. For real values: "
                   "trestle.restore(..., framework='torch') gives torch.bfloat16 tensors; "
                   "`pip install ml_dtypes` gives numpy bfloat16 arrays; bfloat16='float32' "
                   "widens them exactly. bfloat16='uint16' asks for the raw bits without this "
                   "warning.")
    assert w[0].filename == __file__   # points at the caller's line
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        reader.get_tensor("emb/bf16")                              # once
        trestle.restore(prefix, ["emb/bf16"], progress=False)      # once for restore too
        trestle.load_variable(prefix, "emb/bf16", bfloat16="uint16")  # asked for the bits


def test_restore_warns_too(mixed_ckpt, no_ml_dtypes):
    prefix, _ = mixed_ckpt
    with pytest.warns(trestle.RawBitsWarning, match="bfloat16 tensors come back as uint16"):
        got = trestle.restore(prefix, ["emb/bf16"], progress=False)
    assert got["emb/bf16"].dtype == np.uint16
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        trestle.restore(prefix, ["dense/bias"], progress=False)   # no bfloat16: no word


@pytest.mark.parametrize("mode", ["auto", "uint16", "float32"])
def test_dtype_map_agrees_with_get_tensor(mixed_ckpt, mode, no_ml_dtypes):
    prefix, _ = mixed_ckpt
    reader = trestle.load_checkpoint(prefix, bfloat16=mode)
    dtypes = reader.get_variable_to_dtype_map()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", trestle.RawBitsWarning)
        for name, dt in dtypes.items():
            value = reader.get_tensor(name)
            if dt.name == "string":   # bytes, or object arrays of bytes, as TensorFlow
                assert dt.as_numpy_dtype is np.object_
                assert isinstance(value, bytes) or value.dtype == object
                continue
            value = np.asarray(value)
            assert value.dtype.type is dt.as_numpy_dtype, (name, mode)
            assert dt == value.dtype
    assert dtypes["emb/bf16"].name == "bfloat16"
    assert dtypes["emb/bf16"].as_numpy_dtype is (np.float32 if mode == "float32" else np.uint16)


# ---- pickling results ----

def test_a_numpy_result_pickles_as_the_plain_dict_of_arrays(mixed_ckpt):
    prefix, values = mixed_ckpt
    result = trestle.restore(prefix, bfloat16="uint16", progress=False)
    back = pickle.loads(pickle.dumps(result))
    assert type(back) is dict and back.keys() == result.keys()
    for name, v in result.items():
        assert np.array_equal(np.asarray(back[name]), np.asarray(v)), name


def test_torch_save_of_a_torch_result(mixed_ckpt, tmp_path):
    torch = pytest.importorskip("torch")
    prefix, values = mixed_ckpt
    names = ["dense/kernel", "emb/bf16", "global_step", "part/w"]
    result = trestle.restore(prefix, names, framework="torch", progress=False)
    torch.save(result, tmp_path / "w.pt")
    back = torch.load(tmp_path / "w.pt")
    assert type(back) is dict and sorted(back) == sorted(names)
    assert back["emb/bf16"].dtype == torch.bfloat16
    assert np.array_equal(back["emb/bf16"].view(torch.int16).numpy().view(np.uint16),
                          values["emb/bf16"])
    assert np.array_equal(back["dense/kernel"].numpy(), values["dense/kernel"])
    assert np.array_equal(back["part/w"].numpy(), values["part/w"])


def test_dlpack_arrays_pickle_as_numpy_arrays(mixed_ckpt):
    prefix, values = mixed_ckpt
    result = trestle.restore(prefix, ["dense/kernel"], framework="dlpack", progress=False)
    back = pickle.loads(pickle.dumps(result))
    assert type(back["dense/kernel"]) is np.ndarray
    assert np.array_equal(back["dense/kernel"], values["dense/kernel"])


# ---- the progress bar ----

class _Tty(io.StringIO):
    def isatty(self):
        return True


def test_the_progress_bar_is_drawn_only_on_a_terminal(monkeypatch):
    """As the CLI (isatty(stderr)): a log file or a pipe gets no bar, a
    callable progress is still called."""
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    assert _bulk._progress(True, 100) is None
    monkeypatch.setattr(sys, "stderr", _Tty())
    assert isinstance(_bulk._progress(True, 100), _bulk._Bar)
    seen = []
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    _bulk._progress(lambda d, t: seen.append((d, t)), 100)(50)
    assert seen == [(50, 100)]


def test_a_restore_into_a_log_draws_nothing(synth_ckpt, tmp_path):
    """End to end in a child whose stderr is a file, with the bar's
    half-second delay taken away: nothing but its own line is written."""
    import subprocess
    import textwrap
    code = textwrap.dedent(f"""
        import sys, trestle
        from trestle import _bulk
        _bulk._Bar.__init__.__defaults__  # the class exists
        orig = _bulk._Bar.__init__
        def eager(self, total):
            orig(self, total)
            self.start -= 10
        _bulk._Bar.__init__ = eager
        trestle.restore({synth_ckpt!r}, bfloat16="uint16")
        sys.stderr.write("done\\n")
    """)
    log = tmp_path / "log"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    with open(log, "w") as f:
        subprocess.run([sys.executable, "-c", code], stderr=f, env=env, check=True, timeout=120)
    assert log.read_text() == "done\n"
