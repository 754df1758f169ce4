#!/usr/bin/env bash
# flashsale distributed-mode benchmark (issue 3's contract).  See bench/README.md.
#
#   bench/run_dist_bench.sh [-d SECS] [-r RUNS] [-o FILE] [options]
#
# In one run, on this machine, over loopback only, against real Redis + Kafka + PostgreSQL
# (scripts/servers, our own port set; started here when not running, and then stopped at
# the end):
#   nginx    fixed 50-byte JSON answer: the ceiling of this machine + wrk (as run_bench.sh).
#   (a)      flashsale serve (distributed), 1000 products with stock 0: every purchase is
#            SOLD_OUT.
#   (b)      the same server, 1000 products with stock 10^7 and limit_per_user 10^6, random
#            users: every purchase is ACCEPTED (Redis reservation + Kafka hand-off, acks=all,
#            idempotent producer). Redis calls per purchase from the server's /metrics.
#   floors   redis-benchmark -P 32 running reserve_stock.lua by EVALSHA (reservations/s);
#            librdkafka's rdkafka_performance producing 100-byte messages with acks=all and
#            enable.idempotence=true (msgs/s).
# Checks (exit 1 when one fails): (a) >= 0.8 x nginx; (b) >= 0.25 x nginx, p99 <= 10 ms,
# Redis calls per purchase <= 1; every response of (a) SOLD_OUT, of (b) ACCEPTED.
set -euo pipefail

usage() {
    cat <<'EOF'
usage: bench/run_dist_bench.sh [options]
  -d, --duration SECS     seconds per wrk measurement                      (default 10)
  -r, --runs N            measurements per row; the table shows medians    (default 1)
  -t, --threads N         flashsale --threads and nginx worker_processes   (default 2)
  -c, --connections LIST  wrk connection counts, comma separated           (default 256)
  -w, --warmup SECS       wrk warm-up per scenario, 0 = off                (default 1)
      --wait-idle SECS    before each scenario wait up to SECS for an idle machine (default 0)
      --wrk-threads N     wrk -t                                           (default 2)
      --count MODE        purchase.lua count= mode: status, http, none     (default status)
      --redis-connections N  flashsale --redis-connections                 (default: server's)
      --server-arg ARG    one more flashsale serve argument (repeatable), e.g.
                          --server-arg=--kafka-linger-ms=5
      --topic-prefix P    flashsale --topic-prefix                         (default distbench.)
      --redis-n N         redis-benchmark -n                               (default 1000000)
      --kafka-n N         rdkafka_performance -c                           (default 1000000)
      --only LIST         subset of nginx,a,b,redis,kafka                  (default all)
      --flush-redis       FLUSHALL the set's Redis first (orders of earlier runs live 1 day
                          there and slow the key lookups; flashsale re-seeds from PostgreSQL)
      --fresh             --flush-redis, and empty the set's orders and products tables first
                          (every run then starts from the same state; the bench's own server
                          set only: refused unless PG_PORT is the bench default 45432)
      --profile SECS      after the table: one extra (b) wrk run of SECS with
                          `perf record -g` on the server; report in the work dir
      --bin PATH          flashsale binary                    (default build/release/flashsale)
      --rdkafka-perf PATH rdkafka_performance binary (default: built by
                          bench/build_rdkafka_performance.sh into ~/.cache/flashsale-bench)
  -o, --output FILE       also write the final markdown report to FILE
      --keep              keep the work directory
  -h, --help
Server set (environment, as scripts/servers): FLASHSALE_VAR (default /tmp/fs-bench),
REDIS_PORT 46379, PG_PORT 45432, KAFKA_PORT 49092, KAFKA_CONTROLLER_PORT 49093.
EOF
}

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BENCH_NAME=run_dist_bench
DURATION=10; RUNS=1; THREADS=2; CONNS="256"; WARMUP=1; WRK_THREADS=2; COUNT=status; WAIT_IDLE=0
REDIS_CONNS=""; SERVER_ARGS=(); PREFIX="distbench."; REDIS_N=1000000; KAFKA_N=1000000; ONLY="nginx,a,b,redis,kafka"
FLUSH=0; FRESH=0; PROFILE=0; BIN="$ROOT/build/release/flashsale"; RDKPERF=""; OUTPUT=""; KEEP=0
while [[ $# -gt 0 ]]; do
    case "$1" in
        -d|--duration) DURATION="$2"; shift 2 ;;
        -r|--runs) RUNS="$2"; shift 2 ;;
        -t|--threads) THREADS="$2"; shift 2 ;;
        -c|--connections) CONNS="$2"; shift 2 ;;
        -w|--warmup) WARMUP="$2"; shift 2 ;;
        --wait-idle) WAIT_IDLE="$2"; shift 2 ;;
        --wrk-threads) WRK_THREADS="$2"; shift 2 ;;
        --count) COUNT="$2"; shift 2 ;;
        --redis-connections) REDIS_CONNS="$2"; shift 2 ;;
        --server-arg) SERVER_ARGS+=("$2"); shift 2 ;;
        --server-arg=*) SERVER_ARGS+=("${1#--server-arg=}"); shift ;;
        --topic-prefix) PREFIX="$2"; shift 2 ;;
        --redis-n) REDIS_N="$2"; shift 2 ;;
        --kafka-n) KAFKA_N="$2"; shift 2 ;;
        --only) ONLY="$2"; shift 2 ;;
        --flush-redis) FLUSH=1; shift ;;
        --fresh) FLUSH=1; FRESH=1; shift ;;
        --profile) PROFILE="$2"; shift 2 ;;
        --bin) BIN="$2"; shift 2 ;;
        --rdkafka-perf) RDKPERF="$2"; shift 2 ;;
        -o|--output) OUTPUT="$2"; shift 2 ;;
        --keep) KEEP=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "$BENCH_NAME: unknown option: $1" >&2; usage >&2; exit 2 ;;
    esac
