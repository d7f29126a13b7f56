#!/usr/bin/env bash
# gpu_session.sh - the runbook for a GPU machine (issue 12), in three device
# calls of under 10 minutes each. Each call writes its logs into $OUT (the
# device tool brings that folder back, at most 8 files: each call writes 7
# or fewer) and stops at its first failure, so a broken build or a missing
# device costs seconds, not the window.
#
#   1  environment (driver, toolkit, io_uring, THP, NUMA, memlock), a CUDA
#      build that fails unless CUDA is really on, then test_kernels and
#      test_gpu_restore verbose: any skip for want of a device fails.
#   2  compute-sanitizer memcheck, racecheck and synccheck on CLI restores
#      with whole tensors, row and column slices and all four conversions;
#      then the whole ctest.
#   3  figures, as a bench/RESULTS.md section (RESULTS-gpu.md): cudaHostRegister
#      of 256 MiB timed; a 20,000-tensor model; a column-slice ops file; an
#      8 GiB model warm and cold beside safetensors and torch.load on the same
#      shapes (bench/compare_gpu.sh). Each figure runs under its own time
#      limit; one that fails is marked FAILED and the call goes on to the
#      next (they are independent), then exits 1.
#
# ---- Before the first call, here on the development machine ----
#   ../shared/device/fetch-debs.sh        # -> .debs/ (liburing, protobuf-c,
#                                         #    ISA-L, snappy, Criterion, ...)
#   mkdir -p .device && cp ../shared/device/unpack-debs.sh .device/
# The GPU machine (bare Ubuntu 24.04 + CUDA, no network) lacks those
# libraries; .debs/ and .device/ are git-ignored, so they travel only
# because `carry` names them (with the tree, under 64 MiB in all).
#
# ---- The calls, in order, each once the previous one came back green ----
#   run(command="scripts/gpu_session.sh 1", carry=[".debs", ".device"], timeout_s=480)
#   run(command="scripts/gpu_session.sh 2", carry=[".debs", ".device"], timeout_s=540)
#   run(command="scripts/gpu_session.sh 3", carry=[".debs", ".device"], timeout_s=600)
# Expected: call 1 about 3 minutes (most of it the build), call 2 about 4,
# call 3 about 8. Every call builds what build-gpu/ lacks: a call made
# while the machine is still warm (the tool keeps it 30 s) reuses the
# build, a fresh machine rebuilds (1-2 minutes). With a 15-minute device
# budget, make the calls back to back. Data goes under build-gpu/work (the
# machine's disk, not /tmp, which may be memory), each model deleted when
# its step is done; call 3 needs 28 GiB free there at its peak.
#
# Without a GPU, `OUT=/tmp/x scripts/gpu_session.sh 1` writes env.txt and
# stops at "nvidia-smi sees no GPU", as it must; sourcing the file instead
# (`source scripts/gpu_session.sh`) defines the steps without running any, so
# that the parts a GPU does not need (build, gen_ops) can be tried alone.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

CALL=${1:-}
OUT=${OUT:-/tmp/trestle-gpu-out}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)   # absolute: some steps run in build-gpu/
WORK=${WORK:-$PWD/build-gpu/work}
TRESTLE=${TRESTLE:-build-gpu/trestle}   # overridable for a dry run without a GPU
# Model sizes of call 3; smaller ones make a quick dry run.
MANY_SIZE=${MANY_SIZE:-2G} COLUMN_SIZE=${COLUMN_SIZE:-4G} COMPARE_SIZE=${COMPARE_SIZE:-8G}

# ---- helpers ----

say() { printf '%s\n' "$*" | tee -a "$OUT/session.txt"; }
fail() { say "FAILED: $*"; exit 1; }

# run_logged LOG SECONDS CMD...: CMD under a time limit, its output
# appended to $OUT/LOG; fails the call when CMD fails or runs out of time.
run_logged() {
    local name=$1 limit=$2 t0=$SECONDS rc=0 status=ok
    local log=$OUT/$name
    shift 2
    printf '\n$ %s\n' "$*" >>"$log"
    timeout --kill-after=10 "$limit" "$@" >>"$log" 2>&1 || rc=$?
    [ "$rc" -eq 0 ] || status="exit $rc"
    [ "$rc" -ne 124 ] || status="over its ${limit} s"
    say "  $(printf '%-64.64s' "$*") $status ($((SECONDS - t0)) s)"
    [ "$rc" -eq 0 ] || fail "'$*': $status; see $name"
}

