#!/usr/bin/env bash
# The conntrack trap (DESIGN D9): NATs whose firewall lets unsolicited inbound packets reach the
# router itself. A check that arrives before the router's own host has sent claims the tuple,
# and the router then maps that host's outgoing flow to another port. Peer-reflexive candidates
# learned from the checks must still find the direct path between two such NATs.
# shellcheck source-path=SCRIPTDIR/../natlab source=lab_test.sh
source "$(dirname "$0")/../natlab/lab_test.sh"

lab_test_setup

# eim/eif: inbound checks are DNATed to the host before they can reach the router itself.
# eim/adf: whichever side's first check arrives early is claimed by the other router, whose own
# flow then leaves from another port; address-dependent filtering lets that port in from the
# peer's address, the peer learns it as a peer-reflexive candidate, and the path comes up.
for filt in eif adf; do
  natlab_topo_two_nats --mapping eim --filtering "$filt" --firewall off
  lab_case_start
  lab_case_download 40M
  got=$(lab_case_outcome)
  lab_case_check_download
  ztna_log "firewall off, eim/$filt both sides: $got"
  [[ ${got%% *} == direct ]] || ztna_fail "expected a direct path with eim/$filt and the firewall off, got: $got"
  lab_case_stop
done
# eim/apdf on both sides: the claimed tuple moves one side's flow to a port the other side's
# port-dependent filter never lets in. In the lab, with no delay between the routers, the first
# check always arrives before the other side has sent, so the session stays on the relay (and
# works there). The outcome is logged, not asserted: a real path's delay can let it through.
natlab_topo_two_nats --mapping eim --filtering apdf --firewall off
lab_case_start
lab_case_download 40M
got=$(lab_case_outcome)
lab_case_check_download
ztna_log "firewall off, eim/apdf both sides: $got (the conntrack trap)"
lab_case_stop
ztna_pass
