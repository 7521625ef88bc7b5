#!/usr/bin/env bash
# The connector's per-session budget of backend sockets (--max-backend-sockets, docs/security.md):
# with a budget of 2, two connections that sent half a request hold two backend connections; a
# third connection in the same session is refused (the agent's stream is reset with
# BackendRefused, curl sees a reset), counted (backend_sockets_refused) and logged, while the two
# held ones are then answered. Once they end, their sockets return to the budget and a new
# request is served. The backend is
# named by host name (tcp://localhost:PORT): the connector resolves it without blocking its loop.
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

ztna_setup
ztna_make_certs
echo "after the budget came back" >"$ZTNA_TMP/www/index.html"
ztna_start_nginx "$ZTNA_TMP/www"
ZTNA_WEB_PORT=$(ztna_free_port tcp)
ztna_start_intermediate
ztna_start_connector conn1 --service "web=tcp://localhost:$ZTNA_NGINX_PORT" --max-backend-sockets 2
ztna_start_agent agent1 --expose "web=tcp://127.0.0.1:$ZTNA_WEB_PORT"
ztna_wait_connected conn1 agent1
ztna_wait_service web
ztna_wait_tcp_listener agent1 "$ZTNA_WEB_PORT"

url=http://127.0.0.1:$ZTNA_WEB_PORT
# Two connections that hold their backend connection open: each sends the start of an HTTP
# request and waits, so nginx waits for the rest (bash's /dev/tcp; the file descriptors are
# ours and close at exit).
exec {c1}<>"/dev/tcp/127.0.0.1/$ZTNA_WEB_PORT"
exec {c2}<>"/dev/tcp/127.0.0.1/$ZTNA_WEB_PORT"
printf 'GET /index.html HTTP/1.1\r\n' >&"$c1"
printf 'GET /index.html HTTP/1.1\r\n' >&"$c2"
ztna_wait_json conn1 20 "two backend connections open in one session" \
  '(.sessions | length == 1) and .sessions[0].open_streams == 2'

# The third connection of the session: over the budget.
refused=$(ztna_counter conn1 backend_sockets_refused)
rc=0
curl -sS --max-time "$(ztna_secs 20)" -o /dev/null "$url/index.html" 2>"$ZTNA_TMP/third.err" || rc=$?
((rc != 0)) || ztna_fail "a third backend connection was served over a budget of 2"
((rc != 28)) || ztna_fail "the third connection hung instead of being refused"
ztna_wait_counter conn1 backend_sockets_refused $((refused + 1)) 10
ztna_wait_for 5 "conn1 log: budget spent" ztna_log_has conn1 \
  "agent 'agent1': stream [0-9]+: backend socket budget spent \(2 in this session, 2 in all\)"
ztna_log "third connection refused (curl exit $rc: $(tr -d '\n' <"$ZTNA_TMP/third.err")); conn1: $(grep -m1 -E 'backend socket budget spent' "$(ztna_logfile conn1)" | cut -d' ' -f4-)"

# The two held connections were not disturbed: their requests complete and are answered.
for fd in "$c1" "$c2"; do
  printf 'Host: localhost\r\nConnection: close\r\n\r\n' >&"$fd"
  reply=$(timeout "$(ztna_secs 20)" cat <&"$fd") || ztna_fail "no answer on a held connection"
  [[ $reply == "HTTP/1.1 200 OK"* && $reply == *"after the budget came back"* ]] ||
    ztna_fail "a held connection got: ${reply:0:200}"
done
exec {c1}>&- {c2}>&-

# Their sockets are back in the budget: a new connection is served.
ztna_wait_json conn1 10 "the backend connections closed" '.sessions[0].open_streams == 0'
ztna_fetch "$url/index.html" "$ZTNA_TMP/index.out" 20
cmp -s "$ZTNA_TMP/www/index.html" "$ZTNA_TMP/index.out" || ztna_fail "the page differs"
ztna_log "conn1 counters: $(ztna_json conn1 | jq -c '.counters | {backend_sockets_refused, streams_opened, backend_connect_failures}')"
ztna_pass
