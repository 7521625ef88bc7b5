#!/usr/bin/env python3
"""UDP probes for the NAT lab (python3 standard library only).

Endpoints are IPv4 "A.B.C.D:PORT" or IPv6 "[ADDR]:PORT"; each socket has the family of the
address it is bound to.

reflect [--ready FILE] [--learn IP:PORT --mapped FILE] IP:PORT...
    Binds every IP:PORT and answers, from the socket a request came in on:
      PING <tok>        ->  OBS <tok> <ip>:<port>    (the source address:port it saw)
      POKE <tok> <i>    ->  first POKED <tok> from socket number <i> (0-based, in the order
                            given) to the source it saw, then OBS <tok> <ip>:<port>
    With --learn, it first asks the reflector at IP:PORT (from its first socket) what mapping it
    has and writes "<ip>:<port>" to the --mapped file. --ready is written (atomically) once it
    serves. Exits 0 on SIGTERM.

stun [--ready FILE] IP1:PORT1 IP1:PORT2 IP2:PORT1 IP2:PORT2
    A STUN Binding server (RFC 5389) on two addresses x two ports that honours CHANGE-REQUEST
    (RFC 5780 / 3489): the answer, with MAPPED-ADDRESS, XOR-MAPPED-ADDRESS and OTHER-ADDRESS,
    leaves from the socket of the other address and/or port when asked. Exits 0 on SIGTERM.

probe [--bind IP:PORT] [--timeout S] [--window S] STEP...
    One UDP socket (default 0.0.0.0:0, or [::]:0 if the first endpoint of the steps is IPv6)
    runs the steps in order and prints one line for each,
    after a first line "local <ip>:<port>":
      obs IP:PORT       ->  "obs IP:PORT <mapped ip:port>"   or "obs IP:PORT none"
      poke IP:PORT I    ->  "poke IP:PORT I <mapped> got"    or "... none": whether the POKED
                            datagram (sent from the reflector's socket I) arrived within --window
                            seconds after the OBS answer.
      rtt IP:PORT N MS  ->  "rtt IP:PORT sent N got M median X min Y max Z" (milliseconds;
                            "none" for each if nothing came back): N requests, one every MS ms
                            whether answered or not, each timed to its answer; waits --timeout
                            seconds after the last one for late answers.
      punch IP:PORT     ->  "punch IP:PORT got" or "punch IP:PORT none": simultaneous open with a
                            peer running the same step toward this socket. Both send
                            "PUNCH <heard>" every 100 ms from the start (heard: 1 once a PUNCH
                            of the other arrived); done when each has heard the other (sends
                            three more to make sure the other learns it), or after --timeout.
      pcp GW IPORT EPORT LIFETIME
                        ->  "pcp GW result <code> external <ip>:<port> lifetime <s>" (or "pcp GW
                            none"): a PCP MAP request (RFC 6887) for UDP to the gateway GW
                            (port 5351) from a socket of its own: map internal port IPORT,
                            suggesting external port EPORT, for LIFETIME seconds (0 deletes;
                            the nonce derives from the internal endpoint, so a later request
                            renews or deletes the mapping).
                            Result code 0 is success.
      new               ->  "local <ip>:<port>": continue on a fresh socket (new local port).
      timeout S         ->  (no output) use S as --timeout for the following steps.
    Requests are repeated every 100 ms until answered or --timeout seconds pass.
"""

import argparse
import os
import select
import signal
import socket
import struct
import sys
import time


def endpoint(text):
    host, _, port = text.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port)


def family(text):
    return socket.AF_INET6 if ":" in endpoint(text)[0] else socket.AF_INET


def new_socket(text):
    s = socket.socket(family(text), socket.SOCK_DGRAM)
    if family(text) == socket.AF_INET6:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    return s


def fmt(addr):
    if ":" in addr[0]:
        return f"[{addr[0]}]:{addr[1]}"
    return f"{addr[0]}:{addr[1]}"


def new_token():
    return os.urandom(6).hex()