done
for v in DURATION RUNS THREADS WARMUP WRK_THREADS WAIT_IDLE REDIS_N KAFKA_N PROFILE; do
    [[ "${!v}" =~ ^[0-9]+$ ]] || { echo "$BENCH_NAME: $v must be a non-negative integer" >&2; exit 2; }
done
[[ "$COUNT" =~ ^(status|http|none)$ ]] || { echo "$BENCH_NAME: --count must be status, http or none" >&2; exit 2; }
IFS=',' read -r -a CONN_LIST <<<"${CONNS// /,}"
want() { [[ ",$ONLY," == *",$1,"* ]]; }
for tool in wrk nginx curl python3 redis-cli redis-benchmark; do
    command -v "$tool" >/dev/null || { echo "$BENCH_NAME: $tool not found" >&2; exit 2; }
done
if want a || want b; then
    [[ -x "$BIN" ]] || { echo "$BENCH_NAME: flashsale binary not found: $BIN (build it first)" >&2; exit 2; }
fi
PURCHASE_LUA="$ROOT/scripts/wrk/purchase.lua"
PIN_SERVER=(); PIN_WRK=()
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
NOFILE="$(ulimit -n)"

# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

# ---------------------------------------------------------------------------- server set
export FLASHSALE_VAR="${FLASHSALE_VAR:-/tmp/fs-bench}" REDIS_PORT="${REDIS_PORT:-46379}"
export PG_PORT="${PG_PORT:-45432}" KAFKA_PORT="${KAFKA_PORT:-49092}"
export KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-49093}"
REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0"
KAFKA="127.0.0.1:$KAFKA_PORT"
PG_URL="postgresql://flashsale:flashsale@127.0.0.1:$PG_PORT/flashsale"
RCLI=(redis-cli -h 127.0.0.1 -p "$REDIS_PORT")
STARTED_SERVERS=0
if ! "$ROOT/scripts/servers/all.sh" status >/dev/null 2>&1; then
    log "starting the server set (FLASHSALE_VAR=$FLASHSALE_VAR)"
    "$ROOT/scripts/servers/all.sh" start >"$WORK/servers-start.log" 2>&1 \
        || { cat "$WORK/servers-start.log" >&2; exit 1; }
    STARTED_SERVERS=1
