#!/usr/bin/env bash
# flashsale order-lifecycle benchmark (issue 9's "Benchmark").  See bench/README.md.
#
#   bench/lifecycle_bench.sh [-n ORDERS] [--window SECS] [-d SECS] [-r PAIRS] [options]
#
# In one run, on this machine, over loopback only:
#   close       embedded `flashsale serve`: one product of stock N (100,000), limit 1,
#               payment_window_s W (10); N purchases from distinct users as fast as wrk
#               places them, none paid; then wait until every order is EXPIRED and the
#               stock is back to N. From the database (closed_at - pay_by of every EXPIRED
#               order): close lag p50/p99/max, the closer's rate (EXPIRED orders / (last
#               closed_at - first pay_by)) and its busiest wall-clock second.
#   backlog     the closer's capacity, embedded: N orders with payment_window_s 30 placed and
#               landed, the server frozen (SIGSTOP) until they are all past pay_by, then
#               resumed (SIGCONT): every order is due at once; the rate at which the closer
#               expires them (resume -> last closed_at) and its busiest second.
#   close-dist  the same as close in distributed mode (Redis + Kafka + PostgreSQL from scripts/servers,
#               our own port set; `flashsale serve` + `flashsale consume`, whose closer
#               expires the orders); lag and rate from PostgreSQL.
#   ab          the in-stock purchase path without (A: payment_window_s null) and with (B:
#               payment_window_s 600) the payment step: 1000 products of stock and limit
#               10^9, Zipf products, random 63-bit users (run_bench.sh's (b)); A, B, A, B, ...
#               each on a fresh embedded server; medians and B / A.
#   ab-dist     the same against one distributed serve + consume (fresh products per run).
# Checks (exit 1 when one fails): every order of close/close-dist ACCEPTED, placed with
# pay_by, EXPIRED in the end, none closed before its pay_by, units returned == N and the
# product's remaining back to N; every A/B response ACCEPTED, B's orders carry pay_by and
# A's do not. Targets (reported, not a failure): close lag p99 <= 1 s; B >= 0.90 x A.
set -euo pipefail

usage() {
    cat <<'EOF'
usage: bench/lifecycle_bench.sh [options]
  -n, --orders N          orders placed and expired by close / close-dist   (default 100000)
      --window SECS       payment_window_s of close / close-dist            (default 10)
      --backlog-window S  payment_window_s of backlog (> placing + landing time) (default 30)
      --close-timeout S   after the last pay_by, wait up to S seconds for every order to be
                          EXPIRED and its units back                        (default 120)
  -d, --duration SECS     seconds per A/B wrk run                           (default 10)
  -r, --runs PAIRS        A/B pairs; medians of each variant                (default 4)
      --order ORDER       abba: A B B A A B B A ... (a steady drift of the machine's
                          other load hits both alike); abab: A B A B ...    (default abba)
  -t, --threads N         flashsale --threads                               (default 2)
  -c, --connections N     wrk connections                                   (default 256)
      --wrk-threads N     wrk -t                                            (default 2)
  -w, --warmup SECS       wrk warm-up before each A/B run, 0 = off          (default 1)
      --wait-idle SECS    before each scenario wait up to SECS for an idle machine (default 0)
      --only LIST         subset of close,backlog,ab,close-dist,ab-dist
                                                       (default close,backlog,ab,close-dist)
      --bin PATH          flashsale binary                    (default build/release/flashsale)
  -o, --output FILE       also write the final markdown report to FILE
      --keep              keep the work directory
  -h, --help
Distributed server set (environment, as scripts/servers): FLASHSALE_VAR (default
/tmp/fs-lifecycle-bench), REDIS_PORT 44379, PG_PORT 44432, KAFKA_PORT 44092,
KAFKA_CONTROLLER_PORT 44093; started here when not running, and then stopped at the end.
EOF
}

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BENCH_NAME=lifecycle_bench
ORDERS=100000; WINDOW=10; CLOSE_TIMEOUT=120; DURATION=10; RUNS=4; AB_ORDER=abba; THREADS=2; CONNS=256
WRK_THREADS=2; WARMUP=1; WAIT_IDLE=0; ONLY="close,backlog,ab,close-dist"; BACKLOG_WINDOW=30
BIN="$ROOT/build/release/flashsale"; OUTPUT=""; KEEP=0; COUNT=status
while [[ $# -gt 0 ]]; do
    case "$1" in
        -n|--orders) ORDERS="$2"; shift 2 ;;
        --window) WINDOW="$2"; shift 2 ;;
        --close-timeout) CLOSE_TIMEOUT="$2"; shift 2 ;;
        --backlog-window) BACKLOG_WINDOW="$2"; shift 2 ;;
        -d|--duration) DURATION="$2"; shift 2 ;;
        -r|--runs) RUNS="$2"; shift 2 ;;
        --order) AB_ORDER="$2"; shift 2 ;;
        -t|--threads) THREADS="$2"; shift 2 ;;
        -c|--connections) CONNS="$2"; shift 2 ;;
        --wrk-threads) WRK_THREADS="$2"; shift 2 ;;
        -w|--warmup) WARMUP="$2"; shift 2 ;;
        --wait-idle) WAIT_IDLE="$2"; shift 2 ;;
        --only) ONLY="$2"; shift 2 ;;
        --bin) BIN="$2"; shift 2 ;;
        -o|--output) OUTPUT="$2"; shift 2 ;;
        --keep) KEEP=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "$BENCH_NAME: unknown option: $1" >&2; usage >&2; exit 2 ;;
    esac
