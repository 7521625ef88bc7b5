#!/usr/bin/env bash
# certs/make-certs on its own (no daemons needed): usage errors, file modes, certificate profiles,
# chain and purpose checks with openssl and GnuTLS, idempotency, and real mutual-TLS handshakes
# (openssl s_server against the GnuTLS client, since the daemons use GnuTLS).
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

ztna_setup --no-binaries
ztna_require_tools certtool gnutls-cli # gnutls-bin, from scripts/install-deps
mc=$ZTNA_MAKE_CERTS
d=$ZTNA_TMP/pki

# --- usage errors: exit 2, nothing created
expect_usage_error() {
  local rc=0
  "$mc" "$@" >/dev/null 2>&1 || rc=$?
  ((rc == 2)) || ztna_fail "make-certs $* exited $rc, want 2 (usage error)"
}
expect_usage_error
expect_usage_error --out "$d"
expect_usage_error --out "$d" --intermediate-dns "bad_name" --agent a
expect_usage_error --out "$d" --intermediate-dns ok.test --agent "-x"
expect_usage_error --out "$d" --intermediate-dns ok.test --intermediate-ip 300.1.1.1
expect_usage_error --out "$d" --intermediate-ip 127.0.0.1 --agent a
expect_usage_error --out "$d" --ca-only --agent a
expect_usage_error --out "$d" --bogus
[[ ! -e $d ]] || ztna_fail "a usage error created $d"
"$mc" --help | grep -q -- '--intermediate-dns' || ztna_fail "--help does not describe the options"

# --- issue a deployment
"$mc" --out "$d" --intermediate-dns "$ZTNA_INTERMEDIATE_DNS" --intermediate-ip 127.0.0.1 \
  --intermediate-ip ::1 --connector conn1 --agent agent1 --agent laptop-2 >/dev/null ||
  ztna_fail "make-certs failed"
[[ $(stat -c %a "$d") == 700 ]] || ztna_fail "output directory mode $(stat -c %a "$d"), want 700"
for base in ca intermediate connector-conn1 agent-agent1 agent-laptop-2; do
  [[ -f $d/$base.pem && -f $d/$base.key ]] || ztna_fail "missing $base.pem/.key"
  [[ $(stat -c %a "$d/$base.key") == 600 ]] || ztna_fail "$base.key mode $(stat -c %a "$d/$base.key"), want 600"
  openssl x509 -in "$d/$base.pem" -noout -text | grep -q 'ASN1 OID: prime256v1' ||
    ztna_fail "$base is not an ECDSA P-256 certificate"
  [[ "$(openssl x509 -in "$d/$base.pem" -noout -pubkey)" == "$(openssl pkey -in "$d/$base.key" -pubout)" ]] ||
    ztna_fail "$base.key does not match $base.pem"
done
[[ -z $(find "$d" -name '.make-certs.*') ]] || ztna_fail "make-certs left its scratch directory behind"

ext() { openssl x509 -in "$d/$1.pem" -noout -ext "$2" 2>/dev/null | tail -n +2 | tr -d ' '; }
[[ $(ext ca basicConstraints) == CA:TRUE* ]] || ztna_fail "CA basicConstraints: $(ext ca basicConstraints)"
openssl x509 -in "$d/ca.pem" -noout -ext basicConstraints | grep -q critical || ztna_fail "CA basicConstraints not critical"
[[ $(ext ca keyUsage) == *CertificateSign* ]] || ztna_fail "CA keyUsage: $(ext ca keyUsage)"
[[ $(ext intermediate subjectAltName) == "DNS:$ZTNA_INTERMEDIATE_DNS,IPAddress:127.0.0.1,IPAddress:0:0:0:0:0:0:0:1" ]] ||
  ztna_fail "intermediate SAN: $(ext intermediate subjectAltName)"
[[ $(ext intermediate extendedKeyUsage) == TLSWebServerAuthentication ]] ||
  ztna_fail "intermediate EKU: $(ext intermediate extendedKeyUsage)"
