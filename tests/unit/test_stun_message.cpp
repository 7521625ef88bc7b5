#include <catch2/catch.hpp>

#include <optional>
#include <stdexcept>
#include <string>

#include "bytes.hpp"
#include "wire/packet_class.hpp"
#include "wire/stun_message.hpp"

using namespace ztna::wire;
using ztna::Address;
using ztna::test::bytes;
using ztna::test::Bytes;
using ztna::test::concat;

namespace {

// RFC 5769 §2.1 Sample Request: SOFTWARE "STUN test client", PRIORITY, ICE-CONTROLLED,
// USERNAME "evtj:h6vY" (padded with spaces, not zeros), MESSAGE-INTEGRITY, FINGERPRINT.
const Bytes kRfc5769Request = bytes({
    0x00, 0x01, 0x00, 0x58, 0x21, 0x12, 0xa4, 0x42, 0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86,
    0xfa, 0x87, 0xdf, 0xae, 0x80, 0x22, 0x00, 0x10, 0x53, 0x54, 0x55, 0x4e, 0x20, 0x74, 0x65, 0x73,
    0x74, 0x20, 0x63, 0x6c, 0x69, 0x65, 0x6e, 0x74, 0x00, 0x24, 0x00, 0x04, 0x6e, 0x00, 0x01, 0xff,
    0x80, 0x29, 0x00, 0x08, 0x93, 0x2f, 0xf9, 0xb1, 0x51, 0x26, 0x3b, 0x36, 0x00, 0x06, 0x00, 0x09,
    0x65, 0x76, 0x74, 0x6a, 0x3a, 0x68, 0x36, 0x76, 0x59, 0x20, 0x20, 0x20, 0x00, 0x08, 0x00, 0x14,
    0x9a, 0xea, 0xa7, 0x0c, 0xbf, 0xd8, 0xcb, 0x56, 0x78, 0x1e, 0xf2, 0xb5, 0xb2, 0xd3, 0xf2, 0x49,
    0xc1, 0xb5, 0x71, 0xa2, 0x80, 0x28, 0x00, 0x04, 0xe5, 0x7a, 0x3b, 0xcf,
});

// RFC 5769 §2.2 Sample IPv4 Response: SOFTWARE "test vector", XOR-MAPPED-ADDRESS 192.0.2.1:32853.
const Bytes kRfc5769ResponseV4 = bytes({
    0x01, 0x01, 0x00, 0x3c, 0x21, 0x12, 0xa4, 0x42, 0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86,
    0xfa, 0x87, 0xdf, 0xae, 0x80, 0x22, 0x00, 0x0b, 0x74, 0x65, 0x73, 0x74, 0x20, 0x76, 0x65, 0x63,
    0x74, 0x6f, 0x72, 0x20, 0x00, 0x20, 0x00, 0x08, 0x00, 0x01, 0xa1, 0x47, 0xe1, 0x12, 0xa6, 0x43,
    0x00, 0x08, 0x00, 0x14, 0x2b, 0x91, 0xf5, 0x99, 0xfd, 0x9e, 0x90, 0xc3, 0x8c, 0x74, 0x89, 0xf9,
    0x2a, 0xf9, 0xba, 0x53, 0xf0, 0x6b, 0xe7, 0xd7, 0x80, 0x28, 0x00, 0x04, 0xc0, 0x7d, 0x4c, 0x96,
});

// RFC 5769 §2.3 Sample IPv6 Response: XOR-MAPPED-ADDRESS
// [2001:db8:1234:5678:11:2233:4455:6677]:32853.
const Bytes kRfc5769ResponseV6 = bytes({
    0x01, 0x01, 0x00, 0x48, 0x21, 0x12, 0xa4, 0x42, 0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86,
    0xfa, 0x87, 0xdf, 0xae, 0x80, 0x22, 0x00, 0x0b, 0x74, 0x65, 0x73, 0x74, 0x20, 0x76, 0x65, 0x63,
    0x74, 0x6f, 0x72, 0x20, 0x00, 0x20, 0x00, 0x14, 0x00, 0x02, 0xa1, 0x47, 0x01, 0x13, 0xa9, 0xfa,
    0xa5, 0xd3, 0xf1, 0x79, 0xbc, 0x25, 0xf4, 0xb5, 0xbe, 0xd2, 0xb9, 0xd9, 0x00, 0x08, 0x00, 0x14,
    0xa3, 0x82, 0x95, 0x4e, 0x4b, 0xe6, 0x7b, 0xf1, 0x17, 0x84, 0xc9, 0x7c, 0x82, 0x92, 0xc2, 0x75,
    0xbf, 0xe3, 0xed, 0x41, 0x80, 0x28, 0x00, 0x04, 0xc8, 0xfb, 0x0b, 0x4c,
});

const Bytes kRfc5769Password = bytes("VOkJxbRl1RmTxUk/WvJxBt");
const StunTransactionId kRfc5769Tx = {0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34,
                                      0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae};

std::optional<StunMessage> parse(std::span<const uint8_t> datagram) {
  std::string error;
  auto m = parse_stun(datagram, error);
  if (m) CHECK(error.empty());
  return m;
}

std::string parse_error(std::span<const uint8_t> datagram) {
  std::string error;
  auto m = parse_stun(datagram, error);
  CHECK_FALSE(m);
  CHECK_FALSE(error.empty());
  CHECK(error.find('\n') == std::string::npos);
  return error;
}

// One attribute with zero padding, for hand-built messages.
Bytes attr(uint16_t type, const Bytes& value) {
  Bytes out = bytes({type >> 8, type & 0xFF, static_cast<int>(value.size() >> 8),
                     static_cast<int>(value.size() & 0xFF)});
  out = concat(out, value);
  while (out.size() % 4)
    out.push_back(0);
  return out;
}

// A hand-built Binding message of the given type with these attributes, then (optionally) a
// FINGERPRINT computed with stun_crc32 (checked against the RFC 5769 vectors below).
Bytes message(uint16_t type, const Bytes& attrs, bool fingerprint = true) {
  const size_t length = attrs.size() + (fingerprint ? 8 : 0);
  Bytes out = bytes({type >> 8, type & 0xFF, static_cast<int>(length >> 8),
                     static_cast<int>(length & 0xFF), 0x21, 0x12, 0xa4, 0x42});
  out.insert(out.end(), kRfc5769Tx.begin(), kRfc5769Tx.end());
  out = concat(out, attrs);
  if (fingerprint) {
    const uint32_t crc = stun_crc32(out) ^ kStunFingerprintXor;
    out = concat(out,
                 attr(kStunAttrFingerprint,
                      bytes({static_cast<int>(crc >> 24), static_cast<int>((crc >> 16) & 0xFF),
                             static_cast<int>((crc >> 8) & 0xFF), static_cast<int>(crc & 0xFF)})));
  }
  return out;
}

Address addr(const char* text) {
  auto a = Address::parse(text);
  REQUIRE(a);
  return *a;
}

StunMessage without_flags(StunMessage m) {
  m.has_integrity = false;
  m.has_fingerprint = false;
  return m;
}

StunMessage full_request() {
  StunMessage m;
  m.transaction_id = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
  m.username = "remoteufrag:localufrag";
  m.xor_mapped_address = addr("198.51.100.7:40000");
  m.priority = 0x6E7F1EFF;
  m.use_candidate = true;
  m.ice_controlling = 0xFEDCBA9876543210ULL;
  m.ice_controlled = 0x0123456789ABCDEFULL;
  return m;
}

} // namespace

