#include <catch2/catch.hpp>

#include <stdexcept>
#include <string>

#include "bytes.hpp"
#include "wire/byte_io.hpp"

using namespace ztna::wire;
using ztna::test::bytes;
using ztna::test::Bytes;

TEST_CASE("ByteWriter writes big-endian integers", "[byte_io]") {
  Bytes out;
  ByteWriter w(out);
  w.u8(0xAB);
  w.u16(0x0102);
  w.u32(0x03040506);
  w.u64(0x0708090A0B0C0D0EULL);
  CHECK(out == bytes({0xAB, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14}));
  CHECK(w.size() == 15);
}

TEST_CASE("ByteWriter appends raw bytes and str8", "[byte_io]") {
  Bytes out{0xFF};
  ByteWriter w(out);
  w.bytes(bytes({1, 2}));
  w.bytes(std::string_view("xy"));
  w.str8("abc");
  w.str8("");
  CHECK(out == bytes({0xFF, 1, 2, 'x', 'y', 3, 'a', 'b', 'c', 0}));
}

TEST_CASE("ByteWriter::str8 takes 255 bytes and refuses 256", "[byte_io]") {
  Bytes out;
  ByteWriter w(out);
  w.str8(std::string(255, 'a'));
  CHECK(out.size() == 256);
  CHECK(out[0] == 255);
  CHECK_THROWS_AS(w.str8(std::string(256, 'a')), std::length_error);
  CHECK(out.size() == 256); // nothing written by the failed call
}

TEST_CASE("ByteReader reads what ByteWriter wrote", "[byte_io]") {
  Bytes out;
  ByteWriter w(out);
  w.u8(0x80);
  w.u16(0xFFFE);
  w.u32(0xDEADBEEF);
  w.u64(0xFFFFFFFFFFFFFFFFULL);
  w.str8("name");
  w.bytes(bytes({9, 8, 7}));

  ByteReader r(out);
  CHECK(r.u8() == 0x80);
  CHECK(r.u16() == 0xFFFE);
  CHECK(r.u32() == 0xDEADBEEF);
  CHECK(r.u64() == 0xFFFFFFFFFFFFFFFFULL);
  CHECK(r.str8() == "name");
  CHECK(r.remaining() == 3);
  CHECK(r.position() == out.size() - 3);
  auto rest = r.rest();
  REQUIRE(rest.size() == 3);
  CHECK(rest.data() == out.data() + out.size() - 3); // a view, not a copy
  auto b = r.bytes(3);
  CHECK(Bytes(b.begin(), b.end()) == bytes({9, 8, 7}));
  CHECK(r.ok());
  CHECK(r.remaining() == 0);
}

TEST_CASE("ByteReader overrun is sticky and returns zeros", "[byte_io]") {
  const Bytes in = bytes({1, 2, 3});
  ByteReader r(in);
  CHECK(r.u32() == 0);
  CHECK_FALSE(r.ok());
  CHECK(r.position() == 0); // a failed read does not advance
  CHECK(r.u8() == 0);       // even though bytes remain, the reader stays failed
  CHECK_FALSE(r.ok());
  CHECK(r.remaining() == 0);
  CHECK(r.rest().empty());
  CHECK(r.bytes(1).empty());
  CHECK(r.str8().empty());
}

TEST_CASE("ByteReader fails on each integer width at every short length", "[byte_io]") {
  const Bytes in = bytes({1, 2, 3, 4, 5, 6, 7, 8});
  for (size_t n = 0; n < 8; ++n) {
    ByteReader r(ztna::test::prefix(in, n));
    if (n < 1)
      r.u8();
    else if (n < 2)
      r.u16();
    else if (n < 4)
      r.u32();
    else
      r.u64();
    CHECK_FALSE(r.ok());
  }
  ByteReader exact(in);
  CHECK(exact.u64() == 0x0102030405060708ULL);
  CHECK(exact.ok());
}

TEST_CASE("ByteReader::str8 fails when the length runs past the end", "[byte_io]") {
  const Bytes in = bytes({4, 'a', 'b', 'c'});
  ByteReader r(in);
  CHECK(r.str8().empty());
  CHECK_FALSE(r.ok());

  ByteReader empty(std::span<const uint8_t>{});
  CHECK(empty.str8().empty());
  CHECK_FALSE(empty.ok());
}

TEST_CASE("ByteReader::fail marks the reader failed", "[byte_io]") {
  const Bytes in = bytes({1, 2});
  ByteReader r(in);
  r.fail();
  CHECK_FALSE(r.ok());
  CHECK(r.u8() == 0);
}

TEST_CASE("ByteReader::bytes with a huge count does not overflow", "[byte_io]") {
  const Bytes in = bytes({1, 2, 3});
  ByteReader r(in);
  r.u8();
  CHECK(r.bytes(SIZE_MAX).empty());
  CHECK_FALSE(r.ok());
}
