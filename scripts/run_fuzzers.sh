#!/usr/bin/env bash
# Builds the libFuzzer targets (the `fuzz` preset: clang++-14, ASan + UBSan) and
# runs each for SECONDS (default 60):
#   scripts/run_fuzzers.sh [SECONDS]
# Each fuzzer starts from its seed corpus (tests/fuzz/corpus/<target>/, copied,
# never written) plus what earlier runs found, kept in build/fuzz/corpus-work/<target>/.
# Crash inputs go to build/fuzz/artifacts/<target>/, full logs to build/fuzz/logs/.
# Prints one summary line per fuzzer; exits non-zero if any fuzzer crashed,
# timed out, ran out of memory or a sanitizer reported anything.
# Reproduce a crash: build/fuzz/tests/fuzz/<target> <artifact file>
set -euo pipefail
cd "$(dirname "$0")/.."

secs="${1:-60}"
if ! [[ "$secs" =~ ^[0-9]+$ ]] || (( secs == 0 )); then
  echo "usage: $0 [SECONDS]   (a positive whole number; default 60)" >&2
  exit 2
fi

build=build/fuzz
cmake --preset fuzz >/dev/null
# The fuzz targets, and `flashsale` (every library and app/): this is the test
# command's clang build, so it is where -Wthread-safety -Werror checks the
# locking annotations (GUARDED_BY, REQUIRES: src/core/mutex.hpp) of all the code.
# Tests are built and run by the other presets.
cmake --build --preset fuzz --target http_parser_fuzz json_body_fuzz order_codec_fuzz flashsale

# target:max_len. HTTP inputs must be able to pass the 8 KiB header limit;
# JSON bodies the 4 KiB body limit.
fuzzers=(http_parser_fuzz:20000 json_body_fuzz:8192 order_codec_fuzz:4096)

export ASAN_OPTIONS="${ASAN_OPTIONS:-abort_on_error=0:detect_leaks=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"

failed=0
summaries=()
for entry in "${fuzzers[@]}"; do
  name="${entry%%:*}"
  max_len="${entry##*:}"
  short="${name%_fuzz}"
  seeds="tests/fuzz/corpus/$short"
  dict="tests/fuzz/${short%%_*}.dict"
  work="$build/corpus-work/$short"
  artifacts="$build/artifacts/$short"
  log="$build/logs/$short.log"
  rm -rf "$artifacts"
  mkdir -p "$work" "$artifacts" "$(dirname "$log")"
  cp -n "$seeds"/* "$work"/ 2>/dev/null || true

  echo "---- $name: ${secs} s (corpus $work, log $log)"
  status=0
  "$build/tests/fuzz/$name" "$work" \
    -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len="$max_len" \
    -dict="$dict" -artifact_prefix="$artifacts/" -print_final_stats=1 \
    >"$log" 2>&1 || status=$?

  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n1)
  last=$(grep -E '^#[0-9]+' "$log" | tail -n1 || true)
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
  corp=$(sed -n 's/.* corp: \([0-9]*\)\/.*/\1/p' <<<"$last")

  verdict=ok
  if (( status != 0 )) ||
     grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error:|SUMMARY: ' "$log"; then
    verdict="FAILED (exit $status)"
    failed=1
    echo "---- $name failed; end of its log:"
    grep -vE '^#[0-9]+ ' "$log" | tail -n 60
    for crash in "$artifacts"/*; do
      [[ -f "$crash" ]] || continue
      echo "---- reproducer $crash (base64): $(base64 -w0 "$crash")"
    done
  fi
  summaries+=("$(printf '%-17s %s: %s execs (%s/s), cov %s, ft %s, corpus %s' \
    "$name" "$verdict" "${execs:-?}" "${rate:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}")")
done

echo "==== fuzz summary (${secs} s each)"
printf '%s\n' "${summaries[@]}"
exit "$failed"
