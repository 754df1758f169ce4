#!/usr/bin/env bash
# flashsale benchmark of record.  See bench/README.md for what each row means.
#
#   bench/run_bench.sh [-d SECS] [-r RUNS] [options]
#
# In one run, on this machine, over loopback only:
#   nginx    nginx (temporary prefix, config written here) answering every POST with a fixed
#            50-byte JSON body: the ceiling of this machine + wrk for a trivial HTTP answer.
#   (a)      flashsale, 1000 products with stock 0: every purchase is SOLD_OUT.
#   (b)      flashsale, 100 products with stock 10^9 and limit_per_user 10^9, a new user id
#            on every request: every purchase is ACCEPTED and durably journalled with the
#            default --journal-sync full (one fsync per group commit).
#   (c)      flashsale with 10,000 idle keep-alive connections: VmRSS before / with / after.
# Every load scenario is driven by the same wrk command (threads, connections, duration,
# --latency, scripts/wrk/purchase.lua counting the "status" of every response).
set -euo pipefail

usage() {
    cat <<'EOF'
usage: bench/run_bench.sh [options]
  -d, --duration SECS     seconds per wrk measurement                      (default 10)
  -r, --runs N            measurements per row; the table shows medians    (default 1)
  -t, --threads N         flashsale --threads and nginx worker_processes   (default 2)
  -c, --connections LIST  wrk connection counts, comma separated           (default 64,256)
  -w, --warmup SECS       wrk warm-up per server before measuring, 0 = off (default 1)
      --wait-idle SECS    before each scenario, wait up to SECS for the machine to be
                          idle (other processes < 0.15 cores)              (default 0)
      --wrk-threads N     wrk -t                                           (default 2)
      --count MODE        purchase.lua count= mode: status (read the status of every
                          response and check it), http (HTTP codes only), none (no Lua
                          response hook: cheapest client, no per-response check)
                                                                           (default status)
      --idle N            idle connections for scenario (c)                (default 10000)
      --only LIST         subset of nginx,a,b,c                            (default all)
      --server-cpus LIST  pin servers with taskset -c LIST                 (default: not pinned)
      --wrk-cpus LIST     pin wrk with taskset -c LIST                     (default: not pinned)
      --bin PATH          flashsale binary                    (default build/release/flashsale)
      --log-level LEVEL   flashsale --log-level (info: the server's default) (default warn)
  -o, --output FILE       also write the final markdown report to FILE
      --keep              keep the work directory (logs, databases, wrk output)
  -h, --help
EOF
}

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DURATION=10; RUNS=1; THREADS=2; CONNS="64,256"; WARMUP=1; WRK_THREADS=2; IDLE=10000
ONLY="nginx,a,b,c"; SERVER_CPUS=""; WRK_CPUS=""; BIN="$ROOT/build/release/flashsale"
OUTPUT=""; KEEP=0; COUNT=status; WAIT_IDLE=0; LOG_LEVEL=warn
while [[ $# -gt 0 ]]; do
    case "$1" in
        -d|--duration) DURATION="$2"; shift 2 ;;
        -r|--runs) RUNS="$2"; shift 2 ;;
        -t|--threads) THREADS="$2"; shift 2 ;;
        -c|--connections) CONNS="$2"; shift 2 ;;
        -w|--warmup) WARMUP="$2"; shift 2 ;;
        --wrk-threads) WRK_THREADS="$2"; shift 2 ;;
        --count) COUNT="$2"; shift 2 ;;
        --wait-idle) WAIT_IDLE="$2"; shift 2 ;;
        --idle) IDLE="$2"; shift 2 ;;
        --only) ONLY="$2"; shift 2 ;;
        --server-cpus) SERVER_CPUS="$2"; shift 2 ;;
        --wrk-cpus) WRK_CPUS="$2"; shift 2 ;;
        --bin) BIN="$2"; shift 2 ;;
        --log-level) LOG_LEVEL="$2"; shift 2 ;;
        -o|--output) OUTPUT="$2"; shift 2 ;;
        --keep) KEEP=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "run_bench: unknown option: $1" >&2; usage >&2; exit 2 ;;
    esac
done
for v in DURATION RUNS THREADS WARMUP WRK_THREADS IDLE WAIT_IDLE; do
    [[ "${!v}" =~ ^[0-9]+$ ]] || { echo "run_bench: $v must be a non-negative integer" >&2; exit 2; }
done
[[ $DURATION -gt 0 && $RUNS -gt 0 && $THREADS -gt 0 && $WRK_THREADS -gt 0 ]] \
    || { echo "run_bench: duration, runs and threads must be > 0" >&2; exit 2; }
