#!/usr/bin/env bash
# Probes go only where they should (docs/security.md). The hostile end of a real, accepted
# session (ztna-control-probe registered as an agent, asking for "web") signals candidates that
# point at the connector's own loopback (its backend, 127.0.0.1:8080), the cloud metadata
# service (169.254.169.254:80) and mDNS (224.0.0.251:5353), plus one legitimate candidate (its
# own address) as a positive control. The connector joins the round and checks, and nftables
# counters on the output path of its namespace prove that not one packet leaves toward the
# forbidden addresses while the legitimate one gets its checks; its status counts the refusals
# by reason, and its log says so once. A second hostile agent sends no padding: the connector
# then sends only the checks its 3x budget covers, and counts the rest.
#
# Lab: the intermediate (203.0.113.10), the connector on b (203.0.113.30) and the hostile
# agents on h (203.0.113.31), all public hosts. b gets routes for 169.254.0.0/16 and 224.0.0.0/4
# so that a packet toward them would pass routing and reach the counters (checked at the end by
# sending one datagram to each from b's namespace).
# shellcheck source-path=SCRIPTDIR/../natlab source=../natlab/lab_test.sh
source "$(dirname "$0")/../natlab/lab_test.sh"

probe=$ZTNA_BUILD_DIR/tests/ztna-control-probe
[[ -x $probe ]] || ztna_fail "missing $probe (build the tests/ directory)"

ztna_setup
natlab_init
lab_certs --agent agent2

natlab_public_host intermediate "$LAB_INTERMEDIATE_IP"
natlab_public_host b 203.0.113.30
natlab_public_host h 203.0.113.31
hostile_ip=$(natlab_addr h)

# Routes so that nothing is refused by the routing table instead of by the connector.
natlab_exec b ip route add 169.254.0.0/16 dev eth0 || ztna_fail "route in b"
natlab_exec b ip route add 224.0.0.0/4 dev eth0 || ztna_fail "route in b"
natlab_exec b nft -f - <<EOF || ztna_fail "nftables counters in b"
table inet hostile {
  counter to_loopback {}
  counter to_metadata {}
  counter to_multicast {}
  counter to_forbidden {}
  counter to_legit1 {}
  counter to_legit2 {}
  chain output {
    type filter hook output priority 0; policy accept;
    ip daddr 127.0.0.1 udp dport $LAB_BACKEND_PORT counter name "to_loopback"
    ip daddr 169.254.169.254 udp dport 80 counter name "to_metadata"
    ip daddr 224.0.0.251 udp dport 5353 counter name "to_multicast"
    ip daddr { 0.0.0.0/8, 127.0.0.0/8, 169.254.0.0/16, 224.0.0.0/4, 255.255.255.255 } meta l4proto udp counter name "to_forbidden"
    ip daddr $hostile_ip udp dport 7001 counter name "to_legit1"
    ip daddr $hostile_ip udp dport 7002 counter name "to_legit2"
  }
}
EOF

# counter NAME: packets counted in b's output path.
counter() {
  natlab_exec b nft -j list counter inet hostile "$1" | jq -r '.nftables[] | select(.counter) | .counter.packets'
}
forbidden_counters() {
  echo "loopback $(counter to_loopback), metadata $(counter to_metadata), multicast $(counter to_multicast), any forbidden $(counter to_forbidden)"
}
all_zero() {
  [[ $(forbidden_counters) == "loopback 0, metadata 0, multicast 0, any forbidden 0" ]]
}

lab_start_intermediate intermediate
lab_start_backend b "$ZTNA_TMP/www"
lab_start_peer connector conn1 b --service "web=tcp://127.0.0.1:$LAB_BACKEND_PORT"
ztna_wait_connected conn1
ztna_wait_service web

# start_hostile NAME PORT PADDING: a hostile agent on h, its socket (and legitimate candidate)
# at $hostile_ip:PORT.
start_hostile() {
  local name=$1 port=$2 padding=$3
  ztna_spawn "hostile-$name" 1 ip netns exec "$(natlab_ns h)" "$probe" \
    --intermediate "$LAB_INTERMEDIATE_IP:$LAB_INTERMEDIATE_PORT" --name "$ZTNA_INTERMEDIATE_DNS" \
    --ca "$ZTNA_CERTS/ca.pem" --cert "$ZTNA_CERTS/agent-$name.pem" --key "$ZTNA_CERTS/agent-$name.key" \
    --send hostile-candidates --service web --listen "$hostile_ip:$port" --padding "$padding" \
    --candidate "127.0.0.1:$LAB_BACKEND_PORT" --candidate 169.254.169.254:80 \
    --candidate 224.0.0.251:5353 --candidate "$hostile_ip:$port"
}

