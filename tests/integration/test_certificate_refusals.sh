#!/usr/bin/env bash
# Certificates the intermediate must refuse inside the TLS handshake, one cause each. Every bad
# certificate is used by a real ztna-agent, which must never connect, while the intermediate counts
# the refusal under its cause (handshake_refusals.<cause>) and logs
# "refused control connection from <the agent's address>: ... (<cause>)":
#   wrong_usage       the agent role URI, but extendedKeyUsage serverAuth only (made by hand with
#                     openssl from the test CA, as make-certs does otherwise)
#   untrusted_issuer  an agent certificate from a foreign CA (the agent trusts the real CA)
#   expired           issued under faketime in 2020 for one day
#   revoked           issued, then revoked with make-certs --revoke-agent (the intermediate runs
#                     with --crl)
# And one that no ztna-agent can present:
#   no role URI       ztna-agent refuses to start with it (exit 1, says what is missing); no tool
#                     of ours presents such a certificate, so handshake_refusals.no_identity is not
#                     reachable from here
# (no_application_protocol and no_certificate: test_gtlsclient.sh.)
# Meanwhile the legitimate agent1 works, and no bad agent shows up among the intermediate's peers.
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

ztna_setup
ztna_require_tools faketime
ztna_make_certs --agent gone
echo "hello through the tunnel" >"$ZTNA_TMP/www/index.html"

# mint NAME EKU SAN: an agent-like certificate signed by the test CA, with the extensions of
# make-certs except the ones given.
mint() {
  local name=$1 eku=$2 san=$3 dir=$ZTNA_TMP/minted
  mkdir -p "$dir"
  cat >"$dir/$name.ext" <<EOF
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = $eku
subjectAltName = $san
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid, issuer
EOF
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$dir/$name.key" 2>/dev/null
  openssl req -new -key "$dir/$name.key" -subj "/CN=$name" -out "$dir/$name.csr" 2>/dev/null
  openssl x509 -req -in "$dir/$name.csr" -CA "$ZTNA_CERTS/ca.pem" -CAkey "$ZTNA_CERTS/ca.key" \
    -sha256 -days 2 -set_serial "0x$(openssl rand -hex 16)" -extfile "$dir/$name.ext" \
    -out "$dir/$name.pem" 2>/dev/null || ztna_fail "openssl could not issue $name"
  openssl verify -CAfile "$ZTNA_CERTS/ca.pem" "$dir/$name.pem" >/dev/null ||
    ztna_fail "$name does not chain to the test CA"
}
mint badeku serverAuth "DNS:badeku, URI:ztna://agent/badeku"
mint nouri clientAuth "DNS:nouri"
minted=$ZTNA_TMP/minted
openssl x509 -in "$minted/badeku.pem" -noout -ext extendedKeyUsage | grep -q "TLS Web Server Authentication" ||
  ztna_fail "badeku lacks serverAuth"

# Foreign CA.
rogue=$ZTNA_TMP/rogue-certs
"$ZTNA_MAKE_CERTS" --out "$rogue" --intermediate-dns "$ZTNA_INTERMEDIATE_DNS" \
  --intermediate-ip 127.0.0.1 --agent rogue >/dev/null 2>&1 || ztna_fail "make-certs for the foreign CA failed"

# Expired: valid for one day from 2020-01-01.
faketime '2020-01-01 00:00:00' "$ZTNA_MAKE_CERTS" --out "$ZTNA_CERTS" --agent old --days 1 \
  >"$ZTNA_TMP/logs/make-certs-old.out" 2>&1 || ztna_fail "make-certs under faketime failed: $(cat "$ZTNA_TMP/logs/make-certs-old.out")"
if openssl x509 -in "$ZTNA_CERTS/agent-old.pem" -noout -checkend 0 >/dev/null; then
  ztna_fail "agent-old.pem has not expired: $(openssl x509 -in "$ZTNA_CERTS/agent-old.pem" -noout -enddate)"
fi

# Revoked, before the intermediate starts: it loads crl.pem at start.
"$ZTNA_MAKE_CERTS" --out "$ZTNA_CERTS" --revoke-agent gone >"$ZTNA_TMP/logs/make-certs-revoke.out" 2>&1 ||
  ztna_fail "make-certs --revoke-agent gone failed: $(cat "$ZTNA_TMP/logs/make-certs-revoke.out")"
if openssl verify -crl_check -CRLfile "$ZTNA_CERTS/crl.pem" -CAfile "$ZTNA_CERTS/ca.pem" \
  "$ZTNA_CERTS/agent-gone.pem" >/dev/null 2>&1; then
  ztna_fail "agent-gone.pem is not revoked by crl.pem"
fi

ztna_start_web_stack
ztna_jq intermediate '.crl.revoked >= 1' >/dev/null ||
  ztna_fail "the intermediate did not load the revocation: $(ztna_json intermediate | jq -c .crl)"

log_has() {
  grep -qE -- "$2" "$(ztna_logfile "$1")"
}

