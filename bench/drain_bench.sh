#!/usr/bin/env bash
# Consumer drain benchmark (issue 3 (c)): N orders pre-filled in a fresh topic prefix's
# product_orders, then `flashsale consume --drain` persists them into PostgreSQL; repeated
# RUNS times (each run: orders truncated, products' sold reset, a fresh consumer group so
# it re-reads the same N messages). Prints each run's orders/s (from consume's own log
# line) and the median; checks SELECT count(*) FROM orders == N after every run.
#
#   bench/drain_bench.sh [-n N] [-r RUNS] [--batch-size B] [--workers W] [--profile] [-o FILE] [--keep]
#
# Server set as bench/run_dist_bench.sh (FLASHSALE_VAR=/tmp/fs-bench, REDIS_PORT 46379,
# PG_PORT 45432, KAFKA_PORT 49092, KAFKA_CONTROLLER_PORT 49093); started when not running
# and then stopped at the end. Needs kcat, psql, python3.
# The 1000 products 3000001-3001000 are upserted straight into the products table (stock
# and limit_per_user 10^9), so that every order is CONFIRMED; orders use distinct users.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BENCH_NAME=drain_bench
N=1000000; RUNS=3; BATCH=""; WORKERS=""; PROFILE=0; OUTPUT=""; KEEP=0; BIN="$ROOT/build/release/flashsale"
while [[ $# -gt 0 ]]; do
    case "$1" in
        -n) N="$2"; shift 2 ;;
        -r|--runs) RUNS="$2"; shift 2 ;;
        --batch-size) BATCH="$2"; shift 2 ;;
        --workers) WORKERS="$2"; shift 2 ;;
        --profile) PROFILE=1; shift ;;
        --bin) BIN="$2"; shift 2 ;;
        -o|--output) OUTPUT="$2"; shift 2 ;;
        --keep) KEEP=1; shift ;;
        -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
        *) echo "$BENCH_NAME: unknown option: $1" >&2; exit 2 ;;
    esac
done
for tool in kcat psql python3; do command -v "$tool" >/dev/null || { echo "$BENCH_NAME: $tool not found" >&2; exit 2; }; done
[[ -x "$BIN" ]] || { echo "$BENCH_NAME: $BIN not found (build it first)" >&2; exit 2; }

export FLASHSALE_VAR="${FLASHSALE_VAR:-/tmp/fs-bench}" REDIS_PORT="${REDIS_PORT:-46379}"
export PG_PORT="${PG_PORT:-45432}" KAFKA_PORT="${KAFKA_PORT:-49092}"
export KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-49093}"
KAFKA="127.0.0.1:$KAFKA_PORT"
PG_URL="postgresql://flashsale:flashsale@127.0.0.1:$PG_PORT/flashsale"
PSQL=(psql -q -X -v ON_ERROR_STOP=1 -At "$PG_URL")
WORK="$(mktemp -d /tmp/drain-bench.XXXXXX)"
STARTED_SERVERS=0; CHILD=""
cleanup() {
    local rc=$?
    [[ -z "$CHILD" ]] || { kill -TERM "$CHILD" 2>/dev/null || true; wait "$CHILD" 2>/dev/null || true; }
    [[ $STARTED_SERVERS == 0 ]] || "$ROOT/scripts/servers/all.sh" stop >"$WORK/servers-stop.log" 2>&1 || true
    if [[ $KEEP == 1 || $rc -ne 0 ]]; then echo "$BENCH_NAME: work directory kept: $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
CLK_TCK="$(getconf CLK_TCK)"
ticks_of() { local t=0 p f; for p in "$@"; do f="$(cat "/proc/$p/stat" 2>/dev/null)" || continue; f="${f##*) }"; read -r -a a <<<"$f"; t=$((t + a[11] + a[12])); done; echo "$t"; }
pg_ticks() { local m; m="$(head -n 1 "$FLASHSALE_VAR/postgres/data/postmaster.pid" 2>/dev/null || echo 0)"; ticks_of "$m" $(pgrep -P "$m" 2>/dev/null); }
kafka_ticks() { ticks_of "$(cat "$FLASHSALE_VAR/kafka/kafka.pid" 2>/dev/null || echo 0)"; }
children_ticks() { local f; f="$(< /proc/$$/stat)"; f="${f##*) }"; read -r -a a <<<"$f"; echo $((a[13] + a[14])); }
busy_ticks() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8 + $9; exit}' /proc/stat; }
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END {if (NR%2) print v[(NR+1)/2]; else printf "%.0f\n", (v[NR/2]+v[NR/2+1])/2}'; }

