#include "io/refusal_log.hpp"

#include "io/clock.hpp"

#include <spdlog/spdlog.h>

namespace ztna::io {

void RefusalLog::refused(const quic::PeerRefusal& r, const Address& from,
                         const std::string& what) {
  counters_.add(r.reason);
  if (!lines_.allow(now())) {
    unsaid_++;
    return;
  }
  if (unsaid_ > 0) {
    spdlog::warn("... and {} more refused handshakes not logged (see the handshake_refusals "
                 "counters)",
                 unsaid_);
    unsaid_ = 0;
  }
  // Other: not a refusal of ours (the peer gave up or refused our certificate, a timeout).
  if (r.reason == quic::Refusal::Other)
    spdlog::warn("{} from {} failed before authentication: {} (other)", what, from.to_string(),
                 r.detail);
  else
    spdlog::warn("refused {} from {}: {} ({})", what, from.to_string(), r.detail,
                 quic::to_string(r.reason));
}

nlohmann::json RefusalLog::json() const {
  nlohmann::json j = nlohmann::json::object();
  for (size_t i = 0; i < quic::kRefusalKinds; ++i)
    j[quic::to_string(static_cast<quic::Refusal>(i))] = counters_.by_cause[i];
  return j;
}

} // namespace ztna::io
