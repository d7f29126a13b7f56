"""trestle.restore(): one pipeline pass into one engine arena, zero-copy
numpy/torch views that keep the arena alive, DLPack export, and the
restore options (renames, exclusions, allow_missing, as_dtype)."""
import gc
import os
import weakref

import numpy as np
import pytest

import trestle
from conftest import BF16_BITS, fixture_params, has_cuda_device

try:
    import torch
except ImportError:
    torch = None
needs_torch = pytest.mark.skipif(torch is None, reason="torch (python3-torch) is not installed")


def arena_of(array):
    """The engine arena behind a restored numpy array (through its base)."""
    while not hasattr(array, "arena"):
        array = array.base
    return array.arena


def as_numpy(value):
    if torch is not None and isinstance(value, torch.Tensor):
        if value.dtype == torch.bfloat16:
            value = value.view(torch.int16)
        return value.numpy()
    return np.asarray(value)


@pytest.mark.parametrize("fixture", fixture_params(only_complete=True))
@pytest.mark.parametrize("framework", ["numpy", pytest.param("torch", marks=needs_torch)])
def test_restore_equals_get_tensor_for_every_real_tensor(fixture, framework):
    reader = trestle.load_checkpoint(fixture, bfloat16="uint16")
    restored = trestle.restore(fixture, framework=framework, bfloat16="uint16", progress=False)
    names = {n for n, dt in reader.get_variable_to_dtype_map().items() if dt.name != "variant"}
    assert set(restored) == names
    for name, value in restored.items():
        want = reader.get_tensor(name)
        got = as_numpy(value)
        if isinstance(want, bytes):
            assert got.shape == () and got[()] == want
            continue
        want = np.asarray(want)
        assert got.shape == want.shape and got.dtype == want.dtype, name
        if want.dtype == object:
            assert got.tolist() == want.tolist(), name
        else:
            assert got.tobytes() == want.tobytes(), name  # NaNs included
    assert restored.stats["tensors"] == len(names)
    # The bytes no copy and no read moved, so that rates count the others only.
    st = restored.stats
    assert 0 <= st["bytes_placed"] <= st["bytes_copied"]
    assert st["bytes_mapped"] == 0 and st["bytes_read"] > 0   # no host_map from Python


def test_restore_mixed_dtypes_equals_get_tensor(mixed_ckpt):
    prefix, values = mixed_ckpt
    restored = trestle.restore(prefix, bfloat16="uint16", progress=False)
    assert set(restored) == set(values)
    for name, want in values.items():
        got = restored[name]
        if isinstance(want, bytes):
            assert got[()] == want
        else:
            assert got.dtype == want.dtype and np.array_equal(got, want), name


@needs_torch
def test_restore_torch_dtypes_including_bfloat16_and_bool(mixed_ckpt):
    prefix, values = mixed_ckpt
    restored = trestle.restore(prefix, framework="torch", progress=False)
    assert restored["emb/bf16"].dtype == torch.bfloat16
    assert torch.equal(restored["emb/bf16"].view(torch.int16),
                       torch.from_numpy(BF16_BITS.astype(np.int16).reshape(2, 3)))
    assert restored["flags"].dtype == torch.bool
    assert restored["flags"].tolist() == [True, False, True]
    assert restored["dense/kernel"].dtype == torch.float32
    assert torch.equal(restored["dense/kernel"], torch.from_numpy(values["dense/kernel"]))
    assert isinstance(restored["vocab"], np.ndarray)  # torch has no strings


def test_arrays_are_views_of_one_arena_not_copies(synth_ckpt):
    restored = trestle.restore(synth_ckpt, progress=False)
    assert {arena_of(v) for v in restored.values()} == {restored.arena()}
    info = restored.arena().info()
    for v in restored.values():
        addr = v.__array_interface__["data"][0]
        assert info["base"] <= addr < info["base"] + info["bytes"]
        assert v.flags.writeable and not v.flags.owndata


def test_views_outlive_the_reader_and_plan(mixed_ckpt):
    prefix, values = mixed_ckpt
    restored = trestle.restore(prefix, progress=False)
    kernel, arena = restored["dense/kernel"], restored.arena
    del restored
    gc.collect()
    assert arena() is not None
    assert np.array_equal(kernel, values["dense/kernel"])


def rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.parametrize("framework", ["numpy", pytest.param("torch", marks=needs_torch)])
def test_arena_is_freed_after_the_last_view(synth_ckpt, framework):
    gc.collect()
    before = rss_bytes()
    restored = trestle.restore(synth_ckpt, framework=framework, progress=False)
    total = sum(as_numpy(v).nbytes for v in restored.values())
    arena = restored.arena
    under_asan = bool(os.environ.get("TRESTLE_UNDER_ASAN"))  # ASan reuses its quarantine
    assert under_asan or rss_bytes() - before > total * 0.9
    keep = restored[sorted(restored)[0]]
    del restored
    gc.collect()
    assert arena() is not None  # one view left
    del keep
    gc.collect()
    assert arena() is None
    assert under_asan or rss_bytes() - before < total * 0.1


def test_dlpack_round_trips_numpy_and_torch(mixed_ckpt):
    prefix, values = mixed_ckpt
    arrays = trestle.restore(prefix, framework="dlpack", progress=False)
    a = arrays["dense/kernel"]
    assert a.__dlpack_device__() == (1, 0) and a.device == "cpu"
    n = np.from_dlpack(a)
    assert np.array_equal(n, values["dense/kernel"])
    assert n.__array_interface__["data"][0] == a._buffer.address  # no copy
    if torch is not None:
        t = torch.from_dlpack(a)
        assert t.data_ptr() == a._buffer.address
        assert torch.from_dlpack(arrays["emb/bf16"]).dtype == torch.bfloat16
        back = np.from_dlpack(t)  # torch -> numpy, still the same memory
        assert back.__array_interface__["data"][0] == a._buffer.address
    restored = trestle.restore(prefix, progress=False)
    if torch is not None:
        t = torch.from_dlpack(restored["int32"])
        assert t.data_ptr() == restored["int32"].__array_interface__["data"][0]


def test_dlpack_capsule_keeps_the_arena_alive(mixed_ckpt):
    prefix, values = mixed_ckpt
    a = trestle.restore(prefix, framework="dlpack", progress=False)["int32"]
    arena = weakref.ref(a._buffer.arena)
    n = np.from_dlpack(a)
    del a
    gc.collect()
    assert arena() is not None and np.array_equal(n, values["int32"])
    del n
    gc.collect()
    assert arena() is None


def test_unconsumed_dlpack_capsule_frees_its_reference(mixed_ckpt):
    prefix, _ = mixed_ckpt
    a = trestle.restore(prefix, framework="dlpack", progress=False)["int32"]
    arena = weakref.ref(a._buffer.arena)
    cap = a.__dlpack__()
    del a
    gc.collect()
    assert arena() is not None
    del cap
    gc.collect()
    assert arena() is None


def test_ops_slices_and_dtype_checks(mixed_ckpt):
    prefix, values = mixed_ckpt
    restored = trestle.restore(prefix, ["dense/bias", ("dense/kernel", "4 6 1,2:-"),
                                        ("global_step", "", "int64")], progress=False)
    assert list(restored) == ["dense/bias", "dense/kernel", "global_step"]
    assert np.array_equal(restored["dense/kernel"], values["dense/kernel"][1:3])
    assert restored["global_step"] == 1234


def test_renames_map_graph_names_to_keys(mixed_ckpt):
    prefix, values = mixed_ckpt
    restored = trestle.restore(prefix, ["model/dense/kernel", "b"],
                               rename={"model/": "", "b": "dense/bias"}, progress=False)
    assert np.array_equal(restored["model/dense/kernel"], values["dense/kernel"])
    assert np.array_equal(restored["b"], values["dense/bias"])
    again = trestle.restore(prefix, ["x"], rename=["x=dense/bias"], progress=False)
    assert np.array_equal(again["x"], values["dense/bias"])


def test_exclusions_and_allow_missing(mixed_ckpt):
    prefix, values = mixed_ckpt
    restored = trestle.restore(prefix, exclude=["dense/*", "vocab"], progress=False)
    assert set(restored) == set(values) - {"dense/kernel", "dense/bias", "vocab"}
    partial = trestle.restore(prefix, ["dense/bias", "not/there"], allow_missing=True,
                              progress=False)
    assert list(partial) == ["dense/bias"] and partial.stats["tensors"] == 1


