#!/usr/bin/env bash
# flashsale benchmark of record.  See bench/README.md for what each row means.
#
#   bench/run_bench.sh [-d SECS] [-r RUNS] [options]
#
# In one run, on this machine, over loopback only:
#   nginx    nginx (temporary prefix, config written here) answering every POST with a fixed
#            50-byte JSON body: the ceiling of this machine + wrk for a trivial HTTP answer.
#   nginx-real  the same nginx sent (b)'s requests: wrk's cost of generating them.
#   (a)      flashsale, 1000 products with stock 0: every purchase is SOLD_OUT.
#   (b)      flashsale, 1000 products with stock 10^9 and limit_per_user 10^9, the realistic
#            workload: Zipf-distributed products (a few take most of the traffic) and user ids
#            uniformly random over 0 .. 2^63-1; every purchase is ACCEPTED and durably
#            journalled with the default --journal-sync full (one fsync per group commit).
#   (b-seq)  the same server setup and products, but sequential user ids (users=distinct):
#            only the ids differ from (b).
#   (c)      flashsale with 10,000 idle keep-alive connections: VmRSS before / with / after.
#   (d)      sustained: one fresh server per wrk layout and connection count, the (b)
#            workload for --sustain seconds as back-to-back 10 s windows on the same growing
#            database; the rate of each window and the worst window / the first.
# Every load scenario is driven by the same wrk command (threads, connections, duration,
# --latency, scripts/wrk/purchase.lua counting the "status" of every response), once per
# wrk layout of --wrk-threads; nginx is measured with every layout so that each row is
# compared to nginx under the same client. After (b), (b-seq) and (d): database bytes per
# order and resident-memory growth per accepted order. The report ends with the issue's
# targets as a checklist (a missed target is reported, not an exit code; failed checks -
# wrong statuses, lost orders - exit 1).
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
      --wrk-threads LIST  wrk -t values (layouts), comma separated; every scenario
                          is measured with each                            (default 1,2)
      --sustain SECS      length of scenario (d), a multiple of 10 (10 s windows)
                                                                           (default 60)
      --count MODE        purchase.lua count= mode: status (read the status of every
                          response and check it), http (HTTP codes only), none (no Lua
                          response hook: cheapest client, no per-response check)
                                                                           (default status)
      --idle N            idle connections for scenario (c)                (default 10000)
      --only LIST         subset of nginx,nginx-real,a,b,b-seq,c,d         (default all)
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
DURATION=10; RUNS=1; THREADS=2; CONNS="64,256"; WARMUP=1; WRK_LAYOUTS="1,2"; IDLE=10000
SUSTAIN=60; ONLY="nginx,nginx-real,a,b,b-seq,c,d"; SERVER_CPUS=""; WRK_CPUS=""; BIN="$ROOT/build/release/flashsale"
OUTPUT=""; KEEP=0; COUNT=status; WAIT_IDLE=0; LOG_LEVEL=warn
while [[ $# -gt 0 ]]; do
    case "$1" in
        -d|--duration) DURATION="$2"; shift 2 ;;
        -r|--runs) RUNS="$2"; shift 2 ;;
        -t|--threads) THREADS="$2"; shift 2 ;;
        -c|--connections) CONNS="$2"; shift 2 ;;
        -w|--warmup) WARMUP="$2"; shift 2 ;;
        --wrk-threads) WRK_LAYOUTS="$2"; shift 2 ;;
        --sustain) SUSTAIN="$2"; shift 2 ;;
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
for v in DURATION RUNS THREADS WARMUP IDLE WAIT_IDLE SUSTAIN; do
    [[ "${!v}" =~ ^[0-9]+$ ]] || { echo "run_bench: $v must be a non-negative integer" >&2; exit 2; }
done
[[ $DURATION -gt 0 && $RUNS -gt 0 && $THREADS -gt 0 ]] \
    || { echo "run_bench: duration, runs and threads must be > 0" >&2; exit 2; }
