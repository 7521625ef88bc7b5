#!/usr/bin/env bash
# certs/make-certs on its own (no daemons needed): usage errors, file modes, certificate profiles
# (role and group URIs, EKUs), chain and purpose checks with openssl and GnuTLS, idempotency and
# re-issue rules, revocation and the CRL, the authorization key pair, an already-expired
# certificate issued under faketime, and real mutual-TLS handshakes (openssl s_server against the
# GnuTLS client, since the daemons use GnuTLS).
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

ztna_setup --no-binaries
ztna_require_tools certtool gnutls-cli faketime # gnutls-bin and faketime, from scripts/install-deps
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
expect_usage_error --out "$d" --intermediate-dns ok.test --agent a --group bad_group
expect_usage_error --out "$d" --intermediate-dns ok.test --agent a --group ""
expect_usage_error --out "$d" --intermediate-dns ok.test --group eng
many_groups=()
for i in $(seq 1 33); do many_groups+=(--group "g$i"); done
expect_usage_error --out "$d" --intermediate-dns ok.test --agent a "${many_groups[@]}"
expect_usage_error --out "$d" --revoke-agent "-x"
expect_usage_error --out "$d" --revoke-connector "a..b"
expect_usage_error --out "$d" --update-crl --agent a
expect_usage_error --out "$d" --update-crl --revoke-agent a
expect_usage_error --out "$d" --ca-only --update-crl
expect_usage_error --out "$d" --ca-only --revoke-agent a
expect_usage_error --out "$d" --ca-only --crl-days 0
[[ ! -e $d ]] || ztna_fail "a usage error created $d"
# Revoking needs a CA that issued something: an error (exit 1), and no directory appears.
expect_error() { # WANT_TEXT ARGS...: make-certs must exit 1 and say WANT_TEXT on stderr
  local want=$1 rc=0
  shift
  "$mc" "$@" >"$ZTNA_TMP/mc.out" 2>"$ZTNA_TMP/mc.err" || rc=$?
  ((rc == 1)) || ztna_fail "make-certs $* exited $rc, want 1"
  grep -qF -- "$want" "$ZTNA_TMP/mc.err" || ztna_fail "make-certs $*: no '$want' in: $(cat "$ZTNA_TMP/mc.err")"
}
expect_error "holds no CA" --out "$d" --revoke-agent a
expect_error "holds no CA" --out "$d" --update-crl
[[ ! -e $d ]] || ztna_fail "revoking without a CA created $d"
help=$("$mc" --help)
for w in --intermediate-dns --group --revoke-agent --revoke-connector --update-crl --crl-days \
  ztna://agent/NAME ztna://connector/NAME ztna://intermediate/NAME ztna://group/GROUP clientAuth \
  serverAuth crl.pem authorization.key authorization.pub; do
  [[ $help == *"$w"* ]] || ztna_fail "--help does not mention $w"
done

# --- issue a deployment (groups eng and ops for its agents and connector; "eng" twice is one group)
deploy=(--out "$d" --intermediate-dns "$ZTNA_INTERMEDIATE_DNS" --intermediate-ip 127.0.0.1
  --intermediate-ip ::1 --connector conn1 --agent agent1 --agent laptop-2 --group eng --group ops
  --group eng)
"$mc" "${deploy[@]}" >/dev/null || ztna_fail "make-certs failed"
[[ $(stat -c %a "$d") == 700 ]] || ztna_fail "output directory mode $(stat -c %a "$d"), want 700"
for f in crl.pem index.txt index.txt.attr crlnumber authorization.key authorization.pub; do
  [[ -f $d/$f ]] || ztna_fail "missing $f"
done
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
[[ $(ext intermediate subjectAltName) == "DNS:$ZTNA_INTERMEDIATE_DNS,IPAddress:127.0.0.1,IPAddress:0:0:0:0:0:0:0:1,URI:ztna://intermediate/$ZTNA_INTERMEDIATE_DNS" ]] ||
  ztna_fail "intermediate SAN: $(ext intermediate subjectAltName)"
