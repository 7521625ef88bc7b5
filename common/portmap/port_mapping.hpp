// One port mapping on the local gateway for the daemon's UDP socket (DESIGN D4: the
// "port-mapped" candidate), sans-IO: time and answers in, requests and events out.
//
// Which protocol, in which order (Config::protocols; the default is the order below):
//   1. PCP (RFC 6887). The current standard, a superset of NAT-PMP on the same port 5351. A
//      NAT-PMP-only gateway answers a PCP request at once with "unsupported version" (§9), and a
//      gateway with nothing on 5351 answers with ICMP port unreachable, so trying PCP first
//      costs one round trip when it is not there.
//   2. NAT-PMP (RFC 6886). Older Apple and many open-source gateways speak only this. Skipped
//      when port 5351 was refused during PCP.
//   3. UPnP-IGD. The most widespread, but the slowest and heaviest: SSDP discovery waits out a
//      fixed window, then HTTP and SOAP, run by miniupnpc on the I/O shell's worker thread.
// The first that gives a mapping wins; the others are not asked.
//
// Timers:
//   - Retransmission (RFC 6886 §3.1; RFC 6887 §8.1.1): the first request, then again after
//     250 ms, doubling, `max_transmissions` in all (4: at 0, 0.25, 0.75 and 1.75 s), and the
//     protocol is given up after one more doubled interval (3.75 s). RFC 6887 starts at 3 s and
//     never stops; the gateway is one hop away, and the next protocol should not wait that long.
//   - A UPnP-IGD job gets `upnp_timeout`, whatever miniupnpc does meanwhile.
//   - Renewal at half the granted lifetime (RFC 6886 §3.3, RFC 6887 §11.2.1), with the same
//     nonce (PCP) and the same suggested port. A renewal that gets no answer is tried again
//     halfway to the expiry, until the mapping expires; one the gateway refuses loses the
//     mapping at once.
//   - The gateway's epoch (RFC 6887 §8.5, RFC 6886 §3.6) is checked on every answer, and every
//     `epoch_check` while mapped (PCP ANNOUNCE, NAT-PMP public address request). An epoch that
//     went backwards (or moved far from our clock) means the gateway restarted and lost its
//     mappings: the mapping is renewed at once. The NAT-PMP check also notices a new external
//     address.
//   - When nothing works: Failed, and a new round after a back-off (`retry_initial` doubling to
//     `retry_max`, equal jitter), at least as long as the longest error lifetime the gateway
//     gave (RFC 6887 §7.2). A lost mapping starts a new round at once.
//   - stop(): the mapping is deleted (lifetime 0; RFC 6886 §3.4, RFC 6887 §15), with
//     `delete_transmissions` tries (1.75 s) or `stop_timeout` for UPnP-IGD, then Stopped.
#pragma once

