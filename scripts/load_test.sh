#!/usr/bin/env bash
# Seed-compatibility load test: a fresh `flashsale serve` (embedded mode, default mock
# catalog 10000000-10009999, temporary SQLite database) on a free loopback port, driven
# by the seed's Locust scenario (scripts/mock_user_orders.py) headless with 200 users.
# Exits 0 only if Locust saw zero failures, the server survived, and it stopped cleanly
# on SIGTERM.
#
#   scripts/load_test.sh [SECONDS]          # default 30
#
# Environment:
#   FLASHSALE_BIN   server binary            (default build/release/flashsale)
#   LOCUST          locust executable        (default: locust on PATH, else /usr/bin/locust)
#   USERS           simulated users          (default 200)
#   SPAWN_RATE      users started per second (default 50)
#   THREADS         server --threads         (default 2)
#   KEEP=1          keep the temporary directory (db, server log, locust output)
set -euo pipefail

DURATION="${1:-${DURATION:-30}}"
[[ "$DURATION" =~ ^[0-9]+$ && "$DURATION" -gt 0 ]] || { echo "usage: $0 [SECONDS]" >&2; exit 2; }
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="${FLASHSALE_BIN:-$ROOT/build/release/flashsale}"
LOCUST="${LOCUST:-$(command -v locust || echo /usr/bin/locust)}"
USERS="${USERS:-200}"
SPAWN_RATE="${SPAWN_RATE:-50}"
THREADS="${THREADS:-2}"

[[ -x "$BIN" ]] || { echo "load_test: server binary not found: $BIN (build it first)" >&2; exit 2; }
[[ -x "$LOCUST" ]] || { echo "load_test: locust not found (apt install python3-locust)" >&2; exit 2; }
BIN="$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")"

WORK="$(mktemp -d /tmp/flashsale-loadtest.XXXXXX)"
SERVER_PID=""
LOCUST_PID=""
cleanup() {
    local rc=$?
    if [[ -n "$LOCUST_PID" ]] && kill -0 "$LOCUST_PID" 2>/dev/null; then
        kill -TERM "$LOCUST_PID" 2>/dev/null || true
        wait "$LOCUST_PID" 2>/dev/null || true
    fi
    if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -KILL "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    if [[ "${KEEP:-0}" == 1 || $rc -ne 0 ]]; then
        echo "load_test: files kept in $WORK"
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
TOKEN="loadtest-$RANDOM$RANDOM"
URL="http://127.0.0.1:$PORT"

echo "load_test: starting $BIN on $URL (db $WORK/flashsale.db, threads $THREADS)"
# cwd = $WORK so the server's logs/ directory and any .env lookup stay out of the repo.
(cd "$WORK" && exec "$BIN" serve --host 127.0.0.1 --port "$PORT" \
    --database "sqlite:$WORK/flashsale.db" --admin-token "$TOKEN" \
    --threads "$THREADS" --log-level warn) >"$WORK/server.log" 2>&1 &
SERVER_PID=$!

ready=0
for _ in $(seq 1 300); do
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
        echo "load_test: server exited during start-up:" >&2; tail -n 20 "$WORK/server.log" >&2; exit 1
    fi
    if [[ "$(curl -s -o /dev/null -w '%{http_code}' "$URL/healthz" || true)" == 200 ]]; then
        ready=1; break
    fi
    sleep 0.1
done
[[ $ready == 1 ]] || { echo "load_test: server not ready after 30 s" >&2; tail -n 20 "$WORK/server.log" >&2; exit 1; }
echo "load_test: server ready (pid $SERVER_PID)"

echo "load_test: locust headless: $USERS users, spawn rate $SPAWN_RATE/s, ${DURATION}s"
# In the background + wait, so that Ctrl-C / SIGTERM to this script is handled at once.
(cd "$ROOT" && exec "$LOCUST" -f scripts/mock_user_orders.py --headless \
    -u "$USERS" -r "$SPAWN_RATE" -t "${DURATION}s" --host "$URL" \
    --only-summary --loglevel WARNING) >"$WORK/locust.out" 2>&1 &
LOCUST_PID=$!
LOCUST_RC=0
wait "$LOCUST_PID" || LOCUST_RC=$?
LOCUST_PID=""
cat "$WORK/locust.out"

fail=0
if ! kill -0 "$SERVER_PID" 2>/dev/null; then
    echo "load_test: FAIL: the server died during the test" >&2; tail -n 20 "$WORK/server.log" >&2; fail=1
fi

# Totals from the "Aggregated" row of Locust's final summary (its --csv files can miss
# the last second of a run; the printed summary does not).
read -r REQS FAILS < <(python3 - "$WORK/locust.out" <<'PY'
import re, sys
reqs, fails = "0", "-1"
for line in open(sys.argv[1], errors="replace"):
    m = re.match(r"\s*Aggregated\s+(\d+)\s+(\d+)\(", line)
    if m:
        reqs, fails = m.group(1), m.group(2)
        break  # the first Aggregated row is the request statistics table
print(reqs, fails)
PY
)
echo "load_test: requests=$REQS failures=$FAILS locust_exit=$LOCUST_RC"
[[ "$FAILS" == 0 ]] || { echo "load_test: FAIL: $FAILS failed requests" >&2; fail=1; }
[[ "$REQS" -gt 0 ]] || { echo "load_test: FAIL: no requests were made" >&2; fail=1; }
[[ $LOCUST_RC == 0 ]] || { echo "load_test: FAIL: locust exited $LOCUST_RC" >&2; fail=1; }

# Outcome mix, from the server's own metrics (best effort; not part of the verdict).
curl -s "$URL/metrics" 2>/dev/null | grep -E '^flashsale_(requests_total\{[^}]*purchase|orders_accepted_total)' \
    | sed 's/^/load_test: metric /' || true

if kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID"
    rc=0
    for _ in $(seq 1 300); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$SERVER_PID" 2>/dev/null; then
        echo "load_test: FAIL: server still running 30 s after SIGTERM; killing it" >&2
        kill -KILL "$SERVER_PID"; fail=1
    fi
    wait "$SERVER_PID" || rc=$?
    SERVER_PID=""
    echo "load_test: server stopped with SIGTERM, exit code $rc"
    [[ $rc == 0 ]] || { echo "load_test: FAIL: server exit code $rc after SIGTERM" >&2; fail=1; }
fi
if grep -qiE 'error|fatal|abort' "$WORK/server.log"; then
    echo "load_test: server log has errors:"; grep -iE 'error|fatal|abort' "$WORK/server.log" | head -n 10
fi

if [[ $fail == 0 ]]; then
    echo "load_test: PASS ($REQS requests, 0 failures in ${DURATION}s)"
else
    echo "load_test: FAIL" >&2
fi
exit $fail
