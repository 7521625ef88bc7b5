// The codec's plain Binding and RFC 5780 parts: MAPPED-ADDRESS, RESPONSE-ORIGIN, OTHER-ADDRESS,
// CHANGE-REQUEST, RESPONSE-PORT, SOFTWARE, UNKNOWN-ATTRIBUTES, inspect_stun and the client
// helpers.
#include <catch2/catch.hpp>

#include <optional>
#include <stdexcept>
#include <string>

#include "stun_bytes.hpp"
#include "wire/stun_message.hpp"

using namespace ztna::wire;
using ztna::Address;
using ztna::test::bytes;
using ztna::test::Bytes;
using ztna::test::concat;
using ztna::test::stun_attr;
using ztna::test::u16_bytes;
using ztna::test::u32_bytes;

namespace {

const StunTransactionId kTx = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};

Address addr(const char* text) {
  auto a = Address::parse(text);
  REQUIRE(a);
  return *a;
}

Bytes msg(uint16_t type, const Bytes& attrs, bool fingerprint = true) {
  return ztna::test::stun_message(type, kTx, attrs, fingerprint);
}

std::optional<StunMessage> parse(std::span<const uint8_t> datagram) {
  std::string error;
  auto m = parse_stun(datagram, error);
  CAPTURE(error);
  return m;
}

std::string parse_error(std::span<const uint8_t> datagram) {
  std::string error;
  CHECK_FALSE(parse_stun(datagram, error));
  CHECK(error.find('\n') == std::string::npos);
  return error;
}

// Family 1, port 32853, 192.0.2.1: the address of the RFC 5769 vectors, not XOR'ed.
const Bytes kPlainV4 = bytes({0, 1, 0x80, 0x55, 192, 0, 2, 1});
// Family 2, port 3479, 2001:db8::2.
const Bytes kPlainV6 =
    bytes({0, 2, 0x0d, 0x97, 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2});

StunMessage everything() {
  StunMessage m;
  m.cls = StunClass::SuccessResponse;
  m.transaction_id = kTx;
  m.xor_mapped_address = addr("198.51.100.7:40000");
  m.mapped_address = addr("198.51.100.7:40000");
  m.response_origin = addr("203.0.113.1:3478");
  m.other_address = addr("203.0.113.2:3479");
  m.unknown_attributes = {0x0026, 0x7FFF};
  m.change_request = StunChangeRequest{true, false};
  m.response_port = 5000;
  m.software = "ztna";
  return m;
}

} // namespace

TEST_CASE("stun 5780: exact bytes of a Binding request with CHANGE-REQUEST", "[stun][rfc5780]") {
  // Computed independently (Python struct + zlib.crc32).
  const Bytes want = bytes({
      0x00, 0x01, 0x00, 0x28, 0x21, 0x12, 0xa4, 0x42, 0x01, 0x02, 0x03, 0x04, // header
      0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c,                         //
      0x00, 0x03, 0x00, 0x04, 0x00, 0x00, 0x00, 0x06,                         // CHANGE-REQUEST
      0x00, 0x27, 0x00, 0x04, 0x9c, 0x41, 0x00, 0x00,                         // RESPONSE-PORT
      0x80, 0x22, 0x00, 0x09, 0x7a, 0x74, 0x6e, 0x61, 0x20, 0x73, 0x74, 0x75, // SOFTWARE
      0x6e, 0x00, 0x00, 0x00,                                                 //
      0x80, 0x28, 0x00, 0x04, 0xdb, 0x2e, 0x23, 0x91,                         // FINGERPRINT
  });
  StunBindingRequest r;
  r.transaction_id = kTx;
  r.change = StunChangeRequest{true, true};
  r.response_port = 40001;
  const Bytes out = encode_binding_request(r);
  CHECK(out == want);
  auto m = parse(out);
  REQUIRE(m);
  CHECK(m->cls == StunClass::Request);
  CHECK(m->change_request == StunChangeRequest{true, true});
  CHECK(m->response_port == 40001);
  CHECK(m->software == std::string("ztna stun"));
  CHECK_FALSE(m->username);
  CHECK_FALSE(m->has_integrity);

  // The default request: SOFTWARE only, 44 bytes (an IPv6 answer with all four addresses is
  // 124 bytes, within 3x).
  StunBindingRequest plain;
  const Bytes small = encode_binding_request(plain);
  CHECK(small.size() == 44);
  plain.software.clear();
  CHECK(encode_binding_request(plain).size() == 28);
  plain.software = std::string(kMaxStunSoftware + 1, 's');
  CHECK_THROWS_AS(encode_binding_request(plain), std::invalid_argument);
}

