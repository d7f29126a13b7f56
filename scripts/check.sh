#!/usr/bin/env bash
# The hardening checks CI runs after the test suite (scripts/test.sh):
#
#   asan      the whole suite again, built with AddressSanitizer +
#             UndefinedBehaviorSanitizer (build-asan/) and, where the CUDA
#             toolkit's headers are installed, on tests/cudamock: a strict
#             CUDA runtime on the CPU with two fake devices, so the CUDA
#             copier and every GPU test run here too; any report fails it
#   valgrind  the CLI under memcheck on a small multi-shard restore through
#             the pread reader (memcheck cannot see io_uring fill buffers),
#             plus inspect --stats and diff; any error or leak fails it
#   fuzz      each libFuzzer target (index, entry, spec, state, opsfile,
#             plan, graph, names, wire) for FUZZ_SECONDS, then the line coverage
#             of every parser file, which must be 85 % or more
#             (scripts/fuzz.sh coverage)
#
# `scripts/check.sh` runs all three; `scripts/check.sh asan fuzz` runs some.
# Each step prints how long it took, so the CI budget stays visible.
set -euo pipefail
cd "$(dirname "$0")/.."

steps=("$@")
[ ${#steps[@]} -eq 0 ] && steps=(asan valgrind fuzz)
jobs=$(nproc 2>/dev/null || echo 2)

step_asan() {
    scripts/deps.sh
    # Bench off: Google Benchmark is not built with the sanitizers. The
    # soak test notices ASan and leaves out its RSS check (ASan's shadow
    # memory and quarantine grow on their own); file descriptors still count.
    # The mock needs only cuda_runtime_api.h (found through nvcc), never a
    # GPU or a driver; without the toolkit the GPU suites skip, as in a
    # build without CUDA.
    local mock=OFF
    if command -v nvcc >/dev/null 2>&1 || [ -x /usr/local/cuda/bin/nvcc ]; then
        mock=ON
    else
        echo "check asan: no CUDA toolkit headers; the GPU suites skip (no tests/cudamock)"
    fi
    cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTRESTLE_SANITIZE=ON \
        -DTRESTLE_BUILD_BENCH=OFF -DTRESTLE_CUDA_MOCK=$mock >/dev/null
    cmake --build build-asan -j"$jobs"
    # test_install is left out: it links outside consumers against the
    # installed library, and an ASan-instrumented libtrestle.so needs the
    # ASan runtime loaded first in every program that uses it; the library
    # code it exercises runs under ASan in the other suites.
    (cd build-asan &&
     ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1 \
     UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
     ctest --output-on-failure -j"$jobs" -E '^test_install$')
}

step_valgrind() {
    scripts/deps.sh valgrind
    [ -x build/trestle ] || scripts/build.sh
    local work
    work=$(mktemp -d "${TMPDIR:-/tmp}/trestle-vg-XXXXXX")
    # Memcheck cannot see the kernel fill io_uring buffers (it would report
    # uninitialised CRC input), so the restore runs through the pread pool;
    # the io_uring path is covered by the ASan step.
    local vg=(valgrind -q --error-exitcode=99 --leak-check=full --show-leak-kinds=definite,indirect
              --errors-for-leak-kinds=definite,indirect --track-fds=no)
    local rc=0
    build/trestle synth "$work/ck" --size 8M --shards 3 >/dev/null
    "${vg[@]}" build/trestle restore "$work/ck" --all --host --reader pread --threads 2 || rc=$?
    [ $rc -eq 0 ] && { "${vg[@]}" build/trestle inspect "$work/ck" --stats >/dev/null || rc=$?; }
    [ $rc -eq 0 ] && { "${vg[@]}" build/trestle diff "$work/ck" "$work/ck" >/dev/null || rc=$?; }
    rm -rf "$work"
    if [ $rc -ne 0 ]; then
        echo "valgrind: failed (exit $rc)" >&2
        return 1
    fi
    echo "valgrind: clean"
}

step_fuzz() {
    FUZZ_SECONDS=${FUZZ_SECONDS:-60} scripts/fuzz.sh coverage
}

for s in "${steps[@]}"; do
    case "$s" in
    asan|valgrind|fuzz) ;;
    *) echo "check.sh: unknown step '$s' (asan, valgrind, fuzz)" >&2; exit 2 ;;
    esac
    start=$SECONDS
    echo "== check: $s"
    "step_$s"
    echo "== check: $s passed in $((SECONDS - start)) s"
done
