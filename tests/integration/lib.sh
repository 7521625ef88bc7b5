# shellcheck shell=bash
# Helpers for the integration tests, the throughput benchmark and the demo. Source it, then call
# ztna_setup. Everything runs on loopback inside one temporary directory.
#
# Environment:
#   ZTNA_BUILD_DIR    build tree holding agent/ztna-agent, connector/ztna-connector and
#                     intermediate/ztna-intermediate (default: <repo>/build)
#   ZTNA_LOG_LEVEL    --log-level for all three daemons (default: info for the intermediate, the
#                     daemons' own default for the others)
#   ZTNA_KEEP_TMP=1   keep the temporary directory after the run
#   ZTNA_DETACH=1     start processes without a parent-death signal, so they can outlive this shell
#   ZTNA_KEEP=1       leave every started process (and the temp dir) in place at exit; set it only
#                     once everything works (scripts/demo --keep does, together with ZTNA_DETACH)
#   ZTNA_AGENT_PATHS  "relay" (default): agents run with --relay-only; "auto": they look for
#                     direct paths (never between loopback candidates, which no check may
#                     target: direct-path tests run in a namespace, natlab_lone_host or the lab)
#   ZTNA_TIME_SCALE   multiply every deadline (default 1, or 4 for a sanitizer build)
#   ZTNA_POLICY       the intermediate's --policy file (default: $ZTNA_TMP/policy.toml, which
#                     ztna_make_certs writes: every agent may reach every service, every
#                     connector may serve every service)
#
# Process rules: every process is started through ztna_spawn, which records its PID. At exit the
# EXIT trap stops exactly those PIDs (SIGTERM, then SIGKILL after a deadline) and nothing else.
# Daemons are "strict": after SIGTERM they must exit 0 within the deadline, or the test fails.
# No helper sleeps to synchronise: waits poll a condition against a deadline.

set -euo pipefail

ZTNA_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
ZTNA_BUILD_DIR=${ZTNA_BUILD_DIR:-$ZTNA_REPO/build}
ZTNA_BUILD_DIR=$(cd "$ZTNA_BUILD_DIR" 2>/dev/null && pwd || echo "$ZTNA_BUILD_DIR")
ZTNA_TEST_NAME=${ZTNA_TEST_NAME:-$(basename "$0" .sh)}
ZTNA_INTERMEDIATE_BIN=$ZTNA_BUILD_DIR/intermediate/ztna-intermediate
ZTNA_CONNECTOR_BIN=$ZTNA_BUILD_DIR/connector/ztna-connector
ZTNA_AGENT_BIN=$ZTNA_BUILD_DIR/agent/ztna-agent
ZTNA_INTERMEDIATE_DNS=ztna-intermediate.test
ZTNA_MAKE_CERTS=$ZTNA_REPO/certs/make-certs
# Debian's python3 (from install-deps) starts fastest; fall back to whatever python3 is on PATH.
ZTNA_PYTHON=python3
[[ -x /usr/bin/python3 ]] && ZTNA_PYTHON=/usr/bin/python3

if [[ -z ${ZTNA_TIME_SCALE:-} ]]; then
  ZTNA_TIME_SCALE=1
  if grep -qs '^ZTNA_SANITIZE:BOOL=ON' "$ZTNA_BUILD_DIR/CMakeCache.txt"; then
    ZTNA_TIME_SCALE=4
  fi
fi

ZTNA_TMP=""
ZTNA_CERTS=""
ZTNA_INT_PORT=""
ZTNA_LAST_PID=""
ZTNA_NGINX_PORT=""
ZTNA_UDP_ECHO_PORT=""
declare -a ZTNA_PIDS=()
declare -A ZTNA_PID_OF=()   # name -> pid of the latest process started under that name
declare -A ZTNA_NAME_OF=()  # pid -> name
declare -A ZTNA_LOG_OF=()   # pid -> log file
declare -A ZTNA_STRICT=()   # pid -> 1 if it must exit 0 on SIGTERM
declare -A ZTNA_RC=()       # pid -> exit status once reaped
declare -A ZTNA_ROLE=()     # daemon name -> intermediate|connector|agent
declare -A ZTNA_SOCK=()     # daemon name -> status socket

# ---------------------------------------------------------------------------------------------
# Logging, failure, time

ztna_log() {
  printf '[%s %s] %s\n' "$(date +%H:%M:%S.%3N)" "$ZTNA_TEST_NAME" "$*" >&2
}

