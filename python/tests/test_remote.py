"""The Python package on remote checkpoints, served by a real nginx on
127.0.0.1 (started by the fixture with a config it writes, stopped by its
PID): list_variables, load_checkpoint, latest_checkpoint, restore and
convert over http://, s3:// (path style under AWS_ENDPOINT_URL) and gs://
(STORAGE_EMULATOR_HOST) give what the local copy gives, and an exception
never carries a credential or a presigned URL's signature."""
import os
import shutil
import signal
import socket
import subprocess
import time

import numpy as np
import pytest

import trestle

NGINX = "/usr/sbin/nginx"
SECRETS = ("wJalrXUtnFEMI-py-secret", "py-session-token", "ya29.py-token", "sig-py-0123456789",
           "py-pa55word")


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def served(tmp_path, mixed_ckpt, monkeypatch):
    """(base URL, local prefix, values, root): mixed_ckpt served by nginx."""
    if not os.access(NGINX, os.X_OK):
        why = "nginx is not installed (scripts/deps.sh installs nginx-light)"
        if os.environ.get("CI") == "true":  # .ci/run installs it: its absence is a failure
            pytest.fail(f"{why}, and CI=true promises it", pytrace=False)
        pytest.skip(why)
    prefix, values = mixed_ckpt
    root = str(tmp_path)
    run = tmp_path / "nginx"
    run.mkdir()
    port = _free_port()
    user = ""
    if os.geteuid() == 0:
        import grp
        import pwd
        user = (f"user {pwd.getpwuid(os.geteuid()).pw_name} "
                f"{grp.getgrgid(os.getegid()).gr_name};\n")
    conf = run / "nginx.conf"
    conf.write_text(
        f"daemon off;\nworker_processes 1;\n{user}pid {run}/nginx.pid;\n"
        f"error_log {run}/error.log;\nevents {{ worker_connections 256; }}\n"
        f"http {{\n  default_type application/octet-stream;\n"
        f"  access_log {run}/access.log;\n  client_body_temp_path {run};\n"
        f"  proxy_temp_path {run};\n  fastcgi_temp_path {run};\n  uwsgi_temp_path {run};\n"
        f"  scgi_temp_path {run};\n"
        f"  server {{\n    listen 127.0.0.1:{port};\n    root {root};\n"
        # Data GETs under /down/ answer 503 (HEADs and the index are served).
        f"    location /down/ {{\n      alias {root}/;\n      set $f \"\";\n"
        f"      if ($uri ~ \"\\.data-\") {{ set $f 1; }}\n"
        f"      if ($request_method = HEAD) {{ set $f \"\"; }}\n"
        f"      if ($f) {{ return 503; }}\n    }}\n  }}\n}}\n")
    proc = subprocess.Popen([NGINX, "-c", str(conf), "-p", str(run)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(500):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
                break
            except OSError:
                assert proc.poll() is None, (run / "error.log").read_text()
                time.sleep(0.01)
        base = f"http://127.0.0.1:{port}"
        monkeypatch.setenv("AWS_ENDPOINT_URL", base)
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDPYTEST")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRETS[0])
        monkeypatch.setenv("AWS_SESSION_TOKEN", SECRETS[1])
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", base)
        monkeypatch.setenv("GOOGLE_OAUTH_ACCESS_TOKEN", SECRETS[2])
        yield base, prefix, values, root
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)


def _urls(base, prefix, root):
    rel = os.path.relpath(prefix, root)       # mixed/model.ckpt-7
    return [f"{base}/{rel}", f"s3://{rel}", f"gs://{rel}"]


def _equal(a, b):
    if isinstance(a, np.ndarray) and a.dtype == object:
        return a.shape == b.shape and all(x == y for x, y in zip(a.ravel(), b.ravel()))
    return np.array_equal(np.asarray(a), np.asarray(b))


def test_list_and_load_over_every_scheme_equal_the_local_copy(served):
    base, prefix, _, root = served
    local = trestle.list_variables(prefix)
    reader = trestle.load_checkpoint(prefix, bfloat16="uint16")
    for url in _urls(base, prefix, root):
        assert trestle.list_variables(url) == local, url
        remote = trestle.load_checkpoint(url, bfloat16="uint16")
        for name, _ in local:
            assert _equal(remote.get_tensor(name), reader.get_tensor(name)), (url, name)
        assert _equal(trestle.load_variable(url, "dense/kernel"),
                      reader.get_tensor("dense/kernel"))


def test_latest_checkpoint_of_a_url_directory(served):
    base, prefix, _, root = served
    d = os.path.dirname(os.path.relpath(prefix, root))
    assert trestle.latest_checkpoint(f"{base}/{d}") == f"{base}/{d}/model.ckpt-7"
    assert trestle.latest_checkpoint(f"s3://{d}/") == f"s3://{d}/model.ckpt-7"
    # The directory itself opens as its latest checkpoint, as a local one does.
    assert trestle.list_variables(f"gs://{d}") == trestle.list_variables(prefix)


def test_restore_and_convert_from_urls_equal_the_local_copy(served, tmp_path):
    base, prefix, _, root = served
    want = trestle.restore(prefix)
    shutil.rmtree(tmp_path / "out", ignore_errors=True)
    os.makedirs(tmp_path / "out")
    trestle.convert(prefix, str(tmp_path / "out" / "local.safetensors"))
    local_bytes = (tmp_path / "out" / "local.safetensors").read_bytes()
    for i, url in enumerate(_urls(base, prefix, root)):
        got = trestle.restore(url)
        assert got.stats["reader"] == "remote"
        assert sorted(got) == sorted(want)
        for name in want:
            assert _equal(got[name], want[name]), (url, name)
        out = tmp_path / "out" / f"r{i}.safetensors"
        trestle.convert(url, str(out))
        assert out.read_bytes() == local_bytes, url


def test_exceptions_name_the_url_and_never_a_secret(served, monkeypatch):
    base, prefix, _, root = served
    rel = os.path.relpath(prefix, root)
    signed = (f"http://reader:{SECRETS[4]}@{base[len('http://'):]}/{rel}-absent"
              f"?X-Amz-Signature={SECRETS[3]}")
    cases = [signed, f"s3://{rel}-absent", f"gs://{rel}-absent"]
    for url in cases:
        with pytest.raises(trestle.CheckpointNotFoundError) as e:
            trestle.list_variables(url)
        text = "\n".join([str(e.value), repr(e.value), repr(e.value.args),
                          str(getattr(e.value, "path", ""))])
        for secret in SECRETS:
            assert secret not in text, (url, text)
        assert "no checkpoint at " in str(e.value)
    with pytest.raises(trestle.CheckpointNotFoundError) as e:
        trestle.restore(signed)
    assert "?<redacted>" in str(e.value)
    assert SECRETS[3] not in str(e.value) and SECRETS[4] not in str(e.value)


def test_connections_attempts_and_backoff_reach_the_engine(served, tmp_path):
    base, prefix, _, root = served
    rel = os.path.relpath(prefix, root)
    want = trestle.restore(prefix)
    got = trestle.restore(f"{base}/{rel}", connections=1, attempts=1, backoff_ms=1)
    assert sorted(got) == sorted(want)
    for name in want:
        assert _equal(got[name], want[name]), name
    # A store that keeps failing fails after the attempts asked for.
    down = f"{base}/down/{rel}"
    with pytest.raises(trestle.TrestleError) as e:
        trestle.restore(down, attempts=2, backoff_ms=1)
    assert ": HTTP 503 Service Unavailable, after 2 attempts" in str(e.value)
    with pytest.raises(trestle.TrestleError) as e:
        trestle.convert(down, str(tmp_path / "x.safetensors"), attempts=3, backoff_ms=1)
    assert ": HTTP 503 Service Unavailable, after 3 attempts" in str(e.value)
    assert not (tmp_path / "x.safetensors").exists()
    # Checked as the CLI checks them, before any request.
    with pytest.raises(ValueError, match=r"^connections wants a number from 1 to 1024, not 0$"):
        trestle.restore(down, connections=0)
    with pytest.raises(TypeError, match=r"^attempts wants a number from 1 to 100, not '3'$"):
        trestle.convert(down, str(tmp_path / "x.safetensors"), attempts="3")
