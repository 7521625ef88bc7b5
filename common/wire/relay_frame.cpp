#include "wire/relay_frame.hpp"

#include <algorithm>
#include <stdexcept>

#include "wire/byte_io.hpp"

namespace ztna::wire {

std::optional<RelayFrameView> parse_relay_frame(std::span<const uint8_t> datagram) {
  if (datagram.size() <= kRelayHeaderSize) return std::nullopt; // also rejects empty payloads
  if (datagram.size() - kRelayHeaderSize > kMaxRelayPayload) return std::nullopt;
  ByteReader r(datagram);
  if (r.u8() != kRelayDataType) return std::nullopt;
  RelayFrameView v{r.u64(), r.rest()};
  return v;
}

void write_relay_header(uint64_t session_id, uint8_t* out) {
  out[0] = kRelayDataType;
  for (int i = 0; i < 8; ++i)
    out[1 + i] = static_cast<uint8_t>(session_id >> (56 - 8 * i));
}

std::vector<uint8_t> encode_relay_frame(uint64_t session_id, std::span<const uint8_t> payload) {
  if (payload.empty() || payload.size() > kMaxRelayPayload)
    throw std::invalid_argument("encode_relay_frame: payload must be 1..65527 bytes");
  std::vector<uint8_t> out(kRelayHeaderSize + payload.size());
  write_relay_header(session_id, out.data());
  std::copy(payload.begin(), payload.end(), out.begin() + kRelayHeaderSize);
  return out;
}

} // namespace ztna::wire
