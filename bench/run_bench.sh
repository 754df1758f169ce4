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
  -o, --output FILE       also write the final markdown report to FILE
      --keep              keep the work directory (logs, databases, wrk output)
  -h, --help
EOF
}

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DURATION=10; RUNS=1; THREADS=2; CONNS="64,256"; WARMUP=1; WRK_THREADS=2; IDLE=10000
ONLY="nginx,a,b,c"; SERVER_CPUS=""; WRK_CPUS=""; BIN="$ROOT/build/release/flashsale"
OUTPUT=""; KEEP=0; COUNT=status; WAIT_IDLE=0
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

WORK="$(mktemp -d /tmp/flashsale-bench.XXXXXX)"
PIDS=()          # every process started here and not yet reaped; killed on exit
forget() { local p keep=(); for p in "${PIDS[@]}"; do [[ $p == "$1" ]] || keep+=("$p"); done; PIDS=("${keep[@]}"); }
PROBLEMS=()
cleanup() {
    local rc=$?
    local p
    for p in "${PIDS[@]}"; do
        kill -0 "$p" 2>/dev/null && kill -TERM "$p" 2>/dev/null || true
    done
    for p in "${PIDS[@]}"; do
        for _ in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$p" 2>/dev/null && kill -KILL "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    if [[ $KEEP == 1 || $rc -ne 0 ]]; then
        echo "run_bench: work directory kept: $WORK" >&2
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
problem() { log "PROBLEM: $*"; PROBLEMS+=("$*"); }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
kv() { sed -n "s/.*[[:space:]]$2=\([^[:space:]]*\).*/\1/p" <<<" $1"; }   # kv LINE KEY
kv0() { local v; v="$(kv "$1" "$2")"; echo "${v:-0}"; }                      # missing -> 0
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END {if (NR==0) print "nan"; else if (NR%2) print v[(NR+1)/2]; else printf "%.3f\n", (v[NR/2]+v[NR/2+1])/2}'; }

# Sum of utime+stime (clock ticks) of the given pids.
cpu_ticks() {
    local t=0 p f
    for p in "$@"; do
        f="$(cat "/proc/$p/stat" 2>/dev/null)" || { echo gone; return 0; }
        f="${f##*) }"                           # drop "pid (comm) "
        read -r -a a <<<"$f"
        t=$((t + a[11] + a[12]))                # fields 14 and 15 of stat
    done
    echo "$t"
}
CLK_TCK="$(getconf CLK_TCK)"
# Machine-wide busy ticks (user..steal, /proc/stat "cpu" line, fields 2-9 minus idle+iowait).
machine_busy_ticks() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8 + $9; exit}' /proc/stat; }
# CPU ticks of this script's waited-for children (cutime + cstime of /proc/$$/stat).
children_ticks() { local f; f="$(< /proc/$$/stat)"; f="${f##*) }"; read -r -a a <<<"$f"; echo $((a[13] + a[14])); }

# Cores busy machine-wide over 1 s (nothing of ours runs while this is called): other
# work on the machine (builds, fuzzers) steals CPU from the servers and wrk and makes a
# run meaningless, so it is measured before each scenario and printed in the report.
BUSY_NOTES=()
busy_check() {   # busy_check LABEL   (waits up to --wait-idle seconds for an idle machine)
    local a b busy deadline=$((SECONDS + WAIT_IDLE))
    while :; do
        a="$(head -n 1 /proc/stat)"; sleep 1; b="$(head -n 1 /proc/stat)"
        busy="$(awk -v a="$a" -v b="$b" -v ncpu="$(nproc)" 'BEGIN {
            n = split(a, x); split(b, y); tot = 0
            for (i = 2; i <= 9 && i <= n; i++) tot += y[i] - x[i]   # guest time is in user
            idle = (y[5] - x[5]) + (y[6] - x[6])
            printf "%.2f", (tot - idle) / tot * ncpu }')"
        awk -v b="$busy" 'BEGIN {exit !(b > 0.15)}' || return 0
        [[ $SECONDS -lt $deadline ]] || break
    done
    log "WARNING: before $1 the machine was already busy: $busy cores used by other processes"
    BUSY_NOTES+=("before $1: $busy cores busy with other processes")
}

