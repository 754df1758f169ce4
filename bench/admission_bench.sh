#!/usr/bin/env bash
# Rate limits' cost (issue 10 §1, README "Rate limits"), in one run on this machine, loopback:
#
#   (off/on)  the sold-out path of bench/run_bench.sh's (a) (1000 products, stock 0, users
#             0..199), every
#             request with an X-Forwarded-For drawn from 65,536 addresses, on two servers
#             side by side: limits off, and limits on with rates nobody reaches
#             (--rate-limit-address/--rate-limit-user 1e6/s, --trusted-proxies 127.0.0.1).
#             wrk runs interleaved off, on, off, on ...; medians of requests/s and the ratio.
#   (perf)    perf record of the limits-on server under the same load; the share of its
#             samples in the limiter's symbols (RateLimiter, ResolveClient, ClientAddress,
#             TrustedProxies, Api::LimitAddress/LimitUser/ClientOf, MixKey).
#   (memory)  a fresh server with the address limit on (10/s burst 20, --trusted-proxies
#             127.0.0.1): VmRSS before and after 1,000,000 distinct client
#             addresses sent through X-Forwarded-For by wrk (each request a new address).
#
#   bench/admission_bench.sh [-d SECS] [-r RUNS] [-t THREADS] [-c CONNS] [--addresses N]
#                            [--xff-pool N] [--no-memory] [--bin PATH] [-o FILE] [--keep]
#   --xff-pool N: the off/on load's X-Forwarded-For is one of N addresses (default 65536);
#                 0: no header, run_bench.sh (a)'s requests exactly (one client, 127.0.0.1).
#   --no-memory:  skip the memory run.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DURATION=10; RUNS=3; THREADS=2; CONNS=64; ADDRESSES=1000000; BIN="$ROOT/build/release/flashsale"
OUTPUT=""; KEEP=0; WRK_THREADS=2; XFF_POOL=65536; MEMORY=1
while [[ $# -gt 0 ]]; do
    case "$1" in
        -d|--duration) DURATION="$2"; shift 2 ;;
        -r|--runs) RUNS="$2"; shift 2 ;;
        -t|--threads) THREADS="$2"; shift 2 ;;
        -c|--connections) CONNS="$2"; shift 2 ;;
        --addresses) ADDRESSES="$2"; shift 2 ;;
        --xff-pool) XFF_POOL="$2"; shift 2 ;;
        --no-memory) MEMORY=0; shift ;;
        --bin) BIN="$2"; shift 2 ;;
        -o|--output) OUTPUT="$2"; shift 2 ;;
        --keep) KEEP=1; shift ;;
        -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
        *) echo "admission_bench: unknown option: $1" >&2; exit 2 ;;
    esac
done
for tool in wrk perf curl python3; do
    command -v "$tool" >/dev/null || { echo "admission_bench: $tool not found" >&2; exit 2; }
done
[[ -x "$BIN" ]] || { echo "admission_bench: flashsale binary not found: $BIN" >&2; exit 2; }
BIN="$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")"
ulimit -n 65536 2>/dev/null || true
NOFILE="$(ulimit -n)"

# lib.sh's settings (see its header); the wrk runner reads PURCHASE_LUA, COUNT, WRK_THREADS.
WAIT_IDLE=0; COUNT=status; WARMUP=1; CONN_LIST=("$CONNS"); PIN_SERVER=(); PIN_WRK=()
BENCH_NAME=admission_bench BENCH_TMP=flashsale-admission-bench
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

