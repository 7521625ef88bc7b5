#!/usr/bin/env bash
# Two connectors started with the same certificate (one identity): the second to register
# replaces the first at the intermediate (code 9, Replaced). The replaced one says so, does not
# reconnect, and shows control state "replaced"; the two do not keep replacing each other, and the
# service works through the one that holds the identity.
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

ztna_setup
ztna_make_certs
ztna_random_file "$ZTNA_TMP/www/blob.bin" $((1 << 20))
ztna_start_web_stack

# A second daemon with conn1's certificate and key.
ztna_start_peer connector conn1-copy "$ZTNA_CERTS/ca.pem" "$ZTNA_CERTS/connector-conn1.pem" \
  "$ZTNA_CERTS/connector-conn1.key" --service "web=tcp://127.0.0.1:$ZTNA_NGINX_PORT"
ztna_wait_connected conn1-copy
ztna_wait_json conn1 15 "the first connector told it was replaced" '.control.state == "replaced"'
ztna_log "conn1: $(ztna_json conn1 | jq -r .control.last_error)"
grep -q "another daemon with this identity registered" "${ZTNA_LOG_OF[${ZTNA_PID_OF[conn1]}]}" ||
  ztna_fail "conn1 did not log why it stopped"
[[ $(ztna_counter intermediate peers_replaced) == 1 ]] ||
  ztna_fail "peers_replaced is $(ztna_counter intermediate peers_replaced), expected 1"

# An observation window, not a synchronisation: before the fix, the two replaced each other
# several times a second, with a backoff that reset on every registration.
replaced_again() { (($(ztna_counter intermediate peers_replaced) > 1)); }
ztna_assert_never 3 "the two connectors kept replacing each other" replaced_again
ztna_jq conn1 '.control.state == "replaced"' >/dev/null || ztna_fail "conn1 reconnected"

ztna_fetch "http://127.0.0.1:$ZTNA_WEB_PORT/blob.bin" "$ZTNA_TMP/got.bin" 30
cmp -s "$ZTNA_TMP/www/blob.bin" "$ZTNA_TMP/got.bin" || ztna_fail "content differs"
ztna_log "the service works through conn1-copy; conn1 stays down"
ztna_pass
