#include "io/path_status.hpp"

#include <algorithm>

namespace ztna::io {

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
  if (auto t = m.time_to_validated()) j["time_to_validated_ms"] = ms(*t);
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
  j["candidates_unreachable"] = c.candidates_unreachable;
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
