#include <catch2/catch.hpp>

#include <random>
#include <stdexcept>
#include <string>

#include "bytes.hpp"
#include "wire/stream_header.hpp"

using namespace ztna::wire;
using ztna::test::bytes;
using ztna::test::Bytes;
using State = StreamHeaderDecoder::State;

TEST_CASE("stream header: exact bytes", "[stream_header]") {
  CHECK(encode_stream_header("ssh") == bytes({1, 3, 's', 's', 'h'}));
  const Bytes max = encode_stream_header(std::string(255, 'x'));
  CHECK(max.size() == kMaxStreamHeaderSize);
  CHECK(max[1] == 255);
}

TEST_CASE("stream header: encoder refuses invalid names", "[stream_header]") {
  CHECK_THROWS_AS(encode_stream_header(""), std::invalid_argument);
  CHECK_THROWS_AS(encode_stream_header("a b"), std::invalid_argument);
  CHECK_THROWS_AS(encode_stream_header(std::string(256, 'x')), std::invalid_argument);
}

TEST_CASE("stream header: whole header followed by application data", "[stream_header]") {
  const Bytes data = ztna::test::concat(encode_stream_header("postgres"), bytes("SELECT 1"));
  StreamHeaderDecoder d;
  size_t consumed = 99;
  CHECK(d.feed(data, consumed) == State::Done);
  CHECK(consumed == 10);
  CHECK(d.service() == "postgres");
  CHECK(d.error().empty());
  // Once done, nothing more is consumed.
  CHECK(d.feed(data, consumed) == State::Done);
  CHECK(consumed == 0);
  CHECK(d.state() == State::Done);
}

TEST_CASE("stream header: one byte at a time", "[stream_header]") {
  const Bytes header = encode_stream_header("web");
  StreamHeaderDecoder d;
  size_t consumed = 0;
  for (size_t i = 0; i + 1 < header.size(); ++i) {
    CHECK(d.feed(std::span<const uint8_t>(&header[i], 1), consumed) == State::NeedMore);
    CHECK(consumed == 1);
  }
  CHECK(d.feed(std::span<const uint8_t>(&header.back(), 1), consumed) == State::Done);
  CHECK(consumed == 1);
  CHECK(d.service() == "web");
}

TEST_CASE("stream header: random splits separate header from data", "[stream_header]") {
  const std::string service(200, 's');
  const Bytes app = bytes("GET / HTTP/1.1\r\n\r\n");
  const Bytes stream = ztna::test::concat(encode_stream_header(service), app);
  std::mt19937 rng(777);
  for (int round = 0; round < 300; ++round) {
    StreamHeaderDecoder d;
    Bytes after;
    std::span<const uint8_t> rest(stream);
    State st = State::NeedMore;
    while (!rest.empty()) {
      std::uniform_int_distribution<size_t> piece(0, std::min<size_t>(rest.size(), 40));
      const auto chunk = rest.first(piece(rng));
      rest = rest.subspan(chunk.size());
      size_t consumed = 0;
      st = d.feed(chunk, consumed);
      REQUIRE(st != State::Malformed);
      REQUIRE(consumed <= chunk.size());
      if (st == State::Done) after.insert(after.end(), chunk.begin() + consumed, chunk.end());
    }
    REQUIRE(st == State::Done);
    CHECK(d.service() == service);
    CHECK(after == app);
  }
}

TEST_CASE("stream header: empty feed needs more", "[stream_header]") {
  StreamHeaderDecoder d;
  size_t consumed = 5;
  CHECK(d.feed({}, consumed) == State::NeedMore);
  CHECK(consumed == 0);
}

TEST_CASE("stream header: bad version", "[stream_header]") {
  for (int version : {0, 2, 0x20, 0xFF}) {
    StreamHeaderDecoder d;
    size_t consumed = 0;
    CHECK(d.feed(bytes({version, 3, 's', 's', 'h'}), consumed) == State::Malformed);
    CHECK(d.error() ==
          "stream header: unsupported version " + std::to_string(version) + " (expected 1)");
    CHECK(d.service().empty());
  }
}

TEST_CASE("stream header: empty and invalid names", "[stream_header]") {
  StreamHeaderDecoder empty;
  size_t consumed = 0;
  CHECK(empty.feed(bytes({1, 0, 'x'}), consumed) == State::Malformed);
  CHECK(empty.error() == "stream header: empty service name");

  for (const Bytes& bad : {bytes({1, 2, 'a', ' '}), bytes({1, 1, 0x7F}), bytes({1, 1, '\n'}),
                           bytes({1, 2, 0xC3, 0x28})}) {
    StreamHeaderDecoder d;
    CHECK(d.feed(bad, consumed) == State::Malformed);
    CHECK(d.error() == "stream header: invalid service name");
    CHECK(d.service().empty());
  }
}

TEST_CASE("stream header: stays malformed", "[stream_header]") {
  StreamHeaderDecoder d;
  size_t consumed = 0;
  CHECK(d.feed(bytes({9}), consumed) == State::Malformed);
  const std::string error = d.error();
  CHECK(d.feed(encode_stream_header("ssh"), consumed) == State::Malformed);
  CHECK(consumed == 0);
  CHECK(d.error() == error);
  CHECK(d.state() == State::Malformed);
}

TEST_CASE("stream header: truncated header needs more at every offset", "[stream_header]") {
  const Bytes header = encode_stream_header("ssh");
  for (size_t n = 0; n < header.size(); ++n) {
    StreamHeaderDecoder d;
    size_t consumed = 0;
    CHECK(d.feed(ztna::test::prefix(header, n), consumed) == State::NeedMore);
    CHECK(consumed == n);
  }
}

TEST_CASE("stream errors", "[stream_header]") {
  CHECK(static_cast<uint64_t>(StreamError::UnknownService) == 0x101);
  CHECK(static_cast<uint64_t>(StreamError::Internal) == 0x105);
  CHECK(std::string(to_string(StreamError::UnknownService)) == "unknown service");
  CHECK(std::string(to_string(StreamError::BackendRefused)) == "backend refused");
  CHECK(std::string(to_string(StreamError::BackendReset)) == "backend reset");
  CHECK(std::string(to_string(StreamError::MalformedHeader)) == "malformed stream header");
  CHECK(std::string(to_string(StreamError::Internal)) == "internal error");
  CHECK(std::string(to_string(StreamError::NotAuthorized)) == "not authorized");
  CHECK(std::string(to_string(static_cast<StreamError>(7))) == "unknown stream error");
  for (uint64_t code = 0x101; code <= 0x106; ++code)
    CHECK(stream_error_from_code(code) == static_cast<StreamError>(code));
  CHECK_FALSE(stream_error_from_code(0));
  CHECK_FALSE(stream_error_from_code(0x100));
  CHECK_FALSE(stream_error_from_code(0x107));
}