wait_ready() {   # wait_ready PID URL LOG
    local pid=$1 url=$2 logf=$3
    for _ in $(seq 1 300); do
        kill -0 "$pid" 2>/dev/null || { log "server exited during start-up:"; tail -n 20 "$logf" >&2; return 1; }
        [[ "$(curl -s -o /dev/null -w '%{http_code}' "$url" 2>/dev/null || true)" == 200 ]] && return 0
        sleep 0.1
    done
    log "no 200 from $url after 30 s"; tail -n 20 "$logf" >&2; return 1
}

stop_pid() {     # stop_pid PID NAME -> SIGTERM, wait up to 30 s, record exit code
    local pid=$1 name=$2 rc=0
    if ! kill -0 "$pid" 2>/dev/null; then
        wait "$pid" 2>/dev/null || rc=$?
        forget "$pid"
        local how="exit code $rc"; [[ $rc -gt 128 ]] && how="killed by signal $((rc - 128)) ($(kill -l $((rc - 128)) 2>/dev/null))"
        problem "$name was not running at shutdown: it had exited on its own, $how (exit 0 = it got SIGTERM/SIGINT from elsewhere)"
        return 0
    fi
    kill -TERM "$pid"
    for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
        problem "$name still running 30 s after SIGTERM (killed)"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || rc=$?
    forget "$pid"
    [[ $rc == 0 ]] || problem "$name exited with code $rc after SIGTERM"
    log "$name stopped (SIGTERM, exit code $rc)"
}

