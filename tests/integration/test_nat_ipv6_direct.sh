#!/usr/bin/env bash
# IPv6 beside IPv4 NAT, as home networks have it: both peers sit behind symmetric IPv4 NATs
# (apdm mapping, apdf filtering), and their routers give their LANs global IPv6 addresses
# (2001:db8:N::/64) behind stateful firewalls, with no NAT66. Three cases, each with a download
# that starts with the session (so on the relay, before any check) and must arrive intact:
#   1. peers on IPv4-only sockets: the IPv4 pairs cannot go direct (neither side's port can be
#      known in advance), so the session stays on the relay; the baseline for the next two;
#   2. peers on dual-stack sockets, control connections over IPv4: the server-reflexive
#      candidate is IPv4 only, the IPv6 host candidates are global, and the simultaneous open
#      through both firewalls takes the session direct over IPv6, never over IPv4;
#   3. the same with the control connections over IPv6 (address discovery sees the IPv6 host
#      address): the IPv4 host candidates are still offered, and the session goes direct over
#      IPv6.
# shellcheck source-path=SCRIPTDIR/../natlab source=../natlab/lab_test.sh
source "$(dirname "$0")/../natlab/lab_test.sh"

t_test=$(ztna_now_ms)
lab_test_setup
LAB_CASE_FILE_SIZE=$((16 << 20))
ztna_random_file "$ZTNA_TMP/www/case.bin" "$LAB_CASE_FILE_SIZE"
# 16 MiB at 8 MB/s: about 2 s, so the move onto the direct path (tens of ms) happens under it.
rate=8M

topology() {
  natlab_topo_two_nats --mapping apdm --filtering apdf --ipv6
}

# paths_of NAME: the first session's path state.
paths_of() {
  ztna_json "$1" | jq -c '.sessions[0].paths'
}

# expect_local NAME TYPE ADDR_PREFIX: NAME's session offers a TYPE candidate at ADDR_PREFIX...
expect_local() {
  jq -e --arg t "$2" --arg p "$3" \
    'any(.candidates.local[]; .type == $t and (.address | startswith($p)))' \
    <<<"$(paths_of "$1")" >/dev/null ||
    ztna_fail "$1 offers no $2 candidate at $3...: $(paths_of "$1" | jq -c '.candidates.local')"
}

# expect_direct_v6 NAME REMOTE_IP: NAME's first session is on a direct path to [REMOTE_IP]:port,
# and no pair toward an IPv4 address succeeded (the IPv4 side stayed where case 1 left it).
expect_direct_v6() {
  local s remote
  s=$(lab_session_json "$1")
  [[ $(jq -r .path <<<"$s") == direct ]] || ztna_fail "$1: session not direct: $(jq -c .paths <<<"$s")"
  remote=$(jq -r '.paths.direct_remote // ""' <<<"$s")
  [[ $remote == "[$2]:"* ]] || ztna_fail "$1: direct remote '$remote' is not [$2]:port"
  if jq -e 'any(.paths.pairs[]; .state == "succeeded" and (.pair | split(" -> ")[1] | test(" \\[") | not))' \
    <<<"$s" >/dev/null; then
    ztna_fail "$1: an IPv4 pair succeeded: $(jq -c '[.paths.pairs[] | select(.state == "succeeded")]' <<<"$s")"
  fi
}

# run_case NAME: the topology, the daemons (with LAB_PEER_LISTEN and LAB_INTERMEDIATE_IP as the
# caller set them) and the download.
run_case() {
  ztna_log "case: $1"
  topology
  lab_case_start
  lab_case_download "$rate"
}

# --- 1. IPv4 only: the relay is all there is -----------------------------------------------------
LAB_PEER_LISTEN=0.0.0.0:0 run_case "IPv4-only sockets, symmetric NAT on both sides"
got=$(lab_case_outcome)
[[ $got == relay ]] ||
  ztna_fail "the IPv4 pair went direct between two symmetric NATs ($got): the baseline is wrong"
ztna_jq agent1 '.sessions[0].paths.candidates.local | all(.address | startswith("[") | not)' \
  >/dev/null || ztna_fail "an IPv4-only socket offered IPv6 candidates"
ztna_log "IPv4 only: relay after $(paths_of agent1 | jq -c '{rounds, checks_sent, phase}')"
lab_case_check_download
lab_case_stop

# --- 2 and 3. Dual-stack sockets, control over IPv4, then over IPv6 --------------------------------
declare -a summary=()
for control in 203.0.113.10 2001:db8::10; do
  t_case=$(ztna_now_ms)
  LAB_PEER_LISTEN='[::]:0' LAB_INTERMEDIATE_IP=$control run_case \
    "dual-stack sockets, control connections to $control"
  a6=$(natlab_addr6 a) b6=$(natlab_addr6 b) a4=$(natlab_addr a) b4=$(natlab_addr b)

  # Address discovery follows the control connection's family.
  observed=$(ztna_json agent1 | jq -r '.control.observed_address')
  if [[ $control == *:* ]]; then
    [[ $observed == "[$a6]:"* ]] || ztna_fail "observed address $observed, expected [$a6]:port"
  else
    [[ $observed == "$(natlab_public_addr r1):"* ]] ||
      ztna_fail "observed address $observed, expected $(natlab_public_addr r1):port"
  fi

  ztna_wait_json agent1 10 "agent1's session on a direct path" \
    'any(.sessions[]?; .path == "direct")'
  t_direct=$(ztna_now_ms)
  lab_case_download_running ||
    ztna_fail "the download ended before the session went direct: make it longer"
  ztna_wait_json conn1 5 "conn1's session on a direct path" 'any(.sessions[]?; .path == "direct")'

  # Both families offered by both ends, whichever family the control connection uses.
  expect_local agent1 host "[$a6]:"
  expect_local agent1 host "$a4:"
  expect_local conn1 host "[$b6]:"
  expect_local conn1 host "$b4:"
  # No NAT66: over IPv6 the observed address is the host candidate itself, not offered twice.
  if [[ $control != *:* ]]; then
    expect_local agent1 srflx "$(natlab_public_addr r1):"
    expect_local conn1 srflx "$(natlab_public_addr r2):"
  fi

  expect_direct_v6 agent1 "$b6"
  expect_direct_v6 conn1 "$a6"
  # The agent nominates: the pair it selected joins the two global IPv6 host addresses.
  # shellcheck disable=SC2016 # $a and $b are jq's
  ztna_jq agent1 '.sessions[0].paths.selected_pair | startswith("host [" + $a + "]:") and
    contains(" -> host [" + $b + "]:")' --arg a "$a6" --arg b "$b6" >/dev/null ||
    ztna_fail "selected pair: $(paths_of agent1 | jq -r '.selected_pair // "none"')"
  lab_case_check_download
  t_done=$(ztna_now_ms)
  p=$(paths_of agent1)
  line="control $control: direct over IPv6 after $(jq -r .time_to_direct_ms <<<"$p") ms"
  line+=" (validated after $(jq -r '.time_to_validated_ms // "?"' <<<"$p") ms),"
  line+=" $(jq -r .checks_sent <<<"$p") checks sent by the agent,"
  line+=" $(paths_of conn1 | jq -r .checks_sent) by the connector;"
  line+=" pair $(jq -r '.selected_pair // "?"' <<<"$p");"
  line+=" download intact $((t_done - t_direct)) ms after; case $((t_done - t_case)) ms"
  ztna_log "$line"
  summary+=("$line")
  lab_case_stop
done

printf '%s\n' "${summary[@]}" >&2
ztna_log "test took $(($(ztna_now_ms) - t_test)) ms"
ztna_pass
