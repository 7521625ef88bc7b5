#include "session/session_gate.hpp"

#include "wire/datagram_frame.hpp"

#include <algorithm>
#include <cstdio>

namespace ztna::session {

namespace {
std::string hex16(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}
} // namespace

bool ReplayGuard::first_use(uint64_t session_id, uint64_t expires_at_ms, uint64_t now_ms) {
  // Expired entries go first: a token past its expiry is refused as expired anyway, so it need
  // not be remembered, and the set stays as small as the tokens alive.
  for (auto it = used_.begin(); it != used_.end();)
    it = it->second < now_ms ? used_.erase(it) : std::next(it);
  return used_.emplace(session_id, expires_at_ms).second;
}

std::vector<GateAction> SessionGate::take_actions() {
  std::vector<GateAction> out;
  out.swap(actions_);
  return out;
}

void SessionGate::refuse(std::string reason) {
  if (state_ == State::Refused) return;
  state_ = State::Refused;
  streams_.clear();
  queued_datagrams_.clear();
  act(CloseSession{wire::ErrorCode::NotAuthorized, std::move(reason)});
}

void SessionGate::on_stream_data(int64_t stream, std::span<const uint8_t> data, bool fin,
                                 uint64_t now_ms) {
  if (state_ == State::Refused) return;
  if (stream == wire::kAuthorizationStreamId) return on_authorization_stream(data, fin, now_ms);
  auto [it, fresh] = streams_.try_emplace(stream);
  auto& p = it->second;
  if (p.state != StreamState::Header) {
    // Waiting for the authorization or the backend: held, within the stream's flow-control
    // window (we do not extend it for these bytes until the backend takes them).
    p.early.insert(p.early.end(), data.begin(), data.end());
    p.fin = p.fin || fin;
    return;
  }
  size_t used = 0;
  auto state = p.header.feed(data, used);
  if (used) act(Consume{stream, used});
  if (state == wire::StreamHeaderDecoder::State::Malformed) {
    counters().streams_malformed++;
    act(ResetStream{stream, wire::StreamError::MalformedHeader, p.header.error()});
    streams_.erase(it);
    return;
  }
  if (state == wire::StreamHeaderDecoder::State::NeedMore) {
    if (fin) {
      counters().streams_malformed++;
      act(ResetStream{stream, wire::StreamError::MalformedHeader, "stream ended in its header"});
      streams_.erase(it);
    }
    return;
  }
  p.early.assign(data.begin() + static_cast<std::ptrdiff_t>(used), data.end());
  p.fin = fin;
  on_header(stream, p);
}

void SessionGate::on_header(int64_t stream, PendingStream& p) {
  const auto& name = p.header.service();
  // One session, one service: the authorization names it, and nothing else passes.
  if (name != config_.service) {
    counters().streams_wrong_service++;
    act(ResetStream{stream, wire::StreamError::NotAuthorized,
                    "stream names service '" + name + "', but the session is for '" +
                        config_.service + "'"});
    streams_.erase(stream);
    return;
  }
  auto svc = config_.services->find(name);
  if (svc == config_.services->end() || svc->second.proto != ServiceSpec::Proto::Tcp) {
    counters().unknown_service++;
    act(ResetStream{stream, wire::StreamError::UnknownService,
                    "no tcp service '" + name + "' here"});
    streams_.erase(stream);
    return;
  }
  p.spec = &svc->second;
  if (state_ != State::Authorized) {
    p.state = StreamState::WaitingForAuthorization;
    return;
  }
  p.state = StreamState::Connecting;
  act(OpenBackend{stream, p.spec});
}

void SessionGate::on_authorization_stream(std::span<const uint8_t> data, bool fin,
                                          uint64_t now_ms) {
  if (state_ == State::Authorized) {
    if (!data.empty()) refuse("bytes on the authorization stream after the authorization");
    return;
  }
  const auto before = authorization_.state();
  auto st = authorization_.feed(data, fin);
  if (!data.empty()) act(Consume{wire::kAuthorizationStreamId, data.size()});
  if (st == wire::AuthorizationStreamDecoder::State::Malformed) {
    counters().authorizations_malformed++;
    return refuse(authorization_.error());
  }
  if (st == wire::AuthorizationStreamDecoder::State::Done && before != st)
    check_authorization(authorization_.authorization(), now_ms);
}

void SessionGate::check_authorization(std::span<const uint8_t> token, uint64_t now_ms) {
  if (!agent_) {
    // The handshake completes before any stream data: this is a bug, not an agent's doing.
    counters().authorizations_malformed++;
    return refuse("authorization before the handshake");
  }
  auth::Authorization a;
  std::string why;
  const auto result = config_.verifier->verify(token, now_ms, a, why);
  // The verifier's reasons start with "authorization: "; ours already say that.
  if (why.starts_with("authorization: ")) why.erase(0, 15);
  switch (result) {
  case auth::AuthorizationVerifier::Result::Ok:
    break;
  case auth::AuthorizationVerifier::Result::Malformed:
    counters().authorizations_malformed++;
    return refuse("authorization malformed: " + why);
  case auth::AuthorizationVerifier::Result::BadSignature:
    counters().authorizations_forged++;
    return refuse("authorization not signed by a trusted intermediate key: " + why);
  case auth::AuthorizationVerifier::Result::NotYetValid:
  case auth::AuthorizationVerifier::Result::Expired:
    counters().authorizations_expired++;
    return refuse("authorization " + why); // "authorization expired ... ago"
  }
  auth::Expected e;
  e.session_id = config_.session_id;
  e.agent = agent_->name;
  e.agent_cert_sha256 = agent_->cert_sha256;
  e.service = config_.service;
  e.connector = config_.connector;
  if (auto m = auth::mismatch(a, e)) {
    counters().authorizations_mismatched++;
    return refuse(*m);
  }
  if (!config_.replay->first_use(a.session_id, a.expires_at_ms, now_ms)) {
    counters().authorizations_replayed++;
    return refuse("authorization for session " + hex16(a.session_id) + " was already used");
  }
  if (!config_.allow->allows(config_.service, *agent_)) {
    counters().allow_list_denied++;
    return refuse("this connector's allow list does not let " + agent_->describe() +
                  " reach '" + config_.service + "' (allowed: " +
                  (config_.allow->has(config_.service) ? config_.allow->describe(config_.service)
                                                       : std::string("nobody")) +
                  ")");
  }
  state_ = State::Authorized;
  counters().authorizations_accepted++;
  act(Authorized{agent_->describe() + " may reach '" + config_.service + "': authorization by '" +
                 a.issuer + "', valid for " +
                 std::to_string(a.expires_at_ms > now_ms ? (a.expires_at_ms - now_ms) / 1000 : 0) +
                 " s more; allow list: " + config_.allow->describe(config_.service)});
  for (auto& [id, p] : streams_)
    if (p.state == StreamState::WaitingForAuthorization) {
      p.state = StreamState::Connecting;
      act(OpenBackend{id, p.spec});
    }
  auto queued = std::move(queued_datagrams_);
  queued_datagrams_.clear();
  for (auto& d : queued)
    serve_datagram(d);
}

void SessionGate::on_stream_gone(int64_t stream) { streams_.erase(stream); }

std::pair<std::vector<uint8_t>, bool> SessionGate::take_early(int64_t stream) {
  auto it = streams_.find(stream);
  if (it == streams_.end()) return {{}, false};
  auto out = std::make_pair(std::move(it->second.early), it->second.fin);
  streams_.erase(it);
  return out;
}

void SessionGate::on_datagram(std::span<const uint8_t> data) {
  if (state_ == State::Refused) return;
  if (state_ != State::Authorized) {
    if (queued_datagrams_.size() >= kMaxQueuedDatagrams) {
      counters().datagrams_dropped++;
      return;
    }
    queued_datagrams_.emplace_back(data.begin(), data.end());
    return;
  }
  serve_datagram(data);
}

void SessionGate::serve_datagram(std::span<const uint8_t> data) {
  if (auto ping = wire::parse_ping(data)) {
    // Echoed on the current path: the agent learns which path answers (ztna-agent ping).
    if (!ping->pong) act(AnswerPing{ping->id});
    return;
  }
  auto d = wire::parse_datagram(data);
  if (!d) {
    counters().datagrams_malformed++;
    return;
  }
  if (d->service != config_.service) {
    counters().datagrams_wrong_service++;
    if (!datagram_refusal_said_)
      act(DatagramRefused{"datagram names service '" + std::string(d->service) +
                          "', but the session is for '" + config_.service + "'"});
    datagram_refusal_said_ = true;
    return;
  }
  auto svc = config_.services->find(d->service);
  if (svc == config_.services->end() || svc->second.proto != ServiceSpec::Proto::Udp) {
    counters().unknown_service++;
    return;
  }
  act(DeliverDatagram{d->flow_id, &svc->second, {d->payload.begin(), d->payload.end()}});
}

} // namespace ztna::session
