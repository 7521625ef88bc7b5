#include "ice/consent.hpp"

#include <algorithm>
#include <stdexcept>

namespace ztna::ice {

namespace {

constexpr Timestamp kNsPerMs = 1'000'000;

Timestamp to_ns(std::chrono::milliseconds d) {
  return d.count() > 0 ? static_cast<Timestamp>(d.count()) * kNsPerMs : 0;
}

} // namespace

Consent::Consent(ConsentConfig config, Timestamp now)
    : config_(std::move(config)), fresh_at_(now), next_request_at_(now), polled_at_(now) {
  if (!config_.random) throw std::invalid_argument("Consent needs a random source");
  next_request_at_ = now + jittered_interval();
}

Timestamp Consent::jittered_interval() {
  // Uniform in [0.8, 1.2] * interval (RFC 7675 §5.1). At least 1 ns, so that poll() called in a
  // loop at one instant always ends.
  const Timestamp base = to_ns(config_.interval);
  const Timestamp spread = base / 5;
  std::array<uint8_t, 8> bytes{};
  config_.random(bytes);
  uint64_t r = 0;
  for (auto b : bytes)
    r = r << 8 | b;
  const Timestamp d = base - spread + r % (2 * spread + 1);
  return std::max<Timestamp>(d, 1);
}

std::optional<std::array<uint8_t, 12>> Consent::poll(Timestamp now) {
  polled_at_ = std::max(polled_at_, now);
  if (now < next_request_at_) return std::nullopt;
  Outstanding o{{}, now};
  config_.random(o.tid);
  outstanding_.push_back(o);
  if (outstanding_.size() > kMaxConsentOutstanding) outstanding_.pop_front();
  requests_sent_++;
  // From now, not from the missed deadline: a late poll sends one request, not a burst.
  next_request_at_ = now + jittered_interval();
  return o.tid;
}

Timestamp Consent::next_timeout() const {
  // The expiry is a wake-up only until a poll() has seen it pass: an owner that keeps an expired
  // Consent must not be woken in a loop.
  const Timestamp expiry = fresh_at_ + to_ns(config_.timeout);
  return expiry > polled_at_ ? std::min(next_request_at_, expiry) : next_request_at_;
}

bool Consent::on_response(std::span<const uint8_t, 12> transaction_id, Timestamp now) {
  auto it = std::find_if(outstanding_.begin(), outstanding_.end(), [&](const Outstanding& o) {
    return std::equal(o.tid.begin(), o.tid.end(), transaction_id.begin());
  });
  if (it == outstanding_.end()) return false;
  last_rtt_ = std::chrono::microseconds(now > it->sent_at ? (now - it->sent_at) / 1000 : 0);
  // Fresh as of now (RFC 7675 §5.1); never move backwards if answers arrive out of order.
  fresh_at_ = std::max(fresh_at_, now);
  responses_++;
  outstanding_.erase(it);
  return true;
}

bool Consent::expired(Timestamp now) const {
  return now >= fresh_at_ && now - fresh_at_ >= to_ns(config_.timeout);
}

} // namespace ztna::ice