# session_of AGENT: the connector's session for AGENT, as JSON.
session_of() {
  ztna_json conn1 | jq -c --arg a "$1" 'first(.sessions[]? | select(.agent == $a)) // null'
}
# round_over AGENT: the connector's round with AGENT has ended (its one pair failed: nothing
# answers on h).
round_over() {
  session_of "$1" | jq -e '.paths.rounds == 1 and (.paths.pairs | length) == 1
    and .paths.pairs[0].state == "failed"' >/dev/null
}

# --- 1. padded as ztna-agent pads: every check to the legitimate candidate is sent -----------
start_hostile agent1 7001 auto
ztna_wait_json conn1 15 "the hostile session's candidates refused" \
  'any(.sessions[]?; .agent == "agent1" and .paths.candidates_refused == 3)'
ztna_wait_for 15 "the connector's round of checks with agent1 to end" round_over agent1
s=$(session_of agent1)
ztna_log "connector's paths for agent1: $(jq -c '.paths | {rounds, checks_sent, candidates_refused,
  refused, checks_over_budget, check_budget, remote: [.candidates.remote[] | .address]}' <<<"$s")"
ztna_log "counters in b: $(forbidden_counters), legitimate $(counter to_legit1)"
all_zero || ztna_fail "packets left b toward forbidden addresses: $(forbidden_counters)"
jq -e '.paths.refused == {"loopback": 1, "metadata": 1, "multicast": 1}' <<<"$s" >/dev/null ||
  ztna_fail "refusals by reason: $(jq -c .paths.refused <<<"$s")"
jq -e --arg legit "$hostile_ip:7001" '[.paths.candidates.remote[] | .address] == [$legit]' \
  <<<"$s" >/dev/null || ztna_fail "remote candidates: $(jq -c .paths.candidates.remote <<<"$s")"
sent=$(jq -r '.paths.checks_sent' <<<"$s")
legit=$(counter to_legit1)
((sent == 6 && legit == sent)) ||
  ztna_fail "expected all 6 checks to $hostile_ip:7001 (status $sent, counted $legit)"
jq -e '.paths.checks_over_budget == 0' <<<"$s" >/dev/null || ztna_fail "checks held back"
grep -q "round 1: refused 3 of the peer's 4 candidates, which no check may go to (loopback 127.0.0.1:$LAB_BACKEND_PORT, metadata 169.254.169.254:80, multicast 224.0.0.251:5353)" \
  "$(ztna_logfile conn1)" || ztna_fail "no log line about the refused candidates"
[[ $(grep -c "refused 3 of the peer's" "$(ztna_logfile conn1)") == 1 ]] || ztna_fail "refusals logged more than once"
grep -q "got StartChecks (round 1)" "$(ztna_logfile hostile-agent1)" ||
  ztna_fail "the hostile agent's round never started"

# --- 2. no padding: the connector's budget is 3x the bytes of the hostile Candidates ------------
start_hostile agent2 7002 0
ztna_wait_json conn1 15 "the second hostile session's candidates refused" \
  'any(.sessions[]?; .agent == "agent2" and .paths.candidates_refused == 3)'
ztna_wait_for 15 "the connector's round of checks with agent2 to end" round_over agent2
s=$(session_of agent2)
ztna_log "connector's paths for agent2: $(jq -c '.paths | {checks_sent, checks_over_budget, check_budget}' <<<"$s")"
sent=$(jq -r '.paths.checks_sent' <<<"$s")
legit=$(counter to_legit2)
((sent > 0 && sent < 6 && legit == sent)) ||
  ztna_fail "expected fewer than 6 checks to $hostile_ip:7002 (status $sent, counted $legit)"
jq -e '.paths.checks_over_budget == 6 - .paths.checks_sent
  and .paths.check_budget.unvalidated_bytes <= 3 * .paths.check_budget.signaling_bytes' \
  <<<"$s" >/dev/null || ztna_fail "budget: $(jq -c .paths <<<"$s")"
all_zero || ztna_fail "packets left b toward forbidden addresses: $(forbidden_counters)"

# Nothing more after a while (the connector opens no round of its own).
some_forbidden() { ! all_zero; }
ztna_assert_never 2 "packets left b toward forbidden addresses" some_forbidden

# The counters would have seen such packets: one datagram to each from b's namespace.
natlab_exec b "$ZTNA_PYTHON" - "$LAB_BACKEND_PORT" <<'EOF' || ztna_fail "control datagrams from b"
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for dest in [("127.0.0.1", int(sys.argv[1])), ("169.254.169.254", 80), ("224.0.0.251", 5353)]:
    s.sendto(b"control", dest)
EOF
[[ $(forbidden_counters) == "loopback 1, metadata 1, multicast 1, any forbidden 3" ]] ||
  ztna_fail "the counters missed the control datagrams: $(forbidden_counters)"
ztna_log "control datagrams counted: $(forbidden_counters)"
ztna_pass
