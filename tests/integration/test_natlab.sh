#!/usr/bin/env bash
# The NAT lab's self-test: the routers behave as configured, measured RFC 4787 style with
# tests/natlab/natprobe.py against a reflector on two addresses x two ports, and the lab leaves
# nothing behind. No daemon involved. Needs root; it fails (never skips) if the lab cannot be set up.
#
# Per router (every mapping x filtering, with the firewall on (hairpin off) and off (hairpin on);
# the sequential mapping with two of them):
#   mapping    one socket asks A1:P1, A1:P2, A2:P1 which mapping they see (seq: ports n, n+1, n+2)
#   filtering  a fresh socket talks to A1:P1, which then sends from A1:P2 and from A2:P2
#   trap       a fresh socket talks to A1:P1; A2:P2 sends to that mapping unsolicited; then the
#              socket talks to A2:P2: with the firewall off the unsolicited packet has claimed the
#              tuple (a conntrack entry to the router itself), so an eim router must pick another
#              port; with it on nothing is claimed
#   hairpin    h1 sends to the router's public mapping of h2
#   same LAN   h1 sends to h2's LAN address: no NAT in between
# Then IPv6 next to the NAT (--ipv6: global addresses behind stateful firewalls: answers and
# nothing unsolicited get in, address-and-port-dependent or endpoint-independent, simultaneous
# open between two firewalls, natlab_block), UPnP-IGD / NAT-PMP / PCP port mappings on a
# symmetric router (miniupnpd: a mapping opens the port to every remote endpoint, deleting it
# closes it, other traffic stays symmetric), double NAT (CGNAT), WAN links with delay and loss (round-trip times and answered share
# measured alongside the matrix), a public peer, natlab_block/unblock, natlab_flush_conntrack,
# the topology helpers with their setup/teardown time, cleanup after an induced failure (in a
# subshell, and in a separate process without lib.sh), after SIGKILL (natlab_cleanup_stale, which
# also stops the dead run's delay links), and that the root namespace is untouched.
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"
# shellcheck source=../natlab/natlab.sh
source "$ZTNA_REPO/tests/natlab/natlab.sh"

A1=203.0.113.20
A2=203.0.113.21
P1=3478
P2=3479
INTER=203.0.113.10
PEER=203.0.113.30
INTER6=2001:db8::10
B1=2001:db8::20
B2=2001:db8::21
P3=40000

root_state() {
  {
    ip -o link show | awk -F': ' '{ print $2 }' | sort
    ip -o addr show | awk '{ print $2, $3, $4 }' | sort
    ip route show table all | sort
    nft list ruleset
    ip netns list | awk '{ print $1 }' | grep "^zl$$-" || true
  } 2>&1
}

ztna_setup --no-binaries
root_before=$(root_state)
natlab_init
probe=("$NATLAB_PYTHON" "$NATLAB_PROBE")

# ---------------------------------------------------------------------------------------------
# The lab

t0=$(ztna_now_ms)
natlab_public_host intermediate "$INTER" "$INTER6"
natlab_public_host refl "$A1" "$A2" "$B1" "$B2"
natlab_public_host peer "$PEER"
routers=()
for fw in on off; do
  hp=off
  [[ $fw == off ]] && hp=on
  for m in eim adm apdm; do
    for f in eif adf apdf; do
      r=$m-$f-fw$fw
      natlab_router "$r" --mapping "$m" --filtering "$f" --firewall "$fw" --hairpin "$hp"
      natlab_host "$r-h1" "$r"
      natlab_host "$r-h2" "$r"
      routers+=("$r")
    done
  done
done
r=seq-apdf-fwon
natlab_router "$r" --mapping seq --filtering apdf --firewall on --hairpin off
natlab_host "$r-h1" "$r"
natlab_host "$r-h2" "$r"
routers+=("$r")
natlab_router cgnat --cgnat --mapping eim --filtering apdf
natlab_router home --upstream cgnat --mapping eim --filtering apdf
natlab_host dn-h1 home
# WAN links through ztna-delay-link: 10 ms one way on dl1's and on dl2's (20 ms round trip to
# the internet, 40 ms between their hosts); dl2's also loses 20% of the frames each way.
DELAY=10
LOSS=20
natlab_router dl1 --delay "$DELAY"
natlab_host dl1-h1 dl1
natlab_router dl2 --delay "$DELAY" --loss "$LOSS" --loss-seed 7 --filtering eif
natlab_host dl2-h1 dl2
# IPv6 beside the IPv4 NAT: a default router (apdf, firewall on) and an eif one.
natlab_router v6a --ipv6
natlab_host v6a-h1 v6a
natlab_host v6a-h2 v6a
natlab_router v6b --ipv6 --filtering eif
natlab_host v6b-h1 v6b
# miniupnpd on a symmetric router.
natlab_router up --mapping apdm --upnp
natlab_host up-h1 up
t1=$(ztna_now_ms)
ztna_log "lab: ${#NATLAB_NSS[@]} namespaces (${#routers[@]} + 7 routers) set up in $((t1 - t0)) ms"

# spawn_reflect NAME HOST [reflect args...]: a reflector in HOST's namespace; waits until ready.
spawn_reflect() {
  local name=$1 host=$2
  shift 2
  local ready=$ZTNA_TMP/run/$name.ready
  ztna_spawn "$name" 0 ip netns exec "$(natlab_ns "$host")" "${probe[@]}" reflect --ready "$ready" "$@"
  ztna_wait_for 10 "$name ready" test -s "$ready"
}

# Sockets 0-3 IPv4, 4-7 the same over IPv6.
spawn_reflect reflector refl "$A1:$P1" "$A1:$P2" "$A2:$P1" "$A2:$P2" \
  "[$B1]:$P1" "[$B1]:$P2" "[$B2]:$P1" "[$B2]:$P2"
