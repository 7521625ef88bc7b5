#!/usr/bin/env bash
# Attacks on the per-session authorization and on "one session, one service" (DESIGN D6),
# against the real daemons. ztna-session-probe registers as agent1, opens real sessions through
# the intermediate and the relay, and then misbehaves on the end-to-end session: forged (a bit of
# the signature flipped; the body given a later expiry), expired, another session's
# authorization, another agent's authorization, malformed stream 0 (bad framing, then a framed
# random token), a stream naming another service, datagrams naming another service, and no
# authorization at all.
# Each attack must end in a refusal (the session closed with NotAuthorized, or the stream reset
# with NotAuthorized, or the datagrams dropped), one more in the connector's counter for it, a log
# line at the connector naming the reason (datagrams: counted only, see below), and nothing at all
# at the backends, which record every connection and datagram. The honest case, run first and
# last, must be served.
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

probe=$ZTNA_BUILD_DIR/tests/ztna-session-probe
[[ -x $probe ]] || ztna_fail "missing $probe (build the tests/ directory)"

ztna_setup
ztna_make_certs --agent agent2
rec=$ZTNA_TMP/recorded

# seen NAME: how many connections (or datagrams) backend NAME has recorded.
seen() { ztna_recorded "$1"; }

ztna_start_recording_backend web:tcp db:tcp dns:udp
ztna_start_intermediate
ztna_start_connector conn1 --service "web=tcp://127.0.0.1:$(cat "$rec/web.port")" \
  --service "db=tcp://127.0.0.1:$(cat "$rec/db.port")" \
  --service "dns=udp://127.0.0.1:$(cat "$rec/dns.port")"
ztna_wait_connected conn1
ztna_wait_service web db dns

PROBE_OUT=""
PROBE_RC=0
PROBE_RUNS=0
# run_probe MODE [probe args...]: runs the probe as agent1 for service web; its JSON line in
# PROBE_OUT, its exit status in PROBE_RC, its log in logs/probe-N-MODE.log.
run_probe() {
  local mode=$1
  shift
  PROBE_RUNS=$((PROBE_RUNS + 1))
  local log=$ZTNA_TMP/logs/probe-$PROBE_RUNS-$mode.log
  PROBE_RC=0
  PROBE_OUT=$(timeout "$(ztna_secs 60)" "$probe" --intermediate "127.0.0.1:$ZTNA_INT_PORT" \
    --name "$ZTNA_INTERMEDIATE_DNS" --ca "$ZTNA_CERTS/ca.pem" --crl "$ZTNA_CERTS/crl.pem" \
    --cert "$ZTNA_CERTS/agent-agent1.pem" --key "$ZTNA_CERTS/agent-agent1.key" \
    --service web --mode "$mode" --timeout "$(ztna_secs 40)" --log-level info "$@" 2>"$log") ||
    PROBE_RC=$?
  ztna_log "probe $mode $*: exit $PROBE_RC: $PROBE_OUT"
}

counters() {
  ztna_json conn1 | jq -c .counters
}

# changed BEFORE AFTER: the counters that moved, as {"name": +delta}.
changed() {
  jq -nc --argjson a "$1" --argjson b "$2" \
    '$b | to_entries | map(select(.value != ($a[.key] // 0)) | {(.key): (.value - ($a[.key] // 0))}) | add // {}'
}

# conn1_logged PATTERN: the connector's log has a line matching PATTERN (grep -E).
conn1_logged() {
  grep -qE -- "$1" "$(ztna_logfile conn1)"
}

declare -A served_by=([web]=0 [db]=0 [dns]=0) # what the backends must have seen so far

# expect_backends CASE: every backend saw exactly what the honest cases sent it, nothing more.
expect_backends() {
  local b
  for b in web db dns; do
    [[ $(seen "$b") == "${served_by[$b]}" ]] ||
      ztna_fail "$1: backend $b recorded $(seen "$b") connection(s)/datagram(s), expected ${served_by[$b]}"
  done
}

