#!/usr/bin/env bash
# Backpressure: a client asks for 256 MiB and then does not read. Flow control must stop the
# data at the window: neither the agent nor the connector may buffer the file, and the agent
# must not receive more than a bounded amount. Then the client reads everything; the checksum
# must match.
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

ztna_setup
ztna_make_certs
ztna_random_file "$ZTNA_TMP/www/big.bin" $((256 << 20))
ztna_start_web_stack
web_port=$ZTNA_WEB_PORT

rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
agent_pid=${ZTNA_PID_OF[agent1]}
conn_pid=${ZTNA_PID_OF[conn1]}
agent_rss0=$(rss_kib "$agent_pid")
conn_rss0=$(rss_kib "$conn_pid")

# The client sends the request, reads nothing until told to (a line on stdin), then reads all.
cat >"$ZTNA_TMP/slow_client.py" <<'PY'
import hashlib, socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
s.sendall(b"GET /big.bin HTTP/1.0\r\nHost: x\r\n\r\n")
print("sent", flush=True)
sys.stdin.readline()
buf = bytearray()
while True:
    b = s.recv(1 << 20)
    if not b:
        break
    buf += b
end = buf.index(b"\r\n\r\n") + 4
body = memoryview(buf)[end:]
print(hashlib.sha256(body).hexdigest(), len(body), flush=True)
PY
coproc CLIENT { "$ZTNA_PYTHON" "$ZTNA_TMP/slow_client.py" "$web_port"; }
read -r -t 30 line <&"${CLIENT[0]}" || ztna_fail "slow client did not start"
[[ $line == sent ]] || ztna_fail "slow client: $line"

# Data flows until the windows fill, then stops. Watch for 8 s: a system without backpressure
# would have moved the whole file (and held it in memory) long before.
ztna_wait_json agent1 30 "data started flowing" '[.sessions[].bytes_received] | add > 1048576'
max_rx=0 max_agent=0 max_conn=0
for _ in $(seq 40); do
  rx=$(ztna_json agent1 | jq '[.sessions[].bytes_received] | add')
  a=$(($(rss_kib "$agent_pid") - agent_rss0))
  c=$(($(rss_kib "$conn_pid") - conn_rss0))
  ((rx > max_rx)) && max_rx=$rx
  ((a > max_agent)) && max_agent=$a
  ((c > max_conn)) && max_conn=$c
  sleep 0.2 # observation interval, not synchronisation
done
ztna_log "while the client stalled: agent received at most $((max_rx >> 20)) MiB of 256; RSS grew by at most $((max_agent >> 10)) MiB (agent) and $((max_conn >> 10)) MiB (connector)"
((max_rx < (64 << 20))) || ztna_fail "agent received $max_rx bytes while the client read nothing: no backpressure"
((max_agent < 64 * 1024)) || ztna_fail "agent memory grew by $max_agent KiB"
((max_conn < 64 * 1024)) || ztna_fail "connector memory grew by $max_conn KiB"

echo go >&"${CLIENT[1]}"
read -r -t "$(ztna_secs 120)" digest len <&"${CLIENT[0]}" || ztna_fail "slow client did not finish"
want=$(sha256sum "$ZTNA_TMP/www/big.bin" | cut -d' ' -f1)
[[ $digest == "$want" && $len == $((256 << 20)) ]] || ztna_fail "body differs: $digest ($len bytes)"
ztna_log "after the stall the whole file arrived intact"
ztna_pass