[[ $SUSTAIN -ge 10 && $((SUSTAIN % 10)) == 0 ]] \
    || { echo "run_bench: --sustain must be a positive multiple of 10 (10 s windows)" >&2; exit 2; }
SUSTAIN_WINDOW=10
IFS=',' read -r -a LAYOUTS <<<"${WRK_LAYOUTS// /,}"
[[ ${#LAYOUTS[@]} -gt 0 ]] || { echo "run_bench: --wrk-threads is empty" >&2; exit 2; }
WRK_THREADS_MAX=0
for t in "${LAYOUTS[@]}"; do
    [[ "$t" =~ ^[0-9]+$ && $t -gt 0 ]] || { echo "run_bench: bad wrk thread count '$t'" >&2; exit 2; }
    [[ $t -le $WRK_THREADS_MAX ]] || WRK_THREADS_MAX=$t
done
WRK_THREADS="${LAYOUTS[0]}"   # lib.sh's run_wrk reads it; set per layout below
[[ "$COUNT" =~ ^(status|http|none)$ ]] || { echo "run_bench: --count must be status, http or none" >&2; exit 2; }
IFS=',' read -r -a CONN_LIST <<<"${CONNS// /,}"
for c in "${CONN_LIST[@]}"; do
    [[ "$c" =~ ^[0-9]+$ && $c -ge $WRK_THREADS_MAX ]] \
        || { echo "run_bench: bad connection count '$c' (must be >= wrk threads)" >&2; exit 2; }
done
want() { [[ ",$ONLY," == *",$1,"* ]]; }
need_fs=0; for s in a b b-seq c d; do want "$s" && need_fs=1; done

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
log "wrk -t{${LAYOUTS[*]}} -c{${CONN_LIST[*]}} -d${DURATION}s --latency, $RUNS run(s) per row, warm-up ${WARMUP}s, (d) ${SUSTAIN}s; $pinning"

# ---------------------------------------------------------------------------- nginx
# (b), (d) and nginx-real send the realistic requests; (b-seq) the same with sequential ids.
REAL_ARGS=(pid=2001-3000 products=zipf users=random63 count=$COUNT)
SEQ_ARGS=(pid=2001-3000 products=zipf users=distinct user_base=@BASE@ count=$COUNT)
if want nginx || want nginx-real; then
    busy_check nginx
    start_nginx
    # nginx-real: the same nginx sent (b)'s requests; its "vs nginx" is wrk's own cost of
    # generating them (zipf + random63 in Lua) on this machine, layout by layout.
    for WRK_THREADS in "${LAYOUTS[@]}"; do
        if want nginx; then
            measure "nginx@$WRK_THREADS" "$NGINX_URL" SOLD_OUT nginx_pids -- pid=1-1000 users=random user_max=199 count=$COUNT
        fi
        if want nginx-real; then
            measure "nginx-real@$WRK_THREADS" "$NGINX_URL" SOLD_OUT nginx_pids -- "${REAL_ARGS[@]}"
        fi
    done
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
    for WRK_THREADS in "${LAYOUTS[@]}"; do
        measure "a@$WRK_THREADS" "$FS_URL" SOLD_OUT fs_pids -- pid=1-1000 users=random user_max=199 count=$COUNT
    done
    stop_pid "$FS_PID" "flashsale (a)"
fi

# ---------------------------------------------------------------------------- accepting servers
# (b), (b-seq) and (d) all buy from a fresh server with 1000 products 2001-3000 of stock 10^9
# and limit_per_user 10^9, so every purchase must be ACCEPTED. Only the Lua arguments differ
# (REAL_ARGS, SEQ_ARGS above).
declare -A FOOT       # FOOT[key] = "orders accepted inflight db_bytes wal_bytes rss0_kib rss1_kib"
FOOT_ORDER=(); ORDER_NOTES=()
RSS_BEFORE=0

start_accepting() {   # start_accepting NAME: fresh server + products + probe; resets the counters
    start_flashsale "$1" --mock-products 0 --journal-sync full
    python3 "$ROOT/bench/fs_admin.py" put --port "${FS_URL##*:}" --token "$FS_TOKEN" \
        --ids 2001-3000 --stock 1000000000 --price 1 --limit 1000000000 >&2
    local probe
    probe="$(python3 "$ROOT/bench/fs_admin.py" probe --port "${FS_URL##*:}" --product 2001 --user 1)"
    log "probe: $probe"
    ACCEPTED_TOTAL=0; INFLIGHT_MAX=0
    if [[ "$probe" == *'"ACCEPTED"'* ]]; then ACCEPTED_TOTAL=1; else problem "$1: probe purchase not ACCEPTED: $probe"; fi
    RSS_BEFORE="$(vmrss_kib "$FS_PID" 2>/dev/null || echo 0)"
}

# finish_accepting KEY WHAT: after the load, wait for the orders, take VmRSS, stop the
# server, measure the database files, count the orders and check them against wrk's count.
# The count check needs no distinct user ids: every ACCEPTED answer is one order row
# whoever bought it (limit_per_user 10^9), so the rare repeated random63 id changes nothing.
finish_accepting() {
    local key=$1 what=$2 line="" n last="" stable=0 rss_after db_bytes wal_bytes
    # Orders reach the orders table asynchronously: wait until they are all there, or no
    # progress for 5 s (max 120 s), then stop the server and count again.
    for _ in $(seq 1 1200); do
        line="$(count_orders)"; n="$(kv "$line" total)"
        [[ "$n" =~ ^[0-9]+$ && $n -ge $ACCEPTED_TOTAL ]] && break
        if [[ "$n" == "$last" ]]; then stable=$((stable + 1)); [[ $stable -ge 50 ]] && break; else stable=0; fi
        last="$n"; sleep 0.1
    done
    log "$what: orders in the database while running: $line (ACCEPTED counted by wrk: $ACCEPTED_TOTAL)"
    rss_after="$(vmrss_kib "$FS_PID" 2>/dev/null || echo 0)"
    stop_pid "$FS_PID" "flashsale $what"
    # Sizes before anything opens the database again (closing the last connection may
    # checkpoint the WAL into the main file and delete it).
    db_bytes="$(stat -c %s "$FS_DB" 2>/dev/null || echo 0)"
    # -wal, and the order journal's file (<db>.journal + its -wal): drained at shutdown.
    wal_bytes=0
    for f in "$FS_DB-wal" "$FS_DB.journal" "$FS_DB.journal-wal"; do
        wal_bytes=$((wal_bytes + $(stat -c %s "$f" 2>/dev/null || echo 0)))
    done
    line="$(count_orders)"
    n="$(kv "$line" total)"
    log "$what: orders in the database after SIGTERM: $line; files: $db_bytes + $wal_bytes (-wal, journal) bytes"
    if ! [[ "$n" =~ ^[0-9]+$ ]]; then
        problem "$what: could not count orders in $FS_DB ($(tail -n 1 "$WORK/orders.err" 2>/dev/null))"
        n=0
    elif [[ $n -lt $ACCEPTED_TOTAL ]]; then
        problem "$what: $n orders in the database < $ACCEPTED_TOTAL ACCEPTED responses (acknowledged orders missing)"
    elif [[ $n -gt $((ACCEPTED_TOTAL + INFLIGHT_MAX)) ]]; then
        problem "$what: $n orders in the database > $ACCEPTED_TOTAL ACCEPTED + $INFLIGHT_MAX possibly in flight"
    fi
    FOOT_ORDER+=("$key")
    FOOT[$key]="$n $ACCEPTED_TOTAL $INFLIGHT_MAX $db_bytes $wal_bytes $RSS_BEFORE $rss_after"
    ORDER_NOTES+=("$what: $n orders in the database after SIGTERM ($(sed 's/^total=[^ ]* *//' <<<"$line"));
  ACCEPTED responses counted by wrk (incl. warm-up and probe): $ACCEPTED_TOTAL; requests in
  flight when wrk stopped (answered, not counted) can add up to $INFLIGHT_MAX.")
}

# ---------------------------------------------------------------------------- (b), (b-seq)
# A fresh server per row and layout, (b) and (b-seq) back to back: each starts from the
# same empty database, so the two rates differ only by the user ids.
for WRK_THREADS in "${LAYOUTS[@]}"; do
    if want b; then
        busy_check "(b) -t$WRK_THREADS"
        start_accepting "b-t$WRK_THREADS"
        measure "b@$WRK_THREADS" "$FS_URL" ACCEPTED fs_pids -- "${REAL_ARGS[@]}"
        finish_accepting "b@$WRK_THREADS" "(b) -t$WRK_THREADS"
    fi
    if want b-seq; then
        busy_check "(b-seq) -t$WRK_THREADS"
        start_accepting "b-seq-t$WRK_THREADS"
        measure "b-seq@$WRK_THREADS" "$FS_URL" ACCEPTED fs_pids -- "${SEQ_ARGS[@]}"
        finish_accepting "b-seq@$WRK_THREADS" "(b-seq) -t$WRK_THREADS"
    fi
done

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

# ---------------------------------------------------------------------------- (d) sustained
# One fresh server per layout and connection count: a warm-up, then SUSTAIN / 10 wrk runs
# of 10 s back to back against the same growing database. D_RPS["T,c"] = the window rates.
declare -A D_RPS
D_KEYS=()
if want d; then
    for WRK_THREADS in "${LAYOUTS[@]}"; do
        for c in "${CONN_LIST[@]}"; do
            busy_check "(d) -t$WRK_THREADS c=$c"
            start_accepting "d-t$WRK_THREADS-c$c"
            SERVER_DEAD=0
            if [[ $WARMUP -gt 0 ]]; then
                run_wrk "d@$WRK_THREADS-warmup" "$FS_URL" "$c" "$WARMUP" ACCEPTED "$(fs_pids)" -- "${REAL_ARGS[@]}"
                ACCEPTED_TOTAL=$((ACCEPTED_TOTAL + $(kv0 "$WRK_LINE" status_ACCEPTED)))
                INFLIGHT_MAX=$((INFLIGHT_MAX + c))
            fi
            rates=()
            for ((w = 1; w * SUSTAIN_WINDOW <= SUSTAIN; w++)); do
                [[ $SERVER_DEAD == 0 ]] || break
                run_wrk "d@$WRK_THREADS" "$FS_URL" "$c" "$SUSTAIN_WINDOW" ACCEPTED "$(fs_pids)" -- "${REAL_ARGS[@]}"
                rates+=("$(kv "$WRK_LINE" rps)")
                ACCEPTED_TOTAL=$((ACCEPTED_TOTAL + $(kv0 "$WRK_LINE" status_ACCEPTED)))
                INFLIGHT_MAX=$((INFLIGHT_MAX + c))
            done
            D_KEYS+=("$WRK_THREADS,$c")
            D_RPS["$WRK_THREADS,$c"]="${rates[*]}"
            finish_accepting "d@$WRK_THREADS,$c" "(d) -t$WRK_THREADS c=$c"
        done
    done
fi

# ---------------------------------------------------------------------------- report
label() {
    case "$1" in
        nginx) echo "nginx, fixed 50-byte JSON (ceiling)" ;;
        nginx-real) echo "nginx, sent (b)'s requests (client cost)" ;;
        a) echo "(a) sold out: 1000 products, stock 0" ;;
        b) echo "(b) accepted + journal fsync (full): 1000 products Zipf, random 63-bit users" ;;
        b-seq) echo "(b-seq) as (b), sequential users" ;;
    esac
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (a != "" && a != "nan" && b + 0 > 0) printf "%.2f", a/b; else print "n/a"}'; }
foot_label() {   # b@1 -> "(b) -t1", d@1,64 -> "(d) -t1 c=64"
    local scen="${1%@*}" rest="${1#*@}"
    if [[ $rest == *,* ]]; then echo "($scen) -t${rest%,*} c=${rest#*,}"; else echo "($scen) -t$rest"; fi
}
# target TEXT MIN FIGURE...  (FIGURE = "what=ratio"): met when every ratio >= MIN
target() {
    local text=$1 min=$2 f ok=1 shown=""; shift 2
    if [[ $# -eq 0 ]]; then echo "- [ ] $text — not measured in this run"; return 0; fi
    for f in "$@"; do
        awk -v r="${f##*=}" -v m="$min" 'BEGIN {exit !(r != "n/a" && r + 0 >= m)}' || ok=0
        shown+="${shown:+; }${f%=*}: ${f##*=}"
    done
    if [[ $ok == 1 ]]; then echo "- [x] $text — $shown"; else echo "- [ ] $text — **missed**: $shown"; fi
}
REPORT="$WORK/report.md"
{
    echo "### flashsale benchmark ($(date -u +%Y-%m-%dT%H:%M:%SZ))"
    echo
    echo "Machine: ${cpu_model}, $(nproc) cores, Linux $(uname -r), loopback. flashsale ${fs_version}" \
         "(git ${git_rev}) \`--threads $THREADS\`; nginx $(nginx -v 2>&1 | sed 's|.*nginx/||')" \
         "\`worker_processes $THREADS\`; wrk \`-t{${WRK_LAYOUTS}} -d${DURATION}s --latency\` (one row per" \
         "wrk layout; nginx measured with each) with scripts/wrk/purchase.lua count=$COUNT; $pinning." \
         "Median of $RUNS run(s) per row; server CPU = cores used by the server during the run."
    echo
    echo "| scenario | wrk -t | connections | requests/s | p50 (ms) | p99 (ms) | server CPU (cores) | vs nginx |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|"
    for s in nginx nginx-real a b b-seq; do
        for t in "${LAYOUTS[@]}"; do
            for c in "${CONN_LIST[@]}"; do
                [[ -n "${R_RPS[$s@$t,$c]+x}" ]] || continue
                rps="${R_RPS[$s@$t,$c]}"
                printf '| %s | %s | %s | %s | %s | %s | %s | %s |\n' "$(label "$s")" "$t" "$c" \
                    "$(awk -v x="$rps" 'BEGIN {printf "%.0f", x}')" "${R_P50[$s@$t,$c]}" "${R_P99[$s@$t,$c]}" \
                    "${R_CPU[$s@$t,$c]}" "$(ratio "$rps" "${R_RPS[nginx@$t,$c]:-}")"
            done
        done
    done
    if [[ ${#D_KEYS[@]} -gt 0 ]]; then
        echo
        printf '| (d) sustained %s s, wrk -t | connections |' "$SUSTAIN"
        for ((w = 0; w < SUSTAIN / SUSTAIN_WINDOW; w++)); do
            printf ' %d–%d s |' $((w * SUSTAIN_WINDOW)) $(((w + 1) * SUSTAIN_WINDOW))
        done
        echo " worst / first |"
        printf '|---:|---:|'; for ((w = 0; w < SUSTAIN / SUSTAIN_WINDOW; w++)); do printf -- '---:|'; done; printf '%s\n' '---:|'
        for k in "${D_KEYS[@]}"; do
            read -r -a rates <<<"${D_RPS[$k]}"
            printf '| %s | %s |' "${k%,*}" "${k#*,}"
            for ((w = 0; w < SUSTAIN / SUSTAIN_WINDOW; w++)); do
                printf ' %s |' "$(awk -v x="${rates[w]:-nan}" 'BEGIN {if (x == "nan") print "n/a"; else printf "%.0f", x}')"
            done
            echo " $(ratio "$(printf '%s\n' "${rates[@]}" | sort -g | head -n 1)" "${rates[0]:-}") |"
        done
    fi
    if [[ ${#FOOT_ORDER[@]} -gt 0 ]]; then
        echo
        echo "| footprint after | orders in the database | db + -wal + journal (MiB) | bytes per order | VmRSS before → after the load (MiB) | VmRSS growth per accepted order (bytes) |"
        echo "|---|---:|---:|---:|---:|---:|"
        for k in "${FOOT_ORDER[@]}"; do
            read -r n acc _ dbb walb r0 r1 <<<"${FOOT[$k]}"
            awk -v who="$(foot_label "$k")" -v n="$n" -v acc="$acc" -v d="$dbb" -v w="$walb" -v r0="$r0" -v r1="$r1" 'BEGIN {
                per = (n > 0) ? sprintf("%.0f", (d + w) / n) : "n/a"
                grow = (acc > 0 && r0 > 0 && r1 > 0) ? sprintf("%.0f", (r1 - r0) * 1024 / acc) : "n/a"
                printf "| %s | %d | %.1f | %s | %.1f → %.1f | %s |\n", who, n, (d + w) / 1048576, per, r0 / 1024, r1 / 1024, grow }'
        done
        echo
        echo "Bytes per order: the database file plus its -wal after the server stopped, divided by" \
             "the rows of \`orders\`. VmRSS growth: (VmRSS after the load, orders all written −" \
             "VmRSS just before it) / ACCEPTED responses: the resident growth per buyer record," \
             "including what SQLite's page cache grew by in that time."
        echo
        for note in "${ORDER_NOTES[@]}"; do echo "- $note"; done
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
    echo
    echo "**Targets of issue 8** (a missed target is reported here, not as a failed run):"
    echo
    figs=()
    for t in "${LAYOUTS[@]}"; do for c in "${CONN_LIST[@]}"; do
        [[ -n "${R_RPS[b@$t,$c]+x}" && -n "${R_RPS[b-seq@$t,$c]+x}" ]] || continue
        figs+=("-t$t c=$c=$(ratio "${R_RPS[b@$t,$c]}" "${R_RPS[b-seq@$t,$c]}")")
    done; done
    target "random-id rate (b) ≥ 0.90 × sequential rate (b-seq)" 0.90 "${figs[@]}"
    figs=()
    for k in "${D_KEYS[@]}"; do
        read -r -a rates <<<"${D_RPS[$k]}"
        figs+=("-t${k%,*} c=${k#*,}=$(ratio "$(printf '%s\n' "${rates[@]}" | sort -g | head -n 1)" "${rates[0]:-}")")
    done
    target "(d): no 10 s window more than 10 % below the first (worst / first ≥ 0.90)" 0.90 "${figs[@]}"
    figs=()
    for t in "${LAYOUTS[@]}"; do for c in "${CONN_LIST[@]}"; do
        [[ -n "${R_RPS[b@$t,$c]+x}" && -n "${R_RPS[nginx@$t,$c]+x}" ]] || continue
        figs+=("-t$t c=$c=$(ratio "${R_RPS[b@$t,$c]}" "${R_RPS[nginx@$t,$c]}")")
    done; done
    target "(b) ≥ 0.5 × nginx at every connection count (64 and 256 by default), each layout" 0.5 "${figs[@]}"
    figs=()
    for t in "${LAYOUTS[@]}"; do for c in "${CONN_LIST[@]}"; do
        [[ -n "${R_RPS[a@$t,$c]+x}" && -n "${R_RPS[nginx@$t,$c]+x}" ]] || continue
        figs+=("-t$t c=$c=$(ratio "${R_RPS[a@$t,$c]}" "${R_RPS[nginx@$t,$c]}")")
    done; done
    target "(a) sold out ≥ 0.9 × nginx with each wrk layout" 0.9 "${figs[@]}"
    report_notes
} >"$REPORT"
publish_report
