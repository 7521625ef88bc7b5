#!/usr/bin/env bash
# The intermediate restarts under a running agent and connector: SIGTERM must make it exit 0 within
# a deadline; a new intermediate on the same port with the same certificates must see both peers
# register again, both must report "connected", and a new fetch through the tunnel must succeed.
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

ztna_setup
ztna_make_certs
ztna_random_file "$ZTNA_TMP/www/blob.bin" $((4 << 20))
ztna_start_web_stack
web_port=$ZTNA_WEB_PORT
ztna_fetch "http://127.0.0.1:$web_port/blob.bin" "$ZTNA_TMP/before.bin" 30
cmp -s "$ZTNA_TMP/www/blob.bin" "$ZTNA_TMP/before.bin" || ztna_fail "content differs before restart"
ztna_log "fetch before restart ok"

old_pid=${ZTNA_PID_OF[intermediate]}
t0=$(ztna_now_ms)
ztna_stop intermediate 10 # fails the test unless it exits 0 within 10 s (scaled)
ztna_log "intermediate (pid $old_pid) stopped in $(($(ztna_now_ms) - t0)) ms"

ztna_start_intermediate # same ZTNA_INT_PORT, same certificates
t0=$(ztna_now_ms)
ztna_wait_json intermediate 60 "agent1 and conn1 registered again" \
  '[.peers[]?.name] | (index("agent1") != null) and (index("conn1") != null)'
ztna_wait_connected conn1 agent1
ztna_wait_service web
ztna_log "agent and connector back in $(($(ztna_now_ms) - t0)) ms"

ztna_fetch "http://127.0.0.1:$web_port/blob.bin" "$ZTNA_TMP/after.bin" 60
cmp -s "$ZTNA_TMP/www/blob.bin" "$ZTNA_TMP/after.bin" || ztna_fail "content differs after restart"
ztna_log "fetch after restart ok"

ztna_pass
