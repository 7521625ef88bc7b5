#!/usr/bin/env bash
# Limits on authenticated control peers:
#   - a peer that completes the handshake but never registers (ztna-control-probe --send silent)
#     is dropped by the intermediate within seconds (hello timeout 5 s): peers_unregistered, a log
#     line, and the probe sees the intermediate close the connection ("no Hello in time") long
#     before its own 10 s idle timeout;
#   - the per-peer control message rate limit (50/s, burst 200): ztna-control-probe cannot send a
#     burst of messages, so a real agent is made to send them: every local connection to a service
#     the policy denies makes it send OpenSession, and a client that connects as fast as the
#     refusals come back drives it far over 50/s. The intermediate drops the excess and answers
#     each dropped request with Limited (control_rate_limited, "sends control messages faster
#     than 50/s" in its log, "rate limited" in the agent's), and does not disconnect the agent;
#     meanwhile agent2 is served.
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

ztna_setup
policy=$ZTNA_TMP/policy.toml
ztna_write_policy "$policy" <<'TOML'
version = 1

[[access]]
name = "web for everybody"
agents = ["*"]
services = ["web"]

[[serve]]
connectors = ["*"]
services = ["*"]
TOML
ztna_make_certs --agent agent2 --agent mute
PROBE=$ZTNA_BUILD_DIR/tests/ztna-control-probe
[[ -x $PROBE ]] || ztna_fail "$PROBE not built"
ztna_random_file "$ZTNA_TMP/www/blob.bin" $((1 << 20))
ztna_start_nginx "$ZTNA_TMP/www"
ztna_start_intermediate
ztna_start_connector conn1 --service "web=tcp://127.0.0.1:$ZTNA_NGINX_PORT" \
  --service "db=tcp://127.0.0.1:$ZTNA_NGINX_PORT"
p_db=$(ztna_free_port tcp) p_web2=$(ztna_free_port tcp)
ztna_start_agent agent1 --expose "db=tcp://127.0.0.1:$p_db"
ztna_start_agent agent2 --expose "web=tcp://127.0.0.1:$p_web2"
ztna_wait_connected conn1 agent1 agent2
ztna_wait_service web db
ztna_wait_tcp_listener agent1 "$p_db"
ztna_wait_tcp_listener agent2 "$p_web2"

log_has() {
  grep -qE -- "$2" "$(ztna_logfile "$1")"
}
log_line() {
  grep -m1 -E -- "$2" "$(ztna_logfile "$1")" | cut -d' ' -f4-
}

# --- Authenticated, never registered.
t0=$(ztna_now_ms)
rc=0
timeout "$(ztna_secs 30)" "$PROBE" --intermediate "127.0.0.1:$ZTNA_INT_PORT" --name "$ZTNA_INTERMEDIATE_DNS" \
  --ca "$ZTNA_CERTS/ca.pem" --cert "$ZTNA_CERTS/agent-mute.pem" --key "$ZTNA_CERTS/agent-mute.key" \
  --role agent --send silent >"$ZTNA_TMP/logs/probe-silent.log" 2>&1 || rc=$?
dt=$(($(ztna_now_ms) - t0))
ztna_log "silent probe: exit $rc after $dt ms: $(tr '\n' ' ' <"$ZTNA_TMP/logs/probe-silent.log")"
((rc == 0)) || ztna_fail "the intermediate did not close the silent peer's connection (probe exit $rc)"
grep -qF 'connection ended: peer closed the connection (code 5, "no Hello in time")' "$ZTNA_TMP/logs/probe-silent.log" ||
  ztna_fail "the silent probe was not told why it was closed"
((dt < 8000 * ZTNA_TIME_SCALE)) || ztna_fail "the silent peer was dropped after $dt ms (hello timeout 5 s)"
ztna_wait_counter intermediate peers_unregistered 1 5
pat="agent 'mute' at 127\.0\.0\.1:[0-9]+ authenticated but sent no Hello within 5000 ms; closing"
ztna_wait_for 5 "intermediate log: the silent peer dropped" log_has intermediate "$pat"
ztna_log "intermediate: $(log_line intermediate "$pat")"
ztna_jq intermediate '([.peers[] | select(.name == "mute")] | length == 0) and .handshakes.authenticated == 3' >/dev/null ||
  ztna_fail "the silent peer is still counted: $(ztna_json intermediate | jq -c '{handshakes, peers: [.peers[].name]}')"

# --- Control message rate limit, driven through a real agent.
cat >"$ZTNA_TMP/flood.py" <<'EOF'
"""Connects to 127.0.0.1:PORT again and again for SECONDS: each connection sends a request and
waits until the other side closes it. Prints how many connections it made."""
import socket, sys, time

port, seconds = int(sys.argv[1]), float(sys.argv[2])
end = time.monotonic() + seconds
n = 0
while time.monotonic() < end:
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        s.sendall(b"GET / HTTP/1.0\r\n\r\n")
        while s.recv(4096):
            pass
    except OSError:
        pass
    finally:
        s.close()
    n += 1
print(n)
EOF
rl0=$(ztna_counter intermediate control_rate_limited)
denied0=$(ztna_counter intermediate sessions_denied)
n=$(timeout "$(ztna_secs 30)" "$ZTNA_PYTHON" "$ZTNA_TMP/flood.py" "$p_db" 3) ||
  ztna_fail "the connection flood failed"
ztna_log "flood: $n connections to agent1's db listener in 3 s"
((n > 500)) || ztna_fail "only $n connections in 3 s: not enough to exceed the rate limit"
ztna_wait_json intermediate 5 "control_rate_limited rose" \
  '.counters.control_rate_limited > ($n | tonumber)' --arg n "$rl0"
pat="agent 'agent1' sends control messages faster than 50/s; dropping the excess \(control_rate_limited\)"
ztna_wait_for 5 "intermediate log: agent1 rate limited" log_has intermediate "$pat"
ztna_log "intermediate: $(log_line intermediate "$pat")"
ztna_wait_for 5 "agent1 log: a request answered with Limited" \
  log_has agent1 "'db': the intermediate refused a session: rate limited \(limit reached\)"
rl=$(($(ztna_counter intermediate control_rate_limited) - rl0))
denied=$(($(ztna_counter intermediate sessions_denied) - denied0))
ztna_log "intermediate: $denied OpenSession requests denied by policy, $rl dropped by the rate limit"
# At most the burst plus 50/s over the flood (with some slack for the clock) got through.
((denied >= 200 && denied <= 200 + 50 * 5)) || ztna_fail "$denied requests got through the rate limit in about 3 s (burst 200, 50/s)"
((rl > 0)) || ztna_fail "nothing was rate limited"

# The limited agent keeps its control connection; another agent is served meanwhile.
ztna_jq agent1 '.control.state == "connected" and .control.connects == 1' >/dev/null ||
  ztna_fail "agent1 lost its control connection: $(ztna_json agent1 | jq -c .control)"
ztna_fetch "http://127.0.0.1:$p_web2/blob.bin" "$ZTNA_TMP/blob.out" 30
cmp -s "$ZTNA_TMP/www/blob.bin" "$ZTNA_TMP/blob.out" || ztna_fail "agent2's file differs"
ztna_log "agent2 served after the flood; agent1 still connected"
ztna_log "intermediate counters: $(ztna_json intermediate | jq -c '.counters | {peers_unregistered, control_rate_limited, sessions_denied, control_messages_unexpected}')"

ztna_pass
