#!/usr/bin/env bash
# Direct paths without a NAT, on one machine. Loopback candidates are never probed
# (docs/security.md), so everything runs in one network namespace (natlab_lone_host) whose one
# address besides loopback is 10.77.0.1: the three daemons, nginx and curl. The intermediate
# observes both peers at 10.77.0.1, where their host candidates are. A 64 MiB download starts at
# once, on the relay; the session moves to the direct path under it (a QUIC migration) and the
# file arrives intact. Then the agent's status and `ztna-agent ping` both say "direct", the
# connector agrees, and the intermediate stops relaying the session's packets.
# Last, a new policy no longer lets agent1 reach web: on SIGHUP to the intermediate alone, the
# direct session ends at both ends within 1 s (their log lines' timestamps), nothing is left of
# it at the intermediate (session and relay binding), and a new request is denied.
# shellcheck source-path=SCRIPTDIR/../natlab source=../natlab/lab_test.sh
source "$(dirname "$0")/../natlab/lab_test.sh"

size=$((64 << 20))
solo_ip=10.77.0.1
LAB_INTERMEDIATE_IP=$solo_ip
agent_port=9000

lab_test_setup
natlab_lone_host solo "$solo_ip/24"
ztna_random_file "$ZTNA_TMP/www/big.bin" "$size"
lab_start_intermediate solo
lab_start_backend solo "$ZTNA_TMP/www"
lab_start_peer connector conn1 solo --service "web=tcp://127.0.0.1:$LAB_BACKEND_PORT"
lab_start_peer agent agent1 solo --expose "web=tcp://127.0.0.1:$agent_port"
ztna_wait_connected conn1 agent1
ztna_wait_service web
ztna_wait_for 30 "agent1 listening on tcp 127.0.0.1:$agent_port" lab_tcp_listening solo "$agent_port"

# The download opens the session: it starts on the relay before any check has run.
lab_fetch solo "http://127.0.0.1:$agent_port/big.bin" "$ZTNA_TMP/big.out" 120
got=$(ztna_sha256 "$ZTNA_TMP/big.out")
want=$(ztna_sha256 "$ZTNA_TMP/www/big.bin")
[[ $got == "$want" ]] || ztna_fail "sha256 mismatch: got $got, want $want"

ztna_wait_json agent1 10 "the session on the direct path" \
  'any(.sessions[]?; .path == "direct" and .paths.upgrades == 1 and .paths.fallbacks == 0
       and .paths.time_to_direct_ms > 0 and .paths.selected_pair != null
       and .bytes_received >= ($n | tonumber))' --arg n "$size"
ztna_wait_json conn1 10 "the connector followed the migration" \
  'any(.sessions[]?; .path == "direct")'
ttd=$(ztna_json agent1 | jq -r '.sessions[0].paths.time_to_direct_ms')
pair=$(ztna_json agent1 | jq -r '.sessions[0].paths.selected_pair')
ztna_log "direct after $ttd ms on pair $pair"
[[ $pair == "host $solo_ip:"*" -> host $solo_ip:"* ]] || ztna_fail "unexpected pair: $pair"

# The relay carried the start of the session only: the download went direct.
relayed=$(ztna_json intermediate | jq '.counters.relay_bytes_forwarded')
((relayed < size / 2)) || ztna_fail "intermediate relayed $relayed bytes of a $size-byte download"
ztna_log "intermediate relayed $relayed bytes"

out=$("$ZTNA_AGENT_BIN" ping web -c 2 --status-socket "${ZTNA_SOCK[agent1]}")
ztna_log "$out"
grep -q "pong from conn1 (web) via direct $solo_ip:" <<<"$out" || ztna_fail "ping did not go direct"

# --- A policy change closes the direct session too: the intermediate tells both ends.
sid=$(ztna_json agent1 | jq -r '.sessions[0].session_id')
ztna_write_policy "${ZTNA_POLICY:-$ZTNA_TMP/policy.toml}" <<'TOML'
version = 1

[[serve]]
connectors = ["conn1"]
services = ["web"]
TOML
t_hup=$(ztna_now_ms)
ztna_sighup intermediate
ztna_log_within_1s "$t_hup" intermediate "session $sid closed by the new policy: agent 'agent1' may no longer reach 'web'"
# Each end hears it from the intermediate or, on the direct path, first from the other end's
# CONNECTION_CLOSE: either way the session ends.
ztna_log_within_1s "$t_hup" agent1 "session $sid with connector 'conn1' for 'web' ended: "
ztna_log_within_1s "$t_hup" conn1 "session $sid with agent 'agent1' ended: "
ztna_wait_json agent1 5 "agent1 has no session" '.sessions | length == 0'
ztna_wait_json conn1 5 "conn1 has no session" '.sessions | length == 0'
ztna_jq intermediate '.sessions | length == 0' >/dev/null ||
  ztna_fail "the intermediate kept the session: $(ztna_json intermediate | jq -c .sessions)"
if "$ZTNA_AGENT_BIN" ping web -c 1 --status-socket "${ZTNA_SOCK[agent1]}" >"$ZTNA_TMP/ping.out" 2>&1; then
  ztna_fail "ping went through after the policy denied it: $(cat "$ZTNA_TMP/ping.out")"
fi
grep -q "the intermediate refused a session for 'web': not authorized to reach 'web' (not authorized)" "$ZTNA_TMP/ping.out" ||
  ztna_fail "ping after the policy change said: $(cat "$ZTNA_TMP/ping.out")"
ztna_log "after the reload: $(tr '\n' ' ' <"$ZTNA_TMP/ping.out")"

ztna_pass
