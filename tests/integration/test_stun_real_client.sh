#!/usr/bin/env bash
# The intermediate answers plain STUN Binding requests (RFC 8489) and serves NAT behaviour
# discovery (RFC 5780) from 127.0.0.1 and 127.0.0.2, each with the --listen port and an alternate
# port (docs/protocol.md §12):
#  - coturn's turnutils_stunclient, bound to an address of its own, gets its reflexive address
#    (the address the client really sends from) and runs its RFC 5780 sequence: a plain request,
#    then CHANGE-REQUEST with RESPONSE-PORT (answered from 127.0.0.2's alternate port to the next
#    port of the client), then a PADDING request of over 1500 bytes, which is dropped as oversize;
#  - a Python client checks each answer byte by byte: XOR-MAPPED-ADDRESS and MAPPED-ADDRESS equal
#    its own address, RESPONSE-ORIGIN is the address the datagram really came from for every
#    CHANGE-REQUEST, OTHER-ADDRESS, the 3x size bound, 420 and 400; that requests with
#    credentials, responses, indications, junk and oversize datagrams get no answer at all; and
#    that a burst from one source beyond its rate gets only the burst allowance answered;
#  - the agent's and the connector's shared sockets still drop the same unauthenticated requests
#    unanswered (RFC 8445 §7.3: only checks with the session's credentials are answered);
#  - the tunnel carries data before and after.
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

ztna_setup
ztna_require_tools turnutils_stunclient
ztna_make_certs
ztna_random_file "$ZTNA_TMP/www/blob.bin" $((1 << 20))

ztna_start_nginx "$ZTNA_TMP/www"
web_port=$(ztna_free_port tcp)
alt_port=$(ztna_free_port udp)
rate=10 # per source per second; twice as many at once
ztna_start_intermediate --stun-alternate-port "$alt_port" --stun-alternate-address 127.0.0.2 \
  --stun-rate-per-source "$rate"
port=$ZTNA_INT_PORT
ztna_start_connector conn1 --service "web=tcp://127.0.0.1:$ZTNA_NGINX_PORT"
ztna_start_agent agent1 --expose "web=tcp://127.0.0.1:$web_port"
ztna_wait_connected conn1 agent1
ztna_wait_service web
ztna_wait_tcp_listener agent1 "$web_port"
ztna_fetch "http://127.0.0.1:$web_port/blob.bin" "$ZTNA_TMP/before.bin" 30
cmp -s "$ZTNA_TMP/www/blob.bin" "$ZTNA_TMP/before.bin" || ztna_fail "content differs before STUN"

# Where STUN is answered: one log line at start-up, and the status.
where="127.0.0.1:$port \(the shared socket\), 127.0.0.1:$alt_port, 127.0.0.2:$port, 127.0.0.2:$alt_port \(STUN only\)"
ztna_log_has intermediate "STUN Binding \(RFC 8489\) answered on udp $where; RFC 5780 behaviour discovery on" ||
  ztna_fail "no start-up line saying where STUN is answered"
ztna_jq intermediate '.stun.rfc5780 == true and
  .stun.sockets.primary.local == "127.0.0.1:\($p)" and
  .stun.sockets.alternate_port.local == "127.0.0.1:\($a)" and
  .stun.sockets.alternate_address.local == "127.0.0.2:\($p)" and
  .stun.sockets.alternate_both.advertised == "127.0.0.2:\($a)"' \
  --arg p "$port" --arg a "$alt_port" >/dev/null || ztna_fail "status: $(ztna_json intermediate | jq -c .stun)"

stun_counter() {
  ztna_json intermediate | jq -r --arg c "$1" '.stun.counters[$c] // 0'
}

wait_stun_counter() {
  ztna_wait_json intermediate "$3" "stun counter $1 >= $2" '.stun.counters[$c] >= ($m | tonumber)' \
    --arg c "$1" --arg m "$2"
}

