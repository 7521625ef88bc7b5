// stun::BindingServer: what is answered and how, RFC 5780's four sockets, the 3x size bound, the
// rate limits and their table. Explicit time, no sockets.
#include <catch2/catch.hpp>

#include <optional>
#include <stdexcept>
#include <string>

#include "stun/binding_server.hpp"
#include "stun_bytes.hpp"
#include "wire/stun_message.hpp"

using namespace ztna::wire;
using ztna::Address;
using ztna::stun::BindingServer;
using ztna::stun::kAllSockets;
using ztna::stun::Socket;
using ztna::test::bytes;
using ztna::test::Bytes;
using ztna::test::concat;
using ztna::test::stun_attr;
using ztna::test::u32_bytes;

namespace {

constexpr uint64_t kSecond = 1'000'000'000;
const StunTransactionId kTx = {9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 1, 2};

Address addr(const char* text) {
  auto a = Address::parse(text);
  REQUIRE(a);
  return *a;
}

// Parsed without REQUIRE: it is built before any test runs.
const Address kClient = *Address::parse("198.51.100.7:40000");

BindingServer::Config plain() {
  BindingServer::Config c;
  c.primary = addr("203.0.113.1:3478");
  return c;
}

// RFC 5780: two addresses, two ports.
BindingServer::Config full() {
  BindingServer::Config c = plain();
  c.alternate_port = 3479;
  c.alternate_address = addr("203.0.113.2:0");
  return c;
}

Bytes request(std::optional<StunChangeRequest> change = std::nullopt,
              std::optional<uint16_t> response_port = std::nullopt,
              std::string software = "ztna stun") {
  StunBindingRequest r;
  r.transaction_id = kTx;
  r.change = change;
  r.response_port = response_port;
  r.software = std::move(software);
  return encode_binding_request(r);
}

// A Binding request with nothing but its header: what some clients send (coturn's does).
Bytes bare_request() {
  return ztna::test::stun_message(0x0001, kTx, {}, false);
}

StunMessage answer(const std::optional<BindingServer::Reply>& reply) {
  REQUIRE(reply);
  std::string error;
  auto m = parse_stun(reply->datagram, error);
  INFO(error);
  REQUIRE(m);
  CHECK(m->transaction_id == kTx);
  CHECK_FALSE(m->has_integrity);
  CHECK(m->has_fingerprint);
  return *m;
}

} // namespace

TEST_CASE("stun server: a plain Binding request is answered", "[stun][server]") {
  BindingServer server(plain());
  const Bytes req = request();
  auto reply = server.on_datagram(0, Socket::Primary, kClient, req);
  const StunMessage m = answer(reply);
  CHECK(reply->via == Socket::Primary);
  CHECK(reply->to == kClient);
  CHECK(reply->datagram.size() <= 3 * req.size());
  CHECK(m.cls == StunClass::SuccessResponse);
  CHECK(m.method == kStunBindingMethod);
  CHECK(m.xor_mapped_address == kClient);
  CHECK(m.mapped_address == kClient);
  CHECK(m.response_origin == addr("203.0.113.1:3478"));
  CHECK_FALSE(m.other_address); // no alternates: no RFC 5780
  CHECK(m.software == std::string("ztna"));
  CHECK_FALSE(server.rfc5780());

  // The client helper reads it.
  std::string error;
  auto r = read_binding_response(reply->datagram, kTx, error);
  REQUIRE(r);
  CHECK(r->success);
  CHECK(r->mapped == kClient);

  // IPv6 works the same way.
  BindingServer::Config c6;
  c6.primary = addr("[2001:db8::1]:3478");
  BindingServer v6(c6);
  const Address client6 = addr("[2001:db8:aa::7]:5555");
  const StunMessage m6 = answer(v6.on_datagram(0, Socket::Primary, client6, req));
  CHECK(m6.xor_mapped_address == client6);
  CHECK(m6.response_origin == addr("[2001:db8::1]:3478"));

  const auto& k = server.counters();
  CHECK(k.received == 1);
  CHECK(k.answered == 1);
  CHECK(k.answers_trimmed == 0);
  CHECK(server.sources() == 1);
}

