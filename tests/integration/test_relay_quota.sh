#!/usr/bin/env bash
# The per-session relay quota: with `ztna-intermediate run --relay-session-mbps 8` a relay-only
# transfer is held to about 8 Mbit/s (1 MB/s, both directions of the session together). The
# intermediate drops the frames over the quota (relay_frames_over_quota rises, and its log says
# the quota bites for that session); QUIC's loss recovery and congestion control adapt, and the
# file still arrives intact (sha256).
# Then the per-identity quota: a new intermediate with no session quota and
# `--relay-identity-mbps 8`; the same transfer is held by the identity's bucket
# (relay_frames_over_identity_quota rises, the log names it) and still arrives intact.
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

mbps=8
size=$((4 << 20))

ztna_setup
ztna_make_certs
ztna_random_file "$ZTNA_TMP/www/quota.bin" "$size"
ztna_start_nginx "$ZTNA_TMP/www"
ZTNA_WEB_PORT=$(ztna_free_port tcp)
ztna_start_intermediate --relay-session-mbps "$mbps"
ztna_start_connector conn1 --service "web=tcp://127.0.0.1:$ZTNA_NGINX_PORT"
ztna_start_agent agent1 --expose "web=tcp://127.0.0.1:$ZTNA_WEB_PORT"
ztna_wait_connected conn1 agent1
ztna_wait_service web
ztna_wait_tcp_listener agent1 "$ZTNA_WEB_PORT"

t0=$(ztna_now_ms)
ztna_fetch "http://127.0.0.1:$ZTNA_WEB_PORT/quota.bin" "$ZTNA_TMP/quota.out" 60
t1=$(ztna_now_ms)
[[ $(ztna_sha256 "$ZTNA_TMP/quota.out") == "$(ztna_sha256 "$ZTNA_TMP/www/quota.bin")" ]] ||
  ztna_fail "the file differs ($(stat -c %s "$ZTNA_TMP/quota.out") of $size bytes)"
ms=$((t1 - t0))
# Goodput in kbit/s. The quota counts whole relay frames (QUIC and relay headers, ACKs in the
# other direction) and allows a quarter second of burst, so the payload rate stays at or below
# the quota; far below it would mean the quota hurts more than it should.
kbps=$((size * 8 / ms))
ztna_log "$size bytes intact in $ms ms: $kbps kbit/s under a quota of $mbps Mbit/s"
((kbps <= mbps * 1000 * 110 / 100)) || ztna_fail "$kbps kbit/s: the quota of $mbps Mbit/s did not hold"
((kbps >= mbps * 1000 * 40 / 100)) || ztna_fail "$kbps kbit/s: far below the quota of $mbps Mbit/s"

ztna_jq agent1 'any(.sessions[]; .path == "relay")' >/dev/null ||
  ztna_fail "the transfer did not use the relay: $(ztna_json agent1 | jq -c .sessions)"
sid=$(ztna_json intermediate | jq -r '.sessions[] | select(.agent == "agent1") | .session_id')
over=$(ztna_counter intermediate relay_frames_over_quota)
((over > 0)) || ztna_fail "relay_frames_over_quota is 0: the quota never bit"
grep -qE "session $sid: relay quota spent, dropping frames \(relay_frames_over_quota\)" "$(ztna_logfile intermediate)" ||
  ztna_fail "the intermediate did not log that the quota bites for session $sid"
ztna_log "intermediate: $(grep -m1 -F "session $sid: relay quota spent" "$(ztna_logfile intermediate)" | cut -d' ' -f4-)"
ztna_log "intermediate counters: $(ztna_json intermediate | jq -c '.counters | {relay_frames_forwarded, relay_bytes_forwarded, relay_frames_over_quota}')"
ztna_jq intermediate '.sessions[] | select(.session_id == $s) | .relayed_bytes >= ($n | tonumber)' \
  --arg s "$sid" --arg n "$size" >/dev/null ||
  ztna_fail "session $sid relayed fewer bytes than the file: $(ztna_json intermediate | jq -c .sessions)"

# --- The per-identity quota, alone.
connects=$(ztna_counter conn1 control_connects)
ztna_stop intermediate
ztna_start_intermediate --relay-session-mbps 0 --relay-identity-mbps "$mbps"
ztna_wait_counter conn1 control_connects $((connects + 1)) 30
ztna_wait_connected conn1 agent1
ztna_wait_service web
rm -f "$ZTNA_TMP/quota.out"
t0=$(ztna_now_ms)
ztna_fetch "http://127.0.0.1:$ZTNA_WEB_PORT/quota.bin" "$ZTNA_TMP/quota.out" 60
t1=$(ztna_now_ms)
[[ $(ztna_sha256 "$ZTNA_TMP/quota.out") == "$(ztna_sha256 "$ZTNA_TMP/www/quota.bin")" ]] ||
  ztna_fail "per-identity quota: the file differs"
kbps=$((size * 8 / (t1 - t0)))
ztna_log "per-identity quota: $size bytes intact in $((t1 - t0)) ms: $kbps kbit/s under $mbps Mbit/s per identity"
((kbps <= mbps * 1000 * 110 / 100)) || ztna_fail "$kbps kbit/s: the identity quota of $mbps Mbit/s did not hold"
((kbps >= mbps * 1000 * 40 / 100)) || ztna_fail "$kbps kbit/s: far below the identity quota of $mbps Mbit/s"
over=$(ztna_counter intermediate relay_frames_over_identity_quota)
((over > 0)) || ztna_fail "relay_frames_over_identity_quota is 0: the identity quota never bit"
(($(ztna_counter intermediate relay_frames_over_quota) == 0)) ||
  ztna_fail "the session quota bit although it is off"
grep -qE "session [0-9a-f]{16}: the sender's identity relay quota \(all its sessions together\) spent, dropping frames \(relay_frames_over_identity_quota\)" \
  "$(ztna_logfile intermediate)" || ztna_fail "the intermediate did not log that the identity quota bites"
ztna_log "intermediate counters: $(ztna_json intermediate | jq -c '.counters | {relay_frames_forwarded, relay_frames_over_quota, relay_frames_over_identity_quota}')"

ztna_pass
