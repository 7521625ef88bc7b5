#!/usr/bin/env bash
# The access policy (docs/policy.md) at work: deny by default, every decision explained.
#   - agent1 may reach web but not db: web works; db fails fast (SessionReject NotAuthorized),
#     the intermediate counts sessions_denied and logs the default-deny line;
#   - connector conn1 announces "secret", which no [[serve]] rule lets it serve: it is left out of
#     the directory (services_refused, a log line, an error to the connector), and an agent whom
#     the access rules allow "secret" still cannot reach it (NoConnector);
#   - groups: carol (group eng) reaches wiki through the rule for group eng; eve (groups eng and
#     contractors) is refused wiki by a deny rule, and the log names that rule and its line;
#   - `ztna-intermediate policy check`: allow/deny with the deciding rule, --json, exit codes
#     0/1/2, and a broken file named as file:line:column: reason.
# Two daemons with one identity are covered by test_duplicate_identity.sh.
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

ztna_setup
policy=$ZTNA_TMP/policy.toml
ztna_write_policy "$policy" <<'TOML'
version = 1

[[access]]
name = "agent1 reaches web"
agents = ["agent1"]
services = ["web"]

[[access]]
name = "engineers reach the wiki"
groups = ["eng"]
services = ["wiki"]

[[access]]
name = "no-contractors"
groups = ["contractors"]
services = ["*"]
effect = "deny"

[[access]]
name = "anyone may ask for secret"
agents = ["*"]
services = ["secret"]

[[serve]]
name = "conn1 serves the apps"
connectors = ["conn1"]
services = ["web", "db", "wiki"]
TOML
ztna_make_certs
"$ZTNA_MAKE_CERTS" --out "$ZTNA_CERTS" --agent carol --group eng >/dev/null 2>&1 ||
  ztna_fail "make-certs --agent carol failed"
"$ZTNA_MAKE_CERTS" --out "$ZTNA_CERTS" --agent eve --group eng --group contractors >/dev/null 2>&1 ||
  ztna_fail "make-certs --agent eve failed"
line_of() {
  grep -n -m1 -F -- "$1" "$policy" | cut -d: -f1
}
# The line of each rule's [[access]] header: the line before its name.
l_web=$(($(line_of 'name = "agent1 reaches web"') - 1))
l_wiki=$(($(line_of 'name = "engineers reach the wiki"') - 1))
l_deny=$(($(line_of 'name = "no-contractors"') - 1))

echo "web page" >"$ZTNA_TMP/www/index.html"
ztna_start_nginx "$ZTNA_TMP/www"
backend="tcp://127.0.0.1:$ZTNA_NGINX_PORT"
ztna_start_intermediate
fp=$(sha256sum "$policy" | cut -c1-16)
ztna_jq intermediate '.policy.fingerprint == $fp and .policy.access_rules == 4 and .policy.serve_rules == 1' \
  --arg fp "$fp" >/dev/null || ztna_fail "policy in status: $(ztna_json intermediate | jq -c .policy)"
grep -qF "policy v1 loaded from $policy: 4 access rules, 1 serve rule, fingerprint $fp" "$(ztna_logfile intermediate)" ||
  ztna_fail "the intermediate did not log the policy it loaded"

ztna_start_connector conn1 --service "web=$backend" --service "db=$backend" --service "wiki=$backend" \
  --service "secret=$backend"
p_web=$(ztna_free_port tcp) p_db=$(ztna_free_port tcp) p_secret=$(ztna_free_port tcp)
p_carol=$(ztna_free_port tcp) p_eve=$(ztna_free_port tcp)
ztna_start_agent agent1 --expose "web=tcp://127.0.0.1:$p_web" --expose "db=tcp://127.0.0.1:$p_db" \
  --expose "secret=tcp://127.0.0.1:$p_secret"
ztna_start_agent carol --expose "wiki=tcp://127.0.0.1:$p_carol"
ztna_start_agent eve --expose "wiki=tcp://127.0.0.1:$p_eve"
ztna_wait_connected conn1 agent1 carol eve
ztna_wait_service web db wiki
for p in "$p_web" "$p_db" "$p_secret" "$p_carol" "$p_eve"; do
  ztna_wait_tcp_listener agents "$p"
done

log_has() {
  grep -qE -- "$2" "$(ztna_logfile "$1")"
}
log_line() {
  grep -m1 -E -- "$2" "$(ztna_logfile "$1")" | cut -d' ' -f4-
}
counter_is() {
  [[ $(ztna_counter "$1" "$2") == "$3" ]]
}

