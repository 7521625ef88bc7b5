#pragma once

#include "quic/connection.hpp"

#include <chrono>

namespace ztna::io {

// The one place that reads the clock; everything below io/ gets time passed in.
inline quic::Timestamp now() {
  return static_cast<quic::Timestamp>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                          std::chrono::steady_clock::now().time_since_epoch())
                                          .count());
}

// Wall-clock time in Unix milliseconds: for what another machine checks (authorizations).
inline uint64_t unix_ms() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

} // namespace ztna::io
