#include "intermediate.hpp"

#include "io/clock.hpp"
#include "wire/relay_frame.hpp"
#include "wire/text.hpp"

#include <spdlog/spdlog.h>

namespace ztna {

namespace {
constexpr auto kOfferTimeout = std::chrono::seconds(5);
} // namespace

// One control connection from an agent or a connector.
struct Intermediate::Peer : quic::ConnectionEvents {
  Peer(Intermediate& owner, uint64_t id, const Address& address)
      : owner(owner), id(id), address(address) {}

  void on_handshake_completed() override {
    name = quic_peer->conn().peer_name();
    if (!wire::is_valid_name(name)) {
      // Names travel in control messages; one we cannot encode is refused up front.
      owner.counters_.peers_refused++;
      spdlog::warn("peer at {}: certificate CN '{}' is not a usable name (1-255 bytes, no spaces "
                   "or control characters); closing",
                   address.to_string(), name);
      quic_peer->close(static_cast<uint64_t>(wire::ErrorCode::NotAuthorized),
                       "unusable certificate name");
      return;
    }
    spdlog::info("peer {} at {}: authenticated as '{}'", id, address.to_string(), name);
  }
  void on_stream_data(int64_t stream_id, std::span<const uint8_t> data, bool fin) override {
    std::vector<wire::ControlMessage> messages;
    bool ok = stream.on_data(quic_peer->conn(), stream_id, data, messages);
    for (auto& m : messages)
      owner.on_message(*this, m);
    if (!ok) return reject(stream.error());
    if (fin && stream.buffered() > 0) return reject("control stream ended inside a frame");
    if (fin) quic_peer->close(static_cast<uint64_t>(wire::ErrorCode::None), "control stream ended");
  }
  // Malformed control data: a clear error to the peer, a counter, and the connection closes.
  void reject(const std::string& why) {
    owner.counters_.control_messages_malformed++;
    spdlog::warn("peer '{}' at {}: malformed control data: {}; closing", name, address.to_string(),
                 why);
    stream.send(quic_peer->conn(), wire::ErrorMessage{wire::ErrorCode::Malformed, why});
    quic_peer->flush();
    quic_peer->close(static_cast<uint64_t>(wire::ErrorCode::Malformed), why);
  }
  // The client moved (NAT rebinding, new network) and proved the new address (RFC 9000 §9).
  void on_path_validated(const quic::Path& path, bool success) override {
    if (success && !(path.remote == address)) owner.on_address_change(*this, path.remote);
  }
  void send(const wire::ControlMessage& m) {
    stream.send(quic_peer->conn(), m);
    quic_peer->schedule_flush();
  }
  bool registered() const { return role.has_value(); }
  const char* role_name() const {
    return !role ? "unregistered" : *role == wire::Role::Agent ? "agent" : "connector";
  }