[[ $(ext connector-conn1 extendedKeyUsage) == TLSWebServerAuthentication,TLSWebClientAuthentication ]] ||
  ztna_fail "connector EKU: $(ext connector-conn1 extendedKeyUsage)"
[[ $(ext agent-agent1 extendedKeyUsage) == TLSWebClientAuthentication ]] ||
  ztna_fail "agent EKU: $(ext agent-agent1 extendedKeyUsage)"
[[ $(ext connector-conn1 subjectAltName) == DNS:conn1 ]] || ztna_fail "connector SAN: $(ext connector-conn1 subjectAltName)"
[[ $(ext agent-laptop-2 subjectAltName) == DNS:laptop-2 ]] || ztna_fail "agent SAN: $(ext agent-laptop-2 subjectAltName)"
[[ $(openssl x509 -in "$d/agent-agent1.pem" -noout -subject -nameopt RFC2253) == "subject=CN=agent1" ]] ||
  ztna_fail "agent subject: $(openssl x509 -in "$d/agent-agent1.pem" -noout -subject)"

# --- chain and purpose (openssl)
verify_ok() { openssl verify -CAfile "$d/ca.pem" -purpose "$2" "$d/$1.pem" >/dev/null 2>&1 || ztna_fail "$1 does not verify for $2"; }
verify_bad() { ! openssl verify -CAfile "$d/ca.pem" -purpose "$2" "$d/$1.pem" >/dev/null 2>&1 || ztna_fail "$1 unexpectedly verifies for $2"; }
verify_ok intermediate sslserver
verify_bad intermediate sslclient
verify_ok connector-conn1 sslserver
verify_ok connector-conn1 sslclient
verify_ok agent-agent1 sslclient
verify_bad agent-agent1 sslserver
openssl x509 -in "$d/intermediate.pem" -noout -checkhost "$ZTNA_INTERMEDIATE_DNS" | grep -q 'does match' || ztna_fail "intermediate name check"
openssl x509 -in "$d/intermediate.pem" -noout -checkip 127.0.0.1 | grep -q 'does match' || ztna_fail "intermediate IP check"

# --- chain, purpose and hostname (GnuTLS, the daemons' TLS library)
gverify() { certtool --verify --load-ca-certificate "$d/ca.pem" --infile "$d/$1.pem" "${@:2}" >/dev/null 2>&1; }
gverify intermediate --verify-purpose=1.3.6.1.5.5.7.3.1 --verify-hostname="$ZTNA_INTERMEDIATE_DNS" || ztna_fail "certtool: intermediate"
gverify connector-conn1 --verify-purpose=1.3.6.1.5.5.7.3.1 --verify-hostname=conn1 || ztna_fail "certtool: connector as server"
gverify connector-conn1 --verify-purpose=1.3.6.1.5.5.7.3.2 || ztna_fail "certtool: connector as client"
gverify agent-agent1 --verify-purpose=1.3.6.1.5.5.7.3.2 || ztna_fail "certtool: agent"
! gverify agent-agent1 --verify-purpose=1.3.6.1.5.5.7.3.1 || ztna_fail "certtool: agent accepted as server"
ztna_log "certtool (GnuTLS) accepts every certificate for its purpose"

