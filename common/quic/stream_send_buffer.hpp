// Bytes written to one QUIC stream, kept until the peer acknowledges them.
//
// ngtcp2 does not copy stream data: it keeps pointers into our buffers for retransmission
// until acked_stream_data_offset reports them acknowledged. Chunks therefore never move or
// grow past their reserved capacity once bytes are handed out.
#pragma once

#include <ngtcp2/ngtcp2.h>

#include <algorithm>
#include <cstdint>
#include <deque>
#include <span>
#include <vector>

namespace ztna::quic {

class StreamSendBuffer {
public:
  static constexpr size_t kChunkSize = 16 * 1024;

  void append(std::span<const uint8_t> bytes);
  // The next unsent bytes (contiguous, possibly empty).
  ngtcp2_vec unsent() const;
  void mark_sent(size_t n) { sent_ = std::min(end_, sent_ + n); }
  // The peer acknowledged everything below `offset` (never more than was sent).
  void acknowledge_to(uint64_t offset);

  bool has_unsent() const { return sent_ < end_; }
  // Bytes not yet acknowledged (sent or not): the memory this stream pins.
  size_t outstanding() const { return static_cast<size_t>(end_ - acked_); }
  uint64_t sent_offset() const { return sent_; }
  uint64_t end_offset() const { return end_; }

private:
  std::deque<std::vector<uint8_t>> chunks_;
  uint64_t front_offset_ = 0; // stream offset of chunks_.front()[0]
  uint64_t acked_ = 0;
  uint64_t sent_ = 0;
  uint64_t end_ = 0;
};

} // namespace ztna::quic