fi
FLOOR_PID=900001     # Redis-only product of the EVALSHA floor (never in the database)
bench_cleanup_hook() {
    "${RCLI[@]}" UNLINK "item:{$FLOOR_PID}:meta" "item:{$FLOOR_PID}:stock" "item:{$FLOOR_PID}:sold_out" \
        "item:{$FLOOR_PID}:buyers" >/dev/null 2>&1 || true
    if [[ $STARTED_SERVERS == 1 ]]; then
        "$ROOT/scripts/servers/all.sh" stop >"$WORK/servers-stop.log" 2>&1 || true
    fi
}

FS_PID=""; FS_URL=""; FS_LOG=""; FS_TOKEN="bench-$RANDOM$RANDOM"
start_flashsale_dist() {   # start_flashsale_dist NAME
    local dir="$WORK/$1" port extra=()
    mkdir -p "$dir"
    port="$(free_port)"
    FS_LOG="$dir/server.log"; FS_URL="http://127.0.0.1:$port"
    [[ -z "$REDIS_CONNS" ]] || extra=(--redis-connections "$REDIS_CONNS")
    extra+=("${SERVER_ARGS[@]}")
    (cd "$dir" && exec "$BIN" serve --host 127.0.0.1 --port "$port" --redis "$REDIS_URL" \
        --kafka "$KAFKA" --database "$PG_URL" --topic-prefix "$PREFIX" --mock-products 0 \
        --admin-token "$FS_TOKEN" --threads "$THREADS" --log-level warn "${extra[@]}") >"$FS_LOG" 2>&1 &
    FS_PID=$!
    PIDS+=("$FS_PID")
    wait_ready "$FS_PID" "$FS_URL/healthz" "$FS_LOG"
    log "flashsale ($1) ready: $FS_URL (pid $FS_PID, --threads $THREADS ${extra[*]})"
}
fs_pids() { echo "$FS_PID"; }
B_MEANS=""; B_BACKEND=""
backend_ticks() {   # "redis kafka postgres" CPU ticks (postgres: every process of the cluster's user)
    local r k p pg=0 pgpid
    r="$(cpu_ticks "$(cat "$FLASHSALE_VAR/redis/redis.pid" 2>/dev/null || echo 0)")"
    k="$(cpu_ticks "$(cat "$FLASHSALE_VAR/kafka/kafka.pid" 2>/dev/null || echo 0)")"
    pgpid="$(head -n 1 "$FLASHSALE_VAR/postgres/data/postmaster.pid" 2>/dev/null || true)"
    if [[ -n "$pgpid" ]]; then
        for p in "$pgpid" $(pgrep -P "$pgpid" 2>/dev/null); do p="$(cpu_ticks "$p")"; [[ $p == gone ]] || pg=$((pg + p)); done
    fi
    [[ $r == gone ]] && r=0; [[ $k == gone ]] && k=0
    echo "$r $k $pg"
}
metric() {   # metric NAME_REGEX -> sum of matching samples in /metrics
    curl -s "$FS_URL/metrics" | awk -v re="$1" '$0 !~ /^#/ && $1 ~ re {s += $NF} END {printf "%.0f\n", s}'
}

git_rev="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo none)"
fs_version="$("$BIN" --version 2>/dev/null | head -n 1 || echo '?')"
cpu_model="$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)"
log "work directory: $WORK; flashsale $fs_version git $git_rev"

