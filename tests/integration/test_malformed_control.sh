#!/usr/bin/env bash
# Malformed and oversize control messages from an authenticated peer: for each kind, the
# intermediate answers with a clear error, counts it, closes that one connection, and keeps
# serving everybody else (a fetch through the tunnel still works).
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

probe=$ZTNA_BUILD_DIR/tests/ztna-control-probe
[[ -x $probe ]] || ztna_fail "missing $probe (build the tests/ directory)"

ztna_setup
ztna_make_certs
ztna_random_file "$ZTNA_TMP/www/blob.bin" $((256 << 10))
ztna_start_web_stack
web_port=$ZTNA_WEB_PORT

modes=(garbage bad-version unknown-type oversize truncated-hello)
for mode in "${modes[@]}"; do
  out=$(timeout "$(ztna_secs 20)" "$probe" --intermediate "127.0.0.1:$ZTNA_INT_PORT" \
    --name "$ZTNA_INTERMEDIATE_DNS" --ca "$ZTNA_CERTS/ca.pem" \
    --cert "$ZTNA_CERTS/agent-agent1.pem" --key "$ZTNA_CERTS/agent-agent1.key" --send "$mode") ||
    ztna_fail "$mode: the intermediate did not close the connection: $out"
  grep -q 'code 1,' <<<"$out" || ztna_fail "$mode: expected a close with error code 1 (malformed): $out"
  ztna_log "$mode: $(tail -n 1 <<<"$out")"
done

ztna_wait_counter intermediate control_messages_malformed "${#modes[@]}" 10
# The well-behaved peers were not disturbed.
ztna_jq agent1 '.control.state == "connected"' >/dev/null || ztna_fail "agent lost its control connection"
ztna_fetch "http://127.0.0.1:$web_port/blob.bin" "$ZTNA_TMP/after.bin" 30
cmp -s "$ZTNA_TMP/www/blob.bin" "$ZTNA_TMP/after.bin" || ztna_fail "content differs after the probes"
ztna_pass
