#!/usr/bin/env bash
# UDP with many agents: three agents expose the same UDP echo service, and all of them send at
# once. Each agent numbers its flows from 1, so the connector must keep flows apart per session:
# every reply must reach the agent, and the client socket, that sent the request.
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

ztna_setup
ztna_make_certs --agent agent2 --agent agent3
ztna_start_udp_echo
ztna_start_intermediate
ztna_start_connector conn1 --service "echo=udp://127.0.0.1:$ZTNA_UDP_ECHO_PORT"
ports=()
for a in agent1 agent2 agent3; do
  p=$(ztna_free_port udp)
  ports+=("$p")
  ztna_start_agent "$a" --expose "echo=udp://127.0.0.1:$p"
done
ztna_wait_connected conn1 agent1 agent2 agent3
ztna_wait_service echo

cat >"$ZTNA_TMP/many.py" <<'PY'
"""Each port gets its own client socket; every datagram names its port and sequence number and
must come back unchanged to the socket that sent it (retried, since UDP may drop)."""
import socket, sys, threading

deadline, ports = float(sys.argv[1]), [int(p) for p in sys.argv[2:]]
errors = []

def run(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(0.5)
    for seq in range(100):
        msg = f"port={port} seq={seq} ".encode() * (1 + seq % 7)
        for _ in range(int(deadline / 0.5)):
            s.sendto(msg, ("127.0.0.1", port))
            try:
                while True:
                    reply, _ = s.recvfrom(65536)
                    if reply == msg:
                        break
                    if not reply.startswith(f"port={port} ".encode()):
                        errors.append(f"{port}: got another agent's reply {reply[:40]!r}")
                        return
            except socket.timeout:
                continue
            break
        else:
            errors.append(f"{port}: no reply to seq {seq}")
            return

threads = [threading.Thread(target=run, args=(p,)) for p in ports]
for t in threads: t.start()
for t in threads: t.join()
print("\n".join(errors) if errors else f"{len(ports)} agents x 100 datagrams echoed to the right sender")
sys.exit(1 if errors else 0)
PY
out=$("$ZTNA_PYTHON" "$ZTNA_TMP/many.py" "$(ztna_secs 20)" "${ports[@]}" 2>&1) || ztna_fail "$out"
ztna_log "$out"
ztna_jq conn1 '[.sessions[] | .udp_flows] | add >= 3' >/dev/null || ztna_fail "expected a flow per agent"
ztna_pass
