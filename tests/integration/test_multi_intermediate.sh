#!/usr/bin/env bash
# Several intermediates (DESIGN D11) sharing state in a three-node etcd cluster. Three
# intermediates i1..i3 (10.77.0.11-13), etcd1..3 (10.77.0.21-23) and the peers share one network
# namespace (natlab_lone_host; its first address, 10.77.0.1, is the peers' host candidate). The
# connector registers with all three; each agent picks one home, the first to answer (the
# shortest round trip), and meets the connector there: signaling and relay never cross from one
# intermediate to another. agent1 goes direct, agent2 stays on the relay (--relay-only); each
# fetches a raw TCP stream (tests/tools/stream_probe.py).
# Then agent2's home is killed mid-transfer, first with SIGKILL, then (its new home) with
# SIGTERM. Each time:
# - agent2 moves to another intermediate, announces its session there, the intermediate asks
#   the connector, and the session is bound on the new relay within 2 s of the kill (x4 under
#   the sanitizers); its stream arrives whole (sha256) and ends with a clean end of file;
# - agent1's direct session never stalls 100 ms or more and its stream arrives whole;
# - etcd holds agent2's home at the new intermediate, and the stopped intermediate's member
#   record goes with its lease (--etcd-lease-ttl 2).
# shellcheck source-path=SCRIPTDIR/../natlab source=../natlab/lab_test.sh
source "$(dirname "$0")/../natlab/lab_test.sh"

size=$((16 << 20))
rate=$((3 << 20))
LAB_INTERMEDIATE_IP=10.77.0.11
declare -A ip_of=([i1]=10.77.0.11 [i2]=10.77.0.12 [i3]=10.77.0.13)

lab_test_setup
lab_certs --agent agent2 --agent agent3 --intermediate-ip 10.77.0.12 --intermediate-ip 10.77.0.13
natlab_lone_host solo 10.77.0.1/24 10.77.0.11/24 10.77.0.12/24 10.77.0.13/24 \
  10.77.0.21/24 10.77.0.22/24 10.77.0.23/24
lab_etcd_start solo 10.77.0.21 10.77.0.22 10.77.0.23

for i in i1 i2 i3; do lab_start_named_intermediate "$i" solo "${ip_of[$i]}"; done
for i in i1 i2 i3; do
  ztna_wait_json "$i" 10 "$i: etcd up, three members" \
    '.cluster.etcd == "up" and (.cluster.members | length) == 3'
done
all=(--intermediate "${ip_of[i2]}:$LAB_INTERMEDIATE_PORT" --intermediate "${ip_of[i3]}:$LAB_INTERMEDIATE_PORT")

lab_start_stream_server solo "$size" "$rate"
lab_start_stream_peers solo "${all[@]}"
for i in i1 i2 i3; do
  ztna_wait_json "$i" 20 "conn1 registered with $i" \
    '[.peers[] | select(.role == "connector") | .name] == ["conn1"]'
done

lab_direct_session agent1 stream

# home_of AGENT: the intermediate (i1..i3) the agent is registered with.
home_of() {
  local addr i
  addr=$(ztna_json "$1" | jq -r '.control.intermediate')
  for i in i1 i2 i3; do
    if [[ $addr == "${ip_of[$i]}:$LAB_INTERMEDIATE_PORT" ]]; then echo "$i"; fi
  done
}
ztna_log "homes: agent1 on $(home_of agent1), agent2 on $(home_of agent2); conn1 on all three"

result() { lab_stream_result "$@"; }

