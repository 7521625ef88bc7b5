#!/usr/bin/env bash
# The connector's own allow list (--allow SERVICE=AGENT,group:G,*) is enforced by the connector,
# whatever the intermediate's policy says (DESIGN D6: enforced twice). The policy here names
# agent1 and agent2 for "web" explicitly, so every refusal below is the connector's alone:
#   (a) --allow web=agent2: agent1's session is refused at the offer, before any handshake
#       (offers_refused); the real agent's connection fails fast; agent2 is served;
#   (b) --allow web=group:eng, agent1 has no group eng: refused after the handshake, once the
#       certificate's groups are known (allow_list_denied); the real agent's connection fails;
#   (d) the intermediate grants: ztna-session-probe, as agent1, receives a valid signed
#       authorization for exactly this session (the intermediate's decision, whatever it is
#       worth) and presents it: the connector still refuses (allow_list_denied);
#   (c) agent1 re-issued with --group eng: served.
# A backend that records every connection must see only the connections that were served.
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

probe=$ZTNA_BUILD_DIR/tests/ztna-session-probe
[[ -x $probe ]] || ztna_fail "missing $probe (build the tests/ directory)"

ztna_setup
ztna_write_policy "$ZTNA_TMP/policy.toml" <<'TOML'
version = 1

[[access]]
name = "agent1 and agent2 may reach web"
agents = ["agent1", "agent2"]
services = ["web"]

[[serve]]
name = "conn1 serves web"
connectors = ["conn1"]
services = ["web"]
TOML
ztna_make_certs --agent agent2
rec=$ZTNA_TMP/recorded

ztna_start_recording_backend web:tcp
backend_port=$(cat "$rec/web.port")

seen() { ztna_recorded web; }
served=0 # connections the backend must have recorded so far
expect_backend() {
  [[ $(seen) == "$served" ]] || ztna_fail "$1: the backend recorded $(seen) connection(s), expected $served"
}

logged() { # NAME REGEX: NAME's latest log has a line matching REGEX
  grep -qE -- "$2" "$(ztna_logfile "$1")"
}
show() { # NAME REGEX: the first such line
  grep -E -- "$2" "$(ztna_logfile "$1")" | head -n 1
}

# fetch_fails CASE URL: the fetch fails, and fast (no waiting for a timeout).
fetch_fails() {
  local t0 t1
  t0=$(ztna_now_ms)
  ztna_expect_fetch_error "$2" "$(ztna_secs 10)"
  t1=$(ztna_now_ms)
  (((t1 - t0) < $(ztna_secs 3) * 1000)) || ztna_fail "$1: the refused connection took $((t1 - t0)) ms to fail"
}

fetch_ok() { # CASE URL
  ztna_fetch "$2" "$ZTNA_TMP/page.out" 20
  grep -q "recorded by backend web" "$ZTNA_TMP/page.out" || ztna_fail "$1: unexpected page: $(cat "$ZTNA_TMP/page.out")"
  served=$((served + 1))
}

port1=$(ztna_free_port tcp)
port2=$(ztna_free_port tcp)
ztna_start_intermediate
ztna_start_agent agent1 --expose "web=tcp://127.0.0.1:$port1"
ztna_start_agent agent2 --expose "web=tcp://127.0.0.1:$port2"
ztna_wait_connected agent1 agent2
ztna_wait_tcp_listener agent1 "$port1"
ztna_wait_tcp_listener agent2 "$port2"

# --- (a) --allow web=agent2: agent1 is refused at the offer ----------------------------------
ztna_start_connector conn1 --service "web=tcp://127.0.0.1:$backend_port" --allow web=agent2
ztna_wait_connected conn1
ztna_wait_service web
fetch_fails a "http://127.0.0.1:$port1/"
ztna_wait_counter conn1 offers_refused 1 10
ztna_wait_for 10 "(a) the connector logs the refused offer" \
  logged conn1 "refusing the offer for agent 'agent1': this connector's allow list does not let agent 'agent1' reach 'web' \(allowed: agent2\)"
ztna_wait_counter agent1 sessions_rejected 1 10
# The intermediate allowed it (its policy names agent1) and heard the connector refuse.
ztna_wait_for 10 "(a) the intermediate logs the connector's refusal" \
  logged intermediate "connector refused the session: not authorized"
logged intermediate "agent 'agent1' wants 'web' \(allow: rule \[\[access\]\] #1" ||
  ztna_fail "(a) the intermediate's policy did not allow agent1 (the test needs it to)"
[[ $(ztna_counter intermediate sessions_denied) == 0 ]] || ztna_fail "(a) the intermediate denied a session"
# Before any handshake: no end-to-end session, no authorization checked.
ztna_jq conn1 '(.sessions | length) == 0 and .counters.authorizations_accepted == 0 and
    .counters.allow_list_denied == 0 and .counters.tls_handshake_failures == 0' >/dev/null ||
  ztna_fail "(a) unexpected connector state: $(ztna_json conn1 | jq -c '{sessions, counters}')"
expect_backend a
ztna_log "(a) connector: $(show conn1 'refusing the offer for agent')"
ztna_log "(a) intermediate: $(show intermediate 'connector refused the session')"
# agent2 is on the list: served.
fetch_ok a-agent2 "http://127.0.0.1:$port2/"
ztna_wait_counter conn1 authorizations_accepted 1 10
expect_backend a-agent2
ztna_log "(a) agent2 served; connector counters: $(ztna_json conn1 | jq -c '.counters | {offers_refused, allow_list_denied, authorizations_accepted}')"

