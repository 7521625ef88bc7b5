#!/usr/bin/env bash
# Double NAT: the agent behind a home router behind a carrier-grade NAT (both endpoint-independent
# mapping, port-restricted filtering), the connector behind a home NAT. The reflexive address the
# intermediate sees is the CGNAT's; a direct path comes up through both NATs.
# shellcheck source-path=SCRIPTDIR/../natlab source=lab_test.sh
source "$(dirname "$0")/../natlab/lab_test.sh"

lab_test_setup

natlab_topo_double_nat --mapping eim --filtering apdf
lab_case_start
lab_case_download 40M
got=$(lab_case_outcome)
lab_case_check_download
[[ ${got%% *} == direct ]] || ztna_fail "expected a direct path, got: $got"
observed=$(ztna_json agent1 | jq -r '.control.observed_address')
[[ $observed == "$(natlab_public_addr cgnat):"* ]] || ztna_fail "observed $observed, not the CGNAT's address"
ztna_pass
