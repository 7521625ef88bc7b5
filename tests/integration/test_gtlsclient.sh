#!/usr/bin/env bash
# A foreign QUIC client against the intermediate: ngtcp2's own gtlsclient (Debian ngtcp2-client),
# which offers only ALPN "h3" (the Debian build has no option to change it; `gtlsclient --help`).
#   1. without a client certificate, and
#   2. with a valid agent certificate (--cert/--key):
#      both are refused in the TLS handshake for the application protocol, before any certificate
#      is looked at: handshake_refusals.no_application_protocol rises by one each time, the log
#      says "refused control connection from ...: no common application protocol (ALPN)", and
#      gtlsclient receives a CONNECTION_CLOSE with CRYPTO_ERROR 0x178 (0x100 + TLS alert 120,
#      no_application_protocol). gtlsclient itself exits 0 after that: it treats a closed
#      connection as the end of its run, so its exit status says nothing and is not asserted.
#   3. "No certificate" needs our ALPN, which gtlsclient cannot offer. Our own control client
#      (ztna-control-probe) speaks it; given an agent certificate with a DSA key, which TLS 1.3 has
#      no signature scheme for, its TLS stack sends an empty Certificate message (RFC 8446
#      §4.4.2.4): the intermediate refuses with certificate_required and counts no_certificate.
# Meanwhile the real connector and agent stay registered and a page is fetched through them.
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

ztna_setup
ztna_require_tools gtlsclient
PROBE=$ZTNA_BUILD_DIR/tests/ztna-control-probe
[[ -x $PROBE ]] || ztna_fail "$PROBE not built"
ztna_make_certs
echo "served while foreign clients knock" >"$ZTNA_TMP/www/index.html"
ztna_start_web_stack

refusals() {
  ztna_json intermediate | jq -r --arg c "$1" '.handshake_refusals[$c]'
}
refused_lines() {
  grep -c "refused control connection from 127.0.0.1:[0-9]*: $1" "$(ztna_logfile intermediate)" || true
}
# gtlsclient NAME [args...]: one connection attempt; output in $ZTNA_TMP/NAME.out.
gtls() {
  local name=$1 rc=0
  shift
  timeout "$(ztna_secs 20)" gtlsclient --timeout=5s --handshake-timeout=5s --exit-on-all-streams-close \
    --sni="$ZTNA_INTERMEDIATE_DNS" "$@" 127.0.0.1 "$ZTNA_INT_PORT" \
    "https://$ZTNA_INTERMEDIATE_DNS/" >"$ZTNA_TMP/$name.out" 2>&1 || rc=$?
  ((rc != 124)) || ztna_fail "gtlsclient ($name) hung until the timeout"
  ztna_log "gtlsclient ($name) exited with status $rc; last lines: $(tail -n 2 "$ZTNA_TMP/$name.out" | tr '\n' ' ')"
  grep -q 'CONNECTION_CLOSE(0x1c) error_code=CRYPTO_ERROR(0x178)' "$ZTNA_TMP/$name.out" ||
    ztna_fail "gtlsclient ($name) did not get a CONNECTION_CLOSE for no_application_protocol: $(tail -n 20 "$ZTNA_TMP/$name.out")"
  if grep -q 'Negotiated ALPN' "$ZTNA_TMP/$name.out"; then
    ztna_fail "gtlsclient ($name) completed a handshake: $(grep 'Negotiated' "$ZTNA_TMP/$name.out")"
  fi
}

alpn_line='no common application protocol (ALPN): we speak ztna-control/4 (no_application_protocol)'

# 1. No client certificate, ALPN h3.
n0=$(refusals no_application_protocol)
l0=$(refused_lines "$alpn_line")
gtls no-cert
ztna_wait_json intermediate 10 "no_application_protocol refusals > $n0" \
  '.handshake_refusals.no_application_protocol > ($n | tonumber)' --arg n "$n0"
(($(refused_lines "$alpn_line") > l0)) || ztna_fail "no log line says why gtlsclient was refused"
grep "refused control connection" "$(ztna_logfile intermediate)" | tail -n 1 >&2