# ---------------------------------------------------------------------------- servers
NGINX_PID=""; NGINX_URL=""
NGINX_BODY='{"code":400,"data":false,"status":"SOLD_OUT"}'
while [[ ${#NGINX_BODY} -lt 50 ]]; do NGINX_BODY="${NGINX_BODY%\}} }"; done
[[ ${#NGINX_BODY} == 50 ]] || { echo "run_bench: nginx body is not 50 bytes" >&2; exit 1; }

start_nginx() {
    local prefix="$WORK/nginx" port
    port="$(free_port)"
    mkdir -p "$prefix/tmp" "$prefix/logs"
    local wconn=$(( NOFILE > 20000 ? 20000 : NOFILE - 64 ))
    cat >"$prefix/nginx.conf" <<EOF
# written by bench/run_bench.sh
worker_processes $THREADS;
worker_rlimit_nofile $NOFILE;
pid $prefix/nginx.pid;
error_log $prefix/logs/error.log warn;
events {
    worker_connections $wconn;
}
http {
    access_log off;
    server_tokens off;
    keepalive_timeout 75s;
    keepalive_requests 1000000000;
    client_body_temp_path $prefix/tmp/body;
    proxy_temp_path $prefix/tmp/proxy;
    fastcgi_temp_path $prefix/tmp/fastcgi;
    uwsgi_temp_path $prefix/tmp/uwsgi;
    scgi_temp_path $prefix/tmp/scgi;
    server {
        listen 127.0.0.1:$port;
        location / {
            default_type application/json;
            return 200 '$NGINX_BODY';
        }
    }
}
EOF
    "${PIN_SERVER[@]}" nginx -p "$prefix" -c "$prefix/nginx.conf" -e "$prefix/logs/error.log" \
        -g 'daemon off; master_process on;' >"$WORK/nginx.out" 2>&1 &
    NGINX_PID=$!
    PIDS+=("$NGINX_PID")
    NGINX_URL="http://127.0.0.1:$port"
    wait_ready "$NGINX_PID" "$NGINX_URL/" "$prefix/logs/error.log"
    local got
    got="$(curl -s -X POST -H 'Content-Type: application/json' --data '{"user_id":1,"product_id":1,"amount":1}' "$NGINX_URL/purchase")"
    [[ "$got" == "$NGINX_BODY" ]] || { problem "nginx answered '$got'"; return 1; }
    log "nginx ready: $NGINX_URL (pid $NGINX_PID, $THREADS workers), body ${#got} bytes: $got"
}

nginx_pids() {  # master + workers
    echo "$NGINX_PID"
    ps -o pid= --ppid "$NGINX_PID" 2>/dev/null | tr -d ' '
}

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
        --log-level warn "$@") >"$FS_LOG" 2>&1 &
    FS_PID=$!
    PIDS+=("$FS_PID")
    wait_ready "$FS_PID" "$FS_URL/healthz" "$FS_LOG"
    log "flashsale ($name) ready: $FS_URL (pid $FS_PID, --threads $THREADS $*)"
}

vmrss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

# ---------------------------------------------------------------------------- wrk
declare -A R_RPS R_P50 R_P99 R_CPU
SCEN_ORDER=()
WRK_LINE=""
WRK_INV=0
SERVER_DEAD=0

# run_wrk LABEL URL CONNS SECS EXPECT_STATUS CPU_PIDS -- lua args...
# Sets WRK_LINE (the WRKRESULT line plus cpu=<cores>); records problems.
run_wrk() {
    local label=$1 url=$2 conns=$3 secs=$4 expect=$5 cpu_pids=$6; shift 7
    WRK_INV=$((WRK_INV + 1))
    local out="$WORK/wrk-$(printf '%03d' $WRK_INV)-$label-c$conns.log"
    local t0 t1 c0 c1
    # shellcheck disable=SC2086
    c0="$(cpu_ticks $cpu_pids)"; t0="$(date +%s.%N)"
    local m0 k0 m1 k1
    m0="$(machine_busy_ticks)"; k0="$(children_ticks)"
    # In the background + wait, so that a signal to this script is handled at once.
    "${PIN_WRK[@]}" wrk -t "$WRK_THREADS" -c "$conns" -d "${secs}s" --timeout 5s --latency \
        -s "$PURCHASE_LUA" "$url/purchase" -- "$@" >"$out" 2>&1 &
    local wpid=$!
    PIDS+=("$wpid")
    wait "$wpid" || true
    forget "$wpid"
    # shellcheck disable=SC2086
    c1="$(cpu_ticks $cpu_pids)"; t1="$(date +%s.%N)"
    m1="$(machine_busy_ticks)"; k1="$(children_ticks)"
    WRK_LINE="$(grep '^WRKRESULT' "$out" | tail -n 1 || true)"
    SERVER_DEAD=0
    local first_pid="${cpu_pids%%$'\n'*}"
    if ! kill -0 "$first_pid" 2>/dev/null; then
        SERVER_DEAD=1
        problem "$label c=$conns: the server (pid $first_pid) is gone: it stopped during this run"
    fi
    if [[ -z "$WRK_LINE" ]]; then
        problem "$label c=$conns: wrk produced no result (see $out)"; tail -n 5 "$out" >&2
        WRK_LINE="WRKRESULT requests=0 rps=0 p50_ms=nan p99_ms=nan"
        return 0
    fi
    local cores="n/a"
    [[ $c0 == gone || $c1 == gone ]] || cores="$(awk -v c="$((c1 - c0))" -v hz="$CLK_TCK" -v a="$t0" -v b="$t1" 'BEGIN {printf "%.2f", c/hz/(b-a)}')"
    # Everything else the machine did meanwhile: busy - server - wrk (our waited child).
    local other="n/a"
    [[ $cores == n/a ]] || other="$(awk -v m="$((m1 - m0))" -v s="$((c1 - c0))" -v w="$((k1 - k0))" \
        -v hz="$CLK_TCK" -v a="$t0" -v b="$t1" 'BEGIN {o = (m - s - w)/hz/(b-a); if (o < 0) o = 0; printf "%.2f", o}')"
    WRK_LINE="$WRK_LINE cpu=$cores other=$other"
    if awk -v o="$other" 'BEGIN {exit !(o != "n/a" && o + 0 > 0.2)}'; then
        BUSY_NOTES+=("$label c=$conns: $other cores used by other processes during the run")
        log "WARNING: $label c=$conns: $other cores used by other processes during the run"
    fi
    local req errs k
    req="$(kv "$WRK_LINE" requests)"
    errs=""
    for k in err_connect err_read err_write err_timeout http_ge400; do
        [[ "$(kv "$WRK_LINE" $k)" == 0 ]] || errs+=" $k=$(kv "$WRK_LINE" $k)"
    done
    [[ -z "$errs" ]] || problem "$label c=$conns:$errs"
    [[ $COUNT == none || "$(kv "$WRK_LINE" http_200)" == "$req" ]] || problem "$label c=$conns: $req responses but http_200=$(kv "$WRK_LINE" http_200)"
    if [[ -n "$expect" && $COUNT == status ]]; then
        local got sampled
        got="$(kv "$WRK_LINE" "status_$expect")"; sampled="$(kv "$WRK_LINE" status_SAMPLED)"
        if [[ "${got:-0}" != "$sampled" || "${sampled:-0}" == 0 ]]; then
            problem "$label c=$conns: expected every status $expect, got: $(grep -o 'status_[A-Z_]*=[0-9]*' <<<"$WRK_LINE" | tr '\n' ' ')"
        fi
    fi
    log "$label c=$conns: $(kv "$WRK_LINE" rps) req/s p50 $(kv "$WRK_LINE" p50_ms) ms p99 $(kv "$WRK_LINE" p99_ms) ms, server CPU $cores cores, other processes $other cores ($req responses)"
}

# measure SCENARIO URL EXPECT CPU_PIDS_FN -- lua args...   (warm-up, then RUNS x each conns)
# lua args may contain @BASE@, replaced by a user-id base unique to each wrk invocation.
ACCEPTED_TOTAL=0; INFLIGHT_MAX=0
measure() {
    local scen=$1 url=$2 expect=$3 pidfn=$4; shift 5
    local lua_args=("$@") c r i a
    SCEN_ORDER+=("$scen")
    SERVER_DEAD=0
    subst() { local out=() x; for x in "${lua_args[@]}"; do out+=("${x//@BASE@/$(( (WRK_INV + 1) * 10000000000 ))}"); done; printf '%s\n' "${out[@]}"; }
    if [[ $WARMUP -gt 0 ]]; then
        mapfile -t a < <(subst)
        run_wrk "$scen-warmup" "$url" "${CONN_LIST[-1]}" "$WARMUP" "$expect" "$($pidfn)" -- "${a[@]}"
        ACCEPTED_TOTAL=$((ACCEPTED_TOTAL + $(kv0 "$WRK_LINE" status_ACCEPTED)))
        INFLIGHT_MAX=$((INFLIGHT_MAX + ${CONN_LIST[-1]}))
    fi
    for c in "${CONN_LIST[@]}"; do
        local rps=() p50=() p99=() cpu=()
        for ((r = 1; r <= RUNS; r++)); do
            [[ $SERVER_DEAD == 0 ]] || break
            mapfile -t a < <(subst)
            run_wrk "$scen" "$url" "$c" "$DURATION" "$expect" "$($pidfn)" -- "${a[@]}"
            rps+=("$(kv "$WRK_LINE" rps)"); p50+=("$(kv "$WRK_LINE" p50_ms)")
            p99+=("$(kv "$WRK_LINE" p99_ms)"); cpu+=("$(kv "$WRK_LINE" cpu)")
            ACCEPTED_TOTAL=$((ACCEPTED_TOTAL + $(kv0 "$WRK_LINE" status_ACCEPTED)))
            INFLIGHT_MAX=$((INFLIGHT_MAX + c))
        done
        [[ ${#rps[@]} -gt 0 ]] || { rps=(nan); p50=(nan); p99=(nan); cpu=(n/a); }
        R_RPS[$scen,$c]="$(median "${rps[@]}")"; R_P50[$scen,$c]="$(median "${p50[@]}")"
        R_P99[$scen,$c]="$(median "${p99[@]}")"; R_CPU[$scen,$c]="$(median "${cpu[@]}")"
    done
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
