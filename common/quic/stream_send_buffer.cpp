#include "quic/stream_send_buffer.hpp"

#include <algorithm>

namespace ztna::quic {

void StreamSendBuffer::append(std::span<const uint8_t> bytes) {
  while (!bytes.empty()) {
    if (chunks_.empty() || chunks_.back().size() == kChunkSize) {
      chunks_.emplace_back();
      chunks_.back().reserve(kChunkSize);
    }
    auto& tail = chunks_.back();
    size_t n = std::min(bytes.size(), kChunkSize - tail.size());
    tail.insert(tail.end(), bytes.begin(), bytes.begin() + static_cast<ptrdiff_t>(n));
    bytes = bytes.subspan(n);
    end_ += n;
  }
}

ngtcp2_vec StreamSendBuffer::unsent() const {
  if (sent_ >= end_) return {nullptr, 0};
  uint64_t offset = front_offset_;
  for (const auto& chunk : chunks_) {
    if (sent_ < offset + chunk.size()) {
      size_t at = static_cast<size_t>(sent_ - offset);
      return {const_cast<uint8_t*>(chunk.data() + at), chunk.size() - at};
    }
    offset += chunk.size();
  }
  return {nullptr, 0};
}

void StreamSendBuffer::acknowledge_to(uint64_t offset) {
  // Bytes beyond sent_ are still to be handed out: releasing them would free memory that
  // unsent() later points into.
  acked_ = std::max(acked_, std::min(offset, sent_));
  while (!chunks_.empty() && chunks_.front().size() == kChunkSize &&
         front_offset_ + kChunkSize <= acked_) {
    front_offset_ += kChunkSize;
    chunks_.pop_front();
  }
  if (!chunks_.empty() && acked_ == end_ && sent_ == end_) {
    // Everything is acknowledged: drop the partial tail chunk too.
    front_offset_ = end_;
    chunks_.clear();
  }
}

} // namespace ztna::quic
