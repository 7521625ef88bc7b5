// Big-endian byte writer and bounds-checked reader shared by every wire codec.
//
// Network byte order throughout, as in every IETF protocol we sit beside. The reader never
// throws and never reads past its span: an overrun sets a sticky failure flag and returns zeros,
// so a decoder can read a whole structure and check ok() once at the end.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace ztna::wire {

class ByteWriter {
public:
  explicit ByteWriter(std::vector<uint8_t>& out) : out_(out) {}

  void u8(uint8_t v) { out_.push_back(v); }
  void u16(uint16_t v);
  void u32(uint32_t v);
  void u64(uint64_t v);
  void bytes(std::span<const uint8_t> b) { out_.insert(out_.end(), b.begin(), b.end()); }
  void bytes(std::string_view s);
  // u8 length + bytes. Throws std::length_error if s is longer than 255 bytes: writing a
  // truncated or wrapped length would silently corrupt the frame, and encoders are given
  // our own data, so an overlong string is a programming error.
  void str8(std::string_view s);

  size_t size() const { return out_.size(); }

private:
  std::vector<uint8_t>& out_;
};

class ByteReader {
public:
  explicit ByteReader(std::span<const uint8_t> in) : in_(in) {}

  uint8_t u8();
  uint16_t u16();
  uint32_t u32();
  uint64_t u64();
  // The next n bytes as a view into the input (empty span on overrun).
  std::span<const uint8_t> bytes(size_t n);
  // A u8-length-prefixed string as a view into the input (empty on overrun).
  std::string_view str8();

  // Marks the reader failed; decoders use it for semantic errors found mid-structure.
  void fail() { ok_ = false; }
  bool ok() const { return ok_; }
  size_t remaining() const { return ok_ ? in_.size() - pos_ : 0; }
  // Everything not yet read (empty once failed).
  std::span<const uint8_t> rest() const {
    return ok_ ? in_.subspan(pos_) : std::span<const uint8_t>{};
  }
  size_t position() const { return pos_; }

private:
  bool take(size_t n);

  std::span<const uint8_t> in_;
  size_t pos_ = 0;
  bool ok_ = true;
};

} // namespace ztna::wire
