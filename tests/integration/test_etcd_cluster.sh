#!/usr/bin/env bash
# Several intermediates sharing state in a real three-node etcd cluster (DESIGN D11), in the NAT
# lab: intermediates i1..i3 (203.0.113.11-13) and etcd1..3 (203.0.113.21-23) on the public host
# "intermediate"; agents on host a behind r1, the connector and a raw TCP stream server on host b
# behind r2. The connector registers with all three intermediates, each agent with one home.
# - The agent and the connector meet, go direct, and fall back to the relay when the direct path
#   is cut; the stream arrives whole.
# - etcd holds every intermediate's member record and every peer's home.
# - A policy written through one intermediate (SIGHUP, with its own policy file) is enforced by
#   all three within 1 s: agent2's live session, homed elsewhere, is closed by its home. A
#   policy record written straight into etcd, without the deployment's signature, is refused.
# - One etcd node killed (the leader): a new agent registers, its home is written, a session
#   works, a second policy change reaches all three.
# - Every etcd node killed: a live stream carries on intact; the intermediates say etcd is
#   unreachable; a new agent still registers and gets a session (degraded mode,
#   docs/operations.md); once etcd is back its home is written.
# shellcheck source-path=SCRIPTDIR/../natlab source=../natlab/lab_test.sh
source "$(dirname "$0")/../natlab/lab_test.sh"

size=$((6 << 20))
rate=$((3 << 20))
LAB_INTERMEDIATE_IP=203.0.113.11
declare -A ip_of=([i1]=203.0.113.11 [i2]=203.0.113.12 [i3]=203.0.113.13)
port=$LAB_INTERMEDIATE_PORT

lab_test_setup
lab_certs --agent agent2 --agent agent3 --agent agent4 \
  --intermediate-ip 203.0.113.12 --intermediate-ip 203.0.113.13
natlab_public_host intermediate 203.0.113.11 203.0.113.12 203.0.113.13 \
  203.0.113.21 203.0.113.22 203.0.113.23
natlab_router r1
natlab_router r2
natlab_host a r1
natlab_host b r2
lab_etcd_start intermediate 203.0.113.21 203.0.113.22 203.0.113.23

# Each intermediate reads its own copy of the policy, so that what the others enforce after a
# reload of one can only have come through etcd.
start_intermediate() {
  cp "$ZTNA_TMP/policy.toml" "$ZTNA_TMP/policy-$1.toml"
  ZTNA_POLICY=$ZTNA_TMP/policy-$1.toml lab_start_named_intermediate "$1" intermediate "${ip_of[$1]}"
}
for i in i1 i2 i3; do start_intermediate "$i"; done
for i in i1 i2 i3; do
  ztna_wait_json "$i" 10 "$i: etcd up, three members, the deployment's policy" \
    '.cluster.etcd == "up" and (.cluster.members | length) == 3 and .policy.revision > 0'
done
rev=$(ztna_json i1 | jq .policy.revision)
for i in i2 i3; do
  [[ $(ztna_json "$i" | jq .policy.revision) == "$rev" ]] || ztna_fail "$i enforces another policy revision than i1 ($rev)"
done
ztna_log "three intermediates in etcd, policy revision $rev on each"

lab_start_stream_server b "$size" "$rate"
all=(--intermediate "${ip_of[i2]}:$port" --intermediate "${ip_of[i3]}:$port")
lab_start_peer connector conn1 b "${all[@]}" --service "stream=tcp://127.0.0.1:$LAB_STREAM_PORT"
lab_start_peer agent agent1 a "${all[@]}" --expose "stream=tcp://127.0.0.1:9001"
lab_start_peer agent agent2 a "${all[@]}" --relay-only --expose "stream=tcp://127.0.0.1:9002"
ztna_wait_connected conn1 agent1 agent2
for i in i1 i2 i3; do
  ztna_wait_json "$i" 20 "conn1 registered with $i" \
    '[.peers[] | select(.role == "connector") | .name] == ["conn1"]'
done
ztna_wait_for 30 "agent1 listening" lab_tcp_listening a 9001
ztna_wait_for 30 "agent2 listening" lab_tcp_listening a 9002

