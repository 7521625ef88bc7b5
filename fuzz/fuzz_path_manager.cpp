// ice::PathManager driven by a hostile peer (docs/security.md, "Where probes go"). The input is a
// script: its first byte picks the side (bit 0: controlling, the agent), the rest is a sequence
// of operations, each an opcode byte and its arguments:
//   0 Candidates   generation, count, per candidate type/priority/address, padding
//   1 StartChecks  generation
//   2 STUN bytes   source address, length, bytes (parsed with wire::parse_stun first, as
//                  io::dispatch_stun does; what does not parse is dropped)
//   3 request      an authentic Binding request (our ufrag and password) from an address
//   4 response     an authentic answer to one of the requests we sent, from its destination or
//                  elsewhere, success or error
//   5 time         advance up to 65 s (or 655 s), firing the timers on the way
//   6 timeout      handle_timeout now (a spurious wake-up)
//   7 validated    QUIC path validation result (direct or not, success or not)
//   8 confirmed    the handshake is confirmed
//   9 our candidates  a new list of local candidates
// Addresses come from a table of forbidden and ordinary ones, or raw bytes. Generations are the
// current one, the next, the previous, or raw.
//
// The PathEvents implementation checks, and aborts on a violation:
//   - no STUN datagram goes to an address the filter refuses (ice::may_probe);
//   - every STUN datagram goes to an address the peer signalled or that sent us STUN;
//   - bytes of requests toward addresses from which no authenticated STUN came stay within 3x
//     the frame bytes of the Candidates received (the anti-amplification budget);
//   - rounds start at least kMinRoundInterval apart (after the first) and at most
//     kMaxRoundsPerMinute times in any 60 s; a round sends at most kMaxChecksPerRound checks;
//   - our own Candidates encode (valid, within kMaxControlPayload), with only allowed addresses;
//   - after handle_timeout(now), next_timeout() is later than now (the I/O shell never spins).
// FUZZ_PATH_MANAGER_VERBOSE=1 prints what the manager does (to check what a seed exercises).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "fuzz_check.hpp"
#include "ice/path_manager.hpp"
#include "wire/control_message.hpp"
#include "wire/stun_message.hpp"

using namespace ztna;
using namespace ztna::ice;

