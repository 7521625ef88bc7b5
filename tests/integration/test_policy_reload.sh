#!/usr/bin/env bash
# A policy reload (SIGHUP) cuts exactly the sessions the new policy no longer allows:
#   agent1 and agent2 each fetch a large file slowly through web. The policy is rewritten so that
#   only agent1 may reach web, and the intermediate gets SIGHUP: within 1 s agent2's session is
#   closed (sessions_closed_by_policy, "session ... closed by the new policy: agent 'agent2' may no
#   longer reach 'web': deny: ..."), its transfer fails, its next request is denied; agent1's
#   transfer completes intact (sha256) on the session it had all along.
# Then a reload with a syntax error: the policy in force stays (the error names file:line:column,
# reload_failures rises, the status fingerprint is unchanged), and the live session of agent1 is
# untouched: a transfer running across that reload completes intact on the same session.
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

ztna_setup
policy=$ZTNA_TMP/policy.toml
ztna_write_policy "$policy" <<'TOML'
version = 1

[[access]]
name = "both agents reach web"
agents = ["agent1", "agent2"]
services = ["web"]

[[serve]]
connectors = ["conn1"]
services = ["web"]
TOML
ztna_make_certs --agent agent2
size1=$((24 << 20)) size2=$((48 << 20)) rate=2M
ztna_random_file "$ZTNA_TMP/www/big1.bin" "$size1"
ztna_random_file "$ZTNA_TMP/www/big2.bin" "$size2"
ztna_random_file "$ZTNA_TMP/www/mid.bin" $((8 << 20))
echo "web page" >"$ZTNA_TMP/www/index.html"
ztna_start_web_stack
web2=$(ztna_free_port tcp)
ztna_start_agent agent2 --expose "web=tcp://127.0.0.1:$web2"
ztna_wait_connected agent2
ztna_wait_tcp_listener agent2 "$web2"
fp1=$(ztna_json intermediate | jq -r .policy.fingerprint)
[[ $fp1 == "$(sha256sum "$policy" | cut -c1-16)" ]] || ztna_fail "status fingerprint $fp1 is not the file's"

log_has() { ztna_log_has "$@"; }
log_line() {
  grep -m1 -E -- "$2" "$(ztna_logfile "$1")" | cut -d' ' -f4-
}
# within_1s NAME PATTERN: NAME's log line matching PATTERN, stamped at most 1 s after t_hup.
within_1s() { ztna_log_within_1s "$t_hup" "$@"; }

# Two slow transfers (plain background jobs bounded by --max-time; the test waits for each).
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
sid2=$(ztna_json intermediate | jq -r '.sessions[] | select(.agent == "agent2") | .session_id')
ztna_log "transfers under way: agent1 on session $sid1, agent2 on session $sid2"

# --- The new policy: agent1 only.
ztna_write_policy "$policy" <<'TOML'
version = 1

[[access]]
name = "only agent1 reaches web"
agents = ["agent1"]
services = ["web"]

[[serve]]
connectors = ["conn1"]
services = ["web"]
TOML
fp2=$(sha256sum "$policy" | cut -c1-16)
kill -0 "$curl2" 2>/dev/null || ztna_fail "agent2's transfer ended before the reload"
t_hup=$(ztna_now_ms)
ztna_sighup intermediate
# The closing log lines of all three daemons, each within 1 s of the SIGHUP (their timestamps);
# the status documents confirm it.
pat="session $sid2 closed by the new policy: agent 'agent2' may no longer reach 'web': deny: no rule allows agent 'agent2' to reach 'web' \(default deny\)"
within_1s intermediate "$pat"
within_1s agent2 "session $sid2 with connector 'conn1' for 'web' ended: intermediate closed it: not authorized"
within_1s conn1 "session $sid2 with agent 'agent2' ended: intermediate closed it: not authorized"
ztna_log "intermediate: $(log_line intermediate "$pat")"
ztna_wait_counter intermediate sessions_closed_by_policy 1 5
ztna_wait_json intermediate 5 "only agent1's session left" '[.sessions[] | .agent] == ["agent1"]'
ztna_wait_json agent2 5 "agent2 has no session" '.sessions | length == 0'
ztna_wait_json conn1 5 "conn1 has only agent1's session" '[.sessions[] | .agent] == ["agent1"]'
ztna_jq intermediate '.policy.fingerprint == $fp' --arg fp "$fp2" >/dev/null ||
  ztna_fail "status fingerprint $(ztna_json intermediate | jq -r .policy.fingerprint), expected $fp2"
