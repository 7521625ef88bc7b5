#!/usr/bin/env bash
# Unauthenticated handshakes cannot lock out real peers (DESIGN D6: unauthenticated work is
# bounded).
#
# Part 1, the intermediate's defaults (--retry auto, --max-half-open 256, 16 per source):
#   10 000 spoofed client Initials (2 500 under the sanitizers), genuine ClientHellos from
#   ztna-handshake-load, each from a source address of its own in 127.0.0.0/8 that never
#   answers, arrive at ~1 600 a second (400 under the sanitizers); while
#   they do, the real connector and agent start. The agent must register (through a Retry) and its
#   session must carry a 4 MiB file intact; the spoofed sources never authenticate; Retry is what
#   turned them away (retries_sent > 0); half-open handshakes stay within --max-half-open; every
#   accepted handshake ends authenticated or refused; and the intermediate's memory stays bounded:
#   its peak RSS (VmHWM) may grow by at most RSS_GROWTH_BOUND_KB over its RSS before the flood.
#
# Part 2, --retry never --max-half-open 200 (no address validation at all):
#   100 Initials from ONE source address: the per-source limit (16) drops the rest
#   (handshakes_dropped_source > 0). Then 3 000 from distinct sources: the budget fills and holds
#   (half-open never above 200, handshakes_dropped_budget > 0) while the peers that had
#   authenticated before keep working: a file crosses the tunnel during the flood.
#
# The bound: on a RelWithDebInfo build the intermediate's RSS grew by 7.9 MB from before the
# flood to its peak, in each of three runs (9.5 MB -> 17.5 MB). What it holds: Retry turns on at
# 64 handshakes in progress, so 64 spoofed handshakes at a time are admitted (128 over the whole
# flood), each holding a QUIC connection and a TLS session until its 5 s handshake timeout, at
# about 100 KiB each (scripts/bench-handshakes); plus the two real peers, their session and
# allocator growth that glibc keeps (RSS after the flood stays at the peak). RSS_GROWTH_BOUND_KB =
# 48 MiB is six times that, for slower machines and other allocators, yet it fails long before
# the intermediate keeps state per spoofed Initial: 10 000 half-open handshakes would be ~1 GB,
# and the default budget of 256 about 25 MB. Under ASan (time scale > 1) freed memory sits in
# its quarantine, so the test caps that at 16 MiB and allows 128 MiB.
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

# Initials and their rate: the flood lasts about 6 s (a quarter of the Initials under the
# sanitizers, at a quarter of the rate).
count=$((10000 / ZTNA_TIME_SCALE))
rate=$((1600 / ZTNA_TIME_SCALE))
RSS_GROWTH_BOUND_KB=$((48 * 1024))
if grep -qs '^ZTNA_SANITIZE:BOOL=ON' "$ZTNA_BUILD_DIR/CMakeCache.txt"; then
  export ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=16
  RSS_GROWTH_BOUND_KB=$((128 * 1024))
fi

ztna_setup
LOAD=$ZTNA_BUILD_DIR/tests/ztna-handshake-load
[[ -x $LOAD ]] || ztna_fail "$LOAD not built"
ztna_make_certs
size=$((4 << 20))
ztna_random_file "$ZTNA_TMP/www/file.bin" "$size"
want=$(ztna_sha256 "$ZTNA_TMP/www/file.bin")
ztna_start_nginx "$ZTNA_TMP/www"
web_port=$(ztna_free_port tcp)

load_args() {
  printf '%s\n' --intermediate "127.0.0.1:$ZTNA_INT_PORT" --ca "$ZTNA_CERTS/ca.pem" \
    --cert "$ZTNA_CERTS/agent-agent1.pem" --key "$ZTNA_CERTS/agent-agent1.key"
}
status_kb() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }

