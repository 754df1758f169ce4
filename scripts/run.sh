#!/usr/bin/env bash
# The README's run command: installs the build dependencies, builds the
# release preset and starts `flashsale serve` (embedded mode, mock catalog,
# port 8000). Extra arguments go to `flashsale serve`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup_deps.sh --build-only
cmake --preset release >/dev/null
cmake --build --preset release --target flashsale
exec build/release/flashsale serve "$@"