done
for v in ORDERS WINDOW BACKLOG_WINDOW CLOSE_TIMEOUT DURATION RUNS THREADS CONNS WRK_THREADS WARMUP WAIT_IDLE; do
    [[ "${!v}" =~ ^[0-9]+$ ]] || { echo "$BENCH_NAME: $v must be a non-negative integer" >&2; exit 2; }
done
[[ $ORDERS -ge 1 && $WINDOW -ge 1 && $RUNS -ge 1 && $CONNS -ge $WRK_THREADS ]] \
    || { echo "$BENCH_NAME: -n, --window and -r must be >= 1, -c >= --wrk-threads" >&2; exit 2; }
[[ "$AB_ORDER" =~ ^(abba|abab)$ ]] || { echo "$BENCH_NAME: --order must be abba or abab" >&2; exit 2; }
want() { [[ ",$ONLY," == *",$1,"* ]]; }
pair() { if [[ $AB_ORDER == abba && $(($1 % 2)) == 0 ]]; then echo B A; else echo A B; fi; }   # pair RUN
for tool in wrk curl python3; do
    command -v "$tool" >/dev/null || { echo "$BENCH_NAME: $tool not found" >&2; exit 2; }
done
if want close-dist || want ab-dist; then
    for tool in psql redis-cli; do
        command -v "$tool" >/dev/null || { echo "$BENCH_NAME: $tool not found" >&2; exit 2; }
    done
fi
[[ -x "$BIN" ]] || { echo "$BENCH_NAME: flashsale binary not found: $BIN (build it first)" >&2; exit 2; }
BIN="$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")"
PURCHASE_LUA="$ROOT/scripts/wrk/purchase.lua"
CONN_LIST=("$CONNS")
PIN_SERVER=(); PIN_WRK=()
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
NOFILE="$(ulimit -n)"
STATS="$ROOT/bench/lifecycle_stats.py"
ADMIN="$ROOT/bench/fs_admin.py"

# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

FS_TOKEN="bench-$RANDOM$RANDOM"
git_rev="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo none)"
fs_version="$("$BIN" --version 2>/dev/null | head -n 1 || echo '?')"
cpu_model="$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)"
log "work directory: $WORK; flashsale $fs_version git $git_rev"

metric() {   # metric URL NAME_REGEX -> sum of matching samples in URL/metrics
    curl -s "$1/metrics" | awk -v re="$2" '$0 !~ /^#/ && $1 ~ re {s += $NF} END {printf "%.0f\n", s}'
}
remaining() {   # remaining URL PRODUCT -> GET /products/{id}'s "remaining"
    curl -s "$1/products/$2" | python3 -c 'import json,sys; print(json.load(sys.stdin)["remaining"])' 2>/dev/null || echo "?"
}
load1() { cut -d ' ' -f 1 /proc/loadavg; }
# The expired counter seen from outside every 20 ms (lifecycle_stats.py watch), until stopped.
WATCH_PID=""
start_watch() {   # start_watch FILE
    python3 "$STATS" watch --url "$FS_URL" --until 1000000000000 --out "$1" --timeout 3600 \
        2>>"$WORK/stats.err" &
    WATCH_PID=$!
    PIDS+=("$WATCH_PID")
}
stop_watch() {
    kill -TERM "$WATCH_PID" 2>/dev/null || true
    wait "$WATCH_PID" 2>/dev/null || true
    forget "$WATCH_PID"
}

# ---------------------------------------------------------------------------- servers
FS_PID=""; FS_URL=""; FS_DB=""; FS_LOG=""
start_embedded() {   # start_embedded NAME
    local dir="$WORK/$1" port
    mkdir -p "$dir"
    port="$(free_port)"
    FS_DB="$dir/flashsale.db"; FS_LOG="$dir/server.log"; FS_URL="http://127.0.0.1:$port"
    # cwd = $dir: the server's logs/ directory and .env lookup stay out of the repo.
    (cd "$dir" && exec "$BIN" serve --host 127.0.0.1 --port "$port" --database "sqlite:$FS_DB" \
        --mock-products 0 --admin-token "$FS_TOKEN" --threads "$THREADS" --log-level warn) >"$FS_LOG" 2>&1 &
    FS_PID=$!
    PIDS+=("$FS_PID")
    wait_ready "$FS_PID" "$FS_URL/healthz" "$FS_LOG"
    log "flashsale embedded ($1) ready: $FS_URL (pid $FS_PID, --threads $THREADS)"
}