[[ $(ext intermediate extendedKeyUsage) == TLSWebServerAuthentication ]] ||
  ztna_fail "intermediate EKU: $(ext intermediate extendedKeyUsage)"
[[ $(ext connector-conn1 extendedKeyUsage) == TLSWebServerAuthentication,TLSWebClientAuthentication ]] ||
  ztna_fail "connector EKU: $(ext connector-conn1 extendedKeyUsage)"
[[ $(ext agent-agent1 extendedKeyUsage) == TLSWebClientAuthentication ]] ||
  ztna_fail "agent EKU: $(ext agent-agent1 extendedKeyUsage)"
[[ $(ext connector-conn1 subjectAltName) == DNS:conn1,URI:ztna://connector/conn1,URI:ztna://group/eng,URI:ztna://group/ops ]] ||
  ztna_fail "connector SAN: $(ext connector-conn1 subjectAltName)"
[[ $(ext agent-laptop-2 subjectAltName) == DNS:laptop-2,URI:ztna://agent/laptop-2,URI:ztna://group/eng,URI:ztna://group/ops ]] ||
  ztna_fail "agent SAN: $(ext agent-laptop-2 subjectAltName)"
# uris FILE: its SAN URIs, sorted, space-separated (also for certificates outside $d).
uris() {
  openssl x509 -in "$1" -noout -ext subjectAltName 2>/dev/null | tail -n +2 | tr ',' '\n' |
    sed -n 's/^ *URI://p' | LC_ALL=C sort | paste -sd ' ' -
}
expect_uris() { # BASE WANT...
  local got want
  got=$(uris "$d/$1.pem")
  want=$(printf '%s\n' "${@:2}" | LC_ALL=C sort | paste -sd ' ' -)
  [[ $got == "$want" ]] || ztna_fail "$1 URIs: '$got', want '$want'"
}
expect_uris intermediate "ztna://intermediate/$ZTNA_INTERMEDIATE_DNS"
expect_uris connector-conn1 ztna://connector/conn1 ztna://group/eng ztna://group/ops
expect_uris agent-agent1 ztna://agent/agent1 ztna://group/eng ztna://group/ops
expect_uris agent-laptop-2 ztna://agent/laptop-2 ztna://group/eng ztna://group/ops
# The same rules, checked the way a daemon built on GnuTLS would see them.
grep -q 'URI: ztna://agent/agent1' <<<"$(certtool -i --infile "$d/agent-agent1.pem")" ||
  ztna_fail "certtool does not show the agent's role URI"
grep -q 'URI: ztna://group/eng' <<<"$(certtool -i --infile "$d/connector-conn1.pem")" ||
  ztna_fail "certtool does not show the connector's group URI"
grep -q 'ztna://group/' <<<"$(certtool -i --infile "$d/intermediate.pem")" && ztna_fail "intermediate carries groups"
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
sums() { (cd "$d" && sha256sum ./*.pem ./*.key ./*.pub index.txt crlnumber); }
before=$(sums)
"$mc" "${deploy[@]}" >/dev/null || ztna_fail "rerun failed"
[[ $(sums) == "$before" ]] || ztna_fail "re-running with the same arguments changed files"
ca_sum=$(ztna_sha256 "$d/ca.pem")
"$mc" --out "$d" --agent later >/dev/null || ztna_fail "adding an agent failed"
[[ $(ztna_sha256 "$d/ca.pem") == "$ca_sum" ]] || ztna_fail "adding an identity replaced the CA"
verify_ok agent-later sslclient
expect_uris agent-later ztna://agent/later
"$mc" --out "$d" --ca-only >/dev/null || ztna_fail "--ca-only on an existing CA failed"
[[ $(ztna_sha256 "$d/ca.pem") == "$ca_sum" ]] || ztna_fail "--ca-only replaced the CA"
serial() { openssl x509 -in "$1" -noout -serial | sed 's/^serial=//'; }
agent1_first=$(serial "$d/agent-agent1.pem")
old=$(ztna_sha256 "$d/agent-agent1.pem")
"$mc" --out "$d" --agent agent1 --group eng --group ops --force >/dev/null || ztna_fail "--force failed"
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
agent1_second=$(serial "$d/agent-agent1.pem")

# --- groups: a kept certificate carries exactly the requested groups, otherwise it is re-issued
"$mc" --out "$d" --agent grp --connector grp --group eng --group ops >/dev/null || ztna_fail "group issue failed"
expect_uris agent-grp ztna://agent/grp ztna://group/eng ztna://group/ops
expect_uris connector-grp ztna://connector/grp ztna://group/eng ztna://group/ops
old=$(ztna_sha256 "$d/agent-grp.pem")
"$mc" --out "$d" --agent grp --group ops --group eng >/dev/null || ztna_fail "group rerun failed"
[[ $(ztna_sha256 "$d/agent-grp.pem") == "$old" ]] || ztna_fail "the same groups in another order re-issued"
"$mc" --out "$d" --agent grp --group eng >/dev/null || ztna_fail "dropping a group failed"
[[ $(ztna_sha256 "$d/agent-grp.pem") != "$old" ]] || ztna_fail "dropping a group did not re-issue"
expect_uris agent-grp ztna://agent/grp ztna://group/eng
"$mc" --out "$d" --agent grp --group eng --group sales >/dev/null || ztna_fail "adding a group failed"
expect_uris agent-grp ztna://agent/grp ztna://group/eng ztna://group/sales
"$mc" --out "$d" --agent grp >/dev/null || ztna_fail "removing all groups failed"
expect_uris agent-grp ztna://agent/grp
verify_ok agent-grp sslclient
expect_uris connector-grp ztna://connector/grp ztna://group/eng ztna://group/ops # not requested: kept
all_groups=()
for i in $(seq 1 32); do all_groups+=(--group "g$i"); done
"$mc" --out "$d" --agent grp "${all_groups[@]}" >/dev/null || ztna_fail "32 groups refused"
[[ $(uris "$d/agent-grp.pem" | wc -w) == 33 ]] || ztna_fail "32 groups: $(uris "$d/agent-grp.pem")"
ztna_log "role and group URIs as requested; a changed group set re-issues, the same set keeps"

# --- a certificate of this CA without role URI (issued by an older make-certs), or with the wrong
# role, is re-issued; one issued before the database existed is still revocable.
legacy() { # BASE CN EKU SAN: sign BASE.pem/.key with our CA, bypassing make-certs
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$d/$1.key" 2>/dev/null
  chmod 0600 "$d/$1.key"
  printf 'basicConstraints = critical, CA:FALSE\nextendedKeyUsage = %s\nsubjectAltName = %s\n' "$3" "$4" \
    >"$ZTNA_TMP/legacy.ext"
  openssl req -new -key "$d/$1.key" -subj "/CN=$2" 2>/dev/null |
    openssl x509 -req -CA "$d/ca.pem" -CAkey "$d/ca.key" -days 30 -set_serial "0x$(openssl rand -hex 12)" \
      -extfile "$ZTNA_TMP/legacy.ext" -out "$d/$1.pem" 2>/dev/null || ztna_fail "legacy $1 failed"
}
legacy agent-oldstyle oldstyle clientAuth DNS:oldstyle
old=$(ztna_sha256 "$d/agent-oldstyle.pem")
"$mc" --out "$d" --agent oldstyle >/dev/null || ztna_fail "re-issuing oldstyle failed"
[[ $(ztna_sha256 "$d/agent-oldstyle.pem") != "$old" ]] || ztna_fail "a certificate without role URI was kept"
expect_uris agent-oldstyle ztna://agent/oldstyle
legacy connector-wrongrole wrongrole "serverAuth, clientAuth" "DNS:wrongrole, URI:ztna://agent/wrongrole"
"$mc" --out "$d" --connector wrongrole >/dev/null || ztna_fail "re-issuing wrongrole failed"
expect_uris connector-wrongrole ztna://connector/wrongrole
legacy agent-unindexed unindexed clientAuth DNS:unindexed
unindexed_serial=$(serial "$d/agent-unindexed.pem")

# --- revocation database and CRL
crl_text() { openssl crl -in "$d/crl.pem" -noout -text; }
crl_has() { grep -q "Serial Number: $1\$" <<<"$(crl_text)"; }
crl_number() { openssl crl -in "$d/crl.pem" -noout -crlnumber | sed 's/^crlNumber=//'; }
crl_text | grep -q 'No Revoked Certificates' || ztna_fail "the first CRL is not empty: $(crl_text)"
[[ $(stat -c %a "$d/crl.pem") == 644 ]] || ztna_fail "crl.pem mode $(stat -c %a "$d/crl.pem"), want 644"
openssl crl -in "$d/crl.pem" -CAfile "$d/ca.pem" -noout 2>/dev/null || ztna_fail "the CRL is not signed by the CA"
certtool --verify-crl --load-ca-certificate "$d/ca.pem" --infile "$d/crl.pem" >/dev/null 2>&1 ||
  ztna_fail "certtool does not accept the CRL"
# index.txt records every certificate issued, agent1 twice (--force).
for s in "$agent1_first" "$agent1_second"; do
  grep -qP "^V\t[0-9]{12}Z\t\t$s\tagent-agent1.pem\t/CN=agent1\$" "$d/index.txt" ||
    ztna_fail "index.txt has no valid entry for agent1 serial $s"
done
crlv_ok() { openssl verify -crl_check -CRLfile "$d/crl.pem" -CAfile "$d/ca.pem" "$d/$1.pem" >/dev/null 2>&1 || ztna_fail "$1 fails the CRL check"; }
crlv_revoked() {
  local o
  o=$(openssl verify -crl_check -CRLfile "$d/crl.pem" -CAfile "$d/ca.pem" "$d/$1.pem" 2>&1) &&
    ztna_fail "revoked $1 passes openssl verify -crl_check"
  [[ $o == *"certificate revoked"* ]] || ztna_fail "openssl verify of $1: $o"
}
gcrl() { certtool --verify --load-ca-certificate "$d/ca.pem" --load-crl "$d/crl.pem" --infile "$d/$1.pem" >"$ZTNA_TMP/certtool.out" 2>&1; }
gcrl_ok() { gcrl "$1" || ztna_fail "certtool with the CRL rejects $1: $(tail -3 "$ZTNA_TMP/certtool.out")"; }
gcrl_revoked() {
  gcrl "$1" && ztna_fail "certtool with the CRL accepts revoked $1"
  grep -q 'revoked' "$ZTNA_TMP/certtool.out" || ztna_fail "certtool on $1: $(tail -3 "$ZTNA_TMP/certtool.out")"
}
for b in intermediate connector-conn1 agent-agent1 agent-laptop-2; do crlv_ok "$b"; gcrl_ok "$b"; done

crl_before=$(ztna_sha256 "$d/crl.pem")
n_before=$(crl_number)
expect_error "unknown agent 'nobody'" --out "$d" --revoke-agent nobody
expect_error "unknown connector 'agent1'" --out "$d" --revoke-connector agent1
expect_error "unknown agent 'nobody'" --out "$d" --revoke-agent laptop-2 --revoke-agent nobody
[[ $(ztna_sha256 "$d/crl.pem") == "$crl_before" ]] || ztna_fail "a failed revocation changed crl.pem"
crlv_ok agent-laptop-2 # the valid half of the failed run was not applied either

"$mc" --out "$d" --revoke-agent agent1 >"$ZTNA_TMP/revoke.out" 2>&1 || ztna_fail "revoking agent1 failed"
for s in "$agent1_first" "$agent1_second"; do
  grep -q "revoked agent agent1: serial $s" "$ZTNA_TMP/revoke.out" ||
    ztna_fail "revocation output does not name serial $s: $(cat "$ZTNA_TMP/revoke.out")"
  crl_has "$s" || ztna_fail "CRL does not list agent1 serial $s"
done
[[ -f $d/agent-agent1.pem && -f $d/agent-agent1.key ]] || ztna_fail "revoking deleted agent1's files"
[[ $(crl_number) != "$n_before" ]] || ztna_fail "the CRL number did not change"
crl_has "$(serial "$d/agent-laptop-2.pem")" && ztna_fail "CRL lists laptop-2"
crlv_revoked agent-agent1
gcrl_revoked agent-agent1
for b in intermediate connector-conn1 agent-laptop-2; do crlv_ok "$b"; gcrl_ok "$b"; done
! openssl verify -crl_check -CRLfile "$d/crl.pem" -CAfile "$d/ca.pem" -purpose sslclient "$d/agent-agent1.pem" \
  >/dev/null 2>&1 || ztna_fail "revoked agent1 verifies"

# Agent x and connector x are different identities.
"$mc" --out "$d" --agent twin --connector twin >/dev/null || ztna_fail "issuing twins failed"
"$mc" --out "$d" --revoke-connector twin >/dev/null || ztna_fail "revoking connector twin failed"
crlv_revoked connector-twin
crlv_ok agent-twin
gcrl_ok agent-twin

# A certificate issued before the database existed is revoked by its current file.
"$mc" --out "$d" --revoke-agent unindexed >/dev/null || ztna_fail "revoking an unindexed certificate failed"
crl_has "$unindexed_serial" || ztna_fail "CRL does not list the unindexed serial $unindexed_serial"
crlv_revoked agent-unindexed

# Revoked identities are re-issued on request: new serial, valid under the CRL, old serials stay.
"$mc" --out "$d" --agent agent1 >"$ZTNA_TMP/reissue.out" || ztna_fail "re-issuing agent1 failed"
grep -q 'agent-agent1.pem is revoked' "$ZTNA_TMP/reissue.out" || ztna_fail "no re-issue notice: $(cat "$ZTNA_TMP/reissue.out")"
agent1_third=$(serial "$d/agent-agent1.pem")
[[ $agent1_third != "$agent1_first" && $agent1_third != "$agent1_second" ]] || ztna_fail "re-issue kept a revoked serial"
crlv_ok agent-agent1
gcrl_ok agent-agent1
verify_ok agent-agent1 sslclient
{ crl_has "$agent1_first" && crl_has "$agent1_second"; } || ztna_fail "old agent1 serials left the CRL"
"$mc" --out "$d" --agent agent1 >/dev/null || ztna_fail "rerun after re-issue failed"
[[ $(serial "$d/agent-agent1.pem") == "$agent1_third" ]] || ztna_fail "the re-issued agent1 was not kept"
# Revoke and re-issue in one run (how a group is withdrawn at once).
"$mc" --out "$d" --revoke-agent laptop-2 --agent laptop-2 --group eng >/dev/null || ztna_fail "revoke+issue failed"
crlv_ok agent-laptop-2
expect_uris agent-laptop-2 ztna://agent/laptop-2 ztna://group/eng
[[ $(crl_text | grep -c 'Serial Number:') == 5 ]] || ztna_fail "CRL should list 5 serials (agent1 twice, twin, unindexed, laptop-2): $(crl_text)"
# Revoking again is fine: the serials are already listed.
"$mc" --out "$d" --revoke-connector twin >"$ZTNA_TMP/revoke.out" || ztna_fail "revoking twice failed"
grep -q 'already revoked connector twin' "$ZTNA_TMP/revoke.out" || ztna_fail "no 'already revoked' notice"

# --update-crl: new number and dates, same serials; the CRL loads in GnuTLS even with a clock that
# lags (lastUpdate is dated back), which a freshly signed CRL would not.
serials_before=$(crl_text | grep 'Serial Number:' | sort)
n_before=$(crl_number)
"$mc" --out "$d" --update-crl --crl-days 10 >/dev/null || ztna_fail "--update-crl failed"
[[ $(crl_number) != "$n_before" ]] || ztna_fail "--update-crl kept the CRL number"
[[ $(crl_text | grep 'Serial Number:' | sort) == "$serials_before" ]] || ztna_fail "--update-crl changed the serials"
next=$(openssl crl -in "$d/crl.pem" -noout -nextupdate | sed 's/^nextUpdate=//')
delta=$(($(date -u -d "$next" +%s) - $(date -u +%s) - 10 * 86400))
((delta > -120 && delta <= 0)) || ztna_fail "--crl-days 10: nextUpdate $next"
gnutls_loads_crl() { # FAKETIME_OFFSET: does gnutls-cli (the daemons' CRL loader) accept crl.pem?
  timeout 10 faketime -f "$1" gnutls-cli --x509cafile "$d/ca.pem" --x509crlfile "$d/crl.pem" \
    -p "$(ztna_free_port tcp)" 127.0.0.1 </dev/null >"$ZTNA_TMP/gnutls.out" 2>&1 || true
  grep -q 'Processed 1 CRL' "$ZTNA_TMP/gnutls.out"
}
gnutls_loads_crl +0 || ztna_fail "gnutls-cli does not load the CRL: $(cat "$ZTNA_TMP/gnutls.out")"
gnutls_loads_crl -30m || ztna_fail "gnutls-cli 30 minutes behind does not load the CRL: $(cat "$ZTNA_TMP/gnutls.out")"
# After nextUpdate GnuTLS refuses to load the CRL at all: --update-crl must run before that.
gnutls_loads_crl +11d && ztna_fail "gnutls-cli loads a CRL past its nextUpdate"
grep -q 'Error setting the x509 CRL file' "$ZTNA_TMP/gnutls.out" || ztna_fail "stale CRL: $(cat "$ZTNA_TMP/gnutls.out")"
crlv_revoked agent-unindexed

# A DIR made before the database existed (CA, no crl.pem, no index.txt) gets an empty CRL.
o=$ZTNA_TMP/olddir
"$mc" --out "$o" --ca-only >/dev/null || ztna_fail "--ca-only failed"
rm -f "$o/crl.pem" "$o/index.txt" "$o/index.txt.attr" "$o/crlnumber"
"$mc" --out "$o" --ca-only >/dev/null || ztna_fail "--ca-only on an old directory failed"
[[ -f $o/crl.pem && -f $o/index.txt ]] || ztna_fail "no CRL or index.txt for an old directory"
openssl crl -in "$o/crl.pem" -noout -text | grep -q 'No Revoked Certificates' || ztna_fail "old directory: CRL not empty"
[[ ! -e $o/authorization.key ]] || ztna_fail "--ca-only created the authorization key"
# A lost crl.pem is rewritten from the database, revocations included.
rm "$d/crl.pem"
"$mc" --out "$d" --agent later >/dev/null || ztna_fail "rewriting a missing crl.pem failed"
crl_has "$agent1_first" || ztna_fail "the rewritten CRL lost agent1's serial"
ztna_log "revocation: serials in the CRL, openssl and certtool reject exactly the revoked certificates"

# --- authorization key pair (Ed25519, made with the intermediate)
ak=$d/authorization.key
ap=$d/authorization.pub
[[ $(stat -c %a "$ak") == 600 ]] || ztna_fail "authorization.key mode $(stat -c %a "$ak"), want 600"
[[ $(stat -c %a "$ap") == 644 ]] || ztna_fail "authorization.pub mode $(stat -c %a "$ap"), want 644"
[[ $(head -1 "$ak") == "-----BEGIN PRIVATE KEY-----" ]] || ztna_fail "authorization.key is not PKCS#8 PEM"
[[ $(head -1 "$ap") == "-----BEGIN PUBLIC KEY-----" ]] || ztna_fail "authorization.pub is not SubjectPublicKeyInfo PEM"
t=$(openssl pkey -in "$ak" -noout -text)
[[ $t == "ED25519 Private-Key:"* ]] || ztna_fail "authorization.key is not Ed25519: ${t%%$'\n'*}"
t=$(openssl pkey -pubin -in "$ap" -noout -text)
[[ $t == "ED25519 Public-Key:"* ]] || ztna_fail "authorization.pub is not Ed25519: ${t%%$'\n'*}"
[[ "$(openssl pkey -in "$ak" -pubout)" == "$(openssl pkey -pubin -in "$ap" -pubout)" ]] ||
  ztna_fail "authorization.pub does not match authorization.key"
printf 'token' >"$ZTNA_TMP/msg"
openssl pkeyutl -sign -rawin -inkey "$ak" -in "$ZTNA_TMP/msg" -out "$ZTNA_TMP/sig" 2>/dev/null ||
  ztna_fail "cannot sign with authorization.key"
openssl pkeyutl -verify -rawin -pubin -inkey "$ap" -in "$ZTNA_TMP/msg" -sigfile "$ZTNA_TMP/sig" >/dev/null 2>&1 ||
  ztna_fail "authorization.pub does not verify a signature of authorization.key"
ak_sum=$(ztna_sha256 "$ak")
rm "$ap"
"$mc" --out "$d" --intermediate-dns "$ZTNA_INTERMEDIATE_DNS" >/dev/null || ztna_fail "restoring authorization.pub failed"
[[ $(ztna_sha256 "$ak") == "$ak_sum" ]] || ztna_fail "the authorization key was replaced"
[[ "$(openssl pkey -in "$ak" -pubout)" == "$(cat "$ap")" ]] || ztna_fail "authorization.pub not restored from the key"
# A pub file may hold older keys too (rotation), as long as the key's own is among them.
cp "$ap" "$ZTNA_TMP/auth.pub"
openssl genpkey -algorithm ED25519 2>/dev/null | openssl pkey -pubout >"$ZTNA_TMP/other.pub"
cat "$ZTNA_TMP/other.pub" "$ZTNA_TMP/auth.pub" >"$ap"
"$mc" --out "$d" --intermediate-dns "$ZTNA_INTERMEDIATE_DNS" >/dev/null || ztna_fail "a two-key authorization.pub was refused"
cp "$ZTNA_TMP/other.pub" "$ap"
expect_error "does not hold the public key" --out "$d" --intermediate-dns "$ZTNA_INTERMEDIATE_DNS"
cp "$ZTNA_TMP/auth.pub" "$ap"
mv "$ak" "$ZTNA_TMP/auth.key"
expect_error "authorization.key does not" --out "$d" --intermediate-dns "$ZTNA_INTERMEDIATE_DNS"
mv "$ZTNA_TMP/auth.key" "$ak"
chmod 0644 "$ak"
"$mc" --out "$d" --intermediate-dns "$ZTNA_INTERMEDIATE_DNS" >/dev/null || ztna_fail "keeping the authorization key failed"
[[ $(stat -c %a "$ak") == 600 ]] || ztna_fail "make-certs did not restore authorization.key mode 0600"
[[ $(ztna_sha256 "$ak") == "$ak_sum" ]] || ztna_fail "the authorization key changed"
ztna_log "authorization key pair: Ed25519, matching, modes 600/644, kept"

# --- an already-expired certificate, issued with a faked clock (CA from "the future")
faketime '2020-01-01 00:00:00' "$mc" --out "$d" --agent old --days 1 >/dev/null 2>"$ZTNA_TMP/faketime.err" ||
  ztna_fail "make-certs under faketime failed: $(cat "$ZTNA_TMP/faketime.err")"
! openssl x509 -in "$d/agent-old.pem" -noout -checkend 0 >/dev/null || ztna_fail "agent-old has not expired"
[[ $(openssl x509 -in "$d/agent-old.pem" -noout -enddate) == *2020\ GMT ]] ||
  ztna_fail "agent-old: $(openssl x509 -in "$d/agent-old.pem" -noout -enddate)"
expect_uris agent-old ztna://agent/old
o=$(openssl verify -CAfile "$d/ca.pem" "$d/agent-old.pem" 2>&1) && ztna_fail "expired agent-old verifies"
[[ $o == *"certificate has expired"* ]] || ztna_fail "agent-old: $o"
openssl verify -no_check_time -CAfile "$d/ca.pem" "$d/agent-old.pem" >/dev/null 2>&1 ||
  ztna_fail "agent-old is not signed by the CA"
grep -qF "$(serial "$d/agent-old.pem")"$'\t'agent-old.pem "$d/index.txt" || ztna_fail "agent-old is not in index.txt"
"$mc" --out "$d" --agent old >/dev/null || ztna_fail "re-issuing the expired agent failed"
openssl x509 -in "$d/agent-old.pem" -noout -checkend 86400 >/dev/null || ztna_fail "the expired agent-old was kept"
verify_ok agent-old sslclient
ztna_log "faketime: an already-expired certificate is issued, and re-issued later"

# --- a second CA is foreign to the first
f=$ZTNA_TMP/foreign
"$mc" --out "$f" --intermediate-dns "$ZTNA_INTERMEDIATE_DNS" --agent agent1 >/dev/null || ztna_fail "foreign CA failed"
! openssl verify -CAfile "$d/ca.pem" "$f/agent-agent1.pem" >/dev/null 2>&1 || ztna_fail "foreign agent verifies under our CA"

# --- mutual TLS handshakes: openssl s_server (requires a client certificate) <- GnuTLS client
hs_out=$ZTNA_TMP/handshake.out
handshake() { # SERVER_BASE CLIENT_DIR CLIENT_BASE HOSTNAME [gnutls-cli args] -> s_server's page in $hs_out
  local port
  port=$(ztna_free_port tcp)
  ztna_spawn "s_server-$1" 0 openssl s_server -accept "127.0.0.1:$port" -cert "$d/$1.pem" \
    -key "$d/$1.key" -CAfile "$d/ca.pem" -Verify 1 -verify_return_error -tls1_3 -www
  local pid=$ZTNA_LAST_PID
  ztna_wait_for 10 "s_server on $port" ztna_tcp_listening "$port"
  printf 'GET / HTTP/1.0\r\n\r\n' | timeout 10 gnutls-cli --x509cafile "$d/ca.pem" \
    --x509certfile "$2/$3.pem" --x509keyfile "$2/$3.key" --verify-hostname "$4" "${@:5}" \
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
# GnuTLS loading crl.pem the way a daemon does (gnutls_certificate_set_x509_crl_file).
handshake connector-conn1 "$d" agent-twin conn1 --x509crlfile "$d/crl.pem"
grep -q 'Subject: CN=twin' "$hs_out" || ztna_fail "mTLS with the CRL loaded failed: $(cat "$hs_out")"
handshake connector-twin "$d" agent-twin twin --x509crlfile "$d/crl.pem"
grep -q 'Subject: CN=twin' "$hs_out" && ztna_fail "a GnuTLS client with the CRL accepted revoked connector twin"
grep -q 'revoked' "$hs_out" || ztna_fail "revoked connector twin: $(cat "$hs_out")"
ztna_log "a GnuTLS client with crl.pem refuses a revoked server certificate"

ztna_pass
