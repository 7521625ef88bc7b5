# shellcheck shell=bash
# lib.sh declares ZTNA_PID_OF, ZTNA_RC... (associative arrays) before this file is sourced.
# shellcheck disable=SC2034,SC2154
# A real etcd cluster inside the NAT lab, for the tests and benchmarks of several intermediates
# sharing state (DESIGN D11). Source lib.sh, natlab.sh and lab_daemons.sh first (lab_test.sh does).
# Debian's etcd-server 3.4 and etcd-client (scripts/install-deps): /usr/bin/etcd and
# /usr/bin/etcdctl, driven with ETCDCTL_API=3.
#
# Layout
#   One member per address, all in one lab namespace (typically a natlab_lone_host that also holds
#   the intermediates' addresses, e.g. 10.77.0.21-23 beside 10.77.0.11-13). Member N is named
#   etcdN: it serves clients on http://IP:2379 (also /metrics and /health there) and its peers on
#   http://IP:2380. The cluster is bootstrapped statically (--initial-cluster, a token unique to
#   this run). Plain HTTP: the lab is closed, and TLS is not what these runs measure.
#   Data:   $LAB_ETCD_DATA/etcdN (default $ZTNA_TMP/etcd/etcdN, removed with $ZTNA_TMP).
#           etcd 3.4 has no --unsafe-no-fsync: every commit fsyncs its WAL. On the project's
#           machines an fdatasync in the temp dir takes well under a millisecond, and a 3-member
#           cluster is healthy 0.7-0.9 s after the start there as on tmpfs. Where the disk is
#           slow, point LAB_ETCD_DATA at a directory on tmpfs (/dev/shm); the caller removes it.
#   Timing: --heartbeat-interval 50 --election-timeout 500 (the defaults are 100 and 1000 ms):
#           a lost leader is replaced about half a second after it dies. A write that reaches a
#           member while there is no leader is dropped by etcd 3.4, and the client waits out
#           its whole timeout (lab_etcd_ctl: --command-timeout 5 s, which its arguments may
#           override): wait for lab_etcd_leader first.
#   Logs:   like every daemon, through ztna_spawn: $ZTNA_TMP/logs/etcdN.log, then etcdN-2.log
#           for the member's second run (zap logger on stderr, level $LAB_ETCD_LOG_LEVEL, default
#           warn).
#   Processes: started with ztna_spawn under their names etcd1..etcdN (not strict: etcd ends
#           itself with the signal it got), so lib.sh stops them at exit, before the lab goes,
#           and ztna_stop etcdN / ztna_check_processes know them.
#
# API
#   lab_etcd_start HOST IP...   one member per IP in HOST's namespace (HOST: a lab node name, as
#                               for lab_in); returns once `etcdctl endpoint health` is good for
#                               every member (deadline 30 s, scaled)
#   lab_etcd_endpoints          the client endpoints, IP:2379, one per line
#   lab_etcd_args               "--etcd IP:2379" for each member, one word per line (for mapfile)
#   lab_etcd_names              etcd1..etcdN, one per line
#   lab_etcd_ctl ARGS...        etcdctl ARGS against every endpoint, inside HOST's namespace
#   lab_etcd_healthy [NAME...]  whether `etcdctl endpoint health` is good for those members (all
#                               by default): needs a quorum, since the check is a quorum read
#   lab_etcd_wait_healthy TIMEOUT_S [NAME...]   wait for that (fails the test at the deadline)
#   lab_etcd_kill NAME          SIGKILL one member and reap it
#   lab_etcd_restart NAME       start that member again on its data dir (--initial-cluster-state
#                               existing); waits until it is healthy if a quorum of members is
#                               running with it, else only until its peer port answers (etcd
#                               opens the client port once a quorum has taken the member back)
#   lab_etcd_running NAME       whether that member's process is running
#   lab_etcd_leader             the name of the leader among the running members (fails if none)
#   lab_etcd_stop               stop every running member (SIGTERM) one at a time, the leader
#                               last, after the daemons that use the cluster (lib.sh's exit stops
#                               them all at once, and a leader that gets SIGTERM first may wait
#                               for a request timeout while handing its leadership to a member
#                               that is stopping too); each stops in about 0.1 s
#   lab_etcd_metric NAME METRIC...  for each METRIC, the sum of its samples (all label sets) in
#                               that member's Prometheus /metrics (0 if absent), space-separated,
#                               from one read, e.g. etcd_mvcc_put_total etcd_mvcc_delete_total

LAB_ETCD_BIN=${LAB_ETCD_BIN:-/usr/bin/etcd}
LAB_ETCDCTL_BIN=${LAB_ETCDCTL_BIN:-/usr/bin/etcdctl}
LAB_ETCD_CLIENT_PORT=2379
LAB_ETCD_PEER_PORT=2380
LAB_ETCD_LOG_LEVEL=${LAB_ETCD_LOG_LEVEL:-warn}
LAB_ETCD_DATA=${LAB_ETCD_DATA:-}
LAB_ETCD_HOST=""
LAB_ETCD_CLUSTER=""
LAB_ETCD_TOKEN=""
declare -a LAB_ETCD_NAMES=()
declare -A LAB_ETCD_IP=() # member name -> address

