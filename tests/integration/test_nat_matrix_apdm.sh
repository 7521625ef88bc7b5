#!/usr/bin/env bash
# NAT matrix, agent behind a NAT with apdm mapping: see tests/natlab/nat_matrix.sh.
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"
# shellcheck source=../natlab/natlab.sh
source "$ZTNA_REPO/tests/natlab/natlab.sh"
# shellcheck source=../natlab/lab_daemons.sh
source "$ZTNA_REPO/tests/natlab/lab_daemons.sh"
# shellcheck source=../natlab/nat_case.sh
source "$ZTNA_REPO/tests/natlab/nat_case.sh"
# shellcheck source=../natlab/nat_matrix.sh
source "$ZTNA_REPO/tests/natlab/nat_matrix.sh"

lab_matrix apdm
