#!/usr/bin/env bash
# TCP half-close through the tunnel, both ways: the client sends 3 MiB and shuts down its sending
# side; the backend sees EOF (QUIC FIN -> shutdown(SHUT_WR)), only then answers with the SHA-256
# of what it received and closes; the client reads the answer until EOF.
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

ztna_setup
ztna_make_certs
backend_port=$(ztna_free_port tcp)
web_port=$(ztna_free_port tcp)

cat >"$ZTNA_TMP/digest_server.py" <<'PY'
"""Reads each connection to EOF, then replies with the SHA-256 hex digest and closes."""
import hashlib, socket, sys, threading

srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", int(sys.argv[1])))
srv.listen(16)

def serve(c):
    h = hashlib.sha256()
    while True:
        b = c.recv(65536)
        if not b:
            break
        h.update(b)
    c.sendall(h.hexdigest().encode())
    c.close()

while True:
    conn, _ = srv.accept()
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
PY
ztna_spawn digest-server 0 "$ZTNA_PYTHON" "$ZTNA_TMP/digest_server.py" "$backend_port"
ztna_wait_for 10 "digest server listening" ztna_tcp_listening "$backend_port"

ztna_start_intermediate
ztna_start_connector conn1 --service "digest=tcp://127.0.0.1:$backend_port"
ztna_start_agent agent1 --expose "digest=tcp://127.0.0.1:$web_port"
ztna_wait_connected conn1 agent1
ztna_wait_service digest
ztna_wait_tcp_listener agent1 "$web_port"

cat >"$ZTNA_TMP/client.py" <<'PY'
import hashlib, os, socket, sys
data = os.urandom(3 << 20)
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=float(sys.argv[2]))
s.sendall(data)
s.shutdown(socket.SHUT_WR)  # half-close: we still read
reply = b""
while True:
    b = s.recv(4096)
    if not b:
        break
    reply += b
want = hashlib.sha256(data).hexdigest().encode()
print("reply", reply.decode(errors="replace"))
sys.exit(0 if reply == want else 1)
PY
for i in 1 2 3; do
  out=$("$ZTNA_PYTHON" "$ZTNA_TMP/client.py" "$web_port" "$(ztna_secs 30)" 2>&1) ||
    ztna_fail "half-close round $i: digest mismatch or error: $out"
  ztna_log "round $i: backend saw EOF and answered after it: $out"
done
ztna_pass
