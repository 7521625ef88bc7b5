// What kind of NAT (if any) is in front of our socket: NAT behaviour discovery (RFC 5780 §4)
// against the intermediates' plain STUN Binding service (docs/protocol.md §12), sans-IO.
//
// Every request leaves from the socket whose NAT we want to know: the daemon's one socket
// (DESIGN D1), or a netcheck's own. The sequence:
//   1. a Binding request to every server (the intermediates), in parallel: our reflexive address
//      and the RTT to each; the first server's answer may carry OTHER-ADDRESS (RFC 5780);
//   2. filtering (§4.4), before any packet goes to the alternate address, which would open the
//      filter toward it: CHANGE-REQUEST "change IP and port" (answered: endpoint-independent),
//      then "change port" (answered: address-dependent; else address-and-port-dependent);
//   3. mapping (§4.3): a Binding request to the alternate IP (primary port), to the alternate IP
//      and port, and to the primary IP and alternate port, paced a few ms apart so that a
//      sequential allocator shows its step; compared with the first mapping;
//   4. hairpinning (§4.5): a Binding request to our own reflexive address; it arrives back on our
//      socket if the NAT hairpins.
// Without OTHER-ADDRESS (an intermediate with no alternate address and port), mapping is judged
// from the servers' answers alone (equal mappings toward different addresses: independent) and
// filtering stays unknown.
//
// Explicit time in (nanoseconds on a monotonic clock), datagrams out; no sockets, no timers.
#pragma once

#include "net/address.hpp"
#include "wire/stun_message.hpp"

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace ztna::nat {

using Timestamp = uint64_t;

// RFC 4787 §4.1, §5. `Dependent`: not endpoint-independent, but no alternate address to tell
// address-dependent from address-and-port-dependent.
// The values of Mapping, Filtering and Allocation are those of wire::Candidates::nat.
enum class Mapping : uint8_t {
  Unknown,
  None, // no NAT: the reflexive address is one of ours
  EndpointIndependent,
  AddressDependent,
  AddressAndPortDependent,
  Dependent,
};
enum class Filtering : uint8_t {
  Unknown,
  EndpointIndependent,
  AddressDependent,
  AddressAndPortDependent
};
// How the NAT picks the external port of a new mapping.
enum class Allocation : uint8_t { Unknown, Preserving, Sequential, Random };
enum class Tristate : uint8_t { Unknown, Yes, No };

const char* to_string(Mapping m);
const char* to_string(Filtering f);
const char* to_string(Allocation a);
const char* to_string(Tristate t);

struct ServerResult {
  Address server;
  std::optional<Address> mapped; // our reflexive address as this server saw it
  std::optional<std::chrono::microseconds> rtt;
};

struct NatReport {
  Mapping mapping = Mapping::Unknown;
  Filtering filtering = Filtering::Unknown;
  Allocation allocation = Allocation::Unknown;
  int port_step = 0; // Sequential: the step between consecutive new mappings
  Tristate port_preserved = Tristate::Unknown; // the reflexive port equals our socket's port
  Tristate hairpin = Tristate::Unknown;
  bool rfc5780 = false;                 // the first server gave an alternate address
  std::optional<Address> reflexive;     // toward the first server that answered
  std::vector<Address> mapping_samples; // reflexive addresses of the fresh mapping probes
  std::vector<ServerResult> servers;
  // No direct path can be punched to us by a peer that only knows our reflexive address: the
  // mapping changes per destination and its ports cannot be predicted.
  bool hard() const;
  // One line for the log: "endpoint-independent mapping (port preserved), address-and-port-
  // dependent filtering, hairpinning yes".
  std::string summary() const;
};

// The report as Candidates carry it (wire::Candidates::nat, docs/protocol.md §4.4), and back:
// whether a NAT so described is hard (NatReport::hard()).
uint8_t to_wire(const NatReport& r);
bool hard_on_wire(uint8_t nat);
std::string describe_wire(uint8_t nat); // "address-and-port-dependent mapping, random ports"

struct DiscoveryConfig {
  std::vector<Address> servers;               // the intermediates; the first is asked for RFC 5780
  Address local;                              // our socket's address (port used for preservation)
  std::vector<Address> local_addresses;       // our interface addresses: a reflexive one = no NAT
  std::chrono::milliseconds initial_rto{200}; // doubles; after the first answer, from its RTT
  int max_transmissions = 3;
  std::chrono::milliseconds pacing{5};            // between the mapping probes
  std::function<void(std::span<uint8_t>)> random; // transaction IDs; required
};

struct Outgoing {
  Address to;
  std::vector<uint8_t> datagram;
};

class NatDiscovery {
public:
  // Throws std::invalid_argument without servers or a random source.
  NatDiscovery(DiscoveryConfig config, Timestamp now);

  // The next datagram due now; call until nullopt, then again at next_timeout().
  std::optional<Outgoing> poll(Timestamp now);
  Timestamp next_timeout() const;
  // A STUN datagram that arrived on our socket. True if it was ours (an answer to one of our
  // requests, or our own hairpin request coming back): the caller drops it then.
  bool on_datagram(const Address& from, std::span<const uint8_t> datagram, Timestamp now);

  bool done() const { return phase_ == Phase::Done; }
  const NatReport& report() const { return report_; }

  // Timestamp for "never".
  static constexpr Timestamp kNever = UINT64_MAX;

private:
  enum class Kind { Server, FilterBoth, FilterPort, MapAltIp, MapAltBoth, MapAltPort, Hairpin };
  enum class Phase { Servers, Filtering, Mapping, Done };
  struct Probe {
    Kind kind;
    size_t server = 0; // Kind::Server: index into config_.servers
    Address to;
    std::optional<wire::StunChangeRequest> change;
    wire::StunTransactionId tid{};
    int transmissions = 0;
    Timestamp last_sent = 0, next_at = 0, give_up_at = kNever;
    bool answered = false, finished = false;
    std::optional<Address> mapped;
    std::optional<Address> other;
  };

  void add(Kind kind, const Address& to, std::optional<wire::StunChangeRequest> change,
           Timestamp at, size_t server = 0);
  void advance(Timestamp now);
  void start_filtering(Timestamp now);
  void start_mapping(Timestamp now);
  void conclude();
  Probe* find(Kind kind);
  bool finished(Kind kind) const;
  std::chrono::nanoseconds rto() const;

  DiscoveryConfig config_;
  std::vector<Probe> probes_;
  Phase phase_ = Phase::Servers;
  std::optional<Address> other_; // OTHER-ADDRESS of the first server
  std::optional<std::chrono::microseconds> first_rtt_;
  NatReport report_;
};

} // namespace ztna::nat
