#!/usr/bin/env bash
# IPv6: the intermediate listens on [fd00:77::1], a ULA in a network namespace of its own
# (natlab_lone_host) that has no IPv4 address but loopback. Connector and agent run there too,
# on dual-stack sockets; they reach the intermediate over IPv6, are told their IPv6 observed
# address, and a fetch through the tunnel (the agent's listener on [::1]) works. The session then
# moves to a direct IPv6 path between their fd00:77::1 host candidates: loopback candidates are
# never probed (docs/security.md), and IPv4 offers none here.
# shellcheck source-path=SCRIPTDIR/../natlab source=../natlab/lab_test.sh
source "$(dirname "$0")/../natlab/lab_test.sh"

solo_ip=fd00:77::1
int_port=4433
web_port=9000

ztna_setup
natlab_init
ztna_make_certs --intermediate-ip "$solo_ip"
natlab_lone_host solo "$solo_ip/64"
ns=$(natlab_ns solo)
natlab_exec solo "$ZTNA_PYTHON" -c "import socket; socket.socket(socket.AF_INET6).bind(('::1', 0))" ||
  ztna_fail "no IPv6 loopback (::1) in the test namespace"
ztna_random_file "$ZTNA_TMP/www/blob.bin" $((1 << 20))
lab_start_backend solo "$ZTNA_TMP/www"

ZTNA_ROLE[intermediate]=intermediate
ZTNA_SOCK[intermediate]=$ZTNA_TMP/run/intermediate.sock
mapfile -t int_args < <(ztna_intermediate_args)
ztna_spawn intermediate 1 ip netns exec "$ns" "$ZTNA_INTERMEDIATE_BIN" run \
  --listen "[$solo_ip]:$int_port" "${int_args[@]}" --status-socket "${ZTNA_SOCK[intermediate]}"
ztna_wait_for 30 "intermediate status socket answers" ztna_json intermediate

for who in connector:conn1 agent:agent1; do
  role=${who%%:*} name=${who#*:}
  ZTNA_ROLE[$name]=$role
  ZTNA_SOCK[$name]=$ZTNA_TMP/run/$name.sock
  bin=$ZTNA_CONNECTOR_BIN extra=(--service "web=tcp://127.0.0.1:$LAB_BACKEND_PORT" --allow 'web=*'
    --authorization-pub "$ZTNA_CERTS/authorization.pub")
  if [[ $role == agent ]]; then
    bin=$ZTNA_AGENT_BIN extra=(--expose "web=tcp://[::1]:$web_port")
  fi
  # No --intermediate-name: it defaults to the host of --intermediate, here the IP fd00:77::1,
  # which the certificate carries as an IP SAN.
  ztna_spawn "$name" 1 ip netns exec "$ns" "$bin" run --intermediate "[$solo_ip]:$int_port" \
    --listen "[::]:0" --ca "$ZTNA_CERTS/ca.pem" --crl "$ZTNA_CERTS/crl.pem" \
    --cert "$ZTNA_CERTS/$role-$name.pem" --key "$ZTNA_CERTS/$role-$name.key" \
    --status-socket "${ZTNA_SOCK[$name]}" "${extra[@]}"
done
ztna_wait_connected conn1 agent1
ztna_jq agent1 '.control.observed_address | startswith($p)' --arg p "[$solo_ip]:" >/dev/null ||
  ztna_fail "agent's observed address is not IPv6: $(ztna_json agent1 | jq -r .control.observed_address)"
ztna_wait_service web

# The agent binds its listeners before it connects, so it is listening by now.
natlab_exec solo curl -fsS -g --max-time "$(ztna_secs 30)" -o "$ZTNA_TMP/got.bin" \
  "http://[::1]:$web_port/blob.bin" || ztna_fail "fetch over IPv6 failed"
cmp -s "$ZTNA_TMP/www/blob.bin" "$ZTNA_TMP/got.bin" || ztna_fail "content differs"
ztna_log "observed address $(ztna_json agent1 | jq -r .control.observed_address); fetch over IPv6 ok"

ztna_wait_json agent1 15 "the session on a direct IPv6 path" \
  'any(.sessions[]?; .path == "direct" and (.paths.selected_pair | test("-> host \\[")))'
pair=$(ztna_json agent1 | jq -r '.sessions[0].paths.selected_pair')
ztna_log "direct over IPv6 after $(ztna_json agent1 | jq -r '.sessions[0].paths.time_to_direct_ms') ms: $pair"
[[ $pair == "host [$solo_ip]:"*" -> host [$solo_ip]:"* ]] || ztna_fail "unexpected pair: $pair"
out=$("$ZTNA_AGENT_BIN" ping web -c 1 --status-socket "${ZTNA_SOCK[agent1]}")
ztna_log "$out"
grep -q "via direct \[$solo_ip\]:" <<<"$out" || ztna_fail "ping did not go direct over IPv6"
ztna_pass
