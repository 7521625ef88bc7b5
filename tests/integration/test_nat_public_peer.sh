#!/usr/bin/env bash
# One public peer: the connector sits on the internet segment with no NAT, the agent behind a
# home NAT. A direct path comes up.
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

natlab_topo_public_peer --mapping eim --filtering apdf
lab_case_start
lab_case_download 40M
got=$(lab_case_outcome)
lab_case_check_download
[[ ${got%% *} == direct ]] || ztna_fail "expected a direct path, got: $got"
ztna_pass