# ---------------------------------------------------------------------------- nginx
# Kafka warm-up: a broker started seconds ago runs its produce path interpreted
# while the JVM compiles it, and spends several times the CPU per message for the
# first minute or so. Row (b) measures flashsale, not the JIT: push a few million
# acks=all messages through first (not in the table). KAFKA_WARM=0 skips it.
KAFKA_WARM="${KAFKA_WARM:-3000000}"
if want b && (( KAFKA_WARM > 0 )); then
    if [[ -z "${RDKPERF:-}" ]]; then RDKPERF="$("$ROOT/bench/build_rdkafka_performance.sh" 2>"$WORK/rdkperf-build.log" | tail -n 1)" || true; fi
    if [[ -x "${RDKPERF:-}" ]]; then
        "$ROOT/scripts/servers/kafka.sh" tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$KAFKA" \
            --create --if-not-exists --topic "${PREFIX}warmup" --partitions 6 --replication-factor 1 \
            >"$WORK/warmup-topic.log" 2>&1 || true
        log "kafka warm-up: $KAFKA_WARM messages, acks=all"
        "$RDKPERF" -P -t "${PREFIX}warmup" -b "$KAFKA" -s 100 -c "$KAFKA_WARM" -X acks=all \
            -X enable.idempotence=true >"$WORK/kafka-warmup.log" 2>&1 || problem "kafka warm-up failed"
    fi
fi

if want nginx; then
    busy_check nginx
    start_nginx
    measure nginx "$NGINX_URL" SOLD_OUT nginx_pids -- pid=1-1000 users=random user_max=199 count=$COUNT
    stop_pid "$NGINX_PID" nginx
fi

