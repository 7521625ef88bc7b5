#!/usr/bin/env bash
# Only a session's two ends may exchange candidates for it: an authenticated agent that is not
# part of a session sends Candidates for it. The intermediate drops them and counts them; the
# connector never hears of them (no round of checks starts) and the session keeps working.
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

probe=$ZTNA_BUILD_DIR/tests/ztna-control-probe
[[ -x $probe ]] || ztna_fail "missing $probe (build the tests/ directory)"

ztna_setup
ztna_make_certs --agent agent2
ztna_random_file "$ZTNA_TMP/www/blob.bin" $((256 << 10))
ztna_start_web_stack
web_port=$ZTNA_WEB_PORT
ztna_fetch "http://127.0.0.1:$web_port/blob.bin" "$ZTNA_TMP/before.bin" 30
session=$(ztna_json agent1 | jq -r '.sessions[0].session_id')
[[ $session =~ ^[0-9a-f]{16}$ ]] || ztna_fail "no session id in the agent's status"

out=$(timeout "$(ztna_secs 20)" "$probe" --intermediate "127.0.0.1:$ZTNA_INT_PORT" \
  --name "$ZTNA_INTERMEDIATE_DNS" --ca "$ZTNA_CERTS/ca.pem" \
  --cert "$ZTNA_CERTS/agent-agent2.pem" --key "$ZTNA_CERTS/agent-agent2.key" \
  --send foreign-candidates --session "$session") || ztna_fail "probe: $out"
ztna_log "probe: $(tail -n 1 <<<"$out")"

ztna_wait_counter intermediate candidates_unauthorized 1 10
[[ $(ztna_counter intermediate candidates_forwarded) == 0 ]] || ztna_fail "foreign candidates were forwarded"
ztna_jq conn1 'all(.sessions[]; .paths.rounds == 0)' >/dev/null ||
  ztna_fail "the connector started a round of checks for foreign candidates"
ztna_fetch "http://127.0.0.1:$web_port/blob.bin" "$ZTNA_TMP/after.bin" 30
cmp -s "$ZTNA_TMP/www/blob.bin" "$ZTNA_TMP/after.bin" || ztna_fail "content differs"
ztna_pass
