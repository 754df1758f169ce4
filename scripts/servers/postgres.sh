#!/usr/bin/env bash
# Our own PostgreSQL 15 cluster (Debian's postgresql-15 binaries, not the
# cluster the package creates): initdb into var/postgres/data, listen on
# 127.0.0.1:$PG_PORT (15432) only, trust auth on loopback, database and role
# "flashsale". As root the server runs as the "postgres" user (PostgreSQL
# refuses to run as root); otherwise as the current user.
#
#   scripts/servers/postgres.sh start|stop|status|restart|url|psql [psql args...]
set -euo pipefail
FS_NAME=postgres  # message prefix, read by common.sh
# shellcheck source-path=SCRIPTDIR source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

PG_VERSION="${PG_VERSION:-15}"
PG_HOST=127.0.0.1
PG_PORT="${PG_PORT:-15432}"
PG_USER="${PG_USER:-flashsale}"
PG_PASSWORD="${PG_PASSWORD:-flashsale}"
PG_DB="${PG_DB:-flashsale}"
PG_MAX_CONNECTIONS="${PG_MAX_CONNECTIONS:-200}"
PG_START_TIMEOUT="${PG_START_TIMEOUT:-60}"
PG_STOP_TIMEOUT="${PG_STOP_TIMEOUT:-60}"
PG_SUPERUSER=postgres                       # the bootstrap superuser initdb creates
PG_BIN="${PG_BIN:-/usr/lib/postgresql/$PG_VERSION/bin}"

for v in PG_USER PG_DB; do
  [[ "${!v}" =~ ^[a-z_][a-z0-9_]*$ ]] || fs_die "$v='${!v}': use lower-case letters, digits and _ only"
done
[[ "$PG_PASSWORD" != *"'"* ]] || fs_die "PG_PASSWORD must not contain a single quote"

if [[ $(id -u) -eq 0 ]]; then PG_OS_USER="${PG_OS_USER:-postgres}"; else PG_OS_USER="$(id -un)"; fi

# as_pg CMD... — run a server command as the server's OS user, from / (the
# postgres user may not be allowed into our working folder).
as_pg() {
  if [[ "$(id -un)" == "$PG_OS_USER" ]]; then (cd / && "$@")
  else (cd / && runuser -u "$PG_OS_USER" -- "$@")
  fi
}

# The data folder: var/postgres when the server's user can reach it, else a
# folder in /tmp (recorded in var/postgres.location so stop/status find it).
PG_ROOT_FILE="$FS_VAR/postgres.location"
resolve_root() {
  if [[ -n "${PG_ROOT:-}" ]]; then return; fi
  if [[ -s "$PG_ROOT_FILE" ]]; then PG_ROOT="$(cat "$PG_ROOT_FILE")"; return; fi
  PG_ROOT="$FS_VAR/postgres"
}
resolve_root
set_paths() {
  PG_DATA="$PG_ROOT/data"
  PG_RUN="$PG_ROOT/run"
  PG_LOG="$FS_LOG_DIR/postgres.log"
  # Outside var/ (see prepare_dirs) the log moves along: the server writes it.
  [[ "$PG_ROOT" == "$FS_VAR/postgres" ]] || PG_LOG="$PG_ROOT/postgres.log"
}
set_paths

database_url() {
  printf 'postgresql://%s:%s@%s:%s/%s\n' "$PG_USER" "$PG_PASSWORD" "$PG_HOST" "$PG_PORT" "$PG_DB"
}

ensure_installed() {
  if [[ ! -x "$PG_BIN/initdb" || ! -x "$PG_BIN/pg_ctl" ]] || ! command -v psql >/dev/null 2>&1; then
    fs_apt_install "postgresql-$PG_VERSION" "postgresql-client-$PG_VERSION"
  fi
  [[ -x "$PG_BIN/pg_ctl" ]] || fs_die "no $PG_BIN/pg_ctl: install postgresql-$PG_VERSION"
  fs_require_cmd psql "install postgresql-client-$PG_VERSION"
  id "$PG_OS_USER" >/dev/null 2>&1 || fs_die "OS user '$PG_OS_USER' does not exist (it comes with the postgresql-common package)"
}