TEST_CASE("stun server: requests with credentials are ICE checks, not ours", "[stun][server]") {
  BindingServer server(full());
  StunMessage check;
  check.transaction_id = kTx;
  check.username = "remote:local";
  check.priority = 1;
  check.ice_controlling = 7;
  const Bytes with_key = encode_stun(check, bytes("password-password-1"));
  const Bytes username_only = encode_stun(check, {});
  const Bytes integrity_only =
      ztna::test::stun_message(0x0001, kTx, stun_attr(kStunAttrMessageIntegrity, Bytes(20, 1)));
  // Even a malformed USERNAME is not answered with a 400: credentials mean "not for us".
  const Bytes bad_username =
      ztna::test::stun_message(0x0001, kTx, stun_attr(kStunAttrUsername, Bytes(600, 'u')));
  for (const Bytes& d : {with_key, username_only, integrity_only, bad_username})
    CHECK_FALSE(server.on_datagram(0, Socket::Primary, kClient, d));
  CHECK(server.counters().dropped_credentials == 4);
  CHECK(server.counters().answered == 0);
  CHECK(server.sources() == 0); // dropped before the rate limits: nothing spent
}

TEST_CASE("stun server: responses, indications and junk are never answered", "[stun][server]") {
  BindingServer server(full());
  StunMessage success;
  success.cls = StunClass::SuccessResponse;
  success.transaction_id = kTx;
  success.xor_mapped_address = kClient;
  StunMessage error = success;
  error.cls = StunClass::ErrorResponse;
  error.xor_mapped_address.reset();
  error.error_code = 400;
  StunMessage indication;
  indication.cls = StunClass::Indication;
  indication.transaction_id = kTx;
  // Also a response of another method and an error response with unknown attributes: still
  // never answered.
  StunMessage other = success;
  other.method = 0x003;
  const Bytes unknown_in_response =
      ztna::test::stun_message(0x0111, kTx, stun_attr(kStunAttrPadding, {}));
  for (const Bytes& d : {encode_stun(success, {}), encode_stun(error, {}),
                         encode_stun(indication, {}), encode_stun(other, {}), unknown_in_response})
    for (Socket s : kAllSockets)
      CHECK_FALSE(server.on_datagram(0, s, kClient, d));
  CHECK(server.counters().dropped_not_request == 5 * 4);

  Bytes bad_fingerprint = request();
  bad_fingerprint.back() ^= 1;
  Bytes bad_cookie = request();
  bad_cookie[5] ^= 1;
  const Bytes full_request = request();
  const Bytes too_short(full_request.begin(), full_request.begin() + 19);
  const Bytes quic = bytes({0xc3, 0, 0, 0, 1, 8, 1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0, 0, 0, 0, 0});
  for (const Bytes& d : {bad_fingerprint, bad_cookie, too_short, quic, Bytes{}})
    CHECK_FALSE(server.on_datagram(0, Socket::Primary, kClient, d));
  CHECK(server.counters().dropped_invalid == 5);

  // Over 1500 bytes: dropped before parsing, with its own counter.
  const Bytes big = ztna::test::stun_message(0x0001, kTx, stun_attr(0x8123, Bytes(1480, 'p')));
  REQUIRE(big.size() > kMaxStunDatagram);
  CHECK_FALSE(server.on_datagram(0, Socket::Primary, kClient, big));
  CHECK(server.counters().dropped_oversize == 1);
  CHECK(server.counters().answered == 0);
  CHECK(server.counters().bad_request == 0);
  CHECK(server.counters().received == 5 * 4 + 5 + 1);
}