# ---------------------------------------------------------------------------- (a), (b)
B_CALLS=""; B_PURCH=""; B_ACC=""; B_WRK_ACC=""
if want a || want b; then
    if [[ $FRESH == 1 ]]; then
        [[ "$PG_PORT" == 45432 ]] || { problem "--fresh refused: PG_PORT $PG_PORT is not the bench's own"; exit 1; }
        log "postgresql: TRUNCATE orders, products (was $(psql -q -X -At "$PG_URL" -c 'SELECT count(*) FROM orders' 2>/dev/null || echo '?') orders)"
        psql -q -X -v ON_ERROR_STOP=1 "$PG_URL" -c "TRUNCATE orders, products" >/dev/null 2>&1 \
            || log "postgresql: nothing to truncate (no schema yet)"
    fi
    if [[ $FLUSH == 1 ]]; then
        log "redis: FLUSHALL (was $("${RCLI[@]}" DBSIZE) keys)"; "${RCLI[@]}" FLUSHALL ASYNC >/dev/null
        for _ in $(seq 1 60); do   # the lazy free and the AOF write keep Redis busy for a while
            t0=$(date +%s%N); "${RCLI[@]}" PING >/dev/null; (( ($(date +%s%N) - t0) < 20000000 )) && break; sleep 1
        done
        sleep 2
    fi
    start_flashsale_dist dist
    port="${FS_URL##*:}"
    if want a; then
        busy_check "(a)"
        python3 "$ROOT/bench/fs_admin.py" put --port "$port" --token "$FS_TOKEN" \
            --ids 1-1000 --stock 0 --price 1 --limit 1 >&2
        probe="$(python3 "$ROOT/bench/fs_admin.py" probe --port "$port" --product 1)"
        log "probe: $probe"
        [[ "$probe" == *'"SOLD_OUT"'* ]] || problem "(a): probe purchase not SOLD_OUT: $probe"
        measure a "$FS_URL" SOLD_OUT fs_pids -- pid=1-1000 users=random user_max=199 count=$COUNT
    fi
    if want b; then
        busy_check "(b)"
        python3 "$ROOT/bench/fs_admin.py" put --port "$port" --token "$FS_TOKEN" \
            --ids 2001-3000 --stock 10000000 --price 1 --limit 1000000 >&2
        probe="$(python3 "$ROOT/bench/fs_admin.py" probe --port "$port" --product 2001 --user 1)"
        log "probe: $probe"
        [[ "$probe" == *'"ACCEPTED"'* ]] || problem "(b): probe purchase not ACCEPTED: $probe"
        c0="$(metric '^flashsale_stock_store_calls_total$')"
        p0="$(metric '^flashsale_requests_total[{].*route="purchase"')"
        a0="$(metric '^flashsale_orders_accepted_total$')"
        ss0="$(metric '^flashsale_stock_store_duration_seconds_sum$')"; sc0="$(metric '^flashsale_stock_store_duration_seconds_count$')"
        hs0="$(metric '^flashsale_handoff_duration_seconds_sum$')"; hc0="$(metric '^flashsale_handoff_duration_seconds_count$')"
        bt0="$(backend_ticks)"; bw0="$(date +%s.%N)"
        ACCEPTED_TOTAL=0
        measure b "$FS_URL" ACCEPTED fs_pids -- pid=2001-3000 users=random user_max=999999 count=$COUNT
        bt1="$(backend_ticks)"; bw1="$(date +%s.%N)"
        sleep 1   # requests still in flight when wrk stopped
        ss1="$(metric '^flashsale_stock_store_duration_seconds_sum$')"; sc1="$(metric '^flashsale_stock_store_duration_seconds_count$')"
        hs1="$(metric '^flashsale_handoff_duration_seconds_sum$')"; hc1="$(metric '^flashsale_handoff_duration_seconds_count$')"
        B_MEANS="$(awk -v a="$ss0" -v b="$ss1" -v c="$sc0" -v d="$sc1" -v e="$hs0" -v f="$hs1" -v g="$hc0" -v h="$hc1" 'BEGIN {
            printf "mean Redis reservation call %.2f ms, mean Kafka hand-off %.2f ms", (d > c ? (b - a) / (d - c) * 1000 : 0), (h > g ? (f - e) / (h - g) * 1000 : 0) }')"
        B_BACKEND="$(awk -v x="$bt0" -v y="$bt1" -v a="$bw0" -v b="$bw1" -v hz="$CLK_TCK" 'BEGIN {
            split(x, u, " "); split(y, v, " "); printf "Redis %.2f, Kafka %.2f, PostgreSQL %.2f", (v[1]-u[1])/hz/(b-a), (v[2]-u[2])/hz/(b-a), (v[3]-u[3])/hz/(b-a) }')"
        log "(b) $B_MEANS; backend CPU (cores, over warm-up + runs): $B_BACKEND"
        c1="$(metric '^flashsale_stock_store_calls_total$')"
        p1="$(metric '^flashsale_requests_total[{].*route="purchase"')"
        a1="$(metric '^flashsale_orders_accepted_total$')"
        B_CALLS=$((c1 - c0)); B_PURCH=$((p1 - p0)); B_ACC=$((a1 - a0)); B_WRK_ACC=$ACCEPTED_TOTAL
        log "(b) metrics: stock_store_calls +$B_CALLS, purchase requests +$B_PURCH, orders_accepted +$B_ACC (wrk counted ACCEPTED: $B_WRK_ACC)"
        [[ $B_ACC -ge $B_WRK_ACC || $COUNT != status ]] || problem "(b): orders_accepted_total +$B_ACC < $B_WRK_ACC ACCEPTED responses"
        if [[ $PROFILE -gt 0 ]] && command -v perf >/dev/null; then
            log "(b) profile: perf record -g -p $FS_PID for ${PROFILE}s under the same load"
            perf record -F 999 -g -o "$WORK/perf-b.data" -p "$FS_PID" -- sleep "$PROFILE" \
                >"$WORK/perf-record.log" 2>&1 &
            ppid=$!; PIDS+=("$ppid")
            rpid="$(cat "$FLASHSALE_VAR/redis/redis.pid" 2>/dev/null || true)"
            rppid=""
            if [[ -n "$rpid" ]]; then
                perf record -F 999 -g -o "$WORK/perf-redis.data" -p "$rpid" -- sleep "$PROFILE" \
                    >"$WORK/perf-record-redis.log" 2>&1 &
                rppid=$!; PIDS+=("$rppid")
            fi
            run_wrk b-profile "$FS_URL" "${CONN_LIST[-1]}" "$PROFILE" ACCEPTED "$FS_PID" -- \
                pid=2001-3000 users=random user_max=999999 count=$COUNT
            wait "$ppid" || true; forget "$ppid"
            [[ -z "$rppid" ]] || { wait "$rppid" || true; forget "$rppid"; }
            for f in perf-b perf-redis; do
                [[ -f "$WORK/$f.data" ]] || continue
                perf report -i "$WORK/$f.data" --no-children --sort dso,symbol -g none --stdio 2>/dev/null \
                    | grep -E '^ +[0-9]' | head -n 60 | sed 's/ *- *- *$//' >"$WORK/$f-flat.txt" || true
            done
            perf report -i "$WORK/perf-b.data" --no-children --sort symbol --stdio 2>/dev/null \
                | grep -v '^$' | head -n 400 >"$WORK/perf-b-self.txt" || true
            perf report -i "$WORK/perf-b.data" --no-children --sort dso --stdio 2>/dev/null \
                | grep -v '^#' | grep -v '^$' | head -n 30 >"$WORK/perf-b-dso.txt" || true
            log "(b) profile written: $WORK/perf-b-self.txt, $WORK/perf-b-dso.txt"
        fi
    fi
    stop_pid "$FS_PID" "flashsale (distributed)"
