// classify_packet on arbitrary datagrams: total, and a pure function of the first byte and,
// for STUN, the length.
#include <cstddef>
#include <cstdint>
#include <span>

#include "fuzz_check.hpp"
#include "wire/packet_class.hpp"

using namespace ztna::wire;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const PacketClass c = classify_packet(std::span<const uint8_t>(data, size));
  if (size == 0) {
    FUZZ_CHECK(c == PacketClass::Unknown);
    return 0;
  }
  const uint8_t b = data[0];
  PacketClass want = PacketClass::Unknown;
  if (b <= 0x03 && size >= kStunHeaderSize)
    want = PacketClass::Stun;
  else if (b >= 0x20 && b <= 0x2F)
    want = PacketClass::Relay;
  else if (b >= 0x40)
    want = PacketClass::Quic;
  FUZZ_CHECK(c == want);
  return 0;
}