TEST_CASE("stun: CRC-32 check value", "[stun]") {
  // The standard check value of CRC-32/ISO-HDLC (the zlib crc32) over "123456789".
  CHECK(stun_crc32(bytes("123456789")) == 0xCBF43926u);
  CHECK(stun_crc32({}) == 0u);
}

TEST_CASE("stun: RFC 5769 §2.1 sample request", "[stun]") {
  REQUIRE(kRfc5769Request.size() == 108);
  CHECK(is_stun(kRfc5769Request));
  CHECK(classify_packet(kRfc5769Request) == PacketClass::Stun);
  auto m = parse(kRfc5769Request);
  REQUIRE(m);
  CHECK(m->cls == StunClass::Request);
  CHECK(m->method == kStunBindingMethod);
  CHECK(m->transaction_id == kRfc5769Tx);
  CHECK(m->username == std::string("evtj:h6vY"));
  CHECK(m->priority == 0x6e0001ffu);
  CHECK(m->ice_controlled == 0x932ff9b151263b36ULL);
  CHECK_FALSE(m->ice_controlling);
  CHECK_FALSE(m->use_candidate);
  CHECK_FALSE(m->xor_mapped_address);
  CHECK_FALSE(m->error_code);
  CHECK(m->software == std::string("STUN test client"));
  CHECK(m->has_integrity);
  CHECK(m->has_fingerprint);

  CHECK(verify_stun_integrity(kRfc5769Request, kRfc5769Password));
  CHECK_FALSE(verify_stun_integrity(kRfc5769Request, bytes("VOkJxbRl1RmTxUk/WvJxBu")));
  CHECK_FALSE(verify_stun_integrity(kRfc5769Request, bytes("VOkJxbRl1RmTxUk/WvJxB")));
  CHECK_FALSE(verify_stun_integrity(kRfc5769Request, {}));
}