# attack CASE COUNTER LOG_REGEX MODE [probe args...]: the probe must report the session closed
# with NotAuthorized and no byte served; COUNTER must rise by exactly one; the connector must log
# the refusal of that session; no backend may have been contacted.
attack() {
  local name=$1 counter=$2 pattern=$3 mode=$4
  shift 4
  local before after session
  before=$(counters)
  run_probe "$mode" "$@"
  ((PROBE_RC == 0)) || ztna_fail "$name: the probe did not see the refusal it expects (exit $PROBE_RC): $PROBE_OUT"
  jq -e '.result == "closed" and .code == 5 and .bytes == 0' <<<"$PROBE_OUT" >/dev/null ||
    ztna_fail "$name: expected the session closed with NotAuthorized (5): $PROBE_OUT"
  session=$(jq -r .session <<<"$PROBE_OUT")
  ztna_wait_counter conn1 "$counter" $(($(jq -r --arg c "$counter" '.[$c] // 0' <<<"$before") + 1)) 10
  ztna_wait_for 10 "$name: the connector logs the refusal of session $session" \
    conn1_logged "session $session.*$pattern"
  after=$(counters)
  local delta
  delta=$(changed "$before" "$after")
  jq -e --arg c "$counter" '.[$c] == 1 and (.authorizations_accepted // 0) == 0 and
      (.streams_opened // 0) == 0 and (.udp_flows_opened // 0) == 0' <<<"$delta" >/dev/null ||
    ztna_fail "$name: unexpected counter changes at the connector: $delta"
  expect_backends "$name"
  ztna_log "$name: refused; counters moved: $delta"
  ztna_log "$name: connector: $(grep -E -- "session $session.*$pattern" "$(ztna_logfile conn1)" | head -n 1)"
}

t_start=$(ztna_now_ms)

# --- the control case: an honest agent is served ---------------------------------------------
honest() {
  local name=$1 before delta
  before=$(counters)
  run_probe honest
  ((PROBE_RC == 0)) || ztna_fail "$name: the honest session was not served: $PROBE_OUT"
  jq -e '.result == "served" and (.response | startswith("HTTP/1.0 200"))' <<<"$PROBE_OUT" >/dev/null ||
    ztna_fail "$name: unexpected answer: $PROBE_OUT"
  served_by[web]=$((served_by[web] + 1))
  ztna_wait_for 10 "$name: backend web recorded the honest connection" \
    test "$(seen web)" -ge "${served_by[web]}"
  delta=$(changed "$before" "$(counters)")
  jq -e '.authorizations_accepted == 1 and .streams_opened == 1' <<<"$delta" >/dev/null ||
    ztna_fail "$name: unexpected counter changes: $delta"
  expect_backends "$name"
  ztna_log "$name: served ($(jq -r .response <<<"$PROBE_OUT")); counters moved: $delta"
}
honest honest

# --- forged authorizations ----------------------------------------------------------------------
attack forged-signature authorizations_forged 'refusing agent .agent1.: authorization not signed by a trusted intermediate key' \
  forged --forge signature
attack forged-body authorizations_forged 'refusing agent .agent1.: authorization not signed by a trusted intermediate key' \
  forged --forge body

# --- a real authorization, but for something else -----------------------------------------------
attack other-session authorizations_mismatched "refusing agent .agent1.: authorization is for session [0-9a-f]{16} but this is session" \
  other-session
attack other-agent authorizations_mismatched "refusing agent .agent1.: authorization is for agent .agent2. but the handshake was made by .agent1." \
  other-agent --other-cert "$ZTNA_CERTS/agent-agent2.pem" --other-key "$ZTNA_CERTS/agent-agent2.key"

# --- malformed stream 0 ---------------------------------------------------------------------------
attack garbage-framing authorizations_malformed "refusing agent .agent1.: authorization stream: unsupported version 123" \
  garbage-stream0 --garbage framing
attack garbage-token authorizations_malformed "refusing agent .agent1.: authorization malformed" \
  garbage-stream0 --garbage token

# --- one session, one service: a stream for another service --------------------------------------
before=$(counters)
run_probe wrong-service-stream --other-service db
((PROBE_RC == 0)) || ztna_fail "wrong-service-stream: $PROBE_OUT"
jq -e '.result == "stream_reset" and .code == 262 and .then == "served"' <<<"$PROBE_OUT" >/dev/null ||
  ztna_fail "wrong-service-stream: expected a reset with NotAuthorized (0x106) and the session still serving: $PROBE_OUT"
session=$(jq -r .session <<<"$PROBE_OUT")
served_by[web]=$((served_by[web] + 1)) # the honest stream after the refused one
ztna_wait_counter conn1 streams_wrong_service $(($(jq -r .streams_wrong_service <<<"$before") + 1)) 10
ztna_wait_for 10 "wrong-service-stream: the connector logs the refused stream" \
  conn1_logged "session $session: agent 'agent1': stream names service 'db', but the session is for 'web'; refused \(streams_wrong_service\)"
ztna_wait_for 10 "wrong-service-stream: backend web recorded the honest stream" test "$(seen web)" -ge "${served_by[web]}"
delta=$(changed "$before" "$(counters)")
jq -e '.streams_wrong_service == 1 and .authorizations_accepted == 1 and .streams_opened == 1' <<<"$delta" >/dev/null ||
  ztna_fail "wrong-service-stream: unexpected counter changes: $delta"
expect_backends wrong-service-stream
ztna_log "wrong-service-stream: stream reset with 0x106, the next stream served; counters moved: $delta"
ztna_log "wrong-service-stream: connector: $(grep -F "session $session: agent 'agent1': stream names" "$(ztna_logfile conn1)" | head -n 1)"

# --- one session, one service: datagrams for another service -------------------------------------
before=$(counters)
run_probe wrong-service-datagram --other-service dns
((PROBE_RC == 0)) || ztna_fail "wrong-service-datagram: $PROBE_OUT"
jq -e '.result == "served" and .pong == true and .datagrams_sent == 5' <<<"$PROBE_OUT" >/dev/null ||
  ztna_fail "wrong-service-datagram: unexpected outcome: $PROBE_OUT"
session=$(jq -r .session <<<"$PROBE_OUT")
served_by[web]=$((served_by[web] + 1))
# The ping went out after the five datagrams and was answered: they have all been handled.
ztna_wait_counter conn1 datagrams_wrong_service $(($(jq -r .datagrams_wrong_service <<<"$before") + 5)) 10
ztna_wait_for 10 "wrong-service-datagram: backend web recorded the honest stream" test "$(seen web)" -ge "${served_by[web]}"
delta=$(changed "$before" "$(counters)")
jq -e '.datagrams_wrong_service == 5 and (.udp_flows_opened // 0) == 0' <<<"$delta" >/dev/null ||
  ztna_fail "wrong-service-datagram: unexpected counter changes: $delta"
expect_backends wrong-service-datagram
ztna_log "wrong-service-datagram: 5 datagrams for 'dns' dropped, the session still answers; counters moved: $delta"
# Counted each, said once per session.
ztna_wait_for 5 "conn1 log: datagram for another service dropped" \
  conn1_logged "session $session: agent 'agent1': datagram names service 'dns', but the session is for 'web'; dropped"
[[ $(grep -cE "session $session: .*datagram names service" "$(ztna_logfile conn1)") == 1 ]] ||
  ztna_fail "wrong-service-datagram: not said exactly once for 5 datagrams"
ztna_log "wrong-service-datagram: connector: $(grep -E "session $session.*datagram" "$(ztna_logfile conn1)" | head -n 1)"

# --- no authorization at all: the connector waits 15 s, then closes -----------------------------
t0=$(ztna_now_ms)
attack none authorizations_missing "with agent 'agent1' ended: the agent presented no authorization in time" \
  none
ztna_log "none: closed after $(($(ztna_now_ms) - t0)) ms"

# --- expired: a short-lived authorization, presented after its expiry ----------------------------
# The intermediate is restarted to sign 2-second authorizations; the connector reconnects.
connects=$(ztna_counter conn1 control_connects)
ztna_stop intermediate
ztna_start_intermediate --authorization-lifetime 2
ztna_wait_counter conn1 control_connects $((connects + 1)) 30
ztna_wait_connected conn1
ztna_wait_service web db dns
t0=$(ztna_now_ms)
attack expired authorizations_expired "refusing agent .agent1.: authorization.*expired [0-9]+ ms ago" \
  expired
ztna_log "expired: probe run took $(($(ztna_now_ms) - t0)) ms; token lifetime $(jq -r .authorization.lifetime_ms <<<"$PROBE_OUT") ms"
# A fresh 2-second authorization used at once still works.
honest honest-after-restart

ztna_log "connector counters: $(counters)"
ztna_log "backends: web=$(seen web) db=$(seen db) dns=$(seen dns); all cases in $(($(ztna_now_ms) - t_start)) ms"
ztna_pass
