# npm_ci_cache.sh — sourced by the test scripts that need npm packages at test time
# (tests/docker/check_docker.sh, tests/browser/check_waiting_page.sh).
#
#   npm_ci_cached <dir with package.json + package-lock.json> <cache dir> <timeout s>
#
# Installs the locked packages with `npm ci --ignore-scripts` into the cache dir, once per
# package-lock.json (its SHA-256 is kept in <cache>/.installed; a changed lock reinstalls from
# scratch). Returns 0 when the cache holds them, 1 when npm failed or timed out (the cache is
# then removed, so a half install is never taken for a whole one).
npm_ci_cached() {
  local src="$1" cache="$2" timeout_s="$3" lock_sum
  lock_sum="$(sha256sum "$src/package-lock.json" | cut -d' ' -f1)"
  [[ "$(cat "$cache/.installed" 2>/dev/null)" == "$lock_sum" ]] && return 0
  rm -rf "$cache" && mkdir -p "$cache"
  cp "$src/package.json" "$src/package-lock.json" "$cache/"
  echo "installing $(cd "$src" && node -p 'Object.keys(require("./package.json").dependencies).join(", ")') (npm ci, pinned) into $cache"
  if (cd "$cache" && timeout -k 10 "$timeout_s" npm ci --ignore-scripts --no-audit --no-fund \
        --loglevel=error) 2>&1 | grep -v 'Unknown user config'; [[ ${PIPESTATUS[0]} -eq 0 ]]; then
    echo "$lock_sum" >"$cache/.installed"
    return 0
  fi
  rm -rf "$cache"
  return 1
}
