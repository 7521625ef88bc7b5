#!/usr/bin/env bash
# Mapping flush: while a session runs on a direct path under a download, both NATs forget every
# mapping (conntrack flushed). The session recovers (on the relay, then direct again, or direct
# throughout) and the download completes intact; pings still answer.
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
ztna_wait_json agent1 30 "the session direct again" 'any(.sessions[]?; .path == "direct")'
out=$("$ZTNA_AGENT_BIN" ping web -c 2 --status-socket "${ZTNA_SOCK[agent1]}")
ztna_log "$out"
ztna_pass
