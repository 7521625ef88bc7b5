#!/usr/bin/env bash
# A backend that resets the connection in the middle of a response: the client sees the
# connection fail promptly (no hang), the session survives, and the next request to a healthy
# service on the same connector works.
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

ztna_setup
ztna_make_certs
ztna_random_file "$ZTNA_TMP/www/blob.bin" $((256 << 10))
ztna_start_nginx "$ZTNA_TMP/www"
rst_port=$(ztna_free_port tcp)
cat >"$ZTNA_TMP/rst_server.py" <<'PY'
"""Answers each request with a partial HTTP response, then resets the connection (RST)."""
import socket, struct, sys
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", int(sys.argv[1])))
srv.listen(8)
while True:
    c, _ = srv.accept()
    c.recv(4096)
    c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n" + b"x" * 1000)
    c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    c.close()
PY
ztna_spawn rst-server 0 "$ZTNA_PYTHON" "$ZTNA_TMP/rst_server.py" "$rst_port"
ztna_wait_for 10 "reset server listening" ztna_tcp_listening "$rst_port"

web_port=$(ztna_free_port tcp)
rst_local=$(ztna_free_port tcp)
ztna_start_intermediate
ztna_start_connector conn1 --service "web=tcp://127.0.0.1:$ZTNA_NGINX_PORT" \
  --service "flaky=tcp://127.0.0.1:$rst_port"
ztna_start_agent agent1 --expose "web=tcp://127.0.0.1:$web_port" \
  --expose "flaky=tcp://127.0.0.1:$rst_local"
ztna_wait_connected conn1 agent1
ztna_wait_service web flaky

flaky_session() { ztna_json agent1 | jq -r '.sessions[] | select(.service == "flaky") | .session_id'; }
ztna_expect_fetch_error "http://127.0.0.1:$rst_local/" "$(ztna_secs 20)"
first=$(flaky_session)
[[ -n $first ]] || ztna_fail "no session for flaky"
for _ in 2 3; do
  ztna_expect_fetch_error "http://127.0.0.1:$rst_local/" "$(ztna_secs 20)"
done
ztna_fetch "http://127.0.0.1:$web_port/blob.bin" "$ZTNA_TMP/got.bin" 30
cmp -s "$ZTNA_TMP/www/blob.bin" "$ZTNA_TMP/got.bin" || ztna_fail "content differs"
# One session per service: flaky's survived the resets, web got its own.
[[ $(flaky_session) == "$first" ]] || ztna_fail "the session did not survive the resets"
ztna_jq agent1 '.sessions | length == 2' >/dev/null || ztna_fail "expected one session per service"
ztna_pass
