#include "quic_harness.hpp"

#include <gnutls/crypto.h>
#include <gnutls/x509.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <stdexcept>
#include <unistd.h>

namespace ztna::test {

namespace {

void check(int rv, const char* what) {
  if (rv < 0)
    throw std::runtime_error(std::string("test PKI: ") + what + ": " + gnutls_strerror(rv));
}

// An ECDSA P-256 key and a certificate, shaped like the ones certs/make-certs issues.
class Credential {
public:
  Credential() {
    check(gnutls_x509_privkey_init(&key_), "privkey_init");
    check(gnutls_x509_privkey_generate(key_, GNUTLS_PK_ECDSA,
                                       GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0),
          "privkey_generate");
    check(gnutls_x509_crt_init(&crt_), "crt_init");
  }
  ~Credential() {
    gnutls_x509_crt_deinit(crt_);
    gnutls_x509_privkey_deinit(key_);
  }
  Credential(const Credential&) = delete;
  Credential& operator=(const Credential&) = delete;

  // A self-signed CA.
  static std::unique_ptr<Credential> ca(const std::string& cn) {
    auto c = std::make_unique<Credential>();
    c->fill(cn);
    check(gnutls_x509_crt_set_basic_constraints(c->crt_, 1, 0), "set_basic_constraints");
    check(gnutls_x509_crt_set_key_usage(c->crt_, GNUTLS_KEY_KEY_CERT_SIGN | GNUTLS_KEY_CRL_SIGN),
          "set_key_usage");
    check(gnutls_x509_crt_sign2(c->crt_, c->crt_, c->key_, GNUTLS_DIG_SHA256, 0), "sign CA");
    return c;
  }

  struct LeafSpec {
    std::string name;
    Role role = Role::Agent;
    bool server_auth = false;
    bool client_auth = true;
    std::vector<std::string> groups;
    long valid_from = -3600;      // seconds from now
    long valid_until = 7 * 86400; // seconds from now
  };

  // A leaf with CN = SAN DNS = `name`, the role URI and group URIs, signed by `issuer`.
  static std::unique_ptr<Credential> leaf(const LeafSpec& spec, const Credential& issuer) {
    auto c = std::make_unique<Credential>();
    c->fill(spec.name, spec.valid_from, spec.valid_until);
    check(gnutls_x509_crt_set_basic_constraints(c->crt_, 0, -1), "set_basic_constraints");
    check(gnutls_x509_crt_set_key_usage(c->crt_, GNUTLS_KEY_DIGITAL_SIGNATURE), "set_key_usage");
    check(gnutls_x509_crt_set_subject_alt_name(c->crt_, GNUTLS_SAN_DNSNAME, spec.name.data(),
                                               static_cast<unsigned>(spec.name.size()),
                                               GNUTLS_FSAN_SET),
          "set_subject_alt_name");
    auto uri = [&](const std::string& u) {
      check(gnutls_x509_crt_set_subject_alt_name(c->crt_, GNUTLS_SAN_URI, u.data(),
                                                 static_cast<unsigned>(u.size()),
                                                 GNUTLS_FSAN_APPEND),
            "set_subject_alt_name URI");
    };
    uri(std::string("ztna://") + to_string(spec.role) + "/" + spec.name);
    for (const auto& g : spec.groups)
      uri("ztna://group/" + g);
    if (spec.server_auth)
      check(gnutls_x509_crt_set_key_purpose_oid(c->crt_, GNUTLS_KP_TLS_WWW_SERVER, 0),
            "set_key_purpose_oid");
    if (spec.client_auth)
      check(gnutls_x509_crt_set_key_purpose_oid(c->crt_, GNUTLS_KP_TLS_WWW_CLIENT, 0),
            "set_key_purpose_oid");
    unsigned char id[64];
    size_t id_len = sizeof id;
    check(gnutls_x509_crt_get_subject_key_id(issuer.crt_, id, &id_len, nullptr), "get key id");
    check(gnutls_x509_crt_set_authority_key_id(c->crt_, id, id_len), "set_authority_key_id");
    check(gnutls_x509_crt_sign2(c->crt_, issuer.crt_, issuer.key_, GNUTLS_DIG_SHA256, 0),
          "sign leaf");
    return c;
  }

