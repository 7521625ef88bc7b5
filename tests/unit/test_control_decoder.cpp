#include <catch2/catch.hpp>

#include <random>
#include <string>

#include "bytes.hpp"
#include "control_samples.hpp"
#include "wire/control_message.hpp"

using namespace ztna::wire;
using ztna::test::bytes;
using ztna::test::Bytes;

namespace {

// Every sample, framed and concatenated as they would appear on the stream.
Bytes sample_stream() {
  Bytes out;
  for (const auto& m : ztna::test::control_samples())
    out = ztna::test::concat(out, encode_control(m));
  return out;
}

} // namespace

TEST_CASE("ControlDecoder: whole stream in one call", "[control_decoder]") {
  ControlDecoder d;
  std::vector<ControlMessage> out;
  CHECK(d.feed(sample_stream(), out));
  CHECK(out == ztna::test::control_samples());
  CHECK(d.buffered() == 0);
  CHECK_FALSE(d.failed());
  CHECK(d.error_code() == ErrorCode::None);
  CHECK(d.error().empty());
}

TEST_CASE("ControlDecoder: one byte at a time", "[control_decoder]") {
  const Bytes stream = sample_stream();
  ControlDecoder d;
  std::vector<ControlMessage> out;
  for (uint8_t b : stream) {
    REQUIRE(d.feed(std::span<const uint8_t>(&b, 1), out));
    CHECK(d.buffered() <= kMaxControlFrame);
  }
  CHECK(out == ztna::test::control_samples());
  CHECK(d.buffered() == 0);
}

TEST_CASE("ControlDecoder: random splits", "[control_decoder]") {
  const Bytes stream = sample_stream();
  const auto expected = ztna::test::control_samples();
  std::mt19937 rng(12345); // fixed seed: the test is deterministic
  for (int round = 0; round < 300; ++round) {
    ControlDecoder d;
    std::vector<ControlMessage> out;
    std::span<const uint8_t> rest(stream);
    while (!rest.empty()) {
      std::uniform_int_distribution<size_t> piece(0, std::min<size_t>(rest.size(), 64));
      const size_t n = piece(rng);
      REQUIRE(d.feed(rest.first(n), out));
      rest = rest.subspan(n);
    }
    REQUIRE(out == expected);
    CHECK(d.buffered() == 0);
  }
}

TEST_CASE("ControlDecoder: a partial frame is held back", "[control_decoder]") {
  const Bytes frame = encode_control(OpenSession{7, "ssh"});
  ControlDecoder d;
  std::vector<ControlMessage> out;
  CHECK(d.feed(ztna::test::prefix(frame, frame.size() - 1), out));
  CHECK(out.empty());
  CHECK(d.buffered() == frame.size() - 1);
  CHECK(d.feed(std::span<const uint8_t>(frame).last(1), out));
  REQUIRE(out.size() == 1);
  CHECK(out[0] == ControlMessage{OpenSession{7, "ssh"}});
  CHECK(d.buffered() == 0);
}

TEST_CASE("ControlDecoder: empty feed is harmless", "[control_decoder]") {
  ControlDecoder d;
  std::vector<ControlMessage> out;
  CHECK(d.feed({}, out));
  CHECK(out.empty());
}

TEST_CASE("ControlDecoder: bad version fails on the first byte", "[control_decoder]") {
  for (int version : {0, 1, 2, 3, 5, 0xFF}) {
    ControlDecoder d;
    std::vector<ControlMessage> out;
    const Bytes first = bytes({version});
    CHECK_FALSE(d.feed(first, out));
    CHECK(d.failed());
    CHECK(d.error_code() == ErrorCode::UnsupportedVersion);
    CHECK(d.error() == "control stream: unsupported protocol version " + std::to_string(version) +
                           " (expected 4)");
    CHECK(d.buffered() == 0);
  }
}

TEST_CASE("ControlDecoder: unknown type fails on the second byte", "[control_decoder]") {
  for (int type : {0, 16, 0x80}) {
    ControlDecoder d;
    std::vector<ControlMessage> out;
    CHECK(d.feed(bytes({4}), out));
    CHECK_FALSE(d.feed(bytes({type}), out));
    CHECK(d.error_code() == ErrorCode::Malformed);
    CHECK(d.error() == "control stream: unknown message type " + std::to_string(type));
  }
}

TEST_CASE("ControlDecoder: oversize length fails before the payload arrives", "[control_decoder]") {
  ControlDecoder d;
  std::vector<ControlMessage> out;
  CHECK_FALSE(d.feed(bytes({4, 1, 0x10, 0x01}), out)); // 4097
  CHECK(d.error_code() == ErrorCode::Malformed);
  CHECK(d.error() == "control stream: payload length 4097 exceeds 4096");

  ControlDecoder worst;
  CHECK_FALSE(worst.feed(bytes({4, 9, 0xFF, 0xFF}), out));
  CHECK(worst.error() == "control stream: payload length 65535 exceeds 4096");
  CHECK(out.empty());
}

