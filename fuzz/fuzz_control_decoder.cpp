// ControlDecoder on arbitrary stream bytes. Checks that
//  - the result does not depend on how the stream is split into pieces,
//  - the buffer stays within one frame,
//  - every decoded message re-encodes to exactly the bytes it came from (canonical encoding),
//    and those bytes decode back to the same message.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "fuzz_check.hpp"
#include "wire/control_message.hpp"

using namespace ztna::wire;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  // The first byte picks the split size for the second pass; the rest is the stream.
  const size_t piece = (data[0] % 17) + 1;
  const std::span<const uint8_t> stream(data + 1, size - 1);

  ControlDecoder whole;
  std::vector<ControlMessage> out_whole;
  const bool ok_whole = whole.feed(stream, out_whole);
  FUZZ_CHECK(whole.buffered() <= kMaxControlFrame);
  FUZZ_CHECK(ok_whole == !whole.failed());
  FUZZ_CHECK(ok_whole || !whole.error().empty());
  FUZZ_CHECK(ok_whole || whole.error_code() == ErrorCode::Malformed ||
             whole.error_code() == ErrorCode::UnsupportedVersion);

  ControlDecoder split;
  std::vector<ControlMessage> out_split;
  bool ok_split = true;
  for (size_t off = 0; off < stream.size(); off += piece) {
    const size_t n = stream.size() - off < piece ? stream.size() - off : piece;
    ok_split = split.feed(stream.subspan(off, n), out_split);
    FUZZ_CHECK(split.buffered() <= kMaxControlFrame);
    if (!ok_split) break;
  }
  FUZZ_CHECK(ok_split == ok_whole);
  FUZZ_CHECK(out_split == out_whole);
  FUZZ_CHECK(split.error() == whole.error());

  std::vector<uint8_t> reencoded;
  for (const auto& m : out_whole) {
    const auto frame = encode_control(m);
    reencoded.insert(reencoded.end(), frame.begin(), frame.end());
  }
  FUZZ_CHECK(reencoded.size() <= stream.size());
  FUZZ_CHECK(std::equal(reencoded.begin(), reencoded.end(), stream.begin()));

  ControlDecoder again;
  std::vector<ControlMessage> out_again;
  FUZZ_CHECK(again.feed(reencoded, out_again));
  FUZZ_CHECK(again.buffered() == 0);
  FUZZ_CHECK(out_again == out_whole);
  return 0;
}
