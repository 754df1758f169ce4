#!/usr/bin/env bash
# bench/rebuild_bench.sh — the restart benchmark of issue 8: N distinct buyers (default
# 10 M) rebuilt from the embedded database at start-up, with the time it takes and the
# memory the buyer table needs. See bench/README.md ("Restart with 10 million buyers").
#
#   bench/rebuild_bench.sh [-n N] [--keep-db DIR] [-o FILE] [--port P] [--threads N]
#                          [--bin PATH] [--seed S] [--timeout SECS] [--keep]
#
# 1. A database as a long sale leaves it: `flashsale serve` creates it (schema, journal
#    file), 1000 products 2001-3000 (stock and limit_per_user 10^9) go in through the admin
#    API, the server stops (SIGTERM), and bench/rebuild_bench.py bulk-inserts N CONFIRMED
#    orders of N distinct random 63-bit users, products Zipf(1). Setup, not the figure;
#    with --keep-db DIR the database stays in DIR and a later run with the same N reuses it.
# 2. Baseline: a server started on the same catalog with no orders, VmRSS once ready.
# 3. The figure: `flashsale serve` on the N orders: exec -> 200 from /healthz, the
#    "rebuilt ... in N ms" of its log, VmRSS / VmHWM once ready; then one purchase of a
#    user of the database (ACCEPTED: the limit is 10^9) and GET /users/{id}/orders must
#    list the old order and the new one; SIGTERM, exit code 0.
# Prints a markdown table (also to FILE with -o); exit code 1 if any check failed.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ORDERS=10000000
KEEP_DB=""
OUT=""
PORT=""
THREADS=2
BIN="$ROOT/build/release/flashsale"
SEED=""
READY_TIMEOUT=900
KEEP=0
usage() { sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; }
while [[ $# -gt 0 ]]; do
    case $1 in
        -n) ORDERS=$2; shift 2 ;;
        --keep-db) KEEP_DB=$2; shift 2 ;;
        -o) OUT=$2; shift 2 ;;
        --port) PORT=$2; shift 2 ;;
        --threads) THREADS=$2; shift 2 ;;
        --bin) BIN=$2; shift 2 ;;
        --seed) SEED=$2; shift 2 ;;
        --timeout) READY_TIMEOUT=$2; shift 2 ;;
        --keep) KEEP=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "rebuild_bench: unknown option $1" >&2; usage >&2; exit 2 ;;
    esac
done
[[ $ORDERS =~ ^[1-9][0-9]*$ ]] || { echo "rebuild_bench: -n needs a positive integer" >&2; exit 2; }
[[ -x $BIN ]] || { echo "rebuild_bench: no server binary at $BIN (build it first)" >&2; exit 2; }

# Process bookkeeping, cleanup trap, log/problem, stop_pid, vmrss_kib (nothing of the wrk
# part is used).
BENCH_NAME=rebuild_bench BENCH_TMP=flashsale-rebuild
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
HELPER=(python3 "$ROOT/bench/rebuild_bench.py")
TOKEN="bench-$RANDOM$RANDOM"
SEED_ARGS=(); [[ -z $SEED ]] || SEED_ARGS=(--seed "$SEED")

# Ports: --port P uses P, P+1, P+2 (one per server start, one server at a time).
# Sets SRV_PORT (not a $(...) subshell: the counter must advance).
PORT_NEXT=${PORT:-0}
next_port() {
    if [[ $PORT_NEXT == 0 ]]; then SRV_PORT="$(free_port)"; else SRV_PORT=$PORT_NEXT; PORT_NEXT=$((PORT_NEXT + 1)); fi
}

status_kib() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }   # status_kib PID VmHWM

