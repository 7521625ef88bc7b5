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

lab_test_setup
lab_certs --agent agent2
natlab_lone_host solo "$solo_ip/24"
lab_start_intermediate solo
lab_start_stream_server solo "$size" "$rate"
lab_start_stream_peers solo

lab_stream_fetch direct solo 9001 "$size"
lab_stream_fetch relay solo 9002 "$size"
ztna_wait_for 20 "both streams under way" lab_stream_progress direct relay $((2 << 20))
ztna_wait_json agent1 20 "agent1's session direct" '.sessions[0].path == "direct"'

pid=${ZTNA_PID_OF[conn1]}
t_kill=$(ztna_now_ms)
kill -KILL "$pid"
ztna_reap "$pid"
ztna_log "conn1 (pid $pid) killed"
lab_stream_wait direct relay
for n in direct relay; do
  end=$(lab_stream_result "$n" .end)
  got=$(lab_stream_result "$n" .bytes)
  after=$(lab_stream_result "$n" "(.ended * 1000 - $t_kill) | floor")
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