# purchase.lua with an X-Forwarded-For per request: XFF_MODE=random (one of XFF_ADDRESSES,
# 10.0.0.0 upwards) or distinct (a new address per request from XFF_BASE, split over the wrk
# threads; each thread stops after XFF_QUOTA responses).
PURCHASE_LUA="$WORK/xff.lua"
cat >"$PURCHASE_LUA" <<EOF
dofile("$ROOT/scripts/wrk/purchase.lua")
local base_init, base_request, base_response = init, request, response
local line = "POST /purchase HTTP/1.1\r\n"
local mode, n_addr, next_addr, step, quota, answered
function init(args)
   base_init(args)
   base_response = response
   mode = os.getenv("XFF_MODE") or "random"
   n_addr = tonumber(os.getenv("XFF_ADDRESSES") or "65536")
   step = tonumber(os.getenv("XFF_THREADS") or "1")
   next_addr = tonumber(os.getenv("XFF_BASE") or "0") + (tid - 1)
   quota = tonumber(os.getenv("XFF_QUOTA") or "0")
   answered = 0
   response = function(status, headers, body)
      if base_response then base_response(status, headers, body) end
      answered = answered + 1
      if quota > 0 and answered >= quota then wrk.thread:stop() end
   end
end
local function quad(a)
   return string.format("%d.%d.%d.%d", 10 + math.floor(a / 16777216) % 240,
                        math.floor(a / 65536) % 256, math.floor(a / 256) % 256, a % 256)
