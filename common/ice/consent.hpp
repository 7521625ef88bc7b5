// Keepalive and consent freshness on the selected direct path (RFC 7675, tightened; DESIGN D4).
//
// One Binding request per interval keeps the NATs' mappings open (the interval is well under
// Linux's 30 s unreplied-UDP conntrack timeout) and proves the peer still wants our packets. No
// answer for `timeout` means the path is dead: the owner falls back to the relay. RFC 7675 §5.1
// allows 30 s; we give up within seconds because the relay is always there to fall back to.
//
// Sans-IO: poll() says when a request is due and which transaction ID it carries; the caller
// encodes and sends it, and feeds back the answers.
#pragma once

#include "ice/candidate.hpp"

#include <array>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <optional>
#include <span>

namespace ztna::ice {

struct ConsentConfig {
  std::chrono::milliseconds interval{1000};       // mean time between requests
  std::chrono::milliseconds timeout{4000};        // no answer for this long: consent lost
  std::function<void(std::span<uint8_t>)> random; // transaction IDs and jitter; required
};

// Requests whose answers still count. With the default settings at most 5 requests fall within
// one timeout; older ones are forgotten.
constexpr size_t kMaxConsentOutstanding = 8;

class Consent {
public:
  // Consent is fresh at construction: the check that chose this path just succeeded. Throws
  // std::invalid_argument without config.random.
  Consent(ConsentConfig config, Timestamp now);

  // A request is due: returns its transaction ID. Requests are spaced by the interval with
  // +/-20% jitter (RFC 7675 §5.1), so paths opened together do not keep firing together.
  std::optional<std::array<uint8_t, 12>> poll(Timestamp now);
  // The next request, or the expiry of consent if that comes first and no poll() has seen it.
  Timestamp next_timeout() const;

  // A success response. A known transaction ID refreshes consent and gives an RTT sample; an
  // unknown one (or a repeat) returns false and changes nothing.
  bool on_response(std::span<const uint8_t, 12> transaction_id, Timestamp now);
  // No response within `timeout` of the last fresh point.
  bool expired(Timestamp now) const;

  std::optional<std::chrono::microseconds> last_rtt() const { return last_rtt_; }
  uint64_t requests_sent() const { return requests_sent_; }
  uint64_t responses() const { return responses_; }

private:
  struct Outstanding {
    std::array<uint8_t, 12> tid;
    Timestamp sent_at;
  };

  Timestamp jittered_interval();

  ConsentConfig config_;
  Timestamp fresh_at_;
  Timestamp next_request_at_;
  Timestamp polled_at_;
  std::deque<Outstanding> outstanding_; // newest last
  std::optional<std::chrono::microseconds> last_rtt_;
  uint64_t requests_sent_ = 0;
  uint64_t responses_ = 0;
};

} // namespace ztna::ice
