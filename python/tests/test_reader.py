"""The tf.train drop-in: list_variables, load_variable, latest_checkpoint,
load_checkpoint and its reader, against `trestle inspect --json` for every
real TensorFlow fixture and against known values for writer-made ones."""
import json
import math
import os

import numpy as np
import pytest

import trestle
from conftest import BF16_BITS, cli, fixture_params, index_only_params, inspect_json

# trestle_dtype_name spellings (inspect --json) -> TensorFlow's Python names.
TF_NAMES = {"float": "float32", "double": "float64", "half": "float16"}


@pytest.mark.parametrize("fixture", fixture_params())
def test_every_real_fixture_lists_like_inspect(fixture):
    r = cli("inspect", fixture, "--json", check=False)
    if r.returncode != 0:  # a state file naming a checkpoint that is not there
        with pytest.raises(trestle.CheckpointNotFoundError) as e:
            trestle.list_variables(fixture)
        assert str(e.value) in r.stderr and trestle.latest_checkpoint(fixture) is None
        return
    listing = json.loads(r.stdout)
    want = [(t["name"], t["shape"]) for t in listing["tensors"]]
    assert trestle.list_variables(fixture) == sorted(want)
    reader = trestle.load_checkpoint(fixture)
    dtypes = reader.get_variable_to_dtype_map()
    for t in listing["tensors"]:
        assert dtypes[t["name"]].name == TF_NAMES.get(t["dtype"], t["dtype"])
        assert reader.has_tensor(t["name"])
    assert reader.get_variable_to_shape_map() == dict(want)


def _equal(value, expected, dtype):
    flat = np.asarray(value).reshape(-1)
    if dtype == "string":
        return True  # inspect prints no string values in JSON; checked elsewhere
    assert len(flat) == len(expected)
    for got, exp in zip(flat.tolist(), expected):
        if exp is None:  # JSON null: nan or inf
            assert not math.isfinite(float(got))
        elif dtype in ("float", "half", "bfloat16"):
            assert np.float32(got) == np.float32(exp)
        else:
            assert got == exp
    return True


@pytest.mark.parametrize("fixture", fixture_params(only_complete=True))
def test_every_real_fixture_get_tensor_equals_inspect_values(fixture):
    names = [t["name"] for t in inspect_json(fixture)["tensors"]]
    listing = inspect_json(fixture, names)
    reader = trestle.load_checkpoint(fixture)
    for t in listing["tensors"]:
        value = reader.get_tensor(t["name"])
        assert list(np.shape(value)) == t["shape"]
        if t["values"] is not None:
            assert _equal(value, t["values"], t["dtype"]), t["name"]
        if t["dtype"] == "string" and not t["shape"]:
            assert isinstance(value, bytes)
        assert np.array_equal(np.asarray(trestle.load_variable(fixture, t["name"])),
                              np.asarray(value))


@pytest.mark.parametrize("prefix", index_only_params())
def test_index_only_fixtures_list_but_reading_data_names_the_missing_shard(prefix):
    # Each index by its prefix: a directory holding two *.index files names
    # no checkpoint, and one holding only a state file has none to list.
    listing = inspect_json(prefix)  # fails the test when inspect does
    names = [t["name"] for t in listing["tensors"]]
    assert names, f"{prefix}: no tensors to read"
    assert [n for n, _ in trestle.list_variables(prefix)] == sorted(names)
    # A tensor whose shard is absent (some INDEXONLY fixtures keep a few).
    gone = [t for t in listing["tensors"] if not os.path.exists(listing["shards"][t["shard"]])]
    assert gone, f"{prefix}: every tensor's shard is present"
    with pytest.raises(trestle.TrestleError) as e:
        trestle.load_checkpoint(prefix).get_tensor(gone[0]["name"])
    assert e.value.path == listing["shards"][gone[0]["shard"]]
    assert e.value.key == gone[0]["name"]


def test_known_values_of_every_dtype(mixed_ckpt):
    prefix, values = mixed_ckpt
    reader = trestle.load_checkpoint(prefix, bfloat16="uint16")
    for name, want in values.items():
        got = reader.get_tensor(name)
        if isinstance(want, bytes):
            assert got == want
            continue
        assert np.shape(got) == want.shape, name
        assert np.asarray(got).dtype == want.dtype, name
        assert np.array_equal(got, want), name


def test_scalars_come_back_as_numpy_scalars_and_strings_as_bytes(mixed_ckpt):
    prefix, _ = mixed_ckpt
    step = trestle.load_variable(prefix, "global_step")
    assert isinstance(step, np.int64) and step == 1234
    assert trestle.load_variable(prefix, "note") == b"a scalar string"
    vocab = trestle.load_variable(prefix, "vocab")
    assert vocab.dtype == object and vocab.shape == (2, 2)
    assert all(isinstance(b, bytes) for b in vocab.flat)


def test_load_variable_drops_a_trailing_colon_zero(mixed_ckpt):
    prefix, values = mixed_ckpt
    assert np.array_equal(trestle.load_variable(prefix, "dense/bias:0"), values["dense/bias"])