grep -qF "reload: policy v1 loaded from $policy: 1 access rule, 1 serve rule, fingerprint $fp2" "$(ztna_logfile intermediate)" ||
  ztna_fail "the intermediate did not log the new policy"

rc=0
wait "$curl2" || rc=$?
got2=$(ztna_file_size "$ZTNA_TMP/big2.out")
((rc != 0 && rc != 28)) || ztna_fail "agent2's transfer was not cut (curl exit $rc, $got2 bytes)"
((got2 < size2)) || ztna_fail "agent2 received the whole file"
ztna_log "agent2's transfer cut after $got2 of $size2 bytes (curl exit $rc: $(tr -d '\n' <"$ZTNA_TMP/curl2.err"))"
ztna_expect_fetch_error "http://127.0.0.1:$web2/index.html" 10
ztna_wait_counter intermediate sessions_denied 1 5

rc=0
wait "$curl1" || rc=$?
((rc == 0)) || ztna_fail "agent1's transfer failed (curl exit $rc: $(cat "$ZTNA_TMP/curl1.err"))"
[[ $(ztna_sha256 "$ZTNA_TMP/big1.out") == "$(ztna_sha256 "$ZTNA_TMP/www/big1.bin")" ]] ||
  ztna_fail "agent1's file differs ($(ztna_file_size "$ZTNA_TMP/big1.out") of $size1 bytes)"
ztna_jq intermediate '[.sessions[] | .session_id] == [$s]' --arg s "$sid1" >/dev/null ||
  ztna_fail "agent1's session changed: $(ztna_json intermediate | jq -c .sessions)"
ztna_log "agent1's $size1 bytes arrived intact on session $sid1"

# --- A reload with a syntax error: nothing changes.
curl -sS --max-time "$(ztna_secs 60)" --limit-rate 4M -o "$ZTNA_TMP/mid.out" \
  "http://127.0.0.1:$ZTNA_WEB_PORT/mid.bin" 2>"$ZTNA_TMP/curl3.err" &
curl3=$!
ztna_wait_for 20 "agent1's second transfer under way" ztna_file_at_least "$ZTNA_TMP/mid.out" $((1 << 20))
printf 'version = 1\n\n[[access]\nagents = ["agent2"]\nservices = ["*"]\n' | ztna_write_policy "$policy"
failures=$(ztna_counter intermediate reload_failures)
closed=$(ztna_counter intermediate sessions_closed_by_policy)
ztna_sighup intermediate
ztna_wait_counter intermediate reload_failures $((failures + 1)) 10
pat="reload: keeping the policy in force \($fp2\): ${policy//./\\.}:3:[0-9]+: "
ztna_wait_for 5 "intermediate log: the broken policy named as file:line:column" log_has intermediate "$pat"
ztna_log "intermediate: $(log_line intermediate "$pat")"
ztna_jq intermediate '.policy.fingerprint == $fp' --arg fp "$fp2" >/dev/null ||
  ztna_fail "status fingerprint changed to $(ztna_json intermediate | jq -r .policy.fingerprint)"
rc=0
wait "$curl3" || rc=$?
((rc == 0)) || ztna_fail "agent1's transfer across the failed reload failed (curl exit $rc: $(cat "$ZTNA_TMP/curl3.err"))"
cmp -s "$ZTNA_TMP/www/mid.bin" "$ZTNA_TMP/mid.out" || ztna_fail "agent1's second file differs"
ztna_jq intermediate '[.sessions[] | .session_id] == [$s]' --arg s "$sid1" >/dev/null ||
  ztna_fail "sessions changed across the failed reload: $(ztna_json intermediate | jq -c .sessions)"
[[ $(ztna_counter intermediate sessions_closed_by_policy) == "$closed" ]] ||
  ztna_fail "the failed reload closed sessions"
# The policy in force is still the one that denies agent2 (the broken file would allow it).
denied=$(ztna_counter intermediate sessions_denied)
ztna_expect_fetch_error "http://127.0.0.1:$web2/index.html" 10
ztna_wait_counter intermediate sessions_denied $((denied + 1)) 5
ztna_log "after the failed reload: policy $fp2 still in force, agent1's session $sid1 untouched, agent2 still denied"
ztna_log "intermediate counters: $(ztna_json intermediate | jq -c '.counters | {reloads, reload_failures, sessions_closed_by_policy, sessions_denied}')"

ztna_pass
