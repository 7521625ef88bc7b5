#!/usr/bin/env bash
# The connector restarts under a running agent: the agent's session to it dies, and once the new
# connector has registered, a new connection through the same agent works without restarting it.
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

ztna_setup
ztna_make_certs
ztna_random_file "$ZTNA_TMP/www/blob.bin" $((2 << 20))
ztna_start_web_stack
web_port=$ZTNA_WEB_PORT
ztna_fetch "http://127.0.0.1:$web_port/blob.bin" "$ZTNA_TMP/before.bin" 30
cmp -s "$ZTNA_TMP/www/blob.bin" "$ZTNA_TMP/before.bin" || ztna_fail "content differs before restart"
ztna_jq agent1 '.sessions | length == 1' >/dev/null || ztna_fail "expected one session before restart"

ztna_stop conn1 10
# The intermediate tells the agent its session is gone; the agent drops it.
ztna_wait_json agent1 30 "session to the stopped connector ended" '.sessions | length == 0'

ztna_start_connector conn1 --service "web=tcp://127.0.0.1:$ZTNA_NGINX_PORT"
ztna_wait_connected conn1
ztna_wait_service web
ztna_fetch "http://127.0.0.1:$web_port/blob.bin" "$ZTNA_TMP/after.bin" 60
cmp -s "$ZTNA_TMP/www/blob.bin" "$ZTNA_TMP/after.bin" || ztna_fail "content differs after restart"
ztna_jq agent1 '.control.state == "connected" and (.sessions | length == 1)' >/dev/null ||
  ztna_fail "agent did not open a new session"
ztna_pass
