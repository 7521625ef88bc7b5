// Token bucket over an explicit clock: caps replies we send to unauthenticated input, control
// messages per peer, and relay bytes per session and per identity.
#pragma once

#include <algorithm>
#include <cstdint>

namespace ztna {

class RateLimiter {
public:
  // `rate` tokens per second, at most `burst` saved up. Times are nanoseconds.
  RateLimiter(double rate, double burst) : rate_(rate), burst_(burst), tokens_(burst) {}
  // Takes `cost` tokens if there are that many (a request, or a datagram's bytes).
  bool allow(uint64_t now_ns, double cost = 1) {
    if (started_ && now_ns > last_ns_)
      tokens_ = std::min(burst_, tokens_ + rate_ * static_cast<double>(now_ns - last_ns_) / 1e9);
    last_ns_ = started_ ? std::max(last_ns_, now_ns) : now_ns;
    started_ = true;
    if (tokens_ < cost) return false;
    tokens_ -= cost;
    return true;
  }

private:
  double rate_, burst_, tokens_;
  uint64_t last_ns_ = 0;
  bool started_ = false; // 0 is a valid time on an explicit clock, so it cannot mean "never"
};

} // namespace ztna