# lab_etcd__member_cmd NAME STATE: the command line of one member (STATE: new|existing).
lab_etcd__member_cmd() {
  local name=$1 state=$2 ip=${LAB_ETCD_IP[$1]}
  printf '%s\n' ip netns exec "$(natlab_ns "$LAB_ETCD_HOST")" "$LAB_ETCD_BIN" \
    --name "$name" --data-dir "$LAB_ETCD_DATA/$name" \
    --listen-client-urls "http://$ip:$LAB_ETCD_CLIENT_PORT" \
    --advertise-client-urls "http://$ip:$LAB_ETCD_CLIENT_PORT" \
    --listen-peer-urls "http://$ip:$LAB_ETCD_PEER_PORT" \
    --initial-advertise-peer-urls "http://$ip:$LAB_ETCD_PEER_PORT" \
    --initial-cluster "$LAB_ETCD_CLUSTER" --initial-cluster-token "$LAB_ETCD_TOKEN" \
    --initial-cluster-state "$state" \
    --heartbeat-interval 50 --election-timeout 500 \
    --logger zap --log-outputs stderr --log-level "$LAB_ETCD_LOG_LEVEL"
}

# lab_etcd__spawn NAME STATE
lab_etcd__spawn() {
  local cmd v unset=()
  mapfile -t cmd < <(lab_etcd__member_cmd "$1" "$2")
  # etcd reads ETCD_* variables as flags: none from the caller's environment may leak in.
  for v in $(compgen -e); do
    [[ $v != ETCD_* ]] || unset+=(-u "$v")
  done
  ztna_spawn "$1" 0 env "${unset[@]}" "${cmd[@]}"
}