TEST_CASE("stun: RFC 5769 §2.2 sample IPv4 response", "[stun]") {
  REQUIRE(kRfc5769ResponseV4.size() == 80);
  auto m = parse(kRfc5769ResponseV4);
  REQUIRE(m);
  CHECK(m->cls == StunClass::SuccessResponse);
  CHECK(m->method == kStunBindingMethod);
  CHECK(m->transaction_id == kRfc5769Tx);
  REQUIRE(m->xor_mapped_address);
  CHECK(*m->xor_mapped_address == addr("192.0.2.1:32853"));
  CHECK(m->xor_mapped_address->to_string() == "192.0.2.1:32853");
  CHECK(m->software == std::string("test vector"));
  CHECK_FALSE(m->username);
  CHECK(m->has_integrity);
  CHECK(m->has_fingerprint);
  CHECK(verify_stun_integrity(kRfc5769ResponseV4, kRfc5769Password));
  CHECK_FALSE(verify_stun_integrity(kRfc5769ResponseV4, bytes("wrong password 123456")));
}

TEST_CASE("stun: RFC 5769 §2.3 sample IPv6 response", "[stun]") {
  REQUIRE(kRfc5769ResponseV6.size() == 92);
  auto m = parse(kRfc5769ResponseV6);
  REQUIRE(m);
  CHECK(m->cls == StunClass::SuccessResponse);
  REQUIRE(m->xor_mapped_address);
  CHECK(m->xor_mapped_address->is_v6());
  CHECK(*m->xor_mapped_address == addr("[2001:db8:1234:5678:11:2233:4455:6677]:32853"));
  CHECK(m->has_integrity);
  CHECK(m->has_fingerprint);
  CHECK(verify_stun_integrity(kRfc5769ResponseV6, kRfc5769Password));
  CHECK_FALSE(verify_stun_integrity(kRfc5769ResponseV6, bytes("VOkJxbRl1RmTxUk/WvJxBT")));
}

TEST_CASE("stun: XOR-MAPPED-ADDRESS encodes to the RFC 5769 bytes", "[stun]") {
  // Same transaction ID and address as the RFC vectors, so the attribute must be identical.
  StunMessage m;
  m.cls = StunClass::SuccessResponse;
  m.transaction_id = kRfc5769Tx;
  m.xor_mapped_address = addr("192.0.2.1:32853");
  Bytes out = encode_stun(m, {});
  REQUIRE(out.size() == 20 + 12 + 8);
  CHECK(Bytes(out.begin() + 20, out.begin() + 32) ==
        Bytes(kRfc5769ResponseV4.begin() + 36, kRfc5769ResponseV4.begin() + 48));

  m.xor_mapped_address = addr("[2001:db8:1234:5678:11:2233:4455:6677]:32853");
  out = encode_stun(m, {});
  REQUIRE(out.size() == 20 + 24 + 8);
  CHECK(Bytes(out.begin() + 20, out.begin() + 44) ==
        Bytes(kRfc5769ResponseV6.begin() + 36, kRfc5769ResponseV6.begin() + 60));
}

