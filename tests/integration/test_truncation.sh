#!/usr/bin/env bash
# A stream cut by a real failure is reset, never closed cleanly (DESIGN D10). Two agents fetch a
# raw TCP stream with no length framing (tests/tools/stream_probe.py, like a backup or a dump
# read until end of file) through connector conn1: agent1 on a direct path (everything in one
# network namespace with the address 10.77.0.1, natlab_lone_host), agent2 --relay-only. The
# connector is killed (SIGKILL) mid-transfer. Both local clients must see the connection reset
# (ECONNRESET), never a clean end of file, and within seconds: each agent notices that its
# connector is silent (session liveness) long before the 30 s idle timeout.
# shellcheck source-path=SCRIPTDIR/../natlab source=../natlab/lab_test.sh
source "$(dirname "$0")/../natlab/lab_test.sh"

size=$((64 << 20))
rate=$((2 << 20))
solo_ip=10.77.0.1
LAB_INTERMEDIATE_IP=$solo_ip
probe=$ZTNA_REPO/tests/tools/stream_probe.py

lab_test_setup
lab_certs --agent agent2
natlab_lone_host solo "$solo_ip/24"
lab_start_intermediate solo
ztna_spawn stream 0 ip netns exec "$(natlab_ns solo)" "$ZTNA_PYTHON" "$probe" serve \
  "$ZTNA_TMP/stream.port" "$size" "$rate"
ztna_wait_for 10 "stream server up" test -s "$ZTNA_TMP/stream.port"
lab_start_peer connector conn1 solo --service "stream=tcp://127.0.0.1:$(cat "$ZTNA_TMP/stream.port")"
lab_start_peer agent agent1 solo --expose "stream=tcp://127.0.0.1:9001"
lab_start_peer agent agent2 solo --relay-only --expose "stream=tcp://127.0.0.1:9002"
ztna_wait_connected conn1 agent1 agent2
ztna_wait_service stream
ztna_wait_for 30 "agent1 listening" lab_tcp_listening solo 9001
ztna_wait_for 30 "agent2 listening" lab_tcp_listening solo 9002

declare -A pid_of
for n in direct:9001 relay:9002; do
  lab_in solo "$ZTNA_PYTHON" "$probe" fetch "127.0.0.1:${n#*:}" "$size" "$ZTNA_TMP/${n%:*}.json" \
    "$ZTNA_TMP/${n%:*}.progress" 2>"$ZTNA_TMP/${n%:*}.err" &
  pid_of[${n%:*}]=$!
done
progress() { [[ -s $ZTNA_TMP/$1.progress ]] && (($(cat "$ZTNA_TMP/$1.progress") >= $2)); }
ztna_wait_for 20 "both streams under way" eval 'progress direct $((2 << 20)) && progress relay $((2 << 20))'
ztna_wait_json agent1 20 "agent1's session direct" '.sessions[0].path == "direct"'

pid=${ZTNA_PID_OF[conn1]}
t_kill=$(ztna_now_ms)
kill -KILL "$pid"
ztna_reap "$pid"
ztna_log "conn1 (pid $pid) killed"
wait "${pid_of[direct]}" "${pid_of[relay]}" || true
for n in direct relay; do
  [[ -s $ZTNA_TMP/$n.json ]] || ztna_fail "$n: no result ($(cat "$ZTNA_TMP/$n.err"))"
  end=$(jq -r .end "$ZTNA_TMP/$n.json")
  got=$(jq -r .bytes "$ZTNA_TMP/$n.json")
  after=$(jq -r "(.ended * 1000 - $t_kill) | floor" "$ZTNA_TMP/$n.json")
  ztna_log "$n stream: ended '$end' after $got of $size bytes, $after ms after the kill"
  [[ $end == reset ]] || ztna_fail "$n: the cut stream ended '$end', not with a reset"
  ((got < size)) || ztna_fail "$n: the whole stream arrived although the connector was killed"
  # Within seconds, not at the 30 s idle timeout: liveness (keepalive 1 s + 3 s on the relay;
  # consent 4 s, then the relay's grace, on the direct path).
  ((after < 15000 * ZTNA_TIME_SCALE)) || ztna_fail "$n: the reset came $after ms after the kill"
done
ztna_wait_for 5 "agent1 log: connector unreachable" ztna_log_has agent1 "ended: connector unreachable: "
ztna_wait_for 5 "agent2 log: connector unreachable" ztna_log_has agent2 "ended: connector unreachable: "
ztna_pass