fi

# ---------------------------------------------------------------------------- floors
R_FLOOR=""; R_FLOOR_CMD=""; R_RESERVED=""
if want redis; then
    busy_check "redis floor"
    sha="$("${RCLI[@]}" SCRIPT LOAD "$(cat "$ROOT/src/backends/redis/reserve_stock.lua")")"
    P=$FLOOR_PID
    "${RCLI[@]}" UNLINK "item:{$P}:buyers" "item:{$P}:sold_out" "item:{$P}:inflight" >/dev/null
    "${RCLI[@]}" HSET "item:{$P}:meta" price 100 stock 1000000000000 limit_per_user 1000000000 >/dev/null
    "${RCLI[@]}" SET "item:{$P}:stock" 1000000000000 >/dev/null
    s0="$("${RCLI[@]}" GET "item:{$P}:stock")"
    rb=(redis-benchmark -h 127.0.0.1 -p "$REDIS_PORT" -P 32 -n "$REDIS_N" -c 50 -r 1000000000 --csv
        EVALSHA "$sha" 6 "item:{$P}:meta" "item:{$P}:stock" "item:{$P}:sold_out" "item:{$P}:buyers"
        "order:__rand_int__" "item:{$P}:inflight"
        "$P" __rand_int__ 1 __rand_int__ "$(date +%s%3N)" 120)
    R_FLOOR_CMD="${rb[*]}"
    log "redis floor: ${rb[*]}"
    "${rb[@]}" >"$WORK/redis-benchmark.csv" 2>&1 || problem "redis-benchmark failed: $(tail -n 2 "$WORK/redis-benchmark.csv")"
    s1="$("${RCLI[@]}" GET "item:{$P}:stock")"
    R_RESERVED=$((s0 - s1))
    # "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"
    R_FLOOR="$(awk -F'","' 'NR == 2 {gsub(/"/, "", $NF); print $2, $5, $7}' "$WORK/redis-benchmark.csv")"
    log "redis floor: rps p50 p99 = $R_FLOOR; units reserved: $R_RESERVED of $REDIS_N"
    [[ $R_RESERVED -ge $((REDIS_N * 99 / 100)) ]] || problem "redis floor: only $R_RESERVED of $REDIS_N calls reserved a unit"
    "${RCLI[@]}" UNLINK "item:{$P}:buyers" "item:{$P}:latest" "item:{$P}:inflight" >/dev/null
