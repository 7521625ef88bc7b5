#include "io/path_layer.hpp"

#include "io/clock.hpp"
#include "io/interfaces.hpp"
#include "io/random.hpp"
#include "wire/relay_frame.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>

namespace ztna::io {

PathLayer::PathLayer(Endpoint& endpoint, uint64_t session_id, path::Role role,
                     const Address& intermediate, PathSignaling& signaling)
    : endpoint_(endpoint), session_id_(session_id), signaling_(signaling),
      paths_(role, intermediate), timer_(endpoint.socket().io()) {}

PathLayer::~PathLayer() {
  *alive_ = false;
}

void PathLayer::defer(std::function<void()> f) {
  boost::asio::post(timer_.get_executor(), [alive = alive_, f = std::move(f)] {
    if (*alive) f();
  });
}

QuicPeer::Transmit PathLayer::transmit() {
  return [this](const quic::Path& path, std::span<const uint8_t> packet) {
    auto route = paths_.route(path);
    if (!route || route->socket != path::kSharedSocket) {
      counters_.unroutable++;
      return;
    }
    if (!route->relay) {
      endpoint_.socket().send(route->to, packet);
      return;
    }
    uint8_t header[wire::kRelayHeaderSize];
    wire::write_relay_header(session_id_, header);
    endpoint_.socket().send(route->to, packet, header);
  };
}

QuicPeer::PathMapper PathLayer::inbound() {
  return [this](const quic::Path& arrived) {
    if (path::is_relay_local(arrived.local)) {
      static const quic::Path none;
      return paths_.map_relayed(arrived.remote,
                                quic_ && quic_->attached() ? quic_->conn().path() : none);
    }
    return paths_.map_direct(path::kSharedSocket, arrived.remote);
  };
}

void PathLayer::receive_relayed(const Address& from, std::span<const uint8_t> packet) {
  if (quic_) quic_->receive({path::relay_local(1), from}, packet);
}

void PathLayer::on_handshake_confirmed() {
  if (manager_)
    defer([this] {
      manager_->on_handshake_confirmed(now());
      arm();
    });
}

void PathLayer::on_path_validated(const quic::Path& path, bool success) {
  const bool was_current = paths_.on_direct() && path.local == paths_.last_direct().local;
  paths_.on_path_validated(path, success);
  if (!manager_) return;
  const bool direct = !path::is_relay_local(path.local);
  // An immediate move whose validation failed left the session on a path that does not work:
  // back to the relay (ngtcp2 does not fall back by itself after an immediate migration).
  if (direct && !success && was_current) defer([this] { move_to_relay(fallback_relay()); });
  defer([this, direct, success] {
    manager_->on_path_validated(direct, success, now());
    if (direct && success) {
      auto ttd = manager_->time_to_direct();
      auto ttv = manager_->time_to_validated();
      spdlog::info(
          "session {:016x}: now on the direct path to {}, validated ({} upgrade(s); first direct "
          "{:.1f} ms after session start, validated at {:.1f} ms)",
          session_id_, manager_->direct_remote() ? manager_->direct_remote()->to_string() : "?",
          manager_->counters().upgrades, ttd ? ttd->count() / 1000.0 : 0.0,
          ttv ? ttv->count() / 1000.0 : 0.0);
    }
    arm();
  });
}

void PathLayer::start_checks(ice::PathManagerConfig config, std::vector<ice::Candidate> locals) {
  config.session_id = session_id_;
  config.controlling = paths_.role() == path::Role::Client;
  if (!config.random) config.random = random_fill;
  immediate_ = config.immediate_migration;
  ice::PathEvents& events = *this;
  manager_ = std::make_unique<ice::PathManager>(std::move(config), events, now());
  set_local_candidates(std::move(locals));
}

void PathLayer::set_local_candidates(std::vector<ice::Candidate> candidates) {
  if (!manager_) return;
  manager_->set_local_candidates(std::move(candidates), now());
  arm();
}

void PathLayer::on_candidates(const wire::Candidates& m) {
  if (!manager_) return;
  spdlog::debug("session {:016x}: {} candidates of the peer for round {}", session_id_,
                m.candidates.size(), m.generation);
  manager_->on_candidates(m, now());
  arm();
}

void PathLayer::on_start_checks(uint32_t generation) {
  if (!manager_) return;
  spdlog::debug("session {:016x}: checks of round {} start", session_id_, generation);
  manager_->on_start_checks(generation, now());
  arm();
}

ice::PathManager::StunResult PathLayer::on_stun(const Address& from,
                                                std::span<const uint8_t> datagram,
                                                const wire::StunMessage& m) {
  if (!manager_) return ice::PathManager::StunResult::NotMine;
  auto r = manager_->on_stun(from, datagram, m, now());
  arm();
  return r;
}

void PathLayer::move_to_direct(const Address& remote) {
  if (!quic_ || !quic_->attached()) return;
  const quic::Path target = paths_.direct_path(remote, path::kSharedSocket, immediate_);
  relay_rtt_ms_ = quic_->conn().stats().smoothed_rtt_ms;
  std::string error;
  if (!quic_->conn().migrate(target, !immediate_, now(), error)) {
    paths_.on_path_validated(target, false); // not current after all
    spdlog::warn("session {:016x}: cannot migrate to {}: {}", session_id_, remote.to_string(),
                 error);
    if (manager_)
      defer([this] {
        manager_->on_path_validated(true, false, now());
        arm();
      });
    return;
  }
  quic_->schedule_flush();
}

void PathLayer::move_to_relay(const Address& intermediate) {
  const quic::Path& target = paths_.next_relay_path(intermediate);
  if (!quic_ || !quic_->attached()) return;
  std::string error;
  if (!quic_->conn().migrate(target, false, now(), error))
    spdlog::warn("session {:016x}: cannot migrate onto the relay: {}", session_id_, error);
  quic_->schedule_flush();
}

double PathLayer::relay_rtt_ms() const {
  if (quic_ && quic_->attached() && path::is_relay_local(quic_->conn().path().local))
    return quic_->conn().stats().smoothed_rtt_ms;
  return relay_rtt_ms_;
}

void PathLayer::send_stun(const Address& to, std::span<const uint8_t> datagram) {
  spdlog::trace("session {:016x}: STUN to {} ({} bytes)", session_id_, to.to_string(),
                datagram.size());
  endpoint_.socket().send(to, datagram);
}

void PathLayer::send_candidates(const wire::Candidates& m) {
  spdlog::debug("session {:016x}: sending {} candidates for round {} ({} bytes, {} of padding)",
                session_id_, m.candidates.size(), m.generation, wire::encoded_size(m), m.padding);
  signaling_.signal(session_id_, m);
}

void PathLayer::use_direct(const Address& remote, const std::string& why) {
  spdlog::info("session {:016x}: path {} -> direct {}: {}", session_id_,
               ice::to_string(manager_->active()), remote.to_string(), why);
  move_to_direct(remote);
}

void PathLayer::use_relay(const std::string& why) {
  spdlog::warn("session {:016x}: path direct -> relay: {}", session_id_, why);
  move_to_relay(fallback_relay());
}

Address PathLayer::fallback_relay() {
  return signaling_.fallback_relay(session_id_).value_or(paths_.relay_path().remote);
}

void PathLayer::note(const std::string& line) {
  spdlog::info("session {:016x}: {}", session_id_, line);
}

void PathLayer::arm() {
  const auto expiry = manager_->next_timeout();
  if (expiry == ice::kNever) return;
  if (armed_for_ != ice::kNever && armed_for_ <= expiry) return;
  armed_for_ = expiry;
  const auto t = now();
  timer_.expires_after(std::chrono::nanoseconds(expiry > t ? expiry - t : 0));
  timer_.async_wait([this, alive = alive_](boost::system::error_code ec) {
    if (ec || !*alive) return;
    armed_for_ = ice::kNever;
    manager_->handle_timeout(now());
    arm();
  });
}

std::vector<ice::Candidate> gather_candidates(const UdpSocket& socket, const Address& reflexive) {
  const Address& bound = socket.local();
  const std::string b = bound.to_string();
  const bool wildcard4 = b.rfind("0.0.0.0:", 0) == 0;
  const bool wildcard6 = b.rfind("[::]:", 0) == 0;
  std::vector<Address> usable;
  if (wildcard4 || wildcard6) {
    for (const auto& a : interface_addresses())
      if (wildcard6 || !a.is_v6()) usable.push_back(a);
  } else {
    usable.push_back(bound);
  }
  auto out = ice::host_candidates(usable, bound.port());
  // A reflexive address the peer would refuse (loopback, when the intermediate is on loopback
  // too) is not offered either.
  if (!reflexive.empty() && ice::may_probe(reflexive) &&
      std::none_of(out.begin(), out.end(), [&](const auto& c) { return c.address == reflexive; }))
    out.push_back(ice::server_reflexive(reflexive));
  return out;
}

void dispatch_stun(const Address& from, std::span<const uint8_t> datagram,
                   const std::vector<PathLayer*>& layers, StunCounters& counters) {
  std::string error;
  auto m = wire::parse_stun(datagram, error);
  if (!m) {
    counters.malformed++;
    return;
  }
  auto unauthenticated = [&] {
    counters.unauthenticated++;
    spdlog::debug("unauthenticated STUN from {} dropped", from.to_string());
  };
  std::string_view ufrag;
  if (m->cls == wire::StunClass::Request) {
    if (!m->username) return unauthenticated();
    ufrag = std::string_view(*m->username).substr(0, m->username->find(':'));
  }
  for (auto* layer : layers) {
    const auto* manager = layer->manager();
    if (!manager) continue;
    if (m->cls == wire::StunClass::Request && manager->local_ufrag() != ufrag) continue;
    switch (layer->on_stun(from, datagram, *m)) {
    case ice::PathManager::StunResult::NotMine:
      continue;
    case ice::PathManager::StunResult::Handled:
      return;
    case ice::PathManager::StunResult::Unauthenticated:
      return unauthenticated();
    }
  }
  counters.unmatched++;
}

} // namespace ztna::io