export FLASHSALE_VAR="${FLASHSALE_VAR:-/tmp/fs-lifecycle-bench}" REDIS_PORT="${REDIS_PORT:-44379}"
export PG_PORT="${PG_PORT:-44432}" KAFKA_PORT="${KAFKA_PORT:-44092}"
export KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-44093}"
REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0"
KAFKA="127.0.0.1:$KAFKA_PORT"
PG_URL="postgresql://flashsale:flashsale@127.0.0.1:$PG_PORT/flashsale"
PREFIX="lifebench.$(date +%s)."   # fresh topics: nothing of an earlier run is consumed again
STARTED_SERVERS=0
bench_cleanup_hook() {
    if [[ $STARTED_SERVERS == 1 ]]; then
        "$ROOT/scripts/servers/all.sh" stop >"$WORK/servers-stop.log" 2>&1 || true
    fi
}
ensure_servers() {
    "$ROOT/scripts/servers/all.sh" status >/dev/null 2>&1 && return 0
    log "starting the server set (FLASHSALE_VAR=$FLASHSALE_VAR, Redis $REDIS_PORT, PostgreSQL $PG_PORT, Kafka $KAFKA_PORT)"
    STARTED_SERVERS=1
    "$ROOT/scripts/servers/all.sh" start >"$WORK/servers-start.log" 2>&1 \
        || { cat "$WORK/servers-start.log" >&2; exit 1; }
}
CONSUME_PID=""; CONSUME_LOG=""
start_distributed() {   # start_distributed NAME: serve + consume on the server set
    local dir="$WORK/$1" port
    mkdir -p "$dir"
    port="$(free_port)"
    FS_DB=""; FS_LOG="$dir/server.log"; FS_URL="http://127.0.0.1:$port"
    (cd "$dir" && exec "$BIN" serve --host 127.0.0.1 --port "$port" --redis "$REDIS_URL" \
        --kafka "$KAFKA" --database "$PG_URL" --topic-prefix "$PREFIX" --mock-products 0 \
        --admin-token "$FS_TOKEN" --threads "$THREADS" --log-level warn) >"$FS_LOG" 2>&1 &
    FS_PID=$!
    PIDS+=("$FS_PID")
    wait_ready "$FS_PID" "$FS_URL/healthz" "$FS_LOG"
    mkdir -p "$dir/consume"
    CONSUME_LOG="$dir/consume.log"
    # info: the closer logs what it closes; the log is searched for it below.
    (cd "$dir/consume" && exec "$BIN" consume --redis "$REDIS_URL" --kafka "$KAFKA" \
        --database "$PG_URL" --topic-prefix "$PREFIX" --log-level info) >"$CONSUME_LOG" 2>&1 &
    CONSUME_PID=$!
    PIDS+=("$CONSUME_PID")
    sleep 1
    kill -0 "$CONSUME_PID" 2>/dev/null || { problem "$1: flashsale consume exited at start-up: $(tail -n 3 "$CONSUME_LOG")"; return 1; }
    log "flashsale distributed ($1) ready: serve $FS_URL (pid $FS_PID), consume pid $CONSUME_PID, topics $PREFIX*"
}

# ---------------------------------------------------------------------------- placing
# place_orders URL PRODUCT N: wrk (users=distinct, one product) in runs of 3 s until N
# ACCEPTED or the product is sold out (20 runs at most). Sets PLACE_ACC, PLACE_WALL_S,
# PLACE_RUNS, PLACE_NOTE.
PLACE_ACC=0; PLACE_WALL_S=0; PLACE_RUNS=0
place_orders() {
    local url=$1 product=$2 n=$3 t0 t1 left
    PLACE_ACC=0; PLACE_RUNS=0
    t0="$(date +%s.%N)"
    while [[ $PLACE_ACC -lt $n && $PLACE_RUNS -lt 20 ]]; do
        PLACE_RUNS=$((PLACE_RUNS + 1))
        run_wrk place "$url" "$CONNS" 3 "" "$FS_PID" -- pid="$product-$product" users=distinct \
            user_base=$((PLACE_RUNS * 10000000000)) count=status
        PLACE_ACC=$((PLACE_ACC + $(kv0 "$WRK_LINE" status_ACCEPTED)))
        left="$(remaining "$url" "$product")"
        log "placing: $PLACE_ACC ACCEPTED counted by wrk so far, remaining $left"
        [[ "$left" != 0 ]] || break
    done
    t1="$(date +%s.%N)"
    PLACE_WALL_S="$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.1f", b - a}')"
}

