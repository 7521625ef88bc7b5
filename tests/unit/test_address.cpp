#include <catch2/catch.hpp>

#include <stdexcept>

#include "bytes.hpp"
#include "net/address.hpp"
#include "wire/address_codec.hpp"

using ztna::Address;
using ztna::test::bytes;
using ztna::test::Bytes;
using namespace ztna::wire;

TEST_CASE("Address::parse accepts IPv4 host:port", "[address]") {
  auto a = Address::parse("192.0.2.7:4433");
  REQUIRE(a);
  CHECK_FALSE(a->is_v6());
  CHECK(a->port() == 4433);
  CHECK(a->ip_bytes() == std::string("\xC0\x00\x02\x07", 4));
  CHECK(a->to_string() == "192.0.2.7:4433");
  CHECK(*a == Address::ipv4(0xC0000207, 4433));

  CHECK(Address::parse("0.0.0.0:0"));
  auto max = Address::parse("255.255.255.255:65535");
  REQUIRE(max);
  CHECK(max->port() == 65535);
}

TEST_CASE("Address::parse accepts bracketed IPv6", "[address]") {
  auto a = Address::parse("[2001:db8::1]:443");
  REQUIRE(a);
  CHECK(a->is_v6());
  CHECK(a->port() == 443);
  CHECK(a->ip_bytes().size() == 16);
  CHECK(a->to_string() == "[2001:db8::1]:443");

  auto loop = Address::parse("[::1]:1");
  REQUIRE(loop);
  CHECK(loop->to_string() == "[::1]:1");
  auto mapped = Address::parse("[::ffff:192.0.2.1]:9");
  REQUIRE(mapped);
  CHECK(mapped->is_v6()); // an IPv4-mapped address stays IPv6
}

TEST_CASE("Address::parse rejects bad ports", "[address]") {
  for (const char* text :
       {"1.2.3.4:65536", "1.2.3.4:-1", "1.2.3.4:", "1.2.3.4:80x", "1.2.3.4: 80", "1.2.3.4:+80",
        "1.2.3.4:99999999999", "[::1]:", "[::1]:65536", "[::1]:abc"}) {
    INFO(text);
    CHECK_FALSE(Address::parse(text));
  }
}

TEST_CASE("Address::parse rejects malformed hosts", "[address]") {
  for (const char* text : {"", ":80", "1.2.3.4", "1.2.3:80", "1.2.3.4.5:80", "256.1.1.1:80",
                           "host.example:80", "::1:443", "2001:db8::1:443", "[::1]443", "[::1",
                           "::1]:443", "[]:80", "[::1]:80:80", "[:::1]:80", "[1.2.3.4:80"}) {
    INFO(text);
    CHECK_FALSE(Address::parse(text));
  }
}

TEST_CASE("Address::parse rejects text with an embedded NUL", "[address]") {
  using namespace std::string_literals;
  for (const std::string& text : {"1.2.3.4\0junk:80"s, "[::1\0x]:80"s, "1.2.3.4:80\0"s}) {
    CHECK_FALSE(Address::parse(text));
    CHECK_FALSE(Address::resolve(text));
  }
}

TEST_CASE("Address to_string round-trips through parse", "[address]") {
  for (const char* text : {"10.0.0.1:1", "[fe80::1]:5353", "[::]:0", "203.0.113.9:3478"}) {
    auto a = Address::parse(text);
    REQUIRE(a);
    CHECK(a->to_string() == text);
    CHECK(Address::parse(a->to_string()) == a);
  }
}

TEST_CASE("address codec: IPv4 bytes", "[address][wire]") {
  Bytes out;
  ByteWriter w(out);
  write_address(w, *Address::parse("192.0.2.7:4433"));
  CHECK(out == bytes({4, 192, 0, 2, 7, 0x11, 0x51}));
  ByteReader r(out);
  auto a = read_address(r);
  REQUIRE(a);
  CHECK(r.ok());
  CHECK(r.remaining() == 0);
  CHECK(a->to_string() == "192.0.2.7:4433");
}

TEST_CASE("address codec: IPv6 bytes", "[address][wire]") {
  Bytes out;
  ByteWriter w(out);
  const auto v6 = *Address::parse("[2001:db8::1]:443");
  write_address(w, v6);
  REQUIRE(out.size() == 19);
  CHECK(out[0] == 6);
  CHECK(out[1] == 0x20);
  CHECK(out[2] == 0x01);
  CHECK(out[16] == 0x01);
  CHECK(out[17] == 0x01);
  CHECK(out[18] == 0xBB);
  ByteReader r(out);
  auto a = read_address(r);
  REQUIRE(a);
  CHECK(*a == v6);
  CHECK(a->to_string() == "[2001:db8::1]:443");
}

TEST_CASE("address codec: truncation at every offset fails", "[address][wire]") {
  for (const char* text : {"192.0.2.7:4433", "[2001:db8::1]:443"}) {
    Bytes out;
    ByteWriter w(out);
    write_address(w, *Address::parse(text));
    for (size_t n = 0; n < out.size(); ++n) {
      ByteReader r(ztna::test::prefix(out, n));
      CHECK_FALSE(read_address(r));
      CHECK_FALSE(r.ok());
    }
  }
}

TEST_CASE("address codec: unknown family fails", "[address][wire]") {
  for (int family : {0, 1, 5, 41, 255}) {
    Bytes in = bytes({family, 1, 2, 3, 4, 0, 80});
    in.resize(19, 0);
    ByteReader r(in);
    CHECK_FALSE(read_address(r));
    CHECK_FALSE(r.ok());
  }
}

TEST_CASE("address codec: an empty Address cannot be written", "[address][wire]") {
  Bytes out;
  ByteWriter w(out);
  CHECK_THROWS_AS(write_address(w, Address{}), std::invalid_argument);
  CHECK(out.empty());
}