  // A CRL signed by this CA that lists `revoked`.
  std::string crl_pem(const Credential& revoked) const {
    gnutls_x509_crl_t crl;
    check(gnutls_x509_crl_init(&crl), "crl_init");
    std::string out;
    try {
      const time_t t = time(nullptr);
      check(gnutls_x509_crl_set_version(crl, 2), "crl_set_version");
      check(gnutls_x509_crl_set_this_update(crl, t - 3600), "crl_set_this_update");
      check(gnutls_x509_crl_set_next_update(crl, t + 86400), "crl_set_next_update");
      check(gnutls_x509_crl_set_crt(crl, revoked.crt_, t - 60), "crl_set_crt");
      check(gnutls_x509_crl_sign2(crl, crt_, key_, GNUTLS_DIG_SHA256, 0), "crl_sign2");
      gnutls_datum_t d{};
      check(gnutls_x509_crl_export2(crl, GNUTLS_X509_FMT_PEM, &d), "crl_export2");
      out.assign(reinterpret_cast<char*>(d.data), d.size);
      gnutls_free(d.data);
    } catch (...) {
      gnutls_x509_crl_deinit(crl);
      throw;
    }
    gnutls_x509_crl_deinit(crl);
    return out;
  }

  std::string cert_pem() const {
    gnutls_datum_t d{};
    check(gnutls_x509_crt_export2(crt_, GNUTLS_X509_FMT_PEM, &d), "crt_export2");
    std::string out(reinterpret_cast<char*>(d.data), d.size);
    gnutls_free(d.data);
    return out;
  }
  std::string key_pem() const {
    gnutls_datum_t d{};
    check(gnutls_x509_privkey_export2_pkcs8(key_, GNUTLS_X509_FMT_PEM, nullptr, GNUTLS_PKCS_PLAIN,
                                            &d),
          "privkey_export2_pkcs8");
    std::string out(reinterpret_cast<char*>(d.data), d.size);
    gnutls_free(d.data);
    return out;
  }

private:
  void fill(const std::string& cn, long valid_from = -3600, long valid_until = 7 * 86400) {
    check(gnutls_x509_crt_set_version(crt_, 3), "set_version");
    unsigned char serial[16];
    check(gnutls_rnd(GNUTLS_RND_NONCE, serial, sizeof serial), "rnd");
    serial[0] = (serial[0] & 0x7f) | 0x01; // positive, no leading zero byte
    check(gnutls_x509_crt_set_serial(crt_, serial, sizeof serial), "set_serial");
    time_t t = time(nullptr);
    check(gnutls_x509_crt_set_activation_time(crt_, t + valid_from), "activation");
    check(gnutls_x509_crt_set_expiration_time(crt_, t + valid_until), "expiration");
    check(gnutls_x509_crt_set_dn_by_oid(crt_, GNUTLS_OID_X520_COMMON_NAME, 0, cn.data(),
                                        static_cast<unsigned>(cn.size())),
          "set_dn");
    check(gnutls_x509_crt_set_key(crt_, key_), "set_key");
    unsigned char id[64];
    size_t id_len = sizeof id;
    check(gnutls_x509_crt_get_key_id(crt_, GNUTLS_KEYID_USE_SHA1, id, &id_len), "get_key_id");
    check(gnutls_x509_crt_set_subject_key_id(crt_, id, id_len), "set_subject_key_id");
  }