# --- (b) --allow web=group:eng: agent1 has no group eng, refused after the handshake ---------
ztna_stop conn1
ztna_start_connector conn1 --service "web=tcp://127.0.0.1:$backend_port" --allow web=group:eng
ztna_wait_connected conn1
ztna_wait_service web
opened=$(ztna_counter intermediate sessions_opened)
fetch_fails b "http://127.0.0.1:$port1/"
ztna_wait_counter conn1 allow_list_denied 1 10
ztna_wait_for 10 "(b) the connector logs the refusal" \
  logged conn1 "refusing agent 'agent1': this connector's allow list does not let agent 'agent1' reach 'web' \(allowed: group:eng\)"
# The offer passed (the list names a group, which only the certificate can tell), the
# intermediate issued the authorization, the authorization verified; only the list refused.
ztna_jq conn1 '.counters.offers_refused == 0 and .counters.authorizations_accepted == 0 and
    .counters.streams_opened == 0' >/dev/null ||
  ztna_fail "(b) unexpected connector counters: $(ztna_json conn1 | jq -c .counters)"
(($(ztna_counter intermediate sessions_opened) == opened + 1)) ||
  ztna_fail "(b) the intermediate did not open (authorize) the session"
[[ $(ztna_counter intermediate sessions_denied) == 0 ]] || ztna_fail "(b) the intermediate denied a session"
expect_backend b
ztna_log "(b) connector: $(show conn1 "refusing agent 'agent1'")"

# --- (d) a valid grant from the intermediate does not override the connector's list ---------
# The probe registers as agent1 (the daemon leaves first: one identity, one registration).
ztna_stop agent1
out=$(timeout "$(ztna_secs 60)" "$probe" --intermediate "127.0.0.1:$ZTNA_INT_PORT" \
  --name "$ZTNA_INTERMEDIATE_DNS" --ca "$ZTNA_CERTS/ca.pem" --crl "$ZTNA_CERTS/crl.pem" \
  --cert "$ZTNA_CERTS/agent-agent1.pem" --key "$ZTNA_CERTS/agent-agent1.key" \
  --service web --mode honest --expect closed --timeout "$(ztna_secs 40)" \
  2>"$ZTNA_TMP/logs/probe-d.log") || ztna_fail "(d) the probe did not see the refusal: $out"
ztna_log "(d) probe: $out"
jq -e '.result == "closed" and .code == 5 and .bytes == 0 and .authorization.agent == "agent1" and
    .authorization.service == "web" and .authorization.connector == "conn1" and
    .authorization.session == .session' <<<"$out" >/dev/null ||
  ztna_fail "(d) expected a valid grant for this session, refused by the connector: $out"
session=$(jq -r .session <<<"$out")
ztna_wait_counter conn1 allow_list_denied 2 10
ztna_wait_for 10 "(d) the connector logs the refusal of session $session" \
  logged conn1 "session $session: refusing agent 'agent1': this connector's allow list does not let"
logged intermediate "session $session: agent 'agent1' wants 'web' \(allow: rule" ||
  ztna_fail "(d) the intermediate's log does not show it allowed session $session"
ztna_jq conn1 '.counters.authorizations_forged == 0 and .counters.authorizations_mismatched == 0 and
    .counters.authorizations_expired == 0 and .counters.authorizations_accepted == 0' >/dev/null ||
  ztna_fail "(d) the authorization itself was refused, not the agent: $(ztna_json conn1 | jq -c .counters)"
expect_backend d
ztna_log "(d) intermediate: $(show intermediate "session $session: agent 'agent1' wants")"
ztna_log "(d) connector: $(show conn1 "session $session: refusing agent")"

# --- (c) agent1 re-issued with group eng: served ----------------------------------------------
"$ZTNA_MAKE_CERTS" --out "$ZTNA_CERTS" --agent agent1 --group eng >"$ZTNA_TMP/logs/make-certs-eng.out" 2>&1 ||
  ztna_fail "make-certs --agent agent1 --group eng failed: $(cat "$ZTNA_TMP/logs/make-certs-eng.out")"
openssl x509 -in "$ZTNA_CERTS/agent-agent1.pem" -noout -ext subjectAltName | grep -q 'URI:ztna://group/eng' ||
  ztna_fail "agent1's new certificate has no group eng"
ztna_start_agent agent1 --expose "web=tcp://127.0.0.1:$port1"
ztna_wait_connected agent1
ztna_wait_tcp_listener agent1 "$port1"
fetch_ok c "http://127.0.0.1:$port1/"
ztna_wait_counter conn1 authorizations_accepted 1 10
ztna_wait_for 10 "(c) the connector logs the authorized session" \
  logged conn1 "agent 'agent1' may reach 'web': authorization by .*allow list: group:eng"
expect_backend c
ztna_log "(c) connector: $(show conn1 "agent 'agent1' may reach 'web'")"
ztna_log "connector counters: $(ztna_json conn1 | jq -c '.counters | {offers_refused, allow_list_denied, authorizations_accepted, streams_opened}'); backend recorded $(seen)"

ztna_pass
