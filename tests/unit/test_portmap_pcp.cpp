// The PCP codec (RFC 6887 §7, §11.1, §14.1) against bytes written out by hand from the RFC's
// layouts, and the default route from /proc/net/route.
#include <catch2/catch.hpp>

#include "bytes.hpp"
#include "portmap/gateway.hpp"
#include "portmap/pcp.hpp"

using namespace ztna::portmap;
using ztna::Address;
using ztna::test::bytes;
using ztna::test::Bytes;
using ztna::test::concat;

namespace {

const pcp::Nonce kNonce = {0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xab, 0xac};

// ::ffff:a.b.c.d
Bytes mapped(int a, int b, int c, int d) {
  return bytes({0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, a, b, c, d});
}

Bytes nonce_bytes() {
  return Bytes(kNonce.begin(), kNonce.end());
}

// A response header (§7.2): version 2, R + opcode, reserved, result, lifetime, epoch, 96 bits 0.
Bytes header(int opcode, int result, Bytes lifetime, Bytes epoch) {
  Bytes h = bytes({2, 0x80 | opcode, 0, result});
  h = concat(h, lifetime);
  h = concat(h, epoch);
  return concat(h, Bytes(12, 0));
}

// MAP data (§11.1): nonce, protocol, 24 reserved bits, internal port, external port and address.
Bytes map_data(int iport_hi, int iport_lo, int eport_hi, int eport_lo, Bytes ext) {
  Bytes m = concat(nonce_bytes(), bytes({17, 0, 0, 0, iport_hi, iport_lo, eport_hi, eport_lo}));
  return concat(m, ext);
}

} // namespace

TEST_CASE("PCP MAP request: the RFC 6887 §7.1 header and §11.1 opcode data", "[portmap][pcp]") {
  pcp::MapRequest r;
  r.lifetime = 7200;
  r.client = pcp::v4_mapped(0x0a01000a); // 10.1.0.10
  r.nonce = kNonce;
  r.internal_port = 40000;
  r.external_port = 40001;
  auto out = pcp::encode_map_request(r);
  Bytes want = bytes({2, 1, 0, 0, 0, 0, 0x1c, 0x20});
  want = concat(want, mapped(10, 1, 0, 10));
  want = concat(want, map_data(0x9c, 0x40, 0x9c, 0x41, mapped(0, 0, 0, 0)));
  CHECK(out == want);
  CHECK(out.size() == 60);

  SECTION("a deletion is the same request with lifetime 0 (§15)") {
    r.lifetime = 0;
    auto del = pcp::encode_map_request(r);
    CHECK(Bytes(del.begin() + 4, del.begin() + 8) == bytes({0, 0, 0, 0}));
    CHECK(Bytes(del.begin() + 8, del.end()) == Bytes(want.begin() + 8, want.end()));
  }
  SECTION("a suggested external address") {
    r.external_address = pcp::v4_mapped(0xcb007165); // 203.0.113.101
    auto s = pcp::encode_map_request(r);
    CHECK(Bytes(s.begin() + 44, s.end()) == mapped(203, 0, 113, 101));
  }
}

TEST_CASE("PCP ANNOUNCE request: header only, lifetime 0 (§14.1)", "[portmap][pcp]") {
  auto out = pcp::encode_announce_request(pcp::v4_mapped(0x0a01000a));
  CHECK(out == concat(bytes({2, 0, 0, 0, 0, 0, 0, 0}), mapped(10, 1, 0, 10)));
}