TEST_CASE("stun server: 420 for unknown comprehension-required attributes", "[stun][server]") {
  BindingServer server(full());
  // PADDING (RFC 5780 §7.6) is not supported: padding answers up to the MTU would amplify.
  const Bytes req = ztna::test::stun_message(
      0x0001, kTx,
      concat(stun_attr(kStunAttrPadding, Bytes(100, 0)),
             concat(stun_attr(0x7ABC, {}), stun_attr(kStunAttrSoftware, bytes("x")))));
  auto reply = server.on_datagram(0, Socket::Primary, kClient, req);
  const StunMessage m = answer(reply);
  CHECK(reply->via == Socket::Primary);
  CHECK(reply->to == kClient);
  CHECK(m.cls == StunClass::ErrorResponse);
  CHECK(m.error_code == 420);
  CHECK(m.error_reason == "Unknown Attribute");
  CHECK(m.unknown_attributes == std::vector<uint16_t>{kStunAttrPadding, 0x7ABC});
  CHECK_FALSE(m.xor_mapped_address);
  CHECK(server.counters().unknown_attribute == 1);
  CHECK(server.counters().answered == 0);

  // With RESPONSE-PORT understood, the error goes there.
  const Bytes to_port =
      ztna::test::stun_message(0x0001, kTx,
                               concat(stun_attr(kStunAttrResponsePort, bytes({0x13, 0x88, 0, 0})),
                                      stun_attr(kStunAttrPadding, Bytes(8, 0))));
  reply = server.on_datagram(0, Socket::Primary, kClient, to_port);
  CHECK(answer(reply).error_code == 420);
  CHECK(reply->to == addr("198.51.100.7:5000"));
  CHECK(server.counters().answered_to_port == 1);
}

TEST_CASE("stun server: 400 for malformed requests and other methods", "[stun][server]") {
  BindingServer server(full());
  // A known attribute with a bad value.
  const Bytes bad_value =
      ztna::test::stun_message(0x0001, kTx, stun_attr(kStunAttrChangeRequest, bytes({0, 6})));
  auto reply = server.on_datagram(0, Socket::AlternateBoth, kClient, bad_value);
  StunMessage m = answer(reply);
  CHECK(reply->via == Socket::AlternateBoth); // errors leave from where the request came
  CHECK(m.cls == StunClass::ErrorResponse);
  CHECK(m.error_code == 400);
  CHECK(m.error_reason == "Bad Request");

  // A TURN Allocate (method 0x003) without credentials: this is not a TURN server.
  const Bytes allocate = ztna::test::stun_message(0x0003, kTx, {});
  m = answer(server.on_datagram(0, Socket::Primary, kClient, allocate));
  CHECK(m.cls == StunClass::ErrorResponse);
  CHECK(m.method == 0x003);
  CHECK(m.error_code == 400);

  // RESPONSE-PORT 0: a 400 back to the source port.
  reply = server.on_datagram(0, Socket::Primary, kClient, request(std::nullopt, 0));
  CHECK(answer(reply).error_code == 400);
  CHECK(reply->to == kClient);
  CHECK(server.counters().bad_request == 3);
  CHECK(server.counters().answered_to_port == 0);
}

TEST_CASE("stun server: CHANGE-REQUEST without RFC 5780 is a 420", "[stun][server]") {
  // RFC 5780 §6.1: without an alternate address AND port, no OTHER-ADDRESS and a 420 for any
  // CHANGE-REQUEST, even one that asks for no change.
  BindingServer::Config port_only = plain();
  port_only.alternate_port = 3479;
  BindingServer::Config address_only = plain();
  address_only.alternate_address = addr("203.0.113.2:0");
  BindingServer::Config wildcard = full(); // both, but the primary IP is not known
  wildcard.primary = addr("0.0.0.0:3478");
  for (const auto& config : {plain(), port_only, address_only, wildcard}) {
    BindingServer server(config);
    INFO(
        "config with " << config.primary.to_string() << " alt port "
                       << config.alternate_port.value_or(0) << " alt address "
                       << (config.alternate_address ? config.alternate_address->ip_string() : "-"));
    CHECK_FALSE(server.rfc5780());
    for (auto change : {StunChangeRequest{true, true}, StunChangeRequest{false, true},
                        StunChangeRequest{true, false}, StunChangeRequest{false, false}}) {
      auto reply = server.on_datagram(0, Socket::Primary, kClient, request(change));
      const StunMessage m = answer(reply);
      CHECK(reply->via == Socket::Primary);
      CHECK(m.error_code == 420);
      CHECK(m.unknown_attributes == std::vector<uint16_t>{kStunAttrChangeRequest});
    }
    // A plain request is answered, without OTHER-ADDRESS.
    const StunMessage ok = answer(server.on_datagram(0, Socket::Primary, kClient, request()));
    CHECK(ok.cls == StunClass::SuccessResponse);
    CHECK_FALSE(ok.other_address);
    CHECK(server.counters().unknown_attribute == 4);
  }
}