namespace {

constexpr Timestamp kMs = 1'000'000;
constexpr uint64_t kSession = 0x1234;
const bool kVerbose = std::getenv("FUZZ_PATH_MANAGER_VERBOSE") != nullptr;

const char* const kAddresses[] = {
    // forbidden
    "127.0.0.1:5000", "169.254.169.254:80", "224.0.0.251:5353", "[::1]:5000", "[fe80::1]:5000",
    "[ff02::1]:5000", "0.0.0.0:5000", "[::ffff:127.0.0.1]:5000", "198.51.100.7:0",
    "255.255.255.255:9", "100.100.100.200:80", "[fd00:ec2::254]:80", "[64:ff9b::7f00:1]:1",
    "[::]:5000", "169.254.1.1:5000",
    // ordinary
    "198.51.100.1:5000", "198.51.100.2:5000", "203.0.113.5:4000", "[2001:db8::1]:5000",
    "[2001:db8::2]:6000", "10.0.0.1:7000", "[::ffff:10.0.0.2]:7000", "192.0.2.9:9"};
constexpr size_t kTable = sizeof kAddresses / sizeof kAddresses[0];

struct Credentials {
  const char* ufrag;
  const char* password;
};
const Credentials kPeer[] = {{"peer", "peerpasswordpeerpassword"},
                             {"PEER2+/x", "anotherpeerpasswordanotherpeerpassword"}};

std::span<const uint8_t> bytes_of(const std::string& s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

bool contains(const std::vector<Address>& v, const Address& a) {
  return std::find(v.begin(), v.end(), a) != v.end();
}

class Input {
public:
  Input(const uint8_t* data, size_t size) : data_(data), size_(size) {}
  bool empty() const { return pos_ >= size_; }
  uint8_t u8() { return pos_ < size_ ? data_[pos_++] : 0; }
  uint16_t u16() { return static_cast<uint16_t>(u8() << 8 | u8()); }
  uint32_t u32() { return static_cast<uint32_t>(u16()) << 16 | u16(); }
  std::vector<uint8_t> bytes(size_t n) {
    n = std::min(n, size_ - std::min(pos_, size_));
    std::vector<uint8_t> out(data_ + pos_, data_ + pos_ + n);
    pos_ += n;
    return out;
  }
  Address address() {
    const uint8_t k = u8();
    if (k < 0x80) return *Address::parse(kAddresses[k % kTable]);
    sockaddr_storage ss{};
    if (k & 1) {
      auto* s6 = reinterpret_cast<sockaddr_in6*>(&ss);
      s6->sin6_family = AF_INET6;
      const auto ip = bytes(16);
      std::copy(ip.begin(), ip.end(), s6->sin6_addr.s6_addr);
      s6->sin6_port = htons(u16());
      return Address::from_sockaddr(reinterpret_cast<sockaddr*>(&ss), sizeof(sockaddr_in6));
    }
    auto* s4 = reinterpret_cast<sockaddr_in*>(&ss);
    s4->sin_family = AF_INET;
    const uint32_t ip = u32();
    s4->sin_addr.s_addr = htonl(ip);
    s4->sin_port = htons(u16());
    return Address::from_sockaddr(reinterpret_cast<sockaddr*>(&ss), sizeof(sockaddr_in));
  }

private:
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
};

struct Harness : PathEvents {
  Timestamp now = 1'000'000 * kMs;
  std::unique_ptr<PathManager> pm;
  uint64_t rng = 0x243f6a8885a308d3ull;

  std::vector<Address> signalled; // every address the peer signalled
  std::vector<Address> sources;   // every address STUN came from
  std::vector<Address> validated; // sources of STUN the manager accepted as authentic
  uint64_t signaling_bytes = 0;
  uint64_t unvalidated_bytes = 0;
  struct Request {
    Address to;
    wire::StunMessage m;
  };
  std::vector<Request> requests; // ours, newest last (bounded)
  std::deque<Timestamp> rounds;  // start times, newest last
  uint64_t rounds_seen = 0;
  uint64_t checks_at_round_start = 0;

  // While on_stun runs for a datagram from `arriving`: what went to that address meanwhile. An
  // authentic datagram validates its source before the manager sends anything in return, so
  // the harness learns the verdict only afterwards and settles these bytes then.
  std::optional<Address> arriving;
  uint64_t provisional_bytes = 0;
  bool answered = false;

  void send_stun(const Address& to, std::span<const uint8_t> d) override {
    FUZZ_CHECK(may_probe(to));
    FUZZ_CHECK(contains(signalled, to) || contains(sources, to));
    std::string error;
    auto m = wire::parse_stun(d, error);
    FUZZ_CHECK(m);
    if (kVerbose)
      std::fprintf(stderr, "%12.3f ms: STUN %s to %s (%zu bytes)\n", ms(),
                   wire::to_string(*m).c_str(), to.to_string().c_str(), d.size());
    if (m->cls != wire::StunClass::Request) {
      // Answers go only to where the request being handled came from.
      FUZZ_CHECK(arriving && *arriving == to);
      answered = true;
      return;
    }
    if (!contains(validated, to)) {
      if (arriving && *arriving == to) {
        provisional_bytes += d.size();
      } else {
        unvalidated_bytes += d.size();
        FUZZ_CHECK(unvalidated_bytes <= kAmplificationFactor * signaling_bytes);
      }
    }
    requests.push_back({to, *m});
    if (requests.size() > 64) requests.erase(requests.begin());
  }
  double ms() const { return static_cast<double>(now) / kMs - 1e6; }

  void send_candidates(const wire::Candidates& m) override {
    if (kVerbose)
      std::fprintf(stderr, "%12.3f ms: our Candidates, round %u, %zu candidates, %zu bytes\n", ms(),
                   m.generation, m.candidates.size(), wire::encoded_size(m));
    const auto frame = wire::encode_control(m); // throws (and the fuzzer reports) if invalid
    FUZZ_CHECK(frame.size() == wire::encoded_size(m));
    FUZZ_CHECK(frame.size() <= wire::kMaxControlFrame);
    for (const auto& c : m.candidates)
      FUZZ_CHECK(may_probe(c.address));
  }
  void use_direct(const Address& remote, const std::string& why) override {
    FUZZ_CHECK(may_probe(remote));
    if (kVerbose)
      std::fprintf(stderr, "%12.3f ms: direct %s: %s\n", ms(), remote.to_string().c_str(),
                   why.c_str());
  }
  void use_relay(const std::string& why) override {
    if (kVerbose) std::fprintf(stderr, "%12.3f ms: relay: %s\n", ms(), why.c_str());
  }
  void note(const std::string& line) override {
    FUZZ_CHECK(line.size() < 1024);
    if (kVerbose) std::fprintf(stderr, "%12.3f ms: note: %s\n", ms(), line.c_str());
  }

  // After every operation: the round limits.
  void check_rounds() {
    const auto& c = pm->counters();
    FUZZ_CHECK(c.rounds >= rounds_seen);
    FUZZ_CHECK(c.rounds - rounds_seen <= 1); // never two rounds in one event
    if (c.rounds > rounds_seen) {
      if (!rounds.empty())
        FUZZ_CHECK(now >= rounds.back() + static_cast<Timestamp>(kMinRoundInterval.count()) * kMs);
      rounds.push_back(now);
      while (!rounds.empty() && rounds.front() + 60'000 * kMs <= now)
        rounds.pop_front();
      FUZZ_CHECK(rounds.size() <= kMaxRoundsPerMinute);
      rounds_seen = c.rounds;
      checks_at_round_start = c.checks_sent;
    }
    FUZZ_CHECK(c.checks_sent - checks_at_round_start <= kMaxChecksPerRound);
    FUZZ_CHECK(c.unvalidated_bytes <= kAmplificationFactor * c.signaling_bytes);
  }

  void timeout(Timestamp at) {
    now = at;
    pm->handle_timeout(now);
    check_rounds();
    FUZZ_CHECK(pm->next_timeout() > now);
  }

  // The I/O shell: the timer fires at next_timeout() until `until`.
  void advance(Timestamp until) {
    for (int guard = 0; guard < 200'000; ++guard) {
      const Timestamp next = pm->next_timeout();
      if (next > until) {
        now = until;
        return;
      }
      timeout(std::max(now, next));
    }
    FUZZ_CHECK(false && "the timers do not advance");
  }

  uint32_t generation(Input& in) {
    const uint32_t g = pm->generation();
    switch (in.u8() % 4) {
    case 0:
      return g;
    case 1:
      return g + 1;
    case 2:
      return g > 0 ? g - 1 : 0;
    default:
      return in.u32();
    }
  }

  void stun(const Address& from, const std::vector<uint8_t>& bytes) {
    std::string error;
    auto m = wire::parse_stun(bytes, error);
    if (!m) return;
    if (!contains(sources, from)) sources.push_back(from);
    arriving = from;
    provisional_bytes = 0;
    answered = false;
    const auto r = pm->on_stun(from, bytes, *m, now);
    arriving.reset();
    // Handled means authentic (or from a refused address, which nothing is ever sent to).
    const bool authentic = r == PathManager::StunResult::Handled && may_probe(from);
    FUZZ_CHECK(!answered || (authentic && m->cls == wire::StunClass::Request));
    if (authentic) {
      if (!contains(validated, from)) validated.push_back(from);
    } else {
      unvalidated_bytes += provisional_bytes;
      FUZZ_CHECK(unvalidated_bytes <= kAmplificationFactor * signaling_bytes);
    }
  }

  void run(Input& in) {
    while (!in.empty()) {
      switch (in.u8() % 10) {
      case 0: { // Candidates from the peer
        const auto& cred = kPeer[in.u8() & 1];
        wire::Candidates m{kSession, generation(in), cred.ufrag, cred.password, {}, 0};
        const size_t n = in.u8() % (wire::kMaxCandidates + 1);
        for (size_t i = 0; i < n; ++i) {
          const uint8_t type = static_cast<uint8_t>(1 + in.u8() % 4);
          const uint32_t priority = in.u32();
          m.candidates.push_back({type, priority, in.address()});
        }
        const size_t base = wire::encoded_size(m);
        m.padding =
            static_cast<uint16_t>(std::min<size_t>(in.u16(), wire::kMaxControlFrame - base));
        FUZZ_CHECK(wire::encode_control(m).size() == wire::encoded_size(m));
        signaling_bytes += wire::encoded_size(m);
        for (const auto& c : m.candidates)
          if (!contains(signalled, c.address)) signalled.push_back(c.address);
        pm->on_candidates(m, now);
        break;
      }
      case 1:
        pm->on_start_checks(generation(in), now);
        break;
      case 2: {
        const Address from = in.address();
        stun(from, in.bytes(in.u8()));
        break;
      }
      case 3: { // an authentic request (or one keyed wrongly)
        const Address from = in.address();
        const uint8_t flags = in.u8();
        wire::StunMessage req;
        req.cls = wire::StunClass::Request;
        for (auto& b : req.transaction_id)
          b = static_cast<uint8_t>(rng = rng * 6364136223846793005ull + 1442695040888963407ull);
        req.username = pm->local_ufrag() + ":" + kPeer[flags & 1].ufrag;
        if (flags & 2) req.priority = in.u32();
        req.use_candidate = flags & 4;
        req.ice_controlling = 7;
        const std::string key = flags & 8 ? "wrongwrongwrongwrongwrong" : pm->local_password();
        stun(from, wire::encode_stun(req, bytes_of(key)));
        break;
      }
      case 4: { // an answer to one of our requests
        const uint8_t pick = in.u8(), flags = in.u8();
        if (requests.empty()) break;
        const auto req = requests[pick % requests.size()];
        wire::StunMessage resp;
        resp.transaction_id = req.m.transaction_id;
        if (flags & 1) {
          resp.cls = wire::StunClass::ErrorResponse;
          resp.error_code = 487;
        } else {
          resp.cls = wire::StunClass::SuccessResponse;
          resp.xor_mapped_address = in.address();
        }
        // From where it went, or from an address of the input.
        Address from = in.address();
        if (!(flags & 2)) from = req.to;
        const std::string key = kPeer[(flags >> 2) & 1].password;
        stun(from, wire::encode_stun(resp, bytes_of(key)));
        break;
      }
      case 5: {
        const Timestamp ms = in.u16();
        const Timestamp scale = in.u8() == 0xff ? 10 : 1; // up to 655 s: past every limit
        advance(now + ms * kMs * scale);
        break;
      }
      case 6:
        timeout(now);
        break;
      case 7: {
        const uint8_t flags = in.u8();
        pm->on_path_validated(flags & 1, flags & 2, now);
        break;
      }
      case 8:
        pm->on_handshake_confirmed(now);
        break;
      case 9: {
        std::vector<Candidate> locals;
        const size_t n = in.u8() % 5;
        for (size_t i = 0; i < n; ++i) {
          const auto type = in.u8() & 1 ? CandidateType::ServerReflexive : CandidateType::Host;
          locals.push_back({type, in.address(), candidate_priority(type, in.u16())});
        }
        pm->set_local_candidates(std::move(locals), now);
        break;
      }
      }
      check_rounds();
    }
  }
};

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  Input in(data, size);
  Harness h;
  PathManagerConfig config;
  config.controlling = in.u8() & 1;
  config.session_id = kSession;
  config.random = [&h](std::span<uint8_t> out) {
    for (auto& b : out) {
      h.rng = h.rng * 6364136223846793005ull + 1442695040888963407ull;
      b = static_cast<uint8_t>(h.rng >> 56);
    }
  };
  h.pm = std::make_unique<PathManager>(config, h, h.now);
  h.pm->set_local_candidates({{CandidateType::Host, *Address::parse("192.0.2.20:6000"),
                               candidate_priority(CandidateType::Host, 32767)},
                              {CandidateType::Host, *Address::parse("[2001:db8::20]:6000"),
                               candidate_priority(CandidateType::Host, 65535)}},
                             h.now);
  h.check_rounds();
  h.run(in);
  h.advance(h.now + 60'000 * kMs); // let the timers run on for a while
  return 0;
}
