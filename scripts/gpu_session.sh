#!/usr/bin/env bash
# gpu_session.sh - the GPU machine runbook (issue 23), fitted to the window
# a lent GPU gives: 15 minutes of device time in all, machine start-up,
# every command and every idle second included; the machine goes back 30 s
# after a call ends. So: one prepared call of at most 7 minutes (420 s)
# that ends with figures, then an optional second call of at most 4.
#
# ---- Before the first call, here on the development machine ----
#   ../shared/device/fetch-debs.sh            # -> .debs/ (liburing, protobuf-c, ISA-L,
#                                             #    snappy, Criterion and libgit2's
#                                             #    libraries: http-parser, mbedtls, ssh2)
#       (in a git worktree, where .git is a file the script cannot write its
#       exclude to: run it in a scratch folder holding .git/info/ and move
#       its .debs/ here)
#   mkdir -p .device && cp ../shared/device/unpack-debs.sh .device/
#   DRY=1 OUT=/tmp/gpu-dry scripts/gpu_session.sh 1   # optional: every step a GPU
#                                             #    is not needed for, timed (below)
# The GPU machine (Ubuntu 24.04 with CUDA 13.0, PyTorch, safetensors, no
# network) lacks those libraries. .debs/ and .device/ are git-ignored: they
# travel only because `carry` names them; the tree and they stay far under
# the 64 MiB a call may carry. Nothing else travels: the build, the models
# and the results are made there; $OUT comes back (at most 8 files).
#
# ---- Call 1: build, correctness, the figures (at most 7 minutes) ----
#   run(command="scripts/gpu_session.sh 1", carry=[".debs", ".device"],
#       kind="nvidia-h100-x1", timeout_s=420)
#   1 environment (5 s): nvidia-smi, driver, nvcc, io_uring, THP, the GPU's
#     NUMA node, ulimit -l; LD_LIBRARY_PATH gets the toolkit's libcudart.so,
#     which bench's host-to-device ceiling loads at run time.
#   2 a CUDA build for sm_90 with bench, Python and MPI off: the CLI and
#     example_restore first, then test_kernels, test_gpu_restore and
#     test_gpu_caller (if those fail to link, the call goes on without them
#     and says so); fails unless CUDA is really on.
#   3 correctness: test_kernels, test_gpu_restore and test_gpu_caller,
#     verbose (a skip for want of a device is a failure); example_restore's
#     checksums from host memory and from the device; one compute-sanitizer memcheck run of a
#     restore with whole tensors, slices and conversions.
#   4 figures, each with its host baseline in the same call: a 4 GiB,
#     8-shard model (bench --device 0, bench --host), a 20,000-tensor model,
#     float32 restored as is and --as bfloat16, cudaHostRegister of 256 MiB.
#     The 4 GiB model stays on the machine's disk for call 2.
#
# ---- Call 2: cold, columns, the loaders (at most 4 minutes) ----
#   run(command="scripts/gpu_session.sh 2", carry=[".debs", ".device"], timeout_s=240)
# sent within 30 s of call 1's end, so that the machine is still warm and
# build-gpu/ (the build and call 1's 4 GiB model) is still there: nothing
# is rebuilt. A cold machine rebuilds the CLI first (about a minute), and
# the figures that no longer fit are reported as skipped. It runs column
# slices of the 4 GiB model, then bench/compare_gpu.sh 4G on the same
# model: trestle warm and cold (the cold bench) beside
# safetensors.load_file and torch.load of the same tensors.
#
# Each call writes its log and results into $OUT (RESULTS-gpu-N.md: a
# bench/RESULTS.md section), gives each step its own time limit, watches
# its whole budget (a figure that no longer fits is skipped and said so)
# and exits 1 when anything failed. Data goes under build-gpu/work (the
# machine's disk, not /tmp, which may be memory); call 1 needs about
# 14 GiB there at its peak.
#
# Without a GPU, `OUT=/tmp/x scripts/gpu_session.sh 1` writes env.txt and
# stops at "no GPU" within seconds, as it must. DRY=1 instead runs every
# step a GPU is not needed for (the debs, the CUDA build, the models, the
# ops files, the host baselines, nvcc of host_register_time), marks the
# others "skipped: no GPU", and prints each step's seconds: the timing of
# a dry run on the 2-core development VM is in bench/RESULTS.md.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