def test_bfloat16_arrays_are_one_view_each_of_the_arena(mixed_ckpt):
    """bfloat16 tensors come back as one ndarray over the arena each, made in
    C as every other dtype's (issue 24: a view of a view and a Buffer per
    tensor cost 100,000-tensor models ~300 bytes a tensor more)."""
    prefix, values = mixed_ckpt
    got = trestle.restore(prefix, progress=False, bfloat16="uint16")
    a = got["emb/bf16"]
    assert a.dtype == np.uint16 and np.array_equal(a, values["emb/bf16"])
    assert not isinstance(a.base, np.ndarray), type(a.base)


def test_runs_of_shapes_and_dtypes_each_get_their_own(tmp_path):
    """Consecutive tensors of one shape share a shape tuple, and of one
    dtype one dtype lookup, while restore() makes their arrays (issue 24);
    a change of shape or dtype in any position must still show."""
    from trestle import _trestle
    prefix = str(tmp_path / "runs")
    specs = [("a0", np.float32, (2, 3)), ("a1", np.float32, (2, 3)), ("a2", np.float32, (3, 2)),
             ("a3", np.int32, (3, 2)), ("a4", np.int32, (3, 2)), ("a5", np.float32, (3, 2)),
             ("a6", np.float32, ()), ("a7", np.float32, (1, 2, 3)), ("a8", np.float32, (1, 2, 3)),
             ("a9", np.int64, (6,))]
    rng = np.random.default_rng(3)
    values = {name: (rng.standard_normal(shape) * 100).astype(dt) for name, dt, shape in specs}
    w = _trestle.Writer(prefix)
    for name, v in values.items():
        w.add(name, trestle.as_dtype(v.dtype).as_datatype_enum, v.shape, v.tobytes())
    w.finish()
    got = trestle.restore(prefix, progress=False)
    assert list(got) == [name for name, _, _ in specs]
    for name, v in values.items():
        assert got[name].shape == v.shape and got[name].dtype == v.dtype, name
        assert np.array_equal(got[name], v), name


def test_numpy_c_api_and_ndarray_calls_make_the_same_arrays(mixed_ckpt, tmp_path):
    """restore()'s arrays are made through numpy's C API where the build
    had numpy's headers (issue 24: a third of the cost of an ndarray()
    call), else by ndarray() calls; both give the same arrays: values,
    dtype, shape, flags, and the whole arena's Buffer as base."""
    import os
    from trestle import _trestle
    headers = os.path.exists(os.path.join(np.get_include(), "numpy", "arrayobject.h"))
    assert _trestle.numpy_c_api() == headers, "built with numpy's headers, the API is used"
    prefix, _ = mixed_ckpt
    made = {}
    try:
        for on in (False, True):
            _trestle.numpy_c_api(on)
            made[on] = trestle.restore(prefix, progress=False, bfloat16="uint16")
    finally:
        _trestle.numpy_c_api(True)
    assert list(made[True]) == list(made[False])
    for name, a in made[False].items():
        b = made[True][name]
        assert type(b) is type(a), name
        if not isinstance(a, np.ndarray):
            continue
        assert (b.dtype, b.shape, b.strides) == (a.dtype, a.shape, a.strides), name
        assert np.array_equal(a, b) if a.dtype != object else list(a.flat) == list(b.flat), name
        for flag in ("C_CONTIGUOUS", "F_CONTIGUOUS", "ALIGNED", "WRITEABLE", "OWNDATA"):
            assert b.flags[flag] == a.flags[flag], (name, flag)
        assert type(b.base) is type(a.base), (name, type(a.base), type(b.base))
    # A rank numpy cannot make (over 32 dimensions) is refused either way,
    # by numpy, naming the limit.
    prefix = str(tmp_path / "deep")
    w = _trestle.Writer(prefix)
    w.add("deep", trestle.as_dtype(np.float32).as_datatype_enum, (1,) * 33, np.zeros(1, np.float32).tobytes())
    w.finish()
    for on in (False, True):
        _trestle.numpy_c_api(on)
        try:
            with pytest.raises(ValueError, match="32"):
                trestle.restore(prefix, progress=False)
        finally:
            _trestle.numpy_c_api(True)