TEST_CASE("PCP MAP responses decode", "[portmap][pcp]") {
  SECTION("success: what the server assigned") {
    Bytes d = concat(header(1, 0, bytes({0, 0, 0x0e, 0x10}), bytes({0, 0, 0x04, 0xd2})),
                     map_data(0x9c, 0x40, 0x9c, 0x42, mapped(203, 0, 113, 101)));
    auto r = pcp::decode_response(d);
    REQUIRE(r);
    CHECK(r->version == 2);
    CHECK(r->opcode == 1);
    CHECK(r->result == 0);
    CHECK(r->lifetime == 3600);
    CHECK(r->epoch == 1234);
    REQUIRE(r->map);
    CHECK(r->map->nonce == kNonce);
    CHECK(r->map->protocol == 17);
    CHECK(r->map->internal_port == 40000);
    CHECK(r->map->external_port == 40002);
    CHECK(pcp::address_of(r->map->external_address, r->map->external_port) ==
          *Address::parse("203.0.113.101:40002"));
  }
  SECTION("an error with the copy of the request; its lifetime says how long it lasts (§7.2)") {
    Bytes d = concat(header(1, 2, bytes({0, 0, 0x02, 0x58}), bytes({0, 0, 0, 9})),
                     map_data(0x9c, 0x40, 0x9c, 0x40, mapped(0, 0, 0, 0)));
    auto r = pcp::decode_response(d);
    REQUIRE(r);
    CHECK(r->result == 2);
    CHECK(std::string(pcp::result_name(r->result)) == "NOT_AUTHORIZED");
    CHECK(r->lifetime == 600);
    CHECK(r->map);
  }
  SECTION("an error without opcode data is accepted; a success without it is not") {
    auto err = pcp::decode_response(header(1, 1, bytes({0, 0, 0, 30}), bytes({0, 0, 0, 1})));
    REQUIRE(err);
    CHECK(err->result == 1);
    CHECK_FALSE(err->map);
    CHECK_FALSE(pcp::decode_response(header(1, 0, bytes({0, 0, 0, 30}), bytes({0, 0, 0, 1}))));
  }
  SECTION("options after the opcode data are skipped when well formed (§7.3)") {
    Bytes d = concat(header(1, 0, bytes({0, 0, 0, 120}), bytes({0, 0, 0, 5})),
                     map_data(0x9c, 0x40, 0x9c, 0x40, mapped(203, 0, 113, 101)));
    Bytes option = concat(bytes({1, 0, 0, 16}), mapped(10, 1, 0, 20)); // THIRD_PARTY
    auto r = pcp::decode_response(concat(d, option));
    REQUIRE(r);
    CHECK(r->map->external_port == 40000);
    Bytes overrun = concat(bytes({1, 0, 0, 20}), mapped(10, 1, 0, 20)); // says 20, has 16
    CHECK_FALSE(pcp::decode_response(concat(d, overrun)));
    Bytes odd = bytes({1, 0, 0, 2, 7, 7, 0, 0}); // 2 bytes padded to 4
    CHECK(pcp::decode_response(concat(d, odd)));
  }
}

TEST_CASE("PCP ANNOUNCE response carries the epoch", "[portmap][pcp]") {
  auto r = pcp::decode_response(header(0, 0, bytes({0, 0, 0, 0}), bytes({0, 1, 0, 0})));
  REQUIRE(r);
  CHECK(r->opcode == 0);
  CHECK(r->epoch == 65536);
  CHECK_FALSE(r->map);
}

TEST_CASE("A NAT-PMP-only gateway's answer to PCP: version 0, unsupported version (§9)",
          "[portmap][pcp]") {
  // RFC 6886 §3.5: version 0, opcode 128 + 1, result 1, seconds since start of epoch.
  auto r = pcp::decode_response(bytes({0, 129, 0, 1, 0, 0, 0, 42}));
  REQUIRE(r);
  CHECK(r->version == 0);
  CHECK(r->opcode == 1);
  CHECK(r->result == 1);
  CHECK(r->epoch == 42);
  CHECK_FALSE(r->map);
  // With its 16-byte mapping layout behind: still only the header is read.
  CHECK(pcp::decode_response(bytes({0, 129, 0, 1, 0, 0, 0, 42, 1, 2, 3, 4, 5, 6, 7, 8})));
}

TEST_CASE("PCP responses that are refused", "[portmap][pcp]") {
  Bytes ok = concat(header(1, 0, bytes({0, 0, 0, 120}), bytes({0, 0, 0, 5})),
                    map_data(0x9c, 0x40, 0x9c, 0x40, mapped(203, 0, 113, 101)));
  REQUIRE(pcp::decode_response(ok));
  CHECK_FALSE(pcp::decode_response(bytes({0, 129, 0, 1, 0, 0, 0}))); // under 8 bytes
  CHECK_FALSE(pcp::decode_response({}));
  Bytes request = ok;
  request[1] = 1; // R bit clear: a request
  CHECK_FALSE(pcp::decode_response(request));
  CHECK_FALSE(pcp::decode_response(Bytes(ok.begin(), ok.begin() + 20)));  // short header
  CHECK_FALSE(pcp::decode_response(concat(ok, bytes({0, 0}))));           // not a multiple of 4
  CHECK_FALSE(pcp::decode_response(concat(ok, Bytes(1100 - 60 + 4, 0)))); // over 1100 bytes
  // A success cut inside the opcode data.
  CHECK_FALSE(pcp::decode_response(Bytes(ok.begin(), ok.begin() + 56)));
  // Another version: header only, whatever follows.
  Bytes v3 = ok;
  v3[0] = 3;
  auto r = pcp::decode_response(v3);
  REQUIRE(r);
  CHECK(r->version == 3);
  CHECK_FALSE(r->map);
}