# ---- coturn's client ----------------------------------------------------------------------------
# stunclient NAME LOCAL_IP [-f]: turnutils_stunclient from LOCAL_IP. The answer to its first request
# carries OTHER-ADDRESS, so with or without -f it goes on with RFC 5780: CHANGE-REQUEST (IP and
# port) with RESPONSE-PORT = its port + 1, answered there from 127.0.0.2:alt_port; then, from that
# second socket, a request padded past 1500 bytes, which the intermediate drops (and the client
# waits for forever: it has no timeout).
stunclient() {
  local name=$1 ip=$2 flag=${3:-} oversize pid log sock reflexive
  oversize=$(stun_counter dropped_oversize)
  # shellcheck disable=SC2086 # $flag is empty or one word
  ztna_spawn "$name" 0 turnutils_stunclient $flag -L "$ip" -p "$port" 127.0.0.1
  pid=$ZTNA_LAST_PID
  log=${ZTNA_LOG_OF[$pid]}
  wait_stun_counter dropped_oversize $((oversize + 1)) 10
  ztna_wait_for 10 "$name printed its second RFC 5780 response" grep -q "RFC 5780 response 2" "$log"
  # The one socket the client holds now is the second one, bound to (first port + 1) with
  # getsockname's answer for the first: the real source port of the first two requests.
  sock=$(ss -Huanp | grep -F "pid=$pid," | awk '{print $4}')
  [[ $sock == "$ip":* ]] || ztna_fail "$name: no UDP socket on $ip (ss: $sock)"
  reflexive="$ip:$((${sock##*:} - 1))"
  ztna_stop_pids 5 "$pid"
  ztna_log "$name output:"$'\n'"$(cat "$log")"
  # Both answers name the real source, the second came from 127.0.0.2's alternate port (both IP
  # and port changed) and named that as its origin and as the other address.
  # (It prints lines like "0: : IPv4. UDP reflexive addr: 127.0.0.3:41234".)
  [[ $(grep -c "reflexive addr" "$log") == 2 && $(grep -c "reflexive addr: $reflexive\$" "$log") == 2 ]] ||
    ztna_fail "$name: the reflexive address is not $reflexive in both answers"
  if [[ $(grep -c "Response origin" "$log") != 1 ]] ||
    ! grep -q "Response origin: : 127.0.0.2:$alt_port\$" "$log"; then
    ztna_fail "$name: the second answer did not come from 127.0.0.2:$alt_port"
  fi
  if ! grep -q "Other addr" "$log" || grep "Other addr" "$log" | grep -vq ": 127.0.0.2:$alt_port\$"; then
    ztna_fail "$name: OTHER-ADDRESS is not 127.0.0.2:$alt_port"
  fi
  ztna_log "$name: reflexive $reflexive (its own socket), CHANGE-REQUEST answered from 127.0.0.2:$alt_port to port $((${sock##*:})), padded request dropped"
}

answered=$(stun_counter answered)
changed=$(stun_counter answered_changed)
to_port=$(stun_counter answered_to_port)
stunclient stunclient-plain 127.0.0.3
stunclient stunclient-rfc5780 127.0.0.4 -f
(($(stun_counter answered) >= answered + 4)) || ztna_fail "fewer than 4 answers counted"
(($(stun_counter answered_changed) >= changed + 2)) || ztna_fail "CHANGE-REQUEST answers not counted"
(($(stun_counter answered_to_port) >= to_port + 2)) || ztna_fail "RESPONSE-PORT answers not counted"