spawn_reflect inter-refl intermediate "$INTER:$P1" "[$INTER6]:$P1"
spawn_reflect up-h1 up-h1 "0.0.0.0:$P3"
spawn_reflect v6a-h2 v6a-h2 "[$(natlab_addr6 v6a-h2)]:$P1"
spawn_reflect peer-refl peer "$PEER:$P1"

# Every h2 serves on its own socket, after learning its mapping from A1:P1 (for hairpinning).
for r in "${routers[@]}"; do
  ztna_spawn "$r-h2" 0 ip netns exec "$(natlab_ns "$r-h2")" "${probe[@]}" reflect \
    --learn "$A1:$P1" --mapped "$ZTNA_TMP/run/$r-h2.mapped" --ready "$ZTNA_TMP/run/$r-h2.ready" \
    0.0.0.0:0
done
ztna_spawn dl2-h1 0 ip netns exec "$(natlab_ns dl2-h1)" "${probe[@]}" reflect \
  --learn "$A1:$P1" --mapped "$ZTNA_TMP/run/dl2-h1.mapped" --ready "$ZTNA_TMP/run/dl2-h1.ready" \
  0.0.0.0:0
for r in "${routers[@]}"; do
  ztna_wait_for 10 "$r-h2 learnt its mapping" test -s "$ZTNA_TMP/run/$r-h2.ready"
done
ztna_wait_for 10 "dl2-h1 learnt its mapping" test -s "$ZTNA_TMP/run/dl2-h1.ready"

# ---------------------------------------------------------------------------------------------
# Measure every router at once: one probe process per router, steps in order.

# wait_exit PID TIMEOUT_S DESCRIPTION: wait for a short-lived process and reap it (ztna_wait_for
# would treat its exit as a failure).
wait_exit() {
  local pid=$1 deadline
  deadline=$(($(ztna_now_ms) + $(ztna_secs "$2") * 1000))
  while ztna_alive "$pid"; do
    (($(ztna_now_ms) < deadline)) || ztna_fail "timed out after ${2}s waiting for: $3"
    sleep 0.05
  done
  ztna_reap "$pid"
}

declare -A probe_pid=()
for r in "${routers[@]}"; do
  h2_map=$(<"$ZTNA_TMP/run/$r-h2.mapped")
  h2_port=$(awk -F: '{ print $2 }' "$ZTNA_TMP/run/$r-h2.ready")
  h2_lan=$(natlab_addr "$r-h2"):$h2_port
  hairpin_timeout=2
  [[ $r == *-fwon ]] && hairpin_timeout=0.5 # hairpin off: an observation window
  ztna_spawn "probe-$r" 0 ip netns exec "$(natlab_ns "$r-h1")" "${probe[@]}" probe --window 0.3 \
    obs "$A1:$P1" obs "$A1:$P2" obs "$A2:$P1" \
    new obs "$A1:$P1" poke "$A1:$P1" 1 poke "$A1:$P1" 3 \
    new obs "$A1:$P1" poke "$A1:$P1" 3 obs "$A2:$P2" \
    new obs "$h2_lan" \
    new obs "$A1:$P1" poke "$A1:$P1" 1 obs "$A1:$P2" \
    new timeout "$hairpin_timeout" obs "$h2_map"
  probe_pid[$r]=$ZTNA_LAST_PID
done
# Round-trip times through the delayed links (after a first exchange that resolves ARP and opens
# the mappings), through a router without one, and the share answered across dl2's lossy link.
dl2_map=$(<"$ZTNA_TMP/run/dl2-h1.mapped")
ztna_spawn probe-delay 0 ip netns exec "$(natlab_ns dl1-h1)" "${probe[@]}" probe \
  obs "$INTER:$P1" rtt "$INTER:$P1" 100 10 obs "$dl2_map" rtt "$dl2_map" 100 10
probe_pid[delay]=$ZTNA_LAST_PID
ztna_spawn probe-nodelay 0 ip netns exec "$(natlab_ns eim-apdf-fwon-h1)" "${probe[@]}" probe \
  obs "$INTER:$P1" rtt "$INTER:$P1" 50 10
probe_pid[nodelay]=$ZTNA_LAST_PID
ztna_spawn probe-lossy 0 ip netns exec "$(natlab_ns dl2-h1)" "${probe[@]}" probe --timeout 10 \
  obs "$INTER:$P1" timeout 1 rtt "$INTER:$P1" 300 3
probe_pid[lossy]=$ZTNA_LAST_PID
# IPv6: answers get in, other endpoints' packets only with eif; IPv4 from the same host is NATed.
ztna_spawn probe-v6a 0 ip netns exec "$(natlab_ns v6a-h1)" "${probe[@]}" probe \
  obs "[$B1]:$P1" poke "[$B1]:$P1" 5 poke "[$B1]:$P1" 7
probe_pid[v6a]=$ZTNA_LAST_PID
ztna_spawn probe-v6a4 0 ip netns exec "$(natlab_ns v6a-h1)" "${probe[@]}" probe obs "$A1:$P1"
probe_pid[v6a4]=$ZTNA_LAST_PID
ztna_spawn probe-v6b 0 ip netns exec "$(natlab_ns v6b-h1)" "${probe[@]}" probe \
  obs "[$B1]:$P1" poke "[$B1]:$P1" 5 poke "[$B1]:$P1" 7
probe_pid[v6b]=$ZTNA_LAST_PID

port_of() { echo "${1##*:}"; }