#include "control/backoff.hpp"
#include "net/address.hpp"
#include "portmap/pcp.hpp"

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace ztna::portmap {

// Nanoseconds on a monotonic clock, as quic::Timestamp and ice::Timestamp.
using Timestamp = uint64_t;
constexpr Timestamp kNever = UINT64_MAX;

enum class Protocol : uint8_t { Pcp, NatPmp, Upnp };
const char* to_string(Protocol p);    // "pcp", "natpmp", "upnp" (status, options)
const char* display_name(Protocol p); // "PCP", "NAT-PMP", "UPnP-IGD" (log lines)
std::optional<Protocol> parse_protocol(std::string_view text);
std::vector<Protocol> default_protocols(); // PCP, NAT-PMP, UPnP-IGD

struct Config {
  std::vector<Protocol> protocols = default_protocols(); // tried in this order; each at most once
  uint16_t internal_port = 0;                            // the daemon socket's port; required
  // The gateway's PCP/NAT-PMP address (port 5351), and our address toward it (PCP's client IP,
  // RFC 6887 §8.1). Without a gateway, PCP and NAT-PMP are skipped.
  std::optional<Address> gateway;
  Address client;
  std::chrono::seconds lifetime{7200}; // requested (RFC 6886 §3.3 recommends 7200 s)
  std::chrono::milliseconds initial_rto{250};
  unsigned max_transmissions = 4;
  unsigned delete_transmissions = 3;
  std::chrono::milliseconds upnp_timeout{10000};
  std::chrono::milliseconds stop_timeout{3000}; // a UPnP-IGD deletion at stop
  std::chrono::seconds epoch_check{60};         // 0: only the answers to renewals are checked
  std::chrono::milliseconds retry_initial{60000};
  std::chrono::milliseconds retry_max{1800000};
  std::function<void(std::span<uint8_t>)> random; // the PCP nonce and the jitter; required
};

struct Mapping {
  Protocol protocol = Protocol::Pcp;
  Address external; // the gateway's external address and the mapped port
  uint16_t internal_port = 0;
  uint32_t lifetime_s = 0;   // granted; 0: no expiry (a UPnP-IGD permanent lease)
  Timestamp obtained_at = 0; // when this external address:port was first obtained
  Timestamp renewed_at = 0;  // when it was last obtained or renewed
  Timestamp expires_at = kNever;
  bool operator==(const Mapping&) const = default;
};

// NAT-PMP goes through libnatpmp in the I/O shell, which encodes the requests and decodes the
// answers (DESIGN D8); these cross between the shell and the state machine.
struct NatPmpRequest {
  bool public_address = false; // opcode 0 (RFC 6886 §3.2), else a UDP mapping (§3.3)
  uint16_t internal_port = 0;
  uint16_t external_port = 0; // suggested; 0 for a deletion (§3.4)
  uint32_t lifetime = 0;      // 0 deletes
};
struct NatPmpAnswer {
  bool public_address = false;
  uint16_t result = 0; // RFC 6886 §3.5; 0 is success
  uint32_t epoch = 0;
  uint32_t public_ip = 0; // host order; public address answers
  uint16_t internal_port = 0;
  uint16_t external_port = 0;
  uint32_t lifetime = 0;
};
const char* natpmp_result_name(uint16_t result);

// UPnP-IGD runs through miniupnpc on the I/O shell's worker thread: a job and its answer.
struct UpnpJob {
  uint64_t id = 0;
  bool remove = false; // delete what the worker mapped, rather than map
  uint16_t internal_port = 0;
  uint16_t external_port = 0; // suggested
  uint32_t lifetime = 0;
};
struct UpnpAnswer {
  uint64_t id = 0;
  bool ok = false;
  Address external;      // the mapped external address:port
  uint32_t lifetime = 0; // the granted lease; 0: permanent
  std::string error;     // why not
};

// Asks of the shell...
struct SendPcp {
  std::vector<uint8_t> datagram; // to the gateway's port 5351
};
struct SendNatPmp {
  NatPmpRequest request;
};
struct RunUpnp {
  UpnpJob job;
};
// ...and tells its owner.
struct Obtained {
  Mapping mapping;
  bool changed = false; // replaces an earlier mapping whose external address or port differed
};
struct Renewed {
  Mapping mapping;
};
struct Lost {
  Mapping mapping;
  std::string reason; // a new round has started already
};
struct Failed {
  std::string reason; // every protocol of the round, with why it failed
  Timestamp retry_at = kNever;
};
struct GatewayRestarted {
  Protocol protocol = Protocol::Pcp;
  uint32_t epoch_before = 0;
  uint32_t epoch_now = 0;
};
struct Stopped {
  bool deleted = false; // the gateway confirmed the deletion
  std::string detail;
  std::optional<Mapping> mapping; // what was mapped when stop() came
};
using Action = std::variant<SendPcp, SendNatPmp, RunUpnp, Obtained, Renewed, Lost, Failed,
                            GatewayRestarted, Stopped>;

class PortMapping {
public:
  enum class State { Idle, Trying, Mapped, Waiting, Stopping, Stopped };
  enum class Step { PcpMap, PcpAnnounce, NatPmpAddress, NatPmpMap, Upnp };
  enum class Purpose { Obtain, Renew, EpochCheck, Delete };

  // The request in flight (at most one at a time).
  struct Exchange {
    Protocol protocol = Protocol::Pcp;
    Step step = Step::PcpMap;
    Purpose purpose = Purpose::Obtain;
    unsigned transmissions = 0;
    unsigned max_transmissions = 0;
    Timestamp started_at = 0;
    Timestamp next_at = kNever; // the next transmission, or when it is given up
    uint64_t upnp_job = 0;
  };

  struct Counters {
    uint64_t requests = 0;  // PCP and NAT-PMP requests sent, UPnP-IGD jobs given
    uint64_t responses = 0; // answers to them
    uint64_t malformed = 0; // datagrams from port 5351 that are no PCP response
    uint64_t ignored = 0;   // well-formed but not ours or late (nonce, port, opcode)
    uint64_t obtained = 0;  // mappings obtained (not counting changes and renewals)
    uint64_t renewals = 0;
    uint64_t renewals_missed = 0; // renewal attempts without an answer
    uint64_t changes = 0;         // external address or port changed
    uint64_t losses = 0;
    uint64_t gateway_restarts = 0; // epochs found invalid while mapped
    uint64_t rounds_failed = 0;
    uint64_t deletions = 0; // confirmed deletions
  };

  // Throws std::invalid_argument without random, without an internal port, with no protocol or
  // one twice, a zero interval or a lifetime under 2 s.
  explicit PortMapping(Config config);

  void start(Timestamp now);
  // Deletes the mapping (or what a request in flight may have created), then Stopped. Also
  // from Idle or Waiting, where Stopped follows at once.
  void stop(Timestamp now);

  // A datagram from the gateway's port 5351 on the PCP socket.
  void on_pcp(Timestamp now, std::span<const uint8_t> datagram);
  void on_natpmp(Timestamp now, const NatPmpAnswer& answer);
  void on_upnp(Timestamp now, const UpnpAnswer& answer);
  // The gateway refused port 5351 (ICMP port unreachable) for PCP's or NAT-PMP's socket.
  void on_unreachable(Timestamp now, Protocol protocol);

  void handle_timeout(Timestamp now);
  Timestamp next_timeout() const;
  // Everything asked and told since the last call, in order.
  std::vector<Action> take_actions();

  State state() const { return state_; }
  const std::optional<Mapping>& mapping() const { return mapping_; }
  const std::optional<Exchange>& exchange() const { return exchange_; }
  // Why each protocol of the current round failed so far (of the last round while Waiting).
  const std::vector<std::pair<Protocol, std::string>>& round_failures() const {
    return round_failures_;
  }
  const std::string& last_failure() const { return last_failure_; }
  Timestamp retry_at() const { return state_ == State::Waiting ? retry_at_ : kNever; }
  Timestamp renew_at() const { return state_ == State::Mapped ? renew_at_ : kNever; }
  const Counters& counters() const { return counters_; }
  const Config& config() const { return config_; }
  const pcp::Nonce& nonce() const { return nonce_; }

private:
  struct Epoch {
    bool known = false;
    uint32_t server = 0;
    Timestamp client = 0;
  };

  void begin_round(Timestamp now);
  void try_next(Timestamp now);
  void protocol_failed(Timestamp now, const std::string& reason);
  void round_failed(Timestamp now);
  void begin_exchange(Timestamp now, Protocol p, Step step, Purpose purpose);
  void transmit(Timestamp now);
  void exchange_timed_out(Timestamp now);
  void renewal_missed(Timestamp now);
  void mapped(Timestamp now, Protocol p, const Address& external, uint32_t lifetime,
              Purpose purpose);
  void lose(Timestamp now, const std::string& reason);
  void finish_stop(bool deleted, const std::string& detail);
  bool epoch_valid(Timestamp now, Protocol p, uint32_t server_epoch);
  void restarted(Timestamp now, Protocol p, uint32_t before, uint32_t epoch, bool renewed);
  Timestamp renewal_interval(const Mapping& m) const;
  Timestamp next_epoch_check(Timestamp now) const;
  uint16_t suggested_port() const;
  std::string gateway_text() const;

  Config config_;
  State state_ = State::Idle;
  std::optional<Mapping> mapping_;
  std::optional<Exchange> exchange_;
  std::optional<Address> last_external_; // suggested again after a loss (RFC 6887 §11.2.1)
  pcp::Nonce nonce_{};
  uint32_t natpmp_public_ip_ = 0;
  std::array<Epoch, 2> epochs_{}; // PCP, NAT-PMP
  size_t round_index_ = 0;
  bool port_refused_ = false; // this round: ICMP port unreachable from 5351
  uint32_t error_hint_s_ = 0; // this round: the longest error lifetime (RFC 6887 §7.2)
  std::vector<std::pair<Protocol, std::string>> round_failures_;
  std::string last_failure_;
  Timestamp renew_at_ = kNever;
  Timestamp epoch_check_at_ = kNever;
  Timestamp retry_at_ = kNever;
  Backoff backoff_;
  uint64_t next_job_ = 0;
  std::set<uint64_t> stale_jobs_; // UPnP-IGD jobs given up on: a late success is deleted
  Counters counters_;
  std::vector<Action> actions_;
};

const char* to_string(PortMapping::State s);   // "idle", "trying", "mapped"...
const char* to_string(PortMapping::Step s);    // "pcp-map", "pcp-announce"...
const char* to_string(PortMapping::Purpose p); // "obtain", "renew", "epoch-check", "delete"

} // namespace ztna::portmap
