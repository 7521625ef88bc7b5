// parse_stun and verify_stun_integrity on arbitrary datagrams. Checks that
//  - an accepted datagram passes is_stun, and the demultiplexer hands it to STUN unless its
//    method is 0x100 or above,
//  - every accepted message re-encodes (without and with MESSAGE-INTEGRITY) to bytes that parse
//    back to the same message, and the protected encoding verifies with its key,
//  - verify_stun_integrity never crashes, and only says yes for a message the parser also
//    recognises as carrying MESSAGE-INTEGRITY.
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include "fuzz_check.hpp"
#include "wire/packet_class.hpp"
#include "wire/stun_message.hpp"

using namespace ztna::wire;

namespace {

// The RFC 5769 password, so that the seeds taken from it exercise the successful path too.
const std::string kKey = "VOkJxbRl1RmTxUk/WvJxBt";

std::span<const uint8_t> key_bytes() {
  return {reinterpret_cast<const uint8_t*>(kKey.data()), kKey.size()};
}

StunMessage without_flags(StunMessage m) {
  m.has_integrity = false;
  m.has_fingerprint = false;
  return m;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::span<const uint8_t> datagram(data, size);
  const bool verified = verify_stun_integrity(datagram, key_bytes());
  FUZZ_CHECK(!verify_stun_integrity(datagram, {}));

  std::string error;
  auto m = parse_stun(datagram, error);
  if (!m) {
    FUZZ_CHECK(!error.empty() && error.find('\n') == std::string::npos);
    return 0;
  }
  FUZZ_CHECK(is_stun(datagram));
  // The codec takes any 12-bit method; methods from 0x100 up start with a byte above 0x03, which
  // the demultiplexer does not route to STUN (RFC 9443 §3). Binding (0x001) always is.
  FUZZ_CHECK((classify_packet(datagram) == PacketClass::Stun) == (data[0] <= kStunFirstByteMax));
  FUZZ_CHECK(m->method >= 0x100 || data[0] <= kStunFirstByteMax);
  FUZZ_CHECK(size <= kMaxStunDatagram && size % 4 == 0);
  FUZZ_CHECK(!verified || m->has_integrity);
  (void)to_string(*m);

  const StunMessage want = without_flags(*m);
  const auto plain = encode_stun(want, {});
  std::string error2;
  auto again = parse_stun(plain, error2);
  FUZZ_CHECK(again);
  FUZZ_CHECK(!again->has_integrity && again->has_fingerprint);
  FUZZ_CHECK(without_flags(*again) == want);
  FUZZ_CHECK(encode_stun(*again, {}) == plain);

  const auto protected_msg = encode_stun(want, key_bytes());
  FUZZ_CHECK(verify_stun_integrity(protected_msg, key_bytes()));
  auto protected_again = parse_stun(protected_msg, error2);
  FUZZ_CHECK(protected_again && protected_again->has_integrity && protected_again->has_fingerprint);
  FUZZ_CHECK(without_flags(*protected_again) == want);
  return 0;
}
