// StreamHeaderDecoder on arbitrary stream bytes, fed whole and in pieces; both must agree, and
// an accepted header must be exactly encode_stream_header(service).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>

#include "fuzz_check.hpp"
#include "wire/stream_header.hpp"

using namespace ztna::wire;
using State = StreamHeaderDecoder::State;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const size_t piece = (data[0] % 7) + 1;
  const std::span<const uint8_t> stream(data + 1, size - 1);

  StreamHeaderDecoder whole;
  size_t consumed_whole = 0;
  const State st = whole.feed(stream, consumed_whole);
  FUZZ_CHECK(consumed_whole <= stream.size());
  FUZZ_CHECK(consumed_whole <= kMaxStreamHeaderSize);

  StreamHeaderDecoder split;
  size_t consumed_split = 0;
  State st_split = State::NeedMore;
  for (size_t off = 0; off < stream.size() && st_split == State::NeedMore; off += piece) {
    const size_t n = stream.size() - off < piece ? stream.size() - off : piece;
    size_t consumed = 0;
    st_split = split.feed(stream.subspan(off, n), consumed);
    FUZZ_CHECK(consumed <= n);
    consumed_split += consumed;
  }
  FUZZ_CHECK(st_split == st);
  FUZZ_CHECK(split.service() == whole.service());
  FUZZ_CHECK(split.error() == whole.error());

  if (st == State::Done) {
    FUZZ_CHECK(consumed_split == consumed_whole);
    const auto header = encode_stream_header(whole.service());
    FUZZ_CHECK(header.size() == consumed_whole);
    FUZZ_CHECK(std::equal(header.begin(), header.end(), stream.begin()));
  } else if (st == State::Malformed) {
    FUZZ_CHECK(!whole.error().empty());
  } else {
    FUZZ_CHECK(consumed_whole == stream.size());
  }
  return 0;
}
