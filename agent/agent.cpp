#include "agent.hpp"

#include "io/clock.hpp"
#include "io/json_text.hpp"
#include "io/path_status.hpp"
#include "io/random.hpp"
#include "io/session_watch.hpp"
#include "wire/datagram_frame.hpp"
#include "wire/relay_frame.hpp"
#include "wire/stream_header.hpp"

#include <spdlog/spdlog.h>

namespace ztna {

namespace {
constexpr auto kRequestTimeout = std::chrono::seconds(10);
constexpr auto kUdpFlowIdle = std::chrono::seconds(120);
constexpr size_t kMaxQueuedPerRequest = 256;
} // namespace

Agent::Agent(boost::asio::io_context& io, AgentOptions options)
    : io_(io), options_(std::move(options)),
      tls_(std::make_shared<quic::TlsIdentity>(options_.tls, Role::Agent)),
      endpoint_(io, options_.listen, io::derive_reset_secret(options_.tls.key)),
      control_(io, endpoint_,
               io::ControlClient::Options{{}, {}, tls_, wire::Role::Agent, {}, &refusals_},
               options_.intermediates, io::ControlPlane::Mode::Home,
               io::ControlPlane::Listener{
                   [this](size_t i) { on_control_connected(i); },
                   [this](size_t i, const wire::ControlMessage& m) {
                     // Only the home speaks for our sessions; a racer about to be closed does not.
                     if (control_.home() == i) on_control_message(i, m);
                   },
                   [this](size_t, const std::string& why) { on_control_lost(why); }}),
      sweep_timer_(io) {
  for (auto& spec : options_.exposes)
    listeners_.push_back(std::make_unique<LocalListener>(
        io, spec, [this](LocalListener& l, tcp::socket s) { on_tcp(l, std::move(s)); },
        [this](LocalListener& l, const Address& from, std::span<const uint8_t> p) {
          on_udp(l, from, p);
        }));
}

void Agent::start() {
  endpoint_.on_stun([this](const Address& from, std::span<const uint8_t> d) { on_stun(from, d); });
  endpoint_.start([this](const Address& from, std::span<const uint8_t> d) {
    auto frame = wire::parse_relay_frame(d);
    auto it = frame ? sessions_.find(frame->session_id) : sessions_.end();
    // Relay frames come from an intermediate of ours (QUIC authenticates what they carry).
    if (!frame || !control_.index_of(from) || it == sessions_.end()) return;
    it->second->paths().receive_relayed(from, frame->payload);
  });
  spdlog::info("agent '{}' on udp {}", tls_->name(), endpoint_.socket().local().to_string());
  spdlog::info("identity: {}", tls_->summary());
  for (auto& l : listeners_)
    spdlog::info("  exposing '{}' on {}://{}", l->spec().name, l->spec().proto_name(),
                 l->spec().endpoint());
  control_.start();
  sweep();
}

TunnelSession* Agent::session_for(const std::string& service) {
  auto it = session_of_service_.find(service);
  if (it == session_of_service_.end()) return nullptr;
  auto s = sessions_.find(it->second);
  return s == sessions_.end() ? nullptr : s->second.get();
}

Agent::Request* Agent::request_session(const std::string& service) {
  if (auto it = requests_.find(service); it != requests_.end()) return &it->second;
  Request r;
  r.id = next_request_id_++;
  r.sent = std::chrono::steady_clock::now();
  r.offer = make_offer();
  // Without a home right now (moving to another intermediate), the request waits for the next
  // one (on_control_connected), within kRequestTimeout.
  if (send_home(wire::OpenSession{r.id, service, r.offer}))
    spdlog::info("asking the intermediate for a session to '{}'", service);
  else
    spdlog::info("'{}': no intermediate registers us right now; the request waits for one",
                 service);
  return &requests_.emplace(service, std::move(r)).first->second;
}

void Agent::on_tcp(LocalListener& l, tcp::socket s) {
  const auto& service = l.spec().name;
  if (auto* session = session_for(service)) return session->add_connection(service, std::move(s));
  auto* req = request_session(service);
  if (!req) {
    counters_.connections_refused_offline++;
    spdlog::warn("'{}': connection refused: not connected to the intermediate ({})", service,
                 control_.describe_state());
    return; // the socket closes as it goes out of scope
  }
  if (req->connections.size() >= kMaxQueuedPerRequest) return;
  req->connections.push_back(std::move(s));
}

size_t Agent::max_udp_payload(const std::string& service) {
  return quic::kMaxUdpPayload - quic::kDatagramOverhead - wire::datagram_overhead(service);
}

void Agent::on_udp(LocalListener& l, const Address& from, std::span<const uint8_t> payload) {
  const auto& service = l.spec().name;
  // A DATAGRAM frame cannot span packets (RFC 9221 §5): what does not fit one is dropped here,
  // counted and said (once per service), instead of vanishing inside the QUIC layer.
  const size_t limit = max_udp_payload(service);
  if (payload.size() > limit) {
    counters_.udp_datagrams_too_large++;
    if (oversize_reported_.insert(service).second)
      spdlog::warn("'{}': dropped a {}-byte UDP datagram from {}: the tunnel carries at most {} "
                   "bytes per datagram for this service (counted in udp_datagrams_too_large; "
                   "said once)",
                   service, payload.size(), from.to_string(), limit);
    return;
  }
  auto key = std::make_pair(&l, from.to_string());
  uint32_t flow;
  if (auto it = flow_of_client_.find(key); it != flow_of_client_.end()) {
    flow = it->second;
  } else {
    flow = next_flow_id_++;
    flow_of_client_.emplace(key, flow);
    flows_[flow] = UdpFlow{&l, from, {}};
  }
  flows_[flow].last_used = std::chrono::steady_clock::now();
  if (auto* session = session_for(service)) {
    session->send_datagram(wire::encode_datagram(flow, service, payload));
    return;
  }
  auto* req = request_session(service);
  if (!req || req->datagrams.size() >= kMaxQueuedPerRequest) {
    counters_.udp_datagrams_dropped++;
    return;
  }
  req->datagrams.emplace_back(flow, std::vector<uint8_t>(payload.begin(), payload.end()));
}

void Agent::on_udp_reply(std::span<const uint8_t> datagram) {
  auto d = wire::parse_datagram(datagram);
  if (!d) {
    counters_.datagrams_malformed++;
    return;
  }
  auto it = flows_.find(d->flow_id);
  if (it == flows_.end()) {
    counters_.udp_datagrams_dropped++;
    return;
  }
  it->second.last_used = std::chrono::steady_clock::now();
  it->second.listener->send_udp(it->second.client, d->payload);
}

void Agent::on_control_message(size_t i, const wire::ControlMessage& m) {
  if (auto* ready = std::get_if<wire::SessionReady>(&m)) return on_session_ready(i, *ready);
  if (auto* reject = std::get_if<wire::SessionReject>(&m)) return on_session_reject(*reject);
  if (auto* closed = std::get_if<wire::SessionClosed>(&m))
    return end_session(closed->session_id,
                       std::string("intermediate closed it: ") + wire::to_string(closed->code),
                       false);
  if (auto* resumed = std::get_if<wire::SessionResumed>(&m)) return on_session_resumed(i, *resumed);
  if (auto* query = std::get_if<wire::ResumeSession>(&m)) {
    // The connector announced the session first: claim it too, or say it is gone.
    auto it = sessions_.find(query->session_id);
    if (it != sessions_.end() && it->second->connector() == query->peer &&
        it->second->service() == query->service && it->second->established())
      control_.send(i, wire::ResumeSession{query->session_id, query->peer, query->service});
    else
      control_.send(i, wire::SessionClosed{query->session_id, wire::ErrorCode::SessionGone});
    return;
  }
  if (auto* lost = std::get_if<wire::PeerLost>(&m)) {
    if (auto it = sessions_.find(lost->session_id); it != sessions_.end()) {
      auto& s = *it->second;
      s.liveness().set_relay(session::RelayState::PeerLost, io::now());
      spdlog::warn("session {:016x}: connector '{}' lost its control connection; {}", s.id(),
                   s.connector(),
                   io::on_direct_path(s.quic()) ? "the direct path carries on"
                                                : "waiting for it to come back");
    }
    return;
  }
  if (auto* c = std::get_if<wire::Candidates>(&m)) {
    if (auto it = sessions_.find(c->session_id); it != sessions_.end())
      it->second->paths().on_candidates(*c);
    return;
  }
  if (auto* start = std::get_if<wire::StartChecks>(&m)) {
    if (auto it = sessions_.find(start->session_id); it != sessions_.end())
      it->second->paths().on_start_checks(start->generation);
    return;
  }
  if (std::holds_alternative<wire::ObservedAddress>(m)) {
    nat_check_.refresh(control_); // a new reflexive address may be a new NAT
    return update_candidates();
  }
  spdlog::warn("control: unexpected {} from intermediate, ignored", wire::message_name(m));
}

TunnelSession& Agent::create_session(size_t via, const wire::SessionReady& m,
                                     const std::string& service,
                                     std::optional<wire::Candidates> offer) {
  uint64_t id = m.session_id;
  auto session = std::make_unique<TunnelSession>(endpoint_, signaling(), id, m.connector, service,
                                                 m.authorization, control_.address(via),
                                                 [this, id](std::span<const uint8_t> d) {
                                                   if (auto p = wire::parse_ping(d)) {
                                                     if (p->pong) on_pong(id, p->id);
                                                     return;
                                                   }
                                                   on_udp_reply(d);
                                                 });
  quic::ConnectionConfig cfg;
  cfg.tls = tls_;
  cfg.alpn = std::string(wire::kSessionAlpn);
  // The connector must prove it is the one the intermediate chose, with a certificate for TLS
  // servers: an agent's certificate can never act as a session's server.
  cfg.server_name = m.connector;
  cfg.peer.roles = {Role::Connector};
  cfg.peer.server_auth = true;
  cfg.peer.name = m.connector;
  cfg.datagrams = true;
  cfg.keepalive = std::chrono::seconds(10);
  cfg.max_bidi_streams = 0;
  cfg.reset_secret = endpoint_.reset_secret();
  const quic::Path path = session->paths().paths().relay_path();
  // In the endpoint's router: on a direct path the connector's packets arrive on our socket.
  auto peer = std::make_unique<io::QuicPeer>(io_, &endpoint_.router(), session->paths().transmit());
  peer->on_finished([this, id](const std::string& why) { end_session(id, why, true); });
  peer->set_path_mapper(session->paths().inbound());
  std::string error;
  auto conn = quic::Connection::client(cfg, path, *session, io::now(), error);
  session->set_quic(std::move(peer));
  session->set_credentials({&tls_, &refusals_});
  auto& ref = *session;
  sessions_.emplace(id, std::move(session));
  if (!conn) {
    spdlog::error("session {:016x}: {}", id, error);
    end_session(id, error, true);
    return ref;
  }
  counters_.sessions_opened++;
  spdlog::info(
      "session {:016x}: connector '{}' at {}; starting end-to-end handshake over the relay", id,
      m.connector, m.connector_address.to_string());
  ref.quic().attach(std::move(conn));
  if (!options_.relay_only) start_paths(ref, std::move(offer));
  return ref;
}

void Agent::on_session_ready(size_t via, const wire::SessionReady& m) {
  auto req = std::find_if(requests_.begin(), requests_.end(),
                          [&](auto& kv) { return kv.second.id == m.request_id; });
  if (req == requests_.end()) return;
  std::string service = req->first;
  Request r = std::move(req->second);
  requests_.erase(req);
  // One session per service: the authorization it carries names that one service.
  if (sessions_.count(m.session_id)) return;
  TunnelSession& session = create_session(via, m, service, std::move(r.offer));
  if (!sessions_.count(m.session_id)) return; // could not start
  session_of_service_[service] = m.session_id;
  for (auto& s : r.connections)
    session.add_connection(service, std::move(s));
  for (auto& [flow, payload] : r.datagrams)
    session.send_datagram(wire::encode_datagram(flow, service, payload));
}

bool Agent::send_home(const wire::ControlMessage& m) {
  auto home = control_.home();
  return home && control_.send(*home, m);
}

void Agent::start_paths(TunnelSession& s, std::optional<wire::Candidates> offer) {
  // The agent is the controlling side: it nominates and migrates (DESIGN D4). Round 1 went out
  // with the request when it could.
  ice::PathManagerConfig config;
  config.offer = std::move(offer);
  config.local_nat = nat_check_.wire();
  s.paths().start_checks(std::move(config),
                         io::gather_candidates(endpoint_.socket(), control_.observed_address()));
}

std::optional<wire::Candidates> Agent::make_offer() const {
  if (options_.relay_only) return std::nullopt;
  auto locals = io::gather_candidates(endpoint_.socket(), control_.observed_address());
  auto offer =
      ice::make_offer(std::move(locals), io::random_fill,
                      ice::PathManagerConfig{}.checks.max_transmissions, nat_check_.wire());
  if (offer.candidates.empty()) return std::nullopt; // nothing to check: the relay it is
  return offer;
}

void Agent::on_nat_report(const nat::NatReport& report) {
  for (auto& [id, s] : sessions_)
    s->paths().set_local_nat(nat::to_wire(report));
}

bool Agent::signal(uint64_t, const wire::ControlMessage& m) {
  return send_home(m);
}

std::optional<Address> Agent::fallback_relay(uint64_t) {
  if (auto home = control_.home()) return control_.address(*home);
  return std::nullopt;
}

// Our reflexive address (or our interfaces) changed: every session checks again.
void Agent::update_candidates() {
  auto candidates = io::gather_candidates(endpoint_.socket(), control_.observed_address());
  for (auto& [id, s] : sessions_)
    s->paths().set_local_candidates(candidates);
}

void Agent::on_stun(const Address& from, std::span<const uint8_t> datagram) {
  if (nat_check_.on_stun(from, datagram)) return; // an answer to our NAT discovery
  std::vector<io::PathLayer*> layers;
  for (auto& [id, s] : sessions_)
    layers.push_back(&s->paths());
  io::dispatch_stun(from, datagram, layers, stun_counters_);
}

namespace {
constexpr auto kPingTimeout = std::chrono::seconds(5);
constexpr size_t kMaxPings = 64;
} // namespace

void Agent::request(const std::string& line, io::StatusServer::Reply reply) {
  constexpr std::string_view kPing = "ping ";
  if (line.rfind(kPing, 0) != 0) return reply(R"({"error":"unknown request"})");
  std::string service = line.substr(kPing.size());
  auto known = std::find_if(listeners_.begin(), listeners_.end(),
                            [&](auto& l) { return l->spec().name == service; });
  if (known == listeners_.end())
    return reply(io::json_text({{"error", "no exposed service named '" + service + "'"}}));
  if (pings_.size() >= kMaxPings) return reply(R"({"error":"too many pings in flight"})");
  const uint64_t id = next_ping_id_++;
  Ping p{service,
         std::move(reply),
         std::chrono::steady_clock::now(),
         {},
         false,
         std::make_unique<boost::asio::steady_timer>(io_)};
  pings_.emplace(id, std::move(p));
  ping(id);
}

// Sends ping `ping_id` once its service has an established session (opening one if needed),
// checking again every 20 ms; gives up after kPingTimeout.
void Agent::ping(uint64_t ping_id) {
  auto it = pings_.find(ping_id);
  if (it == pings_.end()) return;
  auto& p = it->second;
  const auto now = std::chrono::steady_clock::now();
  if (now - p.started > kPingTimeout) {
    p.reply(io::json_text({{"error", "no reply from '" + p.service + "' within 5 s"}}));
    pings_.erase(it);
    return;
  }
  if (!p.in_flight) {
    auto* session = session_for(p.service);
    if (session && session->established()) {
      p.sent = now;
      p.in_flight = true;
      session->send_datagram(wire::encode_ping(false, ping_id));
    } else if (!session) {
      request_session(p.service);
    }
  }
  p.timer->expires_after(p.in_flight ? kPingTimeout : std::chrono::milliseconds(20));
  p.timer->async_wait([this, ping_id](boost::system::error_code ec) {
    if (!ec) ping(ping_id);
  });
}

void Agent::on_pong(uint64_t session_id, uint64_t ping_id) {
  auto it = pings_.find(ping_id);
  auto s = sessions_.find(session_id);
  if (it == pings_.end() || !it->second.in_flight || s == sessions_.end()) return;
  const auto rtt = std::chrono::steady_clock::now() - it->second.sent;
  const auto& path = s->second->quic().last_receive_path();
  const bool direct = !path::is_relay_local(path.local);
  it->second.reply(io::json_text(
      nlohmann::json{{"service", it->second.service},
                     {"connector", s->second->connector()},
                     {"path", direct ? "direct" : "relay"},
                     {"remote", path.remote.to_string()},
                     {"rtt_ms", std::chrono::duration<double, std::milli>(rtt).count()}}));
  pings_.erase(it);
}

void Agent::on_session_reject(const wire::SessionReject& m) {
  auto req = std::find_if(requests_.begin(), requests_.end(),
                          [&](auto& kv) { return kv.second.id == m.request_id; });
  if (req == requests_.end()) return;
  counters_.sessions_rejected++;
  spdlog::warn(
      "'{}': the intermediate refused a session: {} ({}); closing {} waiting connection(s)",
      req->first, m.reason, wire::to_string(m.code), req->second.connections.size());
  // Pings waiting for this service's session get the answer too, instead of asking again every
  // 20 ms until their 5 s are up.
  for (auto it = pings_.begin(); it != pings_.end();) {
    if (it->second.service != req->first || it->second.in_flight) {
      ++it;
      continue;
    }
    it->second.reply(
        io::json_text({{"error", "the intermediate refused a session for '" + req->first +
                                     "': " + m.reason + " (" + wire::to_string(m.code) + ")"}}));
    it->second.timer->cancel();
    it = pings_.erase(it);
  }
  requests_.erase(req); // closes the waiting sockets
}

void Agent::end_session(uint64_t id, const std::string& why, bool tell_intermediate) {
  auto it = sessions_.find(id);
  if (it == sessions_.end()) return;
  auto& q = it->second->quic();
  if (q.attached() && !q.conn().handshake_completed() && q.conn().refusal())
    refusals_.refused(*q.conn().refusal(), q.conn().path().remote,
                      "session " + fmt::format("{:016x}", id) + " (the connector's certificate)");
  spdlog::info("session {:016x} with connector '{}' for '{}' ended: {}", id,
               it->second->connector(), it->second->service(), why);
  if (auto m = session_of_service_.find(it->second->service());
      m != session_of_service_.end() && m->second == id)
    session_of_service_.erase(m);
  if (q.attached() && !q.conn().finished()) q.close(0, "session closed");
  if (tell_intermediate) send_home(wire::SessionClosed{id, wire::ErrorCode::SessionGone});
  sessions_.erase(it);
}

// Sessions outlive the control connection (DESIGN D10): a direct one carries on untouched, a
// relayed one waits for a relay (SessionResumed) or for its own idle timeout. Requests not
// answered yet wait too, their local connections held: they go to the next home as soon as it
// registers us, within the same kRequestTimeout.
void Agent::on_control_lost(const std::string& why) {
  size_t direct = 0;
  for (auto& [id, s] : sessions_) {
    s->liveness().set_relay(session::RelayState::Unbound, io::now());
    direct += io::on_direct_path(s->quic());
  }
  if (!sessions_.empty())
    spdlog::warn("control connection lost ({}): {} session(s) carry on, {} of them on a direct "
                 "path; the others wait for the relay",
                 why, sessions_.size(), direct);
  for (auto& [service, r] : requests_)
    spdlog::warn("'{}': control connection lost ({}): {} connection(s) wait for the next "
                 "intermediate",
                 service, why, r.connections.size());
}

// Registered again: every live session is announced, so that the intermediate (the same one
// restarted, or another) re-authorizes it and binds its relay (docs/protocol.md §6.2). A session
// whose handshake had not completed cannot be resumed: it ends.
void Agent::on_control_connected(size_t i) {
  // A new home may see us at another address (a NAT that maps per destination).
  update_candidates();
  nat_check_.refresh(control_);
  std::vector<uint64_t> unfinished;
  for (auto& [id, s] : sessions_) {
    if (!s->established()) {
      unfinished.push_back(id);
      continue;
    }
    control_.send(i, wire::ResumeSession{id, s->connector(), s->service()});
  }
  for (auto id : unfinished)
    end_session(id, "the control connection was lost during its handshake", false);
  if (!sessions_.empty())
    spdlog::info("control: announced {} live session(s) to the intermediate", sessions_.size());
  // Requests the last connection took and never answered: asked again here (a new id, so that
  // a late answer to the old one is not taken for this one).
  for (auto& [service, r] : requests_) {
    r.id = next_request_id_++;
    r.offer = make_offer(); // our reflexive address as the new home sees it
    control_.send(i, wire::OpenSession{r.id, service, r.offer});
    spdlog::info("'{}': asking the new intermediate for the session ({} connection(s) waiting)",
                 service, r.connections.size());
  }
}

void Agent::on_session_resumed(size_t i, const wire::SessionResumed& m) {
  auto it = sessions_.find(m.session_id);
  if (it == sessions_.end()) return;
  auto& s = *it->second;
  s.liveness().set_relay(session::RelayState::Bound, io::now());
  if (io::on_direct_path(s.quic())) {
    spdlog::info("session {:016x}: relay bound again (the session stays on its direct path)",
                 s.id());
    return;
  }
  spdlog::info("session {:016x}: relay bound again; moving the session onto it", s.id());
  s.paths().move_to_relay(control_.address(i));
}

void Agent::sweep() {
  auto now = std::chrono::steady_clock::now();
  // A dead connector is noticed within seconds, not at the 30 s idle timeout (DESIGN D10).
  std::vector<std::pair<uint64_t, std::string>> dead;
  bool probe = false;
  const auto home = control_.home();
  const quic::Timestamp home_heard = home ? control_.last_received(*home) : 0;
  for (auto& [id, s] : sessions_) {
    auto w = io::watch_session(s->liveness(), s->quic(), s->busy(), home_heard);
    if (w.dead) dead.emplace_back(id, *w.dead);
    probe = probe || w.probe_relay;
  }
  // A request waiting for its answer needs the intermediate as much as a silent relayed
  // session does: a dead home is noticed within a second, not at the idle timeout.
  probe = probe || !requests_.empty();
  if (home) control_.set_probing(*home, probe);
  for (auto& [id, why] : dead)
    end_session(id, "connector unreachable: " + why, true);
  for (auto it = requests_.begin(); it != requests_.end();) {
    if (now - it->second.sent > kRequestTimeout) {
      counters_.connections_timed_out += it->second.connections.size();
      spdlog::warn("'{}': no answer from the intermediate in {} s; closing {} connection(s)",
                   it->first, kRequestTimeout.count(), it->second.connections.size());
      it = requests_.erase(it);
    } else {
      ++it;
    }
  }
  for (auto it = flows_.begin(); it != flows_.end();) {
    if (now - it->second.last_used > kUdpFlowIdle) {
      flow_of_client_.erase({it->second.listener, it->second.client.to_string()});
      it = flows_.erase(it);
    } else {
      ++it;
    }
  }
  // A new interface (or a lost one) changes our host candidates: look every 5 s.
  if (++sweeps_ % 20 == 0) update_candidates();
  sweep_timer_.expires_after(std::chrono::milliseconds(250));
  sweep_timer_.async_wait([this](boost::system::error_code ec) {
    if (!ec) sweep();
  });
}

void Agent::reload() {
  reloads_++;
  try {
    tls_ = std::make_shared<quic::TlsIdentity>(options_.tls, Role::Agent);
    spdlog::info("reload: identity: {}", tls_->summary());
  } catch (const std::exception& e) {
    reload_failures_++;
    spdlog::error("reload: keeping the old certificates and CRL: {}", e.what());
    return;
  }
  control_.set_tls(tls_);
  std::vector<uint64_t> revoked;
  for (auto& [id, s] : sessions_) {
    const auto& q = s->quic();
    if (q.attached() && q.conn().peer_identity() && tls_->is_revoked(*q.conn().peer_identity()))
      revoked.push_back(id);
  }
  for (auto id : revoked) {
    refusals_.refused({quic::Refusal::Revoked, "certificate revoked (listed in the reloaded CRL)"},
                      sessions_[id]->quic().conn().path().remote,
                      "live session " + fmt::format("{:016x}", id));
    end_session(id, "the connector's certificate was revoked", true);
  }
}

void Agent::shutdown() {
  for (auto& l : listeners_)
    l->stop();
  for (auto& [id, s] : sessions_)
    if (s->quic().attached()) s->quic().close(0, "agent shutting down");
  control_.stop();
  sweep_timer_.cancel();
  endpoint_.stop();
}

nlohmann::json Agent::status() const {
  nlohmann::json j;
  j["name"] = tls_->name();
  j["listen"] = endpoint_.socket().local().to_string();
  j["control"] = control_.status();
  j["nat"] = nat_check_.status();
  j["crl"] = {{"file", tls_->files().crl}, {"revoked", tls_->revoked_count()}};
  j["exposes"] = nlohmann::json::array();
  for (auto& l : listeners_) {
    nlohmann::json e{{"name", l->spec().name},
                     {"proto", l->spec().proto_name()},
                     {"listen", l->spec().endpoint()}};
    if (l->spec().proto == ServiceSpec::Proto::Udp)
      e["max_datagram"] = max_udp_payload(l->spec().name);
    j["exposes"].push_back(std::move(e));
  }
  j["sessions"] = nlohmann::json::array();
  for (auto& [id, s] : sessions_) {
    const auto* paths = s->paths().manager();
    const bool direct = paths && paths->active() == ice::ActivePath::Direct;
    nlohmann::json js{{"session_id", fmt::format("{:016x}", id)},
                      {"connector", s->connector()},
                      {"service", s->service()},
                      {"services", nlohmann::json::array({s->service()})},
                      {"path", direct ? "direct" : "relay"},
                      {"state", s->established() ? "established" : "handshaking"},
                      {"relay", session::to_string(s->liveness().relay())},
                      {"silent_ms", s->liveness().silent_for(io::now()) / 1'000'000},
                      {"open_streams", s->open_streams()}};
    if (s->quic().attached()) {
      auto st = s->quic().conn().stats();
      js["rtt_ms"] = st.smoothed_rtt_ms;
      js["bytes_sent"] = st.stream_bytes_sent;
      js["bytes_received"] = st.stream_bytes_received;
      js["datagrams_sent"] = st.datagrams_sent;
      js["datagrams_received"] = st.datagrams_received;
      js["rtt_ms_by_path"]["relay"] = s->paths().relay_rtt_ms();
      if (direct) js["rtt_ms_by_path"]["direct"] = st.smoothed_rtt_ms;
    }
    if (paths) {
      js["paths"] = io::path_status(*paths);
      if (!direct && paths->direct_rtt())
        js["rtt_ms_by_path"]["direct"] = js["paths"]["direct_check_rtt_ms"];
    } else {
      js["paths"] = {{"active", "relay"}, {"phase", "relay only (--relay-only)"}};
    }
    j["sessions"].push_back(js);
  }
  j["handshake_refusals"] = refusals_.json();
  j["counters"] = {{"sessions_opened", counters_.sessions_opened},
                   {"reloads", reloads_},
                   {"reload_failures", reload_failures_},
                   {"tls_handshake_failures", refusals_.counters().total()},
                   {"sessions_rejected", counters_.sessions_rejected},
                   {"connections_refused_offline", counters_.connections_refused_offline},
                   {"connections_timed_out", counters_.connections_timed_out},
                   {"udp_datagrams_dropped", counters_.udp_datagrams_dropped},
                   {"udp_datagrams_too_large", counters_.udp_datagrams_too_large},
                   {"datagrams_malformed", counters_.datagrams_malformed},
                   {"junk_datagrams", endpoint_.counters().junk_datagrams},
                   {"stun_malformed", stun_counters_.malformed},
                   {"stun_unauthenticated", stun_counters_.unauthenticated},
                   {"stun_unmatched", stun_counters_.unmatched},
                   {"control_connects", control_.connects()}};
  return j;
}

} // namespace ztna
