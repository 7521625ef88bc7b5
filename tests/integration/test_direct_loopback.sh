#!/usr/bin/env bash
# Direct paths without a NAT: on loopback the intermediate observes both peers at 127.0.0.1, so
# their server-reflexive candidates connect. A 64 MiB download starts at once, on the relay; the
# session moves to the direct path under it (a QUIC migration) and the file arrives intact.
# Then the agent's status and `ztna-agent ping` both say "direct", the connector agrees, and the
# intermediate stops relaying the session's packets.
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

size=$((64 << 20))
export ZTNA_AGENT_PATHS=auto

ztna_setup
ztna_make_certs
ztna_random_file "$ZTNA_TMP/www/big.bin" "$size"
ztna_start_web_stack
agent_port=$ZTNA_WEB_PORT

# The download opens the session: it starts on the relay before any check has run.
ztna_fetch "http://127.0.0.1:$agent_port/big.bin" "$ZTNA_TMP/big.out" 120
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

# The relay carried the start of the session only: the download went direct.
relayed=$(ztna_json intermediate | jq '.counters.relay_bytes_forwarded')
((relayed < size / 2)) || ztna_fail "intermediate relayed $relayed bytes of a $size-byte download"
ztna_log "intermediate relayed $relayed bytes"

out=$("$ZTNA_AGENT_BIN" ping web -c 2 --status-socket "${ZTNA_SOCK[agent1]}")
ztna_log "$out"
grep -q "pong from conn1 (web) via direct 127.0.0.1:" <<<"$out" || ztna_fail "ping did not go direct"

ztna_pass