# --- idempotency
sums() { (cd "$d" && sha256sum ./*.pem ./*.key); }
before=$(sums)
"$mc" --out "$d" --intermediate-dns "$ZTNA_INTERMEDIATE_DNS" --intermediate-ip 127.0.0.1 \
  --intermediate-ip ::1 --connector conn1 --agent agent1 --agent laptop-2 >/dev/null || ztna_fail "rerun failed"
[[ $(sums) == "$before" ]] || ztna_fail "re-running with the same arguments changed files"
ca_sum=$(ztna_sha256 "$d/ca.pem")
"$mc" --out "$d" --agent later >/dev/null || ztna_fail "adding an agent failed"
[[ $(ztna_sha256 "$d/ca.pem") == "$ca_sum" ]] || ztna_fail "adding an identity replaced the CA"
verify_ok agent-later sslclient
"$mc" --out "$d" --ca-only >/dev/null || ztna_fail "--ca-only on an existing CA failed"
[[ $(ztna_sha256 "$d/ca.pem") == "$ca_sum" ]] || ztna_fail "--ca-only replaced the CA"
old=$(ztna_sha256 "$d/agent-agent1.pem")
"$mc" --out "$d" --agent agent1 --force >/dev/null || ztna_fail "--force failed"
[[ $(ztna_sha256 "$d/agent-agent1.pem") != "$old" ]] || ztna_fail "--force did not re-issue"
verify_ok agent-agent1 sslclient
old=$(ztna_sha256 "$d/intermediate.pem")
"$mc" --out "$d" --intermediate-dns "$ZTNA_INTERMEDIATE_DNS" --intermediate-ip 127.0.0.2 >/dev/null ||
  ztna_fail "adding an intermediate IP failed"
[[ $(ztna_sha256 "$d/intermediate.pem") != "$old" ]] || ztna_fail "a new intermediate IP did not re-issue"
openssl x509 -in "$d/intermediate.pem" -noout -checkip 127.0.0.2 | grep -q 'does match' || ztna_fail "new IP missing"
chmod 0644 "$d/ca.key"
"$mc" --out "$d" --ca-only >/dev/null || ztna_fail "--ca-only failed"
[[ $(stat -c %a "$d/ca.key") == 600 ]] || ztna_fail "make-certs did not restore ca.key mode 0600"

# --- a second CA is foreign to the first
f=$ZTNA_TMP/foreign
"$mc" --out "$f" --intermediate-dns "$ZTNA_INTERMEDIATE_DNS" --agent agent1 >/dev/null || ztna_fail "foreign CA failed"
! openssl verify -CAfile "$d/ca.pem" "$f/agent-agent1.pem" >/dev/null 2>&1 || ztna_fail "foreign agent verifies under our CA"

# --- mutual TLS handshakes: openssl s_server (requires a client certificate) <- GnuTLS client
hs_out=$ZTNA_TMP/handshake.out
handshake() { # SERVER_BASE CLIENT_DIR CLIENT_BASE HOSTNAME -> s_server's page in $hs_out
  local port
  port=$(ztna_free_port tcp)
  ztna_spawn "s_server-$1" 0 openssl s_server -accept "127.0.0.1:$port" -cert "$d/$1.pem" \
    -key "$d/$1.key" -CAfile "$d/ca.pem" -Verify 1 -verify_return_error -tls1_3 -www
  local pid=$ZTNA_LAST_PID
  ztna_wait_for 10 "s_server on $port" ztna_tcp_listening "$port"
  printf 'GET / HTTP/1.0\r\n\r\n' | timeout 10 gnutls-cli --x509cafile "$d/ca.pem" \
    --x509certfile "$2/$3.pem" --x509keyfile "$2/$3.key" --verify-hostname "$4" \
    -p "$port" 127.0.0.1 >"$hs_out" 2>&1 || true
  ztna_stop_pids 5 "$pid"
}
handshake intermediate "$d" agent-agent1 "$ZTNA_INTERMEDIATE_DNS"
grep -q 'Subject: CN=agent1' "$hs_out" || ztna_fail "mTLS handshake agent1 -> intermediate failed"
handshake intermediate "$d" connector-conn1 "$ZTNA_INTERMEDIATE_DNS"
grep -q 'Subject: CN=conn1' "$hs_out" || ztna_fail "mTLS handshake conn1 -> intermediate failed"
handshake connector-conn1 "$d" agent-agent1 conn1
grep -q 'Subject: CN=agent1' "$hs_out" || ztna_fail "mTLS handshake agent1 -> conn1 (session) failed"
handshake intermediate "$f" agent-agent1 "$ZTNA_INTERMEDIATE_DNS"
! grep -q "Subject: CN=agent1" "$hs_out" ||
  ztna_fail "a foreign agent certificate completed mTLS with the intermediate"
ztna_log "mutual TLS handshakes (openssl server, GnuTLS client) succeed, and fail for a foreign CA"

ztna_pass
