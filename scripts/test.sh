#!/usr/bin/env bash
# The README's test command (and CI's): installs what it needs, then
#   1. fuzzes the HTTP parser and the JSON validator (clang libFuzzer, 60 s each),
#   2. runs the unit tests and the Redis backend's concurrency tests under ThreadSanitizer,
#   3. runs every test (unit + integration) under ASan + UBSan,
#   4. builds the run command's `flashsale` with the test-only packages hidden
#      from CMake (preset run-check: what scripts/run.sh can build on a machine
#      that has only the build packages),
#   5. runs every test on the release build, whose CTest summary ends the output.
# Integration tests start the real `flashsale` binary on loopback ports.
# Environment: FUZZ_SECONDS (default 60), SKIP_SANITIZERS=1 to run steps 4 and 5 only.
set -euo pipefail
cd "$(dirname "$0")/.."
export CTEST_OUTPUT_ON_FAILURE=1
# ccache hits across build folders and clones (paths relative to the repo).
export CCACHE_BASEDIR="$PWD" CCACHE_NOHASHDIR=1
# The test command needs every test-only part: a missing package must fail here.
parts=(-DFLASHSALE_BUILD_TESTS=ON)
jobs=$(nproc)

section() { printf '\n==== %s ====\n' "$*"; }

section "dependencies"
scripts/setup_deps.sh

if [[ "${SKIP_SANITIZERS:-0}" != 1 ]]; then
  section "fuzzing (${FUZZ_SECONDS:-60} s per target)"
  scripts/run_fuzzers.sh "${FUZZ_SECONDS:-60}"

  section "tsan: unit tests + Redis backend"
  cmake --preset tsan "${parts[@]}" >/dev/null
  cmake --build --preset tsan -j "$jobs"
  ctest --preset tsan -j "$jobs"

  section "debug-asan: all tests"
  cmake --preset debug-asan "${parts[@]}" >/dev/null
  cmake --build --preset debug-asan -j "$jobs"
  ctest --preset debug-asan
fi

section "release: build"
cmake --preset release "${parts[@]}" -DFLASHSALE_BUILD_BENCHMARKS=ON >/dev/null
cmake --build --preset release -j "$jobs"

section "run command's build, test-only packages hidden (preset run-check)"
cmake --preset run-check >/dev/null
cmake --build --preset run-check -j "$jobs"
test -x build/run-check/flashsale
build/run-check/flashsale --version

section "release: all tests"
ctest --preset release
