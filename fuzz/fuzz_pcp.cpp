// The PCP codec (portmap::pcp, RFC 6887) and the port mapping state machine
// (portmap::PortMapping) on arbitrary input: what a gateway, or anything on the LAN that can
// send from the gateway's port 5351, may answer.
//
// The whole input is first a datagram for pcp::decode_response. Checks that an accepted
// response lies within 8..1100 bytes, that a version-2 MAP success carries its opcode data, and
// that encode_response of the decoded response decodes back to the same response.
//
// Then the input is a script. Byte 0 configures the mapping (bits 0-2: the protocol order,
// bits 3-4: the lifetime asked for, bit 5: the epoch check on or off), byte 1 is the lifetime in
// seconds the crafted answers grant, and the rest is operations, each an opcode byte and its
// arguments:
//   0 time      advance N x 50 ms, then handle_timeout
//   1 wake      jump to next_timeout() and handle it
//   2 raw PCP   length, bytes: a datagram on the PCP socket as it comes
//   3 MAP       result, external port, epoch: an answer to our last MAP request (our nonce and
//               port), success or error, lifetime from byte 1 (or 0 for result 255)
//   4 ANNOUNCE  epoch
//   5 NAT-PMP   flags (bit 0 public address, bits 1-3 result), epoch, external port, lifetime
//   6 UPnP-IGD  flags (bit 0 ok, bit 1 an old job id), external port, lifetime
//   7 ICMP      port unreachable for PCP (even) or NAT-PMP (odd)
//   8 stop
// Checks after each operation, aborting on a violation:
//   - every PCP request is a 60-byte MAP with our nonce and internal port, or a 24-byte ANNOUNCE;
//     a MAP with lifetime 0 only while stopping, and while stopping only that;
//   - every NAT-PMP mapping request names our port; a deletion (lifetime 0) only while
//     stopping, and with external port 0 (RFC 6886 §3.4);
//   - Obtained and Renewed leave the state Mapped (unless Lost or Stopped follows in the same
//     call), and the last one describes the mapping held; a mapping is held in
//     Mapped (and may be while Stopping) and never in Idle, Trying, Waiting or Stopped;
//   - Stopped once, in state Stopped, and nothing at all after it;
//   - after handle_timeout(now), next_timeout() is later than now (the I/O shell never spins).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "fuzz_check.hpp"
#include "portmap/pcp.hpp"
#include "portmap/port_mapping.hpp"

using namespace ztna;
using namespace ztna::portmap;

namespace {

constexpr Timestamp kMs = 1'000'000;
constexpr uint16_t kPort = 40000;

class Script {
public:
  explicit Script(std::span<const uint8_t> d) : d_(d) {}
  bool done() const { return pos_ >= d_.size(); }
  uint8_t u8() { return pos_ < d_.size() ? d_[pos_++] : 0; }
  uint16_t u16() {
    uint16_t hi = u8();
    return static_cast<uint16_t>((hi << 8) | u8());
  }
  std::span<const uint8_t> bytes(size_t n) {
    n = std::min(n, d_.size() - pos_);
    auto out = d_.subspan(pos_, n);
    pos_ += n;
    return out;
  }

private:
  std::span<const uint8_t> d_;
  size_t pos_ = 0;
};

void check_codec(std::span<const uint8_t> data) {
  auto r = pcp::decode_response(data);
  if (!r) return;
  FUZZ_CHECK(data.size() >= 8 && data.size() <= pcp::kMaxMessage);
  if (r->version == pcp::kVersion && r->opcode == static_cast<uint8_t>(pcp::Opcode::Map) &&
      r->result == 0)
    FUZZ_CHECK(r->map.has_value());
  auto again = pcp::decode_response(pcp::encode_response(*r));
  FUZZ_CHECK(again.has_value());
  FUZZ_CHECK(*again == *r);
}

const std::vector<std::vector<Protocol>> kOrders = {
    {Protocol::Pcp, Protocol::NatPmp, Protocol::Upnp},
    {Protocol::Pcp},
    {Protocol::NatPmp},
    {Protocol::Upnp},
    {Protocol::Upnp, Protocol::Pcp},
    {Protocol::NatPmp, Protocol::Pcp},
    {Protocol::Pcp, Protocol::Upnp},
    {Protocol::Upnp, Protocol::NatPmp, Protocol::Pcp}};

struct Driver {
  PortMapping m;
  Timestamp now = 1000 * 1'000'000'000ull;
  std::vector<uint8_t> last_map; // our last MAP request
  uint64_t last_job = 0, previous_job = 0;
  bool stopped = false;

