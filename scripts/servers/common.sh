# shellcheck shell=bash
# Shared helpers for scripts/servers/*.sh. Source it; do not run it.
#
# Everything a server writes lives under FS_VAR (default: <repo>/var, which
# .gitignore already ignores): var/<server>/ for data and config, var/log/ for
# the server logs. Point FLASHSALE_VAR somewhere else to run a second, separate
# set of servers (use other ports too).

if [[ -n "${_FS_COMMON_SOURCED:-}" ]]; then return 0; fi
_FS_COMMON_SOURCED=1

FS_SERVERS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
FS_REPO_ROOT="$(cd "$FS_SERVERS_DIR/../.." && pwd)"
FS_VAR="${FLASHSALE_VAR:-$FS_REPO_ROOT/var}"
FS_LOG_DIR="$FS_VAR/log"
FS_NAME="${FS_NAME:-servers}"   # each script sets it; used as the message prefix

# ---------------------------------------------------------------- messages ---
fs_info() { printf '%s: %s\n' "$FS_NAME" "$*"; }
fs_warn() { printf '%s: warning: %s\n' "$FS_NAME" "$*" >&2; }
fs_die()  { printf '%s: error: %s\n' "$FS_NAME" "$*" >&2; exit 1; }

# fs_tail_log FILE [LINES] — show the end of a log on stderr (after a failure).
fs_tail_log() {
  local f="$1" n="${2:-30}"
  if [[ -s "$f" ]]; then
    printf '%s: --- last %s lines of %s ---\n' "$FS_NAME" "$n" "$f" >&2
    tail -n "$n" "$f" >&2
    printf '%s: ---\n' "$FS_NAME" >&2
  fi
}

# ------------------------------------------------------------------ timing ---
fs_now_ms() { date +%s%3N; }
# fs_elapsed START_MS — prints seconds with one decimal, e.g. "3.4s".
fs_elapsed() {
  local d=$(( $(fs_now_ms) - $1 ))
  printf '%d.%ds' $((d / 1000)) $(((d % 1000) / 100))
}

# ------------------------------------------------------------- filesystem ---
# fs_mkdir DIR... — create world-traversable folders (the postgres user must
# be able to walk through var/ even when our umask is strict).
fs_mkdir() {
  local d
  for d in "$@"; do
    mkdir -p "$d" || fs_die "cannot create folder $d"
    chmod a+rx "$d" 2>/dev/null || true
  done
}

fs_init_dirs() { fs_mkdir "$FS_VAR" "$FS_LOG_DIR"; }

# fs_lock — serialize start/stop of one server (two test runs starting the
# same server at once). Held until the script exits.
fs_lock() {
  fs_init_dirs
  local f="$FS_VAR/.$FS_NAME.lock"
  command -v flock >/dev/null 2>&1 || return 0
  exec 9>"$f"
  flock -w "${FS_LOCK_TIMEOUT:-180}" 9 || fs_die "another start/stop of $FS_NAME still holds $f"
}