TEST_CASE("stun 5780: address attributes are not XOR'ed", "[stun][rfc5780]") {
  auto m = parse(msg(0x0101, concat(stun_attr(kStunAttrMappedAddress, kPlainV4),
                                    concat(stun_attr(kStunAttrResponseOrigin, kPlainV6),
                                           stun_attr(kStunAttrOtherAddress, kPlainV4)))));
  REQUIRE(m);
  CHECK(m->mapped_address == addr("192.0.2.1:32853"));
  CHECK(m->response_origin == addr("[2001:db8::2]:3479"));
  CHECK(m->other_address == addr("192.0.2.1:32853"));
  CHECK_FALSE(m->xor_mapped_address);

  // The encoder writes the same bytes.
  StunMessage e;
  e.cls = StunClass::SuccessResponse;
  e.transaction_id = kTx;
  e.mapped_address = addr("192.0.2.1:32853");
  Bytes out = encode_stun(e, {});
  CHECK(Bytes(out.begin() + 20, out.begin() + 32) == stun_attr(kStunAttrMappedAddress, kPlainV4));
  e.mapped_address.reset();
  e.other_address = addr("[2001:db8::2]:3479");
  out = encode_stun(e, {});
  CHECK(Bytes(out.begin() + 20, out.begin() + 44) == stun_attr(kStunAttrOtherAddress, kPlainV6));

  // Family 1 with 4 bytes, 2 with 16, nothing else.
  for (uint16_t type : {kStunAttrMappedAddress, kStunAttrResponseOrigin, kStunAttrOtherAddress}) {
    INFO("type " << type);
    Bytes bad = kPlainV4;
    bad[1] = 3;
    CHECK(parse_error(msg(0x0101, stun_attr(type, bad))).find("malformed") != std::string::npos);
    bad = kPlainV4;
    bad[1] = 2;
    CHECK(parse_error(msg(0x0101, stun_attr(type, bad))).find("malformed") != std::string::npos);
    CHECK(parse_error(msg(0x0101, stun_attr(type, bytes({0, 1, 0})))).find("malformed") !=
          std::string::npos);
  }
  // An empty address is refused by the encoder.
  e = StunMessage{};
  e.response_origin = Address{};
  CHECK_THROWS_AS(encode_stun(e, {}), std::invalid_argument);
}