fi
K_FLOOR=""; K_FLOOR_CMD=""
if want kafka; then
    busy_check "kafka floor"
    if [[ -z "$RDKPERF" ]]; then RDKPERF="$("$ROOT/bench/build_rdkafka_performance.sh" 2>"$WORK/rdkperf-build.log" | tail -n 1)" || true; fi
    if [[ -x "$RDKPERF" ]]; then
        topic="${PREFIX}floor"
        "$ROOT/scripts/servers/kafka.sh" tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$KAFKA" \
            --create --if-not-exists --topic "$topic" --partitions 6 --replication-factor 1 >"$WORK/topic.log" 2>&1 \
            || problem "kafka floor: could not create topic $topic"
        kp=("$RDKPERF" -P -t "$topic" -b "$KAFKA" -s 100 -c "$KAFKA_N" -X acks=all -X enable.idempotence=true)
        K_FLOOR_CMD="rdkafka_performance ${kp[*]:1}"
        log "kafka floor: $K_FLOOR_CMD"
        "${kp[@]}" >"$WORK/rdkafka_performance.log" 2>&1 || problem "rdkafka_performance failed"
        last="$(grep 'messages produced' "$WORK/rdkafka_performance.log" | tail -n 1)"
        K_FLOOR="$(sed -n 's/.*: \([0-9]*\) msgs\/s.*/\1/p' <<<"$last")"
        [[ "$last" == *"$KAFKA_N delivered"*", 0 failed"* ]] || problem "kafka floor: not all delivered: $last"
        log "kafka floor: $K_FLOOR msgs/s ($last)"
    else
        problem "kafka floor: rdkafka_performance not available (see $WORK/rdkperf-build.log)"
    fi
fi

# ---------------------------------------------------------------------------- report
label() {
    case "$1" in
        nginx) echo "nginx, fixed 50-byte JSON (ceiling)" ;;
        a) echo "(a) sold out: 1000 products, stock 0" ;;
        b) echo "(b) in stock: Redis reserve + Kafka acks=all, 1000 products" ;;
    esac
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (b + 0 > 0 && a == a + 0) printf "%.2f", a/b; else print "n/a"}'; }
CHECKS=()
check() {   # check TEXT VALUE OP LIMIT  (OP: ge or le) -> records pass/fail
    if awk -v v="$2" -v op="$3" -v l="$4" 'BEGIN {if (v != v + 0) exit 1; exit !(op == "ge" ? v + 0 >= l : v + 0 <= l)}'; then CHECKS+=("PASS $1"); else CHECKS+=("FAIL $1"); problem "check failed: $1"; fi
}
calls_pp="n/a"
[[ -n "$B_PURCH" && "$B_PURCH" -gt 0 ]] && calls_pp="$(awk -v a="$B_CALLS" -v b="$B_PURCH" 'BEGIN {printf "%.3f", a/b}')"
cmax="${CONN_LIST[-1]}"
if want nginx && want a; then
    r="$(ratio "${R_RPS[a,$cmax]}" "${R_RPS[nginx,$cmax]}")"
    check "(a) sold out c=$cmax: ${r} x nginx >= 0.8 (goal 0.9)" "$r" ge 0.8
fi
if want b; then
    if want nginx; then
        r="$(ratio "${R_RPS[b,$cmax]}" "${R_RPS[nginx,$cmax]}")"
        check "(b) in stock c=$cmax: ${r} x nginx >= 0.25 (goal 0.4)" "$r" ge 0.25
    fi
    check "(b) in stock c=$cmax: p99 ${R_P99[b,$cmax]} ms <= 10" "${R_P99[b,$cmax]}" le 10
    check "(b) Redis calls per purchase ${calls_pp} <= 1" "$calls_pp" le 1
