# bench/lib.sh — helpers shared by the distributed benchmarks (sourced, not run).
# Sourced by bench/run_bench.sh and bench/run_dist_bench.sh: process bookkeeping + cleanup
# trap, logging, CPU accounting, the nginx ceiling and the wrk runner with medians.
#
# The sourcing script sets before sourcing: ROOT, KEEP, WAIT_IDLE, THREADS, WRK_THREADS,
# COUNT, RUNS, DURATION, WARMUP, CONN_LIST (array), PIN_SERVER / PIN_WRK (arrays, may be
# empty), PURCHASE_LUA, NOFILE, BENCH_NAME (and BENCH_TMP, the work directory's name,
# default BENCH_NAME); and gets WORK (a fresh work directory).

WORK="$(mktemp -d "/tmp/${BENCH_TMP:-${BENCH_NAME:-flashsale-bench}}.XXXXXX")"
PIDS=()          # every process started here and not yet reaped; killed on exit
forget() { local p keep=(); for p in "${PIDS[@]}"; do [[ $p == "$1" ]] || keep+=("$p"); done; PIDS=("${keep[@]}"); }
PROBLEMS=()
cleanup() {
    local rc=$?
    local p
    # Optional hook of the sourcing script (e.g. stop a server set it started).
    if declare -F bench_cleanup_hook >/dev/null; then bench_cleanup_hook || true; fi
    for p in "${PIDS[@]}"; do
        kill -0 "$p" 2>/dev/null && kill -TERM "$p" 2>/dev/null || true
    done
    for p in "${PIDS[@]}"; do
        for _ in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$p" 2>/dev/null && kill -KILL "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    if [[ $KEEP == 1 || $rc -ne 0 ]]; then
        echo "$BENCH_NAME: work directory kept: $WORK" >&2
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
[[ ${#NGINX_BODY} == 50 ]] || { echo "$BENCH_NAME: nginx body is not 50 bytes" >&2; exit 1; }

start_nginx() {
    local prefix="$WORK/nginx" port
    port="$(free_port)"
    mkdir -p "$prefix/tmp" "$prefix/logs"
    local wconn=$(( NOFILE > 20000 ? 20000 : NOFILE - 64 ))
    cat >"$prefix/nginx.conf" <<EOF
# written by bench/lib.sh
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


vmrss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

# ---------------------------------------------------------------------------- wrk
declare -A R_RPS R_P50 R_P99 R_CPU R_ERR
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
        local rps=() p50=() p99=() cpu=() errsum=0
        for ((r = 1; r <= RUNS; r++)); do
            [[ $SERVER_DEAD == 0 ]] || break
            mapfile -t a < <(subst)
            run_wrk "$scen" "$url" "$c" "$DURATION" "$expect" "$($pidfn)" -- "${a[@]}"
            rps+=("$(kv "$WRK_LINE" rps)"); p50+=("$(kv "$WRK_LINE" p50_ms)")
            p99+=("$(kv "$WRK_LINE" p99_ms)"); cpu+=("$(kv "$WRK_LINE" cpu)")
            ACCEPTED_TOTAL=$((ACCEPTED_TOTAL + $(kv0 "$WRK_LINE" status_ACCEPTED)))
            INFLIGHT_MAX=$((INFLIGHT_MAX + c))
            # socket errors + HTTP >= 400 (+ responses other than 200 when counted), all runs
            local k
            for k in err_connect err_read err_write err_timeout http_ge400; do
                errsum=$((errsum + $(kv0 "$WRK_LINE" $k)))
            done
            if [[ $COUNT != none ]]; then
                errsum=$((errsum + $(kv0 "$WRK_LINE" requests) - $(kv0 "$WRK_LINE" http_200)))
            fi
        done
        R_ERR[$scen,$c]=$errsum
        [[ ${#rps[@]} -gt 0 ]] || { rps=(nan); p50=(nan); p99=(nan); cpu=(n/a); }
        R_RPS[$scen,$c]="$(median "${rps[@]}")"; R_P50[$scen,$c]="$(median "${p50[@]}")"
        R_P99[$scen,$c]="$(median "${p99[@]}")"; R_CPU[$scen,$c]="$(median "${cpu[@]}")"
    done
}


# report_notes [CAPTION] — the report's last lists (call inside the block that writes
# $REPORT): the busy-machine notes under CAPTION (default: figures are not comparable), and
# this run's problems.
report_notes() {
    local p caption="${1:-(figures are not comparable):}"
    if [[ ${#BUSY_NOTES[@]} -gt 0 ]]; then
        echo
        echo "**The machine was not idle** $caption"
        for p in "${BUSY_NOTES[@]}"; do echo "- $p"; done
    fi
    if [[ ${#PROBLEMS[@]} -gt 0 ]]; then
        echo
        echo "**Problems in this run:**"
        for p in "${PROBLEMS[@]}"; do echo "- $p"; done
    fi
}

# publish_report — prints $REPORT, copies it to $OUTPUT when set, and fails the run when it
# recorded problems.
publish_report() {
    echo
    cat "$REPORT"
    [[ -z "$OUTPUT" ]] || cp "$REPORT" "$OUTPUT"
    [[ ${#PROBLEMS[@]} -eq 0 ]] || exit 1
}
