#include <catch2/catch.hpp>

#include <cstring>
#include <vector>

#include "quic/stream_send_buffer.hpp"

using ztna::quic::StreamSendBuffer;

namespace {

constexpr size_t kChunk = StreamSendBuffer::kChunkSize;

// `n` bytes whose values encode their stream offset, so misplaced bytes are visible.
std::vector<uint8_t> pattern(size_t n, size_t from = 0) {
  std::vector<uint8_t> out(n);
  for (size_t i = 0; i < n; ++i)
    out[i] = static_cast<uint8_t>(((from + i) * 31 + 7) & 0xff);
  return out;
}

// Drains every unsent byte, `step` bytes at a time at most, the way ngtcp2 takes data.
std::vector<uint8_t> drain(StreamSendBuffer& b, size_t step) {
  std::vector<uint8_t> out;
  while (b.has_unsent()) {
    auto v = b.unsent();
    REQUIRE(v.base != nullptr);
    REQUIRE(v.len > 0);
    size_t n = std::min(step, v.len);
    out.insert(out.end(), v.base, v.base + n);
    b.mark_sent(n);
  }
  return out;
}

} // namespace

TEST_CASE("StreamSendBuffer starts empty", "[stream_send_buffer]") {
  StreamSendBuffer b;
  CHECK_FALSE(b.has_unsent());
  CHECK(b.outstanding() == 0);
  CHECK(b.sent_offset() == 0);
  CHECK(b.end_offset() == 0);
  auto v = b.unsent();
  CHECK(v.base == nullptr);
  CHECK(v.len == 0);
  b.append({}); // appending nothing changes nothing
  CHECK_FALSE(b.has_unsent());
  CHECK(b.end_offset() == 0);
}

TEST_CASE("StreamSendBuffer appends across chunk boundaries", "[stream_send_buffer]") {
  StreamSendBuffer b;
  // Odd sizes so that appends straddle chunk boundaries.
  size_t total = 0;
  for (size_t n : {size_t(1), kChunk - 1, size_t(2), kChunk * 2 + 5, size_t(333)}) {
    auto part = pattern(n, total);
    b.append(part);
    total += n;
    CHECK(b.end_offset() == total);
  }
  CHECK(b.outstanding() == total);
  CHECK(b.has_unsent());

  auto out = drain(b, SIZE_MAX);
  CHECK(out == pattern(total));
  CHECK(b.sent_offset() == total);
  CHECK_FALSE(b.has_unsent());
  CHECK(b.outstanding() == total); // sent is not acknowledged
}

TEST_CASE("StreamSendBuffer::unsent is contiguous within one chunk", "[stream_send_buffer]") {
  StreamSendBuffer b;
  b.append(pattern(kChunk + 100));

  auto first = b.unsent();
  CHECK(first.len == kChunk); // stops at the chunk boundary
  CHECK(std::memcmp(first.base, pattern(kChunk).data(), kChunk) == 0);

  b.mark_sent(10);
  auto second = b.unsent();
  CHECK(second.base == first.base + 10);
  CHECK(second.len == kChunk - 10);
  CHECK(b.sent_offset() == 10);

  b.mark_sent(kChunk - 10);
  auto third = b.unsent();
  CHECK(third.len == 100);
  CHECK(std::memcmp(third.base, pattern(100, kChunk).data(), 100) == 0);

  b.mark_sent(100);
  CHECK(b.unsent().len == 0);
  CHECK(b.unsent().base == nullptr);
}

TEST_CASE("StreamSendBuffer drains intact in small pieces", "[stream_send_buffer]") {
  StreamSendBuffer b;
  auto data = pattern(3 * kChunk + 17);
  b.append(data);
  CHECK(drain(b, 1000) == data);
}

