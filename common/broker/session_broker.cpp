#include "broker/session_broker.hpp"

#include "auth/authorization.hpp"

#include <algorithm>
#include <cstdio>

namespace ztna::broker {

namespace {

constexpr Timestamp kMs = 1'000'000;

std::string hex16(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

std::optional<Role> role_of(wire::Role r) {
  switch (r) {
  case wire::Role::Agent:
    return Role::Agent;
  case wire::Role::Connector:
    return Role::Connector;
  }
  return std::nullopt;
}

Timestamp ms(std::chrono::milliseconds d) {
  return static_cast<Timestamp>(d.count()) * kMs;
}

} // namespace

SessionBroker::SessionBroker(BrokerConfig config, policy::PolicyPtr policy)
    : config_(std::move(config)), policy_(std::move(policy)),
      relay_(config_.relay_per_session, config_.relay_per_identity) {}

SessionBroker::Peer* SessionBroker::find(PeerId id) {
  auto it = peers_.find(id);
  return it == peers_.end() ? nullptr : &it->second;
}

policy::Principal SessionBroker::principal(const Peer& p) {
  return {p.identity.name, p.identity.groups};
}

SessionBroker::Session SessionBroker::new_session(uint64_t id, const std::string& service,
                                                  Now now) const {
  return Session{id,
                 0,
                 0,
                 {},
                 {},
                 0,
                 false,
                 service,
                 now.mono,
                 0,
                 RateLimiter(config_.candidates_per_second, config_.candidates_burst),
                 RateLimiter(config_.candidates_per_second, config_.candidates_burst)};
}

uint64_t SessionBroker::new_session_id() {
  // Unpredictable (a guessed id is worth nothing without the relay binding and the
  // authorization, but it must not be guessable either), never 0, never one in use.
  for (;;) {
    uint64_t v = 0;
    config_.random({reinterpret_cast<uint8_t*>(&v), sizeof v});
    if (v != 0 && !sessions_.count(v)) return v;
  }
}

void SessionBroker::send(PeerId to, wire::ControlMessage m) {
  actions_.emplace_back(std::in_place_type<Send>, Send{to, std::move(m)});
}

void SessionBroker::log(LogLevel level, std::string line) {
  actions_.emplace_back(std::in_place_type<Log>, Log{level, std::move(line)});
}

std::vector<Action> SessionBroker::take_actions() {
  std::vector<Action> out;
  out.swap(actions_);
  return out;
}

void SessionBroker::on_authenticated(PeerId id, Identity identity, const Address& address,
                                     Now now) {
  Peer p{id,      std::move(identity),
         address, now.mono,
         false,   {},
         {},      RateLimiter(config_.messages_per_second, config_.message_burst),
         0};
  peers_.insert_or_assign(id, std::move(p));
}

void SessionBroker::on_message(PeerId id, const wire::ControlMessage& m, Now now) {
  Peer* peer = find(id);
  if (!peer) return;
  if (!peer->messages.allow(now.mono)) {
    // Over its rate: dropped and counted. A request still gets an answer, so that a well-meaning
    // but busy agent fails fast instead of waiting for a reply that never comes.
    if (counters_.control_rate_limited++ % 100 == 0)
      log(LogLevel::Warn, peer->identity.describe() + " sends control messages faster than " +
                              std::to_string(static_cast<int>(config_.messages_per_second)) +
                              "/s; dropping the excess (control_rate_limited)");
    if (auto* open = std::get_if<wire::OpenSession>(&m); open && peer->registered)
      reject(*peer, open->request_id, wire::ErrorCode::Limited, "rate limited");
    return;
  }
  if (auto* hello = std::get_if<wire::Hello>(&m)) return on_hello(*peer, *hello, now);
  if (std::holds_alternative<wire::Heartbeat>(m)) return; // its QUIC ACK is the answer
  if (!peer->registered) {
    counters_.control_messages_unexpected++;
    send(id, wire::ErrorMessage{wire::ErrorCode::NotAuthorized, "send Hello first"});
    return;
  }
  const bool agent = peer->identity.role == Role::Agent;
  if (auto* open = std::get_if<wire::OpenSession>(&m); open && agent)
    return on_open_session(*peer, *open, now);
  if (auto* acc = std::get_if<wire::SessionAccept>(&m); acc && !agent)
    return on_session_accept(*peer, *acc, now);
  if (auto* closed = std::get_if<wire::SessionClosed>(&m)) return on_session_closed(*peer, *closed);
  if (auto* cands = std::get_if<wire::Candidates>(&m)) return on_candidates(*peer, *cands, now);
  if (auto* resume = std::get_if<wire::ResumeSession>(&m)) return on_resume(*peer, *resume, now);
  counters_.control_messages_unexpected++;
  log(LogLevel::Warn,
      peer->identity.describe() + ": unexpected " + wire::message_name(m) + " message, ignored");
}

void SessionBroker::on_hello(Peer& peer, const wire::Hello& m, Now) {
  if (peer.registered) {
    counters_.control_messages_unexpected++;
    return;
  }
  // The certificate says the role (docs/security.md); Hello must agree with it.
  if (role_of(m.role) != peer.identity.role) {
    counters_.hello_role_mismatch++;
    const std::string why = "certificate is for " + peer.identity.describe() +
                            ", but its Hello registers " +
                            (role_of(m.role) ? with_article(*role_of(m.role)) : "an unknown role");
    log(LogLevel::Warn, "refused registration from " + peer.address.to_string() + ": " + why);
    actions_.push_back(Disconnect{peer.id, wire::ErrorCode::NotAuthorized, why});
    return;
  }
  // One live registration per identity: a reconnecting daemon replaces its old connection at
  // once instead of waiting for it to time out. The agent 'x' and the connector 'x' are two
  // identities (the role is part of the name).
  for (auto& [id, other] : peers_) {
    if (id == peer.id || !other.registered || other.identity.role != peer.identity.role ||
        other.identity.name != peer.identity.name)
      continue;
    counters_.peers_replaced++;
    log(LogLevel::Info, peer.identity.describe() + " registered again from " +
                            peer.address.to_string() + "; closing its old connection from " +
                            other.address.to_string());
    actions_.push_back(Disconnect{id, wire::ErrorCode::Replaced,
                                  "replaced by a connection with the same identity from " +
                                      peer.address.to_string()});
  }
  peer.registered = true;
  std::string serving;
  if (peer.identity.role == Role::Connector) {
    peer.announced = m.services;
    register_services(peer, false);
    for (const auto& s : peer.served)
      serving += (serving.empty() ? " serving " : ", ") + s;
  }
  log(LogLevel::Info,
      peer.identity.describe() + " registered from " + peer.address.to_string() + serving);
  send(peer.id, wire::ObservedAddress{peer.address});
  homed(peer);
}

void SessionBroker::homed(const Peer& peer) {
  actions_.push_back(Homed{peer.identity.role,
                           peer.identity.name,
                           peer.address,
                           {peer.served.begin(), peer.served.end()}});
}

// Which of a connector's announced services policy lets it serve. Called on Hello and again for
// every new policy; services no longer allowed leave the directory, and so do their sessions.
void SessionBroker::register_services(Peer& connector, bool policy_changed) {
  std::set<std::string> allowed;
  for (const auto& s : connector.announced) {
    auto d = policy_->may_serve(principal(connector), s);
    if (d.allowed) {
      allowed.insert(s);
      continue;
    }
    // Said once per registration or policy change, never per request.
    counters_.services_refused++;
    log(LogLevel::Warn, connector.identity.describe() + " may not serve '" + s +
                            "'; not registered for it: " + d.explain());
    send(connector.id,
         wire::ErrorMessage{wire::ErrorCode::NotAuthorized, "not allowed to serve '" + s + "'"});
  }
  for (const auto& s : connector.served)
    if (!allowed.count(s))
      log(LogLevel::Info, connector.identity.describe() + " no longer serves '" + s + "'");
  // On a new policy only: the Hello's own log line lists what a registration serves.
  if (policy_changed)
    for (const auto& s : allowed)
      if (!connector.served.count(s))
        log(LogLevel::Info, connector.identity.describe() + " now serves '" + s + "'");
  connector.served = std::move(allowed);
  directory_.remove(connector.id);
  directory_.add(connector.id, {connector.served.begin(), connector.served.end()});
}

void SessionBroker::reject(Peer& agent, uint32_t request_id, wire::ErrorCode code,
                           const std::string& reason) {
  send(agent.id, wire::SessionReject{request_id, code, reason});
}

void SessionBroker::on_open_session(Peer& agent, const wire::OpenSession& m, Now now) {
  auto decision = policy_->may_access(principal(agent), m.service);
  if (!decision.allowed) {
    counters_.sessions_denied++;
    log(LogLevel::Warn, "session request from " + agent.identity.describe() + " for '" + m.service +
                            "' denied: " + decision.explain());
    return reject(agent, m.request_id, wire::ErrorCode::NotAuthorized,
                  "not authorized to reach '" + m.service + "'");
  }
  size_t pending = 0, open = 0;
  for (const auto& [id, s] : sessions_) {
    if (s.agent != agent.id) continue;
    open++;
    pending += !s.accepted;
  }
  if (pending >= config_.max_pending_per_agent || open >= config_.max_sessions_per_agent) {
    counters_.requests_over_limit++;
    log(LogLevel::Warn, agent.identity.describe() + ": session request for '" + m.service +
                            "' refused: " + std::to_string(pending) + " pending and " +
                            std::to_string(open) + " open sessions (limits " +
                            std::to_string(config_.max_pending_per_agent) + " and " +
                            std::to_string(config_.max_sessions_per_agent) + ")");
    return reject(agent, m.request_id, wire::ErrorCode::Limited, "too many sessions");
  }
  auto load = [&](ServiceDirectory::ConnectorId c) {
    const Peer* p = find(c);
    return p ? p->sessions : 0;
  };
  auto pick = directory_.pick(m.service, load, [](ServiceDirectory::ConnectorId) { return false; });
  Peer* connector = pick ? find(*pick) : nullptr;
  // Relay frames are told apart by their sender's address: the two ends must differ.
  if (!connector || connector->address == agent.address) {
    counters_.sessions_rejected++;
    const std::string reason = "no connector serves '" + m.service + "'";
    log(LogLevel::Warn,
        "session request from " + agent.identity.describe() + " rejected: " + reason);
    return reject(agent, m.request_id, wire::ErrorCode::NoConnector, reason);
  }
  Session s = new_session(new_session_id(), m.service, now);
  s.agent = agent.id;
  s.connector = connector->id;
  s.agent_name = agent.identity.name;
  s.connector_name = connector->identity.name;
  s.request_id = m.request_id;
  agent.sessions++;
  connector->sessions++;
  log(LogLevel::Info, "session " + hex16(s.id) + ": " + agent.identity.describe() + " wants '" +
                          m.service + "' (" + decision.explain() + "); offering to " +
                          connector->identity.describe());
  send(connector->id, wire::SessionOffer{s.id, agent.identity.name, m.service, agent.address});
  const uint64_t id = s.id;
  auto& session = sessions_.emplace(id, std::move(s)).first->second;
  // Version 4: the agent's round-1 candidates came with its request. The connector gets them
  // right behind the offer and answers with its own behind its accept, so that both ends can
  // start checking as soon as the agent hears the session is ready (docs/protocol.md §6.1).
  if (m.candidates && session.agent_candidates.allow(now.mono)) {
    wire::Candidates c = *m.candidates;
    c.session_id = id;
    counters_.candidates_forwarded++;
    send(connector->id, c);
    checks_.on_candidates(id, CheckCoordinator::End::Agent, c.generation);
  }
}

void SessionBroker::on_session_accept(Peer& connector, const wire::SessionAccept& m, Now now) {
  auto it = sessions_.find(m.session_id);
  if (it == sessions_.end() || it->second.connector != connector.id || it->second.accepted) {
    counters_.control_messages_unexpected++;
    return;
  }
  auto& s = it->second;
  Peer* agent = find(s.agent);
  if (!agent) return end_session(s.id, wire::ErrorCode::SessionGone, "agent gone", 0);
  auth::Authorization a;
  a.session_id = s.id;
  a.agent = agent->identity.name;
  a.agent_cert_sha256 = agent->identity.cert_sha256;
  a.service = s.service;
  a.connector = connector.identity.name;
  a.issuer = config_.name;
  a.issued_at_ms = now.unix_ms;
  a.expires_at_ms = now.unix_ms + static_cast<uint64_t>(config_.authorization_lifetime.count());
  auto token = config_.signer->issue(a);
  s.accepted = true;
  counters_.sessions_opened++;
  relay_.bind(s.id, agent->address, "agent/" + agent->identity.name, connector.address,
              "connector/" + connector.identity.name);
  log(LogLevel::Info, "session " + hex16(s.id) + ": relay open between " +
                          agent->identity.describe() + " (" + agent->address.to_string() +
                          ") and " + connector.identity.describe() + " (" +
                          connector.address.to_string() + ")");
  send(agent->id, wire::SessionReady{s.request_id, s.id, connector.identity.name, connector.address,
                                     std::move(token)});
}

void SessionBroker::on_session_closed(Peer& peer, const wire::SessionClosed& m) {
  auto it = sessions_.find(m.session_id);
  if (it == sessions_.end() || (it->second.agent != peer.id && it->second.connector != peer.id))
    return;
  const bool refused = !it->second.accepted && it->second.connector == peer.id;
  if (refused) counters_.sessions_rejected++;
  const std::string why =
      refused ? std::string("connector refused the session: ") + wire::to_string(m.code)
              : std::string("closed by ") + peer.identity.describe() + " (" +
                    wire::to_string(m.code) + ")";
  log(refused ? LogLevel::Warn : LogLevel::Info, "session " + hex16(m.session_id) + ": " + why);
  end_session(m.session_id, m.code, why, peer.id);
}

// Signaling for hole punching (DESIGN D4): only the session's two ends may exchange candidates,
// only once the session is accepted, and each end at a bounded rate. When both ends'
// candidates of a round are in, both get StartChecks at once (simultaneous open).
void SessionBroker::on_candidates(Peer& peer, const wire::Candidates& m, Now now) {
  auto it = sessions_.find(m.session_id);
  const bool is_end =
      it != sessions_.end() && (it->second.agent == peer.id || it->second.connector == peer.id);
  if (!is_end || !it->second.accepted || it->second.waiting()) {
    counters_.candidates_unauthorized++;
    log(LogLevel::Warn, peer.identity.describe() + ": candidates for session " +
                            hex16(m.session_id) + ", which it is not part of; dropped");
    return;
  }
  auto& s = it->second;
  const bool from_agent = s.agent == peer.id;
  if (!(from_agent ? s.agent_candidates : s.connector_candidates).allow(now.mono)) {
    counters_.candidates_rate_limited++;
    return;
  }
  Peer* other = find(from_agent ? s.connector : s.agent);
  if (!other) return;
  counters_.candidates_forwarded++;
  send(other->id, m);
  const auto end = from_agent ? CheckCoordinator::End::Agent : CheckCoordinator::End::Connector;
  if (checks_.on_candidates(s.id, end, m.generation)) {
    counters_.check_rounds_started++;
    send(peer.id, wire::StartChecks{s.id, m.generation});
    send(other->id, wire::StartChecks{s.id, m.generation});
  }
}

// Ends a session: both ends are told, except `notify_not` (the one that told us). An agent
// still waiting gets its request rejected with `why`.
void SessionBroker::end_session(uint64_t id, wire::ErrorCode code, const std::string& why,
                                PeerId notify_not) {
  auto it = sessions_.find(id);
  if (it == sessions_.end()) return;
  Session s = std::move(it->second);
  sessions_.erase(it);
  relay_.unbind(id);
  checks_.forget(id);
  if (Peer* agent = find(s.agent)) {
    agent->sessions--;
    if (s.agent != notify_not) {
      if (s.accepted)
        send(agent->id, wire::SessionClosed{id, code});
      else
        reject(*agent, s.request_id, code, why);
    }
  }
  if (Peer* connector = find(s.connector)) {
    connector->sessions--;
    if (s.connector != notify_not) send(connector->id, wire::SessionClosed{id, code});
  }
}

void SessionBroker::on_address_change(PeerId id, const Address& now_seen) {
  Peer* peer = find(id);
  if (!peer || peer->address == now_seen) return;
  log(LogLevel::Info, peer->identity.describe() + " moved from " + peer->address.to_string() +
                          " to " + now_seen.to_string());
  relay_.rebind(peer->address, now_seen);
  peer->address = now_seen;
  if (peer->registered) {
    send(id, wire::ObservedAddress{now_seen});
    homed(*peer);
  }
}

void SessionBroker::on_disconnected(PeerId id, Now now) {
  Peer* peer = find(id);
  if (!peer) return;
  std::vector<uint64_t> ended, gone;
  for (auto& [sid, s] : sessions_) {
    if (s.agent != id && s.connector != id) continue;
    if (!s.accepted) {
      ended.push_back(sid);
      continue;
    }
    // A live session outlives a control connection (DESIGN D10): it waits for this end.
    (s.agent == id ? s.agent : s.connector) = 0;
    relay_.unbind(sid);
    checks_.forget(sid);
    if (s.agent == 0 && s.connector == 0) {
      gone.push_back(sid);
      continue;
    }
    if (s.orphaned_at == kNever) {
      counters_.sessions_orphaned++;
      s.orphaned_at = now.mono;
    }
    const PeerId other = s.agent ? s.agent : s.connector;
    log(LogLevel::Info, "session " + hex16(sid) + ": " + peer->identity.describe() +
                            " lost its control connection; relay unbound, waiting up to " +
                            std::to_string(config_.resume_timeout.count()) +
                            " ms for it to come back");
    send(other, wire::PeerLost{sid});
  }
  for (auto sid : ended)
    end_session(sid, wire::ErrorCode::SessionGone, "the other end disconnected", id);
  for (auto sid : gone)
    sessions_.erase(sid);
  directory_.remove(id);
  // Its home record goes, unless a newer connection of the same identity replaced this one.
  const bool replaced = std::any_of(peers_.begin(), peers_.end(), [&](const auto& p) {
    return p.first != id && p.second.registered && p.second.identity.role == peer->identity.role &&
           p.second.identity.name == peer->identity.name;
  });
  if (peer->registered && !replaced)
    actions_.push_back(Unhomed{peer->identity.role, peer->identity.name});
  peers_.erase(id);
}

std::string SessionBroker::denial(const Peer* agent, const Peer* connector,
                                  const std::string& service, const char* may) const {
  if (connector && !connector->served.count(service))
    return connector->identity.describe() + " " + may + " serve '" + service + "'";
  if (agent) {
    auto d = policy_->may_access(principal(*agent), service);
    if (!d.allowed)
      return agent->identity.describe() + " " + may + " reach '" + service + "': " + d.explain();
  }
  return {};
}

// An end announces a session it still holds (DESIGN D10, docs/protocol.md §4.4). Nothing is
// taken on trust: the claim must name this peer's own identity in its role, agree with what the
// other end claimed (or with the session we already know), and pass policy now; the relay is
// bound only once both ends have made matching claims from their authenticated addresses.
void SessionBroker::on_resume(Peer& peer, const wire::ResumeSession& m, Now now) {
  const bool agent = peer.identity.role == Role::Agent;
  auto refuse = [&](const std::string& why) {
    counters_.resumes_refused++;
    log(LogLevel::Warn,
        peer.identity.describe() + ": cannot resume session " + hex16(m.session_id) + ": " + why);
    send(peer.id, wire::SessionClosed{m.session_id, wire::ErrorCode::SessionGone});
  };
  auto it = sessions_.find(m.session_id);
  if (it != sessions_.end()) {
    const Session& s = it->second;
    const std::string& own_name = agent ? s.agent_name : s.connector_name;
    const std::string& other_name = agent ? s.connector_name : s.agent_name;
    if (!s.accepted || s.service != m.service || own_name != peer.identity.name ||
        other_name != m.peer)
      return refuse("it does not match the session the intermediate knows");
  }
  if (auto why = denial(agent ? &peer : nullptr, agent ? nullptr : &peer, m.service);
      !why.empty()) {
    counters_.resumes_denied++;
    log(LogLevel::Warn, "session " + hex16(m.session_id) + " not resumed: " + why);
    send(peer.id, wire::SessionClosed{m.session_id, wire::ErrorCode::NotAuthorized});
    // The other end, if it is waiting for this one, hears it too.
    if (it != sessions_.end())
      end_session(m.session_id, wire::ErrorCode::NotAuthorized, "the policy no longer allows it",
                  peer.id);
    return;
  }
  if (it == sessions_.end()) {
    size_t unmatched = 0;
    for (const auto& [sid, s] : sessions_)
      unmatched += s.waiting() && (s.agent == peer.id || s.connector == peer.id);
    if (unmatched >= config_.max_unmatched_resumes)
      return refuse("already " + std::to_string(unmatched) +
                    " sessions waiting for their other end");
    if (agent && peer.sessions >= config_.max_sessions_per_agent)
      return refuse("already " + std::to_string(peer.sessions) + " sessions (limit " +
                    std::to_string(config_.max_sessions_per_agent) + ")");
    Session s = new_session(m.session_id, m.service, now);
    s.accepted = true;
    s.orphaned_at = now.mono;
    (agent ? s.agent_name : s.connector_name) = peer.identity.name;
    (agent ? s.connector_name : s.agent_name) = m.peer;
    (agent ? s.agent : s.connector) = peer.id;
    peer.sessions++;
    log(LogLevel::Info, "session " + hex16(m.session_id) + ": " + peer.identity.describe() +
                            " resumes it with " + (agent ? "connector '" : "agent '") + m.peer +
                            "' for '" + m.service + "'; waiting for the other end");
    ask_other_end(sessions_.emplace(m.session_id, std::move(s)).first->second);
    return;
  }
  Session& s = it->second;
  PeerId& slot = agent ? s.agent : s.connector;
  if (slot == peer.id) { // said twice: the answer again
    if (!s.waiting()) send(peer.id, wire::SessionResumed{s.id});
    return;
  }
  if (Peer* old = find(slot)) {
    // The same identity from a new connection, before the old one is reported gone (a replaced
    // registration): the session moves to the new one.
    old->sessions--;
    relay_.unbind(s.id);
  }
  slot = peer.id;
  peer.sessions++;
  if (!s.waiting()) return rejoin(s);
  ask_other_end(s);
}

// A session claimed by one end only: if the other end is registered here, ask it (the same
// ResumeSession, from us) whether it still holds the session. An agent that moved to this
// intermediate finds its connector here (connectors register with every intermediate, DESIGN
// D11), and the connector has no other way to learn where the agent went.
void SessionBroker::ask_other_end(const Session& s) {
  const bool need_connector = s.connector == 0;
  const std::string& name = need_connector ? s.connector_name : s.agent_name;
  const Role role = need_connector ? Role::Connector : Role::Agent;
  for (const auto& [id, p] : peers_) {
    if (!p.registered || p.identity.role != role || p.identity.name != name) continue;
    send(id,
         wire::ResumeSession{s.id, need_connector ? s.agent_name : s.connector_name, s.service});
    return;
  }
}

void SessionBroker::rejoin(Session& s) {
  Peer* agent = find(s.agent);
  Peer* connector = find(s.connector);
  if (!agent || !connector) return;
  if (auto why = denial(agent, connector, s.service); !why.empty()) {
    counters_.resumes_denied++;
    log(LogLevel::Warn, "session " + hex16(s.id) + " not resumed: " + why);
    return end_session(s.id, wire::ErrorCode::NotAuthorized, "the policy no longer allows it", 0);
  }
  s.orphaned_at = kNever;
  counters_.sessions_resumed++;
  relay_.bind(s.id, agent->address, "agent/" + agent->identity.name, connector->address,
              "connector/" + connector->identity.name);
  log(LogLevel::Info, "session " + hex16(s.id) + " resumed: relay bound again between " +
                          agent->identity.describe() + " (" + agent->address.to_string() +
                          ") and " + connector->identity.describe() + " (" +
                          connector->address.to_string() + ")");
  send(agent->id, wire::SessionResumed{s.id});
  send(connector->id, wire::SessionResumed{s.id});
}

void SessionBroker::set_policy(policy::PolicyPtr policy, Now) {
  policy_ = std::move(policy);
  for (auto& [id, p] : peers_)
    if (p.registered && p.identity.role == Role::Connector) {
      register_services(p, true);
      homed(p);
    }
  std::vector<std::pair<uint64_t, std::string>> revoke;
  for (const auto& [id, s] : sessions_) {
    // A waiting session is judged by the end that is here, and again when the other returns.
    if (auto why = denial(find(s.agent), find(s.connector), s.service, "may no longer");
        !why.empty())
      revoke.emplace_back(id, why);
  }
  for (auto& [id, why] : revoke) {
    counters_.sessions_closed_by_policy++;
    log(LogLevel::Warn, "session " + hex16(id) + " closed by the new policy: " + why);
    end_session(id, wire::ErrorCode::NotAuthorized, "the policy no longer allows it", 0);
  }
}

std::optional<Address> SessionBroker::on_relay(uint64_t session_id, const Address& from,
                                               size_t bytes, Timestamp now) {
  Address to;
  switch (relay_.route(session_id, from, bytes, now, to)) {
  case RelayTable::Verdict::Forward:
    break;
  case RelayTable::Verdict::NotAnEnd:
    counters_.relay_frames_unauthorized++;
    return std::nullopt;
  case RelayTable::Verdict::SessionQuota:
    // Said once per 10 000 drops: a quota that bites drops many frames in a row.
    if (counters_.relay_frames_over_quota++ % 10000 == 0)
      log(LogLevel::Warn, "session " + hex16(session_id) +
                              ": relay quota spent, dropping frames (relay_frames_over_quota)");
    return std::nullopt;
  case RelayTable::Verdict::IdentityQuota:
    if (counters_.relay_frames_over_identity_quota++ % 10000 == 0)
      log(LogLevel::Warn, "session " + hex16(session_id) + ": the sender's identity relay quota " +
                              "(all its sessions together) spent, dropping frames " +
                              "(relay_frames_over_identity_quota)");
    return std::nullopt;
  }
  counters_.relay_frames_forwarded++;
  counters_.relay_bytes_forwarded += bytes;
  if (auto it = sessions_.find(session_id); it != sessions_.end())
    it->second.relayed_bytes += bytes;
  return to;
}

void SessionBroker::handle_timeout(Now now) {
  std::vector<uint64_t> expired;
  for (const auto& [id, s] : sessions_)
    if (!s.accepted && now.mono >= s.offered_at + ms(config_.offer_timeout)) expired.push_back(id);
  std::vector<uint64_t> abandoned;
  for (const auto& [id, s] : sessions_)
    if (s.waiting() && now.mono >= s.orphaned_at + ms(config_.resume_timeout))
      abandoned.push_back(id);
  for (auto id : abandoned) {
    counters_.resumes_expired++;
    log(LogLevel::Warn, "session " + hex16(id) + ": the other end did not come back within " +
                            std::to_string(config_.resume_timeout.count()) + " ms; closing it");
    end_session(id, wire::ErrorCode::SessionGone, "the other end did not come back", 0);
  }
  for (auto id : expired) {
    counters_.sessions_rejected++;
    log(LogLevel::Warn, "session " + hex16(id) + ": the connector did not accept within " +
                            std::to_string(config_.offer_timeout.count()) + " ms");
    end_session(id, wire::ErrorCode::SessionGone, "connector did not accept the session", 0);
  }
  for (auto& [id, p] : peers_) {
    if (p.registered || now.mono < p.authenticated_at + ms(config_.hello_timeout)) continue;
    // Disconnect once: the daemon reports on_disconnected when the connection is gone.
    p.authenticated_at = kNever - ms(config_.hello_timeout);
    counters_.peers_unregistered++;
    log(LogLevel::Warn, p.identity.describe() + " at " + p.address.to_string() +
                            " authenticated but sent no Hello within " +
                            std::to_string(config_.hello_timeout.count()) + " ms; closing");
    actions_.push_back(Disconnect{id, wire::ErrorCode::NotAuthorized, "no Hello in time"});
  }
}

Timestamp SessionBroker::next_timeout() const {
  Timestamp next = kNever;
  for (const auto& [id, s] : sessions_) {
    if (!s.accepted) next = std::min(next, s.offered_at + ms(config_.offer_timeout));
    if (s.waiting()) next = std::min(next, s.orphaned_at + ms(config_.resume_timeout));
  }
  for (const auto& [id, p] : peers_)
    if (!p.registered && p.authenticated_at < kNever - ms(config_.hello_timeout))
      next = std::min(next, p.authenticated_at + ms(config_.hello_timeout));
  return next;
}

std::vector<SessionBroker::PeerView> SessionBroker::peers() const {
  std::vector<PeerView> out;
  for (const auto& [id, p] : peers_)
    out.push_back(
        PeerView{id, &p.identity, p.address, p.registered, {p.served.begin(), p.served.end()}});
  std::sort(out.begin(), out.end(), [](auto& a, auto& b) { return a.id < b.id; });
  return out;
}

std::vector<SessionBroker::SessionView> SessionBroker::sessions() const {
  std::vector<SessionView> out;
  for (const auto& [id, s] : sessions_)
    out.push_back(SessionView{id, s.agent_name, s.connector_name, s.service, s.accepted,
                              s.relayed_bytes,
                              !s.accepted   ? "offered"
                              : s.waiting() ? "waiting"
                                            : "relaying"});
  std::sort(out.begin(), out.end(), [](auto& a, auto& b) { return a.id < b.id; });
  return out;
}

} // namespace ztna::broker