# ------------------------------------------------------------------ network ---
# fs_port_open HOST PORT — true when something accepts TCP connections there.
fs_port_open() {
  (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null
}

# fs_wait_port HOST PORT TIMEOUT_S [PID] [LOG] — wait until HOST:PORT accepts
# connections. Fails early when PID (if given) exits; shows LOG on failure.
fs_wait_port() {
  local host="$1" port="$2" timeout="$3" pid="${4:-}" log="${5:-}"
  local deadline=$(( $(fs_now_ms) + timeout * 1000 ))
  while ! fs_port_open "$host" "$port"; do
    if [[ -n "$pid" ]] && ! kill -0 "$pid" 2>/dev/null; then
      [[ -n "$log" ]] && fs_tail_log "$log"
      fs_die "process $pid exited before $host:$port answered (see ${log:-its log})"
    fi
    if (( $(fs_now_ms) > deadline )); then
      [[ -n "$log" ]] && fs_tail_log "$log"
      fs_die "timed out after ${timeout}s waiting for $host:$port (see ${log:-its log})"
    fi
    sleep 0.1
  done
}

# fs_wait_port_closed HOST PORT TIMEOUT_S — true once nothing listens there.
fs_wait_port_closed() {
  local host="$1" port="$2" timeout="$3"
  local deadline=$(( $(fs_now_ms) + timeout * 1000 ))
  while fs_port_open "$host" "$port"; do
    (( $(fs_now_ms) > deadline )) && return 1
    sleep 0.1
  done
  return 0
}

# fs_port_owner PORT — best-effort description of who listens on PORT.
fs_port_owner() {
  if command -v ss >/dev/null 2>&1; then
    ss -Hltnp "sport = :$1" 2>/dev/null | sed -n 's/.*users:((\(.*\)))/\1/p' | head -1
  fi
}

# fs_require_port_free HOST PORT WHAT — die with a clear message when taken.
fs_require_port_free() {
  local host="$1" port="$2" what="$3" owner
  if fs_port_open "$host" "$port"; then
    owner="$(fs_port_owner "$port")"
    fs_die "port $port ($what) on $host is already in use${owner:+ by $owner}, not by the $FS_NAME of $FS_VAR; stop that process or choose another port (see scripts/servers/README.md)"
  fi
}

# --------------------------------------------------------------- pid files ---
# fs_read_pid PIDFILE — prints the pid when the file holds a number.
fs_read_pid() {
  local p
  [[ -f "$1" ]] || return 1
  p="$(head -n1 "$1" 2>/dev/null | tr -dc '0-9')"
  [[ -n "$p" ]] || return 1
  printf '%s\n' "$p"
}

# fs_pid_matches PID PATTERN — the process is alive and its command line
# contains PATTERN (guards against a recycled pid).
fs_pid_matches() {
  local pid="$1" pattern="$2" cmd state
  kill -0 "$pid" 2>/dev/null || return 1
  [[ -r "/proc/$pid/cmdline" ]] || return 0
  # A killed server that nobody has reaped yet is a zombie: not running.
  state="$(sed -n 's/^State:[[:space:]]*\([A-Z]\).*/\1/p' "/proc/$pid/status" 2>/dev/null)"
  [[ "$state" != Z && "$state" != X ]] || return 1
  cmd="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)"
  [[ "$cmd" == *"$pattern"* ]]
}

# fs_running PIDFILE PATTERN — prints the pid and succeeds when the pid file
# names a live process matching PATTERN; removes a stale pid file.
fs_running() {
  local pidfile="$1" pattern="$2" pid
  pid="$(fs_read_pid "$pidfile")" || return 1
  if fs_pid_matches "$pid" "$pattern"; then
    printf '%s\n' "$pid"
    return 0
  fi
  rm -f "$pidfile"
  return 1
}

# fs_wait_exit PID TIMEOUT_S — true once PID has exited.
fs_wait_exit() {
  local pid="$1" timeout="$2"
  local deadline=$(( $(fs_now_ms) + timeout * 1000 ))
  while kill -0 "$pid" 2>/dev/null; do
    (( $(fs_now_ms) > deadline )) && return 1
    sleep 0.1
  done
  return 0
}

# fs_kill_pid PID TIMEOUT_S — SIGTERM, wait, then SIGKILL as a last resort.
fs_kill_pid() {
  local pid="$1" timeout="$2"
  kill -TERM "$pid" 2>/dev/null || return 0
  if ! fs_wait_exit "$pid" "$timeout"; then
    fs_warn "pid $pid did not exit within ${timeout}s after SIGTERM; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    fs_wait_exit "$pid" 10 || fs_die "pid $pid survived SIGKILL"
  fi
}

# ------------------------------------------------------------------ install ---
fs_sudo() {
  if [[ $(id -u) -eq 0 ]]; then "$@"
  elif command -v sudo >/dev/null 2>&1; then sudo "$@"
  else fs_die "need root (or sudo) to run: $*"
  fi
}

# fs_apt_install PACKAGE... — install the Debian packages that are missing.
# Package scripts must not start system services: we run our own instances.
fs_apt_install() {
  local p missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  ((${#missing[@]} == 0)) && return 0
  command -v apt-get >/dev/null 2>&1 || fs_die "missing ${missing[*]} and apt-get is not available; install them by hand"
  fs_info "installing ${missing[*]} (apt-get)"
  local t0; t0=$(fs_now_ms)
  export DEBIAN_FRONTEND=noninteractive
  if ! fs_sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null 2>&1; then
    fs_sudo apt-get update -qq || fs_die "apt-get update failed"
    fs_sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
      || fs_die "apt-get install ${missing[*]} failed"
  fi
  fs_info "installed ${missing[*]} in $(fs_elapsed "$t0")"
}

# fs_require_cmd CMD HINT — die when CMD is not on PATH.
fs_require_cmd() {
  command -v "$1" >/dev/null 2>&1 || fs_die "'$1' not found: $2"
}
