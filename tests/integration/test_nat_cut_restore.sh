#!/usr/bin/env bash
# Cut and restore: a session on a direct path between two home NATs carries a rate-limited
# download; a firewall rule on the agent's router cuts the direct path in the middle of it. The
# session falls back to the relay and the download completes intact; once the rule is gone the
# session returns to the direct path.
# shellcheck source-path=SCRIPTDIR/../natlab source=lab_test.sh
source "$(dirname "$0")/../natlab/lab_test.sh"

lab_test_setup

natlab_topo_two_nats --mapping eim --filtering apdf
LAB_CASE_FILE_SIZE=$((24 << 20))
lab_case_start
lab_case_download 3M
ztna_wait_json agent1 10 "the session on the direct path" 'any(.sessions[]?; .path == "direct")'

natlab_block r1
t_cut=$(ztna_now_ms)
ztna_log "direct path cut on r1 (UDP dropped except to the intermediate)"
ztna_wait_json agent1 15 "the fallback to the relay" \
  'any(.sessions[]?; .path == "relay" and .paths.fallbacks == 1)'
ztna_log "fell back to the relay after $(($(ztna_now_ms) - t_cut)) ms"
lab_case_download_running || ztna_fail "the download ended before the fallback: make it longer"
# The connector follows at once (it must not wait for its validation of the relay path, which
# it started when it left it, to time out).
ztna_wait_json conn1 3 "the connector following onto the relay" 'any(.sessions[]?; .path == "relay")'


natlab_unblock r1
t_restore=$(ztna_now_ms)
ztna_wait_json agent1 30 "the return to the direct path" \
  'any(.sessions[]?; .path == "direct" and .paths.upgrades == 2)'
ztna_log "back on the direct path $(($(ztna_now_ms) - t_restore)) ms after the restore"
lab_case_check_download

# Again with an idle session: after the fallback the next download starts on the relay, and the
# connector follows at once instead of staying on the dead path until its validation of the
# relay path (started when it left it) times out.
natlab_block r1
ztna_wait_json agent1 15 "the second fallback" 'any(.sessions[]?; .path == "relay" and .paths.fallbacks == 2)'
lab_case_download 100M
ztna_wait_json conn1 3 "the connector following onto the relay" 'any(.sessions[]?; .path == "relay")'
lab_case_check_download
natlab_unblock r1
ztna_pass