# --- A connector announcing a service it may not serve.
ztna_jq intermediate '.peers[] | select(.role == "connector" and .name == "conn1") | .services | sort == ["db", "web", "wiki"]' \
  >/dev/null || ztna_fail "conn1's services at the intermediate: $(ztna_json intermediate | jq -c .peers)"
ztna_wait_counter intermediate services_refused 1 10
pat="connector 'conn1' may not serve 'secret'; not registered for it: deny: no rule allows connector 'conn1' to serve 'secret' \(default deny\)"
ztna_wait_for 5 "intermediate log: conn1 may not serve secret" log_has intermediate "$pat"
ztna_log "intermediate: $(log_line intermediate "$pat")"
ztna_wait_for 5 "conn1 was told" log_has conn1 "control: intermediate: not authorized: not allowed to serve 'secret'"
ztna_log "conn1: $(log_line conn1 "not allowed to serve 'secret'")"

# --- Allowed: agent1 -> web.
ztna_fetch "http://127.0.0.1:$p_web/index.html" "$ZTNA_TMP/web.out" 30
cmp -s "$ZTNA_TMP/www/index.html" "$ZTNA_TMP/web.out" || ztna_fail "web page differs"
pat="agent 'agent1' wants 'web' \(allow: rule \[\[access\]\] #1 \"agent1 reaches web\" \($policy:$l_web\)\)"
ztna_wait_for 5 "intermediate log: the session for web names its rule" log_has intermediate "$pat"
ztna_log "agent1 -> web allowed: $(log_line intermediate "$pat")"

# expect_denied URL: the connection fails, and fast (the agent gets the refusal at once).
expect_denied() {
  local t0 t1
  t0=$(ztna_now_ms)
  ztna_expect_fetch_error "$1" 10
  t1=$(ztna_now_ms)
  ((t1 - t0 < 2000 * ZTNA_TIME_SCALE)) || ztna_fail "$1 took $((t1 - t0)) ms to fail"
}

# --- Denied by default: agent1 -> db.
expect_denied "http://127.0.0.1:$p_db/index.html"
ztna_wait_counter intermediate sessions_denied 1 5
pat="session request from agent 'agent1' for 'db' denied: deny: no rule allows agent 'agent1' to reach 'db' \(default deny\)"
ztna_wait_for 5 "intermediate log: agent1 denied db by default" log_has intermediate "$pat"
ztna_log "intermediate: $(log_line intermediate "$pat")"
ztna_wait_for 5 "agent1 log: refused, not authorized" \
  log_has agent1 "'db': the intermediate refused a session: not authorized to reach 'db' \(not authorized\)"
ztna_wait_counter agent1 sessions_rejected 1 5

# --- Allowed to ask, but nobody may serve it: agent1 -> secret.
rejected=$(ztna_counter intermediate sessions_rejected)
expect_denied "http://127.0.0.1:$p_secret/index.html"
ztna_wait_counter intermediate sessions_rejected $((rejected + 1)) 5
counter_is intermediate sessions_denied 1 || ztna_fail "secret was denied by the access rules, expected a missing connector"
ztna_wait_for 5 "intermediate log: no connector serves secret" \
  log_has intermediate "session request from agent 'agent1' rejected: no connector serves 'secret'"
ztna_wait_for 5 "agent1 log: no connector for secret" \
  log_has agent1 "'secret': the intermediate refused a session: no connector serves 'secret' \(no connector\)"
ztna_log "agent1 -> secret: $(log_line agent1 "'secret': the intermediate refused")"

# --- Groups: carol (eng) reaches wiki; eve (eng, contractors) is denied by the deny rule.
ztna_fetch "http://127.0.0.1:$p_carol/index.html" "$ZTNA_TMP/wiki.out" 30
cmp -s "$ZTNA_TMP/www/index.html" "$ZTNA_TMP/wiki.out" || ztna_fail "wiki page differs"
pat="agent 'carol' wants 'wiki' \(allow: rule \[\[access\]\] #2 \"engineers reach the wiki\" \($policy:$l_wiki\)\)"
ztna_wait_for 5 "intermediate log: carol allowed by the group rule" log_has intermediate "$pat"
ztna_log "carol -> wiki allowed: $(log_line intermediate "$pat")"
ztna_jq intermediate '.peers[] | select(.name == "carol") | .groups == ["eng"]' >/dev/null ||
  ztna_fail "carol's groups: $(ztna_json intermediate | jq -c '.peers[] | select(.name == "carol")')"

