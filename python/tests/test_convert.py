"""trestle convert / trestle.convert(): checkpoint -> safetensors, checked
by an independent reader of the format written here from its public
description (8-byte little-endian header length, JSON header of dtype,
shape and data_offsets per tensor, then the bytes), not by trestle."""
import json
import os
import struct
import subprocess

import numpy as np
import pytest

import trestle
from conftest import CLI, cli, fixture_params

ST_DTYPES = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "BF16": np.uint16,
             "I64": np.int64, "I32": np.int32, "I16": np.int16, "I8": np.int8, "U8": np.uint8,
             "U16": np.uint16, "U32": np.uint32, "U64": np.uint64, "BOOL": np.bool_,
             "F8_E4M3": np.uint8, "F8_E5M2": np.uint8}


def _no_duplicates(pairs):
    keys = [k for k, _ in pairs]
    assert len(keys) == len(set(keys)), f"duplicate header keys: {keys}"
    return dict(pairs)


def read_safetensors(path):
    """{name: (dtype string, numpy array)} plus the metadata, validating the
    layout the way the reference loader does: header JSON within the file,
    offsets in order, contiguous, covering the data exactly, sizes matching
    dtype x shape."""
    data = open(path, "rb").read()
    (n,) = struct.unpack("<Q", data[:8])
    assert 8 + n <= len(data) and n % 8 == 0
    header = json.loads(data[8:8 + n].decode("utf-8"), object_pairs_hook=_no_duplicates)
    meta = header.pop("__metadata__", None)
    body = data[8 + n:]
    spans = sorted((v["data_offsets"][0], v["data_offsets"][1], k) for k, v in header.items())
    at = 0
    for begin, end, name in spans:
        assert begin == at, f"{name}: hole or overlap at {at}"
        at = end
    assert at == len(body), "data section not covered exactly"
    out = {}
    for name, v in header.items():
        begin, end = v["data_offsets"]
        dt = np.dtype(ST_DTYPES[v["dtype"]])
        count = int(np.prod(v["shape"], dtype=np.int64))
        assert end - begin == count * dt.itemsize, name
        assert begin % dt.itemsize == 0, f"{name} is not aligned"
        out[name] = (v["dtype"], np.frombuffer(body[begin:end], dtype=dt).reshape(v["shape"]))
    return out, meta


def assert_matches_restore(st, restored):
    for name, (_, arr) in st.items():
        want = restored[name]
        assert arr.shape == want.shape and arr.tobytes() == want.tobytes(), name


@pytest.mark.parametrize("fixture", fixture_params(only_complete=True))
def test_every_real_fixture_converts_to_the_restored_bytes(fixture, tmp_path):
    out = str(tmp_path / "model.safetensors")
    stats = trestle.convert(fixture, out)
    st, meta = read_safetensors(out)
    assert meta == {"format": "pt"}
    restored = trestle.restore(fixture, bfloat16="uint16", progress=False)
    fixed = {k for k, v in restored.items() if v.dtype != object}
    assert set(st) == fixed and stats["tensors"] == len(fixed)
    assert stats["file_bytes"] == os.path.getsize(out)
    assert_matches_restore(st, restored)


def test_dtypes_strings_and_order(mixed_ckpt, tmp_path):
    prefix, values = mixed_ckpt
    out = str(tmp_path / "m.safetensors")
    stats = trestle.convert(prefix, out)
    st, _ = read_safetensors(out)
    assert stats["skipped"] == 2 and "vocab" not in st and "note" not in st
    assert st["emb/bf16"][0] == "BF16" and st["half"][0] == "F16" and st["flags"][0] == "BOOL"
    assert st["global_step"][0] == "I64" and st["global_step"][1].shape == ()
    assert st["empty"][1].shape == (0, 3)
    assert np.array_equal(st["emb/bf16"][1], values["emb/bf16"])
    assert np.array_equal(st["part/w"][1], values["part/w"])
    assert_matches_restore(st, trestle.restore(prefix, bfloat16="uint16", progress=False))


def test_ops_renames_exclusions_and_as_dtype(mixed_ckpt, tmp_path):
    prefix, values = mixed_ckpt
    out = str(tmp_path / "ops.safetensors")
    trestle.convert(prefix, out, ["k", ("dense/bias", "6 0,3"), "gone"], rename={"k": "dense/kernel"},
                    allow_missing=True)
    st, _ = read_safetensors(out)
    assert set(st) == {"k", "dense/bias"}
    assert np.array_equal(st["dense/bias"][1], values["dense/bias"][:3])
    out2 = str(tmp_path / "bf16.safetensors")
    trestle.convert(prefix, out2, exclude="dense/b*", as_dtype="bfloat16")
    st2, _ = read_safetensors(out2)
    assert "dense/bias" not in st2 and st2["dense/kernel"][0] == "BF16"
    assert st2["global_step"][0] == "I64"
    want = trestle.restore(prefix, ["dense/kernel"], as_dtype="bfloat16", progress=False)
    assert st2["dense/kernel"][1].tobytes() == want["dense/kernel"].tobytes()