TEST_CASE("stun server: RFC 5780 §6.1 table, from each of the four sockets", "[stun][server]") {
  BindingServer server(full());
  REQUIRE(server.rfc5780());
  CHECK(server.address(Socket::Primary) == addr("203.0.113.1:3478"));
  CHECK(server.address(Socket::AlternatePort) == addr("203.0.113.1:3479"));
  CHECK(server.address(Socket::AlternateAddress) == addr("203.0.113.2:3478"));
  CHECK(server.address(Socket::AlternateBoth) == addr("203.0.113.2:3479"));
  struct Case {
    bool ip, port;
    unsigned flip;
  };
  for (Socket on : kAllSockets) {
    REQUIRE(server.has(on));
    // OTHER-ADDRESS is the other IP and the other port of the socket the request came to.
    const Address other = server.address(static_cast<Socket>(static_cast<unsigned>(on) ^ 3u));
    for (Case c :
         {Case{false, false, 0}, Case{false, true, 1}, Case{true, false, 2}, Case{true, true, 3}}) {
      INFO("on " << to_string(on) << " change ip " << c.ip << " port " << c.port);
      auto reply = server.on_datagram(0, on, kClient, request(StunChangeRequest{c.ip, c.port}));
      const StunMessage m = answer(reply);
      const auto via = static_cast<Socket>(static_cast<unsigned>(on) ^ c.flip);
      CHECK(reply->via == via);
      CHECK(reply->to == kClient);
      CHECK(m.cls == StunClass::SuccessResponse);
      CHECK(m.xor_mapped_address == kClient);
      CHECK(m.mapped_address == kClient);
      CHECK(m.response_origin == server.address(via));
      CHECK(m.other_address == other);
    }
    // No CHANGE-REQUEST: answered from the same socket.
    auto reply = server.on_datagram(0, on, kClient, request());
    CHECK(reply->via == on);
    CHECK(answer(reply).other_address == other);
  }
  CHECK(server.counters().answered == 4 * 5);
  CHECK(server.counters().answered_changed == 4 * 3);
}

TEST_CASE("stun server: RESPONSE-PORT sends to another port of the source IP", "[stun][server]") {
  BindingServer server(full());
  auto reply = server.on_datagram(0, Socket::Primary, kClient,
                                  request(StunChangeRequest{true, true}, 40001));
  const StunMessage m = answer(reply);
  CHECK(reply->via == Socket::AlternateBoth);
  CHECK(reply->to == addr("198.51.100.7:40001"));
  CHECK(m.xor_mapped_address == kClient); // still where the request came from
  CHECK(server.counters().answered_to_port == 1);
  CHECK(server.counters().answered_changed == 1);
}

