#!/usr/bin/env bash
# NAT behaviour discovery (RFC 5780) in the NAT lab, against the intermediate's STUN service with
# an alternate address and port: `ztna-agent netcheck` behind each kind of router reports the
# router's mapping, filtering, port allocation and hairpinning as the lab built them, and a running
# agent reports the same in its status (the discovery runs on its one socket when it registers).
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

# The intermediate with a second address, for OTHER-ADDRESS and CHANGE-REQUEST.
natlab_public_host intermediate "$LAB_INTERMEDIATE_IP" 203.0.113.11
natlab_router reim --mapping eim --filtering apdf
natlab_router reif --mapping eim --filtering eif --hairpin off
natlab_router radm --mapping adm --filtering adf
natlab_router rapdm --mapping apdm --filtering apdf
natlab_router rseq --mapping seq --filtering apdf
for r in reim reif radm rapdm rseq; do natlab_host "h-$r" "$r"; done
lab_start_intermediate intermediate --stun-alternate-address 203.0.113.11 --stun-alternate-port 4434

# check HOST MAPPING FILTERING ALLOCATION HAIRPIN HARD: netcheck --json inside HOST.
check() {
  local host=$1 out field want got
  out=$(lab_in "$host" "$ZTNA_AGENT_BIN" netcheck --intermediate "$LAB_INTERMEDIATE_IP:$LAB_INTERMEDIATE_PORT" \
    --listen 0.0.0.0:0 --json) || ztna_fail "netcheck in $host failed: $out"
  for pair in "mapping=$2" "filtering=$3" "allocation=$4" "hairpin=$5" "hard=$6" "rfc5780=true" "ipv4=true"; do
    field=${pair%%=*} want=${pair#*=}
    got=$(jq -r ".$field" <<<"$out")
    [[ $got == "$want" ]] || ztna_fail "$host: $field is '$got', expected '$want': $out"
  done
  [[ $(jq -r '.servers[0].rtt_ms' <<<"$out") != null ]] || ztna_fail "$host: no RTT: $out"
  ztna_log "$host: $(jq -r .summary <<<"$out"), RTT $(jq -r '.servers[0].rtt_ms' <<<"$out") ms"
  LAST_NETCHECK=$out
}

check h-reim endpoint-independent address-and-port-dependent port-preserving yes false
check h-reif endpoint-independent endpoint-independent port-preserving no false
check h-radm address-dependent address-dependent random yes true
check h-rapdm address-and-port-dependent address-and-port-dependent random yes true
check h-rseq address-and-port-dependent address-and-port-dependent sequential yes false
[[ $(jq -r .port_step <<<"$LAST_NETCHECK") == 1 ]] || ztna_fail "seq: step is not 1: $LAST_NETCHECK"

# The human form says the same.
human=$(lab_in h-rapdm "$ZTNA_AGENT_BIN" netcheck --intermediate "$LAB_INTERMEDIATE_IP:$LAB_INTERMEDIATE_PORT" \
  --listen 0.0.0.0:0)
grep -q "mapping: *address-and-port-dependent, port changed" <<<"$human" ||
  ztna_fail "netcheck's human output lacks the mapping: $human"
grep -q "direct paths: hard" <<<"$human" || ztna_fail "netcheck's human output lacks the verdict: $human"

# A running agent runs the same discovery on its own socket once registered.
lab_start_peer agent agent1 h-rseq --expose "web=tcp://127.0.0.1:9000"
ztna_wait_connected agent1
nat_done() { [[ $(ztna_json agent1 | jq -r .nat.state) == "done" ]]; }
ztna_wait_for 20 "the agent's NAT discovery" nat_done
status=$(ztna_json agent1 | jq -c .nat)
[[ $(jq -r .allocation <<<"$status") == sequential ]] || ztna_fail "agent status: $status"
[[ $(jq -r .mapping <<<"$status") == address-and-port-dependent ]] || ztna_fail "agent status: $status"
ztna_wait_for 5 "the NAT log line" grep -q "NAT: address-and-port-dependent mapping" "$(ztna_logfile agent1)"

# No intermediate answering STUN: a clear failure within the retransmission schedule.
t0=$(ztna_now_ms)
if out=$(lab_in h-reim "$ZTNA_AGENT_BIN" netcheck --intermediate 203.0.113.99:4433 --listen 0.0.0.0:0); then
  ztna_fail "netcheck succeeded without an intermediate: $out"
fi
grep -q "no intermediate answered" <<<"$out" || ztna_fail "netcheck did not say why: $out"
ztna_log "no intermediate: failed after $(($(ztna_now_ms) - t0)) ms: $(tail -1 <<<"$out")"

ztna_pass