if ! "$ROOT/scripts/servers/all.sh" status >/dev/null 2>&1; then
    "$ROOT/scripts/servers/all.sh" start >"$WORK/servers-start.log" 2>&1 || { cat "$WORK/servers-start.log" >&2; exit 1; }
    STARTED_SERVERS=1
fi

PREFIX="drain$(date +%s)."
TOPIC="${PREFIX}product_orders"
# The schema is created by `flashsale serve` (distributed) on its first start. (`flashsale
# seed --redis ... --database postgresql://...` answers "--database must be sqlite:PATH in
# embedded mode" at git 468307c, so it is not used here.)
if [[ "$("${PSQL[@]}" -c "SELECT to_regclass('public.orders') IS NOT NULL AND to_regclass('public.products') IS NOT NULL")" != t ]]; then
    log "no orders/products tables in $PG_URL: start flashsale serve (distributed) once, e.g. bench/run_dist_bench.sh --only a"
    exit 1
fi
"${PSQL[@]}" -c "INSERT INTO products (product_id, price, stock, limit_per_user, sold)
    SELECT g, 12.5, 1000000000, 1000000000, 0 FROM generate_series(3000001, 3001000) g
    ON CONFLICT (product_id) DO UPDATE SET price = 12.5, stock = 1000000000,
        limit_per_user = 1000000000, sold = 0, starts_at = NULL, ends_at = NULL"
for t in product_orders:6 product_status_change_topic:1 product_orders.dlq:1; do
    "$ROOT/scripts/servers/kafka.sh" tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$KAFKA" \
        --create --if-not-exists --topic "$PREFIX${t%%:*}" --partitions "${t##*:}" --replication-factor 1 \
        >>"$WORK/topics.log" 2>&1 || { cat "$WORK/topics.log" >&2; exit 1; }   # one at a time: kafka.sh tool rewrites its log4j file
done
log "topics ${PREFIX}{product_orders,product_status_change_topic,product_orders.dlq} created"

# Pre-fill: N orders, key = product id, value per SPEC §5, unique 24-hex order ids.
t0=$(date +%s.%N)
python3 - "$N" <<'EOF' | kcat -P -b "$KAFKA" -t "$TOPIC" -K: -z none -X acks=all -X linger.ms=5 \
    -X batch.num.messages=10000 -X queue.buffering.max.messages=1000000 -X enable.idempotence=true
import sys, os, time
n = int(sys.argv[1]); tag = os.urandom(4).hex(); now = int(time.time() * 1000)
out = sys.stdout; buf = []
for i in range(n):
    pid = 3000001 + i % 1000
    buf.append(f'{pid}:{{"order_id":"{tag}{i:016x}","item_id":{pid},"user_id":{i},"quantity":1,"price":12.5,"time":{now}}}\n')
    if len(buf) == 10000:
        out.write(''.join(buf)); buf = []
out.write(''.join(buf))
EOF
t1=$(date +%s.%N)
held=$(kcat -C -b "$KAFKA" -t "$TOPIC" -o beginning -e -q -f 'x\n' 2>/dev/null | wc -l)
log "pre-filled $held messages into $TOPIC in $(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.1f", b-a}') s"
[[ $held -eq $N ]] || { log "expected $N messages, the topic holds $held"; exit 1; }

