#!/usr/bin/env python3
"""Run the trestle pytest suite for ctest and CI.

Prints which interpreter and which numpy/torch it runs with (the python3 on
PATH may not be the one that has them), runs pytest on the given
directory, and exits 0 when pytest collected nothing (its exit code 5), so
a selection that happens to be empty never fails CI. Any other code is
pytest's own.
"""
import os
import sys


def version(name):
    try:
        return __import__(name).__version__
    except ImportError:
        return "not installed"


def main():
    print(f"python: {sys.executable} {sys.version.split()[0]}; numpy {version('numpy')}; "
          f"torch {version('torch')}; pytest {version('pytest')}; "
          f"PYTHONPATH={os.environ.get('PYTHONPATH', '')}", flush=True)
    import pytest
    args = sys.argv[1:] or [os.path.dirname(os.path.abspath(__file__))]
    code = pytest.main(["-q", "-rs", "-p", "no:cacheprovider", *args])
    if code == pytest.ExitCode.NO_TESTS_COLLECTED:
        print("run_pytest: no tests collected; not a failure", flush=True)
        return 0
    return int(code)


if __name__ == "__main__":
    sys.exit(main())
