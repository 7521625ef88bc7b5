#!/usr/bin/env bash
# Port mapping (io::PortMapper, docs/port-mapping.md) in the NAT lab, with ztna-portmap-probe:
# the port of one UDP socket, mapped on the gateway as the agent and the connector map theirs.
#
# Behind an apdm router running miniupnpd (natlab_router --upnp: UPnP-IGD, NAT-PMP and PCP), for
# each protocol forced in turn (PCP, NAT-PMP, UPnP-IGD found by SSDP, UPnP-IGD from its URL,
# and auto, which must pick PCP):
#   - before the probe runs, WAN:port is closed (the router is symmetric and drops unsolicited
#     packets);
#   - the probe obtains a mapping of its socket's port on the router's WAN address;
#   - a packet from a public host, from each of two addresses, to WAN:external port reaches the
#     probe's socket: natprobe's obs step gets the probe's answer naming the public host's own
#     address as the source, and the probe reports the datagram;
#   - miniupnpd lists the mapping (upnpc -l over its control URL, and its lease file);
#   - with a lifetime of 4 s, NAT-PMP and UPnP-IGD renew every 2 s (miniupnpd gives PCP 120 s
#     at least, which the probe must take: no renewal within the test);
#   - after SIGTERM the probe deletes the mapping and exits 0: the same packet no longer gets
#     in, and neither upnpc -l nor the lease file lists the port.
# Then routers without a port mapping protocol, where the probe (--exit-on-failure) must report
# why within the bound of the default timers, 3.75 s (PCP) + 3.75 s (NAT-PMP) + 10 s (UPnP-IGD
# job) = 17.5 s:
#   - a router without miniupnpd, which refuses port 5351 (ICMP port unreachable): PCP fails at
#     once, NAT-PMP is not tried, and SSDP discovery waits its 2 x 1 s;
#   - the same router dropping port 5351 silently: PCP and NAT-PMP each time out after four
#     requests in 3.75 s;
#   - NAT-PMP alone against the refusing router (libnatpmp's socket sees the ICMP error).
# Needs root (network namespaces); fails if the lab cannot be set up.
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"
# shellcheck source=../natlab/natlab.sh
source "$ZTNA_REPO/tests/natlab/natlab.sh"

A1=203.0.113.20
A2=203.0.113.21
BOUND_MS=17500

ztna_setup --no-binaries
PROBE=$ZTNA_BUILD_DIR/tests/ztna-portmap-probe
[[ -x $PROBE ]] || ztna_fail "ztna-portmap-probe is not built ($PROBE; set ZTNA_BUILD_DIR or build it)"
ztna_require_tools upnpc
natlab_init
natprobe=("$NATLAB_PYTHON" "$NATLAB_PROBE")

natlab_public_host refl "$A1" "$A2"
natlab_router up --mapping apdm --upnp
natlab_host h1 up
natlab_router plain --mapping apdm
natlab_host h2 plain

wan=$(natlab_public_addr up)
url=$(natlab_upnp_url up)
h1_addr=$(natlab_addr h1)
plain_gw=$(natlab_addr plain)
conf=$NATLAB_RUN_DIR/up-upnp.conf
leases=$(sed -n 's/^lease_file=//p' "$conf" 2>/dev/null) ||
  ztna_fail "no miniupnpd configuration at $conf"
[[ -n $leases ]] || ztna_fail "miniupnpd's configuration $conf names no lease file"

# seen SRC PORT TIMEOUT: the source the probe's socket saw of a PING from the public host at SRC
# to the router's WAN:PORT (natprobe's obs step), or "none".
seen() {
  natlab_exec refl "${natprobe[@]}" probe --bind "$1:0" --timeout "$3" obs "$wan:$2" |
    awk 'NR == 2 { print $3 }'
}

# closed WHAT PORT: nothing gets in through WAN:PORT within a 0.5 s window.
closed() {
  local s
  s=$(seen "$A1" "$2" 0.5)
  [[ $s == none ]] || ztna_fail "$1: $wan:$2 is open (the probe saw $s)"
}

# listed PORT: miniupnpd has a mapping of that external UDP port (its control URL, and its lease
# file: UDP:EXT:INT_IP:INT_PORT:...).
listed() {
  natlab_exec h1 upnpc -u "$url" -l 2>/dev/null | grep -qE "^ *[0-9]+ UDP +$1->" &&
    grep -q "^UDP:$1:" "$leases" 2>/dev/null
}
unlisted() {
  ! natlab_exec h1 upnpc -u "$url" -l 2>/dev/null | grep -qE "^ *[0-9]+ UDP +$1->" &&
    ! grep -q "^UDP:$1:" "$leases" 2>/dev/null
}

# event NAME EVENT: the probe's first JSON line of that event ("" if none yet); has_event: one
# has come.
event() {
  grep -m1 "^{.*\"event\":\"$2\"" "$(ztna_logfile "$1")" || true
}
has_event() {
  grep -q "^{.*\"event\":\"$2\"" "$(ztna_logfile "$1")"
}

