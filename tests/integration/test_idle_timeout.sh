#!/usr/bin/env bash
# A peer that vanishes without a word (SIGKILL: no CONNECTION_CLOSE) is dropped by the
# intermediate after --idle-timeout. Its session outlives the control connection (DESIGN D10):
# the intermediate keeps it "waiting" and tells the agent its peer is lost (PeerLost). The agent
# hears nothing from the dead connector and ends the session on its own within seconds, and the
# intermediate forgets it.
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

ztna_setup
ztna_make_certs
ztna_random_file "$ZTNA_TMP/www/blob.bin" $((64 << 10))
ztna_start_nginx "$ZTNA_TMP/www"
web_port=$(ztna_free_port tcp)
ztna_start_intermediate --idle-timeout 3
ztna_start_connector conn1 --service "web=tcp://127.0.0.1:$ZTNA_NGINX_PORT"
ztna_start_agent agent1 --expose "web=tcp://127.0.0.1:$web_port"
ztna_wait_connected conn1 agent1
ztna_wait_service web
ztna_fetch "http://127.0.0.1:$web_port/blob.bin" "$ZTNA_TMP/got.bin" 30
ztna_jq intermediate '.sessions | length == 1' >/dev/null || ztna_fail "expected one session"

pid=${ZTNA_PID_OF[conn1]}
kill -KILL "$pid"
ztna_reap "$pid"
t0=$(ztna_now_ms)
ztna_wait_json intermediate 30 "conn1 dropped after the idle timeout, its session waiting" \
  '([.peers[].name] | index("conn1") == null) and ([.sessions[].state] == ["waiting"])'
ztna_log "intermediate dropped the silent connector after $(($(ztna_now_ms) - t0)) ms"
ztna_wait_for 5 "agent1 log: its connector lost its control connection" \
  ztna_log_has agent1 "connector 'conn1' lost its control connection"
ztna_wait_json agent1 30 "agent dropped its session" '.sessions | length == 0'
ztna_wait_for 5 "agent1 log: connector unreachable" ztna_log_has agent1 "ended: connector unreachable: "
ztna_log "agent ended the session $(($(ztna_now_ms) - t0)) ms after the kill"
ztna_wait_json intermediate 5 "intermediate forgot the session" '.sessions | length == 0'
# The live agent keeps its control connection through the short timeout: its keepalives follow
# the negotiated idle timeout, so it connected exactly once.
ztna_jq agent1 '.control.state == "connected" and .counters.control_connects == 1' >/dev/null ||
  ztna_fail "agent's control connection did not stay up: $(ztna_json agent1 | jq -c '{control, counters}')"
ztna_pass