# start_server NAME DB -> SRV_PID, SRV_PORT, SRV_LOG, SRV_T0_NS (exec), SRV_READY_S (exec ->
# 200 from /healthz). Own wait loop rather than lib.sh's wait_ready: a rebuild of 10 M orders
# takes longer than its 30 s, and 20 ms polls keep the measured time close to the real one.
# The server binds its port only after the rebuild, and meanwhile any client of the machine
# may get that port as its ephemeral source port (44000-44099 is inside Linux's default
# 32768-60999): on "Address already in use" the start is repeated on the next port.
start_server() {
    local name=$1 db=$2 attempt
    for attempt in 1 2 3; do
        start_server_once "$name" "$db" && return 0
        grep -q 'Address already in use' "$SRV_LOG" || return 1
        [[ $attempt == 3 ]] && return 1
        log "$name: port $SRV_PORT was taken meanwhile; starting again on another port"
        mv "$SRV_LOG" "$SRV_LOG.port-$SRV_PORT"
    done
}
start_server_once() {
    local name=$1 db=$2 dir="$WORK/$1" code now
    mkdir -p "$dir"
    next_port; SRV_LOG="$dir/server.log"
    SRV_T0_NS="$(date +%s%N)"; SRV_M0="$(machine_busy_ticks)"
    # cwd = $dir: the server's logs/ directory and .env lookup stay out of the repo.
    (cd "$dir" && exec "$BIN" serve --host 127.0.0.1 --port "$SRV_PORT" --database "sqlite:$db" \
        --admin-token "$TOKEN" --threads "$THREADS" --mock-products 0 --log-level info) \
        >"$SRV_LOG" 2>&1 &
    SRV_PID=$!
    PIDS+=("$SRV_PID")
    while :; do
        if ! kill -0 "$SRV_PID" 2>/dev/null; then
            wait "$SRV_PID" 2>/dev/null || true
            forget "$SRV_PID"
            log "$name: the server exited during start-up:"; tail -n 20 "$SRV_LOG" >&2; return 1
        fi
        code="$(curl -s --max-time 2 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$SRV_PORT/healthz" || true)"
        now="$(date +%s%N)"
        [[ $code == 200 ]] && break
        if (( (now - SRV_T0_NS) / 1000000000 > READY_TIMEOUT )); then
            log "$name: no 200 from /healthz after $READY_TIMEOUT s"; tail -n 20 "$SRV_LOG" >&2; return 1
        fi
        sleep 0.02
    done
    SRV_READY_S="$(awk -v a="$SRV_T0_NS" -v b="$now" 'BEGIN {printf "%.2f", (b - a) / 1e9}')"
    # CPU of the server itself during start-up, and what the rest of the machine used
    # meanwhile (this script's curl polls included): on a shared machine the start-up
    # time is only comparable with the other processes' share next to it.
    local ticks m1
    ticks="$(cpu_ticks "$SRV_PID")"; m1="$(machine_busy_ticks)"
    SRV_CPU_S="$(awk -v t="$ticks" -v hz="$CLK_TCK" 'BEGIN {printf "%.1f", t / hz}')"
    SRV_OTHER_CORES="$(awk -v m="$((m1 - SRV_M0))" -v t="$ticks" -v hz="$CLK_TCK" -v s="$SRV_READY_S" \
        'BEGIN {o = (m - t) / hz / s; if (o < 0) o = 0; printf "%.2f", o}')"
    log "$name: ready after $SRV_READY_S s (pid $SRV_PID, port $SRV_PORT)"
}

# make_catalog DB: the server creates DB and its journal, gets the 1000 products, stops.
make_catalog() {
    start_server "catalog-$(basename "$1")" "$1"
    python3 "$ROOT/bench/fs_admin.py" put --port "$SRV_PORT" --token "$TOKEN" --ids 2001-3000 \
        --stock 1000000000 --price 1 --limit 1000000000 >&2
    stop_pid "$SRV_PID" "catalog server"
}

# ---------------------------------------------------------------------------- 1. database
if [[ -n $KEEP_DB ]]; then
    mkdir -p "$KEEP_DB"
    DB="$(cd "$KEEP_DB" && pwd)/orders-$ORDERS.db"
else
    DB="$WORK/big/orders-$ORDERS.db"
    mkdir -p "$WORK/big"