TEST_CASE("stun: exact bytes of a protected request", "[stun]") {
  // Expected bytes computed independently (Python hmac + zlib.crc32).
  StunMessage m;
  m.transaction_id = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
  m.username = "abcd:efgh12";
  m.priority = 0x6E7F1EFF;
  m.use_candidate = true;
  m.ice_controlling = 0x0102030405060708ULL;
  const Bytes key = bytes("0123456789abcdefghijkl");
  const Bytes want = bytes({
      0x00, 0x01, 0x00, 0x48, 0x21, 0x12, 0xa4, 0x42, 0x01, 0x02, 0x03, 0x04, // header
      0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c,                         //
      0x00, 0x06, 0x00, 0x0b, 0x61, 0x62, 0x63, 0x64, 0x3a, 0x65, 0x66, 0x67, // USERNAME
      0x68, 0x31, 0x32, 0x00,                                                 //
      0x00, 0x24, 0x00, 0x04, 0x6e, 0x7f, 0x1e, 0xff,                         // PRIORITY
      0x00, 0x25, 0x00, 0x00,                                                 // USE-CANDIDATE
      0x80, 0x2a, 0x00, 0x08, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, // ICE-CONTROLLING
      0x00, 0x08, 0x00, 0x14, 0x86, 0x65, 0x7e, 0x54, 0x12, 0x13, 0x20, 0xd8, // MESSAGE-INTEGRITY
      0xe4, 0xa7, 0x72, 0x07, 0x43, 0x8f, 0x66, 0x6c, 0x61, 0x5b, 0x89, 0xa5, //
      0x80, 0x28, 0x00, 0x04, 0xf1, 0xd3, 0x08, 0xdc,                         // FINGERPRINT
  });
  const Bytes out = encode_stun(m, key);
  CHECK(out == want);
  CHECK(verify_stun_integrity(out, key));
  auto back = parse(out);
  REQUIRE(back);
  CHECK(back->has_integrity);
  CHECK(back->has_fingerprint);
  CHECK(without_flags(*back) == m);
}

TEST_CASE("stun: exact bytes of an error response", "[stun]") {
  StunMessage m;
  m.cls = StunClass::ErrorResponse;
  m.transaction_id.fill(0xAA);
  m.error_code = 487;
  m.error_reason = "Role Conflict";
  const Bytes want = bytes({
      0x01, 0x11, 0x00, 0x20, 0x21, 0x12, 0xa4, 0x42, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa,
      0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0x00, 0x09, 0x00, 0x11, 0x00, 0x00,
      0x04, 0x57, 0x52, 0x6f, 0x6c, 0x65, 0x20, 0x43, 0x6f, 0x6e, 0x66, 0x6c, 0x69,
      0x63, 0x74, 0x00, 0x00, 0x00, 0x80, 0x28, 0x00, 0x04, 0x8e, 0x7a, 0x9b, 0x8d,
  });
  const Bytes out = encode_stun(m, {});
  CHECK(out == want);
  CHECK_FALSE(verify_stun_integrity(out, bytes("any key at all")));
  auto back = parse(out);
  REQUIRE(back);
  CHECK_FALSE(back->has_integrity);
  CHECK(back->has_fingerprint);
  CHECK(back->error_code == 487);
  CHECK(back->error_reason == "Role Conflict");
}

TEST_CASE("stun: message type interleaves class and method bits", "[stun]") {
  struct Case {
    StunClass cls;
    uint16_t method;
    int b0, b1;
  };
  const Case cases[] = {
      {StunClass::Request, 0x001, 0x00, 0x01},
      {StunClass::Indication, 0x001, 0x00, 0x11},
      {StunClass::SuccessResponse, 0x001, 0x01, 0x01},
      {StunClass::ErrorResponse, 0x001, 0x01, 0x11},
      {StunClass::Request, 0xFFF, 0x3E, 0xEF},
      {StunClass::ErrorResponse, 0xFFF, 0x3F, 0xFF},
      {StunClass::Request, 0x080, 0x02, 0x00},
      {StunClass::Request, 0x010, 0x00, 0x20},
  };
  for (const auto& c : cases) {
    StunMessage m;
    m.cls = c.cls;
    m.method = c.method;
    const Bytes out = encode_stun(m, {});
    INFO("method " << c.method << " class " << to_string(c.cls));
    CHECK(out[0] == c.b0);
    CHECK(out[1] == c.b1);
    auto back = parse(out);
    REQUIRE(back);
    CHECK(back->cls == c.cls);
    CHECK(back->method == c.method);
  }
}