  explicit Driver(Config c) : m(std::move(c)) {}

  void check_actions() {
    auto actions = m.take_actions();
    if (stopped) FUZZ_CHECK(actions.empty());
    bool stopping =
        m.state() == PortMapping::State::Stopping || m.state() == PortMapping::State::Stopped;
    for (const auto& a : actions) {
      if (auto* s = std::get_if<SendPcp>(&a)) {
        const auto& d = s->datagram;
        FUZZ_CHECK(d.size() == 60 || d.size() == 24);
        FUZZ_CHECK(d[0] == 2);
        if (d.size() == 24) {
          FUZZ_CHECK(d[1] == 0);
          FUZZ_CHECK(!stopping);
          continue;
        }
        FUZZ_CHECK(d[1] == 1);
        FUZZ_CHECK(std::equal(m.nonce().begin(), m.nonce().end(), d.begin() + 24));
        FUZZ_CHECK(d[36] == pcp::kProtocolUdp);
        FUZZ_CHECK(((d[40] << 8) | d[41]) == kPort);
        bool remove = d[4] == 0 && d[5] == 0 && d[6] == 0 && d[7] == 0;
        FUZZ_CHECK(remove == stopping);
        last_map = d;
      } else if (auto* s = std::get_if<SendNatPmp>(&a)) {
        if (s->request.public_address) {
          FUZZ_CHECK(!stopping);
          continue;
        }
        FUZZ_CHECK(s->request.internal_port == kPort);
        FUZZ_CHECK((s->request.lifetime == 0) == stopping);
        if (s->request.lifetime == 0) FUZZ_CHECK(s->request.external_port == 0);
      } else if (auto* s = std::get_if<RunUpnp>(&a)) {
        FUZZ_CHECK(s->job.id > last_job);
        previous_job = last_job;
        last_job = s->job.id;
      } else if (std::get_if<Obtained>(&a) || std::get_if<Renewed>(&a)) {
        // Mapped at the end of the call, unless the mapping was lost or stopped after it.
        bool later_end = false;
        for (auto it = &a + 1; it != actions.data() + actions.size(); ++it)
          later_end = later_end || std::get_if<Lost>(it) || std::get_if<Stopped>(it);
        FUZZ_CHECK(m.state() == PortMapping::State::Mapped || later_end);
      } else if (std::get_if<Stopped>(&a)) {
        FUZZ_CHECK(!stopped);
        FUZZ_CHECK(m.state() == PortMapping::State::Stopped);
        stopped = true;
      }
    }
    // The events of one call may be followed by more state changes in the same call (a loss
    // starts a new round); what holds at the end:
    switch (m.state()) {
    case PortMapping::State::Mapped:
      FUZZ_CHECK(m.mapping().has_value());
      break;
    case PortMapping::State::Stopping:
      break;
    default:
      FUZZ_CHECK(!m.mapping().has_value());
      break;
    }
    if (m.state() == PortMapping::State::Mapped) {
      // The last Obtained or Renewed of this batch describes the mapping held.
      for (auto it = actions.rbegin(); it != actions.rend(); ++it) {
        if (auto* o = std::get_if<Obtained>(&*it)) {
          FUZZ_CHECK(o->mapping == *m.mapping());
          break;
        }
        if (auto* r = std::get_if<Renewed>(&*it)) {
          FUZZ_CHECK(r->mapping == *m.mapping());
          break;
        }
        if (std::get_if<Lost>(&*it)) break;
      }
    }
  }

