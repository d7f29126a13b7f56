#!/usr/bin/env bash
# The main job on a built-in sample: write a synthetic multi-shard
# checkpoint with trestle's own writer, then restore it with CRC32C
# verification on, onto GPU 0 when one is present, else into host memory,
# and print the throughput. SIZE and SHARDS may be overridden.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh
SIZE=${SIZE:-1G}
SHARDS=${SHARDS:-4}
dir=$(mktemp -d "${TMPDIR:-/tmp}/trestle-sample-XXXXXX")
trap 'rm -rf "$dir"' EXIT
build/trestle synth "$dir/sample" --size "$SIZE" --shards "$SHARDS" --dtype bf16
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    # A build without CUDA (no nvcc) answers "needs a CUDA build"; the
    # sample then says so and restores to host memory instead.
    build/trestle restore "$dir/sample" --all --device 0 && exit 0
    echo "trestle: GPU restore failed (above); restoring to host memory instead" >&2
fi
build/trestle restore "$dir/sample" --all --host