TEST_CASE("StreamSendBuffer::acknowledge_to frees acknowledged chunks", "[stream_send_buffer]") {
  StreamSendBuffer b;
  size_t total = 3 * kChunk + 50;
  b.append(pattern(total));
  drain(b, 1200);

  b.acknowledge_to(100);
  CHECK(b.outstanding() == total - 100);
  b.acknowledge_to(kChunk + 1);
  CHECK(b.outstanding() == total - kChunk - 1);
  b.acknowledge_to(total);
  CHECK(b.outstanding() == 0);
  CHECK(b.end_offset() == total);
  CHECK(b.sent_offset() == total);

  // The stream goes on after everything was acknowledged and released.
  b.append(pattern(10, total));
  CHECK(b.end_offset() == total + 10);
  CHECK(b.outstanding() == 10);
  auto v = b.unsent();
  REQUIRE(v.len == 10);
  CHECK(std::memcmp(v.base, pattern(10, total).data(), 10) == 0);
}

TEST_CASE("StreamSendBuffer keeps unacknowledged data for retransmission", "[stream_send_buffer]") {
  StreamSendBuffer b;
  b.append(pattern(2 * kChunk));
  auto head = b.unsent();
  b.mark_sent(2 * kChunk);
  // Half of the first chunk acknowledged: its bytes beyond that must still be readable.
  b.acknowledge_to(kChunk / 2);
  CHECK(b.outstanding() == 2 * kChunk - kChunk / 2);
  CHECK(std::memcmp(head.base + kChunk / 2, pattern(kChunk / 2, kChunk / 2).data(), kChunk / 2) ==
        0);
}

TEST_CASE("StreamSendBuffer ignores stale and out-of-range acknowledgements",
          "[stream_send_buffer]") {
  StreamSendBuffer b;
  b.append(pattern(kChunk + 10));
  drain(b, SIZE_MAX);

  b.acknowledge_to(kChunk);
  CHECK(b.outstanding() == 10);
  SECTION("twice") {
    b.acknowledge_to(kChunk);
    CHECK(b.outstanding() == 10);
  }
  SECTION("going backwards") {
    b.acknowledge_to(5);
    CHECK(b.outstanding() == 10);
  }
  SECTION("beyond the end") {
    b.acknowledge_to(kChunk + 1000);
    CHECK(b.outstanding() == 0);
    b.append(pattern(3, kChunk + 10));
    CHECK(b.outstanding() == 3);
    CHECK(b.end_offset() == kChunk + 13);
    auto v = b.unsent();
    REQUIRE(v.len == 3);
    CHECK(std::memcmp(v.base, pattern(3, kChunk + 10).data(), 3) == 0);
  }
}

TEST_CASE("StreamSendBuffer never acknowledges bytes it has not sent", "[stream_send_buffer]") {
  // ngtcp2 never acknowledges unsent bytes; if a caller did, the unsent bytes must stay
  // intact rather than be freed under the sender.
  StreamSendBuffer b;
  auto data = pattern(3 * kChunk);
  b.append(data);
  b.mark_sent(100);
  b.acknowledge_to(2 * kChunk + 5);
  CHECK(b.outstanding() == 3 * kChunk - 100);
  auto rest = drain(b, SIZE_MAX);
  CHECK(rest == std::vector<uint8_t>(data.begin() + 100, data.end()));
}

TEST_CASE("StreamSendBuffer pointers stay valid until acknowledged", "[stream_send_buffer]") {
  // ngtcp2 keeps the pointers it was given (for retransmission) until the bytes are acked.
  StreamSendBuffer b;
  b.append(pattern(100));
  auto v = b.unsent();
  REQUIRE(v.len == 100);
  const uint8_t* p = v.base;
  b.mark_sent(100);
  auto before = std::vector<uint8_t>(p, p + 100);

  // Many appends fill the partial chunk and add new ones; the handed-out bytes stay put.
  size_t total = 100;
  for (int i = 0; i < 50; ++i) {
    auto part = pattern(777 * (i + 1), total);
    b.append(part);
    total += part.size();
  }
  CHECK(std::vector<uint8_t>(p, p + 100) == before);
  auto next = b.unsent();
  CHECK(next.base == p + 100); // the same chunk continues right after the sent bytes

  // Partial acknowledgement of the chunk does not move it either.
  b.acknowledge_to(50);
  CHECK(std::vector<uint8_t>(p + 50, p + 100) ==
        std::vector<uint8_t>(before.begin() + 50, before.end()));
  CHECK(drain(b, 1400) == pattern(total - 100, 100));
}
