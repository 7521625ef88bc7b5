#!/usr/bin/env bash
# Junk on the UDP sockets: random datagrams, truncated and unauthorized relay-looking frames
# (first byte 0x20), STUN-looking bytes (first byte 0x00/0x01) and malformed QUIC-looking packets
# go to the intermediate, and the same mix to the agent's and connector's sockets. Every daemon must
# keep serving (a fetch through the tunnel succeeds afterwards) and the intermediate must have
# counted junk or unauthorized relay frames.
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

ztna_setup
ztna_make_certs
ztna_random_file "$ZTNA_TMP/www/blob.bin" $((1 << 20))
ztna_start_web_stack
web_port=$ZTNA_WEB_PORT

# A session exists before the junk arrives, so relay state is live while it is attacked.
ztna_fetch "http://127.0.0.1:$web_port/blob.bin" "$ZTNA_TMP/before.bin" 30
cmp -s "$ZTNA_TMP/www/blob.bin" "$ZTNA_TMP/before.bin" || ztna_fail "content differs before junk"

cat >"$ZTNA_TMP/junk.py" <<'PY'
"""Sends a bounded, seeded mix of malformed datagrams to each HOST:PORT given."""
import random, socket, struct, sys, time

seed = int(sys.argv[1])
targets = [(h, int(p)) for h, p in (t.rsplit(":", 1) for t in sys.argv[2:])]
rng = random.Random(seed)
rb = lambda n: bytes(rng.getrandbits(8) for _ in range(n))


def datagrams():
    for _ in range(300):  # anything at all
        yield rb(rng.randint(1, 1500))
    yield b""  # empty datagram
    for _ in range(100):  # truncated relay-looking frames
        yield b"\x20" + rb(rng.randint(0, 15))
    for _ in range(100):  # relay-looking frames for sessions that were never authorized
        yield b"\x20" + rb(rng.randint(16, 1400))
    for n in range(0x20, 0x40):  # the rest of the non-QUIC, non-STUN first-byte range
        yield bytes([n]) + rb(rng.randint(0, 64))
    for _ in range(100):  # STUN-looking garbage
        yield bytes([rng.randint(0, 3)]) + rb(rng.randint(0, 100))
    for _ in range(100):  # STUN headers with magic cookie and lying lengths / bad attributes
        mtype = rng.choice([0x0001, 0x0101, 0x0111, 0x0011, rng.getrandbits(14)])
        body = rb(rng.randint(0, 64))
        length = rng.choice([len(body), len(body) + 4, 0xFFFC, rng.getrandbits(16)])
        yield struct.pack("!HHI", mtype, length, 0x2112A442) + rb(12) + body
    for _ in range(100):  # QUIC long headers: odd versions, oversized/truncated CIDs
        first = 0xC0 | rng.getrandbits(6)
        version = rng.choice([0x00000001, 0x00000000, 0x6B3343CF, rng.getrandbits(32)])
        dcid_len = rng.choice([0, 8, 20, 21, 255])
        pkt = bytes([first]) + struct.pack("!I", version) + bytes([dcid_len]) + rb(min(dcid_len, 20))
        pkt += rb(rng.choice([0, 10, 1200 - len(pkt)]))
        yield pkt
    for _ in range(100):  # QUIC short headers with unknown connection IDs
        yield bytes([0x40 | rng.getrandbits(6)]) + rb(rng.randint(1, 1300))


sent = 0
deadline = time.monotonic() + 20
socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(4)]
for t in targets:
    for i, d in enumerate(datagrams()):
        if time.monotonic() > deadline:
            break
        try:
            socks[i % len(socks)].sendto(d, t)
            sent += 1
        except OSError:
            pass
        if i % 50 == 49:
            time.sleep(0.005)  # pace a little so most of it is read, not dropped by the kernel
print(f"seed {seed}: sent {sent} junk datagrams to {len(targets)} targets")
PY

targets=("127.0.0.1:$ZTNA_INT_PORT")
for peer in agent1 conn1; do
  addr=$(ztna_json "$peer" | jq -r '.control.observed_address // empty')
  [[ $addr == 127.0.0.1:* ]] && targets+=("$addr")
done
seed=${ZTNA_JUNK_SEED:-$RANDOM}
before_junk=$(ztna_counter intermediate junk_datagrams)
before_unauth=$(ztna_counter intermediate relay_frames_unauthorized)
ztna_log "$("$ZTNA_PYTHON" "$ZTNA_TMP/junk.py" "$seed" "${targets[@]}")"

ztna_wait_json intermediate 15 "junk_datagrams or relay_frames_unauthorized grew" \
  '((.counters.junk_datagrams // 0) > ($j | tonumber)) or ((.counters.relay_frames_unauthorized // 0) > ($u | tonumber))' \
  --arg j "$before_junk" --arg u "$before_unauth"
ztna_log "intermediate counters after junk: $(ztna_json intermediate | jq -c .counters)"

# Everyone still works: control connections up, and data flows.
ztna_wait_connected conn1 agent1
ztna_fetch "http://127.0.0.1:$web_port/blob.bin" "$ZTNA_TMP/after.bin" 30
cmp -s "$ZTNA_TMP/www/blob.bin" "$ZTNA_TMP/after.bin" || ztna_fail "content differs after junk"
ztna_log "fetch through the tunnel still works after the junk (seed $seed)"

ztna_pass
