# shellcheck shell=bash source-path=SCRIPTDIR
# What a NAT-lab integration test sources: lib.sh, the lab (natlab.sh), the daemons inside it
# (lab_daemons.sh), an etcd cluster inside it (lab_etcd.sh), one case at a time (nat_case.sh) and
# the matrix driver (nat_matrix.sh).
# lab_test_setup starts a run: temp dir and traps, the lab, the deployment's certificates.

# shellcheck source=../integration/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../integration/lib.sh"
# shellcheck source=natlab.sh
source "$ZTNA_REPO/tests/natlab/natlab.sh"
# shellcheck source=lab_daemons.sh
source "$ZTNA_REPO/tests/natlab/lab_daemons.sh"
# shellcheck source=lab_etcd.sh
source "$ZTNA_REPO/tests/natlab/lab_etcd.sh"
# shellcheck source=nat_case.sh
source "$ZTNA_REPO/tests/natlab/nat_case.sh"
# shellcheck source=nat_matrix.sh
source "$ZTNA_REPO/tests/natlab/nat_matrix.sh"

# shellcheck disable=SC2119 # lib.sh's helpers take optional arguments
lab_test_setup() {
  ztna_setup
  natlab_init
  lab_certs
}