def test_a_numpy_whose_c_api_table_cannot_be_imported_gets_ndarray_calls(mixed_ckpt, tmp_path):
    """A numpy of another ABI than the build's refuses the import of its C
    API table: restore() then makes its arrays by ndarray() calls, with the
    same values. A child interpreter whose numpy has no table (its
    _ARRAY_API replaced, as the import sees a mismatch) restores the mixed
    checkpoint and saves what it got for this one to compare."""
    import subprocess
    import sys
    prefix, _ = mixed_ckpt
    saved = tmp_path / "got.npz"
    code = (
        "import sys, numpy as np\n"
        "for n in ('numpy.core._multiarray_umath', 'numpy._core._multiarray_umath'):\n"
        "    if hasattr(sys.modules.get(n), '_ARRAY_API'):\n"
        "        sys.modules[n]._ARRAY_API = None\n"
        "import trestle\n"
        "from trestle import _trestle\n"
        "got = trestle.restore(sys.argv[1], progress=False, bfloat16='uint16')\n"
        "np.savez(sys.argv[2], **{k.replace('/', '|'): v for k, v in got.items()\n"
        "                         if v.dtype != object})\n"
        "print('api', _trestle.numpy_c_api())\n")
    run = subprocess.run([sys.executable, "-c", code, prefix, str(saved)], capture_output=True,
                         text=True, env=dict(os.environ), timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["api", "False"], run.stdout
    want = trestle.restore(prefix, progress=False, bfloat16="uint16")
    with np.load(saved) as got:
        names = {k.replace("|", "/") for k in got.files}
        assert names == {k for k, v in want.items() if v.dtype != object}
        for k in got.files:
            a, b = want[k.replace("|", "/")], got[k]
            assert (a.dtype, a.shape) == (b.dtype, b.shape), k
            assert np.array_equal(a, b), k


def test_as_dtype_converts_what_converts(mixed_ckpt):
    prefix, values = mixed_ckpt
    restored = trestle.restore(prefix, as_dtype="bfloat16", progress=False)
    assert restored["dense/kernel"].dtype == np.uint16  # bfloat16 bits without ml_dtypes
    want = values["dense/kernel"].view(np.uint32)
    rounded = ((want + 0x7FFF + ((want >> 16) & 1)) >> 16).astype(np.uint16)
    assert np.array_equal(restored["dense/kernel"].view(np.uint16), rounded)
    assert restored["global_step"].dtype == np.int64  # int64 does not convert: as stored
    widened = trestle.restore(prefix, ["emb/bf16", "half"], as_dtype="float32", progress=False)
    assert widened["emb/bf16"].dtype == np.float32 and widened["half"].dtype == np.float32
    assert np.array_equal(widened["half"], values["half"].astype(np.float32))


def test_bfloat16_float32_converts_in_the_engine(mixed_ckpt):
    prefix, _ = mixed_ckpt
    restored = trestle.restore(prefix, ["emb/bf16"], bfloat16="float32", progress=False)
    got = restored["emb/bf16"].reshape(-1)
    assert got.dtype == np.float32 and got[0] == 1.0 and got[1] == -2.0


def test_progress_callback_sees_every_byte(synth_ckpt):
    seen = []
    restored = trestle.restore(synth_ckpt, progress=lambda done, total: seen.append((done, total)))
    total = sum(v.nbytes for v in restored.values())
    assert seen and seen[-1] == (total, total)
    assert all(a[0] <= b[0] for a, b in zip(seen, seen[1:]))


def test_progress_bar_plain_or_tqdm_does_not_break(synth_ckpt, capsys):
    restored = trestle.restore(synth_ckpt, progress=True)
    assert restored


def test_exception_in_progress_cancels_and_propagates(synth_ckpt):
    class Stop(Exception):
        pass

    def stop(done, total):
        raise Stop()

    with pytest.raises(Stop):
        trestle.restore(synth_ckpt, progress=stop, threads=1)


@pytest.mark.skipif(not has_cuda_device(), reason="no CUDA device visible to torch")
def test_cuda_restore_stays_on_the_device(mixed_ckpt):
    prefix, values = mixed_ckpt
    restored = trestle.restore(prefix, device="cuda:0", framework="torch", progress=False)
    t = restored["dense/kernel"]
    assert t.is_cuda and t.device.index == 0
    assert torch.equal(t.cpu(), torch.from_numpy(values["dense/kernel"]))
    arrays = trestle.restore(prefix, device="cuda:0", framework="dlpack", progress=False)
    assert arrays["dense/kernel"].__dlpack_device__() == (2, 0)
    assert torch.equal(torch.from_dlpack(arrays["dense/kernel"]).cpu(),
                       torch.from_numpy(values["dense/kernel"]))


mock_only = pytest.mark.skipif(not trestle._trestle.cuda_mock,
                               reason="needs a TRESTLE_CUDA_MOCK build (scripts/check.sh asan)")


@mock_only
@pytest.mark.parametrize("device", [0, 1])
def test_device_restore_on_the_cuda_mock(mixed_ckpt, device):
    prefix, values = mixed_ckpt
    arrays = trestle.restore(prefix, device=f"cuda:{device}", framework="dlpack", progress=False)
    # String tensors have no device form: left out of an every-tensor restore.
    assert set(arrays) == set(values) - {"vocab", "note"}
    a = arrays["dense/kernel"]
    assert a.__dlpack_device__() == (2, device) and a.device == f"cuda:{device}"
    assert a.shape == (4, 6) and a.dtype.name == "float32" and a.nbytes == 96
    assert arrays["emb/bf16"].dtype.name == "bfloat16"
    assert type(a.__dlpack__()).__name__ == "PyCapsule"
    with pytest.raises(TypeError):
        a.numpy()        # device memory: no host view
    with pytest.raises(BufferError):
        memoryview(a._buffer)
    arena = arrays.arena
    assert arena().info()["device"] == device
    cap = arrays["int32"].__dlpack__()
    del a, arrays
    gc.collect()
    assert arena() is not None   # the capsule still holds it
    del cap
    gc.collect()
    assert arena() is None       # freed with cudaFree on the mock, checked by it


def test_restore_keeps_op_order_with_strings_and_empty_tensors_among_arrays(mixed_ckpt):
    """The engine makes the numpy views and leaves strings to Python: the
    result still lists every tensor in the checkpoint's order, with the
    string, the scalar and the empty tensor in their places (issue 24)."""
    prefix, values = mixed_ckpt
    restored = trestle.restore(prefix, bfloat16="uint16", progress=False)
    order = [name for name, _ in trestle.list_variables(prefix)]
    assert list(restored) == [n for n in order if n in values]
    assert restored["empty"].shape == (0, 3) and restored["empty"].dtype == np.float32
    assert restored["global_step"].shape == () and restored["global_step"] == 1234
    for name, value in restored.items():
        if isinstance(values[name], np.ndarray) and values[name].dtype != object:
            assert value.flags.writeable and value.flags.c_contiguous, name


def test_a_missing_ml_dtypes_is_looked_for_once(tmp_path, monkeypatch):
    """Python does not remember a failed import: restoring many bfloat16
    tensors without ml_dtypes searched sys.path once per tensor (15 s for
    100,000 of them). It is looked for once now (issue 24)."""
    import builtins
    import sys
    from trestle import _dtypes, _trestle
    prefix = str(tmp_path / "bf" / "ckpt")
    os.makedirs(os.path.dirname(prefix))
    w = _trestle.Writer(prefix)
    for i in range(200):
        w.add(f"t{i:03d}", 14, (2,), BF16_BITS[:2].tobytes())
    w.finish()
    monkeypatch.delitem(sys.modules, "ml_dtypes", raising=False)
    monkeypatch.setattr(_dtypes, "_ML_DTYPES_MISSING", [])
    tries = []
    real_import = builtins.__import__

    def no_ml_dtypes(name, *args, **kwargs):
        if name == "ml_dtypes":
            tries.append(name)
            raise ImportError("no ml_dtypes here")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ml_dtypes)
    restored = trestle.restore(prefix, progress=False)
    assert len(restored) == 200 and restored["t007"].dtype == np.uint16
    assert trestle.load_variable(prefix, "t150").dtype == np.uint16
    assert len(tries) == 1, f"ml_dtypes was looked for {len(tries)} times"
