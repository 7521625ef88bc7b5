#!/usr/bin/env bash
# Two connectors serve the same service; the intermediate spreads new sessions over them (the
# least loaded first), so two agents end up on different connectors, and both fetches work.
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

ztna_setup
ztna_make_certs --connector conn2 --agent agent2
ztna_random_file "$ZTNA_TMP/www/blob.bin" $((256 << 10))
ztna_start_nginx "$ZTNA_TMP/www"
ztna_start_intermediate
ztna_start_connector conn1 --service "web=tcp://127.0.0.1:$ZTNA_NGINX_PORT"
ztna_start_connector conn2 --service "web=tcp://127.0.0.1:$ZTNA_NGINX_PORT"
p1=$(ztna_free_port tcp)
p2=$(ztna_free_port tcp)
ztna_start_agent agent1 --expose "web=tcp://127.0.0.1:$p1"
ztna_start_agent agent2 --expose "web=tcp://127.0.0.1:$p2"
ztna_wait_connected conn1 conn2 agent1 agent2
ztna_wait_json intermediate 30 "both connectors registered" \
  '[.peers[] | select(.role == "connector")] | length == 2'

ztna_fetch "http://127.0.0.1:$p1/blob.bin" "$ZTNA_TMP/a1.bin" 30
ztna_fetch "http://127.0.0.1:$p2/blob.bin" "$ZTNA_TMP/a2.bin" 30
for f in a1 a2; do
  cmp -s "$ZTNA_TMP/www/blob.bin" "$ZTNA_TMP/$f.bin" || ztna_fail "$f: content differs"
done
ztna_jq intermediate '[.sessions[].connector] | unique | length == 2' >/dev/null ||
  ztna_fail "sessions not spread: $(ztna_json intermediate | jq -c '[.sessions[] | {agent, connector}]')"
ztna_log "sessions: $(ztna_json intermediate | jq -c '[.sessions[] | {agent, connector}]')"
ztna_pass
