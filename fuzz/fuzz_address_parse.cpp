// Address::parse on arbitrary text. An accepted address must print to text that parses back
// to the same address, and survive the wire address codec unchanged.
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "fuzz_check.hpp"
#include "net/address.hpp"
#include "wire/address_codec.hpp"

using namespace ztna::wire;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto a = ztna::Address::parse(text);
  if (!a) return 0;
  FUZZ_CHECK(!a->empty());
  FUZZ_CHECK(text.find('\0') == std::string_view::npos); // no text hidden behind a NUL
  auto again = ztna::Address::parse(a->to_string());
  FUZZ_CHECK(again && *again == *a);

  std::vector<uint8_t> wire;
  ByteWriter w(wire);
  write_address(w, *a);
  FUZZ_CHECK(wire.size() == (a->is_v6() ? 19u : 7u));
  ByteReader r(wire);
  auto decoded = read_address(r);
  FUZZ_CHECK(decoded && *decoded == *a && r.remaining() == 0);
  return 0;
}