TEST_CASE("PCP responses encode and decode back", "[portmap][pcp]") {
  pcp::Response r;
  r.opcode = 1;
  r.result = 0;
  r.lifetime = 7200;
  r.epoch = 99;
  r.map = pcp::MapData{kNonce, 17, 40000, 41000, pcp::v4_mapped(0xcb007165)};
  CHECK(pcp::decode_response(pcp::encode_response(r)) == r);
  r.map.reset();
  r.result = 8;
  CHECK(pcp::decode_response(pcp::encode_response(r)) == r);
  pcp::Response natpmp;
  natpmp.version = 0;
  natpmp.opcode = 1;
  natpmp.result = 1;
  natpmp.epoch = 7;
  CHECK(pcp::encode_response(natpmp).size() == 8);
  CHECK(pcp::decode_response(pcp::encode_response(natpmp)) == natpmp);
}

TEST_CASE("IPv4-mapped addresses (§5)", "[portmap][pcp]") {
  auto ip = pcp::v4_mapped(0xc0000201);
  CHECK(Bytes(ip.begin(), ip.end()) == mapped(192, 0, 2, 1));
  CHECK(pcp::v4_of(ip) == 0xc0000201u);
  CHECK(pcp::ip16_of(*Address::parse("192.0.2.1:5")) == ip);
  auto v6 = pcp::ip16_of(*Address::parse("[2001:db8::1]:5"));
  CHECK_FALSE(pcp::v4_of(v6));
  CHECK(pcp::address_of(v6, 7) == *Address::parse("[2001:db8::1]:7"));
  CHECK(pcp::address_of(ip, 7) == *Address::parse("192.0.2.1:7"));
  pcp::Ip16 compat{}; // ::192.0.2.1 is not IPv4-mapped
  compat[12] = 192;
  CHECK_FALSE(pcp::v4_of(compat));
  CHECK(std::string(pcp::result_name(200)) == "unknown");
}

TEST_CASE("The default gateway from /proc/net/route", "[portmap][gateway]") {
  const char* head =
      "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n";
  SECTION("the kernel's layout: addresses as it holds them, in network byte order") {
    std::string t = std::string(head) +
                    "eth0\t00000000\t0101000A\t0003\t0\t0\t0\t00000000\t0\t0\t0          \n"
                    "eth0\t0001000A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0          \n";
    auto r = default_route(t);
    REQUIRE(r);
    CHECK(r->gateway == 0x0a000101u); // 10.0.1.1
    CHECK(r->interface == "eth0");
  }
  SECTION("the lowest metric wins; routes that are down or have no gateway do not count") {
    std::string t = std::string(head) +
                    "wlan0\t00000000\t0102A8C0\t0003\t0\t0\t600\t00000000\t0\t0\t0\n"
                    "eth0\t00000000\t0101000A\t0003\t0\t0\t100\t00000000\t0\t0\t0\n"
                    "eth1\t00000000\t0103000A\t0002\t0\t0\t1\t00000000\t0\t0\t0\n"  // not up
                    "eth2\t00000000\t00000000\t0001\t0\t0\t0\t00000000\t0\t0\t0\n"  // no gateway
                    "eth3\t00000000\t0104000A\t0003\t0\t0\t0\tFFFFFFFF\t0\t0\t0\n"; // a host route
    auto r = default_route(t);
    REQUIRE(r);
    CHECK(r->gateway == 0x0a000101u);
    CHECK(r->metric == 100);
  }
  SECTION("none") {
    CHECK_FALSE(default_route(""));
    CHECK_FALSE(default_route(head));
    CHECK_FALSE(default_route(std::string(head) +
                              "eth0\t0001000A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n"));
    CHECK_FALSE(default_route(std::string(head) + "eth0\tzz\t0101000A\t0003\t0\t0\t0\t0\n"));
    CHECK_FALSE(default_route(std::string(head) + "eth0\t00000000\t0101000A\n"));
  }
}
