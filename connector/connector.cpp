#include "connector.hpp"

#include "io/clock.hpp"
#include "io/path_status.hpp"
#include "io/session_watch.hpp"
#include "wire/relay_frame.hpp"

#include <spdlog/spdlog.h>

#include <sys/resource.h>

namespace ztna {

namespace {
constexpr auto kOfferTimeout = std::chrono::seconds(15);
constexpr auto kUdpFlowIdle = std::chrono::seconds(120);
// File descriptors kept out of the backend budget: the UDP socket, the status socket, logs,
// resolvers.
constexpr size_t kReservedDescriptors = 64;

std::vector<std::string> names(const std::vector<ServiceSpec>& specs) {
  std::vector<std::string> out;
  for (auto& s : specs)
    out.push_back(s.name);
  return out;
}

size_t descriptor_budget() {
  rlimit r{};
  if (getrlimit(RLIMIT_NOFILE, &r) != 0 || r.rlim_cur == RLIM_INFINITY) return 65536;
  return r.rlim_cur > kReservedDescriptors * 2 ? r.rlim_cur - kReservedDescriptors : r.rlim_cur / 2;
}

std::shared_ptr<const auth::AuthorizationVerifier> load_verifier(const std::string& file) {
  std::string error;
  auto v = auth::AuthorizationVerifier::load(file, error);
  if (!v) throw std::runtime_error("--authorization-pub: " + error);
  return v;
}
} // namespace

Connector::Connector(boost::asio::io_context& io, ConnectorOptions options)
    : io_(io), options_(std::move(options)),
      tls_(std::make_shared<quic::TlsIdentity>(options_.tls, Role::Connector)),
      verifier_(load_verifier(options_.authorization_pub)),
      endpoint_(io, options_.listen, io::derive_reset_secret(options_.tls.key)),
      control_(io, endpoint_,
               io::ControlClient::Options{
                   {}, {}, tls_, wire::Role::Connector, names(options_.services), &refusals_},
               options_.intermediates, io::ControlPlane::Mode::All,
               io::ControlPlane::Listener{
                   [this](size_t i) { on_control_connected(i); },
                   [this](size_t i, const wire::ControlMessage& m) { on_control_message(i, m); },
                   [this](size_t i, const std::string& why) { on_control_lost(i, why); }}),
      sweep_timer_(io) {
  for (auto& s : options_.services) {
    // Deny by default here too: a service nobody may reach is a mistake worth stopping for.
    if (!options_.allow.has(s.name))
      throw std::runtime_error("service '" + s.name + "' has no --allow list; give --allow " +
                               s.name + "=AGENT,group:GROUP,... (or --allow " + s.name +
                               "='*' to serve every agent the intermediate authorizes)");
    services_[s.name] = s;
  }
  sockets_.per_session = options_.sockets_per_session;
  sockets_.total = descriptor_budget();
}

void Connector::start() {
  endpoint_.on_stun([this](const Address& from, std::span<const uint8_t> d) { on_stun(from, d); });
  endpoint_.start([this](const Address& from, std::span<const uint8_t> d) { on_relay(from, d); });
  spdlog::info("connector '{}' on udp {}, publishing {} service(s)", tls_->name(),
               endpoint_.socket().local().to_string(), services_.size());
  spdlog::info("identity: {}", tls_->summary());
  spdlog::info("authorizations: {} trusted intermediate key(s) from {}", verifier_->key_count(),
               options_.authorization_pub);
  for (auto& [name, s] : services_)
    spdlog::info("  service '{}' -> {}://{}, allowed: {}", name, s.proto_name(), s.endpoint(),
                 options_.allow.describe(name));
  spdlog::info("backend sockets: at most {} per session, {} in all (from the file descriptor "
               "limit)",
               sockets_.per_session, sockets_.total);
  control_.start();
  sweep();
}

// What an intermediate says of a session counts only if that intermediate relays it now: after
// a move, the one it left may still time out its claim and close it there (DESIGN D11).
BackendSession* Connector::session_via(size_t i, uint64_t id) {
  auto it = sessions_.find(id);
  return it != sessions_.end() && it->second->via() == i ? it->second.get() : nullptr;
}

void Connector::on_control_message(size_t i, const wire::ControlMessage& m) {
  if (auto* offer = std::get_if<wire::SessionOffer>(&m)) return on_offer(i, *offer);
  if (auto* c = std::get_if<wire::Candidates>(&m)) {
    if (auto* s = session_via(i, c->session_id)) s->paths().on_candidates(*c);
    return;
  }
  if (auto* start = std::get_if<wire::StartChecks>(&m)) {
    if (auto* s = session_via(i, start->session_id)) s->paths().on_start_checks(start->generation);
    return;
  }
  if (auto* query = std::get_if<wire::ResumeSession>(&m)) {
    // The agent resumed the session at intermediate i (it re-homed there): claim it there too.
    auto it = sessions_.find(query->session_id);
    if (it != sessions_.end() && it->second->agent() == query->peer &&
        it->second->service() == query->service && it->second->quic() &&
        it->second->quic()->conn().handshake_completed())
      control_.send(i, wire::ResumeSession{query->session_id, query->peer, query->service});
    else
      control_.send(i, wire::SessionClosed{query->session_id, wire::ErrorCode::SessionGone});
    return;
  }
  if (std::holds_alternative<wire::ObservedAddress>(m)) {
    nat_check_.refresh(control_); // a new reflexive address may be a new NAT
    return update_candidates();
  }
  if (auto* closed = std::get_if<wire::SessionClosed>(&m)) {
    if (session_via(i, closed->session_id))
      end_session(closed->session_id,
                  std::string("intermediate closed it: ") + wire::to_string(closed->code), false);
    return;
  }
  if (auto* resumed = std::get_if<wire::SessionResumed>(&m)) {
    if (auto it = sessions_.find(resumed->session_id); it != sessions_.end()) {
      auto& s = *it->second;
      const bool moved = s.via() != i;
      s.set_via(i);
      if (moved) s.paths().follow_relay(control_.address(i));
      s.liveness().set_relay(session::RelayState::Bound, io::now());
      spdlog::info("session {:016x}: relay bound again{}", resumed->session_id,
                   moved ? " at " + control_.address(i).to_string() : std::string());
    }
    return;
  }
  if (auto* lost = std::get_if<wire::PeerLost>(&m)) {
    if (auto* s = session_via(i, lost->session_id)) {
      s->liveness().set_relay(session::RelayState::PeerLost, io::now());
      spdlog::warn("session {:016x}: agent '{}' lost its control connection", lost->session_id,
                   s->agent());
    }
    return;
  }
  spdlog::warn("control: unexpected {} from intermediate, ignored", wire::message_name(m));
}

void Connector::on_offer(size_t via, const wire::SessionOffer& offer) {
  if (sessions_.count(offer.session_id)) return;
  // What can be refused before any handshake is refused here, and the agent hears so at once.
  std::string refusal;
  auto svc = services_.find(offer.service);
  if (svc == services_.end())
    refusal = "this connector does not publish '" + offer.service + "'";
  else if (!options_.allow.may_allow(offer.service, offer.agent))
    refusal = "this connector's allow list does not let agent '" + offer.agent + "' reach '" +
              offer.service + "' (allowed: " + options_.allow.describe(offer.service) + ")";
  if (!refusal.empty()) {
    counters_.offers_refused++;
    spdlog::warn("session {:016x}: refusing the offer for agent '{}': {}", offer.session_id,
                 offer.agent, refusal);
    control_.send(via, wire::SessionClosed{offer.session_id, wire::ErrorCode::NotAuthorized});
    return;
  }
  spdlog::info("session {:016x}: agent '{}' (at {}) for '{}': accepted, waiting for its "
               "handshake and authorization",
               offer.session_id, offer.agent, offer.agent_address.to_string(), offer.service);
  session::GateConfig gate;
  gate.session_id = offer.session_id;
  gate.connector = tls_->name();
  gate.agent = offer.agent;
  gate.service = offer.service;
  gate.verifier = verifier_;
  gate.allow = &options_.allow;
  gate.services = &services_;
  gate.replay = &replay_;
  gate.counters = &counters_.gate;
  auto session = std::make_unique<BackendSession>(endpoint_, signaling(), control_.address(via),
                                                  std::move(gate), sockets_, counters_);
  // The controlled side of the checks (DESIGN D4): it joins the rounds the agent opens.
  ice::PathManagerConfig checks;
  checks.local_nat = nat_check_.wire();
  session->paths().start_checks(
      std::move(checks), io::gather_candidates(endpoint_.socket(), control_.observed_address()));
  session->set_via(via);
  sessions_.emplace(offer.session_id, std::move(session));
  control_.send(via, wire::SessionAccept{offer.session_id});
}

void Connector::on_nat_report(const nat::NatReport& report) {
  for (auto& [id, s] : sessions_)
    s->paths().set_local_nat(nat::to_wire(report));
}

bool Connector::signal(uint64_t session_id, const wire::ControlMessage& m) {
  auto it = sessions_.find(session_id);
  return it != sessions_.end() && control_.send(it->second->via(), m);
}

void Connector::on_relay(const Address& from, std::span<const uint8_t> datagram) {
  auto frame = wire::parse_relay_frame(datagram);
  auto it = frame ? sessions_.find(frame->session_id) : sessions_.end();
  // Relay frames are only trusted from the intermediate, for sessions it offered us.
  if (!frame || !control_.index_of(from) || it == sessions_.end()) {
    counters_.relay_frames_unexpected++;
    return;
  }
  auto& s = *it->second;
  if (!s.quic()) return start_session(s, frame->payload);
  s.paths().receive_relayed(from, frame->payload);
}

void Connector::start_session(BackendSession& s, std::span<const uint8_t> packet) {
  ngtcp2_pkt_hd hd;
  if (ngtcp2_accept(&hd, packet.data(), packet.size()) != 0) {
    counters_.relay_frames_unexpected++;
    return;
  }
  quic::ConnectionConfig cfg;
  cfg.server = true;
  cfg.tls = tls_;
  cfg.alpn = std::string(wire::kSessionAlpn);
  cfg.datagrams = true;
  cfg.reset_secret = endpoint_.reset_secret();
  // Exactly the agent the intermediate offered the session for, with a certificate for TLS
  // clients: a connector's certificate, or another agent's, is refused in the handshake.
  cfg.peer.roles = {Role::Agent};
  cfg.peer.client_auth = true;
  cfg.peer.name = s.agent();
  const quic::Path path = s.paths().paths().relay_path();
  std::string error;
  auto conn = quic::Connection::server(cfg, path, hd, s, io::now(), error);
  if (!conn) {
    spdlog::warn("session {:016x}: cannot start: {}", s.id(), error);
    return;
  }
  uint64_t id = s.id();
  // In the endpoint's router: once the agent moves the session to a direct path, its packets
  // arrive on our socket (RFC 9000 §9.3: the server follows the client's migration).
  auto peer = std::make_unique<io::QuicPeer>(io_, &endpoint_.router(), s.paths().transmit());
  peer->on_finished([this, id](const std::string& why) { end_session(id, why, true); });
  peer->set_path_mapper(s.paths().inbound());
  s.set_quic(std::move(peer));
  s.set_credentials({&tls_, &refusals_});
  s.quic()->attach(std::move(conn));
  s.quic()->receive(path, packet);
}

// Our reflexive address changed: every session checks again (RFC 8445 §9).
void Connector::update_candidates() {
  auto candidates = io::gather_candidates(endpoint_.socket(), control_.observed_address());
  for (auto& [id, s] : sessions_)
    s->paths().set_local_candidates(candidates);
}

void Connector::on_stun(const Address& from, std::span<const uint8_t> datagram) {
  if (nat_check_.on_stun(from, datagram)) return; // an answer to our NAT discovery
  std::vector<io::PathLayer*> layers;
  for (auto& [id, s] : sessions_)
    layers.push_back(&s->paths());
  io::dispatch_stun(from, datagram, layers, stun_counters_);
}

void Connector::end_session(uint64_t id, const std::string& why, bool tell_intermediate) {
  auto it = sessions_.find(id);
  if (it == sessions_.end()) return;
  auto* q = it->second->quic();
  if (q && !q->conn().handshake_completed() && q->conn().refusal())
    refusals_.refused(*q->conn().refusal(), q->conn().path().remote,
                      "session " + fmt::format("{:016x}", id));
  spdlog::info("session {:016x} with agent '{}' ended: {}", id, it->second->agent(), why);
  if (q && !q->conn().finished()) q->close(0, "session closed");
  if (tell_intermediate)
    control_.send(it->second->via(), wire::SessionClosed{id, wire::ErrorCode::SessionGone});
  sessions_.erase(it);
}

// Sessions outlive the control connection (DESIGN D10): they carry on on a direct path, or wait
// for the relay to be bound again.
void Connector::on_control_lost(size_t i, const std::string& why) {
  size_t affected = 0, direct = 0;
  for (auto& [id, s] : sessions_) {
    if (s->via() != i) continue;
    affected++;
    s->liveness().set_relay(session::RelayState::Unbound, io::now());
    direct += s->quic() && io::on_direct_path(*s->quic());
  }
  if (affected)
    spdlog::warn("control connection to {} lost ({}): {} session(s) carry on, {} of them on a "
                 "direct path; the others wait for the relay",
                 control_.address(i).to_string(), why, affected, direct);
}

// Registered again: every live session is announced (docs/protocol.md §6.2). Offers whose
// handshake had not completed cannot be resumed: they end.
void Connector::on_control_connected(size_t i) {
  nat_check_.refresh(control_);
  std::vector<uint64_t> unfinished;
  size_t announced = 0;
  for (auto& [id, s] : sessions_) {
    if (s->via() != i) continue;
    if (!s->quic() || !s->quic()->conn().handshake_completed()) {
      unfinished.push_back(id);
      continue;
    }
    control_.send(i, wire::ResumeSession{id, s->agent(), s->service()});
    announced++;
  }
  for (auto id : unfinished)
    end_session(id, "the control connection was lost before its handshake completed", false);
  if (announced)
    spdlog::info("control: announced {} live session(s) to {}", announced,
                 control_.address(i).to_string());
}

void Connector::reload() {
  reloads_++;
  try {
    tls_ = std::make_shared<quic::TlsIdentity>(options_.tls, Role::Connector);
    spdlog::info("reload: identity: {}", tls_->summary());
  } catch (const std::exception& e) {
    reload_failures_++;
    spdlog::error("reload: keeping the old certificates and CRL: {}", e.what());
  }
  std::string error;
  if (auto v = auth::AuthorizationVerifier::load(options_.authorization_pub, error)) {
    verifier_ = std::move(v);
    spdlog::info("reload: {} trusted intermediate key(s) from {}", verifier_->key_count(),
                 options_.authorization_pub);
  } else {
    reload_failures_++;
    spdlog::error("reload: keeping the old authorization keys: {}", error);
  }
  control_.set_tls(tls_);
  std::vector<uint64_t> revoked;
  for (auto& [id, s] : sessions_) {
    auto* q = s->quic();
    if (q && q->conn().peer_identity() && tls_->is_revoked(*q->conn().peer_identity()))
      revoked.push_back(id);
  }
  for (auto id : revoked) {
    auto* q = sessions_[id]->quic();
    refusals_.refused({quic::Refusal::Revoked, "certificate revoked (listed in the reloaded CRL)"},
                      q->conn().path().remote, "live session " + fmt::format("{:016x}", id));
    q->close(static_cast<uint64_t>(wire::ErrorCode::NotAuthorized), "certificate revoked");
    end_session(id, "the agent's certificate was revoked", true);
  }
}

void Connector::sweep() {
  auto now = std::chrono::steady_clock::now();
  std::vector<uint64_t> stale;
  std::vector<uint64_t> unauthorized;
  for (auto& [id, s] : sessions_) {
    if (!s->quic() && now - s->created() > kOfferTimeout) stale.push_back(id);
    // Held streams wait for the authorization; they do not wait for ever.
    else if (s->quic() && !s->authorized() && now - s->created() > kOfferTimeout)
      unauthorized.push_back(id);
    s->expire_flows(now, kUdpFlowIdle);
  }
  for (auto id : stale)
    end_session(id, "the agent never started the handshake", true);
  // A dead agent is noticed within seconds (DESIGN D10): its backends are let go.
  std::vector<std::pair<uint64_t, std::string>> dead;
  std::vector<bool> probing(control_.size(), false);
  for (auto& [id, s] : sessions_) {
    auto* q = s->quic();
    if (!q) continue;
    auto w = io::watch_session(s->liveness(), *q, s->busy(), control_.last_received(s->via()));
    if (w.dead) dead.emplace_back(id, *w.dead);
    if (w.probe_relay) probing[s->via()] = true;
  }
  for (size_t i = 0; i < control_.size(); ++i)
    control_.set_probing(i, probing[i]);
  for (auto& [id, why] : dead)
    end_session(id, "agent unreachable: " + why, true);
  for (auto id : unauthorized) {
    counters_.authorizations_missing++;
    if (auto* q = sessions_[id]->quic())
      q->close(static_cast<uint64_t>(wire::ErrorCode::NotAuthorized),
               "no authorization within " + std::to_string(kOfferTimeout.count()) + " s");
    end_session(id, "the agent presented no authorization in time", true);
  }
  // A new interface (or a lost one) changes our host candidates: look every 5 s.
  if (++sweeps_ % 20 == 0) update_candidates();
  sweep_timer_.expires_after(std::chrono::milliseconds(250));
  sweep_timer_.async_wait([this](boost::system::error_code ec) {
    if (!ec) sweep();
  });
}

void Connector::shutdown() {
  for (auto& [id, s] : sessions_)
    if (auto* q = s->quic()) q->close(0, "connector shutting down");
  control_.stop();
  sweep_timer_.cancel();
  endpoint_.stop();
}

nlohmann::json Connector::status() const {
  nlohmann::json j;
  j["name"] = tls_->name();
  j["listen"] = endpoint_.socket().local().to_string();
  j["control"] = control_.status();
  j["nat"] = nat_check_.status();
  j["crl"] = {{"file", tls_->files().crl}, {"revoked", tls_->revoked_count()}};
  j["services"] = nlohmann::json::array();
  for (auto& [name, s] : services_)
    j["services"].push_back({{"name", name},
                             {"proto", s.proto_name()},
                             {"backend", s.endpoint()},
                             {"allow", options_.allow.describe(name)}});
  j["sessions"] = nlohmann::json::array();
  for (auto& [id, s] : sessions_) {
    auto& session = const_cast<BackendSession&>(*s);
    nlohmann::json js{{"session_id", fmt::format("{:016x}", id)},
                      {"agent", s->agent()},
                      {"service", s->service()},
                      {"authorized", s->authorized()},
                      {"path", "relay"},
                      {"open_streams", s->open_streams()},
                      {"udp_flows", s->udp_flows()}};
    js["paths"] = io::path_status(*session.paths().manager());
    if (auto* q = session.quic()) {
      // The agent moves the session; we follow. The current QUIC path tells which one it is.
      const auto current = q->conn().path();
      const bool direct = io::on_direct_path(*q);
      js["path"] = direct ? "direct" : "relay";
      js["paths"]["active"] = js["path"];
      if (direct) js["paths"]["direct_remote"] = current.remote.to_string();
      auto st = q->conn().stats();
      js["state"] = q->conn().handshake_completed() ? "established" : "handshaking";
      js["relay"] = session::to_string(s->liveness().relay());
      js["silent_ms"] = s->liveness().silent_for(io::now()) / 1'000'000;
      js["rtt_ms"] = st.smoothed_rtt_ms;
      js["bytes_sent"] = st.stream_bytes_sent;
      js["bytes_received"] = st.stream_bytes_received;
    } else {
      js["state"] = "offered";
    }
    j["sessions"].push_back(js);
  }
  const auto& e = endpoint_.counters();
  const auto& g = counters_.gate;
  j["handshake_refusals"] = refusals_.json();
  j["backend_sockets"] = {{"in_use", sockets_.in_use},
                          {"per_session", sockets_.per_session},
                          {"total", sockets_.total}};
  j["counters"] = {{"unknown_service", g.unknown_service},
                   {"backend_connect_failures", counters_.backend_connect_failures},
                   {"backend_sockets_refused", counters_.backend_sockets_refused},
                   {"streams_opened", counters_.streams_opened},
                   {"streams_malformed", g.streams_malformed},
                   {"streams_wrong_service", g.streams_wrong_service},
                   {"udp_flows_opened", counters_.udp_flows_opened},
                   {"datagrams_malformed", g.datagrams_malformed},
                   {"datagrams_wrong_service", g.datagrams_wrong_service},
                   {"datagrams_dropped", counters_.datagrams_dropped + g.datagrams_dropped},
                   {"offers_refused", counters_.offers_refused},
                   {"authorizations_missing", counters_.authorizations_missing},
                   {"authorizations_accepted", g.authorizations_accepted},
                   {"authorizations_malformed", g.authorizations_malformed},
                   {"authorizations_forged", g.authorizations_forged},
                   {"authorizations_expired", g.authorizations_expired},
                   {"authorizations_mismatched", g.authorizations_mismatched},
                   {"authorizations_replayed", g.authorizations_replayed},
                   {"allow_list_denied", g.allow_list_denied},
                   {"tls_handshake_failures", refusals_.counters().total()},
                   {"relay_frames_unexpected", counters_.relay_frames_unexpected},
                   {"junk_datagrams", e.junk_datagrams},
                   {"stun_malformed", stun_counters_.malformed},
                   {"stun_unauthenticated", stun_counters_.unauthenticated},
                   {"stun_unmatched", stun_counters_.unmatched},
                   {"control_connects", control_.connects()},
                   {"reloads", reloads_},
                   {"reload_failures", reload_failures_}};
  return j;
}

} // namespace ztna
