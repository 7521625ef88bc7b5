#include <catch2/catch.hpp>

#include "bytes.hpp"
#include "wire/packet_class.hpp"

using namespace ztna::wire;
using ztna::test::Bytes;

namespace {
PacketClass classify_first(uint8_t first, size_t size = 1200) {
  Bytes d(size, 0);
  d[0] = first;
  return classify_packet(d);
}
} // namespace

TEST_CASE("classify_packet: empty datagram is Unknown", "[packet_class]") {
  CHECK(classify_packet({}) == PacketClass::Unknown);
}

TEST_CASE("classify_packet: range boundaries", "[packet_class]") {
  CHECK(classify_first(0x00) == PacketClass::Stun);
  CHECK(classify_first(0x03) == PacketClass::Stun);
  CHECK(classify_first(0x04) == PacketClass::Unknown);
  CHECK(classify_first(0x1F) == PacketClass::Unknown);
  CHECK(classify_first(0x20) == PacketClass::Relay);
  CHECK(classify_first(0x2F) == PacketClass::Relay);
  CHECK(classify_first(0x30) == PacketClass::Unknown);
  CHECK(classify_first(0x3F) == PacketClass::Unknown);
  CHECK(classify_first(0x40) == PacketClass::Quic);
  CHECK(classify_first(0x7F) == PacketClass::Quic);
  CHECK(classify_first(0x80) == PacketClass::Quic); // long header, greased fixed bit
  CHECK(classify_first(0xBF) == PacketClass::Quic);
  CHECK(classify_first(0xC0) == PacketClass::Quic);
  CHECK(classify_first(0xFF) == PacketClass::Quic);
}

TEST_CASE("classify_packet: STUN needs a whole 20-byte header", "[packet_class]") {
  CHECK(classify_first(0x00, 19) == PacketClass::Unknown);
  CHECK(classify_first(0x00, 20) == PacketClass::Stun);
  CHECK(classify_first(0x01, 1) == PacketClass::Unknown);
  CHECK(classify_first(0x03, 19) == PacketClass::Unknown);
  CHECK(classify_first(0x03, 20) == PacketClass::Stun);
}

TEST_CASE("classify_packet: every first byte lands in exactly the documented class",
          "[packet_class]") {
  for (int b = 0; b < 256; ++b) {
    PacketClass want = PacketClass::Unknown;
    if (b <= 0x03)
      want = PacketClass::Stun;
    else if (b >= 0x20 && b <= 0x2F)
      want = PacketClass::Relay;
    else if (b >= 0x40)
      want = PacketClass::Quic;
    INFO("first byte " << b);
    CHECK(classify_first(static_cast<uint8_t>(b)) == want);
  }
}

TEST_CASE("classify_packet: names", "[packet_class]") {
  CHECK(std::string(to_string(PacketClass::Stun)) == "stun");
  CHECK(std::string(to_string(PacketClass::Relay)) == "relay");
  CHECK(std::string(to_string(PacketClass::Quic)) == "quic");
  CHECK(std::string(to_string(PacketClass::Unknown)) == "unknown");
}
