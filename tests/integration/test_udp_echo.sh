#!/usr/bin/env bash
# UDP through the tunnel: an echo backend behind the connector, exposed by the agent on a local UDP
# port. 200 distinct datagrams (1..1000 bytes) must each come back unchanged (per-datagram retries,
# since UDP may drop), and two client sockets used at the same time must each get only their own
# replies (flow separation). The largest datagram the agent announces crosses intact; one byte
# more is dropped, counted and logged.
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

ztna_setup
ztna_make_certs
ztna_start_udp_echo

agent_port=$(ztna_free_port udp)
ztna_start_intermediate
ztna_start_connector conn1 --service "echo=udp://127.0.0.1:$ZTNA_UDP_ECHO_PORT"
ztna_start_agent agent1 --expose "echo=udp://127.0.0.1:$agent_port"
ztna_wait_connected conn1 agent1
ztna_wait_service echo
ztna_wait_udp_listener agent1 "$agent_port"

cat >"$ZTNA_TMP/udp_client.py" <<'PY'
"""Checks a UDP echo service: every datagram must come back unchanged, to the socket that sent it."""
import os, socket, sys, threading, time

port, count, deadline_s = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
deadline = time.monotonic() + deadline_s
MAX_PAYLOAD = 1000
errors = []
stats = {"sent": 0, "retries": 0}
lock = threading.Lock()


def payload(tag, i):
    head = f"{tag}:{i:06d}:".encode()
    n = max(len(head), 1 + (i * 37) % MAX_PAYLOAD)
    return head + os.urandom(n - len(head))


def run(tag, n, first_patience):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    dst = ("127.0.0.1", port)
    for i in range(n):
        msg = payload(tag, i)
        # The first datagram may wait for the session to come up; later ones get a few tries.
        attempts = first_patience if i == 0 else 10
        ok = False
        for attempt in range(attempts):
            if time.monotonic() > deadline:
                errors.append(f"{tag}: overall deadline passed at datagram {i}")
                return
            s.sendto(msg, dst)
            with lock:
                stats["sent"] += 1
                stats["retries"] += attempt > 0
            end = time.monotonic() + 0.5
            while True:
                left = end - time.monotonic()
                if left <= 0:
                    break
                s.settimeout(left)
                try:
                    data, src = s.recvfrom(65535)
                except socket.timeout:
                    break
                if src != dst:
                    errors.append(f"{tag}: reply from unexpected address {src}")
                    return
                if data == msg:
                    ok = True
                    break
                if not data.startswith(f"{tag}:".encode()):
                    errors.append(f"{tag}: got another flow's datagram: {data[:16]!r}")
                    return
                try:
                    seq = int(data.split(b":")[1])
                except (IndexError, ValueError):
                    seq = -1
                if not 0 <= seq < i:  # a late duplicate of an earlier datagram is fine
                    errors.append(f"{tag}: datagram {i} came back altered ({len(data)} bytes, want {len(msg)})")
                    return
            if ok:
                break
        if not ok:
            errors.append(f"{tag}: no echo for datagram {i} ({len(msg)} bytes) after {attempts} tries")
            return


run("single", count, 60)
if not errors:
    threads = [threading.Thread(target=run, args=(t, count // 2, 60)) for t in ("flowA", "flowB")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
print(f"sent {stats['sent']} datagrams, {stats['retries']} retries", flush=True)
for e in errors:
    print("ERROR:", e, flush=True)
sys.exit(1 if errors else 0)
PY

rc=0
out=$("$ZTNA_PYTHON" "$ZTNA_TMP/udp_client.py" "$agent_port" 200 "$(ztna_secs 90)" 2>&1) || rc=$?
ztna_log "udp client: ${out//$'\n'/; }"
((rc == 0)) || ztna_fail "UDP echo through the tunnel failed"
ztna_log "200 datagrams echoed on one socket, then 2 x 100 on two concurrent sockets, all intact"

ztna_wait_json agent1 10 "a session for service echo" \
  'any(.sessions[]?; (.services | index("echo")) != null)'

# The size limit: a datagram of exactly max_datagram bytes (from the agent's status) comes back
# intact; one byte more cannot fit one DATAGRAM frame, so the agent drops it, counts it and says
# so in its log.
max=$(ztna_json agent1 | jq -r '.exposes[] | select(.name == "echo") | .max_datagram')
[[ $max =~ ^[0-9]+$ ]] || ztna_fail "agent status gives no max_datagram for echo: $max"
cat >"$ZTNA_TMP/udp_sizes.py" <<'PY'
"""Sends N bytes (echo expected, retried) then N+1 bytes (no echo expected) to the agent."""
import os, socket, sys

port, n = int(sys.argv[1]), int(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(0.5)
fits = os.urandom(n)
for _ in range(10):
    s.sendto(fits, ("127.0.0.1", port))
    try:
        if s.recv(65535) == fits:
            break
    except socket.timeout:
        pass
else:
    sys.exit(f"no intact echo of a {n}-byte datagram")
s.sendto(os.urandom(n + 1), ("127.0.0.1", port))
print(f"{n} bytes echoed intact; {n + 1} bytes sent")
PY
before=$(ztna_counter agent1 udp_datagrams_too_large)
out=$("$ZTNA_PYTHON" "$ZTNA_TMP/udp_sizes.py" "$agent_port" "$max" 2>&1) ||
  ztna_fail "the largest datagram the agent announces did not cross the tunnel: $out"
ztna_log "$out"
ztna_wait_counter agent1 udp_datagrams_too_large $((before + 1)) 10
grep -q "dropped a $((max + 1))-byte UDP datagram" "${ZTNA_LOG_OF[${ZTNA_PID_OF[agent1]}]}" ||
  ztna_fail "the agent did not log the oversized datagram"
ztna_log "max_datagram $max: $max bytes crossed, $((max + 1)) dropped and counted"

ztna_pass