CALL=${1:-}
OUT=${OUT:-/tmp/trestle-gpu-out}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)   # absolute: some steps run in build-gpu/
WORK=${WORK:-$PWD/build-gpu/work}
TRESTLE=${TRESTLE:-build-gpu/trestle}
DRY=${DRY:-0}
# Sizes of the figures; smaller ones make a quick dry run.
MAIN_SIZE=${MAIN_SIZE:-4G} MANY_SIZE=${MANY_SIZE:-1G} F32_SIZE=${F32_SIZE:-2G}
BUDGET=${BUDGET:-}        # seconds this call may take (default: 400 for call 1, 225 for 2)

# ---- helpers ----

say() { printf '%s\n' "$*" | tee -a "$OUT/session.txt"; }
fail() { say "FAILED: $*"; exit 1; }
FAILED=0

# step LOG SECONDS CMD...: CMD under a time limit (cut to what is left of
# the call's budget), its output appended to $OUT/LOG and its seconds said;
# returns CMD's status (124: out of time).
step() {
    local name=$1 limit=$2 t0=$SECONDS rc=0 status=ok
    shift 2
    local left=$((BUDGET - SECONDS))
    [ "$left" -lt "$limit" ] && limit=$left
    if [ "$limit" -lt 5 ]; then
        say "  $(printf '%-60.60s' "$*") skipped: the call's ${BUDGET} s are spent"
        FAILED=1
        return 124
    fi
    printf '\n$ %s\n' "$*" >>"$OUT/$name"
    timeout --kill-after=5 "$limit" "$@" >>"$OUT/$name" 2>&1 || rc=$?
    [ "$rc" -eq 0 ] || status="exit $rc"
    [ "$rc" -ne 124 ] || status="over its ${limit} s"
    say "  $(printf '%-60.60s' "$*") $status ($((SECONDS - t0)) s)"
    return "$rc"
}

# must LOG SECONDS CMD...: a step the rest of the call depends on.
must() { step "$@" || fail "'${*:3}'; see $1"; }

# gpu_step: a step that needs the GPU; in a dry run, said and skipped.
gpu_step() {
    if [ "$DRY" = 1 ]; then
        say "  $(printf '%-60.60s' "${*:3}") skipped: no GPU (dry run)"
        return 0
    fi
    step "$@" || { FAILED=1; return 1; }
}

# Append a "### TITLE" heading and stdin to the call's results.
section() {
    printf '\n### %s\n\n' "$1" >>"$RESULTS"
    cat >>"$RESULTS"
}

# The output of the commands of log $1 whose "$ " line holds $2.
log_part() {
    awk -v pat="$2" 'index($0, "$ ") == 1 { keep = index($0, pat) > 0; next } keep' "$OUT/$1"
}

# The same with the commands, as a code block of the call's results (paths
# under build-gpu/work shortened to their names).
results_block() {
    { echo '```text'
      awk -v pat="$2" 'index($0, "$ ") == 1 { keep = index($0, pat) > 0 } keep' "$OUT/$1" |
          sed "s|$WORK/||g; s|build-gpu/trestle |trestle |" | cat -s
      echo '```'; } >>"$RESULTS"
}

# The carried Debian packages, unpacked into /opt/debs with the toolchain
# pointed at them; a machine that has the libraries already (the
# development machine) needs none.
unpack_debs() {
    if [ -f .device/unpack-debs.sh ] && compgen -G '.debs/*.deb' >/dev/null; then
        # shellcheck disable=SC1091
        source .device/unpack-debs.sh
    elif ! pkg-config --exists liburing libprotobuf-c 2>/dev/null; then
        fail "no .debs/ or .device/unpack-debs.sh in the tree and no liburing here: prepare" \
             "them (see the top of scripts/gpu_session.sh) and name them in carry"
    fi
}