def test_cli_convert_matches_the_library(mixed_ckpt, tmp_path):
    prefix, _ = mixed_ckpt
    a, b = str(tmp_path / "a.safetensors"), str(tmp_path / "b.safetensors")
    r = cli("convert", prefix, a, "--exclude", "half", "--no-sync")
    assert r.stdout.startswith(f"wrote {a}: ") and "(3 skipped)" in r.stdout
    trestle.convert(prefix, b, exclude="half", sync=False)
    assert open(a, "rb").read() == open(b, "rb").read()
    assert "Usage: trestle convert" in cli("convert", "--help").stdout
    assert "convert" in cli("help").stdout


def test_cli_convert_usage_errors_exit_2(mixed_ckpt, tmp_path):
    prefix, _ = mixed_ckpt
    for args in (["convert", prefix], ["convert", "--as", "int99", prefix, "x"],
                 ["convert", "--bogus", prefix, "x"], ["convert", "--rename", "=x", prefix, "x"],
                 ["convert", "--ops", "f", "--as", "bfloat16", prefix, "x"]):
        r = cli(*args, check=False)
        assert r.returncode == 2 and "trestle convert --help" in r.stderr, args
    assert os.listdir(tmp_path) == ["mixed"]


def test_cli_convert_with_an_ops_file(mixed_ckpt, tmp_path):
    prefix, values = mixed_ckpt
    ops = tmp_path / "ops.txt"
    ops.write_text("# two ops\ndense/bias\nk\t\tdtype=float\tas=bfloat16\n")
    out = str(tmp_path / "o.safetensors")
    cli("convert", "--ops", str(ops), "--rename", "k=dense/kernel", prefix, out)
    st, _ = read_safetensors(out)
    assert set(st) == {"dense/bias", "k"} and st["k"][0] == "BF16"
    ops.write_text("# nothing\n")
    r = cli("convert", "--ops", str(ops), prefix, str(tmp_path / "none.safetensors"), check=False)
    assert r.returncode == 1 and "lists no ops" in r.stderr
    assert not os.path.exists(tmp_path / "none.safetensors")


def leftovers(directory):
    return sorted(os.listdir(directory))


def test_failed_convert_leaves_nothing(mixed_ckpt, tmp_path):
    prefix, _ = mixed_ckpt
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    out = str(out_dir / "m.safetensors")
    with pytest.raises(trestle.KeyNotFoundError):
        trestle.convert(prefix, out, ["nope"])
    with pytest.raises(trestle.TrestleError) as e:
        trestle.convert(prefix, out, ["vocab"])   # strings named explicitly
    assert e.value.code_name == "E_UNSUPPORTED" and e.value.key == "vocab"
    # A CRC failure midway: the temporary file is removed, nothing renamed.
    from test_errors import _corrupt_tensor
    _corrupt_tensor(prefix, "int32")
    with pytest.raises(trestle.ChecksumError):
        trestle.convert(prefix, out)
    r = subprocess.run([CLI, "convert", prefix, out], capture_output=True, text=True)
    assert r.returncode == 1 and "CRC32C" in r.stderr
    assert leftovers(out_dir) == []


def test_failed_convert_keeps_an_existing_file(mixed_ckpt, tmp_path):
    prefix, _ = mixed_ckpt
    out = str(tmp_path / "keep.safetensors")
    open(out, "wb").write(b"old")
    with pytest.raises(trestle.KeyNotFoundError):
        trestle.convert(prefix, out, ["nope"])
    assert open(out, "rb").read() == b"old"
    trestle.convert(prefix, out)   # and a success replaces it
    assert read_safetensors(out)[0]


@pytest.mark.parametrize("fixture", fixture_params(only_incomplete=True))
def test_fixtures_without_data_fail_cleanly(fixture, tmp_path):
    with pytest.raises(trestle.TrestleError):
        trestle.convert(fixture, str(tmp_path / "x.safetensors"))
    assert leftovers(tmp_path) == []


def test_safetensors_package_reads_it_when_installed(mixed_ckpt, tmp_path):
    st = pytest.importorskip("safetensors.numpy", reason="safetensors is not installed")
    prefix, values = mixed_ckpt
    out = str(tmp_path / "m.safetensors")
    trestle.convert(prefix, out)
    loaded = st.load_file(out)
    assert np.array_equal(loaded["dense/kernel"], values["dense/kernel"])


# ---- issue 22: outputs that destroyed or replaced what they named ----

def test_convert_onto_the_checkpoints_own_files_is_refused(mixed_ckpt, tmp_path):
    prefix, _ = mixed_ckpt
    index, shard = prefix + ".index", prefix + ".data-00001-of-00002"
    before = {p: open(p, "rb").read() for p in (index, shard)}
    for out, what in ((index, "index"), (shard, "data file")):
        with pytest.raises(trestle.TrestleError) as e:
            trestle.convert(prefix, out)
        assert str(e.value) == (f"cannot write to {out}: it is the same file as the "
                                f"checkpoint's {what} {out}, and replacing it would destroy the "
                                "checkpoint being converted; write the file elsewhere")
        r = cli("convert", prefix, out, check=False)
        assert r.returncode == 1 and r.stderr == f"trestle: {e.value}\n"
    assert before == {p: open(p, "rb").read() for p in (index, shard)}
    assert trestle.restore(prefix, progress=False)["dense/kernel"].shape == (4, 6)


