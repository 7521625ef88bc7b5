#!/usr/bin/env bash
# The intermediate crashes (SIGKILL: no CONNECTION_CLOSE) and comes back on the same port.
# Its stateless reset secret derives from its key, so the first keepalive of the agent and the
# connector draws a stateless reset (RFC 9000 §10.3) and they reconnect at once, long before
# their 30 s idle timeout would have noticed.
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

ztna_setup
ztna_make_certs
ztna_random_file "$ZTNA_TMP/www/blob.bin" $((256 << 10))
ztna_start_nginx "$ZTNA_TMP/www"
web_port=$(ztna_free_port tcp)
ztna_start_intermediate
ztna_start_connector conn1 --service "web=tcp://127.0.0.1:$ZTNA_NGINX_PORT"
ztna_start_agent agent1 --expose "web=tcp://127.0.0.1:$web_port"
ztna_wait_connected conn1 agent1
ztna_wait_service web

pid=${ZTNA_PID_OF[intermediate]}
kill -KILL "$pid"
ztna_reap "$pid"
ztna_start_intermediate
t0=$(ztna_now_ms)
# Keepalives run every 10 s; a reset answers the first one. 25 s stays below the idle timeout.
ztna_wait_json intermediate 25 "agent1 and conn1 registered again" \
  '[.peers[]?.name] | (index("agent1") != null) and (index("conn1") != null)'
ztna_log "both peers back $(($(ztna_now_ms) - t0)) ms after the restart"
ztna_wait_counter intermediate stateless_resets_sent 1 5
ztna_wait_connected conn1 agent1
ztna_wait_service web
ztna_fetch "http://127.0.0.1:$web_port/blob.bin" "$ZTNA_TMP/got.bin" 30
cmp -s "$ZTNA_TMP/www/blob.bin" "$ZTNA_TMP/got.bin" || ztna_fail "content differs"
ztna_pass