# The carried Debian packages, unpacked into /opt/debs with the toolchain
# pointed at them; a machine that has the libraries already (the
# development machine) needs none.
unpack_debs() {
    if [ -f .device/unpack-debs.sh ] && compgen -G '.debs/*.deb' >/dev/null; then
        # shellcheck disable=SC1091
        source .device/unpack-debs.sh
    elif ! pkg-config --exists liburing libprotobuf-c 2>/dev/null; then
        fail "no .debs/ or .device/unpack-debs.sh in the tree and no liburing here: prepare them" \
             "(see the top of scripts/gpu_session.sh) and name them in carry"
    fi
}

# A CUDA build for the H100 (sm_90), Release with debug info, in
# build-gpu/. Fails unless CUDA is really on: a build that lost nvcc would
# otherwise skip every GPU case and look green.
build() {
    say "build ($(nproc) jobs)"
    unpack_debs
    command -v nvcc >/dev/null || export PATH=/usr/local/cuda/bin:$PATH
    run_logged build.txt 300 cmake -S . -B build-gpu -DCMAKE_BUILD_TYPE=RelWithDebInfo \
        -DTRESTLE_CUDA=ON -DTRESTLE_CUDA_MOCK=OFF -DCMAKE_CUDA_ARCHITECTURES=90 \
        -DTRESTLE_BUILD_BENCH=OFF
    run_logged build.txt 400 cmake --build build-gpu -j"$(nproc)"
    if ! { grep -q '^TRESTLE_CUDA:BOOL=ON$' build-gpu/CMakeCache.txt &&
           grep -q '^#define TRESTLE_HAVE_CUDA 1$' build-gpu/include/trestle_version.h &&
           [ -f build-gpu/CMakeFiles/trestle_kernels.dir/kernels/scatter.cu.o ]; }; then
        fail "build-gpu is not a CUDA build (TRESTLE_CUDA off or kernels not compiled); see build.txt"
    fi
}

# Fail unless the CUDA driver sees a device (the first thing any GPU step needs).
need_gpu() {
    nvidia-smi -L >>"$OUT/session.txt" 2>&1 || fail "nvidia-smi sees no GPU"
}

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

# ---- call 1: environment, build, GPU suites ----

call_1() {
    local env=$OUT/env.txt
    say "call 1: environment, CUDA build, GPU suites"
    {
        echo "== date, host";   date -u; uname -a; grep PRETTY_NAME /etc/os-release || true
        echo "== CPUs, memory, disk"; nproc; grep -m1 'model name' /proc/cpuinfo || true
        free -g; df -hT "$PWD" /tmp || true
        echo "== GPU and driver"; nvidia-smi || true
        nvidia-smi --query-gpu=name,driver_version,pci.bus_id,memory.total,clocks.max.sm \
            --format=csv || true
        nvidia-smi topo -m || true
        echo "== toolkit"; nvcc --version || /usr/local/cuda/bin/nvcc --version || true
        compute-sanitizer --version || /usr/local/cuda/bin/compute-sanitizer --version || true
        cmake --version | head -1; gcc --version | head -1
        echo "== io_uring (0: allowed)"; cat /proc/sys/kernel/io_uring_disabled || echo "no io_uring_disabled knob"
        echo "== transparent huge pages"
        cat /sys/kernel/mm/transparent_hugepage/enabled /sys/kernel/mm/transparent_hugepage/defrag || true
        echo "== NUMA: nodes, and the GPU's"
        ls -d /sys/devices/system/node/node* || true
        numactl --hardware || true
        local bus
        bus=$(nvidia-smi --query-gpu=pci.bus_id --format=csv,noheader | head -1 | tr 'A-F' 'a-f' || true)
        bus=${bus#0000}   # 00000000:18:00.0 -> 0000:18:00.0, the sysfs name
        echo "GPU $bus numa_node: $(cat "/sys/bus/pci/devices/$bus/numa_node" 2>/dev/null || echo unknown)"
        echo "== locked memory (cudaHostRegister pins against it)"; ulimit -l
        echo "== python"; python3 -c 'import torch, safetensors; print("torch", torch.__version__,
"cuda", torch.cuda.is_available(), "safetensors", safetensors.__version__)' || true
    } >"$env" 2>&1
    say "  environment -> env.txt"
    need_gpu
    build
    # io_uring decides the reader; the engine falls back to pread, so a
    # refusal is a finding for the figures, not a failure.
    mkdir -p "$WORK"
    "$TRESTLE" synth "$WORK/probe" --size 4M >/dev/null
    say "  io_uring probe: $("$TRESTLE" restore --reader io_uring "$WORK/probe" 2>&1 | tail -1)"
    rm -f "$WORK"/probe.*
    local t skips
    for t in test_kernels test_gpu_restore; do
        run_logged "$t.txt" 240 "build-gpu/tests/$t" --verbose --jobs 4
        skips=$(grep '^\[SKIP\]' "$OUT/$t.txt" | grep -v 'needs two CUDA devices' || true)
        [ -z "$skips" ] || fail "$t skipped $(wc -l <<<"$skips") cases on a GPU machine, e.g." \
                                "$(head -1 <<<"$skips")"
        say "  $(grep 'Synthesis' "$OUT/$t.txt" | tail -1)"
    done
    say "call 1 green"
}