TEST_CASE("stun server: an answer is never larger than 3x its request", "[stun][server]") {
  const Address client6 = addr("[2001:db8:aa::7]:5555");
  BindingServer::Config c6;
  c6.primary = addr("[2001:db8::1]:3478");
  c6.alternate_port = 3479;
  c6.alternate_address = addr("[2001:db8::2]:0");
  BindingServer v4(full()), v6(c6);

  // A bare 20-byte request gets 60 bytes at most: XOR-MAPPED-ADDRESS and FINGERPRINT always,
  // then what fits, most useful first (OTHER-ADDRESS, RESPONSE-ORIGIN, MAPPED-ADDRESS, SOFTWARE).
  auto reply = v4.on_datagram(0, Socket::Primary, kClient, bare_request());
  StunMessage m = answer(reply);
  CHECK(reply->datagram.size() <= 60);
  CHECK(m.xor_mapped_address == kClient);
  CHECK(m.other_address == addr("203.0.113.2:3479"));
  CHECK_FALSE(m.response_origin);
  CHECK_FALSE(m.mapped_address);
  CHECK(v4.counters().answers_trimmed == 1);
  reply = v6.on_datagram(0, Socket::Primary, client6, bare_request());
  m = answer(reply);
  CHECK(reply->datagram.size() <= 60);
  CHECK(m.xor_mapped_address == client6);
  CHECK_FALSE(m.other_address);             // 24 bytes more would not fit
  CHECK(m.software == std::string("ztna")); // but the 8 bytes of SOFTWARE do

  // The client helper's default request (44 bytes) has room for everything, IPv6 included.
  m = answer(v6.on_datagram(0, Socket::Primary, client6, request()));
  CHECK(m.other_address);
  CHECK(m.response_origin);
  CHECK(m.mapped_address);
  CHECK(m.software);
  CHECK(v6.counters().answers_trimmed == 1);

  // Every request size from 20 up, both families, every socket and change: within 3x.
  for (size_t extra = 0; extra <= 40; ++extra) {
    const Bytes req =
        extra == 0 ? bare_request() : request(std::nullopt, std::nullopt, std::string(extra, 's'));
    for (Socket on : kAllSockets)
      for (auto change :
           {std::optional<StunChangeRequest>{}, std::optional(StunChangeRequest{true, true})}) {
        const Bytes r = change ? request(change, std::nullopt, std::string(extra, 's')) : req;
        for (auto* server : {&v4, &v6}) {
          const Address from = server == &v4 ? kClient : client6;
          auto out = server->on_datagram(extra * kSecond, on, from, r);
          REQUIRE(out);
          CHECK(out->datagram.size() <= 3 * r.size());
        }
      }
  }
  CHECK(v4.counters().dropped_amplification == 0);
  CHECK(v6.counters().dropped_amplification == 0);
}

TEST_CASE("stun server: per-source and global rate limits", "[stun][server]") {
  BindingServer::Config c = full();
  c.source_rate = 10;
  c.source_burst = 5;
  c.global_rate = 100;
  c.global_burst = 8;
  BindingServer server(c);
  const Bytes req = request();
  uint64_t now = 1000 * kSecond;

  // A burst from one source: 5 answered, the rest dropped (and not answered at all).
  int answered = 0;
  for (int i = 0; i < 20; ++i)
    answered += server.on_datagram(now, Socket::Primary, kClient, req).has_value();
  CHECK(answered == 5);
  CHECK(server.counters().dropped_source_limit == 15);
  // Another port of the same IP is the same source; so is every socket of ours.
  CHECK_FALSE(server.on_datagram(now, Socket::AlternateBoth, addr("198.51.100.7:1"), req));
  CHECK(server.counters().dropped_source_limit == 16);
  // Another source is not affected...
  CHECK(server.on_datagram(now, Socket::Primary, addr("198.51.100.8:40000"), req));
  // ... until the global budget (8) runs out: 5 + 1 spent, 2 left.
  CHECK(server.on_datagram(now, Socket::Primary, addr("198.51.100.9:1"), req));
  CHECK(server.on_datagram(now, Socket::Primary, addr("198.51.100.9:1"), req));
  CHECK_FALSE(server.on_datagram(now, Socket::Primary, addr("198.51.100.10:1"), req));
  CHECK(server.counters().dropped_global_limit == 1);

  // Tokens come back with time: 100 ms is one more request for the first source (10/s).
  now += kSecond / 10;
  CHECK(server.on_datagram(now, Socket::Primary, kClient, req));
  CHECK_FALSE(server.on_datagram(now, Socket::Primary, kClient, req));
  CHECK(server.counters().dropped_source_limit == 17);
  // Requests that are dropped before the limits (credentials, not a request) spend nothing.
  StunMessage check;
  check.transaction_id = kTx;
  check.username = "a:b";
  for (int i = 0; i < 50; ++i)
    CHECK_FALSE(
        server.on_datagram(now, Socket::Primary, addr("198.51.100.50:1"), encode_stun(check, {})));
  CHECK(server.on_datagram(now, Socket::Primary, addr("198.51.100.50:1"), req));

  // IPv6: one /64 is one source.
  BindingServer::Config c6 = c;
  c6.primary = addr("[2001:db8::1]:3478");
  c6.alternate_address = addr("[2001:db8::2]:0");
  BindingServer v6(c6);
  for (int i = 0; i < 5; ++i) {
    const std::string a = "[2001:db8:aa:bb::" + std::to_string(i + 1) + "]:5000";
    CHECK(v6.on_datagram(now, Socket::Primary, addr(a.c_str()), req));
  }
  CHECK_FALSE(v6.on_datagram(now, Socket::Primary, addr("[2001:db8:aa:bb:ffff::1]:5000"), req));
  CHECK(v6.on_datagram(now, Socket::Primary, addr("[2001:db8:aa:bc::1]:5000"), req));
  CHECK(v6.sources() == 2);
}