# refused NAME CAUSE CA CERT KEY DETAIL: start a real agent NAME with that certificate, then wait
# for handshake_refusals.CAUSE to rise and for the intermediate's log line about NAME's address.
bad=()
refused() {
  local name=$1 cause=$2 ca=$3 cert=$4 key=$5 detail=$6 before addr port
  before=$(ztna_json intermediate | jq --arg c "$cause" '.handshake_refusals[$c]')
  port=$(ztna_free_port tcp)
  ztna_start_peer agent "$name" "$ca" "$cert" "$key" --expose "web=tcp://127.0.0.1:$port"
  bad+=("$name")
  ztna_wait_json intermediate 15 "handshake_refusals.$cause > $before" \
    '.handshake_refusals[$c] > ($n | tonumber)' --arg c "$cause" --arg n "$before"
  ztna_wait_json "$name" 10 "status answers" '.listen | type == "string"'
  addr=$(ztna_json "$name" | jq -r .listen)
  ztna_wait_for 10 "intermediate log: refused control connection from $addr ($cause)" \
    log_has intermediate "refused control connection from ${addr//./\\.}: .*$detail.* \\($cause\\)\$"
  ztna_log "$name: $(grep -E "refused control connection from ${addr//./\\.}:" "$(ztna_logfile intermediate)" | head -n1 | cut -d' ' -f4-)"
}

refused badeku wrong_usage "$ZTNA_CERTS/ca.pem" "$minted/badeku.pem" "$minted/badeku.key" \
  "certificate of agent 'badeku' does not allow TLS client authentication"
refused rogue untrusted_issuer "$ZTNA_CERTS/ca.pem" "$rogue/agent-rogue.pem" "$rogue/agent-rogue.key" \
  "not issued by the deployment CA"
refused old expired "$ZTNA_CERTS/ca.pem" "$ZTNA_CERTS/agent-old.pem" "$ZTNA_CERTS/agent-old.key" \
  "certificate expired"
refused gone revoked "$ZTNA_CERTS/ca.pem" "$ZTNA_CERTS/agent-gone.pem" "$ZTNA_CERTS/agent-gone.key" \
  "certificate revoked"

# A certificate without a role URI: the agent itself refuses it.
rc=0
timeout "$(ztna_secs 10)" "$ZTNA_AGENT_BIN" run --intermediate "127.0.0.1:$ZTNA_INT_PORT" \
  --intermediate-name "$ZTNA_INTERMEDIATE_DNS" --ca "$ZTNA_CERTS/ca.pem" --cert "$minted/nouri.pem" \
  --key "$minted/nouri.key" --listen 127.0.0.1:0 --status-socket "$ZTNA_TMP/run/nouri.sock" \
  --expose "web=tcp://127.0.0.1:$(ztna_free_port tcp)" >"$ZTNA_TMP/logs/nouri.log" 2>&1 || rc=$?
((rc == 1)) || ztna_fail "ztna-agent with a certificate without role URI: exit $rc, expected 1"
grep -qF "nouri.pem: no ztna://ROLE/NAME URI among its subject alternative names" "$ZTNA_TMP/logs/nouri.log" ||
  ztna_fail "ztna-agent did not say what the certificate lacks: $(cat "$ZTNA_TMP/logs/nouri.log")"
ztna_log "nouri: ztna-agent refused to start: $(cut -d' ' -f4- "$ZTNA_TMP/logs/nouri.log")"

# The legitimate agent works while the bad ones keep retrying.
ztna_fetch "http://127.0.0.1:$ZTNA_WEB_PORT/index.html" "$ZTNA_TMP/index.out" 30
cmp -s "$ZTNA_TMP/www/index.html" "$ZTNA_TMP/index.out" || ztna_fail "web page content differs"
ztna_log "agent1 fetched through the tunnel"

# An observation window: no bad agent ever registers.
any_bad_connected() {
  local n
  for n in "${bad[@]}"; do
    ztna_jq "$n" '.control.state == "connected"' && return 0
  done
  ztna_jq intermediate '[.peers[].name] | any(. as $p | $bad | index($p) != null)' \
    --argjson bad "$(printf '%s\n' "${bad[@]}" | jq -R . | jq -s .)"
}
ztna_assert_never 3 "a bad agent registered" any_bad_connected
for n in "${bad[@]}"; do
  ztna_log "$n: $(ztna_json "$n" | jq -c '.control | {state, connects, last_error}')"
  ztna_jq "$n" '.control.connects == 0' >/dev/null || ztna_fail "$n connected at some point"
done
ztna_jq intermediate '[.peers[] | select(.role == "agent") | .name] == ["agent1"]' >/dev/null ||
  ztna_fail "unexpected agent peers: $(ztna_json intermediate | jq -c '[.peers[] | {role, name}]')"
ztna_jq intermediate '.handshake_refusals.no_identity == 0 and .handshake_refusals.other == 0' >/dev/null ||
  ztna_fail "unexpected refusal causes: $(ztna_json intermediate | jq -c .handshake_refusals)"
ztna_log "intermediate handshake_refusals: $(ztna_json intermediate | jq -c .handshake_refusals)"

ztna_pass
