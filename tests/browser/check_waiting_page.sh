#!/usr/bin/env bash
# check_waiting_page.sh — the waiting page in headless Chromium (CTest: browser_waiting_page).
#
#   FLASHSALE_BIN=build/release/flashsale tests/browser/check_waiting_page.sh [CACHE_DIR] [OUT_DIR]
#
# puppeteer-core comes from npm at the version pinned in package-lock.json, installed with
# `npm ci` into CACHE_DIR (default build/_deps/browser-test) once per lock file; it drives
# Debian's chromium (/usr/bin/chromium, or $CHROMIUM; scripts/setup_deps.sh installs it) and
# never downloads a browser. waiting_page_test.mjs does the test; its screenshots go to OUT_DIR
# (default build/test-output/browser).
# Exit 0: passed; 1: failed; 77: no chromium, or npm could not fetch puppeteer-core (not under
# CI=true, where either is a failure).
set -uo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
cache="${1:-$repo/build/_deps/browser-test}"
out="${2:-$repo/build/test-output/browser}"
bin="${FLASHSALE_BIN:-}"
chromium="${CHROMIUM:-/usr/bin/chromium}"
npm_timeout="${FLASHSALE_NPM_TIMEOUT:-180}"

skip() {
  if [[ "${CI:-}" == "true" ]]; then echo "FAIL $* (CI=true: a missing tool is a failure)"; exit 1; fi
  echo "SKIP $*; set CI=true to make this fail"; exit 77
}

[[ -n "$bin" && -x "$bin" ]] || { echo "FAIL FLASHSALE_BIN is not an executable: '$bin'"; exit 1; }
command -v node >/dev/null && command -v npm >/dev/null ||
  { echo "FAIL node/npm not found (scripts/setup_deps.sh installs them)"; exit 1; }
[[ -x "$chromium" ]] || skip "no chromium at $chromium (scripts/setup_deps.sh installs Debian's)"

# --- puppeteer-core: npm ci into the cache, once per package-lock.json ----------------------
# --ignore-scripts (in npm_ci_cached): no install hook runs, and no browser is downloaded.
source "$repo/tests/npm_ci_cache.sh"
npm_ci_cached "$here" "$cache" "$npm_timeout" ||
  skip "npm ci of puppeteer-core failed or timed out (${npm_timeout}s)"
cp "$here/waiting_page_test.mjs" "$cache/waiting_page_test.mjs"  # resolves its modules from the cache
CHROMIUM="$chromium" exec node "$cache/waiting_page_test.mjs" "$out"
