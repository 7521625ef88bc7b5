#!/usr/bin/env bash
# Revocation takes effect on live connections (DESIGN D6: a CRL, reloaded without a restart).
#   agent1 and agent2 each fetch a large file, slowly (curl --limit-rate), through their own
#   relayed session to conn1. agent1 is revoked with make-certs --revoke-agent; then:
#   - SIGHUP to the connector: within 1 s it closes agent1's live session (handshake_refusals.
#     revoked, "refused live session ... (revoked)", "... ended: the agent's certificate was
#     revoked");
#   - SIGHUP to the intermediate: within 1 s it closes agent1's control connection
#     (handshake_refusals.revoked, peers_refused, "refused live control connection of agent
#     'agent1' ... (revoked)") and agent1 has no session left there;
#   - agent1's transfer is cut (curl fails, the file is short), and agent1 cannot come back: its
#     reconnection attempts are refused in the handshake as revoked;
#   - agent2's session is untouched: its transfer completes intact (sha256), its control
#     connection never dropped.
#   Then a reload with a broken (truncated) CRL: all three daemons log the error, reload_failures rises,
#   and the old CRL stays in force (the intermediate still lists 1 revoked certificate, and a fresh
#   ztna-agent with agent1's certificate is still refused as revoked), agent2 still works.
#   Then conn1 is revoked during a transfer of agent2's: on SIGHUP, agent2 closes its live session
#   with conn1 and the intermediate closes conn1's control connection, each within 1 s. Last, the
#   intermediate's certificate is revoked (make-certs --revoke-intermediate): on its SIGHUP agent2
#   drops its control connection within 1 s and refuses the intermediate from then on.
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

ztna_setup
ztna_make_certs --agent agent2
size1=$((48 << 20)) size2=$((24 << 20)) rate=2M
ztna_random_file "$ZTNA_TMP/www/big1.bin" "$size1"
ztna_random_file "$ZTNA_TMP/www/big2.bin" "$size2"
echo "still here" >"$ZTNA_TMP/www/index.html"
ztna_start_web_stack
web2=$(ztna_free_port tcp)
ztna_start_agent agent2 --expose "web=tcp://127.0.0.1:$web2"
ztna_wait_connected agent2
ztna_wait_tcp_listener agent2 "$web2"
agent1_addr=$(ztna_json agent1 | jq -r .listen)
agent2_addr=$(ztna_json agent2 | jq -r .listen)

log_has() { ztna_log_has "$@"; }
within_1s() { ztna_log_within_1s "$@"; }

# Two slow transfers, one per agent. Plain background jobs, bounded by --max-time; the test
# waits for each one.
curl -sS --max-time "$(ztna_secs 60)" --limit-rate "$rate" -o "$ZTNA_TMP/big1.out" \
  "http://127.0.0.1:$ZTNA_WEB_PORT/big1.bin" 2>"$ZTNA_TMP/curl1.err" &
curl1=$!
curl -sS --max-time "$(ztna_secs 60)" --limit-rate "$rate" -o "$ZTNA_TMP/big2.out" \
  "http://127.0.0.1:$web2/big2.bin" 2>"$ZTNA_TMP/curl2.err" &
curl2=$!
ztna_wait_for 20 "agent1's transfer under way" ztna_file_at_least "$ZTNA_TMP/big1.out" $((1 << 20))
ztna_wait_for 20 "agent2's transfer under way" ztna_file_at_least "$ZTNA_TMP/big2.out" $((1 << 20))
ztna_wait_json intermediate 10 "sessions of agent1 and agent2 relaying" \
  '[.sessions[] | select(.state == "relaying") | .agent] | sort == ["agent1", "agent2"]'
sid1=$(ztna_json intermediate | jq -r '.sessions[] | select(.agent == "agent1") | .session_id')
ztna_log "transfers under way; agent1's session $sid1"

"$ZTNA_MAKE_CERTS" --out "$ZTNA_CERTS" --revoke-agent agent1 >"$ZTNA_TMP/logs/make-certs-revoke.out" 2>&1 ||
  ztna_fail "make-certs --revoke-agent agent1 failed: $(cat "$ZTNA_TMP/logs/make-certs-revoke.out")"
