#!/usr/bin/env bash
# The README's test command (and CI's): installs what it needs, then
#   1. fuzzes the HTTP parser and the JSON validator (clang libFuzzer, 60 s each),
#   2. runs the unit tests and the Redis backend's concurrency tests under ThreadSanitizer,
#   3. runs every test (unit + integration) under ASan + UBSan,
#   4. runs every test on the release build, whose CTest summary ends the output.
# Integration tests start the real `flashsale` binary on loopback ports.
# Environment: FUZZ_SECONDS (default 60), SKIP_SANITIZERS=1 to run step 4 only.
set -euo pipefail
cd "$(dirname "$0")/.."
export CTEST_OUTPUT_ON_FAILURE=1
jobs=$(nproc)

section() { printf '\n==== %s ====\n' "$*"; }

section "dependencies"
scripts/setup_deps.sh

if [[ "${SKIP_SANITIZERS:-0}" != 1 ]]; then
  section "fuzzing (${FUZZ_SECONDS:-60} s per target)"
  scripts/run_fuzzers.sh "${FUZZ_SECONDS:-60}"

  section "tsan: unit tests + Redis backend"
  cmake --preset tsan >/dev/null
  cmake --build --preset tsan -j "$jobs"
  ctest --preset tsan -j "$jobs"

  section "debug-asan: all tests"
  cmake --preset debug-asan >/dev/null
  cmake --build --preset debug-asan -j "$jobs"
  ctest --preset debug-asan
fi

section "release: all tests"
cmake --preset release >/dev/null
cmake --build --preset release -j "$jobs"
ctest --preset release