TEST_CASE("ControlDecoder: a maximum-length frame buffers at most one frame", "[control_decoder]") {
  ControlDecoder d;
  std::vector<ControlMessage> out;
  Bytes frame = bytes({4, 1, 0x10, 0x00}); // Hello with a 4096-byte payload
  frame.resize(kMaxControlFrame, 'a');
  CHECK(d.feed(ztna::test::prefix(frame, kMaxControlFrame - 1), out));
  CHECK(d.buffered() == kMaxControlFrame - 1);
  // The payload is garbage for a Hello, so completing the frame fails the stream.
  CHECK_FALSE(d.feed(std::span<const uint8_t>(frame).last(1), out));
  CHECK(d.error_code() == ErrorCode::Malformed);
  CHECK(d.error() == "control stream: Hello: unknown role 97");
  CHECK(d.buffered() == 0);
}

TEST_CASE("ControlDecoder: empty payload is truncation", "[control_decoder]") {
  ControlDecoder d;
  std::vector<ControlMessage> out;
  CHECK_FALSE(d.feed(bytes({4, 5, 0, 0}), out));
  CHECK(d.error() == "control stream: SessionAccept: truncated");
}

TEST_CASE("ControlDecoder: bad field inside a frame", "[control_decoder]") {
  ControlDecoder d;
  std::vector<ControlMessage> out;
  CHECK_FALSE(d.feed(bytes({4, 3, 0, 5, 0, 0, 0, 1, 0}), out));
  CHECK(d.error_code() == ErrorCode::Malformed);
  CHECK(d.error() == "control stream: OpenSession: invalid service name");
}

TEST_CASE("ControlDecoder: trailing bytes inside a frame", "[control_decoder]") {
  ControlDecoder d;
  std::vector<ControlMessage> out;
  CHECK_FALSE(d.feed(bytes({4, 5, 0, 9, 0, 0, 0, 0, 0, 0, 0, 1, 0xAA}), out));
  CHECK(d.error() == "control stream: SessionAccept: 1 trailing bytes");
}

TEST_CASE("ControlDecoder: frames before the bad one are delivered", "[control_decoder]") {
  const Bytes good = encode_control(SessionAccept{5});
  const Bytes stream = ztna::test::concat(ztna::test::concat(good, good), bytes({1}));
  ControlDecoder d;
  std::vector<ControlMessage> out;
  CHECK_FALSE(d.feed(stream, out));
  REQUIRE(out.size() == 2);
  CHECK(out[1] == ControlMessage{SessionAccept{5}});
}

TEST_CASE("ControlDecoder: stays failed after an error", "[control_decoder]") {
  ControlDecoder d;
  std::vector<ControlMessage> out;
  CHECK_FALSE(d.feed(bytes({7}), out));
  const std::string first_error = d.error();
  const Bytes good = encode_control(SessionAccept{5});
  for (int i = 0; i < 3; ++i) {
    CHECK_FALSE(d.feed(good, out));
    CHECK_FALSE(d.feed({}, out));
  }
  CHECK(out.empty());
  CHECK(d.error() == first_error);
  CHECK(d.error_code() == ErrorCode::UnsupportedVersion);
  CHECK(d.buffered() == 0);
}

TEST_CASE("ControlDecoder: truncated stream leaves bytes buffered", "[control_decoder]") {
  const Bytes stream = sample_stream();
  // Cutting the stream anywhere inside a frame leaves it buffered; the caller treats a
  // non-zero buffered() at stream end as a protocol error.
  for (size_t n : {size_t{1}, size_t{3}, size_t{4}, stream.size() - 1}) {
    ControlDecoder d;
    std::vector<ControlMessage> out;
    CHECK(d.feed(ztna::test::prefix(stream, n), out));
    CHECK(d.buffered() > 0);
    CHECK(out.size() < ztna::test::control_samples().size());
  }
}

TEST_CASE("ControlDecoder: a large burst decodes with a bounded buffer", "[control_decoder]") {
  const Bytes frame = encode_control(SessionClosed{77, ErrorCode::None});
  Bytes burst;
  for (int i = 0; i < 2000; ++i)
    burst = ztna::test::concat(std::move(burst), frame);
  burst.push_back(kControlVersion); // start of one more frame
  ControlDecoder d;
  std::vector<ControlMessage> out;
  CHECK(d.feed(burst, out));
  CHECK(out.size() == 2000);
  CHECK(d.buffered() == 1);
}