def test_bfloat16_as_uint16_bits(mixed_ckpt):
    prefix, _ = mixed_ckpt
    got = trestle.load_variable(prefix, "emb/bf16", bfloat16="uint16")
    assert got.dtype == np.uint16
    assert np.array_equal(got.reshape(-1), BF16_BITS)


def test_bfloat16_as_float32_is_exact(mixed_ckpt):
    prefix, _ = mixed_ckpt
    got = trestle.load_variable(prefix, "emb/bf16", bfloat16="float32").reshape(-1)
    assert got.dtype == np.float32
    assert got[0] == 1.0 and got[1] == -2.0 and np.isposinf(got[2]) and np.isnan(got[4])
    assert np.array_equal(got.view(np.uint32) >> 16, BF16_BITS.astype(np.uint32))


def test_bfloat16_auto_is_ml_dtypes_when_importable_else_uint16(mixed_ckpt):
    prefix, _ = mixed_ckpt
    got = trestle.load_variable(prefix, "emb/bf16")
    try:
        import ml_dtypes
    except ImportError:
        assert got.dtype == np.uint16
        with pytest.raises(ValueError, match="ml_dtypes"):
            trestle.load_checkpoint(prefix, bfloat16="ml_dtypes")
        return
    assert got.dtype == np.dtype(ml_dtypes.bfloat16)
    assert np.array_equal(got.view(np.uint16).reshape(-1), BF16_BITS)


def test_bfloat16_ml_dtypes(mixed_ckpt):
    ml_dtypes = pytest.importorskip("ml_dtypes", reason="ml_dtypes is not installed")
    prefix, _ = mixed_ckpt
    got = trestle.load_variable(prefix, "emb/bf16", bfloat16="ml_dtypes")
    assert got.dtype == np.dtype(ml_dtypes.bfloat16)
    assert float(got.reshape(-1)[0]) == 1.0


def test_dtype_map_values_behave_like_tf_dtypes(mixed_ckpt):
    prefix, _ = mixed_ckpt
    dtypes = trestle.load_checkpoint(prefix).get_variable_to_dtype_map()
    assert dtypes["dense/kernel"].name == "float32"
    assert dtypes["dense/kernel"] == "float32" and dtypes["dense/kernel"] == np.float32
    assert dtypes["emb/bf16"].name == "bfloat16" and dtypes["emb/bf16"].as_datatype_enum == 14
    assert dtypes["vocab"].name == "string" and dtypes["vocab"].size == 0
    assert dtypes["half"] == trestle.DType(19) and repr(dtypes["half"]) == "trestle.float16"
    assert dtypes["global_step"].as_numpy_dtype is np.int64


def test_path_resolution_prefix_index_data_file_and_directory(mixed_ckpt):
    prefix, _ = mixed_ckpt
    d = os.path.dirname(prefix)
    assert trestle.latest_checkpoint(d) == prefix
    want = trestle.list_variables(prefix)
    for path in (prefix + ".index", prefix + ".data-00001-of-00002", d):
        assert trestle.list_variables(path) == want


def test_latest_checkpoint_is_none_without_state_file_or_checkpoint(tmp_path, mixed_ckpt):
    assert trestle.latest_checkpoint(str(tmp_path)) is None
    state = tmp_path / "stale"
    state.mkdir()
    (state / "checkpoint").write_text('model_checkpoint_path: "gone.ckpt-1"\n')
    assert trestle.latest_checkpoint(str(state)) is None


def test_partitioned_variable_is_assembled(mixed_ckpt):
    prefix, values = mixed_ckpt
    assert trestle.list_variables(prefix).count(("part/w", [4, 5])) == 1
    assert np.array_equal(trestle.load_variable(prefix, "part/w"), values["part/w"])


def test_debug_string_lists_every_tensor(mixed_ckpt):
    prefix, values = mixed_ckpt
    text = trestle.load_checkpoint(prefix).debug_string().decode()
    assert "dense/kernel (float32) [4, 6]" in text
    assert len(text.splitlines()) == len(values)


def test_bfloat16_picks_ml_dtypes_types_when_importable(mixed_ckpt, monkeypatch):
    """The ml_dtypes branch without ml_dtypes installed: a stand-in module
    whose bfloat16 is a 2-byte numpy dtype shows that 'auto' and
    'ml_dtypes' view the same bytes with ml_dtypes' type when it imports."""
    import sys
    import types
    stand_in = types.ModuleType("ml_dtypes")
    stand_in.bfloat16 = np.dtype([("bits", "<u2")])
    monkeypatch.setitem(sys.modules, "ml_dtypes", stand_in)
    prefix, _ = mixed_ckpt
    for mode in ("auto", "ml_dtypes"):
        got = trestle.load_variable(prefix, "emb/bf16", bfloat16=mode)
        assert got.dtype == stand_in.bfloat16
        assert np.array_equal(got["bits"].reshape(-1), BF16_BITS)
    restored = trestle.restore(prefix, ["emb/bf16"], progress=False)
    assert restored["emb/bf16"].dtype == stand_in.bfloat16
