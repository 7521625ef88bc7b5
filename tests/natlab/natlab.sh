# shellcheck shell=bash
# The NAT lab: NAT topologies built from network namespaces, veth pairs and nftables, on one
# machine, for the integration tests, scripts/bench-p2p and scripts/demo. Source it (after
# tests/integration/lib.sh if you use that), then call natlab_init. Needs root. IPv4 unless asked
# otherwise: IPv6 is disabled in every lab namespace (no link-local addresses, no DAD, no router
# solicitations), except in routers given --ipv6 and their hosts, public hosts given an IPv6
# address, and a natlab_lone_host given one (see "IPv6" below).
#
# Layout
#   internet   namespace "<prefix>internet" with bridge br0: the segment 203.0.113.0/24
#              (TEST-NET-3). Public hosts and the WAN side of the first-level routers plug in here.
#   public     a host namespace on the internet segment (eth0), e.g. the intermediate at
#              203.0.113.10 or a public peer. No default route: the lab is all there is.
#              With IPv6 the internet is also 2001:db8::/64 (the intermediate 2001:db8::10).
#   router     a namespace with "wan" (an address on its upstream segment: 203.0.113.101... on
#              the internet, or an address on another router's LAN for double NAT, default route
#              via that router) and bridge "lan" (10.<n>.0.1/24 by default, 100.64.<n>.1/24 with
#              --cgnat). Forwarding on, redirects off, rp_filter off, br_netfilter calls off.
#   host       a namespace with eth0 on a router's LAN (<lan>.10, .11...), default route via it.
#              Hosts on one LAN reach each other directly through the bridge.
#   wire       "<router>-wire", only for a router given --delay/--loss: its WAN link runs through
#              this namespace, where ztna-delay-link forwards frames between up0 (on the upstream
#              segment) and down0 (whose veth peer is the router's wan). No addresses.
# No lab device or rule ever exists in the root namespace: veth pairs are created with both ends
# inside lab namespaces. Namespace names are "zl<pid>-<name>" (pid of the shell that called
# natlab_init), so parallel runs never collide and natlab_cleanup_stale can tell a dead run's
# leftovers from a live one's.
#
# API (every NAME is [A-Za-z0-9][A-Za-z0-9_-]*)
#   natlab_init                   check root and tools (fails loudly), remove dead runs' leftovers,
#                                 pick the prefix, install the EXIT trap (see "Exit" below)
#   natlab_internet               the internet namespace and its bridge (created on demand)
#   natlab_public_host NAME [--ipv6] [IP...]  a host on the internet segment; the first IPv4
#                                 IP is its address (default: the next free 203.0.113.30+);
#                                 IPv6 IPs (in 2001:db8::/64) give it IPv6, the first is its
#                                 IPv6 address; --ipv6 without one: 2001:db8::<last number of its
#                                 IPv4 address>. The host named "intermediate" defines the
#                                 addresses natlab_block keeps
#   natlab_router NAME [--mapping eim|adm|apdm|seq] [--filtering eif|adf|apdf] [--firewall on|off]
#                 [--hairpin on|off] [--upstream ROUTER] [--cgnat] [--lan A.B.C.0/24] [--wan IP]
#                 [--udp-timeout S] [--delay MS] [--loss PCT] [--loss-seed N] [--ipv6] [--upnp]
#                                 a NAT router (defaults: eim, apdf, firewall on, hairpin on;
#                                 upstream: the internet). --cgnat puts its LAN in 100.64.0.0/10.
#                                 --udp-timeout sets conntrack's UDP timeouts (unreplied and
#                                 stream) and the lifetime of idle mappings (default: kernel's
#                                 30 s / 120 s, mappings 120 s). --delay/--loss: the WAN link
#                                 delays every frame by MS ms each way and drops PCT percent of
#                                 them each way (see "WAN link delay and loss"); --loss-seed
#                                 seeds the drops. --ipv6: also IPv6, routed behind a stateful
#                                 firewall (see "IPv6"); behind --upstream only if that router
#                                 has --ipv6 too. --upnp: miniupnpd serves UPnP-IGD, NAT-PMP and
#                                 PCP to the LAN (see "Port mapping protocols")
#   natlab_upnp_url ROUTER        the rootDesc.xml URL of ROUTER's miniupnpd (upnpc -u URL)
#   natlab_stun_server            start the lab's STUN server (idempotent; --upnp does it):
#                                 203.0.113.2 and .3, ports 3478 and 3479, RFC 5780 CHANGE-REQUEST
#   natlab_host NAME ROUTER       a LAN host behind ROUTER (any number per router)
#   natlab_lone_host NAME ADDR/LEN...  a namespace linked to nothing else: lo up, and a veth pair
#                                 lone0/lone1 whose lone0 holds the addresses (IPv4 and/or
#                                 IPv6; IPv6 is enabled in this namespace when one is given,
#                                 added without DAD). Daemons started in it all reach each other
#                                 over those addresses, which are not loopback (and so may be
#                                 probed); natlab_addr gives the first
#   natlab_ns NAME                prints the namespace name (for ip netns exec / ztna_spawn)
#   natlab_exec NAME CMD...       runs CMD in NAME's namespace (ip netns exec)
#   natlab_addr NAME              a host's LAN address, a public host's address, a router's
#                                 LAN-side address
#   natlab_addr6 NAME             the same for IPv6 (fails if NAME has none)
#   natlab_public_addr ROUTER     the router's WAN address
#   natlab_public_addr6 ROUTER    the router's IPv6 WAN address (fails without --ipv6)
#   natlab_external_addr NAME     the address the internet sees for NAME (the outermost router's
#                                 WAN address; a public host's own address)
#   natlab_router_of HOST         the router HOST sits behind
#   natlab_router_opts ROUTER     prints "MAPPING FILTERING FIREWALL HAIRPIN", e.g. "eim apdf on off"
#   natlab_wan_link ROUTER        prints "DELAY_MS LOSS_PCT" of ROUTER's WAN link ("0 0": none)
#   natlab_block ROUTER [IP...]   drop forwarded (routed or bridged) UDP through ROUTER except
#                                 to/from the IPs, IPv4 or IPv6 (default: the intermediate's
#                                 addresses); for an --ipv6 router IPv6 UDP too
#   natlab_unblock ROUTER         undo natlab_block
#   natlab_flush_conntrack ROUTER forget every NAT mapping of ROUTER (conntrack -F and the
#                                 mapping/filtering tables)
#   natlab_mappings ROUTER        prints ROUTER's endpoint mappings (external port -> internal)
#   natlab_conntrack ROUTER [ARGS...]  conntrack -L ARGS inside ROUTER's namespace
#   natlab_down                   stop the lab's own processes (delay links, miniupnpd, STUN
#                                 server), remove every
#                                 namespace of this run (idempotent)
#   natlab_cleanup_stale          remove namespaces (and stop the lab processes) of runs whose
#                                 shell is gone
# Topologies (the intermediate is the public host "intermediate" at 203.0.113.10; peers are "a"
# and "b"; router options as for natlab_router):
#   natlab_topo_same_lan [OPTS]              a and b behind r1
#   natlab_topo_public_peer [OPTS]           a behind r1, b public (203.0.113.30)
#   natlab_topo_two_nats [OPTS] [-- OPTS2]   a behind r1, b behind r2 (r2 takes OPTS2, else OPTS)
#   natlab_topo_double_nat [OPTS] [-- CGNAT_OPTS] [-- OPTS2]
#                                            a behind r1 behind the CGNAT router "cgnat", b behind
#                                            r2 (on the internet; OPTS2, else OPTS)
# --ipv6 in any option group gives the intermediate 2001:db8::10 (and the public peer b
# 2001:db8::30); in double_nat, --ipv6 for r1 gives it to cgnat too.
#
# Router behaviour (UDP; other protocols get the plain Linux NAT of the chosen mapping)
#   mapping eim   snat to WAN: Linux keeps the source port whenever that tuple is free, so one
#                 internal endpoint keeps one external port for every destination.
#           adm   the first flow from an internal endpoint to a remote address gets a random port
#                 (snat fully-random); later flows to the same address (any port) reuse it through
#                 the dynamic map @adm (internal addr . port . remote addr -> external port).
#           apdm  snat fully-random: a new random port for every new remote address:port.
#           seq   address-and-port-dependent too, but allocated sequentially, as many carrier and
#                 enterprise NATs do: every new flow (TCP or UDP, from any LAN host) takes the
#                 next port of one counter (numgen inc), 20000, 20001, ... 24095, then 20000 again.
#                 A host that sees its port toward one endpoint can predict the next one, unless
#                 other flows through the router took it first.
#   The router's own packets (source: its WAN address) are never translated.
#   filtering     every packet sent out of wan records its mapping in dynamic maps (a filter chain
#                 in postrouting after srcnat, from the conntrack tuples):
#                 @mapping (external port -> internal endpoint), @adf (external port . remote
#                 address -> internal endpoint). Inbound packets that open a new conntrack entry
#                 are DNATed in prerouting:
#           eif   by @mapping: anyone may send to a mapped port.
#           adf   by @adf: only addresses the internal endpoint has sent to.
#           apdf  not at all: only replies matching a conntrack entry get in.
#   firewall on   inbound from wan that is neither a reply nor DNATed by the filtering above is
#                 dropped before conntrack confirms it (input and forward hooks).
#            off  such packets reach the router's own stack (ICMP port unreachable), and their
#                 conntrack entry claims the tuple: a later outbound flow to that remote endpoint
#                 cannot keep its port and Linux picks another one (the trap in DESIGN D9). For
#                 eim that is Linux's own choice. adm reuses ports with a fixed-port snat, which
#                 would drop instead, so the remote endpoints of such packets are kept in the set
#                 @claimed (as long as conntrack keeps the unreplied entry) and a new flow to one
#                 of them gets a random port instead of the remembered one.
#   hairpin  on   a LAN host sending to WAN:port reaches the internal endpoint mapped to that
#                 port (@mapping, whatever the filtering), with its source translated to the
#                 router's WAN address (eim: the sender's preserved port; adm/apdm: a random one).
#            off  such packets are dropped.
#   Mappings in the dynamic maps live as long as packets keep leaving through them (refreshed by
#   every outbound packet), up to the mapping lifetime after the last one.
#
# IPv6 (--ipv6; the IPv4 NAT above stays as it is)
#   Addresses: the internet 2001:db8::/64, a router's WAN 2001:db8::<last number of its IPv4
#   WAN> (behind another router: <that LAN>::<number>), router number N's LAN 2001:db8:N::/64
#   with the router at ::1 and hosts at ::10, ::11... (the numbers of their IPv4 addresses).
#   Static addresses without DAD and static routes: no SLAAC, RA or prefix delegation. Every
#   IPv6 node on the internet routes each LAN prefix to the outermost router in front of it;
#   routers behind others get a default route and their upstream a route to their LAN.
#   Routing, no NAT66: a host is seen under its own address. The router is a stateful firewall
#   (table ip6 natlab6), as home routers are: outbound is free; with --firewall on inbound from
#   wan gets in only as a reply or related to a conntrack flow (apdf), plus echo requests
#   (RFC 6092) and, to the router itself, ICMPv6 (neighbour discovery); --filtering eif lets
#   in UDP to an internal address:port that has sent out (any remote), adf from the addresses it
#   sent to (sets @out and @out_adf, with the mapping lifetime). --firewall off: no filtering.
#   --mapping and --hairpin do not apply (no translation).
#
# Port mapping protocols (--upnp; IPv4)
#   miniupnpd (Debian's miniupnpd-nftables) runs in the router's namespace in the foreground,
#   started and stopped by PID like the delay links, with its configuration, leases and pid file
#   in NATLAB_RUN_DIR: UPnP-IGD (HTTP on LAN:5000, SSDP), NAT-PMP and PCP (port 5351) on lan,
#   external interface wan, secure mode (a client maps ports to itself only), ports 1024-65535.
#   Its rules live in table inet miniupnpd: DNAT in a prerouting chain at dstnat - 5 (before the
#   lab's eif/adf DNAT, so a mapping wins), the forward chain at filter - 5 (the lab's forward
#   chain accepts DNATed packets anyway), PCP PEER SNAT at srcnat - 5. A mapped WAN port reaches
#   the internal endpoint from any remote endpoint, whatever --mapping/--filtering say; all other
#   traffic keeps them. miniupnpd refuses to forward ports when its WAN address is private or
#   reserved, which TEST-NET-3 is, unless STUN shows the address is reachable as it is: so it
#   checks with the lab's STUN server (natlab_stun_server, started on first use), whose answers
#   from the other address/port the router's input chain lets in. Behind another NAT that check
#   fails, as it would in the field, and miniupnpd forwards nothing (logged).
#   Clients: miniupnpc (upnpc) reports the IGD as "not connected" because the external address
#   is reserved: UPNP_GetValidIGD returns 2 and `upnpc -a` after discovery gives up; give it the
#   URL (upnpc -u "$(natlab_upnp_url R)") or accept 2. natpmpc -g <router LAN address> works as
#   is. natprobe.py's pcp step sends PCP MAP requests.
#
# WAN link delay and loss (the kernel has no netem)
#   --delay MS / --loss PCT route the router's WAN link through its wire namespace, where
#   ztna-delay-link (tests/tools/delay_link.cpp, from the build tree: ZTNA_BUILD_DIR as lib.sh
#   has it, default <repo>/build, or NATLAB_DELAY_LINK; the lab fails if it is not built) holds
#   every frame MS ms in each direction and drops PCT percent at random in each direction. ARP
#   and everything else crosses it too. 10 ms on each router gives 20 ms RTT from a host to a
#   public host and 40 ms between hosts behind two such routers. With loss, the devices that
#   feed the link get gso_max_segs 1 so that one frame is one packet (a GSO super-frame would be
#   lost as a whole); without loss super-frames go through as they are. The process's summary
#   (frames forwarded, lost, dropped for a full queue) is logged when natlab_down stops it.
#
# Limits (what this does not model faithfully)
#   - eim is Linux port preservation: two LAN hosts using the same source port toward different
#     destinations share one external port (port overloading). @mapping keeps the first owner
#     (nft cannot overwrite a map element from the packet path), so eif inbound and hairpinned
#     packets for that port reach only that host. A port reassigned after its conntrack entries
#     expired may likewise point to its old owner until the old map element times out.
#   - apdm ports are random; seq models the sequential symmetric NATs (step 1, one counter
#     for the whole router, no per-host blocks). A seq port is taken even if a conntrack entry
#     toward that same remote endpoint holds it (a claimed tuple with the firewall off, or a
#     live flow 4096 flows back): that new flow is then dropped.
#   - adm: two internal endpoints whose random ports coincide toward the same remote endpoint
#     (about 1 in 64000) collide and the later flow is dropped.
#   - Hairpinned packets are filtered endpoint-independently whatever --filtering says; with
#     adm/apdm each hairpinned flow gets a random port rather than the sender's mapping.
#   - Only UDP gets the configured filtering; TCP and ICMP are NATed by the chosen mapping and
#     filtered by conntrack alone.
#   - Mapping lifetime: the nft maps live 120 s (or --udp-timeout) after the last outbound
#     packet, conntrack 30 s unreplied / 120 s otherwise; an eif/adf mapping can thus outlive a
#     conntrack entry that Linux would already have reused.
#   - A port mapping (--upnp) is inbound only: flows the internal endpoint starts still get the
#     router's --mapping (a random port on apdm), not the mapped port. No IPv6 pinholes.
#   - IPv6 routers do not announce anything (no RA): hosts get a static default route. The IPv6
#     filtering sets are not shown by natlab_mappings.
#   - Delay and loss only on routers' WAN links: constant delay (no jitter, no reordering),
#     independent random loss, no rate limit. A host's RTT to a peer behind the same router
#     crosses no delay link.
#
# Exit. natlab_init installs an EXIT trap that runs natlab_down and then whatever EXIT trap was
# there before (and INT/TERM/HUP traps that exit, unless some are set already). If lib.sh is in
# use (ztna_setup called before or after natlab_init), the trap first stops every process lib.sh
# started (ztna_stop_all, so daemons inside lab namespaces exit before their namespaces go), then
# removes the lab, then runs lib.sh's ztna_cleanup with the right exit status (a daemon that did
# not exit 0 still fails the test). Each natlab_* call that creates something re-installs the
# chain if another trap replaced it (so call ztna_setup before the last natlab_* call that
# builds something). Callers with their own trap may simply call natlab_down from it. NATLAB_NO_TRAP=1: install nothing. Subshells: a subshell
# that calls natlab_init gets a lab (and prefix) of its own, removed when it exits; the parent's
# lab is left alone, and building calls for the parent's lab fail there.
# Lab processes. The lab runs some processes itself (the delay links, miniupnpd and the STUN
# server): each is started by PID in the background with a parent-death signal (none with
# ZTNA_DETACH=1, for a lab left up on purpose), its pid and start time recorded in
# NATLAB_RUN_DIR (/run/natlab/zl<pid>: NAME.proc records, logs, configuration). natlab_down stops
# exactly those (SIGTERM, SIGKILL after 5 s) before it removes the namespaces, fails if one had
# died or did not exit 0, and copies their output to $ZTNA_TMP/logs/natlab-NAME.log when lib.sh
# is in use. natlab_cleanup_stale stops those of dead runs (a recorded pid whose start time still
# matches). Any other process is never killed: natlab_down reports those still inside a lab
# namespace (that namespace then lives on, unreachable, until they exit). Run processes in the
# lab with `ip netns exec "$(natlab_ns NAME)" CMD` (ztna_spawn records the right PID: ip execs
# CMD).
#
# Environment: NATLAB_VERBOSE=1 logs every step; NATLAB_PYTHON (default: ZTNA_PYTHON, else
# /usr/bin/python3, else python3) for natprobe.py and the STUN server; ZTNA_BUILD_DIR or
# NATLAB_DELAY_LINK for
# ztna-delay-link; NATLAB_RUN_BASE (default /run/natlab) for the run directories.