# ---- byte-level checks and the rate limit, from Python ------------------------------------------
before=$(ztna_json intermediate | jq -c .stun.counters)
burst=100
result=$("$ZTNA_PYTHON" - "$port" "$alt_port" "$burst" "$ZTNA_TIME_SCALE" <<'EOF'
import os, select, socket, struct, sys, zlib

PORT, ALT, BURST, SCALE = (int(a) for a in sys.argv[1:5])
COOKIE = 0x2112A442
PRIMARY, OTHER = ("127.0.0.1", PORT), ("127.0.0.2", ALT)
# RFC 5780's four sockets; bit 1 is the alternate address, bit 0 the alternate port.
SOCKETS = [("127.0.0.1", PORT), ("127.0.0.1", ALT), ("127.0.0.2", PORT), ("127.0.0.2", ALT)]
FLIP = {0x4: 2, 0x2: 1, 0x6: 3}  # CHANGE-REQUEST flags: change IP, change port, both
TIMEOUT = 5 * SCALE


def fail(msg):
    print("FAIL: " + msg)
    sys.exit(1)


def attr(t, v):
    return struct.pack(">HH", t, len(v)) + v + bytes(-len(v) % 4)


def stun(mtype, attrs=b"", fingerprint=True):
    """A STUN message with a fresh transaction ID; returns (bytes, tx)."""
    tx = os.urandom(12)
    def header(length):
        return struct.pack(">HHI", mtype, length, COOKIE) + tx
    body = attrs
    if fingerprint:
        crc = zlib.crc32(header(len(body) + 8) + body) ^ 0x5354554E
        body += attr(0x8028, struct.pack(">I", crc))
    return header(len(body)) + body, tx


def parse(d):
    mtype, length, cookie = struct.unpack(">HHI", d[:8])
    if cookie != COOKIE or length != len(d) - 20:
        fail("answer is not STUN: " + d.hex())
    attrs, off = {}, 20
    while off < len(d):
        t, n = struct.unpack(">HH", d[off:off + 4])
        attrs.setdefault(t, d[off + 4:off + 4 + n])
        off += 4 + n + (-n % 4)
    return mtype, d[8:20], attrs


def address(v, tx=None):
    family, port = v[1], struct.unpack(">H", v[2:4])[0]
    if family != 1:
        fail("not IPv4: " + v.hex())
    ip = v[4:8]
    if tx is not None:  # XOR-MAPPED-ADDRESS
        port ^= COOKIE >> 16
        ip = bytes(a ^ b for a, b in zip(ip, struct.pack(">I", COOKIE)))
    return socket.inet_ntoa(ip), port


def udp(ip):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((ip, 0))
    return s


def receive(s, timeout=TIMEOUT):
    if not select.select([s], [], [], timeout)[0]:
        return None
    return s.recvfrom(2048)


def ask(s, to, msg, tx, what):
    """Sends msg to `to`, returns (answer bytes, where it came from, parsed)."""
    s.sendto(msg, to)
    got = receive(s)
    if got is None:
        fail(what + ": no answer")
    d, src = got
    mtype, rtx, attrs = parse(d)
    if rtx != tx:
        fail(what + ": answer for another transaction")
    if len(d) > 3 * len(msg):
        fail("%s: answer of %d bytes to a request of %d" % (what, len(d), len(msg)))
    return d, src, mtype, attrs


def success(s, to, msg, tx, what):
    d, src, mtype, a = ask(s, to, msg, tx, what)
    if mtype != 0x0101:
        fail("%s: not a success response (type %04x)" % (what, mtype))
    if address(a[0x0020], tx) != s.getsockname():
        fail(what + ": XOR-MAPPED-ADDRESS %s is not the client's %s" % (address(a[0x0020], tx), s.getsockname()))
    return d, src, a


padded = attr(0x8022, b"python stun probe")  # SOFTWARE, so that every attribute fits in 3x

# 1. Answers, from 127.0.0.5.
s = udp("127.0.0.5")
msg, tx = stun(0x0001, fingerprint=False)  # a bare 20-byte request
d, src, a = success(s, PRIMARY, msg, tx, "bare request")
if len(d) > 60 or src != PRIMARY or address(a[0x802C]) != OTHER:
    fail("bare request: %d bytes from %s, OTHER-ADDRESS %s" % (len(d), src, a.get(0x802C)))
for i, to in enumerate(SOCKETS):
    msg, tx = stun(0x0001, padded)
    d, src, a = success(s, to, msg, tx, "request to %s:%d" % to)
    if src != to or address(a[0x802B]) != to or address(a[0x0001]) != s.getsockname():
        fail("%s: answer from %s, RESPONSE-ORIGIN %s, MAPPED-ADDRESS %s"
             % (to, src, address(a[0x802B]), address(a[0x0001])))
    if address(a[0x802C]) != SOCKETS[i ^ 3]:  # the other IP and the other port (RFC 5780 §6.1)
        fail("%s: OTHER-ADDRESS %s" % (to, address(a[0x802C])))
# CHANGE-REQUEST to each socket: the answer really leaves from the changed address.
for i, to in enumerate(SOCKETS):
    for flags, flip in FLIP.items():
        msg, tx = stun(0x0001, padded + attr(0x0003, struct.pack(">I", flags)))
        d, src, a = success(s, to, msg, tx, "CHANGE-REQUEST %d to %s:%d" % ((flags,) + to))
        want = SOCKETS[i ^ flip]
        if src != want or address(a[0x802B]) != want:
            fail("CHANGE-REQUEST %d to %s: answer from %s (RESPONSE-ORIGIN %s), expected %s"
                 % (flags, to, src, address(a[0x802B]), want))
# RESPONSE-PORT: the answer goes to another socket of the same IP.
r = udp("127.0.0.5")
msg, tx = stun(0x0001, padded + attr(0x0027, struct.pack(">HH", r.getsockname()[1], 0)))
s.sendto(msg, PRIMARY)
got = receive(r)
if got is None or parse(got[0])[1] != tx or address(parse(got[0])[2][0x0020], tx) != s.getsockname():
    fail("RESPONSE-PORT: no answer at the other port naming the sender")
print("answers ok: 1 bare, 4 sockets, 12 CHANGE-REQUEST, 1 RESPONSE-PORT")

# 2. Error responses and silence, from 127.0.0.6. A silent case is followed by a plain request
# from the same socket: its answer leaves the same server socket after any answer to the first,
# so the first answer we read must be the plain one's.
s = udp("127.0.0.6")
msg, tx = stun(0x0001, attr(0x0026, bytes(8)) + padded)  # PADDING: not supported
d, src, mtype, a = ask(s, PRIMARY, msg, tx, "PADDING")
if mtype != 0x0111 or a[0x0009][2:4] != bytes([4, 20]) or a[0x000A] != struct.pack(">H", 0x0026):
    fail("PADDING: not a 420 naming 0x0026: " + d.hex())
msg, tx = stun(0x0003, padded)  # Allocate: this is not a TURN server
d, src, mtype, a = ask(s, PRIMARY, msg, tx, "Allocate")
if mtype != 0x0113 or a[0x0009][2:4] != bytes([4, 0]):
    fail("Allocate: not a 400: " + d.hex())
silent = {
    "USERNAME": stun(0x0001, attr(0x0006, b"remote:local") + padded),
    "MESSAGE-INTEGRITY": stun(0x0001, padded + attr(0x0008, bytes(20))),
    "success response": stun(0x0101, attr(0x0020, bytes(8))),
    "indication": stun(0x0011, padded),
    "oversize": stun(0x0001, attr(0x8123, bytes(1476))),
    "bad FINGERPRINT": (lambda m: (m[0][:-1] + bytes([m[0][-1] ^ 1]), m[1]))(stun(0x0001, padded)),
}
for what, (msg, tx) in silent.items():
    s.sendto(msg, PRIMARY)
    plain, ptx = stun(0x0001, padded)
    success(s, PRIMARY, plain, ptx, "request after " + what)
print("silence ok: " + ", ".join("%s (%d bytes)" % (w, len(m)) for w, (m, _) in silent.items()))

# 3. A burst from 127.0.0.7 beyond its rate; then one request from 127.0.0.8: once that is
# answered, every answer to the burst is already in 127.0.0.7's buffer.
s = udp("127.0.0.7")
sent = set()
for _ in range(BURST):
    msg, tx = stun(0x0001, padded)
    sent.add(tx)
    s.sendto(msg, PRIMARY)
m8 = udp("127.0.0.8")
msg, tx = stun(0x0001, padded)
success(m8, PRIMARY, msg, tx, "request after the burst")
got = 0
while True:
    r = receive(s, 0)
    if r is None:
        break
    mtype, rtx, a = parse(r[0])
    if mtype != 0x0101 or rtx not in sent or address(a[0x0020], rtx) != s.getsockname():
        fail("burst: unexpected answer " + r[0].hex())
    sent.discard(rtx)
    got += 1
print("burst %d" % got)
EOF
)
ztna_log "python: ${result//$'\n'/; }"
[[ $result != *FAIL* ]] || ztna_fail "python: $result"
got=$(sed -n 's/^burst //p' <<<"$result")
after=$(ztna_json intermediate | jq -c .stun.counters)
delta() {
  jq -n --argjson b "$before" --argjson a "$after" --arg c "$1" '$a[$c] - $b[$c]'
}
# The burst allowance is 2 x rate; the burst takes well under a second (scaled) to send and
# handle, and tokens come back at $rate a second.
((got >= 2 * rate && got <= 2 * rate + rate * ZTNA_TIME_SCALE)) ||
  ztna_fail "burst of $burst: $got answered, expected about $((2 * rate))"
