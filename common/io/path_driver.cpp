#include "io/path_driver.hpp"

#include "io/clock.hpp"
#include "io/interfaces.hpp"

#include <gnutls/crypto.h>
#include <spdlog/spdlog.h>

#include <algorithm>

namespace ztna::io {

PathDriver::PathDriver(boost::asio::io_context& io, UdpSocket& socket,
                       ice::PathManagerConfig config, Hooks hooks)
    : session_id_(config.session_id), socket_(socket), hooks_(std::move(hooks)),
      manager_(
          [&] {
            if (!config.random) config.random = random_fill;
            return std::move(config);
          }(),
          *this, now()),
      timer_(io) {}

PathDriver::~PathDriver() {
  *alive_ = false;
}

void PathDriver::set_local_candidates(std::vector<ice::Candidate> candidates) {
  manager_.set_local_candidates(std::move(candidates), now());
  arm();
}

void PathDriver::on_candidates(const wire::Candidates& m) {
  manager_.on_candidates(m, now());
  arm();
}

void PathDriver::on_start_checks(uint32_t generation) {
  manager_.on_start_checks(generation, now());
  arm();
}

ice::PathManager::StunResult PathDriver::on_stun(const Address& from,
                                                 std::span<const uint8_t> datagram,
                                                 const wire::StunMessage& m) {
  auto r = manager_.on_stun(from, datagram, m, now());
  arm();
  return r;
}

void PathDriver::on_handshake_confirmed() {
  manager_.on_handshake_confirmed(now());
  arm();
}

void PathDriver::on_path_validated(bool direct, bool success) {
  manager_.on_path_validated(direct, success, now());
  if (direct && success) {
    auto ttd = manager_.time_to_direct();
    spdlog::info("session {:016x}: now on the direct path to {} ({} upgrade(s); first direct "
                 "{:.1f} ms after session start)",
                 session_id_,
                 manager_.direct_remote() ? manager_.direct_remote()->to_string() : "?",
                 manager_.counters().upgrades, ttd ? ttd->count() / 1000.0 : 0.0);
  }
  arm();
}

void PathDriver::send_stun(const Address& to, std::span<const uint8_t> datagram) {
  socket_.send(to, datagram);
}

void PathDriver::send_candidates(const wire::Candidates& m) {
  spdlog::debug("session {:016x}: sending {} candidates for round {} ({} bytes, {} of padding)",
                session_id_, m.candidates.size(), m.generation, wire::encoded_size(m), m.padding);
  if (hooks_.signal) hooks_.signal(m);
}

void PathDriver::use_direct(const Address& remote, const std::string& why) {
  spdlog::info("session {:016x}: path {} -> direct {}: {}", session_id_,
               ice::to_string(manager_.active()), remote.to_string(), why);
  if (hooks_.use_direct) hooks_.use_direct(remote);
}

void PathDriver::use_relay(const std::string& why) {
  spdlog::warn("session {:016x}: path direct -> relay: {}", session_id_, why);
  if (hooks_.use_relay) hooks_.use_relay();
}

void PathDriver::note(const std::string& line) {
  spdlog::info("session {:016x}: {}", session_id_, line);
}

void PathDriver::arm() {
  const auto expiry = manager_.next_timeout();
  if (expiry == ice::kNever) return;
  if (armed_for_ != ice::kNever && armed_for_ <= expiry) return;
  armed_for_ = expiry;
  const auto t = now();
  timer_.expires_after(std::chrono::nanoseconds(expiry > t ? expiry - t : 0));
  timer_.async_wait([this, alive = alive_](boost::system::error_code ec) {
    if (ec || !*alive) return;
    armed_for_ = ice::kNever;
    manager_.handle_timeout(now());
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

} // namespace ztna::io

namespace ztna::io {

void dispatch_stun(const Address& from, std::span<const uint8_t> datagram,
                   const std::vector<PathDriver*>& drivers, StunCounters& counters) {
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
  for (auto* d : drivers) {
    if (m->cls == wire::StunClass::Request && d->manager().local_ufrag() != ufrag) continue;
    switch (d->on_stun(from, datagram, *m)) {
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

namespace {

nlohmann::json candidate_json(const ice::Candidate& c) {
  return {{"type", ice::to_string(c.type)},
          {"address", c.address.to_string()},
          {"priority", c.priority}};
}

std::string pair_text(const ice::CandidatePair& p) {
  return std::string(ice::to_string(p.local.type)) + " " + p.local.address.to_string() + " -> " +
         ice::to_string(p.remote.type) + " " + p.remote.address.to_string();
}

double ms(std::chrono::microseconds d) {
  return static_cast<double>(d.count()) / 1000.0;
}

} // namespace

nlohmann::json path_status(const ice::PathManager& m) {
  nlohmann::json j;
  j["active"] = ice::to_string(m.active());
  j["phase"] = m.phase();
  j["round"] = m.generation();
  if (auto r = m.direct_remote()) j["direct_remote"] = r->to_string();
  if (auto t = m.time_to_direct()) j["time_to_direct_ms"] = ms(*t);
  if (auto rtt = m.direct_rtt()) j["direct_check_rtt_ms"] = ms(*rtt);
  const auto& c = m.counters();
  j["upgrades"] = c.upgrades;
  j["fallbacks"] = c.fallbacks;
  j["rounds"] = c.rounds;
  j["checks_sent"] = c.checks_sent;
  j["checks_answered"] = c.checks_answered;
  j["consent_requests"] = c.consent_requests;
  j["stun_unauthenticated"] = c.stun_unauthenticated;
  // Where probes may not go, and how many bytes they may cost (docs/security.md).
  j["candidates_refused"] = c.candidates_refused;
  auto& refused = j["refused"] = nlohmann::json::object();
  for (size_t i = 0; i < c.refused_by_reason.size(); ++i)
    if (c.refused_by_reason[i] > 0)
      refused[ice::to_string(static_cast<ice::ProbeRefusal>(i))] = c.refused_by_reason[i];
  j["checks_over_budget"] = c.checks_over_budget;
  j["checks_over_round_cap"] = c.checks_over_round_cap;
  j["rounds_deferred"] = c.rounds_deferred;
  j["check_budget"] = {{"signaling_bytes", c.signaling_bytes},
                       {"unvalidated_bytes", c.unvalidated_bytes},
                       {"left", m.budget_left()}};
  // Every candidate with its state: a remote candidate has the state of its pair; ours are
  // "gathered" (one socket serves them all, RFC 8445 §6.1.2.4).
  auto& local = j["candidates"]["local"] = nlohmann::json::array();
  for (const auto& cand : m.local_candidates()) {
    auto e = candidate_json(cand);
    e["state"] = "gathered";
    local.push_back(e);
  }
  auto& remote = j["candidates"]["remote"] = nlohmann::json::array();
  auto& pairs = j["pairs"] = nlohmann::json::array();
  if (const auto* checks = m.checks()) {
    for (const auto& p : checks->pairs()) {
      auto e = candidate_json(p.remote);
      e["state"] = ice::to_string(p.state);
      remote.push_back(e);
      nlohmann::json pj{{"pair", pair_text(p)},
                        {"state", ice::to_string(p.state)},
                        {"nominated", p.nominated},
                        {"transmissions", p.transmissions}};
      if (p.rtt) pj["rtt_ms"] = ms(*p.rtt);
      pairs.push_back(pj);
    }
    for (const auto& prflx : checks->local_peer_reflexive()) {
      auto e = candidate_json(prflx);
      e["state"] = "learned";
      local.push_back(e);
    }
    if (const auto* sel = checks->selected()) j["selected_pair"] = pair_text(*sel);
  }
  for (const auto& cand : m.remote_candidates()) {
    const bool listed = std::any_of(remote.begin(), remote.end(), [&](const nlohmann::json& e) {
      return e["address"] == cand.address.to_string();
    });
    if (!listed) {
      auto e = candidate_json(cand);
      e["state"] = cand.type == ice::CandidateType::Relay ? "not checked" : "no pair";
      remote.push_back(e);
    }
  }
  return j;
}

} // namespace ztna::io