set -euo pipefail

if [[ -z ${NATLAB_LOADED:-} ]]; then
  NATLAB_LOADED=1
  NATLAB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
  NATLAB_PYTHON=${NATLAB_PYTHON:-${ZTNA_PYTHON:-python3}}
  [[ -n ${ZTNA_PYTHON:-} || ! -x /usr/bin/python3 ]] || NATLAB_PYTHON=/usr/bin/python3
  NATLAB_PROBE=$NATLAB_DIR/natprobe.py
  NATLAB_NETNS_DIR=/run/netns
  NATLAB_INET_PREFIX=203.0.113
  NATLAB_INTERMEDIATE_IP=203.0.113.10
  NATLAB_INTERMEDIATE_IP6=""
  NATLAB_SEQMAP_FIRST=20000       # --mapping seq: first external port, and how many follow
  NATLAB_SEQMAP_SPAN=4096
  NATLAB_PREFIX=""
  NATLAB_OWNER=""                 # BASHPID of the shell that ran natlab_init
  NATLAB_GOT_IP=""
  NATLAB_PREV_EXIT=""
  NATLAB_TRAP_OWNER=""
  NATLAB_SEQ=0
  NATLAB_NROUTERS=0
  declare -ga NATLAB_NSS=()       # namespaces created, in order
  declare -gA NATLAB_KIND=()      # name -> internet|public|router|host
  declare -gA NATLAB_IP=()        # name -> address (public: first; host: LAN; router: LAN side)
  declare -gA NATLAB_WAN=()       # router -> WAN address
  declare -gA NATLAB_LAN=()       # router -> LAN prefix "A.B.C"
  declare -gA NATLAB_UP=()        # router|host -> upstream router, or "internet"
  declare -gA NATLAB_NEXT=()      # router -> next host number on its LAN
  declare -gA NATLAB_OPTS=()      # router -> "mapping filtering firewall hairpin"
  declare -gA NATLAB_USED_IP=()   # internet addresses taken
  declare -gA NATLAB_DELAY=()     # router -> "delay_ms loss_pct" of its WAN link, if it has one
  # IPv6 (--ipv6): the internet is 2001:db8::/64, router number N's LAN 2001:db8:N::/64.
  NATLAB_INET6_PREFIX=2001:db8:
  declare -gA NATLAB_IP6=()       # name -> IPv6 address (public: first; host: LAN; router: LAN)
  declare -gA NATLAB_WAN6=()      # router -> WAN IPv6 address
  declare -gA NATLAB_LAN6=()      # router -> its LAN's /64 as "2001:db8:N:" (append ":HOST")
  declare -ga NATLAB_ROUTES6=()   # "PREFIX VIA": IPv6 nodes on the internet route PREFIX via VIA
  # The lab's STUN server (natlab_stun_server): two addresses x two ports on the internet.
  NATLAB_STUN_IPS=(203.0.113.2 203.0.113.3)
  NATLAB_STUN_PORTS=(3478 3479)
  NATLAB_STUN_UP=""
  NATLAB_UPNP_HTTP_PORT=5000
  declare -gA NATLAB_UPNP=()      # router -> 1 if it runs miniupnpd (--upnp)
  # Processes the lab itself runs (delay links, miniupnpd, STUN): records, logs and
  # configuration in NATLAB_RUN_DIR, which lives as long as the namespaces do (/run, like
  # /run/netns).
  NATLAB_RUN_BASE=${NATLAB_RUN_BASE:-/run/natlab}
  NATLAB_RUN_DIR=""
  NATLAB_GOT_BIN=""
  declare -ga NATLAB_PROCS=()     # names of the lab's processes, in start order
  declare -gA NATLAB_PID=()       # lab process name -> pid