# wait_expired WHAT COUNT_CMD... : polls "count" until every order of the product (at least
# ORDERS: more when units expired while placing went on and were sold again) is EXPIRED, for at most
# CLOSE_TIMEOUT s past the last pay_by (PLACE_END + WINDOW). Sets WAIT_LINE.
# With NO_CLOSER_LOG set (distributed), gives up early, returning 2, when no order was
# expired 15 s after the last pay_by and that log never mentions a closer: a
# `flashsale consume` without the closer (before it was merged) expires nothing.
WAIT_LINE=""; NO_CLOSER_LOG=""
wait_expired() {
    local what=$1 deadline e n now give_up; shift
    now="$(date +%s)"
    deadline=$((now + WINDOW + CLOSE_TIMEOUT)); give_up=$((now + WINDOW + 15))
    while :; do
        WAIT_LINE="$("$@" 2>>"$WORK/stats.err" || echo "total=?")"
        e="$(kv0 "$WAIT_LINE" EXPIRED)"; n="$(kv0 "$WAIT_LINE" total)"
        [[ $n -lt $ORDERS || $e -lt $n ]] || return 0
        if [[ -n "$NO_CLOSER_LOG" && $e == 0 && $(date +%s) -ge $give_up ]] \
            && ! grep -qi 'closer' "$NO_CLOSER_LOG"; then
            log "$what: nothing expired $((WINDOW + 15)) s after placing and no closer in $NO_CLOSER_LOG: $WAIT_LINE"
            return 2
        fi
        if [[ $(date +%s) -ge $deadline ]]; then
            problem "$what: not every order EXPIRED $CLOSE_TIMEOUT s after the last pay_by: $WAIT_LINE"
            return 1
        fi
        sleep 1
    done
}

# ---------------------------------------------------------------------------- close scenarios
declare -A CLOSE   # CLOSE[mode] = LIFESTATS line + extra fields
CLOSE_ORDER=(); CLOSE_NOTES=()

# The product's orders: ORDERS, or more when placing outlasted the window (units of the first
# orders expired, came back and were sold again: the table says how many). wrk counts every
# ACCEPTED it saw; requests in flight when a wrk run stopped are answered but not counted.
check_close() {   # check_close WHAT STATS_LINE REMAINING UNITS_RETURNED
    local what=$1 line=$2 left=$3 returned=$4 n
    n="$(kv0 "$line" orders)"
    [[ $n -ge $ORDERS ]] || problem "$what: $n orders of the product, expected at least $ORDERS"
    [[ $n -ge $PLACE_ACC && $n -le $((PLACE_ACC + PLACE_RUNS * CONNS)) ]] \
        || problem "$what: $n orders in the database, wrk counted $PLACE_ACC ACCEPTED (+ at most $((PLACE_RUNS * CONNS)) in flight)"
    [[ "$(kv0 "$line" expired)" == "$n" ]] || problem "$what: $(kv0 "$line" expired) of $n orders EXPIRED"
    [[ "$(kv0 "$line" missing_pay_by)" == 0 ]] || problem "$what: $(kv "$line" missing_pay_by) orders without pay_by"
    [[ "$(kv0 "$line" early)" == 0 ]] || problem "$what: $(kv "$line" early) orders closed before their pay_by"
    [[ "$left" == "$ORDERS" ]] || problem "$what: remaining $left after the expiry, expected $ORDERS (units not all returned)"
    [[ "$returned" == "$n" || "$returned" == "n/a" ]] || problem "$what: flashsale_units_returned_total $returned, expected $n (one unit per order)"
}

if want close; then
    busy_check close
    start_embedded close
    PRODUCT=1
    python3 "$ADMIN" put --port "${FS_URL##*:}" --token "$FS_TOKEN" --ids "$PRODUCT" \
        --stock "$ORDERS" --price 1 --limit 1 --window "$WINDOW" >&2
    l0="$(load1)"
    place_orders "$FS_URL" "$PRODUCT" "$ORDERS"
    start_watch "$WORK/close-timeline.txt"
    c0="$(cpu_ticks "$FS_PID")"; w0="$(date +%s.%N)"
    wait_expired close python3 "$STATS" count --sqlite "$FS_DB" --product "$PRODUCT" || true
    # The outbox gives the units back right after the expiry: wait for them too (10 s).
    for _ in $(seq 1 100); do [[ "$(remaining "$FS_URL" "$PRODUCT")" == "$ORDERS" ]] && break; sleep 0.1; done
    c1="$(cpu_ticks "$FS_PID")"; w1="$(date +%s.%N)"
    sleep 0.2; stop_watch
    left="$(remaining "$FS_URL" "$PRODUCT")"
    returned="$(metric "$FS_URL" '^flashsale_units_returned_total$')"
    closed="$(metric "$FS_URL" '^flashsale_orders_closed_total[{].*reason="expired"')"
    hsum="$(curl -s "$FS_URL/metrics" | awk '$1 == "flashsale_close_lag_seconds_sum" {print $2}')"
    hcnt="$(curl -s "$FS_URL/metrics" | awk '$1 == "flashsale_close_lag_seconds_count" {print $2}')"
    stats="$(python3 "$STATS" close --sqlite "$FS_DB" --product "$PRODUCT" --first "$ORDERS" \
        --timeline "$WORK/close-timeline.txt")"
    log "close: $stats"
    cpu="$(awk -v c="$((c1 - c0))" -v hz="$CLK_TCK" -v a="$w0" -v b="$w1" 'BEGIN {printf "%.2f", c/hz/(b-a)}')"
    CLOSE[embedded]="$stats remaining=$left units_returned=$returned closed_metric=$closed place_wall_s=$PLACE_WALL_S place_runs=$PLACE_RUNS load=$l0/$(load1) cpu_wait=$cpu hist_mean_ms=$(awk -v s="${hsum:-0}" -v n="${hcnt:-0}" 'BEGIN {if (n > 0) printf "%.0f", s/n*1000; else print "n/a"}') hist_count=${hcnt:-n/a}"
    CLOSE_ORDER+=(embedded)
    check_close close "$stats" "$left" "$returned"
    [[ "$closed" == "$(kv0 "$stats" orders)" ]] || problem "close: flashsale_orders_closed_total{reason=\"expired\"} $closed, expected $(kv0 "$stats" orders)"
    stop_pid "$FS_PID" "flashsale (close)"
