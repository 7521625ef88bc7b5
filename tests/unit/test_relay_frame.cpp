#include <catch2/catch.hpp>

#include <stdexcept>

#include "bytes.hpp"
#include "wire/packet_class.hpp"
#include "wire/relay_frame.hpp"

using namespace ztna::wire;
using ztna::test::bytes;
using ztna::test::Bytes;

TEST_CASE("relay frame: exact bytes", "[relay]") {
  const Bytes quic = bytes({0xC3, 0xAA, 0xBB});
  const Bytes frame = encode_relay_frame(0x0102030405060708ULL, quic);
  CHECK(frame == bytes({0x20, 1, 2, 3, 4, 5, 6, 7, 8, 0xC3, 0xAA, 0xBB}));
  CHECK(classify_packet(frame) == PacketClass::Relay);
}

TEST_CASE("relay frame: round trip keeps a view into the datagram", "[relay]") {
  for (uint64_t id : {uint64_t{0}, uint64_t{1}, uint64_t{0xFFFFFFFFFFFFFFFFULL}}) {
    const Bytes quic = bytes({0x40, 1, 2, 3, 4});
    const Bytes frame = encode_relay_frame(id, quic);
    auto v = parse_relay_frame(frame);
    REQUIRE(v);
    CHECK(v->session_id == id);
    CHECK(Bytes(v->payload.begin(), v->payload.end()) == quic);
    CHECK(v->payload.data() == frame.data() + kRelayHeaderSize);
  }
}

TEST_CASE("relay frame: write_relay_header writes exactly the header", "[relay]") {
  Bytes buf(kRelayHeaderSize + 2, 0xEE);
  write_relay_header(0xA1A2A3A4A5A6A7A8ULL, buf.data());
  CHECK(buf == bytes({0x20, 0xA1, 0xA2, 0xA3, 0xA4, 0xA5, 0xA6, 0xA7, 0xA8, 0xEE, 0xEE}));
}

TEST_CASE("relay frame: one-byte payload is the minimum", "[relay]") {
  const Bytes frame = encode_relay_frame(7, bytes({0x55}));
  REQUIRE(frame.size() == kRelayHeaderSize + 1);
  auto v = parse_relay_frame(frame);
  REQUIRE(v);
  CHECK(v->payload.size() == 1);
  // The header alone (empty payload) is malformed.
  CHECK_FALSE(parse_relay_frame(ztna::test::prefix(frame, kRelayHeaderSize)));
}

TEST_CASE("relay frame: truncated at every offset is rejected", "[relay]") {
  const Bytes frame = encode_relay_frame(42, bytes({0x41}));
  for (size_t n = 0; n < frame.size(); ++n)
    CHECK_FALSE(parse_relay_frame(ztna::test::prefix(frame, n)));
}

TEST_CASE("relay frame: other first bytes are rejected", "[relay]") {
  Bytes frame = encode_relay_frame(42, bytes({0x41, 0x42}));
  for (int type : {0x00, 0x1F, 0x21, 0x2F, 0x30, 0x40, 0xFF}) {
    frame[0] = static_cast<uint8_t>(type);
    INFO("type " << type);
    CHECK_FALSE(parse_relay_frame(frame));
  }
}

TEST_CASE("relay frame: payload size limit", "[relay]") {
  Bytes max_payload(kMaxRelayPayload, 0x40);
  const Bytes frame = encode_relay_frame(1, max_payload);
  CHECK(frame.size() == 65536);
  auto v = parse_relay_frame(frame);
  REQUIRE(v);
  CHECK(v->payload.size() == kMaxRelayPayload);

  Bytes too_big = frame;
  too_big.push_back(0);
  CHECK_FALSE(parse_relay_frame(too_big));
}

TEST_CASE("relay frame: encoder refuses empty and oversize payloads", "[relay]") {
  CHECK_THROWS_AS(encode_relay_frame(1, {}), std::invalid_argument);
  Bytes too_big(kMaxRelayPayload + 1, 0x40);
  CHECK_THROWS_AS(encode_relay_frame(1, too_big), std::invalid_argument);
}
