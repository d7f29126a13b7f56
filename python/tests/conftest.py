"""Shared fixtures of the trestle pytest suites.

Real TensorFlow checkpoints come from ../shared/fixtures beside the
checkout (TRESTLE_SHARED overrides); tests that need them skip with a
message when that directory is absent, and fail under CI=true, whose
.ci/run promises it (as tests/testutil.c does). Everything else is written by
libtrestle's own bundle writer (TensorFlow-identical bytes) into tmp_path.
The `trestle` CLI is TRESTLE_CLI (set by ctest), else build/trestle.
"""
import glob
import json
import os
import subprocess

import numpy as np
import pytest

import trestle
from trestle import _trestle

SOURCE_DIR = os.environ.get("TRESTLE_SOURCE_DIR") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
SHARED = os.environ.get("TRESTLE_SHARED") or os.path.abspath(os.path.join(SOURCE_DIR, "..",
                                                                          "shared"))
TF_REAL = os.path.join(SHARED, "fixtures", "tf-real")
CLI = os.environ.get("TRESTLE_CLI") or os.path.join(SOURCE_DIR, "build", "trestle")


def real_fixture_dirs():
    """Every fixture directory of tf-real, or [] when ../shared is absent."""
    return sorted(d for d in glob.glob(os.path.join(TF_REAL, "*")) if os.path.isdir(d))


def complete(d):
    """True for fixtures whose data shards are all present."""
    return not any(tag in os.path.basename(d) for tag in ("INDEXONLY", "STATEFILEONLY"))


def absent_params():
    """The one parameter of a test whose real fixtures are absent: a skip,
    or under CI=true (which promises ../shared) a failure."""
    reason = f"real TensorFlow fixtures not found at {TF_REAL} (../shared absent)"
    if os.environ.get("CI") == "true":
        return [pytest.param(None, marks=pytest.mark.shared_absent(reason))]
    return [pytest.param(None, marks=pytest.mark.skip(reason=reason))]


def pytest_configure(config):
    config.addinivalue_line("markers", "shared_absent(reason): the real fixtures are absent "
                                       "under CI=true: the test fails")


def pytest_runtest_setup(item):
    mark = item.get_closest_marker("shared_absent")
    if mark:
        pytest.fail(f"{mark.args[0]}, and CI=true promises it (.ci/run)", pytrace=False)


def fixture_params(only_complete=False, only_incomplete=False):
    dirs = [d for d in real_fixture_dirs()
            if (complete(d) or not only_complete) and (not complete(d) or not only_incomplete)]
    if not dirs:
        return absent_params()
    return [pytest.param(d, id=os.path.basename(d)) for d in dirs]


def index_only_params():
    """Each checkpoint prefix (PREFIX.index) in the fixtures that lack data
    shards: a directory with two indexes gives two, one with only a state
    file none (it has no checkpoint to list)."""
    prefixes = [i[:-len(".index")] for d in real_fixture_dirs() if not complete(d)
                for i in sorted(glob.glob(os.path.join(d, "*.index")))]
    if not prefixes:
        return absent_params()
    return [pytest.param(p, id=os.path.relpath(p, TF_REAL)) for p in prefixes]


def cli(*args, check=True):
    r = subprocess.run([CLI, *args], capture_output=True, text=True)
    if check and r.returncode != 0:
        raise AssertionError(f"trestle {' '.join(args)} failed: {r.stderr}")
    return r


def inspect_json(path, tensors=()):
    args = ["inspect", path, "--json"]
    for t in tensors:
        args += ["--tensor", t]
    if tensors:
        args.append("--all")
    return json.loads(cli(*args).stdout)


BF16_BITS = np.array([0x3F80, 0xC000, 0x7F80, 0x0001, 0x7FC0, 0x3E20], dtype=np.uint16)


@pytest.fixture
def mixed_ckpt(tmp_path):
    """A 2-shard checkpoint of many dtypes, a string tensor, a scalar, an
    empty tensor and a partitioned variable; returns (prefix, {name: value}),
    bfloat16 values given as their uint16 bits."""
    prefix = str(tmp_path / "mixed" / "model.ckpt-7")
    os.makedirs(os.path.dirname(prefix))
    rng = np.random.default_rng(7)
    values = {
        "dense/kernel": rng.standard_normal((4, 6)).astype(np.float32),
        "dense/bias": rng.standard_normal(6).astype(np.float32),
        "emb/bf16": BF16_BITS.reshape(2, 3),
        "half": rng.standard_normal(5).astype(np.float16),
        "double": rng.standard_normal((2, 2)).astype(np.float64),
        "global_step": np.array(1234, dtype=np.int64),
        "flags": np.array([True, False, True]),
        "small/int8": np.arange(-3, 3, dtype=np.int8),
        "u16": np.arange(4, dtype=np.uint16),
        "int32": np.arange(12, dtype=np.int32).reshape(3, 4),
        "empty": np.zeros((0, 3), dtype=np.float32),
    }
    dtypes = {"emb/bf16": 14}
    w = _trestle.Writer(prefix, num_shards=2)
    for i, (name, v) in enumerate(values.items()):
        dt = dtypes.get(name) or trestle.as_dtype(v.dtype).as_datatype_enum
        w.add(name, dt, v.shape, np.ascontiguousarray(v).tobytes(), shard=i % 2)
    words = [b"alpha", b"", b"\x00\xffbytes", b"delta"]
    w.add_strings("vocab", (2, 2), words)
    w.add_strings("note", (), [b"a scalar string"])
    part = np.arange(20, dtype=np.float32).reshape(4, 5)
    w.add("part/w", 1, (), part[:2].tobytes(), spec="4 5 0,2:-")
    w.add("part/w", 1, (), part[2:].tobytes(), spec="4 5 2,2:-", shard=1)
    w.finish()
    with open(os.path.join(os.path.dirname(prefix), "checkpoint"), "w") as f:
        f.write('model_checkpoint_path: "model.ckpt-7"\n'
                'all_model_checkpoint_paths: "model.ckpt-7"\n')
    values["vocab"] = np.array(words, dtype=object).reshape(2, 2)
    values["note"] = b"a scalar string"
    values["part/w"] = part
    return prefix, values


@pytest.fixture
def synth_ckpt(tmp_path):
    """A 64 MiB LLM-shaped bfloat16 checkpoint from `trestle synth`."""
    prefix = str(tmp_path / "synth" / "ckpt")
    os.makedirs(os.path.dirname(prefix))
    cli("synth", prefix, "--size", "64M", "--shards", "3", "--dtype", "bf16")
    return prefix


def has_cuda_device():
    try:
        import torch
        return torch.cuda.is_available()
    except ImportError:
        return False
