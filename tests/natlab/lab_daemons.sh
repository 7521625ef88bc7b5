# shellcheck shell=bash
# lib.sh declares ZTNA_ROLE and ZTNA_SOCK (associative arrays) before this file is sourced.
# shellcheck disable=SC2034,SC2154,SC2004
# The three daemons, a backend and a client inside the NAT lab (natlab.sh). Source lib.sh, then
# natlab.sh, then this file. Processes are started with ztna_spawn, so lib.sh stops them at exit;
# the lab itself is torn down after them (ZTNA_EXIT_HOOKS).
#
# The intermediate lives on the lab's internet at $LAB_INTERMEDIATE_IP:4433 (IPv4 or IPv6); a
# backend (nginx) and the connector share a host, the backend on that host's own loopback, as
# next to a real private app. Agents always look for direct paths here. Peers listen on
# $LAB_PEER_LISTEN: IPv4 only by default, "[::]:0" for a dual-stack socket (the daemons' own
# default), whose host candidates are both families.

LAB_INTERMEDIATE_IP=${LAB_INTERMEDIATE_IP:-203.0.113.10}
LAB_INTERMEDIATE_PORT=4433
LAB_PEER_LISTEN=${LAB_PEER_LISTEN:-0.0.0.0:0}
LAB_BACKEND_PORT=8080

# lab_hostport IP PORT: IP:PORT, an IPv6 IP in brackets.
lab_hostport() {
  if [[ $1 == *:* ]]; then echo "[$1]:$2"; else echo "$1:$2"; fi
}

# lab_in HOST cmd...: run a command inside HOST's namespace.
lab_in() {
  local ns
  ns=$(natlab_ns "$1")
  shift
  ip netns exec "$ns" "$@"
}

# lab_certs: the deployment's certificates, the intermediate's with the lab address as IP SAN.
lab_certs() {
  ztna_make_certs --intermediate-ip "$LAB_INTERMEDIATE_IP" "$@"
}

# lab_start_intermediate HOST [args...]
lab_start_intermediate() {
  local host=$1 sock=$ZTNA_TMP/run/intermediate.sock
  shift
  ZTNA_ROLE[intermediate]=intermediate
  ZTNA_SOCK[intermediate]=$sock
  local args
  mapfile -t args < <(ztna_intermediate_args)
  ztna_spawn intermediate 1 ip netns exec "$(natlab_ns "$host")" "$ZTNA_INTERMEDIATE_BIN" run \
    --listen "$(lab_hostport "$LAB_INTERMEDIATE_IP" "$LAB_INTERMEDIATE_PORT")" "${args[@]}" \
    --status-socket "$sock" --log-level "${ZTNA_LOG_LEVEL:-info}" "$@"
  ztna_wait_for 30 "intermediate status socket answers" ztna_json intermediate
}

# lab_start_named_intermediate NAME HOST IP [args...]: one of several intermediates, in HOST's
# namespace on IP:$LAB_INTERMEDIATE_PORT, with the deployment's certificate and keys (the policy
# in $ZTNA_POLICY if set), its own status socket, and, if a lab etcd cluster runs
# (lab_etcd_start), that cluster with NAME as its node name and a 2 s lease.
lab_start_named_intermediate() {
  local name=$1 host=$2 ip=$3 sock=$ZTNA_TMP/run/$1.sock args etcd=()
  shift 3
  ZTNA_ROLE[$name]=intermediate
  ZTNA_SOCK[$name]=$sock
  mapfile -t args < <(ztna_intermediate_args)
  [[ -z ${LAB_ETCD_HOST:-} ]] || mapfile -t etcd < <(lab_etcd_args; printf '%s\n' --etcd-node "$name" --etcd-lease-ttl 2)
  ztna_spawn "$name" 1 ip netns exec "$(natlab_ns "$host")" "$ZTNA_INTERMEDIATE_BIN" run \
    --listen "$(lab_hostport "$ip" "$LAB_INTERMEDIATE_PORT")" "${args[@]}" --status-socket "$sock" \
    --log-level "${ZTNA_LOG_LEVEL:-info}" "${etcd[@]}" "$@"
  ztna_wait_for 30 "$name status socket answers" ztna_json "$name"
}