# map_case NAME PROTOCOL PORT EXPECTED_PROTOCOL [probe options...]
map_case() {
  local name=$1 proto=$2 port=$3 want=$4
  shift 4
  local p=pm-$name line got ext eport ms lifetime a s stopped
  closed "$name: before the probe" "$port"
  ztna_spawn "$p" 1 ip netns exec "$(natlab_ns h1)" "$PROBE" --bind "0.0.0.0:$port" \
    --protocol "$proto" --lifetime 4 --log-level debug "$@"
  ztna_wait_for 15 "$name: a mapping" has_event "$p" mapping
  line=$(event "$p" mapping)
  got=$(jq -r .protocol <<<"$line")
  ext=$(jq -r .external <<<"$line")
  ms=$(jq -r '.elapsed_ms | floor' <<<"$line")
  lifetime=$(jq -r .lifetime_s <<<"$line")
  [[ $got == "$want" ]] || ztna_fail "$name: mapped with $got, expected $want: $line"
  [[ $(jq -r .internal_port <<<"$line") == "$port" ]] || ztna_fail "$name: wrong internal port: $line"
  [[ $ext == "$wan":* ]] || ztna_fail "$name: external $ext is not on the router's WAN address $wan"
  eport=${ext##*:}
  if [[ $want == pcp ]]; then
    [[ $lifetime == 120 ]] || ztna_fail "$name: miniupnpd gives PCP 120 s at least, the probe says $lifetime"
  else
    [[ $lifetime == 4 ]] || ztna_fail "$name: lifetime $lifetime, asked for 4"
  fi
  for a in "$A1" "$A2"; do
    s=$(seen "$a" "$eport" 2)
    [[ $s == "$a":* ]] || ztna_fail "$name: $wan:$eport from $a reached '$s', not the probe's socket"
    ztna_wait_for 5 "$name: the probe reports the datagram from $a" \
      grep -q "^{.*\"event\":\"received\".*\"from\":\"$a:" "$(ztna_logfile "$p")"
  done
  ztna_wait_for 5 "$name: miniupnpd lists $eport" listed "$eport"
  if [[ $want != pcp ]]; then
    ztna_wait_for 5 "$name: a renewal (lifetime 4 s)" ztna_log_has "$p" "port mapping: renewed $ext"
  fi
  ztna_stop "$p"
  stopped=$(event "$p" stopped)
  [[ $(jq -r .deleted <<<"$stopped") == true ]] || ztna_fail "$name: not deleted: $stopped"
  [[ $(jq -r .status.counters.deletions <<<"$stopped") == 1 ]] || ztna_fail "$name: $stopped"
  if [[ $want != pcp ]]; then
    (($(jq -r .status.counters.renewals <<<"$stopped") >= 1)) || ztna_fail "$name: no renewal: $stopped"
  fi
  closed "$name: after the probe stopped" "$eport"
  unlisted "$eport" || ztna_fail "$name: miniupnpd still lists $eport after the deletion"
  ztna_log "$name: $wan:$eport -> $h1_addr:$port via $got in $ms ms (lifetime $lifetime s), reached from $A1 and $A2; deleted at stop, closed again"
}

map_case pcp pcp 41001 pcp
map_case natpmp natpmp 41002 natpmp
map_case upnp upnp 41003 upnp
map_case upnp-url upnp 41004 upnp --upnp-url "$url"
map_case auto auto 41005 pcp

# no_gateway NAME EXPECTED_REASON [probe options...]: the probe behind "plain" fails, says why,
# within the bound, and exits 1.
no_gateway() {
  local name=$1 want=$2 out rc=0 line reason ms
  shift 2
  out=$(timeout 60 ip netns exec "$(natlab_ns h2)" "$PROBE" --exit-on-failure "$@" \
    2>>"$ZTNA_TMP/logs/probe-$name.log") || rc=$?
  [[ $rc == 1 ]] || ztna_fail "$name: exit status $rc, expected 1: $out"
  line=$(grep -m1 '"event":"failure"' <<<"$out") || ztna_fail "$name: no failure reported: $out"
  reason=$(jq -r .reason <<<"$line")
  ms=$(jq -r '.elapsed_ms | floor' <<<"$line")
  [[ $reason == "$want" ]] || ztna_fail "$name: reason '$reason', expected '$want'"
  ((ms <= BOUND_MS * ZTNA_TIME_SCALE)) || ztna_fail "$name: failure after $ms ms, over the bound of $BOUND_MS ms"
  grep -q '"event":"stopped"' <<<"$out" || ztna_fail "$name: did not stop: $out"
  ztna_log "$name: failure after $ms ms (bound $BOUND_MS ms): $reason"
}

ssdp="UPnP-IGD: no UPnP device answered SSDP discovery within 2000 ms"
no_gateway refused \
  "no gateway gave a port mapping: PCP: $plain_gw refused port 5351 (ICMP port unreachable); NAT-PMP: not tried: $plain_gw refused port 5351; $ssdp"
no_gateway natpmp-refused \
  "no gateway gave a port mapping: NAT-PMP: $plain_gw refused port 5351 (ICMP port unreachable)" \
  --protocol natpmp
# The router drops whatever comes to its port 5351: no ICMP, only silence.
natlab_exec plain nft -f - <<'EOF' || ztna_fail "cannot make the router drop port 5351"
table inet pmtest {
  chain input {
    type filter hook input priority filter - 10; policy accept;
    udp dport 5351 drop
  }
}
EOF
silent="no answer from $plain_gw:5351 (4 requests in 3750 ms)"
no_gateway silent "no gateway gave a port mapping: PCP: $silent; NAT-PMP: $silent; $ssdp"

ztna_pass
