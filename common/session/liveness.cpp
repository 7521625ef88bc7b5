#include "session/liveness.hpp"

#include <algorithm>

namespace ztna::session {

namespace {
constexpr Timestamp kNever = UINT64_MAX;

Timestamp ns(std::chrono::milliseconds d) { return static_cast<Timestamp>(d.count()) * 1'000'000; }

std::string seconds(Timestamp t) {
  const auto tenths = t / 100'000'000;
  return std::to_string(tenths / 10) + "." + std::to_string(tenths % 10) + " s";
}
} // namespace

const char* to_string(RelayState s) {
  switch (s) {
  case RelayState::Bound:
    return "bound";
  case RelayState::Unbound:
    return "unbound";
  case RelayState::PeerLost:
    return "peer lost";
  }
  return "?";
}

Liveness::Liveness(LivenessConfig config, Timestamp now)
    : config_(config), last_received_(now), changed_at_(now) {}

void Liveness::set_direct(bool direct, Timestamp now) {
  if (direct == direct_) return;
  direct_ = direct;
  changed_at_ = now;
}

void Liveness::set_relay(RelayState state, Timestamp now) {
  if (state == relay_) return;
  relay_ = state;
  changed_at_ = now;
}

std::optional<Timestamp> Liveness::allowed() const {
  if (direct_) return ns(keepalive() + config_.direct_grace);
  switch (relay_) {
  case RelayState::Bound:
    return ns(keepalive() + config_.relay_grace);
  case RelayState::PeerLost:
    return ns(config_.peer_lost_limit);
  case RelayState::Unbound:
    break;
  }
  return std::nullopt;
}

std::optional<std::string> Liveness::verdict(Timestamp now) const {
  const auto limit = allowed();
  const Timestamp since = std::max(last_received_, changed_at_);
  if (!limit || now < since || now - since < *limit) return std::nullopt;
  if (!direct_ && relay_ == RelayState::Bound &&
      relay_heard_ < now && now - relay_heard_ >= ns(config_.relay_fresh))
    return std::nullopt; // the relay itself is silent: no evidence against the peer
  const std::string silent = "nothing from the peer for " + seconds(now - last_received_);
  if (direct_) return silent + " on the direct path";
  if (relay_ == RelayState::PeerLost)
    return silent + ", and its control connection did not come back within " +
           seconds(ns(config_.peer_lost_limit));
  return silent + " over the relay";
}

namespace {
constexpr uint64_t kFlowingPackets = 8;
constexpr Timestamp kSuspiciousSilence = 300'000'000;
constexpr Timestamp kProbeMargin = 500'000'000;
} // namespace

void Liveness::on_sample(uint64_t packets_received, Timestamp now) {
  if (packets_received >= packets_sampled_ + kFlowingPackets) flowing_at_ = now;
  packets_sampled_ = packets_received;
}

bool Liveness::should_probe(Timestamp now) const {
  if (direct_) return false;
  const Timestamp silent = silent_for(now);
  if (silent > ns(keepalive()) + kProbeMargin) return true;
  // Streaming, then nothing: the relay (or the peer) stopped. The flow was seen at most one
  // sample period before the silence began.
  return silent > kSuspiciousSilence && flowing_at_ != 0 && flowing_at_ + kProbeMargin >= now - silent;
}

Timestamp Liveness::next_timeout() const {
  const auto limit = allowed();
  if (!limit) return kNever;
  return std::max(last_received_, changed_at_) + *limit;
}

} // namespace ztna::session
