// Reassembles control frames from a QUIC stream's byte stream.
//
// Stream data arrives in pieces of any size (RFC 9000 §2.2: no message boundaries), so the
// decoder buffers at most one frame and checks each header byte as soon as it arrives: a peer
// speaking another version or sending an oversize length is rejected before we buffer its frame.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "wire/control_message.hpp"

namespace ztna::wire {

class ControlDecoder {
public:
  // Appends bytes and decodes every complete frame into `out` (appended, never cleared).
  // Returns false once the stream is malformed (bad version, unknown type, oversize length, bad
  // field); frames completed earlier in the same call are still appended. After that every call
  // returns false and error() says why in one human-readable line. Buffered bytes never exceed
  // kMaxControlFrame.
  bool feed(std::span<const uint8_t> bytes, std::vector<ControlMessage>& out);

  const std::string& error() const { return error_; }
  // Malformed or UnsupportedVersion once failed; None while healthy.
  ErrorCode error_code() const { return error_code_; }
  bool failed() const { return error_code_ != ErrorCode::None; }
  // Bytes of a partial frame held back; non-zero at stream end means the peer cut a frame.
  size_t buffered() const { return buf_.size(); }

private:
  bool check_header();
  size_t frame_size() const;
  bool fail(ErrorCode code, std::string reason);

  std::vector<uint8_t> buf_;
  ErrorCode error_code_ = ErrorCode::None;
  std::string error_;
};

} // namespace ztna::wire
