#!/usr/bin/env bash
# Same LAN: agent and connector behind one NAT that does not hairpin. Their host candidates
# connect straight across the LAN and win; no packet of the session goes through the NAT.
# shellcheck source-path=SCRIPTDIR/../natlab source=lab_test.sh
source "$(dirname "$0")/../natlab/lab_test.sh"

lab_test_setup

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
