#!/usr/bin/env bash
# IPv6: the intermediate listens on [::1]; connector and agent reach it over IPv6, are told
# their IPv6 observed address, and a fetch through the tunnel works. The session then moves to
# a direct IPv6 path between the [::1] server-reflexive candidates (the daemons bind [::1], so
# they have no host candidate and no packet leaves loopback).
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

ztna_setup
grep -qs '^0\{31\}1 ' /proc/net/if_inet6 || ztna_fail "this machine has no IPv6 loopback (::1)"
ztna_make_certs --intermediate-ip ::1
ztna_random_file "$ZTNA_TMP/www/blob.bin" $((1 << 20))
ztna_start_nginx "$ZTNA_TMP/www"
ZTNA_INT_PORT=$(ztna_free_port udp)
web_port=$(ztna_free_port tcp)

ZTNA_ROLE[intermediate]=intermediate
ZTNA_SOCK[intermediate]=$ZTNA_TMP/run/intermediate.sock
mapfile -t int_args < <(ztna_intermediate_args)
ztna_spawn intermediate 1 "$ZTNA_INTERMEDIATE_BIN" run --listen "[::1]:$ZTNA_INT_PORT" \
  "${int_args[@]}" --status-socket "${ZTNA_SOCK[intermediate]}"
ztna_wait_for 30 "intermediate status socket answers" ztna_json intermediate

for who in connector:conn1 agent:agent1; do
  role=${who%%:*} name=${who#*:}
  ZTNA_ROLE[$name]=$role
  ZTNA_SOCK[$name]=$ZTNA_TMP/run/$name.sock
  bin=$ZTNA_CONNECTOR_BIN extra=(--service "web=tcp://127.0.0.1:$ZTNA_NGINX_PORT" --allow 'web=*'
    --authorization-pub "$ZTNA_CERTS/authorization.pub")
  if [[ $role == agent ]]; then
    bin=$ZTNA_AGENT_BIN extra=(--expose "web=tcp://[::1]:$web_port")
  fi
  # No --intermediate-name: it defaults to the host of --intermediate, here the IP ::1, which
  # the certificate carries as an IP SAN.
  ztna_spawn "$name" 1 "$bin" run --intermediate "[::1]:$ZTNA_INT_PORT" --listen "[::1]:0" \
    --ca "$ZTNA_CERTS/ca.pem" --cert "$ZTNA_CERTS/$role-$name.pem" --key "$ZTNA_CERTS/$role-$name.key" \
    --status-socket "${ZTNA_SOCK[$name]}" "${extra[@]}"
done
ztna_wait_connected conn1 agent1
ztna_jq agent1 '.control.observed_address | startswith("[::1]:")' >/dev/null ||
  ztna_fail "agent's observed address is not IPv6: $(ztna_json agent1 | jq -r .control.observed_address)"
ztna_wait_service web

# The agent binds its listeners before it connects, so it is listening by now.
curl -fsS -g --max-time "$(ztna_secs 30)" -o "$ZTNA_TMP/got.bin" "http://[::1]:$web_port/blob.bin" ||
  ztna_fail "fetch over IPv6 failed"
cmp -s "$ZTNA_TMP/www/blob.bin" "$ZTNA_TMP/got.bin" || ztna_fail "content differs"
ztna_log "observed address $(ztna_json agent1 | jq -r .control.observed_address); fetch over IPv6 ok"

ztna_wait_json agent1 15 "the session on a direct IPv6 path" \
  'any(.sessions[]?; .path == "direct" and (.paths.selected_pair | test("-> [a-z]+ \\[")))'
ztna_log "direct over IPv6: $(ztna_json agent1 | jq -r '.sessions[0].paths.selected_pair')"
out=$("$ZTNA_AGENT_BIN" ping web -c 1 --status-socket "${ZTNA_SOCK[agent1]}")
ztna_log "$out"
grep -q "via direct \[" <<<"$out" || ztna_fail "ping did not go direct over IPv6"
ztna_pass
