#!/usr/bin/env bash
# Agents whose certificates come from a foreign CA must never get in, even under the name of a
# legitimate agent:
#   rogue1 trusts the real CA (so it accepts the intermediate) but presents a foreign certificate
#          with CN=agent1, the name of the legitimate agent;
#   rogue2 trusts only the foreign CA and presents a foreign certificate.
# The intermediate must count failed TLS handshakes, neither rogue may reach "connected" nor show up
# among the intermediate's peers, and the legitimate agent1 must work at the same time.
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

ztna_setup
ztna_make_certs
rogue=$ZTNA_TMP/rogue-certs
"$ZTNA_MAKE_CERTS" --out "$rogue" --intermediate-dns "$ZTNA_INTERMEDIATE_DNS" \
  --intermediate-ip 127.0.0.1 --agent agent1 --agent rogue2 >/dev/null 2>&1 ||
  ztna_fail "make-certs for the foreign CA failed"
if openssl verify -CAfile "$ZTNA_CERTS/ca.pem" "$rogue/agent-agent1.pem" >/dev/null 2>&1; then
  ztna_fail "the foreign certificate unexpectedly verifies under the deployment CA"
fi
echo "hello through the tunnel" >"$ZTNA_TMP/www/index.html"
ztna_start_nginx "$ZTNA_TMP/www"

web_port=$(ztna_free_port tcp)
rogue1_port=$(ztna_free_port tcp)
rogue2_port=$(ztna_free_port tcp)
ztna_start_intermediate
ztna_start_connector conn1 --service "web=tcp://127.0.0.1:$ZTNA_NGINX_PORT"
ztna_start_peer agent rogue1 "$ZTNA_CERTS/ca.pem" "$rogue/agent-agent1.pem" "$rogue/agent-agent1.key" \
  --expose "web=tcp://127.0.0.1:$rogue1_port"
ztna_start_peer agent rogue2 "$rogue/ca.pem" "$rogue/agent-rogue2.pem" "$rogue/agent-rogue2.key" \
  --expose "web=tcp://127.0.0.1:$rogue2_port"
ztna_start_agent agent1 --expose "web=tcp://127.0.0.1:$web_port"

ztna_wait_connected conn1 agent1
ztna_wait_service web
ztna_wait_counter intermediate tls_handshake_failures 1 30
ztna_log "intermediate tls_handshake_failures: $(ztna_counter intermediate tls_handshake_failures)"

# The legitimate agent works while the rogues keep trying.
ztna_wait_tcp_listener agent1 "$web_port"
ztna_fetch "http://127.0.0.1:$web_port/index.html" "$ZTNA_TMP/index.out" 30
cmp -s "$ZTNA_TMP/www/index.html" "$ZTNA_TMP/index.out" || ztna_fail "web page content differs"
ztna_log "agent1 fetched through the tunnel"

# Both rogues answer on their status sockets, and never report "connected".
ztna_wait_json rogue1 30 "status answers" '.control.state | type == "string"'
ztna_wait_json rogue2 30 "status answers" '.control.state | type == "string"'
ztna_assert_never 5 "a rogue agent reached state connected" \
  eval 'ztna_jq rogue1 ".control.state == \"connected\"" || ztna_jq rogue2 ".control.state == \"connected\""'
ztna_log "rogue1: $(ztna_json rogue1 | jq -c .control), rogue2: $(ztna_json rogue2 | jq -c .control)"

# The intermediate knows exactly one agent: the real agent1 (one entry, not two).
ztna_jq intermediate '[.peers[] | select(.role == "agent")] | length == 1 and .[0].name == "agent1"' \
  >/dev/null || ztna_fail "unexpected agent peers at the intermediate: $(ztna_json intermediate | jq -c .peers)"
# A rogue's local listener (if it opens one at all) must not lead anywhere.
if ztna_tcp_listening "$rogue1_port"; then
  ztna_expect_fetch_error "http://127.0.0.1:$rogue1_port/index.html" 5 --allow-timeout
fi
ztna_wait_counter intermediate tls_handshake_failures 2 30

ztna_pass