TEST_CASE("stun: round trips", "[stun]") {
  const Bytes key = bytes("a-22-byte-ice-password");
  StunMessage request = full_request();

  StunMessage v4;
  v4.cls = StunClass::SuccessResponse;
  v4.transaction_id.fill(0x5A);
  v4.xor_mapped_address = addr("203.0.113.9:1");

  StunMessage v6 = v4;
  v6.xor_mapped_address = addr("[2001:db8::ffff:1]:65535");

  StunMessage mapped_v6 = v4;
  mapped_v6.xor_mapped_address = addr("[::ffff:192.0.2.1]:4433");

  StunMessage role_conflict;
  role_conflict.cls = StunClass::ErrorResponse;
  role_conflict.error_code = 487;
  role_conflict.error_reason = "Role Conflict";

  StunMessage longest;
  longest.cls = StunClass::ErrorResponse;
  longest.username = std::string(kMaxStunUsername, 'u');
  longest.error_code = 699;
  longest.error_reason = std::string(kMaxStunErrorReason, 'r');
  longest.xor_mapped_address = addr("[2001:db8::1]:9");
  longest.priority = 0xFFFFFFFF;
  longest.use_candidate = true;
  longest.ice_controlled = ~uint64_t{0};
  longest.ice_controlling = 0;

  StunMessage empty_strings;
  empty_strings.cls = StunClass::ErrorResponse;
  empty_strings.username = "";
  empty_strings.error_code = 300;

  StunMessage indication;
  indication.cls = StunClass::Indication;

  for (const StunMessage* m :
       {&request, &v4, &v6, &mapped_v6, &role_conflict, &longest, &empty_strings, &indication}) {
    INFO(to_string(*m));
    for (bool protect : {false, true}) {
      const Bytes out = encode_stun(*m, protect ? key : Bytes{});
      CHECK(out.size() % 4 == 0);
      CHECK(out.size() <= kMaxStunDatagram);
      CHECK(is_stun(out));
      auto back = parse(out);
      REQUIRE(back);
      CHECK(back->has_integrity == protect);
      CHECK(back->has_fingerprint);
      CHECK(without_flags(*back) == *m);
      CHECK(verify_stun_integrity(out, key) == protect);
      // Re-encoding the parsed message gives the same bytes: one encoding per message.
      CHECK(encode_stun(*back, protect ? key : Bytes{}) == out);
    }
  }
  CHECK(encode_stun(longest, key).size() == 1404);
}

TEST_CASE("stun: rejects a bad header", "[stun]") {
  const Bytes good = encode_stun(full_request(), {});
  REQUIRE(parse(good));

  Bytes bad_cookie = good;
  bad_cookie[7] ^= 0x01;
  CHECK_FALSE(is_stun(bad_cookie));
  CHECK(parse_error(bad_cookie) == "bad magic cookie");

  for (int top : {0x40, 0x80, 0xC0}) {
    Bytes bad_top = good;
    bad_top[0] |= static_cast<uint8_t>(top);
    CHECK_FALSE(is_stun(bad_top));
    CHECK(parse_error(bad_top).find("top two bits") != std::string::npos);
  }

  // A length field that is not a multiple of 4 (the datagram itself still matches it).
  Bytes odd = good;
  odd.pop_back();
  odd[3] = static_cast<uint8_t>(odd.size() - 20);
  CHECK(parse_error(odd).find("not a multiple of 4") != std::string::npos);

  Bytes longer = good;
  longer.insert(longer.end(), {0, 0, 0, 0});
  CHECK(parse_error(longer).find("does not match") != std::string::npos);

  Bytes shorter_field = good;
  shorter_field[3] -= 4;
  CHECK(parse_error(shorter_field).find("does not match") != std::string::npos);

  CHECK(parse_error(ztna::test::prefix(good, 19)) == "datagram shorter than a STUN header");
  CHECK_FALSE(is_stun(ztna::test::prefix(good, 19)));
}

TEST_CASE("stun: truncation at every length is rejected", "[stun]") {
  const Bytes good = encode_stun(full_request(), bytes("password-password-1234"));
  for (size_t n = 0; n < good.size(); ++n) {
    INFO("length " << n);
    std::string error;
    CHECK_FALSE(parse_stun(ztna::test::prefix(good, n), error));
    CHECK_FALSE(
        verify_stun_integrity(ztna::test::prefix(good, n), bytes("password-password-1234")));
  }
}

