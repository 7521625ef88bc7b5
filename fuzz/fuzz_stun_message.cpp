// parse_stun, inspect_stun, verify_stun_integrity, read_binding_response and the Binding server
// (stun::BindingServer) on arbitrary datagrams. Checks that
//  - an accepted datagram passes is_stun, and the demultiplexer hands it to STUN unless its
//    method is 0x100 or above,
//  - every accepted message whose canonical form fits in one datagram re-encodes (without and
//    with MESSAGE-INTEGRITY) to bytes that parse back to the same message, and the protected
//    encoding verifies with its key; a larger one is refused by the encoder, never sent,
//  - verify_stun_integrity never crashes, and only says yes for a message the parser also
//    recognises as carrying MESSAGE-INTEGRITY,
//  - inspect_stun agrees with parse_stun,
//  - the Binding server, on each of its sockets, with and without RFC 5780, answers only
//    requests without credentials, never anything larger than 3x the datagram, always with the
//    request's transaction, a well-formed response that our parser accepts, sent to the source
//    IP (at the source port unless the request named a RESPONSE-PORT), and a success only for a
//    well-formed Binding request, naming the source in XOR-MAPPED-ADDRESS.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <stdexcept>
#include <string>

#include "fuzz_check.hpp"
#include "stun/binding_server.hpp"
#include "wire/packet_class.hpp"
#include "wire/stun_message.hpp"

using namespace ztna::wire;
using ztna::Address;
using ztna::stun::BindingServer;
using ztna::stun::Socket;

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

bool encode_refused(const StunMessage& m, std::span<const uint8_t> key) {
  try {
    (void)encode_stun(m, key);
  } catch (const std::invalid_argument&) {
    return true;
  }
  return false;
}

BindingServer::Config server_config(bool rfc5780) {
  BindingServer::Config c;
  c.primary = *Address::parse("203.0.113.1:3478");
  if (rfc5780) {
    c.alternate_port = 3479;
    c.alternate_address = *Address::parse("203.0.113.2:0");
  }
  // Limits far away: every input is judged on its bytes, not on the inputs before it.
  c.source_rate = c.global_rate = 1e9;
  c.source_burst = c.global_burst = 1e9;
  return c;
}

