#include <catch2/catch.hpp>

#include <stdexcept>
#include <string>

#include "bytes.hpp"
#include "wire/datagram_frame.hpp"

using namespace ztna::wire;
using ztna::test::bytes;
using ztna::test::Bytes;

TEST_CASE("datagram: exact bytes", "[datagram]") {
  CHECK(encode_datagram(0x01020304, "dns", bytes({0xAA, 0xBB})) ==
        bytes({1, 1, 2, 3, 4, 3, 'd', 'n', 's', 0xAA, 0xBB}));
  CHECK(datagram_overhead("dns") == 9);
}

TEST_CASE("datagram: round trip keeps views into the input", "[datagram]") {
  for (uint32_t flow : {uint32_t{0}, uint32_t{1}, uint32_t{0xFFFFFFFF}}) {
    const Bytes payload = bytes("query");
    const Bytes d = encode_datagram(flow, "dns", payload);
    auto v = parse_datagram(d);
    REQUIRE(v);
    CHECK(v->flow_id == flow);
    CHECK(v->service == "dns");
    CHECK(Bytes(v->payload.begin(), v->payload.end()) == payload);
    CHECK(reinterpret_cast<const uint8_t*>(v->service.data()) == d.data() + 6);
    CHECK(v->payload.data() == d.data() + 9);
  }
}

TEST_CASE("datagram: empty UDP payload is valid", "[datagram]") {
  const Bytes d = encode_datagram(9, "syslog", {});
  auto v = parse_datagram(d);
  REQUIRE(v);
  CHECK(v->payload.empty());
  CHECK(v->service == "syslog");
}

TEST_CASE("datagram: longest name", "[datagram]") {
  const std::string name(255, 'n');
  const Bytes d = encode_datagram(1, name, bytes({1}));
  auto v = parse_datagram(d);
  REQUIRE(v);
  CHECK(v->service == name);
  CHECK(v->payload.size() == 1);
}

TEST_CASE("datagram: truncation inside the header is rejected", "[datagram]") {
  const Bytes d = encode_datagram(1, "dns", {});
  for (size_t n = 0; n < d.size(); ++n)
    CHECK_FALSE(parse_datagram(ztna::test::prefix(d, n)));
  CHECK(parse_datagram(d));
}

TEST_CASE("datagram: unknown type is rejected", "[datagram]") {
  Bytes d = encode_datagram(1, "dns", bytes({1, 2}));
  for (int type : {0x00, 0x02, 0x20, 0x40, 0xFF}) {
    d[0] = static_cast<uint8_t>(type);
    CHECK_FALSE(parse_datagram(d));
  }
}

TEST_CASE("datagram: empty and invalid names are rejected", "[datagram]") {
  CHECK_FALSE(parse_datagram(bytes({1, 0, 0, 0, 1, 0, 'p', 'a', 'y'})));
  CHECK_FALSE(parse_datagram(bytes({1, 0, 0, 0, 1, 2, 'a', ' ', 'x'})));
  CHECK_FALSE(parse_datagram(bytes({1, 0, 0, 0, 1, 1, 0x00})));
  CHECK_FALSE(parse_datagram(bytes({1, 0, 0, 0, 1, 1, 0x80})));
}

TEST_CASE("datagram: encoder refuses invalid names", "[datagram]") {
  CHECK_THROWS_AS(encode_datagram(1, "", {}), std::invalid_argument);
  CHECK_THROWS_AS(encode_datagram(1, "d n s", {}), std::invalid_argument);
  CHECK_THROWS_AS(encode_datagram(1, std::string(256, 'n'), {}), std::invalid_argument);
}

TEST_CASE("datagram: ping and pong", "[datagram]") {
  CHECK(encode_ping(false, 0x0102030405060708ULL) == bytes({2, 1, 2, 3, 4, 5, 6, 7, 8}));
  CHECK(encode_ping(true, 7) == bytes({3, 0, 0, 0, 0, 0, 0, 0, 7}));
  auto p = parse_ping(bytes({3, 0, 0, 0, 0, 0, 0, 1, 0}));
  REQUIRE(p);
  CHECK(p->pong);
  CHECK(p->id == 256);
  CHECK_FALSE(parse_ping(bytes({2, 0, 0, 0, 0, 0, 0, 0})));       // short
  CHECK_FALSE(parse_ping(bytes({2, 0, 0, 0, 0, 0, 0, 0, 0, 0}))); // long
  CHECK_FALSE(parse_ping(bytes({1, 0, 0, 0, 0, 0, 0, 0, 0})));    // a UDP datagram
  CHECK_FALSE(parse_datagram(encode_ping(false, 1)));
}