ztna_fail() {
  ztna_log "FAIL: $*"
  exit 1
}

# ztna_secs N: N seconds scaled by ZTNA_TIME_SCALE.
ztna_secs() {
  echo $(($1 * ZTNA_TIME_SCALE))
}

ztna_now_ms() {
  local t=${EPOCHREALTIME//[.,]/}
  echo $((t / 1000))
}

# ztna_check_processes: fail if a process we started (and have not stopped) has died.
ztna_check_processes() {
  local pid
  for pid in "${ZTNA_PIDS[@]}"; do
    [[ -n ${ZTNA_RC[$pid]:-} ]] && continue
    if ! ztna_alive "$pid"; then
      ztna_reap "$pid"
      ztna_fail "${ZTNA_NAME_OF[$pid]} (pid $pid) exited unexpectedly with status ${ZTNA_RC[$pid]}"
    fi
  done
}

# ztna_log_has NAME PATTERN: whether NAME's log has a line matching the extended regex PATTERN.
ztna_log_has() {
  grep -qE -- "$2" "$(ztna_logfile "$1")"
}

# ztna_log_ms NAME PATTERN: the time (ms since the epoch) of NAME's first log line matching
# PATTERN, from the line's own timestamp.
ztna_log_ms() {
  local line
  line=$(grep -E -m1 -- "$2" "$(ztna_logfile "$1")") || return 1
  date -d "$(cut -d' ' -f1 <<<"$line" | tr T ' ')" +%s%3N
}

# ztna_log_within_1s T0_MS NAME PATTERN: wait (5 s) for NAME's log line matching PATTERN, whose
# timestamp must be at most 1 s (scaled) after T0_MS; logs the delay and the line.
ztna_log_within_1s() {
  local t0=$1 t
  ztna_wait_for 5 "$2 log: $3" ztna_log_has "$2" "$3"
  t=$(ztna_log_ms "$2" "$3")
  ztna_log "$2, $((t - t0)) ms after SIGHUP: $(grep -m1 -E -- "$3" "$(ztna_logfile "$2")" | cut -d' ' -f4-)"
  ((t - t0 <= 1000 * ZTNA_TIME_SCALE)) || ztna_fail "$2 logged it $((t - t0)) ms after SIGHUP: $3"
}

# ztna_start_recording_backend NAME:tcp|udp ...: one process (tests/tools/recording_backend.py)
# that, for each NAME, listens on a free loopback port (written to $ZTNA_TMP/recorded/NAME.port)
# and counts every TCP connection it accepts or UDP datagram it receives; TCP connections get a
# small HTTP answer ("recorded by backend NAME"). For tests that must prove a backend was never
# reached.
ztna_start_recording_backend() {
  local dir=$ZTNA_TMP/recorded spec
  mkdir -p "$dir"
  ztna_spawn backends 0 "$ZTNA_PYTHON" "$ZTNA_REPO/tests/tools/recording_backend.py" "$dir" "$@"
  for spec in "$@"; do
    ztna_wait_for 10 "recording backend ${spec%%:*} up" test -s "$dir/${spec%%:*}.port"
  done
}

# ztna_recorded NAME: how many connections (or datagrams) recording backend NAME has seen.
ztna_recorded() {
  local f=$ZTNA_TMP/recorded/$1.count
  if [[ -s $f ]]; then cat "$f"; else echo 0; fi
}

# ztna_file_size FILE: its size in bytes, 0 while it does not exist (a download not started yet).
ztna_file_size() {
  stat -c %s "$1" 2>/dev/null || echo 0
}

# ztna_file_at_least FILE BYTES: true once FILE holds BYTES or more (for ztna_wait_for).
ztna_file_at_least() {
  (($(ztna_file_size "$1") >= $2))
}

# ztna_wait_for TIMEOUT_S DESCRIPTION CMD...: poll CMD every 100 ms until it succeeds; fail
# after TIMEOUT_S (scaled), or at once if a started process dies meanwhile.
ztna_wait_for() {
  local timeout desc deadline
  timeout=$(ztna_secs "$1")
  desc=$2
  shift 2
  deadline=$(($(ztna_now_ms) + timeout * 1000))
  while ! "$@" >/dev/null 2>&1; do
    ztna_check_processes
    if (($(ztna_now_ms) >= deadline)); then
      ztna_fail "timed out after ${timeout}s waiting for: $desc"
    fi
    sleep 0.1
  done
}

# ztna_assert_never DURATION_S DESCRIPTION CMD...: poll CMD for DURATION_S (not scaled) and fail
# if it ever succeeds. An observation window, not a synchronisation.
ztna_assert_never() {
  local dur=$1 desc=$2
  shift 2
  local deadline=$(($(ztna_now_ms) + dur * 1000))
  while (($(ztna_now_ms) < deadline)); do
    if "$@" >/dev/null 2>&1; then
      ztna_fail "$desc"
    fi
    ztna_check_processes
    sleep 0.2
  done
}

ztna_require_tools() {
  local t missing=()
  for t in "$@"; do
    command -v "$t" >/dev/null 2>&1 || missing+=("$t")
  done
  ((${#missing[@]} == 0)) || ztna_fail "missing tools: ${missing[*]} (run scripts/install-deps)"
}

ztna_require_binaries() {
  local b missing=()
  for b in "$ZTNA_INTERMEDIATE_BIN" "$ZTNA_CONNECTOR_BIN" "$ZTNA_AGENT_BIN"; do
    [[ -x $b ]] || missing+=("$b")
  done
  ((${#missing[@]} == 0)) ||
    ztna_fail "daemon binaries not built: ${missing[*]} (set ZTNA_BUILD_DIR or build first)"
}

# ---------------------------------------------------------------------------------------------
# Setup and teardown

# ztna_setup [--no-binaries]: temp dir, traps, tool checks.
ztna_setup() {
  local need_bins=1
  [[ ${1:-} == --no-binaries ]] && need_bins=0
  ZTNA_TMP=$(mktemp -d "${ZTNA_TMP_PARENT:-/tmp}/ztna-$ZTNA_TEST_NAME.XXXXXX")
  mkdir -p "$ZTNA_TMP/logs" "$ZTNA_TMP/run" "$ZTNA_TMP/www"
  trap ztna_cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  trap 'exit 129' HUP
  ztna_require_tools curl jq "$ZTNA_PYTHON" openssl ss sha256sum setpriv timeout
  ((need_bins == 0)) || ztna_require_binaries
  ztna_log "temp dir $ZTNA_TMP, build dir $ZTNA_BUILD_DIR (time scale x$ZTNA_TIME_SCALE)"
}

# ztna_alive PID: is PID still a running (not zombie) child of this shell?
ztna_alive() {
  local stat rest
  [[ -r /proc/$1/stat ]] || return 1
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  rest=${stat##*) }          # "S PPID ..." after the comm field
  local state=${rest%% *} ppid
  rest=${rest#* }
  ppid=${rest%% *}
  [[ $state != Z && $ppid == "$$" ]]
}

# ztna_spawn NAME STRICT CMD...: start CMD in the background with stdout+stderr in
# $ZTNA_TMP/logs/NAME.log; sets ZTNA_LAST_PID. STRICT=1: must exit 0 on SIGTERM.
# Call it from the test's main shell, never inside $(...) or a pipeline: the PID must be recorded
# where the EXIT trap runs, and only the main shell can wait for it.
ztna_spawn() {
  local name=$1 strict=$2
  [[ $BASHPID == "$$" ]] || ztna_fail "ztna_spawn $name called in a subshell"
  shift 2
  local log=$ZTNA_TMP/logs/$name.log n=2
  while [[ -e $log ]]; do
    log=$ZTNA_TMP/logs/$name-$n.log
    n=$((n + 1))
  done
  local cmdline="$*"
  # The parent-death signal stops the child if this shell is killed without running its trap.
  if [[ -z ${ZTNA_DETACH:-} ]]; then
    set -- setpriv --pdeathsig TERM -- "$@"
  fi
  "$@" </dev/null >"$log" 2>&1 &
  local pid=$!
  ZTNA_PIDS+=("$pid")
  ZTNA_PID_OF[$name]=$pid
  ZTNA_NAME_OF[$pid]=$name
  ZTNA_LOG_OF[$pid]=$log
  ZTNA_STRICT[$pid]=$strict
  ZTNA_LAST_PID=$pid
  ztna_log "started $name (pid $pid): $cmdline"
}

# ztna_reap PID: collect the exit status of an exited child into ZTNA_RC.
ztna_reap() {
  local pid=$1 rc=0
  [[ -n ${ZTNA_RC[$pid]:-} ]] && return 0
  wait "$pid" 2>/dev/null || rc=$?
  ZTNA_RC[$pid]=$rc
}

# ztna_stop_pids TIMEOUT_S PID...: SIGTERM each, wait up to TIMEOUT_S (scaled) for all, SIGKILL
# the rest. Exit statuses end up in ZTNA_RC (137 = had to be killed).
ztna_stop_pids() {
  local timeout pid deadline
  timeout=$(ztna_secs "$1")
  shift
  for pid in "$@"; do
    [[ -n ${ZTNA_RC[$pid]:-} ]] && continue
    if ztna_alive "$pid"; then
      kill -TERM "$pid" 2>/dev/null || true
    fi
  done
  deadline=$(($(ztna_now_ms) + timeout * 1000))
  for pid in "$@"; do
    [[ -n ${ZTNA_RC[$pid]:-} ]] && continue
    while ztna_alive "$pid" && (($(ztna_now_ms) < deadline)); do
      sleep 0.05
    done
    if ztna_alive "$pid"; then
      ztna_log "${ZTNA_NAME_OF[$pid]} (pid $pid) ignored SIGTERM for ${timeout}s, sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
    fi
    ztna_reap "$pid"
  done
}

# ztna_stop NAME [TIMEOUT_S]: stop one process; fails the test if it is strict and did not exit 0.
ztna_stop() {
  local name=$1 timeout=${2:-10}
  local pid=${ZTNA_PID_OF[$name]:?unknown process $name}
  ztna_stop_pids "$timeout" "$pid"
  local rc=${ZTNA_RC[$pid]}
  ztna_log "$name (pid $pid) exited with status $rc"
  if [[ ${ZTNA_STRICT[$pid]} == 1 && $rc != 0 ]]; then
    ztna_fail "$name exited with status $rc after SIGTERM (expected 0)"
  fi
}

# ztna_stop_all: stop everything still running, newest first; strict ones must exit 0.
# Returns non-zero if a strict process misbehaved.
ztna_stop_all() {
  local i pid bad=0 todo=()
  for ((i = ${#ZTNA_PIDS[@]} - 1; i >= 0; i--)); do
    pid=${ZTNA_PIDS[$i]}
    [[ -n ${ZTNA_RC[$pid]:-} ]] || todo+=("$pid")
  done
  ((${#todo[@]})) || return 0
  ztna_stop_pids 15 "${todo[@]}"
  for pid in "${todo[@]}"; do
    if [[ ${ZTNA_STRICT[$pid]} == 1 ]]; then
      if [[ ${ZTNA_RC[$pid]} != 0 ]]; then
        ztna_log "${ZTNA_NAME_OF[$pid]} (pid $pid) exited with status ${ZTNA_RC[$pid]} after SIGTERM (expected 0)"
        bad=1
      else
        ztna_log "${ZTNA_NAME_OF[$pid]} (pid $pid) exited cleanly"
      fi
    fi
  done
  return "$bad"
}

# ztna_sanitizer_reports: print log files that contain sanitizer reports.
ztna_sanitizer_reports() {
  [[ -d $ZTNA_TMP/logs ]] || return 0
  grep -lE 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:|SUMMARY: (Address|Undefined|Leak)' \
    "$ZTNA_TMP"/logs/*.log 2>/dev/null || true
}

ztna_dump_logs() {
  local f lines
  for f in "$ZTNA_TMP"/logs/*.log; do
    [[ -f $f ]] || continue
    lines=$(wc -l <"$f")
    echo "----- ${f##*/} ($lines lines$( ((lines > 300)) && echo ', last 300 shown')) -----" >&2
    tail -n 300 "$f" >&2
  done
  echo "----- end of logs -----" >&2
}

ztna_cleanup() {
  local rc=$?
  trap - EXIT INT TERM HUP
  set +e
  if [[ -n ${ZTNA_KEEP:-} ]]; then
    if ((rc == 0)); then
      ztna_log "leaving processes running (ZTNA_KEEP): ${ZTNA_PIDS[*]}"
      exit 0
    fi
  fi
  ztna_stop_all || { ((rc != 0)) || rc=1; }
  local reports
  reports=$(ztna_sanitizer_reports)
  if [[ -n $reports ]]; then
    ztna_log "sanitizer reports in: $(echo "$reports" | xargs -n1 basename | tr '\n' ' ')"
    ((rc != 0)) || rc=1
  fi
  if ((rc != 0)) && [[ -n $ZTNA_TMP ]]; then
    ztna_log "FAILED (exit status $rc); logs of the processes started:"
    ztna_dump_logs
  fi
  if [[ -n $ZTNA_TMP && -d $ZTNA_TMP ]]; then
    if [[ -n ${ZTNA_KEEP_TMP:-} ]]; then
      ztna_log "kept $ZTNA_TMP"
    else
      rm -rf -- "$ZTNA_TMP"
    fi
  fi
  exit "$rc"
}

# ztna_pass: stop everything (daemons must exit 0) and report success.
ztna_pass() {
  ztna_stop_all || ztna_fail "a daemon did not shut down cleanly"
  [[ -z $(ztna_sanitizer_reports) ]] || ztna_fail "sanitizer reports found"
  ztna_log "PASS"
}

# ---------------------------------------------------------------------------------------------
# Ports, files, certificates

# ztna_free_port tcp|udp: a currently free loopback port, never one handed out before in this run.
ztna_free_port() {
  local proto=$1 port
  local used=$ZTNA_TMP/run/ports-used
  touch "$used"
  for _ in 1 2 3 4 5 6 7 8 9 10; do
    port=$("$ZTNA_PYTHON" - "$proto" <<'EOF'
import socket, sys
kind = socket.SOCK_STREAM if sys.argv[1] == "tcp" else socket.SOCK_DGRAM
s = socket.socket(socket.AF_INET, kind)
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
EOF
    )
    if ! grep -qx "$port" "$used"; then
      echo "$port" >>"$used"
      echo "$port"
      return 0
    fi
  done
  ztna_fail "could not find a free $proto port"
}

ztna_tcp_listening() {
  [[ -n $(ss -Hltn "sport = :$1" 2>/dev/null) ]]
}

ztna_udp_bound() {
  [[ -n $(ss -Hlun "sport = :$1" 2>/dev/null) ]]
}

# ztna_logfile NAME: the log file of the latest process started as NAME.
ztna_logfile() {
  echo "${ZTNA_LOG_OF[${ZTNA_PID_OF[$1]}]}"
}

ztna_sha256() {
  sha256sum "$1" | cut -d' ' -f1
}

# ztna_random_file PATH SIZE_BYTES
ztna_random_file() {
  head -c "$2" /dev/urandom >"$1"
  [[ $(stat -c %s "$1") == "$2" ]] || ztna_fail "could not write $2 bytes to $1"
}

# ztna_make_certs [extra make-certs args]: CA, intermediate (DNS + 127.0.0.1), connector conn1 and
# agent agent1 into $ZTNA_TMP/certs (ZTNA_CERTS), with the CRL and the authorization key pair;
# and the open test policy in $ZTNA_TMP/policy.toml unless a policy is there already.
ztna_make_certs() {
  ZTNA_CERTS=$ZTNA_TMP/certs
  "$ZTNA_MAKE_CERTS" --out "$ZTNA_CERTS" --intermediate-dns "$ZTNA_INTERMEDIATE_DNS" \
    --intermediate-ip 127.0.0.1 --connector conn1 --agent agent1 "$@" \
    >"$ZTNA_TMP/logs/make-certs.out" 2>&1 ||
    { cat "$ZTNA_TMP/logs/make-certs.out" >&2; ztna_fail "make-certs failed"; }
  rm -f "$ZTNA_TMP/logs/make-certs.out"
  [[ -f $ZTNA_TMP/policy.toml ]] || ztna_write_policy "$ZTNA_TMP/policy.toml" <<'TOML'
version = 1

[[access]]
name = "tests: every agent reaches every service"
agents = ["*"]
services = ["*"]

[[serve]]
name = "tests: every connector serves every service"
connectors = ["*"]
services = ["*"]
TOML
}

# ztna_write_policy FILE: writes the policy on stdin to FILE (atomically: a reload never reads a
# half-written file).
ztna_write_policy() {
  local file=$1
  cat >"$file.tmp"
  mv -f "$file.tmp" "$file"
}

# ztna_intermediate_args: the identity, CRL, policy and authorization key of the intermediate,
# one argument per line (for mapfile).
ztna_intermediate_args() {
  printf '%s\n' --ca "$ZTNA_CERTS/ca.pem" --cert "$ZTNA_CERTS/intermediate.pem" \
    --key "$ZTNA_CERTS/intermediate.key" --crl "$ZTNA_CERTS/crl.pem" \
    --policy "${ZTNA_POLICY:-$ZTNA_TMP/policy.toml}" \
    --authorization-key "$ZTNA_CERTS/authorization.key"
}

# ztna_sighup NAME: asks a daemon to reload (certificates, CRL, policy).
ztna_sighup() {
  local pid=${ZTNA_PID_OF[$1]:?unknown process $1}
  kill -HUP "$pid"
}

# ---------------------------------------------------------------------------------------------
# Backends

# ztna_start_nginx DOCROOT: nginx on a free loopback port serving DOCROOT (sets ZTNA_NGINX_PORT).
ztna_start_nginx() {
  local root=$1 dir=$ZTNA_TMP/nginx workers=${ZTNA_NGINX_WORKERS:-1}
  mkdir -p "$dir/tmp"
  ZTNA_NGINX_PORT=$(ztna_free_port tcp)
  local user_line=""
  [[ $(id -u) == 0 ]] && user_line="user root root;"
  cat >"$dir/nginx.conf" <<EOF
$user_line
worker_processes $workers;
error_log stderr warn;
pid $dir/nginx.pid;
events { worker_connections 4096; }
http {
  access_log off;
  default_type application/octet-stream;
  types { text/html html; text/plain txt; }
  sendfile on;
  tcp_nopush on;
  keepalive_timeout 30;
  client_body_temp_path $dir/tmp/body;
  proxy_temp_path $dir/tmp/proxy;
  fastcgi_temp_path $dir/tmp/fastcgi;
  uwsgi_temp_path $dir/tmp/uwsgi;
  scgi_temp_path $dir/tmp/scgi;
  server {
    listen 127.0.0.1:$ZTNA_NGINX_PORT;
    root $root;
  }
}
EOF
  ztna_spawn nginx 0 nginx -e stderr -p "$dir" -c "$dir/nginx.conf" -g 'daemon off;'
  local pid=$ZTNA_LAST_PID
  ztna_wait_for 10 "nginx listening on 127.0.0.1:$ZTNA_NGINX_PORT" ztna_tcp_listening "$ZTNA_NGINX_PORT"
}

# ztna_start_udp_echo: python3 UDP echo server on a free loopback port (sets ZTNA_UDP_ECHO_PORT).
ztna_start_udp_echo() {
  local py=$ZTNA_TMP/udp_echo.py portfile=$ZTNA_TMP/run/udp_echo.port
  cat >"$py" <<'EOF'
"""UDP echo server: sends every datagram back to its sender, unchanged."""
import os, signal, socket, sys

signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
s.bind(("127.0.0.1", int(sys.argv[1])))
tmp = sys.argv[2] + ".tmp"
with open(tmp, "w") as f:
    f.write(str(s.getsockname()[1]))
os.rename(tmp, sys.argv[2])
count = 0
while True:
    data, peer = s.recvfrom(65535)
    s.sendto(data, peer)
    count += 1
    if count % 1000 == 0:
        print(f"echoed {count} datagrams", flush=True)
EOF
  rm -f "$portfile"
  ztna_spawn udp-echo 0 "$ZTNA_PYTHON" "$py" 0 "$portfile"
  ztna_wait_for 10 "UDP echo server port file" test -s "$portfile"
  ZTNA_UDP_ECHO_PORT=$(cat "$portfile")
  ztna_log "UDP echo server on 127.0.0.1:$ZTNA_UDP_ECHO_PORT"
}

# ---------------------------------------------------------------------------------------------
# Daemons

# ztna_status NAME [--json]: the daemon's status output.
ztna_status() {
  local name=$1
  shift
  local role=${ZTNA_ROLE[$name]:?unknown daemon $name} bin
  case $role in
  intermediate) bin=$ZTNA_INTERMEDIATE_BIN ;;
  connector) bin=$ZTNA_CONNECTOR_BIN ;;
  agent) bin=$ZTNA_AGENT_BIN ;;
  esac
  timeout 10 "$bin" status --status-socket "${ZTNA_SOCK[$name]}" "$@"
}

ztna_json() {
  ztna_status "$1" --json
}

# ztna_jq NAME FILTER [jq args...]: run jq -e FILTER on NAME's status JSON.
ztna_jq() {
  local name=$1 filter=$2 json
  shift 2
  json=$(ztna_json "$name") || return 1
  jq -e "$@" "$filter" <<<"$json"
}

# ztna_wait_json NAME TIMEOUT_S DESCRIPTION FILTER [jq args...]
ztna_wait_json() {
  local name=$1 timeout=$2 desc=$3
  shift 3
  ztna_wait_for "$timeout" "$name: $desc" ztna_jq "$name" "$@"
}

# ztna_counter NAME COUNTER: prints the counter (0 if absent).
ztna_counter() {
  ztna_json "$1" | jq -r --arg c "$2" '.counters[$c] // 0'
}

# ztna_wait_counter NAME COUNTER MIN TIMEOUT_S: wait until COUNTER >= MIN.
ztna_wait_counter() {
  ztna_wait_json "$1" "$4" "counter $2 >= $3" '(.counters[$c] // 0) >= ($m | tonumber)' \
    --arg c "$2" --arg m "$3"
}

ztna_wait_connected() {
  local name
  for name in "$@"; do
    ztna_wait_json "$name" 30 'control.state == "connected"' '.control.state == "connected"'
    ztna_log "$name connected"
  done
}

# ztna_wait_service SERVICE...: the intermediate lists a connector serving each SERVICE.
ztna_wait_service() {
  local s
  for s in "$@"; do
    ztna_wait_json intermediate 30 "a connector registered service $s" \
      '[.peers[]? | select(.role == "connector") | .services[]? | if type == "object" then .name else . end] | index($s) != null' \
      --arg s "$s"
  done
}

# ztna_start_intermediate [extra args]: on 127.0.0.1:$ZTNA_INT_PORT (picked once, reused on
# restart); waits until the status socket answers.
ztna_start_intermediate() {
  [[ -n $ZTNA_INT_PORT ]] || ZTNA_INT_PORT=$(ztna_free_port udp)
  local sock=$ZTNA_TMP/run/intermediate.sock
  ZTNA_ROLE[intermediate]=intermediate
  ZTNA_SOCK[intermediate]=$sock
  local args
  mapfile -t args < <(ztna_intermediate_args)
  ztna_spawn intermediate 1 "$ZTNA_INTERMEDIATE_BIN" run --listen "127.0.0.1:$ZTNA_INT_PORT" \
    "${args[@]}" --status-socket "$sock" --log-level "${ZTNA_LOG_LEVEL:-info}" "$@"
  ztna_wait_for 30 "intermediate status socket answers" ztna_json intermediate
  ztna_log "intermediate ready on udp 127.0.0.1:$ZTNA_INT_PORT"
}

# ztna_start_peer ROLE NAME CA CERT KEY [args...]: connector or agent with explicit credentials.
# Does not wait; use ztna_wait_connected. By default on loopback, talking to the intermediate of
# ztna_start_intermediate; ZTNA_PEER_NETNS, ZTNA_PEER_INTERMEDIATE and ZTNA_PEER_LISTEN (set for
# the call) move it into a network namespace of the NAT lab. The CRL next to CA is passed when
# there is one; a connector gets the deployment's authorization.pub and, unless the arguments
# give an --allow, "--allow SERVICE=*" for each --service (the intermediate's policy decides).
ztna_start_peer() {
  local role=$1 name=$2 ca=$3 cert=$4 key=$5 bin
  shift 5
  case $role in
  connector) bin=$ZTNA_CONNECTOR_BIN ;;
  agent) bin=$ZTNA_AGENT_BIN ;;
  *) ztna_fail "bad role $role" ;;
  esac
  local sock=$ZTNA_TMP/run/$name.sock wrap=()
  ZTNA_ROLE[$name]=$role
  ZTNA_SOCK[$name]=$sock
  [[ -z ${ZTNA_PEER_NETNS:-} ]] || wrap=(ip netns exec "$ZTNA_PEER_NETNS")
  [[ -z ${ZTNA_LOG_LEVEL:-} ]] || set -- --log-level "$ZTNA_LOG_LEVEL" "$@"
  # The loopback tests exercise the relay path unless a test asks for direct paths.
  [[ $role != agent || ${ZTNA_AGENT_PATHS:-relay} != relay ]] || set -- --relay-only "$@"
  [[ ! -f ${ca%/*}/crl.pem ]] || set -- --crl "${ca%/*}/crl.pem" "$@"
  if [[ $role == connector ]]; then
    local a has_allow=0 allows=() prev=""
    for a in "$@"; do
      [[ $a != --allow* ]] || has_allow=1
      [[ $prev != --service ]] || allows+=(--allow "${a%%=*}=*")
      prev=$a
    done
    ((has_allow)) || set -- "${allows[@]}" "$@"
    set -- --authorization-pub "$ZTNA_CERTS/authorization.pub" "$@"
  fi
  ztna_spawn "$name" 1 "${wrap[@]}" "$bin" run \
    --intermediate "${ZTNA_PEER_INTERMEDIATE:-127.0.0.1:$ZTNA_INT_PORT}" \
    --intermediate-name "$ZTNA_INTERMEDIATE_DNS" --ca "$ca" --cert "$cert" --key "$key" \
    --listen "${ZTNA_PEER_LISTEN:-127.0.0.1:0}" --status-socket "$sock" "$@"
}

# ztna_start_connector NAME --service S=tcp://H:P ...: uses $ZTNA_CERTS/connector-NAME.*
ztna_start_connector() {
  local name=$1
  shift
  ztna_start_peer connector "$name" "$ZTNA_CERTS/ca.pem" "$ZTNA_CERTS/connector-$name.pem" \
    "$ZTNA_CERTS/connector-$name.key" "$@"
}

# ztna_start_agent NAME --expose S=tcp://127.0.0.1:P ...: uses $ZTNA_CERTS/agent-NAME.*
ztna_start_agent() {
  local name=$1
  shift
  ztna_start_peer agent "$name" "$ZTNA_CERTS/ca.pem" "$ZTNA_CERTS/agent-$name.pem" \
    "$ZTNA_CERTS/agent-$name.key" "$@"
}

# ztna_start_web_stack [AGENT_ARGS...]: the stack most tests need, on loopback: nginx serving
# $ZTNA_TMP/www, the intermediate, connector conn1 publishing it as "web", and agent agent1
# exposing "web" on tcp 127.0.0.1:$ZTNA_WEB_PORT. Returns once both peers are connected, the
# intermediate lists the service and the agent's listener is up.
ztna_start_web_stack() {
  ztna_start_nginx "$ZTNA_TMP/www"
  ZTNA_WEB_PORT=$(ztna_free_port tcp)
  ztna_start_intermediate
  ztna_start_connector conn1 --service "web=tcp://127.0.0.1:$ZTNA_NGINX_PORT"
  ztna_start_agent agent1 --expose "web=tcp://127.0.0.1:$ZTNA_WEB_PORT" "$@"
  ztna_wait_connected conn1 agent1
  ztna_wait_service web
  ztna_wait_tcp_listener agent1 "$ZTNA_WEB_PORT"
}

# ztna_wait_tcp_listener NAME PORT / ztna_wait_udp_listener NAME PORT: NAME's local listener is up.
ztna_wait_tcp_listener() {
  ztna_wait_for 30 "$1 listening on tcp 127.0.0.1:$2" ztna_tcp_listening "$2"
}

ztna_wait_udp_listener() {
  ztna_wait_for 30 "$1 bound to udp 127.0.0.1:$2" ztna_udp_bound "$2"
}

# ztna_fetch URL OUT [MAX_TIME_S]: curl URL into OUT; fails the test on any error.
ztna_fetch() {
  local url=$1 out=$2 max
  max=$(ztna_secs "${3:-60}")
  local rc=0
  curl -fsS --max-time "$max" -o "$out" "$url" 2>"$ZTNA_TMP/run/curl.err" || rc=$?
  ((rc == 0)) || ztna_fail "curl $url failed with exit code $rc: $(cat "$ZTNA_TMP/run/curl.err")"
}

# ztna_expect_fetch_error URL MAX_TIME_S [--allow-timeout]: curl must fail, and (unless
# --allow-timeout) not by hitting MAX_TIME_S.
ztna_expect_fetch_error() {
  local url=$1 max=$2 allow_timeout=${3:-} rc=0 t0 t1
  t0=$(ztna_now_ms)
  curl -sS --max-time "$max" -o /dev/null "$url" 2>"$ZTNA_TMP/run/curl.err" || rc=$?
  t1=$(ztna_now_ms)
  ((rc != 0)) || ztna_fail "curl $url unexpectedly succeeded"
  ((rc != 28)) || [[ $allow_timeout == --allow-timeout ]] || ztna_fail "curl $url hung until --max-time ${max}s instead of failing quickly"
  ztna_log "curl $url failed as expected after $((t1 - t0)) ms (exit $rc: $(tr -d '\n' <"$ZTNA_TMP/run/curl.err"))"
}
