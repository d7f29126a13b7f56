"""rename= and keys=, and the arguments Python checks as the CLI does.

rename= maps op names to checkpoint keys (it needs ops, as the CLI's
--rename needs --ops); keys= names the result. Python used to accept what
the CLI refuses (issue 22) and ignore or misapply rename= (issue 25).
"""
import io
import re
import sys

import numpy as np
import pytest

import trestle
from trestle import _bulk
from conftest import cli


def test_rename_without_ops_is_refused_in_restore_and_convert_as_in_the_cli(mixed_ckpt,
                                                                            tmp_path):
    prefix, _ = mixed_ckpt
    message = ("rename and rnn_renames map the names of ops to checkpoint keys; they need ops "
               "(to name the tensors of the result or the file, use keys=)")
    for call in (lambda **kw: trestle.restore(prefix, **kw),
                 lambda **kw: trestle.convert(prefix, str(tmp_path / "o.safetensors"), **kw)):
        for kw in ({"rename": {"model/": ""}}, {"rnn_renames": True}):
            with pytest.raises(ValueError) as e:
                call(**kw)
            assert str(e.value) == message
    for cmd in ("restore", "convert"):
        r = cli(cmd, "--rename", "model/=", prefix, *(["o"] if cmd == "convert" else []),
                check=False)
        assert r.returncode == 2 and "--rename and --rnn-renames map the names of an ops file" \
            in r.stderr


def test_rename_with_ops_reads_each_op_from_its_key(mixed_ckpt):
    prefix, values = mixed_ckpt
    w = trestle.restore(prefix, ["fc/kernel", "fc/bias"], rename={"fc/": "dense/"},
                        progress=False)
    assert list(w) == ["fc/kernel", "fc/bias"]
    assert np.array_equal(w["fc/kernel"], values["dense/kernel"])


def test_keys_name_the_result_in_order_with_prefixes_patterns_and_callables(mixed_ckpt):
    prefix, values = mixed_ckpt
    w = trestle.restore(prefix, exclude=["vocab", "note"], progress=False,
                        keys={"dense/": "", re.compile(r"^(kernel|bias)$"): r"fc.\1",
                              "global_step": "step"})
    assert {"fc.kernel", "fc.bias", "step", "emb/bf16"} <= set(w)
    assert np.array_equal(w["fc.kernel"], values["dense/kernel"])
    # The README's first example: as_dtype and a prefix dropped, together.
    w = trestle.restore(prefix, ["dense/kernel"], keys={"dense/": ""}, as_dtype="bfloat16",
                        framework="torch", progress=False)
    assert list(w) == ["kernel"] and str(w["kernel"].dtype) == "torch.bfloat16"
    w = trestle.restore(prefix, ["dense/kernel", "dense/bias"], keys=str.upper, progress=False)
    assert list(w) == ["DENSE/KERNEL", "DENSE/BIAS"]


def test_keys_that_do_nothing_or_collide_are_refused(mixed_ckpt):
    prefix, _ = mixed_ckpt
    with pytest.raises(ValueError, match="keys: 'model/' matches no tensor"):
        trestle.restore(prefix, ["dense/kernel"], keys={"model/": ""}, progress=False)
    with pytest.raises(ValueError, match="tensors dense/kernel and dense/bias would both be named "
                                         "x"):
        trestle.restore(prefix, ["dense/kernel", "dense/bias"], keys=lambda n: "x",
                        progress=False)
    with pytest.raises(TypeError, match="keys must be a mapping or a callable"):
        trestle.restore(prefix, keys=["a=b"])
    with pytest.raises(TypeError, match="mapping keys must be non-empty str"):
        trestle.restore(prefix, keys={1: "x"})
    with pytest.raises(TypeError, match=r"keys\('dense/kernel'\) returned int"):
        trestle.restore(prefix, ["dense/kernel"], keys=lambda n: 1, progress=False)


@pytest.mark.parametrize("threads", [True, 10**9, 0, 1.5, "4"])
def test_threads_are_checked_as_the_cli_checks_them(mixed_ckpt, tmp_path, threads):
    prefix, _ = mixed_ckpt
    message = f"threads wants a number from 1 to 1024, not {threads!r}"
    for call in (lambda: trestle.restore(prefix, threads=threads),
                 lambda: trestle.convert(prefix, str(tmp_path / "o"), threads=threads)):
        with pytest.raises((TypeError, ValueError)) as e:
            call()
        assert str(e.value) == message
    if not isinstance(threads, str):   # the CLI's argument is text: "4" is its 4
        r = cli("restore", "--threads", str(threads), prefix, check=False)
        assert r.returncode == 2 and "--threads wants a number from 1 to 1024" in r.stderr
    trestle.restore(prefix, threads=1024, progress=False)


def test_an_as_dtype_nothing_converts_to_is_refused_as_in_the_cli(mixed_ckpt, tmp_path):
    prefix, _ = mixed_ckpt
    tail = ("no tensor of this checkpoint converts to int4 (supported: float32 -> bfloat16, "
            "float32 -> float16, float16 -> float32, bfloat16 -> float32)")
    for call in (lambda: trestle.restore(prefix, as_dtype="int4"),
                 lambda: trestle.convert(prefix, str(tmp_path / "o"), as_dtype="int4")):
        with pytest.raises(ValueError) as e:
            call()
        assert str(e.value) == "as_dtype int4: " + tail
    for args in (["restore", "--as", "int4", prefix], ["convert", "--as", "int4", prefix, "o"]):
        r = cli(*args, check=False)
        assert r.returncode == 1 and r.stderr == f"trestle: --as int4: {tail}\n"


def test_the_default_progress_bar_is_drawn_only_on_a_terminal(monkeypatch):
    class Tty(io.StringIO):
        def isatty(self):
            return True
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    assert _bulk._progress(True, 100) is None
    monkeypatch.setattr(sys, "stderr", Tty())
    bar = _bulk._progress(True, 100, "trestle.convert")
    assert isinstance(bar, _bulk._Bar) and bar.what == "trestle.convert"
    assert _bulk._progress(False, 100) is None