lab_etcd_start() {
  local host=$1 ip n=0 t0
  shift
  (($#)) || ztna_fail "lab_etcd_start $host: no address"
  [[ -z $LAB_ETCD_HOST ]] || ztna_fail "lab_etcd_start: a cluster runs already (in $LAB_ETCD_HOST)"
  [[ -x $LAB_ETCD_BIN && -x $LAB_ETCDCTL_BIN ]] ||
    ztna_fail "no $LAB_ETCD_BIN or $LAB_ETCDCTL_BIN (Debian's etcd-server and etcd-client; run scripts/install-deps)"
  natlab_ns "$host" >/dev/null
  LAB_ETCD_HOST=$host
  LAB_ETCD_DATA=${LAB_ETCD_DATA:-$ZTNA_TMP/etcd}
  LAB_ETCD_TOKEN=ztna-lab-$$-$RANDOM
  LAB_ETCD_NAMES=()
  LAB_ETCD_IP=()
  LAB_ETCD_CLUSTER=""
  for ip in "$@"; do
    n=$((n + 1))
    LAB_ETCD_NAMES+=("etcd$n")
    LAB_ETCD_IP[etcd$n]=$ip
    LAB_ETCD_CLUSTER+="${LAB_ETCD_CLUSTER:+,}etcd$n=http://$ip:$LAB_ETCD_PEER_PORT"
  done
  mkdir -p "$LAB_ETCD_DATA"
  t0=$(ztna_now_ms)
  local name
  for name in "${LAB_ETCD_NAMES[@]}"; do
    lab_etcd__spawn "$name" new
  done
  lab_etcd_wait_healthy 30
  ztna_log "etcd: ${#LAB_ETCD_NAMES[@]} members healthy $(($(ztna_now_ms) - t0)) ms after the start ($(lab_etcd_endpoints | tr '\n' ' '))"
}

lab_etcd_endpoints() {
  local name
  for name in "${LAB_ETCD_NAMES[@]}"; do
    echo "${LAB_ETCD_IP[$name]}:$LAB_ETCD_CLIENT_PORT"
  done
}

lab_etcd_args() {
  local e
  for e in $(lab_etcd_endpoints); do
    printf '%s\n' --etcd "$e"
  done
}

lab_etcd_names() {
  printf '%s\n' "${LAB_ETCD_NAMES[@]}"
}

# lab_etcd__ctl ENDPOINTS ARGS...: etcdctl in the cluster's namespace (ENDPOINTS: comma-separated).
lab_etcd__ctl() {
  local eps=$1
  shift
  lab_in "$LAB_ETCD_HOST" env ETCDCTL_API=3 "$LAB_ETCDCTL_BIN" --endpoints "$eps" \
    --dial-timeout 1s --command-timeout "$(ztna_secs 5)s" "$@"
}

lab_etcd_ctl() {
  [[ -n $LAB_ETCD_HOST ]] || ztna_fail "lab_etcd_ctl: no etcd cluster (lab_etcd_start)"
  lab_etcd__ctl "$(lab_etcd_endpoints | paste -sd,)" "$@"
}

lab_etcd__member_endpoints() {
  local name eps=()
  (($#)) || set -- "${LAB_ETCD_NAMES[@]}"
  for name in "$@"; do
    [[ -n ${LAB_ETCD_IP[$name]:-} ]] || ztna_fail "no etcd member $name"
    eps+=("${LAB_ETCD_IP[$name]}:$LAB_ETCD_CLIENT_PORT")
  done
  local IFS=,
  echo "${eps[*]}"
}

lab_etcd_healthy() {
  local eps
  eps=$(lab_etcd__member_endpoints "$@")
  # A healthy member answers in milliseconds; do not wait the whole command timeout for a dead one.
  lab_etcd__ctl "$eps" endpoint health --command-timeout "$(ztna_secs 1)s" >/dev/null 2>&1
}

lab_etcd_wait_healthy() {
  local timeout=$1
  shift
  local eps
  eps=$(lab_etcd__member_endpoints "$@")
  ztna_wait_for "$timeout" "etcd endpoint health good for $eps" lab_etcd_healthy "$@"
}

lab_etcd_running() {
  local pid=${ZTNA_PID_OF[$1]:-}
  [[ -n $pid && -z ${ZTNA_RC[$pid]:-} ]] && ztna_alive "$pid"
}

lab_etcd_kill() {
  local name=$1 pid
  [[ -n ${LAB_ETCD_IP[$name]:-} ]] || ztna_fail "no etcd member $name"
  pid=${ZTNA_PID_OF[$name]:?}
  [[ -z ${ZTNA_RC[$pid]:-} ]] || ztna_fail "etcd member $name is not running"
  kill -KILL "$pid" 2>/dev/null || true
  ztna_reap "$pid"
  ztna_log "etcd: $name (pid $pid) killed (SIGKILL)"
}

# lab_etcd__peer_answers NAME: the member's peer port serves /version. (Its client port opens
# only once the member has published itself through raft, which needs a quorum.)
lab_etcd__peer_answers() {
  lab_in "$LAB_ETCD_HOST" curl -fsS --max-time 1 -o /dev/null \
    "http://${LAB_ETCD_IP[$1]}:$LAB_ETCD_PEER_PORT/version"
}

lab_etcd_restart() {
  local name=$1 other up=0 t0
  [[ -n ${LAB_ETCD_IP[$name]:-} ]] || ztna_fail "no etcd member $name"
  ! lab_etcd_running "$name" || ztna_fail "etcd member $name is running already"
  [[ -d $LAB_ETCD_DATA/$name/member ]] || ztna_fail "etcd member $name has no data dir to restart on"
  t0=$(ztna_now_ms)
  lab_etcd__spawn "$name" existing
  for other in "${LAB_ETCD_NAMES[@]}"; do
    ! lab_etcd_running "$other" || up=$((up + 1))
  done
  if ((2 * up > ${#LAB_ETCD_NAMES[@]})); then
    lab_etcd_wait_healthy 30 "$name"
    ztna_log "etcd: $name restarted, healthy after $(($(ztna_now_ms) - t0)) ms ($up of ${#LAB_ETCD_NAMES[@]} members running)"
  else
    ztna_wait_for 30 "etcd member $name answers on its peer port" lab_etcd__peer_answers "$name"
    ztna_log "etcd: $name restarted, its peer port answering after $(($(ztna_now_ms) - t0)) ms; no quorum ($up of ${#LAB_ETCD_NAMES[@]} members running)"
  fi
}

lab_etcd_leader() {
  local name eps=() json id
  for name in "${LAB_ETCD_NAMES[@]}"; do
    ! lab_etcd_running "$name" || eps+=("$name")
  done
  ((${#eps[@]})) || return 1
  json=$(lab_etcd__ctl "$(lab_etcd__member_endpoints "${eps[@]}")" endpoint status -w json 2>/dev/null) ||
    return 1
  for name in "${eps[@]}"; do
    id=$(jq -r --arg e "${LAB_ETCD_IP[$name]}:$LAB_ETCD_CLIENT_PORT" \
      '.[] | select(.Endpoint == $e and .Status.leader == .Status.header.member_id) | .Endpoint' <<<"$json")
    [[ -z $id ]] || { echo "$name"; return 0; }
  done
  return 1
}

lab_etcd_stop() {
  local leader name
  leader=$(lab_etcd_leader) || leader=""
  for name in "${LAB_ETCD_NAMES[@]}"; do
    [[ $name == "$leader" ]] || ! lab_etcd_running "$name" || ztna_stop "$name"
  done
  [[ -z $leader ]] || ztna_stop "$leader"
}

lab_etcd_metric() {
  local name=$1 text
  shift
  [[ -n ${LAB_ETCD_IP[$name]:-} ]] || ztna_fail "no etcd member $name"
  text=$(lab_in "$LAB_ETCD_HOST" curl -fsS --max-time 5 \
    "http://${LAB_ETCD_IP[$name]}:$LAB_ETCD_CLIENT_PORT/metrics") || return 1
  awk -v list="$*" 'BEGIN { n = split(list, want, " ") }
    { for (i = 1; i <= n; i++) if ($1 == want[i] || index($1, want[i] "{") == 1) sum[i] += $NF }
    END { for (i = 1; i <= n; i++) printf "%.0f%s", sum[i], (i < n ? " " : "\n") }' <<<"$text"
}
