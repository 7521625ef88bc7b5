#!/usr/bin/env bash
# Candidates change under a live session: the agent's laptop gains a second address on its LAN
# while the session runs direct under a download. The agent gathers it (every 5 s), signals its
# new candidates, and a new round of checks starts on both ends; the session stays on (or returns
# to) the direct path, the new candidate shows in status, and the download arrives intact.
# shellcheck source-path=SCRIPTDIR/../natlab source=lab_test.sh
source "$(dirname "$0")/../natlab/lab_test.sh"

lab_test_setup

natlab_topo_two_nats --mapping eim --filtering apdf
LAB_CASE_FILE_SIZE=$((32 << 20))
lab_case_start
lab_case_download 4M
ztna_wait_json agent1 10 "the session on the direct path" 'any(.sessions[]?; .path == "direct")'
round=$(lab_session_json agent1 | jq -r '.paths.round')

# A free address in a's LAN, next to its own.
own=$(natlab_addr a)
extra=${own%.*}.$(((${own##*.} + 100) % 250 + 2))
natlab_exec a ip addr add "$extra/24" dev eth0
ztna_log "added $extra to a (round $round until now)"

ztna_wait_json agent1 15 "the new host candidate gathered and a new round of checks" \
  'any(.sessions[]?; (.paths.round > ($r | tonumber))
       and any(.paths.candidates.local[]; .type == "host" and (.address | startswith($a + ":"))))' \
  --arg r "$round" --arg a "$extra"
# The intermediate coordinated that round: both ends started their checks on its StartChecks.
ztna_wait_counter intermediate check_rounds_started 2 5
ztna_wait_json agent1 15 "the session direct after the new round" \
  'any(.sessions[]?; .path == "direct" and .paths.phase == "direct")'
lab_case_check_download
s=$(lab_session_json agent1)
ztna_log "after the change: $(jq -c '.paths | {round, upgrades, fallbacks, selected_pair}' <<<"$s")"
ztna_log "local candidates: $(jq -c '[.paths.candidates.local[] | "\(.type) \(.address)"]' <<<"$s")"
out=$("$ZTNA_AGENT_BIN" ping web -c 1 --status-socket "${ZTNA_SOCK[agent1]}")
ztna_log "$out"
grep -q " via direct " <<<"$out" || ztna_fail "ping did not go direct after the new round"
ztna_pass
