// parse_datagram and parse_ping on arbitrary DATAGRAM payloads; an accepted one must re-encode
// to the same bytes.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>

#include "fuzz_check.hpp"
#include "wire/datagram_frame.hpp"
#include "wire/text.hpp"

using namespace ztna::wire;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (auto p = parse_ping(std::span<const uint8_t>(data, size))) {
    const auto again = encode_ping(p->pong, p->id);
    FUZZ_CHECK(again.size() == size && std::equal(again.begin(), again.end(), data));
  }
  auto v = parse_datagram(std::span<const uint8_t>(data, size));
  if (!v) return 0;
  FUZZ_CHECK(is_valid_name(v->service));
  FUZZ_CHECK(datagram_overhead(v->service) + v->payload.size() == size);
  const auto again = encode_datagram(v->flow_id, v->service, v->payload);
  FUZZ_CHECK(again.size() == size && std::equal(again.begin(), again.end(), data));
  return 0;
}
