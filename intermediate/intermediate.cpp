#include "intermediate.hpp"

#include "io/clock.hpp"
#include "io/etcd_state.hpp"
#include "io/random.hpp"
#include "wire/relay_frame.hpp"

#include <spdlog/spdlog.h>

namespace ztna {

namespace {

// A peer whose unacknowledged control data passes this has stopped reading: we close it rather
// than buffer for it without end.
constexpr size_t kMaxControlBacklog = 1 << 20;
// A handshake that has not completed by then frees its half-open slot.
constexpr auto kHandshakeTimeout = std::chrono::seconds(5);

void log_line(const broker::Log& l) {
  if (l.level == broker::LogLevel::Warn)
    spdlog::warn("{}", l.line);
  else
    spdlog::info("{}", l.line);
}

} // namespace

// One control connection from an agent or a connector: QUIC and the control stream. What the
// messages mean is the broker's business.
struct Intermediate::Peer : quic::ConnectionEvents {
  Peer(Intermediate& owner, uint64_t id, const Address& address)
      : owner(owner), id(id), address(address) {}

  void on_handshake_completed() override { owner.on_authenticated(*this); }
  void on_stream_data(int64_t stream_id, std::span<const uint8_t> data, bool fin) override {
    if (!authenticated) return;
    std::vector<wire::ControlMessage> messages;
    bool ok = stream.on_data(quic_peer->conn(), stream_id, data, messages);
    for (auto& m : messages)
      owner.broker_->on_message(id, m, owner.now());
    owner.run_actions();
    if (!ok) return reject(stream.error());
    if (fin && stream.buffered() > 0) return reject("control stream ended inside a frame");
    if (fin) quic_peer->close(static_cast<uint64_t>(wire::ErrorCode::None), "control stream ended");
  }
  // Malformed control data: a clear error to the peer, a counter, and the connection closes.
  void reject(const std::string& why) {
    owner.control_messages_malformed_++;
    spdlog::warn("{} at {}: malformed control data: {}; closing", describe(), address.to_string(),
                 why);
    stream.send(quic_peer->conn(), wire::ErrorMessage{wire::ErrorCode::Malformed, why});
    quic_peer->close(static_cast<uint64_t>(wire::ErrorCode::Malformed), why);
  }
  // The client moved (NAT rebinding, new network) and proved the new address (RFC 9000 §9).
  void on_path_validated(const quic::Path& path, bool success) override {
    if (!success || path.remote == address) return;
    address = path.remote;
    owner.broker_->on_address_change(id, path.remote);
    owner.run_actions();
  }
  void send(const wire::ControlMessage& m) {
    if (!stream.is_open() || quic_peer->conn().finished()) return;
    stream.send(quic_peer->conn(), m);
    if (stream.backlog(quic_peer->conn()) > kMaxControlBacklog) {
      owner.peers_not_reading_++;
      spdlog::warn("{} at {}: over {} bytes of control messages unacknowledged; closing",
                   describe(), address.to_string(), kMaxControlBacklog);
      quic_peer->close(static_cast<uint64_t>(wire::ErrorCode::Limited),
                       "not reading its control stream");
      return;
    }
    quic_peer->schedule_flush();
  }
  std::string describe() const {
    const auto& id = quic_peer->conn().peer_identity();
    return id ? id->describe() : "unauthenticated peer";
  }