def ask(sock, dest, request, tok, timeout, on_other=None):
    """Send request to dest every 100 ms until "OBS tok ..." arrives; returns the mapped text."""
    deadline = time.monotonic() + timeout
    next_send = 0.0
    while True:
        now = time.monotonic()
        if now >= deadline:
            return None
        if now >= next_send:
            sock.sendto(request.encode(), dest)
            next_send = now + 0.1
        r, _, _ = select.select([sock], [], [], max(0.0, min(next_send, deadline) - now))
        if not r:
            continue
        try:
            data, src = sock.recvfrom(2048)
        except OSError:
            continue  # ICMP errors surface as ECONNREFUSED on some kernels
        words = data.decode(errors="replace").split()
        if len(words) == 3 and words[0] == "OBS" and words[1] == tok:
            return words[2]
        if on_other is not None:
            on_other(words, src)


def rtt(sock, dest, count, interval, timeout):
    """Sends count PINGs interval seconds apart; returns the round-trip times seen (ms)."""
    sent = {}
    times = []
    start = time.monotonic()
    i = 0
    while True:
        now = time.monotonic()
        if i < count and now >= start + i * interval:
            tok = new_token()
            sent[tok] = now
            sock.sendto(f"PING {tok}".encode(), dest)
            i += 1
            continue
        if i == count:
            if len(times) == count:
                return times
            deadline = start + (count - 1) * interval + timeout
        else:
            deadline = start + i * interval
        if now >= deadline and i == count:
            return times
        r, _, _ = select.select([sock], [], [], max(0.0, deadline - now))
        if not r:
            continue
        try:
            data, _src = sock.recvfrom(2048)
        except OSError:
            continue
        got = time.monotonic()
        words = data.decode(errors="replace").split()
        if len(words) == 3 and words[0] == "OBS" and words[1] in sent:
            times.append((got - sent.pop(words[1])) * 1000.0)


def punch(sock, dest, timeout):
    """Simultaneous open with a peer doing the same toward us; True once both heard each other."""
    deadline = time.monotonic() + timeout
    heard = peer_heard = False
    next_send = 0.0
    while True:
        now = time.monotonic()
        if heard and peer_heard:
            for _ in range(3):
                sock.sendto(b"PUNCH 1", dest)
            return True
        if now >= deadline:
            return False
        if now >= next_send:
            sock.sendto(b"PUNCH 1" if heard else b"PUNCH 0", dest)
            next_send = now + 0.1
        r, _, _ = select.select([sock], [], [], max(0.0, min(next_send, deadline) - now))
        if not r:
            continue
        try:
            data, src = sock.recvfrom(2048)
        except OSError:
            continue
        words = data.decode(errors="replace").split()
        if same_endpoint(src, dest) and len(words) == 2 and words[0] == "PUNCH":
            heard = True
            peer_heard = peer_heard or words[1] == "1"


def same_endpoint(a, b):
    fam = socket.AF_INET6 if ":" in a[0] else socket.AF_INET
    try:
        return a[1] == b[1] and socket.inet_pton(fam, a[0]) == socket.inet_pton(fam, b[0])
    except OSError:
        return False


