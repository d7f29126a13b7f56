"""Build the trestle package's C extension with the project's own CMake.

`pip install --no-build-isolation ./python` (or `python3 setup.py
bdist_wheel`) runs here. The extension is the CMake target trestle_python,
built for the interpreter running this script (TRESTLE_PYTHON), so its
sources, flags and link line are exactly those of scripts/build.sh:

- when the checkout's build/ (or TRESTLE_BUILD_DIR) was configured for this
  same interpreter, a venv of it included (scripts/build.sh), that build is
  reused and only brought up to date;
- otherwise a fresh CMake build of the library and the extension goes into
  setuptools' build_temp (TRESTLE_CMAKE_ARGS adds options, e.g.
  -DTRESTLE_CUDA=OFF).

The package's version is the CMake project's, read from the project() line
of ../CMakeLists.txt, the one place it is set: the extension reports the
same one as trestle.__version__ (trestle_version_string()), so the wheel's
metadata and the library it carries cannot disagree.
"""
import glob
import os
import re
import shutil
import subprocess
import sys
import sysconfig

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def cache_value(build_dir, name):
    try:
        with open(os.path.join(build_dir, "CMakeCache.txt")) as f:
            for line in f:
                if line.startswith(name + ":"):
                    return line.split("=", 1)[1].strip()
    except OSError:
        pass
    return None


def project_version():
    """MAJOR.MINOR.PATCH of `project(trestle VERSION ...)` in ../CMakeLists.txt."""
    path = os.path.join(ROOT, "CMakeLists.txt")
    try:
        with open(path) as f:
            m = re.search(r"^project\(\s*trestle\s+VERSION\s+(\d+\.\d+\.\d+)\b", f.read(),
                          re.MULTILINE)
    except OSError:
        m = None
    if not m:
        sys.exit(f"trestle: no `project(trestle VERSION X.Y.Z` line in {path}: setup.py must "
                 "run from python/ inside a trestle checkout")
    return m.group(1)


class CMakeBuild(build_ext):
    def build_extension(self, ext):
        if not os.path.exists(os.path.join(ROOT, "CMakeLists.txt")):
            sys.exit("trestle: setup.py must run from python/ inside a trestle checkout")
        build_dir = os.environ.get("TRESTLE_BUILD_DIR") or os.path.join(ROOT, "build")
        built_for = cache_value(build_dir, "TRESTLE_PYTHON")
        # A venv's python is the same interpreter (same ABI) as its base.
        if not built_for or os.path.realpath(built_for) != os.path.realpath(sys.executable):
            build_dir = os.path.abspath(os.path.join(self.build_temp, "cmake"))
            args = ["cmake", "-S", ROOT, "-B", build_dir, "-DCMAKE_BUILD_TYPE=Release",
                    f"-DTRESTLE_PYTHON={sys.executable}", "-DTRESTLE_BUILD_TESTS=OFF",
                    "-DTRESTLE_BUILD_BENCH=OFF"]
            args += os.environ.get("TRESTLE_CMAKE_ARGS", "").split()
            subprocess.check_call(args)
        jobs = str(os.cpu_count() or 2)
        subprocess.check_call(["cmake", "--build", build_dir, "--target", "trestle_python",
                               "-j", jobs])
        suffix = sysconfig.get_config_var("EXT_SUFFIX")
        built = glob.glob(os.path.join(build_dir, "python", "trestle", "_trestle" + suffix))
        if not built:
            sys.exit(f"trestle: CMake built no _trestle{suffix} in {build_dir}")
        target = self.get_ext_fullpath(ext.name)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.copyfile(built[0], target)


setup(version=project_version(),
      ext_modules=[Extension("trestle._trestle", sources=[])],
      cmdclass={"build_ext": CMakeBuild})
