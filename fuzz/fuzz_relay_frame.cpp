// parse_relay_frame on arbitrary datagrams; an accepted frame must re-encode to the same bytes.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>

#include "fuzz_check.hpp"
#include "wire/packet_class.hpp"
#include "wire/relay_frame.hpp"

using namespace ztna::wire;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::span<const uint8_t> datagram(data, size);
  auto v = parse_relay_frame(datagram);
  if (!v) return 0;
  FUZZ_CHECK(classify_packet(datagram) == PacketClass::Relay);
  FUZZ_CHECK(!v->payload.empty() && v->payload.size() <= kMaxRelayPayload);
  FUZZ_CHECK(v->payload.data() == data + kRelayHeaderSize);
  const auto again = encode_relay_frame(v->session_id, v->payload);
  FUZZ_CHECK(again.size() == size && std::equal(again.begin(), again.end(), data));
  return 0;
}