void check_server(std::span<const uint8_t> datagram, const StunInspection& in) {
  const Address from = datagram.size() % 2 ? *Address::parse("198.51.100.7:40000")
                                           : *Address::parse("[2001:db8::7]:40000");
  for (bool rfc5780 : {false, true}) {
    BindingServer server(server_config(rfc5780));
    for (Socket on : ztna::stun::kAllSockets) {
      if (!server.has(on)) continue;
      const auto reply = server.on_datagram(0, on, from, datagram);
      if (!reply) continue;
      FUZZ_CHECK(datagram.size() <= kMaxStunDatagram);
      FUZZ_CHECK(in.verdict != StunInspection::Verdict::Invalid);
      FUZZ_CHECK(in.cls == StunClass::Request && !in.credentials);
      FUZZ_CHECK(reply->datagram.size() <= 3 * datagram.size());
      FUZZ_CHECK(server.has(reply->via));
      FUZZ_CHECK(reply->to.ip_bytes() == from.ip_bytes());
      FUZZ_CHECK(reply->to.port() == from.port() ||
                 (in.message && in.message->response_port == reply->to.port()));
      std::string error;
      const auto r = parse_stun(reply->datagram, error);
      FUZZ_CHECK(r);
      FUZZ_CHECK(r->transaction_id == in.transaction_id && r->method == in.method);
      FUZZ_CHECK(!r->has_integrity && r->has_fingerprint);
      if (r->cls == StunClass::SuccessResponse) {
        FUZZ_CHECK(in.verdict == StunInspection::Verdict::Ok);
        FUZZ_CHECK(in.method == kStunBindingMethod);
        FUZZ_CHECK(r->xor_mapped_address == from);
        FUZZ_CHECK(rfc5780 || reply->via == on);
        FUZZ_CHECK(rfc5780 || !r->other_address);
      } else {
        FUZZ_CHECK(r->cls == StunClass::ErrorResponse);
        FUZZ_CHECK(r->error_code == 400 || r->error_code == 420);
        FUZZ_CHECK(reply->via == on);
      }
    }
    const auto& c = server.counters();
    FUZZ_CHECK(c.dropped_amplification == 0);
    FUZZ_CHECK(c.received == (rfc5780 ? 4u : 1u));
  }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::span<const uint8_t> datagram(data, size);
  const bool verified = verify_stun_integrity(datagram, key_bytes());
  FUZZ_CHECK(!verify_stun_integrity(datagram, {}));

  const StunInspection in = inspect_stun(datagram);
  check_server(datagram, in);
  if (size >= kStunHeaderSize) {
    StunTransactionId tx{};
    std::copy(data + 8, data + 20, tx.begin());
    std::string error;
    if (auto r = read_binding_response(datagram, tx, error))
      FUZZ_CHECK(in.verdict == StunInspection::Verdict::Ok && in.cls != StunClass::Request &&
                 in.cls != StunClass::Indication && (!r->success || r->mapped));
  }

  std::string error;
  auto m = parse_stun(datagram, error);
  FUZZ_CHECK(m.has_value() == (in.verdict == StunInspection::Verdict::Ok));
  if (!m) {
    FUZZ_CHECK(!error.empty() && error.find('\n') == std::string::npos);
    FUZZ_CHECK(!in.error.empty() && in.error.find('\n') == std::string::npos);
    FUZZ_CHECK(in.message.has_value() == (in.verdict == StunInspection::Verdict::UnknownRequired));
    FUZZ_CHECK(in.unknown.empty() != (in.verdict == StunInspection::Verdict::UnknownRequired));
    return 0;
  }
  FUZZ_CHECK(in.message == m && in.unknown.empty());
  FUZZ_CHECK(is_stun(datagram));
  // The codec takes any 12-bit method; methods from 0x100 up start with a byte above 0x03, which
  // the demultiplexer does not route to STUN (RFC 9443 §3). Binding (0x001) always is.
  FUZZ_CHECK((classify_packet(datagram) == PacketClass::Stun) == (data[0] <= kStunFirstByteMax));
  FUZZ_CHECK(m->method >= 0x100 || data[0] <= kStunFirstByteMax);
  FUZZ_CHECK(size <= kMaxStunDatagram && size % 4 == 0);
  FUZZ_CHECK(!verified || m->has_integrity);
  (void)to_string(*m);

  // The canonical form adds FINGERPRINT (and MESSAGE-INTEGRITY) where the input may have had
  // none: a message that filled its datagram may not fit any more, and the encoder says so.
  const StunMessage want = without_flags(*m);
  if (stun_encoded_size(want, false) > kMaxStunDatagram) {
    FUZZ_CHECK(encode_refused(want, {}));
    return 0;
  }
  const auto plain = encode_stun(want, {});
  FUZZ_CHECK(plain.size() == stun_encoded_size(want, false));
  std::string error2;
  auto again = parse_stun(plain, error2);
  FUZZ_CHECK(again);
  FUZZ_CHECK(!again->has_integrity && again->has_fingerprint);
  FUZZ_CHECK(without_flags(*again) == want);
  FUZZ_CHECK(encode_stun(*again, {}) == plain);

  if (stun_encoded_size(want, true) > kMaxStunDatagram) {
    FUZZ_CHECK(encode_refused(want, key_bytes()));
    return 0;
  }
  const auto protected_msg = encode_stun(want, key_bytes());
  FUZZ_CHECK(protected_msg.size() == stun_encoded_size(want, true));
  FUZZ_CHECK(verify_stun_integrity(protected_msg, key_bytes()));
  auto protected_again = parse_stun(protected_msg, error2);
  FUZZ_CHECK(protected_again && protected_again->has_integrity && protected_again->has_fingerprint);
  FUZZ_CHECK(without_flags(*protected_again) == want);
  return 0;
}