ztna_log "$(grep 'revoked agent agent1' "$ZTNA_TMP/logs/make-certs-revoke.out")"
kill -0 "$curl1" 2>/dev/null || ztna_fail "agent1's transfer ended before the revocation was loaded ($(ztna_file_size "$ZTNA_TMP/big1.out") bytes; $(cat "$ZTNA_TMP/curl1.err"))"
kill -0 "$curl2" 2>/dev/null || ztna_fail "agent2's transfer ended before the revocation was loaded ($(ztna_file_size "$ZTNA_TMP/big2.out") bytes; $(cat "$ZTNA_TMP/curl2.err"))"

# --- The connector first: it closes the live session of the revoked agent itself. Each closing
# log line must be stamped within 1 s of the SIGHUP; the status documents confirm it.
t_hup_c=$(ztna_now_ms)
ztna_sighup conn1
within_1s "$t_hup_c" conn1 "refused live session $sid1 from .*: certificate revoked \(listed in the reloaded CRL\) \(revoked\)"
within_1s "$t_hup_c" conn1 "session $sid1 with agent 'agent1' ended: the agent's certificate was revoked"
within_1s "$t_hup_c" agent1 "session $sid1 with connector 'conn1' for 'web' ended: "
ztna_wait_json conn1 5 "handshake_refusals.revoked >= 1" '.handshake_refusals.revoked >= 1'
ztna_wait_json conn1 5 "no session of agent1" '[.sessions[] | select(.agent == "agent1")] | length == 0'
ztna_wait_json agent1 5 "no session" '.sessions | length == 0'
ztna_jq conn1 '[.sessions[] | select(.agent == "agent2")] | length == 1' >/dev/null ||
  ztna_fail "conn1 lost agent2's session: $(ztna_json conn1 | jq -c .sessions)"

# --- Then the intermediate: it closes agent1's control connection.
t_hup_i=$(ztna_now_ms)
ztna_sighup intermediate
within_1s "$t_hup_i" intermediate "refused live control connection of agent 'agent1' from ${agent1_addr//./\\.}: certificate revoked \(listed in the reloaded CRL\) \(revoked\)"
within_1s "$t_hup_i" agent1 "control: lost connection: "
ztna_wait_json intermediate 5 "handshake_refusals.revoked >= 1 and peers_refused >= 1" \
  '.handshake_refusals.revoked >= 1 and .counters.peers_refused >= 1'
ztna_wait_json intermediate 5 "agent1 gone, with its sessions" \
  '([.peers[] | select(.role == "agent" and .name == "agent1")] | length == 0)
   and ([.sessions[] | select(.agent == "agent1")] | length == 0)'
ztna_jq intermediate '.crl.revoked == 1' >/dev/null ||
  ztna_fail "the intermediate's CRL: $(ztna_json intermediate | jq -c .crl)"

# agent1's transfer was cut, not completed.
rc=0
wait "$curl1" || rc=$?
got1=$(ztna_file_size "$ZTNA_TMP/big1.out")
((rc != 0)) || ztna_fail "agent1's transfer completed after the revocation ($got1 bytes)"
((rc != 28)) || ztna_fail "agent1's transfer hung until curl's --max-time instead of being cut"
((got1 < size1)) || ztna_fail "agent1 received the whole file"
ztna_log "agent1's transfer cut after $got1 of $size1 bytes (curl exit $rc: $(tr -d '\n' <"$ZTNA_TMP/curl1.err"))"

# agent1 cannot come back: its next handshakes are refused as revoked.
ztna_wait_for 30 "intermediate log: agent1's reconnection refused as revoked" \
  log_has intermediate "refused control connection from ${agent1_addr//./\\.}: certificate revoked \(listed in the CRL\) \(revoked\)"
ztna_wait_json intermediate 5 "handshake_refusals.revoked >= 2" '.handshake_refusals.revoked >= 2'
ztna_assert_never 2 "agent1 registered again" ztna_jq agent1 '.control.state == "connected"'
ztna_log "agent1: $(ztna_json agent1 | jq -c '.control | {state, last_error}')"

# agent2's transfer completes intact; its control connection never dropped.
rc=0
wait "$curl2" || rc=$?
((rc == 0)) || ztna_fail "agent2's transfer failed (curl exit $rc: $(cat "$ZTNA_TMP/curl2.err"))"
[[ $(ztna_sha256 "$ZTNA_TMP/big2.out") == "$(ztna_sha256 "$ZTNA_TMP/www/big2.bin")" ]] ||
  ztna_fail "agent2's file differs ($(ztna_file_size "$ZTNA_TMP/big2.out") of $size2 bytes)"