(($(delta dropped_source_limit) >= burst - got)) ||
  ztna_fail "burst: $((burst - got)) unanswered but dropped_source_limit grew by $(delta dropped_source_limit)"
(($(delta dropped_credentials) >= 2)) || ztna_fail "credentials: $(delta dropped_credentials)"
[[ $(delta dropped_oversize) == 1 ]] || ztna_fail "oversize: $(delta dropped_oversize)"
(($(delta dropped_not_request) >= 2)) || ztna_fail "not requests: $(delta dropped_not_request)"
(($(delta dropped_invalid) >= 1)) || ztna_fail "invalid: $(delta dropped_invalid)"
(($(delta unknown_attribute) >= 1 && $(delta bad_request) >= 1)) || ztna_fail "420/400 not counted"
[[ $(delta dropped_amplification) == 0 ]] || ztna_fail "an answer did not fit in 3x"
ztna_log "intermediate stun counters: $after"

# ---- the agent and the connector: unauthenticated requests are dropped ----------------------------
# probe NAME PORT: run the client twice (plain, then -f) against 127.0.0.1:PORT and wait for NAME's
# stun_unauthenticated to grow by one each time. Unanswered, the client waits forever: stop it.
probe() {
  local name=$1 port=$2 before flag run=0
  before=$(ztna_counter "$name" stun_unauthenticated)
  for flag in "" -f; do
    run=$((run + 1))
    # shellcheck disable=SC2086 # $flag is empty or one word
    ztna_spawn "stunclient-$name-$run" 0 turnutils_stunclient $flag -p "$port" 127.0.0.1
    ztna_wait_counter "$name" stun_unauthenticated $((before + run)) 10
    ztna_stop_pids 5 "$ZTNA_LAST_PID"
    # The client prints the reflexive address only when it got a response.
    if grep -qi "reflexive" "${ZTNA_LOG_OF[$ZTNA_LAST_PID]}"; then
      ztna_fail "$name answered an unauthenticated Binding request: $(cat "${ZTNA_LOG_OF[$ZTNA_LAST_PID]}")"
    fi
  done
  ztna_log "$name: stun_unauthenticated $before -> $(ztna_counter "$name" stun_unauthenticated), no response sent"
}

for peer in agent1 conn1; do
  addr=$(ztna_json "$peer" | jq -r '.control.observed_address // empty')
  [[ $addr == 127.0.0.1:* ]] || ztna_fail "$peer has no IPv4 loopback observed address ($addr)"
  probe "$peer" "${addr##*:}"
  [[ $(ztna_counter "$peer" stun_malformed) == 0 ]] || ztna_fail "$peer counted a real client's request as malformed"
done

ztna_fetch "http://127.0.0.1:$web_port/blob.bin" "$ZTNA_TMP/after.bin" 30
cmp -s "$ZTNA_TMP/www/blob.bin" "$ZTNA_TMP/after.bin" || ztna_fail "content differs after STUN"

ztna_pass