home_of() {
  local addr i
  addr=$(ztna_json "$1" | jq -r '.control.intermediate')
  for i in i1 i2 i3; do
    [[ $addr != "${ip_of[$i]}:$port" ]] || echo "$i"
  done
}
h1=$(home_of agent1)
h2=$(home_of agent2)
ztna_log "homes: agent1 on $h1, agent2 on $h2; conn1 on all three"

# --- etcd holds the members and the homes.
homes_in_etcd() { lab_etcd_ctl get --prefix ztna/v1/homes/ --keys-only | grep -v '^$' | sort; }
has_home() { homes_in_etcd | grep -qx "ztna/v1/homes/$1"; }
for k in "agent/agent1/$h1" "agent/agent2/$h2" connector/conn1/i1 connector/conn1/i2 connector/conn1/i3; do
  ztna_wait_for 5 "home $k in etcd" has_home "$k"
done
lab_etcd_ctl get ztna/v1/homes/connector/conn1/i1 --print-value-only | jq -e '.services == ["stream"]' >/dev/null ||
  ztna_fail "conn1's home record does not list its service"

# --- Direct, then the relay when the direct path is cut.
lab_stream_fetch direct a 9001 "$size"
ztna_wait_json agent1 10 "agent1's session direct" '.sessions[0].path == "direct"'
natlab_block r1 203.0.113.11 203.0.113.12 203.0.113.13
t_cut=$(ztna_now_ms)
ztna_wait_json agent1 15 "agent1 falls back to the relay" '.sessions[0].path == "relay"'
ztna_log "agent1 fell back to the relay of $h1 $(($(ztna_now_ms) - t_cut)) ms after the cut"
lab_stream_expect_intact direct
natlab_unblock r1

# --- A policy change through one intermediate, enforced by all three within 1 s.
lab_stream_fetch relay a 9002 "$size"
ztna_wait_for 10 "agent2's stream under way" lab_stream_progress relay $((1 << 20))
writer=i1
for i in i1 i2 i3; do [[ $i == "$h2" ]] || writer=$i; done
ztna_write_policy "$ZTNA_TMP/policy-$writer.toml" <<'TOML'
version = 1

[[access]]
name = "tests: agent2 loses its access"
agents = ["agent1", "agent3", "agent4"]
services = ["*"]

[[serve]]
connectors = ["*"]
services = ["*"]
TOML
fp_of() { ztna_json "$1" | jq -r .policy.fingerprint; }
old_fp=$(fp_of "$h2")
sid2=$(ztna_json agent2 | jq -r '.sessions[0].session_id')
t0=$(ztna_now_ms)
ztna_sighup "$writer"
new_fp=""
enforced() {
  local i fp
  for i in i1 i2 i3; do
    fp=$(fp_of "$i")
    [[ $fp != "$old_fp" ]] || return 1
    [[ -z $new_fp || $fp == "$new_fp" ]] || return 1
    new_fp=$fp
  done
  # agent2's home closed its session.
  ztna_jq "$h2" '[.sessions[] | select(.agent == "agent2")] | length == 0' >/dev/null
}
ztna_wait_for 5 "the new policy enforced by all three" enforced
ztna_log "policy $new_fp written through $writer: in status on i1, i2 and i3, agent2's session gone from $h2, $(($(ztna_now_ms) - t0)) ms after the reload (status polled)"
# The daemons' own timestamps: each took the policy, and agent2's home closed its session,
# within 1 s of the reload.
for i in i1 i2 i3; do
  [[ $i == "$writer" ]] || ztna_log_within_1s "$t0" "$i" "shared policy etcd revision [0-9]+ \\(from $writer\\) in force"
done
ztna_log_within_1s "$t0" "$h2" "session $sid2 closed by the new policy: agent 'agent2' may no longer reach 'stream'"
for i in i1 i2 i3; do
  [[ $i == "$writer" ]] || ztna_jq "$i" '.policy.source | startswith("etcd revision")' >/dev/null ||
    ztna_fail "$i's policy did not come from etcd"