  Intermediate& owner;
  uint64_t id;
  Address address;       // the observed address: the one its QUIC packets come from
  Address first_address; // where its handshake came from (the gate's half-open count)
  bool authenticated = false;
  bool refusal_said = false; // refused after the handshake (revoked since): already logged
  std::unique_ptr<io::QuicPeer> quic_peer;
  ControlStream stream;
};

Intermediate::Intermediate(boost::asio::io_context& io, IntermediateOptions options)
    : io_(io), options_(std::move(options)),
      tls_(std::make_shared<quic::TlsIdentity>(options_.tls, Role::Intermediate)),
      endpoint_(io, options_.listen, io::derive_reset_secret(options_.tls.key)),
      stun_(io, endpoint_, options_.stun), gate_(options_.handshakes), sweep_timer_(io) {
  std::string error;
  signer_ = auth::AuthorizationSigner::load(options_.authorization_key, error);
  if (!signer_) throw std::runtime_error("--authorization-key: " + error);
  auto policy = policy::Policy::load_file(options_.policy_file);
  if (!policy) throw std::runtime_error("--policy: " + policy.error);
  io::random_fill(retry_secret_);
  auto bc = options_.broker;
  bc.name = tls_->name();
  bc.signer = signer_.get();
  bc.random = io::random_fill;
  broker_ = std::make_unique<broker::SessionBroker>(bc, policy.policy);
  if (options_.etcd.empty()) {
    shared_ = std::make_unique<store::EmbeddedState>();
  } else {
    store::ClusterConfig cc;
    cc.prefix = options_.etcd_prefix;
    cc.intermediate = options_.etcd_node;
    cc.address = options_.listen.to_string();
    cc.lease_ttl = options_.etcd_lease_ttl;
    cc.signer = static_cast<const RecordSigner*>(this);
    shared_ =
        std::make_unique<io::EtcdState>(io_, options_.etcd, cc, static_cast<Listener&>(*this));
  }
}

Intermediate::~Intermediate() = default;

broker::Now Intermediate::now() const {
  return {io::now(), io::unix_ms()};
}

void Intermediate::start() {
  endpoint_.start([this](const Address& from, std::span<const uint8_t> d) { on_relay(from, d); },
                  [this](const Address& from, std::span<const uint8_t> p, const ngtcp2_pkt_hd& hd) {
                    accept(from, p, hd);
                  });
  spdlog::info("intermediate '{}' listening on udp {}", tls_->name(),
               endpoint_.socket().local().to_string());
  stun_.start();
  spdlog::info("identity: {}", tls_->summary());
  spdlog::info("policy v{} loaded from {}: {}", broker_->policy().version(),
               broker_->policy().source(), broker_->policy().summary());
  shared_->start();
  sweep();
}

Intermediate::Peer* Intermediate::find_peer(uint64_t id) {
  auto it = peers_.find(id);
  return it == peers_.end() ? nullptr : it->second.get();
}

// A new client Initial. Unauthenticated handshakes have a budget of their own (HandshakeGate):
// under load a client must first prove its address with a Retry, and no source may hold many.
void Intermediate::accept(const Address& from, std::span<const uint8_t> packet,
                          const ngtcp2_pkt_hd& hd) {
  if (stopping_) return;
  const uint64_t unix_ns = io::unix_ms() * 1'000'000;
  std::optional<ngtcp2_cid> odcid;
  if (quic::has_retry_token(hd)) {
    odcid = quic::verify_retry(hd, from, retry_secret_, unix_ns);
    if (!odcid) {
      // Forged, expired or for another address: no state, no answer (RFC 9000 §8.1.3).
      gate_.bad_token();
      return;
    }
  }
  switch (gate_.admit(from, odcid.has_value(), io::now())) {
  case quic::HandshakeGate::Verdict::Accept:
    break;
  case quic::HandshakeGate::Verdict::Retry: {
    auto retry = quic::make_retry(hd, from, retry_secret_, unix_ns, packet.size());
    if (!retry.empty()) endpoint_.socket().send(from, retry);
    return;
  }
  case quic::HandshakeGate::Verdict::OverBudget:
  case quic::HandshakeGate::Verdict::OverSourceLimit:
    return; // counted by the gate
  }
  if (authenticated_ >= options_.max_peers) {
    peers_refused_++;
    return;
  }
  uint64_t id = next_peer_id_++;
  auto peer = std::make_unique<Peer>(*this, id, from);
  peer->first_address = from;
  quic::ConnectionConfig cfg;
  cfg.server = true;
  cfg.tls = tls_;
  cfg.alpn = std::string(wire::kControlAlpn);
  cfg.idle_timeout = options_.idle_timeout;
  cfg.reset_secret = endpoint_.reset_secret();
  cfg.max_bidi_streams = 1; // the control stream
  cfg.handshake_timeout = kHandshakeTimeout;
  // Agents and connectors, with certificates that allow TLS client authentication.
  cfg.peer.roles = {Role::Agent, Role::Connector};
  cfg.peer.client_auth = true;
  quic::Path path{endpoint_.socket().local(), from};
  std::string error;
  auto conn =
      quic::Connection::server(cfg, path, hd, *peer, io::now(), error, odcid ? &*odcid : nullptr);
  if (!conn) {
    spdlog::warn("cannot accept connection from {}: {}", from.to_string(), error);
    return;
  }
  gate_.started(from);
  auto* p = peer.get();
  p->quic_peer = std::make_unique<io::QuicPeer>(
      io_, &endpoint_.router(), [this](const quic::Path& path, std::span<const uint8_t> pkt) {
        endpoint_.transmit(path, pkt);
      });
  p->quic_peer->on_finished([this, id](const std::string& why) { on_peer_gone(id, why); });
  peers_.emplace(id, std::move(peer));
  p->quic_peer->attach(std::move(conn),
                       std::string(reinterpret_cast<const char*>(hd.dcid.data), hd.dcid.datalen));
  p->quic_peer->receive(path, packet);
}

// Inside the TLS handshake the certificate was checked (chain, CRL, role, key usage): the peer
// is who it says. From here on it counts against max_peers, not the half-open budget.
void Intermediate::on_authenticated(Peer& peer) {
  const io::LiveCredentials live{&tls_, &refusals_};
  if (live.refuse_if_revoked(*peer.quic_peer->conn().peer_identity(), peer.address,
                             "control connection")) {
    peer.refusal_said = true;
    peer.quic_peer->close(static_cast<uint64_t>(wire::ErrorCode::NotAuthorized),
                          "certificate revoked");
    return;
  }
  gate_.finished(peer.first_address);
  peer.authenticated = true;
  authenticated_++;
  const auto& identity = *peer.quic_peer->conn().peer_identity();
  spdlog::info("peer {} at {}: authenticated as {}", peer.id, peer.address.to_string(),
               identity.describe());
  broker_->on_authenticated(peer.id, identity, peer.address, now());
  run_actions();
}

void Intermediate::run_actions() {
  for (auto& action : broker_->take_actions()) {
    if (auto* s = std::get_if<broker::Send>(&action)) {
      if (Peer* p = find_peer(s->to)) p->send(s->message);
    } else if (auto* d = std::get_if<broker::Disconnect>(&action)) {
      if (Peer* p = find_peer(d->peer)) {
        // Said on the control stream too, so the peer's status shows why.
        p->send(wire::ErrorMessage{d->code, d->reason});
        p->quic_peer->close(static_cast<uint64_t>(d->code), d->reason);
      }
    } else if (auto* l = std::get_if<broker::Log>(&action)) {
      log_line(*l);
    } else if (auto* h = std::get_if<broker::Homed>(&action)) {
      shared_->peer_homed(h->role, h->name, h->address.to_string(), h->services);
    } else if (auto* u = std::get_if<broker::Unhomed>(&action)) {
      shared_->peer_left(u->role, u->name);
    }
  }
}

void Intermediate::on_peer_gone(uint64_t peer_id, const std::string& why) {
  auto it = peers_.find(peer_id);
  if (it == peers_.end()) return;
  auto& peer = *it->second;
  if (!peer.authenticated) {
    gate_.finished(peer.first_address);
    const auto& conn = peer.quic_peer->conn();
    if (!peer.refusal_said)
      refusals_.refused(conn.refusal().value_or(quic::PeerRefusal{quic::Refusal::Other, why}),
                        peer.address, "control connection");
  } else {
    authenticated_--;
    spdlog::info("{} at {} disconnected: {}", peer.describe(), peer.address.to_string(), why);
    broker_->on_disconnected(peer_id, now());
  }
  peers_.erase(it);
  run_actions();
}

void Intermediate::on_relay(const Address& from, std::span<const uint8_t> datagram) {
  auto frame = wire::parse_relay_frame(datagram);
  // Session 0 is never bound: a frame that does not parse is counted as unauthorized.
  if (!frame) return (void)broker_->on_relay(0, from, datagram.size(), io::now());
  // Forwarded unchanged: never larger than what came in, and only to the session's other end.
  if (auto to = broker_->on_relay(frame->session_id, from, datagram.size(), io::now()))
    endpoint_.socket().send(*to, datagram);
}

void Intermediate::sweep() {
  broker_->handle_timeout(now());
  run_actions();
  sweep_timer_.expires_after(std::chrono::milliseconds(500));
  sweep_timer_.async_wait([this](boost::system::error_code ec) {
    if (!ec) sweep();
  });
}

void Intermediate::reload() {
  reloads_++;
  bool failed = false;
  try {
    auto fresh = std::make_shared<quic::TlsIdentity>(options_.tls, Role::Intermediate);
    tls_ = fresh;
    spdlog::info("reload: identity: {}", tls_->summary());
  } catch (const std::exception& e) {
    failed = true;
    spdlog::error("reload: keeping the old certificates and CRL: {}", e.what());
  }
  std::string error;
  if (auto signer = auth::AuthorizationSigner::load(options_.authorization_key, error)) {
    signer_.swap(signer);
    broker_->set_signer(signer_.get()); // before the old one goes at the end of this scope
  } else {
    failed = true;
    spdlog::error("reload: keeping the old authorization key: {}", error);
  }
  auto policy = policy::Policy::load_file(options_.policy_file);
  if (policy) {
    spdlog::info("reload: policy v{} loaded from {}: {}", policy.policy->version(),
                 policy.policy->source(), policy.policy->summary());
    broker_->set_policy(policy.policy, now());
    shared_policy_revision_ = 0;
    shared_policy_origin_.clear();
  } else {
    failed = true;
    spdlog::error("reload: keeping the policy in force ({}): {}", broker_->policy().fingerprint(),
                  policy.error);
  }
  close_revoked_peers("listed in the reloaded CRL");
  // What loaded here is for every intermediate: they enforce it when etcd tells them.
  if (!failed && shared_->shared()) {
    spdlog::info("reload: publishing policy {} and a CRL of {} revoked certificate(s) to the "
                 "other intermediates",
                 broker_->policy().fingerprint(), tls_->revoked_count());
    shared_->publish_policy(broker_->policy().text(), tls_->crl_pem());
  } else if (failed && shared_->shared()) {
    spdlog::error("reload: nothing published to the other intermediates (fix the error above "
                  "and reload again)");
  }
  if (failed) reload_failures_++;
  run_actions();
}

void Intermediate::close_revoked_peers(const char* why) {
  for (auto& [id, peer] : peers_) {
    const auto& identity = peer->quic_peer->conn().peer_identity();
    if (!peer->authenticated || !identity || !tls_->is_revoked(*identity)) continue;
    peers_refused_++;
    refusals_.refused({quic::Refusal::Revoked, std::string("certificate revoked (") + why + ")"},
                      peer->address, "live control connection of " + identity->describe());
    peer->quic_peer->close(static_cast<uint64_t>(wire::ErrorCode::NotAuthorized),
                           "certificate revoked");
  }
}

// Another intermediate (or this one, seen again through the watch) wrote a policy record. A
// record that does not parse or whose CRL does not verify against our CA changes nothing here.
void Intermediate::on_shared_policy(const store::PolicyRecord& record) {
  const std::string source =
      "etcd revision " + std::to_string(record.revision) + " (from " + record.origin + ")";
  auto policy = policy::Policy::parse(record.policy, source);
  if (!policy) {
    shared_policy_refused_++;
    spdlog::error("shared policy {} refused, keeping the policy in force ({}): {}", source,
                  broker_->policy().fingerprint(), policy.error);
    return;
  }
  // An empty CRL in the record never clears ours: a deployment's revocations only grow.
  if (!record.crl.empty() && record.crl != tls_->crl_pem()) {
    try {
      auto files = options_.tls;
      files.crl_pem = record.crl;
      tls_ = std::make_shared<quic::TlsIdentity>(files, Role::Intermediate);
      spdlog::info("shared CRL from {}: {} revoked certificate(s)", source, tls_->revoked_count());
    } catch (const std::exception& e) {
      shared_policy_refused_++;
      spdlog::error("shared CRL from {} refused, keeping the policy and CRL in force: {}", source,
                    e.what());
      return;
    }
    close_revoked_peers("listed in the deployment's CRL");
  }
  shared_policy_revision_ = record.revision;
  shared_policy_origin_ = record.origin;
  if (policy.policy->fingerprint() == broker_->policy().fingerprint()) {
    spdlog::info("shared policy {}: {} is the one in force", source,
                 broker_->policy().fingerprint());
  } else {
    spdlog::info("shared policy {} in force: {}", source, policy.policy->summary());
    broker_->set_policy(policy.policy, now());
  }
  run_actions();
}

std::vector<uint8_t> Intermediate::sign(std::string_view record) const {
  return signer_->sign_record(record);
}

bool Intermediate::verify(std::string_view record, std::span<const uint8_t> signature) const {
  return signer_->verify_record(record, signature);
}

void Intermediate::on_shared_policy_absent() {
  spdlog::info("shared state holds no policy yet: publishing ours ({}, {} revoked "
               "certificate(s))",
               broker_->policy().fingerprint(), tls_->revoked_count());
  shared_->publish_policy(broker_->policy().text(), tls_->crl_pem());
}

void Intermediate::shutdown() {
  stopping_ = true;
  spdlog::info("shutting down: closing {} connections", peers_.size());
  for (auto& [id, peer] : peers_)
    peer->quic_peer->close(static_cast<uint64_t>(wire::ErrorCode::Shutdown),
                           "intermediate shutting down");
  shared_->stop();
  sweep_timer_.cancel();
  stun_.stop();
  endpoint_.stop();
}

nlohmann::json Intermediate::status() const {
  nlohmann::json j;
  j["name"] = tls_->name();
  j["listen"] = endpoint_.socket().local().to_string();
  j["policy"] = {{"source", broker_->policy().source()},
                 {"fingerprint", broker_->policy().fingerprint()},
                 {"access_rules", broker_->policy().access_rule_count()},
                 {"serve_rules", broker_->policy().serve_rule_count()},
                 {"revision", shared_policy_revision_},
                 {"origin", shared_policy_origin_}};
  j["crl"] = {{"file", tls_->files().crl},
              {"shared", !tls_->files().crl_pem.empty()},
              {"revoked", tls_->revoked_count()}};
  j["cluster"] = shared_->status();
  j["stun"] = stun_.status();
  j["peers"] = nlohmann::json::array();
  for (const auto& p : broker_->peers()) {
    if (!p.registered) continue;
    auto it = peers_.find(p.id);
    double rtt = it == peers_.end() ? 0 : it->second->quic_peer->conn().stats().smoothed_rtt_ms;
    j["peers"].push_back({{"name", p.identity->name},
                          {"role", to_string(p.identity->role)},
                          {"groups", p.identity->groups},
                          {"address", p.address.to_string()},
                          {"services", p.services},
                          {"rtt_ms", rtt}});
  }
  j["sessions"] = nlohmann::json::array();
  for (const auto& s : broker_->sessions())
    j["sessions"].push_back({{"session_id", fmt::format("{:016x}", s.id)},
                             {"agent", s.agent},
                             {"connector", s.connector},
                             {"service", s.service},
                             {"state", s.state},
                             {"relayed_bytes", s.relayed_bytes}});
  const auto& b = broker_->counters();
  const auto& e = endpoint_.counters();
  const auto& g = gate_.counters();
  j["handshakes"] = {
      {"half_open", gate_.half_open()},
      {"authenticated", authenticated_},
      {"retry_mode", gate_.config().retry == quic::HandshakeGate::RetryMode::Auto     ? "auto"
                     : gate_.config().retry == quic::HandshakeGate::RetryMode::Always ? "always"
                                                                                      : "never"}};
  j["handshake_refusals"] = refusals_.json();
  j["counters"] = {{"tls_handshake_failures", refusals_.counters().total()},
                   {"handshakes_accepted", g.accepted},
                   {"retries_sent", g.retries_sent},
                   {"retry_tokens_invalid", g.bad_tokens},
                   {"handshakes_dropped_budget", g.dropped_budget},
                   {"handshakes_dropped_source", g.dropped_source},
                   {"control_messages_malformed", control_messages_malformed_},
                   {"control_messages_unexpected", b.control_messages_unexpected},
                   {"control_rate_limited", b.control_rate_limited},
                   {"sessions_opened", b.sessions_opened},
                   {"sessions_rejected", b.sessions_rejected},
                   {"sessions_denied", b.sessions_denied},
                   {"sessions_closed_by_policy", b.sessions_closed_by_policy},
                   {"sessions_orphaned", b.sessions_orphaned},
                   {"sessions_resumed", b.sessions_resumed},
                   {"resumes_refused", b.resumes_refused},
                   {"resumes_denied", b.resumes_denied},
                   {"resumes_expired", b.resumes_expired},
                   {"services_refused", b.services_refused},
                   {"hello_role_mismatch", b.hello_role_mismatch},
                   {"requests_over_limit", b.requests_over_limit},
                   {"relay_frames_forwarded", b.relay_frames_forwarded},
                   {"relay_bytes_forwarded", b.relay_bytes_forwarded},
                   {"relay_frames_unauthorized", b.relay_frames_unauthorized},
                   {"relay_frames_over_quota", b.relay_frames_over_quota},
                   {"relay_frames_over_identity_quota", b.relay_frames_over_identity_quota},
                   {"candidates_forwarded", b.candidates_forwarded},
                   {"candidates_unauthorized", b.candidates_unauthorized},
                   {"candidates_rate_limited", b.candidates_rate_limited},
                   {"check_rounds_started", b.check_rounds_started},
                   {"peers_refused", peers_refused_},
                   {"peers_replaced", b.peers_replaced},
                   {"peers_unregistered", b.peers_unregistered},
                   {"peers_not_reading", peers_not_reading_},
                   {"reloads", reloads_},
                   {"reload_failures", reload_failures_},
                   {"shared_policy_refused", shared_policy_refused_},
                   {"junk_datagrams", e.junk_datagrams},
                   {"stun_datagrams", e.stun_datagrams},
                   {"unknown_connection", e.unknown_connection},
                   {"stateless_resets_sent", e.stateless_resets_sent},
                   {"send_errors", endpoint_.socket().send_errors()}};
  return j;
}

} // namespace ztna