failover() {
  local signal=$1 case=$2 home sid2 t_kill t_bound new_home
  lab_stream_fetch "direct-$case" solo 9001 "$size"
  lab_stream_fetch "relay-$case" solo 9002 "$size"
  ztna_wait_for 20 "[$case] both streams under way" \
    lab_stream_progress "direct-$case" "relay-$case" $((2 << 20))
  ztna_wait_json agent1 20 "[$case] agent1's session direct" '.sessions[0].path == "direct"'
  home=$(home_of agent2)
  [[ -n $home ]] || ztna_fail "[$case] agent2 has no home"
  sid2=$(ztna_json agent2 | jq -r '.sessions[0].session_id')
  ztna_json "$home" | jq -e --arg s "$sid2" '.sessions[] | select(.session_id == $s and .state == "relaying")' >/dev/null ||
    ztna_fail "[$case] agent2's session is not relayed by its home $home"

  local pid=${ZTNA_PID_OF[$home]}
  t_kill=$(ztna_now_ms)
  if [[ $signal == KILL ]]; then
    kill -KILL "$pid"
    ztna_reap "$pid"
  else
    ztna_stop "$home" 10
  fi
  ztna_log "[$case] agent2's home $home (pid $pid) stopped by SIG$signal"
  ztna_wait_for 10 "[$case] agent2 log: relay bound again at another intermediate" \
    ztna_log_has agent2 "session $sid2: relay bound again; moving the session onto it"
  # The newest such line is the one of this failover.
  t_bound=$(grep -E "session $sid2: relay bound again; moving the session onto it" \
    "$(ztna_logfile agent2)" | tail -1 | cut -d' ' -f1 | tr T ' ' | xargs -I{} date -d {} +%s%3N)
  new_home=$(home_of agent2)
  ztna_log "[$case] agent2 re-homed to $new_home; session bound there $((t_bound - t_kill)) ms after the kill"
  [[ -n $new_home && $new_home != "$home" ]] || ztna_fail "[$case] agent2 did not move to another intermediate"
  ((t_bound - t_kill <= 2000 * ZTNA_TIME_SCALE)) ||
    ztna_fail "[$case] the relayed session took $((t_bound - t_kill)) ms to move"

  lab_stream_expect_intact "direct-$case" "relay-$case"
  ztna_log "[$case] direct stream intact, longest gap $(result "direct-$case" .max_gap_ms) ms; relayed stream intact, longest gap $(result "relay-$case" .max_gap_ms) ms"
  lab_stream_expect_no_stall "direct-$case" 100
  ztna_jq agent2 '.sessions | length == 1 and .[0].session_id == $s' --arg s "$sid2" >/dev/null ||
    ztna_fail "[$case] agent2's session changed"
  ztna_wait_for 5 "[$case] etcd: agent2's home at $new_home" in_etcd "homes/agent/agent2/$new_home"
  ztna_wait_for 5 "[$case] etcd: $home's member record gone with its lease" not_in_etcd "members/$home"
}

in_etcd() { lab_etcd_ctl get "ztna/v1/$1" --keys-only | grep -qx "ztna/v1/$1"; }
not_in_etcd() { ! in_etcd "$1"; }

failover KILL kill
failover TERM term
for n in agent1 agent2 conn1; do
  ! ztna_log_has "$n" " ended: " || ztna_fail "$n ended a session: $(grep -E ' ended: ' "$(ztna_logfile "$n")")"
done

# An idle agent (no session yet) whose home dies as a session is asked for (ztna-agent ping): the
# request makes it check its home (a Heartbeat), it moves, asks the new home, and the session
# opens. One of the two stopped intermediates starts again first, so that two are up.
alive=() dead=()
for i in i1 i2 i3; do
  if ztna_alive "${ZTNA_PID_OF[$i]}"; then alive+=("$i"); else dead+=("$i"); fi
done
lab_start_named_intermediate "${dead[0]}" solo "${ip_of[${dead[0]}]}"
ztna_wait_json "${dead[0]}" 20 "conn1 registered with the restarted ${dead[0]}" \
  '[.peers[] | select(.role == "connector") | .name] == ["conn1"]'
lab_start_peer agent agent3 solo "${all[@]}" --expose "stream=tcp://127.0.0.1:9003"
ztna_wait_connected agent3
ztna_wait_for 30 "agent3 listening" lab_tcp_listening solo 9003
home=$(home_of agent3)
pid=${ZTNA_PID_OF[$home]}
kill -KILL "$pid"
ztna_reap "$pid"
t_kill=$(ztna_now_ms)
"$ZTNA_AGENT_BIN" ping stream -c 1 --status-socket "${ZTNA_SOCK[agent3]}" >"$ZTNA_TMP/ping.out" 2>&1 ||
  ztna_fail "[idle] agent3 could not open its session after its home died: $(cat "$ZTNA_TMP/ping.out")"
ztna_log "[idle] agent3's home $home killed as a session was asked for: opened through $(home_of agent3), answered $(($(ztna_now_ms) - t_kill)) ms after the kill: $(head -1 "$ZTNA_TMP/ping.out")"
ztna_log_has agent3 "'stream': asking the new intermediate for the session" ||
  ztna_fail "[idle] agent3 did not carry its request over to the new home"
lab_etcd_stop
ztna_pass