fi
GEN_NOTE="reused $DB (generated by an earlier run)"
if [[ ! -f $DB || -f $DB.generating ]]; then
    # The marker stays if generation does not finish, and the next run starts over.
    rm -f "$DB" "$DB"-* "$DB".journal* "$DB".lock
    touch "$DB.generating"
    log "generating $ORDERS orders in $DB"
    make_catalog "$DB"
    GEN_NOTE="$("${HELPER[@]}" generate --db "$DB" -n "$ORDERS" "${SEED_ARGS[@]}")"
    rm -f "$DB.generating"
    log "$GEN_NOTE"
fi
STATS="$("${HELPER[@]}" stats --db "$DB")"
DB_ORDERS="$(kv "$STATS" orders)"; DB_BUYERS="$(kv "$STATS" buyers)"
DB_BYTES="$(du -cb "$DB" "$DB.journal" | tail -n 1 | cut -f 1)"
log "database: $STATS, $DB_BYTES bytes ($DB and its .journal)"
[[ $DB_ORDERS == "$ORDERS" ]] || problem "the database has $DB_ORDERS orders, not $ORDERS"
read -r PROBE_USER PROBE_PRODUCT PROBE_BEFORE < <("${HELPER[@]}" pick --db "$DB" "${SEED_ARGS[@]}")

# ---------------------------------------------------------------------------- 2. baseline
mkdir -p "$WORK/empty"
make_catalog "$WORK/empty/catalog.db"
start_server empty "$WORK/empty/catalog.db"
EMPTY_RSS_KIB="$(status_kib "$SRV_PID" VmRSS)"
log "empty database (1000 products, no orders): VmRSS $EMPTY_RSS_KIB KiB"
stop_pid "$SRV_PID" "baseline server"

# ---------------------------------------------------------------------------- 3. the restart
start_server restart "$DB"
READY_S=$SRV_READY_S; RESTART_CPU_S=$SRV_CPU_S; RESTART_OTHER=$SRV_OTHER_CORES
RSS_KIB="$(status_kib "$SRV_PID" VmRSS)"; HWM_KIB="$(status_kib "$SRV_PID" VmHWM)"
REBUILT_LINE="$(grep -m 1 'rebuilt from ' "$SRV_LOG" || true)"
REBUILD_MS="$(sed -n 's/.*rebuilt from .* in \([0-9]*\) ms:.*/\1/p' <<<"$REBUILT_LINE")"
HELD="$(sed -n 's/.* \([0-9]*\) held orders.*/\1/p' <<<"$REBUILT_LINE")"
log "log: ${REBUILT_LINE:-no 'rebuilt' line}"
log "ready: VmRSS $RSS_KIB KiB, VmHWM $HWM_KIB KiB"
[[ -n $REBUILD_MS ]] || { problem "no 'rebuilt from ... in N ms' line in $SRV_LOG"; REBUILD_MS="n/a"; }
# Before the rebuild: exec to the log line's time (local, ms) minus the rebuild itself, i.e.
# process start and SqliteDatabase::Open (the stock guard's sums over orders, products).
BEFORE_S="n/a"
if [[ $REBUILD_MS != n/a ]]; then
    line_ms="$(date -d "$(sed -n 's/^\[\([0-9-]* [0-9:.]*\)\].*/\1/p' <<<"$REBUILT_LINE")" +%s%3N)"
    BEFORE_S="$(awk -v l="$line_ms" -v r="$REBUILD_MS" -v t="$SRV_T0_NS" 'BEGIN {printf "%.1f", (l - r - t / 1e6) / 1000}')"
fi
[[ $HELD == "$DB_ORDERS" ]] || problem "the server rebuilt ${HELD:-?} held orders, the database has $DB_ORDERS"