ztna_jq agent2 '.control.state == "connected" and .control.connects == 1' >/dev/null ||
  ztna_fail "agent2's control connection was disturbed: $(ztna_json agent2 | jq -c .control)"
ztna_log "agent2's $size2 bytes arrived intact; agent2 never lost its control connection"

# --- A broken CRL: the old one stays in force.
cp "$ZTNA_CERTS/crl.pem" "$ZTNA_TMP/crl.good"
head -c $(($(stat -c %s "$ZTNA_TMP/crl.good") / 2)) "$ZTNA_TMP/crl.good" >"$ZTNA_CERTS/crl.pem.tmp"
mv -f "$ZTNA_CERTS/crl.pem.tmp" "$ZTNA_CERTS/crl.pem"
f_i=$(ztna_counter intermediate reload_failures)
f_c=$(ztna_counter conn1 reload_failures)
f_a=$(ztna_counter agent2 reload_failures)
ztna_sighup intermediate
ztna_sighup conn1
ztna_sighup agent2
ztna_wait_counter intermediate reload_failures $((f_i + 1)) 10
ztna_wait_counter conn1 reload_failures $((f_c + 1)) 10
ztna_wait_counter agent2 reload_failures $((f_a + 1)) 10
ztna_wait_for 5 "agent2 log: keeping the old certificates and CRL" \
  log_has agent2 "reload: keeping the old certificates and CRL: loading CRL .*crl\.pem"
ztna_wait_for 5 "intermediate log: keeping the old certificates and CRL" \
  log_has intermediate "reload: keeping the old certificates and CRL: loading CRL .*crl\.pem"
ztna_wait_for 5 "conn1 log: keeping the old certificates and CRL" \
  log_has conn1 "reload: keeping the old certificates and CRL: loading CRL .*crl\.pem"
ztna_log "intermediate: $(grep -m1 'keeping the old certificates and CRL' "$(ztna_logfile intermediate)" | cut -d' ' -f4-)"
ztna_jq intermediate '.crl.revoked == 1' >/dev/null ||
  ztna_fail "the intermediate's CRL changed: $(ztna_json intermediate | jq -c .crl)"
ztna_jq conn1 '.crl.revoked == 1' >/dev/null || ztna_fail "conn1's CRL changed: $(ztna_json conn1 | jq -c .crl)"

# Still in force: a fresh daemon with agent1's certificate is refused as revoked. (It is given
# the good CRL: a daemon refuses to start with a broken one.)
mkdir -p "$ZTNA_TMP/again"
cp "$ZTNA_CERTS/ca.pem" "$ZTNA_TMP/again/ca.pem"
cp "$ZTNA_TMP/crl.good" "$ZTNA_TMP/again/crl.pem"
ztna_start_peer agent agent1-again "$ZTNA_TMP/again/ca.pem" "$ZTNA_CERTS/agent-agent1.pem" \
  "$ZTNA_CERTS/agent-agent1.key" --expose "web=tcp://127.0.0.1:$(ztna_free_port tcp)"
ztna_wait_json agent1-again 10 "status answers" '.listen | type == "string"'
again_addr=$(ztna_json agent1-again | jq -r .listen)
ztna_wait_for 15 "intermediate log: agent1-again refused as revoked after the failed reload" \
  log_has intermediate "refused control connection from ${again_addr//./\\.}: certificate revoked \(listed in the CRL\) \(revoked\)"
ztna_jq agent1-again '.control.connects == 0' >/dev/null || ztna_fail "agent1-again connected"
ztna_fetch "http://127.0.0.1:$web2/index.html" "$ZTNA_TMP/index.out" 30
cmp -s "$ZTNA_TMP/www/index.html" "$ZTNA_TMP/index.out" || ztna_fail "agent2's page differs"
ztna_jq intermediate '[.peers[] | select(.role == "agent") | .address] == [$a]' --arg a "$agent2_addr" >/dev/null ||
  ztna_fail "unexpected agents: $(ztna_json intermediate | jq -c '[.peers[] | {role, name, address}]')"