# The toolkit on PATH, and its libcudart.so where bench's ceiling finds it
# (it is loaded at run time: the engine links cudart statically).
cuda_env() {
    command -v nvcc >/dev/null || export PATH=/usr/local/cuda/bin:$PATH
    local nvcc root
    nvcc=$(command -v nvcc || true)
    [ -n "$nvcc" ] || return 0   # the build says so
    root=$(dirname "$(dirname "$(readlink -f "$nvcc")")")
    export LD_LIBRARY_PATH=$root/lib64:$root/targets/x86_64-linux/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
}

# Fail unless the driver sees a device (the first thing any GPU step needs).
need_gpu() {
    [ "$DRY" = 1 ] && { say "  dry run: no GPU needed"; return 0; }
    nvidia-smi -L >>"$OUT/session.txt" 2>&1 || fail "no GPU: nvidia-smi sees none"
}

# A CUDA build for the H100 (sm_90) in build-gpu/: the CLI and the example
# first, then the two GPU suites, which may fail to link without the call
# failing; fails unless CUDA is really on (a build that lost nvcc would
# skip every GPU case and look green).
build() {
    if [ -x "$TRESTLE" ] && [ -x build-gpu/example_restore ]; then
        say "build: build-gpu/ is there from the last call: not rebuilt"
        return 0
    fi
    say "build ($(nproc) jobs)"
    must build.txt 60 cmake -S . -B build-gpu -DCMAKE_BUILD_TYPE=RelWithDebInfo \
        -DTRESTLE_CUDA=ON -DTRESTLE_CUDA_MOCK=OFF -DCMAKE_CUDA_ARCHITECTURES=90 \
        -DTRESTLE_BUILD_BENCH=OFF -DTRESTLE_BUILD_PYTHON=OFF -DTRESTLE_MPI=OFF
    grep -q '^TRESTLE_CUDA:BOOL=ON$' build-gpu/CMakeCache.txt ||
        fail "build-gpu is not a CUDA build (TRESTLE_CUDA off); see build.txt"
    must build.txt 200 cmake --build build-gpu -j"$(nproc)" --target trestle example_restore
    if ! grep -q '^#define TRESTLE_HAVE_CUDA 1$' build-gpu/include/trestle_version.h ||
       [ ! -f build-gpu/CMakeFiles/trestle_kernels.dir/kernels/scatter.cu.o ]; then
        fail "build-gpu has no CUDA kernels (TRESTLE_HAVE_CUDA off); see build.txt"
    fi
    SUITES=1
    step build.txt 150 cmake --build build-gpu -j"$(nproc)" --target test_kernels \
        test_gpu_restore test_gpu_caller ||
        { SUITES=0; say "  the GPU suites did not build: going on without"; }
}
SUITES=1

