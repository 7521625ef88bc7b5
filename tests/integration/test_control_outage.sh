#!/usr/bin/env bash
# Sessions outlive the intermediate (DESIGN D10). Everything runs in one network namespace whose
# one address besides loopback is 10.77.0.1 (natlab_lone_host), so that agent1 can go direct;
# agent2 runs --relay-only. Each fetches a raw TCP stream with no length framing (10 MiB at
# 3 MiB/s, tests/tools/stream_probe.py) through connector conn1.
# The intermediate is stopped mid-transfer and started again 1.5 s later, once with SIGTERM and
# once with SIGKILL. Each time:
# - agent1's direct session carries on: its stream arrives whole (same sha256), ends with a clean
#   end of file, never stalls 100 ms or more (x4 under the sanitizers), and its session never
#   left the direct path;
# - agent2's relayed session keeps its QUIC connection: once both ends have announced it to the
#   restarted intermediate, it is bound again (SessionResumed), agent2 migrates onto the relay,
#   and its stream arrives whole too; the figures are the gap and the time to resume.
# No session ends, and the intermediate counts the resumed sessions.
# shellcheck source-path=SCRIPTDIR/../natlab source=../natlab/lab_test.sh
source "$(dirname "$0")/../natlab/lab_test.sh"

size=$((10 << 20))
rate=$((3 << 20))
solo_ip=10.77.0.1
LAB_INTERMEDIATE_IP=$solo_ip

lab_test_setup
lab_certs --agent agent2
natlab_lone_host solo "$solo_ip/24"
lab_start_intermediate solo
lab_start_stream_server solo "$size" "$rate"
lab_start_stream_peers solo
lab_direct_session agent1 stream
result() { lab_stream_result "$@"; }

outage() {
  local signal=$1 case=$2 t_down t_up old_pid
  lab_stream_fetch "direct-$case" solo 9001 "$size"
  lab_stream_fetch "relay-$case" solo 9002 "$size"
  ztna_wait_for 20 "both streams under way" \
    lab_stream_progress "direct-$case" "relay-$case" $((2 << 20))
  ztna_wait_json agent1 20 "agent1's session direct" '.sessions[0].path == "direct"'
  ztna_jq agent2 '.sessions[0].path == "relay"' >/dev/null || ztna_fail "agent2's session is not relayed"
  local sid1 sid2 resumed_before
  sid1=$(ztna_json agent1 | jq -r '.sessions[0].session_id')
  sid2=$(ztna_json agent2 | jq -r '.sessions[0].session_id')

  old_pid=${ZTNA_PID_OF[intermediate]}
  t_down=$(ztna_now_ms)
  if [[ $signal == TERM ]]; then
    ztna_stop intermediate 10
  else
    kill -KILL "$old_pid"
    ztna_reap "$old_pid"
  fi
  ztna_log "[$case] intermediate (pid $old_pid) stopped by SIG$signal"
  # The outage itself: the intermediate stays down for 1.5 s, as in an operator's restart.
  sleep 1.5
  lab_start_intermediate solo
  t_up=$(ztna_now_ms)
  ztna_wait_json intermediate 30 "[$case] both sessions resumed at the restarted intermediate" \
    '[.sessions[] | select(.state == "relaying") | .session_id] | sort == ([$a, $b] | sort)' \
    --arg a "$sid1" --arg b "$sid2"
  resumed_before=$(ztna_counter intermediate sessions_resumed)
  ((resumed_before == 2)) || ztna_fail "[$case] sessions_resumed is $resumed_before, want 2"
  ztna_log "[$case] sessions bound again $(($(ztna_now_ms) - t_up)) ms after the restart"

  lab_stream_expect_intact "direct-$case" "relay-$case"
  ztna_log "[$case] direct stream: $(result "direct-$case" .bytes) bytes intact, longest gap $(result "direct-$case" .max_gap_ms) ms, $(result "direct-$case" "(.max_gap_at * 1000 - $t_down | floor)") ms after the intermediate went down"
  lab_stream_expect_no_stall "direct-$case" 100
  ztna_log "[$case] relayed stream: $(result "relay-$case" .bytes) bytes intact, longest gap $(result "relay-$case" .max_gap_ms) ms (outage began $((t_up - t_down)) ms before the restart)"
  ztna_jq agent1 '.sessions | length == 1 and .[0].session_id == $s and .[0].path == "direct"
                  and .[0].paths.fallbacks == 0' --arg s "$sid1" >/dev/null ||
    ztna_fail "[$case] agent1's session changed: $(ztna_json agent1 | jq -c '.sessions[0] | {session_id, path, paths: .paths | {upgrades, fallbacks}}')"
  ztna_jq agent2 '.sessions | length == 1 and .[0].session_id == $s' --arg s "$sid2" >/dev/null ||
    ztna_fail "[$case] agent2's session changed"
}

outage TERM term
ztna_log_has agent2 "session $(ztna_json agent2 | jq -r '.sessions[0].session_id'): relay bound again; moving the session onto it" ||
  ztna_fail "agent2 did not move its session onto the relay that came back"
outage KILL kill
for n in agent1 agent2 conn1; do
  ! ztna_log_has "$n" " ended: " || ztna_fail "$n ended a session: $(grep -E ' ended: ' "$(ztna_logfile "$n")")"
done
ztna_pass