fi
REPORT="$WORK/report.md"
{
    echo "#### flashsale distributed benchmark ($(date -u +%Y-%m-%dT%H:%M:%SZ))"
    echo
    echo "Machine: ${cpu_model}, $(nproc) cores, Linux $(uname -r), loopback, not pinned. flashsale ${fs_version}" \
         "(git ${git_rev}) \`serve --redis --kafka --database postgresql --threads $THREADS --log-level warn${REDIS_CONNS:+ --redis-connections $REDIS_CONNS}${SERVER_ARGS[*]:+ ${SERVER_ARGS[*]}}\`;" \
         "Redis $(redis-server --version 2>/dev/null | sed -n 's/.*v=\([^ ]*\).*/\1/p'), Kafka ${KAFKA_VERSION:-3.9.2} (1 node), PostgreSQL 15 from scripts/servers;" \
         "nginx \`worker_processes $THREADS\`; wrk \`-t$WRK_THREADS -d${DURATION}s --latency\` with scripts/wrk/purchase.lua count=$COUNT." \
         "Median of $RUNS run(s) per row. errors = socket errors + HTTP >= 400 + non-200, summed over the measured runs."
    echo
    echo "| scenario | connections | requests/s | p50 (ms) | p99 (ms) | server CPU (cores) | x nginx | errors / non-2xx | Redis calls per purchase |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
    for s in "${SCEN_ORDER[@]}"; do
        for c in "${CONN_LIST[@]}"; do
            rc="-"; [[ $s == b ]] && rc="$calls_pp"
            printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$(label "$s")" "$c" \
                "$(awk -v x="${R_RPS[$s,$c]}" 'BEGIN {printf "%.0f", x}')" "${R_P50[$s,$c]}" "${R_P99[$s,$c]}" \
                "${R_CPU[$s,$c]}" "$(ratio "${R_RPS[$s,$c]}" "${R_RPS[nginx,$c]:-}")" "${R_ERR[$s,$c]}" "$rc"
        done
    done
    if [[ -n "$R_FLOOR" ]]; then
        read -r frps fp50 fp99 <<<"$R_FLOOR"
        printf '| floor: redis-benchmark EVALSHA reserve_stock.lua -P 32 (reservations/s) | 50 | %.0f | %s | %s | - | %s | - | 1 |\n' \
            "$frps" "$fp50" "$fp99" "$(ratio "$frps" "${R_RPS[nginx,$cmax]:-}")"
    fi
    if [[ -n "$K_FLOOR" ]]; then
        printf '| floor: rdkafka_performance acks=all idempotent, 100 B (msgs/s) | - | %s | - | - | - | %s | - | - |\n' \
            "$K_FLOOR" "$(ratio "$K_FLOOR" "${R_RPS[nginx,$cmax]:-}")"
    fi
    echo
    [[ -z "$B_PURCH" ]] || echo "(b) from /metrics over the warm-up + measured runs: flashsale_stock_store_calls_total +$B_CALLS," \
        "purchase requests +$B_PURCH, flashsale_orders_accepted_total +$B_ACC (ACCEPTED responses counted by wrk: $B_WRK_ACC);" \
        "$B_MEANS; CPU of the backing servers during (b) in cores: $B_BACKEND (their CPU is counted as \"other processes\" in the notes below)."
    [[ -z "$R_FLOOR_CMD" ]] || { echo; echo "Redis floor: \`${R_FLOOR_CMD}\` (p50/p99 are per pipelined command as redis-benchmark reports them; units reserved: $R_RESERVED of $REDIS_N)."; }
    [[ -z "$K_FLOOR_CMD" ]] || { echo; echo "Kafka floor: \`${K_FLOOR_CMD}\`."; }
    if [[ ${#CHECKS[@]} -gt 0 ]]; then
        echo; echo "Checks:"; for p in "${CHECKS[@]}"; do echo "- $p"; done
    fi
    report_notes
} >"$REPORT"
publish_report