[[ "$COUNT" =~ ^(status|http|none)$ ]] || { echo "run_bench: --count must be status, http or none" >&2; exit 2; }
IFS=',' read -r -a CONN_LIST <<<"${CONNS// /,}"
for c in "${CONN_LIST[@]}"; do
    [[ "$c" =~ ^[0-9]+$ && $c -ge $WRK_THREADS ]] \
        || { echo "run_bench: bad connection count '$c' (must be >= wrk threads)" >&2; exit 2; }
done
want() { [[ ",$ONLY," == *",$1,"* ]]; }
need_fs=0; for s in a b c; do want "$s" && need_fs=1; done

for tool in wrk nginx curl python3; do
    command -v "$tool" >/dev/null || { echo "run_bench: $tool not found" >&2; exit 2; }
done
if [[ $need_fs == 1 ]]; then
    [[ -x "$BIN" ]] || { echo "run_bench: flashsale binary not found: $BIN (build it first)" >&2; exit 2; }
    BIN="$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")"
fi
PURCHASE_LUA="$ROOT/scripts/wrk/purchase.lua"
[[ -f "$PURCHASE_LUA" ]] || { echo "run_bench: missing $PURCHASE_LUA" >&2; exit 2; }

PIN_SERVER=(); PIN_WRK=()
[[ -n "$SERVER_CPUS" ]] && PIN_SERVER=(taskset -c "$SERVER_CPUS")
[[ -n "$WRK_CPUS" ]] && PIN_WRK=(taskset -c "$WRK_CPUS")

# Enough descriptors for 10,000 connections (inherited by the servers started below).
# Without CAP_SYS_RESOURCE the hard limit cannot be raised: fall back to it.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
NOFILE="$(ulimit -n)"

# Process bookkeeping + cleanup trap, logging, CPU accounting, the nginx ceiling and
# the wrk runner with medians: shared with the distributed benchmarks.
BENCH_NAME=run_bench BENCH_TMP=flashsale-bench
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

FS_PID=""; FS_URL=""; FS_DB=""; FS_LOG=""; FS_TOKEN="bench-$RANDOM$RANDOM"
start_flashsale() {   # start_flashsale NAME [extra serve flags...]
    local name=$1; shift
    local dir="$WORK/$name" port
    mkdir -p "$dir"
    port="$(free_port)"
    FS_DB="$dir/flashsale.db"; FS_LOG="$dir/server.log"; FS_URL="http://127.0.0.1:$port"
    # cwd = $dir: the server's logs/ directory and .env lookup stay out of the repo.
    (cd "$dir" && exec "${PIN_SERVER[@]}" "$BIN" serve --host 127.0.0.1 --port "$port" \
        --database "sqlite:$FS_DB" --admin-token "$FS_TOKEN" --threads "$THREADS" \
        --log-level "$LOG_LEVEL" "$@") >"$FS_LOG" 2>&1 &
    FS_PID=$!
    PIDS+=("$FS_PID")
    wait_ready "$FS_PID" "$FS_URL/healthz" "$FS_LOG"
    log "flashsale ($name) ready: $FS_URL (pid $FS_PID, --threads $THREADS $*)"
}

fs_pids() { echo "$FS_PID"; }

count_orders() { python3 "$ROOT/bench/fs_admin.py" orders --db "$FS_DB" 2>>"$WORK/orders.err" || echo "total=?"; }

# ---------------------------------------------------------------------------- header
git_rev="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo none)"
fs_version="n/a"; [[ $need_fs == 1 ]] && fs_version="$("$BIN" --version 2>/dev/null | head -n 1 || echo '?')"
cpu_model="$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)"
pinning="not pinned (servers and wrk share all $(nproc) cores)"
[[ -n "$SERVER_CPUS$WRK_CPUS" ]] && pinning="servers on CPUs ${SERVER_CPUS:-any}, wrk on CPUs ${WRK_CPUS:-any}"
log "work directory: $WORK"
log "flashsale: ${fs_version} ($BIN), git $git_rev; RLIMIT_NOFILE $NOFILE"
log "wrk -t$WRK_THREADS -c{${CONN_LIST[*]}} -d${DURATION}s --latency, $RUNS run(s) per row, warm-up ${WARMUP}s; $pinning"

# ---------------------------------------------------------------------------- nginx
if want nginx; then
    busy_check nginx
    start_nginx
    measure nginx "$NGINX_URL" SOLD_OUT nginx_pids -- pid=1-1000 users=random user_max=199 count=$COUNT
    stop_pid "$NGINX_PID" nginx
fi