  void timeout() {
    m.handle_timeout(now);
    check_actions();
    Timestamp next = m.next_timeout();
    FUZZ_CHECK(next == kNever || next > now);
  }
};

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::span<const uint8_t> in(data, size);
  check_codec(in);

  Script s(in);
  uint8_t cfg = s.u8();
  uint8_t grant = s.u8();
  Config c;
  c.protocols = kOrders[cfg & 7];
  c.internal_port = kPort;
  c.gateway = *Address::parse("10.1.0.1:5351");
  c.client = *Address::parse("10.1.0.10:0");
  const int lifetimes[] = {2, 4, 120, 7200};
  c.lifetime = std::chrono::seconds(lifetimes[(cfg >> 3) & 3]);
  c.epoch_check = std::chrono::seconds((cfg & 0x20) ? 60 : 0);
  c.random = [n = uint8_t{0}](std::span<uint8_t> out) mutable {
    for (auto& b : out)
      b = n++;
  };
  Driver d(std::move(c));
  d.m.start(d.now);
  d.check_actions();

  for (int steps = 0; !s.done() && steps < 200; ++steps) {
    switch (s.u8() % 9) {
    case 0:
      d.now += s.u8() * 50 * kMs;
      d.timeout();
      break;
    case 1:
      if (d.m.next_timeout() != kNever) d.now = std::max(d.now, d.m.next_timeout());
      d.timeout();
      break;
    case 2: {
      auto n = s.u8();
      d.m.on_pcp(d.now, s.bytes(n));
      d.check_actions();
      break;
    }
    case 3: {
      uint8_t result = s.u8();
      uint16_t port = s.u16();
      uint16_t epoch = s.u16();
      if (d.last_map.size() != 60) break;
      pcp::Response r;
      r.opcode = 1;
      r.result = result == 255 ? 0 : result % 14;
      r.lifetime = result == 255 || d.last_map[7] == 0 ? 0 : grant;
      r.epoch = epoch;
      pcp::MapData md;
      std::copy(d.last_map.begin() + 24, d.last_map.begin() + 36, md.nonce.begin());
      md.protocol = pcp::kProtocolUdp;
      md.internal_port = kPort;
      md.external_port = port;
      md.external_address = pcp::v4_mapped(0xcb007165);
      r.map = md;
      d.m.on_pcp(d.now, pcp::encode_response(r));
      d.check_actions();
      break;
    }
    case 4: {
      pcp::Response r;
      r.opcode = 0;
      r.epoch = s.u16();
      d.m.on_pcp(d.now, pcp::encode_response(r));
      d.check_actions();
      break;
    }
    case 5: {
      uint8_t flags = s.u8();
      NatPmpAnswer a;
      a.public_address = flags & 1;
      a.result = (flags >> 1) & 7;
      a.epoch = s.u16();
      a.public_ip = (flags & 0x10) ? 0 : 0xcb007165;
      a.internal_port = (flags & 0x20) ? 1 : kPort;
      a.external_port = s.u16();
      a.lifetime = s.u8();
      d.m.on_natpmp(d.now, a);
      d.check_actions();
      break;
    }
    case 6: {
      uint8_t flags = s.u8();
      UpnpAnswer a;
      a.id = (flags & 2) ? d.previous_job : d.last_job;
      a.ok = flags & 1;
      a.external = Address::ipv4(0xcb007165, s.u16());
      a.lifetime = s.u8();
      a.error = "fuzz";
      d.m.on_upnp(d.now, a);
      d.check_actions();
      break;
    }
    case 7:
      d.m.on_unreachable(d.now, (s.u8() & 1) ? Protocol::NatPmp : Protocol::Pcp);
      d.check_actions();
      break;
    case 8:
      d.m.stop(d.now);
      d.check_actions();
      break;
    }
  }
  return 0;
}
