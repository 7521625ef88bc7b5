#!/usr/bin/env bash
# One public peer: the connector sits on the internet segment with no NAT, the agent behind a
# home NAT. A direct path comes up.
# shellcheck source-path=SCRIPTDIR/../natlab source=lab_test.sh
source "$(dirname "$0")/../natlab/lab_test.sh"

lab_test_setup

natlab_topo_public_peer --mapping eim --filtering apdf
lab_case_start
lab_case_download 40M
got=$(lab_case_outcome)
lab_case_check_download
[[ ${got%% *} == direct ]] || ztna_fail "expected a direct path, got: $got"
ztna_pass
