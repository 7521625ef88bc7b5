#!/usr/bin/env bash
# Direct paths without a NAT, on one machine. Loopback candidates are never probed
# (docs/security.md), so everything runs in one network namespace (natlab_lone_host) whose one
# address besides loopback is 10.77.0.1: the three daemons, nginx and curl. The intermediate
# observes both peers at 10.77.0.1, where their host candidates are. A 64 MiB download starts at
# once, on the relay; the session moves to the direct path under it (a QUIC migration) and the
# file arrives intact. Then the agent's status and `ztna-agent ping` both say "direct", the
# connector agrees, and the intermediate stops relaying the session's packets.
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

ztna_pass
