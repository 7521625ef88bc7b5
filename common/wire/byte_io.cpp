#include "wire/byte_io.hpp"

#include <stdexcept>

namespace ztna::wire {

void ByteWriter::u16(uint16_t v) {
  u8(static_cast<uint8_t>(v >> 8));
  u8(static_cast<uint8_t>(v));
}

void ByteWriter::u32(uint32_t v) {
  u16(static_cast<uint16_t>(v >> 16));
  u16(static_cast<uint16_t>(v));
}

void ByteWriter::u64(uint64_t v) {
  u32(static_cast<uint32_t>(v >> 32));
  u32(static_cast<uint32_t>(v));
}

void ByteWriter::bytes(std::string_view s) {
  const auto* p = reinterpret_cast<const uint8_t*>(s.data());
  out_.insert(out_.end(), p, p + s.size());
}

void ByteWriter::str8(std::string_view s) {
  if (s.size() > 255) throw std::length_error("str8: string longer than 255 bytes");
  u8(static_cast<uint8_t>(s.size()));
  bytes(s);
}

// Advances by n if that stays inside the input; otherwise fails for good.
bool ByteReader::take(size_t n) {
  if (!ok_ || n > in_.size() - pos_) {
    ok_ = false;
    return false;
  }
  pos_ += n;
  return true;
}

uint8_t ByteReader::u8() {
  if (!take(1)) return 0;
  return in_[pos_ - 1];
}

uint16_t ByteReader::u16() {
  if (!take(2)) return 0;
  const uint8_t* p = in_.data() + pos_ - 2;
  return static_cast<uint16_t>((p[0] << 8) | p[1]);
}

uint32_t ByteReader::u32() {
  if (!take(4)) return 0;
  const uint8_t* p = in_.data() + pos_ - 4;
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
}

uint64_t ByteReader::u64() {
  if (!take(8)) return 0;
  const uint8_t* p = in_.data() + pos_ - 8;
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i)
    v = (v << 8) | p[i];
  return v;
}

std::span<const uint8_t> ByteReader::bytes(size_t n) {
  if (!take(n)) return {};
  return in_.subspan(pos_ - n, n);
}

std::string_view ByteReader::str8() {
  size_t n = u8();
  auto b = bytes(n);
  if (!ok_) return {};
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}

} // namespace ztna::wire
