#!/usr/bin/env bash
# A connector service points at a closed port. A connection through the agent must fail quickly,
# the connector must count the failed backend connect, and another service of the same connector
# must keep working.
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

ztna_setup
ztna_make_certs
echo "hello through the tunnel" >"$ZTNA_TMP/www/index.html"
ztna_start_nginx "$ZTNA_TMP/www"

closed_port=$(ztna_free_port tcp) # nothing listens here
web_port=$(ztna_free_port tcp)
dead_port=$(ztna_free_port tcp)
ztna_start_intermediate
ztna_start_connector conn1 --service "web=tcp://127.0.0.1:$ZTNA_NGINX_PORT" \
  --service "dead=tcp://127.0.0.1:$closed_port"
ztna_start_agent agent1 --expose "web=tcp://127.0.0.1:$web_port" \
  --expose "dead=tcp://127.0.0.1:$dead_port"
ztna_wait_connected conn1 agent1
ztna_wait_service web dead
ztna_wait_tcp_listener agent1 "$web_port"
ztna_wait_tcp_listener agent1 "$dead_port"
ztna_tcp_listening "$closed_port" && ztna_fail "port $closed_port was meant to be closed"

ztna_expect_fetch_error "http://127.0.0.1:$dead_port/index.html" "$(ztna_secs 15)"
ztna_wait_counter conn1 backend_connect_failures 1 10
ztna_log "connector backend_connect_failures: $(ztna_counter conn1 backend_connect_failures)"

ztna_fetch "http://127.0.0.1:$web_port/index.html" "$ZTNA_TMP/index.out" 30
cmp -s "$ZTNA_TMP/www/index.html" "$ZTNA_TMP/index.out" || ztna_fail "web page content differs"
ztna_log "service web on the same connector still works"
ztna_expect_fetch_error "http://127.0.0.1:$dead_port/index.html" "$(ztna_secs 15)"
ztna_wait_counter conn1 backend_connect_failures 2 10

ztna_pass
