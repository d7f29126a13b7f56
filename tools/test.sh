#!/usr/bin/env bash
# Build trestle and run the whole test suite (Criterion suites under ctest).
# Tests that need ../shared fixtures, io_uring or a GPU skip with a reason
# when those are absent.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/build.sh
cd build
ctest --output-on-failure -j"$(nproc 2>/dev/null || echo 2)"
