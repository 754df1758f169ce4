#!/usr/bin/env bash
# Redis, PostgreSQL and Kafka for distributed mode, all at once.
#
#   scripts/servers/all.sh start|stop|status|restart
#   scripts/servers/all.sh env      prints export lines:  eval "$(scripts/servers/all.sh env)"
set -euo pipefail
FS_NAME=servers  # message prefix, read by common.sh
# shellcheck source-path=SCRIPTDIR source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
D="$FS_SERVERS_DIR"

print_env() {
  printf 'export REDIS_URL=%q\n' "$("$D/redis.sh" url)"
  printf 'export KAFKA_BOOTSTRAP_SERVERS=%q\n' "$("$D/kafka.sh" bootstrap)"
  printf 'export DATABASE_URL=%q\n' "$("$D/postgres.sh" url)"
}

cmd_start() {
  local t0; t0=$(fs_now_ms)
  "$D/redis.sh" start
  "$D/postgres.sh" start
  "$D/kafka.sh" start
  fs_info "all started in $(fs_elapsed "$t0"); for flashsale:"
  print_env | sed 's/^/  /'
}

# Stops in the reverse order and goes on past a failure; fails if any failed.
cmd_stop() {
  local rc=0
  "$D/kafka.sh" stop || rc=1
  "$D/postgres.sh" stop || rc=1
  "$D/redis.sh" stop || rc=1
  return $rc
}

# 0 when all three run; otherwise 3 (or 1 when one runs but does not answer).
cmd_status() {
  local rc=0 r s
  for s in redis postgres kafka; do
    r=0; "$D/$s.sh" status || r=$?
    if (( r != 0 && rc != 1 )); then rc=$r; fi
  done
  return $rc
}

case "${1:-}" in
  start)   cmd_start ;;
  stop)    cmd_stop ;;
  restart) cmd_stop; cmd_start ;;
  status)  cmd_status ;;
  env)     print_env ;;
  *) echo "usage: $0 {start|stop|status|restart|env}" >&2; exit 2 ;;
esac