# ---------------------------------------------------------------------------- (a) sold out
if want a; then
    busy_check "(a)"
    start_flashsale a-sold-out --mock-products 0
    python3 "$ROOT/bench/fs_admin.py" put --port "${FS_URL##*:}" --token "$FS_TOKEN" \
        --ids 1-1000 --stock 0 --price 1 --limit 1 >&2
    probe="$(python3 "$ROOT/bench/fs_admin.py" probe --port "${FS_URL##*:}" --product 1)"
    log "probe: $probe"
    [[ "$probe" == *'"SOLD_OUT"'* ]] || problem "(a): probe purchase not SOLD_OUT: $probe"
    measure a "$FS_URL" SOLD_OUT fs_pids -- pid=1-1000 users=random user_max=199 count=$COUNT
    stop_pid "$FS_PID" "flashsale (a)"
fi

# ---------------------------------------------------------------------------- (b) accepted
ORDERS_LINE=""
if want b; then
    busy_check "(b)"
    start_flashsale b-accepted --mock-products 0 --journal-sync full
    python3 "$ROOT/bench/fs_admin.py" put --port "${FS_URL##*:}" --token "$FS_TOKEN" \
        --ids 2001-2100 --stock 1000000000 --price 1 --limit 1000000000 >&2
    probe="$(python3 "$ROOT/bench/fs_admin.py" probe --port "${FS_URL##*:}" --product 2001 --user 1)"
    log "probe: $probe"
    ACCEPTED_TOTAL=0; INFLIGHT_MAX=0
    if [[ "$probe" == *'"ACCEPTED"'* ]]; then ACCEPTED_TOTAL=1; else problem "(b): probe purchase not ACCEPTED: $probe"; fi
    measure b "$FS_URL" ACCEPTED fs_pids -- pid=2001-2100 users=distinct user_base=@BASE@ count=$COUNT
    # Orders reach the orders table asynchronously: wait until they are all there, or no
    # progress for 5 s (max 120 s), then stop the server and count again.
    last=""; stable=0
    for _ in $(seq 1 1200); do
        ORDERS_LINE="$(count_orders)"; n="$(kv "$ORDERS_LINE" total)"
        [[ "$n" =~ ^[0-9]+$ && $n -ge $ACCEPTED_TOTAL ]] && break
        if [[ "$n" == "$last" ]]; then stable=$((stable + 1)); [[ $stable -ge 50 ]] && break; else stable=0; fi
        last="$n"; sleep 0.1
    done
    log "orders in the database while running: $ORDERS_LINE (ACCEPTED counted by wrk: $ACCEPTED_TOTAL)"
    stop_pid "$FS_PID" "flashsale (b)"
    ORDERS_LINE="$(count_orders)"
    n="$(kv "$ORDERS_LINE" total)"
    log "orders in the database after SIGTERM: $ORDERS_LINE"
    if ! [[ "$n" =~ ^[0-9]+$ ]]; then
        problem "(b): could not count orders in $FS_DB ($(tail -n 1 "$WORK/orders.err" 2>/dev/null))"
    elif [[ $n -lt $ACCEPTED_TOTAL ]]; then
        problem "(b): $n orders in the database < $ACCEPTED_TOTAL ACCEPTED responses (acknowledged orders missing)"
    elif [[ $n -gt $((ACCEPTED_TOTAL + INFLIGHT_MAX)) ]]; then
        problem "(b): $n orders in the database > $ACCEPTED_TOTAL ACCEPTED + $INFLIGHT_MAX possibly in flight"
    fi
fi

# ---------------------------------------------------------------------------- (c) idle conns
C_LINE=""
if want c; then
    start_flashsale c-idle
    sleep 1
    rss0="$(vmrss_kib "$FS_PID")"
    fd0="$(ls "/proc/$FS_PID/fd" | wc -l)"
    log "(c) idle server: VmRSS $rss0 KiB, $fd0 fds; opening $IDLE keep-alive connections"
    python3 "$ROOT/bench/idle_connections.py" --port "${FS_URL##*:}" -n "$IDLE" --hold 45 \
        >"$WORK/idle.out" 2>"$WORK/idle.err" &
    IDLE_PID=$!
    PIDS+=("$IDLE_PID")
    for _ in $(seq 1 1200); do
        grep -q '^READY' "$WORK/idle.out" 2>/dev/null && break
        kill -0 "$IDLE_PID" 2>/dev/null || break
        sleep 0.1
    done
    ready="$(grep '^READY' "$WORK/idle.out" || true)"
    [[ -n "$ready" ]] || problem "(c): idle_connections.py did not get ready: $(tail -n 3 "$WORK/idle.err")"
    opened="$(kv "$ready" opened)"; opened="${opened:-0}"
    [[ "$(kv "$ready" failed)" == 0 ]] || problem "(c): $ready $(head -n 3 "$WORK/idle.err" | tr '\n' ' ')"
    sleep 2
    rss1="$(vmrss_kib "$FS_PID")"
    fd1="$(ls "/proc/$FS_PID/fd" | wc -l)"
    hwm1="$(awk '/^VmHWM:/ {print $2}' "/proc/$FS_PID/status")"
    metric="$(curl -s "$FS_URL/metrics" | awk '/^flashsale_connections[ {]/ {print $NF; exit}' || true)"
    log "(c) with $opened connections: VmRSS $rss1 KiB (VmHWM $hwm1), $fd1 fds, flashsale_connections ${metric:-n/a}"
    kill -TERM "$IDLE_PID" 2>/dev/null || true
    wait "$IDLE_PID" 2>/dev/null || true
    forget "$IDLE_PID"
    alive="$(grep '^ALIVE' "$WORK/idle.out" || true)"
    [[ "$(kv "$alive" closed_by_server)" == 0 ]] || problem "(c): server closed idle connections early: $alive"
    sleep 2
    rss2="$(vmrss_kib "$FS_PID")"
    log "(c) after closing them: VmRSS $rss2 KiB; $alive"
    C_LINE="$opened $rss0 $rss1 $rss2"
    stop_pid "$FS_PID" "flashsale (c)"
fi

# ---------------------------------------------------------------------------- report
label() {
    case "$1" in
        nginx) echo "nginx, fixed 50-byte JSON (ceiling)" ;;
        a) echo "(a) sold out: 1000 products, stock 0" ;;
        b) echo "(b) accepted + journal fsync (full): 100 products, new user per request" ;;
    esac
}
REPORT="$WORK/report.md"
{
    echo "### flashsale benchmark ($(date -u +%Y-%m-%dT%H:%M:%SZ))"
    echo
    echo "Machine: ${cpu_model}, $(nproc) cores, Linux $(uname -r), loopback. flashsale ${fs_version}" \
         "(git ${git_rev}) \`--threads $THREADS\`; nginx $(nginx -v 2>&1 | sed 's|.*nginx/||')" \
         "\`worker_processes $THREADS\`; wrk \`-t$WRK_THREADS -d${DURATION}s --latency\`" \
         "with scripts/wrk/purchase.lua count=$COUNT; $pinning. Median of $RUNS run(s) per row;" \
         "server CPU = cores used by the server during the run."
    echo
    echo "| scenario | connections | requests/s | p50 (ms) | p99 (ms) | server CPU (cores) | vs nginx |"
    echo "|---|---:|---:|---:|---:|---:|---:|"
    for s in "${SCEN_ORDER[@]}"; do
        for c in "${CONN_LIST[@]}"; do
            rps="${R_RPS[$s,$c]}"; base="${R_RPS[nginx,$c]:-}"
            ratio="n/a"
            [[ -n "$base" ]] && ratio="$(awk -v a="$rps" -v b="$base" 'BEGIN {if (b + 0 > 0) printf "%.2f", a/b; else print "n/a"}')"
            printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$(label "$s")" "$c" \
                "$(awk -v x="$rps" 'BEGIN {printf "%.0f", x}')" "${R_P50[$s,$c]}" "${R_P99[$s,$c]}" \
                "${R_CPU[$s,$c]}" "$ratio"
        done
    done
    if [[ -n "$ORDERS_LINE" ]]; then
        echo
        echo "(b) orders in the database after SIGTERM: $(kv "$ORDERS_LINE" total)" \
             "($(sed 's/^total=[^ ]* *//' <<<"$ORDERS_LINE")); ACCEPTED responses counted by wrk" \
             "(incl. warm-up and probe): $ACCEPTED_TOTAL; requests in flight when wrk stopped" \
             "(answered, not counted) can add up to $INFLIGHT_MAX."
    fi
    if [[ -n "$C_LINE" ]]; then
        read -r opened rss0 rss1 rss2 <<<"$C_LINE"
        echo
        echo "| (c) idle keep-alive connections | VmRSS before | VmRSS with | per connection | VmRSS after close |"
        echo "|---:|---:|---:|---:|---:|"
        awk -v n="$opened" -v a="$rss0" -v b="$rss1" -v c="$rss2" 'BEGIN {
            per = (n > 0) ? sprintf("%.2f KiB", (b - a) / n) : "n/a";
            printf "| %d | %.1f MiB | %.1f MiB | %s | %.1f MiB |\n", n, a/1024, b/1024, per, c/1024 }'
    fi
    if [[ ${#BUSY_NOTES[@]} -gt 0 ]]; then
        echo
        echo "**The machine was not idle** (figures are not comparable):"
        for p in "${BUSY_NOTES[@]}"; do echo "- $p"; done
    fi
    if [[ ${#PROBLEMS[@]} -gt 0 ]]; then
        echo
        echo "**Problems in this run:**"
        for p in "${PROBLEMS[@]}"; do echo "- $p"; done
    fi
} >"$REPORT"
echo
cat "$REPORT"
[[ -z "$OUTPUT" ]] || cp "$REPORT" "$OUTPUT"
[[ ${#PROBLEMS[@]} -eq 0 ]] || exit 1
