#!/usr/bin/env bash
# A real STUN client (coturn's turnutils_stunclient) sends Binding requests to the agent's and the
# connector's shared sockets. They carry no USERNAME and no MESSAGE-INTEGRITY, so each daemon must
# parse them, drop them unanswered and count them as unauthenticated (RFC 8445 §7.3: only checks
# with the session's short-term credentials are answered); the intermediate counts them as STUN.
# The tunnel keeps working afterwards.
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

ztna_setup
ztna_require_tools turnutils_stunclient
ztna_make_certs
ztna_random_file "$ZTNA_TMP/www/blob.bin" $((1 << 20))
ztna_start_web_stack
web_port=$ZTNA_WEB_PORT

# A live session, so the daemons' check machinery exists when the foreign requests arrive.
ztna_fetch "http://127.0.0.1:$web_port/blob.bin" "$ZTNA_TMP/before.bin" 30
cmp -s "$ZTNA_TMP/www/blob.bin" "$ZTNA_TMP/before.bin" || ztna_fail "content differs before STUN"

# probe NAME PORT COUNTER: run the client twice (plain RFC 8489 request, then RFC 5780 with
# CHANGE-REQUEST) against 127.0.0.1:PORT and wait for NAME's COUNTER to grow by two.
probe() {
  local name=$1 port=$2 counter=$3 before flag run=0
  before=$(ztna_counter "$name" "$counter")
  for flag in "" -f; do
    run=$((run + 1))
    # shellcheck disable=SC2086 # $flag is empty or one word
    ztna_spawn "stunclient-$name-$run" 0 turnutils_stunclient $flag -p "$port" 127.0.0.1
    ztna_wait_counter "$name" "$counter" $((before + run)) 10
    ztna_stop_pids 5 "$ZTNA_LAST_PID"
    # The client prints the reflexive address only when it got a response.
    if grep -qi "reflexive" "${ZTNA_LOG_OF[$ZTNA_LAST_PID]}"; then
      ztna_fail "$name answered an unauthenticated Binding request: $(cat "${ZTNA_LOG_OF[$ZTNA_LAST_PID]}")"
    fi
  done
  ztna_log "$name: $counter $before -> $(ztna_counter "$name" "$counter"), no response sent"
}

for peer in agent1 conn1; do
  addr=$(ztna_json "$peer" | jq -r '.control.observed_address // empty')
  [[ $addr == 127.0.0.1:* ]] || ztna_fail "$peer has no IPv4 loopback observed address ($addr)"
  probe "$peer" "${addr##*:}" stun_unauthenticated
done
probe intermediate "$ZTNA_INT_PORT" stun_datagrams

# Nothing else was disturbed: malformed stays zero and the tunnel still carries data.
for peer in agent1 conn1; do
  [[ $(ztna_counter "$peer" stun_malformed) == 0 ]] || ztna_fail "$peer counted a real client's request as malformed"
done
ztna_fetch "http://127.0.0.1:$web_port/blob.bin" "$ZTNA_TMP/after.bin" 30
cmp -s "$ZTNA_TMP/www/blob.bin" "$ZTNA_TMP/after.bin" || ztna_fail "content differs after STUN"

ztna_pass