# ---- call 2: compute-sanitizer, then the whole suite ----

call_2() {
    say "call 2: compute-sanitizer, whole ctest"
    need_gpu
    build
    local sanitizer dir=$WORK/sanitize m tool
    sanitizer=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
    [ -x "$sanitizer" ] || fail "compute-sanitizer not found"
    rm -rf "$dir" && mkdir -p "$dir"
    # float32 for the two narrowing conversions, bfloat16 and float16 for
    # the two widening ones.
    for m in float bf16 half; do
        "$TRESTLE" synth "$dir/$m" --size 16M --shards 2 --dtype "$m" >/dev/null
        "$TRESTLE" inspect "$dir/$m" --json >"$dir/$m.json"
        gen_ops "$dir/$m.json" mixed >"$dir/$m.ops"
    done
    say "  ops: $(wc -l <"$dir/float.ops") on each of float32, bfloat16, float16 (whole," \
        "converted, row and column slices)"
    for tool in memcheck racecheck synccheck; do
        local extra=()
        [ "$tool" = memcheck ] && extra=(--leak-check full)
        for m in float bf16 half; do
            run_logged "sanitizer-$tool.txt" 180 "$sanitizer" --tool "$tool" "${extra[@]}" \
                --error-exitcode 86 "$TRESTLE" restore --ops "$dir/$m.ops" --device 0 "$dir/$m"
        done
        say "  $tool: $(grep -c 'ERROR SUMMARY: 0 errors' "$OUT/sanitizer-$tool.txt") of 3 runs clean"
    done
    rm -rf "$dir"
    (cd build-gpu && run_logged ctest.txt 360 ctest -j8 --output-on-failure)
    say "  $(grep 'tests passed' "$OUT/ctest.txt" | tail -1)"
    say "call 2 green"
}

# ---- call 3: figures ----

RESULTS=""
FAILED=0

# figure LOG SECONDS CMD...: like run_logged, but a failure marks the
# figure FAILED and the call goes on.
figure() {
    if ! (run_logged "$@"); then
        FAILED=1
        printf '\n**FAILED**: %s (see %s)\n' "${*:3}" "$1" >>"$RESULTS"
        return 1
    fi
}

# Append a "### $1" heading and the text on stdin (what was run) to the results.
section() {
    printf '\n### %s\n\n' "$1" >>"$RESULTS"
    cat >>"$RESULTS"
}

# Append the text of $1 (a log under $OUT) to the results as a code block,
# without the command lines run_logged wrote into it.
results_block() {
    { echo '```text'; grep -v '^\$ ' "$OUT/$1" | cat -s | sed '1{/^$/d}'; echo '```'; } >>"$RESULTS"
}