fi

# ---------------------------------------------------------------------------------------------
# Logging and failure

natlab__log() {
  if declare -F ztna_log >/dev/null; then
    ztna_log "natlab: $*"
  else
    printf '[%s natlab] %s\n' "$(date +%H:%M:%S.%3N)" "$*" >&2
  fi
}

natlab__vlog() {
  [[ -z ${NATLAB_VERBOSE:-} ]] || natlab__log "$@"
}

natlab__fail() {
  if declare -F ztna_fail >/dev/null; then
    ztna_fail "natlab: $*"
  fi
  natlab__log "FAIL: $*"
  exit 1
}

natlab__now_ms() {
  local t=${EPOCHREALTIME//[.,]/}
  echo $((t / 1000))
}

# natlab__run DESCRIPTION CMD...: run CMD; on failure show its output and fail.
natlab__run() {
  local desc=$1 out
  shift
  if ! out=$("$@" 2>&1); then
    natlab__fail "$desc failed: $* -> ${out:-no output}"
  fi
}

# natlab__ip NS DESCRIPTION <<< "batch": ip -n NS -batch -, failing on the first error.
natlab__ip() {
  local ns=$1 desc=$2 out
  if ! out=$(ip -n "$ns" -batch - 2>&1); then
    natlab__fail "$desc failed in $ns: ${out:-no output}"
  fi
}

# natlab__nsx NS CMD...: CMD in NS's network namespace only (lighter than ip netns exec).
natlab__nsx() {
  local ns=$1
  shift
  nsenter --net="$NATLAB_NETNS_DIR/$ns" -- "$@"
}

# ---------------------------------------------------------------------------------------------
# Init, traps, teardown

natlab_init() {
  ((EUID == 0)) || natlab__fail "the NAT lab needs root (network namespaces, nftables)"
  local t missing=()
  for t in ip nft conntrack nsenter sysctl find "$NATLAB_PYTHON"; do
    command -v "$t" >/dev/null 2>&1 || missing+=("$t")
  done
  ((${#missing[@]} == 0)) ||
    natlab__fail "missing tools: ${missing[*]} (run scripts/install-deps)"
  [[ -f $NATLAB_PROBE ]] || natlab__fail "missing $NATLAB_PROBE"
  if [[ $NATLAB_OWNER == "$BASHPID" ]]; then
    natlab_down
  elif [[ -n $NATLAB_OWNER ]]; then
    # A subshell inherited its parent's lab: that one stays the parent's; start afresh.
    natlab__reset
    NATLAB_PREV_EXIT=""
    NATLAB_TRAP_OWNER=""
  fi
  NATLAB_OWNER=$BASHPID
  NATLAB_PREFIX=zl${BASHPID}-
  NATLAB_RUN_DIR=$NATLAB_RUN_BASE/zl$BASHPID
  natlab_cleanup_stale
  # A namespace or run directory with our prefix can only be a dead run's whose pid was reused.
  natlab__kill_recorded "$NATLAB_RUN_DIR"
  local -a old
  mapfile -t old < <(natlab__list_ns "$NATLAB_PREFIX")
  natlab__del_ns "${old[@]}"
  natlab__install_trap
  natlab__vlog "prefix $NATLAB_PREFIX"
}

# natlab__list_ns PREFIX: lab namespaces whose name starts with PREFIX.
natlab__list_ns() {
  local p=$1 name
  [[ -d $NATLAB_NETNS_DIR ]] || return 0
  for name in "$NATLAB_NETNS_DIR"/"$p"*; do
    [[ -e $name ]] && echo "${name##*/}"
  done
  return 0
}

# natlab__del_ns NS...: delete namespaces (one ip process for all).
natlab__del_ns() {
  (($#)) || return 0
  local ns out
  out=$(for ns in "$@"; do echo "netns del $ns"; done | ip -force -batch - 2>&1) ||
    natlab__log "ip netns del reported: $out"
  return 0
}

natlab_cleanup_stale() {
  local ns pid stale=() dir
  # A dead run's lab processes first (a run killed with its lab up, or one that left the lab
  # running on purpose), so that its namespaces go at once.
  for dir in "$NATLAB_RUN_BASE"/zl*; do
    [[ -d $dir && ${dir##*/} =~ ^zl([0-9]+)$ ]] || continue
    [[ -d /proc/${BASH_REMATCH[1]} ]] || natlab__kill_recorded "$dir"
  done
  while read -r ns; do
    [[ $ns =~ ^zl([0-9]+)- ]] || continue
    pid=${BASH_REMATCH[1]}
    [[ -d /proc/$pid ]] || stale+=("$ns")
  done < <(natlab__list_ns zl)
  ((${#stale[@]})) || return 0
  natlab__log "removing ${#stale[@]} namespaces left by dead runs: ${stale[*]}"
  natlab__del_ns "${stale[@]}"
}

# natlab__stat PID: sets NATLAB_GOT_STAT to the fields of /proc/PID/stat after the command name
# (state first, start time 20th); fails if there is no such process.
natlab__stat() {
  local s
  { read -r s <"/proc/$1/stat"; } 2>/dev/null || return 1
  NATLAB_GOT_STAT=${s##*) }
}

# natlab__running PID: the process exists and has not exited (zombies count as gone).
natlab__running() {
  natlab__stat "$1" || return 1
  [[ ${NATLAB_GOT_STAT%% *} != Z ]]
}

# natlab__starttime PID: the process's start time (clock ticks after boot): a PID plus its start
# time names one process, even once the PID is reused.
natlab__starttime() {
  natlab__stat "$1" || return 1
  local -a f
  read -r -a f <<<"$NATLAB_GOT_STAT"
  echo "${f[19]}"
}

# natlab__kill_recorded DIR: stop the processes recorded in DIR/*.proc ("PID STARTTIME") that
# are still those processes, then remove DIR. For runs whose shell is gone.
natlab__kill_recorded() {
  local dir=$1 f pid start now deadline
  [[ -d $dir ]] || return 0
  local -a pids=()
  for f in "$dir"/*.proc; do
    [[ -f $f ]] || continue
    read -r pid start <"$f" || continue
    [[ $pid =~ ^[0-9]+$ ]] || continue
    now=$(natlab__starttime "$pid") || continue
    [[ $now == "$start" ]] || continue
    kill -TERM "$pid" 2>/dev/null && pids+=("$pid")
  done
  deadline=$(($(natlab__now_ms) + 3000))
  for pid in "${pids[@]}"; do
    while natlab__running "$pid" && (($(natlab__now_ms) < deadline)); do
      sleep 0.02
    done
    ! natlab__running "$pid" || kill -KILL "$pid" 2>/dev/null || true
  done
  ((${#pids[@]} == 0)) || natlab__log "stopped ${#pids[@]} processes left by a dead run (${dir##*/}): ${pids[*]}"
  rm -rf "$dir"
}

# natlab__spawn NAME NS CMD...: run CMD in the background in namespace NS (ip netns exec, which
# execs CMD, so the PID is CMD's; and gives it the namespace's /sys, which miniupnpd reads),
# output in NATLAB_RUN_DIR/NAME.log; records its PID and start time in NAME.proc. Like lib.sh's
# processes it gets a parent-death signal (unless ZTNA_DETACH is set), so it cannot outlive a
# killed shell; natlab_down stops it, and natlab_cleanup_stale stops one a dead run left.
natlab__spawn() {
  local name=$1 ns=$2
  shift 2
  mkdir -p "$NATLAB_RUN_DIR"
  local -a pre=()
  if [[ -z ${ZTNA_DETACH:-} ]] && command -v setpriv >/dev/null 2>&1; then
    pre=(setpriv --pdeathsig TERM --)
  fi
  "${pre[@]}" ip netns exec "$ns" "$@" </dev/null >"$NATLAB_RUN_DIR/$name.log" 2>&1 &
  local pid=$! start
  # Not reaped yet, so even a process that failed at once still has its /proc entry.
  start=$(natlab__starttime "$pid") || natlab__fail "$name (pid $pid) vanished"
  echo "$pid $start" >"$NATLAB_RUN_DIR/$name.proc"
  NATLAB_PROCS+=("$name")
  NATLAB_PID[$name]=$pid
  natlab__vlog "started $name (pid $pid) in $ns: $*"
}

# natlab__wait_file NAME FILE: wait (10 s) until the lab process NAME has written FILE; fail with
# its output if it exits or takes too long.
natlab__wait_file() {
  local name=$1 file=$2 pid=${NATLAB_PID[$1]} deadline
  deadline=$(($(natlab__now_ms) + 10000))
  while [[ ! -s $file ]]; do
    natlab__running "$pid" ||
      natlab__fail "$name (pid $pid) exited while starting: $(cat "$NATLAB_RUN_DIR/$name.log")"
    (($(natlab__now_ms) < deadline)) ||
      natlab__fail "$name (pid $pid) not ready after 10 s: $(cat "$NATLAB_RUN_DIR/$name.log")"
    sleep 0.01
  done
}

# natlab__stop_procs: SIGTERM every lab process of this run, wait (5 s), SIGKILL what is left,
# reap them all. Returns non-zero if one had died before or did not exit 0.
natlab__stop_procs() {
  ((${#NATLAB_PROCS[@]})) || return 0
  local name pid rc bad=0 deadline log keep n
  local -A died=()
  for name in "${NATLAB_PROCS[@]}"; do
    pid=${NATLAB_PID[$name]}
    if natlab__running "$pid"; then
      kill -TERM "$pid" 2>/dev/null || true
    else
      died[$name]=1
    fi
  done
  deadline=$(($(natlab__now_ms) + 5000))
  for name in "${NATLAB_PROCS[@]}"; do
    pid=${NATLAB_PID[$name]}
    while natlab__running "$pid" && (($(natlab__now_ms) < deadline)); do
      sleep 0.02
    done
    if natlab__running "$pid"; then
      natlab__log "$name (pid $pid) ignored SIGTERM for 5 s, sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
    fi
    rc=0
    wait "$pid" 2>/dev/null || rc=$?
    log=$NATLAB_RUN_DIR/$name.log
    if [[ -n ${died[$name]:-} ]]; then
      natlab__log "$name (pid $pid) had exited on its own (status $rc): $(tail -n 5 "$log" 2>/dev/null)"
      bad=1
    elif ((rc != 0)); then
      natlab__log "$name (pid $pid) exited with status $rc: $(tail -n 5 "$log" 2>/dev/null)"
      bad=1
    elif [[ ${NATLAB_KIND[$name]:-} == wire ]]; then
      natlab__log "$name: $(tail -n 1 "$log" 2>/dev/null)"
    fi
    # Keep the output with the test's logs when lib.sh is in use.
    if [[ -n ${ZTNA_TMP:-} && -d $ZTNA_TMP/logs && -f $log ]]; then
      keep=$ZTNA_TMP/logs/natlab-$name.log
      n=2
      while [[ -e $keep ]]; do
        keep=$ZTNA_TMP/logs/natlab-$name-$n.log
        n=$((n + 1))
      done
      cp "$log" "$keep" 2>/dev/null || true
    fi
  done
  NATLAB_PROCS=()
  NATLAB_PID=()
  return "$bad"
}

natlab__install_trap() {
  [[ -z ${NATLAB_NO_TRAP:-} ]] || return 0
  [[ $NATLAB_OWNER == "$BASHPID" ]] || return 0
  local cur
  cur=$(trap -p EXIT)
  [[ $cur == "trap -- 'natlab__on_exit' EXIT" && $NATLAB_TRAP_OWNER == "$BASHPID" ]] && return 0
  NATLAB_PREV_EXIT=""
  # In a subshell, trap -p shows the parent's traps, which do not run here: chain nothing.
  if [[ -n $cur && $cur != "trap -- 'natlab__on_exit' EXIT" && $BASHPID == "$$" ]]; then
    local -a parts
    eval "parts=($cur)"
    NATLAB_PREV_EXIT=${parts[2]}
  fi
  NATLAB_TRAP_OWNER=$BASHPID
  trap natlab__on_exit EXIT
  # Without lib.sh nothing turns signals into an exit (which runs the EXIT trap): do it here.
  [[ -n $(trap -p INT) ]] || trap 'exit 130' INT
  [[ -n $(trap -p TERM) ]] || trap 'exit 143' TERM
  [[ -n $(trap -p HUP) ]] || trap 'exit 129' HUP
}

natlab__on_exit() {
  local rc=$?
  trap - EXIT
  set +e
  if [[ $NATLAB_OWNER != "$BASHPID" ]]; then
    :
  elif [[ -n ${ZTNA_KEEP:-} ]] && ((rc == 0)); then
    natlab__log "leaving the lab up (ZTNA_KEEP): namespaces ${NATLAB_PREFIX}*"
  else
    # Daemons started through lib.sh may live in lab namespaces: stop them first.
    if declare -F ztna_stop_all >/dev/null && [[ $BASHPID == "$$" ]]; then
      ztna_stop_all || { ((rc != 0)) || rc=1; }
    fi
    natlab_down || { ((rc != 0)) || rc=1; }
  fi
  if [[ -n $NATLAB_PREV_EXIT ]]; then
    (exit "$rc")
    eval "$NATLAB_PREV_EXIT"
  fi
  exit "$rc"
}

natlab__reset() {
  NATLAB_NSS=()
  NATLAB_KIND=()
  NATLAB_IP=()
  NATLAB_WAN=()
  NATLAB_LAN=()
  NATLAB_UP=()
  NATLAB_NEXT=()
  NATLAB_OPTS=()
  NATLAB_USED_IP=()
  NATLAB_DELAY=()
  NATLAB_IP6=()
  NATLAB_WAN6=()
  NATLAB_LAN6=()
  NATLAB_ROUTES6=()
  NATLAB_INTERMEDIATE_IP6=""
  NATLAB_STUN_UP=""
  NATLAB_UPNP=()
  NATLAB_PROCS=()
  NATLAB_PID=()
  NATLAB_SEQ=0
  NATLAB_NROUTERS=0
}

# natlab_down: remove every namespace of this run. Returns non-zero if one is left.
natlab_down() {
  [[ -n $NATLAB_PREFIX ]] || return 0
  if [[ $NATLAB_OWNER != "$BASHPID" ]]; then
    natlab__log "natlab_down ignored: this lab belongs to the shell that ran natlab_init (pid $NATLAB_OWNER), not to this subshell"
    return 1
  fi
  local t0 left procs=() nsino=() rc=0
  t0=$(natlab__now_ms)
  # The lab's own processes (delay links...) go first, by PID.
  natlab__stop_procs || rc=1
  local -a mine
  mapfile -t mine < <(natlab__list_ns "$NATLAB_PREFIX")
  if ((${#mine[@]})); then
    # Processes still inside a lab namespace keep it alive after the delete: report them.
    mapfile -t nsino < <(cd "$NATLAB_NETNS_DIR" && stat -L -c '%i' "${mine[@]}" 2>/dev/null)
    if ((${#nsino[@]})); then
      local pat
      pat=$(printf 'net:\\[%s\\]|' "${nsino[@]}")
      mapfile -t procs < <(find /proc -mindepth 3 -maxdepth 3 -path '/proc/[0-9]*/ns/net' \
        -printf '%l %h\n' 2>/dev/null | grep -E "^(${pat%|}) " | awk '{ sub("/proc/", "", $2); sub("/ns", "", $2); print $2 }')
      ((${#procs[@]} == 0)) ||
        natlab__log "processes still in lab namespaces (not killed; their namespaces outlive the lab until they exit): ${procs[*]}"
    fi
    natlab__del_ns "${mine[@]}"
  fi
  natlab__reset
  rm -rf "$NATLAB_RUN_DIR"
  left=$(natlab__list_ns "$NATLAB_PREFIX")
  if [[ -n $left ]]; then
    natlab__log "could not remove: $left"
    return 1
  fi
  ((${#mine[@]} == 0)) || natlab__vlog "removed ${#mine[@]} namespaces in $(($(natlab__now_ms) - t0)) ms"
  return "$rc"
}

# ---------------------------------------------------------------------------------------------
# Building blocks

natlab__need_init() {
  [[ -n $NATLAB_PREFIX ]] || natlab__fail "call natlab_init first"
  [[ $NATLAB_OWNER == "$BASHPID" ]] ||
    natlab__fail "natlab_* calls that build the lab must run in the shell that ran natlab_init, not in a subshell or \$(...)"
  natlab__install_trap
}

natlab__check_name() {
  [[ $1 =~ ^[A-Za-z0-9][A-Za-z0-9_-]*$ ]] || natlab__fail "bad name '$1'"
  [[ -z ${NATLAB_KIND[$1]:-} ]] || natlab__fail "'$1' exists already"
}

natlab__kind() {
  local k=${NATLAB_KIND[$1]:-}
  [[ -n $k ]] || natlab__fail "no lab node named '$1'"
  echo "$k"
}

natlab__need_kind() {
  local k
  k=$(natlab__kind "$1")
  [[ " ${*:2} " == *" $k "* ]] || natlab__fail "'$1' is a $k, expected: ${*:2}"
}

# natlab__new_ns NAME KIND [v6]: create and register the namespace, set its sysctls (before any
# device exists, so the defaults apply to all of them). IPv6 stays disabled unless "v6" is given;
# then addresses are usable at once (no DAD) and nothing is autoconfigured (no RA, no RS).
natlab__new_ns() {
  local name=$1 kind=$2 ns=$NATLAB_PREFIX$1 v6=${3:-}
  natlab__run "ip netns add $ns" ip netns add "$ns"
  NATLAB_NSS+=("$ns")
  NATLAB_KIND[$name]=$kind
  local -a s=(
    net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
    net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0
    net.ipv4.conf.all.accept_redirects=0 net.ipv4.conf.default.accept_redirects=0
    net.bridge.bridge-nf-call-iptables=0 net.bridge.bridge-nf-call-ip6tables=0
    net.bridge.bridge-nf-call-arptables=0
  )
  if [[ $kind == router ]]; then
    s+=(net.ipv4.ip_forward=1 net.ipv4.conf.all.send_redirects=0
      net.ipv4.conf.default.send_redirects=0)
  fi
  if [[ $v6 == v6 ]]; then
    s+=(net.ipv6.conf.all.disable_ipv6=0 net.ipv6.conf.default.disable_ipv6=0
      net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0
      net.ipv6.conf.all.accept_ra=0 net.ipv6.conf.default.accept_ra=0
      net.ipv6.conf.all.router_solicitations=0 net.ipv6.conf.default.router_solicitations=0
      net.ipv6.conf.all.accept_redirects=0 net.ipv6.conf.default.accept_redirects=0)
    [[ $kind != router ]] || s+=(net.ipv6.conf.all.forwarding=1)
  fi
  natlab__run "sysctls in $ns" natlab__nsx "$ns" sysctl -q -e -w "${s[@]}"
}

natlab__ns_of() {
  natlab__kind "$1" >/dev/null
  echo "$NATLAB_PREFIX$1"
}

natlab_internet() {
  natlab__need_init
  [[ -z ${NATLAB_KIND[internet]:-} ]] || return 0
  natlab__new_ns internet internet
  natlab__ip "${NATLAB_PREFIX}internet" "internet bridge" <<EOF
link set lo up
link add br0 type bridge stp_state 0 forward_delay 0
link set br0 up
EOF
}

# natlab__attach NAME UPSTREAM IFNAME: veth from NAME's namespace (IFNAME) to UPSTREAM's segment
# (the internet's br0, or a router's lan bridge).
natlab__attach() {
  local name=$1 up=$2 ifname=$3 upns br=lan
  [[ $up == internet ]] && br=br0
  upns=$NATLAB_PREFIX$up
  NATLAB_SEQ=$((NATLAB_SEQ + 1))
  local port=v$NATLAB_SEQ
  natlab__ip "$upns" "veth $name/$ifname" <<EOF
link add $port type veth peer name $ifname netns $NATLAB_PREFIX$name
link set $port master $br up
EOF
}

# natlab__free_inet_ip FIRST: the first free internet address from .FIRST up.
natlab__free_inet_ip() {
  local n=$1
  while ((n < 255)); do
    if [[ -z ${NATLAB_USED_IP[$NATLAB_INET_PREFIX.$n]:-} ]]; then
      echo "$NATLAB_INET_PREFIX.$n"
      return 0
    fi
    n=$((n + 1))
  done
  natlab__fail "no free address left on $NATLAB_INET_PREFIX.0/24"
}

natlab__check_ip() {
  [[ $1 =~ ^([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})$ ]] ||
    natlab__fail "bad IPv4 address '$1'"
}

natlab__check_ip6() {
  [[ $1 =~ ^2001:db8::([0-9a-f]{1,4}:){0,3}[0-9a-f]{1,4}$ ]] ||
    natlab__fail "bad IPv6 address '$1' (the lab's internet is 2001:db8::/64, e.g. 2001:db8::10)"
}

natlab_public_host() {
  natlab__need_init
  local name=$1 ip v6=0
  shift
  natlab__check_name "$name"
  natlab_internet
  local -a ips=() ips6=()
  for ip in "$@"; do
    if [[ $ip == --ipv6 ]]; then
      v6=1
    elif [[ $ip == *:* ]]; then
      ips6+=("$ip")
    else
      ips+=("$ip")
    fi
  done
  ((${#ips[@]})) || ips=("$(natlab__free_inet_ip 30)")
  for ip in "${ips[@]}"; do
    natlab__check_ip "$ip"
    [[ $ip == "$NATLAB_INET_PREFIX".* ]] || natlab__fail "$ip is not on $NATLAB_INET_PREFIX.0/24"
    [[ -z ${NATLAB_USED_IP[$ip]:-} ]] || natlab__fail "$ip is taken"
  done
  # --ipv6 without an address: 2001:db8::<last number of the IPv4 address>.
  ((v6 == 0 || ${#ips6[@]})) || ips6=("${NATLAB_INET6_PREFIX}:${ips[0]##*.}")
  for ip in "${ips6[@]}"; do
    natlab__check_ip6 "$ip"
    [[ -z ${NATLAB_USED_IP[$ip]:-} ]] || natlab__fail "$ip is taken"
  done
  local v6flag=""
  ((${#ips6[@]} == 0)) || v6flag=v6
  natlab__new_ns "$name" public "$v6flag"
  natlab__attach "$name" internet eth0
  local batch="link set lo up"$'\n'
  for ip in "${ips[@]}"; do
    batch+="addr add $ip/24 dev eth0"$'\n'
    NATLAB_USED_IP[$ip]=1
  done
  for ip in "${ips6[@]}"; do
    batch+="addr add $ip/64 dev eth0 nodad"$'\n'
    NATLAB_USED_IP[$ip]=1
  done
  batch+="link set eth0 up"
  natlab__ip "$NATLAB_PREFIX$name" "public host $name" <<<"$batch"
  NATLAB_IP[$name]=${ips[0]}
  NATLAB_UP[$name]=internet
  if ((${#ips6[@]})); then
    NATLAB_IP6[$name]=${ips6[0]}
    natlab__routes6_install "$name"
  fi
  if [[ $name == intermediate ]]; then
    NATLAB_INTERMEDIATE_IP=${ips[0]}
    NATLAB_INTERMEDIATE_IP6=${ips6[0]:-}
  fi
  natlab__vlog "public host $name ${ips[*]} ${ips6[*]}"
}

# natlab__routes6_install NAME: an IPv6 node on the internet (public host or first-level router)
# gets a route to every routed LAN but those behind itself.
natlab__routes6_install() {
  local name=$1 own=${NATLAB_WAN6[$1]:-${NATLAB_IP6[$1]:-}} r batch=""
  for r in "${NATLAB_ROUTES6[@]}"; do
    [[ ${r#* } == "$own" ]] || batch+="route add ${r% *} via ${r#* }"$'\n'
  done
  [[ -z $batch ]] || natlab__ip "$NATLAB_PREFIX$name" "IPv6 routes of $name" <<<"$batch"
}

# natlab__route6_lan ROUTER: make ROUTER's IPv6 LAN reachable: each router above it routes the
# prefix to the one below, and every IPv6 node on the internet to the outermost one.
natlab__route6_lan() {
  local r=$1 prefix=${NATLAB_LAN6[$1]}:/64 via=${NATLAB_WAN6[$1]} up=${NATLAB_UP[$1]} n
  while [[ $up != internet ]]; do
    natlab__ip "$NATLAB_PREFIX$up" "IPv6 route to $prefix" <<<"route add $prefix via $via"
    via=${NATLAB_WAN6[$up]}
    up=${NATLAB_UP[$up]}
  done
  NATLAB_ROUTES6+=("$prefix $via")
  for n in "${!NATLAB_KIND[@]}"; do
    [[ ${NATLAB_UP[$n]:-} == internet ]] || continue
    case ${NATLAB_KIND[$n]} in
    public) [[ -n ${NATLAB_IP6[$n]:-} ]] || continue ;;
    router) [[ -n ${NATLAB_WAN6[$n]:-} && ${NATLAB_WAN6[$n]} != "$via" ]] || continue ;;
    *) continue ;;
    esac
    natlab__ip "$NATLAB_PREFIX$n" "IPv6 route to $prefix" <<<"route add $prefix via $via"
  done
}

natlab_router() {
  natlab__need_init
  local name=$1
  shift
  natlab__check_name "$name"
  local mapping=eim filtering=apdf firewall=on hairpin=on up=internet lan="" wan="" cgnat=0
  local udp_timeout="" delay="" loss="" seed="" v6="" upnp=""
  while (($#)); do
    case $1 in
    --mapping) mapping=${2:-} ;;
    --filtering) filtering=${2:-} ;;
    --firewall) firewall=${2:-} ;;
    --hairpin) hairpin=${2:-} ;;
    --upstream) up=${2:-} ;;
    --lan) lan=${2:-} ;;
    --wan) wan=${2:-} ;;
    --udp-timeout) udp_timeout=${2:-} ;;
    --delay) delay=${2:-} ;;
    --loss) loss=${2:-} ;;
    --loss-seed) seed=${2:-} ;;
    --cgnat)
      cgnat=1
      shift
      continue
      ;;
    --ipv6)
      v6=v6
      shift
      continue
      ;;
    --upnp)
      upnp=1
      shift
      continue
      ;;
    *) natlab__fail "natlab_router $name: unknown option '$1'" ;;
    esac
    (($# >= 2)) || natlab__fail "natlab_router $name: $1 needs a value"
    shift 2
  done
  [[ $mapping =~ ^(eim|adm|apdm|seq)$ ]] || natlab__fail "router $name: --mapping eim|adm|apdm|seq, not '$mapping'"
  [[ $filtering =~ ^(eif|adf|apdf)$ ]] || natlab__fail "router $name: --filtering eif|adf|apdf, not '$filtering'"
  [[ $firewall =~ ^(on|off)$ ]] || natlab__fail "router $name: --firewall on|off, not '$firewall'"
  [[ $hairpin =~ ^(on|off)$ ]] || natlab__fail "router $name: --hairpin on|off, not '$hairpin'"
  [[ -z $udp_timeout || $udp_timeout =~ ^[1-9][0-9]*$ ]] || natlab__fail "router $name: bad --udp-timeout"
  [[ $up == internet ]] || natlab__need_kind "$up" router
  if [[ -n $upnp ]]; then
    command -v miniupnpd >/dev/null 2>&1 ||
      natlab__fail "router $name: --upnp needs miniupnpd (Debian package miniupnpd-nftables, from scripts/install-deps)"
    natlab__check_name "$name-upnp"
  fi
  local wire=""
  if [[ -n $delay$loss$seed ]]; then
    [[ -z $delay || $delay =~ ^[0-9]+(\.[0-9]+)?$ ]] || natlab__fail "router $name: bad --delay '$delay' (ms)"
    [[ -z $loss || $loss =~ ^(100|[0-9]{1,2}(\.[0-9]+)?)$ ]] || natlab__fail "router $name: bad --loss '$loss' (percent)"
    [[ -z $seed || $seed =~ ^[0-9]{1,15}$ ]] || natlab__fail "router $name: bad --loss-seed '$seed'"
    wire=$name-wire
    natlab__check_name "$wire"
    natlab__delay_link_bin
  fi
  NATLAB_NROUTERS=$((NATLAB_NROUTERS + 1))
  local n=$NATLAB_NROUTERS
  if [[ -z $lan ]]; then
    lan=10.$n.0
    ((cgnat == 0)) || lan=100.64.$n
  else
    [[ $lan =~ ^([0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3})\.0/24$ ]] ||
      natlab__fail "router $name: --lan must look like A.B.C.0/24"
    lan=${BASH_REMATCH[1]}
  fi
  local gw="" wan6="" gw6="" lan6=""
  if [[ $up == internet ]]; then
    natlab_internet
    [[ -n $wan ]] || wan=$(natlab__free_inet_ip 101)
    natlab__check_ip "$wan"
    [[ $wan == "$NATLAB_INET_PREFIX".* ]] || natlab__fail "$wan is not on $NATLAB_INET_PREFIX.0/24"
    [[ -z ${NATLAB_USED_IP[$wan]:-} ]] || natlab__fail "$wan is taken"
    if [[ -n $v6 ]]; then
      wan6=${NATLAB_INET6_PREFIX}:${wan##*.}
      [[ -z ${NATLAB_USED_IP[$wan6]:-} ]] || natlab__fail "router $name: its IPv6 WAN address $wan6 is taken"
      NATLAB_USED_IP[$wan6]=1
    fi
    NATLAB_USED_IP[$wan]=1
  else
    [[ -z $wan ]] || natlab__fail "router $name: --wan only for routers on the internet"
    [[ -z $v6 || -n ${NATLAB_LAN6[$up]:-} ]] ||
      natlab__fail "router $name: --ipv6 behind $up, which has no IPv6 (give it --ipv6 too)"
    natlab__next_lan_ip "$up"
    wan=$NATLAB_GOT_IP
    gw=${NATLAB_IP[$up]}
    if [[ -n $v6 ]]; then
      wan6=${NATLAB_LAN6[$up]}:${wan##*.}
      gw6=${NATLAB_IP6[$up]}
    fi
  fi
  [[ -z $v6 ]] || lan6=${NATLAB_INET6_PREFIX}$n:
  natlab__new_ns "$name" router "$v6"
  local ns=$NATLAB_PREFIX$name
  if [[ -n $wire ]]; then
    natlab__wire "$name" "$up" "${delay:-0}" "${loss:-0}" "$seed"
  else
    natlab__attach "$name" "$up" wan
  fi
  natlab__ip "$ns" "router $name" <<EOF
link set lo up
link add lan type bridge stp_state 0 forward_delay 0
addr add $lan.1/24 dev lan
link set lan up
addr add $wan/24 dev wan
link set wan up
${gw:+route add default via $gw dev wan onlink}
${v6:+addr add $lan6:1/64 dev lan nodad}
${v6:+addr add $wan6/64 dev wan nodad}
${gw6:+route add default via $gw6 dev wan}
EOF
  NATLAB_IP[$name]=$lan.1
  NATLAB_WAN[$name]=$wan
  NATLAB_LAN[$name]=$lan
  NATLAB_UP[$name]=$up
  if [[ -n $v6 ]]; then
    NATLAB_IP6[$name]=$lan6:1
    NATLAB_WAN6[$name]=$wan6
    NATLAB_LAN6[$name]=$lan6
    [[ $up != internet ]] || natlab__routes6_install "$name"
    natlab__route6_lan "$name"
  fi
  NATLAB_NEXT[$name]=10
  NATLAB_OPTS[$name]="$mapping $filtering $firewall $hairpin"
  local mt=120 ct=30
  if [[ -n $udp_timeout ]]; then
    mt=$udp_timeout
    ct=$udp_timeout
    natlab__run "conntrack timeouts in $ns" natlab__nsx "$ns" sysctl -q -w \
      "net.netfilter.nf_conntrack_udp_timeout=$udp_timeout" \
      "net.netfilter.nf_conntrack_udp_timeout_stream=$udp_timeout"
  fi
  local rules
  rules=$(natlab__ruleset "$wan" "$mapping" "$filtering" "$firewall" "$hairpin" "$mt" "$ct" "$v6" "$upnp")
  local out
  if ! out=$(natlab__nsx "$ns" nft -f - 2>&1 <<<"$rules"); then
    natlab__fail "nftables ruleset for router $name rejected: $out"$'\n'"$rules"
  fi
  [[ -z $upnp ]] || natlab__upnp "$name"
  natlab__vlog "router $name: wan $wan (upstream $up), lan $lan.0/24, $mapping/$filtering firewall $firewall hairpin $hairpin${v6:+, IPv6 wan $wan6 lan ${lan6}:/64}${wire:+, WAN link delay ${delay:-0} ms loss ${loss:-0}%}${upnp:+, UPnP-IGD/NAT-PMP/PCP}"
}

natlab_stun_server() {
  natlab__need_init
  [[ -z $NATLAB_STUN_UP ]] || return 0
  natlab_internet
  local ip port batch="" ns=${NATLAB_PREFIX}internet
  local -a eps=()
  for ip in "${NATLAB_STUN_IPS[@]}"; do
    [[ -z ${NATLAB_USED_IP[$ip]:-} ]] || natlab__fail "the STUN server's address $ip is taken"
    batch+="addr add $ip/24 dev br0"$'\n'
    for port in "${NATLAB_STUN_PORTS[@]}"; do
      eps+=("$ip:$port")
    done
  done
  natlab__ip "$ns" "STUN server addresses" <<<"$batch"
  for ip in "${NATLAB_STUN_IPS[@]}"; do
    NATLAB_USED_IP[$ip]=1
  done
  natlab__spawn stun "$ns" "$NATLAB_PYTHON" "$NATLAB_PROBE" stun --ready "$NATLAB_RUN_DIR/stun.ready" \
    "${eps[@]}"
  natlab__wait_file stun "$NATLAB_RUN_DIR/stun.ready"
  NATLAB_STUN_UP=1
  natlab__vlog "STUN server on ${eps[*]}"
}

natlab_upnp_url() {
  natlab__need_kind "$1" router
  [[ -n ${NATLAB_UPNP[$1]:-} ]] || natlab__fail "router '$1' runs no miniupnpd (--upnp)"
  echo "http://${NATLAB_IP[$1]}:$NATLAB_UPNP_HTTP_PORT/rootDesc.xml"
}

# natlab__upnp ROUTER: miniupnpd in ROUTER's namespace (UPnP-IGD, NAT-PMP and PCP on the LAN,
# external interface wan), with its configuration, leases and pid file in NATLAB_RUN_DIR. It
# refuses to forward ports when its WAN address is private or reserved, as the lab's TEST-NET
# addresses are, unless STUN shows the address is reachable as it is: hence the lab's STUN server
# (its answers from the other address and port are let in by the router's input chain).
natlab__upnp() {
  local r=$1 p=$1-upnp ns=$NATLAB_PREFIX$1 conf uuid
  natlab_stun_server
  mkdir -p "$NATLAB_RUN_DIR"
  conf=$NATLAB_RUN_DIR/$p.conf
  uuid=$(</proc/sys/kernel/random/uuid)
  cat >"$conf" <<EOF
ext_ifname=wan
listening_ip=lan
http_port=$NATLAB_UPNP_HTTP_PORT
enable_upnp=yes
enable_natpmp=yes
ipv6_disable=yes
secure_mode=yes
system_uptime=no
ext_perform_stun=yes
ext_stun_host=${NATLAB_STUN_IPS[0]}
ext_stun_port=${NATLAB_STUN_PORTS[0]}
upnp_table_name=miniupnpd
upnp_nat_table_name=miniupnpd
upnp_forward_chain=miniupnpd
upnp_nat_chain=prerouting_miniupnpd
upnp_nat_postrouting_chain=postrouting_miniupnpd
lease_file=$NATLAB_RUN_DIR/$p.leases
uuid=$uuid
allow 1024-65535 ${NATLAB_LAN[$r]}.0/24 1024-65535
deny 0-65535 0.0.0.0/0 0-65535
EOF
  natlab__spawn "$p" "$ns" miniupnpd -d -f "$conf" -P "$NATLAB_RUN_DIR/$p.daemon-pid"
  local log=$NATLAB_RUN_DIR/$p.log pid=${NATLAB_PID[$p]} deadline
  deadline=$(($(natlab__now_ms) + 10000))
  until grep -q "Listening for NAT-PMP/PCP traffic" "$log" 2>/dev/null; do
    natlab__running "$pid" || natlab__fail "miniupnpd of $r (pid $pid) exited while starting: $(tail -n 20 "$log")"
    (($(natlab__now_ms) < deadline)) || natlab__fail "miniupnpd of $r (pid $pid) not ready after 10 s: $(tail -n 20 "$log")"
    sleep 0.01
  done
  grep -q "Port forwarding is now enabled" "$log" ||
    natlab__log "router $r: miniupnpd forwards no ports (its STUN check saw filtering or another NAT in front of it): $(grep STUN "$log" | tail -n 3)"
  NATLAB_UPNP[$r]=1
}

# natlab__delay_link_bin: sets NATLAB_GOT_BIN to ztna-delay-link (NATLAB_DELAY_LINK, else from
# the build tree: ZTNA_BUILD_DIR as lib.sh uses it, default <repo>/build), or fails.
natlab__delay_link_bin() {
  local build=${ZTNA_BUILD_DIR:-$NATLAB_DIR/../../build}
  NATLAB_GOT_BIN=${NATLAB_DELAY_LINK:-$build/tests/ztna-delay-link}
  [[ -x $NATLAB_GOT_BIN ]] ||
    natlab__fail "ztna-delay-link not found at $NATLAB_GOT_BIN: build it (cmake --build BUILD_DIR --target ztna-delay-link) and set ZTNA_BUILD_DIR (or NATLAB_DELAY_LINK)"
}

# natlab__wire ROUTER UPSTREAM DELAY_MS LOSS_PCT SEED: ROUTER's WAN link through the namespace
# ROUTER-wire, where ztna-delay-link forwards frames between up0 (on the upstream segment) and
# down0 (whose peer is the router's wan).
natlab__wire() {
  local r=$1 up=$2 delay=$3 loss=$4 seed=$5 w=$1-wire
  local wns=$NATLAB_PREFIX$w upns=$NATLAB_PREFIX$2
  natlab__new_ns "$w" wire
  NATLAB_UP[$w]=$up
  natlab__attach "$w" "$up" up0
  local port=v$NATLAB_SEQ
  natlab__ip "$wns" "wire of $r" <<EOF
link add down0 type veth peer name wan netns $NATLAB_PREFIX$r
link set up0 up
link set down0 up
EOF
  if [[ $loss != 0 ]]; then
    # Loss applies per frame: the devices that send into the wire hand it one packet per frame
    # (the kernel segments GSO super-frames before them), so a lost frame is one lost packet.
    natlab__ip "$upns" "wire of $r" <<<"link set $port gso_max_segs 1"
    natlab__ip "$NATLAB_PREFIX$r" "wire of $r" <<<"link set wan gso_max_segs 1"
  fi
  local ready=$NATLAB_RUN_DIR/$w.ready
  natlab__spawn "$w" "$wns" "$NATLAB_GOT_BIN" --if up0 --if down0 --delay "$delay" --loss "$loss" \
    ${seed:+--seed "$seed"} --ready "$ready"
  natlab__wait_file "$w" "$ready"
  NATLAB_DELAY[$r]="$delay $loss"
}

# natlab__next_lan_ip ROUTER: sets NATLAB_GOT_IP to the next free address on ROUTER's LAN
# (not printed: it must run in the calling shell to advance the counter).
natlab__next_lan_ip() {
  local r=$1 k
  k=${NATLAB_NEXT[$r]}
  ((k < 255)) || natlab__fail "router $r: LAN full"
  NATLAB_NEXT[$r]=$((k + 1))
  NATLAB_GOT_IP=${NATLAB_LAN[$r]}.$k
}

# natlab__ruleset WAN MAPPING FILTERING FIREWALL HAIRPIN MAP_TIMEOUT CT_TIMEOUT [v6] [UPNP]:
# one router's nftables.
natlab__ruleset() {
  local wan=$1 mapping=$2 filtering=$3 firewall=$4 hairpin=$5 mt=$6 ct=$7 v6=${8:-} upnp=${9:-}
  local rnd=""
  [[ $mapping == eim ]] || rnd=" fully-random"
  cat <<EOF
table ip natlab {
  # External port -> internal endpoint, for every mapping (eif filtering, hairpinning).
  map mapping {
    type inet_service : ipv4_addr . inet_service
    flags dynamic,timeout
    timeout ${mt}s
  }
  # External port . remote address -> internal endpoint (adf filtering).
  map adf {
    type inet_service . ipv4_addr : ipv4_addr . inet_service
    flags dynamic,timeout
    timeout ${mt}s
  }
  # Internal endpoint . remote address -> external port (adm mapping).
  map adm {
    type ipv4_addr . inet_service . ipv4_addr : inet_service
    flags dynamic,timeout
    timeout ${mt}s
  }
  # Remote endpoints whose unsolicited packets reached the router itself (firewall off), for as
  # long as conntrack keeps their unreplied entries.
  set claimed {
    type ipv4_addr . inet_service
    flags dynamic,timeout
    timeout ${ct}s
  }
  chain dstnat {
    type nat hook prerouting priority dstnat; policy accept;
EOF
  case $filtering in
  eif) echo "    iifname \"wan\" meta l4proto udp dnat ip to udp dport map @mapping" ;;
  adf) echo "    iifname \"wan\" meta l4proto udp dnat ip to udp dport . ip saddr map @adf" ;;
  esac
  [[ $hairpin == off ]] ||
    echo "    iifname \"lan\" ip daddr $wan meta l4proto udp dnat ip to udp dport map @mapping"
  cat <<EOF
  }
  chain srcnat {
    type nat hook postrouting priority srcnat; policy accept;
    # The router's own packets (miniupnpd's STUN check) leave as they are.
    oifname "wan" ip saddr $wan return
EOF
  [[ $hairpin == off ]] ||
    echo "    iifname \"lan\" oifname \"lan\" ct status dnat snat ip to $wan$rnd"
  case $mapping in
  eim) echo "    oifname \"wan\" snat ip to $wan" ;;
  adm)
    # Linux moves a flow whose tuple an unsolicited packet has claimed to another port; the
    # fixed-port snat below cannot, so such flows get a random port here.
    [[ $firewall == on ]] ||
      echo "    oifname \"wan\" meta l4proto udp ip daddr . udp dport @claimed snat ip to $wan fully-random"
    echo "    oifname \"wan\" meta l4proto udp snat ip to $wan : ip saddr . udp sport . ip daddr map @adm"
    echo "    oifname \"wan\" snat ip to $wan fully-random"
    ;;
  apdm) echo "    oifname \"wan\" snat ip to $wan fully-random" ;;
  seq)
    # Only a flow's first packet passes here: every new flow takes the next value of the counter.
    # The port goes through a map because nft would store the counter itself in host byte order
    # (port steps of 256 on little-endian machines).
    printf '    oifname "wan" meta l4proto { tcp, udp } snat ip to %s : numgen inc mod %d map { %s }\n' \
      "$wan" "$NATLAB_SEQMAP_SPAN" "$(awk -v n="$NATLAB_SEQMAP_SPAN" -v p="$NATLAB_SEQMAP_FIRST" \
        'BEGIN { for (i = 0; i < n; i++) printf "%s%d : %d", (i ? ", " : ""), i, p + i }')"
    echo "    oifname \"wan\" snat ip to $wan fully-random"
    ;;
  esac
  cat <<EOF
  }
  # After srcnat: the packet carries its external port, conntrack knows the internal endpoint.
  # ("meta l4proto udp" in each rule gives nft the context to type ct proto-src.)
  chain track {
    type filter hook postrouting priority srcnat + 10; policy accept;
    oifname != "wan" return
    meta l4proto udp ct direction original update @mapping { udp sport : ct original ip saddr . ct original proto-src }
    meta l4proto udp ct direction reply update @mapping { udp sport : ct reply ip saddr . ct reply proto-src }
EOF
  if [[ $filtering == adf ]]; then
    echo "    meta l4proto udp ct direction original update @adf { udp sport . ip daddr : ct original ip saddr . ct original proto-src }"
    echo "    meta l4proto udp ct direction reply update @adf { udp sport . ip daddr : ct reply ip saddr . ct reply proto-src }"
  fi
  [[ $mapping != adm ]] ||
    echo "    meta l4proto udp ct direction original update @adm { ct original ip saddr . ct original proto-src . ip daddr : udp sport }"
  cat <<EOF
  }
  chain input {
    type filter hook input priority filter; policy accept;
EOF
  [[ $hairpin == on ]] || echo "    iifname \"lan\" ip daddr $wan meta l4proto udp drop"
  if [[ $firewall == on ]]; then
    echo "    iifname \"wan\" ct state established,related accept"
    if [[ -n $upnp ]]; then
      local ips ports
      ips=$(IFS=,; echo "${NATLAB_STUN_IPS[*]}")
      ports=$(IFS=,; echo "${NATLAB_STUN_PORTS[*]}")
      echo "    iifname \"wan\" ip saddr { $ips } udp sport { $ports } accept"
    fi
    echo "    iifname \"wan\" drop"
  else
    echo "    iifname \"wan\" meta l4proto udp ct state new update @claimed { ip saddr . udp sport }"
  fi
  cat <<EOF
  }
  chain forward {
    type filter hook forward priority filter; policy accept;
EOF
  if [[ $firewall == on ]]; then
    echo "    iifname \"wan\" ct state established,related accept"
    echo "    iifname \"wan\" ct status dnat accept"
    echo "    iifname \"wan\" drop"
  fi
  cat <<EOF
  }
  # natlab_block fills it.
  chain block {
    type filter hook forward priority filter - 10; policy accept;
  }
}
table bridge natlab {
  chain block {
    type filter hook forward priority filter; policy accept;
  }
}
EOF
  if [[ -n $upnp ]]; then
    # miniupnpd (nftables backend) adds its rules to these inet chains (IPv4 payload matches,
    # hence the nfproto guard). Its DNAT runs before the lab's (dstnat - 5): a port mapping wins
    # over eif/adf, and the forward chain then accepts the packet as DNATed (ct status dnat);
    # PCP PEER SNAT runs before the lab's mapping (srcnat - 5).
    cat <<EOF
table inet miniupnpd {
  chain miniupnpd {
  }
  chain prerouting_miniupnpd {
  }
  chain postrouting_miniupnpd {
  }
  chain forward {
    type filter hook forward priority filter - 5; policy accept;
    meta nfproto ipv4 jump miniupnpd
  }
  chain prerouting {
    type nat hook prerouting priority dstnat - 5; policy accept;
    meta nfproto ipv4 jump prerouting_miniupnpd
  }
  chain postrouting {
    type nat hook postrouting priority srcnat - 5; policy accept;
    meta nfproto ipv4 jump postrouting_miniupnpd
  }
}
EOF
  fi
  [[ -n $v6 ]] || return 0
  # IPv6: routed, no NAT66; a stateful firewall as on home routers.
  cat <<EOF
table ip6 natlab6 {
  # Internal endpoints that sent out (eif), and to which remote addresses (adf).
  set out {
    type ipv6_addr . inet_service
    flags dynamic,timeout
    timeout ${mt}s
  }
  set out_adf {
    type ipv6_addr . inet_service . ipv6_addr
    flags dynamic,timeout
    timeout ${mt}s
  }
  chain forward {
    type filter hook forward priority filter; policy accept;
EOF
  case $filtering in
  eif) echo "    oifname \"wan\" meta l4proto udp update @out { ip6 saddr . udp sport }" ;;
  adf) echo "    oifname \"wan\" meta l4proto udp update @out_adf { ip6 saddr . udp sport . ip6 daddr }" ;;
  esac
  if [[ $firewall == on ]]; then
    echo "    iifname \"wan\" ct state established,related accept"
    # Errors come in as related; echo requests are let in (RFC 6092).
    echo "    iifname \"wan\" icmpv6 type echo-request accept"
    case $filtering in
    eif) echo "    iifname \"wan\" meta l4proto udp ip6 daddr . udp dport @out accept" ;;
    adf) echo "    iifname \"wan\" meta l4proto udp ip6 daddr . udp dport . ip6 saddr @out_adf accept" ;;
    esac
    echo "    iifname \"wan\" drop"
  fi
  cat <<EOF
  }
  chain input {
    type filter hook input priority filter; policy accept;
EOF
  if [[ $firewall == on ]]; then
    echo "    iifname \"wan\" ct state established,related accept"
    # Neighbour discovery and echo requests.
    echo "    iifname \"wan\" meta l4proto ipv6-icmp accept"
    echo "    iifname \"wan\" drop"
  fi
  cat <<EOF
  }
  # natlab_block fills it.
  chain block {
    type filter hook forward priority filter - 10; policy accept;
  }
}
EOF
}

natlab_host() {
  natlab__need_init
  local name=$1 r=${2:-}
  natlab__check_name "$name"
  natlab__need_kind "$r" router
  local ip ip6="" v6=""
  natlab__next_lan_ip "$r"
  ip=$NATLAB_GOT_IP
  # Behind an IPv6 router a host gets <lan6>::<same number as its IPv4 address>.
  if [[ -n ${NATLAB_LAN6[$r]:-} ]]; then
    v6=v6
    ip6=${NATLAB_LAN6[$r]}:${ip##*.}
  fi
  natlab__new_ns "$name" host "$v6"
  natlab__attach "$name" "$r" eth0
  natlab__ip "$NATLAB_PREFIX$name" "host $name" <<EOF
link set lo up
addr add $ip/24 dev eth0
${v6:+addr add $ip6/64 dev eth0 nodad}
link set eth0 up
route add default via ${NATLAB_IP[$r]} dev eth0 onlink
${v6:+route add default via ${NATLAB_IP6[$r]} dev eth0}
EOF
  NATLAB_IP[$name]=$ip
  [[ -z $v6 ]] || NATLAB_IP6[$name]=$ip6
  NATLAB_UP[$name]=$r
  natlab__vlog "host $name $ip${v6:+ $ip6} behind $r"
}

natlab_lone_host() {
  natlab__need_init
  local name=$1 a v6=0
  shift
  natlab__check_name "$name"
  (($#)) || natlab__fail "natlab_lone_host $name: no address"
  for a in "$@"; do
    [[ $a == */* ]] || natlab__fail "natlab_lone_host $name: '$a' has no prefix length"
    [[ $a != *:* ]] || v6=1
  done
  natlab__new_ns "$name" lone
  local ns=$NATLAB_PREFIX$name
  if ((v6)); then
    natlab__run "IPv6 on in $ns" natlab__nsx "$ns" sysctl -q -w net.ipv6.conf.all.disable_ipv6=0 \
      net.ipv6.conf.default.disable_ipv6=0
  fi
  local batch="link set lo up"$'\n'"link add lone0 type veth peer name lone1"$'\n'
  for a in "$@"; do
    if [[ $a == *:* ]]; then
      batch+="addr add $a dev lone0 nodad"$'\n'
    else
      batch+="addr add $a dev lone0"$'\n'
    fi
  done
  batch+="link set lone0 up"$'\n'"link set lone1 up"
  natlab__ip "$ns" "lone host $name" <<<"$batch"
  NATLAB_IP[$name]=${1%/*}
  NATLAB_UP[$name]=none
  natlab__vlog "lone host $name $*"
}

# ---------------------------------------------------------------------------------------------
# Queries and run-time control

natlab_ns() {
  natlab__ns_of "$1"
}

natlab_exec() {
  local ns
  ns=$(natlab__ns_of "$1")
  shift
  ip netns exec "$ns" "$@"
}

natlab_addr() {
  natlab__kind "$1" >/dev/null
  [[ -n ${NATLAB_IP[$1]:-} ]] || natlab__fail "'$1' has no address"
  echo "${NATLAB_IP[$1]}"
}

natlab_public_addr() {
  natlab__need_kind "$1" router
  echo "${NATLAB_WAN[$1]}"
}

natlab_addr6() {
  natlab__kind "$1" >/dev/null
  [[ -n ${NATLAB_IP6[$1]:-} ]] || natlab__fail "'$1' has no IPv6 address"
  echo "${NATLAB_IP6[$1]}"
}

natlab_public_addr6() {
  natlab__need_kind "$1" router
  [[ -n ${NATLAB_WAN6[$1]:-} ]] || natlab__fail "router '$1' has no IPv6 (--ipv6)"
  echo "${NATLAB_WAN6[$1]}"
}

natlab_router_of() {
  natlab__need_kind "$1" host router
  echo "${NATLAB_UP[$1]}"
}

natlab_router_opts() {
  natlab__need_kind "$1" router
  echo "${NATLAB_OPTS[$1]}"
}

natlab_wan_link() {
  natlab__need_kind "$1" router
  echo "${NATLAB_DELAY[$1]:-0 0}"
}

natlab_external_addr() {
  local n=$1 k
  k=$(natlab__kind "$n")
  [[ $k != internet ]] || natlab__fail "the internet namespace has no address"
  [[ $k != public ]] || { echo "${NATLAB_IP[$n]}"; return 0; }
  [[ $k == router ]] || n=${NATLAB_UP[$n]}
  while [[ ${NATLAB_UP[$n]} != internet ]]; do
    n=${NATLAB_UP[$n]}
  done
  echo "${NATLAB_WAN[$n]}"
}

natlab_block() {
  natlab__need_kind "$1" router
  local r=$1 ns=$NATLAB_PREFIX$1
  shift
  local -a keep=("$@") keep4=() keep6=()
  if ((${#keep[@]} == 0)); then
    keep=("$NATLAB_INTERMEDIATE_IP")
    [[ -z $NATLAB_INTERMEDIATE_IP6 ]] || keep+=("$NATLAB_INTERMEDIATE_IP6")
  fi
  local ip rule4 rule6 set4 set6
  for ip in "${keep[@]}"; do
    if [[ $ip == *:* ]]; then
      natlab__check_ip6 "$ip"
      keep6+=("$ip")
    else
      natlab__check_ip "$ip"
      keep4+=("$ip")
    fi
  done
  set4=$(IFS=,; echo "${keep4[*]}")
  set6=$(IFS=,; echo "${keep6[*]}")
  rule4="meta l4proto udp${set4:+ ip saddr != { $set4 \} ip daddr != { $set4 \}} counter drop"
  rule6="meta l4proto udp${set6:+ ip6 saddr != { $set6 \} ip6 daddr != { $set6 \}} counter drop"
  local batch="flush chain ip natlab block
add rule ip natlab block $rule4
flush chain bridge natlab block
add rule bridge natlab block meta protocol ip $rule4"
  if [[ -n ${NATLAB_WAN6[$r]:-} ]]; then
    batch+="
add rule bridge natlab block meta protocol ip6 $rule6
flush chain ip6 natlab6 block
add rule ip6 natlab6 block $rule6"
  fi
  natlab__run "natlab_block $r" natlab__nsx "$ns" nft -f - <<<"$batch"
  natlab__vlog "router $r: forwarded UDP blocked except to/from ${keep[*]}"
}

natlab_unblock() {
  natlab__need_kind "$1" router
  local batch="flush chain ip natlab block
flush chain bridge natlab block"
  [[ -z ${NATLAB_WAN6[$1]:-} ]] || batch+=$'\n'"flush chain ip6 natlab6 block"
  natlab__run "natlab_unblock $1" natlab__nsx "$NATLAB_PREFIX$1" nft -f - <<<"$batch"
  natlab__vlog "router $1: unblocked"
}

natlab_flush_conntrack() {
  natlab__need_kind "$1" router
  local ns=$NATLAB_PREFIX$1
  local batch="flush map ip natlab mapping
flush map ip natlab adf
flush map ip natlab adm
flush set ip natlab claimed"
  [[ -z ${NATLAB_WAN6[$1]:-} ]] || batch+=$'\n'"flush set ip6 natlab6 out"$'\n'"flush set ip6 natlab6 out_adf"
  natlab__run "nft flush in $1" natlab__nsx "$ns" nft -f - <<<"$batch"
  natlab__run "conntrack -F in $1" natlab__nsx "$ns" conntrack -F
  natlab__vlog "router $1: mappings flushed"
}

natlab_mappings() {
  natlab__need_kind "$1" router
  natlab__nsx "$NATLAB_PREFIX$1" nft list map ip natlab mapping
}

natlab_conntrack() {
  natlab__need_kind "$1" router
  local ns=$NATLAB_PREFIX$1
  shift
  natlab__nsx "$ns" conntrack -L "$@" 2>/dev/null
}

# ---------------------------------------------------------------------------------------------
# Topologies

# natlab__split "$@": sets NATLAB_OPTS1 NATLAB_OPTS2 NATLAB_OPTS3 from "OPTS -- OPTS -- OPTS".
natlab__split() {
  NATLAB_OPTS1=()
  NATLAB_OPTS2=()
  NATLAB_OPTS3=()
  local i=1 a
  for a in "$@"; do
    if [[ $a == -- ]]; then
      i=$((i + 1))
      continue
    fi
    case $i in
    1) NATLAB_OPTS1+=("$a") ;;
    2) NATLAB_OPTS2+=("$a") ;;
    3) NATLAB_OPTS3+=("$a") ;;
    *) natlab__fail "too many '--' groups" ;;
    esac
  done
}

# natlab__has_ipv6 ARGS...: whether --ipv6 is among them.
natlab__has_ipv6() {
  local a
  for a in "$@"; do
    [[ $a != --ipv6 ]] || return 0
  done
  return 1
}

# natlab__intermediate [ARGS...]: the intermediate at 203.0.113.10, plus 2001:db8::10 if ARGS
# (a topology's options) ask for IPv6.
natlab__intermediate() {
  [[ -z ${NATLAB_KIND[intermediate]:-} ]] || return 0
  if natlab__has_ipv6 "$@"; then
    natlab_public_host intermediate 203.0.113.10 2001:db8::10
  else
    natlab_public_host intermediate 203.0.113.10
  fi
}

natlab_topo_same_lan() {
  natlab__intermediate "$@"
  natlab_router r1 "$@"
  natlab_host a r1
  natlab_host b r1
}

natlab_topo_public_peer() {
  natlab__intermediate "$@"
  natlab_router r1 "$@"
  natlab_host a r1
  if natlab__has_ipv6 "$@"; then
    natlab_public_host b --ipv6
  else
    natlab_public_host b
  fi
}

natlab_topo_two_nats() {
  natlab__split "$@"
  ((${#NATLAB_OPTS2[@]})) || NATLAB_OPTS2=("${NATLAB_OPTS1[@]}")
  natlab__intermediate "$@"
  natlab_router r1 "${NATLAB_OPTS1[@]}"
  natlab_router r2 "${NATLAB_OPTS2[@]}"
  natlab_host a r1
  natlab_host b r2
}

natlab_topo_double_nat() {
  natlab__split "$@"
  local -a home=("${NATLAB_OPTS1[@]}") cg=("${NATLAB_OPTS2[@]}") r2=("${NATLAB_OPTS3[@]}")
  ((${#r2[@]})) || r2=("${home[@]}")
  # IPv6 behind the CGNAT router needs it there too (carriers route IPv6 natively).
  if natlab__has_ipv6 "${home[@]}" && ! natlab__has_ipv6 "${cg[@]}"; then
    cg+=(--ipv6)
  fi
  natlab__intermediate "$@"
  natlab_router cgnat --cgnat "${cg[@]}"
  natlab_router r1 --upstream cgnat "${home[@]}"
  natlab_router r2 "${r2[@]}"
  natlab_host a r1
  natlab_host b r2
}
