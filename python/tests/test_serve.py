"""trestle.restore(path, server=...): the tensors of a `trestle serve`
server's resident entry, mapped read-only, equal to a plain restore; the
mapping lives as long as the arrays; without a resident entry a
NotResidentWarning says why and the restore goes ahead from storage."""
import gc
import os
import signal
import subprocess
import time
import warnings
import weakref

import numpy as np
import pytest

import trestle
from conftest import CLI, cli

try:
    import torch
except ImportError:
    torch = None


@pytest.fixture
def server(tmp_path):
    """A `trestle serve` on tmp_path/s.sock, stopped (SIGTERM, by pid) after the test."""
    sock = str(tmp_path / "s.sock")
    log = open(tmp_path / "serve.log", "w")
    p = subprocess.Popen([CLI, "serve", "--socket", sock], stdout=log, stderr=log)
    for _ in range(1000):
        if cli("preload", "--list", "--socket", sock, check=False).returncode == 0:
            break
        time.sleep(0.01)
    else:
        p.kill()
        raise AssertionError("trestle serve did not start")
    yield sock
    p.send_signal(signal.SIGTERM)
    assert p.wait(10) == 0
    log.close()


def clients(sock):
    return [line for line in cli("preload", "--list", "--json", "--socket", sock).stdout
            .splitlines() if '"path"' in line]


def test_resident_arrays_equal_a_plain_restore(mixed_ckpt, server):
    prefix, _ = mixed_ckpt
    cli("preload", prefix, "--socket", server)
    plain = trestle.restore(prefix, bfloat16="uint16", progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")   # resident: no warning
        got = trestle.restore(prefix, server=server, bfloat16="uint16", progress=False)
    assert got.resident is True
    assert got.server_note == ""
    assert got.stats["bytes_read"] == 0
    assert got.keys() == plain.keys()
    for name, want in plain.items():
        have = got[name]
        assert have.dtype == want.dtype and have.shape == want.shape, name
        if want.dtype == object:
            assert have.tolist() == want.tolist(), name
        else:
            assert np.array_equal(have, want), name
            assert have.size == 0 or not have.flags.writeable, name   # the memory is sealed


def test_the_mapping_lives_as_long_as_the_arrays(mixed_ckpt, server):
    prefix, _ = mixed_ckpt
    cli("preload", prefix, "--socket", server)
    got = trestle.restore(prefix, server=server, bfloat16="uint16", progress=False)
    attachment = got.arena
    assert attachment() is not None
    assert '"clients": 1' in clients(server)[0]
    kernel = got["dense/kernel"]
    del got
    gc.collect()
    assert attachment() is not None   # the array keeps it
    del kernel
    gc.collect()
    assert attachment() is None
    for _ in range(500):
        if '"clients": 0' in clients(server)[0]:
            break
        time.sleep(0.01)
    assert '"clients": 0' in clients(server)[0]


def test_not_resident_warns_and_restores_from_storage(mixed_ckpt, tmp_path):
    prefix, values = mixed_ckpt
    sock = str(tmp_path / "none.sock")
    with pytest.warns(trestle.NotResidentWarning) as w:
        got = trestle.restore(prefix, server=sock, bfloat16="uint16", progress=False)
    assert str(w[0].message) == (f"trestle.restore: not resident: no trestle server on {sock} "
                                 "(connect: No such file or directory); restoring from storage")
    assert got.resident is False
    assert got.server_note.startswith("no trestle server on ")
    assert np.array_equal(got["dense/kernel"], values["dense/kernel"])
    assert got["dense/kernel"].flags.writeable


def test_selection_and_conversion_must_match(synth_ckpt, server):
    cli("preload", synth_ckpt, "--as", "float32", "--socket", server)
    with pytest.warns(trestle.NotResidentWarning, match="resident with another selection"):
        trestle.restore(synth_ckpt, server=server, progress=False)
    got = trestle.restore(synth_ckpt, server=server, as_dtype="float32", progress=False)
    assert got.resident
    plain = trestle.restore(synth_ckpt, as_dtype="float32", progress=False)
    assert all(np.array_equal(got[k], plain[k]) for k in plain)


@pytest.mark.skipif(torch is None, reason="torch (python3-torch) is not installed")
def test_torch_views_of_resident_memory(mixed_ckpt, server):
    prefix, values = mixed_ckpt
    cli("preload", prefix, "--socket", server)
    with warnings.catch_warnings():
        warnings.simplefilter("error")   # no "not writable" warning from torch
        got = trestle.restore(prefix, server=server, framework="torch", progress=False)
    assert torch.equal(got["dense/kernel"], torch.from_numpy(values["dense/kernel"]))
