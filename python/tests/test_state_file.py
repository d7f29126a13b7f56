"""latest_checkpoint() reads the `checkpoint` state file with the engine's
parser (trestle_latest_checkpoint), the one trestle_open() uses for a
directory, so it and load_checkpoint() give one answer (issue 22 item 8),
and a FIFO or device where the state file should be is refused without
blocking (item 7). Calls that blocked before the fix run in a child
interpreter with a timeout, so a regression fails instead of hanging."""
import os
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest

import trestle
from trestle import _trestle

FIFO_NOTE = "it is a FIFO; trestle reads only regular files"


def _checkpoint(prefix):
    """A one-tensor checkpoint at `prefix` (writer-made)."""
    os.makedirs(os.path.dirname(prefix), exist_ok=True)
    w = _trestle.Writer(prefix, num_shards=1)
    w.add("w", 1, (2,), np.array([1, 2], dtype=np.float32).tobytes())
    w.finish()
    return prefix


def _state(d, text):
    with open(os.path.join(d, "checkpoint"), "wb") as f:
        f.write(text)


def _latest_quietly(d):
    with warnings.catch_warnings():
        warnings.simplefilter("error")   # a case that should resolve must not warn
        return trestle.latest_checkpoint(d)


def test_octal_escaped_non_ascii_paths_resolve(tmp_path):
    """TensorFlow writes a non-ASCII path as octal escapes."""
    prefix = _checkpoint(str(tmp_path / "m\u00f6del"))
    _state(str(tmp_path), b'model_checkpoint_path: "m\\303\\266del"\n')
    assert _latest_quietly(str(tmp_path)) == prefix
    assert trestle.load_checkpoint(str(tmp_path)).prefix == prefix


def test_the_last_of_two_model_checkpoint_paths_wins_and_comments_are_ignored(tmp_path):
    _checkpoint(str(tmp_path / "ckpt-1"))
    newest = _checkpoint(str(tmp_path / "ckpt-2"))
    _state(str(tmp_path), b'model_checkpoint_path: "ckpt-1"\n'
                          b'all_model_checkpoint_paths: "ckpt-1"\n'
                          b'model_checkpoint_path: "ckpt-2"   # the newest\n')
    assert _latest_quietly(str(tmp_path)) == newest
    assert trestle.load_checkpoint(str(tmp_path)).prefix == newest


def test_paths_join_as_os_path_join_and_latest_filename_is_honoured(tmp_path):
    prefix = _checkpoint(str(tmp_path / "ckpt-3"))
    with open(tmp_path / "my_state", "w") as f:
        f.write("model_checkpoint_path: 'ckpt-3'\n")
    assert _latest_quietly(str(tmp_path) + "/") is None           # no `checkpoint` file
    assert trestle.latest_checkpoint(str(tmp_path) + "/", "my_state") == prefix
    assert trestle.latest_checkpoint(tmp_path, latest_filename=b"my_state") == prefix


def test_an_empty_path_is_tensorflows_value_error(tmp_path):
    _state(str(tmp_path), b'all_model_checkpoint_paths: "x"\n')
    want = f"Invalid checkpoint state loaded from {tmp_path}"
    with pytest.raises(ValueError, match=want) as e:
        trestle.latest_checkpoint(str(tmp_path))
    assert isinstance(e.value, trestle.InvalidCheckpointStateError)
    with pytest.raises(ValueError, match=want):
        trestle.load_checkpoint(str(tmp_path))


def test_an_unparseable_file_warns_and_gives_none_as_tensorflow(tmp_path):
    _state(str(tmp_path), b'model_checkpoint_path: "unterminated\n')
    with pytest.warns(RuntimeWarning, match=r"bad string at byte 23; checkpoint ignored"):
        assert trestle.latest_checkpoint(str(tmp_path)) is None


