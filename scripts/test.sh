#!/usr/bin/env bash
# Build trestle and run the whole test suite: the Criterion suites and the
# Python (pytest) suite, all under ctest. Tests that need ../shared
# fixtures, io_uring or a GPU skip with a reason when those are absent.
# The pytest suite runs last and verbosely, so its summary line (and the
# interpreter it used) is always in the output, not only on failure.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh
cd build
ctest --output-on-failure -j"$(nproc 2>/dev/null || echo 2)" -E '^python$'
if ctest -N -R '^python$' | grep -q 'Total Tests: 1'; then
    # sed strips ctest's "1: " line prefix; pipefail keeps ctest's status.
    ctest --output-on-failure -V -R '^python$' | sed 's/^[0-9]*: //' 
else
    echo "trestle: the Python suite was not built (see the cmake notice above)" >&2
    exit 1
fi