fi

BACKLOG=""
if want backlog; then
    busy_check backlog
    start_embedded backlog
    PRODUCT=1
    python3 "$ADMIN" put --port "${FS_URL##*:}" --token "$FS_TOKEN" --ids "$PRODUCT" \
        --stock "$ORDERS" --price 1 --limit 1 --window "$BACKLOG_WINDOW" >&2
    l0="$(load1)"
    place_orders "$FS_URL" "$PRODUCT" "$ORDERS"
    placed_end="$(date +%s)"
    for _ in $(seq 1 600); do   # every order settled (CONFIRMED) before the freeze
        line="$(python3 "$STATS" count --sqlite "$FS_DB" --product "$PRODUCT" 2>>"$WORK/stats.err" || echo total=0)"
        [[ "$(kv0 "$line" CONFIRMED)" -lt $PLACE_ACC ]] || break
        sleep 0.2
    done
    log "backlog: $line; freezing the server until every pay_by has passed"
    [[ "$(kv0 "$line" EXPIRED)" == 0 ]] || problem "backlog: orders expired before the freeze ($line): raise --backlog-window"
    kill -STOP "$FS_PID"
    while [[ $(date +%s) -le $((placed_end + BACKLOG_WINDOW + 1)) ]]; do sleep 0.5; done
    resumed_ms="$(date +%s%3N)"
    kill -CONT "$FS_PID"
    start_watch "$WORK/backlog-timeline.txt"
    WINDOW=$BACKLOG_WINDOW wait_expired backlog python3 "$STATS" count --sqlite "$FS_DB" --product "$PRODUCT" || true
    for _ in $(seq 1 100); do [[ "$(remaining "$FS_URL" "$PRODUCT")" == "$ORDERS" ]] && break; sleep 0.1; done
    sleep 0.2; stop_watch
    left="$(remaining "$FS_URL" "$PRODUCT")"
    returned="$(metric "$FS_URL" '^flashsale_units_returned_total$')"
    stats="$(python3 "$STATS" close --sqlite "$FS_DB" --product "$PRODUCT" --since "$resumed_ms" \
        --timeline "$WORK/backlog-timeline.txt")"
    log "backlog: $stats"
    BACKLOG="$stats remaining=$left units_returned=$returned load=$l0/$(load1)"
    check_close backlog "$stats" "$left" "$returned"
    stop_pid "$FS_PID" "flashsale (backlog)"
fi