# lab_start_backend HOST DOCROOT: nginx on HOST's loopback, port $LAB_BACKEND_PORT.
lab_start_backend() {
  local host=$1 root=$2 dir=$ZTNA_TMP/nginx-$1
  mkdir -p "$dir/tmp"
  cat >"$dir/nginx.conf" <<NGINX
user root root;
worker_processes 1;
error_log stderr warn;
pid $dir/nginx.pid;
events { worker_connections 1024; }
http {
  access_log off;
  default_type application/octet-stream;
  sendfile on;
  client_body_temp_path $dir/tmp/body;
  proxy_temp_path $dir/tmp/proxy;
  fastcgi_temp_path $dir/tmp/fastcgi;
  uwsgi_temp_path $dir/tmp/uwsgi;
  scgi_temp_path $dir/tmp/scgi;
  server { listen 127.0.0.1:$LAB_BACKEND_PORT; root $root; }
}
NGINX
  ztna_spawn "nginx-$host" 0 ip netns exec "$(natlab_ns "$host")" nginx -e stderr -p "$dir" \
    -c "$dir/nginx.conf" -g 'daemon off;'
  ztna_wait_for 10 "nginx on $host:$LAB_BACKEND_PORT" lab_tcp_listening "$host" "$LAB_BACKEND_PORT"
}

lab_tcp_listening() {
  [[ -n $(lab_in "$1" ss -Hltn "sport = :$2" 2>/dev/null) ]]
}

# lab_start_peer ROLE NAME HOST [args...]: a connector or an agent on HOST, with the
# deployment's certificates for NAME, on $LAB_PEER_LISTEN, registering with the intermediate at
# $LAB_INTERMEDIATE_IP; agents look for direct paths.
lab_start_peer() {
  local role=$1 name=$2 host=$3 ns
  shift 3
  ns=$(natlab_ns "$host") || ztna_fail "no lab host $host"
  ZTNA_PEER_NETNS=$ns ZTNA_AGENT_PATHS=auto \
    ZTNA_PEER_INTERMEDIATE=$(lab_hostport "$LAB_INTERMEDIATE_IP" "$LAB_INTERMEDIATE_PORT") \
    ZTNA_PEER_LISTEN=$LAB_PEER_LISTEN \
    ztna_start_peer "$role" "$name" "$ZTNA_CERTS/ca.pem" "$ZTNA_CERTS/$role-$name.pem" \
    "$ZTNA_CERTS/$role-$name.key" "$@"
}

# lab_fetch HOST URL OUT [SECONDS]: curl inside HOST; fails the test on error.
lab_fetch() {
  local host=$1 url=$2 out=$3 secs=${4:-60}
  lab_in "$host" curl -sS --fail --max-time "$(ztna_secs "$secs")" -o "$out" "$url" ||
    ztna_fail "fetch $url from $host failed"
}

# lab_session_json NAME: the first session of an agent or connector, as JSON ("null" if none).
lab_session_json() {
  ztna_json "$1" | jq -c '.sessions[0]'
}

# --- Raw TCP streams with no length framing (tests/tools/stream_probe.py), read until they end:
# what a backup or a dump looks like to the tunnel.
LAB_STREAM_PROBE=$ZTNA_REPO/tests/tools/stream_probe.py
declare -A LAB_FETCH_PID

# lab_start_stream_server HOST BYTES RATE: on HOST's loopback, sends every connection BYTES at
# RATE bytes/s, then a clean end; its port in LAB_STREAM_PORT.
lab_start_stream_server() {
  ztna_spawn stream 0 ip netns exec "$(natlab_ns "$1")" "$ZTNA_PYTHON" "$LAB_STREAM_PROBE" serve \
    "$ZTNA_TMP/stream.port" "$2" "$3"
  ztna_wait_for 10 "stream server up" test -s "$ZTNA_TMP/stream.port"
  LAB_STREAM_PORT=$(cat "$ZTNA_TMP/stream.port")
}