def _child(code, timeout=30):
    """Run `code` in a fresh interpreter with this suite's trestle; a call
    that blocks fails the test (TimeoutExpired) instead of hanging it."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    r = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                       text=True, env=env, timeout=timeout)
    assert r.returncode == 0, r.stderr
    return r.stdout


SPECIAL_CALLS = """
    import sys, warnings, trestle
    d = sys.argv[1] if len(sys.argv) > 1 else {d!r}
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        print("latest:", trestle.latest_checkpoint(d))
        print("warned:", w[0].message if w else None)
    try:
        trestle.load_checkpoint(d)
    except trestle.TrestleError as e:
        print("load:", type(e).__name__, e.code_name, e)
"""


def test_a_fifo_state_file_is_refused_without_blocking(tmp_path):
    _checkpoint(str(tmp_path / "ckpt"))
    state = str(tmp_path / "checkpoint")
    os.mkfifo(state)
    out = _child(SPECIAL_CALLS.format(d=str(tmp_path)))
    msg = f"cannot read the checkpoint state file {state}: {FIFO_NOTE}"
    assert out == (f"latest: None\nwarned: {msg}; checkpoint ignored\n"
                   f"load: TrestleError E_IO {msg}\n")


def test_a_device_state_file_is_refused_without_reading(tmp_path):
    """/dev/zero as the state file: an unbounded read before the fix. The
    node is made here (mknod as root), else a symlink to the system's
    /dev/zero, which is only read."""
    state = str(tmp_path / "checkpoint")
    try:
        os.mknod(state, 0o600 | 0o020000, os.makedev(1, 5))
    except PermissionError:
        os.symlink("/dev/zero", state)
    out = _child(SPECIAL_CALLS.format(d=str(tmp_path)))
    msg = (f"cannot read the checkpoint state file {state}: it is a character device; "
           "trestle reads only regular files")
    assert out == (f"latest: None\nwarned: {msg}; checkpoint ignored\n"
                   f"load: TrestleError E_IO {msg}\n")


def test_an_oversize_state_file_gets_the_same_answer_from_both(tmp_path):
    """99 MB: latest_checkpoint() returned a path load_checkpoint() refused."""
    _checkpoint(str(tmp_path / "ckpt"))
    state = str(tmp_path / "checkpoint")
    with open(state, "wb") as f:
        f.write(b'model_checkpoint_path: "ckpt"\n')
        f.truncate(99_000_000)
    out = _child(SPECIAL_CALLS.format(d=str(tmp_path)))
    msg = (f"cannot read the checkpoint state file {state}: it is 99000000 bytes; a checkpoint "
           "state file is a few lines, and trestle reads at most 16 MiB")
    assert out == (f"latest: None\nwarned: {msg}; checkpoint ignored\n"
                   f"load: TrestleError E_LIMIT {msg}\n")


@pytest.mark.parametrize("text", [
    b'model_checkpoint_path: "ckpt"\n',
    b'model_checkpoint_path: "gone"\nmodel_checkpoint_path: "ckpt"\n',
    b"model_checkpoint_path: 'c\\153pt' # octal k\n",
    b'model_checkpoint_path: "c\\x6bpt"\n',
    b'all_model_checkpoint_timestamps: 1.5\nmodel_checkpoint_path: "ckpt"\n',
    b'model_checkpoint_path: "gone"\n',
    b'model_checkpoint_path: "ckpt\n',
    b'model_checkpoint_path "ckpt" extra\n',
])
def test_latest_checkpoint_and_load_checkpoint_agree(tmp_path, text):
    """One parser, one answer: latest_checkpoint() names what
    load_checkpoint() of the directory opens, or gives None (with a
    warning) where it raises, naming the same reason."""
    prefix = _checkpoint(str(tmp_path / "ckpt"))
    _state(str(tmp_path), text)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        latest = trestle.latest_checkpoint(str(tmp_path))
    try:
        opened = trestle.load_checkpoint(str(tmp_path)).prefix
    except trestle.TrestleError as e:
        assert latest is None and [str(x.message) for x in w] == [f"{e}; checkpoint ignored"]
        return
    assert latest == opened == prefix and not w
