#!/usr/bin/env bash
# Installs what building, running and testing flashsale needs on Debian 12:
# compilers, the C++ libraries from Debian's -dev packages, SQLite, the tools
# of the test command (clang for libFuzzer, nginx + wrk for the benchmark,
# Locust for the load scenario) and Node's npm for swagger-ui-dist.
# Idempotent: does nothing when everything is there. Needs root (or sudo).
set -euo pipefail

# Debian packages: build and run.
BUILD_PACKAGES=(
  build-essential cmake ninja-build ccache pkg-config git
  libboost1.81-dev libboost-json1.81-dev
  libsqlite3-dev sqlite3 libspdlog-dev libfmt-dev libcli11-dev libhiredis-dev
  librdkafka-dev libpq-dev libssl-dev
  nodejs npm
)
# Debian packages: tests, fuzzing, load and benchmarks.
TEST_PACKAGES=(
  libgtest-dev libgmock-dev libbenchmark-dev
  clang-14 libclang-rt-14-dev
  python3 python3-pytest python3-locust
  nginx wrk curl procps redis-server kcat
  chromium fonts-wqy-microhei  # the waiting page's browser test (and legible Chinese in its screenshots)
)

want=("${BUILD_PACKAGES[@]}")
if [[ "${1:-}" != "--build-only" ]]; then want+=("${TEST_PACKAGES[@]}"); fi

missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# The machine image may provide node/npm outside Debian; that is fine.
if command -v npm >/dev/null 2>&1; then
  filtered=()
  for p in "${missing[@]}"; do [[ "$p" == nodejs || "$p" == npm ]] || filtered+=("$p"); done
  missing=("${filtered[@]+"${filtered[@]}"}")
fi
# redis-py for the Lua script tests, into the python3 that CTest runs (PyPI).
ensure_redis_py() {
  [[ "${1:-}" == "--build-only" ]] && return 0
  python3 -c "import redis" >/dev/null 2>&1 && return 0
  echo "setup_deps: installing redis-py for $(command -v python3)"
  python3 -m pip install --quiet --disable-pip-version-check 'redis>=5' ||
    python3 -m pip install --quiet --disable-pip-version-check --break-system-packages 'redis>=5'
}

if ((${#missing[@]} == 0)); then
  echo "setup_deps: all packages present"
  ensure_redis_py "${1:-}"
  exit 0
fi

SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
echo "setup_deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# nginx-light installs a service that would hold port 80; the benchmark runs
# its own nginx, so stop the packaged one if the package started it.
if command -v service >/dev/null 2>&1; then
  $SUDO service nginx stop >/dev/null 2>&1 || true
  $SUDO service redis-server stop >/dev/null 2>&1 || true  # tests run their own
fi
ensure_redis_py "${1:-}"
echo "setup_deps: done"