# lab_start_stream_peers HOST [ARGS...]: connector conn1 publishing the stream server as
# "stream", agent1 exposing it on 127.0.0.1:9001 (it may go direct) and agent2 on 9002
# (--relay-only), all on HOST, each with ARGS too; returns once they are connected and listening.
lab_start_stream_peers() {
  local host=$1
  shift
  lab_start_peer connector conn1 "$host" "$@" --service "stream=tcp://127.0.0.1:$LAB_STREAM_PORT"
  lab_start_peer agent agent1 "$host" "$@" --expose "stream=tcp://127.0.0.1:9001"
  lab_start_peer agent agent2 "$host" "$@" --relay-only --expose "stream=tcp://127.0.0.1:9002"
  ztna_wait_connected conn1 agent1 agent2
  # With lab_start_intermediate's intermediate (a test with several checks each of its own).
  [[ -z ${ZTNA_SOCK[intermediate]:-} ]] || ztna_wait_service stream
  ztna_wait_for 30 "agent1 listening" lab_tcp_listening "$host" 9001
  ztna_wait_for 30 "agent2 listening" lab_tcp_listening "$host" 9002
}

# lab_direct_session AGENT SERVICE: opens AGENT's session to SERVICE (one ping) and waits until
# it is on a direct path, so that a stream measured afterwards does not include the session's
# first move from the relay onto the direct path (a new path starts with a fresh congestion
# window and RTT estimate, RFC 9000 §9.4: a pause of up to about 100 ms in a paced stream).
lab_direct_session() {
  "$ZTNA_AGENT_BIN" ping "$2" -c 1 --status-socket "${ZTNA_SOCK[$1]}" >/dev/null ||
    ztna_fail "$1: ping $2 failed"
  # shellcheck disable=SC2016 # $s is jq's
  ztna_wait_json "$1" 20 "$1's session to $2 on a direct path" \
    'any(.sessions[]?; .service == $s and .path == "direct")' --arg s "$2"
}

# lab_stream_fetch NAME HOST PORT BYTES: reads a stream of BYTES through 127.0.0.1:PORT on HOST,
# in the background (pid in LAB_FETCH_PID[NAME]); lab_stream_result reads how it went.
lab_stream_fetch() {
  local n=$1
  rm -f "$ZTNA_TMP/$n.json" "$ZTNA_TMP/$n.progress"
  lab_in "$2" "$ZTNA_PYTHON" "$LAB_STREAM_PROBE" fetch "127.0.0.1:$3" "$4" "$ZTNA_TMP/$n.json" \
    "$ZTNA_TMP/$n.progress" 2>"$ZTNA_TMP/$n.err" &
  LAB_FETCH_PID[$n]=$!
}

# lab_stream_progress NAME... BYTES: whether each fetch NAME has read at least BYTES.
lab_stream_progress() {
  local want=${*: -1} n
  for n in "${@:1:$#-1}"; do
    [[ -s $ZTNA_TMP/$n.progress ]] && (($(cat "$ZTNA_TMP/$n.progress") >= want)) || return 1
  done
}

# lab_stream_wait NAME...: waits for the fetches to end; fails the test for one without a result.
lab_stream_wait() {
  local n
  for n in "$@"; do
    wait "${LAB_FETCH_PID[$n]}" || true
    [[ -s $ZTNA_TMP/$n.json ]] || ztna_fail "$n: no result ($(cat "$ZTNA_TMP/$n.err"))"
  done
}

# lab_stream_result NAME FILTER: a field of fetch NAME's result (jq FILTER): .end ("eof",
# "reset", ...), .bytes, .complete, .max_gap_ms, .max_gap_at, .ended.
lab_stream_result() {
  jq -r "$2" "$ZTNA_TMP/$1.json"
}

# lab_stream_expect_intact NAME...: waits for the fetches; each must have read the whole stream,
# byte for byte (sha256), and seen a clean end of file.
lab_stream_expect_intact() {
  local n
  lab_stream_wait "$@"
  for n in "$@"; do
    [[ $(lab_stream_result "$n" .end) == eof && $(lab_stream_result "$n" .complete) == true ]] ||
      ztna_fail "$n: stream ended '$(lab_stream_result "$n" .end)' after $(lab_stream_result "$n" .bytes) bytes (complete: $(lab_stream_result "$n" .complete))"
  done
}

# lab_stream_expect_no_stall NAME MS: fetch NAME never waited MS ms or more between two reads
# (MS scaled by ZTNA_TIME_SCALE).
lab_stream_expect_no_stall() {
  local gap
  gap=$(lab_stream_result "$1" .max_gap_ms)
  awk -v g="$gap" -v limit=$(($2 * ZTNA_TIME_SCALE)) 'BEGIN { exit !(g < limit) }' ||
    ztna_fail "$1: the stream stalled for $gap ms"
}