done
lab_stream_wait relay
[[ $(lab_stream_result relay .end) != eof ]] || ztna_fail "agent2's stream, cut by policy, ended with a clean end of file"

# --- Write access to etcd alone decides nothing: an unsigned policy record is refused by all.
lab_etcd_ctl put ztna/v1/policy '{"policy":"version = 1\n[[access]]\nagents = [\"*\"]\nservices = [\"*\"]\n","crl":"","origin":"mallory","written_unix_ms":1}' >/dev/null
for i in i1 i2 i3; do
  ztna_wait_json "$i" 5 "$i refuses the unsigned record" '.cluster.counters.records_refused == 1'
  [[ $(fp_of "$i") == "$new_fp" ]] || ztna_fail "$i changed its policy for an unsigned record"
  ztna_log_has "$i" "from 'mallory' refused: its signature does not verify" || ztna_fail "$i did not say why it refused the record"
done
ztna_log "an unsigned policy record written straight into etcd: refused by i1, i2 and i3"

# --- One etcd node (the leader) killed: everything keeps working.
leader=$(lab_etcd_leader) || ztna_fail "etcd has no leader"
lab_etcd_kill "$leader"
lab_start_peer agent agent3 a "${all[@]}" --expose "stream=tcp://127.0.0.1:9003"
ztna_wait_connected agent3
h3=$(home_of agent3)
ztna_wait_for 10 "agent3's home ($h3) in etcd with one node down" has_home "agent/agent3/$h3"
ztna_wait_for 30 "agent3 listening" lab_tcp_listening a 9003
lab_stream_fetch n3 a 9003 "$size"
lab_stream_expect_intact n3
cp "$ZTNA_TMP/policy.toml" "$ZTNA_TMP/policy-$h3.toml"
ztna_sighup "$h3"
all_enforce() {
  local i
  for i in i1 i2 i3; do [[ $(fp_of "$i") == "$1" ]] || return 1; done
}
ztna_wait_for 5 "the open policy back on all three" all_enforce "$old_fp"
ztna_log "etcd $leader down: agent3 registered on $h3 and its home written, a session carried the stream, a policy change reached all three"

# --- Every etcd node killed: sessions carry on, registrations go on (degraded mode).
lab_stream_fetch last a 9001 "$size"
ztna_wait_for 10 "agent1's stream under way" lab_stream_progress last $((1 << 20))
for n in $(lab_etcd_names); do
  ! lab_etcd_running "$n" || lab_etcd_kill "$n"
done
for i in i1 i2 i3; do
  ztna_wait_json "$i" 5 "$i says etcd is unreachable" '.cluster.etcd == "unreachable"'
done
lab_start_peer agent agent4 a "${all[@]}" --expose "stream=tcp://127.0.0.1:9004"
ztna_wait_connected agent4
h4=$(home_of agent4)
ztna_wait_for 30 "agent4 listening" lab_tcp_listening a 9004
lab_stream_fetch n4 a 9004 "$size"
lab_stream_expect_intact last n4
ztna_log "etcd down: agent1's stream intact (longest gap $(lab_stream_result last .max_gap_ms) ms), agent4 registered on $h4 and fetched its stream"
ztna_log_has "$h4" "shared state: etcd unreachable" || ztna_fail "$h4 did not log etcd's outage"

for n in $(lab_etcd_names); do lab_etcd_restart "$n"; done
lab_etcd_wait_healthy 30
for i in i1 i2 i3; do
  ztna_wait_json "$i" 10 "$i: etcd up again" '.cluster.etcd == "up"'
done
ztna_wait_for 10 "agent4's home ($h4) written once etcd is back" has_home "agent/agent4/$h4"
ztna_log_has "$h4" "shared state: etcd reachable again" || ztna_fail "$h4 did not log etcd's return"

# (conn1 ended agent2's session, as the policy said.)
for n in agent1 agent3 agent4; do
  ! ztna_log_has "$n" " ended: " || ztna_fail "$n ended a session: $(grep -E ' ended: ' "$(ztna_logfile "$n")")"
done
lab_etcd_stop
ztna_pass