# While the matrix probes run (they take seconds, mostly waiting), the IPv6 and UPnP checks
# use other routers. (No ztna_wait_for until all probes are reaped: it takes a probe that has
# finished for a crashed process.)
for r in v6a v6a4 v6b; do
  wait_exit "${probe_pid[$r]}" 30 "probe of $r finished"
  [[ ${ZTNA_RC[${probe_pid[$r]}]} == 0 ]] ||
    ztna_fail "probe of $r failed: $(cat "$(ztna_logfile "probe-$r")")"
done
# ---------------------------------------------------------------------------------------------
# IPv6 behind stateful firewalls (no NAT66)

a6=$(natlab_addr6 v6a-h1)
mapfile -t L <"$(ztna_logfile probe-v6a)"
((${#L[@]} == 4)) || ztna_fail "IPv6 probe: unexpected output: ${L[*]}"
read -r _ v6_local <<<"${L[0]}"
v6_seen=$(awk '{ print $3 }' <<<"${L[1]}")
[[ $v6_seen == "[$a6]:$(port_of "$v6_local")" ]] ||
  ztna_fail "IPv6: the public host saw v6a-h1 as '$v6_seen', expected its own [$a6] and port (no NAT66)"
[[ $(awk '{ print $5 }' <<<"${L[2]}") == none ]] || ztna_fail "IPv6 apdf: another port got in: ${L[2]}"
[[ $(awk '{ print $5 }' <<<"${L[3]}") == none ]] || ztna_fail "IPv6 apdf: another address got in: ${L[3]}"
v4_seen=$(awk 'NR == 2 { print $3 }' "$(ztna_logfile probe-v6a4)")
[[ $v4_seen == "$(natlab_public_addr v6a)":* ]] || ztna_fail "IPv4 from the IPv6 host is seen as '$v4_seen'"
mapfile -t L <"$(ztna_logfile probe-v6b)"
[[ $(awk '{ print $3 }' <<<"${L[1]}") == "[$(natlab_addr6 v6b-h1)]":* ]] || ztna_fail "IPv6 eif: ${L[1]}"
[[ $(awk '{ print $5 }' <<<"${L[2]}") == got && $(awk '{ print $5 }' <<<"${L[3]}") == got ]] ||
  ztna_fail "IPv6 eif: other endpoints did not get in: ${L[2]} / ${L[3]}"

# Unsolicited: a listener on v6a-h2 answers its LAN neighbour, but not the public host.
h2_6=$(natlab_addr6 v6a-h2)
seen=$(natlab_exec v6a-h1 "${probe[@]}" probe obs "[$h2_6]:$P1" | awk 'NR == 2 { print $3 }')
[[ $seen == "[$a6]":* ]] || ztna_fail "IPv6: the LAN neighbour got '$seen' from the listener"
seen=$(natlab_exec refl "${probe[@]}" probe --bind "[$B1]:0" --timeout 0.3 obs "[$h2_6]:$P1" |
  awk 'NR == 2 { print $3 }')
[[ $seen == none ]] || ztna_fail "IPv6: an unsolicited packet from the internet reached v6a-h2 ($seen)"

# Simultaneous open between hosts behind two firewalls: both send first, both receive.
b6=$(natlab_addr6 v6b-h1)
ztna_spawn punch-a 0 ip netns exec "$(natlab_ns v6a-h1)" "${probe[@]}" probe --bind "[$a6]:$P3" \
  --timeout 5 punch "[$b6]:$P3"
punch_a=$ZTNA_LAST_PID
ztna_spawn punch-b 0 ip netns exec "$(natlab_ns v6b-h1)" "${probe[@]}" probe --bind "[$b6]:$P3" \
  --timeout 5 punch "[$a6]:$P3"
punch_b=$ZTNA_LAST_PID
wait_exit "$punch_a" 10 "punch from v6a-h1"
wait_exit "$punch_b" 10 "punch from v6b-h1"
for p in a b; do
  [[ $(awk 'NR == 2 { print $3 }' "$(ztna_logfile "punch-$p")") == got ]] ||
    ztna_fail "IPv6 simultaneous open failed on $p: $(cat "$(ztna_logfile "punch-$p")")"
done

# natlab_block on an IPv6 router keeps the intermediate's IPv6 address too.
natlab_block v6a
out=$(natlab_exec v6a-h1 "${probe[@]}" probe obs "[$INTER6]:$P1" timeout 0.3 obs "[$B1]:$P1")
mapfile -t L <<<"$out"
[[ $(awk '{ print $3 }' <<<"${L[1]}") == "[$a6]":* ]] || ztna_fail "blocked v6a cut the intermediate: ${L[1]}"
[[ $(awk '{ print $3 }' <<<"${L[2]}") == none ]] || ztna_fail "blocked v6a let ${L[2]} through"
natlab_unblock v6a
seen=$(natlab_exec v6a-h1 "${probe[@]}" probe obs "[$B1]:$P1" | awk 'NR == 2 { print $3 }')
[[ $seen == "[$a6]":* ]] || ztna_fail "unblocked v6a still blocks IPv6: $seen"
ztna_log "IPv6: v6a-h1 seen as $v6_seen (IPv4 as $v4_seen); apdf: answers only, eif: any endpoint; unsolicited dropped; simultaneous open through two firewalls; natlab_block keeps [$INTER6]"

# ---------------------------------------------------------------------------------------------
# UPnP-IGD, NAT-PMP and PCP on a symmetric router

up_wan=$(natlab_public_addr up)
up_gw=$(natlab_addr up)
up_lan=$(natlab_addr up-h1)
up_url=$(natlab_upnp_url up)
# upnp_seen SRC PORT: the source the listener on up-h1 (port P3) saw of a request from the
# public host at SRC to the router's WAN:PORT, or "none".
upnp_seen() {
  natlab_exec refl "${probe[@]}" probe --bind "$1:0" --timeout 0.3 obs "$up_wan:$2" |
    awk 'NR == 2 { print $3 }'
}
# upnp_open WHAT PORT: the mapping lets both reflector addresses in; upnp_closed WHAT PORT.
upnp_open() {
  local a seen
  for a in "$A1" "$A2"; do
    seen=$(upnp_seen "$a" "$2")
    [[ $seen == "$a":* ]] || ztna_fail "$1: $up_wan:$2 from $a reached '$seen', not the listener"
  done
}
upnp_closed() {
  local seen
  seen=$(upnp_seen "$A1" "$2")
  [[ $seen == none ]] || ztna_fail "$1: $up_wan:$2 is open ($seen)"
}
upnp_closed "before any mapping" 41000
out=$(natlab_exec up-h1 upnpc -u "$up_url" -a "$up_lan" "$P3" 41000 UDP 2>&1) ||
  ztna_fail "upnpc -a failed: $out"
[[ $out == *"41000 UDP is redirected to internal $up_lan:$P3"* ]] || ztna_fail "upnpc -a: $out"
upnp_open "UPnP mapping" 41000
out=$(natlab_exec up-h1 upnpc -u "$up_url" -d 41000 UDP 2>&1) || ztna_fail "upnpc -d failed: $out"
upnp_closed "UPnP mapping deleted" 41000
out=$(natlab_exec up-h1 natpmpc -g "$up_gw" -a 42000 "$P3" udp 3600 2>&1) || ztna_fail "natpmpc -a failed: $out"
[[ $out == *"Mapped public port 42000 protocol UDP to local port $P3"* ]] || ztna_fail "natpmpc -a: $out"
upnp_open "NAT-PMP mapping" 42000
out=$(natlab_exec up-h1 natpmpc -g "$up_gw" -a 42000 "$P3" udp 0 2>&1) || ztna_fail "natpmpc delete failed: $out"
upnp_closed "NAT-PMP mapping deleted" 42000
out=$(natlab_exec up-h1 "${probe[@]}" probe pcp "$up_gw" "$P3" 43000 600 | awk 'NR == 2')
[[ $out == "pcp $up_gw result 0 external $up_wan:43000 "* ]] || ztna_fail "PCP MAP: $out"
upnp_open "PCP mapping" 43000
out=$(natlab_exec up-h1 "${probe[@]}" probe pcp "$up_gw" "$P3" 43000 0 | awk 'NR == 2')
[[ $out == "pcp $up_gw result 0 "* ]] || ztna_fail "PCP MAP delete: $out"
upnp_closed "PCP mapping deleted" 43000
# Unmapped traffic: still a new port per remote endpoint.
out=$(natlab_exec up-h1 "${probe[@]}" probe obs "$A1:$P1" obs "$A2:$P1")
mapfile -t L <<<"$out"
e1=$(awk '{ print $3 }' <<<"${L[1]}")
e2=$(awk '{ print $3 }' <<<"${L[2]}")
[[ $e1 == "$up_wan":* && $e2 == "$up_wan":* && $e1 != "$e2" ]] ||
  ztna_fail "the UPnP router is no longer symmetric: $e1 / $e2"
ztna_log "UPnP-IGD (upnpc), NAT-PMP (natpmpc) and PCP MAP on an apdm router: each mapping opens $up_wan:port to every endpoint, deleting it closes it; other flows still apdm ($e1, $e2)"

# ---------------------------------------------------------------------------------------------
# The matrix, delay and loss

for r in "${routers[@]}" delay nodelay lossy; do
  wait_exit "${probe_pid[$r]}" 30 "probe of $r finished"
  [[ ${ZTNA_RC[${probe_pid[$r]}]} == 0 ]] ||
    ztna_fail "probe of $r failed: $(cat "$(ztna_logfile "probe-$r")")"
done

rows=()
bad=0
check() { # check ROUTER WHAT WANT GOT
  if [[ $3 != "$4" ]]; then
    ztna_log "MISMATCH $1: $2 should be '$3', measured '$4'"
    bad=1
  fi
}

for r in "${routers[@]}"; do
  read -r m f fw hp <<<"$(natlab_router_opts "$r")"
  wan=$(natlab_public_addr "$r")
  log=$(ztna_logfile "probe-$r")
  mapfile -t L <"$log"
  # 0 local, 1-3 obs | 4 local, 5 obs, 6-7 poke | 8 local, 9 obs, 10 poke, 11 obs | 12 local,
  # 13 obs | 14 local, 15 obs, 16 poke, 17 obs | 18 local, 19 obs
  ((${#L[@]} == 20)) || ztna_fail "probe of $r: unexpected output: $(cat "$log")"
  read -r _ local1 <<<"${L[0]}"
  e1=$(awk '{ print $3 }' <<<"${L[1]}")
  e2=$(awk '{ print $3 }' <<<"${L[2]}")
  e3=$(awk '{ print $3 }' <<<"${L[3]}")
  for e in "$e1" "$e2" "$e3"; do
    [[ $e == "$wan":* ]] || ztna_fail "$r: the reflector saw '$e', not the router's WAN $wan"
  done
  if [[ $e1 == "$e2" && $e1 == "$e3" ]]; then
    mm=eim
  elif [[ $e1 == "$e2" ]]; then
    mm=adm
  elif (($(port_of "$e2") == $(port_of "$e1") + 1 && $(port_of "$e3") == $(port_of "$e2") + 1)); then
    mm=seq
  elif [[ $e1 != "$e3" ]]; then
    mm=apdm
  else
    mm="? ($e1 $e2 $e3)"
  fi
  kept=no
  [[ $(port_of "$e1") == "$(port_of "$local1")" ]] && kept=yes
  check "$r" mapping "$m" "$mm"
  [[ $m != eim ]] || check "$r" "port preservation" yes "$kept"

  got_port=$(awk '{ print $5 }' <<<"${L[6]}")
  got_addr=$(awk '{ print $5 }' <<<"${L[7]}")
  if [[ $got_addr == got && $got_port == got ]]; then
    fm=eif
  elif [[ $got_port == got && $got_addr == none ]]; then
    fm=adf
  elif [[ $got_port == none && $got_addr == none ]]; then
    fm=apdf
  else
    fm="? (port $got_port, addr $got_addr)"
  fi
  check "$r" filtering "$f" "$fm"

  # Trap: E = mapping seen by A1:P1, the unsolicited packet came from A2:P2, then E' toward A2:P2.
  te=$(awk '{ print $4 }' <<<"${L[10]}")
  te2=$(awk '{ print $3 }' <<<"${L[11]}")
  tgot=$(awk '{ print $5 }' <<<"${L[10]}")
  [[ $te == "$wan":* && $te2 == "$wan":* ]] || ztna_fail "$r: trap probe got '$te' / '$te2'"
  # Conntrack entries for A2:P2 -> WAN:E that ended at the router itself (reply source = WAN).
  claimed=$(natlab_conntrack "$r" -p udp --orig-src "$A2" --sport "$P2" --dport "$(port_of "$te")" \
    --reply-src "$wan" | grep -c . || true)
  if [[ $tgot == got ]]; then
    trap_m="forwarded"
  elif ((claimed > 0)); then
    trap_m="claimed"
  else
    trap_m="dropped"
  fi
  if [[ $te == "$te2" ]]; then
    trap_m+=", port kept"
  else
    trap_m+=", port $(port_of "$te")->$(port_of "$te2")"
  fi
  want_trap=dropped
  [[ $fw == off ]] && want_trap=claimed
  [[ $f == eif ]] && want_trap=forwarded
  check "$r" "unsolicited inbound" "$want_trap" "${trap_m%%,*}"
  if [[ $m == eim ]]; then
    if [[ $want_trap == claimed ]]; then
      [[ $te != "$te2" ]] || check "$r" "eim port after the trap" "a new port" "$te2"
    else
      check "$r" "eim port without the trap" "$te" "$te2"
    fi
  fi

  # The same from another port of the same address: eim and adm must leave a claimed tuple.
  se=$(awk '{ print $4 }' <<<"${L[16]}")
  se2=$(awk '{ print $3 }' <<<"${L[17]}")
  [[ $se == "$wan":* && $se2 == "$wan":* ]] || ztna_fail "$r: same-address trap probe got '$se' / '$se2'"
  if [[ $se == "$se2" ]]; then
    strap="kept"
  else
    strap="$(port_of "$se")->$(port_of "$se2")"
  fi
  if [[ $m != apdm && $m != seq ]]; then
    if [[ $f == apdf && $fw == off ]]; then
      [[ $se != "$se2" ]] || check "$r" "port toward A1:P2 after its unsolicited packet" "a new port" "$se2"
    else
      check "$r" "port toward A1:P2 after its packet" "$se" "$se2"
    fi
  fi

  lan_seen=$(awk '{ print $3 }' <<<"${L[13]}")
  lan_seen=${lan_seen%:*}
  check "$r" "same-LAN source" "$(natlab_addr "$r-h1")" "$lan_seen"

  hp_seen=$(awk '{ print $3 }' <<<"${L[19]}")
  if [[ $hp_seen == none ]]; then
    hm=off
  elif [[ $hp_seen == "$wan":* ]]; then
    hm=on
  else
    hm="? ($hp_seen)"
  fi
  check "$r" hairpin "$hp" "$hm"
  read -r _ local5 <<<"${L[18]}"
  [[ $hm != on || $m != eim ]] || check "$r" "hairpinned source port" "$(port_of "$local5")" "$(port_of "$hp_seen")"

  rows+=("$(printf '%-16s %-5s %-5s %-4s %-5s %-5s %-4s %-26s %-12s %-8s %-s' "$r" "$m" "$mm" \
    "$kept" "$f" "$fm" "$fw" "$trap_m" "$strap" "$hm" "$([[ $lan_seen == "$(natlab_addr "$r-h1")" ]] && echo direct || echo "$lan_seen")")")
done

# The sequential mapping: one socket toward four remote endpoints, then a fresh socket toward
# two: six new flows, six consecutive ports (nothing else crosses the router meanwhile).
r=seq-apdf-fwon
out=$(natlab_exec "$r-h1" "${probe[@]}" probe obs "$A1:$P1" obs "$A1:$P2" obs "$A2:$P1" obs "$A2:$P2" \
  new obs "$A1:$P1" obs "$A1:$P2")
seq_ports=()
while read -r op _ seen; do
  [[ $op == obs ]] || continue
  [[ $seen == "$(natlab_public_addr "$r")":* ]] || ztna_fail "$r: the reflector saw '$seen'"
  seq_ports+=("$(port_of "$seen")")
done <<<"$out"
((${#seq_ports[@]} == 6)) || ztna_fail "$r: unexpected probe output: $out"
for i in 1 2 3 4 5; do
  ((seq_ports[i] == seq_ports[i - 1] + 1)) || ztna_fail "$r: ports toward six endpoints are not sequential: ${seq_ports[*]}"
done
ztna_log "seq mapping: external ports toward six remote endpoints (two sockets): ${seq_ports[*]}"

# ---------------------------------------------------------------------------------------------
# Delay and loss

# rtt_field LINE NAME: a field of a probe's "rtt DEST sent N got M median X min Y max Z" line.
rtt_field() {
  awk -v k="$2" '$1 == "rtt" { for (i = 3; i < NF; i += 2) if ($i == k) print $(i + 1) }' <<<"$1"
}
# within X LO HI: LO <= X <= HI (decimals).
within() {
  awk -v x="$1" -v lo="$2" -v hi="$3" 'BEGIN { exit !(x != "none" && x >= lo && x <= hi) }'
}
mapfile -t L <"$(ztna_logfile probe-delay)"
((${#L[@]} == 5)) || ztna_fail "delay probe: unexpected output: ${L[*]}"
[[ ${L[1]} != *none && ${L[3]} != *none ]] || ztna_fail "delay probe: no answer: ${L[*]}"
rtt_inter=$(rtt_field "${L[2]}" median)
rtt_p2p=$(rtt_field "${L[4]}" median)
# The link never delivers early; the upper bounds leave room for a busy machine. Nothing is
# lost through dl1's link alone; between the hosts dl2's link loses about a third.
[[ $(rtt_field "${L[2]}" got) == 100 ]] || ztna_fail "delay without loss lost packets: ${L[2]}"
within "$(rtt_field "${L[4]}" got)" 30 95 || ztna_fail "answered between the hosts: ${L[4]}"
within "$rtt_inter" $((2 * DELAY)) $((3 * DELAY + 10)) ||
  ztna_fail "RTT to the intermediate through one ${DELAY} ms link: ${L[2]}"
within "$rtt_p2p" $((4 * DELAY)) $((6 * DELAY + 10)) ||
  ztna_fail "RTT between hosts behind two ${DELAY} ms links: ${L[4]}"
mapfile -t L <"$(ztna_logfile probe-nodelay)"
rtt_plain=$(rtt_field "${L[2]}" median)
within "$rtt_plain" 0 $((DELAY / 2)) || ztna_fail "RTT without a delay link: ${L[2]}"
mapfile -t L <"$(ztna_logfile probe-lossy)"
[[ ${L[1]} != *none ]] || ztna_fail "no answer at all across the lossy link: ${L[*]}"
lossy_got=$(rtt_field "${L[2]}" got)
# 20% each way: 64% of the requests are answered; 300 samples put 45..82% far out of chance.
within "$lossy_got" 135 246 || ztna_fail "answered across a link losing ${LOSS}% each way: ${L[2]}"
ztna_log "delay: RTT median ${rtt_inter} ms to the intermediate, ${rtt_p2p} ms peer to peer (${DELAY} ms each link), ${rtt_plain} ms without; loss ${LOSS}%: ${lossy_got}/300 answered"

# ---------------------------------------------------------------------------------------------
# Double NAT, public peer, block/unblock, flush

out=$(natlab_exec dn-h1 "${probe[@]}" probe obs "$A1:$P1" obs "$A2:$P1" new obs "$A1:$P1" poke "$A1:$P1" 1)
mapfile -t L <<<"$out"
dn_ext=$(natlab_external_addr dn-h1)
dn_home=$(natlab_public_addr home)
[[ $dn_ext == "$(natlab_public_addr cgnat)" ]] || ztna_fail "external address of dn-h1 is $dn_ext"
IFS=. read -r o1 o2 _ <<<"$dn_home"
((o1 == 100 && o2 >= 64 && o2 < 128)) || ztna_fail "home router's WAN $dn_home is not in 100.64.0.0/10"
dn1=$(awk '{ print $3 }' <<<"${L[1]}")
dn2=$(awk '{ print $3 }' <<<"${L[2]}")
dnp=$(awk '{ print $5 }' <<<"${L[5]}")
[[ $dn1 == "$dn_ext":* ]] || ztna_fail "double NAT: the reflector saw $dn1, expected the CGNAT's $dn_ext"
[[ $dn1 == "$dn2" ]] || ztna_fail "double NAT of two eim routers is not eim: $dn1 vs $dn2"
[[ $dnp == none ]] || ztna_fail "double NAT of two apdf routers let a packet from another port in"
ztna_log "double NAT: home WAN $dn_home behind CGNAT $dn_ext; reflector saw $dn1 from both addresses"

r=eim-eif-fwon
out=$(natlab_exec "$r-h1" "${probe[@]}" probe obs "$PEER:$P1")
seen=$(awk 'NR == 2 { print $3 }' <<<"$out")
[[ $seen == "$(natlab_public_addr "$r")":* ]] || ztna_fail "public peer saw $seen"
out=$(natlab_exec peer "${probe[@]}" probe --bind "$PEER:0" obs "$A1:$P1")
seen=$(awk 'NR == 2 { print $3 }' <<<"$out")
[[ $seen == "$PEER":* ]] || ztna_fail "the public peer is seen as $seen"
ztna_log "public peer: reaches and is reached without NAT ($seen)"

h2_lan=$(natlab_addr "$r-h2"):$(awk -F: '{ print $2 }' "$ZTNA_TMP/run/$r-h2.ready")
natlab_block "$r"
out=$(natlab_exec "$r-h1" "${probe[@]}" probe --timeout 0.5 obs "$INTER:$P1" obs "$A1:$P1" obs "$h2_lan")
mapfile -t L <<<"$out"
[[ $(awk '{ print $3 }' <<<"${L[1]}") == "$(natlab_public_addr "$r")":* ]] ||
  ztna_fail "blocked router cut the intermediate: ${L[1]}"
[[ $(awk '{ print $3 }' <<<"${L[2]}") == none ]] || ztna_fail "blocked router let ${L[2]} through"
[[ $(awk '{ print $3 }' <<<"${L[3]}") == none ]] || ztna_fail "blocked router let the LAN ${L[3]} through"
natlab_unblock "$r"
out=$(natlab_exec "$r-h1" "${probe[@]}" probe obs "$A1:$P1" obs "$h2_lan")
mapfile -t L <<<"$out"
[[ $(awk '{ print $3 }' <<<"${L[1]}") != none && $(awk '{ print $3 }' <<<"${L[2]}") != none ]] ||
  ztna_fail "unblocked router still blocks: $out"
ztna_log "natlab_block: intermediate kept, reflector and LAN cut; natlab_unblock: all back"

maps=$(natlab_mappings "$r")
[[ $maps == *" : "* ]] || ztna_fail "no mappings recorded on $r: $maps"
[[ -n $(natlab_conntrack "$r") ]] || ztna_fail "no conntrack entries on $r"
natlab_flush_conntrack "$r"
maps=$(natlab_mappings "$r")
[[ $maps != *elements* ]] || ztna_fail "mappings left after the flush on $r: $maps"
n=$(natlab_conntrack "$r" | grep -c . || true)
((n == 0)) || ztna_fail "$n conntrack entries left after the flush on $r"
ztna_log "natlab_flush_conntrack: mappings and conntrack empty"

# ---------------------------------------------------------------------------------------------
# Teardown of the big lab, then the topology helpers with timings

ztna_stop_all || ztna_fail "a probe process did not stop cleanly"
t0=$(ztna_now_ms)
natlab_down
ztna_log "lab removed in $(($(ztna_now_ms) - t0)) ms"
[[ -z $(natlab__list_ns "$NATLAB_PREFIX") ]] || ztna_fail "namespaces left after natlab_down"
[[ ! -e $NATLAB_RUN_DIR ]] || ztna_fail "natlab_down left $NATLAB_RUN_DIR"
# The delay links' summaries (natlab_down keeps their output with the test's logs).
sum=$(tail -n 1 "$ZTNA_TMP/logs/natlab-dl1-wire.log")
[[ $sum == *"down0 forwarded"*"lost 0, queue full 0, send errors 0"*"up0 forwarded"*"lost 0, queue full 0, send errors 0"* ]] ||
  ztna_fail "delay link of dl1: $sum"
sum=$(tail -n 1 "$ZTNA_TMP/logs/natlab-dl2-wire.log")
[[ $sum == *"lost "[1-9]*"queue full 0, send errors 0"*"lost "[1-9]*"queue full 0, send errors 0"* ]] ||
  ztna_fail "the lossy link of dl2: $sum"

# topo_check: every peer reaches the intermediate, which sees its external address (and, in an
# IPv6 topology, its own IPv6 address).
topo_check() {
  local name=$1 p seen
  local -a eps=("$INTER:$P1")
  [[ -z $NATLAB_INTERMEDIATE_IP6 ]] || eps+=("[$INTER6]:$P1")
  spawn_reflect "inter-$name" intermediate "${eps[@]}"
  for p in a b; do
    seen=$(natlab_exec "$p" "${probe[@]}" probe obs "$INTER:$P1" | awk 'NR == 2 { print $3 }')
    [[ $seen == "$(natlab_external_addr "$p")":* ]] ||
      ztna_fail "$name: the intermediate saw $p as '$seen', expected $(natlab_external_addr "$p")"
    [[ -n $NATLAB_INTERMEDIATE_IP6 ]] || continue
    seen=$(natlab_exec "$p" "${probe[@]}" probe obs "[$INTER6]:$P1" | awk 'NR == 2 { print $3 }')
    [[ $seen == "[$(natlab_addr6 "$p")]":* ]] ||
      ztna_fail "$name: the intermediate saw $p over IPv6 as '$seen', expected [$(natlab_addr6 "$p")]"
  done
  ztna_stop "inter-$name"
}

timings=()
for i in 1 2 3; do
  t0=$(ztna_now_ms)
  natlab_topo_two_nats --mapping apdm --filtering apdf -- --mapping eim --filtering eif
  t1=$(ztna_now_ms)
  ((i > 1)) || topo_check two-nats
  t2=$(ztna_now_ms)
  natlab_down
  t3=$(ztna_now_ms)
  timings+=("setup $((t1 - t0)) ms, teardown $((t3 - t2)) ms")
done
natlab_topo_same_lan --mapping adm --filtering adf
topo_check same-lan
natlab_down
natlab_topo_public_peer --mapping apdm --filtering apdf --firewall off
topo_check public-peer
natlab_down
# With IPv6 (the CGNAT router gets it without being asked, so that r1's LAN is routed).
natlab_topo_double_nat --mapping eim --filtering apdf --ipv6 -- --mapping apdm --filtering apdf
[[ $(natlab_external_addr a) == "$(natlab_public_addr cgnat)" ]] || ztna_fail "double NAT: a is not behind cgnat"
natlab_public_addr6 cgnat >/dev/null
topo_check double-nat
natlab_down

# ---------------------------------------------------------------------------------------------
# Cleanup on failure, and of dead runs

# A subshell that fails half-way (set -e): its EXIT trap removes its lab.
pfile=$ZTNA_TMP/run/subshell.prefix
# (errexit is ignored inside a subshell that is part of "||", so run it as a plain command.)
set +e
(
  set -e
  natlab_init
  echo "$NATLAB_PREFIX" >"$pfile"
  natlab_topo_two_nats
  false
  echo "not reached" >&2
) 2>>"$ZTNA_TMP/logs/failing-subshell.log"
rc=$?
set -e
grep -q "not reached" "$ZTNA_TMP/logs/failing-subshell.log" && ztna_fail "the subshell went on after false"
((rc != 0)) || ztna_fail "the failing subshell succeeded"
sub_prefix=$(<"$pfile")
[[ $sub_prefix != "$NATLAB_PREFIX" ]] || ztna_fail "the subshell reused the parent's prefix"
[[ -z $(natlab__list_ns "$sub_prefix") ]] || ztna_fail "the failing subshell left $(natlab__list_ns "$sub_prefix")"
ztna_log "failing subshell (exit $rc): its lab ($sub_prefix*) was removed by its trap"

# A separate bash process using natlab.sh alone, failing after its own EXIT trap was set.
pfile=$ZTNA_TMP/run/child.prefix
rc=0
bash -c 'source "$1"; trap "echo own trap ran >&2" EXIT; natlab_init; echo "$NATLAB_PREFIX" >"$2"
  natlab_topo_double_nat; false' _ "$ZTNA_REPO/tests/natlab/natlab.sh" "$pfile" \
  2>>"$ZTNA_TMP/logs/failing-child.log" || rc=$?
((rc != 0)) || ztna_fail "the failing child succeeded"
child_prefix=$(<"$pfile")
[[ -z $(natlab__list_ns "$child_prefix") ]] || ztna_fail "the failing child left $(natlab__list_ns "$child_prefix")"
grep -q "own trap ran" "$ZTNA_TMP/logs/failing-child.log" || ztna_fail "natlab did not chain the child's own EXIT trap"
ztna_log "failing child without lib.sh (exit $rc): its lab ($child_prefix*) removed, its own trap ran too"

# A run killed with SIGKILL leaves its namespaces; natlab_cleanup_stale removes them.
pfile=$ZTNA_TMP/run/killed.prefix
# Its delay links run without a parent-death signal (ZTNA_DETACH, as for a lab left up on
# purpose), so they outlive it until the cleanup stops them.
ztna_spawn killed-run 0 env ZTNA_DETACH=1 ZTNA_BUILD_DIR="$ZTNA_BUILD_DIR" bash -c 'source "$1"
  NATLAB_NO_TRAP=1; natlab_init; natlab_topo_two_nats --delay 1
  echo "$NATLAB_PREFIX" >"$2.tmp"; mv "$2.tmp" "$2"; exec sleep 60' _ \
  "$ZTNA_REPO/tests/natlab/natlab.sh" "$pfile"
kpid=$ZTNA_LAST_PID
ztna_wait_for 10 "the run to be killed has built its lab" test -s "$pfile"
killed_prefix=$(<"$pfile")
[[ $killed_prefix == "zl$kpid-" ]] || ztna_fail "unexpected prefix $killed_prefix for pid $kpid"
kill -KILL "$kpid"
wait_exit "$kpid" 10 "the killed run is gone"
n=$(natlab__list_ns "$killed_prefix" | grep -c . || true)
((n > 0)) || ztna_fail "the killed run left nothing to clean (test is wrong)"
kdir=$NATLAB_RUN_BASE/zl$kpid
kprocs=()
for f in "$kdir"/*.proc; do
  read -r p _ <"$f"
  natlab__running "$p" || ztna_fail "delay link $p of the killed run is not running (test is wrong)"
  kprocs+=("$p")
done
((${#kprocs[@]} == 2)) || ztna_fail "the killed run recorded ${#kprocs[@]} processes, expected 2"
natlab_cleanup_stale
[[ -z $(natlab__list_ns "$killed_prefix") ]] || ztna_fail "natlab_cleanup_stale left $(natlab__list_ns "$killed_prefix")"
for p in "${kprocs[@]}"; do
  ! natlab__running "$p" || ztna_fail "natlab_cleanup_stale left the delay link $p running"
done
[[ ! -e $kdir ]] || ztna_fail "natlab_cleanup_stale left $kdir"
ztna_log "SIGKILLed run: natlab_cleanup_stale removed its $n namespaces and stopped its delay links (${kprocs[*]})"

# A delay link that is not built fails the lab loudly.
set +e
out=$( (NATLAB_DELAY_LINK=/nonexistent/ztna-delay-link
  natlab_init
  natlab_router nolink --delay 5) 2>&1)
rc=$?
set -e
if ((rc == 0)) || [[ $out != *"ztna-delay-link not found"* ]]; then
  ztna_fail "a missing delay link did not fail the lab: $out"
fi
ztna_log "missing ztna-delay-link: the lab fails ($(grep -o 'ztna-delay-link not found[^:]*' <<<"$out"))"

# ---------------------------------------------------------------------------------------------
# Results

root_after=$(root_state)
if [[ $root_before != "$root_after" ]]; then
  diff <(echo "$root_before") <(echo "$root_after") >&2 || true
  ztna_fail "the root namespace changed"
fi
[[ -z $(natlab__list_ns "$NATLAB_PREFIX") ]] || ztna_fail "namespaces with prefix $NATLAB_PREFIX remain"

{
  echo
  echo "Measured NAT behaviour (reflector $A1/$A2 x $P1/$P2; configured -> measured):"
  printf '%-16s %-5s %-5s %-4s %-5s %-5s %-4s %-26s %-12s %-8s %-s\n' router map meas kept filt \
    meas fw "A2:P2 -> E, then to A2:P2" "A1:P2 -> E.." hairpin same-LAN
  printf '%s\n' "${rows[@]}"
  echo "double NAT: host behind home (WAN $dn_home) behind cgnat: seen as $dn1"
  echo "seq mapping: external ports toward six remote endpoints: ${seq_ports[*]}"
  echo "WAN links with ${DELAY} ms delay: RTT median $rtt_inter ms to the intermediate, $rtt_p2p ms peer to peer ($rtt_plain ms without delay)"
  echo "WAN link with ${LOSS}% loss each way: $lossy_got of 300 requests answered (expected about 192)"
  for i in "${!timings[@]}"; do
    echo "two-NAT topology (6 namespaces) run $((i + 1)): ${timings[$i]}"
  done
  echo
} >&2

((bad == 0)) || ztna_fail "the lab does not behave as configured (see MISMATCH lines)"
ztna_pass
