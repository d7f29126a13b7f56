#!/usr/bin/env bash
# Everything a GPU session needs, in one device-tool call: build for the
# H100 with the carried Debian packages, run the whole suite (the GPU
# suites no longer skip there), then the throughput comparison. Output goes
# to $OUT (the device tool brings it back), the last lines to stdout.
#
# Prepare on the development machine (it has the network):
#   ../shared/device/fetch-debs.sh                    # -> .debs/ (git-ignored)
#   mkdir -p .device && cp ../shared/device/unpack-debs.sh .device/
# Then, through the device tool:
#   run(command="tools/gpu_session.sh 16G 8", carry=[".debs", ".device"])
# STEPS=tests (or STEPS=bench) runs only that half.
set -uo pipefail
cd "$(dirname "$0")/.."
SIZE=${1:-16G}
SHARDS=${2:-8}
STEPS=${STEPS:-tests bench}
OUT=${OUT:-/tmp/trestle-gpu-out}
mkdir -p "$OUT"

# The GPU machine has no network: tools/build.sh would try apt-get, so
# configure directly against the unpacked packages.
# shellcheck disable=SC1091
source .device/unpack-debs.sh
nvidia-smi >"$OUT/nvidia-smi.txt" 2>&1
if ! { cmake -S . -B build-gpu -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 \
           -DTRESTLE_BUILD_BENCH=OFF && cmake --build build-gpu -j"$(nproc)"; } >"$OUT/build.txt" 2>&1; then
    tail -40 "$OUT/build.txt"
    exit 1
fi

status=0
if [[ " $STEPS " == *" tests "* ]]; then
    # test_install needs cmake --install and pkg-config against system paths.
    (cd build-gpu && ctest -j8 --output-on-failure -E '^test_install$') >"$OUT/tests.txt" 2>&1 || status=1
    for t in test_kernels test_gpu_restore; do
        build-gpu/tests/$t --verbose >"$OUT/$t.txt" 2>&1 || status=1
        grep -E "SKIP|FAIL|Synthesis" "$OUT/$t.txt" | tail -8
    done
    tail -5 "$OUT/tests.txt"
fi
if [[ " $STEPS " == *" bench "* ]]; then
    TRESTLE=build-gpu/trestle bench/compare_gpu.sh "$SIZE" "$SHARDS" >"$OUT/compare.txt" 2>&1 || status=1
    tail -30 "$OUT/compare.txt"
fi
exit $status