expect_denied "http://127.0.0.1:$p_eve/index.html"
ztna_wait_counter intermediate sessions_denied 2 5
pat="session request from agent 'eve' for 'wiki' denied: deny: rule \[\[access\]\] #3 \"no-contractors\" \($policy:$l_deny\)"
ztna_wait_for 5 "intermediate log: eve denied by rule #3" log_has intermediate "$pat"
ztna_log "intermediate: $(log_line intermediate "$pat")"
ztna_jq intermediate '[.sessions[] | "\(.agent)/\(.service)"] | sort == ["agent1/web", "carol/wiki"]' >/dev/null ||
  ztna_fail "unexpected sessions: $(ztna_json intermediate | jq -c .sessions)"

# --- policy check: the same decisions without a daemon.
# check EXPECTED_RC EXPECTED_STDOUT ARGS...: run policy check; compare exit status and stdout.
check() {
  local want_rc=$1 want=$2 rc=0 out
  shift 2
  out=$("$ZTNA_INTERMEDIATE_BIN" policy check "$@" 2>"$ZTNA_TMP/check.err") || rc=$?
  ((rc == want_rc)) || ztna_fail "policy check $*: exit $rc, expected $want_rc ($out $(cat "$ZTNA_TMP/check.err"))"
  [[ $out == "$want" ]] || ztna_fail "policy check $*: printed '$out', expected '$want'"
  local shown="$*"
  ztna_log "policy check ${shown//$ZTNA_TMP\//} -> exit $rc: ${out:-$(cat "$ZTNA_TMP/check.err")}"
}
check 0 "allow: rule [[access]] #1 \"agent1 reaches web\" ($policy:$l_web)" \
  --policy "$policy" --agent agent1 --service web
check 1 "deny: no rule allows agent 'agent1' to reach 'db' (default deny)" \
  --policy "$policy" --agent agent1 --service db
check 0 "allow: rule [[access]] #2 \"engineers reach the wiki\" ($policy:$l_wiki)" \
  --policy "$policy" --agent carol --group eng --service wiki
check 1 "deny: rule [[access]] #3 \"no-contractors\" ($policy:$l_deny)" \
  --policy "$policy" --agent eve --group eng --group contractors --service wiki
check 1 "deny: no rule allows connector 'conn1' to serve 'secret' (default deny)" \
  --policy "$policy" --connector conn1 --service secret
out=$("$ZTNA_INTERMEDIATE_BIN" policy check --policy "$policy" --agent eve --group eng --group contractors \
  --service wiki --json) && ztna_fail "policy check --json: exit 0 for a deny"
jq -e --arg f "$policy" --arg fp "$fp" --argjson l "$l_deny" \
  '.decision == "deny" and .subject == {"role": "agent", "name": "eve", "groups": ["eng", "contractors"]}
   and .service == "wiki" and .rule.kind == "access" and .rule.index == 3
   and .rule.name == "no-contractors" and .rule.line == $l and .rule.effect == "deny"
   and .policy.file == $f and .policy.fingerprint == $fp' <<<"$out" >/dev/null ||
  ztna_fail "policy check --json: $out"
out=$("$ZTNA_INTERMEDIATE_BIN" policy check --policy "$policy" --agent agent1 --service db --json) &&
  ztna_fail "policy check --json: exit 0 for a default deny"
jq -e '.decision == "deny" and .rule == null' <<<"$out" >/dev/null || ztna_fail "policy check --json (default deny): $out"
ztna_log "policy check --json: $out"

# A broken file: exit 2, nothing on stdout, the problem as file:line:column: reason.
bad=$ZTNA_TMP/bad.toml
printf 'version = 1\n\n[[access]]\nagnets = ["agent1"]\nservices = ["web"]\n' >"$bad"
check 2 "" --policy "$bad" --agent agent1 --service web
grep -qxF "error: $bad:4:1: [[access]] #1: unknown key 'agnets' (expected name, agents, groups, services, effect)" \
  "$ZTNA_TMP/check.err" || ztna_fail "policy check on a broken file said: $(cat "$ZTNA_TMP/check.err")"
check 2 "" --policy "$bad" --agent agent1 --service web --json
check 2 "" --policy "$policy" --agent agent1 --connector conn1 --service web
grep -qF "give exactly one of --agent NAME and --connector NAME" "$ZTNA_TMP/check.err" ||
  ztna_fail "policy check with --agent and --connector said: $(cat "$ZTNA_TMP/check.err")"
# An option without its value is the command line parser's error: exit 2 all the same.
check 2 "" --policy "$policy" --service web --agent

ztna_log "intermediate counters: $(ztna_json intermediate | jq -c '.counters | {sessions_opened, sessions_denied, sessions_rejected, services_refused}')"
ztna_pass
