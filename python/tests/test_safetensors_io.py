"""trestle.save_safetensors() and trestle.load_safetensors(): safetensors
files for arrays a program built (issue 25), in the layout convert()
writes, checked against convert() itself and the independent reader."""
import os

import numpy as np
import pytest

import trestle
from test_convert import read_safetensors


def test_save_of_a_restore_is_byte_identical_to_convert(mixed_ckpt, tmp_path):
    torch = pytest.importorskip("torch")
    prefix, _ = mixed_ckpt
    converted, saved = str(tmp_path / "c.safetensors"), str(tmp_path / "s.safetensors")
    trestle.convert(prefix, converted, sync=False)
    weights = trestle.restore(prefix, exclude=["vocab", "note"], framework="torch",
                              progress=False)
    assert weights["emb/bf16"].dtype == torch.bfloat16
    size = trestle.save_safetensors(weights, saved)
    assert size == os.path.getsize(saved)
    assert open(saved, "rb").read() == open(converted, "rb").read()


def test_load_gives_back_what_was_saved(tmp_path):
    torch = pytest.importorskip("torch")
    out = str(tmp_path / "x.safetensors")
    rng = np.random.default_rng(1)
    arrays = {"w": rng.standard_normal((3, 4)).astype(np.float32),
              "ids": np.arange(5, dtype=np.int64), "mask": np.array([True, False]),
              "b16": torch.arange(6, dtype=torch.float32).reshape(2, 3).to(torch.bfloat16),
              "scalar": np.float64(2.5), "empty": np.zeros((0, 2), np.float16)}
    trestle.save_safetensors(arrays, out, metadata={"format": "pt", "source": "test"})
    st, meta = read_safetensors(out)
    assert meta == {"format": "pt", "source": "test"}
    assert st["b16"][0] == "BF16" and st["scalar"][1].shape == ()
    loaded = trestle.load_safetensors(out)
    assert loaded.metadata == meta
    assert np.array_equal(loaded["w"], arrays["w"]) and loaded["ids"].dtype == np.int64
    assert loaded["empty"].shape == (0, 2)
    t = trestle.load_safetensors(out, framework="torch")
    assert t["b16"].dtype == torch.bfloat16 and torch.equal(t["b16"], arrays["b16"])
    t["w"][0, 0] = 99   # a private mapping: the file is not changed
    assert trestle.load_safetensors(out)["w"][0, 0] == arrays["w"][0, 0]


def test_save_refuses_what_convert_refuses(tmp_path):
    out = str(tmp_path / "x.safetensors")
    one = np.ones(2, np.float32)
    with pytest.raises(ValueError, match="__metadata__ is the safetensors header's own key"):
        trestle.save_safetensors({"__metadata__": one}, out)
    with pytest.raises(ValueError, match="its name is not valid UTF-8"):
        trestle.save_safetensors({"bad\udcff": one}, out)
    with pytest.raises(TypeError, match="metadata must be a dict of str to str"):
        trestle.save_safetensors({"a": one}, out, metadata={"n": 1})
    with pytest.raises(TypeError, match="has no safetensors dtype"):
        trestle.save_safetensors({"c": np.ones(2, np.complex64)}, out)
    fifo = str(tmp_path / "fifo")
    os.mkfifo(fifo)
    with pytest.raises(ValueError, match="it is not a regular file"):
        trestle.save_safetensors({"a": one}, fifo)
    assert sorted(os.listdir(tmp_path)) == ["fifo"]
