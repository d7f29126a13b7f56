"""Packaging: `pip install --no-build-isolation ./python` into a venv and
`cmake --install` both give an importable package, away from the source,
whose version (trestle.__version__, and the pip metadata) is the CMake
project's. `cmake --install --prefix /usr/local` (into a temporary DESTDIR,
never the real /usr/local) must put it where a fresh interpreter imports
packages from /usr/local: Debian's sysconfig once sent it to
/usr/local/local/lib/python3.X/dist-packages (issue 25)."""
import os
import subprocess
import sys

import pytest

from conftest import SOURCE_DIR

BUILD_DIR = os.path.join(SOURCE_DIR, "build")

# In a sanitizer build the extension only loads with ASan preloaded, and
# these tests install the plain build/ one: they belong to scripts/test.sh.
pytestmark = pytest.mark.skipif(bool(os.environ.get("TRESTLE_UNDER_ASAN")),
                                reason="installs build/, not the sanitizer build")


def run(cmd, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    assert r.returncode == 0, f"{' '.join(cmd)}:\n{r.stdout}\n{r.stderr}"
    return r.stdout


def project_version():
    """The version build/ was configured with: project() in CMakeLists.txt."""
    with open(os.path.join(BUILD_DIR, "CMakeCache.txt")) as f:
        for line in f:
            if line.startswith("CMAKE_PROJECT_VERSION:"):
                return line.split("=", 1)[1].strip()
    raise AssertionError("no CMAKE_PROJECT_VERSION in build/CMakeCache.txt")


def check_import(python, env=None, metadata=False):
    """Imports the installed package with `python`; checks that it is not the
    source tree's and that it says the project's version (with `metadata`,
    also the installed distribution's, as pip records it)."""
    code = "import trestle; print(trestle.__file__, trestle.__version__)"
    if metadata:
        code += "; import importlib.metadata as m; print(m.version('trestle'))"
    out = run([python, "-c", code], cwd="/", env=env)
    assert "site-packages" in out or "dist-packages" in out, out
    lines = out.split("\n")
    assert lines[0].endswith(" " + project_version()), out
    if metadata:
        assert lines[1] == project_version(), out
    return out


@pytest.mark.skipif(not os.path.exists(os.path.join(BUILD_DIR, "CMakeCache.txt")),
                    reason="needs the build tree of scripts/build.sh")
def test_pip_install_into_a_venv(tmp_path):
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)])
    pip_env = dict(os.environ, TRESTLE_BUILD_DIR=BUILD_DIR)
    pip_env.pop("PYTHONPATH", None)
    run([str(venv / "bin" / "pip"), "install", "--no-build-isolation", "--no-deps",
         "--no-index", os.path.join(SOURCE_DIR, "python")], env=pip_env)
    out = check_import(str(venv / "bin" / "python"), env=pip_env, metadata=True)
    assert str(venv) in out


@pytest.mark.skipif(not os.path.exists(os.path.join(BUILD_DIR, "CMakeCache.txt")),
                    reason="needs the build tree of scripts/build.sh")
def test_cmake_install_puts_the_package_in_site_packages(tmp_path):
    prefix = tmp_path / "prefix"
    run(["cmake", "--install", BUILD_DIR, "--prefix", str(prefix)])
    site = [os.path.join(d, "trestle") for d, dirs, _ in os.walk(prefix) if "trestle" in dirs
            and ("site-packages" in d or "dist-packages" in d)]
    assert site, "no trestle package under the prefix"
    env = dict(os.environ, PYTHONPATH=os.path.dirname(site[0]))
    check_import(sys.executable, env=env)


def site_dirs(python, prefix):
    """The directories a fresh `python` (no environment, no user site)
    imports packages from that lie under `prefix`."""
    code = ("import site, sys; print('\\n'.join(site.getsitepackages() + sys.path))")
    out = run([python, "-E", "-s", "-c", code], cwd="/")
    under = prefix.rstrip("/") + "/"
    return list(dict.fromkeys(d for d in out.split("\n") if d.startswith(under)
                              and os.path.basename(d) in ("site-packages", "dist-packages")))


@pytest.mark.skipif(not os.path.exists(os.path.join(BUILD_DIR, "CMakeCache.txt")),
                    reason="needs the build tree of scripts/build.sh")
@pytest.mark.parametrize("prefix", ["/usr/local", "/usr"])
def test_cmake_install_to_a_system_prefix_is_importable(tmp_path, prefix):
    """DESTDIR=T cmake --install build --prefix P puts the package in a
    directory the interpreter imports for P (one of its own site
    directories under P), and it imports from there in a fresh interpreter."""
    wanted = site_dirs(sys.executable, prefix)
    if not wanted:
        pytest.skip(f"{sys.executable} imports no site directory under {prefix}")
    destdir = str(tmp_path / "destdir")
    env = dict(os.environ, DESTDIR=destdir)
    out = run(["cmake", "--install", BUILD_DIR, "--prefix", prefix], env=env)
    found = [d for d in wanted if os.path.exists(os.path.join(destdir + d, "trestle",
                                                              "__init__.py"))]
    assert found, (f"the package is not in any of {wanted} (under DESTDIR); installed: "
                   + "".join(line for line in out.splitlines(True) if "__init__.py" in line))
    env = dict(os.environ, PYTHONPATH=destdir + found[0])
    out = check_import(sys.executable, env=env)
    assert out.startswith(os.path.join(destdir + found[0], "trestle", "__init__.py")), out
