#include "quic/handshake_gate.hpp"

#include <netinet/in.h>

#include <cstring>

namespace ztna::quic {

HandshakeGate::HandshakeGate(Config config)
    : config_(config), rate_(config.retry_rate, config.retry_rate) {}

std::string HandshakeGate::source_key(const Address& a) {
  // One IPv6 host usually owns a whole /64: count it as one source.
  if (a.is_v6()) {
    const auto* sa = reinterpret_cast<const sockaddr_in6*>(a.sa());
    return std::string(reinterpret_cast<const char*>(sa->sin6_addr.s6_addr), 8);
  }
  const auto* sa = reinterpret_cast<const sockaddr_in*>(a.sa());
  return std::string(reinterpret_cast<const char*>(&sa->sin_addr), 4);
}

bool HandshakeGate::retry_required(uint64_t now_ns) {
  switch (config_.retry) {
  case RetryMode::Always:
    return true;
  case RetryMode::Never:
    return false;
  case RetryMode::Auto:
    break;
  }
  // The rate is sampled on every unvalidated Initial, so a flood keeps Retry on while it lasts.
  const bool fast = !rate_.allow(now_ns);
  return fast || half_open_ >= config_.retry_above;
}

HandshakeGate::Verdict HandshakeGate::admit(const Address& source, bool validated,
                                            uint64_t now_ns) {
  if (!validated && retry_required(now_ns)) {
    counters_.retries_sent++;
    return Verdict::Retry;
  }
  if (half_open_ >= config_.max_half_open) {
    counters_.dropped_budget++;
    return Verdict::OverBudget;
  }
  auto it = per_source_.find(source_key(source));
  if (it != per_source_.end() && it->second >= config_.max_per_source) {
    counters_.dropped_source++;
    return Verdict::OverSourceLimit;
  }
  counters_.accepted++;
  return Verdict::Accept;
}

void HandshakeGate::started(const Address& source) {
  half_open_++;
  per_source_[source_key(source)]++;
}

void HandshakeGate::finished(const Address& source) {
  if (half_open_ > 0) half_open_--;
  auto it = per_source_.find(source_key(source));
  if (it == per_source_.end()) return;
  if (--it->second == 0) per_source_.erase(it);
}

} // namespace ztna::quic