def test_convert_onto_a_fifo_leaves_it(mixed_ckpt, tmp_path):
    prefix, _ = mixed_ckpt
    fifo = str(tmp_path / "fifo")
    os.mkfifo(fifo)
    with pytest.raises(trestle.TrestleError, match="it is a FIFO, not a regular file"):
        trestle.convert(prefix, fifo)
    import stat
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)


def test_a_tensor_named_metadata_is_refused_and_keys_can_rename_it(tmp_path):
    from trestle import _trestle
    prefix = str(tmp_path / "m")
    w = _trestle.Writer(prefix)
    w.add("__metadata__", 1, (2,), np.array([1, 2], np.float32).tobytes())
    w.finish()
    out = str(tmp_path / "o.safetensors")
    with pytest.raises(trestle.TrestleError, match="__metadata__ is the safetensors header's own "
                                                   "key"):
        trestle.convert(prefix, out)
    trestle.convert(prefix, out, keys={"__metadata__": "metadata"})
    st, meta = read_safetensors(out)
    assert meta == {"format": "pt"} and list(st) == ["metadata"]


# ---- issue 25: names, transposes, progress, what was skipped ----

def test_keys_name_the_file_and_transpose_lands_transposed(mixed_ckpt, tmp_path):
    import re
    prefix, values = mixed_ckpt
    out = str(tmp_path / "t.safetensors")
    stats = trestle.convert(prefix, out, ["dense/kernel", "dense/bias", "int32"],
                            keys={"dense/": "fc.", re.compile(r"kernel$"): "weight"},
                            transpose=["dense/kernel", "int32"])
    st, _ = read_safetensors(out)
    assert set(st) == {"fc.weight", "fc.bias", "int32"} and stats["skipped_tensors"] == {}
    assert np.array_equal(st["fc.weight"][1], values["dense/kernel"].T)
    assert np.array_equal(st["int32"][1], values["int32"].T)
    assert np.array_equal(st["fc.bias"][1], values["dense/bias"])
    # A callable gets each name; the CLI's rules give the same file.
    trestle.convert(prefix, out, ["dense/kernel", "dense/bias", "int32"], transpose="*/kernel",
                    keys=lambda n: n.replace("dense/", "fc.").replace("kernel", "weight"))
    cli_out = str(tmp_path / "cli.safetensors")
    ops = tmp_path / "ops.txt"
    ops.write_text("dense/kernel\ndense/bias\nint32\n")
    cli("convert", "--ops", str(ops), "--key", "dense/=fc.", "--key-regex", "kernel$=weight",
        "--transpose", "*/kernel", prefix, cli_out)
    assert open(out, "rb").read() == open(cli_out, "rb").read()


def test_keys_and_transpose_that_match_nothing_are_refused(mixed_ckpt, tmp_path):
    prefix, _ = mixed_ckpt
    out = str(tmp_path / "x.safetensors")
    with pytest.raises(ValueError, match="keys: 'nothing/' matches no tensor"):
        trestle.convert(prefix, out, keys={"nothing/": "x/"})
    with pytest.raises(trestle.TrestleError, match="transpose 'zz' matches no tensor"):
        trestle.convert(prefix, out, transpose="zz")
    with pytest.raises(trestle.TrestleError, match="only 2-D tensors transpose"):
        trestle.convert(prefix, out, transpose="dense/*")
    with pytest.raises(ValueError, match="would both be named x"):
        trestle.convert(prefix, out, keys=lambda n: "x")
    assert leftovers(tmp_path) == ["mixed"]


def test_convert_reports_progress_and_names_what_it_skipped(mixed_ckpt, tmp_path):
    prefix, _ = mixed_ckpt
    calls = []
    stats = trestle.convert(prefix, str(tmp_path / "p.safetensors"), exclude="half",
                            progress=lambda done, total: calls.append((done, total)))
    assert calls and calls[-1][0] == calls[-1][1] == stats["file_bytes"] - stats["header_bytes"]
    assert stats["skipped_tensors"] == {"half": "excluded",
                                        "note": "string: safetensors has no strings",
                                        "vocab": "string: safetensors has no strings"}
    r = cli("convert", "--exclude", "half", prefix, str(tmp_path / "c.safetensors"))
    assert r.stdout.split("\n")[1:] == ["skipped (excluded): half",
                                        "skipped (string: safetensors has no strings): note, vocab",
                                        ""]


def test_convert_as_dtype_counts_strings_as_without_it(mixed_ckpt, tmp_path):
    prefix, _ = mixed_ckpt
    a = trestle.convert(prefix, str(tmp_path / "a.safetensors"))
    b = trestle.convert(prefix, str(tmp_path / "b.safetensors"), as_dtype="bfloat16")
    assert a["skipped"] == b["skipped"] == 2
    assert a["skipped_tensors"] == b["skipped_tensors"]