RATES=(); SECS=(); PROBLEMS=(); CPUS=()
for ((r = 1; r <= RUNS; r++)); do
    "${PSQL[@]}" -c "TRUNCATE orders; UPDATE products SET sold = 0"
    group="drain-$(date +%s)-$r"
    cmd=("$BIN" consume --kafka "$KAFKA" --database "$PG_URL" --topic-prefix "$PREFIX" --group "$group" --drain)
    [[ -z "$BATCH" ]] || cmd+=(--batch-size "$BATCH")
    [[ -z "$WORKERS" ]] || cmd+=(--workers "$WORKERS")
    dir="$WORK/run$r"; mkdir -p "$dir"
    log "run $r: ${cmd[*]}"
    if [[ $PROFILE == 1 && $r == 1 ]] && command -v perf >/dev/null; then
        (cd "$dir" && exec perf record -F 999 -g -o "$WORK/perf-drain.data" -- "${cmd[@]}") >"$dir/consume.log" 2>&1 &
    else
        (cd "$dir" && exec "${cmd[@]}") >"$dir/consume.log" 2>&1 &
    fi
    CHILD=$!
    pg0="$(pg_ticks)"; k0="$(kafka_ticks)"; c0="$(children_ticks)"; m0="$(busy_ticks)"; w0="$(date +%s.%N)"
    # PostgreSQL's backend for consume exits with it: sample the cluster's ticks while it runs.
    pgl="$pg0"
    while kill -0 "$CHILD" 2>/dev/null; do t="$(pg_ticks)"; [[ $t -gt $pgl ]] && pgl=$t; sleep 0.25; done
    wait "$CHILD" || PROBLEMS+=("run $r: consume exited with $?")
    CHILD=""
    pg1="$pgl"; k1="$(kafka_ticks)"; c1="$(children_ticks)"; m1="$(busy_ticks)"; w1="$(date +%s.%N)"
    CPU_LINE="$(awk -v w="$(awk -v a="$w0" -v b="$w1" 'BEGIN {print b - a}')" -v hz="$CLK_TCK" -v c=$((c1 - c0)) \
        -v pg=$((pg1 - pg0)) -v k=$((k1 - k0)) -v m=$((m1 - m0)) 'BEGIN {
        o = (m - c - pg - k) / hz / w; if (o < 0) o = 0
        printf "%.2f %.2f %.2f %.2f", c / hz / w, pg / hz / w, k / hz / w, o }')"
    CPUS+=("$CPU_LINE")
    line="$(grep -ho 'drained .*' "$dir/consume.log" "$dir"/logs/*.log 2>/dev/null | tail -n 1 || true)"
    rate="$(sed -n 's/.*(\([0-9.]*\) orders\/s).*/\1/p' <<<"$line")"
    secs="$(sed -n 's/.* in \([0-9.]*\) s .*/\1/p' <<<"$line")"
    count="$("${PSQL[@]}" -c 'SELECT count(*) FROM orders')"
    conf="$("${PSQL[@]}" -c "SELECT count(*) FROM orders WHERE status = 'CONFIRMED'")"
    log "run $r: $line; orders in the database: $count (CONFIRMED $conf); cores over the whole process (incl. 2 s idle tail) consume/postgres/kafka/other: $CPU_LINE"
    [[ "$count" == "$N" ]] || PROBLEMS+=("run $r: $count orders in the database, expected $N")
    [[ -n "$rate" ]] && { RATES+=("$rate"); SECS+=("$secs"); } || PROBLEMS+=("run $r: no 'drained' line in the log")
done
if [[ $PROFILE == 1 && -f "$WORK/perf-drain.data" ]]; then
    perf report -i "$WORK/perf-drain.data" --no-children --sort symbol --stdio 2>/dev/null | grep -v '^$' | head -n 400 >"$WORK/perf-drain-self.txt" || true
    perf report -i "$WORK/perf-drain.data" --no-children --sort comm,dso --stdio 2>/dev/null | grep -v '^#' | grep -v '^$' | head -n 30 >"$WORK/perf-drain-dso.txt" || true
    log "drain profile (run 1, perf record -g): $WORK/perf-drain-self.txt, $WORK/perf-drain-dso.txt"
    KEEP=1
fi
med="nan"; [[ ${#RATES[@]} -eq 0 ]] || med="$(median "${RATES[@]}")"
REPORT="$WORK/report.md"
{
    echo "#### flashsale consumer drain ($(date -u +%Y-%m-%dT%H:%M:%SZ), git $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null))"
    echo
    echo "$N orders pre-filled in \`$TOPIC\` (6 partitions), drained into PostgreSQL 15 by" \
         "\`flashsale consume --drain${BATCH:+ --batch-size $BATCH}${WORKERS:+ --workers $WORKERS}\` with a fresh group per run; orders table truncated before each run."
    echo
    echo "| run | orders/s (consume's log line) | seconds | cores: consume | PostgreSQL | Kafka | other processes |"
    echo "|---:|---:|---:|---:|---:|---:|---:|"
    for i in "${!RATES[@]}"; do read -r cc cp ck co <<<"${CPUS[$i]}"; printf '| %d | %.0f | %s | %s | %s | %s | %s |\n' $((i + 1)) "${RATES[$i]}" "${SECS[$i]}" "$cc" "$cp" "$ck" "$co"; done
    printf '| **median** | **%.0f** | | | | | |\n' "$med"
    echo
    echo "Cores are averaged over the whole consume process (start-up and its 2 s idle tail included), from /proc."
    echo
    if awk -v m="$med" 'BEGIN {exit !(m == m + 0 && m >= 50000)}'; then echo "Check: PASS median $med orders/s >= 50,000"
    else echo "Check: FAIL median $med orders/s < 50,000"; PROBLEMS+=("median $med orders/s < 50000"); fi
    if [[ ${#PROBLEMS[@]} -gt 0 ]]; then echo; echo "**Problems:**"; for p in "${PROBLEMS[@]}"; do echo "- $p"; done; fi
} >"$REPORT"
echo; cat "$REPORT"
[[ -z "$OUTPUT" ]] || cp "$REPORT" "$OUTPUT"
[[ ${#PROBLEMS[@]} -eq 0 ]] || exit 1