call_3() {
    RESULTS=$OUT/RESULTS-gpu.md
    say "call 3: figures -> RESULTS-gpu.md"
    need_gpu
    python3 -c 'import torch, safetensors' 2>/dev/null || fail "python3 lacks torch or safetensors"
    build
    mkdir -p "$WORK"
    local avail
    avail=$(df -B1G --output=avail "$WORK" | tail -1 | tr -d ' ')
    [ "$avail" -ge 28 ] || fail "only ${avail} GiB free under $WORK; the 8 GiB comparison needs 28"
    run_logged build.txt 120 nvcc -O2 -o build-gpu/host_register_time bench/host_register_time.c

    local gpu
    gpu=$(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | head -1)
    cat >"$RESULTS" <<EOF
## GPU machine: first run (issue 12)

Machine: $gpu; $(nproc) CPUs ($(grep -m1 -o 'model name.*' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')),
$(uname -sr); data under build-gpu/work on $(df --output=fstype "$WORK" | tail -1).
Build: \`scripts/gpu_session.sh 3\` (RelWithDebInfo, CUDA arch 90), $(git rev-parse --short HEAD 2>/dev/null || echo "tree without .git").
Date: $(date -u +%F).
EOF

    # cudaHostRegister of the default staging size.
    section "Pinning 256 MiB of staging" <<'EOF'
Command: `build-gpu/host_register_time 256 5` (bench/host_register_time.c).
EOF
    figure host_register.txt 120 build-gpu/host_register_time 256 5 &&
        grep -v '^\$ ' "$OUT/host_register.txt" | sed '/^$/d;s/^Pinning/\nPinning/' >>"$RESULTS"

    # Many small tensors: one DMA and one stream sync per tensor shows here.
    local many=$WORK/many
    mkdir -p "$many"
    section "20,000 tensors" <<EOF
Commands: \`trestle synth ckpt --size $MANY_SIZE --shards 8 --layers 2222\`, then
\`trestle bench ckpt --device 0 --repeat 3\`, and the same with \`--cold\`.

EOF
    if figure many_tensors.txt 120 "$TRESTLE" synth "$many/ckpt" --size "$MANY_SIZE" --shards 8 \
            --layers 2222 &&
        figure many_tensors.txt 150 "$TRESTLE" bench "$many/ckpt" --device 0 --repeat 3 &&
        figure many_tensors.txt 150 "$TRESTLE" bench "$many/ckpt" --device 0 --repeat 3 --cold; then
        results_block many_tensors.txt
    else
        FAILED=1
    fi
    rm -rf "$many"

    # Column slices: strided runs, the scatter kernel's case.
    local cols=$WORK/columns
    mkdir -p "$cols"
    section "Column slices" <<EOF
The middle half of the columns of every matrix of a $COLUMN_SIZE model
(\`trestle synth ckpt --size $COLUMN_SIZE --shards 8\`; ops by \`gen_ops columns\` from
\`trestle inspect --json\`), restored with \`trestle restore --ops cols.ops
--device 0 ckpt\` three times (page cache warm, as synth left it), then with
\`--host\`, then the whole model with \`--all --device 0\`, and again with
\`--no-numa\` (staging and workers left where the system puts them: the
\`numa:\` line of the first says what placement did).

EOF
    if figure columns.txt 120 "$TRESTLE" synth "$cols/ckpt" --size "$COLUMN_SIZE" --shards 8 &&
        "$TRESTLE" inspect "$cols/ckpt" --json >"$cols/ckpt.json" &&
        gen_ops "$cols/ckpt.json" columns >"$cols/cols.ops" &&
        figure columns.txt 60 "$TRESTLE" restore --ops "$cols/cols.ops" --device 0 "$cols/ckpt" &&
        figure columns.txt 60 "$TRESTLE" restore --ops "$cols/cols.ops" --device 0 "$cols/ckpt" &&
        figure columns.txt 60 "$TRESTLE" restore --ops "$cols/cols.ops" --device 0 "$cols/ckpt" &&
        figure columns.txt 60 "$TRESTLE" restore --ops "$cols/cols.ops" --host "$cols/ckpt" &&
        figure columns.txt 60 "$TRESTLE" restore --all --device 0 "$cols/ckpt" &&
        figure columns.txt 60 "$TRESTLE" restore --all --device 0 --no-numa "$cols/ckpt"; then
        results_block columns.txt
    else
        FAILED=1
    fi
    rm -rf "$cols"

    # The main figures: 8 GiB warm and cold, beside safetensors and torch.load,
    # with what is left of the call's 10 minutes (30 s kept for the end).
    local left=$((570 - SECONDS))
    [ "$left" -ge 120 ] || left=120
    section "$COMPARE_SIZE model, warm and cold, beside safetensors and torch.load" <<EOF
Command: \`REPEAT=2 TRESTLE=build-gpu/trestle bench/compare_gpu.sh $COMPARE_SIZE 8\`.

EOF
    if figure compare.txt "$left" env REPEAT=2 DIR="$WORK" TRESTLE="$TRESTLE" \
            bench/compare_gpu.sh "$COMPARE_SIZE" 8; then
        results_block compare.txt
    fi
    rm -rf "$WORK"/trestle-gpucmp-*   # its own trap may not run when the limit kills it
    df -h "$WORK" >>"$OUT/session.txt"
    [ "$FAILED" -eq 0 ] || fail "some figures failed; RESULTS-gpu.md marks them"
    say "call 3 green: RESULTS-gpu.md"
}

# Sourced: define the steps, run none.
[[ "${BASH_SOURCE[0]}" == "$0" ]] || return 0

case "$CALL" in
1) call_1 ;;
2) call_2 ;;
3) call_3 ;;
*) echo "usage: scripts/gpu_session.sh 1|2|3   (see the top of this file)" >&2; exit 2 ;;
esac
