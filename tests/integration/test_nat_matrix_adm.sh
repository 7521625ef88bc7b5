#!/usr/bin/env bash
# NAT matrix, agent behind a NAT with adm mapping: see tests/natlab/nat_matrix.sh.
# shellcheck source-path=SCRIPTDIR/../natlab source=lab_test.sh
source "$(dirname "$0")/../natlab/lab_test.sh"

lab_matrix adm
