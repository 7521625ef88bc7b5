#!/usr/bin/env bash
# The connector's per-session budget of backend sockets (--max-backend-sockets, docs/security.md):
# with a budget of 2, two slow downloads hold two backend connections; a third connection in the
# same session is refused (the agent's stream is reset with BackendRefused, curl sees a reset),
# counted (backend_sockets_refused) and logged, while the two downloads go on and arrive intact.
# Once they end, their sockets return to the budget and a new download works. The backend is
# named by host name (tcp://localhost:PORT): the connector resolves it without blocking its loop.
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

size=$((2 << 20)) rate=400K

ztna_setup
ztna_make_certs
ztna_random_file "$ZTNA_TMP/www/slow.bin" "$size"
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
declare -a pids=()
for i in 1 2; do
  curl -sS --max-time "$(ztna_secs 60)" --limit-rate "$rate" -o "$ZTNA_TMP/slow$i.out" \
    "$url/slow.bin" 2>"$ZTNA_TMP/slow$i.err" &
  pids+=($!)
done
for i in 1 2; do
  ztna_wait_for 20 "download $i under way" ztna_file_at_least "$ZTNA_TMP/slow$i.out" $((64 << 10))
done
ztna_jq conn1 '.sessions | length == 1' >/dev/null ||
  ztna_fail "expected one session: $(ztna_json conn1 | jq -c .sessions)"

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

# The two downloads were not disturbed.
for i in 1 2; do
  rc=0
  wait "${pids[$((i - 1))]}" || rc=$?
  ((rc == 0)) || ztna_fail "download $i failed (curl exit $rc: $(cat "$ZTNA_TMP/slow$i.err"))"
  [[ $(ztna_sha256 "$ZTNA_TMP/slow$i.out") == "$(ztna_sha256 "$ZTNA_TMP/www/slow.bin")" ]] ||
    ztna_fail "download $i differs"
done

# Their sockets are back in the budget: a new connection is served.
ztna_wait_json conn1 10 "the backend connections closed" '[.sessions[].open_streams] | add == 0'
ztna_fetch "$url/index.html" "$ZTNA_TMP/index.out" 20
cmp -s "$ZTNA_TMP/www/index.html" "$ZTNA_TMP/index.out" || ztna_fail "the page differs"
ztna_log "conn1 counters: $(ztna_json conn1 | jq -c '.counters | {backend_sockets_refused, streams_opened, backend_connect_failures}')"
ztna_pass
