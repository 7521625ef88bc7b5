#!/usr/bin/env bash
# Same LAN: agent and connector behind one NAT that does not hairpin. Their host candidates
# connect straight across the LAN and win; no packet of the session goes through the NAT.
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"
# shellcheck source=../natlab/natlab.sh
source "$ZTNA_REPO/tests/natlab/natlab.sh"
# shellcheck source=../natlab/lab_daemons.sh
source "$ZTNA_REPO/tests/natlab/lab_daemons.sh"
# shellcheck source=../natlab/nat_case.sh
source "$ZTNA_REPO/tests/natlab/nat_case.sh"

ztna_setup
natlab_init
lab_certs

natlab_topo_same_lan --mapping eim --filtering apdf --hairpin off
lab_case_start
lab_case_download 40M
got=$(lab_case_outcome)
lab_case_check_download
[[ ${got%% *} == direct ]] || ztna_fail "expected a direct path, got: $got"
pair=$(lab_session_json agent1 | jq -r '.paths.selected_pair')
ztna_log "selected pair: $pair"
[[ $pair == "host "*" -> host $(natlab_addr b):"* ]] || ztna_fail "host candidates did not win: $pair"
ztna_pass
