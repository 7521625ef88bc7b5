#!/usr/bin/env bash
# Mapping flush: while a session runs on a direct path under a download, both NATs forget every
# mapping (conntrack flushed). The session recovers (on the relay, then direct again, or direct
# throughout) and the download completes intact; pings answer over the direct path again.
# shellcheck source-path=SCRIPTDIR/../natlab source=lab_test.sh
source "$(dirname "$0")/../natlab/lab_test.sh"

lab_test_setup

natlab_topo_two_nats --mapping eim --filtering apdf
LAB_CASE_FILE_SIZE=$((16 << 20))
lab_case_start
lab_case_download 4M
ztna_wait_json agent1 10 "the session on the direct path" 'any(.sessions[]?; .path == "direct")'
natlab_flush_conntrack r1
natlab_flush_conntrack r2
ztna_log "both NATs flushed"
lab_case_check_download

# Recovered means a ping answered over the direct path after the flush. Whether the session got
# there through a fallback (the NATs picked new ports) or stayed direct (the old ports came back
# in time) depends on which side sent first, so the test takes either and logs which.
ping_direct() {
  "$ZTNA_AGENT_BIN" ping web -c 1 --status-socket "${ZTNA_SOCK[agent1]}" | grep -q " via direct "
}
ztna_wait_for 30 "a ping answered over the direct path after the flush" ping_direct
ztna_log "recovered: $(ztna_json agent1 | jq -c '.sessions[0].paths | {upgrades, fallbacks, selected_pair}')"
out=$("$ZTNA_AGENT_BIN" ping web -c 2 --status-socket "${ZTNA_SOCK[agent1]}")
ztna_log "$out"
ztna_pass