  Intermediate& owner;
  uint64_t id;
  Address address; // the observed address: the one its QUIC packets come from
  std::string name;
  std::optional<wire::Role> role;
  std::vector<std::string> services;
  std::unique_ptr<io::QuicPeer> quic_peer;
  ControlStream stream;
};

Intermediate::Intermediate(boost::asio::io_context& io, IntermediateOptions options)
    : io_(io), options_(std::move(options)), tls_(options_.tls),
      endpoint_(io, options_.listen, io::derive_reset_secret(options_.tls.key)), sweep_timer_(io) {}

Intermediate::~Intermediate() = default;

void Intermediate::start() {
  endpoint_.start([this](const Address& from, std::span<const uint8_t> d) { on_relay(from, d); },
                  [this](const Address& from, std::span<const uint8_t> p, const ngtcp2_pkt_hd& hd) {
                    accept(from, p, hd);
                  });
  spdlog::info("intermediate '{}' listening on udp {}", tls_.name(),
               endpoint_.socket().local().to_string());
  sweep();
}

uint64_t Intermediate::random_u64() {
  uint64_t v = 0;
  while (v == 0)
    v = rng_();
  return v;
}

Intermediate::Peer* Intermediate::find_peer(uint64_t id) {
  auto it = peers_.find(id);
  return it == peers_.end() ? nullptr : it->second.get();
}

void Intermediate::accept(const Address& from, std::span<const uint8_t> packet,
                          const ngtcp2_pkt_hd& hd) {
  if (stopping_) return;
  if (peers_.size() >= options_.max_peers) {
    counters_.peers_refused++;
    return;
  }
  uint64_t id = next_peer_id_++;
  auto peer = std::make_unique<Peer>(*this, id, from);
  quic::ConnectionConfig cfg;
  cfg.server = true;
  cfg.tls = &tls_;
  cfg.alpn = std::string(wire::kControlAlpn);
  cfg.idle_timeout = options_.idle_timeout;
  cfg.reset_secret = endpoint_.reset_secret();
  cfg.max_bidi_streams = 1; // the control stream
  quic::Path path{endpoint_.socket().local(), from};
  std::string error;
  auto conn = quic::Connection::server(cfg, path, hd, *peer, io::now(), error);
  if (!conn) {
    spdlog::warn("cannot accept connection from {}: {}", from.to_string(), error);
    return;
  }
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

void Intermediate::on_address_change(Peer& peer, const Address& now_seen) {
  spdlog::info("peer '{}' moved from {} to {}", peer.name, peer.address.to_string(),
               now_seen.to_string());
  relay_.rebind(peer.address, now_seen);
  peer.address = now_seen;
  if (peer.registered()) peer.send(wire::ObservedAddress{now_seen});
}

void Intermediate::on_message(Peer& peer, const wire::ControlMessage& m) {
  if (stopping_) return;
  if (auto* hello = std::get_if<wire::Hello>(&m)) return on_hello(peer, *hello);
  if (!peer.registered()) {
    counters_.control_messages_unexpected++;
    peer.send(wire::ErrorMessage{wire::ErrorCode::NotAuthorized, "send Hello first"});
    return;
  }
  if (auto* open = std::get_if<wire::OpenSession>(&m); open && *peer.role == wire::Role::Agent)
    return on_open_session(peer, *open);
  if (auto* acc = std::get_if<wire::SessionAccept>(&m); acc && *peer.role == wire::Role::Connector)
    return on_session_accept(peer, *acc);
  if (auto* closed = std::get_if<wire::SessionClosed>(&m)) return on_session_closed(peer, *closed);
  if (auto* cands = std::get_if<wire::Candidates>(&m)) return on_candidates(peer, *cands);
  counters_.control_messages_unexpected++;
  spdlog::warn("peer '{}' ({}): unexpected {} message, ignored", peer.name, peer.role_name(),
               wire::message_name(m));
}

void Intermediate::on_hello(Peer& peer, const wire::Hello& m) {
  if (peer.registered()) {
    counters_.control_messages_unexpected++;
    return;
  }
  // One live registration per identity and role: a reconnecting daemon replaces its old
  // connection at once instead of waiting for it to time out.
  for (auto& [id, other] : peers_) {
    if (other.get() != &peer && other->registered() && other->name == peer.name &&
        other->role == m.role) {
      spdlog::info("peer '{}' registered again from {}; closing its old connection from {}",
                   peer.name, peer.address.to_string(), other->address.to_string());
      counters_.peers_replaced++;
      other->quic_peer->close(static_cast<uint64_t>(wire::ErrorCode::Replaced),
                              "replaced by a connection with the same identity from " +
                                  peer.address.to_string());
    }
  }
  peer.role = m.role;
  if (m.role == wire::Role::Connector) {
    peer.services = m.services;
    directory_.add(peer.id, m.services);
  }
  spdlog::info(
      "peer '{}' registered as {} from {}{}", peer.name, peer.role_name(), peer.address.to_string(),
      peer.services.empty() ? "" : fmt::format(" serving {}", fmt::join(peer.services, ", ")));
  peer.send(wire::ObservedAddress{peer.address});
}

void Intermediate::on_open_session(Peer& agent, const wire::OpenSession& m) {
  auto has_session_with = [&](uint64_t connector) {
    for (auto& [id, s] : sessions_)
      if (s.agent == agent.id && s.connector == connector) return true;
    return false;
  };
  auto load = [&](uint64_t connector) {
    size_t n = 0;
    for (auto& [id, s] : sessions_)
      n += s.connector == connector;
    return n;
  };
  auto pick = directory_.pick(m.service, load, has_session_with);
  Peer* connector = pick ? find_peer(*pick) : nullptr;
  if (!connector || connector->address == agent.address) {
    counters_.sessions_rejected++;
    auto reason = fmt::format("no connector serves '{}'", m.service);
    spdlog::warn("session request from '{}' rejected: {}", agent.name, reason);
    agent.send(wire::SessionReject{m.request_id, wire::ErrorCode::NoConnector, reason});
    return;
  }
  for (auto& [id, s] : sessions_) {
    if (s.agent != agent.id || s.connector != connector->id) continue;
    s.services.insert(m.service);
    if (s.accepted)
      agent.send(wire::SessionReady{m.request_id, s.id, connector->name, connector->address});
    else
      s.waiting_requests.push_back(m.request_id);
    return;
  }
  Session s;
  s.id = random_u64();
  s.agent = agent.id;
  s.connector = connector->id;
  s.services.insert(m.service);
  s.waiting_requests.push_back(m.request_id);
  s.offered_at = std::chrono::steady_clock::now();
  spdlog::info("session {:016x}: '{}' wants '{}'; offering to connector '{}'", s.id, agent.name,
               m.service, connector->name);
  connector->send(wire::SessionOffer{s.id, agent.name, m.service, agent.address});
  sessions_.emplace(s.id, std::move(s));
}

void Intermediate::on_session_accept(Peer& connector, const wire::SessionAccept& m) {
  auto it = sessions_.find(m.session_id);
  if (it == sessions_.end() || it->second.connector != connector.id || it->second.accepted) {
    counters_.control_messages_unexpected++;
    return;
  }
  auto& s = it->second;
  Peer* agent = find_peer(s.agent);
  if (!agent) return end_session(s.id, wire::ErrorCode::SessionGone, 0);
  s.accepted = true;
  counters_.sessions_opened++;
  relay_.bind(s.id, agent->address, connector.address);
  spdlog::info("session {:016x}: relay open between '{}' ({}) and '{}' ({})", s.id, agent->name,
               agent->address.to_string(), connector.name, connector.address.to_string());
  for (auto req : s.waiting_requests)
    agent->send(wire::SessionReady{req, s.id, connector.name, connector.address});
  s.waiting_requests.clear();
}

void Intermediate::on_session_closed(Peer& peer, const wire::SessionClosed& m) {
  auto it = sessions_.find(m.session_id);
  if (it == sessions_.end() || (it->second.agent != peer.id && it->second.connector != peer.id))
    return;
  spdlog::info("session {:016x}: closed by '{}' ({})", m.session_id, peer.name,
               wire::to_string(m.code));
  end_session(m.session_id, m.code, peer.id);
}

// Signaling for hole punching (DESIGN D4): only the session's two ends may exchange candidates,
// and only once the session is accepted. When both ends' candidates of a round are in, both
// get StartChecks in the same loop iteration so that their checks start together.
void Intermediate::on_candidates(Peer& peer, const wire::Candidates& m) {
  auto it = sessions_.find(m.session_id);
  const bool is_end =
      it != sessions_.end() && (it->second.agent == peer.id || it->second.connector == peer.id);
  if (!is_end || !it->second.accepted) {
    counters_.candidates_unauthorized++;
    spdlog::warn("peer '{}' ({}): candidates for session {:016x}, which it is not part of; dropped",
                 peer.name, peer.role_name(), m.session_id);
    return;
  }
  auto& s = it->second;
  const bool from_agent = s.agent == peer.id;
  Peer* other = find_peer(from_agent ? s.connector : s.agent);
  if (!other) return;
  counters_.candidates_forwarded++;
  spdlog::debug("session {:016x}: {} candidates of round {} from '{}' forwarded", s.id,
                m.candidates.size(), m.generation, peer.name);
  other->send(m);
  const auto end = from_agent ? CheckCoordinator::End::Agent : CheckCoordinator::End::Connector;
  if (checks_.on_candidates(s.id, end, m.generation)) {
    counters_.check_rounds_started++;
    spdlog::info("session {:016x}: both ends' candidates of round {} in; starting checks", s.id,
                 m.generation);
    peer.send(wire::StartChecks{s.id, m.generation});
    other->send(wire::StartChecks{s.id, m.generation});
  }
}

// Ends a session and tells both ends except `notify_not`.
void Intermediate::end_session(uint64_t session_id, wire::ErrorCode code, uint64_t notify_not) {
  auto it = sessions_.find(session_id);
  if (it == sessions_.end()) return;
  Session s = std::move(it->second);
  sessions_.erase(it);
  relay_.unbind(session_id);
  checks_.forget(session_id);
  if (Peer* agent = find_peer(s.agent); agent && s.agent != notify_not) {
    for (auto req : s.waiting_requests)
      agent->send(wire::SessionReject{req, code, "connector did not accept the session"});
    if (s.accepted) agent->send(wire::SessionClosed{session_id, code});
  }
  if (Peer* conn = find_peer(s.connector); conn && s.connector != notify_not)
    conn->send(wire::SessionClosed{session_id, code});
}

void Intermediate::on_peer_gone(uint64_t peer_id, const std::string& why) {
  auto it = peers_.find(peer_id);
  if (it == peers_.end()) return;
  auto& peer = *it->second;
  if (!peer.quic_peer->conn().handshake_completed()) {
    counters_.tls_handshake_failures++;
    spdlog::warn("connection from {} failed before authentication: {}", peer.address.to_string(),
                 why);
  } else {
    spdlog::info("peer '{}' ({}) at {} disconnected: {}", peer.name, peer.role_name(),
                 peer.address.to_string(), why);
  }
  std::vector<uint64_t> ended;
  for (auto& [id, s] : sessions_)
    if (s.agent == peer_id || s.connector == peer_id) ended.push_back(id);
  for (auto id : ended)
    end_session(id, wire::ErrorCode::SessionGone, peer_id);
  directory_.remove(peer_id);
  peers_.erase(it);
}

void Intermediate::on_relay(const Address& from, std::span<const uint8_t> datagram) {
  auto frame = wire::parse_relay_frame(datagram);
  if (!frame) {
    counters_.relay_frames_unauthorized++;
    return;
  }
  auto to = relay_.route(frame->session_id, from);
  if (!to) {
    counters_.relay_frames_unauthorized++;
    return;
  }
  // Forwarded unchanged: never larger than what came in, and only to the session's other end.
  endpoint_.socket().send(*to, datagram);
  counters_.relay_frames_forwarded++;
  counters_.relay_bytes_forwarded += datagram.size();
  if (auto it = sessions_.find(frame->session_id); it != sessions_.end())
    it->second.relayed_bytes += datagram.size();
}

void Intermediate::sweep() {
  auto now = std::chrono::steady_clock::now();
  std::vector<uint64_t> expired;
  for (auto& [id, s] : sessions_)
    if (!s.accepted && now - s.offered_at > kOfferTimeout) expired.push_back(id);
  for (auto id : expired) {
    spdlog::warn("session {:016x}: connector did not accept within {} s", id,
                 kOfferTimeout.count());
    counters_.sessions_rejected++;
    end_session(id, wire::ErrorCode::SessionGone, 0);
  }
  sweep_timer_.expires_after(std::chrono::seconds(1));
  sweep_timer_.async_wait([this](boost::system::error_code ec) {
    if (!ec) sweep();
  });
}

void Intermediate::shutdown() {
  stopping_ = true;
  spdlog::info("shutting down: closing {} connections", peers_.size());
  for (auto& [id, peer] : peers_)
    peer->quic_peer->close(static_cast<uint64_t>(wire::ErrorCode::Shutdown),
                           "intermediate shutting down");
  sweep_timer_.cancel();
  endpoint_.stop();
}

nlohmann::json Intermediate::status() const {
  nlohmann::json j;
  j["name"] = tls_.name();
  j["listen"] = endpoint_.socket().local().to_string();
  j["peers"] = nlohmann::json::array();
  for (auto& [id, p] : peers_) {
    if (!p->registered()) continue;
    j["peers"].push_back({{"name", p->name},
                          {"role", p->role_name()},
                          {"address", p->address.to_string()},
                          {"services", p->services},
                          {"rtt_ms", p->quic_peer->conn().stats().smoothed_rtt_ms}});
  }
  j["sessions"] = nlohmann::json::array();
  for (auto& [id, s] : sessions_) {
    auto name_of = [&](uint64_t pid) {
      auto it = peers_.find(pid);
      return it == peers_.end() ? std::string("-") : it->second->name;
    };
    j["sessions"].push_back({{"session_id", fmt::format("{:016x}", s.id)},
                             {"agent", name_of(s.agent)},
                             {"connector", name_of(s.connector)},
                             {"service", fmt::format("{}", fmt::join(s.services, ","))},
                             {"state", s.accepted ? "relaying" : "offered"},
                             {"relayed_bytes", s.relayed_bytes}});
  }
  const auto& e = endpoint_.counters();
  j["counters"] = {{"tls_handshake_failures", counters_.tls_handshake_failures},
                   {"control_messages_malformed", counters_.control_messages_malformed},
                   {"control_messages_unexpected", counters_.control_messages_unexpected},
                   {"sessions_opened", counters_.sessions_opened},
                   {"sessions_rejected", counters_.sessions_rejected},
                   {"relay_frames_forwarded", counters_.relay_frames_forwarded},
                   {"relay_bytes_forwarded", counters_.relay_bytes_forwarded},
                   {"relay_frames_unauthorized", counters_.relay_frames_unauthorized},
                   {"candidates_forwarded", counters_.candidates_forwarded},
                   {"candidates_unauthorized", counters_.candidates_unauthorized},
                   {"check_rounds_started", counters_.check_rounds_started},
                   {"peers_refused", counters_.peers_refused},
                   {"peers_replaced", counters_.peers_replaced},
                   {"junk_datagrams", e.junk_datagrams},
                   {"stun_datagrams", e.stun_datagrams},
                   {"unknown_connection", e.unknown_connection},
                   {"stateless_resets_sent", e.stateless_resets_sent},
                   {"send_errors", endpoint_.socket().send_errors()}};
  return j;
}

} // namespace ztna
