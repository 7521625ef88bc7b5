// Socket addresses on the wire: [u8 family: 4 or 6][4 or 16 bytes IP][u16 port], big-endian.
//
// A fixed family byte (rather than deriving the family from a length) keeps the encoding
// canonical: every Address has exactly one encoding, so decode -> encode is byte-exact.
#pragma once

#include <cstdint>
#include <optional>

#include "net/address.hpp"
#include "wire/byte_io.hpp"

namespace ztna::wire {

constexpr uint8_t kFamilyV4 = 4;
constexpr uint8_t kFamilyV6 = 6;

// Throws std::invalid_argument for an empty (family-less) Address: we only ever send addresses
// we observed or bound, so an empty one is a programming error.
void write_address(ByteWriter& w, const Address& a);

// Reads one address; on truncation or an unknown family the reader is failed and nullopt is
// returned. IPv6 scope ids and flow labels are not carried.
std::optional<Address> read_address(ByteReader& r);

} // namespace ztna::wire