TEST_CASE("stun 5780: CHANGE-REQUEST, RESPONSE-PORT, SOFTWARE, UNKNOWN-ATTRIBUTES values",
          "[stun][rfc5780]") {
  // CHANGE-REQUEST: 4 bytes; only bits 0x4 and 0x2 mean something.
  auto m = parse(msg(0x0001, stun_attr(kStunAttrChangeRequest, u32_bytes(0xFFFFFFF9))));
  REQUIRE(m);
  CHECK(m->change_request == StunChangeRequest{false, false});
  m = parse(msg(0x0001, stun_attr(kStunAttrChangeRequest, u32_bytes(kStunChangeIp))));
  REQUIRE(m);
  CHECK(m->change_request == StunChangeRequest{true, false});
  m = parse(msg(0x0001, stun_attr(kStunAttrChangeRequest, u32_bytes(kStunChangePort))));
  REQUIRE(m);
  CHECK(m->change_request == StunChangeRequest{false, true});
  CHECK(parse_error(msg(0x0001, stun_attr(kStunAttrChangeRequest, bytes({0, 6}))))
            .find("0x0003 has length 2") != std::string::npos);

  // RESPONSE-PORT: the port in the first two bytes; 2 or 4 bytes long.
  m = parse(msg(0x0001, stun_attr(kStunAttrResponsePort, bytes({0x9c, 0x41, 0, 0}))));
  REQUIRE(m);
  CHECK(m->response_port == 40001);
  m = parse(msg(0x0001, stun_attr(kStunAttrResponsePort, bytes({0x9c, 0x41}))));
  REQUIRE(m);
  CHECK(m->response_port == 40001);
  CHECK(parse_error(msg(0x0001, stun_attr(kStunAttrResponsePort, bytes({0x9c, 0x41, 0}))))
            .find("0x0027") != std::string::npos);

  // SOFTWARE: at most 763 bytes.
  CHECK(parse(msg(0x0001, stun_attr(kStunAttrSoftware, Bytes(kMaxStunSoftware, 's')))));
  CHECK(parse_error(msg(0x0001, stun_attr(kStunAttrSoftware, Bytes(kMaxStunSoftware + 1, 's'))))
            .find("SOFTWARE longer") != std::string::npos);

  // UNKNOWN-ATTRIBUTES: u16 types, an even length, at most 32 of them.
  m = parse(msg(
      0x0111, stun_attr(kStunAttrUnknownAttributes, bytes({0x00, 0x26, 0x7f, 0xff, 0x00, 0x03}))));
  REQUIRE(m);
  CHECK(m->unknown_attributes == std::vector<uint16_t>{0x0026, 0x7FFF, 0x0003});
  CHECK(parse_error(msg(0x0111, stun_attr(kStunAttrUnknownAttributes, bytes({0, 0x26, 0}))))
            .find("UNKNOWN-ATTRIBUTES") != std::string::npos);
  CHECK(parse(msg(0x0111, stun_attr(kStunAttrUnknownAttributes, Bytes(64, 1)))));
  CHECK(parse_error(msg(0x0111, stun_attr(kStunAttrUnknownAttributes, Bytes(66, 1))))
            .find("UNKNOWN-ATTRIBUTES") != std::string::npos);
  StunMessage e;
  e.unknown_attributes.assign(kMaxStunUnknownAttributes + 1, 0x0026);
  CHECK_THROWS_AS(encode_stun(e, {}), std::invalid_argument);
  e.unknown_attributes.assign(1, 0x0026);
  const Bytes one = encode_stun(e, {});
  CHECK(Bytes(one.begin() + 20, one.begin() + 28) == bytes({0, 0x0a, 0, 2, 0, 0x26, 0, 0}));
}

TEST_CASE("stun 5780: every attribute round-trips, sizes are predicted", "[stun][rfc5780]") {
  const StunMessage m = everything();
  for (bool integrity : {false, true}) {
    const Bytes key = integrity ? bytes("password-password-1") : Bytes{};
    const Bytes out = encode_stun(m, key);
    CHECK(out.size() == stun_encoded_size(m, integrity));
    auto back = parse(out);
    REQUIRE(back);
    StunMessage plain = *back;
    plain.has_integrity = plain.has_fingerprint = false;
    CHECK(plain == m);
  }
  // Sizes of each attribute alone, IPv4 and IPv6.
  StunMessage s;
  CHECK(stun_encoded_size(s, false) == 28);
  CHECK(stun_encoded_size(s, true) == 52);
  s.other_address = addr("[2001:db8::2]:3479");
  CHECK(stun_encoded_size(s, false) == 52);
  CHECK(encode_stun(s, {}).size() == 52);
  s.software = "abcde";
  CHECK(stun_encoded_size(s, false) == 64);
  CHECK(encode_stun(s, {}).size() == 64);
  CHECK(to_string(everything()) ==
        "binding success tx=0102030405060708090a0b0c mapped=198.51.100.7:40000 "
        "mapped-address=198.51.100.7:40000 response-origin=203.0.113.1:3478 "
        "other-address=203.0.113.2:3479 unknown=0x0026,0x7fff change-request=ip "
        "response-port=5000 software=\"ztna\"");
}

