#!/usr/bin/env python3
"""A raw TCP byte stream with no framing, and a client that reads it until the end.

serve PORTFILE BYTES RATE
    Listens on 127.0.0.1 (a free port, written to PORTFILE) and sends every connection BYTES
    bytes of a fixed pseudo-random stream at RATE bytes/s, in 16 KiB pieces, then closes it
    cleanly (FIN). Like a backup or a database dump: only the end of the stream says it is done.

fetch HOST:PORT BYTES RESULT [PROGRESS]
    Reads until the stream ends and writes RESULT (JSON): how it ended ("eof" for a clean end,
    "reset" for ECONNRESET, else the error), the bytes and their sha256, whether they equal the
    stream the server sends, and the longest gap between two reads once bytes flowed (ms), with
    when it began. PROGRESS, if given, holds the byte count, rewritten as bytes arrive.
"""
import hashlib, json, os, signal, socket, sys, threading, time

PIECE = 16 * 1024
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))


def stream_piece(i):
    # 16 KiB of SHA-256 counter-mode output: the same stream every time, not compressible.
    out = bytearray()
    for k in range(PIECE // 32):
        out += hashlib.sha256(b"ztna stream %d %d" % (i, k)).digest()
    return bytes(out)


def expected_sha256(total):
    h = hashlib.sha256()
    i = 0
    while total > 0:
        p = stream_piece(i)[:total]
        h.update(p)
        total -= len(p)
        i += 1
    return h.hexdigest()


def write(path, text):
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.rename(path + ".tmp", path)


def serve(portfile, total, rate):
    pieces = [stream_piece(i) for i in range((total + PIECE - 1) // PIECE)]
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    write(portfile, str(listener.getsockname()[1]))

    def send(c, peer):
        with c:
            start, sent = time.monotonic(), 0
            try:
                for p in pieces:
                    p = p[: total - sent]
                    c.sendall(p)
                    sent += len(p)
                    delay = start + sent / rate - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                c.shutdown(socket.SHUT_WR)
                print(f"sent {sent} bytes to {peer[0]}:{peer[1]}", flush=True)
            except OSError as e:
                print(f"stream to {peer[0]}:{peer[1]} cut after {sent} bytes: {e}", flush=True)

    while True:
        c, peer = listener.accept()
        threading.Thread(target=send, args=(c, peer), daemon=True).start()


def fetch(target, total, result, progress):
    host, port = target.rsplit(":", 1)
    h = hashlib.sha256()
    got, gap, gap_at, last, end = 0, 0.0, None, None, "eof"
    started = time.time()
    s = socket.create_connection((host, int(port)), timeout=10)
    s.settimeout(120)
    written = 0
    try:
        while True:
            data = s.recv(65536)
            now = time.monotonic()
            if not data:
                break
            if last is not None and now - last > gap:
                gap, gap_at = now - last, time.time() - (now - last)
            last = now
            got += len(data)
            h.update(data)
            if progress and got - written >= 65536:
                write(progress, str(got))
                written = got
    except ConnectionResetError:
        end = "reset"
    except OSError as e:
        end = f"error: {e}"
    if progress:
        write(progress, str(got))
    write(result, json.dumps({
        "end": end,
        "bytes": got,
        "sha256": h.hexdigest(),
        "complete": got == total and h.hexdigest() == expected_sha256(total),
        "max_gap_ms": round(gap * 1000, 1),
        "max_gap_at": gap_at,
        "started": started,
        "ended": time.time(),
    }))


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]))
    elif sys.argv[1] == "fetch":
        fetch(sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5] if len(sys.argv) > 5 else None)
    else:
        sys.exit(__doc__)
