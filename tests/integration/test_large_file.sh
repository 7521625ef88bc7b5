#!/usr/bin/env bash
# A 64 MiB random file served by nginx behind the connector, fetched with curl through the agent's
# local TCP listener: the bytes must arrive intact, over the relay path, and the agent's session
# counters must account for them.
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

size=$((64 << 20))

ztna_setup
ztna_make_certs
ztna_random_file "$ZTNA_TMP/www/big.bin" "$size"
ztna_start_web_stack
agent_port=$ZTNA_WEB_PORT

t0=$(ztna_now_ms)
ztna_fetch "http://127.0.0.1:$agent_port/big.bin" "$ZTNA_TMP/big.out" 120
t1=$(ztna_now_ms)
got=$(ztna_sha256 "$ZTNA_TMP/big.out")
want=$(ztna_sha256 "$ZTNA_TMP/www/big.bin")
[[ $got == "$want" ]] ||
  ztna_fail "sha256 mismatch: got $got ($(stat -c %s "$ZTNA_TMP/big.out") bytes), want $want ($size bytes)"
ztna_log "64 MiB intact in $((t1 - t0)) ms ($((size * 1000 / ((t1 - t0) > 0 ? (t1 - t0) : 1) / 1000000)) MB/s)"

# The session that carried it: relay path, at least the file's size received.
ztna_wait_json agent1 10 "a relay session with bytes_received >= $size" \
  'any(.sessions[]?; .path == "relay" and .connector == "conn1" and (.services | index("web")) != null and .bytes_received >= ($n | tonumber))' \
  --arg n "$size"
ztna_json agent1 | jq -c '.sessions' >&2

ztna_pass