ztna_log "intermediate: handshake_refusals $(ztna_json intermediate | jq -c '.handshake_refusals | with_entries(select(.value > 0))'), counters $(ztna_json intermediate | jq -c '.counters | {peers_refused, reloads, reload_failures}')"
ztna_log "conn1: handshake_refusals $(ztna_json conn1 | jq -c '.handshake_refusals | with_entries(select(.value > 0))'), counters $(ztna_json conn1 | jq -c '.counters | {reloads, reload_failures}')"

# --- A revoked connector: the agent and the intermediate each cut it off within 1 s.
cp "$ZTNA_TMP/crl.good" "$ZTNA_CERTS/crl.pem"
# The 48 MiB file: what the agent already holds when the session ends still reaches curl, and
# the cut must come well before the end of the file.
curl -sS --max-time "$(ztna_secs 60)" --limit-rate "$rate" -o "$ZTNA_TMP/big3.out" \
  "http://127.0.0.1:$web2/big1.bin" 2>"$ZTNA_TMP/curl3.err" &
curl3=$!
ztna_wait_for 20 "agent2's third transfer under way" ztna_file_at_least "$ZTNA_TMP/big3.out" $((1 << 20))
sid2=$(ztna_json agent2 | jq -r '.sessions[0].session_id')
"$ZTNA_MAKE_CERTS" --out "$ZTNA_CERTS" --revoke-connector conn1 >"$ZTNA_TMP/logs/make-certs-revoke2.out" 2>&1 ||
  ztna_fail "make-certs --revoke-connector conn1 failed: $(cat "$ZTNA_TMP/logs/make-certs-revoke2.out")"
kill -0 "$curl3" 2>/dev/null || ztna_fail "agent2's third transfer ended before the revocation was loaded"
# One at a time: signalled together, the intermediate may close the session before the agent
# has read its own CRL, and the agent's own enforcement would go unseen.
t_hup=$(ztna_now_ms)
ztna_sighup agent2
within_1s "$t_hup" agent2 "refused live session $sid2 from .*: certificate revoked \(listed in the reloaded CRL\) \(revoked\)"
t_hup=$(ztna_now_ms)
ztna_sighup intermediate
within_1s "$t_hup" intermediate "refused live control connection of connector 'conn1' from .*: certificate revoked \(listed in the reloaded CRL\) \(revoked\)"
ztna_wait_json agent2 5 "agent2 has no session left" '.sessions | length == 0'
ztna_wait_json intermediate 5 "conn1 gone" '[.peers[] | select(.role == "connector")] | length == 0'
rc=0
wait "$curl3" || rc=$?
((rc != 0 && rc != 28)) || ztna_fail "agent2's third transfer was not cut (curl exit $rc)"
ztna_log "agent2's transfer from the revoked connector cut after $(ztna_file_size "$ZTNA_TMP/big3.out") bytes (curl exit $rc)"
ztna_jq agent2 '.control.state == "connected"' >/dev/null ||
  ztna_fail "agent2 lost its own control connection: $(ztna_json agent2 | jq -c .control)"

# --- A revoked intermediate: the agent drops its control connection within 1 s of its SIGHUP and
# refuses the intermediate's certificate from then on.
"$ZTNA_MAKE_CERTS" --out "$ZTNA_CERTS" --revoke-intermediate >"$ZTNA_TMP/logs/make-certs-revoke3.out" 2>&1 ||
  ztna_fail "make-certs --revoke-intermediate failed: $(cat "$ZTNA_TMP/logs/make-certs-revoke3.out")"
ztna_log "$(grep 'revoked intermediate' "$ZTNA_TMP/logs/make-certs-revoke3.out")"
t_hup=$(ztna_now_ms)
ztna_sighup agent2
within_1s "$t_hup" agent2 "control: the intermediate's certificate is revoked \(reloaded CRL\); closing"
ztna_wait_for 15 "agent2 log: the intermediate's certificate refused as revoked" \
  log_has agent2 "refused the intermediate's certificate from .*: certificate revoked \(listed in the CRL\) \(revoked\)"
ztna_wait_json agent2 5 "agent2 counts the refusal" '.handshake_refusals.revoked >= 2'
ztna_assert_never 2 "agent2 connected to the revoked intermediate" ztna_jq agent2 '.control.state == "connected"'
ztna_log "agent2: $(ztna_json agent2 | jq -c '{control: (.control | {state, last_error}), revoked: .handshake_refusals.revoked}')"

ztna_pass
