#include "wire/control_decoder.hpp"

#include <algorithm>

namespace ztna::wire {

size_t ControlDecoder::frame_size() const {
  return kControlHeaderSize + ((size_t{buf_[2]} << 8) | buf_[3]);
}

bool ControlDecoder::fail(ErrorCode code, std::string reason) {
  error_code_ = code;
  error_ = "control stream: " + std::move(reason);
  buf_.clear();
  buf_.shrink_to_fit();
  return false;
}

// Checks whatever part of the 4-byte header has arrived, so we fail on the first bad byte.
bool ControlDecoder::check_header() {
  if (buf_.size() >= 1 && buf_[0] != kControlVersion)
    return fail(ErrorCode::UnsupportedVersion, "unsupported protocol version " +
                                                   std::to_string(buf_[0]) + " (expected " +
                                                   std::to_string(kControlVersion) + ")");
  if (buf_.size() >= 2 &&
      (buf_[1] == 0 || buf_[1] > kMaxControlType))
    return fail(ErrorCode::Malformed, "unknown message type " + std::to_string(buf_[1]));
  if (buf_.size() >= kControlHeaderSize && frame_size() - kControlHeaderSize > kMaxControlPayload)
    return fail(ErrorCode::Malformed, "payload length " +
                                          std::to_string(frame_size() - kControlHeaderSize) +
                                          " exceeds " + std::to_string(kMaxControlPayload));
  return true;
}

bool ControlDecoder::feed(std::span<const uint8_t> bytes, std::vector<ControlMessage>& out) {
  if (failed()) return false;
  while (!bytes.empty()) {
    // Take only what completes the header or the current frame: the buffer never holds more
    // than one frame no matter how much the caller hands us.
    const bool in_header = buf_.size() < kControlHeaderSize;
    const size_t want = in_header ? kControlHeaderSize - buf_.size() : frame_size() - buf_.size();
    const size_t n = std::min(want, bytes.size());
    buf_.insert(buf_.end(), bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(n));
    bytes = bytes.subspan(n);
    if (in_header && !check_header()) return false;
    if (buf_.size() < kControlHeaderSize || buf_.size() < frame_size()) continue;

    std::string reason;
    auto msg = decode_control_payload(
        buf_[1], std::span<const uint8_t>(buf_).subspan(kControlHeaderSize), reason);
    if (!msg) return fail(ErrorCode::Malformed, reason);
    out.push_back(std::move(*msg));
    buf_.clear();
  }
  return true;
}

} // namespace ztna::wire