def pcp_map(gateway, iport, eport, lifetime, timeout):
    """One PCP MAP request for UDP; returns (result, external ip, external port, lifetime)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.connect((gateway, 5351))
        import hashlib
        import ipaddress

        client = ipaddress.IPv6Address("::ffff:" + s.getsockname()[0]).packed
        # The same nonce for the same internal endpoint: renewing or deleting a mapping needs the
        # nonce that created it.
        nonce = hashlib.sha256(client + struct.pack("!H", iport)).digest()[:12]
        any_addr = ipaddress.IPv6Address("::ffff:0.0.0.0").packed
        req = (struct.pack("!BBHI", 2, 1, 0, lifetime) + client + nonce
               + struct.pack("!B3xHH", 17, iport, eport) + any_addr)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            s.send(req)
            r, _, _ = select.select([s], [], [], min(0.25, max(0.0, deadline - time.monotonic())))
            if not r:
                continue
            try:
                data = s.recv(1100)
            except OSError:
                continue
            if len(data) < 60 or data[1] != 0x81 or data[24:36] != nonce:
                continue
            result = data[3]
            life = struct.unpack("!I", data[4:8])[0]
            ext_port = struct.unpack("!H", data[42:44])[0]
            ext_ip = ipaddress.IPv6Address(data[44:60])
            ext = str(ext_ip.ipv4_mapped or ext_ip)
            return result, ext, ext_port, life
        return None
    finally:
        s.close()


def first_endpoint(steps):
    for word in steps:
        if word.count(":") >= 1 and word[0] in "[0123456789":
            return word
    return None


def probe(args):
    if args.bind is None:
        first = first_endpoint(args.steps)
        args.bind = "[::]:0" if first and family(first) == socket.AF_INET6 else "0.0.0.0:0"

    def fresh():
        s = new_socket(args.bind)
        s.bind(endpoint(args.bind))
        print("local", fmt(s.getsockname()), flush=True)
        return s

    sock = fresh()
    steps = list(args.steps)
    while steps:
        op = steps.pop(0)
        if op == "new":
            sock.close()
            sock = fresh()
        elif op == "rtt":
            dest, count, ms = steps.pop(0), int(steps.pop(0)), float(steps.pop(0))
            times = sorted(rtt(sock, endpoint(dest), count, ms / 1000.0, args.timeout))
            if times:
                mid = len(times) // 2
                median = times[mid] if len(times) % 2 else (times[mid - 1] + times[mid]) / 2
                stats = "median %.2f min %.2f max %.2f" % (median, times[0], times[-1])
            else:
                stats = "median none min none max none"
            print("rtt", dest, "sent", count, "got", len(times), stats, flush=True)
        elif op == "pcp":
            gw, iport, eport, life = steps.pop(0), steps.pop(0), steps.pop(0), steps.pop(0)
            got = pcp_map(gw, int(iport), int(eport), int(life), args.timeout)
            if got is None:
                print("pcp", gw, "none", flush=True)
            else:
                print("pcp", gw, "result", got[0], "external", fmt(got[1:3]), "lifetime", got[3],
                      flush=True)
        elif op == "punch":
            dest = steps.pop(0)
            ok = punch(sock, endpoint(dest), args.timeout)
            print("punch", dest, "got" if ok else "none", flush=True)
        elif op == "timeout":
            args.timeout = float(steps.pop(0))
        elif op == "obs":
            dest = steps.pop(0)
            tok = new_token()
            mapped = ask(sock, endpoint(dest), f"PING {tok}", tok, args.timeout)
            print("obs", dest, mapped or "none", flush=True)
        elif op == "poke":
            dest, idx = steps.pop(0), steps.pop(0)
            tok = new_token()
            got = []

            def other(words, _src):
                if len(words) == 2 and words[0] == "POKED" and words[1] == tok:
                    got.append(1)

            mapped = ask(sock, endpoint(dest), f"POKE {tok} {idx}", tok, args.timeout, other)
            deadline = time.monotonic() + args.window
            while not got and mapped is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                r, _, _ = select.select([sock], [], [], left)
                if r:
                    try:
                        data, src = sock.recvfrom(2048)
                    except OSError:
                        continue
                    other(data.decode(errors="replace").split(), src)
            print("poke", dest, idx, mapped or "none", "got" if got else "none", flush=True)
        else:
            sys.exit(f"natprobe: unknown step {op!r}")


def reflect(args):
    socks = []
    for ep in args.endpoints:
        s = new_socket(ep)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(endpoint(ep))
        socks.append(s)
    if args.learn:
        tok = new_token()
        mapped = ask(socks[0], endpoint(args.learn), f"PING {tok}", tok, 10.0)
        if mapped is None:
            sys.exit(f"natprobe: no answer from {args.learn}")
        write_atomically(args.mapped, mapped)
    if args.ready:
        write_atomically(args.ready, " ".join(fmt(s.getsockname()) for s in socks))
    while True:
        r, _, _ = select.select(socks, [], [])
        for s in r:
            try:
                data, src = s.recvfrom(2048)
            except OSError:
                continue
            words = data.decode(errors="replace").split()
            if len(words) == 2 and words[0] == "PING":
                s.sendto(f"OBS {words[1]} {fmt(src)}".encode(), src)
            elif len(words) == 3 and words[0] == "POKE" and words[2].isdigit():
                i = int(words[2])
                if i < len(socks):
                    try:
                        socks[i].sendto(f"POKED {words[1]}".encode(), src)
                    except OSError:
                        pass
                s.sendto(f"OBS {words[1]} {fmt(src)}".encode(), src)


STUN_COOKIE = 0x2112A442


def stun_addr_attr(kind, addr, xor=False):
    import ipaddress

    ip = ipaddress.ip_address(addr[0])
    raw, port = ip.packed, addr[1]
    if xor:
        port ^= STUN_COOKIE >> 16
        key = struct.pack("!I", STUN_COOKIE)
        raw = bytes(b ^ key[i % 4] for i, b in enumerate(raw)) if ip.version == 4 else None
    if raw is None:
        return b""  # XOR over IPv6 also needs the transaction id: MAPPED-ADDRESS suffices
    value = struct.pack("!BBH", 0, 1 if ip.version == 4 else 2, port) + raw
    return struct.pack("!HH", kind, len(value)) + value


def stun(args):
    if len(args.endpoints) != 4:
        sys.exit("natprobe: stun needs IP1:PORT1 IP1:PORT2 IP2:PORT1 IP2:PORT2")
    socks = []
    for ep in args.endpoints:
        s = new_socket(ep)
        s.bind(endpoint(ep))
        socks.append(s)
    if args.ready:
        write_atomically(args.ready, " ".join(fmt(s.getsockname()) for s in socks))
    while True:
        r, _, _ = select.select(socks, [], [])
        for s in r:
            try:
                data, src = s.recvfrom(2048)
            except OSError:
                continue
            if len(data) < 20:
                continue
            kind, length, cookie = struct.unpack("!HHI", data[:8])
            if kind != 0x0001 or cookie != STUN_COOKIE or len(data) < 20 + length:
                continue
            change_ip = change_port = 0
            pos = 20
            while pos + 4 <= 20 + length:
                attr, alen = struct.unpack("!HH", data[pos:pos + 4])
                if attr == 0x0003 and alen == 4:
                    flags = struct.unpack("!I", data[pos + 4:pos + 8])[0]
                    change_ip, change_port = (flags >> 2) & 1, (flags >> 1) & 1
                pos += 4 + ((alen + 3) & ~3)
            i = socks.index(s)
            out = socks[(i ^ (2 * change_ip)) ^ change_port]
            other = socks[i ^ 3].getsockname()
            attrs = (stun_addr_attr(0x0001, src) + stun_addr_attr(0x0020, src, xor=True)
                     + stun_addr_attr(0x802C, other))
            reply = struct.pack("!HHI", 0x0101, len(attrs), STUN_COOKIE) + data[8:20] + attrs
            try:
                out.sendto(reply, src[:2])
            except OSError:
                pass


def write_atomically(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text + "\n")
    os.rename(tmp, path)


def main():
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    ap = argparse.ArgumentParser(description="UDP probes for the NAT lab")
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("probe")
    p.add_argument("--bind")
    p.add_argument("--timeout", type=float, default=2.0)
    p.add_argument("--window", type=float, default=0.3)
    p.add_argument("steps", nargs="+")
    t = sub.add_parser("stun")
    t.add_argument("--ready")
    t.add_argument("endpoints", nargs="+")
    r = sub.add_parser("reflect")
    r.add_argument("--ready")
    r.add_argument("--learn")
    r.add_argument("--mapped")
    r.add_argument("endpoints", nargs="+")
    args = ap.parse_args()
    if args.cmd == "probe":
        probe(args)
    elif args.cmd == "stun":
        stun(args)
    else:
        if args.learn and not args.mapped:
            ap.error("--learn needs --mapped")
        reflect(args)


if __name__ == "__main__":
    main()
