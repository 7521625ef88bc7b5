#!/usr/bin/env bash
# The agent exposes a service that no connector serves. A connection to it must fail quickly (no
# hang), the intermediate and the agent must count the rejected session, and a served service on
# the same agent must keep working.
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

ztna_setup
ztna_make_certs
echo "hello through the tunnel" >"$ZTNA_TMP/www/index.html"
ztna_start_nginx "$ZTNA_TMP/www"

web_port=$(ztna_free_port tcp)
ghost_port=$(ztna_free_port tcp)
ztna_start_intermediate
ztna_start_connector conn1 --service "web=tcp://127.0.0.1:$ZTNA_NGINX_PORT"
ztna_start_agent agent1 --expose "web=tcp://127.0.0.1:$web_port" \
  --expose "ghost=tcp://127.0.0.1:$ghost_port"
ztna_wait_connected conn1 agent1
ztna_wait_service web
ztna_wait_tcp_listener agent1 "$web_port"
ztna_wait_tcp_listener agent1 "$ghost_port"

ztna_expect_fetch_error "http://127.0.0.1:$ghost_port/index.html" "$(ztna_secs 15)"
ztna_wait_counter intermediate sessions_rejected 1 10
ztna_wait_counter agent1 sessions_rejected 1 10
ztna_log "sessions_rejected: intermediate $(ztna_counter intermediate sessions_rejected), agent $(ztna_counter agent1 sessions_rejected)"

# A second attempt fails the same way (no cached state that hangs), then the good service works.
ztna_expect_fetch_error "http://127.0.0.1:$ghost_port/index.html" "$(ztna_secs 15)"
ztna_fetch "http://127.0.0.1:$web_port/index.html" "$ZTNA_TMP/index.out" 30
cmp -s "$ZTNA_TMP/www/index.html" "$ZTNA_TMP/index.out" || ztna_fail "web page content differs"
ztna_log "service web still works"
ztna_jq agent1 '.control.state == "connected"' >/dev/null || ztna_fail "agent1 lost its control connection"

ztna_pass