# Write an ops file (the format of `trestle restore --help`) for the
# checkpoint described by inspect JSON $1: `mixed` cycles through whole
# tensors, whole tensors converted, row slices, column slices and column
# slices converted (float32 -> bfloat16/float16, 16-bit -> float32);
# `columns` takes the middle half of the columns of every matrix.
gen_ops() {
    python3 - "$1" "$2" <<'PY'
import json, sys
info, mode = json.load(open(sys.argv[1])), sys.argv[2]
targets = {"float": ["bfloat16", "half"], "bfloat16": ["float"], "half": ["float"]}
for i, t in enumerate(info["tensors"]):
    name, dtype, shape = t["name"], t["dtype"], t["shape"]
    full = " ".join(str(d) for d in shape)
    conv = targets.get(dtype, [dtype])[i // 5 % len(targets.get(dtype, [dtype]))]
    if mode == "columns":
        if len(shape) == 2 and shape[1] >= 4:
            print(f"{name}\t{full} -:{shape[1] // 4},{shape[1] // 2}")
        continue
    kind = i % 5 if shape else 0
    rows = f"0,{max(1, shape[0] // 2)}" if shape else ""
    cols = f"{shape[-1] // 4},{max(1, shape[-1] // 2)}" if shape else ""
    if kind == 0:
        print(name)
    elif kind == 1:
        print(f"{name}\t\tdtype={dtype}\tas={conv}")
    elif kind == 2:
        print(f"{name}\t{full} {rows}" + ":-" * (len(shape) - 1))
    else:
        spec = f"{full} " + "-:" * (len(shape) - 1) + cols
        print(f"{name}\t{spec}" + (f"\tdtype={dtype}\tas={conv}" if kind == 4 else ""))
PY
}

results_header() {
    local gpu=${1:-}
    cat >"$RESULTS" <<EOF
## GPU machine, call $CALL (issue 23)

Machine: ${gpu:-no GPU (dry run)}; $(nproc) CPUs ($(grep -m1 -o 'model name.*' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')),
$(uname -sr); data under build-gpu/work on $(df --output=fstype "$WORK" | tail -1).
Build: \`scripts/gpu_session.sh $CALL\` (RelWithDebInfo, CUDA arch 90), $(git rev-parse --short HEAD 2>/dev/null || echo "a tree without .git").
Date: $(date -u +%F).
EOF
}

# ---- call 1 ----

environment() {
    {
        echo "== date, host";   date -u; uname -a; grep PRETTY_NAME /etc/os-release || true
        echo "== CPUs, memory, disk"; nproc; grep -m1 'model name' /proc/cpuinfo || true
        free -g; df -hT "$PWD" || true
        echo "== GPU and driver"; nvidia-smi || true
        nvidia-smi --query-gpu=name,driver_version,pci.bus_id,memory.total,clocks.max.sm \
            --format=csv || true
        echo "== toolkit"; nvcc --version || true
        echo "== io_uring (0: allowed)"; cat /proc/sys/kernel/io_uring_disabled 2>/dev/null ||
            echo "no io_uring_disabled knob"
        echo "== transparent huge pages"
        cat /sys/kernel/mm/transparent_hugepage/enabled /sys/kernel/mm/transparent_hugepage/defrag || true
        echo "== NUMA: nodes, and the GPU's"
        ls -d /sys/devices/system/node/node* || true
        local bus
        bus=$(nvidia-smi --query-gpu=pci.bus_id --format=csv,noheader 2>/dev/null | head -1 |
              tr 'A-F' 'a-f' || true)
        bus=${bus#0000}   # 00000000:18:00.0 -> 0000:18:00.0, the sysfs name
        echo "GPU ${bus:-?} numa_node: $(cat "/sys/bus/pci/devices/$bus/numa_node" 2>/dev/null || echo unknown)"
        echo "== locked memory (cudaHostRegister pins against it)"; ulimit -l
        echo "== libcudart for bench's ceiling"; echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
    } >"$OUT/env.txt" 2>&1
    say "  environment -> env.txt ($SECONDS s)"
}

# Correctness: the GPU suites, the example's checksums, one memcheck run.
correctness() {
    local t dir=$WORK/check skips
    if [ "$SUITES" = 1 ]; then
        for t in test_kernels test_gpu_restore test_gpu_caller; do
            gpu_step suites.txt 120 "build-gpu/tests/$t" --verbose --jobs 8 || continue
            [ "$DRY" = 1 ] && continue
            skips=$(grep '^\[SKIP\]' "$OUT/suites.txt" | grep -v 'needs two CUDA devices' || true)
            [ -z "$skips" ] || { FAILED=1; say "  a GPU suite skipped cases on a GPU machine:" \
                                             "$(head -1 <<<"$skips")"; }
        done
    fi
    mkdir -p "$dir"
    must checks.txt 60 "$TRESTLE" synth "$dir/bf16" --size 16M --shards 2 --dtype bf16
    "$TRESTLE" inspect "$dir/bf16" --json >"$dir/bf16.json"
    gen_ops "$dir/bf16.json" mixed >"$dir/bf16.ops"
    step checks.txt 30 build-gpu/example_restore "$dir/bf16" || FAILED=1
    gpu_step checks.txt 30 build-gpu/example_restore --device 0 "$dir/bf16"
    if [ "$DRY" != 1 ]; then
        # The checksum lines ("landed" lines come in any order).
        local host dev
        host=$(log_part checks.txt "example_restore $dir" | grep fnv1a64 || true)
        dev=$(log_part checks.txt "example_restore --device" | grep fnv1a64 || true)
        if [ -n "$host" ] && [ "$host" = "$dev" ]; then
            say "  example_restore: the same $(wc -l <<<"$host") checksums from host memory and" \
                "from device 0"
        else
            FAILED=1
            say "  example_restore: the device's checksums differ from the host's; see checks.txt"
        fi
    fi
    # One memcheck run: bfloat16 stored, so the ops take the cast kernel
    # (widening) and the scatter kernel (column slices) as well as DMAs.
    # racecheck and synccheck test shared memory and barriers, which the
    # kernels do not use.
    local sanitizer
    sanitizer=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
    say "  memcheck ops: $(wc -l <"$dir/bf16.ops") (whole, converted, row and column slices)"
    if gpu_step sanitizer.txt 120 "$sanitizer" --tool memcheck --leak-check full \
            --error-exitcode 86 "$TRESTLE" restore --ops "$dir/bf16.ops" --device 0 "$dir/bf16" &&
        [ "$DRY" != 1 ]; then
        say "  memcheck: $(grep -m1 'ERROR SUMMARY' "$OUT/sanitizer.txt" || echo 'no summary')"
    fi
    rm -rf "$dir"
}

figures() {
    local main=$WORK/main many=$WORK/many f32=$WORK/f32
    section "Host-to-device copy stage against its ceiling ($MAIN_SIZE, 8 shards)" <<EOF
Commands: \`trestle synth main --size $MAIN_SIZE --shards 8\`, then \`trestle bench main
--device 0\` and \`trestle bench main --host\` (3 repeats each, page cache warm). The
device bench's copy stage is \`device_copy_seconds\`: the DMAs timed by CUDA events,
held against the pinned host-to-device ceiling measured in the same run.

EOF
    mkdir -p "$WORK"
    if step figures.txt 120 "$TRESTLE" synth "$main" --size "$MAIN_SIZE" --shards 8; then
        gpu_step figures.txt 90 "$TRESTLE" bench "$main" --device 0
        step figures.txt 90 "$TRESTLE" bench "$main" --host || FAILED=1
        results_block figures.txt " bench $main"
    else
        FAILED=1
    fi

    section "float32 restored as is and as bfloat16 ($F32_SIZE)" <<EOF
Commands: \`trestle synth f32 --size $F32_SIZE --shards 4 --dtype float\`, then \`trestle
restore f32 --all --device 0\` and \`... --as bfloat16\` (narrowing on the CPU, the
conversion ring), each twice, and the same onto \`--host\`.

EOF
    if step figures.txt 40 "$TRESTLE" synth "$f32" --size "$F32_SIZE" --shards 4 --dtype float; then
        local as
        for as in "" "--as bfloat16"; do
            # shellcheck disable=SC2086
            gpu_step figures.txt 30 "$TRESTLE" restore "$f32" --all --device 0 $as
            # shellcheck disable=SC2086
            gpu_step figures.txt 30 "$TRESTLE" restore "$f32" --all --device 0 $as
            # shellcheck disable=SC2086
            step figures.txt 40 "$TRESTLE" restore "$f32" --all --host $as || FAILED=1
        done
        results_block figures.txt " restore $f32"
    else
        FAILED=1
    fi
    rm -rf "$f32"

    section "20,000 tensors ($MANY_SIZE)" <<EOF
Commands: \`trestle synth many --size $MANY_SIZE --shards 8 --layers 2222\`, then
\`trestle bench many --device 0\` and \`--host\`.

EOF
    if step figures.txt 40 "$TRESTLE" synth "$many" --size "$MANY_SIZE" --shards 8 --layers 2222; then
        gpu_step figures.txt 60 "$TRESTLE" bench "$many" --device 0
        step figures.txt 60 "$TRESTLE" bench "$many" --host || FAILED=1
        results_block figures.txt " bench $many"
    else
        FAILED=1
    fi
    rm -rf "$many"

    section "Pinning 256 MiB of staging" <<'EOF'
Command: `build-gpu/host_register_time 256 5` (bench/host_register_time.c).

EOF
    if step figures.txt 60 nvcc -O2 -o build-gpu/host_register_time bench/host_register_time.c; then
        gpu_step figures.txt 30 build-gpu/host_register_time 256 5
        results_block figures.txt "host_register_time 256"
    else
        FAILED=1
    fi
}

call_1() {
    BUDGET=${BUDGET:-400}   # of the call's 420 s: 20 s for the end and its transfer
    RESULTS=$OUT/RESULTS-gpu-1.md
    say "call 1: environment, CUDA build, correctness, figures ($(date -u +%T))"
    cuda_env
    environment
    need_gpu
    unpack_debs
    build
    mkdir -p "$WORK"
    results_header "$(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | head -1)"
    correctness
    figures
    say "call 1 done in $SECONDS s$([ "$FAILED" = 0 ] || echo ', with failures (above)')"
    [ "$FAILED" = 0 ] || exit 1
}

# ---- call 2 ----

call_2() {
    BUDGET=${BUDGET:-225}   # of the call's 240 s
    RESULTS=$OUT/RESULTS-gpu-2.md
    local main=$WORK/main cols=$WORK/columns
    say "call 2: column slices, cold bench, safetensors and torch.load ($(date -u +%T))"
    cuda_env
    need_gpu
    [ "$DRY" = 1 ] || python3 -c 'import torch, safetensors' 2>/dev/null ||
        fail "python3 lacks torch or safetensors"
    unpack_debs
    build
    mkdir -p "$WORK"
    results_header "$(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | head -1)"
    if [ ! -f "$main.index" ]; then
        say "  call 1's model is gone (a fresh machine): made again"
        must columns.txt 120 "$TRESTLE" synth "$main" --size "$MAIN_SIZE" --shards 8
    fi
    section "Column slices ($MAIN_SIZE)" <<EOF
The middle half of the columns of every matrix of call 1's model (ops by
\`gen_ops columns\`): \`trestle restore --ops cols.ops --device 0 main\` twice (the
scatter kernel out of the device window), then \`--host\`.

EOF
    mkdir -p "$cols"
    "$TRESTLE" inspect "$main" --json >"$cols/main.json"
    gen_ops "$cols/main.json" columns >"$cols/cols.ops"
    gpu_step columns.txt 30 "$TRESTLE" restore --ops "$cols/cols.ops" --device 0 "$main"
    gpu_step columns.txt 30 "$TRESTLE" restore --ops "$cols/cols.ops" --device 0 "$main"
    step columns.txt 40 "$TRESTLE" restore --ops "$cols/cols.ops" --host "$main" || FAILED=1
    results_block columns.txt "restore --ops"
    rm -rf "$cols"
    section "$MAIN_SIZE beside safetensors and torch.load, warm and cold" <<EOF
Command: \`CKPT=main REPEAT=2 TEXT=0 bench/compare_gpu.sh $MAIN_SIZE 8\`: trestle
bench warm and cold (the page cache dropped before each repeat) beside
safetensors.load_file(device="cuda") and torch.load(map_location="cuda") of
the same tensors.

EOF
    gpu_step compare.txt 170 env CKPT="$main" REPEAT=2 TEXT=0 DIR="$WORK" TRESTLE="$TRESTLE" \
        bench/compare_gpu.sh "$MAIN_SIZE" 8 && [ "$DRY" != 1 ] && results_block compare.txt compare_gpu
    rm -rf "$WORK"/trestle-gpucmp-*   # its own trap may not run when the limit kills it
    say "call 2 done in $SECONDS s$([ "$FAILED" = 0 ] || echo ', with failures (above)')"
    [ "$FAILED" = 0 ] || exit 1
}

# Sourced: define the steps, run none.
[[ "${BASH_SOURCE[0]}" == "$0" ]] || return 0

case "$CALL" in
1) call_1 ;;
2) call_2 ;;
*) echo "usage: scripts/gpu_session.sh 1|2   (see the top of this file)" >&2; exit 2 ;;
esac
