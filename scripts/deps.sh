#!/usr/bin/env bash
# Install trestle's build and test dependencies from Debian packages.
# Idempotent: does nothing (and needs no network) when all are present.
# Why each one is needed is in README.md, "Dependencies".
set -euo pipefail

PKGS=(build-essential cmake pkg-config
      liburing-dev libprotobuf-c-dev protobuf-c-compiler
      libisal-dev libsnappy-dev
      libcriterion-dev libbenchmark-dev
      python3-dev python3-numpy python3-pytest python3-torch python3-tqdm
      python3-pip python3-venv python3-setuptools python3-wheel
      libopenmpi-dev openmpi-bin    # libtrestle_mpi, trestle-mpi and the mpirun tests
      libcurl4-openssl-dev          # remote checkpoints: gs://, s3://, https:// (engine/remote/)
      nginx-light openssl           # the remote tests' servers on 127.0.0.1 (HTTP, HTTPS)
      python3-botocore              # the independent SigV4 signer the S3 tests check against
      curl                          # bench/remote_bench.sh: the copy-first comparison
      doxygen)                      # the API reference, and its warning-free ctest
PKGS+=("$@")   # callers may ask for extras (e.g. clang for the fuzzers)

missing=()
for p in "${PKGS[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "trestle: installing ${missing[*]}" >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