  gnutls_x509_privkey_t key_ = nullptr;
  gnutls_x509_crt_t crt_ = nullptr;
};

// Writes the PEM files TlsIdentity wants into a private temporary directory, loads them, and
// removes them again: the identity keeps its credentials in memory.
class TempDir {
public:
  TempDir() {
    const char* base = getenv("TMPDIR");
    std::string tmpl = std::string(base && *base ? base : "/tmp") + "/ztna-unit-pki.XXXXXX";
    if (!mkdtemp(tmpl.data())) throw std::runtime_error("test PKI: mkdtemp failed");
    path_ = tmpl;
  }
  ~TempDir() {
    for (auto& f : files_)
      std::remove(f.c_str());
    rmdir(path_.c_str());
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  std::string write(const std::string& name, const std::string& content) {
    std::string file = path_ + "/" + name;
    FILE* f = fopen(file.c_str(), "wb");
    if (!f) throw std::runtime_error("test PKI: cannot write " + file);
    files_.push_back(file);
    bool ok = fwrite(content.data(), 1, content.size(), f) == content.size();
    ok = fclose(f) == 0 && ok;
    if (!ok) throw std::runtime_error("test PKI: cannot write " + file);
    return file;
  }

private:
  std::string path_;
  std::vector<std::string> files_;
};

quic::TlsIdentityPtr load(TempDir& dir, const std::string& ca_file, const std::string& base,
                          const Credential& leaf, Role role, const std::string& crl_file = {}) {
  quic::TlsFiles files;
  files.ca = ca_file;
  files.cert = dir.write(base + ".pem", leaf.cert_pem());
  files.key = dir.write(base + ".key", leaf.key_pem());
  files.crl = crl_file;
  return std::make_shared<quic::TlsIdentity>(files, role);
}

TestPki make_pki() {
  using Spec = Credential::LeafSpec;
  auto ca = Credential::ca("ZTNA unit test CA");
  auto foreign_ca = Credential::ca("Foreign CA");
  auto impostor_ca = Credential::ca("ZTNA unit test CA");
  TempDir dir;
  std::string ca_file = dir.write("ca.pem", ca->cert_pem());
  std::string foreign_ca_file = dir.write("foreign-ca.pem", foreign_ca->cert_pem());
  const Spec server{TestPki::kServerName, Role::Connector, true, true, {}};
  const Spec client{TestPki::kClientName, Role::Agent, false, true, {"ops", "eng"}};
  TestPki pki;
  auto server_cred = Credential::leaf(server, *ca);
  pki.server = load(dir, ca_file, "server", *server_cred, Role::Connector);
  pki.client = load(dir, ca_file, "client", *Credential::leaf(client, *ca), Role::Agent);
  pki.rogue_client =
      load(dir, ca_file, "rogue-client",
           *Credential::leaf({TestPki::kRogueName, Role::Agent, false, true, {}}, *foreign_ca),
           Role::Agent);
  pki.impostor_client = load(dir, ca_file, "impostor-client",
                             *Credential::leaf(client, *impostor_ca), Role::Agent);
  pki.rogue_server = load(dir, foreign_ca_file, "rogue-server",
                          *Credential::leaf(server, *foreign_ca), Role::Connector);
  pki.agent_as_server = load(dir, ca_file, "agent-as-server",
                             *Credential::leaf({"agent-2", Role::Agent, false, true, {}}, *ca),
                             Role::Agent);
  pki.connector_as_agent =
      load(dir, ca_file, "connector-as-agent",
           *Credential::leaf({"conn-as-agent", Role::Connector, true, true, {}}, *ca),
           Role::Connector);
  pki.wrong_usage_client =
      load(dir, ca_file, "wrong-usage",
           *Credential::leaf({"agent-serverauth", Role::Agent, true, false, {}}, *ca), Role::Agent);
  Spec expired{"agent-expired", Role::Agent, false, true, {}};
  expired.valid_from = -7200;
  expired.valid_until = -3600;
  // TlsIdentity checks only its own role, not its own validity: a daemon with an expired
  // certificate starts and says so through its peers' refusals.
  pki.expired_client =
      load(dir, ca_file, "expired", *Credential::leaf(expired, *ca), Role::Agent);
  auto revoked = Credential::leaf({TestPki::kRevokedName, Role::Agent, false, true, {}}, *ca);
  pki.revoked_client = load(dir, ca_file, "revoked", *revoked, Role::Agent);
  std::string crl_file = dir.write("crl.pem", ca->crl_pem(*revoked));
  pki.server_with_crl =
      load(dir, ca_file, "server-crl", *server_cred, Role::Connector, crl_file);
  return pki;
}

} // namespace

const TestPki& pki() {
  static const TestPki instance = make_pki();
  return instance;
}

// ---------------------------------------------------------------------------------------------

std::string same(const Bytes& a, const Bytes& b) {
  auto [ia, ib] = std::mismatch(a.begin(), a.end(), b.begin(), b.end());
  if (ia == a.end() && ib == b.end()) return {};
  return "sizes " + std::to_string(a.size()) + " and " + std::to_string(b.size()) +
         ", first difference at offset " + std::to_string(ia - a.begin());
}

void TestPeer::consume_all() {
  for (auto& [id, n] : unconsumed)
    if (n) conn->consume(id, n);
  unconsumed.clear();
}

void TestPeer::on_stream_open(int64_t id) {
  opened.push_back(id);
  if (on_open) on_open(id);
}

void TestPeer::on_stream_data(int64_t id, std::span<const uint8_t> data, bool fin) {
  auto& r = received[id];
  r.data.insert(r.data.end(), data.begin(), data.end());
  if (fin) {
    r.fin = true;
    r.fins++;
  }
  if (auto_consume)
    conn->consume(id, data.size());
  else
    unconsumed[id] += data.size();
  if (on_data) on_data(id, fin);
}

void TestPeer::on_stream_closed(int64_t id) {
  closed.push_back(id);
  if (on_closed) on_closed(id);
}

void TestPeer::on_stream_writable(int64_t id) {
  writable.push_back(id);
  if (on_writable) on_writable(id);
}

void TestPeer::on_streams_available() {
  streams_available++;
  if (on_available) on_available();
}

// ---------------------------------------------------------------------------------------------

QuicPair::QuicPair() {
  // Fixed, distinct secrets: stateless reset tokens only have to differ per connection ID.
  for (size_t i = 0; i < client_secret_.size(); ++i) {
    client_secret_[i] = static_cast<uint8_t>(i);
    server_secret_[i] = static_cast<uint8_t>(0xa0 + i);
  }
  client_config.tls = pki().client;
  client_config.alpn = kAlpn;
  client_config.server_name = TestPki::kServerName;
  client_config.peer.roles = {Role::Connector};
  client_config.peer.server_auth = true;
  client_config.reset_secret = client_secret_;
  server_config.server = true;
  server_config.tls = pki().server;
  server_config.alpn = kAlpn;
  server_config.peer.roles = {Role::Agent};
  server_config.peer.client_auth = true;
  server_config.reset_secret = server_secret_;
}

void QuicPair::start() {
  std::string error;
  client.conn =
      quic::Connection::client(client_config, {kClientAddress, kServerAddress}, client, now, error);
  if (!client.conn) throw std::runtime_error("client: " + error);
}

bool QuicPair::handshake() {
  if (!client.conn) start();
  run_until([&] {
    return (client.conn->handshake_completed() && server.conn &&
            server.conn->handshake_completed()) ||
           client.finished() || server.finished();
  });
  return client.conn->handshake_completed() && server.conn && server.conn->handshake_completed() &&
         !client.finished() && !server.finished();
}

quic::PacketSink QuicPair::sink(bool from_client) {
  return [this, from_client](const quic::Path& path, std::span<const uint8_t> packet) {
    uint64_t index = from_client ? sent_to_server++ : sent_to_client++;
    if ((drop && drop(from_client, index)) || (blackhole && blackhole(path))) {
      dropped++;
      return;
    }
    Packet p{from_client, quic::Path{path.remote, path.local}, Bytes(packet.begin(), packet.end())};
    link_.emplace(now + one_way_delay, std::move(p));
  };
}

void QuicPair::flush() {
  // write() also emits a pending CONNECTION_CLOSE once a connection has failed.
  if (client.conn) client.conn->write(now, sink(true));
  if (server.conn) server.conn->write(now, sink(false));
}

void QuicPair::deliver(Packet& p) {
  if (!p.to_server) {
    if (client.conn) client.conn->read_packet(p.path, p.data, now);
    return;
  }
  if (!server.conn) {
    // The client's first Initial creates the server connection, as an endpoint does.
    ngtcp2_pkt_hd hd;
    if (ngtcp2_accept(&hd, p.data.data(), p.data.size()) != 0) return;
    server.conn =
        quic::Connection::server(server_config, p.path, hd, server, now, server_create_error);
    if (!server.conn) return;
  }
  server.conn->read_packet(p.path, p.data, now);
}

void QuicPair::expire() {
  for (auto* peer : {&client, &server})
    if (peer->conn && !peer->conn->finished() && peer->conn->expiry() <= now)
      peer->conn->handle_expiry(now);
}

quic::Timestamp QuicPair::next_event() const {
  quic::Timestamp next = link_.empty() ? quic::kNever : link_.begin()->first;
  for (auto* peer : {&client, &server})
    if (peer->conn) next = std::min(next, peer->conn->expiry());
  return next;
}

bool QuicPair::run_until(const std::function<bool()>& done, quic::Timestamp limit) {
  quic::Timestamp deadline = now + limit;
  // A guard against a timer that keeps expiring without time moving forward.
  int stuck = 0;
  for (;;) {
    quic::Timestamp before = now;
    flush();
    if (done()) return true;
    quic::Timestamp next = next_event();
    if (next == quic::kNever) return false; // nothing left that could happen
    if (next > deadline) {
      now = deadline;
      return false;
    }
    // ngtcp2 0.12.1 reports some timers (retired connection IDs) as due at exactly t but acts
    // on them only after t; a real clock has always moved on by then, so ours must too.
    now = std::max(now, next);
    if (now == before && (link_.empty() || link_.begin()->first > now)) now += 1;
    while (!link_.empty() && link_.begin()->first <= now) {
      auto node = link_.extract(link_.begin());
      deliver(node.mapped());
    }
    expire();
    stuck = now == before ? stuck + 1 : 0;
    if (stuck > 100'000) throw std::runtime_error("QuicPair: simulated time does not advance");
  }
}

void QuicPair::run_for(quic::Timestamp duration) {
  quic::Timestamp end = now + duration;
  run_until([] { return false; }, duration);
  now = std::max(now, end);
}

} // namespace ztna::test
