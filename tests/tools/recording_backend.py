#!/usr/bin/env python3
# Usage: recording_backend.py OUTDIR NAME:tcp|udp ...
"""Records every TCP connection and UDP datagram that reaches it, per name."""
import os, signal, socket, sys, threading

signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
out = sys.argv[1]
lock = threading.Lock()
counts = {}


def write(path, text):
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.rename(path + ".tmp", path)


def record(name, peer):
    with lock:
        counts[name] = counts.get(name, 0) + 1
        write(os.path.join(out, name + ".count"), str(counts[name]))
        print(f"{name}: #{counts[name]} from {peer[0]}:{peer[1]}", flush=True)


def answer(name, c):
    with c:
        c.settimeout(10)
        data = b""
        try:
            while b"\r\n\r\n" not in data:
                chunk = c.recv(4096)
                if not chunk:
                    break
                data += chunk
            body = f"recorded by backend {name}\n".encode()
            c.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        except OSError:
            pass


def serve_tcp(name, s):
    while True:
        c, peer = s.accept()
        record(name, peer)
        threading.Thread(target=answer, args=(name, c), daemon=True).start()


def serve_udp(name, s):
    while True:
        _, peer = s.recvfrom(65535)
        record(name, peer)


for spec in sys.argv[2:]:
    name, proto = spec.split(":")
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    if proto == "tcp":
        s.listen(64)
    serve = serve_tcp if proto == "tcp" else serve_udp
    threading.Thread(target=serve, args=(name, s), daemon=True).start()
    write(os.path.join(out, name + ".port"), str(s.getsockname()[1]))
threading.Event().wait()