TEST_CASE("stun server: the per-source table is bounded, least recently seen out first",
          "[stun][server]") {
  BindingServer::Config c = plain();
  c.max_sources = 2;
  c.source_rate = 1;
  c.source_burst = 1;
  BindingServer server(c);
  const Bytes req = request();
  const Address a = addr("192.0.2.1:1"), b = addr("192.0.2.2:1"), d = addr("192.0.2.3:1");
  CHECK(server.on_datagram(0, Socket::Primary, a, req));
  CHECK(server.on_datagram(0, Socket::Primary, b, req));
  CHECK_FALSE(server.on_datagram(0, Socket::Primary, a, req)); // a is now the most recent
  CHECK(server.on_datagram(0, Socket::Primary, d, req));       // b goes
  CHECK(server.sources() == 2);
  CHECK(server.counters().sources_evicted == 1);
  CHECK_FALSE(server.on_datagram(0, Socket::Primary, a, req)); // a kept its empty bucket
  CHECK(server.on_datagram(0, Socket::Primary, b, req));       // b starts afresh; d goes
  CHECK(server.counters().sources_evicted == 2);
  CHECK(server.sources() == 2);
}

TEST_CASE("stun server: wildcard primary and partial alternates", "[stun][server]") {
  // Bound to 0.0.0.0: the primary IP is unknown, so answers from it carry no RESPONSE-ORIGIN.
  BindingServer::Config c = plain();
  c.primary = addr("0.0.0.0:3478");
  c.alternate_port = 3479;
  BindingServer server(c);
  CHECK(server.has(Socket::AlternatePort));
  CHECK_FALSE(server.has(Socket::AlternateAddress));
  CHECK_FALSE(server.has(Socket::AlternateBoth));
  auto reply = server.on_datagram(0, Socket::AlternatePort, kClient, request());
  StunMessage m = answer(reply);
  CHECK(reply->via == Socket::AlternatePort);
  CHECK(m.xor_mapped_address == kClient);
  CHECK_FALSE(m.response_origin);
  CHECK_FALSE(m.other_address);
  CHECK(server.counters().answers_trimmed == 0); // nothing left out for size
  // A socket it does not have is the caller's mistake.
  CHECK_THROWS_AS(server.on_datagram(0, Socket::AlternateBoth, kClient, request()),
                  std::invalid_argument);

  // An alternate address alone: answers on it name it.
  BindingServer::Config a = plain();
  a.alternate_address = addr("203.0.113.2:0");
  BindingServer alt(a);
  m = answer(alt.on_datagram(0, Socket::AlternateAddress, kClient, request()));
  CHECK(m.response_origin == addr("203.0.113.2:3478"));
  CHECK_FALSE(m.other_address);
}

TEST_CASE("stun server: configurations that cannot work are refused", "[stun][server]") {
  auto refused = [](BindingServer::Config c) {
    CHECK_THROWS_AS(BindingServer(std::move(c)), std::invalid_argument);
  };
  BindingServer::Config c;
  refused(c); // no primary
  c = plain();
  c.primary = addr("203.0.113.1:0");
  refused(c);
  c = plain();
  c.alternate_port = 3478;
  refused(c);
  c.alternate_port = 0;
  refused(c);
  c = plain();
  c.alternate_address = addr("203.0.113.1:9");
  refused(c); // the same IP
  c.alternate_address = addr("0.0.0.0:0");
  refused(c);
  c.alternate_address = addr("[2001:db8::2]:0");
  refused(c); // another family
  c = plain();
  c.source_rate = 0;
  refused(c);
  c = plain();
  c.global_burst = 0.5;
  refused(c);
  c = plain();
  c.max_sources = 0;
  refused(c);
  c = plain();
  c.software = std::string(kMaxStunSoftware + 1, 's');
  refused(c);
  CHECK_NOTHROW(BindingServer(full()));
}