# sample: track the intermediate's RSS and half-open count while a flood runs (it runs inside
# ztna_wait_for's polls, whose output goes nowhere: check_budget reports).
peak_rss=0 peak_half_open=0 max_half_open=0 over_budget=""
sample() {
  local r h
  r=$(status_kb "$int_pid" VmRSS)
  ((r <= peak_rss)) || peak_rss=$r
  h=$(ztna_json intermediate | jq -r '.handshakes.half_open') || return 0
  ((h <= peak_half_open)) || peak_half_open=$h
  ((h <= max_half_open)) || over_budget="$h half-open handshakes, over --max-half-open $max_half_open"
}
check_budget() {
  [[ -z $over_budget ]] || ztna_fail "$over_budget"
}
registered() {
  sample
  ztna_jq "$1" '.control.state == "connected"'
}
flood_done() { grep -q '"mode":"spoof"' "$(ztna_logfile "$1")"; }
flood_report() { grep '"mode":"spoof"' "$(ztna_logfile "$1")"; }
sampled_flood_done() {
  sample
  flood_done "$1"
}
half_open_is() {
  sample
  ztna_jq intermediate '.handshakes.half_open == ($n | tonumber)' --arg n "$1"
}
fetch_intact() {
  ztna_fetch "http://127.0.0.1:$web_port/file.bin" "$ZTNA_TMP/file.out" 60
  local got
  got=$(ztna_sha256 "$ZTNA_TMP/file.out")
  [[ $got == "$want" ]] || ztna_fail "sha256 mismatch after the tunnel: got $got, want $want"
}

# ---------------------------------------------------------------------------------------------
ztna_log "part 1: $count spoofed Initials at $rate/s against the defaults; the real peers start meanwhile"
ztna_start_intermediate
int_pid=${ZTNA_PID_OF[intermediate]}
max_half_open=256
rss_before=$(status_kb "$int_pid" VmRSS)
peak_rss=$rss_before
mapfile -t args < <(load_args)
ztna_spawn flood 1 "$LOAD" spoof "${args[@]}" --count "$count" --rate "$rate" --linger
ztna_wait_json intermediate 30 "the flood arriving" \
  '.counters.retries_sent + .counters.handshakes_accepted > 0'
t0=$(ztna_now_ms)
ztna_start_connector conn1 --service "web=tcp://127.0.0.1:$ZTNA_NGINX_PORT"
ztna_start_agent agent1 --expose "web=tcp://127.0.0.1:$web_port"
ztna_wait_for 30 "conn1 registered" registered conn1
ztna_wait_for 30 "agent1 registered" registered agent1
t1=$(ztna_now_ms)
check_budget
flood_done flood && ztna_fail "the flood was over before the real peers had registered ($((t1 - t0)) ms): no overlap to speak of"
ztna_log "conn1 and agent1 registered $((t1 - t0)) ms after they started, during the flood: $(ztna_json intermediate | jq -c '{handshakes, retries_sent: .counters.retries_sent}')"
ztna_wait_service web
ztna_wait_tcp_listener agent1 "$web_port"
fetch_intact
during=$(flood_done flood && echo after || echo during)
ztna_log "4 MiB fetched intact through agent1 $during the flood"

ztna_wait_for 60 "the flood to end" sampled_flood_done flood
ztna_log "flood: $(flood_report flood)"
flood_report flood | jq -e --argjson n "$count" '.sent == $n' >/dev/null ||
  ztna_fail "the flood did not send all $count Initials"
# Every spoofed handshake that was admitted times out (5 s): half-open falls back to zero.
ztna_wait_for 30 "half-open handshakes back to 0" half_open_is 0
check_budget
rss_after=$(status_kb "$int_pid" VmRSS)
hwm=$(status_kb "$int_pid" VmHWM)
((hwm >= peak_rss)) || peak_rss=$hwm
json=$(ztna_json intermediate)
ztna_log "counters: $(jq -c '.counters | {handshakes_accepted, retries_sent, retry_tokens_invalid, handshakes_dropped_budget, handshakes_dropped_source, tls_handshake_failures}' <<<"$json")"
ztna_log "refusals: $(jq -c '.handshake_refusals | with_entries(select(.value > 0))' <<<"$json")"
seen=$(jq '.counters | .retries_sent + .handshakes_accepted + .handshakes_dropped_budget + .handshakes_dropped_source' <<<"$json")
ztna_log "Initials the intermediate answered or counted: $seen of $count spoofed + the real peers' (the rest overflowed its socket buffer)"
ztna_log "intermediate RSS: before $rss_before kB, peak $peak_rss kB (VmHWM), after $rss_after kB; growth at peak $((peak_rss - rss_before)) kB (bound $RSS_GROWTH_BOUND_KB kB); half-open peak $peak_half_open (budget $max_half_open)"
jq -e '.counters.retries_sent > 0' <<<"$json" >/dev/null || ztna_fail "no Retry was sent in auto mode under the flood"
jq -e '.handshakes.authenticated == 2 and ([.peers[].name] | sort) == ["agent1", "conn1"]' \
  <<<"$json" >/dev/null ||
  ztna_fail "a spoofed source authenticated, or a real peer is missing: $(jq -c '{handshakes, peers: [.peers[].name]}' <<<"$json")"