pg_ctl_() { as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" "$@"; }

# is_running — pg_ctl status says the postmaster in PG_DATA is alive.
server_pid() { head -n1 "$PG_DATA/postmaster.pid" 2>/dev/null | tr -dc '0-9' || true; }

# is_running — the postmaster named in PG_DATA/postmaster.pid is alive (not a
# zombie left by a crash) and pg_ctl agrees.
is_running() {
  local pid; pid="$(server_pid)"
  [[ -n "$pid" ]] && fs_pid_matches "$pid" postgres && pg_ctl_ status >/dev/null 2>&1
}

prepare_dirs() {
  fs_init_dirs
  fs_mkdir "$PG_ROOT"
  if ! as_pg test -x "$PG_ROOT" -a -w "$PG_ROOT" 2>/dev/null; then
    # Make the folder the server's user's own; then check every parent lets it through.
    chown "$PG_OS_USER" "$PG_ROOT" 2>/dev/null || true
  fi
  if ! as_pg test -x "$PG_ROOT" -a -w "$PG_ROOT" 2>/dev/null; then
    local alt
    alt="/tmp/flashsale-postgres-$(id -u)-$(printf '%s' "$FS_VAR" | cksum | cut -d' ' -f1)"
    fs_warn "user '$PG_OS_USER' cannot reach $PG_ROOT (a parent folder is closed to it); using $alt instead"
    PG_ROOT="$alt"; set_paths
    # No var/postgres.location means var/ was reset: so is the old folder.
    [[ -d "$PG_ROOT" ]] && { fs_warn "removing the old $PG_ROOT (var/ was reset)"; rm -rf "$PG_ROOT"; }
    fs_mkdir "$PG_ROOT"; chown "$PG_OS_USER" "$PG_ROOT"
    as_pg test -x "$PG_ROOT" -a -w "$PG_ROOT" || fs_die "user '$PG_OS_USER' cannot write $PG_ROOT either; set PG_ROOT to a folder it can write"
    printf '%s\n' "$PG_ROOT" >"$PG_ROOT_FILE"
  fi
  [[ "$PG_LOG" == "$FS_LOG_DIR/"* ]] || ln -sfn "$PG_LOG" "$FS_LOG_DIR/postgres.log"
  mkdir -p "$PG_RUN"
  chown "$PG_OS_USER" "$PG_RUN"
  chmod 700 "$PG_RUN"
  touch "$PG_LOG"
  chown "$PG_OS_USER" "$PG_LOG"
}

init_cluster() {
  [[ -f "$PG_DATA/PG_VERSION" ]] && return 0
  if [[ -e "$PG_DATA" ]] && [[ -n "$(ls -A "$PG_DATA" 2>/dev/null)" ]]; then
    fs_die "$PG_DATA exists, is not empty and holds no cluster; remove it to start afresh"
  fi
  local t0; t0=$(fs_now_ms)
  mkdir -p "$PG_DATA"
  chown "$PG_OS_USER" "$PG_DATA"
  chmod 700 "$PG_DATA"
  local locale=C.UTF-8
  locale -a 2>/dev/null | grep -qi '^c\.utf-\?8$' || locale=C
  if ! as_pg "$PG_BIN/initdb" -D "$PG_DATA" -U "$PG_SUPERUSER" -E UTF8 --locale="$locale" \
         --auth-local=trust --auth-host=trust --no-instructions >>"$PG_LOG" 2>&1; then
    fs_tail_log "$PG_LOG"
    fs_die "initdb failed (see $PG_LOG)"
  fi
  # Our settings live in flashsale.conf, rewritten on every start.
  printf "\n# flashsale: settings written by scripts/servers/postgres.sh\ninclude_if_exists = 'flashsale.conf'\n" \
    | as_pg tee -a "$PG_DATA/postgresql.conf" >/dev/null
  fs_info "initialized cluster in $PG_DATA in $(fs_elapsed "$t0")"
}

write_conf() {
  local sockdir="$PG_RUN"
  # A Unix socket path must fit in 107 bytes; fall back to TCP only.
  (( ${#sockdir} + 20 > 107 )) && sockdir=""
  as_pg tee "$PG_DATA/flashsale.conf" >/dev/null <<EOF
# Generated by scripts/servers/postgres.sh — edits are overwritten on start.
listen_addresses = '$PG_HOST'
port = $PG_PORT
unix_socket_directories = '$sockdir'
max_connections = $PG_MAX_CONNECTIONS
shared_buffers = 128MB
timezone = 'UTC'
log_timezone = 'UTC'
logging_collector = off
log_line_prefix = '%m [%p] %q%u@%d '
log_min_messages = warning
log_connections = off
EOF
  as_pg tee "$PG_DATA/pg_hba.conf" >/dev/null <<'EOF'
# Generated by scripts/servers/postgres.sh: loopback only, no passwords.
# TYPE  DATABASE  USER  ADDRESS        METHOD
local   all       all                  trust
host    all       all   127.0.0.1/32   trust
host    all       all   ::1/128        trust
EOF
}

ensure_db() {
  psql -X -q -h "$PG_HOST" -p "$PG_PORT" -U "$PG_SUPERUSER" -d postgres -v ON_ERROR_STOP=1 >/dev/null <<EOF
DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$PG_USER') THEN
    CREATE ROLE $PG_USER LOGIN CREATEDB PASSWORD '$PG_PASSWORD';
  END IF;
END \$\$;
SELECT 'CREATE DATABASE $PG_DB OWNER $PG_USER' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '$PG_DB')\gexec
EOF
}

cmd_start() {
  fs_lock
  local t0; t0=$(fs_now_ms)
  ensure_installed
  if is_running; then
    fs_wait_port "$PG_HOST" "$PG_PORT" "$PG_START_TIMEOUT"
    ensure_db || fs_die "cannot create role/database (see $PG_LOG)"
    fs_info "already running (pid $(server_pid)) on $PG_HOST:$PG_PORT"
    fs_info "DATABASE_URL=$(database_url)"
    return 0
  fi
  fs_require_port_free "$PG_HOST" "$PG_PORT" "PG_PORT"
  # After a crash the dead postmaster may linger as a zombie until it is
  # reaped, and PostgreSQL would take its lock file as a live server.
  local lock stale
  for lock in "$PG_DATA/postmaster.pid" "$PG_RUN"/.s.PGSQL.*.lock; do
    [[ -f "$lock" ]] || continue
    stale="$(head -n1 "$lock" 2>/dev/null | tr -dc '0-9')"
    if [[ -n "$stale" ]] && ! fs_pid_matches "$stale" postgres; then
      fs_warn "removing stale lock $lock (pid $stale is gone); the server recovers from its WAL"
      rm -f "$lock"
    fi
  done
  prepare_dirs
  init_cluster
  write_conf
  # 9>&-: the server must not inherit fs_lock's descriptor.
  if ! pg_ctl_ -l "$PG_LOG" -w -t "$PG_START_TIMEOUT" start >/dev/null 2>&1 9>&-; then
    fs_tail_log "$PG_LOG"
    fs_die "pg_ctl start failed (see $PG_LOG)"
  fi
  fs_wait_port "$PG_HOST" "$PG_PORT" "$PG_START_TIMEOUT" "" "$PG_LOG"
  ensure_db || fs_die "cannot create role/database (see $PG_LOG)"
  fs_info "started (pid $(server_pid)) on $PG_HOST:$PG_PORT in $(fs_elapsed "$t0"); data $PG_DATA, log $PG_LOG"
  fs_info "DATABASE_URL=$(database_url)"
}

cmd_stop() {
  fs_lock
  if [[ ! -x "$PG_BIN/pg_ctl" ]] || ! is_running; then
    fs_info "not running"
    return 0
  fi
  local pid; pid="$(server_pid)"
  # fast: roll back open transactions, checkpoint, exit. Committed data is kept.
  if ! pg_ctl_ -m fast -w -t "$PG_STOP_TIMEOUT" stop >/dev/null 2>&1; then
    fs_warn "fast shutdown did not finish in ${PG_STOP_TIMEOUT}s; trying immediate"
    pg_ctl_ -m immediate -w -t 30 stop >/dev/null 2>&1 || fs_die "cannot stop pid $pid (see $PG_LOG)"
  fi
  fs_info "stopped (pid $pid)"
}

cmd_status() {
  if [[ -x "$PG_BIN/pg_ctl" ]] && is_running; then
    if "$PG_BIN/pg_isready" -q -h "$PG_HOST" -p "$PG_PORT" -t 5; then
      fs_info "running (pid $(server_pid)) on $PG_HOST:$PG_PORT; data $PG_DATA; DATABASE_URL=$(database_url)"
      return 0
    fi
    fs_info "pid $(server_pid) alive but not accepting connections on $PG_HOST:$PG_PORT"
    return 1
  fi
  fs_info "not running"
  return 3
}

case "${1:-}" in
  start)   cmd_start ;;
  stop)    cmd_stop ;;
  restart) cmd_stop; cmd_start ;;
  status)  cmd_status ;;
  url)     database_url ;;
  psql)    shift; fs_require_cmd psql "run '$0 start' first (it installs postgresql-client-$PG_VERSION)"
           exec psql -X "$(database_url)" "$@" ;;
  *) echo "usage: $0 {start|stop|status|restart|url|psql [psql args...]}" >&2; exit 2 ;;
esac