# 2. A valid agent certificate does not help with the wrong application protocol.
n1=$(refusals no_application_protocol)
gtls with-cert --cert "$ZTNA_CERTS/agent-agent1.pem" --key "$ZTNA_CERTS/agent-agent1.key"
ztna_wait_json intermediate 10 "no_application_protocol refusals > $n1" \
  '.handshake_refusals.no_application_protocol > ($n | tonumber)' --arg n "$n1"
(($(refused_lines "$alpn_line") >= l0 + 2)) || ztna_fail "no log line for the second gtlsclient"

# 3. Our ALPN and no certificate: an agent certificate with a DSA key, signed by the real CA.
d=$ZTNA_TMP/dsa
mkdir -p "$d"
openssl genpkey -genparam -algorithm DSA -pkeyopt dsa_paramgen_bits:1024 -out "$d/params.pem" 2>/dev/null
openssl genpkey -paramfile "$d/params.pem" -out "$d/agent.key" 2>/dev/null
cat >"$d/ext.cnf" <<'EOF'
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth
subjectAltName=DNS:dsa-agent,URI:ztna://agent/dsa-agent
EOF
openssl req -new -key "$d/agent.key" -subj /CN=dsa-agent -out "$d/agent.csr"
openssl x509 -req -in "$d/agent.csr" -CA "$ZTNA_CERTS/ca.pem" -CAkey "$ZTNA_CERTS/ca.key" \
  -set_serial "0x$(openssl rand -hex 16)" -days 1 -sha256 -extfile "$d/ext.cnf" \
  -out "$d/agent.pem" 2>/dev/null || ztna_fail "could not issue the DSA agent certificate"
openssl verify -CAfile "$ZTNA_CERTS/ca.pem" "$d/agent.pem" >/dev/null ||
  ztna_fail "the DSA agent certificate does not chain to the deployment CA"
n2=$(refusals no_certificate)
rc=0
timeout "$(ztna_secs 20)" "$PROBE" --intermediate "127.0.0.1:$ZTNA_INT_PORT" \
  --name "$ZTNA_INTERMEDIATE_DNS" --ca "$ZTNA_CERTS/ca.pem" --cert "$d/agent.pem" \
  --key "$d/agent.key" --send silent >"$ZTNA_TMP/probe.out" 2>&1 || rc=$?
ztna_log "control probe without a usable certificate: exit $rc: $(tr '\n' ' ' <"$ZTNA_TMP/probe.out")"
grep -q 'TLS alert GNUTLS_A_CERTIFICATE_REQUIRED' "$ZTNA_TMP/probe.out" ||
  ztna_fail "the intermediate did not answer certificate_required"
ztna_wait_json intermediate 10 "no_certificate refusals > $n2" \
  '.handshake_refusals.no_certificate > ($n | tonumber)' --arg n "$n2"
grep -q 'refused control connection from 127.0.0.1:[0-9]*: no certificate presented (no_certificate)' \
  "$(ztna_logfile intermediate)" || ztna_fail "no log line for the refusal without a certificate"
ztna_log "refusals: $(ztna_json intermediate | jq -c '.handshake_refusals | with_entries(select(.value > 0))')"

# The real peers never noticed: both still registered, and the tunnel carries a page.
ztna_jq intermediate '[.peers[] | .name] | sort == ["agent1", "conn1"]' >/dev/null ||
  ztna_fail "unexpected peers at the intermediate: $(ztna_json intermediate | jq -c '[.peers[] | .name]')"
ztna_jq intermediate '.handshakes.authenticated == 2 and .handshakes.half_open == 0' >/dev/null ||
  ztna_fail "unexpected handshake state: $(ztna_json intermediate | jq -c .handshakes)"
ztna_fetch "http://127.0.0.1:$ZTNA_WEB_PORT/index.html" "$ZTNA_TMP/index.out" 30
cmp -s "$ZTNA_TMP/www/index.html" "$ZTNA_TMP/index.out" || ztna_fail "page content differs"
ztna_log "agent1 fetched through the tunnel while the foreign clients were refused"

ztna_pass