# Every admitted handshake ended one way or the other: authenticated (the 2 real peers) or refused.
jq -e '.counters.handshakes_accepted == .handshakes.authenticated + .counters.tls_handshake_failures' \
  <<<"$json" >/dev/null ||
  ztna_fail "admitted handshakes unaccounted for: $(jq -c '{h: .handshakes, c: .counters}' <<<"$json")"
((peak_rss - rss_before <= RSS_GROWTH_BOUND_KB)) ||
  ztna_fail "the intermediate grew by $((peak_rss - rss_before)) kB under the flood (bound $RSS_GROWTH_BOUND_KB kB)"
ztna_stop flood
ztna_stop agent1
ztna_stop conn1
ztna_stop intermediate

# ---------------------------------------------------------------------------------------------
ztna_log "part 2: --retry never --max-half-open 200: the per-source limit, then the budget"
max_half_open=200
ztna_start_intermediate --retry never --max-half-open "$max_half_open" --max-half-open-per-source 16
int_pid=${ZTNA_PID_OF[intermediate]}
ztna_start_connector conn1 --service "web=tcp://127.0.0.1:$ZTNA_NGINX_PORT"
ztna_start_agent agent1 --expose "web=tcp://127.0.0.1:$web_port"
ztna_wait_connected conn1 agent1
ztna_wait_service web
ztna_wait_tcp_listener agent1 "$web_port"

# 100 Initials from one source: 16 are admitted, the rest are dropped.
ztna_spawn one-source 1 "$LOAD" spoof "${args[@]}" --count 100 --source 127.9.9.9 --linger
ztna_wait_for 30 "the one-source burst sent" flood_done one-source
ztna_wait_counter intermediate handshakes_dropped_source 1 10
ztna_log "one source: $(ztna_json intermediate | jq -c '{half_open: .handshakes.half_open, dropped_source: .counters.handshakes_dropped_source, accepted: .counters.handshakes_accepted}')"
ztna_jq intermediate '.handshakes.half_open <= 16' >/dev/null ||
  ztna_fail "more than 16 half-open handshakes from one source: $(ztna_json intermediate | jq -c .handshakes)"

# 3 000 from distinct sources at 1 000/s: the budget fills, holds, and the tunnel keeps working.
ztna_spawn flood2 1 "$LOAD" spoof "${args[@]}" --count 3000 --rate $((1000 / ZTNA_TIME_SCALE)) \
  --first-source 127.64.0.1 --linger
budget_hit() {
  sample
  ztna_jq intermediate '.counters.handshakes_dropped_budget > 0'
}
ztna_wait_for 30 "handshakes dropped for the budget" budget_hit
fetch_intact
during=$(flood_done flood2 && echo after || echo during)
ztna_log "4 MiB fetched intact through agent1 $during the flood, budget full"
ztna_wait_for 60 "the second flood to end" sampled_flood_done flood2
check_budget
json=$(ztna_json intermediate)
ztna_log "counters: $(jq -c '{handshakes, c: (.counters | {handshakes_accepted, handshakes_dropped_budget, handshakes_dropped_source, retries_sent})}' <<<"$json"); half-open peak $peak_half_open (budget $max_half_open)"
jq -e '.counters.retries_sent == 0 and .counters.handshakes_dropped_budget > 0' <<<"$json" >/dev/null ||
  ztna_fail "expected drops for the budget and no Retry with --retry never"
((peak_half_open >= max_half_open / 2)) ||
  ztna_fail "the flood never came near the budget (half-open peak $peak_half_open): not a test of it"
jq -e '.handshakes.authenticated == 2 and ([.peers[].name] | sort) == ["agent1", "conn1"]' \
  <<<"$json" >/dev/null || ztna_fail "the authenticated peers did not survive: $(jq -c '[.peers[].name]' <<<"$json")"
ztna_jq agent1 '.control.state == "connected"' >/dev/null || ztna_fail "agent1 lost its control connection"

ztna_pass
