# shellcheck shell=bash
# The NAT matrix (test_nat_matrix_*.sh): for the agent's NAT mapping given, every filtering of
# the agent's NAT against every mapping and filtering of the connector's NAT (27 cases). Each case
# builds two NATs (firewall on: unsolicited inbound is dropped, as home routers do), starts the
# three daemons, starts a download through the tunnel together with the session (so before any
# punching), asserts the outcome lab_expect_direct predicts and the download's checksum.
# Prints one line per case and a table at the end.

# lab_matrix MAPPING_A [FIREWALL]
lab_matrix() {
  local ma=$1 fw=${2:-on} fa mb fb want got line failures=0
  local -a table=()
  lab_test_setup
  ztna_random_file "$ZTNA_TMP/www/case.bin" "$LAB_CASE_FILE_SIZE"
  for fa in eif adf apdf; do
    for mb in eim adm apdm; do
      for fb in eif adf apdf; do
        natlab_topo_two_nats --mapping "$ma" --filtering "$fa" --firewall "$fw" -- \
          --mapping "$mb" --filtering "$fb" --firewall "$fw"
        lab_case_start
        lab_case_download 40M
        got=$(lab_case_outcome)
        lab_case_check_download
        want=$(lab_expect_direct "$ma" "$fa" "$mb" "$fb")
        line=$(printf '%-4s %-4s | %-4s %-4s | expect %-6s | got %s' "$ma" "$fa" "$mb" "$fb" "$want" "$got")
        ztna_log "case $line"
        table+=("$line")
        if [[ ${got%% *} != "$want" ]]; then
          failures=$((failures + 1))
          ztna_log "MISMATCH: $line"
          ztna_json agent1 | jq -c '.sessions[0].paths | {phase, rounds, pairs}' >&2 || true
        fi
        lab_case_stop
      done
    done
  done
  printf 'agent NAT  | connector NAT | outcome (firewall %s)\n' "$fw" >&2
  printf '%s\n' "${table[@]}" >&2
  ((failures == 0)) || ztna_fail "$failures of ${#table[@]} cases did not reach the expected outcome"
  ztna_pass
}