TEST_CASE("stun: an attribute that runs past the end is rejected", "[stun]") {
  // USERNAME claims 12 bytes but only 8 follow; the header length matches the datagram.
  const Bytes truncated = message(
      0x0001, bytes({0x00, 0x06, 0x00, 0x0C, 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h'}), false);
  CHECK(parse_error(truncated).find("runs past the end") != std::string::npos);
  // An attribute header cut in half.
  const Bytes half = message(
      0x0001, concat(attr(kStunAttrPriority, bytes({0, 0, 0, 1})), bytes({0x00, 0x24, 0x00, 0x04})),
      false);
  CHECK(parse(message(0x0001, attr(kStunAttrPriority, bytes({0, 0, 0, 1})), false)));
  CHECK(parse_error(half).find("runs past the end") != std::string::npos);
}

TEST_CASE("stun: FINGERPRINT must match and be last", "[stun]") {
  Bytes good = encode_stun(full_request(), {});
  for (size_t i : {size_t{0}, size_t{9}, size_t{25}, good.size() - 1}) {
    Bytes bad = good;
    bad[i] ^= 0x04; // a bit that keeps the header checks happy
    INFO("flipped byte " << i);
    CHECK(parse_error(bad) == "FINGERPRINT mismatch");
  }
  const Bytes not_last = message(
      0x0001, concat(attr(kStunAttrFingerprint, bytes({0, 0, 0, 0})), attr(0x8022, bytes("x"))),
      false);
  CHECK(parse_error(not_last) == "FINGERPRINT is not the last attribute");
  const Bytes wrong_size =
      message(0x0001, attr(kStunAttrFingerprint, bytes({0, 0, 0, 0, 0, 0, 0, 0})), false);
  CHECK(parse_error(wrong_size).find("length 8") != std::string::npos);
  // Without FINGERPRINT the message is fine, and says so.
  auto m = parse(message(0x0001, attr(kStunAttrPriority, bytes({0, 0, 0, 7})), false));
  REQUIRE(m);
  CHECK_FALSE(m->has_fingerprint);
  CHECK(m->priority == 7u);
}

TEST_CASE("stun: comprehension-required and -optional unknown attributes", "[stun]") {
  // PADDING (0x0026, RFC 5780 §7.6) is comprehension-required and not ours.
  CHECK(parse_error(message(0x0001, attr(kStunAttrPadding, Bytes(8, 0)))) ==
        "unknown comprehension-required attribute 0x0026");
  CHECK(parse_error(message(0x0001, attr(0x7FFF, {}))) ==
        "unknown comprehension-required attribute 0x7fff");
  // SOFTWARE is read; any other 0x8000-0xFFFF type is skipped.
  auto m = parse(message(0x0001, concat(attr(0x8022, bytes("STUN test client")),
                                        concat(attr(0xFFFF, bytes("z")),
                                               attr(kStunAttrPriority, bytes({0, 0, 1, 0}))))));
  REQUIRE(m);
  CHECK(m->priority == 256u);
  CHECK(m->software == std::string("STUN test client"));
  CHECK(m->has_fingerprint);
}

TEST_CASE("stun: duplicates, first wins", "[stun]") {
  auto m = parse(
      message(0x0001, concat(concat(attr(kStunAttrPriority, bytes({0, 0, 0, 1})),
                                    attr(kStunAttrUsername, bytes("first"))),
                             concat(attr(kStunAttrPriority, bytes({0, 0, 0, 2})),
                                    // A malformed repeat is ignored too: only the first is read.
                                    attr(kStunAttrUsername, Bytes(600, 'x'))))));
  REQUIRE(m);
  CHECK(m->priority == 1u);
  CHECK(m->username == std::string("first"));
}

TEST_CASE("stun: attributes after MESSAGE-INTEGRITY are ignored", "[stun]") {
  const Bytes integrity = attr(kStunAttrMessageIntegrity, Bytes(20, 0x11));
  auto m = parse(message(
      0x0001,
      concat(concat(attr(kStunAttrPriority, bytes({0, 0, 0, 1})), integrity),
             concat(attr(kStunAttrUsername, bytes("late")),
                    concat(attr(0x0003, bytes({0, 0, 0, 0})), attr(kStunAttrUseCandidate, {}))))));
  REQUIRE(m);
  CHECK(m->has_integrity);
  CHECK(m->has_fingerprint);
  CHECK(m->priority == 1u);
  CHECK_FALSE(m->username);
  CHECK_FALSE(m->use_candidate);
  // A MESSAGE-INTEGRITY of the wrong size is malformed.
  CHECK(
      parse_error(message(0x0001, attr(kStunAttrMessageIntegrity, Bytes(16, 0)))).find("0x0008") !=
      std::string::npos);
}

TEST_CASE("stun: attribute value rules", "[stun]") {
  CHECK(parse_error(message(0x0001, attr(kStunAttrUsername, Bytes(514, 'u'))))
            .find("USERNAME longer") != std::string::npos);
  CHECK(parse(message(0x0001, attr(kStunAttrUsername, Bytes(513, 'u')))));
  CHECK(parse_error(message(0x0001, attr(kStunAttrPriority, bytes({0, 0, 1}))))
            .find("0x0024 has length 3") != std::string::npos);
  CHECK(parse_error(message(0x0001, attr(kStunAttrUseCandidate, bytes({0})))).find("0x0025") !=
        std::string::npos);
  CHECK(parse_error(message(0x0001, attr(kStunAttrIceControlling, bytes({0, 0, 0, 0}))))
            .find("0x802a") != std::string::npos);
  CHECK(parse_error(message(0x0001, attr(kStunAttrIceControlled, Bytes(9, 0)))).find("0x8029") !=
        std::string::npos);

  // XOR-MAPPED-ADDRESS: family 1 with 4 bytes, family 2 with 16, nothing else.
  const Bytes v4 = bytes({0, 1, 0xa1, 0x47, 0xe1, 0x12, 0xa6, 0x43});
  auto m = parse(message(0x0101, attr(kStunAttrXorMappedAddress, v4)));
  REQUIRE(m);
  CHECK(*m->xor_mapped_address == addr("192.0.2.1:32853"));
  Bytes bad_family = v4;
  bad_family[1] = 3;
  CHECK(parse_error(message(0x0101, attr(kStunAttrXorMappedAddress, bad_family)))
            .find("XOR-MAPPED-ADDRESS") != std::string::npos);
  Bytes v6_short = v4;
  v6_short[1] = 2;
  CHECK(parse_error(message(0x0101, attr(kStunAttrXorMappedAddress, v6_short)))
            .find("XOR-MAPPED-ADDRESS") != std::string::npos);
  CHECK(parse_error(message(0x0101, attr(kStunAttrXorMappedAddress, concat(v4, bytes({0})))))
            .find("XOR-MAPPED-ADDRESS") != std::string::npos);

  // ERROR-CODE: class 3..6, number 0..99, reason at most 763 bytes.
  auto err = [](int cls, int number, size_t reason) {
    return message(
        0x0111, attr(kStunAttrErrorCode, concat(bytes({0, 0, cls, number}), Bytes(reason, 'r'))));
  };
  auto e = parse(err(4, 1, 0));
  REQUIRE(e);
  CHECK(e->error_code == 401);
  CHECK(e->error_reason.empty());
  CHECK(parse(err(6, 99, kMaxStunErrorReason)));
  CHECK(parse_error(err(6, 99, kMaxStunErrorReason + 1)).find("ERROR-CODE") != std::string::npos);
  CHECK(parse_error(err(2, 0, 0)).find("class 2") != std::string::npos);
  CHECK(parse_error(err(7, 0, 0)).find("class 7") != std::string::npos);
  CHECK(parse_error(err(4, 100, 0)).find("number 100") != std::string::npos);
  CHECK(
      parse_error(message(0x0111, attr(kStunAttrErrorCode, bytes({0, 0, 4})))).find("ERROR-CODE") !=
      std::string::npos);
}

TEST_CASE("stun: datagram size limit", "[stun]") {
  // Header + one unknown optional attribute filling the datagram to exactly n bytes.
  auto sized = [](size_t n) { return message(0x0001, attr(0xC001, Bytes(n - 20 - 8 - 4, 's'))); };
  REQUIRE(sized(kMaxStunDatagram).size() == kMaxStunDatagram);
  CHECK(parse(sized(kMaxStunDatagram)));
  const Bytes big = sized(kMaxStunDatagram + 4);
  REQUIRE(big.size() == 1504);
  CHECK(parse_error(big).find("exceeds 1500") != std::string::npos);
  CHECK_FALSE(verify_stun_integrity(big, kRfc5769Password));
}

TEST_CASE("stun: tampering breaks integrity", "[stun]") {
  // Every byte before MESSAGE-INTEGRITY's value (and inside it) is covered by the HMAC.
  const size_t integrity_end = kRfc5769Request.size() - 8;
  for (size_t i = 0; i < integrity_end; ++i) {
    Bytes bad = kRfc5769Request;
    bad[i] ^= 0x01;
    INFO("flipped byte " << i);
    CHECK_FALSE(verify_stun_integrity(bad, kRfc5769Password));
  }
  // FINGERPRINT comes after MESSAGE-INTEGRITY, so the HMAC does not cover it.
  Bytes fp_changed = kRfc5769Request;
  fp_changed.back() ^= 0x01;
  CHECK(verify_stun_integrity(fp_changed, kRfc5769Password));
  CHECK_FALSE(parse(fp_changed));

  // A tampered USERNAME with a recomputed FINGERPRINT parses, but fails integrity.
  Bytes body(kRfc5769Request.begin() + 20, kRfc5769Request.end() - 8);
  body[44] = 'E'; // "Evtj:h6vY"
  const Bytes forged = message(0x0001, body);
  auto m = parse(forged);
  REQUIRE(m);
  CHECK(m->username == std::string("Evtj:h6vY"));
  CHECK(m->has_integrity);
  CHECK(m->has_fingerprint);
  CHECK_FALSE(verify_stun_integrity(forged, kRfc5769Password));
  // ...while the untampered body rebuilt the same way still verifies.
  Bytes same(kRfc5769Request.begin() + 20, kRfc5769Request.end() - 8);
  CHECK(message(0x0001, same) == kRfc5769Request);

  // No MESSAGE-INTEGRITY at all: nothing to verify.
  CHECK_FALSE(verify_stun_integrity(encode_stun(full_request(), {}), kRfc5769Password));
}

TEST_CASE("stun: encoder refuses what no peer should receive", "[stun]") {
  StunMessage m;
  m.method = 0x1000;
  CHECK_THROWS_AS(encode_stun(m, {}), std::invalid_argument);
  m = StunMessage{};
  m.username = std::string(kMaxStunUsername + 1, 'u');
  CHECK_THROWS_AS(encode_stun(m, {}), std::invalid_argument);
  for (uint16_t code : {0, 299, 700, 999}) {
    m = StunMessage{};
    m.error_code = code;
    CHECK_THROWS_AS(encode_stun(m, {}), std::invalid_argument);
  }
  m = StunMessage{};
  m.error_code = 500;
  m.error_reason = std::string(kMaxStunErrorReason + 1, 'r');
  CHECK_THROWS_AS(encode_stun(m, {}), std::invalid_argument);
  m = StunMessage{};
  m.error_reason = "no code";
  CHECK_THROWS_AS(encode_stun(m, {}), std::invalid_argument);
  m = StunMessage{};
  m.xor_mapped_address = Address{};
  CHECK_THROWS_AS(encode_stun(m, {}), std::invalid_argument);
}

TEST_CASE("stun: to_string is one printable line", "[stun]") {
  auto m = parse(kRfc5769Request);
  REQUIRE(m);
  CHECK(to_string(*m) == "binding request tx=b7e7a701bc34d686fa87dfae user=evtj:h6vY "
                         "priority=1845494271 controlled=10605970187446795062 "
                         "software=\"STUN test client\" integrity fingerprint");
  StunMessage e;
  e.cls = StunClass::ErrorResponse;
  e.method = 0x123;
  e.error_code = 400;
  e.error_reason = "bad\n\x01\\";
  e.username = "\xff";
  CHECK(to_string(e) == "method 0x0123 error tx=000000000000000000000000 user=\\xff "
                        "error=400 \"bad\\x0a\\x01\\x5c\"");
}

TEST_CASE("stun: an empty key never verifies", "[stun]") {
  // MESSAGE-INTEGRITY that really is HMAC-SHA1 with an empty key (computed independently).
  const Bytes mac = bytes({0x12, 0x5c, 0x81, 0x4f, 0xb9, 0x8d, 0x5e, 0x00, 0x72, 0xe9,
                           0xae, 0xe4, 0x69, 0x38, 0x70, 0xb9, 0x49, 0x05, 0xb3, 0xb0});
  const Bytes m = message(0x0001, attr(kStunAttrMessageIntegrity, mac), false);
  REQUIRE(parse(m));
  CHECK_FALSE(verify_stun_integrity(m, {}));
  CHECK_FALSE(verify_stun_integrity(m, bytes("not empty")));
  // The same message with the MAC recomputed for a real key does verify.
  StunMessage plain;
  plain.transaction_id = kRfc5769Tx;
  const Bytes key = bytes("k");
  const Bytes protected_msg = encode_stun(plain, key);
  CHECK(verify_stun_integrity(protected_msg, key));
}
