# shellcheck shell=bash
# One NAT-lab case, shared by the NAT matrix tests and scripts/bench-p2p: a lab topology, the
# three daemons, a download through the tunnel that starts with the session (so before any
# punching), and the outcome read from the agent's status. Source lib.sh, natlab.sh and
# lab_daemons.sh first, call ztna_setup, natlab_init and lab_certs once.

# lab_expect_direct MAP_A FILT_A MAP_B FILT_B: prints "direct" or "relay", the outcome our hole
# punching must reach between peers behind two different NATs (RFC 4787 terms). Direct when:
#   - both mappings are endpoint-independent: each side's checks go to the other's
#     server-reflexive address, and the simultaneous open (StartChecks) opens both filters;
#   - one side has endpoint-independent filtering, whatever its mapping: its server-reflexive
#     mapping (the one toward the intermediate) takes packets from anyone, so the other side's
#     checks reach it from whatever port that side's NAT picks, and the answers return through
#     the same conntrack entry;
#   - one side has endpoint-independent mapping and address-dependent filtering: once it has
#     sent to the other side's address, that address may reach its one mapping from any port;
#     the other side's port is learned as a peer-reflexive candidate.
# Otherwise relay: the port the other side's NAT will use cannot be known in advance (no port
# prediction yet).
lab_expect_direct() {
  local ma=$1 fa=$2 mb=$3 fb=$4
  if [[ $ma == eim && $mb == eim ]] || [[ $fa == eif || $fb == eif ]] ||
    [[ $ma == eim && $fa == adf ]] || [[ $mb == eim && $fb == adf ]]; then
    echo direct
  else
    echo relay
  fi
}

LAB_CASE_FILE_SIZE=${LAB_CASE_FILE_SIZE:-$((16 << 20))}

# lab_case_start: intermediate, backend + connector on b, agent on a (topology already built).
lab_case_start() {
  lab_start_intermediate intermediate
  [[ -f $ZTNA_TMP/www/case.bin ]] || ztna_random_file "$ZTNA_TMP/www/case.bin" "$LAB_CASE_FILE_SIZE"
  lab_start_backend b "$ZTNA_TMP/www"
  lab_start_peer connector conn1 b --service "web=tcp://127.0.0.1:$LAB_BACKEND_PORT"
  lab_start_peer agent agent1 a --expose "web=tcp://127.0.0.1:9000"
  ztna_wait_connected conn1 agent1
  ztna_wait_service web
}

# lab_case_stop: stop the processes of a case and remove its lab.
lab_case_stop() {
  local n
  for n in agent1 conn1 nginx-b intermediate; do ztna_stop "$n"; done
  natlab_down
}

# lab_case_download RATE: curl on a through the agent, rate-limited so that the session's move
# happens under it. Runs in the background (not through ztna_spawn: its exit is expected);
# lab_case_check_download collects it. curl's own --max-time bounds it.
LAB_CURL_PID=""
lab_case_download() {
  rm -f "$ZTNA_TMP/case.out"
  setpriv --pdeathsig TERM -- ip netns exec "$(natlab_ns a)" curl -sS --fail \
    --max-time "$(ztna_secs 60)" --limit-rate "$1" -o "$ZTNA_TMP/case.out" \
    "http://127.0.0.1:9000/case.bin" 2>"$ZTNA_TMP/case.curl" &
  LAB_CURL_PID=$!
}

# lab_case_check_download: wait for curl, compare checksums.
lab_case_check_download() {
  local rc=0
  wait "$LAB_CURL_PID" || rc=$?
  ((rc == 0)) || ztna_fail "curl failed ($rc): $(cat "$ZTNA_TMP/case.curl")"
  [[ $(ztna_sha256 "$ZTNA_TMP/case.out") == "$(ztna_sha256 "$ZTNA_TMP/www/case.bin")" ]] ||
    ztna_fail "download corrupted: $(stat -c %s "$ZTNA_TMP/case.out") bytes"
}

# lab_case_outcome: waits until the agent's session is direct, or its first round of checks has
# ended without a direct path; prints "direct <ms to direct>" or "relay".
lab_case_outcome() {
  ztna_wait_for 20 "the first round of checks to end" lab_case_round_over
  local s
  s=$(lab_session_json agent1)
  if [[ $(jq -r '.path' <<<"$s") == direct ]]; then
    echo "direct $(jq -r '.paths.time_to_direct_ms' <<<"$s")"
  else
    echo relay
  fi
}

lab_case_round_over() {
  local s
  s=$(lab_session_json agent1)
  [[ $s != null ]] || return 1
  jq -e '.path == "direct" or .paths.phase == "waiting to retry" or .paths.rounds > 1' \
    <<<"$s" >/dev/null
}

lab_case_download_running() {
  kill -0 "$LAB_CURL_PID" 2>/dev/null
}