end
function request()
   local a
   if mode == "distinct" then a = next_addr; next_addr = next_addr + step
   else a = math.random(0, n_addr - 1) end
   return line .. "X-Forwarded-For: " .. quad(a) .. "\r\n" .. base_request():sub(#line + 1)
end
EOF

TOKEN="bench-$RANDOM$RANDOM"
FS_PID=""; FS_URL=""
start_fs() {   # start_fs NAME [serve flags...]  -> sets FS_PID, FS_URL
    local name=$1; shift
    local dir="$WORK/$name" port pid
    mkdir -p "$dir"
    port="$(free_port)"
    (cd "$dir" && exec "$BIN" serve --host 127.0.0.1 --port "$port" --database "sqlite:$dir/db" \
        --admin-token "$TOKEN" --threads "$THREADS" --log-level warn --mock-products 0 "$@") \
        >"$dir/server.log" 2>&1 &
    pid=$!
    PIDS+=("$pid")
    wait_ready "$pid" "http://127.0.0.1:$port/healthz" "$dir/server.log"
    python3 "$ROOT/bench/fs_admin.py" put --port "$port" --token "$TOKEN" --ids 1-1000 --stock 0 \
        --price 1 --limit 1 >&2
    FS_PID=$pid; FS_URL="http://127.0.0.1:$port"
}
LIMITS_HIGH=(--rate-limit-address 1000000 --rate-limit-address-burst 1000000
             --rate-limit-user 1000000 --rate-limit-user-burst 1000000 --trusted-proxies 127.0.0.1)
# bench/run_bench.sh's (a) load (users 0..199), plus the X-Forwarded-For.
LOAD=(pid=1-1000 users=random user_max=199 count=$COUNT)

git_rev="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo none)"
cpu_model="$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)"
log "work directory: $WORK; flashsale git $git_rev; wrk -t$WRK_THREADS -c$CONNS -d${DURATION}s x $RUNS"

# ---------------------------------------------------------------------------- off vs on
busy_check "off/on"
start_fs off; OFF_PID=$FS_PID; OFF_URL=$FS_URL
start_fs on "${LIMITS_HIGH[@]}"; ON_PID=$FS_PID; ON_URL=$FS_URL
if [[ $XFF_POOL -gt 0 ]]; then export XFF_MODE=random XFF_ADDRESSES=$XFF_POOL; else PURCHASE_LUA="$ROOT/scripts/wrk/purchase.lua"; fi
run_wrk warmup-off "$OFF_URL" "$CONNS" "$WARMUP" SOLD_OUT "$OFF_PID" -- "${LOAD[@]}"
run_wrk warmup-on "$ON_URL" "$CONNS" "$WARMUP" SOLD_OUT "$ON_PID" -- "${LOAD[@]}"
OFF_RPS=(); ON_RPS=(); OFF_CPU=(); ON_CPU=()
for ((r = 1; r <= RUNS; r++)); do
    run_wrk off "$OFF_URL" "$CONNS" "$DURATION" SOLD_OUT "$OFF_PID" -- "${LOAD[@]}"
    OFF_RPS+=("$(kv "$WRK_LINE" rps)"); OFF_CPU+=("$(kv "$WRK_LINE" cpu)")
    run_wrk on "$ON_URL" "$CONNS" "$DURATION" SOLD_OUT "$ON_PID" -- "${LOAD[@]}"
    ON_RPS+=("$(kv "$WRK_LINE" rps)"); ON_CPU+=("$(kv "$WRK_LINE" cpu)")
done
limited="$(curl -s "$ON_URL/metrics" | awk '/^flashsale_rate_limited_total/ {s += $NF} END {print s + 0}')"
[[ "$limited" == 0 ]] || problem "limits-on server refused $limited requests (rates meant to be unreachable)"

# ---------------------------------------------------------------------------- perf
PERF_DATA="$WORK/perf.data"
log "perf record of the limits-on server (pid $ON_PID) under the same load"
perf record -F 999 -g -o "$PERF_DATA" -p "$ON_PID" -- sleep "$DURATION" >"$WORK/perf.out" 2>&1 &
perf_pid=$!
PIDS+=("$perf_pid")
run_wrk perf "$ON_URL" "$CONNS" "$DURATION" SOLD_OUT "$ON_PID" -- "${LOAD[@]}"
wait "$perf_pid" || problem "perf record failed: $(tail -n 3 "$WORK/perf.out")"
forget "$perf_pid"
LIMITER_RE='RateLimiter|ResolveClient|ClientAddress|TrustedProxies|Api::LimitAddress|Api::LimitUser|Api::ClientOf|MixKey|SendRateLimited'
perf report -i "$PERF_DATA" --no-children --sort symbol --stdio 2>/dev/null >"$WORK/perf.txt" || true
PERF_SHARE="$(awk -v re="$LIMITER_RE" '$1 ~ /%$/ && $0 ~ re {sub("%", "", $1); s += $1} END {printf "%.2f", s}' "$WORK/perf.txt")"
PERF_SYMBOLS="$(awk -v re="$LIMITER_RE" '$1 ~ /%$/ && $0 ~ re {print $1, $3}' "$WORK/perf.txt" | head -n 12)"
PERF_SAMPLES="$(grep -m1 -o '# Samples: [^ ]*' "$WORK/perf.txt" | awk '{print $3}')"
log "limiter share of the samples: $PERF_SHARE % ($PERF_SAMPLES samples)"
stop_pid "$OFF_PID" "flashsale (off)"
stop_pid "$ON_PID" "flashsale (on)"

# ---------------------------------------------------------------------------- memory
RSS0=0; RSS1=0; SENT=0; MEM_RPS=0
if [[ $MEMORY == 1 ]]; then
PURCHASE_LUA="$WORK/xff.lua"
busy_check memory
# The address limit only: the run's 200 users would be over a per-user limit.
start_fs memory --rate-limit-address 10 --rate-limit-address-burst 20 --trusted-proxies 127.0.0.1
MEM_PID=$FS_PID; MEM_URL=$FS_URL
sleep 1
RSS0="$(vmrss_kib "$MEM_PID")"
per_thread=$(( (ADDRESSES + WRK_THREADS - 1) / WRK_THREADS ))
# wrk runs for its whole -d even when every thread stopped at its quota: a watcher sends it
# SIGINT (wrk then reports and exits) once the server answered ADDRESSES purchases.
purchases() { curl -s "$MEM_URL/metrics" | awk '/^flashsale_requests_total\{route="purchase"/ {s += $NF} END {print s + 0}'; }
(
    for _ in $(seq 1 1200); do
        sleep 0.5
        [[ "$(purchases)" -ge "$ADDRESSES" ]] || continue
        sleep 0.5
        w="$(pgrep -P $$ -x wrk || true)"   # this script's own wrk child
        [[ -z "$w" ]] || kill -INT $w
        break
    done
) &
watcher=$!
PIDS+=("$watcher")
XFF_MODE=distinct XFF_BASE=65536 XFF_THREADS=$WRK_THREADS XFF_QUOTA=$per_thread \
    run_wrk mem "$MEM_URL" "$CONNS" 600 "" "$MEM_PID" -- pid=1-1000 users=random user_max=199 count=http
wait "$watcher" 2>/dev/null || true
forget "$watcher"
SENT="$(kv "$WRK_LINE" requests)"
MEM_RPS="$(kv "$WRK_LINE" rps)"
sleep 1
RSS1="$(vmrss_kib "$MEM_PID")"
[[ "${SENT:-0}" -ge "$ADDRESSES" ]] || problem "memory run: only $SENT requests answered (< $ADDRESSES)"
mem_limited="$(curl -s "$MEM_URL/metrics" | awk '/^flashsale_rate_limited_total/ {s += $NF} END {print s + 0}')"
stop_pid "$MEM_PID" "flashsale (memory)"
log "memory: VmRSS $RSS0 -> $RSS1 KiB over $SENT distinct addresses ($mem_limited answered 429)"
fi

# ---------------------------------------------------------------------------- report
RPS_OFF="$(median "${OFF_RPS[@]}")"; RPS_ON="$(median "${ON_RPS[@]}")"
REPORT="$WORK/report.md"
{
    echo "## Rate limits"
    echo
    echo "\`bench/admission_bench.sh -d $DURATION -r $RUNS -t $THREADS -c $CONNS --addresses $ADDRESSES --xff-pool $XFF_POOL$([[ $MEMORY == 1 ]] || echo ' --no-memory')\`" \
         "($(date -u +%Y-%m-%dT%H:%M:%SZ), git $git_rev). Machine: ${cpu_model}, $(nproc) cores," \
         "Linux $(uname -r), loopback; flashsale \`--threads $THREADS\`, wrk \`-t$WRK_THREADS -c$CONNS" \
         "-d${DURATION}s\` with scripts/wrk/purchase.lua (pid=1-1000 users=random user_max=199, as run_bench.sh (a))" \
         "$([[ $XFF_POOL -gt 0 ]] && echo "plus an X-Forwarded-For from $XFF_POOL addresses on every request" || echo "without X-Forwarded-For (every request from one client, 127.0.0.1)");" \
         "servers and wrk share the cores."
    echo
    echo "| sold-out path (1000 products, stock 0) | requests/s, median of $RUNS (runs) | server CPU (cores) |"
    echo "|---|---:|---:|"
    printf '| limits off | %.0f (%s) | %s |\n' "$RPS_OFF" "${OFF_RPS[*]}" "$(median "${OFF_CPU[@]}")"
    printf '| limits on (address + user 10^6/s, trusted proxy 127.0.0.1) | %.0f (%s) | %s |\n' \
        "$RPS_ON" "${ON_RPS[*]}" "$(median "${ON_CPU[@]}")"
    echo
    echo "On / off: **$(awk -v a="$RPS_ON" -v b="$RPS_OFF" 'BEGIN {printf "%.3f", a/b}')** (runs interleaved off, on, off, on, ...)."
    echo
    echo "perf (\`perf record -F 999 -g -p <limits-on server>\` for ${DURATION} s under the same load," \
         "\`perf report --no-children --sort symbol\`): the limiter's symbols take **${PERF_SHARE} %**" \
         "of the server's ${PERF_SAMPLES} samples (target < 3 %). Symbols counted (self time):"
    echo
    echo '```'
    if [[ -n "$PERF_SYMBOLS" ]]; then echo "$PERF_SYMBOLS"; else echo "(none sampled)"; fi
    echo '```'
    echo
    if [[ $MEMORY == 1 ]]; then
    echo "Memory: a fresh server (address limit 10/s burst 20, default" \
         "--rate-limit-slots 2,097,152), then $SENT requests each from a new address" \
         "through X-Forwarded-For (at $(awk -v x="$MEM_RPS" 'BEGIN {printf "%.0f", x}') requests/s)."
    echo
    echo "| VmRSS before | VmRSS after $SENT distinct addresses | growth (target ≤ 64 MiB) |"
    echo "|---:|---:|---:|"
    awk -v a="$RSS0" -v b="$RSS1" 'BEGIN {printf "| %.1f MiB | %.1f MiB | **%.1f MiB** |\n", a/1024, b/1024, (b-a)/1024}'
    fi
    report_notes
} >"$REPORT"
publish_report
