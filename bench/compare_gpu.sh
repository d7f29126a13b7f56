#!/usr/bin/env bash
# GPU machine: restore the same tensors with trestle and with the usual
# PyTorch loaders, cold and warm, in one run, and print one table.
#   - `trestle synth` writes a bf16 LLM-shaped checkpoint (SIZE, SHARDS);
#   - `trestle bench PATH --device N` (warm, then --cold) times trestle;
#   - bench/compare_safetensors.py saves random tensors of the same names,
#     shapes and dtypes as model.safetensors / model.pt and times
#     safetensors.load_file(device="cuda") and torch.load(map_location="cuda").
# Needs a CUDA build (scripts/build.sh finds nvcc) and python3 with torch and
# safetensors. Usage:
#   bench/compare_gpu.sh [SIZE] [SHARDS]        (default 4G 8)
#   DEVICE=1 REPEAT=5 DIR=/nvme/tmp bench/compare_gpu.sh 8G 16
#   CKPT=path/main TEXT=0 bench/compare_gpu.sh  (scripts/gpu_session.sh 2)
# CKPT: compare an existing checkpoint instead of writing one (SIZE and
# SHARDS then only label it); TEXT=0: the two JSON benches only, without
# the readable warm one before them (a minute less on 4 GiB).
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE=${1:-4G}
SHARDS=${2:-8}
DEVICE=${DEVICE:-0}
REPEAT=${REPEAT:-3}
TRESTLE=${TRESTLE:-build/trestle}

if [ ! -x "$TRESTLE" ]; then
    scripts/build.sh
fi
python3 -c 'import torch, safetensors' 2>/dev/null ||
    { echo "compare_gpu.sh: needs python3 with torch and safetensors" >&2; exit 1; }

dir=$(mktemp -d "${DIR:-${TMPDIR:-/tmp}}/trestle-gpucmp-XXXXXX")
trap 'rm -rf "$dir"' EXIT

ckpt=${CKPT:-$dir/ckpt}
if [ -z "${CKPT:-}" ]; then
    "$TRESTLE" synth "$ckpt" --size "$SIZE" --shards "$SHARDS" --dtype bf16 >&2
fi
"$TRESTLE" inspect "$ckpt" --json > "$dir/inspect.json"

# trestle first, so that its cold runs do not find the Python files' pages.
if [ "${TEXT:-1}" != 0 ]; then
    echo "== $TRESTLE bench $ckpt --device $DEVICE --repeat $REPEAT" >&2
    "$TRESTLE" bench "$ckpt" --device "$DEVICE" --repeat "$REPEAT" | tee "$dir/warm.txt" >&2
fi
"$TRESTLE" bench "$ckpt" --device "$DEVICE" --repeat "$REPEAT" --json > "$dir/warm.json"
echo "== $TRESTLE bench $ckpt --device $DEVICE --repeat $REPEAT --cold" >&2
"$TRESTLE" bench "$ckpt" --device "$DEVICE" --repeat "$REPEAT" --cold --json > "$dir/cold.json"

echo "== python3 bench/compare_safetensors.py" >&2
CUDA_VISIBLE_DEVICES=$DEVICE python3 bench/compare_safetensors.py \
    --inspect "$dir/inspect.json" --dir "$dir" --repeat "$REPEAT" \
    --trestle-json "$dir/warm.json" --trestle-json "$dir/cold.json"
echo
echo "machine: $(nproc) CPUs ($(awk -F': *' '/^model name/ {print $2; exit}' /proc/cpuinfo)), $(uname -sr)"
echo "checkpoint: ${CKPT:-trestle synth --size $SIZE --shards $SHARDS --dtype bf16 in $dir}"
