#include "wire/stream_header.hpp"

#include <algorithm>
#include <stdexcept>

#include "wire/byte_io.hpp"
#include "wire/text.hpp"

namespace ztna::wire {

const char* to_string(StreamError e) {
  switch (e) {
  case StreamError::UnknownService:
    return "unknown service";
  case StreamError::BackendRefused:
    return "backend refused";
  case StreamError::BackendReset:
    return "backend reset";
  case StreamError::MalformedHeader:
    return "malformed stream header";
  case StreamError::Internal:
    return "internal error";
  case StreamError::NotAuthorized:
    return "not authorized";
  }
  return "unknown stream error";
}

std::optional<StreamError> stream_error_from_code(uint64_t code) {
  if (code >= static_cast<uint64_t>(StreamError::UnknownService) &&
      code <= static_cast<uint64_t>(StreamError::NotAuthorized))
    return static_cast<StreamError>(code);
  return std::nullopt;
}

std::vector<uint8_t> encode_stream_header(std::string_view service) {
  if (!is_valid_name(service))
    throw std::invalid_argument("encode_stream_header: invalid service name");
  std::vector<uint8_t> out;
  ByteWriter w(out);
  w.u8(kStreamHeaderVersion);
  w.str8(service);
  return out;
}

StreamHeaderDecoder::State StreamHeaderDecoder::fail(std::string reason) {
  error_ = "stream header: " + std::move(reason);
  service_.clear();
  state_ = State::Malformed;
  return state_;
}

StreamHeaderDecoder::State StreamHeaderDecoder::feed(std::span<const uint8_t> bytes,
                                                     size_t& consumed) {
  consumed = 0;
  if (state_ != State::NeedMore) return state_;
  // Byte by byte for the two fixed fields, then the name in one go; service_ never grows past
  // the announced length (at most 255 bytes).
  if (!have_version_ && consumed < bytes.size()) {
    const uint8_t v = bytes[consumed++];
    if (v != kStreamHeaderVersion)
      return fail("unsupported version " + std::to_string(v) + " (expected " +
                  std::to_string(kStreamHeaderVersion) + ")");
    have_version_ = true;
  }
  if (have_version_ && !have_length_ && consumed < bytes.size()) {
    length_ = bytes[consumed++];
    if (length_ == 0) return fail("empty service name");
    have_length_ = true;
  }
  if (!have_length_) return state_;
  const size_t n = std::min(length_ - service_.size(), bytes.size() - consumed);
  service_.append(reinterpret_cast<const char*>(bytes.data() + consumed), n);
  consumed += n;
  if (service_.size() < length_) return state_;
  if (!is_valid_name(service_)) return fail("invalid service name");
  state_ = State::Done;
  return state_;
}

std::vector<uint8_t> encode_authorization_stream(std::span<const uint8_t> authorization) {
  if (authorization.empty() || authorization.size() > kMaxAuthorizationStream)
    throw std::invalid_argument("encode_authorization_stream: bad authorization size");
  std::vector<uint8_t> out;
  ByteWriter w(out);
  w.u8(kAuthorizationStreamVersion);
  w.u16(static_cast<uint16_t>(authorization.size()));
  w.bytes(authorization);
  return out;
}

AuthorizationStreamDecoder::State AuthorizationStreamDecoder::fail(std::string reason) {
  error_ = "authorization stream: " + std::move(reason);
  buf_.clear();
  buf_.shrink_to_fit();
  state_ = State::Malformed;
  return state_;
}

AuthorizationStreamDecoder::State AuthorizationStreamDecoder::feed(std::span<const uint8_t> bytes,
                                                                   bool fin) {
  if (state_ == State::Malformed) return state_;
  if (state_ == State::Done) return bytes.empty() ? state_ : fail("bytes after the authorization");
  constexpr size_t kHeader = 3;
  // Only what the frame can hold is kept; anything beyond it is an error, not buffered.
  size_t take = std::min(bytes.size(), kHeader + kMaxAuthorizationStream - buf_.size());
  buf_.insert(buf_.end(), bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(take));
  if (!buf_.empty() && buf_[0] != kAuthorizationStreamVersion)
    return fail("unsupported version " + std::to_string(buf_[0]));
  if (buf_.size() >= kHeader) {
    const size_t len = (size_t{buf_[1]} << 8) | buf_[2];
    if (len == 0 || len > kMaxAuthorizationStream)
      return fail("authorization of " + std::to_string(len) + " bytes");
    if (buf_.size() > kHeader + len || take < bytes.size())
      return fail("bytes after the authorization");
    if (buf_.size() == kHeader + len) {
      state_ = State::Done;
      return state_;
    }
  }
  if (fin) return fail("stream ended after " + std::to_string(buf_.size()) + " bytes");
  return state_;
}

std::span<const uint8_t> AuthorizationStreamDecoder::authorization() const {
  if (state_ != State::Done) return {};
  return std::span<const uint8_t>(buf_).subspan(3);
}

} // namespace ztna::wire
