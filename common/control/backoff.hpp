// Reconnect delays: exponential with jitter, so that many clients cut off at once by an
// intermediate restart do not all come back in the same instant.
#pragma once

#include <chrono>
#include <cstdint>

namespace ztna {

class Backoff {
public:
  using ms = std::chrono::milliseconds;
  Backoff(ms initial = ms(250), ms max = ms(30000)) : initial_(initial), max_(max), next_(initial) {}

  // The delay before the next attempt. `random` is any uniformly distributed 32-bit value;
  // the result lies in [next/2, next] ("equal jitter"), and next doubles up to max.
  ms next(uint32_t random) {
    auto base = next_;
    next_ = std::min(max_, next_ * 2);
    auto half = base.count() / 2;
    return ms(half + (half > 0 ? static_cast<int64_t>(random % static_cast<uint32_t>(half + 1)) : 0));
  }
  void reset() { next_ = initial_; }
  ms upcoming_base() const { return next_; }

private:
  ms initial_, max_, next_;
};

} // namespace ztna
