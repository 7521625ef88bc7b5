#include "wire/datagram_frame.hpp"

#include <stdexcept>

#include "wire/byte_io.hpp"
#include "wire/text.hpp"

namespace ztna::wire {

std::optional<DatagramView> parse_datagram(std::span<const uint8_t> bytes) {
  ByteReader r(bytes);
  if (r.u8() != kDatagramUdpType) return std::nullopt;
  DatagramView v{};
  v.flow_id = r.u32();
  v.service = r.str8();
  if (!r.ok() || !is_valid_name(v.service)) return std::nullopt;
  v.payload = r.rest();
  return v;
}

std::vector<uint8_t> encode_datagram(uint32_t flow_id, std::string_view service,
                                     std::span<const uint8_t> payload) {
  if (!is_valid_name(service)) throw std::invalid_argument("encode_datagram: invalid service name");
  std::vector<uint8_t> out;
  out.reserve(datagram_overhead(service) + payload.size());
  ByteWriter w(out);
  w.u8(kDatagramUdpType);
  w.u32(flow_id);
  w.str8(service);
  w.bytes(payload);
  return out;
}

std::optional<PingView> parse_ping(std::span<const uint8_t> bytes) {
  if (bytes.size() != kDatagramPingSize) return std::nullopt;
  if (bytes[0] != kDatagramPingType && bytes[0] != kDatagramPongType) return std::nullopt;
  ByteReader r(bytes.subspan(1));
  return PingView{bytes[0] == kDatagramPongType, r.u64()};
}

std::vector<uint8_t> encode_ping(bool pong, uint64_t id) {
  std::vector<uint8_t> out;
  ByteWriter w(out);
  w.u8(pong ? kDatagramPongType : kDatagramPingType);
  w.u64(id);
  return out;
}

} // namespace ztna::wire