# The rebuild is real: a buyer known only from the database buys again and sees both orders.
if VERIFY="$("${HELPER[@]}" verify --port "$SRV_PORT" --user "$PROBE_USER" \
        --product "$PROBE_PRODUCT" --expect "$((PROBE_BEFORE + 1))")"; then
    read -r PROBE_ORDER PROBE_LISTED <<<"$VERIFY"
    log "user $PROBE_USER bought product $PROBE_PRODUCT again: ACCEPTED ($PROBE_ORDER), $PROBE_LISTED orders listed"
else
    problem "user $PROBE_USER of the database: purchase + GET /users/$PROBE_USER/orders check failed"
    PROBE_ORDER=""
fi
stop_started="$(date +%s%N)"
stop_pid "$SRV_PID" "restarted server"
STOP_S="$(awk -v a="$stop_started" -v b="$(date +%s%N)" 'BEGIN {printf "%.1f", (b - a) / 1e9}')"
# A kept database goes back to the N orders it was generated with.
[[ -z $PROBE_ORDER ]] || "${HELPER[@]}" forget --db "$DB" --order "$PROBE_ORDER" >&2

# ---------------------------------------------------------------------------- report
mib() { awk -v k="$1" 'BEGIN {printf "%.0f", k / 1024}'; }
per_record() { awk -v k="$1" -v n="$DB_BUYERS" 'BEGIN {if (n > 0) printf "%.1f", k * 1024 / n; else print "n/a"}'; }
GIB_KIB=$((1024 * 1024))
fits="yes"; (( HWM_KIB < GIB_KIB )) || fits="NO"
[[ $fits == yes ]] || problem "VmHWM $HWM_KIB KiB is not under 1 GiB"
report() {
    echo "## Restart with $(printf "%'d" "$DB_BUYERS") buyers ($(date -u +%Y-%m-%d), git $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo none))"
    echo
    echo "| orders | distinct buyers | db size | start-up to ready (s) | rebuild (ms) | VmRSS / VmHWM (MiB) | bytes per buyer record (total / over empty) |"
    echo "|---:|---:|---:|---:|---:|---:|---:|"
    printf '| %s | %s | %s | %s | %s | %s / %s | %s / %s |\n' "$DB_ORDERS" "$DB_BUYERS" \
        "$(awk -v b="$DB_BYTES" 'BEGIN {if (b >= 2^30) printf "%.2f GiB", b / 2^30; else printf "%.1f MiB", b / 2^20}')" "$READY_S" "$REBUILD_MS" \
        "$(mib "$RSS_KIB")" "$(mib "$HWM_KIB")" "$(per_record "$RSS_KIB")" \
        "$(per_record "$((RSS_KIB - EMPTY_RSS_KIB))")"
    echo
    echo "- under 1 GiB resident (VmHWM): $fits; the same server on the empty catalog: VmRSS $(mib "$EMPTY_RSS_KIB") MiB"
    echo "- start-up to ready: exec of \`flashsale serve\` to the first 200 from /healthz; rebuild: the server's own \"rebuilt ... in N ms\" (products + every held order into the buyer table); before the rebuild: $BEFORE_S s (process start, opening the database: the stock guard's sums over orders)"
    echo "- during start-up the server used $RESTART_CPU_S s of CPU and other processes $RESTART_OTHER of the $(nproc) cores; SIGTERM to exit took $STOP_S s"
    echo "- check: user $PROBE_USER of the database bought product $PROBE_PRODUCT again: ${PROBE_ORDER:+ACCEPTED, }${PROBE_LISTED:-?} orders listed; SIGTERM exit codes checked"
    echo "- setup: $GEN_NOTE"
    echo "- machine: $(nproc) cores ($(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)), $(awk '/^MemTotal/ {printf "%.0f GiB", $2 / 2^20}' /proc/meminfo) RAM, --threads $THREADS"
    if [[ ${#PROBLEMS[@]} -gt 0 ]]; then
        echo; echo "Problems:"; printf -- '- %s\n' "${PROBLEMS[@]}"
    fi
}
report
[[ -z $OUT ]] || report >"$OUT"
[[ ${#PROBLEMS[@]} -eq 0 ]]
