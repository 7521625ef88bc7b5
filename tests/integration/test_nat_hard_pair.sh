#!/usr/bin/env bash
# Hard on both sides: two symmetric NATs with random ports (address-and-port-dependent mapping and
# filtering). Each end learns its NAT's kind from the intermediate's STUN service (RFC 5780, an
# alternate address and port configured) and signals it with its candidates; no IPv4 path can
# exist between two such NATs, so the session settles on the relay within a second of its start
# without a single check (no storm of probes), and data flows on the relay.
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"
# shellcheck source=../natlab/natlab.sh
source "$ZTNA_REPO/tests/natlab/natlab.sh"
# shellcheck source=../natlab/lab_daemons.sh
source "$ZTNA_REPO/tests/natlab/lab_daemons.sh"

ztna_setup
natlab_init
lab_certs
ztna_require_tools jq

natlab_public_host intermediate "$LAB_INTERMEDIATE_IP" 203.0.113.11
natlab_topo_two_nats --mapping apdm --filtering apdf
lab_start_intermediate intermediate --stun-alternate-address 203.0.113.11 --stun-alternate-port 4434
ztna_random_file "$ZTNA_TMP/www/blob.bin" $((2 << 20))
lab_start_backend b "$ZTNA_TMP/www"
lab_start_peer connector conn1 b --service "web=tcp://127.0.0.1:$LAB_BACKEND_PORT"
lab_start_peer agent agent1 a --expose "web=tcp://127.0.0.1:9000"
ztna_wait_connected conn1
ztna_wait_connected agent1

# Both ends know their NAT is hard before the session starts.
nat_hard() { [[ $(ztna_json "$1" | jq -r '.nat.state + " " + (.nat.hard | tostring)') == "done true" ]]; }
ztna_wait_for 20 "conn1's NAT discovery" nat_hard conn1
ztna_wait_for 20 "agent1's NAT discovery" nat_hard agent1

# The session starts with the first connection, which also carries data on the relay.
lab_fetch a "http://127.0.0.1:9000/blob.bin" "$ZTNA_TMP/got.bin" 30
cmp -s "$ZTNA_TMP/www/blob.bin" "$ZTNA_TMP/got.bin" || ztna_fail "content differs"

settled() { grep -q "no direct path can exist in round 1" "$(ztna_logfile "$1")"; }
ztna_wait_for 10 "agent1 to settle on the relay" settled agent1
ztna_wait_for 10 "conn1 to settle on the relay" settled conn1

# log_ms NAME PATTERN: the time of day (ms) of the first log line of NAME matching PATTERN.
log_ms() {
  local t
  t=$(grep -m1 "$2" "$(ztna_logfile "$1")" | awk '{ print $1 }')
  [[ -n $t ]] || ztna_fail "$1: no log line matching '$2'"
  date -d "${t/T/ }" +%s%3N
}
start=$(log_ms agent1 "starting end-to-end handshake")
settle=$(log_ms agent1 "no direct path can exist")
elapsed=$((settle - start))
((elapsed <= 1000)) || ztna_fail "the session settled on the relay ${elapsed} ms after it started (over 1 s)"

sess=$(lab_session_json agent1)
conn_sess=$(lab_session_json conn1)
[[ $(jq -r .path <<<"$sess") == relay ]] || ztna_fail "agent1 not on the relay: $sess"
[[ $(jq -r .paths.phase <<<"$sess") == relay ]] || ztna_fail "agent1 still busy: $sess"
probes=$(jq -r .paths.checks_sent <<<"$sess")
conn_probes=$(jq -r .paths.checks_sent <<<"$conn_sess")
((probes == 0 && conn_probes == 0)) ||
  ztna_fail "checks were sent between two hard NATs: agent $probes, connector $conn_probes"
[[ $(jq -r .paths.candidates_unreachable <<<"$sess") -ge 1 ]] || ztna_fail "no candidate set aside: $sess"
ztna_log "settled on the relay ${elapsed} ms after the session started; probes sent: agent $probes, connector $conn_probes"

ztna_pass
