#!/usr/bin/env bash
# Configure and build trestle into ./build (Release with debug info).
# CUDA is used when nvcc is found; TRESTLE_CMAKE_ARGS adds options.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
jobs=$(nproc 2>/dev/null || echo 2)
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo ${TRESTLE_CMAKE_ARGS:-} >/dev/null
cmake --build build -j"$jobs"