if want close-dist; then
    busy_check close-dist
    ensure_servers
    start_distributed close-dist
    PRODUCT="$(date +%s)"   # a product id of its own: earlier runs' orders stay out of the figures
    python3 "$ADMIN" put --port "${FS_URL##*:}" --token "$FS_TOKEN" --ids "$PRODUCT" \
        --stock "$ORDERS" --price 1 --limit 1 --window "$WINDOW" >&2
    l0="$(load1)"
    place_orders "$FS_URL" "$PRODUCT" "$ORDERS"
    # Every order lands in PostgreSQL first (consume), CONFIRMED or already EXPIRED.
    landed=0
    for _ in $(seq 1 600); do
        line="$(python3 "$STATS" count --pg "$PG_URL" --product "$PRODUCT" 2>>"$WORK/stats.err" || echo total=0)"
        landed="$(kv0 "$line" total)"
        [[ $landed -lt $PLACE_ACC || $landed -lt $ORDERS ]] || break
        sleep 0.2
    done
    log "close-dist: in PostgreSQL: $line"
    [[ $landed -ge $ORDERS && $landed -ge $PLACE_ACC ]] || problem "close-dist: $landed orders in PostgreSQL, expected at least $ORDERS and the $PLACE_ACC ACCEPTED wrk counted"
    c0="$(cpu_ticks "$CONSUME_PID")"; w0="$(date +%s.%N)"
    rc=0
    NO_CLOSER_LOG="$CONSUME_LOG" wait_expired close-dist python3 "$STATS" count --pg "$PG_URL" --product "$PRODUCT" || rc=$?
    if [[ $rc != 2 ]]; then   # the units come back right after the expiry (10 s at most)
        for _ in $(seq 1 100); do [[ "$(remaining "$FS_URL" "$PRODUCT")" == "$ORDERS" ]] && break; sleep 0.1; done
    fi
    c1="$(cpu_ticks "$CONSUME_PID")"; w1="$(date +%s.%N)"
    left="$(remaining "$FS_URL" "$PRODUCT")"
    stats="$(python3 "$STATS" close --pg "$PG_URL" --product "$PRODUCT" --first "$ORDERS")"
    log "close-dist: $stats"
    if [[ $rc == 2 ]]; then
        CLOSE_NOTES+=("close-dist: **not measured**: no order was expired $((WINDOW + 15)) s after placing and \`flashsale consume\` logged no closer: this consume has no closer yet (the distributed close lag needs it); placing, landing in PostgreSQL and pay_by were checked")
    fi
    cpu="$(awk -v c="$((c1 - c0))" -v hz="$CLK_TCK" -v a="$w0" -v b="$w1" 'BEGIN {printf "%.2f", c/hz/(b-a)}')"
    CLOSE[distributed]="$stats remaining=$left units_returned=n/a place_wall_s=$PLACE_WALL_S place_runs=$PLACE_RUNS load=$l0/$(load1) cpu_wait=$cpu"
    CLOSE_ORDER+=(distributed)
    if [[ $rc == 2 ]]; then   # without a closer: only what placing must have done
        [[ "$(kv0 "$stats" missing_pay_by)" == 0 ]] || problem "close-dist: $(kv "$stats" missing_pay_by) orders without pay_by"
        [[ "$(kv0 "$stats" orders)" -ge $ORDERS ]] || problem "close-dist: $(kv0 "$stats" orders) orders of the product, expected at least $ORDERS"
    else
        check_close close-dist "$stats" "$left" n/a
    fi
    stop_pid "$FS_PID" "flashsale serve (close-dist)"
    stop_pid "$CONSUME_PID" "flashsale consume (close-dist)"
fi

# ---------------------------------------------------------------------------- A/B
# AB_RPS[mode,A|B] = the rates of the runs, in order; AB_SEQ[mode] = the run order.
declare -A AB_RPS AB_P99 AB_SEQ
AB_MODES=(); AB_NOTES=()
REAL_ARGS=(products=zipf users=random63 count=status)

ab_run() {   # ab_run MODE VARIANT PID_RANGE: warm-up + one measured run; appends the rate
    local mode=$1 v=$2 range=$3
    if [[ $WARMUP -gt 0 ]]; then
        run_wrk "$mode-$v-warmup" "$FS_URL" "$CONNS" "$WARMUP" ACCEPTED "$(ab_pids)" -- pid="$range" "${REAL_ARGS[@]}"
    fi
    run_wrk "$mode-$v" "$FS_URL" "$CONNS" "$DURATION" ACCEPTED "$(ab_pids)" -- pid="$range" "${REAL_ARGS[@]}"
    AB_RPS[$mode,$v]+="$(kv "$WRK_LINE" rps) "
    AB_P99[$mode,$v]+="$(kv "$WRK_LINE" p99_ms) "
    AB_SEQ[$mode]+="$v$(awk -v x="$(kv "$WRK_LINE" rps)" 'BEGIN {printf "%.0f", x}') "
}
ab_pids() { echo "$FS_PID"; [[ -z "$CONSUME_PID" ]] || echo "$CONSUME_PID"; }
window_arg() { [[ $1 == A ]] || echo "--window=600"; }

if want ab; then
    busy_check ab
    AB_MODES+=(embedded)
    CONSUME_PID=""
    for ((r = 1; r <= RUNS; r++)); do
        for v in $(pair "$r"); do
            start_embedded "ab-$v$r"
            # shellcheck disable=SC2046
            python3 "$ADMIN" put --port "${FS_URL##*:}" --token "$FS_TOKEN" --ids 2001-3000 \
                --stock 1000000000 --price 1 --limit 1000000000 $(window_arg $v) >&2
            ab_run embedded "$v" 2001-3000
            stop_pid "$FS_PID" "flashsale (ab $v$r)"
            # B's orders carry pay_by, A's do not (the step really ran, or really did not).
            line="$(python3 -c 'import sqlite3,sys; d=sqlite3.connect(sys.argv[1]); print(*d.execute("SELECT count(*), count(pay_by) FROM orders").fetchone())' "$FS_DB")"
            read -r n nb <<<"$line"
            if [[ $v == A && $nb != 0 ]] || [[ $v == B && $nb != "$n" ]] || [[ $n == 0 ]]; then
                problem "ab $v$r: $n orders, $nb with pay_by"
            fi
            AB_NOTES+=("embedded $v$r: $n orders in the database, $nb with pay_by")
        done
    done