TEST_CASE("stun 5780: the encoder refuses a message over one datagram", "[stun][rfc5780]") {
  // Each field within its own limit, 1500 bytes together: the encoder says so instead of sending
  // what no parser (ours included) takes.
  StunMessage m;
  m.username = std::string(kMaxStunUsername, 'u');
  m.error_code = 400;
  m.error_reason = std::string(kMaxStunErrorReason, 'r');
  m.software = std::string(170, 's');
  REQUIRE(stun_encoded_size(m, false) <= kMaxStunDatagram);
  CHECK(encode_stun(m, {}).size() == stun_encoded_size(m, false));
  m.software = std::string(kMaxStunSoftware, 's');
  REQUIRE(stun_encoded_size(m, false) > kMaxStunDatagram);
  CHECK_THROWS_AS(encode_stun(m, {}), std::invalid_argument);
}

TEST_CASE("stun 5780: inspect_stun says how far a datagram got", "[stun][rfc5780]") {
  using Verdict = StunInspection::Verdict;
  // Ok: the same as parse_stun.
  const Bytes ok = msg(0x0001, stun_attr(kStunAttrSoftware, bytes("x")));
  auto in = inspect_stun(ok);
  CHECK(in.verdict == Verdict::Ok);
  REQUIRE(in.message);
  CHECK(in.message == parse(ok));
  CHECK(in.cls == StunClass::Request);
  CHECK(in.method == kStunBindingMethod);
  CHECK(in.transaction_id == kTx);
  CHECK_FALSE(in.credentials);
  CHECK(in.error.empty());

  // Unknown comprehension-required types: listed once each, in order; the rest is read.
  in = inspect_stun(
      msg(0x0001, concat(concat(stun_attr(kStunAttrPadding, Bytes(4, 0)), stun_attr(0x7000, {})),
                         concat(stun_attr(kStunAttrPadding, {}),
                                stun_attr(kStunAttrResponsePort, bytes({0x13, 0x88, 0, 0}))))));
  CHECK(in.verdict == Verdict::UnknownRequired);
  CHECK(in.unknown == std::vector<uint16_t>{0x0026, 0x7000});
  REQUIRE(in.message);
  CHECK(in.message->response_port == 5000);
  CHECK(in.error == "unknown comprehension-required attribute 0x0026");
  // At most 32 are listed.
  Bytes many;
  for (int t = 0x7000; t < 0x7000 + 40; ++t)
    many = concat(many, stun_attr(static_cast<uint16_t>(t), {}));
  in = inspect_stun(msg(0x0001, many));
  CHECK(in.verdict == Verdict::UnknownRequired);
  CHECK(in.unknown.size() == kMaxStunUnknownAttributes);
  CHECK(in.unknown.back() == 0x7000 + 31);
  // After MESSAGE-INTEGRITY nothing counts, unknown types included (RFC 8489 §14.5).
  in = inspect_stun(msg(0x0001, concat(stun_attr(kStunAttrMessageIntegrity, Bytes(20, 1)),
                                       stun_attr(kStunAttrPadding, {}))));
  CHECK(in.verdict == Verdict::Ok);
  CHECK(in.credentials);

  // A known attribute with a bad value: the header is still there to answer.
  in = inspect_stun(msg(0x0001, stun_attr(kStunAttrChangeRequest, bytes({0}))));
  CHECK(in.verdict == Verdict::BadAttribute);
  CHECK_FALSE(in.message);
  CHECK(in.transaction_id == kTx);
  CHECK(in.error.find("0x0003") != std::string::npos);
  // ... even before an unknown one, and whatever the credentials.
  in = inspect_stun(msg(0x0001, concat(stun_attr(kStunAttrUsername, Bytes(600, 'u')),
                                       stun_attr(kStunAttrPadding, {}))));
  CHECK(in.verdict == Verdict::BadAttribute);
  CHECK(in.credentials);
  CHECK(in.unknown.empty()); // listed only for a 420

  // Credentials are seen by type, whatever their value.
  in = inspect_stun(msg(0x0001, stun_attr(kStunAttrUsername, bytes("a:b"))));
  CHECK(in.verdict == Verdict::Ok);
  CHECK(in.credentials);

  // Invalid: header, framing, FINGERPRINT.
  Bytes bad_cookie = ok;
  bad_cookie[4] ^= 1;
  CHECK(inspect_stun(bad_cookie).verdict == Verdict::Invalid);
  CHECK(inspect_stun(ztna::test::prefix(ok, 19)).verdict == Verdict::Invalid);
  Bytes bad_fp = ok;
  bad_fp.back() ^= 1;
  in = inspect_stun(bad_fp);
  CHECK(in.verdict == Verdict::Invalid);
  CHECK(in.error == "FINGERPRINT mismatch");
  const Bytes overrun = msg(0x0001, bytes({0x80, 0x22, 0x00, 0x10, 'a', 'b', 'c', 'd'}), false);
  in = inspect_stun(overrun);
  CHECK(in.verdict == Verdict::Invalid);
  CHECK(in.error.find("runs past the end") != std::string::npos);
}