fi

if want ab-dist; then
    busy_check ab-dist
    ensure_servers
    AB_MODES+=(distributed)
    start_distributed ab-dist
    base="$(( $(date +%s) % 100000 * 10000 + 10000000 ))"   # product ids of this run only
    for ((r = 1; r <= RUNS; r++)); do
        for v in $(pair "$r"); do
            if [[ $v == A ]]; then lo=$((base + 2 * r * 1000)); else lo=$((base + (2 * r + 1) * 1000)); fi
            hi=$((lo + 999))
            # shellcheck disable=SC2046
            python3 "$ADMIN" put --port "${FS_URL##*:}" --token "$FS_TOKEN" --ids "$lo-$hi" \
                --stock 1000000000 --price 1 --limit 1000000000 $(window_arg $v) >&2
            ab_run distributed "$v" "$lo-$hi"
        done
    done
    stop_pid "$FS_PID" "flashsale serve (ab-dist)"
    stop_pid "$CONSUME_PID" "flashsale consume (ab-dist)"
    CONSUME_PID=""
fi

# ---------------------------------------------------------------------------- report
fmt0() { awk -v x="$1" 'BEGIN {if (x == "" || x == "nan") print "n/a"; else printf "%.0f", x}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (a != "" && a != "nan" && b + 0 > 0) printf "%.3f", a/b; else print "n/a"}'; }
pair_ratios() {   # "A1 B2 B3 A4 ..." -> "0.500 1.333 ... (median M)"
    awk '{ n = 0
        for (i = 1; i + 1 <= NF; i += 2) {
            x = substr($i, 2) + 0; y = substr($(i + 1), 2) + 0
            if (substr($i, 1, 1) == "A") { a = x; b = y } else { a = y; b = x }
            if (a > 0) r[++n] = b / a
        }
        for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (r[j] < r[i]) { t = r[i]; r[i] = r[j]; r[j] = t }
        out = ""; for (i = 1; i <= n; i++) out = out sprintf("%.3f ", r[i])
        m = (n == 0) ? "n/a" : (n % 2 ? sprintf("%.3f", r[(n + 1) / 2]) : sprintf("%.3f", (r[n / 2] + r[n / 2 + 1]) / 2))
        printf "%s(sorted; median %s)", out, m }' <<<"$1"
}
REPORT="$WORK/report.md"
{
    echo "### flashsale order-lifecycle benchmark ($(date -u +%Y-%m-%dT%H:%M:%SZ))"
    echo
    echo "Machine: ${cpu_model}, $(nproc) cores, Linux $(uname -r), loopback, not pinned. flashsale" \
         "${fs_version} (git ${git_rev}) \`--threads $THREADS\`; wrk \`-t$WRK_THREADS -c$CONNS\`" \
         "with scripts/wrk/purchase.lua."
    if [[ ${#CLOSE_ORDER[@]} -gt 0 ]]; then
        echo
        echo "**Close lag** ($ORDERS orders of one product, limit 1, payment_window_s $WINDOW, none paid;" \
             "lag = closed_at − pay_by of every EXPIRED order, read from the database):"
        echo
        echo "| mode | placing: first N orders (all orders; wrk wall time) | orders / EXPIRED | lag p50 (ms) | lag p99 (ms) | lag max (ms) | observed lag p50 / p99 / max (ms) | closer rate (orders/s, first pay_by → last closed_at) | busiest second | remaining after | load 1-min before/after |"
        echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        for m in "${CLOSE_ORDER[@]}"; do
            s="${CLOSE[$m]}"
            printf '| %s | %s s (%s s; wrk %s s, %s runs) | %s | %s | %s | %s | %s | %s over %s s | %s | %s | %s |\n' "$m" \
                "$(kv "$s" placed_first_s)" "$(kv "$s" placed_s)" "$(kv "$s" place_wall_s)" "$(kv "$s" place_runs)" "$(kv0 "$s" orders) / $(kv0 "$s" expired)" \
                "$(kv "$s" lag_p50_ms)" "$(kv "$s" lag_p99_ms)" "$(kv "$s" lag_max_ms)" \
                "$(kv "$s" obs_lag_p50_ms) / $(kv "$s" obs_lag_p99_ms) / $(kv "$s" obs_lag_max_ms)" \
                "$(kv "$s" rate)" "$(kv "$s" expiry_period_s)" "$(kv "$s" peak_per_s)" "$(kv "$s" remaining)" "$(kv "$s" load)"
        done
        echo
        echo "lag = closed_at − pay_by: closed_at is the closer's decision time (the start of its" \
             "pass). Observed lag: the k-th order by pay_by counts as closed at the first 20 ms poll" \
             "of /metrics where flashsale_orders_closed_total{reason=\"expired\"} ≥ k (counted once" \
             "its unit is back in the stock store): an upper bound, embedded only (consume has no /metrics)."
        echo
        for m in "${CLOSE_ORDER[@]}"; do echo "- $m: \`${CLOSE[$m]}\`"; done
        for n in "${CLOSE_NOTES[@]}"; do echo "- $n"; done
    fi
    if [[ -n "$BACKLOG" ]]; then
        echo
        echo "**Closer capacity, embedded** ($(kv0 "$BACKLOG" orders) orders, payment_window_s" \
             "$BACKLOG_WINDOW, placed and settled, the server frozen (SIGSTOP) until every pay_by had" \
             "passed, then resumed: all due at once): **$(kv "$BACKLOG" obs_drain_rate) orders/s**" \
             "seen from outside (resume → the expired counter at every order: $(kv "$BACKLOG" obs_drain_s) s);" \
             "by closed_at (the pass's start time): $(kv "$BACKLOG" drain_rate) orders/s in $(kv "$BACKLOG" drain_s) s;" \
             "remaining after: $(kv "$BACKLOG" remaining)."
        echo
        echo "- backlog: \`$BACKLOG\`"
    fi
    if [[ ${#AB_MODES[@]} -gt 0 ]]; then
        echo
        echo "**Purchase path without (A) / with (B) the payment step** (1000 products, stock and" \
             "limit 10^9, Zipf, random 63-bit users; A: payment_window_s null, B: 600; runs of" \
             "${DURATION} s, $RUNS of each, in the order $(for ((r = 1; r <= RUNS; r++)); do printf '%s ' $(pair "$r"); done | sed 's/ $//')):"
        echo
        echo "| mode | A runs (req/s) | B runs (req/s) | A median | B median | B / A | A p99 (ms, median) | B p99 (ms, median) |"
        echo "|---|---|---|---:|---:|---:|---:|---:|"
        for m in "${AB_MODES[@]}"; do
            read -r -a ra <<<"${AB_RPS[$m,A]:-}"; read -r -a rb <<<"${AB_RPS[$m,B]:-}"
            read -r -a pa <<<"${AB_P99[$m,A]:-}"; read -r -a pb <<<"${AB_P99[$m,B]:-}"
            ma="$(median "${ra[@]}")"; mb="$(median "${rb[@]}")"
            printf '| %s | %s | %s | %s | %s | %s | %s | %s |\n' "$m" \
                "$(for x in "${ra[@]}"; do printf '%s ' "$(fmt0 "$x")"; done)" \
                "$(for x in "${rb[@]}"; do printf '%s ' "$(fmt0 "$x")"; done)" \
                "$(fmt0 "$ma")" "$(fmt0 "$mb")" "$(ratio "$mb" "$ma")" "$(median "${pa[@]}")" "$(median "${pb[@]}")"
        done
        echo
        for m in "${AB_MODES[@]}"; do
            echo "- $m, runs in order (req/s): ${AB_SEQ[$m]}; B / A of each pair (neighbours in" \
                 "time): $(pair_ratios "${AB_SEQ[$m]}")"
        done
        for n in "${AB_NOTES[@]}"; do echo "- $n"; done
    fi
    echo
    echo "**Targets of issue 9** (a missed target is reported here, not as a failed run):"
    echo
    for m in "${CLOSE_ORDER[@]}"; do
        p99="$(kv "${CLOSE[$m]}" lag_p99_ms)"
        if [[ -z "$p99" ]]; then echo "- [ ] $m close lag p99 ≤ 1000 ms — not measured (no EXPIRED order)"
        elif [[ $p99 -le 1000 ]]; then echo "- [x] $m close lag p99 ≤ 1000 ms — $p99 ms"
        else echo "- [ ] $m close lag p99 ≤ 1000 ms — **missed**: $p99 ms"; fi
    done
    for m in "${AB_MODES[@]}"; do
        read -r -a ra <<<"${AB_RPS[$m,A]:-}"; read -r -a rb <<<"${AB_RPS[$m,B]:-}"
        q="$(ratio "$(median "${rb[@]}")" "$(median "${ra[@]}")")"
        if awk -v q="$q" 'BEGIN {exit !(q != "n/a" && q + 0 >= 0.90)}'; then
            echo "- [x] $m purchase rate with the payment step ≥ 0.90 × without — B / A = $q"
        else
            echo "- [ ] $m purchase rate with the payment step ≥ 0.90 × without — **missed**: B / A = $q"
        fi
    done
    report_notes "(figures are not comparable; in distributed runs Redis, Kafka and PostgreSQL count as other processes, serve and consume do not):"
} >"$REPORT"
publish_report