TEST_CASE("stun 5780: read_binding_response", "[stun][rfc5780]") {
  std::string error;
  // A full RFC 5780 answer.
  StunMessage s = everything();
  s.unknown_attributes.clear();
  s.change_request.reset();
  s.response_port.reset();
  auto r = read_binding_response(encode_stun(s, {}), kTx, error);
  REQUIRE(r);
  CHECK(r->success);
  CHECK(r->mapped == addr("198.51.100.7:40000"));
  CHECK(r->response_origin == addr("203.0.113.1:3478"));
  CHECK(r->other_address == addr("203.0.113.2:3479"));
  CHECK_FALSE(r->error_code);

  // XOR-MAPPED-ADDRESS wins over MAPPED-ADDRESS; MAPPED-ADDRESS alone is taken.
  s = StunMessage{};
  s.cls = StunClass::SuccessResponse;
  s.transaction_id = kTx;
  s.xor_mapped_address = addr("192.0.2.1:1");
  s.mapped_address = addr("192.0.2.99:2");
  r = read_binding_response(encode_stun(s, {}), kTx, error);
  REQUIRE(r);
  CHECK(r->mapped == addr("192.0.2.1:1"));
  s.xor_mapped_address.reset();
  r = read_binding_response(encode_stun(s, {}), kTx, error);
  REQUIRE(r);
  CHECK(r->mapped == addr("192.0.2.99:2"));
  CHECK_FALSE(r->other_address);

  // An error response: code, reason, unknown attributes.
  StunMessage e;
  e.cls = StunClass::ErrorResponse;
  e.transaction_id = kTx;
  e.error_code = 420;
  e.error_reason = "Unknown Attribute";
  e.unknown_attributes = {kStunAttrChangeRequest};
  r = read_binding_response(encode_stun(e, {}), kTx, error);
  REQUIRE(r);
  CHECK_FALSE(r->success);
  CHECK(r->error_code == 420);
  CHECK(r->error_reason == "Unknown Attribute");
  CHECK(r->unknown_attributes == std::vector<uint16_t>{kStunAttrChangeRequest});
  CHECK_FALSE(r->mapped);

  // Refused: another transaction, a request, another method, no address, not STUN.
  StunTransactionId other = kTx;
  other[11] ^= 1;
  CHECK_FALSE(read_binding_response(encode_stun(e, {}), other, error));
  CHECK(error == "response for another transaction");
  StunMessage req;
  req.transaction_id = kTx;
  CHECK_FALSE(read_binding_response(encode_stun(req, {}), kTx, error));
  CHECK(error.find("not a Binding response") != std::string::npos);
  StunMessage allocate = e;
  allocate.method = 0x003;
  CHECK_FALSE(read_binding_response(encode_stun(allocate, {}), kTx, error));
  CHECK(error.find("not a Binding response") != std::string::npos);
  StunMessage empty;
  empty.cls = StunClass::SuccessResponse;
  empty.transaction_id = kTx;
  CHECK_FALSE(read_binding_response(encode_stun(empty, {}), kTx, error));
  CHECK(error.find("without XOR-MAPPED-ADDRESS") != std::string::npos);
  CHECK_FALSE(read_binding_response(bytes("not a stun message at all"), kTx, error));
  CHECK_FALSE(error.empty());
  // An answer with a comprehension-required attribute we do not know is discarded
  // (RFC 8489 §6.3.3).
  CHECK_FALSE(read_binding_response(
      msg(0x0101, concat(stun_attr(kStunAttrMappedAddress, kPlainV4), stun_attr(0x7001, {}))), kTx,
      error));
}
